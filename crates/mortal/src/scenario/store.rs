//! A scenario's output directory:
//!
//! * `scenario.toml`: a copy of the scenario file as run;
//! * `scenario.json`: its resolved content and hash, the list of runs and the figure
//!   settings (what `mortal plot` and `mortal merge` read);
//! * `results.csv`: one row per finished run, appended with one write + fsync after the
//!   run's own files are complete (a killed sweep loses at most the runs in progress; a
//!   torn last line is dropped on the next start); sorted by run index when a sweep ends;
//! * `runs/<run id>/`: what `mortal train` writes (`results.json`, `epochs.csv`,
//!   checkpoint) and, for the first replicate of chip runs, `init/` (the chip before
//!   training, as a checkpoint).

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::paths;
use super::schema::OutputSection;
use super::sweep::{Axis, RunSpec};
use crate::error::{Error, Result};
use crate::fsutil::{create_dir, read_json, write_atomic, write_json};

/// File names in an output directory.
pub const MANIFEST: &str = "scenario.json";
pub const SCENARIO_COPY: &str = "scenario.toml";
pub const RESULTS: &str = "results.csv";
pub const RUNS: &str = "runs";
const LOCK: &str = ".results.lock";

/// Format of `scenario.json`.
pub const FORMAT: u32 = 1;

/// Fixed columns of `results.csv` before the axis columns.
pub const LEAD_COLUMNS: [&str; 6] = ["run_id", "index", "name", "algo", "seed", "chip_seed"];
/// Fixed columns after the axis columns.
pub const TAIL_COLUMNS: [&str; 14] = [
    "status",
    "test_error",
    "test_error_goodness",
    "test_error_softmax",
    "eval_method",
    "valid_error",
    "epochs",
    "train_seconds",
    "eval_seconds",
    "peak_rss_mib",
    "train_energy_j_per_sample",
    "inference_energy_j_per_image",
    "train_energy_j_per_sample_native",
    "inference_energy_j_per_image_native",
];
/// Columns that legitimately differ between identical runs (timing and memory).
pub const VOLATILE_COLUMNS: [&str; 3] = ["train_seconds", "eval_seconds", "peak_rss_mib"];

/// One run as listed in `scenario.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunEntry {
    pub index: usize,
    pub id: String,
    pub name: String,
    pub algo: String,
    pub seed: u64,
    pub chip_seed: Option<u64>,
    /// Axis values by column (`null` where the run does not depend on the axis).
    pub cells: Vec<Option<Value>>,
    pub replicate: usize,
}

impl From<&RunSpec> for RunEntry {
    fn from(r: &RunSpec) -> Self {
        Self {
            index: r.index,
            id: r.id.clone(),
            name: r.name.clone(),
            algo: r.config.algo.name().into(),
            seed: r.config.seed,
            chip_seed: r.config.chip.as_ref().map(|c| c.chip_seed),
            cells: r.cells.clone(),
            replicate: r.replicate,
        }
    }
}

/// Contents of `scenario.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioManifest {
    pub format: u32,
    pub mortal_version: String,
    pub name: String,
    pub description: String,
    /// The scenario file it was made from (as given on the command line).
    pub source: String,
    /// MD5 of `resolved` (its canonical JSON).
    pub hash: String,
    /// What identifies the sweep: base configuration sections (every default filled in),
    /// the sweep after `--smoke` shrinking, and the smoke flag. `[output]` and comments
    /// are not part of it: changing them does not make a different scenario.
    pub resolved: Value,
    /// The sweep's axes (paths, values, labels).
    pub axes: Vec<Axis>,
    /// Figure settings.
    pub output: OutputSection,
    /// Every run of the sweep (all shards).
    pub runs: Vec<RunEntry>,
}

impl ScenarioManifest {
    /// The manifest of a resolved content and run list.
    pub fn new(
        name: &str,
        description: &str,
        source: &str,
        resolved: Value,
        axes: Vec<Axis>,
        output: OutputSection,
        runs: &[RunSpec],
    ) -> Self {
        Self {
            format: FORMAT,
            mortal_version: env!("CARGO_PKG_VERSION").into(),
            name: name.into(),
            description: description.into(),
            source: source.into(),
            hash: hash_value(&resolved),
            resolved,
            axes,
            output,
            runs: runs.iter().map(RunEntry::from).collect(),
        }
    }

    /// Axis column names.
    pub fn columns(&self) -> Vec<String> {
        self.axes.iter().flat_map(|a| a.paths.clone()).collect()
    }

