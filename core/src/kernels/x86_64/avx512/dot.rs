//! AVX-512 VNNI `dense-dot` kernels: Dense and Conv1d with `vpdpbusd` (the module above explains the shape).
#![allow(
    clippy::indexing_slicing,
    reason = "every index is checked against a length the kernel checked first"
)]

use core::arch::x86_64::*;

use super::super::DotLayer;
use super::{Clamp, requant16};
use crate::format::layout::dot::{BLOCK, GROUP, STEP, block_len, padded_row};
use crate::kernels::generic;
use crate::plan::Conv;

/// Adds 128 to every int8 byte (flips its sign bit), turning the signed inputs into the unsigned bytes
/// `vpdpbusd` takes; applied twice it restores them.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
fn flip(x: &mut [u8]) {
    let sign = _mm512_set1_epi8(i8::MIN);
    let (chunks, tail) = x.as_chunks_mut::<64>();
    for c in chunks {
        // SAFETY: `c` is 64 bytes that this function may read and write; unaligned accesses are allowed.
        unsafe {
            let p = c.as_mut_ptr().cast::<__m512i>();
            _mm512_storeu_si512(p, _mm512_xor_si512(_mm512_loadu_si512(p), sign));
        }
    }
    for b in tail {
        *b ^= 0x80;
    }
}

/// Requantizes the accumulators of channels `first..first + n` (`n <= 16`) into `out`, reading their
/// multipliers and shifts.
///
/// The caller checked that the multipliers, shifts and `out` have at least `first + n` channels.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
#[inline]
fn store_block(
    l: &DotLayer<'_, '_>,
    k: &Clamp,
    acc: __m512i,
    first: usize,
    n: usize,
    out: &mut [u8],
) {
    let ch = &l.w.channels;
    let mask16: __mmask16 = if n >= BLOCK { !0 } else { (1 << n) - 1 };
    // SAFETY: the caller checked `ch.multipliers.len() >= 4 * (first + n)`, `ch.shifts.len() >= first + n` and
    // `out.len() >= first + n`; the masked loads and store touch only the `n` lanes of those channels.
    unsafe {
        let mult = _mm512_maskz_loadu_epi32(mask16, ch.multipliers.as_ptr().add(4 * first).cast());
        let shifts = _mm_maskz_loadu_epi8(mask16, ch.shifts.as_ptr().add(first).cast());
        let bytes = requant16(acc, mult, _mm512_cvtepu8_epi32(shifts), k);
        _mm_mask_storeu_epi8(out.as_mut_ptr().add(first).cast(), mask16, bytes);
    }
}

/// The accumulators of one tile, started at the second bias of their channels.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
#[inline]
fn start(l: &DotLayer<'_, '_>, first: usize, n: usize) -> __m512i {
    let mask16: __mmask16 = if n >= BLOCK { !0 } else { (1 << n) - 1 };
    // SAFETY: the caller checked `offset_bias.len() >= 4 * (first + n)`; the load reads those `n` lanes only.
    unsafe { _mm512_maskz_loadu_epi32(mask16, l.offset_bias.as_ptr().add(4 * first).cast()) }
}

/// The input groups of a row of `row_len` flipped bytes: `groups` whole groups read in place, and the last
/// partial group (if any) as a word with its missing bytes zero (their weights are zero padding).
struct Groups {
    whole: usize,
    last: Option<i32>,
}

impl Groups {
    fn of(x: &[u8], row_len: usize) -> Groups {
        let whole = row_len / GROUP;
        let last = (!row_len.is_multiple_of(GROUP)).then(|| {
            let mut word = [0u8; GROUP];
            for (d, s) in word
                .iter_mut()
                .zip(x.get(whole * GROUP..row_len).unwrap_or(&[]))
            {
                *d = *s;
            }
            i32::from_le_bytes(word)
        });
        Groups { whole, last }
    }
}

