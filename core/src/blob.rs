//! Raw views over blob bytes: named field ranges, little-endian readers and the CRC.
//!
//! Nothing here validates meaning; [`Model::load`](crate::Model::load) does that once.
//! The views only promise that the fixed-size structure they wrap is long enough, so every accessor is total.
//! `docs/BLOB.md` describes the same layout in tables.

use core::ops::Range;

use crc::{CRC_32_ISO_HDLC, Crc};

/// The eight magic bytes at the start of every blob.
pub const MAGIC: [u8; 8] = *b"TICKQBLB";
/// The format version this crate writes (version 2: per-layer weight formats; version 3: the column-sparse
/// weight format).
pub const FORMAT_VERSION: u16 = 3;
/// The oldest format version this crate reads (version 1: dense blocked weights only).
pub const OLDEST_FORMAT_VERSION: u16 = 1;
/// The size of the header in bytes.
pub const HEADER_LEN: usize = 64;
/// The size of one layer table entry in bytes.
pub const ENTRY_LEN: usize = 64;
/// Every section starts at a multiple of this many bytes.
pub const SECTION_ALIGN: usize = 16;
/// The metadata block starts at a multiple of this many bytes.
pub const METADATA_ALIGN: usize = 4;
/// The input reference that means "none" (the model input for layer 0, no second input otherwise).
pub const NO_INPUT: u16 = 0xFFFF;

/// Byte ranges of the header fields.
pub mod header {
    use core::ops::Range;

    /// `[u8; 8]` magic, [`MAGIC`](super::MAGIC).
    pub const MAGIC: Range<usize> = 0..8;
    /// `u16` format version.
    pub const VERSION: Range<usize> = 8..10;
    /// `u16` flags; version 1 defines none.
    pub const FLAGS: Range<usize> = 10..12;
    /// `u32` CRC-32/ISO-HDLC over the blob without this field.
    pub const CRC: Range<usize> = 12..16;
    /// `u32` total blob length.
    pub const TOTAL_LEN: Range<usize> = 16..20;
    /// `u16` number of layers.
    pub const LAYER_COUNT: Range<usize> = 20..22;
    /// `u16` reserved, zero.
    pub const RESERVED_0: Range<usize> = 22..24;
    /// `u32` offset of the layer table (always 64).
    pub const LAYER_TABLE_OFFSET: Range<usize> = 24..28;
    /// `u32` offset of the metadata block.
    pub const METADATA_OFFSET: Range<usize> = 28..32;
    /// `u32` length of the metadata block.
    pub const METADATA_LEN: Range<usize> = 32..36;
    /// Reserved, zero.
    pub const RESERVED_1: Range<usize> = 36..64;
}

/// Byte ranges of the fields of one layer table entry, relative to the entry.
pub mod entry {
    use core::ops::Range;

