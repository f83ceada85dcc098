//! The Cortex-M4 kernel (on `thumbv7em` targets, which always have the DSP extension): Dense over `dense-dsp`
//! weights as whole-layer inline assembly with `SXTB16` and `SMLAD` (the layout's shape is explained in
//! `kernels::generic::dsp`, which calls this on those targets and holds the portable kernel elsewhere).
//!
//! The only `unsafe` code of this module is its `asm!` blocks, each with its safety argument; the
//! requantization it does in assembly is specified by `generic::dsp::requantize_asm_model`, which a property
//! test checks against `requant::requantize`, and the firmware test runs it under QEMU bit for bit against the
//! host.
#![allow(
    unsafe_code,
    reason = "inline assembly for the DSP extension, see each SAFETY comment"
)]

/// Dense over `dense-dsp` weights (`x` already cut to the row): the assembly when it applies, and the portable
/// `dense_simple` otherwise (unaligned sections, shifts outside `[33, 62]`, rows outside 13 to 256 inputs).
#[inline(always)]
pub(crate) fn dense(l: &DspLayer<'_>, x: &[u8], out: &mut [u8]) {
    if !dense_layer(l, x, out) {
        crate::kernels::generic::dsp::dense_simple(l, x, out);
    }
}

use crate::format::layout::dsp::{GROUP, WORD, padded_row};
use crate::format::le_i32;
use crate::kernels::generic::dsp::DspLayer;
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
/// [`requantize_asm_model`](crate::kernels::generic::dsp::requantize_asm_model) specifies: multiplier at `xp` (advanced), shift minus 33 in the low byte
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
/// instructions per 16 multiply-adds, and the requantization of [`requantize_asm_model`](crate::kernels::generic::dsp::requantize_asm_model)), then the
/// plain rows, requantized in Rust.
///
/// Returns false, having done nothing, where it does not apply: weights, bias or multipliers not word aligned
/// (as `LDRD` needs; a blob whose first byte is aligned has them aligned), a shift outside `[33, 62]`, a row
/// of more than [`X_MAX`] or fewer than 13 inputs, or sections shorter than the shape (never for a loaded
/// model).
#[inline(always)]
fn dense_layer(l: &DspLayer<'_>, x: &[u8], out: &mut [u8]) -> bool {
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
        *y = crate::kernels::generic::requantize_channel(&l.out_quant(), acc, m, s);
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
