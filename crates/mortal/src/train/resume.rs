//! Mid-run resumable states: what `mortal train` writes every few epochs into
//! `<run>/resume/` so a run killed by a job's time limit (or anything else) continues with
//! `mortal train --resume <run>` and ends bit-identical to an uninterrupted run.
//!
//! A state is the trainer's whole state ([`super::trainers::Trainer::resume_state`]: the
//! substrate's conductances, drift clocks and accumulators, the learner's weights and
//! optimiser state, the counters), the loop's random streams (negative labels, substrate
//! noise, jitter) and its bookkeeping (epochs done, ledgers, times). The data order of an
//! epoch is a function of the seed and the epoch, so it needs no saving.
//!
//! Each state is two files named by its epoch (`state-e<N>.json`, `state-e<N>.safetensors`,
//! written atomically, the JSON holding the tensor file's MD5), and `latest` names the
//! newest complete one: a process killed at any point leaves the previous state usable.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::checkpoint::{read_tensors, write_tensors};
use super::config::TrainConfig;
use crate::error::{Error, Result};
use crate::fsutil::{read_json, write_atomic, write_json};
use crate::rng::Rng;
use crate::substrate::Ledger;
use crate::tensor::Tensor;

/// Directory of a run's resumable states.
pub const RESUME_DIR: &str = "resume";
/// Format of a resumable state (bumped when what it holds changes).
pub const FORMAT: u32 = 1;
/// Interval of resumable states when none is asked for: runs shorter than this never
/// write one.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(600);

/// When a run writes resumable states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checkpointing {
    /// Never.
    Off,
    /// After every N-th epoch (N ≥ 1).
    Every(usize),
    /// After the first epoch that ends at least this long after the last state (or the
    /// start): long runs are protected, short ones write nothing.
    Interval(Duration),
}

impl Default for Checkpointing {
    fn default() -> Self {
        Checkpointing::Interval(DEFAULT_INTERVAL)
    }
}

impl Checkpointing {
    /// From `--checkpoint-every` (None: the default interval, 0: never, N: every N).
    pub fn from_every(every: Option<usize>) -> Self {
        match every {
            None => Checkpointing::default(),
            Some(0) => Checkpointing::Off,
            Some(n) => Checkpointing::Every(n),
        }
    }

    /// The `--checkpoint-every` value that gives this (the default interval: None).
    pub fn every(self) -> Option<usize> {
        match self {
            Checkpointing::Off => Some(0),
            Checkpointing::Every(n) => Some(n),
            Checkpointing::Interval(_) => None,
        }
    }

    /// Whether to write a state after `epoch` (of `epochs`), `since` the last state.
    pub fn due(self, epoch: usize, epochs: usize, since: Duration) -> bool {
        epoch < epochs
            && match self {
                Checkpointing::Off => false,
                Checkpointing::Every(n) => n > 0 && epoch.is_multiple_of(n),
                Checkpointing::Interval(d) => since >= d,
            }
    }
}

/// The loop's random streams.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamState {
    pub negatives: Rng,
    pub noise: Rng,
    pub jitter: Rng,
}

/// The JSON half of a resumable state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumeMeta {
    pub format: u32,
    pub mortal_version: String,
    /// The run's configuration (a resume must continue the same run).
    pub config: TrainConfig,
    /// Epochs completed.
    pub epoch: usize,
    pub streams: StreamState,
    /// The trainer's counters, and the loop's: at the start and over the training parts.
    pub ledger: Ledger,
    pub initial: Ledger,
    pub trained: Ledger,
    /// Seconds spent so far.
    pub train_seconds: f64,
    pub eval_seconds: f64,
    pub elapsed_seconds: f64,
    /// MD5 of the tensor file.
    pub tensors_md5: String,
    /// How the run writes its states (`--checkpoint-every`: None the default interval, 0
    /// never, N every N epochs), kept by a resume unless it is given again.
    #[serde(default)]
    pub checkpoint_every: Option<usize>,
}

fn names(epoch: usize) -> (String, String) {
    (
        format!("state-e{epoch}.json"),
        format!("state-e{epoch}.safetensors"),
    )
}

