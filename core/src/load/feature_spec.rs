//! The feature-spec section (format version 5): the [`FeatureSpec`] the model's input features come from, read
//! from its fixed 328 bytes and checked once at load (layout in `format::feature_spec`, `docs/BLOB.md`), and the
//! check of the metadata's feature names against it.

use core::fmt::{self, Write};

use crate::error::{BlobError, BlobErrorKind, FeatureSpecError};
use crate::features::{FeatureSpec, InputKind, InputSpec, MAX_WINDOWS, SpecField, WindowList};
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

/// The lists of a bars spec, in the order the section stores them in its first slots (the others empty).
pub(crate) const BAR_LIST_FIELDS: [SpecField; 2] =
    [SpecField::BarReturnLags, SpecField::BarVolumeWindows];

/// The lists of a book spec, in the order the section stores them in its first slots (the others empty).
pub(crate) const BOOK_LIST_FIELDS: [SpecField; 4] = [
    SpecField::BookReturnLags,
    SpecField::BookDepthLevels,
    SpecField::BookOfiWindows,
    SpecField::BookTradeWindows,
];

/// The field of the list a spec of `kind` stores `i`-th, `None` past its lists.
pub(crate) fn list_field(kind: InputKind, i: usize) -> Option<SpecField> {
    match kind {
        InputKind::Trades => LIST_FIELDS.get(i).copied(),
        InputKind::Bars => BAR_LIST_FIELDS.get(i).copied(),
        InputKind::Book => BOOK_LIST_FIELDS.get(i).copied(),
    }
}

