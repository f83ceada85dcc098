//! Bar files (`time,open,high,low,close,volume`) and quote files (`time,bid,ask,bid_size,ask_size`) read
//! through the generic reader ([`read_table`], with [`BAR_ROLES`] / [`QUOTE_ROLES`]): the same column mapping,
//! time formats, row-order rules and error messages as trade files (`docs/DATA.md`, "Reading files").

use std::io::BufRead;
use std::path::Path;

use super::error::DataError;
use super::table::{BAR_ROLES, QUOTE_ROLES, ReadNotes, Role, Table, read_table, read_table_from};
use crate::options::ReadOptions;
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

/// Rows read from a bar or quote file, with the reader's notes (a reversed file, repeated rows).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedRows<T> {
    /// The rows, oldest first.
    pub rows: Vec<T>,
    /// What the reader noticed about the file.
    pub notes: ReadNotes,
}

/// Reads the bar file at `path` with the default [`ReadOptions`] (see [`load_bars_with`]).
///
/// # Errors
///
/// The errors of [`load_bars_with`].
pub fn load_bars(path: &Path) -> Result<Vec<Bar>, DataError> {
    load_bars_with(path, &ReadOptions::default()).map(|loaded| loaded.rows)
}

/// Reads the bar file at `path`: the columns of [`BAR_ROLES`] (mapped by `options.columns` or found by their
/// aliases), prices above zero and volumes zero or more.
///
/// # Errors
///
/// The reader's errors ([`read_table`]), [`DataError::NonPositivePrice`] and [`DataError::NegativeSize`]
/// naming the file, line and column.
pub fn load_bars_with(path: &Path, options: &ReadOptions) -> Result<LoadedRows<Bar>, DataError> {
    bars_from_table(read_table(path, options, BAR_ROLES)?)
}

/// Reads the quote file at `path` with the default [`ReadOptions`] (see [`load_quotes_with`]).
///
/// # Errors
///
/// The errors of [`load_quotes_with`].
pub fn load_quotes(path: &Path) -> Result<Vec<Quote>, DataError> {
    load_quotes_with(path, &ReadOptions::default()).map(|loaded| loaded.rows)
}

/// Reads the quote file at `path`: the columns of [`QUOTE_ROLES`], prices above zero and sizes zero or more. A
/// crossed or locked quote is refused by the feature engine, naming the quote.
///
/// # Errors
///
/// The reader's errors ([`read_table`]), [`DataError::NonPositivePrice`] and [`DataError::NegativeSize`].
pub fn load_quotes_with(
    path: &Path,
    options: &ReadOptions,
) -> Result<LoadedRows<Quote>, DataError> {
    quotes_from_table(read_table(path, options, QUOTE_ROLES)?)
}

/// Parses bars from `reader` with the default [`ReadOptions`]; `source` names the input in messages.
///
/// # Errors
///
/// As [`load_bars_with`].
pub fn parse_bars(reader: impl BufRead, source: &str) -> Result<Vec<Bar>, DataError> {
    let table = read_table_from(reader, source, &ReadOptions::default(), BAR_ROLES)?;
    bars_from_table(table).map(|loaded| loaded.rows)
}

/// Parses quotes from `reader` with the default [`ReadOptions`]; `source` names the input in messages.
///
/// # Errors
///
/// As [`load_quotes_with`].
pub fn parse_quotes(reader: impl BufRead, source: &str) -> Result<Vec<Quote>, DataError> {
    let table = read_table_from(reader, source, &ReadOptions::default(), QUOTE_ROLES)?;
    quotes_from_table(table).map(|loaded| loaded.rows)
}

/// The values of `role`, checked: above zero for a price (`price`), zero or more for a size.
fn checked(table: &Table, role: Role, price: bool) -> Result<&[f64], DataError> {
    let values = table.numbers(role).unwrap_or_default();
    let bad = values
        .iter()
        .position(|&v| if price { v <= 0.0 } else { v < 0.0 });
    let (Some(i), Some(col)) = (bad, table.column(role)) else {
        return Ok(values);
    };
    let (file, line, column, field, value) = (
        table.source.clone(),
        table.lines[i],
        col.column,
        col.header.clone(),
        values[i],
    );
    Err(if price {
        DataError::NonPositivePrice {
            file,
            line,
            column,
            field,
            value,
        }
    } else {
        DataError::NegativeSize {
            file,
            line,
            column,
            field,
            value,
        }
    })
}

fn bars_from_table(table: Table) -> Result<LoadedRows<Bar>, DataError> {
    let open = checked(&table, Role::Open, true)?;
    let high = checked(&table, Role::High, true)?;
    let low = checked(&table, Role::Low, true)?;
    let close = checked(&table, Role::Close, true)?;
    let volume = checked(&table, Role::Volume, false)?;
    let rows = (table.times.iter().enumerate())
        .map(|(i, &timestamp_ms)| Bar {
            timestamp_ms,
            open: open[i],
            high: high[i],
            low: low[i],
            close: close[i],
            volume: volume[i],
        })
        .collect();
    Ok(LoadedRows {
        rows,
        notes: table.notes.clone(),
    })
}

fn quotes_from_table(table: Table) -> Result<LoadedRows<Quote>, DataError> {
    let bid = checked(&table, Role::Bid, true)?;
    let ask = checked(&table, Role::Ask, true)?;
    let bid_size = checked(&table, Role::BidSize, false)?;
    let ask_size = checked(&table, Role::AskSize, false)?;
    let rows = (table.times.iter().enumerate())
        .map(|(i, &timestamp_ms)| Quote {
            timestamp_ms,
            bid: bid[i],
            ask: ask[i],
            bid_size: bid_size[i],
            ask_size: ask_size[i],
        })
        .collect();
    Ok(LoadedRows {
        rows,
        notes: table.notes.clone(),
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
            // A small epoch integer is read as seconds under the default `auto` time format.
            "ask_size,bid_size,ask,bid,time\n3,4,100.5,100.25,5\n".as_bytes(),
            "q.csv",
        )
        .unwrap();
        assert_eq!(
            quotes,
            [Quote {
                timestamp_ms: 5_000,
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
            "b.csv, line 1: missing required column `volume` (accepted names: volume, vol; or name it with --columns volume=HEADER); header found: `time,open,high,low,close`"
        );
        assert_eq!(
            err("time,open,high,low,close,volume\n1,1,2,x,1,1\n"),
            "b.csv, line 2, column 4 (low): `x` is not a number"
        );
        assert_eq!(
            err("time,open,high,low,close,volume\n5,1,2,1,1,1\n4,1,2,1,1,1\n"),
            "b.csv, line 3, column 1 (time): time goes backwards: `4` is 1000 ms before the previous row (line 2)"
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
