//! Reading order and trade files through the `csv` crate: column mapping, exact prices and sizes, time order.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use super::decimal::{Decimal, ToUnitsError};
use super::error::BookGrid;
use super::{BookError, BookOptions, BookSide, OrderAction, OrderRow, TradeRow, push_checked};
use crate::data::Side;
use crate::data::time::parse_timestamp_ms;
use crate::limits::MAX_LINE_BYTES;

/// The accepted header names of a column, best first: when several are present the first in this list is used
/// (so `exchange_timestamp` wins over `timestamp`).
struct Role {
    role: &'static str,
    names: &'static [&'static str],
    accepted: &'static str,
}

const TIME: Role = Role {
    role: "time",
    names: &["exchange_timestamp", "timestamp", "time"],
    accepted: "exchange_timestamp, timestamp, time",
};
const ID: Role = Role {
    role: "id",
    names: &["id", "order_id"],
    accepted: "id, order_id",
};
const PRICE: Role = Role {
    role: "price",
    names: &["price"],
    accepted: "price",
};
const VOLUME: Role = Role {
    role: "volume",
    names: &["volume", "size", "quantity", "amount"],
    accepted: "volume, size, quantity, amount",
};
const ACTION: Role = Role {
    role: "action",
    names: &["action"],
    accepted: "action",
};
const DIRECTION: Role = Role {
    role: "direction",
    names: &["direction", "side"],
    accepted: "direction, side",
};
const AMOUNT: Role = Role {
    role: "amount",
    names: &["amount", "size", "volume", "quantity"],
    accepted: "amount, size, volume, quantity",
};
const SIDE: Role = Role {
    role: "side",
    names: &["side", "direction"],
    accepted: "side, direction",
};
const BUY_ID: Role = Role {
    role: "buy_order_id",
    names: &["buy_order_id"],
    accepted: "buy_order_id",
};
const SELL_ID: Role = Role {
    role: "sell_order_id",
    names: &["sell_order_id"],
    accepted: "sell_order_id",
};

/// Opens `path` for reading, through a gzip decoder when its name ends in `.gz`.
pub(super) fn open(path: &Path) -> Result<Box<dyn Read>, BookError> {
    let file = File::open(path).map_err(|source| BookError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file = BufReader::with_capacity(1 << 16, file);
    let gz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    Ok(if gz {
        // Multi-member streams (`cat a.gz b.gz`) are valid gzip and decode as one.
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    })
}

/// The marker inside the I/O error [`LineLimit`] returns, with the line that was too long.
#[derive(Debug)]
struct LineTooLongAt(u64);

impl std::fmt::Display for LineTooLongAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {} is longer than {MAX_LINE_BYTES} bytes", self.0)
    }
}

impl std::error::Error for LineTooLongAt {}

/// A reader that fails once a line passes [`MAX_LINE_BYTES`], so a file without line ends (or a gzip bomb of
/// one) is refused after 64 KiB instead of growing the CSV reader's record buffer without bound.
struct LineLimit<R> {
    inner: R,
    /// Bytes of the current line so far.
    run: usize,
    /// 1-based number of the current line.
    line: u64,
}

impl<R: Read> Read for LineLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut segments = buf[..n].split(|&b| b == b'\n');
        if let Some(first) = segments.next() {
            self.run += first.len();
        }
        for seg in segments {
            if self.run > MAX_LINE_BYTES {
                break;
            }
            self.line += 1;
            self.run = seg.len();
        }
        if self.run > MAX_LINE_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                LineTooLongAt(self.line),
            ));
        }
        Ok(n)
    }
}

/// A CSV file being read: its name, header and reader.
struct Table<R: Read> {
    file: String,
    header: Vec<String>,
    reader: csv::Reader<LineLimit<R>>,
    record: csv::ByteRecord,
    /// 1-based line of the current record.
    line: u64,
}

