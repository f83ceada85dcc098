//! AVX2 `dense-dot` kernels: Dense and Conv1d with `vpmaddwd` (the module above explains the shape).
#![allow(
    clippy::indexing_slicing,
    reason = "every index is checked against a length the kernel checked first"
)]

use core::arch::x86_64::*;

use super::super::{DotLayer, RowWords};
use super::{Clamp, lanes, load8, requant8};
use crate::format::layout::dot::{BLOCK, GROUP, STEP, block_len, padded_row};
use crate::kernels::generic;
use crate::plan::Conv;

/// Requantizes 8 channels' sums (bias not yet added) from channel `first` and writes the first `n <= 8` bytes to
/// `out[first..]`.
#[target_feature(enable = "avx2")]
#[inline]
fn store8(l: &DotLayer<'_, '_>, k: &Clamp, sums: __m256i, first: usize, n: usize, out: &mut [u8]) {
    let ch = &l.w.channels;
    let bias = lanes(ch.bias.get(4 * first..).unwrap_or(&[]), n);
    let mult = lanes(ch.multipliers.get(4 * first..).unwrap_or(&[]), n);
    let shift = _mm256_cvtepu8_epi32(load8(ch.shifts.get(first..).unwrap_or(&[])));
    let bytes = requant8(_mm256_add_epi32(sums, bias), mult, shift, k).to_le_bytes();
    if let Some(dst) = out.get_mut(first..first + 8)
        && n == 8
    {
        dst.copy_from_slice(&bytes);
    } else {
        for (o, &b) in out.iter_mut().skip(first).zip(&bytes).take(n) {
            *o = b;
        }
    }
}

/// Group `g` of a row sign-extended to 16 bits and repeated 4 times.
#[target_feature(enable = "avx2")]
#[inline]
fn group16(row: &RowWords, g: usize) -> __m256i {
    _mm256_broadcastq_epi64(_mm_cvtepi8_epi16(_mm_cvtsi32_si128(row.word(g))))
}

/// The 16 channel sums of a block from its 4 accumulators of 4 channels x 2 partial sums.
#[target_feature(enable = "avx2")]
#[inline]
fn block_sums(acc: &[__m256i; 4]) -> (__m256i, __m256i) {
    let order = |v: __m256i| _mm256_permute4x64_epi64::<0b11_01_10_00>(v);
    (
        order(_mm256_hadd_epi32(acc[0], acc[1])),
        order(_mm256_hadd_epi32(acc[2], acc[3])),
    )
}

/// The sums of `NB` full blocks from `first_block` over a row `x` of `row_len` inputs.
#[target_feature(enable = "avx2")]
#[inline]
fn dense_tile<const NB: usize>(
    l: &DotLayer<'_, '_>,
    k: &Clamp,
    x: &RowWords,
    first_block: usize,
    out: &mut [u8],
) {
    let row_len = l.w.row_len;
    let blen = block_len(row_len);
    let groups = padded_row(row_len) / GROUP;
    let mut acc = [[_mm256_setzero_si256(); 4]; NB];
    let w0 = l.weights.as_ptr().wrapping_add(first_block * blen);
    for g in 0..groups {
        let xv = group16(x, g);
        for (b, acc_b) in acc.iter_mut().enumerate() {
            for (q, a) in acc_b.iter_mut().enumerate() {
                // SAFETY: `dense_rows` checked `weights.len() >= channels * K4`; block `first_block + b` is a full
                // block, and its step `g < K4 / 4`, quad `q < 4`, is the 16 bytes at
                // `(first_block + b) * block_len + 64 g + 16 q`, within it.
                let w = unsafe { _mm_loadu_si128(w0.add(b * blen + STEP * g + 16 * q).cast()) };
                *a = _mm256_add_epi32(*a, _mm256_madd_epi16(_mm256_cvtepi8_epi16(w), xv));
            }
        }
    }
    for (b, acc_b) in acc.iter().enumerate() {
        let (lo, hi) = block_sums(acc_b);
        let first = (first_block + b) * BLOCK;
        store8(l, k, lo, first, 8, out);
        store8(l, k, hi, first + 8, 8, out);
    }
}

