//! The adapter conformance matrix: adapter kinds and options x architectures x base precision.
//! Every cell is computed here, now: either peftc's result equals Hugging Face PEFT's (reference
//! fixtures made by PEFT itself, tolerance in the cell), or `peftc check` refuses the pipeline
//! with the code in the cell. Cells with neither say so. The rendered table must equal
//! `docs/adapter-matrix.md`; `PEFTC_WRITE_MATRIX=1` rewrites it.

use super::interop::{assert_export_matches, fixtures, Case};
use super::pipeline::{assert_metrics, data_rows, pipeline, Project};
use candle_core::{DType, Device, Tensor};
use peftc::plan::configs::{ModelBuild, QuantConfig};
use peftc::runtime::adapters::attach::{merge_adapter, set_active};
use peftc::runtime::adapters::combine::{add_weighted_adapter, Combination};
use peftc::runtime::models::load::{load_folder, LoadConfig};
use peftc::runtime::peft_format::load::load_adapter;
use peftc::stages::load_local;
use std::collections::HashMap;
use std::path::PathBuf;

const ARCHS: [&str; 5] = ["llama", "mistral", "qwen2", "gpt2", "bert"];

/// The `tests/fixtures/peft_format/` case of each architecture.
fn case_of(arch: &str) -> &'static str {
    match arch {
        "llama" => "llama_qv",
        "mistral" => "mistral_dora",
        "qwen2" => "qwen2_all",
        "gpt2" => "gpt2_attn",
        _ => "bert_cls",
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Cell {
    /// Equal to PEFT within this tolerance.
    Equal(&'static str),
    /// Refused by `peftc check` with this code.
    Refused(&'static str),
    /// Equal to PEFT within this tolerance, asserted by the named test.
    Elsewhere(&'static str, &'static str),
    /// No reference here.
    Open,
}

impl Cell {
    fn text(&self) -> String {
        match self {
            Cell::Equal(tol) => format!("= PEFT ({tol})"),
            Cell::Elsewhere(tol, test) => format!("= PEFT ({tol}, `{test}`)"),
            Cell::Refused(code) => format!("refused: {code}"),
            Cell::Open => "not covered".into(),
        }
    }
}

struct Row {
    what: &'static str,
    precision: &'static str,
    reference: &'static str,
    cells: Vec<Cell>,
}

/// Largest |a - b| (causal logits: on real tokens only).
fn diff(a: &Tensor, b: &Tensor, mask: &Tensor) -> f32 {
    let d = (a - b).unwrap().abs().unwrap();
    let d = if d.rank() == 3 {
        let m = mask.to_dtype(DType::F32).unwrap().unsqueeze(2).unwrap();
        d.broadcast_mul(&m).unwrap()
    } else {
        d
    };
    d.max_all().unwrap().to_scalar::<f32>().unwrap()
}

fn equal(what: &str, d: f32, tol: f32, label: &'static str) -> Cell {
    assert!(
        d <= tol,
        "{what}: differs from PEFT by {d} (tolerance {tol})"
    );
    Cell::Equal(label)
}

/// A decoder with the PEFT adapters of `tests/fixtures/parity/<arch>/` (made by
/// `tests/parity/make_fixtures.py`) against PEFT's logits `key`.
fn parity_cell(arch: &str, adapter: &str, key: &str) -> Cell {
    let dir = fixtures().join("parity").join(arch);
    let r: HashMap<String, Tensor> =
        candle_core::safetensors::load(dir.join("reference.safetensors"), &Device::Cpu).unwrap();
    let ids = r["input_ids"].to_dtype(DType::U32).unwrap();
    let mask = r["attention_mask"].to_dtype(DType::U8).unwrap();
    let mut model = load_folder(&dir.join("model"), &LoadConfig::default()).unwrap();
    let m = model.as_adaptable_mut();
    match key {
        "merged.qv" => {
            load_adapter(m, &dir.join("adapters/qv"), "qv").unwrap();
            merge_adapter(m, "qv").unwrap();
        }
        "combo.linear" => {
            load_adapter(m, &dir.join("adapters/qv"), "qv").unwrap();
            load_adapter(m, &dir.join("adapters/second"), "second").unwrap();
            let sources = [("qv".to_string(), 0.7), ("second".to_string(), 0.4)];
            add_weighted_adapter(m, &sources, "lin", Combination::Linear).unwrap();
            set_active(m, &[("lin".into(), 1.0)]);
        }
        _ => {
            load_adapter(m, &dir.join("adapters").join(adapter), adapter).unwrap();
        }
    }
    let logits = model.forward(&ids, &mask, false).unwrap();
    equal(
        &format!("{arch} {key}"),
        diff(&logits, &r[key], &mask),
        1e-4,
        "1e-4",
    )
}

/// A `tests/fixtures/peft_format/` case loaded onto its base (f32 or NF4) against PEFT's
/// logits `key`.
fn case_cell(name: &str, nf4: bool, key: &str, tol: f32, label: &'static str) -> Cell {
    let case = Case::open(name);
    let build = ModelBuild {
        labels: case
            .labels
            .map(|n| (0..n).map(|i| format!("LABEL_{i}")).collect()),
        dtype: "f32".into(),
        quant: nf4.then(|| QuantConfig {
            kind: "nf4".into(),
            double_quant: true,
            block_size: 64,
            compute: "f32".into(),
        }),
        dense_weights: false,
    };
    let mut loaded = load_local(&build, case.base.clone()).unwrap();
    load_adapter(loaded.model.as_adaptable_mut(), &case.adapter(), "default").unwrap();
    let d = case.diff(&case.forward(&loaded), key);
    equal(&format!("{name} {key}"), d, tol, label)
}

/// Checks `text` (a pipeline in a folder holding `model/`) and returns the codes it reports.
fn check_codes(model: &std::path::Path, text: &str) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("model");
    std::fs::create_dir_all(&dest).unwrap();
    for f in std::fs::read_dir(model).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), dest.join(f.file_name())).unwrap();
    }
    let rows = "{\"t\":\"a\",\"l\":\"x\"}\n{\"t\":\"b\",\"l\":\"y\"}\n".repeat(8);
    std::fs::write(tmp.path().join("d.jsonl"), rows).unwrap();
    let path = tmp.path().join("p.peft");
    std::fs::write(&path, text).unwrap();
    let world = peftc::check::world::RealWorld::default();
    let checked = peftc::check::check(&world, &path).unwrap();
    checked
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.code.as_str().to_string())
        .collect()
}

