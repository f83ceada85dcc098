//! The replay: orders in a map, level totals per side, one reading of the book after the last row of each event
//! time.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{
    BookError, BookEvent, BookOptions, BookReplay, BookSide, BookSnapshot, BookSummary, Level,
    MAX_LEVELS, OrderAction, OrderRow, SnapshotPolicy, TradeRow, push_checked,
};
use crate::limits::check_memory;

/// An order resting in the book.
#[derive(Debug, Clone, Copy)]
struct Resting {
    side: BookSide,
    price: i64,
    size: u64,
    /// The line that created it.
    line: u64,
}

/// The book: every resting order, and the total size at each price per side.
///
/// Totals are `u128`, so adding and removing `u64` sizes is exact whatever the input; a level shows its total
/// saturated at `u64::MAX`.
struct Book<'a> {
    file: &'a str,
    max_orders: usize,
    orders: HashMap<u64, Resting>,
    bids: BTreeMap<i64, u128>,
    asks: BTreeMap<i64, u128>,
}

impl Book<'_> {
    fn levels(&mut self, side: BookSide) -> &mut BTreeMap<i64, u128> {
        match side {
            BookSide::Bid => &mut self.bids,
            BookSide::Ask => &mut self.asks,
        }
    }

    fn add_level(&mut self, side: BookSide, price: i64, size: u64) {
        if size > 0 {
            *self.levels(side).entry(price).or_insert(0) += u128::from(size);
        }
    }

    fn remove_level(&mut self, side: BookSide, price: i64, size: u64) {
        if size == 0 {
            return;
        }
        let levels = self.levels(side);
        if let Some(total) = levels.get_mut(&price) {
            // The order's own size is part of the total, so this never goes below zero.
            *total -= u128::from(size);
            if *total == 0 {
                levels.remove(&price);
            }
        }
    }

    fn create(&mut self, row: &OrderRow) -> Result<(), BookError> {
        if let Some(old) = self.orders.get(&row.id) {
            return Err(BookError::DuplicateCreate {
                file: self.file.to_string(),
                line: row.line,
                id: row.id,
                first: old.line,
            });
        }
        if self.orders.len() >= self.max_orders {
            return Err(BookError::TooManyOrders {
                file: self.file.to_string(),
                line: row.line,
                limit: self.max_orders,
            });
        }
        if self.orders.len() == self.orders.capacity() {
            // The map doubles: check that before it allocates (an entry, its control byte, some slack).
            let entry = std::mem::size_of::<(u64, Resting)>() as u64 + 1;
            let needed = (self.orders.capacity().max(16) as u64 * 2).saturating_mul(entry);
            check_memory(needed, || {
                format!(
                    "the order map of {} ({} orders)",
                    self.file,
                    self.orders.len()
                )
            })?;
        }
        self.orders.insert(
            row.id,
            Resting {
                side: row.side,
                price: row.price_ticks,
                size: row.size_lots,
                line: row.line,
            },
        );
        self.add_level(row.side, row.price_ticks, row.size_lots);
        Ok(())
    }

    fn unknown(&self, row: &OrderRow, action: &'static str) -> BookError {
        BookError::UnknownOrder {
            file: self.file.to_string(),
            line: row.line,
            id: row.id,
            action,
        }
    }

    fn change(&mut self, row: &OrderRow) -> Result<(), BookError> {
        let Some(old) = self.orders.get(&row.id).copied() else {
            return Err(self.unknown(row, "change"));
        };
        if old.side != row.side {
            return Err(BookError::SideChanged {
                file: self.file.to_string(),
                line: row.line,
                id: row.id,
                from: old.side.name(),
                to: row.side.name(),
            });
        }
        self.remove_level(old.side, old.price, old.size);
        self.add_level(row.side, row.price_ticks, row.size_lots);
        self.orders.insert(
            row.id,
            Resting {
                price: row.price_ticks,
                size: row.size_lots,
                ..old
            },
        );
        Ok(())
    }

    fn delete(&mut self, row: &OrderRow) -> Result<(), BookError> {
        let Some(old) = self.orders.remove(&row.id) else {
            return Err(self.unknown(row, "delete"));
        };
        self.remove_level(old.side, old.price, old.size);
        Ok(())
    }

    /// The best `n` levels of `side`, best first, into `out`; returns how many there are.
    fn top(&self, side: BookSide, n: usize, out: &mut [Level; MAX_LEVELS]) -> usize {
        let level = |(&price, &total): (&i64, &u128)| Level {
            price_ticks: price,
            size_lots: u64::try_from(total).unwrap_or(u64::MAX),
        };
        let mut k = 0;
        let mut put = |l: Level| {
            out[k] = l;
            k += 1;
        };
        match side {
            BookSide::Bid => self.bids.iter().rev().take(n).map(level).for_each(&mut put),
            BookSide::Ask => self.asks.iter().take(n).map(level).for_each(&mut put),
        }
        k
    }
}

