//! Training runs: the epoch loop shared by every algorithm, per-epoch records, final test
//! evaluation, result files and checkpoints.

pub mod bp_chip;
pub mod checkpoint;
pub mod config;
pub mod distill;
mod distill_lesson;
pub mod distill_results;
pub mod distill_sweep;
pub mod distill_teacher;
pub mod layers;
pub mod manifest;
pub mod results;
pub mod resume;
pub mod trainers;

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::seq::SliceRandom;

pub use config::{Algo, ChipConfig, Seeds, TrainConfig};
pub use results::{EpochRecord, Errors, RunResults};
pub use trainers::{Streams, Trainer};

use crate::data::Splits;
use crate::error::{Error, Result};
use crate::fsutil::{create_dir, write_json};
use crate::linalg::Mat;
use crate::progress::Reporter;
use crate::rng::{derive, indexed, stream};
use crate::substrate::Ledger;

/// Where and how a run reports.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Output directory for `results.json`, `epochs.csv` and the checkpoint (None: write nothing).
    pub out: Option<PathBuf>,
    /// Progress reporting.
    pub reporter: Reporter,
    /// Save a checkpoint at the end.
    pub checkpoint: bool,
    /// Count operations and report the `cost` block (off: no counting and no `cost`;
    /// results are the same either way).
    pub count: bool,
}

/// Images of the inference-cost probe: the first ones of the test set, evaluated once
/// more by the run's method with the counters watching (its own noise stream; the
/// reported errors come from the full evaluation before it).
pub const COST_PROBE_IMAGES: usize = 100;

/// Name of the per-epoch file while a run is in progress (renamed when it completes, so
/// a finished run's files are never left half-replaced by a failed re-run).
const PARTIAL_EPOCHS: &str = "epochs.csv.partial";

/// The epoch's shuffled order of training samples (deterministic in seed and epoch).
pub fn epoch_order(n: usize, order_seed: u64, epoch: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut indexed(order_seed, epoch as u64));
    idx
}

/// Batches of an epoch: full batches only (the remainder is dropped, and reshuffled into
/// later epochs), or one batch of everything when there are fewer samples than a batch.
pub fn batches(order: &[usize], batch: usize) -> Vec<&[usize]> {
    if order.len() < batch {
        return vec![order];
    }
    order.chunks_exact(batch).collect()
}

/// Trains according to `cfg` on `data` and returns the results; writes files when
/// `opts.out` is set.
pub fn run(cfg: &TrainConfig, data: &Splits, opts: &RunOptions) -> Result<RunResults> {
    cfg.validate()?;
    let mut trainer = trainers::build(cfg)?;
    run_with(cfg, trainer.as_mut(), data, opts)
}

/// Like [`run`] with a trainer built by the caller. Long runs write resumable states
/// ([`resume::Checkpointing::default`]).
pub fn run_with(
    cfg: &TrainConfig,
    trainer: &mut dyn Trainer,
    data: &Splits,
    opts: &RunOptions,
) -> Result<RunResults> {
    run_resumable(
        cfg,
        trainer,
        data,
        opts,
        resume::Checkpointing::default(),
        false,
    )
}

