//! Hardware-aware training (HWA, in the style of aihwkit's `InferenceRPUConfig` training):
//! digital backprop whose forward pass injects the noise and quantisation a deployed
//! network will meet, so that the trained weights are robust to them; the network is then
//! deployed ([`super::deploy`]).
//!
//! The noise comes from the chip family's **nominal** [`HardwareSpec`] (with the run's
//! `variation` applied): the spec is known, the instance is not. HWA never sees a chip's
//! drawn device properties, stuck devices, neuron curves or black box; it redraws every
//! random quantity of the spec afresh on every batch.
//!
//! # Noise model (per batch, per layer), and where each spec field enters
//!
//! 1. **Weights as programmed** on a nominal chip, redrawn every batch:
//!    gain `g = max(crossbar.weight_range_per_sqrt_fanin/√fan_in, max|W, b|/
//!    crossbar.weight_scaling_omega)`; normalised targets `ŵ = w/g` mapped onto a pair
//!    by `crossbar.mapping` within `[crossbar.g_min, crossbar.g_max]`, rounded to
//!    `crossbar.levels`; each device gets programming noise (`programming.noise`:
//!    constant `programming.sigma·g_max`, or the `pcm` polynomial
//!    `programming.pcm_coefficients` scaled by `g_max/programming.pcm_reference_g_max·
//!    programming.pcm_scale`), is clipped to the nominal range, and is stuck at g_min /
//!    g_max with probability `faults.stuck_min` / `faults.stuck_max`. The forward pass
//!    uses `w̃ = g·(G⁺ − G⁻)/(g_max − g_min)`.
//! 2. **Input DAC** (`dac.bits`, `dac.scaling`, `dac.fixed_range`): each input column and
//!    the bias line are scaled by α (abs-max: max(max|x|, 1); fixed: the fixed range),
//!    clipped to ±1 and rounded to the DAC's levels.
//! 3. **Black box** (layers ≥ 1, if `black_box.enabled`): only its per-call randomness,
//!    additive `black_box.noise` and line `black_box.dropout`. Its crosstalk and
//!    nonlinearity are fixed per instance and unknown: not modelled.
//! 4. **Read noise**, output-referred: N(0, (g·α)²·(`read.out_noise`² +
//!    `read.w_noise`²·‖u‖²)) plus the conductance-dependent term `read.g_noise` with the
//!    sampled conductances of step 1.
//! 5. **Output ADC** (`adc.bits`, `adc.bound`): clip at ±bound and round, in normalised
//!    output units (÷ g·α).
//! 6. **Neurons**: the nominal activation plus additive `neuron.noise`. The per-neuron
//!    spreads and the mean knee/saturation are not modelled (backprop keeps the nominal
//!    activation and its derivative).
//!
//! Not modelled: drift (`drift.*`, training sees the network at t = 0), the device update
//! physics (`device.*`, `update.*`: HWA never updates the chip).
//!
//! # Backward pass
//!
//! Straight-through: gradients flow through the sampled weights w̃ (`w̃ᵀ·δ`), through the
//! DAC, ADC and black box as the identity (also where the ADC clips), and through the
//! nominal activation derivative evaluated at the noisy outputs. The gradient with
//! respect to w̃ updates the clean weights W (the usual HWA rule).

use rand::RngExt;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::linalg::{Mat, Op, ensure_shape, gemm};
use crate::rng::{Rng, derive, indexed};
use crate::substrate::Activation;
use crate::substrate::device::{HardwareSpec, InputScaling, Physics};

use super::{BpBatchStats, BpLearner, LayerGrad, Mlp, Trace, softmax_cross_entropy};

/// Weight elements per parallel task (each with its own indexed stream).
const CHUNK: usize = 1 << 14;
/// Columns per parallel task in the elementwise passes.
const COLS_PER_TASK: usize = 8;

