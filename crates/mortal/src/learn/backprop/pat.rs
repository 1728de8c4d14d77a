//! Physics-aware training (PAT; Wright et al., "Deep physical neural networks trained
//! with backpropagation", Nature 601, 549 (2022)): the forward pass runs on the physical
//! system, the backward pass through a digital model of it.
//!
//! Here the physical system is the substrate and the digital model is the chip's
//! *nominal* twin held by the host:
//!
//! * **forward on the chip**: every layer is driven through [`Substrate::forward`]; the
//!   loss is taken on the logits the chip measured, and the backward pass uses what the
//!   chip's input lines received and the activities it measured;
//! * **backward through the twin**: errors go down through the host's nominal weights
//!   `W_host` (`W_hostᵀ·δ`), the nominal activation derivative evaluated at the *measured*
//!   activity, and the identity where the black box is (the twin has none);
//! * **update**: the host's optimiser turns `δ·receivedᵀ` into a change ΔW, requests it
//!   from the chip ([`Update::Dense`], which the chip realises through its own update
//!   physics, only approximately) and applies the same ΔW to `W_host`. The twin is never
//!   recalibrated against the chip, so on a real chip it drifts away from the
//!   conductances; it starts from the same initial weights the chip was programmed with.
//!
//! Assumptions, wrong to the degree the chip departs from its nominal model: the chip's
//! weights are what the host thinks they are (device-to-device update spread, asymmetry,
//! bounds and stuck devices make them differ), its neurons follow the nominal curve at the
//! measured output, and its black box is the identity.

use crate::error::Result;
use crate::learn::optim::OptState;
use crate::linalg::{Mat, ensure_shape};
use crate::rng::Rng;
use crate::substrate::{Substrate, Update};

use super::{BpBatchStats, BpConfig, LayerGrad, Mlp, Trace, onchip};

/// The physics-aware learner: the host's nominal twin, its optimiser state and buffers.
/// The trained weights live on the chip.
#[derive(Clone, Debug)]
pub struct PatLearner {
    cfg: BpConfig,
    /// The host's nominal model of the chip's weights (updated with the ΔW it requests).
    pub host: Mlp,
    opt_w: Vec<OptState>,
    opt_b: Vec<OptState>,
    trace: Trace,
    grads: Vec<LayerGrad>,
    delta: Vec<Mat>,
    dlogits: Mat,
    step_w: Mat,
    step_b: Vec<f32>,
}