    /// `u8` layer kind code.
    pub const KIND: usize = 0;
    /// `u8` padding: 0 valid, 1 causal.
    pub const PADDING: usize = 1;
    /// `u16` index of the layer producing the first input.
    pub const INPUT_A: Range<usize> = 2..4;
    /// `u16` index of the layer producing the second input (Add only).
    pub const INPUT_B: Range<usize> = 4..6;
    /// `u8` layer flags: bit 0 marks a dynamically quantized layer (`docs/ARITHMETIC.md`); other bits zero.
    pub const FLAGS: usize = 6;
    /// `i8` bias exponent of a dynamic Dense layer; zero everywhere else.
    pub const BIAS_EXPONENT: usize = 7;
    /// `u16` declared output time steps.
    pub const OUT_TIME: Range<usize> = 8..10;
    /// `u16` declared output channels.
    pub const OUT_CHANNELS: Range<usize> = 10..12;
    /// `u16` kernel size.
    pub const KERNEL: Range<usize> = 12..14;
    /// `u16` stride.
    pub const STRIDE: Range<usize> = 14..16;
    /// `u16` dilation.
    pub const DILATION: Range<usize> = 16..18;
    /// `u8` N:M weights (version 2, weight format 2): `n`, the stored weights per group; otherwise zero.
    pub const NM_N: usize = 18;
    /// `u8` N:M weights (version 2, weight format 2): `m`, the group width; otherwise zero.
    pub const NM_M: usize = 19;
    /// `i8` output zero point.
    pub const OUT_ZERO_POINT: usize = 20;
    /// `i8` lower clamp of the output.
    pub const ACT_MIN: usize = 21;
    /// `i8` upper clamp of the output.
    pub const ACT_MAX: usize = 22;
    /// `u8` weight format (version 2): 0 dense blocked, 1 sparse, 2 N:M; zero in version 1 and for layers
    /// without weights.
    pub const WEIGHT_FORMAT: usize = 23;
    /// `f32` output scale (IEEE bits).
    pub const OUT_SCALE: Range<usize> = 24..28;
    /// `u32` weights section offset.
    pub const WEIGHTS_OFFSET: Range<usize> = 28..32;
    /// `u32` weights section length.
    pub const WEIGHTS_LEN: Range<usize> = 32..36;
    /// `u32` bias section offset.
    pub const BIAS_OFFSET: Range<usize> = 36..40;
    /// `u32` bias section length.
    pub const BIAS_LEN: Range<usize> = 40..44;
    /// `u32` requant section offset.
    pub const REQUANT_OFFSET: Range<usize> = 44..48;
    /// `u32` requant section length.
    pub const REQUANT_LEN: Range<usize> = 48..52;
    /// `u32` aux section offset.
    pub const AUX_OFFSET: Range<usize> = 52..56;
    /// `u32` aux section length.
    pub const AUX_LEN: Range<usize> = 56..60;
    /// `u32` reserved, zero.
    pub const RESERVED_3: Range<usize> = 60..64;
}

const CRC32: Crc<u32> = Crc::<u32>::new(&CRC_32_ISO_HDLC);

/// Computes the blob CRC: CRC-32/ISO-HDLC over bytes `[0, 12)` followed by `[16, len)`.
///
/// Blobs shorter than the header are hashed as far as they go.
pub fn compute_crc(blob: &[u8]) -> u32 {
    let mut digest = CRC32.digest();
    digest.update(blob.get(..header::CRC.start).unwrap_or(blob));
    digest.update(blob.get(header::CRC.end..).unwrap_or(&[]));
    digest.finalize()
}

/// Reads a little-endian `u16` at `range`, or 0 if the range is out of bounds.
#[inline]
pub(crate) fn read_u16(bytes: &[u8], range: Range<usize>) -> u16 {
    bytes
        .get(range)
        .and_then(|s| <[u8; 2]>::try_from(s).ok())
        .map_or(0, u16::from_le_bytes)
}

/// Reads a little-endian `u32` at `range`, or 0 if the range is out of bounds.
#[inline]
pub(crate) fn read_u32(bytes: &[u8], range: Range<usize>) -> u32 {
    bytes
        .get(range)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map_or(0, u32::from_le_bytes)
}

/// Reads the byte at `index`, or 0 if it is out of bounds.
#[inline]
pub(crate) fn read_u8(bytes: &[u8], index: usize) -> u8 {
    bytes.get(index).copied().unwrap_or(0)
}

/// Reads a little-endian `i32` from a 4-byte chunk (0 if the chunk is not 4 bytes).
#[inline(always)]
pub(crate) fn le_i32(chunk: &[u8]) -> i32 {
    <[u8; 4]>::try_from(chunk).map_or(0, i32::from_le_bytes)
}

/// Reads a little-endian `f32` from a 4-byte chunk (0.0 if the chunk is not 4 bytes).
#[inline(always)]
pub(crate) fn le_f32(chunk: &[u8]) -> f32 {
    <[u8; 4]>::try_from(chunk).map_or(0.0, f32::from_le_bytes)
}

/// A view of the 64-byte header.
#[derive(Debug, Clone, Copy)]
pub struct Header<'a>(&'a [u8; HEADER_LEN]);

