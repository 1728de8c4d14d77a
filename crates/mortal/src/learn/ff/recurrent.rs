//! Recurrent Forward-Forward with top-down connections (Hinton 2022, §3.4): a static
//! image is treated as a video run through a recurrent net.
//!
//! The net: the image at the bottom (input port 0), hidden layers 0…L−1, and a one-of-N
//! label layer at the top (input port 1, clamped). Hidden layer `l` has two projections
//! (see [`recurrent_topology`]): bottom-up from the layer below (the image for `l = 0`)
//! and top-down from the layer above (the label layer for the last one). Its new
//! pre-normalised state is computed from the **normalised** states of both neighbours at
//! the previous time step and damped,
//! `s ← damping·s + (1 − damping)·f(W·[n_below; n_above] + b)`.
//!
//! Per image: the hidden states are initialised by one bottom-up pass (top-down lines at
//! zero), then `iterations` updates (all layers at once by default; the alternating
//! schedule updates layers 0, 2, … from the current states, then 1, 3, … from the new
//! ones). Training runs a positive copy (true label at the top) and a negative copy (a
//! wrong label drawn in proportion to the softmax head's probabilities after the
//! bottom-up pass, i.e. hard negatives) side by side; every hidden layer's goodness
//! objective at every iteration gives local errors (no gradient through time), and their
//! mean over samples and iterations is one update request per layer per batch.
//!
//! Evaluation runs the iterations with each label clamped in turn and picks the label
//! with the highest goodness (summed over layers `eval_from..=L`) averaged over the
//! iterations of `eval_window`; the one-pass softmax readout is reported beside it.

use serde::{Deserialize, Serialize};

use super::local::{check_finite, peer_term};
use super::{FfBatchStats, FfConfig, FfLearner};
use crate::data::negatives::{NegativeLabels, hard_wrong, random_wrong};
use crate::data::{CLASSES, Dataset};
use crate::error::{Error, Result, ensure};
use crate::learn::distill::argmax;
use crate::learn::ff::head::HeadStats;
use crate::linalg::{Mat, copy_columns, ensure_shape, normalize_rms};
use crate::rng::Rng;
use crate::substrate::{
    Activation, Connectivity, Geometry, Projection, Source, Substrate, Topology,
};

/// The order in which hidden layers are updated within an iteration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IterationSchedule {
    /// Every layer from the states of the previous iteration (the default).
    #[default]
    Synchronous,
    /// Layers 0, 2, 4, … from the current states, then 1, 3, … from the new ones.
    Alternating,
}

impl IterationSchedule {
    /// Name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            IterationSchedule::Synchronous => "synchronous",
            IterationSchedule::Alternating => "alternating",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "synchronous" => Ok(IterationSchedule::Synchronous),
            "alternating" => Ok(IterationSchedule::Alternating),
            _ => Err(Error::param(
                "recurrent.schedule",
                s,
                "expected synchronous or alternating",
            )),
        }
    }
}

/// Settings of recurrent FF; the defaults are the paper's (§3.4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecurrentConfig {
    /// Iterations after the bottom-up initialisation, per image (default 8).
    pub iterations: usize,
    /// Weight of the previous state in the damped update (dimensionless, in [0, 1);
    /// default 0.3: new = 0.3·previous + 0.7·computed).
    pub damping: f32,
    /// Update order of the hidden layers (default synchronous).
    pub schedule: IterationSchedule,
    /// First and last iteration (1-based, inclusive) whose goodness is averaged to pick a
    /// label in evaluation (default 3 to 5).
    pub eval_window: [usize; 2],
}

impl Default for RecurrentConfig {
    fn default() -> Self {
        Self {
            iterations: 8,
            damping: 0.3,
            schedule: IterationSchedule::Synchronous,
            eval_window: [3, 5],
        }
    }
}

