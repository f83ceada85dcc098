//! AVX-512 VNNI kernels: `dense-dot` Dense and Conv1d with `vpdpbusd` on 512-bit registers, the requantization
//! in 64-bit lanes, and the input quantizer.
//!
//! # Why this shape
//!
//! `vpdpbusd` adds, in each of the 16 i32 lanes of a register, the dot product of 4 unsigned bytes of one operand
//! with 4 signed bytes of the other: one step of a `dense-dot` block (16 channels x 4 inputs, 64 bytes) against
//! one group of 4 inputs broadcast to every lane is one instruction, 64 multiply-adds.
//! The inputs are signed, so each kernel first adds 128 to every input byte (an XOR of the sign bit, in place,
//! undone before it returns) and starts each channel from the layer's second bias, `b - 128 * sum w`
//! (`docs/ARITHMETIC.md`): `sum (x + 128) w + b - 128 sum w = sum x w + b`, exact modulo 2^32, and the loader's
//! overflow bound keeps the true sum inside i32.
//!
//! A `vpdpbusd` has a latency of about 5 cycles and two issue per cycle on the cores that have it, so a kernel
//! needs about 10 independent accumulators to keep them busy: Dense works on tiles of several blocks and splits
//! each block's groups over several accumulators (summed at the end); Conv1d shares each weight step between 8
//! output time steps.
#![cfg_attr(
    not(feature = "dense-dot"),
    allow(
        dead_code,
        reason = "the requantization serves the `dense-dot` kernels"
    )
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
#[cfg(feature = "stream")]
pub(super) mod lanes;

use crate::plan::OutQuant;

/// The requantization of 16 accumulators (channel `j` in lane `j`) with their multipliers (16 i32) and right
/// shifts (16 u8 zero-extended to i32): `clamp(round_shift(acc * m, s) + zp, lo, hi)`, exactly
/// `requant::requantize`, as 16 bytes.
///
/// The products are formed in 64-bit lanes, even channels and odd channels apart (`vpmuldq` multiplies the low
/// half of each 64-bit lane), rounded half away from zero as `(p + 2^(s-1) + (p >> 63)) >> s` with
/// variable arithmetic shifts, clamped in 64 bits, then put back in channel order.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
#[inline]
pub(super) fn requant16(acc: __m512i, mult: __m512i, shift: __m512i, k: &Clamp) -> __m128i {
    let low32 = _mm512_set1_epi64(0xFFFF_FFFF);
    let one = _mm512_set1_epi64(1);
    let round = |p: __m512i, s: __m512i| {
        let half = _mm512_sllv_epi64(one, _mm512_sub_epi64(s, one));
        let t = _mm512_add_epi64(_mm512_add_epi64(p, half), _mm512_srai_epi64::<63>(p));
        let y = _mm512_add_epi64(_mm512_srav_epi64(t, s), k.zp);
        _mm512_min_epi64(_mm512_max_epi64(y, k.lo), k.hi)
    };
    let even = round(_mm512_mul_epi32(acc, mult), _mm512_and_si512(shift, low32));
    let odd = round(
        _mm512_mul_epi32(_mm512_srli_epi64::<32>(acc), _mm512_srli_epi64::<32>(mult)),
        _mm512_srli_epi64::<32>(shift),
    );
    // Both halves lie in [-128, 127]: the low 32 bits of a lane are the value, so the even channels' lanes and
    // the odd channels' lanes shifted up interleave back into channel order.
    let y = _mm512_or_si512(_mm512_and_si512(even, low32), _mm512_slli_epi64::<32>(odd));
    _mm512_cvtepi32_epi8(y)
}

/// The requantization of 16 accumulators when every shift is in `[33, 62]` (`Channels::shifts_split`, the usual
/// case): the same result as [`requant16`] with half the work, from the high halves of the products.
///
/// With `|p| = |acc| * M = H 2^32 + L` (`vpmuludq`; `|acc|` taken unsigned, so `-2^31` works) and `s >= 33`,
/// `(|p| + 2^(s-1)) >> s = (H + 2^(s-33)) >> (s - 32)`: the rounding term is a multiple of `2^32`, so it only adds
/// to `H`, and `L / 2^32 < 1` cannot carry the quotient past an integer. `H < 2^30`, so the sum fits 32 bits.
/// The sign of `acc` goes back on (rounding half away from zero is symmetric), then the zero point and the clamp,
/// in 32-bit lanes, which cannot overflow: `|y| < 2^30`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
#[inline]
pub(super) fn requant16_split(
    acc: __m512i,
    mult: __m512i,
    shift: SplitShift,
    k: &Clamp,
) -> __m128i {
    let mag = _mm512_abs_epi32(acc);
    let even = _mm512_mul_epu32(mag, mult);
    let odd = _mm512_mul_epu32(_mm512_srli_epi64::<32>(mag), _mm512_srli_epi64::<32>(mult));
    // The high half of channel 2k's product moved down into lane 2k; channel 2k + 1's is already in its lane.
    let high = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64::<32>(even), odd);
    let y = _mm512_srlv_epi32(_mm512_add_epi32(high, shift.half), shift.right);
    let y = _mm512_mask_sub_epi32(y, _mm512_movepi32_mask(acc), _mm512_setzero_si512(), y);
    let y = _mm512_add_epi32(y, k.zp32);
    _mm512_cvtepi32_epi8(_mm512_min_epi32(_mm512_max_epi32(y, k.lo32), k.hi32))
}