/// The noise HWA injects, derived from a nominal spec (see the module documentation).
#[derive(Clone, Debug)]
pub struct HwaNoise {
    /// The nominal array physics: pair mapping, levels, programming σ, gain (shared
    /// with the chip, so HWA programs weights exactly as the chip's write-verify does).
    phys: Physics,
    stuck_min: f32,
    stuck_max: f32,
    /// DAC level spacing in normalised units (0 = continuous).
    dac_step: f32,
    /// Fixed DAC full scale (None = abs-max scaling).
    dac_fixed: Option<f32>,
    /// ADC level spacing and bound, normalised output units (0 = none).
    adc_step: f32,
    adc_bound: f32,
    out_noise: f32,
    w_noise: f32,
    g_noise: f32,
    neuron_noise: f32,
    bb_noise: f32,
    bb_dropout: f32,
}

/// Uniform quantiser: clip at ±bound (if > 0), round to multiples of step (if > 0).
#[inline]
fn quantise(v: f32, step: f32, bound: f32) -> f32 {
    let v = if bound > 0.0 {
        v.clamp(-bound, bound)
    } else {
        v
    };
    if step > 0.0 {
        (v / step).round_ties_even() * step
    } else {
        v
    }
}

#[inline]
fn normal(rng: &mut Rng) -> f32 {
    StandardNormal.sample(rng)
}

impl HwaNoise {
    /// The noise model of a (nominal) spec.
    pub fn from_spec(spec: &HardwareSpec) -> Self {
        let bb = &spec.black_box;
        Self {
            phys: Physics::new(spec),
            stuck_min: spec.faults.stuck_min as f32,
            stuck_max: spec.faults.stuck_max as f32,
            dac_step: if spec.dac.bits == 0 {
                0.0
            } else {
                1.0 / ((1u64 << (spec.dac.bits - 1)) - 1) as f32
            },
            dac_fixed: match spec.dac.scaling {
                InputScaling::AbsMax => None,
                InputScaling::Fixed => Some(spec.dac.fixed_range as f32),
            },
            adc_step: if spec.adc.bits == 0 {
                0.0
            } else {
                2.0 * spec.adc.bound as f32 / ((1u64 << spec.adc.bits) - 2) as f32
            },
            adc_bound: spec.adc.bound as f32,
            out_noise: spec.read.out_noise as f32,
            w_noise: spec.read.w_noise as f32,
            g_noise: spec.read.g_noise as f32,
            neuron_noise: spec.neuron.noise as f32,
            bb_noise: if bb.enabled { bb.noise as f32 } else { 0.0 },
            bb_dropout: if bb.enabled { bb.dropout as f32 } else { 0.0 },
        }
    }

    /// Whether programming leaves the weights exactly as they are (no levels, no noise,
    /// no faults).
    fn weights_exact(&self) -> bool {
        self.phys.prog_is_exact()
            && self.phys.levels < 2
            && self.stuck_min == 0.0
            && self.stuck_max == 0.0
    }

    /// One device written to `target` on a nominal chip.
    fn write(&self, target: f32, rng: &mut Rng) -> f32 {
        let ph = &self.phys;
        let g = target + ph.prog_sigma(target) * normal(rng);
        let g = g.clamp(ph.g_min, ph.g_max).max(0.0);
        let u: f32 = rng.random();
        if u < self.stuck_min {
            ph.g_min
        } else if u < self.stuck_min + self.stuck_max {
            ph.g_max
        } else {
            g
        }
    }

    /// The digital gain a layer with this fan-in and these targets is programmed with.
    pub fn gain(&self, fan_in: usize, max_abs: f32) -> f32 {
        self.phys
            .nominal_gain(fan_in)
            .max(max_abs / self.phys.omega)
    }

