//! The Dense kernel of weight format 5, `dense-dsp`: weights laid out for the Cortex-M4's DSP extension.
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
//! `cfg(tickq_dsp)` and the word loops are the inline assembly in `dsp`: a whole group at a time with `LDRD`
//! when the weights are word aligned (a blob whose first byte is, as `tickq export` arranges, has every
//! section aligned), one channel at a time with `LDR` otherwise and for the plain rows.
//! Everywhere else the portable loop computes the same sums.
//! Integer sums are exact (the loader bounds every channel below `2^31`), so both give the same bytes.

#![deny(clippy::indexing_slicing)]

use crate::blob::le_i32;
use crate::model::LayerPlan;
use crate::requant::{MULTIPLIER_MIN, QuantMultiplier, requantize};

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

/// [`requantize`], computed with 32-bit halves when the right shift is at least 33 (multipliers below 1/4,
/// the usual case), which a 32-bit core does in a few instructions instead of 64-bit shifts by a variable amount.
///
/// With `v = acc * M` (an exact i64, `|v| < 2^62`) and `s >= 33`, `round_shift(v, s) = (v + 2^(s-1) + sgn(v)) >>
/// s` (`sgn` being -1 for negative `v`, else 0) equals `((hi(v + sgn) + 2^(s-33)) >> (s - 32))`: adding a
/// multiple of `2^32` commutes with taking the high word, and arithmetic shifts compose.
/// The result is within `2^31` in magnitude, so adding the zero point and clamping in i32 is exact.
/// Other shifts (and out-of-range multipliers, which the loader rejects) take [`requantize`] itself, with the
/// multiplier and shift clamped as [`QuantMultiplier::from_validated`] does: the result equals
/// `requantize(acc, QuantMultiplier::from_validated(m, s), ..)` for every input.
#[inline(always)]
pub(crate) fn requantize_split(acc: i32, m: i32, s: u8, out_zp: i8, lo: i8, hi: i8) -> i8 {
    // The loader checked `m >= 2^30` and `1 <= s <= 62`; other values take the general path, which clamps them.
    if !(33..=62).contains(&s) || m < MULTIPLIER_MIN {
        return requantize(acc, QuantMultiplier::from_validated(m, s), out_zp, lo, hi);
    }
    let s = u32::from(s);
    let v = i64::from(acc) * i64::from(m);
    let high = ((v + (v >> 63)) >> 32) as i32;
    let y = (high + (1 << (s - 33))) >> (s - 32);
    (y + i32::from(out_zp))
        .max(i32::from(lo))
        .min(i32::from(hi)) as i8
}

/// The portable word loop of one channel: `sum_q sum_e w[q * stride + e] * x[q][e]`, over the word steps both
/// have; `stride` is [`GROUP_STEP`] for a channel of a group and [`WORD`] for a plain row.
#[cfg_attr(tickq_dsp, allow(dead_code, reason = "the DSP form replaces it"))]
#[inline(never)]
fn channel_words(w: &[u8], stride: usize, xs: &[[u8; WORD]]) -> i32 {
    let mut acc = 0i32;
    for (word, x) in w.chunks(stride.max(1)).zip(xs) {
        acc = acc.wrapping_add(dot_bytes(word.get(..WORD).unwrap_or(&[]), x));
    }
    acc
}

/// The word sums of one unit: a group of [`GROUP`] channels (`width = GROUP`) or one plain row (`width = 1`),
/// into `acc[..width]`.
#[inline(always)]
fn unit_words(w: &[u8], width: usize, xs: &[[u8; WORD]], acc: &mut [i32; GROUP]) {
    #[cfg(tickq_dsp)]
    if width == GROUP && dsp::group_words(w, xs, acc) {
        return;
    }
    let stride = width * WORD;
    for (c, a) in acc.iter_mut().take(width).enumerate() {
        let w = w.get(c * WORD..).unwrap_or(&[]);
        #[cfg(tickq_dsp)]
        {
            *a = dsp::channel_words(w, stride, xs);
        }
        #[cfg(not(tickq_dsp))]
        {
            *a = channel_words(w, stride, xs);
        }
    }
}

