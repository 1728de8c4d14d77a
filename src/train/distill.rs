//! `mortal distill`: move a trained network (the teacher, on its chip; Forward-Forward or
//! any backprop variant) to another chip (the student, trained in situ by FF), and compare
//! with the baselines, in one run and at one budget (epochs):
//! * **copy**: the teacher's conductances (or, for a digital teacher, its weights,
//!   programmed) put onto the student chip, evaluated as they are;
//! * **scratch**: FF from scratch on the student chip with the transfer images' true labels;
//! * **distil**: FF in situ on the student chip, supervised by the teacher's probabilities
//!   on every view it is shown (see [`crate::learn::distill`]), starting from the copy
//!   (`init = copy`, a chip-in-the-loop fine-tuning) or from scratch;
//! * with full baselines, also **copy + labels** (the copy fine-tuned by FF with the true
//!   labels) and the distilled student from the other starting point.
//!
//! Teaching is consistent and patient (Beyer et al. 2022): every epoch shows each transfer
//! image as a fresh view (jitter, mixup), and the teacher is measured on that very view on
//! its own chip ([`Teacher`], shared by every student that sees the same views).
//!
//! Writes `results.json` (student `test_error`, `agreement`, `kl`, the same for `copy_*`,
//! `scratch_*`, `copy_labels_*`, `other_init_*`, the teacher's error, the gap to it and the
//! fraction of the scratch–teacher gap recovered, seeds and the full configuration),
//! `epochs.csv` (the student, one row per epoch), `scratch/`, `copy-labels/`,
//! `other-init/` (each baseline's `epochs.csv`) and the student's checkpoint. Sweeps of
//! students are in [`super::distill_sweep`]; there, students that differ only in their
//! objective share one measurement of the baselines ([`Baselines`], `baselines_from`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::config::{Algo, ChipConfig, Seeds, TrainConfig};
use super::distill_teacher::ff_scores;
pub use super::distill_teacher::{
    Net, Teacher, TeacherCheckpoint, ViewKey, check_source, copy_init_refusal, ff_trainer,
    load_teacher, resolve_init,
};
use super::trainers::FfTrainer;
use super::{batches, epoch_order};
use crate::data::{CLASSES, Dataset, Splits};
use crate::error::{Error, Result};
use crate::fsutil::{create_dir, write_csv, write_json};
use crate::learn::distill::{
    self, Augment, DistillConfig, DistillLoss, Fidelity, Init, NegativeSource, ScoreSource,
    TransferSource, epoch_views, fidelity, mix_hard, sample_label, sample_wrong, softmax_t,
    transfer_images,
};
use crate::learn::ff::{LayerKlSupervision, SoftSupervision};
use crate::linalg::Mat;
use crate::progress::Reporter;
use crate::rng::{derive, indexed, stream};

/// Which baselines a student measures beside itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
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
    /// The student's starting point (`copy` or `scratch`).
    #[serde(default = "scratch_init")]
    pub init: Init,
    /// Student: test error of its softmax head, and by goodness.
    pub test_error: f64,
    pub test_error_goodness: Option<f64>,
    /// Fraction of test images where the student's top-1 equals the teacher's.
    pub agreement: f64,
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

/// The student's training configuration: the teacher's shape and FF settings on the
/// student chip, with the student's epochs and seed.
pub fn student_config(
    teacher: &TrainConfig,
    chip: ChipConfig,
    epochs: usize,
    seed: u64,
    transfer: usize,
) -> TrainConfig {
    let mut c = TrainConfig {
        algo: Algo::Ff,
        epochs,
        seed,
        train_limit: Some(transfer),
        chip: Some(chip),
        ..teacher.clone()
    };
    if teacher.algo != Algo::Ff {
        c.ff = crate::learn::FfConfig::default();
        c.bp = crate::learn::BpConfig::default();
    }
    // A student is supervised by its teacher's scores (labels in the pixels), even when
    // the teacher learned without labels; the teacher's jitter was part of its own
    // training data, not of the transfer set.
    if c.ff.negatives == crate::learn::ff::NegativeLabels::Hybrid {
        c.ff.negatives = crate::learn::ff::NegativeLabels::Hard;
    }
    c.jitter = 0;
    c
}

/// Most epochs a student may be planned to train (`--min-samples` over a small transfer
/// set can ask for absurd numbers).
pub const MAX_STUDENT_EPOCHS: usize = 100_000;

/// Epochs of a student with `transfer` images.
pub fn student_epochs(epochs: usize, min_samples: usize, transfer: usize) -> usize {
    epochs.max(min_samples.div_ceil(transfer.max(1)))
}

/// How scores from [`Net::scores`] compare with the teacher's outputs and the labels.
fn against(scores: (Mat, Option<Mat>), data: &Dataset, teacher_out: &Mat) -> Fidelity {
    fidelity(&scores.0, scores.1.as_ref(), teacher_out, data.labels())
}

/// The test-set fidelity of an FF network trained here.
fn ff_fidelity(
    t: &mut FfTrainer,
    test: &Dataset,
    goodness: bool,
    noise: &mut crate::rng::Rng,
    t_test: &Mat,
) -> Result<Fidelity> {
    Ok(against(ff_scores(t, test, goodness, noise)?, test, t_test))
}

