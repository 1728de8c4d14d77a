//! Per-instance random neuron curves of hidden layers.
//!
//! Each neuron `i` of a ReLU layer has its own curve, drawn once from the chip seed:
//! `y = S_i·tanh(g_i·κ_i·softplus((a − θ_i)/κ_i)/S_i)`, with gain `g_i ~ N(1, σ_g)`
//! (clipped at 0), threshold `θ_i ~ N(0, σ_θ)`, knee softness `κ_i` (0 = a sharp corner,
//! giving `g_i·max(0, a − θ_i)`) and saturation `S_i` (0 = none). Sigmoid layers get
//! `y = σ(g_i·(a − θ_i))`. Linear layers have no neuron (the ADC reading is the output).
//! With all spreads 0, κ = 0 and no saturation the curve is exactly `max(0, a)`.

use rand_distr::{Distribution, StandardNormal};

use super::fastmath::{exp, expm1, ln1p};
use super::spec::NeuronSpec;
use crate::rng::Rng;
use crate::substrate::Activation;

/// The neurons of one layer.
#[derive(Clone, Debug)]
pub(crate) struct Neurons {
    act: Activation,
    /// True when every neuron is the nominal activation (fast, exact path).
    nominal: bool,
    gain: Vec<f32>,
    offset: Vec<f32>,
    knee: Vec<f32>,
    saturation: Vec<f32>,
    /// Per-call additive output noise, activity units.
    pub noise: f32,
}

fn normal(rng: &mut Rng) -> f32 {
    StandardNormal.sample(rng)
}

/// Numerically stable softplus ln(1 + eᶻ).
#[inline(always)]
fn softplus(z: f32) -> f32 {
    z.max(0.0) + ln1p(exp(-z.abs()))
}

/// tanh from expm1 (accurate near 0; ±1 beyond |x| = 20).
#[inline(always)]
fn tanh(x: f32) -> f32 {
    let e = expm1((2.0 * x.abs()).min(40.0));
    let t = e / (e + 2.0);
    if x < 0.0 { -t } else { t }
}

/// An output below this many activity units is 0: its square underflows f32, and next
/// to any other activity or noise it is far below one ulp.
const NEGLIGIBLE: f32 = 1e-30;

/// One per-instance curve with parameters (gain, offset, knee, saturation); branch-free
/// (polynomial exp/ln), so loops over neurons vectorise.
#[inline(always)]
fn curve(act: Activation, (g, off, k, sat): (f32, f32, f32, f32), a: f32) -> f32 {
    let t = a - off;
    match act {
        Activation::Linear => a,
        Activation::Sigmoid => 1.0 / (1.0 + exp(-g * t)),
        Activation::Relu => {
            let lin = if k > 0.0 {
                k * softplus(t / k)
            } else {
                t.max(0.0)
            };
            // Far below its knee a unit's output is tiny (down to κ·e⁻⁸⁷): below
            // NEGLIGIBLE it is 0, before tanh's arithmetic reaches subnormals (≈ 100×
            // slower on x86 cores).
            let y = g * lin;
            let y = if y.abs() < NEGLIGIBLE { 0.0 } else { y };
            if sat > 0.0 { sat * tanh(y / sat) } else { y }
        }
    }
}

/// [`curve`] over a column, one loop per activation.
#[multiversion::multiversion(targets = "simd")]
fn per_neuron(n: &Neurons, y: &mut [f32]) {
    let len = y.len();
    let (g, o) = (&n.gain[..len], &n.offset[..len]);
    let (k, s) = (&n.knee[..len], &n.saturation[..len]);
    match n.act {
        Activation::Linear => {}
        Activation::Sigmoid => {
            for i in 0..len {
                y[i] = curve(Activation::Sigmoid, (g[i], o[i], k[i], s[i]), y[i]);
            }
        }
        Activation::Relu => {
            for i in 0..len {
                y[i] = curve(Activation::Relu, (g[i], o[i], k[i], s[i]), y[i]);
            }
        }
    }
}

