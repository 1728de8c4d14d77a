//! One pulsed device exactly as aihwkit (1.1.0) defines it, in aihwkit's normalised weight
//! units: the reference for `mortal device response` and the golden-trajectory
//! conformance test.
//!
//! Parameters keep aihwkit's names and meanings (`PulsedDevice` and the response
//! subclasses in `aihwkit.simulator.configs.devices`). Per device (device-to-device,
//! drawn once, aihwkit `PulsedRPUDevice::populate`):
//! * bounds `w_max·(1 + w_max_dtod·ξ)`, `w_min·(1 + w_min_dtod·ξ)`;
//! * step gain `g = 1 + dw_min_dtod·ξ` (additive spread), asymmetry `r = up_down_dtod·ξ`;
//! * steps `s_up = (min(up_down, 0) + g + r)·dw_min`, `s_dn = (−max(up_down, 0) + g − r)·dw_min`:
//!   only the weaker direction is shrunk by `up_down` (aihwkit's C++, not the
//!   `(1 ± up_down)` of its Python docstring); with `enforce_consistency` both are made
//!   positive and the bounds ordered around 0.
//!
//! Per pulse (cycle-to-cycle noise `dw_min_std`, multiplicative on the step) a device
//! moves by its response's step and is clipped to its bounds. Arithmetic is f32 in
//! aihwkit's operation order (`expf`/`powf` as f64 rounded to f32), which reproduces
//! aihwkit's trajectories to the last bits.

use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rng::Rng;

/// The response family (aihwkit device class).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// `ConstantStepDevice`: the same step everywhere.
    ConstantStep,
    /// `LinearStepDevice`: the step falls linearly toward each bound by `gamma_up` /
    /// `gamma_down` of itself.
    LinearStep,
    /// `SoftBoundsDevice`: linear step reaching zero at the device's own bounds.
    SoftBounds,
    /// `ExpStepDevice`: step `1 − A·exp(±gamma·z)` with `z = 2·w/(w_max − w_min)·a + b`.
    ExpStep,
    /// `PowStepDevice`: step `((w_max − w)/R)^γ_up` up, `((w − w_min)/R)^γ_down` down.
    PowStep,
    /// `PiecewiseStepDevice`: step interpolated between equidistant nodes.
    PiecewiseStep,
}

impl Kind {
    /// The responses without a closed form for n pulses, applied pulse by pulse.
    pub fn is_shaped(self) -> bool {
        matches!(
            self,
            Kind::LinearStep | Kind::ExpStep | Kind::PowStep | Kind::PiecewiseStep
        )
    }

    /// Parses a response name (`soft-bounds`, …).
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "constant-step" => Kind::ConstantStep,
            "linear-step" => Kind::LinearStep,
            "soft-bounds" => Kind::SoftBounds,
            "exp-step" => Kind::ExpStep,
            "pow-step" => Kind::PowStep,
            "piecewise-step" => Kind::PiecewiseStep,
            other => {
                return Err(Error::param(
                    "response",
                    other,
                    "expected constant-step, linear-step, soft-bounds, exp-step, pow-step or \
                     piecewise-step",
                ));
            }
        })
    }
}

/// The parameters of one aihwkit pulsed device (aihwkit names; weights in aihwkit's
/// normalised units, dimensionless; defaults are aihwkit's).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Response family.
    pub response: Kind,
    /// Mean step of one pulse (default 0.001).
    pub dw_min: f32,
    /// Device-to-device spread of the step gain, additive (default 0.3).
    pub dw_min_dtod: f32,
    /// Cycle-to-cycle spread of each step, multiplicative (default 0.3).
    pub dw_min_std: f32,
    /// Up/down asymmetry (default 0): the weaker direction's step is shrunk by |up_down|.
    pub up_down: f32,
    /// Device-to-device spread of the asymmetry (default 0.01).
    pub up_down_dtod: f32,
    /// Upper bound (default 0.6).
    pub w_max: f32,
    /// Lower bound (default −0.6).
    pub w_min: f32,
    /// Device-to-device relative spread of the upper bound (default 0.3).
    pub w_max_dtod: f32,
    /// Device-to-device relative spread of the lower bound (default 0.3).
    pub w_min_dtod: f32,
    /// Make steps positive and bounds straddle 0 (default true).
    pub enforce_consistency: bool,
    /// Response-specific parameters.
    #[serde(flatten)]
    pub shape: Shape,
}

