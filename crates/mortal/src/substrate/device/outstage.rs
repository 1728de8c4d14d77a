//! The output stage of a matrix-vector multiply, per column of a batch: bias line, read
//! noise, ADC, neuron curve, neuron noise, in that order (see the crate's device model).
//!
//! The common elementwise passes (bias, output-referred read noise, ADC, nominal neuron)
//! are branch-free loops compiled for the best instruction set at run time; they give the
//! same bits on every instruction set (no FMA contraction, exactly rounded operations).
//! The read noise of element `i` comes from word ⌊i/2⌋ of a counter-based stream (two
//! normals per word), so it does not depend on how a column is split. The conductance-
//! dependent read noise and the neurons' own noise (rarely used) draw from a stream.

use multiversion::multiversion;

use super::converters::Quantizer;
use super::neuron::Neurons;
use super::normal::{self, Normals};
use crate::rng::counter_word;

/// Output-stage settings of one MVM.
pub(super) struct OutStage<'a> {
    pub gain: f32,
    pub out_noise: f32,
    pub w_noise: f32,
    pub g_noise: f32,
    pub adc: &'a Quantizer,
    /// Bias column of the effective weights (empty for transposed reads).
    pub bias: &'a [f32],
    /// Conductance sums of the bias pairs (g-noise, forward only).
    pub gsum_bias: &'a [f32],
    pub neurons: Option<&'a Neurons>,
}

/// `y += bias·vbias` (if any bias), then `y += sig·z` with z from the counter stream `seed`.
#[multiversion(targets = "simd")]
fn bias_and_noise(y: &mut [f32], bias: &[f32], vbias: f32, sig: f32, seed: u64) {
    let len = y.len();
    if !bias.is_empty() {
        for (v, b) in y.iter_mut().zip(&bias[..len]) {
            *v += b * vbias;
        }
    }
    if sig > 0.0 {
        let mut pairs = y.chunks_exact_mut(2);
        for (k, c) in (&mut pairs).enumerate() {
            let (z0, z1) = normal::pair(counter_word(seed, k as u64));
            c[0] += sig * z0;
            c[1] += sig * z1;
        }
        let rest = pairs.into_remainder();
        if let Some(v) = rest.first_mut() {
            let k = (len / 2) as u64;
            *v += sig * normal::pair(counter_word(seed, k)).0;
        }
    }
}

/// The ADC on `y` in network units (`scale` = network units per normalised unit), then
/// the nominal ReLU if `relu`.
#[multiversion(targets = "simd")]
fn adc_and_relu(y: &mut [f32], adc: Quantizer, scale: f32, relu: bool) {
    if !adc.is_ideal() && scale > 0.0 {
        let inv = 1.0 / scale;
        for v in y.iter_mut() {
            *v = adc.apply(*v * inv) * scale;
        }
    }
    if relu {
        for v in y.iter_mut() {
            *v = v.max(0.0);
        }
    }
}

impl OutStage<'_> {
    pub fn needs_stream(&self) -> bool {
        self.g_noise > 0.0 || self.neurons.is_some_and(|n| n.noise > 0.0)
    }

    /// Finishes column `y` (MVM result, network units) in place. `seed` drives the
    /// output-referred read noise; `rng` (when [`Self::needs_stream`]) the rest.
    #[allow(clippy::too_many_arguments)]
    pub fn column(
        &self,
        y: &mut [f32],
        gx2: &[f32],
        alpha: f32,
        vbias: f32,
        unorm2: f32,
        ubias: f32,
        seed: u64,
        mut rng: Option<&mut Normals>,
    ) {
        let scale = self.gain * alpha;
        let sig =
            scale * (self.out_noise * self.out_noise + self.w_noise * self.w_noise * unorm2).sqrt();
        bias_and_noise(y, self.bias, vbias, sig, seed);
        if self.g_noise > 0.0
            && let Some(r) = rng.as_deref_mut()
        {
            for (i, v) in y.iter_mut().enumerate() {
                let extra = if self.gsum_bias.is_empty() {
                    0.0
                } else {
                    self.gsum_bias[i] * ubias * ubias
                };
                *v += scale * self.g_noise * (gx2[i] + extra).max(0.0).sqrt() * r.next();
            }
        }
        let relu = self.neurons.is_some_and(Neurons::is_nominal_relu);
        adc_and_relu(y, *self.adc, scale, relu);
        let Some(n) = self.neurons else { return };
        if !relu {
            n.apply_all(y);
        }
        if n.noise > 0.0
            && let Some(r) = rng
        {
            for v in y.iter_mut() {
                *v += n.noise * r.next();
            }
        }
    }
}
