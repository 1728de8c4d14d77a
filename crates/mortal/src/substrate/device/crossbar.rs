//! One layer's crossbar: differential device pairs, their fixed per-device properties,
//! write-and-verify programming, drift, stuck-at faults, and the cached effective weights.
//!
//! A layer with `inp` inputs and `out` outputs has `out × (inp + 1)` pairs: column `inp`
//! is the bias, an extra input line carrying 1 (network units). Pair `e` (column-major,
//! `e = j·out + i`) stores the conductances `G⁺[e]`, `G⁻[e]` in µS; the weight it stands
//! for is `w = gain·(G⁺ − G⁻)/(g_max − g_min)`. The effective matrix `w` (the same
//! layout, f32) is kept in sync by every operation that moves a conductance, so a forward
//! pass is one GEMM on it.

use rand::RngExt;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use super::response::{self, Shape};
use super::spec::{Asymmetry, HardwareSpec, PairMapping, ProgrammingNoise, Response, UpdateMode};
use crate::linalg::Mat;
use crate::rng::{Rng, indexed};

/// Pairs per parallel chunk: fixed, so per-chunk random streams do not depend on the
/// thread count.
pub(crate) const CHUNK: usize = 8192;

/// Bit of `stuck` marking G⁺ stuck.
pub(crate) const STUCK_P: u8 = 1;
/// Bit of `stuck` marking G⁻ stuck.
pub(crate) const STUCK_M: u8 = 2;
/// Bit of `stuck`: G⁺ is stuck at g_max (else at g_min).
pub(crate) const STUCK_P_HIGH: u8 = 4;
/// Bit of `stuck`: G⁻ is stuck at g_max (else at g_min).
pub(crate) const STUCK_M_HIGH: u8 = 8;

/// Fixed properties of one device, drawn once per chip.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Device {
    /// Lower saturation conductance G_lo, µS.
    pub lo: f32,
    /// Upper saturation conductance G_hi, µS.
    pub hi: f32,
    /// Up-pulse parameter: soft bounds β_up (fraction of the distance to G_hi per pulse);
    /// constant step ΔG_up in µS.
    pub up: f32,
    /// Down-pulse parameter (β_down, or ΔG_down in µS).
    pub down: f32,
}

impl Device {
    /// This device in aihwkit's weight units (centre `gc` and half range `half` of
    /// [`Physics::device_units`]): bounds and steps; the shape's slopes or exponents are
    /// `ext` (both pairs of fields take it; each shape reads its own).
    pub fn drawn(&self, (gc, half): (f32, f32), ext: [f32; 2]) -> super::response::Drawn {
        super::response::Drawn {
            w_min: (self.lo - gc) / half,
            w_max: (self.hi - gc) / half,
            scale_up: self.up / half,
            scale_down: self.down / half,
            slope_up: ext[0],
            slope_down: ext[1],
            gamma_up: ext[0],
            gamma_down: ext[1],
        }
    }
}

/// Every device of one polarity in a layer, packed as 16-bit fixed point (8 bytes a
/// device instead of 16: the update pass is memory-bound). Each field is quantised to
/// 1/65535 of its largest value in the layer (≈ 4e-4 µS for G_hi, ≈ 0.01 % of a typical
/// step), far below the modelled spreads; a field with no spread is exact to 1 ulp.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Devices {
    packed: Vec<[u16; 4]>,
    /// Value of one unit of each field (lo, hi, up, down): the field's maximum / 65535.
    unit: [f32; 4],
}

impl Devices {
    pub(super) fn pack(devs: &[Device]) -> Self {
        let field = |d: &Device, k: usize| [d.lo, d.hi, d.up, d.down][k];
        let unit: [f32; 4] = std::array::from_fn(|k| {
            let max = devs.iter().fold(0.0f32, |m, d| m.max(field(d, k)));
            if max > 0.0 { max / 65535.0 } else { 1.0 }
        });
        let packed = devs
            .iter()
            .map(|d| {
                std::array::from_fn(|k| (field(d, k) / unit[k]).round().clamp(0.0, 65535.0) as u16)
            })
            .collect();
        Self { packed, unit }
    }

