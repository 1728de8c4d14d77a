//! Supervised Forward-Forward (Hinton 2022), following the paper and the reference recipe.
//!
//! Each layer is trained by its own local objective: high goodness (sum of squared
//! activities) for positive data (image + true label), low for negative data (image + a
//! wrong label). A layer passes on only the orientation of its activity vector (scaled to
//! unit RMS). No gradient crosses a layer boundary, so the learner needs nothing from the
//! substrate beyond inputs applied, activities measured and updates requested.

pub mod eval;
mod fast;
pub mod goodness;
pub mod head;
pub mod labels;
mod layer_kl;
mod learner;
mod local;
pub mod recurrent;
mod state;

use serde::{Deserialize, Serialize};

pub use crate::data::negatives::NegativeLabels;
use crate::error::{Result, ensure};
use crate::learn::optim::{OptimizerConfig, Schedule};
pub use eval::{FfEvaluation, Scores};
pub use goodness::{GoodnessFn, GoodnessLoss, Sign};
pub use layer_kl::LayerKlSupervision;
pub use learner::{FfBatchStats, FfLearner, SoftSupervision};

/// How Forward-Forward runs on its substrate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FfMode {
    /// The reference recipe simulated on the substrate: activities read out and
    /// normalised on the host, goodness, local errors and ΔW (with momentum) on the
    /// host, a softmax head (default).
    #[default]
    AsSimulated,
    /// As the paper's hardware would run it (§8; [`crate::substrate::Substrate::forward_native`]):
    /// activities stay analog between layers, the periphery reads one goodness per
    /// layer per pass and normalises in the analog domain, and the weights change by
    /// per-sample rank-1 pulse trains ([`crate::substrate::Update::Trains`]) driven by
    /// the layer's inputs and its local errors d_j = c·y_j, with c one scalar per sample
    /// from the goodness reading. The host keeps no state per weight: plain SGD
    /// (momentum 0), no softmax head (classification by goodness per label), uniform
    /// negative labels (hard ones need the head), no peer normalisation. Needs a chip
    /// whose update mode drives trains (`stochastic-pulse`, `reset-only`, `ideal`) and
    /// sum-of-squares goodness.
    AnalogNative,
}

/// Analog-native FF's momentum, kept in the array (Tiki-Taka v1 style: Gokmen & Haensch
/// 2020, Front. Neurosci. 14:103): every layer has a second, *fast* array A of the same
/// chip family (other devices, started at zero). Each batch
/// 1. A ← μ·A − ρ·lr·g as per-sample rank-1 trains (the layer's inputs and local errors,
///    as plain native updates would drive the weights), μ applied as an array-wide
///    relaxation of A toward zero;
/// 2. `rows_per_transfer` rows j of A are read (a transposed read with one-hot columns,
///    through the chip's converters and read noise) and written into the weights C as
///    rank-1 trains, x = the read row, d = e_j, scaled by 1/ρ (times out/rows when not
///    every row is read each batch).
///
/// With exact arrays and every row read, C follows SGD with momentum μ at learning rate lr
/// exactly (PyTorch's convention, A = −ρ·lr·v). The host only sequences reads and
/// trains; no per-weight state leaves the arrays. Biases take plain SGD on C (the
/// transposed read does not see them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalogMomentum {
    /// Momentum μ in [0, 1): A's retention per batch (0 = off: plain SGD trains straight
    /// into the weights; default 0 here, 0.9 in analog-native mode's defaults, the
    /// reference recipe's momentum).
    pub momentum: f32,
    /// ρ: A's scale relative to the step C takes, dimensionless > 0 (default 10: A holds ten
    /// times the velocity's per-batch step, well above its pulse granularity).
    pub fast_gain: f32,
    /// Rows of every layer's A read and transferred per batch, cyclically (0 = all rows,
    /// the default).
    pub rows_per_transfer: usize,
}

impl Default for AnalogMomentum {
    fn default() -> Self {
        Self {
            momentum: 0.0,
            fast_gain: 10.0,
            rows_per_transfer: 0,
        }
    }
}

impl AnalogMomentum {
    /// Whether the fast arrays exist.
    pub fn is_on(&self) -> bool {
        self.momentum > 0.0
    }

