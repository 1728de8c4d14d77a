//! Limits before allocation and inputs that once panicked, hung or mixed results: each
//! fails with one line naming the key, exit code 2, quickly.

use crate::common::*;

fn quick_err(args: &[&str], key: &str) {
    let t = std::time::Instant::now();
    let (code, stderr) = run_err(mortal().args(args));
    assert_eq!(code, 2, "{args:?}: exit {code}: {stderr}");
    assert!(
        stderr.contains(&format!("`{key}`")),
        "{args:?}: expected key {key}: {stderr}"
    );
    assert!(
        t.elapsed().as_secs() < 20,
        "{args:?} took {:?}",
        t.elapsed()
    );
}

#[test]
fn huge_or_malformed_sizes_are_refused_before_allocation() {
    quick_err(
        &["train", "--layers", "18446744073709551615", "--epochs", "1"],
        "layers[0]",
    );
    quick_err(
        &["train", "--layers", "1000000000", "--epochs", "1"],
        "layers[0]",
    );
    // Fits the per-layer cap, not the machine.
    quick_err(
        &["train", "--layers", "1000000,1000000", "--epochs", "1"],
        "layers",
    );
    for bad in ["10,,10", "10,", "+10"] {
        quick_err(&["train", "--layers", bad], "layers");
    }
    // Negative and infinite values reach validation instead of being taken for flags.
    quick_err(&["train", "--lr", "-inf"], "ff.optimizer.lr");
    quick_err(
        &["train", "--chip", "reram", "--variation", "-1"],
        "variation",
    );
}

#[test]
fn scenario_limits_apply_in_dry_runs() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.toml");
    let values: Vec<String> = (0..1_000_000).map(|i| i.to_string()).collect();
    std::fs::write(
        &big,
        format!(
            "version = 1\nname = \"big\"\n[[sweep.axes]]\npath = \"train.seed\"\nvalues = [{}]\n",
            values.join(",")
        ),
    )
    .unwrap();
    let p = big.to_string_lossy().to_string();
    quick_err(&["run", &p, "--dry-run"], "sweep.axes[0].values");
    let syn = dir.path().join("syn.toml");
    std::fs::write(
        &syn,
        "version = 1\nname = \"s\"\n[data.synthetic]\nvalid = 1000000000\n",
    )
    .unwrap();
    let p = syn.to_string_lossy().to_string();
    quick_err(&["run", &p, "--dry-run"], "data.synthetic.valid");
}

#[test]
fn device_spreads_that_break_the_model_name_the_key_the_user_set() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.toml");
    std::fs::write(&spec, "[device]\nbound_dtod = 1000\n").unwrap();
    let p = spec.to_string_lossy().to_string();
    quick_err(
        &["train", "--chip", &p, "--epochs", "1"],
        "device.bound_dtod",
    );
    let (code, stderr) =
        run_err(mortal().args(["train", "--chip", "reram", "--variation", "1000"]));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("`variation`") && stderr.contains("scales"),
        "{stderr}"
    );
}

#[test]
fn eval_on_no_images_and_duplicate_students_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = dir.path().join("t");
    run_ok(
        mortal()
            .args([
                "train",
                "-q",
                "--layers",
                "16",
                "--epochs",
                "1",
                "--train-limit",
                "200",
                "--eval-limit",
                "50",
                "--chip",
                "reram",
                "--out",
            ])
            .arg(&teacher),
    );
    let t = teacher.to_string_lossy().to_string();
    let out = dir.path().join("d").to_string_lossy().to_string();
    quick_err(
        &["eval", "--checkpoint", &t, "--eval-limit", "0"],
        "eval-limit",
    );
    let distill = [
        "distill",
        "--teacher",
        &t,
        "--student-chip",
        "harsh",
        "--out",
        &out,
    ];
    let with = |extra: &[&'static str]| {
        let mut a: Vec<&str> = distill.to_vec();
        a.extend_from_slice(extra);
        a
    };
    quick_err(&with(&["--transfer", "100,100"]), "transfer");
    quick_err(
        &with(&["--transfer", "100", "--student-seed", "2,2"]),
        "student-seed",
    );
    quick_err(
        &with(&["--transfer", "10", "--min-samples", "10000000000"]),
        "min-samples",
    );
}

