//! The chip's analog-native Forward-Forward read ([`Substrate::forward_native`]): the
//! periphery of [`super::spec::PeripherySpec`].
//!
//! One call of layer l with batch b:
//! 1. the array read of [`Substrate::forward`] (read noise, neurons, black box), but with
//!    the chain's converters: layer 0 takes the host's image through its DACs as usual;
//!    deeper layers take the previous layer's voltages without DACs (no quantisation,
//!    full scale = the chain's rails `chain_range`); no column ADC (the integrator still
//!    saturates at `adc.bound`);
//! 2. the squarer and summing node: G_a = (1 + σ_g·ξ_l)·Σ_j y_j², the gain error ξ_l drawn
//!    once per layer from the chip seed;
//! 3. one goodness ADC per sample: G_a plus input-referred noise, clipped to
//!    [0, `goodness_range`·n] and quantised to `goodness_bits`;
//! 4. the divider: next = y / √(G_a/n + ε) plus `chain_noise` per line, clipped at
//!    ±`chain_range`.
//!
//! Counted: the DACs of layer 0 only, one ADC per sample, the array's MACs and neurons.

use rand::RngExt;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use super::converters::Quantizer;
use super::normal::Normals;
use super::spec::{AdcSpec, DacSpec, InputScaling};
use super::{Activation, Chip, F32, Purpose};
use crate::linalg::{Mat, TINY, ensure_shape, sum_sq};
use crate::rng::{Rng, derive, indexed};

/// The analog-native read of layer `layer` (see the module docs).
#[allow(clippy::too_many_arguments)]
pub(super) fn forward(
    chip: &mut Chip,
    layer: usize,
    x: &Mat,
    received: &mut Mat,
    activity: &mut Mat,
    next: &mut Mat,
    goodness: &mut [f32],
    noise: &mut Rng,
) {
    let b = x.ncols();
    assert_eq!(goodness.len(), b, "forward_native: one goodness per sample");
    let p = chip.spec.periphery.clone();
    // 1. The read with the chain's converters.
    let saved = (chip.dac, chip.adc, chip.spec.dac.clone());
    if layer > 0 {
        chip.dac = Quantizer::dac(&DacSpec {
            bits: 0,
            ..DacSpec::default()
        });
        chip.spec.dac.scaling = InputScaling::Fixed;
        chip.spec.dac.fixed_range = p.chain_range;
    }
    chip.adc = Quantizer::adc(&AdcSpec {
        bits: 0,
        bound: chip.spec.adc.bound,
    });
    chip.read_forward(layer, x, received, activity, noise);
    (chip.dac, chip.adc, chip.spec.dac) = saved;
    count_native(chip, layer, b);

    // 2–4. Goodness, its ADC, the divider.
    let n = activity.nrows();
    let gain = {
        let mut r = indexed(derive(chip.chip_seed, "goodness-gain"), layer as u64);
        let z: f32 = StandardNormal.sample(&mut r);
        (1.0 + p.goodness_gain_std as f32 * z).max(0.0)
    };
    let full = (p.goodness_range * n as f64) as f32;
    let step = if p.goodness_bits == 0 {
        0.0
    } else {
        full / ((1u64 << p.goodness_bits) - 1) as f32
    };
    let (adc_noise, chain_noise, rail) = (
        p.goodness_noise as f32 * full,
        p.chain_noise as f32,
        p.chain_range as f32,
    );
    let seed: u64 = noise.random();
    let (seed_adc, seed_chain) = (derive(seed, "goodness-adc"), derive(seed, "chain"));
    ensure_shape(next, n, b);
    let inv_n = 1.0 / n as f32;
    next.as_mut_slice()
        .par_chunks_mut(n.max(1))
        .zip(activity.as_slice().par_chunks(n.max(1)))
        .zip(goodness.par_iter_mut())
        .enumerate()
        .for_each(|(j, ((o, y), g))| {
            let ga = gain * sum_sq(y);
            let mut v = ga;
            if adc_noise > 0.0 {
                v += adc_noise * Normals::new(indexed(seed_adc, j as u64)).next();
            }
            v = v.max(0.0).min(full);
            if step > 0.0 {
                v = (v / step).round() * step;
            }
            *g = v;
            let scale = 1.0 / (TINY + (ga * inv_n).sqrt());
            let mut r = (chain_noise > 0.0).then(|| Normals::new(indexed(seed_chain, j as u64)));
            for (o, v) in o.iter_mut().zip(y) {
                let mut u = v * scale;
                if let Some(r) = r.as_mut() {
                    u += chain_noise * r.next();
                }
                *o = u.max(-rail).min(rail);
            }
        });
}

