//! Named tensors as they are saved: (name, shape, row-major f32 values).

use crate::error::{Error, Result};
use crate::linalg::Mat;

/// A named tensor: (name, shape, values in row-major (C) order).
pub type Tensor = (String, Vec<usize>, Vec<f32>);

/// The values of tensor `name`, checking its shape.
pub fn find<'a>(tensors: &'a [Tensor], name: &str, shape: &[usize]) -> Result<&'a [f32]> {
    let (_, s, v) = tensors
        .iter()
        .find(|(n, _, _)| n == name)
        .ok_or_else(|| Error::param("checkpoint", name, "tensor missing from the checkpoint"))?;
    if s != shape {
        return Err(Error::param(
            "checkpoint",
            name,
            format!("tensor has shape {s:?}, expected {shape:?}"),
        ));
    }
    Ok(v)
}

/// A matrix as a tensor (row-major, shape `[rows, cols]`).
pub fn from_mat(name: impl Into<String>, m: &Mat) -> Tensor {
    (
        name.into(),
        vec![m.nrows(), m.ncols()],
        m.transpose().as_slice().to_vec(),
    )
}

/// A vector as a tensor.
pub fn from_vec(name: impl Into<String>, v: &[f32]) -> Tensor {
    (name.into(), vec![v.len()], v.to_vec())
}

/// Reads matrix `name` (shape `rows × cols`) back.
pub fn to_mat(tensors: &[Tensor], name: &str, rows: usize, cols: usize) -> Result<Mat> {
    Ok(Mat::from_row_slice(
        rows,
        cols,
        find(tensors, name, &[rows, cols])?,
    ))
}

/// Tensors whose names start with `prefix`, with the prefix removed.
pub fn with_prefix(tensors: &[Tensor], prefix: &str) -> Vec<Tensor> {
    tensors
        .iter()
        .filter_map(|(n, s, v)| {
            n.strip_prefix(prefix)
                .map(|rest| (rest.to_string(), s.clone(), v.clone()))
        })
        .collect()
}

/// Prefixes every name.
pub fn prefixed(tensors: Vec<Tensor>, prefix: &str) -> Vec<Tensor> {
    tensors
        .into_iter()
        .map(|(n, s, v)| (format!("{prefix}{n}"), s, v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrices_round_trip_row_major() {
        let m = Mat::from_row_slice(2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let t = from_mat("w", &m);
        assert_eq!(t.2, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let all = prefixed(vec![t], "net/");
        assert_eq!(to_mat(&with_prefix(&all, "net/"), "w", 2, 3).unwrap(), m);
        assert!(
            find(&all, "net/w", &[3, 2])
                .unwrap_err()
                .to_string()
                .contains("shape")
        );
        assert!(
            find(&all, "x", &[1])
                .unwrap_err()
                .to_string()
                .contains("missing")
        );
    }
}
