//! The sparse weight formats (feature `sparse-formats`): by output channel (format 1), N:M (format 2), by input
//! column (format 3) and bit-packed by column (format 4). All four are portable; their gathers and scatters
//! leave little for vectors (`docs/BLOB.md`, "Costs"), so the only SIMD versions are the x86 column kernels,
//! which run this module's scatter ([`columns_with`], [`packed_with`]) and vectorize the requantization.

use super::Row;
use super::blocked::requantize_inline;
use crate::format::layout::columns::{ROW_SEGMENT, packed_entry};
use crate::format::layout::sparse::SEGMENT;
use crate::format::le_i32;
use crate::plan::{Channels, ColumnPairs, NmRows, OutQuant, PackedColumns, SparseRows};

/// Runs a column-format Dense layer one 256-channel row segment at a time: the segment's accumulators start at
/// its biases, `accumulate` adds the segment's columns (it gets the per-input counts of the segment), and
/// `requantize` turns the sums into the segment's outputs (it gets the segment's multipliers and shifts).
///
/// The accumulators are an array indexed by a one-byte row, so the kernels' scatter needs no bounds check.
#[inline(always)]
fn by_row_segment(
    ch: &Channels<'_>,
    (counts, inputs): (&[u8], usize),
    out: &mut [u8],
    mut accumulate: impl FnMut(&mut [i32; ROW_SEGMENT], &[u8]),
    mut requantize: impl FnMut(&[i32; ROW_SEGMENT], (&[u8], &[u8]), &mut [u8]),
) {
    let mut counts = counts.chunks_exact(inputs.max(1));
    let segments = out
        .chunks_mut(ROW_SEGMENT)
        .zip(ch.bias.chunks(4 * ROW_SEGMENT))
        .zip(ch.multipliers.chunks(4 * ROW_SEGMENT))
        .zip(ch.shifts.chunks(ROW_SEGMENT));
    for (((out, bias), mults), shifts) in segments {
        let mut acc = [0i32; ROW_SEGMENT];
        for (a, b) in acc.iter_mut().zip(bias.chunks_exact(4)) {
            *a = le_i32(b);
        }
        accumulate(&mut acc, counts.next().unwrap_or(&[]));
        requantize(&acc, (mults, shifts), out);
    }
}

/// The portable requantization of one row segment's sums.
#[inline(always)]
fn requantize_segment(
    q: &OutQuant,
    acc: &[i32; ROW_SEGMENT],
    (mults, shifts): (&[u8], &[u8]),
    out: &mut [u8],
) {
    let channels = out
        .iter_mut()
        .zip(acc)
        .zip(mults.chunks_exact(4))
        .zip(shifts);
    for (((o, &a), m), &s) in channels {
        *o = requantize_inline(q, a, m, s);
    }
}

