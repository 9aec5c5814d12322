//! Checkpoint layout and atomicity, cancellation, config checks on resume, the no-gradient
//! refusal, memory figures.

use super::tiny::{Tiny, A1, B1};
use candle_core::{Device, Var};
use peftc::runtime::batch::Example;
use peftc::runtime::train::checkpoint::{self, TrainerState};
use peftc::runtime::train::memory::parse_status_kib;
use peftc::runtime::train::{
    train, NoProgress, Progress, Resume, ScheduleConfig, ScheduleKind, TrainConfig, TrainError,
    TrainLength, TrainRun, Warmup,
};
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, Ordering};

pub fn causal_examples(n: usize, seed: u64) -> Vec<Example> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let len = rng.gen_range(3..9);
            let ids: Vec<u32> = (0..len).map(|_| rng.gen_range(1..32)).collect();
            let labels = ids.iter().map(|&t| i64::from(t)).collect();
            Example {
                input_ids: ids,
                labels,
                class_label: None,
                packed: Vec::new(),
            }
        })
        .collect()
}

pub fn small_config(steps: u64) -> TrainConfig {
    TrainConfig {
        length: TrainLength::Steps(steps),
        batch_size: 4,
        accumulate: 2,
        lr: 5e-3,
        schedule: ScheduleConfig {
            kind: ScheduleKind::Cosine,
            warmup: Warmup::Steps(3),
        },
        max_grad_norm: Some(1.0),
        seed: 7,
        shuffle: true,
        checkpoint_every: Some(4),
        keep_checkpoints: 0,
        ..TrainConfig::default()
    }
}

fn run<'a>(
    dir: &'a std::path::Path,
    progress: &'a mut dyn Progress,
    cancel: &'a AtomicBool,
    resume: Resume,
) -> TrainRun<'a> {
    TrainRun {
        out_dir: Some(dir),
        resume,
        collate: None,
        progress,
        cancel,
    }
}

struct CancelAt<'a> {
    at: u64,
    flag: &'a AtomicBool,
}

impl Progress for CancelAt<'_> {
    fn on_step(&mut self, step: u64, _: u64, _: f64, _: f64) {
        if step == self.at {
            self.flag.store(true, Ordering::SeqCst);
        }
    }
}

#[test]
fn cancel_writes_a_checkpoint_and_resume_finishes_the_run() {
    let examples = causal_examples(24, 1);
    let config = small_config(10);
    let dir = tempfile::tempdir().expect("dir");
    let model = Tiny::random(3, None);
    let flag = AtomicBool::new(false);
    let mut p = CancelAt { at: 3, flag: &flag };
    let err = train(
        &model,
        &examples,
        &config,
        run(dir.path(), &mut p, &flag, Resume::Never),
    )
    .expect_err("cancelled");
    let TrainError::Cancelled { step, checkpoint } = err else {
        panic!("expected Cancelled, got {err}")
    };
    assert_eq!(step, 3);
    let ck = checkpoint.expect("checkpoint written");
    assert_eq!(ck, dir.path().join("checkpoints").join("step-00000003"));
    for f in [
        checkpoint::ADAPTER_FILE,
        checkpoint::OPTIMIZER_FILE,
        checkpoint::STATE_FILE,
    ] {
        assert!(ck.join(f).is_file(), "{f}");
    }
    let state: TrainerState = serde_json::from_str(
        &std::fs::read_to_string(ck.join(checkpoint::STATE_FILE)).expect("state"),
    )
    .expect("json");
    assert_eq!(state.step, 3);
    assert_eq!(state.schedule_position, 3);
    assert_eq!(state.total_steps, 10);
    // 24 examples, batch 4, accumulate 2: 3 steps per epoch, so step 3 ends epoch 0.
    assert_eq!(state.cursor.position, 24);
    assert_eq!(state.data_order.len(), 24);
    assert_eq!(state.optimizer_steps.get(A1), Some(&3));
    let saved = candle_core::safetensors::load(ck.join(checkpoint::ADAPTER_FILE), &Device::Cpu)
        .expect("weights");
    assert_eq!(saved.len(), 4);
    let opt = candle_core::safetensors::load(ck.join(checkpoint::OPTIMIZER_FILE), &Device::Cpu)
        .expect("opt");
    assert!(opt.contains_key(&format!("{B1}.exp_avg_sq")));
    // A stale temporary folder from a killed writer is ignored and removed.
    let stale = dir.path().join("checkpoints").join(".tmp-step-00000004-1");
    std::fs::create_dir_all(&stale).expect("stale");
    let flag2 = AtomicBool::new(false);
    let model2 = Tiny::random(3, None);
    let s = train(
        &model2,
        &examples,
        &config,
        run(dir.path(), &mut NoProgress, &flag2, Resume::IfPresent),
    )
    .expect("resumed");
    assert_eq!(s.resumed_from, Some(3));
    assert_eq!(s.steps, 10);
    assert!(!stale.exists());
    assert_eq!(
        s.checkpoint,
        Some(dir.path().join("checkpoints").join("step-00000010"))
    );
}

#[test]
fn resume_refuses_a_checkpoint_of_another_config() {
    let examples = causal_examples(16, 2);
    let config = small_config(4);
    let dir = tempfile::tempdir().expect("dir");
    let flag = AtomicBool::new(false);
    train(
        &Tiny::random(4, None),
        &examples,
        &config,
        run(dir.path(), &mut NoProgress, &flag, Resume::Never),
    )
    .expect("train");
    let other = TrainConfig { lr: 1e-3, ..config };
    let err = train(
        &Tiny::random(4, None),
        &examples,
        &other,
        run(dir.path(), &mut NoProgress, &flag, Resume::IfPresent),
    )
    .expect_err("config differs");
    assert!(
        matches!(&err, TrainError::Checkpoint { reason, .. } if reason.contains("different config")),
        "{err}"
    );
}

