//! A vectorised f32 `erf` and the exact GELU's row kernels on it (BERT's feed-forward
//! activation, forward and backward).
//!
//! libm's `erff` is a scalar call with branches per element; in a MiniLM LoRA step the GELU's
//! two passes over the `[tokens, intermediate]` activations spent about a fifth of the CPU time
//! in it. [`erf`] is the same FreeBSD/musl algorithm (the same coefficients, the same ranges:
//! a rational function below 0.84375, another up to 1.25, `1 - erfc` with two rational fits in
//! `1/x^2` and two exponentials up to 6, `±1` beyond) written without branches: every lane
//! computes each range and keeps its own, the two `erfc` fits share one Horner chain whose
//! coefficients are picked per lane. Its exponentials are [`super::vexp::exp`] (within 2 ulp)
//! instead of libm's `expf`, so results can differ from libm's `erff` in the last bit or two
//! (tested over the whole range). No FMA contraction: every path computes the same bits.
//! Must not be used where libm's exact bits are promised.

use super::vexp::{exp, simd};

const ERX: f32 = 8.450629e-1;
const PP: [f32; 5] = [
    1.2837917e-1,
    -3.250421e-1,
    -2.848175e-2,
    -5.7702702e-3,
    -2.3763017e-5,
];
const QQ: [f32; 5] = [
    3.979172e-1,
    6.502225e-2,
    5.081306e-3,
    1.3249474e-4,
    -3.9602282e-6,
];
const PA: [f32; 7] = [
    -2.3621186e-3,
    4.148561e-1,
    -3.7220788e-1,
    3.1834662e-1,
    -1.10894695e-1,
    3.5478305e-2,
    -2.1663755e-3,
];
const QA: [f32; 6] = [
    1.0642088e-1,
    5.4039794e-1,
    7.1828656e-2,
    1.2617122e-1,
    1.3637084e-2,
    1.19845e-2,
];
/// `erfc` on [1.25, 1/0.35): numerator and denominator (after its leading 1).
const RA: [f32; 8] = [
    -9.864944e-3,
    -6.9385856e-1,
    -1.0558626e1,
    -6.237533e1,
    -1.6239667e2,
    -1.8460509e2,
    -8.128744e1,
    -9.814329,
];
const SA: [f32; 8] = [
    1.9651272e1,
    1.3765776e2,
    4.345659e2,
    6.4538727e2,
    4.2900815e2,
    1.08635e2,
    6.5702496,
    -6.0424414e-2,
];
/// `erfc` on [1/0.35, 6); the last coefficient of each is 0 (one term fewer than `RA`, `SA`),
/// which leaves the Horner chain's value unchanged.
const RB: [f32; 8] = [
    -9.864943e-3,
    -7.9928327e-1,
    -1.7757956e1,
    -1.6063638e2,
    -6.3756647e2,
    -1.0250951e3,
    -4.835192e2,
    0.0,
];
const SB: [f32; 8] = [
    3.033806e1,
    3.257925e2,
    1.5367296e3,
    3.1998582e3,
    2.5530503e3,
    4.7452853e2,
    -2.2440952e1,
    0.0,
];

/// `c[0] + s (c[1] + s (c[2] + ...))`.
#[inline(always)]
fn horner<const N: usize>(c: &[f32; N], s: f32) -> f32 {
    let mut acc = c[N - 1];
    for &k in c[..N - 1].iter().rev() {
        acc = k + s * acc;
    }
    acc
}

/// As [`horner`] with the coefficients of `a` or `b` picked by `first`.
#[inline(always)]
fn horner_pick(a: &[f32; 8], b: &[f32; 8], first: bool, s: f32) -> f32 {
    let mut acc = if first { a[7] } else { b[7] };
    for i in (0..7).rev() {
        let k = if first { a[i] } else { b[i] };
        acc = k + s * acc;
    }
    acc
}

/// `erf(x)`, branch-free (see the module doc for its accuracy).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    // |x| < 0.84375: x + x P(x^2) / Q(x^2).
    let z = x * x;
    let small = x + x * (horner(&PP, z) / (1.0 + z * horner(&QQ, z)));
    // [0.84375, 1.25): erx + P(s) / Q(s), s = |x| - 1, as 1 - erfc.
    let s1 = a - 1.0;
    let erfc1 = 1.0 - ERX - horner(&PA, s1) / (1.0 + s1 * horner(&QA, s1));
    // [1.25, 6): erfc = exp(-z^2 - 0.5625) exp((z - x)(z + x) + R/S) / x, z = x rounded to
    // 11 mantissa bits; the argument is clamped so that the unused lanes stay finite.
    let c = a.clamp(1.25, 6.0);
    let s2 = 1.0 / (c * c);
    let near = c < 1.0 / 0.35;
    let r = horner_pick(&RA, &RB, near, s2);
    let big_s = 1.0 + s2 * horner_pick(&SA, &SB, near, s2);
    let zc = f32::from_bits(c.to_bits() & 0xffff_e000);
    let erfc2 = exp(-zc * zc - 0.5625) * exp((zc - c) * (zc + c) + r / big_s) / c;
    let tail = if a < 1.25 { erfc1 } else { erfc2 };
    let y = if a < 6.0 { 1.0 - tail } else { 1.0 };
    let y = if x < 0.0 { -y } else { y };
    let y = if a < 0.843_75 { small } else { y };
    if x.is_nan() {
        x
    } else {
        y
    }
}

