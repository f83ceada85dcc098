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

#[cfg(feature = "dense-dot")]
pub(super) mod dot;

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

/// The output zero point and clamp, broadcast to 64-bit lanes.
pub(super) struct Clamp {
    zp: __m512i,
    lo: __m512i,
    hi: __m512i,
}

impl Clamp {
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
    pub(super) fn new(q: &OutQuant) -> Clamp {
        Clamp {
            zp: _mm512_set1_epi64(i64::from(q.zp)),
            lo: _mm512_set1_epi64(i64::from(q.act_min)),
            hi: _mm512_set1_epi64(i64::from(q.act_max)),
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
    let nan_value = _mm512_set1_epi32(i32::from(q.zp.clamp(q.act_min, q.act_max)));
    let (lo, hi) = (
        _mm512_set1_epi32(i32::from(q.act_min)),
        _mm512_set1_epi32(i32::from(q.act_max)),
    );
    let (min_v, max_v) = (_mm512_set1_ps(-129.0), _mm512_set1_ps(128.0));
    let (half, neg_half, one) = (
        _mm512_set1_ps(0.5),
        _mm512_set1_ps(-0.5),
        _mm512_set1_epi32(1),
    );
    for (row_out, row_in) in out.chunks_exact_mut(f).zip(features.chunks_exact(f)) {
        let mut i = 0;
        while i < f {
            let n = (f - i).min(16);
            let mask: __mmask16 = if n == 16 { !0 } else { (1 << n) - 1 };
            // SAFETY: lanes `i..i + n` of this row, of the `a` and `b` coefficients and of the output row exist
            // (each has `f` entries); the masked loads and store touch only those.
            unsafe {
                let xv = _mm512_maskz_loadu_ps(mask, row_in.as_ptr().add(i));
                let av = _mm512_maskz_loadu_ps(mask, a.as_ptr().add(4 * i).cast());
                let bv = _mm512_maskz_loadu_ps(mask, b.as_ptr().add(4 * i).cast());
                let v = _mm512_add_ps(_mm512_mul_ps(xv, av), bv);
                let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
                let c = _mm512_min_ps(_mm512_max_ps(v, min_v), max_v);
                let t = _mm512_cvttps_epi32(c);
                let frac = _mm512_sub_ps(c, _mm512_cvtepi32_ps(t));
                let up = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(frac, half);
                let down = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(frac, neg_half);
                let r = _mm512_mask_add_epi32(t, up, t, one);
                let r = _mm512_mask_sub_epi32(r, down, r, one);
                let r = _mm512_min_epi32(_mm512_max_epi32(r, lo), hi);
                let r = _mm512_mask_blend_epi32(nan, r, nan_value);
                _mm_mask_storeu_epi8(
                    row_out.as_mut_ptr().add(i).cast(),
                    mask,
                    _mm512_cvtepi32_epi8(r),
                );
            }
            i += n;
        }
    }
    true
}