/// `NB` full blocks from `first_block` on, each group split over `NS` accumulators per block.
///
/// The caller checked the lengths `dense` checks.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
#[inline]
fn dense_tile<const NB: usize, const NS: usize>(
    l: &DotLayer<'_, '_>,
    k: &Clamp,
    x: &[u8],
    groups: &Groups,
    first_block: usize,
    out: &mut [u8],
) {
    let blen = block_len(l.w.row_len);
    let zero = _mm512_setzero_si512();
    let mut acc = [[zero; NB]; NS];
    for (b, a) in acc[0].iter_mut().enumerate() {
        *a = start(l, (first_block + b) * BLOCK, BLOCK);
    }
    let w0 = l.weights.as_ptr().wrapping_add(first_block * blen);
    let mut g = 0;
    // SAFETY: `dense` checked `x.len() >= row_len` and `weights.len() >= channels * K4`: group `g < whole`
    // reads `x[4g..4g + 4]` (within `row_len`), and block `first_block + b` (a full block, `b < NB`) step `g`
    // reads 64 bytes at `(first_block + b) * block_len + 64 g`, within the full blocks.
    unsafe {
        while g + NS <= groups.whole {
            for (s, acc_s) in acc.iter_mut().enumerate() {
                let xg = core::ptr::read_unaligned(x.as_ptr().add(GROUP * (g + s)).cast::<i32>());
                let xb = _mm512_set1_epi32(xg);
                for (b, a) in acc_s.iter_mut().enumerate() {
                    let w = _mm512_loadu_si512(w0.add(b * blen + STEP * (g + s)).cast());
                    *a = _mm512_dpbusd_epi32(*a, xb, w);
                }
            }
            g += NS;
        }
        while g < groups.whole {
            let xg = core::ptr::read_unaligned(x.as_ptr().add(GROUP * g).cast::<i32>());
            let xb = _mm512_set1_epi32(xg);
            for (b, a) in acc[0].iter_mut().enumerate() {
                let w = _mm512_loadu_si512(w0.add(b * blen + STEP * g).cast());
                *a = _mm512_dpbusd_epi32(*a, xb, w);
            }
            g += 1;
        }
        if let Some(xg) = groups.last {
            let xb = _mm512_set1_epi32(xg);
            for (b, a) in acc[0].iter_mut().enumerate() {
                let w = _mm512_loadu_si512(w0.add(b * blen + STEP * g).cast());
                *a = _mm512_dpbusd_epi32(*a, xb, w);
            }
        }
    }
    for b in 0..NB {
        let mut sum = acc[0][b];
        for acc_s in acc.iter().skip(1) {
            sum = _mm512_add_epi32(sum, acc_s[b]);
        }
        store_block(l, k, sum, (first_block + b) * BLOCK, BLOCK, out);
    }
}

