//! The per-format checks of a weighted layer's sections: every byte a kernel will read is validated here once,
//! so the kernels never check anything (`docs/BLOB.md` lists the checks).
//!
//! Each format's check also proves the layer's overflow bound: no accumulator a kernel builds can leave i32
//! (`docs/ARITHMETIC.md`).

use super::layer::LayerCheck;
use crate::error::{BlobError, BlobErrorKind, Section};
use crate::format::layout::{blocked, dsp};
#[cfg(feature = "sparse-formats")]
use crate::format::layout::{columns, sparse};
use crate::format::{WeightLayout, le_i32};
use crate::plan::{Channels, Weighted, Weights};
#[cfg(feature = "sparse-formats")]
use crate::plan::{ColumnPairs, NmRows, PackedColumns, SparseRows};
use crate::requant::QuantMultiplier;

/// A validated packed weights section and its count of non-zero weights (fillers excluded).
#[cfg(feature = "sparse-formats")]
struct PackedWeights<'b> {
    columns: PackedColumns<'b>,
    nonzero: usize,
}

impl<'b> LayerCheck<'b, '_> {
    /// Checks the overflow bound of channel `o`: `|b_eff| + 128 * sum |w| < 2^31` (in u64).
    #[cfg(feature = "sparse-formats")]
    fn channel_bound(
        &self,
        bias: &[u8],
        b_offset: usize,
        o: usize,
        abs_sum: u64,
    ) -> Result<(), BlobError> {
        self.channel_bound_with(bias, b_offset, o, abs_sum, 128)
    }

    #[cfg(feature = "sparse-formats")]
    /// Checks `|b| + deviation * sum |w| < 2^31` for channel `o`, where `deviation` bounds every input.
    fn channel_bound_with(
        &self,
        bias: &[u8],
        b_offset: usize,
        o: usize,
        abs_sum: u64,
        deviation: u64,
    ) -> Result<(), BlobError> {
        let b = bias
            .get(4 * o..4 * o + 4)
            .map_or(0, |v| le_i32(v).unsigned_abs());
        if deviation * abs_sum + u64::from(b) >= 1 << 31 {
            return Err(self.err(b_offset + 4 * o, BlobErrorKind::OverflowPossible));
        }
        Ok(())
    }

    #[cfg(feature = "sparse-formats")]
    /// Validates sparse weights (the section was placed but its length is unchecked) and splits them into
    /// (counts, indices, values, non-zero count).
    ///
    /// Checks, in order: the counts fit the section, each count fits its segment, the section length is exact,
    /// then per channel and segment: indices below the segment width and strictly increasing, values non-zero,
    /// and the channel's overflow bound.
    #[allow(clippy::type_complexity)]
    fn sparse(
        &self,
        weights: &'b [u8],
        w_offset: usize,
        bias: &[u8],
        b_offset: usize,
        channels: usize,
        row_len: usize,
    ) -> Result<(&'b [u8], &'b [u8], &'b [u8], usize), BlobError> {
        use BlobErrorKind as K;
        let segments = sparse::segments(row_len);
        let counts_len = channels as u64 * segments as u64;
        let found = u32::try_from(weights.len()).unwrap_or(u32::MAX);
        let (counts, rest) = usize::try_from(counts_len)
            .ok()
            .and_then(|n| weights.split_at_checked(n))
            .ok_or_else(|| self.length_error(Section::Weights, counts_len, found))?;
        let mut nnz = 0usize;
        for (i, &count) in counts.iter().enumerate() {
            if usize::from(count) > sparse::segment_width(row_len, i % segments.max(1)) {
                return Err(self.err(w_offset + i, K::SparseCountTooLarge));
            }
            nnz += usize::from(count);
        }
        let expected = counts_len + 2 * nnz as u64;
        if weights.len() as u64 != expected {
            return Err(self.length_error(Section::Weights, expected, found));
        }
        let (indices, values) = rest.split_at_checked(nnz).unwrap_or((rest, &[]));
        let idx_base = w_offset + counts.len();
        let val_base = idx_base + nnz;
        let mut at = 0usize;
        for (o, row) in counts.chunks_exact(segments.max(1)).enumerate() {
            let mut abs_sum = 0u64;
            for (s, &count) in row.iter().enumerate() {
                let width = sparse::segment_width(row_len, s);
                let end = at + usize::from(count);
                let (ix, vs) = (
                    indices.get(at..end).unwrap_or(&[]),
                    values.get(at..end).unwrap_or(&[]),
                );
                let mut previous: Option<u8> = None;
                for (j, (&i, &v)) in ix.iter().zip(vs).enumerate() {
                    if usize::from(i) >= width {
                        return Err(self.err(idx_base + at + j, K::SparseIndexOutOfRange));
                    }
                    if previous.is_some_and(|p| i <= p) {
                        return Err(self.err(idx_base + at + j, K::SparseIndexNotIncreasing));
                    }
                    if v == 0 {
                        return Err(self.err(val_base + at + j, K::SparseZeroValue));
                    }
                    previous = Some(i);
                    abs_sum += u64::from((v as i8).unsigned_abs());
                }
                at = end;
            }
            self.channel_bound(bias, b_offset, o, abs_sum)?;
        }
        Ok((counts, indices, values, nnz))
    }

    #[cfg(feature = "sparse-formats")]
    /// Validates column-sparse weights (the section was placed but its length is unchecked) and splits them into
    /// (counts, pairs, non-zero count).
    ///
    /// Checks, in order: the counts fit the section, each count fits its row segment, the section length is
    /// exact, then per row segment and input: rows below the segment's height and strictly increasing, values
    /// non-zero; and per channel the overflow bound with the unfolded bias, `|b| + max|x - zp| * sum |w|`.
    #[allow(clippy::too_many_arguments)]
    fn columns(
        &self,
        weights: &'b [u8],
        w_offset: usize,
        bias: &[u8],
        b_offset: usize,
        channels: usize,
        inputs: usize,
        in_zp: i8,
    ) -> Result<(&'b [u8], &'b [u8], usize), BlobError> {
        use BlobErrorKind as K;
        let counts_len = columns::row_segments(channels) as u64 * inputs as u64;
        let found = u32::try_from(weights.len()).unwrap_or(u32::MAX);
        let (counts, pairs) = usize::try_from(counts_len)
            .ok()
            .and_then(|n| weights.split_at_checked(n))
            .ok_or_else(|| self.length_error(Section::Weights, counts_len, found))?;
        let nnz = self.column_counts(counts, w_offset, channels, inputs)? as usize;
        let expected = counts_len + 2 * nnz as u64;
        if weights.len() as u64 != expected {
            return Err(self.length_error(Section::Weights, expected, found));
        }
        let pairs_base = w_offset + counts.len();
        let deviation = columns::max_input_deviation(in_zp);
        let (mut rest, mut at) = (pairs, 0usize);
        for (r, segment_counts) in counts.chunks_exact(inputs.max(1)).enumerate() {
            let rows = columns::segment_height(channels, r);
            // Per channel of the segment: sum |w| (at most 127 * 65535, so u32 is enough).
            let mut abs_sums = [0u32; columns::ROW_SEGMENT];
            for &count in segment_counts {
                let n = 2 * usize::from(count);
                let (column, tail) = rest.split_at_checked(n).unwrap_or((rest, &[]));
                rest = tail;
                let mut previous: Option<u8> = None;
                for (j, &[row, v]) in column.as_chunks::<2>().0.iter().enumerate() {
                    let offset = pairs_base + at + 2 * j;
                    if usize::from(row) >= rows {
                        return Err(self.err(offset, K::SparseIndexOutOfRange));
                    }
                    if previous.is_some_and(|p| row <= p) {
                        return Err(self.err(offset, K::SparseIndexNotIncreasing));
                    }
                    if v == 0 {
                        return Err(self.err(offset + 1, K::SparseZeroValue));
                    }
                    previous = Some(row);
                    if let Some(sum) = abs_sums.get_mut(usize::from(row)) {
                        *sum += u32::from((v as i8).unsigned_abs());
                    }
                }
                at += n;
            }
            self.segment_bounds(&abs_sums, (r, rows), bias, b_offset, deviation)?;
        }
        Ok((counts, pairs, nnz))
    }

    #[cfg(feature = "sparse-formats")]
    /// Checks each count of a column format against its row segment's height; returns their sum.
    fn column_counts(
        &self,
        counts: &[u8],
        counts_at: usize,
        channels: usize,
        inputs: usize,
    ) -> Result<u64, BlobError> {
        let mut total = 0u64;
        for (i, &count) in counts.iter().enumerate() {
            if usize::from(count) > columns::segment_height(channels, i / inputs.max(1)) {
                return Err(self.err(counts_at + i, BlobErrorKind::SparseCountTooLarge));
            }
            total += u64::from(count);
        }
        Ok(total)
    }

    #[cfg(feature = "sparse-formats")]
    /// Checks the overflow bound of the `rows` channels of row segment `r` from their sums of `|w|`, with the
    /// unfolded bias and inputs deviating at most `deviation` from their zero point.
    fn segment_bounds(
        &self,
        abs_sums: &[u32; columns::ROW_SEGMENT],
        (r, rows): (usize, usize),
        bias: &[u8],
        b_offset: usize,
        deviation: u64,
    ) -> Result<(), BlobError> {
        for (o, &sum) in abs_sums.iter().enumerate().take(rows) {
            let channel = r * columns::ROW_SEGMENT + o;
            self.channel_bound_with(bias, b_offset, channel, u64::from(sum), deviation)?;
        }
        Ok(())
    }

    #[cfg(feature = "sparse-formats")]
    /// Validates packed column weights (the section was placed but its length is unchecked) and splits them.
    ///
    /// Checks, in order: the 4-byte header (widths 1 to 8 bits, reserved byte zero), the codebook (strictly
    /// increasing), the counts (each at most its segment's height), the exact section length, then every entry:
    /// its code inside the codebook, its row below the segment's height, a zero value only as a filler (largest
    /// gap, not last in its column), the unused bits and the 7 padding bytes zero, and per channel the overflow
    /// bound with the unfolded bias.
    #[allow(clippy::too_many_arguments)]
    fn packed(
        &self,
        weights: &'b [u8],
        w_offset: usize,
        bias: &[u8],
        b_offset: usize,
        channels: usize,
        inputs: usize,
        in_zp: i8,
    ) -> Result<PackedWeights<'b>, BlobError> {
        use BlobErrorKind as K;
        let found = u32::try_from(weights.len()).unwrap_or(u32::MAX);
        let short = |expected: u64| self.length_error(Section::Weights, expected, found);
        let (&[gap_bits, code_bits, book_last, reserved], rest) =
            weights.split_first_chunk::<4>().ok_or_else(|| short(4))?;
        if !(1..=8).contains(&gap_bits) {
            return Err(self.err(w_offset, K::BadPackedHeader));
        }
        if !(1..=8).contains(&code_bits) || usize::from(book_last) >> code_bits != 0 {
            return Err(self.err(w_offset + 1, K::BadPackedHeader));
        }
        if reserved != 0 {
            return Err(self.err(w_offset + 3, K::ReservedNotZero));
        }
        let book_len = usize::from(book_last) + 1;
        let counts_len = columns::row_segments(channels) * inputs;
        let (codebook, rest) = rest
            .split_at_checked(book_len)
            .ok_or_else(|| short((4 + book_len) as u64))?;
        if let Some(i) = codebook.windows(2).position(|p| p[0] as i8 >= p[1] as i8) {
            return Err(self.err(w_offset + 4 + i + 1, K::BadPackedHeader));
        }
        let counts_at = w_offset + 4 + book_len;
        let (counts, stream) = rest
            .split_at_checked(counts_len)
            .ok_or_else(|| short((4 + book_len + counts_len) as u64))?;
        let entries = self.column_counts(counts, counts_at, channels, inputs)?;
        let width = u64::from(gap_bits) + u64::from(code_bits);
        let stream_len = (entries * width).div_ceil(8) + columns::PACKED_PAD as u64;
        let expected = (4 + book_len + counts_len) as u64 + stream_len;
        if weights.len() as u64 != expected {
            return Err(short(expected));
        }
        let stream_at = counts_at + counts_len;
        let (gap_bits, code_bits) = (u32::from(gap_bits), u32::from(code_bits));
        let deviation = columns::max_input_deviation(in_zp);
        let (mut bit, mut nonzero) = (0usize, 0usize);
        for (r, segment_counts) in counts.chunks_exact(inputs.max(1)).enumerate() {
            let rows = columns::segment_height(channels, r);
            let mut abs_sums = [0u32; columns::ROW_SEGMENT];
            for &count in segment_counts {
                let mut next = 0usize;
                for e in 0..usize::from(count) {
                    let at = stream_at + bit / 8;
                    let (gap, code) = columns::packed_entry(stream, bit, gap_bits, code_bits);
                    bit += (gap_bits + code_bits) as usize;
                    let value = codebook.get(code).map(|&v| v as i8);
                    let Some(value) = value else {
                        return Err(self.err(at, K::SparseIndexOutOfRange));
                    };
                    let row = next + gap;
                    if row >= rows {
                        return Err(self.err(at, K::SparseIndexOutOfRange));
                    }
                    next = row + 1;
                    if value == 0 {
                        let filler = gap + 1 == 1 << gap_bits && e + 1 < usize::from(count);
                        if !filler {
                            return Err(self.err(at, K::SparseZeroValue));
                        }
                    } else {
                        nonzero += 1;
                    }
                    if let Some(sum) = abs_sums.get_mut(row) {
                        *sum += u32::from(value.unsigned_abs());
                    }
                }
            }
            self.segment_bounds(&abs_sums, (r, rows), bias, b_offset, deviation)?;
        }
        // The bits after the last entry and the padding bytes are zero.
        let used = bit.div_ceil(8);
        let last_partial = (bit % 8 != 0).then(|| stream.get(bit / 8)).flatten();
        if let Some(&b) = last_partial
            && b >> (bit % 8) != 0
        {
            return Err(self.err(stream_at + bit / 8, K::RowPaddingNotZero));
        }
        if let Some(i) = stream
            .get(used..)
            .and_then(|p| p.iter().position(|&b| b != 0))
        {
            return Err(self.err(stream_at + used + i, K::RowPaddingNotZero));
        }
        Ok(PackedWeights {
            columns: PackedColumns {
                codebook,
                counts,
                stream,
                gap_bits,
                code_bits,
            },
            nonzero,
        })
    }

    #[cfg(feature = "sparse-formats")]
    /// Validates N:M weights (the section has its exact length) and splits them into (values, indices, non-zero
    /// count).
    ///
    /// Per channel: the in-group indices of every group strictly increase, the unused bits of the channel's last
    /// index byte are zero, and the overflow bound holds.
    #[allow(clippy::type_complexity)]
    fn nm(
        &self,
        weights: &'b [u8],
        w_offset: usize,
        bias: &[u8],
        b_offset: usize,
        channels: usize,
        (n, entries, index_len): (usize, usize, usize),
    ) -> Result<(&'b [u8], &'b [u8], usize), BlobError> {
        use BlobErrorKind as K;
        let (values, indices) = weights
            .split_at_checked(channels * entries)
            .unwrap_or((weights, &[]));
        let idx_base = w_offset + values.len();
        let mut nnz = 0usize;
        let rows = values
            .chunks_exact(entries.max(1))
            .zip(indices.chunks_exact(index_len.max(1)));
        for (o, (vals, idx)) in rows.enumerate() {
            let mut abs_sum = 0u64;
            let mut previous = 0u8;
            for (e, &v) in vals.iter().enumerate() {
                let byte = idx.get(e / 4).copied().unwrap_or(0);
                let k = (byte >> (2 * (e % 4))) & 3;
                if e % n.max(1) != 0 && k <= previous {
                    return Err(self.err(idx_base + o * index_len + e / 4, K::NmIndexNotIncreasing));
                }
                previous = k;
                abs_sum += u64::from((v as i8).unsigned_abs());
                nnz += usize::from(v != 0);
            }
            if entries % 4 != 0
                && let Some(&last) = idx.last()
                && last >> (2 * (entries % 4)) != 0
            {
                return Err(self.err(
                    idx_base + o * index_len + index_len - 1,
                    K::RowPaddingNotZero,
                ));
            }
            self.channel_bound(bias, b_offset, o, abs_sum)?;
        }
        Ok((values, indices, nnz))
    }

    /// Validates per-channel multipliers and shifts; returns (multipliers, shifts).
    #[inline(always)]
    fn requant_channels(
        &self,
        section: &'b [u8],
        channels: usize,
        offset: usize,
    ) -> Result<(&'b [u8], &'b [u8]), BlobError> {
        let (mults, shifts) = section
            .split_at_checked(channels * 4)
            .unwrap_or((section, &[]));
        for (i, (m, s)) in mults.chunks_exact(4).zip(shifts).enumerate() {
            if QuantMultiplier::new_checked(le_i32(m), *s).is_none() {
                return Err(self.err(offset + 4 * i, BlobErrorKind::BadMultiplier));
            }
        }
        Ok((mults, shifts))
    }

    /// Validates weight blocks and biases: zero padding and no possible i32 overflow.
    ///
    /// Block `b` holds `width` channels: [`BLOCK`](blocked::BLOCK), or `tail` for the last block when `tail != 0` (version 2).
    /// In step `p` of block `b`, byte `2 * j + e` is weight `k = 2 * p + e` of channel `o = BLOCK * b + j`; bytes
    /// with `o >= channels` (the padded last block of version 1) or `k >= row_len` are padding.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn rows(
        &self,
        weights: &[u8],
        w_offset: usize,
        bias: &[u8],
        b_offset: usize,
        channels: usize,
        row_len: usize,
        tail: usize,
        dynamic: bool,
    ) -> Result<usize, BlobError> {
        let block_len = blocked::block_len(row_len);
        if block_len == 0 {
            return Ok(0);
        }
        let full = weights.chunks_exact(block_len);
        let tail_block = full.remainder();
        let blocks = full
            .map(|block| (block, blocked::BLOCK))
            .chain((tail != 0 && !tail_block.is_empty()).then_some((tail_block, tail)));
        let mut nnz = 0usize;
        for (b, (block, width)) in blocks.enumerate() {
            // Per channel of the block: 128 * sum |w|, which every activation sum is bounded by.
            let mut bounds = [0u64; blocked::BLOCK];
            let step_len = 2 * width;
            for (p, step) in block.chunks_exact(step_len).enumerate() {
                for (i, &w) in step.iter().enumerate() {
                    let (o, k) = (blocked::BLOCK * b + i / 2, 2 * p + i % 2);
                    if o >= channels || k >= row_len {
                        if w != 0 {
                            return Err(self.err(
                                w_offset + b * block_len + p * step_len + i,
                                BlobErrorKind::RowPaddingNotZero,
                            ));
                        }
                    } else if let Some(bound) = bounds.get_mut(i / 2) {
                        *bound += u64::from((w as i8).unsigned_abs()) * 128;
                        nnz += usize::from(w != 0);
                    }
                }
            }
            let block_bias = bias.chunks_exact(4).skip(blocked::BLOCK * b).take(width);
            for (j, (bound, bv)) in bounds.iter().zip(block_bias).enumerate() {
                // A dynamic layer's bias is shifted at run time and saturates at 2^30, so the bound uses that.
                let bias_abs = if dynamic {
                    1 << 30
                } else {
                    u64::from(le_i32(bv).unsigned_abs())
                };
                if bound + bias_abs >= 1 << 31 {
                    return Err(self.err(
                        b_offset + 4 * (blocked::BLOCK * b + j),
                        BlobErrorKind::OverflowPossible,
                    ));
                }
            }
        }
        Ok(nnz)
    }

    /// Checks `dense-dsp` weights (see `format::layout::dsp`): zero padding (inputs at or above `row_len`) and the
    /// overflow bound of every channel; returns the number of non-zero weights.
    #[inline(always)]
    fn dsp_rows(
        &self,
        weights: &[u8],
        w_offset: usize,
        bias: &[u8],
        b_offset: usize,
        channels: usize,
        row_len: usize,
    ) -> Result<usize, BlobError> {
        // Per channel: 128 * sum |w| (which bounds every activation sum) plus |bias| must stay below 2^31.
        let mut nnz = 0usize;
        for (o, bv) in bias.chunks_exact(4).enumerate().take(channels) {
            let mut bound = 0u64;
            for k in 0..dsp::padded_row(row_len) {
                let i = dsp::index(o, k, row_len, channels);
                let w = weights.get(i).copied().unwrap_or(0);
                if k >= row_len {
                    if w != 0 {
                        return Err(self.err(w_offset + i, BlobErrorKind::RowPaddingNotZero));
                    }
                } else {
                    bound += u64::from((w as i8).unsigned_abs()) * 128;
                    nnz += usize::from(w != 0);
                }
            }
            if bound + u64::from(le_i32(bv).unsigned_abs()) >= 1 << 31 {
                return Err(self.err(b_offset + 4 * o, BlobErrorKind::OverflowPossible));
            }
        }
        Ok(nnz)
    }

    /// Checks `dense-dot` weights (see `format::layout::dot`): zero padding (inputs at or above `row_len`), the
    /// overflow bound of every channel, and the second bias: `offset_bias[o] == bias[o] - 128 * sum_k w[o][k]`,
    /// wrapping in i32. Returns the number of non-zero weights.
    ///
    /// Wrapping is enough for the second bias: a kernel computes `offset_bias + sum (x + 128) w` with wrapping
    /// adds, which equals `bias + sum x w` modulo `2^32`, and the overflow bound puts that sum inside i32.
    #[cfg(feature = "dense-dot")]
    #[allow(clippy::too_many_arguments)]
    fn dot_rows(
        &self,
        weights: &[u8],
        w_offset: usize,
        bias: &[u8],
        b_offset: usize,
        offset_bias: &[u8],
        a_offset: usize,
        channels: usize,
        row_len: usize,
    ) -> Result<usize, BlobError> {
        use crate::format::layout::dot;
        let mut nnz = 0usize;
        let biases = bias.chunks_exact(4).zip(offset_bias.chunks_exact(4));
        for (o, (bv, ov)) in biases.enumerate().take(channels) {
            let (mut bound, mut sum) = (0u64, 0i32);
            for k in 0..dot::padded_row(row_len) {
                let i = dot::index(o, k, row_len, channels);
                let w = weights.get(i).map_or(0, |&w| w as i8);
                if k >= row_len {
                    if w != 0 {
                        return Err(self.err(w_offset + i, BlobErrorKind::RowPaddingNotZero));
                    }
                } else {
                    bound += u64::from(w.unsigned_abs()) * 128;
                    sum += i32::from(w);
                    nnz += usize::from(w != 0);
                }
            }
            let b = le_i32(bv);
            if bound + u64::from(b.unsigned_abs()) >= 1 << 31 {
                return Err(self.err(b_offset + 4 * o, BlobErrorKind::OverflowPossible));
            }
            if le_i32(ov) != b.wrapping_sub(sum.wrapping_mul(128)) {
                return Err(self.err(a_offset + 4 * o, BlobErrorKind::OffsetBiasMismatch));
            }
        }
        Ok(nnz)
    }

    /// The length the weights section of a layer stored in `layout` must have, for the formats whose length
    /// follows from the shape; `None` for those checked against their own counts once their bytes are known
    /// (and for the formats this build leaves out, which `weight_layout` already refused).
    #[inline(always)]
    pub(super) fn weights_len(
        &self,
        layout: WeightLayout,
        channels: usize,
        row_len: usize,
    ) -> Result<Option<u64>, BlobError> {
        Ok(match layout {
            WeightLayout::Blocked => Some(blocked::weights_len(
                channels,
                row_len,
                blocked::tail_channels(channels, self.version),
            )),
            WeightLayout::DenseDsp => Some(dsp::weights_len(channels, row_len)),
            #[cfg(feature = "dense-dot")]
            WeightLayout::DenseDot => {
                Some(crate::format::layout::dot::weights_len(channels, row_len))
            }
            #[cfg(feature = "sparse-formats")]
            WeightLayout::NM { n, m } => {
                let (entries, index_len) = nm_shape(usize::from(n), usize::from(m), row_len);
                if !row_len.is_multiple_of(usize::from(m).max(1)) {
                    return Err(self.field(crate::format::entry::NM_M, BlobErrorKind::BadNmPattern));
                }
                Some(channels as u64 * (entries as u64 + index_len as u64))
            }
            _ => None,
        })
    }

    /// Checks the contents of a Dense or Conv1d layer's sections (placed by the caller, with the lengths
    /// [`Self::weights_len`] and the shape give) and returns the plan of its weights.
    ///
    /// `weight_layout` has already refused a format this build leaves out.
    #[cfg_attr(
        not(all(feature = "sparse-formats", feature = "dense-dot")),
        allow(
            unused_variables,
            reason = "parts of the shape only the optional formats use"
        )
    )]
    #[inline(always)]
    pub(super) fn weighted(
        &self,
        layout: WeightLayout,
        shape: WeightedShape,
        [weights, bias, requant, aux]: [&'b [u8]; 4],
    ) -> Result<Weighted<'b>, BlobError> {
        use crate::format::entry as e;
        use BlobErrorKind as K;
        let WeightedShape {
            channels,
            row_len,
            inputs,
            in_zp,
            dynamic,
            bias_exp,
        } = shape;
        let offset = |s: Section| self.entry.section(s).0 as usize;
        let (w_offset, b_offset, r_offset) = (
            offset(Section::Weights),
            offset(Section::Bias),
            offset(Section::Requant),
        );
        let (stored, nonzero) = match layout {
            WeightLayout::Blocked => {
                let tail = blocked::tail_channels(channels, self.version);
                let nnz = self.rows(
                    weights, w_offset, bias, b_offset, channels, row_len, tail, dynamic,
                )?;
                let block_len = blocked::block_len(row_len);
                (
                    Weights::Blocked {
                        bytes: weights,
                        block_len,
                    },
                    nnz,
                )
            }
            WeightLayout::DenseDsp => {
                let nnz = self.dsp_rows(weights, w_offset, bias, b_offset, channels, row_len)?;
                (Weights::Dsp { bytes: weights }, nnz)
            }
            #[cfg(feature = "dense-dot")]
            WeightLayout::DenseDot => {
                let a_offset = offset(Section::Aux);
                let nnz = self.dot_rows(
                    weights, w_offset, bias, b_offset, aux, a_offset, channels, row_len,
                )?;
                (
                    Weights::Dot {
                        bytes: weights,
                        offset_bias: aux,
                    },
                    nnz,
                )
            }
            #[cfg(feature = "sparse-formats")]
            WeightLayout::Sparse => {
                let (counts, indices, values, nnz) =
                    self.sparse(weights, w_offset, bias, b_offset, channels, row_len)?;
                let segments = sparse::segments(row_len);
                let rows = SparseRows {
                    counts,
                    indices,
                    values,
                    segments,
                };
                (Weights::Sparse(rows), nnz)
            }
            #[cfg(feature = "sparse-formats")]
            WeightLayout::Columns => {
                let (counts, pairs, nnz) =
                    self.columns(weights, w_offset, bias, b_offset, channels, inputs, in_zp)?;
                (Weights::Columns(ColumnPairs { counts, pairs }), nnz)
            }
            #[cfg(feature = "sparse-formats")]
            WeightLayout::Packed => {
                let p = self.packed(weights, w_offset, bias, b_offset, channels, inputs, in_zp)?;
                (Weights::Packed(p.columns), p.nonzero)
            }
            #[cfg(feature = "sparse-formats")]
            WeightLayout::NM { n, m } => {
                let n = usize::from(n);
                let (entries, index_len) = nm_shape(n, usize::from(m), row_len);
                let (values, indices, nnz) = self.nm(
                    weights,
                    w_offset,
                    bias,
                    b_offset,
                    channels,
                    (n, entries, index_len),
                )?;
                let stored = Weights::NM(NmRows {
                    n,
                    m: usize::from(m),
                    entries,
                    index_len,
                    values,
                    indices,
                });
                (stored, nnz)
            }
            // `weight_layout` refused these formats in a build without their feature.
            #[allow(unreachable_patterns)]
            other => return Err(self.field(e::WEIGHT_FORMAT, super::layer::not_compiled(other))),
        };
        let (multipliers, shifts) = self.requant_channels(requant, channels, r_offset)?;
        // A dynamic layer's multipliers are below 1 (shift 31 or more), so its i32 values stay in range.
        if dynamic && let Some(i) = shifts.iter().position(|&s| s < 31) {
            return Err(self.err(r_offset + 4 * channels + i, K::BadDynamic));
        }
        Ok(Weighted {
            weights: stored,
            channels: Channels {
                bias,
                multipliers,
                shifts,
                shifts_split: shifts.iter().all(|s| (33..=62).contains(s)),
            },
            row_len,
            nonzero,
            bias_exp,
        })
    }
}

/// The shape of a weighted layer, as its entry and its input give it.
#[derive(Debug, Clone, Copy)]
pub(super) struct WeightedShape {
    /// The output channels.
    pub channels: usize,
    /// The weights per channel.
    pub row_len: usize,
    /// The input channels (the column formats' column count).
    pub inputs: usize,
    /// The input's zero point (the column formats' unfolded bias).
    pub in_zp: i8,
    /// Whether the layer is dynamically quantized.
    pub dynamic: bool,
    /// The dynamic bias exponent.
    pub bias_exp: i8,
}

/// The stored values and index bytes per channel of an N:M layer: `row_len / m * n` and a quarter of that.
#[cfg(feature = "sparse-formats")]
const fn nm_shape(n: usize, m: usize, row_len: usize) -> (usize, usize) {
    let entries = row_len / if m == 0 { 1 } else { m } * n;
    (entries, crate::format::layout::nm::index_bytes(entries))
}
