//! What a run writes: `results.json` (one record) and `epochs.csv` (one row per epoch).
//! Column and key names are a stable interface for scripts.

use serde::{Deserialize, Serialize};

use super::config::{Seeds, TrainConfig};

/// One row of `epochs.csv`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning-rate multiplier of the schedule in this epoch.
    pub lr_gain: f32,
    /// Mean training loss, nats (FF: per-layer log-loss over positives and negatives;
    /// BP: cross-entropy).
    pub train_loss: f64,
    /// Fraction of training samples misclassified during the epoch (FF: softmax head on the
    /// neutral pass; BP: the network's output).
    pub train_error: f64,
    /// Validation error of the best evaluation available this epoch (fraction).
    pub valid_error: f64,
    /// FF: validation error by goodness per label (only on full-evaluation epochs).
    pub valid_error_goodness: Option<f64>,
    /// Validation error by the softmax head (FF) or the output layer (BP; on the chip for
    /// the `bp-*` chip algorithms).
    pub valid_error_softmax: Option<f64>,
    /// Validation error of the host's digital model, for algorithms that have one next to
    /// the chip: `bp-deploy` and `bp-hwa` (the trained network before deployment) and
    /// `bp-pat` (the nominal twin). Empty otherwise.
    #[serde(default)]
    pub valid_error_digital: Option<f64>,
    /// Wall time of the training part of the epoch, seconds.
    pub train_seconds: f64,
    /// Wall time of the epoch's evaluation, seconds.
    pub eval_seconds: f64,
    /// Wall time since the start of training, seconds.
    pub elapsed_seconds: f64,
}

/// Test and validation errors of a trained network, by evaluation method.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Errors {
    /// FF: goodness per label.
    pub goodness: Option<f64>,
    /// FF: softmax head; BP: the network's output.
    pub softmax: Option<f64>,
    /// Recurrent FF: the goodness error of each single iteration (1, 2, …); empty for
    /// the other algorithms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_iteration: Vec<f64>,
}

impl Errors {
    /// The lower of the available errors, with the method's name.
    pub fn best(&self) -> (&'static str, f64) {
        match (self.goodness, self.softmax) {
            (Some(g), Some(s)) if g <= s => ("goodness", g),
            (_, Some(s)) => ("softmax", s),
            (Some(g), None) => ("goodness", g),
            (None, None) => ("none", f64::NAN),
        }
    }

    /// The error of the named method.
    pub fn by_name(&self, method: &str) -> Option<f64> {
        match method {
            "goodness" => self.goodness,
            "softmax" => self.softmax,
            _ => None,
        }
    }
}

/// Contents of `results.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    /// Version of mortal that produced the file.
    pub mortal_version: String,
    /// Algorithm name.
    pub algo: String,
    /// Dataset name.
    pub dataset: String,
    /// Hidden layer widths.
    pub layers: Vec<crate::train::layers::LayerSpec>,
    /// Epochs trained.
    pub epochs: usize,
    /// Batch size.
    pub batch: usize,
    /// Master seed.
    pub seed: u64,
    /// All derived seeds.
    pub seeds: Seeds,
    /// Test error (fraction) of the evaluation method with the lower validation error.
    pub test_error: f64,
    /// Which method `test_error` uses (`goodness` or `softmax`), chosen on validation.
    pub eval_method: String,
    /// FF: test error by goodness per label.
    pub test_error_goodness: Option<f64>,
    /// Test error by the softmax head (FF) or output layer (BP).
    pub test_error_softmax: Option<f64>,
    /// Recurrent FF: test error by the goodness of each single iteration of evaluation
    /// (iteration 1 first); absent for other algorithms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test_error_by_iteration: Vec<f64>,
    /// Test error of the host's digital model next to the chip (`bp-deploy`, `bp-hwa`: the
    /// trained network before deployment; `bp-pat`: the nominal twin); `test_error` is
    /// measured on the chip. None for other algorithms.
    #[serde(default)]
    pub test_error_digital: Option<f64>,
    /// Validation error of the chosen method.
    pub valid_error: f64,
    /// Training wall time, seconds (excludes evaluation).
    pub train_seconds: f64,
    /// Evaluation wall time, seconds.
    pub eval_seconds: f64,
    /// Training images used per epoch.
    pub train_samples: usize,
    /// Test images evaluated.
    pub test_samples: usize,
    /// Description of the substrate trained on.
    pub substrate: String,
    /// Chip preset name or spec file (None: digital).
    pub chip: Option<String>,
    /// Chip instance seed (None: digital).
    pub chip_seed: Option<u64>,
    /// Variation multiplier of the chip's spreads and noises (None: digital).
    pub variation: Option<f64>,
    /// Worker threads available (rayon); results do not depend on it.
    pub threads: usize,
    /// Peak resident memory of the process at the end of the run, MiB (Linux only).
    pub peak_rss_mib: Option<f64>,
    /// The full resolved configuration.
    pub config: TrainConfig,
    /// What training and inference cost under the run's energy model (operation counts,
    /// energy, latency; see [`crate::cost`]). Absent when counting was switched off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<crate::cost::CostReport>,
}