    /// Samples the weights `w` (out × in) and biases `b` as programmed on a nominal chip
    /// into `w_out`/`b_out`; `ghat` (out × (in + 1), bias last) receives the normalised
    /// conductance sums when the read noise needs them. Returns the layer's gain.
    pub fn sample_programmed(
        &self,
        w: &Mat,
        b: &[f32],
        w_out: &mut Mat,
        b_out: &mut [f32],
        ghat: &mut Mat,
        seed: u64,
    ) -> f32 {
        let (out, inp) = w.shape();
        let max_abs = w.iter().chain(b).fold(0.0f32, |m, v| m.max(v.abs()));
        let gain = self.gain(inp, max_abs);
        ensure_shape(w_out, out, inp);
        let need_g = self.g_noise > 0.0;
        if need_g {
            ensure_shape(ghat, out, inp + 1);
        }
        if self.weights_exact() && !need_g {
            w_out.copy_from(w);
            b_out.copy_from_slice(b);
            return gain;
        }
        let range = self.phys.range;
        let (inv_gain, k, inv_range) = (1.0 / gain, gain / range, 1.0 / range);
        let one = |v: f32, rng: &mut Rng| -> (f32, f32) {
            let (tp, tm) = self.phys.targets(v * inv_gain);
            let (gp, gm) = (self.write(tp, rng), self.write(tm, rng));
            (k * (gp - gm), (gp + gm) * inv_range)
        };
        let nw = out * inp;
        let gh = if need_g {
            ghat.as_mut_slice()
        } else {
            &mut [][..]
        };
        let (gh_w, gh_b) = gh.split_at_mut(if need_g { nw } else { 0 });
        let mut gh_w_chunks: Vec<&mut [f32]> = if need_g {
            gh_w.chunks_mut(CHUNK).collect()
        } else {
            Vec::new()
        };
        gh_w_chunks.resize_with(nw.div_ceil(CHUNK), Default::default);
        w_out
            .as_mut_slice()
            .par_chunks_mut(CHUNK)
            .zip(w.as_slice().par_chunks(CHUNK))
            .zip(gh_w_chunks.into_par_iter())
            .enumerate()
            .for_each(|(c, ((o, src), g))| {
                let mut rng = indexed(seed, c as u64);
                for (i, (o, v)) in o.iter_mut().zip(src).enumerate() {
                    let (wv, gs) = one(*v, &mut rng);
                    *o = wv;
                    if !g.is_empty() {
                        g[i] = gs;
                    }
                }
            });
        let mut rng = crate::rng::stream(seed, "bias");
        for (i, (o, v)) in b_out.iter_mut().zip(b).enumerate() {
            let (wv, gs) = one(*v, &mut rng);
            *o = wv;
            if need_g {
                gh_b[i] = gs;
            }
        }
        gain
    }
}

/// Per-layer scratch of the noisy forward pass.
#[derive(Clone, Debug, Default)]
struct LayerScratch {
    gain: f32,
    /// (G⁺ + G⁻)/range of the sampled pairs (read.g_noise only).
    ghat: Mat,
    /// Per column: α, bias-line value (network units), ‖u‖², bias-line u.
    alpha: Vec<f32>,
    vbias: Vec<f32>,
    unorm2: Vec<f32>,
    ubias: Vec<f32>,
    /// Squared normalised inputs and their ĝ-weighted sums (g-noise only).
    u2: Mat,
    gx2: Mat,
}

/// Digital backprop with hardware-aware noise injection. The clean model and its
/// optimiser are an ordinary [`BpLearner`].
#[derive(Clone, Debug)]
pub struct HwaLearner {
    /// The clean model being trained (what gets deployed).
    pub bp: BpLearner,
    noise: HwaNoise,
    /// This batch's weights as programmed on a nominal chip.
    noisy: Mlp,
    scratch: Vec<LayerScratch>,
    trace: Trace,
    grads: Vec<LayerGrad>,
    delta: Vec<Mat>,
    dlogits: Mat,
}

impl HwaLearner {
    /// HWA training of `bp`'s model with the noise of `noise`.
    pub fn new(bp: BpLearner, noise: HwaNoise) -> Self {
        let noisy = bp.mlp.clone();
        let layers = noisy.topology().layers();
        Self {
            bp,
            noise,
            noisy,
            scratch: vec![LayerScratch::default(); layers],
            trace: Trace::default(),
            grads: Vec::new(),
            delta: Vec::new(),
            dlogits: Mat::zeros(0, 0),
        }
    }

    /// The clean model.
    pub fn mlp(&self) -> &Mlp {
        &self.bp.mlp
    }

