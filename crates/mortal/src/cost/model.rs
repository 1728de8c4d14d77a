//! Energy and latency models: TOML files with one `[energy]` table, every entry required
//! (no silent defaults: a model says where each number comes from). Presets ship inside
//! the binary (`src/cost/models/*.toml`, each number with its source in a comment).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Largest value of any entry (far beyond anything physical; keeps energies finite).
const MAX_ENTRY: f64 = 1e30;

/// Names of the shipped models.
pub const NAMES: [&str; 2] = ["reram", "pcm"];

/// An energy and latency model. Units are in the key names: `_j` joules, `_s` seconds,
/// `_v` volts, `_siemens` siemens; counts are plain numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnergyModel {
    /// Short name (reported in `results.json`).
    pub name: String,
    /// One line on what it models and where its numbers come from.
    pub description: String,
    /// DAC energy per bit of one conversion, J (bit-serial inputs).
    pub dac_j_per_bit: f64,
    /// ADC Walden figure of merit, J per conversion step (E = fom · 2^bits).
    pub adc_fom_j_per_step: f64,
    /// DAC bits charged when a chip's DAC is ideal (0 bits).
    pub default_dac_bits: u32,
    /// ADC bits charged when a chip's ADC is ideal (0 bits).
    pub default_adc_bits: u32,
    /// Time of one ADC conversion, s.
    pub adc_conversion_s: f64,
    /// ADCs converting at the same time (≥ 1).
    pub adc_parallel: f64,
    /// Read voltage across a device, V.
    pub read_voltage_v: f64,
    /// Duration of one array read, s.
    pub read_time_s: f64,
    /// Conductance charged for every device read or written, S.
    pub device_conductance_siemens: f64,
    /// Amplitude of an incremental (SET/RESET) pulse, V.
    pub write_voltage_v: f64,
    /// Width of a pulse (incremental or reset-only), s.
    pub pulse_s: f64,
    /// Amplitude of a reset-only single pulse, V.
    pub reset_voltage_v: f64,
    /// Mean program-and-verify iterations per device write.
    pub pv_iterations: f64,
    /// Amplitude of a program-and-verify pulse, V.
    pub pv_voltage_v: f64,
    /// Width of a program-and-verify pulse, s.
    pub pv_pulse_s: f64,
    /// Reads per verify.
    pub verify_reads: f64,
    /// Energy of one neuron evaluation, J.
    pub neuron_j: f64,
    /// Energy of one black-box pass, J.
    pub black_box_j: f64,
    /// Energy per digital FLOP, J.
    pub flop_j: f64,
    /// Energy per byte moved to or from SRAM, J.
    pub byte_j: f64,
    /// Digital throughput, FLOP/s (latency).
    pub flops_per_s: f64,
    /// Memory bandwidth, bytes/s (latency).
    pub bytes_per_s: f64,
}

/// The file format: `[energy]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    energy: EnergyModel,
}

impl EnergyModel {
    /// A shipped model by name.
    pub fn preset(name: &str) -> Result<Self> {
        let text = match name {
            "reram" => include_str!("models/reram.toml"),
            "pcm" => include_str!("models/pcm.toml"),
            other => {
                return Err(Error::param(
                    "energy",
                    other,
                    format!("no such energy model (presets: {})", NAMES.join(", ")),
                ));
            }
        };
        Self::parse(text, name)
    }

