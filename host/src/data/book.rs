//! Order-by-order (level 3) book replay: a feed of every order's creation, change and deletion, plus an optional
//! trades file, turned into a time-ordered stream of top-of-book snapshots and trades.
//!
//! The recipe (docs/DATA.md, "Order-by-order books"):
//!
//! 1. Read the orders file (CSV, gzip-compressed when its name ends in `.gz`) through the `csv` crate, every
//!    price and size converted exactly to whole ticks and lots ([`Decimal`], no floating point); rows must be in
//!    non-decreasing event time, file order breaking ties.
//! 2. The leading snapshot (the rows at the first event time) is kept or dropped by [`SnapshotPolicy`]; the
//!    trailing block of synthetic deletions (the rows at the last event time, when they delete exactly every
//!    resting order) is dropped unless [`BookOptions::drop_trailing_deletes`] is off.
//! 3. Replay the rows in order, keeping every order (id to side, price, size) and the total size per price and
//!    side; read the book only after the last row of each event time (within one millisecond a feed often shows
//!    the incoming order before the deletions of the orders it matched). A reading that is crossed or locked is
//!    an error.
//! 4. Emit a [`BookSnapshot`] of the top [`BookOptions::levels`] levels per side whenever they changed, and the
//!    trades merged in by time (a trade before the reading of its millisecond, since that reading already shows
//!    its fills).
//!
//! # Example
//!
//! ```no_run
//! use tickq_host::data::{BookEvent, BookOptions, load_book};
//!
//! let opts = BookOptions::from_text("1", "0.00000001")?;
//! let replay = load_book("orders.csv.gz".as_ref(), Some("trades.csv".as_ref()), &opts)?;
//! for event in &replay.events {
//!     if let BookEvent::Snapshot(s) = event {
//!         println!("{} ms: best bid {:?}, best ask {:?}", s.time_ms, s.bids.first(), s.asks.first());
//!     }
//! }
//! println!("{}", replay.summary);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod decimal;
mod error;
mod read;
mod replay;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

pub use decimal::{Decimal, ParseDecimalError};
pub use error::{BookError, BookGrid};

use crate::data::Side;
use crate::limits::{Count, MemoryError, check_memory};

/// The most levels per side a snapshot may carry.
pub const MAX_LEVELS: usize = 16;

/// The range of [`BookOptions::levels`]: 1 to [`MAX_LEVELS`].
pub const BOOK_LEVELS: Count = Count::new(1, MAX_LEVELS as u64);

/// The levels per side of a snapshot unless set otherwise.
pub const DEFAULT_LEVELS: usize = 5;

/// The range of [`BookOptions::max_orders`]: 1 to 2^28 resting orders (about 10 GiB of order map at the top).
pub const BOOK_MAX_ORDERS: Count = Count::new(1, 1 << 28);

/// The most resting orders a book may hold unless set otherwise: 2^24 (16.8 million, about 600 MiB of order
/// map), a hundred times the deepest crypto books.
pub const DEFAULT_MAX_ORDERS: usize = 1 << 24;

/// What to do with the orders of the leading snapshot (the rows at the first event time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotPolicy {
    /// `live-only`: drop every snapshot order; later rows naming one are ignored.
    LiveOnly,
    /// `reappearing` (the default): keep the snapshot orders whose id appears again in the live rows (a change or
    /// delete after the snapshot, before any dropped trailing block), drop the others, which may be stale.
    #[default]
    Reappearing,
    /// `all`: keep every snapshot order, as for a feed whose first rows are ordinary events.
    All,
}

impl SnapshotPolicy {
    /// The policy's name as the command line and docs/DATA.md write it.
    pub fn name(self) -> &'static str {
        match self {
            SnapshotPolicy::LiveOnly => "live-only",
            SnapshotPolicy::Reappearing => "reappearing",
            SnapshotPolicy::All => "all",
        }
    }
}

impl fmt::Display for SnapshotPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SnapshotPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "live-only" => Ok(SnapshotPolicy::LiveOnly),
            "reappearing" => Ok(SnapshotPolicy::Reappearing),
            "all" => Ok(SnapshotPolicy::All),
            _ => Err(format!(
                "unknown snapshot policy `{}` (expected live-only, reappearing or all)",
                crate::limits::excerpt(s)
            )),
        }
    }
}