/// `Φ(x) = (1 + erf(x / √2)) / 2`, as candle's GELU writes it.
#[inline(always)]
fn cdf(x: f32) -> f32 {
    (erf(x * std::f32::consts::FRAC_1_SQRT_2) + 1.0) * 0.5
}

simd! {
    /// `out[i] = x[i] Φ(x[i])`.
    pub fn gelu_forward(out: &mut [f32], x: &[f32]) {
        for (o, &x) in out.iter_mut().zip(x) {
            *o = cdf(x) * x;
        }
    }
}

simd! {
    /// `out[i] = x[i] Φ(x[i])` and `cdf[i] = Φ(x[i])`, for a backward pass that reads `Φ`
    /// back instead of computing it again ([`gelu_backward_from_cdf`]); `out` has the bits
    /// [`gelu_forward`] gives.
    pub fn gelu_forward_keep(out: &mut [f32], cdf_out: &mut [f32], x: &[f32]) {
        for ((o, c), &x) in out.iter_mut().zip(cdf_out.iter_mut()).zip(x) {
            *c = cdf(x);
            *o = *c * x;
        }
    }
}

simd! {
    /// `out[i] = g[i] (Φ(x[i]) + x[i] φ(x[i]))`, `φ(x) = e^(-x^2 / 2) / √(2π)`.
    pub fn gelu_backward(out: &mut [f32], g: &[f32], x: &[f32]) {
        for ((o, &g), &x) in out.iter_mut().zip(g).zip(x) {
            *o = g * (cdf(x) + x * pdf(x));
        }
    }
}

simd! {
    /// [`gelu_backward`] with `Φ(x[i])` given (`cdf`, from [`gelu_forward_keep`]): the same
    /// bits without the `erf`.
    pub fn gelu_backward_from_cdf(out: &mut [f32], g: &[f32], x: &[f32], cdf: &[f32]) {
        for (((o, &g), &x), &c) in out.iter_mut().zip(g).zip(x).zip(cdf) {
            *o = g * (c + x * pdf(x));
        }
    }
}

