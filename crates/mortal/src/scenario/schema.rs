//! The scenario file format (`scenarios/*.toml`).
//!
//! ```toml
//! version = 1                      # format version
//! name = "noise_sweep"             # output directory runs/<name>, figure titles
//! description = "FF in situ vs backprop as device variation grows"
//!
//! [data]                           # DataSection
//! dataset = "mnist"                # synthetic | mnist | fashion-mnist
//! train_limit = 10000              # first N training images (default all 50,000)
//! eval_limit = 2000                # first N validation and test images
//!
//! [model]                          # ModelSection
//! layers = [256, 256]              # hidden widths, units
//!
//! [train]                          # every key of TrainConfig except data, layers, chip
//! algo = "ff"
//! epochs = 4
//! [train.ff.optimizer]             # partial: unspecified keys keep their defaults
//! lr = 0.002
//!
//! [hardware]                       # HardwareSection; omit for the digital substrate
//! preset = "reram"                 # or spec_file = "my_chip.toml"
//! variation = 1.0
//! chip_seed = 1
//! [hardware.spec.adc]              # overrides of any HardwareSpec field
//! bits = 8
//!
//! [sweep]                          # SweepSection
//! chip_seeds = [1, 2, 3]
//! algos = ["ff", "bp-deploy"]
//! [[sweep.axes]]
//! path = "hardware.variation"
//! values = [0, 0.5, 1, 2, 4]
//! [sweep.per_algo.bp-analog.train.bp.optimizer]   # only for bp-analog runs
//! momentum = 0.0
//!
//! [output]                         # OutputSection
//! title = "MNIST, 2×256: test error vs device variation"
//! ```
//!
//! A distillation scenario has `[distill]` ([`DistillSection`]) instead of `[sweep]`: the
//! run the sections describe is the teacher, and `[distill]` lists the students.
//!
//! `[data]`, `[model]`, `[train]` and `[hardware]` may be partial: they are merged over the
//! defaults (those of [`crate::train::TrainConfig`], and of the hardware preset), then
//! deserialised into the typed sections below, so every key and type is checked.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::data::DatasetKind;
use crate::data::synthetic::SyntheticConfig;
use crate::learn::distill::{DistillConfig, DistillLoss, Init, ScoreSource};
use crate::substrate::device::HardwareSpec;
use crate::train::Algo;
use crate::train::distill::BaselineSet;

/// The format version this build reads.
pub const VERSION: u32 = 1;

/// A scenario file as written. The four configuration sections stay JSON values here
/// (partial, checked during resolution); `[sweep]` and `[output]` are typed directly.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Format version; must be 1.
    pub version: u32,
    /// Short name (letters, digits, `-`, `_`, `.`): default output directory `runs/<name>`.
    pub name: String,
    /// What the scenario shows (one or two sentences).
    #[serde(default)]
    pub description: String,
    /// `[data]`, see [`DataSection`].
    #[serde(default)]
    pub data: Option<Value>,
    /// `[model]`, see [`ModelSection`].
    #[serde(default)]
    pub model: Option<Value>,
    /// `[train]`: any key of [`crate::train::TrainConfig`] except `dataset`,
    /// `train_limit`, `eval_limit`, `synthetic` (in `[data]`), `layers` (in `[model]`)
    /// and `chip` (in `[hardware]`): `algo`, `epochs`, `batch`, `seed`, `eval_every`,
    /// `[train.ff]` ([`crate::learn::FfConfig`]), `[train.bp]` ([`crate::learn::BpConfig`]).
    #[serde(default)]
    pub train: Option<Value>,
    /// `[hardware]`, see [`HardwareSection`]; absent = the ideal digital substrate.
    #[serde(default)]
    pub hardware: Option<Value>,
    /// `[sweep]`; absent = a single run.
    #[serde(default)]
    pub sweep: Option<SweepSection>,
    /// `[distill]`: makes this a distillation scenario, see [`DistillSection`].
    #[serde(default)]
    pub distill: Option<DistillSection>,
    /// `[output]`.
    #[serde(default)]
    pub output: OutputSection,
}

