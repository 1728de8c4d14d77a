//! Forward-Forward evaluation, both ways of the paper:
//! (a) run the image with each of the 10 labels and pick the label whose accumulated
//!     goodness over layers `eval_from..=L` is best;
//! (b) one neutral-label pass, then the linear softmax head on the normalised activities.

use super::FfLearner;
use super::labels::write_label_blocks;
use crate::data::{CLASSES, Dataset};
use crate::error::{Error, Result};
use crate::learn::host;
use crate::linalg::{Mat, normalize_rms};
use crate::rng::Rng;
use crate::substrate::Substrate;

/// Images per evaluation batch (fixed, so results do not depend on anything else).
pub const EVAL_BATCH: usize = 100;

/// Work buffers of the evaluation pass.
#[derive(Clone, Debug, Default)]
pub struct EvalBuffers {
    x: Mat,
    norm: Vec<Mat>,
    received: Mat,
    activity: Vec<Mat>,
    goodness: Vec<f32>,
}

/// Per-label scores of a batch of images (10 × n each). For both, the argmax of a column
/// is the prediction.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scores {
    /// `s·Σ_l G_l` with each label written in (s = +1 for max-ssq, −1 for min-ssq).
    pub goodness: Mat,
    /// Softmax-head logits after a neutral-label pass.
    pub logits: Mat,
}

/// Test or validation errors of a Forward-Forward network.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FfEvaluation {
    /// Fraction misclassified by goodness per label.
    pub error_goodness: f64,
    /// Fraction misclassified by the softmax head.
    pub error_softmax: f64,
    /// Images evaluated.
    pub samples: usize,
}

fn argmax(col: &[f32]) -> usize {
    let mut best = 0;
    for (k, v) in col.iter().enumerate() {
        if *v > col[best] {
            best = k;
        }
    }
    best
}

impl FfLearner {
    /// Scores of `images` (inputs × n): one stacked pass of 11·n columns
    /// (`[neutral | label 0 | … | label 9]`) through every layer. With `goodness == false`
    /// only the neutral pass runs and `out.goodness` is left empty.
    pub fn scores(
        &mut self,
        sub: &mut dyn Substrate,
        images: &Mat,
        goodness: bool,
        noise: &mut Rng,
        out: &mut Scores,
    ) {
        let n = images.ncols();
        // Unsupervised FF has no label pixels: only the head's pass runs.
        let unsup = self.unsupervised();
        // Analog-native FF has only goodness to classify with.
        let native = self.native();
        let goodness = (goodness || native) && !unsup;
        let labelled = if goodness { CLASSES } else { 0 };
        let layers = self.topology.layers();
        let widths = self.topology.widths().to_vec();
        let strength = self.cfg.label_strength;
        let buf = &mut self.eval_buf;
        let cols = (labelled + 1) * n;
        if buf.x.shape() != (widths[0], cols) || buf.norm.len() != layers + 1 {
            buf.x = Mat::zeros(widths[0], cols);
            buf.norm = widths.iter().map(|w| Mat::zeros(*w, cols)).collect();
            buf.activity = widths[1..].iter().map(|w| Mat::zeros(*w, cols)).collect();
            buf.goodness = vec![0.0; cols];
        }
        let neutral = self.cfg.neutral_label * strength;
        if unsup {
            buf.x.copy_from(images);
        } else {
            write_label_blocks(images, &mut buf.x, labelled, neutral, strength);
        }
        normalize_rms(&buf.x, &mut buf.norm[0]);
        host::normalise(sub.ledger_mut(), widths[0], cols);
        out.goodness = Mat::zeros(labelled, n);
        for l in 0..layers {
            let (head, tail) = buf.norm.split_at_mut(l + 1);
            if native {
                // The periphery reads each pass's goodness and normalises.
                sub.forward_native(
                    l,
                    &head[l],
                    &mut buf.received,
                    &mut buf.activity[l],
                    &mut tail[0],
                    &mut buf.goodness,
                    noise,
                );
            } else {
                sub.forward(l, &head[l], &mut buf.received, &mut buf.activity[l], noise);
                host::normalise(sub.ledger_mut(), buf.activity[l].nrows(), cols);
            }
            let act = &buf.activity[l];
            if goodness && l + 1 >= self.cfg.eval_from {
                if !native {
                    host::goodness(sub.ledger_mut(), act.nrows(), cols);
                    self.cfg
                        .goodness
                        .columns(act.as_slice(), act.nrows(), &mut buf.goodness);
                }
                let loss = &self.losses[l];
                for k in 0..CLASSES {
                    for j in 0..n {
                        out.goodness[(k, j)] += loss.score(buf.goodness[(k + 1) * n + j]);
                    }
                }
            }
            if !native {
                normalize_rms(act, &mut tail[0]);
            }
        }
        let features: Vec<_> = (self.cfg.eval_from - 1..layers)
            .map(|l| buf.norm[l + 1].columns(0, n))
            .collect();
        self.head.logits(&features, &mut out.logits);
        let f: usize = features.iter().map(|m| m.nrows()).sum();
        host::head_logits(sub.ledger_mut(), f, CLASSES, n);
    }

    /// The neutral pass's activities of every layer (units × n each) on `images`, as
    /// [`FfLearner::scores`] measures them without goodness (its logits in `out`): what a
    /// teacher shows a student as hints.
    pub fn neutral_activities(
        &mut self,
        sub: &mut dyn Substrate,
        images: &Mat,
        noise: &mut Rng,
        out: &mut Scores,
    ) -> Vec<Mat> {
        self.scores(sub, images, false, noise, out);
        self.eval_buf.activity.clone()
    }

    /// Error rates on a whole dataset, in batches of [`EVAL_BATCH`]. Without `goodness`
    /// (or for unsupervised FF, which has no label to try) only the (cheap) softmax-head
    /// evaluation runs and `error_goodness` is NaN.
    pub fn evaluate(
        &mut self,
        sub: &mut dyn Substrate,
        data: &Dataset,
        goodness: bool,
        noise: &mut Rng,
    ) -> Result<FfEvaluation> {
        let native = self.native();
        let goodness = (goodness || native) && !self.unsupervised();
        let mut images = Mat::zeros(0, 0);
        let mut scores = Scores::default();
        let (mut wrong_g, mut wrong_s) = (0usize, 0usize);
        let idx: Vec<usize> = (0..data.len()).collect();
        for chunk in idx.chunks(EVAL_BATCH) {
            if images.ncols() != chunk.len() {
                images = Mat::zeros(data.pixels(), chunk.len());
            }
            data.gather(chunk, &mut images);
            self.scores(sub, &images, goodness, noise, &mut scores);
            if scores
                .goodness
                .iter()
                .chain(scores.logits.iter())
                .any(|v| !v.is_finite())
            {
                return Err(Error::Diverged(
                    "evaluation produced non-finite scores".into(),
                ));
            }
            for (j, &i) in chunk.iter().enumerate() {
                let truth = data.label(i);
                if goodness {
                    wrong_g += usize::from(argmax(scores.goodness.column(j).as_slice()) != truth);
                }
                wrong_s += usize::from(argmax(scores.logits.column(j).as_slice()) != truth);
            }
        }
        let n = data.len().max(1) as f64;
        Ok(FfEvaluation {
            error_goodness: if goodness {
                wrong_g as f64 / n
            } else {
                f64::NAN
            },
            // Analog-native FF trains no head.
            error_softmax: if native { f64::NAN } else { wrong_s as f64 / n },
            samples: data.len(),
        })
    }
}
