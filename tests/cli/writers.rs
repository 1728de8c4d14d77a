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

/// A scenario's output directory has one writer: while another process holds it, `mortal
/// run` into it exits 2 naming that process, and writes nothing; a shard holds only its
/// own part (the shards of a job array may share a directory).
#[test]
fn a_second_scenario_writer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("scen");
    let held = mortal::fsutil::OutputLock::take(&out).unwrap();
    let run = |extra: &[&str]| {
        let mut c = mortal();
        c.args([
            "run",
            "scenarios/quickstart.toml",
            "--smoke",
            "--no-plot",
            "-q",
            "--out",
        ])
        .arg(&out)
        .args(extra);
        c
    };
    let (code, err) = run_err(&mut run(&[]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&std::process::id().to_string()) && err.contains("scen"),
        "{err}"
    );
    assert!(!out.join("results.csv").exists());
    // A shard is not blocked by the whole-directory lock of another process, only by
    // another writer of the same shard.
    let shard = mortal::fsutil::OutputLock::take_named(&out, ".mortal-shard-1-of-2.lock").unwrap();
    let (code, err) = run_err(&mut run(&["--shard", "1/2"]));
    assert_eq!(code, 2, "{err}");
    drop(shard);
    run_ok(&mut run(&["--shard", "0/2"]));
    drop(held);
    run_ok(&mut run(&[]));
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

fn md5_of(path: &Path) -> String {
    use md5::{Digest, Md5};
    let bytes = std::fs::read(path).unwrap();
    Md5::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A run killed (SIGKILL) at arbitrary points and continued with `--resume` ends with the
/// same checkpoint, results and epochs as an uninterrupted run: digital and harsh chip.
#[test]
fn a_killed_run_resumes_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    for chip in [None, Some("harsh")] {
        let args = |out: &Path| {
            let mut c = mortal();
            c.args([
                "train",
                "-q",
                "--dataset",
                "synthetic",
                "--layers",
                "96,96",
                "--epochs",
                "4",
                "--train-limit",
                "2000",
                "--eval-limit",
                "200",
                "--checkpoint-every",
                "1",
                "--seed",
                "5",
            ]);
            if let Some(c2) = chip {
                c.args(["--chip", c2]);
            }
            c.arg("--out").arg(out);
            c
        };
        let tag = chip.unwrap_or("digital");
        let whole = dir.path().join(format!("{tag}-whole"));
        run_ok(&mut args(&whole));
        let want = md5_of(&whole.join("checkpoint.safetensors"));
        for (trial, delay_ms) in [300u64, 900, 1600].into_iter().enumerate() {
            let out = dir.path().join(format!("{tag}-{trial}"));
            let mut child = args(&out).spawn().unwrap();
            std::thread::sleep(Duration::from_millis(delay_ms));
            let _ = child.kill();
            let _ = child.wait();
            if !out.join("manifest.json").exists() {
                if out.join("resume/latest").exists() {
                    run_ok(mortal().args(["train", "-q", "--resume"]).arg(&out));
                } else {
                    // Killed before its first state: a fresh start in the same place.
                    run_ok(&mut args(&out));
                }
            }
            assert_eq!(
                md5_of(&out.join("checkpoint.safetensors")),
                want,
                "{tag}, killed after {delay_ms} ms"
            );
            assert!(
                !out.join("resume").exists(),
                "states are removed at the end"
            );
            let (a, b) = (
                read_json(&whole.join("results.json")),
                read_json(&out.join("results.json")),
            );
            for key in ["test_error", "valid_error", "cost", "seeds"] {
                assert_eq!(a[key], b[key], "{tag}: {key}");
            }
        }
    }
    // A finished run has nothing to resume: one line, exit 2.
    let (code, err) = run_err(
        mortal()
            .args(["train", "-q", "--resume"])
            .arg(dir.path().join("digital-whole")),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("resumable state"), "{err}");
}

