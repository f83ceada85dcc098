//! Delimited text for [`read_table`](super::read_table), through the `csv` crate: RFC 4180 quoting (a field in
//! double quotes may hold the delimiter, a doubled quote and line ends), any one-byte delimiter (detected from the
//! first lines unless given), `\n` or `\r\n` line ends, a UTF-8 byte-order mark, whitespace around fields, blank
//! lines, and preamble lines before the header (searched for, or skipped with `skip_rows`).
//!
//! Lines stay bounded: [`LineLimit`] refuses a line over [`MAX_LINE_BYTES`] as the bytes arrive, so an endless
//! input without line ends (`/dev/zero`) is refused after 64 KiB rather than read into memory.

use std::io::{BufRead, Read};

use csv::{ReaderBuilder, StringRecord};

use super::error::DataError;
use super::table::{
    ColumnValues, RowSink, Table, Wanted, header_error, resolve_header, table_columns, time_parser,
    with_time,
};
use super::time::TimeParser;
use crate::limits::{MAX_FIELD_BYTES, MAX_LINE_BYTES};
use crate::options::read::{Delimiter, ReadOptions};

/// Lines (records) searched for the header when `skip_rows` is not given.
pub const HEADER_SEARCH_LINES: usize = 16;

/// Lines looked at to detect the delimiter.
const DETECT_LINES: usize = 16;

/// Counts lines as the bytes pass and refuses one longer than [`MAX_LINE_BYTES`] (without its line end).
struct LineLimit<R> {
    inner: R,
    /// Line ends seen.
    lines: usize,
    /// Bytes seen.
    offset: u64,
    /// The lines ended but not yet passed by [`LineLimit::line_of`]: the offset of each line end and whether the
    /// line is empty (nothing before its `\n` or `\r\n`).
    ahead: std::collections::VecDeque<(u64, bool)>,
    /// Line ends passed by [`LineLimit::line_of`].
    passed: usize,
    /// Bytes since the last line end.
    run: usize,
    /// Whether the last byte seen is `\r`.
    last_cr: bool,
    /// The 1-based line found too long.
    too_long: Option<usize>,
}

impl<R: Read> LineLimit<R> {
    fn new(inner: R) -> Self {
        LineLimit {
            inner,
            lines: 0,
            offset: 0,
            ahead: std::collections::VecDeque::new(),
            passed: 0,
            run: 0,
            last_cr: false,
            too_long: None,
        }
    }

    /// The 1-based line of a record whose parse began at byte `offset`, past the blank lines the `csv` crate
    /// skipped there; offsets must not decrease from call to call (records arrive in order), so only the line
    /// ends read ahead are kept.
    fn line_of(&mut self, mut offset: u64) -> usize {
        while let Some(&(end, empty)) = self.ahead.front() {
            // A line end before the record; one at `offset` (the `\n` of a `\r\n` the crate ended the previous
            // record at, or a blank line); or a blank `\r\n` line starting at `offset`.
            let before = end <= offset || (empty && end == offset + 1);
            if !before {
                break;
            }
            self.ahead.pop_front();
            self.passed += 1;
            offset = offset.max(end + 1);
        }
        self.passed + 1
    }

    fn refuse(&mut self) -> std::io::Error {
        self.too_long = Some(self.lines + 1);
        std::io::Error::other("line too long")
    }
}

impl<R: Read> Read for LineLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let bytes = &buf[..n];
        if n == 0 {
            if self.run - usize::from(self.last_cr) > MAX_LINE_BYTES {
                return Err(self.refuse());
            }
            return Ok(0);
        }
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', bytes) {
            let len = self.run + (end - start);
            let cr = if end > start {
                bytes[end - 1] == b'\r'
            } else {
                self.last_cr
            };
            let content = len - usize::from(cr && len > 0);
            if content > MAX_LINE_BYTES {
                return Err(self.refuse());
            }
            self.lines += 1;
            self.ahead
                .push_back((self.offset + end as u64, content == 0));
            self.run = 0;
            self.last_cr = false;
            start = end + 1;
        }
        if start < n {
            self.run += n - start;
            self.last_cr = bytes[n - 1] == b'\r';
        }
        self.offset += n as u64;
        if self.run > MAX_LINE_BYTES + 1 {
            return Err(self.refuse());
        }
        Ok(n)
    }
}

