//! `mortal distill` end to end: a small harsh-chip teacher on the synthetic set, one
//! student and a sweep, and bad inputs.

use std::path::Path;

use crate::common::*;

/// Trains a small FF teacher on harsh chip #1 into `dir`.
fn train_teacher(dir: &Path) {
    train_teacher_with(dir, "ff", "harsh");
}

/// Trains a small teacher with `algo` on `chip` #1 into `dir`.
fn train_teacher_with(dir: &Path, algo: &str, chip: &str) {
    run_ok(
        mortal()
            .args([
                "train",
                "--algo",
                algo,
                "--dataset",
                "synthetic",
                "--layers",
                "32,32",
                "--epochs",
                "2",
                "--train-limit",
                "800",
                "--eval-limit",
                "200",
                "--eval-every",
                "0",
                "--chip",
                chip,
                "--chip-seed",
                "1",
                "-q",
                "--out",
            ])
            .arg(dir),
    );
}

fn distill(teacher: &Path, out: &Path) -> std::process::Command {
    distill_to(teacher, out, "harsh")
}

fn distill_to(teacher: &Path, out: &Path, chip: &str) -> std::process::Command {
    let mut c = mortal();
    c.args(["distill", "-q", "--teacher"])
        .arg(teacher)
        .args([
            "--student-chip",
            chip,
            "--epochs",
            "2",
            "--eval-limit",
            "200",
            "--out",
        ])
        .arg(out);
    c
}

#[test]
fn distill_writes_student_copy_and_scratch_metrics_and_a_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = dir.path().join("teacher");
    train_teacher(&teacher);

    let one = dir.path().join("one");
    run_ok(distill(&teacher, &one).args([
        "--transfer",
        "400",
        "--student-seed",
        "2",
        "--goodness",
    ]));
    let r = read_json(&one.join("results.json"));
    for key in [
        "test_error",
        "agreement",
        "kl",
        "copy_test_error",
        "copy_agreement",
        "copy_kl",
        "scratch_test_error",
        "scratch_agreement",
        "scratch_kl",
        "teacher_test_error",
        "test_error_goodness",
        "seed",
        "seeds",
        "student_seed",
        "transfer",
        "temperature",
        "config",
        "function_agreement",
        "teacher_function_agreement",
    ] {
        assert!(!r[key].is_null(), "results.json lacks {key}: {r}");
    }
    // The default recipe: the per-layer loss with hints from this FF teacher.
    assert_eq!(r["config"]["distill"]["loss"], "layer-kl", "{r}");
    assert_eq!(r["hint_weight"], 3.0, "{r}");
    assert_fractions(&r, &["function_agreement", "teacher_function_agreement"]);
    assert_eq!(r["transfer"], 400);
    assert_eq!(r["student_seed"], 2);
    assert_eq!(r["algo"], "ff-distill");
    assert_fractions(
        &r,
        &[
            "agreement",
            "copy_agreement",
            "scratch_agreement",
            "test_error",
        ],
    );
    assert_eq!(epochs_without_timing(&one).len(), 2);
    assert_eq!(epochs_without_timing(&one.join("scratch")).len(), 2);

    // The per-layer KL loss: same baselines, another distilled student.
    let kl = dir.path().join("kl");
    run_ok(distill(&teacher, &kl).args([
        "--transfer",
        "400",
        "--student-seed",
        "2",
        "--loss",
        "layer-kl",
        "--layer-temperature",
        "10",
    ]));
    let k = read_json(&kl.join("results.json"));
    assert_eq!(k["config"]["distill"]["loss"], "layer-kl");
    assert_eq!(k["config"]["distill"]["layer_temperature"], 10.0);
    assert_eq!(k["copy_agreement"], r["copy_agreement"]);
    assert_eq!(k["scratch_agreement"], r["scratch_agreement"]);
    assert_ne!(k["kl"], r["kl"]);

    // A sweep: one directory per student, results.csv, figures; re-running reuses them.
    let sweep = dir.path().join("sweep");
    let args = ["--transfer", "200,400", "--student-seed", "2,3"];
    run_ok(distill(&teacher, &sweep).args(args));
    let csv = std::fs::read_to_string(sweep.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(
        csv.starts_with("student_chip,variation,transfer,student_seed,"),
        "{csv}"
    );
    for f in [
        "plots/distill-error.png",
        "plots/distill-agreement.png",
        "distill.json",
        "t400-s2/results.json",
    ] {
        assert!(sweep.join(f).exists(), "{f}");
    }
    // The sweep's (400, #2) student is the single run above: same seeds, same numbers.
    let s = read_json(&sweep.join("t400-s2/results.json"));
    assert_eq!(s["agreement"], r["agreement"]);
    assert_eq!(s["scratch_test_error"], r["scratch_test_error"]);
    let again = run_ok(distill(&teacher, &sweep).args(args));
    // Reused rows come back through JSON: equal up to float round-off.
    let again_csv = std::fs::read_to_string(sweep.join("results.csv")).unwrap();
    assert_eq!(again_csv.lines().count(), csv.lines().count());
    for (a, b) in again_csv.lines().zip(csv.lines()) {
        for (x, y) in a.split(',').zip(b.split(',')) {
            match (x.parse::<f64>(), y.parse::<f64>()) {
                (Ok(x), Ok(y)) => assert!((x - y).abs() <= 1e-12 * x.abs().max(1.0), "{a} | {b}"),
                _ => assert_eq!(x, y),
            }
        }
    }
    assert!(String::from_utf8_lossy(&again.stdout).contains("results written"));
    // `mortal plot` redraws the sweep's figures from its files.
    std::fs::remove_file(sweep.join("plots/distill-error.png")).unwrap();
    let drawn = run_ok(mortal().arg("plot").arg(&sweep));
    // error and agreement vs transfer size, and one training-curve figure per size
    assert_eq!(String::from_utf8_lossy(&drawn.stdout).lines().count(), 4);
    assert!(sweep.join("plots/distill-error.png").exists());
    assert!(sweep.join("plots/distill-epochs-t200.png").exists());
}

