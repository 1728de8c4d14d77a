//! Writing the label into the image: the first 10 pixels carry a one-hot label scaled by
//! the label strength (the reference recipe), or the neutral label (0.1 each, times the
//! strength) when the label is unknown.

use crate::data::CLASSES;
use crate::linalg::{Mat, copy_columns};

/// Overwrites rows 0..10 of columns `first..first + labels.len()` of `x` with the one-hot
/// code of each label times `strength`.
pub fn write_one_hot(x: &mut Mat, first: usize, labels: &[usize], strength: f32) {
    let rows = x.nrows();
    for (j, &label) in labels.iter().enumerate() {
        let col = &mut x.as_mut_slice()[(first + j) * rows..(first + j) * rows + CLASSES];
        col.fill(0.0);
        col[label] = strength;
    }
}

/// Overwrites rows 0..10 of columns `first..first + n` with `value` (the neutral label).
pub fn write_neutral(x: &mut Mat, first: usize, n: usize, value: f32) {
    let rows = x.nrows();
    for j in first..first + n {
        x.as_mut_slice()[j * rows..j * rows + CLASSES].fill(value);
    }
}

/// Writes the n images (inputs × n) into `x` as `labelled + 1` blocks of n columns:
/// `[neutral | label 0 | … | label labelled−1]`, the neutral block with `neutral` in each
/// label pixel, block k + 1 with the one-hot code of label k times `strength`. `x` must
/// have `(labelled + 1)·n` columns.
pub fn write_label_blocks(images: &Mat, x: &mut Mat, labelled: usize, neutral: f32, strength: f32) {
    let n = images.ncols();
    debug_assert_eq!(x.ncols(), (labelled + 1) * n, "write_label_blocks: columns");
    for k in 0..=labelled {
        copy_columns(images, 0, x, k * n, n);
    }
    write_neutral(x, 0, n, neutral);
    let rows = x.nrows();
    for k in 0..labelled {
        for j in (k + 1) * n..(k + 2) * n {
            let col = &mut x.as_mut_slice()[j * rows..j * rows + CLASSES];
            col.fill(0.0);
            col[k] = strength;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hot_and_neutral_codes_touch_only_the_first_ten_pixels() {
        let mut x = Mat::from_element(784, 3, 0.5);
        write_one_hot(&mut x, 1, &[7, 0], 1.0);
        write_neutral(&mut x, 0, 1, 0.1);
        for r in 0..10 {
            assert!((x[(r, 0)] - 0.1).abs() < 1e-7);
            assert_eq!(x[(r, 1)], if r == 7 { 1.0 } else { 0.0 });
            assert_eq!(x[(r, 2)], if r == 0 { 1.0 } else { 0.0 });
        }
        for j in 0..3 {
            for r in 10..784 {
                assert_eq!(x[(r, j)], 0.5);
            }
        }
    }

    #[test]
    fn label_blocks_are_neutral_then_each_label_over_the_same_images() {
        let images = Mat::from_fn(784, 2, |r, j| (r + 3 * j) as f32 / 1000.0);
        let mut x = Mat::zeros(784, 4 * 2);
        write_label_blocks(&images, &mut x, 3, 0.1, 2.0);
        for block in 0..4 {
            for j in 0..2 {
                let c = block * 2 + j;
                for r in 0..10 {
                    let want = match block {
                        0 => 0.1,
                        b if r == b - 1 => 2.0,
                        _ => 0.0,
                    };
                    assert_eq!(x[(r, c)], want, "block {block} image {j} pixel {r}");
                }
                for r in 10..784 {
                    assert_eq!(x[(r, c)], images[(r, j)]);
                }
            }
        }
    }
}
