//! Every data error with its exact rendering (snapshots): file, line, field, and the `.peft`
//! span of the declaration when the caller passes one.

use peftc::runtime::data::{
    prepare, DataError, DatasetSpec, FieldMapping, MappingSpan, SourceFormat, SplitPart, SplitSize,
    SplitSpec, Template,
};

use super::{classify, render_diag, spec, tokenizer, Dir};

const PEFT: &str = "dataset reviews = jsonl(\"d.jsonl\") {\n  text  = field(\"text\")\n  label = field(\"label\")\n  labels = [\"negative\", \"positive\"]\n}\n";

fn peft_span() -> MappingSpan {
    let start = PEFT.find("label = ").unwrap();
    MappingSpan::from((
        "sentiment.peft".to_owned(),
        PEFT.to_owned(),
        start..start + 22,
    ))
}

fn reviews() -> DatasetSpec {
    spec(
        SourceFormat::Jsonl,
        "d.jsonl",
        classify("text", "label", &["negative", "positive"]),
    )
}

fn fail(dir: &Dir, s: &DatasetSpec, with_span: bool) -> DataError {
    let opts = dir.opts().with_span(with_span.then(peft_span));
    prepare(s, &tokenizer("wordpiece"), &opts).unwrap_err()
}

fn one(line: &str) -> Dir {
    let dir = Dir::new();
    dir.write(
        "d.jsonl",
        &format!("{{\"text\": \"fine\", \"label\": \"positive\"}}\n{line}\n"),
    );
    dir
}

#[test]
fn malformed_line() {
    let e = fail(&one("{\"text\": \"oops\", \"label\": "), &reviews(), false);
    insta::assert_snapshot!(render_diag(&e));
}

#[test]
fn missing_field_with_peft_span() {
    let e = fail(
        &one("{\"txt\": \"oops\", \"label\": \"positive\"}"),
        &reviews(),
        true,
    );
    assert!(matches!(&e, DataError::MissingField { field, .. } if field == "text"));
    insta::assert_snapshot!(render_diag(&e));
}

#[test]
fn wrong_type() {
    let e = fail(
        &one("{\"text\": [\"oops\"], \"label\": \"positive\"}"),
        &reviews(),
        true,
    );
    insta::assert_snapshot!(render_diag(&e));
}

#[test]
fn unknown_label() {
    let e = fail(
        &one("{\"text\": \"oops\", \"label\": \"neutral\"}"),
        &reviews(),
        true,
    );
    assert_eq!(
        e.to_string(),
        "d.jsonl:2: label \"neutral\" in field `label` is not one of the declared labels [negative, positive]"
    );
    insta::assert_snapshot!(render_diag(&e));
}

#[test]
fn empty_dataset() {
    let dir = Dir::new();
    dir.write("d.jsonl", "\n\n");
    let e = fail(&dir, &reviews(), true);
    insta::assert_snapshot!(render_diag(&e));
}

#[test]
fn no_files() {
    let dir = Dir::new();
    let e = fail(&dir, &reviews(), true);
    assert_eq!(e.to_string(), "no file matches `d.jsonl`");
}

fn many_bad() -> Dir {
    let dir = Dir::new();
    let mut s = String::new();
    for i in 0..15 {
        s.push_str(&format!(
            "{{\"text\": \"row {i}\", \"label\": \"positive\"}}\n"
        ));
        if i < 12 {
            s.push_str(&format!(
                "{{\"text\": \"bad {i}\", \"label\": {}}}\n",
                5 + i
            ));
        }
    }
    dir.write("d.jsonl", &s);
    dir
}

#[test]
fn several_bad_rows_reported_together() {
    let e = fail(&many_bad(), &reviews(), false);
    match &e {
        DataError::InvalidRows { count, first, .. } => {
            assert_eq!(*count, 12);
            assert_eq!(first.len(), 10);
        }
        other => panic!("expected InvalidRows, got {other:?}"),
    }
    insta::assert_snapshot!(render_diag(&e));
}

