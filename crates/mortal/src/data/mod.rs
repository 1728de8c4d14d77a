//! Datasets: the official MNIST / Fashion-MNIST IDX files, a built-in synthetic set,
//! the paper's train/validation/test split, and the negative-data generators.

pub mod augment;
pub mod cifar;
pub mod files;
pub mod idx;
pub mod negatives;
pub mod synthetic;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::linalg::Mat;

/// Image side length in pixels.
pub const SIDE: usize = 28;
/// Pixels per image (28 × 28).
pub const PIXELS: usize = SIDE * SIDE;
/// Number of classes in every dataset here.
pub const CLASSES: usize = 10;

/// A set of labelled images (28×28 grayscale unless built with
/// [`Dataset::with_geometry`]). Pixels are stored as bytes (0 = background, 255 = full
/// ink) and scaled to [0, 1] when a batch is gathered; a colour image's values are stored
/// location by location (`(y·w + x)·c + channel`, see [`crate::substrate::Geometry`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pixels: Vec<u8>,
    labels: Vec<u8>,
    geometry: crate::substrate::Geometry,
}

impl Dataset {
    /// Builds a dataset from row-major 28 × 28 images (`PIXELS` bytes each) and labels
    /// in 0..10.
    pub fn new(pixels: Vec<u8>, labels: Vec<u8>) -> Result<Self> {
        Self::with_geometry(pixels, labels, DatasetKind::Mnist.geometry())
    }

    /// Builds a dataset of images shaped `geometry` (`geometry.units()` bytes each).
    pub fn with_geometry(
        pixels: Vec<u8>,
        labels: Vec<u8>,
        geometry: crate::substrate::Geometry,
    ) -> Result<Self> {
        let dim = geometry.units();
        if pixels.len() != labels.len() * dim {
            return Err(Error::param(
                "dataset",
                format!("{} pixels, {} labels", pixels.len(), labels.len()),
                format!("expected {dim} values per label"),
            ));
        }
        if let Some((i, l)) = labels
            .iter()
            .enumerate()
            .find(|(_, l)| usize::from(**l) >= CLASSES)
        {
            return Err(Error::param(
                "dataset",
                format!("label {l} at index {i}"),
                "labels must be 0..=9",
            ));
        }
        Ok(Self {
            pixels,
            labels,
            geometry,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// All labels.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// Label of image `i`.
    pub fn label(&self, i: usize) -> usize {
        usize::from(self.labels[i])
    }

    /// Values per image (784 for 28 × 28 grayscale).
    pub fn pixels(&self) -> usize {
        self.geometry.units()
    }

    /// The shape of every image.
    pub fn geometry(&self) -> crate::substrate::Geometry {
        self.geometry
    }

    /// Raw bytes of image `i` (row-major, [`Dataset::pixels`] bytes).
    pub fn image(&self, i: usize) -> &[u8] {
        let d = self.pixels();
        &self.pixels[i * d..(i + 1) * d]
    }

    /// Images `range` as a new dataset.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Dataset {
        let d = self.pixels();
        Dataset {
            pixels: self.pixels[range.start * d..range.end * d].to_vec(),
            labels: self.labels[range].to_vec(),
            geometry: self.geometry,
        }
    }

    /// The first `n` images (or all, if fewer).
    pub fn truncated(mut self, n: usize) -> Dataset {
        let n = n.min(self.len());
        self.pixels.truncate(n * self.geometry.units());
        self.labels.truncate(n);
        self
    }

    /// Images per class.
    pub fn class_counts(&self) -> [usize; CLASSES] {
        let mut c = [0; CLASSES];
        for &l in &self.labels {
            c[usize::from(l)] += 1;
        }
        c
    }

    /// Writes images `idx` into the columns of `out` (pixels × idx.len()), scaled to
    /// [0, 1].
    pub fn gather(&self, idx: &[usize], out: &mut Mat) {
        let d = self.pixels();
        assert_eq!(out.shape(), (d, idx.len()), "gather: output shape");
        for (col, &i) in out.as_mut_slice().chunks_mut(d).zip(idx) {
            for (o, &p) in col.iter_mut().zip(self.image(i)) {
                *o = f32::from(p) * (1.0 / 255.0);
            }
        }
    }

    /// Labels of images `idx`.
    pub fn gather_labels(&self, idx: &[usize]) -> Vec<usize> {
        idx.iter().map(|&i| self.label(i)).collect()
    }
}

/// Which dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum DatasetKind {
    /// Built-in procedurally drawn glyphs (no files needed).
    Synthetic,
    /// MNIST handwritten digits.
    Mnist,
    /// Zalando's Fashion-MNIST.
    FashionMnist,
    /// CIFAR-10, binary version (32 × 32 colour; not bundled: `mortal data fetch cifar10`).
    Cifar10,
    /// The synthetic glyphs as 32 × 32 colour images (random ink and background colours,
    /// random placement), for running the CIFAR-10 path without its files.
    SyntheticColor,
}

impl DatasetKind {
    /// The name used on the command line, in files and as the folder under the data dir.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Synthetic => "synthetic",
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::SyntheticColor => "synthetic-color",
        }
    }

    /// The image as a map (rows, columns, channels): 28 × 28 × 1, or 32 × 32 × 3 for the
    /// colour sets.
    pub fn geometry(self) -> crate::substrate::Geometry {
        match self {
            DatasetKind::Cifar10 | DatasetKind::SyntheticColor => cifar::geometry(),
            _ => crate::substrate::Geometry {
                h: SIDE,
                w: SIDE,
                c: 1,
            },
        }
    }

    /// Whether the set is generated in memory (no files).
    pub fn is_synthetic(self) -> bool {
        matches!(self, DatasetKind::Synthetic | DatasetKind::SyntheticColor)
    }

    /// Parses a dataset name, with an error that lists the valid ones.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "synthetic" => Ok(DatasetKind::Synthetic),
            "mnist" => Ok(DatasetKind::Mnist),
            "fashion-mnist" | "fashion_mnist" | "fashion" => Ok(DatasetKind::FashionMnist),
            "cifar10" | "cifar-10" => Ok(DatasetKind::Cifar10),
            "synthetic-color" | "synthetic-colour" => Ok(DatasetKind::SyntheticColor),
            other => Err(Error::param(
                "dataset",
                other,
                "unknown dataset; expected synthetic, mnist, fashion-mnist, cifar10 or \
                 synthetic-color",
            )),
        }
    }
}

