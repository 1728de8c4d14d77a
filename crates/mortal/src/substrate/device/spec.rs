//! The hardware specification of an analog chip family: every physical parameter, with
//! its unit, its default and where the default comes from.
//!
//! A [`HardwareSpec`] describes a *population* of chips; a [`super::Chip`] is one instance
//! drawn from it with a `chip_seed`. Defaults ([`HardwareSpec::default`]) are those of the
//! `reram` preset (see [`super::presets`]); a TOML file only needs the keys it changes.
//!
//! Units used throughout:
//! * conductance: µS;
//! * *normalised weight*: (G⁺ − G⁻)/(g_max − g_min), in [−1, 1] for a pair inside the
//!   nominal range (aihwkit's normalised device weight);
//! * *normalised input*: the voltage applied to an input line, in [−1, 1] at the DAC's full
//!   scale (aihwkit's `inp_bound = 1`);
//! * *normalised output*: Σ_j ŵ_ij·u_j, the column current in units of (full-scale weight ×
//!   full-scale input) (aihwkit's output units for `out_noise` and `out_bound`);
//! * *network units*: the weights, signals and activities the learner sees.
//!
//! References cited below:
//! * aihwkit: IBM Analog Hardware Acceleration Kit, `IOParameters` defaults,
//!   `ReRamSBPresetDevice` (a loose soft-bounds fit to Gong et al., Nat. Commun. 9, 2102,
//!   2018), `PCMLikeNoiseModel` (Nandakumar et al., ICECS 2019), `MappingParameter`.
//! * Joshi et al., "Accurate deep neural network inference using computational phase-change
//!   memory", Nat. Commun. 11, 2473 (2020): PCM drift exponent ν ≈ 0.05–0.06 with a
//!   device-to-device spread, t₀ ≈ 20 s.
//! * Nandakumar et al., "Mixed-precision deep learning based on computational memory",
//!   Front. Neurosci. 14, 406 (2020): digital accumulation χ with whole-pulse transfers.

use serde::{Deserialize, Serialize};

use crate::error::{Result, ensure};

/// A chip family: everything needed (with a seed) to build a chip.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HardwareSpec {
    /// Name shown in descriptions (`chip NAME #seed`). Default `"reram"`.
    pub name: String,
    /// Product of the factors passed to [`HardwareSpec::scaled`] (dimensionless,
    /// informational, default 1). Not used by the physics: the scaling is already applied
    /// to the fields.
    pub variation: f64,
    /// Crossbar arrays: conductance range, levels, weight mapping.
    pub crossbar: CrossbarSpec,
    /// Write-and-verify programming.
    pub programming: ProgrammingSpec,
    /// Read noise of every MVM (forward and transposed).
    pub read: ReadSpec,
    /// Conductance drift.
    pub drift: DriftSpec,
    /// Stuck-at faults.
    pub faults: FaultSpec,
    /// Device response to programming pulses.
    pub device: DeviceSpec,
    /// How requested updates become device changes.
    pub update: UpdateSpec,
    /// Input digital-to-analog converters.
    pub dac: DacSpec,
    /// Output analog-to-digital converters.
    pub adc: AdcSpec,
    /// Per-neuron nonlinearities of hidden layers.
    pub neuron: NeuronSpec,
    /// The opaque stochastic black box between layers.
    pub black_box: BlackBoxSpec,
    /// The periphery of analog-native Forward-Forward (`ff.mode = "analog-native"`):
    /// the goodness ADC and the analog chain between layers. Unused otherwise; omitted
    /// from files while it has its defaults.
    #[serde(skip_serializing_if = "PeripherySpec::is_default")]
    pub periphery: PeripherySpec,
}

impl Default for HardwareSpec {
    fn default() -> Self {
        Self {
            name: "reram".into(),
            variation: 1.0,
            crossbar: CrossbarSpec::default(),
            programming: ProgrammingSpec::default(),
            read: ReadSpec::default(),
            drift: DriftSpec::default(),
            faults: FaultSpec::default(),
            device: DeviceSpec::default(),
            update: UpdateSpec::default(),
            dac: DacSpec::default(),
            adc: AdcSpec::default(),
            neuron: NeuronSpec::default(),
            black_box: BlackBoxSpec::default(),
            periphery: PeripherySpec::default(),
        }
    }
}

/// How a signed weight is written onto a differential pair (G⁺, G⁻).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PairMapping {
    /// Around the middle of the range: G± = g_c ± ŵ·(g_max − g_min)/2 with
    /// g_c = (g_min + g_max)/2. Both devices start near their symmetry point, where
    /// soft-bounds devices respond most symmetrically (best for in-situ training).
    Centered,
    /// One device at g_min, the other carries |ŵ|: G⁺ = g_min + ŵ·(g_max − g_min) for
    /// ŵ ≥ 0 (aihwkit's `SinglePairConductanceConverter`, the usual inference mapping).
    OneSided,
}

