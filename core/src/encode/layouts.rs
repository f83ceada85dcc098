//! How each weight format is written: the encoder's side of `format::layout`, from row-major int8 weights to
//! section bytes, and the checks that decide whether a format fits a layer.

use alloc::vec::Vec;

use crate::format::layout::{blocked, columns, dot, dsp, nm, sparse};
use crate::requant::QuantMultiplier;

/// The smallest `n` for which every group of 4 weights of every row has at most `n` non-zeros, if the rows split
/// into groups of 4 and some `n < 4` fits.
pub(super) fn nm_fit(weights: &[i8], row_len: usize) -> Result<u8, &'static str> {
    if row_len == 0 || !row_len.is_multiple_of(nm::M) {
        return Err("the row length is not a multiple of 4");
    }
    let most = weights
        .chunks_exact(nm::M)
        .map(|g| g.iter().filter(|&&w| w != 0).count())
        .max()
        .unwrap_or(0);
    if most >= nm::M {
        return Err("a group of 4 weights has 4 non-zeros");
    }
    Ok(most.max(1) as u8)
}

/// A Dense or Conv1d layer's weight data, as the encoder receives it.
pub(super) struct Rows<'a> {
    /// The weights per output channel.
    pub row_len: usize,
    /// Row-major int8 weights, `channels * row_len`.
    pub weights: &'a [i8],
    /// The effective biases (input zero point folded in).
    pub bias: &'a [i32],
    /// The per-channel multipliers.
    pub requant: &'a [QuantMultiplier],
    /// For a Dense layer, the zero point of its input (what the column format needs); `None` for Conv1d.
    pub dense_input_zp: Option<i8>,
}

