//! `tickq book-stats` end to end on a synthetic order-by-order file written at test time.

mod common;

use common::{ok, refused, s, scratch};

const ORDERS: &str = "\
id,timestamp,exchange_timestamp,price,volume,action,direction
1,10,1000,100.0,0.5,created,bid
2,10,1000,101.0,0.25,created,ask
3,10,1000,150.0,1,created,ask
4,20,2000,100.0,1e-8,created,bid
2,21,2000,101.0,0.125,changed,ask
1,30,3000,100.0,0.5,deleted,bid
5,40,4000,102.0,1,created,ask
4,50,5000,100,0,deleted,bid
2,50,5000,101,0,deleted,ask
5,50,5000,102,0,deleted,ask
3,50,5000,150,1,deleted,ask
";

const TRADES: &str = "\
exchange_timestamp,price,amount,side,buy_order_id,sell_order_id
2000,101.0,0.125,buy,4,2
";

#[test]
fn book_stats_prints_the_replay_summary() {
    let dir = scratch("book-stats");
    let orders = dir.join("orders.csv");
    let trades = dir.join("trades.csv");
    std::fs::write(&orders, ORDERS).unwrap();
    std::fs::write(&trades, TRADES).unwrap();
    let grid = ["--tick-size", "1", "--lot-size", "0.00000001"];
    let mut args = vec!["book-stats", s(&orders), "--trades", s(&trades)];
    args.extend(grid);
    assert!(ok(&["book-stats", "--help"]).contains("Usage"));
    let text = ok(&args);
    // Order 3 is never named again: dropped. The block at 5000 deletes every resting order: dropped.
    for line in [
        "rows: 11 (6 replayed, 0 naming dropped snapshot orders ignored, 0 unknown deletions ignored, 4 trailing \
         deletions dropped)",
        "snapshot orders: 3 (2 kept, 1 dropped)",
        "readings: 4 (4 two-sided), snapshots emitted: 4, trades: 1",
        "spread in ticks: median 1, p90 1, p99 1",
    ] {
        assert!(text.contains(line), "`{line}` not in:\n{text}");
    }
    let mut args = vec!["book-stats", s(&orders), "--snapshot-policy", "all"];
    args.extend(grid);
    assert!(ok(&args).contains("snapshot orders: 3 (3 kept, 0 dropped)"));
    // Replaying the closing block: every snapshot order is named again, and the book ends empty.
    let mut args = vec!["book-stats", s(&orders), "--drop-trailing-deletes", "false"];
    args.extend(grid);
    let text = ok(&args);
    assert!(text.contains("3 (3 kept, 0 dropped)"), "{text}");
    assert!(text.contains("0 trailing deletions dropped"), "{text}");
    assert!(text.contains("readings: 5 (4 two-sided)"), "{text}");

    let mut args = vec![
        "book-stats",
        s(&orders),
        "--tick-size",
        "0.3",
        "--lot-size",
        "1e-8",
    ];
    let e = refused(&args, 2);
    assert_eq!(
        e,
        format!(
            "error: {}, line 2, column 4 (price): `100.0` is not a whole number of tick_size = 0.3",
            orders.display()
        )
    );
    args = vec![
        "book-stats",
        s(&orders),
        "--tick-size",
        "-1",
        "--lot-size",
        "1",
    ];
    assert_eq!(
        refused(&args, 2),
        "error: invalid book setting: tick_size must be a positive decimal number, found `-1`"
    );
    std::fs::remove_dir_all(&dir).ok();
}
