//! Trainers of backprop's four ways onto a chip (`bp-deploy`, `bp-hwa`, `bp-pat`,
//! `bp-analog`; the algorithms are in [`crate::learn::backprop`]). All drive the same
//! [`crate::substrate::Chip`] the FF learner drives, built from the run's `--chip`,
//! `--chip-seed` and `--variation`, with a classifier topology (hidden layers with the
//! `bp.hidden` activation, a linear last layer read through the ADC) starting from the
//! same initial weights as digital backprop.
//!
//! * [`DeployTrainer`] (`bp-deploy`, `bp-hwa`): trains digitally (plain or with
//!   hardware-aware noise), programs the chip before each evaluation on it. Validation
//!   and test errors (`valid_error`, `test_error`) are measured on the chip; the digital
//!   network's are reported next to them (`valid_error_digital`, `test_error_digital`).
//!   Evaluated on another chip instance (`mortal eval --chip-seed`), the trained digital
//!   weights are deployed afresh onto that instance, as one deploys to a new chip.
//! * [`InSituTrainer`] (`bp-pat`, `bp-analog`, and the Tiki-Taka family `bp-ttv2`,
//!   `bp-cttv2`, `bp-agad`): trains on the chip; the weights live in its conductances and
//!   move to another instance as conductances, like FF's. The Tiki-Taka routes also own a
//!   fast array per layer: another array of the same family (devices drawn from the chip
//!   seed's `fast-array` stream), saved with the checkpoint.

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::learn::BpLearner;
use crate::learn::backprop::analog::AnalogLearner;
use crate::learn::backprop::deploy::Deployer;
use crate::learn::backprop::hwa::{HwaLearner, HwaNoise};
use crate::learn::backprop::pat::PatLearner;
use crate::learn::backprop::transfer::{TransferLearner, Variant};
use crate::learn::backprop::{BpBatchStats, Mlp, Trace, classifier_topology, evaluate_mlp, onchip};
use crate::learn::optim::Schedule;
use crate::linalg::Mat;
use crate::rng::{Rng, derive};
use crate::substrate::Ledger;
use crate::substrate::{Substrate, SubstrateState, Topology};
use crate::tensor::{self, Tensor};

use super::config::{Algo, TrainConfig};
use super::results::Errors;
use super::trainers::{BatchOutcome, Streams, SubstrateId, Trainer};

/// Builds the trainer of a `bp-*` chip algorithm (the configuration is validated).
pub fn build(cfg: &TrainConfig) -> Result<Box<dyn Trainer>> {
    let (chip, topology) = chip_for(cfg)?;
    let seeds = cfg.seeds();
    let deployer = Deployer::new(derive(seeds.noise, "deploy"));
    let chip_cfg = cfg.chip.as_ref().expect("chip_for checked it");
    Ok(match cfg.algo {
        Algo::BpDeploy => Box::new(DeployTrainer {
            learner: Offline::Plain(Box::new(BpLearner::new(
                cfg.bp.clone(),
                &cfg.widths(),
                seeds.init,
            )?)),
            chip,
            deployer,
            trace: Trace::default(),
            deployment: Ledger::new(0),
        }),
        Algo::BpHwa => {
            // The nominal spec of the family (variation applied), never the instance.
            let noise = HwaNoise::from_spec(&chip_cfg.effective_spec());
            let bp = BpLearner::new(cfg.bp.clone(), &cfg.widths(), seeds.init)?;
            Box::new(DeployTrainer {
                learner: Offline::Hwa(Box::new(HwaLearner::new(bp, noise))),
                chip,
                deployer,
                trace: Trace::default(),
                deployment: Ledger::new(0),
            })
        }
        Algo::BpPat => Box::new(InSituTrainer {
            learner: InSitu::Pat(Box::new(PatLearner::new(
                cfg.bp.clone(),
                Mlp::new(topology, seeds.init),
            )?)),
            chip,
            trace: Trace::default(),
        }),
        Algo::BpAnalog => Box::new(InSituTrainer {
            learner: InSitu::Analog(Box::new(AnalogLearner::new(cfg.bp.clone(), topology)?)),
            chip,
            trace: Trace::default(),
        }),
        Algo::BpTtv2 | Algo::BpCttv2 | Algo::BpAgad => {
            let variant = match cfg.algo {
                Algo::BpTtv2 => Variant::Ttv2,
                Algo::BpCttv2 => Variant::Cttv2,
                _ => Variant::Agad,
            };
            // The fast arrays: another array of the family, other devices.
            let fast_cfg = super::config::ChipConfig {
                chip_seed: derive(chip_cfg.chip_seed, "fast-array"),
                ..chip_cfg.clone()
            };
            let mut fast: Box<dyn Substrate> =
                Box::new(fast_cfg.build(topology.clone(), seeds.init)?);
            fast.set_precision(cfg.precision);
            let mut noise = crate::rng::stream(seeds.noise, "fast-array");
            let learner =
                TransferLearner::new(cfg.bp.clone(), variant, topology, fast, &mut noise)?;
            Box::new(InSituTrainer {
                learner: InSitu::Transfer(Box::new(learner)),
                chip,
                trace: Trace::default(),
            })
        }
        other => {
            return Err(Error::param(
                "algo",
                other,
                "not one of backprop's chip algorithms",
            ));
        }
    })
}