/// The settings of a book replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookOptions {
    /// The price grid: every price must be a whole number of ticks of this size (positive).
    pub tick_size: Decimal,
    /// The size grid: every size must be a whole number of lots of this size (positive).
    pub lot_size: Decimal,
    /// Levels per side in each snapshot, [`BOOK_LEVELS`] (default [`DEFAULT_LEVELS`]).
    pub levels: usize,
    /// The leading snapshot's orders (default [`SnapshotPolicy::Reappearing`]).
    pub snapshot_policy: SnapshotPolicy,
    /// Drop the trailing block when it deletes every resting order (default on). Off, or when the last block is
    /// anything else, every row is replayed.
    pub drop_trailing_deletes: bool,
    /// Ignore the deletion of an order that is not in the book (default off: an error). A capture whose feed
    /// starts a little after its snapshot deletes a few orders created in between; deleting what is not there
    /// changes nothing, so ignoring it is safe, unlike an unknown change (always an error).
    pub ignore_unknown_deletes: bool,
    /// The most orders the book may hold at once, [`BOOK_MAX_ORDERS`] (default [`DEFAULT_MAX_ORDERS`]),
    /// checked before each create.
    pub max_orders: usize,
}

impl BookOptions {
    /// The default options for the grid `tick_size` by `lot_size`.
    pub fn new(tick_size: Decimal, lot_size: Decimal) -> Self {
        BookOptions {
            tick_size,
            lot_size,
            levels: DEFAULT_LEVELS,
            snapshot_policy: SnapshotPolicy::default(),
            drop_trailing_deletes: true,
            ignore_unknown_deletes: false,
            max_orders: DEFAULT_MAX_ORDERS,
        }
    }

    /// [`BookOptions::new`] with the grid given as decimal text (`"0.01"`, `"1e-8"`).
    ///
    /// # Errors
    ///
    /// [`BookError::BadUnit`] when a size is not a positive decimal number.
    pub fn from_text(tick_size: &str, lot_size: &str) -> Result<Self, BookError> {
        Ok(BookOptions::new(
            parse_unit("tick_size", tick_size)?,
            parse_unit("lot_size", lot_size)?,
        ))
    }

    /// Checks every setting against its range.
    ///
    /// # Errors
    ///
    /// [`BookError::BadUnit`] for a grid size that is not positive, [`BookError::Setting`] for `levels` or
    /// `max_orders` out of range.
    pub fn validate(&self) -> Result<(), BookError> {
        for (setting, unit) in [("tick_size", &self.tick_size), ("lot_size", &self.lot_size)] {
            if !unit.is_positive() {
                return Err(BookError::BadUnit {
                    setting,
                    text: unit.to_string(),
                });
            }
        }
        BOOK_LEVELS
            .check_usize(self.levels)
            .map_err(|source| BookError::Setting {
                setting: "levels",
                source,
            })?;
        BOOK_MAX_ORDERS
            .check_usize(self.max_orders)
            .map_err(|source| BookError::Setting {
                setting: "max_orders",
                source,
            })?;
        Ok(())
    }
}

/// `text` as a positive decimal, for the grid setting `setting`.
fn parse_unit(setting: &'static str, text: &str) -> Result<Decimal, BookError> {
    match text.trim().parse::<Decimal>() {
        Ok(d) if d.is_positive() => Ok(d),
        _ => Err(BookError::BadUnit {
            setting,
            text: text.to_string(),
        }),
    }
}

/// A side of the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookSide {
    /// Buy orders (`bid` or `buy` in the file).
    Bid,
    /// Sell orders (`ask` or `sell` in the file).
    Ask,
}

impl BookSide {
    /// `bid` or `ask`.
    pub fn name(self) -> &'static str {
        match self {
            BookSide::Bid => "bid",
            BookSide::Ask => "ask",
        }
    }
}

/// What a row does to its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderAction {
    /// `created` or `add`: a new order rests in the book.
    Create,
    /// `changed` or `modify`: the order's price and size become the row's (the size left after a partial fill).
    Change,
    /// `deleted` or `delete`: the order leaves the book (the row's price and size are not used).
    Delete,
}

/// One row of an orders file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderRow {
    /// The order id.
    pub id: u64,
    /// Event time, epoch milliseconds.
    pub time_ms: i64,
    /// Price in ticks.
    pub price_ticks: i64,
    /// Size in lots.
    pub size_lots: u64,
    /// What the row does.
    pub action: OrderAction,
    /// The order's side.
    pub side: BookSide,
    /// 1-based line in the file.
    pub line: u64,
}