fn refused(arch: &str, text: &str, code: &'static str) -> Cell {
    let base = fixtures().join(Case::open(case_of(arch)).base_rel);
    let codes = check_codes(&base, text);
    assert!(
        codes.iter().any(|c| c == code),
        "{arch}: expected {code}, check said {codes:?}"
    );
    Cell::Refused(code)
}

/// A cell the checker accepts with no error but no reference covers yet.
fn accepted(arch: &str, text: &str) -> Cell {
    let base = fixtures().join(Case::open(case_of(arch)).base_rel);
    let codes = check_codes(&base, text);
    assert!(
        codes.is_empty(),
        "{arch}: expected no error, check said {codes:?}"
    );
    Cell::Open
}

const CLASSIFY: &str = r#"model m = local("model") { task = classify(labels = ["x", "y"]) }
dataset d = jsonl("d.jsonl") { text = field("t"), label = field("l"), split = { train = 50%, eval = 50%, seed = 1 } }
adapter a = lora { r = 2, alpha = 4, targets = [all_linear] }
train t { model = m, adapters = [a], data = d.train }
"#;

const CAUSAL: &str = r#"model m = local("model")
dataset d = jsonl("d.jsonl") { text = field("t"), split = { train = 50%, eval = 50%, seed = 1 } }
adapter a = lora { r = 2, alpha = 4, targets = [all_linear] }
train t { model = m, adapters = [a], data = d.train }
"#;

