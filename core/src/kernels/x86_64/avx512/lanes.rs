//! AVX-512 VNNI partial dot products for the window session (`stream::window`): i32 sums of int8 weights
//! against one int8 input column, with no requantization, for a Conv1d summed from per-tap partials.
//!
//! The weights are laid out as the session writes them: for each group `g` of 4 inputs, one quad of 4 weights
//! per lane (`(g * lanes + lane) * 4`), so 16 consecutive lanes of one group are one 64-byte `vpdpbusd`
//! operand, as a `dense-dot` block step is. The inputs get 128 added (sign bit flipped) as they are broadcast,
//! and each lane then subtracts its `128 * sum w`, which the session also stores: exact modulo 2^32, as the
//! `dense-dot` kernels' second bias is.

use core::arch::x86_64::*;

use super::{Clamp, SplitShift, requant16, requant16_split, store_bytes};
use crate::plan::{Channels, OutQuant};

/// The input groups whose words [`lanes_dot`] keeps in a stack buffer (a longer column rebuilds each word
/// for every 16 lanes).
const WORDS: usize = 64;

/// The 16-lane registers one pass accumulates at once.
const TILE: usize = 4;

/// The sign bits of 4 bytes.
const SIGNS: i32 = 0x8080_8080_u32 as i32;

/// Group `g` of `x` (inputs `4g..4g + 4`, 0 past the end) with 128 added to each byte, as one little-endian word.
#[inline(always)]
fn unsigned_word(x: &[u8], g: usize) -> i32 {
    let quad = match x.get(4 * g..4 * g + 4) {
        Some(&[a, b, c, d]) => [a, b, c, d],
        _ => {
            let mut quad = [0u8; 4];
            for (d, &v) in quad.iter_mut().zip(x.iter().skip(4 * g)) {
                *d = v;
            }
            quad
        }
    };
    i32::from_le_bytes(quad) ^ SIGNS
}

/// `acc[j] += sum_c w[lane][c] * x[c]` for lanes `from + j`, `j < acc.len()`: `weights` holds
/// `ceil(x.len() / 4)` groups of `lanes` quads, `corr` the `lanes` little-endian `128 * sum_c w[lane][c]`.
///
/// Returns `false`, having done nothing, if a slice is shorter than that.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
pub(crate) fn lanes_dot(
    (weights, lanes, corr): (&[u8], usize, &[u8]),
    from: usize,
    x: &[u8],
    acc: &mut [i32],
) -> bool {
    let n = acc.len();
    let groups = x.len().div_ceil(4);
    let fits = from
        .checked_add(n)
        .is_some_and(|end| end <= lanes && corr.len() >= 4 * lanes)
        && groups
            .checked_mul(lanes)
            .and_then(|v| v.checked_mul(4))
            .is_some_and(|len| weights.len() >= len);
    if !fits {
        return false;
    }
    let mut words = [0i32; WORDS];
    for (g, w) in words.iter_mut().enumerate().take(groups) {
        *w = unsigned_word(x, g);
    }
    // Tiles of up to `TILE` registers of 16 lanes, each group's broadcast shared by the tile, so that that
    // many independent `vpdpbusd` chains hide its latency.
    let chunks = n.div_ceil(16);
    let mut c0 = 0;
    while c0 < chunks {
        let nb = (chunks - c0).min(TILE);
        let t = Tile {
            weights,
            lanes,
            corr,
            from,
            first: 16 * c0,
            words: &words,
            x,
        };
        match nb {
            1 => tile::<1>(&t, acc),
            2 => tile::<2>(&t, acc),
            3 => tile::<3>(&t, acc),
            _ => tile::<4>(&t, acc),
        }
        c0 += nb;
    }
    true
}