/// The tail block of `r < 16` channels (steps of `4r` bytes), with masked loads, its groups split over 4
/// accumulators.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
#[inline]
fn dense_tail(
    l: &DotLayer<'_, '_>,
    k: &Clamp,
    x: &[u8],
    groups: &Groups,
    r: usize,
    out: &mut [u8],
) {
    let channels = l.w.channels.shifts.len();
    let first = channels - r;
    let step = GROUP * r;
    let mask: __mmask64 = (1u64 << step) - 1;
    let zero = _mm512_setzero_si512();
    let mut acc = [start(l, first, r), zero, zero, zero];
    let w0 = l
        .weights
        .as_ptr()
        .wrapping_add(first / BLOCK * block_len(l.w.row_len));
    // SAFETY: as in `dense_tile`; the tail block's step `g` is the `4r` bytes at `64 g` past its start, which is
    // the last `r * K4` bytes of the section, and the masked load reads only those.
    unsafe {
        let mut g = 0;
        while g + 4 <= groups.whole {
            for (s, a) in acc.iter_mut().enumerate() {
                let xg = core::ptr::read_unaligned(x.as_ptr().add(GROUP * (g + s)).cast::<i32>());
                let w = _mm512_maskz_loadu_epi8(mask, w0.add(step * (g + s)).cast());
                *a = _mm512_dpbusd_epi32(*a, _mm512_set1_epi32(xg), w);
            }
            g += 4;
        }
        while g < groups.whole {
            let xg = core::ptr::read_unaligned(x.as_ptr().add(GROUP * g).cast::<i32>());
            let w = _mm512_maskz_loadu_epi8(mask, w0.add(step * g).cast());
            acc[0] = _mm512_dpbusd_epi32(acc[0], _mm512_set1_epi32(xg), w);
            g += 1;
        }
        if let Some(xg) = groups.last {
            let w = _mm512_maskz_loadu_epi8(mask, w0.add(step * g).cast());
            acc[0] = _mm512_dpbusd_epi32(acc[0], _mm512_set1_epi32(xg), w);
        }
    }
    let sum = _mm512_add_epi32(
        _mm512_add_epi32(acc[0], acc[1]),
        _mm512_add_epi32(acc[2], acc[3]),
    );
    store_block(l, k, sum, first, r, out);
}

/// Whether the sections hold what the kernels read for `channels` outputs of `row_len` inputs: checked once
/// per call, so the loops can read without bounds checks (never false for a loaded model).
fn lengths_ok(l: &DotLayer<'_, '_>, out_len: usize) -> bool {
    let channels = l.w.channels.shifts.len();
    let ch = &l.w.channels;
    l.weights.len() as u64 >= crate::format::layout::dot::weights_len(channels, l.w.row_len)
        && l.offset_bias.len() >= 4 * channels
        && ch.multipliers.len() >= 4 * channels
        && out_len >= channels
}

/// Dense over `dense-dot` weights.
///
/// # Safety
///
/// The CPU must have AVX-512 F, BW, VL, DQ and VNNI (the `Isa` token proves it).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
pub(crate) fn dense(l: &DotLayer<'_, '_>, x: &mut [u8], out: &mut [u8]) {
    let row_len = l.w.row_len;
    let channels = l.w.channels.shifts.len();
    if x.len() < row_len || !lengths_ok(l, out.len()) {
        return generic::dot::dense(l.q, l.weights, row_len, &l.w.channels, x, out);
    }
    let x = &mut x[..row_len];
    flip(x);
    let k = Clamp::new(l.q);
    let groups = Groups::of(x, row_len);
    let full = channels / BLOCK;
    let mut b = 0;
    while b + 8 <= full {
        dense_tile::<8, 2>(l, &k, x, &groups, b, out);
        b += 8;
    }
    match full - b {
        7 => dense_tile::<7, 2>(l, &k, x, &groups, b, out),
        6 => dense_tile::<6, 2>(l, &k, x, &groups, b, out),
        5 => dense_tile::<5, 2>(l, &k, x, &groups, b, out),
        4 => dense_tile::<4, 3>(l, &k, x, &groups, b, out),
        3 => dense_tile::<3, 4>(l, &k, x, &groups, b, out),
        2 => dense_tile::<2, 4>(l, &k, x, &groups, b, out),
        1 => dense_tile::<1, 8>(l, &k, x, &groups, b, out),
        _ => {}
    }
    if !channels.is_multiple_of(BLOCK) {
        dense_tail(l, &k, x, &groups, channels % BLOCK, out);
    }
    flip(x);
}

