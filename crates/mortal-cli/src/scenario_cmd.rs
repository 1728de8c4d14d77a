//! The `run`, `plot` and `merge` subcommands: their arguments and what they do.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use clap::Args;

use mortal::progress::Reporter;
use mortal::scenario::runner::{self, Figures, RunRequest};
use mortal::scenario::store;
use mortal::scenario::sweep::Shard;

/// `mortal run` arguments.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario file (e.g. scenarios/noise_sweep.toml).
    #[arg(value_name = "SCENARIO")]
    pub file: PathBuf,
    /// Output directory (default: the scenario's [output] dir, else runs/<name>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Tiny version: 1 epoch, ~300 training / ~100 evaluation images, ≤ 2×64 hidden units,
    /// ≤ 2 values per axis, 1 seed; synthetic data if the dataset's files are missing.
    #[arg(long)]
    pub smoke: bool,
    /// Run even if the output directory holds results of a changed scenario (finished
    /// runs whose configuration did not change are kept).
    #[arg(long)]
    pub force: bool,
    /// Run only runs i, i+n, i+2n, … (0 ≤ i < n), e.g. --shard $SLURM_ARRAY_TASK_ID/8.
    #[arg(long, value_name = "i/n", value_parser = parse_shard)]
    pub shard: Option<Shard>,
    /// Runs trained at the same time (default: the number of rayon threads, i.e. cores
    /// or RAYON_NUM_THREADS).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub jobs: Option<u64>,
    /// List the runs (after checking the whole scenario) without running anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not draw the figures at the end.
    #[arg(long)]
    pub no_plot: bool,
    /// Change a setting of the scenario file without editing it: a dotted key path and a
    /// TOML value, e.g. `--set train.epochs=3 --set data.train_limit=5000 --set
    /// 'sweep.chip_seeds=[1,2]' --set hardware.preset=pcm` (repeatable; bare words are
    /// strings). The result is a different scenario: give it its own --out.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Every run writes a resumable state after every N epochs (0: never; default: after
    /// the first epoch ending 10 minutes or more after the last state). A run left
    /// unfinished by a killed or pre-empted job continues from its state when the scenario
    /// is run again.
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<usize>,
}

/// `mortal plot` arguments.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// Output directory of `mortal run` (or `mortal merge`).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// `mortal merge` arguments.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Directory to merge into (created if needed; may be one of the inputs).
    #[arg(value_name = "OUT")]
    pub out: PathBuf,
    /// Output directories of shards of one scenario.
    #[arg(value_name = "DIR", required = true)]
    pub dirs: Vec<PathBuf>,
    /// Do not draw the figures of the merged results.
    #[arg(long)]
    pub no_plot: bool,
}

fn parse_shard(s: &str) -> std::result::Result<Shard, String> {
    Shard::parse(s).map_err(|e| e.to_string())
}

/// `mortal run`; returns the directory it wrote.
pub fn run(args: &RunArgs, data_dir: Option<&Path>, reporter: &Reporter) -> Result<PathBuf> {
    let req = RunRequest {
        file: args.file.clone(),
        out: args.out.clone(),
        smoke: args.smoke,
        force: args.force,
        shard: args.shard,
        jobs: args.jobs.map(|j| j as usize),
        data_dir: data_dir.map(Path::to_path_buf),
        figures: (!args.no_plot).then(|| Figures(Arc::new(crate::figures::draw))),
        dry_run: args.dry_run,
        sets: args.sets.clone(),
        checkpoint_every: args.checkpoint_every,
    };
    Ok(runner::run(&req, reporter)?.dir)
}

/// `mortal plot`.
pub fn plot(args: &PlotArgs) -> Result<()> {
    let files = crate::figures::draw(&args.dir)?;
    for f in &files {
        say!("{}", f.display());
    }
    if files.is_empty() {
        say!(
            "no figures: {} has no finished runs yet",
            args.dir.display()
        );
    }
    Ok(())
}

/// `mortal merge`.
pub fn merge(args: &MergeArgs) -> Result<()> {
    let m = store::merge(&args.out, &args.dirs)?;
    say!(
        "merged {} of {} runs into {}{}",
        m.rows,
        m.total_runs,
        args.out.join(store::RESULTS).display(),
        if m.missing.is_empty() {
            String::new()
        } else {
            let first: Vec<&str> = m.missing.iter().take(5).map(String::as_str).collect();
            format!(
                "; missing {}: {}{}",
                m.missing.len(),
                first.join(", "),
                if m.missing.len() > 5 { ", …" } else { "" }
            )
        }
    );
    if !args.no_plot {
        plot(&PlotArgs {
            dir: args.out.clone(),
        })?;
    }
    Ok(())
}
