//! The backprop model: an MLP with exact digital maths, kept apart from any training loop
//! so that other paths can reuse its backward pass (e.g. with activities measured on a
//! chip, or with transposed reads of a crossbar).

use crate::data::CLASSES;
use crate::linalg::{Mat, Op, ensure_shape, flush_subnormal, for_each_column_pair, gemm, row_sums};
use crate::substrate::{Activation, Topology, initial_parameters};

/// Weights (out × in) and biases of every layer, hidden activations, a linear output.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    topology: Topology,
    /// (weights, biases) per layer.
    pub params: Vec<(Mat, Vec<f32>)>,
}

/// What a forward pass leaves for the backward pass.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// Input of each layer (inputs × batch).
    pub inputs: Vec<Mat>,
    /// Output (activity) of each layer; the last one holds the logits.
    pub outputs: Vec<Mat>,
}

impl Trace {
    /// The logits of the last forward pass.
    pub fn logits(&self) -> &Mat {
        self.outputs.last().expect("trace of an empty network")
    }
}

/// Gradients of one layer.
#[derive(Clone, Debug, Default)]
pub struct LayerGrad {
    /// ∂L/∂W (out × in).
    pub w: Mat,
    /// ∂L/∂b.
    pub b: Vec<f32>,
}

/// Cross-entropy of softmax(logits) against `labels`, writing `∂(mean loss)/∂logits` into
/// `dlogits`. Returns (sum of losses in nats, number of argmax errors).
pub fn softmax_cross_entropy(logits: &Mat, labels: &[usize], dlogits: &mut Mat) -> (f64, usize) {
    let n = labels.len();
    assert_eq!(
        logits.shape(),
        (CLASSES, n),
        "softmax_cross_entropy: logits shape"
    );
    ensure_shape(dlogits, CLASSES, n);
    let inv_n = 1.0 / n as f32;
    let (mut loss, mut errors) = (0.0f64, 0usize);
    for (j, &label) in labels.iter().enumerate() {
        let z = logits.column(j);
        let max = z.max();
        let log_sum = max + z.iter().map(|v| (v - max).exp()).sum::<f32>().ln();
        loss += f64::from(log_sum - z[label]);
        errors += usize::from(z.argmax().0 != label);
        for k in 0..CLASSES {
            let p = (z[k] - log_sum).exp();
            // A subnormal error (p below e⁻⁸⁷) changes no weight and slows every GEMM
            // it enters (see `flush_subnormal`).
            dlogits[(k, j)] = flush_subnormal((p - f32::from(u8::from(k == label))) * inv_n);
        }
    }
    (loss, errors)
}

/// The error signals of backprop without the weight gradients: `delta[l]` = ∂L/∂(the
/// pre-activation of layer l) (outputs × batch), from `dlogits` down through the
/// activities recorded in `trace`. `transpose(l, d, out)` must write `W_lᵀ·d` (inputs ×
/// batch): exact digital maths, a model of the weights, or a transposed read of a crossbar.
/// Activation derivatives are the nominal ones of `topology`, evaluated at the recorded
/// outputs; the gradient with respect to layer l's input lines is taken as the gradient
/// with respect to layer l−1's outputs (whatever lies between them is treated as the
/// identity). The weight gradient of layer l is then `delta[l]·inputs[l]ᵀ`.
pub fn backward_deltas<F>(
    topology: &Topology,
    trace: &Trace,
    dlogits: &Mat,
    delta: &mut Vec<Mat>,
    mut transpose: F,
) where
    F: FnMut(usize, &Mat, &mut Mat),
{
    let layers = topology.layers();
    delta.resize_with(layers, Mat::default);
    ensure_shape(&mut delta[layers - 1], dlogits.nrows(), dlogits.ncols());
    delta[layers - 1].copy_from(dlogits);
    // The last layer is linear by construction of a classifier; apply its derivative
    // anyway so any topology is handled.
    let last = topology.activation(layers - 1);
    if last != Activation::Linear {
        let out = &trace.outputs[layers - 1];
        delta[layers - 1].zip_apply(out, |dv, y| {
            *dv = flush_subnormal(*dv * last.derivative_at_output(y));
        });
    }
    for l in (1..layers).rev() {
        let (lower, upper) = delta.split_at_mut(l);
        let below = &mut lower[l - 1];
        transpose(l, &upper[0], below);
        let prev_act = topology.activation(l - 1);
        for_each_column_pair(&trace.outputs[l - 1], below, |_, y, d| {
            for (dv, yv) in d.iter_mut().zip(y) {
                *dv = flush_subnormal(*dv * prev_act.derivative_at_output(*yv));
            }
        });
    }
}

