//! Command-line interface: argument definitions and the mapping from arguments to the
//! library's configurations. `main.rs` only parses and maps errors to exit codes.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::data::{self, DatasetKind};
use crate::error::Error;
use crate::learn::ff::{GoodnessFn, NegativeLabels, Sign};
use crate::learn::optim::OptimizerConfig;
use crate::progress::Reporter;
use crate::train::{self, Algo, ChipConfig, RunOptions, TrainConfig};

/// Simulator of mortal computation: Forward-Forward learning on varied analog chips.
#[derive(Debug, Parser)]
#[command(name = "mortal", version, about, allow_negative_numbers = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Directory holding mnist/ and fashion-mnist/ (default: $MORTAL_DATA, else ./data).
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        help_heading = "Global options"
    )]
    pub data_dir: Option<PathBuf>,
    /// No progress bars or per-epoch lines.
    #[arg(long, short, global = true, help_heading = "Global options")]
    pub quiet: bool,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a network and write results.json, epochs.csv and a checkpoint.
    Train(TrainArgs),
    /// Evaluate a trained checkpoint on the validation and test sets.
    Eval(EvalArgs),
    /// The mission in ~40 s on the built-in synthetic set: FF in situ on a harsh chip, its
    /// weights ideal, copied to another chip, distilled into it, and backprop deployed.
    Quickstart(QuickstartArgs),
    /// Measure GEMM rate and training/evaluation throughput on this machine.
    Bench(BenchArgs),
    /// Download or check the MNIST / Fashion-MNIST files.
    #[command(subcommand)]
    Data(DataCommand),
    /// Run a scenario file: every run of its sweep (resumable, parallel, shardable), then
    /// its figures.
    Run(crate::scenario::command::RunArgs),
    /// Redraw the figures of a scenario's output directory from its result files.
    Plot(crate::scenario::command::PlotArgs),
    /// Combine the output directories of shards of one scenario.
    Merge(crate::scenario::command::MergeArgs),
    /// Distil a trained teacher (any algorithm) into FF students on other chips; compare
    /// with copying its conductances and with FF from scratch.
    Distill(DistillArgs),
    /// Single-device tools.
    #[command(subcommand)]
    Device(DeviceCommand),
}

/// `mortal device` subcommands.
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// The pulse response of one device in aihwkit's normalised weight units: the weight
    /// after each of --up up pulses then --down down pulses (aihwkit parameter names).
    Response(ResponseArgs),
}

/// `mortal device response` arguments.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct ResponseArgs {
    /// Response: constant-step, linear-step, soft-bounds, exp-step, pow-step,
    /// piecewise-step (default soft-bounds; from --preset/--spec when given).
    #[arg(long)]
    pub response: Option<String>,
    /// Mean step per pulse (aihwkit dw_min; default 0.001).
    #[arg(long)]
    pub dw_min: Option<f32>,
    /// Up/down asymmetry (aihwkit up_down: the weaker direction shrinks by |up_down|).
    #[arg(long)]
    pub up_down: Option<f32>,
    /// Lower bound (default −0.6).
    #[arg(long)]
    pub w_min: Option<f32>,
    /// Upper bound (default 0.6).
    #[arg(long)]
    pub w_max: Option<f32>,
    /// Any other aihwkit parameter, NAME=VALUE (repeatable; lists as a,b,c).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Start from a chip preset's device (seen on [−1, 1]).
    #[arg(long, value_name = "NAME", conflicts_with = "spec")]
    pub preset: Option<String>,
    /// Start from a chip spec TOML file's device.
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    /// Start weight.
    #[arg(long, default_value_t = 0.0)]
    pub start: f32,
    /// Up pulses (applied first).
    #[arg(long, default_value_t = 100)]
    pub up: usize,
    /// Down pulses (then).
    #[arg(long, default_value_t = 100)]
    pub down: usize,
    /// Device-to-device and cycle-to-cycle noise on: mean and spread over --devices.
    #[arg(long)]
    pub noise: bool,
    /// Devices drawn with --noise.
    #[arg(long, default_value_t = 100)]
    pub devices: usize,
    /// Seed of the noisy draws.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print JSON ({"w": [...]}, with --noise also std, min, max).
    #[arg(long)]
    pub json: bool,
    /// Draw the response into this PNG file (and an SVG beside it).
    #[arg(long, value_name = "FILE.png")]
    pub plot: Option<PathBuf>,
}

