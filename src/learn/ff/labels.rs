//! Writing the label into the image: the first 10 pixels carry a one-hot label scaled by
//! the label strength (the reference recipe), or the neutral label (0.1 each, times the
//! strength) when the label is unknown.

use crate::data::CLASSES;
use crate::linalg::Mat;

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
}
