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

#[cfg(feature = "sparse-formats")]
pub(super) mod columns;
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

/// Loads up to 16 bytes from the start of `bytes`, zero-filling what is missing.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn load16(bytes: &[u8]) -> __m128i {
    if let Some(b) = bytes.first_chunk::<16>() {
        // SAFETY: `b` is 16 readable bytes; the load is unaligned.
        return unsafe { _mm_loadu_si128(b.as_ptr().cast()) };
    }
    let mut buf = [0u8; 16];
    for (d, &s) in buf.iter_mut().zip(bytes) {
        *d = s;
    }
    // SAFETY: `buf` is 16 readable bytes; the load is unaligned.
    unsafe { _mm_loadu_si128(buf.as_ptr().cast()) }
}

/// Loads up to 8 bytes from the start of `bytes` (zero-filled) into the low half of a register.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn load8(bytes: &[u8]) -> __m128i {
    if let Some(b) = bytes.first_chunk::<8>() {
        return _mm_cvtsi64_si128(i64::from_le_bytes(*b));
    }
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
    let k = QuantizeConstants::new(q);
    if f < 8 && 8 % f == 0 {
        // As in the AVX-512 quantizer: rows that divide 8 are quantized as one flat run, the coefficients
        // repeated with period 8.
        let (mut a8, mut b8) = ([0u8; 32], [0u8; 32]);
        for lane in 0..8 {
            let j = 4 * (lane % f);
            a8[4 * lane..4 * lane + 4].copy_from_slice(&a[j..j + 4]);
            b8[4 * lane..4 * lane + 4].copy_from_slice(&b[j..j + 4]);
        }
        let (av, bv) = (
            _mm256_castsi256_ps(load32(&a8)),
            _mm256_castsi256_ps(load32(&b8)),
        );
        for (o, x) in out.chunks_mut(8).zip(features.chunks(8)) {
            store8_codes(o, k.apply(features8(x), av, bv));
        }
        return true;
    }
    for (row_out, row_in) in out.chunks_exact_mut(f).zip(features.chunks_exact(f)) {
        for (i, (o, x)) in row_out.chunks_mut(8).zip(row_in.chunks(8)).enumerate() {
            let n = x.len();
            let av = _mm256_castsi256_ps(lanes(a.get(32 * i..).unwrap_or(&[]), n));
            let bv = _mm256_castsi256_ps(lanes(b.get(32 * i..).unwrap_or(&[]), n));
            store8_codes(o, k.apply(features8(x), av, bv));
        }
    }
    true
}

/// The input quantizer's constants, broadcast once per call.
struct QuantizeConstants {
    nan_value: __m256i,
    lo: __m256i,
    hi: __m256i,
    min_v: __m256,
    max_v: __m256,
    half: __m256,
    neg_half: __m256,
}

impl QuantizeConstants {
    #[inline]
    #[target_feature(enable = "avx2")]
    fn new(q: &OutQuant) -> Self {
        Self {
            nan_value: _mm256_set1_epi32(i32::from(q.zp.clamp(q.act_min, q.act_max))),
            lo: _mm256_set1_epi32(i32::from(q.act_min)),
            hi: _mm256_set1_epi32(i32::from(q.act_max)),
            min_v: _mm256_set1_ps(-129.0),
            max_v: _mm256_set1_ps(128.0),
            half: _mm256_set1_ps(0.5),
            neg_half: _mm256_set1_ps(-0.5),
        }
    }

    /// Eight features to codes (in the low bytes of a u64): `x·a + b`, NaN to the zero point, clamped, rounded
    /// half away from zero, clamped to the activation range.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn apply(&self, x: __m256, a: __m256, b: __m256) -> u64 {
        let v = _mm256_add_ps(_mm256_mul_ps(x, a), b);
        let nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
        let c = _mm256_min_ps(_mm256_max_ps(v, self.min_v), self.max_v);
        let t = _mm256_cvttps_epi32(c);
        let frac = _mm256_sub_ps(c, _mm256_cvtepi32_ps(t));
        // A true compare is all ones (-1): subtracting it adds 1.
        let up = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GE_OQ>(frac, self.half));
        let down = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LE_OQ>(frac, self.neg_half));
        let r = _mm256_add_epi32(_mm256_sub_epi32(t, up), down);
        let r = _mm256_min_epi32(_mm256_max_epi32(r, self.lo), self.hi);
        let r = _mm256_blendv_epi8(r, self.nan_value, nan);
        let p = _mm256_packs_epi16(_mm256_packs_epi32(r, r), _mm256_packs_epi32(r, r));
        let lanes = _mm_unpacklo_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256::<1>(p));
        _mm_cvtsi128_si64(lanes) as u64
    }
}