/// `mortal distill` arguments.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct DistillArgs {
    /// Teacher checkpoint directory (the --out of a `mortal train` run, any --algo).
    #[arg(long, value_name = "DIR")]
    pub teacher: PathBuf,
    /// Student chip: a preset (ideal, reram, pcm, harsh) or a spec TOML file.
    #[arg(long, value_name = "PRESET|FILE")]
    pub student_chip: String,
    /// Seed(s) of the student chip instance(s): comma-separated, ranges allowed (2-33 is a
    /// fleet of 32 chips, taught by one measurement of the teacher per view).
    #[arg(long, value_name = "N,N-M,...", default_value = "2")]
    pub student_seed: String,
    /// Variation multiplier of the student chip's spreads and noises.
    #[arg(long, allow_hyphen_values = true, default_value_t = 1.0)]
    pub variation: f64,
    /// Transfer-set size(s): the first N training images, comma-separated (a sweep with
    /// several sizes or seeds writes one directory per student and results.csv).
    #[arg(long, value_name = "N,N,...")]
    pub transfer: String,
    /// Never read the transfer images' true labels (the scratch baseline still uses them).
    #[arg(long)]
    pub unlabelled: bool,
    /// Where the transfer images come from: train (the training set's first N), hybrid
    /// or hybrid:S (N hybrids of the first S = 10 training images), noise (N smooth random
    /// images), or a .npy / IDX image file (its first N). Only `train` has labels.
    #[arg(
        long,
        value_name = "train|hybrid[:S]|noise|FILE",
        default_value = "train"
    )]
    pub transfer_source: String,
    /// Where the student starts: copy (the teacher's conductance targets and head, then
    /// distillation), scratch, or auto (copy where the teacher is an FF network of the
    /// student's shape, scratch otherwise). Default: auto.
    #[arg(long, value_enum)]
    pub init: Option<InitArg>,
    /// Largest shift of each view, pixels (0 = off). Default: 0.
    #[arg(long)]
    pub jitter: Option<usize>,
    /// Fraction of views that mix two transfer images, λ uniform in [0, 1] (0 = off).
    /// Default: 0.
    #[arg(long, allow_hyphen_values = true)]
    pub mixup: Option<f32>,
    /// Teacher reads per view, averaged, each with fresh read noise. Default: 1.
    #[arg(long)]
    pub teacher_reads: Option<usize>,
    /// Epochs at the start of a copy-initialised student that train only its softmax
    /// head (the copied layers as they are), within --epochs. Default: 1.
    #[arg(long)]
    pub head_epochs: Option<usize>,
    /// Learning-rate multiplier of a copy-initialised student's layers after its head
    /// epochs (0 = only the head learns). Default: 0.1.
    #[arg(long, allow_hyphen_values = true)]
    pub copy_layer_lr: Option<f32>,
    /// Who picks the contrastive loss's negative labels: the teacher (its probabilities
    /// over the other labels) or the student (its own hard negatives). Default: teacher.
    #[arg(long, value_enum)]
    pub negatives: Option<DistillNegativesArg>,
    /// Baselines beside the student: copy (only the copy, evaluated), basic (copy, scratch
    /// with labels) or full (also copy fine-tuned with labels, and the distilled student
    /// from the other starting point).
    /// Default: full for one student, basic for several.
    #[arg(long, value_enum)]
    pub baselines: Option<BaselinesArg>,
    /// The student's hidden layers (default: the teacher's); `--init copy` needs the
    /// teacher's shape.
    #[arg(long, value_name = "W,W,...")]
    pub student_layers: Option<String>,
    /// Temperature T of the soft targets and of the negatives' distribution.
    #[arg(long, allow_hyphen_values = true, default_value_t = 2.0)]
    pub temperature: f32,
    /// Teacher scores that define its distribution.
    #[arg(long, value_enum, default_value = "softmax")]
    pub source: SourceArg,
    /// Weight of the true label mixed into targets and positives (0 = pure distillation).
    #[arg(long, allow_hyphen_values = true, default_value_t = 0.0)]
    pub hard_weight: f32,
    /// Temperature of the teacher distribution positives are drawn from (0 = its top-1).
    #[arg(long, allow_hyphen_values = true, default_value_t = 1.0)]
    pub positive_temperature: f32,
    /// The student layers' loss: FF's own with teacher-drawn positives and negatives, or
    /// a per-layer KL of each layer's per-label goodness softmax to the teacher.
    #[arg(long, value_enum, default_value = "contrastive")]
    pub loss: LossArg,
    /// Temperature τ of each layer's per-label goodness softmax (--loss layer-kl), in
    /// squared-activity units of goodness.
    #[arg(long, allow_hyphen_values = true, default_value_t = 20.0)]
    pub layer_temperature: f32,
    /// Student epochs (distillation and scratch alike).
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Each student sees at least this many samples: epochs = max(epochs, ceil(S / N)).
    #[arg(long, default_value_t = 0)]
    pub min_samples: usize,
    /// Student master seed (initial weights, data order, label draws, noise).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Use only the first N validation and test images.
    #[arg(long)]
    pub eval_limit: Option<usize>,
    /// Also measure error and agreement by goodness per label (11 passes per test image).
    #[arg(long)]
    pub goodness: bool,
    /// Output directory.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Sweep figures: <STEM>-error.png and <STEM>-agreement.png (default
    /// <out>/plots/distill; `mortal plot <out>` redraws them there).
    #[arg(long, value_name = "STEM")]
    pub plot: Option<PathBuf>,
    /// Title of the sweep figures.
    #[arg(long, default_value = "Distillation between chips")]
    pub title: String,
}

/// Student starting points.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum InitArg {
    Auto,
    Copy,
    Scratch,
}

/// Who picks a distilled student's negatives.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DistillNegativesArg {
    Teacher,
    Student,
}

/// Baseline sets.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum BaselinesArg {
    Copy,
    Basic,
    Full,
}

/// Student layer losses.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LossArg {
    Contrastive,
    LayerKl,
}

/// Teacher score sources.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SourceArg {
    Softmax,
    Goodness,
}

/// Dataset names on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DatasetArg {
    Synthetic,
    Mnist,
    FashionMnist,
    /// CIFAR-10, binary version (not bundled: `mortal data fetch cifar10`).
    Cifar10,
    /// The synthetic glyphs as 32 × 32 colour images (runs the CIFAR-10 path without files).
    SyntheticColor,
}

impl From<DatasetArg> for DatasetKind {
    fn from(d: DatasetArg) -> Self {
        match d {
            DatasetArg::Synthetic => DatasetKind::Synthetic,
            DatasetArg::Mnist => DatasetKind::Mnist,
            DatasetArg::FashionMnist => DatasetKind::FashionMnist,
            DatasetArg::Cifar10 => DatasetKind::Cifar10,
            DatasetArg::SyntheticColor => DatasetKind::SyntheticColor,
        }
    }
}

/// Algorithm names on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum AlgoArg {
    /// Forward-Forward (digital, or in situ with --chip).
    Ff,
    /// Recurrent Forward-Forward with top-down connections (paper §3.4); ≥ 2 layers.
    FfRecurrent,
    /// Digital backprop.
    Bp,
    /// Digital backprop, then programmed onto the chip (--chip) and evaluated there.
    BpDeploy,
    /// Hardware-aware backprop (noise from the chip's nominal spec), then deployed.
    BpHwa,
    /// Physics-aware backprop: forward on the chip, backward through its nominal twin.
    BpPat,
    /// Analog SGD on the chip: transposed reads, rank-1 pulsed updates (--momentum 0).
    BpAnalog,
    /// Tiki-Taka v2 on the chip: gradients onto a fast array, thresholded transfer.
    BpTtv2,
    /// Chopped Tiki-Taka v2 (c-TTv2).
    BpCttv2,
    /// AGAD: chopped transfer with a dynamic reference.
    BpAgad,
}

impl From<AlgoArg> for Algo {
    fn from(a: AlgoArg) -> Self {
        match a {
            AlgoArg::Ff => Algo::Ff,
            AlgoArg::FfRecurrent => Algo::FfRecurrent,
            AlgoArg::Bp => Algo::Bp,
            AlgoArg::BpDeploy => Algo::BpDeploy,
            AlgoArg::BpHwa => Algo::BpHwa,
            AlgoArg::BpPat => Algo::BpPat,
            AlgoArg::BpAnalog => Algo::BpAnalog,
            AlgoArg::BpTtv2 => Algo::BpTtv2,
            AlgoArg::BpCttv2 => Algo::BpCttv2,
            AlgoArg::BpAgad => Algo::BpAgad,
        }
    }
}

/// Optimiser names.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OptimizerArg {
    Sgd,
    Adam,
}

