//! The algorithms as the epoch loop sees them: train a batch, evaluate, checkpoint.

use super::config::{Algo, TrainConfig};
use super::results::Errors;
use crate::data::Dataset;
use crate::error::Result;
use crate::learn::BpLearner;
use crate::learn::ff::FfLearner;
use crate::learn::ff::recurrent::RecurrentFf;
use crate::learn::optim::Schedule;
use crate::linalg::Mat;
use crate::rng::Rng;
use crate::substrate::{DigitalNet, Ledger, Substrate, SubstrateState};
use crate::tensor::{self, Tensor};

/// The random streams a batch may draw from.
#[derive(Clone, Debug)]
pub struct Streams {
    /// Negative labels.
    pub negatives: Rng,
    /// Substrate per-call noise.
    pub noise: Rng,
}

/// Counts from one training batch.
#[derive(Clone, Copy, Debug, Default)]
pub struct BatchOutcome {
    /// Sum over samples of the training loss, nats.
    pub loss_sum: f64,
    /// Misclassified samples.
    pub errors: usize,
    /// Samples.
    pub samples: usize,
}

/// What identifies the substrate a network lives on.
#[derive(Clone, Debug, PartialEq)]
pub struct SubstrateId {
    pub kind: String,
    pub identity: serde_json::Value,
}

/// An algorithm with its model, as driven by the epoch loop.
pub trait Trainer: Send {
    /// Learning-rate schedule.
    fn schedule(&self) -> Schedule;
    /// One optimisation step on a batch (images: 784 × B in [0, 1]).
    fn train_batch(
        &mut self,
        images: &Mat,
        labels: &[usize],
        gain: f32,
        streams: &mut Streams,
    ) -> Result<BatchOutcome>;
    /// Errors on `data`; `full` adds the expensive methods.
    fn evaluate(&mut self, data: &Dataset, full: bool, noise: &mut Rng) -> Result<Errors>;
    /// The network's output scores (classes × n) for every image of `data`, as it is
    /// evaluated: FF the softmax head after a neutral-label pass; backprop the output
    /// layer (measured on the chip for the `bp-*` algorithms).
    fn logits(&mut self, data: &Dataset, noise: &mut Rng) -> Result<Mat>;
    /// Error on `data` of a digital model the trainer keeps next to its substrate (the
    /// network before deployment, or a digital twin), if it has one.
    fn evaluate_digital(&mut self, _data: &Dataset) -> Result<Option<f64>> {
        Ok(None)
    }
    /// Description of the substrate (`digital`, a chip, …).
    fn substrate(&self) -> String;
    /// Identity of the substrate, for checkpoints.
    fn substrate_id(&self) -> SubstrateId;
    /// Every tensor needed to restore the trained network.
    fn tensors(&self) -> Vec<Tensor>;
    /// Restores from saved tensors. Returns a note if the substrate instance differs.
    fn restore(&mut self, tensors: &[Tensor], saved: &SubstrateId) -> Result<Option<String>>;
    /// Lets simulated time pass on the substrate (conductance drift); seconds.
    fn advance_time(&mut self, seconds: f64);
    /// Everything counted so far ([`crate::substrate::ops`]): the substrate's operations
    /// and the host's digital work, cumulative.
    fn ledger(&self) -> Ledger;
    /// Switches the operation counters on or off (never changes a result).
    fn set_counting(&mut self, on: bool);
    /// The one-time cost of putting the trained network in place, given the counters at
    /// the start of training: by default whatever was counted before training (a chip's
    /// initial write-and-verify); offline training deployed onto a chip: the deployment.
    fn setup_cost(&self, initial: &Ledger) -> Ledger {
        initial.clone()
    }
    /// Everything a bit-identical continuation of training needs: the substrate's whole
    /// state and the learner's, optimiser state included, and the counters. `None`: this
    /// algorithm cannot be resumed mid-run (yet).
    fn resume_state(&self) -> Option<(Vec<Tensor>, Ledger)> {
        None
    }
    /// Restores what [`Trainer::resume_state`] saved (from this very run: same substrate
    /// instance).
    fn restore_resume_state(&mut self, _tensors: &[Tensor], _ledger: &Ledger) -> Result<()> {
        Err(crate::error::Error::param(
            "resume",
            "this algorithm",
            "cannot be resumed mid-run",
        ))
    }
}