/// Counts an analog-native read of `b` samples through layer `l`: DACs only on layer 0's
/// input lines, a MAC per existing pair incl. biases, a neuron per output, the black box,
/// and one goodness ADC per sample; the periphery's digital work is the DAC scaling of
/// layer 0 and the goodness ADC's scaling.
fn count_native(chip: &mut Chip, l: usize, b: usize) {
    let (inp, out) = chip.topology.dims(l);
    let w = chip.topology.wiring(l).weight_count() as u64;
    let (b, inp, out) = (b as u64, inp as u64, out as u64);
    let neurons = chip.topology.activation(l) != Activation::Linear;
    let bb = chip.layers[l].black_box.is_some();
    let dac = if l == 0 { inp } else { 0 };
    chip.ledger.count(l, |c| {
        c.dac += dac * b;
        c.adc += b;
        c.read_cycles += b;
        c.analog_macs += (w + out) * b;
        c.forward_passes += b;
        c.forward_dac += dac * b;
        c.forward_adc += b;
        if neurons {
            c.neuron_evals += out * b;
        }
        if bb {
            c.black_box_passes += b;
        }
    });
    chip.ledger
        .host(Purpose::Substrate, (2 * dac + 2) * b, F32 * (dac + 1) * b);
}

#[cfg(test)]
mod tests {
    use super::super::presets;
    use super::*;
    use crate::learn::FfConfig;
    use crate::learn::ff::{FfLearner, FfMode};
    use crate::rng::stream;
    use crate::substrate::{DigitalNet, Substrate, Topology};

    fn native_cfg() -> FfConfig {
        FfConfig {
            eval_from: 1,
            ..FfConfig::for_mode(FfMode::AnalogNative)
        }
    }

    fn batch(n: usize) -> (Mat, Vec<usize>) {
        let data = crate::data::synthetic::generate(n, 4);
        let idx: Vec<usize> = (0..n).collect();
        let mut images = Mat::zeros(crate::data::PIXELS, n);
        data.gather(&idx, &mut images);
        (images, data.gather_labels(&idx))
    }

    /// The two runs' losses agree, and every layer's weights agree to `rel` of their
    /// largest magnitude.
    fn assert_same_training(losses: &[Vec<f64>], fd: &DigitalNet, fc: &Chip, rel: f32) {
        for (a, b) in losses[0].iter().zip(&losses[1]) {
            assert!((a - b).abs() < 1e-4 * a.abs().max(1.0), "{losses:?}");
        }
        for l in 0..2 {
            let (wd, _) = fd.layer(l);
            let (wc, _) = fc.effective_layer(l);
            let e = wd
                .iter()
                .zip(wc.iter())
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            let scale = wd.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(e < rel * scale, "layer {l} weights differ by {e}");
        }
    }

    /// A zero-noise chip in analog-native mode is the digital network under the same rule
    /// (the trait's exact `forward_native`, trains as outer products).
    #[test]
    fn ideal_chip_native_steps_equal_the_digital_reference() {
        let cfg = native_cfg();
        cfg.validate(2).unwrap();
        let ft = Topology::uniform(vec![crate::data::PIXELS, 40, 30], Activation::Relu).unwrap();
        let mut fd = DigitalNet::new(ft.clone(), 2);
        let mut fc = Chip::new(&presets::ideal(), ft.clone(), 3, 2).unwrap();
        let (images, labels) = batch(20);
        let mut losses = Vec::new();
        for (sub, seed) in [(&mut fd as &mut dyn Substrate, 0u64), (&mut fc, 1)] {
            let mut learner = FfLearner::new(cfg.clone(), ft.clone()).unwrap();
            let mut negs = stream(7, "neg");
            let mut l = Vec::new();
            for _ in 0..3 {
                let st = learner
                    .train_batch(
                        sub,
                        &images,
                        &labels,
                        1.0,
                        &mut negs,
                        &mut stream(seed, "n"),
                    )
                    .unwrap();
                l.push(st.mean_layer_loss());
            }
            losses.push(l);
        }
        assert_same_training(&losses, &fd, &fc, 1e-5);
        for l in 0..2 {
            let (_, bd) = fd.layer(l);
            let (_, bc) = fc.effective_layer(l);
            for (a, b) in bc.iter().zip(bd) {
                assert!((a - b).abs() < 1e-5, "layer {l} bias {a} vs {b}");
            }
        }
    }

    /// With its momentum in fast arrays, a zero-noise chip still equals the digital
    /// reference of the same rule (fast arrays there digital too), and both equal SGD with
    /// momentum: reading every row each batch, the arrays are the velocity.
    #[test]
    fn ideal_chip_analog_momentum_equals_the_digital_reference() {
        let mut cfg = native_cfg();
        cfg.analog_momentum.rows_per_transfer = 0;
        assert!(cfg.analog_momentum.is_on());
        cfg.validate(2).unwrap();
        let ft = Topology::uniform(vec![crate::data::PIXELS, 24, 16], Activation::Relu).unwrap();
        let mut fd = DigitalNet::new(ft.clone(), 2);
        let mut fc = Chip::new(&presets::ideal(), ft.clone(), 3, 2).unwrap();
        let (images, labels) = batch(20);
        let mut losses = Vec::new();
        for (k, sub) in [&mut fd as &mut dyn Substrate, &mut fc]
            .into_iter()
            .enumerate()
        {
            let mut learner = FfLearner::new(cfg.clone(), ft.clone()).unwrap();
            let fast: Box<dyn Substrate> = if k == 0 {
                Box::new(DigitalNet::new(ft.clone(), 9))
            } else {
                Box::new(Chip::new(&presets::ideal(), ft.clone(), 4, 9).unwrap())
            };
            learner.attach_fast_arrays(fast, &mut stream(0, "p"));
            let mut negs = stream(7, "neg");
            let mut l = Vec::new();
            for _ in 0..4 {
                let st = learner
                    .train_batch(sub, &images, &labels, 1.0, &mut negs, &mut stream(1, "n"))
                    .unwrap();
                l.push(st.mean_layer_loss());
            }
            losses.push(l);
            // The resumable state carries the fast arrays.
            assert!(
                learner
                    .resume_tensors()
                    .iter()
                    .any(|t| t.0.starts_with("fast/")),
                "no fast arrays in the resumable state"
            );
        }
        assert_same_training(&losses, &fd, &fc, 1e-4);
    }

