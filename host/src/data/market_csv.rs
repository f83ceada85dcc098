//! A minimal reader of bar files (`time,open,high,low,close,volume`) and quote files
//! (`time,bid,ask,bid_size,ask_size`), in the trade reader's conventions (`docs/DATA.md`, "Bars and quotes").
//!
//! It stands in for the generic column reader of issue 14 and is meant to be replaced by it: the row types
//! ([`Bar`], [`Quote`]) and the errors stay.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::error::DataError;
use super::time::parse_timestamp_ms;
use crate::limits::{MAX_FIELD_BYTES, MAX_LINE_BYTES};

/// One OHLCV bar as read, prices and volume in the file's units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    /// The bar's time, ms since 1970-01-01T00:00:00 UTC (a naive date-time is taken as UTC).
    pub timestamp_ms: i64,
    /// The first price.
    pub open: f64,
    /// The highest price.
    pub high: f64,
    /// The lowest price.
    pub low: f64,
    /// The last price.
    pub close: f64,
    /// The volume traded in the bar.
    pub volume: f64,
}

/// One top-of-book quote as read, in the file's units: a book of one level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quote {
    /// The quote's time, ms since 1970-01-01T00:00:00 UTC.
    pub timestamp_ms: i64,
    /// The best bid.
    pub bid: f64,
    /// The best ask.
    pub ask: f64,
    /// The size at the best bid.
    pub bid_size: f64,
    /// The size at the best ask.
    pub ask_size: f64,
}

/// A column a file must have: its role and the header names accepted for it (compared case-insensitively).
struct Role {
    name: &'static str,
    accepted: &'static [&'static str],
    /// `true` for a price (above zero), `false` for a size (zero or more).
    price: bool,
}

const TIME: &[&str] = &["time", "timestamp", "datetime", "date"];

const BAR_ROLES: [Role; 5] = [
    Role {
        name: "open",
        accepted: &["open"],
        price: true,
    },
    Role {
        name: "high",
        accepted: &["high"],
        price: true,
    },
    Role {
        name: "low",
        accepted: &["low"],
        price: true,
    },
    Role {
        name: "close",
        accepted: &["close"],
        price: true,
    },
    Role {
        name: "volume",
        accepted: &["volume", "vol"],
        price: false,
    },
];

const QUOTE_ROLES: [Role; 4] = [
    Role {
        name: "bid",
        accepted: &["bid"],
        price: true,
    },
    Role {
        name: "ask",
        accepted: &["ask"],
        price: true,
    },
    Role {
        name: "bid_size",
        accepted: &["bid_size", "bidsize"],
        price: false,
    },
    Role {
        name: "ask_size",
        accepted: &["ask_size", "asksize"],
        price: false,
    },
];

/// Reads the bar file at `path` (see [`parse_bars`]).
///
/// # Errors
///
/// [`DataError::Io`] when the file cannot be opened, and every error of [`parse_bars`].
pub fn load_bars(path: &Path) -> Result<Vec<Bar>, DataError> {
    let (reader, source) = open(path)?;
    parse_bars(reader, &source)
}

/// Reads the quote file at `path` (see [`parse_quotes`]).
///
/// # Errors
///
/// [`DataError::Io`] when the file cannot be opened, and every error of [`parse_quotes`].
pub fn load_quotes(path: &Path) -> Result<Vec<Quote>, DataError> {
    let (reader, source) = open(path)?;
    parse_quotes(reader, &source)
}