#[test]
fn a_parameter_without_gradient_is_refused_by_name() {
    let mut model = Tiny::random(5, None);
    model.orphan = Some(Var::zeros((2, 2), candle_core::DType::F32, &Device::Cpu).expect("orphan"));
    let flag = AtomicBool::new(false);
    let err = train(
        &model,
        &causal_examples(8, 3),
        &small_config(2),
        TrainRun {
            out_dir: None,
            resume: Resume::Never,
            collate: None,
            progress: &mut NoProgress,
            cancel: &flag,
        },
    )
    .expect_err("orphan has no gradient");
    assert!(
        matches!(&err, TrainError::NoGradient { param } if param == "base_model.model.orphan.lora_A.weight"),
        "{err}"
    );
}

#[test]
fn invalid_config_names_the_field() {
    let flag = AtomicBool::new(false);
    let config = TrainConfig {
        accumulate: 0,
        ..small_config(2)
    };
    let err = train(
        &Tiny::random(5, None),
        &causal_examples(8, 3),
        &config,
        TrainRun {
            out_dir: None,
            resume: Resume::Never,
            collate: None,
            progress: &mut NoProgress,
            cancel: &flag,
        },
    )
    .expect_err("accumulate 0");
    assert!(
        matches!(
            err,
            TrainError::InvalidConfig {
                field: "accumulate",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn summary_reports_memory_and_keeps_the_newest_checkpoints() {
    let examples = causal_examples(24, 4);
    let config = TrainConfig {
        keep_checkpoints: 2,
        checkpoint_every: Some(2),
        ..small_config(9)
    };
    let dir = tempfile::tempdir().expect("dir");
    let flag = AtomicBool::new(false);
    let s = train(
        &Tiny::random(6, None),
        &examples,
        &config,
        run(dir.path(), &mut NoProgress, &flag, Resume::Never),
    )
    .expect("train");
    let kept: Vec<u64> = checkpoint::list(&dir.path().join("checkpoints"))
        .expect("list")
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(kept, vec![8, 9]);
    assert_eq!(s.steps, 9);
    assert!(
        (s.epochs - 3.0).abs() < 1e-12,
        "9 steps of 3 per epoch = 3 epochs, got {}",
        s.epochs
    );
    assert_eq!(s.trainable_params, 4 * 64);
    assert_eq!(
        s.tokens_seen,
        examples
            .iter()
            .map(|e| e.input_ids.len() as u64)
            .sum::<u64>()
            * 3
    );
    if cfg!(target_os = "linux") {
        let peak = s.memory.peak_rss_bytes.expect("VmHWM on Linux");
        let start = s.memory.start_rss_bytes.expect("VmRSS on Linux");
        assert!(peak >= start && peak > 1 << 20, "peak {peak} start {start}");
        assert_eq!(s.memory.stage_delta_bytes, Some(peak - start));
    }
    let json = serde_json::to_value(&s).expect("summary json");
    assert_eq!(json["steps"], 9);
}

#[test]
fn status_parsing_reads_kib_fields() {
    let text = "Name:\tx\nVmHWM:\t  123456 kB\nVmRSS:\t   2048 kB\n";
    assert_eq!(parse_status_kib(text, "VmHWM:"), Some(123456));
    assert_eq!(parse_status_kib(text, "VmRSS:"), Some(2048));
    assert_eq!(parse_status_kib(text, "VmSwap:"), None);
}

#[test]
fn train_config_serialises_with_plain_names() {
    let c = small_config(5);
    let json = serde_json::to_value(&c).expect("json");
    assert_eq!(json["length"], serde_json::json!({"steps": 5}));
    assert_eq!(json["optimizer"]["adamw"]["weight_decay"], 0.0);
    assert_eq!(
        json["schedule"],
        serde_json::json!({"kind": "cosine", "warmup": {"steps": 3}})
    );
    let back: TrainConfig = serde_json::from_value(json).expect("back");
    assert_eq!(back, c);
}

#[test]
fn resume_refuses_other_examples_and_a_fresh_run_clears_old_checkpoints() {
    let config = small_config(4);
    let dir = tempfile::tempdir().expect("dir");
    let flag = AtomicBool::new(false);
    let examples = causal_examples(16, 2);
    train(
        &Tiny::random(4, None),
        &examples,
        &config,
        run(dir.path(), &mut NoProgress, &flag, Resume::Never),
    )
    .expect("train");
    let mut other = examples.clone();
    other[3].input_ids[0] = (other[3].input_ids[0] % 31) + 1;
    let err = train(
        &Tiny::random(4, None),
        &other,
        &config,
        run(dir.path(), &mut NoProgress, &flag, Resume::IfPresent),
    )
    .expect_err("data differs");
    assert!(
        matches!(&err, TrainError::Checkpoint { reason, .. } if reason.contains("other examples")),
        "{err}"
    );
    // A fresh 2-step run in the same folder leaves only its own checkpoints and log lines.
    let short = small_config(2);
    train(
        &Tiny::random(4, None),
        &other,
        &short,
        run(dir.path(), &mut NoProgress, &flag, Resume::Never),
    )
    .expect("fresh");
    let kept: Vec<u64> = checkpoint::list(&dir.path().join("checkpoints"))
        .expect("list")
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(kept, vec![2]);
    let log = peftc::runtime::train::log::MetricsLog::read(&dir.path().join("metrics.jsonl"))
        .expect("log");
    assert_eq!(log.iter().map(|r| r.step).collect::<Vec<_>>(), vec![1, 2]);
}