/// The chip of `cfg` (a chip algorithm's run) and the classifier topology on it.
fn chip_for(cfg: &TrainConfig) -> Result<(Box<dyn Substrate>, Topology)> {
    let chip_cfg = cfg.chip.as_ref().ok_or_else(|| {
        Error::param(
            "chip",
            "none",
            format!("{} needs a chip: pass --chip PRESET|spec.toml", cfg.algo),
        )
    })?;
    let topology = classifier_topology(&cfg.widths(), cfg.bp.hidden)?;
    let mut chip: Box<dyn Substrate> =
        Box::new(chip_cfg.build(topology.clone(), cfg.seeds().init)?);
    chip.set_precision(cfg.precision);
    Ok((chip, topology))
}

/// A trained digital backprop network (its `bp/…` tensors, as `mortal train --algo bp`
/// saves them) put onto the chip of `cfg` the `bp-deploy` way: programmed
/// (write-and-verify) when it is first evaluated.
pub fn deploy_digital(cfg: &TrainConfig, tensors: &[Tensor]) -> Result<Box<dyn Trainer>> {
    let cfg = TrainConfig {
        algo: Algo::BpDeploy,
        ..cfg.clone()
    };
    let (chip, _) = chip_for(&cfg)?;
    let mut learner = BpLearner::new(cfg.bp.clone(), &cfg.widths(), cfg.seeds().init)?;
    restore_mlp(&mut learner.mlp, tensors, "bp/")?;
    Ok(Box::new(DeployTrainer {
        learner: Offline::Plain(Box::new(learner)),
        chip,
        deployer: Deployer::new(derive(cfg.seeds().noise, "deploy")),
        trace: Trace::default(),
        deployment: Ledger::new(0),
    }))
}

fn outcome(st: BpBatchStats) -> BatchOutcome {
    BatchOutcome {
        loss_sum: st.loss_sum,
        errors: st.errors,
        samples: st.samples,
    }
}

fn mlp_tensors(mlp: &Mlp, prefix: &str) -> Vec<Tensor> {
    let mut out = Vec::new();
    for (l, (w, b)) in mlp.params.iter().enumerate() {
        out.push(tensor::from_mat(format!("{prefix}layer{l}.weight"), w));
        out.push(tensor::from_vec(format!("{prefix}layer{l}.bias"), b));
    }
    out
}

fn restore_mlp(mlp: &mut Mlp, tensors: &[Tensor], prefix: &str) -> Result<()> {
    // Read everything first so a bad checkpoint leaves the model untouched.
    let mut loaded = Vec::with_capacity(mlp.params.len());
    for (l, (w, _)) in mlp.params.iter().enumerate() {
        let (r, c) = w.shape();
        let w = tensor::to_mat(tensors, &format!("{prefix}layer{l}.weight"), r, c)?;
        let b = tensor::find(tensors, &format!("{prefix}layer{l}.bias"), &[r])?.to_vec();
        loaded.push((w, b));
    }
    mlp.params = loaded;
    Ok(())
}

