//! Where each weight lives in each weight layout: the geometry the loader checks, the kernels walk and the
//! encoder writes, in one place so that the three cannot disagree (`docs/BLOB.md` has the same in tables).
//!
//! Lengths are computed in `u64` where a product of two 16-bit dimensions and a small factor could wrap a
//! 32-bit `usize`.

/// Weight format 0, dense blocked: blocks of [`BLOCK`](blocked::BLOCK) output channels, input pairs interleaved.
pub(crate) mod blocked {
    /// The number of output channels in one block.
    pub(crate) const BLOCK: usize = 16;

    /// The bytes of one step of a block: two inputs for each of its [`BLOCK`] channels.
    pub(crate) const STEP: usize = 2 * BLOCK;

    /// The bytes of one full block for rows of `row_len` weights: `BLOCK * round_up(row_len, 2)`.
    #[inline]
    pub(crate) const fn block_len(row_len: usize) -> usize {
        row_len.div_ceil(2) * STEP
    }

    /// The channels stored in the last block of a layer with `channels` outputs, if that block is a partial
    /// (tail) block: `channels % BLOCK`, or 0 when every block is full.
    ///
    /// Version 2 and later store only these channels (`2 * tail` bytes per step); version 1 padded the last
    /// block to [`BLOCK`] channels, so there every block is full and this is 0.
    #[inline]
    pub(crate) const fn tail_channels(channels: usize, version: u16) -> usize {
        if version < 2 { 0 } else { channels % BLOCK }
    }

    /// The length of the section: `channels / BLOCK` full blocks and a tail block of `tail` channels
    /// ([`tail_channels`]), or `ceil(channels / BLOCK)` full blocks when `tail` is 0.
    pub(crate) const fn weights_len(channels: usize, row_len: usize, tail: usize) -> u64 {
        let pairs = (row_len as u64).div_ceil(2);
        if tail == 0 {
            (channels.div_ceil(BLOCK) as u64) * pairs * STEP as u64
        } else {
            (channels / BLOCK) as u64 * pairs * STEP as u64 + pairs * 2 * tail as u64
        }
    }

    /// Where weight `k` of output channel `o` lives in the version 2 layout of a layer with `channels` outputs:
    /// steps of the last block are `2 * (channels % BLOCK)` bytes if it is partial.
    #[cfg(feature = "alloc")]
    #[inline]
    pub(crate) const fn index(o: usize, k: usize, row_len: usize, channels: usize) -> usize {
        let width = if o / BLOCK == channels / BLOCK {
            channels % BLOCK
        } else {
            BLOCK
        };
        (o / BLOCK) * block_len(row_len) + (k / 2) * 2 * width + (o % BLOCK) * 2 + k % 2
    }
}

/// Weight format 6, `dense-dot`: blocks of [`BLOCK`](dot::BLOCK) output channels and groups of
/// [`GROUP`](dot::GROUP) consecutive inputs, for the int8 dot-product instructions.
///
/// A row of `K` weights is padded with zeros to `K4 = round_up(K, 4)`.
/// Full block `b` holds channels `16b` to `16b + 15`: for each group `g` (inputs `4g` to `4g + 3`), 64 bytes, the
/// four weights of channel `16b` first, then those of `16b + 1`, and so on.
/// The last `r = C_out % 16` channels form a tail block with the same shape and `4r`-byte steps.
/// So one step of a full block is exactly one 512-bit register of 16 lanes of 4 bytes: `vpdpbusd` adds, in lane
/// `j`, the dot product of channel `16b + j`'s group with one broadcast group of 4 inputs; a 256-bit register
/// takes half a step, a 128-bit register (NEON `SDOT`, SSE2 `pmaddwd`) a quarter.
#[cfg_attr(
    not(all(feature = "dense-dot", target_arch = "x86_64")),
    allow(
        dead_code,
        reason = "without `dense-dot` only the loader's length check uses it"
    )
)]
pub(crate) mod dot {
    /// The output channels of one block.
    pub(crate) const BLOCK: usize = 16;

