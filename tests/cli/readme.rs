//! Every `mortal …` command in the shell blocks of the README and of the book's pages
//! (`docs/src/**/*.md`) is one the argument parser accepts (optional `[…]` parts with and
//! without, the first of `a|b` alternatives, placeholders filled in), and runs at smoke
//! size, so neither can drift from the flags. The commands that matter most also run end
//! to end in the other tests (quickstart, every shipped scenario at smoke size,
//! train/eval/distill/plot/merge/device/bench).

use clap::Parser;

use crate::common::mortal;
use clap::error::ErrorKind;

/// The shell lines of a Markdown text's ```sh blocks, continuations joined.
fn shell_lines(readme: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_sh = false;
    let mut cur = String::new();
    for line in readme.lines() {
        let t = line.trim();
        if t.starts_with("```") {
            in_sh = t == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let t = t.strip_suffix('\\').map_or(t.to_string(), |s| {
            cur.push_str(s);
            cur.push(' ');
            String::new()
        });
        if t.is_empty() && line.trim().ends_with('\\') {
            continue;
        }
        cur.push_str(&t);
        out.push(std::mem::take(&mut cur));
    }
    out
}

/// Drops a trailing `# comment` (outside quotes).
fn uncomment(line: &str) -> &str {
    let mut quote = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if i == 0 || line[..i].ends_with(' ') => return &line[..i],
            _ => {}
        }
    }
    line
}

/// The two readings of a command with optional parts: without them, and with them.
fn variants(cmd: &str) -> Vec<String> {
    let mut without = String::new();
    let mut with = String::new();
    let mut depth = 0;
    for c in cmd.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ => {
                if depth == 0 {
                    without.push(c);
                }
                with.push(c);
            }
        }
    }
    vec![without, with]
}

/// Shell words with placeholders filled and alternatives resolved.
fn words(cmd: &str) -> Vec<String> {
    cmd.split_whitespace()
        .map(|w| {
            let w = w.trim_matches(|c| c == '\'' || c == '"');
            let w = w.split('|').next().unwrap_or(w);
            let mut s = String::new();
            let mut in_ph = false;
            for c in w.chars() {
                match c {
                    '<' => {
                        in_ph = true;
                        s.push('x');
                    }
                    '>' => in_ph = false,
                    _ if !in_ph => s.push(c),
                    _ => {}
                }
            }
            // Shell variables: a Slurm task index, the book's loop over CIFAR nets.
            s.replace("$SLURM_ARRAY_TASK_ID", "0")
                .replace("$net", "cifar-local2")
        })
        .filter(|w| !w.is_empty())
        .collect()
}

#[test]
fn every_readme_command_parses() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for cmd in readme_command_lines() {
        for v in variants(&cmd) {
            let w = words(&v);
            checked += 1;
            if let Err(e) = mortal_cli::cli::Cli::try_parse_from(&w)
                && !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
            {
                failures.push(format!("{}\n    -> {}", w.join(" "), e.render()));
            }
        }
    }
    assert!(
        checked >= 30,
        "only {checked} README and book commands found"
    );
    assert!(
        failures.is_empty(),
        "README and book commands the CLI refuses:\n{}",
        failures.join("\n")
    );
}

/// The book's Markdown pages under `docs/src`, sorted by path (symlinked folders, such as
/// `docs/src/plots`, not followed).
fn book_pages() -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            let path = entry.path();
            if kind.is_dir() {
                walk(&path, out);
            } else if kind.is_file() && path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&super::common::root().join("docs/src"), &mut out);
    out.sort();
    out
}

/// The README's and then the book's `mortal …` command lines, in order (`cargo run
/// --release --` read as `mortal`; `DIR...` as two directories; lines that only show what
/// changes, `mortal distill ... --transfer …`, left out).
fn readme_command_lines() -> Vec<String> {
    let mut texts = vec![include_str!("../../README.md").to_string()];
    let pages = book_pages();
    assert!(pages.len() >= 10, "only {} book pages found", pages.len());
    texts.extend(pages.iter().map(|p| std::fs::read_to_string(p).unwrap()));
    let mut out = Vec::new();
    for line in texts.iter().flat_map(|t| shell_lines(t)) {
        for part in uncomment(&line).split(';') {
            let part = part.trim();
            let cmd = if let Some(rest) = part.strip_prefix("cargo run --release -- ") {
                format!("mortal {rest}")
            } else if part.starts_with("mortal ") {
                part.to_string()
            } else {
                continue;
            };
            if cmd.contains(" ... ") {
                continue;
            }
            out.push(cmd.replace("DIR...", "d1 d2"));
        }
    }
    out
}

/// The README's and the book's commands as words, optional parts left out.
fn readme_commands() -> Vec<Vec<String>> {
    readme_command_lines()
        .iter()
        .map(|c| words(&variants(c)[0]))
        .collect()
}

/// Sets `flag` to `value` (replacing or appending).
fn set(w: &mut Vec<String>, flag: &str, value: &str) {
    match w.iter().position(|x| x == flag) {
        Some(i) if i + 1 < w.len() => w[i + 1] = value.to_string(),
        _ => {
            w.push(flag.to_string());
            w.push(value.to_string());
        }
    }
}