    /// The header of `results.csv`.
    pub fn header(&self) -> Vec<String> {
        LEAD_COLUMNS
            .iter()
            .map(|s| s.to_string())
            .chain(self.columns())
            .chain(TAIL_COLUMNS.iter().map(|s| s.to_string()))
            .collect()
    }

    /// Reads `dir/scenario.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let p = dir.join(MANIFEST);
        if !p.is_file() {
            return Err(Error::artifact(
                dir,
                format!(
                    "no {MANIFEST} (or distill.json) here; not the output directory of `mortal run`, \
                     `mortal merge` or a `mortal distill` sweep"
                ),
            ));
        }
        let m: ScenarioManifest = read_json(&p)?;
        if m.format != FORMAT {
            return Err(Error::artifact(
                &p,
                format!("format {} is not supported (expected {FORMAT})", m.format),
            ));
        }
        Ok(m)
    }

    /// What differs between the sweeps of two manifests (empty if they are the same).
    pub fn changes(&self, newer: &ScenarioManifest) -> Vec<String> {
        if self.hash == newer.hash {
            return Vec::new();
        }
        let mut d = Vec::new();
        paths::differences(&self.resolved, &newer.resolved, "", &mut d);
        if d.is_empty() {
            d.push("(resolved content)".into());
        }
        d
    }
}

