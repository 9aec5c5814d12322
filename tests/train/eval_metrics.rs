//! Metrics against hand-computed numbers, directly and through `evaluate` on a model whose
//! logits are a fixed table per token.

use candle_core::{Device, Result, Tensor, Var};
use peftc::runtime::batch::{Example, IGNORE_INDEX};
use peftc::runtime::eval::{
    accuracy, evaluate, evaluate_with_baseline, exact_match, macro_f1, perplexity, EvalConfig,
    EvalError, Metric,
};
use peftc::runtime::model_api::{AdaptedModel, TaskKind};

#[test]
fn accuracy_and_macro_f1_by_hand() {
    let pred = [0, 1, 2, 2, 1];
    let truth = [0, 1, 1, 2, 0];
    assert!((accuracy(&pred, &truth) - 0.6).abs() < 1e-12);
    // class 0: tp 1 fp 0 fn 1 -> 2/3; class 1: tp 1 fp 1 fn 1 -> 1/2; class 2: tp 1 fp 1 fn 0 -> 2/3
    let want = (2.0 / 3.0 + 0.5 + 2.0 / 3.0) / 3.0;
    assert!((macro_f1(&pred, &truth) - want).abs() < 1e-12);
    // A class only predicted (3) counts with F1 0, as scikit-learn's labels = union.
    assert!((macro_f1(&[0, 3], &[0, 0]) - (2.0 / 3.0 + 0.0) / 2.0).abs() < 1e-12);
    assert!((macro_f1(&[0, 0], &[0, 0]) - 1.0).abs() < 1e-12);
    assert!((perplexity(2f64.ln()) - 2.0).abs() < 1e-12);
    let pairs = vec![
        (vec![1, 2], vec![1, 2]),
        (vec![1], vec![1, 2]),
        (vec![], vec![]),
    ];
    assert!((exact_match(&pairs) - 2.0 / 3.0).abs() < 1e-12);
}

/// Logits are `table[token]`, for both heads (classification: the first token's row).
struct TableModel {
    table: Tensor,
    classify: bool,
    device: Device,
}

impl AdaptedModel for TableModel {
    fn task(&self) -> TaskKind {
        if self.classify {
            TaskKind::Classify {
                num_labels: self.table.dims()[1],
            }
        } else {
            TaskKind::CausalLm
        }
    }
    fn forward(&self, ids: &Tensor, _mask: &Tensor, _train: bool) -> Result<Tensor> {
        let (b, s) = ids.dims2()?;
        let v = self.table.dim(1)?;
        let out = self
            .table
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, s, v))?;
        if self.classify {
            out.narrow(1, 0, 1)?.squeeze(1)
        } else {
            Ok(out)
        }
    }
    fn trainable(&self) -> Vec<(String, Var)> {
        Vec::new()
    }
    fn device(&self) -> &Device {
        &self.device
    }
}

fn table(rows: &[[f32; 3]]) -> Tensor {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_vec(flat, (rows.len(), 3), &Device::Cpu).expect("table")
}

#[test]
fn causal_eval_loss_perplexity_token_accuracy_by_hand() {
    let ln2 = std::f32::consts::LN_2;
    // After token 0 the model gives p = [.25, .5, .25]; after 1: [.5, .25, .25]; after 2 uniform.
    let model = TableModel {
        table: table(&[[0.0, ln2, 0.0], [ln2, 0.0, 0.0], [0.0, 0.0, 0.0]]),
        classify: false,
        device: Device::Cpu,
    };
    let examples = vec![
        // predictions: after 0 -> 1 (p .5, argmax 1 ✓), after 1 -> 0 (p .5, argmax 0 ✓)
        Example {
            input_ids: vec![0, 1, 0],
            labels: vec![0, 1, 0],
            class_label: None,
            packed: Vec::new(),
        },
        // prompt token masked; after 0 -> 2 (p .25, argmax 1 ✗)
        Example {
            input_ids: vec![2, 0, 2],
            labels: vec![IGNORE_INDEX, IGNORE_INDEX, 2],
            class_label: None,
            packed: Vec::new(),
        },
    ];
    let config = EvalConfig {
        batch_size: 1,
        metrics: vec![Metric::Loss, Metric::Perplexity, Metric::Accuracy],
        pad_id: 0,
        stop_ids: vec![],
    };
    let m = evaluate(&model, &examples, &config, None, None).expect("eval");
    // token mean over all 3 counted tokens, not a mean of per-batch means
    let want_loss = -(0.5f64.ln() + 0.5f64.ln() + 0.25f64.ln()) / 3.0;
    let loss = m.get(Metric::Loss).expect("loss");
    assert!((loss - want_loss).abs() < 1e-6, "{loss} vs {want_loss}");
    let ppl = m.get(Metric::Perplexity).expect("ppl");
    assert!((ppl - want_loss.exp()).abs() < 1e-5, "{ppl}");
    assert!(
        (ppl - 16f64.cbrt()).abs() < 1e-5,
        "perplexity = (2*2*4)^(1/3)"
    );
    assert!((m.get(Metric::Accuracy).expect("acc") - 2.0 / 3.0).abs() < 1e-12);
    assert!(m.get(Metric::F1).is_none());
}

