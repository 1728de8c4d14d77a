//! The `pulsed` and `mixed-precision` update kernel: the host's requested change of every
//! pair becomes a signed pair-pulse count (stochastically rounded, or whole pulses out of
//! a digital accumulator), and each device responds in closed form (see the `update`
//! module for the physics).
//!
//! **Vectorised.** Pairs are processed in blocks of [`BLOCK`] as structure-of-arrays
//! stages (counts, normals, per-device response, write-back) with no data-dependent
//! branches, so each stage compiles to SIMD; the stages are multiversioned (AVX-512 /
//! AVX2 / SSE4 chosen at run time). Rust never contracts `a·b + c` into an FMA and every
//! operation used is exactly rounded, so every instruction set gives bit-identical
//! results. A block whose counts are all zero is skipped; in a sparse block (under ¾ of
//! the pairs pulsed) the pulsed pairs are first gathered ([`super::compact`]) so the
//! device pass computes those only. Each stage keeps its f32 work apart from the 64-bit
//! random words so that it vectorises at the full f32 width.
//!
//! **Prefetch.** Each block asks the caches for the state of the block two ahead, so its
//! loads overlap the arithmetic of the blocks before (a hint: no effect on results).
//!
//! **Counter-based randomness.** The stochastic rounding of pair `e` and its two
//! cycle-to-cycle normals come from word `e` of a SplitMix64 stream (Steele, Lea & Flood,
//! OOPSLA 2014) seeded per update and purpose, so they depend on the pair index only: not
//! on chunking, block size or thread count.
//!
//! **Variance without cancellation.** For soft bounds the closed-form variance
//! `D₀²((r² + β²c²)ⁿ − r²ⁿ)` is a difference of nearly equal numbers when β·c is small
//! (ReRAM-like β ~ 10⁻³); it is computed as `D₀²·r²ⁿ·((1 + q)ⁿ − 1)`, q = β²c²/r², with
//! the binomial series when n·q < 0.01 and the direct difference otherwise.

use multiversion::multiversion;
use rayon::prelude::*;

use super::compact::{self, Compact, Lanes};
use super::crossbar::{CHUNK, Crossbar, Device, Devices, Physics, STUCK_M, STUCK_P, write};
use super::fastmath::{exp, expm1, ln1p};
use super::normal;
use super::spec::{PairScheme, Response, UpdateMode};
use super::update::{Part, PulseTally, Request, parts, pulses_shaped};
use crate::rng::{counter_word as word, derive, indexed};
use rand_distr::Distribution as _;

/// Pairs per block of the kernel.
pub(super) const BLOCK: usize = 256;

/// How many blocks ahead the kernel prefetches its state: 2 measured best of 0, 1, 2 and 4
/// on the FF 3×1000 `reram` step (update 6.41–6.55 ms against 6.84–7.15 without, three
/// alternating rounds; `harsh`, whose update is arithmetic-bound, unchanged).
const PREFETCH_BLOCKS: usize = 2;