/// One row of a trades file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TradeRow {
    time_ms: i64,
    line: u64,
    price_ticks: i64,
    size_lots: u64,
    side: Option<Side>,
    buy_order_id: Option<u64>,
    sell_order_id: Option<u64>,
}

impl TradeRow {
    fn into_event(self) -> BookEvent {
        BookEvent::Trade {
            time_ms: self.time_ms,
            line: self.line,
            price_ticks: self.price_ticks,
            size_lots: self.size_lots,
            side: self.side,
            buy_order_id: self.buy_order_id,
            sell_order_id: self.sell_order_id,
        }
    }
}

/// One price level: the total size resting at a price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Level {
    /// The price in ticks.
    pub price_ticks: i64,
    /// The total size of the orders at this price, in lots (saturated at `u64::MAX`).
    pub size_lots: u64,
}

/// The top levels of the book after the last row of one event time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookSnapshot {
    /// The event time, epoch milliseconds.
    pub time_ms: i64,
    /// 1-based line of the last orders-file row of that time.
    pub line: u64,
    /// The best bids, highest price first; at most [`BookOptions::levels`], fewer when the side is thinner.
    pub bids: Vec<Level>,
    /// The best asks, lowest price first; at most [`BookOptions::levels`].
    pub asks: Vec<Level>,
}

/// One event of a replay, in time order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BookEvent {
    /// The top levels changed.
    Snapshot(BookSnapshot),
    /// A trade from the trades file; it comes before the snapshot of the same millisecond, which already shows
    /// its fills.
    Trade {
        /// Exchange time, epoch milliseconds.
        time_ms: i64,
        /// 1-based line in the trades file.
        line: u64,
        /// Price in ticks.
        price_ticks: i64,
        /// Size in lots.
        size_lots: u64,
        /// The aggressor side, when the file has a `side` column and the field is not empty.
        side: Option<Side>,
        /// The buy order's id, when the file has a `buy_order_id` column.
        buy_order_id: Option<u64>,
        /// The sell order's id, when the file has a `sell_order_id` column.
        sell_order_id: Option<u64>,
    },
}

impl BookEvent {
    /// The event's time, epoch milliseconds.
    pub fn time_ms(&self) -> i64 {
        match self {
            BookEvent::Snapshot(s) => s.time_ms,
            BookEvent::Trade { time_ms, .. } => *time_ms,
        }
    }
}

/// What a replay saw, for the command line to print.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BookSummary {
    /// Rows in the orders file.
    pub rows: usize,
    /// Rows applied to the book (the others belong to dropped snapshot orders or the dropped trailing block).
    pub replayed_rows: usize,
    /// Rows after the snapshot naming a dropped snapshot order, ignored.
    pub ignored_rows: usize,
    /// Deletions of orders not in the book, ignored ([`BookOptions::ignore_unknown_deletes`]).
    pub unknown_deletes_ignored: usize,
    /// Rows of the trailing block of deletions that were dropped (0 when none was detected or the option is
    /// off).
    pub trailing_deletes_dropped: usize,
    /// Readings of the book: one after the last row of each event time with at least one row applied (a time
    /// whose rows were all ignored leaves the book as it was).
    pub readings: usize,
    /// Readings with both sides non-empty (the ones with a spread).
    pub two_sided_readings: usize,
    /// Snapshots emitted (readings whose top levels differ from the previous snapshot's).
    pub snapshots: usize,
    /// Trades emitted.
    pub trades: usize,
    /// Orders created in the replay, kept snapshot orders included.
    pub orders_seen: usize,
    /// The most orders resting at once.
    pub max_resting_orders: usize,
    /// Orders created by the leading snapshot.
    pub snapshot_orders: usize,
    /// Snapshot orders the policy kept.
    pub snapshot_kept: usize,
    /// Snapshot orders the policy dropped.
    pub snapshot_dropped: usize,
    /// Median spread (best ask - best bid) over the two-sided readings, in ticks (nearest rank).
    pub median_spread_ticks: Option<i64>,
    /// 90th percentile of the spread, in ticks (nearest rank).
    pub p90_spread_ticks: Option<i64>,
    /// 99th percentile of the spread, in ticks (nearest rank).
    pub p99_spread_ticks: Option<i64>,
    /// Event time of the first row, epoch milliseconds.
    pub first_time_ms: Option<i64>,
    /// Event time of the last reading, epoch milliseconds.
    pub last_time_ms: Option<i64>,
}