#[test]
fn classification_eval_accuracy_f1_loss_and_baseline() {
    let ln3 = 3f32.ln();
    // Token t predicts class argmax of its row.
    let tuned = TableModel {
        table: table(&[[ln3, 0.0, 0.0], [0.0, ln3, 0.0], [0.0, 0.0, ln3]]),
        classify: true,
        device: Device::Cpu,
    };
    let base = TableModel {
        table: table(&[[ln3, 0.0, 0.0], [ln3, 0.0, 0.0], [ln3, 0.0, 0.0]]),
        classify: true,
        device: Device::Cpu,
    };
    let ex = |t: u32, c: u32| Example {
        input_ids: vec![t, 0],
        labels: vec![],
        class_label: Some(c),
        packed: Vec::new(),
    };
    // tuned predicts [0, 1, 2, 2]; truth [0, 1, 1, 2]
    let examples = vec![ex(0, 0), ex(1, 1), ex(2, 1), ex(2, 2)];
    let config = EvalConfig {
        batch_size: 3,
        metrics: vec![Metric::Accuracy, Metric::F1, Metric::Loss],
        pad_id: 0,
        stop_ids: vec![],
    };
    let r = evaluate_with_baseline(&tuned, &base, &examples, &config, None, None).expect("eval");
    assert!((r.model.get(Metric::Accuracy).expect("acc") - 0.75).abs() < 1e-12);
    // class 0: 1; class 1: tp1 fn1 -> 2/3; class 2: tp1 fp1 -> 2/3
    let f1 = (1.0 + 2.0 / 3.0 + 2.0 / 3.0) / 3.0;
    assert!((r.model.get(Metric::F1).expect("f1") - f1).abs() < 1e-12);
    // p(correct) = 3/5 for hits; for the miss (token 2, class 1) p = 1/5.
    let want_loss = -(3.0 * 0.6f64.ln() + 0.2f64.ln()) / 4.0;
    assert!((r.model.get(Metric::Loss).expect("loss") - want_loss).abs() < 1e-6);
    // base predicts 0 everywhere: accuracy 1/4; f1: class0 2/(2+3) = .4, class 1 0, class 2 0
    assert!((r.baseline.get(Metric::Accuracy).expect("acc") - 0.25).abs() < 1e-12);
    assert!((r.baseline.get(Metric::F1).expect("f1") - 0.4 / 3.0).abs() < 1e-12);
    let json = serde_json::to_value(&r).expect("json");
    assert_eq!(json["model"]["accuracy"], 0.75);
}

#[test]
fn exact_match_uses_the_generate_callback_and_stop_ids() {
    let model = TableModel {
        table: table(&[[0.0, 0.0, 0.0]]),
        classify: false,
        device: Device::Cpu,
    };
    // prompt [1, 2] answer [3, 4, 99]; prompt [5] answer [6].
    let examples = vec![
        Example {
            input_ids: vec![1, 2, 3, 4, 99],
            labels: vec![IGNORE_INDEX, IGNORE_INDEX, 3, 4, 99],
            class_label: None,
            packed: Vec::new(),
        },
        Example {
            input_ids: vec![5, 6],
            labels: vec![IGNORE_INDEX, 6],
            class_label: None,
            packed: Vec::new(),
        },
    ];
    let generate = |prompt: &[u32]| -> Result<Vec<u32>> {
        Ok(match prompt {
            [1, 2] => vec![3, 4, 99, 7, 7], // right answer, then noise after the stop id
            _ => vec![8],
        })
    };
    let config = EvalConfig {
        batch_size: 2,
        metrics: vec![Metric::ExactMatch],
        pad_id: 0,
        stop_ids: vec![99],
    };
    let m = evaluate(&model, &examples, &config, None, Some(&generate)).expect("eval");
    assert!((m.get(Metric::ExactMatch).expect("em") - 0.5).abs() < 1e-12);
    let err = evaluate(&model, &examples, &config, None, None).expect_err("no callback");
    assert!(matches!(err, EvalError::NeedsGenerate), "{err}");
    let bad = EvalConfig {
        metrics: vec![Metric::F1],
        ..config
    };
    let err = evaluate(&model, &examples, &bad, None, None).expect_err("f1 on causal");
    assert!(
        matches!(err, EvalError::NotApplicable { metric: "f1", .. }),
        "{err}"
    );
}
