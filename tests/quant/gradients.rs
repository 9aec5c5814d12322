//! The gradient with respect to the input through every quantized layer equals the gradient
//! through the same weight dequantized to a plain f32 matmul (within 1e-5), and the forward
//! agrees too (exactly for the dequantizing formats, within the activation quantization of
//! candle's kernel for GGML).

use candle_core::{DType, Device, Tensor, Var};
use peftc::runtime::quant::{
    Code4, GgmlConfig, GgmlFormat, GgmlWeight, Int8Weight, Nf4Weight, Packed4Config, QuantFormat,
    QuantSpec,
};
use peftc::runtime::weight::FrozenWeight;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub fn randn(rng: &mut ChaCha8Rng, shape: &[usize], std: f32) -> Tensor {
    let n: usize = shape.iter().product();
    // Box-Muller from the seeded generator: reproducible on every platform.
    let v: Vec<f32> = (0..n)
        .map(|_| {
            let (u1, u2): (f32, f32) = (rng.gen_range(1e-7..1.0), rng.gen());
            std * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Returns (max |dx_q - dx_ref|, max |dx_ref|, relative forward error).
fn compare(w: &dyn FrozenWeight, x0: &Tensor, probe: &Tensor) -> (f32, f32, f32) {
    let x = Var::from_tensor(x0).unwrap();
    let y = w.forward(x.as_tensor()).unwrap();
    let grads = (y.clone() * probe)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let dx = grads
        .get(x.as_tensor())
        .expect("the input gets a gradient")
        .clone();

    let xr = Var::from_tensor(x0).unwrap();
    let wd = w.dequantize(DType::F32).unwrap();
    let yr = xr.as_tensor().broadcast_matmul(&wd.t().unwrap()).unwrap();
    let gr = (yr.clone() * probe)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let dxr = gr.get(xr.as_tensor()).unwrap().clone();
    let fwd_err = max_abs(&(y - &yr).unwrap()) / max_abs(&yr);
    (max_abs(&(dx - &dxr).unwrap()), max_abs(&dxr), fwd_err)
}

fn setup(out: usize, inp: usize) -> (Tensor, Tensor, Tensor) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let w = randn(&mut rng, &[out, inp], 0.05);
    let x = randn(&mut rng, &[3, 5, inp], 1.0);
    let probe = randn(&mut rng, &[3, 5, out], 1.0);
    (w, x, probe)
}

#[test]
fn input_gradient_through_each_format_equals_dequantized_f32() {
    let (w, x, probe) = setup(128, 256);
    for format in [
        QuantFormat::Nf4,
        QuantFormat::Fp4,
        QuantFormat::Int8,
        QuantFormat::Q8_0,
        QuantFormat::Q4k,
        QuantFormat::Q5k,
        QuantFormat::Q6k,
    ] {
        let q = QuantSpec::new(format).quantize("w", &w).unwrap();
        let (diff, scale, fwd) = compare(&q, &x, &probe);
        assert!(scale > 0.1, "{format:?}: reference gradient is not trivial");
        assert!(diff <= 1e-5, "{format:?}: input gradient differs by {diff}");
        let fwd_tol = match format {
            QuantFormat::Nf4 | QuantFormat::Fp4 | QuantFormat::Int8 => 1e-5,
            _ => 0.03, // candle quantizes the activations to 8 bits in its kernel
        };
        assert!(
            fwd <= fwd_tol,
            "{format:?}: forward differs by {fwd} (relative)"
        );
    }
}

#[test]
fn tiled_forward_and_backward_equal_the_single_tile_result() {
    // 200 columns: tiles cut through blocks of 64; 199: tiles also start on odd elements,
    // i.e. in the middle of a packed byte.
    for inp in [200, 199] {
        let (w, x, probe) = setup(96, inp);
        let cfg = Packed4Config {
            code: Code4::Nf4,
            block: 64,
            double_quant_block: Some(256),
        };
        let whole = Nf4Weight::quantize(&w, cfg).unwrap();
        let tiled = whole.clone().with_tile_bytes(4 * inp * 7); // 7 rows per tile
        let (d1, _, f1) = compare(&whole, &x, &probe);
        let (d2, _, f2) = compare(&tiled, &x, &probe);
        assert!(d1 <= 1e-5 && d2 <= 1e-5, "{inp}: {d1} {d2}");
        assert!(f1 <= 1e-5 && f2 <= 1e-5, "{inp}: {f1} {f2}");
        let y1 = whole.forward(&x).unwrap();
        let y2 = tiled.forward(&x).unwrap();
        assert!(max_abs(&(y1 - y2).unwrap()) <= 1e-5);
        // Every element decodes to code[q] * scale of its block, wherever a tile starts.
        let p = whole.packed();
        let deq = whole.dequantize(DType::F32).unwrap().flatten_all().unwrap();
        let deq = deq.to_vec1::<f32>().unwrap();
        for (i, v) in deq.iter().enumerate() {
            let byte = p.packed[i / 2];
            let q = if i % 2 == 0 { byte >> 4 } else { byte & 15 };
            assert_eq!(
                *v,
                Code4::Nf4.table()[q as usize] * p.scale(i / 64),
                "{inp}: {i}"
            );
        }
    }
}

#[test]
fn activations_keep_their_dtype() {
    let (w, x, _) = setup(32, 64);
    let q = QuantSpec::nf4().quantize("w", &w).unwrap();
    let y = q.forward(&x.to_dtype(DType::BF16).unwrap()).unwrap();
    assert_eq!(y.dtype(), DType::BF16);
    assert_eq!(y.dims(), [3, 5, 32]);
    // A single vector works for every format too.
    let (w, _, _) = setup(32, 256);
    let v = Tensor::ones(256, DType::F32, &candle_core::Device::Cpu).unwrap();
    for f in [QuantFormat::Nf4, QuantFormat::Int8, QuantFormat::Q4k] {
        let q = QuantSpec::new(f).quantize("w", &w).unwrap();
        assert_eq!(q.forward(&v).unwrap().dims(), [32], "{f:?}");
    }
}

#[test]
fn ggml_transposed_copy_gives_the_gradient_within_quantization_error() {
    let (w, x, probe) = setup(256, 256);
    let q = GgmlWeight::quantize(
        &w,
        GgmlFormat::Q8_0,
        GgmlConfig {
            transposed_copy: true,
        },
    )
    .unwrap();
    assert!(q.transposed().is_some());
    let (diff, scale, _) = compare(&q, &x, &probe);
    assert!(diff / scale <= 0.02, "relative {}", diff / scale);
    assert_eq!(q.storage_bytes(), 2 * 256 * 256 / 32 * 34);
}

#[test]
fn int8_round_trip_error_is_within_half_a_step() {
    let (w, _, _) = setup(64, 100);
    let q = Int8Weight::quantize(&w).unwrap();
    let d = q.dequantize(DType::F32).unwrap();
    let err = (d - &w).unwrap().abs().unwrap();
    let step = (w.abs().unwrap().max_keepdim(1).unwrap() / 127.0).unwrap();
    let ratio = err
        .broadcast_div(&step)
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(ratio <= 0.5 + 1e-4, "{ratio}");
    assert_eq!(q.storage_bytes(), 64 * 100 + 64 * 4);
}

#[test]
fn unsupported_shapes_are_typed_errors() {
    let (w, _, _) = setup(10, 100);
    let err = QuantSpec::new(QuantFormat::Q4k)
        .quantize("model.layers.0.mlp.down_proj", &w)
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("down_proj") && text.contains("256"), "{text}");
    let mut bad = QuantSpec::nf4();
    bad.block_size = 48;
    assert!(bad
        .quantize("w", &w)
        .unwrap_err()
        .to_string()
        .contains("block_size"));
}
