//! The substrate seam: the one interface through which every learner drives a layered
//! network, the way it would drive a physical array.
//!
//! A learner may only
//! * apply a batch of input signals to a layer and read back what the layer's input lines
//!   received and the activities measured at its outputs ([`Substrate::forward`]),
//! * ask for the weights to change ([`Substrate::update`]), or to be set to targets
//!   ([`Substrate::program`], write-and-verify on a chip),
//! * read a layer backwards (`Wᵀ·d`, [`Substrate::transpose_read`]), which an analog
//!   crossbar can do by driving its columns.
//!
//! It never sees weights, conductances, nonlinearities or noise. Randomness for per-call
//! noise is passed in explicitly, so runs are reproducible. Implementations: the ideal
//! digital f32 network ([`digital::DigitalNet`]) and, later, the analog chip.

pub mod device;
pub mod digital;
pub mod ops;
pub mod wiring;

/// The conformance suite (public with the `conformance` feature: a substrate written
/// outside this crate runs it from its own tests).
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::linalg::Mat;
use crate::rng::Rng;

pub use device::{Chip, HardwareSpec};
pub use digital::DigitalNet;
pub use ops::{Counts, Ledger, Purpose};
pub use wiring::{Connectivity, Geometry, Local, Wiring};

/// The nominal nonlinearity of a layer's neurons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    /// max(0, a).
    Relu,
    /// 1 / (1 + e^(−a)).
    Sigmoid,
    /// No neuron: the output is read linearly (used for a network's logits layer).
    Linear,
}

impl Activation {
    /// The nominal transfer function.
    #[inline]
    pub fn apply(self, a: f32) -> f32 {
        match self {
            Activation::Relu => a.max(0.0),
            Activation::Sigmoid => 1.0 / (1.0 + (-a).exp()),
            Activation::Linear => a,
        }
    }

    /// The nominal derivative, written in terms of the neuron's *output* `y`, which is what
    /// a learner can measure (ReLU: 1 where y > 0; sigmoid: y(1 − y); linear: 1).
    #[inline]
    pub fn derivative_at_output(self, y: f32) -> f32 {
        match self {
            Activation::Relu => {
                if y > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Sigmoid => y * (1.0 - y),
            Activation::Linear => 1.0,
        }
    }
}

/// Where a projection takes its inputs from: one of the network's input ports
/// (`Input(0)` is the data, e.g. an image; further ports carry e.g. a clamped label), or
/// the output of a layer (`Layer(l)`, 0-based, so `Layer(0)` is the first hidden layer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Input port `i` (width `Topology::input_widths()[i]`).
    Input(usize),
    /// The output of layer `l`.
    Layer(usize),
}

/// A crossbar array from a source into a layer, with its connectivity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Projection {
    /// Where its input lines come from.
    pub from: Source,
    /// Which of the source's units each target unit sees.
    #[serde(default, skip_serializing_if = "Connectivity::is_dense")]
    pub connectivity: Connectivity,
}

/// The shape of a network: input ports, layers (units and the nominal activation of
/// each), and the **projections** into each layer. A layer's input current is the sum
/// over its incoming projections: the substrate realises a layer's projections as one
/// array whose input lines are the projections' sources one after another (in the
/// order listed), so `dims(l).0` is the sum of the sources' widths and a learner drives
/// layer `l` with its sources' signals stacked in that order. Weights a connectivity
/// leaves out do not exist (see [`wiring`]).
///
/// The common case is a **chain**: one input port and one projection into each layer,
/// from the layer below (the data for layer 0). Feed-forward learners need a chain;
/// recurrent ones add top-down projections (`Source::Layer(l + 1)` into layer `l`) and
/// extra input ports (a label layer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TopologyRepr", into = "TopologyRepr")]
pub struct Topology {
    /// `[input port 0, layer 0, …, layer L−1]` widths (port 0 first, as before).
    widths: Vec<usize>,
    /// Widths of input ports 1, 2, … (none for a chain).
    extra_inputs: Vec<usize>,
    activations: Vec<Activation>,
    projections: Vec<Vec<Projection>>,
    wiring: Vec<Wiring>,
}