/// Writes a resumable state into `<run>/resume/`, then points `latest` at it and removes
/// older states.
pub fn save(run: &Path, meta: &ResumeMeta, tensors: &[Tensor]) -> Result<()> {
    let dir = run.join(RESUME_DIR);
    crate::fsutil::create_dir(&dir)?;
    let (json, st) = names(meta.epoch);
    let md5 = write_tensors(&dir.join(&st), tensors)?;
    let meta = ResumeMeta {
        tensors_md5: md5,
        ..meta.clone()
    };
    write_json(&dir.join(&json), &meta)?;
    write_atomic(&dir.join("latest"), json.as_bytes())?;
    // Older states are no longer needed.
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("state-e") && n != json && n != st {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(())
}

/// The configuration of `run`'s newest resumable state, if it has a readable one (its
/// tensors are neither read nor verified: [`load`] does that).
pub fn config_of(run: &Path) -> Option<TrainConfig> {
    load_meta(run).ok().flatten().map(|m| m.config)
}

/// The JSON half of `run`'s newest resumable state, if any, checked (its tensors are
/// read and verified by [`load`]).
pub fn load_meta(run: &Path) -> Result<Option<ResumeMeta>> {
    let dir = run.join(RESUME_DIR);
    let latest = dir.join("latest");
    if !latest.is_file() {
        return Ok(None);
    }
    let name = std::fs::read_to_string(&latest)
        .map_err(|e| Error::io(format!("cannot read {}", latest.display()), e))?;
    let name = name.trim();
    if !(name.starts_with("state-e") && name.ends_with(".json") && !name.contains('/')) {
        return Err(Error::artifact(&latest, "does not name a resumable state"));
    }
    let meta: ResumeMeta = read_json(&dir.join(name))?;
    if meta.format != FORMAT {
        return Err(Error::artifact(
            dir.join(name),
            format!(
                "resumable state format {} (this mortal reads {FORMAT})",
                meta.format
            ),
        ));
    }
    // Counters far beyond any run (an edited or corrupt state) would overflow when the
    // run adds to them.
    for (what, l) in [
        ("ledger", &meta.ledger),
        ("initial", &meta.initial),
        ("trained", &meta.trained),
    ] {
        if !plausible(&serde_json::to_value(l).unwrap_or_default()) {
            return Err(Error::artifact(
                dir.join(name),
                format!("its {what} counters are beyond any run (an edited or corrupt state)"),
            ));
        }
    }
    let finite = [meta.train_seconds, meta.eval_seconds, meta.elapsed_seconds]
        .iter()
        .all(|t| t.is_finite() && *t >= 0.0);
    if !finite || meta.epoch == 0 {
        return Err(Error::artifact(
            dir.join(name),
            "its epoch or times are invalid (an edited or corrupt state)",
        ));
    }
    Ok(Some(meta))
}

/// The newest resumable state of `run`, if any, verified (its tensor file's MD5).
pub fn load(run: &Path) -> Result<Option<(ResumeMeta, Vec<Tensor>)>> {
    let Some(meta) = load_meta(run)? else {
        return Ok(None);
    };
    let (_, st) = names(meta.epoch);
    let tensors = read_tensors(&run.join(RESUME_DIR).join(st), Some(&meta.tensors_md5))?;
    Ok(Some((meta, tensors)))
}

/// Whether every count in a serialised ledger is below 2⁶² (room to add a run's counts).
fn plausible(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Number(n) => n.as_u64().is_none_or(|u| u < 1 << 62),
        serde_json::Value::Array(a) => a.iter().all(plausible),
        serde_json::Value::Object(o) => o.values().all(plausible),
        _ => true,
    }
}

/// Removes a run's resumable states (the run completed).
pub fn clear(run: &Path) -> Result<()> {
    let dir = run.join(RESUME_DIR);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|e| Error::io(format!("cannot remove {}", dir.display()), e))?;
    }
    Ok(())
}

/// The state directory of a run (for messages).
pub fn dir_of(run: &Path) -> PathBuf {
    run.join(RESUME_DIR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_every_n_epochs_or_after_an_interval_never_at_the_end() {
        let e = Checkpointing::Every(2);
        assert!(!e.due(1, 5, Duration::ZERO) && e.due(2, 5, Duration::ZERO));
        assert!(
            !e.due(4, 4, Duration::ZERO),
            "the finished run needs no state"
        );
        let i = Checkpointing::Interval(Duration::from_secs(10));
        assert!(!i.due(1, 5, Duration::from_secs(9)) && i.due(1, 5, Duration::from_secs(10)));
        assert!(!Checkpointing::Off.due(1, 5, Duration::from_secs(1000)));
    }
}