/// Builds the trainer of a (validated) configuration.
pub fn build(cfg: &TrainConfig) -> Result<Box<dyn Trainer>> {
    let seeds = cfg.seeds();
    Ok(match cfg.algo {
        Algo::Ff => {
            let topology = cfg.ff_topology()?;
            let mut learner =
                FfLearner::with_geometry(cfg.ff.clone(), topology.clone(), cfg.dataset.geometry())?;
            let substrate = build_substrate(cfg, topology.clone())?;
            if let Some(chip) = cfg.chip.as_ref().filter(|_| {
                cfg.ff.mode == crate::learn::ff::FfMode::AnalogNative
                    && cfg.ff.analog_momentum.is_on()
            }) {
                // The fast arrays: other devices of the same family (their own instance
                // seed), programmed to zero.
                let fast = crate::train::ChipConfig {
                    chip_seed: crate::rng::derive(chip.chip_seed, "fast-arrays"),
                    ..chip.clone()
                };
                let mut a: Box<dyn Substrate> = Box::new(fast.build(topology, seeds.init)?);
                a.set_precision(cfg.precision);
                let mut noise = crate::rng::stream(cfg.seed, "fast-arrays-program");
                learner.attach_fast_arrays(a, &mut noise);
            }
            Box::new(FfTrainer { learner, substrate })
        }
        Algo::FfRecurrent => {
            let topology = cfg.recurrent_topology()?;
            let learner = RecurrentFf::new(
                cfg.ff.clone(),
                cfg.recurrent.clone(),
                topology.clone(),
                cfg.dataset.geometry(),
            )?;
            let substrate = build_substrate(cfg, topology)?;
            Box::new(RecurrentTrainer { learner, substrate })
        }
        Algo::Bp => {
            let topology = super::layers::classifier_topology(
                &cfg.layers,
                cfg.dataset.geometry(),
                cfg.bp.hidden,
            )?;
            Box::new(BpTrainer {
                learner: BpLearner::with_topology(cfg.bp.clone(), topology, seeds.init)?,
            })
        }
        Algo::BpDeploy
        | Algo::BpHwa
        | Algo::BpPat
        | Algo::BpAnalog
        | Algo::BpTtv2
        | Algo::BpCttv2
        | Algo::BpAgad => super::bp_chip::build(cfg)?,
    })
}

/// The substrate of a run: its chip, or the digital network, starting from the run's
/// initial weights.
pub(super) fn build_substrate(
    cfg: &TrainConfig,
    topology: crate::substrate::Topology,
) -> Result<Box<dyn Substrate>> {
    let init = cfg.seeds().init;
    let mut sub: Box<dyn Substrate> = match &cfg.chip {
        None => Box::new(DigitalNet::new(topology, init)),
        Some(chip) => Box::new(chip.build(topology, init)?),
    };
    sub.set_precision(cfg.precision);
    Ok(sub)
}

/// What identifies `sub` in a checkpoint.
fn substrate_id_of(sub: &dyn Substrate) -> SubstrateId {
    let st = sub.save_state();
    SubstrateId {
        kind: st.kind,
        identity: st.identity,
    }
}

/// A Forward-Forward checkpoint's tensors: the substrate's under `substrate/`, the
/// learner's host state under `ff/`.
fn ff_tensors(sub: &dyn Substrate, learner: Vec<Tensor>) -> Vec<Tensor> {
    let mut out = tensor::prefixed(sub.save_state().tensors, "substrate/");
    out.extend(tensor::prefixed(learner, "ff/"));
    out
}

/// Loads the `substrate/` tensors saved from `saved` into `sub`.
fn restore_substrate(
    sub: &mut dyn Substrate,
    tensors: &[Tensor],
    saved: &SubstrateId,
) -> Result<Option<String>> {
    sub.load_state(&SubstrateState {
        kind: saved.kind.clone(),
        identity: saved.identity.clone(),
        tensors: tensor::with_prefix(tensors, "substrate/"),
    })
}

/// A resumable state of an FF-family trainer: the substrate's and the learner's tensors,
/// and the counters.
fn resume_of(sub: &dyn Substrate, learner: Vec<Tensor>) -> (Vec<Tensor>, Ledger) {
    (ff_tensors(sub, learner), sub.ledger().clone())
}

/// Puts a resumable state's substrate tensors and counters back into `sub` (the same
/// instance: anything else is an error).
fn restore_substrate_for_resume(
    sub: &mut dyn Substrate,
    tensors: &[Tensor],
    ledger: &Ledger,
) -> Result<()> {
    let id = substrate_id_of(sub);
    if let Some(note) = restore_substrate(sub, tensors, &id)? {
        return Err(crate::error::Error::param("resume", "substrate", note));
    }
    *sub.ledger_mut() = ledger.clone();
    Ok(())
}

