//! Tests of the bar and quote features, labels and data sets.

use super::*;
use crate::data::{DeadBand, parse_trades};

/// Hourly bars of a five-digit FX pair over three days, with a weekend gap after the 30th bar.
fn fx_bars(n: usize) -> Vec<Bar> {
    let mut close = 1.10000f64;
    let mut time = 1_704_153_600_000i64; // 2024-01-02T00:00:00Z
    (0..n)
        .map(|i| {
            time += if i == 30 { 50 * 3_600_000 } else { 3_600_000 };
            let open = close;
            let step = ((i * 7919) % 41) as f64 - 20.0;
            close = ((open + step * 0.00001) * 1e5).round() / 1e5;
            Bar {
                timestamp_ms: time,
                open,
                high: ((open.max(close) + 0.00003) * 1e5).round() / 1e5,
                low: ((open.min(close) - 0.00002) * 1e5).round() / 1e5,
                close,
                volume: ((i * 31) % 17) as f64 * 10.0,
            }
        })
        .collect()
}

fn quotes(n: usize) -> Vec<Quote> {
    (0..n)
        .map(|i| {
            let bid = 100.0 + ((i * 13) % 7) as f64 * 0.25;
            Quote {
                timestamp_ms: i as i64 * 250,
                bid,
                ask: bid + 0.25 * (1 + i % 2) as f64,
                bid_size: (1 + i % 5) as f64,
                ask_size: (1 + (i * 3) % 4) as f64,
            }
        })
        .collect()
}

#[test]
fn bars_go_through_the_engine_with_their_own_session_gap() {
    let bars = fx_bars(80);
    let cfg = MarketConfig::default();
    let f = compute_market_features(MarketRows::Bars(&bars), &cfg).unwrap();
    assert_eq!(
        f.names.join(","),
        "ret_1b,ret_4b,ret_24b,bar_range,bar_body,true_range,relvol_24b,tod_sin,tod_cos"
    );
    // Hourly bars are one session until the weekend gap.
    assert_eq!(f.session_starts, [0, 30]);
    // 24 bars of warm-up in each session.
    assert_eq!(f.first_valid, 24);
    assert!(!f.valid[30 + 23] && f.valid[30 + 24]);
    // The first bar is at midnight UTC plus one hour: the time of day is 1/24 of a turn.
    let sin = f.values[[0, 7]];
    assert!((f64::from(sin) - (std::f64::consts::TAU / 24.0).sin()).abs() < 1e-6);
    // Each row is what the engine gives for those bars, pushed one by one.
    let spec = cfg.checked_spec().unwrap();
    let mut state = vec![0i64; spec.state_words()];
    let mut engine = FeatureEngine::new(&spec, &mut state).unwrap();
    let mut out = vec![0f32; spec.feature_count()];
    for (i, b) in bars.iter().enumerate() {
        let bar = CoreBar {
            time_ms: b.timestamp_ms,
            open_ticks: (b.open / 0.00001).round() as i64,
            high_ticks: (b.high / 0.00001).round() as i64,
            low_ticks: (b.low / 0.00001).round() as i64,
            close_ticks: (b.close / 0.00001).round() as i64,
            volume_lots: b.volume as u32,
        };
        engine.push_bar(&bar, &mut out).unwrap();
        let bits: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
        let row: Vec<u32> = f.values.row(i).iter().map(|v| v.to_bits()).collect();
        assert_eq!(bits, row, "bar {i}");
    }
}