/// The shifts of 16 channels as [`requant16_split`] uses them: the rounding term `2^(s-33)` and the right shift
/// `s - 32` of the products' high halves (a Conv1d computes them once per block for all its time steps).
#[derive(Clone, Copy)]
pub(super) struct SplitShift {
    half: __m512i,
    right: __m512i,
}

impl SplitShift {
    /// From the shifts (each in `[33, 62]`) in 32-bit lanes.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
    #[inline]
    pub(super) fn new(shift: __m512i) -> SplitShift {
        SplitShift {
            half: _mm512_sllv_epi32(
                _mm512_set1_epi32(1),
                _mm512_sub_epi32(shift, _mm512_set1_epi32(33)),
            ),
            right: _mm512_sub_epi32(shift, _mm512_set1_epi32(32)),
        }
    }
}

/// The output zero point and clamp, broadcast to 64-bit lanes (and to 32-bit lanes for [`requant16_split`]).
pub(super) struct Clamp {
    zp: __m512i,
    lo: __m512i,
    hi: __m512i,
    zp32: __m512i,
    lo32: __m512i,
    hi32: __m512i,
}

impl Clamp {
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
    pub(super) fn new(q: &OutQuant) -> Clamp {
        Clamp {
            zp: _mm512_set1_epi64(i64::from(q.zp)),
            lo: _mm512_set1_epi64(i64::from(q.act_min)),
            hi: _mm512_set1_epi64(i64::from(q.act_max)),
            zp32: _mm512_set1_epi32(i32::from(q.zp)),
            lo32: _mm512_set1_epi32(i32::from(q.act_min)),
            hi32: _mm512_set1_epi32(i32::from(q.act_max)),
        }
    }
}

/// Stores the lanes of `mask` of 16 output bytes at `dst`: a plain 16-byte store when all are, which the next
/// layer's loads of those bytes can forward from (from a masked store they cannot, and wait for it to reach the
/// cache), a masked one for a partial block.
///
/// # Safety
///
/// The bytes of the set lanes must be writable.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
#[inline]
pub(super) unsafe fn store_bytes(dst: *mut u8, mask: __mmask16, bytes: __m128i) {
    // SAFETY: the caller guarantees the lanes of `mask`; the stores are unaligned.
    unsafe {
        if mask == !0 {
            _mm_storeu_si128(dst.cast(), bytes);
        } else {
            _mm_mask_storeu_epi8(dst.cast(), mask, bytes);
        }
    }
}

