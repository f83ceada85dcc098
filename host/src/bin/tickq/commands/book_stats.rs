//! `tickq book-stats`: replay an order-by-order (L3) file, with its trades, and print the replay's summary.

use clap::Args;
use std::path::PathBuf;
use tickq_host::data::{
    BOOK_LEVELS, BOOK_MAX_ORDERS, BookOptions, DEFAULT_LEVELS, DEFAULT_MAX_ORDERS, SnapshotPolicy,
    load_book,
};
use tickq_host::steps::PipelineError;

use crate::args::{ranged_default, whole};
use crate::out;

#[derive(Args, Debug)]
pub(crate) struct BookStatsArgs {
    /// Orders file (CSV; `.gz` is decompressed): id, exchange_timestamp (or timestamp), price, volume, action
    /// (created/changed/deleted or add/modify/delete), direction (bid/ask or buy/sell). See docs/DATA.md.
    pub(crate) orders: PathBuf,
    /// Trades file to merge by time: exchange_timestamp, price, amount[, side, buy_order_id, sell_order_id].
    #[arg(long, value_name = "CSV")]
    pub(crate) trades: Option<PathBuf>,
    /// Price grid, as decimal text (`1`, `0.01`): every price must be a whole number of ticks.
    #[arg(long, value_name = "DECIMAL", allow_negative_numbers = true)]
    pub(crate) tick_size: String,
    /// Size grid, as decimal text (`0.00000001`): every size must be a whole number of lots.
    #[arg(long, value_name = "DECIMAL", allow_negative_numbers = true)]
    pub(crate) lot_size: String,
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole(BOOK_LEVELS),
          help = ranged_default("Levels per side in each snapshot", DEFAULT_LEVELS, BOOK_LEVELS))]
    pub(crate) levels: Option<usize>,
    /// The leading snapshot's orders (the rows at the first event time): live-only drops them, reappearing
    /// keeps those named again by a live row, all keeps them all.
    #[arg(long, value_name = "POLICY", default_value_t = SnapshotPolicy::Reappearing)]
    pub(crate) snapshot_policy: SnapshotPolicy,
    /// Drop the trailing block when it deletes every resting order (a capture's closing deletions, detected);
    /// `false` replays it.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub(crate) drop_trailing_deletes: bool,
    /// Ignore deletions of orders not in the book (a feed that starts after its snapshot) instead of refusing
    /// them.
    #[arg(long)]
    pub(crate) ignore_unknown_deletes: bool,
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole(BOOK_MAX_ORDERS),
          help = ranged_default("The most orders resting at once", DEFAULT_MAX_ORDERS, BOOK_MAX_ORDERS))]
    pub(crate) max_orders: Option<usize>,
}

pub(crate) fn run(a: BookStatsArgs) -> Result<(), PipelineError> {
    let mut opts = BookOptions::from_text(&a.tick_size, &a.lot_size)?;
    opts.levels = a.levels.unwrap_or(DEFAULT_LEVELS);
    opts.snapshot_policy = a.snapshot_policy;
    opts.drop_trailing_deletes = a.drop_trailing_deletes;
    opts.ignore_unknown_deletes = a.ignore_unknown_deletes;
    opts.max_orders = a.max_orders.unwrap_or(DEFAULT_MAX_ORDERS);
    let start = std::time::Instant::now();
    let replay = load_book(&a.orders, a.trades.as_deref(), &opts)?;
    let elapsed = start.elapsed();
    out(&format!(
        "orders: {} (tick size {}, lot size {}, {} levels, snapshot policy {})",
        a.orders.display(),
        opts.tick_size,
        opts.lot_size,
        opts.levels,
        opts.snapshot_policy
    ))?;
    out(&replay.summary.to_string())?;
    out(&format!("replayed in {:.3} s", elapsed.as_secs_f64()))
}