impl<R: Read> Table<R> {
    fn open(reader: R, file: &str, expected: &'static str) -> Result<Self, BookError> {
        let reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(LineLimit {
                inner: reader,
                run: 0,
                line: 1,
            });
        let mut table = Table {
            file: file.to_string(),
            header: Vec::new(),
            reader,
            record: csv::ByteRecord::new(),
            line: 1,
        };
        let header = match table.reader.byte_headers() {
            Ok(h) => h.clone(),
            Err(e) => return Err(table.csv_error(e)),
        };
        if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
            return Err(BookError::Empty {
                file: file.to_string(),
                expected,
            });
        }
        table.header = header
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect();
        Ok(table)
    }

    fn csv_error(&self, e: csv::Error) -> BookError {
        let line = e.position().map_or(self.line, |p| p.line());
        let message = e.to_string();
        match e.into_kind() {
            csv::ErrorKind::Io(source) => {
                if let Some(at) = source
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<LineTooLongAt>())
                {
                    return BookError::LineTooLong {
                        file: self.file.clone(),
                        line: at.0,
                        limit: MAX_LINE_BYTES,
                    };
                }
                BookError::Read {
                    file: self.file.clone(),
                    line,
                    source,
                }
            }
            _ => BookError::Csv {
                file: self.file.clone(),
                line,
                message,
            },
        }
    }

    /// The column of `role`: the header field matching the best-ranked name (case and surrounding spaces
    /// ignored).
    fn column(&self, role: &Role, required: bool) -> Result<Option<usize>, BookError> {
        let mut best: Option<(usize, usize)> = None; // (rank, index)
        for (i, name) in self.header.iter().enumerate() {
            let name = name.trim().to_ascii_lowercase();
            let Some(rank) = role.names.iter().position(|n| *n == name) else {
                continue;
            };
            match best {
                Some((r, first)) if r == rank => {
                    return Err(BookError::DuplicateColumn {
                        file: self.file.clone(),
                        column: i + 1,
                        first: first + 1,
                        name: self.header[i].clone(),
                        role: role.role,
                    });
                }
                Some((r, _)) if r < rank => {}
                _ => best = Some((rank, i)),
            }
        }
        match best {
            Some((_, i)) => Ok(Some(i)),
            None if required => Err(BookError::MissingColumn {
                file: self.file.clone(),
                column: role.role,
                accepted: role.accepted,
                header: self.header.join(","),
            }),
            None => Ok(None),
        }
    }

    /// Reads the next record; `false` at the end.
    fn next(&mut self) -> Result<bool, BookError> {
        match self.reader.read_byte_record(&mut self.record) {
            Ok(true) => {
                self.line = self.record.position().map_or(self.line + 1, |p| p.line());
                if self.record.len() != self.header.len() {
                    return Err(BookError::FieldCount {
                        file: self.file.clone(),
                        line: self.line,
                        expected: self.header.len(),
                        found: self.record.len(),
                    });
                }
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) => Err(self.csv_error(e)),
        }
    }

    /// The text of column `i` of the current record.
    fn text(&self, i: usize) -> &str {
        std::str::from_utf8(&self.record[i]).unwrap_or("\u{fffd}")
    }

    fn bad(&self, i: usize, expected: &'static str) -> BookError {
        BookError::BadField {
            file: self.file.clone(),
            line: self.line,
            column: i + 1,
            field: self.header[i].clone(),
            text: String::from_utf8_lossy(&self.record[i]).into_owned(),
            expected,
        }
    }

    fn id(&self, i: usize) -> Result<u64, BookError> {
        let text = self.text(i);
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.bad(i, "an order id (a whole number from 0 to 2^64 - 1)"));
        }
        text.parse()
            .map_err(|_| self.bad(i, "an order id (a whole number from 0 to 2^64 - 1)"))
    }

    fn optional_id(&self, i: usize) -> Result<Option<u64>, BookError> {
        if self.text(i).is_empty() {
            Ok(None)
        } else {
            self.id(i).map(Some)
        }
    }

    fn time(&self, i: usize) -> Result<i64, BookError> {
        parse_timestamp_ms(self.text(i)).ok_or_else(|| {
            self.bad(
                i,
                "a time (integer epoch milliseconds, `YYYY-MM-DD HH:MM:SS[.fff]` or `YYYY-MM-DDTHH:MM:SS[.fff][Z]`)",
            )
        })
    }

    /// The field as a whole number of `unit`s.
    fn units(&self, i: usize, unit: &Decimal, unit_name: BookGrid) -> Result<i128, BookError> {
        let value: Decimal = self
            .text(i)
            .parse()
            .map_err(|_| self.bad(i, "a decimal number"))?;
        value.units(unit).map_err(|e| match e {
            ToUnitsError::OffGrid => BookError::OffGrid {
                file: self.file.clone(),
                line: self.line,
                column: i + 1,
                field: self.header[i].clone(),
                text: self.text(i).to_string(),
                unit_name,
                unit: unit.to_string(),
            },
            ToUnitsError::OutOfRange => self.out_of_range(i, unit_name),
        })
    }

    fn out_of_range(&self, i: usize, unit_name: BookGrid) -> BookError {
        BookError::OutOfRange {
            file: self.file.clone(),
            line: self.line,
            column: i + 1,
            field: self.header[i].clone(),
            text: self.text(i).to_string(),
            what: if unit_name == BookGrid::Tick {
                "prices (-2^63 to 2^63 - 1 ticks)"
            } else {
                "sizes (0 to 2^64 - 1 lots)"
            },
        }
    }

    fn price(&self, i: usize, opts: &BookOptions) -> Result<i64, BookError> {
        let ticks = self.units(i, &opts.tick_size, BookGrid::Tick)?;
        i64::try_from(ticks).map_err(|_| self.out_of_range(i, BookGrid::Tick))
    }

    fn size(&self, i: usize, opts: &BookOptions) -> Result<u64, BookError> {
        let lots = self.units(i, &opts.lot_size, BookGrid::Lot)?;
        u64::try_from(lots).map_err(|_| self.out_of_range(i, BookGrid::Lot))
    }

    /// Reads every remaining record into the row `row` makes of it, given the record's time: the one loop of
    /// both files, with the time column `time` read and checked never to go back, and the rows counted against
    /// the memory limit.
    fn read_rows<T>(
        &mut self,
        time: usize,
        mut row: impl FnMut(&Self, i64) -> Result<T, BookError>,
    ) -> Result<Vec<T>, BookError> {
        let mut rows = Vec::new();
        let mut last = None;
        while self.next()? {
            let time_ms = self.time(time)?;
            self.in_order(time, time_ms, last)?;
            last = Some(time_ms);
            let made = row(self, time_ms)?;
            push_checked(&mut rows, made, || format!("the rows of {}", self.file))?;
        }
        Ok(rows)
    }

    /// Checks that `time` is not before `last`, the previous row's time.
    fn in_order(&self, i: usize, time: i64, last: Option<i64>) -> Result<(), BookError> {
        match last {
            Some(last) if time < last => Err(BookError::TimeBackwards {
                file: self.file.clone(),
                line: self.line,
                column: i + 1,
                field: self.header[i].clone(),
                time_ms: time,
                back_ms: last.saturating_sub(time),
            }),
            _ => Ok(()),
        }
    }
}

