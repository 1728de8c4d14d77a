//! Goodness and the per-layer Forward-Forward loss.
//!
//! Goodness is the sum of squared activities `G = Σᵢ yᵢ²`. The probability that a sample
//! is positive is `p = σ(z)` with `z = s·(G − θ)/T`, where `s = +1` when positives should
//! have high goodness ("max ssq") and `−1` when they should have low goodness ("min ssq").
//!
//! The loss of one sample is the log-loss scaled by `T/2`:
//! `L = (T/2)·softplus(−z)` for a positive and `(T/2)·softplus(z)` for a negative.
//! The scale makes `∂L/∂yᵢ = c·yᵢ` with `c = −s·(1 − p)` (positive) or `c = s·p`
//! (negative), exactly the update of Hinton's reference code, so learning rates carry
//! over unchanged. Reported losses are the unscaled log-loss (nats).

use serde::{Deserialize, Serialize};

/// How a layer's goodness is computed from its activities.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum GoodnessFn {
    /// Sum of squared activities `Σ yᵢ²` (the paper's main choice).
    #[default]
    SumSq,
    /// Sum of the (non-negative, ReLU) activities `Σ yᵢ` (§10: "the sum of the unsquared
    /// activities").
    Sum,
}

impl GoodnessFn {
    /// Name on the command line and in result files.
    pub fn name(self) -> &'static str {
        match self {
            GoodnessFn::SumSq => "sum-sq",
            GoodnessFn::Sum => "sum",
        }
    }

    /// Goodness of each column of `data` (rows × n) into `out`.
    pub fn columns(self, data: &[f32], rows: usize, out: &mut [f32]) {
        match self {
            GoodnessFn::SumSq => crate::linalg::column_sum_sq(data, rows, out),
            GoodnessFn::Sum => {
                for (o, col) in out.iter_mut().zip(data.chunks(rows.max(1))) {
                    *o = col.iter().sum();
                }
            }
        }
    }

    /// The error `∂L/∂aᵢ` at a ReLU unit's pre-activation for gradient coefficient `c`
    /// (see [`SampleLoss::coeff`]) and measured activity `y`.
    #[inline]
    pub fn error(self, c: f32, y: f32) -> f32 {
        match self {
            GoodnessFn::SumSq => c * y,
            // ∂G/∂y = 1 where the unit is active; the T/2 scaling of L halves it.
            GoodnessFn::Sum => {
                if y > 0.0 {
                    0.5 * c
                } else {
                    0.0
                }
            }
        }
    }
}

/// Which way round goodness separates positive from negative data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Sign {
    /// Positives have goodness above the threshold, negatives below.
    MaxSsq,
    /// Positives have goodness below the threshold, negatives above.
    MinSsq,
}

impl Sign {
    /// +1 or −1.
    pub fn factor(self) -> f32 {
        match self {
            Sign::MaxSsq => 1.0,
            Sign::MinSsq => -1.0,
        }
    }
}

/// Numerically stable logistic function.
#[inline]
pub fn sigmoid(z: f32) -> f32 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// Numerically stable `ln(1 + eᶻ)`.
#[inline]
pub fn softplus(z: f32) -> f32 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

/// The loss of one layer, for a given threshold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GoodnessLoss {
    /// θ, in units of squared activity.
    pub threshold: f32,
    /// T (dimensionless).
    pub temperature: f32,
    /// Orientation.
    pub sign: Sign,
    /// Goodness function.
    pub function: GoodnessFn,
}

/// Loss value and gradient coefficient of one sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleLoss {
    /// Unscaled log-loss, nats.
    pub log_loss: f32,
    /// `c` such that `∂L/∂yᵢ = c·yᵢ` for the scaled loss `L`.
    pub coeff: f32,
    /// p(positive).
    pub p: f32,
}

impl GoodnessLoss {
    /// Logit `z = s·(G − θ)/T` of "this sample is positive".
    #[inline]
    pub fn logit(&self, goodness: f32) -> f32 {
        self.sign.factor() * (goodness - self.threshold) / self.temperature
    }

    /// Loss and gradient coefficient of a sample with this goodness.
    #[inline]
    pub fn sample(&self, goodness: f32, positive: bool) -> SampleLoss {
        let z = self.logit(goodness);
        let p = sigmoid(z);
        let s = self.sign.factor();
        if positive {
            SampleLoss {
                log_loss: softplus(-z),
                // 1 − σ(z) as σ(−z): formed as a difference in f32 it is 0 above
                // z ≈ 16.6, which changes adaptive optimisers' steps.
                coeff: -s * sigmoid(-z),
                p,
            }
        } else {
            SampleLoss {
                log_loss: softplus(z),
                coeff: s * p,
                p,
            }
        }
    }