/// `φ(x) = e^(-x^2 / 2) / √(2π)`.
#[inline(always)]
fn pdf(x: f32) -> f32 {
    const PDF: f32 = 0.5 * std::f32::consts::FRAC_2_SQRT_PI * std::f32::consts::FRAC_1_SQRT_2;
    exp(-0.5 * x * x) * PDF
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units of the last place of the f32 nearest to `b`.
    fn ulps(a: f32, b: f64) -> f64 {
        let b32 = b as f32;
        let ulp = (f32::from_bits(b32.abs().to_bits() + 1) - b32.abs()) as f64;
        (a as f64 - b).abs() / ulp
    }

    #[test]
    fn coefficients_are_libms_bit_for_bit() {
        let bits = |c: &[f32]| c.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(ERX.to_bits(), 0x3f58560b);
        assert_eq!(
            bits(&PP[..5]),
            [0x3e0375d4, 0xbea66beb, 0xbce9528f, 0xbbbd1489, 0xb7c756b1]
        );
        assert_eq!(
            bits(&QQ[..5]),
            [0x3ecbbbce, 0x3d852a63, 0x3ba68116, 0x390aee49, 0xb684e21a]
        );
        assert_eq!(
            bits(&PA[..7]),
            [0xbb1acdc6, 0x3ed46805, 0xbebe9208, 0x3ea2fe54, 0xbde31cc2, 0x3d1151b3, 0xbb0df9c0]
        );
        assert_eq!(
            bits(&QA[..6]),
            [0x3dd9f331, 0x3f0a5785, 0x3d931ae7, 0x3e013307, 0x3c5f6e13, 0x3c445aa3]
        );
        assert_eq!(
            bits(&RA[..8]),
            [
                0xbc21a093, 0xbf31a0b7, 0xc128f022, 0xc2798057, 0xc322658c, 0xc3389ae7, 0xc2a2932b,
                0xc11d077e
            ]
        );
        assert_eq!(
            bits(&SA[..8]),
            [
                0x419d35ce, 0x4309a863, 0x43d9486f, 0x442158c9, 0x43d6810b, 0x42d9451f, 0x40d23f7c,
                0xbd777f97
            ]
        );
        assert_eq!(
            bits(&RB[..7]),
            [0xbc21a092, 0xbf4c9dd4, 0xc18e104b, 0xc320a2ea, 0xc41f6441, 0xc480230b, 0xc3f1c275]
        );
        assert_eq!(
            bits(&SB[..7]),
            [0x41f2b459, 0x43a2e571, 0x44c01759, 0x4547fdbb, 0x451f90ce, 0x43ed43a7, 0xc1b38712]
        );
        assert_eq!((RB[7], SB[7]), (0.0, 0.0));
    }

    #[test]
    fn erf_is_within_two_ulp_of_libm_erf_in_f64_everywhere() {
        let mut worst = (0.0, 0.0);
        let mut x = -7.0f32;
        while x < 7.0 {
            let e = ulps(erf(x), libm::erf(x as f64));
            if e > worst.0 {
                worst = (e, x);
            }
            x += 1.7e-4;
        }
        assert!(worst.0 <= 2.0, "worst error {} ulp at {}", worst.0, worst.1);
    }

    #[test]
    fn erf_differs_from_libm_erff_in_the_last_bits_only() {
        let mut worst = 0.0f32;
        for i in 0..200_000 {
            let x = -7.0 + i as f32 * 7e-5;
            let (a, b) = (erf(x), libm::erff(x));
            let d = (a - b).abs() / b.abs().max(f32::MIN_POSITIVE);
            worst = worst.max(d);
        }
        assert!(
            worst <= 3.0 * f32::EPSILON,
            "worst relative difference {worst}"
        );
    }

    #[test]
    fn erf_edges() {
        assert_eq!(erf(0.0), 0.0);
        assert_eq!(erf(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(erf(6.0), 1.0);
        assert_eq!(erf(f32::INFINITY), 1.0);
        assert_eq!(erf(f32::NEG_INFINITY), -1.0);
        assert!((erf(1e-30) - libm::erff(1e-30)).abs() <= 1e-36);
        assert!(erf(f32::NAN).is_nan());
        for x in [0.843_75f32, 1.25, 1.0 / 0.35, 5.999_999] {
            for v in [x, -x, f32::from_bits(x.to_bits() - 1)] {
                assert!(
                    (erf(v) - libm::erff(v)).abs() <= 2.0 * f32::EPSILON,
                    "at {v}"
                );
            }
        }
    }

    #[test]
    fn gelu_kernels_match_f64() {
        let n = 1003;
        let x: Vec<f32> = (0..n).map(|i| (i as f32 - 500.0) * 0.019).collect();
        let g: Vec<f32> = (0..n).map(|i| ((i * 37) % 11) as f32 * 0.3 - 1.5).collect();
        let (mut y, mut dx) = (vec![0f32; n], vec![0f32; n]);
        gelu_forward(&mut y, &x);
        gelu_backward(&mut dx, &g, &x);
        for i in 0..n {
            let xd = x[i] as f64;
            let phi = 0.5 * (1.0 + libm::erf(xd / std::f64::consts::SQRT_2));
            let pdf = (-0.5 * xd * xd).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let (ey, edx) = (xd * phi, g[i] as f64 * (phi + xd * pdf));
            assert!(
                (y[i] as f64 - ey).abs() <= 1e-6 * (1.0 + ey.abs()),
                "y at {}",
                x[i]
            );
            assert!(
                (dx[i] as f64 - edx).abs() <= 1e-6 * (1.0 + edx.abs()),
                "dx at {}",
                x[i]
            );
        }
    }

    #[test]
    fn kept_cdf_gives_the_same_bits_as_computing_it_again() {
        let n = 4099;
        let x: Vec<f32> = (0..n).map(|i| (i as f32 - 2050.0) * 0.0041).collect();
        let g: Vec<f32> = (0..n).map(|i| ((i * 13) % 7) as f32 * 0.5 - 1.5).collect();
        let (mut y, mut y_keep, mut c) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
        gelu_forward(&mut y, &x);
        gelu_forward_keep(&mut y_keep, &mut c, &x);
        let (mut dx, mut dx_kept) = (vec![0f32; n], vec![0f32; n]);
        gelu_backward(&mut dx, &g, &x);
        gelu_backward_from_cdf(&mut dx_kept, &g, &x, &c);
        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&y), bits(&y_keep));
        assert_eq!(bits(&dx), bits(&dx_kept));
        // `x Φ(x)` from the kept `Φ` is the forward's value bit for bit.
        let again: Vec<f32> = x.iter().zip(&c).map(|(x, c)| c * x).collect();
        assert_eq!(bits(&y), bits(&again));
    }
}