/// The tail block of `r < 16` channels (steps of `4r` bytes): whole quads of 4 channels with plain loads, the
/// last partial quad with a masked load.
#[target_feature(enable = "avx2")]
#[inline]
fn dense_tail(l: &DotLayer<'_, '_>, k: &Clamp, x: &RowWords, r: usize, out: &mut [u8]) {
    let row_len = l.w.row_len;
    let channels = l.w.channels.shifts.len();
    let first = channels - r;
    let step = GROUP * r;
    let groups = padded_row(row_len) / GROUP;
    let w0 = l
        .weights
        .as_ptr()
        .wrapping_add(first / BLOCK * block_len(row_len));
    let quads = r.div_ceil(4);
    // The dword masks of each quad: all 4 channels but in the last, partial quad.
    let masks: [__m128i; 4] = core::array::from_fn(|q| {
        let n = (r.saturating_sub(4 * q)).min(4) as i32;
        _mm_cmpgt_epi32(_mm_set1_epi32(n), _mm_setr_epi32(0, 1, 2, 3))
    });
    let mut acc = [_mm256_setzero_si256(); 4];
    for g in 0..groups {
        let xv = group16(x, g);
        for (q, (a, &mask)) in acc.iter_mut().zip(&masks).enumerate().take(quads) {
            // SAFETY: the tail block is the last `r * K4` bytes of the section (`dense_rows` checked its length);
            // step `g` quad `q` is `4 n` bytes at `4r g + 16 q` past its start, and the masked load reads only
            // those `n` dwords.
            let w = unsafe { _mm_maskload_epi32(w0.add(step * g + 16 * q).cast(), mask) };
            *a = _mm256_add_epi32(*a, _mm256_madd_epi16(_mm256_cvtepi8_epi16(w), xv));
        }
    }
    let (lo, hi) = block_sums(&acc);
    store8(l, k, lo, first, r.min(8), out);
    if r > 8 {
        store8(l, k, hi, first + 8, r - 8, out);
    }
}

/// Whether the sections hold what the kernels read (never false for a loaded model).
fn lengths_ok(l: &DotLayer<'_, '_>) -> bool {
    let channels = l.w.channels.shifts.len();
    l.weights.len() as u64 >= crate::format::layout::dot::weights_len(channels, l.w.row_len)
}

/// Dense over one row of `row_len` inputs (the portable kernel if `x` is shorter, never for a loaded model).
#[target_feature(enable = "avx2")]
fn dense_rows(l: &DotLayer<'_, '_>, k: &Clamp, x: &[u8], out: &mut [u8]) {
    let Some(x) = RowWords::new(x, l.w.row_len) else {
        return generic::dot::dense(l.q, l.weights, l.w.row_len, &l.w.channels, x, out);
    };
    let x = &x;
    let channels = l.w.channels.shifts.len();
    let full = channels / BLOCK;
    let mut b = 0;
    while b + 2 <= full {
        dense_tile::<2>(l, k, x, b, out);
        b += 2;
    }
    if b < full {
        dense_tile::<1>(l, k, x, b, out);
    }
    if !channels.is_multiple_of(BLOCK) {
        dense_tail(l, k, x, channels % BLOCK, out);
    }
}

/// Dense over `dense-dot` weights.
///
/// # Safety
///
/// The CPU must have AVX2 (the `Isa` token proves it).
#[target_feature(enable = "avx2")]
pub(crate) fn dense(l: &DotLayer<'_, '_>, x: &mut [u8], out: &mut [u8]) {
    let row_len = l.w.row_len;
    if !lengths_ok(l) {
        return generic::dot::dense(l.q, l.weights, row_len, &l.w.channels, x, out);
    }
    let x = x.get(..row_len).unwrap_or(x);
    dense_rows(l, &Clamp::new(l.q), x, out);
}

/// Conv1d over `dense-dot` weights: with dilation 1, a Dense over each output step's window; dilated
/// convolutions run the portable kernel.
///
/// # Safety
///
/// The CPU must have AVX2 (the `Isa` token proves it).
#[target_feature(enable = "avx2")]
pub(crate) fn conv(
    l: &DotLayer<'_, '_>,
    (conv, c_in): (&Conv, usize),
    x: &mut [u8],
    out: &mut [u8],
) {
    let row_len = l.w.row_len;
    let channels = l.w.channels.shifts.len();
    if conv.dilation != 1 || channels == 0 || !lengths_ok(l) {
        return generic::dot::conv1d(l.q, conv, (c_in, row_len), l.weights, &l.w.channels, x, out);
    }
    let k = Clamp::new(l.q);
    let step = conv.stride * c_in;
    for (t, row) in out.chunks_exact_mut(channels).enumerate() {
        let window = x.get(t * step..).unwrap_or(&[]);
        dense_rows(l, &k, window.get(..row_len).unwrap_or(window), row);
    }
}
