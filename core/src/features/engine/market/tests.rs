//! Tests of the bar and book features: against a direct evaluation of each definition over the whole history
//! (no ring, no running totals), the refusals, and a bit pin of a synthetic stream.
#![allow(clippy::indexing_slicing)]

extern crate std;
use std::vec;
use std::vec::Vec;

use super::super::super::market::{InputSpec, MAX_BOOK_LEVELS};
use super::super::super::spec::{FeatureSpec, WindowList};
use super::super::log_return_bp;
use super::*;
use crate::features::log::ln_1p;

fn list(items: &[u32]) -> WindowList {
    WindowList::new(items).unwrap()
}

fn bar_spec() -> FeatureSpec {
    FeatureSpec {
        return_lags_trades: WindowList::EMPTY,
        return_lags_ms: WindowList::EMPTY,
        flow_windows_trades: WindowList::EMPTY,
        flow_windows_ms: WindowList::EMPTY,
        volatility_windows_trades: WindowList::EMPTY,
        intensity_windows_ms: WindowList::EMPTY,
        vwap_windows_trades: WindowList::EMPTY,
        vwap_windows_ms: WindowList::EMPTY,
        range_windows_trades: WindowList::EMPTY,
        session_gap_ms: 2 * 3_600_000,
        capacity: 16,
        tick_size: 0.0001,
        size_unit: 1.0,
        input: InputSpec {
            kind: InputKind::Bars,
            bar_return_lags: list(&[1, 3, 15]),
            bar_volume_windows: list(&[4, 16]),
            ..InputSpec::TRADES
        },
    }
}

fn book_spec() -> FeatureSpec {
    FeatureSpec {
        session_gap_ms: 60_000,
        capacity: 12,
        input: InputSpec {
            kind: InputKind::Book,
            book_return_lags: list(&[1, 5, 11]),
            book_depth_levels: list(&[1, 3, 5]),
            book_ofi_windows: list(&[1, 4, 12]),
            book_trade_windows: list(&[2, 12]),
            ..InputSpec::TRADES
        },
        ..bar_spec()
    }
}

/// A small deterministic generator.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Hourly bars with a session break now and then (a weekend) and a few zero volumes.
fn bars(n: usize) -> Vec<Bar> {
    let mut rng = Lcg(7);
    let mut time = 1_700_000_000_000i64;
    let mut close = 11_000i64;
    (0..n)
        .map(|i| {
            time += if i % 37 == 36 {
                50 * 3_600_000
            } else {
                3_600_000
            };
            let open = close + rng.next(5) as i64 - 2;
            close = (open + rng.next(41) as i64 - 20).max(30);
            let high = open.max(close) + rng.next(10) as i64;
            let low = (open.min(close) - rng.next(10) as i64).max(1);
            Bar {
                time_ms: time,
                open_ticks: open,
                high_ticks: high,
                low_ticks: low,
                close_ticks: close,
                volume_lots: if i % 11 == 3 {
                    0
                } else {
                    rng.next(5_000) as u32
                },
            }
        })
        .collect()
}

/// One input of a book stream.
#[derive(Clone, Copy)]
enum Event {
    Book(BookLevels),
    Trade(Trade),
}

/// Snapshots of 1 to 5 levels with trades in between, and a long gap now and then.
fn events(n: usize) -> Vec<Event> {
    let mut rng = Lcg(11);
    let mut time = 0i64;
    let mut bid = 4_000i64;
    let mut out = Vec::new();
    for i in 0..n {
        time += if i % 53 == 52 {
            120_000
        } else {
            rng.next(300) as i64
        };
        if rng.next(3) == 0 {
            let price = bid + rng.next(3) as i64;
            let side = match rng.next(3) {
                0 => Side::Buy,
                1 => Side::Sell,
                _ => Side::Unknown,
            };
            out.push(Event::Trade(Trade {
                time_ms: time,
                price_ticks: price,
                size_lots: 1,
                side,
            }));
            continue;
        }
        bid = (bid + rng.next(3) as i64 - 1).max(10);
        let spread = 1 + rng.next(3) as i64;
        let depth = 1 + rng.next(MAX_BOOK_LEVELS as u64) as usize;
        let levels: Vec<BookLevel> = (0..depth as i64)
            .map(|k| BookLevel {
                bid_ticks: bid - k,
                bid_lots: rng.next(20) as u32,
                ask_ticks: bid + spread + k,
                ask_lots: rng.next(20) as u32,
            })
            .collect();
        out.push(Event::Book(BookLevels::new(time, &levels).unwrap()));
    }
    out
}

