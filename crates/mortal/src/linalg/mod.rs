//! Dense linear algebra: the matrix type and the one GEMM every model goes through.
//!
//! Convention: matrices are column-major (nalgebra). A batch of vectors is stored
//! `features × batch`, one column per sample, so every sample is contiguous in memory.
//! Weights are `out × in`, so a layer computes `Y = W·X`.

use nalgebra::{DMatrix, Dyn, Matrix, RawStorage, RawStorageMut};
use rayon::prelude::*;

pub mod bf16;
pub use bf16::Precision;

/// The dense matrix type (f32, column-major).
pub type Mat = DMatrix<f32>;

/// Whether an operand enters a product transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// As stored.
    N,
    /// Transposed.
    T,
}

/// Below this many multiply-adds (m·n·k) a GEMM runs on the calling thread: splitting
/// small products costs more than it gains (measured on 2 cores: 500×784×100 is faster
/// single-threaded, 1000×784×100 nearly twice as fast on two threads).
const PAR_GEMM_MIN: usize = 50_000_000;

/// Tiles of `C` a large GEMM is cut into (along its longer side), whatever the number of
/// threads: rayon hands them out as threads come free, so a thread slowed by other work on
/// its core takes fewer, and the other thread does not wait at a barrier for it.
const GEMM_TILES: usize = 8;

/// Tile sides are multiples of this many rows or columns (the kernels' register blocks
/// divide it).
const GEMM_TILE_ALIGN: usize = 64;

