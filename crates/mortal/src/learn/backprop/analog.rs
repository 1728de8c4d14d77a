//! Analog SGD (aihwkit's in-situ training with an `AnalogSGD` optimiser): every pass of
//! backprop runs on the chip's crossbars.
//!
//! * **forward** on the chip ([`Substrate::forward`]), loss on the measured logits;
//! * **backward** as transposed reads of the same crossbars ([`Substrate::transpose_read`]:
//!   errors through the DAC, the array driven from its columns, read noise and ADC), no
//!   digital copy of the weights anywhere;
//! * **update** as rank-1 outer products `δ·receivedᵀ` ([`Update::Outer`]), plain SGD
//!   (no momentum: the chip pulses each batch's change and keeps no velocity), realised
//!   by the chip's pulsed-update physics.
//!
//! Backprop still needs two things the chip does not give it, and this learner assumes
//! them: the **activation derivative** (the nominal derivative at the measured output,
//! e.g. y(1 − y) for a sigmoid, whatever the neuron's actual curve) and a way **through
//! the black box** between layers (it has none: the black box is treated as the
//! identity). It runs, badly, on chips where these assumptions are wrong.

use crate::error::{Error, Result};
use crate::learn::optim::{OptState, OptimizerConfig};
use crate::linalg::Mat;
use crate::rng::Rng;
use crate::substrate::{Substrate, Topology, Update};

use super::{BpBatchStats, BpConfig, Trace, onchip};

/// Checks that `cfg` asks for what analog SGD can do: SGD without momentum.
pub fn check_config(cfg: &BpConfig) -> Result<()> {
    cfg.validate()?;
    match cfg.optimizer {
        OptimizerConfig::Sgd { momentum: 0.0, .. } => Ok(()),
        OptimizerConfig::Sgd { momentum, .. } => Err(Error::param(
            "bp.optimizer.momentum",
            momentum,
            "bp-analog applies plain SGD as rank-1 pulse trains on the chip, which keeps no \
             velocity: pass --momentum 0",
        )),
        OptimizerConfig::Adam { .. } => Err(Error::param(
            "bp.optimizer",
            "adam",
            "bp-analog applies plain SGD as rank-1 pulse trains on the chip: use --optimizer \
             sgd --momentum 0",
        )),
    }
}

/// The analog-SGD learner: only buffers and the step rule; the weights live on the chip.
#[derive(Clone, Debug)]
pub struct AnalogLearner {
    cfg: BpConfig,
    topology: Topology,
    /// SGD step rule (scale and decay; no state is kept).
    sgd: OptState,
    trace: Trace,
    delta: Vec<Mat>,
    dlogits: Mat,
}

impl AnalogLearner {
    /// A learner for a classifier `topology` (it must match the chip's).
    pub fn new(cfg: BpConfig, topology: Topology) -> Result<Self> {
        check_config(&cfg)?;
        onchip::check_classifier(&topology)?;
        let sgd = OptState::new(&cfg.optimizer, 0, 0);
        Ok(Self {
            cfg,
            topology,
            sgd,
            trace: Trace::default(),
            delta: Vec::new(),
            dlogits: Mat::zeros(0, 0),
        })
    }

    /// The settings.
    pub fn config(&self) -> &BpConfig {
        &self.cfg
    }

    /// One analog-SGD step on a batch (images: 784 × B in [0, 1]).
    pub fn train_batch(
        &mut self,
        sub: &mut dyn Substrate,
        images: &Mat,
        labels: &[usize],
        gain: f32,
        noise: &mut Rng,
    ) -> Result<BpBatchStats> {
        let (loss_sum, errors) = onchip::forward_and_transposed_backward(
            "analog backprop",
            &self.topology,
            sub,
            images,
            labels,
            &mut self.trace,
            &mut self.dlogits,
            &mut self.delta,
            noise,
        )?;
        let step = self.sgd.sgd_step_from_velocity(gain, true);
        for l in 0..self.topology.layers() {
            sub.update(
                l,
                Update::Outer {
                    x: &self.trace.inputs[l],
                    d: &self.delta[l],
                    scale: step.scale,
                    decay: step.decay,
                },
                noise,
            );
        }
        Ok(BpBatchStats {
            loss_sum,
            errors,
            samples: labels.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::backprop::classifier_topology;
    use crate::learn::backprop::pat::tests::{assert_close, batch, diff};
    use crate::learn::{BpLearner, OptimizerConfig};
    use crate::rng::stream;
    use crate::substrate::device::presets;
    use crate::substrate::{Activation, Chip};

    fn sgd(hidden: Activation) -> BpConfig {
        BpConfig {
            hidden,
            optimizer: OptimizerConfig::Sgd {
                lr: 0.1,
                momentum: 0.0,
                weight_decay: 1e-3,
            },
            ..BpConfig::default()
        }
    }

    /// On the ideal chip the change analog SGD realises (transposed reads for the
    /// backward pass, rank-1 updates) is the digital backprop step.
    #[test]
    fn one_step_on_the_ideal_chip_is_the_digital_backprop_step() {
        for hidden in [Activation::Relu, Activation::Sigmoid] {
            let mut bp = BpLearner::new(sgd(hidden), &[20, 12], 5).unwrap();
            let topo = bp.mlp.topology().clone();
            let mut chip = Chip::new(&presets::ideal(), topo.clone(), 1, 5).unwrap();
            let mut an = AnalogLearner::new(sgd(hidden), topo.clone()).unwrap();
            let (x, y) = batch(16, 1);
            let mut noise = stream(2, "noise");
            for step in 0..2 {
                let before_bp = bp.mlp.clone();
                let before: Vec<_> = (0..topo.layers())
                    .map(|l| chip.effective_layer(l))
                    .collect();
                let a = bp.train_batch(&x, &y, 1.0).unwrap();
                let b = an.train_batch(&mut chip, &x, &y, 1.0, &mut noise).unwrap();
                assert!((a.loss_sum - b.loss_sum).abs() < 1e-4 * a.loss_sum);
                for (l, before_l) in before.iter().enumerate() {
                    let what = format!("{hidden:?} step {step} layer {l}");
                    let (cw, cb) = chip.effective_layer(l);
                    assert_close(
                        &diff(cw.as_slice(), before_l.0.as_slice()),
                        &diff(
                            bp.mlp.params[l].0.as_slice(),
                            before_bp.params[l].0.as_slice(),
                        ),
                        &format!("{what}: ΔW"),
                    );
                    assert_close(
                        &diff(&cb, &before_l.1),
                        &diff(&bp.mlp.params[l].1, &before_bp.params[l].1),
                        &format!("{what}: Δb"),
                    );
                }
            }
        }
    }

    #[test]
    fn refuses_momentum_and_adam_and_runs_on_a_harsh_chip() {
        assert!(check_config(&BpConfig::default()).is_err());
        let adam = BpConfig {
            optimizer: OptimizerConfig::adam(1e-3, 0.0),
            ..BpConfig::default()
        };
        assert!(check_config(&adam).is_err());
        let topo = classifier_topology(&[16], Activation::Sigmoid).unwrap();
        let mut chip = Chip::new(&presets::harsh(), topo.clone(), 3, 5).unwrap();
        let mut an = AnalogLearner::new(sgd(Activation::Sigmoid), topo).unwrap();
        let (x, y) = batch(32, 4);
        let mut noise = stream(3, "noise");
        for _ in 0..5 {
            assert!(
                an.train_batch(&mut chip, &x, &y, 1.0, &mut noise)
                    .unwrap()
                    .loss_sum
                    .is_finite()
            );
        }
    }
}
