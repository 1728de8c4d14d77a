//! `mortal run`: every run of a scenario's sweep, in parallel, resumable, sharded.
//!
//! Runs are independent and run on `jobs` worker threads (plain threads pulling from a
//! queue, not rayon tasks: a rayon worker waiting inside a run's matrix product could
//! otherwise pick up a whole other run and stall the first for its duration). Each run's
//! matrix products use the global rayon pool. A run's results depend only on its
//! configuration, never on the thread count or on which runs share the process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::error::ResultExt;
use serde_json::json;

use super::resolve::Scenario;
use super::schema::Checkpoints;
use super::smoke::Smoke;
use super::store::{ScenarioManifest, Store};
use super::sweep::{self, Plan, RunSpec, Shard};
use crate::data::{self, DatasetKind, Splits};
use crate::error::{Error, Result};
use crate::progress::Reporter;
use crate::train::{self, Algo, RunOptions, RunResults};

/// A scenario with its sweep expanded into checked runs.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub scenario: Scenario,
    pub plan: Plan,
    pub runs: Vec<RunSpec>,
    pub smoke: bool,
}

impl Prepared {
    /// Loads `file` and resolves every run (shrunk by `smoke`); errors name the file, the
    /// key path and the reason.
    pub fn load(file: &Path, smoke: Option<&Smoke>) -> crate::error::Result<Self> {
        Self::load_with(file, &[], smoke)
    }

    /// Like [`Prepared::load`] with `sets` (`key.path=value`, as `mortal run --set`)
    /// applied to the file's settings first.
    pub fn load_with(
        file: &Path,
        sets: &[String],
        smoke: Option<&Smoke>,
    ) -> crate::error::Result<Self> {
        let ctx = || file.display().to_string();
        let scenario = if sets.is_empty() {
            Scenario::load(file).with_context(ctx)?
        } else {
            let text = std::fs::read_to_string(file)
                .map_err(|e| Error::io(format!("cannot read {}", file.display()), e))?;
            let text = super::paths::apply_sets(&text, sets)?;
            Scenario::parse(file, text).with_context(ctx)?
        };
        let mut plan = Plan::new(&scenario).with_context(ctx)?;
        if let Some(s) = smoke {
            s.shrink_plan(&mut plan);
        }
        let runs = sweep::expand(&scenario, &plan, smoke).with_context(ctx)?;
        Ok(Self {
            scenario,
            plan,
            runs,
            smoke: smoke.is_some(),
        })
    }

    /// The manifest of this sweep.
    pub fn manifest(&self) -> ScenarioManifest {
        let s = &self.scenario;
        let ids: Vec<&str> = self.runs.iter().map(|r| r.id.as_str()).collect();
        ScenarioManifest::new(
            &s.file.name,
            &s.file.description,
            &s.path.display().to_string(),
            json!({
                "sections": s.base,
                "sweep": self.plan,
                "smoke": self.smoke,
                "run_ids": ids,
            }),
            self.plan.axes.clone(),
            s.file.output.clone(),
            &self.runs,
        )
    }

    /// The default output directory: `[output] dir`, else `runs/<name>` (`-smoke` added
    /// in smoke mode).
    pub fn default_dir(&self) -> PathBuf {
        let f = &self.scenario.file;
        let dir = f
            .output
            .dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(&f.name));
        if self.smoke {
            let mut s = dir.into_os_string();
            s.push("-smoke");
            PathBuf::from(s)
        } else {
            dir
        }
    }
}

/// What `mortal run` was asked to do.
#[derive(Clone, Debug, Default)]
pub struct RunRequest {
    pub file: PathBuf,
    pub out: Option<PathBuf>,
    pub smoke: bool,
    pub force: bool,
    pub shard: Option<Shard>,
    pub jobs: Option<usize>,
    pub data_dir: Option<PathBuf>,
    /// Draws the output directory's figures after the runs (the application's drawing:
    /// the library draws none); `None`: no figures.
    pub figures: Option<Figures>,
    pub dry_run: bool,
    /// `key.path=value` settings applied to the scenario file (`--set`).
    pub sets: Vec<String>,
    /// Resumable states of every run: after every N epochs (0: never; None: the default
    /// interval, [`train::resume::Checkpointing::default`]).
    pub checkpoint_every: Option<usize>,
}

/// The figures of a finished output directory (scenario or distillation sweep), drawn
/// from its result files by the application; returns the files written.
#[derive(Clone)]
pub struct Figures(pub std::sync::Arc<DrawFigures>);

