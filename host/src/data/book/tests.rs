//! Tests of the order-by-order replay on synthetic files written at test time, and (when `TICKQ_L3_ORDERS`
//! names it) on a real capture.

use std::io::Write;
use std::path::PathBuf;

use super::*;

const HEADER: &str = "id,exchange_timestamp,price,volume,action,direction\n";

/// Half-unit ticks and thousandth lots, so the fixtures exercise the grid conversion; the first time's rows
/// are ordinary events (`all`), except in the tests of the other policies.
fn opts() -> BookOptions {
    let mut o = BookOptions::from_text("0.5", "0.001").expect("valid grid");
    o.snapshot_policy = SnapshotPolicy::All;
    o
}

/// [`opts`] with the default snapshot policy.
fn reappearing() -> BookOptions {
    let o = opts();
    BookOptions {
        snapshot_policy: SnapshotPolicy::Reappearing,
        ..o
    }
}

fn run_with(body: &str, o: &BookOptions) -> Result<BookReplay, BookError> {
    let text = format!("{HEADER}{body}");
    replay_book(&mut text.as_bytes(), "orders.csv", None, o)
}

fn run(body: &str) -> BookReplay {
    run_with(body, &opts()).unwrap_or_else(|e| panic!("{e}"))
}

fn err(body: &str) -> String {
    match run_with(body, &opts()) {
        Ok(r) => panic!("expected an error, got {:?}", r.summary),
        Err(e) => e.to_string(),
    }
}

fn lv(price_ticks: i64, size_lots: u64) -> Level {
    Level {
        price_ticks,
        size_lots,
    }
}

fn snapshots(r: &BookReplay) -> Vec<&BookSnapshot> {
    r.events
        .iter()
        .filter_map(|e| match e {
            BookEvent::Snapshot(s) => Some(s),
            BookEvent::Trade { .. } => None,
        })
        .collect()
}

/// (time, bids, asks) of every snapshot.
fn books(r: &BookReplay) -> Vec<(i64, Vec<Level>, Vec<Level>)> {
    snapshots(r)
        .into_iter()
        .map(|s| (s.time_ms, s.bids.clone(), s.asks.clone()))
        .collect()
}

/// A scratch directory of this process, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tickq-book-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

#[test]
fn each_action_moves_the_levels_and_snapshots_follow_the_top() {
    // Times 1000 (the leading snapshot, kept whole by `all`), then live rows.
    let body = "\
1,1000,100.0,1.5,created,bid
2,1000,100,0.5,created,bid
3,1000,101.5,2,created,ask
4,2000,99.5,1,created,bid
2,3000,100,0.25,changed,bid
1,4000,100,0,deleted,bid
5,5000,0.5,1,created,bid
";
    let r = run(body);
    assert_eq!(
        books(&r),
        [
            (1000, vec![lv(200, 2000)], vec![lv(203, 2000)]),
            (
                2000,
                vec![lv(200, 2000), lv(199, 1000)],
                vec![lv(203, 2000)]
            ),
            (
                3000,
                vec![lv(200, 1750), lv(199, 1000)],
                vec![lv(203, 2000)]
            ),
            (4000, vec![lv(200, 250), lv(199, 1000)], vec![lv(203, 2000)]),
            (
                5000,
                vec![lv(200, 250), lv(199, 1000), lv(1, 1000)],
                vec![lv(203, 2000)]
            ),
        ]
    );
    let s = &r.summary;
    assert_eq!(
        (s.rows, s.replayed_rows, s.readings, s.snapshots),
        (7, 7, 5, 5)
    );
    assert_eq!((s.orders_seen, s.max_resting_orders), (5, 4));
    assert_eq!(
        (s.snapshot_orders, s.snapshot_kept, s.snapshot_dropped),
        (3, 3, 0)
    );
    assert_eq!(s.median_spread_ticks, Some(3));
    assert_eq!(snapshots(&r)[2].line, 6);
}

