//! The error type of the data module.
//!
//! Text from the input (a field, a header name, the header line) is shown through [`excerpt`]: control characters
//! escaped and at most [`crate::limits::EXCERPT_CHARS`] characters.

use std::path::PathBuf;

use crate::limits::excerpt;

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
    /// A data file named on the command line does not exist.
    #[error(
        "{}: no such file; pass --data an existing trade file (CSV or Parquet), or leave --data out for the \
         bundled ES ticks",
        path.display()
    )]
    MissingFile {
        /// The path given.
        path: PathBuf,
    },
    /// The bundled data embedded in the library does not inflate to the bytes it was built from.
    #[error(
        "the bundled ES ticks embedded in tickq are damaged ({reason}); reinstall tickq or pass a trade file with --data FILE"
    )]
    Bundled {
        /// What did not match.
        reason: String,
    },
    /// No cache directory could take the file [`default_data_path`](super::default_data_path) writes.
    #[error(
        "the bundled ES ticks could not be written to a cache file ({tried}); set XDG_CACHE_HOME to a writable \
         directory, or pass a trade file with --data FILE (csv = \"FILE\" in a pipeline's [data])"
    )]
    BundledCache {
        /// Each cache file tried, with its error.
        tried: String,
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
    /// A required column is missing from the header (no header line among the first lines names it).
    #[error(
        "{file}, line {line}: missing required column `{column}` (accepted names: {accepted}; or name it with --columns {column}=HEADER); header found: `{}`",
        excerpt(header)
    )]
    MissingColumn {
        /// Source name.
        file: String,
        /// 1-based line of the header (the first line tried, when the header was searched for).
        line: usize,
        /// The role of the missing column (`time`, `price`, `size`, ...).
        column: &'static str,
        /// The accepted header names for that role, comma-separated.
        accepted: String,
        /// The header line as found.
        header: String,
    },
    /// A column mapping names a header that is not in the file.
    #[error(
        "{file}, line {line}: the column mapping reads `{role}` from `{}`, but no column has that name; header found: `{}`",
        excerpt(name),
        excerpt(header)
    )]
    UnknownColumn {
        /// Source name.
        file: String,
        /// 1-based line of the header (the first line tried, when the header was searched for).
        line: usize,
        /// The mapped role.
        role: &'static str,
        /// The header name the mapping gives.
        name: String,
        /// The header line as found.
        header: String,
    },
    /// A column mapping names a role this kind of input does not read.
    #[error(
        "{file}: the column mapping names `{role}`, which this input does not read (it reads {wanted})"
    )]
    UnwantedRole {
        /// Source name.
        file: String,
        /// The mapped role.
        role: &'static str,
        /// The roles read, comma-separated.
        wanted: String,
    },
    /// Two header columns could fill the same role: never a silent pick.
    #[error(
        "{file}, line {line}: columns {first} (`{}`) and {column} (`{}`) could both be the `{role}` column; name the one to read, e.g. --columns {role}={} (`columns = {{ {role} = \"{}\" }}` under `[data.read]` in a pipeline)",
        excerpt(first_name),
        excerpt(name),
        excerpt(first_name),
        excerpt(first_name)
    )]
    DuplicateColumn {
        /// Source name.
        file: String,
        /// 1-based line of the header.
        line: usize,
        /// 1-based column of the second match.
        column: usize,
        /// 1-based column of the first match.
        first: usize,
        /// The header name of the first match (boxed, to keep the error small).
        first_name: Box<str>,
        /// The header name of the second match.
        name: String,
        /// The role both columns map to.
        role: &'static str,
    },
    /// A read option cannot be used (a struct built in code with a pattern jiff refuses, say).
    #[error("{file}: {source}")]
    ReadOption {
        /// Source name.
        file: String,
        /// The option and why.
        #[source]
        source: crate::options::read::ReadOptionError,
    },
    /// A Parquet file cannot be read (not Parquet, truncated, an unsupported codec).
    #[error("{file}: cannot read as Parquet: {reason}")]
    Parquet {
        /// Source name.
        file: String,
        /// The parquet crate's reason.
        reason: String,
    },
    /// A Parquet column has a type its role cannot take.
    #[error(
        "{file}, column `{}`: the `{role}` column is {found}, expected {expected}",
        excerpt(column)
    )]
    ParquetType {
        /// Source name.
        file: String,
        /// The column's name.
        column: String,
        /// The role it was to fill.
        role: &'static str,
        /// Its type.
        found: String,
        /// What the role takes.
        expected: &'static str,
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
    #[error(
        "{file}, line {line}, column {column} ({}): `{}` is not a number",
        excerpt(field),
        excerpt(text)
    )]
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
    #[error(
        "{file}, line {line}, column {column} ({}): `{}` is not finite",
        excerpt(field),
        excerpt(text)
    )]
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
    #[error(
        "{file}, line {line}, column {column} ({}): price {value} must be > 0",
        excerpt(field)
    )]
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
    #[error(
        "{file}, line {line}, column {column} ({}): size {value} must be >= 0",
        excerpt(field)
    )]
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
        "{file}, line {line}, column {column} ({}): bad timestamp `{}` (expected {expected})",
        excerpt(field),
        excerpt(text)
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
        /// What the time format expects (``the pattern `%d.%m.%Y` ``, ...; boxed, to keep the error small).
        expected: Box<str>,
    },
    /// A timestamp is earlier than the previous row's in an ascending file.
    #[error(
        "{file}, line {line}, column {column} ({}): time goes backwards: `{}` is {back_ms} ms before the previous row (line {previous_line})",
        excerpt(field),
        excerpt(text)
    )]
    TimeBackwards {
        /// Source name.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based line of the previous row.
        previous_line: usize,
        /// 1-based column.
        column: usize,
        /// The column's header name.
        field: String,
        /// The offending text.
        text: String,
        /// How far back it goes, in milliseconds.
        back_ms: i64,
    },
    /// A timestamp is later than the previous row's in a newest-first file.
    #[error(
        "{file}, line {line}, column {column} ({}): the file is newest-first, but `{}` is {ahead_ms} ms after the previous row (line {previous_line})",
        excerpt(field),
        excerpt(text)
    )]
    TimeForwards {
        /// Source name.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based line of the previous row.
        previous_line: usize,
        /// 1-based column.
        column: usize,
        /// The column's header name.
        field: String,
        /// The offending text.
        text: String,
        /// How far forward it goes, in milliseconds.
        ahead_ms: i64,
    },
    /// A side field is not one of `buy`, `sell`, `b`, `s` (any case) or empty.
    #[error(
        "{file}, line {line}, column {column} ({}): bad side `{}` (expected buy, sell, b, s or empty)",
        excerpt(field),
        excerpt(text)
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
    /// A feature setting is out of its range.
    #[error("invalid configuration: features.{field} must be {expected}, found {found}")]
    FeatureSetting {
        /// The setting, as `[data.features]` names it.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
        /// The value found.
        found: String,
    },
    /// A feature window list holds more windows than the core's spec can.
    #[error(
        "invalid configuration: features.{field} holds {found} windows, at most {max} are allowed"
    )]
    TooManyWindows {
        /// The list, as `[data.features]` names it.
        field: &'static str,
        /// Windows found.
        found: usize,
        /// The most a list may hold (`tickq_core::features::MAX_WINDOWS`).
        max: usize,
    },
    /// The core's feature spec refused the settings.
    #[error("invalid configuration: features: {source}")]
    FeatureSpec {
        /// The core's reason, naming the field.
        #[source]
        source: tickq_core::features::SpecError,
    },
    /// The core's feature engine could not start (its state did not match the spec).
    #[error("feature engine: {source}")]
    FeatureEngine {
        /// The core's reason.
        #[source]
        source: tickq_core::features::EngineError,
    },
    /// A trade's price or size is not a whole number of ticks or lots, or out of range.
    #[error(
        "trade {trade}: {quantity} {value} is not a whole number of {unit_name} = {unit} in the engine's range (prices 1 to 2^53 ticks, sizes 0 to 4294967295 lots)"
    )]
    OffGrid {
        /// 1-based number of the trade among the trades (the data row, not counting the header).
        trade: usize,
        /// `price` or `size`.
        quantity: &'static str,
        /// The value found.
        value: f64,
        /// `tick_size` or `size_unit`.
        unit_name: &'static str,
        /// Its value.
        unit: f64,
    },
    /// A bar's or quote's price or size is not a whole number of ticks or lots in range (see `docs/DATA.md`,
    /// "Bars and quotes").
    #[error(
        "{row_kind} {row}: {quantity} {value} is not a whole number of {unit_name} = {unit} (off the grid by more than 1e-6 of a unit, or out of range)"
    )]
    MarketOffGrid {
        /// `bar` or `quote`.
        row_kind: &'static str,
        /// 1-based number of the bar or quote among the rows.
        row: usize,
        /// The field: `open`, `high`, `low`, `close`, `volume`, `bid`, `ask`, `bid_size` or `ask_size`.
        quantity: &'static str,
        /// The value found.
        value: f64,
        /// `tick_size` or `size_unit`.
        unit_name: &'static str,
        /// Its value.
        unit: f64,
    },
    /// The core's feature engine refused a bar or a quote (prices out of order, a crossed or locked quote).
    #[error("{row_kind} {row}: {source}")]
    Market {
        /// `bar` or `quote`.
        row_kind: &'static str,
        /// 1-based number of the bar or quote among the rows.
        row: usize,
        /// The engine's reason.
        #[source]
        source: tickq_core::features::MarketError,
    },
    /// The core's feature engine refused a trade.
    #[error("trade {trade}: {source}")]
    Trade {
        /// 1-based number of the trade among the trades.
        trade: usize,
        /// The engine's reason.
        #[source]
        source: tickq_core::features::TradeError,
    },
    /// Two settings give the same feature.
    #[error("invalid configuration: feature `{0}` is configured twice")]
    DuplicateFeature(String),
    /// The split fractions leave no training or validation data, or no test data.
    #[error(
        "invalid configuration: split fractions need train > 0, validation > 0 and train + validation < 1, found train {train}, validation {validation}"
    )]
    SplitFractions {
        /// The training fraction.
        train: f64,
        /// The validation fraction.
        validation: f64,
    },
    /// The gap between the splits is shorter than a label's horizon plus a window, so labels would leak.
    #[error(
        "invalid configuration: split gap {gap} is below horizon + time_steps = {required}; use SplitConfig::for_dataset"
    )]
    SplitGap {
        /// The gap, in samples.
        gap: usize,
        /// The smallest leak-free gap.
        required: usize,
    },
    /// A setting is outside its range in [`crate::limits`].
    #[error("invalid configuration: {setting}: {source}")]
    Setting {
        /// The setting, as written in a config file (`labels.horizon`).
        setting: &'static str,
        /// The value and the range.
        #[source]
        source: crate::limits::RangeError,
    },
    /// A line is longer than [`crate::limits::MAX_LINE_BYTES`]: not a trade CSV, or one without line ends.
    #[error(
        "{file}, line {line}: longer than {limit} bytes, the most a trade CSV line may have (is this a trade CSV with line ends?)"
    )]
    LineTooLong {
        /// Source name.
        file: String,
        /// 1-based line.
        line: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// A field (or header name) is longer than [`crate::limits::MAX_FIELD_BYTES`].
    #[error(
        "{file}, line {line}, column {column}: the field `{}` is {len} bytes long, above {limit}, the most a field may have",
        excerpt(text)
    )]
    FieldTooLong {
        /// Source name.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The field.
        text: String,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The samples would need more memory than there is.
    #[error(transparent)]
    Memory(#[from] crate::limits::MemoryError),
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
