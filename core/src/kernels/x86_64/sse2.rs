//! SSE2 kernels (every x86-64 CPU): `dense-dot` Dense and Conv1d with `pmaddwd` on 128-bit registers.
//!
//! SSE2 has no byte sign extension (`pmovsxbw` is SSE4.1): `punpcklbw` of a register with itself puts each
//! weight byte in the high half of a 16-bit lane, and an arithmetic shift right by 8 sign-extends it.
//! `pmaddwd` then gives each channel two partial sums, added once per block. SSE2 has no 64-bit multiply of
//! signed lanes or variable shifts, so the requantization is the portable one, channel by channel.
//! SSE2 is part of the x86-64 baseline: every x86-64 CPU runs these.
#![allow(
    clippy::indexing_slicing,
    reason = "every index is checked against a length the kernel checked first"
)]

use core::arch::x86_64::*;

use super::DotLayer;
use crate::format::layout::dot::{BLOCK, GROUP, block_len, padded_row};
use crate::format::le_i32;
use crate::kernels::generic;
use crate::plan::Conv;

/// The 4 inputs of group `g`, sign-extended to 16 bits and repeated twice (a partial group zero-padded).
#[target_feature(enable = "sse2")]
#[inline]
fn group16(x: &[u8], g: usize) -> __m128i {
    let word = match x.get(GROUP * g..GROUP * g + GROUP) {
        Some(&[a, b, c, d]) => i32::from_le_bytes([a, b, c, d]),
        _ => {
            let mut word = [0u8; GROUP];
            for (d, &s) in word.iter_mut().zip(x.get(GROUP * g..).unwrap_or(&[])) {
                *d = s;
            }
            i32::from_le_bytes(word)
        }
    };
    let v = _mm_cvtsi32_si128(word);
    let v = _mm_srai_epi16::<8>(_mm_unpacklo_epi8(v, v));
    _mm_unpacklo_epi64(v, v)
}

/// Adds the products of 16 weight bytes (4 channels x 4 inputs) with a group to a pair of accumulators
/// (channels 0-1 and 2-3, two partial sums per channel).
#[target_feature(enable = "sse2")]
#[inline]
fn quad(w: __m128i, xv: __m128i, acc: &mut [__m128i; 2]) {
    let lo = _mm_srai_epi16::<8>(_mm_unpacklo_epi8(w, w));
    let hi = _mm_srai_epi16::<8>(_mm_unpackhi_epi8(w, w));
    acc[0] = _mm_add_epi32(acc[0], _mm_madd_epi16(lo, xv));
    acc[1] = _mm_add_epi32(acc[1], _mm_madd_epi16(hi, xv));
}

/// The sums of 4 channels from their two accumulators of 2 channels x 2 partial sums.
#[target_feature(enable = "sse2")]
#[inline]
fn quad_sums(acc: &[__m128i; 2]) -> [i32; 4] {
    let (a, b) = (_mm_castsi128_ps(acc[0]), _mm_castsi128_ps(acc[1]));
    let first = _mm_castps_si128(_mm_shuffle_ps::<0b10_00_10_00>(a, b));
    let second = _mm_castps_si128(_mm_shuffle_ps::<0b11_01_11_01>(a, b));
    let mut four = [0i32; 4];
    // SAFETY: `four` is 16 writable bytes; the store is unaligned.
    unsafe { _mm_storeu_si128(four.as_mut_ptr().cast(), _mm_add_epi32(first, second)) };
    four
}

/// The 16 bytes of quad `q` of a step (`n` channels, `4n` bytes), zero-filled past the step's end (the partial
/// quad of a tail block).
#[target_feature(enable = "sse2")]
#[inline]
fn load_quad(step: &[u8], q: usize) -> __m128i {
    if let Some(b) = step.get(16 * q..16 * q + 16) {
        // SAFETY: `b` is 16 readable bytes; the load is unaligned.
        return unsafe { _mm_loadu_si128(b.as_ptr().cast()) };
    }
    let mut buf = [0u8; 16];
    for (d, &v) in buf.iter_mut().zip(step.get(16 * q..).unwrap_or(&[])) {
        *d = v;
    }
    // SAFETY: `buf` is 16 readable bytes; the load is unaligned.
    unsafe { _mm_loadu_si128(buf.as_ptr().cast()) }
}

