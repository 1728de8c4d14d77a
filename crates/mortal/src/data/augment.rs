//! Image transformations the learners draw per sample: the hybrid images that serve as
//! unsupervised Forward-Forward's negatives (Hinton 2022, §3.2 and figure 1), and jitter
//! (shifted copies, §3.3).
//!
//! Images are columns of a `pixels × batch` matrix, each a row-major `h × w` map (one
//! channel per pixel, or `c` interleaved channels: index `(y·w + x)·c + channel`).

use rand::RngExt;

use crate::linalg::Mat;
use crate::rng::Rng;
use crate::substrate::Geometry;

/// Default number of blurs of a hybrid mask: enough for regions tens of pixels across on
/// a 28 × 28 image, as in the paper's figure 1 (see the test of region sizes).
pub const DEFAULT_BLURS: usize = 10;

/// A hybrid mask of an `h × w` image: a random bit image, blurred `blurs` times with the
/// filter [1/4, 1/2, 1/4] horizontally and vertically (edges replicated), thresholded at
/// 0.5. Writes 0/1 values into `mask` (h·w) using `tmp` as scratch.
pub fn hybrid_mask(h: usize, w: usize, blurs: usize, rng: &mut Rng, mask: &mut Vec<f32>) {
    let n = h * w;
    mask.clear();
    mask.extend((0..n).map(|_| if rng.random::<bool>() { 1.0 } else { 0.0 }));
    let mut tmp = vec![0.0f32; n];
    for _ in 0..blurs {
        // Horizontal.
        for y in 0..h {
            let row = &mask[y * w..(y + 1) * w];
            for x in 0..w {
                let l = row[x.saturating_sub(1)];
                let r = row[(x + 1).min(w - 1)];
                tmp[y * w + x] = 0.25 * l + 0.5 * row[x] + 0.25 * r;
            }
        }
        // Vertical.
        for y in 0..h {
            let (u, d) = (y.saturating_sub(1), (y + 1).min(h - 1));
            for x in 0..w {
                mask[y * w + x] =
                    0.25 * tmp[u * w + x] + 0.5 * tmp[y * w + x] + 0.25 * tmp[d * w + x];
            }
        }
    }
    for v in mask.iter_mut() {
        *v = if *v > 0.5 { 1.0 } else { 0.0 };
    }
}

/// Writes one hybrid per column of `images` into `out`: column j mixes image j with
/// another image k ≠ j of the batch under a fresh mask, `m·image_j + (1 − m)·image_k`.
/// Needs at least 2 images.
pub fn hybrids(images: &Mat, geom: Geometry, blurs: usize, rng: &mut Rng, out: &mut Mat) {
    let (p, b) = images.shape();
    assert!(b >= 2, "hybrids need two different images");
    assert_eq!(p, geom.units(), "hybrids: image size");
    crate::linalg::ensure_shape(out, p, b);
    let mut mask = Vec::new();
    for j in 0..b {
        let k = (j + 1 + rng.random_range(0..b - 1)) % b;
        hybrid_mask(geom.h, geom.w, blurs, rng, &mut mask);
        let (a, c) = (images.column(j), images.column(k));
        let mut o = out.column_mut(j);
        for (i, v) in o.iter_mut().enumerate() {
            let m = mask[i / geom.c];
            *v = m * a[i] + (1.0 - m) * c[i];
        }
    }
}

/// Shifts every column of `images` by its own (dy, dx), each uniform in −k..=k, filling
/// uncovered pixels with 0 ((2k + 1)² shifts: k = 2 gives the paper's 25).
pub fn jitter(images: &mut Mat, geom: Geometry, k: usize, rng: &mut Rng) {
    if k == 0 {
        return;
    }
    let mut src = vec![0.0f32; geom.units()];
    for mut col in images.column_iter_mut() {
        let (dy, dx) = draw_shift(k, rng);
        src.copy_from_slice(col.as_slice());
        shift_into(&src, col.as_mut_slice(), geom, dy, dx);
    }
}

/// A shift (dy, dx), each uniform in −k..=k (dy drawn first).
pub fn draw_shift(k: usize, rng: &mut Rng) -> (isize, isize) {
    let span = 2 * k + 1;
    let dy = rng.random_range(0..span) as isize - k as isize;
    let dx = rng.random_range(0..span) as isize - k as isize;
    (dy, dx)
}

