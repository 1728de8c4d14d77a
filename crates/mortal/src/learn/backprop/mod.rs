//! Backprop: the digital baseline ([`BpLearner`]) and the four ways people get
//! backprop-trained networks onto analog hardware, all driving the same
//! [`crate::substrate::Substrate`] the Forward-Forward learner drives:
//!
//! * [`deploy`]: train digitally, then program the weights onto the chip (write-verify);
//! * [`hwa`]: hardware-aware training (noise injected from the chip's *nominal* spec),
//!   then deploy;
//! * [`pat`]: physics-aware training: forward on the chip, backward through the host's
//!   nominal digital twin;
//! * [`analog`]: analog SGD: forward on the chip, backward by transposed reads of the same
//!   crossbars, rank-1 pulsed updates.
//!
//! [`onchip`] runs a classifier on a substrate (forward into a [`Trace`], evaluation).

pub mod analog;
pub mod deploy;
pub mod hwa;
pub mod model;
pub mod onchip;
pub mod pat;
pub mod transfer;

use serde::{Deserialize, Serialize};

use crate::data::{Dataset, PIXELS};
use crate::error::{Error, Result};
use crate::learn::optim::{OptState, OptimizerConfig, Schedule};
use crate::linalg::Mat;
use crate::substrate::{Activation, Ledger, Topology};
pub use model::{LayerGrad, Mlp, Trace, backward_deltas, softmax_cross_entropy};

/// Backprop settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BpConfig {
    /// Activation of the hidden layers (default ReLU); the output layer is linear.
    pub hidden: Activation,
    /// Optimiser (default SGD lr 0.05, momentum 0.9, weight cost 1e-4).
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule (default: constant for half the epochs, then linear decay).
    pub schedule: Schedule,
    /// The Tiki-Taka routes' transfer (`bp-ttv2`, `bp-cttv2`, `bp-agad`; ignored by the
    /// others).
    #[serde(default)]
    pub transfer: transfer::TransferConfig,
}

impl Default for BpConfig {
    fn default() -> Self {
        Self {
            hidden: Activation::Relu,
            optimizer: OptimizerConfig::Sgd {
                lr: 0.05,
                momentum: 0.9,
                weight_decay: 1e-4,
            },
            schedule: Schedule::HalfThenLinear,
            transfer: transfer::TransferConfig::default(),
        }
    }
}

impl BpConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if self.hidden == Activation::Linear {
            return Err(Error::param(
                "bp.hidden",
                "linear",
                "hidden layers need a nonlinearity (relu or sigmoid)",
            ));
        }
        self.optimizer.validate("bp.optimizer")
    }
}

/// The image classifier with these hidden widths: 784 inputs, hidden layers with
/// activation `hidden`, 10 linear outputs (the logits).
pub fn classifier_topology(hidden_widths: &[usize], hidden: Activation) -> Result<Topology> {
    let mut widths = vec![PIXELS];
    widths.extend_from_slice(hidden_widths);
    widths.push(crate::data::CLASSES);
    Topology::classifier(widths, hidden)
}

/// Statistics of one training batch.
#[derive(Clone, Copy, Debug, Default)]
pub struct BpBatchStats {
    /// Sum of cross-entropy losses, nats.
    pub loss_sum: f64,
    /// Misclassified training samples.
    pub errors: usize,
    /// Samples.
    pub samples: usize,
}

impl BpBatchStats {
    /// Adds another batch.
    pub fn accumulate(&mut self, o: &BpBatchStats) {
        self.loss_sum += o.loss_sum;
        self.errors += o.errors;
        self.samples += o.samples;
    }
}

/// The digital backprop learner: model, optimiser state and work buffers.
#[derive(Clone, Debug)]
pub struct BpLearner {
    cfg: BpConfig,
    /// The model being trained.
    pub mlp: Mlp,
    opt_w: Vec<OptState>,
    opt_b: Vec<OptState>,
    trace: Trace,
    grads: Vec<LayerGrad>,
    delta: Vec<Mat>,
    dlogits: Mat,
    scratch: Vec<f32>,
    /// The host's digital work (operation counters): the model's passes and optimiser.
    pub ledger: Ledger,
}

/// Counts a digital model's forward (and, with `backward`, backward) pass of `cols`
/// samples over every layer of `topo` (existing weights only).
pub fn count_model(ledger: &mut Ledger, topo: &Topology, cols: usize, backward: bool) {
    for l in 0..topo.layers() {
        let (w, out) = (topo.wiring(l).weight_count(), topo.dims(l).1);
        crate::learn::host::model_pass(ledger, w + out, out, cols, false);
        if backward {
            crate::learn::host::model_pass(ledger, w + out, out, cols, true);
        }
    }
}

/// Counts only the backward pass of a digital model (the twin of `bp-pat`, whose forward
/// pass runs on the chip).
pub fn count_model_backward(ledger: &mut Ledger, topo: &Topology, cols: usize) {
    for l in 0..topo.layers() {
        let (w, out) = (topo.wiring(l).weight_count(), topo.dims(l).1);
        crate::learn::host::model_pass(ledger, w + out, out, cols, true);
    }
}

impl BpLearner {
    /// A learner for hidden widths `hidden` (inputs 784 and 10 outputs are added).
    pub fn new(cfg: BpConfig, hidden_widths: &[usize], seed: u64) -> Result<Self> {
        cfg.validate()?;
        let topology = classifier_topology(hidden_widths, cfg.hidden)?;
        Ok(Self::from_model(cfg, Mlp::new(topology, seed)))
    }

