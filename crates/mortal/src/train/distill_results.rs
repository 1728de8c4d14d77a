//! The records of a distillation: its settings, baselines, per-epoch rows and
//! `results.json` (see [`super::distill`]).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::config::{Seeds, TrainConfig};
pub use super::distill_teacher::{
    Net, Teacher, TeacherCheckpoint, ViewKey, check_source, copy_init_refusal, ff_trainer,
    load_teacher, resolve_init,
};
use crate::learn::distill::{Augment, DistillConfig, Fidelity, Init, ScoreSource, TransferSource};

/// Which baselines a student measures beside itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum BaselineSet {
    /// Only the copy (evaluated, no training): for experiments on the student alone.
    Copy,
    /// copy and scratch (labels).
    Basic,
    /// Also copy + fine-tuning with labels, and the distilled student from the other
    /// starting point (copy ↔ scratch), where they exist.
    #[default]
    Full,
}

/// Everything that defines one distillation run (serialised into `results.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillSettings {
    /// Checkpoint directory of the teacher (a `mortal train` run of any algorithm).
    pub teacher: PathBuf,
    /// Transfer set: N images of `source_images`.
    pub transfer: usize,
    /// Where the transfer images come from (default: the training set's first N).
    #[serde(default)]
    pub source_images: TransferSource,
    /// Student objective.
    pub distill: DistillConfig,
    /// Also evaluate goodness per label on the test set (11 passes per image).
    pub goodness: bool,
    /// Minimum number of training samples a student sees: its epochs are
    /// `max(epochs, ceil(min_samples / transfer))` (0 = exactly `epochs`).
    pub min_samples: usize,
    /// Which baselines are measured.
    #[serde(default)]
    pub baselines: BaselineSet,
    /// The student's training run (its shape and FF settings, the student chip, its
    /// epochs and master seed, `train_limit` = transfer). Used as is by the baselines.
    pub student: TrainConfig,
}

/// One row of a distillation `epochs.csv`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DistillEpoch {
    pub epoch: usize,
    pub lr_gain: f32,
    /// Mean T²-scaled KL(teacher ‖ student head) on the transfer batches, nats.
    pub train_kl: f64,
    /// Mean FF layer log-loss, nats.
    pub train_ff_loss: f64,
    /// Fraction of transfer samples whose head top-1 differs from the teacher's target.
    pub train_disagreement: f64,
    /// Validation error of the student's softmax head (fraction).
    pub valid_error: f64,
    /// Validation agreement with the teacher's top-1 (fraction).
    pub valid_agreement: f64,
    /// Validation mean KL(teacher ‖ student), nats, temperature 1.
    pub valid_kl: f64,
    pub train_seconds: f64,
    pub eval_seconds: f64,
    pub elapsed_seconds: f64,
}

