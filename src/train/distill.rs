//! `mortal distill`: move a trained network (the teacher, on its chip; Forward-Forward or
//! any backprop variant) to another chip (the student, trained in situ by FF), and compare
//! with the two baselines, in one run:
//! * **copy**: the teacher's conductances (or, for a digital teacher, its weights,
//!   programmed) put onto the student chip, evaluated as they are;
//! * **scratch**: FF from scratch on the student chip with the transfer images' true labels;
//! * **distill**: FF in situ on the student chip, supervised by the teacher's probabilities
//!   (see [`crate::learn::distill`]).
//!
//! Writes `results.json` (student `test_error`, `agreement`, `kl`, the same for `copy_*` and
//! `scratch_*`, the teacher's error, seeds and the full configuration), `epochs.csv` (the
//! distilled student, one row per epoch), `scratch/` (the scratch baseline's own run files)
//! and the student's checkpoint. Sweeps of students are in [`super::distill_sweep`]; there,
//! students that differ only in their objective share one measurement of the baselines
//! ([`Baselines`], `baselines_from` in `results.json`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::checkpoint;
use super::config::{Algo, ChipConfig, Seeds, TrainConfig};
use super::trainers::{FfTrainer, SubstrateId, Trainer};
use super::{batches, epoch_order};
use crate::data::{CLASSES, Splits};
use crate::error::{Error, Result};
use crate::fsutil::{create_dir, write_csv, write_json};
use crate::learn::distill::{
    self, DistillConfig, DistillLoss, Fidelity, ScoreSource, fidelity, mix_hard, sample_label,
    sample_wrong, softmax_t,
};
use crate::learn::ff::{FfLearner, LayerKlSupervision, SoftSupervision};
use crate::linalg::Mat;
use crate::progress::Reporter;
use crate::rng::{derive, indexed, stream};
use crate::substrate::SubstrateState;
use crate::tensor;

/// Everything that defines one distillation run (serialised into `results.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillSettings {
    /// Checkpoint directory of the teacher (a `mortal train --algo ff` run).
    pub teacher: PathBuf,
    /// Transfer set: the first N training images.
    pub transfer: usize,
    /// Student objective.
    pub distill: DistillConfig,
    /// Also evaluate goodness per label on the test set (11 passes per image).
    pub goodness: bool,
    /// Minimum number of training samples a student sees: its epochs are
    /// `max(epochs, ceil(min_samples / transfer))` (0 = exactly `epochs`).
    pub min_samples: usize,
    /// The student's training run (teacher's shape and FF settings, the student chip, its
    /// epochs and master seed, `train_limit` = transfer). Used as is by the scratch baseline.
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
    pub student_chip: String,
    /// Seed of the student chip instance.
    pub student_seed: u64,
    pub variation: f64,
    /// Transfer images (first N of the training set).
    pub transfer: usize,
    pub unlabelled: bool,
    pub temperature: f32,
    pub source: ScoreSource,
    pub hard_weight: f32,
    /// Distilled student: test error of its softmax head, and by goodness.
    pub test_error: f64,
    pub test_error_goodness: Option<f64>,
    /// Fraction of test images where the student's top-1 equals the teacher's.
    pub agreement: f64,
    pub agreement_goodness: Option<f64>,
    /// Mean KL(teacher ‖ student) on the test set, nats, temperature 1.
    pub kl: f64,
    pub copy_test_error: f64,
    pub copy_test_error_goodness: Option<f64>,
    pub copy_agreement: f64,
    pub copy_agreement_goodness: Option<f64>,
    pub copy_kl: f64,
    /// How the copy was made (the substrate's note).
    pub copy_note: Option<String>,
    pub scratch_test_error: f64,
    pub scratch_test_error_goodness: Option<f64>,
    pub scratch_agreement: f64,
    pub scratch_agreement_goodness: Option<f64>,
    pub scratch_kl: f64,
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

/// The copy and scratch baselines of a student. They do not depend on the student's own
/// objective, so students that differ only in it (e.g. the loss) share one measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct Baselines {
    pub copy: Fidelity,
    pub copy_note: Option<String>,
    pub scratch: Fidelity,
    /// The student run they were measured in.
    pub from: String,
}

