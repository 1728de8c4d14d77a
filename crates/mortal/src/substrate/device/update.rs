//! Device update physics: how a requested weight change becomes conductance changes.
//!
//! **Pair pulses.** A signed change is realised with *pair pulses*. Under the `split`
//! scheme one pair pulse for Δw > 0 is an up-pulse on G⁺ and a down-pulse on G⁻ (the
//! reverse for Δw < 0), so each device carries half the change and the pair's common mode
//! stays near the devices' symmetry points; its nominal size is 2·dw_min (normalised
//! weight units). Under `potentiate` (PCM style) Δw > 0 up-pulses G⁺ and Δw < 0 up-pulses
//! G⁻, nominal size dw_min. The periphery converts a request to pulses with the *nominal*
//! step; each device then responds with its own step (device-to-device spread), state
//! dependence (soft bounds) and cycle-to-cycle noise, as in aihwkit where the pulse count
//! is set from the nominal dw_min.
//!
//! **Response in closed form.** n up-pulses on a soft-bounds device take G to
//! `G_hi − (G_hi − G)(1 − β_up)ⁿ` (down: `G_lo + (G − G_lo)(1 − β_down)ⁿ`). With
//! cycle-to-cycle noise each step is ×(1 + c·ξ), so the distance D to the bound evolves
//! as `D ← D·(r − β·c·ξ)`, r = 1 − β: its mean is `D₀rⁿ` and its variance exactly
//! `D₀²((r² + β²c²)ⁿ − r²ⁿ)` (each step's noise is contracted by the later pulses); it is
//! drawn as one Gaussian with that variance. Constant-step devices move `n·s` with variance
//! `c²·n·s²`. The result is clipped to the device's bounds. So an update costs O(1) per
//! device, whatever the pulse count.
//!
//! **Weight decay** `W ← (1 − δ)W` is realised at device level as a relaxation of each
//! pair toward its own common-mode point, `G± ← G± ∓ δ(G⁺ − G⁻)/2` (like aihwkit's
//! `decay_weights`, which relaxes each device toward its reset point): exact and
//! noiseless, no pulses. It applies to the weights, not the biases (as the trait says).
//! Stuck devices do not move. Small per-step decays are accumulated and applied as one
//! relaxation once they add up to `update.decay_batch` (see [`Crossbar::take_decay`]), so
//! a step without pulses writes nothing.

use rand::Rng as _;
use rayon::prelude::*;

use super::crossbar::{CHUNK, Crossbar, Device, Devices, Physics, STUCK_M, STUCK_P, write};
use super::normal::Normals;
use super::pulsed::beyond_threshold;
use super::response;
use super::spec::{PairScheme, Response};
use crate::linalg::{Mat, Op, gemm, row_sums};
use crate::rng::{Rng, derive, indexed};

/// A random source for the update kernels: u32 draws from halves of u64 words, and
/// batched standard normals.
struct Draws {
    normals: Normals,
    buf: u64,
    half: bool,
}

impl Draws {
    fn new(rng: Rng) -> Self {
        Self {
            normals: Normals::new(rng),
            buf: 0,
            half: false,
        }
    }

    #[inline(always)]
    fn u32(&mut self) -> u32 {
        if self.half {
            self.half = false;
            (self.buf >> 32) as u32
        } else {
            self.buf = self.normals.rng.next_u64();
            self.half = true;
            self.buf as u32
        }
    }

    #[inline(always)]
    fn normal(&mut self) -> f32 {
        self.normals.next()
    }
}

/// xⁿ by binary powering (inline, no libm call).
#[inline(always)]
fn powu(mut x: f32, mut n: u32) -> f32 {
    let mut r = 1.0f32;
    while n > 0 {
        if n & 1 != 0 {
            r *= x;
        }
        x *= x;
        n >>= 1;
    }
    r
}

