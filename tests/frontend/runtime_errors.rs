//! Every error kind of the runtime and the stages (each variant of each `thiserror` enum under
//! `src/runtime` and `src/stages`) either has a check-time diagnostic that refuses the same
//! mistake first, shown by a UI case that produces it, or a stated reason why it cannot be known
//! before compute. The variants are read from the source, so a new one fails this test until it
//! is placed here.
use super::support::{render_check, ui_world};
use std::collections::BTreeSet;
use std::path::Path;

/// What refuses a runtime error before compute.
enum Before {
    /// `peftc check` reports `code`, as the UI case `case` shows.
    Check(&'static str, &'static str),
    /// Not knowable before compute, and why.
    Compute(&'static str),
}
use Before::{Check, Compute};

const IO: Before = Compute("a file that exists at check time becomes unreadable during the run (permissions, a full disk, a removed file)");
const TENSOR: Before = Compute("a tensor operation failed inside candle (out of memory, a backend error); it depends on the device at run time");
const CACHE: Before = Compute(
    "the stage cache was corrupted or written by another version; the check never reads the cache",
);
const INTERNAL: Before = Compute("an invariant between runtime parts (batches built by the runtime itself); no .peft input reaches it");
const WEIGHTS: Before = Compute("the check reads config.json and GGUF headers, never weight files: a weight file missing a tensor or holding the wrong shape is found when it is loaded");
const ADAPTER_FILES: Before = Compute("adapter files are read by the stages that load adapters peftc wrote itself into its cache; their content is not known to the check");
const ROWS: Before = Compute("decided per row after tokenizing (rendered text, token counts, dedupe and skip_invalid change the rows); the check peeks only at the first 64 KiB of each file");

fn table() -> Vec<(&'static str, &'static str, Before)> {
    vec![
        // src/runtime/data/error.rs
        ("DataError", "Io", IO),
        ("DataError", "NoFiles", Check("E0401", "data_missing_file")),
        ("DataError", "BadGlob", Check("E0401", "data_missing_file")),
        ("DataError", "Malformed", Check("E1204", "data_malformed")),
        ("DataError", "MissingField", Check("E1201", "data_field_misspelt")),
        ("DataError", "WrongType", Check("E1202", "data_field_type")),
        ("DataError", "UnknownLabel", Check("E1203", "data_label_unknown")),
        ("DataError", "TemplateRow", Compute("the tokenizer's Jinja chat template is run on each row at tokenize time; it can fail on a row's content")),
        ("DataError", "EmptyRow", ROWS),
        ("DataError", "InvalidRows", Check("E1201", "data_field_misspelt")),
        ("DataError", "EmptyDataset", Check("E1204", "data_empty")),
        ("DataError", "EmptySplit", Check("E1215", "split_empty_part")),
        ("DataError", "SplitTooLarge", Check("E1215", "split_empty_part")),
        ("DataError", "InvalidSpec", Check("E0207", "split_over_100")),
        ("DataError", "UnknownHole", Check("E0403", "template_field_hole")),
        ("DataError", "Tokenizer", Check("E1208", "model_folder_pickled")),
        ("DataError", "Tokenize", Compute("the tokenizer failed on a row's text (tokenizers' own error), known only by tokenizing it")),
        ("DataError", "ChatTemplate", Check("E0305", "model_bert_causal")),
        ("DataError", "BadCache", CACHE),
        ("DataError", "NotUtf8", Check("E1204", "data_malformed")),
        ("PublishError", "Foreign", Compute("what stands at an export's destination is looked at by `peftc run`'s pre-flight, before any stage runs (the check never reads the destination: it may change until the run)")),
        ("PublishError", "ForeignFile", Compute("a file someone added inside an earlier export is found by `peftc run`'s pre-flight, before any stage runs")),
        ("PublishError", "Io", IO),
        // src/runtime/data/spec.rs
        ("RolesError", "NoInput", Check("E0402", "data_no_fields")),
        ("RolesError", "NoLabels", Check("E0402", "task_classify_needs_label")),
        // src/runtime/data/collate.rs
        ("CollateError", "Empty", INTERNAL),
        ("CollateError", "Mixed", INTERNAL),
        ("CollateError", "LabelLength", INTERNAL),
        ("CollateError", "Tensor", TENSOR),
        // src/runtime/train/error.rs
        ("TrainError", "InvalidConfig", Check("E0202", "type_range_dropout")),
        ("TrainError", "NoExamples", ROWS),
        ("TrainError", "NothingToTrain", Check("E0302", "target_unknown")),
        ("TrainError", "NoGradient", Compute("a guard against graph cuts in the model code (a fused op without backward); it depends on the code, not on the .peft input")),
        ("TrainError", "NonFiniteLoss", Compute("divergence is a property of the optimisation; W1206 warns of learning rates that usually diverge")),
        ("TrainError", "MissingLabels", Check("E0402", "data_no_fields")),
        ("TrainError", "Tensor", TENSOR),
        ("TrainError", "Io", IO),
        ("TrainError", "Checkpoint", CACHE),
        ("TrainError", "Cancelled", Compute("the user pressed Ctrl-C")),
        // src/runtime/eval/evaluate.rs
        ("EvalError", "InvalidConfig", Check("E0202", "type_range_dropout")),
        ("EvalError", "NoExamples", ROWS),
        ("EvalError", "NotApplicable", Check("E0503", "metric_for_task")),
        ("EvalError", "NeedsGenerate", INTERNAL),
        ("EvalError", "MissingLabels", Check("E1210", "metric_exact_match_no_completion")),
        ("EvalError", "Tensor", TENSOR),
        // src/runtime/models/error.rs, source.rs, bert_config.rs
        ("ModelError", "Load", Check("E1208", "model_folder_pickled")),
        ("ModelError", "Io", IO),
        ("ModelError", "Config", Check("E0304", "model_unsupported_arch")),
        ("ModelError", "UnknownArchitecture", Check("E0304", "model_unsupported_arch")),
        ("ModelError", "Tokenizer", Check("E1208", "model_folder_pickled")),
        ("ModelError", "Tensor", TENSOR),
        ("LoadError", "MissingTensor", WEIGHTS),
        ("LoadError", "ShapeMismatch", WEIGHTS),
        ("LoadError", "Other", Check("E1208", "model_folder_pickled")),
        ("BertConfigError", "Io", IO),
        ("BertConfigError", "Parse", Check("E0304", "model_unsupported_arch")),
        ("BertConfigError", "Invalid", Check("E0304", "model_unsupported_arch")),
        // src/runtime/quant/error.rs
        ("QuantError", "BadOption", Check("E0203", "type_unknown_schedule")),
        ("QuantError", "UnsupportedShape", WEIGHTS),
        ("QuantError", "MergeShape", Check("E1214", "combo_foreign_base")),
        ("QuantError", "BadCache", CACHE),
        ("QuantError", "BadGguf", Check("E0306", "model_bad_gguf")),
        ("QuantError", "Io", IO),
        ("QuantError", "Candle", TENSOR),
        // src/runtime/adapters/error.rs, bottleneck_config.rs
        ("AdapterError", "NoTarget", Check("E0302", "target_unknown")),
        ("AdapterError", "BadRegex", Check("E0302", "target_unknown")),
        ("AdapterError", "BadRank", Check("E0303", "rank_too_large")),
        ("AdapterError", "Unknown", Check("E0101", "name_unknown_adapter")),
        ("AdapterError", "Combine", Check("E1213", "combo_two_bottlenecks")),
        ("AdapterError", "Tensor", TENSOR),
        ("BottleneckError", "Unsupported", ADAPTER_FILES),
        ("BottleneckError", "ZeroWidth", Check("E0202", "type_range_dropout")),
        ("BottleneckError", "Io", IO),
        ("BottleneckError", "Tensor", TENSOR),
        // src/runtime/peft_format/error.rs
        ("PeftFormatError", "Io", IO),
        ("PeftFormatError", "Config", ADAPTER_FILES),
        ("PeftFormatError", "UnexpectedKey", ADAPTER_FILES),
        ("PeftFormatError", "Shape", Check("E1214", "combo_foreign_base")),
        ("PeftFormatError", "Empty", ADAPTER_FILES),
        ("PeftFormatError", "Adapter", Check("E0302", "target_unknown")),
        ("PeftFormatError", "Load", WEIGHTS),
        ("PeftFormatError", "Tensor", TENSOR),
    ]
}

/// `(enum, variant)` of every `#[derive(.. Error ..)] pub enum` under `dir`.
fn error_variants(dir: &Path, out: &mut BTreeSet<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            error_variants(&path, out);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(rest) = line.trim().strip_prefix("pub enum ") else {
                continue;
            };
            let derives_error = lines[..i]
                .iter()
                .rev()
                .take_while(|l| l.trim().starts_with("#[") || l.trim().starts_with("///"))
                .any(|l| l.contains("derive(") && l.contains("Error"));
            if !derives_error {
                continue;
            }
            let name = rest.split(|c: char| !c.is_alphanumeric()).next().unwrap();
            let mut depth = 0i32;
            for l in &lines[i + 1..] {
                let t = l.trim();
                if depth == 0 {
                    if t.starts_with('}') {
                        break;
                    }
                    let word: String = t.chars().take_while(|c| c.is_alphanumeric()).collect();
                    if word.chars().next().is_some_and(char::is_uppercase) {
                        out.insert((name.to_string(), word));
                    }
                }
                depth +=
                    l.matches(['{', '(']).count() as i32 - l.matches(['}', ')']).count() as i32;
            }
        }
    }
}

