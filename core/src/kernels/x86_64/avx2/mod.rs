//! AVX2 kernels (x86-64-v3): `dense-dot` Dense and Conv1d with `vpmaddwd` on 256-bit registers, the
//! requantization in 64-bit lanes, the input quantizer, max pooling and global average pooling.
//!
//! # Why this shape
//!
//! AVX2 has no unsigned-by-signed byte dot product that cannot saturate (`vpmaddubsw` saturates its 16-bit pair
//! sums), so the exact int8 product goes through 16 bits: 16 weight bytes (4 channels x 4 inputs of one step) are
//! sign-extended with `vpmovsxbw` and multiplied with the 4 inputs of the group, sign-extended and repeated, by
//! `vpmaddwd`, which gives each channel two partial sums (`w0 x0 + w1 x1`, `w2 x2 + w3 x3`) in adjacent i32 lanes.
//! The partial sums are added once per block at the end (`vphaddd`), so each group costs one sign extension, one
//! multiply-add and one add per 16 multiply-adds, with no dependency between groups longer than an add.
//! The inputs stay signed, so these kernels use the plain bias (not `dense-dot`'s second one).
#![cfg_attr(
    not(feature = "dense-dot"),
    allow(dead_code, reason = "some helpers serve only the `dense-dot` kernels")
)]
#![allow(
    clippy::indexing_slicing,
    reason = "every index is checked against a length the kernel checked first"
)]

use core::arch::x86_64::*;

#[cfg(feature = "dense-dot")]
pub(super) mod dot;

use crate::plan::{OutQuant, Window};
use crate::requant::QuantMultiplier;

/// The output zero point and clamp, broadcast to 64-bit lanes.
pub(super) struct Clamp {
    zp: __m256i,
    lo: __m256i,
    hi: __m256i,
}

impl Clamp {
    #[target_feature(enable = "avx2")]
    pub(super) fn new(q: &OutQuant) -> Clamp {
        Clamp {
            zp: _mm256_set1_epi64x(i64::from(q.zp)),
            lo: _mm256_set1_epi64x(i64::from(q.act_min)),
            hi: _mm256_set1_epi64x(i64::from(q.act_max)),
        }
    }
}

/// The requantization of 8 accumulators (bias included; channel `j` in lane `j`) with their multipliers and
/// right shifts (8 i32 each): `clamp(round_shift(acc * m, s) + zp, lo, hi)`, exactly `requant::requantize`, as
/// 8 bytes in a little-endian u64.
///
/// As in the AVX-512 kernel, but AVX2 has no variable arithmetic shift or compare-and-select of 64-bit lanes:
/// `floor(t / 2^s)` is `!((!t) >> s)` with a logical shift for negative `t`, and the clamps are compares and
/// blends.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn requant8(acc: __m256i, mult: __m256i, shift: __m256i, k: &Clamp) -> u64 {
    let low32 = _mm256_set1_epi64x(0xFFFF_FFFF);
    let one = _mm256_set1_epi64x(1);
    let zero = _mm256_setzero_si256();
    let round = |p: __m256i, s: __m256i| {
        let half = _mm256_sllv_epi64(one, _mm256_sub_epi64(s, one));
        let t = _mm256_add_epi64(_mm256_add_epi64(p, half), _mm256_cmpgt_epi64(zero, p));
        let sign = _mm256_cmpgt_epi64(zero, t);
        let y = _mm256_xor_si256(_mm256_srlv_epi64(_mm256_xor_si256(t, sign), s), sign);
        let y = _mm256_add_epi64(y, k.zp);
        let y = _mm256_blendv_epi8(y, k.lo, _mm256_cmpgt_epi64(k.lo, y));
        _mm256_blendv_epi8(y, k.hi, _mm256_cmpgt_epi64(y, k.hi))
    };
    let even = round(_mm256_mul_epi32(acc, mult), _mm256_and_si256(shift, low32));
    let odd = round(
        _mm256_mul_epi32(_mm256_srli_epi64::<32>(acc), _mm256_srli_epi64::<32>(mult)),
        _mm256_srli_epi64::<32>(shift),
    );
    // Both lie in [-128, 127]; interleave the even and odd channels back, then narrow (the packs cannot saturate).
    let y = _mm256_blend_epi32::<0b1010_1010>(even, _mm256_slli_epi64::<32>(odd));
    let b = _mm256_packs_epi16(_mm256_packs_epi32(y, y), _mm256_packs_epi32(y, y));
    let lanes = _mm_unpacklo_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256::<1>(b));
    _mm_cvtsi128_si64(lanes) as u64
}