/// Like [`run_with`], writing resumable states as `checkpointing` says (algorithms that
/// cannot resume write none) and, with `resume`, continuing from the newest one in
/// `opts.out` (an error if there is none, or if it is of another configuration).
pub fn run_resumable(
    cfg: &TrainConfig,
    trainer: &mut dyn Trainer,
    data: &Splits,
    opts: &RunOptions,
    checkpointing: resume::Checkpointing,
    resume: bool,
) -> Result<RunResults> {
    if data.train.is_empty() || data.valid.is_empty() || data.test.is_empty() {
        return Err(Error::param(
            "dataset",
            cfg.dataset,
            "train, validation and test sets must be non-empty",
        ));
    }
    if cfg.ff.negatives == crate::learn::ff::NegativeLabels::Hybrid && data.train.len() < 2 {
        return Err(Error::param(
            "negatives",
            "hybrid",
            format!(
                "hybrid negatives mix two different images; the training set has {}",
                data.train.len()
            ),
        ));
    }
    let seeds = cfg.seeds();
    let schedule = trainer.schedule();
    // Jitter draws from its own stream, so switching it on changes nothing else.
    let mut jitter_rng = stream(derive(cfg.seed, "augment"), "jitter");
    let rep = &opts.reporter;
    // One writer per run directory: a second process is refused (exit 2), not mixed in.
    let _lock = opts
        .out
        .as_deref()
        .map(crate::fsutil::OutputLock::take)
        .transpose()?;
    if let Some(out) = &opts.out {
        create_dir(out)?;
        // Nothing of an earlier run in `out` counts as complete from here on; and an
        // --out that cannot be written is found now, not after the first epoch.
        manifest::unseal(out)?;
        crate::fsutil::write_atomic(&out.join(".write-probe"), b"")?;
        let _ = std::fs::remove_file(out.join(".write-probe"));
    }
    let mut streams = Streams {
        negatives: stream(seeds.negatives, "negatives"),
        noise: stream(seeds.noise, "train"),
    };
    let eval_seed = derive(seeds.noise, "eval");
    trainer.set_counting(opts.count);
    let mut initial = trainer.ledger();
    let mut trained = Ledger::new(0);
    let mut records: Vec<EpochRecord> = Vec::new();
    let mut images = Mat::zeros(0, 0);
    let start = Instant::now();
    let (mut train_seconds, mut eval_seconds) = (0.0, 0.0);
    let mut elapsed_before = 0.0;
    let mut last_valid = Errors::default();
    let mut first = 1;
    if resume {
        let out = opts
            .out
            .as_deref()
            .ok_or_else(|| Error::param("resume", "", "a resumed run needs its directory"))?;
        let (meta, tensors) = resume::load(out)?.ok_or_else(|| {
            Error::param(
                "resume",
                out.display(),
                format!(
                    "no resumable state in {} (the run finished, or never wrote one)",
                    resume::dir_of(out).display()
                ),
            )
        })?;
        if meta.config != *cfg {
            return Err(Error::param(
                "resume",
                out.display(),
                "its resumable state belongs to another configuration",
            ));
        }
        trainer.restore_resume_state(&tensors, &meta.ledger)?;
        streams.negatives = meta.streams.negatives;
        streams.noise = meta.streams.noise;
        jitter_rng = meta.streams.jitter;
        initial = meta.initial;
        trained = meta.trained;
        train_seconds = meta.train_seconds;
        eval_seconds = meta.eval_seconds;
        elapsed_before = meta.elapsed_seconds;
        let partial = out.join(PARTIAL_EPOCHS);
        records = crate::fsutil::read_csv(&partial, "a run's epochs.csv.partial")?;
        if records.len() < meta.epoch {
            return Err(Error::artifact(
                partial,
                format!(
                    "holds {} epochs, the resumable state {}",
                    records.len(),
                    meta.epoch
                ),
            ));
        }
        records.truncate(meta.epoch);
        first = meta.epoch + 1;
        rep.line(&format!(
            "resuming {} after epoch {}/{}",
            out.display(),
            meta.epoch,
            cfg.epochs
        ));
    }
    let can_resume = trainer.resume_state().is_some();
    let mut last_state = Instant::now();
    for epoch in first..=cfg.epochs {
        let gain = schedule.gain(epoch, cfg.epochs);
        let order = epoch_order(data.train.len(), seeds.order, epoch);
        let batches = batches(&order, cfg.batch);
        let bar = rep.bar(
            batches.len() as u64,
            &format!("epoch {epoch}/{}", cfg.epochs),
        );
        let t0 = Instant::now();
        let before = trainer.ledger();
        let (mut loss, mut errors, mut samples) = (0.0f64, 0usize, 0usize);
        for (b, idx) in batches.into_iter().enumerate() {
            if images.ncols() != idx.len() {
                images = Mat::zeros(data.train.pixels(), idx.len());
            }
            data.train.gather(idx, &mut images);
            crate::data::augment::jitter(
                &mut images,
                cfg.dataset.geometry(),
                cfg.jitter,
                &mut jitter_rng,
            );
            let labels = data.train.gather_labels(idx);
            let o = trainer
                .train_batch(&images, &labels, gain, &mut streams)
                .map_err(|e| annotate_divergence(e, epoch))?;
            loss += o.loss_sum;
            errors += o.errors;
            samples += o.samples;
            bar.inc(1);
            if (b + 1).is_multiple_of(20) {
                bar.set_message(format!("loss {:.4}", loss / samples.max(1) as f64));
            }
        }
        bar.finish_and_clear();
        trained.absorb(&trainer.ledger().since(&before));
        let t_train = t0.elapsed().as_secs_f64();
        train_seconds += t_train;
        let full = epoch == cfg.epochs || (cfg.eval_every > 0 && epoch % cfg.eval_every == 0);
        let t1 = Instant::now();
        let valid = trainer.evaluate(&data.valid, full, &mut indexed(eval_seed, epoch as u64))?;
        let valid_digital = trainer.evaluate_digital(&data.valid)?;
        let t_eval = t1.elapsed().as_secs_f64();
        eval_seconds += t_eval;
        let rec = EpochRecord {
            epoch,
            lr_gain: gain,
            train_loss: loss / samples.max(1) as f64,
            train_error: errors as f64 / samples.max(1) as f64,
            valid_error: valid.best().1,
            valid_error_goodness: valid.goodness,
            valid_error_softmax: valid.softmax,
            valid_error_digital: valid_digital,
            train_seconds: t_train,
            eval_seconds: t_eval,
            elapsed_seconds: elapsed_before + start.elapsed().as_secs_f64(),
        };
        if !rec.train_loss.is_finite() {
            return Err(Error::Diverged(format!(
                "epoch {epoch}: training loss is {}",
                rec.train_loss
            )));
        }
        rep.line(&format!(
            "{} epoch {epoch:>3}/{}: loss {:.4}  train err {:.2}%  valid err {:.2}%{}  ({:.1}s + eval {:.1}s)",
            cfg.algo,
            cfg.epochs,
            rec.train_loss,
            100.0 * rec.train_error,
            100.0 * rec.valid_error,
            match (valid.goodness, valid.softmax) {
                (Some(g), Some(s)) => format!(" [goodness {:.2}%, softmax {:.2}%]", 100.0 * g, 100.0 * s),
                _ => String::new(),
            },
            t_train,
            t_eval
        ));
        records.push(rec);
        if let Some(out) = &opts.out {
            crate::fsutil::write_csv(&out.join(PARTIAL_EPOCHS), &records)?;
            if can_resume && checkpointing.due(epoch, cfg.epochs, last_state.elapsed()) {
                let (tensors, ledger) = trainer.resume_state().expect("checked");
                let meta = resume::ResumeMeta {
                    format: resume::FORMAT,
                    mortal_version: env!("CARGO_PKG_VERSION").to_string(),
                    config: cfg.clone(),
                    epoch,
                    streams: resume::StreamState {
                        negatives: streams.negatives.clone(),
                        noise: streams.noise.clone(),
                        jitter: jitter_rng.clone(),
                    },
                    ledger,
                    initial: initial.clone(),
                    trained: trained.clone(),
                    train_seconds,
                    eval_seconds,
                    elapsed_seconds: elapsed_before + start.elapsed().as_secs_f64(),
                    tensors_md5: String::new(),
                    checkpoint_every: checkpointing.every(),
                };
                let t_state = Instant::now();
                resume::save(out, &meta, &tensors)?;
                rep.line(&format!(
                    "resumable state after epoch {epoch} written to {} ({:.2} s)",
                    resume::dir_of(out).display(),
                    t_state.elapsed().as_secs_f64()
                ));
                last_state = Instant::now();
            }
        }
        last_valid = valid;
    }
    if resume && first > cfg.epochs {
        // Resumed after the last epoch: nothing left to train (a state is never written
        // then, so this cannot happen unless the files were edited).
        return Err(Error::param(
            "resume",
            cfg.epochs,
            "the run has no epoch left",
        ));
    }

    // Final test evaluation; the method is chosen on validation, never on test.
    let t1 = Instant::now();
    let test = trainer.evaluate(&data.test, true, &mut indexed(eval_seed, u64::MAX))?;
    let test_digital = trainer.evaluate_digital(&data.test)?;
    eval_seconds += t1.elapsed().as_secs_f64();
    let (method, valid_error) = last_valid.best();
    let cost = if opts.count {
        let mut train = trainer.setup_cost(&initial);
        train.absorb(&trained);
        let probe = data.test.slice(0..data.test.len().min(COST_PROBE_IMAGES));
        let before = trainer.ledger();
        trainer.evaluate(
            &probe,
            method == "goodness",
            &mut stream(derive(eval_seed, "cost-probe"), "probe"),
        )?;
        let inference = trainer.ledger().since(&before);
        let model = cfg.energy_model()?;
        Some(crate::cost::report(
            &model,
            &crate::cost::Measured {
                train: &train,
                train_samples: (cfg.epochs * data.train.len()) as u64,
                inference: &inference,
                images: probe.len() as u64,
                method,
                ff: cfg.algo.is_ff(),
            },
        ))
    } else {
        None
    };
    let results = RunResults {
        mortal_version: env!("CARGO_PKG_VERSION").to_string(),
        algo: cfg.algo.name().into(),
        dataset: cfg.dataset.name().into(),
        layers: cfg.layers.clone(),
        epochs: cfg.epochs,
        batch: cfg.batch,
        seed: cfg.seed,
        seeds,
        test_error: test.by_name(method).unwrap_or(f64::NAN),
        eval_method: method.into(),
        test_error_goodness: test.goodness,
        test_error_softmax: test.softmax,
        test_error_by_iteration: test.by_iteration.clone(),
        test_error_digital: test_digital,
        valid_error,
        train_seconds,
        eval_seconds,
        train_samples: data.train.len(),
        test_samples: data.test.len(),
        substrate: trainer.substrate(),
        chip: cfg.chip.as_ref().map(|c| c.source.clone()),
        chip_seed: cfg.chip.as_ref().map(|c| c.chip_seed),
        variation: cfg.chip.as_ref().map(|c| c.variation),
        threads: rayon::current_num_threads(),
        peak_rss_mib: crate::resources::peak_rss_mib(),
        config: cfg.clone(),
        cost,
    };
    if let Some(out) = &opts.out {
        if opts.checkpoint {
            save_checkpoint(out, cfg, &*trainer)?;
        }
        write_json(&out.join("results.json"), &results)?;
        std::fs::rename(out.join(PARTIAL_EPOCHS), out.join("epochs.csv")).map_err(|e| {
            Error::io(
                format!("cannot finalise {}", out.join("epochs.csv").display()),
                e,
            )
        })?;
        crate::fsutil::failpoint(&out.join("epochs.csv"));
        resume::clear(out)?;
        manifest::seal(out)?;
    }
    Ok(results)
}

