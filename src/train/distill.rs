//! `mortal distill`: move a trained Forward-Forward network (the teacher, on its chip) to
//! another chip (the student), and compare with the two baselines, in one run:
//! * **copy**: the teacher's conductances (or, for a digital teacher, its weights,
//!   programmed) put onto the student chip, evaluated as they are;
//! * **scratch**: FF from scratch on the student chip with the transfer images' true labels;
//! * **distill**: FF in situ on the student chip, supervised by the teacher's probabilities
//!   (see [`crate::learn::distill`]).
//!
//! Writes `results.json` (student `test_error`, `agreement`, `kl`, the same for `copy_*` and
//! `scratch_*`, the teacher's error, seeds and the full configuration), `epochs.csv` (the
//! distilled student, one row per epoch), `scratch/` (the scratch baseline's own run files)
//! and the student's checkpoint. Sweeps of students are in [`super::distill_sweep`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::checkpoint;
use super::config::{Algo, ChipConfig, Seeds, TrainConfig};
use super::trainers::{FfTrainer, SubstrateId, Trainer};
use super::{batches, epoch_order};
use crate::data::{CLASSES, PIXELS, Splits};
use crate::error::{Error, Result};
use crate::fsutil::{create_dir, write_atomic, write_json};
use crate::learn::distill::{
    self, DistillConfig, Fidelity, ScoreSource, fidelity, mix_hard, sample_label, sample_wrong,
    softmax_t,
};
use crate::learn::ff::{FfLearner, SoftSupervision};
use crate::linalg::Mat;
use crate::progress::Reporter;
use crate::rng::{derive, indexed, stream};
use crate::substrate::{Activation, DigitalNet, Substrate, SubstrateState, Topology};
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
    pub layers: Vec<usize>,
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
    pub config: DistillSettings,
}

/// A teacher loaded from its checkpoint.
pub struct TeacherCheckpoint {
    pub meta: checkpoint::CheckpointMeta,
    pub tensors: Vec<tensor::Tensor>,
}

/// Reads a teacher checkpoint; it must be a Forward-Forward network.
pub fn load_teacher(dir: &Path) -> Result<TeacherCheckpoint> {
    if !dir.is_dir() {
        return Err(Error::artifact(
            dir,
            "teacher checkpoint directory not found",
        ));
    }
    let (meta, tensors) = checkpoint::load(dir)?;
    if meta.config.algo != Algo::Ff {
        return Err(Error::param(
            "teacher",
            dir.display(),
            format!(
                "the teacher was trained with {}; distillation needs an FF teacher \
                 (--algo ff)",
                meta.config.algo
            ),
        ));
    }
    meta.config.validate()?;
    Ok(TeacherCheckpoint { meta, tensors })
}

/// A Forward-Forward trainer for `cfg` (the learner and its substrate, built as
/// `mortal train` builds them).
pub fn ff_trainer(cfg: &TrainConfig) -> Result<FfTrainer> {
    let mut widths = vec![PIXELS];
    widths.extend_from_slice(&cfg.layers);
    let topology = Topology::uniform(widths, Activation::Relu)?;
    let learner = FfLearner::new(cfg.ff.clone(), topology.clone())?;
    let init = cfg.seeds().init;
    let substrate: Box<dyn Substrate> = match &cfg.chip {
        None => Box::new(DigitalNet::new(topology, init)),
        Some(chip) => Box::new(chip.build(topology, init)?),
    };
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
    pub fn restore(&self) -> Result<FfTrainer> {
        let mut t = ff_trainer(&self.meta.config)?;
        t.restore(&self.tensors, &self.saved_id())?;
        Ok(t)
    }

    /// The copy baseline: the teacher's state put onto the substrate of `cfg` (a chip
    /// teacher's conductances are loaded into the student chip, whose own devices then
    /// apply; a digital teacher's weights are programmed, write-and-verify).
    pub fn copy_onto(
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
    TrainConfig {
        epochs,
        seed,
        train_limit: Some(transfer),
        chip: Some(chip),
        ..teacher.clone()
    }
}

/// Epochs of a student with `transfer` images.
pub fn student_epochs(epochs: usize, min_samples: usize, transfer: usize) -> usize {
    epochs.max(min_samples.div_ceil(transfer.max(1)))
}

fn evaluate_against(
    t: &mut FfTrainer,
    with_goodness: bool,
    data: &crate::data::Dataset,
    teacher_out: &Mat,
    noise: &mut crate::rng::Rng,
) -> Result<Fidelity> {
    let (logits, goodness) = distill::scores_of(
        &mut t.learner,
        t.substrate.as_mut(),
        data,
        if with_goodness {
            ScoreSource::Goodness
        } else {
            ScoreSource::Softmax
        },
        noise,
    )?;
    let g = with_goodness.then_some(&goodness);
    Ok(fidelity(&logits, g, teacher_out, data.labels()))
}

pub(crate) fn write_csv<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r).map_err(|e| {
            Error::io(
                format!("cannot format {}", path.display()),
                std::io::Error::other(e),
            )
        })?;
    }
    let bytes = w.into_inner().map_err(|e| {
        Error::io(
            format!("cannot format {}", path.display()),
            std::io::Error::other(e.to_string()),
        )
    })?;
    write_atomic(path, &bytes)
}

