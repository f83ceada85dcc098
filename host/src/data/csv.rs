//! Trade loading: the trade roles of the table reader ([`read_table`]) made into [`Trade`]s.
//!
//! The formats are documented in `docs/DATA.md`, "Reading files": columns are found by name (case-insensitive
//! aliases, or a column mapping), extra columns are ignored, and every rejected input yields a [`DataError`] that
//! names the source, the line, the column and the field.

use std::io::BufRead;
use std::path::Path;

use super::error::DataError;
use super::table::{ReadNotes, Role, TRADE_ROLES, Table, read_table};
use crate::options::ReadOptions;

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
    /// Trade time in milliseconds since 1970-01-01T00:00:00 UTC (naive local times are in the time zone the read
    /// options give, UTC by default).
    pub timestamp_ms: i64,
    /// Trade price (finite, > 0), in the instrument's price units (index points for ES).
    pub price: f64,
    /// Trade size (finite, >= 0), in contracts or shares.
    pub size: f64,
    /// Aggressor side when the file has a side column with a value, else `None`.
    pub side: Option<Side>,
}

/// Trades read from a file, with what the reader noticed.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedTrades {
    /// The trades, in time order.
    pub trades: Vec<Trade>,
    /// A reversed newest-first file, repeated rows: what the `tickq` command prints as notes.
    pub notes: ReadNotes,
}

/// Reads the trade file at `path` with the default [`ReadOptions`] (columns by their usual names, `auto` times
/// in UTC, the delimiter detected, the format from the extension); the notes are dropped.
///
/// # Errors
///
/// The errors of [`load_trades_with`].
pub fn load_trades(path: &Path) -> Result<Vec<Trade>, DataError> {
    load_trades_with(path, &ReadOptions::default()).map(|loaded| loaded.trades)
}

/// Reads the trade file at `path` (delimited text or Parquet) as `options` say: roles `time`, `price`, `size` and
/// an optional `side` ([`TRADE_ROLES`]). Error messages name the file by `path`.
///
/// # Errors
///
/// [`DataError::Io`] when the file cannot be opened, every error of [`read_table`], and
/// [`DataError::NonPositivePrice`], [`DataError::NegativeSize`] and [`DataError::BadSide`] for values a trade
/// cannot have.
pub fn load_trades_with(path: &Path, options: &ReadOptions) -> Result<LoadedTrades, DataError> {
    trades_from_table(read_table(path, options, TRADE_ROLES)?)
}

/// Parses trades from delimited text with the default [`ReadOptions`]; `source` names the input in error
/// messages (usually the file path).
///
/// The format (see `docs/DATA.md`): a header line naming the columns (preamble lines before it are skipped),
/// then one trade per line. Columns are found by header name, case-insensitively: the time (`timestamp`, `time`,
/// `date`, `datetime`, ...), the price (`price`, `px`, ...), the size (`size`, `volume`, `amount`, `qty`,
/// `quantity`, ...) and an optional side (`buy`, `sell`, `b`, `s` in any case, or empty for unknown). Other
/// columns are ignored. A newest-first file is reversed; one step back in time is an error.
///
/// # Errors
///
/// The errors of [`read_table_from`](super::read_table_from), and [`DataError::NonPositivePrice`],
/// [`DataError::NegativeSize`] and [`DataError::BadSide`].
pub fn parse_trades(reader: impl BufRead, source: &str) -> Result<Vec<Trade>, DataError> {
    let table = super::read_table_from(reader, source, &ReadOptions::default(), TRADE_ROLES)?;
    trades_from_table(table).map(|loaded| loaded.trades)
}

/// Reads the trade file at `path` in chunks of at most `rows` trades, parsed and checked as
/// [`load_trades_with`] does (the same errors); the file must be oldest-first ([`super::TableChunks`]).
///
/// # Errors
///
/// The header's errors here; each chunk carries its rows' errors.
pub fn trade_chunks(
    path: &Path,
    options: &ReadOptions,
    rows: usize,
) -> Result<impl Iterator<Item = Result<LoadedTrades, DataError>>, DataError> {
    let chunks = super::table::read_table_chunks(path, options, TRADE_ROLES, rows)?;
    Ok(chunks.map(|table| table.and_then(trades_from_table)))
}

/// The trades of a table read with [`TRADE_ROLES`].
fn trades_from_table(table: Table) -> Result<LoadedTrades, DataError> {
    let column = |role: Role| {
        table
            .column(role)
            .expect("the reader returns every required role")
    };
    let (price_col, size_col) = (column(Role::Price), column(Role::Size));
    let prices = table.numbers(Role::Price).unwrap_or_default();
    let sizes = table.numbers(Role::Size).unwrap_or_default();
    let sides = table.text(Role::Side);
    let mut trades = Vec::with_capacity(table.len());
    for (i, (&timestamp_ms, &line)) in table.times.iter().zip(&table.lines).enumerate() {
        let price = prices[i];
        if price <= 0.0 {
            return Err(DataError::NonPositivePrice {
                file: table.source.clone(),
                line,
                column: price_col.column,
                field: price_col.header.clone(),
                value: price,
            });
        }
        let size = sizes[i];
        if size < 0.0 {
            return Err(DataError::NegativeSize {
                file: table.source.clone(),
                line,
                column: size_col.column,
                field: size_col.header.clone(),
                value: size,
            });
        }
        let side = match sides {
            None => None,
            Some(sides) => side(&sides[i]).ok_or_else(|| {
                let col = column(Role::Side);
                DataError::BadSide {
                    file: table.source.clone(),
                    line,
                    column: col.column,
                    field: col.header.clone(),
                    text: sides[i].clone(),
                }
            })?,
        };
        trades.push(Trade {
            timestamp_ms,
            price,
            // Adding 0.0 turns a parsed `-0` size into `+0`.
            size: size + 0.0,
            side,
        });
    }
    Ok(LoadedTrades {
        trades,
        notes: table.notes,
    })
}

/// A side's text: `Some(None)` for empty, `None` for a spelling that is not a side.
fn side(text: &str) -> Option<Option<Side>> {
    if text.is_empty() {
        Some(None)
    } else if text.eq_ignore_ascii_case("buy") || text.eq_ignore_ascii_case("b") {
        Some(Some(Side::Buy))
    } else if text.eq_ignore_ascii_case("sell") || text.eq_ignore_ascii_case("s") {
        Some(Some(Side::Sell))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MAX_LINE_BYTES;
    use std::io::{BufReader, Read};

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
            DataError::MissingColumn { column: "time", .. }
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
        let mut zeros = Read::take(std::io::repeat(0), 1 << 40);
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