/// The one-line report of a network's fidelity (`what`: copy, scratch, distil, …).
fn report(rep: &Reporter, what: &str, f: &Fidelity) {
    rep.line(&format!(
        "{what}: test error {:.2}%, agreement {:.2}%, KL {:.4} nats",
        100.0 * f.error,
        100.0 * f.agreement,
        f.kl
    ));
}

/// The labelled images of a transfer source (its own, or the seed images of hybrids).
fn labelled_images(
    source: &TransferSource,
    transfer: &Dataset,
    train: &Dataset,
) -> Option<Dataset> {
    match source {
        TransferSource::Train => Some(transfer.clone()),
        TransferSource::Hybrid { seeds } => Some(train.slice(0..(*seeds).min(train.len()))),
        TransferSource::Noise | TransferSource::File(_) => None,
    }
}

/// Everything one student run needs, checked.
struct Plan<'a> {
    s: &'a DistillSettings,
    ckpt: &'a TeacherCheckpoint,
    init: Init,
    transfer: Dataset,
    labelled: Option<Dataset>,
}

impl<'a> Plan<'a> {
    fn new(s: &'a DistillSettings, ckpt: &'a TeacherCheckpoint, data: &Splits) -> Result<Self> {
        s.distill.validate()?;
        check_source(ckpt.meta.config.algo, s.distill.source)?;
        s.student.validate()?;
        s.distill.augment.validate(data.train.geometry())?;
        if !s.source_images.labelled() && s.distill.hard_weight > 0.0 {
            return Err(Error::param(
                "hard-weight",
                s.distill.hard_weight,
                format!(
                    "the {} transfer images have no labels; hard-weight must be 0",
                    s.source_images.name()
                ),
            ));
        }
        if data.valid.is_empty() || data.test.is_empty() {
            return Err(Error::param(
                "dataset",
                s.student.dataset,
                "validation and test sets must be non-empty",
            ));
        }
        if s.student.chip.is_none() {
            return Err(Error::param(
                "student-chip",
                "none",
                "the student needs a chip",
            ));
        }
        let init = resolve_init(s.distill.init, &ckpt.meta.config, &s.student)?;
        let transfer = transfer_images(
            &s.source_images,
            &data.train,
            s.transfer,
            derive(s.student.seed, "transfer-images"),
        )?;
        let labelled = labelled_images(&s.source_images, &transfer, &data.train);
        Ok(Self {
            s,
            ckpt,
            init,
            transfer,
            labelled,
        })
    }

    /// A fresh FF student on the student chip, started as `init` says.
    fn start(&self, init: Init, program_seed: &str) -> Result<FfTrainer> {
        let cfg = &self.s.student;
        match init {
            Init::Copy => {
                let mut noise = stream(derive(cfg.seeds().noise, program_seed), "program");
                Ok(self.ckpt.copy_ff(cfg, &mut noise)?.0)
            }
            Init::Scratch | Init::Auto => ff_trainer(cfg),
        }
    }
}

