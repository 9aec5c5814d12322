//! Resume after `kill -9`: a child process (this test binary re-invoked on this very test, with
//! `PEFTC_TRAIN_RESUME_CHILD` set) trains 20 steps with checkpoints every 4 steps and dropout on;
//! after step 11 it is killed with SIGKILL. The run is resumed here from its last checkpoint
//! (step 8, so steps 9-11 are replayed) and must end with adapters bit-identical to an
//! uninterrupted run, and with the same per-step log.

use super::checkpoints::{causal_examples, small_config};
use super::tiny::Tiny;
use peftc::runtime::train::checkpoint::{self, ADAPTER_FILE};
use peftc::runtime::train::log::MetricsLog;
use peftc::runtime::train::{train, NoProgress, Progress, Resume, TrainConfig, TrainRun};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "PEFTC_TRAIN_RESUME_CHILD";
const TEST_PATH: &str = "train::resume::resume_after_sigkill_matches_uninterrupted";
const KILL_AFTER: u64 = 11;

fn model() -> Tiny {
    let mut m = Tiny::random(11, None);
    m.dropout = 0.1;
    m
}

fn config() -> TrainConfig {
    small_config(20)
}

fn train_in(
    dir: &Path,
    resume: Resume,
    progress: &mut dyn Progress,
) -> (Tiny, peftc::runtime::train::TrainSummary) {
    let m = model();
    let flag = AtomicBool::new(false);
    let s = train(
        &m,
        &causal_examples(24, 9),
        &config(),
        TrainRun {
            out_dir: Some(dir),
            resume,
            collate: None,
            progress,
            cancel: &flag,
        },
    )
    .expect("train");
    (m, s)
}

/// Announces step 11 with a marker file, then blocks until killed.
struct StallAfter<'a> {
    dir: &'a Path,
}

impl Progress for StallAfter<'_> {
    fn on_step(&mut self, step: u64, _: u64, _: f64, _: f64) {
        if step == KILL_AFTER {
            let _ = std::fs::write(self.dir.join("reached"), step.to_string());
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

fn bits(m: &Tiny) -> Vec<(String, Vec<u32>)> {
    m.weights()
        .into_iter()
        .map(|(n, v)| (n, v.iter().map(|x| x.to_bits()).collect()))
        .collect()
}

#[test]
fn resume_after_sigkill_matches_uninterrupted() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        let dir = Path::new(&dir).to_path_buf();
        let _ = train_in(&dir, Resume::Never, &mut StallAfter { dir: &dir });
        return;
    }
    // Uninterrupted reference.
    let full = tempfile::tempdir().expect("dir");
    let (m_full, s_full) = train_in(full.path(), Resume::Never, &mut NoProgress);
    assert_eq!(s_full.steps, 20);

    // Killed child.
    let killed = tempfile::tempdir().expect("dir");
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args(["--exact", TEST_PATH, "--nocapture"])
        .env(CHILD_ENV, killed.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let marker = killed.path().join("reached");
    let start = Instant::now();
    while !marker.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("child exited before step {KILL_AFTER}: {status}");
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child did not reach step {KILL_AFTER} in 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("wait");
    assert!(!status.success());
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "killed by SIGKILL");
    }
    let ckpts: Vec<u64> = checkpoint::list(&killed.path().join("checkpoints"))
        .expect("list")
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(ckpts, vec![4, 8]);
    assert_eq!(
        MetricsLog::read(&killed.path().join("metrics.jsonl"))
            .expect("log")
            .len() as u64,
        KILL_AFTER
    );

    // Resume here.
    let (m_res, s_res) = train_in(killed.path(), Resume::IfPresent, &mut NoProgress);
    assert_eq!(s_res.resumed_from, Some(8));
    assert_eq!(s_res.steps, 20);
    assert_eq!(s_res.tokens_seen, s_full.tokens_seen);
    assert_eq!(bits(&m_res), bits(&m_full), "final adapters differ");
    let bytes = |d: &Path| {
        std::fs::read(
            d.join("checkpoints")
                .join("step-00000020")
                .join(ADAPTER_FILE),
        )
        .expect("adapter")
    };
    assert_eq!(bytes(killed.path()), bytes(full.path()));

    // The log reads as one run: steps 1..20, losses equal bit for bit.
    let a = MetricsLog::read(&full.path().join("metrics.jsonl")).expect("log");
    let b = MetricsLog::read(&killed.path().join("metrics.jsonl")).expect("log");
    assert_eq!(
        b.iter().map(|r| r.step).collect::<Vec<_>>(),
        (1..=20).collect::<Vec<_>>()
    );
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.loss.to_bits(), y.loss.to_bits(), "step {}", x.step);
        assert_eq!(x.lr.to_bits(), y.lr.to_bits(), "step {}", x.step);
    }
    // Dropout was on: the run is not the same as one without it.
    let mut no_drop = Tiny::random(11, None);
    no_drop.dropout = 0.0;
    assert_ne!(bits(&no_drop), bits(&m_full));
}