fn bottleneck_export(arch: &str) -> String {
    let task = if arch == "bert" {
        " { task = classify(labels = [\"x\", \"y\"]) }"
    } else {
        ""
    };
    let label = if arch == "bert" {
        ", label = field(\"l\")"
    } else {
        ""
    };
    format!(
        "model m = local(\"model\"){task}\ndataset d = jsonl(\"d.jsonl\") {{ text = field(\"t\"){label}, split = {{ train = 50%, eval = 50%, seed = 1 }} }}\nadapter b = bottleneck {{ size = 8 }}\ntrain t {{ model = m, adapters = [b], data = d.train }}\nexport t.b to \"out\" as peft\n"
    )
}

fn rows() -> Vec<Row> {
    let decoders_only = |f: &dyn Fn(&str) -> Cell| -> Vec<Cell> {
        ARCHS
            .iter()
            .map(|a| if *a == "bert" { Cell::Open } else { f(a) })
            .collect()
    };
    let tmp = tempfile::tempdir().unwrap();
    vec![
        Row {
            what: "LoRA from a PEFT folder, named targets",
            precision: "f32",
            reference: "PEFT logits (`tests/parity/make_fixtures.py`; BERT: `make_peft_format_fixtures.py`)",
            cells: ARCHS
                .iter()
                .map(|a| match *a {
                    "bert" => case_cell("bert_cls", false, "logits", 1e-5, "1e-5"),
                    a => parity_cell(a, "qv", "adapted.qv"),
                })
                .collect(),
        },
        Row {
            what: "LoRA from a PEFT folder, `all_linear`",
            precision: "f32",
            reference: "PEFT logits (BERT: a bare `BertModel` checkpoint, as all-MiniLM-L6-v2)",
            cells: ARCHS
                .iter()
                .map(|a| match *a {
                    "bert" => case_cell("bert_bare_cls", false, "logits", 1e-5, "1e-5"),
                    a => parity_cell(a, "all", "adapted.all"),
                })
                .collect(),
        },
        Row {
            what: "rsLoRA",
            precision: "f32",
            reference: "PEFT logits",
            cells: decoders_only(&|a| parity_cell(a, "rslora", "adapted.rslora")),
        },
        Row {
            what: "DoRA",
            precision: "f32",
            reference: "PEFT logits",
            cells: decoders_only(&|a| parity_cell(a, "dora", "adapted.dora")),
        },
        Row {
            what: "merge into the base (runtime)",
            precision: "f32",
            reference: "PEFT `merge_and_unload` logits",
            cells: decoders_only(&|a| parity_cell(a, "qv", "merged.qv")),
        },
        Row {
            what: "weighted mix, linear (runtime)",
            precision: "f32",
            reference: "PEFT `add_weighted_adapter(combination_type=\"linear\")` logits",
            cells: decoders_only(&|a| parity_cell(a, "qv", "combo.linear")),
        },
        Row {
            what: "LoRA from a PEFT folder",
            precision: "NF4 + double quant",
            reference: "PEFT logits on the base quantized and dequantized by bitsandbytes 0.50.2",
            cells: ARCHS
                .iter()
                .map(|a| case_cell(case_of(a), true, "nf4_logits", 1e-4, "1e-4"))
                .collect(),
        },
        Row {
            what: "PEFT-format export: key names, tensors, `adapter_config.json`",
            precision: "f32",
            reference: "the folder PEFT's `save_pretrained` wrote for the same adapter",
            cells: ARCHS
                .iter()
                .map(|a| {
                    assert_export_matches(case_of(a), tmp.path());
                    Cell::Equal("exact")
                })
                .collect(),
        },
        Row {
            what: "`adapter x = peft(..)` evaluated by `peftc run`",
            precision: "f32",
            reference: "eval loss / accuracy from PEFT's logits on the same rows",
            cells: ARCHS
                .iter()
                .map(|a| {
                    let case = Case::open(case_of(a));
                    let p = Project::new(&case, &data_rows(&case));
                    let run = p.run(
                        "run",
                        &pipeline(&case, "local(\"model\")", "peft(\"adapter\")"),
                    );
                    assert_eq!(run.code, 0, "{a}: {}", run.stderr);
                    assert_metrics(&case, &p);
                    Cell::Equal("rel. 1e-5")
                })
                .collect(),
        },
        Row {
            what: "sequence classification (`task = classify`)",
            precision: "any",
            reference: "BERT: the rows above; llama: `LlamaForSequenceClassification` + PEFT after 5 AdamW steps",
            cells: ARCHS
                .iter()
                .map(|a| match *a {
                    "bert" => case_cell("bert_cls", false, "logits", 1e-5, "1e-5"),
                    "llama" => Cell::Elsewhere("1e-5", "train::peft_llama_cls"),
                    a => accepted(a, CLASSIFY),
                })
                .collect(),
        },
        Row {
            what: "causal language modelling (default task)",
            precision: "any",
            reference: "decoders: the rows above; BERT: refused at check",
            cells: ARCHS
                .iter()
                .map(|a| match *a {
                    "bert" => refused(a, CAUSAL, "E0305"),
                    a => case_cell(case_of(a), false, "logits", 1e-5, "1e-5"),
                })
                .collect(),
        },
        Row {
            what: "bottleneck adapter exported `as peft`",
            precision: "any",
            reference: "refused at check (PEFT has no bottleneck format; AdapterHub's is written)",
            cells: ARCHS
                .iter()
                .map(|a| refused(a, &bottleneck_export(a), "E0801"))
                .collect(),
        },
    ]
}

