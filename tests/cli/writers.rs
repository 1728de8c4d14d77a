//! Runs that survive each other: one writer per output directory (a second process is
//! refused with exit 2 naming the holder's pid), and no command writes over what it reads.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;

fn train_args(out: &Path, epochs: &str) -> std::process::Command {
    let mut c = mortal();
    c.args([
        "train",
        "-q",
        "--dataset",
        "synthetic",
        "--layers",
        "64,64",
        "--epochs",
        epochs,
        "--train-limit",
        "1500",
        "--eval-limit",
        "200",
        "--chip",
        "harsh",
        "--out",
    ])
    .arg(out);
    c
}

/// While a run writes a directory, a second `mortal train` into it is refused at once
/// (exit 2, naming the directory and the first process's pid), and the first run
/// completes untouched and loadable.
#[test]
fn a_second_writer_is_refused_and_the_first_run_completes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut first = train_args(&out, "40").spawn().unwrap();
    let lock = out.join(".mortal.lock");
    let t = Instant::now();
    let pid = first.id().to_string();
    while !std::fs::read_to_string(&lock).is_ok_and(|s| s.trim() == pid) {
        assert!(t.elapsed() < Duration::from_secs(60), "no lock file");
        std::thread::sleep(Duration::from_millis(20));
    }
    if first.try_wait().unwrap().is_none() {
        let (code, err) = run_err(train_args(&out, "1").arg("--seed").arg("2").arg("--force"));
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(&pid) && err.contains("run"), "{err}");
    }
    assert!(first.wait().unwrap().success());
    let r = read_json(&out.join("results.json"));
    assert_eq!(r["seed"], 1);
    run_ok(
        mortal()
            .args(["eval", "-q", "--checkpoint"])
            .arg(&out)
            .args(["--eval-limit", "50", "--out"])
            .arg(dir.path().join("eval")),
    );
}

/// Outputs never overlap inputs: an evaluation into its checkpoint's directory, or a
/// student into (or inside) its teacher's, is refused before anything is written.
#[test]
fn outputs_onto_inputs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("teacher");
    run_ok(&mut train_args(&t, "1"));
    let before = std::fs::read(t.join("results.json")).unwrap();
    let (code, err) = run_err(
        mortal()
            .args(["eval", "-q", "--eval-limit", "50", "--checkpoint"])
            .arg(&t)
            .arg("--out")
            .arg(&t),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("checkpoint") && err.contains("--out"), "{err}");
    for out in [t.clone(), t.join("student")] {
        let (code, err) = run_err(
            mortal()
                .args([
                    "distill",
                    "-q",
                    "--student-chip",
                    "harsh",
                    "--transfer",
                    "100",
                ])
                .arg("--teacher")
                .arg(&t)
                .arg("--out")
                .arg(&out),
        );
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("teacher"), "{err}");
    }
    assert_eq!(std::fs::read(t.join("results.json")).unwrap(), before);
    assert!(!t.join("student").exists());
}
