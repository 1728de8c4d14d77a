//! A per-layer local distillation loss: each layer matches its own per-label goodness
//! distribution to a teacher's probabilities.
//!
//! Each image runs as 11 stacked passes, `[neutral | label 0 | … | label 9]`, as goodness
//! evaluation does. At layer l, label k has the log-odds `z_k = s·(G_k − θ)/τ` (the
//! layer's FF logit at temperature τ) and the layer's distribution over labels is
//! `q = softmax(z)` (θ cancels). The loss is `L_l = (τ/2)·KL(p ‖ q)` with p the teacher's
//! probabilities, so `∂L_l/∂y_k = s·(q_k − p_k)·y_k`: the same `c·y` form as the FF loss,
//! with |c| ≤ 1, so learning rates carry over. Each layer's update uses only its own input
//! and activities: nothing crosses a layer, as in FF. Peer normalisation acts on the
//! neutral pass; the softmax head is fitted to the teacher's probabilities on the neutral
//! pass, as in [`FfLearner::train_batch_soft`].

use super::FfLearner;
use super::labels::write_label_blocks;
use super::learner::FfBatchStats;
use super::local::{check_finite, local_errors, peer_term};
use crate::data::CLASSES;
use crate::error::Result;
use crate::learn::distill::{argmax, softmax_t};
use crate::linalg::{Mat, column_sum_sq, normalize_rms};
use crate::rng::Rng;
use crate::substrate::Substrate;

/// Targets of a per-layer distillation step.
#[derive(Clone, Copy, Debug)]
pub struct LayerKlSupervision<'a> {
    /// The teacher's probabilities (10 × B, columns sum to 1): every layer's target, and
    /// the softmax head's.
    pub targets: &'a Mat,
    /// Temperature τ of each layer's per-label distribution (dimensionless, > 0).
    pub layer_temperature: f32,
    /// Temperature T of the head's KL (dimensionless, > 0).
    pub head_temperature: f32,
    /// The teacher's neutral-pass activities of the same views, one matrix per layer
    /// (units × B, the student's widths), and the weight β of matching them: each layer's
    /// neutral pass also descends `(β/2)·‖y − t‖²` per image (hints, as FitNets, Romero et
    /// al. 2015, arXiv 1412.6550, but layer-local: `∂/∂y = β·(y − t)` on active units, so
    /// nothing crosses a layer). `None`: no hints.
    pub hints: Option<(&'a [Mat], f32)>,
}

/// Adds the hint error `β·(y − t)` of active units (y > 0) to the neutral pass's local
/// errors `d` (all units × B, column-major); returns Σ ½‖y − t‖² over the batch.
fn add_hint(d: &mut [f32], y: &[f32], t: &[f32], beta: f32) -> f64 {
    let mut sq = 0.0f64;
    for ((o, y), t) in d.iter_mut().zip(y).zip(t) {
        let e = y - t;
        sq += f64::from(e * e);
        if *y > 0.0 {
            *o += beta * e;
        }
    }
    0.5 * sq
}

/// Work buffers of the step (allocated once per batch size).
#[derive(Clone, Debug, Default)]
pub(super) struct KlBuffers {
    x: Mat,
    norm: Vec<Mat>,
    received: Vec<Mat>,
    activity: Vec<Mat>,
    d: Vec<Mat>,
    goodness: Vec<f32>,
    coeff: Vec<f32>,
    term: Vec<f32>,
    logits: Mat,
}

impl KlBuffers {
    fn shape(&mut self, widths: &[usize], cols: usize) {
        if self.x.shape() == (widths[0], cols) && self.norm.len() == widths.len() {
            return;
        }
        let layers = widths.len() - 1;
        self.x = Mat::zeros(widths[0], cols);
        self.norm = widths.iter().map(|w| Mat::zeros(*w, cols)).collect();
        self.received = (0..layers).map(|l| Mat::zeros(widths[l], cols)).collect();
        self.activity = widths[1..].iter().map(|w| Mat::zeros(*w, cols)).collect();
        self.d = widths[1..].iter().map(|w| Mat::zeros(*w, cols)).collect();
        self.goodness = vec![0.0; cols];
        self.coeff = vec![0.0; cols];
    }
}

