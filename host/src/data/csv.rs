//! Trade CSV loading.
//!
//! The format is documented in `docs/DATA.md`: a header line is required, columns are found by name
//! (case-insensitive), extra columns are ignored, and every rejected input yields a [`DataError`]
//! that names the source, the line, the column and the field.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::error::DataError;
use super::time::parse_timestamp_ms;
use crate::limits::{MAX_FIELD_BYTES, MAX_LINE_BYTES};

/// The aggressor side of a trade, when the data says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The buyer crossed the spread (a trade at the ask).
    Buy,
    /// The seller crossed the spread (a trade at the bid).
    Sell,
}

impl Side {
    /// `+1.0` for [`Side::Buy`], `-1.0` for [`Side::Sell`].
    #[inline]
    pub fn sign(self) -> f64 {
        match self {
            Side::Buy => 1.0,
            Side::Sell => -1.0,
        }
    }
}

/// One trade print.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trade {
    /// Trade time in milliseconds since 1970-01-01T00:00:00, with naive local times treated as UTC.
    pub timestamp_ms: i64,
    /// Trade price (finite, > 0), in the instrument's price units (index points for ES).
    pub price: f64,
    /// Trade size (finite, >= 0), in contracts or shares.
    pub size: f64,
    /// Aggressor side when the file has a `side` column with a value, else `None`.
    pub side: Option<Side>,
}

/// Header names accepted for the timestamp column (compared case-insensitively).
const TIMESTAMP_NAMES: &[&str] = &["datetime", "timestamp", "time"];
/// Header names accepted for the price column.
const PRICE_NAMES: &[&str] = &["price"];
/// Header names accepted for the size column.
const SIZE_NAMES: &[&str] = &["volume", "size", "qty"];
/// Header names accepted for the optional side column.
const SIDE_NAMES: &[&str] = &["side"];

/// 0-based column indices of the fields tickq reads.
struct Columns {
    timestamp: usize,
    price: usize,
    size: usize,
    side: Option<usize>,
    names: Vec<String>,
}

/// Reads and parses the trade CSV file at `path`.
///
/// Error messages name the file by `path`.
///
/// # Errors
///
/// [`DataError::Io`] when the file cannot be opened, and every error of [`parse_trades`].
pub fn load_trades(path: &Path) -> Result<Vec<Trade>, DataError> {
    let file = File::open(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_trades(
        BufReader::with_capacity(1 << 16, file),
        &path.display().to_string(),
    )
}

/// Splits a CSV line into trimmed fields, dropping one pair of surrounding double quotes.
///
/// Quoted fields may not contain commas: the format has no use for them.
fn split_fields(line: &str) -> impl Iterator<Item = &str> {
    line.split(',').map(|f| {
        let f = f.trim();
        f.strip_prefix('"')
            .and_then(|g| g.strip_suffix('"'))
            .unwrap_or(f)
    })
}

/// Reads one line into `bytes` without its line end, counting `line_no`; `Ok(None)` at end of input.
///
/// At most [`MAX_LINE_BYTES`] plus a line end are read, so an endless stream without line ends (`/dev/zero`) is
/// refused after 64 KiB rather than read into memory.
fn next_line<'a, R: BufRead>(
    reader: &mut R,
    bytes: &'a mut Vec<u8>,
    line_no: &mut usize,
    source: &str,
) -> Result<Option<&'a str>, DataError> {
    bytes.clear();
    // Two bytes more than the limit: room for `\r\n` after a line of exactly the limit.
    let n = reader
        .by_ref()
        .take(MAX_LINE_BYTES as u64 + 2)
        .read_until(b'\n', bytes)
        .map_err(|e| DataError::Read {
            file: source.to_owned(),
            line: *line_no + 1,
            source: e,
        })?;
    if n == 0 {
        return Ok(None);
    }
    *line_no += 1;
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    if bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    if bytes.len() > MAX_LINE_BYTES {
        return Err(DataError::LineTooLong {
            file: source.to_owned(),
            line: *line_no,
            limit: MAX_LINE_BYTES,
        });
    }
    std::str::from_utf8(bytes)
        .map(Some)
        .map_err(|_| DataError::NotUtf8 {
            file: source.to_owned(),
            line: *line_no,
        })
}

