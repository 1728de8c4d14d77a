//! Command-line interface: argument definitions and the mapping from arguments to the
//! library's configurations. `main.rs` only parses and maps errors to exit codes.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use mortal::data::{self, DatasetKind};
use mortal::error::Error;
use mortal::learn::ff::{GoodnessFn, NegativeLabels, Sign};
use mortal::learn::optim::OptimizerConfig;
use mortal::progress::Reporter;
use mortal::train::{self, Algo, ChipConfig, RunOptions, TrainConfig};

mod device;
use device::device_response;
use distill::distill_command;
mod distill;
mod train_args;

pub use device::{DeviceCommand, ResponseArgs};
pub use distill::DistillArgs;
pub use train_args::{OptimizerArg, TrainArgs, parse_augment, train_command};

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
    Run(crate::scenario_cmd::RunArgs),
    /// Redraw the figures of a scenario's output directory from its result files.
    Plot(crate::scenario_cmd::PlotArgs),
    /// Combine the output directories of shards of one scenario.
    Merge(crate::scenario_cmd::MergeArgs),
    /// Distil a trained teacher (any algorithm) into FF students on other chips; compare
    /// with copying its conductances and with FF from scratch.
    Distill(DistillArgs),
    /// Single-device tools.
    #[command(subcommand)]
    Device(DeviceCommand),
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

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let reporter = crate::bars::auto(cli.quiet);
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
        Command::Run(args) => crate::scenario_cmd::run(&args, data_dir, &reporter).map(|_| ()),
        Command::Plot(args) => crate::scenario_cmd::plot(&args),
        Command::Merge(args) => crate::scenario_cmd::merge(&args),
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
        mortal::fsutil::read_json::<serde_json::Value>(&args.checkpoint.join("results.json"))
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
    mortal::fsutil::check_out_not_inside(&out, &args.checkpoint, "checkpoint", true)?;
    let _lock = mortal::fsutil::OutputLock::take(&out)?;
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
    mortal::fsutil::write_json(&out.join("results.json"), &record)?;
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
