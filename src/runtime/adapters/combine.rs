//! Weighted combinations of LoRA adapters into a new adapter, as PEFT's
//! `add_weighted_adapter` (`linear` and `cat`).
//!
//! - `linear` (equal ranks): `A = sum sign_i sqrt(|w_i s_i|) A_i`, `B = sum sqrt(|w_i s_i|) B_i`.
//! - `cat`: `A = cat(w_i s_i A_i)`, `B = cat(B_i)` (rank = sum of ranks); exact sum of deltas.
//!
//! The new adapter has `alpha = r`, so its scale is 1 (`sqrt(r)` when the first source used
//! rsLoRA, as PEFT does by copying the first config). DoRA adapters cannot be combined.

use crate::runtime::adapters::attach::adapter_names;
use crate::runtime::adapters::combine_rules::{can_combine, PartKind, Together};
use crate::runtime::adapters::error::AdapterError;
use crate::runtime::adapters::lora::LoraAdapter;
use crate::runtime::model_api::AdaptableModel;
use candle_core::{Tensor, Var};

/// How the sources are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Combination {
    /// Weighted sum of A's and of B's (ranks must be equal).
    Linear,
    /// Concatenation along the rank.
    Cat,
}

/// Builds adapter `new_name` from `(adapter, weight)` sources on every layer that has any of
/// them. It is added but not made active.
pub fn add_weighted_adapter(
    model: &mut dyn AdaptableModel,
    sources: &[(String, f64)],
    new_name: &str,
    how: Combination,
) -> Result<(), AdapterError> {
    let known = adapter_names(model);
    let names: Vec<String> = sources.iter().map(|(n, _)| n.clone()).collect();
    for n in &names {
        if !known.contains(n) {
            return Err(AdapterError::Unknown { name: n.clone() });
        }
    }
    let combine_err = |reason: String| AdapterError::Combine {
        adapters: names.clone(),
        reason,
    };
    for layer in model.linears_mut() {
        let present: Vec<(&LoraAdapter, f64)> = sources
            .iter()
            .filter_map(|(n, w)| layer.adapter(n).map(|a| (a, *w)))
            .collect();
        let Some((first, _)) = present.first() else {
            continue;
        };
        let kinds: Vec<PartKind> = present
            .iter()
            .map(|(a, _)| PartKind::Lora {
                dora: a.magnitude.is_some(),
            })
            .collect();
        if let Err(reason) = can_combine(&kinds, Together::Weighted) {
            return Err(combine_err(reason.into()));
        }
        let err = AdapterError::tensor(&layer.path);
        let result: candle_core::Result<LoraAdapter> = (|| {
            let (a, b) = match how {
                Combination::Linear => {
                    let rank = first.rank();
                    if present.iter().any(|(a, _)| a.rank() != rank) {
                        candle_core::bail!("linear combination needs equal ranks")
                    }
                    let mut a_sum = first.a.as_tensor().zeros_like()?;
                    let mut b_sum = first.b.as_tensor().zeros_like()?;
                    for (ad, w) in &present {
                        let ws = w * ad.scale;
                        let root = ws.abs().sqrt();
                        let sign = if ws >= 0.0 { 1.0 } else { -1.0 };
                        a_sum = (a_sum + (ad.a.as_tensor() * (sign * root))?)?;
                        b_sum = (b_sum + (ad.b.as_tensor() * root)?)?;
                    }
                    (a_sum, b_sum)
                }
                Combination::Cat => {
                    let a_parts: Vec<Tensor> = present
                        .iter()
                        .map(|(ad, w)| ad.a.as_tensor() * (w * ad.scale))
                        .collect::<candle_core::Result<_>>()?;
                    let b_parts: Vec<Tensor> = present
                        .iter()
                        .map(|(ad, _)| ad.b.as_tensor().clone())
                        .collect();
                    (Tensor::cat(&a_parts, 0)?, Tensor::cat(&b_parts, 1)?)
                }
            };
            let r = a.dim(0)? as f64;
            let scale = if first.use_rslora { r / r.sqrt() } else { 1.0 };
            Ok(LoraAdapter {
                a: Var::from_tensor(&a.detach())?,
                b: Var::from_tensor(&b.detach())?,
                scale,
                dropout: first.dropout,
                magnitude: None,
                use_rslora: first.use_rslora,
            })
        })();
        match result {
            Ok(adapter) => layer.add_adapter(new_name, adapter),
            Err(e) if e.to_string().contains("equal ranks") => {
                return Err(combine_err(
                    "linear combination needs equal ranks; use cat".into(),
                ))
            }
            Err(e) => return Err(err(e)),
        }
    }
    Ok(())
}
