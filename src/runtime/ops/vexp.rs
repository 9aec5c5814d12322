//! Vectorised f32 kernels built on one branch-free `exp`: softmax rows, log-sum-exp, the
//! cross-entropy gradient and SwiGLU's sigmoid.
//!
//! glibc's `expf` is a scalar call per element, and for arguments below -103 (masked attention
//! scores, far tails of a 50k-entry vocabulary) it takes a slow path that sets `errno`. With
//! attention, cross-entropy and SwiGLU that is a few hundred million calls per step on a
//! 135M-parameter model. [`exp`] is Cephes' `expf` (range reduction by `ln 2` in two parts and a
//! degree-5 polynomial, within 2 ulp of the correctly rounded value) written without branches,
//! so the loops here vectorise; each loop is compiled for AVX-512 and AVX2 as well as the
//! baseline and picked at run time. No FMA contraction is used: every path computes the same
//! bits, on any machine.
//!
//! Results below `2^-125` (arguments under -86.6) flush to 0 (the smallest values a softmax
//! can hold are far larger than what this changes); overflow gives `inf`; NaN stays NaN.
//! Reductions sum in 16 lanes, then the lanes in order: a different order from a scalar loop,
//! no less accurate. Must not be used where an exact match to `f32::exp` is promised.

const LOG2E: f32 = std::f32::consts::LOG2_E;
/// `1.5 * 2^23`: adding it rounds to an integer held in the low mantissa bits.
const ROUND: f32 = 12_582_912.0;
/// `ln 2` as a short high part (exact products with small integers) and the rest.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Below this, `exp` flushes to 0; above [`HIGH`] it is `inf`.
const LOW: f32 = -86.6;
const HIGH: f32 = 88.722_84;
const LANES: usize = 16;

/// `e^x` for one value, branch-free (see the module doc for its accuracy and limits).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let c = x.clamp(LOW, HIGH);
    let t = c * LOG2E + ROUND;
    let n = t - ROUND;
    let r = c - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let y = p * (r * r) + r + 1.0;
    // 2^(n-1) from the rounded integer in `t`'s mantissa (n is in [-125, 128] after the clamp);
    // the factor 2 is applied last so that n = 128 stays finite until the product overflows.
    let k = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let scale = f32::from_bits((k.wrapping_add(126) as u32) << 23);
    let v = y * scale * 2.0;
    let v = if x < LOW { 0.0 } else { v };
    let v = if x > HIGH { f32::INFINITY } else { v };
    if x.is_nan() {
        x
    } else {
        v
    }
}

/// Compiles `$body` (a function of slices) for AVX-512, AVX2 and the baseline, and calls the
/// best one the CPU has.
macro_rules! simd {
    ($(#[$doc:meta])* pub fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? $body:block) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn imp($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? { imp($($arg),*) }
                #[target_feature(enable = "avx2")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? { imp($($arg),*) }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has the features the function was compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            imp($($arg),*)
        }
    };
}
pub(super) use simd;

simd! {
    /// The largest value (NaN is skipped; `-inf` for an empty slice).
    pub fn max(xs: &[f32]) -> f32 {
        max_lanes(xs)
    }
}

/// [`max`]'s loop, inlined into the kernels that use it.
#[inline(always)]
fn max_lanes(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut it = xs.chunks_exact(LANES);
    for c in &mut it {
        for l in 0..LANES {
            acc[l] = if c[l] > acc[l] { c[l] } else { acc[l] };
        }
    }
    for (l, &v) in it.remainder().iter().enumerate() {
        acc[l] = if v > acc[l] { v } else { acc[l] };
    }
    acc.iter()
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m })
}

simd! {
    /// `xs[i] = e^(xs[i] - m)` in place; returns the sum of the new values.
    pub fn exp_sub_sum(xs: &mut [f32], m: f32) -> f32 {
        exp_sub_sum_lanes(xs, m)
    }
}