/// Runs the student and its baselines; writes into `out`. With `shared` baselines
/// (measured by a student with the same [`DistillSettings::baseline_key`]), only the
/// distillations run. `teacher` is the teacher of `ckpt`, shared across students.
pub fn run(
    s: &DistillSettings,
    ckpt: &TeacherCheckpoint,
    teacher: &Teacher,
    data: &Splits,
    out: &Path,
    rep: &Reporter,
    shared: Option<&Baselines>,
) -> Result<DistillResults> {
    let start = Instant::now();
    let plan = Plan::new(s, ckpt, data)?;
    if teacher.source() != s.distill.source {
        return Err(Error::param(
            "source",
            s.distill.source.name(),
            format!("the shared teacher measures {}", teacher.source().name()),
        ));
    }
    let chip = s.student.chip.clone().expect("checked by Plan::new");
    crate::fsutil::check_out_not_inside(out, &s.teacher, "teacher", false)?;
    let _lock = crate::fsutil::OutputLock::take(out)?;
    create_dir(out)?;
    super::manifest::unseal(out)?;
    let cfg = &s.student;
    let seeds = cfg.seeds();
    let eval_seed = derive(seeds.noise, "distill-eval");

    let t_valid = teacher.on_set("valid", &data.valid)?;
    let t_test = teacher.on_set("test", &data.test)?;
    let teacher_test_error = distill::error_of(&t_test, data.test.labels());
    // The teacher against itself on another read of the test set: the agreement its own
    // read noise allows (a ceiling for any student's agreement).
    let t_again = teacher.on_set("test-again", &data.test)?;
    let teacher_self = fidelity(&t_again, None, &t_test, data.test.labels());
    rep.line(&format!(
        "teacher ({}): test error {:.2}% by {}; {:.2}% agreement with itself on another read",
        teacher.describe(),
        100.0 * teacher_test_error,
        s.distill.source.name(),
        100.0 * teacher_self.agreement
    ));

    let lesson = Lesson {
        images: &plan.transfer,
        transfer_name: s.source_images.name(),
        teacher,
        t_valid: &t_valid,
        valid: &data.valid,
        eval_seed,
    };
    let base = match shared {
        Some(b) => {
            rep.line(&format!(
                "copy: test error {:.2}% (baselines of {})",
                100.0 * b.copy.error,
                b.from
            ));
            b.clone()
        }
        None => baselines(&plan, &lesson, data, &t_test, out, rep)?,
    };

    // The student.
    let mut student = plan.start(plan.init, "copy-init")?;
    let head_only = |init: Init| {
        if init == Init::Copy {
            (s.distill.head_epochs, s.distill.copy_layer_lr)
        } else {
            (0, 1.0)
        }
    };
    let rows = lesson.train(
        &mut student,
        cfg,
        Teaching::Teacher(&s.distill),
        head_only(plan.init),
        out,
        rep,
    )?;
    let train_seconds: f64 = rows.iter().map(|r| r.train_seconds).sum();
    let valid_error = rows.last().map_or(f64::NAN, |r| r.valid_error);
    let f = ff_fidelity(
        &mut student,
        &data.test,
        s.goodness,
        &mut indexed(eval_seed, 3),
        &t_test,
    )?;
    report(rep, &format!("distil (from {})", plan.init.name()), &f);
    super::save_checkpoint(out, cfg, &student)?;
    drop(student);

    // The same distillation from the other starting point.
    let other_init = match plan.init {
        Init::Copy => Some(Init::Scratch),
        _ if copy_init_refusal(&ckpt.meta.config, cfg).is_none() => Some(Init::Copy),
        _ => None,
    }
    .filter(|_| s.baselines == BaselineSet::Full);
    let other = match other_init {
        Some(init) => {
            let dir = out.join("other-init");
            create_dir(&dir)?;
            let mut t = plan.start(init, "copy-init")?;
            lesson.train(
                &mut t,
                cfg,
                Teaching::Teacher(&s.distill),
                head_only(init),
                &dir,
                rep,
            )?;
            let of = ff_fidelity(
                &mut t,
                &data.test,
                false,
                &mut indexed(eval_seed, 4),
                &t_test,
            )?;
            report(rep, &format!("distil (from {})", init.name()), &of);
            finish_csv(&dir)?;
            Some(of)
        }
        None => None,
    };

    let tc = ckpt.meta.config.chip.as_ref();
    let scratch_error = base.scratch.as_ref().map(|f| f.error);
    let results = DistillResults {
        mortal_version: env!("CARGO_PKG_VERSION").to_string(),
        algo: "ff-distill".into(),
        dataset: cfg.dataset.name().into(),
        layers: cfg.layers.clone(),
        epochs: cfg.epochs,
        batch: cfg.batch,
        seed: cfg.seed,
        seeds,
        teacher: s.teacher.clone(),
        teacher_chip: tc.map(|c| c.source.clone()),
        teacher_chip_seed: tc.map(|c| c.chip_seed),
        teacher_test_error,
        teacher_self_agreement: Some(teacher_self.agreement),
        student_chip: chip.source.clone(),
        student_seed: chip.chip_seed,
        variation: chip.variation,
        transfer: s.transfer,
        transfer_source: s.source_images.name(),
        unlabelled: s.distill.unlabelled || !s.source_images.labelled(),
        temperature: s.distill.temperature,
        source: s.distill.source,
        hard_weight: s.distill.hard_weight,
        init: plan.init,
        test_error: f.error,
        test_error_goodness: f.error_goodness,
        agreement: f.agreement,
        agreement_goodness: f.agreement_goodness,
        kl: f.kl,
        gap: f.error - teacher_test_error,
        recovered: recovered(scratch_error, f.error, teacher_test_error),
        copy_test_error: base.copy.error,
        copy_test_error_goodness: base.copy.error_goodness,
        copy_agreement: base.copy.agreement,
        copy_agreement_goodness: base.copy.agreement_goodness,
        copy_kl: base.copy.kl,
        copy_note: base.copy_note.clone(),
        scratch_test_error: scratch_error,
        scratch_test_error_goodness: base.scratch.as_ref().and_then(|f| f.error_goodness),
        scratch_agreement: base.scratch.as_ref().map(|f| f.agreement),
        scratch_agreement_goodness: base.scratch.as_ref().and_then(|f| f.agreement_goodness),
        scratch_kl: base.scratch.as_ref().map(|f| f.kl),
        copy_labels_test_error: base.copy_labels.as_ref().map(|f| f.error),
        copy_labels_agreement: base.copy_labels.as_ref().map(|f| f.agreement),
        copy_labels_kl: base.copy_labels.as_ref().map(|f| f.kl),
        other_init: other.as_ref().and(other_init),
        other_init_test_error: other.as_ref().map(|f| f.error),
        other_init_agreement: other.as_ref().map(|f| f.agreement),
        other_init_kl: other.as_ref().map(|f| f.kl),
        valid_error,
        train_seconds,
        total_seconds: start.elapsed().as_secs_f64(),
        test_samples: data.test.len(),
        threads: rayon::current_num_threads(),
        baselines_from: shared.map(|b| b.from.clone()),
        config: s.clone(),
    };
    write_json(&out.join("results.json"), &results)?;
    finish_csv(out)?;
    super::manifest::seal(out)?;
    Ok(results)
}