/// `n` pulses on one device in closed form (see the module docs). Returns the new
/// conductance, inside the device's bounds.
#[inline]
pub(crate) fn pulses(
    g: f32,
    dev: &Device,
    up: bool,
    n: u32,
    response: Response,
    c2c: f32,
    z: impl FnOnce() -> f32,
) -> f32 {
    let (g_new, var) = match response {
        Response::SoftBounds => {
            // The distance to the bound D evolves as D ← D·(r − β·c·ξ) per pulse, so after
            // n pulses E[D] = D₀rⁿ and E[D²] = D₀²(r² + β²c²)ⁿ, exactly.
            let beta = if up { dev.up } else { dev.down };
            let dist = if up { dev.hi - g } else { g - dev.lo };
            if n == 1 {
                // The common case, without powers.
                let s = beta * dist;
                let sd = s * c2c;
                let g_new = if up { g + s } else { g - s };
                let g_new = if sd != 0.0 { g_new + sd * z() } else { g_new };
                return g_new.clamp(dev.lo, dev.hi);
            }
            let r = 1.0 - beta;
            let rn = powu(r, n);
            let g_new = if up {
                dev.hi - dist * rn
            } else {
                dev.lo + dist * rn
            };
            let var = if c2c > 0.0 {
                let bc = beta * c2c;
                dist * dist * (powu(r * r + bc * bc, n) - rn * rn)
            } else {
                0.0
            };
            (g_new, var)
        }
        _ => {
            // Constant step (the shaped responses go through `pulses_shaped`).
            let s = if up { dev.up } else { dev.down };
            let d = n as f32 * s;
            let g_new = if up { g + d } else { g - d };
            (g_new, n as f32 * (c2c * s) * (c2c * s))
        }
    };
    let g_new = if var > 0.0 {
        g_new + var.sqrt() * z()
    } else {
        g_new
    };
    g_new.clamp(dev.lo, dev.hi)
}

/// `n` pulses on one device of a shaped response (linear, exp, pow or piecewise step),
/// one by one, each exactly as aihwkit applies it ([`response::pulse_once`]) in aihwkit's
/// weight units ([`Physics::device_units`]); `ext`: the device's slopes or exponents,
/// `z` a standard normal per pulse for the cycle-to-cycle factor 1 + c2c·ξ. No closed
/// form exists for these shapes, so the cost grows with `n`.
pub(crate) fn pulses_shaped(
    g: f32,
    dev: &Device,
    ext: [f32; 2],
    up: bool,
    n: u32,
    ph: &Physics,
    mut z: impl FnMut() -> f32,
) -> f32 {
    if n == 0 {
        return g;
    }
    let (gc, half) = ph.device_units();
    let d = dev.drawn((gc, half), ext);
    let mut w = (g - gc) / half;
    for _ in 0..n {
        let noise = if ph.c2c > 0.0 {
            1.0 + ph.c2c * z()
        } else {
            1.0
        };
        w = response::pulse_once(ph.response, &ph.shape, &d, w, up, noise);
    }
    (gc + w * half).clamp(dev.lo, dev.hi)
}

/// Shared read-only context of a kernel.
struct Ctx<'a> {
    phys: &'a Physics,
    dp: &'a Devices,
    dm: &'a Devices,
    xp: &'a [[f32; 2]],
    xm: &'a [[f32; 2]],
    stuck: &'a [u8],
    scheme: PairScheme,
    /// Weight units per µS.
    k: f32,
    clock: f32,
    prog_exact: bool,
}

/// Mutable views of one chunk of pairs.
pub(super) struct Part<'a> {
    pub base: usize,
    pub gp: &'a mut [f32],
    pub gm: &'a mut [f32],
    pub w: &'a mut [f32],
    pub chi: &'a mut [f32],
    pub twp: &'a mut [f32],
    pub twm: &'a mut [f32],
}

/// Splits `v` into chunks of `len`, or yields `count` empty slices when `v` is empty.
fn split<T>(v: &mut [T], len: usize, count: usize) -> Vec<&mut [T]> {
    if v.is_empty() {
        (0..count).map(|_| <&mut [T]>::default()).collect()
    } else {
        v.chunks_mut(len).collect()
    }
}