/// The response-specific parameters of aihwkit's step devices (aihwkit names, all
/// dimensionless; defaults are aihwkit's, `linear-step` with `mean_bound_reference`).
/// A chip's `[device.shape]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Shape {
    /// linear-step: relative step decrease at the upper bound (default 0).
    pub gamma_up: f32,
    /// linear-step: relative step decrease at the lower bound (default 0).
    pub gamma_down: f32,
    /// linear-step: device-to-device spread of `gamma_up` (default 0.05).
    pub gamma_up_dtod: f32,
    /// linear-step: device-to-device spread of `gamma_down` (default 0.05).
    pub gamma_down_dtod: f32,
    /// linear-step: slopes refer to the mean bounds, not each device's (default false).
    pub mean_bound_reference: bool,
    /// exp-step: `A_up` (default 0.00081).
    #[serde(rename = "A_up")]
    pub a_up: f32,
    /// exp-step: `A_down` (default 0.36833).
    #[serde(rename = "A_down")]
    pub a_down: f32,
    /// exp-step: `gamma_up` of the exponential (default 12.44625).
    pub es_gamma_up: f32,
    /// exp-step: `gamma_down` of the exponential (default 12.78785).
    pub es_gamma_down: f32,
    /// exp-step: `a` (default 0.244).
    pub a: f32,
    /// exp-step: `b` (default 0.2425).
    pub b: f32,
    /// pow-step: exponent (default 1).
    pub pow_gamma: f32,
    /// pow-step: device-to-device spread of the exponent (default 0.1).
    pub pow_gamma_dtod: f32,
    /// pow-step: up/down asymmetry of the exponent (default 0).
    pub pow_up_down: f32,
    /// pow-step: its device-to-device spread (default 0).
    pub pow_up_down_dtod: f32,
    /// piecewise-step: up-step multipliers at equidistant nodes over [w_min, w_max].
    pub piecewise_up: Vec<f32>,
    /// piecewise-step: down-step multipliers.
    pub piecewise_down: Vec<f32>,
}

impl Default for Shape {
    fn default() -> Self {
        Self {
            gamma_up: 0.0,
            gamma_down: 0.0,
            gamma_up_dtod: 0.05,
            gamma_down_dtod: 0.05,
            mean_bound_reference: true,
            a_up: 0.00081,
            a_down: 0.36833,
            es_gamma_up: 12.44625,
            es_gamma_down: 12.78785,
            a: 0.244,
            b: 0.2425,
            pow_gamma: 1.0,
            pow_gamma_dtod: 0.1,
            pow_up_down: 0.0,
            pow_up_down_dtod: 0.0,
            piecewise_up: vec![1.0],
            piecewise_down: vec![1.0],
        }
    }
}

impl Shape {
    /// Every device-to-device spread of the shape set to 0.
    pub fn noise_free(mut self) -> Self {
        self.gamma_up_dtod = 0.0;
        self.gamma_down_dtod = 0.0;
        self.pow_gamma_dtod = 0.0;
        self.pow_up_down_dtod = 0.0;
        self
    }