/// Loads up to 32 bytes from the start of `bytes`, zero-filling what is missing.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn load32(bytes: &[u8]) -> __m256i {
    if let Some(b) = bytes.first_chunk::<32>() {
        // SAFETY: `b` is 32 readable bytes; the load is unaligned.
        return unsafe { _mm256_loadu_si256(b.as_ptr().cast()) };
    }
    let mut buf = [0u8; 32];
    for (d, &s) in buf.iter_mut().zip(bytes) {
        *d = s;
    }
    // SAFETY: `buf` is 32 readable bytes; the load is unaligned.
    unsafe { _mm256_loadu_si256(buf.as_ptr().cast()) }
}

/// Loads up to 8 bytes from the start of `bytes` (zero-filled) into the low half of a register.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn load8(bytes: &[u8]) -> __m128i {
    let mut buf = [0u8; 8];
    for (d, &s) in buf.iter_mut().zip(bytes) {
        *d = s;
    }
    _mm_cvtsi64_si128(i64::from_le_bytes(buf))
}

/// The static input quantizer, 8 features at a time, with the IEEE operations of
/// `generic::quantize::quantize`; returns false, doing nothing, if `features` is short.
///
/// # Safety
///
/// The CPU must have AVX2 (the `Isa` token proves it).
#[target_feature(enable = "avx2")]
pub(super) fn quantize(
    q: &OutQuant,
    coefficients: &[u8],
    features: &[f32],
    out: &mut [u8],
) -> bool {
    let f = coefficients.len() / 8;
    if f == 0 || features.len() < out.len() || !out.len().is_multiple_of(f) {
        return false;
    }
    let (a, b) = coefficients.split_at(4 * f);
    let nan_value = _mm256_set1_epi32(i32::from(q.zp.clamp(q.act_min, q.act_max)));
    let (lo, hi) = (
        _mm256_set1_epi32(i32::from(q.act_min)),
        _mm256_set1_epi32(i32::from(q.act_max)),
    );
    let (min_v, max_v) = (_mm256_set1_ps(-129.0), _mm256_set1_ps(128.0));
    let (half, neg_half) = (_mm256_set1_ps(0.5), _mm256_set1_ps(-0.5));
    let lane_f32 = |v: &[u8], i: usize| {
        let mut buf = [0u8; 32];
        for (d, &s) in buf.iter_mut().zip(v.get(4 * i..).unwrap_or(&[])) {
            *d = s;
        }
        _mm256_castsi256_ps(load32(&buf))
    };
    for (row_out, row_in) in out.chunks_exact_mut(f).zip(features.chunks_exact(f)) {
        let mut i = 0;
        while i < f {
            let n = (f - i).min(8);
            let mut xs = [0.0f32; 8];
            for (d, &s) in xs.iter_mut().zip(row_in.get(i..).unwrap_or(&[])) {
                *d = s;
            }
            // SAFETY: `xs` is 8 readable f32; the load is unaligned.
            let xv = unsafe { _mm256_loadu_ps(xs.as_ptr()) };
            let v = _mm256_add_ps(_mm256_mul_ps(xv, lane_f32(a, i)), lane_f32(b, i));
            let nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
            let c = _mm256_min_ps(_mm256_max_ps(v, min_v), max_v);
            let t = _mm256_cvttps_epi32(c);
            let frac = _mm256_sub_ps(c, _mm256_cvtepi32_ps(t));
            // A true compare is all ones (-1): subtracting it adds 1.
            let up = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GE_OQ>(frac, half));
            let down = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LE_OQ>(frac, neg_half));
            let r = _mm256_add_epi32(_mm256_sub_epi32(t, up), down);
            let r = _mm256_min_epi32(_mm256_max_epi32(r, lo), hi);
            let r = _mm256_blendv_epi8(r, nan_value, nan);
            let p = _mm256_packs_epi16(_mm256_packs_epi32(r, r), _mm256_packs_epi32(r, r));
            let lanes =
                _mm_unpacklo_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256::<1>(p));
            let bytes = (_mm_cvtsi128_si64(lanes) as u64).to_le_bytes();
            for (o, &v) in row_out.iter_mut().skip(i).zip(&bytes).take(n) {
                *o = v;
            }
            i += n;
        }
    }
    true
}

