//! The Dense kernel of weight format 3, `dense-dsp`: weights laid out for the Cortex-M4's DSP extension.
//!
//! # The layout
//!
//! Each channel's row of `K` weights is padded with zeros to `K4 = round_up(K, 4)` and cut into words of 4
//! consecutive weights, in their natural order.
//! Channels go in groups of [`GROUP`] = 4: group `g` holds channels `4g` to `4g + 3` and, for each word `q`, the 4
//! channels' words `q` one after the other (16 bytes per word step).
//! The last `C_out % 4` channels follow as plain rows of `K4` bytes each.
//! So `w[o][k]` is at byte `(o / 4) * 4 * K4 + (k / 4) * 16 + (o % 4) * 4 + k % 4` for `o < 4 * floor(C_out / 4)`,
//! and at `4 * floor(C_out / 4) * K4 + (o - 4 * floor(C_out / 4)) * K4 + k` after that (`docs/BLOB.md`).
//!
//! # Why this shape
//!
//! `SMLAD` multiplies two pairs of 16-bit lanes and adds both products to an accumulator; `SXTB16` sign-extends
//! bytes 0 and 2 of a word into two 16-bit lanes, and with `ROR #8` bytes 1 and 3.
//! Applied to a weight word `(w0, w1, w2, w3)` and an input word `(x0, x1, x2, x3)` alike, they give `(w0, w2)`,
//! `(w1, w3)`, `(x0, x2)` and `(x1, x3)`, and two `SMLAD`s add `w0 x0 + w2 x2 + w1 x1 + w3 x3`: 4 multiply-adds
//! for one word of weights.
//! A group of 4 channels shares each input word, so one word step is 16 multiply-adds for 2 `LDRD` of weights,
//! one `LDR` of inputs, 2 + 8 `SXTB16`, 8 `SMLAD` and the loop's 2 instructions: 23 instructions, 1.44 per
//! multiply-add, with the 4 accumulators and every operand in registers.
//!
//! # Targets
//!
//! On `thumbv7em` targets (Cortex-M4 and M7, which always have the DSP extension) the build script sets
//! `cfg(tickq_dsp)` and the word loop is the inline assembly in [`dsp`]; everywhere else, and on the
//! Cortex-M4 when the weights are not word aligned (`LDRD` needs alignment; a blob in flash is aligned when its
//! first byte is, as `tickq export` arranges), the portable loop computes the same sums.
//! Integer sums are exact (the loader bounds every channel below `2^31`), so both give the same bytes.

#![deny(clippy::indexing_slicing)]

use crate::blob::le_i32;
use crate::model::LayerPlan;
use crate::requant::{QuantMultiplier, requantize};

/// The channels of one group.
pub(crate) const GROUP: usize = 4;

/// The weights (and inputs) of one word.
pub(crate) const WORD: usize = 4;

/// The bytes of one word step of a group: one word of each of its channels.
const GROUP_STEP: usize = GROUP * WORD;

/// The padded row length `K4 = round_up(K, 4)`.
#[inline]
pub(crate) const fn padded_row(row_len: usize) -> usize {
    row_len.div_ceil(WORD) * WORD
}

/// The length of a `dense-dsp` weights section, in u64 so that no product can wrap on 32-bit targets.
#[inline]
pub(crate) const fn weights_len(channels: usize, row_len: usize) -> u64 {
    channels as u64 * padded_row(row_len) as u64
}

/// Where weight `k` of output channel `o` lives in the section of a layer with `channels` outputs.
#[inline]
pub(crate) const fn index(o: usize, k: usize, row_len: usize, channels: usize) -> usize {
    let k4 = padded_row(row_len);
    let grouped = channels / GROUP * GROUP;
    if o < grouped {
        (o / GROUP) * GROUP * k4 + (k / WORD) * GROUP_STEP + (o % GROUP) * WORD + k % WORD
    } else {
        grouped * k4 + (o - grouped) * k4 + k
    }
}

