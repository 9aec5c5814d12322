//! NF4 / FP4 / double quantization against bitsandbytes 0.50.2 on CPU.
//!
//! The reference file comes from `tests/fixtures/quant/make_fixtures.py`, in short:
//!
//! ```python
//! p, st = F.quantize_4bit(x, blocksize=bs, quant_type=qt, compress_statistics=False)
//! # -> packed, st.absmax, F.dequantize_4bit(p, st)
//! p2, st2 = F.quantize_4bit(x, blocksize=bs, quant_type=qt, compress_statistics=True)
//! # -> st2.absmax (u8), st2.state2.absmax, st2.offset, F.dequantize_4bit(p2, st2)
//! ```

use candle_core::{Device, Tensor};
use peftc::runtime::quant::blockwise4::{dequantize_all, quantize_4bit, Code4};
use peftc::runtime::quant::codes::{DYNAMIC_CODE, FP4_CODE, NF4_CODE};
use peftc::runtime::quant::dynamic8::{quantize_dynamic, DoubleQuantScales};
use peftc::runtime::quant::{Nf4Weight, Packed4, Packed4Config};
use peftc::runtime::weight::FrozenWeight;
use std::collections::HashMap;

const CASES: [(&str, usize); 4] = [
    ("small", 64),
    ("ragged", 64),
    ("outliers", 64),
    ("bs128", 128),
];

fn fixtures() -> HashMap<String, Tensor> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/quant/bnb_reference.safetensors"
    );
    candle_core::safetensors::load(path, &Device::Cpu).expect("committed fixture loads")
}