/// The rows at the end of the file that only delete every order still resting (a capture's synthetic
/// deletions): the index where that block starts, or `None` when the last block is anything else.
///
/// The block is the rows at the last event time, after the leading snapshot's time; it qualifies when all its
/// rows are deletions of distinct orders and they are exactly the orders a full replay leaves resting.
fn trailing_deletes(rows: &[OrderRow], snapshot_end: usize, max_orders: usize) -> Option<usize> {
    let last_time = rows.last()?.time_ms;
    let start = rows.partition_point(|r| r.time_ms < last_time);
    if start < snapshot_end.max(1) {
        return None;
    }
    let block = &rows[start..];
    if block.iter().any(|r| r.action != OrderAction::Delete) {
        return None;
    }
    let mut open = HashSet::new();
    for r in &rows[..start] {
        match r.action {
            OrderAction::Create => {
                if open.len() >= max_orders {
                    // The replay refuses this file anyway, naming the limit.
                    return None;
                }
                open.insert(r.id);
            }
            OrderAction::Delete => {
                open.remove(&r.id);
            }
            OrderAction::Change => {}
        }
    }
    if open.len() != block.len() {
        return None;
    }
    for r in block {
        if !open.remove(&r.id) {
            return None;
        }
    }
    Some(start)
}

/// The value at the nearest rank `ceil(p * n)` of a histogram of `n` values.
fn percentile(histogram: &BTreeMap<i64, u64>, n: u64, p: f64) -> Option<i64> {
    if n == 0 {
        return None;
    }
    let rank = ((p * n as f64).ceil() as u64).clamp(1, n);
    let mut seen = 0;
    for (&value, &count) in histogram {
        seen += count;
        if seen >= rank {
            return Some(value);
        }
    }
    None
}