/// The delimiter of the lines at the start of `head`: among [`Delimiter::CANDIDATES`], the one that splits the
/// most lines into the same number of fields (more fields breaking ties), counting outside double quotes; a comma
/// when none occurs.
fn detect_delimiter(head: &[u8]) -> u8 {
    let lines: Vec<&[u8]> = head
        .split(|&b| b == b'\n')
        .filter(|l| l.iter().any(|b| !b.is_ascii_whitespace()))
        .take(DETECT_LINES)
        .collect();
    let mut best = (0usize, 0usize, b',');
    for &d in &Delimiter::CANDIDATES {
        let counts: Vec<usize> = lines
            .iter()
            .map(|line| {
                let mut quoted = false;
                line.iter()
                    .filter(|&&b| {
                        if b == b'"' {
                            quoted = !quoted;
                        }
                        b == d && !quoted
                    })
                    .count()
            })
            .filter(|&c| c > 0)
            .collect();
        for &c in &counts {
            let lines_with = counts.iter().filter(|&&x| x == c).count();
            if (lines_with, c) > (best.0, best.1) {
                best = (lines_with, c, d);
            }
        }
    }
    best.2
}

/// A field's text, trimmed: the `csv` crate has unquoted it; a quoted field after whitespace (` "4"`) keeps its
/// quotes there, so one surrounding pair is dropped here. (Trimming here rather than with the crate's `Trim`
/// option, which copies every record into a new allocation.)
fn field(record: &StringRecord, i: usize) -> &str {
    let text = record.get(i).unwrap_or_default().trim();
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text)
}

/// The reader state: the `csv` reader and the lines skipped before it.
struct Records<R: Read> {
    reader: csv::Reader<LineLimit<R>>,
    skipped: usize,
    source: String,
}

impl<R: Read> Records<R> {
    /// The next record's 1-based line, `None` at the end.
    fn next(&mut self, record: &mut StringRecord) -> Result<Option<usize>, DataError> {
        match self.reader.read_record(record) {
            Ok(false) => Ok(None),
            Ok(true) => {
                // The `csv` crate's own line count leaves out blank lines; the byte offset does not.
                let byte = record.position().map_or(0, csv::Position::byte);
                let line = self.reader.get_mut().line_of(byte);
                Ok(Some(line + self.skipped))
            }
            Err(e) => {
                let limit = self.reader.get_ref();
                if let Some(line) = limit.too_long {
                    return Err(DataError::LineTooLong {
                        file: self.source.clone(),
                        line: line + self.skipped,
                        limit: MAX_LINE_BYTES,
                    });
                }
                let line = limit.lines + 1 + self.skipped;
                if let csv::ErrorKind::Utf8 { pos, .. } = e.kind() {
                    let byte = pos.as_ref().map_or(0, csv::Position::byte);
                    let line = self.reader.get_mut().line_of(byte) + self.skipped;
                    return Err(DataError::NotUtf8 {
                        file: self.source.clone(),
                        line,
                    });
                }
                let source = match e.into_kind() {
                    csv::ErrorKind::Io(io) => io,
                    other => std::io::Error::other(format!("{other:?}")),
                };
                Err(DataError::Read {
                    file: self.source.clone(),
                    line,
                    source,
                })
            }
        }
    }

    /// Refuses a record with a field over [`MAX_FIELD_BYTES`] (the `csv` crate refused one that is not UTF-8).
    fn check(&self, record: &StringRecord, line: usize) -> Result<(), DataError> {
        match record.iter().position(|f| f.len() > MAX_FIELD_BYTES) {
            Some(col) => {
                let text = record[col].to_owned();
                Err(DataError::FieldTooLong {
                    file: self.source.clone(),
                    line,
                    column: col + 1,
                    len: text.len(),
                    text,
                    limit: MAX_FIELD_BYTES,
                })
            }
            None => Ok(()),
        }
    }
}