    /// The noise model.
    pub fn noise(&self) -> &HwaNoise {
        &self.noise
    }

    /// The forward pass as a nominal chip would compute it (fresh weight sample and
    /// per-call noise from `noise`); the trace's inputs are what the input lines carried,
    /// its outputs the noisy activities.
    pub fn noisy_forward(&mut self, x: &Mat, noise: &mut Rng) -> &Trace {
        let layers = self.noisy.topology().layers();
        self.trace.inputs.resize_with(layers, Mat::default);
        self.trace.outputs.resize_with(layers, Mat::default);
        for l in 0..layers {
            let seed: u64 = noise.random();
            let act = self.bp.mlp.topology().activation(l);
            let (clean_w, clean_b) = &self.bp.mlp.params[l];
            let (nw, nb) = &mut self.noisy.params[l];
            let sc = &mut self.scratch[l];
            sc.gain = self.noise.sample_programmed(
                clean_w,
                clean_b,
                nw,
                nb,
                &mut sc.ghat,
                derive(seed, "weights"),
            );
            let (before, after) = self.trace.outputs.split_at_mut(l);
            let input = if l == 0 { x } else { &before[l - 1] };
            layer_forward(
                &self.noise,
                l > 0,
                act,
                (&*nw, &*nb),
                sc,
                input,
                &mut self.trace.inputs[l],
                &mut after[0],
                seed,
            );
        }
        &self.trace
    }

    /// One HWA step: noisy forward, straight-through backward through the sampled
    /// weights, optimiser step of the clean weights.
    pub fn train_batch(
        &mut self,
        images: &Mat,
        labels: &[usize],
        gain: f32,
        noise: &mut Rng,
    ) -> Result<BpBatchStats> {
        self.noisy_forward(images, noise);
        let (loss_sum, errors) =
            softmax_cross_entropy(self.trace.logits(), labels, &mut self.dlogits);
        if !loss_sum.is_finite() {
            return Err(Error::Diverged(format!(
                "hardware-aware backprop loss is {loss_sum}; lower the learning rate"
            )));
        }
        self.noisy
            .backward(&self.trace, &self.dlogits, &mut self.grads, &mut self.delta);
        // Host work: the noisy forward (the model's pass plus one noise draw and add per
        // weight-read output, counted as the pass again) and the backward pass.
        let topo = self.noisy.topology().clone();
        super::count_model(&mut self.bp.ledger, &topo, labels.len(), true);
        super::count_model(&mut self.bp.ledger, &topo, labels.len(), false);
        crate::learn::host::softmax_error(&mut self.bp.ledger, self.dlogits.nrows(), labels.len());
        self.bp.apply_gradients(&self.grads, gain);
        Ok(BpBatchStats {
            loss_sum,
            errors,
            samples: labels.len(),
        })
    }
}

