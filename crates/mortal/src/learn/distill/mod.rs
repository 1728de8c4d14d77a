//! Distillation between chips: moving a learned function from a trained teacher network
//! (on its own chip) to a fresh student chip, by training the student in situ with
//! Forward-Forward to match the teacher's output probabilities, including those of the
//! wrong answers (Hinton's argument for mortal computation: the weights do not transfer,
//! the function does).
//!
//! FF-compatible student objective, per batch of transfer images:
//! * positive label: drawn from the teacher's distribution at temperature 1 (optionally,
//!   with labelled data, the true label with probability `hard_weight`);
//! * negative label: drawn from the teacher's probabilities at temperature T over the
//!   labels other than the positive one ("hard" negatives the teacher finds plausible);
//! * softmax head: fitted to the teacher's probabilities at temperature T (T²-scaled KL).
//!
//! No gradient crosses a layer: each layer still learns from its own goodness.

pub mod targets;
pub mod views;

use serde::{Deserialize, Serialize};

use crate::data::{CLASSES, Dataset};
use crate::error::{Error, Result, ensure};
use crate::learn::ff::{FfLearner, Scores, eval::EVAL_BATCH};
use crate::linalg::Mat;
use crate::rng::Rng;
use crate::substrate::Substrate;

pub use targets::{kl, mix_hard, probabilities, sample_label, sample_wrong, softmax_t};
pub use views::{Augment, TransferSource, epoch_views, transfer_images};

/// Where the student's training starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Init {
    /// `copy` where the teacher is a Forward-Forward network of the student's shape,
    /// `scratch` otherwise.
    #[default]
    Auto,
    /// The teacher's conductance targets (a digital FF teacher's weights, programmed with
    /// write-and-verify) and its softmax head, then distillation: chip-in-the-loop
    /// fine-tuning after a transfer (NeuRRAM, Wan et al. 2022; Yao et al. 2020).
    Copy,
    /// Fresh initial weights.
    Scratch,
}

impl Init {
    /// Name on the command line and in result files.
    pub fn name(self) -> &'static str {
        match self {
            Init::Auto => "auto",
            Init::Copy => "copy",
            Init::Scratch => "scratch",
        }
    }
}

/// Which of a Forward-Forward network's evaluation scores define its output distribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ScoreSource {
    /// The softmax head's logits after a neutral-label pass.
    Softmax,
    /// Per-label log-odds: the sum over evaluated layers of `s·(G − θ)/T_ff` with each
    /// label written in (up to a label-independent constant).
    Goodness,
}

impl ScoreSource {
    /// Name on the command line and in result files.
    pub fn name(self) -> &'static str {
        match self {
            ScoreSource::Softmax => "softmax",
            ScoreSource::Goodness => "goodness",
        }
    }
}

/// How the student's layers learn from the teacher.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum DistillLoss {
    /// FF's own loss: a positive label drawn from the teacher's distribution, a hard
    /// negative from its probabilities over the other labels.
    #[default]
    Contrastive,
    /// Per-layer KL: each layer's softmax over per-label goodness (at the layer
    /// temperature τ) matched to the teacher's distribution (11 passes per image; see
    /// [`crate::learn::ff::LayerKlSupervision`]).
    LayerKl,
}

impl DistillLoss {
    /// Name on the command line and in result files.
    pub fn name(self) -> &'static str {
        match self {
            DistillLoss::Contrastive => "contrastive",
            DistillLoss::LayerKl => "layer-kl",
        }
    }
}