impl RecurrentConfig {
    /// Checks every setting.
    pub fn validate(&self) -> Result<()> {
        ensure(
            (1..=1000).contains(&self.iterations),
            "recurrent.iterations",
            self.iterations,
            "must be in 1..=1000",
        )?;
        ensure(
            (0.0..1.0).contains(&self.damping),
            "recurrent.damping",
            self.damping,
            "must be in [0, 1) (the weight of the previous state)",
        )?;
        let [a, b] = self.eval_window;
        ensure(
            a >= 1 && a <= b && b <= self.iterations,
            "recurrent.eval_window",
            format!("{a}-{b}"),
            &format!(
                "must be iterations a..=b with 1 ≤ a ≤ b ≤ {} (the iterations)",
                self.iterations
            ),
        )
    }

    /// Parses `A-B` (or a single iteration `A`) for the evaluation window.
    pub fn parse_window(s: &str) -> Result<[usize; 2]> {
        let bad = || {
            Error::param(
                "recurrent.eval_window",
                s,
                "expected FIRST-LAST iterations, e.g. 3-5",
            )
        };
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let a: usize = a.trim().parse().map_err(|_| bad())?;
        let b: usize = b.trim().parse().map_err(|_| bad())?;
        Ok([a, b])
    }
}

/// The recurrent net's topology: `input` units at the bottom, hidden layers of `hidden`
/// widths (ReLU), a `classes`-unit label layer at the top (input port 1). Layer `l` is
/// fed by `[bottom_up[l] from the layer below; top_down[l] from the layer above]`.
pub fn recurrent_topology(
    input: usize,
    hidden: &[usize],
    classes: usize,
    bottom_up: Vec<Connectivity>,
    top_down: Vec<Connectivity>,
) -> Result<Topology> {
    let layers = hidden.len();
    if layers < 2 {
        return Err(Error::param(
            "layers",
            format!("{hidden:?}"),
            "recurrent FF needs at least 2 hidden layers",
        ));
    }
    assert_eq!(
        bottom_up.len(),
        layers,
        "one bottom-up connectivity per layer"
    );
    assert_eq!(
        top_down.len(),
        layers,
        "one top-down connectivity per layer"
    );
    let mut widths = vec![input];
    widths.extend_from_slice(hidden);
    let chain = Topology::uniform(widths, Activation::Relu)?;
    let projections = bottom_up
        .into_iter()
        .zip(top_down)
        .enumerate()
        .map(|(l, (up, down))| {
            vec![
                Projection {
                    from: Topology::below(l),
                    connectivity: up,
                },
                Projection {
                    from: if l + 1 < layers {
                        Source::Layer(l + 1)
                    } else {
                        Source::Input(1)
                    },
                    connectivity: down,
                },
            ]
        })
        .collect();
    chain.with_projections(vec![classes], projections)
}

/// Whether `t` is the shape [`recurrent_topology`] builds (every layer fed from below,
/// then from above).
pub fn is_recurrent(t: &Topology) -> bool {
    let layers = t.layers();
    layers >= 2
        && t.input_widths().len() == 2
        && (0..layers).all(|l| {
            let p = t.projections(l);
            let above = if l + 1 < layers {
                Source::Layer(l + 1)
            } else {
                Source::Input(1)
            };
            p.len() == 2 && p[0].from == Topology::below(l) && p[1].from == above
        })
}

/// Error rates of a recurrent FF network.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecurrentEvaluation {
    /// Fraction misclassified by goodness averaged over the evaluation window.
    pub error_goodness: f64,
    /// Fraction misclassified by the softmax head after the bottom-up pass.
    pub error_softmax: f64,
    /// Fraction misclassified by the goodness of each single iteration (1-based order).
    pub error_by_iteration: Vec<f64>,
    /// Images evaluated.
    pub samples: usize,
}

/// Work buffers (reused while the batch size stays the same).
#[derive(Clone, Debug, Default)]
struct Buffers {
    /// Normalised image (inputs × n) and label layer (classes × n).
    image: Mat,
    label: Mat,
    /// Per layer: state, normalised state, stacked input lines, what the lines received,
    /// computed activity.
    state: Vec<Mat>,
    norm: Vec<Mat>,
    lines: Vec<Mat>,
    received: Vec<Mat>,
    computed: Vec<Mat>,
    /// Per layer: `[received]` and local errors of every iteration, side by side.
    r_cat: Vec<Mat>,
    d_cat: Vec<Mat>,
    logits: Mat,
    neg_labels: Vec<usize>,
}

