//! The feature-spec section (format version 5): the [`FeatureSpec`] the model's input features come from, read
//! from its fixed 328 bytes and checked once at load (layout in `format::feature_spec`, `docs/BLOB.md`), and the
//! check of the metadata's feature names against it.

use core::fmt::{self, Write};

use crate::error::{BlobError, BlobErrorKind, FeatureSpecError};
use crate::features::{FeatureSpec, MAX_WINDOWS, SpecField, WindowList};
use crate::format::feature_spec as fs;
use crate::format::{read_u8, read_u32};
use crate::load::metadata::Metadata;

// The section's slot count is the spec's list capacity.
const _: () = assert!(fs::MAX_WINDOWS == MAX_WINDOWS);

/// The window lists' fields, in the order the section stores them (the order `FeatureSpec` declares them).
pub(crate) const LIST_FIELDS: [SpecField; fs::LISTS_COUNT] = [
    SpecField::ReturnLagsTrades,
    SpecField::ReturnLagsMs,
    SpecField::FlowWindowsTrades,
    SpecField::FlowWindowsMs,
    SpecField::VolatilityWindowsTrades,
    SpecField::IntensityWindowsMs,
    SpecField::VwapWindowsTrades,
    SpecField::VwapWindowsMs,
    SpecField::RangeWindowsTrades,
];

/// The list of `spec` stored `i`-th ([`LIST_FIELDS`]).
fn list_mut(spec: &mut FeatureSpec, i: usize) -> Option<&mut WindowList> {
    Some(match i {
        0 => &mut spec.return_lags_trades,
        1 => &mut spec.return_lags_ms,
        2 => &mut spec.flow_windows_trades,
        3 => &mut spec.flow_windows_ms,
        4 => &mut spec.volatility_windows_trades,
        5 => &mut spec.intensity_windows_ms,
        6 => &mut spec.vwap_windows_trades,
        7 => &mut spec.vwap_windows_ms,
        8 => &mut spec.range_windows_trades,
        _ => return None,
    })
}

/// Reads `f64` IEEE bits at `range` of `bytes` (0.0 when out of bounds).
fn read_f64(bytes: &[u8], range: core::ops::Range<usize>) -> f64 {
    bytes
        .get(range)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map_or(0.0, f64::from_le_bytes)
}

/// Parses and checks the section, `bytes` (exactly [`fs::LEN`] long), found at blob offset `base`: reserved bytes
/// zero, each list at most [`MAX_WINDOWS`] long with its unused slots zero, and [`FeatureSpec::validate`].
pub(crate) fn parse(bytes: &[u8], base: usize) -> Result<FeatureSpec, BlobError> {
    let err = |at: usize, kind| BlobError::global(base + at, kind);
    if bytes.len() != fs::LEN {
        return Err(err(0, BlobErrorKind::Truncated));
    }
    if let Some(p) = bytes
        .get(fs::RESERVED)
        .and_then(|r| r.iter().position(|&b| b != 0))
    {
        return Err(err(fs::RESERVED.start + p, BlobErrorKind::ReservedNotZero));
    }
    let mut spec = FeatureSpec {
        return_lags_trades: WindowList::EMPTY,
        return_lags_ms: WindowList::EMPTY,
        flow_windows_trades: WindowList::EMPTY,
        flow_windows_ms: WindowList::EMPTY,
        volatility_windows_trades: WindowList::EMPTY,
        intensity_windows_ms: WindowList::EMPTY,
        vwap_windows_trades: WindowList::EMPTY,
        vwap_windows_ms: WindowList::EMPTY,
        range_windows_trades: WindowList::EMPTY,
        session_gap_ms: read_u32(bytes, fs::SESSION_GAP_MS),
        capacity: read_u32(bytes, fs::CAPACITY),
        tick_size: read_f64(bytes, fs::TICK_SIZE),
        size_unit: read_f64(bytes, fs::SIZE_UNIT),
    };
    for (i, field) in LIST_FIELDS.into_iter().enumerate() {
        let len_at = fs::LIST_LENS.start + i;
        let len = read_u8(bytes, len_at);
        if usize::from(len) > MAX_WINDOWS {
            return Err(err(
                len_at,
                BlobErrorKind::FeatureSpecListTooLong { field, found: len },
            ));
        }
        let mut items = [0u32; MAX_WINDOWS];
        for (slot, item) in items.iter_mut().enumerate() {
            let at = fs::LISTS + fs::LIST_BYTES * i + 4 * slot;
            *item = read_u32(bytes, at..at + 4);
            if slot >= usize::from(len) && *item != 0 {
                return Err(err(at, BlobErrorKind::FeatureSpecSlotNotZero { field }));
            }
        }
        let list = items
            .get(..usize::from(len))
            .and_then(WindowList::new)
            .ok_or(err(
                len_at,
                BlobErrorKind::FeatureSpecListTooLong { field, found: len },
            ))?;
        if let Some(slot) = list_mut(&mut spec, i) {
            *slot = list;
        }
    }
    spec.validate().map_err(|e| {
        err(
            0,
            BlobErrorKind::BadFeatureSpec {
                error: FeatureSpecError(e),
            },
        )
    })?;
    Ok(spec)
}

