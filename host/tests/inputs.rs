//! `--input bars|quotes|book` end to end through the `tickq` binary: a small FX-style OHLCV bar file (the feed's
//! own `Time,Open,High,Low,Close,Volume` with `DD.MM.YYYY HH:MM:SS.mmm` times), a quote file and a synthetic
//! order-by-order feed with trades in Bitstamp's columns, each written at test time and taken through
//! `tickq train` → `tickq quantize` → `tickq eval`: no class warning, the baseline printed, the blob's feature
//! spec of the right kind, and the int8 model agreeing with the f32 one.

use std::fmt::Write as _;
use std::path::Path;

mod common;

use common::{fails, s, scratch, tickq};

/// A small deterministic generator (xorshift64*), so the fixtures need no crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }

    /// -1 or +1.
    fn step(&mut self) -> i64 {
        if self.next() & 1 == 0 { -1 } else { 1 }
    }
}

/// A tiny MLP over `features` features of one time step.
fn arch(dir: &Path, features: usize) -> std::path::PathBuf {
    let path = dir.join("tiny.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"tiny\"\nclasses = 3\n[input]\ntime_steps = 1\nfeatures = {features}\n[[layers]]\n\
             type = \"flatten\"\n[[layers]]\ntype = \"dense\"\nout = 16\n[[layers]]\ntype = \"relu\"\n\
             [[layers]]\ntype = \"dense\"\nout = 3\n"
        ),
    )
    .unwrap();
    path
}

/// Runs `tickq args`, asserts success and returns stdout and stderr together.
fn run(args: &[&str]) -> String {
    let out = tickq(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "tickq {args:?} failed:\n{text}");
    text
}

/// The percentage printed after `key` (`agreement 99.54 %`).
fn percent_after(text: &str, key: &str) -> f64 {
    let at = text
        .find(key)
        .unwrap_or_else(|| panic!("no `{key}` in:\n{text}"))
        + key.len();
    let rest = text[at..].trim_start();
    let end = rest.find(' ').unwrap_or(rest.len());
    rest[..end]
        .parse()
        .unwrap_or_else(|_| panic!("no number after `{key}` in:\n{text}"))
}

/// Train, quantize, inspect and evaluate on `data` with the `train_flags`; checks the classes, the baseline,
/// the blob's spec (`spec_line` in `tickq inspect`) and the agreement.
fn train_quantize_eval(
    dir: &Path,
    data: &Path,
    features: usize,
    train_flags: &[&str],
    spec_line: &str,
) {
    let arch = arch(dir, features);
    let ckpt = dir.join("ckpt");
    let mut args = vec![
        "train",
        "--arch",
        s(&arch),
        "--data",
        s(data),
        "--out",
        s(&ckpt),
        "--epochs",
        "4",
        "--device",
        "cpu",
    ];
    args.extend_from_slice(train_flags);
    let train = run(&args);
    // No class empty or over 80 % in a split (a random walk's train and test shares may still differ).
    assert!(
        !train.contains("sample: class shares") && !train.contains("(more than 80 %)"),
        "a degenerate class:\n{train}"
    );
    assert!(train.contains("majority-class baseline"), "{train}");
    let blob = dir.join("model.tqm");
    // The checkpoint's data settings, kind included, rebuild the samples: only the file (and its read options,
    // stored too) is given again.
    run(&["quantize", s(&ckpt), "--data", s(data), "--out", s(&blob)]);
    let inspect = run(&["inspect", s(&blob)]);
    assert!(
        inspect.contains(spec_line),
        "no `{spec_line}` in:\n{inspect}"
    );
    let report = dir.join("eval");
    let eval = run(&[
        "eval",
        s(&ckpt),
        "--blob",
        s(&blob),
        "--data",
        s(data),
        "--out",
        s(&report),
        "--device",
        "cpu",
        "--latency-calls",
        "100",
    ]);
    let agreement = percent_after(&eval, "agreement");
    assert!(agreement >= 90.0, "agreement {agreement} %:\n{eval}");
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(md.contains("majority-class baseline"), "{md}");
}

#[test]
fn fx_bars_train_quantize_eval() {
    let dir = scratch("inputs-bars");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut text = String::from("Time,Open,High,Low,Close,Volume\n");
    let mut price = 110_000i64; // 1.10000 in ticks of 0.00001
    for i in 0..2500i64 {
        let (day, minute) = (4 + i / 1440, i % 1440);
        let open = price;
        let close = price + rng.range(-12, 12);
        let high = open.max(close) + rng.range(0, 5);
        let low = open.min(close) - rng.range(0, 5);
        let volume = rng.range(100, 99_999);
        writeln!(
            text,
            "{day:02}.03.2024 {:02}:{:02}:00.000,{}.{:05},{}.{:05},{}.{:05},{}.{:05},{}.{:02}",
            minute / 60,
            minute % 60,
            open / 100_000,
            open % 100_000,
            high / 100_000,
            high % 100_000,
            low / 100_000,
            low % 100_000,
            close / 100_000,
            close % 100_000,
            volume / 100,
            volume % 100
        )
        .unwrap();
        price = close;
    }
    let data = dir.join("EURUSD_1m.csv");
    std::fs::write(&data, text).unwrap();
    let flags = [
        "--input",
        "bars",
        "--time-format",
        "%d.%m.%Y %H:%M:%S%.3f",
        "--size-unit",
        "0.01",
        "--horizon",
        "10",
        "--dead-band-bps",
        "0.5",
    ];
    train_quantize_eval(&dir, &data, 9, &flags, "bar_return_lags           1, 4, 24");
}

