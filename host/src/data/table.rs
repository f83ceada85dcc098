//! The market data reader: a delimited text or Parquet file to columns picked by role.
//!
//! [`read_table`] is generic over what a file holds: the caller names the [`Role`]s it wants (required or
//! optional), and gets the time column as milliseconds since the Unix epoch (UTC), each numeric role as `f64`,
//! each text role (a trade's side) as text, and each row's line number, in time order. Trades
//! ([`load_trades_with`](super::load_trades_with)) are one caller; OHLCV bars and quotes read the same way with
//! [`BAR_ROLES`] and [`QUOTE_ROLES`].
//!
//! Text files go through the `csv` crate (`table_text.rs`), Parquet files through the `parquet` crate's row
//! reader (`table_parquet.rs`); both resolve the header with [`resolve_header`] and finish the rows with
//! [`RowSink`], so the column mapping, the time formats and the row-order rules are one implementation.
//! `docs/DATA.md`, "Reading files", is the user's description.

use std::path::Path;

use super::error::DataError;
use super::time::TimeParser;
use crate::options::read::{ColumnMap, FileFormat, ReadOptionError, ReadOptions};

crate::choice! {
    /// What a column of a market data file holds.
    pub enum Role {
        /// the row's time (always read)
        Time = "time",
        /// a trade's price
        Price = "price",
        /// a trade's size
        Size = "size",
        /// a trade's aggressor side (buy, sell, b, s or empty)
        Side = "side",
        /// a bar's first price
        Open = "open",
        /// a bar's highest price
        High = "high",
        /// a bar's lowest price
        Low = "low",
        /// a bar's last price
        Close = "close",
        /// a bar's traded volume
        Volume = "volume",
        /// the best bid price
        Bid = "bid",
        /// the best ask price
        Ask = "ask",
        /// the size at the best bid
        BidSize = "bid_size" | "bid-size",
        /// the size at the best ask
        AskSize = "ask_size" | "ask-size",
    }
}

/// What a role's values are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// The time, read with the time format.
    Time,
    /// A decimal number, finite.
    Number,
    /// Text, trimmed (a side).
    Text,
}

impl Role {
    /// What the role's values are.
    #[must_use]
    pub fn kind(self) -> ColumnKind {
        match self {
            Role::Time => ColumnKind::Time,
            Role::Side => ColumnKind::Text,
            _ => ColumnKind::Number,
        }
    }

    /// The header names tried for the role when the column mapping does not name it, compared after lowering
    /// ASCII case and writing spaces and dashes as `_`. A header also matches an alias followed by `_` and more
    /// (`volume_btc`, `Price USD`) unless the whole header is another role's alias (`bid_size` is not a `bid`).
    #[must_use]
    pub fn header_aliases(self) -> &'static [&'static str] {
        match self {
            Role::Time => &[
                "timestamp",
                "ts",
                "time",
                "date",
                "datetime",
                "date_time",
                "gmt_time",
                "local_time",
            ],
            Role::Price => &["price", "trade_price", "last_price"],
            Role::Size => &["size", "volume", "amount", "qty", "quantity"],
            Role::Side => &["side", "aggressor", "taker_side"],
            Role::Open => &["open"],
            Role::High => &["high"],
            Role::Low => &["low"],
            Role::Close => &["close", "last"],
            Role::Volume => &["volume", "vol"],
            Role::Bid => &["bid", "bid_price", "best_bid"],
            Role::Ask => &["ask", "ask_price", "best_ask", "offer"],
            Role::BidSize => &["bid_size", "bidsize", "bid_volume", "bidvolume", "bid_qty"],
            Role::AskSize => &["ask_size", "asksize", "ask_volume", "askvolume", "ask_qty"],
        }
    }

    /// The aliases as a message lists them.
    #[must_use]
    pub fn accepted(self) -> String {
        self.header_aliases().join(", ")
    }
}

