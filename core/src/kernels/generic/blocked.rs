//! Dense and Conv1d over weight format 0 (dense blocked: 16-channel blocks, input pairs interleaved), and the
//! per-channel requantization every portable weighted kernel shares.

use super::Row;
use crate::format::layout::blocked::{BLOCK, STEP};
use crate::format::le_i32;
use crate::plan::{Channels, Conv, OutQuant};
use crate::requant::{QuantMultiplier, requantize};

/// The multiplier of one channel, read from validated bytes.
#[inline(always)]
pub(crate) fn channel_multiplier(m: &[u8], s: u8) -> QuantMultiplier {
    QuantMultiplier::from_validated(le_i32(m), s)
}

/// One channel's requantization, always inlined: for the channel-at-a-time sparse and N:M kernels, where there is
/// no lane loop for LLVM to pessimize.
#[cfg(feature = "sparse-formats")]
#[inline(always)]
pub(crate) fn requantize_inline(q: &OutQuant, acc: i32, m: &[u8], s: u8) -> u8 {
    requantize(acc, channel_multiplier(m, s), q.zp, q.act_min, q.act_max) as u8
}

/// One channel's requantization.
///
/// With AVX2 LLVM vectorizes the channel loop of [`requant_block`] over i64 lanes, which pays off.
/// With SSE2 alone it would emulate 64-bit multiplies, variable shifts and compares lane by lane, which is
/// slower than scalar code (measured: the 32-64-32-3 MLP took 765 ns instead of 575 ns), so there the call is
/// kept out of line, which keeps the loop scalar.
#[cfg_attr(target_feature = "avx2", inline(always))]
#[cfg_attr(not(target_feature = "avx2"), inline(never))]
pub(crate) fn requantize_channel(q: &OutQuant, acc: i32, m: &[u8], s: u8) -> u8 {
    requantize(acc, channel_multiplier(m, s), q.zp, q.act_min, q.act_max) as u8
}

/// Accumulates one weight block against input pairs: `acc[2j + e] += w[p][2j + e] * x[p][e]`.
///
/// `w` is the block from some step on (`STEP` bytes per step, see `docs/BLOB.md`) and `xs` the input pairs from
/// the same step on; the shorter of the two ends the loop.
/// Lane `2j + e` belongs to channel `j` of the block, so channel `j`'s sum is `acc[2j] + acc[2j + 1]`.
/// The block is laid out so that this loop is a pure lane-wise multiply-add: the compiler vectorizes it across
/// the 32 lanes (16 channels) with the input pair broadcast, instead of reducing within a row.
/// Each lane sums at most `row_len / 2` products of an input and a weight of one channel, so it is bounded by the
/// channel's overflow bound (see `docs/ARITHMETIC.md`); the adds wrap only so that debug builds cannot panic.
///
/// The two shapes below compute the same lanes; only what LLVM makes of them differs.
/// It is `inline(never)` so that the accumulator stays one array in registers whatever the caller looks like.
#[inline(never)]
fn block_dot(w: &[u8], xs: &[[u8; 2]], acc: &mut [i32; STEP]) {
    let (steps, _) = w.as_chunks::<STEP>();
    #[cfg(target_feature = "avx2")]
    for (step, x) in steps.iter().zip(xs) {
        // With AVX2 one 32-lane loop becomes 4 x (sign-extend 8 bytes, multiply, add) on 256-bit registers.
        let (x0, x1) = (i32::from(x[0] as i8), i32::from(x[1] as i8));
        for (lane, (a, &wv)) in acc.iter_mut().zip(step).enumerate() {
            let xv = if lane % 2 == 0 { x0 } else { x1 };
            *a = a.wrapping_add(i32::from(wv as i8) * xv);
        }
    }
    #[cfg(not(target_feature = "avx2"))]
    for (step, x) in steps.iter().zip(xs) {
        // With SSE2 only, two 16-lane halves vectorize cleanly, where a single 32-lane loop spills into a
        // slower shuffle-heavy form (measured: 93 vs 144 ns per 1024 multiply-adds).
        let (x0, x1) = (i32::from(x[0] as i8), i32::from(x[1] as i8));
        let (halves, _) = step.as_chunks::<BLOCK>();
        let (acc_halves, _) = acc.as_chunks_mut::<BLOCK>();
        for (acc_half, half) in acc_halves.iter_mut().zip(halves) {
            for (lane, (a, &wv)) in acc_half.iter_mut().zip(half).enumerate() {
                let xv = if lane % 2 == 0 { x0 } else { x1 };
                *a = a.wrapping_add(i32::from(wv as i8) * xv);
            }
        }
    }
}

