//! Property-based fuzzing of every input a user hands `mortal`: scenario files, chip
//! specs, IDX data files, checkpoints and command lines. Each property mutates a valid
//! input and asserts that the program answers with success or a clean error — never a
//! panic, never more than [`LIMIT`] per case.
//!
//! `.ci/run` runs [`cases`] = 500 cases per property (about 20 s in all); a longer local
//! campaign: `MORTAL_FUZZ_CASES=20000 cargo test --release fuzz`. Inputs that fail are
//! persisted by proptest in `src/regressions/fuzz.txt` (commit it: they are replayed
//! first on every run); the hand-found reproducers of the reliability issue are CLI tests
//! in `tests/cli/limits.rs`.

use std::path::Path;
use std::time::{Duration, Instant};

use clap::Parser;
use proptest::prelude::*;

/// Longest a single case may take.
const LIMIT: Duration = Duration::from_secs(10);

/// Cases per property (`MORTAL_FUZZ_CASES`, default 500).
fn cases() -> u32 {
    std::env::var("MORTAL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
        )),
        ..ProptestConfig::default()
    }
}

/// Values that break careless parsers and size checks.
const NASTY: [&str; 24] = [
    "0",
    "-1",
    "1",
    "2",
    "-0.0",
    "1e308",
    "-1e308",
    "1e-310",
    "nan",
    "inf",
    "-inf",
    "18446744073709551615",
    "9223372036854775807",
    "4294967296",
    "1000000000",
    "65536",
    "0.5",
    "\"\"",
    "\"x\"",
    "[]",
    "[0]",
    "true",
    "{}",
    "3.4e38",
];

/// A mutation of a text: replace the `k`-th number by a nasty value, delete or duplicate
/// a line, or flip a byte.
#[derive(Clone, Debug)]
enum Mutation {
    Number(usize, usize),
    DeleteLine(usize),
    DuplicateLine(usize),
    Byte(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 0..NASTY.len()).prop_map(|(k, v)| Mutation::Number(k, v)),
        1 => any::<usize>().prop_map(Mutation::DeleteLine),
        1 => any::<usize>().prop_map(Mutation::DuplicateLine),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(k, b)| Mutation::Byte(k, b)),
    ]
}

fn mutate(text: &str, m: &Mutation) -> String {
    match m {
        Mutation::Number(k, v) => {
            // Spans of digits (with sign, dot, exponent) outside of quotes are numbers.
            let bytes = text.as_bytes();
            let mut spans = Vec::new();
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i].is_ascii_digit() {
                    let s = if i > 0 && bytes[i - 1] == b'-' {
                        i - 1
                    } else {
                        i
                    };
                    let mut e = i;
                    while e < bytes.len()
                        && (bytes[e].is_ascii_alphanumeric() || b".+-_".contains(&bytes[e]))
                    {
                        e += 1;
                    }
                    spans.push((s, e));
                    i = e;
                } else {
                    i += 1;
                }
            }
            if spans.is_empty() {
                return text.to_string();
            }
            let (s, e) = spans[k % spans.len()];
            format!("{}{}{}", &text[..s], NASTY[*v], &text[e..])
        }
        Mutation::DeleteLine(k) | Mutation::DuplicateLine(k) => {
            let mut lines: Vec<&str> = text.lines().collect();
            if lines.is_empty() {
                return text.to_string();
            }
            let i = k % lines.len();
            if matches!(m, Mutation::DeleteLine(_)) {
                lines.remove(i);
            } else {
                lines.insert(i, lines[i]);
            }
            lines.join("\n")
        }
        Mutation::Byte(k, b) => {
            let mut bytes = text.as_bytes().to_vec();
            if bytes.is_empty() {
                return text.to_string();
            }
            let i = k % bytes.len();
            bytes[i] = *b;
            String::from_utf8_lossy(&bytes).to_string()
        }
    }
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    assert!(t.elapsed() < LIMIT, "{what} took {:?}", t.elapsed());
    out
}