    /// Checks the values; errors name the key under `prefix` (e.g. `device.shape`).
    pub fn validate(&self, prefix: &str) -> Result<()> {
        // `device.shape.KEY` in a spec; `--param KEY` on the command line.
        let key = |k: &str| {
            if prefix.starts_with("--") {
                format!("{prefix} {k}")
            } else {
                format!("{prefix}.{k}")
            }
        };
        let scalars = [
            ("gamma_up", self.gamma_up),
            ("gamma_down", self.gamma_down),
            ("gamma_up_dtod", self.gamma_up_dtod),
            ("gamma_down_dtod", self.gamma_down_dtod),
            ("A_up", self.a_up),
            ("A_down", self.a_down),
            ("es_gamma_up", self.es_gamma_up),
            ("es_gamma_down", self.es_gamma_down),
            ("a", self.a),
            ("b", self.b),
            ("pow_gamma", self.pow_gamma),
            ("pow_gamma_dtod", self.pow_gamma_dtod),
            ("pow_up_down", self.pow_up_down),
            ("pow_up_down_dtod", self.pow_up_down_dtod),
        ];
        for (k, v) in scalars {
            if !v.is_finite() || (k.ends_with("_dtod") && v < 0.0) {
                return Err(Error::param(
                    key(k),
                    v,
                    "must be a finite number (spreads ≥ 0)",
                ));
            }
        }
        for (k, v) in [
            ("piecewise_up", &self.piecewise_up),
            ("piecewise_down", &self.piecewise_down),
        ] {
            if v.is_empty() || v.iter().any(|x| !x.is_finite() || *x < 0.0) {
                return Err(Error::param(
                    key(k),
                    format!("{v:?}"),
                    "needs at least one node, each finite and ≥ 0",
                ));
            }
        }
        if self.piecewise_up.len() != self.piecewise_down.len() {
            return Err(Error::param(
                key("piecewise_down"),
                self.piecewise_down.len(),
                "needs as many nodes as piecewise_up",
            ));
        }
        Ok(())
    }

    /// Multiplies every device-to-device spread of the shape by `v`.
    pub fn scaled(mut self, v: f32) -> Self {
        self.gamma_up_dtod *= v;
        self.gamma_down_dtod *= v;
        self.pow_gamma_dtod *= v;
        self.pow_up_down_dtod *= v;
        self
    }
}

impl Default for Params {
    fn default() -> Self {
        Self {
            response: Kind::SoftBounds,
            dw_min: 0.001,
            dw_min_dtod: 0.3,
            dw_min_std: 0.3,
            up_down: 0.0,
            up_down_dtod: 0.01,
            w_max: 0.6,
            w_min: -0.6,
            w_max_dtod: 0.3,
            w_min_dtod: 0.3,
            enforce_consistency: true,
            shape: Shape {
                mean_bound_reference: false,
                ..Shape::default()
            },
        }
    }
}

impl Params {
    /// The aihwkit defaults of a response family (`soft-bounds`: gamma 1 on the device's
    /// own bounds; `linear-step`: the mean bounds).
    pub fn of(response: Kind) -> Self {
        let mut p = Self {
            response,
            ..Self::default()
        };
        match response {
            Kind::SoftBounds => {
                p.shape.gamma_up = 1.0;
                p.shape.gamma_down = 1.0;
                p.shape.gamma_up_dtod = 0.0;
                p.shape.gamma_down_dtod = 0.0;
            }
            Kind::LinearStep => p.shape.mean_bound_reference = true,
            _ => {}
        }
        p
    }

    /// Every spread set to zero (a noise-free device: aihwkit with all `*_dtod` and
    /// `dw_min_std` at 0).
    pub fn noise_free(mut self) -> Self {
        self.dw_min_dtod = 0.0;
        self.dw_min_std = 0.0;
        self.up_down_dtod = 0.0;
        self.w_max_dtod = 0.0;
        self.w_min_dtod = 0.0;
        self.shape = self.shape.noise_free();
        self
    }

