//! The Forward-Forward training step.

use rayon::prelude::*;

use super::FfConfig;
use super::goodness::GoodnessLoss;
use super::head::{HeadStats, SoftmaxHead};
use super::labels::{write_neutral, write_one_hot};
use crate::data::negatives::{NegativeLabels, hard_wrong, random_wrong};
use crate::error::{Error, Result};
use crate::learn::optim::OptState;
use crate::linalg::{Mat, Op, axpby, column_sum_sq, copy_columns, gemm, normalize_rms, row_sums};
use crate::rng::Rng;
use crate::substrate::{Substrate, Topology, Update};

/// The learner's state: everything Forward-Forward keeps on the host. The weights
/// themselves live in the substrate.
#[derive(Clone, Debug)]
pub struct FfLearner {
    pub(crate) cfg: FfConfig,
    pub(crate) topology: Topology,
    pub(crate) losses: Vec<GoodnessLoss>,
    pub(crate) head: SoftmaxHead,
    /// Running mean activity of every unit (peer normalisation).
    pub(crate) peer: Vec<Vec<f32>>,
    opt_w: Vec<OptState>,
    opt_b: Vec<OptState>,
    buf: Buffers,
    pub(crate) eval_buf: super::eval::EvalBuffers,
    pub(super) kl_buf: super::layer_kl::KlBuffers,
}

/// Work buffers, reused across batches (allocated once per batch size).
#[derive(Clone, Debug, Default)]
struct Buffers {
    /// Labelled inputs `[positive | neutral]` (inputs × 2B).
    x: Mat,
    /// Normalised input of each layer for `[positive | neutral]`; entry L is the normalised
    /// output of the last layer.
    norm: Vec<Mat>,
    received: Vec<Mat>,
    activity: Vec<Mat>,
    /// Labelled negative inputs (inputs × B) and their per-layer counterparts.
    x_neg: Mat,
    norm_neg: Vec<Mat>,
    received_neg: Vec<Mat>,
    activity_neg: Vec<Mat>,
    /// `[received positive | received negative]` of each layer (inputs × 2B).
    r_cat: Vec<Mat>,
    /// `[∂L/∂a positive | ∂L/∂a negative]` of each layer (outputs × 2B).
    d_cat: Vec<Mat>,
    /// Adam only: gradient and step of each layer's weights and biases.
    grad: Vec<Mat>,
    step: Vec<Mat>,
    grad_b: Vec<Vec<f32>>,
    step_b: Vec<Vec<f32>>,
    logits: Mat,
    /// Goodness of the positive samples, per layer.
    goodness_pos: Vec<Vec<f32>>,
    bias_grad: Vec<f32>,
    goodness_neg: Vec<f32>,
    coeff: Vec<f32>,
    peer_term: Vec<f32>,
    neg_labels: Vec<usize>,
}

/// Labels and targets of a softly supervised batch (see [`FfLearner::train_batch_soft`]).
#[derive(Clone, Copy, Debug)]
pub struct SoftSupervision<'a> {
    /// Label written into each positive sample.
    pub positives: &'a [usize],
    /// Label written into each negative sample (never the positive one).
    pub negatives: &'a [usize],
    /// Target probabilities of the softmax head (10 × B, columns sum to 1).
    pub head_targets: &'a Mat,
    /// Temperature T of the head's KL (dimensionless, > 0).
    pub head_temperature: f32,
}