fn annotate_divergence(e: Error, epoch: usize) -> Error {
    match e {
        Error::Diverged(m) => Error::Diverged(format!("epoch {epoch}: {m}")),
        other => other,
    }
}

/// Saves the trained network of `trainer` into `dir`.
pub fn save_checkpoint(dir: &Path, cfg: &TrainConfig, trainer: &dyn Trainer) -> Result<()> {
    let id = trainer.substrate_id();
    let meta = checkpoint::CheckpointMeta {
        format: checkpoint::FORMAT,
        mortal_version: env!("CARGO_PKG_VERSION").to_string(),
        config: cfg.clone(),
        substrate_kind: id.kind,
        substrate_identity: id.identity,
        tensors_md5: None,
        sealed: true,
    };
    checkpoint::save(dir, &meta, &trainer.tensors())
}

/// A trained network restored from a checkpoint directory.
pub struct Restored {
    /// The configuration it was trained with (with the chip seed it now runs on).
    pub config: TrainConfig,
    /// The chip seed it was trained on, if it was trained on a chip.
    pub trained_chip_seed: Option<u64>,
    /// The trainer holding it.
    pub trainer: Box<dyn Trainer>,
    /// A note if it was loaded onto a different substrate instance.
    pub note: Option<String>,
}

/// Loads a checkpoint written by [`run`]. With `chip_seed`, a chip-trained network is
/// loaded onto another instance of the same chip family (its conductances copied there).
pub fn load_checkpoint(dir: &Path, chip_seed: Option<u64>) -> Result<Restored> {
    let (mut meta, tensors) = checkpoint::load(dir)?;
    let trained_chip_seed = meta.config.chip.as_ref().map(|c| c.chip_seed);
    if let Some(seed) = chip_seed {
        match meta.config.chip.as_mut() {
            Some(chip) => chip.chip_seed = seed,
            None => {
                return Err(Error::param(
                    "chip-seed",
                    seed,
                    "this checkpoint was trained on the digital substrate, not a chip",
                ));
            }
        }
    }
    meta.config.validate()?;
    let mut trainer = trainers::build(&meta.config)?;
    let saved = trainers::SubstrateId {
        kind: meta.substrate_kind.clone(),
        identity: meta.substrate_identity.clone(),
    };
    let note = trainer.restore(&tensors, &saved)?;
    Ok(Restored {
        config: meta.config,
        trained_chip_seed,
        trainer,
        note,
    })
}

/// Evaluates a trained network on the validation and test sets.
pub fn evaluate(trainer: &mut dyn Trainer, data: &Splits, seed: u64) -> Result<(Errors, Errors)> {
    let eval_seed = derive(Seeds::from_master(seed).noise, "eval");
    let valid = trainer.evaluate(&data.valid, true, &mut indexed(eval_seed, 0))?;
    let test = trainer.evaluate(&data.test, true, &mut indexed(eval_seed, u64::MAX))?;
    Ok((valid, test))
}
