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
#[cfg(not(tickq_dsp))]
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
#[cfg_attr(
    tickq_dsp,
    allow(dead_code, reason = "the portable kernel's; the assembly has its own")
)]
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

/// The requantization of the Cortex-M4 layer kernel (`dsp::groups`), step by step as its instructions do it,
/// for a multiplier `m >= 2^30` and a shift `s` in `[33, 62]` (what the loader and `LayerPlan::shifts_split`
/// guarantee there); `c = 1 + 2 * out_zp`.
///
/// - `SMULL`: `v = acc * m` exactly, as a low and a high word.
/// - `ADDS`/`ADC` with the high word shifted right by 31: `v + sgn(v)` (`sgn` being -1 for negative `v`).
/// - `ASR` by `s - 33`, `ADD c`, then `SSAT #8` of that shifted right by 1: `((h >> (s - 33)) + 1) >> 1` is
///   `(h + 2^(s-33)) >> (s - 32)` (with `h = hi(v + sgn)` and `q = h >> (s - 33)`, adding 1 and halving floors
///   `(q + 1) / 2`, the same as flooring `(h + 2^(s-33)) / 2^(s-32)`), which [`requantize_split`] shows is
///   `round_shift(v, s)`; `c` adds the zero point as `2 * out_zp` before the halving.
/// - `SSAT #8` then, per byte, `SSUB8`/`SEL` against `act_min` and `act_max`: the clamp of [`requantize`],
///   since `[act_min, act_max]` lies within the int8 range (and with `act_min > act_max` both give `act_max`).
///
/// The result equals `requantize(acc, QuantMultiplier::from_validated(m, s), out_zp, lo, hi)` (proptest below);
/// `dsp::groups` must compute exactly this, and the firmware test checks it on the device.
#[cfg_attr(
    not(test),
    allow(
        dead_code,
        reason = "the specification of the assembly, checked by tests"
    )
)]
pub(crate) fn requantize_asm_model(acc: i32, m: i32, s: u8, c: i32, lo: i8, hi: i8) -> i8 {
    let v = i64::from(acc) * i64::from(m);
    let (v_lo, v_hi) = (v as u32, (v >> 32) as i32);
    let sgn = v_hi >> 31;
    let (_, carry) = v_lo.overflowing_add(sgn as u32);
    let h = v_hi.wrapping_add(sgn).wrapping_add(i32::from(carry));
    // `ASR` by a register takes its low byte; `s - 33` is in `[0, 29]` here.
    let q = h >> (u32::from(s.wrapping_sub(33)) & 31);
    let y = (q.wrapping_add(c) >> 1).clamp(-128, 127);
    y.max(i32::from(lo)).min(i32::from(hi)) as i8
}

/// The portable word loop of one channel: `sum_q sum_e w[q * stride + e] * x[q][e]`, over the word steps both
/// have; `stride` is [`GROUP_STEP`] for a channel of a group and [`WORD`] for a plain row.
#[cfg(not(tickq_dsp))]
#[inline(never)]
fn channel_words(w: &[u8], stride: usize, xs: &[[u8; WORD]]) -> i32 {
    let mut acc = 0i32;
    for (word, x) in w.chunks(stride.max(1)).zip(xs) {
        acc = acc.wrapping_add(dot_bytes(word.get(..WORD).unwrap_or(&[]), x));
    }
    acc
}

/// Dense over `dense-dsp` weights: `out[o] = requant(b_eff[o] + sum_k w[o][k] * x[k])`.
///
/// On `thumbv7em` the assembly of `dsp::dense` runs the layer when it applies (aligned sections, shifts of 33 to
/// 62, rows of 13 to 256 inputs) and [`dense_simple`] otherwise; elsewhere [`dense_portable`] runs it.
/// All three compute the same exact sums and requantize them identically.
#[inline(never)]
pub(crate) fn dense(l: &LayerPlan<'_>, x: &[u8], out: &mut [u8]) {
    let x = x.get(..l.row_len).unwrap_or(x);
    #[cfg(tickq_dsp)]
    if !dsp::dense(l, x, out) {
        dense_simple(l, x, out);
    }
    #[cfg(not(tickq_dsp))]
    dense_portable(l, x, out);
}