fn f32s(f: &HashMap<String, Tensor>, k: &str) -> Vec<f32> {
    f[k].flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn u8s(f: &HashMap<String, Tensor>, k: &str) -> Vec<u8> {
    f[k].flatten_all().unwrap().to_vec1::<u8>().unwrap()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

fn code(qt: &str) -> Code4 {
    if qt == "nf4" {
        Code4::Nf4
    } else {
        Code4::Fp4
    }
}

#[test]
fn code_tables_equal_bitsandbytes_bit_for_bit() {
    let f = fixtures();
    assert_eq!(bits(&NF4_CODE), bits(&f32s(&f, "code.nf4")));
    assert_eq!(bits(&FP4_CODE), bits(&f32s(&f, "code.fp4")));
    assert_eq!(bits(&DYNAMIC_CODE), bits(&f32s(&f, "code.dynamic")));
    // NF4: sorted, exact zero at index 7, ends at -1 and 1.
    assert_eq!(NF4_CODE[7], 0.0);
    assert_eq!((NF4_CODE[0], NF4_CODE[15]), (-1.0, 1.0));
}

#[test]
fn packed_codes_and_absmax_equal_bitsandbytes() {
    let f = fixtures();
    for (case, bs) in CASES {
        let x = f32s(&f, &format!("{case}.input"));
        for qt in ["nf4", "fp4"] {
            let (packed, absmax) = quantize_4bit(&x, bs, code(qt));
            assert_eq!(
                packed,
                u8s(&f, &format!("{case}.{qt}.packed")),
                "{case} {qt} packed"
            );
            assert_eq!(
                bits(&absmax),
                bits(&f32s(&f, &format!("{case}.{qt}.absmax"))),
                "{case} {qt}"
            );
            let deq = dequantize_all(&packed, code(qt), bs, &|b| absmax[b], x.len());
            let want = f32s(&f, &format!("{case}.{qt}.dequant"));
            let d = max_abs_diff(&deq, &want);
            assert!(d <= 1e-7, "{case} {qt} dequant differs by {d}");
        }
    }
}

#[test]
fn double_quantized_scales_follow_bitsandbytes() {
    let f = fixtures();
    let (mut compared, mut differing) = (0usize, 0usize);
    for (case, bs) in CASES {
        for qt in ["nf4", "fp4"] {
            let k = |s: &str| format!("{case}.{qt}.{s}");
            let absmax = f32s(&f, &k("absmax"));
            let offset = f32s(&f, &k("dq.offset"))[0];
            // Our offset: the mean in f64, within one f32 ulp of PyTorch's.
            let ours = DoubleQuantScales::quantize(&absmax, 256);
            assert!(
                (ours.offset - offset).abs() <= offset.abs() * f32::EPSILON,
                "{case} offset"
            );
            // The 8-bit codec itself, on bitsandbytes' own centred scales: bit for bit against the
            // nearest-value transcription, and absmax2 bit for bit against bitsandbytes.
            let centred: Vec<f32> = absmax.iter().map(|a| a - offset).collect();
            let (q, absmax2) = quantize_dynamic(&centred, 256);
            assert_eq!(q, u8s(&f, &k("dq.qabsmax_nearest")), "{case} {qt} nearest");
            assert_eq!(
                bits(&absmax2),
                bits(&f32s(&f, &k("dq.absmax2"))),
                "{case} {qt} absmax2"
            );
            // Against bitsandbytes' CPU kernel: equal except where its bucketed search misses the
            // nearest value, and then by one code step.
            let bnb = u8s(&f, &k("dq.qabsmax"));
            for (a, b) in q.iter().zip(&bnb) {
                compared += 1;
                if a != b {
                    differing += 1;
                    assert_eq!((i16::from(*a) - i16::from(*b)).abs(), 1, "{case} {qt}");
                }
            }
            // Values: the whole weight through double-quantized scales, like dequantize_4bit.
            let x = f32s(&f, &format!("{case}.input"));
            let packed = u8s(&f, &k("packed"));
            let dq = DoubleQuantScales {
                q: q.clone(),
                absmax2,
                offset,
                block: 256,
            };
            let deq = dequantize_all(&packed, code(qt), bs, &|b| dq.get(b), x.len());
            let want = f32s(&f, &k("dq.dequant"));
            for (b, (mine, theirs)) in q.iter().zip(&bnb).enumerate() {
                let r = b * bs..((b + 1) * bs).min(x.len());
                // Where the scale's code differs, the values differ by at most that code step
                // times the second-level absmax (|NF4/FP4 code| <= 1).
                let step = (DYNAMIC_CODE[*mine as usize] - DYNAMIC_CODE[*theirs as usize]).abs();
                let tol = 1e-6 + step * dq.absmax2[b / 256];
                assert!(
                    max_abs_diff(&deq[r.clone()], &want[r]) <= tol,
                    "{case} {qt} block {b}"
                );
            }
        }
    }
    assert!(
        differing * 100 <= compared,
        "{differing} of {compared} scales differ"
    );
}

#[test]
fn nf4_weight_round_trip_matches_reference_values() {
    let f = fixtures();
    let x = f.get("outliers.input").unwrap().clone();
    let cfg = Packed4Config {
        code: Code4::Nf4,
        block: 64,
        double_quant_block: None,
    };
    let w = Nf4Weight::quantize(&x, cfg).unwrap();
    let deq = w
        .dequantize(candle_core::DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(max_abs_diff(&deq, &f32s(&f, "outliers.nf4.dequant")) <= 1e-7);
    // 4 bits + one f32 per 64 values; with double quantization 4 + 8/64 + 32/(64*256) bits.
    assert_eq!(w.storage_bytes(), 150 * 128 / 2 + 4 * 300);
    let dq = Nf4Weight::quantize(&x, Packed4Config::default()).unwrap();
    assert_eq!(dq.storage_bytes(), 150 * 128 / 2 + 300 + 4 * 2 + 4);
    assert_eq!(dq.format(), "nf4");
    // The QLoRA storage goal: at most 0.53 bytes per parameter with double quantization.
    let big = Tensor::zeros((256, 1024), candle_core::DType::F32, &Device::Cpu).unwrap();
    let big = Nf4Weight::quantize(&big, Packed4Config::default()).unwrap();
    let per_param = big.storage_bytes() as f64 / (256.0 * 1024.0);
    assert!(per_param <= 0.53, "{per_param}");
    assert_eq!(big.storage_bytes(), 256 * 1024 / 2 + 4096 + 4 * 16 + 4);
    let p: &Packed4 = dq.packed();
    assert_eq!(p.packed, u8s(&f, "outliers.nf4.packed"));
}