/// `[distill]`: the scenario's run (its `[data]`, `[model]`, `[train]`, `[hardware]`) is
/// the teacher (any algorithm), trained once into `<out>/teacher/`; each
/// student (every combination of `student_chips`, `variations`, `transfer`,
/// `student_seeds` and `losses`, in that order) is a fresh chip trained in situ by FF to match the
/// teacher's probabilities, compared with copying the teacher's conductances and with FF
/// from scratch on the transfer images' labels (as `mortal distill`). A distillation
/// scenario has no `[sweep]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillSection {
    /// Student chips: presets (`ideal`, `reram`, `pcm`, `harsh`) or spec TOML files
    /// (relative to the scenario file). Default: the teacher's chip, its `[hardware]`
    /// spec overrides included.
    pub student_chips: Option<Vec<String>>,
    /// Student chip instances (seeds; default `[2]`).
    #[serde(default = "default_student_seeds")]
    pub student_seeds: Vec<u64>,
    /// Variation multipliers of the student chips' spreads and noises (dimensionless;
    /// default `[1]`).
    #[serde(default = "default_variations")]
    pub variations: Vec<f64>,
    /// Transfer-set sizes: the first N training images (images; required).
    pub transfer: Vec<usize>,
    /// Never read the transfer images' true labels (the scratch baseline still does).
    #[serde(default)]
    pub unlabelled: bool,
    /// Temperature T of the soft targets and of the negatives' distribution
    /// (dimensionless, default 2).
    #[serde(default = "default_temperature")]
    pub temperature: f32,
    /// Teacher scores that define its distribution: `softmax` (default) or `goodness`.
    #[serde(default = "default_source")]
    pub source: ScoreSource,
    /// Weight of the true label mixed into targets and positives, in [0, 1] (default 0).
    #[serde(default)]
    pub hard_weight: f32,
    /// Temperature of the teacher distribution positives are drawn from (dimensionless;
    /// 0 = its top-1; default 1).
    #[serde(default = "default_positive_temperature")]
    pub positive_temperature: f32,
    /// The student layers' losses, each a set of students: `contrastive` (FF's own,
    /// positives and hard negatives drawn from the teacher) and/or `layer-kl` (each
    /// layer's per-label goodness softmax matched to the teacher; 11 passes per image).
    /// Default `["contrastive"]`.
    #[serde(default = "default_losses")]
    pub losses: Vec<DistillLoss>,
    /// Temperature τ of each layer's per-label goodness softmax for `layer-kl`
    /// (squared-activity units of goodness, default 20).
    #[serde(default = "default_layer_temperature")]
    pub layer_temperature: f32,
    /// Student epochs, distillation and scratch alike (default 10).
    #[serde(default = "default_student_epochs")]
    pub epochs: usize,
    /// Each student sees at least this many samples: epochs = max(epochs, ⌈S / N⌉)
    /// (samples; default 0).
    #[serde(default)]
    pub min_samples: usize,
    /// Students' training master seed (initial weights, data order, label draws, noise;
    /// default 1).
    #[serde(default = "default_student_master_seed")]
    pub seed: u64,
    /// Also measure error and agreement by goodness per label (11 passes per test image).
    #[serde(default)]
    pub goodness: bool,
    /// Where each student starts: `auto` (default: `copy` where the teacher is an FF
    /// network of the student's shape), `copy` or `scratch`.
    #[serde(default)]
    pub init: Init,
    /// Largest shift of each view, pixels (default: the library's, 0).
    #[serde(default = "default_jitter")]
    pub jitter: usize,
    /// Fraction of views mixing two transfer images (default: the library's, 0).
    #[serde(default = "default_mixup")]
    pub mixup: f32,
    /// Teacher reads per view, averaged (default 1).
    #[serde(default = "default_teacher_reads")]
    pub teacher_reads: usize,
    /// Epochs at the start of a copy-initialised student that train only its head
    /// (default: the library's).
    #[serde(default = "default_head_epochs")]
    pub head_epochs: usize,
    /// Learning-rate multiplier of a copy-initialised student's layers after its head
    /// epochs (default: the library's).
    #[serde(default = "default_copy_layer_lr")]
    pub copy_layer_lr: f32,
    /// Who picks the students' negative labels: `teacher` or `student` (default: the
    /// library's).
    #[serde(default)]
    pub negatives: crate::learn::distill::NegativeSource,
    /// `basic` (default: copy and scratch) or `full` (also copy + labels and the other
    /// starting point).
    #[serde(default = "default_baselines")]
    pub baselines: BaselineSet,
    /// Weight β of the hints of `layer-kl` students (the teacher's layer activities on
    /// the same view; default: the library's, where the teacher can give them; 0 = none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint_weight: Option<f32>,
}