/// `C ← α·op(A)·op(B) + β·C` for any column-major matrices or views (sub-blocks need
/// no copy: the strides are passed through). Backend: the `gemm` crate (runtime-selected
/// AVX-512 / AVX2 kernels), measured 10–30 % faster than matrixmultiply at the models'
/// batch-100 shapes. A product of at least [`PAR_GEMM_MIN`] multiply-adds is cut into
/// [`GEMM_TILES`] tiles of `C` along its longer side, each computed single-threaded by the
/// same kernel, in parallel under rayon's work stealing: measured on the 2-core build
/// machine at the FF shapes it is as fast as or up to 1.35× faster than the gemm crate's
/// own threading (which splits every k-block between the threads and waits for both),
/// and it leaves a core shared with other work to the other thread. Deterministic: the
/// tiles depend on the shape only, and work is never split along the inner dimension, so
/// each output element is summed in the same order whatever the thread count. When
/// `β = 0`, `C` is not read (NaNs in it do not propagate).
///
/// Panics if the shapes do not conform (a programming error, not a user error).
pub fn gemm<SA, SB, SC>(
    alpha: f32,
    a: &Matrix<f32, Dyn, Dyn, SA>,
    op_a: Op,
    b: &Matrix<f32, Dyn, Dyn, SB>,
    op_b: Op,
    beta: f32,
    c: &mut Matrix<f32, Dyn, Dyn, SC>,
) where
    SA: RawStorage<f32, Dyn, Dyn>,
    SB: RawStorage<f32, Dyn, Dyn>,
    SC: RawStorageMut<f32, Dyn, Dyn>,
{
    let (m, k, rsa, csa) = oriented(a, op_a);
    let (k2, n, rsb, csb) = oriented(b, op_b);
    if finished_without_products(m, k, k2, n, beta, c) {
        return;
    }
    let (rsc, csc) = c.strides();
    let (rsc, csc) = (rsc as isize, csc as isize);
    let (pa, pb, pc) = (
        Ptr(a.as_ptr().cast_mut()),
        Ptr(b.as_ptr().cast_mut()),
        Ptr(c.as_mut_ptr()),
    );
    // One tile: rows r0.. (mt of them) and columns c0.. (nt) of C.
    let tile = |r0: usize, mt: usize, c0: usize, nt: usize| {
        // Whole `Ptr`s (Sync), not their raw fields, are captured.
        let (pa, pb, pc) = (pa, pb, pc);
        // SAFETY: the pointers and strides describe the live storage of `a`, `b` and `c`
        // (nalgebra guarantees that every (i, j) inside the shape is addressable with
        // them), the shapes were checked above, tiles of `C` are disjoint (so no two
        // calls write the same element), and `c` is borrowed mutably for the whole call so
        // it aliases neither operand. The gemm crate computes
        // dst := dst_scale·dst + product_scale·lhs·rhs.
        unsafe {
            gemm::gemm(
                mt,
                nt,
                k,
                pc.0.offset(r0 as isize * rsc + c0 as isize * csc),
                csc,
                rsc,
                beta != 0.0,
                pa.0.offset(r0 as isize * rsa),
                csa,
                rsa,
                pb.0.offset(c0 as isize * csb),
                csb,
                rsb,
                beta,
                alpha,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    };
    tiles_of(m, n, k, &tile);
}

/// Checks that an m × k by k2 × n product fits `c` (panics otherwise) and finishes the
/// products with nothing to sum: true when `c` is final (empty, or k = 0: C ← β·C).
fn finished_without_products<SC>(
    m: usize,
    k: usize,
    k2: usize,
    n: usize,
    beta: f32,
    c: &mut Matrix<f32, Dyn, Dyn, SC>,
) -> bool
where
    SC: RawStorageMut<f32, Dyn, Dyn>,
{
    assert_eq!(k, k2, "gemm: inner dimensions differ ({k} vs {k2})");
    assert_eq!(c.shape(), (m, n), "gemm: output shape");
    if m == 0 || n == 0 {
        return true;
    }
    if k == 0 {
        c.apply(|v| *v = if beta == 0.0 { 0.0 } else { beta * *v });
        return true;
    }
    false
}

/// Runs `tile(r0, rows, c0, cols)` over the tiles of an m × n output (inner dimension k):
/// one tile below [`PAR_GEMM_MIN`], else [`GEMM_TILES`] along the longer side, in parallel.
/// The tiles depend on the shape only.
fn tiles_of<F>(m: usize, n: usize, k: usize, tile: &F)
where
    F: Fn(usize, usize, usize, usize) + Sync,
{
    if m * n * k < PAR_GEMM_MIN {
        tile(0, m, 0, n);
        return;
    }
    let side = m.max(n);
    let step = side.div_ceil(GEMM_TILES).next_multiple_of(GEMM_TILE_ALIGN);
    let tiles = side.div_ceil(step);
    (0..tiles).into_par_iter().for_each(|t| {
        let (s0, len) = (t * step, step.min(side - t * step));
        if m >= n {
            tile(s0, len, 0, n);
        } else {
            tile(0, m, s0, len);
        }
    });
}

/// [`gemm`] in the given arithmetic: f32, or bf16 operands with f32 accumulation
/// ([`bf16`]).
#[allow(clippy::too_many_arguments)]
pub fn gemm_in<SA, SB, SC>(
    precision: Precision,
    alpha: f32,
    a: &Matrix<f32, Dyn, Dyn, SA>,
    op_a: Op,
    b: &Matrix<f32, Dyn, Dyn, SB>,
    op_b: Op,
    beta: f32,
    c: &mut Matrix<f32, Dyn, Dyn, SC>,
) where
    SA: RawStorage<f32, Dyn, Dyn>,
    SB: RawStorage<f32, Dyn, Dyn>,
    SC: RawStorageMut<f32, Dyn, Dyn>,
{
    match precision {
        Precision::F32 => gemm(alpha, a, op_a, b, op_b, beta, c),
        Precision::Bf16 => bf16::gemm_bf16(alpha, a, op_a, b, op_b, beta, c),
    }
}

/// A raw pointer that may cross threads: the GEMM tiles write disjoint parts of `C`.
#[derive(Clone, Copy)]
struct Ptr(*mut f32);
// SAFETY: used only by `gemm`, whose tiles read the shared operands and write disjoint
// elements of the output.
unsafe impl Send for Ptr {}
unsafe impl Sync for Ptr {}

impl Ptr {
    /// The pointer (a method, so that closures capture the whole `Ptr`, which is `Sync`).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Shape and strides of `op(A)` as (rows, cols, row stride, column stride).
fn oriented<S: RawStorage<f32, Dyn, Dyn>>(
    a: &Matrix<f32, Dyn, Dyn, S>,
    op: Op,
) -> (usize, usize, isize, isize) {
    let (r, c) = a.shape();
    let (rs, cs) = a.strides();
    match op {
        Op::N => (r, c, rs as isize, cs as isize),
        Op::T => (c, r, cs as isize, rs as isize),
    }
}

/// FLOPs of a GEMM with these dimensions (2·m·n·k).
pub fn gemm_flops(m: usize, n: usize, k: usize) -> f64 {
    2.0 * m as f64 * n as f64 * k as f64
}

/// Below this many elements, elementwise work stays on the calling thread.
const PAR_MIN: usize = 1 << 15;

/// Applies `f` to every column (as a contiguous slice, with its index), in parallel when
/// the matrix is large. `f` must depend only on its own column, so the result does not
/// depend on the number of threads.
pub fn for_each_column<F>(m: &mut Mat, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync + Send,
{
    let rows = m.nrows().max(1);
    let data = m.as_mut_slice();
    if data.len() >= PAR_MIN {
        data.par_chunks_mut(rows)
            .enumerate()
            .for_each(|(j, c)| f(j, c));
    } else {
        data.chunks_mut(rows).enumerate().for_each(|(j, c)| f(j, c));
    }
}

/// Like [`for_each_column`] over two matrices with the same number of columns.
pub fn for_each_column_pair<F>(a: &Mat, out: &mut Mat, f: F)
where
    F: Fn(usize, &[f32], &mut [f32]) + Sync + Send,
{
    assert_eq!(
        a.ncols(),
        out.ncols(),
        "for_each_column_pair: column counts"
    );
    let (ra, ro) = (a.nrows().max(1), out.nrows().max(1));
    let src = a.as_slice();
    let dst = out.as_mut_slice();
    if dst.len() + src.len() >= PAR_MIN {
        dst.par_chunks_mut(ro)
            .zip(src.par_chunks(ra))
            .enumerate()
            .for_each(|(j, (o, s))| f(j, s, o));
    } else {
        dst.chunks_mut(ro)
            .zip(src.chunks(ra))
            .enumerate()
            .for_each(|(j, (o, s))| f(j, s, o));
    }
}

/// Sum of squares of a slice, accumulated in f64-free pairwise-friendly order
/// (fixed order: the same input always gives the same bits).
#[inline]
pub fn sum_sq(x: &[f32]) -> f32 {
    // Eight independent accumulators let the compiler vectorise; the order is fixed.
    let mut acc = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i] * c[i];
        }
    }
    let mut s = acc.iter().sum::<f32>();
    for v in rest {
        s += v * v;
    }
    s
}

/// `x`, or zero if `x` is subnormal (|x| < 2⁻¹²⁶ ≈ 1.2e-38).
///
/// Learners flush their error signals with it: an error that small changes no weight
/// (its products with the inputs are far below an f32 ulp of any weight or velocity),
/// but every multiply-add with a subnormal operand costs a microcode assist on x86 cores
/// (≈ 100 cycles). A sigmoid tail `σ(−z) ≈ e⁻ᶻ` is subnormal for z in (87, 104), which
/// a chip's large activities reach: measured on `mortal bench` (3×1000, `harsh`), the
/// learner's host work went from 26 to 7 ms per step with subnormals flushed.
#[inline(always)]
pub fn flush_subnormal(x: f32) -> f32 {
    if x.abs() < f32::MIN_POSITIVE { 0.0 } else { x }
}

/// Smallest denominator used when normalising (the reference code's `exp(-50)`, which
/// underflows f32; we use the smallest positive normal f32 instead).
pub const TINY: f32 = f32::MIN_POSITIVE;

/// Scales each column of `src` to unit root-mean-square (no mean subtraction) into `dst`:
/// `dst_j = src_j / (TINY + sqrt(mean(src_j²)))`. Only the orientation of each column
/// survives, which is what Forward-Forward passes on to the next layer.
pub fn normalize_rms(src: &Mat, dst: &mut Mat) {
    assert_eq!(src.shape(), dst.shape(), "normalize_rms: shapes");
    let n = src.nrows() as f32;
    for_each_column_pair(src, dst, |_, s, d| {
        let scale = 1.0 / (TINY + (sum_sq(s) / n).sqrt());
        for (o, v) in d.iter_mut().zip(s) {
            *o = v * scale;
        }
    });
}

/// Sum of squares of every column (Forward-Forward's goodness) of the column-major block
/// `data` with `rows` rows, into `out` (one value per column).
pub fn column_sum_sq(data: &[f32], rows: usize, out: &mut [f32]) {
    assert_eq!(data.len(), rows * out.len(), "column_sum_sq: length");
    for (o, c) in out.iter_mut().zip(data.chunks(rows.max(1))) {
        *o = sum_sq(c);
    }
}

/// Sum of each row of `m` over its columns, accumulated in column order (deterministic).
pub fn row_sums(m: &Mat, out: &mut [f32]) {
    assert_eq!(m.nrows(), out.len(), "row_sums: length");
    out.fill(0.0);
    for col in m.as_slice().chunks(m.nrows().max(1)) {
        for (o, v) in out.iter_mut().zip(col) {
            *o += v;
        }
    }
}

/// Elements per parallel chunk of an elementwise update.
const CHUNK: usize = 1 << 14;

/// `y ← keep·y + scale·x`, elementwise, in parallel chunks (order-independent).
pub fn axpby(y: &mut [f32], keep: f32, scale: f32, x: &[f32]) {
    assert_eq!(y.len(), x.len(), "axpby: lengths");
    y.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(y, x)| {
            for (yi, xi) in y.iter_mut().zip(x) {
                *yi = keep * *yi + scale * xi;
            }
        });
}