/// Crossbar conductances and the weight mapping.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrossbarSpec {
    /// Lowest nominal conductance, µS (default 0.1; aihwkit's PCM conductance converters
    /// use a small non-zero g_min).
    pub g_min: f64,
    /// Highest nominal conductance, µS (default 25; aihwkit `PCMLikeNoiseModel` g_max).
    pub g_max: f64,
    /// Number of programmable conductance levels between g_min and g_max used by
    /// write-and-verify (0 = continuous, else ≥ 2; default 0). Pulsed updates have their
    /// own granularity (`device.dw_min`).
    pub levels: u32,
    /// Pair mapping used by write-and-verify (default `centered`).
    pub mapping: PairMapping,
    /// Weight range (gain) of a layer as a multiple of 1/√fan_in (default 4: the initial
    /// weights N(0, 1/fan_in) span ±4 standard deviations). The gain is the host-side
    /// digital factor w = gain·ŵ (aihwkit's weight scaling).
    pub weight_range_per_sqrt_fanin: f64,
    /// Fraction of the range the largest |target| may fill when programming (0 < ω ≤ 1,
    /// default 1; aihwkit `MappingParameter.weight_scaling_omega`). Programming sets
    /// gain = max(weight_range_per_sqrt_fanin/√fan_in, max|target|/ω).
    pub weight_scaling_omega: f64,
}

impl Default for CrossbarSpec {
    fn default() -> Self {
        Self {
            g_min: 0.1,
            g_max: 25.0,
            levels: 0,
            mapping: PairMapping::Centered,
            weight_range_per_sqrt_fanin: 4.0,
            weight_scaling_omega: 1.0,
        }
    }
}

/// The programming-noise model of write-and-verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProgrammingNoise {
    /// σ = `sigma`·g_max, the same for every target.
    Constant,
    /// σ(G_T) = (c₀ + c₁·x + c₂·x²)·g_max/g_ref with x = G_T/g_max, clipped at 0
    /// (aihwkit `PCMLikeNoiseModel`, Nandakumar et al. ICECS 2019).
    Pcm,
}

/// Write-and-verify programming.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProgrammingSpec {
    /// Noise model (default `constant`).
    pub noise: ProgrammingNoise,
    /// `constant` model: σ as a fraction of g_max (default 0.01, an assumption of this
    /// crate: a write-verify loop with a ~1 % tolerance band; not fitted to data).
    pub sigma: f64,
    /// `pcm` model: polynomial coefficients c₀, c₁, c₂ in µS (default aihwkit
    /// `PCMLikeNoiseModel.prog_coeff` = [0.26348, 1.9650, −1.1731]).
    pub pcm_coefficients: [f64; 3],
    /// `pcm` model: g_max the coefficients were fitted for, µS (default 25, aihwkit).
    pub pcm_reference_g_max: f64,
    /// `pcm` model: multiplier of σ (dimensionless, default 1; aihwkit
    /// `prog_noise_scale`).
    pub pcm_scale: f64,
}

impl Default for ProgrammingSpec {
    fn default() -> Self {
        Self {
            noise: ProgrammingNoise::Constant,
            sigma: 0.01,
            pcm_coefficients: [0.26348, 1.9650, -1.1731],
            pcm_reference_g_max: 25.0,
            pcm_scale: 1.0,
        }
    }
}

/// Read noise, referred to the outputs and drawn afresh on every MVM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReadSpec {
    /// Additive output noise σ_out, normalised output units (default 0.06, aihwkit
    /// `IOParameters.out_noise`; its training presets use 0.1).
    pub out_noise: f64,
    /// Additive constant weight noise σ_w (aihwkit `w_noise` with `ADDITIVE_CONSTANT`):
    /// output variance σ_w²·‖u‖², u the normalised input incl. the bias line (default 0).
    pub w_noise: f64,
    /// Conductance-dependent read noise σ_g: output variance σ_g²·Σ_j ĝ_ij·u_j² with
    /// ĝ_ij = (G⁺_ij + G⁻_ij)/(g_max − g_min) (shot/1-f–like, ∝ device current). Costs one
    /// extra GEMM per MVM (default 0).
    pub g_noise: f64,
}

impl Default for ReadSpec {
    fn default() -> Self {
        Self {
            out_noise: 0.06,
            w_noise: 0.0,
            g_noise: 0.0,
        }
    }
}

/// Conductance drift G(t) = G₀·((t − t_write + t₀)/t₀)^(−ν), ν ~ N(ν_mean, ν_std) per
/// device (clipped at 0). Time only passes through `Substrate::advance_time`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DriftSpec {
    /// Mean drift exponent ν (dimensionless, default 0: ReRAM barely drifts; PCM ≈ 0.06,
    /// Joshi et al. 2020).
    pub nu_mean: f64,
    /// Device-to-device standard deviation of ν (default 0; PCM ≈ 0.02).
    pub nu_std: f64,
    /// Reference time t₀, s (default 20, aihwkit `PCMLikeNoiseModel.t_0`).
    pub t0: f64,
}

impl Default for DriftSpec {
    fn default() -> Self {
        Self {
            nu_mean: 0.0,
            nu_std: 0.0,
            t0: 20.0,
        }
    }
}

/// Stuck-at faults, drawn per device; stuck devices ignore every write.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultSpec {
    /// Probability that a device is stuck at g_min (default 0.001, an assumption of this
    /// crate: ~0.1 % stuck-at-OFF).
    pub stuck_min: f64,
    /// Probability that a device is stuck at g_max (default 0.001, as above).
    pub stuck_max: f64,
}