pub(super) fn parts(xb: &mut Crossbar, len: usize) -> (Vec<Part<'_>>, Ctx0<'_>) {
    let n = xb.gp.len();
    let count = n.div_ceil(len);
    let gp = xb.gp.chunks_mut(len);
    let gm = xb.gm.chunks_mut(len);
    let w = xb.w.as_mut_slice().chunks_mut(len);
    let chi = split(&mut xb.chi, len, count);
    let twp = split(&mut xb.tw_p, len, count);
    let twm = split(&mut xb.tw_m, len, count);
    let v = gp
        .zip(gm)
        .zip(w)
        .zip(chi)
        .zip(twp.into_iter().zip(twm))
        .enumerate()
        .map(|(c, ((((gp, gm), w), chi), (twp, twm)))| Part {
            base: c * len,
            gp,
            gm,
            w,
            chi,
            twp,
            twm,
        })
        .collect();
    (
        v,
        Ctx0 {
            dp: &xb.dp,
            dm: &xb.dm,
            xp: &xb.xp,
            xm: &xb.xm,
            stuck: &xb.stuck,
        },
    )
}

/// Pulses an update applied, per device (for the operation counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PulseTally {
    /// Conductance-increasing pulses.
    pub up: u64,
    /// Conductance-decreasing pulses (incremental modes).
    pub down: u64,
    /// Single RESET pulses (`reset-only`).
    pub reset: u64,
    /// The most pulses any pair received in one go (`pulsed`-style kernels).
    pub max_count: u64,
    /// Devices re-programmed by a refresh (write-and-verify).
    pub writes: u64,
}

impl PulseTally {
    /// Field-wise sum (maximum of `max_count`).
    pub fn merge(a: Self, b: Self) -> Self {
        Self {
            up: a.up + b.up,
            down: a.down + b.down,
            reset: a.reset + b.reset,
            max_count: a.max_count.max(b.max_count),
            writes: a.writes + b.writes,
        }
    }
}

/// The immutable fields borrowed alongside the parts.
pub(super) struct Ctx0<'a> {
    pub dp: &'a Devices,
    pub dm: &'a Devices,
    pub xp: &'a [[f32; 2]],
    pub xm: &'a [[f32; 2]],
    pub stuck: &'a [u8],
}

