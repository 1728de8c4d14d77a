//! Deployment: a network trained digitally is written onto a substrate, layer by layer,
//! with [`Substrate::program`], and from then on computes whatever that substrate computes.
//!
//! On a chip, programming is the chip's write-and-verify: each layer's weights and biases
//! are scaled onto the conductance range (digital gain = max(the spec's nominal range,
//! max|target|/ω), so with the default ω = 1 nothing is clipped), quantised to the
//! programmable levels, and land within programming noise of their targets; stuck
//! devices keep their value. The deployed network then meets the chip's read noise,
//! converters, neuron curves and black box, none of which the digital model knew.
//!
//! The deployment is the learner's only contact with the chip: it programs targets and
//! never reads the conductances back.

use crate::error::{Error, Result};
use crate::rng::{Rng, indexed};
use crate::substrate::Substrate;

use super::Mlp;

/// Programs every layer of `mlp` onto `sub` (write-and-verify on a chip). `noise`
/// supplies the programming noise.
pub fn deploy(mlp: &Mlp, sub: &mut dyn Substrate, noise: &mut Rng) -> Result<()> {
    if sub.topology() != mlp.topology() {
        return Err(Error::param(
            "chip",
            sub.describe(),
            format!(
                "its topology {:?} differs from the trained network's {:?}",
                sub.topology().widths(),
                mlp.topology().widths()
            ),
        ));
    }
    for (l, (w, b)) in mlp.params.iter().enumerate() {
        sub.program(l, w, b, noise);
    }
    Ok(())
}

/// Keeps track of whether the substrate holds the model's current weights, and programs
/// it when it does not. Deployment `k` draws its programming noise from stream `k` of
/// `seed`, so a run's deployments are reproducible.
#[derive(Clone, Debug)]
pub struct Deployer {
    seed: u64,
    count: u64,
    current: bool,
}

