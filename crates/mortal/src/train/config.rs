//! The resolved, validated configuration of one training run.

use serde::{Deserialize, Serialize};

use super::layers::{self, LayerSpec};
use crate::data::DatasetKind;
use crate::data::synthetic::SyntheticConfig;
use crate::error::{Error, Result, ensure};
use crate::learn::ff::recurrent::RecurrentConfig;
use crate::learn::{BpConfig, FfConfig};
use crate::substrate::device::{Chip, HardwareSpec, presets};
use crate::substrate::{Precision, Topology};

/// Which learning algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Algo {
    /// Supervised Forward-Forward, trained through the substrate.
    Ff,
    /// Recurrent Forward-Forward with top-down connections (§3.4).
    FfRecurrent,
    /// Digital backprop.
    Bp,
    /// Digital backprop, then the weights are programmed onto the chip and evaluated there.
    BpDeploy,
    /// Hardware-aware backprop (noise from the chip's nominal spec), then deployed.
    BpHwa,
    /// Physics-aware backprop: forward on the chip, backward through the nominal twin.
    BpPat,
    /// Analog SGD: forward, transposed reads and rank-1 updates all on the chip.
    BpAnalog,
    /// Tiki-Taka v2: gradients pulsed onto a fast array, filtered into the weights.
    BpTtv2,
    /// Chopped Tiki-Taka v2.
    BpCttv2,
    /// AGAD: chopped transfer with a dynamic reference.
    BpAgad,
}

impl Algo {
    /// Every algorithm, in the order of the command line's help.
    pub const ALL: [Algo; 10] = [
        Algo::Ff,
        Algo::FfRecurrent,
        Algo::Bp,
        Algo::BpDeploy,
        Algo::BpHwa,
        Algo::BpPat,
        Algo::BpAnalog,
        Algo::BpTtv2,
        Algo::BpCttv2,
        Algo::BpAgad,
    ];

    /// Name on the command line and in result files.
    pub fn name(self) -> &'static str {
        match self {
            Algo::Ff => "ff",
            Algo::FfRecurrent => "ff-recurrent",
            Algo::Bp => "bp",
            Algo::BpDeploy => "bp-deploy",
            Algo::BpHwa => "bp-hwa",
            Algo::BpPat => "bp-pat",
            Algo::BpAnalog => "bp-analog",
            Algo::BpTtv2 => "bp-ttv2",
            Algo::BpCttv2 => "bp-cttv2",
            Algo::BpAgad => "bp-agad",
        }
    }

    /// Parses a name, listing the valid ones on error.
    pub fn parse(s: &str) -> Result<Self> {
        Algo::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Algo::ALL.iter().map(|a| a.name()).collect();
                Error::param(
                    "algo",
                    s,
                    format!("unknown algorithm; expected one of {}", names.join(", ")),
                )
            })
    }

    /// Whether the algorithm is backprop (any variant; it uses the `bp` settings).
    pub fn is_backprop(self) -> bool {
        !self.is_ff()
    }

    /// Whether the algorithm is Forward-Forward (any variant; it uses the `ff` settings).
    pub fn is_ff(self) -> bool {
        matches!(self, Algo::Ff | Algo::FfRecurrent)
    }

    /// Whether the algorithm is one of backprop's ways onto a chip (it needs one).
    pub fn needs_chip(self) -> bool {
        matches!(
            self,
            Algo::BpDeploy | Algo::BpHwa | Algo::BpPat | Algo::BpAnalog
        ) || self.is_transfer()
    }

    /// Whether the algorithm is one of the Tiki-Taka family.
    pub fn is_transfer(self) -> bool {
        matches!(self, Algo::BpTtv2 | Algo::BpCttv2 | Algo::BpAgad)
    }

    /// Whether the algorithm pulses plain SGD onto the chip (no momentum).
    pub fn is_plain_sgd(self) -> bool {
        self == Algo::BpAnalog || self.is_transfer()
    }
}

