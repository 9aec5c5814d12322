//! Matrix products on CPU slices through the `gemm` crate, for the fused ops that multiply
//! inside one op (transposes as strided views, products accumulated into their destination).
//! Must check every view against its slice before handing pointers to `gemm`.

use candle_core::{Result, WithDType};
use rayon::prelude::*;

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

    /// Rows `r0..r1` (`r0 < r1 <= rows`).
    fn rows(self, r0: usize, r1: usize) -> Self {
        Self {
            data: &self.data[r0 * self.rs as usize..],
            rows: r1 - r0,
            ..self
        }
    }

    /// Columns `c0..c1` (`c0 < c1 <= cols`).
    fn cols(self, c0: usize, c1: usize) -> Self {
        Self {
            data: &self.data[c0 * self.cs as usize..],
            cols: c1 - c0,
            ..self
        }
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
    let parts = match parallel && threads > 1 && m.saturating_mul(n).saturating_mul(k) >= SPLIT_WORK
    {
        true => split(m, n, threads),
        false => Split::None,
    };
    let dst = Shared(dst.as_mut_ptr());
    // SAFETY (each `product` call): the views lie inside their slices (`View::new`, and
    // transposes and sub-views stay inside the extent), `dst` holds `m` rows of `n` values
    // `dst_rs` apart (checked above) and every part writes only its own rows or columns of
    // them, so no element is written by two threads; `dst` outlives the parallel loops.
    match parts {
        Split::None => unsafe { product(dst, dst_rs, (a, b), accumulate, beta) },
        Split::Cols(width) => (0..n.div_ceil(width)).into_par_iter().for_each(|p| {
            let (c0, c1) = (p * width, ((p + 1) * width).min(n));
            unsafe { product(dst.at(c0), dst_rs, (a, b.cols(c0, c1)), accumulate, beta) }
        }),
        Split::Rows(height) => (0..m.div_ceil(height)).into_par_iter().for_each(|p| {
            let (r0, r1) = (p * height, ((p + 1) * height).min(m));
            let dst = dst.at(r0 * dst_rs);
            unsafe { product(dst, dst_rs, (a.rows(r0, r1), b), accumulate, beta) }
        }),
    }
    Ok(())
}

/// Products below this many multiply-adds run on the calling thread (the `gemm` crate's own
/// threading threshold).
const SPLIT_WORK: usize = 48 * 48 * 256;

/// The `gemm` kernels' widest tile along a row-major destination's columns (the crate
/// transposes such a product so that its vector registers run along them): 4 x 16 lanes.
const TILE: usize = 64;

/// How a product is shared between threads, each part one single-threaded `gemm` call.
#[derive(Debug, PartialEq)]
enum Split {
    None,
    /// Blocks of this many output columns: each part reads all of `a` and its columns of `b`.
    Cols(usize),
    /// Blocks of this many output rows: each part reads its rows of `a` and all of `b`.
    Rows(usize),
}

/// Column blocks of whole tiles when every thread gets at least one; else row blocks (a
/// narrow output, e.g. a LoRA rank's columns); no split unless every part is [`general`].
fn split(m: usize, n: usize, threads: usize) -> Split {
    let width = n.div_ceil(threads).div_ceil(TILE) * TILE;
    if n >= TILE * threads && width < n && general(m, width) {
        return Split::Cols(width);
    }
    let height = m.div_ceil(threads);
    match height < m && general(height, n) {
        true => Split::Rows(height),
        false => Split::None,
    }
}

/// Whether `gemm` takes an `m x n` output through its general kernels, where the depth is cut
/// into blocks by `k` alone (not its small-matrix, matrix-vector or horizontal paths): a
/// product and its parts then sum every value in the same order, so a split product has the
/// unsplit one's bits and results do not depend on the number of threads.
fn general(m: usize, n: usize) -> bool {
    m >= 2 && n >= 2 && m * n > 256 && (m > 64 || n > 64)
}

/// A product's destination, shared by its parts.
#[derive(Clone, Copy)]
struct Shared<T>(*mut T);

// SAFETY: the parts of a product write disjoint elements (see `gemm_strided`).
unsafe impl<T: Send> Send for Shared<T> {}
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T> Shared<T> {
    /// The destination from element `i` on (`i` inside it).
    fn at(self, i: usize) -> Self {
        Self(self.0.wrapping_add(i))
    }
}

/// `dst = (dst if accumulate else 0) + beta * a b` as one `gemm` call on this thread.
///
/// # Safety
/// `dst` must hold `a.rows` rows of `b.cols` values `dst_rs` apart, written by no other
/// thread during the call; `a.cols == b.rows`.
unsafe fn product<T: WithDType>(
    dst: Shared<T>,
    dst_rs: usize,
    (a, b): (View<'_, T>, View<'_, T>),
    accumulate: bool,
    beta: f64,
) {
    // gemm reads `dst` only when `accumulate` is set (it is initialised either way).
    gemm::gemm(
        a.rows,
        b.cols,
        a.cols,
        dst.0,
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
        gemm::Parallelism::None,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, salt: u64) -> Vec<f32> {
        (0..n as u64)
            .map(|i| ((i.wrapping_mul(2_654_435_761) ^ salt) % 997) as f32 / 500.0 - 1.0)
            .collect()
    }

    #[test]
    fn split_products_have_the_unsplit_bits() -> Result<()> {
        // Wide outputs (column blocks), narrow ones (row blocks), a depth over gemm's block.
        for (m, k, n) in [
            (300, 70, 200),
            (1000, 40, 16),
            (130, 1100, 130),
            (90, 33, 300),
        ] {
            let (a, b) = (values(m * k, 1), values(k * n, 2));
            let mut whole = vec![0f32; m * n];
            // SAFETY: `whole` holds m x n values; the views fit their slices.
            unsafe {
                let (av, bv) = (View::new(&a, m, k)?, View::new(&b, k, n)?);
                product(Shared(whole.as_mut_ptr()), n, (av, bv), false, 0.5);
            }
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(3)
                .build()
                .expect("pool");
            let mut parts = vec![0f32; m * n];
            pool.install(|| {
                let (av, bv) = (View::new(&a, m, k)?, View::new(&b, k, n)?);
                gemm_strided(&mut parts, n, (av, bv), false, 0.5, true)
            })?;
            assert_ne!(split(m, n, 3), Split::None, "{m}x{n} is split");
            assert_eq!(whole, parts, "{m}x{k}x{n}");
        }
        Ok(())
    }

    #[test]
    fn small_outputs_are_not_split() {
        assert_eq!(split(64, 64, 2), Split::None);
        assert_eq!(split(2, 4000, 2), Split::Cols(2048));
        assert_eq!(split(1000, 3, 2), Split::Rows(500));
        assert_eq!(split(1, 100, 2), Split::None);
        assert_eq!(split(1024, 512, 2), Split::Cols(256));
        assert_eq!(split(1024, 16, 2), Split::Rows(512));
    }
}
