//! Matrix products on CPU slices through the `gemm` crate, for the fused ops that multiply
//! inside one op (transposes as strided views, products accumulated into their destination).
//! Must check every view against its slice before handing pointers to `gemm`.

use candle_core::{Result, WithDType};

/// A row-major matrix view with arbitrary strides (transposes are views).
#[derive(Clone, Copy)]
pub(crate) struct View<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    rs: isize,
    cs: isize,
}

impl<'a, T> View<'a, T> {
    pub(crate) fn new(data: &'a [T], rows: usize, cols: usize) -> Result<Self> {
        if data.len() < rows * cols {
            candle_core::bail!(
                "gemm: {} values cannot hold a {rows}x{cols} matrix",
                data.len()
            )
        }
        Ok(Self {
            data,
            rows,
            cols,
            rs: cols as isize,
            cs: 1,
        })
    }

    /// `rows x cols` values whose rows start `rs` apart (`rs >= cols`), from the slice's start.
    pub(crate) fn strided(data: &'a [T], rows: usize, cols: usize, rs: usize) -> Result<Self> {
        let needed = if rows == 0 { 0 } else { (rows - 1) * rs + cols };
        if rs < cols || data.len() < needed {
            candle_core::bail!(
                "gemm: {} values cannot hold {rows} rows of {cols} values {rs} apart",
                data.len()
            )
        }
        Ok(Self {
            data,
            rows,
            cols,
            rs: rs as isize,
            cs: 1,
        })
    }

    pub(crate) fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }
}

/// `dst = (dst if accumulate else 0) + beta * a b` for a row-major `dst` of `a.rows x b.cols`,
/// on rayon's threads.
pub(crate) fn gemm_into<T: WithDType>(
    dst: &mut [T],
    a: View<'_, T>,
    b: View<'_, T>,
    accumulate: bool,
    beta: f64,
) -> Result<()> {
    let n = b.cols;
    gemm_strided(dst, n, (a, b), accumulate, beta, true)
}

/// As [`gemm_into`] into a `dst` whose rows are `dst_rs` apart (`dst_rs >= b.cols`); on this
/// thread only unless `parallel`.
pub(crate) fn gemm_strided<T: WithDType>(
    dst: &mut [T],
    dst_rs: usize,
    (a, b): (View<'_, T>, View<'_, T>),
    accumulate: bool,
    beta: f64,
    parallel: bool,
) -> Result<()> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let needed = if m == 0 { 0 } else { (m - 1) * dst_rs + n };
    if b.rows != k || dst_rs < n || dst.len() < needed {
        candle_core::bail!(
            "gemm: cannot multiply {m}x{k} by {}x{n} into {} values",
            b.rows,
            dst.len()
        )
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    let threads = rayon::current_num_threads();
    let parallelism = if parallel && threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the views were checked to lie inside their slices (`View::new`, transposes keep
    // the extent), `dst` holds `m` rows of `n` values `dst_rs` apart, and gemm reads `dst` only
    // when `accumulate` is set (it is initialised either way).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs,
            a.rs,
            b.data.as_ptr(),
            b.cs,
            b.rs,
            T::from_f64(1.0),
            T::from_f64(beta),
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}