/// Asks the caches for every line of `v`: a hint that changes no result.
#[inline(always)]
fn prefetch<T>(v: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let (p, bytes) = (v.as_ptr().cast::<i8>(), std::mem::size_of_val(v));
        for off in (0..bytes).step_by(64) {
            // SAFETY: `off` stays inside `v`, and a prefetch never faults or writes.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.add(off)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

/// One stochastically rounded signed count: the whole part of |q|, plus one more with
/// probability equal to the fraction (`u` is a 24-bit uniform).
#[inline(always)]
fn round_one(s: f32, per_pulse: f32, u: u32) -> i32 {
    let q = s * per_pulse;
    let a = q.abs();
    // Truncation is floor for a ≥ 0.
    let whole = a as i32;
    let frac = a - whole as f32;
    let k = whole + i32::from((u as i32 as f32) < frac * 16_777_216.0);
    if q < 0.0 { -k } else { k }
}

/// Signed pulse counts of a block by stochastic rounding of `src·per_pulse`. Pair `e`
/// (`e0` even) takes 24 bits of one half of word ⌊e/2⌋.
#[multiversion(targets = "simd")]
fn round_counts(src: &[f32], per_pulse: f32, seed: u64, e0: u64, n: &mut [i32]) {
    debug_assert!(e0.is_multiple_of(2), "blocks start at even pairs");
    let len = src.len();
    assert!(len <= BLOCK, "round_counts: at most one block");
    let n = &mut n[..len];
    // Two stages: the 64-bit words (8 lanes), then the f32 rounding at the full f32 width
    // (a loop mixing u64 and f32 would run both at the u64 width).
    let mut u = [0u32; BLOCK];
    for (k, h) in u[..len.div_ceil(2) * 2].chunks_exact_mut(2).enumerate() {
        let w = word(seed, e0 / 2 + k as u64);
        h[0] = (w as u32) >> 8;
        h[1] = ((w >> 32) as u32) >> 8;
    }
    for ((c, s), u) in n.iter_mut().zip(src).zip(&u[..len]) {
        *c = round_one(*s, per_pulse, *u);
    }
}

/// Whole pulses out of the digital accumulators `chi` (mixed precision).
fn accumulate_counts(src: &[f32], to_norm: f32, pair_step: f32, chi: &mut [f32], n: &mut [i32]) {
    let inv_step = 1.0 / pair_step;
    for ((s, x), c) in src.iter().zip(chi.iter_mut()).zip(n.iter_mut()) {
        let acc = *x + s * to_norm;
        let k = (acc * inv_step) as i32;
        *x = acc - k as f32 * pair_step;
        *c = k;
    }
}

/// One device: `cnt` pulses up (`up`) or down from conductance `g`, with standard normal
/// `z` for the cycle-to-cycle noise; `lo`, `hi` are its bounds and `par` its step in the
/// direction pulsed. `SOFT`: soft-bounds response, else constant step; `FEW` promises
/// `cnt` < 16 (cheaper powers). No pulse: `g` unchanged. Branch-free, so loops over it
/// vectorise; the choices are compile-time so each loop computes only its own form.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn respond<const SOFT: bool, const FEW: bool>(
    c2c: f32,
    g: f32,
    lo: f32,
    hi: f32,
    par: f32,
    cnt: u32,
    up: bool,
    z: f32,
) -> f32 {
    let n = cnt as f32;
    let sgn = if up { 1.0 } else { -1.0 };
    let (mean, var) = if SOFT {
        {
            // D = distance to the bound approached; E[D] = D₀rⁿ, excess variance
            // D₀²r²ⁿ((1 + q)ⁿ − 1) with q = β²c²/r² (see the module docs).
            let bound = if up { hi } else { lo };
            let dist = sgn * (bound - g);
            let (r, b) = (1.0 - par, par * c2c);
            let (rr, bb) = (r * r, b * b);
            let q = if rr > 0.0 { bb / rr } else { f32::INFINITY };
            let (rn, excess) = if FEW {
                // Fewer than 16 pulses: rⁿ and (r² + b²)ⁿ by four squarings.
                let (rn, p1) = pow4(r, rr + bb, cnt);
                let nq = n * q;
                let series = nq * (1.0 + 0.5 * (n - 1.0) * q * (1.0 + (n - 2.0) * q / 3.0));
                let rn2 = rn * rn;
                (rn, if nq < 0.01 { rn2 * series } else { p1 - rn2 })
            } else {
                let rn = exp(n * ln1p(-par));
                (rn, (rn * rn) * expm1(n * ln1p(q)))
            };
            (bound - sgn * dist * rn, dist * dist * excess)
        }
    } else {
        let cs = c2c * par;
        (g + sgn * n * par, n * cs * cs)
    };
    // max/min, not clamp: clamp's assertion would stop vectorisation. A NaN variance
    // (β = 1: r = 0) counts as 0.
    let moved = (mean + var.max(0.0).sqrt() * z).max(lo).min(hi);
    if cnt > 0 { moved } else { g }
}

/// One side's devices (G⁺ or G⁻) of a block respond: their packed fields are first
/// unpacked to f32 (lo, hi, the step of the direction pulsed), so the response loop is
/// f32-only and vectorises at the full f32 width.
#[inline(always)]
fn side<const SOFT: bool, const FEW: bool>(
    c2c: f32,
    g: &mut [f32],
    dev: &[[u16; 4]],
    unit: [f32; 4],
    cnt: &[u32; BLOCK],
    up: &[bool; BLOCK],
    z: &[f32; BLOCK],
) {
    let m = g.len();
    let (mut lo, mut hi, mut par) = ([0.0f32; BLOCK], [0.0f32; BLOCK], [0.0f32; BLOCK]);
    for i in 0..m {
        let d = dev[i];
        lo[i] = f32::from(d[0]) * unit[0];
        hi[i] = f32::from(d[1]) * unit[1];
        par[i] = if up[i] {
            f32::from(d[2]) * unit[2]
        } else {
            f32::from(d[3]) * unit[3]
        };
    }
    for i in 0..m {
        g[i] = respond::<SOFT, FEW>(c2c, g[i], lo[i], hi[i], par[i], cnt[i], up[i], z[i]);
    }
}

/// (xⁿ, yⁿ) for n < 16, branch-free.
#[inline(always)]
fn pow4(mut x: f32, mut y: f32, n: u32) -> (f32, f32) {
    let (mut xn, mut yn) = (1.0f32, 1.0f32);
    for bit in 0..4 {
        let on = (n >> bit) & 1 != 0;
        xn = if on { xn * x } else { xn };
        yn = if on { yn * y } else { yn };
        x *= x;
        y *= y;
    }
    (xn, yn)
}

/// Lane indices 0, 1, … of a dense block.
static IOTA: [u32; BLOCK] = {
    let mut a = [0u32; BLOCK];
    let mut i = 0;
    while i < BLOCK {
        a[i] = i as u32;
        i += 1;
    }
    a
};

/// The device pass of one block's lanes `io` (all its pairs, or its pulsed pairs
/// gathered): each pair's signed count becomes per-device pulses (scheme, stuck devices),
/// each device responds, and conductances and weights are written back. The pair of
/// lane `i`, `e0 + lane[i]`, draws its two normals from that word of `seed_c2c`.
#[multiversion(targets = "simd")]
#[allow(clippy::too_many_arguments)]
fn device_pass(
    lane: &[u32],
    io: Lanes<'_>,
    scheme: PairScheme,
    response: Response,
    c2c: f32,
    units: ([f32; 4], [f32; 4]),
    k: f32,
    seed_c2c: u64,
    e0: u64,
) {
    // A bitwise-or reduction, not an early-exit `all`: it vectorises.
    let few = io.n.iter().fold(0u32, |a, v| a | v.unsigned_abs()) < 16;
    let args = PassArgs {
        scheme,
        c2c,
        units,
        k,
        seed_c2c,
        e0,
    };
    match (response, few) {
        (Response::SoftBounds, true) => pass::<true, true>(lane, io, args),
        (Response::SoftBounds, false) => pass::<true, false>(lane, io, args),
        // Constant step (shaped responses take `shaped_pass` instead).
        _ => pass::<false, true>(lane, io, args),
    }
}

/// The block-invariant arguments of [`pass`].
#[derive(Clone, Copy)]
struct PassArgs {
    scheme: PairScheme,
    c2c: f32,
    units: ([f32; 4], [f32; 4]),
    k: f32,
    seed_c2c: u64,
    e0: u64,
}

/// Pulses (count, direction) of G⁺ and G⁻ for `cnt` pair pulses that increase the weight
/// (`pos`) or decrease it, under the pair scheme.
#[inline(always)]
fn moves(scheme: PairScheme, cnt: u32, pos: bool) -> (u32, bool, u32, bool) {
    match scheme {
        PairScheme::Split => (cnt, pos, cnt, !pos),
        PairScheme::Potentiate => (
            if pos { cnt } else { 0 },
            true,
            if pos { 0 } else { cnt },
            true,
        ),
        PairScheme::Depress => (
            if pos { 0 } else { cnt },
            false,
            if pos { cnt } else { 0 },
            false,
        ),
    }
}

/// The loop of [`device_pass`] for one response form.
#[inline(always)]
fn pass<const SOFT: bool, const FEW: bool>(lane: &[u32], io: Lanes<'_>, a: PassArgs) {
    let PassArgs {
        scheme,
        c2c,
        units,
        k,
        seed_c2c,
        e0,
    } = a;
    let m = io.n.len();
    let (lane, stuck, dp, dm) = (&lane[..m], &io.stuck[..m], &io.dp[..m], &io.dm[..m]);
    let (gp, gm, w) = (&mut io.gp[..m], &mut io.gm[..m], &mut io.w[..m]);
    // Three stages, so that only the first runs at the u64 width and the f32 work at the
    // full width: the words, their normals, the responses.
    let (mut zp, mut zm) = ([0.0f32; BLOCK], [0.0f32; BLOCK]);
    if c2c > 0.0 {
        let (mut lo, mut hi) = ([0u32; BLOCK], [0u32; BLOCK]);
        for ((l, h), e) in lo[..m].iter_mut().zip(&mut hi[..m]).zip(lane) {
            let w = word(seed_c2c, e0 + u64::from(*e));
            (*l, *h) = (w as u32, (w >> 32) as u32);
        }
        for i in 0..m {
            (zp[i], zm[i]) = normal::pair_of_halves(lo[i], hi[i]);
        }
    }
    // Per-device pulses (count; direction as 0/1), then each side's response in its own
    // loop (fewer live values per loop).
    let (mut cp, mut cm) = ([0u32; BLOCK], [0u32; BLOCK]);
    let (mut up_p, mut up_m) = ([false; BLOCK], [false; BLOCK]);
    for i in 0..m {
        let nk = io.n[i];
        let (cnt, pos) = (nk.unsigned_abs(), nk > 0);
        let (c_p, u_p, c_m, u_m) = moves(scheme, cnt, pos);
        let s = stuck[i];
        cp[i] = if s & STUCK_P == 0 { c_p } else { 0 };
        cm[i] = if s & STUCK_M == 0 { c_m } else { 0 };
        (up_p[i], up_m[i]) = (u_p, u_m);
    }
    side::<SOFT, FEW>(c2c, &mut gp[..], dp, units.0, &cp, &up_p, &zp);
    side::<SOFT, FEW>(c2c, &mut gm[..], dm, units.1, &cm, &up_m, &zm);
    for i in 0..m {
        let hit = io.n[i] != 0;
        w[i] = if hit { k * (gp[i] - gm[i]) } else { w[i] };
    }
}

/// The device pass of one block for a shaped response (linear, exp, pow, piecewise
/// step): scalar, pulse by pulse ([`pulses_shaped`]); pair `e` draws its per-pulse
/// normals (G⁺'s, then G⁻'s) from its own stream `indexed(seed_c2c, e)`, so results do
/// not depend on chunking or threads.
#[allow(clippy::too_many_arguments)]
fn shaped_pass(
    phys: &Physics,
    scheme: PairScheme,
    (dp, dm): (&Devices, &Devices),
    (xp, xm): (&[[f32; 2]], &[[f32; 2]]),
    (n, stuck): (&[i32], &[u8]),
    (gp, gm, w): (&mut [f32], &mut [f32], &mut [f32]),
    k: f32,
    seed_c2c: u64,
    e0: usize,
) {
    for (i, &nk) in n.iter().enumerate() {
        if nk == 0 {
            continue;
        }
        let e = e0 + i;
        let (cp, up_p, cm, up_m) = moves(scheme, nk.unsigned_abs(), nk > 0);
        let s = stuck[i];
        let cp = if s & STUCK_P == 0 { cp } else { 0 };
        let cm = if s & STUCK_M == 0 { cm } else { 0 };
        let mut rng = indexed(seed_c2c, e as u64);
        let mut z = || -> f32 { rand_distr::StandardNormal.sample(&mut rng) };
        let p = pulses_shaped(gp[i], &dp.get(e), xp[e], up_p, cp, phys, &mut z);
        let q = pulses_shaped(gm[i], &dm.get(e), xm[e], up_m, cm, phys, &mut z);
        gp[i] = p;
        gm[i] = q;
        w[i] = k * (p - q);
    }
}

/// Adds the per-device pulses of a block's signed pair counts to `t` (stuck devices get
/// none): which device moves which way follows the scheme; `reset` counts them as the
/// single RESET pulses of the `reset-only` mode. Branch-free, so it vectorises.
#[multiversion(targets = "simd")]
fn tally_block(n: &[i32], stuck: &[u8], scheme: PairScheme, reset: bool, t: &mut PulseTally) {
    // Pulses on G⁺ and G⁻ for increases (n > 0) and decreases (n < 0) of the weight.
    let (mut p_inc, mut m_inc, mut p_dec, mut m_dec, mut max) = (0u64, 0u64, 0u64, 0u64, 0u32);
    for (&k, &s) in n.iter().zip(stuck) {
        let c = k.unsigned_abs();
        let inc = u32::from(k > 0);
        let (fp, fm) = (u32::from(s & STUCK_P == 0), u32::from(s & STUCK_M == 0));
        p_inc += u64::from(c * fp * inc);
        m_inc += u64::from(c * fm * inc);
        p_dec += u64::from(c * fp * (1 - inc));
        m_dec += u64::from(c * fm * (1 - inc));
        max = max.max(c);
    }
    t.max_count = t.max_count.max(u64::from(max));
    match scheme {
        // Increase: G⁺ up, G⁻ down; decrease: the reverse.
        PairScheme::Split => {
            t.up += p_inc + m_dec;
            t.down += m_inc + p_dec;
        }
        // Increase: G⁺ up; decrease: G⁻ up.
        PairScheme::Potentiate => t.up += p_inc + m_dec,
        // Increase: G⁻ down; decrease: G⁺ down.
        PairScheme::Depress => {
            if reset {
                t.reset += m_inc + p_dec;
            } else {
                t.down += m_inc + p_dec;
            }
        }
    }
}

/// Prefetches the state of local pairs `ahead..ahead + m` of `part` that the kernel will
/// read: request, conductances, weights, packed devices, and the stuck flags, drift clocks
/// and accumulators where the chip has them.
fn prefetch_block(
    part: &Part<'_>,
    req: &Request<'_>,
    (dp, dm, stuck): (&Devices, &Devices, &[u8]),
    ahead: usize,
    m: usize,
) {
    let (nw, a0) = (req.dw.len(), part.base + ahead);
    let local = ahead..ahead + m;
    prefetch(&req.dw[a0.min(nw)..(a0 + m).min(nw)]);
    prefetch(&part.gp[local.clone()]);
    prefetch(&part.gm[local.clone()]);
    prefetch(&part.w[local.clone()]);
    prefetch(&dp.packed()[a0..a0 + m]);
    prefetch(&dm.packed()[a0..a0 + m]);
    if !stuck.is_empty() {
        prefetch(&stuck[a0..a0 + m]);
    }
    for v in [&part.chi, &part.twp, &part.twm] {
        if !v.is_empty() {
            prefetch(&v[local.clone()]);
        }
    }
}

/// The requests of pairs `e0..e0 + m` (weights then biases; copied into `seam` only for the
/// block that straddles the two).
#[inline]
fn block_request<'a>(
    req: &'a Request<'_>,
    nw: usize,
    e0: usize,
    m: usize,
    seam: &'a mut [f32; BLOCK],
) -> &'a [f32] {
    if e0 + m <= nw {
        &req.dw[e0..e0 + m]
    } else if e0 >= nw {
        &req.db[e0 - nw..e0 - nw + m]
    } else {
        for (i, s) in seam[..m].iter_mut().enumerate() {
            let e = e0 + i;
            *s = if e < nw { req.dw[e] } else { req.db[e - nw] };
        }
        &seam[..m]
    }
}