/// Adds one row segment's columns to its accumulators: for every input `j` not at the zero point, its
/// `counts[j]` (row, value) pairs, taken from the front of `pairs`, which moves past them.
#[inline(always)]
fn accumulate_columns(
    acc: &mut [i32; ROW_SEGMENT],
    pairs: &mut &[[u8; 2]],
    (x, zp): (&[u8], i32),
    column_counts: &[u8],
) {
    for (&xb, &count) in x.iter().zip(column_counts) {
        let (column, rest) = pairs
            .split_at_checked(usize::from(count))
            .unwrap_or((pairs, &[]));
        *pairs = rest;
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
}

/// Adds one row segment's packed columns to its accumulators, reading entries from bit `*bit` on of the stream
/// (which moves past them); a column whose input is at the zero point is skipped by moving the bit cursor past
/// its entries.
#[inline(always)]
fn accumulate_packed(
    acc: &mut [i32; ROW_SEGMENT],
    (packed, book, bit): (&PackedColumns<'_>, &[i32; 256], &mut usize),
    (x, zp): (&[u8], i32),
    column_counts: &[u8],
) {
    let (gap_bits, code_bits) = (packed.gap_bits, packed.code_bits);
    let width = (gap_bits + code_bits) as usize;
    for (&xb, &count) in x.iter().zip(column_counts) {
        let d = i32::from(xb as i8) - zp;
        if d == 0 {
            *bit += usize::from(count) * width;
            continue;
        }
        let mut next = 0usize;
        for _ in 0..count {
            let (gap, code) = packed_entry(packed.stream, *bit, gap_bits, code_bits);
            *bit += width;
            let row = next + gap;
            next = row + 1;
            // Rows below 256 and codes below 256 are what the loader allows; the masks make both accesses
            // provably in bounds.
            if let Some(a) = acc.get_mut(row & (ROW_SEGMENT - 1)) {
                *a = a.wrapping_add(d * book.get(code & 255).copied().unwrap_or(0));
            }
        }
    }
}

/// A packed layer's codebook, widened once per call into a fixed 256-entry table, so the per-entry lookup needs
/// neither a bounds check nor a sign extension: reading the blob's codebook per entry instead measured 30 %
/// slower.
#[inline(always)]
fn widened_codebook(packed: &PackedColumns<'_>) -> [i32; 256] {
    let mut book = [0i32; 256];
    for (b, &v) in book.iter_mut().zip(packed.codebook) {
        *b = i32::from(v as i8);
    }
    book
}

/// Column-sparse Dense: `acc[o] = b[o] + sum over inputs j with x[j] != zp of w[o][j] * (x[j] - zp)`.
///
/// The bias `b` has the input zero point unfolded (`b = b_eff + zp * sum_j w[o][j]`), so the sum equals the
/// dense one exactly and every input at the zero point (a ReLU zero) is skipped with its whole column.
pub(crate) fn dense_columns(
    q: &OutQuant,
    ch: &Channels<'_>,
    columns: &ColumnPairs<'_>,
    in_zp: i8,
    x: &[u8],
    out: &mut [u8],
) {
    columns_with(ch, columns, (x, in_zp), out, |acc, channels, out| {
        requantize_segment(q, acc, channels, out)
    });
}

/// [`dense_columns`] with the requantization of each row segment's sums given (the x86 kernels vectorize it).
#[inline(always)]
pub(crate) fn columns_with(
    ch: &Channels<'_>,
    columns: &ColumnPairs<'_>,
    (x, in_zp): (&[u8], i8),
    out: &mut [u8],
    requantize: impl FnMut(&[i32; ROW_SEGMENT], (&[u8], &[u8]), &mut [u8]),
) {
    let mut pairs = columns.pairs.as_chunks::<2>().0;
    by_row_segment(
        ch,
        (columns.counts, x.len()),
        out,
        |acc, counts| accumulate_columns(acc, &mut pairs, (x, i32::from(in_zp)), counts),
        requantize,
    );
}

/// Packed column-sparse Dense: the sum of [`dense_columns`], with each entry decoded from a bit stream.
///
/// An entry is a row gap (the rows skipped since the previous entry of the column) and an index into the
/// layer's codebook; fillers carry the value 0 and only advance the row.
pub(crate) fn dense_packed(
    q: &OutQuant,
    ch: &Channels<'_>,
    packed: &PackedColumns<'_>,
    in_zp: i8,
    x: &[u8],
    out: &mut [u8],
) {
    packed_with(ch, packed, (x, in_zp), out, |acc, channels, out| {
        requantize_segment(q, acc, channels, out)
    });
}

/// [`dense_packed`] with the requantization of each row segment's sums given.
#[inline(always)]
pub(crate) fn packed_with(
    ch: &Channels<'_>,
    packed: &PackedColumns<'_>,
    (x, in_zp): (&[u8], i8),
    out: &mut [u8],
    requantize: impl FnMut(&[i32; ROW_SEGMENT], (&[u8], &[u8]), &mut [u8]),
) {
    let book = widened_codebook(packed);
    let mut bit = 0usize;
    by_row_segment(
        ch,
        (packed.counts, x.len()),
        out,
        |acc, counts| {
            accumulate_packed(
                acc,
                (packed, &book, &mut bit),
                (x, i32::from(in_zp)),
                counts,
            )
        },
        requantize,
    );
}

/// The per-channel bias, multiplier and shift bytes of a layer, zipped with its outputs.
#[inline(always)]
fn channels<'l, 'o>(
    ch: &Channels<'l>,
    out: &'o mut [u8],
) -> impl Iterator<Item = (&'o mut u8, &'l [u8], &'l [u8], u8)> {
    out.iter_mut()
        .zip(ch.bias.chunks_exact(4))
        .zip(ch.multipliers.chunks_exact(4))
        .zip(ch.shifts)
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
pub(crate) fn sparse_rows(
    q: &OutQuant,
    ch: &Channels<'_>,
    sparse: &SparseRows<'_>,
    x: &[u8],
    out: &mut [u8],
) {
    let (full, tail) = x.as_chunks::<SEGMENT>();
    let mut last = [0u8; SEGMENT];
    for (d, &v) in last.iter_mut().zip(tail) {
        *d = v;
    }
    let (mut indices, mut values) = (sparse.indices, sparse.values);
    let rows = channels(ch, out).zip(sparse.counts.chunks_exact(sparse.segments.max(1)));
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
        *o = requantize_inline(q, acc, m, s);
    }
}

/// Sparse weights over a dilated Conv1d window (rare, so it reads each input through [`Row::at`]).
pub(crate) fn sparse_rows_gather(
    q: &OutQuant,
    ch: &Channels<'_>,
    sparse: &SparseRows<'_>,
    row: &Row<'_>,
    out: &mut [u8],
) {
    let (mut indices, mut values) = (sparse.indices, sparse.values);
    let rows = channels(ch, out).zip(sparse.counts.chunks_exact(sparse.segments.max(1)));
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
        *o = requantize_inline(q, acc, m, s);
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
pub(crate) fn nm_rows(
    q: &OutQuant,
    ch: &Channels<'_>,
    nm: &NmRows<'_>,
    row: &Row<'_>,
    out: &mut [u8],
) {
    let entries = nm.entries.max(1);
    let rows = channels(ch, out)
        .zip(nm.values.chunks_exact(entries))
        .zip(nm.indices.chunks_exact(nm.index_len.max(1)));
    for (((o, b, m, s), values), idx) in rows {
        let (sum, done) = match (row, nm.n) {
            (Row::Contiguous(x), 2) => nm_dot_2_4(x, values, idx),
            (Row::Contiguous(x), 1) => nm_dot_1_4(x, values, idx),
            _ => (0, 0),
        };
        let rest = nm_dot_gather(row, values, idx, nm.n, done);
        let acc = le_i32(b).wrapping_add(sum).wrapping_add(rest);
        *o = requantize_inline(q, acc, m, s);
    }
}