/// What a topology serialises to (the wiring is derived). A chain serialises as it did
/// before projections existed (`connectivity` only when some projection is not dense).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct TopologyRepr {
    widths: Vec<usize>,
    activations: Vec<Activation>,
    #[serde(default, skip_serializing_if = "all_dense")]
    connectivity: Vec<Connectivity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    extra_inputs: Vec<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    projections: Option<Vec<Vec<Projection>>>,
}

fn all_dense(c: &[Connectivity]) -> bool {
    c.iter().all(Connectivity::is_dense)
}

impl TryFrom<TopologyRepr> for Topology {
    type Error = Error;
    fn try_from(r: TopologyRepr) -> Result<Self> {
        let mut t = Topology::new(r.widths, r.activations)?;
        if let Some(p) = r.projections {
            t = t.with_projections(r.extra_inputs, p)?;
        } else if !r.connectivity.is_empty() {
            t = t.with_connectivity(r.connectivity)?;
        }
        Ok(t)
    }
}

impl From<Topology> for TopologyRepr {
    fn from(t: Topology) -> Self {
        let chain = t.is_chain();
        Self {
            connectivity: if chain {
                t.projections
                    .iter()
                    .map(|p| p[0].connectivity.clone())
                    .collect()
            } else {
                Vec::new()
            },
            widths: t.widths,
            activations: t.activations,
            extra_inputs: t.extra_inputs,
            projections: (!chain).then_some(t.projections),
        }
    }
}

impl Topology {
    /// A chain with the given widths (inputs first) and one activation per layer.
    pub fn new(widths: Vec<usize>, activations: Vec<Activation>) -> Result<Self> {
        if widths.len() < 2 {
            return Err(Error::param(
                "layers",
                format!("{widths:?}"),
                "a network needs at least one layer",
            ));
        }
        if let Some(w) = widths.iter().find(|w| **w == 0) {
            return Err(Error::param(
                "layers",
                w,
                "every layer needs at least one unit",
            ));
        }
        if activations.len() != widths.len() - 1 {
            return Err(Error::param(
                "activations",
                activations.len(),
                "need one activation per layer",
            ));
        }
        let projections = (0..widths.len() - 1)
            .map(|l| {
                vec![Projection {
                    from: Self::below(l),
                    connectivity: Connectivity::Dense,
                }]
            })
            .collect();
        let wiring = widths
            .windows(2)
            .map(|w| Wiring::new(w[0], w[1], &Connectivity::Dense, "layers"))
            .collect::<Result<_>>()?;
        Ok(Self {
            widths,
            extra_inputs: Vec::new(),
            activations,
            projections,
            wiring,
        })
    }

    /// The source of layer `l`'s projection in a chain: the layer below (the data for 0).
    pub fn below(l: usize) -> Source {
        if l == 0 {
            Source::Input(0)
        } else {
            Source::Layer(l - 1)
        }
    }

    /// The same chain with the given connectivity of each projection (one per layer).
    pub fn with_connectivity(self, connectivity: Vec<Connectivity>) -> Result<Self> {
        if connectivity.len() != self.layers() {
            return Err(Error::param(
                "connectivity",
                connectivity.len(),
                format!("need one per layer ({})", self.layers()),
            ));
        }
        let projections = connectivity
            .into_iter()
            .enumerate()
            .map(|(l, c)| {
                vec![Projection {
                    from: Self::below(l),
                    connectivity: c,
                }]
            })
            .collect();
        self.with_projections(Vec::new(), projections)
    }

    /// The same layers with extra input ports (widths of ports 1, 2, …) and the given
    /// projections into each layer (at least one per layer; sources listed in the order
    /// their lines are stacked).
    pub fn with_projections(
        mut self,
        extra_inputs: Vec<usize>,
        projections: Vec<Vec<Projection>>,
    ) -> Result<Self> {
        if projections.len() != self.layers() {
            return Err(Error::param(
                "projections",
                projections.len(),
                format!("need a list per layer ({})", self.layers()),
            ));
        }
        if let Some(w) = extra_inputs.iter().find(|w| **w == 0) {
            return Err(Error::param(
                "inputs",
                w,
                "an input port needs at least one unit",
            ));
        }
        self.extra_inputs = extra_inputs;
        let mut wiring = Vec::with_capacity(projections.len());
        for (l, ps) in projections.iter().enumerate() {
            let key = format!("layers[{l}]");
            if ps.is_empty() {
                return Err(Error::param(
                    key,
                    "[]",
                    "a layer needs an incoming projection",
                ));
            }
            let out = self.widths[l + 1];
            let mut parts = Vec::with_capacity(ps.len());
            for (k, p) in ps.iter().enumerate() {
                let inp = self.source_width(p.from).ok_or_else(|| {
                    Error::param(
                        format!("{key}.projections[{k}].from"),
                        format!("{:?}", p.from),
                        "no such input port or layer",
                    )
                })?;
                let pkey = if ps.len() == 1 {
                    key.clone()
                } else {
                    format!("{key}.projections[{k}]")
                };
                parts.push(Wiring::new(inp, out, &p.connectivity, &pkey)?);
            }
            wiring.push(Wiring::stack(&parts, &key)?);
        }
        self.projections = projections;
        self.wiring = wiring;
        Ok(self)
    }