/// A role the caller reads, required or optional.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    /// The role.
    pub role: Role,
    /// Whether a file without the column is an error.
    pub required: bool,
}

impl Wanted {
    /// A required role.
    #[must_use]
    pub const fn required(role: Role) -> Wanted {
        Wanted {
            role,
            required: true,
        }
    }

    /// An optional role.
    #[must_use]
    pub const fn optional(role: Role) -> Wanted {
        Wanted {
            role,
            required: false,
        }
    }
}

/// The roles of a trade file: time, price, size and an optional side.
pub const TRADE_ROLES: &[Wanted] = &[
    Wanted::required(Role::Time),
    Wanted::required(Role::Price),
    Wanted::required(Role::Size),
    Wanted::optional(Role::Side),
];

/// The roles of an OHLCV bar file.
pub const BAR_ROLES: &[Wanted] = &[
    Wanted::required(Role::Time),
    Wanted::required(Role::Open),
    Wanted::required(Role::High),
    Wanted::required(Role::Low),
    Wanted::required(Role::Close),
    Wanted::required(Role::Volume),
];

/// The roles of a top-of-book quote file.
pub const QUOTE_ROLES: &[Wanted] = &[
    Wanted::required(Role::Time),
    Wanted::required(Role::Bid),
    Wanted::required(Role::Ask),
    Wanted::required(Role::BidSize),
    Wanted::required(Role::AskSize),
];

/// One column's values, one per row.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnValues {
    /// A numeric role's values.
    Numbers(Vec<f64>),
    /// A text role's values, trimmed.
    Text(Vec<String>),
}

/// A column found in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct TableColumn {
    /// The role it fills.
    pub role: Role,
    /// Its header name as written.
    pub header: String,
    /// Its 1-based column number.
    pub column: usize,
    /// Its values.
    pub values: ColumnValues,
}

/// What the reader noticed and did without failing, for the caller to show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadNotes {
    /// The file was newest-first and its rows were reversed.
    pub reversed: bool,
    /// Rows equal in every column read (time included) to the row before them; they are kept.
    pub duplicates: usize,
    /// The lines of the first [`ReadNotes::MAX_LINES`] duplicates.
    pub duplicate_lines: Vec<usize>,
}

impl ReadNotes {
    /// How many duplicate lines are kept for the message.
    pub const MAX_LINES: usize = 5;

    /// One line of text per note, naming `source`: what the `tickq` command prints.
    #[must_use]
    pub fn messages(&self, source: &str) -> Vec<String> {
        let mut out = Vec::new();
        if self.reversed {
            out.push(format!(
                "note: {source} is newest-first; its rows were reversed into time order"
            ));
        }
        if self.duplicates > 0 {
            let lines: Vec<String> = self
                .duplicate_lines
                .iter()
                .map(ToString::to_string)
                .collect();
            let more = if self.duplicates > self.duplicate_lines.len() {
                ", ..."
            } else {
                ""
            };
            out.push(format!(
                "note: {source}: {} row(s) repeat the row before them exactly (line(s) {}{more}); they are kept",
                self.duplicates,
                lines.join(", ")
            ));
        }
        out
    }
}

/// The columns read from a file, rows in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The file, as messages name it.
    pub source: String,
    /// The time column's header name.
    pub time_header: String,
    /// The time column's 1-based number.
    pub time_column: usize,
    /// Each row's time in milliseconds since the Unix epoch, UTC; never decreasing.
    pub times: Vec<i64>,
    /// Each row's 1-based line in a text file (its row, counting from 1, in a Parquet file).
    pub lines: Vec<usize>,
    /// The other wanted roles that were found, in the order asked for.
    pub columns: Vec<TableColumn>,
    /// What the reader noticed.
    pub notes: ReadNotes,
}

impl Table {
    /// The number of rows.
    #[must_use]
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// Whether there are no rows (never true of a table [`read_table`] returns).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// The column of `role`, if it was wanted and found.
    #[must_use]
    pub fn column(&self, role: Role) -> Option<&TableColumn> {
        self.columns.iter().find(|c| c.role == role)
    }