#[test]
fn quotes_train_quantize_eval() {
    let dir = scratch("inputs-quotes");
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    let mut text = String::from("time,bid,ask,bid_size,ask_size\n");
    let (mut ms, mut bid) = (1_709_510_400_000i64, 110_000i64);
    for _ in 0..2500 {
        bid += rng.range(-3, 3);
        let ask = bid + rng.range(1, 4);
        writeln!(
            text,
            "{ms},1.{:05},1.{:05},{},{}",
            bid - 100_000,
            ask - 100_000,
            rng.range(1, 50),
            rng.range(1, 50)
        )
        .unwrap();
        ms += rng.range(100, 2000);
    }
    let data = dir.join("quotes.csv");
    std::fs::write(&data, text).unwrap();
    let flags = [
        "--input",
        "quotes",
        "--horizon",
        "10",
        "--dead-band-bps",
        "0.3",
    ];
    train_quantize_eval(&dir, &data, 10, &flags, "book_ofi_windows          10, 100");
}

/// An order-by-order feed in Bitstamp's columns: each 100 ms the mid moves a tick and the book is renewed
/// (three levels a side, deleted and created again at the same millisecond), with one trade at the touch.
fn write_book(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let mut rng = Rng(0xDEAD_BEEF_CAFE_F00D);
    let mut orders =
        String::from("id,timestamp,exchange_timestamp,price,volume,action,direction\n");
    let mut trades = String::from(
        "trade_id,timestamp,exchange_timestamp,price,amount,buy_order_id,sell_order_id,side\n",
    );
    let (mut mid, mut next_id) = (10_000i64, 1u64);
    let mut resting: Vec<(u64, i64, u64, &str)> = Vec::new();
    for step in 0..2500i64 {
        let ms = 1_777_689_380_000 + step * 100;
        for (id, price, size, side) in resting.drain(..) {
            let (whole, frac) = (size / 100_000_000, size % 100_000_000);
            writeln!(
                orders,
                "{id},{ms},{ms},{price}.0,{whole}.{frac:08},deleted,{side}"
            )
            .unwrap();
        }
        mid += rng.step();
        if step > 0 {
            let side = if rng.next() & 1 == 0 { "buy" } else { "sell" };
            let price = if side == "buy" { mid + 1 } else { mid - 1 };
            let amount = rng.range(1, 50_000_000);
            writeln!(
                trades,
                "{step},{ms},{ms},{price}.0,0.{amount:08},1,2,{side}"
            )
            .unwrap();
        }
        for k in 1..=3i64 {
            for (side, price) in [("bid", mid - k), ("ask", mid + k)] {
                let size = rng.range(1, 300_000_000) as u64;
                let (whole, frac) = (size / 100_000_000, size % 100_000_000);
                writeln!(
                    orders,
                    "{next_id},{ms},{ms},{price}.0,{whole}.{frac:08},created,{side}"
                )
                .unwrap();
                resting.push((next_id, price, size, side));
                next_id += 1;
            }
        }
    }
    let (o, t) = (dir.join("orders.csv"), dir.join("trades.csv"));
    std::fs::write(&o, orders).unwrap();
    std::fs::write(&t, trades).unwrap();
    (o, t)
}

#[test]
fn order_book_train_quantize_eval() {
    let dir = scratch("inputs-book");
    let (orders, trades) = write_book(&dir);
    let flags = [
        "--input",
        "book",
        "--trades",
        s(&trades),
        "--tick-size",
        "1",
        "--size-unit",
        "0.00000001",
        "--book-depth-levels",
        "1,3",
        "--book-trade-windows",
        "10",
        "--horizon",
        "10",
        "--dead-band-bps",
        "1.5",
    ];
    train_quantize_eval(&dir, &orders, 12, &flags, "book_depth_levels         1, 3");
}

#[test]
fn bad_input_settings_are_refused() {
    let dir = scratch("inputs-bad");
    let arch = arch(&dir, 10);
    let (orders, _) = write_book(&dir);
    let ckpt = dir.join("ckpt");
    let common = [
        "train",
        "--arch",
        s(&arch),
        "--data",
        s(&orders),
        "--out",
        s(&ckpt),
        "--device",
        "cpu",
    ];
    let mut args = common.to_vec();
    args.extend_from_slice(&["--input", "ticks"]);
    let err = fails(&args);
    assert!(
        err.contains("invalid value 'ticks' for '--input <KIND>'"),
        "{err}"
    );
    let mut args = common.to_vec();
    args.extend_from_slice(&[
        "--input",
        "book",
        "--tick-size",
        "1",
        "--size-unit",
        "0.00000001",
        "--levels",
        "6",
    ]);
    let err = fails(&args);
    assert!(
        err.contains("invalid value '6' for '--levels <N>'"),
        "{err}"
    );
    let mut args = common.to_vec();
    args.extend_from_slice(&[
        "--input",
        "book",
        "--tick-size",
        "0.3",
        "--size-unit",
        "0.00000001",
    ]);
    let err = fails(&args);
    assert!(
        err.contains("orders.csv, line 2, column 4 (price)"),
        "{err}"
    );
}
