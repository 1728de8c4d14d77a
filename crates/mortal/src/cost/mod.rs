//! What learning and inference cost: an energy and latency model ([`EnergyModel`], TOML
//! files like chip specs) applied to the operation counters of a run
//! ([`crate::substrate::ops`]).
//!
//! Two accountings of the same counts:
//! * **as simulated**: every activity is read through an ADC and re-driven through a DAC,
//!   goodness, normalisation, local errors and any dense update are digital host work;
//! * **analog-native** (Forward-Forward only, the design of the paper's §8): a layer's
//!   goodness is one analog sum read through one ADC per layer per pass, normalisation is
//!   analog (activities reach the next layer as voltages, no DAC), and updates are rank-1
//!   pulse trains driven by the activity voltages, so the host forms no gradient. The
//!   host work kept is the optimiser state and the softmax head (zero for plain SGD and
//!   goodness evaluation); each analog squaring and normalisation of a unit is charged
//!   one neuron evaluation. For inference by the softmax head it equals as simulated.

pub mod model;

use serde::{Deserialize, Serialize};

pub use model::EnergyModel;

use crate::substrate::ops::{Counts, Ledger, Purpose};

/// Counts of a phase with their energy and latency under a model (per sample, per
/// image, or totals: the counts are then averages, hence floats).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CostBlock {
    /// DAC conversions.
    pub dac: f64,
    /// ADC conversions.
    pub adc: f64,
    /// Analog multiply-accumulates (existing device pairs read).
    pub analog_macs: f64,
    /// Samples read backwards through a layer.
    pub transposed_reads: f64,
    /// Array read cycles.
    pub read_cycles: f64,
    /// Every pulse applied, per device (up + down + reset).
    pub pulses: f64,
    /// Conductance-increasing pulses.
    pub pulses_up: f64,
    /// Conductance-decreasing pulses.
    pub pulses_down: f64,
    /// Single RESET pulses (`reset-only`).
    pub reset_pulses: f64,
    /// Devices written by program-and-verify.
    pub program_writes: f64,
    /// Verify reads of those writes (iterations × reads per verify, from the model).
    pub verify_reads: f64,
    /// Neuron evaluations.
    pub neuron_evals: f64,
    /// Black-box passes.
    pub black_box_passes: f64,
    /// Digital floating-point operations.
    pub digital_flops: f64,
    /// Digital bytes moved.
    pub digital_bytes: f64,
    /// Energy, J.
    pub energy_j: f64,
    /// Latency (serial sum, no pipelining), s.
    pub latency_s: f64,
    /// Energy by part, J: DACs and ADCs.
    pub converters_j: f64,
    /// Energy by part, J: array reads, pulses, program-and-verify.
    pub devices_j: f64,
    /// Energy by part, J: neurons and digital work.
    pub digital_j: f64,
}

/// Training cost of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainCost {
    /// Samples trained (epochs × training images).
    pub samples: u64,
    /// Per training sample.
    pub per_sample: CostBlock,
    /// For the whole run.
    pub total: CostBlock,
    /// Per layer, per sample (host work is not split by layer and appears only above).
    pub layers: Vec<CostBlock>,
}

/// Inference cost of a run, measured on a probe of the test set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InferenceCost {
    /// Images of the probe.
    pub images: u64,
    /// Per image.
    pub per_image: CostBlock,
    /// Per layer, per image (host work is not split by layer and appears only above).
    pub layers: Vec<CostBlock>,
}

/// The `cost` block of `results.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CostReport {
    /// Name of the energy model.
    pub energy_model: String,
    /// Converter resolutions charged, bits (the chip's, or the model's default for ideal
    /// converters).
    pub dac_bits: u32,
    /// ADC resolution charged, bits.
    pub adc_bits: u32,
    /// Training, as simulated: counted training steps plus the one-time programming of
    /// the network (a chip's initial write-and-verify, or the deployment of offline
    /// training).
    pub train: TrainCost,
    /// Inference by the run's evaluation method (`method`).
    pub inference: InferenceCost,
    /// The evaluation method whose inference is costed.
    pub method: String,
    /// Forward-Forward only: the analog-native accounting of the same counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analog_native: Option<NativeCost>,
}

/// The analog-native accounting (per sample and per image).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NativeCost {
    /// Training, per sample.
    pub train_per_sample: CostBlock,
    /// Inference, per image.
    pub inference_per_image: CostBlock,
}

impl CostReport {
    /// Training energy per sample, J (as simulated).
    pub fn train_energy(&self) -> f64 {
        self.train.per_sample.energy_j
    }
}

/// The energy model's view of a ledger: converter bits with defaults for ideal ones.
fn bits(model: &EnergyModel, ledger: &Ledger) -> (u32, u32) {
    let d = if ledger.dac_bits == 0 {
        model.default_dac_bits
    } else {
        ledger.dac_bits
    };
    let a = if ledger.adc_bits == 0 {
        model.default_adc_bits
    } else {
        ledger.adc_bits
    };
    (d, a)
}