/// `mortal train` arguments.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct TrainArgs {
    /// Learning algorithm.
    #[arg(long, value_enum, default_value = "ff")]
    pub algo: AlgoArg,
    /// Dataset.
    #[arg(long, value_enum, default_value = "synthetic")]
    pub dataset: DatasetArg,
    /// Hidden layers, comma-separated: dense widths (e.g. 2000,2000,2000,2000) or local
    /// layers local:HxWxC:fF:sS[:pP] (an H×W grid of C units each seeing F×F locations of
    /// the layer below, S apart, P of padding; e.g. local:4x4x128:f10:s6).
    #[arg(long, value_name = "W,W,...", default_value = "500,500")]
    pub layers: String,
    /// A named architecture instead of --layers: paper-local (the paper's local
    /// receptive-field net, 4×4×128 f10 s6, 3×3×220 f2, 2×2×512 f2).
    #[arg(long, value_name = "NAME", conflicts_with = "layers")]
    pub net: Option<String>,
    /// Epochs.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Master seed (initialisation, data order, negatives and noise derive from it).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Optimiser (default: SGD with momentum, the reference recipe).
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerArg>,
    /// Learning rate (default FF 1e-3, BP 0.05 for SGD; 1e-3 for Adam).
    #[arg(long, allow_hyphen_values = true)]
    pub lr: Option<f32>,
    /// SGD momentum (default 0.9).
    #[arg(long, allow_hyphen_values = true)]
    pub momentum: Option<f32>,
    /// Weight cost (default FF 1e-3, BP 1e-4).
    #[arg(long, allow_hyphen_values = true)]
    pub weight_decay: Option<f32>,
    /// FF: how negative labels are chosen.
    #[arg(long, value_enum)]
    pub negatives: Option<NegativesArg>,
    /// FF: as-simulated (default) or analog-native (goodness read by one ADC per layer
    /// per pass, activities analog between layers, per-sample rank-1 pulse-train
    /// updates, no host ΔW; needs --chip with update mode stochastic-pulse, reset-only or
    /// ideal). Its defaults: the momentum 0.9 kept in a fast array per layer
    /// (--analog-momentum), lr 1e-3, random negatives, no peer normalisation, no softmax
    /// head.
    #[arg(long, value_parser = parse_ff_mode)]
    pub ff_mode: Option<crate::learn::ff::FfMode>,
    /// FF analog-native: momentum μ kept in a fast array per layer, in [0, 1) (0: plain SGD
    /// straight into the weights; default 0.9).
    #[arg(long)]
    pub analog_momentum: Option<f32>,
    /// FF analog-native: rows of each fast array transferred into the weights per batch
    /// (0 = all, the default).
    #[arg(long)]
    pub transfer_rows: Option<usize>,
    /// FF analog-native: scale ρ of the fast arrays relative to the weights' step
    /// (dimensionless; see `ff.analog_momentum.fast_gain`).
    #[arg(long)]
    pub fast_gain: Option<f32>,
    /// FF: goodness threshold θ (default: number of units of the layer).
    #[arg(long, allow_hyphen_values = true)]
    pub threshold: Option<f32>,
    /// FF: temperature T of p = σ((G − θ)/T).
    #[arg(long, allow_hyphen_values = true)]
    pub temperature: Option<f32>,
    /// FF: whether positives aim for high (max-ssq) or low (min-ssq) goodness.
    #[arg(long, value_enum)]
    pub sign: Option<SignArg>,
    /// FF: goodness function, sum of squared activities (sum-sq) or of activities (sum).
    #[arg(long, value_enum)]
    pub goodness: Option<GoodnessArg>,
    /// FF with --negatives hybrid: times each hybrid mask is blurred (default 10).
    #[arg(long)]
    pub hybrid_blurs: Option<usize>,
    /// FF sleep phases: N updates on positive data only, then N on negative data only
    /// (0 = both in every update, the default).
    #[arg(long)]
    pub phase_block: Option<usize>,
    /// ff-recurrent: iterations per image after the bottom-up pass (default 8).
    #[arg(long)]
    pub iterations: Option<usize>,
    /// ff-recurrent: weight of the previous state in new = d·previous + (1 − d)·computed,
    /// in [0, 1) (default 0.3).
    #[arg(long, allow_hyphen_values = true)]
    pub damping: Option<f32>,
    /// ff-recurrent: layer update order, synchronous (default) or alternating (even
    /// layers, then odd ones from the new even states).
    #[arg(long, value_name = "synchronous|alternating")]
    pub update_order: Option<String>,
    /// ff-recurrent: iterations FIRST-LAST whose goodness is averaged to pick a label
    /// (default 3-5, cut to the last iteration when --iterations is smaller).
    #[arg(long, value_name = "FIRST-LAST")]
    pub eval_window: Option<String>,
    /// Training-image augmentation: jitter:K shifts each image by up to K pixels each way
    /// (K = 2: the paper's 25 shifts).
    #[arg(long, value_name = "jitter:K")]
    pub augment: Option<String>,
    /// Energy and latency model of the cost report: reram, pcm or a model TOML file
    /// (default: the chip preset's own, reram otherwise).
    #[arg(long, value_name = "NAME|FILE")]
    pub energy: Option<String>,
    /// Do not count operations (no `cost` block in results.json; results are identical).
    #[arg(long)]
    pub no_count: bool,
    /// Arithmetic of the run's large matrix products: f32, or bf16 operands with f32
    /// accumulation (the substrate's products, on a chip its analog reads, and the FF
    /// learners' weight gradients). Default f32.
    #[arg(long, value_name = "f32|bf16")]
    pub precision: Option<String>,
    /// FF: peer normalisation strength (0 = off; default 0.03).
    #[arg(long, allow_hyphen_values = true)]
    pub peer_norm: Option<f32>,
    /// FF: first hidden layer (1-based) used in evaluation (default 2; 1 for one layer).
    #[arg(long)]
    pub eval_from: Option<usize>,
    /// Expensive validation (FF goodness per label) every N epochs; 0 = only at the end.
    #[arg(long, default_value_t = 5)]
    pub eval_every: usize,
    /// Use only the first N training images.
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Use only the first N validation and test images.
    #[arg(long)]
    pub eval_limit: Option<usize>,
    /// Train on an analog chip: a preset (ideal, reram, pcm, harsh) or a spec TOML file
    /// (default: the ideal digital substrate).
    #[arg(long, value_name = "PRESET|FILE")]
    pub chip: Option<String>,
    /// Seed of the chip instance (its device-to-device variation, neurons, black box).
    #[arg(long, default_value_t = 1, requires = "chip")]
    pub chip_seed: u64,
    /// Multiplier of every spread and noise of the chip spec (0 = none, 1 = as specified).
    #[arg(
        long,
        allow_hyphen_values = true,
        default_value_t = 1.0,
        requires = "chip"
    )]
    pub variation: f64,
    /// Output directory (default runs/<algo>-<dataset>-<layers>[-<chip>…]-s<seed>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Do not save a checkpoint.
    #[arg(long)]
    pub no_checkpoint: bool,
    /// Replace a different run already in --out (by default that is refused).
    #[arg(long)]
    pub force: bool,
    /// Write a resumable state into <out>/resume/ after every N epochs (0: never). Default:
    /// after the first epoch that ends 10 minutes or more after the last state, so short
    /// runs write none. FF and recurrent FF (other algorithms write none).
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<usize>,
    /// Continue the run in DIR from its newest resumable state, with the configuration it
    /// was started with (the other training flags are not read); it ends bit-identical to
    /// an uninterrupted run.
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    pub resume: Option<PathBuf>,
}

