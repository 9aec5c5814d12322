//! A tiny model implementing `AdaptedModel`, mirroring `Tiny` in
//! `tests/parity/make_train_fixtures.py` line by line:
//!
//! ```python
//! h = emb[ids]
//! h = tanh(h @ w1.T + b1 + s * ((h @ a1.T) @ bb1.T))
//! h = h + h @ w2.T + s * ((h @ a2.T) @ bb2.T)
//! logits = h @ head.T                       # causal
//! logits = masked_mean(h) @ cls.T           # classify
//! ```
//!
//! With `dropout > 0`, the first LoRA branch's input goes through the engine's seeded dropout
//! (as PEFT's `lora_dropout`). An `orphan` parameter that never reaches the loss can be added.

use super::fixtures;
use candle_core::{DType, Device, Result, Tensor, Var};
use peftc::runtime::model_api::{AdaptedModel, TaskKind};
use peftc::runtime::ops::dropout::dropout;
use rand::{Rng, SeedableRng};
use serde_json::Value;

pub const A1: &str = "base_model.model.l1.lora_A.weight";
pub const B1: &str = "base_model.model.l1.lora_B.weight";
pub const A2: &str = "base_model.model.l2.lora_A.weight";
pub const B2: &str = "base_model.model.l2.lora_B.weight";
pub const CLS: &str = "base_model.model.classifier.modules_to_save.default.weight";

pub struct Tiny {
    pub emb: Tensor,
    pub w1: Tensor,
    pub b1: Tensor,
    pub w2: Tensor,
    pub head: Tensor,
    pub a1: Var,
    pub bb1: Var,
    pub a2: Var,
    pub bb2: Var,
    pub cls: Option<Var>,
    pub orphan: Option<Var>,
    pub scale: f64,
    pub dropout: f32,
    pub device: Device,
}

impl Tiny {
    /// From a `loop.json` run.
    pub fn from_fixture(run: &Value, scale: f64) -> Self {
        let f = &run["frozen"];
        let i = &run["init"];
        let var = |k: &str| Var::from_tensor(&fixtures::tensor(&i[k])).expect("var");
        Self {
            emb: fixtures::tensor(&f["emb"]),
            w1: fixtures::tensor(&f["w1"]),
            b1: fixtures::tensor(&f["b1"]),
            w2: fixtures::tensor(&f["w2"]),
            head: fixtures::tensor(&f["head"]),
            a1: var(A1),
            bb1: var(B1),
            a2: var(A2),
            bb2: var(B2),
            cls: i.get(CLS).map(|_| var(CLS)),
            orphan: None,
            scale,
            dropout: 0.0,
            device: Device::Cpu,
        }
    }

    /// Random weights from a seed (vocab 32, hidden 16, rank 4).
    pub fn random(seed: u64, classes: Option<usize>) -> Self {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut t = |shape: &[usize], std: f32| {
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n)
                .map(|_| (rng.gen::<f32>() - 0.5) * 2.0 * std)
                .collect();
            Tensor::from_vec(v, shape, &Device::Cpu).expect("tensor")
        };
        let (v, d, r) = (32, 16, 4);
        let emb = t(&[v, d], 0.8);
        let w1 = t(&[d, d], 0.5);
        let b1 = t(&[d], 0.1);
        let w2 = t(&[d, d], 0.5);
        let head = t(&[v, d], 0.8);
        let a1 = Var::from_tensor(&t(&[r, d], 0.5)).expect("var");
        let bb1 = Var::from_tensor(&t(&[d, r], 0.2)).expect("var");
        let a2 = Var::from_tensor(&t(&[r, d], 0.5)).expect("var");
        let bb2 = Var::from_tensor(&t(&[d, r], 0.2)).expect("var");
        let cls = classes.map(|c| Var::from_tensor(&t(&[c, d], 0.5)).expect("var"));
        Self {
            emb,
            w1,
            b1,
            w2,
            head,
            a1,
            bb1,
            a2,
            bb2,
            cls,
            orphan: None,
            scale: 2.0,
            dropout: 0.0,
            device: Device::Cpu,
        }
    }

    /// Every trainable weight as `(name, values)`.
    pub fn weights(&self) -> Vec<(String, Vec<f32>)> {
        self.trainable()
            .into_iter()
            .map(|(n, v)| {
                let vals = v
                    .as_tensor()
                    .flatten_all()
                    .and_then(|t| t.to_vec1())
                    .expect("values");
                (n, vals)
            })
            .collect()
    }
}

impl AdaptedModel for Tiny {
    fn task(&self) -> TaskKind {
        match &self.cls {
            Some(c) => TaskKind::Classify {
                num_labels: c.dims()[0],
            },
            None => TaskKind::CausalLm,
        }
    }

    fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Result<Tensor> {
        let (b, s) = input_ids.dims2()?;
        let d = self.emb.dim(1)?;
        let h = self
            .emb
            .index_select(&input_ids.flatten_all()?, 0)?
            .reshape((b, s, d))?;
        let x = if train {
            dropout(&h, self.dropout)?
        } else {
            h.clone()
        };
        let lora1 = (x
            .broadcast_matmul(&self.a1.as_tensor().t()?)?
            .broadcast_matmul(&self.bb1.as_tensor().t()?)?
            * self.scale)?;
        let h = (h.broadcast_matmul(&self.w1.t()?)?.broadcast_add(&self.b1)? + lora1)?.tanh()?;
        let lora2 = (h
            .broadcast_matmul(&self.a2.as_tensor().t()?)?
            .broadcast_matmul(&self.bb2.as_tensor().t()?)?
            * self.scale)?;
        let h = ((&h + h.broadcast_matmul(&self.w2.t()?)?)? + lora2)?;
        match &self.cls {
            None => h.broadcast_matmul(&self.head.t()?),
            Some(cls) => {
                let m = attention_mask.to_dtype(DType::F32)?.unsqueeze(2)?;
                let pooled = h.broadcast_mul(&m)?.sum(1)?.broadcast_div(&m.sum(1)?)?;
                pooled.matmul(&cls.as_tensor().t()?)
            }
        }
    }

    fn trainable(&self) -> Vec<(String, Var)> {
        let mut out = vec![
            (A1.to_string(), self.a1.clone()),
            (B1.to_string(), self.bb1.clone()),
            (A2.to_string(), self.a2.clone()),
            (B2.to_string(), self.bb2.clone()),
        ];
        if let Some(c) = &self.cls {
            out.push((CLS.to_string(), c.clone()));
        }
        if let Some(o) = &self.orphan {
            out.push((
                "base_model.model.orphan.lora_A.weight".to_string(),
                o.clone(),
            ));
        }
        out
    }

    fn device(&self) -> &Device {
        &self.device
    }
}