fn scenario_texts() -> Vec<(String, String)> {
    let root = &Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut out = Vec::new();
    for dir in ["scenarios", "tests/scenarios/good"] {
        let Ok(rd) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "toml") {
                out.push((
                    p.display().to_string(),
                    std::fs::read_to_string(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// Loads (parses, resolves, expands) a scenario text as `mortal run --dry-run` does.
fn load_scenario(dir: &Path, text: &str) {
    let p = dir.join("s.toml");
    std::fs::write(&p, text).unwrap();
    let _ = timed("scenario", || {
        mortal::scenario::runner::Prepared::load(&p, None)
    });
}

/// A spec text: parsed, validated, scaled, built into a small chip that runs a batch.
fn load_spec(text: &str) {
    use mortal::linalg::Mat;
    use mortal::substrate::{Activation, Substrate, Topology};
    let _ = timed("chip spec", || -> mortal::error::Result<()> {
        let spec: mortal::substrate::HardwareSpec = toml::from_str(text)
            .map_err(|e| mortal::error::Error::param("spec", "", e.message()))?;
        spec.validate()?;
        for variation in [0.0, 1.0, 3.0] {
            let s = spec.scaled(variation);
            if s.validate().is_err() {
                continue;
            }
            let topo = Topology::uniform(vec![6, 4], Activation::Relu)?;
            let mut chip = mortal::substrate::Chip::new(&s, topo, 1, 1)?;
            let mut noise = mortal::rng::stream(1, "fuzz");
            let x = Mat::from_element(6, 3, 0.5);
            let (mut r, mut a) = (Mat::zeros(0, 0), Mat::zeros(0, 0));
            chip.forward(0, &x, &mut r, &mut a, &mut noise);
            let d = Mat::from_element(4, 3, 0.1);
            chip.update(
                0,
                mortal::substrate::Update::Outer {
                    x: &x,
                    d: &d,
                    scale: -0.1,
                    decay: 0.0,
                },
                &mut noise,
            );
            chip.advance_time(3600.0);
        }
        Ok(())
    });
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_scenario_files(file in any::<usize>(), ms in prop::collection::vec(mutation(), 1..4)) {
        let texts = scenario_texts();
        let (_, text) = &texts[file % texts.len()];
        let mut t = text.clone();
        for m in &ms {
            t = mutate(&t, m);
        }
        let dir = tempfile::tempdir().unwrap();
        load_scenario(dir.path(), &t);
    }

    #[test]
    fn fuzz_chip_specs(preset in 0..4usize, ms in prop::collection::vec(mutation(), 1..4)) {
        let name = mortal::substrate::device::presets::NAMES[preset % 4];
        let spec = mortal::substrate::device::presets::by_name(name).unwrap();
        let mut t = toml::to_string(&spec).unwrap();
        for m in &ms {
            t = mutate(&t, m);
        }
        load_spec(&t);
    }

    /// Mutated energy models: parsed and validated, or refused with an error, never a
    /// panic; an accepted model prices counts to finite, non-negative energy.
    #[test]
    fn fuzz_energy_models(which in 0..2usize, ms in prop::collection::vec(mutation(), 1..4)) {
        let mut t = [
            include_str!("../../mortal/src/cost/models/reram.toml"),
            include_str!("../../mortal/src/cost/models/pcm.toml"),
        ][which]
            .to_string();
        for m in &ms {
            t = mutate(&t, m);
        }
        if let Ok(model) = timed("energy model", || mortal::cost::EnergyModel::parse(&t, "fuzz.toml")) {
            let c = mortal::substrate::Counts {
                dac: 10,
                adc: 10,
                analog_macs: 100,
                pulses_up: 3,
                program_writes: 2,
                digital_flops: 50,
                ..Default::default()
            };
            let e = mortal::cost::price(&model, &c, (model.default_dac_bits, model.default_adc_bits), 1.0);
            prop_assert!(e.energy_j.is_finite() && e.energy_j >= 0.0, "{}", e.energy_j);
        }
    }

    #[test]
    fn fuzz_idx_files(
        dims in prop::collection::vec(0usize..40, 1..4),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in any::<usize>(),
        labels in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.gz");
        let n: usize = dims.iter().product();
        mortal::data::idx::write_gz(&p, &dims, &vec![7u8; n]).unwrap();
        // Mutate the uncompressed bytes (header and data), then recompress.
        let gz = std::fs::read(&p).unwrap();
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut raw).unwrap();
        for (k, b) in &flips {
            if !raw.is_empty() {
                let i = k % raw.len();
                raw[i] = *b;
            }
        }
        raw.truncate(cut % (raw.len() + 2));
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &raw).unwrap();
        std::fs::write(&p, enc.finish().unwrap()).unwrap();
        if labels {
            let _ = timed("idx labels", || mortal::data::idx::read_labels(&p));
        } else {
            let _ = timed("idx images", || mortal::data::idx::read_images(&p));
        }
    }

    #[test]
    fn fuzz_checkpoints(ms in prop::collection::vec(mutation(), 1..3), reseal in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let ck = dir.path().join("ck");
        checkpoint_fixture(&ck);
        let meta = ck.join("checkpoint.json");
        let mut t = std::fs::read_to_string(&meta).unwrap();
        for m in &ms {
            t = mutate(&t, m);
        }
        std::fs::write(&meta, t).unwrap();
        // An edited file is refused by the manifest; resealed (as an adversary could),
        // the loader's own checks must hold.
        if reseal {
            mortal::train::manifest::seal(&ck).unwrap();
        }
        let _ = timed("checkpoint", || mortal::train::load_checkpoint(&ck, None).map(|_| ()));
        let _ = timed("checkpoint on chip 2", || {
            mortal::train::load_checkpoint(&ck, Some(2)).map(|_| ())
        });
    }

    #[test]
    fn fuzz_command_lines(words in prop::collection::vec((0..FLAGS.len(), 0..VALUES.len()), 0..6), sub in 0..3usize) {
        let mut args = vec!["mortal".to_string(), ["train", "eval", "distill"][sub].to_string()];
        for (f, v) in words {
            args.push(FLAGS[f].to_string());
            args.push(VALUES[v].to_string());
        }
        timed("command line", || {
            if let Ok(cli) = crate::cli::Cli::try_parse_from(&args)
                && let crate::cli::Command::Train(t) = cli.command
                && let Ok(cfg) = t.to_config()
            {
                let _ = cfg.validate();
                let _ = cfg.default_out_dir();
            }
        });
    }
}

proptest! {
    #![proptest_config(config())]

    /// Mutated resumable states (their JSON edited, their tensor file's bytes flipped):
    /// a resume continues or is refused with an error, never a panic or a hang.
    #[test]
    fn fuzz_resumable_states(
        ms in prop::collection::vec(mutation(), 0..3),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..3),
        latest in prop::option::of("[a-z0-9./-]{0,20}"),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (cfg, data) = resume_fixture(dir.path());
        let rd = dir.path().join(mortal::train::resume::RESUME_DIR);
        let json = rd.join("state-e1.json");
        let mut t = std::fs::read_to_string(&json).unwrap();
        for m in &ms {
            t = mutate(&t, m);
        }
        std::fs::write(&json, t).unwrap();
        let st = rd.join("state-e1.safetensors");
        let mut bytes = std::fs::read(&st).unwrap();
        for (k, b) in &flips {
            let i = k % bytes.len();
            bytes[i] = *b;
        }
        std::fs::write(&st, bytes).unwrap();
        if let Some(l) = latest {
            std::fs::write(rd.join("latest"), l).unwrap();
        }
        let _ = timed("resume", || {
            let mut trainer = mortal::train::trainers::build(&cfg)?;
            mortal::train::run_resumable(
                &cfg,
                trainer.as_mut(),
                &data,
                &quiet_opts(dir.path()),
                mortal::train::resume::Checkpointing::Off,
                true,
            )
        });
    }

    /// Whatever a lock file holds (a killed writer's pid, garbage), taking the lock works.
    #[test]
    fn fuzz_lock_files(content in prop::collection::vec(any::<u8>(), 0..64)) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(mortal::fsutil::OUTPUT_LOCK), content).unwrap();
        let lock = mortal::fsutil::OutputLock::take(dir.path());
        prop_assert!(lock.is_ok(), "{lock:?}");
    }
}

