//! Tokenization throughput and memory of data preparation.
//!
//! Generates (once) a JSONL file of synthetic review rows of `PEFTC_BENCH_MB` megabytes
//! (default 100) under `target/bench-data/`, then streams it through
//! `prepare_to_file` (classification, MiniLM WordPiece tokenizer from
//! `$PEFTC_TEST_ASSETS/all-MiniLM-L6-v2`) and prints examples/s, MB/s and the process's peak
//! resident memory. Run each size in its own process so peak memory is per size:
//!
//! ```text
//! PEFTC_BENCH_MB=100  cargo bench --profile dev --bench tokenize
//! PEFTC_BENCH_MB=1000 cargo bench --profile dev --bench tokenize
//! python3 benches/tokenize_py.py target/bench-data/reviews-100mb.jsonl
//! ```
//!
//! With `PEFTC_BENCH_MODE=memory` it prepares in memory (`prepare`) instead, for comparison.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use peftc::runtime::data::split::SplitMix64;
use peftc::runtime::data::{
    prepare, prepare_to_file, DatasetSpec, FieldMapping, ModelTokenizer, PrepareOptions,
    SourceFormat, SourceSpec,
};

const WORDS: &[&str] = &[
    "the",
    "movie",
    "film",
    "was",
    "great",
    "boring",
    "acting",
    "plot",
    "characters",
    "director",
    "a",
    "an",
    "and",
    "but",
    "with",
    "without",
    "wonderful",
    "terrible",
    "story",
    "scenes",
    "music",
    "beautiful",
    "dull",
    "funny",
    "thrilling",
    "predictable",
    "cast",
    "performance",
    "screenplay",
    "visual",
    "effects",
    "emotional",
    "slow",
    "fast-paced",
    "masterpiece",
    "mess",
    "of",
    "in",
    "to",
    "is",
    "it",
    "this",
    "that",
    "really",
    "quite",
    "not",
    "very",
    "too",
    "cinematography",
    "soundtrack",
    "unforgettable",
    "overlong",
    "charming",
    "clumsy",
    "2019",
    "Hollywood",
    "sequel",
    "remake",
    "original",
    "audience",
    "critics",
    "ending",
    "twist",
];

fn generate(path: &Path, bytes: u64) -> std::io::Result<u64> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut rng = SplitMix64::new(42);
    let mut written = 0u64;
    let mut rows = 0u64;
    let mut line = String::new();
    while written < bytes {
        line.clear();
        line.push_str("{\"text\": \"");
        let n = 8 + rng.below(60) as usize;
        for i in 0..n {
            if i > 0 {
                line.push(' ');
            }
            line.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
        }
        line.push_str(".\", \"label\": \"");
        line.push_str(if rng.below(2) == 0 {
            "negative"
        } else {
            "positive"
        });
        line.push_str("\"}\n");
        out.write_all(line.as_bytes())?;
        written += line.len() as u64;
        rows += 1;
    }
    out.flush()?;
    Ok(rows)
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// CPU seconds (user + system) this process has used, from `/proc/self/stat` (100 ticks/s).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| {
        f.get(i)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (tick(11) + tick(12)) / 100.0
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mb: u64 = std::env::var("PEFTC_BENCH_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let assets = std::env::var_os("PEFTC_TEST_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/assets"));
    let tok_dir = assets.join("all-MiniLM-L6-v2");
    if !tok_dir.join("tokenizer.json").is_file() {
        println!("skipped: no tokenizer at {}", tok_dir.display());
        return;
    }
    let dir = root.join("target/bench-data");
    std::fs::create_dir_all(&dir).expect("create target/bench-data");
    let data = dir.join(format!("reviews-{mb}mb.jsonl"));
    if !data.is_file() {
        let t = Instant::now();
        let rows = generate(&data, mb * 1_000_000).expect("write bench data");
        println!(
            "generated {} ({rows} rows) in {:.1}s",
            data.display(),
            t.elapsed().as_secs_f64()
        );
    }
    let size = std::fs::metadata(&data).map(|m| m.len()).unwrap_or(0);
    let tok = ModelTokenizer::from_dir(&tok_dir).expect("load tokenizer");
    let spec = DatasetSpec::new(
        SourceSpec {
            format: SourceFormat::Jsonl,
            paths: vec![data.to_string_lossy().into_owned()],
            text_unit: Default::default(),
        },
        FieldMapping::Classification {
            text: "text".into(),
            text_pair: None,
            label: "label".into(),
            labels: vec!["negative".into(), "positive".into()],
        },
    );
    let opts = PrepareOptions::new(&dir);
    let before = peak_rss_mb();
    let mode = std::env::var("PEFTC_BENCH_MODE").unwrap_or_else(|_| "stream".into());
    let t = Instant::now();
    let cpu0 = cpu_secs();
    let (examples, tokens) = if mode == "memory" {
        let d = prepare(&spec, &tok, &opts).expect("prepare");
        (d.summary.splits[0].examples, d.summary.splits[0].tokens)
    } else {
        let out = dir.join(format!("reviews-{mb}mb.tokens"));
        let s = prepare_to_file(&spec, &tok, &opts, &out).expect("prepare_to_file");
        (s.splits[0].examples, s.splits[0].tokens)
    };
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    println!(
        "rust {mode}: {:.0} MB, {examples} examples, {tokens} tokens in {secs:.2}s ({cpu:.1} CPU s, {:.2} MB per CPU s): {:.0} examples/s, {:.2} MB/s, {:.0} tokens/s; peak RSS {:.0} MiB (after loading the tokenizer {:.0} MiB); threads {}",
        size as f64 / 1e6,
        size as f64 / 1e6 / cpu,
        examples as f64 / secs,
        size as f64 / 1e6 / secs,
        tokens as f64 / secs,
        peak_rss_mb(),
        before,
        rayon::current_num_threads(),
    );
}
