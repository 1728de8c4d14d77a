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

use std::path::Path;
use std::time::Instant;

use super::config::{Algo, ChipConfig, TrainConfig};
use super::distill_lesson::{Lesson, Teaching};
pub use super::distill_results::*;
use super::distill_teacher::ff_scores;
pub use super::distill_teacher::{
    Net, Teacher, TeacherCheckpoint, ViewKey, check_source, copy_init_refusal, ff_trainer,
    load_teacher, resolve_init,
};
use super::trainers::FfTrainer;
use crate::data::{Dataset, Splits};
use crate::error::{Error, Result};
use crate::fsutil::{create_dir, write_json};
use crate::learn::distill::{
    self, Augment, DEFAULT_HINT_WEIGHT, DistillConfig, DistillLoss, Fidelity, Init, TransferSource,
    fidelity, transfer_images,
};
use crate::linalg::Mat;
use crate::progress::Reporter;
use crate::rng::{derive, indexed, stream};

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

/// Reads of the teacher averaged into its *function* on the test set (its prediction
/// with its read noise averaged out), which `function_agreement` compares with.
pub const FUNCTION_READS: usize = 8;

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
    /// The hints' weight β in effect (0: none).
    hint_weight: f32,
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
        let refusal = hints_refusal(&ckpt.meta.config, &s.student);
        let hint_weight = match (s.distill.hint_weight, refusal) {
            (Some(beta), Some(why)) if beta > 0.0 => {
                return Err(Error::param("hint-weight", beta, why));
            }
            (Some(beta), _) => beta,
            (None, None) if s.distill.loss == DistillLoss::LayerKl => DEFAULT_HINT_WEIGHT,
            (None, _) => 0.0,
        };
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
            hint_weight,
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

/// Why a student cannot take hints from the teacher (`None`: it can): hints are the
/// teacher's FF layer activities, one target per student unit.
fn hints_refusal(teacher: &TrainConfig, student: &TrainConfig) -> Option<String> {
    let shape = |c: &TrainConfig| format!("{} {}", c.algo, super::layers::display(&c.layers));
    if teacher.algo != Algo::Ff {
        Some(format!(
            "hints need a Forward-Forward teacher; the teacher is {}",
            shape(teacher)
        ))
    } else if teacher.layers != student.layers {
        Some(format!(
            "hints need the teacher's widths: teacher {}, student {}",
            shape(teacher),
            shape(student)
        ))
    } else {
        None
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
    let t_function = teacher.on_set_mean("test", &data.test, FUNCTION_READS)?;
    let teacher_function = fidelity(&t_test, None, &t_function, data.test.labels());
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

    // The student, taught with the settings in effect (hints resolved).
    let taught = DistillConfig {
        hint_weight: Some(plan.hint_weight),
        ..s.distill.clone()
    };
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
        Teaching::Teacher(&taught),
        head_only(plan.init),
        out,
        rep,
    )?;
    let train_seconds: f64 = rows.iter().map(|r| r.train_seconds).sum();
    let valid_error = rows.last().map_or(f64::NAN, |r| r.valid_error);
    let scores = ff_scores(
        &mut student,
        &data.test,
        s.goodness,
        &mut indexed(eval_seed, 3),
    )?;
    let function_agreement = fidelity(&scores.0, None, &t_function, data.test.labels()).agreement;
    let f = against(scores, &data.test, &t_test);
    report(rep, &format!("distil (from {})", plan.init.name()), &f);
    rep.line(&format!(
        "distil: agreement with the teacher's function (mean of {FUNCTION_READS} reads) {:.2}% \
         (one teacher read: {:.2}%)",
        100.0 * function_agreement,
        100.0 * teacher_function.agreement
    ));
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
                Teaching::Teacher(&taught),
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
        teacher_function_agreement: Some(teacher_function.agreement),
        student_chip: chip.source.clone(),
        student_seed: chip.chip_seed,
        variation: chip.variation,
        transfer: s.transfer,
        transfer_source: s.source_images.name(),
        unlabelled: s.distill.unlabelled || !s.source_images.labelled(),
        temperature: s.distill.temperature,
        source: s.distill.source,
        hard_weight: s.distill.hard_weight,
        hint_weight: plan.hint_weight,
        init: plan.init,
        test_error: f.error,
        test_error_goodness: f.error_goodness,
        agreement: f.agreement,
        function_agreement: Some(function_agreement),
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
pub(super) const PARTIAL: &str = "epochs.csv.partial";
#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::SyntheticConfig;
    use crate::data::{DataSource, DatasetKind};
    use crate::learn::distill::{DistillConfig, DistillLoss, ScoreSource};
    use crate::train::RunOptions;
    use crate::train::checkpoint;
    use std::path::PathBuf;

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