/// Pulsed, mixed-precision or reset-only update of every pair: one parallel pass over
/// fixed chunks of [`CHUNK`] pairs, in blocks (see the module docs). Returns the pulses
/// applied (per device) when `count` is set.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pulsed(
    xb: &mut Crossbar,
    phys: &Physics,
    scheme: PairScheme,
    pair_step: f32,
    req: &Request<'_>,
    clock: f64,
    seed: u64,
    count: bool,
) -> PulseTally {
    let nw = xb.out * xb.inp;
    assert_eq!(req.dw.len(), nw, "update: dw shape");
    assert_eq!(req.db.len(), xb.out, "update: db length");
    let mixed = phys.mode == UpdateMode::MixedPrecision;
    let reset = phys.mode == UpdateMode::ResetOnly;
    let decay = xb.take_decay(phys, req.decay);
    // Normalised change per unit of request, and pulses per normalised unit.
    let to_norm = req.scale / xb.gain;
    let per_pulse = to_norm / pair_step;
    let k = xb.k(phys);
    let (s_round, s_c2c, s_refresh) = (
        derive(seed, "round"),
        derive(seed, "c2c"),
        derive(seed, "refresh"),
    );
    let prog_exact = phys.prog_is_exact();
    let clock = clock as f32;
    let (parts, c0) = parts(xb, CHUNK);
    let (dp, dm, stuck_all) = (c0.dp, c0.dm, c0.stuck);
    let (xp, xm) = (c0.xp, c0.xm);
    let tally = parts.into_par_iter().map(|mut part| {
        let mut tally = PulseTally::default();
        let len = part.gp.len();
        // The decay relaxation (rare: see `take_decay`), weights only.
        if decay > 0.0 {
            for kk in 0..len.min(nw.saturating_sub(part.base)) {
                part.decay(stuck_all, kk, decay);
                part.w[kk] = k * (part.gp[kk] - part.gm[kk]);
            }
        }
        let mut seam = [0.0f32; BLOCK];
        let mut c = Compact::new();
        let mut n = [0i32; BLOCK];
        for b0 in (0..len).step_by(BLOCK) {
            let m = BLOCK.min(len - b0);
            let e0 = part.base + b0;
            // Ask for the state of the block after next while this one computes (the
            // hardware prefetchers alone left the first loads of each block waiting).
            let ahead = b0 + PREFETCH_BLOCKS * BLOCK;
            if ahead < len {
                prefetch_block(
                    &part,
                    req,
                    (dp, dm, stuck_all),
                    ahead,
                    BLOCK.min(len - ahead),
                );
            }
            let src = block_request(req, nw, e0, m, &mut seam);
            if mixed {
                let chi = &mut part.chi[b0..b0 + m];
                accumulate_counts(src, to_norm, pair_step, chi, &mut n[..m]);
            } else {
                round_counts(src, per_pulse, s_round, e0 as u64, &mut n[..m]);
            }
            if reset {
                n[..m].iter_mut().for_each(|v| *v = (*v).clamp(-1, 1));
            }
            let h = n[..m].iter().filter(|v| **v != 0).count();
            if h == 0 {
                continue;
            }
            let stuck = if stuck_all.is_empty() {
                &[][..]
            } else {
                &stuck_all[e0..e0 + m]
            };
            let zeros = [0u8; BLOCK];
            let stuck = if stuck.is_empty() { &zeros[..m] } else { stuck };
            if count {
                tally_block(&n[..m], stuck, scheme, reset, &mut tally);
            }
            let (resp, c2c) = (phys.response, phys.c2c);
            if resp.is_shaped() {
                let gs = (
                    &mut part.gp[b0..b0 + m],
                    &mut part.gm[b0..b0 + m],
                    &mut part.w[b0..b0 + m],
                );
                shaped_pass(
                    phys,
                    scheme,
                    (dp, dm),
                    (xp, xm),
                    (&n[..m], stuck),
                    gs,
                    k,
                    s_c2c,
                    e0,
                );
            } else {
                let (pp, pm) = (&dp.packed()[e0..e0 + m], &dm.packed()[e0..e0 + m]);
                let units = (dp.unit(), dm.unit());
                // Pulsed pairs of the block; a sparse block is compacted first so the device
                // pass computes only those (same per-pair draws either way).
                let mut lanes = Lanes {
                    n: &n[..m],
                    stuck,
                    dp: pp,
                    dm: pm,
                    gp: &mut part.gp[b0..b0 + m],
                    gm: &mut part.gm[b0..b0 + m],
                    w: &mut part.w[b0..b0 + m],
                };
                if 4 * h >= 3 * m {
                    device_pass(
                        &IOTA[..m],
                        lanes,
                        scheme,
                        resp,
                        c2c,
                        units,
                        k,
                        s_c2c,
                        e0 as u64,
                    );
                } else {
                    let h = compact::gather(&lanes, &mut c);
                    let gathered = Lanes {
                        n: &c.n[..h],
                        stuck: &c.stuck[..h],
                        dp: &c.dp[..h],
                        dm: &c.dm[..h],
                        gp: &mut c.gp[..h],
                        gm: &mut c.gm[..h],
                        w: &mut c.w[..h],
                    };
                    let lane = &c.idx[..h];
                    device_pass(
                        lane, gathered, scheme, resp, c2c, units, k, s_c2c, e0 as u64,
                    );
                    compact::scatter(&c, h, &mut lanes);
                }
            }
            // Write times (drift clocks) of devices that received pulses: branch-free
            // selects, so the loops vectorise.
            let free = |i: usize, bit: u8| stuck[i] & bit == 0;
            let written = |nk: i32, s: u8, bit: u8| {
                let moved = match scheme {
                    PairScheme::Split => true,
                    PairScheme::Potentiate => (nk > 0) == (bit == STUCK_P),
                    PairScheme::Depress => (nk > 0) == (bit == STUCK_M),
                };
                (nk != 0) & (s & bit == 0) & moved
            };
            for (tw, bit) in [(&mut part.twp, STUCK_P), (&mut part.twm, STUCK_M)] {
                if tw.is_empty() {
                    continue;
                }
                for ((t, &nk), &s) in tw[b0..b0 + m].iter_mut().zip(&n[..m]).zip(stuck) {
                    *t = if written(nk, s, bit) { clock } else { *t };
                }
            }
            // Refresh: a pulsed pair with a free device beyond the threshold is read and
            // rewritten from the mapping's start (rare; scalar).
            if phys.refresh > 0.0 {
                let thr = phys.refresh;
                for i in (0..m).filter(|&i| n[i] != 0) {
                    let e = e0 + i;
                    let (devp, devm) = (dp.get(e), dm.get(e));
                    let (p, q) = (part.gp[b0 + i], part.gm[b0 + i]);
                    let beyond = |g: f32, d: &Device| beyond_threshold(scheme, thr, g, d);
                    let (fp, fm) = (free(i, STUCK_P), free(i, STUCK_M));
                    if !((fp && beyond(p, &devp)) || (fm && beyond(q, &devm))) {
                        continue;
                    }
                    if count {
                        tally.writes += u64::from(fp) + u64::from(fm);
                    }
                    let mut rng = indexed(s_refresh, e as u64);
                    let (tp, tm) = phys.targets((p - q) / phys.range);
                    if fp {
                        part.gp[b0 + i] = write(phys, tp, &devp, prog_exact, &mut rng);
                        if !part.twp.is_empty() {
                            part.twp[b0 + i] = clock;
                        }
                    }
                    if fm {
                        part.gm[b0 + i] = write(phys, tm, &devm, prog_exact, &mut rng);
                        if !part.twm.is_empty() {
                            part.twm[b0 + i] = clock;
                        }
                    }
                    part.w[b0 + i] = k * (part.gp[b0 + i] - part.gm[b0 + i]);
                }
            }
        }
        tally
    });
    tally.reduce(PulseTally::default, PulseTally::merge)
}

