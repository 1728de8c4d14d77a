//! `mortal train`, `eval`, `bench` and `data` end to end.

use std::path::PathBuf;

use crate::common::*;

pub const SMALL: &[&str] = &[
    "train",
    "--dataset",
    "synthetic",
    "--layers",
    "64,64",
    "--epochs",
    "2",
    "--train-limit",
    "1000",
    "--eval-limit",
    "300",
    "--eval-every",
    "1",
    "-q",
];

#[test]
fn train_writes_results_epochs_and_checkpoint_and_eval_reproduces_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ff");
    run_ok(mortal().args(SMALL).arg("--out").arg(&out));
    let r = read_json(&out.join("results.json"));
    for key in [
        "algo",
        "dataset",
        "layers",
        "epochs",
        "seed",
        "test_error",
        "test_error_goodness",
        "test_error_softmax",
        "train_seconds",
        "config",
        "seeds",
    ] {
        assert!(!r[key].is_null(), "results.json lacks {key}: {r}");
    }
    assert_eq!(r["algo"], "ff");
    assert_eq!(r["layers"], serde_json::json!([64, 64]));
    let err = r["test_error"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&err));
    assert_eq!(epochs_without_timing(&out).len(), 2);
    assert!(out.join("checkpoint.json").exists() && out.join("checkpoint.safetensors").exists());
    assert!(!out.join("epochs.csv.partial").exists());

    let ev = dir.path().join("eval");
    run_ok(
        mortal()
            .args(["eval", "-q", "--checkpoint"])
            .arg(&out)
            .arg("--out")
            .arg(&ev),
    );
    let e = read_json(&ev.join("results.json"));
    assert_eq!(
        e["test_error"], r["test_error"],
        "eval of the checkpoint must reproduce the run's test error"
    );
    assert_eq!(e["test_error_goodness"], r["test_error_goodness"]);
}

#[test]
fn backprop_run_writes_the_same_interface() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bp");
    run_ok(
        mortal()
            .args(SMALL)
            .args(["--algo", "bp", "--out"])
            .arg(&out),
    );
    let r = read_json(&out.join("results.json"));
    assert_eq!(r["algo"], "bp");
    assert!(r["test_error"].as_f64().unwrap() < 0.9);
}

/// Same seed ⇒ identical per-epoch metrics with 1 and 2 threads (rayon runs the GEMMs too).
#[test]
fn results_do_not_depend_on_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let runs: Vec<PathBuf> = [1, 2]
        .iter()
        .map(|t| {
            let out = dir.path().join(format!("t{t}"));
            run_ok(
                mortal()
                    .args(SMALL)
                    .arg("--out")
                    .arg(&out)
                    .env("RAYON_NUM_THREADS", t.to_string()),
            );
            out
        })
        .collect();
    let a = epochs_without_timing(&runs[0]);
    assert_eq!(a, epochs_without_timing(&runs[1]));
    let (ra, rb) = (
        read_json(&runs[0].join("results.json")),
        read_json(&runs[1].join("results.json")),
    );
    assert_eq!(ra["test_error"], rb["test_error"]);
    // And a different seed gives a different trajectory.
    let other = dir.path().join("seed2");
    run_ok(
        mortal()
            .args(SMALL)
            .args(["--seed", "2", "--out"])
            .arg(&other),
    );
    assert_ne!(a, epochs_without_timing(&other));
}

