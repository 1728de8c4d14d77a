//! Forward-Forward's local learning signals: each unit's error from its layer's goodness,
//! peer normalisation, and the divergence check.

use rayon::prelude::*;

use super::goodness::GoodnessFn;
use crate::error::{Error, Result};
use crate::linalg::flush_subnormal;

/// Writes the local errors `dst_j = e(c_j, y_j) − term` for each column j (e: the goodness
/// function's [`GoodnessFn::error`]; term per unit, may be empty).
pub(super) fn local_errors(
    f: GoodnessFn,
    y: &[f32],
    rows: usize,
    coeff: &[f32],
    term: &[f32],
    dst: &mut [f32],
) {
    dst.par_chunks_mut(rows * 8)
        .zip(y.par_chunks(rows * 8))
        .enumerate()
        .for_each(|(chunk, (d, y))| {
            for (k, (dc, yc)) in d.chunks_mut(rows).zip(y.chunks(rows)).enumerate() {
                let c = coeff[chunk * 8 + k];
                match (f, term.is_empty()) {
                    (GoodnessFn::SumSq, true) => {
                        for (o, v) in dc.iter_mut().zip(yc) {
                            *o = flush_subnormal(c * v);
                        }
                    }
                    (GoodnessFn::SumSq, false) => {
                        for ((o, v), t) in dc.iter_mut().zip(yc).zip(term) {
                            *o = flush_subnormal(c * v - t);
                        }
                    }
                    (_, _) => {
                        for (i, (o, v)) in dc.iter_mut().zip(yc).enumerate() {
                            *o = flush_subnormal(
                                f.error(c, *v) - term.get(i).copied().unwrap_or(0.0),
                            );
                        }
                    }
                }
            }
        });
}

/// Peer normalisation: updates the running mean activity of each unit (`means`) with the
/// columns of `act` (rows × n) and writes each unit's error term into `term` (empty when
/// peer normalisation is off).
pub(super) fn peer_term(
    cfg: &super::FfConfig,
    means: &mut [f32],
    act: &[f32],
    rows: usize,
    term: &mut Vec<f32>,
) {
    term.clear();
    if cfg.peer_norm <= 0.0 {
        return;
    }
    let n = act.len() / rows;
    let decay = cfg.peer_decay;
    let mut batch_mean = vec![0.0f32; rows];
    for col in act.chunks(rows) {
        for (m, v) in batch_mean.iter_mut().zip(col) {
            *m += v;
        }
    }
    for (m, bm) in means.iter_mut().zip(&batch_mean) {
        *m = decay * *m + (1.0 - decay) * bm / n as f32;
    }
    let layer_mean = means.iter().sum::<f32>() / rows as f32;
    // Ascent direction in the reference code is +λ(mean − mᵢ); as a descent error it
    // enters with the opposite sign.
    term.extend(means.iter().map(|m| cfg.peer_norm * (layer_mean - m)));
}

pub(super) fn check_finite(goodness: &[f32], layer: usize, what: &str) -> Result<()> {
    match goodness.iter().find(|g| !g.is_finite()) {
        None => Ok(()),
        Some(g) => Err(Error::Diverged(format!(
            "layer {} goodness of a {what} sample is {g}; lower the learning rate",
            layer + 1
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error signal never carries subnormals (each multiply-add on one costs a
    /// microcode assist on x86 cores): a sigmoid-tail coefficient σ(−z) for a large
    /// goodness gives exactly 0 where c·y would be subnormal, and is kept elsewhere.
    #[test]
    fn local_errors_flush_subnormals() {
        let rows = 4;
        let y = [1.0f32, 0.5, 2.0, 1e-3, 1.0, 1.0, 1.0, 1.0];
        let tail = super::super::goodness::sigmoid(-95.0);
        assert!(tail > 0.0 && tail < 1e-40);
        let coeff = [-tail, -0.25];
        for f in [GoodnessFn::SumSq, GoodnessFn::Sum] {
            for term in [vec![], vec![0.0; rows]] {
                let mut d = [f32::NAN; 8];
                local_errors(f, &y, rows, &coeff, &term, &mut d);
                assert!(d[..4].iter().all(|v| *v == 0.0), "{f:?} {d:?}");
                assert!(
                    d[4..].iter().all(|v| *v != 0.0 && v.is_normal()),
                    "{f:?} {d:?}"
                );
            }
        }
    }
}
