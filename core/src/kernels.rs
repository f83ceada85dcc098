//! Scalar kernels: one function per operation, over byte slices the session cuts from the arena.
//!
//! Activations and weights are int8 stored as `u8` bytes; `b as i8` reinterprets them for free.
//! Kernels index nothing directly: they zip iterators and fixed-size chunks, so the compiler can drop bounds
//! checks and vectorize, and a slice that is shorter than expected only makes a kernel do less work, never
//! panic (the loader guarantees lengths, so that fallback is never taken).
//! Accumulators use wrapping adds only so that a debug build cannot panic either; the loader proves that no
//! accumulator can actually wrap (see `docs/ARITHMETIC.md`).

#![deny(clippy::indexing_slicing)]

use crate::blob::{le_f32, le_i32};
use crate::model::{BLOCK, LayerPlan, ROW_SEGMENT, SEGMENT, STEP, WeightLayout, packed_entry};
use crate::requant::{QuantMultiplier, requantize, round_shift, scale_round, shift_saturating};

/// The number of lanes the reference dot product processes per step.
#[cfg(test)]
const LANES: usize = 16;

/// Sums `w[i] * x[i]` over int8 values stored as bytes, for `i < min(w.len(), x.len())`.
///
/// This row-major dot product was the Dense kernel before weights were blocked; it now serves the reference
/// kernels the tests compare against.
#[cfg(test)]
pub(crate) fn dot(w: &[u8], x: &[u8]) -> i32 {
    let n = w.len().min(x.len());
    let (w, x) = (w.get(..n).unwrap_or(&[]), x.get(..n).unwrap_or(&[]));
    let (w_chunks, w_tail) = w.as_chunks::<LANES>();
    let (x_chunks, x_tail) = x.as_chunks::<LANES>();
    let mut acc = 0i32;
    for (wc, xc) in w_chunks.iter().zip(x_chunks) {
        let mut s = 0i32;
        for (&a, &b) in wc.iter().zip(xc) {
            s += i32::from(a as i8) * i32::from(b as i8);
        }
        acc = acc.wrapping_add(s);
    }
    for (&a, &b) in w_tail.iter().zip(x_tail) {
        acc = acc.wrapping_add(i32::from(a as i8) * i32::from(b as i8));
    }
    acc
}