    /// Whether every field has its default (then it is not written to files).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl FfMode {
    /// Whether this is the default (then it is not written to files).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Analog-native FF's default fast gain ρ. Chosen on the synthetic set (2×256, 10 epochs,
/// seed 1, test error by goodness; `docs/src/results/goodness-native.md`): on a
/// soft-bounds `stochastic-pulse` chip without device spread, c2c or read noise, ρ 10 /
/// 30 / 100 at lr 3e-3 gave 30.25 / 21.95 / 42.95 %, ρ 30 at lr 1e-2 10.95 %.
pub const NATIVE_FAST_GAIN: f32 = 30.0;

/// Analog-native FF's learning rate relative to the reference recipe's (1e-3 → 1e-2),
/// chosen with [`NATIVE_FAST_GAIN`].
pub const NATIVE_LR_FACTOR: f32 = 10.0;

/// Forward-Forward settings. Defaults are the reference recipe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FfConfig {
    /// Goodness threshold θ of every layer, in units of squared activity; `None` (the
    /// default) uses the number of units in the layer, i.e. unit mean-square activity.
    pub threshold: Option<f32>,
    /// Temperature T of the logistic p = σ((G − θ)/T) (dimensionless, default 1).
    pub temperature: f32,
    /// Whether positives aim for high (`max-ssq`, default) or low (`min-ssq`) goodness
    /// (the names say "ssq" for either goodness function).
    pub sign: Sign,
    /// Goodness function: `sum-sq` (default) or `sum` of the activities.
    pub goodness: GoodnessFn,
    /// Number of times a hybrid negative's mask is blurred (`negatives = hybrid`; default
    /// 10, see [`crate::data::augment::DEFAULT_BLURS`]).
    pub hybrid_blurs: usize,
    /// Sleep phases (§5): 0 (default) = positive and negative data in every update; N ≥ 1
    /// = N updates on positive data only, then N on negative data only, alternating.
    pub phase_block: usize,
    /// Value written into the true label's pixel (default 1).
    pub label_strength: f32,
    /// Value written into each of the 10 label pixels for a neutral pass, before
    /// multiplying by the label strength (default 0.1).
    pub neutral_label: f32,
    /// Peer normalisation strength λ (default 0.03, 0 = off): regresses each unit's running
    /// mean activity toward its layer's average, not gated by the ReLU so dead units revive.
    pub peer_norm: f32,
    /// Decay of the running mean activity used by peer normalisation (default 0.9).
    pub peer_decay: f32,
    /// How negative labels are chosen (default `hard`).
    pub negatives: NegativeLabels,
    /// First hidden layer (1-based) whose goodness counts in evaluation and whose
    /// activities feed the softmax head (default 2: the first layer is skipped, as in the
    /// reference recipe; use 1 for single-layer networks).
    pub eval_from: usize,
    /// Optimiser of the hidden layers (default SGD lr 1e-3, momentum 0.9, weight cost 1e-3).
    pub optimizer: OptimizerConfig,
    /// Optimiser of the softmax head (default SGD lr 0.01, momentum 0.9, weight cost 3e-3,
    /// the reference recipe's ε 0.1 with smoothed gradients).
    pub head_optimizer: OptimizerConfig,
    /// Learning-rate schedule (default: constant for half the epochs, then linear decay).
    pub schedule: Schedule,
    /// As simulated (default) or analog-native ([`FfMode`]).
    #[serde(skip_serializing_if = "FfMode::is_default")]
    pub mode: FfMode,
    /// Analog-native only: momentum kept in a fast array per layer ([`AnalogMomentum`]).
    #[serde(skip_serializing_if = "AnalogMomentum::is_default")]
    pub analog_momentum: AnalogMomentum,
}

impl Default for FfConfig {
    fn default() -> Self {
        Self {
            threshold: None,
            temperature: 1.0,
            sign: Sign::MaxSsq,
            goodness: GoodnessFn::SumSq,
            hybrid_blurs: crate::data::augment::DEFAULT_BLURS,
            phase_block: 0,
            label_strength: 1.0,
            neutral_label: 0.1,
            peer_norm: 0.03,
            peer_decay: 0.9,
            negatives: NegativeLabels::Hard,
            eval_from: 2,
            optimizer: OptimizerConfig::ff_reference(),
            head_optimizer: OptimizerConfig::Sgd {
                lr: 0.01,
                momentum: 0.9,
                weight_decay: 3e-3,
            },
            schedule: Schedule::HalfThenLinear,
            mode: FfMode::AsSimulated,
            analog_momentum: AnalogMomentum::default(),
        }
    }
}