impl DistillSettings {
    /// These settings with every objective field the baselines do not read reset to its
    /// default (only the teacher's score `source` is kept): students with equal keys have
    /// identical copy and scratch baselines.
    pub fn baseline_key(&self) -> DistillSettings {
        DistillSettings {
            distill: DistillConfig {
                source: self.distill.source,
                ..DistillConfig::default()
            },
            ..self.clone()
        }
    }
}

impl DistillResults {
    /// This run's baselines; `name` is its run's name, used when it measured them itself.
    pub fn baselines(&self, name: &str) -> Baselines {
        let f = |error, error_goodness, agreement, agreement_goodness, kl| Fidelity {
            error,
            error_goodness,
            agreement,
            agreement_goodness,
            kl,
        };
        Baselines {
            copy: f(
                self.copy_test_error,
                self.copy_test_error_goodness,
                self.copy_agreement,
                self.copy_agreement_goodness,
                self.copy_kl,
            ),
            copy_note: self.copy_note.clone(),
            scratch: f(
                self.scratch_test_error,
                self.scratch_test_error_goodness,
                self.scratch_agreement,
                self.scratch_agreement_goodness,
                self.scratch_kl,
            ),
            from: self
                .baselines_from
                .clone()
                .unwrap_or_else(|| name.to_string()),
        }
    }
}

/// A teacher loaded from its checkpoint.
pub struct TeacherCheckpoint {
    pub meta: checkpoint::CheckpointMeta,
    pub tensors: Vec<tensor::Tensor>,
}

/// Reads a teacher checkpoint (a network trained by any algorithm, on a chip or not).
pub fn load_teacher(dir: &Path) -> Result<TeacherCheckpoint> {
    if !dir.is_dir() {
        return Err(Error::artifact(
            dir,
            "teacher checkpoint directory not found",
        ));
    }
    let (meta, tensors) = checkpoint::load(dir)?;
    meta.config.validate()?;
    Ok(TeacherCheckpoint { meta, tensors })
}

/// Checks that a teacher trained by `algo` has the scores `source` names: goodness
/// exists only for Forward-Forward teachers.
pub fn check_source(algo: Algo, source: ScoreSource) -> Result<()> {
    if algo != Algo::Ff && source == ScoreSource::Goodness {
        return Err(Error::param(
            "source",
            source.name(),
            format!(
                "only a Forward-Forward teacher has goodness scores (this one is {algo}); use softmax"
            ),
        ));
    }
    Ok(())
}

/// A trained network whose outputs are compared with the teacher's: a Forward-Forward
/// network (softmax-head logits, and goodness per label on request) or a network of
/// another algorithm (its output layer).
pub enum Net {
    Ff(Box<FfTrainer>),
    Other(Box<dyn Trainer>),
}

impl Net {
    /// (output logits, goodness log-odds when `goodness` is asked for and the network is
    /// FF), each classes × n, for every image of `data`.
    pub fn scores(
        &mut self,
        data: &crate::data::Dataset,
        goodness: bool,
        noise: &mut crate::rng::Rng,
    ) -> Result<(Mat, Option<Mat>)> {
        match self {
            Net::Ff(t) => ff_scores(t, data, goodness, noise),
            Net::Other(t) => Ok((t.logits(data, noise)?, None)),
        }
    }

    /// The teacher's output distribution's scores by `source` (goodness: FF only; callers
    /// check with [`check_source`]).
    fn output(
        &mut self,
        data: &crate::data::Dataset,
        source: ScoreSource,
        noise: &mut crate::rng::Rng,
    ) -> Result<Mat> {
        match self {
            Net::Ff(t) => Ok(distill::pick(
                distill::scores_of(&mut t.learner, t.substrate.as_mut(), data, source, noise)?,
                source,
            )),
            Net::Other(t) => {
                debug_assert_eq!(source, ScoreSource::Softmax, "see check_source");
                t.logits(data, noise)
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Net::Ff(t) => t.substrate.describe(),
            Net::Other(t) => t.substrate(),
        }
    }
}

/// A Forward-Forward trainer for `cfg` (the learner and its substrate, built as
/// `mortal train` builds them).
pub fn ff_trainer(cfg: &TrainConfig) -> Result<FfTrainer> {
    let topology = cfg.ff_topology()?;
    let learner =
        FfLearner::with_geometry(cfg.ff.clone(), topology.clone(), cfg.dataset.geometry())?;
    let substrate = super::trainers::build_substrate(cfg, topology)?;
    Ok(FfTrainer { learner, substrate })
}

impl TeacherCheckpoint {
    fn saved_id(&self) -> SubstrateId {
        SubstrateId {
            kind: self.meta.substrate_kind.clone(),
            identity: self.meta.substrate_identity.clone(),
        }
    }