/// Refuses a field longer than [`MAX_FIELD_BYTES`].
fn check_field_lengths(line: &str, source: &str, line_no: usize) -> Result<(), DataError> {
    match split_fields(line)
        .enumerate()
        .find(|(_, f)| f.len() > MAX_FIELD_BYTES)
    {
        Some((col, text)) => Err(DataError::FieldTooLong {
            file: source.to_owned(),
            line: line_no,
            column: col + 1,
            text: text.to_owned(),
            len: text.len(),
            limit: MAX_FIELD_BYTES,
        }),
        None => Ok(()),
    }
}

fn find_columns(header: &str, source: &str) -> Result<Columns, DataError> {
    let names: Vec<String> = split_fields(header).map(str::to_owned).collect();
    let mut found: [Option<usize>; 4] = [None; 4];
    let roles: [(&'static str, &[&str]); 4] = [
        ("timestamp", TIMESTAMP_NAMES),
        ("price", PRICE_NAMES),
        ("size", SIZE_NAMES),
        ("side", SIDE_NAMES),
    ];
    for (col, name) in names.iter().enumerate() {
        let lower = name.to_ascii_lowercase();
        for (slot, (role, accepted)) in found.iter_mut().zip(roles) {
            if accepted.contains(&lower.as_str()) {
                if let Some(first) = *slot {
                    return Err(DataError::DuplicateColumn {
                        file: source.to_owned(),
                        column: col + 1,
                        first: first + 1,
                        name: name.clone(),
                        role,
                    });
                }
                *slot = Some(col);
            }
        }
    }
    let require = |slot: Option<usize>, column: &'static str, accepted: &'static str| {
        slot.ok_or_else(|| DataError::MissingColumn {
            file: source.to_owned(),
            column,
            accepted,
            header: header.to_owned(),
        })
    };
    Ok(Columns {
        timestamp: require(found[0], "timestamp", "DateTime, timestamp, time")?,
        price: require(found[1], "price", "price")?,
        size: require(found[2], "size", "Volume, size, qty")?,
        side: found[3],
        names,
    })
}

/// Parses trades from CSV text; `source` names the input in error messages (usually the file path).
///
/// The format (see `docs/DATA.md`): a header line naming the columns, then one trade per line.
/// Columns are found by header name, case-insensitively: the timestamp (`DateTime`, `timestamp` or `time`),
/// `price`, the size (`Volume`, `size` or `qty`) and an optional `side` (`buy`, `sell`, `b`, `s` in any case,
/// or empty for unknown). Other columns are ignored.
/// Fields are trimmed, may be wrapped in double quotes, and may not contain commas.
/// Line ends may be `\n` or `\r\n`; a UTF-8 byte-order mark before the header and blank lines are skipped.
/// Timestamps must not decrease from one row to the next; equal timestamps are fine.
///
/// # Errors
///
/// Every error names `source` and the 1-based line; field errors also give the 1-based column and the
/// header name: [`DataError::Empty`], [`DataError::NoRows`], [`DataError::MissingColumn`],
/// [`DataError::DuplicateColumn`], [`DataError::FieldCount`], [`DataError::BadNumber`],
/// [`DataError::NotFinite`], [`DataError::NonPositivePrice`], [`DataError::NegativeSize`],
/// [`DataError::BadTimestamp`], [`DataError::TimeBackwards`], [`DataError::BadSide`],
/// [`DataError::NotUtf8`], [`DataError::Read`], and [`DataError::LineTooLong`] / [`DataError::FieldTooLong`] for a
/// line above [`MAX_LINE_BYTES`] or a field above [`MAX_FIELD_BYTES`].
pub fn parse_trades(mut reader: impl BufRead, source: &str) -> Result<Vec<Trade>, DataError> {
    let mut bytes = Vec::with_capacity(128);
    let mut line_no = 0usize;

    let columns = loop {
        match next_line(&mut reader, &mut bytes, &mut line_no, source)? {
            None => {
                return Err(DataError::Empty {
                    file: source.to_owned(),
                });
            }
            Some(line) => {
                let line = line.strip_prefix('\u{feff}').unwrap_or(line);
                if !line.trim().is_empty() {
                    check_field_lengths(line, source, line_no)?;
                    break find_columns(line, source)?;
                }
            }
        }
    };

    let expected = columns.names.len();
    let mut trades = Vec::new();
    let mut previous_ms: Option<i64> = None;
    while let Some(line) = next_line(&mut reader, &mut bytes, &mut line_no, source)? {
        if line.trim().is_empty() {
            continue;
        }
        check_field_lengths(line, source, line_no)?;
        let fields: Vec<&str> = split_fields(line).collect();
        if fields.len() != expected {
            return Err(DataError::FieldCount {
                file: source.to_owned(),
                line: line_no,
                expected,
                found: fields.len(),
            });
        }
        let ctx = RowContext {
            source,
            line: line_no,
            names: &columns.names,
        };

        let ts_text = fields[columns.timestamp];
        let timestamp_ms = parse_timestamp_ms(ts_text).ok_or_else(|| DataError::BadTimestamp {
            file: source.to_owned(),
            line: line_no,
            column: columns.timestamp + 1,
            field: columns.names[columns.timestamp].clone(),
            text: ts_text.to_owned(),
        })?;
        if let Some(prev) = previous_ms
            && timestamp_ms < prev
        {
            return Err(DataError::TimeBackwards {
                file: source.to_owned(),
                line: line_no,
                column: columns.timestamp + 1,
                field: columns.names[columns.timestamp].clone(),
                text: ts_text.to_owned(),
                back_ms: prev.saturating_sub(timestamp_ms),
            });
        }
        previous_ms = Some(timestamp_ms);

        let price = ctx.number(columns.price, fields[columns.price])?;
        if price <= 0.0 {
            return Err(DataError::NonPositivePrice {
                file: source.to_owned(),
                line: line_no,
                column: columns.price + 1,
                field: columns.names[columns.price].clone(),
                value: price,
            });
        }
        let size = ctx.number(columns.size, fields[columns.size])?;
        if size < 0.0 {
            return Err(DataError::NegativeSize {
                file: source.to_owned(),
                line: line_no,
                column: columns.size + 1,
                field: columns.names[columns.size].clone(),
                value: size,
            });
        }
        let side = match columns.side {
            None => None,
            Some(col) => ctx.side(col, fields[col])?,
        };
        trades.push(Trade {
            timestamp_ms,
            price,
            // Adding 0.0 turns a parsed `-0` size into `+0`.
            size: size + 0.0,
            side,
        });
    }
    if trades.is_empty() {
        return Err(DataError::NoRows {
            file: source.to_owned(),
        });
    }
    Ok(trades)
}

/// Where a data row came from, for error messages.
struct RowContext<'a> {
    source: &'a str,
    line: usize,
    names: &'a [String],
}

