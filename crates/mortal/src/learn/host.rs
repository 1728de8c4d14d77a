//! The host's digital work of the learners, as operation counts ([`crate::substrate::ops`]).
//!
//! Each function records what one step of host computation costs in floating-point
//! operations (a multiply-add is two) and bytes moved, from the shapes involved. The
//! counts are analytic (they do not time anything) and follow the code they describe:
//! an elementwise pass reads its input and writes its output (4 bytes each per element),
//! a matrix product reads both operands and writes its result once.

use crate::substrate::ops::{F32, Ledger, Purpose};

/// Elements of a `rows × cols` matrix, as u64.
fn el(rows: usize, cols: usize) -> u64 {
    (rows * cols) as u64
}

/// RMS normalisation of `cols` vectors of `rows`: square-sum, scale (3 FLOPs/element).
pub fn normalise(l: &mut Ledger, rows: usize, cols: usize) {
    let e = el(rows, cols);
    l.host(Purpose::Normalise, 3 * e + 2 * cols as u64, 2 * F32 * e);
}

/// Goodness (sum of squares) of `cols` activity vectors of `rows`.
pub fn goodness(l: &mut Ledger, rows: usize, cols: usize) {
    let e = el(rows, cols);
    l.host(Purpose::Goodness, 2 * e, F32 * (e + cols as u64));
}

/// FF's local errors of `cols` samples: the loss's logistic coefficient per sample
/// (≈ 10 FLOPs: exp, division) and `d = coeff·y` per unit (2 FLOPs/element).
pub fn local_errors(l: &mut Ledger, rows: usize, cols: usize) {
    let e = el(rows, cols);
    l.host(Purpose::Gradient, 2 * e + 10 * cols as u64, 2 * F32 * e);
}

/// Analog-native FF's host work per sample: the logistic coefficient c of the goodness
/// reading (≈ 10 FLOPs: exp, division), which scales the d-line drivers (the errors
/// d = c·y themselves are formed in the periphery, never on the host).
pub fn native_coefficients(l: &mut Ledger, cols: usize) {
    l.host(Purpose::Gradient, 10 * cols as u64, 2 * F32 * cols as u64);
}

/// Backprop's errors through a layer of `rows` units for `cols` samples: the transposed
/// product done digitally is counted by the caller; this is the derivative times the
/// incoming error (2 FLOPs/element).
pub fn derivative(l: &mut Ledger, rows: usize, cols: usize) {
    let e = el(rows, cols);
    l.host(Purpose::Gradient, 2 * e, 3 * F32 * e);
}

/// Softmax and cross-entropy error of `classes` logits for `cols` samples (exp, sum,
/// divide, subtract the target: ≈ 12 FLOPs per logit).
pub fn softmax_error(l: &mut Ledger, classes: usize, cols: usize) {
    let e = el(classes, cols);
    l.host(Purpose::Gradient, 12 * e, 2 * F32 * e);
}

/// The softmax head's logits from `features` inputs for `cols` samples.
pub fn head_logits(l: &mut Ledger, features: usize, classes: usize, cols: usize) {
    let w = el(features, classes);
    l.host(
        Purpose::Head,
        2 * w * cols as u64,
        F32 * (w + el(features + classes, cols)),
    );
}

/// One training step of the softmax head: softmax error, gradient (a product of the
/// same size as the logits) and an SGD/Adam step on its parameters.
pub fn head_step(l: &mut Ledger, features: usize, classes: usize, cols: usize) {
    let w = el(features, classes);
    let e = el(classes, cols);
    l.host(
        Purpose::Head,
        12 * e + 2 * w * cols as u64 + 8 * w,
        F32 * (2 * e + 4 * w + el(features, cols)),
    );
}

/// A dense gradient `d·xᵀ` formed by the host over `weights` existing weights for
/// `cols` samples (2 FLOPs per weight per sample), reading `inp + out` values a sample.
pub fn outer_product(l: &mut Ledger, weights: usize, inp: usize, out: usize, cols: usize) {
    let w = weights as u64;
    l.host(
        Purpose::Gradient,
        2 * w * cols as u64,
        F32 * (2 * w + el(inp + out, cols)),
    );
}

/// An optimiser step on `params` parameters: SGD with momentum (3 FLOPs, velocity read
/// and written) or Adam (≈ 12 FLOPs, two moments read and written).
pub fn optimiser(l: &mut Ledger, params: usize, adam: bool) {
    let p = params as u64;
    if adam {
        l.host(Purpose::Optimiser, 12 * p, 6 * F32 * p);
    } else {
        l.host(Purpose::Optimiser, 3 * p, 4 * F32 * p);
    }
}

/// A digital model's pass of `cols` samples over `weights` weights and `units` outputs:
/// forward (2 FLOPs/weight + bias and activation), or a backward pass computing both
/// the weight gradient and the errors below (4 FLOPs/weight).
pub fn model_pass(l: &mut Ledger, weights: usize, units: usize, cols: usize, backward: bool) {
    let (w, b) = (weights as u64, cols as u64);
    let flops = if backward {
        4 * w * b
    } else {
        (2 * w + 2 * units as u64) * b
    };
    l.host(Purpose::Model, flops, F32 * (w + 2 * units as u64 * b));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_the_shapes() {
        let mut l = Ledger::new(1);
        goodness(&mut l, 4, 3);
        assert_eq!(l.host_work(Purpose::Goodness).flops, 24);
        outer_product(&mut l, 12, 3, 4, 2);
        assert_eq!(l.host_work(Purpose::Gradient).flops, 48);
        optimiser(&mut l, 10, true);
        assert_eq!(l.host_work(Purpose::Optimiser).flops, 120);
    }
}