fn default_jitter() -> usize {
    DistillConfig::default().augment.jitter
}
fn default_mixup() -> f32 {
    DistillConfig::default().augment.mixup
}
fn default_teacher_reads() -> usize {
    DistillConfig::default().teacher_reads
}
fn default_head_epochs() -> usize {
    DistillConfig::default().head_epochs
}
fn default_copy_layer_lr() -> f32 {
    DistillConfig::default().copy_layer_lr
}
fn default_baselines() -> BaselineSet {
    BaselineSet::Basic
}

fn default_student_seeds() -> Vec<u64> {
    vec![2]
}
fn default_variations() -> Vec<f64> {
    vec![1.0]
}
fn default_temperature() -> f32 {
    DistillConfig::default().temperature
}
fn default_source() -> ScoreSource {
    DistillConfig::default().source
}
fn default_positive_temperature() -> f32 {
    DistillConfig::default().positive_temperature
}
fn default_losses() -> Vec<DistillLoss> {
    vec![DistillConfig::default().loss]
}
fn default_layer_temperature() -> f32 {
    DistillConfig::default().layer_temperature
}
fn default_student_epochs() -> usize {
    10
}
fn default_student_master_seed() -> u64 {
    1
}

/// `[data]`, resolved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Dataset: `synthetic` (built in, no files), `mnist` or `fashion-mnist` (default
    /// `synthetic`).
    pub dataset: DatasetKind,
    /// Use only the first N training images (images; default all).
    pub train_limit: Option<usize>,
    /// Use only the first N validation and test images (images; default all).
    pub eval_limit: Option<usize>,
    /// `[data.synthetic]`: sizes (images) and seed of the synthetic set.
    pub synthetic: SyntheticConfig,
}

/// `[model]`, resolved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Hidden layer widths, units (default `[500, 500]`). The input is 784 pixels and
    /// there are 10 classes.
    pub layers: Vec<crate::train::layers::LayerSpec>,
}

/// `[hardware]`, resolved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardwareSection {
    /// Hardware preset: `ideal`, `reram`, `pcm` or `harsh` (give this or `spec_file`).
    pub preset: Option<String>,
    /// A hardware spec TOML file (keys not in it keep the `reram` defaults), relative to
    /// the scenario file.
    pub spec_file: Option<String>,
    /// Multiplier of every spread and noise of the spec (dimensionless; 0 = no randomness,
    /// 1 = as specified; default 1). See [`HardwareSpec::scaled`].
    pub variation: f64,
    /// Seed of the chip instance: device-to-device variation, stuck devices, neuron
    /// curves, black box (default 1).
    pub chip_seed: u64,
    /// `[hardware.spec.*]`: overrides of any field of the preset's (or file's)
    /// [`HardwareSpec`], e.g. `[hardware.spec.adc] bits = 8`; units as documented there.
    pub spec: HardwareSpec,
}

/// `[sweep]`: the runs are every combination of the axes' values (first axis outermost),
/// chip seeds, training seeds and algorithms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSection {
    /// `[[sweep.axes]]`: swept settings.
    #[serde(default)]
    pub axes: Vec<AxisSpec>,
    /// Chip instances (`hardware.chip_seed`) each point runs on.
    pub chip_seeds: Option<Vec<u64>>,
    /// Training master seeds (`train.seed`) each point runs with.
    pub seeds: Option<Vec<u64>>,
    /// Algorithms (`train.algo`) each point runs. `bp` (digital backprop) ignores
    /// `[hardware]` and becomes one reference run per seed.
    pub algos: Option<Vec<Algo>>,
    /// Settings for the runs of one algorithm only, as partial sections, e.g.
    /// `[sweep.per_algo.bp-analog.train.bp.optimizer] momentum = 0.0` (applied before the
    /// axes' values). The algorithm must be in `algos`.
    pub per_algo: Option<std::collections::BTreeMap<String, Value>>,
}

/// One `[[sweep.axes]]` entry: a setting (`path`) or several moving together (`zip`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AxisSpec {
    /// Dotted path of the swept setting, e.g. `hardware.variation`,
    /// `hardware.spec.adc.bits`, `train.ff.optimizer.lr`, `model.layers`.
    pub path: Option<String>,
    /// Several paths moving together; then each of `values` is a list with one value per
    /// path, e.g. `zip = ["hardware.spec.adc.bits", "hardware.spec.dac.bits"]`,
    /// `values = [[4, 4], [8, 8]]`. The first path is the one on the figures' x axis.
    pub zip: Option<Vec<String>>,
    /// The values, in order (numbers, strings, booleans or lists, as the setting takes).
    pub values: Vec<Value>,
    /// Axis label with unit for the figures (default: a known label for the path, else
    /// the path).
    pub label: Option<String>,
}