fn open(path: &Path) -> Result<(BufReader<File>, String), DataError> {
    let file = File::open(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok((
        BufReader::with_capacity(1 << 16, file),
        path.display().to_string(),
    ))
}

/// Parses bars: a header naming `time` (or `timestamp`, `datetime`, `date`), `open`, `high`, `low`, `close`
/// and `volume` (or `vol`) in any order and case, then one bar a line; times as for trades (ISO date-times or
/// epoch milliseconds), never decreasing; prices above zero, volumes zero or more. `source` names the input
/// in messages.
///
/// # Errors
///
/// The [`DataError`] of the first bad line, naming `source`, the line and the column.
pub fn parse_bars(reader: impl BufRead, source: &str) -> Result<Vec<Bar>, DataError> {
    let rows = read_rows(reader, source, &BAR_ROLES)?;
    Ok(rows
        .into_iter()
        .map(|(timestamp_ms, v)| Bar {
            timestamp_ms,
            open: v[0],
            high: v[1],
            low: v[2],
            close: v[3],
            volume: v[4],
        })
        .collect())
}

/// Parses quotes: a header naming `time` (or `timestamp`, `datetime`, `date`), `bid`, `ask`, `bid_size` and
/// `ask_size` in any order and case, then one quote a line, with the rules of [`parse_bars`]. A crossed or
/// locked quote is refused by the feature engine, naming the quote.
///
/// # Errors
///
/// The [`DataError`] of the first bad line, naming `source`, the line and the column.
pub fn parse_quotes(reader: impl BufRead, source: &str) -> Result<Vec<Quote>, DataError> {
    let rows = read_rows(reader, source, &QUOTE_ROLES)?;
    Ok(rows
        .into_iter()
        .map(|(timestamp_ms, v)| Quote {
            timestamp_ms,
            bid: v[0],
            ask: v[1],
            bid_size: v[2],
            ask_size: v[3],
        })
        .collect())
}

fn split_fields(line: &str) -> impl Iterator<Item = &str> {
    line.split(',').map(|f| {
        let f = f.trim();
        f.strip_prefix('"')
            .and_then(|g| g.strip_suffix('"'))
            .unwrap_or(f)
    })
}

/// The time and the role values of every data row.
fn read_rows<R: BufRead>(
    mut reader: R,
    source: &str,
    roles: &[Role],
) -> Result<Vec<(i64, Vec<f64>)>, DataError> {
    let file = || source.to_owned();
    let mut bytes = Vec::with_capacity(128);
    let mut line_no = 0usize;
    let header = loop {
        match next_line(&mut reader, &mut bytes, &mut line_no, source)? {
            None => return Err(DataError::Empty { file: file() }),
            Some(line) => {
                let line = line.strip_prefix('\u{feff}').unwrap_or(line);
                if !line.trim().is_empty() {
                    break line.to_owned();
                }
            }
        }
    };
    let names: Vec<String> = split_fields(&header).map(str::to_owned).collect();
    if let Some((col, name)) = names
        .iter()
        .enumerate()
        .find(|(_, n)| n.len() > MAX_FIELD_BYTES)
    {
        return Err(DataError::FieldTooLong {
            file: file(),
            line: line_no,
            column: col + 1,
            text: name.clone(),
            len: name.len(),
            limit: MAX_FIELD_BYTES,
        });
    }
    let find = |role: &'static str, accepted: &'static [&'static str]| {
        let mut found: Option<usize> = None;
        for (col, name) in names.iter().enumerate() {
            if accepted.iter().any(|a| a.eq_ignore_ascii_case(name)) {
                if let Some(first) = found {
                    return Err(DataError::DuplicateColumn {
                        file: file(),
                        column: col + 1,
                        first: first + 1,
                        name: name.clone(),
                        role,
                    });
                }
                found = Some(col);
            }
        }
        found.ok_or_else(|| DataError::MissingColumn {
            file: file(),
            column: role,
            accepted: accepted_list(accepted),
            header: header.clone(),
        })
    };
    let time_col = find("timestamp", TIME)?;
    let cols = roles
        .iter()
        .map(|r| find(r.name, r.accepted))
        .collect::<Result<Vec<usize>, DataError>>()?;
    let mut rows = Vec::new();
    let mut previous: Option<i64> = None;
    while let Some(line) = next_line(&mut reader, &mut bytes, &mut line_no, source)? {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = split_fields(line).collect();
        if fields.len() != names.len() {
            return Err(DataError::FieldCount {
                file: file(),
                line: line_no,
                expected: names.len(),
                found: fields.len(),
            });
        }
        if let Some((col, text)) = fields
            .iter()
            .enumerate()
            .find(|(_, f)| f.len() > MAX_FIELD_BYTES)
        {
            return Err(DataError::FieldTooLong {
                file: file(),
                line: line_no,
                column: col + 1,
                text: (*text).to_owned(),
                len: text.len(),
                limit: MAX_FIELD_BYTES,
            });
        }
        let text = fields[time_col];
        let time = parse_timestamp_ms(text).ok_or_else(|| DataError::BadTimestamp {
            file: file(),
            line: line_no,
            column: time_col + 1,
            field: names[time_col].clone(),
            text: text.to_owned(),
        })?;
        if let Some(prev) = previous
            && time < prev
        {
            return Err(DataError::TimeBackwards {
                file: file(),
                line: line_no,
                column: time_col + 1,
                field: names[time_col].clone(),
                text: text.to_owned(),
                back_ms: prev.saturating_sub(time),
            });
        }
        previous = Some(time);
        let mut values = Vec::with_capacity(roles.len());
        for (role, &col) in roles.iter().zip(&cols) {
            let text = fields[col];
            let bad = |nan: bool| {
                let (file, line, column, field, text) = (
                    file(),
                    line_no,
                    col + 1,
                    names[col].clone(),
                    text.to_owned(),
                );
                if nan {
                    DataError::NotFinite {
                        file,
                        line,
                        column,
                        field,
                        text,
                    }
                } else {
                    DataError::BadNumber {
                        file,
                        line,
                        column,
                        field,
                        text,
                    }
                }
            };
            let value: f64 = text.parse().map_err(|_| bad(false))?;
            if !value.is_finite() {
                return Err(bad(true));
            }
            if role.price && value <= 0.0 {
                return Err(DataError::NonPositivePrice {
                    file: file(),
                    line: line_no,
                    column: col + 1,
                    field: names[col].clone(),
                    value,
                });
            }
            if !role.price && value < 0.0 {
                return Err(DataError::NegativeSize {
                    file: file(),
                    line: line_no,
                    column: col + 1,
                    field: names[col].clone(),
                    value,
                });
            }
            // Adding 0.0 turns a parsed `-0` into `+0`.
            values.push(value + 0.0);
        }
        rows.push((time, values));
    }
    if rows.is_empty() {
        return Err(DataError::NoRows { file: file() });
    }
    Ok(rows)
}

/// The accepted names of a role, comma-separated, as a `'static` string for [`DataError::MissingColumn`].
fn accepted_list(accepted: &'static [&'static str]) -> &'static str {
    match accepted {
        ["time", ..] => "time, timestamp, datetime, date",
        ["volume", ..] => "volume, vol",
        ["bid_size", ..] => "bid_size, bidsize",
        ["ask_size", ..] => "ask_size, asksize",
        [one] => one,
        _ => "",
    }
}