    /// The counters of one native step, by hand: every layer read by the positive and the
    /// negative pass (b samples each): DACs only on layer 0's 784 lines, one goodness ADC
    /// per sample, a MAC per weight and bias; the host forms one coefficient per sample
    /// and layer and pass (10 FLOPs) and normalises the image (3 FLOPs per pixel + 2),
    /// and nothing else: no goodness, no ΔW, no optimiser, no head.
    #[test]
    fn one_native_step_counts_what_runs() {
        let p = crate::data::PIXELS;
        let ft = Topology::uniform(vec![p, 6, 4], Activation::Relu).unwrap();
        let mut chip = Chip::new(&presets::ideal(), ft.clone(), 3, 2).unwrap();
        let b = 5usize;
        let (images, labels) = batch(b);
        let mut learner = FfLearner::new(native_cfg(), ft.clone()).unwrap();
        chip.ledger_mut().set_enabled(true);
        let before = chip.ledger().clone();
        learner
            .train_batch(
                &mut chip,
                &images,
                &labels,
                1.0,
                &mut stream(1, "neg"),
                &mut stream(2, "n"),
            )
            .unwrap();
        let led = chip.ledger().since(&before);
        let two_b = 2 * b as u64;
        let c0 = &led.layers()[0];
        let c1 = &led.layers()[1];
        assert_eq!(c0.dac, p as u64 * two_b);
        assert_eq!(c1.dac, 0);
        assert_eq!(c0.adc, two_b);
        assert_eq!(c1.adc, two_b);
        assert_eq!(c0.analog_macs, (p as u64 * 6 + 6) * two_b);
        assert_eq!(c1.analog_macs, (6 * 4 + 4) * two_b);
        assert_eq!(led.host_work(Purpose::Gradient).flops, 10 * 2 * two_b);
        for none in [Purpose::Goodness, Purpose::Optimiser, Purpose::Head] {
            assert_eq!(led.host_work(none).flops, 0, "{none:?}");
        }
        assert_eq!(
            led.host_work(Purpose::Normalise).flops,
            (3 * p as u64 + 2) * two_b
        );
        // The chip's own periphery: DAC scaling of layer 0, the goodness ADCs.
        assert_eq!(
            led.host_work(Purpose::Substrate).flops,
            (2 * p as u64 + 2) * two_b + 2 * two_b
        );
    }

    /// The goodness converter quantises, clips at its full scale and sees the layer's
    /// gain error; the chain clips at its rails.
    #[test]
    fn goodness_adc_quantises_and_clips() {
        let mut s = presets::ideal();
        s.periphery.goodness_bits = 4;
        s.periphery.goodness_range = 1.0;
        s.periphery.chain_range = 0.5;
        let t = Topology::uniform(vec![3, 2], Activation::Linear).unwrap();
        let mut c = Chip::new(&s, t, 1, 1).unwrap();
        let w = Mat::from_fn(2, 3, |i, j| if i == j { 1.0 } else { 0.0 });
        c.program(0, &w, &[0.0, 0.0], &mut stream(0, "p"));
        let x = Mat::from_fn(3, 2, |i, j| [[0.5, 0.3, 0.0], [2.0, 0.0, 0.0]][j][i]);
        let (mut r, mut a, mut nx) = (Mat::zeros(0, 0), Mat::zeros(0, 0), Mat::zeros(0, 0));
        let mut g = vec![0.0; 2];
        c.forward_native(0, &x, &mut r, &mut a, &mut nx, &mut g, &mut stream(0, "n"));
        // Full scale 1·n = 2, 15 steps of 2/15: G = 0.34 → 0.4 (3 steps); G = 4 clips to 2.
        assert!((g[0] - 2.0 / 15.0 * 3.0).abs() < 1e-5, "{g:?}");
        assert!((g[1] - 2.0).abs() < 1e-6, "{g:?}");
        // Normalised outputs clip at the rails ±0.5.
        assert!(nx.iter().all(|v| v.abs() <= 0.5 + 1e-6), "{nx:?}");
        assert!((nx[(0, 1)] - 0.5).abs() < 1e-6);
    }
}
