//! Bottleneck adapters on the llama family: the residual hook's weights are trainable, get
//! gradients through the pre-LN blocks, and an adapter that starts at zero leaves logits equal.

use candle_core::Tensor;
use peftc::runtime::adapters::bottleneck::BottleneckAdapter;
use peftc::runtime::adapters::bottleneck_config::{
    BottleneckConfig, BottleneckKind, Init, SiteNames, Width,
};
use peftc::runtime::models::load::{load_folder, LoadConfig};
use std::path::Path;
use std::sync::Arc;

#[test]
fn houlsby_and_pfeiffer_adapters_train_on_llama() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity/llama/model");
    for kind in [BottleneckKind::Houlsby, BottleneckKind::Pfeiffer] {
        let mut model = load_folder(&folder, &LoadConfig::default()).unwrap();
        let dev = model.device().clone();
        let ids = Tensor::new(&[[5u32, 9, 17, 33, 2, 70]], &dev).unwrap();
        let mask = Tensor::ones((1, 6), candle_core::DType::U8, &dev).unwrap();
        let base = model.forward(&ids, &mask, false).unwrap();
        let mut cfg = BottleneckConfig::new(kind);
        cfg.width = Width::Size(8);
        cfg.init = Init::ZeroUp;
        let layers = model.as_adaptable().num_layers();
        let hidden = model.as_adaptable().hidden_size();
        let hook = BottleneckAdapter::new(
            "b",
            cfg,
            SiteNames::llama("llama", "LlamaForCausalLM"),
            layers,
            hidden,
            &dev,
        )
        .unwrap();
        model.as_adaptable_mut().set_residual_hook(Arc::new(hook));
        let vars = model.trainable();
        let sites = if kind == BottleneckKind::Houlsby {
            2
        } else {
            1
        };
        // down and up projections, weight and bias, per site and layer.
        assert_eq!(
            vars.len(),
            layers * sites * 4,
            "{:?}",
            vars.iter().map(|(n, _)| n).collect::<Vec<_>>()
        );
        // The up projection starts at zero: the adapted model equals the base.
        let adapted = model.forward(&ids, &mask, true).unwrap();
        let diff = super::common::max_abs_diff(&adapted, &base);
        assert!(diff < 1e-5, "{kind:?}: {diff}");
        let loss = adapted.sqr().unwrap().mean_all().unwrap();
        let grads = loss.backward().unwrap();
        let with_grad = vars
            .iter()
            .filter(|(_, v)| grads.get(v.as_tensor()).is_some())
            .count();
        assert_eq!(
            with_grad,
            vars.len(),
            "{kind:?}: every adapter weight gets a gradient"
        );
    }
}