/// Accumulates the tail block (the last, partial block of a version 2 layer) against input pairs: the same sums
/// as [`block_dot`], over steps of `step_len = 2 * r` bytes for the block's `r < BLOCK` channels.
///
/// The tail is at most 15 channels and one block per layer, so a plain variable-width loop is enough.
#[inline(never)]
fn tail_dot(w: &[u8], xs: &[[u8; 2]], step_len: usize, acc: &mut [i32; STEP]) {
    for (step, x) in w.chunks_exact(step_len.max(1)).zip(xs) {
        let (x0, x1) = (i32::from(x[0] as i8), i32::from(x[1] as i8));
        for (lane, (a, &wv)) in acc.iter_mut().zip(step).enumerate() {
            let xv = if lane % 2 == 0 { x0 } else { x1 };
            *a = a.wrapping_add(i32::from(wv as i8) * xv);
        }
    }
}

/// Accumulates a block whose steps are `step_len` bytes: [`block_dot`] for full blocks, [`tail_dot`] otherwise.
#[inline(always)]
fn steps_dot(w: &[u8], xs: &[[u8; 2]], step_len: usize, acc: &mut [i32; STEP]) {
    if step_len == STEP {
        block_dot(w, xs, acc);
    } else {
        tail_dot(w, xs, step_len, acc);
    }
}

/// Accumulates a block against a contiguous input row `x` of `row_len` values (an odd tail is paired with 0).
#[inline(always)]
pub(super) fn block_row(block: &[u8], step_len: usize, x: &[u8], acc: &mut [i32; STEP]) {
    let (pairs, tail) = x.as_chunks::<2>();
    steps_dot(block, pairs, step_len, acc);
    if let Some(&last) = tail.first() {
        // The weight paired with the filler 0 is padding, which the loader checked is 0 too.
        steps_dot(
            block.get(pairs.len() * step_len..).unwrap_or(&[]),
            &[[last, 0]],
            step_len,
            acc,
        );
    }
}

/// Requantizes the lanes of one block into up to `BLOCK` outputs.
#[inline(always)]
fn requant_block(q: &OutQuant, acc: &[i32; STEP], ch: &Channels<'_>, out: &mut [u8]) {
    let (lanes, _) = acc.as_chunks::<2>();
    let channels = out
        .iter_mut()
        .zip(lanes)
        .zip(ch.bias.chunks_exact(4))
        .zip(ch.multipliers.chunks_exact(4))
        .zip(ch.shifts);
    for ((((o, lane), b), m), &s) in channels {
        let sum = lane[0].wrapping_add(lane[1]);
        let acc = le_i32(b).wrapping_add(sum);
        *o = requantize_channel(q, acc, m, s);
    }
}

/// One weight block of a layer with its outputs and its per-channel bias and requant bytes.
pub(super) struct Block<'l, 'o> {
    pub out: &'o mut [u8],
    pub w: &'l [u8],
    pub channels: Channels<'l>,
    /// The bytes per step: [`STEP`] for a full block, `2 * r` for a tail block of `r` channels.
    pub step_len: usize,
}