fn chip_id(chip: &dyn Substrate) -> SubstrateId {
    let st = chip.save_state();
    SubstrateId {
        kind: st.kind,
        identity: st.identity,
    }
}

fn load_chip(
    chip: &mut dyn Substrate,
    tensors: &[Tensor],
    saved: &SubstrateId,
) -> Result<Option<String>> {
    chip.load_state(&SubstrateState {
        kind: saved.kind.clone(),
        identity: saved.identity.clone(),
        tensors: tensor::with_prefix(tensors, "substrate/"),
    })
}

/// How a deployed network is trained: plain digital backprop or hardware-aware.
pub enum Offline {
    /// Digital backprop (`bp-deploy`).
    Plain(Box<BpLearner>),
    /// Hardware-aware backprop (`bp-hwa`).
    Hwa(Box<HwaLearner>),
}

impl Offline {
    /// The trained digital network.
    pub fn mlp(&self) -> &Mlp {
        match self {
            Offline::Plain(l) => &l.mlp,
            Offline::Hwa(h) => h.mlp(),
        }
    }

    fn mlp_mut(&mut self) -> &mut Mlp {
        match self {
            Offline::Plain(l) => &mut l.mlp,
            Offline::Hwa(h) => &mut h.bp.mlp,
        }
    }

    fn schedule(&self) -> Schedule {
        match self {
            Offline::Plain(l) => l.config().schedule,
            Offline::Hwa(h) => h.bp.config().schedule,
        }
    }
}

/// `bp-deploy` and `bp-hwa`: digital training, deployment onto the chip for evaluation.
pub struct DeployTrainer {
    /// The digital training.
    pub learner: Offline,
    /// The chip the network is deployed on.
    pub chip: Box<dyn Substrate>,
    deployer: Deployer,
    trace: Trace,
    /// Counters of the latest deployment (write-and-verify of the trained weights).
    deployment: Ledger,
}

impl DeployTrainer {
    /// Deploys the current weights if the chip does not hold them, recording the cost.
    fn deploy(&mut self) -> Result<()> {
        let before = self.chip.ledger().clone();
        let mlp = match &self.learner {
            Offline::Plain(l) => &l.mlp,
            Offline::Hwa(h) => h.mlp(),
        };
        self.deployer.ensure(mlp, self.chip.as_mut())?;
        let d = self.chip.ledger().since(&before);
        if !d.total().is_empty() {
            self.deployment = d;
        }
        Ok(())
    }

    fn host_ledger(&self) -> &Ledger {
        match &self.learner {
            Offline::Plain(l) => &l.ledger,
            Offline::Hwa(h) => &h.bp.ledger,
        }
    }
}

impl DeployTrainer {
    /// Whether the chip holds the current digital weights.
    pub fn is_deployed(&self) -> bool {
        self.deployer.is_current()
    }
}

impl Trainer for DeployTrainer {
    fn schedule(&self) -> Schedule {
        self.learner.schedule()
    }

    fn train_batch(
        &mut self,
        images: &Mat,
        labels: &[usize],
        gain: f32,
        s: &mut Streams,
    ) -> Result<BatchOutcome> {
        let st = match &mut self.learner {
            Offline::Plain(l) => l.train_batch(images, labels, gain)?,
            Offline::Hwa(h) => h.train_batch(images, labels, gain, &mut s.noise)?,
        };
        self.deployer.invalidate();
        Ok(outcome(st))
    }

    /// On the chip: the current weights are deployed first if they are not there yet.
    fn evaluate(&mut self, data: &Dataset, _full: bool, noise: &mut Rng) -> Result<Errors> {
        self.deploy()?;
        let e = onchip::evaluate(self.chip.as_mut(), data, &mut self.trace, noise);
        Ok(Errors {
            goodness: None,
            softmax: Some(e),
            ..Default::default()
        })
    }

    fn logits(&mut self, data: &Dataset, noise: &mut Rng) -> Result<Mat> {
        self.deploy()?;
        Ok(onchip::logits(
            self.chip.as_mut(),
            data,
            &mut self.trace,
            noise,
        ))
    }

