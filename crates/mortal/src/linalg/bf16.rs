//! Reduced-precision products: bf16 operands, f32 accumulation (`--precision bf16`).
//!
//! bf16 keeps f32's exponent and 8 of its 24 significand bits, so rounding an operand to
//! it changes the operand by at most 2⁻⁸ of its value (round to nearest even). Products of
//! two bf16 numbers are exact in f32 and are summed in f32, so a product's error comes
//! from the operands' rounding alone: at most about 2⁻⁷·Σ|aᵢ·bᵢ| per output, and for
//! errors of random sign about 2⁻⁸·√Σ(aᵢ·bᵢ)².
//!
//! Where the CPU has AVX512-BF16, the products run on its `vdpbf16ps` instruction (two
//! bf16 multiply-adds per f32 lane) through the gemmkit crate's bf16 dot kernel with f32
//! output, which on the AMD Zen 5 build machine runs at twice the f32 FMA rate (`mortal
//! bench --only isa`). Elsewhere the operands are rounded to bf16 the same way and
//! multiplied by the f32 kernel: the same rounded inputs, but the sums are formed in
//! another order, so results differ in the last bits between the two kinds of CPU (each
//! is deterministic, and the same at any thread count).

use std::str::FromStr;
use std::sync::Mutex;

use gemmkit::kernel::Bf16DotGemmF32;
use gemmkit::simd::Avx512Bf16;
use gemmkit::{Parallelism, Workspace, bf16};
use nalgebra::{Dyn, Matrix, RawStorage, RawStorageMut};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Mat, Op, Ptr, finished_without_products, gemm, oriented, tiles_of};

/// Arithmetic of a substrate's matrix products.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 operands and accumulation (the reference; default).
    #[default]
    F32,
    /// Operands rounded to bf16, products accumulated in f32.
    Bf16,
}

impl Precision {
    /// Whether this is the default (for `skip_serializing_if`: f32 runs' files keep
    /// their earlier form).
    pub fn is_f32(&self) -> bool {
        *self == Precision::F32
    }

    /// The name used on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        [Precision::F32, Precision::Bf16]
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown precision {s:?} (expected f32 or bf16)"))
    }
}

/// Whether this CPU runs bf16 products natively (AVX512-BF16).
pub fn native() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `x` rounded to the nearest bf16 (ties to even), as raw bits, exactly as AVX512-BF16's
/// `vcvtneps2bf16` rounds: subnormal inputs become zero of the same sign, and a NaN stays
/// a (quiet) NaN. Branch-free so that a column converts as one vector loop.
#[inline(always)]
fn round_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let rounded = (b.wrapping_add(0x7FFF + ((b >> 16) & 1)) >> 16) as u16;
    if x.is_nan() {
        ((b >> 16) as u16) | 0x0040
    } else if x.is_subnormal() {
        ((b >> 16) as u16) & 0x8000
    } else {
        rounded
    }
}

/// `src`·`scale` rounded to bf16 into `dst` (same length), 16 at a time with
/// `vcvtneps2bf16`; the same bits as [`round_bits`].
///
/// # Safety
/// The CPU must have AVX512F and AVX512-BF16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn round_slice_native(src: &[f32], scale: f32, dst: &mut [bf16]) {
    use std::arch::x86_64::{
        __m256i, _mm256_storeu_si256, _mm512_cvtneps_pbh, _mm512_loadu_ps, _mm512_mul_ps,
        _mm512_set1_ps,
    };
    assert_eq!(src.len(), dst.len());
    let n = src.len();
    let s = _mm512_set1_ps(scale);
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 ≤ n elements of both slices; unaligned loads and stores.
        unsafe {
            let v = _mm512_mul_ps(_mm512_loadu_ps(src.as_ptr().add(i)), s);
            let h: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(v));
            _mm256_storeu_si256(dst.as_mut_ptr().add(i).cast(), h);
        }
        i += 16;
    }
    for (o, v) in dst[i..].iter_mut().zip(&src[i..]) {
        *o = bf16::from_bits(round_bits(scale * v));
    }
}

/// `x` rounded to bf16 and widened back to f32 (exact).
#[inline(always)]
pub fn round_to_bf16(x: f32) -> f32 {
    f32::from_bits(u32::from(round_bits(x)) << 16)
}