impl Default for FaultSpec {
    fn default() -> Self {
        Self {
            stuck_min: 0.001,
            stuck_max: 0.001,
        }
    }
}

/// Shape of a device's response to one programming pulse: aihwkit's pulsed device
/// families (`constant-step`, `linear-step`, `soft-bounds`, `exp-step`, `pow-step`,
/// `piecewise-step`; see [`super::response::Kind`]). Constant step and soft bounds have
/// closed forms for n pulses; the other four are applied pulse by pulse, exactly.
pub use super::response::Kind as Response;

/// Device response to pulses and its variability.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceSpec {
    /// Response model (default `soft-bounds`, aihwkit `ReRamSBPresetDevice`).
    pub response: Response,
    /// Nominal change of one device per pulse, as a fraction of g_max − g_min (i.e. in
    /// normalised weight units); for soft bounds the step at the middle of the device's
    /// range (default 0.001: aihwkit `ReRamSBPresetDevice.dw_min` = 0.002 on its device
    /// span w_max − w_min = 1.25 − (−0.75) = 2).
    pub dw_min: f64,
    /// Device-to-device spread of the step (default 0.3, aihwkit ReRamSB `dw_min_dtod`);
    /// additive gain 1 + s·ξ under `asymmetry = "aihwkit"`.
    pub dw_min_dtod: f64,
    /// Mean up/down asymmetry a (default 0, aihwkit ReRamSB assumes a calibrated symmetry
    /// point); how it acts is `asymmetry`.
    pub up_down: f64,
    /// Device-to-device spread of a (default 0.01, aihwkit ReRamSB `up_down_dtod`).
    pub up_down_dtod: f64,
    /// Device-to-device relative spread of each device's bounds G_lo = g_min·(1 + s·ξ),
    /// G_hi = g_max·(1 + s·ξ) (default 0.12: aihwkit ReRamSB has w_max = 1.25 ± 0.3 about
    /// a symmetry point at 0, a 24 % spread of the distance to the bound; here that
    /// distance is g_max − g_c ≈ g_max/2, so 0.24/2 = 0.12 of g_max).
    pub bound_dtod: f64,
    /// Cycle-to-cycle relative noise of each pulse's step: step·(1 + c·ξ) (default 3.75,
    /// aihwkit ReRamSB `dw_min_std`; aihwkit's generic default is 0.3).
    pub c2c: f64,
    /// How `up_down` and the step spread act (default `aihwkit`, aihwkit's C++; `both` is
    /// the convention of `mortal` before 0.2 and of aihwkit's Python docstring).
    pub asymmetry: Asymmetry,
    /// Response-specific parameters of `linear-step`, `exp-step`, `pow-step` and
    /// `piecewise-step` (aihwkit names and defaults; ignored by the other responses).
    pub shape: super::response::Shape,
}

/// How a device's up and down steps differ.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Asymmetry {
    /// aihwkit's C++ (`PulsedRPUDevice::populate`): only the weaker direction shrinks,
    /// up = |min(a, 0) + g + r|·dw_min, down = |−max(a, 0) + g − r|·dw_min with the gain
    /// g = 1 + dw_min_dtod·ξ and r = up_down_dtod·ξ additive (default).
    #[default]
    Aihwkit,
    /// Both directions scaled: up steps ×(1 + a), down steps ×(1 − a), a = up_down +
    /// up_down_dtod·ξ, on a step dw_min·max(1 + dw_min_dtod·ξ, 0): at the same `up_down`
    /// twice aihwkit's asymmetry. `mortal`'s convention before 0.2 (files written then
    /// have no `asymmetry` key and are read with this one; see `checkpoint`), accepted
    /// under its old name `symmetric` too.
    #[serde(alias = "symmetric")]
    Both,
}

impl Default for DeviceSpec {
    fn default() -> Self {
        Self {
            response: Response::SoftBounds,
            dw_min: 0.001,
            dw_min_dtod: 0.3,
            up_down: 0.0,
            up_down_dtod: 0.01,
            bound_dtod: 0.12,
            c2c: 3.75,
            asymmetry: Asymmetry::Aihwkit,
            shape: super::response::Shape::default(),
        }
    }
}

/// How a requested weight change is realised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateMode {
    /// Exact float update of the weights; devices unbounded (for zero-noise checks).
    Ideal,
    /// The host computes ΔW; every pair receives a stochastically rounded pulse count,
    /// applied in closed form through its response (default).
    Pulsed,
    /// aihwkit-style rank-1 stochastic pulse trains per sample (`Update::Outer` only;
    /// `Update::Dense` falls back to `pulsed`).
    StochasticPulse,
    /// Digital accumulation χ per pair, whole pulses transferred when |χ| ≥ one pair step
    /// (Nandakumar et al. 2020).
    MixedPrecision,
    /// Single RESET pulses (the sub-1 V reset-only updates of Renaudineau et al. 2026,
    /// arXiv 2601.09903): the host's request of each pair is stochastically rounded to a
    /// pair-pulse count as in `pulsed` and capped at one, applied as one depression of a
    /// single device (Δw > 0: G⁻, Δw < 0: G⁺), whatever `pair` says; nominal step dw_min.
    /// Conductances only fall: set `refresh_threshold` t so that a pair with a device below
    /// (1 − t) of its range is re-programmed (write-and-verify) to the same weight.
    ResetOnly,
}

