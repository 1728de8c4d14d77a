//! What a student is shown: the transfer images (a training set's first N, hybrids of a
//! few seed images, noise, or a user's file) and the *views* of them it trains on, each
//! epoch a fresh augmentation of every image (jitter, mixup of two transfer images).
//!
//! Teaching is *consistent* (Beyer et al. 2022, arXiv 2106.05237): the teacher is measured
//! on exactly the view the student sees. Views are quantised to 8-bit pixels like the
//! datasets themselves, so a view is an ordinary [`Dataset`] that any network, of any
//! algorithm, can be evaluated on; a view is a pure function of (seed, epoch, position),
//! so every student of a fleet with the same seed sees the same views and one measurement
//! of the teacher serves them all.

use std::path::{Path, PathBuf};

use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::data::augment::hybrid_mask;
use crate::error::{Error, Result};
use crate::rng::{Rng, derive, indexed};
use crate::substrate::Geometry;

/// Where the transfer images come from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransferSource {
    /// The first N images of the training set (their true labels exist; the student
    /// reads them only when the transfer is labelled).
    #[default]
    Train,
    /// N hybrid images (the unsupervised learner's blurred masks, §3.2 of the paper), each
    /// mixing two of the first `seeds` training images: a student with a handful of
    /// images of its own. No labels.
    Hybrid {
        /// Seed images (the first `seeds` training images), ≥ 2.
        seeds: usize,
    },
    /// N smooth random images (blurred noise fields, contrast-stretched): a student with
    /// no image of its own. No labels.
    Noise,
    /// A user's images: a `.npy` array (`u8` in 0..=255 or `f32`/`f64` in [0, 1], shape
    /// `[N, pixels]`, `[N, H, W]` or `[N, H, W, C]`) or a gzip-compressed IDX image file.
    /// The first N are used; no labels.
    File(PathBuf),
}

impl TransferSource {
    /// Parses the command-line spelling: `train`, `hybrid` (10 seed images),
    /// `hybrid:S`, `noise`, or a file path.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "train" => TransferSource::Train,
            "noise" => TransferSource::Noise,
            "hybrid" => TransferSource::Hybrid { seeds: 10 },
            _ => match s.strip_prefix("hybrid:") {
                Some(n) => TransferSource::Hybrid {
                    seeds: n.parse().map_err(|_| {
                        Error::param("transfer-source", s, "hybrid:S takes a whole number S")
                    })?,
                },
                None => TransferSource::File(PathBuf::from(s)),
            },
        })
    }

    /// Name in result files and tables.
    pub fn name(&self) -> String {
        match self {
            TransferSource::Train => "train".into(),
            TransferSource::Hybrid { seeds } => format!("hybrid:{seeds}"),
            TransferSource::Noise => "noise".into(),
            TransferSource::File(p) => p.display().to_string(),
        }
    }

    /// Whether the transfer images have true labels at all.
    pub fn labelled(&self) -> bool {
        *self == TransferSource::Train
    }

    /// The training images this source reads (for the dataset load): N for `train`, the
    /// seed images for `hybrid`, none otherwise.
    pub fn train_images(&self, n: usize) -> usize {
        match self {
            TransferSource::Train => n,
            TransferSource::Hybrid { seeds } => *seeds,
            TransferSource::Noise | TransferSource::File(_) => 0,
        }
    }

    /// Checks the source against a transfer size.
    pub fn validate(&self, n: usize) -> Result<()> {
        let bad = match self {
            TransferSource::Hybrid { seeds } if !(2..=100_000).contains(seeds) => {
                Some("hybrid needs between 2 and 100000 seed images")
            }
            TransferSource::File(p) if !p.is_file() => {
                Some("no such file (expected train, hybrid[:S], noise, or a .npy / IDX file)")
            }
            _ => None,
        };
        if let Some(why) = bad {
            return Err(Error::param("transfer-source", self.name(), why));
        }
        if n == 0 {
            return Err(Error::param("transfer", n, "must be at least 1 image"));
        }
        Ok(())
    }
}