#[test]
fn quotes_go_through_the_engine_and_crossed_or_off_grid_rows_are_named() {
    let q = quotes(300);
    let cfg = MarketConfig {
        tick_size: 0.25,
        ..MarketConfig::default()
    };
    let f = compute_market_features(MarketRows::Quotes(&q), &cfg).unwrap();
    assert_eq!(
        f.names.join(","),
        "spread,mret_1e,mret_10e,mret_100e,micro_dev,depth_imb_1,bofi_10e,bofi_100e,qdep_bid,qdep_ask"
    );
    assert_eq!(f.first_valid, 100);
    assert_eq!(f.values[[1, 0]], 2.0, "a two-tick spread");
    let mut bad = q.clone();
    bad[4].ask = bad[4].bid;
    let e = compute_market_features(MarketRows::Quotes(&bad), &cfg).unwrap_err();
    assert_eq!(
        e.to_string(),
        "quote 5: book level 1 is crossed or locked: bid 403 ticks is not below ask 403 ticks"
    );
    let mut bad = q.clone();
    bad[2].bid = 100.1;
    let e = compute_market_features(MarketRows::Quotes(&bad), &cfg).unwrap_err();
    assert_eq!(
        e.to_string(),
        "quote 3: bid 100.1 is not a whole number of tick_size = 0.25 (off the grid by more than 1e-6 of a unit, or out of range)"
    );
    let mut bars = fx_bars(5);
    bars[1].high = bars[1].low - 0.0001;
    let e = compute_market_features(MarketRows::Bars(&bars), &MarketConfig::default()).unwrap_err();
    assert!(e.to_string().starts_with("bar 2: bar prices open "), "{e}");
    let cfg = MarketConfig {
        book_depth_levels: vec![9],
        ..cfg
    };
    let e = compute_market_features(MarketRows::Quotes(&q), &cfg).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid configuration: features: feature spec field `book_depth_levels`: window 9 is out of range: expected 1 to 5"
    );
}

#[test]
fn labels_are_on_the_close_or_the_mid() {
    let bars = fx_bars(6);
    let cfg = LabelConfig {
        horizon: 1,
        dead_band: DeadBand::Price(0.0),
    };
    let labels = market_labels(MarketRows::Bars(&bars), &cfg);
    for i in 0..5 {
        assert_eq!(
            labels[i],
            Some(cfg.classify(bars[i].close, bars[i + 1].close)),
            "bar {i}"
        );
    }
    assert_eq!(labels[5], None);
    let q = quotes(3);
    let labels = market_labels(MarketRows::Quotes(&q), &cfg);
    let mid = |i: usize| 0.5 * (q[i].bid + q[i].ask);
    assert_eq!(labels[0], Some(cfg.classify(mid(0), mid(1))));
}

#[test]
fn datasets_of_bars_and_quotes_stay_inside_their_sessions() {
    let bars = fx_bars(80);
    let cfg = MarketDatasetConfig {
        labels: LabelConfig {
            horizon: 3,
            dead_band: DeadBand::Price(0.0),
        },
        time_steps: 2,
        ..MarketDatasetConfig::default()
    };
    let ds = build_market_dataset(MarketRows::Bars(&bars), &cfg).unwrap();
    // Session 0: bars 0..30, valid from 24, windows of 2 from 25, labels to 26 (29 - 3); session 1: bars
    // 30..80, valid from 54, windows from 55, labels to 76.
    let want: Vec<usize> = (25..=26).chain(55..=76).collect();
    assert_eq!(ds.tick_index, want);
    assert_eq!(ds.features, 9);
    let ds = build_market_dataset(
        MarketRows::Quotes(&quotes(300)),
        &MarketDatasetConfig {
            market: MarketConfig {
                tick_size: 0.25,
                ..MarketConfig::default()
            },
            ..cfg.clone()
        },
    )
    .unwrap();
    assert_eq!(ds.tick_index.first(), Some(&101));
    let e = build_market_dataset(MarketRows::Bars(&bars[..20]), &cfg).unwrap_err();
    assert_eq!(
        e.to_string(),
        "too few samples: 0 usable, at least 1 needed (20 bars in 1 session(s); each session needs 24 bars of \
         warm-up, then 2 time steps and 3 bars of label horizon)"
    );
    // The trade path is untouched by the market module.
    let trades = parse_trades("time,price,size\n1,1.0,1\n".as_bytes(), "t.csv").unwrap();
    assert_eq!(trades.len(), 1);
}

