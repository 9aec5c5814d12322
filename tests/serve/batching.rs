//! Continuous batching across adapters at the runtime level, deterministic: rows for the base
//! and four LoRA adapters join a running batch one step apart, each with its own KV cache
//! and its own adapter (gathered LoRA), and every row decodes exactly the tokens of that
//! adapter run alone, which are the tokens of transformers + PEFT.

use super::support::{adapter_dir, llama_dir, Reference, ADAPTERS};
use candle_core::{DType, Device, Tensor};
use peftc::runtime::adapters::attach::{set_active, set_row_adapters};
use peftc::runtime::adapters::linear::RowAdapters;
use peftc::runtime::models::decoder::KvCache;
use peftc::runtime::models::generate::{generate, GenerateConfig, Sampling};
use peftc::runtime::models::load::{load_folder, LoadConfig, LoadedModel};
use peftc::runtime::ops::no_grad::no_grad;
use peftc::runtime::peft_format::load::{attach_read, layer_shapes, read_adapter};
use std::sync::Arc;

fn model_with_adapters() -> Box<dyn LoadedModel> {
    let mut model = load_folder(&llama_dir().join("model"), &LoadConfig::default()).unwrap();
    let shapes = layer_shapes(model.as_adaptable());
    for a in ADAPTERS {
        let read = read_adapter(&adapter_dir(a), &shapes, &Device::Cpu).unwrap();
        attach_read(model.as_adaptable_mut(), &read, a).unwrap();
    }
    model
}

fn rows_for(targets: &[Option<&str>]) -> Arc<RowAdapters> {
    let mut groups: Vec<(String, Vec<u32>)> = Vec::new();
    for (r, t) in targets.iter().enumerate() {
        if let Some(name) = t {
            match groups.iter_mut().find(|(n, _)| n == name) {
                Some((_, v)) => v.push(r as u32),
                None => groups.push((name.to_string(), vec![r as u32])),
            }
        }
    }
    Arc::new(RowAdapters {
        groups: groups
            .into_iter()
            .map(|(n, v)| {
                let len = v.len();
                (n, Tensor::from_vec(v, len, &Device::Cpu).unwrap())
            })
            .collect(),
        rows: targets.len(),
    })
}

fn last_logits(logits: &Tensor) -> Vec<Vec<f32>> {
    let s = logits.dim(1).unwrap();
    logits
        .narrow(1, s - 1, 1)
        .unwrap()
        .squeeze(1)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec2()
        .unwrap()
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}

#[test]
fn single_adapter_generation_equals_transformers_and_peft() {
    let r = Reference::load();
    let mut model = model_with_adapters();
    let cfg = GenerateConfig {
        max_new_tokens: r.max_new_tokens,
        sampling: Sampling::Greedy,
        eos_token_ids: vec![1],
        pad_token_id: 2,
    };
    for name in std::iter::once("base").chain(ADAPTERS) {
        let active: Vec<(String, f64)> = if name == "base" {
            vec![]
        } else {
            vec![(name.to_string(), 1.0)]
        };
        set_active(model.as_adaptable_mut(), &active);
        for (i, (_, prompt)) in r.prompts.iter().enumerate() {
            let got = generate(
                model.decoder().unwrap(),
                std::slice::from_ref(prompt),
                &cfg,
                &Device::Cpu,
            )
            .unwrap();
            assert_eq!(got[0], r.output(name, i), "{name}, prompt {i}");
        }
    }
}