/// [`exp_sub_sum`]'s loop, inlined into the kernels that use it.
#[inline(always)]
fn exp_sub_sum_lanes(xs: &mut [f32], m: f32) -> f32 {
    let mut acc = [0f32; LANES];
    let mut it = xs.chunks_exact_mut(LANES);
    for c in &mut it {
        for l in 0..LANES {
            let e = exp(c[l] - m);
            c[l] = e;
            acc[l] += e;
        }
    }
    for (l, v) in it.into_remainder().iter_mut().enumerate() {
        *v = exp(*v - m);
        acc[l] += *v;
    }
    acc.iter().sum()
}

simd! {
    /// The sum of `e^(xs[i] - m)`.
    pub fn sum_exp_sub(xs: &[f32], m: f32) -> f32 {
        let mut acc = [0f32; LANES];
        let mut it = xs.chunks_exact(LANES);
        for c in &mut it {
            for l in 0..LANES {
                acc[l] += exp(c[l] - m);
            }
        }
        for (l, &v) in it.remainder().iter().enumerate() {
            acc[l] += exp(v - m);
        }
        acc.iter().sum()
    }
}

simd! {
    /// `out[i] = s * e^(xs[i] - m)` (the softmax-times-gradient of a cross-entropy row).
    pub fn scaled_exp_sub(out: &mut [f32], xs: &[f32], m: f32, s: f32) {
        for (o, &x) in out.iter_mut().zip(xs) {
            *o = s * exp(x - m);
        }
    }
}

simd! {
    /// `xs[i] *= s`.
    pub fn scale(xs: &mut [f32], s: f32) {
        scale_lanes(xs, s)
    }
}

/// [`scale`]'s loop, inlined into the kernels that use it.
#[inline(always)]
fn scale_lanes(xs: &mut [f32], s: f32) {
    for x in xs.iter_mut() {
        *x *= s;
    }
}

/// Log-sum-exp of a row (`-inf` for an empty or all `-inf` row; NaN in, NaN out).
pub fn log_sum_exp(row: &[f32]) -> f32 {
    let m = max(row);
    if m == f32::NEG_INFINITY {
        return if row.iter().any(|v| v.is_nan()) {
            f32::NAN
        } else {
            m
        };
    }
    m + sum_exp_sub(row, m).ln()
}

/// Softmax of `row` in place (as candle's `softmax_last_dim`: shift by the row's maximum).
pub fn softmax_in_place(row: &mut [f32]) {
    let m = max(row);
    let sum = exp_sub_sum(row, m);
    scale(row, 1.0 / sum);
}

simd! {
    /// [`softmax_in_place`] on rows `rows` of `p` (rows `s` apart), each over its first `cols`
    /// values after adding its bias (`bias`: one row of `s` shared by every row, or `[s, s]`),
    /// in one call: attention's rows are short, and a call per row and pass cost as much as
    /// the passes.
    pub fn biased_softmax_rows(p: &mut [f32], bias: &[f32], s: usize, rows: std::ops::Range<usize>, cols: usize) {
        let shared = bias.len() == s;
        for t in rows {
            let b = if shared { &bias[..cols] } else { &bias[t * s..t * s + cols] };
            let row = &mut p[t * s..t * s + cols];
            for (v, &b) in row.iter_mut().zip(b) {
                *v += b;
            }
            let m = max_lanes(row);
            let sum = exp_sub_sum_lanes(row, m);
            scale_lanes(row, 1.0 / sum);
        }
    }
}

simd! {
    /// Softmax backward for one row: `ds[i] = p[i] * (ds[i] - sum_j ds[j] p[j])`, with `ds`
    /// holding the gradient of the probabilities `p` on entry.
    pub fn softmax_backward_row(ds: &mut [f32], p: &[f32]) {
        softmax_backward_lanes(ds, p)
    }
}

