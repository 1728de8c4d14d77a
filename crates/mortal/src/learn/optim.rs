//! Optimisers and learning-rate schedules.
//!
//! An optimiser turns a gradient into a requested change `scale·step` plus a weight
//! decay fraction, because on a chip the decay must be realised by the device (the host
//! does not know the weights), not folded into the step.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Result, ensure};
use crate::linalg::Mat;

/// Optimiser settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// SGD with momentum, in PyTorch's convention (`v ← μ·v + g`, `Δw = −lr·v`).
    ///
    /// Weight cost `wc` is applied as a decay of `lr·wc/(1 − μ)` per step, which is the
    /// steady-state shrinkage of L2 folded into momentum, and exactly the reference
    /// Forward-Forward recipe (`w += ε·(ḡ − wc·w)` with smoothed gradient
    /// `ḡ ← μ·ḡ + (1 − μ)·g`, so `lr = ε·(1 − μ)`).
    Sgd {
        /// Learning rate (per mean-over-batch gradient).
        lr: f32,
        /// Momentum μ in [0, 1).
        momentum: f32,
        /// Weight cost (L2 coefficient) on weights, not biases.
        weight_decay: f32,
    },
    /// Adam with decoupled weight decay (AdamW).
    Adam {
        /// Learning rate.
        lr: f32,
        /// First-moment decay β₁.
        beta1: f32,
        /// Second-moment decay β₂.
        beta2: f32,
        /// Denominator offset ε.
        eps: f32,
        /// Decoupled weight decay per unit learning rate.
        weight_decay: f32,
    },
}

impl OptimizerConfig {
    /// The reference Forward-Forward recipe: SGD, lr 1e-3, momentum 0.9, weight cost 1e-3.
    pub fn ff_reference() -> Self {
        OptimizerConfig::Sgd {
            lr: 1e-3,
            momentum: 0.9,
            weight_decay: 1e-3,
        }
    }

    /// Adam with the usual constants.
    pub fn adam(lr: f32, weight_decay: f32) -> Self {
        OptimizerConfig::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
        }
    }

    /// The learning rate.
    pub fn lr(&self) -> f32 {
        match self {
            OptimizerConfig::Sgd { lr, .. } | OptimizerConfig::Adam { lr, .. } => *lr,
        }
    }

    /// Checks ranges; `key` prefixes the parameter names in errors.
    pub fn validate(&self, key: &str) -> Result<()> {
        match *self {
            OptimizerConfig::Sgd {
                lr,
                momentum,
                weight_decay,
            } => {
                ensure(
                    lr.is_finite() && lr > 0.0,
                    &format!("{key}.lr"),
                    lr,
                    "must be a positive number",
                )?;
                ensure(
                    (0.0..1.0).contains(&momentum),
                    &format!("{key}.momentum"),
                    momentum,
                    "must be in [0, 1)",
                )?;
                ensure(
                    weight_decay.is_finite() && weight_decay >= 0.0,
                    &format!("{key}.weight_decay"),
                    weight_decay,
                    "must be ≥ 0",
                )
            }
            OptimizerConfig::Adam {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                ensure(
                    lr.is_finite() && lr > 0.0,
                    &format!("{key}.lr"),
                    lr,
                    "must be a positive number",
                )?;
                ensure(
                    (0.0..1.0).contains(&beta1),
                    &format!("{key}.beta1"),
                    beta1,
                    "must be in [0, 1)",
                )?;
                ensure(
                    (0.0..1.0).contains(&beta2),
                    &format!("{key}.beta2"),
                    beta2,
                    "must be in [0, 1)",
                )?;
                ensure(eps > 0.0, &format!("{key}.eps"), eps, "must be > 0")?;
                ensure(
                    weight_decay.is_finite() && weight_decay >= 0.0,
                    &format!("{key}.weight_decay"),
                    weight_decay,
                    "must be ≥ 0",
                )
            }
        }
    }
}

/// Learning-rate schedule over epochs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// The same rate throughout.
    Constant,
    /// The reference recipe: constant for the first half of the epochs, then falling
    /// linearly to `1/E` at the last epoch (gain `(1 + 2(E − e))/E` for epoch `e > E/2`).
    HalfThenLinear,
}

impl Schedule {
    /// Learning-rate multiplier for 1-based `epoch` of `epochs`.
    pub fn gain(self, epoch: usize, epochs: usize) -> f32 {
        match self {
            Schedule::Constant => 1.0,
            Schedule::HalfThenLinear => {
                if 2 * epoch <= epochs {
                    1.0
                } else {
                    (1.0 + 2.0 * (epochs - epoch) as f32) / epochs as f32
                }
            }
        }
    }
}