#[test]
fn io_errors_exit_3_once_and_runs_never_replace_other_runs_silently() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let small = [
        "train",
        "-q",
        "--epochs",
        "1",
        "--layers",
        "16",
        "--train-limit",
        "100",
        "--eval-limit",
        "50",
    ];
    let (code, stderr) = run_err(mortal().args(small).arg("--out").arg(file.join("x")));
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(stderr.matches("os error").count(), 1, "{stderr}");
    // A different run into an existing run's directory is refused; the same one, or
    // --force, is not.
    let out = dir.path().join("run");
    run_ok(mortal().args(small).arg("--out").arg(&out));
    run_ok(mortal().args(small).arg("--out").arg(&out));
    let (code, stderr) = run_err(
        mortal()
            .args(small)
            .args(["--lr", "0.01", "--out"])
            .arg(&out),
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("`out`") && stderr.contains("--force"),
        "{stderr}"
    );
    run_ok(
        mortal()
            .args(small)
            .args(["--lr", "0.01", "--force", "--out"])
            .arg(&out),
    );
    assert_eq!(
        read_json(&out.join("results.json"))["config"]["ff"]["optimizer"]["lr"],
        0.01
    );
    // Default directories differ when any setting does.
    for lr in ["0.01", "0.02"] {
        run_ok(
            mortal()
                .current_dir(dir.path())
                .args(small)
                .args(["--lr", lr]),
        );
    }
    let runs: Vec<_> = std::fs::read_dir(dir.path().join("runs"))
        .unwrap()
        .collect();
    assert_eq!(runs.len(), 2);
}

#[test]
fn corrupted_or_foreign_checkpoint_tensors_are_refused_not_evaluated() {
    let dir = tempfile::tempdir().unwrap();
    let train = |out: &std::path::Path, seed: &str| {
        run_ok(
            mortal()
                .args(["train", "-q", "--epochs", "1", "--layers", "16"])
                .args(["--train-limit", "100", "--eval-limit", "50", "--seed", seed])
                .arg("--out")
                .arg(out),
        );
    };
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    train(&a, "1");
    train(&b, "2");
    // A bit flip.
    let t = a.join("checkpoint.safetensors");
    let mut bytes = std::fs::read(&t).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x10;
    std::fs::write(&t, &bytes).unwrap();
    let (code, stderr) = run_err(mortal().args(["eval", "--checkpoint"]).arg(&a));
    assert_eq!(code, 3);
    assert!(
        stderr.contains("checksum") || stderr.contains("does not match manifest.json"),
        "{stderr}"
    );
    // Another run's tensors beside this run's checkpoint.json (an interrupted rewrite).
    std::fs::copy(b.join("checkpoint.safetensors"), &t).unwrap();
    let (code, stderr) = run_err(mortal().args(["eval", "--checkpoint"]).arg(&a));
    assert_eq!(code, 3);
    assert!(
        stderr.contains("checksum") || stderr.contains("does not match manifest.json"),
        "{stderr}"
    );
}

#[test]
fn evaluations_on_other_chips_keep_their_own_directories_and_drift_without_drift_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("r");
    run_ok(
        mortal()
            .args([
                "train", "-q", "--epochs", "1", "--layers", "16", "--chip", "reram",
            ])
            .args(["--train-limit", "100", "--eval-limit", "50", "--out"])
            .arg(&run),
    );
    for seed in ["2", "3"] {
        run_ok(
            mortal()
                .args(["eval", "-q", "--chip-seed", seed, "--checkpoint"])
                .arg(&run),
        );
        assert!(run.join(format!("eval-c{seed}/results.json")).is_file());
    }
    let o = run_ok(
        mortal()
            .args(["eval", "-q", "--drift-seconds", "60", "--checkpoint"])
            .arg(&run),
    );
    assert!(run.join("eval-c1-d60/results.json").is_file());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("no conductance drift"), "{stderr}");
}