    /// The teacher on its own substrate.
    pub fn restore(&self) -> Result<Net> {
        if self.meta.config.algo == Algo::Ff {
            let mut t = ff_trainer(&self.meta.config)?;
            t.restore(&self.tensors, &self.saved_id())?;
            return Ok(Net::Ff(Box::new(t)));
        }
        let mut t = super::trainers::build(&self.meta.config)?;
        t.restore(&self.tensors, &self.saved_id())?;
        Ok(Net::Other(t))
    }

    /// The copy baseline: the teacher's state put onto the student chip of `cfg` (a chip
    /// teacher's conductances are loaded into the student chip, whose own devices then
    /// apply; a digital teacher's weights are programmed, write-and-verify; a `bp-deploy`
    /// or `bp-hwa` teacher's digital weights are deployed afresh, as that algorithm does).
    /// The network keeps the teacher's algorithm.
    pub fn copy_onto(
        &self,
        cfg: &TrainConfig,
        noise: &mut crate::rng::Rng,
    ) -> Result<(Net, Option<String>)> {
        let chip = cfg.chip.clone();
        match self.meta.config.algo {
            Algo::Ff => {
                let (t, note) = self.copy_ff(cfg, noise)?;
                Ok((Net::Ff(Box::new(t)), note))
            }
            Algo::Bp => {
                // A digitally trained network goes onto a chip the bp-deploy way.
                let onto = TrainConfig {
                    chip,
                    ..self.meta.config.clone()
                };
                let t = super::bp_chip::deploy_digital(&onto, &self.tensors)?;
                let note = format!(
                    "the digital backprop teacher's weights deployed (write-and-verify) onto {}",
                    t.substrate()
                );
                Ok((Net::Other(t), Some(note)))
            }
            _ => {
                let onto = TrainConfig {
                    chip,
                    ..self.meta.config.clone()
                };
                let mut t = super::trainers::build(&onto)?;
                let note = t.restore(&self.tensors, &self.saved_id())?;
                Ok((Net::Other(t), note))
            }
        }
    }

