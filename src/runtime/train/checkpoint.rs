//! Checkpoints: written atomically, read back for resume.
//!
//! Layout of `<out>/checkpoints/step-<NNNNNNNN>/`:
//! - `adapter_model.safetensors`: every trainable parameter under its PEFT name;
//! - `optimizer.safetensors`: optimizer state (`<name>.exp_avg`, `<name>.exp_avg_sq` or
//!   `<name>.momentum_buffer`);
//! - `trainer_state.json`: [`TrainerState`] (step, schedule position, data cursor and order,
//!   dropout RNG position, per-parameter optimizer step counts, the run's config).
//!
//! A checkpoint is written into `.tmp-step-<N>-<pid>/`, each file synced, then the folder is
//! renamed into place: a folder named `step-N` is always complete. Resume takes the highest
//! complete step and removes stale temporary folders.

use crate::runtime::ops::dropout::RngState;
use crate::runtime::train::config::TrainConfig;
use crate::runtime::train::error::{IoContext, TensorContext, TrainError};
use crate::runtime::train::optim::OptimizerState;
use crate::runtime::train::order::Cursor;
use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// File with the trainable weights.
pub const ADAPTER_FILE: &str = "adapter_model.safetensors";
/// File with the optimizer state.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// File with the loop's state.
pub const STATE_FILE: &str = "trainer_state.json";
/// Version of [`TrainerState`].
pub const STATE_FORMAT: u32 = 1;

/// Everything but tensors that a resumed run needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// [`STATE_FORMAT`].
    pub format: u32,
    /// Optimizer steps completed.
    pub step: u64,
    /// Total steps of the run.
    pub total_steps: u64,
    /// Position of the schedule (the next step's index, equal to `step`).
    pub schedule_position: u64,
    /// Data cursor after the last completed step.
    pub cursor: Cursor,
    /// The permutation of the cursor's epoch (recomputed on resume and compared).
    pub data_order: Vec<usize>,
    /// Dropout RNG position.
    pub rng: RngState,
    /// AdamW's per-parameter step counts.
    pub optimizer_steps: BTreeMap<String, u64>,
    /// Real tokens seen so far.
    pub tokens_seen: u64,
    /// blake3 of the examples (ids, labels, classes), so a resume on other data is refused.
    pub data_hash: String,
    /// The run's config (a resume must use an equivalent one).
    pub config: TrainConfig,
}

/// A checkpoint read back.
#[derive(Debug)]
pub struct Checkpoint {
    /// Its folder.
    pub dir: PathBuf,
    /// The loop's state.
    pub state: TrainerState,
    /// Trainable weights by PEFT name.
    pub weights: HashMap<String, Tensor>,
    /// Optimizer state.
    pub optimizer: OptimizerState,
}

/// The folder name of step `step`.
pub fn step_dir_name(step: u64) -> String {
    format!("step-{step:08}")
}

fn sync_file(path: &Path) -> Result<(), TrainError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .at(path)
}