/// MD5 hex of a value's JSON (serde_json maps are sorted, so this is canonical).
pub fn hash_value(v: &Value) -> String {
    Md5::digest(v.to_string().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A summary of changes on one line: the first few.
pub fn summarise(changes: &[String]) -> String {
    let mut s = changes
        .iter()
        .take(4)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if changes.len() > 4 {
        s.push_str(&format!("; and {} more", changes.len() - 4));
    }
    s
}

/// An exclusive lock on a directory's results (held until dropped).
pub(crate) struct DirLock(File);

impl DirLock {
    pub(crate) fn take(dir: &Path) -> Result<Self> {
        let p = dir.join(LOCK);
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(|e| Error::io(format!("cannot open {}", p.display()), e))?;
        f.lock()
            .map_err(|e| Error::io(format!("cannot lock {}", p.display()), e))?;
        Ok(DirLock(f))
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// An opened output directory.
#[derive(Clone, Debug)]
pub struct Store {
    pub dir: PathBuf,
    pub manifest: ScenarioManifest,
}

/// What opening found.
#[derive(Clone, Debug, Default)]
pub struct Opened {
    /// Bytes of a torn last line dropped from `results.csv`.
    pub dropped_bytes: usize,
    /// Rows that could not be read and were dropped.
    pub bad_rows: usize,
    /// A results file with another header, moved aside to this path.
    pub moved_aside: Option<PathBuf>,
    /// With `--force`: what changed in the scenario.
    pub forced_changes: Vec<String>,
    /// With `--force`: rows of the old version's runs removed from `results.csv`.
    pub dropped_rows: usize,
}

impl Store {
    /// Opens (creating if needed) `dir` for `manifest`. A directory made by a different
    /// scenario is refused unless `force`; the scenario copy and manifest are (re)written;
    /// a torn last line of `results.csv` is dropped.
    pub fn open(
        dir: &Path,
        manifest: ScenarioManifest,
        text: &str,
        force: bool,
    ) -> Result<(Self, Opened)> {
        create_dir(dir)?;
        let mut opened = Opened::default();
        // Held from the check of which scenario owns the directory to the writes: two
        // scenarios started at once into one --out cannot both pass the check.
        let _lock = DirLock::take(dir)?;
        if dir.join(MANIFEST).exists() {
            let old = ScenarioManifest::read(dir)?;
            let changes = old.changes(&manifest);
            if !changes.is_empty() {
                if !force {
                    return Err(Error::param(
                        "scenario",
                        &manifest.source,
                        format!(
                            "{} holds results of a different version of this scenario (changed: {}); \
                             use another --out, or --force to run the new version here",
                            dir.display(),
                            summarise(&changes)
                        ),
                    ));
                }
                opened.forced_changes = changes;
            }
        }
        let store = Store {
            dir: dir.to_path_buf(),
            manifest,
        };
        {
            write_atomic(&dir.join(SCENARIO_COPY), text.as_bytes())?;
            write_json(&dir.join(MANIFEST), &store.manifest)?;
            opened.dropped_bytes = store.repair()?;
            let path = dir.join(RESULTS);
            if let Some(h) = read_header(&path)?
                && h != store.manifest.header()
            {
                let aside = dir.join(format!("results-{}.csv", &store.manifest.hash[..8]));
                std::fs::rename(&path, &aside)
                    .map_err(|e| Error::io(format!("cannot move {}", path.display()), e))?;
                opened.moved_aside = Some(aside);
            }
            if !opened.forced_changes.is_empty() && path.is_file() {
                // The new version's results only: rows of runs it no longer has (changed
                // configurations get new ids) are dropped, unchanged runs are kept.
                let header = store.manifest.header();
                let ids: HashSet<&str> =
                    store.manifest.runs.iter().map(|r| r.id.as_str()).collect();
                let (rows, _) = read_rows(&path, &header)?;
                let before = rows.len();
                let kept: Vec<Vec<String>> = rows
                    .into_iter()
                    .filter(|r| ids.contains(r[0].as_str()))
                    .collect();
                opened.dropped_rows = before - kept.len();
                write_results(&path, &header, kept)?;
            }
            opened.bad_rows = read_rows(&path, &store.manifest.header())?.1;
        }
        Ok((store, opened))
    }

    /// Drops a partially written last line (no final newline) of `results.csv`; returns
    /// the bytes dropped. Call with the lock held.
    fn repair(&self) -> Result<usize> {
        let path = self.dir.join(RESULTS);
        let Ok(bytes) = std::fs::read(&path) else {
            return Ok(0);
        };
        if bytes.is_empty() || bytes.ends_with(b"\n") {
            return Ok(0);
        }
        let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let f = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
        f.set_len(keep as u64)
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io(format!("cannot truncate {}", path.display()), e))?;
        Ok(bytes.len() - keep)
    }

    /// Ids of the runs with a row in `results.csv`.
    pub fn completed(&self) -> Result<HashSet<String>> {
        let (rows, _) = read_rows(&self.dir.join(RESULTS), &self.manifest.header())?;
        Ok(rows.into_iter().map(|r| r[0].clone()).collect())
    }

    /// Appends one row (with the header first if the file is new) in a single write,
    /// then flushes and syncs it to disk.
    pub fn append(&self, row: &[String]) -> Result<()> {
        let _lock = DirLock::take(&self.dir)?;
        let path = self.dir.join(RESULTS);
        let ctx = || format!("cannot append to {}", path.display());
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(ctx(), e))?;
        let empty = f.metadata().map_err(|e| Error::io(ctx(), e))?.len() == 0;
        let mut rows = Vec::new();
        if empty {
            rows.push(self.manifest.header());
        }
        rows.push(row.to_vec());
        let bytes = csv_bytes(&rows)?;
        f.write_all(&bytes)
            .and_then(|()| f.flush())
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io(ctx(), e))
    }

    /// Removes the rows of runs `ids` from `results.csv` (runs to be redone).
    pub fn drop_rows(&self, ids: &HashSet<String>) -> Result<()> {
        let _lock = DirLock::take(&self.dir)?;
        let path = self.dir.join(RESULTS);
        let header = self.manifest.header();
        let (rows, _) = read_rows(&path, &header)?;
        let kept = rows.into_iter().filter(|r| !ids.contains(&r[0])).collect();
        write_results(&path, &header, kept)
    }

    /// The finished runs (see [`Store::completed`]) whose directories verify against their
    /// manifests, and the others with the reason each fails.
    /// Diverged runs have no files to verify and count as done.
    pub fn verified(&self) -> Result<(HashSet<String>, Vec<Broken>)> {
        let mut good = HashSet::new();
        let mut broken = Vec::new();
        let header = self.manifest.header();
        let (rows, _) = read_rows(&self.dir.join(RESULTS), &header)?;
        for r in rows {
            let id = r[0].clone();
            if diverged(&header, &r) {
                good.insert(id);
                continue;
            }
            match crate::train::manifest::verify(&self.run_dir(&id)) {
                Ok(()) => {
                    good.insert(id);
                }
                Err(e) => broken.push((id, e.to_string())),
            }
        }
        Ok((good, broken))
    }

    /// Rewrites `results.csv` with its rows deduplicated and sorted by run index.
    pub fn sort_results(&self) -> Result<()> {
        let _lock = DirLock::take(&self.dir)?;
        let path = self.dir.join(RESULTS);
        if !path.exists() {
            return Ok(());
        }
        let header = self.manifest.header();
        let (rows, _) = read_rows(&path, &header)?;
        write_results(&path, &header, rows)
    }

    /// Directory of a run's files.
    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.dir.join(RUNS).join(id)
    }
}

/// A run listed as done that does not verify: (run id, why).
pub type Broken = (String, String);

