//! Operation counters and energy models end to end: the `cost` block, `--energy`,
//! `--no-count`, a bad model file, and the shipped energy scenario with its figure.

use crate::common::*;
use crate::train::SMALL;

#[test]
fn runs_report_their_cost_under_the_chosen_energy_model() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pcm");
    run_ok(
        mortal()
            .args(SMALL)
            .args(["--chip", "reram", "--energy", "pcm", "--out"])
            .arg(&out),
    );
    let r = read_json(&out.join("results.json"));
    let c = &r["cost"];
    assert_eq!(c["energy_model"], "pcm");
    for (phase, per) in [("train", "per_sample"), ("inference", "per_image")] {
        let p = &c[phase][per];
        for key in [
            "dac",
            "adc",
            "analog_macs",
            "transposed_reads",
            "pulses",
            "verify_reads",
            "digital_flops",
            "digital_bytes",
            "energy_j",
            "latency_s",
        ] {
            assert!(p[key].as_f64().is_some(), "{phase}.{key}: {c}");
        }
        assert!(p["energy_j"].as_f64().unwrap() > 0.0);
    }
    // FF: the analog-native accounting reads one goodness per layer per pass.
    let native = &c["analog_native"]["train_per_sample"];
    assert!(native["adc"].as_f64().unwrap() < c["train"]["per_sample"]["adc"].as_f64().unwrap());

    // Switching counting off removes the block and changes no result.
    let off = dir.path().join("off");
    run_ok(
        mortal()
            .args(SMALL)
            .args(["--chip", "reram", "--energy", "pcm", "--no-count", "--out"])
            .arg(&off),
    );
    let o = read_json(&off.join("results.json"));
    assert!(o.get("cost").is_none());
    assert_eq!(o["test_error"], r["test_error"]);
    assert_eq!(epochs_without_timing(&off), epochs_without_timing(&out));
}

#[test]
fn a_bad_energy_model_is_refused_naming_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let text = include_str!("../../crates/mortal/src/cost/models/reram.toml")
        .replace("byte_j = 1.25e-12", "byte_j = -1.0");
    let model = dir.path().join("bad-energy.toml");
    std::fs::write(&model, text).unwrap();
    let out = dir.path().join("run");
    let (code, err) = run_err(
        mortal()
            .args(SMALL)
            .args(["--chip", "reram", "--energy"])
            .arg(&model)
            .arg("--out")
            .arg(&out),
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("energy.byte_j") && err.contains("bad-energy.toml"),
        "{err}"
    );
    assert!(!out.exists(), "nothing is written for a refused run");
    let (code, err) = run_err(mortal().args(SMALL).args(["--energy", "memristor"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("memristor"), "{err}");
}

#[test]
fn the_energy_scenario_writes_energy_columns_and_its_figure() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("energy");
    run_ok(
        mortal()
            .args(["run", "scenarios/energy.toml", "--smoke", "-q", "--out"])
            .arg(&out),
    );
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let (ca, ce, cn) = (
        col("algo"),
        col("train_energy_j_per_sample"),
        col("train_energy_j_per_sample_native"),
    );
    let mut algos = Vec::new();
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        assert!(f[ce].parse::<f64>().unwrap() > 0.0, "{l}");
        assert_eq!(f[cn].is_empty(), f[ca] != "ff", "{l}");
        algos.push(f[ca].to_string());
    }
    for a in ["ff", "bp-deploy", "bp-hwa", "bp-pat", "bp-analog", "bp"] {
        assert!(algos.iter().any(|x| x == a), "{a} missing: {algos:?}");
    }
    run_ok(mortal().arg("plot").arg(&out));
    assert!(out.join("plots/error_vs_energy.png").is_file());
}
