//! What the block ops ([`super::lora_mlp`], [`super::lora_attention`]) share: several
//! [`LoraLinear`] layers whose LoRA matrices travel packed in one 1-D tensor (`A` then `B` of
//! each adapted layer, in layer order; a block op has two inputs, the activations and this), and
//! the buffers a forward pass keeps for its backward pass. Must keep the packing order the one
//! place it is defined: the packed gradient is split back onto the adapters by candle's `cat`.

use super::lora_linear::LoraLinear;
use candle_core::{DType, Result, Tensor, WithDType};
use std::sync::Mutex;

/// The layers of a block with their LoRA ranks (0: frozen).
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) layers: Vec<LoraLinear>,
    ranks: Vec<usize>,
}

impl Group {
    /// The group and its packed LoRA matrices, for activations of `dtype` on the CPU: each
    /// layer with its `(A: [r, in], B: [out, r])` when adapted.
    pub(crate) fn pack(
        layers: Vec<(LoraLinear, Option<(Tensor, Tensor)>)>,
        dtype: DType,
    ) -> Result<(Self, Tensor)> {
        if !matches!(dtype, DType::F32 | DType::F64) {
            candle_core::bail!("lora-group: f32 or f64 activations only, not {dtype:?}")
        }
        let mut ranks = Vec::with_capacity(layers.len());
        let mut parts = Vec::new();
        let mut linears = Vec::with_capacity(layers.len());
        for (layer, ab) in layers {
            let mut r = 0;
            if let Some((a, b)) = ab {
                let (n, k) = layer.dims()?;
                let (ra, ka) = a.dims2()?;
                if ka != k || b.dims2()? != (n, ra) {
                    candle_core::bail!(
                        "lora-group: A {:?} and B {:?} do not fit a {n}x{k} layer",
                        a.dims(),
                        b.dims()
                    )
                }
                if [&a, &b]
                    .iter()
                    .any(|t| t.dtype() != dtype || !t.device().is_cpu())
                {
                    candle_core::bail!("lora-group: LoRA matrices must be CPU tensors in {dtype:?}")
                }
                r = ra;
                parts.push(a.flatten_all()?);
                parts.push(b.flatten_all()?);
            }
            ranks.push(r);
            linears.push(layer);
        }
        let packed = match parts.is_empty() {
            true => Tensor::zeros(0, dtype, &candle_core::Device::Cpu)?,
            false => Tensor::cat(&parts, 0)?,
        };
        let group = Self {
            layers: linears,
            ranks,
        };
        Ok((group, packed))
    }

    /// Layer `i`'s `(A, r)` and `B` within the packed values `p`.
    #[allow(clippy::type_complexity)]
    pub(crate) fn unpack<'a, T>(&self, p: &'a [T]) -> Result<Vec<((&'a [T], usize), &'a [T])>> {
        let mut rest = p;
        let mut out = Vec::with_capacity(self.layers.len());
        for (l, &r) in self.layers.iter().zip(&self.ranks) {
            let (n, k) = l.dims()?;
            if rest.len() < r * (k + n) {
                candle_core::bail!("lora-group: too few packed values")
            }
            let (a, tail) = rest.split_at(r * k);
            let (b, tail) = tail.split_at(n * r);
            out.push(((a, r), b));
            rest = tail;
        }
        if !rest.is_empty() {
            candle_core::bail!("lora-group: {} packed values left over", rest.len())
        }
        Ok(out)
    }
}

/// The packed gradient from each layer's `(dA, dB)` (empty for frozen layers), in packing order.
pub(crate) fn packed_grad<T: Copy>(parts: Vec<(Vec<T>, Vec<T>)>) -> Vec<T> {
    let len = parts.iter().map(|(a, b)| a.len() + b.len()).sum();
    let mut out = Vec::with_capacity(len);
    for (a, b) in parts {
        out.extend_from_slice(&a);
        out.extend_from_slice(&b);
    }
    out
}

/// Buffers of one element type kept by a forward pass.
#[derive(Debug)]
pub(crate) enum Buffers {
    F32(Vec<Vec<f32>>),
    F64(Vec<Vec<f64>>),
}