/// The plainest form of [`dense`], one weight at a time through [`index`]: small code for the cases the
/// Cortex-M4 assembly leaves out (unaligned blobs, multipliers of 1/4 or more, very short or long rows).
#[cfg_attr(
    not(any(tickq_dsp, test)),
    allow(dead_code, reason = "only the Cortex-M4 falls back to it")
)]
#[inline(never)]
fn dense_simple(l: &LayerPlan<'_>, x: &[u8], out: &mut [u8]) {
    let channels = out
        .iter_mut()
        .zip(l.bias.chunks_exact(4))
        .zip(l.multipliers.chunks_exact(4))
        .zip(l.shifts);
    for (o, (((y, b), m), &s)) in channels.enumerate() {
        let mut acc = le_i32(b);
        for (k, &v) in x.iter().enumerate() {
            let w = l
                .weights
                .get(index(o, k, l.row_len, l.out_c))
                .map_or(0, |&w| w as i8);
            acc = acc.wrapping_add(i32::from(w) * i32::from(v as i8));
        }
        *y = crate::kernels::requantize_channel(l, acc, m, s);
    }
}

/// The word sums of one unit: a group of [`GROUP`] channels (`width = GROUP`) or one plain row (`width = 1`),
/// into `acc[..width]`.
#[cfg(not(tickq_dsp))]
#[inline(always)]
fn unit_words(w: &[u8], width: usize, xs: &[[u8; WORD]], acc: &mut [i32; GROUP]) {
    let stride = width * WORD;
    for (c, a) in acc.iter_mut().take(width).enumerate() {
        *a = channel_words(w.get(c * WORD..).unwrap_or(&[]), stride, xs);
    }
}