    /// The inputs of one group.
    pub(crate) const GROUP: usize = 4;

    /// The bytes of one step of a full block.
    pub(crate) const STEP: usize = BLOCK * GROUP;

    /// The padded row length `K4 = round_up(K, 4)`.
    #[inline]
    pub(crate) const fn padded_row(row_len: usize) -> usize {
        row_len.div_ceil(GROUP) * GROUP
    }

    /// The length of the section: every channel's padded row, `channels * K4`.
    #[inline]
    pub(crate) const fn weights_len(channels: usize, row_len: usize) -> u64 {
        channels as u64 * padded_row(row_len) as u64
    }

    /// The bytes of one full block, `BLOCK * K4`.
    #[inline]
    pub(crate) const fn block_len(row_len: usize) -> usize {
        BLOCK * padded_row(row_len)
    }

    /// Where weight `k` of output channel `o` lives in a layer with `channels` outputs.
    #[inline]
    pub(crate) const fn index(o: usize, k: usize, row_len: usize, channels: usize) -> usize {
        let width = if o / BLOCK == channels / BLOCK {
            channels % BLOCK
        } else {
            BLOCK
        };
        (o / BLOCK) * block_len(row_len)
            + (k / GROUP) * GROUP * width
            + (o % BLOCK) * GROUP
            + k % GROUP
    }
}

/// Weight format 5, `dense-dsp`: groups of [`GROUP`](dsp::GROUP) channels and words of [`WORD`](dsp::WORD)
/// inputs, for the Cortex-M4's `SMLAD` (`kernels/arm/dsp.rs` explains the shape).
///
/// Each channel's row of `K` weights is padded with zeros to `K4 = round_up(K, 4)` and cut into words of 4
/// consecutive weights.
/// Group `g` holds channels `4g` to `4g + 3` and, for each word `q`, the 4 channels' words `q` one after the other
/// (16 bytes per word step); the last `C_out % 4` channels follow as plain rows of `K4` bytes each.
pub(crate) mod dsp {
    /// The channels of one group.
    pub(crate) const GROUP: usize = 4;

    /// The weights (and inputs) of one word.
    pub(crate) const WORD: usize = 4;

    /// The bytes of one word step of a group: one word of each of its channels.
    pub(crate) const GROUP_STEP: usize = GROUP * WORD;

    /// The padded row length `K4 = round_up(K, 4)`.
    #[inline]
    pub(crate) const fn padded_row(row_len: usize) -> usize {
        row_len.div_ceil(WORD) * WORD
    }

    /// The length of the section.
    #[inline]
    pub(crate) const fn weights_len(channels: usize, row_len: usize) -> u64 {
        channels as u64 * padded_row(row_len) as u64
    }

    /// Where weight `k` of output channel `o` lives in a layer with `channels` outputs.
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
}

/// Weight format 1, sparse by output channel: 128-input segments with one-byte indices.
#[cfg_attr(
    not(feature = "sparse-formats"),
    allow(
        dead_code,
        reason = "only the sparse formats' checks, kernels and encoder use it"
    )
)]
pub(crate) mod sparse {
    /// The inputs per segment of a row: column indices are one byte, relative to their segment.
    pub(crate) const SEGMENT: usize = 128;

    /// The number of segments of a row of `row_len` weights.
    #[inline]
    pub(crate) const fn segments(row_len: usize) -> usize {
        row_len.div_ceil(SEGMENT)
    }

    /// The width of segment `s` of a row of `row_len` weights (the last one may be narrower).
    #[inline]
    pub(crate) const fn segment_width(row_len: usize, s: usize) -> usize {
        let start = s * SEGMENT;
        if row_len - start < SEGMENT {
            row_len - start
        } else {
            SEGMENT
        }
    }
}

/// Weight format 2, N:M: `n` values and 2-bit in-group indices per group of [`M`](nm::M) inputs.
#[cfg_attr(
    not(feature = "sparse-formats"),
    allow(
        dead_code,
        reason = "only the sparse formats' checks, kernels and encoder use it"
    )
)]
pub(crate) mod nm {
    /// The group width; the only one this version supports.
    pub(crate) const M: usize = 4;