    fn evaluate_digital(&mut self, data: &Dataset) -> Result<Option<f64>> {
        Ok(Some(evaluate_mlp(
            self.learner.mlp(),
            data,
            &mut self.trace,
        )))
    }

    fn substrate(&self) -> String {
        self.chip.describe()
    }

    fn substrate_id(&self) -> SubstrateId {
        chip_id(self.chip.as_ref())
    }

    fn tensors(&self) -> Vec<Tensor> {
        let mut out = tensor::prefixed(self.chip.save_state().tensors, "substrate/");
        out.extend(mlp_tensors(self.learner.mlp(), "bp/"));
        out.push(tensor::from_vec(
            "deploy/current",
            &[f32::from(u8::from(self.deployer.is_current()))],
        ));
        out
    }

    fn restore(&mut self, tensors: &[Tensor], saved: &SubstrateId) -> Result<Option<String>> {
        restore_mlp(self.learner.mlp_mut(), tensors, "bp/")?;
        let current = tensor::find(tensors, "deploy/current", &[1])?[0] != 0.0;
        let other_instance = load_chip(self.chip.as_mut(), tensors, saved)?;
        if other_instance.is_some() {
            // A digitally trained network is deployed onto a new chip by programming it.
            self.deployer.invalidate();
            self.deployer
                .ensure(self.learner.mlp(), self.chip.as_mut())?;
            return Ok(Some(format!(
                "the trained digital weights were programmed (write-and-verify) onto {}, \
                 a different instance from the one of the checkpoint: a fresh deployment",
                self.chip.describe()
            )));
        }
        if current {
            self.deployer.mark_current();
        } else {
            self.deployer.invalidate();
        }
        Ok(None)
    }

    fn advance_time(&mut self, seconds: f64) {
        self.chip.advance_time(seconds);
    }

    /// The offline training's host work and the chip's operations.
    fn ledger(&self) -> Ledger {
        let mut l = self.host_ledger().clone();
        l.absorb(self.chip.ledger());
        l
    }

    fn set_counting(&mut self, on: bool) {
        self.chip.ledger_mut().set_enabled(on);
        match &mut self.learner {
            Offline::Plain(l) => l.ledger.set_enabled(on),
            Offline::Hwa(h) => h.bp.ledger.set_enabled(on),
        }
    }

    /// One deployment of the trained weights (the chip's programming of random initial
    /// weights is not part of this route).
    fn setup_cost(&self, _initial: &Ledger) -> Ledger {
        self.deployment.clone()
    }
}

/// How a network is trained in situ.
pub enum InSitu {
    /// Physics-aware training (`bp-pat`).
    Pat(Box<PatLearner>),
    /// Analog SGD (`bp-analog`).
    Analog(Box<AnalogLearner>),
    /// The Tiki-Taka family (`bp-ttv2`, `bp-cttv2`, `bp-agad`).
    Transfer(Box<TransferLearner>),
}

/// `bp-pat` and `bp-analog`: training on the chip; the weights live in its conductances.
pub struct InSituTrainer {
    /// The learner.
    pub learner: InSitu,
    /// The chip trained on.
    pub chip: Box<dyn Substrate>,
    trace: Trace,
}

impl Trainer for InSituTrainer {
    fn schedule(&self) -> Schedule {
        match &self.learner {
            InSitu::Pat(p) => p.config().schedule,
            InSitu::Analog(a) => a.config().schedule,
            InSitu::Transfer(t) => t.config().schedule,
        }
    }

    fn train_batch(
        &mut self,
        images: &Mat,
        labels: &[usize],
        gain: f32,
        s: &mut Streams,
    ) -> Result<BatchOutcome> {
        let chip = self.chip.as_mut();
        let st = match &mut self.learner {
            InSitu::Pat(p) => p.train_batch(chip, images, labels, gain, &mut s.noise)?,
            InSitu::Analog(a) => a.train_batch(chip, images, labels, gain, &mut s.noise)?,
            InSitu::Transfer(t) => t.train_batch(chip, images, labels, gain, &mut s.noise)?,
        };
        Ok(outcome(st))
    }