    /// Whether this is a chain: one input port, one projection into each layer, from the
    /// layer below.
    pub fn is_chain(&self) -> bool {
        self.extra_inputs.is_empty()
            && self
                .projections
                .iter()
                .enumerate()
                .all(|(l, p)| p.len() == 1 && p[0].from == Self::below(l))
    }

    /// The projections into layer `l`, in the order their sources are stacked.
    pub fn projections(&self, l: usize) -> &[Projection] {
        &self.projections[l]
    }

    /// Widths of the input ports (port 0 first).
    pub fn input_widths(&self) -> Vec<usize> {
        std::iter::once(self.widths[0])
            .chain(self.extra_inputs.iter().copied())
            .collect()
    }

    /// Width of a source, if it exists.
    pub fn source_width(&self, s: Source) -> Option<usize> {
        match s {
            Source::Input(0) => Some(self.widths[0]),
            Source::Input(i) => self.extra_inputs.get(i - 1).copied(),
            Source::Layer(l) => self.widths.get(l + 1).copied(),
        }
    }

    /// Whether every projection is dense.
    pub fn is_dense(&self) -> bool {
        self.projections
            .iter()
            .all(|ps| ps.iter().all(|p| p.connectivity.is_dense()))
    }

    /// The tiles of layer `l`'s array (all its projections stacked).
    pub fn wiring(&self, l: usize) -> &Wiring {
        &self.wiring[l]
    }

    /// All layers with the same activation.
    pub fn uniform(widths: Vec<usize>, act: Activation) -> Result<Self> {
        let n = widths.len().saturating_sub(1);
        Self::new(widths, vec![act; n])
    }

    /// Hidden layers with `hidden`, then a linear output layer (a classifier's logits).
    pub fn classifier(widths: Vec<usize>, hidden: Activation) -> Result<Self> {
        let n = widths.len().saturating_sub(1);
        let mut acts = vec![hidden; n];
        if let Some(last) = acts.last_mut() {
            *last = Activation::Linear;
        }
        Self::new(widths, acts)
    }

    /// Widths `[input port 0, layer 0, …, layer L−1]`.
    pub fn widths(&self) -> &[usize] {
        &self.widths
    }

    /// Number of layers L.
    pub fn layers(&self) -> usize {
        self.widths.len() - 1
    }

    /// (input lines, outputs) of layer `l` (0-based): the input lines are the stacked
    /// sources of its projections (in a chain, the layer below).
    pub fn dims(&self, l: usize) -> (usize, usize) {
        (self.wiring[l].inp, self.widths[l + 1])
    }

    /// Nominal activation of layer `l`.
    pub fn activation(&self, l: usize) -> Activation {
        self.activations[l]
    }

    /// Number of existing weights (not biases) in the whole network.
    pub fn weight_count(&self) -> usize {
        self.wiring.iter().map(Wiring::weight_count).sum()
    }
}