/// `data check`: a dataset that is not installed is reported, not an error; a partly
/// present one is (exit 3). Needs the real MNIST files (`MORTAL_DATA`).
#[test]
#[ignore = "needs the real MNIST files: set MORTAL_DATA and run with --ignored"]
fn data_check_fails_only_for_partly_present_or_corrupt_datasets() {
    let data = std::env::var_os("MORTAL_DATA").expect("MORTAL_DATA: the real data directory");
    let dir = tempfile::tempdir().unwrap();
    let mnist = dir.path().join("mnist");
    std::fs::create_dir(&mnist).unwrap();
    let src = std::path::Path::new(&data).join("mnist");
    let mut files: Vec<_> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "gz"))
        .collect();
    files.sort();
    for f in &files {
        std::fs::copy(f, mnist.join(f.file_name().unwrap())).unwrap();
    }
    let o = run_ok(
        mortal()
            .args(["data", "check", "--data-dir"])
            .arg(dir.path()),
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("fashion-mnist: not installed"));
    std::fs::remove_file(mnist.join(files[0].file_name().unwrap())).unwrap();
    let (code, stderr) = run_err(
        mortal()
            .args(["data", "check", "--data-dir"])
            .arg(dir.path()),
    );
    assert_eq!(code, 3);
    assert!(stderr.contains("mnist partly missing"), "{stderr}");
}

#[test]
fn a_directory_or_link_loop_where_a_data_file_should_be_is_not_called_missing() {
    let dir = tempfile::tempdir().unwrap();
    let mnist = dir.path().join("mnist");
    std::fs::create_dir_all(mnist.join("train-images-idx3-ubyte.gz")).unwrap();
    let train = |d: &std::path::Path| {
        run_err(
            mortal()
                .args(["train", "--dataset", "mnist", "--epochs", "1", "--data-dir"])
                .arg(d),
        )
    };
    let (code, stderr) = train(dir.path());
    assert_eq!(code, 3);
    assert!(stderr.contains("not a regular file"), "{stderr}");
    #[cfg(unix)]
    {
        let loopy = tempfile::tempdir().unwrap();
        let m = loopy.path().join("mnist");
        std::fs::create_dir(&m).unwrap();
        let f = m.join("train-images-idx3-ubyte.gz");
        std::os::unix::fs::symlink(&f, &f).unwrap();
        let (code, stderr) = train(loopy.path());
        assert_eq!(code, 3);
        assert!(stderr.contains("link loop"), "{stderr}");
    }
}

/// A re-run into an existing directory killed (abort, as `kill -9`) right after each file
/// it writes: the directory is then either the complete new run or refused, never a mix.
#[test]
fn a_rerun_killed_at_every_file_boundary_leaves_one_version_or_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let train = |out: &std::path::Path, seed: &str, abort_after: Option<&str>| {
        let mut c = mortal();
        c.args(["train", "-q", "--epochs", "2", "--layers", "16"])
            .args(["--train-limit", "100", "--eval-limit", "50", "--seed", seed])
            .arg("--force")
            .arg("--out")
            .arg(out);
        if let Some(f) = abort_after {
            c.env("MORTAL_ABORT_AFTER", f);
        }
        c.output().unwrap()
    };
    let first = dir.path().join("first");
    assert!(train(&first, "1", None).status.success());
    let boundaries = [
        "epochs.csv.partial",
        "checkpoint.safetensors",
        "checkpoint.json",
        "results.json",
        "epochs.csv",
        "manifest.json",
    ];
    for f in boundaries {
        let d = dir.path().join(format!("killed-after-{f}"));
        std::fs::create_dir(&d).unwrap();
        for e in std::fs::read_dir(&first).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), d.join(e.file_name())).unwrap();
        }
        let o = train(&d, "2", Some(f));
        assert!(!o.status.success(), "{f}: the run was not interrupted");
        let (ok, code, stderr) = {
            let o = mortal()
                .args(["eval", "-q", "--checkpoint"])
                .arg(&d)
                .arg("--out")
                .arg(dir.path().join(format!("eval-{f}")))
                .output()
                .unwrap();
            (
                o.status.success(),
                o.status.code(),
                String::from_utf8_lossy(&o.stderr).to_string(),
            )
        };
        if f == "manifest.json" {
            assert!(ok, "{f}: the complete new run must evaluate: {stderr}");
            let r = read_json(&d.join("results.json"));
            assert_eq!(r["seed"], 2, "{f}");
        } else {
            assert!(!ok, "{f}: a half-rewritten directory was evaluated");
            assert_eq!(code, Some(3), "{f}: {stderr}");
            assert!(stderr.contains("did not finish"), "{f}: {stderr}");
            assert_eq!(stderr.trim().lines().count(), 1, "{f}: {stderr}");
        }
    }
}