/// How a signed change is shared between the two devices of a pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PairScheme {
    /// One "pair pulse" is an up-pulse on G⁺ and a down-pulse on G⁻ for Δw > 0 (the
    /// reverse for Δw < 0): half of the change on each device; nominal step 2·dw_min.
    Split,
    /// Potentiation only (PCM style): Δw > 0 up-pulses G⁺, Δw < 0 up-pulses G⁻; nominal
    /// step dw_min. Needs `refresh_threshold` to stop both devices saturating.
    Potentiate,
    /// Depression only (RESET style, as the `reset-only` mode): Δw > 0 down-pulses G⁻,
    /// Δw < 0 down-pulses G⁺; nominal step dw_min. Needs `refresh_threshold`: a pair with
    /// a device below (1 − threshold) of its range is re-programmed.
    Depress,
}

/// Update settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpdateSpec {
    /// Update mode (default `pulsed`).
    pub mode: UpdateMode,
    /// Pair scheme (default `split`).
    pub pair: PairScheme,
    /// Bit length of the stochastic pulse trains, 1..=64 (default 31, aihwkit
    /// `PresetUpdateParameters.desired_bl`).
    pub bl: u32,
    /// Refresh: after an update, a pair whose either device sits above this fraction of
    /// its own range is read and re-programmed (write-and-verify) to the same weight
    /// (0 = off, else in (0, 1); default 0; PCM practice, Nandakumar et al. 2020).
    pub refresh_threshold: f64,
    /// Weight decay is accumulated in the periphery (one scalar per layer) and applied as
    /// one array-wide relaxation of every pair toward its common mode once the accumulated
    /// shrink reaches this fraction (0 = every request; default 0.001, an implementation
    /// choice: the weights then lag the exact (1 − δ)ᵗ shrink by < 0.1 %, and a global
    /// relaxation per ~100 FF steps costs nothing measurable; `ideal` updates are exact).
    pub decay_batch: f64,
}

impl Default for UpdateSpec {
    fn default() -> Self {
        Self {
            mode: UpdateMode::Pulsed,
            pair: PairScheme::Split,
            bl: 31,
            refresh_threshold: 0.0,
            decay_batch: 0.001,
        }
    }
}

/// How inputs are scaled onto the DAC's range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputScaling {
    /// Each input column (with the bias line, value 1) is divided by its max |x| before
    /// the DAC and the output multiplied back digitally (aihwkit noise management
    /// `ABS_MAX`).
    AbsMax,
    /// A fixed full-scale `fixed_range` (network signal units); inputs beyond it clip.
    Fixed,
}

/// Input DACs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DacSpec {
    /// Resolution in bits (0 = ideal, else 2..=20): 2^b − 1 symmetric levels, step
    /// 1/(2^(b−1) − 1) of full scale, i.e. aihwkit's `inp_res = 1/(2^b − 2)` of the
    /// full range (default 7, aihwkit `IOParameters`).
    pub bits: u32,
    /// Input scaling (default `abs-max`).
    pub scaling: InputScaling,
    /// Full scale of `fixed` scaling, network signal units (default 1).
    pub fixed_range: f64,
}

impl Default for DacSpec {
    fn default() -> Self {
        Self {
            bits: 7,
            scaling: InputScaling::AbsMax,
            fixed_range: 1.0,
        }
    }
}

/// Output ADCs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdcSpec {
    /// Resolution in bits (0 = ideal, else 2..=20): step 2·bound/(2^b − 2), aihwkit's
    /// `out_res = 1/(2^b − 2)` (default 9, aihwkit `IOParameters`).
    pub bits: u32,
    /// Saturation bound, normalised output units; outputs clip at ±bound (0 = no clipping;
    /// needs bits = 0) (default 12, aihwkit `IOParameters.out_bound`).
    pub bound: f64,
}

impl Default for AdcSpec {
    fn default() -> Self {
        Self {
            bits: 9,
            bound: 12.0,
        }
    }
}

/// Per-neuron curves of hidden (ReLU or sigmoid) layers, each drawn once per neuron.
///
/// ReLU-like: y = S·tanh(g·κ·softplus((a − θ)/κ)/S), with κ → 0 giving g·max(0, a − θ)
/// and S = 0 meaning no saturation. Sigmoid: y = σ(g·(a − θ)). Activities `a` and `θ` are
/// in network activity units.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NeuronSpec {
    /// Standard deviation of the gain g ~ N(1, σ_g), clipped at 0 (default 0).
    pub gain_std: f64,
    /// Standard deviation of the threshold offset θ ~ N(0, σ_θ), activity units (default 0).
    pub offset_std: f64,
    /// Mean knee softness κ, activity units (0 = sharp; default 0).
    pub knee: f64,
    /// Relative spread of κ: κ_i = knee·max(0, 1 + s·ξ) (default 0).
    pub knee_std: f64,
    /// Mean saturation level S, activity units (0 = none; default 0).
    pub saturation: f64,
    /// Relative spread of S (default 0).
    pub saturation_std: f64,
    /// Additive output noise per call, activity units (default 0).
    pub noise: f64,
}

