//! The metadata block: the model name, feature and label names, the training-data hash and the writer's
//! version, parsed and checked once at load and then read in place.

use crate::error::{BlobError, BlobErrorKind};
use crate::format::{self, read_u16};

/// The metadata block: names, training-data hash and the tickq version that wrote the blob.
#[derive(Debug, Clone, Copy)]
pub struct Metadata<'b> {
    name: &'b str,
    pub(crate) feature_count: u16,
    features: &'b [u8],
    pub(crate) label_count: u16,
    labels: &'b [u8],
    data_hash: &'b [u8; 32],
    tickq_version: &'b str,
}

impl<'b> Metadata<'b> {
    /// A placeholder while the loader fills a [`Model`] in place.
    pub(crate) const EMPTY: Metadata<'static> = Metadata {
        name: "",
        feature_count: 0,
        features: &[],
        label_count: 0,
        labels: &[],
        data_hash: &[0; 32],
        tickq_version: "",
    };

    /// The model name.
    #[inline]
    pub fn name(&self) -> &'b str {
        self.name
    }

    /// The feature names, one per input feature.
    #[inline]
    pub fn feature_names(&self) -> Names<'b> {
        Names {
            rest: self.features,
            remaining: self.feature_count,
        }
    }

    /// The label names, one per class.
    #[inline]
    pub fn label_names(&self) -> Names<'b> {
        Names {
            rest: self.labels,
            remaining: self.label_count,
        }
    }

    /// The SHA-256 of the training data.
    #[inline]
    pub fn data_hash(&self) -> &'b [u8; 32] {
        self.data_hash
    }

    /// The version of tickq that wrote the blob.
    #[inline]
    pub fn tickq_version(&self) -> &'b str {
        self.tickq_version
    }
}

/// An iterator over a validated list of length-prefixed names.
#[derive(Debug, Clone)]
pub struct Names<'b> {
    rest: &'b [u8],
    remaining: u16,
}

impl<'b> Iterator for Names<'b> {
    type Item = &'b str;

    fn next(&mut self) -> Option<&'b str> {
        if self.remaining == 0 {
            return None;
        }
        let mut cursor = Cursor {
            bytes: self.rest,
            pos: 0,
            base: 0,
        };
        // The list was validated at load, so this cannot fail; if it did, the iterator would just end.
        let s = cursor.string().ok();
        self.rest = self.rest.get(cursor.pos..).unwrap_or(&[]);
        self.remaining = if s.is_some() { self.remaining - 1 } else { 0 };
        s
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (
            usize::from(self.remaining),
            Some(usize::from(self.remaining)),
        )
    }
}

impl ExactSizeIterator for Names<'_> {}

/// A reader over the metadata block that reports errors at absolute blob offsets.
struct Cursor<'b> {
    bytes: &'b [u8],
    pos: usize,
    base: usize,
}

impl<'b> Cursor<'b> {
    fn err(&self, kind: BlobErrorKind) -> BlobError {
        BlobError::global(self.base + self.pos, kind)
    }

    fn take(&mut self, n: usize) -> Result<&'b [u8], BlobError> {
        let s = self
            .pos
            .checked_add(n)
            .and_then(|end| self.bytes.get(self.pos..end))
            .ok_or_else(|| self.err(BlobErrorKind::MetadataTruncated))?;
        self.pos += n;
        Ok(s)
    }

    fn u16(&mut self) -> Result<u16, BlobError> {
        let s = self.take(2)?;
        Ok(read_u16(s, 0..2))
    }

    fn string(&mut self) -> Result<&'b str, BlobError> {
        let len = usize::from(self.u16()?);
        let start = self.pos;
        let s = self.take(len)?;
        core::str::from_utf8(s)
            .map_err(|_| BlobError::global(self.base + start, BlobErrorKind::BadUtf8))
    }

    /// Reads `u16 count` and `count` strings; returns the count and the bytes of the strings.
    fn list(&mut self) -> Result<(u16, &'b [u8]), BlobError> {
        let count = self.u16()?;
        let start = self.pos;
        for _ in 0..count {
            self.string()?;
        }
        Ok((count, self.bytes.get(start..self.pos).unwrap_or(&[])))
    }
}

#[inline(always)]
pub(crate) fn parse(blob: &[u8], offset: usize, len: usize) -> Result<Metadata<'_>, BlobError> {
    let bytes = blob.get(offset..offset + len).ok_or_else(|| {
        BlobError::global(
            format::header::METADATA_OFFSET.start,
            BlobErrorKind::MetadataOutOfBounds,
        )
    })?;
    let mut c = Cursor {
        bytes,
        pos: 0,
        base: offset,
    };
    let name = c.string()?;
    let (feature_count, features) = c.list()?;
    let (label_count, labels) = c.list()?;
    let data_hash =
        <&[u8; 32]>::try_from(c.take(32)?).map_err(|_| c.err(BlobErrorKind::MetadataTruncated))?;
    let tickq_version = c.string()?;
    if c.pos != bytes.len() {
        return Err(c.err(BlobErrorKind::MetadataTrailingBytes));
    }
    Ok(Metadata {
        name,
        feature_count,
        features,
        label_count,
        labels,
        data_hash,
        tickq_version,
    })
}