impl std::fmt::Display for Algo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything that defines a training run. Serialised in full into every result file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Learning algorithm.
    pub algo: Algo,
    /// Dataset.
    pub dataset: DatasetKind,
    /// Hidden layers: dense widths (units), e.g. `[2000, 2000, 2000, 2000]`, or local
    /// layers (`"local:4x4x128:f10:s6"`, see [`super::layers`]).
    pub layers: Vec<LayerSpec>,
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per batch.
    pub batch: usize,
    /// Master seed: weight initialisation, data order, negative labels and substrate noise
    /// streams are all derived from it (see [`Seeds`]).
    pub seed: u64,
    /// Evaluate the expensive validation measures (FF goodness per label) every this many
    /// epochs (and always after the last); the cheap ones run every epoch. 0 = only at the end.
    pub eval_every: usize,
    /// Use only the first N training images (None = all 50,000).
    pub train_limit: Option<usize>,
    /// Use only the first N validation and test images (None = all).
    pub eval_limit: Option<usize>,
    /// Settings of the synthetic dataset (used when `dataset = synthetic`).
    pub synthetic: SyntheticConfig,
    /// Forward-Forward settings (used when `algo` is `ff` or `ff-recurrent`).
    pub ff: FfConfig,
    /// Recurrent FF settings (used when `algo = ff-recurrent`).
    #[serde(default)]
    pub recurrent: RecurrentConfig,
    /// Backprop settings (used when `algo` is `bp` or one of the `bp-*` chip algorithms).
    pub bp: BpConfig,
    /// The analog chip to train on (FF in situ) or to get backprop onto (`bp-*`); `None` =
    /// the ideal digital substrate.
    pub chip: Option<ChipConfig>,
    /// Jitter augmentation of training images: each is shifted by up to this many pixels
    /// each way, drawn per sample from the seed (0 = off; 2 = the paper's 25 shifts).
    #[serde(default)]
    pub jitter: usize,
    /// Energy and latency model of the run's cost report: a preset name (`reram`, `pcm`)
    /// or a model TOML file ([`crate::cost::EnergyModel`]); `None`: the chip preset's own
    /// (`pcm` for `pcm`, else `reram`). Counting never changes a result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<String>,
    /// The contents of the model file `energy` names (a preset needs none), carried by the
    /// run itself ([`TrainConfig::embed_energy_model`]): moving or editing the file later
    /// changes nothing of the run, and an edited file makes a different configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_model: Option<crate::cost::EnergyModel>,
    /// Arithmetic of the run's large matrix products (`f32`, or `bf16` operands with f32
    /// accumulation): the substrate's (on a chip its analog reads and host ΔW) and the FF
    /// learners' weight gradients ([`crate::substrate::Substrate::set_precision`]). Absent
    /// from files of f32 runs.
    #[serde(default, skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
}

impl TrainConfig {
    /// The energy model of the run's cost report (see [`TrainConfig::energy`]).
    pub fn energy_model(&self) -> Result<crate::cost::EnergyModel> {
        if let Some(m) = &self.energy_model {
            return Ok(m.clone());
        }
        let source = match &self.energy {
            Some(s) => s.as_str(),
            None => {
                crate::cost::EnergyModel::default_for(self.chip.as_ref().map(|c| c.source.as_str()))
            }
        };
        crate::cost::EnergyModel::load(source)
    }
}

impl TrainConfig {
    /// Reads the model file `energy` names (resolved against `dir` when relative, e.g. a
    /// scenario's folder) into the configuration, so the run no longer depends on the
    /// file. Presets stay names.
    pub fn embed_energy_model(&mut self, dir: Option<&std::path::Path>) -> Result<()> {
        let Some(source) = self.energy.clone() else {
            return Ok(());
        };
        if crate::cost::EnergyModel::is_preset(&source) {
            return Ok(());
        }
        let path = std::path::Path::new(&source);
        let path = match dir {
            Some(d) if path.is_relative() => d.join(path),
            _ => path.to_path_buf(),
        };
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::io(format!("cannot read energy model {origin}"), e))?;
        self.energy_model = Some(crate::cost::EnergyModel::parse(&text, &origin)?);
        Ok(())
    }
}

