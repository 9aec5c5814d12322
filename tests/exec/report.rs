//! The run report (REPORT.md + loss.svg from a JSONL loss log) and the lineage merge helper.

use peftc::exec::{
    merge_lineage, read_loss_jsonl, write_report, ExecError, LossPoint, MetricRow, ReportInput,
};
use serde_json::json;

#[test]
fn loss_jsonl_is_read_and_bad_lines_are_named() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("loss.jsonl");
    std::fs::write(&path, "{\"step\": 1, \"loss\": 2.5}\n\n{\"step\": 2, \"eval_loss\": 9}\n{\"step\": 3, \"loss\": 1.25}\n").expect("write");
    let points = read_loss_jsonl(&path).expect("read");
    assert_eq!(
        points,
        [
            LossPoint { step: 1, loss: 2.5 },
            LossPoint {
                step: 3,
                loss: 1.25
            }
        ]
    );

    std::fs::write(
        &path,
        "{\"step\": 1, \"loss\": 2.5}\n{\"step\": -1, \"loss\": 1}\n",
    )
    .expect("write");
    match read_loss_jsonl(&path) {
        Err(ExecError::BadJsonl { line, message, .. }) => {
            assert_eq!(line, 2);
            assert_eq!(message, "`step` is not an unsigned integer");
        }
        other => panic!("expected a bad line, got {other:?}"),
    }
}

#[test]
fn the_report_has_a_metrics_table_and_a_loss_plot() {
    let dir = tempfile::tempdir().expect("tmp");
    let loss: Vec<LossPoint> = (0..50)
        .map(|i| LossPoint {
            step: i,
            loss: 2.0 / (1.0 + i as f64),
        })
        .collect();
    let input = ReportInput {
        title: "sentiment adapter".into(),
        facts: vec![("base model".into(), "all-MiniLM-L6-v2".into())],
        metrics: vec![
            MetricRow {
                name: "accuracy".into(),
                value: 0.8125,
                baseline: Some(0.5),
                gate: Some(">= 0.80".into()),
                passed: Some(true),
            },
            MetricRow {
                name: "eval_loss".into(),
                value: 0.42,
                baseline: None,
                gate: None,
                passed: None,
            },
        ],
        loss,
    };
    let path = write_report(dir.path(), &input).expect("report");
    let md = std::fs::read_to_string(path).expect("md");
    assert_eq!(
        md,
        "# sentiment adapter\n\n- **base model**: all-MiniLM-L6-v2\n\n## Metrics\n\n\
         | metric | value | baseline | gate | verdict |\n| --- | ---: | ---: | --- | --- |\n\
         | accuracy | 0.8125 | 0.5000 | >= 0.80 | pass |\n| eval_loss | 0.4200 | - | - | - |\n\n\
         ## Training loss\n\n![training loss](loss.svg)\n\n50 points, loss 2.0000 at the first step, 0.0400 at the last.\n"
    );
    let svg = std::fs::read_to_string(dir.path().join("loss.svg")).expect("svg");
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
    assert!(svg.contains("training loss"));
    assert!(
        svg.contains("<polyline"),
        "the curve is drawn as a polyline"
    );
}

#[test]
fn lineage_merges_deeply_and_keeps_earlier_keys() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("peftc.lineage.json");
    merge_lineage(
        &path,
        &json!({"base": {"id": "m", "revision": "r1"}, "metrics": {"acc": 0.8}}),
    )
    .expect("merge");
    let doc = merge_lineage(
        &path,
        &json!({"metrics": {"loss": 0.3}, "base": {"revision": "r2"}, "peftc": "0.1.0"}),
    )
    .expect("merge");
    assert_eq!(
        doc,
        json!({"base": {"id": "m", "revision": "r2"}, "metrics": {"acc": 0.8, "loss": 0.3}, "peftc": "0.1.0"})
    );
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.starts_with("{\n  \"base\""));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).ok(),
        Some(doc)
    );
}
