//! Input DACs and output ADCs: uniform symmetric quantisers with saturation.
//!
//! Both work in normalised units (inputs: fraction of the DAC's full scale; outputs:
//! normalised output units, see [`super::spec`]). A `b`-bit converter has `2^b − 1`
//! levels symmetric about 0 (zero included): the DAC's step is `1/(2^(b−1) − 1)` of full
//! scale and the ADC's `2·bound/(2^b − 2)`, which is how aihwkit states its defaults
//! (`inp_res = 1/(2^7 − 2)`, `out_res = 1/(2^9 − 2)` of the full range).

use super::spec::{AdcSpec, DacSpec};

/// A uniform quantiser: clip to ±bound (if bound > 0), then round to the nearest multiple
/// of `step` (if step > 0), ties to even.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Quantizer {
    /// Level spacing (0 = continuous).
    pub step: f32,
    inv_step: f32,
    /// Saturation bound (0 = none).
    pub bound: f32,
}

impl Quantizer {
    fn new(step: f32, bound: f32) -> Self {
        Self {
            step,
            inv_step: if step > 0.0 { 1.0 / step } else { 0.0 },
            bound,
        }
    }

    /// The input DAC on normalised inputs: full scale ±1 (inputs beyond clip).
    pub fn dac(spec: &DacSpec) -> Self {
        let step = if spec.bits == 0 {
            0.0
        } else {
            1.0 / ((1u64 << (spec.bits - 1)) - 1) as f32
        };
        Self::new(step, 1.0)
    }

    /// The output ADC on normalised outputs.
    pub fn adc(spec: &AdcSpec) -> Self {
        let bound = spec.bound as f32;
        let step = if spec.bits == 0 {
            0.0
        } else {
            2.0 * bound / ((1u64 << spec.bits) - 2) as f32
        };
        Self::new(step, bound)
    }

    /// Whether the quantiser changes nothing (no levels, no saturation).
    pub fn is_ideal(&self) -> bool {
        self.step == 0.0 && self.bound == 0.0
    }

    /// Quantises one value.
    #[inline(always)]
    pub fn apply(&self, v: f32) -> f32 {
        // max/min rather than clamp (whose assertion stops vectorisation); NaN stays NaN.
        let v = if self.bound > 0.0 && !v.is_nan() {
            v.max(-self.bound).min(self.bound)
        } else {
            v
        };
        if self.step > 0.0 {
            round_even(v * self.inv_step) * self.step
        } else {
            v
        }
    }
}

/// Round to nearest, ties to even, for |x| < 2²² (converters have at most 20 bits), by
/// adding and removing 1.5·2²³: two additions instead of a libm call on CPUs without
/// SSE4.1 rounding instructions.
#[inline(always)]
fn round_even(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (x + MAGIC) - MAGIC
}

#[cfg(test)]
mod tests {
    use super::*;

    fn distinct_levels(q: &Quantizer, lo: f32, hi: f32) -> usize {
        let n = 200_001;
        let mut v: Vec<f32> = (0..n)
            .map(|k| q.apply(lo + (hi - lo) * k as f32 / (n - 1) as f32))
            .collect();
        v.sort_by(f32::total_cmp);
        v.dedup();
        v.len()
    }

    #[test]
    fn dac_has_2_pow_b_minus_1_levels_and_clips() {
        for bits in [2, 4, 7] {
            let q = Quantizer::dac(&DacSpec {
                bits,
                ..DacSpec::default()
            });
            // Sweeping ±1.5 full scale reaches every level once, and no more.
            assert_eq!(
                distinct_levels(&q, -1.5, 1.5),
                (1 << bits) - 1,
                "{bits} bits"
            );
            assert_eq!(q.apply(3.0), 1.0);
            assert_eq!(q.apply(-3.0), -1.0);
            assert_eq!(q.apply(0.0), 0.0);
        }
        let q7 = Quantizer::dac(&DacSpec::default());
        assert!((q7.step - 1.0 / 63.0).abs() < 1e-9);
        // Rounding error is at most half a step.
        for k in 0..1000 {
            let v = -1.0 + 2.0 * k as f32 / 999.0;
            assert!((q7.apply(v) - v).abs() <= 0.5 * q7.step + 1e-6);
            assert_eq!(round_even(v * 63.0), (v * 63.0).round_ties_even());
        }
        assert_eq!(round_even(2.5), 2.0);
        assert_eq!(round_even(-3.5), -4.0);
        assert_eq!(round_even(1_048_575.4), 1_048_575.0);
    }

    #[test]
    fn adc_has_2_pow_b_minus_1_levels_within_its_bound() {
        let q = Quantizer::adc(&AdcSpec {
            bits: 5,
            bound: 3.0,
        });
        assert_eq!(distinct_levels(&q, -10.0, 10.0), 31);
        assert_eq!(q.apply(7.0), 3.0);
        assert_eq!(q.apply(-7.0), -3.0);
        assert!((q.step - 6.0 / 30.0).abs() < 1e-7);
        let ideal = Quantizer::adc(&AdcSpec {
            bits: 0,
            bound: 0.0,
        });
        assert!(ideal.is_ideal());
        assert_eq!(ideal.apply(123.456), 123.456);
        // Saturation without quantisation.
        let clip = Quantizer::adc(&AdcSpec {
            bits: 0,
            bound: 2.0,
        });
        assert_eq!(clip.apply(2.5), 2.0);
        assert_eq!(clip.apply(1.2345), 1.2345);
    }
}