/// Who chooses negatives and the head's targets.
enum Teacher<'r, 's> {
    /// The learner itself: true labels, negatives from its own head (or uniform).
    Own(&'r mut Rng),
    /// A caller (distillation).
    Given(&'r SoftSupervision<'s>),
}

/// What one training batch measured.
#[derive(Clone, Debug, Default)]
pub struct FfBatchStats {
    /// Per layer: sum over the batch's positive and negative samples of the log-loss (nats).
    pub layer_loss_sum: Vec<f64>,
    /// Per layer: number of pairs where the negative looked more positive than the positive.
    pub pair_errors: Vec<usize>,
    /// Softmax head cross-entropy and errors on the neutral pass.
    pub head: HeadStats,
    /// Number of positive samples (= negatives).
    pub samples: usize,
    /// Loss terms per layer in `layer_loss_sum` (2·samples for positive + negative
    /// passes; samples for the per-layer distillation loss).
    pub scored: usize,
}

impl FfBatchStats {
    /// Adds another batch's counts.
    pub fn accumulate(&mut self, other: &FfBatchStats) {
        if self.layer_loss_sum.is_empty() {
            self.layer_loss_sum = vec![0.0; other.layer_loss_sum.len()];
            self.pair_errors = vec![0; other.pair_errors.len()];
        }
        for (a, b) in self.layer_loss_sum.iter_mut().zip(&other.layer_loss_sum) {
            *a += b;
        }
        for (a, b) in self.pair_errors.iter_mut().zip(&other.pair_errors) {
            *a += b;
        }
        self.head.loss_sum += other.head.loss_sum;
        self.head.errors += other.head.errors;
        self.samples += other.samples;
        self.scored += other.scored;
    }