    /// Sets one parameter by its aihwkit name from a string (`--param NAME=VALUE`).
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        let num = || -> Result<f32> {
            value
                .parse::<f32>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| Error::param(format!("--param {name}"), value, "expected a number"))
        };
        let list = || -> Result<Vec<f32>> {
            value
                .trim_matches(|c| c == '[' || c == ']')
                .split(',')
                .map(|v| v.trim().parse::<f32>().ok().filter(|v| v.is_finite()))
                .collect::<Option<Vec<f32>>>()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    Error::param(format!("--param {name}"), value, "expected numbers a,b,c")
                })
        };
        let flag = || -> Result<bool> {
            value.parse::<bool>().map_err(|_| {
                Error::param(format!("--param {name}"), value, "expected true or false")
            })
        };
        match name {
            "dw_min" => self.dw_min = num()?,
            "dw_min_dtod" => self.dw_min_dtod = num()?,
            "dw_min_std" => self.dw_min_std = num()?,
            "up_down" => self.up_down = num()?,
            "up_down_dtod" => self.up_down_dtod = num()?,
            "w_max" => self.w_max = num()?,
            "w_min" => self.w_min = num()?,
            "w_max_dtod" => self.w_max_dtod = num()?,
            "w_min_dtod" => self.w_min_dtod = num()?,
            "enforce_consistency" => self.enforce_consistency = flag()?,
            "gamma_up" if self.response == Kind::ExpStep => self.shape.es_gamma_up = num()?,
            "gamma_down" if self.response == Kind::ExpStep => self.shape.es_gamma_down = num()?,
            "gamma_up" => self.shape.gamma_up = num()?,
            "gamma_down" => self.shape.gamma_down = num()?,
            "gamma_up_dtod" => self.shape.gamma_up_dtod = num()?,
            "gamma_down_dtod" => self.shape.gamma_down_dtod = num()?,
            "mean_bound_reference" => self.shape.mean_bound_reference = flag()?,
            "A_up" => self.shape.a_up = num()?,
            "A_down" => self.shape.a_down = num()?,
            "a" => self.shape.a = num()?,
            "b" => self.shape.b = num()?,
            "pow_gamma" => self.shape.pow_gamma = num()?,
            "pow_gamma_dtod" => self.shape.pow_gamma_dtod = num()?,
            "pow_up_down" => self.shape.pow_up_down = num()?,
            "pow_up_down_dtod" => self.shape.pow_up_down_dtod = num()?,
            "piecewise_up" => self.shape.piecewise_up = list()?,
            "piecewise_down" => self.shape.piecewise_down = list()?,
            other => {
                return Err(Error::param(
                    "--param",
                    other,
                    "not a parameter of aihwkit's pulsed devices",
                ));
            }
        }
        Ok(())
    }

    /// Checks the values (the bounds must contain 0, as aihwkit requires).
    pub fn validate(&self) -> Result<()> {
        if !(self.w_min <= 0.0 && self.w_max >= 0.0) {
            return Err(Error::param(
                "w_min/w_max",
                format!("[{}, {}]", self.w_min, self.w_max),
                "the interval [w_min, w_max] must contain 0 (aihwkit)",
            ));
        }
        if !(self.dw_min.is_finite() && self.dw_min > 0.0) {
            return Err(Error::param(
                "dw_min",
                self.dw_min,
                "must be a finite number > 0",
            ));
        }
        for (k, v) in [
            ("up_down", self.up_down),
            ("dw_min_dtod", self.dw_min_dtod),
            ("dw_min_std", self.dw_min_std),
            ("up_down_dtod", self.up_down_dtod),
            ("w_max_dtod", self.w_max_dtod),
            ("w_min_dtod", self.w_min_dtod),
            ("w_min", self.w_min),
            ("w_max", self.w_max),
        ] {
            if !v.is_finite() || (k.ends_with("_dtod") || k.ends_with("_std")) && v < 0.0 {
                return Err(Error::param(k, v, "must be a finite number (spreads ≥ 0)"));
            }
        }
        // Also refuses piecewise node lists of unequal lengths.
        self.shape.validate("--param")
    }
}

