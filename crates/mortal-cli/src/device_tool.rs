//! `mortal device response`: the pulse response of one device in aihwkit's normalised
//! weight units (what aihwkit users know as `compute_pulse_response` / `plot_device`),
//! from aihwkit-style parameters or from a chip preset or spec.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::plot::{self, LineChart, Series};
use mortal::error::{Error, Result};
use mortal::substrate::HardwareSpec;
use mortal::substrate::device::response::{Device, Params};

/// What to compute.
#[derive(Clone, Debug)]
pub struct ResponseRequest {
    /// The device parameters.
    pub params: Params,
    /// Start weight (clipped to the device's bounds).
    pub start: f32,
    /// Up pulses, then down pulses.
    pub up: usize,
    /// Down pulses.
    pub down: usize,
    /// Draw `devices` devices with device-to-device and cycle-to-cycle noise (else the
    /// nominal device, noise-free).
    pub noise: bool,
    /// Devices of the noisy band.
    pub devices: usize,
    /// Seed of the noisy draws.
    pub seed: u64,
}

/// The trajectory (noise-free) or the band over devices (noisy).
#[derive(Clone, Debug, Serialize)]
pub struct ResponseOutput {
    /// Weight after each pulse (noise-free), or the mean over devices.
    pub w: Vec<f32>,
    /// Noisy: standard deviation over devices after each pulse.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub std: Option<Vec<f32>>,
    /// Noisy: lowest and highest weight over devices after each pulse.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<Vec<f32>>,
}

/// A chip spec's device seen as an aihwkit device on [−1, 1]: a conductance pair's
/// device spans its range g_max − g_min, i.e. 2 in these units, so steps double; the
/// bound spread (a fraction of g_max) becomes a fraction of the half range. `up_down` is
/// shown in aihwkit's convention, which is the chip's only with `asymmetry = "aihwkit"`.
pub fn params_of_spec(spec: &HardwareSpec) -> Params {
    let d = &spec.device;
    let c = &spec.crossbar;
    let kind = d.response;
    let half = ((c.g_max - c.g_min) / 2.0).max(f64::MIN_POSITIVE);
    let bound = (d.bound_dtod * c.g_max / half) as f32;
    Params {
        dw_min: (2.0 * d.dw_min) as f32,
        dw_min_dtod: d.dw_min_dtod as f32,
        dw_min_std: d.c2c as f32,
        up_down: d.up_down as f32,
        up_down_dtod: d.up_down_dtod as f32,
        w_max: 1.0,
        w_min: -1.0,
        w_max_dtod: bound,
        w_min_dtod: bound,
        shape: if kind.is_shaped() {
            d.shape.clone()
        } else {
            Params::of(kind).shape
        },
        ..Params::of(kind)
    }
}

/// Most device × pulse steps a noisy response computes.
pub const MAX_PULSE_STEPS: usize = 200_000_000;

/// Computes the response.
pub fn response(req: &ResponseRequest) -> Result<ResponseOutput> {
    req.params.validate()?;
    if !req.start.is_finite() {
        return Err(Error::param(
            "--start",
            req.start,
            "must be a finite weight",
        ));
    }
    let pulses = req.up.saturating_add(req.down);
    if pulses == 0 || pulses > 1_000_000 {
        return Err(Error::param(
            "--up/--down",
            format!("{} + {}", req.up, req.down),
            "need 1..=1000000 pulses in all",
        ));
    }
    // Every device steps through every pulse: bound the whole computation (≈ 2·10⁸ pulse
    // steps, tens of seconds), not each factor alone.
    if req.noise && req.devices.saturating_mul(pulses) > MAX_PULSE_STEPS {
        return Err(Error::param(
            "--devices",
            req.devices,
            format!(
                "{} devices × {pulses} pulses exceed {MAX_PULSE_STEPS} pulse steps; use fewer \
                 devices or pulses",
                req.devices
            ),
        ));
    }
    if !req.noise {
        let d = Device::new(&req.params, None);
        return Ok(ResponseOutput {
            w: d.trajectory(req.start, req.up, req.down, None),
            std: None,
            min: None,
            max: None,
        });
    }
    if req.devices == 0 || req.devices > 100_000 {
        return Err(Error::param("--devices", req.devices, "must be 1..=100000"));
    }
    let n = req.up + req.down;
    let (mut sum, mut sq) = (vec![0f64; n], vec![0f64; n]);
    let (mut lo, mut hi) = (vec![f32::INFINITY; n], vec![f32::NEG_INFINITY; n]);
    for k in 0..req.devices {
        let mut d2d = mortal::rng::indexed(mortal::rng::derive(req.seed, "d2d"), k as u64);
        let mut c2c = mortal::rng::indexed(mortal::rng::derive(req.seed, "c2c"), k as u64);
        let d = Device::new(&req.params, Some(&mut d2d));
        for (i, w) in d
            .trajectory(req.start, req.up, req.down, Some(&mut c2c))
            .into_iter()
            .enumerate()
        {
            sum[i] += f64::from(w);
            sq[i] += f64::from(w) * f64::from(w);
            lo[i] = lo[i].min(w);
            hi[i] = hi[i].max(w);
        }
    }
    let m = req.devices as f64;
    let mean: Vec<f32> = sum.iter().map(|s| (s / m) as f32).collect();
    let std = sum
        .iter()
        .zip(&sq)
        .map(|(s, q)| ((q / m - (s / m) * (s / m)).max(0.0)).sqrt() as f32)
        .collect();
    Ok(ResponseOutput {
        w: mean,
        std: Some(std),
        min: Some(lo),
        max: Some(hi),
    })
}

/// Draws the response (weight vs pulse number; noisy: mean with the min–max band).
pub fn draw(out: &ResponseOutput, title: &str, png: &Path) -> Result<PathBuf> {
    let points = out
        .w
        .iter()
        .enumerate()
        .map(|(i, w)| ((i + 1) as f64, f64::from(*w)))
        .collect();
    let band = match (&out.min, &out.max) {
        (Some(lo), Some(hi)) => lo
            .iter()
            .zip(hi)
            .enumerate()
            .map(|(i, (a, b))| ((i + 1) as f64, f64::from(*a), f64::from(*b)))
            .collect(),
        _ => Vec::new(),
    };
    let label = if out.std.is_some() {
        "mean over devices (band: min–max)"
    } else {
        "weight"
    };
    let stem = png.with_extension("");
    plot::line_chart(
        &LineChart {
            title: title.to_string(),
            x_label: "pulse number (up pulses, then down pulses)".into(),
            y_label: "weight (aihwkit normalised units)".into(),
            series: vec![Series {
                label: label.into(),
                points,
                band,
                plain: true,
                ..Series::default()
            }],
            ..LineChart::default()
        },
        &stem,
    )
}
