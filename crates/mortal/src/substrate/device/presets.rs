//! Named hardware specs: `ideal`, `reram`, `pcm`, `harsh`. Each is a plain
//! [`HardwareSpec`] (so it can be written to TOML, edited and read back).

use super::spec::{
    BlackBoxSpec, DacSpec, HardwareSpec, InputScaling, NeuronSpec, PairMapping, PairScheme,
    ProgrammingNoise, Response, UpdateMode,
};
use crate::error::{Error, Result};

/// Names accepted by [`by_name`].
pub const NAMES: [&str; 4] = ["ideal", "reram", "pcm", "harsh"];

/// A preset by name.
pub fn by_name(name: &str) -> Result<HardwareSpec> {
    match name {
        "ideal" => Ok(ideal()),
        "reram" => Ok(reram()),
        "pcm" => Ok(pcm()),
        "harsh" => Ok(harsh()),
        other => Err(Error::param(
            "chip.preset",
            other,
            format!("unknown preset; choose one of {}", NAMES.join(", ")),
        )),
    }
}

/// Everything off: continuous levels, exact programming, no read noise, no drift, no
/// faults, ideal (0-bit) converters, exact ReLU neurons, no black box, `ideal` updates.
/// A chip from it computes what [`crate::substrate::DigitalNet`] computes.
pub fn ideal() -> HardwareSpec {
    let mut s = reram().scaled(0.0);
    s.name = "ideal".into();
    s.variation = 1.0;
    s.crossbar.levels = 0;
    s.programming.sigma = 0.0;
    s.programming.pcm_scale = 0.0;
    s.device.response = Response::ConstantStep;
    s.device.up_down = 0.0;
    s.update.mode = UpdateMode::Ideal;
    s.dac = DacSpec {
        bits: 0,
        scaling: InputScaling::AbsMax,
        fixed_range: 1.0,
    };
    s.adc.bits = 0;
    s.adc.bound = 0.0;
    s.neuron = NeuronSpec::default();
    s.black_box = BlackBoxSpec::default();
    // The analog-native periphery exact too: an ideal goodness converter without
    // clipping, and rails a power of two (so the chain's scaling is exact in f32) far
    // beyond any normalised activity.
    s.periphery.goodness_bits = 0;
    s.periphery.goodness_range = 1e9;
    s.periphery.chain_range = 1_048_576.0;
    s
}

/// Soft-bounds ReRAM in the range of aihwkit's `ReRamSBPresetDevice` (dw_min 0.002, 30 %
/// device-to-device spread of the step and of the bounds (0.12 of g_max here, see
/// `device.bound_dtod`), cycle-to-cycle 3.75, up/down spread 0.01)
/// with aihwkit's default periphery (7-bit DAC, 9-bit ADC with bound 12, out_noise 0.06,
/// abs-max noise management) and pulsed updates. This is [`HardwareSpec::default`].
pub fn reram() -> HardwareSpec {
    HardwareSpec::default()
}

/// PCM-like: aihwkit's PCM programming-noise polynomial (`PCMLikeNoiseModel`), drift
/// ν = 0.06 ± 0.02 with t₀ = 20 s (Joshi et al. 2020; aihwkit), one-sided mapping with
/// potentiation-only (SET) pulses and refresh at 75 % of the range, soft-bounds
/// (saturating) SET response with aihwkit `PCMPresetDevice`'s step (0.01 of its 0..2
/// range = 0.005 here), 20 % step spread, 10 % bound spread, 0.6 cycle-to-cycle noise and
/// 5 % asymmetry spread.
pub fn pcm() -> HardwareSpec {
    let mut s = HardwareSpec {
        name: "pcm".into(),
        ..HardwareSpec::default()
    };
    s.crossbar.mapping = PairMapping::OneSided;
    s.programming.noise = ProgrammingNoise::Pcm;
    s.drift.nu_mean = 0.06;
    s.drift.nu_std = 0.02;
    s.drift.t0 = 20.0;
    s.device.response = Response::SoftBounds;
    s.device.dw_min = 0.005;
    s.device.dw_min_dtod = 0.2;
    s.device.up_down = 0.0;
    s.device.up_down_dtod = 0.05;
    s.device.bound_dtod = 0.1;
    s.device.c2c = 0.6;
    s.update.pair = PairScheme::Potentiate;
    s.update.refresh_threshold = 0.75;
    s
}

/// A deliberately hard instance family for robustness studies: ReRAM-like devices with
/// larger spreads (50 % step, 25 % bounds, ±5 % mean asymmetry with 5 % spread), 3 %
/// programming noise, 1 % stuck devices each way, aihwkit preset-level output noise (0.1)
/// plus weight noise, 6-bit DAC / 8-bit ADC, random neuron curves (20 % gain, 0.1
/// threshold, soft knee, saturation) with output noise, and the black box on.
pub fn harsh() -> HardwareSpec {
    let mut s = HardwareSpec {
        name: "harsh".into(),
        ..HardwareSpec::default()
    };
    s.programming.sigma = 0.03;
    s.read.out_noise = 0.1;
    s.read.w_noise = 0.02;
    s.drift.nu_mean = 0.01;
    s.drift.nu_std = 0.005;
    s.faults.stuck_min = 0.01;
    s.faults.stuck_max = 0.01;
    s.device.dw_min_dtod = 0.5;
    s.device.bound_dtod = 0.25;
    s.device.up_down = 0.05;
    s.device.up_down_dtod = 0.05;
    s.dac.bits = 6;
    s.adc.bits = 8;
    s.neuron = NeuronSpec {
        gain_std: 0.2,
        offset_std: 0.1,
        knee: 0.1,
        knee_std: 0.5,
        saturation: 8.0,
        saturation_std: 0.2,
        noise: 0.02,
    };
    s.black_box = BlackBoxSpec {
        enabled: true,
        mixing: 0.1,
        neighbours: 4,
        nonlinearity: 0.1,
        nonlinearity_std: 0.5,
        sharpness: 2.0,
        noise: 0.02,
        dropout: 0.02,
    };
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_round_trip_through_toml() {
        for name in NAMES {
            let s = by_name(name).unwrap();
            s.validate().unwrap();
            assert_eq!(s.name, name);
            let text = toml::to_string(&s).unwrap();
            let back: HardwareSpec = toml::from_str(&text).unwrap();
            assert_eq!(back, s, "{name}:\n{text}");
            let json = serde_json::to_value(&s).unwrap();
            assert_eq!(serde_json::from_value::<HardwareSpec>(json).unwrap(), s);
        }
        assert!(by_name("memristor").is_err());
    }

    #[test]
    fn ideal_has_no_randomness_and_scaled_zero_matches_it_in_noise() {
        let i = ideal();
        assert_eq!(i.read.out_noise, 0.0);
        assert_eq!(i.device.c2c, 0.0);
        assert_eq!(i.faults.stuck_max, 0.0);
        assert!(!i.black_box.enabled);
        assert_eq!(i.update.mode, UpdateMode::Ideal);
        let z = harsh().scaled(0.0);
        assert_eq!(z.neuron.gain_std, 0.0);
        assert_eq!(z.black_box.noise, 0.0);
        assert_eq!(z.black_box.mixing, 0.0);
    }
}