/// Settings of the student's training objective.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillConfig {
    /// Temperature T of the head's soft targets and of the negatives' distribution
    /// (dimensionless, > 0).
    pub temperature: f32,
    /// Which teacher scores define its distribution.
    pub source: ScoreSource,
    /// Weight α of the true label mixed into the targets and positives, in [0, 1]
    /// (0 = pure distillation; must be 0 with unlabelled transfer data).
    pub hard_weight: f32,
    /// The transfer set's true labels are never read.
    pub unlabelled: bool,
    /// Temperature of the distribution positive labels are drawn from (dimensionless;
    /// 1 = the teacher's probabilities, 0 = always the teacher's top-1).
    #[serde(default = "one")]
    pub positive_temperature: f32,
    /// The layers' loss.
    #[serde(default)]
    pub loss: DistillLoss,
    /// Temperature τ of each layer's per-label distribution for `layer-kl`
    /// (dimensionless, > 0; default 20: goodness differences between labels are tens of
    /// squared-activity units, and τ = 1 makes each layer's distribution nearly one-hot).
    #[serde(default = "twenty")]
    pub layer_temperature: f32,
    /// How the student starts (default `auto`: from the teacher's copy where it can).
    #[serde(default)]
    pub init: Init,
    /// Per-view augmentation of the transfer images (the teacher is measured on the very
    /// view the student sees).
    #[serde(default = "default_augment")]
    pub augment: Augment,
    /// Reads of the teacher per view, averaged (logits), each with fresh read noise (≥ 1).
    #[serde(default = "one_read")]
    pub teacher_reads: usize,
    /// Epochs at the start of a student that starts from the teacher's copy in which only
    /// its softmax head learns (a linear probe of the copied layers on the new chip before
    /// they are fine-tuned; Kumar et al. 2022, arXiv 2202.10054). Counted in the epochs.
    #[serde(default)]
    pub head_epochs: usize,
    /// Learning-rate multiplier of the layers of a student that starts from the teacher's
    /// copy, after its head epochs (dimensionless, ≥ 0; 0 = only the head ever learns):
    /// fine-tuning copied features gently, so the first steps on the new chip, whose
    /// goodness sits far from the threshold, do not wipe them out.
    #[serde(default = "one")]
    pub copy_layer_lr: f32,
    /// Who picks the contrastive loss's negative labels: `teacher` (drawn from its
    /// probabilities at T over the other labels) or `student` (the student's own hard
    /// negatives from its head, as FF with true labels does).
    #[serde(default)]
    pub negatives: NegativeSource,
    /// Weight β of the hints (`--loss layer-kl` only): each student layer's neutral-pass
    /// activities are also pulled towards the teacher's on the same view, read from the
    /// teacher's chip every batch (`(β/2)·‖y − t‖²`, layer-local; see
    /// [`crate::learn::ff::LayerKlSupervision`]). Needs an FF teacher with the student's
    /// widths. `None` (default): [`DEFAULT_HINT_WEIGHT`] where the loss is `layer-kl` and
    /// the teacher can give hints, none otherwise; `Some(0)`: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint_weight: Option<f32>,
}

/// The hints' weight β where the teacher can give them (measured on MNIST, `harsh`,
/// 2×256 and 2×500 teachers: see the book's *Distillation: measured*).
pub const DEFAULT_HINT_WEIGHT: f32 = 3.0;

/// Who picks a distilled student's negative labels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum NegativeSource {
    /// Drawn from the teacher's probabilities at temperature T over the other labels.
    #[default]
    Teacher,
    /// The student's own hard negatives (its head's probabilities over the other labels).
    Student,
}

impl NegativeSource {
    /// Name on the command line and in result files.
    pub fn name(self) -> &'static str {
        match self {
            NegativeSource::Teacher => "teacher",
            NegativeSource::Student => "student",
        }
    }
}

/// Most teacher reads per view.
pub const MAX_TEACHER_READS: usize = 64;

fn one_read() -> usize {
    1
}

fn default_augment() -> Augment {
    DistillConfig::default().augment
}

fn one() -> f32 {
    1.0
}

fn twenty() -> f32 {
    20.0
}

impl Default for DistillConfig {
    fn default() -> Self {
        Self {
            temperature: 2.0,
            source: ScoreSource::Softmax,
            hard_weight: 0.0,
            unlabelled: false,
            positive_temperature: 1.0,
            // Measured (MNIST, harsh; the book's *Distillation: measured*): the per-layer
            // KL with hints beats the contrastive loss at every transfer size.
            loss: DistillLoss::LayerKl,
            layer_temperature: 20.0,
            init: Init::Auto,
            // Measured (MNIST, harsh, see the README's Distillation section): views hurt
            // these small FF students at 8-24 epochs, so they are off by default.
            augment: Augment::NONE,
            teacher_reads: 1,
            head_epochs: 1,
            // With hints the copied layers are fine-tuned at the full rate (0.1 without).
            copy_layer_lr: 1.0,
            negatives: NegativeSource::Teacher,
            hint_weight: None,
        }
    }
}

