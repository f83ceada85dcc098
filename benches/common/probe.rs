//! The int8 compute limit of this machine, measured: the throughput of the int8 multiply-accumulate instructions
//! the kernels are built on, in independent chains with every operand in registers, in MACs per nanosecond.
//!
//! - `vpdpbusd` on 512-bit registers (AVX-512 VNNI): 64 MACs per instruction.
//! - The exact AVX2 sequence (`vpmovsxbw` + `vpmaddwd` + `vpaddd`: 16 MACs per three instructions), what an
//!   AVX2 kernel that never saturates is built on, and for reference the saturating one other engines use
//!   (`vpmaddubsw` + `vpmaddwd` + `vpaddd`: 32 MACs per three).
//!
//! A probe the CPU lacks reports `None`.
#![allow(
    unsafe_code,
    reason = "calling target-feature probes after checking the CPU has the feature"
)]

use std::hint::black_box;
use std::time::Instant;

/// Iterations of each probe's inner loop.
const ITERS: u64 = 4_000_000;

/// The best of `rounds` timings of `f`, which does `macs` multiply-accumulates, in MACs per nanosecond.
fn rate(macs: u64, rounds: usize, mut f: impl FnMut()) -> f64 {
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            macs as f64 / t.elapsed().as_nanos() as f64
        })
        .fold(0.0, f64::max)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::*;
    use std::hint::black_box;

    /// 12 independent `vpdpbusd` chains: enough to cover its latency at two per cycle.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub fn vpdpbusd(iters: u64) -> i32 {
        let (a, b) = (
            _mm512_set1_epi8(black_box(3)),
            _mm512_set1_epi8(black_box(-2)),
        );
        let mut acc = [_mm512_setzero_si512(); 12];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_dpbusd_epi32(*v, a, b);
            }
        }
        let mut s = _mm512_setzero_si512();
        for v in acc {
            s = _mm512_add_epi32(s, v);
        }
        _mm512_reduce_add_epi32(s)
    }

    /// 8 independent chains of the exact AVX2 int8 dot product: sign-extend 16 weight bytes from memory (a 1 KB
    /// buffer that stays in L1, as a kernel's weights stream), multiply-add pairs, add.
    #[target_feature(enable = "avx2")]
    pub fn vpmaddwd(iters: u64) -> i32 {
        let weights = [black_box(-3i8); 1024];
        let x = _mm256_set1_epi16(black_box(5));
        let mut acc = [_mm256_setzero_si256(); 8];
        for i in 0..iters as usize {
            let base = (i * 128) % weights.len();
            for (j, v) in acc.iter_mut().enumerate() {
                // SAFETY: `base + 16 j + 16 <= 1024`: `base` is a multiple of 128 below 1024 and `j < 8`.
                let w = unsafe { _mm_loadu_si128(weights.as_ptr().add(base + 16 * j).cast()) };
                *v = _mm256_add_epi32(*v, _mm256_madd_epi16(_mm256_cvtepi8_epi16(w), x));
            }
        }
        let mut s = _mm256_setzero_si256();
        for v in acc {
            s = _mm256_add_epi32(s, v);
        }
        _mm256_extract_epi32::<0>(s)
    }

    /// 8 independent chains of the saturating AVX2 sequence: `vpmaddubsw`, `vpmaddwd` with ones, add.
    #[target_feature(enable = "avx2")]
    pub fn vpmaddubsw(iters: u64) -> i32 {
        let (a, b) = (
            _mm256_set1_epi8(black_box(3)),
            _mm256_set1_epi8(black_box(-2)),
        );
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_si256(); 8];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm256_add_epi32(*v, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), ones));
            }
        }
        let mut s = _mm256_setzero_si256();
        for v in acc {
            s = _mm256_add_epi32(s, v);
        }
        _mm256_extract_epi32::<0>(s)
    }
}

/// The measured peaks of this machine, MACs per nanosecond.
#[derive(Debug, Clone, Copy)]
pub struct Peaks {
    pub vpdpbusd_zmm: Option<f64>,
    pub avx2_exact: Option<f64>,
    pub avx2_saturating: Option<f64>,
}

/// Measures every probe the CPU has (best of 5 runs each).
pub fn measure() -> Peaks {
    #[cfg(target_arch = "x86_64")]
    {
        let vnni = is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni");
        let avx2 = is_x86_feature_detected!("avx2");
        Peaks {
            // SAFETY: the CPU has AVX-512 F and VNNI (checked just above).
            vpdpbusd_zmm: vnni.then(|| {
                rate(12 * 64 * ITERS, 5, || {
                    black_box(unsafe { x86::vpdpbusd(ITERS) });
                })
            }),
            // SAFETY: the CPU has AVX2 (checked just above).
            avx2_exact: avx2.then(|| {
                rate(8 * 16 * ITERS, 5, || {
                    black_box(unsafe { x86::vpmaddwd(ITERS) });
                })
            }),
            // SAFETY: the CPU has AVX2 (checked just above).
            avx2_saturating: avx2.then(|| {
                rate(8 * 32 * ITERS, 5, || {
                    black_box(unsafe { x86::vpmaddubsw(ITERS) });
                })
            }),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    Peaks {
        vpdpbusd_zmm: None,
        avx2_exact: None,
        avx2_saturating: None,
    }
}