impl Part<'_> {
    /// Applies `n` signed pair pulses to local pair `k` (global `e`), then refreshes the
    /// pair if a device crossed the refresh threshold.
    #[inline]
    fn pair_pulses(
        &mut self,
        ctx: &Ctx<'_>,
        k: usize,
        n: i32,
        r: &mut Draws,
        tally: &mut PulseTally,
    ) {
        let e = self.base + k;
        let s = if ctx.stuck.is_empty() {
            0
        } else {
            ctx.stuck[e]
        };
        let up = n > 0;
        let cnt = n.unsigned_abs();
        let c64 = u64::from(cnt);
        let ph = ctx.phys;
        let (resp, c2c) = (ph.response, ph.c2c);
        let (mut p, mut m) = (self.gp[k], self.gm[k]);
        let (mut wrote_p, mut wrote_m) = (false, false);
        let (fp, fm) = (s & STUCK_P == 0, s & STUCK_M == 0);
        let ext = |x: &[[f32; 2]]| if x.is_empty() { [0.0; 2] } else { x[e] };
        // n pulses on G⁺ (`plus`) or G⁻ in direction `dir`.
        let mut go = |g: f32, plus: bool, dir: bool| {
            let (dev, x) = if plus {
                (ctx.dp.get(e), ext(ctx.xp))
            } else {
                (ctx.dm.get(e), ext(ctx.xm))
            };
            if resp.is_shaped() {
                pulses_shaped(g, &dev, x, dir, cnt, ph, || r.normal())
            } else {
                pulses(g, &dev, dir, cnt, resp, c2c, || r.normal())
            }
        };
        match ctx.scheme {
            PairScheme::Split => {
                if fp {
                    p = go(p, true, up);
                    wrote_p = true;
                    *if up { &mut tally.up } else { &mut tally.down } += c64;
                }
                if fm {
                    m = go(m, false, !up);
                    wrote_m = true;
                    *if up { &mut tally.down } else { &mut tally.up } += c64;
                }
            }
            PairScheme::Potentiate => {
                if up && fp {
                    p = go(p, true, true);
                    wrote_p = true;
                    tally.up += c64;
                } else if !up && fm {
                    m = go(m, false, true);
                    wrote_m = true;
                    tally.up += c64;
                }
            }
            PairScheme::Depress => {
                if up && fm {
                    m = go(m, false, false);
                    wrote_m = true;
                    tally.down += c64;
                } else if !up && fp {
                    p = go(p, true, false);
                    wrote_p = true;
                    tally.down += c64;
                }
            }
        }
        let thr = ph.refresh;
        if thr > 0.0 {
            let (dp, dm) = (&ctx.dp.get(e), &ctx.dm.get(e));
            let beyond = |g: f32, d: &Device| beyond_threshold(ctx.scheme, thr, g, d);
            if (fp && beyond(p, dp)) || (fm && beyond(m, dm)) {
                // Read the pair and write the same weight back from the mapping's start.
                let (tp, tm) = ph.targets((p - m) / ph.range);
                if fp {
                    p = write(ph, tp, dp, ctx.prog_exact, &mut r.normals.rng);
                    wrote_p = true;
                    tally.writes += 1;
                }
                if fm {
                    m = write(ph, tm, dm, ctx.prog_exact, &mut r.normals.rng);
                    wrote_m = true;
                    tally.writes += 1;
                }
            }
        }
        if wrote_p && !self.twp.is_empty() {
            self.twp[k] = ctx.clock;
        }
        if wrote_m && !self.twm.is_empty() {
            self.twm[k] = ctx.clock;
        }
        self.gp[k] = p;
        self.gm[k] = m;
        self.w[k] = ctx.k * (p - m);
    }

    /// The decay relaxation of local pair `k` (no write-back of `w`).
    #[inline(always)]
    pub(super) fn decay(&mut self, stuck: &[u8], k: usize, decay: f32) {
        let s = if stuck.is_empty() {
            0
        } else {
            stuck[self.base + k]
        };
        let h = 0.5 * decay * (self.gp[k] - self.gm[k]);
        if s & STUCK_P == 0 {
            self.gp[k] -= h;
        }
        if s & STUCK_M == 0 {
            self.gm[k] += h;
        }
    }
}

/// What the host asks of one layer, as a flat request over the pairs: weights `dw`
/// (column-major out × inp, network units before `scale`) then biases `db`.
pub(crate) struct Request<'a> {
    pub dw: &'a [f32],
    pub db: &'a [f32],
    pub scale: f32,
    pub decay: f32,
}

/// Exact float update (`ideal` mode): `W ← (1 − δ)W + s·dW`, `b ← b + s·db`, with the
/// effective weights as the primary copy (bit-identical to the digital network), then the
/// conductances follow (each free device takes half the change; devices unbounded).
pub(crate) fn ideal(xb: &mut Crossbar, phys: &Physics, u: IdealUpdate<'_>) {
    let (out, inp) = (xb.out, xb.inp);
    let nw = out * inp;
    match u {
        IdealUpdate::Dense {
            dw,
            db,
            scale,
            decay,
        } => {
            crate::linalg::axpby(&mut xb.w.as_mut_slice()[..nw], 1.0 - decay, scale, dw);
            for (bi, d) in xb.w.as_mut_slice()[nw..].iter_mut().zip(db) {
                *bi += scale * d;
            }
        }
        IdealUpdate::Outer {
            x,
            d,
            scale,
            decay,
            db_buf,
            bias,
        } => {
            gemm(
                scale,
                d,
                Op::N,
                x,
                Op::T,
                1.0 - decay,
                &mut xb.w.columns_mut(0, inp),
            );
            if bias {
                row_sums(d, db_buf);
                for (bi, d) in xb.w.as_mut_slice()[nw..].iter_mut().zip(db_buf.iter()) {
                    *bi += scale * d;
                }
            }
        }
    }
    sync_conductances(xb, phys);
}