simd! {
    /// [`softmax_backward_row`] on rows `rows` of `ds` and `p` (rows `s` apart), each over its
    /// first `cols` values, in one call.
    pub fn softmax_backward_rows(ds: &mut [f32], p: &[f32], s: usize, rows: std::ops::Range<usize>, cols: usize) {
        for t in rows {
            softmax_backward_lanes(&mut ds[t * s..t * s + cols], &p[t * s..t * s + cols]);
        }
    }
}

/// [`softmax_backward_row`]'s loops, inlined into the kernels that use them.
#[inline(always)]
fn softmax_backward_lanes(ds: &mut [f32], p: &[f32]) {
    let n = ds.len().min(p.len());
    let (ds, p) = (&mut ds[..n], &p[..n]);
    let mut acc = [0f32; LANES];
    let mut it = ds.chunks_exact(LANES).zip(p.chunks_exact(LANES));
    for (a, b) in &mut it {
        for l in 0..LANES {
            acc[l] += a[l] * b[l];
        }
    }
    let tail = n - n % LANES;
    for (l, i) in (tail..n).enumerate() {
        acc[l] += ds[i] * p[i];
    }
    let dot: f32 = acc.iter().sum();
    for (a, &b) in ds.iter_mut().zip(p) {
        *a = b * (*a - dot);
    }
}

simd! {
    /// SwiGLU forward: `out[i] = g / (1 + e^-g) * u`.
    pub fn swiglu_forward(out: &mut [f32], g: &[f32], u: &[f32]) {
        for ((o, &g), &u) in out.iter_mut().zip(g).zip(u) {
            *o = (g / (1.0 + exp(-g))) * u;
        }
    }
}