/// The optimiser state of one parameter tensor (weights or biases).
#[derive(Clone, Debug)]
pub struct OptState {
    config: OptimizerConfig,
    /// SGD velocity or Adam first moment (same shape as the parameter).
    m: Mat,
    /// Adam second moment (empty for SGD).
    v: Mat,
    /// Steps taken (Adam bias correction).
    t: i32,
}

/// A change to apply: `param ← (1 − decay)·param + scale·step`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    pub scale: f32,
    pub decay: f32,
}

const CHUNK: usize = 1 << 14;

impl OptState {
    /// State for a `rows × cols` parameter tensor (biases: `n × 1`).
    pub fn new(config: &OptimizerConfig, rows: usize, cols: usize) -> Self {
        let v = match config {
            OptimizerConfig::Adam { .. } => Mat::zeros(rows, cols),
            OptimizerConfig::Sgd { .. } => Mat::zeros(0, 0),
        };
        Self {
            config: config.clone(),
            m: Mat::zeros(rows, cols),
            v,
            t: 0,
        }
    }

    /// True for SGD-momentum, whose velocity can be updated by a GEMM directly
    /// (see [`OptState::velocity_mut`]).
    pub fn is_sgd(&self) -> bool {
        matches!(self.config, OptimizerConfig::Sgd { .. })
    }

    /// The SGD momentum μ (0 for Adam).
    pub fn momentum(&self) -> f32 {
        match self.config {
            OptimizerConfig::Sgd { momentum, .. } => momentum,
            OptimizerConfig::Adam { .. } => 0.0,
        }
    }

    /// SGD only: the velocity buffer, for callers that fold `v ← μ·v + g` into the GEMM
    /// that computes `g`. Call [`OptState::sgd_step_from_velocity`] afterwards.
    pub fn velocity_mut(&mut self) -> &mut Mat {
        &mut self.m
    }

    /// SGD only: the velocity, i.e. the step direction after [`OptState::velocity_mut`]
    /// was updated.
    pub fn velocity(&self) -> &Mat {
        &self.m
    }

    /// SGD only: the step after the velocity was updated in place. `decays` says whether
    /// this tensor takes weight decay (weights yes, biases no).
    pub fn sgd_step_from_velocity(&mut self, gain: f32, decays: bool) -> Step {
        match self.config {
            OptimizerConfig::Sgd {
                lr,
                momentum,
                weight_decay,
            } => Step {
                scale: -lr * gain,
                decay: if decays {
                    lr * gain * weight_decay / (1.0 - momentum)
                } else {
                    0.0
                },
            },
            OptimizerConfig::Adam { .. } => panic!("sgd_step_from_velocity on Adam state"),
        }
    }

    /// Turns gradient `g` into a step written to `out` (same length), returning the scale
    /// and decay to apply. `gain` is the schedule multiplier.
    pub fn step(&mut self, g: &[f32], gain: f32, decays: bool, out: &mut [f32]) -> Step {
        assert_eq!(g.len(), self.m.len());
        assert_eq!(out.len(), g.len());
        let m = self.m.as_mut_slice();
        match self.config {
            OptimizerConfig::Sgd { momentum, .. } => {
                m.par_chunks_mut(CHUNK)
                    .zip(g.par_chunks(CHUNK))
                    .zip(out.par_chunks_mut(CHUNK))
                    .for_each(|((m, g), o)| {
                        for ((mi, gi), oi) in m.iter_mut().zip(g).zip(o) {
                            *mi = momentum * *mi + gi;
                            *oi = *mi;
                        }
                    });
                self.sgd_step_from_velocity(gain, decays)
            }
            OptimizerConfig::Adam {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                self.t += 1;
                let c1 = 1.0 - beta1.powi(self.t);
                let c2 = 1.0 - beta2.powi(self.t);
                m.par_chunks_mut(CHUNK)
                    .zip(self.v.as_mut_slice().par_chunks_mut(CHUNK))
                    .zip(g.par_chunks(CHUNK))
                    .zip(out.par_chunks_mut(CHUNK))
                    .for_each(|(((m, v), g), o)| {
                        for (((mi, vi), gi), oi) in m.iter_mut().zip(v.iter_mut()).zip(g).zip(o) {
                            *mi = beta1 * *mi + (1.0 - beta1) * gi;
                            *vi = beta2 * *vi + (1.0 - beta2) * gi * gi;
                            *oi = (*mi / c1) / ((*vi / c2).sqrt() + eps);
                        }
                    });
                Step {
                    scale: -lr * gain,
                    decay: if decays {
                        lr * gain * weight_decay
                    } else {
                        0.0
                    },
                }
            }
        }
    }
}

/// Applies a step to parameters held by the host: `p ← (1 − decay)·p + scale·step`.
pub fn apply(params: &mut [f32], step_values: &[f32], step: Step) {
    crate::linalg::axpby(params, 1.0 - step.decay, step.scale, step_values);
}

