//! Parse + check of generated programs of about 1,000 and 10,000 lines (hundreds of
//! declarations), to show checking is instant and scales linearly; the same check after a
//! one-character edit through a `ParseCache` (what `peftc lsp` and `peftc watch` do); the
//! whole `peftc check FILE` process (spawn, read, parse, check with data peeking, render) on the
//! same programs written to disk, with the model's shape from a stdlib preset; and 2,000
//! declarations of one real GGUF file (its header is read once per process).
use criterion::{criterion_group, criterion_main, Criterion};
use peftc::check::{self, MemoryWorld};
use peftc::syntax::ParseCache;
use std::path::Path;

/// A program of `blocks` repeated groups (34 lines each).
fn program(blocks: usize) -> String {
    let mut s = String::from("model llama = hf(\"HuggingFaceTB/SmolLM2-135M-Instruct\")\n");
    for i in 0..blocks {
        s.push_str(&format!(
            "/// Data set {i}.\ndataset d{i} = jsonl(\"data/qa.jsonl\") {{\n  prompt = field(\"q\")\n  completion = field(\"a\")\n  template = chatml\n  split = {{ train = 90%, eval = 10%, seed = {i} }}\n  max_len = 256\n}}\n\
adapter a{i} = lora {{\n  r = 8\n  alpha = 16\n  dropout = 0.05\n  targets = [q_proj, v_proj]\n}}\n\
train t{i} {{\n  model = llama\n  adapters = [a{i}]\n  data = d{i}.train\n  epochs = 1\n  batch = 4\n  accumulate = 2\n  lr = 2e-4\n  schedule = cosine {{ warmup = 10% }}\n  optimizer = adamw {{ weight_decay = 0.01 }}\n}}\n\
eval e{i} {{\n  model = t{i}\n  data = d{i}.eval\n  metrics = [loss, perplexity]\n  gate loss < baseline.loss\n}}\n\
// export of run {i}\nexport t{i}.a{i} to \"out/{i}\" as peft\n\n"
        ));
    }
    s
}

/// The rows every generated dataset reads: 100 question/answer pairs (the checker reads them and
/// sizes each split from them).
fn rows() -> String {
    (0..100)
        .map(|i| format!("{{\"q\":\"What is step {i}?\",\"a\":\"Step {i} of the recipe.\"}}\n"))
        .collect()
}

/// `peftc check FILE` as a user runs it, one process per iteration.
fn whole_process(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("data")).expect("data dir");
    std::fs::write(dir.path().join("data/qa.jsonl"), rows()).expect("data");
    let exe = env!("CARGO_BIN_EXE_peftc");
    let mut group = c.benchmark_group("whole process");
    group.sample_size(30);
    for lines in [1_000usize, 10_000] {
        let src = program(lines / 34);
        let file = dir.path().join(format!("p{lines}.peft"));
        std::fs::write(&file, &src).expect("program");
        let run = || {
            std::process::Command::new(exe)
                .arg("check")
                .arg(&file)
                .env("HF_HOME", dir.path().join("hf"))
                .output()
                .expect("peftc check")
        };
        let out = run();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        group.bench_function(
            format!("peftc check, {} lines, preset model", src.lines().count()),
            |b| b.iter(run),
        );
    }
    group.finish();
}

fn bench(c: &mut Criterion) {
    let mut world = MemoryWorld::new();
    world.add("/b/data/qa.jsonl", rows());
    for lines in [1_000usize, 10_000] {
        let blocks = lines / 34;
        let src = program(blocks);
        let checked = check::check_source(&world, Path::new("/b/p.peft"), &src);
        assert!(!checked.has_errors(), "{:?}", checked.diagnostics.first());
        c.bench_function(&format!("parse {} lines", src.lines().count()), |b| {
            b.iter(|| peftc::syntax::parse(&src))
        });
        c.bench_function(&format!("parse+check {} lines", src.lines().count()), |b| {
            b.iter(|| check::check_source(&world, Path::new("/b/p.peft"), &src))
        });
        // Alternate `r = 8` / `r = 9` in the middle adapter: one item re-parsed per check.
        let at = src.find(&format!("adapter a{} ", blocks / 2)).unwrap_or(0);
        let at = at + src[at..].find("r = 8").unwrap_or(0) + 4;
        let mut edited = src.clone();
        edited.replace_range(at..at + 1, "9");
        let cache = ParseCache::new();
        let mut flip = false;
        c.bench_function(
            &format!("re-check after an edit, {} lines", src.lines().count()),
            |b| {
                b.iter(|| {
                    flip = !flip;
                    let text = if flip { &edited } else { &src };
                    check::check_source_cached(&world, Path::new("/b/p.peft"), text, Some(&cache))
                })
            },
        );
    }
}

/// A real GGUF model (SmolLM2-135M Q4_1 from `scripts/fetch-assets.sh`): a check of 2,000
/// declarations of that one file, which reads its header once per process.
fn bench_gguf(c: &mut Criterion) {
    let root = std::env::var_os("PEFTC_TEST_ASSETS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/assets"));
    let gguf = root.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    if !gguf.is_file() {
        println!("GGUF benches skipped: run scripts/fetch-assets.sh");
        return;
    }
    let mut src = String::new();
    for i in 0..2_000 {
        src.push_str(&format!("model g{i} = gguf(\"{}\")\n", gguf.display()));
    }
    let world = check::RealWorld::from_env();
    let checked = check::check_source(&world, Path::new("/b/g.peft"), &src);
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics.first());
    c.bench_function("check 2,000 declarations of one GGUF file", |b| {
        b.iter(|| check::check_source(&world, Path::new("/b/g.peft"), &src))
    });
}

criterion_group!(benches, bench, whole_process, bench_gguf);
criterion_main!(benches);
