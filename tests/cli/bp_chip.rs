//! `mortal train --algo bp-deploy|bp-hwa|bp-pat|bp-analog` end to end.

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