/// Recurrent Forward-Forward. The goodness losses, optimisers, peer normalisation and
/// the softmax head are those of [`FfLearner`] (settings in [`FfConfig`]).
#[derive(Clone, Debug)]
pub struct RecurrentFf {
    ff: FfLearner,
    rc: RecurrentConfig,
    buf: Buffers,
    /// The buffers of the side-by-side copies (positive and negative, or one per label),
    /// kept apart from the bottom-up pass's so neither is reallocated every batch.
    wide: Buffers,
}

/// What the dynamics report after each layer update: iteration (1-based), layer.
type Visit<'a> = dyn FnMut(usize, usize, &Buffers) -> Result<()> + 'a;

impl RecurrentFf {
    /// A learner for a topology built by [`recurrent_topology`], whose input is an image
    /// of shape `geometry`.
    pub fn new(
        cfg: FfConfig,
        rc: RecurrentConfig,
        topology: Topology,
        geometry: Geometry,
    ) -> Result<Self> {
        rc.validate()?;
        if !is_recurrent(&topology) {
            return Err(Error::param(
                "layers",
                format!("{:?}", topology.widths()),
                "not a recurrent topology (each layer fed from below, then from above)",
            ));
        }
        match cfg.negatives {
            NegativeLabels::Hard | NegativeLabels::Random => {}
            NegativeLabels::Hybrid => {
                return Err(Error::param(
                    "negatives",
                    "hybrid",
                    "recurrent FF has the label at the top: use hard or random negatives",
                ));
            }
        }
        ensure(
            cfg.phase_block == 0,
            "phase_block",
            cfg.phase_block,
            "sleep phases are not available with recurrent FF (use 0)",
        )?;
        let ff = FfLearner::with_geometry(cfg, topology, geometry)?;
        Ok(Self {
            ff,
            rc,
            buf: Buffers::default(),
            wide: Buffers::default(),
        })
    }

    /// The FF settings.
    pub fn config(&self) -> &FfConfig {
        self.ff.config()
    }

    /// The recurrent settings.
    pub fn recurrent_config(&self) -> &RecurrentConfig {
        &self.rc
    }

    /// The network shape.
    pub fn topology(&self) -> &Topology {
        self.ff.topology()
    }

    /// Host-side state (head, peer means), as [`FfLearner::tensors`].
    pub fn tensors(&self) -> Vec<crate::tensor::Tensor> {
        self.ff.tensors()
    }

    /// Restores what [`RecurrentFf::tensors`] saved.
    pub fn restore(&mut self, tensors: &[crate::tensor::Tensor]) -> Result<()> {
        self.ff.restore(tensors)
    }

    /// Everything a bit-identical continuation of training needs (the layers' learner
    /// with its optimiser state; the iteration buffers are rebuilt every batch).
    pub fn resume_tensors(&self) -> Vec<crate::tensor::Tensor> {
        self.ff.resume_tensors()
    }

    /// Restores what [`RecurrentFf::resume_tensors`] saved.
    pub fn restore_resume(&mut self, tensors: &[crate::tensor::Tensor]) -> Result<()> {
        self.ff.restore_resume(tensors)
    }

    fn shape(&mut self, n: usize) {
        Self::shape_buffers(self.ff.topology(), &mut self.buf, n);
    }

    /// Sizes `buf` for `n` columns (a no-op when it already has them).
    fn shape_buffers(t: &Topology, buf: &mut Buffers, n: usize) {
        let layers = t.layers();
        if buf.state.len() == layers && buf.state[0].ncols() == n {
            return;
        }
        let classes = t.input_widths()[1];
        buf.image = Mat::zeros(t.widths()[0], n);
        buf.label = Mat::zeros(classes, n);
        buf.state = (0..layers).map(|l| Mat::zeros(t.dims(l).1, n)).collect();
        buf.norm = buf.state.clone();
        buf.computed = buf.state.clone();
        buf.lines = (0..layers).map(|l| Mat::zeros(t.dims(l).0, n)).collect();
        buf.received = buf.lines.clone();
    }