impl Default for NeuronSpec {
    fn default() -> Self {
        Self {
            gain_std: 0.0,
            offset_std: 0.0,
            knee: 0.0,
            knee_std: 0.0,
            saturation: 0.0,
            saturation_std: 0.0,
            noise: 0.0,
        }
    }
}

/// The opaque stochastic black box on the input lines of layers ≥ 1 (after the DAC, in
/// normalised input units): z = (I + ε·R)u, then z + α_i·tanh(β·z) per line, then additive
/// noise, then line dropout. R has `neighbours` random entries per line, N(0, 1/k).
/// Assumptions of this crate (a stand-in for unmodelled analog crosstalk and
/// periphery), not fitted to data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlackBoxSpec {
    /// Whether the black box is present (default false).
    pub enabled: bool,
    /// Crosstalk strength ε (dimensionless, default 0.05).
    pub mixing: f64,
    /// Number k of random neighbours each line picks up crosstalk from (default 4).
    pub neighbours: u32,
    /// Mean nonlinearity amplitude α, normalised input units (≥ 0 keeps every line
    /// monotone; default 0.05).
    pub nonlinearity: f64,
    /// Relative line-to-line spread of α: α_i = α·max(0, 1 + s·ξ) (default 0.5).
    pub nonlinearity_std: f64,
    /// Sharpness β of the nonlinearity, 1/normalised input units (default 2).
    pub sharpness: f64,
    /// Additive noise per line per call, normalised input units (default 0.01).
    pub noise: f64,
    /// Probability that a line is zeroed on a call (default 0.01).
    pub dropout: f64,
}

impl Default for BlackBoxSpec {
    fn default() -> Self {
        Self {
            enabled: false,
            mixing: 0.05,
            neighbours: 4,
            nonlinearity: 0.05,
            nonlinearity_std: 0.5,
            sharpness: 2.0,
            noise: 0.01,
            dropout: 0.01,
        }
    }
}

/// Largest magnitude of any setting: the chip computes in f32, and products of a few
/// settings (e.g. conductances squared times a fan-in) must stay far below f32's 3.4e38.
const MAX_SETTING: f64 = 1e9;

fn non_negative(key: &str, v: f64) -> Result<()> {
    ensure(
        v.is_finite() && (0.0..=MAX_SETTING).contains(&v),
        key,
        v,
        "must be in [0, 1e9]",
    )
}

fn positive(key: &str, v: f64) -> Result<()> {
    ensure(
        v.is_finite() && (1e-12..=MAX_SETTING).contains(&v),
        key,
        v,
        "must be in [1e-12, 1e9]",
    )
}

fn probability(key: &str, v: f64) -> Result<()> {
    ensure(
        v.is_finite() && (0.0..=1.0).contains(&v),
        key,
        v,
        "must be a probability in [0, 1]",
    )
}

fn bits(key: &str, b: u32) -> Result<()> {
    ensure(
        b == 0 || (2..=20).contains(&b),
        key,
        b,
        "must be 0 (ideal) or 2..=20 bits",
    )
}

/// The periphery of analog-native Forward-Forward (Hinton 2022, arXiv 2212.13345, §8):
/// what a layer's output columns do when Forward-Forward runs on the chip itself.
///
/// * The activities stay **voltages**: no ADC on the columns, no DAC on the next layer's
///   input lines. Each voltage picks up `chain_noise` (per line per pass) and clips at
///   ±`chain_range` (the rails of the analog chain).
/// * A squarer and a summing node form the layer's **goodness** G = Σ_j y_j² as an analog
///   quantity, with a per-layer gain error (drawn once per chip instance), and **one
///   ADC per layer per pass** reads it: `goodness_bits` over [0, `goodness_range`·n]
///   (n: the layer's units; the full scale in mean-square activity units), with
///   input-referred noise `goodness_noise` (fraction of full scale).
/// * The same analog G drives the **normalisation** (a divider / variable-gain stage):
///   the next layer receives y / √(G/n + ε), never leaving the analog domain.
///
/// Defaults are assumptions of this crate, stated with their reasoning (no measured
/// periphery of an FF chip is published): 8 bits (aihwkit's 9-bit column ADC
/// `IOParameters.out_res` less the sign bit, goodness being non-negative); a full scale
/// of 4 mean-square units (the FF threshold θ = n sits at a quarter of it, and σ(G − θ)
/// is saturated long before 4θ); noise of half an LSB (1/512 of full scale); 1 % gain
/// spread; a chain noise of 0.01 activity units, below aihwkit's default `out_noise` of
/// 0.06 read noise (the chain adds no conversion); ±8 rails (a unit-RMS vector's entries
/// reach 8 only when one unit holds 1/64 of the layer's energy in a 64-unit layer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeripherySpec {
    /// Resolution of the goodness ADC in bits (0 = ideal, else 2..=20; default 8).
    pub goodness_bits: u32,
    /// Full scale of the goodness ADC, mean-square activity units: G clips at
    /// `goodness_range`·n (> 0; default 4).
    pub goodness_range: f64,
    /// Input-referred noise of the goodness ADC, fraction of full scale (default 1/512).
    pub goodness_noise: f64,
    /// Relative gain error of a layer's squarer and summing node, drawn once per layer
    /// per chip instance: G·(1 + s·ξ) (dimensionless; default 0.01).
    pub goodness_gain_std: f64,
    /// Noise added to every activity voltage passed on, per line per pass, activity
    /// units (default 0.01).
    pub chain_noise: f64,
    /// Rails of the analog chain: normalised activities clip at ±`chain_range`, network
    /// units (> 0; default 8).
    pub chain_range: f64,
}

