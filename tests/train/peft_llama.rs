//! The training loop on a real architecture: a tiny Hugging Face `LlamaForCausalLM` (hidden 64,
//! 2 layers, 4 heads, 2 KV heads, vocab 128) with PEFT LoRA r 8 on q_proj, v_proj, trained 5
//! AdamW steps (lr 5e-3, weight decay 0.01, batches of 2 x 12 with right padding and masked
//! prompt tokens) by `peft_case("llama")` in tests/parity/make_train_fixtures.py. The llama
//! forward below is written here from transformers' `modeling_llama.py` (eager attention,
//! RMSNorm, RoPE with `rotate_half`, `repeat_kv`, SwiGLU), independent of the runtime's model
//! code; the loop, loss and optimizer are the engine's. Each loss within 1e-4, final LoRA
//! weights within 1e-4 relative.

use super::fixtures;
use candle_core::{Device, Result, Tensor, Var, D};
use peftc::runtime::batch::Example;
use peftc::runtime::model_api::{AdaptedModel, TaskKind};
use std::collections::HashMap;

const HIDDEN: usize = 64;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const HEAD_DIM: usize = 16;
const LAYERS: usize = 2;
const EPS: f64 = 1e-6;
const THETA: f64 = 10000.0;
const SCALE: f64 = 16.0 / 8.0;

struct Lora {
    a: Var,
    b: Var,
}

struct TinyLlama {
    w: HashMap<String, Tensor>,
    lora: Vec<(String, Lora)>,
    device: Device,
}

fn rms(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let var = x.sqr()?.mean_keepdim(D::Minus1)?;
    x.broadcast_mul(&(var + EPS)?.sqrt()?.recip()?)?
        .broadcast_mul(w)
}

fn rotate_half(x: &Tensor) -> Result<Tensor> {
    let h = HEAD_DIM / 2;
    let x1 = x.narrow(D::Minus1, 0, h)?;
    let x2 = x.narrow(D::Minus1, h, h)?;
    Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)
}

impl TinyLlama {
    fn get(&self, k: &str) -> Result<&Tensor> {
        self.w
            .get(k)
            .ok_or_else(|| candle_core::Error::Msg(format!("no tensor {k}")))
    }

    fn linear(&self, x: &Tensor, path: &str) -> Result<Tensor> {
        let y = x.broadcast_matmul(&self.get(&format!("{path}.weight"))?.t()?)?;
        let key = format!("base_model.model.{path}");
        match self.lora.iter().find(|(p, _)| *p == key) {
            None => Ok(y),
            Some((_, l)) => {
                let d = x
                    .broadcast_matmul(&l.a.as_tensor().t()?)?
                    .broadcast_matmul(&l.b.as_tensor().t()?)?;
                y + (d * SCALE)?
            }
        }
    }
}

impl AdaptedModel for TinyLlama {
    fn task(&self) -> TaskKind {
        TaskKind::CausalLm
    }