#[test]
fn bad_input_fails_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["train", "--dataset", "cifar"], "cifar"),
        (vec!["train", "--layers", "0"], "layers"),
        (vec!["train", "--layers", ""], "layers"),
        (vec!["train", "--layers", "10,x"], "layers"),
        (vec!["train", "--lr", "-1"], "lr"),
        (vec!["train", "--epochs", "0"], "epochs"),
        (vec!["train", "--temperature", "0"], "temperature"),
        (
            vec!["eval", "--checkpoint", "/nonexistent/dir"],
            "checkpoint",
        ),
    ];
    for (args, needle) in cases {
        let (code, stderr) = run_err(mortal().args(&args).arg("--out").arg(dir.path().join("x")));
        assert!(code == 2 || code == 3, "{args:?}: exit code {code}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    // Missing dataset files: says where it looked and how to get them.
    let (code, stderr) = run_err(
        mortal()
            .args(["train", "--dataset", "mnist", "--data-dir"])
            .arg(dir.path()),
    );
    assert_eq!(code, 3);
    assert!(
        stderr.contains(&dir.path().display().to_string()) && stderr.contains("mortal data fetch"),
        "{stderr}"
    );
}

#[test]
fn bench_quick_writes_its_interface() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    run_ok(
        mortal()
            .args(["bench", "--quick", "--repeats", "1", "--json"])
            .arg(&json),
    );
    let b = read_json(&json);
    let ms = b["measurements"].as_array().unwrap();
    assert!(
        ms.iter()
            .any(|m| m["samples_per_s"].as_f64().is_some_and(|v| v > 0.0))
    );
    assert!(
        ms.iter()
            .any(|m| m["images_per_s"].as_f64().is_some_and(|v| v > 0.0))
    );
    // Throughput measurements carry their GEMM rates; update measurements their cost per
    // device pair; sparse nets their cost relative to their number of weights.
    for m in ms {
        let rate = m["samples_per_s"].as_f64().or(m["images_per_s"].as_f64());
        if let Some(c) = m["cost_vs_weights"].as_f64() {
            assert!(c > 0.0 && rate.is_some_and(|r| r > 0.0), "{m}");
        } else if let Some(c) = m["cost_vs_feedforward"].as_f64() {
            // A ratio of two timings: positive, whatever the machine's load (a recurrent
            // step does more work, but a timed test must not depend on it).
            assert!(c > 0.0 && rate.is_some_and(|r| r > 0.0), "{m}");
        } else if let Some(c) = m["cost_of_counting"].as_f64() {
            assert!(c > 0.0 && rate.is_some_and(|r| r > 0.0), "{m}");
        } else if let Some(c) = m["cost_vs_bp_analog"].as_f64() {
            assert!(c > 0.0 && rate.is_some_and(|r| r > 0.0), "{m}");
        } else if let Some(c) = m["cost_vs_ff_step"].as_f64() {
            // Distillation steps (teacher read + student step) against plain FF steps.
            assert!(c > 0.0 && rate.is_some_and(|r| r > 0.0), "{m}");
        } else if let Some(f) = m["fma_f32_gflops_per_core"].as_f64() {
            // The ISA row: this core's f32 FMA (and, where present, bf16 dot) rates.
            assert!(f > 0.0 && m["amx_usable"].is_boolean(), "{m}");
        } else if let Some(c) = m["share_of_quiet"].as_f64() {
            assert!(c > 0.0 && rate.is_some_and(|r| r > 0.0), "{m}");
        } else if rate.is_some() {
            assert!(
                m["gflops"].as_f64().unwrap() > 0.0 && m["gemm_gflops"].as_f64().unwrap() > 0.0
            );
        } else {
            assert!(m["ns_per_pair"].as_f64().unwrap() > 0.0, "{m}");
            assert!(m.get("gflops").is_none());
        }
    }
    assert!(ms.iter().any(|m| m["ns_per_pair"].as_f64().is_some()));
    // Pulsed chips' rows carry their update's memory-traffic floor (timings are not
    // compared here: the tests share the machine), the stochastic-pulse row does not.
    for m in ms {
        let name = m["name"].as_str().unwrap();
        let pulsed = name.contains(" chip ") && !name.contains("stochastic-pulse");
        if name.starts_with("chip-update") || (pulsed && m["phases"].is_object()) {
            assert!(m["update_traffic_floor_ms"].as_f64().unwrap() > 0.0, "{m}");
        }
        if m["phases"].is_object() && name.contains(" chip ") {
            let bound = m["cost_vs_digital_with_traffic_floor_update"].as_f64();
            assert_eq!(bound.is_some(), pulsed, "{m}");
            assert!(bound.is_none_or(|b| b > 0.0), "{m}");
        }
    }
    // The Tiki-Taka steps against bp-analog's.
    assert!(
        ms.iter()
            .filter(|m| m["cost_vs_bp_analog"].as_f64().is_some())
            .count()
            == 3
    );
    assert!(ms.iter().any(|m| m["cost_vs_weights"].as_f64().is_some()));
    assert!(
        ms.iter()
            .any(|m| m["cost_vs_feedforward"].as_f64().is_some())
    );
    assert!(ms.iter().any(|m| m["cost_of_counting"].as_f64().is_some()));
    assert_eq!(
        ms.iter()
            .filter(|m| m["cost_vs_ff_step"].as_f64().is_some())
            .count(),
        4,
        "distill-step rows (contrastive and with hints) on reram and harsh"
    );
    // The same FF step with random negatives, the shared-machine row, and the foreign
    // load seen during every measurement (Linux: from /proc).
    assert!(ms.iter().any(|m| {
        m["name"].as_str().unwrap().ends_with("random negatives") && m["gflops"].is_number()
    }));
    assert!(ms.iter().any(|m| m["share_of_quiet"].is_number()));
    if cfg!(target_os = "linux") {
        assert!(
            ms.iter()
                .all(|m| m["foreign_load_cores"].as_f64().is_some_and(|c| c >= 0.0)),
            "{ms:?}"
        );
    }
}