fn signed_log1p(x: i64) -> f32 {
    let m = ln_1p(x.unsigned_abs() as f32);
    if x < 0 { -m } else { m }
}

/// The features of bar `i` straight from the definitions.
fn direct_bar(spec: &FeatureSpec, bars: &[Bar], i: usize) -> (Vec<f32>, bool) {
    let gap = i64::from(spec.session_gap_ms);
    let start = (1..=i)
        .rev()
        .find(|&j| bars[j].time_ms - bars[j - 1].time_ms > gap)
        .unwrap_or(0);
    let floor = start.max((i + 1).saturating_sub(spec.capacity as usize));
    let b = bars[i];
    let c = b.close_ticks;
    let mut out = Vec::new();
    for &k in spec.input.bar_return_lags.as_slice() {
        let lo = i.saturating_sub(k as usize).max(floor);
        out.push(log_return_bp(c, bars[lo].close_ticks));
    }
    let bp = |x: i64| 1e4f32 * (x as f32 / c as f32);
    out.push(bp(b.high_ticks - b.low_ticks));
    out.push(bp(b.close_ticks - b.open_ticks));
    let pc = if i == start {
        c
    } else {
        bars[i - 1].close_ticks
    };
    out.push(bp(b.high_ticks.max(pc) - b.low_ticks.min(pc)));
    for &w in spec.input.bar_volume_windows.as_slice() {
        let lo = (i + 1).saturating_sub(w as usize).max(floor);
        let sum: i64 = bars[lo..=i].iter().map(|b| i64::from(b.volume_lots)).sum();
        let n = (i - lo + 1) as i64;
        out.push(if sum > 0 {
            (i64::from(b.volume_lots) * n) as f32 / sum as f32
        } else {
            0.0
        });
    }
    let (s, co) = time_of_day_sin_cos(b.time_ms);
    out.push(s);
    out.push(co);
    (out, i - start >= spec.warm_up().0 as usize)
}

