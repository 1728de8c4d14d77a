//! Helpers shared by the end-to-end tests.

use std::path::Path;
use std::process::{Command, Output};

/// The repository's root (the workspace; the CLI crate is `crates/mortal-cli`).
pub fn root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

/// The `mortal` binary, run from the repository's root.
pub fn mortal() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mortal"));
    c.env_remove("MORTAL_DATA");
    c.current_dir(root());
    c
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn mortal");
    assert!(
        out.status.success(),
        "mortal failed ({:?}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a command that must fail: returns (exit code, stderr).
pub fn run_err(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().expect("spawn mortal");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr: {stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "panic instead of an error: {stderr}"
    );
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "error must be one line: {stderr:?}"
    );
    (out.status.code().unwrap_or(-1), stderr)
}

pub fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap()
}

/// `epochs.csv` without its timing columns (which legitimately differ between runs).
pub fn epochs_without_timing(dir: &Path) -> Vec<Vec<String>> {
    let mut rd = csv::Reader::from_path(dir.join("epochs.csv")).unwrap();
    let header: Vec<String> = rd.headers().unwrap().iter().map(String::from).collect();
    let keep: Vec<usize> = (0..header.len())
        .filter(|i| !header[*i].ends_with("_seconds"))
        .collect();
    rd.records()
        .map(|r| {
            let r = r.unwrap();
            keep.iter().map(|i| r[*i].to_string()).collect()
        })
        .collect()
}

/// Asserts that each of `keys` in `r` is a number in [0, 1] (an error or agreement).
pub fn assert_fractions(r: &serde_json::Value, keys: &[&str]) {
    for key in keys {
        let v = r[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} is not a number: {r}"));
        assert!((0.0..=1.0).contains(&v), "{key} = {v}");
    }
}