/// The two forms of an ideal update.
pub(crate) enum IdealUpdate<'a> {
    Dense {
        dw: &'a [f32],
        db: &'a [f32],
        scale: f32,
        decay: f32,
    },
    Outer {
        x: &'a Mat,
        d: &'a Mat,
        scale: f32,
        decay: f32,
        db_buf: &'a mut [f32],
        /// Whether the biases change too (Σ d).
        bias: bool,
    },
}

/// Sets the conductances from the (primary) effective weights, keeping each pair's common
/// mode; a stuck partner is compensated by the free device; a fully stuck pair keeps its
/// weight.
fn sync_conductances(xb: &mut Crossbar, phys: &Physics) {
    let inv_k = phys.range / xb.gain;
    let k = xb.gain / phys.range;
    let (parts, c0) = parts(xb, CHUNK);
    let stuck = c0.stuck;
    parts.into_par_iter().for_each(|part| {
        for kk in 0..part.gp.len() {
            let e = part.base + kk;
            let s = if stuck.is_empty() { 0 } else { stuck[e] };
            let diff = part.w[kk] * inv_k;
            let (p, m) = (part.gp[kk], part.gm[kk]);
            match (s & STUCK_P != 0, s & STUCK_M != 0) {
                (false, false) => {
                    let c = 0.5 * (p + m);
                    part.gp[kk] = c + 0.5 * diff;
                    part.gm[kk] = c - 0.5 * diff;
                }
                (true, false) => part.gm[kk] = p - diff,
                (false, true) => part.gp[kk] = m + diff,
                (true, true) => part.w[kk] = k * (p - m),
            }
        }
    });
}

/// Scratch buffers of the stochastic-pulse update.
#[derive(Clone, Debug, Default)]
pub(crate) struct PulseTrains {
    /// Input-line trains, (inp + 1) per sample (bias line last).
    x: Vec<u64>,
    /// Output-line trains, `out` per sample.
    d: Vec<u64>,
    /// Sign bit per line: 1 if negative.
    xs: Vec<u8>,
    ds: Vec<u8>,
    /// The output lines with a non-empty train, per sample (CSR: `active[start[s]..
    /// start[s + 1]]`), so samples with sparse errors (ReLU zeros, one-hot transfers)
    /// skip silent lines; the pulses applied, and their order, are the same.
    active: Vec<u32>,
    start: Vec<usize>,
}

/// Bernoulli(p) train of `bl` bits.
#[inline]
fn train(p: f32, bl: u32, r: &mut Draws) -> u64 {
    if p <= 0.0 {
        return 0;
    }
    let thr = if p >= 1.0 {
        u32::MAX
    } else {
        (p * 4_294_967_296.0) as u32
    };
    let mut m = 0u64;
    for b in 0..bl {
        if r.u32() < thr || p >= 1.0 {
            m |= 1 << b;
        }
    }
    m
}