/// The weight blocks of a layer: the full blocks, then the tail block if the section has one.
///
/// A version 2 section ends with a tail block of `r = C_out % BLOCK` channels (shorter than a full block), which
/// is what `chunks_exact` leaves over; a version 1 section pads its last block to a full one and leaves nothing.
#[inline(always)]
pub(super) fn blocks<'l, 'o>(
    weights: &'l [u8],
    block_len: usize,
    ch: &Channels<'l>,
    out: &'o mut [u8],
) -> impl Iterator<Item = Block<'l, 'o>> {
    let full = weights.chunks_exact(block_len.max(1));
    let tail_w = full.remainder();
    let head = (full.len() * BLOCK).min(out.len());
    let (out, tail_out) = out.split_at_mut(head);
    let after = |v: &'l [u8], n: usize| v.get(n * head..).unwrap_or(&[]);
    let tail = (!tail_w.is_empty() && !tail_out.is_empty()).then(|| Block {
        step_len: 2 * tail_out.len(),
        out: tail_out,
        w: tail_w,
        channels: Channels {
            bias: after(ch.bias, 4),
            multipliers: after(ch.multipliers, 4),
            shifts: after(ch.shifts, 1),
            shifts_split: ch.shifts_split,
        },
    });
    out.chunks_mut(BLOCK)
        .zip(full)
        .zip(ch.bias.chunks(4 * BLOCK))
        .zip(ch.multipliers.chunks(4 * BLOCK))
        .zip(ch.shifts.chunks(BLOCK))
        .map(|((((out, w), bias), multipliers), shifts)| Block {
            out,
            w,
            channels: Channels {
                bias,
                multipliers,
                shifts,
                shifts_split: ch.shifts_split,
            },
            step_len: STEP,
        })
        .chain(tail)
}

/// Dense: `out[o] = requant(b_eff[o] + sum_k w[o][k] * x[k])`, one block of 16 output channels at a time.
pub(crate) fn dense(
    q: &OutQuant,
    weights: &[u8],
    block_len: usize,
    ch: &Channels<'_>,
    x: &[u8],
    out: &mut [u8],
) {
    for b in blocks(weights, block_len, ch, out) {
        let mut acc = [0i32; STEP];
        block_row(b.w, b.step_len, x, &mut acc);
        requant_block(q, &acc, &b.channels, b.out);
    }
}

/// Conv1d over a time-major input whose first `dilation * (kernel - 1)` rows are the causal pad (if any).
///
/// Each output step is a Dense over its window: with dilation 1 the window's taps are consecutive input rows, so
/// it is one contiguous row of `kernel * C_in` values; otherwise each tap is read where it lies.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv1d(
    q: &OutQuant,
    conv: &Conv,
    (c_in, row_len): (usize, usize),
    weights: &[u8],
    block_len: usize,
    ch: &Channels<'_>,
    x: &[u8],
    out: &mut [u8],
) {
    let c_in = c_in.max(1);
    let step = conv.stride * c_in;
    let out_c = ch.shifts.len().max(1);
    for (t, out_row) in out.chunks_exact_mut(out_c).enumerate() {
        let window = x.get(t * step..).unwrap_or(&[]);
        for b in blocks(weights, block_len, ch, out_row) {
            let mut acc = [0i32; STEP];
            conv_window(conv, (c_in, row_len), (b.w, b.step_len), window, &mut acc);
            requant_block(q, &acc, &b.channels, b.out);
        }
    }
}

/// Accumulates one weight block of a Conv1d against one output step's window (the input from the step's first
/// tap on): with dilation 1 the taps are one contiguous row of `kernel * C_in` values; otherwise each tap is
/// read where it lies.
#[inline(always)]
pub(super) fn conv_window(
    conv: &Conv,
    (c_in, row_len): (usize, usize),
    (w, step_len): (&[u8], usize),
    window: &[u8],
    acc: &mut [i32; STEP],
) {
    let tap_step = conv.dilation * c_in;
    if conv.dilation == 1 {
        block_row(w, step_len, window.get(..row_len).unwrap_or(window), acc);
    } else if c_in.is_multiple_of(2) {
        // Every tap is a whole number of input pairs, so each tap is a contiguous run of steps.
        let tap_len = c_in / 2 * step_len;
        for (k, tap_w) in w.chunks_exact(tap_len.max(1)).enumerate() {
            let tap = window.get(k * tap_step..).unwrap_or(&[]);
            block_row(tap_w, step_len, tap.get(..c_in).unwrap_or(tap), acc);
        }
    } else {
        // Pairs straddle taps: gather each pair (rare, so it is kept simple).
        let row = Row::Dilated {
            window,
            c_in,
            tap_step,
        };
        let at = |i: usize| if i < row_len { row.byte(i) } else { 0 };
        for (p, step_w) in w.chunks_exact(step_len.max(1)).enumerate() {
            steps_dot(step_w, &[[at(2 * p), at(2 * p + 1)]], step_len, acc);
        }
    }
}