/// Runs copy, scratch and distillation for one student; writes into `out`.
pub fn run(
    s: &DistillSettings,
    teacher: &TeacherCheckpoint,
    data: &Splits,
    out: &Path,
    rep: &Reporter,
) -> Result<DistillResults> {
    let start = Instant::now();
    s.distill.validate()?;
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
    let cfg = &s.student;
    let seeds = cfg.seeds();
    let source = s.distill.source;
    let t_soft = s.distill.temperature;
    let eval_seed = derive(seeds.noise, "distill-eval");
    let transfer = data.train.slice(0..s.transfer);

    // Teacher outputs: transfer, validation and test sets.
    let mut teacher_t = teacher.restore()?;
    let mut tnoise = stream(derive(seeds.noise, "teacher"), "scores");
    let mut teacher_out = |d: &crate::data::Dataset| -> Result<Mat> {
        let pair = distill::scores_of(
            &mut teacher_t.learner,
            teacher_t.substrate.as_mut(),
            d,
            source,
            &mut tnoise,
        )?;
        Ok(distill::pick(pair, source))
    };
    let t_transfer = teacher_out(&transfer)?;
    let t_valid = teacher_out(&data.valid)?;
    let t_test = teacher_out(&data.test)?;
    let teacher_test_error = distill::error_of(&t_test, data.test.labels());
    rep.line(&format!(
        "teacher ({}): test error {:.2}% by {}",
        teacher_t.substrate.describe(),
        100.0 * teacher_test_error,
        source.name()
    ));

    // Baseline (a): copy.
    let mut copy_noise = stream(derive(seeds.noise, "copy"), "program");
    let (mut copy, copy_note) = teacher.copy_onto(cfg, &mut copy_noise)?;
    let copy_f = evaluate_against(
        &mut copy,
        s.goodness,
        &data.test,
        &t_test,
        &mut indexed(eval_seed, 1),
    )?;
    rep.line(&format!(
        "copy: test error {:.2}%, agreement {:.2}%, KL {:.4} nats",
        100.0 * copy_f.error,
        100.0 * copy_f.agreement,
        copy_f.kl
    ));
    drop(copy);

    // Baseline (b): FF from scratch with the transfer images' labels.
    let mut scratch = ff_trainer(cfg)?;
    let scratch_dir = out.join("scratch");
    create_dir(&scratch_dir)?;
    let lesson = Lesson {
        transfer: &transfer,
        teacher: &t_transfer,
        t_valid: &t_valid,
        valid: &data.valid,
        eval_seed,
    };
    lesson.train(&mut scratch, cfg, None, &scratch_dir, rep)?;
    let scratch_f = evaluate_against(
        &mut scratch,
        s.goodness,
        &data.test,
        &t_test,
        &mut indexed(eval_seed, 2),
    )?;
    rep.line(&format!(
        "scratch: test error {:.2}%, agreement {:.2}%, KL {:.4} nats",
        100.0 * scratch_f.error,
        100.0 * scratch_f.agreement,
        scratch_f.kl
    ));
    drop(scratch);
    finish_csv(&scratch_dir)?;

    // (c) Distillation.
    let mut student = ff_trainer(cfg)?;
    let rows = lesson.train(&mut student, cfg, Some(&s.distill), out, rep)?;
    let train_seconds: f64 = rows.iter().map(|r| r.train_seconds).sum();
    let valid_error = rows.last().map_or(f64::NAN, |r| r.valid_error);
    let f = evaluate_against(
        &mut student,
        s.goodness,
        &data.test,
        &t_test,
        &mut indexed(eval_seed, 3),
    )?;
    rep.line(&format!(
        "distill: test error {:.2}%, agreement {:.2}%, KL {:.4} nats",
        100.0 * f.error,
        100.0 * f.agreement,
        f.kl
    ));
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
        copy_test_error: copy_f.error,
        copy_test_error_goodness: copy_f.error_goodness,
        copy_agreement: copy_f.agreement,
        copy_agreement_goodness: copy_f.agreement_goodness,
        copy_kl: copy_f.kl,
        copy_note,
        scratch_test_error: scratch_f.error,
        scratch_test_error_goodness: scratch_f.error_goodness,
        scratch_agreement: scratch_f.agreement,
        scratch_agreement_goodness: scratch_f.agreement_goodness,
        scratch_kl: scratch_f.kl,
        valid_error,
        train_seconds,
        total_seconds: start.elapsed().as_secs_f64(),
        test_samples: data.test.len(),
        threads: rayon::current_num_threads(),
        config: s.clone(),
    };
    write_json(&out.join("results.json"), &results)?;
    finish_csv(out)?;
    Ok(results)
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
                    images = Mat::zeros(PIXELS, b);
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
        let mut cfg = TrainConfig {
            layers: vec![64, 64],
            epochs,
            eval_every: 0,
            chip: Some(ChipConfig::from_source(preset, 1, 1.0).unwrap()),
            ..TrainConfig::default()
        };
        if let crate::learn::OptimizerConfig::Sgd { lr, .. } = &mut cfg.ff.optimizer {
            *lr = 3e-3;
        }
        let mut t = ff_trainer(&cfg).unwrap();
        crate::train::run_with(
            &cfg,
            &mut t,
            data,
            &RunOptions {
                out: None,
                reporter: Reporter::quiet(),
                checkpoint: false,
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
    /// exactly what the teacher computed.
    #[test]
    fn copying_onto_an_ideal_chip_reproduces_the_teacher_exactly() {
        let data = tiny_data();
        let t = teacher("ideal", &data, 1);
        let s = settings(&t, "ideal", 2, 500);
        let mut teach = t.restore().unwrap();
        let (mut copy, _) = t.copy_onto(&s.student, &mut stream(1, "program")).unwrap();
        let mut n1 = stream(5, "eval");
        let mut n2 = stream(5, "eval");
        let a = distill::scores_of(
            &mut teach.learner,
            teach.substrate.as_mut(),
            &data.test,
            ScoreSource::Goodness,
            &mut n1,
        )
        .unwrap();
        let b = distill::scores_of(
            &mut copy.learner,
            copy.substrate.as_mut(),
            &data.test,
            ScoreSource::Goodness,
            &mut n2,
        )
        .unwrap();
        let diff =
            a.0.iter()
                .zip(b.0.iter())
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max);
        assert!(diff < 1e-4, "max logit difference {diff}");
        let f = fidelity(&b.0, Some(&b.1), &a.0, data.test.labels());
        assert_eq!(f.agreement, 1.0);
        assert!(f.kl < 1e-6, "KL {}", f.kl);
    }

    /// Distilling a harsh-chip teacher into a harsh chip with another seed beats copying
    /// its conductances there, by a wide margin, without reading a single label.
    #[test]
    fn distillation_into_another_harsh_chip_beats_copying() {
        let data = tiny_data();
        let t = teacher("harsh", &data, 10);
        let s = settings(&t, "harsh", 2, 3000);
        let dir = tempfile::tempdir().unwrap();
        let r = run(&s, &t, &data, dir.path(), &Reporter::quiet()).unwrap();
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

    #[test]
    fn student_epochs_cover_the_minimum_samples() {
        assert_eq!(student_epochs(5, 0, 1000), 5);
        assert_eq!(student_epochs(5, 50_000, 1000), 50);
        assert_eq!(student_epochs(5, 50_000, 3000), 17);
        assert_eq!(student_epochs(5, 50_000, 50_000), 5);
    }
}