/// Forward-Forward on a substrate.
pub struct FfTrainer {
    pub learner: FfLearner,
    pub substrate: Box<dyn Substrate>,
}

impl Trainer for FfTrainer {
    fn schedule(&self) -> Schedule {
        self.learner.config().schedule
    }

    fn train_batch(
        &mut self,
        images: &Mat,
        labels: &[usize],
        gain: f32,
        s: &mut Streams,
    ) -> Result<BatchOutcome> {
        let st = self.learner.train_batch(
            self.substrate.as_mut(),
            images,
            labels,
            gain,
            &mut s.negatives,
            &mut s.noise,
        )?;
        Ok(BatchOutcome {
            loss_sum: st.mean_layer_loss() * st.samples as f64,
            errors: st.head.errors,
            samples: st.samples,
        })
    }

    fn evaluate(&mut self, data: &Dataset, full: bool, noise: &mut Rng) -> Result<Errors> {
        // Analog-native FF classifies by goodness only (every evaluation), no head.
        let native = self.learner.native();
        let full = (full || native) && !self.learner.unsupervised();
        let e = self
            .learner
            .evaluate(self.substrate.as_mut(), data, full, noise)?;
        Ok(Errors {
            goodness: full.then_some(e.error_goodness),
            softmax: (!native).then_some(e.error_softmax),
            ..Default::default()
        })
    }

    fn logits(&mut self, data: &Dataset, noise: &mut Rng) -> Result<Mat> {
        let (logits, _) = crate::learn::distill::scores_of(
            &mut self.learner,
            self.substrate.as_mut(),
            data,
            crate::learn::distill::ScoreSource::Softmax,
            noise,
        )?;
        Ok(logits)
    }

    fn substrate(&self) -> String {
        self.substrate.describe()
    }

    fn substrate_id(&self) -> SubstrateId {
        substrate_id_of(self.substrate.as_ref())
    }

    fn tensors(&self) -> Vec<Tensor> {
        ff_tensors(self.substrate.as_ref(), self.learner.tensors())
    }

    fn restore(&mut self, tensors: &[Tensor], saved: &SubstrateId) -> Result<Option<String>> {
        self.learner.restore(&tensor::with_prefix(tensors, "ff/"))?;
        restore_substrate(self.substrate.as_mut(), tensors, saved)
    }

    fn advance_time(&mut self, seconds: f64) {
        self.substrate.advance_time(seconds);
    }

    fn ledger(&self) -> Ledger {
        self.substrate.ledger().clone()
    }

    fn set_counting(&mut self, on: bool) {
        self.substrate.ledger_mut().set_enabled(on);
    }

    fn resume_state(&self) -> Option<(Vec<Tensor>, Ledger)> {
        Some(resume_of(
            self.substrate.as_ref(),
            self.learner.resume_tensors(),
        ))
    }

    fn restore_resume_state(&mut self, tensors: &[Tensor], ledger: &Ledger) -> Result<()> {
        restore_substrate_for_resume(self.substrate.as_mut(), tensors, ledger)?;
        self.learner
            .restore_resume(&tensor::with_prefix(tensors, "ff/"))
    }
}

/// Recurrent Forward-Forward on a substrate.
pub struct RecurrentTrainer {
    pub learner: RecurrentFf,
    pub substrate: Box<dyn Substrate>,
}

impl Trainer for RecurrentTrainer {
    fn schedule(&self) -> Schedule {
        self.learner.config().schedule
    }

    fn train_batch(
        &mut self,
        images: &Mat,
        labels: &[usize],
        gain: f32,
        s: &mut Streams,
    ) -> Result<BatchOutcome> {
        let st = self.learner.train_batch(
            self.substrate.as_mut(),
            images,
            labels,
            gain,
            &mut s.negatives,
            &mut s.noise,
        )?;
        Ok(BatchOutcome {
            loss_sum: st.mean_layer_loss() * st.samples as f64,
            errors: st.head.errors,
            samples: st.samples,
        })
    }

    /// The goodness evaluation (every label, all iterations) is the expensive one: the
    /// cheap evaluation is the head's one-pass softmax readout.
    fn evaluate(&mut self, data: &Dataset, full: bool, noise: &mut Rng) -> Result<Errors> {
        if !full {
            let logits = self.learner.logits(self.substrate.as_mut(), data, noise);
            return Ok(Errors {
                softmax: Some(crate::learn::backprop::error_of(&logits, data)),
                ..Default::default()
            });
        }
        let e = self
            .learner
            .evaluate(self.substrate.as_mut(), data, noise)?;
        Ok(Errors {
            goodness: Some(e.error_goodness),
            softmax: Some(e.error_softmax),
            by_iteration: e.error_by_iteration,
        })
    }