/// Per-view augmentation of the transfer images.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Augment {
    /// Largest shift, pixels: each view is shifted by (dy, dx) uniform in −k..=k, uncovered
    /// pixels 0 (0 = off).
    pub jitter: usize,
    /// Fraction of views that are a mixup `λ·a + (1 − λ)·b` of the image with another
    /// transfer image, λ uniform in [0, 1] (0 = off), in [0, 1].
    pub mixup: f32,
}

impl Augment {
    /// No augmentation: every view is the image itself.
    pub const NONE: Augment = Augment {
        jitter: 0,
        mixup: 0.0,
    };

    /// Checks the settings for images of shape `geom`.
    pub fn validate(&self, geom: Geometry) -> Result<()> {
        if self.jitter >= geom.h.min(geom.w) {
            return Err(Error::param(
                "jitter",
                self.jitter,
                format!("must be below the image side ({})", geom.h.min(geom.w)),
            ));
        }
        if !(0.0..=1.0).contains(&self.mixup) {
            return Err(Error::param("mixup", self.mixup, "must be in [0, 1]"));
        }
        Ok(())
    }

    /// Whether views differ from the images.
    pub fn is_identity(&self) -> bool {
        self.jitter == 0 && self.mixup == 0.0
    }
}

/// The transfer images of `source` (N of them), from `train` (the training set, of which
/// `source` reads at most [`TransferSource::train_images`]) and a seed for the generated
/// ones. Generated and file images carry label 0 (they have none).
pub fn transfer_images(
    source: &TransferSource,
    train: &Dataset,
    n: usize,
    seed: u64,
) -> Result<Dataset> {
    source.validate(n)?;
    let geom = train.geometry();
    match source {
        TransferSource::Train => {
            if n > train.len() {
                return Err(Error::param(
                    "transfer",
                    n,
                    format!("must be between 1 and the {} training images", train.len()),
                ));
            }
            Ok(train.slice(0..n))
        }
        TransferSource::Hybrid { seeds } => {
            if *seeds > train.len() {
                return Err(Error::param(
                    "transfer-source",
                    source.name(),
                    format!("only {} training images exist", train.len()),
                ));
            }
            Ok(hybrid_images(&train.slice(0..*seeds), n, seed))
        }
        TransferSource::Noise => Ok(noise_images(geom, n, seed)),
        TransferSource::File(p) => file_images(p, geom, n),
    }
}

/// `n` hybrids of the images of `seeds`: each a fresh blurred mask over two different
/// seed images.
fn hybrid_images(seeds: &Dataset, n: usize, seed: u64) -> Dataset {
    let geom = seeds.geometry();
    let d = geom.units();
    let mut pixels = Vec::with_capacity(n * d);
    let mut mask = Vec::new();
    let s = seeds.len();
    for i in 0..n {
        let mut rng = indexed(derive(seed, "hybrid-transfer"), i as u64);
        let a = rng.random_range(0..s);
        let b = (a + 1 + rng.random_range(0..s - 1)) % s;
        hybrid_mask(
            geom.h,
            geom.w,
            crate::data::augment::DEFAULT_BLURS,
            &mut rng,
            &mut mask,
        );
        let (ia, ib) = (seeds.image(a), seeds.image(b));
        pixels.extend((0..d).map(|k| if mask[k / geom.c] > 0.5 { ia[k] } else { ib[k] }));
    }
    Dataset::with_geometry(pixels, vec![0; n], geom).expect("hybrid images have the seeds' shape")
}