/// The features of the snapshot at `events[i]` straight from the definitions.
fn direct_book(spec: &FeatureSpec, events: &[Event], i: usize) -> (Vec<f32>, bool) {
    let gap = i64::from(spec.session_gap_ms);
    let time = |e: &Event| match e {
        Event::Book(b) => b.time_ms,
        Event::Trade(t) => t.time_ms,
    };
    let start = (1..=i)
        .rev()
        .find(|&j| time(&events[j]) - time(&events[j - 1]) > gap)
        .unwrap_or(0);
    let session = &events[start..=i];
    let books: Vec<BookLevels> = session
        .iter()
        .filter_map(|e| match e {
            Event::Book(b) => Some(*b),
            Event::Trade(_) => None,
        })
        .collect();
    let trades: Vec<Trade> = session
        .iter()
        .filter_map(|e| match e {
            Event::Trade(t) => Some(*t),
            Event::Book(_) => None,
        })
        .collect();
    let cap = spec.capacity as usize;
    let j = books.len() - 1;
    let floor = (j + 1).saturating_sub(cap);
    let now = books[j].best();
    let mid2 = |b: &BookLevels| b.best().bid_ticks + b.best().ask_ticks;
    let mut out = vec![(now.ask_ticks - now.bid_ticks) as f32];
    for &k in spec.input.book_return_lags.as_slice() {
        let lo = j.saturating_sub(k as usize).max(floor);
        out.push(log_return_bp(mid2(&books[j]), mid2(&books[lo])));
    }
    let (qb, qa) = (i64::from(now.bid_lots), i64::from(now.ask_lots));
    out.push(if qb + qa > 0 {
        ((now.ask_ticks - now.bid_ticks) as i128 * (qb - qa) as i128) as f32
            / (2 * (qb + qa)) as f32
    } else {
        0.0
    });
    for &n in spec.input.book_depth_levels.as_slice() {
        let levels = books[j].levels();
        let bids: i64 = levels
            .iter()
            .take(n as usize)
            .map(|l| i64::from(l.bid_lots))
            .sum();
        let asks: i64 = levels
            .iter()
            .take(n as usize)
            .map(|l| i64::from(l.ask_lots))
            .sum();
        out.push(if bids + asks > 0 {
            (bids - asks) as f32 / (bids + asks) as f32
        } else {
            0.0
        });
    }
    let e = |m: usize| -> i64 {
        if m == 0 {
            return 0;
        }
        let (n, p) = (books[m].best(), books[m - 1].best());
        let mut e = 0;
        if n.bid_ticks >= p.bid_ticks {
            e += i64::from(n.bid_lots);
        }
        if n.bid_ticks <= p.bid_ticks {
            e -= i64::from(p.bid_lots);
        }
        if n.ask_ticks <= p.ask_ticks {
            e -= i64::from(n.ask_lots);
        }
        if n.ask_ticks >= p.ask_ticks {
            e += i64::from(p.ask_lots);
        }
        e
    };
    for &w in spec.input.book_ofi_windows.as_slice() {
        let lo = (j + 1).saturating_sub(w as usize).max(floor);
        out.push(signed_log1p((lo..=j).map(e).sum()));
    }
    for &w in spec.input.book_trade_windows.as_slice() {
        let n = trades.len();
        let lo = n.saturating_sub(w as usize).max(n.saturating_sub(cap));
        let sign = |k: usize| match trades[k].side {
            Side::Buy => 1i64,
            Side::Sell => -1,
            Side::Unknown => (1..=k)
                .rev()
                .map(|m| (trades[m].price_ticks - trades[m - 1].price_ticks).signum())
                .find(|&s| s != 0)
                .unwrap_or(0),
        };
        out.push(if n > lo {
            (lo..n).map(sign).sum::<i64>() as f32 / (n - lo) as f32
        } else {
            0.0
        });
    }
    let depletion = |bid: bool| {
        let size = |b: &BookLevels| {
            if bid {
                (b.best().bid_ticks, b.best().bid_lots)
            } else {
                (b.best().ask_ticks, b.best().ask_lots)
            }
        };
        let (price, now) = size(&books[j]);
        let mut peak = now;
        for m in (0..j).rev() {
            let (p, q) = size(&books[m]);
            if p != price {
                break;
            }
            peak = peak.max(q);
        }
        if peak > 0 {
            (peak - now) as f32 / peak as f32
        } else {
            0.0
        }
    };
    out.push(depletion(true));
    out.push(depletion(false));
    (out, j >= spec.warm_up().0 as usize)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn bars_give_the_definitions() {
    let spec = bar_spec();
    assert_eq!(spec.validate(), Ok(()));
    assert_eq!(spec.feature_count(), 3 + 3 + 2 + 2);
    let stream = bars(if cfg!(miri) { 60 } else { 400 });
    let mut state = vec![0i64; spec.state_words()];
    let mut engine = FeatureEngine::new(&spec, &mut state).unwrap();
    let mut out = vec![0f32; spec.feature_count()];
    let mut sessions = 0;
    for (i, bar) in stream.iter().enumerate() {
        let valid = engine.push_bar(bar, &mut out).unwrap();
        sessions += usize::from(engine.session_events() == 1);
        let (want, want_valid) = direct_bar(&spec, &stream, i);
        assert_eq!((bits(&out), valid), (bits(&want), want_valid), "bar {i}");
    }
    // Hourly bars are one session until a 50-hour gap.
    assert_eq!(sessions, 1 + (stream.len() - 1) / 37);
}

#[test]
fn book_snapshots_give_the_definitions() {
    let spec = book_spec();
    assert_eq!(spec.validate(), Ok(()));
    assert_eq!(spec.feature_count(), 1 + 3 + 1 + 3 + 3 + 2 + 2);
    let stream = events(if cfg!(miri) { 80 } else { 1_500 });
    let mut state = vec![0i64; spec.state_words()];
    let mut engine = FeatureEngine::new(&spec, &mut state).unwrap();
    let mut out = vec![0f32; spec.feature_count()];
    let mut snapshots = 0;
    for (i, event) in stream.iter().enumerate() {
        match event {
            Event::Trade(t) => {
                let before = out.clone();
                assert_eq!(engine.push(t, &mut out), Ok(false));
                assert_eq!(bits(&out), bits(&before), "a trade writes no row");
            }
            Event::Book(b) => {
                snapshots += 1;
                let valid = engine.push_book(b, &mut out).unwrap();
                let (want, want_valid) = direct_book(&spec, &stream, i);
                assert_eq!((bits(&out), valid), (bits(&want), want_valid), "event {i}");
            }
        }
    }
    assert!(snapshots > 500 || cfg!(miri));
}

#[test]
fn wrong_inputs_and_bad_values_are_refused_and_leave_the_state_unchanged() {
    let spec = bar_spec();
    let mut state = vec![0i64; spec.state_words()];
    let mut engine = FeatureEngine::new(&spec, &mut state).unwrap();
    let mut out = vec![0f32; spec.feature_count()];
    let stream = bars(3);
    engine.push_bar(&stream[1], &mut out).unwrap();
    let trade = Trade {
        time_ms: 0,
        price_ticks: 5,
        size_lots: 1,
        side: Side::Unknown,
    };
    let e = engine.push(&trade, &mut out).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the feature spec reads bars, not trades: push bars to this engine"
    );
    let quote = BookLevels::quote(
        0,
        BookLevel {
            bid_ticks: 1,
            bid_lots: 1,
            ask_ticks: 2,
            ask_lots: 1,
        },
    );
    assert_eq!(
        engine.push_book(&quote, &mut out).unwrap_err().to_string(),
        "the feature spec reads bars, not book: push bars to this engine"
    );
    assert_eq!(
        engine.push_bar(&stream[0], &mut out),
        Err(MarketError::TimeBackwards {
            previous: stream[1].time_ms,
            found: stream[0].time_ms
        })
    );
    assert_eq!(
        engine.push_bar(&stream[2], &mut [0.0; 3]),
        Err(MarketError::OutputTooShort {
            needed: 10,
            given: 3
        })
    );
    // The refusals changed nothing: the next bar gives what a fresh engine fed the same two bars gives.
    engine.push_bar(&stream[2], &mut out).unwrap();
    let mut fresh_state = vec![0i64; spec.state_words()];
    let mut fresh = FeatureEngine::new(&spec, &mut fresh_state).unwrap();
    let mut want = vec![0f32; spec.feature_count()];
    fresh.push_bar(&stream[1], &mut want).unwrap();
    fresh.push_bar(&stream[2], &mut want).unwrap();
    assert_eq!(bits(&out), bits(&want));

    let spec = book_spec();
    let mut state = vec![0i64; spec.state_words()];
    let mut engine = FeatureEngine::new(&spec, &mut state).unwrap();
    let mut out = vec![0f32; spec.feature_count()];
    let crossed = BookLevels::quote(
        5,
        BookLevel {
            bid_ticks: 12,
            bid_lots: 1,
            ask_ticks: 11,
            ask_lots: 1,
        },
    );
    assert_eq!(
        engine.push_book(&crossed, &mut out),
        Err(MarketError::Crossed {
            level: 1,
            bid: 12,
            ask: 11
        })
    );
    assert_eq!(engine.session_events(), 0);
    assert_eq!(
        engine
            .push_bar(&stream[0], &mut out)
            .unwrap_err()
            .to_string(),
        "the feature spec reads book, not bars: push book to this engine"
    );
    engine.push_book(&quote, &mut out).unwrap();
    assert_eq!(engine.session_events(), 1);
}