/// Up to 8 features, the missing lanes zero: a plain load for 8, a masked one otherwise.
#[target_feature(enable = "avx2")]
#[inline]
fn features8(x: &[f32]) -> __m256 {
    if let Some(v) = x.first_chunk::<8>() {
        // SAFETY: `v` is 8 readable f32; the load is unaligned.
        return unsafe { _mm256_loadu_ps(v.as_ptr()) };
    }
    let n = x.len().min(8) as i32;
    let mask = _mm256_cmpgt_epi32(
        _mm256_set1_epi32(n),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    );
    // SAFETY: the mask enables only the first `n <= x.len()` lanes, which lie in `x`; masked lanes are not read.
    unsafe { _mm256_maskload_ps(x.as_ptr(), mask) }
}

/// Writes the low `out.len()` (at most 8) bytes of `codes` to `out`.
#[inline]
pub(super) fn store8_codes(out: &mut [u8], codes: u64) {
    let bytes = codes.to_le_bytes();
    if let Some(dst) = out.first_chunk_mut::<8>() {
        *dst = bytes;
    } else {
        for (o, &v) in out.iter_mut().zip(&bytes) {
            *o = v;
        }
    }
}

/// The 32-bit lanes of the first `n <= 8` words of `bytes` (`4n` bytes, fewer if `bytes` is shorter), the
/// others zero: a plain load for 8, a masked one otherwise.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn lanes(bytes: &[u8], n: usize) -> __m256i {
    if n >= 8
        && let Some(b) = bytes.first_chunk::<32>()
    {
        // SAFETY: `b` is 32 readable bytes; the load is unaligned.
        return unsafe { _mm256_loadu_si256(b.as_ptr().cast()) };
    }
    let n = n.min(bytes.len() / 4) as i32;
    let mask = _mm256_cmpgt_epi32(
        _mm256_set1_epi32(n),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    );
    // SAFETY: the mask enables only the first `n` dwords, which lie in `bytes` (`n <= bytes.len() / 4`); masked
    // lanes are not read.
    unsafe { _mm256_maskload_epi32(bytes.as_ptr().cast(), mask) }
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
    let rows = || x.chunks_exact(c).take(in_t);
    let mut j = 0;
    if in_t <= 255 {
        // 16 channels at a time in 16-bit lanes, which hold the sum of up to 255 int8 values exactly, over
        // two accumulators (even and odd rows) so that the adds do not wait on each other.
        while j < c {
            let n = (c - j).min(16);
            let (mut even, mut odd) = (_mm256_setzero_si256(), _mm256_setzero_si256());
            let mut it = rows();
            while let Some(r0) = it.next() {
                even = _mm256_add_epi16(
                    even,
                    _mm256_cvtepi8_epi16(load16(r0.get(j..).unwrap_or(&[]))),
                );
                if let Some(r1) = it.next() {
                    odd = _mm256_add_epi16(
                        odd,
                        _mm256_cvtepi8_epi16(load16(r1.get(j..).unwrap_or(&[]))),
                    );
                }
            }
            let sum = _mm256_add_epi16(even, odd);
            let halves = [
                _mm256_cvtepi16_epi32(_mm256_castsi256_si128(sum)),
                _mm256_cvtepi16_epi32(_mm256_extracti128_si256::<1>(sum)),
            ];
            for (h, acc) in halves.into_iter().enumerate() {
                let first = j + 8 * h;
                if first < j + n {
                    let codes = requant8(_mm256_sub_epi32(acc, offset), mult, shift, &k);
                    store8_codes(
                        out.get_mut(first..(j + n).min(first + 8))
                            .unwrap_or(&mut []),
                        codes,
                    );
                }
            }
            j += n;
        }
        return true;
    }
    while j < c {
        let n = (c - j).min(8);
        let mut acc = _mm256_setzero_si256();
        for row in rows() {
            let v = _mm256_cvtepi8_epi32(load8(row.get(j..j + n).unwrap_or(&[])));
            acc = _mm256_add_epi32(acc, v);
        }
        let codes = requant8(_mm256_sub_epi32(acc, offset), mult, shift, &k);
        store8_codes(out.get_mut(j..j + n).unwrap_or(&mut []), codes);
        j += n;
    }
    true
}