/// Which chip a run uses: a hardware family, an instance seed and a variation level.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChipConfig {
    /// Where the spec came from: a preset name (`ideal`, `reram`, `pcm`, `harsh`) or the path
    /// of a spec TOML file.
    pub source: String,
    /// The chip family before `variation` is applied.
    pub spec: HardwareSpec,
    /// Seed of the instance: device-to-device variation, stuck devices, neuron curves and
    /// black box are drawn from it.
    pub chip_seed: u64,
    /// Multiplier of every spread and noise of the spec (dimensionless; 0 = no randomness,
    /// 1 = as specified).
    pub variation: f64,
}

impl ChipConfig {
    /// A chip from a preset name or a spec TOML file (keys not in the file keep the
    /// defaults, which are the `reram` preset's).
    pub fn from_source(source: &str, chip_seed: u64, variation: f64) -> Result<Self> {
        let spec = if source.ends_with(".toml") || std::path::Path::new(source).exists() {
            let text = std::fs::read_to_string(source)
                .map_err(|e| Error::io(format!("cannot read chip spec {source}"), e))?;
            toml::from_str::<HardwareSpec>(&text).map_err(|e| {
                Error::param(
                    "chip",
                    source,
                    format!("not a valid hardware spec: {}", e.message()),
                )
            })?
        } else {
            presets::by_name(source)?
        };
        Ok(Self {
            source: source.to_string(),
            spec,
            chip_seed,
            variation,
        })
    }

    /// The spec with `variation` applied.
    pub fn effective_spec(&self) -> HardwareSpec {
        self.spec.scaled(self.variation)
    }

    /// Checks the variation and the spec.
    pub fn validate(&self) -> Result<()> {
        ensure(
            self.variation.is_finite() && self.variation >= 0.0,
            "variation",
            self.variation,
            "must be ≥ 0",
        )?;
        self.spec.validate()?;
        // The spec is valid as written: a failure now comes from the variation scaling.
        self.effective_spec().validate().map_err(|e| match e {
            Error::Param { key, value, reason } => Error::param(
                "variation",
                self.variation,
                format!("scales {key} to {value}, which {reason}"),
            ),
            other => other,
        })
    }

    /// Builds the chip instance for `topology`, starting from the initial weights of
    /// `init_seed`.
    pub fn build(&self, topology: Topology, init_seed: u64) -> Result<Chip> {
        Chip::new(&self.effective_spec(), topology, self.chip_seed, init_seed)
    }
}

impl TrainConfig {
    /// Analog-native FF runs only where it can: FF on a chip whose update mode drives
    /// rank-1 pulse trains without the host's ΔW.
    fn check_native(&self) -> Result<()> {
        use crate::substrate::device::spec::UpdateMode;
        ensure(
            self.algo == Algo::Ff,
            "ff.mode",
            "analog-native",
            &format!("is a mode of --algo ff, not of {}", self.algo),
        )?;
        let Some(chip) = &self.chip else {
            return Err(Error::param(
                "ff.mode",
                "analog-native",
                "runs on a chip's periphery: pass --chip PRESET|spec.toml (the digital \
                 substrate has no analog chain)",
            ));
        };
        let mode = chip.spec.update.mode;
        ensure(
            matches!(
                mode,
                UpdateMode::StochasticPulse | UpdateMode::ResetOnly | UpdateMode::Ideal
            ),
            "chip.update.mode",
            serde_json::to_value(mode)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            "needs the host's ΔW, which analog-native FF never forms: use stochastic-pulse, \
             reset-only or ideal",
        )
    }

