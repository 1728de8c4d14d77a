//! Recurrent Forward-Forward (`--algo ff-recurrent`) end to end: digital and on chips,
//! its checkpoint evaluated on another chip instance, and its bad input.

use crate::common::*;

fn small(extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "train",
        "-q",
        "--algo",
        "ff-recurrent",
        "--dataset",
        "synthetic",
        "--epochs",
        "2",
        "--train-limit",
        "2000",
        "--eval-limit",
        "100",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if !extra.contains(&"--layers") {
        a.extend(["--layers".to_string(), "40,30".to_string()]);
    }
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

#[test]
fn recurrent_ff_trains_digital_and_on_chips_and_reports_error_by_iteration() {
    let dir = tempfile::tempdir().unwrap();
    for (name, extra) in [
        ("digital", vec!["--iterations", "4", "--eval-window", "2-3"]),
        ("reram", vec!["--chip", "reram", "--iterations", "3"]),
        (
            "harsh",
            vec![
                "--chip",
                "harsh",
                "--iterations",
                "3",
                "--update-order",
                "alternating",
            ],
        ),
    ] {
        let out = dir.path().join(name);
        run_ok(mortal().args(small(&extra)).arg("--out").arg(&out));
        let r = read_json(&out.join("results.json"));
        assert_eq!(r["algo"], "ff-recurrent");
        let iters: usize = extra[extra.iter().position(|a| *a == "--iterations").unwrap() + 1]
            .parse()
            .unwrap();
        let by_iter = r["test_error_by_iteration"].as_array().unwrap();
        assert_eq!(by_iter.len(), iters, "{name}: {r}");
        assert_fractions(
            &r,
            &["test_error", "test_error_goodness", "test_error_softmax"],
        );
        assert_eq!(r["config"]["recurrent"]["iterations"], iters);
        let err = r["test_error"].as_f64().unwrap();
        assert!(err < 0.8, "{name}: test error {err} (chance is 0.9)");
    }
    // The in-situ checkpoint evaluates on its own chip and on chip #2 (mortality).
    let ck = dir.path().join("reram");
    let ev = dir.path().join("eval-c2");
    let o = run_ok(
        mortal()
            .args(["eval", "-q", "--checkpoint"])
            .arg(&ck)
            .args(["--chip-seed", "2", "--out"])
            .arg(&ev),
    );
    let e = read_json(&ev.join("results.json"));
    assert!(e.to_string().contains("test_error"), "{e}");
    let _ = o;
}

#[test]
fn bad_recurrent_input_fails_with_one_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--iterations", "0"], "recurrent.iterations"),
        (&["--damping", "1"], "recurrent.damping"),
        (&["--damping", "-0.2"], "recurrent.damping"),
        (&["--eval-window", "7-9"], "recurrent.eval_window"),
        (&["--eval-window", "5-3"], "recurrent.eval_window"),
        (&["--eval-window", "three"], "recurrent.eval_window"),
        (&["--update-order", "random"], "recurrent.schedule"),
        (&["--layers", "50"], "layers"),
        (&["--negatives", "hybrid"], "negatives"),
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
        assert_eq!(stderr.trim().lines().count(), 1, "{extra:?}: {stderr}");
    }
}

/// Writes CIFAR-10 binary files (`per_file` records each, labels cycling 0..9, pixel
/// values from the record index) under `dir/cifar10/cifar-10-batches-bin/`.
fn write_cifar(dir: &std::path::Path, per_file: usize) {
    let f = mortal::data::cifar::folder(dir);
    std::fs::create_dir_all(&f).unwrap();
    for (fi, name) in mortal::data::cifar::FILES.iter().enumerate() {
        let mut b = Vec::new();
        for k in 0..per_file {
            let label = (fi + k) % 10;
            b.push(label as u8);
            // A class-dependent bright square in the red plane, so there is something
            // to learn.
            for c in 0..3 {
                for i in 0..1024 {
                    let (y, x) = (i / 32, i % 32);
                    let on = c == 0 && y / 8 == label % 4 && x / 8 == label / 4;
                    b.push(if on {
                        220
                    } else {
                        ((k * 31 + i * 7 + c) % 60) as u8
                    });
                }
            }
        }
        std::fs::write(f.join(name), b).unwrap();
    }
}

#[test]
fn the_cifar10_path_runs_on_colour_synthetic_data_and_on_cifar_format_files() {
    let dir = tempfile::tempdir().unwrap();
    // The synthetic colour set, the recurrent learner on the paper's CIFAR net.
    let out = dir.path().join("color");
    run_ok(
        mortal()
            .args([
                "train",
                "-q",
                "--dataset",
                "synthetic-color",
                "--net",
                "cifar-local2",
                "--algo",
                "ff-recurrent",
                "--epochs",
                "1",
                "--train-limit",
                "100",
                "--eval-limit",
                "20",
                "--iterations",
                "2",
                "--out",
            ])
            .arg(&out),
    );
    let r = read_json(&out.join("results.json"));
    assert_eq!(r["dataset"], "synthetic-color");
    assert_eq!(r["layers"][0], "local:32x32x3:f11:s1:p5");
    // Files in the official binary format: FF and the BP baseline, same connectivity.
    let data = dir.path().join("data");
    write_cifar(&data, 30);
    for algo in ["ff", "bp"] {
        let out = dir.path().join(algo);
        run_ok(
            mortal()
                .args(["train", "-q", "--dataset", "cifar10", "--data-dir"])
                .arg(&data)
                .args([
                    "--net",
                    "cifar-local2",
                    "--algo",
                    algo,
                    "--epochs",
                    "1",
                    "--out",
                ])
                .arg(&out),
        );
        let r = read_json(&out.join("results.json"));
        // 150 training records: the last tenth validates; the test file tests.
        assert_eq!(r["train_samples"], 135, "{algo}: {r}");
        assert_eq!(r["test_samples"], 30, "{algo}: {r}");
    }
    // `data check` names each file; these small files are not the official ones (exit 3).
    let o = mortal()
        .args(["data", "check", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        text.contains("test_batch.bin") && text.contains("expected 30730000"),
        "{text}"
    );
    assert_eq!(o.status.code(), Some(3));
    // A truncated file is named, with exit 3.
    let p = data.join("cifar10/cifar-10-batches-bin/data_batch_2.bin");
    let mut b = std::fs::read(&p).unwrap();
    b.truncate(5000);
    std::fs::write(&p, b).unwrap();
    let (code, stderr) = run_err(
        mortal()
            .args(["train", "-q", "--dataset", "cifar10", "--data-dir"])
            .arg(&data)
            .args(["--layers", "20", "--out"])
            .arg(dir.path().join("x")),
    );
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("data_batch_2.bin") && stderr.contains("3073-byte records"),
        "{stderr}"
    );
    // No files: where it looked and how to fetch.
    let (code, stderr) = run_err(
        mortal()
            .args(["train", "-q", "--dataset", "cifar10", "--data-dir"])
            .arg(dir.path().join("none"))
            .args(["--layers", "20", "--out"])
            .arg(dir.path().join("y")),
    );
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("mortal data fetch cifar10"), "{stderr}");
    // The CIFAR nets need 32 × 32 × 3 images.
    let (code, stderr) = run_err(
        mortal()
            .args([
                "train",
                "-q",
                "--dataset",
                "synthetic",
                "--net",
                "cifar-local3",
            ])
            .args(["--algo", "ff-recurrent", "--out"])
            .arg(dir.path().join("z")),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("`net`") && stderr.contains("cifar-local3"),
        "{stderr}"
    );
}