/// Copies columns `src[:, from..from+n]` into `dst[:, to..to+n]` (same row count).
pub fn copy_columns(src: &Mat, from: usize, dst: &mut Mat, to: usize, n: usize) {
    assert_eq!(src.nrows(), dst.nrows(), "copy_columns: row counts");
    let r = src.nrows();
    dst.as_mut_slice()[to * r..(to + n) * r]
        .copy_from_slice(&src.as_slice()[from * r..(from + n) * r]);
}

/// Resizes `m` to `rows × cols` if needed, reusing its allocation when the size matches.
pub fn ensure_shape(m: &mut Mat, rows: usize, cols: usize) {
    if m.shape() != (rows, cols) {
        *m = Mat::zeros(rows, cols);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    fn naive(a: &Mat, b: &Mat) -> Mat {
        let mut c = Mat::zeros(a.nrows(), b.ncols());
        for i in 0..a.nrows() {
            for j in 0..b.ncols() {
                let mut s = 0.0f64;
                for k in 0..a.ncols() {
                    s += f64::from(a[(i, k)]) * f64::from(b[(k, j)]);
                }
                c[(i, j)] = s as f32;
            }
        }
        c
    }

    fn filled(r: usize, c: usize, seed: f32) -> Mat {
        Mat::from_fn(r, c, |i, j| ((i * 7 + j * 13) as f32 * 0.37 + seed).sin())
    }

    #[test]
    fn flush_subnormal_zeroes_only_subnormals() {
        let sub = f32::MIN_POSITIVE / 2.0;
        assert!(sub.is_subnormal());
        assert_eq!(flush_subnormal(sub), 0.0);
        assert_eq!(flush_subnormal(-sub), 0.0);
        assert_eq!(flush_subnormal(f32::from_bits(1)), 0.0);
        for x in [
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            1e-30,
            -2.5,
            0.0,
            f32::INFINITY,
        ] {
            assert_eq!(flush_subnormal(x).to_bits(), x.to_bits());
        }
        assert!(flush_subnormal(f32::NAN).is_nan());
    }

    #[test]
    fn gemm_matches_naive_for_all_transpositions() {
        let (m, k, n) = (13, 17, 11);
        let a = filled(m, k, 0.1);
        let b = filled(k, n, 0.7);
        let want = naive(&a, &b);
        let at = a.transpose();
        let bt = b.transpose();
        for (aa, oa, bb, ob) in [
            (&a, Op::N, &b, Op::N),
            (&at, Op::T, &b, Op::N),
            (&a, Op::N, &bt, Op::T),
            (&at, Op::T, &bt, Op::T),
        ] {
            let mut c = Mat::from_element(m, n, 1.0);
            gemm(2.0, aa, oa, bb, ob, 0.5, &mut c);
            for i in 0..m {
                for j in 0..n {
                    assert_relative_eq!(c[(i, j)], 2.0 * want[(i, j)] + 0.5, epsilon = 1e-4);
                }
            }
        }
    }

    #[test]
    fn gemm_with_zero_beta_ignores_the_old_output() {
        let a = filled(4, 3, 0.2);
        let b = filled(3, 2, 0.4);
        let mut c = Mat::from_element(4, 2, f32::NAN);
        gemm(1.0, &a, Op::N, &b, Op::N, 0.0, &mut c);
        assert!(c.iter().all(|v| v.is_finite()));
        let mut empty = Mat::from_element(4, 2, 3.0);
        gemm(
            1.0,
            &Mat::zeros(4, 0),
            Op::N,
            &Mat::zeros(0, 2),
            Op::N,
            0.5,
            &mut empty,
        );
        assert!(empty.iter().all(|v| *v == 1.5));
    }

    /// Large enough to run in parallel: the same bits with 1 and 2 rayon threads.
    #[test]
    fn parallel_gemm_is_bitwise_independent_of_thread_count() {
        let a = filled(500, 400, 0.1);
        let b = filled(400, 300, 0.5);
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut c = Mat::zeros(500, 300);
                gemm(1.0, &a, Op::N, &b, Op::N, 0.0, &mut c);
                c
            })
        };
        const { assert!(500 * 400 * 300 >= PAR_GEMM_MIN) };
        assert_eq!(run(1), run(2));
    }

    #[test]
    fn gemm_on_column_views() {
        let a = filled(5, 6, 0.3);
        let b = filled(6, 9, 0.9);
        let mut c = Mat::zeros(5, 9);
        gemm(
            1.0,
            &a,
            Op::N,
            &b.columns(3, 4),
            Op::N,
            0.0,
            &mut c.columns_mut(2, 4),
        );
        let want = naive(&a, &b.columns(3, 4).into_owned());
        for i in 0..5 {
            for j in 0..4 {
                assert_relative_eq!(c[(i, j + 2)], want[(i, j)], epsilon = 1e-5);
            }
            assert_eq!(c[(i, 0)], 0.0);
        }
    }

    #[test]
    fn rms_normalisation_gives_unit_rms_and_keeps_direction() {
        let x = Mat::from_fn(50, 3, |i, j| (i as f32 + 1.0) * (j as f32 + 0.5));
        let mut y = Mat::zeros(50, 3);
        normalize_rms(&x, &mut y);
        for j in 0..3 {
            let rms = (y.column(j).iter().map(|v| v * v).sum::<f32>() / 50.0).sqrt();
            assert_relative_eq!(rms, 1.0, epsilon = 1e-5);
            let ratio = y[(10, j)] / x[(10, j)];
            for i in 0..50 {
                assert_relative_eq!(y[(i, j)], x[(i, j)] * ratio, epsilon = 1e-5);
            }
        }
        // A zero column stays zero instead of becoming NaN.
        let z = Mat::zeros(4, 1);
        let mut out = Mat::from_element(4, 1, 9.0);
        normalize_rms(&z, &mut out);
        assert!(out.iter().all(|v| *v == 0.0));
    }

    #[test]
    fn sum_sq_matches_definition() {
        let x: Vec<f32> = (0..37).map(|i| i as f32 * 0.25 - 3.0).collect();
        let want: f32 = x.iter().map(|v| v * v).sum();
        assert_relative_eq!(sum_sq(&x), want, epsilon = 1e-3);
    }
}
