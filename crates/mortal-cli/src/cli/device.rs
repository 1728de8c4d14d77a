//! `mortal device`: arguments and the response command.

use super::*;

/// `mortal device` subcommands.
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// The pulse response of one device in aihwkit's normalised weight units: the weight
    /// after each of --up up pulses then --down down pulses (aihwkit parameter names).
    Response(ResponseArgs),
}

/// `mortal device response` arguments.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct ResponseArgs {
    /// Response: constant-step, linear-step, soft-bounds, exp-step, pow-step,
    /// piecewise-step (default soft-bounds; from --preset/--spec when given).
    #[arg(long)]
    pub response: Option<String>,
    /// Mean step per pulse (aihwkit dw_min; default 0.001).
    #[arg(long)]
    pub dw_min: Option<f32>,
    /// Up/down asymmetry (aihwkit up_down: the weaker direction shrinks by |up_down|).
    #[arg(long)]
    pub up_down: Option<f32>,
    /// Lower bound (default −0.6).
    #[arg(long)]
    pub w_min: Option<f32>,
    /// Upper bound (default 0.6).
    #[arg(long)]
    pub w_max: Option<f32>,
    /// Any other aihwkit parameter, NAME=VALUE (repeatable; lists as a,b,c).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Start from a chip preset's device (seen on [−1, 1]).
    #[arg(long, value_name = "NAME", conflicts_with = "spec")]
    pub preset: Option<String>,
    /// Start from a chip spec TOML file's device.
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    /// Start weight.
    #[arg(long, default_value_t = 0.0)]
    pub start: f32,
    /// Up pulses (applied first).
    #[arg(long, default_value_t = 100)]
    pub up: usize,
    /// Down pulses (then).
    #[arg(long, default_value_t = 100)]
    pub down: usize,
    /// Device-to-device and cycle-to-cycle noise on: mean and spread over --devices.
    #[arg(long)]
    pub noise: bool,
    /// Devices drawn with --noise.
    #[arg(long, default_value_t = 100)]
    pub devices: usize,
    /// Seed of the noisy draws.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print JSON ({"w": [...]}, with --noise also std, min, max).
    #[arg(long)]
    pub json: bool,
    /// Draw the response into this PNG file (and an SVG beside it).
    #[arg(long, value_name = "FILE.png")]
    pub plot: Option<PathBuf>,
}

/// `mortal device response`.
pub(super) fn device_response(a: &ResponseArgs) -> Result<()> {
    use crate::device_tool::{ResponseRequest, draw, params_of_spec, response};
    use mortal::substrate::device::response::{Kind, Params};
    let mut p = match (&a.preset, &a.spec) {
        (Some(name), _) => params_of_spec(&mortal::substrate::device::presets::by_name(name)?),
        (None, Some(f)) => {
            let src = f.display().to_string();
            let spec = ChipConfig::from_source(&src, 1, 1.0)?.spec;
            spec.validate()?;
            params_of_spec(&spec)
        }
        (None, None) => Params::of(Kind::SoftBounds),
    };
    if let Some(r) = &a.response {
        let kind = Kind::parse(r)?;
        if kind != p.response {
            p = Params {
                response: kind,
                ..Params::of(kind)
            };
        }
    }
    if let Some(v) = a.dw_min {
        p.dw_min = v;
    }
    if let Some(v) = a.up_down {
        p.up_down = v;
    }
    if let Some(v) = a.w_min {
        p.w_min = v;
    }
    if let Some(v) = a.w_max {
        p.w_max = v;
    }
    for kv in &a.params {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| Error::param("--param", kv, "expected NAME=VALUE"))?;
        p.set(k.trim(), v.trim())?;
    }
    let out = response(&ResponseRequest {
        params: p.clone(),
        start: a.start,
        up: a.up,
        down: a.down,
        noise: a.noise,
        devices: a.devices,
        seed: a.seed,
    })?;
    if let Some(png) = &a.plot {
        let title = format!(
            "{:?} device: dw_min {}, up_down {}, bounds [{}, {}]{}",
            p.response,
            p.dw_min,
            p.up_down,
            p.w_min,
            p.w_max,
            if a.noise {
                format!(", {} devices with noise", a.devices)
            } else {
                String::new()
            }
        );
        let f = draw(&out, &title, png)?;
        eprintln!("figure written to {}", f.display());
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string(&out).map_err(|e| Error::io("cannot write JSON", e.into()))?
        );
    } else {
        for (i, w) in out.w.iter().enumerate() {
            match &out.std {
                Some(sd) => println!("{}\t{w:.7}\t{:.7}", i + 1, sd[i]),
                None => println!("{}\t{w:.7}", i + 1),
            }
        }
    }
    Ok(())
}