/// A requested change of one layer's parameters:
/// `W ← (1 − decay)·W + scale·dw`, `b ← b + scale·db`.
///
/// A digital substrate applies it exactly; a chip realises it with its update physics
/// (pulses, bounded conductances, noise), so the change that happens is only close to
/// the one asked for.
#[derive(Clone, Copy, Debug)]
pub enum Update<'a> {
    /// A dense change computed by the host (any optimiser).
    Dense {
        /// Direction of the weight change in the projection's packed layout
        /// ([`Wiring`]; for a dense projection the column-major out × in matrix), in
        /// weight units before `scale`.
        dw: &'a [f32],
        /// Direction of the bias change (out).
        db: &'a [f32],
        /// Multiplier applied to `dw` and `db`.
        scale: f32,
        /// Fraction by which every weight shrinks toward zero (weight decay), in [0, 1).
        decay: f32,
    },
    /// Plain SGD in outer-product form, `dw = d·xᵀ`, `db = Σ_columns d`: a chip may apply it
    /// as rank-1 pulse trains, one per sample, without the host forming `dw`.
    Outer {
        /// Per-sample input vectors (in × batch).
        x: &'a Mat,
        /// Per-sample output errors (out × batch).
        d: &'a Mat,
        /// Multiplier (negative learning rate, divided by the batch if the caller wants a mean).
        scale: f32,
        /// Fraction by which every weight shrinks toward zero, in [0, 1).
        decay: f32,
    },
    /// Plain SGD as **per-sample rank-1 pulse trains**, `dw = d·xᵀ` as in `Outer`, with
    /// the promise analog-native learning needs: nothing forms `dw` on the host. A chip
    /// drives every sample's x-lines (its inputs) and d-lines (its errors) and lets the
    /// devices count coincidences, by its update mode's scheme (`stochastic-pulse`:
    /// coincidence trains of `update.bl` slots; `reset-only`: at most one RESET pulse
    /// per device per sample; `ideal`: exact). A substrate without pulses (digital)
    /// applies it exactly as `Outer`: the reference of the same rule.
    Trains {
        /// Per-sample input vectors (in × batch).
        x: &'a Mat,
        /// Per-sample output errors (out × batch).
        d: &'a Mat,
        /// Multiplier (negative learning rate, divided by the batch for a mean).
        scale: f32,
        /// Fraction by which every weight shrinks toward zero, in [0, 1).
        decay: f32,
        /// Whether the bias line is driven (x = 1 on it) so biases change by Σ d too;
        /// false leaves the biases as they are (a transfer of weights only).
        bias: bool,
    },
}

impl<'a> Update<'a> {
    /// A `Trains` request as the `Outer` request of the same rule (other requests as they
    /// are): what a substrate without pulses applies.
    pub fn as_outer(self) -> Update<'a> {
        match self {
            Update::Trains {
                x, d, scale, decay, ..
            } => Update::Outer { x, d, scale, decay },
            other => other,
        }
    }

    /// Whether the request changes the biases too (every request but a `Trains` with
    /// `bias: false`).
    pub fn drives_bias(&self) -> bool {
        !matches!(self, Update::Trains { bias: false, .. })
    }
}

/// Saved state of a substrate, for checkpoints: what it is (`kind` and `identity`, e.g. a
/// chip's spec and seed) and its tensors (digital weights, or conductances).
#[derive(Clone, Debug, PartialEq)]
pub struct SubstrateState {
    /// `"digital"` or `"chip"`.
    pub kind: String,
    /// Identity and settings needed to rebuild it (JSON).
    pub identity: serde_json::Value,
    /// Named tensors (row-major, as numpy and PyTorch expect; a weight matrix is
    /// `[out, in]`).
    pub tensors: Vec<crate::tensor::Tensor>,
}

pub use crate::linalg::Precision;

/// A layered network that learners drive from outside.
pub trait Substrate: Send {
    /// Shape of the network.
    fn topology(&self) -> &Topology;

    /// Drives layer `layer` with a batch of input signals `x` (inputs × batch, one column
    /// per sample). Writes what the layer's input lines actually received into `received`
    /// (inputs × batch: `x` itself for a digital layer; after converters and any black box
    /// on a chip) and the activities measured at its outputs into `activity`
    /// (outputs × batch). Both are resized if needed. `noise` supplies per-call randomness.
    fn forward(
        &mut self,
        layer: usize,
        x: &Mat,
        received: &mut Mat,
        activity: &mut Mat,
        noise: &mut Rng,
    );