/// Whether a device sits beyond the refresh threshold `thr` of its own range: above it
/// for schemes that raise conductances, below (1 − thr) for `depress`.
#[inline]
pub(super) fn beyond_threshold(scheme: PairScheme, thr: f32, g: f32, d: &Device) -> bool {
    match scheme {
        PairScheme::Depress => (g - d.lo) < (1.0 - thr) * (d.hi - d.lo),
        _ => (g - d.lo) > thr * (d.hi - d.lo),
    }
}

/// The memory traffic of a [`pulsed`] update without its physics, for `mortal bench`: in
/// the same parallel chunks and blocks, it reads the request and every pair's state that
/// the dense path reads (both conductances, both devices' packed fields, the weight cache,
/// stuck bits and write clocks where the chip has them) and writes what it writes, with
/// arithmetic that leaves every value as it was (the request only enters multiplied by
/// zero). The time it takes is what no update kernel over this state layout can go below.
pub(crate) fn traffic_floor(xb: &mut Crossbar, req: &Request<'_>) {
    let nw = xb.out * xb.inp;
    assert_eq!(req.dw.len(), nw, "traffic_floor: dw shape");
    assert_eq!(req.db.len(), xb.out, "traffic_floor: db length");
    let (parts, c0) = parts(xb, CHUNK);
    let (pp, pm, stuck_all) = (c0.dp.packed(), c0.dm.packed(), c0.stuck);
    parts.into_par_iter().for_each(|part| {
        let len = part.gp.len();
        let mut seam = [0.0f32; BLOCK];
        for b0 in (0..len).step_by(BLOCK) {
            let m = BLOCK.min(len - b0);
            let e0 = part.base + b0;
            let src = block_request(req, nw, e0, m, &mut seam);
            // +0 for every finite request, yet it depends on every byte read; subtracting it
            // keeps every value, signed zeros included.
            let mut zero = [0.0f32; BLOCK];
            for (i, z) in zero[..m].iter_mut().enumerate() {
                let (a, b) = (pp[e0 + i], pm[e0 + i]);
                let bits = u32::from(a[0] ^ a[1] ^ a[2] ^ a[3] ^ b[0] ^ b[1] ^ b[2] ^ b[3]);
                *z = (src[i] * 0.0 * bits as f32).abs();
            }
            if !stuck_all.is_empty() {
                for (z, s) in zero[..m].iter_mut().zip(&stuck_all[e0..e0 + m]) {
                    *z *= f32::from(*s);
                }
            }
            let (gp, gm, w) = (
                &mut part.gp[b0..b0 + m],
                &mut part.gm[b0..b0 + m],
                &mut part.w[b0..b0 + m],
            );
            for i in 0..m {
                gp[i] -= zero[i];
                gm[i] -= zero[i];
                w[i] -= zero[i];
            }
            for tw in [&mut *part.twp, &mut *part.twm] {
                if !tw.is_empty() {
                    for (t, z) in tw[b0..b0 + m].iter_mut().zip(&zero[..m]) {
                        *t -= *z;
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::super::crossbar::{Device, Devices};
    use super::super::update::pulses;
    use super::*;

    /// [`super::respond`] of a device given by its packed fields, unpacked as [`side`] does.
    #[allow(clippy::too_many_arguments)]
    fn respond<const SOFT: bool, const FEW: bool>(
        c2c: f32,
        g: f32,
        d: [u16; 4],
        unit: [f32; 4],
        cnt: u32,
        up: bool,
        z: f32,
    ) -> f32 {
        let (lo, hi) = (f32::from(d[0]) * unit[0], f32::from(d[1]) * unit[1]);
        let par = if up {
            f32::from(d[2]) * unit[2]
        } else {
            f32::from(d[3]) * unit[3]
        };
        super::respond::<SOFT, FEW>(c2c, g, lo, hi, par, cnt, up, z)
    }

    /// Packs devices as the crossbar does; returns the packed fields, their units and the
    /// devices as the kernel will see them.
    fn packed(devs: &[Device]) -> (Vec<[u16; 4]>, [f32; 4], Vec<Device>) {
        let d = Devices::pack(devs);
        let seen = (0..devs.len()).map(|e| d.get(e)).collect();
        (d.packed().to_vec(), d.unit(), seen)
    }

    /// `m` devices with bounds near [0, 10] µS and up/down steps drawn from `steps`.
    fn random_devices(
        rng: &mut crate::rng::Rng,
        m: usize,
        steps: std::ops::Range<f32>,
    ) -> Vec<Device> {
        use rand::RngExt;
        (0..m)
            .map(|_| Device {
                lo: rng.random_range(0.0..1.0),
                hi: rng.random_range(9.0..10.0),
                up: rng.random_range(steps.clone()),
                down: rng.random_range(steps.clone()),
            })
            .collect()
    }

    #[test]
    fn block_response_matches_the_scalar_closed_form() {
        // Random states, counts 0..40 and directions; both responses. Large β·c keeps the
        // scalar form's variance free of cancellation, so both must agree closely.
        let m = 200;
        let mut rng = crate::rng::stream(3, "kernel");
        use rand::RngExt;
        let devs = random_devices(&mut rng, m, 0.01..0.1);
        let (p, unit, seen) = packed(&devs);
        let g: Vec<f32> = (0..m).map(|_| rng.random_range(1.0..9.0)).collect();
        let cnt: Vec<u32> = (0..m).map(|_| rng.random_range(0..40)).collect();
        let up: Vec<bool> = (0..m).map(|_| rng.random()).collect();
        let z: Vec<f32> = (0..m).map(|_| rng.random_range(-2.0..2.0)).collect();
        for (response, few) in [
            (Response::SoftBounds, true),
            (Response::SoftBounds, false),
            (Response::ConstantStep, true),
        ] {
            for i in 0..m {
                let out = [match (response, few && cnt[i] < 16) {
                    (Response::SoftBounds, true) => {
                        respond::<true, true>(0.5, g[i], p[i], unit, cnt[i], up[i], z[i])
                    }
                    (Response::SoftBounds, false) => {
                        respond::<true, false>(0.5, g[i], p[i], unit, cnt[i], up[i], z[i])
                    }
                    _ => respond::<false, true>(0.5, g[i], p[i], unit, cnt[i], up[i], z[i]),
                }];
                let i0 = 0;
                let want = pulses(g[i], &seen[i], up[i], cnt[i], response, 0.5, || z[i]);
                assert!(
                    (out[i0] - want).abs() <= 1e-4 * want.abs().max(1.0),
                    "{response:?} (few {few}) lane {i}: {} vs {want} (n = {})",
                    out[i0],
                    cnt[i]
                );
            }
        }
    }

    #[test]
    fn small_step_variance_is_free_of_cancellation() {
        // β = 1e-3, c = 0.3: one pulse has sd β·c·D exactly; n pulses about √n of it.
        // Both the few-pulse (series) and many-pulse (exp/ln) paths.
        let d = Device {
            lo: 0.0,
            hi: 100.0,
            up: 1e-3,
            down: 1e-3,
        };
        let (p, unit, seen) = packed(&[d]);
        for (n, few) in [(1u32, true), (7, true), (7, false), (40, false)] {
            let at = |z| {
                if few {
                    respond::<true, true>(0.3, 40.0, p[0], unit, n, true, z)
                } else {
                    respond::<true, false>(0.3, 40.0, p[0], unit, n, true, z)
                }
            };
            let (lo, hi) = (at(0.0), at(1.0));
            let sd = f64::from(hi - lo);
            let dist = f64::from(seen[0].hi - 40.0);
            let beta = f64::from(seen[0].up);
            let r = 1.0 - beta;
            let want = dist
                * ((r * r + (beta * 0.3).powi(2)).powi(n as i32) - r.powi(2 * n as i32)).sqrt();
            assert!(
                (sd / want - 1.0).abs() < 2e-3,
                "n {n} (few {few}): sd {sd} vs {want}"
            );
        }
    }

    #[test]
    fn counts_round_stochastically_and_do_not_depend_on_the_block_start() {
        // 0.3 pulses per pair: P(1) = 0.3; signs follow the request.
        let src = vec![0.3f32; BLOCK];
        let neg = vec![-2.5f32; BLOCK];
        let mut total = 0i64;
        let mut n = [0i32; BLOCK];
        for b in 0..100u64 {
            round_counts(&src, 1.0, 9, b * BLOCK as u64, &mut n);
            total += n.iter().map(|v| i64::from(*v)).sum::<i64>();
        }
        let mean = total as f64 / (100 * BLOCK) as f64;
        // sd of the mean: √(0.21 / 25600) ≈ 0.003.
        assert!((mean - 0.3).abs() < 0.012, "mean pulses {mean}");
        round_counts(&neg, 1.0, 9, 0, &mut n);
        assert!(n.iter().all(|v| *v == -2 || *v == -3));
        // Pair e draws the same word whatever block it falls in.
        let mut a = [0i32; BLOCK];
        let mut b = [0i32; 8];
        round_counts(&src, 1.0, 9, 0, &mut a);
        round_counts(&src[..8], 1.0, 9, 100, &mut b);
        assert_eq!(&a[100..108], &b[..]);
        // An odd-length block too.
        round_counts(&src[..7], 1.0, 9, 100, &mut b[..7]);
        assert_eq!(&a[100..107], &b[..7]);
    }

    #[test]
    fn dispatched_kernel_equals_the_baseline_build_bit_for_bit() {
        // `device_pass` runs the best instruction set of this CPU; the loop below is the
        // same arithmetic compiled for the baseline target. Their bits must agree.
        use rand::RngExt;
        let m = BLOCK;
        let mut rng = crate::rng::stream(5, "isa");
        let devs = random_devices(&mut rng, m, 0.001..0.05);
        let (p, unit, _) = packed(&devs);
        let n: Vec<i32> = (0..m).map(|_| rng.random_range(-20..20)).collect();
        let stuck: Vec<u8> = (0..m)
            .map(|i| if i % 17 == 0 { STUCK_P } else { 0 })
            .collect();
        let g0: Vec<f32> = (0..m).map(|_| rng.random_range(1.0..9.0)).collect();
        for response in [Response::SoftBounds, Response::ConstantStep] {
            let (mut gp, mut gm, mut w) = (g0.clone(), g0.clone(), vec![0.5f32; m]);
            let io = Lanes {
                n: &n,
                stuck: &stuck,
                dp: &p,
                dm: &p,
                gp: &mut gp,
                gm: &mut gm,
                w: &mut w,
            };
            device_pass(
                &IOTA,
                io,
                PairScheme::Split,
                response,
                0.7,
                (unit, unit),
                0.3,
                77,
                1000,
            );
            for i in 0..m {
                let (cnt, pos) = (n[i].unsigned_abs(), n[i] > 0);
                let cp = if stuck[i] & STUCK_P == 0 { cnt } else { 0 };
                let (zp, zm) = normal::pair(word(77, 1000 + i as u64));
                let soft = response == Response::SoftBounds;
                let f = |g, c, up, z| match soft {
                    true => respond::<true, false>(0.7, g, p[i], unit, c, up, z),
                    false => respond::<false, true>(0.7, g, p[i], unit, c, up, z),
                };
                let want_p = f(g0[i], cp, pos, zp);
                let want_m = f(g0[i], cnt, !pos, zm);
                assert_eq!(
                    gp[i].to_bits(),
                    want_p.to_bits(),
                    "{response:?} G+ lane {i}"
                );
                assert_eq!(
                    gm[i].to_bits(),
                    want_m.to_bits(),
                    "{response:?} G- lane {i}"
                );
            }
        }
    }
}