impl Deployer {
    /// A deployer whose first deployment is still to come.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            count: 0,
            current: false,
        }
    }

    /// The model changed: the next [`Deployer::ensure`] programs the substrate again.
    pub fn invalidate(&mut self) {
        self.current = false;
    }

    /// Records that the substrate already holds the model's weights (e.g. restored from a
    /// checkpoint of a deployed chip).
    pub fn mark_current(&mut self) {
        self.current = true;
    }

    /// Whether the substrate holds the model's current weights.
    pub fn is_current(&self) -> bool {
        self.current
    }

    /// Number of deployments so far.
    pub fn deployments(&self) -> u64 {
        self.count
    }

    /// Programs `mlp` onto `sub` unless it is already there. Returns whether it programmed.
    pub fn ensure(&mut self, mlp: &Mlp, sub: &mut dyn Substrate) -> Result<bool> {
        if self.current {
            return Ok(false);
        }
        deploy(mlp, sub, &mut indexed(self.seed, self.count))?;
        self.count += 1;
        self.current = true;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{CLASSES, PIXELS};
    use crate::learn::backprop::{Trace, onchip};
    use crate::linalg::{Mat, Op, gemm};
    use crate::rng::stream;
    use crate::substrate::device::{HardwareSpec, presets};
    use crate::substrate::{Activation, Chip, Topology};

    /// A trained-looking network: weights with heavier-than-initial spread.
    fn model(widths: Vec<usize>, seed: u64) -> Mlp {
        let topo = Topology::classifier(widths, Activation::Relu).unwrap();
        let mut m = Mlp::new(topo, seed);
        for (l, (w, b)) in m.params.iter_mut().enumerate() {
            w.iter_mut().for_each(|v| *v *= 1.5);
            b.iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = 0.02 * ((i + l) as f32).sin());
        }
        m
    }

    /// A chip of `spec` with faults and read noise off, so what is measured is the
    /// programming alone.
    fn quiet(mut spec: HardwareSpec) -> HardwareSpec {
        spec.faults.stuck_min = 0.0;
        spec.faults.stuck_max = 0.0;
        spec.read.out_noise = 0.0;
        spec.dac.bits = 0;
        spec.adc.bits = 0;
        spec.adc.bound = 0.0;
        spec
    }

    #[test]
    fn deploying_onto_the_ideal_chip_reproduces_the_digital_network_exactly() {
        let m = model(vec![PIXELS, 32, CLASSES], 3);
        let mut chip = Chip::new(&presets::ideal(), m.topology().clone(), 5, 99).unwrap();
        let mut d = Deployer::new(7);
        assert!(d.ensure(&m, &mut chip).unwrap());
        assert!(!d.ensure(&m, &mut chip).unwrap(), "already deployed");
        d.invalidate();
        assert!(d.ensure(&m, &mut chip).unwrap());
        assert_eq!(d.deployments(), 2);
        let x = Mat::from_fn(PIXELS, 50, |i, j| ((i * 13 + j * 7) % 17) as f32 / 16.0);
        let (mut a, mut b) = (Trace::default(), Trace::default());
        m.forward(&x, &mut a);
        onchip::forward(&mut chip, &x, &mut b, &mut stream(1, "t"));
        for (p, q) in a.logits().iter().zip(b.logits().iter()) {
            assert!((p - q).abs() <= 1e-5 * (1.0 + p.abs()), "{p} vs {q}");
        }
        // Same decisions.
        for j in 0..50 {
            assert_eq!(
                a.logits().column(j).argmax().0,
                b.logits().column(j).argmax().0
            );
        }
    }

    /// The deployed weights read back (one forward of the linear last layer with a unit
    /// input per column, i.e. each column of W + b) within the programming noise of the
    /// `reram` (constant σ = 1 % of g_max per device) and `pcm` (aihwkit polynomial) specs,
    /// and the scale mapping clips nothing: every target lies inside the mapped range.
    #[test]
    fn programmed_weights_read_back_within_programming_noise() {
        for (name, spec) in [("reram", presets::reram()), ("pcm", presets::pcm())] {
            let spec = quiet(spec);
            let m = model(vec![PIXELS, 64, CLASSES], 11);
            let mut chip = Chip::new(&spec, m.topology().clone(), 2, 1).unwrap();
            deploy(&m, &mut chip, &mut stream(3, "program")).unwrap();
            // The linear last layer read with identity inputs: column k of the output is
            // W[:, k] + b (bias line 1): the learner-visible read-back.
            let (w, b) = &m.params[1];
            let fan_in = w.ncols();
            let x = Mat::identity(fan_in, fan_in);
            let (mut r, mut y) = (Mat::zeros(0, 0), Mat::zeros(0, 0));
            chip.forward(1, &x, &mut r, &mut y, &mut stream(4, "read"));
            let mut readback = y.clone();
            for mut col in readback.column_iter_mut() {
                for (v, bi) in col.iter_mut().zip(b) {
                    *v -= bi;
                }
            }
            // Expected spread per weight, in weight units: each device σ(G)·gain/range,
            // two devices per pair. The bias is programmed with noise too, so the
            // read-back column carries the bias pair's error as well: the error of a
            // read-back has σ = √2·σ_pair = 2·σ_dev·gain/range; the bound allows √2 more.
            let max_abs = w.iter().chain(b).fold(0.0f32, |a, v| a.max(v.abs()));
            let nominal = spec.crossbar.weight_range_per_sqrt_fanin as f32 / (fan_in as f32).sqrt();
            let gain = nominal.max(max_abs / spec.crossbar.weight_scaling_omega as f32);
            let range = (spec.crossbar.g_max - spec.crossbar.g_min) as f32;
            let sigma_dev = match name {
                "reram" => (spec.programming.sigma * spec.crossbar.g_max) as f32,
                // Largest σ of the polynomial over [g_min, g_max].
                _ => {
                    let [c0, c1, c2] = spec.programming.pcm_coefficients.map(|c| c as f32);
                    (0..=100)
                        .map(|k| {
                            let x = k as f32 / 100.0;
                            c0 + c1 * x + c2 * x * x
                        })
                        .fold(0.0f32, f32::max)
                }
            };
            let sigma_w = 2.0 * sigma_dev * gain / range * std::f32::consts::SQRT_2;
            let err: Vec<f32> = readback.iter().zip(w.iter()).map(|(p, q)| p - q).collect();
            let rms = (err.iter().map(|e| e * e).sum::<f32>() / err.len() as f32).sqrt();
            assert!(rms > 0.0, "{name}: programming noise must show");
            assert!(rms <= sigma_w, "{name}: rms error {rms} vs bound {sigma_w}");
            if name == "reram" {
                // Constant σ: the rms is σ_w/√2 up to sampling error, not far below.
                assert!(
                    rms >= 0.5 * sigma_w,
                    "{name}: rms error {rms} vs σ {sigma_w}"
                );
            }
            // Nothing clipped by the mapping: the range covers every target...
            assert!(
                max_abs <= gain,
                "{name}: max |w| {max_abs} above the range {gain}"
            );
            // ...and the bulk of the distribution reads back within noise (only devices
            // whose own bounds fall short of an extreme target may clip).
            let far = err.iter().filter(|e| e.abs() > 4.0 * sigma_w).count();
            assert!(
                far * 200 <= err.len(),
                "{name}: {far} of {} weights read back beyond 4σ",
                err.len()
            );
            // The whole layer agrees with W·x + b on ordinary inputs too.
            let xs = Mat::from_fn(fan_in, 8, |i, j| ((i + 3 * j) % 5) as f32 / 4.0);
            chip.forward(1, &xs, &mut r, &mut y, &mut stream(5, "read"));
            let mut want = Mat::zeros(w.nrows(), 8);
            gemm(1.0, w, Op::N, &xs, Op::N, 0.0, &mut want);
            for (mut c, _) in want.column_iter_mut().zip(0..8) {
                for (v, bi) in c.iter_mut().zip(b) {
                    *v += bi;
                }
            }
            let scale = (want.iter().map(|v| v * v).sum::<f32>() / want.len() as f32).sqrt();
            let dev = (y
                .iter()
                .zip(want.iter())
                .map(|(p, q)| (p - q).powi(2))
                .sum::<f32>()
                / want.len() as f32)
                .sqrt();
            assert!(
                dev < 0.2 * scale,
                "{name}: layer output off by {dev} (scale {scale})"
            );
        }
    }

    #[test]
    fn deploy_refuses_another_topology() {
        let m = model(vec![PIXELS, 32, CLASSES], 3);
        let topo = Topology::classifier(vec![PIXELS, 16, CLASSES], Activation::Relu).unwrap();
        let mut chip = Chip::new(&presets::ideal(), topo, 5, 99).unwrap();
        let e = deploy(&m, &mut chip, &mut stream(1, "p")).unwrap_err();
        assert!(e.to_string().contains("topology"), "{e}");
    }
}
