//! The CUDA dequantization kernels of the packed formats (NF4/FP4 with or without double-quantized
//! scales, row-scaled int8) as CUDA C source, compiled at run time with NVRTC by
//! [`super::cuda`] (CUDA builds only), and a line-by-line Rust port of each kernel's per-element
//! body that the CPU tests compare bit for bit with the CPU codecs ([`super::blockwise4`],
//! [`super::int8`]).
//!
//! The kernels spell every rounding out (`__fmul_rn`, `__fadd_rn`, `__fdiv_rn`: no fused
//! multiply-add, IEEE division) and convert to bf16 with the same round-to-nearest-even as the
//! `half` crate, so a device result equals the CPU one bit for bit. Changing a kernel means
//! changing its port here in the same way. Must not launch anything or know about devices.

/// CUDA C source of the kernels. One thread per output element, grid-stride loop, 64-bit indices.
pub const CUDA_SOURCE: &str = r#"
__device__ __forceinline__ unsigned short peftc_bf16_rn(float f) {
    unsigned int x = __float_as_uint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) {
        return (unsigned short)((x >> 16) | 0x0040u);
    }
    unsigned int round_bit = 0x00008000u;
    if ((x & round_bit) != 0u && (x & (3u * round_bit - 1u)) != 0u) {
        return (unsigned short)((x >> 16) + 1u);
    }
    return (unsigned short)(x >> 16);
}

__device__ __forceinline__ float peftc_packed4(
    const unsigned char* packed, const float* code, const float* absmax,
    const unsigned char* q2, const float* absmax2, const float* dyn_code, float offset,
    int double_quant, unsigned long long block, unsigned long long block2,
    unsigned long long e) {
    unsigned char byte = packed[e >> 1];
    unsigned int nib = (e & 1ull) ? (byte & 15u) : (byte >> 4);
    unsigned long long b = e / block;
    float s;
    if (double_quant) {
        s = __fadd_rn(__fmul_rn(dyn_code[q2[b]], absmax2[b / block2]), offset);
    } else {
        s = absmax[b];
    }
    return __fmul_rn(code[nib], s);
}

extern "C" __global__ void peftc_dequant4_f32(
    const unsigned char* packed, const float* code, const float* absmax,
    const unsigned char* q2, const float* absmax2, const float* dyn_code, float offset,
    int double_quant, unsigned long long block, unsigned long long block2,
    unsigned long long n, float* out) {
    for (unsigned long long e = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; e < n;
         e += (unsigned long long)gridDim.x * blockDim.x) {
        out[e] = peftc_packed4(packed, code, absmax, q2, absmax2, dyn_code, offset,
                               double_quant, block, block2, e);
    }
}

extern "C" __global__ void peftc_dequant4_bf16(
    const unsigned char* packed, const float* code, const float* absmax,
    const unsigned char* q2, const float* absmax2, const float* dyn_code, float offset,
    int double_quant, unsigned long long block, unsigned long long block2,
    unsigned long long n, unsigned short* out) {
    for (unsigned long long e = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; e < n;
         e += (unsigned long long)gridDim.x * blockDim.x) {
        out[e] = peftc_bf16_rn(peftc_packed4(packed, code, absmax, q2, absmax2, dyn_code, offset,
                                             double_quant, block, block2, e));
    }
}

__device__ __forceinline__ float peftc_int8(
    const signed char* q, const float* absmax, unsigned long long in_features,
    unsigned long long e) {
    float s = __fdiv_rn(absmax[e / in_features], 127.0f);
    return __fmul_rn((float)q[e], s);
}

extern "C" __global__ void peftc_dequant_int8_f32(
    const signed char* q, const float* absmax, unsigned long long in_features,
    unsigned long long n, float* out) {
    for (unsigned long long e = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; e < n;
         e += (unsigned long long)gridDim.x * blockDim.x) {
        out[e] = peftc_int8(q, absmax, in_features, e);
    }
}

extern "C" __global__ void peftc_dequant_int8_bf16(
    const signed char* q, const float* absmax, unsigned long long in_features,
    unsigned long long n, unsigned short* out) {
    for (unsigned long long e = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; e < n;
         e += (unsigned long long)gridDim.x * blockDim.x) {
        out[e] = peftc_bf16_rn(peftc_int8(q, absmax, in_features, e));
    }
}
"#;

/// The kernels [`CUDA_SOURCE`] defines, as loaded by name.
pub const KERNELS: [&str; 4] = [
    "peftc_dequant4_f32",
    "peftc_dequant4_bf16",
    "peftc_dequant_int8_f32",
    "peftc_dequant_int8_bf16",
];

/// Port of `peftc_bf16_rn`: f32 to bf16 bits, round to nearest even, NaN kept quiet.
pub fn bf16_rn(f: f32) -> u16 {
    let x = f.to_bits();
    if (x & 0x7fff_ffff) > 0x7f80_0000 {
        return ((x >> 16) | 0x0040) as u16;
    }
    let round_bit = 0x0000_8000u32;
    if (x & round_bit) != 0 && (x & (3 * round_bit - 1)) != 0 {
        return ((x >> 16) + 1) as u16;
    }
    (x >> 16) as u16
}

/// The arguments of the 4-bit kernels, as host slices.
#[derive(Debug, Clone, Copy)]
pub struct Packed4Args<'a> {
    pub packed: &'a [u8],
    pub code: &'a [f32; 16],
    /// f32 block scales (empty when double-quantized).
    pub absmax: &'a [f32],
    /// Double quantization: one code per block, one absmax per `block2` blocks, the offset.
    pub q2: &'a [u8],
    pub absmax2: &'a [f32],
    pub dyn_code: &'a [f32; 256],
    pub offset: f32,
    pub double_quant: bool,
    pub block: u64,
    pub block2: u64,
}