/// Measures the baselines of a student: (a) the teacher copied onto the student chip,
/// (b) FF from scratch with the labelled images' labels (run files in `out/scratch/`),
/// (c) with full baselines, the copy fine-tuned with those labels (`out/copy-labels/`).
fn baselines(
    plan: &Plan<'_>,
    lesson: &Lesson<'_>,
    data: &Splits,
    t_test: &Mat,
    out: &Path,
    rep: &Reporter,
) -> Result<Baselines> {
    let s = plan.s;
    let cfg = &s.student;
    let seeds = cfg.seeds();
    let eval_seed = lesson.eval_seed;
    // (a) copy.
    let mut copy_noise = stream(derive(seeds.noise, "copy"), "program");
    let (mut copy, copy_note) = plan.ckpt.copy_onto(cfg, &mut copy_noise)?;
    let copy_f = against(
        copy.scores(&data.test, s.goodness, &mut indexed(eval_seed, 1))?,
        &data.test,
        t_test,
    );
    report(rep, "copy", &copy_f);
    drop(copy);

    let labelled = match &plan.labelled {
        None => {
            rep.line("scratch: the transfer images have no labels; no labelled baseline");
            None
        }
        Some(l) => Some(Lesson {
            images: l,
            transfer_name: format!("{} (labelled)", s.source_images.name()),
            ..lesson.clone()
        }),
    };
    let jitter = Augment {
        jitter: s.distill.augment.jitter,
        mixup: 0.0,
    };
    // (b) FF from scratch with labels.
    let scratch = match &labelled {
        _ if s.baselines == BaselineSet::Copy => None,
        None => None,
        Some(lab) => {
            let mut t = ff_trainer(cfg)?;
            let dir = out.join("scratch");
            create_dir(&dir)?;
            lab.train(&mut t, cfg, Teaching::Labels(jitter), (0, 1.0), &dir, rep)?;
            let f = ff_fidelity(
                &mut t,
                &data.test,
                s.goodness,
                &mut indexed(eval_seed, 2),
                t_test,
            )?;
            report(rep, "scratch (labels)", &f);
            finish_csv(&dir)?;
            Some(f)
        }
    };
    // (c) copy + labels.
    let copy_labels = match &labelled {
        Some(lab)
            if s.baselines == BaselineSet::Full
                && copy_init_refusal(&plan.ckpt.meta.config, cfg).is_none() =>
        {
            let mut t = plan.start(Init::Copy, "copy-init")?;
            let dir = out.join("copy-labels");
            create_dir(&dir)?;
            let gentle = (s.distill.head_epochs, s.distill.copy_layer_lr);
            lab.train(&mut t, cfg, Teaching::Labels(jitter), gentle, &dir, rep)?;
            let f = ff_fidelity(
                &mut t,
                &data.test,
                false,
                &mut indexed(eval_seed, 5),
                t_test,
            )?;
            report(rep, "copy + labels", &f);
            finish_csv(&dir)?;
            Some(f)
        }
        _ => None,
    };
    Ok(Baselines {
        copy: copy_f,
        copy_note,
        scratch,
        copy_labels,
        from: out.file_name().map_or_else(
            || out.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
    })
}

fn finish_csv(dir: &Path) -> Result<()> {
    std::fs::rename(dir.join(PARTIAL), dir.join("epochs.csv")).map_err(|e| {
        Error::io(
            format!("cannot finalise {}", dir.join("epochs.csv").display()),
            e,
        )
    })
}

/// Name of the per-epoch file while a student trains.
const PARTIAL: &str = "epochs.csv.partial";

/// Who supervises a training run of [`Lesson::train`].
#[derive(Clone, Copy)]
enum Teaching<'a> {
    /// The teacher, on the views of the distillation's augmentation.
    Teacher(&'a DistillConfig),
    /// The images' true labels, on views of this augmentation (the labelled baselines).
    Labels(Augment),
}

/// What every student of a run learns from.
#[derive(Clone)]
struct Lesson<'a> {
    /// The images views are made of.
    images: &'a Dataset,
    /// Their name (the transfer source), part of the views' identity.
    transfer_name: String,
    teacher: &'a Teacher,
    t_valid: &'a Mat,
    valid: &'a Dataset,
    eval_seed: u64,
}