impl Mlp {
    /// An MLP of the given widths (inputs first, 10 logits last) with `hidden` activations,
    /// starting from the shared initial parameters of `seed`.
    pub fn new(topology: Topology, seed: u64) -> Self {
        let params = initial_parameters(&topology, seed);
        Self { topology, params }
    }

    /// The shape.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Forward pass of `x` (inputs × batch), recording the trace.
    pub fn forward(&self, x: &Mat, trace: &mut Trace) {
        let layers = self.topology.layers();
        trace.inputs.resize_with(layers, Mat::default);
        trace.outputs.resize_with(layers, Mat::default);
        for l in 0..layers {
            let (w, b) = &self.params[l];
            let (before, after) = trace.outputs.split_at_mut(l);
            let input = if l == 0 { x } else { &before[l - 1] };
            ensure_shape(&mut trace.inputs[l], input.nrows(), input.ncols());
            trace.inputs[l].copy_from(input);
            let out = &mut after[0];
            ensure_shape(out, w.nrows(), x.ncols());
            gemm(1.0, w, Op::N, input, Op::N, 0.0, out);
            crate::substrate::digital::bias_activate(out, b, self.topology.activation(l));
        }
    }

    /// Backward pass from `dlogits` (∂L/∂logits) through the activities recorded in
    /// `trace`, writing ∂L/∂W and ∂L/∂b of every layer. `transpose(l, d, out)` must write
    /// `W_lᵀ·d` (use [`Mlp::transpose`] for exact digital maths). Activation derivatives
    /// are the nominal ones, evaluated at the recorded outputs. The errors of every layer
    /// are left in `delta` (see [`backward_deltas`]).
    pub fn backward_with<F>(
        &self,
        trace: &Trace,
        dlogits: &Mat,
        grads: &mut Vec<LayerGrad>,
        delta: &mut Vec<Mat>,
        transpose: F,
    ) where
        F: FnMut(usize, &Mat, &mut Mat),
    {
        backward_deltas(&self.topology, trace, dlogits, delta, transpose);
        let layers = self.topology.layers();
        grads.resize_with(layers, LayerGrad::default);
        for (l, g) in grads.iter_mut().enumerate() {
            let (w, _) = &self.params[l];
            ensure_shape(&mut g.w, w.nrows(), w.ncols());
            gemm(
                1.0,
                &delta[l],
                Op::N,
                &trace.inputs[l],
                Op::T,
                0.0,
                &mut g.w,
            );
            g.b.resize(w.nrows(), 0.0);
            row_sums(&delta[l], &mut g.b);
        }
    }

    /// Exact `W_lᵀ·d`.
    pub fn transpose(&self, l: usize, d: &Mat, out: &mut Mat) {
        let w = &self.params[l].0;
        ensure_shape(out, w.ncols(), d.ncols());
        gemm(1.0, w, Op::T, d, Op::N, 0.0, out);
    }