impl DistillConfig {
    /// Checks every setting; errors name the key.
    pub fn validate(&self) -> Result<()> {
        ensure(
            self.temperature.is_finite() && self.temperature > 0.0,
            "temperature",
            self.temperature,
            "must be > 0",
        )?;
        ensure(
            (0.0..=1.0).contains(&self.hard_weight),
            "hard-weight",
            self.hard_weight,
            "must be in [0, 1]",
        )?;
        ensure(
            self.positive_temperature.is_finite() && self.positive_temperature >= 0.0,
            "positive-temperature",
            self.positive_temperature,
            "must be ≥ 0",
        )?;
        ensure(
            self.layer_temperature.is_finite() && self.layer_temperature > 0.0,
            "layer-temperature",
            self.layer_temperature,
            "must be > 0",
        )?;
        ensure(
            (1..=MAX_TEACHER_READS).contains(&self.teacher_reads),
            "teacher-reads",
            self.teacher_reads,
            &format!("must be between 1 and {MAX_TEACHER_READS}"),
        )?;
        ensure(
            self.copy_layer_lr.is_finite() && (0.0..=10.0).contains(&self.copy_layer_lr),
            "copy-layer-lr",
            self.copy_layer_lr,
            "must be in [0, 10]",
        )?;
        if let Some(beta) = self.hint_weight {
            ensure(
                beta.is_finite() && (0.0..=100.0).contains(&beta),
                "hint-weight",
                beta,
                "must be in [0, 100]",
            )?;
            if beta > 0.0 && self.loss != DistillLoss::LayerKl {
                return Err(Error::param(
                    "hint-weight",
                    beta,
                    "hints are part of the per-layer loss: use --loss layer-kl",
                ));
            }
        }
        if self.unlabelled && self.hard_weight > 0.0 {
            return Err(Error::param(
                "hard-weight",
                self.hard_weight,
                "unlabelled transfer uses no true labels; hard-weight must be 0",
            ));
        }
        Ok(())
    }
}

/// Output scores (10 × n, `source`) of a network for a whole dataset, in fixed batches of
/// [`EVAL_BATCH`] images. Goodness scores are divided by the FF temperature to be log-odds.
pub fn scores_of(
    learner: &mut FfLearner,
    sub: &mut dyn Substrate,
    data: &Dataset,
    source: ScoreSource,
    noise: &mut Rng,
) -> Result<(Mat, Mat)> {
    let n = data.len();
    let mut logits = Mat::zeros(CLASSES, n);
    let mut goodness = Mat::zeros(CLASSES, n);
    let want_goodness = source == ScoreSource::Goodness;
    let inv_t = 1.0 / learner.config().temperature;
    let mut images = Mat::zeros(0, 0);
    let mut sc = Scores::default();
    let idx: Vec<usize> = (0..n).collect();
    for chunk in idx.chunks(EVAL_BATCH) {
        if images.ncols() != chunk.len() {
            images = Mat::zeros(data.pixels(), chunk.len());
        }
        data.gather(chunk, &mut images);
        learner.scores(sub, &images, want_goodness, noise, &mut sc);
        if sc
            .logits
            .iter()
            .chain(sc.goodness.iter())
            .any(|v| !v.is_finite())
        {
            return Err(Error::Diverged(
                "evaluation produced non-finite scores".into(),
            ));
        }
        for (j, &i) in chunk.iter().enumerate() {
            logits.column_mut(i).copy_from(&sc.logits.column(j));
            if want_goodness {
                for k in 0..CLASSES {
                    goodness[(k, i)] = sc.goodness[(k, j)] * inv_t;
                }
            }
        }
    }
    Ok((logits, goodness))
}

/// Output of a network by `source`, from [`scores_of`]'s pair.
pub fn pick(pair: (Mat, Mat), source: ScoreSource) -> Mat {
    match source {
        ScoreSource::Softmax => pair.0,
        ScoreSource::Goodness => pair.1,
    }
}

