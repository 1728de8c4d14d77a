//! Soft targets from a teacher's scores: probabilities at a temperature, labels drawn from
//! them, and the KL divergence between two label distributions.

use rand::RngExt;

use crate::data::CLASSES;
use crate::linalg::Mat;
use crate::rng::Rng;

/// `softmax(z / T)` of one column of 10 scores. Non-finite scores give the uniform
/// distribution (so a diverged teacher cannot poison sampling with NaNs).
pub fn softmax_t(z: &[f32], temperature: f32) -> [f32; CLASSES] {
    debug_assert_eq!(z.len(), CLASSES);
    let mut p = [1.0 / CLASSES as f32; CLASSES];
    if z.iter().any(|v| !v.is_finite()) {
        return p;
    }
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0.0f32;
    for (pk, v) in p.iter_mut().zip(z) {
        *pk = ((v - max) / temperature).exp();
        total += *pk;
    }
    for pk in &mut p {
        *pk /= total;
    }
    p
}

/// Probabilities (10 × n) of every column of `scores` at `temperature`.
pub fn probabilities(scores: &Mat, temperature: f32) -> Mat {
    assert_eq!(scores.nrows(), CLASSES, "probabilities: 10 score rows");
    let mut out = Mat::zeros(CLASSES, scores.ncols());
    for j in 0..scores.ncols() {
        let p = softmax_t(scores.column(j).as_slice(), temperature);
        out.column_mut(j).copy_from_slice(&p);
    }
    out
}

/// `KL(p ‖ q) = Σ_k p_k ln(p_k / q_k)` in nats. Terms with `p_k = 0` vanish; `q_k` is
/// floored at 1e-30 so a confident wrong student gives a large finite value.
pub fn kl(p: &[f32], q: &[f32]) -> f64 {
    p.iter()
        .zip(q)
        .filter(|(pk, _)| **pk > 0.0)
        .map(|(pk, qk)| {
            let (pk, qk) = (f64::from(*pk), f64::from(*qk).max(1e-30));
            pk * (pk / qk).ln()
        })
        .sum()
}

/// A label drawn with probability `p_k` (p sums to 1 up to round-off).
pub fn sample_label(p: &[f32], rng: &mut Rng) -> usize {
    let total: f32 = p.iter().sum();
    let mut u = rng.random::<f32>() * total;
    for (k, pk) in p.iter().enumerate() {
        if u < *pk {
            return k;
        }
        u -= pk;
    }
    // Round-off: the last label with any mass.
    p.iter().rposition(|pk| *pk > 0.0).unwrap_or(0)
}

/// A label other than `exclude`, drawn with probability ∝ `p_k` over the other labels;
/// uniformly among them if they carry no mass at all.
pub fn sample_wrong(p: &[f32], exclude: usize, rng: &mut Rng) -> usize {
    let mut w = [0.0f32; CLASSES];
    w.copy_from_slice(&p[..CLASSES]);
    w[exclude] = 0.0;
    let total: f32 = w.iter().sum();
    if !(total.is_finite() && total > 0.0) {
        return crate::data::negatives::random_wrong(exclude, rng);
    }
    let k = sample_label(&w, rng);
    if k == exclude {
        crate::data::negatives::random_wrong(exclude, rng)
    } else {
        k
    }
}

/// `(1 − α)·p + α·onehot(label)`: a teacher distribution with the true label mixed in.
pub fn mix_hard(p: &[f32], label: usize, alpha: f32) -> [f32; CLASSES] {
    let mut out = [0.0f32; CLASSES];
    for (k, o) in out.iter_mut().enumerate() {
        *o = (1.0 - alpha) * p[k] + if k == label { alpha } else { 0.0 };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream;

    #[test]
    fn softmax_at_temperature_flattens_and_sums_to_one() {
        let z = [0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 5.0];
        let p1 = softmax_t(&z, 1.0);
        let p4 = softmax_t(&z, 4.0);
        assert!((p1.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((p4.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p4[9] < p1[9] && p4[0] > p1[0]);
        // Ratio of two labels is exp(Δz / T).
        assert!((p4[2] / p4[1] - (1.0f32 / 4.0).exp()).abs() < 1e-5);
        // Huge scores do not overflow; NaN gives uniform.
        let big = softmax_t(&[1e30, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], 1.0);
        assert_eq!(big[0], 1.0);
        assert_eq!(softmax_t(&[f32::NAN; 10], 2.0), [0.1; 10]);
    }

    #[test]
    fn kl_is_zero_on_equal_distributions_and_matches_a_hand_value() {
        let p = [0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        assert_eq!(kl(&p, &p), 0.0);
        let q = [0.25, 0.75, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let want = 0.5 * (0.5f64 / 0.25).ln() + 0.5 * (0.5f64 / 0.75).ln();
        assert!((kl(&p, &q) - want).abs() < 1e-7);
        assert!(kl(&q, &p) > 0.0);
        // q = 0 where p > 0: large but finite.
        let r = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        assert!(kl(&p, &r).is_finite() && kl(&p, &r) > 10.0);
    }

    #[test]
    fn sampled_labels_follow_the_teacher_and_negatives_never_hit_the_positive() {
        let mut rng = stream(4, "distill-test");
        let p = [0.6, 0.3, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let n = 40_000;
        let mut counts = [0usize; CLASSES];
        for _ in 0..n {
            counts[sample_label(&p, &mut rng)] += 1;
        }
        // std of each estimate ≤ sqrt(0.25/40000) = 0.0025; allow 5 std.
        for k in 0..3 {
            let f = counts[k] as f64 / n as f64;
            assert!((f - f64::from(p[k])).abs() < 0.0125, "label {k}: {f}");
        }
        assert_eq!(counts[3..].iter().sum::<usize>(), 0);
        // Negatives excluding label 0: 0.3 : 0.1 → 3/4 and 1/4.
        let mut neg = [0usize; CLASSES];
        for _ in 0..n {
            neg[sample_wrong(&p, 0, &mut rng)] += 1;
        }
        assert_eq!(neg[0], 0);
        let f1 = neg[1] as f64 / n as f64;
        assert!((f1 - 0.75).abs() < 0.011, "p(1 | not 0) = {f1}");
        assert_eq!(neg[3..].iter().sum::<usize>(), 0);
        // All the mass on the excluded label: uniform over the nine others.
        let peaked = [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        for _ in 0..2000 {
            assert_ne!(sample_wrong(&peaked, 2, &mut rng), 2);
        }
    }

    #[test]
    fn mixing_in_the_true_label_keeps_a_distribution() {
        let p = [0.1; CLASSES];
        let m = mix_hard(&p, 3, 0.5);
        assert!((m.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((m[3] - 0.55).abs() < 1e-6 && (m[0] - 0.05).abs() < 1e-6);
    }
}