/// The channel and input of byte `i` of a section (the inverse of [`index`]); `k >= row_len` is padding.
#[inline]
#[cfg(test)]
pub(crate) const fn position(i: usize, row_len: usize, channels: usize) -> (usize, usize) {
    let k4 = padded_row(row_len);
    let grouped = channels / GROUP * GROUP;
    let group_len = GROUP * k4;
    if k4 == 0 {
        return (0, 0);
    }
    if i < grouped * k4 {
        let (g, r) = (i / group_len, i % group_len);
        let (q, r) = (r / GROUP_STEP, r % GROUP_STEP);
        (g * GROUP + r / WORD, q * WORD + r % WORD)
    } else {
        let r = i - grouped * k4;
        (grouped + r / k4, r % k4)
    }
}

/// Sums `w[e] * x[e]` over the first `min(w.len(), x.len())` int8 values stored as bytes.
#[inline(always)]
fn dot_bytes(w: &[u8], x: &[u8]) -> i32 {
    let mut acc = 0i32;
    for (&a, &b) in w.iter().zip(x) {
        acc = acc.wrapping_add(i32::from(a as i8) * i32::from(b as i8));
    }
    acc
}

/// The portable word loop of one group: `acc[c] += sum_q sum_e w[q][c][e] * x[q][e]`, over the word steps both
/// `w` and `xs` have.
#[cfg_attr(
    tickq_dsp,
    allow(dead_code, reason = "the fallback for unaligned weights")
)]
#[inline(never)]
pub(crate) fn group_words(w: &[u8], xs: &[[u8; WORD]], acc: &mut [i32; GROUP]) {
    let (steps, _) = w.as_chunks::<GROUP_STEP>();
    for (step, x) in steps.iter().zip(xs) {
        let (words, _) = step.as_chunks::<WORD>();
        for (a, word) in acc.iter_mut().zip(words) {
            *a = a.wrapping_add(dot_bytes(word, x));
        }
    }
}

/// The portable word loop of one plain row: `sum_q sum_e w[q][e] * x[q][e]`.
#[cfg_attr(
    tickq_dsp,
    allow(dead_code, reason = "the fallback for unaligned weights")
)]
#[inline(never)]
pub(crate) fn row_words(w: &[u8], xs: &[[u8; WORD]]) -> i32 {
    let (words, _) = w.as_chunks::<WORD>();
    let mut acc = 0i32;
    for (word, x) in words.iter().zip(xs) {
        acc = acc.wrapping_add(dot_bytes(word, x));
    }
    acc
}

/// One group's word loop: the DSP assembly where it applies, the portable loop otherwise.
#[inline(always)]
fn group_sums(w: &[u8], xs: &[[u8; WORD]], acc: &mut [i32; GROUP]) {
    #[cfg(tickq_dsp)]
    if dsp::group_words(w, xs, acc) {
        return;
    }
    group_words(w, xs, acc);
}

/// One plain row's word loop: the DSP assembly where it applies, the portable loop otherwise.
#[inline(always)]
fn row_sums(w: &[u8], xs: &[[u8; WORD]]) -> i32 {
    #[cfg(tickq_dsp)]
    if let Some(sum) = dsp::row_words(w, xs) {
        return sum;
    }
    row_words(w, xs)
}

/// One channel's requantization with its bias, multiplier and shift bytes.
#[inline(always)]
fn requant(l: &LayerPlan<'_>, sum: i32, b: &[u8], m: &[u8], s: u8) -> u8 {
    let acc = le_i32(b).wrapping_add(sum);
    requantize(
        acc,
        QuantMultiplier::from_validated(le_i32(m), s),
        l.out_zp,
        l.act_min,
        l.act_max,
    ) as u8
}