impl std::fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Train / validation / test split of one dataset.
#[derive(Clone, Debug)]
pub struct Splits {
    pub kind: DatasetKind,
    pub train: Dataset,
    pub valid: Dataset,
    pub test: Dataset,
}

/// Where the data comes from and how much of it to use.
#[derive(Clone, Debug, Default)]
pub struct DataSource {
    /// Directory holding `mnist/` and `fashion-mnist/` (see [`resolve_data_dir`]).
    pub dir: Option<PathBuf>,
    /// Settings of the built-in synthetic set.
    pub synthetic: synthetic::SyntheticConfig,
    /// Use only the first N training images (None = all).
    pub train_limit: Option<usize>,
    /// Use only the first N validation and test images (None = all).
    pub eval_limit: Option<usize>,
}

/// Environment variable naming the data directory.
pub const DATA_ENV: &str = "MORTAL_DATA";

/// The data directory: the explicit one if given, else `$MORTAL_DATA`, else `./data`.
pub fn resolve_data_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(d) = explicit {
        return d.to_path_buf();
    }
    match std::env::var_os(DATA_ENV) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from("data"),
    }
}

/// Size of the training part of the paper's split (the rest of the official training set
/// validates).
pub const TRAIN_SPLIT: usize = 50_000;

/// Loads a dataset with the paper's split: the first 50,000 official training images
/// train, the last 10,000 validate, the official 10,000 test images test.
pub fn load(kind: DatasetKind, source: &DataSource) -> Result<Splits> {
    let mut splits = match kind {
        DatasetKind::Synthetic => synthetic::splits(&source.synthetic)?,
        DatasetKind::SyntheticColor => synthetic::color_splits(&source.synthetic)?,
        DatasetKind::Cifar10 => {
            // The official 50,000 training images: the first 45,000 train, the last 5,000
            // validate; the official test set tests.
            let dir = resolve_data_dir(source.dir.as_deref());
            let (train_all, test) = cifar::load(&dir)?;
            let n = train_all.len();
            let v = cifar::valid_count(n);
            Splits {
                kind,
                train: train_all.slice(0..n - v),
                valid: train_all.slice(n - v..n),
                test,
            }
        }
        DatasetKind::Mnist | DatasetKind::FashionMnist => {
            let dir = resolve_data_dir(source.dir.as_deref());
            let (train_all, test) = files::load_official(kind, &dir)?;
            let n = train_all.len();
            if n <= TRAIN_SPLIT {
                return Err(Error::data(
                    dir.join(kind.name()),
                    format!(
                        "training set has {n} images; the paper's split needs more than {TRAIN_SPLIT}"
                    ),
                ));
            }
            Splits {
                kind,
                train: train_all.slice(0..TRAIN_SPLIT),
                valid: train_all.slice(TRAIN_SPLIT..n),
                test,
            }
        }
    };
    if let Some(n) = source.train_limit {
        splits.train = splits.train.truncated(n);
    }
    if let Some(n) = source.eval_limit {
        splits.valid = splits.valid.truncated(n);
        splits.test = splits.test.truncated(n);
    }
    Ok(splits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_rejects_bad_shapes_and_labels() {
        assert!(Dataset::new(vec![0; PIXELS * 2], vec![1, 2]).is_ok());
        assert!(Dataset::new(vec![0; PIXELS * 2 - 1], vec![1, 2]).is_err());
        assert!(Dataset::new(vec![0; PIXELS], vec![10]).is_err());
    }

    #[test]
    fn gather_scales_pixels_to_unit_interval() {
        let mut px = vec![0u8; PIXELS * 2];
        px[PIXELS] = 255;
        px[PIXELS + 1] = 51;
        let d = Dataset::new(px, vec![3, 4]).unwrap();
        let mut out = Mat::zeros(PIXELS, 2);
        d.gather(&[1, 0], &mut out);
        assert_eq!(out[(0, 0)], 1.0);
        assert!((out[(1, 0)] - 0.2).abs() < 1e-6);
        assert_eq!(out[(0, 1)], 0.0);
        assert_eq!(d.gather_labels(&[1, 0]), vec![4, 3]);
    }

    #[test]
    fn dataset_kind_names_round_trip() {
        for k in [
            DatasetKind::Synthetic,
            DatasetKind::Mnist,
            DatasetKind::FashionMnist,
        ] {
            assert_eq!(DatasetKind::parse(k.name()).unwrap(), k);
        }
        let e = DatasetKind::parse("cifar").unwrap_err().to_string();
        assert!(e.contains("cifar") && e.contains("mnist"), "{e}");
    }
}