/// Whether a record is a line of whitespace only.
fn blank(record: &StringRecord) -> bool {
    record.len() == 1 && record[0].trim().is_empty()
}

/// Skips `n` lines of `reader`, each bounded by [`MAX_LINE_BYTES`]; returns how many there were.
fn skip_lines(reader: &mut impl BufRead, n: usize, source: &str) -> Result<usize, DataError> {
    let mut line = Vec::new();
    for done in 0..n {
        line.clear();
        let got = reader
            .by_ref()
            .take(MAX_LINE_BYTES as u64 + 2)
            .read_until(b'\n', &mut line)
            .map_err(|source_err| DataError::Read {
                file: source.to_owned(),
                line: done + 1,
                source: source_err,
            })?;
        if got == 0 {
            return Ok(done);
        }
        let content = line.strip_suffix(b"\n").unwrap_or(&line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if content.len() > MAX_LINE_BYTES {
            return Err(DataError::LineTooLong {
                file: source.to_owned(),
                line: done + 1,
                limit: MAX_LINE_BYTES,
            });
        }
    }
    Ok(n)
}

/// Reads delimited text; see [`read_table_from`](super::read_table_from).
pub(crate) fn read<R: BufRead>(
    reader: R,
    source: &str,
    options: &ReadOptions,
    wanted: &[Wanted],
) -> Result<Table, DataError> {
    let (mut rows, mut sink) = TextRows::open(reader, source, options, wanted)?;
    while rows.next_into(&mut sink)? {}
    sink.finish()
}

/// Delimited text with its header resolved, read one row at a time into a [`RowSink`]: [`read`] reads every row
/// into one sink, [`super::TableChunks`] a chunk of rows into each of a series of sinks.
pub(crate) struct TextRows<R: BufRead> {
    records: Records<R>,
    record: StringRecord,
    parser: TimeParser,
    names: Vec<String>,
    time_index: usize,
    indices: Vec<usize>,
    source: String,
}

impl<R: BufRead> TextRows<R> {
    /// Reads up to the header (the first line that names every required role) and returns the rows after it with
    /// an empty sink for them.
    pub(crate) fn open(
        mut reader: R,
        source: &str,
        options: &ReadOptions,
        wanted: &[Wanted],
    ) -> Result<(TextRows<R>, RowSink), DataError> {
        let parser = time_parser(options, source)?;
        let roles = with_time(wanted);
        let skipped = match options.skip_rows {
            Some(n) => skip_lines(&mut reader, n, source)?,
            None => 0,
        };
        let delimiter = match options.delimiter {
            Some(d) => d.byte(),
            None => {
                let head = reader.fill_buf().map_err(|e| DataError::Read {
                    file: source.to_owned(),
                    line: skipped + 1,
                    source: e,
                })?;
                detect_delimiter(head)
            }
        };
        let mut records = Records {
            reader: ReaderBuilder::new()
                .delimiter(delimiter)
                .has_headers(false)
                .flexible(true)
                .buffer_capacity(1 << 16)
                .from_reader(LineLimit::new(reader)),
            skipped,
            source: source.to_owned(),
        };
        let mut record = StringRecord::new();

        // The header: the first line that names every required role (or the first line after `skip_rows`).
        let mut first_miss = None;
        let mut searched = 0;
        let mut first_record = true;
        let (names, found) = loop {
            let Some(line) = records.next(&mut record)? else {
                return Err(first_miss
                    .map(|(_, e)| e)
                    .unwrap_or_else(|| DataError::Empty {
                        file: source.to_owned(),
                    }));
            };
            if blank(&record) {
                continue;
            }
            records.check(&record, line)?;
            let mut names: Vec<String> = (0..record.len())
                .map(|i| field(&record, i).to_owned())
                .collect();
            if first_record {
                if let Some(first) = names.first_mut()
                    && let Some(rest) = first.strip_prefix('\u{feff}')
                {
                    *first = rest.trim_start().to_owned();
                }
                first_record = false;
            }
            match resolve_header(&names, &roles, options.columns.as_ref(), source, line)? {
                Ok(found) => break (names, found),
                Err(miss) => {
                    let progress = (miss.progress(&roles), names.len());
                    let header = names.join(&char::from(delimiter).to_string());
                    let err = header_error(miss, source, line, header);
                    if options.skip_rows.is_some() {
                        return Err(err);
                    }
                    // The line that got furthest, then the one with the most fields, is the likeliest header (the first
                    // of equals).
                    if first_miss.as_ref().is_none_or(|(best, _)| progress > *best) {
                        first_miss = Some((progress, err));
                    }
                    searched += 1;
                    if searched >= HEADER_SEARCH_LINES {
                        return Err(first_miss.map(|(_, e)| e).unwrap_or_else(|| {
                            DataError::Empty {
                                file: source.to_owned(),
                            }
                        }));
                    }
                }
            }
        };

        let time_index = found[0].unwrap_or(0);
        let (indices, columns) = table_columns(&roles, &found, &names);
        let sink = RowSink::new(source, names[time_index].clone(), time_index + 1, columns);
        Ok((
            TextRows {
                records,
                record,
                parser,
                names,
                time_index,
                indices,
                source: source.to_owned(),
            },
            sink,
        ))
    }

    /// Reads the next row into `sink`; `false` at the end of the input.
    pub(crate) fn next_into(&mut self, sink: &mut RowSink) -> Result<bool, DataError> {
        let TextRows {
            records,
            record,
            parser,
            names,
            time_index,
            indices,
            source,
        } = self;
        let time_index = *time_index;
        let source = source.as_str();
        let expected = names.len();
        loop {
            let Some(line) = records.next(record)? else {
                return Ok(false);
            };
            if blank(record) {
                continue;
            }
            records.check(record, line)?;
            if record.len() != expected {
                return Err(DataError::FieldCount {
                    file: source.to_owned(),
                    line,
                    expected,
                    found: record.len(),
                });
            }
            let text = field(record, time_index);
            let time = parser.parse(text).ok_or_else(|| DataError::BadTimestamp {
                file: source.to_owned(),
                line,
                column: time_index + 1,
                field: names[time_index].clone(),
                text: text.to_owned(),
                expected: parser.expected().into(),
            })?;
            for (column, &c) in sink.columns.iter_mut().zip(indices.iter()) {
                let text = field(record, c);
                match &mut column.values {
                    ColumnValues::Numbers(values) => {
                        values.push(number(text, source, line, c, &names[c])?)
                    }
                    ColumnValues::Text(values) => values.push(text.to_owned()),
                }
            }
            sink.push_time(time, line, text);
            return Ok(true);
        }
    }
}

/// A finite decimal number, or the error naming its place.
pub(crate) fn number(
    text: &str,
    source: &str,
    line: usize,
    col: usize,
    name: &str,
) -> Result<f64, DataError> {
    let value: f64 = text.parse().map_err(|_| DataError::BadNumber {
        file: source.to_owned(),
        line,
        column: col + 1,
        field: name.to_owned(),
        text: text.to_owned(),
    })?;
    if !value.is_finite() {
        return Err(DataError::NotFinite {
            file: source.to_owned(),
            line,
            column: col + 1,
            field: name.to_owned(),
            text: text.to_owned(),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_are_detected_past_a_preamble() {
        assert_eq!(detect_delimiter(b"a,b,c\n1,2,3\n"), b',');
        assert_eq!(detect_delimiter(b"a;b;c\n1,5;2,5;3\n"), b';');
        assert_eq!(detect_delimiter(b"a\tb\tc\n1\t2\t3\n"), b'\t');
        assert_eq!(detect_delimiter(b"a|b|c\n1|2|3\n"), b'|');
        assert_eq!(
            detect_delimiter(b"Timestamps are UTC timezone,https://x\nd;s;o;h\n1;2;3;4\n1;2;3;4\n"),
            b';'
        );
        assert_eq!(detect_delimiter(b"\"a,b\";c\n\"1,2\";3\n"), b';');
        assert_eq!(detect_delimiter(b"single\n1\n"), b',');
    }
}
