//! Fast standard normals for the per-call noise of the hot paths (read noise, c2c noise,
//! black-box noise), generated 64 at a time.
//!
//! Box–Muller in f32: from one u64, u₁ and φ (24 bits each) and two sign bits give
//! `z₀ = ±√(−2 ln u₁)·cos φ`, `z₁ = ±√(−2 ln u₁)·sin φ` with φ uniform on [0, π/2) (a
//! uniform angle on the circle is a uniform angle in the first quadrant with independent
//! signs). `ln`, `cos` and `sin` are polynomial (relative error < 1e-6 against f64), and
//! the loop has no branches so the compiler vectorises it. u₁ = (k + ½)/2²⁴ bounds
//! |z| ≤ 5.8: the tail beyond (probability 7e-9) is cut. Deterministic: the same stream
//! gives the same numbers on every machine (no FMA, no libm), whichever instruction set
//! the runtime dispatch picks.

use rand::Rng as _;

use super::fastmath::ln;
use crate::rng::Rng;

/// Normals per refill.
pub(crate) const BATCH: usize = 64;

const TWO_POW_M24: f32 = 1.0 / 16_777_216.0;
const HALF_PI: f32 = std::f32::consts::FRAC_PI_2;

/// cos and sin on [0, π/2] (Taylor to φ¹², error < 1e-9 before rounding).
#[inline(always)]
fn cos_sin(p: f32) -> (f32, f32) {
    let x2 = p * p;
    let c = 1.0
        + x2 * (-1.0 / 2.0
            + x2 * (1.0 / 24.0
                + x2 * (-1.0 / 720.0
                    + x2 * (1.0 / 40_320.0
                        + x2 * (-1.0 / 3_628_800.0 + x2 * (1.0 / 479_001_600.0))))));
    let s = p
        * (1.0
            + x2 * (-1.0 / 6.0
                + x2 * (1.0 / 120.0
                    + x2 * (-1.0 / 5040.0
                        + x2 * (1.0 / 362_880.0
                            + x2 * (-1.0 / 39_916_800.0 + x2 * (1.0 / 6_227_020_800.0)))))));
    (c, s)
}

/// Two independent standard normals from one random 64-bit word (see the module docs).
#[inline(always)]
pub(crate) fn pair(w: u64) -> (f32, f32) {
    pair_of_halves(w as u32, (w >> 32) as u32)
}

/// [`pair`] of the word whose low and high halves are `lo` and `hi`: 32-bit work only,
/// so a loop of it vectorises at the full f32 width (16 lanes with AVX-512).
#[inline(always)]
pub(crate) fn pair_of_halves(lo: u32, hi: u32) -> (f32, f32) {
    let u1 = ((lo & 0x00FF_FFFF) as i32 as f32 + 0.5) * TWO_POW_M24;
    let phi = ((hi & 0x00FF_FFFF) as i32 as f32 + 0.5) * (TWO_POW_M24 * HALF_PI);
    let rad = (-2.0 * ln(u1)).sqrt();
    let (c, s) = cos_sin(phi);
    let z0 = rad * c;
    let z1 = rad * s;
    (
        f32::from_bits(z0.to_bits() ^ (lo & 0x8000_0000)),
        f32::from_bits(z1.to_bits() ^ (hi & 0x8000_0000)),
    )
}

/// Fills `out` with standard normals from `rng` (32 u64 draws).
#[multiversion::multiversion(targets = "simd")]
pub(crate) fn fill(out: &mut [f32; BATCH], rng: &mut Rng) {
    let mut words = [0u64; BATCH / 2];
    for w in &mut words {
        *w = rng.next_u64();
    }
    for (k, w) in words.iter().enumerate() {
        let (z0, z1) = pair(*w);
        out[2 * k] = z0;
        out[2 * k + 1] = z1;
    }
}

/// A stream of standard normals drawn in batches from a generator.
pub(crate) struct Normals {
    pub rng: Rng,
    buf: [f32; BATCH],
    next: usize,
}

impl Normals {
    pub fn new(rng: Rng) -> Self {
        Self {
            rng,
            buf: [0.0; BATCH],
            next: BATCH,
        }
    }

    /// The next standard normal.
    #[inline(always)]
    pub fn next(&mut self) -> f32 {
        if self.next == BATCH {
            fill(&mut self.buf, &mut self.rng);
            self.next = 0;
        }
        let z = self.buf[self.next];
        self.next += 1;
        z
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polynomials_are_accurate() {
        for k in 1..2000 {
            let x = k as f32 / 2000.0;
            let p = x * HALF_PI;
            let (c, s) = cos_sin(p);
            assert!((f64::from(c) - f64::from(p).cos()).abs() < 3e-7, "cos {p}");
            assert!((f64::from(s) - f64::from(p).sin()).abs() < 3e-7, "sin {p}");
        }
    }

    #[test]
    fn normals_have_gaussian_moments_and_cdf() {
        let mut n = Normals::new(crate::rng::stream(1, "normals"));
        let count = 1_000_000;
        let (mut s1, mut s2, mut s3, mut s4) = (0.0f64, 0.0, 0.0, 0.0);
        let cuts = [-2.0f64, -1.0, -0.5, 0.0, 0.3, 1.0, 2.5];
        let mut below = [0usize; 7];
        for _ in 0..count {
            let z = f64::from(n.next());
            s1 += z;
            s2 += z * z;
            s3 += z * z * z;
            s4 += z * z * z * z;
            for (b, c) in below.iter_mut().zip(cuts) {
                *b += usize::from(z < c);
            }
        }
        let c = count as f64;
        let (m, v) = (s1 / c, s2 / c);
        // n = 1e6: std of the mean 1e-3, of the variance √2·1e-3, of the third moment
        // √15·1e-3, of the fourth √96·1e-3; bounds ≈ 4.5σ.
        assert!(m.abs() < 4.5e-3, "mean {m}");
        assert!((v - 1.0).abs() < 6.4e-3, "variance {v}");
        assert!((s3 / c).abs() < 0.018, "skew {}", s3 / c);
        assert!((s4 / c - 3.0).abs() < 0.045, "fourth moment {}", s4 / c);
        // CDF at fixed points: binomial std ≤ 5e-4; bound 2.5e-3.
        let phi = |x: f64| 0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2));
        for (b, x) in below.iter().zip(cuts) {
            let got = *b as f64 / c;
            assert!(
                (got - phi(x)).abs() < 2.5e-3,
                "CDF({x}) {got} vs {}",
                phi(x)
            );
        }
    }

    /// erf by Abramowitz–Stegun 7.1.26 (|error| < 1.5e-7), enough for the check above.
    fn erf(x: f64) -> f64 {
        let s = x.signum();
        let x = x.abs();
        let t = 1.0 / (1.0 + 0.327_591_1 * x);
        let y = 1.0
            - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736)
                * t
                + 0.254_829_592)
                * t
                * (-x * x).exp();
        s * y
    }
}