/// The spellings of each action, compared without case.
const ACTIONS: [(&str, OrderAction); 8] = [
    ("created", OrderAction::Create),
    ("deleted", OrderAction::Delete),
    ("changed", OrderAction::Change),
    ("create", OrderAction::Create),
    ("add", OrderAction::Create),
    ("change", OrderAction::Change),
    ("modify", OrderAction::Change),
    ("delete", OrderAction::Delete),
];

/// The spellings of each side of the book, compared without case.
const DIRECTIONS: [(&str, BookSide); 4] = [
    ("bid", BookSide::Bid),
    ("ask", BookSide::Ask),
    ("buy", BookSide::Bid),
    ("sell", BookSide::Ask),
];

/// The value of the first spelling in `table` equal to `text` without regard to ASCII case (no allocation
/// per row).
fn one_of<T: Copy>(text: &str, table: &[(&str, T)]) -> Option<T> {
    table
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(text))
        .map(|&(_, v)| v)
}

/// Reads every row of an orders file (already decompressed) named `file` in messages.
pub(super) fn read_orders<R: Read>(
    reader: R,
    file: &str,
    opts: &BookOptions,
) -> Result<Vec<OrderRow>, BookError> {
    let mut t = Table::open(
        reader,
        file,
        "id,exchange_timestamp,price,volume,action,direction",
    )?;
    let id = t.column(&ID, true)?.unwrap_or_default();
    let time = t.column(&TIME, true)?.unwrap_or_default();
    let price = t.column(&PRICE, true)?.unwrap_or_default();
    let volume = t.column(&VOLUME, true)?.unwrap_or_default();
    let action = t.column(&ACTION, true)?.unwrap_or_default();
    let direction = t.column(&DIRECTION, true)?.unwrap_or_default();
    let rows = t.read_rows(time, |t, time_ms| {
        let act = match one_of(t.text(action), &ACTIONS) {
            Some(a) => a,
            None => {
                return Err(t.bad(
                    action,
                    "an action (created, changed, deleted, add, modify or delete)",
                ));
            }
        };
        let Some(side) = one_of(t.text(direction), &DIRECTIONS) else {
            return Err(t.bad(direction, "a direction (bid, ask, buy or sell)"));
        };
        Ok(OrderRow {
            id: t.id(id)?,
            time_ms,
            price_ticks: t.price(price, opts)?,
            size_lots: t.size(volume, opts)?,
            action: act,
            side,
            line: t.line,
        })
    })?;
    if rows.is_empty() {
        return Err(BookError::NoRows {
            file: file.to_string(),
        });
    }
    Ok(rows)
}

