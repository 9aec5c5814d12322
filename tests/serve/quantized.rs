//! A quantized base served once for every adapter: the server quantizes the folder's linear
//! weights at load (int8 here), and each adapter's greedy answer equals peftc's generation on
//! the same quantized base with that adapter alone.

use super::support::{adapter_dir, config, ids, llama_dir, post, ADAPTERS};
use candle_core::Device;
use peftc::runtime::models::config::ModelConfig;
use peftc::runtime::models::generate::{generate, GenerateConfig, Sampling};
use peftc::runtime::models::load::{load, LoadConfig};
use peftc::runtime::models::safetensors_source::SafetensorsSource;
use peftc::runtime::models::source::TensorSource;
use peftc::runtime::peft_format::load::load_adapter;
use peftc::runtime::quant::{QuantFormat, QuantSpec, QuantizingConfig, QuantizingSource};
use peftc::serve::{start, Limits};
use serde_json::json;
use std::sync::Arc;

#[test]
fn a_quantized_base_serves_every_adapter_as_each_alone() {
    let spec = QuantSpec::new(QuantFormat::Int8);
    let mut cfg = config(Limits::default());
    cfg.base.quant = Some(spec.clone());
    let server = start(cfg, false).unwrap();
    let folder = llama_dir().join("model");
    let text = "the cat sat";
    let tok = peftc::runtime::data::tokenizer::ModelTokenizer::from_dir(&folder).unwrap();
    let prompt_ids = tok
        .tokenizer()
        .encode(text, true)
        .unwrap()
        .get_ids()
        .to_vec();
    for name in ADAPTERS {
        let reply = post(
            server.addr,
            "/v1/completions",
            &json!({"model": name, "prompt": text, "max_tokens": 10, "temperature": 0,
                    "ignore_eos": true, "return_token_ids": true}),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        let got = ids(&reply.json()["choices"][0]["token_ids"]);
        let run = || {
            let src: Arc<dyn TensorSource> =
                Arc::new(SafetensorsSource::from_folder(&folder, &Device::Cpu).unwrap());
            let src: Arc<dyn TensorSource> = Arc::new(
                QuantizingSource::new(
                    src,
                    spec.clone(),
                    QuantizingConfig {
                        cache: None,
                        keep_dense: vec!["lm_head".into()],
                    },
                )
                .unwrap(),
            );
            let mc = ModelConfig {
                file: folder.display().to_string(),
                ..ModelConfig::from_folder(&folder).unwrap()
            };
            let mut m = load(&mc, src.as_ref(), &LoadConfig::default()).unwrap();
            load_adapter(m.as_adaptable_mut(), &adapter_dir(name), name).unwrap();
            generate(
                m.decoder().unwrap(),
                std::slice::from_ref(&prompt_ids),
                &GenerateConfig {
                    max_new_tokens: 10,
                    sampling: Sampling::Greedy,
                    eos_token_ids: vec![],
                    pad_token_id: 2,
                },
                &Device::Cpu,
            )
            .unwrap()
            .remove(0)
        };
        assert_eq!(got, run(), "{name}");
    }
    server.shutdown().unwrap();
}