/// The portable [`dense`]: `x` holds the `row_len` inputs; its last `row_len % 4` values (not a whole word) are
/// multiplied with the first bytes of each channel's last word, whose other bytes are padding.
/// The groups and then the plain rows go through one loop (a unit of `width` 4 or 1 channels), so that the
/// requantization is compiled once.
#[cfg(not(tickq_dsp))]
fn dense_portable(l: &LayerPlan<'_>, x: &[u8], out: &mut [u8]) {
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
    use super::{GROUP, LayerPlan, WORD, le_i32, padded_row};
    use core::arch::asm;
    use core::mem::MaybeUninit;

    /// One word step of a group: the 4 channels' weight words times one expanded input word (in `x0`, `x1`):
    /// 19 instructions for 16 multiply-adds.
    macro_rules! step {
        () => {
            concat!(
                "ldrd {x0}, {x1}, [{xp}], #8\n",
                "ldrd {w0}, {w1}, [{wp}], #8\n",
                "sxtb16 {t}, {w0}\n",
                "smlad {a0}, {t}, {x0}, {a0}\n",
                "sxtb16 {t}, {w0}, ror #8\n",
                "smlad {a0}, {t}, {x1}, {a0}\n",
                "sxtb16 {t}, {w1}\n",
                "smlad {a1}, {t}, {x0}, {a1}\n",
                "sxtb16 {t}, {w1}, ror #8\n",
                "smlad {a1}, {t}, {x1}, {a1}\n",
                "ldrd {w0}, {w1}, [{wp}], #8\n",
                "sxtb16 {t}, {w0}\n",
                "smlad {a2}, {t}, {x0}, {a2}\n",
                "sxtb16 {t}, {w0}, ror #8\n",
                "smlad {a2}, {t}, {x1}, {a2}\n",
                "sxtb16 {t}, {w1}\n",
                "smlad {a3}, {t}, {x0}, {a3}\n",
                "sxtb16 {t}, {w1}, ror #8\n",
                "smlad {a3}, {t}, {x1}, {a3}",
            )
        };
    }

    /// One input word expanded: `x0, x2` and `x1, x3` as 16-bit pairs, stored at `dp`.
    macro_rules! expand {
        () => {
            concat!(
                "ldr {t}, [{xp}], #4\n",
                "sxtb16 {lo}, {t}\n",
                "sxtb16 {hi}, {t}, ror #8\n",
                "strd {lo}, {hi}, [{dp}], #8",
            )
        };
    }

    /// One word step of a plain row: 6 instructions for 4 multiply-adds.
    macro_rules! row_step {
        () => {
            concat!(
                "ldr {w}, [{wp}], #4\n",
                "ldrd {x0}, {x1}, [{xp}], #8\n",
                "sxtb16 {t}, {w}\n",
                "smlad {acc}, {t}, {x0}, {acc}\n",
                "sxtb16 {t}, {w}, ror #8\n",
                "smlad {acc}, {t}, {x1}, {acc}",
            )
        };
    }

    /// The requantization of one accumulator `$a` into its int8 value (sign-extended in `$a`), as
    /// [`super::requantize_asm_model`] specifies: multiplier at `xp` (advanced), shift minus 33 in the low byte
    /// of `x1`, `c` in `n`; uses `x0`, `w0`, `w1`.
    macro_rules! requant {
        ($a:literal) => {
            concat!(
                "ldr {x0}, [{xp}], #4\n",
                "smull {w0}, {w1}, ",
                $a,
                ", {x0}\n",
                "adds {w0}, {w0}, {w1}, asr #31\n",
                "adc {w1}, {w1}, {w1}, asr #31\n",
                "asr {w1}, {w1}, {x1}\n",
                "add {w1}, {w1}, {n}\n",
                "ssat ",
                $a,
                ", #8, {w1}, asr #1",
            )
        };
    }

    /// The word steps of one pass of the group loop.
    const UNROLL: usize = 8;

    /// The bytes of one word step's code (19 instructions of 4 bytes).
    const STEP_BYTES: usize = 76;

    /// The most inputs the layer kernel expands to 16-bit pairs (on the stack, 2 bytes each); longer rows take
    /// the word loops below.
    const X_MAX: usize = 256;

    /// What the group loop of [`dense`] reads and advances, in memory (it has no register to spare).
    /// Field offsets are part of the assembly: keep the order.
    #[repr(C, align(8))]
    struct Ctx {
        /// 0: the expanded inputs, two words per input word.
        x: *const u32,
        /// 4, 8: unused (keeps the offsets below).
        _pad: [u32; 2],
        /// 12, 16, 20: the next group's bias, multipliers and shifts.
        bias: *const u8,
        mults: *const u8,
        shifts: *const u8,
        /// 24: the next group's 4 output bytes; 28: the end of the groups' outputs.
        out: *mut u8,
        out_end: *const u8,
        /// 32, 36: `act_min` and `act_max` in each byte.
        lo4: u32,
        hi4: u32,
        /// 40: `1 + 2 * out_zp`.
        c: i32,
    }

    /// Dense over `dense-dsp` weights in three passes of assembly: the inputs expanded once to the 16-bit
    /// pairs `SMLAD` takes, then every group of 4 channels (its bias, its word loop unrolled 8 times at 19
    /// instructions per 16 multiply-adds, and the requantization of [`super::requantize_asm_model`]), then the
    /// plain rows, requantized in Rust.
    ///
    /// Returns false, having done nothing, where it does not apply: weights, bias or multipliers not word aligned
    /// (as `LDRD` needs; a blob whose first byte is aligned has them aligned), a shift outside `[33, 62]`, a row
    /// of more than [`X_MAX`] or fewer than 13 inputs, or sections shorter than the shape (never for a loaded
    /// model).
    #[inline(always)]
    pub(super) fn dense(l: &LayerPlan<'_>, x: &[u8], out: &mut [u8]) -> bool {
        let k4 = padded_row(l.row_len);
        let steps = k4 / WORD;
        let groups = l.out_c / GROUP;
        let grouped = groups * GROUP;
        let aligned = |p: *const u8| p.addr().is_multiple_of(WORD);
        if !l.shifts_split
            || !(4..=X_MAX / WORD).contains(&steps)
            || x.len() < l.row_len
            || l.weights.len() < l.out_c * k4
            || l.bias.len() < 4 * l.out_c
            || l.multipliers.len() < 4 * l.out_c
            || l.shifts.len() < l.out_c
            || out.len() < l.out_c
            || !aligned(l.weights.as_ptr())
            || !aligned(l.bias.as_ptr())
            || !aligned(l.multipliers.as_ptr())
        {
            return false;
        }
        let mut xe = [MaybeUninit::<u32>::uninit(); 2 * X_MAX / WORD];
        let (words, tail) = x.get(..l.row_len).unwrap_or(x).as_chunks::<WORD>();
        if let Some([lo, hi]) = xe.get_mut(2 * words.len()..2 * words.len() + 2)
            && !tail.is_empty()
        {
            // The partial last word, padded with zeros (its weights' padding is zero too).
            let b = |i: usize| u32::from(tail.get(i).map_or(0, |&v| i16::from(v as i8) as u16));
            lo.write(b(0) | (b(2) << 16));
            hi.write(b(1) | (b(3) << 16));
        }
        // `steps >= 4` means at least 3 whole words.
        // SAFETY: `expand!` runs `words.len() >= 3` times; each time it reads 4 bytes at `xp` (within `words`)
        // and writes 8 bytes at `dp`, advancing both, so it writes `xe[..2 * words.len()]`, within `xe` since
        // `words.len() <= X_MAX / 4`. `LDR` may be unaligned on ARMv7-M (`CCR.UNALIGN_TRP` resets to 0 and
        // nothing sets it); `STRD` is to `xe`, word aligned. It writes only `xe`, its operands and the flags.
        unsafe {
            asm!(
                // Two words per pass (`words.len() / 2 >= 1` passes); an odd count does one first.
                "lsrs {n}, {n}, #1",
                "bcc 3f",
                expand!(),
                "3:",
                expand!(),
                expand!(),
                "subs {n}, {n}, #1",
                "bne 3b",
                xp = inout(reg) words.as_ptr() => _,
                dp = inout(reg) xe.as_mut_ptr() => _,
                n = inout(reg) words.len() => _,
                t = out(reg) _,
                lo = out(reg) _,
                hi = out(reg) _,
                options(nostack),
            );
        }
        let byte4 = |v: i8| u32::from(v as u8) * 0x0101_0101;
        if groups > 0 {
            let mut ctx = Ctx {
                x: xe.as_ptr().cast(),
                _pad: [0; 2],
                bias: l.bias.as_ptr(),
                mults: l.multipliers.as_ptr(),
                shifts: l.shifts.as_ptr(),
                out: out.as_mut_ptr(),
                out_end: out.as_ptr().wrapping_add(grouped),
                lo4: byte4(l.act_min),
                hi4: byte4(l.act_max),
                c: 1 + 2 * i32::from(l.out_zp),
            };
            groups_asm(l.weights.as_ptr(), &mut ctx, steps);
        }
        // The plain rows: word loop over the expanded inputs, then the shared requantization.
        for o in grouped..l.out_c {
            let (Some(w), Some(b), Some(m), Some(&s), Some(y)) = (
                l.weights.get(o * k4..),
                l.bias.get(4 * o..4 * o + 4),
                l.multipliers.get(4 * o..4 * o + 4),
                l.shifts.get(o),
                out.get_mut(o),
            ) else {
                break;
            };
            let acc = row_words(w, &xe, steps).wrapping_add(le_i32(b));
            *y = crate::kernels::requantize_channel(l, acc, m, s);
        }
        true
    }

    /// The group loop of [`dense`]: for each group of 4 channels, from `w` on, the bias, the word steps over
    /// `ctx.x` and the requantized, clamped 4 output bytes; `ctx` has the layout the offsets below use.
    #[inline(always)]
    fn groups_asm(w: *const u8, ctx: &mut Ctx, steps: usize) {
        // The word loop runs `ceil(steps / 8)` times 8 steps, entered at the step that leaves `steps` to do:
        // each step is 19 instructions with 32-bit encodings only (`LDRD`, `SXTB16`, `SMLAD`), 76 bytes.
        let iterations = steps.div_ceil(UNROLL);
        let entry = (UNROLL - 1 - (steps + UNROLL - 1) % UNROLL) * STEP_BYTES;
        // SAFETY: `dense` checked every length and alignment this relies on: `ctx.out` to `ctx.out_end` is
        // `4 * G >= 4` bytes of `out` (G groups); for each group the block reads 16 bytes of bias and
        // multipliers and 4 shift bytes (within sections of at least `4 * C_out` and `C_out` bytes), `16 * steps`
        // bytes of weights at `wp` (the group's, within `G * 4 * K4 <= weights.len()`) and `8 * steps` bytes of
        // `ctx.x` (all written by `dense`), and writes 4 output bytes and `ctx`'s pointers, which stay within
        // their sections; `steps = 4 * steps4 + rem` with `steps4 >= 1`.
        // Weights, bias and multipliers are word aligned (checked) as `LDRD` needs, `ctx` is 8-byte aligned,
        // `ctx.x` word aligned; the `LDR` of shifts and `STR` of outputs may be unaligned, which ARMv7-M allows
        // (`CCR.UNALIGN_TRP` resets to 0 and nothing sets it).
        // It pushes one word (the pointer to `ctx`) and pops it before the end; it writes only `out`, `ctx`, its
        // operands and the flags (and the GE flags, which nothing else reads).
        unsafe {
            asm!(
                // The stack holds the pointer to `ctx` at `sp`, the iterations at `sp + 4` and the address of
                // the entry step (with bit 0 set: Thumb) at `sp + 8`.
                "adr {x0}, 6f",
                "add {x0}, {x0}, {n}",
                "orr {x0}, {x0}, #1",
                "push {{{x0}}}",
                "push {{{a0}}}",
                "push {{{t}}}",
                "1:",
                // The group's bias into the accumulators.
                "ldr {xp}, [{t}]",
                "ldr {w0}, [{t}, #12]",
                "ldrd {a0}, {a1}, [{w0}], #8",
                "ldrd {a2}, {a3}, [{w0}], #8",
                "str {w0}, [{t}, #12]",
                "ldr {n}, [sp, #4]",
                "ldr pc, [sp, #8]",
                // Word aligned, so that `ADR` gives its exact address (the padding is never executed).
                ".p2align 2",
                "6:",
                step!(),
                step!(),
                step!(),
                step!(),
                step!(),
                step!(),
                step!(),
                step!(),
                "subs {n}, {n}, #1",
                "bne 6b",
                // Requantize: multipliers from `xp`, the 4 shifts minus 33 in the bytes of `x1`, `c` in `n`.
                "ldr {t}, [sp]",
                "ldr {xp}, [{t}, #16]",
                "ldr {n}, [{t}, #20]",
                "ldr {x1}, [{n}], #4",
                "str {n}, [{t}, #20]",
                "sub {x1}, {x1}, #0x21212121",
                "ldr {n}, [{t}, #40]",
                requant!("{a0}"),
                "lsr {x1}, {x1}, #8",
                requant!("{a1}"),
                "lsr {x1}, {x1}, #8",
                requant!("{a2}"),
                "lsr {x1}, {x1}, #8",
                requant!("{a3}"),
                "str {xp}, [{t}, #16]",
                // Pack the 4 bytes, clamp them to [act_min, act_max] bytewise, store, next group.
                "bfi {a0}, {a1}, #8, #8",
                "bfi {a0}, {a2}, #16, #8",
                "bfi {a0}, {a3}, #24, #8",
                "ldrd {x0}, {x1}, [{t}, #32]",
                "ssub8 {w0}, {a0}, {x0}",
                "sel {a0}, {a0}, {x0}",
                "ssub8 {w0}, {x1}, {a0}",
                "sel {a0}, {a0}, {x1}",
                "ldrd {x0}, {x1}, [{t}, #24]",
                "str {a0}, [{x0}], #4",
                "str {x0}, [{t}, #24]",
                "cmp {x0}, {x1}",
                "bne 1b",
                "add sp, sp, #12",
                wp = inout(reg) w => _,
                t = inout(reg) core::ptr::from_mut(ctx) => _,
                xp = out(reg) _,
                n = inout(reg) entry => _,
                a0 = inout(reg) iterations => _,
                a1 = out(reg) _,
                a2 = out(reg) _,
                a3 = out(reg) _,
                x0 = out(reg) _,
                x1 = out(reg) _,
                w0 = out(reg) _,
                w1 = out(reg) _,
            );
        }
    }

    /// One plain row: `sum_q` over `steps` words of `w` (4 bytes each) times the expanded inputs `xe`.
    #[inline(always)]
    fn row_words(w: &[u8], xe: &[MaybeUninit<u32>], steps: usize) -> i32 {
        let n = steps.min(w.len() / WORD).min(xe.len() / 2);
        let mut acc = 0i32;
        if n == 0 {
            return acc;
        }
        // SAFETY: the loop runs `n >= 1` times, reading 4 bytes of `w` and 8 of `xe` each time: `w[..4n]` and
        // `xe[..2n]`, which exist by the choice of `n`; `dense` wrote `xe[..2 * steps]`. `LDR` may be unaligned
        // (ARMv7-M, `CCR.UNALIGN_TRP` is 0); `xe` is word aligned for `LDRD`. It only reads memory.
        unsafe {
            asm!(
                // Two steps per pass; an odd count does one first.
                "lsrs {n}, {n}, #1",
                "bcc 3f",
                row_step!(),
                "cmp {n}, #0",
                "beq 4f",
                "3:",
                row_step!(),
                row_step!(),
                "subs {n}, {n}, #1",
                "bne 3b",
                "4:",
                wp = inout(reg) w.as_ptr() => _,
                xp = inout(reg) xe.as_ptr() => _,
                n = inout(reg) n => _,
                acc = inout(reg) acc,
                w = out(reg) _,
                x0 = out(reg) _,
                x1 = out(reg) _,
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

    proptest::proptest! {
        /// The requantization of the Cortex-M4 assembly, as [`requantize_asm_model`] specifies it step by step,
        /// equals [`requantize`] wherever the kernel uses it: multipliers of at least `2^30`, shifts 33 to 62, any
        /// accumulator, zero point and clamp.
        #[test]
        fn requantize_asm_model_matches(
            acc in proptest::prelude::any::<i32>(),
            m in MULTIPLIER_MIN..=i32::MAX,
            s in 33u8..=62,
            zp in proptest::prelude::any::<i8>(),
            a in proptest::prelude::any::<i8>(),
            b in proptest::prelude::any::<i8>(),
        ) {
            let q = QuantMultiplier::from_validated(m, s);
            let c = 1 + 2 * i32::from(zp);
            proptest::prop_assert_eq!(requantize_asm_model(acc, m, s, c, a, b), requantize(acc, q, zp, a, b));
        }
    }

    #[test]
    fn requantize_asm_model_edges() {
        for s in 33u8..=62 {
            for m in [MULTIPLIER_MIN, MULTIPLIER_MIN + 1, i32::MAX - 1, i32::MAX] {
                let q = QuantMultiplier::from_validated(m, s);
                for acc in [
                    i32::MIN,
                    i32::MIN + 1,
                    -(1 << 24),
                    -3,
                    -1,
                    0,
                    1,
                    2,
                    1 << 24,
                    i32::MAX,
                ] {
                    for (lo, hi) in [(-128, 127), (0, 127), (-5, 5), (3, 3), (9, -9)] {
                        for zp in [-128i8, -1, 0, 5, 127] {
                            let c = 1 + 2 * i32::from(zp);
                            assert_eq!(
                                requantize_asm_model(acc, m, s, c, lo, hi),
                                requantize(acc, q, zp, lo, hi),
                                "{acc} {m} {s} {zp} {lo} {hi}"
                            );
                        }
                    }
                }
            }
        }
        // Exact halves round away from zero: 3 * 2^30 * 2^30 / 2^62 = 0.75 -> 1, and the negative of it.
        let c = 1;
        assert_eq!(requantize_asm_model(3 << 28, 1 << 30, 60, c, -128, 127), 1);
        assert_eq!(
            requantize_asm_model(-(3 << 28), 1 << 30, 60, c, -128, 127),
            -1
        );
        assert_eq!(requantize_asm_model(1 << 29, 1 << 30, 60, c, -128, 127), 1);
        assert_eq!(
            requantize_asm_model(-(1 << 29), 1 << 30, 60, c, -128, 127),
            -1
        );
    }

    /// [`dense_simple`] (the Cortex-M4's fallback) gives the bytes of [`dense_portable`] on loaded `dense-dsp`
    /// layers: row lengths and channel counts around the word and group sizes, ratios of 1/4 and more (shifts
    /// of 32 and less, which the assembly leaves to it) and below.
    #[cfg(all(feature = "alloc", not(tickq_dsp)))]
    #[test]
    fn dense_simple_matches_portable() {
        use crate::encode::{
            EncodeOptions, LayerSpec, ModelSpec, OpSpec, WeightFormat, encode_with,
        };
        let mut seed = 0x5eed_u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as u32
        };
        for (in_c, out_c, ratio) in [
            (1, 1, 0.01),
            (5, 3, 0.3),
            (13, 7, 0.002),
            (29, 9, 0.7),
            (32, 4, 0.01),
            (70, 13, 1.5),
        ] {
            let weights = (0..in_c * out_c).map(|_| next() as i8).collect();
            let bias = (0..out_c).map(|_| (next() % 2001) as i32 - 1000).collect();
            let requant = (0..out_c)
                .map(|o| QuantMultiplier::from_ratio(ratio * (1.0 + o as f64 / 8.0)).unwrap())
                .collect();
            let dense = OpSpec::Dense {
                out_features: out_c,
                in_features: in_c,
                weights,
                bias,
                requant,
            };
            let quantize = OpSpec::Quantize {
                time_steps: 1,
                features: in_c,
                a: vec![1.0; in_c],
                b: vec![0.0; in_c],
            };
            let spec = ModelSpec {
                name: "simple".into(),
                feature_names: (0..in_c).map(|i| std::format!("f{i}")).collect(),
                label_names: (0..out_c).map(|i| std::format!("c{i}")).collect(),
                data_hash: [0; 32],
                tickq_version: "test".into(),
                layers: vec![
                    LayerSpec::new(quantize, 1.0, 0),
                    LayerSpec {
                        act_min: -20,
                        act_max: 100,
                        ..LayerSpec::new(dense, 1.0, 3)
                    },
                ],
            };
            let options = EncodeOptions {
                weight_format: WeightFormat::DenseDsp,
            };
            let blob = encode_with(&spec, &options).unwrap();
            let model = crate::Model::load(&blob).unwrap();
            let l = &model.plans()[1];
            assert_eq!(l.layout, crate::WeightLayout::DenseDsp);
            for _ in 0..20 {
                let x: std::vec::Vec<u8> = (0..in_c).map(|_| next() as u8).collect();
                let (mut a, mut b) = (std::vec![0u8; out_c], std::vec![0u8; out_c]);
                dense_simple(l, &x, &mut a);
                dense_portable(l, &x, &mut b);
                assert_eq!(a, b, "{in_c} -> {out_c}, ratio {ratio}");
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
