//! The adaptable linear layer: a frozen base weight plus any number of named adapters.
//!
//! Every linear layer of every architecture is one of these, so any adapter can target any
//! linear module. A layer holds named LoRA / DoRA adapters, the set of active ones with a weight
//! each (their deltas add), the names merged into the base, and optional `modules_to_save` full
//! copies (a trainable replacement of the whole layer, e.g. a classification head).
//!
//! Forward, for active adapters `i` with weight `w_i` (PEFT's formulas):
//! - LoRA: `y = x W^T + b + sum_i w_i * s_i * dropout(x) A_i^T B_i^T`
//! - DoRA: `y += w_i * ((m/||W + s B A|| - 1) * dropout(x) W^T + m/||W + s B A|| * s * lora)`,
//!   the norm detached as in the paper (section 4.3).
//!
//! Per-row adapters (continuous batching across adapters, as Punica / S-LoRA): when
//! [`RowAdapters`] are set, the active set is ignored and each row of the batch gets only its own
//! adapter's LoRA delta: the rows of one adapter are gathered, multiplied by its `A` and `B`, and
//! added back to those rows. The base product runs once for the whole batch.
//!
//! Merging goes through [`FrozenWeight::dequantize`], so it works for quantized bases; the
//! original base is kept so unmerging is exact. Must not give the base weight a gradient.

use crate::runtime::adapters::lora::{row_norms, LoraAdapter};
use crate::runtime::dense::DenseWeight;
use crate::runtime::ops::dropout::draw_keep;
use crate::runtime::ops::lora_linear::{self, Base, LoraDropout, LoraLinear};
use crate::runtime::ops::no_grad::param;
use crate::runtime::weight::FrozenWeight;
use candle_core::{DType, Result, Tensor, Var};
use std::sync::Arc;

/// `x: [.., k] @ w: [k, n]` as one 2-D product (no broadcast copy of `w` per batch item).
fn matmul_2d(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let dims = x.dims();
    let k = dims.last().copied().unwrap_or(1);
    let y = x.reshape(((), k))?.matmul(w)?;
    let mut out = dims.to_vec();
    if let Some(last) = out.last_mut() {
        *last = w.dim(1)?;
    }
    y.reshape(out)
}

/// A trainable full copy of a layer (`modules_to_save`).
#[derive(Clone, Debug)]
pub struct FullCopy {
    /// `[out, in]`.
    pub weight: Var,
    /// `[out]`, when the layer has a bias.
    pub bias: Option<Var>,
}

/// Which adapter each row of a batch applies. Rows in no group get the base only.
#[derive(Clone, Debug, Default)]
pub struct RowAdapters {
    /// Per adapter name, the batch rows that apply it (u32 indices on the model's device).
    pub groups: Vec<(String, Tensor)>,
    /// Number of rows in the batch.
    pub rows: usize,
}

/// A linear layer `y = x W^T + b` whose frozen `W` may carry adapters.
#[derive(Debug, Clone)]
pub struct AdaptableLinear {
    /// Module path in the checkpoint, e.g. `model.layers.0.self_attn.q_proj`.
    pub path: String,
    base: Arc<dyn FrozenWeight>,
    /// The base before any merge (or PiSSA residual), restored by `unmerge`.
    original_base: Option<Arc<dyn FrozenWeight>>,
    bias: Option<Tensor>,
    adapters: Vec<(String, LoraAdapter)>,
    full_copies: Vec<(String, FullCopy)>,
    active: Vec<(String, f64)>,
    merged: Vec<String>,
    conv1d_layout: bool,
    row_adapters: Option<Arc<RowAdapters>>,
}

impl AdaptableLinear {
    /// A layer over a frozen weight and an optional frozen bias.
    pub fn new(path: impl Into<String>, base: Arc<dyn FrozenWeight>, bias: Option<Tensor>) -> Self {
        Self {
            path: path.into(),
            base,
            original_base: None,
            bias,
            adapters: Vec::new(),
            full_copies: Vec::new(),
            active: Vec::new(),
            merged: Vec::new(),
            conv1d_layout: false,
            row_adapters: None,
        }
    }

    /// Marks a GPT-2 style `Conv1D` layer, whose checkpoint stores the weight `[in, out]`
    /// (the base given to [`AdaptableLinear::new`] is still `[out, in]`).
    pub fn with_conv1d_layout(mut self) -> Self {
        self.conv1d_layout = true;
        self
    }