/// Dense over `dense-dsp` weights: `out[o] = requant(b_eff[o] + sum_k w[o][k] * x[k])`.
///
/// `x` holds the `row_len` inputs; its last `row_len % 4` values (not a whole word) are multiplied with the
/// first bytes of each channel's last word, whose other bytes are padding.
pub(crate) fn dense(l: &LayerPlan<'_>, x: &[u8], out: &mut [u8]) {
    let x = x.get(..l.row_len).unwrap_or(x);
    let (xs, x_tail) = x.as_chunks::<WORD>();
    let k4 = padded_row(l.row_len);
    // The byte offset of the last, partial word in a group and in a row.
    let (group_tail, row_tail) = (xs.len() * GROUP_STEP, xs.len() * WORD);
    let groups = l.weights.chunks_exact((GROUP * k4).max(1));
    let rows_w = groups.remainder();
    let mut params = l
        .bias
        .chunks_exact(4)
        .zip(l.multipliers.chunks_exact(4))
        .zip(l.shifts);
    let (grouped_out, rows_out) = out.split_at_mut((groups.len() * GROUP).min(out.len()));
    for (o, w) in grouped_out.chunks_exact_mut(GROUP).zip(groups) {
        let mut acc = [0i32; GROUP];
        group_sums(w, xs, &mut acc);
        if !x_tail.is_empty() {
            let tail = w.get(group_tail..).unwrap_or(&[]);
            for (a, word) in acc.iter_mut().zip(tail.chunks_exact(WORD)) {
                *a = a.wrapping_add(dot_bytes(word, x_tail));
            }
        }
        for (o, a) in o.iter_mut().zip(acc) {
            if let Some(((b, m), &s)) = params.next() {
                *o = requant(l, a, b, m, s);
            }
        }
    }
    for (o, w) in rows_out.iter_mut().zip(rows_w.chunks_exact(k4.max(1))) {
        let mut sum = row_sums(w, xs);
        sum = sum.wrapping_add(dot_bytes(w.get(row_tail..).unwrap_or(&[]), x_tail));
        if let Some(((b, m), &s)) = params.next() {
            *o = requant(l, sum, b, m, s);
        }
    }
}

/// The word loops in Cortex-M4 assembly (`SXTB16`, `SMLAD`); the only `unsafe` code of the crate.
#[cfg(tickq_dsp)]
#[allow(
    unsafe_code,
    reason = "inline assembly for the DSP extension, see each SAFETY comment"
)]
mod dsp {
    use super::{GROUP, GROUP_STEP, WORD};
    use core::arch::asm;

