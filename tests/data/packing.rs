//! Packing concatenates whole examples in order up to `max_len`, labels travelling along.

use peftc::runtime::batch::Example;
use peftc::runtime::data::{pack, FieldMapping, SourceFormat};

use super::{run, spec, tokenizer, Dir};

fn ex(n: usize, start: u32) -> Example {
    Example {
        input_ids: (start..start + n as u32).collect(),
        labels: (start..start + n as u32)
            .map(|i| if i % 2 == 0 { -100 } else { i as i64 })
            .collect(),
        class_label: None,
        packed: Vec::new(),
    }
}

#[test]
fn greedy_in_order() {
    let packed = pack(&[ex(3, 0), ex(4, 10), ex(2, 20), ex(9, 30), ex(1, 40)], 8);
    let lens: Vec<usize> = packed.iter().map(|e| e.input_ids.len()).collect();
    assert_eq!(lens, vec![7, 2, 9, 1]);
    assert_eq!(packed[0].input_ids, vec![0, 1, 2, 10, 11, 12, 13]);
    assert_eq!(packed[0].labels, vec![-100, 1, -100, -100, 11, -100, 13]);
    assert_eq!(packed[1].input_ids, vec![20, 21]);
    // Each sequence remembers its examples; one example alone is not packed.
    assert_eq!(packed[0].packed, vec![3, 4]);
    assert!(packed[1].packed.is_empty());
    assert_eq!(packed[0].mask_row(), vec![1, 1, 1, 2, 2, 2, 2]);
}

#[test]
fn pipeline_packs_each_split_and_counts_sequences() {
    let dir = Dir::new();
    let mut lines = String::new();
    for i in 0..20 {
        lines.push_str(&format!("{{\"text\": \"hello world {i}\"}}\n"));
    }
    dir.write("d.jsonl", &lines);
    let tok = tokenizer("bpe");
    let mut s = spec(
        SourceFormat::Jsonl,
        "d.jsonl",
        FieldMapping::Text {
            text: "text".into(),
        },
    );
    let plain = run(&s, &tok, &dir);
    let total: usize = plain.splits[0]
        .examples
        .iter()
        .map(|e| e.input_ids.len())
        .sum();
    s.packing = true;
    s.max_len = Some(32);
    let d = run(&s, &tok, &dir);
    let packed = &d.splits[0].examples;
    let flat: Vec<u32> = packed.iter().flat_map(|e| e.input_ids.clone()).collect();
    let want: Vec<u32> = plain.splits[0]
        .examples
        .iter()
        .flat_map(|e| e.input_ids.clone())
        .collect();
    assert_eq!(flat, want);
    assert_eq!(flat.len(), total);
    assert!(packed.iter().all(|e| e.input_ids.len() <= 32));
    assert_eq!(d.summary.splits[0].examples, 20);
    assert_eq!(d.summary.splits[0].sequences, packed.len());
    assert_eq!(packed.len(), pack(&plain.splits[0].examples, 32).len());
    // The lengths survive the tokenized-data file.
    let file = dir.0.path().join("tok.bin");
    peftc::runtime::data::save(&d, &file).unwrap();
    let back = peftc::runtime::data::load(&file).unwrap();
    assert_eq!(back.splits[0].examples, d.splits[0].examples);
    assert!(back.splits[0].examples.iter().any(|e| e.packed.len() > 1));
}