#[test]
fn a_change_can_move_the_price_and_a_zero_size_leaves_no_level() {
    let r = run("\
1,1000,10,1,created,bid
2,2000,11,1,created,ask
1,3000,10.5,2,changed,bid
1,4000,10.5,0,changed,bid
3,5000,9,0,created,bid
");
    assert_eq!(
        books(&r),
        [
            (1000, vec![lv(20, 1000)], vec![]),
            (2000, vec![lv(20, 1000)], vec![lv(22, 1000)]),
            (3000, vec![lv(21, 2000)], vec![lv(22, 1000)]),
            (4000, vec![], vec![lv(22, 1000)]),
        ]
    );
    // The zero-size create at 5000 changes nothing visible: no snapshot, but a reading.
    assert_eq!((r.summary.readings, r.summary.snapshots), (5, 4));
}

#[test]
fn the_book_is_read_only_after_the_last_row_of_each_time() {
    // At 2000 an incoming bid crosses the ask before the ask's deletion shows up: no error, one reading.
    let r = run("\
1,1000,10,1,created,ask
2,1000,9,1,created,bid
3,2000,10,1,created,bid
1,2000,10,1,deleted,ask
3,2000,10,1,deleted,bid
");
    assert_eq!(
        books(&r),
        [
            (1000, vec![lv(18, 1000)], vec![lv(20, 1000)]),
            (2000, vec![lv(18, 1000)], vec![]),
        ]
    );
    assert_eq!(snapshots(&r)[1].line, 6);
    assert_eq!((r.summary.readings, r.summary.two_sided_readings), (2, 1));
}

#[test]
fn generic_action_and_direction_names_and_the_timestamp_column() {
    let text = "order_id,timestamp,price,size,action,side\n\
                1,1000,10,1,add,buy\n\
                2,1000,11,1,add,sell\n\
                1,2000,10,0.5,modify,buy\n\
                2,3000,11,1,delete,sell\n";
    let r = replay_book(&mut text.as_bytes(), "generic.csv", None, &opts()).expect("replays");
    assert_eq!(
        books(&r),
        [
            (1000, vec![lv(20, 1000)], vec![lv(22, 1000)]),
            (2000, vec![lv(20, 500)], vec![lv(22, 1000)]),
            (3000, vec![lv(20, 500)], vec![]),
        ]
    );
    // With both time columns, the exchange's wins over the local receive time (which here goes backwards).
    let text = "id,timestamp,exchange_timestamp,price,volume,action,direction\n\
                1,5000,1000,10,1,created,bid\n\
                1,4000,2000,10,1,deleted,bid\n\
                2,4500,3000,9,1,created,bid\n";
    let r = replay_book(&mut text.as_bytes(), "both.csv", None, &opts()).expect("replays");
    assert_eq!(snapshots(&r)[1].time_ms, 2000);
}

/// A snapshot at 1000 of four orders: 1 (bid) is changed later, 2 (bid) deleted later, 3 (ask) never named
/// again and stale (it would cross the book at 3000), 4 (ask) never named again, far away.
const SNAPSHOT_FEED: &str = "\
1,1000,10,1,created,bid
2,1000,9,1,created,bid
3,1000,10.5,1,created,ask
4,1000,50,1,created,ask
5,2000,12,1,created,ask
1,2000,10,0.5,changed,bid
2,3000,9,1,deleted,bid
6,3000,11,1,created,bid
";

#[test]
fn reappearing_keeps_the_snapshot_orders_named_again() {
    let r = run_with(SNAPSHOT_FEED, &reappearing()).expect("replays");
    let s = &r.summary;
    assert_eq!(
        (s.snapshot_orders, s.snapshot_kept, s.snapshot_dropped),
        (4, 2, 2)
    );
    assert_eq!((s.replayed_rows, s.ignored_rows), (6, 0));
    assert_eq!(
        books(&r),
        [
            (1000, vec![lv(20, 1000), lv(18, 1000)], vec![]),
            (2000, vec![lv(20, 500), lv(18, 1000)], vec![lv(24, 1000)]),
            (3000, vec![lv(22, 1000), lv(20, 500)], vec![lv(24, 1000)]),
        ]
    );
    // The default policy is this one.
    let defaults = BookOptions::from_text("1", "1").expect("grid");
    assert_eq!(defaults.snapshot_policy, SnapshotPolicy::Reappearing);
    assert!(defaults.drop_trailing_deletes);
    assert_eq!((defaults.levels, defaults.max_orders), (5, 1 << 24));
}

#[test]
fn live_only_drops_the_snapshot_and_ignores_rows_naming_it() {
    let mut o = opts();
    o.snapshot_policy = SnapshotPolicy::LiveOnly;
    let r = run_with(SNAPSHOT_FEED, &o).expect("replays");
    let s = &r.summary;
    assert_eq!(
        (s.snapshot_orders, s.snapshot_kept, s.snapshot_dropped),
        (4, 0, 4)
    );
    // The change of 1 and the deletion of 2 name dropped orders: ignored, not errors.
    assert_eq!((s.replayed_rows, s.ignored_rows), (2, 2));
    // No reading at 1000: every row of that time was dropped, so the book did not change.
    assert_eq!(
        books(&r),
        [
            (2000, vec![], vec![lv(24, 1000)]),
            (3000, vec![lv(22, 1000)], vec![lv(24, 1000)]),
        ]
    );
}

#[test]
fn all_keeps_the_stale_snapshot_order_and_the_reading_is_crossed() {
    let e = run_with(SNAPSHOT_FEED, &opts()).expect_err("the stale ask crosses the new bid");
    assert_eq!(
        e.to_string(),
        "orders.csv, line 9: the book at 3000 ms is crossed or locked after the last event of that time: \
         best bid 22 ticks >= best ask 21 ticks"
    );
    assert!(matches!(
        e,
        BookError::Crossed {
            line: 9,
            time_ms: 3000,
            bid: 22,
            ask: 21,
            ..
        }
    ));
}

#[test]
fn a_locked_book_is_an_error_too() {
    assert_eq!(
        err("1,1000,10,1,created,bid\n2,2000,10,1,created,ask\n"),
        "orders.csv, line 3: the book at 2000 ms is crossed or locked after the last event of that time: \
         best bid 20 ticks >= best ask 20 ticks"
    );
}

/// Live rows, then a last block at 9000 deleting every resting order (3 and 5, and the stale snapshot order 4).
const TRAILING_FEED: &str = "\
1,1000,10,1,created,bid
4,1000,60,1,created,ask
1,2000,10,1,deleted,bid
3,3000,10,1,created,bid
5,3000,11,2,created,ask
5,9000,11,2,deleted,ask
4,9000,60,1,deleted,ask
3,9000,10,1,deleted,bid
";

#[test]
fn a_trailing_block_deleting_every_order_is_detected_and_dropped() {
    let r = run_with(TRAILING_FEED, &reappearing()).expect("replays");
    let s = &r.summary;
    assert_eq!(s.trailing_deletes_dropped, 3);
    assert_eq!(s.last_time_ms, Some(3000));
    // Order 4 is named again only in the dropped block: the reappearing policy drops it.
    assert_eq!((s.snapshot_kept, s.snapshot_dropped), (1, 1));
    let last = snapshots(&r).last().copied().expect("snapshots").clone();
    assert_eq!(
        (last.bids, last.asks),
        (vec![lv(20, 1000)], vec![lv(22, 2000)])
    );

    // Off: the block is replayed, the book ends empty, and order 4 counts as named again.
    let mut o = reappearing();
    o.drop_trailing_deletes = false;
    let r = run_with(TRAILING_FEED, &o).expect("replays");
    assert_eq!(r.summary.trailing_deletes_dropped, 0);
    assert_eq!(r.summary.snapshot_kept, 2);
    let last = snapshots(&r).last().copied().expect("snapshots").clone();
    assert_eq!((last.time_ms, last.bids, last.asks), (9000, vec![], vec![]));
}

#[test]
fn a_trailing_block_that_leaves_orders_or_does_more_than_delete_is_replayed() {
    // Order 5 survives the last block: not the synthetic block, replayed.
    let partial = "\
1,1000,10,1,created,bid
3,3000,10,1,created,bid
5,3000,11,2,created,ask
3,9000,10,1,deleted,bid
1,9000,10,1,deleted,bid
";
    let r = run(partial);
    assert_eq!(r.summary.trailing_deletes_dropped, 0);
    assert_eq!(r.summary.last_time_ms, Some(9000));
    // A create in the last block: replayed.
    let mixed = "\
1,1000,10,1,created,bid
1,9000,10,1,deleted,bid
2,9000,10,1,created,bid
";
    assert_eq!(run(mixed).summary.trailing_deletes_dropped, 0);
    // The leading snapshot is never taken for the trailing block, even when it is the only time.
    let single = "1,1000,10,1,created,bid\n";
    assert_eq!(run(single).summary.trailing_deletes_dropped, 0);
}

#[test]
fn unknown_orders_are_errors_naming_the_line_and_the_id() {
    assert_eq!(
        err("1,1000,10,1,created,bid\n7,2000,10,1,deleted,bid\n"),
        "orders.csv, line 3: delete of order 7, which is not in the book (never created, or already deleted)"
    );
    assert_eq!(
        err("1,1000,10,1,created,bid\n1,2000,10,1,deleted,bid\n1,3000,10,1,changed,bid\n"),
        "orders.csv, line 4: change of order 1, which is not in the book (never created, or already deleted)"
    );
}

#[test]
fn unknown_deletes_can_be_ignored_but_unknown_changes_cannot() {
    let mut o = opts();
    o.ignore_unknown_deletes = true;
    let body = "1,1000,10,1,created,bid\n7,2000,10,1,deleted,bid\n2,3000,11,1,created,ask\n";
    let r = run_with(body, &o).expect("replays");
    assert_eq!(r.summary.unknown_deletes_ignored, 1);
    // The time 2000 held only the ignored row: no reading there.
    assert_eq!(
        books(&r),
        [
            (1000, vec![lv(20, 1000)], vec![]),
            (3000, vec![lv(20, 1000)], vec![lv(22, 1000)]),
        ]
    );
    let e = run_with("1,1000,10,1,created,bid\n7,2000,10,1,changed,bid\n", &o).expect_err("change");
    assert_eq!(
        e.to_string(),
        "orders.csv, line 3: change of order 7, which is not in the book (never created, or already deleted)"
    );
}

#[test]
fn a_duplicate_create_is_an_error_but_a_recreated_id_is_not() {
    assert_eq!(
        err("1,1000,10,1,created,bid\n2,2000,10,1,created,bid\n2,3000,10,1,created,bid\n"),
        "orders.csv, line 4: order 2 is created again; it is in the book since line 3"
    );
    let r = run("1,1000,10,1,created,bid\n1,2000,10,1,deleted,bid\n1,3000,10,1,created,bid\n");
    assert_eq!(r.summary.orders_seen, 2);
}

#[test]
fn a_change_to_the_other_side_is_an_error() {
    assert_eq!(
        err("1,1000,10,1,created,bid\n1,2000,10,1,changed,ask\n"),
        "orders.csv, line 3: change of order 1 moves it from the bid side to the ask side"
    );
}

#[test]
fn prices_and_sizes_are_exact_and_off_grid_values_are_errors() {
    // Scientific notation and long decimals convert without float error.
    let r = run("1,1000,1e1,2.6e-2,created,bid\n2,1000,10.50000,0.0010,created,ask\n");
    assert_eq!(books(&r), [(1000, vec![lv(20, 26)], vec![lv(21, 1)])]);
    assert_eq!(
        err("1,1000,10.25,1,created,bid\n"),
        "orders.csv, line 2, column 3 (price): `10.25` is not a whole number of tick_size = 0.5"
    );
    assert_eq!(
        err("1,1000,10,0.0005,created,bid\n"),
        "orders.csv, line 2, column 4 (volume): `0.0005` is not a whole number of lot_size = 0.001"
    );
    assert_eq!(
        err("1,1000,ten,1,created,bid\n"),
        "orders.csv, line 2, column 3 (price): `ten` is not a decimal number"
    );
    assert_eq!(
        err("1,1000,10,-1,created,bid\n"),
        "orders.csv, line 2, column 4 (volume): `-1` is outside the range of sizes (0 to 2^64 - 1 lots)"
    );
    assert_eq!(
        err("1,1000,1e300,1,created,bid\n"),
        "orders.csv, line 2, column 3 (price): `1e300` is outside the range of prices (-2^63 to 2^63 - 1 ticks)"
    );
}

#[test]
fn time_going_backwards_is_an_error_naming_the_line() {
    assert_eq!(
        err("1,1000,10,1,created,bid\n2,2000,10,1,created,bid\n3,1500,10,1,created,bid\n"),
        "orders.csv, line 4, column 2 (exchange_timestamp): time goes backwards: 1500 is 500 ms before the \
         previous row's"
    );
}

#[test]
fn malformed_rows_and_headers_are_errors() {
    assert_eq!(
        err("1,1000,10,1,cancelled,bid\n"),
        "orders.csv, line 2, column 5 (action): `cancelled` is not an action (created, changed, deleted, add, \
         modify or delete)"
    );
    assert_eq!(
        err("1,1000,10,1,created,up\n"),
        "orders.csv, line 2, column 6 (direction): `up` is not a direction (bid, ask, buy or sell)"
    );
    assert_eq!(
        err("x1,1000,10,1,created,bid\n"),
        "orders.csv, line 2, column 1 (id): `x1` is not an order id (a whole number from 0 to 2^64 - 1)"
    );
    assert_eq!(
        err("1,yesterday,10,1,created,bid\n"),
        "orders.csv, line 2, column 2 (exchange_timestamp): `yesterday` is not a time (integer epoch \
         milliseconds, `YYYY-MM-DD HH:MM:SS[.fff]` or `YYYY-MM-DDTHH:MM:SS[.fff][Z]`)"
    );
    assert_eq!(
        err("1,1000,10,1,created\n"),
        "orders.csv, line 2: expected 6 fields as in the header, found 5"
    );
    assert_eq!(err(""), "orders.csv: header only, no order rows");
    let missing = "id,exchange_timestamp,price,action,direction\n1,1000,10,created,bid\n";
    let e = replay_book(&mut missing.as_bytes(), "orders.csv", None, &opts()).expect_err("no size");
    assert_eq!(
        e.to_string(),
        "orders.csv, line 1: missing required column `volume` (accepted names: volume, size, quantity, \
         amount); header found: `id,exchange_timestamp,price,action,direction`"
    );
    let twice = "id,exchange_timestamp,price,volume,volume,action,direction\n";
    let e = replay_book(&mut twice.as_bytes(), "orders.csv", None, &opts()).expect_err("two sizes");
    assert_eq!(
        e.to_string(),
        "orders.csv, line 1, column 5: `volume` is a second `volume` column (the first is column 4)"
    );
    let e = replay_book(&mut "".as_bytes(), "orders.csv", None, &opts()).expect_err("empty");
    assert_eq!(
        e.to_string(),
        "orders.csv: empty input, expected a header line such as \
         `id,exchange_timestamp,price,volume,action,direction`"
    );
}

#[test]
fn a_line_without_end_is_refused_after_the_limit() {
    let long = format!("{HEADER}1,1000,10,1,created,bid\n{}", "9".repeat(200_000));
    let e = replay_book(&mut long.as_bytes(), "orders.csv", None, &opts()).expect_err("too long");
    assert_eq!(
        e.to_string(),
        "orders.csv, line 3: longer than 65536 bytes, the most a line may have (is this a CSV file with line \
         ends?)"
    );
}

#[test]
fn settings_and_limits_are_checked() {
    let mut o = opts();
    o.levels = 17;
    let e = run_with("1,1000,10,1,created,bid\n", &o).expect_err("levels");
    assert_eq!(
        e.to_string(),
        "invalid book setting: levels: 17 is out of range: expected a whole number from 1 to 16"
    );
    let e = BookOptions::from_text("0", "1").expect_err("zero tick");
    assert_eq!(
        e.to_string(),
        "invalid book setting: tick_size must be a positive decimal number, found `0`"
    );
    let mut o = opts();
    o.max_orders = 2;
    let e = run_with(
        "1,1000,10,1,created,bid\n2,1000,10,1,created,bid\n3,2000,9,1,created,bid\n",
        &o,
    )
    .expect_err("limit");
    assert_eq!(
        e.to_string(),
        "orders.csv, line 4: the book would hold more than 2 resting orders (the max_orders limit)"
    );
    assert_eq!(
        "sometimes".parse::<SnapshotPolicy>(),
        Err(
            "unknown snapshot policy `sometimes` (expected live-only, reappearing or all)"
                .to_string()
        )
    );
    for p in [
        SnapshotPolicy::LiveOnly,
        SnapshotPolicy::Reappearing,
        SnapshotPolicy::All,
    ] {
        assert_eq!(p.name().parse::<SnapshotPolicy>(), Ok(p));
    }
}

#[test]
fn snapshots_carry_the_top_levels_only_and_only_when_they_change() {
    let mut o = opts();
    o.levels = 2;
    let r = run_with(
        "\
1,1000,10,1,created,bid
2,1000,9,1,created,bid
3,1000,8,1,created,bid
4,1000,11,1,created,ask
3,2000,8,1,deleted,bid
5,3000,7,1,created,bid
6,4000,9.5,1,created,bid
",
        &o,
    )
    .expect("replays");
    // 2000 and 3000 change the third level and below only: no snapshot.
    assert_eq!(
        books(&r),
        [
            (1000, vec![lv(20, 1000), lv(18, 1000)], vec![lv(22, 1000)]),
            (4000, vec![lv(20, 1000), lv(19, 1000)], vec![lv(22, 1000)]),
        ]
    );
    assert_eq!((r.summary.readings, r.summary.snapshots), (4, 2));
}

const TRADES_HEADER: &str =
    "trade_id,timestamp,exchange_timestamp,price,amount,buy_order_id,sell_order_id,side\n";

#[test]
fn trades_merge_by_time_before_the_reading_of_their_millisecond() {
    let orders = format!(
        "{HEADER}\
1,1000,10,1,created,bid
2,1000,11,2,created,ask
3,2000,11,0.5,created,bid
2,2000,11,1.5,changed,ask
3,2000,11,0.5,deleted,bid
2,3000,11,1.5,deleted,ask
"
    );
    let trades = format!(
        "{TRADES_HEADER}\
1,999,500,10,0.1,,,sell
2,2001,2000,11,0.5,3,2,buy
3,2600,2500,10.5,0.001,4,5,
4,9001,9000,11,1,6,7,b
"
    );
    let r = replay_book(
        &mut orders.as_bytes(),
        "orders.csv",
        Some((&mut trades.as_bytes(), "trades.csv")),
        &opts(),
    )
    .expect("replays");
    let kinds: Vec<(i64, &str)> = r
        .events
        .iter()
        .map(|e| {
            let kind = match e {
                BookEvent::Snapshot(_) => "book",
                BookEvent::Trade { .. } => "trade",
            };
            (e.time_ms(), kind)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (500, "trade"),
            (1000, "book"),
            (2000, "trade"),
            (2000, "book"),
            (2500, "trade"),
            (3000, "book"),
            (9000, "trade"),
        ]
    );
    assert_eq!(
        r.events[2],
        BookEvent::Trade {
            time_ms: 2000,
            line: 3,
            price_ticks: 22,
            size_lots: 500,
            side: Some(Side::Buy),
            buy_order_id: Some(3),
            sell_order_id: Some(2),
        }
    );
    assert!(matches!(
        r.events[0],
        BookEvent::Trade {
            side: Some(Side::Sell),
            buy_order_id: None,
            ..
        }
    ));
    assert!(matches!(r.events[4], BookEvent::Trade { side: None, .. }));
    assert_eq!(r.summary.trades, 4);

    // Trades are checked like orders.
    let bad = format!("{TRADES_HEADER}1,1,2000,11,1,,,buy\n2,1,1000,11,1,,,buy\n");
    let e = replay_book(
        &mut orders.as_bytes(),
        "orders.csv",
        Some((&mut bad.as_bytes(), "trades.csv")),
        &opts(),
    )
    .expect_err("backwards");
    assert_eq!(
        e.to_string(),
        "trades.csv, line 3, column 3 (exchange_timestamp): time goes backwards: 1000 is 1000 ms before the \
         previous row's"
    );
    let bad = format!("{TRADES_HEADER}1,1,2000,11.2,1,,,buy\n");
    let e = replay_book(
        &mut orders.as_bytes(),
        "orders.csv",
        Some((&mut bad.as_bytes(), "trades.csv")),
        &opts(),
    )
    .expect_err("off grid");
    assert_eq!(
        e.to_string(),
        "trades.csv, line 2, column 4 (price): `11.2` is not a whole number of tick_size = 0.5"
    );
}

#[test]
fn gzip_files_are_read_by_their_extension() {
    let scratch = Scratch::new("gz");
    let body = format!("{HEADER}{SNAPSHOT_FEED}");
    let plain = scratch.0.join("orders.csv");
    std::fs::write(&plain, &body).expect("write");
    let gz = scratch.0.join("orders.csv.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(body.as_bytes()).expect("compress");
    std::fs::write(&gz, enc.finish().expect("compress")).expect("write");
    let trades = scratch.0.join("trades.csv");
    std::fs::write(&trades, format!("{TRADES_HEADER}1,1,2000,11,1,,,buy\n")).expect("write");

    let from_plain = load_book(&plain, Some(&trades), &reappearing()).expect("plain");
    let from_gz = load_book(&gz, Some(&trades), &reappearing()).expect("gz");
    assert_eq!(from_plain, from_gz);
    assert_eq!(from_gz.summary.snapshots, 3);
    assert_eq!(from_gz.summary.trades, 1);

    // A gzip name over plain text is a read error naming the file.
    let fake = scratch.0.join("fake.csv.gz");
    std::fs::write(&fake, &body).expect("write");
    let e = load_book(&fake, None, &opts()).expect_err("not gzip");
    assert!(matches!(e, BookError::Read { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("{}, line 1: read error", fake.display())),
        "{e}"
    );

    let missing = scratch.0.join("missing.csv");
    let e = load_book(&missing, None, &opts()).expect_err("missing");
    assert!(matches!(e, BookError::Io { .. }), "{e}");
}

/// The real capture of the `bitstamp-btcusd-l3-2026` data set (GPL data, never in the repository): run with
/// `TICKQ_L3_ORDERS=.../orders.csv.gz` (and `TICKQ_L3_TRADES=.../trades.csv`), best in release.
#[test]
fn real_capture_matches_its_readme() {
    let Some(orders) = std::env::var_os("TICKQ_L3_ORDERS") else {
        let mut err = std::io::stderr().lock();
        // A write to the handle itself bypasses libtest's capture, so the skip shows in `cargo test`.
        let _ = writeln!(
            err,
            "skipped: set TICKQ_L3_ORDERS=.../orders.csv.gz (and TICKQ_L3_TRADES=.../trades.csv) to run \
             real_capture_matches_its_readme"
        );
        return;
    };
    let trades = std::env::var_os("TICKQ_L3_TRADES").map(PathBuf::from);
    let orders = PathBuf::from(orders);
    let mut o = BookOptions::from_text("1", "0.00000001").expect("grid");
    // The live feed starts 0.7 s after the snapshot and deletes 13 orders created in between.
    o.ignore_unknown_deletes = true;
    let start = std::time::Instant::now();
    let r = load_book(&orders, trades.as_deref(), &o).expect("the capture replays, never crossed");
    let elapsed = start.elapsed();
    let s = &r.summary;
    let _ = writeln!(std::io::stderr().lock(), "{s}\nreplayed in {elapsed:?}");
    assert_eq!(s.rows, 314_057);
    assert_eq!(s.trailing_deletes_dropped, 6_518);
    assert_eq!(s.unknown_deletes_ignored, 13);
    assert_eq!(s.snapshot_orders, 6_512);
    assert_eq!((s.snapshot_kept, s.snapshot_dropped), (218, 6_294));
    assert_eq!((s.readings, s.two_sided_readings), (168_644, 168_644));
    assert_eq!(s.median_spread_ticks, Some(1));
    assert_eq!(s.p90_spread_ticks, Some(1));
    assert_eq!(s.p99_spread_ticks, Some(5));
    if trades.is_some() {
        assert_eq!(s.trades, 284);
    }

    let mut live = o.clone();
    live.snapshot_policy = SnapshotPolicy::LiveOnly;
    let r = load_book(&orders, None, &live).expect("live rows only: never crossed either");
    let _ = writeln!(std::io::stderr().lock(), "live-only:\n{}", r.summary);
    assert_eq!(r.summary.snapshot_kept, 0);
}

/// A seeded random feed replayed against a naive book (every level recomputed from the resting orders at each
/// reading): the same snapshots, in the same order.
#[test]
fn random_feeds_agree_with_a_naive_book() {
    use rand::{RngExt, SeedableRng};
    use std::collections::HashMap;

    for seed in 0..8u64 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut resting: Vec<u64> = Vec::new();
        let mut orders: HashMap<u64, (bool, i64, u64)> = HashMap::new();
        let mut body = String::new();
        let mut expected: Vec<(i64, Vec<Level>, Vec<Level>)> = Vec::new();
        let mut time = 1000i64;
        let mut next_id = 1u64;
        let naive = |orders: &HashMap<u64, (bool, i64, u64)>, bid: bool| {
            let mut levels: std::collections::BTreeMap<i64, u64> = Default::default();
            for &(b, p, s) in orders.values() {
                if b == bid && s > 0 {
                    *levels.entry(p).or_insert(0) += s;
                }
            }
            let all: Vec<Level> = levels.into_iter().map(|(p, s)| lv(p, s)).collect();
            if bid {
                all.into_iter().rev().take(3).collect::<Vec<_>>()
            } else {
                all.into_iter().take(3).collect()
            }
        };
        for _ in 0..600 {
            let roll = rng.random_range(0..10u32);
            if roll < 5 || resting.is_empty() {
                let bid = rng.random_bool(0.5);
                // Bids at 80 to 99, asks at 101 to 120 (in ticks of 0.5: 160..=198 and 202..=240).
                let price = if bid {
                    rng.random_range(160..=198i64)
                } else {
                    rng.random_range(202..=240i64)
                };
                let size = rng.random_range(0..5u64);
                let id = next_id;
                next_id += 1;
                let dir = if bid { "bid" } else { "ask" };
                body.push_str(&format!(
                    "{id},{time},{},{},created,{dir}\n",
                    Decimal::new(price as u128 * 5, -1),
                    size
                ));
                orders.insert(id, (bid, price, size * 1000));
                resting.push(id);
            } else {
                let k = rng.random_range(0..resting.len());
                let id = resting[k];
                let (bid, price, _) = orders[&id];
                let dir = if bid { "bid" } else { "ask" };
                let px = Decimal::new(price as u128 * 5, -1);
                if roll < 7 {
                    let size = rng.random_range(0..5u64);
                    body.push_str(&format!("{id},{time},{px},{size},changed,{dir}\n"));
                    orders.insert(id, (bid, price, size * 1000));
                } else {
                    body.push_str(&format!("{id},{time},{px},0,deleted,{dir}\n"));
                    orders.remove(&id);
                    resting.swap_remove(k);
                }
            }
            // The next row's time: often the same millisecond.
            let step = rng.random_range(0..3i64);
            if step > 0 {
                let reading = (time, naive(&orders, true), naive(&orders, false));
                if expected
                    .last()
                    .is_none_or(|(_, b, a)| (b, a) != (&reading.1, &reading.2))
                {
                    expected.push(reading);
                }
                time += step;
            }
        }
        // Close the last time with a create, so the last block is never a closing block of deletions.
        body.push_str(&format!("{next_id},{time},80,1,created,bid\n"));
        orders.insert(next_id, (true, 160, 1000));
        let reading = (time, naive(&orders, true), naive(&orders, false));
        if expected
            .last()
            .is_none_or(|(_, b, a)| (b, a) != (&reading.1, &reading.2))
        {
            expected.push(reading);
        }
        let mut o = opts();
        o.levels = 3;
        let r = run_with(&body, &o).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(books(&r), expected, "seed {seed}");
    }
}
