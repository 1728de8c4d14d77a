//! `mortal quickstart`: a small Forward-Forward and a small backprop run on the built-in
//! synthetic dataset (no download), their test errors, and a plot of the training curves.

use std::path::{Path, PathBuf};

use crate::data::{DataSource, DatasetKind};
use crate::error::Result;
use crate::progress::Reporter;
use crate::train::{self, Algo, RunOptions, RunResults, TrainConfig};

/// The two quickstart configurations: FF and BP, 2×500 on the synthetic set.
pub fn configs() -> Vec<TrainConfig> {
    let base = TrainConfig {
        dataset: DatasetKind::Synthetic,
        layers: crate::train::layers::dense(&[500, 500]),
        batch: 100,
        seed: 1,
        eval_every: 5,
        ..TrainConfig::default()
    };
    vec![
        TrainConfig {
            algo: Algo::Ff,
            epochs: 20,
            ..base.clone()
        },
        TrainConfig {
            algo: Algo::Bp,
            epochs: 10,
            ..base
        },
    ]
}

/// Runs both, writes `out/ff`, `out/bp` and `plots/quickstart.{png,svg}`.
pub fn run(out: &Path, plots: &Path, rep: &Reporter) -> Result<Vec<RunResults>> {
    let mut results = Vec::new();
    let mut curves: Vec<(String, PathBuf)> = Vec::new();
    let data = crate::data::load(DatasetKind::Synthetic, &DataSource::default())?;
    for cfg in configs() {
        let dir = out.join(cfg.algo.name());
        rep.line(&format!(
            "quickstart: {} {} on {} for {} epochs",
            cfg.algo,
            crate::train::layers::display(&cfg.layers),
            cfg.dataset,
            cfg.epochs
        ));
        let r = train::run(
            &cfg,
            &data,
            &RunOptions {
                out: Some(dir.clone()),
                reporter: rep.clone(),
                checkpoint: true,
                count: true,
            },
        )?;
        crate::cli::print_result_line(&r);
        curves.push((
            format!("{} ({:.2}% test)", cfg.algo, 100.0 * r.test_error),
            dir,
        ));
        results.push(r);
    }
    let png = crate::plot::training_curves(
        &curves,
        "Quickstart: synthetic glyphs, 2×500, digital",
        &plots.join("quickstart"),
    )?;
    println!("results in {}, plot in {}", out.display(), png.display());
    Ok(results)
}
