//! Bytes that are not UTF-8 and byte order marks, in every line-based format: a bad line is a row
//! error at its file:line (skipped under `skip_invalid`), a JSON array fails naming the line,
//! and a leading UTF-8 BOM is dropped.

use peftc::runtime::data::{prepare, FieldMapping, SourceFormat, TextUnit};

use super::{classify, ids, run, spec, tokenizer, Dir};

const LABELS: &[&str] = &["negative", "positive"];
const BOM: &[u8] = b"\xEF\xBB\xBF";

fn write(dir: &Dir, name: &str, bytes: &[u8]) {
    std::fs::write(dir.path().join(name), bytes).unwrap();
}

/// The first ids of each example of `file` read as `format` (classification).
fn classified(dir: &Dir, format: SourceFormat, file: &str) -> Vec<Vec<u32>> {
    let d = run(
        &spec(format, file, classify("text", "label", LABELS)),
        &tokenizer("wordpiece"),
        dir,
    );
    d.splits[0]
        .examples
        .iter()
        .map(|e| e.input_ids.clone())
        .collect()
}

/// The error text of preparing `file`, or the warnings under `skip_invalid`.
fn prepared(dir: &Dir, format: SourceFormat, file: &str, skip: bool) -> Result<usize, String> {
    let mut s = spec(format, file, classify("text", "label", LABELS));
    s.skip_invalid = skip;
    match prepare(&s, &tokenizer("wordpiece"), &dir.opts()) {
        Ok(d) => Ok(d.splits[0].examples.len()),
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn a_leading_bom_is_dropped_in_every_format() {
    let dir = Dir::new();
    let jsonl = b"{\"text\": \"hello world\", \"label\": \"positive\"}\n";
    write(&dir, "plain.jsonl", jsonl);
    write(&dir, "bom.jsonl", &[BOM, jsonl].concat());
    let json = b"[{\"text\": \"hello world\", \"label\": \"positive\"}]";
    write(&dir, "bom.json", &[BOM, json].concat());
    let csv = b"text,label\nhello world,positive\n";
    write(&dir, "bom.csv", &[BOM, csv].concat());
    write(
        &dir,
        "bom.tsv",
        &[BOM, b"text\tlabel\nhello world\tpositive\n"].concat(),
    );
    let want = classified(&dir, SourceFormat::Jsonl, "plain.jsonl");
    assert_eq!(classified(&dir, SourceFormat::Jsonl, "bom.jsonl"), want);
    assert_eq!(classified(&dir, SourceFormat::Json, "bom.json"), want);
    assert_eq!(classified(&dir, SourceFormat::Csv, "bom.csv"), want);
    assert_eq!(classified(&dir, SourceFormat::Tsv, "bom.tsv"), want);

    // Text, per line and per file: the BOM is not part of the first text.
    write(&dir, "bom.txt", &[BOM, b"hello world\n"].concat());
    let tok = tokenizer("bpe");
    let mut s = spec(
        SourceFormat::Text,
        "bom.txt",
        FieldMapping::Text {
            text: "text".into(),
        },
    );
    let eos = tok.eos_id().unwrap();
    let mut want = ids(&tok, "hello world");
    want.push(eos);
    assert_eq!(run(&s, &tok, &dir).splits[0].examples[0].input_ids, want);
    s.source.text_unit = TextUnit::File;
    let mut want = ids(&tok, "hello world\n");
    want.push(eos);
    assert_eq!(run(&s, &tok, &dir).splits[0].examples[0].input_ids, want);
}

#[test]
fn a_jsonl_line_that_is_not_utf8_is_a_row_error_at_its_line() {
    let dir = Dir::new();
    write(
        &dir,
        "d.jsonl",
        b"{\"text\": \"fine\", \"label\": \"positive\"}\n{\"text\": \"bad \xFF\", \"label\": \"negative\"}\n{\"text\": \"also fine\", \"label\": \"negative\"}\n",
    );
    let e = prepared(&dir, SourceFormat::Jsonl, "d.jsonl", false).unwrap_err();
    assert_eq!(
        e,
        "d.jsonl:2: malformed JSONL record: invalid UTF-8 (byte 0xFF at column 15); data files must be UTF-8"
    );
    assert_eq!(prepared(&dir, SourceFormat::Jsonl, "d.jsonl", true), Ok(2));
}

#[test]
fn csv_tsv_and_text_lines_that_are_not_utf8_are_row_errors_at_their_line() {
    let dir = Dir::new();
    write(
        &dir,
        "d.csv",
        b"text,label\nfine,positive\nbad \xFF,negative\nalso fine,negative\n",
    );
    let e = prepared(&dir, SourceFormat::Csv, "d.csv", false).unwrap_err();
    assert!(
        e.starts_with("d.csv:3: malformed CSV record: invalid UTF-8"),
        "{e}"
    );
    assert_eq!(prepared(&dir, SourceFormat::Csv, "d.csv", true), Ok(2));

    write(&dir, "t.txt", b"fine\nbad \xFF\nalso fine\n");
    let tok = tokenizer("bpe");
    let mut s = spec(
        SourceFormat::Text,
        "t.txt",
        FieldMapping::Text {
            text: "text".into(),
        },
    );
    let e = prepare(&s, &tok, &dir.opts()).unwrap_err().to_string();
    assert_eq!(
        e,
        "t.txt:2: malformed text record: invalid UTF-8 (byte 0xFF at column 5); data files must be UTF-8"
    );
    s.skip_invalid = true;
    assert_eq!(
        prepare(&s, &tok, &dir.opts()).unwrap().splits[0]
            .examples
            .len(),
        2
    );
    s.skip_invalid = false;
    s.source.text_unit = TextUnit::File;
    let e = prepare(&s, &tok, &dir.opts()).unwrap_err().to_string();
    assert!(
        e.starts_with("t.txt:2: malformed text record: invalid UTF-8"),
        "{e}"
    );
}

#[test]
fn a_json_array_that_is_not_utf8_fails_naming_the_line() {
    let dir = Dir::new();
    write(
        &dir,
        "d.json",
        b"[\n{\"text\": \"fine\", \"label\": \"positive\"},\n{\"text\": \"b\xFF\", \"label\": \"negative\"}\n]\n",
    );
    let e = prepared(&dir, SourceFormat::Json, "d.json", false).unwrap_err();
    assert_eq!(
        e,
        "d.json:3: the JSON file is not valid UTF-8: invalid UTF-8 (byte 0xFF at column 12); data files must be UTF-8"
    );
    // Not a row: skip_invalid cannot skip part of an array.
    let e = prepared(&dir, SourceFormat::Json, "d.json", true).unwrap_err();
    assert!(e.contains("not valid UTF-8"), "{e}");
}