/// Dense over `dense-dsp` weights: `out[o] = requant(b_eff[o] + sum_k w[o][k] * x[k])`.
///
/// `x` holds the `row_len` inputs; its last `row_len % 4` values (not a whole word) are multiplied with the
/// first bytes of each channel's last word, whose other bytes are padding.
/// The groups and then the plain rows go through one loop (a unit of `width` 4 or 1 channels), so that the
/// requantization is compiled once.
#[inline(never)]
pub(crate) fn dense(l: &LayerPlan<'_>, x: &[u8], out: &mut [u8]) {
    let x = x.get(..l.row_len).unwrap_or(x);
    let (xs, x_tail) = x.as_chunks::<WORD>();
    let k4 = padded_row(l.row_len);
    let groups = l.weights.chunks_exact((GROUP * k4).max(1));
    let rows = groups.remainder().chunks_exact(k4.max(1));
    let units = groups.map(|w| (w, GROUP)).chain(rows.map(|w| (w, 1)));
    let mut channels = out
        .iter_mut()
        .zip(l.bias.chunks_exact(4))
        .zip(l.multipliers.chunks_exact(4))
        .zip(l.shifts);
    for (w, width) in units {
        let mut acc = [0i32; GROUP];
        unit_words(w, width, xs, &mut acc);
        if !x_tail.is_empty() {
            // The partial last word: at `xs.len()` word steps of `width * 4` bytes.
            let tail = w.get(xs.len() * width * WORD..).unwrap_or(&[]);
            for (a, word) in acc.iter_mut().zip(tail.chunks(WORD)) {
                *a = a.wrapping_add(dot_bytes(word, x_tail));
            }
        }
        for (&a, (((o, b), m), &s)) in acc.iter().zip(channels.by_ref().take(width)) {
            let sum = le_i32(b).wrapping_add(a);
            *o = requantize_split(sum, le_i32(m), s, l.out_zp, l.act_min, l.act_max) as u8;
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

    /// The word loop of a whole group (4 channels sharing each input word); false (and nothing done) when the
    /// weights are not word aligned, as `LDRD` needs.
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

    /// The DSP form of [`super::channel_words`]: one channel whose words are `stride` bytes apart (4 for a
    /// plain row, 16 for a channel of a group whose weights are not word aligned); it only uses `LDR`, which
    /// needs no alignment.
    #[inline(never)]
    pub(super) fn channel_words(w: &[u8], stride: usize, xs: &[[u8; WORD]]) -> i32 {
        let stride = stride.max(WORD);
        // Word `q` is at `q * stride`, so `n` words need `(n - 1) * stride + 4` bytes.
        let n = xs.len().min((w.len() + stride - WORD) / stride);
        let mut acc = 0i32;
        if n == 0 {
            return acc;
        }
        // SAFETY: the loop runs `n >= 1` times; step `q` reads the 4 bytes at `w[q * stride..]` and `xs[q]`, and
        // `(n - 1) * stride + 4 <= w.len()` and `n <= xs.len()` hold by the choice of `n`.
        // `LDR` may be unaligned on ARMv7-M (the reset value of `CCR.UNALIGN_TRP` is 0, and nothing here sets
        // it); the block only reads memory, writes only its operands and the flags, and does not touch the stack.
        unsafe {
            asm!(
                "2:",
                "ldr {xl}, [{xp}], #4",
                "ldr {w}, [{wp}]",
                "add {wp}, {wp}, {stride}",
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
                stride = in(reg) stride,
                acc = inout(reg) acc,
                xl = out(reg) _,
                xh = out(reg) _,
                w = out(reg) _,
                t = out(reg) _,
                options(readonly, nostack),
            );
        }
        acc
    }
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    reason = "tests index like the formulas they check"
)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The split requantization equals [`requantize`] for every accumulator, multiplier, shift and clamp.
        #[test]
        fn requantize_split_matches(
            acc in proptest::prelude::any::<i32>(),
            m in proptest::prelude::any::<i32>(),
            s in proptest::prelude::any::<u8>(),
            zp in proptest::prelude::any::<i8>(),
            a in proptest::prelude::any::<i8>(),
            b in proptest::prelude::any::<i8>(),
        ) {
            let q = QuantMultiplier::from_validated(m, s);
            // Any pair, ordered or not: both clamp with max, then min.
            let (lo, hi) = (a, b);
            proptest::prop_assert_eq!(requantize_split(acc, m, s, zp, lo, hi), requantize(acc, q, zp, lo, hi));
        }
    }

    #[test]
    fn requantize_split_edges() {
        for s in [0u8, 32, 33, 34, 40, 61, 62, 63, 255] {
            for m in [i32::MIN, 0, (1 << 30) - 1, 1 << 30, (1 << 30) + 1, i32::MAX] {
                let q = QuantMultiplier::from_validated(m, s);
                for acc in [
                    i32::MIN,
                    i32::MIN + 1,
                    -(1 << 20) - 1,
                    -1,
                    0,
                    1,
                    1 << 20,
                    i32::MAX,
                ] {
                    for (lo, hi) in [(-128, 127), (0, 127), (-5, 5), (3, 3)] {
                        for zp in [-128, -3, 0, 7, 127] {
                            assert_eq!(
                                requantize_split(acc, m, s, zp, lo, hi),
                                requantize(acc, q, zp, lo, hi),
                                "{acc} {m} {s} {zp} {lo} {hi}"
                            );
                        }
                    }
                }
            }
        }
    }

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
