//! `mortal quickstart`: the mission in two minutes, on the built-in synthetic set (no
//! download).
//!
//! 1. Forward-Forward trained **in situ** on a `harsh` chip (#1: device variation, noisy
//!    converters, per-neuron nonlinearities, the black box between layers);
//! 2. the same learned weights evaluated on the **ideal** digital network (what the chip
//!    "knows" once its own nonlinearities are gone);
//! 3. **mortality**: its conductances copied onto chip #2 of the same family;
//! 4. **distillation** into chip #2 (FF on chip #2, taught by chip #1's outputs);
//! 5. backprop trained digitally and **deployed** onto chip #2, for comparison.
//!
//! Prints one table, writes `out/summary.json` (the numbers), every run's directory, and
//! `plots/quickstart.{png,svg}`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use mortal::data::synthetic::SyntheticConfig;
use mortal::data::{DataSource, DatasetKind, Splits};
use mortal::error::Result;
use mortal::progress::Reporter;
use mortal::train::{self, Algo, ChipConfig, RunOptions, TrainConfig};

/// The chip family of the quickstart and its two instances.
const CHIP: &str = "harsh";
const TRAINED_ON: u64 = 1;
const SECOND: u64 = 2;
/// Images chip #2 has of its own: the first of the training set, their labels unread by
/// the distilled student (the scratch baseline uses them).
const STUDENT_IMAGES: usize = 1000;
/// The student's epochs over them (the first `STUDENT_HEAD_EPOCHS` re-fit only the head).
const STUDENT_EPOCHS: usize = 24;
const STUDENT_HEAD_EPOCHS: usize = 4;

/// `summary.json`: every error is a test-set fraction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Chip family and instances.
    pub chip: String,
    pub trained_chip_seed: u64,
    pub second_chip_seed: u64,
    /// FF trained in situ on its own chip.
    pub chip_error: f64,
    /// The same weights on the ideal digital network.
    pub ideal_error: f64,
    /// Its conductances copied onto the second chip.
    pub copied_error: f64,
    /// FF on the second chip distilled from the first.
    pub distilled_error: f64,
    /// FF trained from scratch on the second chip with the same budget.
    pub scratch_error: f64,
    /// Digital backprop (the host's model).
    pub bp_digital_error: f64,
    /// That backprop network deployed onto the second chip.
    pub bp_deployed_error: f64,
    /// Wall time of the whole quickstart, s.
    pub seconds: f64,
    /// Where each part was written.
    pub runs: Vec<PathBuf>,
}

/// The synthetic data of the quickstart.
pub fn data_config() -> SyntheticConfig {
    SyntheticConfig {
        seed: 0,
        train: 6000,
        valid: 1000,
        test: 1000,
    }
}

/// The FF run on chip #1 and the backprop run deployed onto chip #2.
pub fn configs() -> Result<(TrainConfig, TrainConfig)> {
    let base = TrainConfig {
        dataset: DatasetKind::Synthetic,
        synthetic: data_config(),
        layers: mortal::train::layers::dense(&[256, 256]),
        batch: 100,
        seed: 1,
        eval_every: 0,
        ..TrainConfig::default()
    };
    let ff = TrainConfig {
        algo: Algo::Ff,
        epochs: 20,
        chip: Some(ChipConfig::from_source(CHIP, TRAINED_ON, 1.0)?),
        ..base.clone()
    };
    let bp = TrainConfig {
        algo: Algo::BpDeploy,
        epochs: 8,
        chip: Some(ChipConfig::from_source(CHIP, SECOND, 1.0)?),
        ..base
    };
    Ok((ff, bp))
}

fn opts(dir: &Path, rep: &Reporter) -> RunOptions {
    RunOptions {
        out: Some(dir.to_path_buf()),
        reporter: rep.clone(),
        checkpoint: true,
        count: true,
    }
}

/// The test error of a chip-trained FF checkpoint on the ideal digital network: its
/// effective weights (what the conductances encode, in network units) loaded into
/// `DigitalNet` with the same learner (softmax head), evaluated by the same method.
fn ideal_error(dir: &Path, data: &Splits, method: &str) -> Result<f64> {
    let (meta, tensors) = train::checkpoint::load(dir)?;
    let mut cfg = meta.config.clone();
    cfg.chip = None;
    let mut trainer = train::trainers::build(&cfg)?;
    let topology = cfg.ff_topology()?;
    let digital = train::trainers::SubstrateId {
        kind: "digital".into(),
        identity: serde_json::json!({ "topology": topology }),
    };
    trainer.restore(&tensors, &digital)?;
    let (_, test) = train::evaluate(trainer.as_mut(), data, cfg.seed)?;
    Ok(test.by_name(method).unwrap_or(f64::NAN))
}