impl Neurons {
    /// Draws `n` neurons for a layer with nominal activation `act`.
    pub fn new(spec: &NeuronSpec, act: Activation, n: usize, rng: &mut Rng) -> Self {
        let mut gain = Vec::with_capacity(n);
        let mut offset = Vec::with_capacity(n);
        let mut knee = Vec::with_capacity(n);
        let mut saturation = Vec::with_capacity(n);
        for _ in 0..n {
            // Four draws per neuron, always, so one spread does not shift the others.
            let (zg, zt, zk, zs) = (normal(rng), normal(rng), normal(rng), normal(rng));
            gain.push((1.0 + spec.gain_std as f32 * zg).max(0.0));
            offset.push(spec.offset_std as f32 * zt);
            knee.push(spec.knee as f32 * (1.0 + spec.knee_std as f32 * zk).max(0.0));
            saturation
                .push(spec.saturation as f32 * (1.0 + spec.saturation_std as f32 * zs).max(0.0));
        }
        let nominal = act == Activation::Linear
            || (gain.iter().all(|g| *g == 1.0)
                && offset.iter().all(|t| *t == 0.0)
                && knee.iter().all(|k| *k == 0.0)
                && saturation.iter().all(|s| *s == 0.0));
        let noise = if act == Activation::Linear {
            0.0
        } else {
            spec.noise as f32
        };
        Self {
            act,
            nominal,
            gain,
            offset,
            knee,
            saturation,
            noise,
        }
    }

    /// Whether the curve is the nominal activation with no noise.
    #[cfg(test)]
    pub fn is_nominal(&self) -> bool {
        self.nominal && self.noise == 0.0
    }

    /// Whether every neuron is exactly `max(0, a)`.
    pub fn is_nominal_relu(&self) -> bool {
        self.nominal && self.act == Activation::Relu
    }

    /// Neuron `i`'s response to activity `a` (no noise): the per-neuron reference of
    /// [`Self::apply_all`], for tests.
    #[cfg(test)]
    pub fn apply(&self, i: usize, a: f32) -> f32 {
        if self.nominal {
            return self.act.apply(a);
        }
        let p = (
            self.gain[i],
            self.offset[i],
            self.knee[i],
            self.saturation[i],
        );
        curve(self.act, p, a)
    }

    /// Every neuron of a column: `y[i] ← neuron i (y[i])` (no noise), as [`Self::apply`].
    pub fn apply_all(&self, y: &mut [f32]) {
        if self.nominal {
            for v in y.iter_mut() {
                *v = self.act.apply(*v);
            }
        } else {
            per_neuron(self, y);
        }
    }