    /// The values of a numeric role.
    #[must_use]
    pub fn numbers(&self, role: Role) -> Option<&[f64]> {
        match &self.column(role)?.values {
            ColumnValues::Numbers(v) => Some(v),
            ColumnValues::Text(_) => None,
        }
    }

    /// The values of a text role.
    #[must_use]
    pub fn text(&self, role: Role) -> Option<&[String]> {
        match &self.column(role)?.values {
            ColumnValues::Text(v) => Some(v),
            ColumnValues::Numbers(_) => None,
        }
    }
}

/// Reads the columns `wanted` from the file at `path` as `options` say: delimited text or Parquet by
/// [`ReadOptions::format_of`]. The time column is always read and required, whether or not `wanted` lists it.
///
/// # Errors
///
/// [`DataError::Io`] when the file cannot be opened, [`DataError::ReadOption`] for options that cannot be used,
/// and every error of [`read_table_from`] or of the Parquet reader ([`DataError::Parquet`],
/// [`DataError::ParquetType`], and the row errors), each naming the file, the line (or row) and the column.
pub fn read_table(
    path: &Path,
    options: &ReadOptions,
    wanted: &[Wanted],
) -> Result<Table, DataError> {
    let source = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    match options.format_of(path) {
        FileFormat::Parquet => super::table_parquet::read(file, &source, options, wanted),
        FileFormat::Auto | FileFormat::Csv => read_table_from(
            std::io::BufReader::with_capacity(1 << 16, file),
            &source,
            options,
            wanted,
        ),
    }
}

/// [`read_table`] for delimited text already open: `source` names it in messages.
///
/// # Errors
///
/// Every error names `source` and the 1-based line; field errors also the 1-based column and its header:
/// [`DataError::Empty`], [`DataError::NoRows`], [`DataError::MissingColumn`], [`DataError::UnknownColumn`],
/// [`DataError::UnwantedRole`], [`DataError::DuplicateColumn`], [`DataError::FieldCount`],
/// [`DataError::BadNumber`], [`DataError::NotFinite`], [`DataError::BadTimestamp`], [`DataError::TimeBackwards`],
/// [`DataError::TimeForwards`], [`DataError::NotUtf8`], [`DataError::Read`], [`DataError::LineTooLong`],
/// [`DataError::FieldTooLong`] and [`DataError::ReadOption`].
pub fn read_table_from(
    reader: impl std::io::BufRead,
    source: &str,
    options: &ReadOptions,
    wanted: &[Wanted],
) -> Result<Table, DataError> {
    super::table_text::read(reader, source, options, wanted)
}

/// The rows of a file in chunks of at most `rows` rows, for inputs too large to hold (the sample store,
/// `data::store`): the same header resolution, parsing and error messages as [`read_table`], one chunk at a time.
///
/// A chunked file must be oldest-first: a newest-first file cannot be reversed without holding it, so its first
/// step back is the [`DataError::TimeBackwards`] that [`read_table`] gives a single bad row. Parquet files are
/// read whole and handed out in chunks. Each chunk is a [`Table`] whose notes count the repeated rows within it.
pub struct TableChunks {
    inner: ChunkInput,
    rows: usize,
    /// The previous chunk's last time and line, to check the order across chunks.
    last: Option<(i64, usize, String)>,
}

type TextInput = (
    super::table_text::TextRows<std::io::BufReader<std::fs::File>>,
    RowSink,
);

enum ChunkInput {
    Text(Box<TextInput>),
    Whole(std::collections::VecDeque<Table>),
    Done,
}

impl std::fmt::Debug for TableChunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableChunks")
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

