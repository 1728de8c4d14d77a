//! Every `mortal …` command in the README's shell blocks is one the argument parser
//! accepts (optional `[…]` parts with and without, the first of `a|b` alternatives,
//! placeholders filled in), so the README cannot drift from the flags. The commands that
//! matter most also run end to end in the other tests (quickstart, every shipped scenario
//! at smoke size, train/eval/distill/plot/merge/device/bench).

use clap::Parser;
use clap::error::ErrorKind;

/// The shell lines of the README's ```sh blocks, continuations joined.
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
            s.replace("$SLURM_ARRAY_TASK_ID", "0")
        })
        .filter(|w| !w.is_empty())
        .collect()
}

#[test]
fn every_readme_command_parses() {
    let readme = include_str!("../../README.md");
    let mut checked = 0;
    let mut failures = Vec::new();
    for line in shell_lines(readme) {
        for part in uncomment(&line).split(';') {
            let part = part.trim();
            let cmd = if let Some(rest) = part.strip_prefix("cargo run --release -- ") {
                format!("mortal {rest}")
            } else if part.starts_with("mortal ") {
                part.to_string()
            } else {
                continue;
            };
            // `mortal distill ... --transfer 1,2` shows only what changes: not a command.
            if cmd.contains(" ... ") || cmd.contains("...") && !cmd.contains("DIR...") {
                continue;
            }
            for v in variants(&cmd.replace("DIR...", "d1 d2")) {
                let w = words(&v);
                checked += 1;
                if let Err(e) = mortal::cli::Cli::try_parse_from(&w)
                    && !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
                {
                    failures.push(format!("{}\n    -> {}", w.join(" "), e.render()));
                }
            }
        }
    }
    assert!(checked >= 30, "only {checked} README commands found");
    assert!(
        failures.is_empty(),
        "README commands the CLI refuses:\n{}",
        failures.join("\n")
    );
}