impl FfConfig {
    /// The defaults of `mode`: the reference recipe, except that analog-native FF moves
    /// the optimiser's momentum into the arrays ([`AnalogMomentum`], same μ, fast gain
    /// [`NATIVE_FAST_GAIN`], lr × [`NATIVE_LR_FACTOR`]; the host's optimiser has momentum
    /// 0), draws uniform negatives and has no peer normalisation (see
    /// [`FfMode::AnalogNative`]).
    pub fn for_mode(mode: FfMode) -> Self {
        let mut c = Self {
            mode,
            ..Self::default()
        };
        if mode == FfMode::AnalogNative {
            if let OptimizerConfig::Sgd { lr, momentum, .. } = &mut c.optimizer {
                c.analog_momentum.momentum = *momentum;
                c.analog_momentum.fast_gain = NATIVE_FAST_GAIN;
                *lr *= NATIVE_LR_FACTOR;
                *momentum = 0.0;
            }
            c.negatives = NegativeLabels::Random;
            c.peer_norm = 0.0;
        }
        c
    }
}

impl FfConfig {
    /// Checks every setting for a network with `layers` hidden layers.
    pub fn validate(&self, layers: usize) -> Result<()> {
        if let Some(t) = self.threshold {
            ensure(t.is_finite() && t > 0.0, "ff.threshold", t, "must be > 0")?;
        }
        ensure(
            self.temperature.is_finite() && self.temperature > 0.0,
            "ff.temperature",
            self.temperature,
            "must be > 0",
        )?;
        ensure(
            self.label_strength.is_finite() && self.label_strength > 0.0,
            "ff.label_strength",
            self.label_strength,
            "must be > 0",
        )?;
        ensure(
            (0.0..=1.0).contains(&self.neutral_label),
            "ff.neutral_label",
            self.neutral_label,
            "must be in [0, 1]",
        )?;
        ensure(
            self.peer_norm.is_finite() && self.peer_norm >= 0.0,
            "ff.peer_norm",
            self.peer_norm,
            "must be ≥ 0",
        )?;
        ensure(
            (0.0..1.0).contains(&self.peer_decay),
            "ff.peer_decay",
            self.peer_decay,
            "must be in [0, 1)",
        )?;
        ensure(
            (1..=layers).contains(&self.eval_from),
            "ff.eval_from",
            self.eval_from,
            &format!("must be a hidden layer, 1..={layers} (use 1 for a single-layer network)"),
        )?;
        ensure(
            self.hybrid_blurs <= 1000,
            "ff.hybrid_blurs",
            self.hybrid_blurs,
            "must be at most 1000",
        )?;
        ensure(
            self.phase_block <= 1_000_000_000,
            "ff.phase_block",
            self.phase_block,
            "must be at most 10⁹ updates",
        )?;
        self.optimizer.validate("ff.optimizer")?;
        self.head_optimizer.validate("ff.head_optimizer")?;
        if self.mode == FfMode::AnalogNative {
            let why = "analog-native FF (ff.mode) keeps no host state per weight";
            match self.optimizer {
                OptimizerConfig::Sgd { momentum, .. } => ensure(
                    momentum == 0.0,
                    "ff.optimizer.momentum",
                    momentum,
                    &format!("must be 0: {why} (--momentum 0)"),
                )?,
                _ => {
                    return Err(crate::error::Error::param(
                        "ff.optimizer",
                        "adam",
                        format!("must be sgd: {why}"),
                    ));
                }
            }
            ensure(
                self.goodness == GoodnessFn::SumSq,
                "ff.goodness",
                "sum",
                "analog-native FF's periphery forms sum-sq goodness",
            )?;
            ensure(
                self.negatives == NegativeLabels::Random,
                "ff.negatives",
                format!("{:?}", self.negatives).to_lowercase(),
                "analog-native FF has no softmax head to choose hard negatives, and no \
                 hybrids: use random",
            )?;
            ensure(
                self.peer_norm == 0.0,
                "ff.peer_norm",
                self.peer_norm,
                "analog-native FF keeps no running means on the host: use 0",
            )?;
        }
        let m = &self.analog_momentum;
        ensure(
            (0.0..1.0).contains(&m.momentum),
            "ff.analog_momentum.momentum",
            m.momentum,
            "must be in [0, 1)",
        )?;
        ensure(
            m.fast_gain.is_finite() && (1e-6..=1e6).contains(&m.fast_gain),
            "ff.analog_momentum.fast_gain",
            m.fast_gain,
            "must be in [1e-6, 1e6]",
        )?;
        ensure(
            !m.is_on() || self.mode == FfMode::AnalogNative,
            "ff.analog_momentum.momentum",
            m.momentum,
            "is a setting of analog-native FF (ff.mode); as simulated, use the optimiser's \
             momentum",
        )?;
        Ok(())
    }

    /// The loss of a layer with `units` units.
    pub fn loss_for(&self, units: usize) -> GoodnessLoss {
        GoodnessLoss {
            threshold: self.threshold.unwrap_or(units as f32),
            temperature: self.temperature,
            sign: self.sign,
            function: self.goodness,
        }
    }
}