/// Prices counts (divided by `per`) under `model` with converters of `bits`.
pub fn price(model: &EnergyModel, c: &Counts, (db, ab): (u32, u32), per: f64) -> CostBlock {
    let k = 1.0 / per.max(1.0);
    let f = |v: u64| v as f64 * k;
    let m = model;
    let dac_e = f(c.dac) * f64::from(db) * m.dac_j_per_bit;
    let adc_e = f(c.adc) * m.adc_fom_j_per_step * 2f64.powi(ab as i32);
    let read_dev = m.read_voltage_v.powi(2) * m.device_conductance_siemens * m.read_time_s;
    let mac_e = f(c.analog_macs) * 2.0 * read_dev;
    let pulse_e = f(c.pulses_up + c.pulses_down)
        * m.write_voltage_v.powi(2)
        * m.device_conductance_siemens
        * m.pulse_s;
    let reset_e =
        f(c.reset_pulses) * m.reset_voltage_v.powi(2) * m.device_conductance_siemens * m.pulse_s;
    let pv_pulse = m.pv_voltage_v.powi(2) * m.device_conductance_siemens * m.pv_pulse_s;
    let pv_e = f(c.program_writes) * m.pv_iterations * (pv_pulse + m.verify_reads * read_dev);
    let neuron_e = f(c.neuron_evals) * m.neuron_j;
    let bb_e = f(c.black_box_passes) * m.black_box_j;
    let dig_e = f(c.digital_flops) * m.flop_j + f(c.digital_bytes) * m.byte_j;
    let converters = dac_e + adc_e;
    let devices = mac_e + pulse_e + reset_e + pv_e + bb_e;
    let digital = neuron_e + dig_e;
    let latency = f(c.read_cycles) * m.read_time_s
        + f(c.adc) * m.adc_conversion_s / m.adc_parallel
        + f(c.pulse_slots) * m.pulse_s
        + f(c.program_writes) * m.pv_iterations * (m.pv_pulse_s + m.verify_reads * m.read_time_s)
        + f(c.digital_flops) / m.flops_per_s
        + f(c.digital_bytes) / m.bytes_per_s;
    CostBlock {
        dac: f(c.dac),
        adc: f(c.adc),
        analog_macs: f(c.analog_macs),
        transposed_reads: f(c.transposed_reads),
        read_cycles: f(c.read_cycles),
        pulses: f(c.pulses()),
        pulses_up: f(c.pulses_up),
        pulses_down: f(c.pulses_down),
        reset_pulses: f(c.reset_pulses),
        program_writes: f(c.program_writes),
        verify_reads: f(c.program_writes) * m.pv_iterations * m.verify_reads,
        neuron_evals: f(c.neuron_evals),
        black_box_passes: f(c.black_box_passes),
        digital_flops: f(c.digital_flops),
        digital_bytes: f(c.digital_bytes),
        energy_j: converters + devices + digital,
        latency_s: latency,
        converters_j: converters,
        devices_j: devices,
        digital_j: digital,
    }
}

/// The analog-native counts of an as-simulated FF ledger (see the module docs).
pub fn analog_native(ledger: &Ledger) -> Counts {
    let mut t = Counts::default();
    for (l, c) in ledger.layers().iter().enumerate() {
        let mut n = *c;
        // One goodness readout per layer per forward pass instead of every activity.
        n.adc = c.adc.saturating_sub(c.forward_adc) + c.forward_passes;
        // Layers above the first are driven by the previous layer's voltages.
        if l > 0 {
            n.dac = c.dac.saturating_sub(c.forward_dac);
        }
        // Analog squaring (goodness) and normalisation of each unit of each pass.
        let units = c.forward_adc.checked_div(c.forward_passes).unwrap_or(0);
        n.neuron_evals += 2 * units * c.forward_passes;
        t.add(&n);
    }
    for p in Purpose::ALL {
        if matches!(
            p,
            Purpose::Goodness | Purpose::Normalise | Purpose::Gradient
        ) {
            continue;
        }
        let h = ledger.host_work(p);
        t.digital_flops += h.flops;
        t.digital_bytes += h.bytes;
    }
    t
}

/// What the run loop measured, to be priced.
pub struct Measured<'a> {
    /// Training counters (steps plus one-time programming).
    pub train: &'a Ledger,
    /// Samples trained (epochs × training images).
    pub train_samples: u64,
    /// Counters of the inference probe.
    pub inference: &'a Ledger,
    /// Images of the probe.
    pub images: u64,
    /// Evaluation method of the probe (`goodness` or `softmax`).
    pub method: &'a str,
    /// Whether the run is Forward-Forward (gets the analog-native accounting).
    pub ff: bool,
}

/// Prices a run's counters.
pub fn report(model: &EnergyModel, m: &Measured<'_>) -> CostReport {
    let b = bits(model, m.train);
    let layers = |l: &Ledger, n: u64| -> Vec<CostBlock> {
        l.layers()
            .iter()
            .map(|c| price(model, c, b, n as f64))
            .collect()
    };
    let analog_native = m.ff.then(|| NativeCost {
        train_per_sample: price(model, &analog_native(m.train), b, m.train_samples as f64),
        inference_per_image: if m.method == "goodness" {
            price(model, &analog_native(m.inference), b, m.images as f64)
        } else {
            price(model, &m.inference.total(), b, m.images as f64)
        },
    });
    CostReport {
        energy_model: model.name.clone(),
        dac_bits: b.0,
        adc_bits: b.1,
        train: TrainCost {
            samples: m.train_samples,
            per_sample: price(model, &m.train.total(), b, m.train_samples as f64),
            total: price(model, &m.train.total(), b, 1.0),
            layers: layers(m.train, m.train_samples),
        },
        inference: InferenceCost {
            images: m.images,
            per_image: price(model, &m.inference.total(), b, m.images as f64),
            layers: layers(m.inference, m.images),
        },
        method: m.method.to_string(),
        analog_native,
    }
}

#[cfg(test)]
mod tests;
