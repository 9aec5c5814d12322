//! Wall time of a fully cached run of a 50-stage plan whose three source stages read 100 MB
//! files each: after the first run the files are recognised by stat, so a cached run costs
//! key computation, entry verification by stat and the stat-cache load/save.
//!
//! Run: `cargo bench --bench cache` (add `--profile dev` on a shared machine).

use criterion::{criterion_group, criterion_main, Criterion};
use peftc::exec::{plan_status, run, Cache, RunConfig, StageContext, StageOutcome, StatusConfig};
use peftc::plan::{Plan, Stage};
use serde_json::json;
use std::io::Write;
use std::time::Instant;

const BIG: usize = 100 << 20;

fn setup() -> (tempfile::TempDir, Plan) {
    let dir = tempfile::tempdir().expect("temp dir");
    let block: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for f in 0..3u8 {
        let mut file =
            std::fs::File::create(dir.path().join(format!("shard-{f}.bin"))).expect("create");
        for i in 0..BIG / block.len() {
            let mut b = block.clone();
            b[0] = f;
            b[1] = i as u8;
            file.write_all(&b).expect("write");
        }
    }
    let mut stages = Vec::new();
    for f in 0..3 {
        stages.push(
            Stage::new(format!("load{f}"), "load", json!({ "shard": f }))
                .file("weights", format!("shard-{f}.bin")),
        );
    }
    for i in 3..50 {
        let (a, b) = if i < 6 {
            (format!("load{}", i % 3), format!("load{}", (i + 1) % 3))
        } else {
            (format!("s{}", i - 3), format!("s{}", i - 2))
        };
        let stage = Stage::new(
            format!("s{i}"),
            "mix",
            json!({ "i": i, "lr": 1e-4, "rank": 8 }),
        )
        .input("a", a);
        stages.push(if i % 2 == 0 {
            stage.input("b", b)
        } else {
            stage
        });
    }
    (dir, Plan::new(stages).expect("plan"))
}

fn executor(stage: &Stage, ctx: &StageContext) -> anyhow::Result<StageOutcome> {
    std::fs::write(ctx.out_dir.join("out.json"), stage.config.to_string())?;
    Ok(StageOutcome::with_output(
        json!({ "id": stage.id.as_str().len() }),
    ))
}

fn bench(c: &mut Criterion) {
    let (dir, plan) = setup();
    let root = dir.path().to_path_buf();
    let cache_dir = root.join(".peft");
    let config = RunConfig::new(&root);
    let t0 = Instant::now();
    let first = run(
        &plan,
        &Cache::open(&cache_dir).expect("cache"),
        &config,
        &executor,
    )
    .expect("run");
    println!(
        "first run (hashes 3 x 100 MB, runs 50 stages): {:.0} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(first.executed().len(), 50);

    c.bench_function("fully cached run, 50 stages, 3 x 100 MB inputs", |b| {
        b.iter(|| {
            let cache = Cache::open(&cache_dir).expect("cache");
            let report = run(&plan, &cache, &config, &executor).expect("run");
            assert!(report.executed().is_empty());
            assert_eq!(cache.hasher().files_read(), 0);
        })
    });
    c.bench_function("plan status, 50 stages, 3 x 100 MB inputs", |b| {
        let status_config = StatusConfig {
            root: root.clone(),
            ..Default::default()
        };
        b.iter(|| {
            let cache = Cache::open(&cache_dir).expect("cache");
            plan_status(&plan, &cache, &status_config).expect("status")
        })
    });
}

/// Latency from a file save to the watcher's batch (50 ms debounce).
fn watch_latency(c: &mut Criterion) {
    use peftc::exec::{FileWatcher, WatchConfig};
    let dir = tempfile::tempdir().expect("temp dir");
    let file = std::path::absolute(dir.path().join("main.peft")).expect("path");
    std::fs::write(&file, "0").expect("write");
    let (tx, rx) = std::sync::mpsc::channel();
    let config = WatchConfig {
        debounce: std::time::Duration::from_millis(50),
    };
    let _watcher = FileWatcher::new(std::slice::from_ref(&file), config, move |b| {
        let _ = tx.send(b);
    })
    .expect("watch");
    let mut n = 0u64;
    c.bench_function("watch: save to batch (50 ms debounce)", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let t0 = Instant::now();
                std::fs::write(&file, n.to_string()).expect("write");
                rx.recv_timeout(std::time::Duration::from_secs(5))
                    .expect("batch");
                total += t0.elapsed();
                while rx.try_recv().is_ok() {}
            }
            total
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench, watch_latency
}
criterion_main!(benches);