    /// The index bytes of one channel with `entries` stored weights: 2 bits per entry, 4 per byte.
    #[inline]
    pub(crate) const fn index_bytes(entries: usize) -> usize {
        entries.div_ceil(4)
    }
}

/// Weight formats 3 and 4, by input column: 256-channel row segments with one-byte rows (or packed gaps).
#[cfg_attr(
    not(feature = "sparse-formats"),
    allow(
        dead_code,
        reason = "only the sparse formats' checks, kernels and encoder use it"
    )
)]
pub(crate) mod columns {
    /// The output channels per row segment: row indices are one byte, relative to their segment.
    pub(crate) const ROW_SEGMENT: usize = 256;

    /// The number of row segments of a layer with `channels` outputs.
    #[inline]
    pub(crate) const fn row_segments(channels: usize) -> usize {
        channels.div_ceil(ROW_SEGMENT)
    }

    /// The height of row segment `r` of a layer with `channels` outputs (the last may be short).
    #[inline]
    pub(crate) const fn segment_height(channels: usize, r: usize) -> usize {
        let left = channels.saturating_sub(r * ROW_SEGMENT);
        if left < ROW_SEGMENT {
            left
        } else {
            ROW_SEGMENT
        }
    }

    /// The largest `|x - zp|` of an int8 input `x` with zero point `zp`: what one product's input can reach.
    #[inline]
    pub(crate) const fn max_input_deviation(zp: i8) -> u64 {
        let zp = zp as i64;
        let (low, high) = (zp + 128, 127 - zp);
        (if low > high { low } else { high }) as u64
    }

    /// The zero bytes after a packed entry stream, so that reading 8 bytes at any entry never runs past the
    /// section.
    pub(crate) const PACKED_PAD: usize = 7;

    /// Entry `bit / width` of a packed stream: `(row gap, codebook index)`, read as 8 little-endian bytes from
    /// byte `bit / 8` (zero past the end, which the loader's padding rules out).
    #[inline(always)]
    pub(crate) fn packed_entry(
        stream: &[u8],
        bit: usize,
        gap_bits: u32,
        code_bits: u32,
    ) -> (usize, usize) {
        let at = bit / 8;
        let word = match stream.get(at..at + 8) {
            Some(&[a, b, c, d, e, f, g, h]) => u64::from_le_bytes([a, b, c, d, e, f, g, h]),
            _ => 0,
        };
        let entry = word >> (bit % 8);
        let gap = entry & ((1 << gap_bits) - 1);
        let code = (entry >> gap_bits) & ((1 << code_bits) - 1);
        (gap as usize, code as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_index_covers_the_section_once() {
        for channels in [1usize, 3, 15, 16, 17, 33, 40] {
            for row_len in [1usize, 3, 4, 5, 8, 29, 64] {
                let len = dot::weights_len(channels, row_len) as usize;
                let mut seen = std::vec![false; len];
                for o in 0..channels {
                    for k in 0..dot::padded_row(row_len) {
                        let i = dot::index(o, k, row_len, channels);
                        assert!(i < len && !seen[i], "{channels} x {row_len}: ({o}, {k})");
                        seen[i] = true;
                    }
                }
                assert!(seen.iter().all(|&s| s));
            }
        }
    }

    #[test]
    fn dsp_index_covers_the_section_once_and_position_inverts_it() {
        for channels in [1usize, 3, 4, 5, 9, 16] {
            for row_len in [1usize, 4, 7, 13, 29] {
                let len = dsp::weights_len(channels, row_len) as usize;
                let mut seen = std::vec![false; len];
                for o in 0..channels {
                    for k in 0..dsp::padded_row(row_len) {
                        let i = dsp::index(o, k, row_len, channels);
                        assert!(i < len && !seen[i], "{channels} x {row_len}: ({o}, {k})");
                        seen[i] = true;
                        assert_eq!(dsp::position(i, row_len, channels), (o, k));
                    }
                }
                assert!(seen.iter().all(|&s| s));
            }
        }
    }
}
