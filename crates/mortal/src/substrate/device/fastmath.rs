//! Deterministic elementary functions for the vectorised kernels: ln, ln(1 + x), exp and
//! exp(x) − 1 in f32 from polynomials, with no libm call and no branch (the compiler
//! vectorises loops that use them), so the same inputs give the same bits on every
//! machine and instruction set. Accuracy is stated per function and tested against f64.

const LN2: f32 = std::f32::consts::LN_2;

/// ln(x) for normal positive f32 x.
#[inline(always)]
pub(crate) fn ln(x: f32) -> f32 {
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xFF) as i32 - 127;
    let mut m = f32::from_bits((bits & 0x007F_FFFF) | 0x3F80_0000);
    // m in [√½, √2): t = (m − 1)/(m + 1) stays below 0.172.
    let big = m > std::f32::consts::SQRT_2;
    m = if big { m * 0.5 } else { m };
    e += i32::from(big);
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let p = 1.0 + t2 * (1.0 / 3.0 + t2 * (1.0 / 5.0 + t2 * (1.0 / 7.0 + t2 * (1.0 / 9.0))));
    e as f32 * LN2 + 2.0 * t * p
}

/// ln(1 + x) for x > −1 (relative error < 2e-6), accurate for tiny x: the rounding of
/// 1 + x is corrected to first order. Arguments above 1e30 are treated as 1e30.
#[inline(always)]
pub(crate) fn ln1p(x: f32) -> f32 {
    let x = x.min(1e30);
    let u = 1.0 + x;
    let corr = ((u - 1.0) - x) / u;
    let l = ln(u) - corr;
    // ln(u) is exact to rounding when u = 1; keep x itself for the smallest x.
    if u == 1.0 { x } else { l }
}

/// eʸ (relative error < 3e-7 for y in [−87, 88]); 0 below −87, and +∞ above 88.
#[inline(always)]
pub(crate) fn exp(y: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const MAGIC: f32 = 12_582_912.0;
    let yc = y.clamp(-87.0, 88.0);
    // k = round(y / ln 2) by the add-and-subtract trick (|k| < 2²²).
    let k = (yc * LOG2E + MAGIC) - MAGIC;
    let f = (yc - k * LN2_HI) - k * LN2_LO;
    let p = 1.0
        + f * (1.0
            + f * (0.5
                + f * (1.0 / 6.0
                    + f * (1.0 / 24.0
                        + f * (1.0 / 120.0 + f * (1.0 / 720.0 + f * (1.0 / 5040.0)))))));
    let scaled = f32::from_bits((p.to_bits() as i32 + ((k as i32) << 23)) as u32);
    if y < -87.0 {
        0.0
    } else if y > 88.0 {
        f32::INFINITY
    } else {
        scaled
    }
}

/// eʸ − 1, accurate for small y (relative error < 2e-6).
#[inline(always)]
pub(crate) fn expm1(y: f32) -> f32 {
    let series = y * (1.0 + y * (0.5 + y * (1.0 / 6.0 + y * (1.0 / 24.0 + y * (1.0 / 120.0)))));
    if y.abs() < 0.1 { series } else { exp(y) - 1.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: f32, b: f64) -> f64 {
        (f64::from(a) - b).abs() / b.abs().max(1e-300)
    }

    #[test]
    fn ln_is_accurate() {
        for k in 1..2000 {
            let x = k as f32 / 2000.0;
            let want = f64::from(x).ln();
            assert!(
                (f64::from(ln(x)) - want).abs() < 1e-6 * want.abs().max(1.0),
                "ln {x}"
            );
        }
        let tiny = 0.5 / 16_777_216.0f32;
        assert!((ln(tiny) - tiny.ln()).abs() < 1e-5);
    }

    #[test]
    fn ln1p_exp_expm1_are_accurate() {
        for k in -300..300 {
            // x from about 1e-12 to 1e6 in magnitude, both signs where defined.
            let x = 10f32.powf(k as f32 / 50.0);
            for x in [x, -x] {
                if x > -1.0 {
                    let want = f64::from(x).ln_1p();
                    assert!(rel(ln1p(x), want) < 2e-6, "ln1p {x}: {} vs {want}", ln1p(x));
                }
            }
        }
        for k in -870..880 {
            let y = k as f32 / 10.0 + 0.037;
            let want = f64::from(y).exp();
            if (-87.0..=88.0).contains(&y) {
                assert!(rel(exp(y), want) < 3e-7, "exp {y}: {} vs {want}", exp(y));
            }
        }
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(100.0), f32::INFINITY);
        for k in -400..200 {
            let y = 10f32.powf(k as f32 / 50.0);
            for y in [y, -y] {
                if y < 80.0 {
                    let want = f64::from(y).exp_m1();
                    assert!(
                        rel(expm1(y), want) < 2e-6,
                        "expm1 {y}: {} vs {want}",
                        expm1(y)
                    );
                }
            }
        }
    }
}
