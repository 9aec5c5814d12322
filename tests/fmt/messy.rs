//! Snapshots of messy inputs and their canonical layout.
use peftc::fmt::{format_source, FormatError};

fn check(name: &str, src: &str) {
    let out = format_source(src).unwrap();
    assert_eq!(format_source(&out).unwrap(), out, "{name}: not idempotent");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fmt/snapshots");
    insta::with_settings!({ snapshot_path => dir, prepend_module_to_snapshot => false, omit_expression => true }, {
        insta::assert_snapshot!(name, format!("----- INPUT\n{src}\n----- OUTPUT\n{out}"));
    });
}

#[test]
fn one_line_declarations_get_one_field_per_line() {
    check("one_line", "adapter a=lora{r=8,alpha=16,targets=[q_proj,v_proj]}\ntrain t{model=m,adapters=[a],data=d.train,lr=2e-4,schedule=cosine{warmup=10%}}");
}

#[test]
fn comments_and_doc_comments_stay_in_place() {
    check(
        "comments",
        "// header\n\n\n/// The base.\nmodel m = hf(\"gpt2\")   // trailing\n/// Doc of a.\nadapter a = lora {\n    // before r\n    r = 8, // eight\n    /// alpha doc\n    alpha = 16\n    // dangling at the end\n}\n// last words\n",
    );
}

#[test]
fn blank_lines_collapse_and_long_lists_break() {
    check(
        "blank_lines",
        "model m = hf(\"org/a-rather-long-model-name\")\n\n\n\n\neval e {\n  model = t\n\n\n  data = d.eval\n  metrics = [loss, perplexity, accuracy, f1, exact_match, loss, perplexity, accuracy, f1, exact_match]\n  gate accuracy>=baseline.accuracy+0.05\n  gate  loss<-1*2\n}\n",
    );
}

#[test]
fn multi_line_records_and_lists_keep_their_lines() {
    check(
        "multi_line",
        "dataset d = jsonl(\"a.jsonl\") {\n  split = {\n    train = 90%\n    eval = 10%   // held out\n  }\n  labels = [\n    \"neg\", // bad\n    \"pos\"\n  ]\n  template = \"### {prompt}\\n{completion}\"\n}\nuse std.recipes.{lora_default,qlora}\nexport t.a to \"out/a\" as peft { serve_on = vllm }\nmerge mm = base + t.a\nlet lr = 2e-4\neval e { adapters = mix { t.a: 0.7, t.b: 0.3 } }\n",
    );
}

#[test]
fn syntax_errors_are_refused() {
    let err = format_source("adapter a = lora { r = }\n").unwrap_err();
    assert!(
        matches!(err, FormatError::Syntax { count: 1, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("E0001"), "{err}");
}
