//! Dense and Conv1d over weight format 6 (`dense-dot`: 16-channel blocks, groups of 4 inputs), portable: the
//! reference every SIMD kernel of this format is tested against, and what runs it where no SIMD backend does.
//!
//! The SIMD kernels add 128 to each input and use the layer's second bias; this one multiplies the signed inputs
//! and uses the plain bias. Both give the same i32 sums (`docs/ARITHMETIC.md`).

use super::Row;
use super::blocked::requantize_channel;
use crate::format::layout::dot::{BLOCK, GROUP, STEP, block_len};
use crate::format::le_i32;
use crate::plan::{Channels, Conv, OutQuant};

/// One group's dot product: `sum_e w[e] * x[e]` over 4 int8 values stored as bytes.
#[inline(always)]
fn group_dot(w: &[u8; GROUP], x: &[u8; GROUP]) -> i32 {
    let [w0, w1, w2, w3] = w.map(|v| i32::from(v as i8));
    let [x0, x1, x2, x3] = x.map(|v| i32::from(v as i8));
    w0 * x0 + w1 * x1 + w2 * x2 + w3 * x3
}

/// Accumulates a block's steps (of `step_len = 4 * width` bytes, `width` channels) against input groups:
/// `acc[j] += w[p][j] . x[p]` for every step `p` both have.
///
/// A full block's step is 16 lanes of 4 bytes, which LLVM vectorizes as a lane-wise multiply-add with the input
/// group broadcast; a tail block's is shorter and runs the same loop over fewer lanes.
#[inline(never)]
fn block_groups(w: &[u8], step_len: usize, xs: &[[u8; GROUP]], acc: &mut [i32; BLOCK]) {
    if step_len == STEP {
        let (steps, _) = w.as_chunks::<STEP>();
        for (step, x) in steps.iter().zip(xs) {
            let (lanes, _) = step.as_chunks::<GROUP>();
            for (a, lane) in acc.iter_mut().zip(lanes) {
                *a = a.wrapping_add(group_dot(lane, x));
            }
        }
    } else {
        for (step, x) in w.chunks_exact(step_len.max(1)).zip(xs) {
            let (lanes, _) = step.as_chunks::<GROUP>();
            for (a, lane) in acc.iter_mut().zip(lanes) {
                *a = a.wrapping_add(group_dot(lane, x));
            }
        }
    }
}

/// Accumulates a block against a contiguous row of inputs; a last partial group is padded with zeros (its
/// weights' padding is zero too).
#[inline(always)]
fn block_row(w: &[u8], step_len: usize, x: &[u8], acc: &mut [i32; BLOCK]) {
    let (groups, tail) = x.as_chunks::<GROUP>();
    block_groups(w, step_len, groups, acc);
    if !tail.is_empty() {
        let mut last = [0u8; GROUP];
        for (d, &v) in last.iter_mut().zip(tail) {
            *d = v;
        }
        let rest = w.get(groups.len() * step_len..).unwrap_or(&[]);
        block_groups(rest, step_len, &[last], acc);
    }
}

/// The blocks of a layer with `channels` outputs: `(weights of the block, step length, first channel, width)`.
#[inline(always)]
fn blocks(
    weights: &[u8],
    row_len: usize,
    channels: usize,
) -> impl Iterator<Item = (&[u8], usize, usize, usize)> {
    let len = block_len(row_len).max(1);
    weights.chunks(len).enumerate().map(move |(b, w)| {
        let width = (channels - (b * BLOCK).min(channels)).min(BLOCK);
        (w, GROUP * width, b * BLOCK, width)
    })
}

/// Requantizes `width` accumulators into the outputs of channels `first..first + width`.
#[inline(always)]
fn requant_block(
    q: &OutQuant,
    acc: &[i32; BLOCK],
    ch: &Channels<'_>,
    (first, width): (usize, usize),
    out: &mut [u8],
) {
    let lanes = acc
        .iter()
        .zip(out.iter_mut().skip(first))
        .zip(ch.bias.chunks_exact(4).skip(first))
        .zip(ch.multipliers.chunks_exact(4).skip(first))
        .zip(ch.shifts.iter().skip(first))
        .take(width);
    for ((((&a, o), b), m), &s) in lanes {
        *o = requantize_channel(q, le_i32(b).wrapping_add(a), m, s);
    }
}

/// Dense: `out[o] = requant(b_eff[o] + sum_k w[o][k] * x[k])`, one block of 16 channels at a time.
pub(crate) fn dense(
    q: &OutQuant,
    weights: &[u8],
    row_len: usize,
    ch: &Channels<'_>,
    x: &[u8],
    out: &mut [u8],
) {
    let x = x.get(..row_len).unwrap_or(x);
    let channels = out.len();
    for (w, step_len, first, width) in blocks(weights, row_len, channels) {
        let mut acc = [0i32; BLOCK];
        block_row(w, step_len, x, &mut acc);
        requant_block(q, &acc, ch, (first, width), out);
    }
}

/// Conv1d: a Dense over each output step's window (see `blocked::conv1d`); with dilation 1 the window is one
/// contiguous row, with whole groups per tap each tap is, and otherwise each group is gathered.
pub(crate) fn conv1d(
    q: &OutQuant,
    conv: &Conv,
    (c_in, row_len): (usize, usize),
    weights: &[u8],
    ch: &Channels<'_>,
    x: &[u8],
    out: &mut [u8],
) {
    let c_in = c_in.max(1);
    let step = conv.stride * c_in;
    let tap_step = conv.dilation * c_in;
    let channels = ch.shifts.len();
    for (t, out_row) in out.chunks_exact_mut(channels.max(1)).enumerate() {
        let window = x.get(t * step..).unwrap_or(&[]);
        for (w, step_len, first, width) in blocks(weights, row_len, channels) {
            let mut acc = [0i32; BLOCK];
            if conv.dilation == 1 {
                block_row(
                    w,
                    step_len,
                    window.get(..row_len).unwrap_or(window),
                    &mut acc,
                );
            } else if c_in.is_multiple_of(GROUP) {
                let tap_len = c_in / GROUP * step_len;
                for (k, tap_w) in w.chunks_exact(tap_len.max(1)).enumerate() {
                    let tap = window.get(k * tap_step..).unwrap_or(&[]);
                    block_row(tap_w, step_len, tap.get(..c_in).unwrap_or(tap), &mut acc);
                }
            } else {
                let row = Row::Dilated {
                    window,
                    c_in,
                    tap_step,
                };
                let at = |i: usize| if i < row_len { row.byte(i) } else { 0 };
                for (p, step_w) in w.chunks_exact(step_len.max(1)).enumerate() {
                    let g = GROUP * p;
                    let group = [at(g), at(g + 1), at(g + 2), at(g + 3)];
                    block_groups(step_w, step_len, &[group], &mut acc);
                }
            }
            requant_block(q, &acc, ch, (first, width), out_row);
        }
    }
}