    /// Mean loss per scored term per layer (FF: log-loss, positives and negatives count
    /// equally; per-layer distillation: KL), nats.
    pub fn mean_layer_loss(&self) -> f64 {
        let n = (self.scored * self.layer_loss_sum.len()).max(1) as f64;
        self.layer_loss_sum.iter().sum::<f64>() / n
    }
}

/// Writes `dst_j = c_j·y_j − term` for each column j (term per unit, may be empty).
pub(super) fn local_errors(y: &[f32], rows: usize, coeff: &[f32], term: &[f32], dst: &mut [f32]) {
    dst.par_chunks_mut(rows * 8)
        .zip(y.par_chunks(rows * 8))
        .enumerate()
        .for_each(|(chunk, (d, y))| {
            for (k, (dc, yc)) in d.chunks_mut(rows).zip(y.chunks(rows)).enumerate() {
                let c = coeff[chunk * 8 + k];
                if term.is_empty() {
                    for (o, v) in dc.iter_mut().zip(yc) {
                        *o = c * v;
                    }
                } else {
                    for ((o, v), t) in dc.iter_mut().zip(yc).zip(term) {
                        *o = c * v - t;
                    }
                }
            }
        });
}

/// Peer normalisation: updates the running mean activity of each unit (`means`) with the
/// columns of `act` (rows × n) and writes each unit's error term into `term` (empty when
/// peer normalisation is off).
pub(super) fn peer_term(
    cfg: &super::FfConfig,
    means: &mut [f32],
    act: &[f32],
    rows: usize,
    term: &mut Vec<f32>,
) {
    term.clear();
    if cfg.peer_norm <= 0.0 {
        return;
    }
    let n = act.len() / rows;
    let decay = cfg.peer_decay;
    let mut batch_mean = vec![0.0f32; rows];
    for col in act.chunks(rows) {
        for (m, v) in batch_mean.iter_mut().zip(col) {
            *m += v;
        }
    }
    for (m, bm) in means.iter_mut().zip(&batch_mean) {
        *m = decay * *m + (1.0 - decay) * bm / n as f32;
    }
    let layer_mean = means.iter().sum::<f32>() / rows as f32;
    // Ascent direction in the reference code is +λ(mean − mᵢ); as a descent error it
    // enters with the opposite sign.
    term.extend(means.iter().map(|m| cfg.peer_norm * (layer_mean - m)));
}

pub(super) fn check_finite(goodness: &[f32], layer: usize, what: &str) -> Result<()> {
    match goodness.iter().find(|g| !g.is_finite()) {
        None => Ok(()),
        Some(g) => Err(Error::Diverged(format!(
            "layer {} goodness of a {what} sample is {g}; lower the learning rate",
            layer + 1
        ))),
    }
}

impl FfLearner {
    /// A learner for `topology` (all hidden layers; the head is separate).
    pub fn new(cfg: FfConfig, topology: Topology) -> Result<Self> {
        let layers = topology.layers();
        cfg.validate(layers)?;
        let losses = (0..layers)
            .map(|l| cfg.loss_for(topology.dims(l).1))
            .collect();
        let head_widths: Vec<usize> = (cfg.eval_from - 1..layers)
            .map(|l| topology.dims(l).1)
            .collect();
        let head = SoftmaxHead::new(&head_widths, &cfg.head_optimizer);
        let peer = (0..layers).map(|l| vec![0.5; topology.dims(l).1]).collect();
        let opt_w = (0..layers)
            .map(|l| {
                let (i, o) = topology.dims(l);
                OptState::new(&cfg.optimizer, o, i)
            })
            .collect();
        let opt_b = (0..layers)
            .map(|l| OptState::new(&cfg.optimizer, topology.dims(l).1, 1))
            .collect();
        Ok(Self {
            cfg,
            topology,
            losses,
            head,
            peer,
            opt_w,
            opt_b,
            buf: Buffers::default(),
            eval_buf: Default::default(),
            kl_buf: Default::default(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &FfConfig {
        &self.cfg
    }

    /// The network shape.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    fn shape_buffers(&mut self, b: usize) {
        let widths = self.topology.widths().to_vec();
        let layers = widths.len() - 1;
        let buf = &mut self.buf;
        if buf.x.shape() == (widths[0], 2 * b) && buf.norm.len() == layers + 1 {
            return;
        }
        let sgd = self.opt_w.first().is_some_and(|o| o.is_sgd());
        buf.x = Mat::zeros(widths[0], 2 * b);
        buf.x_neg = Mat::zeros(widths[0], b);
        buf.norm = widths.iter().map(|w| Mat::zeros(*w, 2 * b)).collect();
        buf.norm_neg = widths.iter().map(|w| Mat::zeros(*w, b)).collect();
        buf.received = (0..layers).map(|l| Mat::zeros(widths[l], 2 * b)).collect();
        buf.activity = (0..layers)
            .map(|l| Mat::zeros(widths[l + 1], 2 * b))
            .collect();
        buf.received_neg = (0..layers).map(|l| Mat::zeros(widths[l], b)).collect();
        buf.activity_neg = (0..layers).map(|l| Mat::zeros(widths[l + 1], b)).collect();
        buf.r_cat = (0..layers).map(|l| Mat::zeros(widths[l], 2 * b)).collect();
        buf.d_cat = (0..layers)
            .map(|l| Mat::zeros(widths[l + 1], 2 * b))
            .collect();
        if !sgd {
            buf.grad = (0..layers)
                .map(|l| Mat::zeros(widths[l + 1], widths[l]))
                .collect();
            buf.step = (0..layers)
                .map(|l| Mat::zeros(widths[l + 1], widths[l]))
                .collect();
            buf.grad_b = (0..layers).map(|l| vec![0.0; widths[l + 1]]).collect();
            buf.step_b = (0..layers).map(|l| vec![0.0; widths[l + 1]]).collect();
        }
        buf.goodness_pos = vec![vec![0.0; b]; layers];
        buf.bias_grad = vec![0.0; widths.iter().copied().max().unwrap_or(0)];
        buf.goodness_neg = vec![0.0; b];
        buf.coeff = vec![0.0; b];
        buf.neg_labels = vec![0; b];
    }

    /// One training step on a batch: positive pass (true labels) stacked with a
    /// neutral-label pass, softmax head step, negative labels, negative pass, then one
    /// update request per layer.
    ///
    /// `images` holds the raw images (inputs × B, label pixels are overwritten);
    /// `gain` is the schedule's learning-rate multiplier; `negatives` draws negative labels;
    /// `noise` feeds the substrate's per-call randomness.
    pub fn train_batch(
        &mut self,
        sub: &mut dyn Substrate,
        images: &Mat,
        labels: &[usize],
        gain: f32,
        negatives: &mut Rng,
        noise: &mut Rng,
    ) -> Result<FfBatchStats> {
        self.train_batch_with(sub, images, labels, Teacher::Own(negatives), gain, noise)
    }

    /// One training step under soft supervision (distillation from a teacher): the
    /// positive pass uses `sup.positives`, the negative pass `sup.negatives` (both chosen
    /// by the caller, e.g. drawn from a teacher's probabilities), and the softmax head is
    /// fitted to `sup.head_targets` at `sup.head_temperature` (T²-scaled KL). Everything
    /// else is the ordinary step: each layer still learns only from its own goodness.
    /// `stats.head.errors` counts disagreements with the targets' argmax.
    pub fn train_batch_soft(
        &mut self,
        sub: &mut dyn Substrate,
        images: &Mat,
        sup: &SoftSupervision<'_>,
        gain: f32,
        noise: &mut Rng,
    ) -> Result<FfBatchStats> {
        let b = sup.positives.len();
        assert_eq!(
            sup.negatives.len(),
            b,
            "train_batch_soft: one negative per image"
        );
        assert_eq!(
            sup.head_targets.shape(),
            (crate::data::CLASSES, b),
            "train_batch_soft: 10 × B head targets"
        );
        assert!(
            sup.positives
                .iter()
                .zip(sup.negatives)
                .all(|(p, n)| p != n && *n < crate::data::CLASSES),
            "train_batch_soft: negatives must differ from positives"
        );
        self.train_batch_with(sub, images, sup.positives, Teacher::Given(sup), gain, noise)
    }

    fn train_batch_with(
        &mut self,
        sub: &mut dyn Substrate,
        images: &Mat,
        labels: &[usize],
        teacher: Teacher<'_, '_>,
        gain: f32,
        noise: &mut Rng,
    ) -> Result<FfBatchStats> {
        let b = labels.len();
        assert_eq!(images.ncols(), b, "train_batch: one label per image");
        assert_eq!(
            sub.topology(),
            &self.topology,
            "train_batch: substrate topology"
        );
        self.shape_buffers(b);
        let layers = self.topology.layers();
        let strength = self.cfg.label_strength;
        let mut stats = FfBatchStats {
            layer_loss_sum: vec![0.0; layers],
            pair_errors: vec![0; layers],
            head: HeadStats::default(),
            samples: b,
            scored: 2 * b,
        };

        // Positive and neutral passes, stacked into one batch of 2B.
        let buf = &mut self.buf;
        copy_columns(images, 0, &mut buf.x, 0, b);
        copy_columns(images, 0, &mut buf.x, b, b);
        write_one_hot(&mut buf.x, 0, labels, strength);
        write_neutral(&mut buf.x, b, b, self.cfg.neutral_label * strength);
        normalize_rms(&buf.x, &mut buf.norm[0]);
        for l in 0..layers {
            let (head_norm, tail_norm) = buf.norm.split_at_mut(l + 1);
            sub.forward(
                l,
                &head_norm[l],
                &mut buf.received[l],
                &mut buf.activity[l],
                noise,
            );
            let act = &buf.activity[l];
            let rows = act.nrows();
            column_sum_sq(&act.as_slice()[..rows * b], rows, &mut buf.goodness_pos[l]);
            check_finite(&buf.goodness_pos[l], l, "positive")?;
            for (j, g) in buf.goodness_pos[l].iter().enumerate() {
                let s = self.losses[l].sample(*g, true);
                stats.layer_loss_sum[l] += f64::from(s.log_loss);
                buf.coeff[j] = s.coeff;
            }
            peer_term(
                &self.cfg,
                &mut self.peer[l],
                &act.as_slice()[..rows * b],
                rows,
                &mut buf.peer_term,
            );
            local_errors(
                &act.as_slice()[..rows * b],
                rows,
                &buf.coeff,
                &buf.peer_term,
                &mut buf.d_cat[l].as_mut_slice()[..rows * b],
            );
            copy_columns(&buf.received[l], 0, &mut buf.r_cat[l], 0, b);
            normalize_rms(act, &mut tail_norm[0]);
        }

        // Softmax head on the neutral pass; its pre-update logits choose hard negatives.
        let first = self.cfg.eval_from - 1;
        let features: Vec<_> = (first..layers)
            .map(|l| buf.norm[l + 1].columns(b, b))
            .collect();
        self.head.logits(&features, &mut buf.logits);
        match teacher {
            Teacher::Own(negatives) => {
                stats.head = self.head.train_step(&features, &buf.logits, labels, gain);
                for (j, &truth) in labels.iter().enumerate() {
                    buf.neg_labels[j] = match self.cfg.negatives {
                        NegativeLabels::Random => random_wrong(truth, negatives),
                        NegativeLabels::Hard => {
                            hard_wrong(buf.logits.column(j).as_slice(), truth, negatives)
                        }
                    };
                }
            }
            Teacher::Given(sup) => {
                stats.head = self.head.train_step_soft(
                    &features,
                    &buf.logits,
                    sup.head_targets,
                    sup.head_temperature,
                    gain,
                );
                buf.neg_labels.copy_from_slice(sup.negatives);
            }
        }

        // Negative pass.
        buf.x_neg.copy_from(images);
        write_one_hot(&mut buf.x_neg, 0, &buf.neg_labels, strength);
        normalize_rms(&buf.x_neg, &mut buf.norm_neg[0]);
        for l in 0..layers {
            let (head_norm, tail_norm) = buf.norm_neg.split_at_mut(l + 1);
            sub.forward(
                l,
                &head_norm[l],
                &mut buf.received_neg[l],
                &mut buf.activity_neg[l],
                noise,
            );
            let act = &buf.activity_neg[l];
            let rows = act.nrows();
            column_sum_sq(act.as_slice(), rows, &mut buf.goodness_neg);
            check_finite(&buf.goodness_neg, l, "negative")?;
            for j in 0..b {
                let s = self.losses[l].sample(buf.goodness_neg[j], false);
                stats.layer_loss_sum[l] += f64::from(s.log_loss);
                buf.coeff[j] = s.coeff;
                let zp = self.losses[l].logit(buf.goodness_pos[l][j]);
                if self.losses[l].logit(buf.goodness_neg[j]) > zp {
                    stats.pair_errors[l] += 1;
                }
            }
            local_errors(
                act.as_slice(),
                rows,
                &buf.coeff,
                &[],
                &mut buf.d_cat[l].as_mut_slice()[rows * b..],
            );
            copy_columns(&buf.received_neg[l], 0, &mut buf.r_cat[l], b, b);
            if l + 1 < layers {
                normalize_rms(act, &mut tail_norm[0]);
            }
        }

        // One update request per layer: mean over the 2B samples of d·rᵀ.
        let d_cat = std::mem::take(&mut buf.d_cat);
        let r_cat = std::mem::take(&mut buf.r_cat);
        for l in 0..layers {
            self.request_update(sub, l, &d_cat[l], &r_cat[l], b, gain, noise);
        }
        self.buf.d_cat = d_cat;
        self.buf.r_cat = r_cat;
        Ok(stats)
    }

    /// Asks the substrate to update layer `l` by the optimiser's step for the gradient
    /// `(1/b)·d·rᵀ` (d: outputs × n local errors, r: inputs × n what the layer received;
    /// `b` samples, n ≥ b columns).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn request_update(
        &mut self,
        sub: &mut dyn Substrate,
        l: usize,
        d: &Mat,
        r: &Mat,
        b: usize,
        gain: f32,
        noise: &mut Rng,
    ) {
        let inv_b = 1.0 / b as f32;
        let buf = &mut self.buf;
        let (ow, ob) = (&mut self.opt_w[l], &mut self.opt_b[l]);
        if ow.is_sgd() && ow.momentum() == 0.0 {
            // Plain SGD is exactly the outer-product form: a chip may apply it as
            // rank-1 pulse trains without the host forming d·rᵀ.
            let sw = ow.sgd_step_from_velocity(gain, true);
            sub.update(
                l,
                Update::Outer {
                    x: r,
                    d,
                    scale: sw.scale * inv_b,
                    decay: sw.decay,
                },
                noise,
            );
        } else if ow.is_sgd() {
            let mu = ow.momentum();
            gemm(inv_b, d, Op::N, r, Op::T, mu, ow.velocity_mut());
            if buf.bias_grad.len() < d.nrows() {
                buf.bias_grad.resize(d.nrows(), 0.0);
            }
            let gb = &mut buf.bias_grad[..d.nrows()];
            row_sums(d, gb);
            axpby(ob.velocity_mut().as_mut_slice(), mu, inv_b, gb);
            let sw = ow.sgd_step_from_velocity(gain, true);
            let sb = ob.sgd_step_from_velocity(gain, false);
            debug_assert_eq!(sw.scale, sb.scale);
            sub.update(
                l,
                Update::Dense {
                    dw: ow.velocity(),
                    db: ob.velocity().as_slice(),
                    scale: sw.scale,
                    decay: sw.decay,
                },
                noise,
            );
        } else {
            let (o, i) = (d.nrows(), r.nrows());
            if buf.grad.len() <= l || buf.grad[l].shape() != (o, i) {
                buf.grad.resize_with(l + 1, Mat::default);
                buf.step.resize_with(l + 1, Mat::default);
                buf.grad_b.resize_with(l + 1, Vec::new);
                buf.step_b.resize_with(l + 1, Vec::new);
                buf.grad[l] = Mat::zeros(o, i);
                buf.step[l] = Mat::zeros(o, i);
                buf.grad_b[l] = vec![0.0; o];
                buf.step_b[l] = vec![0.0; o];
            }
            gemm(inv_b, d, Op::N, r, Op::T, 0.0, &mut buf.grad[l]);
            row_sums(d, &mut buf.grad_b[l]);
            buf.grad_b[l].iter_mut().for_each(|g| *g *= inv_b);
            let sw = ow.step(
                buf.grad[l].as_slice(),
                gain,
                true,
                buf.step[l].as_mut_slice(),
            );
            let sb = ob.step(&buf.grad_b[l], gain, false, &mut buf.step_b[l]);
            debug_assert_eq!(sw.scale, sb.scale);
            sub.update(
                l,
                Update::Dense {
                    dw: &buf.step[l],
                    db: &buf.step_b[l],
                    scale: sw.scale,
                    decay: sw.decay,
                },
                noise,
            );
        }
    }
}

impl FfLearner {
    /// The host-side state worth saving: softmax head and peer-normalisation means.
    pub fn tensors(&self) -> Vec<crate::tensor::Tensor> {
        use crate::tensor::{from_mat, from_vec};
        let mut out = Vec::new();
        for (i, w) in self.head.weights.iter().enumerate() {
            out.push(from_mat(format!("head{i}.weight"), w));
        }
        out.push(from_vec("head.bias", &self.head.bias));
        for (l, m) in self.peer.iter().enumerate() {
            out.push(from_vec(format!("peer{l}"), m));
        }
        out
    }

    /// Restores what [`FfLearner::tensors`] saved.
    pub fn restore(&mut self, tensors: &[crate::tensor::Tensor]) -> Result<()> {
        use crate::tensor::{find, to_mat};
        for (i, w) in self.head.weights.iter_mut().enumerate() {
            let (r, c) = w.shape();
            *w = to_mat(tensors, &format!("head{i}.weight"), r, c)?;
        }
        let n = self.head.bias.len();
        self.head
            .bias
            .copy_from_slice(find(tensors, "head.bias", &[n])?);
        for (l, m) in self.peer.iter_mut().enumerate() {
            let n = m.len();
            m.copy_from_slice(find(tensors, &format!("peer{l}"), &[n])?);
        }
        Ok(())
    }
}