    /// Writes the stacked input lines of layer `l` from the current normalised states:
    /// `[below; above]`, with the top-down part zero when `bottom_up_only`.
    fn write_lines(buf: &mut Buffers, l: usize, bottom_up_only: bool) {
        let layers = buf.state.len();
        let below = if l == 0 { &buf.image } else { &buf.norm[l - 1] };
        let nb = below.nrows();
        let above = if l + 1 < layers {
            &buf.norm[l + 1]
        } else {
            &buf.label
        };
        let lines = &mut buf.lines[l];
        lines.rows_mut(0, nb).copy_from(below);
        let na = above.nrows();
        if bottom_up_only {
            lines.rows_mut(nb, na).fill(0.0);
        } else {
            lines.rows_mut(nb, na).copy_from(above);
        }
    }

    /// The bottom-up initial pass: every layer's state from the layer below only.
    fn bottom_up(&mut self, sub: &mut dyn Substrate, noise: &mut Rng) {
        let buf = &mut self.buf;
        for l in 0..buf.state.len() {
            Self::write_lines(buf, l, true);
            sub.forward(
                l,
                &buf.lines[l],
                &mut buf.received[l],
                &mut buf.state[l],
                noise,
            );
            normalize_rms(&buf.state[l], &mut buf.norm[l]);
            let (rows, cols) = buf.state[l].shape();
            crate::learn::host::normalise(sub.ledger_mut(), rows, cols);
        }
    }

    /// Switches to the wide buffers, holding `copies` side-by-side copies of the current
    /// `n` columns of image, states and normalised states (one bottom-up pass, then
    /// several labels). [`RecurrentFf::narrow`] switches back.
    fn replicate(&mut self, copies: usize) {
        let n = self.buf.image.ncols();
        let (one, wide) = (&self.buf, &mut self.wide);
        Self::shape_buffers(self.ff.topology(), wide, copies * n);
        for k in 0..copies {
            copy_columns(&one.image, 0, &mut wide.image, k * n, n);
            for (l, (s, m)) in one.state.iter().zip(&one.norm).enumerate() {
                copy_columns(s, 0, &mut wide.state[l], k * n, n);
                copy_columns(m, 0, &mut wide.norm[l], k * n, n);
            }
        }
        std::mem::swap(&mut self.buf, &mut self.wide);
    }

    /// Back to the bottom-up pass's buffers after [`RecurrentFf::replicate`].
    fn narrow(&mut self) {
        std::mem::swap(&mut self.buf, &mut self.wide);
    }

    /// Updates layer `l` once: forward from its current lines, then damps its state.
    fn step_layer(&mut self, sub: &mut dyn Substrate, l: usize, noise: &mut Rng) {
        let keep = self.rc.damping;
        let buf = &mut self.buf;
        sub.forward(
            l,
            &buf.lines[l],
            &mut buf.received[l],
            &mut buf.computed[l],
            noise,
        );
        for (s, c) in buf.state[l]
            .as_mut_slice()
            .iter_mut()
            .zip(buf.computed[l].as_slice())
        {
            *s = keep * *s + (1.0 - keep) * c;
        }
        // Host work per layer update: damping (3 FLOPs/element), normalisation of the
        // new state and its goodness (used for learning or evaluation).
        let (rows, cols) = buf.state[l].shape();
        let ledger = sub.ledger_mut();
        ledger.host(
            crate::substrate::Purpose::Normalise,
            3 * (rows * cols) as u64,
            12 * (rows * cols) as u64,
        );
        crate::learn::host::normalise(ledger, rows, cols);
        crate::learn::host::goodness(ledger, rows, cols);
    }

