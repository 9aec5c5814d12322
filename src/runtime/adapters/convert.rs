//! Converting an adapter trained with an init that moves part of the base into it (PiSSA,
//! OLoRA) into a plain LoRA on the original base, exactly as PEFT's
//! `save_pretrained(..., path_initial_model_for_weight_conversion=...)` does:
//!
//! `W = W_res + s B0 A0` and the trained model is `W_res + s B A`, so its change is
//! `s (B A - B0 A0) = s [B | -B0] [A ; A0]`: a LoRA of rank `2r` with `A' = [A ; A0]`,
//! `B' = [B | -B0]` and the same scale (PEFT doubles `r` and `lora_alpha`, or multiplies alpha
//! by sqrt 2 with rsLoRA). On the unmodified base it gives exactly the trained model, so every
//! stage after training (eval, gates, merge, export) uses the original base.
//!
//! peftc keeps a DoRA magnitude (the direction is computed from `W_res + s B A`, which equals
//! `W + s B' A'`, so the converted DoRA adapter is exact too); PEFT drops it. Must not touch
//! adapters of other names.

use crate::runtime::adapters::attach::LoraConfig;
use crate::runtime::adapters::error::AdapterError;
use crate::runtime::adapters::lora::{LoraAdapter, LoraInit};
use crate::runtime::model_api::AdaptableModel;
use candle_core::{Tensor, Var};

/// The initial `(A0, B0)` of every layer that carries an adapter, by layer path.
#[derive(Clone, Debug, Default)]
pub struct InitialAdapter {
    pub layers: Vec<(String, Tensor, Tensor)>,
}

/// Copies adapter `name`'s matrices as they are now (call right after attaching).
pub fn snapshot(model: &dyn AdaptableModel, name: &str) -> Result<InitialAdapter, AdapterError> {
    let mut layers = Vec::new();
    for layer in model.linears() {
        if let Some(ad) = layer.adapter(name) {
            let err = AdapterError::tensor(&layer.path);
            let a = ad.a.as_tensor().copy().map_err(err)?;
            let b =
                ad.b.as_tensor()
                    .copy()
                    .map_err(AdapterError::tensor(&layer.path))?;
            layers.push((layer.path.clone(), a, b));
        }
    }
    Ok(InitialAdapter { layers })
}