/// Refuses to write a run into a directory that holds a run of another configuration
/// (its `results.json` or `checkpoint.json`), so one run never silently replaces or
/// mixes with another. The same configuration may be re-run in place.
fn refuse_other_run(out: &Path, cfg: &TrainConfig) -> Result<(), Error> {
    for name in ["results.json", "checkpoint.json"] {
        let p = out.join(name);
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        let theirs = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("config").cloned());
        let ours = serde_json::to_value(cfg).ok();
        let same = match (&theirs, &ours) {
            (Some(t), Some(o)) => {
                serde_json::from_value::<TrainConfig>(t.clone())
                    .ok()
                    .as_ref()
                    == Some(cfg)
                    || t == o
            }
            _ => false,
        };
        if !same {
            return Err(Error::param(
                "out",
                out.display(),
                format!(
                    "holds another run ({name} has a different configuration); use another \
                     --out, or --force to replace it"
                ),
            ));
        }
    }
    Ok(())
}

/// Negative-data strategies.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum NegativesArg {
    /// Wrong label ∝ the model's probabilities (reference recipe).
    Hard,
    /// Uniformly random wrong label.
    Random,
    /// Unsupervised FF: hybrid images of two training images, no label in the input, a
    /// linear classifier on the hidden activities.
    Hybrid,
}

/// Goodness functions.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum GoodnessArg {
    SumSq,
    Sum,
}

/// Parses `--augment jitter:K`.
pub fn parse_augment(s: &str) -> Result<usize, Error> {
    let bad = || {
        Error::param(
            "augment",
            s,
            "expected jitter:K with K a whole number of pixels, e.g. jitter:2",
        )
    };
    let k = s.strip_prefix("jitter:").ok_or_else(bad)?;
    if k.is_empty() || !k.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    k.parse().map_err(|_| bad())
}

/// Goodness orientation.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SignArg {
    MaxSsq,
    MinSsq,
}

/// `mortal eval` arguments.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Checkpoint directory (the --out of a `mortal train` run).
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// Where to write results.json (default: <checkpoint>/eval-c<chip seed>[-d<seconds>],
    /// so evaluations on different chips or after different drift times are all kept).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Use only the first N validation and test images.
    #[arg(long)]
    pub eval_limit: Option<usize>,
    /// Evaluate on another instance of the checkpoint's chip: its conductances are copied
    /// onto the chip with this seed (the "mortal" test).
    #[arg(long)]
    pub chip_seed: Option<u64>,
    /// Let this much simulated time pass before evaluating (conductance drift), seconds.
    #[arg(long, allow_hyphen_values = true, default_value_t = 0.0)]
    pub drift_seconds: f64,
}

/// `mortal quickstart` arguments.
#[derive(Debug, Args)]
pub struct QuickstartArgs {
    /// Output directory for the runs (the plot goes to plots/quickstart.png).
    #[arg(long, value_name = "DIR", default_value = "runs/quickstart")]
    pub out: PathBuf,
    /// Directory for the plot.
    #[arg(long, value_name = "DIR", default_value = "plots")]
    pub plots: PathBuf,
}

/// `mortal bench` arguments.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Also write the measurements as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Repeats per measurement (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Fewer and smaller measurements (a smoke test of the benchmark itself).
    #[arg(long)]
    pub quick: bool,
    /// Run only the measurement with exactly this name, or else those whose name contains
    /// it (e.g. "chip")
    #[arg(long, value_name = "TEXT")]
    pub only: Option<String>,
    /// A Python interpreter with torch installed: also time the same FF step in PyTorch
    /// (scripts/torch-ff-bench.py), between mortal's repeats, on the large-net `ff-train`
    /// rows
    #[arg(long, value_name = "PYTHON")]
    pub pytorch: Option<PathBuf>,
}

/// `mortal device response`.
fn device_response(a: &ResponseArgs) -> Result<()> {
    use crate::device_tool::{ResponseRequest, draw, params_of_spec, response};
    use crate::substrate::device::response::{Kind, Params};
    let mut p = match (&a.preset, &a.spec) {
        (Some(name), _) => params_of_spec(&crate::substrate::device::presets::by_name(name)?),
        (None, Some(f)) => {
            let src = f.display().to_string();
            let spec = ChipConfig::from_source(&src, 1, 1.0)?.spec;
            spec.validate()?;
            params_of_spec(&spec)
        }
        (None, None) => Params::of(Kind::SoftBounds),
    };
    if let Some(r) = &a.response {
        let kind = Kind::parse(r)?;
        if kind != p.response {
            p = Params {
                response: kind,
                ..Params::of(kind)
            };
        }
    }
    if let Some(v) = a.dw_min {
        p.dw_min = v;
    }
    if let Some(v) = a.up_down {
        p.up_down = v;
    }
    if let Some(v) = a.w_min {
        p.w_min = v;
    }
    if let Some(v) = a.w_max {
        p.w_max = v;
    }
    for kv in &a.params {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| Error::param("--param", kv, "expected NAME=VALUE"))?;
        p.set(k.trim(), v.trim())?;
    }
    let out = response(&ResponseRequest {
        params: p.clone(),
        start: a.start,
        up: a.up,
        down: a.down,
        noise: a.noise,
        devices: a.devices,
        seed: a.seed,
    })?;
    if let Some(png) = &a.plot {
        let title = format!(
            "{:?} device: dw_min {}, up_down {}, bounds [{}, {}]{}",
            p.response,
            p.dw_min,
            p.up_down,
            p.w_min,
            p.w_max,
            if a.noise {
                format!(", {} devices with noise", a.devices)
            } else {
                String::new()
            }
        );
        let f = draw(&out, &title, png)?;
        eprintln!("figure written to {}", f.display());
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string(&out).map_err(|e| Error::io("cannot write JSON", e.into()))?
        );
    } else {
        for (i, w) in out.w.iter().enumerate() {
            match &out.std {
                Some(sd) => println!("{}\t{w:.7}\t{:.7}", i + 1, sd[i]),
                None => println!("{}\t{w:.7}", i + 1),
            }
        }
    }
    Ok(())
}