/// Opens `path` for [`TableChunks`] of at most `rows` rows (at least 1) of the roles `wanted`.
///
/// # Errors
///
/// The errors of [`read_table`] that the header gives (opening the file, a missing column, ...); the row errors
/// come from the chunks.
pub fn read_table_chunks(
    path: &Path,
    options: &ReadOptions,
    wanted: &[Wanted],
    rows: usize,
) -> Result<TableChunks, DataError> {
    let rows = rows.max(1);
    let inner = match options.format_of(path) {
        FileFormat::Parquet => {
            let table = read_table(path, options, wanted)?;
            ChunkInput::Whole(split_table(table, rows))
        }
        FileFormat::Auto | FileFormat::Csv => {
            let source = path.display().to_string();
            let file = std::fs::File::open(path).map_err(|source| DataError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            let (text, sink) = super::table_text::TextRows::open(
                std::io::BufReader::with_capacity(1 << 16, file),
                &source,
                options,
                wanted,
            )?;
            ChunkInput::Text(Box::new((text, sink)))
        }
    };
    Ok(TableChunks {
        inner,
        rows,
        last: None,
    })
}

/// A table cut into tables of at most `rows` rows (the notes stay with the first).
fn split_table(table: Table, rows: usize) -> std::collections::VecDeque<Table> {
    let mut out = std::collections::VecDeque::new();
    let n = table.len();
    let mut start = 0;
    while start < n {
        let end = (start + rows).min(n);
        out.push_back(Table {
            source: table.source.clone(),
            time_header: table.time_header.clone(),
            time_column: table.time_column,
            times: table.times[start..end].to_vec(),
            lines: table.lines[start..end].to_vec(),
            columns: table
                .columns
                .iter()
                .map(|c| TableColumn {
                    role: c.role,
                    header: c.header.clone(),
                    column: c.column,
                    values: match &c.values {
                        ColumnValues::Numbers(v) => ColumnValues::Numbers(v[start..end].to_vec()),
                        ColumnValues::Text(v) => ColumnValues::Text(v[start..end].to_vec()),
                    },
                })
                .collect(),
            notes: if start == 0 {
                table.notes.clone()
            } else {
                ReadNotes::default()
            },
        });
        start = end;
    }
    out
}

impl TableChunks {
    fn next_text(&mut self) -> Result<Option<Table>, DataError> {
        let ChunkInput::Text(input) = &mut self.inner else {
            return Ok(None);
        };
        let (text, template) = &mut **input;
        let mut sink = template.empty_like();
        let mut got = 0;
        while got < self.rows && text.next_into(&mut sink)? {
            got += 1;
        }
        if got == 0 {
            if self.last.is_none() {
                // No rows at all: the error of a whole read.
                return sink.finish().map(Some);
            }
            return Ok(None);
        }
        // Oldest-first only: a step back, within the chunk or from the previous chunk's last row, is an error.
        let mut prev = self.last.take();
        for (i, (&time, &line)) in sink.times.iter().zip(&sink.lines).enumerate() {
            if let Some((prev_time, prev_line, _)) = &prev
                && time < *prev_time
            {
                return Err(DataError::TimeBackwards {
                    file: sink.source.clone(),
                    line,
                    previous_line: *prev_line,
                    column: sink.time_column,
                    field: sink.time_header.clone(),
                    text: sink.time_texts.get(i).cloned().unwrap_or_default(),
                    back_ms: prev_time.abs_diff(time).min(i64::MAX as u64) as i64,
                });
            }
            prev = Some((time, line, String::new()));
        }
        self.last = prev;
        sink.finish().map(Some)
    }
}

impl Iterator for TableChunks {
    type Item = Result<Table, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = match &mut self.inner {
            ChunkInput::Text(..) => self.next_text().transpose(),
            ChunkInput::Whole(tables) => tables.pop_front().map(Ok),
            ChunkInput::Done => None,
        };
        if !matches!(item, Some(Ok(_))) {
            self.inner = ChunkInput::Done;
        }
        item
    }
}