/// `dst` = the image `src` shifted by (dy, dx), uncovered pixels 0.
pub fn shift_into(src: &[f32], dst: &mut [f32], geom: Geometry, dy: isize, dx: isize) {
    let (h, w, c) = (geom.h as isize, geom.w as isize, geom.c);
    for y in 0..h {
        for x in 0..w {
            let (sy, sx) = (y - dy, x - dx);
            let base = ((y * w + x) as usize) * c;
            if (0..h).contains(&sy) && (0..w).contains(&sx) {
                let sb = ((sy * w + sx) as usize) * c;
                dst[base..base + c].copy_from_slice(&src[sb..sb + c]);
            } else {
                dst[base..base + c].fill(0.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream;

    const G: Geometry = Geometry { h: 28, w: 28, c: 1 };

    /// Sizes of the 4-connected regions of equal value.
    fn regions(mask: &[f32], h: usize, w: usize) -> Vec<usize> {
        let mut seen = vec![false; h * w];
        let mut sizes = Vec::new();
        for s in 0..h * w {
            if seen[s] {
                continue;
            }
            let (mut stack, mut n) = (vec![s], 0);
            seen[s] = true;
            while let Some(p) = stack.pop() {
                n += 1;
                let (y, x) = (p / w, p % w);
                let mut near = Vec::new();
                if y > 0 {
                    near.push(p - w);
                }
                if y + 1 < h {
                    near.push(p + w);
                }
                if x > 0 {
                    near.push(p - 1);
                }
                if x + 1 < w {
                    near.push(p + 1);
                }
                for q in near {
                    if !seen[q] && mask[q] == mask[p] {
                        seen[q] = true;
                        stack.push(q);
                    }
                }
            }
            sizes.push(n);
        }
        sizes
    }

    #[test]
    fn masks_have_large_connected_regions() {
        let mut rng = stream(1, "mask");
        let mut mask = Vec::new();
        let (mut largest, mut count, mut ones) = (0.0, 0.0, 0.0);
        for _ in 0..50 {
            hybrid_mask(28, 28, DEFAULT_BLURS, &mut rng, &mut mask);
            let r = regions(&mask, 28, 28);
            largest += *r.iter().max().unwrap() as f64 / 50.0;
            count += r.len() as f64 / 50.0;
            ones += mask.iter().sum::<f32>() as f64 / 50.0 / 784.0;
        }
        // A random bit image has ~100 4-connected regions; blurred 10 times, masks have
        // ~7 blobs, the largest ~400 of 784 pixels (measured over these 50 masks).
        assert!(count < 20.0, "mean regions per mask {count}");
        assert!(largest > 150.0, "mean largest region {largest} pixels");
        assert!((0.3..0.7).contains(&ones), "fraction of ones {ones}");
        // Without blurring: speckle.
        hybrid_mask(28, 28, 0, &mut rng, &mut mask);
        assert!(regions(&mask, 28, 28).len() > 50);
    }

    #[test]
    fn hybrids_keep_short_range_statistics() {
        // Images with strong short-range correlation (smooth stripes of random phase):
        // the hybrid's neighbouring-pixel difference stays close to the originals',
        // unlike a pixel-wise random mix.
        let mut rng = stream(2, "imgs");
        let b = 40;
        let images = Mat::from_fn(784, b, |i, j| {
            let (y, x) = ((i / 28) as f32, (i % 28) as f32);
            (0.5 + 0.5 * ((x + y * (j as f32 * 0.1)) * 0.3 + j as f32).sin()).max(0.0)
        });
        let mut out = Mat::zeros(0, 0);
        hybrids(&images, G, DEFAULT_BLURS, &mut rng, &mut out);
        let roughness = |m: &Mat| {
            let mut s = 0.0;
            for col in m.column_iter() {
                for y in 0..28 {
                    for x in 0..27 {
                        s += (col[y * 28 + x + 1] - col[y * 28 + x]).abs();
                    }
                }
            }
            s / (m.ncols() * 28 * 27) as f32
        };
        let (r0, r1) = (roughness(&images), roughness(&out));
        let mut speckle = Mat::zeros(0, 0);
        hybrids(&images, G, 0, &mut rng, &mut speckle);
        let r2 = roughness(&speckle);
        // Measured: images 0.095, hybrids 0.125, pixel-wise mix 0.254.
        assert!(r1 < 1.5 * r0, "hybrid roughness {r1} vs images {r0}");
        assert!(r2 > 2.0 * r1, "speckle mix {r2} vs hybrids {r1}");
        // Every hybrid pixel comes from one of two images.
        for j in 0..b {
            let col = out.column(j);
            assert!((0..784).all(|i| (0..b).any(|k| images[(i, k)] == col[i])));
        }
    }

    #[test]
    fn jitter_shifts_within_k_and_zero_fills() {
        let mut rng = stream(3, "jit");
        let mut img = Mat::zeros(784, 200);
        for j in 0..200 {
            img[(14 * 28 + 14, j)] = 1.0;
        }
        jitter(&mut img, G, 2, &mut rng);
        let mut shifts = std::collections::HashSet::new();
        for col in img.column_iter() {
            let p = col.iter().position(|v| *v == 1.0).unwrap();
            let (dy, dx) = (p as isize / 28 - 14, p as isize % 28 - 14);
            assert!(dy.abs() <= 2 && dx.abs() <= 2);
            assert_eq!(col.iter().sum::<f32>(), 1.0);
            shifts.insert((dy, dx));
        }
        assert_eq!(shifts.len(), 25);
    }
}
