//! Each source format reads the same three rows; nested paths, globs, text units.

use peftc::runtime::data::{FieldMapping, SourceFormat, TextUnit};

use super::{classify, ids, run, spec, tokenizer, Dir};

const LABELS: &[&str] = &["negative", "positive"];

/// The class labels and first ids of each example of the single split.
fn digest(
    format: SourceFormat,
    file: &str,
    dir: &Dir,
    mapping: FieldMapping,
) -> Vec<(Option<u32>, Vec<u32>)> {
    let tok = tokenizer("wordpiece");
    let d = run(&spec(format, file, mapping), &tok, dir);
    assert_eq!(d.splits.len(), 1);
    assert_eq!(d.splits[0].name, "train");
    d.splits[0]
        .examples
        .iter()
        .map(|e| (e.class_label, e.input_ids.clone()))
        .collect()
}

fn expected() -> Vec<(Option<u32>, Vec<u32>)> {
    let tok = tokenizer("wordpiece");
    let enc = |s: &str| {
        let mut v = vec![tok.token_id("[CLS]").unwrap()];
        v.extend(ids(&tok, s));
        v.push(tok.token_id("[SEP]").unwrap());
        v
    };
    vec![
        (Some(1), enc("The movie was great!")),
        (Some(0), enc("A dull, boring film")),
        (Some(1), enc("hello world")),
    ]
}

#[test]
fn jsonl_with_string_and_int_labels() {
    let dir = Dir::new();
    dir.write(
        "d.jsonl",
        "{\"text\": \"The movie was great!\", \"label\": \"positive\"}\n\n{\"text\": \"A dull, boring film\", \"label\": 0}\n{\"text\": \"hello world\", \"label\": \"1\"}\n",
    );
    let got = digest(
        SourceFormat::Jsonl,
        "d.jsonl",
        &dir,
        classify("text", "label", LABELS),
    );
    assert_eq!(got, expected());
}

#[test]
fn json_array() {
    let dir = Dir::new();
    dir.write(
        "d.json",
        r#"[{"text": "The movie was great!", "label": "positive"},
            {"text": "A dull, boring film", "label": "negative"},
            {"text": "hello world", "label": 1}]"#,
    );
    let got = digest(
        SourceFormat::Json,
        "d.json",
        &dir,
        classify("text", "label", LABELS),
    );
    assert_eq!(got, expected());
}

#[test]
fn csv_and_tsv() {
    let dir = Dir::new();
    dir.write(
        "d.csv",
        "label,text\npositive,The movie was great!\nnegative,\"A dull, boring film\"\n1,hello world\n",
    );
    dir.write(
        "d.tsv",
        "label\ttext\npositive\tThe movie was great!\nnegative\tA dull, boring film\n1\thello world\n",
    );
    let m = || classify("text", "label", LABELS);
    assert_eq!(digest(SourceFormat::Csv, "d.csv", &dir, m()), expected());
    assert_eq!(digest(SourceFormat::Tsv, "d.tsv", &dir, m()), expected());
}

#[test]
fn nested_paths_and_dotted_keys() {
    let dir = Dir::new();
    dir.write(
        "d.jsonl",
        concat!(
            "{\"review\": {\"body\": [\"The movie was great!\"]}, \"meta.label\": \"positive\"}\n",
            "{\"review\": {\"body\": [\"A dull, boring film\"]}, \"meta.label\": \"negative\"}\n",
            "{\"review\": {\"body\": [\"hello world\"]}, \"meta.label\": \"positive\"}\n",
        ),
    );
    let got = digest(
        SourceFormat::Jsonl,
        "d.jsonl",
        &dir,
        classify("review.body.0", "meta.label", LABELS),
    );
    assert_eq!(got, expected());
}

#[test]
fn text_lines_and_whole_files_with_glob() {
    let dir = Dir::new();
    dir.write("t/b.txt", "hello world\n");
    dir.write("t/a.txt", "The movie was great!\n\nA dull, boring film\n");
    let tok = tokenizer("bpe");
    let mut s = spec(
        SourceFormat::Text,
        "t/*.txt",
        FieldMapping::Text {
            text: "text".into(),
        },
    );
    let d = run(&s, &tok, &dir);
    let eos = tok.eos_id().unwrap();
    let texts: Vec<Vec<u32>> = d.splits[0]
        .examples
        .iter()
        .map(|e| e.input_ids.clone())
        .collect();
    let with_eos = |t: &str| {
        let mut v = ids(&tok, t);
        v.push(eos);
        v
    };
    // a.txt before b.txt (sorted glob), blank line skipped.
    assert_eq!(
        texts,
        vec![
            with_eos("The movie was great!"),
            with_eos("A dull, boring film"),
            with_eos("hello world")
        ]
    );
    assert_eq!(d.summary.files, vec!["t/a.txt", "t/b.txt"]);
    s.source.text_unit = TextUnit::File;
    let d = run(&s, &tok, &dir);
    assert_eq!(d.splits[0].examples.len(), 2);
    assert_eq!(
        d.splits[0].examples[0].input_ids,
        with_eos("The movie was great!\n\nA dull, boring film\n")
    );
}

#[test]
fn parquet_rows() {
    use std::sync::Arc;

    use parquet::basic::Compression;
    use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    let dir = Dir::new();
    let schema = Arc::new(
        parse_message_type("message m { REQUIRED BYTE_ARRAY text (UTF8); REQUIRED INT64 label; }")
            .unwrap(),
    );
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let file = std::fs::File::create(dir.path().join("d.parquet")).unwrap();
    let mut w = SerializedFileWriter::new(file, schema, props).unwrap();
    let texts = ["The movie was great!", "A dull, boring film", "hello world"];
    // Two row groups: rows 1-2, then row 3.
    for (t, l) in [(&texts[..2], &[1i64, 0][..]), (&texts[2..], &[1i64][..])] {
        let mut rg = w.next_row_group().unwrap();
        let mut c = rg.next_column().unwrap().unwrap();
        let v: Vec<ByteArray> = t.iter().map(|s| ByteArray::from(*s)).collect();
        c.typed::<ByteArrayType>()
            .write_batch(&v, None, None)
            .unwrap();
        c.close().unwrap();
        let mut c = rg.next_column().unwrap().unwrap();
        c.typed::<Int64Type>().write_batch(l, None, None).unwrap();
        c.close().unwrap();
        rg.close().unwrap();
    }
    w.close().unwrap();
    let got = digest(
        SourceFormat::Parquet,
        "d.parquet",
        &dir,
        classify("text", "label", LABELS),
    );
    assert_eq!(got, expected());
}

#[test]
fn tokenizer_ids_match_python() {
    let cases: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(super::fixtures().join("tokenize_cases.json")).unwrap(),
    )
    .unwrap();
    let mut checked = 0;
    for c in cases.as_array().unwrap() {
        let tok = tokenizer(c["tokenizer"].as_str().unwrap());
        let got = tok
            .tokenizer()
            .encode(c["text"].as_str().unwrap(), true)
            .unwrap();
        let want: Vec<u32> = serde_json::from_value(c["ids"].clone()).unwrap();
        assert_eq!(got.get_ids(), want.as_slice(), "{c}");
        checked += 1;
    }
    assert_eq!(checked, 12);
}