impl fmt::Display for BookSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |v: Option<i64>| v.map_or_else(|| "none".to_string(), |v| v.to_string());
        writeln!(
            f,
            "rows: {} ({} replayed, {} naming dropped snapshot orders ignored, {} unknown deletions ignored, \
             {} trailing deletions dropped)",
            self.rows,
            self.replayed_rows,
            self.ignored_rows,
            self.unknown_deletes_ignored,
            self.trailing_deletes_dropped
        )?;
        writeln!(
            f,
            "snapshot orders: {} ({} kept, {} dropped)",
            self.snapshot_orders, self.snapshot_kept, self.snapshot_dropped
        )?;
        writeln!(
            f,
            "orders seen: {} (at most {} resting at once)",
            self.orders_seen, self.max_resting_orders
        )?;
        writeln!(
            f,
            "readings: {} ({} two-sided), snapshots emitted: {}, trades: {}",
            self.readings, self.two_sided_readings, self.snapshots, self.trades
        )?;
        writeln!(
            f,
            "time: {} to {} ms",
            opt(self.first_time_ms),
            opt(self.last_time_ms)
        )?;
        write!(
            f,
            "spread in ticks: median {}, p90 {}, p99 {}",
            opt(self.median_spread_ticks),
            opt(self.p90_spread_ticks),
            opt(self.p99_spread_ticks)
        )
    }
}

/// The events of a replay and its summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookReplay {
    /// Snapshots and trades in time order.
    pub events: Vec<BookEvent>,
    /// What the replay saw.
    pub summary: BookSummary,
}

/// Replays the orders file `orders` (gzip-compressed when its name ends in `.gz`) and merges the trades file
/// `trades` (likewise) into it.
///
/// # Errors
///
/// Any [`BookError`]: the files cannot be read, a field is malformed or off the grid, time goes backwards, an
/// order is unknown or created twice, a reading is crossed, or a limit is passed.
pub fn load_book(
    orders: &Path,
    trades: Option<&Path>,
    opts: &BookOptions,
) -> Result<BookReplay, BookError> {
    opts.validate()?;
    let name = orders.display().to_string();
    let mut orders_reader = read::open(orders)?;
    let rows = read::read_orders(&mut orders_reader, &name, opts)?;
    let trade_rows = match trades {
        Some(path) => {
            let mut reader = read::open(path)?;
            read::read_trades(&mut reader, &path.display().to_string(), opts)?
        }
        None => Vec::new(),
    };
    replay::replay(&rows, &name, trade_rows, opts)
}

/// [`load_book`] over readers of already decompressed CSV text, named `orders_name` and the trades' name in
/// messages.
///
/// # Errors
///
/// As [`load_book`].
pub fn replay_book(
    orders: &mut dyn Read,
    orders_name: &str,
    trades: Option<(&mut dyn Read, &str)>,
    opts: &BookOptions,
) -> Result<BookReplay, BookError> {
    opts.validate()?;
    let rows = read::read_orders(orders, orders_name, opts)?;
    let trade_rows = match trades {
        Some((reader, name)) => read::read_trades(reader, name, opts)?,
        None => Vec::new(),
    };
    replay::replay(&rows, orders_name, trade_rows, opts)
}

/// The rows of an orders file, read but not replayed (for callers that replay them more than once).
///
/// # Errors
///
/// As [`load_book`], for reading.
pub fn read_order_rows(path: &Path, opts: &BookOptions) -> Result<Vec<OrderRow>, BookError> {
    opts.validate()?;
    let mut reader = read::open(path)?;
    read::read_orders(&mut reader, &path.display().to_string(), opts)
}

/// Replays rows already read (for example by [`read_order_rows`]), without trades; `file` names them in
/// messages.
///
/// # Errors
///
/// As [`load_book`], for the replay.
pub fn replay_order_rows(
    rows: &[OrderRow],
    file: &str,
    opts: &BookOptions,
) -> Result<BookReplay, BookError> {
    replay::replay(rows, file, Vec::new(), opts)
}

/// Pushes `item`, checking the memory a growth of `vec` needs first.
fn push_checked<T>(
    vec: &mut Vec<T>,
    item: T,
    what: impl FnOnce() -> String,
) -> Result<(), MemoryError> {
    if vec.len() == vec.capacity() {
        let new_cap = vec.capacity().max(1024) as u64 * 2;
        check_memory(
            new_cap.saturating_mul(std::mem::size_of::<T>() as u64),
            || format!("{} ({} items)", what(), vec.len()),
        )?;
        vec.reserve(vec.len().max(1024));
    }
    vec.push(item);
    Ok(())
}