/// Contents of a distillation `results.json`. Errors, agreements are fractions; KL in nats.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DistillResults {
    pub mortal_version: String,
    /// Always `ff-distill`.
    pub algo: String,
    pub dataset: String,
    pub layers: Vec<crate::train::layers::LayerSpec>,
    /// Student epochs.
    pub epochs: usize,
    pub batch: usize,
    /// Student master seed and its derived streams.
    pub seed: u64,
    pub seeds: Seeds,
    pub teacher: PathBuf,
    pub teacher_chip: Option<String>,
    pub teacher_chip_seed: Option<u64>,
    /// Teacher test error by its output scores (`source`).
    pub teacher_test_error: f64,
    /// Agreement of the teacher with itself on a second read of the test set (fresh read
    /// noise): the ceiling its own noise puts on any student's agreement.
    #[serde(default)]
    pub teacher_self_agreement: Option<f64>,
    /// Agreement of one read of the teacher with the teacher's *function*: its
    /// prediction averaged over [`FUNCTION_READS`] reads of the test set (the ceiling of a
    /// student's `function_agreement`).
    #[serde(default)]
    pub teacher_function_agreement: Option<f64>,
    pub student_chip: String,
    /// Seed of the student chip instance.
    pub student_seed: u64,
    pub variation: f64,
    /// Transfer images.
    pub transfer: usize,
    /// Where they came from (`train`, `hybrid:S`, `noise`, a file).
    #[serde(default)]
    pub transfer_source: String,
    pub unlabelled: bool,
    pub temperature: f32,
    pub source: ScoreSource,
    pub hard_weight: f32,
    /// The hints' weight β in effect (0: none; see [`DistillConfig::hint_weight`]).
    #[serde(default)]
    pub hint_weight: f32,
    /// The student's starting point (`copy` or `scratch`).
    #[serde(default = "scratch_init")]
    pub init: Init,
    /// Student: test error of its softmax head, and by goodness.
    pub test_error: f64,
    pub test_error_goodness: Option<f64>,
    /// Fraction of test images where the student's top-1 equals the teacher's.
    pub agreement: f64,
    /// Agreement of the student's (one read) top-1 with the teacher's function: the
    /// teacher's prediction averaged over [`FUNCTION_READS`] reads of the test set, so
    /// the teacher's read noise does not count against the student.
    #[serde(default)]
    pub function_agreement: Option<f64>,
    pub agreement_goodness: Option<f64>,
    /// Mean KL(teacher ‖ student) on the test set, nats, temperature 1.
    pub kl: f64,
    /// `test_error − teacher_test_error` (fraction; ≤ 0: the student matches or beats it).
    #[serde(default)]
    pub gap: f64,
    /// `(scratch − student) / (scratch − teacher)`, the fraction of the gap between FF
    /// from scratch with labels and the teacher that distillation recovers; reported where
    /// scratch trails the teacher by more than a point.
    #[serde(default)]
    pub recovered: Option<f64>,
    pub copy_test_error: f64,
    pub copy_test_error_goodness: Option<f64>,
    pub copy_agreement: f64,
    pub copy_agreement_goodness: Option<f64>,
    pub copy_kl: f64,
    /// How the copy was made (the substrate's note).
    pub copy_note: Option<String>,
    /// FF from scratch with the true labels (none: the transfer images have no labels).
    pub scratch_test_error: Option<f64>,
    pub scratch_test_error_goodness: Option<f64>,
    pub scratch_agreement: Option<f64>,
    pub scratch_agreement_goodness: Option<f64>,
    pub scratch_kl: Option<f64>,
    /// The copy fine-tuned by FF with the true labels (full baselines, where both exist).
    #[serde(default)]
    pub copy_labels_test_error: Option<f64>,
    #[serde(default)]
    pub copy_labels_agreement: Option<f64>,
    #[serde(default)]
    pub copy_labels_kl: Option<f64>,
    /// The distilled student from the other starting point (full baselines).
    #[serde(default)]
    pub other_init: Option<Init>,
    #[serde(default)]
    pub other_init_test_error: Option<f64>,
    #[serde(default)]
    pub other_init_agreement: Option<f64>,
    #[serde(default)]
    pub other_init_kl: Option<f64>,
    /// Student validation error (softmax head) after the last epoch.
    pub valid_error: f64,
    /// Wall time of the distilled student's training, seconds.
    pub train_seconds: f64,
    /// Wall time of the whole command for this student, seconds.
    pub total_seconds: f64,
    pub test_samples: usize,
    pub threads: usize,
    /// The student run (directory name in the sweep) whose copy and scratch baselines
    /// these are; `None`: measured in this run (see `scratch/`).
    #[serde(default)]
    pub baselines_from: Option<String>,
    pub config: DistillSettings,
}

fn scratch_init() -> Init {
    Init::Scratch
}

/// The baselines of a student that do not depend on its own objective, so students that
/// differ only in it (e.g. the loss) share one measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct Baselines {
    pub copy: Fidelity,
    pub copy_note: Option<String>,
    pub scratch: Option<Fidelity>,
    pub copy_labels: Option<Fidelity>,
    /// The student run they were measured in.
    pub from: String,
}

impl DistillSettings {
    /// These settings with every objective field the baselines do not read reset to its
    /// default (the teacher's score `source` and the views' jitter are kept): students
    /// with equal keys have identical copy, scratch and copy + labels baselines.
    pub fn baseline_key(&self) -> DistillSettings {
        let d = DistillConfig::default();
        DistillSettings {
            distill: DistillConfig {
                source: self.distill.source,
                augment: Augment {
                    jitter: self.distill.augment.jitter,
                    ..d.augment
                },
                ..d
            },
            ..self.clone()
        }
    }
}

impl DistillResults {
    /// This run's baselines; `name` is its run's name, used when it measured them itself.
    pub fn baselines(&self, name: &str) -> Baselines {
        let scratch = self.scratch_test_error.map(|error| Fidelity {
            error,
            error_goodness: self.scratch_test_error_goodness,
            agreement: self.scratch_agreement.unwrap_or(f64::NAN),
            agreement_goodness: self.scratch_agreement_goodness,
            kl: self.scratch_kl.unwrap_or(f64::NAN),
        });
        let copy_labels = self.copy_labels_test_error.map(|error| Fidelity {
            error,
            error_goodness: None,
            agreement: self.copy_labels_agreement.unwrap_or(f64::NAN),
            agreement_goodness: None,
            kl: self.copy_labels_kl.unwrap_or(f64::NAN),
        });
        Baselines {
            copy: Fidelity {
                error: self.copy_test_error,
                error_goodness: self.copy_test_error_goodness,
                agreement: self.copy_agreement,
                agreement_goodness: self.copy_agreement_goodness,
                kl: self.copy_kl,
            },
            copy_note: self.copy_note.clone(),
            scratch,
            copy_labels,
            from: self
                .baselines_from
                .clone()
                .unwrap_or_else(|| name.to_string()),
        }
    }
}

/// `(scratch − student) / (scratch − teacher)` where scratch trails the teacher by more
/// than a point (errors as fractions).
pub fn recovered(scratch: Option<f64>, student: f64, teacher: f64) -> Option<f64> {
    let s = scratch?;
    (s - teacher > 0.01).then(|| (s - student) / (s - teacher))
}