    /// Whether the checkpoint stores this weight `[in, out]` (GPT-2 `Conv1D`).
    pub fn conv1d_layout(&self) -> bool {
        self.conv1d_layout
    }

    /// `x: [.., in]` to `[.., out]`. `train` switches adapter dropout on.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if let Some(full) = self.active_full_copy() {
            let w = param(&full.weight).to_dtype(x.dtype())?;
            let y = matmul_2d(x, &w.t()?)?;
            return match &full.bias {
                Some(b) => y.broadcast_add(&param(b).to_dtype(y.dtype())?),
                None => Ok(y),
            };
        }
        if let Some(y) = self.fused_lora(x, train)? {
            return Ok(y);
        }
        let base_out = self.base.forward(x)?;
        let mut y = match &self.bias {
            Some(b) => base_out.broadcast_add(&b.to_dtype(base_out.dtype())?)?,
            None => base_out.clone(),
        };
        if let Some(rows) = &self.row_adapters {
            return self.add_row_deltas(x, y, rows);
        }
        for (name, weight) in &self.active {
            if self.merged.contains(name) {
                continue;
            }
            let Some(ad) = self.adapter(name) else {
                continue;
            };
            let xd = if train && ad.dropout > 0.0 {
                crate::runtime::ops::dropout::dropout(x, ad.dropout)?
            } else {
                x.clone()
            };
            let a = param(&ad.a).to_dtype(x.dtype())?;
            let b = param(&ad.b).to_dtype(x.dtype())?;
            let delta = match &ad.magnitude {
                None => {
                    // The scale goes on the small `[r, in]` matrix, not on the `[.., out]` output.
                    let a = (a * (ad.scale * weight))?;
                    matmul_2d(&matmul_2d(&xd, &a.t()?)?, &b.t()?)?
                }
                Some(m) => {
                    let lora = matmul_2d(&matmul_2d(&xd, &a.t()?)?, &b.t()?)?;
                    let norm = self.dora_norm(ad)?.to_dtype(x.dtype())?;
                    let mag = param(m).to_dtype(x.dtype())?.broadcast_div(&norm)?;
                    let base_part = if train && ad.dropout > 0.0 {
                        self.base.forward(&xd)?
                    } else {
                        base_out.clone()
                    };
                    let corr = base_part.broadcast_mul(&(mag.clone() - 1.0)?)?;
                    let scaled = (lora * ad.scale)?.broadcast_mul(&mag)?;
                    ((corr + scaled)? * *weight)?
                }
            };
            y = (y + delta)?;
        }
        Ok(y)
    }

    /// The base weight when the layer is a plain frozen dense product: no active unmerged
    /// adapter, no trainable full copy, no bias, no per-row adapters. The fused linear
    /// cross-entropy multiplies by it directly.
    pub fn frozen_dense(&self) -> Option<&Tensor> {
        let live = self
            .active
            .iter()
            .any(|(name, _)| !self.merged.contains(name) && self.adapter(name).is_some());
        if live
            || self.active_full_copy().is_some()
            || self.bias.is_some()
            || self.row_adapters.is_some()
        {
            return None;
        }
        self.base.dense()
    }

    /// The layer as one [`lora_linear`](lora_linear::lora_linear) op when it can be: one active,
    /// unmerged LoRA adapter (no DoRA) over a dense or tiled (NF4, FP4, int8) base, no per-row
    /// adapters, the op's dtypes and device ([`lora_linear::applies`]). `None`: take the
    /// composite form. The memory estimate (src/check/activations.rs) counts what this op keeps.
    fn fused_lora(&self, x: &Tensor, train: bool) -> Result<Option<Tensor>> {
        let Some(plan) = self.fused_plan(x)? else {
            return Ok(None);
        };
        if plan.lora.is_none() {
            return Ok(None);
        }
        let (layer, ab) = plan.layer(x.elem_count(), train);
        let Some((a, b)) = ab else {
            return Ok(None);
        };
        let dropout = layer.dropout.clone();
        lora_linear::lora_linear(
            x,
            layer.w,
            layer.bias.as_ref(),
            (&a, &b),
            layer.scale,
            dropout,
        )
        .map(Some)
    }

    /// How a fused op computes this layer for input `x` (its dtype and device), when it can:
    /// no trainable full copy, no per-row adapters, a dense or tiled base, and at most one
    /// active unmerged adapter, a plain LoRA one ([`lora_linear::applies`]). Draws nothing.
    pub(crate) fn fused_plan(&self, x: &Tensor) -> Result<Option<FusedPlan<'_>>> {
        if self.row_adapters.is_some() || self.active_full_copy().is_some() || !x.device().is_cpu()
        {
            return Ok(None);
        }
        let mut live = self
            .active
            .iter()
            .filter(|(name, _)| !self.merged.contains(name))
            .filter_map(|(name, weight)| self.adapter(name).map(|ad| (ad, *weight)));
        let (lora, None) = (live.next(), live.next()) else {
            return Ok(None);
        };
        // A dense weight stored in another dtype is converted per call, as `frozen_matmul`
        // does; a packed one (NF4, FP4, int8) is dequantized tile by tile inside the op.
        let base = match (self.base.dense(), self.base.tiles()) {
            (Some(w), _) => Base::Dense(w.to_dtype(x.dtype())?.contiguous()?),
            (None, Some((rows, tile_bytes))) => Base::Tiled(rows.clone(), tile_bytes),
            (None, None) => return Ok(None),
        };
        let applies = match lora {
            Some((ad, _)) => {
                let (a, b) = (param(&ad.a), param(&ad.b));
                ad.magnitude.is_none() && lora_linear::applies(x, &base, &a, &b)
            }
            None => lora_linear::applies(x, &base, x, x),
        };
        if !applies {
            return Ok(None);
        }
        Ok(Some(FusedPlan {
            base,
            bias: self.bias.clone(),
            lora,
        }))
    }

    /// Adds each row's own LoRA delta (gathered by adapter) to `y`.
    fn add_row_deltas(&self, x: &Tensor, mut y: Tensor, rows: &RowAdapters) -> Result<Tensor> {
        for (name, idx) in &rows.groups {
            if self.full_copy(name).is_some() {
                candle_core::bail!(
                    "adapter `{name}` replaces `{}` (modules_to_save): it cannot be applied per row",
                    self.path
                )
            }
            let Some(ad) = self.adapter(name) else {
                continue;
            };
            if ad.magnitude.is_some() {
                candle_core::bail!(
                    "adapter `{name}` is DoRA on `{}`: it cannot be applied per row",
                    self.path
                )
            }
            let a = (param(&ad.a).to_dtype(x.dtype())? * ad.scale)?;
            let b = param(&ad.b).to_dtype(x.dtype())?;
            if idx.dim(0)? == rows.rows {
                y = (y + matmul_2d(&matmul_2d(x, &a.t()?)?, &b.t()?)?)?;
            } else {
                let xr = x.index_select(idx, 0)?;
                let delta = matmul_2d(&matmul_2d(&xr, &a.t()?)?, &b.t()?)?;
                y = y.index_add(idx, &delta, 0)?;
            }
        }
        Ok(y)
    }

    /// Sets (or clears, with `None`) which adapter each batch row applies; while set, the active
    /// set is ignored.
    pub fn set_row_adapters(&mut self, rows: Option<Arc<RowAdapters>>) {
        self.row_adapters = rows;
    }

    /// `||W + s B A||` per output row, detached, f32.
    fn dora_norm(&self, ad: &LoraAdapter) -> Result<Tensor> {
        let w = self.base.dequantize(DType::F32)?;
        row_norms(&(w + ad.delta()?)?)?.detach().contiguous()
    }

    /// The frozen base weight (after merges).
    pub fn base(&self) -> &Arc<dyn FrozenWeight> {
        &self.base
    }

    /// The frozen bias.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// `(out_features, in_features)`.
    pub fn dims(&self) -> (usize, usize) {
        self.base.dims()
    }

    /// Adds (or replaces) a named adapter. It is not made active.
    pub fn add_adapter(&mut self, name: impl Into<String>, adapter: LoraAdapter) {
        let name = name.into();
        self.adapters.retain(|(n, _)| *n != name);
        self.adapters.push((name, adapter));
    }

    /// Removes an adapter (unmerging it first if merged).
    pub fn remove_adapter(&mut self, name: &str) -> Result<()> {
        if self.merged.iter().any(|m| m == name) {
            self.unmerge(name)?;
        }
        self.adapters.retain(|(n, _)| n != name);
        self.full_copies.retain(|(n, _)| n != name);
        self.active.retain(|(n, _)| n != name);
        Ok(())
    }

    /// The adapter of this name.
    pub fn adapter(&self, name: &str) -> Option<&LoraAdapter> {
        self.adapters
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a)
    }

    /// Mutable access to an adapter (loading weights into it).
    pub fn adapter_mut(&mut self, name: &str) -> Option<&mut LoraAdapter> {
        self.adapters
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a)
    }

    /// Names of all adapters of this layer (LoRA and full copies), in insertion order.
    pub fn adapter_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.adapters.iter().map(|(n, _)| n.clone()).collect();
        for (n, _) in &self.full_copies {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        names
    }

    /// Sets the active adapters with their weights (names this layer lacks are kept but
    /// ignored, so a model-wide set works on layers an adapter does not target).
    pub fn set_active(&mut self, active: &[(String, f64)]) {
        self.active = active.to_vec();
    }

    /// The active adapters and their weights.
    pub fn active(&self) -> &[(String, f64)] {
        &self.active
    }

    /// Adds a `modules_to_save` full copy for `name`, initialised from the frozen base.
    pub fn add_full_copy(&mut self, name: impl Into<String>) -> Result<()> {
        let name = name.into();
        let w = self.base.dequantize(DType::F32)?;
        let weight = Var::from_tensor(&w)?;
        let bias = match &self.bias {
            Some(b) => Some(Var::from_tensor(&b.to_dtype(DType::F32)?)?),
            None => None,
        };
        self.full_copies.retain(|(n, _)| *n != name);
        self.full_copies.push((name, FullCopy { weight, bias }));
        Ok(())
    }

    /// The full copy of this name.
    pub fn full_copy(&self, name: &str) -> Option<&FullCopy> {
        self.full_copies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c)
    }

    fn active_full_copy(&self) -> Option<&FullCopy> {
        self.active.iter().find_map(|(n, _)| self.full_copy(n))
    }

    /// Names merged into the base, in merge order.
    pub fn merged(&self) -> &[String] {
        &self.merged
    }

    /// Merges an adapter into the base: `W <- W + s B A` (LoRA) or
    /// `W <- m / ||W + s B A|| * (W + s B A)` (DoRA). The merged base is dense f32.
    pub fn merge(&mut self, name: &str) -> Result<()> {
        if self.merged.iter().any(|m| m == name) || self.adapter(name).is_none() {
            return Ok(());
        }
        self.merged.push(name.to_string());
        self.rebuild_base()
    }

    /// Undoes a merge exactly (the base is rebuilt from the unmerged original).
    pub fn unmerge(&mut self, name: &str) -> Result<()> {
        if !self.merged.iter().any(|m| m == name) {
            return Ok(());
        }
        self.merged.retain(|m| m != name);
        self.rebuild_base()
    }

    /// Replaces the base by `W - delta` (PiSSA's residual); kept across merges, and undone by
    /// nothing (the original weight is gone from this layer on purpose, as in PEFT).
    pub fn subtract_from_base(&mut self, delta: &Tensor) -> Result<()> {
        let w = self.original().dequantize(DType::F32)?;
        let residual: Arc<dyn FrozenWeight> = Arc::new(DenseWeight::new((w - delta)?));
        self.original_base = Some(residual);
        self.rebuild_base()
    }

    fn original(&self) -> &Arc<dyn FrozenWeight> {
        self.original_base.as_ref().unwrap_or(&self.base)
    }

    fn rebuild_base(&mut self) -> Result<()> {
        let original = self.original().clone();
        if self.merged.is_empty() {
            self.base = original;
            self.original_base = None;
            return Ok(());
        }
        let mut w = original.dequantize(DType::F32)?;
        for name in &self.merged {
            let Some(ad) = self.adapter(name) else {
                continue;
            };
            let updated = (&w + ad.delta()?)?;
            w = match &ad.magnitude {
                None => updated,
                Some(m) => {
                    let norm = row_norms(&updated)?;
                    let m = m.as_tensor().to_dtype(DType::F32)?.detach();
                    updated.broadcast_mul(&(m / norm)?.unsqueeze(1)?)?
                }
            };
        }
        self.original_base = Some(original);
        self.base = Arc::new(DenseWeight::new(w));
        Ok(())
    }

    /// The effective dense weight `[out, in]` with every merged adapter, in `dtype`.
    pub fn merged_weight(&self, dtype: DType) -> Result<Tensor> {
        self.base.dequantize(dtype)
    }

    /// Trainable variables of one adapter with PEFT's saved key names
    /// (`base_model.model.<path>.lora_A.weight`, `.lora_B.weight`, `.lora_magnitude_vector`;
    /// full copies: `base_model.model.<path>.weight` / `.bias`).
    pub fn named_vars(&self, name: &str) -> Vec<(String, Var)> {
        self.named_vars_at(name, &self.path)
    }

    /// [`AdaptableLinear::named_vars`] with the layer named `module` (PEFT's module path of
    /// the layer, see `AdaptableModel::peft_path`).
    pub fn named_vars_at(&self, name: &str, module: &str) -> Vec<(String, Var)> {
        let p = format!("base_model.model.{module}");
        let mut out = Vec::new();
        if let Some(ad) = self.adapter(name) {
            out.push((format!("{p}.lora_A.weight"), ad.a.clone()));
            out.push((format!("{p}.lora_B.weight"), ad.b.clone()));
            if let Some(m) = &ad.magnitude {
                out.push((format!("{p}.lora_magnitude_vector"), m.clone()));
            }
        }
        if let Some(c) = self.full_copy(name) {
            out.push((format!("{p}.weight"), c.weight.clone()));
            if let Some(b) = &c.bias {
                out.push((format!("{p}.bias"), b.clone()));
            }
        }
        out
    }
}

