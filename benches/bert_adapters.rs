//! BERT inference latency on all-MiniLM-L6-v2 shapes (6 layers, hidden 384, 12 heads, FFN 1536;
//! random weights, so no asset is needed) at batch 1 and 8, sequence 128: the base model, a
//! Houlsby adapter (64 units, both sites) and a Pfeiffer adapter (64 units, feed-forward only).
//! Prints each adapter's overhead over the base, measured in the same run.
//!
//! `cargo bench --bench bert_adapters`

use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use peftc::runtime::adapters::bottleneck::{
    BottleneckAdapter, BottleneckConfig, BottleneckKind, SiteNames, Width,
};
use peftc::runtime::adapters::residual::{NoHook, ResidualHook};
use peftc::runtime::dense::DenseWeight;
use peftc::runtime::model_api::AdaptableModel;
use peftc::runtime::models::bert::{BertHead, BertLoadConfig, BertModel};
use peftc::runtime::models::bert_config::BertConfig;
use peftc::runtime::models::source::{LoadError, TensorSource};
use peftc::runtime::ops::no_grad::no_grad;
use peftc::runtime::weight::FrozenWeight;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CONFIG: &str = r#"{"model_type":"bert","vocab_size":30522,"hidden_size":384,"num_hidden_layers":6,
 "num_attention_heads":12,"intermediate_size":1536,"max_position_embeddings":512,"type_vocab_size":2,
 "architectures":["BertModel"]}"#;

struct Random(HashMap<String, Vec<usize>>);

impl TensorSource for Random {
    fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
    fn shape(&self, name: &str) -> Result<Vec<usize>, LoadError> {
        self.0
            .get(name)
            .cloned()
            .ok_or_else(|| LoadError::MissingTensor {
                name: name.into(),
                file: "random".into(),
            })
    }
    fn tensor(&self, name: &str, dtype: DType) -> Result<Tensor, LoadError> {
        let shape = self.shape(name)?;
        Tensor::randn(0f32, 0.05, shape, &Device::Cpu)
            .and_then(|t| t.to_dtype(dtype))
            .map_err(|e| LoadError::Other {
                file: "random".into(),
                message: e.to_string(),
            })
    }
    fn linear(&self, name: &str, dtype: DType) -> Result<Arc<dyn FrozenWeight>, LoadError> {
        Ok(Arc::new(DenseWeight::new(self.tensor(name, dtype)?)))
    }
}

fn minilm_shapes(c: &BertConfig) -> Random {
    let (d, f) = (c.hidden_size, c.intermediate_size);
    let mut m = HashMap::new();
    m.insert(
        "embeddings.word_embeddings.weight".to_string(),
        vec![c.vocab_size, d],
    );
    m.insert(
        "embeddings.position_embeddings.weight".into(),
        vec![c.max_position_embeddings, d],
    );
    m.insert(
        "embeddings.token_type_embeddings.weight".into(),
        vec![c.type_vocab_size, d],
    );
    m.insert("embeddings.LayerNorm.weight".into(), vec![d]);
    m.insert("embeddings.LayerNorm.bias".into(), vec![d]);
    for i in 0..c.num_hidden_layers {
        let p = format!("encoder.layer.{i}.");
        for (name, out, inp) in [
            ("attention.self.query", d, d),
            ("attention.self.key", d, d),
            ("attention.self.value", d, d),
            ("attention.output.dense", d, d),
            ("intermediate.dense", f, d),
            ("output.dense", d, f),
        ] {
            m.insert(format!("{p}{name}.weight"), vec![out, inp]);
            m.insert(format!("{p}{name}.bias"), vec![out]);
        }
        for ln in ["attention.output.LayerNorm", "output.LayerNorm"] {
            m.insert(format!("{p}{ln}.weight"), vec![d]);
            m.insert(format!("{p}{ln}.bias"), vec![d]);
        }
    }
    Random(m)
}

fn mean_time(model: &BertModel, ids: &Tensor, mask: &Tensor, iters: u32) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let _ = no_grad(|| model.encode(ids, mask, None, false));
    }
    start.elapsed() / iters
}

fn bench(c: &mut Criterion) {
    let cfg = BertConfig::from_json(CONFIG, "bench config").expect("valid config");
    let src = minilm_shapes(&cfg);
    let mut model = BertModel::load(
        &src,
        &cfg,
        BertLoadConfig {
            head: BertHead::None,
            dtype: DType::F32,
        },
    )
    .expect("random weights load");
    let names = SiteNames::bert("", "BertModel");
    let hooks: Vec<(&str, Arc<dyn ResidualHook>)> = vec![
        ("base", Arc::new(NoHook)),
        ("houlsby-64", {
            let mut b = BottleneckConfig::new(BottleneckKind::Houlsby);
            b.width = Width::Size(64);
            Arc::new(
                BottleneckAdapter::new("h", b, names.clone(), 6, 384, &Device::Cpu)
                    .expect("adapter"),
            )
        }),
        ("pfeiffer-64", {
            let mut b = BottleneckConfig::new(BottleneckKind::Pfeiffer);
            b.width = Width::Size(64);
            Arc::new(
                BottleneckAdapter::new("p", b, names.clone(), 6, 384, &Device::Cpu)
                    .expect("adapter"),
            )
        }),
    ];
    for batch in [1usize, 8] {
        let ids = Tensor::ones((batch, 128), DType::U32, &Device::Cpu).expect("ids");
        let mask = Tensor::ones((batch, 128), DType::U8, &Device::Cpu).expect("mask");
        let mut group = c.benchmark_group(format!("minilm_b{batch}_s128"));
        group.sample_size(10);
        let mut means = Vec::new();
        for (label, hook) in &hooks {
            model.set_residual_hook(hook.clone());
            group.bench_function(*label, |b| {
                b.iter(|| no_grad(|| model.encode(&ids, &mask, None, false)))
            });
            means.push((*label, mean_time(&model, &ids, &mask, 5)));
        }
        group.finish();
        let base = means[0].1.as_secs_f64();
        for (label, t) in &means {
            println!(
                "minilm batch {batch} seq 128 {label:>12}: {:8.2} ms  x{:.3} of base",
                t.as_secs_f64() * 1e3,
                t.as_secs_f64() / base
            );
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
