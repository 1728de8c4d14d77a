//! Stream compaction of a block's pulsed pairs for the pulsed kernel ([`super::pulsed`]):
//! the pairs whose count is non-zero are gathered into contiguous arrays, the device pass
//! runs on those only, and its results are scattered back.
//!
//! With AVX-512 (detected at run time) 16 lanes are compacted at once with the
//! `vpcompress` / `vpexpand` instructions, else one pair at a time. Both move the same
//! values to the same places: results are bit-identical whichever runs (tested).

use super::pulsed::BLOCK;

/// The pulsed pairs of a block, gathered: the first `len` entries of each array are used.
pub(super) struct Compact {
    /// Index of each gathered pair within its block.
    pub idx: [u32; BLOCK],
    pub n: [i32; BLOCK],
    pub stuck: [u8; BLOCK],
    pub dp: [[u16; 4]; BLOCK],
    pub dm: [[u16; 4]; BLOCK],
    pub gp: [f32; BLOCK],
    pub gm: [f32; BLOCK],
    pub w: [f32; BLOCK],
}

impl Compact {
    pub fn new() -> Self {
        Self {
            idx: [0; BLOCK],
            n: [0; BLOCK],
            stuck: [0; BLOCK],
            dp: [[0; 4]; BLOCK],
            dm: [[0; 4]; BLOCK],
            gp: [0.0; BLOCK],
            gm: [0.0; BLOCK],
            w: [0.0; BLOCK],
        }
    }
}

/// A block's pairs in place: counts, stuck flags, packed devices, conductances, weights
/// (all of one length, at most [`BLOCK`]).
pub(super) struct Lanes<'a> {
    pub n: &'a [i32],
    pub stuck: &'a [u8],
    pub dp: &'a [[u16; 4]],
    pub dm: &'a [[u16; 4]],
    pub gp: &'a mut [f32],
    pub gm: &'a mut [f32],
    pub w: &'a mut [f32],
}

impl Lanes<'_> {
    fn check(&self) -> usize {
        let m = self.n.len();
        assert!(m <= BLOCK, "compact: at most one block");
        for len in [
            self.stuck.len(),
            self.dp.len(),
            self.dm.len(),
            self.gp.len(),
            self.gm.len(),
            self.w.len(),
        ] {
            assert_eq!(len, m, "compact: lanes of one length");
        }
        m
    }
}

/// Gathers the pairs of `l` with a non-zero count into `c`; returns how many. Their
/// weights are not gathered: the device pass writes every gathered pair's weight.
pub(super) fn gather(l: &Lanes<'_>, c: &mut Compact) -> usize {
    let m = l.check();
    #[cfg(target_arch = "x86_64")]
    if x86::available() {
        // SAFETY: the instructions are present (checked above) and `check` bounds the
        // lanes by BLOCK, the length of every array of `c`.
        return unsafe { x86::gather(l, m, c) };
    }
    gather_scalar(l, m, c)
}

/// Writes the first `h` gathered conductances and weights of `c` back to their pairs.
pub(super) fn scatter(c: &Compact, h: usize, l: &mut Lanes<'_>) {
    let m = l.check();
    assert!(h <= m, "compact: more gathered than lanes");
    #[cfg(target_arch = "x86_64")]
    if x86::available() {
        // SAFETY: as in `gather`; `c` was filled by `gather` over the same counts.
        return unsafe { x86::scatter(c, m, l) };
    }
    scatter_scalar(c, h, l)
}

fn gather_scalar(l: &Lanes<'_>, m: usize, c: &mut Compact) -> usize {
    let mut h = 0;
    for i in 0..m {
        c.idx[h] = i as u32;
        c.n[h] = l.n[i];
        c.stuck[h] = l.stuck[i];
        c.dp[h] = l.dp[i];
        c.dm[h] = l.dm[i];
        c.gp[h] = l.gp[i];
        c.gm[h] = l.gm[i];
        h += usize::from(l.n[i] != 0);
    }
    h
}