    /// Layer `layer`'s forward pass as analog-native Forward-Forward hardware runs it
    /// (Hinton 2022, §8): drives the layer with `x` as [`Substrate::forward`] does, but the
    /// activities stay analog (a chip: no ADC on its columns, and a next layer that takes
    /// `next` as voltages, without DACs), the periphery forms each sample's goodness
    /// Σ_j y_j² as an analog sum and reads it through **one converter per sample**
    /// (`goodness`, length = batch), and the same analog sum normalises the activities
    /// into `next` = y / √(G/n + ε) (outputs × batch), the next layer's input.
    ///
    /// The default is the exact computation (what a digital network does, and the
    /// reference a zero-noise chip must equal): [`Substrate::forward`], then the goodness
    /// and the RMS normalisation in f32.
    #[allow(clippy::too_many_arguments)]
    fn forward_native(
        &mut self,
        layer: usize,
        x: &Mat,
        received: &mut Mat,
        activity: &mut Mat,
        next: &mut Mat,
        goodness: &mut [f32],
        noise: &mut Rng,
    ) {
        self.forward(layer, x, received, activity, noise);
        crate::linalg::column_sum_sq(activity.as_slice(), activity.nrows(), goodness);
        if next.shape() != activity.shape() {
            *next = Mat::zeros(activity.nrows(), activity.ncols());
        }
        crate::linalg::normalize_rms(activity, next);
    }

    /// Reads layer `layer` backwards: `out ← Wᵀ·d` (inputs × batch) for errors `d`
    /// (outputs × batch), as an analog crossbar does by driving its columns. `out` is
    /// resized if needed.
    fn transpose_read(&mut self, layer: usize, d: &Mat, out: &mut Mat, noise: &mut Rng);