impl<'a> Header<'a> {
    /// Wraps the first [`HEADER_LEN`] bytes of `blob`, or returns `None` if the blob is shorter.
    #[inline]
    pub fn new_checked(blob: &'a [u8]) -> Option<Self> {
        blob.get(..HEADER_LEN)
            .and_then(|s| <&[u8; HEADER_LEN]>::try_from(s).ok())
            .map(Header)
    }

    /// The raw header bytes.
    #[inline]
    pub fn bytes(&self) -> &'a [u8; HEADER_LEN] {
        self.0
    }

    /// Whether the magic bytes are [`MAGIC`].
    #[inline]
    pub fn magic_ok(&self) -> bool {
        self.0.get(header::MAGIC) == Some(&MAGIC[..])
    }

    /// The format version.
    #[inline]
    pub fn version(&self) -> u16 {
        read_u16(self.0, header::VERSION)
    }

    /// The flags.
    #[inline]
    pub fn flags(&self) -> u16 {
        read_u16(self.0, header::FLAGS)
    }

    /// The stored CRC.
    #[inline]
    pub fn crc(&self) -> u32 {
        read_u32(self.0, header::CRC)
    }

    /// The declared total length.
    #[inline]
    pub fn total_len(&self) -> u32 {
        read_u32(self.0, header::TOTAL_LEN)
    }

    /// The layer count.
    #[inline]
    pub fn layer_count(&self) -> u16 {
        read_u16(self.0, header::LAYER_COUNT)
    }

    /// The layer table offset.
    #[inline]
    pub fn layer_table_offset(&self) -> u32 {
        read_u32(self.0, header::LAYER_TABLE_OFFSET)
    }

    /// The metadata offset.
    #[inline]
    pub fn metadata_offset(&self) -> u32 {
        read_u32(self.0, header::METADATA_OFFSET)
    }

    /// The metadata length.
    #[inline]
    pub fn metadata_len(&self) -> u32 {
        read_u32(self.0, header::METADATA_LEN)
    }

    /// The offset of the first non-zero reserved byte, if any.
    pub fn nonzero_reserved(&self) -> Option<usize> {
        first_nonzero(self.0, header::RESERVED_0)
            .or_else(|| first_nonzero(self.0, header::RESERVED_1))
    }
}

/// A view of one 64-byte layer table entry.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a>(&'a [u8; ENTRY_LEN]);

impl<'a> Entry<'a> {
    /// Wraps the [`ENTRY_LEN`] bytes at `offset`, or returns `None` if the blob is too short.
    #[inline]
    pub fn new_checked(blob: &'a [u8], offset: usize) -> Option<Self> {
        blob.get(offset..offset.checked_add(ENTRY_LEN)?)
            .and_then(|s| <&[u8; ENTRY_LEN]>::try_from(s).ok())
            .map(Entry)
    }