/// The drawn (device-to-device) numbers of one device, in aihwkit's weight units.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Drawn {
    /// Lower and upper bound.
    pub w_min: f32,
    pub w_max: f32,
    /// Step of one pulse up / down (before the response's shape).
    pub scale_up: f32,
    pub scale_down: f32,
    /// linear-step / soft-bounds: dw = scale + slope·w.
    pub slope_up: f32,
    pub slope_down: f32,
    /// pow-step exponents.
    pub gamma_up: f32,
    pub gamma_down: f32,
}

/// One device with its drawn (device-to-device) properties.
#[derive(Clone, Debug)]
pub struct Device {
    p: Params,
    d: Drawn,
}

fn gauss(rng: &mut Option<&mut Rng>) -> f32 {
    match rng {
        Some(r) => StandardNormal.sample(*r),
        None => 0.0,
    }
}

/// The shape-dependent numbers of a device of `kind` with bounds `w_min`, `w_max` and
/// steps `scale_up`, `scale_down` (aihwkit's `populate` of the response subclasses):
/// the slopes of linear-step / soft-bounds and the exponents of pow-step, drawing their
/// spreads from `z` (called once per spread, in aihwkit's order); `consistent`: aihwkit's
/// `enforce_consistency` (positive exponents).
pub fn shape_numbers(
    kind: Kind,
    sh: &Shape,
    d: &mut Drawn,
    (nominal_w_min, nominal_w_max): (f32, f32),
    consistent: bool,
    mut z: impl FnMut() -> f32,
) {
    match kind {
        Kind::LinearStep | Kind::SoftBounds => {
            let du = (sh.gamma_up + sh.gamma_up_dtod * z()).abs();
            let dd = (sh.gamma_down + sh.gamma_down_dtod * z()).abs();
            let (ref_up, ref_down) = if sh.mean_bound_reference {
                (nominal_w_max, nominal_w_min)
            } else {
                (d.w_max, d.w_min)
            };
            d.slope_up = if ref_up != 0.0 {
                -du * d.scale_up / ref_up
            } else {
                0.0
            };
            d.slope_down = if ref_down != 0.0 {
                -dd * d.scale_down / ref_down
            } else {
                0.0
            };
        }
        Kind::PowStep => {
            let pud = sh.pow_up_down;
            let ub = if pud > 0.0 { 0.0 } else { pud };
            let db = if pud > 0.0 { -pud } else { 0.0 };
            let g = 1.0 + sh.pow_gamma_dtod * z();
            let r = sh.pow_up_down_dtod * z();
            d.gamma_up = (ub + g + r) * sh.pow_gamma;
            d.gamma_down = (db + g - r) * sh.pow_gamma;
            if consistent {
                d.gamma_up = d.gamma_up.abs();
                d.gamma_down = d.gamma_down.abs();
            }
        }
        _ => {}
    }
}

