//! [`BookError`]: everything that can go wrong while reading an order-by-order file or replaying it.
//!
//! Text from the input is shown through [`excerpt`]: control characters escaped, at most
//! [`crate::limits::EXCERPT_CHARS`] characters.

use std::path::PathBuf;

use crate::limits::excerpt;

/// An error of [`load_book`](super::load_book) or [`replay_book`](super::replay_book).
///
/// Errors in a file name the file (its path, or the name given to the reader), the 1-based line (of the
/// decompressed text for a `.gz` file), and for a field its 1-based column, header name and text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BookError {
    /// The file could not be opened.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file that failed.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// Reading (or decompressing) failed in the middle of the file.
    #[error("{file}, line {line}: read error: {source}")]
    Read {
        /// Source name.
        file: String,
        /// 1-based line being read.
        line: u64,
        /// The underlying I/O error (a corrupt gzip stream shows up here).
        source: std::io::Error,
    },
    /// A line is longer than [`crate::limits::MAX_LINE_BYTES`].
    #[error(
        "{file}, line {line}: longer than {limit} bytes, the most a line may have (is this a CSV file with line ends?)"
    )]
    LineTooLong {
        /// Source name.
        file: String,
        /// 1-based line.
        line: u64,
        /// The limit in bytes.
        limit: usize,
    },
    /// The CSV reader refused the input for another reason.
    #[error("{file}, line {line}: {message}")]
    Csv {
        /// Source name.
        file: String,
        /// 1-based line.
        line: u64,
        /// The CSV reader's message.
        message: String,
    },
    /// The file has no header line.
    #[error("{file}: empty input, expected a header line such as `{expected}`")]
    Empty {
        /// Source name.
        file: String,
        /// An example header.
        expected: &'static str,
    },
    /// The orders file has a header but no rows.
    #[error("{file}: header only, no order rows")]
    NoRows {
        /// Source name.
        file: String,
    },
    /// A required column is missing from the header.
    #[error(
        "{file}, line 1: missing required column `{column}` (accepted names: {accepted}); header found: `{}`",
        excerpt(header)
    )]
    MissingColumn {
        /// Source name.
        file: String,
        /// The role of the missing column (`id`, `time`, `price` ...).
        column: &'static str,
        /// The accepted header names, comma-separated.
        accepted: &'static str,
        /// The header line as found, fields joined by commas.
        header: String,
    },
    /// Two header columns map to the same role.
    #[error(
        "{file}, line 1, column {column}: `{}` is a second `{role}` column (the first is column {first})",
        excerpt(name)
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
        /// The role both map to.
        role: &'static str,
    },
    /// A row has a different number of fields than the header.
    #[error("{file}, line {line}: expected {expected} fields as in the header, found {found}")]
    FieldCount {
        /// Source name.
        file: String,
        /// 1-based line.
        line: u64,
        /// Header fields.
        expected: usize,
        /// Fields on this line.
        found: usize,
    },
    /// A field does not hold what its column needs.
    #[error(
        "{file}, line {line}, column {column} ({}): `{}` is not {expected}",
        excerpt(field),
        excerpt(text)
    )]
    BadField {
        /// Source name.
        file: String,
        /// 1-based line.
        line: u64,
        /// 1-based column.
        column: usize,
        /// The column's header name.
        field: String,
        /// The offending text.
        text: String,
        /// What the column needs, in words (`a decimal number`, `created, changed or deleted` ...).
        expected: &'static str,
    },
    /// A price or size is not a whole number of ticks or lots.
    #[error(
        "{file}, line {line}, column {column} ({}): `{}` is not a whole number of {unit_name} = {unit}",
        excerpt(field),
        excerpt(text)
    )]
    OffGrid {
        /// Source name.
        file: String,
        /// 1-based line.
        line: u64,
        /// 1-based column.
        column: usize,
        /// The column's header name.
        field: String,
        /// The offending text.
        text: String,
        /// The grid: `tick_size` or `lot_size`.
        unit_name: BookGrid,
        /// Its value, as decimal text.
        unit: String,
    },
    /// A price or size is a whole number of units, but outside the range ticks (`i64`) or lots (`u64`, not
    /// negative) take.
    #[error(
        "{file}, line {line}, column {column} ({}): `{}` is outside the range of {what}",
        excerpt(field),
        excerpt(text)
    )]
    OutOfRange {
        /// Source name.
        file: String,
        /// 1-based line.
        line: u64,
        /// 1-based column.
        column: usize,
        /// The column's header name.
        field: String,
        /// The offending text.
        text: String,
        /// The range in words.
        what: &'static str,
    },
    /// A row's time is earlier than the previous row's.
    #[error(
        "{file}, line {line}, column {column} ({}): time goes backwards: {time_ms} is {back_ms} ms before the previous row's",
        excerpt(field)
    )]
    TimeBackwards {
        /// Source name.
        file: String,
        /// 1-based line.
        line: u64,
        /// 1-based column.
        column: usize,
        /// The column's header name.
        field: String,
        /// The row's time, epoch milliseconds.
        time_ms: i64,
        /// How far back it goes.
        back_ms: i64,
    },
    /// A change or delete names an order that is not in the book.
    #[error(
        "{file}, line {line}: {action} of order {id}, which is not in the book (never created, or already deleted)"
    )]
    UnknownOrder {
        /// Source name.
        file: String,
        /// 1-based line.
        line: u64,
        /// The order id.
        id: u64,
        /// `change` or `delete`.
        action: &'static str,
    },
    /// A create names an order that is already in the book.
    #[error(
        "{file}, line {line}: order {id} is created again; it is in the book since line {first}"
    )]
    DuplicateCreate {
        /// Source name.
        file: String,
        /// 1-based line.
        line: u64,
        /// The order id.
        id: u64,
        /// The line that created it.
        first: u64,
    },
    /// A change moves an order to the other side of the book.
    #[error(
        "{file}, line {line}: change of order {id} moves it from the {from} side to the {to} side"
    )]
    SideChanged {
        /// Source name.
        file: String,
        /// 1-based line.
        line: u64,
        /// The order id.
        id: u64,
        /// The side it rests on (`bid` or `ask`).
        from: &'static str,
        /// The side the row gives.
        to: &'static str,
    },
    /// The book read after the last event of a time is crossed or locked.
    #[error(
        "{file}, line {line}: the book at {time_ms} ms is crossed or locked after the last event of that time: best bid {bid} ticks >= best ask {ask} ticks"
    )]
    Crossed {
        /// Source name.
        file: String,
        /// 1-based line of the last event of that time.
        line: u64,
        /// The event time, epoch milliseconds.
        time_ms: i64,
        /// Best bid price in ticks.
        bid: i64,
        /// Best ask price in ticks.
        ask: i64,
    },
    /// The book would hold more orders than [`BookOptions::max_orders`](super::BookOptions::max_orders).
    #[error(
        "{file}, line {line}: the book would hold more than {limit} resting orders (the max_orders limit)"
    )]
    TooManyOrders {
        /// Source name.
        file: String,
        /// 1-based line of the create that would pass the limit.
        line: u64,
        /// The limit.
        limit: usize,
    },
    /// A setting is outside its range.
    #[error("invalid book setting: {setting}: {source}")]
    Setting {
        /// The setting (`levels`, `max_orders`).
        setting: &'static str,
        /// The value and the range.
        #[source]
        source: crate::limits::RangeError,
    },
    /// A tick or lot size is not a positive decimal number.
    #[error(
        "invalid book setting: {setting} must be a positive decimal number, found `{}`",
        excerpt(text)
    )]
    BadUnit {
        /// `tick_size` or `lot_size`.
        setting: &'static str,
        /// The text given.
        text: String,
    },
    /// The rows, the events or the order map would need more memory than there is.
    #[error(transparent)]
    Memory(#[from] crate::limits::MemoryError),
}

/// Which grid a value is measured on, as the settings name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookGrid {
    /// Prices, in ticks of `tick_size`.
    Tick,
    /// Sizes, in lots of `lot_size`.
    Lot,
}

impl std::fmt::Display for BookGrid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BookGrid::Tick => "tick_size",
            BookGrid::Lot => "lot_size",
        })
    }
}