/// `TT` consecutive output time steps from `t0` of one block (`n` channels from `first`; steps of `4n` bytes)
/// of a Conv1d with dilation 1: each weight step is loaded once and used for all `TT` windows.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
#[inline]
fn conv_tile<const TT: usize>(
    l: &DotLayer<'_, '_>,
    k: &Clamp,
    (x, step): (&[u8], usize),
    (first, n): (usize, usize),
    t0: usize,
    out: &mut [u8],
) {
    let row_len = l.w.row_len;
    let channels = l.w.channels.shifts.len();
    let stride = GROUP * n;
    let mask: __mmask64 = if n >= BLOCK { !0 } else { (1u64 << stride) - 1 };
    let w0 = l
        .weights
        .as_ptr()
        .wrapping_add(first / BLOCK * block_len(row_len));
    let mut acc = [start(l, first, n); TT];
    // SAFETY: `conv` checked `weights.len() >= channels * K4` and that every window of the first `safe` time
    // steps (those this is called for), `x[t * step..t * step + K4]`, lies within `x`: group `g < K4 / 4` of
    // time step `t0 + i` reads 4 bytes inside its window, and the block's step `g` is `stride` bytes at
    // `g * stride` past the block's start, within the block (the masked load reads those bytes only).
    unsafe {
        let xp = x.as_ptr();
        for g in 0..padded_row(row_len) / GROUP {
            let w = _mm512_maskz_loadu_epi8(mask, w0.add(stride * g).cast());
            for (i, a) in acc.iter_mut().enumerate() {
                let at = (t0 + i) * step + GROUP * g;
                let xg = core::ptr::read_unaligned(xp.add(at).cast::<i32>());
                *a = _mm512_dpbusd_epi32(*a, _mm512_set1_epi32(xg), w);
            }
        }
    }
    for (i, &a) in acc.iter().enumerate() {
        let row = out.get_mut((t0 + i) * channels..).unwrap_or(&mut []);
        store_block(l, k, a, first, n, row);
    }
}

/// Conv1d over `dense-dot` weights: dilation 1 in tiles of output time steps; the portable kernel for the
/// time steps whose padded window would reach past the input, and for dilated convolutions.
///
/// # Safety
///
/// The CPU must have AVX-512 F, BW, VL, DQ and VNNI (the `Isa` token proves it).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
pub(crate) fn conv(
    l: &DotLayer<'_, '_>,
    (conv, c_in): (&Conv, usize),
    x: &mut [u8],
    out: &mut [u8],
) {
    let row_len = l.w.row_len;
    let channels = l.w.channels.shifts.len();
    let step = conv.stride * c_in;
    let out_t = out.len() / channels.max(1);
    if conv.dilation != 1 || channels == 0 || !lengths_ok(l, out.len()) {
        return generic::dot::conv1d(l.q, conv, (c_in, row_len), l.weights, &l.w.channels, x, out);
    }
    // The time steps whose whole padded window (K4 bytes) lies in `x`: all but at most the last few.
    let k4 = padded_row(row_len);
    let safe = if x.len() < k4 {
        0
    } else {
        ((x.len() - k4) / step.max(1) + 1).min(out_t)
    };
    flip(x);
    let k = Clamp::new(l.q);
    let blocks = channels.div_ceil(BLOCK);
    for b in 0..blocks {
        let (first, n) = (b * BLOCK, (channels - b * BLOCK).min(BLOCK));
        let mut t = 0;
        while t + 8 <= safe {
            conv_tile::<8>(l, &k, (x, step), (first, n), t, out);
            t += 8;
        }
        while t + 2 <= safe {
            conv_tile::<2>(l, &k, (x, step), (first, n), t, out);
            t += 2;
        }
        if t < safe {
            conv_tile::<1>(l, &k, (x, step), (first, n), t, out);
        }
    }
    flip(x);
    // The remaining steps (a partial last group that would read past the input) run the portable kernel on the
    // signed input, one window at a time.
    for t in safe..out_t {
        let window = x.get(t * step..).unwrap_or(&[]);
        let row = out
            .get_mut(t * channels..(t + 1) * channels)
            .unwrap_or(&mut []);
        generic::dot::dense(l.q, l.weights, row_len, &l.w.channels, window, row);
    }
}
