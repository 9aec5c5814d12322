//! The training loop on a tiny Hugging Face `BertForSequenceClassification` (hidden 64, 2 layers,
//! 4 heads, 3 labels, dropout 0) with PEFT LoRA r 8 on query, value and the classifier as
//! `modules_to_save`, trained 5 AdamW steps (lr 5e-3, weight decay 0.01, batches of 2 x 12, one
//! row right-padded) by `peft_case("bert")` in tests/parity/make_train_fixtures.py. The BERT
//! forward below follows transformers' `modeling_bert.py` (eager attention, post-LayerNorm,
//! erf GELU, tanh pooler on the first token), independent of the runtime's model code. Each loss
//! within 1e-4, final LoRA and classifier weights within 1e-4 relative.

use super::fixtures;
use candle_core::{Device, Result, Tensor, Var, D};
use peftc::runtime::batch::Example;
use peftc::runtime::model_api::{AdaptedModel, TaskKind};
use std::collections::HashMap;

const HIDDEN: usize = 64;
const HEADS: usize = 4;
const LAYERS: usize = 2;
const EPS: f64 = 1e-12;
const SCALE: f64 = 16.0 / 8.0;
const CLS_W: &str = "base_model.model.classifier.modules_to_save.weight";
const CLS_B: &str = "base_model.model.classifier.modules_to_save.bias";

struct TinyBert {
    w: HashMap<String, Tensor>,
    /// `(module path, A, B)`.
    lora: Vec<(String, Var, Var)>,
    cls_w: Var,
    cls_b: Var,
    device: Device,
}

fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    xc.broadcast_div(&(var + EPS)?.sqrt()?)?
        .broadcast_mul(w)?
        .broadcast_add(b)
}

impl TinyBert {
    fn get(&self, k: &str) -> Result<&Tensor> {
        self.w
            .get(k)
            .ok_or_else(|| candle_core::Error::Msg(format!("no tensor {k}")))
    }

    fn linear(&self, x: &Tensor, path: &str) -> Result<Tensor> {
        let y = x
            .broadcast_matmul(&self.get(&format!("{path}.weight"))?.t()?)?
            .broadcast_add(self.get(&format!("{path}.bias"))?)?;
        let key = format!("base_model.model.{path}");
        match self.lora.iter().find(|(p, _, _)| *p == key) {
            None => Ok(y),
            Some((_, a, b)) => {
                let d = x
                    .broadcast_matmul(&a.as_tensor().t()?)?
                    .broadcast_matmul(&b.as_tensor().t()?)?;
                y + (d * SCALE)?
            }
        }
    }

    fn norm(&self, x: &Tensor, path: &str) -> Result<Tensor> {
        layer_norm(
            x,
            self.get(&format!("{path}.weight"))?,
            self.get(&format!("{path}.bias"))?,
        )
    }
}

impl AdaptedModel for TinyBert {
    fn task(&self) -> TaskKind {
        TaskKind::Classify { num_labels: 3 }
    }