/// Elements above which a conversion is split between threads.
const PAR_CONVERT: usize = 1 << 18;

/// Conversion buffers and gemmkit workspaces, taken and returned so that nested or
/// concurrent calls (rayon may run another product on a thread that waits) never share one.
static BUFFERS: Mutex<Vec<Vec<bf16>>> = Mutex::new(Vec::new());
static WORKSPACES: Mutex<Vec<Workspace>> = Mutex::new(Vec::new());

fn take<T>(pool: &Mutex<Vec<T>>, make: impl FnOnce() -> T) -> T {
    pool.lock()
        .map(|mut p| p.pop())
        .ok()
        .flatten()
        .unwrap_or_else(make)
}

fn give<T>(pool: &Mutex<Vec<T>>, item: T) {
    if let Ok(mut p) = pool.lock() {
        p.push(item);
    }
}

/// The view `a` (as stored, r × c) times `scale`, rounded to bf16 into `dst`, column-major
/// and compact (element (i, j) at `j·r + i`).
fn convert<S: RawStorage<f32, Dyn, Dyn>>(
    a: &Matrix<f32, Dyn, Dyn, S>,
    scale: f32,
    dst: &mut Vec<bf16>,
) {
    let (r, c) = a.shape();
    let (rs, cs) = a.strides();
    let src = Ptr(a.as_ptr().cast_mut());
    let fast = native();
    // Every element is overwritten below: only a change of length touches the buffer.
    dst.resize(r * c, bf16::ZERO);
    let column = |j: usize, out: &mut [bf16]| {
        if rs == 1 {
            // SAFETY: the view outlives this call and is only read; with row stride 1 its
            // column j is r contiguous elements from j·cs.
            let col = unsafe { std::slice::from_raw_parts(src.get().add(j * cs), r) };
            #[cfg(target_arch = "x86_64")]
            if fast {
                // SAFETY: `fast` is set only where the CPU has AVX512F and AVX512-BF16.
                unsafe { round_slice_native(col, scale, out) };
                return;
            }
            for (o, v) in out.iter_mut().zip(col) {
                *o = bf16::from_bits(round_bits(scale * v));
            }
            return;
        }
        // SAFETY: (i, j) with i < r, j < c is inside the view, whose storage outlives this
        // call and is only read here; nalgebra guarantees every such element is addressable
        // at i·rs + j·cs.
        let at = |i: usize| unsafe { *src.get().add(i * rs + j * cs) };
        for (i, o) in out.iter_mut().enumerate() {
            *o = bf16::from_bits(round_bits(scale * at(i)));
        }
    };
    if r == 0 {
        return;
    }
    if r * c >= PAR_CONVERT {
        let per = (PAR_CONVERT / 4 / r).max(1);
        dst.par_chunks_mut(r * per)
            .enumerate()
            .for_each(|(t, chunk)| {
                for (jj, out) in chunk.chunks_mut(r).enumerate() {
                    column(t * per + jj, out);
                }
            });
    } else {
        for (j, out) in dst.chunks_mut(r).enumerate() {
            column(j, out);
        }
    }
}

/// Row and column strides of `op(A)` inside its compact buffer (A stored r × c).
fn compact_strides(rows_stored: usize, op: Op) -> (isize, isize) {
    match op {
        Op::N => (1, rows_stored as isize),
        Op::T => (rows_stored as isize, 1),
    }
}