/// One line without its line end, at most [`MAX_LINE_BYTES`] long; `Ok(None)` at the end of the input.
fn next_line<'a, R: BufRead>(
    reader: &mut R,
    bytes: &'a mut Vec<u8>,
    line_no: &mut usize,
    source: &str,
) -> Result<Option<&'a str>, DataError> {
    bytes.clear();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_and_quotes_parse_in_any_column_order_and_time_form() {
        let bars = parse_bars(
            "Time,Open,High,Low,Close,Volume\n2024-01-02T00:00:00Z,1.1,1.2,1.0,1.15,10\n1704157200000,1.15,1.16,1.14,1.14,0\n"
                .as_bytes(),
            "b.csv",
        )
        .unwrap();
        assert_eq!(bars.len(), 2);
        assert_eq!(bars[0].timestamp_ms, 1_704_153_600_000);
        assert_eq!(bars[1].timestamp_ms, 1_704_157_200_000);
        assert_eq!((bars[1].close, bars[1].volume), (1.14, 0.0));
        let quotes = parse_quotes(
            "ask_size,bid_size,ask,bid,time\n3,4,100.5,100.25,5\n".as_bytes(),
            "q.csv",
        )
        .unwrap();
        assert_eq!(
            quotes,
            [Quote {
                timestamp_ms: 5,
                bid: 100.25,
                ask: 100.5,
                bid_size: 4.0,
                ask_size: 3.0
            }]
        );
    }

    #[test]
    fn bad_files_name_the_line_and_column() {
        let err = |text: &str| {
            parse_bars(text.as_bytes(), "b.csv")
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("time,open,high,low,close\n"),
            "b.csv, line 1: missing required column `volume` (accepted names: volume, vol); header found: `time,open,high,low,close`"
        );
        assert_eq!(
            err("time,open,high,low,close,volume\n1,1,2,x,1,1\n"),
            "b.csv, line 2, column 4 (low): `x` is not a number"
        );
        assert_eq!(
            err("time,open,high,low,close,volume\n5,1,2,1,1,1\n4,1,2,1,1,1\n"),
            "b.csv, line 3, column 1 (time): time goes backwards: `4` is 1 ms before the previous row"
        );
        assert_eq!(
            err("time,open,high,low,close,volume\n"),
            "b.csv: header only, no trade rows"
        );
        let e = parse_quotes(
            "time,bid,ask,bid_size,ask_size\n1,0,1,1,1\n".as_bytes(),
            "q.csv",
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                DataError::NonPositivePrice {
                    line: 2,
                    column: 2,
                    ..
                }
            ),
            "{e}"
        );
        let e = parse_quotes(
            "time,bid,ask,bid_size,ask_size\n1,1,2,-1,1\n".as_bytes(),
            "q.csv",
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                DataError::NegativeSize {
                    line: 2,
                    column: 4,
                    ..
                }
            ),
            "{e}"
        );
    }
}
