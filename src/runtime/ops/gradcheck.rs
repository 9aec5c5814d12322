//! Test helper: compares candle's gradient of `sum(f(x) * probe)` with central finite
//! differences, in f64.

use candle_core::{DType, Device, Result, Tensor, Var};

/// Checks `d/dx sum(f(x) * probe)` against central differences for a random `x` of `shape`.
pub fn check_grad(shape: &[usize], f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<()> {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::randn(0f64, 1.0, shape, &dev)?)?;
    let y = f(x.as_tensor())?;
    let probe = Tensor::randn(0f64, 1.0, y.shape(), &dev)?;
    let loss = (y * &probe)?.sum_all()?;
    let grads = loss.backward()?;
    let g = grads
        .get(x.as_tensor())
        .ok_or_else(|| candle_core::Error::Msg("no gradient reached x".into()))?
        .flatten_all()?
        .to_vec1::<f64>()?;
    let base = x.as_tensor().flatten_all()?.to_vec1::<f64>()?;
    let eps = 1e-6;
    let mut worst = 0f64;
    for i in 0..base.len() {
        let eval = |delta: f64| -> Result<f64> {
            let mut v = base.clone();
            v[i] += delta;
            let xt = Tensor::from_vec(v, shape, &dev)?;
            (f(&xt)? * &probe)?
                .sum_all()?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()
        };
        let fd = (eval(eps)? - eval(-eps)?) / (2.0 * eps);
        let err = (fd - g[i]).abs() / (1.0 + fd.abs());
        worst = worst.max(err);
    }
    if worst > 1e-6 {
        candle_core::bail!(
            "gradient differs from finite differences: worst relative error {worst}"
        );
    }
    Ok(())
}

/// Largest `|a - b| / (1 + |b|)` over the elements.
pub fn max_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    let (a, b) = (a.to_dtype(DType::F64)?, b.to_dtype(DType::F64)?);
    ((&a - &b)?.abs()? / (b.abs()? + 1.0)?)?
        .flatten_all()?
        .max(0)?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()
}
