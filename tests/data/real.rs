//! The real Rotten Tomatoes set (from `scripts/fetch-data.sh`) with the real MiniLM tokenizer
//! (from `$PEFTC_TEST_ASSETS/all-MiniLM-L6-v2`). Skipped when either is absent.
//!
//! Reference figures from the Python `tokenizers` package on the same files:
//! ```python
//! t = Tokenizer.from_file(".../all-MiniLM-L6-v2/tokenizer.json"); t.no_truncation(); t.no_padding()
//! rows = [json.loads(l) for l in open("examples/data/rotten_tomatoes.jsonl")]
//! t.encode(rows[0]["text"]).ids   # [101, 1037, 2093, 1011, 3178, 5988, 3040, 2465, 1012, 102]
//! sum(len(e.ids) for e in t.encode_batch([r["text"] for r in rows]))   # 345858
//! ```

use std::path::PathBuf;

use peftc::runtime::data::{ModelTokenizer, SourceFormat, SplitPart, SplitSize, SplitSpec};

use super::{classify, spec, Dir};

fn assets() -> PathBuf {
    std::env::var_os("PEFTC_TEST_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/assets"))
}

#[test]
fn rotten_tomatoes_with_minilm() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let data = root.join("examples/data/rotten_tomatoes.jsonl");
    let tok_dir = assets().join("all-MiniLM-L6-v2");
    if !data.is_file() || !tok_dir.join("tokenizer.json").is_file() {
        println!(
            "skipped: needs examples/data/rotten_tomatoes.jsonl (scripts/fetch-data.sh) and {}",
            tok_dir.display()
        );
        return;
    }
    let tok = ModelTokenizer::from_dir(&tok_dir).unwrap();
    let dir = Dir::new();
    let mut s = spec(
        SourceFormat::Jsonl,
        data.to_str().unwrap(),
        classify("text", "label", &["negative", "positive"]),
    );
    let full = peftc::runtime::data::prepare(&s, &tok, &dir.opts()).unwrap();
    let ex = &full.splits[0].examples;
    assert_eq!(ex.len(), 12808);
    assert_eq!(
        ex[0].input_ids,
        vec![101, 1037, 2093, 1011, 3178, 5988, 3040, 2465, 1012, 102]
    );
    assert_eq!(ex[0].class_label, Some(1));
    assert_eq!(full.summary.splits[0].tokens, 345858);
    let labels: Vec<usize> = full.summary.splits[0]
        .labels
        .iter()
        .map(|l| l.count)
        .collect();
    assert_eq!(labels, vec![5405, 7403]);
    s.split = SplitSpec::Sizes {
        parts: vec![
            SplitPart {
                name: "train".into(),
                size: SplitSize::Percent(90.0),
            },
            SplitPart {
                name: "eval".into(),
                size: SplitSize::Percent(10.0),
            },
        ],
        seed: 7,
    };
    let d = peftc::runtime::data::prepare(&s, &tok, &dir.opts()).unwrap();
    assert_eq!(d.split("train").unwrap().len(), 11527);
    assert_eq!(d.split("eval").unwrap().len(), 1281);
}
