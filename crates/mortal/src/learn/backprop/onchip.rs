//! A classifier running on a substrate: the forward pass layer by layer through
//! [`Substrate::forward`], recorded as a [`Trace`] a backward pass can use, and the
//! classification error measured on the substrate.
//!
//! The network is a classifier topology (hidden layers with their nominal activation, a
//! linear last layer whose outputs, read through the ADC on a chip, are the logits).
//! Inputs follow backprop's convention: raw pixels in [0, 1], no label pixels.

use crate::data::{CLASSES, Dataset, PIXELS};
use crate::error::{Error, Result};
use crate::linalg::Mat;
use crate::rng::Rng;
use crate::substrate::{Substrate, Topology};

use super::Trace;

/// Checks that `topology` is a classifier of images: 784 inputs, 10 outputs.
pub fn check_classifier(topology: &Topology) -> Result<()> {
    let w = topology.widths();
    if w.first() != Some(&PIXELS) || w.last() != Some(&CLASSES) {
        return Err(Error::param(
            "layers",
            format!("{w:?}"),
            format!("an image classifier needs {PIXELS} inputs and {CLASSES} outputs"),
        ));
    }
    Ok(())
}

/// A chip-side step's forward pass and loss: checks that `sub` has the learner's
/// `topology`, runs the batch through it (filling `trace`), and returns the summed
/// softmax cross-entropy and error count with `dlogits` filled; a non-finite loss is a
/// divergence of `method`.
#[allow(clippy::too_many_arguments)]
pub fn forward_loss(
    method: &str,
    topology: &Topology,
    sub: &mut dyn Substrate,
    images: &Mat,
    labels: &[usize],
    trace: &mut Trace,
    dlogits: &mut Mat,
    noise: &mut Rng,
) -> Result<(f64, usize)> {
    if sub.topology() != topology {
        return Err(Error::param(
            "chip",
            sub.describe(),
            "its topology differs from the learner's",
        ));
    }
    forward(sub, images, trace, noise);
    let (loss_sum, errors) = super::softmax_cross_entropy(trace.logits(), labels, dlogits);
    crate::learn::host::softmax_error(sub.ledger_mut(), dlogits.nrows(), labels.len());
    if !loss_sum.is_finite() {
        return Err(Error::Diverged(format!(
            "{method} loss is {loss_sum}; lower the learning rate"
        )));
    }
    Ok((loss_sum, errors))
}

/// The forward pass and loss of [`forward_loss`], then the backward pass as transposed
/// reads of `sub`'s own arrays (before any update) into `delta`, with the host's
/// derivative work counted: the shared first half of the analog-SGD and Tiki-Taka steps.
#[allow(clippy::too_many_arguments)]
pub fn forward_and_transposed_backward(
    method: &str,
    topology: &Topology,
    sub: &mut dyn Substrate,
    images: &Mat,
    labels: &[usize],
    trace: &mut Trace,
    dlogits: &mut Mat,
    delta: &mut Vec<Mat>,
    noise: &mut Rng,
) -> Result<(f64, usize)> {
    let (loss_sum, errors) =
        forward_loss(method, topology, sub, images, labels, trace, dlogits, noise)?;
    super::backward_deltas(topology, trace, dlogits, delta, |l, d, out| {
        sub.transpose_read(l, d, out, noise)
    });
    // Host work: the derivative times the error read back, below the output layer.
    for l in 0..topology.layers().saturating_sub(1) {
        let rows = topology.dims(l).1;
        crate::learn::host::derivative(sub.ledger_mut(), rows, labels.len());
    }
    Ok((loss_sum, errors))
}

/// Runs `x` (inputs × batch) through every layer of `sub`, driving layer l + 1 with the
/// activities measured at layer l. `trace.inputs[l]` receives what layer l's input lines
/// received (after converters and any black box on a chip) and `trace.outputs[l]` the
/// activities measured at its outputs; the last outputs are the logits.
pub fn forward(sub: &mut dyn Substrate, x: &Mat, trace: &mut Trace, noise: &mut Rng) {
    let layers = sub.topology().layers();
    trace.inputs.resize_with(layers, Mat::default);
    trace.outputs.resize_with(layers, Mat::default);
    for l in 0..layers {
        let (before, after) = trace.outputs.split_at_mut(l);
        let input = if l == 0 { x } else { &before[l - 1] };
        sub.forward(l, input, &mut trace.inputs[l], &mut after[0], noise);
    }
}

/// Fraction of `data` that the network on `sub` misclassifies (argmax of the measured
/// logits; batches of 100, each with fresh per-call noise from `noise`).
pub fn evaluate(
    sub: &mut dyn Substrate,
    data: &Dataset,
    trace: &mut Trace,
    noise: &mut Rng,
) -> f64 {
    super::error_of(&logits(sub, data, trace, noise), data)
}

/// The logits measured on `sub` (classes × n) for every image of `data` (batches of 100,
/// each with fresh per-call noise from `noise`).
pub fn logits(sub: &mut dyn Substrate, data: &Dataset, trace: &mut Trace, noise: &mut Rng) -> Mat {
    super::batched_logits(data, |x| {
        forward(sub, x, trace, noise);
        trace.logits().clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::backprop::Mlp;
    use crate::substrate::{Activation, DigitalNet};

    #[test]
    fn forward_on_the_digital_substrate_is_the_mlp_forward() {
        let topo = Topology::classifier(vec![PIXELS, 12, CLASSES], Activation::Sigmoid).unwrap();
        let mlp = Mlp::new(topo.clone(), 4);
        let mut net = DigitalNet::new(topo.clone(), 4);
        let x = Mat::from_fn(PIXELS, 5, |i, j| ((i * 7 + j * 3) % 11) as f32 / 10.0);
        let (mut a, mut b) = (Trace::default(), Trace::default());
        mlp.forward(&x, &mut a);
        forward(&mut net, &x, &mut b, &mut crate::rng::stream(1, "t"));
        assert_eq!(a.inputs, b.inputs);
        assert_eq!(a.outputs, b.outputs);
        assert!(check_classifier(&topo).is_ok());
        let bad = Topology::classifier(vec![PIXELS, 12, 3], Activation::Relu).unwrap();
        assert!(check_classifier(&bad).is_err());
    }
}