/// A backprop teacher (physics-aware training on a ReRAM chip): its copy keeps its
/// algorithm on the student chip; the student is FF; goodness is refused as its source.
#[test]
fn distill_takes_a_backprop_teacher() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = dir.path().join("teacher");
    train_teacher_with(&teacher, "bp-pat", "reram");
    let out = dir.path().join("out");
    run_ok(distill_to(&teacher, &out, "reram").args(["--transfer", "300"]));
    let r = read_json(&out.join("results.json"));
    assert_eq!(r["config"]["student"]["algo"], "ff");
    assert!(r["copy_note"].as_str().unwrap().contains("reram #2"), "{r}");
    assert_fractions(
        &r,
        &[
            "test_error",
            "agreement",
            "copy_agreement",
            "scratch_agreement",
        ],
    );
    // No hints from a backprop teacher: none by default, refused when asked for.
    assert_eq!(r["hint_weight"], 0.0, "{r}");
    let (code, err) = run_err(distill_to(&teacher, &dir.path().join("h"), "reram").args([
        "--transfer",
        "300",
        "--hint-weight",
        "3",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("hint-weight") && err.contains("Forward-Forward"),
        "{err}"
    );
    let (code, err) = run_err(distill_to(&teacher, &dir.path().join("g"), "reram").args([
        "--transfer",
        "300",
        "--source",
        "goodness",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("only a Forward-Forward teacher"), "{err}");
}

#[test]
fn distill_rejects_bad_inputs_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let missing = dir.path().join("no-such-teacher");
    let (code, err) = run_err(distill(&missing, &out).args(["--transfer", "100"]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("no-such-teacher"), "{err}");

    // Bad transfer sizes are caught before the teacher is read.
    for (bad, needle) in [("0", "transfer"), ("abc", "abc"), ("", "transfer")] {
        let (code, err) = run_err(distill(&missing, &out).args(["--transfer", bad]));
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(err.contains(needle), "{bad}: {err}");
    }
    let (code, err) =
        run_err(distill(&missing, &out).args(["--transfer", "10", "--temperature", "0"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("temperature"), "{err}");
    let (code, err) = run_err(distill(&missing, &out).args([
        "--transfer",
        "10",
        "--loss",
        "layer-kl",
        "--layer-temperature=-1",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("layer-temperature"), "{err}");
    let (code, err) = run_err(distill_to(&missing, &out, "plasma").args(["--transfer", "10"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("plasma"), "{err}");

    let (code, err) =
        run_err(distill(&missing, &out).args(["--transfer", "10", "--teacher-reads", "0"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("teacher-reads"), "{err}");
    for bad in [
        vec!["--hint-weight=-1"],
        vec!["--hint-weight", "nan"],
        vec!["--loss", "contrastive", "--hint-weight", "3"],
    ] {
        let (code, err) = run_err(
            distill(&missing, &out)
                .args(["--transfer", "10"])
                .args(&bad),
        );
        assert_eq!(code, 2, "{bad:?}: {err}");
        assert!(err.contains("hint-weight"), "{bad:?}: {err}");
    }
    let (code, err) =
        run_err(distill(&missing, &out).args(["--transfer", "10", "--student-seed", "9-3"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("student-seed") && err.contains("9-3"), "{err}");

    // More transfer images than the training set holds.
    let teacher = dir.path().join("teacher");
    train_teacher(&teacher);
    let (code, err) = run_err(distill(&teacher, &out).args(["--transfer", "999999"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("transfer") && err.contains("999999"), "{err}");

    // A copy start needs the teacher's shape; the message names both.
    let (code, err) = run_err(distill(&teacher, &out).args([
        "--transfer",
        "100",
        "--init",
        "copy",
        "--student-layers",
        "16,16",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("32, 32") && err.contains("16, 16"), "{err}");
    // Hints need the teacher's widths, too.
    let (code, err) = run_err(distill(&teacher, &out).args([
        "--transfer",
        "100",
        "--init",
        "scratch",
        "--student-layers",
        "16,16",
        "--hint-weight",
        "3",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("hint-weight") && err.contains("16, 16"),
        "{err}"
    );

    // A transfer file of the wrong image size or dtype.
    let npy = dir.path().join("images.npy");
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    let mut header = "{'descr': '|u1', 'fortran_order': False, 'shape': (5, 100), }".to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&[0u8; 500]);
    std::fs::write(&npy, &bytes).unwrap();
    let (code, err) = run_err(
        distill(&teacher, &out)
            .args(["--transfer", "5", "--transfer-source"])
            .arg(&npy),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("images.npy") && err.contains("shape"), "{err}");
    assert!(!out.join("results.json").exists());
}

/// A fleet from one teacher: a range of student chips, one results row each and a
/// summary; a student with no images of its own learns from noise.
#[test]
fn distill_teaches_a_fleet_and_students_without_images() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = dir.path().join("teacher");
    train_teacher(&teacher);
    let fleet = dir.path().join("fleet");
    let run = run_ok(distill(&teacher, &fleet).args([
        "--transfer",
        "200",
        "--student-seed",
        "2-4",
        "--unlabelled",
    ]));
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        out.contains("summary, 200 transfer images, 3 students"),
        "{out}"
    );
    let csv = std::fs::read_to_string(fleet.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(csv.lines().next().unwrap().contains("recovered"));
    let noise = dir.path().join("noise");
    run_ok(distill(&teacher, &noise).args([
        "--transfer",
        "200",
        "--transfer-source",
        "noise",
        "--init",
        "scratch",
    ]));
    let r = read_json(&noise.join("results.json"));
    assert_eq!(r["transfer_source"], "noise");
    assert_eq!(r["init"], "scratch");
    assert_eq!(r["unlabelled"], true);
    assert!(r["scratch_test_error"].is_null());
    assert!(r["other_init_test_error"].is_number());
}

#[test]
fn distill_results_do_not_depend_on_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = dir.path().join("teacher");
    train_teacher(&teacher);
    let mut runs = Vec::new();
    for threads in ["1", "2"] {
        let out = dir.path().join(format!("t{threads}"));
        run_ok(
            distill(&teacher, &out)
                .args(["--transfer", "300", "--student-seed", "3"])
                .env("RAYON_NUM_THREADS", threads),
        );
        let r = read_json(&out.join("results.json"));
        assert_eq!(r["threads"].as_u64().unwrap().to_string(), threads);
        runs.push((r, epochs_without_timing(&out)));
    }
    for key in [
        "test_error",
        "agreement",
        "kl",
        "copy_agreement",
        "copy_kl",
        "scratch_agreement",
        "scratch_kl",
        "teacher_test_error",
    ] {
        assert_eq!(runs[0].0[key], runs[1].0[key], "{key}");
    }
    assert_eq!(runs[0].1, runs[1].1);
}