/// Whether a `results.csv` row records a diverged run (an outcome with no run files).
fn diverged(header: &[String], row: &[String]) -> bool {
    header
        .iter()
        .position(|h| h == "status")
        .and_then(|i| row.get(i))
        .is_some_and(|s| s.starts_with("diverged"))
}

/// Rows as CSV bytes.
fn csv_bytes(rows: &[Vec<String>]) -> Result<Vec<u8>> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    for r in rows {
        w.write_record(r)
            .map_err(|e| Error::io("cannot format CSV", std::io::Error::other(e)))?;
    }
    w.into_inner()
        .map_err(|e| Error::io("cannot format CSV", std::io::Error::other(e.to_string())))
}

/// Writes `rows` (deduplicated by run id, sorted by index) under `header`, atomically.
fn write_results(path: &Path, header: &[String], mut rows: Vec<Vec<String>>) -> Result<()> {
    let mut seen = HashSet::new();
    rows.retain(|r| seen.insert(r[0].clone()));
    rows.sort_by_key(|r| r[1].parse::<usize>().unwrap_or(usize::MAX));
    let mut all = vec![header.to_vec()];
    all.extend(rows);
    write_atomic(path, &csv_bytes(&all)?)
}

/// The header of a results file, if it has one.
fn read_header(path: &Path) -> Result<Option<Vec<String>>> {
    if !path.is_file() {
        return Ok(None);
    }
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_path(path)
        .map_err(|e| Error::artifact(path, format!("cannot read: {e}")))?;
    Ok(rd
        .records()
        .next()
        .and_then(|r| r.ok())
        .map(|r| r.iter().map(String::from).collect()))
}