/// A bars and a quotes model, quantized with their feature spec, streamed row by row on the core's
/// `StreamSession`: every host sample's prediction (`Session::run` on its row of `build_market_dataset`) is the
/// stream's signal at that row, bit for bit.
#[test]
fn stream_sessions_give_the_host_pipeline_predictions() {
    use crate::quant::{ExportInfo, QuantConfig, static_quantize};
    use crate::test_support::{ReLU, mlp, seeded_model};
    use tickq_core::stream::{StreamSession, Tick};
    use tickq_core::{Model, Session};

    let bars = fx_bars(160);
    let quotes = quotes(400);
    let quote_market = MarketConfig {
        tick_size: 0.25,
        ..MarketConfig::default()
    };
    for (rows, market) in [
        (MarketRows::Bars(&bars), MarketConfig::default()),
        (MarketRows::Quotes(&quotes), quote_market),
    ] {
        let cfg = MarketDatasetConfig {
            market: market.clone(),
            labels: LabelConfig {
                horizon: 2,
                dead_band: DeadBand::Price(0.0),
            },
            time_steps: 1,
        };
        let ds = build_market_dataset(rows, &cfg).unwrap();
        let f = ds.features;
        let spec = MarketConfig {
            input: rows.input(),
            ..market
        }
        .checked_spec()
        .unwrap();
        let info = ExportInfo {
            name: "market".into(),
            feature_names: ds.feature_names.clone(),
            label_names: ds.label_names.clone(),
            mean: vec![0.0; f],
            std: vec![10.0; f],
            data_hash: [1; 32],
            feature_spec: Some(spec),
        };
        let model = seeded_model(mlp(f, &[(16, ReLU)]), 3);
        let q = static_quantize(&model, ds.x.view(), &info, &QuantConfig::default()).unwrap();
        let core = Model::load(&q.blob).unwrap();
        // The trade tools refuse the blob by its input kind.
        let e = crate::replay::host_predictions(&core, &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "the blob's feature spec reads {}, not trades: replay, trade vectors and test-split trades need a trades model",
                spec.input.kind
            )
        );
        let mut arena = vec![0u8; core.arena_bytes()];
        let mut session = Session::new(&core, &mut arena).unwrap();
        let expected: Vec<Vec<i8>> =
            ds.x.rows()
                .into_iter()
                .map(|row| session.run(row.as_slice().unwrap()).logits().to_vec())
                .collect();
        let mut stream_arena = vec![0u8; StreamSession::arena_bytes(&core).unwrap()];
        let mut state = vec![0i64; StreamSession::state_words(&core).unwrap()];
        let mut stream = StreamSession::new(&core, &mut stream_arena, &mut state).unwrap();
        let mut got: Vec<Option<Vec<i8>>> = Vec::new();
        for i in 0..rows.len() {
            let tick = match rows {
                MarketRows::Bars(b) => {
                    let b = &b[i];
                    let t = |v: f64| (v / spec.tick_size).round() as i64;
                    stream.push_bar(&CoreBar {
                        time_ms: b.timestamp_ms,
                        open_ticks: t(b.open),
                        high_ticks: t(b.high),
                        low_ticks: t(b.low),
                        close_ticks: t(b.close),
                        volume_lots: b.volume as u32,
                    })
                }
                MarketRows::Quotes(q) => {
                    let q = &q[i];
                    let t = |v: f64| (v / spec.tick_size).round() as i64;
                    stream.push_book(&BookLevels::quote(
                        q.timestamp_ms,
                        BookLevel {
                            bid_ticks: t(q.bid),
                            bid_lots: q.bid_size as u32,
                            ask_ticks: t(q.ask),
                            ask_lots: q.ask_size as u32,
                        },
                    ))
                }
            }
            .unwrap();
            got.push(match tick {
                Tick::Warming => None,
                Tick::Signal(p) => Some(p.logits().to_vec()),
            });
        }
        assert!(!ds.tick_index.is_empty());
        for (&i, want) in ds.tick_index.iter().zip(&expected) {
            assert_eq!(got[i].as_ref(), Some(want), "{} {i}", rows.row_kind());
        }
    }
}