#[test]
fn every_runtime_error_is_refused_at_check_or_explained() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = BTreeSet::new();
    error_variants(&root.join("src/runtime"), &mut found);
    error_variants(&root.join("src/stages"), &mut found);
    let table = table();
    let listed: BTreeSet<(String, String)> = table
        .iter()
        .map(|(e, v, _)| (e.to_string(), v.to_string()))
        .collect();
    let unlisted: Vec<_> = found.difference(&listed).collect();
    assert!(
        unlisted.is_empty(),
        "runtime errors with no entry: {unlisted:?}"
    );
    let stale: Vec<_> = listed.difference(&found).collect();
    assert!(
        stale.is_empty(),
        "entries for errors that no longer exist: {stale:?}"
    );
    let world = ui_world();
    let mut checks = 0;
    for (e, v, before) in &table {
        match before {
            Check(code, case) => {
                let src = std::fs::read_to_string(root.join(format!("tests/ui/{case}.peft")))
                    .unwrap_or_else(|_| panic!("{e}::{v}: no UI case {case}"));
                let (checked, _) = render_check(&world, case, &src);
                assert!(
                    checked.diagnostics.iter().any(|d| d.code.as_str() == *code),
                    "{e}::{v}: UI case {case} does not report {code}"
                );
                checks += 1;
            }
            Compute(reason) => assert!(reason.len() > 20, "{e}::{v}: give the reason"),
        }
    }
    assert!(
        checks >= 40,
        "only {checks} runtime errors are refused at check time"
    );
}