/// A tiny digital run of `epochs` (8,8 on 20 synthetic images) and its data.
fn tiny_run(epochs: usize) -> (mortal::train::TrainConfig, mortal::data::Splits) {
    let cfg = mortal::train::TrainConfig {
        layers: mortal::train::layers::parse_list("8,8").unwrap(),
        epochs,
        train_limit: Some(20),
        eval_limit: Some(20),
        synthetic: mortal::data::synthetic::SyntheticConfig {
            train: 20,
            valid: 20,
            test: 20,
            ..Default::default()
        },
        ..Default::default()
    };
    let data = mortal::data::load(
        cfg.dataset,
        &mortal::data::DataSource {
            synthetic: cfg.synthetic.clone(),
            ..Default::default()
        },
    )
    .unwrap();
    (cfg, data)
}

fn quiet_opts(dir: &Path) -> mortal::train::RunOptions {
    mortal::train::RunOptions {
        out: Some(dir.to_path_buf()),
        reporter: mortal::progress::Reporter::quiet(),
        checkpoint: true,
        count: true,
    }
}

/// A run of 2 epochs stopped after the first, as a resumable state in `dir` (its
/// configuration and data returned).
fn resume_fixture(dir: &Path) -> (mortal::train::TrainConfig, mortal::data::Splits) {
    let (cfg, data) = tiny_run(2);
    // Train one epoch of the same run (a 1-epoch copy of it), then save what a 2-epoch
    // run has after its first epoch.
    let one = mortal::train::TrainConfig {
        epochs: 1,
        ..cfg.clone()
    };
    let mut trainer = mortal::train::trainers::build(&one).unwrap();
    mortal::train::run_resumable(
        &one,
        trainer.as_mut(),
        &data,
        &quiet_opts(dir),
        mortal::train::resume::Checkpointing::Off,
        false,
    )
    .unwrap();
    std::fs::rename(dir.join("epochs.csv"), dir.join("epochs.csv.partial")).unwrap();
    let (tensors, ledger) = trainer.resume_state().unwrap();
    let seeds = cfg.seeds();
    let meta = mortal::train::resume::ResumeMeta {
        format: mortal::train::resume::FORMAT,
        mortal_version: String::new(),
        config: cfg.clone(),
        epoch: 1,
        streams: mortal::train::resume::StreamState {
            negatives: mortal::rng::stream(seeds.negatives, "negatives"),
            noise: mortal::rng::stream(seeds.noise, "train"),
            jitter: mortal::rng::stream(1, "jitter"),
        },
        ledger: ledger.clone(),
        initial: ledger,
        trained: mortal::substrate::Ledger::new(0),
        train_seconds: 0.0,
        eval_seconds: 0.0,
        elapsed_seconds: 0.0,
        tensors_md5: String::new(),
        checkpoint_every: Some(1),
    };
    mortal::train::resume::save(dir, &meta, &tensors).unwrap();
    (cfg, data)
}