#[test]
fn rows_joining_a_mixed_adapter_batch_decode_as_if_alone() {
    let r = Reference::load();
    let mut model = model_with_adapters();
    let models: Vec<Option<&str>> = std::iter::once(None)
        .chain(ADAPTERS.iter().map(|a| Some(*a)))
        .collect();
    // Every (model, prompt) pair is a request; one joins the batch per step.
    let requests: Vec<(Option<&str>, usize)> = models
        .iter()
        .flat_map(|m| (0..r.prompts.len()).map(move |p| (*m, p)))
        .collect();
    struct Row {
        target: Option<&'static str>,
        prompt: usize,
        cache: KvCache,
        out: Vec<u32>,
        done: bool,
    }
    let mut running: Vec<Row> = Vec::new();
    let mut finished: Vec<Row> = Vec::new();
    let mut next = 0;
    let mut max_diff = 0f32;
    let mut widest = 0;
    no_grad(|| {
        while next < requests.len() || !running.is_empty() {
            if next < requests.len() {
                // Prefill the newcomer alone.
                let (target, p) = requests[next];
                let target: Option<&'static str> =
                    target.map(|t| *ADAPTERS.iter().find(|a| **a == t).unwrap());
                next += 1;
                let ids = &r.prompts[p].1;
                let n = ids.len();
                set_row_adapters(model.as_adaptable_mut(), Some(rows_for(&[target])));
                let dec = model.decoder().unwrap();
                let mut caches = vec![dec.new_cache()];
                let logits = dec
                    .step_rows(
                        &Tensor::new(ids.as_slice(), &Device::Cpu)
                            .unwrap()
                            .unsqueeze(0)
                            .unwrap(),
                        &Tensor::new((0..n as u32).collect::<Vec<_>>(), &Device::Cpu)
                            .unwrap()
                            .unsqueeze(0)
                            .unwrap(),
                        &mut caches,
                    )
                    .unwrap();
                let tok = argmax(&last_logits(&logits)[0]);
                running.push(Row {
                    target,
                    prompt: p,
                    cache: caches.pop().unwrap(),
                    out: vec![tok],
                    done: tok == 1,
                });
            }
            // Rows that ended (end of sequence or the token budget) leave the batch.
            let (done, keep): (Vec<Row>, Vec<Row>) = running
                .into_iter()
                .partition(|row| row.done || row.out.len() >= r.max_new_tokens);
            finished.extend(done);
            running = keep;
            if running.is_empty() {
                continue;
            }
            widest = widest.max(running.len());
            let targets: Vec<Option<&str>> = running.iter().map(|row| row.target).collect();
            let b = running.len();
            let ids: Vec<u32> = running.iter().map(|row| *row.out.last().unwrap()).collect();
            let pos: Vec<u32> = running
                .iter()
                .map(|row| (r.prompts[row.prompt].1.len() + row.out.len() - 1) as u32)
                .collect();
            let ids = Tensor::from_vec(ids, (b, 1), &Device::Cpu).unwrap();
            let pos = Tensor::from_vec(pos, (b, 1), &Device::Cpu).unwrap();
            // Each row alone, on a copy of its cache: the batch must give the same logits.
            let mut alone = Vec::with_capacity(b);
            for (i, row) in running.iter().enumerate() {
                set_row_adapters(model.as_adaptable_mut(), Some(rows_for(&[row.target])));
                let mut c = vec![row.cache.clone()];
                let l = model
                    .decoder()
                    .unwrap()
                    .step_rows(
                        &ids.narrow(0, i, 1).unwrap(),
                        &pos.narrow(0, i, 1).unwrap(),
                        &mut c,
                    )
                    .unwrap();
                alone.push(last_logits(&l).remove(0));
            }
            set_row_adapters(model.as_adaptable_mut(), Some(rows_for(&targets)));
            let mut caches: Vec<KvCache> = running
                .iter_mut()
                .map(|row| std::mem::take(&mut row.cache))
                .collect();
            let logits = model
                .decoder()
                .unwrap()
                .step_rows(&ids, &pos, &mut caches)
                .unwrap();
            for ((row, cache), (l, a)) in running
                .iter_mut()
                .zip(caches)
                .zip(last_logits(&logits).iter().zip(&alone))
            {
                row.cache = cache;
                for (x, y) in l.iter().zip(a) {
                    max_diff = max_diff.max((x - y).abs());
                }
                let tok = argmax(l);
                row.out.push(tok);
                row.done = tok == 1;
            }
        }
    });
    assert!(widest >= 5, "the batch never mixed many rows ({widest})");
    assert!(
        max_diff < 1e-5,
        "batched logits differ from alone by {max_diff}"
    );
    assert_eq!(finished.len(), requests.len());
    for row in finished {
        let name = row.target.unwrap_or("base");
        assert_eq!(
            row.out,
            r.output(name, row.prompt),
            "{name}, prompt {}",
            row.prompt
        );
    }
}
