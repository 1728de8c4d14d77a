//! The teacher of a distillation: its checkpoint, the network restored on its own chip,
//! the copy of its state onto a student chip, and its measurements on the views students
//! are shown, made once per view and shared by every student that sees the same view.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::checkpoint;
use super::config::{Algo, TrainConfig};
use super::trainers::{FfTrainer, SubstrateId, Trainer};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::learn::distill::{self, Init, ScoreSource};
use crate::learn::ff::FfLearner;
use crate::linalg::Mat;
use crate::rng::{derive, derive_index, indexed};
use crate::substrate::SubstrateState;
use crate::tensor;

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
    pub(super) fn output(
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

    pub(super) fn describe(&self) -> String {
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
    pub(super) fn saved_id(&self) -> SubstrateId {
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

    pub(super) fn copy_ff(
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

/// Why a student cannot start from the teacher's copy (`None`: it can): the teacher must
/// be a feed-forward Forward-Forward network of the student's shape.
pub fn copy_init_refusal(teacher: &TrainConfig, student: &TrainConfig) -> Option<String> {
    let shape =
        |c: &TrainConfig| format!("{} {}", c.algo, crate::train::layers::display(&c.layers));
    if teacher.algo != Algo::Ff {
        return Some(format!(
            "the teacher ({}) is not a Forward-Forward network like the student ({})",
            shape(teacher),
            shape(student)
        ));
    }
    if teacher.layers != student.layers || teacher.dataset.geometry() != student.dataset.geometry()
    {
        return Some(format!(
            "the teacher's shape ({}) differs from the student's ({})",
            shape(teacher),
            shape(student)
        ));
    }
    None
}

/// The student's starting point: `auto` resolved to `copy` where the teacher's copy can
/// serve ([`copy_init_refusal`]), `scratch` otherwise; an explicit `copy` that cannot is
/// an error naming both shapes.
pub fn resolve_init(init: Init, teacher: &TrainConfig, student: &TrainConfig) -> Result<Init> {
    match (init, copy_init_refusal(teacher, student)) {
        (Init::Auto, None) | (Init::Copy, None) => Ok(Init::Copy),
        (Init::Auto, Some(_)) | (Init::Scratch, _) => Ok(Init::Scratch),
        (Init::Copy, Some(why)) => Err(Error::param(
            "init",
            "copy",
            format!("{why}; use --init scratch"),
        )),
    }
}

/// What identifies a set of views (and so the teacher's measurement of them): every
/// student with equal keys is shown the same images in the same order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ViewKey {
    /// The transfer images: source name and count.
    pub transfer: String,
    pub count: usize,
    /// Augmentation: jitter (pixels) and mixup fraction (bits of the f32).
    pub jitter: usize,
    pub mixup: u32,
    /// Seeds of the views and of the epoch order.
    pub view_seed: u64,
    pub order_seed: u64,
    pub epoch: usize,
    /// Teacher reads averaged per view.
    pub reads: usize,
}

/// The teacher, restored on its own chip, and every measurement of it made so far.
/// Measurements are deterministic functions of what they measure (their read noise is
/// drawn from streams indexed by the view set), so sharing one changes no result.
pub struct Teacher {
    net: Mutex<Net>,
    source: ScoreSource,
    /// Base of the teacher's read-noise streams.
    seed: u64,
    views: Mutex<HashMap<ViewKey, Arc<Mat>>>,
    sets: Mutex<HashMap<String, Arc<Mat>>>,
    /// View sets measured (not served from the cache).
    measured: Mutex<usize>,
}

impl Teacher {
    /// The teacher of `ckpt` on its own substrate; its outputs are its `source` scores.
    pub fn new(ckpt: &TeacherCheckpoint, source: ScoreSource) -> Result<Self> {
        check_source(ckpt.meta.config.algo, source)?;
        Ok(Self {
            net: Mutex::new(ckpt.restore()?),
            source,
            seed: derive(ckpt.meta.config.seed, "teacher-reads"),
            views: Mutex::default(),
            sets: Mutex::default(),
            measured: Mutex::new(0),
        })
    }

    /// Which scores define the teacher's distribution.
    pub fn source(&self) -> ScoreSource {
        self.source
    }

    /// The teacher's substrate, described.
    pub fn describe(&self) -> String {
        self.net.lock().expect("teacher lock").describe()
    }

    /// The teacher's output scores (10 × n) on a whole dataset (`name`: `valid`, `test`),
    /// measured once.
    pub fn on_set(&self, name: &str, data: &Dataset) -> Result<Arc<Mat>> {
        if let Some(m) = self.sets.lock().expect("teacher lock").get(name) {
            return Ok(m.clone());
        }
        let mut net = self.net.lock().expect("teacher lock");
        let mut noise = crate::rng::stream(derive(self.seed, name), "scores");
        let m = Arc::new(net.output(data, self.source, &mut noise)?);
        self.sets
            .lock()
            .expect("teacher lock")
            .insert(name.to_string(), m.clone());
        Ok(m)
    }

    /// The teacher's output scores (10 × n) on a whole dataset averaged over `reads`
    /// reads, each with its own read noise (none of them [`Teacher::on_set`]'s): its
    /// function with the read noise averaged out. Measured once per (`name`, `reads`).
    pub fn on_set_mean(&self, name: &str, data: &Dataset, reads: usize) -> Result<Arc<Mat>> {
        let key = format!("{name} mean of {reads}");
        if let Some(m) = self.sets.lock().expect("teacher lock").get(&key) {
            return Ok(m.clone());
        }
        let mut net = self.net.lock().expect("teacher lock");
        let m = Arc::new(mean_of_reads(
            &mut net,
            data,
            self.source,
            derive(self.seed, &key),
            reads,
        )?);
        self.sets
            .lock()
            .expect("teacher lock")
            .insert(key, m.clone());
        Ok(m)
    }

    /// The teacher's output scores (10 × n) on `views`, identified by `key`: the mean of
    /// `key.reads` reads, each with its own read noise; measured once per key.
    pub fn on_views(&self, key: &ViewKey, views: &Dataset) -> Result<Arc<Mat>> {
        if let Some(m) = self.views.lock().expect("teacher lock").get(key) {
            return Ok(m.clone());
        }
        let mut net = self.net.lock().expect("teacher lock");
        // Another student may have measured it while this one waited.
        if let Some(m) = self.views.lock().expect("teacher lock").get(key) {
            return Ok(m.clone());
        }
        let base = derive_index(
            derive(self.seed, &format!("views {} {}", key.transfer, key.count)),
            key.epoch as u64,
        );
        let base = derive_index(derive_index(base, key.view_seed), key.order_seed);
        let m = Arc::new(mean_of_reads(
            &mut net,
            views,
            self.source,
            base,
            key.reads,
        )?);
        self.views
            .lock()
            .expect("teacher lock")
            .insert(key.clone(), m.clone());
        *self.measured.lock().expect("teacher lock") += 1;
        Ok(m)
    }

    /// The teacher's neutral-pass activities of every layer on `images` (one batch of
    /// views, inputs × B), read from its chip with the read noise of `seed`: the hints of
    /// a per-layer distillation step. `None` for a teacher that is not an FF network.
    pub fn hints(&self, images: &Mat, seed: u64) -> Option<Vec<Mat>> {
        let mut net = self.net.lock().expect("teacher lock");
        match &mut *net {
            Net::Ff(t) => Some(t.learner.neutral_activities(
                t.substrate.as_mut(),
                images,
                &mut crate::rng::stream(seed, "hints"),
                &mut crate::learn::ff::Scores::default(),
            )),
            Net::Other(_) => None,
        }
    }

    /// The hidden widths of an FF teacher (`None` for another algorithm).
    pub fn ff_widths(&self) -> Option<Vec<usize>> {
        match &*self.net.lock().expect("teacher lock") {
            Net::Ff(t) => Some(t.learner.topology().widths()[1..].to_vec()),
            Net::Other(_) => None,
        }
    }

    /// How many view sets were measured (the rest were served from earlier
    /// measurements).
    pub fn view_measurements(&self) -> usize {
        *self.measured.lock().expect("teacher lock")
    }
}

/// The mean of `reads` (at least one) outputs of `net` on `data`, read `r` drawing its
/// read noise from stream `r` of `base` (one read is returned as it is).
fn mean_of_reads(
    net: &mut Net,
    data: &Dataset,
    source: ScoreSource,
    base: u64,
    reads: usize,
) -> Result<Mat> {
    let mut sum: Option<Mat> = None;
    for r in 0..reads.max(1) {
        let m = net.output(data, source, &mut indexed(base, r as u64))?;
        sum = Some(match sum {
            None => m,
            Some(s) => s + m,
        });
    }
    let mut m = sum.expect("at least one read");
    if reads > 1 {
        m /= reads as f32;
    }
    Ok(m)
}

/// An FF network's (head logits, goodness log-odds if `goodness`) for `data`.
pub(super) fn ff_scores(
    t: &mut FfTrainer,
    data: &Dataset,
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
