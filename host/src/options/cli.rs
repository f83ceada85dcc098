//! clap's side of the options: value parsers that check a number against its range in [`crate::limits`] and
//! name the range, and help text written from the same constants.

use crate::limits::{Count, RangeError, Real};

/// A clap value parser for a whole number in `range`: `-5`, `0` or `1e12` outside it get an error that names the
/// range, rather than clap's "unexpected argument".
pub fn whole(
    range: Count,
) -> impl Fn(&str) -> Result<usize, RangeError> + Clone + Send + Sync + 'static {
    move |text| range.parse_usize(text)
}

/// [`whole`] for a `u64`.
pub fn whole_u64(
    range: Count,
) -> impl Fn(&str) -> Result<u64, RangeError> + Clone + Send + Sync + 'static {
    move |text| range.parse(text)
}

/// [`whole`] for an `i64` (the feature settings in milliseconds, which the config stores signed).
pub fn whole_i64(
    range: Count,
) -> impl Fn(&str) -> Result<i64, RangeError> + Clone + Send + Sync + 'static {
    move |text| {
        let v = range.parse(text)?;
        i64::try_from(v).map_err(|_| RangeError::OutOfRange {
            value: v.to_string(),
            expected: range.to_string(),
        })
    }
}

/// A comma-separated window list that clap refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ListError {
    /// One entry is not a whole number in range.
    #[error("entry {index}: {source}")]
    Entry {
        /// The 1-based position of the entry.
        index: usize,
        /// What is wrong with it.
        #[source]
        source: RangeError,
    },
    /// More entries than a window list holds.
    #[error("{found} windows, at most {max} are allowed")]
    TooMany {
        /// Entries given.
        found: usize,
        /// [`tickq_core::features::MAX_WINDOWS`].
        max: usize,
    },
}

/// Splits `text` at commas and parses each entry with `parse`; an empty (or all-blank) text is an empty list.
fn parse_list<T>(
    text: &str,
    parse: impl Fn(&str) -> Result<T, RangeError>,
) -> Result<Vec<T>, ListError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let entries: Vec<&str> = text.split(',').collect();
    let max = tickq_core::features::MAX_WINDOWS;
    if entries.len() > max {
        return Err(ListError::TooMany {
            found: entries.len(),
            max,
        });
    }
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            parse(e).map_err(|source| ListError::Entry {
                index: i + 1,
                source,
            })
        })
        .collect()
}

/// A clap value parser for a comma-separated list of trade windows (`1,5,20`), each a whole number in `range`.
pub fn window_list(
    range: Count,
) -> impl Fn(&str) -> Result<Vec<usize>, ListError> + Clone + Send + Sync + 'static {
    move |text| parse_list(text, |e| range.parse_usize(e))
}

/// [`window_list`] for windows in milliseconds.
pub fn window_list_i64(
    range: Count,
) -> impl Fn(&str) -> Result<Vec<i64>, ListError> + Clone + Send + Sync + 'static {
    move |text| parse_list(text, whole_i64(range))
}

/// A clap value parser for a real number in `range`, as an `f32`.
pub fn real(
    range: Real,
) -> impl Fn(&str) -> Result<f32, RangeError> + Clone + Send + Sync + 'static {
    move |text| range.parse_f32(text)
}

/// A clap value parser for a real number in `range`, as an `f64`.
pub fn real_f64(
    range: Real,
) -> impl Fn(&str) -> Result<f64, RangeError> + Clone + Send + Sync + 'static {
    move |text| range.parse(text)
}

/// The help of a numeric option: what it is, then its valid range, written from the same constant the value
/// parser checks.
pub fn ranged(what: &str, range: impl std::fmt::Display) -> String {
    format!("{what}. Valid: {range}")
}

/// The help of a comma-separated window list: what it is, its default and the range of each entry.
pub fn list_help<T: std::fmt::Display>(what: &str, default: &[T], range: Count) -> String {
    let default: Vec<String> = default.iter().map(ToString::to_string).collect();
    ranged_default(
        &format!("{what}, comma-separated (an empty value: none)"),
        default.join(","),
        format!(
            "at most {} entries, each {range}",
            tickq_core::features::MAX_WINDOWS
        ),
    )
}

/// [`ranged`] with the default shown as clap shows defaults: `what [default: 20]. Valid: ...`.
pub fn ranged_default(
    what: &str,
    default: impl std::fmt::Display,
    range: impl std::fmt::Display,
) -> String {
    ranged(&format!("{what} [default: {default}]"), range)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits;

    #[test]
    fn window_lists_parse_and_name_the_bad_entry() {
        let trades = window_list(limits::TRADE_WINDOW);
        assert_eq!(trades("1,5,20").unwrap(), [1, 5, 20]);
        assert_eq!(trades(" 1 , 2 ").unwrap(), [1, 2]);
        assert!(trades("").unwrap().is_empty());
        assert_eq!(
            trades("1,0").unwrap_err().to_string(),
            "entry 2: 0 is out of range: expected a whole number from 1 to 1048576"
        );
        assert_eq!(
            trades("1,x").unwrap_err().to_string(),
            "entry 2: `x` is not a whole number from 1 to 1048576"
        );
        assert_eq!(
            trades("1,2,3,4,5,6,7,8,9").unwrap_err().to_string(),
            "9 windows, at most 8 are allowed"
        );
        let ms = window_list_i64(limits::TIME_WINDOW_MS);
        assert_eq!(ms("1000,60000").unwrap(), [1000, 60000]);
        assert_eq!(
            ms("-5").unwrap_err().to_string(),
            "entry 1: -5 is out of range: expected a whole number from 1 to 604800000"
        );
        assert_eq!(
            whole_i64(limits::SESSION_GAP_MS)("0")
                .unwrap_err()
                .to_string(),
            "0 is out of range: expected a whole number from 1 to 4294967295"
        );
    }
}