/// One pulse of a device of `kind` (`up`: increase) from `w`, with cycle-to-cycle
/// factor `noise` (1 + dw_min_std·ξ; exactly 1 without noise), in aihwkit's f32
/// operation order; returns the new weight, clipped to the device's bounds.
#[inline]
pub fn pulse_once(kind: Kind, sh: &Shape, d: &Drawn, w: f32, up: bool, noise: f32) -> f32 {
    let (lo, hi) = (d.w_min, d.w_max);
    let w = match kind {
        Kind::ConstantStep => {
            if up {
                w + d.scale_up * noise
            } else {
                w - d.scale_down * noise
            }
        }
        Kind::LinearStep | Kind::SoftBounds => {
            if up {
                w + (d.slope_up * w + d.scale_up) * noise
            } else {
                w - (d.slope_down * w + d.scale_down) * noise
            }
        }
        Kind::ExpStep => {
            let b_diff = hi - lo;
            if b_diff <= 0.0 {
                return w;
            }
            let z = 2.0 * w / b_diff * sh.a + sh.b;
            if up {
                let e = f64::from(sh.es_gamma_up * z).exp() as f32;
                let y = (1.0 - sh.a_up * e).max(0.0);
                w + y * noise * d.scale_up
            } else {
                let e = f64::from(sh.es_gamma_down * (-z)).exp() as f32;
                let y = (1.0 - sh.a_down * e).max(0.0);
                w - y * noise * d.scale_down
            }
        }
        Kind::PowStep => {
            let range = hi - lo;
            if range == 0.0 {
                return w;
            }
            if up {
                let f = f64::from((hi - w) / range).powf(f64::from(d.gamma_up)) as f32;
                w + d.scale_up * f * noise
            } else {
                let f = f64::from((w - lo) / range).powf(f64::from(d.gamma_down)) as f32;
                w - d.scale_down * f * noise
            }
        }
        Kind::PiecewiseStep => {
            let (pu, pd) = (&sh.piecewise_up, &sh.piecewise_down);
            let n = pu.len().saturating_sub(1);
            if n == 0 || hi <= lo {
                if up {
                    let s = pu.first().map_or(d.scale_up, |v| v * d.scale_up);
                    w + s * noise
                } else {
                    let s = pd.first().map_or(d.scale_down, |v| v * d.scale_down);
                    w - s * noise
                }
            } else {
                let ws = ((w - lo) / (hi - lo) * n as f32).max(0.0);
                let k = (ws.floor() as usize).min(n - 1);
                let t = (ws - k as f32).min(1.0);
                let t1 = 1.0 - t;
                if up {
                    w + d.scale_up * (t1 * pu[k] + t * pu[k + 1]) * noise
                } else {
                    w - d.scale_down * (t1 * pd[k] + t * pd[k + 1]) * noise
                }
            }
        }
    };
    w.max(lo).min(hi)
}

impl Device {
    /// Draws a device (`rng`: device-to-device variation; `None`: the nominal device).
    pub fn new(p: &Params, mut rng: Option<&mut Rng>) -> Self {
        let (ud, ud_std) = (p.up_down, p.up_down_dtod);
        let up_bias = if ud > 0.0 { 0.0 } else { ud };
        let down_bias = if ud > 0.0 { -ud } else { 0.0 };
        let mut w_max = p.w_max * (1.0 + p.w_max_dtod * gauss(&mut rng));
        let mut w_min = p.w_min * (1.0 + p.w_min_dtod * gauss(&mut rng));
        let gain = 1.0 + p.dw_min_dtod * gauss(&mut rng);
        let r = ud_std * gauss(&mut rng);
        let mut scale_up = (up_bias + gain + r) * p.dw_min;
        let mut scale_down = (down_bias + gain - r) * p.dw_min;
        if p.enforce_consistency {
            scale_up = scale_up.abs();
            scale_down = scale_down.abs();
            if w_min > w_max {
                std::mem::swap(&mut w_min, &mut w_max);
            }
            w_max = w_max.abs();
            w_min = -w_min.abs();
        } else if w_min > w_max {
            let m = w_max + (w_min - w_max) / 2.0;
            w_max = m;
            w_min = m;
        }
        let mut d = Drawn {
            w_min,
            w_max,
            scale_up,
            scale_down,
            ..Drawn::default()
        };
        let nominal = (p.w_min, p.w_max);
        let consistent = p.enforce_consistency;
        shape_numbers(p.response, &p.shape, &mut d, nominal, consistent, || {
            gauss(&mut rng)
        });
        Self { p: p.clone(), d }
    }

    /// This device's bounds (w_min, w_max).
    pub fn bounds(&self) -> (f32, f32) {
        (self.d.w_min, self.d.w_max)
    }

    /// One pulse from `w` (`up`: increase), with cycle-to-cycle noise from `rng` if any;
    /// returns the new weight, clipped to the bounds.
    pub fn pulse(&self, w: f32, up: bool, mut rng: Option<&mut Rng>) -> f32 {
        let noise = 1.0 + self.p.dw_min_std * gauss(&mut rng);
        pulse_once(self.p.response, &self.p.shape, &self.d, w, up, noise)
    }