/// `C ← α·op(A)·op(B) + β·C` with bf16 operands and f32 accumulation; same contract,
/// tiling and determinism as [`gemm`]. Called by [`super::gemm_in`]. With AVX512-BF16:
/// gemmkit's dot kernel on the rounded copies; otherwise [`gemm_emulated`].
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm_bf16<SA, SB, SC>(
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
    if !native() {
        gemm_emulated(alpha, a, op_a, b, op_b, beta, c);
        return;
    }
    let (m, k, _, _) = oriented(a, op_a);
    let (k2, n, _, _) = oriented(b, op_b);
    if finished_without_products(m, k, k2, n, beta, c) {
        return;
    }
    // The kernel takes α = 1 (α is folded into B's rounding: gemmkit 0.1.2's f32-output
    // family gave wrong products for α ≠ 1 when driven directly) and β ∈ {0, 1} (another
    // β scales C first, in f32); the tests below cover both.
    let beta = if beta == 0.0 || beta == 1.0 {
        beta
    } else {
        c.apply(|v| *v *= beta);
        1.0
    };
    let mut abuf = take(&BUFFERS, Vec::new);
    let mut bbuf = take(&BUFFERS, Vec::new);
    convert(a, 1.0, &mut abuf);
    convert(b, alpha, &mut bbuf);
    let (rsa, csa) = compact_strides(a.nrows(), op_a);
    let (rsb, csb) = compact_strides(b.nrows(), op_b);
    let (rsc, csc) = c.strides();
    let (rsc, csc) = (rsc as isize, csc as isize);
    let pa = BPtr(abuf.as_ptr());
    let pb = BPtr(bbuf.as_ptr());
    let pc = Ptr(c.as_mut_ptr());
    let tile = |r0: usize, mt: usize, c0: usize, nt: usize| {
        let (pa, pb, pc) = (pa, pb, pc);
        let mut ws = take(&WORKSPACES, Workspace::default);
        // SAFETY: `pa`/`pb` point at the compact bf16 copies of A and B (alive until the
        // end of this call), addressed with their compact strides; `pc` and its strides
        // describe the live storage of `c`, whose tiles are disjoint. The CPU has
        // AVX512F and AVX512-BF16 (checked on entry), as the Avx512Bf16 token
        // requires. m, n, k > 0, the driver's α = 1 ≠ 0 (an α of 0 was folded into B as
        // zeros) and C's row stride is 1, as the driver requires.
        unsafe {
            gemmkit::driver::run::<Bf16DotGemmF32, Avx512Bf16, 2, 12>(
                Avx512Bf16,
                mt,
                k,
                nt,
                1.0,
                pa.0.offset(r0 as isize * rsa),
                rsa,
                csa,
                pb.0.offset(c0 as isize * csb),
                rsb,
                csb,
                beta,
                pc.0.offset(r0 as isize * rsc + c0 as isize * csc),
                rsc,
                csc,
                Parallelism::Serial,
                &mut ws,
            );
        }
        give(&WORKSPACES, ws);
    };
    tiles_of(m, n, k, &tile);
    give(&BUFFERS, abuf);
    give(&BUFFERS, bbuf);
}

/// The portable form: operands rounded to bf16 (kept as f32), then the f32 kernel.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm_emulated<SA, SB, SC>(
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
    let ar: Mat = a.map(round_to_bf16);
    let br: Mat = b.map(|v| round_to_bf16(alpha * v));
    gemm(1.0, &ar, op_a, &br, op_b, beta, c);
}

