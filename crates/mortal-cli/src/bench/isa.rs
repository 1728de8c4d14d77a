//! What this CPU's vector units deliver, measured: the f32 FMA rate of one core and,
//! where the CPU has AVX512-BF16, the rate of its bf16 dot product (`vdpbf16ps`, bf16
//! inputs with f32 accumulation), plus whether AMX tiles are usable. These decide whether
//! a reduced-precision GEMM could beat the f32 one here (issue: bf16 reads for the chip).

use std::time::Instant;

/// Peak rates of one core, GFLOP/s (a multiply-add counts 2).
#[derive(Clone, Copy, Debug, Default)]
pub struct IsaPeak {
    /// f32 FMA, 512-bit where available (else 256-bit).
    pub fma_f32: f64,
    /// `vdpbf16ps` (32 bf16 products into 16 f32 lanes per instruction), if available.
    pub dot_bf16: Option<f64>,
    /// Whether AMX-BF16 tiles are usable: CPUID reports them and the OS grants the tile
    /// state (`arch_prctl(ARCH_REQ_XCOMP_PERM)`); false under hypervisors that hide AMX.
    pub amx_usable: bool,
}

/// Independent accumulators per loop: enough to hide the instructions' latency on two
/// ports, few enough to stay in registers (24 made the compiler spill).
const ACC: usize = 16;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::ACC;

    /// Runs `iters` rounds of `ACC` independent 512-bit FMAs; returns a value that
    /// depends on all of them (so nothing is optimised away).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma512(iters: usize) -> f32 {
        let mut acc = [_mm512_setzero_ps(); ACC];
        let (a, b) = (_mm512_set1_ps(1.000_1), _mm512_set1_ps(1e-4));
        for _ in 0..iters {
            for r in acc.iter_mut() {
                *r = _mm512_fmadd_ps(a, b, *r);
            }
        }
        acc.iter().fold(0.0, |s, r| s + _mm512_reduce_add_ps(*r))
    }

    /// The same with 256-bit FMAs (CPUs without AVX-512).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma256(iters: usize) -> f32 {
        let mut acc = [_mm256_setzero_ps(); ACC];
        let (a, b) = (_mm256_set1_ps(1.000_1), _mm256_set1_ps(1e-4));
        for _ in 0..iters {
            for r in acc.iter_mut() {
                *r = _mm256_fmadd_ps(a, b, *r);
            }
        }
        let mut out = [0.0f32; 8];
        let s = acc
            .iter()
            .fold(_mm256_setzero_ps(), |s, r| _mm256_add_ps(s, *r));
        // SAFETY: `out` holds 8 f32.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), s) };
        out.iter().sum()
    }

    /// `ACC` independent `vdpbf16ps` per round.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn dot_bf16(iters: usize) -> f32 {
        let mut acc = [_mm512_setzero_ps(); ACC];
        // bf16 pairs (1.0, 1.0) and (2^-7, 2^-7).
        let a: __m512bh = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1.0), _mm512_set1_ps(1.0));
        let b: __m512bh = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.0078125), _mm512_set1_ps(0.0078125));
        for _ in 0..iters {
            for r in acc.iter_mut() {
                *r = _mm512_dpbf16_ps(*r, a, b);
            }
        }
        acc.iter().fold(0.0, |s, r| s + _mm512_reduce_add_ps(*r))
    }

    /// CPUID leaf 7 EDX bits 22 (AMX-BF16) and 24 (AMX-TILE), and the OS's grant of
    /// the tile data state (Linux `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`).
    pub fn amx_usable() -> bool {
        // SAFETY: CPUID is available on every x86-64 CPU.
        let r = __cpuid_count(7, 0);
        let cpu = (r.edx >> 22) & 1 == 1 && (r.edx >> 24) & 1 == 1;
        cpu && cfg!(target_os = "linux") && os_grants_tiles()
    }

    #[cfg(target_os = "linux")]
    fn os_grants_tiles() -> bool {
        // arch_prctl = syscall 158; ARCH_REQ_XCOMP_PERM = 0x1023; XFEATURE_XTILEDATA = 18.
        let ret: i64;
        // SAFETY: a plain system call with integer arguments; it only changes this
        // process's permission to use the AMX register state.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") 158i64 => ret,
                in("rdi") 0x1023i64,
                in("rsi") 18i64,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack)
            );
        }
        ret == 0
    }

    #[cfg(not(target_os = "linux"))]
    fn os_grants_tiles() -> bool {
        false
    }
}

/// Median of three timed runs of `f(iters)`, as GFLOP/s for `flops_per_round` per round.
fn rate(f: impl Fn(usize) -> f32, flops_per_round: f64) -> f64 {
    let iters = 2_000_000;
    std::hint::black_box(f(iters / 10));
    let mut v: Vec<f64> = (0..3)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f(iters));
            flops_per_round * iters as f64 / t.elapsed().as_secs_f64() / 1e9
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[1]
}

/// Measures this core's peaks (on the calling thread).
pub fn measure() -> IsaPeak {
    #[cfg(target_arch = "x86_64")]
    {
        let acc = ACC as f64;
        let fma_f32 = if is_x86_feature_detected!("avx512f") {
            // SAFETY: the feature was detected at run time.
            rate(|n| unsafe { x86::fma512(n) }, acc * 32.0)
        } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            rate(|n| unsafe { x86::fma256(n) }, acc * 16.0)
        } else {
            0.0
        };
        let dot_bf16 = (is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bf16"))
        .then(|| {
            // SAFETY: as above. One instruction: 16 lanes × 2 products × 2 FLOPs.
            rate(|n| unsafe { x86::dot_bf16(n) }, acc * 64.0)
        });
        IsaPeak {
            fma_f32,
            dot_bf16,
            amx_usable: x86::amx_usable(),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    IsaPeak::default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_peaks_are_measured_where_the_units_exist() {
        let p = super::measure();
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") {
            assert!(p.fma_f32 > 1.0, "{p:?}");
            assert_eq!(p.dot_bf16.is_some(), is_x86_feature_detected!("avx512bf16"));
        }
        if let Some(d) = p.dot_bf16 {
            assert!(d > 1.0, "{p:?}");
        }
    }
}