impl Default for PeripherySpec {
    fn default() -> Self {
        Self {
            goodness_bits: 8,
            goodness_range: 4.0,
            goodness_noise: 1.0 / 512.0,
            goodness_gain_std: 0.01,
            chain_noise: 0.01,
            chain_range: 8.0,
        }
    }
}

impl PeripherySpec {
    /// Whether every field has its default (then it is not written to files).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Checks every field, naming the bad one by its dotted key.
    pub fn validate(&self) -> Result<()> {
        bits("periphery.goodness_bits", self.goodness_bits)?;
        positive("periphery.goodness_range", self.goodness_range)?;
        ensure(
            self.goodness_noise.is_finite() && (0.0..=1.0).contains(&self.goodness_noise),
            "periphery.goodness_noise",
            self.goodness_noise,
            "must be in [0, 1] (a fraction of the ADC's full scale)",
        )?;
        ensure(
            self.goodness_gain_std.is_finite() && (0.0..=0.5).contains(&self.goodness_gain_std),
            "periphery.goodness_gain_std",
            self.goodness_gain_std,
            "must be in [0, 0.5]",
        )?;
        non_negative("periphery.chain_noise", self.chain_noise)?;
        positive("periphery.chain_range", self.chain_range)?;
        Ok(())
    }
}

impl HardwareSpec {
    /// Checks every field, naming the first bad one by its dotted key.
    pub fn validate(&self) -> Result<()> {
        non_negative("variation", self.variation)?;
        let c = &self.crossbar;
        non_negative("crossbar.g_min", c.g_min)?;
        positive("crossbar.g_max", c.g_max)?;
        ensure(
            c.g_max > c.g_min,
            "crossbar.g_max",
            c.g_max,
            "must be greater than crossbar.g_min",
        )?;
        ensure(
            c.levels != 1,
            "crossbar.levels",
            c.levels,
            "must be 0 (continuous) or at least 2",
        )?;
        positive(
            "crossbar.weight_range_per_sqrt_fanin",
            c.weight_range_per_sqrt_fanin,
        )?;
        ensure(
            c.weight_scaling_omega.is_finite()
                && c.weight_scaling_omega > 0.0
                && c.weight_scaling_omega <= 1.0,
            "crossbar.weight_scaling_omega",
            c.weight_scaling_omega,
            "must be in (0, 1]",
        )?;
        let p = &self.programming;
        non_negative("programming.sigma", p.sigma)?;
        for (k, v) in p.pcm_coefficients.iter().enumerate() {
            ensure(
                v.is_finite() && v.abs() <= MAX_SETTING,
                &format!("programming.pcm_coefficients[{k}]"),
                v,
                "must be finite, |c| ≤ 1e9",
            )?;
        }
        positive("programming.pcm_reference_g_max", p.pcm_reference_g_max)?;
        non_negative("programming.pcm_scale", p.pcm_scale)?;
        non_negative("read.out_noise", self.read.out_noise)?;
        non_negative("read.w_noise", self.read.w_noise)?;
        non_negative("read.g_noise", self.read.g_noise)?;
        non_negative("drift.nu_mean", self.drift.nu_mean)?;
        non_negative("drift.nu_std", self.drift.nu_std)?;
        positive("drift.t0", self.drift.t0)?;
        probability("faults.stuck_min", self.faults.stuck_min)?;
        probability("faults.stuck_max", self.faults.stuck_max)?;
        ensure(
            self.faults.stuck_min + self.faults.stuck_max <= 1.0,
            "faults.stuck_max",
            self.faults.stuck_max,
            "faults.stuck_min + faults.stuck_max must not exceed 1",
        )?;
        let d = &self.device;
        ensure(
            d.dw_min.is_finite() && (1e-6..=0.5).contains(&d.dw_min),
            "device.dw_min",
            d.dw_min,
            "must be in [1e-6, 0.5] (a fraction of the conductance range: at most a million \
             steps across it)",
        )?;
        non_negative("device.dw_min_dtod", d.dw_min_dtod)?;
        ensure(
            d.up_down.is_finite() && d.up_down.abs() < 1.0,
            "device.up_down",
            d.up_down,
            "must be in (−1, 1)",
        )?;
        non_negative("device.up_down_dtod", d.up_down_dtod)?;
        ensure(
            d.bound_dtod.is_finite() && (0.0..=2.0).contains(&d.bound_dtod),
            "device.bound_dtod",
            d.bound_dtod,
            "must be in [0, 2] (a relative spread of the bounds; beyond 2 most devices' \
             bounds would be clipped to the minimum width)",
        )?;
        non_negative("device.c2c", d.c2c)?;
        d.shape.validate("device.shape")?;
        let u = &self.update;
        ensure(
            (1..=64).contains(&u.bl),
            "update.bl",
            u.bl,
            "must be 1..=64 bits",
        )?;
        ensure(
            u.refresh_threshold.is_finite() && (0.0..1.0).contains(&u.refresh_threshold),
            "update.refresh_threshold",
            u.refresh_threshold,
            "must be 0 (off) or in (0, 1)",
        )?;
        ensure(
            u.decay_batch.is_finite() && (0.0..=0.5).contains(&u.decay_batch),
            "update.decay_batch",
            u.decay_batch,
            "must be in [0, 0.5]",
        )?;
        bits("dac.bits", self.dac.bits)?;
        positive("dac.fixed_range", self.dac.fixed_range)?;
        bits("adc.bits", self.adc.bits)?;
        non_negative("adc.bound", self.adc.bound)?;
        ensure(
            self.adc.bits == 0 || self.adc.bound > 0.0,
            "adc.bound",
            self.adc.bound,
            "a quantising ADC (adc.bits > 0) needs a bound > 0",
        )?;
        let n = &self.neuron;
        non_negative("neuron.gain_std", n.gain_std)?;
        non_negative("neuron.offset_std", n.offset_std)?;
        non_negative("neuron.knee", n.knee)?;
        non_negative("neuron.knee_std", n.knee_std)?;
        non_negative("neuron.saturation", n.saturation)?;
        non_negative("neuron.saturation_std", n.saturation_std)?;
        non_negative("neuron.noise", n.noise)?;
        let b = &self.black_box;
        non_negative("black_box.mixing", b.mixing)?;
        non_negative("black_box.nonlinearity", b.nonlinearity)?;
        non_negative("black_box.nonlinearity_std", b.nonlinearity_std)?;
        non_negative("black_box.sharpness", b.sharpness)?;
        non_negative("black_box.noise", b.noise)?;
        ensure(
            b.dropout.is_finite() && (0.0..1.0).contains(&b.dropout),
            "black_box.dropout",
            b.dropout,
            "must be in [0, 1)",
        )?;
        ensure(
            b.neighbours <= 64,
            "black_box.neighbours",
            b.neighbours,
            "must be at most 64 (the crosstalk matrix is sparse)",
        )?;
        self.periphery.validate()
    }