    /// The defaults for `algo`: as [`Default`], except that `bp-analog` uses plain SGD
    /// (momentum 0, which pulsed rank-1 updates require) at the learning rate that gives
    /// the same steady-state step as the default momentum 0.9 (lr 0.05 / (1 − 0.9)).
    pub fn for_algo(algo: Algo) -> Self {
        let mut cfg = Self {
            algo,
            ..Self::default()
        };
        if let (true, crate::learn::OptimizerConfig::Sgd { lr, momentum, .. }) =
            (algo.is_plain_sgd(), &mut cfg.bp.optimizer)
        {
            *lr /= 1.0 - *momentum;
            *momentum = 0.0;
        }
        cfg
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            algo: Algo::Ff,
            dataset: DatasetKind::Synthetic,
            layers: vec![LayerSpec::Dense(500), LayerSpec::Dense(500)],
            epochs: 10,
            batch: 100,
            seed: 1,
            eval_every: 5,
            train_limit: None,
            eval_limit: None,
            synthetic: SyntheticConfig::default(),
            ff: FfConfig::default(),
            recurrent: RecurrentConfig::default(),
            bp: BpConfig::default(),
            chip: None,
            jitter: 0,
            energy: None,
            energy_model: None,
            precision: Precision::F32,
        }
    }
}

/// The independent random streams of a run, derived from its master seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seeds {
    /// Master seed.
    pub master: u64,
    /// Initial weights.
    pub init: u64,
    /// Order of training samples in each epoch.
    pub order: u64,
    /// Negative labels.
    pub negatives: u64,
    /// Per-call noise of the substrate.
    pub noise: u64,
}

impl Seeds {
    /// Streams derived from `master`.
    pub fn from_master(master: u64) -> Self {
        use crate::rng::derive;
        Self {
            master,
            init: derive(master, "init"),
            order: derive(master, "order"),
            negatives: derive(master, "negatives"),
            noise: derive(master, "noise"),
        }
    }
}

impl TrainConfig {
    /// Loads the data this run trains and evaluates on (its dataset, synthetic settings
    /// and limits), from data directory `dir` (see [`crate::data::resolve_data_dir`]).
    pub fn load_data(&self, dir: Option<&std::path::Path>) -> Result<crate::data::Splits> {
        crate::data::load(
            self.dataset,
            &crate::data::DataSource {
                dir: dir.map(std::path::Path::to_path_buf),
                synthetic: self.synthetic.clone(),
                train_limit: self.train_limit,
                eval_limit: self.eval_limit,
            },
        )
    }