/// Every README and book command runs at smoke size: trainings with 300 images, 1 epoch and at
/// most 32 units a layer, scenarios with `--smoke`, placeholders pointing at runs made
/// earlier in the same test, in a scratch directory. Only what cannot run here is left
/// out, and said: downloads (`data fetch`), and the quickstart (its own test runs it).
#[test]
fn every_readme_command_runs_at_smoke_size() {
    let root = &super::common::root();
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    std::os::unix::fs::symlink(root.join("scenarios"), cwd.join("scenarios")).unwrap();
    // An empty MORTAL_DATA means unset, as it does to `mortal` itself.
    let data = std::env::var_os("MORTAL_DATA").filter(|d| !d.is_empty());
    let run = |w: &[String]| {
        let mut c = mortal();
        c.current_dir(cwd).args(&w[1..]);
        if let Some(d) = &data {
            c.env("MORTAL_DATA", d);
        }
        c.output().unwrap()
    };
    // A trained run (FF on a chip) for eval, plot and distill, and two shards to merge.
    let teacher: Vec<String> = "mortal train --dataset synthetic --layers 32,32 --epochs 1 \
        --train-limit 300 --eval-limit 100 --chip reram --out made/teacher -q"
        .split_whitespace()
        .map(String::from)
        .collect();
    assert!(run(&teacher).status.success());
    // A run stopped right after its first resumable state (as `kill -9` would), for
    // `mortal train --resume`.
    let stopped = mortal()
        .current_dir(cwd)
        .args(
            "train --dataset synthetic --layers 16 --epochs 2 --train-limit 200 --eval-limit 50 \
             --checkpoint-every 1 --out made/stopped -q"
                .split_whitespace(),
        )
        .env("MORTAL_ABORT_AFTER", "latest")
        .output()
        .unwrap();
    assert!(!stopped.status.success() && cwd.join("made/stopped/resume/latest").is_file());
    for s in 0..2 {
        let w: Vec<String> = format!(
            "mortal run scenarios/quickstart.toml --smoke --shard {s}/2 --out made/shard{s} -q"
        )
        .split_whitespace()
        .map(String::from)
        .collect();
        assert!(run(&w).status.success());
    }
    let (mut ran, mut skipped, mut failures) = (0, Vec::new(), Vec::new());
    for (i, mut w) in readme_commands().into_iter().enumerate() {
        let sub = w.get(1).cloned().unwrap_or_default();
        match sub.as_str() {
            "quickstart" => {
                skipped.push("quickstart (its own test)".to_string());
                continue;
            }
            "data" if w.get(2).is_some_and(|s| s == "fetch") => {
                skipped.push(w.join(" "));
                continue;
            }
            "data" if data.is_none() => {
                skipped.push(format!("{} (no MORTAL_DATA)", w.join(" ")));
                continue;
            }
            "train" if w.iter().any(|x| x == "--resume") => {
                set(&mut w, "--resume", "made/stopped");
            }
            "train" => {
                if let Some(k) = w.iter().position(|x| x == "--layers") {
                    let small: Vec<String> = w[k + 1]
                        .split(',')
                        .map(|v| {
                            v.parse::<usize>()
                                .map_or(v.to_string(), |n| n.min(32).to_string())
                        })
                        .collect();
                    w[k + 1] = small.join(",");
                }
                let real = data.is_some();
                if let Some(k) = w.iter().position(|x| x == "--dataset") {
                    let d = w[k + 1].clone();
                    if d.starts_with("cifar") || (!real && d != "synthetic") {
                        w[k + 1] = if d.starts_with("cifar") {
                            "synthetic-color"
                        } else {
                            "synthetic"
                        }
                        .into();
                    }
                }
                set(&mut w, "--epochs", "1");
                set(&mut w, "--train-limit", "300");
                set(&mut w, "--eval-limit", "100");
                if !w.iter().any(|x| x == "--out") {
                    set(&mut w, "--out", &format!("made/train{i}"));
                }
                w.push("--force".into());
            }
            "eval" => set(&mut w, "--checkpoint", "made/teacher"),
            "plot" => {
                let target = w
                    .get(2)
                    .filter(|p| p.as_str() != "runs/x" && cwd.join(p).exists())
                    .cloned();
                w.truncate(2);
                w.push(target.unwrap_or_else(|| "made/teacher".into()));
            }
            "merge" => {
                w.truncate(2);
                w.extend(["made/merged", "made/shard0", "made/shard1"].map(String::from));
            }
            "distill" => {
                set(&mut w, "--teacher", "made/teacher");
                set(&mut w, "--transfer", "100");
                set(&mut w, "--epochs", "1");
                set(&mut w, "--eval-limit", "100");
                set(&mut w, "--out", &format!("made/distill{i}"));
            }
            "run" => {
                if !w.iter().any(|x| x == "--smoke") {
                    w.push("--smoke".into());
                }
                if !w.iter().any(|x| x == "--out") {
                    set(&mut w, "--out", &format!("made/run{i}"));
                }
            }
            "bench" => {
                w.push("--quick".into());
                set(&mut w, "--only", "ff-train 2x100 b100");
            }
            _ => {}
        }
        if !w.iter().any(|x| x == "-q" || x == "--help") && sub != "device" && sub != "data" {
            w.push("-q".into());
        }
        let o = run(&w);
        ran += 1;
        if !o.status.success() {
            failures.push(format!(
                "{}\n    -> {}",
                w.join(" "),
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
    }
    eprintln!("README and book commands: {ran} ran at smoke size, skipped: {skipped:?}");
    assert!(ran >= 25, "only {ran} README and book commands ran");
    assert!(
        failures.is_empty(),
        "README and book commands that failed at smoke size:\n{}",
        failures.join("\n")
    );
}