const FLAGS: [&str; 24] = [
    "--layers",
    "--epochs",
    "--batch",
    "--lr",
    "--momentum",
    "--weight-decay",
    "--chip",
    "--chip-seed",
    "--variation",
    "--train-limit",
    "--eval-limit",
    "--net",
    "--augment",
    "--negatives",
    "--phase-block",
    "--hybrid-blurs",
    "--threshold",
    "--temperature",
    "--iterations",
    "--damping",
    "--eval-window",
    "--algo",
    "--dataset",
    "--seed",
];

const VALUES: [&str; 26] = [
    "0",
    "-1",
    "1",
    "3",
    "nan",
    "inf",
    "-inf",
    "1e308",
    "18446744073709551615",
    "1000000000",
    "10,,10",
    "+10",
    "local:4x4x8:f10:s6",
    "local:0x0x0:f0:s0",
    "paper-local",
    "cifar-local3",
    "reram",
    "harsh",
    "jitter:2",
    "jitter:-1",
    "hybrid",
    "ff-recurrent",
    "bp",
    "synthetic-color",
    "3-5",
    "",
];

/// A tiny trained digital checkpoint in `dir` (built once per case; about a millisecond).
fn checkpoint_fixture(dir: &Path) {
    let (cfg, data) = tiny_run(1);
    mortal::train::run(&cfg, &data, &quiet_opts(dir)).unwrap();
}

/// Inputs the fuzzer once found failing, replayed by name.
mod regressions {
    use super::*;

    /// `ideal` preset with `crossbar.g_max = 1e308` (found by `fuzz_chip_specs`: it was
    /// accepted, overflowed f32 and panicked in programming).
    #[test]
    fn ideal_spec_with_a_huge_number() {
        let spec = mortal::substrate::device::presets::by_name("ideal").unwrap();
        let t = toml::to_string(&spec).unwrap();
        let m = Mutation::Number(8341938435009485427, 5);
        load_spec(&mutate(&t, &m));
    }

    /// `reram` with `device.dw_min = 1e-310` (found by `fuzz_chip_specs`: the pulse count
    /// of an update overflowed).
    #[test]
    fn spec_with_a_subnormal_setting() {
        let name = mortal::substrate::device::presets::NAMES[1];
        let spec = mortal::substrate::device::presets::by_name(name).unwrap();
        let t = toml::to_string(&spec).unwrap();
        let m = Mutation::Number(6862776965716726362, 7);
        let text = mutate(&t, &m);
        load_spec(&text);
    }
}