/// Replays `rows` (of the orders file `file`, in file order, times non-decreasing) and merges `trades` (times
/// non-decreasing) into one stream of events.
pub(super) fn replay(
    rows: &[OrderRow],
    file: &str,
    trades: Vec<TradeRow>,
    opts: &BookOptions,
) -> Result<BookReplay, BookError> {
    opts.validate()?;
    let mut summary = BookSummary {
        rows: rows.len(),
        ..BookSummary::default()
    };
    let Some(first) = rows.first() else {
        return Err(BookError::NoRows {
            file: file.to_string(),
        });
    };
    summary.first_time_ms = Some(first.time_ms);
    let snapshot_end = rows.partition_point(|r| r.time_ms == first.time_ms);

    let end = if opts.drop_trailing_deletes {
        trailing_deletes(rows, snapshot_end, opts.max_orders).unwrap_or(rows.len())
    } else {
        rows.len()
    };
    summary.trailing_deletes_dropped = rows.len() - end;

    // The snapshot orders the policy drops; rows naming them later are ignored.
    let snapshot_ids = rows[..snapshot_end]
        .iter()
        .filter(|r| r.action == OrderAction::Create)
        .map(|r| r.id);
    let dropped: HashSet<u64> = match opts.snapshot_policy {
        SnapshotPolicy::All => HashSet::new(),
        SnapshotPolicy::LiveOnly => snapshot_ids.collect(),
        SnapshotPolicy::Reappearing => {
            let live: HashSet<u64> = rows[snapshot_end..end].iter().map(|r| r.id).collect();
            snapshot_ids.filter(|id| !live.contains(id)).collect()
        }
    };
    summary.snapshot_orders = rows[..snapshot_end]
        .iter()
        .filter(|r| r.action == OrderAction::Create)
        .count();
    summary.snapshot_dropped = dropped.len();
    summary.snapshot_kept = summary.snapshot_orders - dropped.len();

    let mut book = Book {
        file,
        max_orders: opts.max_orders,
        orders: HashMap::new(),
        bids: BTreeMap::new(),
        asks: BTreeMap::new(),
    };
    let mut events: Vec<BookEvent> = Vec::new();
    let mut trades = trades.into_iter().peekable();
    let mut prev: Option<(Vec<Level>, Vec<Level>)> = None;
    let mut spreads: BTreeMap<i64, u64> = BTreeMap::new();
    let mut bid_buf = [Level::default(); MAX_LEVELS];
    let mut ask_buf = [Level::default(); MAX_LEVELS];
    let push_event = |events: &mut Vec<BookEvent>, e: BookEvent| {
        push_checked(events, e, || format!("the book events of {file}"))
    };

    // Whether a row of the current event time was applied to the book.
    let mut applied = false;
    for (i, row) in rows[..end].iter().enumerate() {
        let is_dropped = !dropped.is_empty() && dropped.contains(&row.id);
        if is_dropped {
            // A dropped snapshot order: its creation in the snapshot, and anything later naming it.
            if i >= snapshot_end {
                summary.ignored_rows += 1;
            }
        } else if row.action == OrderAction::Delete
            && opts.ignore_unknown_deletes
            && !book.orders.contains_key(&row.id)
        {
            summary.unknown_deletes_ignored += 1;
        } else {
            match row.action {
                OrderAction::Create => {
                    book.create(row)?;
                    summary.orders_seen += 1;
                }
                OrderAction::Change => book.change(row)?,
                OrderAction::Delete => book.delete(row)?,
            }
            summary.replayed_rows += 1;
            summary.max_resting_orders = summary.max_resting_orders.max(book.orders.len());
            applied = true;
        }
        if i + 1 < end && rows[i + 1].time_ms == row.time_ms {
            continue;
        }
        // The last row of this event time: read the book, if any row of that time changed it.
        if !std::mem::take(&mut applied) {
            continue;
        }
        let t = row.time_ms;
        while let Some(trade) = trades.next_if(|tr| tr.time_ms <= t) {
            push_event(&mut events, trade.into_event())?;
            summary.trades += 1;
        }
        summary.readings += 1;
        summary.last_time_ms = Some(t);
        if let (Some((&bid, _)), Some((&ask, _))) =
            (book.bids.last_key_value(), book.asks.first_key_value())
        {
            if bid >= ask {
                return Err(BookError::Crossed {
                    file: file.to_string(),
                    line: row.line,
                    time_ms: t,
                    bid,
                    ask,
                });
            }
            summary.two_sided_readings += 1;
            *spreads.entry(ask - bid).or_insert(0) += 1;
        }
        let nb = book.top(BookSide::Bid, opts.levels, &mut bid_buf);
        let na = book.top(BookSide::Ask, opts.levels, &mut ask_buf);
        let (bids, asks) = (&bid_buf[..nb], &ask_buf[..na]);
        if prev
            .as_ref()
            .is_some_and(|(pb, pa)| pb.as_slice() == bids && pa.as_slice() == asks)
        {
            continue;
        }
        let snapshot = BookSnapshot {
            time_ms: t,
            line: row.line,
            bids: bids.to_vec(),
            asks: asks.to_vec(),
        };
        prev = Some((snapshot.bids.clone(), snapshot.asks.clone()));
        push_event(&mut events, BookEvent::Snapshot(snapshot))?;
        summary.snapshots += 1;
    }
    for trade in trades {
        push_event(&mut events, trade.into_event())?;
        summary.trades += 1;
    }
    let n = summary.two_sided_readings as u64;
    summary.median_spread_ticks = percentile(&spreads, n, 0.5);
    summary.p90_spread_ticks = percentile(&spreads, n, 0.9);
    summary.p99_spread_ticks = percentile(&spreads, n, 0.99);
    Ok(BookReplay { events, summary })
}