    /// Runs the iterations from the current states, calling `visit` after each layer
    /// update (iteration 1-based, layer).
    fn iterate(
        &mut self,
        sub: &mut dyn Substrate,
        noise: &mut Rng,
        visit: &mut Visit<'_>,
    ) -> Result<()> {
        let layers = self.buf.state.len();
        for t in 1..=self.rc.iterations {
            match self.rc.schedule {
                IterationSchedule::Synchronous => {
                    for l in 0..layers {
                        Self::write_lines(&mut self.buf, l, false);
                    }
                    for l in 0..layers {
                        self.step_layer(sub, l, noise);
                        visit(t, l, &self.buf)?;
                    }
                    let buf = &mut self.buf;
                    for l in 0..layers {
                        normalize_rms(&buf.state[l], &mut buf.norm[l]);
                    }
                }
                IterationSchedule::Alternating => {
                    for parity in 0..2 {
                        for l in (parity..layers).step_by(2) {
                            Self::write_lines(&mut self.buf, l, false);
                            self.step_layer(sub, l, noise);
                            visit(t, l, &self.buf)?;
                            let buf = &mut self.buf;
                            normalize_rms(&buf.state[l], &mut buf.norm[l]);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes normalised one-hot labels (unit RMS per column, times the label strength)
    /// into columns `col0..` of the label layer.
    fn write_labels(&mut self, col0: usize, labels: &[usize]) {
        let classes = self.buf.label.nrows();
        let v = self.ff.config().label_strength * (classes as f32).sqrt();
        for (j, &y) in labels.iter().enumerate() {
            let mut c = self.buf.label.column_mut(col0 + j);
            c.fill(0.0);
            c[y] = v;
        }
    }

    /// The softmax head's logits on the bottom-up pass (columns `0..n` of the states).
    fn head_logits(&mut self, n: usize) {
        let first = self.ff.config().eval_from - 1;
        let layers = self.buf.state.len();
        let features: Vec<_> = (first..layers)
            .map(|l| self.buf.norm[l].columns(0, n))
            .collect();
        self.ff.head.logits(&features, &mut self.buf.logits);
    }

    /// One training step on a batch: bottom-up pass, head step and negative labels, then
    /// the positive and negative copies iterated side by side, one update per layer.
    pub fn train_batch(
        &mut self,
        sub: &mut dyn Substrate,
        images: &Mat,
        labels: &[usize],
        gain: f32,
        negatives: &mut Rng,
        noise: &mut Rng,
    ) -> Result<FfBatchStats> {
        let b = labels.len();
        assert_eq!(images.ncols(), b, "train_batch: one label per image");
        assert_eq!(sub.topology(), self.ff.topology(), "substrate topology");
        let layers = self.ff.topology().layers();
        let iters = self.rc.iterations;
        let mut stats = FfBatchStats {
            layer_loss_sum: vec![0.0; layers],
            pair_errors: vec![0; layers],
            head: HeadStats::default(),
            samples: b,
            scored: 2 * b,
            hint_loss_sum: 0.0,
        };
        // Bottom-up pass of the images alone (the label plays no part in it), its head
        // step, and the negative labels drawn from the head's probabilities.
        self.shape(b);
        normalize_rms(images, &mut self.buf.image);
        self.bottom_up(sub, noise);
        self.head_logits(b);
        {
            let first = self.ff.config().eval_from - 1;
            let features: Vec<_> = (first..layers)
                .map(|l| self.buf.norm[l].columns(0, b))
                .collect();
            stats.head = self
                .ff
                .head
                .train_step(&features, &self.buf.logits, labels, gain);
            let f: usize = features.iter().map(|m| m.nrows()).sum();
            crate::learn::host::head_logits(sub.ledger_mut(), f, crate::data::CLASSES, b);
            crate::learn::host::head_step(sub.ledger_mut(), f, crate::data::CLASSES, b);
        }
        let hard = self.ff.config().negatives == NegativeLabels::Hard;
        let mut neg = Vec::with_capacity(b);
        for (j, &truth) in labels.iter().enumerate() {
            neg.push(if hard {
                hard_wrong(self.buf.logits.column(j).as_slice(), truth, negatives)
            } else {
                random_wrong(truth, negatives)
            });
        }
        // Positive and negative copies side by side (2B columns), starting from the same
        // bottom-up states.
        self.replicate(2);
        self.write_labels(0, labels);
        self.write_labels(b, &neg);
        let t = self.ff.topology();
        let dims: Vec<(usize, usize)> = (0..layers).map(|l| t.dims(l)).collect();
        let acts: Vec<_> = (0..layers).map(|l| t.activation(l)).collect();
        let buf = &mut self.buf;
        buf.r_cat.resize_with(layers, Mat::default);
        buf.d_cat.resize_with(layers, Mat::default);
        for ((r, d), (inp, out)) in buf.r_cat.iter_mut().zip(&mut buf.d_cat).zip(&dims) {
            ensure_shape(r, *inp, 2 * b * iters);
            ensure_shape(d, *out, 2 * b * iters);
        }
        let cfg = self.ff.cfg.clone();
        let losses = self.ff.losses.clone();
        let keep = self.rc.damping;
        let mut peer = std::mem::take(&mut self.ff.peer);
        let mut r_cat = std::mem::take(&mut self.buf.r_cat);
        let mut d_cat = std::mem::take(&mut self.buf.d_cat);
        let (mut g, mut coeff, mut term) = (Vec::new(), Vec::new(), Vec::new());
        let mut visit = |it: usize, l: usize, buf: &Buffers| -> Result<()> {
            let state = &buf.state[l];
            let rows = state.nrows();
            g.resize(2 * b, 0.0);
            coeff.resize(2 * b, 0.0);
            cfg.goodness.columns(state.as_slice(), rows, &mut g);
            check_finite(&g, l, "recurrent")?;
            for (j, gj) in g.iter().enumerate() {
                let s = losses[l].sample(*gj, j < b);
                stats.layer_loss_sum[l] += f64::from(s.log_loss) / iters as f64;
                coeff[j] = s.coeff;
            }
            if it == iters {
                for j in 0..b {
                    if losses[l].logit(g[b + j]) > losses[l].logit(g[j]) {
                        stats.pair_errors[l] += 1;
                    }
                }
            }
            peer_term(
                &cfg,
                &mut peer[l],
                &state.as_slice()[..rows * b],
                rows,
                &mut term,
            );
            // Local errors of the computed activity: the goodness gradient at the damped
            // state, times (1 − damping), gated by the neuron's derivative; the peer term
            // (positives only) is not gated, so dead units revive.
            let act = acts[l];
            let off = (it - 1) * 2 * b;
            let d = &mut d_cat[l].as_mut_slice()[off * rows..(off + 2 * b) * rows];
            let comp = buf.computed[l].as_slice();
            for (j, ((dc, sc), cc)) in d
                .chunks_mut(rows)
                .zip(state.as_slice().chunks(rows))
                .zip(comp.chunks(rows))
                .enumerate()
            {
                for (i, ((o, s), c)) in dc.iter_mut().zip(sc).zip(cc).enumerate() {
                    let e = cfg.goodness.error(coeff[j], *s)
                        * (1.0 - keep)
                        * act.derivative_at_output(*c);
                    let p = if j < b {
                        term.get(i).copied().unwrap_or(0.0)
                    } else {
                        0.0
                    };
                    *o = crate::linalg::flush_subnormal(e - p);
                }
            }
            copy_columns(&buf.received[l], 0, &mut r_cat[l], off, 2 * b);
            Ok(())
        };
        let result = self.iterate(sub, noise, &mut visit);
        self.ff.peer = peer;
        self.buf.r_cat = r_cat;
        self.buf.d_cat = d_cat;
        self.narrow();
        result?;
        let wide = &self.wide;
        for l in 0..layers {
            let (rows, cols) = wide.d_cat[l].shape();
            crate::learn::host::local_errors(sub.ledger_mut(), rows, cols);
            self.ff.request_update(
                sub,
                l,
                &wide.d_cat[l],
                &wide.r_cat[l],
                b * iters,
                gain,
                noise,
            );
        }
        self.buf.neg_labels = neg;
        Ok(stats)
    }

    /// The negative labels of the last training batch.
    pub fn last_negatives(&self) -> &[usize] {
        &self.buf.neg_labels
    }

    /// Per-label goodness scores of `images` at every iteration (`out[t]`: classes × n,
    /// `s·Σ_l` of the layers' logits as in feed-forward evaluation) and the head's logits
    /// after the bottom-up pass.
    pub fn scores(
        &mut self,
        sub: &mut dyn Substrate,
        images: &Mat,
        noise: &mut Rng,
    ) -> Result<(Vec<Mat>, Mat)> {
        let n = images.ncols();
        let classes = self.ff.topology().input_widths()[1];
        self.shape(n);
        normalize_rms(images, &mut self.buf.image);
        self.bottom_up(sub, noise);
        self.head_logits(n);
        let logits = self.buf.logits.clone();
        self.replicate(classes);
        for k in 0..classes {
            self.write_labels(k * n, &vec![k; n]);
        }
        let first = self.ff.config().eval_from - 1;
        let gfn = self.ff.config().goodness;
        let losses = self.ff.losses.clone();
        let mut out = vec![Mat::zeros(classes, n); self.rc.iterations];
        let mut g = Vec::new();
        let mut visit = |it: usize, l: usize, buf: &Buffers| -> Result<()> {
            if l < first {
                return Ok(());
            }
            let state = &buf.state[l];
            g.resize(state.ncols(), 0.0);
            gfn.columns(state.as_slice(), state.nrows(), &mut g);
            check_finite(&g, l, "evaluation")?;
            let o = &mut out[it - 1];
            for k in 0..classes {
                for j in 0..n {
                    o[(k, j)] += losses[l].score(g[k * n + j]);
                }
            }
            Ok(())
        };
        let result = self.iterate(sub, noise, &mut visit);
        self.narrow();
        result?;
        Ok((out, logits))
    }

    /// Error rates on a whole dataset, in batches of
    /// [`EVAL_BATCH`](super::eval::EVAL_BATCH) images.
    pub fn evaluate(
        &mut self,
        sub: &mut dyn Substrate,
        data: &Dataset,
        noise: &mut Rng,
    ) -> Result<RecurrentEvaluation> {
        let iters = self.rc.iterations;
        let [w0, w1] = self.rc.eval_window;
        let mut images = Mat::zeros(0, 0);
        let mut wrong_t = vec![0usize; iters];
        let (mut wrong_g, mut wrong_s) = (0usize, 0usize);
        let idx: Vec<usize> = (0..data.len()).collect();
        for chunk in idx.chunks(super::eval::EVAL_BATCH) {
            if images.ncols() != chunk.len() {
                images = Mat::zeros(data.pixels(), chunk.len());
            }
            data.gather(chunk, &mut images);
            let (by_iter, logits) = self.scores(sub, &images, noise)?;
            if logits.iter().any(|v| !v.is_finite()) {
                return Err(Error::Diverged(
                    "evaluation produced non-finite scores".into(),
                ));
            }
            let mut window = Mat::zeros(logits.nrows(), chunk.len());
            for m in &by_iter[w0 - 1..w1] {
                window += m;
            }
            for (j, &i) in chunk.iter().enumerate() {
                let truth = data.label(i);
                for (t, m) in by_iter.iter().enumerate() {
                    wrong_t[t] += usize::from(argmax(m.column(j).as_slice()) != truth);
                }
                wrong_g += usize::from(argmax(window.column(j).as_slice()) != truth);
                wrong_s += usize::from(argmax(logits.column(j).as_slice()) != truth);
            }
        }
        let n = data.len().max(1) as f64;
        Ok(RecurrentEvaluation {
            error_goodness: wrong_g as f64 / n,
            error_softmax: wrong_s as f64 / n,
            error_by_iteration: wrong_t.iter().map(|w| *w as f64 / n).collect(),
            samples: data.len(),
        })
    }

    /// The head's logits after the bottom-up pass for every image of `data` (classes × n).
    pub fn logits(&mut self, sub: &mut dyn Substrate, data: &Dataset, noise: &mut Rng) -> Mat {
        let mut out = Mat::zeros(CLASSES, data.len());
        let mut images = Mat::zeros(0, 0);
        let idx: Vec<usize> = (0..data.len()).collect();
        for chunk in idx.chunks(super::eval::EVAL_BATCH) {
            if images.ncols() != chunk.len() {
                images = Mat::zeros(data.pixels(), chunk.len());
            }
            data.gather(chunk, &mut images);
            self.shape(chunk.len());
            normalize_rms(&images, &mut self.buf.image);
            self.bottom_up(sub, noise);
            self.head_logits(chunk.len());
            copy_columns(&self.buf.logits, 0, &mut out, chunk[0], chunk.len());
        }
        out
    }
}

#[cfg(test)]
#[path = "recurrent_tests.rs"]
mod tests;