/// Writes a checkpoint of `weights`, `optimizer` and `state` under `root` atomically; returns
/// its folder.
pub fn save(
    root: &Path,
    weights: &[(String, Var)],
    optimizer: &OptimizerState,
    state: &TrainerState,
) -> Result<PathBuf, TrainError> {
    let _span = tracing::info_span!("checkpoint", step = state.step).entered();
    std::fs::create_dir_all(root).at(root)?;
    let name = step_dir_name(state.step);
    let tmp = root.join(format!(".tmp-{name}-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).at(&tmp)?;
    }
    std::fs::create_dir_all(&tmp).at(&tmp)?;

    let w: HashMap<String, Tensor> = weights
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    let wpath = tmp.join(ADAPTER_FILE);
    candle_core::safetensors::save(&w, &wpath).phase("checkpoint weights")?;
    sync_file(&wpath)?;

    let opath = tmp.join(OPTIMIZER_FILE);
    candle_core::safetensors::save(&optimizer.tensors, &opath).phase("checkpoint optimizer")?;
    sync_file(&opath)?;

    let spath = tmp.join(STATE_FILE);
    let json = serde_json::to_string_pretty(state).map_err(|e| TrainError::Checkpoint {
        path: spath.clone(),
        reason: e.to_string(),
    })?;
    std::fs::write(&spath, json).at(&spath)?;
    sync_file(&spath)?;

    let dest = root.join(&name);
    if dest.exists() {
        std::fs::remove_dir_all(&dest).at(&dest)?;
    }
    std::fs::rename(&tmp, &dest).at(&dest)?;
    // Make the rename durable.
    if let Ok(d) = std::fs::File::open(root) {
        let _ = d.sync_all();
    }
    Ok(dest)
}

/// Complete checkpoints under `root`, oldest first, as `(step, folder)`.
pub fn list(root: &Path) -> Result<Vec<(u64, PathBuf)>, TrainError> {
    if !root.exists() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root).at(root)? {
        let entry = entry.at(root)?;
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(n) = name
            .strip_prefix("step-")
            .and_then(|s| s.parse::<u64>().ok())
        {
            out.push((n, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Removes temporary folders left by a killed writer.
pub fn remove_stale(root: &Path) -> Result<(), TrainError> {
    if !root.exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(root).at(root)? {
        let entry = entry.at(root)?;
        if entry.file_name().to_string_lossy().starts_with(".tmp-") {
            std::fs::remove_dir_all(entry.path()).at(&entry.path())?;
        }
    }
    Ok(())
}

/// Deletes all but the newest `keep` checkpoints (0 keeps all).
pub fn prune(root: &Path, keep: usize) -> Result<(), TrainError> {
    if keep == 0 {
        return Ok(());
    }
    let all = list(root)?;
    let drop = all.len().saturating_sub(keep);
    for (_, dir) in all.into_iter().take(drop) {
        std::fs::remove_dir_all(&dir).at(&dir)?;
    }
    Ok(())
}

/// Reads the checkpoint in `dir`, tensors onto `device`.
pub fn load(dir: &Path, device: &Device) -> Result<Checkpoint, TrainError> {
    let spath = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&spath).at(&spath)?;
    let state: TrainerState = serde_json::from_str(&text).map_err(|e| TrainError::Checkpoint {
        path: spath.clone(),
        reason: e.to_string(),
    })?;
    if state.format != STATE_FORMAT {
        return Err(TrainError::Checkpoint {
            path: spath,
            reason: format!("format {} (this build reads {STATE_FORMAT})", state.format),
        });
    }
    let read = |file: &str| -> Result<HashMap<String, Tensor>, TrainError> {
        let p = dir.join(file);
        candle_core::safetensors::load(&p, device).map_err(|e| TrainError::Checkpoint {
            path: p,
            reason: e.to_string(),
        })
    };
    let weights = read(ADAPTER_FILE)?;
    let tensors = read(OPTIMIZER_FILE)?;
    Ok(Checkpoint {
        dir: dir.to_path_buf(),
        optimizer: OptimizerState {
            tensors,
            steps: state.optimizer_steps.clone(),
        },
        state,
        weights,
    })
}

/// A blake3 hash of examples, in order.
pub fn data_hash(examples: &[crate::runtime::batch::Example]) -> String {
    let mut h = blake3::Hasher::new();
    for e in examples {
        h.update(&(e.input_ids.len() as u64).to_le_bytes());
        for t in &e.input_ids {
            h.update(&t.to_le_bytes());
        }
        h.update(&(e.labels.len() as u64).to_le_bytes());
        for l in &e.labels {
            h.update(&l.to_le_bytes());
        }
        h.update(&e.class_label.map_or(u64::MAX, u64::from).to_le_bytes());
    }
    h.finalize().to_hex().to_string()
}

/// Removes every checkpoint under `root` (a fresh run in a used folder).
pub fn clear(root: &Path) -> Result<(), TrainError> {
    for (_, dir) in list(root)? {
        std::fs::remove_dir_all(&dir).at(&dir)?;
    }
    remove_stale(root)
}

/// The newest complete checkpoint under `root`, if any.
pub fn latest(root: &Path, device: &Device) -> Result<Option<Checkpoint>, TrainError> {
    remove_stale(root)?;
    match list(root)?.pop() {
        None => Ok(None),
        Some((_, dir)) => load(&dir, device).map(Some),
    }
}
