//! LoRA layers that read one input (a block's q, k and v; gate and up) with their LoRA
//! products stacked: the layers' `s A` side by side as one `[R, k]` matrix (`R` the sum of
//! the ranks), so that
//! - forward: `T = x (S A)^T` (`[m, R]`, every layer's `t` as a column block) is one product
//!   reading `x` once instead of once per layer;
//! - backward: `dx += U (S A)` is one pass over `dx` (`U` the layers' `u = g B` side by side)
//!   instead of one per layer, and `dA` of every layer one pass over `x`.
//!
//! The LoRA factors' gradients come from [`super::lora_grads`]. Only for layers without
//! dropout (their LoRA input is `x` itself) and at least two LoRA parts ([`stackable`]); the
//! block ops take each layer on its own otherwise. Must compute what
//! [`LoraLinear::forward_into`] and [`LoraLinear::backward_into`] compute, within rounding
//! (the block ops' tests compare both forms).

use super::gemm::{gemm_into, View};
use super::lora_grads;
use super::lora_linear::LoraLinear;
use candle_core::{Result, WithDType};

/// One layer's LoRA matrices: `(A, r)` and `B`, as [`super::lora_group::Group::unpack`]
/// gives them.
pub(crate) type Factors<'a, T> = ((&'a [T], usize), &'a [T]);

/// Whether [`forward`] and [`backward`] apply: no layer has dropout and two or more have a
/// LoRA part (one alone has nothing to share).
pub(crate) fn stackable<T>(layers: &[&LoraLinear], ab: &[Factors<'_, T>]) -> bool {
    layers.len() == ab.len()
        && layers.iter().all(|l| l.dropout.is_none())
        && ab.iter().filter(|((_, r), _)| *r > 0).count() >= 2
}

/// The layers' `s A` stacked (`[R, k]`), their column offsets in `T` and `R`.
fn stacked_a<T: WithDType>(
    layers: &[&LoraLinear],
    ab: &[Factors<'_, T>],
    k: usize,
) -> Result<(Vec<T>, Vec<usize>, usize)> {
    let total: usize = ab.iter().map(|((_, r), _)| r).sum();
    let mut sa = Vec::with_capacity(total * k);
    let mut offsets = Vec::with_capacity(ab.len());
    for (layer, ((a, r), _)) in layers.iter().zip(ab) {
        if a.len() != r * k {
            candle_core::bail!("lora-stack: A of {} values for rank {r} over {k}", a.len())
        }
        offsets.push(sa.len() / k.max(1));
        let s = T::from_f64(layer.scale);
        sa.extend(a.iter().map(|&v| v * s));
    }
    Ok((sa, offsets, total))
}

/// Every layer's output `ys[i] = x W_i^T + b_i + t_i B_i^T` (each overwritten) for
/// `x: [m, k]`; returns `T` (`[m, R]`) for [`backward`].
pub(crate) fn forward<T: WithDType>(
    layers: &[&LoraLinear],
    ab: &[Factors<'_, T>],
    x: &[T],
    k: usize,
    ys: &mut [&mut [T]],
) -> Result<Vec<T>> {
    let m = x.len().checked_div(k).unwrap_or(0);
    let (sa, offsets, total) = stacked_a(layers, ab, k)?;
    // SAFETY: the product overwrites `t` whole.
    let mut t = unsafe { super::uninit::<T>(m * total) };
    gemm_into(
        &mut t,
        View::new(x, m, k)?,
        View::new(&sa, total, k)?.t(),
        false,
        1.0,
    )?;
    drop(sa);
    if ys.len() != layers.len() {
        candle_core::bail!(
            "lora-stack: {} outputs for {} layers",
            ys.len(),
            layers.len()
        )
    }
    // The base products are independent: each one's serial stretches overlap the others'.
    base_products(layers, x, (m, k), ys)?;
    for (((layer, ((_, r), b)), y), &off) in layers.iter().zip(ab).zip(ys).zip(&offsets) {
        if *r == 0 {
            continue;
        }
        let (n, _) = layer.dims()?;
        let ti = View::strided(&t[off..], m, *r, total)?;
        gemm_into(y, ti, View::new(b, n, *r)?.t(), true, 1.0)?;
    }
    Ok(t)
}

/// `ys[i] = x W_i^T + b_i` for every layer, on rayon's threads.
fn base_products<T: WithDType>(
    layers: &[&LoraLinear],
    x: &[T],
    (m, k): (usize, usize),
    ys: &mut [&mut [T]],
) -> Result<()> {
    match (layers, ys) {
        ([], []) => Ok(()),
        ([l, rest @ ..], [y, ys @ ..]) => {
            let (a, b) = rayon::join(
                || l.base_into(y, x, (m, k)),
                || base_products(rest, x, (m, k), ys),
            );
            a.and(b)
        }
        _ => candle_core::bail!("lora-stack: outputs and layers differ in number"),
    }
}

/// Every layer's `(dA, dB)` (empty for a layer without LoRA) for its output gradient
/// `gs[i]`, and `dx = sum_i g_i W_i + U (S A)` into `dx` when given (overwritten), from the
/// `T` that [`forward`] returned.
#[allow(clippy::type_complexity)]
pub(crate) fn backward<T: WithDType>(
    layers: &[&LoraLinear],
    ab: &[Factors<'_, T>],
    (x, t): (&[T], &[T]),
    gs: &[&[T]],
    dx: Option<&mut [T]>,
    k: usize,
) -> Result<Vec<(Vec<T>, Vec<T>)>> {
    let m = x.len().checked_div(k).unwrap_or(0);
    let (sa, offsets, total) = stacked_a(layers, ab, k)?;
    if gs.len() != layers.len() || t.len() != m * total {
        candle_core::bail!("lora-stack: gradients or kept values do not fit the layers")
    }
    // SAFETY: every layer's `u_and_db_into` writes its columns of every row of `u`, and the
    // layers' columns cover the rows (the offsets partition `0..total`).
    let mut u = unsafe { super::uninit::<T>(m * total) };
    let mut dbs = Vec::with_capacity(layers.len());
    for (((layer, ((_, r), b)), g), &off) in layers.iter().zip(ab).zip(gs).zip(&offsets) {
        let (n, _) = layer.dims()?;
        if *r == 0 {
            dbs.push(Vec::new());
            continue;
        }
        let (ui, ti) = ((&mut u[off..], total), (&t[off..], total));
        dbs.push(lora_grads::u_and_db_into(ui, g, b, ti, (m, n, *r))?);
    }
    if let Some(dx) = dx {
        for (i, (layer, g)) in layers.iter().zip(gs).enumerate() {
            layer.w.times(dx, g, (m, k), i > 0)?;
        }
        let (uv, sav) = (View::new(&u, m, total)?, View::new(&sa, total, k)?);
        gemm_into(dx, uv, sav, !layers.is_empty(), 1.0)?;
    }
    drop(sa);
    let scales: Vec<f64> = (layers.iter().zip(ab))
        .flat_map(|(l, ((_, r), _))| std::iter::repeat_n(l.scale, *r))
        .collect();
    let da = lora_grads::da((&u, total), x, &scales, (m, k, total))?;
    let grads = (ab.iter().zip(&offsets).zip(dbs))
        .map(|((((_, r), _), &off), db)| (da[off * k..(off + r) * k].to_vec(), db))
        .collect();
    Ok(grads)
}