/// `mortal data` subcommands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Download the official files of a dataset and verify their MD5s.
    Fetch {
        /// Dataset to download.
        #[arg(value_enum)]
        dataset: FetchDatasetArg,
        /// Base URL of a mirror (the file names are appended).
        #[arg(long)]
        mirror: Option<String>,
    },
    /// Check which dataset files are present and intact.
    Check,
}

/// Datasets that can be downloaded.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FetchDatasetArg {
    Mnist,
    FashionMnist,
    /// The official binary archive (162 MB), MD5-checked, then its six batch files.
    Cifar10,
}

/// `--ff-mode`: the library's names of [`crate::learn::ff::FfMode`].
fn parse_ff_mode(s: &str) -> Result<crate::learn::ff::FfMode, String> {
    serde_json::from_value(serde_json::Value::String(s.into()))
        .map_err(|_| format!("'{s}': choose as-simulated or analog-native"))
}

impl TrainArgs {
    /// The training configuration these arguments describe (not yet validated).
    pub fn to_config(&self) -> Result<TrainConfig, Error> {
        let mut cfg = TrainConfig {
            algo: self.algo.into(),
            dataset: self.dataset.into(),
            layers: match &self.net {
                Some(name) => crate::train::layers::named(name)?,
                None => crate::train::layers::parse_list(&self.layers)?,
            },
            epochs: self.epochs,
            batch: self.batch,
            seed: self.seed,
            eval_every: self.eval_every,
            train_limit: self.train_limit,
            eval_limit: self.eval_limit,
            ..TrainConfig::for_algo(self.algo.into())
        };
        if let Some(mode) = self.ff_mode {
            cfg.ff = crate::learn::FfConfig::for_mode(mode);
        }
        if cfg.layers.len() == 1 {
            cfg.ff.eval_from = 1;
        }
        if let Some(src) = &self.chip {
            cfg.chip = Some(ChipConfig::from_source(
                src,
                self.chip_seed,
                self.variation,
            )?);
        }
        if let Some(a) = &self.augment {
            cfg.jitter = parse_augment(a)?;
        }
        if let Some(e) = &self.energy {
            cfg.energy = Some(e.clone());
            cfg.embed_energy_model(None)?;
        }
        if let Some(p) = &self.precision {
            cfg.precision = p
                .parse()
                .map_err(|reason: String| Error::param("precision", p, reason))?;
        }
        let ff = &mut cfg.ff;
        if let Some(v) = self.negatives {
            ff.negatives = match v {
                NegativesArg::Hard => NegativeLabels::Hard,
                NegativesArg::Random => NegativeLabels::Random,
                NegativesArg::Hybrid => NegativeLabels::Hybrid,
            };
        }
        if let Some(g) = self.goodness {
            ff.goodness = match g {
                GoodnessArg::SumSq => GoodnessFn::SumSq,
                GoodnessArg::Sum => GoodnessFn::Sum,
            };
        }
        if let Some(n) = self.hybrid_blurs {
            ff.hybrid_blurs = n;
        }
        if let Some(n) = self.phase_block {
            ff.phase_block = n;
        }
        ff.threshold = self.threshold.or(ff.threshold);
        if let Some(t) = self.temperature {
            ff.temperature = t;
        }
        if let Some(s) = self.sign {
            ff.sign = match s {
                SignArg::MaxSsq => Sign::MaxSsq,
                SignArg::MinSsq => Sign::MinSsq,
            };
        }
        if let Some(p) = self.peer_norm {
            ff.peer_norm = p;
        }
        if let Some(e) = self.eval_from {
            ff.eval_from = e;
        }
        if let Some(m) = self.analog_momentum {
            ff.analog_momentum.momentum = m;
        }
        if let Some(r) = self.transfer_rows {
            ff.analog_momentum.rows_per_transfer = r;
        }
        if let Some(g) = self.fast_gain {
            ff.analog_momentum.fast_gain = g;
        }
        let rc = &mut cfg.recurrent;
        if let Some(n) = self.iterations {
            rc.iterations = n;
        }
        if let Some(d) = self.damping {
            rc.damping = d;
        }
        if let Some(o) = &self.update_order {
            rc.schedule = crate::learn::ff::recurrent::Schedule::parse(o)?;
        }
        if let Some(w) = &self.eval_window {
            rc.eval_window = crate::learn::ff::recurrent::RecurrentConfig::parse_window(w)?;
        } else if rc.eval_window[1] > rc.iterations {
            // Fewer iterations than the default window: average over what there is.
            rc.eval_window = [rc.eval_window[0].min(rc.iterations), rc.iterations];
        }
        self.apply_optimizer(cfg.optimizer_mut());
        Ok(cfg)
    }

    fn apply_optimizer(&self, opt: &mut OptimizerConfig) {
        if let Some(kind) = self.optimizer {
            *opt = match (kind, &*opt) {
                (OptimizerArg::Sgd, OptimizerConfig::Sgd { .. })
                | (OptimizerArg::Adam, OptimizerConfig::Adam { .. }) => opt.clone(),
                (OptimizerArg::Sgd, OptimizerConfig::Adam { weight_decay, .. }) => {
                    OptimizerConfig::Sgd {
                        lr: 0.01,
                        momentum: 0.9,
                        weight_decay: *weight_decay,
                    }
                }
                (OptimizerArg::Adam, OptimizerConfig::Sgd { weight_decay, .. }) => {
                    OptimizerConfig::adam(1e-3, *weight_decay)
                }
            };
        }
        match opt {
            OptimizerConfig::Sgd {
                lr,
                momentum,
                weight_decay,
            } => {
                *lr = self.lr.unwrap_or(*lr);
                *momentum = self.momentum.unwrap_or(*momentum);
                *weight_decay = self.weight_decay.unwrap_or(*weight_decay);
            }
            OptimizerConfig::Adam {
                lr, weight_decay, ..
            } => {
                *lr = self.lr.unwrap_or(*lr);
                *weight_decay = self.weight_decay.unwrap_or(*weight_decay);
            }
        }
    }
}