    fn evaluate(&mut self, data: &Dataset, _full: bool, noise: &mut Rng) -> Result<Errors> {
        let e = onchip::evaluate(self.chip.as_mut(), data, &mut self.trace, noise);
        Ok(Errors {
            goodness: None,
            softmax: Some(e),
            ..Default::default()
        })
    }

    fn logits(&mut self, data: &Dataset, noise: &mut Rng) -> Result<Mat> {
        Ok(onchip::logits(
            self.chip.as_mut(),
            data,
            &mut self.trace,
            noise,
        ))
    }

    /// `bp-pat`: the host's nominal twin, evaluated digitally.
    fn evaluate_digital(&mut self, data: &Dataset) -> Result<Option<f64>> {
        Ok(match &self.learner {
            InSitu::Pat(p) => Some(evaluate_mlp(&p.host, data, &mut self.trace)),
            InSitu::Analog(_) | InSitu::Transfer(_) => None,
        })
    }

    fn substrate(&self) -> String {
        self.chip.describe()
    }

    fn substrate_id(&self) -> SubstrateId {
        chip_id(self.chip.as_ref())
    }

    fn tensors(&self) -> Vec<Tensor> {
        let mut out = tensor::prefixed(self.chip.save_state().tensors, "substrate/");
        match &self.learner {
            InSitu::Pat(p) => out.extend(mlp_tensors(&p.host, "pat/host/")),
            InSitu::Transfer(t) => out.extend(t.tensors()),
            InSitu::Analog(_) => {}
        }
        out
    }

    fn restore(&mut self, tensors: &[Tensor], saved: &SubstrateId) -> Result<Option<String>> {
        match &mut self.learner {
            InSitu::Pat(p) => restore_mlp(&mut p.host, tensors, "pat/host/")?,
            // The fast arrays and buffers are training state: restored when present
            // (resuming on the same chip), not needed to evaluate C elsewhere.
            InSitu::Transfer(t) => {
                if tensors.iter().any(|(n, _, _)| n.starts_with("transfer/")) {
                    t.restore(tensors)?;
                }
            }
            InSitu::Analog(_) => {}
        }
        load_chip(self.chip.as_mut(), tensors, saved)
    }

    fn advance_time(&mut self, seconds: f64) {
        self.chip.advance_time(seconds);
        if let InSitu::Transfer(t) = &mut self.learner {
            t.fast.advance_time(seconds);
        }
    }

    fn ledger(&self) -> Ledger {
        let mut l = self.chip.ledger().clone();
        if let InSitu::Transfer(t) = &self.learner {
            l.absorb(t.fast.ledger());
        }
        l
    }