    /// Checks every setting; errors name the offending key.
    pub fn validate(&self) -> Result<()> {
        self.energy_model()?;
        let geometry = self.dataset.geometry();
        for net in ["cifar-local2", "cifar-local3"] {
            if layers::named(net).is_ok_and(|l| l == self.layers)
                && geometry != crate::data::cifar::geometry()
            {
                return Err(Error::param(
                    "net",
                    net,
                    format!(
                        "needs 32 × 32 × 3 images (--dataset cifar10 or synthetic-color); {} \
                         images are {} × {} × {}",
                        self.dataset, geometry.h, geometry.w, geometry.c
                    ),
                ));
            }
        }
        layers::validate(&self.layers, geometry)?;
        if self.dataset.is_synthetic() {
            self.synthetic.validate()?;
        }
        self.check_memory()?;
        if self.algo.is_backprop() && self.algo != Algo::Bp && !layers::all_dense(&self.layers) {
            return Err(Error::param(
                "layers",
                self.layers_tag(),
                format!(
                    "{} needs dense layers; local layers train with --algo ff, ff-recurrent or bp",
                    self.algo
                ),
            ));
        }
        ensure(self.epochs > 0, "epochs", self.epochs, "must be at least 1")?;
        let side = self.dataset.geometry().h.min(self.dataset.geometry().w);
        ensure(
            self.jitter < side,
            "augment",
            format!("jitter:{}", self.jitter),
            &format!("shifts must be smaller than the {side}-pixel image"),
        )?;
        if self.ff.negatives == crate::learn::ff::NegativeLabels::Hybrid {
            ensure(
                self.algo == Algo::Ff,
                "negatives",
                "hybrid",
                "hybrid negatives are for unsupervised FF (--algo ff)",
            )?;
            ensure(
                self.batch >= 2,
                "batch",
                self.batch,
                "hybrid negatives mix two different images: need a batch of at least 2",
            )?;
        }
        ensure(self.batch > 0, "batch", self.batch, "must be at least 1")?;
        if let Some(n) = self.train_limit {
            ensure(n > 0, "train_limit", n, "must be at least 1")?;
        }
        if let Some(n) = self.eval_limit {
            ensure(n > 0, "eval_limit", n, "must be at least 1")?;
        }
        if let Some(chip) = &self.chip {
            chip.validate()?;
            if self.algo == Algo::Bp {
                return Err(Error::param(
                    "chip",
                    &chip.source,
                    "digital backprop (bp) does not run on a chip; train FF in situ (--algo ff) \
                     or use backprop's ways onto a chip (--algo bp-deploy, bp-hwa, bp-pat, \
                     bp-analog)",
                ));
            }
        } else if self.algo.needs_chip() {
            return Err(Error::param(
                "chip",
                "none",
                format!(
                    "{} needs a chip: pass --chip PRESET|spec.toml (presets: {})",
                    self.algo,
                    crate::substrate::device::presets::NAMES.join(", ")
                ),
            ));
        }
        if self.ff.mode == crate::learn::ff::FfMode::AnalogNative {
            self.check_native()?;
        }
        match self.algo {
            Algo::Ff => self.ff.validate(self.layers.len()),
            Algo::FfRecurrent => {
                self.ff.validate(self.layers.len())?;
                self.recurrent.validate()?;
                ensure(
                    self.ff.negatives != crate::learn::ff::NegativeLabels::Hybrid,
                    "negatives",
                    "hybrid",
                    "recurrent FF has the label at the top: use hard or random negatives",
                )?;
                ensure(
                    self.ff.phase_block == 0,
                    "phase_block",
                    self.ff.phase_block,
                    "sleep phases are not available with recurrent FF (use 0)",
                )?;
                self.recurrent_topology().map(|_| ())
            }
            Algo::BpAnalog => crate::learn::backprop::analog::check_config(&self.bp),
            Algo::BpTtv2 | Algo::BpCttv2 | Algo::BpAgad => {
                crate::learn::backprop::transfer::check_config(&self.bp)
            }
            Algo::Bp | Algo::BpDeploy | Algo::BpHwa | Algo::BpPat => self.bp.validate(),
        }
    }

    /// The optimiser settings of the run's algorithm (`ff.optimizer` or `bp.optimizer`).
    pub fn optimizer_mut(&mut self) -> &mut crate::learn::OptimizerConfig {
        if self.algo.is_backprop() {
            &mut self.bp.optimizer
        } else {
            &mut self.ff.optimizer
        }
    }

