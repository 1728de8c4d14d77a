//! The linear softmax head: predicts the label from the normalised activities of the
//! upper hidden layers after a neutral-label pass. It is trained by cross-entropy on its
//! own weights only (no gradient reaches the hidden layers), and its predictions choose
//! the hard negative labels.

use nalgebra::DMatrixView;

use crate::data::CLASSES;
use crate::learn::optim::{OptState, OptimizerConfig};
use crate::linalg::{Mat, Op, ensure_shape, flush_subnormal, gemm};

/// Linear map from the concatenated features of several layers to 10 logits.
#[derive(Clone, Debug)]
pub struct SoftmaxHead {
    /// One `10 × width` block per input layer.
    pub(crate) weights: Vec<Mat>,
    /// Bias of each logit.
    pub(crate) bias: Vec<f32>,
    opt_w: Vec<OptState>,
    opt_b: OptState,
    grad: Vec<Mat>,
    scratch: Vec<f32>,
    dlogits: Mat,
}

/// Cross-entropy and errors of one head training step.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeadStats {
    /// Sum over samples of −ln p(true label), nats.
    pub loss_sum: f64,
    /// Number of samples whose argmax is wrong.
    pub errors: usize,
}

/// A view of the columns holding one layer's features.
pub type Features<'a> = DMatrixView<'a, f32>;

impl SoftmaxHead {
    /// A zero-initialised head over layers of the given widths.
    pub fn new(widths: &[usize], optimizer: &OptimizerConfig) -> Self {
        Self {
            weights: widths.iter().map(|w| Mat::zeros(CLASSES, *w)).collect(),
            bias: vec![0.0; CLASSES],
            opt_w: widths
                .iter()
                .map(|w| OptState::new(optimizer, CLASSES, *w))
                .collect(),
            opt_b: OptState::new(optimizer, CLASSES, 1),
            grad: widths.iter().map(|w| Mat::zeros(CLASSES, *w)).collect(),
            scratch: Vec::new(),
            dlogits: Mat::zeros(0, 0),
        }
    }