fn scatter_scalar(c: &Compact, h: usize, l: &mut Lanes<'_>) {
    for (j, &i) in c.idx[..h].iter().enumerate() {
        let i = i as usize;
        l.gp[i] = c.gp[j];
        l.gm[i] = c.gm[j];
        l.w[i] = c.w[j];
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::sync::OnceLock;

    use super::{BLOCK, Compact, Lanes};

    /// Whether this CPU has the AVX-512 subsets used here (F for 32/64-bit lanes, BW and
    /// VL for the masked byte load of the stuck flags).
    pub fn available() -> bool {
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vl")
        })
    }

    /// Mask of the non-zero counts among lanes `i0..i0 + 16` (lanes past `m` off).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn lanes_on(n: &[i32], i0: usize, m: usize) -> (__mmask16, __mmask16) {
        let valid: __mmask16 = if m - i0 >= 16 {
            0xFFFF
        } else {
            (1u16 << (m - i0)) - 1
        };
        // SAFETY: the masked load reads only lanes below `m`.
        let v = unsafe { _mm512_maskz_loadu_epi32(valid, n.as_ptr().add(i0).cast()) };
        (_mm512_mask_test_epi32_mask(valid, v, v), valid)
    }

    /// See [`super::gather`]. Each group of 16 lanes is compressed in registers and stored
    /// whole at the running count `h`; the stores past `h` are overwritten by the next
    /// group or lie beyond the gathered length. `h ≤ i0` and `i0 + 16 ≤ BLOCK` keep every
    /// store inside `c`'s arrays.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub unsafe fn gather(l: &Lanes<'_>, m: usize, c: &mut Compact) -> usize {
        const { assert!(BLOCK.is_multiple_of(16)) };
        let mut h = 0usize;
        let mut i0 = 0usize;
        while i0 < m {
            // SAFETY (whole loop): loads are masked to lanes below `m` (the slices'
            // length); stores write 16 lanes at h ≤ i0 ≤ BLOCK − 16 into BLOCK-long
            // arrays.
            unsafe {
                let (k, valid) = lanes_on(l.n, i0, m);
                let iota = _mm512_add_epi32(
                    _mm512_set1_epi32(i0 as i32),
                    _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                );
                let at = |p: *const i32| _mm512_maskz_loadu_epi32(valid, p.add(i0));
                let put = |dst: *mut i32, v: __m512i| {
                    _mm512_storeu_si512(dst.add(h).cast(), _mm512_maskz_compress_epi32(k, v))
                };
                put(c.idx.as_mut_ptr().cast(), iota);
                put(c.n.as_mut_ptr(), at(l.n.as_ptr()));
                put(c.gp.as_mut_ptr().cast(), at(l.gp.as_ptr().cast()));
                put(c.gm.as_mut_ptr().cast(), at(l.gm.as_ptr().cast()));
                // Stuck flags: widened to 32 bits, compressed, narrowed back.
                let s = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(
                    valid,
                    l.stuck.as_ptr().add(i0).cast(),
                ));
                _mm_storeu_si128(
                    c.stuck.as_mut_ptr().add(h).cast(),
                    _mm512_cvtepi32_epi8(_mm512_maskz_compress_epi32(k, s)),
                );
                // Packed devices: 8 bytes a lane, two groups of 8 lanes each.
                for (src, dst) in [(l.dp, &mut c.dp), (l.dm, &mut c.dm)] {
                    let mut hh = h;
                    for half in 0..2 {
                        let kh = (k >> (8 * half)) as __mmask8;
                        let vh = (valid >> (8 * half)) as __mmask8;
                        let v =
                            _mm512_maskz_loadu_epi64(vh, src.as_ptr().add(i0 + 8 * half).cast());
                        _mm512_storeu_si512(
                            dst.as_mut_ptr().add(hh).cast(),
                            _mm512_maskz_compress_epi64(kh, v),
                        );
                        hh += kh.count_ones() as usize;
                    }
                }
                h += k.count_ones() as usize;
            }
            i0 += 16;
        }
        h
    }

    /// See [`super::scatter`]: each group's gathered values are expanded back into their
    /// lanes over the lanes' own values and stored (masked to the group's pulsed lanes).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub unsafe fn scatter(c: &Compact, m: usize, l: &mut Lanes<'_>) {
        let mut j = 0usize;
        let mut i0 = 0usize;
        while i0 < m {
            // SAFETY: loads of `c` read 16 lanes at j ≤ i0 ≤ BLOCK − 16; stores to the
            // lanes are masked to pulsed lanes, all below `m`.
            unsafe {
                let (k, _) = lanes_on(l.n, i0, m);
                for (src, dst) in [
                    (c.gp.as_ptr(), l.gp.as_mut_ptr()),
                    (c.gm.as_ptr(), l.gm.as_mut_ptr()),
                    (c.w.as_ptr(), l.w.as_mut_ptr()),
                ] {
                    let v = _mm512_maskz_expand_ps(k, _mm512_loadu_ps(src.add(j)));
                    _mm512_mask_storeu_ps(dst.add(i0), k, v);
                }
                j += k.count_ones() as usize;
            }
            i0 += 16;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    /// Random lanes with about `density` of the counts non-zero.
    fn lanes(m: usize, density: f64, seed: u64) -> (Vec<i32>, Vec<u8>, Vec<[u16; 4]>, Vec<f32>) {
        let mut r = crate::rng::stream(seed, "compact");
        let n = (0..m)
            .map(|_| {
                if r.random_bool(density) {
                    let k = r.random_range(1..=5i32);
                    if r.random() { k } else { -k }
                } else {
                    0
                }
            })
            .collect();
        let s = (0..m).map(|_| r.random_range(0..16u8)).collect();
        let d = (0..m)
            .map(|_| std::array::from_fn(|_| r.random()))
            .collect();
        let g = (0..3 * m).map(|_| r.random_range(-1.0..1.0f32)).collect();
        (n, s, d, g)
    }

    #[test]
    fn gather_and_scatter_match_the_scalar_form() {
        // Every length up to a block (tails of every size), several densities.
        for m in (0..=BLOCK).step_by(7).chain([BLOCK - 1, BLOCK]) {
            for (t, density) in [0.0, 0.1, 0.4, 0.9, 1.0].into_iter().enumerate() {
                let (n, s, dp, g) = lanes(m, density, (m * 10 + t) as u64);
                let dm: Vec<[u16; 4]> = dp.iter().map(|d| [d[3], d[2], d[1], d[0]]).collect();
                let (mut g1, mut g2) = (g.clone(), g.clone());
                let (mut c1, mut c2) = (Box::new(Compact::new()), Box::new(Compact::new()));
                let (gp1, rest1) = g1.split_at_mut(m);
                let (gm1, w1) = rest1.split_at_mut(m);
                let (gp2, rest2) = g2.split_at_mut(m);
                let (gm2, w2) = rest2.split_at_mut(m);
                let (dp, dm) = (&dp[..], &dm[..]);
                let mut l1 = Lanes {
                    n: &n,
                    stuck: &s,
                    dp,
                    dm,
                    gp: gp1,
                    gm: gm1,
                    w: w1,
                };
                let mut l2 = Lanes {
                    n: &n,
                    stuck: &s,
                    dp,
                    dm,
                    gp: gp2,
                    gm: gm2,
                    w: w2,
                };
                let h1 = gather(&l1, &mut c1);
                let h2 = gather_scalar(&l2, m, &mut c2);
                assert_eq!(h1, n.iter().filter(|v| **v != 0).count());
                assert_eq!(h1, h2, "m {m} density {density}");
                assert_eq!(c1.idx[..h1], c2.idx[..h2]);
                assert_eq!(c1.n[..h1], c2.n[..h2]);
                assert_eq!(c1.stuck[..h1], c2.stuck[..h2]);
                assert_eq!(c1.dp[..h1], c2.dp[..h2]);
                assert_eq!(c1.dm[..h1], c2.dm[..h2]);
                assert_eq!(c1.gp[..h1], c2.gp[..h2]);
                assert_eq!(c1.gm[..h1], c2.gm[..h2]);
                assert!(c1.n[..h1].iter().all(|v| *v != 0));
                // New values for the gathered pairs; both scatters must write them to the
                // same lanes and leave the others alone.
                for c in [&mut c1, &mut c2] {
                    for j in 0..h1 {
                        c.gp[j] = 10.0 + j as f32;
                        c.gm[j] = 20.0 + j as f32;
                        c.w[j] = 30.0 + j as f32;
                    }
                }
                scatter(&c1, h1, &mut l1);
                scatter_scalar(&c2, h2, &mut l2);
                assert_eq!(g1, g2, "m {m} density {density}");
            }
        }
    }
}