    /// The same family with every source of randomness multiplied by `variation`
    /// (0 = none, 1 = unchanged): programming noise (`programming.sigma`,
    /// `programming.pcm_scale`), read noises (`read.*`), device-to-device spreads
    /// (`device.dw_min_dtod`, `device.up_down_dtod`, `device.bound_dtod`), cycle-to-cycle
    /// noise (`device.c2c`), the drift-exponent spread (`drift.nu_std`), stuck
    /// probabilities (`faults.*`), neuron spreads and noise (`neuron.gain_std`,
    /// `offset_std`, `knee_std`, `saturation_std`, `noise`) and the black box's crosstalk,
    /// nonlinearity amplitude, noise and dropout, and the analog-native periphery's noises
    /// and gain spread (`periphery.goodness_noise`, `goodness_gain_std`, `chain_noise`).
    ///
    /// Deterministic properties stay: conductance range, levels, converters, the mean
    /// asymmetry `device.up_down`, the soft-bounds shape, the mean drift ν, mean knee and
    /// saturation. The periphery's stochastic rounding of pulse counts (`pulsed`) and the
    /// stochastic pulse trains are part of the update algorithm, not device variability,
    /// and stay (`mixed-precision` and `ideal` updates are deterministic).
    pub fn scaled(&self, variation: f64) -> HardwareSpec {
        let v = variation;
        let mut s = self.clone();
        s.variation *= v;
        s.programming.sigma *= v;
        s.programming.pcm_scale *= v;
        s.read.out_noise *= v;
        s.read.w_noise *= v;
        s.read.g_noise *= v;
        s.device.dw_min_dtod *= v;
        s.device.up_down_dtod *= v;
        s.device.bound_dtod *= v;
        s.device.c2c *= v;
        s.device.shape = s.device.shape.clone().scaled(v as f32);
        s.drift.nu_std *= v;
        s.faults.stuck_min *= v;
        s.faults.stuck_max *= v;
        s.neuron.gain_std *= v;
        s.neuron.offset_std *= v;
        s.neuron.knee_std *= v;
        s.neuron.saturation_std *= v;
        s.neuron.noise *= v;
        s.black_box.mixing *= v;
        s.black_box.nonlinearity *= v;
        s.black_box.noise *= v;
        s.black_box.dropout *= v;
        s.periphery.goodness_noise *= v;
        s.periphery.goodness_gain_std *= v;
        s.periphery.chain_noise *= v;
        s
    }

    /// Whether drift needs tracking (per-device ν and write times).
    pub fn tracks_drift(&self) -> bool {
        self.drift.nu_mean > 0.0 || self.drift.nu_std > 0.0
    }