/// MaxPool1d over `c` channels, 32 channels at a time with `vpmaxsb`, then the clamp.
///
/// # Safety
///
/// The CPU must have AVX2 (the `Isa` token proves it).
#[target_feature(enable = "avx2")]
pub(super) fn max_pool(q: &OutQuant, window: &Window, c: usize, x: &[u8], out: &mut [u8]) -> bool {
    if c == 0 {
        return false;
    }
    let (lo, hi) = (_mm256_set1_epi8(q.act_min), _mm256_set1_epi8(q.act_max));
    for (t, out_row) in out.chunks_exact_mut(c).enumerate() {
        let taps = x.get(t * window.stride * c..).unwrap_or(&[]);
        let mut j = 0;
        while j < c {
            let n = (c - j).min(32);
            let mut m = _mm256_set1_epi8(i8::MIN);
            for tap in taps.chunks_exact(c).take(window.kernel) {
                m = _mm256_max_epi8(m, load32(tap.get(j..j + n).unwrap_or(&[])));
            }
            let m = _mm256_min_epi8(_mm256_max_epi8(m, lo), hi);
            let mut bytes = [0u8; 32];
            // SAFETY: `bytes` is 32 writable bytes; the store is unaligned.
            unsafe { _mm256_storeu_si256(bytes.as_mut_ptr().cast(), m) };
            for (o, &v) in out_row.iter_mut().skip(j).zip(&bytes).take(n) {
                *o = v;
            }
            j += n;
        }
    }
    true
}

/// GlobalAvgPool over `in_t` rows of `c` channels with input zero point `zp`: `requant(sum_t (x - zp))`, 8
/// channels at a time in i32 lanes (the sums are below `255 * 65535 < 2^31`), with the vectorized
/// requantization.
///
/// # Safety
///
/// The CPU must have AVX2 (the `Isa` token proves it).
#[target_feature(enable = "avx2")]
pub(super) fn global_avg_pool(
    q: &OutQuant,
    requant: QuantMultiplier,
    (in_t, c, zp): (usize, usize, i8),
    x: &[u8],
    out: &mut [u8],
) -> bool {
    if c == 0 || x.len() < in_t * c {
        return false;
    }
    let k = Clamp::new(q);
    let mult = _mm256_set1_epi32(requant.multiplier());
    let shift = _mm256_set1_epi32(i32::from(requant.right_shift()));
    let offset = _mm256_set1_epi32((in_t as i32).wrapping_mul(i32::from(zp)));
    let mut j = 0;
    while j < c {
        let n = (c - j).min(8);
        let mut acc = _mm256_setzero_si256();
        for row in x.chunks_exact(c).take(in_t) {
            let v = _mm256_cvtepi8_epi32(load8(row.get(j..j + n).unwrap_or(&[])));
            acc = _mm256_add_epi32(acc, v);
        }
        let bytes = requant8(_mm256_sub_epi32(acc, offset), mult, shift, &k).to_le_bytes();
        for (o, &v) in out.iter_mut().skip(j).zip(&bytes).take(n) {
            *o = v;
        }
        j += n;
    }
    true
}