    /// Backward pass with exact digital maths.
    pub fn backward(
        &self,
        trace: &Trace,
        dlogits: &Mat,
        grads: &mut Vec<LayerGrad>,
        delta: &mut Vec<Mat>,
    ) {
        self.backward_with(trace, dlogits, grads, delta, |l, d, out| {
            self.transpose(l, d, out)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loss_of(mlp: &Mlp, x: &Mat, labels: &[usize]) -> f64 {
        let mut t = Trace::default();
        mlp.forward(x, &mut t);
        let mut d = Mat::zeros(0, 0);
        softmax_cross_entropy(t.logits(), labels, &mut d).0 / labels.len() as f64
    }

    /// A confident softmax (other logits ≈ e⁻⁹⁵ behind) gives exact zeros where the error
    /// would be subnormal, and the usual errors elsewhere.
    #[test]
    fn softmax_errors_carry_no_subnormals() {
        let logits = Mat::from_fn(CLASSES, 2, |k, j| match (k, j) {
            (0, 0) => 95.0,
            (_, 0) => 0.0,
            _ => 0.1 * k as f32,
        });
        let mut d = Mat::zeros(0, 0);
        softmax_cross_entropy(&logits, &[0, 3], &mut d);
        assert!(d.as_slice().iter().all(|v| !v.is_subnormal()));
        assert!((1..CLASSES).all(|k| d[(k, 0)] == 0.0));
        assert!((0..CLASSES).all(|k| d[(k, 1)].is_normal()));
    }

    /// Every weight and bias gradient agrees with central finite differences (f32 maths,
    /// so a few parameters per layer with a step large enough to beat round-off).
    #[test]
    fn gradients_match_finite_differences() {
        for hidden in [Activation::Relu, Activation::Sigmoid] {
            let topo = Topology::classifier(vec![6, 5, 4, CLASSES], hidden).unwrap();
            let mut mlp = Mlp::new(topo, 1);
            for (_, b) in mlp.params.iter_mut() {
                b.iter_mut()
                    .enumerate()
                    .for_each(|(i, v)| *v = 0.05 * i as f32);
            }
            let x = Mat::from_fn(6, 7, |i, j| ((i * 3 + j * 5) as f32 * 0.61).sin());
            let labels: Vec<usize> = (0..7).map(|j| (j * 3) % CLASSES).collect();
            let mut t = Trace::default();
            mlp.forward(&x, &mut t);
            let mut dl = Mat::zeros(0, 0);
            softmax_cross_entropy(t.logits(), &labels, &mut dl);
            let (mut grads, mut delta) = (Vec::new(), Vec::new());
            mlp.backward(&t, &dl, &mut grads, &mut delta);
            let h = 1e-2f32;
            for (l, grad) in grads.iter().enumerate() {
                let (r, c) = mlp.params[l].0.shape();
                for (i, j) in [(0, 0), (r - 1, c - 1), (r / 2, c / 2)] {
                    let mut p = mlp.clone();
                    p.params[l].0[(i, j)] += h;
                    let mut m = mlp.clone();
                    m.params[l].0[(i, j)] -= h;
                    let fd = (loss_of(&p, &x, &labels) - loss_of(&m, &x, &labels))
                        / (2.0 * f64::from(h));
                    let an = f64::from(grad.w[(i, j)]);
                    assert!(
                        (fd - an).abs() < 2e-3 + 2e-2 * an.abs(),
                        "{hidden:?} W{l}[{i},{j}]: fd {fd} vs {an}"
                    );
                }
                let mut p = mlp.clone();
                p.params[l].1[0] += h;
                let mut m = mlp.clone();
                m.params[l].1[0] -= h;
                let fd =
                    (loss_of(&p, &x, &labels) - loss_of(&m, &x, &labels)) / (2.0 * f64::from(h));
                let an = f64::from(grad.b[0]);
                assert!(
                    (fd - an).abs() < 2e-3 + 2e-2 * an.abs(),
                    "{hidden:?} b{l}[0]: fd {fd} vs {an}"
                );
            }
        }
    }
}
