//! The serialised shape of `DatasetSpec` (what the planner writes into stage configs).

use peftc::runtime::data::{
    DatasetSpec, FieldMapping, SourceFormat, SplitPart, SplitSize, SplitSpec, Template, Truncation,
};

#[test]
fn json_shape_round_trips() {
    let text = r#"{
        "source": {"format": "jsonl", "paths": ["data/*.jsonl"]},
        "mapping": {"kind": "instruction", "prompt": "q", "input": "ctx", "completion": "a"},
        "template": {"kind": "custom", "template": "Q: {prompt}\nA: {completion}"},
        "max_len": 512,
        "truncation": "left",
        "packing": true,
        "split": {"kind": "sizes", "seed": 7, "parts": [
            {"name": "train", "size": {"percent": 90.0}},
            {"name": "eval", "size": {"count": 100}}
        ]},
        "dedupe": true,
        "limit": 1000
    }"#;
    let spec: DatasetSpec = serde_json::from_str(text).unwrap();
    assert_eq!(spec.source.format, SourceFormat::Jsonl);
    assert_eq!(
        spec.mapping,
        FieldMapping::Instruction {
            prompt: "q".into(),
            input: Some("ctx".into()),
            completion: "a".into(),
            system: None
        }
    );
    assert_eq!(spec.template, Template::Custom("Q: {prompt}\nA: {completion}".into()));
    assert!(spec.completion_only, "completion_only defaults to true");
    assert_eq!(spec.truncation, Truncation::Left);
    assert_eq!(
        spec.split,
        SplitSpec::Sizes {
            parts: vec![
                SplitPart { name: "train".into(), size: SplitSize::Percent(90.0) },
                SplitPart { name: "eval".into(), size: SplitSize::Count(100) },
            ],
            seed: 7
        }
    );
    assert!(!spec.skip_invalid);
    let again: DatasetSpec = serde_json::from_value(serde_json::to_value(&spec).unwrap()).unwrap();
    assert_eq!(again, spec);
    // Unit variants serialise as a bare kind.
    let t = serde_json::to_value(Template::ChatTemplate).unwrap();
    assert_eq!(t, serde_json::json!({"kind": "chat_template"}));
    // Unknown fields are refused.
    let bad = text.replace("\"dedupe\"", "\"dedup\"");
    let e = serde_json::from_str::<DatasetSpec>(&bad).unwrap_err();
    assert!(e.to_string().starts_with("unknown field `dedup`"), "{e}");
}