    /// The scaled loss `L` of an activity vector (for gradient checks).
    pub fn scaled_loss(&self, y: &[f32], positive: bool) -> f32 {
        let mut g = [0.0f32];
        self.function.columns(y, y.len(), &mut g);
        let g = g[0];
        0.5 * self.temperature * self.sample(g, positive).log_loss
    }

    /// Score whose argmax over labels is the prediction (`s·G`).
    #[inline]
    pub fn score(&self, goodness: f32) -> f32 {
        self.sign.factor() * goodness
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn stable_functions_do_not_overflow() {
        assert_eq!(sigmoid(1000.0), 1.0);
        // A confident positive keeps its (tiny) gradient: 1 − σ(20) would be 0 in f32.
        let loss = GoodnessLoss {
            threshold: 0.0,
            temperature: 1.0,
            sign: Sign::MaxSsq,
            function: GoodnessFn::SumSq,
        };
        let c = loss.sample(20.0, true).coeff;
        assert!(c < 0.0, "{c}");
        assert_relative_eq!(
            c,
            -(-20.0f32).exp() / (1.0 + (-20.0f32).exp()),
            max_relative = 1e-6
        );
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_relative_eq!(softplus(1000.0), 1000.0);
        assert!(softplus(-1000.0) >= 0.0 && softplus(-1000.0) < 1e-30);
        assert_relative_eq!(softplus(0.0), std::f32::consts::LN_2);
        assert_relative_eq!(sigmoid(0.3) + sigmoid(-0.3), 1.0, epsilon = 1e-7);
    }

    /// ∂L/∂aᵢ (`GoodnessFn::error`: c·yᵢ for sum-sq, c/2 for sum), checked against central finite differences in f64-sized steps, for
    /// both signs, both kinds of sample, and goodness below, near and above threshold.
    #[test]
    fn gradient_matches_finite_differences() {
        for (sign, function) in [Sign::MaxSsq, Sign::MinSsq]
            .into_iter()
            .flat_map(|s| [(s, GoodnessFn::SumSq), (s, GoodnessFn::Sum)])
        {
            for temperature in [1.0f32, 3.0] {
                for scale in [0.2f32, 0.9, 1.6] {
                    let y: Vec<f32> = (0..8).map(|i| scale * (0.3 + 0.17 * i as f32)).collect();
                    let loss = GoodnessLoss {
                        threshold: 8.0 * 0.64,
                        temperature,
                        sign,
                        function,
                    };
                    for positive in [true, false] {
                        let mut g = [0.0];
                        function.columns(&y, 8, &mut g);
                        let g = g[0];
                        let c = loss.sample(g, positive).coeff;
                        for i in 0..y.len() {
                            let h = 1e-3f32;
                            let (mut yp, mut ym) = (y.clone(), y.clone());
                            yp[i] += h;
                            ym[i] -= h;
                            let fd = (loss.scaled_loss(&yp, positive)
                                - loss.scaled_loss(&ym, positive))
                                / (2.0 * h);
                            let e = function.error(c, y[i]);
                            assert!(
                                (fd - e).abs() < 2e-3 * (1.0 + fd.abs()),
                                "{sign:?} {function:?} T={temperature} pos={positive} i={i}: \
                                 fd {fd} vs {e}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn positives_want_high_goodness_under_max_ssq() {
        let l = GoodnessLoss {
            threshold: 10.0,
            temperature: 1.0,
            sign: Sign::MaxSsq,
            function: GoodnessFn::SumSq,
        };
        assert!(l.sample(20.0, true).log_loss < l.sample(5.0, true).log_loss);
        assert!(l.sample(20.0, false).log_loss > l.sample(5.0, false).log_loss);
        // Descent on a positive raises goodness: coefficient negative.
        assert!(l.sample(5.0, true).coeff < 0.0);
        let m = GoodnessLoss {
            sign: Sign::MinSsq,
            ..l
        };
        assert!(m.sample(20.0, true).log_loss > m.sample(5.0, true).log_loss);
        assert!(m.score(3.0) > m.score(4.0));
    }
}
