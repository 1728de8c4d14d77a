//! The Forward-Forward training step.

use super::goodness::GoodnessLoss;
use super::head::{HeadStats, SoftmaxHead};
use super::labels::{write_neutral, write_one_hot};
use super::local::{check_finite, local_errors, peer_term};
use super::{FfConfig, FfMode};
use crate::data::augment::hybrids;
use crate::data::negatives::{NegativeLabels, hard_wrong, random_wrong};
use crate::error::Result;
use crate::learn::host;
use crate::learn::optim::OptState;
use crate::linalg::{Mat, axpby, copy_columns, normalize_rms, row_sums};
use crate::rng::Rng;
use crate::substrate::{Geometry, Substrate, Topology, Update};

/// Which data an update learns from (sleep phases, §5 of the paper).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Positive and negative data (the default).
    Both,
    /// Positive data only ("wake").
    Positive,
    /// Negative data only ("sleep").
    Negative,
}

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
    pub(super) opt_w: Vec<OptState>,
    pub(super) opt_b: Vec<OptState>,
    buf: Buffers,
    pub(crate) eval_buf: super::eval::EvalBuffers,
    pub(super) kl_buf: super::layer_kl::KlBuffers,
    /// The input image's map (for hybrid negatives).
    geometry: Geometry,
    /// Updates so far (sleep-phase counter).
    pub(super) updates: u64,
    /// Negative labels of the last batch.
    last_negatives: Vec<usize>,
    /// Multiplier of the layers' learning rate (1 normally; 0: training steps update only
    /// the softmax head and peer-normalisation means, the layers keep their weights).
    layer_gain: f32,
    /// Analog-native FF with analog momentum: the fast arrays.
    pub(super) fast: Option<super::fast::FastArrays>,
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
    /// Gathered inputs of a sparse projection's tile (for its gradient).
    gather: Mat,
}

/// Labels and targets of a softly supervised batch (see [`FfLearner::train_batch_soft`]).
#[derive(Clone, Copy, Debug)]
pub struct SoftSupervision<'a> {
    /// Label written into each positive sample.
    pub positives: &'a [usize],
    /// Label written into each negative sample (never the positive one); empty: the
    /// learner's own hard negatives, drawn from its head's probabilities over the labels
    /// other than the positive (as with true labels).
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
    Given(&'r SoftSupervision<'s>, &'r mut Rng),
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
    /// Sum over the batch and layers of the hint loss ½‖y − t‖² (squared activity
    /// units; 0 without hints).
    pub hint_loss_sum: f64,
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
        self.hint_loss_sum += other.hint_loss_sum;
    }

    /// Mean loss per scored term per layer (FF: log-loss, positives and negatives count
    /// equally; per-layer distillation: KL), nats.
    pub fn mean_layer_loss(&self) -> f64 {
        let n = (self.scored * self.layer_loss_sum.len()).max(1) as f64;
        self.layer_loss_sum.iter().sum::<f64>() / n
    }
}

impl FfLearner {
    /// A learner for `topology` (all hidden layers; the head is separate), whose input is
    /// a 28 × 28 image.
    pub fn new(cfg: FfConfig, topology: Topology) -> Result<Self> {
        let side = crate::data::SIDE;
        Self::with_geometry(
            cfg,
            topology,
            Geometry {
                h: side,
                w: side,
                c: 1,
            },
        )
    }