impl PatLearner {
    /// A learner whose twin starts at `host` (the weights the chip was initially
    /// programmed with).
    pub fn new(cfg: BpConfig, host: Mlp) -> Result<Self> {
        cfg.validate()?;
        onchip::check_classifier(host.topology())?;
        let topo = host.topology().clone();
        let opt_w = (0..topo.layers())
            .map(|l| {
                let (i, o) = topo.dims(l);
                OptState::new(&cfg.optimizer, o, i)
            })
            .collect();
        let opt_b = (0..topo.layers())
            .map(|l| OptState::new(&cfg.optimizer, topo.dims(l).1, 1))
            .collect();
        Ok(Self {
            cfg,
            host,
            opt_w,
            opt_b,
            trace: Trace::default(),
            grads: Vec::new(),
            delta: Vec::new(),
            dlogits: Mat::zeros(0, 0),
            step_w: Mat::zeros(0, 0),
            step_b: Vec::new(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &BpConfig {
        &self.cfg
    }

    /// One PAT step on a batch (images: 784 × B in [0, 1]).
    pub fn train_batch(
        &mut self,
        sub: &mut dyn Substrate,
        images: &Mat,
        labels: &[usize],
        gain: f32,
        noise: &mut Rng,
    ) -> Result<BpBatchStats> {
        let (loss_sum, errors) = onchip::forward_loss(
            "physics-aware backprop",
            self.host.topology(),
            sub,
            images,
            labels,
            &mut self.trace,
            &mut self.dlogits,
            noise,
        )?;
        // Backward through the twin, at the chip's measured activities.
        self.host
            .backward(&self.trace, &self.dlogits, &mut self.grads, &mut self.delta);
        // Host work: the twin's backward pass and the optimiser (twin and chip request).
        super::count_model_backward(sub.ledger_mut(), self.host.topology(), labels.len());
        let adam = !self.opt_w.first().is_some_and(OptState::is_sgd);
        let params = self.host.topology().weight_count()
            + (0..self.host.topology().layers())
                .map(|l| self.host.topology().dims(l).1)
                .sum::<usize>();
        crate::learn::host::optimiser(sub.ledger_mut(), params, adam);
        for (l, g) in self.grads.iter().enumerate() {
            ensure_shape(&mut self.step_w, g.w.nrows(), g.w.ncols());
            self.step_b.resize(g.b.len(), 0.0);
            let sw = self.opt_w[l].step(g.w.as_slice(), gain, true, self.step_w.as_mut_slice());
            let sb = self.opt_b[l].step(&g.b, gain, false, &mut self.step_b);
            // The bias has no decay; a chip update takes one decay for the weights, so
            // biases get the same scale (SGD and Adam both use −lr·gain for both).
            debug_assert_eq!(sw.scale, sb.scale);
            sub.update(
                l,
                Update::Dense {
                    dw: self.step_w.as_slice(),
                    db: &self.step_b,
                    scale: sw.scale,
                    decay: sw.decay,
                },
                noise,
            );
            let (w, b) = &mut self.host.params[l];
            crate::learn::optim::apply(w.as_mut_slice(), self.step_w.as_slice(), sw);
            crate::learn::optim::apply(b, &self.step_b, sb);
        }
        Ok(BpBatchStats {
            loss_sum,
            errors,
            samples: labels.len(),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use rand::RngExt;

    use super::*;
    use crate::data::{CLASSES, PIXELS};
    use crate::learn::{BpLearner, OptimizerConfig};
    use crate::rng::stream;
    use crate::substrate::device::presets;
    use crate::substrate::{Activation, Chip};

    pub(crate) fn batch(n: usize, seed: u64) -> (Mat, Vec<usize>) {
        let mut r = stream(seed, "batch");
        let x = Mat::from_fn(PIXELS, n, |_, _| r.random_range(0.0f32..1.0));
        (x, (0..n).map(|j| (j * 3 + 1) % CLASSES).collect())
    }

    /// Asserts `a ≈ b` to float tolerance: max |a − b| ≤ 1e-4·max |b|.
    pub(crate) fn assert_close(a: &[f32], b: &[f32], what: &str) {
        let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let diff = a
            .iter()
            .zip(b)
            .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(scale > 0.0, "{what}: nothing changed");
        assert!(
            diff <= 1e-4 * scale,
            "{what}: max diff {diff} vs scale {scale}"
        );
    }

    pub(crate) fn diff(after: &[f32], before: &[f32]) -> Vec<f32> {
        after.iter().zip(before).map(|(a, b)| a - b).collect()
    }

    /// One PAT step on the ideal chip requests, realises, and applies to the twin exactly
    /// the change one step of digital backprop makes (momentum and weight decay included).
    #[test]
    fn one_step_on_the_ideal_chip_is_the_digital_backprop_step() {
        for hidden in [Activation::Relu, Activation::Sigmoid] {
            let cfg = BpConfig {
                hidden,
                optimizer: OptimizerConfig::Sgd {
                    lr: 0.1,
                    momentum: 0.9,
                    weight_decay: 1e-3,
                },
                ..BpConfig::default()
            };
            let mut bp = BpLearner::new(cfg.clone(), &[20, 12], 5).unwrap();
            let topo = bp.mlp.topology().clone();
            let mut chip = Chip::new(&presets::ideal(), topo.clone(), 1, 5).unwrap();
            let mut pat = PatLearner::new(cfg, Mlp::new(topo.clone(), 5)).unwrap();
            let (x, y) = batch(16, 1);
            let mut noise = stream(2, "noise");
            // Two steps, so the second one carries momentum.
            for step in 0..2 {
                let before_bp = bp.mlp.clone();
                let before_host = pat.host.clone();
                let before_chip: Vec<_> = (0..topo.layers())
                    .map(|l| chip.effective_layer(l))
                    .collect();
                let a = bp.train_batch(&x, &y, 1.0).unwrap();
                let b = pat.train_batch(&mut chip, &x, &y, 1.0, &mut noise).unwrap();
                assert!((a.loss_sum - b.loss_sum).abs() < 1e-4 * a.loss_sum);
                for (l, before_chip_l) in before_chip.iter().enumerate() {
                    let what = format!("{hidden:?} step {step} layer {l}");
                    let want_w = diff(
                        bp.mlp.params[l].0.as_slice(),
                        before_bp.params[l].0.as_slice(),
                    );
                    let want_b = diff(&bp.mlp.params[l].1, &before_bp.params[l].1);
                    let (cw, cb) = chip.effective_layer(l);
                    let chip_w = diff(cw.as_slice(), before_chip_l.0.as_slice());
                    let chip_b = diff(&cb, &before_chip_l.1);
                    let host_w = diff(
                        pat.host.params[l].0.as_slice(),
                        before_host.params[l].0.as_slice(),
                    );
                    assert_close(&chip_w, &want_w, &format!("{what}: realised ΔW"));
                    assert_close(&chip_b, &want_b, &format!("{what}: realised Δb"));
                    assert_close(&host_w, &want_w, &format!("{what}: twin ΔW"));
                }
            }
        }
    }

    /// On a chip with a black box and non-nominal neurons PAT's twin is wrong, and its
    /// requested step departs from the chip's true gradient; it still runs.
    #[test]
    fn runs_where_the_twin_is_wrong() {
        let topo = crate::learn::backprop::classifier_topology(&[16], Activation::Relu).unwrap();
        let mut chip = Chip::new(&presets::harsh(), topo.clone(), 3, 5).unwrap();
        let mut pat = PatLearner::new(BpConfig::default(), Mlp::new(topo, 5)).unwrap();
        let (x, y) = batch(32, 4);
        let mut noise = stream(3, "noise");
        for _ in 0..5 {
            let st = pat.train_batch(&mut chip, &x, &y, 1.0, &mut noise).unwrap();
            assert!(st.loss_sum.is_finite());
        }
    }
}