    /// Nominal normalised-weight change of one pair pulse under the pair scheme.
    pub(crate) fn pair_step(&self) -> f64 {
        match self.pair_scheme() {
            PairScheme::Split => 2.0 * self.device.dw_min,
            PairScheme::Potentiate | PairScheme::Depress => self.device.dw_min,
        }
    }

    /// The pair scheme updates use: `update.pair`, or `depress` in `reset-only` mode.
    pub(crate) fn pair_scheme(&self) -> PairScheme {
        if self.update.mode == UpdateMode::ResetOnly {
            PairScheme::Depress
        } else {
            self.update.pair
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(e: crate::error::Error) -> String {
        match e {
            crate::error::Error::Param { key, .. } => key,
            other => panic!("expected a parameter error, got {other}"),
        }
    }

    #[test]
    fn defaults_validate() {
        HardwareSpec::default().validate().unwrap();
    }

    #[test]
    fn validation_names_the_key() {
        let bad = |f: &dyn Fn(&mut HardwareSpec)| {
            let mut s = HardwareSpec::default();
            f(&mut s);
            key_of(s.validate().unwrap_err())
        };
        assert_eq!(bad(&|s| s.read.out_noise = -0.1), "read.out_noise");
        assert_eq!(bad(&|s| s.read.w_noise = f64::NAN), "read.w_noise");
        assert_eq!(bad(&|s| s.programming.sigma = -1.0), "programming.sigma");
        assert_eq!(bad(&|s| s.crossbar.g_min = 30.0), "crossbar.g_max");
        assert_eq!(bad(&|s| s.crossbar.g_max = 0.1), "crossbar.g_max");
        assert_eq!(bad(&|s| s.crossbar.levels = 1), "crossbar.levels");
        assert_eq!(bad(&|s| s.adc.bits = 1), "adc.bits");
        assert_eq!(bad(&|s| s.dac.bits = 21), "dac.bits");
        assert_eq!(
            bad(&|s| {
                s.adc.bits = 8;
                s.adc.bound = 0.0
            }),
            "adc.bound"
        );
        assert_eq!(bad(&|s| s.device.dw_min = 0.0), "device.dw_min");
        assert_eq!(bad(&|s| s.device.up_down = 1.0), "device.up_down");
        assert_eq!(bad(&|s| s.device.c2c = -0.5), "device.c2c");
        assert_eq!(bad(&|s| s.update.bl = 0), "update.bl");
        assert_eq!(bad(&|s| s.update.bl = 65), "update.bl");
        assert_eq!(bad(&|s| s.faults.stuck_min = 1.5), "faults.stuck_min");
        assert_eq!(
            bad(&|s| {
                s.faults.stuck_min = 0.6;
                s.faults.stuck_max = 0.6
            }),
            "faults.stuck_max"
        );
        assert_eq!(bad(&|s| s.black_box.dropout = 1.0), "black_box.dropout");
        assert_eq!(bad(&|s| s.drift.t0 = 0.0), "drift.t0");
        assert_eq!(bad(&|s| s.drift.nu_std = -0.01), "drift.nu_std");
        assert_eq!(bad(&|s| s.neuron.offset_std = -1.0), "neuron.offset_std");
        assert_eq!(
            bad(&|s| s.crossbar.weight_scaling_omega = 1.5),
            "crossbar.weight_scaling_omega"
        );
        let msg = {
            let mut s = HardwareSpec::default();
            s.read.out_noise = -0.1;
            s.validate().unwrap_err().to_string()
        };
        assert!(
            msg.contains("read.out_noise") && msg.contains("[0, 1e9]"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = toml::from_str::<HardwareSpec>("[read]\nout_nosie = 0.1\n").unwrap_err();
        assert!(err.to_string().contains("out_nosie"), "{err}");
        let s: HardwareSpec = toml::from_str("[device]\ndw_min = 0.001\n").unwrap();
        assert_eq!(s.device.dw_min, 0.001);
        assert_eq!(s.read, ReadSpec::default());
    }

    #[test]
    fn scaled_multiplies_every_spread_and_keeps_the_rest() {
        let s = HardwareSpec::default();
        let z = s.scaled(0.0);
        assert_eq!(z.variation, 0.0);
        assert_eq!(z.read.out_noise, 0.0);
        assert_eq!(z.device.c2c, 0.0);
        assert_eq!(z.device.dw_min_dtod, 0.0);
        assert_eq!(z.device.up_down_dtod, 0.0);
        assert_eq!(z.device.bound_dtod, 0.0);
        // Every response-specific spread too.
        let sh = &z.device.shape;
        assert_eq!(
            [
                sh.gamma_up_dtod,
                sh.gamma_down_dtod,
                sh.pow_gamma_dtod,
                sh.pow_up_down_dtod
            ],
            [0.0; 4]
        );
        assert_eq!(z.faults.stuck_min, 0.0);
        assert_eq!(z.device.dw_min, s.device.dw_min);
        assert_eq!(z.adc, s.adc);
        let h = s.scaled(0.5);
        assert_eq!(h.read.out_noise, 0.03);
        assert_eq!(h.scaled(2.0), s);
    }
}