/// How a network (student) compares to the teacher and to the truth on a dataset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Fidelity {
    /// Fraction misclassified by the softmax head (the output fitted to the teacher).
    pub error: f64,
    /// Fraction misclassified by goodness per label (None: not evaluated).
    pub error_goodness: Option<f64>,
    /// Fraction whose head top-1 equals the teacher's top-1.
    pub agreement: f64,
    /// Fraction whose goodness top-1 equals the teacher's top-1 (None: not evaluated).
    pub agreement_goodness: Option<f64>,
    /// Mean KL(teacher ‖ student head) at temperature 1, nats per image.
    pub kl: f64,
}

/// Index of the largest score (the first on ties).
pub fn argmax(c: &[f32]) -> usize {
    let mut best = 0;
    for (k, v) in c.iter().enumerate() {
        if *v > c[best] {
            best = k;
        }
    }
    best
}

/// Compares a network's scores (`logits`, and optionally `goodness`: 10 × n) with the
/// teacher's output scores (`teacher`, 10 × n) and the true labels.
pub fn fidelity(logits: &Mat, goodness: Option<&Mat>, teacher: &Mat, labels: &[u8]) -> Fidelity {
    let n = labels.len();
    assert!(logits.ncols() == n && teacher.ncols() == n);
    let (mut err, mut agree, mut kl_sum) = (0usize, 0usize, 0.0f64);
    let (mut err_g, mut agree_g) = (0usize, 0usize);
    for (j, &label) in labels.iter().enumerate() {
        let label = usize::from(label);
        let t = teacher.column(j);
        let s = logits.column(j);
        let top_t = argmax(t.as_slice());
        let top_s = argmax(s.as_slice());
        err += usize::from(top_s != label);
        agree += usize::from(top_s == top_t);
        kl_sum += kl(&softmax_t(t.as_slice(), 1.0), &softmax_t(s.as_slice(), 1.0));
        if let Some(g) = goodness {
            let top_g = argmax(g.column(j).as_slice());
            err_g += usize::from(top_g != label);
            agree_g += usize::from(top_g == top_t);
        }
    }
    let inv = 1.0 / n.max(1) as f64;
    Fidelity {
        error: err as f64 * inv,
        error_goodness: goodness.map(|_| err_g as f64 * inv),
        agreement: agree as f64 * inv,
        agreement_goodness: goodness.map(|_| agree_g as f64 * inv),
        kl: kl_sum * inv,
    }
}

/// Fraction of columns of `scores` whose argmax is not the label.
pub fn error_of(scores: &Mat, labels: &[u8]) -> f64 {
    let wrong = labels
        .iter()
        .enumerate()
        .filter(|(j, l)| argmax(scores.column(*j).as_slice()) != usize::from(**l))
        .count();
    wrong as f64 / labels.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fidelity_of_the_teacher_to_itself_is_perfect() {
        let t = Mat::from_fn(CLASSES, 4, |k, j| if k == j { 3.0 } else { 0.0 });
        let labels = [0u8, 1, 2, 0];
        let f = fidelity(&t, Some(&t), &t, &labels);
        assert_eq!(f.agreement, 1.0);
        assert_eq!(f.agreement_goodness, Some(1.0));
        assert_eq!(f.kl, 0.0);
        assert_eq!(f.error, 0.25);
        assert_eq!(error_of(&t, &labels), 0.25);
        let other = Mat::from_fn(CLASSES, 4, |k, _| if k == 5 { 3.0 } else { 0.0 });
        let g = fidelity(&other, None, &t, &labels);
        assert_eq!(g.error_goodness, None);
        assert_eq!(g.agreement, 0.0);
        assert!(g.kl > 0.0);
    }

    #[test]
    fn config_validation_names_the_key() {
        assert!(DistillConfig::default().validate().is_ok());
        let bad = |c: DistillConfig, key: &str| {
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
        };
        bad(
            DistillConfig {
                temperature: 0.0,
                ..Default::default()
            },
            "temperature",
        );
        bad(
            DistillConfig {
                hard_weight: 0.5,
                unlabelled: true,
                ..Default::default()
            },
            "hard-weight",
        );
        bad(
            DistillConfig {
                teacher_reads: 0,
                ..Default::default()
            },
            "teacher-reads",
        );
    }
}