#[test]
fn specs_of_one_kind_refuse_the_lists_of_another() {
    let mut spec = bar_spec();
    spec.flow_windows_trades = list(&[5]);
    assert_eq!(
        spec.validate().unwrap_err().to_string(),
        "feature spec field `flow_windows_trades`: a bars spec has no features over it: expected an empty list"
    );
    let mut spec = bar_spec();
    spec.input.book_ofi_windows = list(&[5]);
    assert!(spec.validate().is_err());
    let mut spec = FeatureSpec::default();
    spec.input.bar_return_lags = list(&[5]);
    assert_eq!(
        spec.validate().unwrap_err().to_string(),
        "feature spec field `bar_return_lags`: a trades spec has no features over it: expected an empty list"
    );
    let mut spec = book_spec();
    spec.input.book_depth_levels = list(&[6]);
    assert_eq!(
        spec.validate().unwrap_err().to_string(),
        "feature spec field `book_depth_levels`: window 6 is out of range: expected 1 to 5"
    );
    let mut spec = bar_spec();
    spec.input.bar_return_lags = list(&[16]);
    assert_eq!(
        spec.validate().unwrap_err().to_string(),
        "feature spec field `bar_return_lags`: window 16 is out of range: expected 1 to 15"
    );
}

#[test]
fn the_bar_and_book_names_are_those_of_docs_data_md() {
    let names = |spec: &FeatureSpec| {
        let mut names: Vec<std::string::String> = Vec::new();
        spec.for_each_feature(|n| names.push(std::string::ToString::to_string(&n)));
        assert_eq!(names.len(), spec.feature_count());
        names.join(",")
    };
    assert_eq!(
        names(&bar_spec()),
        "ret_1b,ret_3b,ret_15b,bar_range,bar_body,true_range,relvol_4b,relvol_16b,tod_sin,tod_cos"
    );
    assert_eq!(
        names(&book_spec()),
        "spread,mret_1e,mret_5e,mret_11e,micro_dev,depth_imb_1,depth_imb_3,depth_imb_5,bofi_1e,bofi_4e,\
         bofi_12e,tsi_2t,tsi_12t,qdep_bid,qdep_ask"
    );
}