#[test]
fn skip_invalid_drops_with_a_warning() {
    let mut s = reviews();
    s.skip_invalid = true;
    let d = prepare(&s, &tokenizer("wordpiece"), &many_bad().opts()).unwrap();
    assert_eq!(d.splits[0].examples.len(), 15);
    assert_eq!(d.summary.invalid_rows, 12);
    assert_eq!(d.summary.rows_read, 27);
    assert_eq!(d.warnings.len(), 1);
    assert_eq!(d.warnings[0].message, "skipped 12 invalid rows");
    assert_eq!(d.warnings[0].examples.len(), 10);
    assert_eq!(
        d.warnings[0].examples[0],
        "d.jsonl:2: label 5 in field `label` is not one of the declared labels [negative, positive]"
    );
}

#[test]
fn csv_ragged_row_and_json_element() {
    let dir = Dir::new();
    dir.write(
        "d.csv",
        "text,label\nfine,positive\n\"oops\",positive,extra\n",
    );
    let s = spec(
        SourceFormat::Csv,
        "d.csv",
        classify("text", "label", &["negative", "positive"]),
    );
    let e = fail(&dir, &s, false);
    insta::assert_snapshot!("csv_ragged", e.to_string());
    dir.write("d.json", "[{\"text\": \"fine\", \"label\": 1}, 3]");
    let s = spec(
        SourceFormat::Json,
        "d.json",
        classify("text", "label", &["negative", "positive"]),
    );
    let e = fail(&dir, &s, false);
    assert_eq!(
        e.to_string(),
        "d.json element 2: malformed JSON record: expected an object, found a number"
    );
}

#[test]
fn unknown_template_hole() {
    let dir = Dir::new();
    dir.write("d.jsonl", "{\"text\": \"more\", \"label\": \"negative\"}\n");
    let mut s = reviews();
    s.template = Template::Custom("Review: {text} ({stars} stars)".into());
    let e = fail(&dir, &s, false);
    assert_eq!(
        e.to_string(),
        "d.jsonl:1: template hole `{stars}` is neither a role nor a field of the row (the row has: text, label)"
    );
}

#[test]
fn split_errors() {
    let dir = one("{\"text\": \"more\", \"label\": \"negative\"}");
    let mut s = reviews();
    let part = |name: &str, size| SplitPart {
        name: name.into(),
        size,
    };
    s.split = SplitSpec::Sizes {
        parts: vec![
            part("train", SplitSize::Percent(90.0)),
            part("eval", SplitSize::Percent(20.0)),
        ],
        seed: 1,
    };
    assert_eq!(
        fail(&dir, &s, false).to_string(),
        "split sizes ask for train = 90%, eval = 20% but the dataset has 2 rows"
    );
    s.split = SplitSpec::Sizes {
        parts: vec![
            part("train", SplitSize::Percent(90.0)),
            part("eval", SplitSize::Percent(10.0)),
        ],
        seed: 1,
    };
    assert_eq!(
        fail(&dir, &s, false).to_string(),
        "split `eval` is empty (2 rows in all)"
    );
}

#[test]
fn invalid_combinations() {
    let dir = one("{\"text\": \"more\", \"label\": \"negative\"}");
    let mut s = reviews();
    s.template = Template::Alpaca;
    let e = fail(&dir, &s, true);
    insta::assert_snapshot!(render_diag(&e));
    let mut s = spec(
        SourceFormat::Jsonl,
        "d.jsonl",
        FieldMapping::Text {
            text: "text".into(),
        },
    );
    s.packing = true;
    assert_eq!(
        fail(&dir, &s, false).to_string(),
        "invalid dataset settings: `packing = true` needs `max_len`"
    );
}

#[test]
fn error_codes_are_unique() {
    // Every variant's code, listed by hand; a duplicate would make `peftc explain` ambiguous.
    let src = include_str!("../../src/runtime/data/error.rs");
    let codes: Vec<&str> = src
        .match_indices("code(peftc::data::")
        .map(|(i, _)| &src[i..i + src[i..].find(')').unwrap()])
        .collect();
    let unique: std::collections::HashSet<_> = codes.iter().collect();
    assert_eq!(unique.len(), codes.len());
    assert!(codes.len() >= 18, "{}", codes.len());
}