/// Figures `mortal plot` draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Figure {
    /// Test error vs the swept axis, one line per algorithm, mean ± std over seeds.
    Error,
    /// Validation error vs epoch, per algorithm, one line per sweep point.
    Curves,
    /// First-layer receptive fields (weights of the first units as 28×28 images).
    Fields,
    /// Conductance histogram of a chip before and after training.
    Conductance,
    /// Test error vs training energy per sample (log x), one point per run, a line per
    /// algorithm (Forward-Forward twice: as simulated and analog-native). Drawn only when
    /// asked for (`plots = [..., "energy"]`).
    Energy,
}

/// `[output]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputSection {
    /// Output directory (default `runs/<name>`, `runs/<name>-smoke` with `--smoke`;
    /// `mortal run --out` overrides; relative to the working directory).
    pub dir: Option<PathBuf>,
    /// Figures to draw (default all four).
    pub plots: Vec<Figure>,
    /// Title of the figures (default: the scenario's name).
    pub title: Option<String>,
    /// Swept path on the x axis of the error figure (default: the first axis).
    pub x: Option<String>,
    /// X axis label with unit (default: the axis's `label`, a known label, or the path).
    pub x_label: Option<String>,
    /// Logarithmic x axis (needs positive values).
    pub log_x: bool,
    /// Logarithmic y (error) axis.
    pub log_y: bool,
    /// Units shown in the receptive-field grid (default 36).
    pub field_units: usize,
    /// Checkpoints kept per run: `all` (default: the trained network, and a chip run's
    /// chip before training for the conductance figure), `final` (the trained network
    /// only) or `none` (no checkpoint: the receptive-field and conductance figures are
    /// skipped; a 61-run sweep of 2×256 chips writes about 350 MB with `all`).
    pub checkpoints: Checkpoints,
}

/// Which checkpoints a scenario's runs keep.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Checkpoints {
    /// The trained network and a chip's state before training.
    #[default]
    All,
    /// The trained network only.
    Final,
    /// None.
    None,
}

impl Default for OutputSection {
    fn default() -> Self {
        Self {
            dir: None,
            plots: vec![
                Figure::Error,
                Figure::Curves,
                Figure::Fields,
                Figure::Conductance,
            ],
            title: None,
            x: None,
            x_label: None,
            log_x: false,
            log_y: false,
            field_units: 36,
            checkpoints: Checkpoints::All,
        }
    }
}

/// Known axis labels (with units) by path.
pub fn known_label(path: &str) -> Option<&'static str> {
    Some(match path {
        "hardware.variation" => "device variation (× preset spreads)",
        "hardware.chip_seed" => "chip instance (seed)",
        "hardware.preset" => "hardware preset",
        "hardware.spec.adc.bits" => "ADC resolution (bits)",
        "hardware.spec.dac.bits" => "DAC resolution (bits)",
        "hardware.spec.adc.bound" => "ADC bound (normalised output units)",
        "hardware.spec.read.out_noise" => "read noise σ_out (normalised output units)",
        "hardware.spec.read.w_noise" => "weight read noise σ_w (normalised units)",
        "hardware.spec.programming.sigma" => "programming noise σ (fraction of g_max)",
        "hardware.spec.device.dw_min" => "update step dw_min (fraction of range)",
        "hardware.spec.device.c2c" => "cycle-to-cycle step noise (relative)",
        "hardware.spec.device.dw_min_dtod" => "device-to-device step spread (relative)",
        "hardware.spec.device.up_down" => "up/down asymmetry",
        "hardware.spec.crossbar.levels" => "conductance levels",
        "hardware.spec.faults.stuck_min" => "stuck-at-g_min probability",
        "hardware.spec.faults.stuck_max" => "stuck-at-g_max probability",
        "hardware.spec.black_box.enabled" => "black box between layers",
        "hardware.spec.black_box.mixing" => "black-box crosstalk ε",
        "hardware.spec.neuron.gain_std" => "neuron gain spread σ_g",
        "train.epochs" => "epochs",
        "train.batch" => "batch size (samples)",
        "train.seed" => "training seed",
        "train.ff.optimizer.lr" => "FF learning rate",
        "train.bp.optimizer.lr" => "BP learning rate",
        "train.ff.peer_norm" => "FF peer normalisation strength",
        "train.ff.temperature" => "FF temperature T",
        "data.train_limit" => "training images",
        "model.layers" => "hidden layers (units)",
        _ => return None,
    })
}