/// A synthetic FX-style hourly bar file and a quote file, read, featured and turned into samples end to end.
#[test]
fn bar_and_quote_files_become_datasets() {
    let mut text = String::from("time,open,high,low,close,volume\n");
    for b in fx_bars(100) {
        text.push_str(&format!(
            "{},{:.5},{:.5},{:.5},{:.5},{}\n",
            b.timestamp_ms, b.open, b.high, b.low, b.close, b.volume
        ));
    }
    let bars = parse_bars(text.as_bytes(), "eurusd-1h.csv").unwrap();
    assert_eq!(bars, fx_bars(100));
    let ds = build_market_dataset(MarketRows::Bars(&bars), &MarketDatasetConfig::default());
    // The default horizon of 100 rows is longer than either session: no sample, and the message says why.
    assert!(matches!(ds, Err(DataError::TooFewSamples { .. })));
    let cfg = MarketDatasetConfig {
        labels: LabelConfig {
            horizon: 5,
            dead_band: DeadBand::Price(0.00001),
        },
        ..MarketDatasetConfig::default()
    };
    let ds = build_market_dataset(MarketRows::Bars(&bars), &cfg).unwrap();
    // Bar 24 of the first session (30 bars) and bars 54 to 94 of the second.
    assert_eq!(ds.len(), 1 + 41);
    let mut text = String::from("time,bid,ask,bid_size,ask_size\n");
    for q in quotes(400) {
        text.push_str(&format!(
            "{},{},{},{},{}\n",
            q.timestamp_ms, q.bid, q.ask, q.bid_size, q.ask_size
        ));
    }
    let q = parse_quotes(text.as_bytes(), "es-quotes.csv").unwrap();
    let cfg = MarketDatasetConfig {
        market: MarketConfig {
            tick_size: 0.25,
            ..MarketConfig::default()
        },
        ..cfg
    };
    let ds = build_market_dataset(MarketRows::Quotes(&q), &cfg).unwrap();
    assert_eq!(ds.len(), 400 - 100 - 5);
    assert_eq!(ds.feature_names[0], "spread");
}

/// A two-sided snapshot of one level at `bid`/`ask` ticks, sizes `qb`/`qa`, from orders line `line`.
fn snap(time_ms: i64, line: u64, bid: i64, ask: i64, qb: u64, qa: u64) -> BookEvent {
    BookEvent::Snapshot(super::super::BookSnapshot {
        time_ms,
        line,
        bids: vec![super::super::Level {
            price_ticks: bid,
            size_lots: qb,
        }],
        asks: vec![super::super::Level {
            price_ticks: ask,
            size_lots: qa,
        }],
    })
}

fn book_cfg() -> MarketDatasetConfig {
    MarketDatasetConfig {
        market: MarketConfig {
            book_return_lags: vec![1],
            book_ofi_windows: vec![2],
            book_trade_windows: vec![2],
            tick_size: 1.0,
            size_unit: 1.0,
            ..MarketConfig::default()
        },
        labels: LabelConfig {
            horizon: 1,
            dead_band: super::super::DeadBand::Price(0.0),
        },
        time_steps: 1,
    }
}

#[test]
fn book_events_skip_one_sided_snapshots_and_feed_trades() {
    let mut events: Vec<BookEvent> = (0..40)
        .map(|i| {
            snap(
                1000 + i * 10,
                2 + i as u64,
                100 + (i % 3),
                103 + (i % 3),
                5,
                7,
            )
        })
        .collect();
    // An empty ask side: no mid, skipped and counted.
    if let BookEvent::Snapshot(s) = &mut events[10] {
        s.asks.clear();
    }
    events.insert(
        5,
        BookEvent::Trade {
            time_ms: 1045,
            line: 2,
            price_ticks: 103,
            size_lots: u64::from(u32::MAX) + 1,
            side: Some(super::super::Side::Buy),
            buy_order_id: None,
            sell_order_id: None,
        },
    );
    let built = build_book_dataset(&events, &book_cfg()).expect("builds");
    assert_eq!(
        (
            built.snapshots,
            built.one_sided,
            built.trades,
            built.clamped_sizes
        ),
        (39, 1, 1, 1)
    );
    assert_eq!(
        built.notes("orders.csv"),
        [
            "note: orders.csv: 1 one-sided book snapshot(s) skipped (no mid, no spread)",
            "note: orders.csv: 1 level size(s) above 4294967295 lots clamped to it"
        ]
    );
    assert_eq!(
        built.dataset.feature_names,
        [
            "spread",
            "mret_1e",
            "micro_dev",
            "depth_imb_1",
            "bofi_2e",
            "tsi_2t",
            "qdep_bid",
            "qdep_ask"
        ]
    );
    assert!(!built.dataset.is_empty());
}

#[test]
fn a_crossed_book_snapshot_names_its_orders_line() {
    let events = [snap(1000, 2, 100, 101, 1, 1), snap(1010, 7, 101, 101, 1, 1)];
    let err = build_book_dataset(&events, &book_cfg()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "orders line 7: book level 1 is crossed or locked: bid 101 ticks is not below ask 101 ticks"
    );
}