/// `mortal train` without printing: the run's results and its output directory (also
/// what the Python package's `mortal.train` calls).
pub fn train_command(
    args: &TrainArgs,
    data_dir: Option<&Path>,
    reporter: Reporter,
) -> Result<(train::RunResults, PathBuf)> {
    use crate::train::resume::Checkpointing;
    let (cfg, out, resume, every) = match &args.resume {
        Some(dir) => {
            let meta = train::resume::load_meta(dir)?.ok_or_else(|| {
                Error::param(
                    "resume",
                    dir.display(),
                    "holds no resumable state (the run finished, or never wrote one)",
                )
            })?;
            // The run keeps writing states as it was started to, unless told otherwise.
            let every = args.checkpoint_every.or(meta.checkpoint_every);
            (meta.config, dir.clone(), true, every)
        }
        None => {
            let cfg = args.to_config()?;
            let out = args.out.clone().unwrap_or_else(|| cfg.default_out_dir());
            (cfg, out, false, args.checkpoint_every)
        }
    };
    let checkpointing = Checkpointing::from_every(every);
    cfg.validate()?;
    let data = cfg.load_data(data_dir)?;
    if !args.force && !resume {
        refuse_other_run(&out, &cfg)?;
    }
    let opts = RunOptions {
        out: Some(out.clone()),
        reporter,
        checkpoint: !args.no_checkpoint,
        count: !args.no_count,
    };
    let mut trainer = train::trainers::build(&cfg)?;
    let r = train::run_resumable(&cfg, trainer.as_mut(), &data, &opts, checkpointing, resume)?;
    Ok((r, out))
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let reporter = Reporter::auto(cli.quiet);
    run_with(cli, reporter)
}

/// Runs a parsed command line reporting through `reporter`.
pub fn run_with(cli: Cli, reporter: Reporter) -> Result<()> {
    let data_dir = cli.data_dir.as_deref();
    match cli.command {
        Command::Train(args) => {
            let (r, out) = train_command(&args, data_dir, reporter)?;
            print_result_line(&r);
            println!("results written to {}", out.display());
            Ok(())
        }
        Command::Eval(args) => eval_command(&args, data_dir),
        Command::Quickstart(args) => {
            crate::quickstart::run(&args.out, &args.plots, &reporter)?;
            Ok(())
        }
        Command::Bench(args) => {
            crate::bench::run(&crate::bench::BenchOptions {
                repeats: args.repeats.max(1),
                quick: args.quick,
                json: args.json.clone(),
                only: args.only.clone(),
                pytorch: args.pytorch.clone(),
            })?;
            Ok(())
        }
        Command::Data(cmd) => data_command(cmd, data_dir),
        Command::Device(DeviceCommand::Response(args)) => device_response(&args),
        Command::Run(args) => crate::scenario::command::run(&args, data_dir, &reporter).map(|_| ()),
        Command::Plot(args) => crate::scenario::command::plot(&args),
        Command::Merge(args) => crate::scenario::command::merge(&args),
        Command::Distill(args) => distill_command(&args, data_dir, &reporter),
    }
}

/// Prints the headline numbers of a run.
pub fn print_result_line(r: &train::RunResults) {
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |e| format!("{:.2}%", 100.0 * e));
    println!(
        "{} on {} ({}): test error {:.2}% [{}] (goodness {}, softmax {}), {:.1}s training",
        r.algo,
        r.dataset,
        r.substrate,
        100.0 * r.test_error,
        r.eval_method,
        pct(r.test_error_goodness),
        pct(r.test_error_softmax),
        r.train_seconds
    );
}

fn eval_command(args: &EvalArgs, data_dir: Option<&Path>) -> Result<()> {
    let restored = train::load_checkpoint(&args.checkpoint, args.chip_seed)
        .with_context(|| format!("cannot load checkpoint {}", args.checkpoint.display()))?;
    if !(args.drift_seconds.is_finite() && args.drift_seconds >= 0.0) {
        return Err(Error::param("drift-seconds", args.drift_seconds, "must be ≥ 0").into());
    }
    if args.eval_limit == Some(0) {
        return Err(Error::param("eval-limit", 0, "must be at least 1 image").into());
    }
    let mut cfg = restored.config.clone();
    cfg.eval_limit = args.eval_limit.or(cfg.eval_limit);
    let data = cfg.load_data(data_dir)?;
    let mut trainer = restored.trainer;
    if let Some(note) = &restored.note {
        eprintln!("note: {note}");
    }
    if args.drift_seconds > 0.0 {
        let drifts = cfg
            .chip
            .as_ref()
            .is_some_and(|c| c.effective_spec().tracks_drift());
        if !drifts {
            eprintln!(
                "note: --drift-seconds {}: this network's substrate has no conductance drift \
                 (digital, or a chip spec with drift.nu_mean = drift.nu_std = 0), so time \
                 changes nothing",
                args.drift_seconds
            );
        }
        trainer.advance_time(args.drift_seconds);
    }
    let (valid, test) = train::evaluate(trainer.as_mut(), &data, cfg.seed)?;
    // The evaluation method training chose on validation (its results.json, sealed with
    // the checkpoint), so re-evaluating an unchanged network cannot switch method on
    // different validation noise; else the better one on this validation.
    let trained: Option<String> =
        crate::fsutil::read_json::<serde_json::Value>(&args.checkpoint.join("results.json"))
            .ok()
            .and_then(|r| r["eval_method"].as_str().map(str::to_string));
    let (method, valid_error) = match trained.as_deref().and_then(|m| {
        valid.by_name(m).map(|e| {
            (
                if m == "goodness" {
                    "goodness"
                } else {
                    "softmax"
                },
                e,
            )
        })
    }) {
        Some(chosen) => chosen,
        None => valid.best(),
    };
    let out = args.out.clone().unwrap_or_else(|| {
        let chip = cfg
            .chip
            .as_ref()
            .map(|c| args.chip_seed.unwrap_or(c.chip_seed));
        let mut name = chip.map_or("eval".to_string(), |s| format!("eval-c{s}"));
        if args.drift_seconds > 0.0 {
            name.push_str(&format!("-d{}", args.drift_seconds));
        }
        args.checkpoint.join(name)
    });
    // The checkpoint's own directory is never written (its results.json would be
    // replaced); its sub-directories, the default, are.
    crate::fsutil::check_out_not_inside(&out, &args.checkpoint, "checkpoint", true)?;
    let _lock = crate::fsutil::OutputLock::take(&out)?;
    let record = serde_json::json!({
        "mortal_version": env!("CARGO_PKG_VERSION"),
        "checkpoint": args.checkpoint.display().to_string(),
        "algo": cfg.algo.name(),
        "dataset": cfg.dataset.name(),
        "layers": cfg.layers,
        "seed": cfg.seed,
        "substrate": trainer.substrate(),
        "chip": cfg.chip.as_ref().map(|c| c.source.clone()),
        "chip_seed": cfg.chip.as_ref().map(|c| c.chip_seed),
        "trained_chip_seed": restored.trained_chip_seed,
        "variation": cfg.chip.as_ref().map(|c| c.variation),
        "drift_seconds": args.drift_seconds,
        "note": restored.note,
        "test_error": test.by_name(method),
        "eval_method": method,
        "test_error_goodness": test.goodness,
        "test_error_softmax": test.softmax,
        "valid_error": valid_error,
        "test_samples": data.test.len(),
    });
    crate::fsutil::write_json(&out.join("results.json"), &record)?;
    println!(
        "{} on {}: test error {:.2}% [{}]; results written to {}",
        cfg.algo,
        trainer.substrate(),
        100.0 * test.by_name(method).unwrap_or(f64::NAN),
        method,
        out.display()
    );
    Ok(())
}