    /// A model from a preset name or a TOML file.
    pub fn load(source: &str) -> Result<Self> {
        if NAMES.contains(&source) {
            return Self::preset(source);
        }
        let path = std::path::Path::new(source);
        if !path.exists() && !source.ends_with(".toml") {
            return Self::preset(source);
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("cannot read energy model {source}"), e))?;
        Self::parse(&text, source)
    }

    /// Whether `source` names a preset (not a file).
    pub fn is_preset(source: &str) -> bool {
        NAMES.contains(&source)
            || (!std::path::Path::new(source).exists() && !source.ends_with(".toml"))
    }

    /// The default model of a chip source (`pcm` for the PCM preset, else `reram`).
    pub fn default_for(chip_source: Option<&str>) -> &'static str {
        match chip_source {
            Some("pcm") => "pcm",
            _ => "reram",
        }
    }

    /// Parses and validates the text of a model file (`origin` names it in errors).
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let f: File = toml::from_str(text).map_err(|e| {
            Error::param(
                format!("energy model {origin}"),
                "[energy]",
                e.message().to_string(),
            )
        })?;
        f.energy.validate(origin)?;
        Ok(f.energy)
    }

    /// Every entry finite and non-negative; counts and times that divide positive.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let entries = [
            ("dac_j_per_bit", self.dac_j_per_bit),
            ("adc_fom_j_per_step", self.adc_fom_j_per_step),
            ("adc_conversion_s", self.adc_conversion_s),
            ("adc_parallel", self.adc_parallel),
            ("read_voltage_v", self.read_voltage_v),
            ("read_time_s", self.read_time_s),
            (
                "device_conductance_siemens",
                self.device_conductance_siemens,
            ),
            ("write_voltage_v", self.write_voltage_v),
            ("pulse_s", self.pulse_s),
            ("reset_voltage_v", self.reset_voltage_v),
            ("pv_iterations", self.pv_iterations),
            ("pv_voltage_v", self.pv_voltage_v),
            ("pv_pulse_s", self.pv_pulse_s),
            ("verify_reads", self.verify_reads),
            ("neuron_j", self.neuron_j),
            ("black_box_j", self.black_box_j),
            ("flop_j", self.flop_j),
            ("byte_j", self.byte_j),
            ("flops_per_s", self.flops_per_s),
            ("bytes_per_s", self.bytes_per_s),
        ];
        for (key, v) in entries {
            // The cap keeps every product of entries and counts finite.
            if !v.is_finite() || !(0.0..=MAX_ENTRY).contains(&v) {
                return Err(Error::param(
                    format!("energy model {origin}: energy.{key}"),
                    v,
                    "must be a number in [0, 1e30]",
                ));
            }
        }
        for (key, v) in [
            ("adc_parallel", self.adc_parallel),
            ("flops_per_s", self.flops_per_s),
            ("bytes_per_s", self.bytes_per_s),
        ] {
            // A divisor this small keeps every quotient of counts finite (a subnormal one
            // made latencies infinite, written as null).
            if v < MIN_DIVISOR {
                return Err(Error::param(
                    format!("energy model {origin}: energy.{key}"),
                    format!("{v:e}"),
                    "must be ≥ 1e-30 (it divides)",
                ));
            }
        }
        for (key, v) in [
            ("default_dac_bits", self.default_dac_bits),
            ("default_adc_bits", self.default_adc_bits),
        ] {
            if !(1..=24).contains(&v) {
                return Err(Error::param(
                    format!("energy model {origin}: energy.{key}"),
                    v,
                    "must be 1..=24 bits",
                ));
            }
        }
        Ok(())
    }
}

/// Smallest value of an entry that divides (rates, parallel converters).
const MIN_DIVISOR: f64 = 1e-30;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_and_bad_models_name_the_key() {
        for n in NAMES {
            let m = EnergyModel::preset(n).unwrap();
            assert_eq!(m.name, n);
        }
        let good = include_str!("models/reram.toml");
        let neg = good.replace("flop_j = 2.3e-12", "flop_j = -2.3e-12");
        let e = EnergyModel::parse(&neg, "x.toml").unwrap_err().to_string();
        assert!(e.contains("energy.flop_j") && e.contains("x.toml"), "{e}");
        let missing = good.replace("pv_iterations = 10.0\n", "");
        let e = EnergyModel::parse(&missing, "y.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("pv_iterations") && e.contains("y.toml"), "{e}");
        let unknown = good.replace("flop_j =", "flops_j =");
        let e = EnergyModel::parse(&unknown, "z.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("flops_j"), "{e}");
        assert!(EnergyModel::preset("memristor").is_err());
    }

    /// The model's program-and-verify vs reset-only energy per device write, printed for
    /// the README (Renaudineau et al. 2026 report 460×).
    #[test]
    fn program_and_verify_costs_more_than_a_reset_pulse() {
        let m = EnergyModel::preset("reram").unwrap();
        let g = m.device_conductance_siemens;
        let read = m.read_voltage_v.powi(2) * g * m.read_time_s;
        let pv =
            m.pv_iterations * (m.pv_voltage_v.powi(2) * g * m.pv_pulse_s + m.verify_reads * read);
        let reset = m.reset_voltage_v.powi(2) * g * m.pulse_s;
        let ratio = pv / reset;
        println!("program-and-verify {pv:.3e} J, reset pulse {reset:.3e} J, ratio {ratio:.0}");
        assert!(ratio > 100.0, "{ratio}");
    }
}