    fn forward(&self, ids: &Tensor, mask: &Tensor, _train: bool) -> Result<Tensor> {
        let (b, s) = ids.dims2()?;
        let dh = HIDDEN / HEADS;
        let e = "bert.embeddings";
        let words = self
            .get(&format!("{e}.word_embeddings.weight"))?
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, s, HIDDEN))?;
        let pos = self
            .get(&format!("{e}.position_embeddings.weight"))?
            .narrow(0, 0, s)?;
        let tt = self
            .get(&format!("{e}.token_type_embeddings.weight"))?
            .narrow(0, 0, 1)?;
        let mut h = self.norm(
            &words.broadcast_add(&pos)?.broadcast_add(&tt)?,
            &format!("{e}.LayerNorm"),
        )?;
        // Key padding mask, added to the scores.
        let m: Vec<Vec<u8>> = mask.to_vec2()?;
        let add: Vec<f32> = m
            .iter()
            .flat_map(|row| row.iter().map(|&k| if k == 0 { f32::MIN } else { 0.0 }))
            .collect();
        let add = Tensor::from_vec(add, (b, 1, 1, s), &self.device)?;
        for l in 0..LAYERS {
            let p = format!("bert.encoder.layer.{l}");
            let heads = |t: Tensor| -> Result<Tensor> {
                t.reshape((b, s, HEADS, dh))?.transpose(1, 2)?.contiguous()
            };
            let q = heads(self.linear(&h, &format!("{p}.attention.self.query"))?)?;
            let k = heads(self.linear(&h, &format!("{p}.attention.self.key"))?)?;
            let v = heads(self.linear(&h, &format!("{p}.attention.self.value"))?)?;
            let scores =
                (q.matmul(&k.t()?.contiguous()?)? * (dh as f64).powf(-0.5))?.broadcast_add(&add)?;
            let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
            let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, s, HIDDEN))?;
            let a = self.linear(&ctx, &format!("{p}.attention.output.dense"))?;
            h = self.norm(&(a + &h)?, &format!("{p}.attention.output.LayerNorm"))?;
            let i = self
                .linear(&h, &format!("{p}.intermediate.dense"))?
                .gelu_erf()?;
            let o = self.linear(&i, &format!("{p}.output.dense"))?;
            h = self.norm(&(o + &h)?, &format!("{p}.output.LayerNorm"))?;
        }
        let first = h.narrow(1, 0, 1)?.squeeze(1)?;
        let pooled = self.linear(&first, "bert.pooler.dense")?.tanh()?;
        pooled
            .matmul(&self.cls_w.as_tensor().t()?)?
            .broadcast_add(self.cls_b.as_tensor())
    }

    fn trainable(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        for (p, a, b) in &self.lora {
            out.push((format!("{p}.lora_A.weight"), a.clone()));
            out.push((format!("{p}.lora_B.weight"), b.clone()));
        }
        out.push((CLS_W.to_string(), self.cls_w.clone()));
        out.push((CLS_B.to_string(), self.cls_b.clone()));
        out
    }

    fn device(&self) -> &Device {
        &self.device
    }
}

#[test]
fn five_adamw_steps_on_tiny_bert_classifier_match_peft() {
    let dev = Device::Cpu;
    let dir = format!(
        "{}/tests/fixtures/train/peft_bert",
        env!("CARGO_MANIFEST_DIR")
    );
    let w = candle_core::safetensors::load(format!("{dir}/model.safetensors"), &dev).expect("base");
    let init = candle_core::safetensors::load(format!("{dir}/trainable_init.safetensors"), &dev)
        .expect("init");
    let fin = candle_core::safetensors::load(format!("{dir}/trainable_final.safetensors"), &dev)
        .expect("final");
    let var = |k: &str| Var::from_tensor(&init[k]).expect("var");
    let mut lora = Vec::new();
    for l in 0..LAYERS {
        for m in ["query", "value"] {
            let p = format!("base_model.model.bert.encoder.layer.{l}.attention.self.{m}");
            lora.push((
                p.clone(),
                var(&format!("{p}.lora_A.weight")),
                var(&format!("{p}.lora_B.weight")),
            ));
        }
    }
    let model = TinyBert {
        w,
        lora,
        cls_w: var(CLS_W),
        cls_b: var(CLS_B),
        device: dev,
    };
    assert_eq!(model.trainable().len(), init.len());

    let run = fixtures::load("peft_bert/run");
    let mut examples = Vec::new();
    for batch in run["batches"].as_array().expect("batches") {
        for r in 0..2 {
            let mask = fixtures::floats(&batch["attention_mask"][r]);
            let n = mask.iter().filter(|&&m| m > 0.0).count();
            let ids = fixtures::floats(&batch["input_ids"][r]);
            examples.push(Example {
                input_ids: ids.iter().take(n).map(|&t| t as u32).collect(),
                labels: Vec::new(),
                class_label: Some(batch["labels"][r].as_u64().expect("class") as u32),
                packed: Vec::new(),
            });
        }
    }
    fixtures::train_five_steps_like_peft(&model, &examples, &run, &init, &fin);
}