/// KL(p ‖ q) in nats (terms with p = 0 contribute 0).
fn kl(p: &[f32], q: &[f32]) -> f64 {
    p.iter()
        .zip(q)
        .filter(|(p, _)| **p > 0.0)
        .map(|(p, q)| {
            f64::from(*p) * (f64::from(*p).ln() - f64::from(q.max(f32::MIN_POSITIVE)).ln())
        })
        .sum()
}

/// The per-label coefficients of one layer: `goodness` and `coeff` hold B columns per
/// label, labels in order (`[label 0 | … | label 9]`); writes `coeff = s·(q − p)` and
/// returns (Σ KL(p ‖ q) over the B images in nats, images whose top-1 differs from p's).
fn coefficients(
    loss: &super::GoodnessLoss,
    goodness: &[f32],
    targets: &Mat,
    tau: f32,
    coeff: &mut [f32],
) -> (f64, usize) {
    let b = targets.ncols();
    let s = loss.sign.factor();
    let (mut kl_sum, mut errors) = (0.0, 0);
    let mut z = [0.0f32; CLASSES];
    for j in 0..b {
        for (k, zk) in z.iter_mut().enumerate() {
            *zk = s * (goodness[k * b + j] - loss.threshold);
        }
        let q = softmax_t(&z, tau);
        let p = targets.column(j);
        let p = p.as_slice();
        kl_sum += kl(p, &q);
        errors += usize::from(argmax(&q) != argmax(p));
        for k in 0..CLASSES {
            coeff[k * b + j] = s * (q[k] - p[k]);
        }
    }
    (kl_sum, errors)
}