/// The spellings of a trade's aggressor side, compared without case.
const TRADE_SIDES: [(&str, Side); 4] = [
    ("buy", Side::Buy),
    ("sell", Side::Sell),
    ("b", Side::Buy),
    ("s", Side::Sell),
];

/// Reads every row of a trades file (already decompressed) named `file` in messages.
pub(super) fn read_trades<R: Read>(
    reader: R,
    file: &str,
    opts: &BookOptions,
) -> Result<Vec<TradeRow>, BookError> {
    let mut t = Table::open(reader, file, "exchange_timestamp,price,amount,side")?;
    let time = t.column(&TIME, true)?.unwrap_or_default();
    let price = t.column(&PRICE, true)?.unwrap_or_default();
    let amount = t.column(&AMOUNT, true)?.unwrap_or_default();
    let side = t.column(&SIDE, false)?;
    let buy_id = t.column(&BUY_ID, false)?;
    let sell_id = t.column(&SELL_ID, false)?;
    t.read_rows(time, |t, time_ms| {
        let side = match side {
            None => None,
            Some(i) if t.text(i).is_empty() => None,
            Some(i) => match one_of(t.text(i), &TRADE_SIDES) {
                Some(side) => Some(side),
                None => return Err(t.bad(i, "a side (buy, sell, b, s or empty)")),
            },
        };
        Ok(TradeRow {
            time_ms,
            line: t.line,
            price_ticks: t.price(price, opts)?,
            size_lots: t.size(amount, opts)?,
            side,
            buy_order_id: buy_id.map(|i| t.optional_id(i)).transpose()?.flatten(),
            sell_order_id: sell_id.map(|i| t.optional_id(i)).transpose()?.flatten(),
        })
    })
}