simd! {
    /// SwiGLU backward: `dg = grad u s (1 + g (1 - s))`, `du = grad g s` with `s = sigmoid(g)`.
    pub fn swiglu_backward(dg: &mut [f32], du: &mut [f32], grad: &[f32], g: &[f32], u: &[f32]) {
        let n = dg.len().min(du.len()).min(grad.len()).min(g.len()).min(u.len());
        let (dg, du, grad, g, u) = (&mut dg[..n], &mut du[..n], &grad[..n], &g[..n], &u[..n]);
        for i in 0..n {
            let s = 1.0 / (1.0 + exp(-g[i]));
            dg[i] = grad[i] * u[i] * s * (1.0 + g[i] * (1.0 - s));
            du[i] = grad[i] * g[i] * s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f64) -> f64 {
        let b32 = b as f32;
        let ulp = (f32::from_bits(b32.to_bits() + 1) - b32) as f64;
        (a as f64 - b).abs() / ulp
    }

    #[test]
    fn exp_is_within_two_ulp_of_the_exact_value() {
        let mut worst = 0f64;
        let mut x = -86.5f32;
        while x < 88.7 {
            let e = ulps(exp(x), (x as f64).exp());
            worst = worst.max(e);
            x += 0.000_37 * (1.0 + x.abs());
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
    }

    #[test]
    fn exp_edges() {
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-1e30), 0.0);
        assert_eq!(exp(-87.0), 0.0);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(89.0), f32::INFINITY);
        assert!(exp(88.72).is_finite() && exp(88.72) > 3.3e38);
        assert!(exp(f32::NAN).is_nan());
        assert!((exp(-86.0) as f64 / (-86.0f64).exp() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn block_kernels_give_the_row_kernels_bits() {
        // Rows of 40 values, 37 of them used; a shared bias row and a square one.
        let (s, cols) = (40usize, 37usize);
        let values = |salt: u32| -> Vec<f32> {
            (0..s * s)
                .map(|i| {
                    (((i as u32).wrapping_mul(2_654_435_761) ^ salt) % 1000) as f32 / 100.0 - 5.0
                })
                .collect()
        };
        for bias in [values(1)[..s].to_vec(), values(2)] {
            let (mut p, mut want) = (values(3), values(3));
            biased_softmax_rows(&mut p, &bias, s, 3..30, cols);
            for t in 3..30 {
                let b = if bias.len() == s {
                    &bias[..]
                } else {
                    &bias[t * s..]
                };
                let row = &mut want[t * s..t * s + cols];
                for (v, &b) in row.iter_mut().zip(b) {
                    *v += b;
                }
                softmax_in_place(row);
            }
            assert_eq!(p, want);
            let (mut ds, mut want_ds) = (values(4), values(4));
            softmax_backward_rows(&mut ds, &p, s, 5..33, cols);
            for t in 5..33 {
                softmax_backward_row(&mut want_ds[t * s..t * s + cols], &p[t * s..t * s + cols]);
            }
            assert_eq!(ds, want_ds);
        }
    }

    #[test]
    fn row_kernels_match_scalar_f64() {
        // Lengths around the lane width, values with a wide spread and masked entries.
        for n in [0usize, 1, 7, 16, 17, 33, 1000] {
            let xs: Vec<f32> = (0..n)
                .map(|i| match i % 5 {
                    4 => -1e30,
                    _ => ((i * 37 % 101) as f32 - 50.0) * 0.37,
                })
                .collect();
            let m64 = xs.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            assert_eq!(max(&xs) as f64, m64);
            if n == 0 {
                assert_eq!(log_sum_exp(&xs), f32::NEG_INFINITY);
                continue;
            }
            let s64: f64 = xs.iter().map(|&v| (v as f64 - m64).exp()).sum();
            let lse = log_sum_exp(&xs) as f64;
            assert!((lse - (m64 + s64.ln())).abs() < 1e-5, "n {n}: {lse}");
            let mut p = xs.clone();
            softmax_in_place(&mut p);
            for (&pi, &xi) in p.iter().zip(&xs) {
                let want = (xi as f64 - m64).exp() / s64;
                assert!((pi as f64 - want).abs() < 1e-6, "n {n}: {pi} vs {want}");
            }
            let mut out = vec![0f32; n];
            scaled_exp_sub(&mut out, &xs, lse as f32, 0.5);
            let mut ds: Vec<f32> = (0..n).map(|i| (i as f32 * 0.9).sin()).collect();
            let dot: f64 = ds.iter().zip(&p).map(|(&a, &b)| a as f64 * b as f64).sum();
            let want: Vec<f64> = ds
                .iter()
                .zip(&p)
                .map(|(&a, &b)| b as f64 * (a as f64 - dot))
                .collect();
            softmax_backward_row(&mut ds, &p);
            for (&got, &w) in ds.iter().zip(&want) {
                assert!((got as f64 - w).abs() < 1e-6);
            }
            for (&o, &xi) in out.iter().zip(&xs) {
                let want = 0.5 * (xi as f64 - m64).exp() / s64;
                assert!((o as f64 - want).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn nan_propagates_through_log_sum_exp() {
        assert!(log_sum_exp(&[1.0, f32::NAN, 2.0]).is_nan());
        assert!(log_sum_exp(&[f32::NAN]).is_nan());
    }

    #[test]
    fn swiglu_kernels_match_f64() {
        let g: Vec<f32> = (0..100).map(|i| (i as f32 - 50.0) * 0.21).collect();
        let u: Vec<f32> = (0..100).map(|i| (i as f32 * 0.7).sin()).collect();
        let gr: Vec<f32> = (0..100).map(|i| (i as f32 * 0.3).cos()).collect();
        let mut y = vec![0f32; 100];
        swiglu_forward(&mut y, &g, &u);
        let (mut dg, mut du) = (vec![0f32; 100], vec![0f32; 100]);
        swiglu_backward(&mut dg, &mut du, &gr, &g, &u);
        for i in 0..100 {
            let (g, u, gr) = (g[i] as f64, u[i] as f64, gr[i] as f64);
            let s = 1.0 / (1.0 + (-g).exp());
            assert!((y[i] as f64 - g * s * u).abs() < 1e-5);
            assert!((dg[i] as f64 - gr * u * s * (1.0 + g * (1.0 - s))).abs() < 1e-5);
            assert!((du[i] as f64 - gr * g * s).abs() < 1e-5);
        }
    }
}
