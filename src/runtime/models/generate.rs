//! Greedy and sampled generation with a KV cache over any [`Decoder`].
//!
//! Prompts of different lengths are left-padded; positions count real tokens only (as
//! transformers' `generate`), so each row decodes as if alone. Switching the active adapter
//! between calls needs no reload: the cache is per call. Must not be used for training.

use crate::runtime::models::decoder::Decoder;
use candle_core::{DType, Device, Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How the next token is chosen.
#[derive(Clone, Debug, PartialEq)]
pub enum Sampling {
    /// Arg-max.
    Greedy,
    /// Sampling with temperature, optional top-k and top-p, seeded.
    Sample {
        temperature: f64,
        top_k: Option<usize>,
        top_p: Option<f64>,
        seed: u64,
    },
}

/// Generation settings.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateConfig {
    /// At most this many new tokens per prompt.
    pub max_new_tokens: usize,
    /// Greedy or sampled.
    pub sampling: Sampling,
    /// A row stops after emitting one of these.
    pub eos_token_ids: Vec<u32>,
    /// Token used to left-pad prompts (masked out).
    pub pad_token_id: u32,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: 32,
            sampling: Sampling::Greedy,
            eos_token_ids: Vec::new(),
            pad_token_id: 0,
        }
    }
}

/// Generates continuations of `prompts` (token ids); returns the new tokens of each row
/// (up to and including its end-of-sequence token). Runs without a gradient graph.
pub fn generate(
    model: &dyn Decoder,
    prompts: &[Vec<u32>],
    cfg: &GenerateConfig,
    device: &Device,
) -> Result<Vec<Vec<u32>>> {
    crate::runtime::ops::no_grad::no_grad(|| generate_tracked(model, prompts, cfg, device))
}

fn generate_tracked(
    model: &dyn Decoder,
    prompts: &[Vec<u32>],
    cfg: &GenerateConfig,
    device: &Device,
) -> Result<Vec<Vec<u32>>> {
    let b = prompts.len();
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    if b == 0 || longest == 0 {
        return Ok(vec![Vec::new(); b]);
    }
    let mut ids = Vec::with_capacity(b * longest);
    let mut mask_rows: Vec<Vec<u8>> = Vec::with_capacity(b);
    let mut pos = Vec::with_capacity(b * longest);
    let mut next_pos = vec![0u32; b];
    for (row, p) in prompts.iter().enumerate() {
        let pad = longest - p.len();
        ids.extend(std::iter::repeat_n(cfg.pad_token_id, pad).chain(p.iter().copied()));
        mask_rows.push(
            std::iter::repeat_n(0u8, pad)
                .chain(std::iter::repeat_n(1u8, p.len()))
                .collect(),
        );
        pos.extend(std::iter::repeat_n(0u32, pad).chain(0..p.len() as u32));
        next_pos[row] = p.len() as u32;
    }
    let mut rng = match &cfg.sampling {
        Sampling::Sample { seed, .. } => ChaCha8Rng::seed_from_u64(*seed),
        Sampling::Greedy => ChaCha8Rng::seed_from_u64(0),
    };
    let mut cache = model.new_cache();
    let mut input = Tensor::from_vec(ids, (b, longest), device)?;
    let mut positions = Tensor::from_vec(pos, (b, longest), device)?;
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); b];
    let mut done = vec![false; b];
    for _ in 0..cfg.max_new_tokens {
        let mask_flat: Vec<u8> = mask_rows.iter().flatten().copied().collect();
        let mask = Tensor::from_vec(mask_flat, (b, mask_rows[0].len()), device)?;
        let logits = model.step(&input, &mask, &positions, &mut cache)?;
        let s = logits.dim(1)?;
        let last = logits
            .narrow(1, s - 1, 1)?
            .squeeze(1)?
            .to_dtype(DType::F32)?
            .to_vec2::<f32>()?;
        let mut next = Vec::with_capacity(b);
        for (row, l) in last.iter().enumerate() {
            let tok = if done[row] {
                cfg.pad_token_id
            } else {
                choose(l, &cfg.sampling, &mut rng)
            };
            if !done[row] {
                out[row].push(tok);
                if cfg.eos_token_ids.contains(&tok) {
                    done[row] = true;
                }
            }
            next.push(tok);
            mask_rows[row].push(1);
        }
        if done.iter().all(|d| *d) {
            break;
        }
        input = Tensor::from_vec(next, (b, 1), device)?;
        positions = Tensor::from_vec(next_pos.clone(), (b, 1), device)?;
        next_pos.iter_mut().for_each(|p| *p += 1);
    }
    Ok(out)
}

