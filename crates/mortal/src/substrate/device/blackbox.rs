//! The opaque stochastic black box on the input lines of layers ≥ 1, after the DAC:
//! fixed sparse crosstalk `z = (I + ε·R)·u` (R: `k` random neighbours per line with
//! N(0, 1/k) weights, drawn once per chip), a monotone per-line nonlinearity
//! `z + α_i·tanh(β·z)` (α_i ≥ 0, so the derivative 1 + α_i·β·sech² stays > 0), additive
//! noise per call, and per-call line dropout. Cost O(lines·k) per sample.

use rand::{Rng as _, RngExt};
use rand_distr::{Distribution, StandardNormal};

use super::normal::Normals;
use super::spec::BlackBoxSpec;
use crate::rng::Rng;

/// One layer's black box.
#[derive(Clone, Debug)]
pub(crate) struct BlackBox {
    k: usize,
    /// Neighbour indices, `k` per line.
    idx: Vec<u32>,
    /// Crosstalk weights ε·r, `k` per line.
    weight: Vec<f32>,
    /// Nonlinearity amplitude per line.
    alpha: Vec<f32>,
    beta: f32,
    /// Additive noise σ per call (normalised input units).
    pub noise: f32,
    /// Dropout threshold on a u32 (P = threshold/2³²).
    drop_threshold: u64,
}

impl BlackBox {
    /// Draws the fixed part for `lines` input lines, or `None` when disabled.
    pub fn new(spec: &BlackBoxSpec, lines: usize, rng: &mut Rng) -> Option<Self> {
        if !spec.enabled {
            return None;
        }
        let k = if lines > 1 {
            (spec.neighbours as usize).min(lines - 1)
        } else {
            0
        };
        let eps = spec.mixing as f32;
        let sd = if k > 0 { 1.0 / (k as f32).sqrt() } else { 0.0 };
        let mut idx = Vec::with_capacity(lines * k);
        let mut weight = Vec::with_capacity(lines * k);
        let mut alpha = Vec::with_capacity(lines);
        for i in 0..lines {
            for _ in 0..k {
                // A uniformly chosen other line.
                let mut j = rng.random_range(0..lines - 1);
                if j >= i {
                    j += 1;
                }
                idx.push(j as u32);
                let z: f32 = StandardNormal.sample(rng);
                weight.push(eps * sd * z);
            }
            let z: f32 = StandardNormal.sample(rng);
            alpha
                .push(spec.nonlinearity as f32 * (1.0 + spec.nonlinearity_std as f32 * z).max(0.0));
        }
        Some(Self {
            k,
            idx,
            weight,
            alpha,
            beta: spec.sharpness as f32,
            noise: spec.noise as f32,
            drop_threshold: (spec.dropout * 4_294_967_296.0) as u64,
        })
    }

    /// Passes one sample's line voltages `u` to `z` (same length), drawing per-call noise
    /// and dropout from `rng`.
    pub fn apply(&self, u: &[f32], z: &mut [f32], rng: &mut Normals) {
        let k = self.k;
        for (i, zi) in z.iter_mut().enumerate() {
            let mut v = u[i];
            for m in 0..k {
                v += self.weight[i * k + m] * u[self.idx[i * k + m] as usize];
            }
            let a = self.alpha[i];
            if a != 0.0 {
                v += a * (self.beta * v).tanh();
            }
            if self.noise > 0.0 {
                v += self.noise * rng.next();
            }
            if self.drop_threshold > 0 && u64::from(rng.rng.next_u32()) < self.drop_threshold {
                v = 0.0;
            }
            *zi = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> BlackBoxSpec {
        BlackBoxSpec {
            enabled: true,
            ..BlackBoxSpec::default()
        }
    }

    #[test]
    fn disabled_is_none_and_zeroed_spec_is_identity() {
        let mut rng = crate::rng::stream(1, "bb");
        assert!(BlackBox::new(&BlackBoxSpec::default(), 10, &mut rng).is_none());
        let mut calls = Normals::new(crate::rng::stream(9, "calls"));
        let quiet = BlackBoxSpec {
            enabled: true,
            mixing: 0.0,
            nonlinearity: 0.0,
            noise: 0.0,
            dropout: 0.0,
            ..BlackBoxSpec::default()
        };
        let bb = BlackBox::new(&quiet, 10, &mut rng).unwrap();
        let u: Vec<f32> = (0..10).map(|i| i as f32 * 0.1 - 0.4).collect();
        let mut z = vec![0.0; 10];
        bb.apply(&u, &mut z, &mut calls);
        assert_eq!(u, z);
    }

    #[test]
    fn noise_std_and_dropout_rate_match_the_spec() {
        let s = BlackBoxSpec {
            mixing: 0.0,
            nonlinearity: 0.0,
            noise: 0.05,
            dropout: 0.1,
            ..spec()
        };
        let mut rng = crate::rng::stream(2, "bb");
        let lines = 1000;
        let bb = BlackBox::new(&s, lines, &mut rng).unwrap();
        let mut rng = Normals::new(rng);
        let u = vec![0.5f32; lines];
        let mut z = vec![0.0; lines];
        let (mut dropped, mut n, mut sum, mut sum2) = (0usize, 0usize, 0.0f64, 0.0f64);
        for _ in 0..50 {
            bb.apply(&u, &mut z, &mut rng);
            for v in &z {
                if *v == 0.0 {
                    dropped += 1;
                } else {
                    let e = f64::from(*v) - 0.5;
                    sum += e;
                    sum2 += e * e;
                    n += 1;
                }
            }
        }
        let total = 50 * lines;
        let rate = dropped as f64 / total as f64;
        // Binomial: std of the rate = sqrt(0.1·0.9/50000) ≈ 0.0013; bound ≈ 4σ.
        assert!((rate - 0.1).abs() < 0.0054, "dropout rate {rate}");
        let mean = sum / n as f64;
        let sd = (sum2 / n as f64 - mean * mean).sqrt();
        // n ≈ 45,000: std of the sample std ≈ 0.05/√(2n) ≈ 1.7e-4; bound ≈ 4σ.
        assert!((sd - 0.05).abs() < 7e-4, "noise std {sd}");
        assert!(
            mean.abs() < 0.05 / (n as f64).sqrt() * 4.5,
            "noise mean {mean}"
        );
    }

    #[test]
    fn crosstalk_and_nonlinearity_are_fixed_and_monotone() {
        let s = BlackBoxSpec {
            noise: 0.0,
            dropout: 0.0,
            mixing: 0.2,
            nonlinearity: 0.1,
            ..spec()
        };
        let mut rng = crate::rng::stream(3, "bb");
        let bb = BlackBox::new(&s, 50, &mut rng).unwrap();
        let mut rng = Normals::new(rng);
        let mut z1 = vec![0.0; 50];
        let mut z2 = vec![0.0; 50];
        // Deterministic without noise: the same input gives the same output.
        let u: Vec<f32> = (0..50)
            .map(|i| ((i * 7) % 11) as f32 / 11.0 - 0.5)
            .collect();
        bb.apply(&u, &mut z1, &mut rng);
        bb.apply(&u, &mut z2, &mut rng);
        assert_eq!(z1, z2);
        assert_ne!(z1, u);
        // Line-wise monotone: raising every input of an isolated line (no neighbours
        // active) raises its output.
        let mut prev = f32::NEG_INFINITY;
        for k in 0..41 {
            let mut e = vec![0.0f32; 50];
            e[3] = -1.0 + 0.05 * k as f32;
            bb.apply(&e, &mut z1, &mut rng);
            assert!(z1[3] > prev);
            prev = z1[3];
        }
    }
}