/// The multiplier of channel `o`, read from validated bytes.
#[inline(always)]
fn channel_multiplier(m: &[u8], s: u8) -> QuantMultiplier {
    QuantMultiplier::from_validated(le_i32(m), s)
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
fn block_row(block: &[u8], step_len: usize, x: &[u8], acc: &mut [i32; STEP]) {
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
fn requant_block(
    l: &LayerPlan<'_>,
    acc: &[i32; STEP],
    bias: &[u8],
    mults: &[u8],
    shifts: &[u8],
    out: &mut [u8],
) {
    let (lanes, _) = acc.as_chunks::<2>();
    let channels = out
        .iter_mut()
        .zip(lanes)
        .zip(bias.chunks_exact(4))
        .zip(mults.chunks_exact(4))
        .zip(shifts);
    for ((((o, lane), b), m), &s) in channels {
        let sum = lane[0].wrapping_add(lane[1]);
        let acc = le_i32(b).wrapping_add(sum);
        *o = requantize_channel(l, acc, m, s);
    }
}

/// One channel's requantization, always inlined: for the channel-at-a-time sparse and N:M kernels, where there is
/// no lane loop for LLVM to pessimize.
#[inline(always)]
fn requantize_inline(l: &LayerPlan<'_>, acc: i32, m: &[u8], s: u8) -> u8 {
    requantize(
        acc,
        channel_multiplier(m, s),
        l.out_zp,
        l.act_min,
        l.act_max,
    ) as u8
}

/// One channel's requantization.
///
/// With AVX2 LLVM vectorizes the channel loop of [`requant_block`] over i64 lanes, which pays off.
/// With SSE2 alone it would emulate 64-bit multiplies, variable shifts and compares lane by lane, which is
/// slower than scalar code (measured: the 32-64-32-3 MLP took 765 ns instead of 575 ns), so there the call is
/// kept out of line, which keeps the loop scalar.
#[cfg_attr(target_feature = "avx2", inline(always))]
#[cfg_attr(not(target_feature = "avx2"), inline(never))]
pub(crate) fn requantize_channel(l: &LayerPlan<'_>, acc: i32, m: &[u8], s: u8) -> u8 {
    requantize(
        acc,
        channel_multiplier(m, s),
        l.out_zp,
        l.act_min,
        l.act_max,
    ) as u8
}

/// One weight block of a layer with its outputs and its per-channel bias and requant bytes.
struct Block<'l, 'o> {
    out: &'o mut [u8],
    w: &'l [u8],
    bias: &'l [u8],
    mults: &'l [u8],
    shifts: &'l [u8],
    /// The bytes per step: [`STEP`] for a full block, `2 * r` for a tail block of `r` channels.
    step_len: usize,
}

/// The weight blocks of a layer: the full blocks, then the tail block if the section has one.
///
/// A version 2 section ends with a tail block of `r = C_out % BLOCK` channels (shorter than a full block), which
/// is what `chunks_exact` leaves over; a version 1 section pads its last block to a full one and leaves nothing.
#[inline(always)]
fn blocks<'l, 'o>(l: &LayerPlan<'l>, out: &'o mut [u8]) -> impl Iterator<Item = Block<'l, 'o>> {
    let full = l.weights.chunks_exact(l.block_len.max(1));
    let tail_w = full.remainder();
    let head = (full.len() * BLOCK).min(out.len());
    let (out, tail_out) = out.split_at_mut(head);
    let after = |v: &'l [u8], n: usize| v.get(n * head..).unwrap_or(&[]);
    let tail = (!tail_w.is_empty() && !tail_out.is_empty()).then(|| Block {
        step_len: 2 * tail_out.len(),
        out: tail_out,
        w: tail_w,
        bias: after(l.bias, 4),
        mults: after(l.multipliers, 4),
        shifts: after(l.shifts, 1),
    });
    out.chunks_mut(BLOCK)
        .zip(full)
        .zip(l.bias.chunks(4 * BLOCK))
        .zip(l.multipliers.chunks(4 * BLOCK))
        .zip(l.shifts.chunks(BLOCK))
        .map(|((((out, w), bias), mults), shifts)| Block {
            out,
            w,
            bias,
            mults,
            shifts,
            step_len: STEP,
        })
        .chain(tail)
}

/// Dense: `out[o] = requant(b_eff[o] + sum_k w[o][k] * x[k])`.
///
/// Dense weights go one block of 16 output channels at a time; sparse and N:M weights one channel at a time.
pub(crate) fn dense(l: &LayerPlan<'_>, x: &[u8], out: &mut [u8]) {
    let x = x.get(..l.row_len).unwrap_or(x);
    match l.layout {
        WeightLayout::Dense => {
            for b in blocks(l, out) {
                let mut acc = [0i32; STEP];
                block_row(b.w, b.step_len, x, &mut acc);
                requant_block(l, &acc, b.bias, b.mults, b.shifts, b.out);
            }
        }
        WeightLayout::DenseDsp => crate::kernels_dsp::dense(l, x, out),
        WeightLayout::Sparse if crate::SPARSE_FORMATS => sparse_rows(l, x, out),
        WeightLayout::NM { .. } if crate::SPARSE_FORMATS => nm_rows(l, &Row::Contiguous(x), out),
        WeightLayout::Columns if crate::SPARSE_FORMATS => dense_columns(l, x, out),
        WeightLayout::Packed if crate::SPARSE_FORMATS => dense_packed(l, x, out),
        // Without `sparse-formats` the loader refuses these formats, so no plan has them.
        WeightLayout::Sparse
        | WeightLayout::NM { .. }
        | WeightLayout::Columns
        | WeightLayout::Packed => {}
    }
}

/// Runs a column-format Dense layer one 256-channel row segment at a time: the segment's accumulators start at
/// its biases, `accumulate` adds the segment's columns (it gets the per-input counts of the segment), and the
/// sums are requantized into the segment's outputs.
///
/// The accumulators are an array indexed by a one-byte row, so the kernels' scatter needs no bounds check.
#[inline(always)]
fn by_row_segment(
    l: &LayerPlan<'_>,
    out: &mut [u8],
    mut accumulate: impl FnMut(&mut [i32; ROW_SEGMENT], &[u8]),
) {
    let mut counts = l.sp_counts.chunks_exact(l.in_c.max(1));
    let segments = out
        .chunks_mut(ROW_SEGMENT)
        .zip(l.bias.chunks(4 * ROW_SEGMENT))
        .zip(l.multipliers.chunks(4 * ROW_SEGMENT))
        .zip(l.shifts.chunks(ROW_SEGMENT));
    for (((out, bias), mults), shifts) in segments {
        let mut acc = [0i32; ROW_SEGMENT];
        for (a, b) in acc.iter_mut().zip(bias.chunks_exact(4)) {
            *a = le_i32(b);
        }
        accumulate(&mut acc, counts.next().unwrap_or(&[]));
        let channels = out
            .iter_mut()
            .zip(&acc)
            .zip(mults.chunks_exact(4))
            .zip(shifts);
        for (((o, &a), m), &s) in channels {
            *o = requantize_inline(l, a, m, s);
        }
    }
}

/// Column-sparse Dense: `acc[o] = b[o] + sum over inputs j with x[j] != zp of w[o][j] * (x[j] - zp)`.
///
/// The bias `b` has the input zero point unfolded (`b = b_eff + zp * sum_j w[o][j]`), so the sum equals the
/// dense one exactly and every input at the zero point (a ReLU zero) is skipped with its whole column.
fn dense_columns(l: &LayerPlan<'_>, x: &[u8], out: &mut [u8]) {
    let zp = i32::from(l.in_zp);
    let mut pairs = l.sp_values.as_chunks::<2>().0;
    by_row_segment(l, out, |acc, column_counts| {
        for (&xb, &count) in x.iter().zip(column_counts) {
            let (column, rest) = pairs
                .split_at_checked(usize::from(count))
                .unwrap_or((pairs, &[]));
            pairs = rest;
            let d = i32::from(xb as i8) - zp;
            if d == 0 {
                continue;
            }
            for &[row, v] in column {
                // A u8 row always indexes the 256 accumulators, so this check compiles away.
                if let Some(a) = acc.get_mut(usize::from(row)) {
                    *a = a.wrapping_add(d * i32::from(v as i8));
                }
            }
        }
    });
}

/// Packed column-sparse Dense: the sum of [`dense_columns`], with each entry decoded from a bit stream.
///
/// An entry is a row gap (the rows skipped since the previous entry of the column) and an index into the
/// layer's codebook; fillers carry the value 0 and only advance the row. A column whose input is at the zero
/// point is skipped by moving the bit cursor past its entries.
fn dense_packed(l: &LayerPlan<'_>, x: &[u8], out: &mut [u8]) {
    let zp = i32::from(l.in_zp);
    let (gap_bits, code_bits) = (l.pk_gap_bits, l.pk_code_bits);
    let width = (gap_bits + code_bits) as usize;
    // Widened once per call into a fixed 256-entry table, so the per-entry lookup needs neither a bounds check
    // nor a sign extension: reading the blob's codebook per entry instead measured 30 % slower.
    let mut book = [0i32; 256];
    for (b, &v) in book.iter_mut().zip(l.pk_codebook) {
        *b = i32::from(v as i8);
    }
    let mut bit = 0usize;
    by_row_segment(l, out, |acc, column_counts| {
        for (&xb, &count) in x.iter().zip(column_counts) {
            let d = i32::from(xb as i8) - zp;
            if d == 0 {
                bit += usize::from(count) * width;
                continue;
            }
            let mut next = 0usize;
            for _ in 0..count {
                let (gap, code) = packed_entry(l.sp_values, bit, gap_bits, code_bits);
                bit += width;
                let row = next + gap;
                next = row + 1;
                // Rows below 256 and codes below 256 are what the loader allows; the masks make both accesses
                // provably in bounds.
                if let Some(a) = acc.get_mut(row & (ROW_SEGMENT - 1)) {
                    *a = a.wrapping_add(d * book.get(code & 255).copied().unwrap_or(0));
                }
            }
        }
    });
}

/// Where the `row_len` inputs of one output step come from.
enum Row<'x> {
    /// One contiguous slice (Dense, and Conv1d with dilation 1).
    Contiguous(&'x [u8]),
    /// A dilated Conv1d window: input `i` of the row is `window[i / c_in * tap_step + i % c_in]`.
    Dilated {
        window: &'x [u8],
        c_in: usize,
        tap_step: usize,
    },
}

impl Row<'_> {
    /// Input `i` of the row, sign-extended (0 past the end, which the loader rules out).
    #[inline(always)]
    fn at(&self, i: usize) -> i32 {
        let v = match *self {
            Row::Contiguous(x) => x.get(i).copied(),
            Row::Dilated {
                window,
                c_in,
                tap_step,
            } => window.get(i / c_in * tap_step + i % c_in).copied(),
        };
        i32::from(v.unwrap_or(0) as i8)
    }
}

/// The per-channel bias, multiplier and shift bytes of a layer, zipped with its outputs.
#[inline(always)]
fn channels<'l, 'o>(
    l: &LayerPlan<'l>,
    out: &'o mut [u8],
) -> impl Iterator<Item = (&'o mut u8, &'l [u8], &'l [u8], u8)> {
    out.iter_mut()
        .zip(l.bias.chunks_exact(4))
        .zip(l.multipliers.chunks_exact(4))
        .zip(l.shifts)
        .map(|(((o, b), m), &s)| (o, b, m, s))
}

/// Sums `x[i] * v` over one segment's indices and values.
///
/// The segment is a fixed 128-byte array and each index is masked to 7 bits, so every read is provably in bounds
/// and the loop has no bounds checks; the loader checked that indices are below the segment's width anyway.
/// Four independent accumulators keep the multiply-adds from waiting on each other.
#[inline(always)]
fn segment_dot(x: &[u8; SEGMENT], indices: &[u8], values: &[u8]) -> i32 {
    let mut acc = 0i32;
    for (&i, &v) in indices.iter().zip(values) {
        let xv = i32::from(x.get(usize::from(i) & (SEGMENT - 1)).copied().unwrap_or(0) as i8);
        acc = acc.wrapping_add(xv * i32::from(v as i8));
    }
    acc
}

/// Sparse weights over a contiguous row `x` of `row_len` inputs.
///
/// The row is cut into 128-input segments; the last, partial one is copied into a zero-filled array so that all
/// segments have the same fixed size.
fn sparse_rows(l: &LayerPlan<'_>, x: &[u8], out: &mut [u8]) {
    let (full, tail) = x.as_chunks::<SEGMENT>();
    let mut last = [0u8; SEGMENT];
    for (d, &v) in last.iter_mut().zip(tail) {
        *d = v;
    }
    let (mut indices, mut values) = (l.sp_indices, l.sp_values);
    let rows = channels(l, out).zip(l.sp_counts.chunks_exact(l.segments.max(1)));
    for ((o, b, m, s), counts) in rows {
        let mut acc = le_i32(b);
        for (seg, &count) in counts.iter().enumerate() {
            let (ix, ix_rest) = indices
                .split_at_checked(usize::from(count))
                .unwrap_or((indices, &[]));
            let (vs, vs_rest) = values
                .split_at_checked(usize::from(count))
                .unwrap_or((values, &[]));
            (indices, values) = (ix_rest, vs_rest);
            acc = acc.wrapping_add(segment_dot(full.get(seg).unwrap_or(&last), ix, vs));
        }
        *o = requantize_inline(l, acc, m, s);
    }
}

/// Sparse weights over a dilated Conv1d window (rare, so it reads each input through [`Row::at`]).
fn sparse_rows_gather(l: &LayerPlan<'_>, row: &Row<'_>, out: &mut [u8]) {
    let (mut indices, mut values) = (l.sp_indices, l.sp_values);
    let rows = channels(l, out).zip(l.sp_counts.chunks_exact(l.segments.max(1)));
    for ((o, b, m, s), counts) in rows {
        let mut acc = le_i32(b);
        for (seg, &count) in counts.iter().enumerate() {
            let (ix, ix_rest) = indices
                .split_at_checked(usize::from(count))
                .unwrap_or((indices, &[]));
            let (vs, vs_rest) = values
                .split_at_checked(usize::from(count))
                .unwrap_or((values, &[]));
            (indices, values) = (ix_rest, vs_rest);
            for (&i, &v) in ix.iter().zip(vs) {
                let x = row.at(seg * SEGMENT + usize::from(i));
                acc = acc.wrapping_add(x * i32::from(v as i8));
            }
        }
        *o = requantize_inline(l, acc, m, s);
    }
}

/// The 2-bit in-group index of N:M entry `e` in a channel's index bytes.
#[inline(always)]
fn nm_index(idx: &[u8], e: usize) -> usize {
    usize::from((idx.get(e / 4).copied().unwrap_or(0) >> (2 * (e % 4))) & 3)
}

/// The N:M sum of one channel from entry `from` on, reading inputs through [`Row::at`].
///
/// Entry `e` belongs to group `e / n` and reads input `4 * (e / n) + index`.
fn nm_dot_gather(row: &Row<'_>, values: &[u8], idx: &[u8], n: usize, from: usize) -> i32 {
    let n = n.max(1);
    let mut acc = 0i32;
    for (e, &v) in values.iter().enumerate().skip(from) {
        let x = row.at(4 * (e / n) + nm_index(idx, e));
        acc = acc.wrapping_add(x * i32::from(v as i8));
    }
    acc
}

/// 2:4 over a contiguous row: one index byte covers two groups (8 inputs, 4 values).
///
/// Each index is masked to 2 bits and offset within an 8-byte chunk, so every read is provably in bounds.
#[inline(always)]
fn nm_dot_2_4(x: &[u8], values: &[u8], idx: &[u8]) -> (i32, usize) {
    let (x8, _) = x.as_chunks::<8>();
    let (v4, _) = values.as_chunks::<4>();
    let mut acc = [0i32; 4];
    let mut done = 0;
    for ((x, v), &b) in x8.iter().zip(v4).zip(idx) {
        let b = usize::from(b);
        let at = |i: usize| i32::from(x.get(i & 7).copied().unwrap_or(0) as i8);
        acc[0] = acc[0].wrapping_add(at(b & 3) * i32::from(v[0] as i8));
        acc[1] = acc[1].wrapping_add(at((b >> 2) & 3) * i32::from(v[1] as i8));
        acc[2] = acc[2].wrapping_add(at(4 + ((b >> 4) & 3)) * i32::from(v[2] as i8));
        acc[3] = acc[3].wrapping_add(at(4 + ((b >> 6) & 3)) * i32::from(v[3] as i8));
        done += 4;
    }
    let sum = acc[0]
        .wrapping_add(acc[1])
        .wrapping_add(acc[2])
        .wrapping_add(acc[3]);
    (sum, done)
}

/// 1:4 over a contiguous row: one index byte covers four groups (16 inputs, 4 values).
#[inline(always)]
fn nm_dot_1_4(x: &[u8], values: &[u8], idx: &[u8]) -> (i32, usize) {
    let (x16, _) = x.as_chunks::<16>();
    let (v4, _) = values.as_chunks::<4>();
    let mut acc = [0i32; 4];
    let mut done = 0;
    for ((x, v), &b) in x16.iter().zip(v4).zip(idx) {
        let b = usize::from(b);
        let at = |i: usize| i32::from(x.get(i & 15).copied().unwrap_or(0) as i8);
        acc[0] = acc[0].wrapping_add(at(b & 3) * i32::from(v[0] as i8));
        acc[1] = acc[1].wrapping_add(at(4 + ((b >> 2) & 3)) * i32::from(v[1] as i8));
        acc[2] = acc[2].wrapping_add(at(8 + ((b >> 4) & 3)) * i32::from(v[2] as i8));
        acc[3] = acc[3].wrapping_add(at(12 + ((b >> 6) & 3)) * i32::from(v[3] as i8));
        done += 4;
    }
    let sum = acc[0]
        .wrapping_add(acc[1])
        .wrapping_add(acc[2])
        .wrapping_add(acc[3]);
    (sum, done)
}

/// N:M weights over one row: fast paths for contiguous 2:4 and 1:4 rows (whole index bytes), then the general
/// path for whatever is left (a last partial byte, 3:4, or a dilated window).
fn nm_rows(l: &LayerPlan<'_>, row: &Row<'_>, out: &mut [u8]) {
    let entries = l.nm_entries.max(1);
    let rows = channels(l, out)
        .zip(l.sp_values.chunks_exact(entries))
        .zip(l.sp_indices.chunks_exact(l.nm_index_len.max(1)));
    for (((o, b, m, s), values), idx) in rows {
        let (sum, done) = match (row, l.nm_n) {
            (Row::Contiguous(x), 2) => nm_dot_2_4(x, values, idx),
            (Row::Contiguous(x), 1) => nm_dot_1_4(x, values, idx),
            _ => (0, 0),
        };
        let rest = nm_dot_gather(row, values, idx, l.nm_n, done);
        let acc = le_i32(b).wrapping_add(sum).wrapping_add(rest);
        *o = requantize_inline(l, acc, m, s);
    }
}

/// Conv1d over a time-major input whose first `dilation * (kernel - 1)` rows are the causal pad (if any).
///
/// Each output step is a Dense over its window: with dilation 1 the window's taps are consecutive input rows, so
/// it is one contiguous row of `kernel * C_in` values; otherwise each tap is read where it lies.
pub(crate) fn conv1d(l: &LayerPlan<'_>, x: &[u8], out: &mut [u8]) {
    let c_in = l.in_c.max(1);
    let step = l.stride * c_in;
    let tap_step = l.dilation * c_in;
    for (t, out_row) in out.chunks_exact_mut(l.out_c.max(1)).enumerate() {
        let window = x.get(t * step..).unwrap_or(&[]);
        if l.layout != WeightLayout::Dense {
            if !crate::SPARSE_FORMATS {
                // The loader refuses the sparse formats without `sparse-formats`; nothing else gets here.
                continue;
            }
            let row = if l.dilation == 1 {
                Row::Contiguous(window.get(..l.row_len).unwrap_or(window))
            } else {
                Row::Dilated {
                    window,
                    c_in,
                    tap_step,
                }
            };
            match (l.layout, &row) {
                (WeightLayout::Sparse, Row::Contiguous(r)) => sparse_rows(l, r, out_row),
                (WeightLayout::Sparse, _) => sparse_rows_gather(l, &row, out_row),
                (WeightLayout::NM { .. }, _) => nm_rows(l, &row, out_row),
                // The loader accepts the column format for Dense layers only.
                (
                    WeightLayout::Dense
                    | WeightLayout::Columns
                    | WeightLayout::Packed
                    | WeightLayout::DenseDsp,
                    _,
                ) => {}
            }
            continue;
        }
        for b in blocks(l, out_row) {
            let mut acc = [0i32; STEP];
            let (w, step_len) = (b.w, b.step_len);
            if l.dilation == 1 {
                block_row(
                    w,
                    step_len,
                    window.get(..l.row_len).unwrap_or(window),
                    &mut acc,
                );
            } else if c_in.is_multiple_of(2) {
                // Every tap is a whole number of input pairs, so each tap is a contiguous run of steps.
                let tap_len = c_in / 2 * step_len;
                for (k, tap_w) in w.chunks_exact(tap_len.max(1)).enumerate() {
                    let tap = window.get(k * tap_step..).unwrap_or(&[]);
                    block_row(tap_w, step_len, tap.get(..c_in).unwrap_or(tap), &mut acc);
                }
            } else {
                // Pairs straddle taps: gather each pair (rare, so it is kept simple).
                let at = |i: usize| {
                    if i < l.row_len {
                        window
                            .get(i / c_in * tap_step + i % c_in)
                            .copied()
                            .unwrap_or(0)
                    } else {
                        0
                    }
                };
                for (p, step_w) in w.chunks_exact(step_len.max(1)).enumerate() {
                    steps_dot(step_w, &[[at(2 * p), at(2 * p + 1)]], step_len, &mut acc);
                }
            }
            requant_block(l, &acc, b.bias, b.mults, b.shifts, b.out);
        }
    }
}

/// Lut: `out = table[x + 128]`.
pub(crate) fn lut(table: &[u8], x: &[u8], out: &mut [u8]) {
    if let Ok(table) = <&[u8; 256]>::try_from(table) {
        for (o, &v) in out.iter_mut().zip(x) {
            // A u8 index into a 256-entry array is always in bounds.
            *o = table.get(usize::from(v ^ 0x80)).copied().unwrap_or(0);
        }
    }
}

/// MaxPool1d: the maximum over each window, per channel, then the output clamp.
pub(crate) fn max_pool(l: &LayerPlan<'_>, x: &[u8], out: &mut [u8]) {
    let c = l.in_c.max(1);
    for (t, out_row) in out.chunks_exact_mut(c).enumerate() {
        let window = x.get(t * l.stride * c..).unwrap_or(&[]);
        out_row.fill(i8::MIN as u8);
        for tap in window.chunks_exact(c).take(l.kernel) {
            for (o, &v) in out_row.iter_mut().zip(tap) {
                *o = (*o as i8).max(v as i8) as u8;
            }
        }
        for o in out_row.iter_mut() {
            *o = (*o as i8).clamp(l.act_min, l.act_max) as u8;
        }
    }
}

/// AvgPool1d and GlobalAvgPool: `requant(sum (x - zp))` over each window, per channel.
///
/// The window sum is at most `255 * 65535 < 2^31` in magnitude, so it fits i32.
pub(crate) fn avg_pool(l: &LayerPlan<'_>, kernel: usize, stride: usize, x: &[u8], out: &mut [u8]) {
    let c = l.in_c.max(1);
    let zp = i32::from(l.in_zp);
    for (t, out_row) in out.chunks_exact_mut(c).enumerate() {
        let window = x.get(t * stride * c..).unwrap_or(&[]);
        let window = window.get(..kernel * c).unwrap_or(window);
        for (ch, o) in out_row.iter_mut().enumerate() {
            let acc = window
                .iter()
                .skip(ch)
                .step_by(c)
                .fold(0i32, |acc, &v| acc.wrapping_add(i32::from(v as i8) - zp));
            *o = requantize(acc, l.requant, l.out_zp, l.act_min, l.act_max) as u8;
        }
    }
}

/// Add: `requant((a - za) * wa + (b - zb) * wb)`.
pub(crate) fn add(l: &LayerPlan<'_>, a: &[u8], b: &[u8], out: &mut [u8]) {
    let (za, zb) = (i32::from(l.in_zp), i32::from(l.in_b_zp));
    for ((o, &va), &vb) in out.iter_mut().zip(a).zip(b) {
        let acc = (i32::from(va as i8) - za)
            .wrapping_mul(l.wa)
            .wrapping_add((i32::from(vb as i8) - zb).wrapping_mul(l.wb));
        *o = requantize(acc, l.requant, l.out_zp, l.act_min, l.act_max) as u8;
    }
}

/// Rounds half away from zero, like `libm::roundf`, for values already clamped to `[-129, 128]`.
///
/// For `|v| < 2^23` the integer part `t` is exact and so is `v - t`, so comparing the fraction with one half
/// decides the rounding exactly; this is much cheaper than a general `roundf` and gives the same result.
#[inline(always)]
fn round_clamped(v: f32) -> i32 {
    let t = v as i32;
    let frac = v - t as f32;
    t + i32::from(frac >= 0.5) - i32::from(frac <= -0.5)
}

/// The input quantizer: `q = clamp(round(x * a[f] + b[f]))`, with NaN mapped to the zero point.
///
/// `features` is time-major; missing values count as NaN.
pub(crate) fn quantize(l: &LayerPlan<'_>, features: &[f32], out: &mut [u8]) {
    let f = l.out_c.max(1);
    let (a, b) = l.aux.split_at_checked(4 * f).unwrap_or((l.aux, &[]));
    let nan_value = l.out_zp.clamp(l.act_min, l.act_max) as u8;
    let (lo, hi) = (i32::from(l.act_min), i32::from(l.act_max));
    let quantize_one = |x: f32, ac: &[u8], bc: &[u8]| {
        // Two IEEE operations, never fused: Rust does not contract `x * a + b` into an FMA.
        let v = x * le_f32(ac) + le_f32(bc);
        let q = round_clamped(v.clamp(-129.0, 128.0)).clamp(lo, hi) as u8;
        // Both arms are computed and one is selected, so the loop stays branch-free.
        if v.is_nan() { nan_value } else { q }
    };
    for (t, out_row) in out.chunks_exact_mut(f).enumerate() {
        let coefficients = out_row
            .iter_mut()
            .zip(a.chunks_exact(4))
            .zip(b.chunks_exact(4));
        if let Some(xs) = features.get(t * f..t * f + f) {
            // The usual case, a whole row of features: a plain zip, which the compiler vectorizes.
            for (((o, ac), bc), &x) in coefficients.zip(xs) {
                *o = quantize_one(x, ac, bc);
            }
        } else {
            let mut xs = features.get(t * f..).unwrap_or(&[]).iter();
            for ((o, ac), bc) in coefficients {
                *o = quantize_one(xs.next().copied().unwrap_or(f32::NAN), ac, bc);
            }
        }
    }
}

/// The smallest and largest input exponents of the dynamic input quantizer.
pub(crate) const DYN_EXP_MIN: i32 = -100;
/// See [`DYN_EXP_MIN`].
pub(crate) const DYN_EXP_MAX: i32 = 121;

/// The dynamic input quantizer: `z = x * a[f] + b[f]` as in [`quantize`], `m = max |z|` (NaN skipped), the
/// exponent `e = clamp(E(m) - 133, -100, 121)` where `E(m)` is the biased f32 exponent field of `m` (at most
/// 254), then `q = clamp(round(z * 2^-e), -127, 127)`, NaN to 0. Returns `e`.
///
/// `m < 2^(E - 126) = 2^(e + 7)`, so `|z * 2^-e| < 128` and only a value that rounds to 128 is clamped.
/// `2^-e` is an exact normal f32 for `e` in `[-100, 121]`, and each step is one correctly rounded IEEE operation.
pub(crate) fn quantize_dynamic(l: &LayerPlan<'_>, features: &[f32], out: &mut [u8]) -> i32 {
    let f = l.out_c.max(1);
    let (a, b) = l.aux.split_at_checked(4 * f).unwrap_or((l.aux, &[]));
    let z = |i: usize| {
        let x = features.get(i).copied().unwrap_or(f32::NAN);
        let ac = a.get(4 * (i % f)..4 * (i % f) + 4).unwrap_or(&[]);
        let bc = b.get(4 * (i % f)..4 * (i % f) + 4).unwrap_or(&[]);
        x * le_f32(ac) + le_f32(bc)
    };
    let mut m = 0.0f32;
    for i in 0..out.len() {
        let v = z(i).abs();
        // NaN compares false and is skipped.
        if v > m {
            m = v;
        }
    }
    let biased = ((m.to_bits() >> 23) & 0xFF).min(254) as i32;
    let e = (biased - 133).clamp(DYN_EXP_MIN, DYN_EXP_MAX);
    let scale = f32::from_bits(((127 - e) as u32) << 23);
    for (i, o) in out.iter_mut().enumerate() {
        let v = z(i) * scale;
        let q = round_clamped(v.clamp(-129.0, 128.0)).clamp(-127, 127) as u8;
        *o = if v.is_nan() { 0 } else { q };
    }
    e
}

/// Dynamic Dense (`docs/ARITHMETIC.md`, "Dynamic quantization"): for an input of exponent `e_in`, per channel
/// `acc = sum w * x + sat(b * 2^(bias_exp - e_in))` (the shifted bias saturated to `[-2^30, 2^30]`),
/// `y = scale_round(acc, M[o])`, the fused ReLU / cap, then `k` = the smallest shift that brings `max |y|` into
/// `[-127, 127]`, and `out = round(y / 2^k)`. Returns `k`.
///
/// `out` is the layer's whole allocation: `C_out` int8 outputs, then `C_out` i32 values `y`.
pub(crate) fn dense_dynamic(l: &LayerPlan<'_>, x: &[u8], out: &mut [u8], e_in: i32) -> i32 {
    let x = x.get(..l.row_len).unwrap_or(x);
    let (q, ys) = out.split_at_mut(l.out_c.min(out.len()));
    let cap = if l.act_max == i8::MAX {
        i64::MAX
    } else {
        shift_saturating(1, e_in - i32::from(l.act_max))
    };
    let floor = if l.act_min == 0 { 0 } else { i64::MIN };
    let bias_shift = e_in - i32::from(l.bias_exp);
    let mut max_abs = 0i64;
    let mut y_chunks = ys.chunks_exact_mut(4);
    for b in blocks(l, q) {
        let mut acc = [0i32; STEP];
        block_row(b.w, b.step_len, x, &mut acc);
        let (lanes, _) = acc.as_chunks::<2>();
        let channels = lanes
            .iter()
            .zip(b.bias.chunks_exact(4))
            .zip(b.mults.chunks_exact(4))
            .zip(b.shifts)
            .take(b.out.len());
        for (((lane, bb), m), &s) in channels {
            let bias = shift_saturating(le_i32(bb), bias_shift).clamp(-(1 << 30), 1 << 30) as i32;
            let acc = lane[0].wrapping_add(lane[1]).wrapping_add(bias);
            let y = scale_round(acc, channel_multiplier(m, s))
                .max(floor)
                .min(cap);
            max_abs = max_abs.max(y.abs());
            if let Some(slot) = y_chunks.next() {
                slot.copy_from_slice(&(y as i32).to_le_bytes());
            }
        }
    }
    let mut k = 0u32;
    while k < 40 && round_shift(max_abs, k) > 127 {
        k += 1;
    }
    for (o, y) in q.iter_mut().zip(ys.chunks_exact(4)) {
        *o = round_shift(i64::from(le_i32(y)), k).clamp(-127, 127) as u8;
    }
    k as i32
}

/// Copies an int8 input into the quantizer's output, padding missing values with the zero point.
pub(crate) fn copy_input(l: &LayerPlan<'_>, input: &[i8], out: &mut [u8]) {
    let mut input = input.iter();
    for o in out.iter_mut() {
        *o = input.next().map_or(l.out_zp, |&v| v) as u8;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn dot_matches_naive_for_all_lengths() {
        let w: std::vec::Vec<u8> = (0..70).map(|i| (i * 37 + 11) as u8).collect();
        let x: std::vec::Vec<u8> = (0..70).map(|i| (i * 53 + 5) as u8).collect();
        for n in 0..70 {
            let naive: i32 = (0..n)
                .map(|i| i32::from(w[i] as i8) * i32::from(x[i] as i8))
                .sum();
            assert_eq!(dot(&w[..n], &x[..n]), naive, "n={n}");
            assert_eq!(dot(&w[..n], &x), naive, "n={n}");
        }
        assert_eq!(dot(&[0x80; 16], &[0x80; 16]), 16 * 128 * 128);
    }

    use crate::model::{LayerKind, Padding, block_len, blocked_index, dense_weights_len};
    use proptest::prelude::*;

    /// A Dense (`kernel == 0`) or valid Conv1d layer with row-major weights, as the encoder receives them.
    #[derive(Debug, Clone)]
    struct Case {
        in_t: usize,
        in_c: usize,
        out_c: usize,
        kernel: usize,
        stride: usize,
        dilation: usize,
        weights: std::vec::Vec<i8>,
        bias: std::vec::Vec<i32>,
        mults: std::vec::Vec<u8>,
        shifts: std::vec::Vec<u8>,
        x: std::vec::Vec<u8>,
        out_zp: i8,
        act: (i8, i8),
    }

    impl Case {
        fn taps(&self) -> usize {
            self.kernel.max(1)
        }

        fn row_len(&self) -> usize {
            self.taps() * self.in_c
        }

        fn out_t(&self) -> usize {
            (self.in_t - self.dilation * (self.taps() - 1) - 1) / self.stride + 1
        }

        /// The version 2 layout (a short tail block) or, with `padded`, the version 1 layout (the last block
        /// padded to 16 channels).
        fn blocked(&self, padded: bool) -> std::vec::Vec<u8> {
            let n = self.row_len();
            let tail = if padded { 0 } else { self.out_c % BLOCK };
            let mut w = vec![0u8; dense_weights_len(self.out_c, n, tail) as usize];
            for o in 0..self.out_c {
                for k in 0..n {
                    let at = if padded {
                        (o / BLOCK) * block_len(n) + (k / 2) * STEP + (o % BLOCK) * 2 + k % 2
                    } else {
                        blocked_index(o, k, n, self.out_c)
                    };
                    w[at] = self.weights[o * n + k] as u8;
                }
            }
            w
        }

        fn plan<'b>(&'b self, weights: &'b [u8], bias: &'b [u8]) -> LayerPlan<'b> {
            let conv = self.kernel > 0;
            LayerPlan {
                kind: if conv {
                    LayerKind::Conv1d
                } else {
                    LayerKind::Dense
                },
                padding: Padding::Valid,
                input_a: 0,
                input_b: 0,
                in_t: self.in_t,
                in_c: self.in_c,
                out_t: self.out_t(),
                out_c: self.out_c,
                kernel: self.kernel,
                stride: self.stride,
                dilation: self.dilation,
                out_scale: 1.0,
                out_zp: self.out_zp,
                act_min: self.act.0,
                act_max: self.act.1,
                in_zp: 0,
                in_b_zp: 0,
                weights,
                block_len: block_len(self.row_len()),
                row_len: self.row_len(),
                layout: crate::model::WeightLayout::Dense,
                sp_counts: &[],
                sp_indices: &[],
                sp_values: &[],
                pk_codebook: &[],
                pk_gap_bits: 0,
                pk_code_bits: 0,
                segments: 0,
                nm_n: 0,
                nm_entries: 0,
                nm_index_len: 0,
                nonzero: 0,
                bias,
                multipliers: &self.mults,
                shifts: &self.shifts,
                shifts_split: false,
                requant: QuantMultiplier::ONE,
                aux: &[],
                wa: 0,
                wb: 0,
                out_start: 0,
                out_len: 0,
                in_start: 0,
                in_len: 0,
                pad_len: 0,
                in_b_start: 0,
                in_b_len: 0,
                alloc_start: 0,
                alloc_len: 0,
                entry_offset: 0,
                dynamic: false,
                bias_exp: 0,
                scratch_len: 0,
            }
        }

        /// The straightforward kernel: one row-major dot product per tap and output, then `requantize`.
        fn reference(&self) -> std::vec::Vec<u8> {
            let (n, c) = (self.row_len(), self.in_c);
            let mut out = std::vec::Vec::new();
            for t in 0..self.out_t() {
                for o in 0..self.out_c {
                    let row: std::vec::Vec<u8> = self.weights[o * n..][..n]
                        .iter()
                        .map(|&w| w as u8)
                        .collect();
                    let mut acc = self.bias[o];
                    for k in 0..self.taps() {
                        let at = (t * self.stride + k * self.dilation) * c;
                        acc = acc.wrapping_add(dot(&row[k * c..][..c], &self.x[at..][..c]));
                    }
                    let m = QuantMultiplier::new_checked(
                        i32::from_le_bytes(self.mults[4 * o..][..4].try_into().unwrap()),
                        self.shifts[o],
                    )
                    .unwrap();
                    out.push(requantize(acc, m, self.out_zp, self.act.0, self.act.1) as u8);
                }
            }
            out
        }

        fn run(&self, padded: bool) -> std::vec::Vec<u8> {
            let weights = self.blocked(padded);
            let bias: std::vec::Vec<u8> = self.bias.iter().flat_map(|b| b.to_le_bytes()).collect();
            let plan = self.plan(&weights, &bias);
            let mut out = vec![0xAA; self.out_t() * self.out_c];
            if self.kernel > 0 {
                conv1d(&plan, &self.x, &mut out);
            } else {
                dense(&plan, &self.x, &mut out);
            }
            out
        }
    }

    fn case() -> impl Strategy<Value = Case> {
        // Dense is `kernel == 0`; the rest are valid convolutions with odd and even channel counts.
        (
            1usize..24,
            1usize..40,
            0usize..5,
            1usize..4,
            1usize..4,
            0usize..6,
        )
            .prop_flat_map(|(in_c, out_c, kernel, stride, dilation, extra)| {
                let taps = kernel.max(1);
                let (stride, dilation) = if kernel == 0 {
                    (1, 1)
                } else {
                    (stride, dilation)
                };
                let in_t = if kernel == 0 {
                    1
                } else {
                    dilation * (taps - 1) + 1 + extra
                };
                let n = taps * in_c;
                (
                    Just((in_t, in_c, out_c, kernel, stride, dilation)),
                    proptest::collection::vec(any::<i8>(), out_c * n),
                    proptest::collection::vec(-100_000i32..100_000, out_c),
                    proptest::collection::vec((1i32 << 30..=i32::MAX, 10u8..=30), out_c),
                    proptest::collection::vec(any::<u8>(), in_t * in_c),
                    any::<i8>(),
                    any::<(i8, i8)>(),
                )
            })
            .prop_map(
                |(
                    (in_t, in_c, out_c, kernel, stride, dilation),
                    weights,
                    bias,
                    m,
                    x,
                    out_zp,
                    (a, b),
                )| Case {
                    in_t,
                    in_c,
                    out_c,
                    kernel,
                    stride,
                    dilation,
                    weights,
                    bias,
                    mults: m.iter().flat_map(|(m, _)| m.to_le_bytes()).collect(),
                    shifts: m.iter().map(|&(_, s)| s).collect(),
                    x,
                    out_zp,
                    act: (a.min(b), a.max(b)),
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The blocked Dense and Conv1d kernels equal the row-major reference, bit for bit.
        #[test]
        ///
        /// `out_c` ranges over 1 to 39, so it covers one partial block, full blocks, and full blocks followed by a
        /// tail block; both the version 2 layout (short tail) and the version 1 layout (padded tail) are run.
        #[test]
        fn blocked_kernels_match_reference(c in case()) {
            let want = c.reference();
            prop_assert_eq!(c.run(false), want.clone());
            prop_assert_eq!(c.run(true), want);
        }
    }

    #[test]
    fn round_clamped_matches_roundf() {
        let mut v = -129.0f32;
        while v <= 128.0 {
            assert_eq!(round_clamped(v), libm::roundf(v) as i32, "v={v}");
            // Neighbours of every quarter, which covers the exact halves and the values next to them.
            for n in [v.next_down(), v.next_up()] {
                if (-129.0..=128.0).contains(&n) {
                    assert_eq!(round_clamped(n), libm::roundf(n) as i32, "v={n}");
                }
            }
            v += 0.25;
        }
        let mut bits = 0u32;
        while bits < u32::MAX - 997 {
            let v = f32::from_bits(bits);
            if (-129.0..=128.0).contains(&v) {
                assert_eq!(round_clamped(v), libm::roundf(v) as i32, "v={v}");
            }
            bits += 997;
        }
    }
}