/// The section bytes of `spec`, as [`parse`] reads them.
#[cfg(feature = "alloc")]
pub(crate) fn to_bytes(spec: &FeatureSpec) -> [u8; fs::LEN] {
    let mut out = [0u8; fs::LEN];
    let mut put = |at: usize, bytes: &[u8]| {
        if let Some(dst) = out.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    };
    put(fs::SESSION_GAP_MS.start, &spec.session_gap_ms.to_le_bytes());
    put(fs::CAPACITY.start, &spec.capacity.to_le_bytes());
    put(fs::TICK_SIZE.start, &spec.tick_size.to_bits().to_le_bytes());
    put(fs::SIZE_UNIT.start, &spec.size_unit.to_bits().to_le_bytes());
    let mut copy = *spec;
    for i in 0..fs::LISTS_COUNT {
        let Some(list) = list_mut(&mut copy, i) else {
            continue;
        };
        let list = *list;
        put(fs::LIST_LENS.start + i, &[list.len() as u8]);
        for (slot, item) in list.as_slice().iter().enumerate() {
            put(
                fs::LISTS + fs::LIST_BYTES * i + 4 * slot,
                &item.to_le_bytes(),
            );
        }
    }
    out
}

/// A [`fmt::Write`] that compares what is written with a stored string, so a `Display` value can be checked
/// against blob bytes without allocating.
struct Matches<'a> {
    rest: &'a [u8],
}

impl Write for Matches<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.rest = self.rest.strip_prefix(s.as_bytes()).ok_or(fmt::Error)?;
        Ok(())
    }
}

/// Whether `value`'s `Display` output is exactly `stored`.
fn displays_as(value: impl fmt::Display, stored: &str) -> bool {
    let mut m = Matches {
        rest: stored.as_bytes(),
    };
    write!(m, "{value}").is_ok() && m.rest.is_empty()
}

/// Checks that `spec` produces `features` columns and that the metadata names them as the spec does, in order.
///
/// `blob` is the whole blob (for the offset of a mismatching name) and `meta_offset` the metadata's offset.
pub(crate) fn check_names(
    spec: &FeatureSpec,
    metadata: &Metadata<'_>,
    features: usize,
    blob: &[u8],
    meta_offset: usize,
) -> Result<(), BlobError> {
    let count = spec.feature_count();
    if count != features {
        return Err(BlobError::global(
            crate::format::header::FEATURE_SPEC_OFFSET.start,
            BlobErrorKind::FeatureSpecCountMismatch {
                spec: u16::try_from(count).unwrap_or(u16::MAX),
                features: u16::try_from(features).unwrap_or(u16::MAX),
            },
        ));
    }
    let mut names = metadata.feature_names();
    let mut index = 0usize;
    let mut mismatch: Option<(usize, usize)> = None;
    spec.for_each_feature(|name| {
        if mismatch.is_some() {
            return;
        }
        let stored = names.next();
        if !stored.is_some_and(|s| displays_as(name, s)) {
            // The offset of the name's length prefix: its bytes start 2 bytes after it.
            let at = stored.map_or(meta_offset, |s| {
                (s.as_ptr() as usize)
                    .saturating_sub(blob.as_ptr() as usize)
                    .saturating_sub(2)
            });
            mismatch = Some((index, at));
        }
        index += 1;
    });
    match mismatch {
        Some((index, at)) => Err(BlobError::global(
            at,
            BlobErrorKind::FeatureNameMismatch {
                index: u16::try_from(index).unwrap_or(u16::MAX),
            },
        )),
        None => Ok(()),
    }
}