impl RowContext<'_> {
    fn number(&self, col: usize, text: &str) -> Result<f64, DataError> {
        let value: f64 = text.parse().map_err(|_| DataError::BadNumber {
            file: self.source.to_owned(),
            line: self.line,
            column: col + 1,
            field: self.names[col].clone(),
            text: text.to_owned(),
        })?;
        if !value.is_finite() {
            return Err(DataError::NotFinite {
                file: self.source.to_owned(),
                line: self.line,
                column: col + 1,
                field: self.names[col].clone(),
                text: text.to_owned(),
            });
        }
        Ok(value)
    }

    fn side(&self, col: usize, text: &str) -> Result<Option<Side>, DataError> {
        if text.is_empty() {
            Ok(None)
        } else if text.eq_ignore_ascii_case("buy") || text.eq_ignore_ascii_case("b") {
            Ok(Some(Side::Buy))
        } else if text.eq_ignore_ascii_case("sell") || text.eq_ignore_ascii_case("s") {
            Ok(Some(Side::Sell))
        } else {
            Err(DataError::BadSide {
                file: self.source.to_owned(),
                line: self.line,
                column: col + 1,
                field: self.names[col].clone(),
                text: text.to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Trade>, DataError> {
        parse_trades(text.as_bytes(), "t.csv")
    }

    fn err(text: &str) -> DataError {
        match parse(text) {
            Ok(t) => panic!("expected an error, parsed {t:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn parses_bundled_format() {
        let t = parse(
            "DateTime,Price,Volume\n2013-09-01 17:00:00.083,1640.25,8\n2013-09-01 17:00:00.100,1640.5,1\n",
        )
        .expect("valid");
        assert_eq!(t.len(), 2);
        assert_eq!(
            t[0],
            Trade {
                timestamp_ms: 1_378_054_800_083,
                price: 1640.25,
                size: 8.0,
                side: None
            }
        );
        assert_eq!(t[1].timestamp_ms - t[0].timestamp_ms, 17);
        assert_eq!(t[1].price, 1640.5);
    }

    #[test]
    fn columns_by_name_any_order_case_and_extras() {
        let text = "\u{feff}Exchange, QTY ,\"Side\",PRICE,Timestamp\r\n\
                    X,3,buy,10.5,2020-01-01T00:00:00Z\r\n\
                    \r\n\
                    X,\"4\",S,10.25,1577836800001\r\n\
                    X,0,,10.25,2020-01-01T00:00:00.002\r\n";
        let t = parse(text).expect("valid");
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].timestamp_ms, 1_577_836_800_000);
        assert_eq!(t[0].size, 3.0);
        assert_eq!(t[0].price, 10.5);
        assert_eq!(t[0].side, Some(Side::Buy));
        assert_eq!(t[1].timestamp_ms, 1_577_836_800_001);
        assert_eq!(t[1].side, Some(Side::Sell));
        assert_eq!(t[1].size, 4.0);
        assert_eq!(t[2].side, None);
        assert_eq!(t[2].size, 0.0);
    }

    #[test]
    fn side_spellings() {
        let t = parse("time,price,size,side\n1,1,1,BUY\n2,1,1,b\n3,1,1,Sell\n4,1,1,s\n")
            .expect("valid");
        let sides: Vec<_> = t.iter().map(|t| t.side).collect();
        assert_eq!(
            sides,
            [
                Some(Side::Buy),
                Some(Side::Buy),
                Some(Side::Sell),
                Some(Side::Sell)
            ]
        );
    }

    #[test]
    fn equal_timestamps_are_allowed() {
        let t = parse("time,price,size\n5,1,1\n5,1,1\n").expect("valid");
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn empty_input() {
        assert!(matches!(err(""), DataError::Empty { .. }));
        assert!(matches!(err("\n \n"), DataError::Empty { .. }));
        assert!(err("").to_string().starts_with("t.csv: empty input"));
    }

    #[test]
    fn header_only() {
        let e = err("DateTime,Price,Volume\n\n");
        assert!(matches!(e, DataError::NoRows { .. }), "{e}");
        assert_eq!(e.to_string(), "t.csv: header only, no trade rows");
    }

    #[test]
    fn missing_column_lists_header() {
        let e = err("DateTime,Px,Volume\n2013-09-01 17:00:00,1,1\n");
        match &e {
            DataError::MissingColumn { column, header, .. } => {
                assert_eq!(*column, "price");
                assert_eq!(header, "DateTime,Px,Volume");
            }
            other => panic!("wrong error {other}"),
        }
        assert!(
            e.to_string().contains("header found: `DateTime,Px,Volume`"),
            "{e}"
        );
        assert!(matches!(
            err("Price,Volume\n1,1\n"),
            DataError::MissingColumn {
                column: "timestamp",
                ..
            }
        ));
        assert!(matches!(
            err("time,Price\n1,1\n"),
            DataError::MissingColumn { column: "size", .. }
        ));
    }

    #[test]
    fn duplicate_column() {
        let e = err("time,price,size,qty\n1,1,1,1\n");
        assert!(
            matches!(
                e,
                DataError::DuplicateColumn {
                    column: 4,
                    first: 3,
                    role: "size",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn wrong_field_count() {
        let e = err("time,price,size\n1,1,1\n2,1\n");
        assert!(
            matches!(
                e,
                DataError::FieldCount {
                    line: 3,
                    expected: 3,
                    found: 2,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            "t.csv, line 3: expected 3 fields as in the header, found 2"
        );
        assert!(matches!(
            err("time,price,size\n1,1,1,9\n"),
            DataError::FieldCount {
                line: 2,
                found: 4,
                ..
            }
        ));
    }

    #[test]
    fn bad_number_names_line_column_field() {
        let e = err(
            "DateTime,Price,Volume\n2013-09-01 17:00:00,1640.25,8\n2013-09-01 17:00:01,abc,8\n",
        );
        match &e {
            DataError::BadNumber {
                line,
                column,
                field,
                text,
                ..
            } => {
                assert_eq!((*line, *column), (3, 2));
                assert_eq!(field, "Price");
                assert_eq!(text, "abc");
            }
            other => panic!("wrong error {other}"),
        }
        assert_eq!(
            e.to_string(),
            "t.csv, line 3, column 2 (Price): `abc` is not a number"
        );
        assert!(matches!(
            err("time,price,size\n1,1,\n"),
            DataError::BadNumber {
                line: 2,
                column: 3,
                ..
            }
        ));
    }

    #[test]
    fn not_finite() {
        for text in ["NaN", "inf", "-inf", "1e999"] {
            let e = err(&format!("time,price,size\n1,{text},1\n"));
            assert!(
                matches!(
                    e,
                    DataError::NotFinite {
                        line: 2,
                        column: 2,
                        ..
                    }
                ),
                "{text}: {e}"
            );
        }
        assert!(matches!(
            err("time,price,size\n1,1,nan\n"),
            DataError::NotFinite {
                line: 2,
                column: 3,
                ..
            }
        ));
    }

    #[test]
    fn non_positive_price() {
        for text in ["0", "-1.5", "-0"] {
            let e = err(&format!("time,price,size\n1,2,1\n2,{text},1\n"));
            assert!(
                matches!(
                    e,
                    DataError::NonPositivePrice {
                        line: 3,
                        column: 2,
                        ..
                    }
                ),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn negative_size() {
        let e = err("time,price,Volume\n1,2,-1\n");
        assert!(
            matches!(e, DataError::NegativeSize { line: 2, column: 3, ref field, .. } if field == "Volume"),
            "{e}"
        );
    }

    #[test]
    fn bad_timestamp() {
        let e = err("price,size,DateTime\n1,1,2013-09-01 17:00:00\n1,1,2013-02-30 17:00:00\n");
        assert!(
            matches!(e, DataError::BadTimestamp { line: 3, column: 3, ref text, .. } if text == "2013-02-30 17:00:00"),
            "{e}"
        );
        assert!(matches!(
            err("time,price,size\n12:00:00,1,1\n"),
            DataError::BadTimestamp {
                line: 2,
                column: 1,
                ..
            }
        ));
    }

    #[test]
    fn time_going_backwards() {
        let e = err(
            "DateTime,Price,Volume\n2013-09-01 17:00:01.000,1,1\n2013-09-01 17:00:00.750,1,1\n",
        );
        assert!(
            matches!(
                e,
                DataError::TimeBackwards {
                    line: 3,
                    column: 1,
                    back_ms: 250,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn bad_side() {
        let e = err("time,price,size,side\n1,1,1,buy\n2,1,1,bid\n");
        assert!(
            matches!(e, DataError::BadSide { line: 3, column: 4, ref text, .. } if text == "bid"),
            "{e}"
        );
    }

    #[test]
    fn not_utf8() {
        let bytes = b"time,price,size\n1,1,1\n2,\xff,1\n";
        let e = parse_trades(&bytes[..], "t.csv").expect_err("invalid UTF-8");
        assert!(matches!(e, DataError::NotUtf8 { line: 3, .. }), "{e}");
    }

    #[test]
    fn read_error_names_the_line() {
        /// Yields a valid header and one row, then fails.
        struct Failing(usize);
        impl std::io::Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let text = b"time,price,size\n1,1,1\n";
                if self.0 < text.len() {
                    let n = buf.len().min(text.len() - self.0);
                    buf[..n].copy_from_slice(&text[self.0..self.0 + n]);
                    self.0 += n;
                    Ok(n)
                } else {
                    Err(std::io::Error::other("disk on fire"))
                }
            }
        }
        let e = parse_trades(BufReader::new(Failing(0)), "t.csv").expect_err("read error");
        assert!(matches!(e, DataError::Read { line: 3, .. }), "{e}");
        assert!(e.to_string().contains("disk on fire"), "{e}");
    }

    #[test]
    fn blank_lines_keep_line_numbers() {
        let e = err("time,price,size\n\n1,1,1\n\n2,x,1\n");
        assert!(matches!(e, DataError::BadNumber { line: 5, .. }), "{e}");
    }

    #[test]
    fn load_missing_file() {
        let e = load_trades(Path::new("does/not/exist.csv")).expect_err("missing");
        assert!(matches!(e, DataError::Io { .. }));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: mutate a valid file byte by byte.
        let base = b"DateTime,Price,Volume,side\n2013-09-01 17:00:00.083,1640.25,8,b\n2013-09-01 17:00:00.084,1640.5,1,S\n";
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let mut bytes = base.to_vec();
            for _ in 0..3 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let pos = (state % bytes.len() as u64) as usize;
                bytes[pos] = (state >> 32) as u8;
            }
            let _ = parse_trades(&bytes[..], "fuzz");
        }
    }

    #[test]
    fn an_endless_line_is_refused_after_the_line_limit() {
        // `/dev/zero` as a reader: NUL bytes without end; only the limit and a little more are read.
        let mut zeros = std::io::repeat(0).take(1 << 40);
        let err = parse_trades(BufReader::new(&mut zeros), "/dev/zero").unwrap_err();
        assert_eq!(
            err.to_string(),
            "/dev/zero, line 1: longer than 65536 bytes, the most a trade CSV line may have (is this a trade CSV with line ends?)"
        );
        assert!(zeros.limit() > (1 << 40) - (1 << 20), "read too much");
        let long_row = format!(
            "DateTime,Price,Volume\n2013-09-01 17:00:00.083,{},8\n",
            "1".repeat(70_000)
        );
        let err = parse(&long_row).unwrap_err();
        assert!(
            matches!(err, DataError::LineTooLong { line: 2, .. }),
            "{err}"
        );
        // A line of exactly the limit, with a CRLF line end, is fine (and then fails on its content).
        let exact = format!(
            "DateTime,Price,Volume,Note\r\n2013-09-01 17:00:00.083,1,8,{}\r\n",
            "n".repeat(MAX_LINE_BYTES - 28)
        );
        assert!(!matches!(parse(&exact), Err(DataError::LineTooLong { .. })));
    }

    #[test]
    fn long_fields_are_refused_and_shown_cut() {
        let text = format!(
            "DateTime,Price,Volume\n2013-09-01 17:00:00.083,{},8\n",
            "9".repeat(5_000)
        );
        let err = parse(&text).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "t.csv, line 2, column 2: the field `{}… (5000 bytes)` is 5000 bytes long, above 1024, the most a field may have",
                "9".repeat(80)
            )
        );
        let header = format!("DateTime,Price,Volume,{}\n", "h".repeat(2_000));
        assert!(matches!(
            parse(&header).unwrap_err(),
            DataError::FieldTooLong {
                line: 1,
                column: 4,
                len: 2000,
                ..
            }
        ));
    }

    #[test]
    fn control_characters_in_fields_are_escaped_in_messages() {
        let err = parse("DateTime,Price,Volume\n2013-09-01 17:00:00.083,1\u{0}2,8\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.csv, line 2, column 2 (Price): `1\\02` is not a number"
        );
        let err = parse("Date\u{1b}[31m,Price,Volume\n").unwrap_err();
        assert!(
            err.to_string().contains("`Date\\u{1b}[31m,Price,Volume`"),
            "{err}"
        );
    }
}