    /// A learner for a classifier of any shape (e.g. local receptive fields: see
    /// [`crate::train::layers::classifier_topology`]); weights its connectivity leaves out
    /// stay zero (their gradients are dropped).
    pub fn with_topology(cfg: BpConfig, topology: Topology, seed: u64) -> Result<Self> {
        cfg.validate()?;
        Ok(Self::from_model(cfg, Mlp::new(topology, seed)))
    }

    /// A learner that continues training `mlp`.
    pub fn from_model(cfg: BpConfig, mlp: Mlp) -> Self {
        let topo = mlp.topology().clone();
        let opt_w = (0..topo.layers())
            .map(|l| {
                let (i, o) = topo.dims(l);
                OptState::new(&cfg.optimizer, o, i)
            })
            .collect();
        let opt_b = (0..topo.layers())
            .map(|l| OptState::new(&cfg.optimizer, topo.dims(l).1, 1))
            .collect();
        Self {
            cfg,
            mlp,
            opt_w,
            opt_b,
            trace: Trace::default(),
            grads: Vec::new(),
            delta: Vec::new(),
            dlogits: Mat::zeros(0, 0),
            scratch: Vec::new(),
            ledger: Ledger::new(0),
        }
    }

    /// The settings.
    pub fn config(&self) -> &BpConfig {
        &self.cfg
    }

    /// One SGD/Adam step on a batch (images: 784 × B in [0, 1]).
    pub fn train_batch(
        &mut self,
        images: &Mat,
        labels: &[usize],
        gain: f32,
    ) -> Result<BpBatchStats> {
        self.mlp.forward(images, &mut self.trace);
        let (loss_sum, errors) =
            softmax_cross_entropy(self.trace.logits(), labels, &mut self.dlogits);
        if !loss_sum.is_finite() {
            return Err(Error::Diverged(format!(
                "backprop loss is {loss_sum}; lower the learning rate"
            )));
        }
        count_model(&mut self.ledger, self.mlp.topology(), labels.len(), true);
        crate::learn::host::softmax_error(&mut self.ledger, self.dlogits.nrows(), labels.len());
        self.mlp
            .backward(&self.trace, &self.dlogits, &mut self.grads, &mut self.delta);
        // Sparse layers: only existing weights learn (dense maths, gradients masked).
        let topo = self.mlp.topology();
        for (l, g) in self.grads.iter_mut().enumerate() {
            let wiring = topo.wiring(l);
            if !wiring.is_dense() {
                g.w = wiring.unpack(&wiring.pack(&g.w));
            }
        }
        let grads = std::mem::take(&mut self.grads);
        self.apply_gradients(&grads, gain);
        self.grads = grads;
        Ok(BpBatchStats {
            loss_sum,
            errors,
            samples: labels.len(),
        })
    }

    /// One optimiser step of the model from gradients computed elsewhere (e.g. through a
    /// noisy forward pass, [`hwa`]). `gain` is the schedule multiplier.
    pub fn apply_gradients(&mut self, grads: &[LayerGrad], gain: f32) {
        let adam = !self.opt_w.first().is_some_and(OptState::is_sgd);
        let params = self.mlp.topology().weight_count()
            + (0..self.mlp.topology().layers())
                .map(|l| self.mlp.topology().dims(l).1)
                .sum::<usize>();
        crate::learn::host::optimiser(&mut self.ledger, params, adam);
        for (l, g) in grads.iter().enumerate() {
            let (w, b) = &mut self.mlp.params[l];
            self.opt_w[l].apply_gradient(
                w.as_mut_slice(),
                g.w.as_slice(),
                gain,
                true,
                &mut self.scratch,
            );
            self.opt_b[l].apply_gradient(b, &g.b, gain, false, &mut self.scratch);
        }
    }

    /// Fraction of `data` misclassified.
    pub fn evaluate(&mut self, data: &Dataset) -> f64 {
        evaluate_mlp(&self.mlp, data, &mut self.trace)
    }
}

/// Fraction of `data` that `mlp` misclassifies (batches of 100).
pub fn evaluate_mlp(mlp: &Mlp, data: &Dataset, trace: &mut Trace) -> f64 {
    error_of(&mlp_logits(mlp, data, trace), data)
}

/// The output logits (classes × n) of `mlp` for every image of `data` (batches of 100).
pub fn mlp_logits(mlp: &Mlp, data: &Dataset, trace: &mut Trace) -> Mat {
    batched_logits(data, |x| {
        mlp.forward(x, trace);
        trace.logits().clone()
    })
}

/// Runs `forward` (inputs × batch → classes × batch) over `data` in batches of 100, in
/// order; the logits of every image (classes × n).
pub fn batched_logits(data: &Dataset, mut forward: impl FnMut(&Mat) -> Mat) -> Mat {
    let mut out = Mat::zeros(0, data.len());
    let idx: Vec<usize> = (0..data.len()).collect();
    let mut x = Mat::zeros(0, 0);
    for chunk in idx.chunks(100) {
        if x.ncols() != chunk.len() {
            x = Mat::zeros(data.pixels(), chunk.len());
        }
        data.gather(chunk, &mut x);
        let logits = forward(&x);
        if out.nrows() != logits.nrows() {
            out = Mat::zeros(logits.nrows(), data.len());
        }
        for (j, &i) in chunk.iter().enumerate() {
            out.column_mut(i).copy_from(&logits.column(j));
        }
    }
    out
}

/// Fraction of `data` whose largest logit is not at the true label.
pub fn error_of(logits: &Mat, data: &Dataset) -> f64 {
    let wrong = (0..data.len())
        .filter(|&i| logits.column(i).argmax().0 != data.label(i))
        .count();
    wrong as f64 / data.len().max(1) as f64
}