    /// A rough upper estimate of the memory a run of this configuration needs, bytes:
    /// per existing weight its value, optimiser state and (on a chip) its conductance
    /// pair, device properties and buffers; per unit the batch's activity buffers; the
    /// data set itself.
    pub fn estimated_bytes(&self) -> f64 {
        let widths = self.widths();
        let weights: f64 = if self.algo == Algo::Ff {
            self.ff_topology()
                .map_or(f64::INFINITY, |t| t.weight_count() as f64)
        } else if self.algo == Algo::FfRecurrent {
            self.recurrent_topology()
                .map_or(f64::INFINITY, |t| t.weight_count() as f64)
        } else {
            let mut w = vec![self.dataset.geometry().units()];
            w.extend(&widths);
            w.push(crate::data::CLASSES);
            w.windows(2).map(|p| p[0] as f64 * p[1] as f64).sum()
        };
        let per_weight = 12.0 + if self.chip.is_some() { 48.0 } else { 0.0 };
        let units: f64 =
            widths.iter().map(|w| *w as f64).sum::<f64>() + self.dataset.geometry().units() as f64;
        let per_unit = 4.0 * 24.0 * (self.batch.max(100) as f64);
        let per_image = (self.dataset.geometry().units() + 1) as f64;
        let data = match self.dataset {
            DatasetKind::Synthetic | DatasetKind::SyntheticColor => {
                let s = &self.synthetic;
                (s.train + s.valid + s.test) as f64 * per_image
            }
            _ => 70_000.0 * per_image,
        };
        weights * per_weight + units * per_unit + data
    }

    /// Refuses a run whose estimated memory exceeds what the machine has available.
    fn check_memory(&self) -> Result<()> {
        let need = self.estimated_bytes();
        let have = crate::resources::available_bytes().unwrap_or(16 << 30) as f64;
        if need > have {
            return Err(Error::param(
                "layers",
                self.layers_tag(),
                format!(
                    "this run needs about {} of memory, {} is available (weights, batch {}, \
                     data); use fewer or smaller layers",
                    crate::resources::gib(need),
                    crate::resources::gib(have),
                    self.batch
                ),
            ));
        }
        Ok(())
    }

    /// Hidden widths (units per layer).
    pub fn widths(&self) -> Vec<usize> {
        layers::widths(&self.layers)
    }

    /// The FF network: the dataset's image map, then the hidden layers (ReLU).
    pub fn ff_topology(&self) -> Result<Topology> {
        layers::topology(
            &self.layers,
            self.dataset.geometry(),
            crate::substrate::Activation::Relu,
        )
    }

    /// The recurrent FF network (`ff-recurrent`): the image, the hidden layers (ReLU),
    /// each fed from below and from above, and the 10-unit label layer on top.
    pub fn recurrent_topology(&self) -> Result<Topology> {
        layers::recurrent_topology(&self.layers, self.dataset.geometry())
    }

    /// The layers as one file-name-safe tag (`500x500`, `local-4x4x128-f10-s6x…`).
    pub fn layers_tag(&self) -> String {
        let parts: Vec<String> = self
            .layers
            .iter()
            .map(|l| l.to_string().replace(':', "-"))
            .collect();
        parts.join("x")
    }

    /// Seeds of the run's random streams.
    pub fn seeds(&self) -> Seeds {
        Seeds::from_master(self.seed)
    }