/// The roles to read: `wanted` with the time first (added when absent), each role once.
pub(crate) fn with_time(wanted: &[Wanted]) -> Vec<Wanted> {
    let mut out = vec![Wanted::required(Role::Time)];
    for w in wanted {
        if !out.iter().any(|o| o.role == w.role) {
            out.push(*w);
        }
    }
    out
}

/// The time parser the options describe.
pub(crate) fn time_parser(options: &ReadOptions, source: &str) -> Result<TimeParser, DataError> {
    let wrap = |e: ReadOptionError| DataError::ReadOption {
        file: source.to_owned(),
        source: e,
    };
    let zone = options
        .time_zone
        .as_ref()
        .map(|z| z.resolve())
        .transpose()
        .map_err(wrap)?;
    TimeParser::new(&options.time_format.clone().unwrap_or_default(), zone).map_err(wrap)
}

/// The 0-based column of each found role but the time, and its empty [`TableColumn`], in `roles` order.
pub(crate) fn table_columns(
    roles: &[Wanted],
    found: &[Option<usize>],
    names: &[String],
) -> (Vec<usize>, Vec<TableColumn>) {
    let mut indices = Vec::new();
    let mut columns = Vec::new();
    for (w, c) in roles.iter().zip(found).skip(1) {
        if let Some(c) = *c {
            indices.push(c);
            columns.push(TableColumn {
                role: w.role,
                header: names[c].trim().to_owned(),
                column: c + 1,
                values: match w.role.kind() {
                    ColumnKind::Text => ColumnValues::Text(Vec::new()),
                    ColumnKind::Number | ColumnKind::Time => ColumnValues::Numbers(Vec::new()),
                },
            });
        }
    }
    (indices, columns)
}

