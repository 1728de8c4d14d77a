//! `--smoke`: a tiny version of a scenario that runs in seconds, so every shipped
//! scenario can be exercised by the tests on a machine without data.

use crate::train::layers::LayerSpec;
use std::path::{Path, PathBuf};

use super::sweep::Plan;
use crate::data::DatasetKind;
use crate::train::TrainConfig;

/// Training images of a smoke run.
pub const TRAIN_IMAGES: usize = 300;
/// Validation and test images of a smoke run.
pub const EVAL_IMAGES: usize = 100;
/// Hidden layers of a smoke run, at most.
pub const MAX_LAYERS: usize = 2;
/// Units per hidden layer of a smoke run, at most.
pub const MAX_UNITS: usize = 64;

/// How to shrink a scenario.
#[derive(Clone, Debug)]
pub struct Smoke {
    /// Data directory to look for MNIST / Fashion-MNIST in.
    pub data_dir: PathBuf,
}

impl Smoke {
    /// Keeps the first and last value of each axis and the first chip seed and seed.
    pub fn shrink_plan(&self, plan: &mut Plan) {
        for a in &mut plan.axes {
            if a.values.len() > 2 {
                let last = a.values.pop().expect("non-empty");
                a.values.truncate(1);
                a.values.push(last);
            }
        }
        for v in [&mut plan.chip_seeds, &mut plan.seeds]
            .into_iter()
            .flatten()
        {
            v.truncate(1);
        }
    }

    /// Shrinks one run: 1 epoch, ~300 training and ~100 evaluation images, at most 2×64
    /// hidden units, the synthetic set when the dataset's files are missing.
    pub fn apply(&self, cfg: &mut TrainConfig) {
        cfg.epochs = 1;
        cfg.train_limit = Some(cfg.train_limit.unwrap_or(usize::MAX).min(TRAIN_IMAGES));
        cfg.eval_limit = Some(cfg.eval_limit.unwrap_or(usize::MAX).min(EVAL_IMAGES));
        cfg.layers.truncate(MAX_LAYERS);
        for l in &mut cfg.layers {
            match l {
                LayerSpec::Dense(w) => *w = (*w).min(MAX_UNITS),
                // A local layer keeps its windows; only its channels shrink.
                LayerSpec::Local(ll) => {
                    let per_loc = (MAX_UNITS / (ll.grid[0] * ll.grid[1]).max(1)).max(1);
                    ll.channels = ll.channels.min(per_loc);
                }
            }
        }
        cfg.ff.eval_from = cfg.ff.eval_from.min(cfg.layers.len());
        if !cfg.dataset.is_synthetic() && !files_present(cfg.dataset, &self.data_dir) {
            cfg.dataset = if cfg.dataset.geometry().c == 3 {
                DatasetKind::SyntheticColor
            } else {
                DatasetKind::Synthetic
            };
        }
        let s = &mut cfg.synthetic;
        s.train = s.train.min(TRAIN_IMAGES);
        s.valid = s.valid.min(EVAL_IMAGES);
        s.test = s.test.min(EVAL_IMAGES);
    }
}

/// Whether the official files of `kind` are in data directory `dir`.
pub fn files_present(kind: DatasetKind, dir: &Path) -> bool {
    if kind == DatasetKind::Cifar10 {
        let f = crate::data::cifar::folder(dir);
        return crate::data::cifar::FILES
            .iter()
            .all(|n| f.join(n).is_file());
    }
    crate::data::files::manifest(kind).is_ok_and(|m| {
        m.files.iter().all(|f| {
            crate::data::files::dataset_dir(kind, dir)
                .join(f.name)
                .is_file()
        })
    })
}
