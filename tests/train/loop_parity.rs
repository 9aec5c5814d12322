//! The whole loop against a PyTorch run of the same tiny LoRA model (tests/train/tiny.rs mirrors
//! `Tiny` in tests/parity/make_train_fixtures.py): 5 optimizer steps on fixed batches, dropout 0.
//! Each step's loss within 1e-4, each gradient norm before clipping within 1e-4 relative, final
//! trainable weights within 1e-4 relative. Runs cover AdamW + linear warmup + clipping (causal),
//! SGD nesterov + gradient accumulation with token-weighted loss (causal), and AdamW + LoRA+ +
//! cosine warmup + clipping + a `modules_to_save` head (classification).

use super::fixtures;
use super::tiny::Tiny;
use peftc::runtime::train::log::MetricsLog;
use peftc::runtime::train::{
    train, AdamWConfig, DecayRule, NoProgress, OptimizerConfig, Resume, ScheduleConfig,
    ScheduleKind, SgdConfig, TrainConfig, TrainLength, TrainRun, Warmup,
};
use std::sync::atomic::AtomicBool;

fn config_of(run: &serde_json::Value) -> TrainConfig {
    let c = &run["config"];
    let oc = &c["optimizer_config"];
    let f = |k: &str, d: f64| oc.get(k).and_then(|v| v.as_f64()).unwrap_or(d);
    let optimizer = match c["optimizer"].as_str() {
        Some("adamw") => OptimizerConfig::AdamW(AdamWConfig {
            weight_decay: f("weight_decay", 0.01),
            ..AdamWConfig::default()
        }),
        _ => OptimizerConfig::Sgd(SgdConfig {
            momentum: f("momentum", 0.0),
            dampening: f("dampening", 0.0),
            weight_decay: f("weight_decay", 0.0),
            nesterov: oc
                .get("nesterov")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
        }),
    };
    let kind = match c["schedule"].as_str() {
        Some("linear") => ScheduleKind::Linear,
        Some("cosine") => ScheduleKind::Cosine,
        _ => ScheduleKind::Constant,
    };
    TrainConfig {
        length: TrainLength::Steps(c["steps"].as_u64().expect("steps")),
        batch_size: c["batch_size"].as_u64().expect("batch") as usize,
        accumulate: c["accumulate"].as_u64().expect("accum") as usize,
        lr: c["lr"].as_f64().expect("lr"),
        optimizer,
        decay: DecayRule::All,
        lora_plus_ratio: c["lora_plus_ratio"].as_f64(),
        schedule: ScheduleConfig {
            kind,
            warmup: Warmup::Steps(c["warmup_steps"].as_u64().expect("warmup")),
        },
        max_grad_norm: c["max_grad_norm"].as_f64(),
        seed: 0,
        shuffle: false,
        checkpoint_every: None,
        keep_checkpoints: 0,
        pad_id: 0,
    }
}

#[test]
fn five_lora_steps_match_pytorch() {
    let fx = fixtures::load("loop");
    let scale = fx["dims"]["scale"].as_f64().expect("scale");
    let runs = fx["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 3);
    for run in runs {
        let name = run["name"].as_str().expect("name");
        let model = Tiny::from_fixture(run, scale);
        let examples = fixtures::examples(&run["examples"]);
        let config = config_of(run);
        let dir = tempfile::tempdir().expect("tempdir");
        let cancel = AtomicBool::new(false);
        let summary = train(
            &model,
            &examples,
            &config,
            TrainRun {
                out_dir: Some(dir.path()),
                resume: Resume::Never,
                collate: None,
                progress: &mut NoProgress,
                cancel: &cancel,
            },
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(summary.steps, 5, "{name}");
        assert!(
            (summary.epochs - 1.0).abs() < 1e-12,
            "{name}: one epoch, got {}",
            summary.epochs
        );

        let log = MetricsLog::read(&dir.path().join("metrics.jsonl")).expect("log");
        let want: Vec<f64> = run["losses"]
            .as_array()
            .expect("losses")
            .iter()
            .map(|v| v.as_f64().expect("loss"))
            .collect();
        assert_eq!(log.len(), want.len(), "{name}");
        for (rec, w) in log.iter().zip(&want) {
            assert!(
                (rec.loss - w).abs() <= 1e-4,
                "{name} step {}: loss {} vs torch {w}",
                rec.step,
                rec.loss
            );
        }
        let norms = run["grad_norms"].as_array().expect("norms");
        for (rec, w) in log.iter().zip(norms) {
            let w = w.as_f64().expect("norm");
            let got = rec.grad_norm.expect("grad norm logged when clipping");
            assert!(
                (got - w).abs() <= 1e-4 * w,
                "{name} step {}: grad norm {got} vs {w}",
                rec.step
            );
        }
        if norms.is_empty() {
            assert!(log.iter().all(|r| r.grad_norm.is_none()));
        }
        for (n, got) in model.weights() {
            let want = fixtures::floats(&run["final"][&n]);
            let d = fixtures::rel_max_diff(&got, &want);
            assert!(d <= 1e-4, "{name} {n}: relative diff {d}");
            let init = fixtures::floats(&run["init"][&n]);
            assert!(
                fixtures::abs_max_diff(&init, &want) > 1e-4,
                "{name} {n} must have moved"
            );
        }
    }
}