/// `n` smooth random images: a uniform random field blurred like a hybrid mask (four
/// times), contrast-stretched to 0..=255 and thresholded below its median so each image
/// is dark with bright strokes, as handwriting is.
fn noise_images(geom: Geometry, n: usize, seed: u64) -> Dataset {
    let d = geom.units();
    let (h, w) = (geom.h, geom.w);
    let mut pixels = Vec::with_capacity(n * d);
    let mut field = vec![0.0f32; h * w];
    let mut tmp = vec![0.0f32; h * w];
    for i in 0..n {
        let mut rng = indexed(derive(seed, "noise-transfer"), i as u64);
        for v in field.iter_mut() {
            *v = rng.random::<f32>();
        }
        for _ in 0..4 {
            blur(&mut field, &mut tmp, h, w);
        }
        let mut sorted = field.clone();
        sorted.sort_by(f32::total_cmp);
        let (median, max) = (sorted[sorted.len() / 2], sorted[sorted.len() - 1]);
        let span = (max - median).max(1e-6);
        for k in 0..d {
            let v = ((field[k / geom.c] - median) / span).max(0.0);
            pixels.push((v * 255.0).round() as u8);
        }
    }
    Dataset::with_geometry(pixels, vec![0; n], geom).expect("noise images have the set's shape")
}

/// One pass of the [1/4, 1/2, 1/4] filter, horizontally then vertically, edges replicated.
fn blur(f: &mut [f32], tmp: &mut [f32], h: usize, w: usize) {
    for y in 0..h {
        for x in 0..w {
            let row = &f[y * w..(y + 1) * w];
            tmp[y * w + x] =
                0.25 * row[x.saturating_sub(1)] + 0.5 * row[x] + 0.25 * row[(x + 1).min(w - 1)];
        }
    }
    for y in 0..h {
        let (u, d) = (y.saturating_sub(1), (y + 1).min(h - 1));
        for x in 0..w {
            f[y * w + x] = 0.25 * tmp[u * w + x] + 0.5 * tmp[y * w + x] + 0.25 * tmp[d * w + x];
        }
    }
}

/// The first `n` images of a user's `.npy` or IDX file, which must hold images of shape
/// `geom`.
fn file_images(path: &Path, geom: Geometry, n: usize) -> Result<Dataset> {
    let bad = |what: String| Error::param("transfer-source", path.display(), what);
    let d = geom.units();
    let is_npy = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    let (count, pixels) = if is_npy {
        let raw =
            std::fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        read_npy(&raw, d).map_err(bad)?
    } else {
        let a = crate::data::idx::read(path)
            .map_err(|e| bad(format!("neither a .npy file nor an IDX image file ({e})")))?;
        let per: usize = a.dims.iter().skip(1).product();
        if a.dims.len() < 2 || per != d {
            return Err(bad(format!(
                "IDX images of shape {:?}, expected {} pixels per image",
                &a.dims[1.min(a.dims.len())..],
                d
            )));
        }
        (a.dims[0], a.data)
    };
    if count < n {
        return Err(bad(format!(
            "holds {count} images, fewer than the {n} transfer images asked for"
        )));
    }
    Dataset::with_geometry(pixels[..n * d].to_vec(), vec![0; n], geom)
}

/// Decodes a `.npy` array of images of `d` values each into (count, 8-bit pixels).
fn read_npy(raw: &[u8], d: usize) -> std::result::Result<(usize, Vec<u8>), String> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    if raw.len() < 10 || &raw[..6] != MAGIC {
        return Err("not a .npy file (bad magic)".into());
    }
    let (hlen, start) = match raw[6] {
        1 => (usize::from(u16::from_le_bytes([raw[8], raw[9]])), 10),
        2 | 3 if raw.len() >= 12 => (
            u32::from_le_bytes([raw[8], raw[9], raw[10], raw[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = raw
        .get(start..start + hlen)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("truncated .npy header")?;
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))?;
        let rest = header[at + key.len() + 2..]
            .trim_start()
            .strip_prefix(':')?;
        Some(rest.trim_start())
    };
    let descr = field("descr").ok_or("no descr in the .npy header")?;
    let descr = descr.split('\'').nth(1).ok_or("bad descr")?;
    if field("fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err("Fortran-ordered arrays are not supported (save a C-ordered array)".into());
    }
    let shape = field("shape").ok_or("no shape in the .npy header")?;
    let shape = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or("bad shape")?;
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad shape entry {s}"))
        })
        .collect::<std::result::Result<_, _>>()?;
    let per: usize = dims.iter().skip(1).product();
    if dims.len() < 2 || per != d {
        return Err(format!(
            "array of shape {dims:?}: expected [N, {d}] (or N images of {d} values)"
        ));
    }
    let count = dims[0];
    let body = &raw[start + hlen..];
    let values = count.checked_mul(d).ok_or("shape too large")?;
    let pixels = match descr {
        "|u1" | "<u1" | "u1" => body
            .get(..values)
            .ok_or("the data is shorter than its shape")?
            .to_vec(),
        "<f4" => {
            let b = body
                .get(..values * 4)
                .ok_or("the data is shorter than its shape")?;
            unit_to_u8(
                b.chunks_exact(4)
                    .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
            )?
        }
        "<f8" => {
            let b = body
                .get(..values * 8)
                .ok_or("the data is shorter than its shape")?;
            unit_to_u8(
                b.chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap())),
            )?
        }
        other => {
            return Err(format!(
                "dtype {other}: expected uint8 (0..=255) or float32/float64 in [0, 1]"
            ));
        }
    };
    Ok((count, pixels))
}