    /// The packed fields (lo, hi, up, down) of every device, in units of [`Self::unit`].
    pub fn packed(&self) -> &[[u16; 4]] {
        &self.packed
    }

    /// Value of one unit of each packed field.
    pub fn unit(&self) -> [f32; 4] {
        self.unit
    }

    /// Device `e`.
    #[inline(always)]
    pub fn get(&self, e: usize) -> Device {
        let [lo, hi, up, down] = self.packed[e];
        let u = &self.unit;
        Device {
            lo: f32::from(lo) * u[0],
            hi: f32::from(hi) * u[1],
            up: f32::from(up) * u[2],
            down: f32::from(down) * u[3],
        }
    }
}

/// Chip-wide physical constants (from the spec, as f32).
#[derive(Clone, Debug)]
pub(crate) struct Physics {
    pub g_min: f32,
    pub g_max: f32,
    /// g_max − g_min.
    pub range: f32,
    pub mapping: PairMapping,
    pub levels: u32,
    pub prog: ProgrammingNoise,
    /// Constant programming σ, µS.
    pub prog_sigma: f32,
    /// PCM polynomial in µS already scaled by g_max/g_ref and `pcm_scale`.
    pub prog_poly: [f32; 3],
    pub response: Response,
    /// Parameters of the shaped responses (linear, exp, pow, piecewise step).
    pub shape: Shape,
    pub c2c: f32,
    pub mode: UpdateMode,
    pub refresh: f32,
    pub t0: f64,
    pub omega: f32,
    pub decay_batch: f32,
    pub range_per_sqrt_fanin: f32,
}

impl Physics {
    pub fn new(spec: &HardwareSpec) -> Self {
        let c = &spec.crossbar;
        let p = &spec.programming;
        let scale = (c.g_max / p.pcm_reference_g_max * p.pcm_scale) as f32;
        Self {
            g_min: c.g_min as f32,
            g_max: c.g_max as f32,
            range: (c.g_max - c.g_min) as f32,
            mapping: c.mapping,
            levels: c.levels,
            prog: p.noise,
            prog_sigma: (p.sigma * c.g_max) as f32,
            prog_poly: p.pcm_coefficients.map(|v| v as f32 * scale),
            response: spec.device.response,
            shape: spec.device.shape.clone(),
            c2c: spec.device.c2c as f32,
            mode: spec.update.mode,
            refresh: spec.update.refresh_threshold as f32,
            t0: spec.drift.t0,
            omega: c.weight_scaling_omega as f32,
            decay_batch: spec.update.decay_batch as f32,
            range_per_sqrt_fanin: c.weight_range_per_sqrt_fanin as f32,
        }
    }

    /// Programming σ (µS) for a target conductance.
    #[inline]
    pub fn prog_sigma(&self, target: f32) -> f32 {
        match self.prog {
            ProgrammingNoise::Constant => self.prog_sigma,
            ProgrammingNoise::Pcm => {
                let x = target / self.g_max;
                let [c0, c1, c2] = self.prog_poly;
                (c0 + c1 * x + c2 * x * x).max(0.0)
            }
        }
    }

    /// Whether programming is noiseless.
    pub fn prog_is_exact(&self) -> bool {
        match self.prog {
            ProgrammingNoise::Constant => self.prog_sigma == 0.0,
            ProgrammingNoise::Pcm => self.prog_poly.iter().all(|c| *c == 0.0),
        }
    }

    /// Target conductances (G⁺, G⁻) of a normalised weight under the pair mapping, with
    /// the level quantisation of write-and-verify.
    #[inline]
    pub fn targets(&self, w_norm: f32) -> (f32, f32) {
        let w = w_norm.clamp(-1.0, 1.0);
        let (p, m) = match self.mapping {
            PairMapping::Centered => {
                let c = 0.5 * (self.g_min + self.g_max);
                let h = 0.5 * w * self.range;
                (c + h, c - h)
            }
            PairMapping::OneSided => {
                let a = w.abs() * self.range;
                if w >= 0.0 {
                    (self.g_min + a, self.g_min)
                } else {
                    (self.g_min, self.g_min + a)
                }
            }
        };
        (self.level(p), self.level(m))
    }