/// The column format's biases (`b_eff[o] + zp * sum_j w[o][j]`), or why the layer cannot use the format: it is
/// not Dense, a column segment has 256 non-zeros, or a channel's overflow bound fails with the unfolded bias.
pub(super) fn column_bias(rows: &Rows<'_>) -> Result<Vec<i32>, &'static str> {
    let zp = rows
        .dense_input_zp
        .ok_or("the column format is for Dense layers only")?;
    let row_len = rows.row_len;
    if row_len == 0 {
        return Ok(rows.bias.to_vec());
    }
    for segment in rows.weights.chunks(columns::ROW_SEGMENT * row_len) {
        for j in 0..row_len {
            let column = segment
                .chunks_exact(row_len)
                .filter(|row| row[j] != 0)
                .count();
            if column > usize::from(u8::MAX) {
                return Err("a column of 256 channels has no zero weight");
            }
        }
    }
    let deviation = columns::max_input_deviation(zp);
    rows.weights
        .chunks_exact(row_len)
        .zip(rows.bias)
        .map(|(row, &b)| {
            let sum: i64 = row.iter().map(|&w| i64::from(w)).sum();
            let abs: u64 = row.iter().map(|&w| u64::from(w.unsigned_abs())).sum();
            let unfolded = i64::from(b) + i64::from(zp) * sum;
            if deviation * abs + unfolded.unsigned_abs() >= 1 << 31 {
                return Err("the overflow bound fails with the bias unfolded");
            }
            i32::try_from(unfolded).map_err(|_| "the unfolded bias does not fit i32")
        })
        .collect()
}

/// The widths of a packed weights section and what they cost: a row gap of `gap_bits`, a codebook index of
/// `code_bits`, `entries` entries (non-zeros plus fillers) and a codebook of `book` values.
#[derive(Debug, Clone)]
pub(super) struct PackedPlan {
    gap_bits: u32,
    code_bits: u32,
    pub entries: u64,
    book: Vec<i8>,
}

impl PackedPlan {
    /// The bytes of the section with `columns` counts: header, codebook, counts, stream and padding.
    pub fn bytes(&self, columns: u64) -> u64 {
        let width = u64::from(self.gap_bits + self.code_bits);
        4 + self.book.len() as u64
            + columns
            + (self.entries * width).div_ceil(8)
            + columns::PACKED_PAD as u64
    }

    /// The gaps between successive non-zeros of every (row segment, column), each as `row - previous - 1`.
    fn gaps(weights: &[i8], channels: usize, row_len: usize) -> Vec<usize> {
        let mut gaps = Vec::new();
        for segment in weights.chunks(columns::ROW_SEGMENT * row_len) {
            for j in 0..row_len {
                let mut next = 0usize;
                for (row, w) in segment.chunks_exact(row_len).enumerate() {
                    if w[j] != 0 {
                        gaps.push(row - next);
                        next = row + 1;
                    }
                }
            }
        }
        debug_assert!(channels == 0 || !weights.is_empty() || gaps.is_empty());
        gaps
    }

    /// The widths with the fewest bytes for these weights.
    pub fn best(weights: &[i8], channels: usize, row_len: usize) -> PackedPlan {
        let gaps = Self::gaps(weights, channels, row_len);
        let mut values: Vec<i8> = weights.iter().copied().filter(|&w| w != 0).collect();
        values.sort_unstable();
        values.dedup();
        (1..=8u32)
            .map(|gap_bits| {
                let fillers: u64 = gaps.iter().map(|&g| (g >> gap_bits) as u64).sum();
                let mut book = values.clone();
                if fillers > 0 {
                    book.push(0);
                    book.sort_unstable();
                }
                let code_bits = (usize::BITS - (book.len().max(2) - 1).leading_zeros()).max(1);
                PackedPlan {
                    gap_bits,
                    code_bits,
                    entries: gaps.len() as u64 + fillers,
                    book,
                }
            })
            .min_by_key(|p| (p.bytes(0), p.gap_bits))
            .unwrap_or(PackedPlan {
                gap_bits: 1,
                code_bits: 1,
                entries: 0,
                book: Vec::new(),
            })
    }

    /// The section: header, codebook, counts per (row segment, column), then the entries packed LSB first.
    pub fn encode(&self, weights: &[i8], channels: usize, row_len: usize) -> Vec<u8> {
        let book: Vec<i8> = if self.book.is_empty() {
            alloc::vec![0]
        } else {
            self.book.clone()
        };
        let mut out = alloc::vec![
            self.gap_bits as u8,
            self.code_bits as u8,
            (book.len() - 1) as u8,
            0
        ];
        out.extend(book.iter().map(|&v| v as u8));
        let (mut counts, mut bits) = (Vec::new(), BitWriter::default());
        let code = |v: i8| book.binary_search(&v).unwrap_or(0) as u64;
        let max_gap = (1usize << self.gap_bits) - 1;
        let width = self.gap_bits + self.code_bits;
        if row_len > 0 {
            for segment in weights.chunks(columns::ROW_SEGMENT * row_len) {
                for j in 0..row_len {
                    let mut entries = 0u8;
                    let mut next = 0usize;
                    for (row, w) in segment.chunks_exact(row_len).enumerate() {
                        if w[j] == 0 {
                            continue;
                        }
                        while row - next > max_gap {
                            bits.put(max_gap as u64 | code(0) << self.gap_bits, width);
                            next += max_gap + 1;
                            entries += 1;
                        }
                        bits.put((row - next) as u64 | code(w[j]) << self.gap_bits, width);
                        next = row + 1;
                        entries += 1;
                    }
                    counts.push(entries);
                }
            }
        }
        debug_assert_eq!(counts.len(), columns::row_segments(channels) * row_len);
        out.extend(counts);
        out.extend(bits.finish());
        out.extend([0u8; columns::PACKED_PAD]);
        out
    }
}

/// Packs values of up to 16 bits, least significant bit first.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    bits: u64,
    len: u32,
}