    fn forward(&self, ids: &Tensor, mask: &Tensor, _train: bool) -> Result<Tensor> {
        let (b, s) = ids.dims2()?;
        let dev = &self.device;
        let mut h = self
            .get("model.embed_tokens.weight")?
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, s, HIDDEN))?;
        // RoPE tables: inv_freq = 1 / theta^(2i/d), positions 0..s (f32 as transformers).
        let inv: Vec<f32> = (0..HEAD_DIM / 2)
            .map(|i| 1.0 / (THETA as f32).powf((2 * i) as f32 / HEAD_DIM as f32))
            .collect();
        let mut cos = Vec::with_capacity(s * HEAD_DIM);
        let mut sin = Vec::with_capacity(s * HEAD_DIM);
        for p in 0..s {
            for j in 0..HEAD_DIM {
                let f = p as f32 * inv[j % (HEAD_DIM / 2)];
                cos.push(f.cos());
                sin.push(f.sin());
            }
        }
        let cos = Tensor::from_vec(cos, (1, 1, s, HEAD_DIM), dev)?;
        let sin = Tensor::from_vec(sin, (1, 1, s, HEAD_DIM), dev)?;
        // Causal + key padding mask, added to the scores.
        let m: Vec<Vec<u8>> = mask.to_vec2()?;
        let mut add = Vec::with_capacity(b * s * s);
        for row in &m {
            for i in 0..s {
                for (j, &keep) in row.iter().enumerate() {
                    add.push(if j > i || keep == 0 { f32::MIN } else { 0.0 });
                }
            }
        }
        let add = Tensor::from_vec(add, (b, 1, s, s), dev)?;
        for l in 0..LAYERS {
            let p = format!("model.layers.{l}");
            let x = rms(&h, self.get(&format!("{p}.input_layernorm.weight"))?)?;
            let heads = |t: Tensor, n: usize| -> Result<Tensor> {
                t.reshape((b, s, n, HEAD_DIM))?.transpose(1, 2)
            };
            let q = heads(self.linear(&x, &format!("{p}.self_attn.q_proj"))?, HEADS)?;
            let k = heads(self.linear(&x, &format!("{p}.self_attn.k_proj"))?, KV_HEADS)?;
            let v = heads(self.linear(&x, &format!("{p}.self_attn.v_proj"))?, KV_HEADS)?;
            let q = (q.broadcast_mul(&cos)? + rotate_half(&q)?.broadcast_mul(&sin)?)?;
            let k = (k.broadcast_mul(&cos)? + rotate_half(&k)?.broadcast_mul(&sin)?)?;
            // repeat_kv: head i uses KV head i / (HEADS / KV_HEADS).
            let rep = |t: &Tensor| -> Result<Tensor> {
                t.unsqueeze(2)?
                    .broadcast_as((b, KV_HEADS, HEADS / KV_HEADS, s, HEAD_DIM))?
                    .reshape((b, HEADS, s, HEAD_DIM))
            };
            let k = rep(&k)?;
            let v = rep(&v)?;
            let scores = (q.contiguous()?.matmul(&k.t()?.contiguous()?)?
                * (HEAD_DIM as f64).powf(-0.5))?
            .broadcast_add(&add)?;
            let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
            let o = probs
                .matmul(&v.contiguous()?)?
                .transpose(1, 2)?
                .reshape((b, s, HIDDEN))?;
            h = (h + self.linear(&o, &format!("{p}.self_attn.o_proj"))?)?;
            let x = rms(
                &h,
                self.get(&format!("{p}.post_attention_layernorm.weight"))?,
            )?;
            let gate = self.linear(&x, &format!("{p}.mlp.gate_proj"))?.silu()?;
            let up = self.linear(&x, &format!("{p}.mlp.up_proj"))?;
            h = (h + self.linear(&(gate * up)?, &format!("{p}.mlp.down_proj"))?)?;
        }
        let h = rms(&h, self.get("model.norm.weight")?)?;
        h.broadcast_matmul(&self.get("lm_head.weight")?.t()?)
    }

    fn trainable(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        for (p, l) in &self.lora {
            out.push((format!("{p}.lora_A.weight"), l.a.clone()));
            out.push((format!("{p}.lora_B.weight"), l.b.clone()));
        }
        out
    }

    fn device(&self) -> &Device {
        &self.device
    }
}

fn dir() -> String {
    format!(
        "{}/tests/fixtures/train/peft_llama",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn five_adamw_steps_on_tiny_llama_match_peft() {
    let dev = Device::Cpu;
    let w =
        candle_core::safetensors::load(format!("{}/model.safetensors", dir()), &dev).expect("base");
    let init =
        candle_core::safetensors::load(format!("{}/trainable_init.safetensors", dir()), &dev)
            .expect("init");
    let fin =
        candle_core::safetensors::load(format!("{}/trainable_final.safetensors", dir()), &dev)
            .expect("final");
    let mut lora = Vec::new();
    for l in 0..LAYERS {
        for m in ["q_proj", "v_proj"] {
            let p = format!("base_model.model.model.layers.{l}.self_attn.{m}");
            let var = |k: &str| Var::from_tensor(&init[&format!("{p}.{k}.weight")]).expect("var");
            lora.push((
                p.clone(),
                Lora {
                    a: var("lora_A"),
                    b: var("lora_B"),
                },
            ));
        }
    }
    let model = TinyLlama {
        w,
        lora,
        device: dev,
    };
    assert_eq!(model.trainable().len(), init.len());

    let run = fixtures::load("peft_llama/run");
    let mut examples = Vec::new();
    for batch in run["batches"].as_array().expect("batches") {
        for r in 0..2 {
            let mask = fixtures::floats(&batch["attention_mask"][r]);
            let n = mask.iter().filter(|&&m| m > 0.0).count();
            let ids = fixtures::floats(&batch["input_ids"][r]);
            let labels: Vec<i64> = batch["labels"][r]
                .as_array()
                .expect("labels")
                .iter()
                .map(|v| v.as_i64().expect("label"))
                .collect();
            examples.push(Example {
                input_ids: ids.iter().take(n).map(|&t| t as u32).collect(),
                labels: labels.into_iter().take(n).collect(),
                class_label: None,
                packed: Vec::new(),
            });
        }
    }
    fixtures::train_five_steps_like_peft(&model, &examples, &run, &init, &fin);
}