    #[inline]
    fn level(&self, g: f32) -> f32 {
        if self.levels < 2 {
            return g;
        }
        let steps = (self.levels - 1) as f32;
        let k = ((g - self.g_min) / self.range * steps).round_ties_even();
        self.g_min + k / steps * self.range
    }

    /// A device's conductance seen in aihwkit's weight units, where the nominal range
    /// [g_min, g_max] is [−1, 1]: (centre g_c, µS; half range, µS per unit).
    #[inline]
    pub fn device_units(&self) -> (f32, f32) {
        (0.5 * (self.g_min + self.g_max), 0.5 * self.range)
    }

    /// The nominal (training) gain of a layer with this fan-in.
    pub fn nominal_gain(&self, fan_in: usize) -> f32 {
        self.range_per_sqrt_fanin / (fan_in as f32).sqrt()
    }
}

/// One layer's array.
#[derive(Clone, Debug)]
pub(crate) struct Crossbar {
    pub out: usize,
    pub inp: usize,
    /// Digital gain: w = gain·(G⁺ − G⁻)/range (network weight units per normalised unit).
    pub gain: f32,
    pub gp: Vec<f32>,
    pub gm: Vec<f32>,
    pub dp: Devices,
    pub dm: Devices,
    /// Shaped responses: per device the slopes (linear step, aihwkit `slope_up`,
    /// `slope_down`, per weight unit) or exponents (pow step) drawn with their
    /// device-to-device spread; empty for the other responses.
    pub xp: Vec<[f32; 2]>,
    pub xm: Vec<[f32; 2]>,
    /// Stuck bits per pair (`STUCK_P | STUCK_M`); empty when the chip has no faults.
    pub stuck: Vec<u8>,
    /// Drift exponents per device; empty when drift is off.
    pub nu_p: Vec<f32>,
    pub nu_m: Vec<f32>,
    /// Last write time per device, s; empty when drift is off.
    pub tw_p: Vec<f32>,
    pub tw_m: Vec<f32>,
    /// Mixed-precision accumulators χ per pair (normalised weight units); empty otherwise.
    pub chi: Vec<f32>,
    /// Weight decay accepted but not yet applied: the product of (1 − δ) since the last
    /// relaxation (see `update.decay_batch`).
    pub pending_keep: f32,
    /// Effective weights out × (inp + 1), bias in the last column. In `ideal` update mode
    /// this is the primary copy (exact float arithmetic) and the conductances follow it.
    pub w: Mat,
}

#[inline]
fn normal(rng: &mut Rng) -> f32 {
    StandardNormal.sample(rng)
}