/// Parses a comma-separated list of whole numbers for `key`.
fn parse_list<T: std::str::FromStr>(key: &str, s: &str) -> Result<Vec<T>, Error> {
    let v: Vec<T> = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<T>()
                .map_err(|_| Error::param(key, p, "must be a whole number"))
        })
        .collect::<Result<_, _>>()?;
    if v.is_empty() {
        return Err(Error::param(
            key,
            format!("{s:?}"),
            "need at least one value",
        ));
    }
    // The same value twice would train the same student twice and write two rows.
    let parts: Vec<&str> = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    for (i, p) in parts.iter().enumerate() {
        if parts[..i].contains(p) {
            return Err(Error::param(key, p, "is listed twice"));
        }
    }
    Ok(v)
}

/// Chip seeds: comma-separated values and inclusive ranges `a-b` (each at most 100,000
/// seeds; no seed twice).
fn parse_seeds(key: &str, s: &str) -> Result<Vec<u64>, Error> {
    let mut out: Vec<u64> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |v: &str| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| Error::param(key, part, "must be a whole number or a range a-b"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if b < a || b - a >= 100_000 {
                    return Err(Error::param(
                        key,
                        part,
                        "a range a-b needs a ≤ b and at most 100000 seeds",
                    ));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
        if out.len() > 100_000 {
            return Err(Error::param(key, s, "at most 100000 student chips"));
        }
    }
    if out.is_empty() {
        return Err(Error::param(
            key,
            format!("{s:?}"),
            "need at least one value",
        ));
    }
    for (i, v) in out.iter().enumerate() {
        if out[..i].contains(v) {
            return Err(Error::param(key, v, "is listed twice"));
        }
    }
    Ok(out)
}

fn distill_command(args: &DistillArgs, data_dir: Option<&Path>, rep: &Reporter) -> Result<()> {
    use crate::learn::distill::{
        Augment, DistillConfig, DistillLoss, Init, ScoreSource, TransferSource,
    };
    use crate::train::distill as d;
    let transfers: Vec<usize> = parse_list("transfer", &args.transfer)?;
    if let Some(n) = transfers.iter().find(|n| **n == 0) {
        return Err(Error::param("transfer", n, "must be at least 1 image").into());
    }
    let seeds: Vec<u64> = parse_seeds("student-seed", &args.student_seed)?;
    if args.epochs == 0 {
        return Err(Error::param("epochs", 0, "must be at least 1").into());
    }
    // A student's epochs grow to cover min-samples; bound the plan before anything runs.
    for &n in &transfers {
        let epochs = d::student_epochs(args.epochs, args.min_samples, n);
        if epochs > d::MAX_STUDENT_EPOCHS {
            return Err(Error::param(
                "min-samples",
                args.min_samples,
                format!(
                    "with {n} transfer images a student would train {epochs} epochs (at most {} \
                     are allowed); lower --min-samples or raise --transfer",
                    d::MAX_STUDENT_EPOCHS
                ),
            )
            .into());
        }
    }
    let defaults = DistillConfig::default();
    let source_images = TransferSource::parse(&args.transfer_source)?;
    for &n in &transfers {
        source_images.validate(n)?;
    }
    let dcfg = DistillConfig {
        temperature: args.temperature,
        source: match args.source {
            SourceArg::Softmax => ScoreSource::Softmax,
            SourceArg::Goodness => ScoreSource::Goodness,
        },
        hard_weight: args.hard_weight,
        unlabelled: args.unlabelled || !source_images.labelled(),
        positive_temperature: args.positive_temperature,
        loss: match args.loss {
            LossArg::Contrastive => DistillLoss::Contrastive,
            LossArg::LayerKl => DistillLoss::LayerKl,
        },
        layer_temperature: args.layer_temperature,
        init: match args.init {
            None => defaults.init,
            Some(InitArg::Auto) => Init::Auto,
            Some(InitArg::Copy) => Init::Copy,
            Some(InitArg::Scratch) => Init::Scratch,
        },
        augment: Augment {
            jitter: args.jitter.unwrap_or(defaults.augment.jitter),
            mixup: args.mixup.unwrap_or(defaults.augment.mixup),
        },
        teacher_reads: args.teacher_reads.unwrap_or(defaults.teacher_reads),
        head_epochs: args.head_epochs.unwrap_or(defaults.head_epochs),
        copy_layer_lr: args.copy_layer_lr.unwrap_or(defaults.copy_layer_lr),
        negatives: match args.negatives {
            None => defaults.negatives,
            Some(DistillNegativesArg::Teacher) => crate::learn::distill::NegativeSource::Teacher,
            Some(DistillNegativesArg::Student) => crate::learn::distill::NegativeSource::Student,
        },
    };
    dcfg.validate()?;
    ChipConfig::from_source(&args.student_chip, 0, args.variation)?.validate()?;
    let student_layers = match &args.student_layers {
        Some(s) => Some(crate::train::layers::parse_list(s)?),
        None => None,
    };
    let teacher = d::load_teacher(&args.teacher)?;
    d::check_source(teacher.meta.config.algo, dcfg.source)?;
    let mut data_cfg = teacher.meta.config.clone();
    data_cfg.train_limit = transfers
        .iter()
        .map(|&n| source_images.train_images(n))
        .max()
        .map(|n| n.max(1));
    data_cfg.eval_limit = args.eval_limit.or(data_cfg.eval_limit);
    let data = data_cfg.load_data(data_dir)?;
    let several = transfers.len() > 1 || seeds.len() > 1;
    let baselines = match args.baselines {
        Some(BaselinesArg::Copy) => d::BaselineSet::Copy,
        Some(BaselinesArg::Basic) => d::BaselineSet::Basic,
        Some(BaselinesArg::Full) => d::BaselineSet::Full,
        None if several => d::BaselineSet::Basic,
        None => d::BaselineSet::Full,
    };
    let make = |n: usize, seed: u64| -> Result<d::DistillSettings, Error> {
        let chip = ChipConfig::from_source(&args.student_chip, seed, args.variation)?;
        let epochs = d::student_epochs(args.epochs, args.min_samples, n);
        let mut student = d::student_config(&teacher.meta.config, chip, epochs, args.seed, n);
        if let Some(layers) = &student_layers {
            student.layers = layers.clone();
            student.ff.eval_from = student.ff.eval_from.min(layers.len());
        }
        student.eval_limit = data_cfg.eval_limit;
        student.eval_every = 0;
        // `--init copy` with a teacher of another shape: refused before anything runs.
        d::resolve_init(dcfg.init, &teacher.meta.config, &student)?;
        Ok(d::DistillSettings {
            teacher: args.teacher.clone(),
            transfer: n,
            source_images: source_images.clone(),
            distill: dcfg.clone(),
            goodness: args.goodness,
            min_samples: args.min_samples,
            baselines,
            student,
        })
    };
    if !several {
        let shared = d::Teacher::new(&teacher, dcfg.source)?;
        let r = d::run(
            &make(transfers[0], seeds[0])?,
            &teacher,
            &shared,
            &data,
            &args.out,
            rep,
            None,
        )?;
        let pct = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{:.2}%", 100.0 * v));
        println!(
            "student {} #{} ({} {} transfer images, from {}): test error {:.2}%, agreement {:.2}%, KL {:.4} nats \
             | copy {:.2}% / {:.2}% | scratch {} / {} | copy + labels {} | other init {} | teacher {:.2}% (self-agreement {}){}",
            r.student_chip,
            r.student_seed,
            r.transfer,
            r.transfer_source,
            r.init.name(),
            100.0 * r.test_error,
            100.0 * r.agreement,
            r.kl,
            100.0 * r.copy_test_error,
            100.0 * r.copy_agreement,
            pct(r.scratch_test_error),
            pct(r.scratch_agreement),
            pct(r.copy_labels_test_error),
            pct(r.other_init_test_error),
            100.0 * r.teacher_test_error,
            pct(r.teacher_self_agreement),
            r.recovered
                .map_or(String::new(), |v| format!(" | recovered {v:.2}"))
        );
        let stem = args.out.join("plots").join("epochs");
        if let Some(png) = crate::train::distill_epochs::epochs_figure(
            std::slice::from_ref(&args.out),
            &args.title,
            &stem,
        )? {
            println!("figure {}", png.display());
        }
    } else {
        use crate::train::distill_sweep as ds;
        let mut students = Vec::new();
        for &n in &transfers {
            for &seed in &seeds {
                students.push(ds::Student {
                    name: format!("t{n}-s{seed}"),
                    settings: make(n, seed)?,
                });
            }
        }
        let tc = teacher.meta.config.chip.as_ref();
        let info = ds::SweepInfo {
            title: args.title.clone(),
            teacher: args.teacher.clone(),
            teacher_seed: teacher.meta.config.seed,
            teacher_chip_seed: tc.map(|c| c.chip_seed),
            students: students.iter().map(|s| s.name.clone()).collect(),
        };
        let rows = ds::sweep(&students, &info, &teacher, &data, &args.out, rep)?;
        let stem = args
            .plot
            .clone()
            .unwrap_or_else(|| args.out.join(ds::PLOTS).join("distill"));
        let mut figs = ds::figures(&rows, &args.title, &stem)?;
        figs.extend(ds::epochs_figures(&args.out, &rows, &args.title)?);
        print!("{}", ds::table(&rows));
        for f in figs {
            println!("figure {}", f.display());
        }
    }
    println!("results written to {}", args.out.display());
    Ok(())
}

fn data_command(cmd: DataCommand, data_dir: Option<&Path>) -> Result<()> {
    let dir = data::resolve_data_dir(data_dir);
    match cmd {
        DataCommand::Fetch { dataset, mirror } => {
            let kind = match dataset {
                FetchDatasetArg::Mnist => DatasetKind::Mnist,
                FetchDatasetArg::FashionMnist => DatasetKind::FashionMnist,
                FetchDatasetArg::Cifar10 => DatasetKind::Cifar10,
            };
            let files = if kind == DatasetKind::Cifar10 {
                data::cifar::fetch(&dir, mirror.as_deref())?
            } else {
                data::files::fetch(kind, &dir, mirror.as_deref())?
            };
            for f in files {
                println!("ok  {}", f.display());
            }
            Ok(())
        }
        DataCommand::Check => {
            let statuses = data::files::check(&dir);
            for s in &statuses {
                println!("{s}");
            }
            // CIFAR-10: reported like the others; not installed is not an error.
            let cifar = data::cifar::check(&dir);
            let mut cifar_state = None;
            if cifar
                .iter()
                .all(|(_, s)| matches!(s, Err(w) if w == "missing"))
            {
                println!(
                    "cifar10: not installed in {} (mortal data fetch cifar10)",
                    data::cifar::folder(&dir).display()
                );
            } else {
                for (p, s) in &cifar {
                    match s {
                        Ok(n) => println!("ok       {} ({n} images)", p.display()),
                        Err(why) => println!("bad      {}: {why}", p.display()),
                    }
                }
                cifar_state = Some(cifar.iter().all(|(_, s)| s.is_ok()));
            }
            // A dataset that is simply not installed is not an error (say so); a partly
            // present or corrupt one is. At least one dataset must be usable.
            let mut usable = 0;
            let mut broken = Vec::new();
            for kind in data::files::OFFICIAL_KINDS {
                let of: Vec<_> = statuses.iter().filter(|s| s.kind == kind).collect();
                if of.iter().all(|s| s.is_ok()) {
                    usable += 1;
                } else if of
                    .iter()
                    .all(|s| s.state == data::files::FileState::Missing)
                {
                    println!("{kind}: not installed (mortal data fetch {kind})");
                } else {
                    broken.push(kind.name());
                }
            }
            match cifar_state {
                Some(true) => usable += 1,
                Some(false) => broken.push("cifar10"),
                None => {}
            }
            if !broken.is_empty() {
                return Err(Error::data(
                    &dir,
                    format!(
                        "{} partly missing or corrupt (see above)",
                        broken.join(" and ")
                    ),
                )
                .into());
            }
            if usable == 0 {
                return Err(Error::data(&dir, "no dataset installed here (see above)").into());
            }
            Ok(())
        }
    }
}