/// `--pytorch`: the interpreter runs the embedded FF script between mortal's repeats and
/// its figure becomes the ratio. A stand-in interpreter that "imports torch" and reports
/// 1000 samples/s checks the plumbing without torch; a missing one is a bad parameter.
#[cfg(unix)]
#[test]
fn bench_compares_with_the_pytorch_step_it_runs() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("python");
    std::fs::write(
        &fake,
        "#!/bin/sh\n[ \"$1\" = -c ] && exit 0\n\
         grep -q 'side-by-side speed comparison' \"$1\" || exit 9\n\
         echo '{\"samples_per_s\": 1000.0}'\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let json = dir.path().join("bench.json");
    run_ok(
        mortal()
            .args(["bench", "--quick", "--repeats", "1", "--only", "3x200 b100"])
            .arg("--pytorch")
            .arg(&fake)
            .arg("--json")
            .arg(&json),
    );
    let b = read_json(&json);
    let ms: Vec<_> = b["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["name"].as_str().unwrap().starts_with("ff-train"))
        .collect();
    // Hard and random negatives, each in f32 and bf16.
    assert_eq!(ms.len(), 4, "{ms:?}");
    assert!(
        ms.iter()
            .any(|m| m["name"] == "ff-train 3x200 b100 random negatives bf16")
    );
    for m in ms {
        assert_eq!(m["pytorch_samples_per_s"].as_f64(), Some(1000.0), "{m}");
        let ratio = m["samples_per_s"].as_f64().unwrap() / 1000.0;
        assert!((m["vs_pytorch"].as_f64().unwrap() - ratio).abs() < 1e-9 * ratio);
    }
    let out = mortal()
        .args(["bench", "--quick", "--pytorch"])
        .arg(dir.path().join("no-such-python"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--pytorch") && err.contains("no-such-python"),
        "{err}"
    );
}

/// With `MORTAL_DATA` pointing at the real files: check them, and train briefly on MNIST.
#[test]
#[ignore = "needs the real MNIST files: set MORTAL_DATA and run with --ignored"]
fn real_mnist_smoke_test() {
    let data = std::env::var_os("MORTAL_DATA").expect("MORTAL_DATA: the real data directory");
    let check = run_ok(mortal().args(["data", "check", "--data-dir"]).arg(&data));
    assert!(String::from_utf8_lossy(&check.stdout).contains("mnist"));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mnist");
    run_ok(
        mortal()
            .args([
                "train",
                "--dataset",
                "mnist",
                "--layers",
                "200,200",
                "--epochs",
                "4",
            ])
            .args([
                "--train-limit",
                "5000",
                "--eval-limit",
                "1000",
                "-q",
                "--data-dir",
            ])
            .arg(&data)
            .arg("--out")
            .arg(&out),
    );
    let r = read_json(&out.join("results.json"));
    assert_eq!(r["dataset"], "mnist");
    let err = r["test_error"].as_f64().unwrap();
    assert!(
        err < 0.2,
        "FF on 5,000 MNIST images for four epochs should get below 20% test error, got {err}"
    );
}

#[test]
fn ff_trains_on_a_chip_and_moves_to_another_instance() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("chip");
    run_ok(
        mortal()
            .args(SMALL)
            .args([
                "--chip",
                "harsh",
                "--chip-seed",
                "3",
                "--variation",
                "0.5",
                "--out",
            ])
            .arg(&out),
    );
    let r = read_json(&out.join("results.json"));
    assert_eq!(r["chip"], "harsh");
    assert_eq!(r["chip_seed"], 3);
    assert_eq!(r["variation"], 0.5);
    assert!(r["substrate"].as_str().unwrap().contains("harsh"), "{r}");
    let meta = read_json(&out.join("checkpoint.json"));
    assert_eq!(meta["substrate_kind"], "chip");

    // Same instance: evaluates without a note. Another seed: a different instance.
    let same = dir.path().join("same");
    let o = run_ok(
        mortal()
            .args(["eval", "-q", "--checkpoint"])
            .arg(&out)
            .arg("--out")
            .arg(&same),
    );
    assert!(!String::from_utf8_lossy(&o.stderr).contains("note"));
    let other = dir.path().join("other");
    let o = run_ok(
        mortal()
            .args(["eval", "-q", "--chip-seed", "4", "--checkpoint"])
            .arg(&out)
            .arg("--out")
            .arg(&other),
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("note"),
        "moving to another chip must be reported"
    );
    let e = read_json(&other.join("results.json"));
    assert_eq!(e["chip_seed"], 4);
    assert_eq!(e["trained_chip_seed"], 3);
    assert!(e["test_error"].as_f64().is_some());
}

#[test]
fn bad_chip_input_fails_clearly() {
    let (_, stderr) = run_err(mortal().args(["train", "--chip", "memristor9000"]));
    assert!(
        stderr.contains("memristor9000") && stderr.contains("reram"),
        "{stderr}"
    );
    let (_, stderr) = run_err(mortal().args(["train", "--algo", "bp", "--chip", "reram"]));
    assert!(stderr.contains("chip"), "{stderr}");
    let (_, stderr) = run_err(mortal().args(["train", "--chip", "reram", "--variation", "-1"]));
    assert!(stderr.contains("variation"), "{stderr}");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("bad.toml");
    std::fs::write(&spec, "[adc]\nbits = 8\nbogus = 1\n").unwrap();
    let (_, stderr) = run_err(mortal().args(["train", "--chip"]).arg(&spec));
    assert!(stderr.contains("bogus"), "{stderr}");
}

/// The quickstart tells the story: FF in situ, mortality, distillation, backprop deployed.
#[test]
fn quickstart_shows_mortality_and_distillation() {
    let dir = tempfile::tempdir().unwrap();
    let (out, plots) = (dir.path().join("runs"), dir.path().join("plots"));
    let o = run_ok(
        mortal()
            .args(["quickstart", "-q", "--out"])
            .arg(&out)
            .arg("--plots")
            .arg(&plots),
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("copied to chip #2"), "{text}");
    let s = read_json(&out.join("summary.json"));
    let e = |k: &str| s[k].as_f64().unwrap();
    assert!(e("copied_error") > e("chip_error") + 0.05, "{s}");
    assert!(e("distilled_error") < e("copied_error") - 0.05, "{s}");
    assert!(e("bp_deployed_error") >= e("bp_digital_error"), "{s}");
    assert!(plots.join("quickstart.png").is_file());
    for run in ["ff-harsh-1", "distill-harsh-2", "bp-deploy-harsh-2"] {
        assert!(out.join(run).join("manifest.json").is_file(), "{run}");
    }
}

/// Analog-native FF end to end: a run on a `stochastic-pulse` chip writes goodness-only
/// results and counts one goodness ADC per sample per layer per pass; bad input is
/// refused by name with exit 2.
#[test]
fn analog_native_ff_runs_and_refuses_what_it_cannot_do() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("sp.toml");
    std::fs::write(&spec, "[update]\nmode = \"stochastic-pulse\"\n").unwrap();
    let out = tmp.path().join("native");
    run_ok(
        mortal()
            .args(["-q", "train", "--ff-mode", "analog-native", "--chip"])
            .arg(&spec)
            .args([
                "--layers",
                "20,20",
                "--epochs",
                "1",
                "--train-limit",
                "200",
                "--eval-limit",
                "100",
                "--out",
            ])
            .arg(&out),
    );
    let r = read_json(&out.join("results.json"));
    assert_eq!(r["eval_method"], "goodness", "{r}");
    assert!(r["test_error_softmax"].is_null(), "{r}");
    assert_eq!(r["config"]["ff"]["mode"], "analog-native", "{r}");
    // Refusals, each naming its key.
    let cases: [(&[&str], &str); 5] = [
        (
            &[
                "--ff-mode",
                "analog-native",
                "--chip",
                "ideal",
                "--analog-momentum",
                "1.5",
            ],
            "ff.analog_momentum.momentum",
        ),
        (&["--ff-mode", "analog-native"], "ff.mode"),
        (
            &["--ff-mode", "analog-native", "--chip", "reram"],
            "chip.update.mode",
        ),
        (
            &[
                "--ff-mode",
                "analog-native",
                "--chip",
                "ideal",
                "--momentum",
                "0.9",
            ],
            "ff.optimizer.momentum",
        ),
        (&["--ff-mode", "sideways"], "ff-mode"),
    ];
    for (args, key) in cases {
        let (code, err) = run_err(mortal().args(["-q", "train", "--epochs", "1"]).args(args));
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(key), "{args:?}: {err}");
    }
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[periphery]\ngoodness_bits = 1\n").unwrap();
    let (code, err) = run_err(
        mortal()
            .args(["-q", "train", "--ff-mode", "analog-native", "--chip"])
            .arg(&bad),
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("periphery.goodness_bits") && err.contains('1'),
        "{err}"
    );
}