/// `eval` keeps the evaluation method training chose on validation, whatever the
/// validation noise of the re-evaluation (here: another chip instance) prefers.
#[test]
fn eval_keeps_the_method_training_chose() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t");
    run_ok(
        mortal()
            .args([
                "train", "-q", "--epochs", "1", "--layers", "20,20", "--chip", "harsh",
            ])
            .args(["--train-limit", "300", "--eval-limit", "100", "--out"])
            .arg(&out),
    );
    let trained = read_json(&out.join("results.json"))["eval_method"].clone();
    for seed in ["1", "2", "3"] {
        let ev = dir.path().join(format!("e{seed}"));
        run_ok(
            mortal()
                .args(["eval", "-q", "--checkpoint"])
                .arg(&out)
                .args(["--chip-seed", seed, "--out"])
                .arg(&ev),
        );
        let r = read_json(&ev.join("results.json"));
        assert_eq!(r["eval_method"], trained, "chip {seed}: {r}");
        let m = trained.as_str().unwrap();
        assert_eq!(
            r["test_error"],
            r[format!("test_error_{m}").as_str()],
            "{r}"
        );
    }
}

/// The device tool's limits: NaN parameters and starts, wrapping pulse counts and a
/// noisy response of days of work are refused at once.
#[test]
fn device_response_refuses_nan_wrapping_and_endless_requests() {
    for (args, key) in [
        (vec!["--dw-min", "nan"], "dw_min"),
        (vec!["--up-down", "nan"], "up_down"),
        (vec!["--start", "nan"], "--start"),
        (
            vec!["--up", "18446744073709551615", "--down", "2"],
            "--up/--down",
        ),
        (
            vec![
                "--noise",
                "--devices",
                "100000",
                "--up",
                "500000",
                "--down",
                "500000",
            ],
            "--devices",
        ),
    ] {
        let mut all = vec!["device", "response"];
        all.extend(args);
        quick_err(&all, key);
    }
}

/// Scenario limits match the CLI's: a student's min_samples that would mean absurd
/// epochs, and an energy model whose rate is subnormal.
#[test]
fn scenario_and_energy_limits_hold() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("d.toml");
    std::fs::write(
        &s,
        "version = 1\nname = \"d\"\n[train]\nepochs = 1\n[hardware]\npreset = \"harsh\"\n\
         [distill]\ntransfer = [100]\nmin_samples = 10000000000\n",
    )
    .unwrap();
    let s = s.to_string_lossy().into_owned();
    quick_err(&["run", &s, "--dry-run"], "distill.min_samples");
    let e = dir.path().join("e.toml");
    let model = std::fs::read_to_string(
        super::common::root().join("crates/mortal/src/cost/models/reram.toml"),
    )
    .unwrap();
    let mut edited = String::new();
    for line in model.lines() {
        if line.trim_start().starts_with("flops_per_s") {
            edited.push_str("flops_per_s = 5e-324\n");
        } else {
            edited.push_str(line);
            edited.push('\n');
        }
    }
    std::fs::write(&e, edited).unwrap();
    let e = e.to_string_lossy().into_owned();
    let (code, err) = run_err(mortal().args([
        "train",
        "--epochs",
        "1",
        "--train-limit",
        "100",
        "--energy",
        &e,
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("energy.flops_per_s") && err.contains("5e-324"),
        "{err}"
    );
}
