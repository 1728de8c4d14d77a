//! `mortal train`: arguments, their mapping to a `TrainConfig`, and the command.

use super::*;

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
    pub algo: Algo,
    /// Dataset.
    #[arg(long, value_enum, default_value = "synthetic")]
    pub dataset: DatasetKind,
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
    pub negatives: Option<NegativeLabels>,
    /// FF: as-simulated (default) or analog-native (goodness read by one ADC per layer
    /// per pass, activities analog between layers, per-sample rank-1 pulse-train
    /// updates, no host ΔW; needs --chip with update mode stochastic-pulse, reset-only or
    /// ideal). Its defaults: the momentum 0.9 kept in a fast array per layer
    /// (--analog-momentum), lr 1e-3, random negatives, no peer normalisation, no softmax
    /// head.
    #[arg(long, value_parser = parse_ff_mode)]
    pub ff_mode: Option<mortal::learn::ff::FfMode>,
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
    pub sign: Option<Sign>,
    /// FF: goodness function, sum of squared activities (sum-sq) or of activities (sum).
    #[arg(long, value_enum)]
    pub goodness: Option<GoodnessFn>,
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

/// `--ff-mode`: the library's names of [`mortal::learn::ff::FfMode`].
fn parse_ff_mode(s: &str) -> Result<mortal::learn::ff::FfMode, String> {
    serde_json::from_value(serde_json::Value::String(s.into()))
        .map_err(|_| format!("'{s}': choose as-simulated or analog-native"))
}

impl TrainArgs {
    /// The training configuration these arguments describe (not yet validated).
    pub fn to_config(&self) -> Result<TrainConfig, Error> {
        let mut cfg = TrainConfig {
            algo: self.algo,
            dataset: self.dataset,
            layers: match &self.net {
                Some(name) => mortal::train::layers::named(name)?,
                None => mortal::train::layers::parse_list(&self.layers)?,
            },
            epochs: self.epochs,
            batch: self.batch,
            seed: self.seed,
            eval_every: self.eval_every,
            train_limit: self.train_limit,
            eval_limit: self.eval_limit,
            ..TrainConfig::for_algo(self.algo)
        };
        if let Some(mode) = self.ff_mode {
            cfg.ff = mortal::learn::FfConfig::for_mode(mode);
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
            ff.negatives = v;
        }
        if let Some(g) = self.goodness {
            ff.goodness = g;
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
            ff.sign = s;
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
            rc.schedule = mortal::learn::ff::recurrent::IterationSchedule::parse(o)?;
        }
        if let Some(w) = &self.eval_window {
            rc.eval_window = mortal::learn::ff::recurrent::RecurrentConfig::parse_window(w)?;
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
    use mortal::train::resume::Checkpointing;
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