impl OptState {
    /// One optimiser step on parameters the host holds itself. `scratch` is reused
    /// between calls (Adam's step direction).
    pub fn apply_gradient(
        &mut self,
        params: &mut [f32],
        grad: &[f32],
        gain: f32,
        decays: bool,
        scratch: &mut Vec<f32>,
    ) {
        if self.is_sgd() {
            let mu = self.momentum();
            crate::linalg::axpby(self.m.as_mut_slice(), mu, 1.0, grad);
            let s = self.sgd_step_from_velocity(gain, decays);
            apply(params, self.m.as_slice(), s);
        } else {
            scratch.resize(grad.len(), 0.0);
            let s = self.step(grad, gain, decays, scratch);
            apply(params, scratch, s);
        }
    }
}

impl OptState {
    /// Everything a bit-identical continuation of training needs of this state, as
    /// tensors `<prefix>.m`, `<prefix>.v` (Adam only) and `<prefix>.t` (the step count,
    /// exact up to 2²⁴ steps).
    pub fn state_tensors(&self, prefix: &str) -> Vec<crate::tensor::Tensor> {
        use crate::tensor::{from_mat, from_vec};
        let mut out = vec![
            from_mat(format!("{prefix}.m"), &self.m),
            from_vec(format!("{prefix}.t"), &[self.t as f32]),
        ];
        if !self.v.is_empty() {
            out.push(from_mat(format!("{prefix}.v"), &self.v));
        }
        out
    }

    /// Restores what [`OptState::state_tensors`] saved (shapes must match).
    pub fn restore_state(&mut self, tensors: &[crate::tensor::Tensor], prefix: &str) -> Result<()> {
        use crate::tensor::{find, to_mat};
        let (r, c) = self.m.shape();
        let m = to_mat(tensors, &format!("{prefix}.m"), r, c)?;
        let v = if self.v.is_empty() {
            None
        } else {
            let (r, c) = self.v.shape();
            Some(to_mat(tensors, &format!("{prefix}.v"), r, c)?)
        };
        let t = find(tensors, &format!("{prefix}.t"), &[1])?[0];
        self.m = m;
        if let Some(v) = v {
            self.v = v;
        }
        self.t = t as i32;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn schedule_matches_reference_recipe() {
        let s = Schedule::HalfThenLinear;
        assert_eq!(s.gain(1, 60), 1.0);
        assert_eq!(s.gain(30, 60), 1.0);
        assert_relative_eq!(s.gain(31, 60), 59.0 / 60.0);
        assert_relative_eq!(s.gain(60, 60), 1.0 / 60.0);
        assert_eq!(Schedule::Constant.gain(60, 60), 1.0);
    }

    #[test]
    fn sgd_equals_reference_smoothed_gradient_form() {
        // Reference: ḡ ← μḡ + (1−μ)g ; w += ε(−ḡ − wc·w) (descent form), ε = lr/(1−μ).
        let (lr, mu, wc) = (1e-3f32, 0.9f32, 1e-3f32);
        let eps = lr / (1.0 - mu);
        let cfg = OptimizerConfig::Sgd {
            lr,
            momentum: mu,
            weight_decay: wc,
        };
        let mut st = OptState::new(&cfg, 1, 1);
        let (mut w, mut w_ref, mut gbar) = (0.5f32, 0.5f32, 0.0f32);
        for k in 0..50 {
            let g = ((k as f32) * 0.7).sin() + w_ref * 0.1;
            gbar = mu * gbar + (1.0 - mu) * g;
            w_ref += eps * (-gbar - wc * w_ref);
            let g2 = ((k as f32) * 0.7).sin() + w * 0.1;
            let mut out = [0.0];
            let s = st.step(&[g2], 1.0, true, &mut out);
            w = (1.0 - s.decay) * w + s.scale * out[0];
        }
        assert_relative_eq!(w, w_ref, epsilon = 1e-6);
    }

    #[test]
    fn adam_first_step_is_lr_times_sign() {
        let cfg = OptimizerConfig::adam(0.01, 0.0);
        let mut st = OptState::new(&cfg, 2, 1);
        let mut out = [0.0; 2];
        let s = st.step(&[3.0, -0.5], 1.0, true, &mut out);
        assert_relative_eq!(s.scale * out[0], -0.01, epsilon = 1e-6);
        assert_relative_eq!(s.scale * out[1], 0.01, epsilon = 1e-6);
    }

    #[test]
    fn validation_names_the_key() {
        let e = OptimizerConfig::Sgd {
            lr: -1.0,
            momentum: 0.9,
            weight_decay: 0.0,
        }
        .validate("ff.optimizer")
        .unwrap_err()
        .to_string();
        assert!(e.contains("ff.optimizer.lr") && e.contains("-1"), "{e}");
    }
}