/// A layer that a fused op can compute ([`AdaptableLinear::fused_plan`]).
pub(crate) struct FusedPlan<'a> {
    base: Base,
    bias: Option<Tensor>,
    /// The one active LoRA adapter and its weight; `None`: the layer is frozen.
    lora: Option<(&'a LoraAdapter, f64)>,
}

impl FusedPlan<'_> {
    /// The layer for an input of `elems` values, with its `(A, B)` when it has a LoRA adapter;
    /// in training, draws the adapter's dropout mask (the same stream as the composite form).
    pub(crate) fn layer(self, elems: usize, train: bool) -> (LoraLinear, Option<(Tensor, Tensor)>) {
        let (scale, dropout, ab) = match self.lora {
            None => (0.0, None, None),
            Some((ad, weight)) => {
                let dropout = if train && ad.dropout > 0.0 && ad.dropout < 1.0 {
                    Some(LoraDropout {
                        keep: Arc::new(draw_keep(elems, ad.dropout)),
                        scale: f64::from(1.0f32 / (1.0 - ad.dropout)),
                    })
                } else {
                    None
                };
                let ab = (param(&ad.a), param(&ad.b));
                (ad.scale * weight, dropout, Some(ab))
            }
        };
        let layer = LoraLinear {
            w: self.base,
            bias: self.bias,
            scale,
            dropout,
        };
        (layer, ab)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::adapters::lora::{LoraInit, LoraSpec};
    use candle_core::Device;

    /// A stand-in for a quantized base: weights rounded to multiples of 1/8, stored as i64.
    #[derive(Debug)]
    struct Rounded {
        q: Tensor,
    }

    impl FrozenWeight for Rounded {
        fn forward(&self, x: &Tensor) -> Result<Tensor> {
            crate::runtime::ops::frozen_matmul::frozen_matmul(x, &self.dequantize(x.dtype())?)
        }
        fn dequantize(&self, dtype: DType) -> Result<Tensor> {
            (self.q.to_dtype(DType::F32)? / 8.0)?.to_dtype(dtype)
        }
        fn dims(&self) -> (usize, usize) {
            let d = self.q.dims();
            (d[0], d[1])
        }
        fn storage_bytes(&self) -> usize {
            self.q.elem_count()
        }
        fn format(&self) -> &str {
            "rounded"
        }
    }

    #[test]
    fn merge_goes_through_dequantize_and_unmerge_restores_the_quantized_base() -> Result<()> {
        let dev = Device::Cpu;
        let q = (Tensor::randn(0f32, 8.0, (6, 5), &dev)?.round()?).to_dtype(DType::I64)?;
        let base: Arc<dyn FrozenWeight> = Arc::new(Rounded { q });
        let mut layer = AdaptableLinear::new("l", base, None);
        let spec = LoraSpec {
            r: 2,
            alpha: 4.0,
            init: LoraInit::RandomBoth { std: 0.3 },
            ..LoraSpec::default()
        };
        layer.add_adapter("a", LoraAdapter::init(&spec, 6, 5, &dev)?);
        layer.set_active(&[("a".into(), 1.0)]);
        let x = Tensor::randn(0f32, 1.0, (3, 5), &dev)?;
        let unmerged = layer.forward(&x, false)?;
        layer.merge("a")?;
        assert_eq!(layer.base().format(), "f32");
        let merged = layer.forward(&x, false)?;
        assert!((&unmerged - merged)?.abs()?.max_all()?.to_scalar::<f32>()? < 1e-5);
        layer.unmerge("a")?;
        assert_eq!(layer.base().format(), "rounded");
        let again = layer.forward(&x, false)?;
        assert_eq!(unmerged.to_vec2::<f32>()?, again.to_vec2::<f32>()?);
        // Half weight on the adapter halves its delta.
        layer.set_active(&[("a".into(), 0.5)]);
        let half = layer.forward(&x, false)?;
        layer.set_active(&[]);
        let plain = layer.forward(&x, false)?;
        let expect = ((&unmerged - &plain)? * 0.5)?;
        assert!(
            ((half - plain)? - expect)?
                .abs()?
                .max_all()?
                .to_scalar::<f32>()?
                < 1e-5
        );
        Ok(())
    }

    /// A QLoRA layer (NF4 base with double quantization, three row tiles) runs as the fused op
    /// and computes what the composite form computes: the tiled frozen product plus the
    /// low-rank delta; values within 1e-5, gradients of the input, `A` and `B` within 1e-4.
    #[test]
    fn a_lora_layer_over_nf4_is_one_op_equal_to_the_composite_form() -> Result<()> {
        use crate::runtime::quant::nf4::{Nf4Weight, Packed4Config};
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (48, 64), &dev)?;
        let cfg = Packed4Config {
            double_quant_block: Some(256),
            ..Packed4Config::default()
        };
        let nf4 = Nf4Weight::quantize(&w, cfg)?.with_tile_bytes(16 * 64 * 4);
        let base: Arc<dyn FrozenWeight> = Arc::new(nf4);
        let mut layer = AdaptableLinear::new("l", base.clone(), None);
        let spec = LoraSpec {
            r: 4,
            alpha: 8.0,
            init: LoraInit::RandomBoth { std: 0.3 },
            ..LoraSpec::default()
        };
        layer.add_adapter("a", LoraAdapter::init(&spec, 48, 64, &dev)?);
        layer.set_active(&[("a".into(), 1.0)]);
        let x = candle_core::Var::randn(0f32, 1.0, (2, 5, 64), &dev)?;
        assert!(layer.fused_lora(x.as_tensor(), true)?.is_some());
        let fused = layer.forward(x.as_tensor(), true)?;
        let ad = layer.adapter("a").expect("the adapter");
        let sa = (ad.a.as_tensor() * ad.scale)?;
        let delta = matmul_2d(&matmul_2d(x.as_tensor(), &sa.t()?)?, &ad.b.as_tensor().t()?)?;
        let composite = (base.forward(x.as_tensor())? + delta)?;
        let diff = |a: &Tensor, b: &Tensor| -> Result<f32> {
            (a - b)?.abs()?.max_all()?.to_scalar::<f32>()
        };
        assert!(diff(&fused, &composite)? < 1e-5);
        let probe = Tensor::randn(0f32, 1.0, fused.shape(), &dev)?;
        let gf = (&fused * &probe)?.sum_all()?.backward()?;
        let gc = (&composite * &probe)?.sum_all()?.backward()?;
        for v in [x.as_tensor(), ad.a.as_tensor(), ad.b.as_tensor()] {
            let (f, c) = (gf.get(v).expect("fused grad"), gc.get(v).expect("grad"));
            assert!(diff(f, c)? < 1e-4, "{}", diff(f, c)?);
        }
        Ok(())
    }
}