    /// The raw entry bytes.
    #[inline]
    pub fn bytes(&self) -> &'a [u8; ENTRY_LEN] {
        self.0
    }

    /// The kind code.
    #[inline]
    pub fn kind(&self) -> u8 {
        read_u8(self.0, entry::KIND)
    }

    /// The padding code.
    #[inline]
    pub fn padding(&self) -> u8 {
        read_u8(self.0, entry::PADDING)
    }

    /// The first input reference.
    #[inline]
    pub fn input_a(&self) -> u16 {
        read_u16(self.0, entry::INPUT_A)
    }

    /// The second input reference.
    #[inline]
    pub fn input_b(&self) -> u16 {
        read_u16(self.0, entry::INPUT_B)
    }

    /// The declared output time steps.
    #[inline]
    pub fn out_time(&self) -> u16 {
        read_u16(self.0, entry::OUT_TIME)
    }

    /// The declared output channels.
    #[inline]
    pub fn out_channels(&self) -> u16 {
        read_u16(self.0, entry::OUT_CHANNELS)
    }

    /// The kernel size.
    #[inline]
    pub fn kernel(&self) -> u16 {
        read_u16(self.0, entry::KERNEL)
    }

    /// The stride.
    #[inline]
    pub fn stride(&self) -> u16 {
        read_u16(self.0, entry::STRIDE)
    }

    /// The dilation.
    #[inline]
    pub fn dilation(&self) -> u16 {
        read_u16(self.0, entry::DILATION)
    }

    /// The output zero point.
    #[inline]
    pub fn out_zero_point(&self) -> i8 {
        read_u8(self.0, entry::OUT_ZERO_POINT) as i8
    }

    /// The lower output clamp.
    #[inline]
    pub fn act_min(&self) -> i8 {
        read_u8(self.0, entry::ACT_MIN) as i8
    }

    /// The upper output clamp.
    #[inline]
    pub fn act_max(&self) -> i8 {
        read_u8(self.0, entry::ACT_MAX) as i8
    }

    /// The output scale.
    #[inline]
    pub fn out_scale(&self) -> f32 {
        f32::from_bits(read_u32(self.0, entry::OUT_SCALE))
    }

    /// The weight format code (version 2).
    #[inline]
    pub fn weight_format(&self) -> u8 {
        read_u8(self.0, entry::WEIGHT_FORMAT)
    }

    /// The N:M parameters `(n, m)` (version 2, weight format 2).
    #[inline]
    pub fn nm(&self) -> (u8, u8) {
        (read_u8(self.0, entry::NM_N), read_u8(self.0, entry::NM_M))
    }

    /// The (offset, length) of a section.
    #[inline]
    pub fn section(&self, section: crate::error::Section) -> (u32, u32) {
        use crate::error::Section;
        let (off, len) = match section {
            Section::Weights => (entry::WEIGHTS_OFFSET, entry::WEIGHTS_LEN),
            Section::Bias => (entry::BIAS_OFFSET, entry::BIAS_LEN),
            Section::Requant => (entry::REQUANT_OFFSET, entry::REQUANT_LEN),
            Section::Aux => (entry::AUX_OFFSET, entry::AUX_LEN),
        };
        (read_u32(self.0, off), read_u32(self.0, len))
    }

    /// The offset, relative to the entry, of the first non-zero reserved byte, if any.
    ///
    /// The layer flags and bias exponent bytes are not included either (the loader checks them by kind).
    /// The weight format and N:M bytes are not included: their rules depend on the version and the layer kind,
    /// and the loader checks them.
    pub fn nonzero_reserved(&self) -> Option<usize> {
        first_nonzero(self.0, entry::RESERVED_3)
    }

    /// The layer flags byte (bit 0: dynamic quantization).
    #[inline]
    pub fn layer_flags(&self) -> u8 {
        read_u8(self.0, entry::FLAGS)
    }

    /// The bias exponent byte of a dynamic Dense layer.
    #[inline]
    pub fn bias_exponent(&self) -> i8 {
        read_u8(self.0, entry::BIAS_EXPONENT) as i8
    }
}

fn first_nonzero(bytes: &[u8], range: Range<usize>) -> Option<usize> {
    let start = range.start;
    bytes
        .get(range)?
        .iter()
        .position(|&b| b != 0)
        .map(|p| start + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_zlib_check_value() {
        // The CRC-32/ISO-HDLC check value over "123456789" is 0xCBF43926; the CRC field is skipped,
        // so put the check string around a 4-byte hole at [12, 16).
        let mut buf = [0u8; 16];
        buf[..9].copy_from_slice(b"123456789");
        assert_eq!(compute_crc(&buf[..9]), 0xCBF4_3926);
        buf[12..16].copy_from_slice(&[1, 2, 3, 4]);
        let mut other = buf;
        other[12..16].copy_from_slice(&[9, 9, 9, 9]);
        assert_eq!(compute_crc(&buf), compute_crc(&other));
    }

    #[test]
    fn views_reject_short_input() {
        assert!(Header::new_checked(&[0u8; 63]).is_none());
        assert!(Header::new_checked(&[0u8; 64]).is_some());
        assert!(Entry::new_checked(&[0u8; 100], 40).is_none());
        assert!(Entry::new_checked(&[0u8; 104], 40).is_some());
        assert!(Entry::new_checked(&[0u8; 104], usize::MAX).is_none());
    }
}