/// A header name as aliases compare it: trimmed, ASCII lowercase, spaces and dashes as `_`.
fn normalize(name: &str) -> String {
    name.trim()
        .chars()
        .map(|c| match c {
            ' ' | '-' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Whether the normalized header `name` can be `role` by its aliases.
fn alias_match(role: Role, name: &str) -> bool {
    role.header_aliases().iter().any(|alias| {
        name == *alias
            || (name.len() > alias.len() + 1
                && name.starts_with(alias)
                && name.as_bytes()[alias.len()] == b'_'
                && !Role::ALL
                    .iter()
                    .any(|other| *other != role && other.header_aliases().contains(&name)))
    })
}

/// Why a header line is not the header.
pub(crate) enum HeaderMiss {
    /// A required role has no column.
    Missing(Role),
    /// A mapped header name is not there.
    Unknown(Role, String),
}

impl HeaderMiss {
    /// How far resolving got: the roles before the missing one (mapped roles come first, so a mapping miss is 0).
    pub(crate) fn progress(&self, roles: &[Wanted]) -> usize {
        match self {
            HeaderMiss::Missing(role) => roles.iter().position(|w| w.role == *role).unwrap_or(0),
            HeaderMiss::Unknown(..) => 0,
        }
    }
}

/// The 0-based column of each role of `roles` (`None`: an optional role not found), or why `names` is not the
/// header. Two candidates for one role are an error right away ([`DataError::DuplicateColumn`]), never a pick.
pub(crate) fn resolve_header(
    names: &[String],
    roles: &[Wanted],
    map: Option<&ColumnMap>,
    source: &str,
    line: usize,
) -> Result<Result<Vec<Option<usize>>, HeaderMiss>, DataError> {
    let normalized: Vec<String> = names.iter().map(|n| normalize(n)).collect();
    let mut taken = vec![false; names.len()];
    let mut found: Vec<Option<usize>> = vec![None; roles.len()];
    if let Some(map) = map {
        for (role, header) in map.iter() {
            if !roles.iter().any(|w| w.role == role) {
                return Err(DataError::UnwantedRole {
                    file: source.to_owned(),
                    role: role.name(),
                    wanted: roles
                        .iter()
                        .map(|w| w.role.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            let exact: Vec<usize> = (0..names.len())
                .filter(|&c| names[c].trim() == header)
                .collect();
            let matches = if exact.is_empty() {
                (0..names.len())
                    .filter(|&c| names[c].trim().eq_ignore_ascii_case(header))
                    .collect()
            } else {
                exact
            };
            match matches[..] {
                [] => return Ok(Err(HeaderMiss::Unknown(role, header.to_owned()))),
                [c] => {
                    let slot = roles.iter().position(|w| w.role == role).unwrap_or(0);
                    found[slot] = Some(c);
                    taken[c] = true;
                }
                [a, b, ..] => return Err(duplicate(names, role, a, b, source, line)),
            }
        }
    }
    for (slot, w) in roles.iter().enumerate() {
        if found[slot].is_some() || map.and_then(|m| m.get(w.role)).is_some() {
            continue;
        }
        let candidates: Vec<usize> = (0..names.len())
            .filter(|&c| !taken[c] && alias_match(w.role, &normalized[c]))
            .collect();
        match candidates[..] {
            [] if w.required => return Ok(Err(HeaderMiss::Missing(w.role))),
            [] => {}
            [c] => found[slot] = Some(c),
            [a, b, ..] => return Err(duplicate(names, w.role, a, b, source, line)),
        }
    }
    Ok(Ok(found))
}

fn duplicate(
    names: &[String],
    role: Role,
    first: usize,
    second: usize,
    source: &str,
    line: usize,
) -> DataError {
    DataError::DuplicateColumn {
        file: source.to_owned(),
        line,
        column: second + 1,
        first: first + 1,
        first_name: names[first].trim().into(),
        name: names[second].trim().to_owned(),
        role: role.name(),
    }
}

/// The error for a header line that is not the header.
pub(crate) fn header_error(
    miss: HeaderMiss,
    source: &str,
    line: usize,
    header: String,
) -> DataError {
    match miss {
        HeaderMiss::Missing(role) => DataError::MissingColumn {
            file: source.to_owned(),
            line,
            column: role.name(),
            accepted: role.accepted(),
            header,
        },
        HeaderMiss::Unknown(role, name) => DataError::UnknownColumn {
            file: source.to_owned(),
            line,
            role: role.name(),
            name,
            header,
        },
    }
}

/// The first step against the file's direction, for the error.
#[derive(Debug, Clone)]
struct OrderBreak {
    line: usize,
    previous_line: usize,
    text: String,
    by_ms: i64,
}

/// Collects rows and applies the row-order rules: ascending, or newest-first (reversed), duplicates noted.
pub(crate) struct RowSink {
    source: String,
    time_header: String,
    time_column: usize,
    pub(crate) times: Vec<i64>,
    pub(crate) lines: Vec<usize>,
    pub(crate) columns: Vec<TableColumn>,
    /// The first step back and the first step forward.
    back: Option<OrderBreak>,
    forward: Option<OrderBreak>,
    /// Steps back (a later time is earlier).
    decreases: usize,
    /// The direction of the first change of time: `Some(true)` for up.
    first_up: Option<bool>,
    /// Each row's time as written, kept only by a chunk's sink ([`RowSink::empty_like`]) for its order error.
    time_texts: Vec<String>,
    keep_texts: bool,
}

impl RowSink {
    /// A sink for the columns `columns` (their values empty), time in column `time_column` (1-based).
    pub(crate) fn new(
        source: &str,
        time_header: String,
        time_column: usize,
        columns: Vec<TableColumn>,
    ) -> RowSink {
        RowSink {
            source: source.to_owned(),
            time_header,
            time_column,
            times: Vec::new(),
            lines: Vec::new(),
            columns,
            back: None,
            forward: None,
            decreases: 0,
            first_up: None,
            time_texts: Vec::new(),
            keep_texts: false,
        }
    }

    /// A sink for the same columns with no rows, which keeps each row's time text (a chunk of [`TableChunks`]).
    pub(crate) fn empty_like(&self) -> RowSink {
        let columns = self
            .columns
            .iter()
            .map(|c| TableColumn {
                values: match &c.values {
                    ColumnValues::Numbers(_) => ColumnValues::Numbers(Vec::new()),
                    ColumnValues::Text(_) => ColumnValues::Text(Vec::new()),
                },
                ..c.clone()
            })
            .collect();
        let mut sink = RowSink::new(
            &self.source,
            self.time_header.clone(),
            self.time_column,
            columns,
        );
        sink.keep_texts = true;
        sink
    }

    /// Records a row's time (its values are pushed to [`RowSink::columns`] by the caller); `text` is the time as
    /// written, kept for the message of an order error.
    pub(crate) fn push_time(&mut self, time: i64, line: usize, text: &str) {
        if let (Some(&prev), Some(&prev_line)) = (self.times.last(), self.lines.last())
            && time != prev
        {
            let up = time > prev;
            self.first_up.get_or_insert(up);
            let step = || OrderBreak {
                line,
                previous_line: prev_line,
                text: text.to_owned(),
                by_ms: prev.abs_diff(time).min(i64::MAX as u64) as i64,
            };
            if up {
                if self.forward.is_none() {
                    self.forward = Some(step());
                }
            } else {
                self.decreases += 1;
                if self.back.is_none() {
                    self.back = Some(step());
                }
            }
        }
        self.times.push(time);
        self.lines.push(line);
        if self.keep_texts {
            self.time_texts.push(text.to_owned());
        }
    }

    /// The table, after the order rules: an ascending file as it is; a file whose times never rise and fall at
    /// least twice reversed (one step back is as likely one bad row as a reversed file, and is an error); any
    /// other step against the file's direction an error naming its line and the line before.
    pub(crate) fn finish(mut self) -> Result<Table, DataError> {
        if self.times.is_empty() {
            return Err(DataError::NoRows { file: self.source });
        }
        let newest_first = self.first_up == Some(false) && self.decreases >= 2;
        if newest_first {
            if let Some(b) = self.forward.take() {
                return Err(DataError::TimeForwards {
                    file: self.source,
                    line: b.line,
                    previous_line: b.previous_line,
                    column: self.time_column,
                    field: self.time_header,
                    text: b.text,
                    ahead_ms: b.by_ms,
                });
            }
        } else if let Some(b) = self.back.take() {
            return Err(DataError::TimeBackwards {
                file: self.source,
                line: b.line,
                previous_line: b.previous_line,
                column: self.time_column,
                field: self.time_header,
                text: b.text,
                back_ms: b.by_ms,
            });
        }
        if newest_first {
            self.times.reverse();
            self.lines.reverse();
            for c in &mut self.columns {
                match &mut c.values {
                    ColumnValues::Numbers(v) => v.reverse(),
                    ColumnValues::Text(v) => v.reverse(),
                }
            }
        }
        let mut notes = ReadNotes {
            reversed: newest_first,
            ..ReadNotes::default()
        };
        for i in 1..self.times.len() {
            let same = self.times[i] == self.times[i - 1]
                && self.columns.iter().all(|c| match &c.values {
                    // Bit equality: a repeated row repeats its text, so its numbers parse to the same bits.
                    ColumnValues::Numbers(v) => v[i].to_bits() == v[i - 1].to_bits(),
                    ColumnValues::Text(v) => v[i] == v[i - 1],
                });
            if same {
                notes.duplicates += 1;
                if notes.duplicate_lines.len() < ReadNotes::MAX_LINES {
                    notes.duplicate_lines.push(self.lines[i]);
                }
            }
        }
        if newest_first {
            notes.duplicate_lines.sort_unstable();
        }
        Ok(Table {
            source: self.source,
            time_header: self.time_header,
            time_column: self.time_column,
            times: self.times,
            lines: self.lines,
            columns: self.columns,
            notes,
        })
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
