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

/// [`ranged`] with the default shown as clap shows defaults: `what [default: 20]. Valid: ...`.
pub fn ranged_default(
    what: &str,
    default: impl std::fmt::Display,
    range: impl std::fmt::Display,
) -> String {
    ranged(&format!("{what} [default: {default}]"), range)
}