/// The list of `spec` stored `i`-th: [`LIST_FIELDS`] for a trades spec, [`BAR_LIST_FIELDS`] or
/// [`BOOK_LIST_FIELDS`] in the first slots for the other kinds.
fn list_mut(spec: &mut FeatureSpec, i: usize) -> Option<&mut WindowList> {
    let input = &mut spec.input;
    match input.kind {
        InputKind::Trades => {}
        InputKind::Bars => {
            return match i {
                0 => Some(&mut input.bar_return_lags),
                1 => Some(&mut input.bar_volume_windows),
                _ => None,
            };
        }
        InputKind::Book => {
            return match i {
                0 => Some(&mut input.book_return_lags),
                1 => Some(&mut input.book_depth_levels),
                2 => Some(&mut input.book_ofi_windows),
                3 => Some(&mut input.book_trade_windows),
                _ => None,
            };
        }
    }
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
/// zero, a known input kind, each list at most [`MAX_WINDOWS`] long with its unused slots zero (a list past
/// the kind's lists empty), and [`FeatureSpec::validate`].
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
        input: InputSpec::TRADES,
    };
    let code = read_u8(bytes, fs::INPUT_KIND);
    spec.input.kind = InputKind::from_code(code).ok_or(err(
        fs::INPUT_KIND,
        BlobErrorKind::FeatureSpecInputKind { found: code },
    ))?;
    for i in 0..fs::LISTS_COUNT {
        let len_at = fs::LIST_LENS.start + i;
        let len = read_u8(bytes, len_at);
        let Some(field) = list_field(spec.input.kind, i) else {
            if len != 0 {
                return Err(err(
                    len_at,
                    BlobErrorKind::FeatureSpecListUnused {
                        kind: spec.input.kind,
                        index: i as u8,
                    },
                ));
            }
            for slot in 0..MAX_WINDOWS {
                let at = fs::LISTS + fs::LIST_BYTES * i + 4 * slot;
                if read_u32(bytes, at..at + 4) != 0 {
                    return Err(err(
                        at,
                        BlobErrorKind::FeatureSpecListUnused {
                            kind: spec.input.kind,
                            index: i as u8,
                        },
                    ));
                }
            }
            continue;
        };
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
    // 0 for a trades spec: the byte was reserved before the other kinds.
    put(fs::INPUT_KIND, &[spec.input.kind.code()]);
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

#[cfg(all(test, feature = "alloc"))]
mod tests {
    extern crate std;
    use std::string::ToString;

    use super::*;

    fn list(items: &[u32]) -> WindowList {
        WindowList::new(items).unwrap()
    }

    fn market(kind: InputKind) -> FeatureSpec {
        let empty = FeatureSpec {
            return_lags_trades: WindowList::EMPTY,
            return_lags_ms: WindowList::EMPTY,
            flow_windows_trades: WindowList::EMPTY,
            flow_windows_ms: WindowList::EMPTY,
            volatility_windows_trades: WindowList::EMPTY,
            intensity_windows_ms: WindowList::EMPTY,
            vwap_windows_trades: WindowList::EMPTY,
            vwap_windows_ms: WindowList::EMPTY,
            range_windows_trades: WindowList::EMPTY,
            ..FeatureSpec::default()
        };
        let input = match kind {
            InputKind::Trades => return FeatureSpec::default(),
            InputKind::Bars => InputSpec {
                kind,
                bar_return_lags: list(&[1, 5, 20]),
                bar_volume_windows: list(&[10]),
                ..InputSpec::TRADES
            },
            InputKind::Book => InputSpec {
                kind,
                book_return_lags: list(&[1, 10]),
                book_depth_levels: list(&[1, 5]),
                book_ofi_windows: list(&[10, 100]),
                book_trade_windows: list(&[50]),
                ..InputSpec::TRADES
            },
        };
        FeatureSpec { input, ..empty }
    }

    #[test]
    fn every_kind_round_trips_and_a_trades_spec_keeps_its_old_bytes() {
        for kind in [InputKind::Trades, InputKind::Bars, InputKind::Book] {
            let spec = market(kind);
            let bytes = to_bytes(&spec);
            assert_eq!(bytes[fs::INPUT_KIND], kind.code());
            assert_eq!(parse(&bytes, 0), Ok(spec), "{kind}");
        }
        // A trades spec leaves byte 33 zero, as in every version 5 blob written before the other kinds.
        let bytes = to_bytes(&FeatureSpec::default());
        assert!(bytes[fs::INPUT_KIND..40].iter().all(|&b| b == 0));
        // A bars spec stores its two lists in the first slots.
        let bytes = to_bytes(&market(InputKind::Bars));
        assert_eq!(&bytes[fs::LIST_LENS], &[3, 1, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn an_unknown_kind_and_a_list_past_the_kind_are_refused_by_name() {
        let mut bytes = to_bytes(&market(InputKind::Bars));
        bytes[fs::INPUT_KIND] = 3;
        let e = parse(&bytes, 1000).unwrap_err();
        assert_eq!(e.kind, BlobErrorKind::FeatureSpecInputKind { found: 3 });
        assert_eq!(e.offset as usize, 1000 + fs::INPUT_KIND);
        assert!(
            e.to_string()
                .contains("feature spec input kind unknown (found 3)"),
            "{e}"
        );
        let mut bytes = to_bytes(&market(InputKind::Bars));
        bytes[fs::LIST_LENS.start + 2] = 1;
        let e = parse(&bytes, 0).unwrap_err();
        assert_eq!(
            e.kind,
            BlobErrorKind::FeatureSpecListUnused {
                kind: InputKind::Bars,
                index: 2
            }
        );
        assert!(
            e.to_string().contains(
                "feature spec list unused by its input kind not empty (list 2, input kind 1)"
            ),
            "{e}"
        );
        let mut bytes = to_bytes(&market(InputKind::Book));
        let at = fs::LISTS + fs::LIST_BYTES * 4;
        bytes[at] = 9;
        let e = parse(&bytes, 0).unwrap_err();
        assert_eq!(e.offset as usize, at);
        // A window out of range is refused by the spec's own check, naming the field.
        let mut bytes = to_bytes(&market(InputKind::Book));
        bytes[fs::LISTS + fs::LIST_BYTES] = 6;
        assert_eq!(
            parse(&bytes, 0).unwrap_err().to_string(),
            "blob at byte 0: feature spec rejected: feature spec field `book_depth_levels`: window 6 is out of range: expected 1 to 5"
        );
        // The reserved bytes after the kind stay reserved.
        let mut bytes = to_bytes(&market(InputKind::Bars));
        bytes[35] = 1;
        assert_eq!(
            parse(&bytes, 0).unwrap_err().kind,
            BlobErrorKind::ReservedNotZero
        );
    }
}