    /// The weight after each of `up` up pulses then `down` down pulses from `start`
    /// (start clipped to the bounds first).
    pub fn trajectory(
        &self,
        start: f32,
        up: usize,
        down: usize,
        mut rng: Option<&mut Rng>,
    ) -> Vec<f32> {
        let mut w = start.max(self.d.w_min).min(self.d.w_max);
        let mut out = Vec::with_capacity(up + down);
        for k in 0..up + down {
            w = self.pulse(w, k < up, rng.as_deref_mut());
            out.push(w);
        }
        out
    }
}

/// The golden aihwkit 1.1.0 trajectories of `../shared/fidelity/aihwkit-pulse-traces.json`,
/// or `None` (with a message) when the file is not there.
#[cfg(test)]
pub(crate) fn golden_traces() -> Option<serde_json::Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fidelity/aihwkit-pulse-traces.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(serde_json::from_str(&text).expect("golden file is JSON")),
        Err(_) => {
            eprintln!("skipped: {} not found", path.display());
            None
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The committed copy of one golden configuration (aihwkit 1.1.0 SoftBoundsDevice,
    /// dw_min 0.01, up_down 0.3, bounds ±0.6, noise off, from start 0.0): the check runs
    /// without `../shared`.
    #[test]
    fn committed_golden_soft_bounds_trajectory_matches() {
        let text = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/aihwkit-soft-bounds-up-down-0.3.json"
        ));
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let want: Vec<f64> = serde_json::from_value(v["trajectory"].clone()).unwrap();
        let mut p = Params::of(Kind::SoftBounds).noise_free();
        p.dw_min = 0.01;
        p.up_down = 0.3;
        let d = Device::new(&p, None);
        let got = d.trajectory(v["start_weight"].as_f64().unwrap() as f32, 100, 100, None);
        let dev = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (f64::from(*a) - b).abs())
            .fold(0.0, f64::max);
        assert!(dev <= 1e-6, "max deviation {dev}");
    }

    /// Every trajectory of `../shared/fidelity/aihwkit-pulse-traces.json` (skipped with a
    /// message when the file is not there).
    #[test]
    fn golden_aihwkit_trajectories_match() {
        let Some(v) = golden_traces() else { return };
        for c in v["configs"].as_array().unwrap() {
            let p = golden_params(c);
            let d = Device::new(&p, None);
            let mut worst = 0.0f64;
            for run in c["runs"].as_array().unwrap() {
                let start = run["start_weight"].as_f64().unwrap() as f32;
                let want: Vec<f64> = serde_json::from_value(run["trajectory"].clone()).unwrap();
                let got = d.trajectory(start, 100, 100, None);
                for (a, b) in got.iter().zip(&want) {
                    worst = worst.max((f64::from(*a) - b).abs());
                }
            }
            println!(
                "{} (id {}): max deviation {worst:.2e}",
                c["aihwkit_class"], c["id"]
            );
            assert!(worst <= 1e-6, "{}: {worst}", c["aihwkit_class"]);
        }
    }

    /// The parameters of one golden configuration.
    pub(crate) fn golden_params(c: &serde_json::Value) -> Params {
        let kind = match c["aihwkit_class"].as_str().unwrap() {
            "ConstantStepDevice" => Kind::ConstantStep,
            "LinearStepDevice" => Kind::LinearStep,
            "SoftBoundsDevice" => Kind::SoftBounds,
            "ExpStepDevice" => Kind::ExpStep,
            "PowStepDevice" => Kind::PowStep,
            "PiecewiseStepDevice" => Kind::PiecewiseStep,
            other => panic!("unknown class {other}"),
        };
        let mut p = Params::of(kind);
        let params = c["params"].as_object().unwrap();
        for (k, val) in params {
            let s = match val {
                serde_json::Value::Array(a) => a
                    .iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => continue,
            };
            // Parameters with no effect on a noise-free single device are not modelled.
            let _ = p.set(k, &s);
        }
        p
    }
}