/// Replaces adapter `name` (trained from `initial`) by the equivalent plain LoRA of rank `2r` on
/// the original base, restores each layer's original base weight, and returns the config PEFT
/// writes for it.
pub fn to_plain_lora(
    model: &mut dyn AdaptableModel,
    name: &str,
    cfg: &LoraConfig,
    initial: &InitialAdapter,
) -> Result<LoraConfig, AdapterError> {
    for layer in model.linears_mut() {
        let Some((_, a0, b0)) = initial.layers.iter().find(|(p, _, _)| *p == layer.path) else {
            continue;
        };
        let Some(trained) = layer.adapter(name).cloned() else {
            continue;
        };
        let path = layer.path.clone();
        let err = || AdapterError::tensor(&path);
        let delta0 = (b0.matmul(a0).map_err(err())? * trained.scale).map_err(err())?;
        let a = Tensor::cat(&[trained.a.as_tensor(), a0], 0).map_err(err())?;
        let b =
            Tensor::cat(&[trained.b.as_tensor(), &b0.neg().map_err(err())?], 1).map_err(err())?;
        let converted = LoraAdapter {
            a: Var::from_tensor(&a).map_err(err())?,
            b: Var::from_tensor(&b).map_err(err())?,
            ..trained
        };
        // The residual base plus `s B0 A0` is the original weight again.
        layer
            .subtract_from_base(&delta0.neg().map_err(err())?)
            .map_err(err())?;
        layer.add_adapter(name, converted);
    }
    let mut out = cfg.clone();
    out.spec.r = cfg.spec.r * 2;
    out.spec.alpha = if cfg.spec.use_rslora {
        cfg.spec.alpha * std::f64::consts::SQRT_2
    } else {
        cfg.spec.alpha * 2.0
    };
    out.spec.init = LoraInit::KaimingUniform;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::adapters::attach::attach_lora;
    use crate::runtime::adapters::linear::AdaptableLinear;
    use crate::runtime::adapters::lora::LoraSpec;
    use crate::runtime::adapters::residual::ResidualHook;
    use crate::runtime::adapters::targets::TargetModules;
    use crate::runtime::dense::DenseWeight;
    use crate::runtime::model_api::{AdaptedModel, TaskKind};
    use candle_core::{DType, Device, Result};
    use std::sync::Arc;

    /// One adaptable linear layer as a model.
    struct OneLayer {
        layer: AdaptableLinear,
        device: Device,
    }

    impl AdaptedModel for OneLayer {
        fn task(&self) -> TaskKind {
            TaskKind::CausalLm
        }
        fn forward(&self, x: &Tensor, _mask: &Tensor, train: bool) -> Result<Tensor> {
            self.layer.forward(x, train)
        }
        fn trainable(&self) -> Vec<(String, Var)> {
            Vec::new()
        }
        fn device(&self) -> &Device {
            &self.device
        }
    }

    impl AdaptableModel for OneLayer {
        fn linears(&self) -> Vec<&AdaptableLinear> {
            vec![&self.layer]
        }
        fn linears_mut(&mut self) -> Vec<&mut AdaptableLinear> {
            vec![&mut self.layer]
        }
        fn set_residual_hook(&mut self, _hook: Arc<dyn ResidualHook>) {}
        fn num_layers(&self) -> usize {
            1
        }
        fn hidden_size(&self) -> usize {
            12
        }
    }

    #[test]
    fn converted_adapter_on_the_original_base_equals_the_trained_one_on_the_residual() -> Result<()>
    {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (16, 12), &dev)?;
        let x = Tensor::randn(0f32, 1.0, (2, 5, 12), &dev)?;
        for (init, rslora) in [(LoraInit::Pissa, false), (LoraInit::Olora, true)] {
            let mut model = OneLayer {
                layer: AdaptableLinear::new("l", Arc::new(DenseWeight::new(w.clone())), None),
                device: dev.clone(),
            };
            let cfg = LoraConfig {
                spec: LoraSpec {
                    r: 3,
                    alpha: 6.0,
                    use_rslora: rslora,
                    init: init.clone(),
                    ..LoraSpec::default()
                },
                target_modules: TargetModules::Names(vec!["l".into()]),
                ..LoraConfig::default()
            };
            attach_lora(&mut model, "x", &cfg)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            // At init the model equals the base: the adapter holds what the residual lost.
            let base_y = x.broadcast_matmul(&w.t()?)?;
            let y0 = model.forward(&x, &x, false)?;
            let e0 = (&y0 - &base_y)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(e0 < 1e-4, "{init:?} at init: {e0}");
            let initial =
                snapshot(&model, "x").map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            // "Training": move A and B.
            if let Some(ad) = model.layer.adapter("x") {
                ad.a.set(&(ad.a.as_tensor() + Tensor::randn(0f32, 0.1, (3, 12), &dev)?)?)?;
                ad.b.set(&(ad.b.as_tensor() + Tensor::randn(0f32, 0.1, (16, 3), &dev)?)?)?;
            }
            let trained = model.forward(&x, &x, false)?;
            let out = to_plain_lora(&mut model, "x", &cfg, &initial)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            assert_eq!(out.spec.r, 6);
            assert_eq!(out.spec.init, LoraInit::KaimingUniform);
            assert!((out.spec.scale() - cfg.spec.scale()).abs() < 1e-12);
            let base_err = (model.layer.base().dequantize(DType::F32)? - &w)?
                .abs()?
                .max_all()?
                .to_scalar::<f32>()?;
            assert!(base_err < 1e-5, "{base_err}");
            let converted = model.forward(&x, &x, false)?;
            let err = (converted - trained)?
                .abs()?
                .max_all()?
                .to_scalar::<f32>()?;
            assert!(err < 1e-4, "{init:?}: {err}");
        }
        Ok(())
    }
}