impl Lesson<'_> {
    /// Trains `t` for `cfg.epochs` on fresh views of the images each epoch: from the
    /// teacher measured on each view, or from the true labels (the labelled baselines,
    /// the ordinary FF step). Writes `dir/epochs.csv.partial` after every epoch.
    fn train(
        &self,
        t: &mut FfTrainer,
        cfg: &TrainConfig,
        teaching: Teaching<'_>,
        (head_only, layer_gain): (usize, f32),
        dir: &Path,
        rep: &Reporter,
    ) -> Result<Vec<DistillEpoch>> {
        let seeds = cfg.seeds();
        let (what, augment) = match teaching {
            Teaching::Teacher(d) => ("distil", d.augment),
            Teaching::Labels(a) => ("labels", a),
        };
        let schedule = t.learner.config().schedule;
        let mut noise = stream(seeds.noise, "train");
        let mut negatives = stream(seeds.negatives, "negatives");
        let mut labels_rng = stream(seeds.negatives, "distill-labels");
        let view_seed = derive(cfg.seed, "views");
        let mut rows: Vec<DistillEpoch> = Vec::new();
        let mut images = Mat::zeros(0, 0);
        let mut targets = Mat::zeros(0, 0);
        let (mut pos, mut neg) = (Vec::new(), Vec::new());
        let t_start = Instant::now();
        let n = self.images.len();
        let positions: Vec<usize> = (0..n).collect();
        for epoch in 1..=cfg.epochs {
            let gain = schedule.gain(epoch, cfg.epochs);
            t.learner
                .set_layer_gain(if epoch <= head_only { 0.0 } else { layer_gain });
            let t0 = Instant::now();
            let order = epoch_order(n, seeds.order, epoch);
            let views = epoch_views(self.images, &order, &augment, view_seed, epoch);
            let teacher = match teaching {
                Teaching::Teacher(d) => Some(self.teacher.on_views(
                    &ViewKey {
                        transfer: self.transfer_name.clone(),
                        count: n,
                        jitter: augment.jitter,
                        mixup: augment.mixup.to_bits(),
                        view_seed,
                        order_seed: seeds.order,
                        epoch,
                        reads: d.teacher_reads,
                    },
                    &views,
                )?),
                Teaching::Labels(_) => None,
            };
            let bs = batches(&positions, cfg.batch);
            let bar = rep.bar(
                bs.len() as u64,
                &format!("{what} epoch {epoch}/{}", cfg.epochs),
            );
            let (mut kl_sum, mut ff_sum, mut dis, mut samples) = (0.0f64, 0.0f64, 0usize, 0usize);
            for idx in bs {
                let b = idx.len();
                if images.ncols() != b {
                    images = Mat::zeros(views.pixels(), b);
                    targets = Mat::zeros(CLASSES, b);
                }
                views.gather(idx, &mut images);
                let st = match (teaching, &teacher) {
                    (Teaching::Teacher(d), Some(tv)) if d.loss == DistillLoss::LayerKl => {
                        draw(
                            tv,
                            &views,
                            idx,
                            d,
                            &mut labels_rng,
                            &mut pos,
                            &mut neg,
                            &mut targets,
                        );
                        let sup = LayerKlSupervision {
                            targets: &targets,
                            layer_temperature: d.layer_temperature,
                            head_temperature: d.temperature,
                        };
                        t.learner.train_batch_layer_kl(
                            t.substrate.as_mut(),
                            &images,
                            &sup,
                            gain,
                            &mut noise,
                        )
                    }
                    (Teaching::Teacher(d), Some(tv)) => {
                        draw(
                            tv,
                            &views,
                            idx,
                            d,
                            &mut labels_rng,
                            &mut pos,
                            &mut neg,
                            &mut targets,
                        );
                        if d.negatives == NegativeSource::Student {
                            neg.clear();
                        }
                        let sup = SoftSupervision {
                            positives: &pos,
                            negatives: &neg,
                            head_targets: &targets,
                            head_temperature: d.temperature,
                        };
                        t.learner.train_batch_soft(
                            t.substrate.as_mut(),
                            &images,
                            &sup,
                            gain,
                            &mut negatives,
                            &mut noise,
                        )
                    }
                    _ => {
                        let labels = views.gather_labels(idx);
                        t.learner.train_batch(
                            t.substrate.as_mut(),
                            &images,
                            &labels,
                            gain,
                            &mut negatives,
                            &mut noise,
                        )
                    }
                }
                .map_err(|e| match e {
                    Error::Diverged(m) => Error::Diverged(format!("{what} epoch {epoch}: {m}")),
                    o => o,
                })?;
                kl_sum += st.head.loss_sum;
                ff_sum += st.mean_layer_loss() * st.samples as f64;
                dis += st.head.errors;
                samples += st.samples;
                bar.inc(1);
            }
            bar.finish_and_clear();
            let t_train = t0.elapsed().as_secs_f64();
            let t1 = Instant::now();
            let (vl, _) = distill::scores_of(
                &mut t.learner,
                t.substrate.as_mut(),
                self.valid,
                ScoreSource::Softmax,
                &mut indexed(self.eval_seed, 100 + epoch as u64),
            )?;
            let vf = fidelity(&vl, None, self.t_valid, self.valid.labels());
            let m = samples.max(1) as f64;
            let row = DistillEpoch {
                epoch,
                lr_gain: gain,
                train_kl: kl_sum / m,
                train_ff_loss: ff_sum / m,
                train_disagreement: dis as f64 / m,
                valid_error: vf.error,
                valid_agreement: vf.agreement,
                valid_kl: vf.kl,
                train_seconds: t_train,
                eval_seconds: t1.elapsed().as_secs_f64(),
                elapsed_seconds: t_start.elapsed().as_secs_f64(),
            };
            if !(row.train_kl.is_finite() && row.train_ff_loss.is_finite()) {
                return Err(Error::Diverged(format!(
                    "{what} epoch {epoch}: training loss is not finite"
                )));
            }
            rep.line(&format!(
                "{what} epoch {epoch:>3}/{}: head loss {:.4}  FF loss {:.4}  valid err {:.2}%  agreement {:.2}%  ({t_train:.1}s)",
                cfg.epochs,
                row.train_kl,
                row.train_ff_loss,
                100.0 * row.valid_error,
                100.0 * row.valid_agreement
            ));
            rows.push(row);
            write_csv(&dir.join(PARTIAL), &rows)?;
        }
        t.learner.set_layer_gain(1.0);
        Ok(rows)
    }
}