impl FfLearner {
    /// One training step with the per-layer distillation loss (see the module
    /// documentation). `images` holds the raw images (inputs × B). In the returned
    /// statistics, `layer_loss_sum` holds KL(p ‖ q_l) sums (nats), `pair_errors` counts
    /// images whose layer top-1 differs from the teacher's, and `head.errors` counts the
    /// head's disagreements with the targets' argmax.
    pub fn train_batch_layer_kl(
        &mut self,
        sub: &mut dyn Substrate,
        images: &Mat,
        sup: &LayerKlSupervision<'_>,
        gain: f32,
        noise: &mut Rng,
    ) -> Result<FfBatchStats> {
        let b = images.ncols();
        assert_eq!(
            sup.targets.shape(),
            (CLASSES, b),
            "train_batch_layer_kl: 10 × B targets"
        );
        assert!(sup.layer_temperature > 0.0, "layer temperature must be > 0");
        let layers = self.topology.layers();
        let widths = self.topology.widths().to_vec();
        let strength = self.cfg.label_strength;
        let cols = (CLASSES + 1) * b;
        let mut kb = std::mem::take(&mut self.kl_buf);
        kb.shape(&widths, cols);
        let neutral = self.cfg.neutral_label * strength;
        write_label_blocks(images, &mut kb.x, CLASSES, neutral, strength);
        normalize_rms(&kb.x, &mut kb.norm[0]);
        let mut stats = FfBatchStats {
            layer_loss_sum: vec![0.0; layers],
            pair_errors: vec![0; layers],
            samples: b,
            scored: b,
            ..Default::default()
        };
        for l in 0..layers {
            let (head_norm, tail_norm) = kb.norm.split_at_mut(l + 1);
            sub.forward(
                l,
                &head_norm[l],
                &mut kb.received[l],
                &mut kb.activity[l],
                noise,
            );
            let act = &kb.activity[l];
            let rows = act.nrows();
            column_sum_sq(act.as_slice(), rows, &mut kb.goodness);
            check_finite(&kb.goodness, l, "labelled")?;
            let (kl_sum, errors) = coefficients(
                &self.losses[l],
                &kb.goodness[b..],
                sup.targets,
                sup.layer_temperature,
                &mut kb.coeff[b..],
            );
            stats.layer_loss_sum[l] += kl_sum;
            stats.pair_errors[l] += errors;
            peer_term(
                &self.cfg,
                &mut self.peer[l],
                &act.as_slice()[..rows * b],
                rows,
                &mut kb.term,
            );
            kb.coeff[..b].fill(0.0);
            let (neutral, labelled) = kb.d[l].as_mut_slice().split_at_mut(rows * b);
            local_errors(
                crate::learn::ff::GoodnessFn::SumSq,
                &act.as_slice()[..rows * b],
                rows,
                &kb.coeff[..b],
                &kb.term,
                neutral,
            );
            if let Some((hints, beta)) = sup.hints {
                assert_eq!(hints[l].shape(), (rows, b), "hints: units × B per layer");
                stats.hint_loss_sum += add_hint(
                    neutral,
                    &act.as_slice()[..rows * b],
                    hints[l].as_slice(),
                    beta,
                );
            }
            local_errors(
                crate::learn::ff::GoodnessFn::SumSq,
                &act.as_slice()[rows * b..],
                rows,
                &kb.coeff[b..],
                &[],
                labelled,
            );
            normalize_rms(act, &mut tail_norm[0]);
            self.request_update(sub, l, &kb.d[l], &kb.received[l], b, gain, noise);
        }
        let features: Vec<_> = (self.cfg.eval_from - 1..layers)
            .map(|l| kb.norm[l + 1].columns(0, b))
            .collect();
        self.head.logits(&features, &mut kb.logits);
        stats.head = self.head.train_step_soft(
            &features,
            &kb.logits,
            sup.targets,
            sup.head_temperature,
            gain,
        );
        drop(features);
        self.kl_buf = kb;
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::FfConfig;
    use crate::learn::ff::GoodnessLoss;
    use crate::substrate::{Activation, Topology};

    /// `coefficients` gives `∂L/∂y = c·y` for `L = (τ/2)·KL(p ‖ softmax(s·(G − θ)/τ))`,
    /// checked by finite differences on the activities, for both signs; and the KL it
    /// returns is the loss's.
    #[test]
    fn coefficients_are_the_gradient_of_the_layer_kl() {
        let tau = 1.7f32;
        let units = 3;
        let mut p = [0.02f32; CLASSES];
        p[4] = 0.5;
        p[7] = 0.34;
        // One image (B = 1): activities of the 10 label passes.
        let y: Vec<Vec<f64>> = (0..CLASSES)
            .map(|k| {
                (0..units)
                    .map(|i| 0.2 + 0.1 * ((k * 7 + i * 3) % 9) as f64)
                    .collect()
            })
            .collect();
        for sign in [
            crate::learn::ff::Sign::MaxSsq,
            crate::learn::ff::Sign::MinSsq,
        ] {
            let loss = GoodnessLoss {
                threshold: 3.0,
                temperature: 1.0,
                sign,
                function: crate::learn::ff::GoodnessFn::SumSq,
            };
            let s = f64::from(sign.factor());
            let value = |y: &[Vec<f64>]| -> f64 {
                let z: Vec<f64> = y
                    .iter()
                    .map(|v| s * (v.iter().map(|a| a * a).sum::<f64>() - 3.0) / f64::from(tau))
                    .collect();
                let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
                p.iter()
                    .zip(&z)
                    .map(|(p, z)| f64::from(*p) * (f64::from(*p).ln() - (z - lse)))
                    .sum::<f64>()
            };
            let goodness: Vec<f32> = y
                .iter()
                .map(|v| v.iter().map(|a| a * a).sum::<f64>() as f32)
                .collect();
            let targets = Mat::from_column_slice(CLASSES, 1, &p);
            let mut coeff = vec![0.0f32; CLASSES];
            let (kl_sum, _) = coefficients(&loss, &goodness, &targets, tau, &mut coeff);
            approx::assert_abs_diff_eq!(kl_sum, value(&y), epsilon = 1e-5);
            for k in 0..CLASSES {
                for i in 0..units {
                    let h = 1e-6;
                    let (mut up, mut down) = (y.clone(), y.clone());
                    up[k][i] += h;
                    down[k][i] -= h;
                    let fd = 0.5 * f64::from(tau) * (value(&up) - value(&down)) / (2.0 * h);
                    let analytic = f64::from(coeff[k]) * y[k][i];
                    approx::assert_abs_diff_eq!(fd, analytic, epsilon = 1e-5);
                }
            }
        }
    }

    /// With the teacher's distribution concentrated on one label, a few steps on an ideal
    /// digital layer raise that label's share of the layer's distribution, and every
    /// update stays finite.
    #[test]
    fn steps_move_each_layer_towards_the_teacher() {
        let topo = Topology::uniform(vec![crate::data::PIXELS, 32, 32], Activation::Relu).unwrap();
        let mut learner = FfLearner::new(FfConfig::default(), topo.clone()).unwrap();
        let mut net = crate::substrate::DigitalNet::new(topo, 7);
        let mut rng = crate::rng::stream(3, "t");
        let b = 8;
        let images = Mat::from_fn(crate::data::PIXELS, b, |i, j| {
            ((i * 31 + j * 17) % 13) as f32 / 13.0
        });
        let mut targets = Mat::zeros(CLASSES, b);
        for j in 0..b {
            targets[(3, j)] = 0.91;
            for k in (0..CLASSES).filter(|k| *k != 3) {
                targets[(k, j)] = 0.01;
            }
        }
        let sup = LayerKlSupervision {
            targets: &targets,
            layer_temperature: 1.0,
            head_temperature: 2.0,
            hints: None,
        };
        let first = learner
            .train_batch_layer_kl(&mut net, &images, &sup, 1.0, &mut rng)
            .unwrap();
        let mut last = first.clone();
        for _ in 0..30 {
            last = learner
                .train_batch_layer_kl(&mut net, &images, &sup, 1.0, &mut rng)
                .unwrap();
        }
        for l in 0..2 {
            assert!(
                last.layer_loss_sum[l] < first.layer_loss_sum[l],
                "layer {l}: KL {} → {}",
                first.layer_loss_sum[l],
                last.layer_loss_sum[l]
            );
        }
        assert_eq!(last.scored, b);
    }

    /// `add_hint` adds β·(y − t) on active units only and returns ½‖y − t‖².
    #[test]
    fn hint_error_is_the_gradient_on_active_units() {
        let y = [0.5f32, 0.0, 2.0];
        let t = [0.25f32, 1.0, 1.0];
        let mut d = [1.0f32; 3];
        let loss = add_hint(&mut d, &y, &t, 2.0);
        approx::assert_abs_diff_eq!(loss, 0.5 * (0.0625 + 1.0 + 1.0), epsilon = 1e-9);
        assert_eq!(d, [1.0 + 2.0 * 0.25, 1.0, 1.0 + 2.0 * 1.0]);
    }

    /// Hints from another network of the same shape (its neutral-pass activities on the
    /// same images) pull the student's activities towards them: the hint loss falls over
    /// a few steps on an ideal digital network.
    #[test]
    fn hints_move_each_layer_towards_the_teachers_activities() {
        let topo = Topology::uniform(vec![crate::data::PIXELS, 32, 32], Activation::Relu).unwrap();
        let mut teacher = FfLearner::new(FfConfig::default(), topo.clone()).unwrap();
        let mut teacher_net = crate::substrate::DigitalNet::new(topo.clone(), 11);
        let mut learner = FfLearner::new(FfConfig::default(), topo.clone()).unwrap();
        let mut net = crate::substrate::DigitalNet::new(topo, 7);
        let mut rng = crate::rng::stream(3, "t");
        let b = 8;
        let images = Mat::from_fn(crate::data::PIXELS, b, |i, j| {
            ((i * 31 + j * 17) % 13) as f32 / 13.0
        });
        let hints = teacher.neutral_activities(
            &mut teacher_net,
            &images,
            &mut rng,
            &mut super::super::Scores::default(),
        );
        assert_eq!(hints.len(), 2);
        let targets = Mat::from_element(CLASSES, b, 0.1);
        let sup = LayerKlSupervision {
            targets: &targets,
            layer_temperature: 20.0,
            head_temperature: 2.0,
            hints: Some((&hints, 1.0)),
        };
        let first = learner
            .train_batch_layer_kl(&mut net, &images, &sup, 1.0, &mut rng)
            .unwrap();
        let mut last = first.clone();
        for _ in 0..30 {
            last = learner
                .train_batch_layer_kl(&mut net, &images, &sup, 1.0, &mut rng)
                .unwrap();
        }
        assert!(first.hint_loss_sum > 0.0);
        assert!(
            last.hint_loss_sum < 0.5 * first.hint_loss_sum,
            "hint loss {} → {}",
            first.hint_loss_sum,
            last.hint_loss_sum
        );
    }
}