impl BitWriter {
    fn put(&mut self, value: u64, width: u32) {
        self.bits |= value << self.len;
        self.len += width;
        while self.len >= 8 {
            self.bytes.push(self.bits as u8);
            self.bits >>= 8;
            self.len -= 8;
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.len > 0 {
            self.bytes.push(self.bits as u8);
        }
        self.bytes
    }
}

/// The version 2 blocked layout: full blocks of 16 channels, then a tail block of the last `channels % 16`
/// channels (if any) with `2 * (channels % 16)`-byte steps; the padding input of odd rows stays zero.
pub(super) fn blocked_weights(weights: &[i8], channels: usize, row_len: usize) -> Vec<u8> {
    // The caller checked `weights.len() == channels * row_len`.
    let len = blocked::weights_len(channels, row_len, channels % blocked::BLOCK);
    let mut out = alloc::vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
    if row_len > 0 {
        for (o, row) in weights.chunks_exact(row_len).enumerate() {
            for (k, &w) in row.iter().enumerate() {
                out[blocked::index(o, k, row_len, channels)] = w as u8;
            }
        }
    }
    out
}

/// The `dense-dsp` layout (`format::layout::dsp`): groups of 4 channels interleaved by words of 4 inputs, then the last
/// `channels % 4` channels as plain rows; every row padded with zeros to a multiple of 4.
pub(super) fn dsp_weights(weights: &[i8], channels: usize, row_len: usize) -> Vec<u8> {
    let len = dsp::weights_len(channels, row_len);
    let mut out = alloc::vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
    if row_len > 0 {
        for (o, row) in weights.chunks_exact(row_len).enumerate() {
            for (k, &w) in row.iter().enumerate() {
                out[dsp::index(o, k, row_len, channels)] = w as u8;
            }
        }
    }
    out
}

/// The sparse layout: per channel and segment a count, then all indices, then all values, in the same order.
pub(super) fn sparse_weights(weights: &[i8], row_len: usize) -> Vec<u8> {
    let (mut counts, mut indices, mut values) = (Vec::new(), Vec::new(), Vec::new());
    if row_len > 0 {
        for row in weights.chunks_exact(row_len) {
            for (seg, part) in row.chunks(sparse::SEGMENT).enumerate() {
                debug_assert_eq!(part.len(), sparse::segment_width(row_len, seg));
                let before = indices.len();
                for (i, &w) in part.iter().enumerate() {
                    if w != 0 {
                        indices.push(i as u8);
                        values.push(w as u8);
                    }
                }
                counts.push((indices.len() - before) as u8);
            }
        }
    }
    counts.extend(indices);
    counts.extend(values);
    counts
}

/// The column layout: per 256-channel row segment and input column a count, then per segment and column the
/// `(row in segment, value)` pairs of the non-zero weights, rows increasing.
pub(super) fn column_weights(weights: &[i8], channels: usize, row_len: usize) -> Vec<u8> {
    let (mut counts, mut pairs) = (Vec::new(), Vec::new());
    if row_len > 0 {
        for segment in weights.chunks(columns::ROW_SEGMENT * row_len) {
            for j in 0..row_len {
                let before = pairs.len();
                for (row, w) in segment.chunks_exact(row_len).enumerate() {
                    if w[j] != 0 {
                        pairs.push(row as u8);
                        pairs.push(w[j] as u8);
                    }
                }
                counts.push(((pairs.len() - before) / 2) as u8);
            }
        }
    }
    debug_assert_eq!(counts.len(), columns::row_segments(channels) * row_len);
    counts.extend(pairs);
    counts
}

/// The N:M layout (`m = 4`): all channels' values, then all channels' 2-bit index streams.
///
/// A group with fewer than `n` non-zeros is filled with zero weights at its lowest unused positions, so every
/// group stores exactly `n` entries with strictly increasing indices.
pub(super) fn nm_weights(weights: &[i8], row_len: usize, n: usize) -> Vec<u8> {
    let (mut values, mut indices) = (Vec::new(), Vec::new());
    if row_len > 0 {
        for row in weights.chunks_exact(row_len) {
            let mut stream = alloc::vec![0u8; nm::index_bytes(row_len / nm::M * n)];
            let mut e = 0usize;
            for group in row.chunks_exact(nm::M) {
                let nonzero = group.iter().filter(|&&w| w != 0).count();
                let mut fill = n.saturating_sub(nonzero);
                for (k, &w) in group.iter().enumerate() {
                    let keep = w != 0
                        || (fill > 0 && {
                            fill -= 1;
                            true
                        });
                    if keep {
                        values.push(w as u8);
                        stream[e / 4] |= (k as u8) << (2 * (e % 4));
                        e += 1;
                    }
                }
            }
            indices.extend(stream);
        }
    }
    values.extend(indices);
    values
}

/// The `dense-dot` layout (`format::layout::dot`): blocks of 16 channels, steps of 4 inputs, every row padded
/// with zeros to a multiple of 4; and its second bias, `bias - 128 * sum w` per channel (wrapping), for the
/// aux section.
pub(super) fn dot_weights(
    weights: &[i8],
    bias: &[i32],
    channels: usize,
    row_len: usize,
) -> (Vec<u8>, Vec<u8>) {
    let len = dot::weights_len(channels, row_len);
    let mut out = alloc::vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
    let mut offset_bias = Vec::with_capacity(4 * channels);
    if row_len > 0 {
        for (o, (row, &b)) in weights.chunks_exact(row_len).zip(bias).enumerate() {
            for (k, &w) in row.iter().enumerate() {
                out[dot::index(o, k, row_len, channels)] = w as u8;
            }
            let sum: i32 = row.iter().map(|&w| i32::from(w)).sum();
            offset_bias.extend_from_slice(&b.wrapping_sub(sum.wrapping_mul(128)).to_le_bytes());
        }
    } else {
        for &b in bias {
            offset_bias.extend_from_slice(&b.to_le_bytes());
        }
    }
    (out, offset_bias)
}
