//! Byte views over a blob: little-endian readers, the header and layer-entry views, and the CRC.
//!
//! Nothing here validates meaning; [`Model::load`](crate::Model::load) does that once.
//! The views only promise that the fixed-size structure they wrap is long enough, so every accessor is total.

use core::ops::Range;

use crc::{CRC_32_ISO_HDLC, Crc};

use super::{ENTRY_LEN, HEADER_LEN, MAGIC, Section, entry, header};

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

    /// The feature-spec section's offset (version 5; 0 when there is none).
    #[inline]
    pub fn feature_spec_offset(&self) -> u32 {
        read_u32(self.0, header::FEATURE_SPEC_OFFSET)
    }

    /// The feature-spec section's length (version 5; 0 when there is none).
    #[inline]
    pub fn feature_spec_len(&self) -> u32 {
        read_u32(self.0, header::FEATURE_SPEC_LEN)
    }

    /// The offset of the first non-zero byte of the feature-spec fields, which versions 1 to 4 reserve, if any.
    pub fn nonzero_feature_spec_fields(&self) -> Option<usize> {
        first_nonzero(self.0, header::FEATURE_SPEC_FIELDS)
    }

    /// The offset of the first non-zero reserved byte, if any (the feature-spec fields, reserved before version
    /// 5, are [`Header::nonzero_feature_spec_fields`]).
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
    pub fn section(&self, section: Section) -> (u32, u32) {
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