/// One block of `n` channels (steps of `4n` bytes in `w`) over a row: the channel sums.
#[target_feature(enable = "sse2")]
#[inline]
fn block(w: &[u8], n: usize, x: &[u8], groups: usize) -> [i32; BLOCK] {
    let mut acc = [[_mm_setzero_si128(); 2]; 4];
    let quads = n.div_ceil(4);
    if n == BLOCK {
        // A full block: every step is 64 bytes, four whole quads.
        for (g, step) in w.as_chunks::<64>().0.iter().take(groups).enumerate() {
            let xv = group16(x, g);
            for (q, a) in acc.iter_mut().enumerate() {
                // SAFETY: `step` is 64 readable bytes, so quad `q < 4` is within it; the load is unaligned.
                let wq = unsafe { _mm_loadu_si128(step.as_ptr().add(16 * q).cast()) };
                quad(wq, xv, a);
            }
        }
    } else {
        for (g, step) in w.chunks(GROUP * n).take(groups).enumerate() {
            let xv = group16(x, g);
            for (q, a) in acc.iter_mut().enumerate().take(quads) {
                quad(load_quad(step, q), xv, a);
            }
        }
    }
    let mut sums = [0i32; BLOCK];
    for (q, a) in acc.iter().enumerate() {
        sums[4 * q..4 * q + 4].copy_from_slice(&quad_sums(a));
    }
    sums
}

/// Dense over one row: block by block, then the portable requantization of each channel.
#[target_feature(enable = "sse2")]
fn dense_rows(l: &DotLayer<'_, '_>, x: &[u8], out: &mut [u8]) {
    let row_len = l.w.row_len;
    let ch = &l.w.channels;
    let channels = ch.shifts.len();
    let groups = padded_row(row_len) / GROUP;
    let blen = block_len(row_len);
    for b in 0..channels.div_ceil(BLOCK) {
        let first = b * BLOCK;
        let n = (channels - first).min(BLOCK);
        let w = l.weights.get(b * blen..).unwrap_or(&[]);
        let sums = block(w, n, x, groups);
        for (j, &s) in sums.iter().enumerate().take(n) {
            let o = first + j;
            let (Some(bias), Some(m), Some(&shift), Some(y)) = (
                ch.bias.get(4 * o..4 * o + 4),
                ch.multipliers.get(4 * o..4 * o + 4),
                ch.shifts.get(o),
                out.get_mut(o),
            ) else {
                break;
            };
            *y = generic::requantize_channel(l.q, le_i32(bias).wrapping_add(s), m, shift);
        }
    }
}

/// Dense over `dense-dot` weights.
#[target_feature(enable = "sse2")]
pub(super) fn dense(l: &DotLayer<'_, '_>, x: &mut [u8], out: &mut [u8]) {
    let x = x.get(..l.w.row_len).unwrap_or(x);
    dense_rows(l, x, out);
}

/// Conv1d over `dense-dot` weights: with dilation 1, a Dense over each output step's window; dilated
/// convolutions run the portable kernel.
#[target_feature(enable = "sse2")]
pub(super) fn conv(
    l: &DotLayer<'_, '_>,
    (conv, c_in): (&Conv, usize),
    x: &mut [u8],
    out: &mut [u8],
) {
    let row_len = l.w.row_len;
    let channels = l.w.channels.shifts.len();
    if conv.dilation != 1 || channels == 0 {
        return generic::dot::conv1d(l.q, conv, (c_in, row_len), l.weights, &l.w.channels, x, out);
    }
    let step = conv.stride * c_in;
    for (t, row) in out.chunks_exact_mut(channels).enumerate() {
        let window = x.get(t * step..).unwrap_or(&[]);
        dense_rows(l, window.get(..row_len).unwrap_or(window), row);
    }
}