/// Port of `peftc_packed4`: element `e` of a 4-bit weight, as the kernel computes it (Rust
/// never contracts `a * b + c`, so each operation rounds as `__fmul_rn` / `__fadd_rn` do).
pub fn packed4_element(a: &Packed4Args<'_>, e: u64) -> f32 {
    let byte = a.packed[(e >> 1) as usize];
    let nib = if e & 1 == 1 { byte & 15 } else { byte >> 4 };
    let b = e / a.block;
    let s = if a.double_quant {
        a.dyn_code[a.q2[b as usize] as usize] * a.absmax2[(b / a.block2) as usize] + a.offset
    } else {
        a.absmax[b as usize]
    };
    a.code[nib as usize] * s
}

/// Port of `peftc_int8`: element `e` of a row-scaled int8 weight.
pub fn int8_element(q: &[i8], absmax: &[f32], in_features: u64, e: u64) -> f32 {
    let s = absmax[(e / in_features) as usize] / 127.0f32;
    f32::from(q[e as usize]) * s
}

#[cfg(test)]
mod tests {
    use super::super::blockwise4::Code4;
    use super::super::codes::DYNAMIC_CODE;
    use super::super::int8::Int8Rows;
    use super::super::nf4::{BlockScales, Packed4, Packed4Config};
    use super::super::tiled::DequantRows;
    use super::*;
    use rand::{Rng, SeedableRng};

    fn weights(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|i| {
                let v: f32 = rng.gen_range(-1.0..1.0);
                // A few large outliers and exact zeros, as real weights have.
                match i % 97 {
                    0 => v * 40.0,
                    1 => 0.0,
                    _ => v * 0.05,
                }
            })
            .collect()
    }

    fn args(p: &Packed4) -> Packed4Args<'_> {
        let (absmax, q2, absmax2, offset, block2, dq): (&[f32], &[u8], &[f32], f32, u64, bool) =
            match &p.scales {
                BlockScales::F32(v) => (v, &[], &[], 0.0, 1, false),
                BlockScales::Double(d) => (&[], &d.q, &d.absmax2, d.offset, d.block as u64, true),
            };
        Packed4Args {
            packed: &p.packed,
            code: p.code.table(),
            absmax,
            q2,
            absmax2,
            dyn_code: &DYNAMIC_CODE,
            offset,
            double_quant: dq,
            block: p.block as u64,
            block2,
        }
    }

    #[test]
    fn packed4_kernel_equals_cpu_dequant_bit_for_bit() {
        // Shapes with a ragged last block, an odd element count and several second-level blocks.
        let shapes = [(64, 128), (33, 65), (7, 9), (300, 64)];
        let mut checked = 0usize;
        for (si, &(out, inp)) in shapes.iter().enumerate() {
            let w = weights(out * inp, si as u64);
            for code in [Code4::Nf4, Code4::Fp4] {
                for (block, dq) in [(64, Some(256)), (64, None), (32, Some(4)), (128, Some(256))] {
                    let cfg = Packed4Config {
                        code,
                        block,
                        double_quant_block: dq,
                    };
                    let p = Packed4::quantize(&w, (out, inp), cfg);
                    let mut cpu = vec![0f32; out * inp];
                    p.dequant_rows(0, &mut cpu);
                    let a = args(&p);
                    for (e, c) in cpu.iter().enumerate() {
                        let k = packed4_element(&a, e as u64);
                        assert_eq!(
                            k.to_bits(),
                            c.to_bits(),
                            "{code:?} block {block} dq {dq:?} shape {out}x{inp} element {e}"
                        );
                        assert_eq!(bf16_rn(k), half::bf16::from_f32(*c).to_bits());
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 200_000, "only {checked} elements compared");
    }

    #[test]
    fn int8_kernel_equals_cpu_dequant_bit_for_bit() {
        for (out, inp) in [(64, 128), (33, 65), (1, 7)] {
            let w = weights(out * inp, 7);
            let rows = Int8Rows::quantize(&w, (out, inp));
            let mut cpu = vec![0f32; out * inp];
            rows.dequant_rows(0, &mut cpu);
            for (e, c) in cpu.iter().enumerate() {
                let k = int8_element(&rows.q, &rows.absmax, inp as u64, e as u64);
                assert_eq!(k.to_bits(), c.to_bits(), "{out}x{inp} element {e}");
                assert_eq!(bf16_rn(k), half::bf16::from_f32(*c).to_bits());
            }
        }
    }

    #[test]
    fn bf16_rounding_matches_half_on_edge_values() {
        let mut specials = vec![
            0.0f32,
            -0.0,
            1.0,
            f32::MAX,
            f32::MIN_POSITIVE,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::from_bits(0x3f80_8000), // a tie: rounds to even (down)
            f32::from_bits(0x3f81_8000), // a tie: rounds to even (up)
            f32::from_bits(0x3f80_8001),
            f32::from_bits(0x7f7f_ffff),
            f32::from_bits(0x0000_8001), // subnormal
        ];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        specials.extend((0..100_000).map(|_| f32::from_bits(rng.gen())));
        for f in specials {
            let want = half::bf16::from_f32(f).to_bits();
            let got = bf16_rn(f);
            if f.is_nan() {
                assert!(half::bf16::from_bits(got).is_nan(), "{f:?}");
            } else {
                assert_eq!(got, want, "{f:?} ({:#x})", f.to_bits());
            }
        }
    }

    #[test]
    fn the_source_names_every_kernel_the_launcher_loads() {
        for name in super::KERNELS {
            assert!(
                CUDA_SOURCE.contains(&format!("__global__ void {name}(")),
                "{name} missing from CUDA_SOURCE"
            );
        }
    }
}