    /// The DSP form of [`super::group_words`]; false (and nothing done) when the weights are not word aligned.
    #[inline(never)]
    pub(super) fn group_words(w: &[u8], xs: &[[u8; WORD]], acc: &mut [i32; GROUP]) -> bool {
        let n = xs.len().min(w.len() / GROUP_STEP);
        if !w.as_ptr().addr().is_multiple_of(4) {
            return false;
        }
        if n == 0 {
            return true;
        }
        let [mut a0, mut a1, mut a2, mut a3] = *acc;
        // SAFETY: the loop runs `n >= 1` times; each time it reads 16 bytes at `wp` and 4 bytes at `xp` and
        // advances both past them, so it reads `w[..16 n]` and `xs[..n]`, which exist because
        // `n <= w.len() / 16` and `n <= xs.len()`.
        // `wp` is word aligned (checked above) and stays so, as `LDRD` requires; `LDR` of `xp` may be unaligned,
        // which ARMv7-M allows for `LDR` (the reset value of `CCR.UNALIGN_TRP` is 0, and nothing here sets it).
        // The block only reads memory, writes only its operands and the flags, and does not touch the stack.
        unsafe {
            asm!(
                "2:",
                "ldr {xl}, [{xp}], #4",
                "sxtb16 {xh}, {xl}, ror #8",
                "sxtb16 {xl}, {xl}",
                "ldrd {w0}, {w1}, [{wp}], #8",
                "sxtb16 {t}, {w0}",
                "smlad {a0}, {t}, {xl}, {a0}",
                "sxtb16 {t}, {w0}, ror #8",
                "smlad {a0}, {t}, {xh}, {a0}",
                "sxtb16 {t}, {w1}",
                "smlad {a1}, {t}, {xl}, {a1}",
                "sxtb16 {t}, {w1}, ror #8",
                "smlad {a1}, {t}, {xh}, {a1}",
                "ldrd {w0}, {w1}, [{wp}], #8",
                "sxtb16 {t}, {w0}",
                "smlad {a2}, {t}, {xl}, {a2}",
                "sxtb16 {t}, {w0}, ror #8",
                "smlad {a2}, {t}, {xh}, {a2}",
                "sxtb16 {t}, {w1}",
                "smlad {a3}, {t}, {xl}, {a3}",
                "sxtb16 {t}, {w1}, ror #8",
                "smlad {a3}, {t}, {xh}, {a3}",
                "subs {n}, {n}, #1",
                "bne 2b",
                wp = inout(reg) w.as_ptr() => _,
                xp = inout(reg) xs.as_ptr() => _,
                n = inout(reg) n => _,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                a3 = inout(reg) a3,
                xl = out(reg) _,
                xh = out(reg) _,
                w0 = out(reg) _,
                w1 = out(reg) _,
                t = out(reg) _,
                options(readonly, nostack),
            );
        }
        *acc = [a0, a1, a2, a3];
        true
    }

    /// The DSP form of [`super::row_words`]; `None` when the row is not word aligned.
    #[inline(never)]
    pub(super) fn row_words(w: &[u8], xs: &[[u8; WORD]]) -> Option<i32> {
        let n = xs.len().min(w.len() / WORD);
        if !w.as_ptr().addr().is_multiple_of(4) {
            return None;
        }
        let mut acc = 0i32;
        if n == 0 {
            return Some(acc);
        }
        // SAFETY: as in `group_words`, with 4 bytes of `w` per step: it reads `w[..4 n]` and `xs[..n]`, which
        // exist because `n <= w.len() / 4` and `n <= xs.len()`; `LDR` may be unaligned on ARMv7-M.
        unsafe {
            asm!(
                "2:",
                "ldr {xl}, [{xp}], #4",
                "ldr {w}, [{wp}], #4",
                "sxtb16 {xh}, {xl}, ror #8",
                "sxtb16 {xl}, {xl}",
                "sxtb16 {t}, {w}",
                "smlad {acc}, {t}, {xl}, {acc}",
                "sxtb16 {t}, {w}, ror #8",
                "smlad {acc}, {t}, {xh}, {acc}",
                "subs {n}, {n}, #1",
                "bne 2b",
                wp = inout(reg) w.as_ptr() => _,
                xp = inout(reg) xs.as_ptr() => _,
                n = inout(reg) n => _,
                acc = inout(reg) acc,
                xl = out(reg) _,
                xh = out(reg) _,
                w = out(reg) _,
                t = out(reg) _,
                options(readonly, nostack),
            );
        }
        Some(acc)
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, reason = "tests index like the formulas they check")]
mod tests {
    use super::*;

    /// `index` and `position` are inverse over every byte of a section, for group counts and row lengths
    /// around the word and group sizes.
    #[test]
    fn index_and_position_agree() {
        for channels in 1..=10 {
            for row_len in 1..=10 {
                let len = usize::try_from(weights_len(channels, row_len)).unwrap();
                let mut seen = vec![false; len];
                for o in 0..channels {
                    for k in 0..padded_row(row_len) {
                        let i = index(o, k, row_len, channels);
                        assert!(!seen[i], "byte {i} used twice");
                        seen[i] = true;
                        assert_eq!(position(i, row_len, channels), (o, k));
                    }
                }
                assert!(seen.iter().all(|&s| s));
            }
        }
    }
}