    /// Asks layer `layer` to change its parameters.
    fn update(&mut self, layer: usize, update: Update<'_>, noise: &mut Rng);

    /// Sets layer `layer`'s weights (dense out × in; entries the connectivity leaves out
    /// are ignored) and biases to targets, as well as the substrate can (write-and-verify
    /// on a chip).
    fn program(&mut self, layer: usize, w: &Mat, b: &[f32], noise: &mut Rng);

    /// Lets `seconds` of (simulated) time pass, e.g. for conductance drift.
    fn advance_time(&mut self, _seconds: f64) {}

    /// Sets the arithmetic of the run's large matrix products ([`Precision`], f32 until
    /// set): the substrate's own (digital: forward, transposed, update; chip: the
    /// simulated analog reads with their read-noise variance, and the host's ΔW of an
    /// outer-product update) and, through [`Substrate::precision`], the weight gradients
    /// d·xᵀ that learners form on the host for this substrate.
    fn set_precision(&mut self, precision: Precision);

    /// The arithmetic set by [`Substrate::set_precision`].
    fn precision(&self) -> Precision;

    /// The smallest change an update of layer `layer` realises: one pair pulse, in
    /// weight units (aihwkit's weight granularity), or `None` when updates are
    /// continuous (a digital network, a chip in `ideal` update mode).
    fn update_granularity(&self, _layer: usize) -> Option<f32> {
        None
    }

    /// Everything needed to restore this substrate later.
    fn save_state(&self) -> SubstrateState;

    /// Replaces the learnable state with a saved one (same topology). Returns a note when
    /// the state came from a different instance (e.g. another chip seed).
    fn load_state(&mut self, state: &SubstrateState) -> Result<Option<String>>;

    /// A short human-readable description (e.g. `digital` or `chip reram #7`).
    fn describe(&self) -> String;

    /// The operation counters of this substrate ([`ops`]): what its calls did, per layer,
    /// plus the host work learners record on it.
    fn ledger(&self) -> &Ledger;

    /// The counters, for learners to add their host work and for the run loop to switch
    /// counting on or off. Counting never changes a result.
    fn ledger_mut(&mut self) -> &mut Ledger;
}

/// The initial weights and biases every substrate starts from: weights drawn from
/// N(0, 1/fan_in) (the reference recipe's `randn / sqrt(fan_in)`), biases zero. Shared so
/// that an ideal chip starts exactly where the digital network does.
pub fn initial_parameters(topology: &Topology, seed: u64) -> Vec<(Mat, Vec<f32>)> {
    use rand_distr::{Distribution, StandardNormal};
    (0..topology.layers())
        .map(|l| {
            let (fan_in, out) = topology.dims(l);
            let mut rng = crate::rng::indexed(crate::rng::derive(seed, "init-weights"), l as u64);
            let s = 1.0 / (fan_in as f32).sqrt();
            let mut w = Mat::from_fn(out, fan_in, |_, _| {
                let z: f32 = StandardNormal.sample(&mut rng);
                z * s
            });
            let wiring = topology.wiring(l);
            if !wiring.is_dense() {
                // Sparse projections: the same draws, rescaled to each unit's own fan-in
                // (N(0, 1/fan_in) of the inputs that exist); absent weights are 0.
                let packed = wiring.pack(&w);
                w = wiring.unpack(&packed);
                for t in &wiring.tiles {
                    let k = (fan_in as f32 / t.fan_in(fan_in) as f32).sqrt();
                    w.rows_mut(t.row0, t.rows).apply(|v| *v *= k);
                }
            }
            (w, vec![0.0; out])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_validates() {
        assert!(Topology::uniform(vec![784], Activation::Relu).is_err());
        assert!(Topology::uniform(vec![784, 0, 10], Activation::Relu).is_err());
        let t = Topology::classifier(vec![4, 3, 2], Activation::Relu).unwrap();
        assert_eq!(t.layers(), 2);
        assert_eq!(t.activation(0), Activation::Relu);
        assert_eq!(t.activation(1), Activation::Linear);
        assert_eq!(t.weight_count(), 12 + 6);
    }

    #[test]
    fn projections_stack_their_sources_and_round_trip() {
        let chain = Topology::uniform(vec![6, 4, 3], Activation::Relu).unwrap();
        let json = serde_json::to_value(&chain).unwrap();
        assert!(
            json.get("projections").is_none(),
            "a chain serialises as before"
        );
        assert!(chain.is_chain());
        let p = |from, connectivity| Projection { from, connectivity };
        let rec = chain
            .clone()
            .with_projections(
                vec![2],
                vec![
                    vec![
                        p(Source::Input(0), Connectivity::Dense),
                        p(Source::Layer(1), Connectivity::Dense),
                    ],
                    vec![
                        p(Source::Layer(0), Connectivity::Dense),
                        p(
                            Source::Input(1),
                            Connectivity::Mask {
                                inputs: vec![vec![0], vec![1], vec![0, 1]],
                            },
                        ),
                    ],
                ],
            )
            .unwrap();
        assert!(!rec.is_chain());
        assert_eq!(rec.dims(0), (6 + 3, 4));
        assert_eq!(rec.dims(1), (4 + 2, 3));
        assert_eq!(rec.input_widths(), vec![6, 2]);
        // Layer 1: dense over the 4 lines of layer 0, then its own label lines.
        let w = rec.wiring(1);
        assert!(w.connects(0, 3) && w.connects(0, 4) && !w.connects(0, 5));
        assert!(w.connects(2, 4) && w.connects(2, 5));
        assert_eq!(rec.weight_count(), 9 * 4 + 3 * 4 + 4);
        let back: Topology = serde_json::from_value(serde_json::to_value(&rec).unwrap()).unwrap();
        assert_eq!(back, rec);
        let bad = chain.with_projections(
            vec![],
            vec![
                vec![p(Source::Input(1), Connectivity::Dense)],
                vec![p(Source::Layer(0), Connectivity::Dense)],
            ],
        );
        let e = bad.unwrap_err().to_string();
        assert!(
            e.contains("layers[0].projections[0].from") || e.contains("layers[0]"),
            "{e}"
        );
    }

    #[test]
    fn initial_weights_have_unit_fan_in_variance_and_are_seeded() {
        let t = Topology::uniform(vec![400, 300], Activation::Relu).unwrap();
        let p = initial_parameters(&t, 3);
        let w = &p[0].0;
        let var = w.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / w.len() as f64;
        // 120,000 samples: the variance estimate has relative std sqrt(2/n) ≈ 0.4 %.
        assert!(
            (var * 400.0 - 1.0).abs() < 0.02,
            "var*fan_in = {}",
            var * 400.0
        );
        assert_eq!(p, initial_parameters(&t, 3));
        assert_ne!(p, initial_parameters(&t, 4));
    }

    #[test]
    fn derivative_at_output_matches_finite_difference() {
        for act in [Activation::Relu, Activation::Sigmoid, Activation::Linear] {
            for a in [-1.3f32, -0.2, 0.4, 2.0] {
                let h = 1e-3;
                let fd = (act.apply(a + h) - act.apply(a - h)) / (2.0 * h);
                let d = act.derivative_at_output(act.apply(a));
                assert!((fd - d).abs() < 1e-3, "{act:?} at {a}: {fd} vs {d}");
            }
        }
    }
}