/// aihwkit-style rank-1 stochastic pulse update of `scale·Σ_k d_k·x_kᵀ` (bias line x = 1):
/// per sample, every input line i and output line j emits a train of `bl` pulses with
/// probabilities p_i = c_x|x_i| and q_j = c_d|d_j| (update management: c_x, c_d balance
/// the two sides so max p = max q); coincidences n_ij = popcount(X_i & D_j) are pair
/// pulses in the direction sign(scale·x_i·d_j). E[n_ij]·step·gain = |scale·x_i·d_j| while
/// no probability exceeds 1 (beyond that it saturates: an under-update, as in hardware).
/// Samples are applied one after another; `decay` first, as a relaxation. `cap` > 0 caps
/// each pair's coincidences per sample at `cap` pulses (`reset-only`: single pulses);
/// `bias` false leaves the bias line silent (weights only).
#[allow(clippy::too_many_arguments)]
pub(crate) fn stochastic_pulse(
    xb: &mut Crossbar,
    phys: &Physics,
    scheme: PairScheme,
    pair_step: f32,
    bl: u32,
    x: &Mat,
    d: &Mat,
    scale: f32,
    decay: f32,
    clock: f64,
    seed: u64,
    cap: u32,
    bias: bool,
    trains: &mut PulseTrains,
) -> PulseTally {
    let (out, inp) = (xb.out, xb.inp);
    let b = x.ncols();
    assert_eq!(x.nrows(), inp, "update: x rows");
    assert_eq!(d.shape(), (out, b), "update: d shape");
    let nw = out * inp;
    let k = xb.k(phys);
    let decay = xb.take_decay(phys, decay);
    let lines = inp + 1;
    trains.x.resize(lines * b, 0);
    trains.xs.resize(lines * b, 0);
    trains.d.resize(out * b, 0);
    trains.ds.resize(out * b, 0);
    // Expected coincidences per unit |x·d| per bit.
    let a = scale.abs() / (xb.gain * pair_step * bl as f32);
    let neg_scale = scale < 0.0;
    let seed_trains = derive(seed, "trains");
    trains
        .x
        .par_chunks_mut(lines)
        .zip(trains.xs.par_chunks_mut(lines))
        .zip(
            trains
                .d
                .par_chunks_mut(out)
                .zip(trains.ds.par_chunks_mut(out)),
        )
        .enumerate()
        .for_each(|(s, ((xm, xs), (dm, ds)))| {
            let mut r = Draws::new(indexed(seed_trains, s as u64));
            let xc = x.column(s);
            let dc = d.column(s);
            let mx = xc.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            let md = dc.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            if md == 0.0 || a == 0.0 {
                xm.fill(0);
                dm.fill(0);
                return;
            }
            let cx = (a * md / mx).sqrt();
            let cd = (a * mx / md).sqrt();
            for i in 0..lines {
                let v = if i < inp {
                    xc[i]
                } else {
                    f32::from(u8::from(bias))
                };
                xm[i] = train(cx * v.abs(), bl, &mut r);
                xs[i] = u8::from(v < 0.0);
            }
            for j in 0..out {
                dm[j] = train(cd * dc[j].abs(), bl, &mut r);
                ds[j] = u8::from((dc[j] < 0.0) != neg_scale);
            }
        });
    trains.active.clear();
    trains.start.clear();
    trains.start.push(0);
    for s in 0..b {
        let dm = &trains.d[s * out..(s + 1) * out];
        trains
            .active
            .extend((0..out as u32).filter(|i| dm[*i as usize] != 0));
        trains.start.push(trains.active.len());
    }
    let cols_per_chunk = (CHUNK / out.max(1)).max(1);
    let len = cols_per_chunk * out;
    let (parts, c0) = parts(xb, len);
    let ctx = Ctx {
        phys,
        dp: c0.dp,
        dm: c0.dm,
        xp: c0.xp,
        xm: c0.xm,
        stuck: c0.stuck,
        scheme,
        k,
        clock: clock as f32,
        prog_exact: phys.prog_is_exact(),
    };
    let seed_pulses = derive(seed, "pulses");
    let tr = &*trains;
    let tally = parts.into_par_iter().map(|mut part| {
        let mut tally = PulseTally::default();
        let chunk = part.base / len;
        let mut r = Draws::new(indexed(seed_pulses, chunk as u64));
        let n = part.gp.len();
        if decay > 0.0 {
            for kk in 0..n {
                if part.base + kk < nw {
                    part.decay(ctx.stuck, kk, decay);
                    part.w[kk] = k * (part.gp[kk] - part.gm[kk]);
                }
            }
        }
        let j0 = part.base / out;
        let cols = n / out;
        for s in 0..b {
            for jj in 0..cols {
                let j = j0 + jj;
                let xmask = tr.x[s * lines + j];
                if xmask == 0 {
                    continue;
                }
                let xneg = tr.xs[s * lines + j];
                for &i in &tr.active[tr.start[s]..tr.start[s + 1]] {
                    let i = i as usize;
                    let mut c = (xmask & tr.d[s * out + i]).count_ones() as i32;
                    if cap > 0 {
                        c = c.min(cap as i32);
                    }
                    if c > 0 {
                        let negative = (xneg ^ tr.ds[s * out + i]) != 0;
                        let n = if negative { -c } else { c };
                        part.pair_pulses(&ctx, jj * out + i, n, &mut r, &mut tally);
                    }
                }
            }
        }
        tally
    });
    tally.reduce(PulseTally::default, PulseTally::merge)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_distr::{Distribution, StandardNormal};

    fn dev() -> Device {
        Device {
            lo: 0.0,
            hi: 10.0,
            up: 0.05,
            down: 0.1,
        }
    }

    #[test]
    fn soft_bounds_closed_form_matches_a_pulse_train() {
        let d = dev();
        let mut g = 3.0f32;
        for _ in 0..37 {
            g += d.up * (d.hi - g);
        }
        let closed = pulses(3.0, &d, true, 37, Response::SoftBounds, 0.0, || 0.0);
        assert!((g - closed).abs() < 1e-4, "{g} vs {closed}");
        let mut g = 7.0f32;
        for _ in 0..12 {
            g -= d.down * (g - d.lo);
        }
        let closed = pulses(7.0, &d, false, 12, Response::SoftBounds, 0.0, || 0.0);
        assert!((g - closed).abs() < 1e-4);
        // Zero pulses change nothing.
        assert_eq!(
            pulses(4.0, &d, true, 0, Response::SoftBounds, 3.0, || 1.0),
            4.0
        );
    }

    #[test]
    fn constant_step_moves_linearly_and_clips() {
        let d = Device {
            up: 0.3,
            down: 0.2,
            ..dev()
        };
        let g = pulses(1.0, &d, true, 10, Response::ConstantStep, 0.0, || 0.0);
        assert!((g - 4.0).abs() < 1e-5);
        let g = pulses(1.0, &d, false, 3, Response::ConstantStep, 0.0, || 0.0);
        assert!((g - 0.4).abs() < 1e-5);
        assert_eq!(
            pulses(9.0, &d, true, 100, Response::ConstantStep, 0.0, || 0.0),
            10.0
        );
        assert_eq!(
            pulses(1.0, &d, false, 100, Response::ConstantStep, 0.0, || 0.0),
            0.0
        );
    }

    #[test]
    fn cycle_to_cycle_noise_has_the_summed_variance_of_a_pulse_train() {
        // Simulate pulse by pulse with each step ×(1 + c·ξ) and compare the spread of the
        // end point with the closed form's Gaussian, for a soft-bounds device.
        let d = dev();
        let c = 0.5f32;
        let n = 20u32;
        let trials = 20_000;
        let mut rng = crate::rng::stream(1, "c2c");
        let mut ends = Vec::with_capacity(trials);
        let mut closed = Vec::with_capacity(trials);
        for _ in 0..trials {
            let mut g = 2.0f32;
            for _ in 0..n {
                let z: f32 = StandardNormal.sample(&mut rng);
                g += d.up * (d.hi - g) * (1.0 + c * z);
            }
            ends.push(f64::from(g));
            let z: f32 = StandardNormal.sample(&mut rng);
            closed.push(f64::from(pulses(
                2.0,
                &d,
                true,
                n,
                Response::SoftBounds,
                c,
                || z,
            )));
        }
        let stats = |v: &[f64]| {
            let m = v.iter().sum::<f64>() / v.len() as f64;
            (
                m,
                (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt(),
            )
        };
        let (m1, s1) = stats(&ends);
        let (m2, s2) = stats(&closed);
        // Mean and variance of the closed form are exact; only the shape differs (a product
        // of Gaussians vs one Gaussian). σ ≈ 0.34: each std estimate has sampling std
        // σ/√(2·20000) ≈ 0.5 % of σ, the means σ/√20000 ≈ 0.0024.
        let want = 8.0 - 8.0 * 0.95f64.powi(20) + 2.0;
        let var = 64.0 * ((0.95f64.powi(2) + 0.025f64.powi(2)).powi(20) - 0.95f64.powi(40));
        assert!(
            (s2 / var.sqrt() - 1.0).abs() < 0.025,
            "closed-form std {s2} vs {}",
            var.sqrt()
        );
        assert!((s1 / s2 - 1.0).abs() < 0.03, "std {s1} vs {s2}");
        assert!(
            (m1 - want).abs() < 0.012 && (m2 - want).abs() < 0.012,
            "mean {m1}, {m2} vs {want}"
        );
    }
}