/// The element types the block ops compute in, with how their kept buffers are stored.
pub(crate) trait Elem: WithDType {
    fn wrap(v: Vec<Vec<Self>>) -> Buffers;
    fn unwrap(k: Buffers) -> Option<Vec<Vec<Self>>>;
}

impl Elem for f32 {
    fn wrap(v: Vec<Vec<f32>>) -> Buffers {
        Buffers::F32(v)
    }
    fn unwrap(k: Buffers) -> Option<Vec<Vec<f32>>> {
        match k {
            Buffers::F32(v) => Some(v),
            Buffers::F64(_) => None,
        }
    }
}

impl Elem for f64 {
    fn wrap(v: Vec<Vec<f64>>) -> Buffers {
        Buffers::F64(v)
    }
    fn unwrap(k: Buffers) -> Option<Vec<Vec<f64>>> {
        match k {
            Buffers::F64(v) => Some(v),
            Buffers::F32(_) => None,
        }
    }
}

/// What a forward pass keeps for the backward pass, when one can follow (`enabled`). The
/// backward pass takes it (so it is freed as soon as used) and recomputes when it is gone.
#[derive(Debug)]
pub(crate) struct Kept {
    enabled: bool,
    buffers: Mutex<Option<Buffers>>,
}

impl Kept {
    pub(crate) fn new(enabled: bool) -> Self {
        Self {
            enabled,
            buffers: Mutex::new(None),
        }
    }

    pub(crate) fn put<T: Elem>(&self, v: Vec<Vec<T>>) {
        if self.enabled {
            if let Ok(mut b) = self.buffers.lock() {
                *b = Some(T::wrap(v));
            }
        }
    }

    /// The kept buffers, when there are `n` of type `T`.
    pub(crate) fn take<T: Elem>(&self, n: usize) -> Option<Vec<Vec<T>>> {
        let b = self.buffers.lock().ok()?.take()?;
        T::unwrap(b).filter(|v| v.len() == n)
    }
}

/// Test layers for the block ops: one layer as the block op takes it and as the separate ops
/// compute it.
#[cfg(test)]
pub(crate) mod testing {
    use crate::runtime::ops::frozen_matmul::frozen_matmul;
    use crate::runtime::ops::lora_linear::{lora_linear, Base, LoraDropout, LoraLinear};
    use candle_core::{Result, Tensor};
    use std::sync::Arc;

    /// One layer of a test block: weight, bias, `(A, B)`, scale, dropout.
    #[derive(Clone)]
    pub(crate) struct Spec {
        pub(crate) w: Tensor,
        pub(crate) bias: Option<Tensor>,
        pub(crate) ab: Option<(Tensor, Tensor)>,
        pub(crate) scale: f64,
        pub(crate) dropout: Option<LoraDropout>,
    }

    impl Spec {
        pub(crate) fn layer(&self) -> (LoraLinear, Option<(Tensor, Tensor)>) {
            let layer = LoraLinear {
                w: Base::Dense(self.w.clone()),
                bias: self.bias.clone(),
                scale: self.scale,
                dropout: self.dropout.clone(),
            };
            (layer, self.ab.clone())
        }

        /// The layer as the separate ops compute it.
        pub(crate) fn separate(&self, x: &Tensor) -> Result<Tensor> {
            match &self.ab {
                Some((a, b)) => lora_linear(
                    x,
                    Base::Dense(self.w.clone()),
                    self.bias.as_ref(),
                    (a, b),
                    self.scale,
                    self.dropout.clone(),
                ),
                None => {
                    let y = frozen_matmul(x, &self.w)?;
                    match &self.bias {
                        Some(b) => y.broadcast_add(b),
                        None => Ok(y),
                    }
                }
            }
        }
    }
    pub(crate) fn keep(n: usize, salt: usize) -> LoraDropout {
        LoraDropout {
            keep: Arc::new((0..n).map(|i| !(i * 7 + salt).is_multiple_of(5)).collect()),
            scale: 1.25,
        }
    }

    /// The LoRA matrices of the layers that have them, in packing order.
    pub(crate) fn vars(specs: &[Spec]) -> Vec<Tensor> {
        specs
            .iter()
            .filter_map(|s| s.ab.clone())
            .flat_map(|(a, b)| [a, b])
            .collect()
    }
}