/// A bf16 operand pointer shared by the tiles (read only).
#[derive(Clone, Copy)]
struct BPtr(*const bf16);
// SAFETY: the tiles only read through it while the buffer it points into is alive.
unsafe impl Send for BPtr {}
unsafe impl Sync for BPtr {}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    fn random(r: usize, c: usize, seed: u64) -> Mat {
        let mut rng = crate::rng::stream(seed, "bf16 test");
        Mat::from_fn(r, c, |_, _| rng.random::<f32>() * 2.0 - 1.0)
    }

    /// Rounding: nearest, ties to even, exact for bf16 values, relative error ≤ 2⁻⁸.
    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(round_to_bf16(1.0), 1.0);
        // 1 + 2⁻⁸ is halfway between 1 and 1 + 2⁻⁷: ties to the even (1.0).
        assert_eq!(round_to_bf16(1.0 + 2f32.powi(-8)), 1.0);
        assert_eq!(
            round_to_bf16(1.0 + 3.0 * 2f32.powi(-8)),
            1.0 + 2f32.powi(-6)
        );
        assert!(round_to_bf16(f32::NAN).is_nan());
        assert_eq!(round_to_bf16(f32::INFINITY), f32::INFINITY);
        let mut rng = crate::rng::stream(3, "bf16 test");
        for _ in 0..10_000 {
            let x = (rng.random::<f32>() - 0.5) * 1e3;
            let r = round_to_bf16(x);
            assert!((r - x).abs() <= x.abs() * 2f32.powi(-8), "{x} -> {r}");
        }
    }

    /// Every orientation, strided views, α and β: the bf16 product equals the f32
    /// product of the rounded operands to within f32 summation order, and stays within
    /// the bound 2⁻⁷·Σ|a·b| of the exact f32 product.
    #[test]
    fn bf16_product_matches_rounded_f32_product() {
        let big = random(70, 90, 1);
        let bsrc = random(60, 50, 2);
        for (op_a, op_b) in [
            (Op::N, Op::N),
            (Op::T, Op::N),
            (Op::N, Op::T),
            (Op::T, Op::T),
        ] {
            let a = match op_a {
                Op::N => big.view((3, 5), (40, 37)),
                Op::T => big.view((3, 5), (37, 40)),
            };
            let b = match op_b {
                Op::N => bsrc.view((1, 2), (37, 23)),
                Op::T => bsrc.view((1, 2), (23, 37)),
            };
            for (alpha, beta) in [(1.0, 0.0), (0.5, 1.0), (-2.0, 0.9)] {
                let c0 = random(40, 23, 7);
                let mut exact = c0.clone();
                gemm(alpha, &a, op_a, &b, op_b, beta, &mut exact);
                let mut fast = c0.clone();
                gemm_bf16(alpha, &a, op_a, &b, op_b, beta, &mut fast);
                let mut emulated = c0.clone();
                gemm_emulated(alpha, &a, op_a, &b, op_b, beta, &mut emulated);
                // Σ|α·a·b| per output bounds the rounding error.
                let am = a.map(f32::abs);
                let bm = b.map(f32::abs);
                let mut mag = Mat::zeros(40, 23);
                gemm(alpha.abs(), &am, op_a, &bm, op_b, 0.0, &mut mag);
                for i in 0..40 {
                    for j in 0..23 {
                        let bound = 2f32.powi(-7) * mag[(i, j)] * 1.01 + 1e-5;
                        assert!((fast[(i, j)] - exact[(i, j)]).abs() <= bound);
                        assert!(
                            (fast[(i, j)] - emulated[(i, j)]).abs() <= 1e-5 * (1.0 + mag[(i, j)])
                        );
                    }
                }
                // Not the f32 product: the operands really were rounded.
                assert_ne!(fast, exact);
            }
        }
    }

    /// The vector conversion gives the scalar rounding's bits, edge cases included.
    #[test]
    fn vector_rounding_matches_scalar_rounding() {
        if !native() {
            return;
        }
        let mut rng = crate::rng::stream(5, "bf16 test");
        let mut src: Vec<f32> = (0..1000)
            .map(|_| f32::from_bits(rng.random::<u32>()))
            .collect();
        src.extend([
            0.0,
            -0.0,
            1e-40,
            -1e-40,
            f32::MIN_POSITIVE,
            f32::MAX,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1.0 + 2f32.powi(-8),
            f32::NAN,
            -f32::NAN,
        ]);
        let mut fast = vec![bf16::ZERO; src.len()];
        // SAFETY: native() checked the CPU.
        unsafe { round_slice_native(&src, 1.0, &mut fast) };
        for (x, f) in src.iter().zip(&fast) {
            assert_eq!(f.to_bits(), round_bits(*x), "{x:e} ({:#x})", x.to_bits());
        }
    }

    /// Operands exact in bf16 with exact sums: bf16 and f32 agree bit for bit.
    #[test]
    fn exact_operands_give_exact_products() {
        let a = Mat::from_fn(33, 20, |i, j| ((i * 7 + j * 3) % 11) as f32 - 5.0);
        let b = Mat::from_fn(20, 17, |i, j| ((i * 5 + j) % 9) as f32 * 0.25);
        let mut want = Mat::zeros(33, 17);
        gemm(1.0, &a, Op::N, &b, Op::N, 0.0, &mut want);
        let mut got = Mat::from_element(33, 17, f32::NAN);
        gemm_bf16(1.0, &a, Op::N, &b, Op::N, 0.0, &mut got);
        assert_eq!(got, want);
    }

    /// A product large enough to be cut into tiles: identical with 1 and 2 threads.
    #[test]
    fn tiled_bf16_product_is_thread_count_independent() {
        let a = random(640, 500, 4);
        let b = random(500, 200, 5);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut c = Mat::zeros(640, 200);
                gemm_bf16(1.0, &a, Op::N, &b, Op::N, 0.0, &mut c);
                c
            })
        };
        assert_eq!(run(1), run(2));
    }
}
