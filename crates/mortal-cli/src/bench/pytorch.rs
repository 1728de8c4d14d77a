//! The PyTorch side of `mortal bench --pytorch PYTHON`: the same FF training step written
//! in PyTorch (`scripts/torch-ff-bench.py`, embedded here), run by the given interpreter
//! between mortal's own repeats so both see the same machine load.

use std::path::{Path, PathBuf};
use std::process::Command;

use mortal::error::{Error, Result};

/// The script, as in the repository.
const SCRIPT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../scripts/torch-ff-bench.py"
));

/// A written copy of the script for one `mortal bench` run (removed on drop).
pub struct TorchBench {
    python: PathBuf,
    script: PathBuf,
}

impl TorchBench {
    /// Writes the script next to the system's temporary files and checks that `python`
    /// can import torch.
    pub fn new(python: &Path) -> Result<Self> {
        let script =
            std::env::temp_dir().join(format!("mortal-torch-ff-bench-{}.py", std::process::id()));
        std::fs::write(&script, SCRIPT)
            .map_err(|e| Error::io(format!("writing {}", script.display()), e))?;
        let me = Self {
            python: python.to_path_buf(),
            script,
        };
        let out = Command::new(&me.python)
            .args(["-c", "import torch"])
            .output()
            .map_err(|e| {
                Error::param("--pytorch", python.display(), format!("cannot be run: {e}"))
            })?;
        if !out.status.success() {
            return Err(Error::param(
                "--pytorch",
                python.display(),
                "cannot import torch (install it in that interpreter's environment)",
            ));
        }
        Ok(me)
    }

    /// Samples per second of `batches` FF steps (one timed repeat after a warm-up step)
    /// with these hidden layers, batch, negatives and threads.
    pub fn ff_samples_per_s(
        &self,
        hidden: &[usize],
        batch: usize,
        batches: usize,
        negatives: &str,
        threads: usize,
    ) -> Result<f64> {
        let layers: Vec<String> = hidden.iter().map(|w| w.to_string()).collect();
        let out = Command::new(&self.python)
            .arg(&self.script)
            .args(["--threads", &threads.to_string()])
            .args(["--batches", &batches.to_string()])
            .args(["--repeats", "1"])
            .args(["--batch", &batch.to_string()])
            .args(["--negatives", negatives])
            .args(["--layers", &layers.join(",")])
            .output()
            .map_err(|e| Error::io(format!("running {}", self.python.display()), e))?;
        let fail =
            |what: String| Error::artifact(&self.python, format!("PyTorch FF benchmark: {what}"));
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err
                .lines()
                .last()
                .map_or(String::new(), |l| format!(": {l}"));
            return Err(fail(format!("exited with {}{last}", out.status)));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let v: serde_json::Value = serde_json::from_str(text.trim())
            .map_err(|e| fail(format!("unreadable output ({e}): {text}")))?;
        v["samples_per_s"]
            .as_f64()
            .ok_or_else(|| fail(format!("no samples_per_s in {text}")))
    }
}

impl Drop for TorchBench {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.script);
    }
}
