//! The paper's other feed-forward FF learners end to end: unsupervised FF with hybrid
//! negatives, local receptive fields (`--net paper-local`, `local:` layers), jitter,
//! goodness variants and sleep phases, digital and on a chip, with their checkpoints.

use crate::common::*;

/// A small local net on the synthetic set (a 28 × 28 image: 3 × 3 windows of 10 pixels).
const LOCAL: &str = "local:3x3x8:f10:s9,local:2x2x16:f2:s1";

/// A small run on the synthetic set; `extra` flags replace the defaults they name.
fn small(extra: &[&str]) -> Vec<String> {
    let defaults = [
        ("--dataset", "synthetic"),
        ("--epochs", "2"),
        ("--train-limit", "600"),
        ("--eval-limit", "200"),
    ];
    let mut a = vec!["train".to_string(), "-q".to_string()];
    for (flag, v) in defaults {
        if !extra.contains(&flag) {
            a.extend([flag.to_string(), v.to_string()]);
        }
    }
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

#[test]
fn unsupervised_local_ff_trains_digital_and_on_a_chip_and_its_checkpoint_evaluates() {
    let dir = tempfile::tempdir().unwrap();
    for (name, chip) in [("digital", None), ("reram", Some("reram"))] {
        let out = dir.path().join(name);
        let mut args = small(&["--layers", LOCAL, "--negatives", "hybrid"]);
        if let Some(c) = chip {
            args.extend(["--chip".to_string(), c.to_string()]);
        }
        run_ok(mortal().args(&args).arg("--out").arg(&out));
        let r = read_json(&out.join("results.json"));
        assert_eq!(
            r["layers"],
            serde_json::json!(["local:3x3x8:f10:s9", "local:2x2x16:f2:s1"])
        );
        assert_eq!(r["config"]["ff"]["negatives"], "hybrid");
        // Unsupervised: the linear classifier is the only evaluation.
        assert_eq!(r["eval_method"], "softmax");
        assert!(r["test_error_goodness"].is_null(), "{r}");
        let err = r["test_error"].as_f64().unwrap();
        assert!(err < 0.8, "{name}: test error {err} (chance is 0.9)");
        // The checkpoint stores each tile's block with its indices, and evaluates back.
        let ck = read_json(&out.join("checkpoint.json"));
        assert!(ck.to_string().contains("local"), "{ck}");
        let ev = dir.path().join(format!("{name}-eval"));
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
            "{name}: eval of the checkpoint"
        );
    }
}

#[test]
fn paper_local_net_goodness_variants_jitter_and_sleep_phases_run() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[&[&str]] = &[
        &["--net", "paper-local", "--epochs", "1"],
        &[
            "--layers",
            "64,64",
            "--goodness",
            "sum",
            "--sign",
            "min-ssq",
        ],
        &["--layers", "64,64", "--augment", "jitter:2"],
        &["--layers", "64,64", "--phase-block", "3"],
    ];
    for (k, extra) in cases.iter().enumerate() {
        let out = dir.path().join(format!("run{k}"));
        run_ok(mortal().args(small(extra)).arg("--out").arg(&out));
        let r = read_json(&out.join("results.json"));
        assert!(r["test_error"].as_f64().unwrap() <= 1.0, "{extra:?}: {r}");
    }
    let r = read_json(&dir.path().join("run0/results.json"));
    assert_eq!(r["config"]["layers"][0], "local:4x4x128:f10:s6");
    let r = read_json(&dir.path().join("run1/results.json"));
    assert_eq!(r["config"]["ff"]["goodness"], "sum");
    let r = read_json(&dir.path().join("run2/results.json"));
    assert_eq!(r["config"]["jitter"], 2);
    // Jitter changes the training data, so the result differs from the plain run.
    let plain = dir.path().join("plain");
    run_ok(
        mortal()
            .args(small(&["--layers", "64,64"]))
            .arg("--out")
            .arg(&plain),
    );
    assert_ne!(
        epochs_without_timing(&plain),
        epochs_without_timing(&dir.path().join("run2"))
    );
}

/// `--precision bf16` runs on the digital network and on a chip, is recorded in the
/// config (f32 runs' files do not mention it), and changes the results.
#[test]
fn bf16_precision_runs_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    for (name, extra) in [
        ("digital", &["--layers", "64,64"][..]),
        ("chip", &["--layers", "64,64", "--chip", "reram"][..]),
    ] {
        let run = |p: &str| {
            let out = dir.path().join(format!("{name}-{p}"));
            run_ok(
                mortal()
                    .args(small(extra))
                    .args(["--precision", p])
                    .arg("--out")
                    .arg(&out),
            );
            out
        };
        let (f, b) = (run("f32"), run("bf16"));
        let rf = read_json(&f.join("results.json"));
        let rb = read_json(&b.join("results.json"));
        assert!(rf["config"].get("precision").is_none(), "{name}: {rf}");
        assert_eq!(rb["config"]["precision"], "bf16", "{name}");
        assert!(rb["test_error"].as_f64().unwrap() <= 1.0);
        assert_ne!(
            epochs_without_timing(&f),
            epochs_without_timing(&b),
            "{name}"
        );
    }
}

#[test]
fn bad_learner_input_fails_with_one_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--layers", "local:4x4x128"], "layers"),
        (&["--layers", "local:4x4x8:f10:s7"], "layers[0]"),
        (&["--layers", "100,local:2x2x8:f2:s1"], "layers[1]"),
        (&["--layers", "10,,10"], "layers"),
        (&["--layers", "+10"], "layers"),
        (&["--net", "paper-global"], "net"),
        (&["--augment", "jitter:-1"], "augment"),
        (&["--augment", "jitter:28"], "augment"),
        (&["--augment", "shift:2"], "augment"),
        (&["--precision", "fp8"], "precision"),
        (&["--negatives", "hybrid", "--batch", "1"], "batch"),
        (
            &["--negatives", "hybrid", "--train-limit", "1"],
            "negatives",
        ),
        (
            &[
                "--algo",
                "bp-analog",
                "--chip",
                "reram",
                "--net",
                "paper-local",
            ],
            "layers",
        ),
    ];
    for (extra, key) in cases {
        let (code, stderr) = run_err(
            mortal()
                .args(small(extra))
                .arg("--out")
                .arg(dir.path().join("x")),
        );
        assert_eq!(code, 2, "{extra:?}: exit {code}, {stderr}");
        assert!(
            stderr.contains(&format!("`{key}`")),
            "{extra:?}: expected key {key}: {stderr}"
        );
    }
}

#[test]
fn plot_of_a_local_run_draws_its_curve_and_receptive_fields_per_location() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("local");
    run_ok(
        mortal()
            .args(small(&["--layers", LOCAL, "--epochs", "1"]))
            .arg("--out")
            .arg(&out),
    );
    let o = run_ok(mortal().arg("plot").arg(&out));
    let listed = String::from_utf8_lossy(&o.stdout);
    for f in ["curves.png", "fields.png"] {
        let p = out.join("plots").join(f);
        assert!(p.is_file() && listed.contains(f), "{f}: {listed}");
        assert!(std::fs::metadata(&p).unwrap().len() > 1000);
    }
}