/// Draws the positives, negatives and head targets of the views `idx` from the teacher's
/// scores on them (`teacher`, 10 × views; labels of `views` mixed in with `hard_weight`).
#[allow(clippy::too_many_arguments)]
fn draw(
    teacher: &Mat,
    views: &Dataset,
    idx: &[usize],
    d: &DistillConfig,
    rng: &mut crate::rng::Rng,
    pos: &mut Vec<usize>,
    neg: &mut Vec<usize>,
    targets: &mut Mat,
) {
    pos.clear();
    neg.clear();
    for (j, &i) in idx.iter().enumerate() {
        let z = teacher.column(i);
        let p1 = if d.positive_temperature > 0.0 {
            softmax_t(z.as_slice(), d.positive_temperature)
        } else {
            let mut top = [0.0f32; CLASSES];
            top[distill::argmax(z.as_slice())] = 1.0;
            top
        };
        let mut pt = softmax_t(z.as_slice(), d.temperature);
        let positive = if !d.unlabelled && d.hard_weight > 0.0 {
            let truth = views.label(i);
            pt = mix_hard(&pt, truth, d.hard_weight);
            sample_label(&mix_hard(&p1, truth, d.hard_weight), rng)
        } else {
            sample_label(&p1, rng)
        };
        pos.push(positive);
        neg.push(sample_wrong(&pt, positive, rng));
        targets.column_mut(j).copy_from_slice(&pt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::SyntheticConfig;
    use crate::data::{DataSource, DatasetKind};
    use crate::train::RunOptions;
    use crate::train::checkpoint;

    fn tiny_data() -> Splits {
        crate::data::load(
            DatasetKind::Synthetic,
            &DataSource {
                synthetic: SyntheticConfig {
                    seed: 3,
                    train: 3000,
                    valid: 300,
                    test: 400,
                },
                ..Default::default()
            },
        )
        .unwrap()
    }

    /// `run` with a teacher of its own.
    fn run_one(
        s: &DistillSettings,
        t: &TeacherCheckpoint,
        data: &Splits,
        out: &Path,
        shared: Option<&Baselines>,
    ) -> Result<DistillResults> {
        let teach = Teacher::new(t, s.distill.source)?;
        run(s, t, &teach, data, out, &Reporter::quiet(), shared)
    }

    /// A small FF teacher trained on `preset` #1, as a checkpoint held in memory.
    fn teacher(preset: &str, data: &Splits, epochs: usize) -> TeacherCheckpoint {
        teacher_of(Algo::Ff, Some(preset), data, epochs)
    }

    /// A small teacher trained by `algo` on `preset` #1 (None: digital).
    fn teacher_of(
        algo: Algo,
        preset: Option<&str>,
        data: &Splits,
        epochs: usize,
    ) -> TeacherCheckpoint {
        let mut cfg = TrainConfig {
            layers: crate::train::layers::dense(&[64, 64]),
            epochs,
            eval_every: 0,
            chip: preset.map(|p| ChipConfig::from_source(p, 1, 1.0).unwrap()),
            ..TrainConfig::for_algo(algo)
        };
        if let crate::learn::OptimizerConfig::Sgd { lr, .. } = &mut cfg.ff.optimizer {
            *lr = 3e-3;
        }
        let mut t = crate::train::trainers::build(&cfg).unwrap();
        crate::train::run_with(
            &cfg,
            t.as_mut(),
            data,
            &RunOptions {
                out: None,
                reporter: Reporter::quiet(),
                checkpoint: false,
                count: true,
            },
        )
        .unwrap();
        let id = t.substrate_id();
        TeacherCheckpoint {
            meta: checkpoint::CheckpointMeta {
                format: checkpoint::FORMAT,
                mortal_version: String::new(),
                config: cfg,
                substrate_kind: id.kind,
                substrate_identity: id.identity,
                tensors_md5: None,
                sealed: false,
            },
            tensors: t.tensors(),
        }
    }

    fn settings(
        t: &TeacherCheckpoint,
        preset: &str,
        seed: u64,
        transfer: usize,
    ) -> DistillSettings {
        let chip = ChipConfig::from_source(preset, seed, 1.0).unwrap();
        DistillSettings {
            teacher: PathBuf::from("in-memory"),
            transfer,
            source_images: TransferSource::Train,
            baselines: BaselineSet::Basic,
            distill: DistillConfig {
                unlabelled: true,
                positive_temperature: 0.0,
                ..Default::default()
            },
            goodness: false,
            min_samples: 0,
            student: student_config(&t.meta.config, chip, 10, 1, transfer),
        }
    }

    /// On the ideal preset, the teacher's conductances put onto another ideal chip compute
    /// exactly what the teacher computed, whatever trained it (a digital backprop teacher
    /// is deployed onto the ideal chip, which is exact too).
    #[test]
    fn copying_onto_an_ideal_chip_reproduces_the_teacher_exactly() {
        let data = tiny_data();
        for (algo, preset) in [
            (Algo::Ff, Some("ideal")),
            (Algo::BpAnalog, Some("ideal")),
            (Algo::BpDeploy, Some("ideal")),
            (Algo::Bp, None),
        ] {
            let t = teacher_of(algo, preset, &data, 1);
            let s = settings(&t, "ideal", 2, 500);
            let mut teach = t.restore().unwrap();
            let (mut copy, _) = t.copy_onto(&s.student, &mut stream(1, "program")).unwrap();
            let ff = algo == Algo::Ff;
            let a = teach
                .scores(&data.test, ff, &mut stream(5, "eval"))
                .unwrap();
            let b = copy.scores(&data.test, ff, &mut stream(5, "eval")).unwrap();
            let diff =
                a.0.iter()
                    .zip(b.0.iter())
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0f32, f32::max);
            assert!(diff < 1e-4, "{algo}: max logit difference {diff}");
            assert_eq!(b.1.is_some(), ff, "{algo}: goodness only for FF");
            let f = against(b, &data.test, &a.0);
            assert_eq!(f.agreement, 1.0, "{algo}");
            assert!(f.kl < 1e-6, "{algo}: KL {}", f.kl);
        }
    }

    /// A backprop teacher (analog SGD on a ReRAM chip) is distilled into an FF student on
    /// another ReRAM chip; only the softmax source exists for it.
    #[test]
    fn a_backprop_teacher_is_distilled_into_an_ff_student() {
        let data = tiny_data();
        let t = teacher_of(Algo::BpAnalog, Some("reram"), &data, 3);
        let mut s = settings(&t, "reram", 2, 3000);
        if let crate::learn::OptimizerConfig::Sgd { lr, .. } = &mut s.student.ff.optimizer {
            *lr = 3e-3;
        }
        assert_eq!(s.student.algo, Algo::Ff);
        let dir = tempfile::tempdir().unwrap();
        let r = run_one(&s, &t, &data, dir.path(), None).unwrap();
        for v in [
            r.test_error,
            r.agreement,
            r.copy_agreement,
            r.scratch_agreement.unwrap(),
        ] {
            assert!((0.0..=1.0).contains(&v), "{r:?}");
        }
        eprintln!("{r:?}");
        assert!(r.agreement > 0.5, "agreement {}", r.agreement);
        assert!(r.copy_test_error_goodness.is_none());
        s.distill.source = ScoreSource::Goodness;
        let e = run_one(&s, &t, &data, dir.path(), None).unwrap_err();
        assert!(
            e.to_string().contains("only a Forward-Forward teacher"),
            "{e}"
        );
    }

    /// Distilling a harsh-chip teacher into a harsh chip with another seed beats copying
    /// its conductances there, by a wide margin, without reading a single label.
    #[test]
    fn distillation_into_another_harsh_chip_beats_copying() {
        let data = tiny_data();
        let t = teacher("harsh", &data, 10);
        let s = settings(&t, "harsh", 2, 3000);
        let dir = tempfile::tempdir().unwrap();
        let r = run_one(&s, &t, &data, dir.path(), None).unwrap();
        eprintln!(
            "teacher {:.3}; distill err {:.3} agree {:.3} kl {:.3}; copy err {:.3} agree {:.3} \
             kl {:.3}; scratch err {:.3} agree {:.3}",
            r.teacher_test_error,
            r.test_error,
            r.agreement,
            r.kl,
            r.copy_test_error,
            r.copy_agreement,
            r.copy_kl,
            r.scratch_test_error.unwrap(),
            r.scratch_agreement.unwrap()
        );
        assert!(
            r.agreement > r.copy_agreement + 0.1,
            "distill agreement {} vs copy {}",
            r.agreement,
            r.copy_agreement
        );
        assert!(r.kl < r.copy_kl);
        for f in [
            "results.json",
            "epochs.csv",
            "scratch/epochs.csv",
            "checkpoint.json",
        ] {
            assert!(dir.path().join(f).exists(), "{f}");
        }
    }

    /// Students that differ only in their objective share one measurement of the
    /// baselines: given a sibling's baselines, a run reports exactly what measuring them
    /// itself gives, and its distilled student is unchanged; a different score source is
    /// a different key.
    #[test]
    fn shared_baselines_equal_measured_ones() {
        let data = tiny_data();
        let t = teacher("harsh", &data, 2);
        let a = settings(&t, "harsh", 2, 500);
        let mut b = a.clone();
        b.distill.loss = DistillLoss::LayerKl;
        b.distill.layer_temperature = 5.0;
        assert_eq!(a.baseline_key(), b.baseline_key());
        let mut c = a.clone();
        c.distill.source = ScoreSource::Goodness;
        assert_ne!(a.baseline_key(), c.baseline_key());

        let quiet = Reporter::quiet();
        let dir = tempfile::tempdir().unwrap();
        let teach = Teacher::new(&t, a.distill.source).unwrap();
        let ra = run(&a, &t, &teach, &data, &dir.path().join("a"), &quiet, None).unwrap();
        let measured = run(&b, &t, &teach, &data, &dir.path().join("b1"), &quiet, None).unwrap();
        let shared = ra.baselines("a");
        let reused = run(
            &b,
            &t,
            &teach,
            &data,
            &dir.path().join("b2"),
            &quiet,
            Some(&shared),
        )
        .unwrap();
        assert_eq!(measured.baselines("b1").copy, shared.copy);
        assert_eq!(measured.baselines("b1").scratch, shared.scratch);
        assert_eq!(reused.baselines("b2"), shared);
        assert_eq!(reused.baselines_from.as_deref(), Some("a"));
        assert_eq!(measured.baselines_from, None);
        assert_eq!(
            (reused.test_error, reused.agreement, reused.kl),
            (measured.test_error, measured.agreement, measured.kl)
        );
        assert!(dir.path().join("b1/scratch/epochs.csv").exists());
        assert!(!dir.path().join("b2/scratch").exists());
    }

    /// On the ideal chip the teacher's copy computes what the teacher computes, so a
    /// student started from it and trained only at its head for one epoch agrees with the
    /// teacher on (nearly) every test image; from scratch it does not.
    #[test]
    fn a_copy_initialised_student_on_an_ideal_chip_starts_at_its_teacher() {
        let data = tiny_data();
        let t = teacher("ideal", &data, 3);
        let mut s = settings(&t, "ideal", 2, 1000);
        s.student.epochs = 1;
        s.distill.head_epochs = 1;
        s.distill.augment = Augment::NONE;
        s.baselines = BaselineSet::Full;
        let dir = tempfile::tempdir().unwrap();
        let r = run_one(&s, &t, &data, dir.path(), None).unwrap();
        assert_eq!(r.init, Init::Copy);
        assert_eq!(
            r.teacher_self_agreement,
            Some(1.0),
            "the ideal chip has no noise"
        );
        assert_eq!(r.copy_agreement, 1.0);
        assert!(
            r.agreement >= 0.99,
            "copy + head: agreement {}",
            r.agreement
        );
        assert_eq!(r.other_init, Some(Init::Scratch));
        assert!(r.other_init_agreement.unwrap() < r.agreement);
        assert!(r.copy_labels_test_error.is_some());
        for f in [
            "other-init/epochs.csv",
            "copy-labels/epochs.csv",
            "scratch/epochs.csv",
        ] {
            assert!(dir.path().join(f).exists(), "{f}");
        }
    }

    #[test]
    fn copy_init_needs_an_ff_teacher_of_the_students_shape() {
        let data = tiny_data();
        let t = teacher("ideal", &data, 1);
        let s = settings(&t, "harsh", 2, 100);
        let tc = &t.meta.config;
        assert_eq!(
            resolve_init(Init::Auto, tc, &s.student).unwrap(),
            Init::Copy
        );
        let mut other = s.student.clone();
        other.layers = crate::train::layers::dense(&[48, 64]);
        assert_eq!(resolve_init(Init::Auto, tc, &other).unwrap(), Init::Scratch);
        assert_eq!(
            resolve_init(Init::Scratch, tc, &s.student).unwrap(),
            Init::Scratch
        );
        let e = resolve_init(Init::Copy, tc, &other).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(msg.contains("64, 64") && msg.contains("48, 64"), "{msg}");
        let bp = teacher_of(Algo::Bp, None, &data, 1);
        let e = resolve_init(Init::Copy, &bp.meta.config, &s.student).unwrap_err();
        assert!(e.to_string().contains("not a Forward-Forward"), "{e}");
    }

    /// Students that see the same views (same master seed, transfer and augmentation) are
    /// taught by one measurement of the teacher per epoch; its sharing changes nothing.
    #[test]
    fn a_fleet_shares_the_teachers_measurement_of_each_view() {
        let data = tiny_data();
        let t = teacher("harsh", &data, 1);
        let quiet = Reporter::quiet();
        let dir = tempfile::tempdir().unwrap();
        let mut a = settings(&t, "harsh", 2, 300);
        a.student.epochs = 2;
        let mut b = settings(&t, "harsh", 3, 300);
        b.student.epochs = 2;
        let teach = Teacher::new(&t, a.distill.source).unwrap();
        let ra = run(&a, &t, &teach, &data, &dir.path().join("a"), &quiet, None).unwrap();
        assert_eq!(teach.view_measurements(), 2, "one per epoch");
        run(&b, &t, &teach, &data, &dir.path().join("b"), &quiet, None).unwrap();
        assert_eq!(teach.view_measurements(), 2, "the second chip reuses them");
        let alone = run_one(&a, &t, &data, &dir.path().join("a2"), None).unwrap();
        assert_eq!(
            (alone.test_error, alone.agreement, alone.kl),
            (ra.test_error, ra.agreement, ra.kl)
        );
    }

    /// A student with no images of its own: noise and hybrids of a few seed images,
    /// labelled by the teacher only; only hybrids have a labelled baseline (their seeds).
    #[test]
    fn students_learn_from_noise_and_from_hybrids_of_a_few_images() {
        let data = tiny_data();
        let t = teacher("harsh", &data, 2);
        let dir = tempfile::tempdir().unwrap();
        for (src, labelled) in [
            (TransferSource::Noise, false),
            (TransferSource::Hybrid { seeds: 10 }, true),
        ] {
            let mut s = settings(&t, "harsh", 2, 400);
            s.student.epochs = 2;
            s.source_images = src.clone();
            let out = dir.path().join(src.name().replace(':', "-"));
            let r = run_one(&s, &t, &data, &out, None).unwrap();
            assert!(r.unlabelled, "{src:?}");
            assert_eq!(r.transfer_source, src.name());
            assert_eq!(r.scratch_test_error.is_some(), labelled, "{src:?}");
            assert!((0.0..=1.0).contains(&r.test_error));
        }
    }

    #[test]
    fn recovered_is_reported_only_where_scratch_trails_the_teacher() {
        assert_eq!(recovered(None, 0.1, 0.05), None);
        assert_eq!(recovered(Some(0.055), 0.05, 0.05), None);
        let r = recovered(Some(0.15), 0.06, 0.05).unwrap();
        assert!((r - 0.9).abs() < 1e-12, "{r}");
    }

    #[test]
    fn student_epochs_cover_the_minimum_samples() {
        assert_eq!(student_epochs(5, 0, 1000), 5);
        assert_eq!(student_epochs(5, 50_000, 1000), 50);
        assert_eq!(student_epochs(5, 50_000, 3000), 17);
        assert_eq!(student_epochs(5, 50_000, 50_000), 5);
    }
}