    fn copy_ff(
        &self,
        cfg: &TrainConfig,
        noise: &mut crate::rng::Rng,
    ) -> Result<(FfTrainer, Option<String>)> {
        let mut t = ff_trainer(cfg)?;
        t.learner
            .restore(&tensor::with_prefix(&self.tensors, "ff/"))?;
        let subs = tensor::with_prefix(&self.tensors, "substrate/");
        let note = if self.meta.substrate_kind == "chip" && cfg.chip.is_some() {
            t.substrate.load_state(&SubstrateState {
                kind: self.meta.substrate_kind.clone(),
                identity: self.meta.substrate_identity.clone(),
                tensors: subs,
            })?
        } else {
            let topo = t.substrate.topology().clone();
            for l in 0..topo.layers() {
                let (i, o) = topo.dims(l);
                let w = tensor::to_mat(&subs, &format!("layer{l}.weight"), o, i)?;
                let b = tensor::find(&subs, &format!("layer{l}.bias"), &[o])?.to_vec();
                t.substrate.program(l, &w, &b, noise);
            }
            Some(format!(
                "weights of the {} teacher programmed onto {}",
                self.meta.substrate_kind,
                t.substrate.describe()
            ))
        };
        Ok((t, note))
    }
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

/// An FF network's (head logits, goodness log-odds if `goodness`) for `data`.
fn ff_scores(
    t: &mut FfTrainer,
    data: &crate::data::Dataset,
    goodness: bool,
    noise: &mut crate::rng::Rng,
) -> Result<(Mat, Option<Mat>)> {
    let source = if goodness {
        ScoreSource::Goodness
    } else {
        ScoreSource::Softmax
    };
    let (l, g) = distill::scores_of(&mut t.learner, t.substrate.as_mut(), data, source, noise)?;
    Ok((l, goodness.then_some(g)))
}

/// How scores from [`Net::scores`] compare with the teacher's outputs and the labels.
fn against(scores: (Mat, Option<Mat>), data: &crate::data::Dataset, teacher_out: &Mat) -> Fidelity {
    fidelity(&scores.0, scores.1.as_ref(), teacher_out, data.labels())
}

/// The test-set fidelity of an FF network trained here (scratch or student).
fn ff_fidelity(
    t: &mut FfTrainer,
    test: &crate::data::Dataset,
    goodness: bool,
    noise: &mut crate::rng::Rng,
    t_test: &Mat,
) -> Result<Fidelity> {
    Ok(against(ff_scores(t, test, goodness, noise)?, test, t_test))
}

/// The one-line report of a network's fidelity (`what`: copy, scratch, distill).
fn report(rep: &Reporter, what: &str, f: &Fidelity) {
    rep.line(&format!(
        "{what}: test error {:.2}%, agreement {:.2}%, KL {:.4} nats",
        100.0 * f.error,
        100.0 * f.agreement,
        f.kl
    ));
}

/// Runs copy, scratch and distillation for one student; writes into `out`. With `shared`
/// baselines (measured by a student with the same [`DistillSettings::baseline_key`]),
/// only the distillation runs.
pub fn run(
    s: &DistillSettings,
    teacher: &TeacherCheckpoint,
    data: &Splits,
    out: &Path,
    rep: &Reporter,
    shared: Option<&Baselines>,
) -> Result<DistillResults> {
    let start = Instant::now();
    s.distill.validate()?;
    check_source(teacher.meta.config.algo, s.distill.source)?;
    s.student.validate()?;
    let n_train = data.train.len();
    if s.transfer == 0 || s.transfer > n_train {
        return Err(Error::param(
            "transfer",
            s.transfer,
            format!("must be between 1 and the {n_train} training images"),
        ));
    }
    if data.valid.is_empty() || data.test.is_empty() {
        return Err(Error::param(
            "dataset",
            s.student.dataset,
            "validation and test sets must be non-empty",
        ));
    }
    let chip = s
        .student
        .chip
        .clone()
        .ok_or_else(|| Error::param("student-chip", "none", "the student needs a chip"))?;
    create_dir(out)?;
    super::manifest::unseal(out)?;
    let cfg = &s.student;
    let seeds = cfg.seeds();
    let source = s.distill.source;
    let t_soft = s.distill.temperature;
    let eval_seed = derive(seeds.noise, "distill-eval");
    let transfer = data.train.slice(0..s.transfer);

    // Teacher outputs: transfer, validation and test sets.
    let mut teacher_net = teacher.restore()?;
    let mut tnoise = stream(derive(seeds.noise, "teacher"), "scores");
    let mut teacher_out =
        |d: &crate::data::Dataset| -> Result<Mat> { teacher_net.output(d, source, &mut tnoise) };
    let t_transfer = teacher_out(&transfer)?;
    let t_valid = teacher_out(&data.valid)?;
    let t_test = teacher_out(&data.test)?;
    let teacher_test_error = distill::error_of(&t_test, data.test.labels());
    rep.line(&format!(
        "teacher ({}): test error {:.2}% by {}",
        teacher_net.describe(),
        100.0 * teacher_test_error,
        source.name()
    ));

    let lesson = Lesson {
        transfer: &transfer,
        teacher: &t_transfer,
        t_valid: &t_valid,
        valid: &data.valid,
        eval_seed,
    };
    let base = match shared {
        Some(b) => {
            rep.line(&format!(
                "copy: test error {:.2}%, scratch: test error {:.2}% (baselines of {})",
                100.0 * b.copy.error,
                100.0 * b.scratch.error,
                b.from
            ));
            b.clone()
        }
        None => baselines(s, teacher, data, &lesson, &t_test, out, rep)?,
    };

    // (c) Distillation.
    let mut student = ff_trainer(cfg)?;
    let rows = lesson.train(&mut student, cfg, Some(&s.distill), out, rep)?;
    let train_seconds: f64 = rows.iter().map(|r| r.train_seconds).sum();
    let valid_error = rows.last().map_or(f64::NAN, |r| r.valid_error);
    let f = ff_fidelity(
        &mut student,
        &data.test,
        s.goodness,
        &mut indexed(eval_seed, 3),
        &t_test,
    )?;
    report(rep, "distill", &f);
    super::save_checkpoint(out, cfg, &student)?;
    let tc = teacher.meta.config.chip.as_ref();
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
        student_chip: chip.source.clone(),
        student_seed: chip.chip_seed,
        variation: chip.variation,
        transfer: s.transfer,
        unlabelled: s.distill.unlabelled,
        temperature: t_soft,
        source,
        hard_weight: s.distill.hard_weight,
        test_error: f.error,
        test_error_goodness: f.error_goodness,
        agreement: f.agreement,
        agreement_goodness: f.agreement_goodness,
        kl: f.kl,
        copy_test_error: base.copy.error,
        copy_test_error_goodness: base.copy.error_goodness,
        copy_agreement: base.copy.agreement,
        copy_agreement_goodness: base.copy.agreement_goodness,
        copy_kl: base.copy.kl,
        copy_note: base.copy_note,
        scratch_test_error: base.scratch.error,
        scratch_test_error_goodness: base.scratch.error_goodness,
        scratch_agreement: base.scratch.agreement,
        scratch_agreement_goodness: base.scratch.agreement_goodness,
        scratch_kl: base.scratch.kl,
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

/// Measures the two baselines of a student: (a) the teacher copied onto the student chip,
/// (b) FF from scratch with the transfer images' labels (run files in `out/scratch/`).
fn baselines(
    s: &DistillSettings,
    teacher: &TeacherCheckpoint,
    data: &Splits,
    lesson: &Lesson,
    t_test: &Mat,
    out: &Path,
    rep: &Reporter,
) -> Result<Baselines> {
    let cfg = &s.student;
    let seeds = cfg.seeds();
    let eval_seed = lesson.eval_seed;
    // Baseline (a): copy.
    let mut copy_noise = stream(derive(seeds.noise, "copy"), "program");
    let (mut copy, copy_note) = teacher.copy_onto(cfg, &mut copy_noise)?;
    let copy_f = against(
        copy.scores(&data.test, s.goodness, &mut indexed(eval_seed, 1))?,
        &data.test,
        t_test,
    );
    report(rep, "copy", &copy_f);
    drop(copy);

    // Baseline (b): FF from scratch with the transfer images' labels.
    let mut scratch = ff_trainer(cfg)?;
    let scratch_dir = out.join("scratch");
    create_dir(&scratch_dir)?;
    lesson.train(&mut scratch, cfg, None, &scratch_dir, rep)?;
    let scratch_f = ff_fidelity(
        &mut scratch,
        &data.test,
        s.goodness,
        &mut indexed(eval_seed, 2),
        t_test,
    )?;
    report(rep, "scratch", &scratch_f);
    drop(scratch);
    finish_csv(&scratch_dir)?;
    Ok(Baselines {
        copy: copy_f,
        copy_note,
        scratch: scratch_f,
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

/// What every student of a run learns from.
struct Lesson<'a> {
    transfer: &'a crate::data::Dataset,
    /// Teacher output scores of the transfer images (10 × N).
    teacher: &'a Mat,
    t_valid: &'a Mat,
    valid: &'a crate::data::Dataset,
    eval_seed: u64,
}

impl Lesson<'_> {
    /// Trains `t` for `cfg.epochs` on the transfer set: from the teacher (`distill`) or
    /// from the true labels (`None`, the scratch baseline, the ordinary FF step). Writes
    /// `dir/epochs.csv.partial` after every epoch.
    fn train(
        &self,
        t: &mut FfTrainer,
        cfg: &TrainConfig,
        distill: Option<&DistillConfig>,
        dir: &Path,
        rep: &Reporter,
    ) -> Result<Vec<DistillEpoch>> {
        let seeds = cfg.seeds();
        let what = if distill.is_some() {
            "distill"
        } else {
            "scratch"
        };
        let schedule = t.learner.config().schedule;
        let mut noise = stream(seeds.noise, "train");
        let mut negatives = stream(seeds.negatives, "negatives");
        let mut labels_rng = stream(seeds.negatives, "distill-labels");
        let mut rows: Vec<DistillEpoch> = Vec::new();
        let mut images = Mat::zeros(0, 0);
        let mut targets = Mat::zeros(0, 0);
        let (mut pos, mut neg) = (Vec::new(), Vec::new());
        let t_start = Instant::now();
        let transfer = self.transfer;
        for epoch in 1..=cfg.epochs {
            let gain = schedule.gain(epoch, cfg.epochs);
            let order = epoch_order(transfer.len(), seeds.order, epoch);
            let bs = batches(&order, cfg.batch);
            let bar = rep.bar(
                bs.len() as u64,
                &format!("{what} epoch {epoch}/{}", cfg.epochs),
            );
            let t0 = Instant::now();
            let (mut kl_sum, mut ff_sum, mut dis, mut samples) = (0.0f64, 0.0f64, 0usize, 0usize);
            for idx in bs {
                let b = idx.len();
                if images.ncols() != b {
                    images = Mat::zeros(transfer.pixels(), b);
                    targets = Mat::zeros(CLASSES, b);
                }
                transfer.gather(idx, &mut images);
                let st = match distill {
                    None => {
                        let labels = transfer.gather_labels(idx);
                        t.learner.train_batch(
                            t.substrate.as_mut(),
                            &images,
                            &labels,
                            gain,
                            &mut negatives,
                            &mut noise,
                        )
                    }
                    Some(d) if d.loss == DistillLoss::LayerKl => {
                        self.draw(idx, d, &mut labels_rng, &mut pos, &mut neg, &mut targets);
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
                    Some(d) => {
                        self.draw(idx, d, &mut labels_rng, &mut pos, &mut neg, &mut targets);
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
        Ok(rows)
    }

    /// Draws the positives, negatives and head targets of the transfer images `idx`.
    fn draw(
        &self,
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
            let z = self.teacher.column(i);
            let p1 = if d.positive_temperature > 0.0 {
                softmax_t(z.as_slice(), d.positive_temperature)
            } else {
                let mut top = [0.0f32; CLASSES];
                top[distill::argmax(z.as_slice())] = 1.0;
                top
            };
            let mut pt = softmax_t(z.as_slice(), d.temperature);
            let positive = if !d.unlabelled && d.hard_weight > 0.0 {
                let truth = self.transfer.label(i);
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::SyntheticConfig;
    use crate::data::{DataSource, DatasetKind};
    use crate::train::RunOptions;

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
        let r = run(&s, &t, &data, dir.path(), &Reporter::quiet(), None).unwrap();
        for v in [
            r.test_error,
            r.agreement,
            r.copy_agreement,
            r.scratch_agreement,
        ] {
            assert!((0.0..=1.0).contains(&v), "{r:?}");
        }
        eprintln!("{r:?}");
        assert!(r.agreement > 0.5, "agreement {}", r.agreement);
        assert!(r.copy_test_error_goodness.is_none());
        s.distill.source = ScoreSource::Goodness;
        let e = run(&s, &t, &data, dir.path(), &Reporter::quiet(), None).unwrap_err();
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
        let r = run(&s, &t, &data, dir.path(), &Reporter::quiet(), None).unwrap();
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
            r.scratch_test_error,
            r.scratch_agreement
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
        let ra = run(&a, &t, &data, &dir.path().join("a"), &quiet, None).unwrap();
        let measured = run(&b, &t, &data, &dir.path().join("b1"), &quiet, None).unwrap();
        let shared = ra.baselines("a");
        let reused = run(&b, &t, &data, &dir.path().join("b2"), &quiet, Some(&shared)).unwrap();
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

    #[test]
    fn student_epochs_cover_the_minimum_samples() {
        assert_eq!(student_epochs(5, 0, 1000), 5);
        assert_eq!(student_epochs(5, 50_000, 1000), 50);
        assert_eq!(student_epochs(5, 50_000, 3000), 17);
        assert_eq!(student_epochs(5, 50_000, 50_000), 5);
    }
}