    fn set_counting(&mut self, on: bool) {
        self.chip.ledger_mut().set_enabled(on);
        if let InSitu::Transfer(t) = &mut self.learner {
            t.fast.ledger_mut().set_enabled(on);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Splits;
    use crate::data::synthetic::{SyntheticConfig, splits};
    use crate::learn::{BpConfig, OptimizerConfig};
    use crate::progress::Reporter;
    use crate::train::{ChipConfig, RunOptions, RunResults, load_checkpoint, run};

    fn data() -> Splits {
        splits(&SyntheticConfig {
            seed: 3,
            train: 600,
            valid: 200,
            test: 300,
        })
        .unwrap()
    }

    fn config(algo: Algo, chip: Option<&str>, momentum: f32) -> TrainConfig {
        TrainConfig {
            algo,
            layers: crate::train::layers::dense(&[32]),
            epochs: 2,
            batch: 30,
            seed: 4,
            eval_every: 1,
            bp: BpConfig {
                optimizer: OptimizerConfig::Sgd {
                    lr: 0.1,
                    momentum,
                    weight_decay: 1e-4,
                },
                ..BpConfig::default()
            },
            chip: chip.map(|c| ChipConfig::from_source(c, 2, 1.0).unwrap()),
            ..TrainConfig::default()
        }
    }

    fn train(cfg: &TrainConfig, data: &Splits, out: Option<&std::path::Path>) -> RunResults {
        run(
            cfg,
            data,
            &RunOptions {
                out: out.map(std::path::Path::to_path_buf),
                reporter: Reporter::quiet(),
                checkpoint: out.is_some(),
                count: true,
            },
        )
        .unwrap()
    }

    /// On the ideal chip every way onto the chip is digital backprop: `bp-deploy` and
    /// `bp-hwa` (nothing to inject) exactly, `bp-pat` and `bp-analog` up to float
    /// round-off of the chip's weight representation (no extra randomness at all), so
    /// within one test image of 300.
    #[test]
    fn all_four_match_digital_backprop_on_the_ideal_chip() {
        let data = data();
        for momentum in [0.9, 0.0] {
            let bp = train(&config(Algo::Bp, None, momentum), &data, None);
            assert!(
                bp.test_error < 0.6,
                "digital bp should learn: {}",
                bp.test_error
            );
            let algos: &[Algo] = if momentum == 0.0 {
                &[Algo::BpDeploy, Algo::BpPat, Algo::BpAnalog]
            } else {
                &[Algo::BpDeploy, Algo::BpHwa, Algo::BpPat]
            };
            for &algo in algos {
                let r = train(&config(algo, Some("ideal"), momentum), &data, None);
                assert_eq!(r.chip.as_deref(), Some("ideal"));
                let tol = match algo {
                    Algo::BpDeploy | Algo::BpHwa => 0.0,
                    _ => 1.0 / 300.0 + 1e-9,
                };
                assert!(
                    (r.test_error - bp.test_error).abs() <= tol,
                    "{algo} (momentum {momentum}): {} vs digital {}",
                    r.test_error,
                    bp.test_error
                );
                if matches!(algo, Algo::BpDeploy | Algo::BpHwa) {
                    assert_eq!(r.test_error_digital, Some(bp.test_error), "{algo}");
                    assert!(r.train_seconds.is_finite());
                }
            }
        }
    }

    /// Deployment onto a noisy chip costs accuracy relative to the digital network it
    /// came from, and a checkpoint moved to another instance is deployed there afresh.
    #[test]
    fn deploy_evaluates_on_the_chip_and_redeploys_on_another_instance() {
        let data = data();
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(Algo::BpDeploy, Some("harsh"), 0.9);
        let r = train(&cfg, &data, Some(dir.path()));
        let digital = r.test_error_digital.unwrap();
        assert!(digital < 0.6, "{digital}");
        assert!(r.test_error.is_finite());
        // Same instance: the checkpoint reproduces the chip's test error.
        let mut same = load_checkpoint(dir.path(), None).unwrap();
        assert!(same.note.is_none());
        let (_, test) = crate::train::evaluate(same.trainer.as_mut(), &data, cfg.seed).unwrap();
        assert_eq!(test.softmax, Some(r.test_error));
        // Another instance: a fresh deployment of the same digital weights.
        let other = load_checkpoint(dir.path(), Some(9)).unwrap();
        let note = other.note.unwrap();
        assert!(note.contains("programmed") && note.contains("#9"), "{note}");
        let mut t = other.trainer;
        assert_eq!(t.evaluate_digital(&data.test).unwrap(), Some(digital));
    }

    /// PAT and analog SGD train on a noisy chip (the loss goes down), and their
    /// checkpoints hold the chip (and, for PAT, the twin).
    #[test]
    fn in_situ_backprop_learns_on_a_noisy_chip_and_checkpoints_the_chip() {
        let data = data();
        for (algo, momentum) in [(Algo::BpPat, 0.9), (Algo::BpAnalog, 0.0)] {
            let dir = tempfile::tempdir().unwrap();
            let cfg = TrainConfig {
                epochs: 3,
                ..config(algo, Some("reram"), momentum)
            };
            let r = train(&cfg, &data, Some(dir.path()));
            assert!(r.test_error < 0.7, "{algo}: {}", r.test_error);
            assert_eq!(r.test_error_digital.is_some(), algo == Algo::BpPat);
            let mut back = load_checkpoint(dir.path(), None).unwrap();
            let (_, test) = crate::train::evaluate(back.trainer.as_mut(), &data, cfg.seed).unwrap();
            assert_eq!(test.softmax, Some(r.test_error), "{algo}");
            let moved = load_checkpoint(dir.path(), Some(5)).unwrap();
            assert!(moved.note.unwrap().contains("conductances"), "{algo}");
        }
    }
}