    /// (gain, offset) of neuron `i`, for tests.
    #[cfg(test)]
    pub fn params(&self, i: usize) -> (f32, f32) {
        (self.gain[i], self.offset[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_spreads_give_exact_relu() {
        let mut rng = crate::rng::stream(1, "n");
        let n = Neurons::new(&NeuronSpec::default(), Activation::Relu, 5, &mut rng);
        assert!(n.is_nominal());
        for a in [-2.0f32, -1e-30, 0.0, 1e-30, 0.3, 7.5] {
            assert_eq!(n.apply(3, a).to_bits(), a.max(0.0).to_bits());
        }
    }

    #[test]
    fn gain_and_offset_spreads_are_recovered_from_the_curves() {
        let spec = NeuronSpec {
            gain_std: 0.2,
            offset_std: 0.1,
            ..NeuronSpec::default()
        };
        let mut rng = crate::rng::stream(2, "n");
        let n = 4000;
        let neurons = Neurons::new(&spec, Activation::Relu, n, &mut rng);
        // Measure each neuron from two points on its linear branch, as an experimenter
        // would: slope = g, and the zero crossing a = θ.
        let (mut gs, mut ts) = (Vec::new(), Vec::new());
        for i in 0..n {
            let (y1, y2) = (neurons.apply(i, 2.0), neurons.apply(i, 3.0));
            let g = y2 - y1;
            gs.push(f64::from(g));
            ts.push(f64::from(2.0 - y1 / g));
        }
        let stats = |v: &[f64]| {
            let m = v.iter().sum::<f64>() / v.len() as f64;
            let s = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt();
            (m, s)
        };
        let (gm, gsd) = stats(&gs);
        let (tm, tsd) = stats(&ts);
        // n = 4000: std of a mean = σ/√n (0.2/63 ≈ 0.0032, 0.1/63 ≈ 0.0016); std of a
        // sample std ≈ σ/√(2n) (≈ 0.0022, 0.0011). Bounds are ~4 of those.
        assert!((gm - 1.0).abs() < 0.013, "mean gain {gm}");
        assert!((gsd - 0.2).abs() < 0.009, "gain spread {gsd}");
        assert!(tm.abs() < 0.0065, "mean offset {tm}");
        assert!((tsd - 0.1).abs() < 0.0045, "offset spread {tsd}");
        let (g, t) = neurons.params(7);
        assert!((neurons.apply(7, 2.0) - g * (2.0 - t)).abs() < 1e-5);
    }

    #[test]
    fn knee_and_saturation_shape_the_curve() {
        let spec = NeuronSpec {
            knee: 0.5,
            saturation: 2.0,
            ..NeuronSpec::default()
        };
        let mut rng = crate::rng::stream(3, "n");
        let n = Neurons::new(&spec, Activation::Relu, 1, &mut rng);
        // softplus knee: at a = 0 the output is κ·ln 2 (before saturation ≈ 0.347).
        let y0 = n.apply(0, 0.0);
        let want = 2.0 * ((0.5 * 2f32.ln()) / 2.0).tanh();
        assert!((y0 - want).abs() < 1e-6, "{y0} vs {want}");
        // Saturation: never above S, monotone.
        let mut prev = -1.0;
        for k in 0..100 {
            let y = n.apply(0, -5.0 + 0.2 * k as f32);
            assert!(y <= 2.0 && y >= prev);
            prev = y;
        }
        assert!(n.apply(0, 100.0) > 1.999);
        // Far below the knee the output falls smoothly to exactly 0, never through
        // subnormals: κ·softplus(a/κ) ≈ κ·e^(a/κ) is 2e-22 at a = −25 and below 1e-30
        // (NEGLIGIBLE) from a ≈ −34.
        assert!(n.apply(0, -25.0) > 0.0);
        for k in 0..2000 {
            let y = n.apply(0, -k as f32 * 0.05);
            assert!(
                !y.is_subnormal() && (y == 0.0 || y >= NEGLIGIBLE),
                "{k}: {y}"
            );
        }
        assert_eq!(n.apply(0, -40.0), 0.0);
        // Sigmoid with zero spreads is the nominal sigmoid.
        let s = Neurons::new(&NeuronSpec::default(), Activation::Sigmoid, 2, &mut rng);
        assert_eq!(s.apply(1, 0.3), Activation::Sigmoid.apply(0.3));
    }

    #[test]
    fn column_pass_equals_the_per_neuron_curves_bit_for_bit() {
        // apply_all runs the best instruction set of this CPU; apply is the baseline build.
        let spec = NeuronSpec {
            gain_std: 0.2,
            offset_std: 0.1,
            knee: 0.3,
            knee_std: 0.5,
            saturation: 3.0,
            saturation_std: 0.2,
            noise: 0.0,
        };
        for act in [Activation::Relu, Activation::Sigmoid] {
            let n = Neurons::new(&spec, act, 300, &mut crate::rng::stream(4, "n"));
            let x: Vec<f32> = (0..300).map(|i| (i as f32 - 150.0) / 20.0).collect();
            let mut y = x.clone();
            n.apply_all(&mut y);
            for i in 0..300 {
                assert_eq!(y[i].to_bits(), n.apply(i, x[i]).to_bits(), "{act:?} {i}");
            }
        }
    }
}
