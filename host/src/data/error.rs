//! The error type of the data module.

use std::path::PathBuf;

/// Everything that can go wrong while loading trades or building, splitting a data set.
///
/// Parse errors name the source (the file path or the name given to [`parse_trades`](super::parse_trades)),
/// the 1-based line, the 1-based column and the column's header name where one applies.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file that failed.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A read error in the middle of the input (other than invalid UTF-8).
    #[error("{file}, line {line}: read error: {source}")]
    Read {
        /// Source name.
        file: String,
        /// 1-based line that was being read.
        line: usize,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A line is not valid UTF-8.
    #[error("{file}, line {line}: not valid UTF-8")]
    NotUtf8 {
        /// Source name.
        file: String,
        /// 1-based line.
        line: usize,
    },
    /// The input has no header line at all.
    #[error("{file}: empty input, expected a header line such as `DateTime,Price,Volume`")]
    Empty {
        /// Source name.
        file: String,
    },
    /// The input has a header but no data rows.
    #[error("{file}: header only, no trade rows")]
    NoRows {
        /// Source name.
        file: String,
    },
    /// A required column is missing from the header.
    #[error(
        "{file}, line 1: missing required column `{column}` (accepted names: {accepted}); header found: `{header}`"
    )]
    MissingColumn {
        /// Source name.
        file: String,
        /// The role of the missing column: `timestamp`, `price` or `size`.
        column: &'static str,
        /// The accepted header names for that role, comma-separated.
        accepted: &'static str,
        /// The header line as found.
        header: String,
    },
    /// Two header columns map to the same role.
    #[error(
        "{file}, line 1, column {column}: `{name}` is a second `{role}` column (the first is column {first})"
    )]
    DuplicateColumn {
        /// Source name.
        file: String,
        /// 1-based column of the second match.
        column: usize,
        /// 1-based column of the first match.
        first: usize,
        /// The header name of the second match.
        name: String,
        /// The role both columns map to.
        role: &'static str,
    },
    /// A data row has a different number of fields than the header.
    #[error("{file}, line {line}: expected {expected} fields as in the header, found {found}")]
    FieldCount {
        /// Source name.
        file: String,
        /// 1-based line.
        line: usize,
        /// Number of header columns.
        expected: usize,
        /// Number of fields on this line.
        found: usize,
    },
    /// A numeric field is not a number.
    #[error("{file}, line {line}, column {column} ({field}): `{text}` is not a number")]
    BadNumber {
        /// Source name.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The column's header name.
        field: String,
        /// The offending text.
        text: String,
    },
    /// A numeric field is NaN or infinite.
    #[error("{file}, line {line}, column {column} ({field}): `{text}` is not finite")]
    NotFinite {
        /// Source name.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The column's header name.
        field: String,
        /// The offending text.
        text: String,
    },
    /// A price is zero or negative.
    #[error("{file}, line {line}, column {column} ({field}): price {value} must be > 0")]
    NonPositivePrice {
        /// Source name.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The column's header name.
        field: String,
        /// The parsed price.
        value: f64,
    },
    /// A trade size is negative.
    #[error("{file}, line {line}, column {column} ({field}): size {value} must be >= 0")]
    NegativeSize {
        /// Source name.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The column's header name.
        field: String,
        /// The parsed size.
        value: f64,
    },
    /// A timestamp cannot be parsed or names an impossible date or time.
    #[error(
        "{file}, line {line}, column {column} ({field}): bad timestamp `{text}` (expected `YYYY-MM-DD HH:MM:SS[.fff]`, `YYYY-MM-DDTHH:MM:SS[.fff][Z]` or integer epoch milliseconds)"
    )]
    BadTimestamp {
        /// Source name.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The column's header name.
        field: String,
        /// The offending text.
        text: String,
    },
    /// A timestamp is earlier than the previous row's.
    #[error(
        "{file}, line {line}, column {column} ({field}): time goes backwards: `{text}` is {back_ms} ms before the previous row"
    )]
    TimeBackwards {
        /// Source name.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The column's header name.
        field: String,
        /// The offending text.
        text: String,
        /// How far back it goes, in milliseconds.
        back_ms: i64,
    },
    /// A side field is not one of `buy`, `sell`, `b`, `s` (any case) or empty.
    #[error(
        "{file}, line {line}, column {column} ({field}): bad side `{text}` (expected buy, sell, b, s or empty)"
    )]
    BadSide {
        /// Source name.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The column's header name.
        field: String,
        /// The offending text.
        text: String,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// Too few usable samples to build or split a data set.
    #[error("too few samples: {found} usable, at least {needed} needed ({context})")]
    TooFewSamples {
        /// Usable samples found.
        found: usize,
        /// Samples needed.
        needed: usize,
        /// What was being built and why samples were dropped.
        context: String,
    },
}
