//! `mortal run`, `plot` and `merge` end to end: scenario fixtures, every shipped scenario
//! in smoke mode, resume, kill -9, thread-count independence, shards + merge, a changed
//! scenario, figures.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;

fn root() -> PathBuf {
    super::common::root()
}

/// The `*.toml` files directly in `dir`, sorted.
fn tomls(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no .toml files in {}", dir.display());
    v
}

/// `results.csv` as (header, rows) without the timing and memory columns.
fn results(dir: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut rd = csv::Reader::from_path(dir.join("results.csv"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let header: Vec<String> = rd.headers().unwrap().iter().map(String::from).collect();
    let keep: Vec<usize> = (0..header.len())
        .filter(|i| !["train_seconds", "eval_seconds", "peak_rss_mib"].contains(&&*header[*i]))
        .collect();
    let rows = rd
        .records()
        .map(|r| {
            let r = r.unwrap();
            keep.iter().map(|i| r[*i].to_string()).collect()
        })
        .collect();
    (keep.iter().map(|i| header[*i].clone()).collect(), rows)
}

/// The raw lines of `results.csv` (header first).
fn lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("results.csv"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn run_scenario(file: &Path, out: &Path) -> std::process::Command {
    let mut c = mortal();
    c.arg("run").arg(file).arg("--out").arg(out).arg("-q");
    c
}

/// A small chip scenario on synthetic data: `runs` runs (seeds) of a few tenths of a
/// second each.
fn small_scenario(dir: &Path, runs: usize, epochs: usize) -> PathBuf {
    let seeds: Vec<String> = (1..=runs).map(|s| s.to_string()).collect();
    let text = format!(
        "version = 1\nname = \"small\"\n\
         [data]\ndataset = \"synthetic\"\ntrain_limit = 600\neval_limit = 200\n\
         [data.synthetic]\ntrain = 600\nvalid = 200\ntest = 200\n\
         [model]\nlayers = [48, 48]\n\
         [train]\nepochs = {epochs}\neval_every = 0\n\
         [hardware]\npreset = \"reram\"\n\
         [sweep]\nseeds = [{}]\n",
        seeds.join(", ")
    );
    let p = dir.join("small.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn fixtures_good_load_and_bad_fail_with_their_stated_error() {
    let dir = root().join("tests/scenarios");
    for f in tomls(&dir.join("good")) {
        let out = run_ok(mortal().arg("run").arg(&f).arg("--dry-run"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(" run"), "{}: {stdout}", f.display());
    }
    for f in tomls(&dir.join("bad")) {
        let text = std::fs::read_to_string(&f).unwrap();
        let expect: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect:"))
            .map(str::trim)
            .collect();
        assert!(
            !expect.is_empty(),
            "{} states no `# expect:` error",
            f.display()
        );
        let (code, stderr) = run_err(mortal().arg("run").arg(&f).arg("--dry-run"));
        assert_eq!(code, 2, "{}: {stderr}", f.display());
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        assert!(stderr.contains(&name), "error must name the file: {stderr}");
        for e in expect {
            assert!(
                stderr.contains(e),
                "{name}: expected {e:?} in the error, got: {stderr}"
            );
        }
    }
}

#[test]
fn every_shipped_scenario_runs_in_smoke_mode() {
    let tmp = tempfile::tempdir().unwrap();
    for f in tomls(&root().join("scenarios")) {
        let stem = f.file_stem().unwrap().to_string_lossy().to_string();
        let out = tmp.path().join(&stem);
        run_ok(run_scenario(&f, &out).args(["--smoke", "--no-plot"]));
        if out.join("distill.json").exists() {
            check_distill_results(&stem, &out);
            continue;
        }
        let (header, rows) = results(&out);
        assert!(!rows.is_empty(), "{stem}: no rows");
        let status = header.iter().position(|h| h == "status").unwrap();
        let err = header.iter().position(|h| h == "test_error").unwrap();
        for r in &rows {
            assert_eq!(r[status], "ok", "{stem}: {r:?}");
            let e: f64 = r[err].parse().unwrap();
            assert!((0.0..=1.0).contains(&e), "{stem}: {r:?}");
        }
        let m = read_json(&out.join("scenario.json"));
        assert_eq!(m["runs"].as_array().unwrap().len(), rows.len(), "{stem}");
    }
}

/// The position of column `name` in `dir/results.csv`.
fn header_index(dir: &Path, name: &str) -> usize {
    results(dir).0.iter().position(|h| h == name).unwrap()
}

/// A distillation scenario's `results.csv`: one row per student, fractions in [0, 1].
fn check_distill_results(stem: &str, out: &Path) {
    let (header, rows) = results(out);
    assert!(!rows.is_empty(), "{stem}: no students");
    let info = read_json(&out.join("distill.json"));
    assert_eq!(
        info["students"].as_array().unwrap().len(),
        rows.len(),
        "{stem}"
    );
    for key in [
        "test_error",
        "agreement",
        "copy_agreement",
        "scratch_test_error",
    ] {
        let c = header.iter().position(|h| h == key).unwrap();
        for r in &rows {
            let v: f64 = r[c].parse().unwrap();
            assert!((0.0..=1.0).contains(&v), "{stem}: {key} = {v}");
        }
    }
    assert!(out.join("teacher/checkpoint.json").exists(), "{stem}");
}

/// A distillation scenario trains its teacher once; a re-run reuses the teacher and the
/// students; `mortal plot` redraws the figures from the files; a changed teacher is
/// refused rather than mixed with the old one's students.
#[test]
fn distill_scenario_reuses_its_teacher_and_students_and_plot_redraws() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("d.toml");
    let text = |epochs: usize| {
        format!(
            "version = 1\nname = \"d\"\n[data]\ndataset = \"synthetic\"\ntrain_limit = 400\n\
             eval_limit = 100\n[model]\nlayers = [32]\n[train]\nepochs = {epochs}\n\
             [hardware]\npreset = \"harsh\"\n[distill]\nvariations = [0.5, 1.0]\n\
             student_seeds = [2, 3]\ntransfer = [100, 200]\nepochs = 1\nunlabelled = true\n\
             losses = [\"contrastive\", \"layer-kl\"]\n"
        )
    };
    std::fs::write(&file, text(1)).unwrap();
    let out = tmp.path().join("out");
    run_ok(mortal().arg("run").arg(&file).arg("--out").arg(&out));
    check_distill_results("d", &out);
    let (_, rows) = results(&out);
    assert_eq!(rows.len(), 2 * 2 * 2 * 2);
    let loss = header_index(&out, "loss");
    assert_eq!(rows.iter().filter(|r| r[loss] == "layer-kl").count(), 8);
    // Each layer-kl student shares the baselines its contrastive sibling measured.
    let kl_student = out.join("harsh-v1-t200-s3-layer-kl");
    let k = read_json(&kl_student.join("results.json"));
    let c = read_json(&out.join("harsh-v1-t200-s3/results.json"));
    assert_eq!(k["baselines_from"], "harsh-v1-t200-s3");
    assert!(c["baselines_from"].is_null());
    for key in ["copy_test_error", "scratch_test_error", "scratch_agreement"] {
        assert_eq!(k[key], c[key], "{key}");
    }
    assert!(!kl_student.join("scratch").exists());
    let plots = files_with_ext(&out.join("plots"), "png");
    // error and agreement per variation, against variation, and a training-curve figure
    // per transfer size
    assert_eq!(plots.len(), 2 * 2 + 2 + 2, "{plots:?}");
    let teacher = std::fs::read(out.join("teacher/results.json")).unwrap();

    let again = run_ok(mortal().arg("run").arg(&file).arg("--out").arg(&out));
    let said = String::from_utf8_lossy(&again.stdout).to_string()
        + &String::from_utf8_lossy(&again.stderr);
    assert!(said.contains("teacher: already trained"), "{said}");
    assert_eq!(said.matches("already done").count(), 16, "{said}");
    assert_eq!(
        std::fs::read(out.join("teacher/results.json")).unwrap(),
        teacher
    );
    assert_eq!(results(&out).1, rows);

    for p in &plots {
        std::fs::remove_file(p).unwrap();
    }
    let drawn = run_ok(mortal().arg("plot").arg(&out));
    assert_eq!(
        String::from_utf8_lossy(&drawn.stdout).lines().count(),
        plots.len()
    );
    assert!(plots.iter().all(|p| p.exists()));

    std::fs::write(&file, text(2)).unwrap();
    let (code, stderr) = run_err(mortal().arg("run").arg(&file).arg("--out").arg(&out));
    assert_ne!(code, 0);
    assert!(
        stderr.contains("teacher trained with other settings"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert_eq!(
        std::fs::read(out.join("teacher/results.json")).unwrap(),
        teacher
    );
}

#[test]
fn rerun_skips_finished_runs_and_a_changed_scenario_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let file = small_scenario(tmp.path(), 2, 1);
    let out = tmp.path().join("out");
    run_ok(run_scenario(&file, &out).arg("--no-plot"));
    let before = lines(&out);
    assert_eq!(before.len(), 3);
    let again = run_ok(mortal().arg("run").arg(&file).arg("--out").arg(&out));
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(stdout.contains("2 already done, 0 to run"), "{stdout}");
    assert_eq!(lines(&out), before, "a re-run must not touch finished rows");

    // A changed scenario into the same directory: refused, unless --force.
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("epochs = 1", "epochs = 2")).unwrap();
    let (code, stderr) = run_err(run_scenario(&file, &out).arg("--no-plot"));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("different version of this scenario") && stderr.contains("epochs"),
        "{stderr}"
    );
    assert_eq!(lines(&out), before);
    run_ok(run_scenario(&file, &out).args(["--no-plot", "--force"]));
    let (_, rows) = results(&out);
    let epochs = results(&out).0.iter().position(|h| h == "epochs").unwrap();
    // The new version's rows only: the old version's two rows are gone.
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows.iter().filter(|r| r[epochs] == "2").count(), 2);
}

#[test]
fn kill_9_mid_sweep_then_rerun_keeps_finished_rows_once() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = 8;
    let file = small_scenario(tmp.path(), runs, 2);
    let out = tmp.path().join("out");
    let mut child = run_scenario(&file, &out)
        .args(["--no-plot", "--jobs", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    // Wait for the first finished rows, then kill -9.
    while lines(&out).len() < 3 && t0.elapsed() < Duration::from_secs(60) {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = lines(&out);
    let finished = before.len().saturating_sub(1);
    assert!(finished >= 1, "no run finished before the kill");
    assert!(
        finished < runs,
        "the sweep finished before it could be killed; make the runs longer"
    );
    // A torn last line, as a kill in the middle of a write would leave it.
    let mut torn = std::fs::read_to_string(out.join("results.csv")).unwrap();
    torn.push_str("small_s9-0123abcd,7,small_s9,ff,9");
    std::fs::write(out.join("results.csv"), torn).unwrap();

    let again = run_ok(run_scenario(&file, &out).arg("--no-plot"));
    let _ = again;
    let after = lines(&out);
    assert_eq!(after.len(), runs + 1, "{after:#?}");
    for row in &before {
        assert_eq!(
            after.iter().filter(|l| *l == row).count(),
            1,
            "finished row changed or duplicated: {row}"
        );
    }
    let ids: std::collections::HashSet<&str> =
        after.iter().map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(ids.len(), after.len());
}

#[test]
fn results_do_not_depend_on_thread_count_and_shards_merge_to_the_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let file = root().join("scenarios/noise_sweep.toml");
    let dirs: Vec<PathBuf> = ["1", "2"]
        .iter()
        .map(|t| {
            let out = tmp.path().join(format!("t{t}"));
            run_ok(
                run_scenario(&file, &out)
                    .args(["--smoke", "--no-plot"])
                    .env("RAYON_NUM_THREADS", t),
            );
            out
        })
        .collect();
    let whole = results(&dirs[0]);
    assert!(whole.1.len() >= 6, "{:?}", whole.1);
    assert_eq!(whole, results(&dirs[1]), "1 thread vs 2 threads");

    let shards: Vec<PathBuf> = ["0/2", "1/2"]
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let out = tmp.path().join(format!("shard{i}"));
            run_ok(run_scenario(&file, &out).args(["--smoke", "--no-plot", "--shard", s]));
            out
        })
        .collect();
    let n0 = results(&shards[0]).1.len();
    assert!(n0 > 0 && n0 < whole.1.len());
    let merged = tmp.path().join("merged");
    let out = run_ok(
        mortal()
            .arg("merge")
            .arg(&merged)
            .args(&shards)
            .arg("--no-plot"),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("merged"), "{stdout}");
    assert_eq!(
        results(&merged),
        whole,
        "merged shards = the unsharded sweep"
    );
    // Every run's files came along.
    for r in &whole.1 {
        assert!(
            merged
                .join("runs")
                .join(&r[0])
                .join("results.json")
                .is_file()
        );
    }
    // Shards of another scenario are refused.
    let other = small_scenario(tmp.path(), 1, 1);
    let odir = tmp.path().join("other");
    run_ok(run_scenario(&other, &odir).arg("--no-plot"));
    let (code, stderr) = run_err(mortal().arg("merge").arg(&merged).arg(&odir));
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn plot_draws_error_curves_fields_and_conductance_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("q");
    run_ok(
        run_scenario(&root().join("scenarios/quickstart.toml"), &out)
            .args(["--smoke", "--no-plot"]),
    );
    assert!(!out.join("plots").exists());
    let o = run_ok(mortal().arg("plot").arg(&out));
    let listed = String::from_utf8_lossy(&o.stdout).to_string();
    let plots = out.join("plots");
    let png = |p: &Path| {
        let b = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(b.starts_with(b"\x89PNG"), "{} is not a PNG", p.display());
    };
    png(&plots.join("error_vs_variation.png"));
    assert!(plots.join("error_vs_variation.svg").is_file());
    png(&plots.join("curves_ff.png"));
    for sub in ["fields", "conductance"] {
        let files = files_with_ext(&plots.join(sub), "png");
        assert!(!files.is_empty(), "no {sub} figures");
        for f in &files {
            png(f);
            assert!(listed.contains(&*f.to_string_lossy()), "{listed}");
        }
    }
    // Not an output directory: one clear line.
    let (code, stderr) = run_err(mortal().arg("plot").arg(tmp.path()));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("scenario.json"), "{stderr}");
}

fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == ext))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn bad_run_arguments_fail_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let file = small_scenario(tmp.path(), 1, 1);
    let (code, stderr) = run_err(mortal().arg("run").arg(&file).args(["--shard", "2/2"]));
    assert_eq!(code, 2, "{stderr}");
    let (code, stderr) = run_err(mortal().arg("run").arg(tmp.path().join("nope.toml")));
    assert_ne!(code, 0);
    assert!(stderr.contains("nope.toml"), "{stderr}");
    // MNIST files missing: the sweep stops before any run, naming the file.
    let mnist = tmp.path().join("mnist.toml");
    std::fs::write(
        &mnist,
        "version = 1\nname = \"m\"\n[data]\ndataset = \"mnist\"\n",
    )
    .unwrap();
    let (code, stderr) = run_err(
        mortal()
            .arg("--data-dir")
            .arg(tmp.path())
            .arg("run")
            .arg(&mnist)
            .arg("--out")
            .arg(tmp.path().join("m")),
    );
    assert_eq!(code, 3, "{stderr}");
}

/// `mortal run --set key=value` changes a setting without editing the file; a bad key or
/// value is refused on one line naming it.
#[test]
fn run_set_overrides_scenario_settings() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q");
    run_ok(
        mortal()
            .args([
                "run",
                "scenarios/quickstart.toml",
                "--smoke",
                "-q",
                "--no-plot",
            ])
            .args(["--set", "train.epochs=1", "--set", "train.energy=pcm"])
            .args(["--set", "sweep.seeds=[5]", "--out"])
            .arg(&out),
    );
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r.contains(",5,")), "{csv}");
    let run = std::fs::read_dir(out.join("runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let r = read_json(&run.path().join("results.json"));
    assert_eq!(r["cost"]["energy_model"], "pcm");
    for (set, want) in [
        ("train.epochz=2", "train.epochz"),
        ("train.epochs", "expected KEY=VALUE"),
        ("name.x=1", "is not a table"),
        ("train.energy=memristor", "memristor"),
    ] {
        let (code, err) = run_err(
            mortal()
                .args([
                    "run",
                    "scenarios/quickstart.toml",
                    "--smoke",
                    "-q",
                    "--set",
                    set,
                    "--out",
                ])
                .arg(dir.path().join("bad")),
        );
        assert_eq!(code, 2, "{set}: {err}");
        assert!(err.contains(want), "{set}: {err}");
    }
}