/// The complete, well-formed rows of a results file with `header` (a missing file has
/// none), and how many malformed ones were skipped.
pub fn read_rows(path: &Path, header: &[String]) -> Result<(Vec<Vec<String>>, usize)> {
    if !path.is_file() {
        return Ok((Vec::new(), 0));
    }
    let bytes =
        std::fs::read(path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    // A last line without its newline was torn by a kill: ignore it.
    let end = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(&bytes[..end]);
    let mut rows = Vec::new();
    let mut bad = 0;
    for (i, rec) in rd.records().enumerate() {
        let Ok(rec) = rec else {
            bad += 1;
            continue;
        };
        let row: Vec<String> = rec.iter().map(String::from).collect();
        if i == 0 {
            if row != header {
                return Err(Error::artifact(
                    path,
                    "its header does not match this scenario's columns",
                ));
            }
            continue;
        }
        if row.len() != header.len() || row[0].is_empty() || row[1].parse::<usize>().is_err() {
            bad += 1;
            continue;
        }
        rows.push(row);
    }
    Ok((rows, bad))
}

/// What `merge` did.
#[derive(Clone, Debug)]
pub struct Merged {
    pub rows: usize,
    pub total_runs: usize,
    pub missing: Vec<String>,
}

/// Combines the output directories of shards of one scenario into `out`: one
/// `results.csv` (deduplicated by run id, sorted by index) and every run's files.
/// Directories of different scenarios are refused.
pub fn merge(out: &Path, dirs: &[PathBuf]) -> Result<Merged> {
    if dirs.is_empty() {
        return Err(Error::param(
            "merge",
            "",
            "give at least one directory to merge",
        ));
    }
    let manifests: Vec<ScenarioManifest> = dirs
        .iter()
        .map(|d| ScenarioManifest::read(d))
        .collect::<Result<_>>()?;
    let first = &manifests[0];
    for (d, m) in dirs.iter().zip(&manifests).skip(1) {
        let changes = first.changes(m);
        if !changes.is_empty() {
            return Err(Error::param(
                "merge",
                d.display(),
                format!(
                    "holds a different scenario than {} (differs in: {}); only shards of one scenario can be merged",
                    dirs[0].display(),
                    summarise(&changes)
                ),
            ));
        }
    }
    if out.join(MANIFEST).exists() {
        let existing = ScenarioManifest::read(out)?;
        let changes = existing.changes(first);
        if !changes.is_empty() {
            return Err(Error::param(
                "merge",
                out.display(),
                format!(
                    "already holds a different scenario (differs in: {})",
                    summarise(&changes)
                ),
            ));
        }
    }
    create_dir(out)?;
    let _lock = DirLock::take(out)?;
    let header = first.header();
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut sources: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    sources.insert(0, out);
    let mut seen = HashSet::new();
    for d in &sources {
        let (rs, _) = read_rows(&d.join(RESULTS), &header)?;
        for r in rs {
            if seen.insert(r[0].clone()) {
                let id = r[0].clone();
                let src = d.join(RUNS).join(&id);
                let dst = out.join(RUNS).join(&id);
                // A run listed as done must be whole: a missing or tampered directory is
                // refused, not copied.
                if !diverged(&header, &r) {
                    crate::train::manifest::verify(&src).map_err(|e| {
                        Error::artifact(&src, format!("run {id} cannot be merged: {e}"))
                    })?;
                }
                if src.is_dir() && !same_dir(&src, &dst) && !dst.exists() {
                    copy_dir(&src, &dst)?;
                }
                rows.push(r);
            }
        }
    }
    let copy = dirs[0].join(SCENARIO_COPY);
    if copy.is_file() && !same_dir(&dirs[0], out) {
        let text = std::fs::read(&copy)
            .map_err(|e| Error::io(format!("cannot read {}", copy.display()), e))?;
        write_atomic(&out.join(SCENARIO_COPY), &text)?;
    }
    write_json(&out.join(MANIFEST), first)?;
    let n = rows.len();
    write_results(&out.join(RESULTS), &header, rows)?;
    let missing = first
        .runs
        .iter()
        .filter(|r| !seen.contains(&r.id))
        .map(|r| r.name.clone())
        .collect();
    Ok(Merged {
        rows: n,
        total_runs: first.runs.len(),
        missing,
    })
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Copies a directory tree into a fresh `dst` (via a temporary name, renamed at the end).
fn copy_dir(src: &Path, dst: &Path) -> Result<()> {
    let parent = dst.parent().unwrap_or(Path::new("."));
    create_dir(parent)?;
    let tmp = crate::fsutil::temp_dir_in(parent, ".merge-").map_err(|e| {
        Error::io(
            format!("cannot create a directory in {}", parent.display()),
            e,
        )
    })?;
    fn copy_into(src: &Path, dst: &Path) -> Result<()> {
        let ctx = |p: &Path| format!("cannot copy {}", p.display());
        for entry in std::fs::read_dir(src).map_err(|e| Error::io(ctx(src), e))? {
            let entry = entry.map_err(|e| Error::io(ctx(src), e))?;
            let from = entry.path();
            let to = dst.join(entry.file_name());
            if from.is_dir() {
                create_dir(&to)?;
                copy_into(&from, &to)?;
            } else {
                std::fs::copy(&from, &to).map_err(|e| Error::io(ctx(&from), e))?;
            }
        }
        Ok(())
    }
    copy_into(src, tmp.path())?;
    let kept = tmp.keep();
    std::fs::rename(&kept, dst)
        .map_err(|e| Error::io(format!("cannot create {}", dst.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(hash_seed: u64) -> ScenarioManifest {
        ScenarioManifest::new(
            "t",
            "",
            "t.toml",
            serde_json::json!({ "seed": hash_seed }),
            Vec::new(),
            OutputSection::default(),
            &[],
        )
    }

    #[test]
    fn torn_last_line_is_dropped_and_rows_append() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Store::open(dir.path(), manifest(1), "x", false).unwrap();
        let n = s.manifest.header().len();
        let row = |id: &str, i: usize| {
            let mut r = vec![String::new(); n];
            r[0] = id.into();
            r[1] = i.to_string();
            r
        };
        s.append(&row("b", 1)).unwrap();
        s.append(&row("a", 0)).unwrap();
        let path = dir.path().join(RESULTS);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"c,2,half a ro").unwrap();
        drop(f);
        let (s, opened) = Store::open(dir.path(), manifest(1), "x", false).unwrap();
        assert_eq!(opened.dropped_bytes, 13);
        assert_eq!(
            s.completed().unwrap(),
            HashSet::from(["a".to_string(), "b".to_string()])
        );
        s.sort_results().unwrap();
        let (rows, bad) = read_rows(&path, &s.manifest.header()).unwrap();
        assert_eq!(bad, 0);
        assert_eq!(
            rows.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    #[test]
    fn a_different_scenario_is_refused_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        Store::open(dir.path(), manifest(1), "x", false).unwrap();
        let e = Store::open(dir.path(), manifest(2), "x", false).unwrap_err();
        assert!(e.to_string().contains("seed: 1 → 2"), "{e}");
        let (_, o) = Store::open(dir.path(), manifest(2), "x", true).unwrap();
        assert_eq!(o.forced_changes, vec!["seed: 1 → 2"]);
    }
}