/// Values in [0, 1] rounded to 8-bit pixels; anything else is an error.
fn unit_to_u8(v: impl Iterator<Item = f64>) -> std::result::Result<Vec<u8>, String> {
    v.map(|x| {
        if (0.0..=1.0).contains(&x) {
            Ok((x * 255.0).round() as u8)
        } else {
            Err(format!("float pixel value {x} outside [0, 1]"))
        }
    })
    .collect()
}

/// The views of one epoch: view j is an augmentation of image `order[j]` of `images`
/// (a pure function of `seed`, `epoch` and j). Labels are the images' own.
pub fn epoch_views(
    images: &Dataset,
    order: &[usize],
    aug: &Augment,
    seed: u64,
    epoch: usize,
) -> Dataset {
    let geom = images.geometry();
    let d = geom.units();
    let n = images.len();
    let epoch_seed = crate::rng::derive_index(derive(seed, "views"), epoch as u64);
    let mut pixels = vec![0u8; order.len() * d];
    let mut src = vec![0.0f32; d];
    let mut col = vec![0.0f32; d];
    for (j, (&i, out)) in order.iter().zip(pixels.chunks_mut(d)).enumerate() {
        if aug.is_identity() {
            out.copy_from_slice(images.image(i));
            continue;
        }
        let mut rng: Rng = indexed(epoch_seed, j as u64);
        for (s, p) in src.iter_mut().zip(images.image(i)) {
            *s = f32::from(*p);
        }
        if aug.mixup > 0.0 && n > 1 && rng.random::<f32>() < aug.mixup {
            let k = (i + 1 + rng.random_range(0..n - 1)) % n;
            let lambda = rng.random::<f32>();
            for (s, p) in src.iter_mut().zip(images.image(k)) {
                *s = lambda * *s + (1.0 - lambda) * f32::from(*p);
            }
        }
        shift(&src, &mut col, geom, aug.jitter, &mut rng);
        for (o, v) in out.iter_mut().zip(&col) {
            *o = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    let labels = order
        .iter()
        .map(|&i| images.labels()[i])
        .collect::<Vec<u8>>();
    Dataset::with_geometry(pixels, labels, geom).expect("views have the images' shape")
}

/// `dst` = `src` shifted by (dy, dx) uniform in −k..=k (0 where uncovered).
fn shift(src: &[f32], dst: &mut [f32], geom: Geometry, k: usize, rng: &mut Rng) {
    if k == 0 {
        dst.copy_from_slice(src);
        return;
    }
    let (dy, dx) = crate::data::augment::draw_shift(k, rng);
    crate::data::augment::shift_into(src, dst, geom, dy, dx);
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: Geometry = Geometry { h: 28, w: 28, c: 1 };

    fn digits(n: usize) -> Dataset {
        let pixels = (0..n * 784)
            .map(|k| if (k / 28 + k / 784) % 5 == 0 { 200 } else { 0 })
            .collect();
        Dataset::with_geometry(pixels, (0..n).map(|i| (i % 10) as u8).collect(), G).unwrap()
    }

    #[test]
    fn identity_views_are_the_images_in_epoch_order() {
        let d = digits(6);
        let v = epoch_views(&d, &[3, 1, 5], &Augment::NONE, 1, 1);
        assert_eq!(v.len(), 3);
        assert_eq!(v.image(0), d.image(3));
        assert_eq!(v.image(2), d.image(5));
        assert_eq!(v.labels(), &[3, 1, 5]);
    }

    #[test]
    fn views_are_a_pure_function_of_seed_epoch_and_position() {
        let d = digits(20);
        let aug = Augment {
            jitter: 2,
            mixup: 0.5,
        };
        let order: Vec<usize> = (0..20).collect();
        let a = epoch_views(&d, &order, &aug, 7, 3);
        let b = epoch_views(&d, &order, &aug, 7, 3);
        assert_eq!(a.image(4), b.image(4));
        let c = epoch_views(&d, &order, &aug, 7, 4);
        let changed = (0..20).filter(|&j| a.image(j) != c.image(j)).count();
        assert!(changed > 10, "{changed} views changed between epochs");
        // Mass is conserved up to what the shift moves out and the rounding: a mix of
        // two images has total brightness between theirs.
        let total = |x: &[u8]| x.iter().map(|&p| u32::from(p)).sum::<u32>();
        assert!(total(a.image(0)) > 0);
    }

    #[test]
    fn generated_sources_have_the_asked_size_and_are_not_blank() {
        let train = digits(30);
        for src in [TransferSource::Noise, TransferSource::Hybrid { seeds: 5 }] {
            let t = transfer_images(&src, &train, 40, 3).unwrap();
            assert_eq!(t.len(), 40);
            let lit = (0..40)
                .filter(|&i| t.image(i).iter().any(|&p| p > 0))
                .count();
            assert_eq!(lit, 40, "{src:?}");
            assert!(!src.labelled());
        }
        // Hybrids only use pixels of the seed images (the first 5 training images).
        let t = transfer_images(&TransferSource::Hybrid { seeds: 5 }, &train, 10, 3).unwrap();
        for i in 0..10 {
            for (k, &p) in t.image(i).iter().enumerate() {
                assert!((0..5).any(|s| train.image(s)[k] == p));
            }
        }
        assert!(transfer_images(&TransferSource::Train, &train, 31, 3).is_err());
        let e = TransferSource::Hybrid { seeds: 1 }.validate(5).unwrap_err();
        assert!(e.to_string().contains("transfer-source"), "{e}");
    }

    fn npy(descr: &str, shape: &str, body: &[u8]) -> Vec<u8> {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn npy_files_of_bytes_and_floats_are_read_and_bad_ones_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.npy");
        std::fs::write(&p, npy("|u1", "(3, 28, 28)", &[7u8; 3 * 784])).unwrap();
        let t = transfer_images(&TransferSource::File(p.clone()), &digits(1), 2, 0).unwrap();
        assert_eq!((t.len(), t.image(1)[5]), (2, 7));
        let floats: Vec<u8> = (0..784).flat_map(|_| 0.5f32.to_le_bytes()).collect();
        std::fs::write(&p, npy("<f4", "(1, 784)", &floats)).unwrap();
        let t = transfer_images(&TransferSource::File(p.clone()), &digits(1), 1, 0).unwrap();
        assert_eq!(t.image(0)[0], 128);
        for (descr, shape, body, want) in [
            ("|u1", "(3, 30)", vec![0u8; 90], "shape"),
            ("<i8", "(1, 784)", vec![0u8; 784 * 8], "dtype"),
            ("|u1", "(1, 784)", vec![0u8; 784], "fewer"),
        ] {
            std::fs::write(&p, npy(descr, shape, &body)).unwrap();
            let e = transfer_images(&TransferSource::File(p.clone()), &digits(1), 2, 0)
                .unwrap_err()
                .to_string();
            assert!(e.contains("x.npy") && e.contains(want), "{e}");
            assert_eq!(
                transfer_images(&TransferSource::File(p.clone()), &digits(1), 2, 0)
                    .unwrap_err()
                    .exit_code(),
                2
            );
        }
    }
}