/// Runs the quickstart; writes into `out` and `plots`.
pub fn run(out: &Path, plots: &Path, rep: &Reporter) -> Result<Summary> {
    let start = Instant::now();
    let (ff, bp) = configs()?;
    let data = mortal::data::load(
        DatasetKind::Synthetic,
        &DataSource {
            synthetic: data_config(),
            ..DataSource::default()
        },
    )?;
    let ff_dir = out.join("ff-harsh-1");
    rep.line(&format!(
        "quickstart 1/4: FF in situ on {CHIP} chip #{TRAINED_ON} ({} on synthetic glyphs, {} epochs)",
        mortal::train::layers::display(&ff.layers),
        ff.epochs
    ));
    let trained = train::run(&ff, &data, &opts(&ff_dir, rep))?;
    rep.line("quickstart 2/4: the same weights on the ideal digital network");
    let ideal = ideal_error(&ff_dir, &data, &trained.eval_method)?;

    rep.line(&format!(
        "quickstart 3/4: copy its conductances to chip #{SECOND}, and distil it there from \
         {STUDENT_IMAGES} unlabelled images"
    ));
    let distill_dir = out.join("distill-harsh-2");
    let teacher = train::distill::load_teacher(&ff_dir)?;
    let student = train::distill::student_config(
        &teacher.meta.config,
        ChipConfig::from_source(CHIP, SECOND, 1.0)?,
        STUDENT_EPOCHS,
        ff.seed,
        STUDENT_IMAGES,
    );
    let settings = train::distill::DistillSettings {
        teacher: ff_dir.clone(),
        transfer: STUDENT_IMAGES,
        source_images: Default::default(),
        distill: mortal::learn::distill::DistillConfig {
            unlabelled: true,
            head_epochs: STUDENT_HEAD_EPOCHS,
            ..Default::default()
        },
        goodness: false,
        min_samples: 0,
        baselines: train::distill::BaselineSet::Basic,
        student: TrainConfig {
            eval_every: 0,
            ..student
        },
    };
    let shared = train::distill::Teacher::new(&teacher, settings.distill.source)?;
    let d = train::distill::run(&settings, &teacher, &shared, &data, &distill_dir, rep, None)?;

    rep.line(&format!(
        "quickstart 4/4: backprop trained digitally, deployed onto chip #{SECOND}"
    ));
    let bp_dir = out.join("bp-deploy-harsh-2");
    let deployed = train::run(&bp, &data, &opts(&bp_dir, rep))?;

    // Error rates as the fractions they are (0.237, not 0.23700000000000002).
    let r6 = |x: f64| (x * 1e6).round() / 1e6;
    let summary = Summary {
        chip: CHIP.into(),
        trained_chip_seed: TRAINED_ON,
        second_chip_seed: SECOND,
        chip_error: r6(trained.test_error),
        ideal_error: r6(ideal),
        copied_error: r6(d.copy_test_error),
        distilled_error: r6(d.test_error),
        scratch_error: r6(d.scratch_test_error.unwrap_or(f64::NAN)),
        bp_digital_error: r6(deployed.test_error_digital.unwrap_or(f64::NAN)),
        bp_deployed_error: r6(deployed.test_error),
        seconds: start.elapsed().as_secs_f64(),
        runs: vec![ff_dir, distill_dir, bp_dir],
    };
    mortal::fsutil::write_json(&out.join("summary.json"), &summary)?;
    let png = draw(&summary, &plots.join("quickstart"))?;
    print_table(&summary);
    println!(
        "numbers in {}, figure {}",
        out.join("summary.json").display(),
        png.display()
    );
    Ok(summary)
}

/// The rows of the table and figure: (label, error).
fn rows(s: &Summary) -> Vec<(String, f64)> {
    vec![
        (
            format!("FF in situ, own chip #{}", s.trained_chip_seed),
            s.chip_error,
        ),
        ("same weights, ideal digital".into(), s.ideal_error),
        (
            format!("copied to chip #{}", s.second_chip_seed),
            s.copied_error,
        ),
        (
            format!(
                "distilled into chip #{} ({STUDENT_IMAGES} images, no labels)",
                s.second_chip_seed
            ),
            s.distilled_error,
        ),
        (
            format!(
                "FF from scratch, chip #{} (same images, labels)",
                s.second_chip_seed
            ),
            s.scratch_error,
        ),
        ("backprop, digital".into(), s.bp_digital_error),
        (
            format!("backprop deployed, chip #{}", s.second_chip_seed),
            s.bp_deployed_error,
        ),
    ]
}

/// Prints the summary table.
pub fn print_table(s: &Summary) {
    println!(
        "\nquickstart ({} chips, synthetic glyphs), test error:",
        s.chip
    );
    for (label, e) in rows(s) {
        println!("  {label:<50} {:>6.2} %", 100.0 * e);
    }
    println!("  (FF errors by the softmax head; backprop by its output layer)");
    println!("  ({:.0} s)", s.seconds);
}

/// Test error per stage, one marker per stage (categorical x axis).
fn draw(s: &Summary, stem: &Path) -> Result<PathBuf> {
    let r = rows(s);
    debug_assert_eq!(r.len(), 7);
    let chart = crate::plot::LineChart {
        title: format!(
            "Quickstart: FF on {} chips, mortality and distillation",
            s.chip
        ),
        x_label: format!(
            "FF on chip #{} · its weights ideal · copied to #{} · distilled into #{} · FF from \
             scratch on #{} · backprop digital · deployed on #{}",
            s.trained_chip_seed,
            s.second_chip_seed,
            s.second_chip_seed,
            s.second_chip_seed,
            s.second_chip_seed
        ),
        y_label: "test error (%)".into(),
        series: vec![crate::plot::Series {
            label: "test error".into(),
            points: r
                .iter()
                .enumerate()
                .map(|(i, (_, e))| (i as f64, 100.0 * e))
                .collect(),
            ..crate::plot::Series::default()
        }],
        x_ticks: [
            "own chip",
            "ideal",
            "copied",
            "distilled",
            "scratch",
            "BP digital",
            "BP deployed",
        ]
        .iter()
        .enumerate()
        .map(|(i, l)| (i as f64, (*l).to_string()))
        .collect(),
        ..crate::plot::LineChart::default()
    };
    crate::plot::line_chart(&chart, stem)
}