/// Requantizes `acc` (channel `first + j` in `acc[j]`) into `out[j]` with the channels' multipliers and shifts,
/// exactly `requant::requantize` (the `dense-dot` kernels' vectorized requantization).
///
/// Returns `false`, having done nothing, if a slice is shorter than that.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
pub(crate) fn requant(
    q: &OutQuant,
    ch: &Channels<'_>,
    first: usize,
    acc: &[i32],
    out: &mut [u8],
) -> bool {
    let n = acc.len();
    let fits = first.checked_add(n).is_some_and(|end| {
        ch.multipliers.len() >= 4 * end && ch.shifts.len() >= end && out.len() >= n
    });
    if !fits {
        return false;
    }
    let k = Clamp::new(q);
    let mut j = 0;
    while j < n {
        let m = (n - j).min(16);
        let mask: __mmask16 = if m >= 16 { !0 } else { (1 << m) - 1 };
        // SAFETY: checked above: `acc` and `out` have `n >= j + m` values, the multipliers and shifts
        // `first + n >= first + j + m` channels; the masked loads and the store touch only those `m` lanes.
        unsafe {
            let a = _mm512_maskz_loadu_epi32(mask, acc.as_ptr().add(j).cast());
            let mult =
                _mm512_maskz_loadu_epi32(mask, ch.multipliers.as_ptr().add(4 * (first + j)).cast());
            let shifts = _mm_maskz_loadu_epi8(mask, ch.shifts.as_ptr().add(first + j).cast());
            let shift = _mm512_cvtepu8_epi32(shifts);
            let bytes = if ch.shifts_split {
                requant16_split(a, mult, SplitShift::new(shift), &k)
            } else {
                requant16(a, mult, shift, &k)
            };
            store_bytes(out.as_mut_ptr().add(j), mask, bytes);
        }
        j += 16;
    }
    true
}

/// What one tile of [`lanes_dot`] reads: its registers start at lane `from + first` (`acc[first]`).
struct Tile<'a> {
    weights: &'a [u8],
    lanes: usize,
    corr: &'a [u8],
    from: usize,
    first: usize,
    words: &'a [i32; WORDS],
    x: &'a [u8],
}

/// `NB` registers of 16 lanes from `t.first` on (the last one partial if `acc` ends inside it).
///
/// The caller checked the lengths [`lanes_dot`] checks, and that `acc` reaches into register `NB - 1`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
#[inline]
fn tile<const NB: usize>(t: &Tile<'_>, acc: &mut [i32]) {
    let n = acc.len();
    let masks: [__mmask16; NB] = core::array::from_fn(|b| {
        let m = n.saturating_sub(t.first + 16 * b).min(16);
        if m >= 16 { !0 } else { (1 << m) - 1 }
    });
    let mut sums = [_mm512_setzero_si512(); NB];
    let groups = t.x.len().div_ceil(4);
    for g in 0..groups {
        let word = match t.words.get(g) {
            Some(&w) => w,
            None => unsigned_word(t.x, g),
        };
        let xb = _mm512_set1_epi32(word);
        let base = 4 * (g * t.lanes + t.from + t.first);
        for b in 0..NB {
            // SAFETY: the lanes of `masks[b]` (from `from + first + 16 * b` on) of group `g` end within
            // `weights` (`lanes_dot` checked `from + n <= lanes` and `groups * lanes * 4 <= weights.len()`);
            // the masked load reads only those quads.
            let w = unsafe {
                _mm512_maskz_loadu_epi32(masks[b], t.weights.as_ptr().add(base + 64 * b).cast())
            };
            sums[b] = _mm512_dpbusd_epi32(sums[b], xb, w);
        }
    }
    for b in 0..NB {
        let j = t.first + 16 * b;
        // SAFETY: `corr` has `lanes >= from + n` words and `acc` has `n` values; the masked loads and store
        // touch only the lanes of `masks[b]`, which are below `n` (none if register `b` starts past it).
        unsafe {
            let c =
                _mm512_maskz_loadu_epi32(masks[b], t.corr.as_ptr().add(4 * (t.from + j)).cast());
            let p = acc.as_mut_ptr().wrapping_add(j);
            let prev = _mm512_maskz_loadu_epi32(masks[b], p.cast());
            let r = _mm512_add_epi32(prev, _mm512_sub_epi32(sums[b], c));
            _mm512_mask_storeu_epi32(p.cast(), masks[b], r);
        }
    }
}
