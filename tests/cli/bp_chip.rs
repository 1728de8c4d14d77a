//! `mortal train --algo bp-deploy|bp-hwa|bp-pat|bp-analog|bp-ttv2|bp-cttv2|bp-agad` end to
//! end.

use std::path::Path;

use crate::common::*;
use crate::train::SMALL;

fn train(out: &Path, algo: &str, extra: &[&str]) -> serde_json::Value {
    run_ok(
        mortal()
            .args(SMALL)
            .args(["--algo", algo])
            .args(extra)
            .arg("--out")
            .arg(out),
    );
    read_json(&out.join("results.json"))
}

/// On the `ideal` chip every way onto a chip gives digital backprop's test error (the
/// in-situ ones compared at the same plain-SGD settings), and results.json carries the
/// chip keys.
#[test]
fn every_bp_algorithm_on_the_ideal_chip_matches_digital_backprop() {
    let dir = tempfile::tempdir().unwrap();
    let sgd = ["--momentum", "0", "--lr", "0.5"];
    let digital = train(&dir.path().join("bp"), "bp", &sgd)["test_error"]
        .as_f64()
        .unwrap();
    assert!(
        digital < 0.6,
        "digital BP should learn (chance 0.9): {digital}"
    );
    for algo in ["bp-deploy", "bp-hwa", "bp-pat", "bp-analog"] {
        let out = dir.path().join(algo);
        let mut args = vec!["--chip", "ideal"];
        args.extend(sgd);
        let r = train(&out, algo, &args);
        assert_eq!(r["algo"], algo);
        assert_eq!(r["chip"], "ideal");
        assert_eq!(r["chip_seed"], 1);
        let err = r["test_error"].as_f64().unwrap();
        assert!(
            (err - digital).abs() <= 0.01,
            "{algo} on the ideal chip: {err} vs digital {digital}"
        );
        assert_eq!(epochs_without_timing(&out).len(), 2);
    }
}

/// On a noisy chip deployment loses accuracy that the digital network does not have,
/// and the record keeps both numbers apart.
#[test]
fn bp_deploy_on_a_harsh_chip_reports_chip_and_digital_errors() {
    let dir = tempfile::tempdir().unwrap();
    let r = train(&dir.path().join("d"), "bp-deploy", &["--chip", "harsh"]);
    let chip = r["test_error"].as_f64().unwrap();
    let digital = r["test_error_digital"].as_f64().unwrap();
    assert!(chip > digital, "harsh chip {chip} vs digital {digital}");
}

#[test]
fn bp_on_a_chip_needs_a_chip_and_bp_analog_refuses_momentum() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = run_err(
        mortal()
            .args(SMALL)
            .args(["--algo", "bp-pat", "--out"])
            .arg(dir.path().join("x")),
    );
    assert_ne!(code, 0);
    assert!(err.contains("chip"), "{err}");
    let (_, err) = run_err(
        mortal()
            .args(SMALL)
            .args([
                "--algo",
                "bp-analog",
                "--chip",
                "reram",
                "--momentum",
                "0.9",
            ])
            .arg("--out")
            .arg(dir.path().join("y")),
    );
    assert!(
        err.contains("bp.optimizer.momentum") && err.contains("0.9"),
        "{err}"
    );
    assert!(!dir.path().join("y").join("results.json").exists());
}

/// The Tiki-Taka routes train from the command line on `reram` and `harsh` chips (TTv2
/// learns: chance is 90 %), their conductances (with the saved fast arrays and buffers)
/// evaluate on another instance, and a trained one teaches a distilled FF student.
#[test]
fn tiki_taka_routes_train_evaluate_elsewhere_and_teach() {
    let dir = tempfile::tempdir().unwrap();
    for algo in ["bp-ttv2", "bp-cttv2", "bp-agad"] {
        for chip in ["reram", "harsh"] {
            let out = dir.path().join(format!("{algo}-{chip}"));
            let r = train(&out, algo, &["--chip", chip]);
            assert_eq!(r["algo"], algo);
            assert_eq!(r["config"]["bp"]["optimizer"]["momentum"], 0.0);
            let err = r["test_error"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&err), "{algo} on {chip}: {err}");
            // Only TTv2 is held to learning at this tiny budget: the chopped variants
            // need a longer run for their choppers to average out (on MNIST they beat
            // analog SGD: README, "The Tiki-Taka family").
            if algo == "bp-ttv2" {
                assert!(err < 0.8, "{algo} on {chip}: test error {err}");
            }
        }
    }
    let t = dir.path().join("bp-ttv2-reram");
    run_ok(
        mortal()
            .args(["eval", "-q", "--checkpoint"])
            .arg(&t)
            .args(["--chip-seed", "2"]),
    );
    let student = dir.path().join("student");
    run_ok(
        mortal()
            .args(["distill", "-q", "--teacher"])
            .arg(&t)
            .args([
                "--student-chip",
                "reram",
                "--student-seed",
                "2",
                "--transfer",
                "500",
                "--epochs",
                "1",
                "--eval-limit",
                "200",
                "--out",
            ])
            .arg(&student),
    );
    let s = read_json(&student.join("results.json"));
    // The teacher's outputs were measured on its own chip (it learned), and the student
    // was trained and measured.
    assert!(s["teacher_test_error"].as_f64().unwrap() < 0.8, "{s}");
    assert!((0.0..=1.0).contains(&s["test_error"].as_f64().unwrap()));
}