/// CRC-32 of the feature bits of the synthetic bar and book streams: the same on every target.
fn pin_crc() -> (u32, u32) {
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    let spec = bar_spec();
    let mut state = vec![0i64; spec.state_words()];
    let mut engine = FeatureEngine::new(&spec, &mut state).unwrap();
    let mut out = vec![0f32; spec.feature_count()];
    let mut digest = crc.digest();
    for bar in bars(200) {
        let valid = engine.push_bar(&bar, &mut out).unwrap();
        for v in &out {
            digest.update(&v.to_bits().to_le_bytes());
        }
        digest.update(&[u8::from(valid)]);
    }
    let bars_crc = digest.finalize();
    let spec = book_spec();
    let mut state = vec![0i64; spec.state_words()];
    let mut engine = FeatureEngine::new(&spec, &mut state).unwrap();
    let mut out = vec![0f32; spec.feature_count()];
    let mut digest = crc.digest();
    for event in events(400) {
        match event {
            Event::Book(b) => {
                let valid = engine.push_book(&b, &mut out).unwrap();
                for v in &out {
                    digest.update(&v.to_bits().to_le_bytes());
                }
                digest.update(&[u8::from(valid)]);
            }
            Event::Trade(t) => {
                engine.push(&t, &mut out).unwrap();
            }
        }
    }
    (bars_crc, digest.finalize())
}

#[test]
fn the_bar_and_book_bits_are_pinned() {
    assert_eq!(pin_crc(), (0x74fc_cd1e, 0xa955_d42f));
}