fn argmax(l: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in l.iter().enumerate() {
        if *v > l[best] {
            best = i;
        }
    }
    best as u32
}

/// The next token from one row's logits: arg-max, or a seeded draw with temperature, top-k and
/// top-p. Shared by [`generate`] and the server, so both choose alike.
pub fn choose(l: &[f32], sampling: &Sampling, rng: &mut ChaCha8Rng) -> u32 {
    let Sampling::Sample {
        temperature,
        top_k,
        top_p,
        ..
    } = sampling
    else {
        return argmax(l);
    };
    if *temperature <= 0.0 {
        return argmax(l);
    }
    let mut idx: Vec<usize> = (0..l.len()).collect();
    idx.sort_by(|&a, &b| l[b].total_cmp(&l[a]));
    if let Some(k) = top_k {
        idx.truncate((*k).max(1));
    }
    let max = idx.first().map_or(0.0, |&i| l[i]) as f64;
    let mut probs: Vec<f64> = idx
        .iter()
        .map(|&i| ((l[i] as f64 - max) / temperature).exp())
        .collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if let Some(p) = top_p {
        let mut acc = 0.0;
        let mut keep = probs.len();
        for (j, q) in probs.iter().enumerate() {
            acc += q;
            if acc >= *p {
                keep = j + 1;
                break;
            }
        }
        probs.truncate(keep);
        idx.truncate(keep);
        let t: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|q| *q /= t);
    }
    let u: f64 = rng.gen_range(0.0..1.0);
    let mut acc = 0.0;
    for (j, q) in probs.iter().enumerate() {
        acc += q;
        if u < acc {
            return idx[j] as u32;
        }
    }
    idx.last().copied().unwrap_or(0) as u32
}

/// Tokenizes `prompts`, generates, and decodes the new tokens (special tokens skipped). Uses the
/// tokenizer's end-of-sequence and padding tokens unless `cfg` names its own.
pub fn generate_text(
    model: &dyn Decoder,
    tok: &crate::runtime::models::tokenizer::TokenizerBundle,
    prompts: &[&str],
    cfg: &GenerateConfig,
    device: &Device,
) -> std::result::Result<Vec<String>, crate::runtime::models::error::ModelError> {
    use crate::runtime::models::error::ModelError;
    let tok_err = |e: tokenizers::Error| ModelError::Tokenizer {
        file: "tokenizer.json".into(),
        message: e.to_string(),
    };
    let mut ids = Vec::with_capacity(prompts.len());
    for p in prompts {
        ids.push(
            tok.tokenizer
                .encode(*p, true)
                .map_err(tok_err)?
                .get_ids()
                .to_vec(),
        );
    }
    let mut cfg = cfg.clone();
    if cfg.eos_token_ids.is_empty() {
        cfg.eos_token_ids.extend(tok.eos_id);
    }
    if let Some(pad) = tok.pad_id.or(tok.eos_id) {
        cfg.pad_token_id = pad;
    }
    let out = generate(model, &ids, &cfg, device).map_err(ModelError::tensor("generate"))?;
    out.iter()
        .map(|t| tok.tokenizer.decode(t, true).map_err(tok_err))
        .collect()
}