impl Crossbar {
    /// Draws every device of a layer from `seed` (parallel fixed chunks, indexed streams).
    pub fn new(spec: &HardwareSpec, phys: &Physics, inp: usize, out: usize, seed: u64) -> Self {
        let n = out * (inp + 1);
        let d = &spec.device;
        let (g_min, g_max, range) = (phys.g_min, phys.g_max, phys.range);
        let faults = spec.faults.stuck_min > 0.0 || spec.faults.stuck_max > 0.0;
        let drift = spec.tracks_drift();
        let mut dp = vec![Device::default(); n];
        let mut dm = vec![Device::default(); n];
        let mut stuck = if faults { vec![0u8; n] } else { Vec::new() };
        let mut nu_p = if drift { vec![0.0; n] } else { Vec::new() };
        let mut nu_m = if drift { vec![0.0; n] } else { Vec::new() };
        let draw = |rng: &mut Rng, dev: &mut Device| {
            // Fixed number of draws per device, whatever is switched on.
            let z = [normal(rng), normal(rng), normal(rng), normal(rng)];
            let lo = (g_min * (1.0 + d.bound_dtod as f32 * z[2])).max(0.0);
            let hi = (g_max * (1.0 + d.bound_dtod as f32 * z[3])).max(lo + 0.01 * range);
            // Steps in µS: up and down of the device's step dw_min·range.
            let (s_up, s_down) = match d.asymmetry {
                Asymmetry::Both => {
                    let dw = d.dw_min as f32 * (1.0 + d.dw_min_dtod as f32 * z[0]).max(0.0);
                    let ud = (d.up_down as f32 + d.up_down_dtod as f32 * z[1]).clamp(-0.99, 0.99);
                    (dw * (1.0 + ud) * range, dw * (1.0 - ud) * range)
                }
                Asymmetry::Aihwkit => {
                    // aihwkit's operations in aihwkit's order, on the step in µS.
                    let step = (d.dw_min * f64::from(range)) as f32;
                    let a = d.up_down as f32;
                    let g = 1.0 + d.dw_min_dtod as f32 * z[0];
                    let r = d.up_down_dtod as f32 * z[1];
                    (
                        ((a.min(0.0) + g + r) * step).abs(),
                        ((-a.max(0.0) + g - r) * step).abs(),
                    )
                }
            };
            let (up, down) = match d.response {
                // The step s at the middle of the device's own range.
                Response::SoftBounds => {
                    let span = hi - lo;
                    ((2.0 * s_up / span).min(0.5), (2.0 * s_down / span).min(0.5))
                }
                // Constant and shaped steps: the step in µS.
                _ => (s_up, s_down),
            };
            *dev = Device { lo, hi, up, down };
        };
        dp.par_chunks_mut(CHUNK)
            .zip(dm.par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(|(c, (dpc, dmc))| {
                let mut rng = indexed(seed, c as u64);
                for k in 0..dpc.len() {
                    draw(&mut rng, &mut dpc[k]);
                    draw(&mut rng, &mut dmc[k]);
                }
            });
        // The shaped responses' slopes or exponents from their own stream (two normals
        // per device), in aihwkit's weight units (see `Physics::device_units`).
        let shaped = d.response.is_shaped();
        let (mut xp, mut xm) = if shaped {
            (vec![[0.0f32; 2]; n], vec![[0.0f32; 2]; n])
        } else {
            (Vec::new(), Vec::new())
        };
        if shaped {
            let seed3 = crate::rng::derive(seed, "shape");
            let units = phys.device_units();
            let ext = |rng: &mut Rng, dev: &Device| -> [f32; 2] {
                let z = [normal(rng), normal(rng)];
                let mut k = 0;
                let mut dr = dev.drawn(units, [0.0; 2]);
                response::shape_numbers(d.response, &d.shape, &mut dr, (-1.0, 1.0), true, || {
                    k += 1;
                    z[k - 1]
                });
                match d.response {
                    Response::PowStep => [dr.gamma_up, dr.gamma_down],
                    _ => [dr.slope_up, dr.slope_down],
                }
            };
            xp.par_chunks_mut(CHUNK)
                .zip(xm.par_chunks_mut(CHUNK))
                .zip(dp.par_chunks(CHUNK).zip(dm.par_chunks(CHUNK)))
                .enumerate()
                .for_each(|(c, ((xpc, xmc), (dpc, dmc)))| {
                    let mut rng = indexed(seed3, c as u64);
                    for k in 0..xpc.len() {
                        xpc[k] = ext(&mut rng, &dpc[k]);
                        xmc[k] = ext(&mut rng, &dmc[k]);
                    }
                });
        }
        // Stuck states and drift exponents from their own streams, so switching them on
        // does not change the devices above.
        let c = 0.5 * (g_min + g_max);
        let mut gp = vec![c; n];
        let mut gm = vec![c; n];
        if faults || drift {
            let seed2 = crate::rng::derive(seed, "faults-drift");
            let (p_min, p_any) = (
                spec.faults.stuck_min,
                spec.faults.stuck_min + spec.faults.stuck_max,
            );
            let (nu_mean, nu_std) = (spec.drift.nu_mean as f32, spec.drift.nu_std as f32);
            // Per device: (stuck code 0 free / 1 at g_min / 2 at g_max, ν).
            let one = move |rng: &mut Rng| -> (u8, f32) {
                let u: f64 = rng.random();
                let z = normal(rng);
                let code = if u < p_min {
                    1
                } else if u < p_any {
                    2
                } else {
                    0
                };
                (code, (nu_mean + nu_std * z).max(0.0))
            };
            let parts: Vec<Vec<[(u8, f32); 2]>> = (0..n.div_ceil(CHUNK))
                .into_par_iter()
                .map(|c| {
                    let mut rng = indexed(seed2, c as u64);
                    (c * CHUNK..((c + 1) * CHUNK).min(n))
                        .map(|_| [one(&mut rng), one(&mut rng)])
                        .collect()
                })
                .collect();
            for (e, [(sp, np), (sm, nm)]) in parts.into_iter().flatten().enumerate() {
                if drift {
                    nu_p[e] = np;
                    nu_m[e] = nm;
                }
                if faults {
                    let mut s = 0u8;
                    if sp > 0 {
                        s |= STUCK_P;
                        gp[e] = if sp == 2 { g_max } else { g_min };
                        if sp == 2 {
                            s |= STUCK_P_HIGH;
                        }
                    }
                    if sm > 0 {
                        s |= STUCK_M;
                        gm[e] = if sm == 2 { g_max } else { g_min };
                        if sm == 2 {
                            s |= STUCK_M_HIGH;
                        }
                    }
                    stuck[e] = s;
                }
            }
        }
        let (tw_p, tw_m) = if drift {
            (vec![0.0; n], vec![0.0; n])
        } else {
            (Vec::new(), Vec::new())
        };
        let chi = if spec.update.mode == UpdateMode::MixedPrecision {
            vec![0.0; n]
        } else {
            Vec::new()
        };
        let mut xb = Self {
            out,
            inp,
            gain: phys.nominal_gain(inp),
            gp,
            gm,
            dp: Devices::pack(&dp),
            dm: Devices::pack(&dm),
            xp,
            xm,
            stuck,
            nu_p,
            nu_m,
            tw_p,
            tw_m,
            chi,
            pending_keep: 1.0,
            w: Mat::zeros(out, inp + 1),
        };
        xb.refresh_weights(phys);
        xb
    }

    /// Number of pairs.
    /// Devices that can be written (two per pair, weights and biases, minus stuck ones).
    pub fn free_devices(&self) -> u64 {
        let stuck: u64 = self
            .stuck
            .iter()
            .map(|s| u64::from(s & STUCK_P != 0) + u64::from(s & STUCK_M != 0))
            .sum();
        2 * self.pairs() as u64 - stuck
    }

    pub fn pairs(&self) -> usize {
        self.gp.len()
    }

    /// Weight units per µS of conductance difference.
    #[inline]
    pub fn k(&self, phys: &Physics) -> f32 {
        self.gain / phys.range
    }

    /// Recomputes every effective weight from the conductances.
    pub fn refresh_weights(&mut self, phys: &Physics) {
        let k = self.k(phys);
        self.w
            .as_mut_slice()
            .par_chunks_mut(CHUNK)
            .zip(self.gp.par_chunks(CHUNK).zip(self.gm.par_chunks(CHUNK)))
            .for_each(|(w, (p, m))| {
                for ((w, p), m) in w.iter_mut().zip(p).zip(m) {
                    *w = k * (p - m);
                }
            });
    }

    /// Write-and-verify of targets `w` (out × inp) and `b` (out), network units. The gain
    /// becomes max(nominal, max|target|/ω); each free device lands on its target plus
    /// programming noise, clipped to its own bounds; stuck devices keep their value.
    pub fn program(&mut self, phys: &Physics, w: &Mat, b: &[f32], clock: f64, seed: u64) {
        assert_eq!(w.shape(), (self.out, self.inp), "program: weight shape");
        assert_eq!(b.len(), self.out, "program: bias length");
        let max_abs = w.iter().chain(b).fold(0.0f32, |m, v| m.max(v.abs()));
        self.gain = phys.nominal_gain(self.inp).max(max_abs / phys.omega);
        let inv_gain = 1.0 / self.gain;
        let nw = self.out * self.inp;
        let src_w = w.as_slice();
        let exact = phys.prog_is_exact();
        let t = clock as f32;
        let stuck = &self.stuck;
        let (dp, dm) = (&self.dp, &self.dm);
        let drift = !self.tw_p.is_empty();
        let pairs = self.pairs();
        let (tw_p, tw_m) = (&mut self.tw_p, &mut self.tw_m);
        self.gp
            .par_chunks_mut(CHUNK)
            .zip(self.gm.par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(|(c, (gp, gm))| {
                let mut rng = indexed(seed, c as u64);
                for k in 0..gp.len() {
                    let e = c * CHUNK + k;
                    let target = if e < nw { src_w[e] } else { b[e - nw] };
                    let s = if stuck.is_empty() { 0 } else { stuck[e] };
                    let (tp, tm) = phys.targets(target * inv_gain);
                    if s & STUCK_P == 0 {
                        gp[k] = write(phys, tp, &dp.get(e), exact, &mut rng);
                    }
                    if s & STUCK_M == 0 {
                        gm[k] = write(phys, tm, &dm.get(e), exact, &mut rng);
                    }
                }
            });
        if drift {
            for e in 0..pairs {
                let s = if stuck.is_empty() { 0 } else { stuck[e] };
                if s & STUCK_P == 0 {
                    tw_p[e] = t;
                }
                if s & STUCK_M == 0 {
                    tw_m[e] = t;
                }
            }
        }
        self.chi.iter_mut().for_each(|v| *v = 0.0);
        self.pending_keep = 1.0;
        self.refresh_weights(phys);
    }

    /// Conductance drift from `t_old` to `t_new` (s): every free device is multiplied by
    /// ((t_new − t_w + t₀)/(t_old − t_w + t₀))^(−ν), which composes to
    /// G₀·((t − t_w + t₀)/t₀)^(−ν) since its last write at t_w.
    pub fn drift(&mut self, phys: &Physics, t_old: f64, t_new: f64) {
        if self.nu_p.is_empty() || t_new <= t_old {
            return;
        }
        let t0 = phys.t0;
        let stuck = &self.stuck;
        let step = |g: &mut [f32], nu: &[f32], tw: &[f32], bit: u8, base: usize| {
            for k in 0..g.len() {
                let e = base + k;
                if (!stuck.is_empty() && stuck[e] & bit != 0) || nu[k] == 0.0 {
                    continue;
                }
                let tw = f64::from(tw[k]);
                let ratio = ((t_new - tw + t0) / (t_old - tw + t0)) as f32;
                g[k] *= ratio.powf(-nu[k]);
            }
        };
        self.gp
            .par_chunks_mut(CHUNK)
            .zip(self.nu_p.par_chunks(CHUNK).zip(self.tw_p.par_chunks(CHUNK)))
            .enumerate()
            .for_each(|(c, (g, (nu, tw)))| step(g, nu, tw, STUCK_P, c * CHUNK));
        self.gm
            .par_chunks_mut(CHUNK)
            .zip(self.nu_m.par_chunks(CHUNK).zip(self.tw_m.par_chunks(CHUNK)))
            .enumerate()
            .for_each(|(c, (g, (nu, tw)))| step(g, nu, tw, STUCK_M, c * CHUNK));
        self.refresh_weights(phys);
    }

    /// Accepts a decay request δ and returns the fraction to relax by now (0 while the
    /// accumulated shrink stays below the batch threshold).
    pub fn take_decay(&mut self, phys: &Physics, decay: f32) -> f32 {
        if decay <= 0.0 {
            return 0.0;
        }
        self.pending_keep *= 1.0 - decay;
        let due = 1.0 - self.pending_keep;
        if due >= phys.decay_batch {
            self.pending_keep = 1.0;
            due
        } else {
            0.0
        }
    }

    /// Re-imposes stuck values and this chip's device bounds (after loading conductances
    /// from another instance). Unbounded in `ideal` update mode.
    pub fn enforce_own_devices(&mut self, phys: &Physics) {
        let unbounded = phys.mode == UpdateMode::Ideal;
        for e in 0..self.pairs() {
            if !unbounded {
                let (dp, dm) = (self.dp.get(e), self.dm.get(e));
                self.gp[e] = self.gp[e].clamp(dp.lo, dp.hi);
                self.gm[e] = self.gm[e].clamp(dm.lo, dm.hi);
            }
            if !self.stuck.is_empty() {
                let s = self.stuck[e];
                if s & STUCK_P != 0 {
                    self.gp[e] = if s & STUCK_P_HIGH != 0 {
                        phys.g_max
                    } else {
                        phys.g_min
                    };
                }
                if s & STUCK_M != 0 {
                    self.gm[e] = if s & STUCK_M_HIGH != 0 {
                        phys.g_max
                    } else {
                        phys.g_min
                    };
                }
            }
        }
        self.refresh_weights(phys);
    }
}

/// Write-and-verify of one device to `target`: lands within programming noise, inside the
/// device's own bounds, never negative.
#[inline]
pub(crate) fn write(phys: &Physics, target: f32, dev: &Device, exact: bool, rng: &mut Rng) -> f32 {
    let target = target.clamp(dev.lo, dev.hi);
    if exact {
        return target;
    }
    let g = target + phys.prog_sigma(target) * normal(rng);
    g.clamp(dev.lo, dev.hi).max(0.0)
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)]
mod tests {
    use super::*;
    use crate::substrate::device::presets;