    /// A learner for `topology` whose input is an image of shape `geometry`.
    pub fn with_geometry(cfg: FfConfig, topology: Topology, geometry: Geometry) -> Result<Self> {
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
        // Optimiser state in each projection's packed layout (existing weights only).
        let opt_w = (0..layers)
            .map(|l| OptState::new(&cfg.optimizer, topology.wiring(l).weight_count(), 1))
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
            geometry,
            updates: 0,
            last_negatives: Vec::new(),
            layer_gain: 1.0,
            fast: None,
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

    fn shape_buffers(&mut self, b: usize, p: usize) {
        let widths = self.topology.widths().to_vec();
        let layers = widths.len() - 1;
        let buf = &mut self.buf;
        if buf.x.shape() == (widths[0], p) && buf.norm.len() == layers + 1 {
            return;
        }
        let sgd = self.opt_w.first().is_some_and(|o| o.is_sgd());
        buf.x = Mat::zeros(widths[0], p);
        buf.x_neg = Mat::zeros(widths[0], b);
        buf.norm = widths.iter().map(|w| Mat::zeros(*w, p)).collect();
        buf.norm_neg = widths.iter().map(|w| Mat::zeros(*w, b)).collect();
        buf.received = (0..layers).map(|l| Mat::zeros(widths[l], p)).collect();
        buf.activity = (0..layers).map(|l| Mat::zeros(widths[l + 1], p)).collect();
        buf.received_neg = (0..layers).map(|l| Mat::zeros(widths[l], b)).collect();
        buf.activity_neg = (0..layers).map(|l| Mat::zeros(widths[l + 1], b)).collect();
        buf.r_cat = (0..layers).map(|l| Mat::zeros(widths[l], 2 * b)).collect();
        buf.d_cat = (0..layers)
            .map(|l| Mat::zeros(widths[l + 1], 2 * b))
            .collect();
        if !sgd {
            let nnz = |l: usize| self.topology.wiring(l).weight_count();
            buf.grad = (0..layers).map(|l| Mat::zeros(nnz(l), 1)).collect();
            buf.step = (0..layers).map(|l| Mat::zeros(nnz(l), 1)).collect();
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
        negatives: &mut Rng,
        noise: &mut Rng,
    ) -> Result<FfBatchStats> {
        let b = sup.positives.len();
        assert!(
            sup.negatives.is_empty() || sup.negatives.len() == b,
            "train_batch_soft: one negative per image, or none (own negatives)"
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
        self.train_batch_with(
            sub,
            images,
            sup.positives,
            Teacher::Given(sup, negatives),
            gain,
            noise,
        )
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
        let unsup = self.unsupervised();
        let native = self.native();
        // Supervised: [positive | neutral] (2B); unsupervised: the images alone (B);
        // analog-native: the positives alone (B: no head, so no neutral pass).
        let p = if unsup || native { b } else { 2 * b };
        self.shape_buffers(b, p);
        let layers = self.topology.layers();
        let strength = self.cfg.label_strength;
        let gfn = self.cfg.goodness;
        let phase = self.next_phase();
        let mut stats = FfBatchStats {
            layer_loss_sum: vec![0.0; layers],
            pair_errors: vec![0; layers],
            head: HeadStats::default(),
            samples: b,
            scored: match phase {
                Phase::Both => 2 * b,
                Phase::Positive | Phase::Negative => b,
            },
            hint_loss_sum: 0.0,
        };

        // Positive (and neutral) passes, stacked into one batch.
        let buf = &mut self.buf;
        copy_columns(images, 0, &mut buf.x, 0, b);
        if !unsup {
            if !native {
                copy_columns(images, 0, &mut buf.x, b, b);
                write_neutral(&mut buf.x, b, b, self.cfg.neutral_label * strength);
            }
            write_one_hot(&mut buf.x, 0, labels, strength);
        }
        normalize_rms(&buf.x, &mut buf.norm[0]);
        host::normalise(sub.ledger_mut(), buf.x.nrows(), p);
        for l in 0..layers {
            let (head_norm, tail_norm) = buf.norm.split_at_mut(l + 1);
            if native {
                // The periphery reads the goodness and normalises; the host forms one
                // coefficient per sample.
                sub.forward_native(
                    l,
                    &head_norm[l],
                    &mut buf.received[l],
                    &mut buf.activity[l],
                    &mut tail_norm[0],
                    &mut buf.goodness_pos[l],
                    noise,
                );
                if phase != Phase::Negative {
                    host::native_coefficients(sub.ledger_mut(), b);
                }
            } else {
                sub.forward(
                    l,
                    &head_norm[l],
                    &mut buf.received[l],
                    &mut buf.activity[l],
                    noise,
                );
            }
            let act = &buf.activity[l];
            let rows = act.nrows();
            if !native {
                // Host work: goodness of the positives, local errors, normalisation of
                // all p.
                let ledger = sub.ledger_mut();
                host::goodness(ledger, rows, b);
                host::normalise(ledger, rows, p);
                if phase != Phase::Negative {
                    host::local_errors(ledger, rows, b);
                }
                gfn.columns(&act.as_slice()[..rows * b], rows, &mut buf.goodness_pos[l]);
            }
            check_finite(&buf.goodness_pos[l], l, "positive")?;
            let d_pos = &mut buf.d_cat[l].as_mut_slice()[..rows * b];
            if phase == Phase::Negative {
                // Sleep phase: no update from positive data.
                d_pos.fill(0.0);
            } else {
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
                    gfn,
                    &act.as_slice()[..rows * b],
                    rows,
                    &buf.coeff,
                    &buf.peer_term,
                    d_pos,
                );
            }
            copy_columns(&buf.received[l], 0, &mut buf.r_cat[l], 0, b);
            if !native {
                normalize_rms(act, &mut tail_norm[0]);
            }
        }

        // Softmax head on the neutral pass (unsupervised: on the images' own pass); its
        // pre-update logits choose hard negatives.
        let first = self.cfg.eval_from - 1;
        let off = if unsup { 0 } else { b };
        let features: Vec<_> = if native {
            Vec::new()
        } else {
            (first..layers)
                .map(|l| buf.norm[l + 1].columns(off, b))
                .collect()
        };
        if native {
            // No head: uniform negative labels (validated), the caller's if given.
            match teacher {
                Teacher::Own(negatives) => {
                    for (j, &truth) in labels.iter().enumerate() {
                        buf.neg_labels[j] = random_wrong(truth, negatives);
                    }
                }
                Teacher::Given(sup, negatives) => {
                    for (j, &positive) in labels.iter().enumerate() {
                        buf.neg_labels[j] = match sup.negatives.get(j) {
                            Some(n) => *n,
                            None => random_wrong(positive, negatives),
                        };
                    }
                }
            }
        } else {
            self.head.logits(&features, &mut buf.logits);
            {
                let f: usize = features.iter().map(|m| m.nrows()).sum();
                let ledger = sub.ledger_mut();
                host::head_logits(ledger, f, crate::data::CLASSES, b);
                host::head_step(ledger, f, crate::data::CLASSES, b);
            }
            match teacher {
                Teacher::Own(negatives) => {
                    stats.head = self.head.train_step(&features, &buf.logits, labels, gain);
                    for (j, &truth) in labels.iter().enumerate() {
                        buf.neg_labels[j] = match self.cfg.negatives {
                            NegativeLabels::Random => random_wrong(truth, negatives),
                            NegativeLabels::Hard => {
                                hard_wrong(buf.logits.column(j).as_slice(), truth, negatives)
                            }
                            // No label pixels: the negative is a hybrid image (below).
                            NegativeLabels::Hybrid => truth,
                        };
                    }
                    if unsup && phase != Phase::Positive {
                        hybrids(
                            images,
                            self.geometry,
                            self.cfg.hybrid_blurs,
                            negatives,
                            &mut buf.x_neg,
                        );
                    }
                }
                Teacher::Given(sup, negatives) => {
                    stats.head = self.head.train_step_soft(
                        &features,
                        &buf.logits,
                        sup.head_targets,
                        sup.head_temperature,
                        gain,
                    );
                    if sup.negatives.is_empty() {
                        for (j, &positive) in labels.iter().enumerate() {
                            buf.neg_labels[j] =
                                hard_wrong(buf.logits.column(j).as_slice(), positive, negatives);
                        }
                    } else {
                        buf.neg_labels.copy_from_slice(sup.negatives);
                    }
                }
            }
        }

        // Negative pass (skipped in a positive-only phase).
        if phase == Phase::Positive {
            for l in 0..layers {
                let rows = buf.d_cat[l].nrows();
                buf.d_cat[l].as_mut_slice()[rows * b..].fill(0.0);
            }
        } else {
            if !unsup {
                buf.x_neg.copy_from(images);
                write_one_hot(&mut buf.x_neg, 0, &buf.neg_labels, strength);
            }
            normalize_rms(&buf.x_neg, &mut buf.norm_neg[0]);
            host::normalise(sub.ledger_mut(), buf.x_neg.nrows(), b);
            for l in 0..layers {
                let (head_norm, tail_norm) = buf.norm_neg.split_at_mut(l + 1);
                if native {
                    sub.forward_native(
                        l,
                        &head_norm[l],
                        &mut buf.received_neg[l],
                        &mut buf.activity_neg[l],
                        &mut tail_norm[0],
                        &mut buf.goodness_neg,
                        noise,
                    );
                    host::native_coefficients(sub.ledger_mut(), b);
                } else {
                    sub.forward(
                        l,
                        &head_norm[l],
                        &mut buf.received_neg[l],
                        &mut buf.activity_neg[l],
                        noise,
                    );
                }
                let act = &buf.activity_neg[l];
                let rows = act.nrows();
                if !native {
                    let ledger = sub.ledger_mut();
                    host::goodness(ledger, rows, b);
                    host::local_errors(ledger, rows, b);
                    if l + 1 < layers {
                        host::normalise(ledger, rows, b);
                    }
                    gfn.columns(act.as_slice(), rows, &mut buf.goodness_neg);
                }
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
                    gfn,
                    act.as_slice(),
                    rows,
                    &buf.coeff,
                    &[],
                    &mut buf.d_cat[l].as_mut_slice()[rows * b..],
                );
                copy_columns(&buf.received_neg[l], 0, &mut buf.r_cat[l], b, b);
                if l + 1 < layers && !native {
                    normalize_rms(act, &mut tail_norm[0]);
                }
            }
        }
        self.last_negatives.clear();
        self.last_negatives.extend_from_slice(&buf.neg_labels);

        // One update request per layer: mean over the 2B samples of d·rᵀ.
        let d_cat = std::mem::take(&mut buf.d_cat);
        let r_cat = std::mem::take(&mut buf.r_cat);
        for l in 0..layers {
            self.request_update(sub, l, &d_cat[l], &r_cat[l], b, gain, noise);
        }
        if let Some(fast) = &self.fast {
            fast.flush_ledger(sub);
        }
        self.buf.d_cat = d_cat;
        self.buf.r_cat = r_cat;
        Ok(stats)
    }

    /// Scales the layers' learning rate by `g` (≥ 0) relative to the head's: 0 freezes
    /// them, so training steps train only the softmax head (a linear probe of the layers
    /// as they are, e.g. before fine-tuning a copy); 1 is ordinary training.
    pub fn set_layer_gain(&mut self, g: f32) {
        self.layer_gain = g;
    }

    /// Gives analog-native FF with analog momentum its fast arrays: `a`, a substrate of
    /// the weights' family and topology (other devices), is programmed to zero. Without
    /// them (or with momentum 0) updates train straight into the weights.
    pub fn attach_fast_arrays(&mut self, a: Box<dyn Substrate>, noise: &mut Rng) {
        self.fast = Some(super::fast::FastArrays::new(a, noise));
    }

    /// Whether this learner runs analog-native ([`FfMode::AnalogNative`]).
    pub fn native(&self) -> bool {
        self.cfg.mode == FfMode::AnalogNative
    }

    /// Whether this learner is unsupervised FF (hybrid negatives, no label pixels).
    pub fn unsupervised(&self) -> bool {
        self.cfg.negatives == NegativeLabels::Hybrid
    }

    /// The negative labels the last training batch wrote into its negatives (for an
    /// external replay of a step; unsupervised FF: the true labels, as no label is
    /// written).
    pub fn last_negatives(&self) -> &[usize] {
        &self.last_negatives
    }

    /// The phase of the next update (advances the sleep-phase counter).
    fn next_phase(&mut self) -> Phase {
        let n = self.cfg.phase_block as u64;
        let k = self.updates;
        self.updates += 1;
        if n == 0 {
            Phase::Both
        } else if (k / n).is_multiple_of(2) {
            Phase::Positive
        } else {
            Phase::Negative
        }
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
        if self.layer_gain == 0.0 {
            return;
        }
        let gain = gain * self.layer_gain;
        let inv_b = 1.0 / b as f32;
        let buf = &mut self.buf;
        let (ow, ob) = (&mut self.opt_w[l], &mut self.opt_b[l]);
        if self.cfg.mode == FfMode::AnalogNative {
            // Per-sample rank-1 trains: the layer's inputs on the x-lines, its local
            // errors on the d-lines; nothing formed on the host (plain SGD, validated),
            // into the fast arrays when the momentum lives there.
            let sw = ow.sgd_step_from_velocity(gain, true);
            if let Some(fast) = self
                .fast
                .as_mut()
                .filter(|_| self.cfg.analog_momentum.is_on())
            {
                fast.step(
                    sub,
                    l,
                    d,
                    r,
                    sw.scale * inv_b,
                    sw.decay,
                    &self.cfg.analog_momentum,
                    noise,
                );
                return;
            }
            sub.update(
                l,
                Update::Trains {
                    x: r,
                    d,
                    scale: sw.scale * inv_b,
                    decay: sw.decay,
                    bias: true,
                },
                noise,
            );
        } else if ow.is_sgd() && ow.momentum() == 0.0 {
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
            let wiring = self.topology.wiring(l);
            let (inp, out) = self.topology.dims(l);
            let nw = wiring.weight_count();
            host::outer_product(sub.ledger_mut(), nw + out, inp, out, d.ncols());
            host::optimiser(sub.ledger_mut(), nw + out, false);
            wiring.outer(
                sub.precision(),
                inv_b,
                d,
                r,
                mu,
                ow.velocity_mut().as_mut_slice(),
                &mut buf.gather,
            );
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
                    dw: ow.velocity().as_slice(),
                    db: ob.velocity().as_slice(),
                    scale: sw.scale,
                    decay: sw.decay,
                },
                noise,
            );
        } else {
            let o = d.nrows();
            let wiring = self.topology.wiring(l);
            let nnz = wiring.weight_count();
            let inp = self.topology.dims(l).0;
            host::outer_product(sub.ledger_mut(), nnz + o, inp, o, d.ncols());
            host::optimiser(sub.ledger_mut(), nnz + o, true);
            if buf.grad.len() <= l || buf.grad[l].shape() != (nnz, 1) {
                buf.grad.resize_with(l + 1, Mat::default);
                buf.step.resize_with(l + 1, Mat::default);
                buf.grad_b.resize_with(l + 1, Vec::new);
                buf.step_b.resize_with(l + 1, Vec::new);
                buf.grad[l] = Mat::zeros(nnz, 1);
                buf.step[l] = Mat::zeros(nnz, 1);
                buf.grad_b[l] = vec![0.0; o];
                buf.step_b[l] = vec![0.0; o];
            }
            wiring.outer(
                sub.precision(),
                inv_b,
                d,
                r,
                0.0,
                buf.grad[l].as_mut_slice(),
                &mut buf.gather,
            );
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
                    dw: buf.step[l].as_slice(),
                    db: &buf.step_b[l],
                    scale: sw.scale,
                    decay: sw.decay,
                },
                noise,
            );
        }
    }
}
