//! Negative data for Forward-Forward: the true image with a wrong label (supervised), or a
//! hybrid of two images (unsupervised, [`super::augment::hybrids`]).

use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::CLASSES;
use crate::rng::Rng;

/// How the wrong label of a negative sample is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum NegativeLabels {
    /// Uniformly among the nine wrong labels.
    Random,
    /// In proportion to the model's current probabilities of the wrong labels (from a
    /// neutral-label pass), so confusable labels are drawn more often (reference recipe).
    Hard,
    /// Unsupervised FF (Hinton 2022, §3.2): no label in the input; negatives are hybrid
    /// images of two different training images, and a linear softmax classifier is
    /// trained on the normalised hidden activities (its gradient never enters them).
    Hybrid,
}

/// A uniformly random label other than `truth`.
pub fn random_wrong(truth: usize, rng: &mut Rng) -> usize {
    debug_assert!(truth < CLASSES);
    let r = rng.random_range(0..CLASSES - 1);
    if r >= truth { r + 1 } else { r }
}

/// A wrong label drawn with probability ∝ `exp(logits[k])` over `k ≠ truth`. Falls back to
/// [`random_wrong`] if the logits are not finite.
pub fn hard_wrong(logits: &[f32], truth: usize, rng: &mut Rng) -> usize {
    debug_assert_eq!(logits.len(), CLASSES);
    let max = logits
        .iter()
        .enumerate()
        .filter(|(k, _)| *k != truth)
        .map(|(_, v)| *v)
        .fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return random_wrong(truth, rng);
    }
    let mut w = [0.0f32; CLASSES];
    let mut total = 0.0;
    for (k, v) in logits.iter().enumerate() {
        if k != truth {
            w[k] = (v - max).exp();
            total += w[k];
        }
    }
    let mut u = rng.random::<f32>() * total;
    for (k, wk) in w.iter().enumerate() {
        if k == truth {
            continue;
        }
        if u < *wk {
            return k;
        }
        u -= wk;
    }
    // Round-off left u ≥ 0 past the last weight: return the last wrong label.
    (0..CLASSES).rev().find(|k| *k != truth).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream;

    #[test]
    fn negatives_never_equal_the_true_label() {
        let mut rng = stream(1, "neg");
        let logits: Vec<f32> = (0..10)
            .map(|k| if k == 3 { 50.0 } else { k as f32 * 0.1 })
            .collect();
        for truth in 0..CLASSES {
            for _ in 0..2000 {
                assert_ne!(random_wrong(truth, &mut rng), truth);
                assert_ne!(hard_wrong(&logits, truth, &mut rng), truth);
            }
        }
        // Even when the truth has all the probability mass.
        let mut peaked = [-100.0f32; 10];
        peaked[4] = 100.0;
        for _ in 0..1000 {
            assert_ne!(hard_wrong(&peaked, 4, &mut rng), 4);
        }
        assert_ne!(hard_wrong(&[f32::NAN; 10], 2, &mut rng), 2);
    }

    #[test]
    fn random_wrong_is_uniform_over_the_other_nine() {
        let mut rng = stream(2, "neg");
        let mut counts = [0usize; CLASSES];
        let n = 90_000;
        for _ in 0..n {
            counts[random_wrong(5, &mut rng)] += 1;
        }
        assert_eq!(counts[5], 0);
        // Each of nine labels: mean 10,000, std ≈ 94; allow 5 std.
        for (k, c) in counts.iter().enumerate().filter(|(k, _)| *k != 5) {
            assert!((*c as f64 - 10_000.0).abs() < 470.0, "label {k}: {c}");
        }
    }

    #[test]
    fn hard_wrong_follows_the_softmax_of_the_wrong_labels() {
        let mut rng = stream(3, "neg");
        let logits = [0.0f32, 2.0f32.ln(), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 9.0];
        // truth 9 is excluded; label 1 has weight 2, the other eight weight 1: p1 = 0.2.
        let n = 50_000;
        let ones = (0..n)
            .filter(|_| hard_wrong(&logits, 9, &mut rng) == 1)
            .count();
        let p = ones as f64 / n as f64;
        // std of the estimate: sqrt(0.2·0.8/50000) ≈ 0.0018.
        assert!((p - 0.2).abs() < 0.009, "p1 = {p}");
    }
}