/// The static input quantizer, 16 features at a time: `q = clamp(round(x * a + b))` with NaN to the zero point,
/// the same IEEE operations as `generic::quantize::quantize` (a multiply, then an add, never fused; a round half
/// away from zero of a value clamped to `[-129, 128]`). Returns false, doing nothing, if `features` is short
/// (the portable kernel pads it with NaN).
///
/// # Safety
///
/// The CPU must have AVX-512 F, BW, VL, DQ and VNNI (the `Isa` token proves it).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
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
    if f < 16 && 16 % f == 0 {
        // Short rows (a conv window's few features per step) would leave most lanes of a per-row vector idle:
        // when the row length divides 16 the coefficients repeat with period 16 and the window is quantized as
        // one flat run of 16-lane vectors.
        let (mut a16, mut b16) = ([0f32; 16], [0f32; 16]);
        for lane in 0..16 {
            let j = 4 * (lane % f);
            a16[lane] = f32::from_le_bytes([a[j], a[j + 1], a[j + 2], a[j + 3]]);
            b16[lane] = f32::from_le_bytes([b[j], b[j + 1], b[j + 2], b[j + 3]]);
        }
        // SAFETY: both arrays hold 16 floats.
        let (av, bv) = unsafe { (_mm512_loadu_ps(a16.as_ptr()), _mm512_loadu_ps(b16.as_ptr())) };
        let mut i = 0;
        // 64 codes per store where there are 64: the first layer reads its input in 64-byte vectors, which can
        // forward from one 64-byte store but not from four 16-byte ones.
        while i + 64 <= out.len() {
            // SAFETY: features and codes `i..i + 64` exist (`features` is at least as long as `out`).
            unsafe {
                let x = features.as_ptr().add(i);
                let q0 = k.apply(_mm512_loadu_ps(x), av, bv);
                let q1 = k.apply(_mm512_loadu_ps(x.add(16)), av, bv);
                let q2 = k.apply(_mm512_loadu_ps(x.add(32)), av, bv);
                let q3 = k.apply(_mm512_loadu_ps(x.add(48)), av, bv);
                let lo = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(q0), q1);
                let hi = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(q2), q3);
                let all = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi);
                _mm512_storeu_si512(out.as_mut_ptr().add(i).cast(), all);
            }
            i += 64;
        }
        while i < out.len() {
            let n = (out.len() - i).min(16);
            let mask: __mmask16 = if n == 16 { !0 } else { (1 << n) - 1 };
            // SAFETY: lanes `i..i + n` of the features and of the output exist (`features` is at least as long
            // as `out`); the masked load and store touch only those.
            unsafe {
                let xv = _mm512_maskz_loadu_ps(mask, features.as_ptr().add(i));
                store_quantized(&mut out[i..], n, mask, k.apply(xv, av, bv));
            }
            i += n;
        }
        return true;
    }
    for (row_out, row_in) in out.chunks_exact_mut(f).zip(features.chunks_exact(f)) {
        let mut i = 0;
        while i < f {
            let n = (f - i).min(16);
            let mask: __mmask16 = if n == 16 { !0 } else { (1 << n) - 1 };
            // SAFETY: lanes `i..i + n` of this row, of the `a` and `b` coefficients and of the output row exist
            // (each has `f` entries); the masked loads touch only those.
            unsafe {
                let xv = _mm512_maskz_loadu_ps(mask, row_in.as_ptr().add(i));
                let av = _mm512_maskz_loadu_ps(mask, a.as_ptr().add(4 * i).cast());
                let bv = _mm512_maskz_loadu_ps(mask, b.as_ptr().add(4 * i).cast());
                store_quantized(&mut row_out[i..], n, mask, k.apply(xv, av, bv));
            }
            i += n;
        }
    }
    true
}

/// The input quantizer's constants, broadcast once per call.
struct QuantizeConstants {
    nan_value: __m512i,
    lo: __m512i,
    hi: __m512i,
    min_v: __m512,
    max_v: __m512,
    half: __m512,
    neg_half: __m512,
    one: __m512i,
}

impl QuantizeConstants {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
    fn new(q: &OutQuant) -> Self {
        Self {
            nan_value: _mm512_set1_epi32(i32::from(q.zp.clamp(q.act_min, q.act_max))),
            lo: _mm512_set1_epi32(i32::from(q.act_min)),
            hi: _mm512_set1_epi32(i32::from(q.act_max)),
            min_v: _mm512_set1_ps(-129.0),
            max_v: _mm512_set1_ps(128.0),
            half: _mm512_set1_ps(0.5),
            neg_half: _mm512_set1_ps(-0.5),
            one: _mm512_set1_epi32(1),
        }
    }

    /// Sixteen features to codes: `x·a + b`, NaN to the zero point, clamped, rounded half away from zero (the
    /// reference's `libm::roundf` on a value already clamped to the int8 range plus one), clamped to the
    /// activation range.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
    fn apply(&self, x: __m512, a: __m512, b: __m512) -> __m128i {
        let v = _mm512_add_ps(_mm512_mul_ps(x, a), b);
        let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
        let c = _mm512_min_ps(_mm512_max_ps(v, self.min_v), self.max_v);
        let t = _mm512_cvttps_epi32(c);
        let frac = _mm512_sub_ps(c, _mm512_cvtepi32_ps(t));
        let up = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(frac, self.half);
        let down = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(frac, self.neg_half);
        let r = _mm512_mask_add_epi32(t, up, t, self.one);
        let r = _mm512_mask_sub_epi32(r, down, r, self.one);
        let r = _mm512_min_epi32(_mm512_max_epi32(r, self.lo), self.hi);
        _mm512_cvtepi32_epi8(_mm512_mask_blend_epi32(nan, r, self.nan_value))
    }
}

/// Stores `n` (at most 16, with `mask` selecting them) quantized codes at the start of `out`.
///
/// # Safety
///
/// `out` must hold at least `n` bytes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
unsafe fn store_quantized(out: &mut [u8], n: usize, mask: __mmask16, bytes: __m128i) {
    // SAFETY: the caller guarantees `n` bytes at `out`; a whole vector is a plain store (the first layer's
    // loads can forward from it), a partial one is masked to its `n` lanes.
    unsafe {
        if n == 16 {
            _mm_storeu_si128(out.as_mut_ptr().cast(), bytes);
        } else {
            _mm_mask_storeu_epi8(out.as_mut_ptr().cast(), mask, bytes);
        }
    }
}