    fn logits(&mut self, data: &Dataset, noise: &mut Rng) -> Result<Mat> {
        Ok(self.learner.logits(self.substrate.as_mut(), data, noise))
    }

    fn substrate(&self) -> String {
        self.substrate.describe()
    }

    fn substrate_id(&self) -> SubstrateId {
        substrate_id_of(self.substrate.as_ref())
    }

    fn tensors(&self) -> Vec<Tensor> {
        ff_tensors(self.substrate.as_ref(), self.learner.tensors())
    }

    fn restore(&mut self, tensors: &[Tensor], saved: &SubstrateId) -> Result<Option<String>> {
        self.learner.restore(&tensor::with_prefix(tensors, "ff/"))?;
        restore_substrate(self.substrate.as_mut(), tensors, saved)
    }

    fn advance_time(&mut self, seconds: f64) {
        self.substrate.advance_time(seconds);
    }

    fn ledger(&self) -> Ledger {
        self.substrate.ledger().clone()
    }

    fn set_counting(&mut self, on: bool) {
        self.substrate.ledger_mut().set_enabled(on);
    }

    fn resume_state(&self) -> Option<(Vec<Tensor>, Ledger)> {
        Some(resume_of(
            self.substrate.as_ref(),
            self.learner.resume_tensors(),
        ))
    }

    fn restore_resume_state(&mut self, tensors: &[Tensor], ledger: &Ledger) -> Result<()> {
        restore_substrate_for_resume(self.substrate.as_mut(), tensors, ledger)?;
        self.learner
            .restore_resume(&tensor::with_prefix(tensors, "ff/"))
    }
}

/// Digital backprop.
pub struct BpTrainer {
    pub learner: BpLearner,
}

impl Trainer for BpTrainer {
    fn schedule(&self) -> Schedule {
        self.learner.config().schedule
    }

    fn train_batch(
        &mut self,
        images: &Mat,
        labels: &[usize],
        gain: f32,
        _s: &mut Streams,
    ) -> Result<BatchOutcome> {
        let st = self.learner.train_batch(images, labels, gain)?;
        Ok(BatchOutcome {
            loss_sum: st.loss_sum,
            errors: st.errors,
            samples: st.samples,
        })
    }

    fn evaluate(&mut self, data: &Dataset, _full: bool, _noise: &mut Rng) -> Result<Errors> {
        let topo = self.learner.mlp.topology().clone();
        crate::learn::backprop::count_model(&mut self.learner.ledger, &topo, data.len(), false);
        Ok(Errors {
            goodness: None,
            softmax: Some(self.learner.evaluate(data)),
            ..Default::default()
        })
    }

    fn logits(&mut self, data: &Dataset, _noise: &mut Rng) -> Result<Mat> {
        let mut trace = crate::learn::backprop::Trace::default();
        Ok(crate::learn::backprop::mlp_logits(
            &self.learner.mlp,
            data,
            &mut trace,
        ))
    }

    fn substrate(&self) -> String {
        "digital".into()
    }

    fn substrate_id(&self) -> SubstrateId {
        SubstrateId {
            kind: "digital".into(),
            identity: serde_json::json!({ "topology": self.learner.mlp.topology() }),
        }
    }

    fn tensors(&self) -> Vec<Tensor> {
        let mut out = Vec::new();
        for (l, (w, b)) in self.learner.mlp.params.iter().enumerate() {
            out.push(tensor::from_mat(format!("bp/layer{l}.weight"), w));
            out.push(tensor::from_vec(format!("bp/layer{l}.bias"), b));
        }
        out
    }

    fn restore(&mut self, tensors: &[Tensor], _saved: &SubstrateId) -> Result<Option<String>> {
        for (l, (w, b)) in self.learner.mlp.params.iter_mut().enumerate() {
            let (r, c) = w.shape();
            *w = tensor::to_mat(tensors, &format!("bp/layer{l}.weight"), r, c)?;
            b.copy_from_slice(tensor::find(tensors, &format!("bp/layer{l}.bias"), &[r])?);
        }
        Ok(None)
    }

    fn advance_time(&mut self, _seconds: f64) {}

    fn ledger(&self) -> Ledger {
        self.learner.ledger.clone()
    }

    fn set_counting(&mut self, on: bool) {
        self.learner.ledger.set_enabled(on);
    }
}