    /// A default output directory name:
    /// `runs/<algo>-<dataset>-<layers>[-<chip>-c<chip seed>-v<variation>]-s<seed>-<hash>`,
    /// where `<hash>` is the first 8 hex digits of the MD5 of the whole configuration, so
    /// runs that differ in any setting (learning rate, epochs, …) never share a directory.
    pub fn default_out_dir(&self) -> std::path::PathBuf {
        let chip = self.chip.as_ref().map_or(String::new(), |c| {
            let name = std::path::Path::new(&c.source)
                .file_stem()
                .map_or(c.source.clone(), |s| s.to_string_lossy().into_owned());
            format!("-{name}-c{}-v{}", c.chip_seed, c.variation)
        });
        std::path::PathBuf::from("runs").join(format!(
            "{}-{}-{}{chip}-s{}-{}",
            self.algo,
            self.dataset,
            self.layers_tag(),
            self.seed,
            &crate::scenario::sweep::config_hash(self)[..8]
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_rejects_bad_values_with_their_key() {
        let ok = TrainConfig::default();
        assert!(ok.validate().is_ok());
        let cases: Vec<(TrainConfig, &str)> = vec![
            (
                TrainConfig {
                    layers: vec![],
                    ..ok.clone()
                },
                "layers",
            ),
            (
                TrainConfig {
                    layers: vec![LayerSpec::Dense(10), LayerSpec::Dense(0)],
                    ..ok.clone()
                },
                "layers[1]",
            ),
            (
                TrainConfig {
                    epochs: 0,
                    ..ok.clone()
                },
                "epochs",
            ),
            (
                TrainConfig {
                    batch: 0,
                    ..ok.clone()
                },
                "batch",
            ),
            (
                TrainConfig {
                    layers: vec![LayerSpec::Dense(100)],
                    ..ok.clone()
                },
                "ff.eval_from",
            ),
        ];
        for (cfg, key) in cases {
            let e = cfg.validate().unwrap_err().to_string();
            assert!(
                e.contains(&format!("`{key}`")),
                "expected key {key} in: {e}"
            );
        }
    }

    #[test]
    fn algo_names_round_trip() {
        for a in Algo::ALL {
            assert_eq!(Algo::parse(a.name()).unwrap(), a);
            let json = serde_json::to_value(a).unwrap();
            assert_eq!(json, serde_json::json!(a.name()));
            assert_eq!(serde_json::from_value::<Algo>(json).unwrap(), a);
        }
        let e = Algo::parse("bp-magic").unwrap_err().to_string();
        assert!(e.contains("bp-magic") && e.contains("bp-analog"), "{e}");
    }

    /// Backprop runs on a chip only through its chip algorithms, and those need one; FF
    /// runs with or without.
    #[test]
    fn chip_rules_per_algorithm() {
        let chip = ChipConfig::from_source("reram", 1, 1.0).unwrap();
        let with = |algo, chip: Option<ChipConfig>| TrainConfig {
            algo,
            chip,
            ..TrainConfig::default()
        };
        let key_of = |cfg: TrainConfig| match cfg.validate() {
            Err(Error::Param { key, .. }) => Some(key),
            Err(e) => panic!("unexpected error {e}"),
            Ok(()) => None,
        };
        assert_eq!(key_of(with(Algo::Ff, None)), None);
        assert_eq!(key_of(with(Algo::Ff, Some(chip.clone()))), None);
        assert_eq!(key_of(with(Algo::Bp, None)), None);
        assert_eq!(
            key_of(with(Algo::Bp, Some(chip.clone()))).as_deref(),
            Some("chip")
        );
        for a in [Algo::BpDeploy, Algo::BpHwa, Algo::BpPat] {
            assert_eq!(key_of(with(a, Some(chip.clone()))), None, "{a}");
            assert_eq!(key_of(with(a, None)).as_deref(), Some("chip"), "{a}");
        }
        // Analog SGD: a chip and plain SGD.
        assert_eq!(key_of(with(Algo::BpAnalog, None)).as_deref(), Some("chip"));
        assert_eq!(
            key_of(with(Algo::BpAnalog, Some(chip.clone()))).as_deref(),
            Some("bp.optimizer.momentum")
        );
        let mut ok = with(Algo::BpAnalog, Some(chip));
        *ok.optimizer_mut() = crate::learn::OptimizerConfig::Sgd {
            lr: 0.1,
            momentum: 0.0,
            weight_decay: 0.0,
        };
        assert_eq!(key_of(ok.clone()), None);
        ok.bp.optimizer = crate::learn::OptimizerConfig::adam(1e-3, 0.0);
        assert_eq!(key_of(ok).as_deref(), Some("bp.optimizer"));
    }

    #[test]
    fn seeds_are_distinct_streams() {
        let s = Seeds::from_master(5);
        let all = [s.init, s.order, s.negatives, s.noise];
        for i in 0..4 {
            for j in i + 1..4 {
                assert_ne!(all[i], all[j]);
            }
        }
        assert_eq!(s, Seeds::from_master(5));
    }
}
