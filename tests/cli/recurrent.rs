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