    fn spec_with(f: impl Fn(&mut HardwareSpec)) -> HardwareSpec {
        let mut s = presets::ideal();
        s.update.mode = UpdateMode::Pulsed;
        f(&mut s);
        s.validate().unwrap();
        s
    }

    fn mean_sd(v: &[f64]) -> (f64, f64) {
        let n = v.len() as f64;
        let m = v.iter().sum::<f64>() / n;
        (
            m,
            (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt(),
        )
    }

    #[test]
    fn constant_programming_noise_has_the_specified_std() {
        let spec = spec_with(|s| s.programming.sigma = 0.02);
        let phys = Physics::new(&spec);
        let mut xb = Crossbar::new(&spec, &phys, 99, 200, 1);
        let w = Mat::from_element(200, 99, 0.0);
        xb.program(&phys, &w, &[0.0; 200], 0.0, 7);
        // Target of both devices is the centre (12.55 µS); σ = 0.02·25 = 0.5 µS.
        let dev: Vec<f64> = xb
            .gp
            .iter()
            .chain(&xb.gm)
            .map(|g| f64::from(*g) - 12.55)
            .collect();
        let (m, sd) = mean_sd(&dev);
        // n = 40,000: std of the sample std ≈ 0.5/√(2n) ≈ 1.8e-3; of the mean 2.5e-3.
        assert!((sd - 0.5).abs() < 0.008, "sd {sd}");
        assert!(m.abs() < 0.011, "mean {m}");
    }

    #[test]
    fn pcm_programming_noise_follows_the_polynomial() {
        let spec = spec_with(|s| {
            s.programming.noise = ProgrammingNoise::Pcm;
            s.programming.pcm_scale = 1.0;
            s.crossbar.mapping = PairMapping::OneSided;
        });
        let phys = Physics::new(&spec);
        for (w_norm, name) in [(0.2f32, "low"), (0.9, "high")] {
            let mut xb = Crossbar::new(&spec, &phys, 199, 200, 2);
            let gain = xb.gain;
            let w = Mat::from_element(200, 199, w_norm * gain);
            xb.program(&phys, &w, &[w_norm * gain; 200], 0.0, 3);
            let target = 0.1 + w_norm * 24.9;
            let x = target / 25.0;
            let want = 0.26348 + 1.9650 * x - 1.1731 * x * x;
            let dev: Vec<f64> = xb.gp.iter().map(|g| f64::from(*g - target)).collect();
            let (_, sd) = mean_sd(&dev);
            // n = 40,000: std of the sample std ≈ σ/√(2n) ≈ 0.35 % of σ; bound 2 %.
            // (At w = 0.9 the target is 4σ below g_max, so clipping is negligible.)
            assert!(
                (sd / f64::from(want) - 1.0).abs() < 0.02,
                "{name}: sd {sd} vs {want}"
            );
            // The other device stays at g_min, where σ(0.1 µS) ≈ 0.27 µS, clipped at
            // the device's lower bound g_min: it lands at or above g_min.
            assert!(xb.gm.iter().all(|g| *g >= 0.1 - 1e-6));
        }
    }

    #[test]
    fn drift_exponent_is_recovered_from_two_reads() {
        let spec = spec_with(|s| {
            s.drift.nu_mean = 0.06;
            s.drift.nu_std = 0.02;
        });
        let phys = Physics::new(&spec);
        let mut xb = Crossbar::new(&spec, &phys, 99, 100, 3);
        let g0 = xb.gp.clone();
        xb.drift(&phys, 0.0, 100.0);
        let g1 = xb.gp.clone();
        xb.drift(&phys, 100.0, 10_000.0);
        // ν from G(t1)/G(t2) = ((t2 + t0)/(t1 + t0))^ν.
        let lr = ((10_000.0f64 + 20.0) / (100.0 + 20.0)).ln();
        let nus: Vec<f64> = g1
            .iter()
            .zip(&xb.gp)
            .map(|(a, b)| (f64::from(*a) / f64::from(*b)).ln() / lr)
            .collect();
        for (e, nu) in nus.iter().enumerate().take(50) {
            assert!((nu - f64::from(xb.nu_p[e])).abs() < 1e-4);
        }
        let (m, sd) = mean_sd(&nus);
        // n = 10,000 (ν clipped at 0 only 0.1 % of the time): std of the mean 2e-4, of the
        // sample std 1.4e-4.
        assert!((m - 0.06).abs() < 1e-3, "mean ν {m}");
        assert!((sd - 0.02).abs() < 1e-3, "ν spread {sd}");
        // And G(t1)/G0 matches ((t1 + t0)/t0)^(−ν).
        let want = (120.0f64 / 20.0).powf(-f64::from(xb.nu_p[0]));
        assert!((f64::from(g1[0] / g0[0]) - want).abs() < 1e-5);
    }

    #[test]
    fn stuck_fraction_matches_and_stuck_devices_ignore_programming() {
        let spec = spec_with(|s| {
            s.faults.stuck_min = 0.03;
            s.faults.stuck_max = 0.02;
        });
        let phys = Physics::new(&spec);
        let mut xb = Crossbar::new(&spec, &phys, 199, 200, 4);
        let n = xb.pairs() as f64 * 2.0;
        let count = |bit: u8| xb.stuck.iter().filter(|s| *s & bit != 0).count();
        let frac = (count(STUCK_P) + count(STUCK_M)) as f64 / n;
        // n = 80,000 devices: std of the fraction sqrt(0.05·0.95/n) ≈ 7.7e-4.
        assert!((frac - 0.05).abs() < 0.0031, "stuck fraction {frac}");
        let at_max = xb
            .gp
            .iter()
            .zip(&xb.stuck)
            .filter(|(g, s)| **s & STUCK_P != 0 && **g == 25.0)
            .count() as f64;
        let p_max = at_max / count(STUCK_P) as f64;
        // 2 of 5 stuck devices are stuck at g_max; ~2000 stuck: std ≈ 0.011.
        assert!((p_max - 0.4).abs() < 0.045, "stuck-at-max share {p_max}");
        let before: Vec<(f32, f32)> = xb.gp.iter().copied().zip(xb.gm.iter().copied()).collect();
        let w = Mat::from_element(200, 199, 0.1);
        xb.program(&phys, &w, &[0.1; 200], 0.0, 5);
        for e in 0..xb.pairs() {
            if xb.stuck[e] & STUCK_P != 0 {
                assert_eq!(xb.gp[e], before[e].0);
            }
            if xb.stuck[e] & STUCK_M != 0 {
                assert_eq!(xb.gm[e], before[e].1);
            }
        }
    }

    #[test]
    fn levels_quantise_programming_targets() {
        let spec = spec_with(|s| s.crossbar.levels = 5);
        let phys = Physics::new(&spec);
        let (p, m) = phys.targets(0.3);
        // Centered: 12.55 ± 3.735 → nearest of {0.1, 6.325, 12.55, 18.775, 25}.
        assert!(
            (p - 18.775).abs() < 1e-4 && (m - 6.325).abs() < 1e-4,
            "{p} {m}"
        );
    }
}