fn render(rows: &[Row]) -> String {
    let mut out = String::from(
        "# Adapter conformance matrix\n\n\
         Generated by `tests/peft_format/matrix.rs` (`PEFTC_WRITE_MATRIX=1 cargo test --test integration peft_format::matrix`);\n\
         the test recomputes every cell and fails when this file is stale. A cell is `= PEFT (tol)`:\n\
         peftc's result equals Hugging Face PEFT's (0.21.2, transformers 5.25, torch 2.15) within the\n\
         tolerance (max abs logit difference unless stated); `refused: CODE`: `peftc check` rejects\n\
         the pipeline with that code before any compute (`peftc explain CODE`); `not covered`: no\n\
         reference yet. Tiny random models of each architecture (`tests/fixtures/`). `exact`\n\
         for the export: the same keys, bit-equal tensors and every `adapter_config.json` field\n\
         (but `peft_version`, which PEFT fills in on load; `target_modules` compared as a set).\n\n",
    );
    out.push_str("| adapter / option | base | ");
    out.push_str(&ARCHS.join(" | "));
    out.push_str(" | compared with |\n|---|---|");
    out.push_str(&"---|".repeat(ARCHS.len()));
    out.push_str("---|\n");
    for r in rows {
        out.push_str(&format!("| {} | {} | ", r.what, r.precision));
        let cells: Vec<String> = r.cells.iter().map(Cell::text).collect();
        out.push_str(&cells.join(" | "));
        out.push_str(&format!(" | {} |\n", r.reference));
    }
    out.push_str(
        "\nNot in this table yet: PiSSA / OLoRA / gaussian inits, LoRA+ `lr_ratio`, merged \
         exports and stacks or mixes through `peftc run`, int8 / Q8_0 / Q4_K bases. Training \
         parity (5 AdamW steps against PEFT) is tested for llama and BERT in `tests/train/`.\n",
    );
    out
}

fn matrix_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/adapter-matrix.md")
}

#[test]
fn adapter_matrix_is_computed_and_committed() {
    let text = render(&rows());
    if std::env::var_os("PEFTC_WRITE_MATRIX").is_some() {
        std::fs::create_dir_all(matrix_file().parent().unwrap()).unwrap();
        std::fs::write(matrix_file(), &text).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(matrix_file()).unwrap_or_default();
    assert_eq!(
        committed, text,
        "docs/adapter-matrix.md is stale: run PEFTC_WRITE_MATRIX=1 cargo test --test integration peft_format::matrix"
    );
}