/// What draws a directory's figures (see [`Figures`]).
pub type DrawFigures = dyn Fn(&Path) -> Result<Vec<PathBuf>> + Send + Sync;

impl std::fmt::Debug for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Figures")
    }
}

impl Figures {
    /// Draws `dir`'s figures, saying where they went; a failure is a warning (the
    /// results are written either way).
    pub fn draw(&self, dir: &Path) {
        match (self.0)(dir) {
            Ok(files) if !files.is_empty() => say!(
                "figures: {} files in {}",
                files.len(),
                dir.join(PLOTS).display()
            ),
            Ok(_) => {}
            Err(e) => eprintln!("warning: figures not drawn: {e}"),
        }
    }
}

/// The directory of an output directory's figures.
pub const PLOTS: &str = "plots";

/// What a `mortal run` did.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub dir: PathBuf,
    pub total: usize,
    pub skipped: usize,
    pub ran: usize,
    pub failed: usize,
}

/// "1 run", "5 runs".
fn runs_text(n: usize) -> String {
    format!("{n} run{}", if n == 1 { "" } else { "s" })
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |e| format!("{:.2}%", 100.0 * e))
}

fn minutes(s: f64) -> String {
    if s < 90.0 {
        format!("{s:.0} s")
    } else if s < 5400.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

/// An error rate (a count over at most 10¹⁰ images) without float noise: rounded to 10
/// decimals, printed in the shortest form (`0.6557`, not `0.6557000000000001`).
fn fraction(x: f64) -> String {
    if x.is_finite() {
        ((x * 1e10).round() / 1e10).to_string()
    } else {
        x.to_string()
    }
}

/// The `results.csv` row of a run.
fn row(run: &RunSpec, outcome: &std::result::Result<RunResults, String>) -> Vec<String> {
    let opt = |v: Option<f64>| v.map_or(String::new(), fraction);
    let c = &run.config;
    let mut r = vec![
        run.id.clone(),
        run.index.to_string(),
        run.name.clone(),
        c.algo.name().to_string(),
        c.seed.to_string(),
        c.chip
            .as_ref()
            .map_or(String::new(), |x| x.chip_seed.to_string()),
    ];
    r.extend(
        run.cells
            .iter()
            .map(|v| v.as_ref().map_or(String::new(), super::paths::display)),
    );
    match outcome {
        Ok(res) => r.extend([
            "ok".into(),
            fraction(res.test_error),
            opt(res.test_error_goodness),
            opt(res.test_error_softmax),
            res.eval_method.clone(),
            fraction(res.valid_error),
            res.epochs.to_string(),
            format!("{:.3}", res.train_seconds),
            format!("{:.3}", res.eval_seconds),
            res.peak_rss_mib
                .map_or(String::new(), |m| format!("{m:.1}")),
            energy(res.cost.as_ref().map(|c| c.train.per_sample.energy_j)),
            energy(res.cost.as_ref().map(|c| c.inference.per_image.energy_j)),
            energy(
                res.cost
                    .as_ref()
                    .and_then(|c| c.analog_native.as_ref())
                    .map(|n| n.train_per_sample.energy_j),
            ),
            energy(
                res.cost
                    .as_ref()
                    .and_then(|c| c.analog_native.as_ref())
                    .map(|n| n.inference_per_image.energy_j),
            ),
        ]),
        Err(_) => r.extend([
            "diverged".into(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            c.epochs.to_string(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ]),
    }
    r
}

/// An energy in J with four significant digits (empty when not measured).
fn energy(v: Option<f64>) -> String {
    v.map_or(String::new(), |e| format!("{e:.4e}"))
}

/// The data a run trains on, loaded once per distinct source.
fn data_key(c: &train::TrainConfig) -> String {
    json!([c.dataset, c.synthetic, c.train_limit, c.eval_limit]).to_string()
}

/// Trains one run into its directory: the chip before training (first replicate of chip
/// runs), then what `mortal train` writes. Divergence is an outcome, not a failure.
fn execute(
    run: &RunSpec,
    data: &Splits,
    dir: &Path,
    reporter: Reporter,
    keep: Checkpoints,
    every: train::resume::Checkpointing,
) -> Result<std::result::Result<RunResults, String>> {
    let cfg = &run.config;
    let mut trainer = train::trainers::build(cfg)?;
    // A run that a killed or pre-empted job left with a resumable state of this very
    // configuration continues from it (bit-identical to an uninterrupted run).
    let resume = train::resume::config_of(dir).is_some_and(|c| c == *cfg);
    if !resume && run.replicate == 0 && cfg.chip.is_some() && keep == Checkpoints::All {
        let init = dir.join("init");
        crate::fsutil::create_dir(&init)?;
        train::manifest::unseal(&init)?;
        train::save_checkpoint(&init, cfg, trainer.as_ref())?;
        train::manifest::seal(&init)?;
    }
    let opts = RunOptions {
        out: Some(dir.to_path_buf()),
        reporter,
        checkpoint: keep != Checkpoints::None,
        count: true,
    };
    match train::run_resumable(cfg, trainer.as_mut(), data, &opts, every, resume) {
        Ok(r) => Ok(Ok(r)),
        Err(Error::Diverged(m)) => Ok(Err(m)),
        Err(e) => Err(e),
    }
}

/// Runs a scenario (see the module documentation).
pub fn run(req: &RunRequest, reporter: &Reporter) -> crate::error::Result<Summary> {
    let smoke = req.smoke.then(|| Smoke {
        data_dir: data::resolve_data_dir(req.data_dir.as_deref()),
    });
    let p = Prepared::load_with(&req.file, &req.sets, smoke.as_ref())?;
    if let Some(sec) = &p.scenario.file.distill {
        return super::distill::run(req, &p, sec, smoke.as_ref(), reporter);
    }
    let name = p.scenario.file.name.clone();
    let base_dataset = p.scenario.base["data"]["dataset"].clone();
    if let Some(s) = &smoke
        && base_dataset != json!(DatasetKind::Synthetic)
        && base_dataset != json!(DatasetKind::SyntheticColor)
        && p.runs.iter().any(|r| r.config.dataset.is_synthetic())
    {
        say!(
            "note: --smoke: the {} files are not in {}; the smoke runs use the synthetic dataset \
             (set MORTAL_DATA or --data-dir to smoke-test on the real data)",
            base_dataset.as_str().unwrap_or("dataset"),
            s.data_dir.display()
        );
    }
    if p.scenario.has_hardware() && p.runs.iter().any(|r| r.config.algo == Algo::Bp) {
        say!("note: bp is digital backprop: it ignores [hardware] (one reference run per seed)");
    }
    let dir = req.out.clone().unwrap_or_else(|| p.default_dir());
    let shard = req.shard.unwrap_or(Shard { index: 0, count: 1 });
    if req.dry_run {
        say!(
            "{name}: {} (would write {})",
            runs_text(p.runs.len()),
            dir.display()
        );
        for r in p.runs.iter().filter(|r| shard.contains(r.index)) {
            say!("{:>5}  {}", r.index, r.id);
        }
        return Ok(Summary {
            dir,
            total: p.runs.len(),
            ..Summary::default()
        });
    }
    // One writer per output directory (per shard of it: the shards of a job array may
    // share a directory); a second `mortal run` into it exits 2 naming the first.
    let _lock = match req.shard {
        None => crate::fsutil::OutputLock::take(&dir)?,
        Some(s) => crate::fsutil::OutputLock::take_named(
            &dir,
            &format!(".mortal-shard-{}-of-{}.lock", s.index, s.count),
        )?,
    };
    let (store, opened) = Store::open(&dir, p.manifest(), &p.scenario.text, req.force)
        .with_context(|| req.file.display().to_string())?;
    if !opened.forced_changes.is_empty() {
        say!(
            "note: --force: the scenario changed ({}); finished runs with unchanged configurations are kept, {} rows of the old version removed from results.csv",
            super::store::summarise(&opened.forced_changes),
            opened.dropped_rows
        );
    }
    if opened.dropped_bytes > 0 {
        say!(
            "note: dropped a partially written last line of {} (a sweep killed mid-write; that run will be redone)",
            dir.join(super::store::RESULTS).display()
        );
    }
    if opened.bad_rows > 0 {
        say!(
            "note: skipped {} malformed rows of results.csv",
            opened.bad_rows
        );
    }
    if let Some(a) = &opened.moved_aside {
        say!(
            "note: results.csv had other columns; moved it to {}",
            a.display()
        );
    }
    // A run listed as done whose directory is missing, incomplete or edited is redone.
    let (completed, broken) = store.verified()?;
    if !broken.is_empty() {
        for (id, why) in &broken {
            say!("note: run {id} is listed as done but does not verify ({why}); redoing it");
        }
        store.drop_rows(&broken.iter().map(|(id, _)| id.clone()).collect())?;
    }
    let mine: Vec<&RunSpec> = p.runs.iter().filter(|r| shard.contains(r.index)).collect();
    let todo: Vec<&RunSpec> = mine
        .iter()
        .copied()
        .filter(|r| !completed.contains(&r.id))
        .collect();
    let skipped = mine.len() - todo.len();
    say!(
        "{name}: {}{}; {skipped} already done, {} to run → {}",
        runs_text(p.runs.len()),
        if shard.count > 1 {
            format!(" (shard {shard}: {})", mine.len())
        } else {
            String::new()
        },
        todo.len(),
        dir.display()
    );

    // Load every dataset first: a missing file stops the sweep before any run starts.
    let mut cache: HashMap<String, Arc<Splits>> = HashMap::new();
    for r in &todo {
        if let std::collections::hash_map::Entry::Vacant(slot) = cache.entry(data_key(&r.config)) {
            let splits = r.config.load_data(req.data_dir.as_deref())?;
            slot.insert(Arc::new(splits));
        }
    }

    let keep = p.scenario.file.output.checkpoints;
    let every = train::resume::Checkpointing::from_every(req.checkpoint_every);
    let jobs = req
        .jobs
        .unwrap_or_else(rayon::current_num_threads)
        .clamp(1, todo.len().max(1));
    let bar = reporter.bar(todo.len() as u64, "sweep");
    let next = AtomicUsize::new(0);
    let finished = AtomicUsize::new(0);
    let failures: Mutex<Vec<(String, Error)>> = Mutex::new(Vec::new());
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::SeqCst);
                    let Some(run) = todo.get(k) else { break };
                    let rep = reporter.labelled(format!("#{}", run.index));
                    let data = &cache[&data_key(&run.config)];
                    let t0 = Instant::now();
                    let result = execute(run, data, &store.run_dir(&run.id), rep, keep, every)
                        .and_then(|o| store.append(&row(run, &o)).map(|()| o));
                    let n = finished.fetch_add(1, Ordering::SeqCst) + 1;
                    bar.inc(1);
                    let elapsed = start.elapsed().as_secs_f64();
                    let eta = elapsed / n as f64 * (todo.len() - n) as f64;
                    let what = match &result {
                        Ok(Ok(r)) => format!(
                            "test error {} [{}] (goodness {}, softmax {})",
                            pct(Some(r.test_error)),
                            r.eval_method,
                            pct(r.test_error_goodness),
                            pct(r.test_error_softmax)
                        ),
                        Ok(Err(m)) => format!("diverged: {m}"),
                        Err(e) => format!("FAILED: {e}"),
                    };
                    reporter.line(&format!(
                        "[{n}/{}] {}: {what} ({:.1} s){}",
                        todo.len(),
                        run.name,
                        t0.elapsed().as_secs_f64(),
                        if n < todo.len() {
                            format!("; ETA {}", minutes(eta))
                        } else {
                            String::new()
                        }
                    ));
                    if let Err(e) = result {
                        failures
                            .lock()
                            .expect("no panics while holding the lock")
                            .push((run.name.clone(), e));
                    }
                }
            });
        }
    });
    bar.finish_and_clear();
    store.sort_results()?;
    let failures = failures
        .into_inner()
        .expect("no panics while holding the lock");
    let summary = Summary {
        dir: dir.clone(),
        total: p.runs.len(),
        skipped,
        ran: todo.len() - failures.len(),
        failed: failures.len(),
    };
    if !todo.is_empty() {
        say!(
            "{name}: {} runs finished in {}; results in {}",
            summary.ran,
            minutes(start.elapsed().as_secs_f64()),
            dir.join(super::store::RESULTS).display()
        );
    }
    if let Some(figures) = &req.figures {
        figures.draw(&dir);
    }
    if let Some((name, e)) = failures.into_iter().next() {
        return Err(e.context(format!(
            "{} of {} runs failed (re-run the same command to retry them); first: {name}",
            summary.failed,
            todo.len()
        )));
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_rates_print_without_float_noise() {
        assert_eq!(super::fraction(0.6557000000000001), "0.6557");
        assert_eq!(super::fraction(0.1 + 0.2), "0.3");
        assert_eq!(super::fraction(0.0123), "0.0123");
        assert_eq!(super::fraction(1.0), "1");
        assert_eq!(super::fraction(f64::NAN), "NaN");
    }
}