/// One layer of the noisy forward pass: `x` → `r` (what the lines carried) → `y`.
#[allow(clippy::too_many_arguments)]
fn layer_forward(
    nz: &HwaNoise,
    has_black_box: bool,
    act: Activation,
    (w, b): (&Mat, &[f32]),
    sc: &mut LayerScratch,
    x: &Mat,
    r: &mut Mat,
    y: &mut Mat,
    seed: u64,
) {
    let (inp, batch) = x.shape();
    let out = w.nrows();
    ensure_shape(r, inp, batch);
    ensure_shape(y, out, batch);
    for v in [&mut sc.alpha, &mut sc.vbias, &mut sc.unorm2, &mut sc.ubias] {
        v.resize(batch, 0.0);
    }
    let (bb_noise, bb_drop) = if has_black_box {
        (nz.bb_noise, nz.bb_dropout)
    } else {
        (0.0, 0.0)
    };
    let need_u2 = nz.g_noise > 0.0;
    if need_u2 {
        ensure_shape(&mut sc.u2, inp, batch);
    }
    let passthrough =
        nz.dac_step == 0.0 && nz.dac_fixed.is_none() && bb_noise == 0.0 && bb_drop == 0.0;
    let seed_in = derive(seed, "input");
    let mut u2_cols: Vec<&mut [f32]> = if need_u2 {
        sc.u2.as_mut_slice().chunks_mut(inp.max(1)).collect()
    } else {
        Vec::new()
    };
    u2_cols.resize_with(batch, Default::default);
    // 1. DAC (and the black box's per-call randomness), per column.
    r.as_mut_slice()
        .par_chunks_mut(inp.max(1))
        .zip(x.as_slice().par_chunks(inp.max(1)))
        .zip(sc.alpha.par_iter_mut().zip(sc.vbias.par_iter_mut()))
        .zip(sc.unorm2.par_iter_mut().zip(sc.ubias.par_iter_mut()))
        .zip(u2_cols.into_par_iter())
        .enumerate()
        .with_min_len(COLS_PER_TASK)
        .for_each(|(j, ((((rc, xc), (a, vb)), (n2, ub)), u2c))| {
            let alpha = nz
                .dac_fixed
                .unwrap_or_else(|| xc.iter().fold(1.0f32, |m, v| m.max(v.abs())));
            let inv = 1.0 / alpha;
            let ubias = quantise(inv.min(1.0), nz.dac_step, 1.0);
            let mut norm2 = ubias * ubias;
            if passthrough {
                rc.copy_from_slice(xc);
                for (k, v) in xc.iter().enumerate() {
                    let u = v * inv;
                    norm2 += u * u;
                    if !u2c.is_empty() {
                        u2c[k] = u * u;
                    }
                }
                *vb = 1.0;
            } else {
                let mut rng = indexed(seed_in, j as u64);
                for (k, (o, v)) in rc.iter_mut().zip(xc).enumerate() {
                    let mut u = quantise(v * inv, nz.dac_step, 1.0);
                    if bb_noise > 0.0 {
                        u += bb_noise * normal(&mut rng);
                    }
                    if bb_drop > 0.0 && rng.random::<f32>() < bb_drop {
                        u = 0.0;
                    }
                    norm2 += u * u;
                    if !u2c.is_empty() {
                        u2c[k] = u * u;
                    }
                    *o = u * alpha;
                }
                *vb = ubias * alpha;
            }
            *a = alpha;
            *n2 = norm2;
            *ub = ubias;
        });
    // 2. The MVM with the sampled weights.
    gemm(1.0, w, Op::N, r, Op::N, 0.0, y);
    if need_u2 {
        ensure_shape(&mut sc.gx2, out, batch);
        gemm(
            1.0,
            &sc.ghat.columns(0, inp),
            Op::N,
            &sc.u2,
            Op::N,
            0.0,
            &mut sc.gx2,
        );
    }
    // 3–6. Bias, read noise, ADC, neurons, per column.
    let gain = sc.gain;
    let seed_out = derive(seed, "output");
    let hidden = act != Activation::Linear;
    let neuron_noise = if hidden { nz.neuron_noise } else { 0.0 };
    let adc_on = nz.adc_step > 0.0 || nz.adc_bound > 0.0;
    let noisy = nz.out_noise > 0.0 || nz.w_noise > 0.0 || nz.g_noise > 0.0 || neuron_noise > 0.0;
    let ghat_bias: &[f32] = if need_u2 {
        &sc.ghat.as_slice()[out * inp..]
    } else {
        &[]
    };
    let gx2: &[f32] = if need_u2 { sc.gx2.as_slice() } else { &[] };
    let (alpha, vbias, unorm2, ubias) = (&sc.alpha, &sc.vbias, &sc.unorm2, &sc.ubias);
    y.as_mut_slice()
        .par_chunks_mut(out.max(1))
        .enumerate()
        .with_min_len(COLS_PER_TASK)
        .for_each(|(j, yc)| {
            let scale = gain * alpha[j];
            let sig =
                scale * (nz.out_noise * nz.out_noise + nz.w_noise * nz.w_noise * unorm2[j]).sqrt();
            let inv_scale = if scale > 0.0 { 1.0 / scale } else { 0.0 };
            let mut rng = noisy.then(|| indexed(seed_out, j as u64));
            for (i, v) in yc.iter_mut().enumerate() {
                let mut a = *v + b[i] * vbias[j];
                if let Some(rng) = rng.as_mut() {
                    if sig > 0.0 {
                        a += sig * normal(rng);
                    }
                    if nz.g_noise > 0.0 {
                        let g = gx2[j * out + i] + ghat_bias[i] * ubias[j] * ubias[j];
                        a += scale * nz.g_noise * g.max(0.0).sqrt() * normal(rng);
                    }
                }
                if adc_on && scale > 0.0 {
                    a = quantise(a * inv_scale, nz.adc_step, nz.adc_bound) * scale;
                }
                if hidden {
                    a = act.apply(a);
                    if let Some(rng) = rng.as_mut()
                        && neuron_noise > 0.0
                    {
                        a += neuron_noise * normal(rng);
                    }
                }
                *v = a;
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{CLASSES, PIXELS};
    use crate::learn::BpConfig;
    use crate::rng::stream;
    use crate::substrate::Topology;
    use crate::substrate::device::presets;

    fn images(n: usize, seed: u64) -> (Mat, Vec<usize>) {
        let mut r = stream(seed, "images");
        let x = Mat::from_fn(PIXELS, n, |_, _| r.random_range(0.0f32..1.0));
        let labels = (0..n).map(|j| (j * 7) % CLASSES).collect();
        (x, labels)
    }

    /// On the ideal spec nothing is injected: HWA steps are digital BP steps, bit for bit.
    #[test]
    fn ideal_spec_gives_exactly_digital_backprop() {
        let cfg = BpConfig::default();
        let mut bp = BpLearner::new(cfg.clone(), &[24, 16], 3).unwrap();
        let mut hwa = HwaLearner::new(
            BpLearner::new(cfg, &[24, 16], 3).unwrap(),
            HwaNoise::from_spec(&presets::ideal()),
        );
        let mut noise = stream(1, "n");
        for k in 0..3 {
            let (x, y) = images(20, k);
            let a = bp.train_batch(&x, &y, 1.0).unwrap();
            let b = hwa.train_batch(&x, &y, 1.0, &mut noise).unwrap();
            assert_eq!(a.loss_sum, b.loss_sum);
        }
        assert_eq!(bp.mlp, hwa.bp.mlp);
    }

    /// Programming noise of the sampled weights has the spec's σ (two devices per pair),
    /// and stuck devices appear at the spec's rate.
    #[test]
    fn sampled_weights_carry_the_specs_programming_noise_and_faults() {
        let mut spec = presets::reram();
        spec.faults.stuck_min = 0.0;
        spec.faults.stuck_max = 0.0;
        let nz = HwaNoise::from_spec(&spec);
        let topo = Topology::classifier(vec![400, 300, CLASSES], Activation::Relu).unwrap();
        let m = Mlp::new(topo, 1);
        let (w, b) = &m.params[0];
        let (mut wo, mut bo, mut gh) = (Mat::zeros(0, 0), vec![0.0; b.len()], Mat::zeros(0, 0));
        let gain = nz.sample_programmed(w, b, &mut wo, &mut bo, &mut gh, 5);
        let max_abs = w.iter().chain(b.iter()).fold(0.0f32, |m, v| m.max(v.abs()));
        let omega = spec.crossbar.weight_scaling_omega as f32;
        assert_eq!(
            gain,
            (4.0f32 / 20.0).max(max_abs / omega),
            "gain for fan-in 400"
        );
        let want = std::f32::consts::SQRT_2 * 0.01 * 25.0 * gain / 24.9;
        let diff: Vec<f32> = wo.iter().zip(w.iter()).map(|(a, b)| a - b).collect();
        let n = diff.len() as f32;
        let mean = diff.iter().sum::<f32>() / n;
        let sd = (diff.iter().map(|d| (d - mean).powi(2)).sum::<f32>() / n).sqrt();
        // 120,000 samples: the sd estimate is within 1 % (relative std √(1/2n) ≈ 0.2 %).
        assert!((sd / want - 1.0).abs() < 0.01, "sd {sd} vs {want}");
        assert!(mean.abs() < 4.0 * want / n.sqrt(), "mean {mean}");
        // A different seed, a different sample; the same seed, the same one.
        let mut again = Mat::zeros(0, 0);
        nz.sample_programmed(w, b, &mut again, &mut bo, &mut gh, 5);
        assert_eq!(again, wo);
        nz.sample_programmed(w, b, &mut again, &mut bo, &mut gh, 6);
        assert_ne!(again, wo);

        // Faults: a stuck device moves its weight by ~gain/2 (from mid-range to a bound).
        let faulty = HwaNoise::from_spec(&presets::reram());
        faulty.sample_programmed(w, b, &mut wo, &mut bo, &mut gh, 7);
        let far = wo
            .iter()
            .zip(w.iter())
            .filter(|(a, b)| (*a - *b).abs() > 0.25 * gain)
            .count() as f64;
        // P(either device stuck) = 1 − (1 − 0.002)² ≈ 0.004; n = 120,000 ⇒ 479 ± 22.
        let expect = (1.0 - (1.0f64 - 0.002).powi(2)) * n as f64;
        assert!(
            (far - expect).abs() < 5.0 * expect.sqrt(),
            "{far} vs {expect}"
        );
    }

    /// Output noise and ADC levels of a layer match the spec: with programming exact and
    /// a zero-weight linear layer, outputs are N(0, (g·α·σ_out)²) rounded to the ADC step.
    #[test]
    fn read_noise_and_adc_follow_the_spec() {
        let mut spec = presets::reram();
        spec.programming.sigma = 0.0;
        spec.faults.stuck_min = 0.0;
        spec.faults.stuck_max = 0.0;
        spec.read.out_noise = 0.1;
        let nz = HwaNoise::from_spec(&spec);
        let (out, inp, batch) = (50, 100, 400);
        let w = Mat::zeros(out, inp);
        let b = vec![0.0; out];
        let mut sc = LayerScratch {
            gain: nz.gain(inp, 0.0),
            ..LayerScratch::default()
        };
        let x = Mat::from_fn(inp, batch, |i, j| ((i + j) % 3) as f32); // α = 2
        let (mut r, mut y) = (Mat::zeros(0, 0), Mat::zeros(0, 0));
        layer_forward(
            &nz,
            false,
            Activation::Linear,
            (&w, &b),
            &mut sc,
            &x,
            &mut r,
            &mut y,
            9,
        );
        let scale = sc.gain * 2.0;
        let n = y.len() as f32;
        let sd = (y.iter().map(|v| v * v).sum::<f32>() / n).sqrt();
        // ADC step 24/510 ≈ 0.047 of σ_out = 0.1 adds step²/12 of variance (~2 %).
        let step = 24.0 / 510.0;
        let want = scale * (0.01f32 + step * step / 12.0).sqrt();
        assert!((sd / want - 1.0).abs() < 0.02, "sd {sd} vs {want}");
        for v in y.iter() {
            let k = v / (scale * step);
            assert!((k - k.round()).abs() < 1e-3, "{v} is not on an ADC level");
        }
        // Inputs went through a 7-bit DAC: multiples of α/63.
        for v in r.iter() {
            let k = v / (2.0 / 63.0);
            assert!((k - k.round()).abs() < 1e-4);
        }
    }

    /// HWA trains under reram-level noise: the loss on a fixed batch goes down.
    #[test]
    fn hwa_reduces_the_loss_under_noise() {
        let bp = BpLearner::new(BpConfig::default(), &[32], 2).unwrap();
        let mut hwa = HwaLearner::new(bp, HwaNoise::from_spec(&presets::harsh()));
        let (x, y) = images(64, 3);
        let mut noise = stream(2, "n");
        let first = hwa.train_batch(&x, &y, 1.0, &mut noise).unwrap().loss_sum;
        let mut last = first;
        for _ in 0..30 {
            last = hwa.train_batch(&x, &y, 1.0, &mut noise).unwrap().loss_sum;
        }
        assert!(last.is_finite() && last < 0.5 * first, "{first} → {last}");
    }
}