/// Resume, merge and load verify every run against its manifest: a run listed as done
/// whose directory lost its manifest or had a file edited is redone by `mortal run`,
/// refused by `mortal merge`, and an edited checkpoint cannot be loaded by removing its
/// `sealed` flag.
#[test]
fn broken_runs_are_redone_or_refused_never_used() {
    let dir = tempfile::tempdir().unwrap();
    let root = super::common::root();
    let scenario = root.join("scenarios/quickstart.toml");
    let out = dir.path().join("q");
    let run = |out: &Path| {
        run_ok(
            mortal()
                .args(["run", "-q", "--smoke", "--no-plot"])
                .arg(&scenario)
                .arg("--out")
                .arg(out),
        )
    };
    run(&out);
    let runs: Vec<_> = std::fs::read_dir(out.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let (a, b) = (&runs[0], &runs[1]);
    std::fs::remove_file(a.join("manifest.json")).unwrap();
    let mut edited = std::fs::read(b.join("checkpoint.safetensors")).unwrap();
    let last = edited.len() - 1;
    edited[last] ^= 1;
    std::fs::write(b.join("checkpoint.safetensors"), &edited).unwrap();
    // Merge refuses the broken runs, naming one.
    let (code, err) = run_err(
        mortal()
            .args(["merge", "--no-plot"])
            .arg(dir.path().join("merged"))
            .arg(&out),
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("cannot be merged"), "{err}");
    let (code, err) = run_err(mortal().arg("plot").arg(&out));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("cannot be drawn"), "{err}");
    // A checkpoint whose `sealed` flag was removed is still verified.
    let meta = b.join("checkpoint.json");
    let text = std::fs::read_to_string(&meta)
        .unwrap()
        .replace("\"sealed\": true", "\"sealed\": false");
    std::fs::write(&meta, text).unwrap();
    let (code, err) = run_err(
        mortal()
            .args(["eval", "-q", "--eval-limit", "20", "--checkpoint"])
            .arg(b)
            .arg("--out")
            .arg(dir.path().join("e")),
    );
    assert_eq!(code, 3, "{err}");
    // Run again: the two broken runs are redone, the others reused.
    let again = run(&out);
    let said = String::from_utf8_lossy(&again.stdout);
    assert_eq!(said.matches("redoing it").count(), 2, "{said}");
    run_ok(
        mortal()
            .args(["merge", "--no-plot"])
            .arg(dir.path().join("merged"))
            .arg(&out),
    );
}

/// A run directory whose name is not UTF-8 trains, evaluates and is named in messages
/// without a panic.
#[cfg(unix)]
#[test]
fn non_utf8_paths_do_not_panic() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join(std::ffi::OsStr::from_bytes(b"run-\xff"));
    run_ok(&mut train_args(&odd, "1"));
    run_ok(
        mortal()
            .args(["eval", "-q", "--eval-limit", "20", "--checkpoint"])
            .arg(&odd)
            .arg("--out")
            .arg(odd.join("e")),
    );
    assert!(odd.join("e/results.json").is_file());
}

/// A run carries the energy model file it was given: moving the file afterwards changes
/// nothing, and a scenario finds its model file from its own folder.
#[test]
fn runs_carry_their_energy_model_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = super::common::root();
    let model = dir.path().join("my-model.toml");
    std::fs::copy(root.join("crates/mortal/src/cost/models/pcm.toml"), &model).unwrap();
    let out = dir.path().join("run");
    run_ok(train_args(&out, "1").arg("--energy").arg(&model));
    let r = read_json(&out.join("results.json"));
    assert!(r["config"]["energy_model"].is_object(), "{}", r["config"]);
    std::fs::rename(&model, dir.path().join("moved.toml")).unwrap();
    run_ok(
        mortal()
            .args(["eval", "-q", "--eval-limit", "20", "--checkpoint"])
            .arg(&out)
            .arg("--out")
            .arg(dir.path().join("e")),
    );
    // A scenario with `energy = "model.toml"` beside it, run from elsewhere.
    let sdir = dir.path().join("study");
    std::fs::create_dir_all(&sdir).unwrap();
    std::fs::copy(
        root.join("crates/mortal/src/cost/models/pcm.toml"),
        sdir.join("model.toml"),
    )
    .unwrap();
    std::fs::write(
        sdir.join("s.toml"),
        "version = 1\nname = \"s\"\n[model]\nlayers = [16]\n[train]\nepochs = 1\n\
         energy = \"model.toml\"\n",
    )
    .unwrap();
    run_ok(
        mortal()
            .args(["run", "-q", "--smoke", "--no-plot"])
            .arg(sdir.join("s.toml"))
            .arg("--out")
            .arg(dir.path().join("s-out"))
            .current_dir(dir.path()),
    );
}

/// Recurrent FF resumes bit-identically too: a run stopped (as by `kill -9`) right after
/// its first resumable state, then resumed, ends with the uninterrupted run's checkpoint.
#[test]
fn recurrent_ff_resumes_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let args = |out: &Path| {
        let mut c = mortal();
        c.args([
            "train",
            "-q",
            "--algo",
            "ff-recurrent",
            "--dataset",
            "synthetic",
            "--layers",
            "48,48",
            "--epochs",
            "3",
            "--train-limit",
            "600",
            "--eval-limit",
            "100",
            "--chip",
            "reram",
            "--checkpoint-every",
            "1",
            "--out",
        ])
        .arg(out);
        c
    };
    let whole = dir.path().join("whole");
    run_ok(&mut args(&whole));
    let cut = dir.path().join("cut");
    let status = args(&cut)
        .env("MORTAL_ABORT_AFTER", "latest")
        .status()
        .unwrap();
    assert!(!status.success());
    assert!(cut.join("resume/latest").is_file());
    let resumed = run_ok(mortal().args(["train", "--resume"]).arg(&cut));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&resumed.stdout),
        String::from_utf8_lossy(&resumed.stderr)
    );
    // The resumed run keeps writing a state every epoch, as it was started to.
    assert!(said.contains("resumable state after epoch 2"), "{said}");
    assert_eq!(
        md5_of(&cut.join("checkpoint.safetensors")),
        md5_of(&whole.join("checkpoint.safetensors"))
    );
}