    /// Logits (10 × n) of the features (one view per layer, each width × n).
    pub fn logits(&self, features: &[Features<'_>], out: &mut Mat) {
        let n = features.first().map_or(0, |f| f.ncols());
        ensure_shape(out, CLASSES, n);
        for j in 0..n {
            out.column_mut(j).copy_from_slice(&self.bias);
        }
        for (w, f) in self.weights.iter().zip(features) {
            gemm(1.0, w, Op::N, f, Op::N, 1.0, out);
        }
    }

    /// One training step on `features` with true `labels`. `logits` must hold
    /// [`SoftmaxHead::logits`] of the same features (it is left unchanged so callers can
    /// reuse it, e.g. to draw hard negatives from the pre-update predictions).
    pub fn train_step(
        &mut self,
        features: &[Features<'_>],
        logits: &Mat,
        labels: &[usize],
        gain: f32,
    ) -> HeadStats {
        let n = labels.len();
        ensure_shape(&mut self.dlogits, CLASSES, n);
        let mut stats = HeadStats::default();
        let inv_n = 1.0 / n as f32;
        for (j, &label) in labels.iter().enumerate() {
            let z = logits.column(j);
            let max = z.max();
            let sum: f32 = z.iter().map(|v| (v - max).exp()).sum();
            let log_sum = max + sum.ln();
            stats.loss_sum += f64::from(log_sum - z[label]);
            if z.argmax().0 != label {
                stats.errors += 1;
            }
            for k in 0..CLASSES {
                let p = (z[k] - log_sum).exp();
                self.dlogits[(k, j)] =
                    flush_subnormal((p - if k == label { 1.0 } else { 0.0 }) * inv_n);
            }
        }
        self.apply_dlogits(features, gain);
        stats
    }

    /// One training step towards soft targets (distillation): minimises
    /// `T²·KL(q ‖ softmax(z/T))` per sample, whose gradient in the logits is
    /// `T·(softmax(z/T) − q)`. `targets` holds one probability column per sample (10 × n),
    /// `logits` as in [`SoftmaxHead::train_step`]. `loss_sum` is the summed T²-scaled KL
    /// (nats); `errors` counts samples whose argmax differs from the target's.
    pub fn train_step_soft(
        &mut self,
        features: &[Features<'_>],
        logits: &Mat,
        targets: &Mat,
        temperature: f32,
        gain: f32,
    ) -> HeadStats {
        let n = targets.ncols();
        assert_eq!(targets.nrows(), CLASSES, "train_step_soft: 10 target rows");
        ensure_shape(&mut self.dlogits, CLASSES, n);
        let mut stats = HeadStats::default();
        let inv_n = 1.0 / n as f32;
        let t = temperature;
        for j in 0..n {
            let z = logits.column(j);
            let q = targets.column(j);
            let max = z.max() / t;
            let sum: f32 = z.iter().map(|v| (v / t - max).exp()).sum();
            let log_sum = max + sum.ln();
            let mut kl = 0.0f64;
            for k in 0..CLASSES {
                let log_p = z[k] / t - log_sum;
                if q[k] > 0.0 {
                    kl += f64::from(q[k]) * f64::from(q[k].ln() - log_p);
                }
                self.dlogits[(k, j)] = flush_subnormal(t * (log_p.exp() - q[k]) * inv_n);
            }
            stats.loss_sum += f64::from(t * t) * kl;
            if z.argmax().0 != q.argmax().0 {
                stats.errors += 1;
            }
        }
        self.apply_dlogits(features, gain);
        stats
    }

    /// Applies the optimiser to the gradient held in `dlogits` (10 × n, already / n).
    fn apply_dlogits(&mut self, features: &[Features<'_>], gain: f32) {
        for (i, f) in features.iter().enumerate() {
            gemm(1.0, &self.dlogits, Op::N, f, Op::T, 0.0, &mut self.grad[i]);
            self.opt_w[i].apply_gradient(
                self.weights[i].as_mut_slice(),
                self.grad[i].as_slice(),
                gain,
                true,
                &mut self.scratch,
            );
        }
        let mut gb = [0.0f32; CLASSES];
        crate::linalg::row_sums(&self.dlogits, &mut gb);
        self.opt_b
            .apply_gradient(&mut self.bias, &gb, gain, false, &mut self.scratch);
    }
}

impl SoftmaxHead {
    /// The head's weights, bias and optimiser state, for a bit-identical continuation.
    pub fn resume_tensors(&self) -> Vec<crate::tensor::Tensor> {
        use crate::tensor::{from_mat, from_vec};
        let mut out = Vec::new();
        for (i, (w, o)) in self.weights.iter().zip(&self.opt_w).enumerate() {
            out.push(from_mat(format!("head{i}.weight"), w));
            out.extend(o.state_tensors(&format!("head{i}.opt")));
        }
        out.push(from_vec("head.bias", &self.bias));
        out.extend(self.opt_b.state_tensors("head.bias_opt"));
        out
    }

    /// Restores what [`SoftmaxHead::resume_tensors`] saved.
    pub fn restore_resume(
        &mut self,
        tensors: &[crate::tensor::Tensor],
    ) -> crate::error::Result<()> {
        use crate::tensor::{find, to_mat};
        for (i, (w, o)) in self.weights.iter_mut().zip(&mut self.opt_w).enumerate() {
            let (r, c) = w.shape();
            *w = to_mat(tensors, &format!("head{i}.weight"), r, c)?;
            o.restore_state(tensors, &format!("head{i}.opt"))?;
        }
        let n = self.bias.len();
        self.bias.copy_from_slice(find(tensors, "head.bias", &[n])?);
        self.opt_b.restore_state(tensors, "head.bias_opt")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::optim::OptimizerConfig;

    /// With one-hot targets at T = 1 the soft step is exactly the hard step.
    #[test]
    fn soft_step_with_one_hot_targets_equals_hard_step() {
        let n = 30;
        let feats = Mat::from_fn(5, n, |i, j| ((i * 7 + j * 3) % 11) as f32 / 11.0);
        let labels: Vec<usize> = (0..n).map(|j| (j * 7) % CLASSES).collect();
        let targets = Mat::from_fn(CLASSES, n, |k, j| f32::from(u8::from(k == labels[j])));
        let opt = OptimizerConfig::adam(0.05, 0.0);
        let (mut a, mut b) = (SoftmaxHead::new(&[5], &opt), SoftmaxHead::new(&[5], &opt));
        let mut logits = Mat::zeros(0, 0);
        for _ in 0..5 {
            let views = [feats.columns(0, n)];
            a.logits(&views, &mut logits);
            let sa = a.train_step(&views, &logits, &labels, 1.0);
            b.logits(&views, &mut logits);
            let sb = b.train_step_soft(&views, &logits, &targets, 1.0, 1.0);
            assert!((sa.loss_sum - sb.loss_sum).abs() < 1e-4, "{sa:?} {sb:?}");
            assert_eq!(sa.errors, sb.errors);
        }
        assert_eq!(a.weights, b.weights);
        assert_eq!(a.bias, b.bias);
    }

    /// The head alone learns a linearly separable problem.
    #[test]
    fn head_learns_separable_features() {
        let n = 200;
        let feats = Mat::from_fn(CLASSES, n, |i, j| if i == j % CLASSES { 2.0 } else { 0.0 });
        let labels: Vec<usize> = (0..n).map(|j| j % CLASSES).collect();
        let mut head = SoftmaxHead::new(&[CLASSES], &OptimizerConfig::adam(0.05, 0.0));
        let mut logits = Mat::zeros(0, 0);
        let mut last = HeadStats::default();
        for _ in 0..100 {
            let views = [feats.columns(0, n)];
            head.logits(&views, &mut logits);
            last = head.train_step(&views, &logits, &labels, 1.0);
        }
        assert_eq!(last.errors, 0);
        assert!(
            last.loss_sum / (n as f64) < 0.1,
            "loss {}",
            last.loss_sum / n as f64
        );
    }
}
