//! Tests of `features`.

use super::*;
use crate::data::Side;

fn trade(timestamp_ms: i64, price: f64, size: f64) -> Trade {
    Trade {
        timestamp_ms,
        price,
        size,
        side: None,
    }
}

fn tiny_config() -> FeatureConfig {
    FeatureConfig {
        return_lags_trades: vec![1, 2],
        return_lags_ms: vec![1_000],
        flow_windows_trades: vec![2],
        flow_windows_ms: vec![1_000],
        volatility_windows_trades: vec![2],
        intensity_windows_ms: vec![1_000],
        vwap_windows_trades: vec![3],
        vwap_windows_ms: vec![],
        range_windows_trades: vec![3],
        session_gap_ms: 60_000,
        ..FeatureConfig::default()
    }
}

fn features(trades: &[Trade], cfg: &FeatureConfig) -> Features {
    compute_features(trades, cfg).expect("features")
}

fn column(f: &Features, name: &str) -> Vec<f32> {
    let c = f
        .names
        .iter()
        .position(|n| n == name)
        .unwrap_or_else(|| panic!("no feature {name} in {:?}", f.names));
    f.values.column(c).to_vec()
}

/// The engine computes in `f32` (`docs/ARITHMETIC.md`, "The feature engine"): each value is a few `f32`
/// roundings (about 6e-8 relative each) from the exact definition computed here in `f64`, so 1e-6 relative
/// (absolute below 1) is tight and still fails on any real error.
fn assert_close(got: &[f32], want: &[f64], name: &str) {
    assert_eq!(got.len(), want.len(), "{name}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let tol = 1e-6 * w.abs().max(1.0);
        assert!(
            (f64::from(g) - w).abs() <= tol,
            "{name}[{i}]: got {g}, want {w}"
        );
    }
}

#[test]
fn default_has_29_named_features() {
    let cfg = FeatureConfig::default();
    let names = cfg.feature_names();
    assert_eq!(names.len(), 29);
    assert_eq!(
        names,
        [
            "ret_1t",
            "ret_5t",
            "ret_20t",
            "ret_100t",
            "ret_1s",
            "ret_10s",
            "ret_60s",
            "sign",
            "svol_20t",
            "ofi_20t",
            "svol_100t",
            "ofi_100t",
            "svol_60s",
            "ofi_60s",
            "rvol_20t",
            "rvol_100t",
            "rate_10s",
            "vrate_10s",
            "rate_60s",
            "vrate_60s",
            "log_size",
            "burst_size",
            "dt_prev_trade",
            "dt_last_change",
            "trades_since_change",
            "vwap_dev_100t",
            "vwap_dev_60s",
            "range_100t",
            "range_pos_100t",
        ]
    );
    assert!(cfg.validate().is_ok());
    assert_eq!(cfg.warm_up(), (100, 60_000));
}

#[test]
fn hand_computed_values() {
    let trades = [
        trade(0, 100.0, 2.0),
        trade(500, 100.25, 1.0),
        trade(500, 100.25, 3.0),
        trade(1_500, 100.0, 1.0),
        trade(2_600, 100.0, 4.0),
    ];
    let f = features(&trades, &tiny_config());
    assert_eq!(f.values.dim(), (5, 19));
    let l = 1e4 * (100.25f64 / 100.0).ln();
    let ln = |x: f64| x.ln();
    let expect: [(&str, [f64; 5]); 19] = [
        ("ret_1t", [0.0, l, 0.0, -l, 0.0]),
        ("ret_2t", [0.0, l, l, -l, -l]),
        // The last trade at or before t - 1 s: none (so the session's first) for rows 0-2, then 2 and 3.
        ("ret_1s", [0.0, l, l, -l, 0.0]),
        ("sign", [0.0, 1.0, 1.0, -1.0, -1.0]),
        ("svol_2t", [0.0, ln(2.0), ln(5.0), ln(3.0), -ln(6.0)]),
        ("ofi_2t", [0.0, 1.0 / 3.0, 1.0, 0.5, -1.0]),
        ("svol_1s", [0.0, ln(2.0), ln(5.0), -ln(2.0), -ln(5.0)]),
        ("ofi_1s", [0.0, 1.0 / 3.0, 2.0 / 3.0, -1.0, -1.0]),
        ("rvol_2t", [0.0, l, l, l, l]),
        ("rate_1s", [ln(2.0), ln(3.0), ln(4.0), ln(2.0), ln(2.0)]),
        ("vrate_1s", [ln(3.0), ln(4.0), ln(7.0), ln(2.0), ln(5.0)]),
        ("log_size", [ln(3.0), ln(2.0), ln(4.0), ln(2.0), ln(5.0)]),
        ("burst_size", [ln(3.0), ln(2.0), ln(5.0), ln(2.0), ln(5.0)]),
        ("dt_prev_trade", [0.0, ln(1.5), 0.0, ln(2.0), ln(2.1)]),
        ("dt_last_change", [0.0, 0.0, 0.0, 0.0, ln(2.1)]),
        ("trades_since_change", [0.0, 0.0, ln(2.0), 0.0, ln(2.0)]),
        ("vwap_dev_3t", [0.0, 2.0 / 3.0, 1.0 / 3.0, -0.8, -0.375]),
        ("range_3t", [0.0, 1.0, 1.0, 1.0, 1.0]),
        ("range_pos_3t", [0.0, 1.0, 1.0, -1.0, -1.0]),
    ];
    for (name, want) in expect {
        assert_close(&column(&f, name), &want, name);
    }
    // Warm-up: 3 earlier trades and 1 s of session.
    assert_eq!(f.valid, [false, false, false, true, true]);
    assert_eq!(f.first_valid, 3);
    assert_eq!(f.session_starts, [0]);
}

#[test]
fn known_side_overrides_tick_rule() {
    let mut trades = vec![
        trade(0, 100.0, 1.0),
        trade(1, 100.25, 2.0),
        trade(2, 100.25, 3.0),
    ];
    trades[1].side = Some(Side::Sell);
    trades[2].side = None;
    let f = features(&trades, &tiny_config());
    // Trade 1 is a sell although it upticks; trade 2 falls back to the tick rule (+1).
    assert_close(&column(&f, "sign"), &[0.0, -1.0, 1.0], "sign");
    assert_close(
        &column(&f, "ofi_2t"),
        &[0.0, -2.0 / 3.0, 1.0 / 5.0],
        "ofi_2t",
    );
}

#[test]
fn session_break_resets_windows() {
    let mut trades: Vec<Trade> = (0..40)
        .map(|i| {
            trade(
                i * 300,
                100.0 + 0.25 * ((i % 4) as f64),
                1.0 + (i % 3) as f64,
            )
        })
        .collect();
    // A gap of two hours before trade 20 starts a new session.
    for t in &mut trades[20..] {
        t.timestamp_ms += 7_200_000;
    }
    let cfg = tiny_config();
    let full = features(&trades, &cfg);
    assert_eq!(full.session_starts, [0, 20]);
    assert_eq!(full.session_start_of(19), 0);
    assert_eq!(full.session_start_of(25), 20);
    // Valid again once the session holds 3 earlier trades and spans 1 s: trade 24 at 1.2 s.
    assert!(!full.valid[20] && !full.valid[23] && full.valid[24]);
    let alone = features(&trades[20..], &cfg);
    // Bit for bit: nothing of the first session survives the break.
    assert_eq!(full.values.slice(s![20.., ..]), alone.values);
    assert_eq!(full.valid[20..], alone.valid[..]);
    // The first row of the new session sees no return across the break.
    assert_eq!(column(&full, "ret_1t")[20], 0.0);
    assert_eq!(column(&full, "dt_prev_trade")[20], 0.0);
}

use ndarray::s;

#[test]
fn appending_trades_never_changes_earlier_rows() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut t = 1_378_054_800_000i64;
    let mut price = 1640.0f64;
    let trades: Vec<Trade> = (0..1500)
        .map(|i| {
            let r = next();
            t += if i == 700 { 3_600_000 } else { 0 };
            t += match r % 10 {
                0..=4 => 0,
                5..=8 => (r >> 8) as i64 % 2_000,
                _ => (r >> 8) as i64 % 90_000,
            };
            price += 0.25 * (((r >> 20) % 3) as f64 - 1.0);
            Trade {
                timestamp_ms: t,
                price,
                size: 1.0 + ((r >> 30) % 20) as f64,
                side: None,
            }
        })
        .collect();
    let cfg = FeatureConfig::default();
    let full = features(&trades, &cfg);
    assert!(full.session_starts.len() >= 2, "{:?}", full.session_starts);
    for m in [1, 2, 50, 101, 700, 701, 1234] {
        let prefix = features(&trades[..m], &cfg);
        assert_eq!(prefix.values, full.values.slice(s![..m, ..]), "prefix {m}");
        assert_eq!(prefix.valid[..], full.valid[..m]);
    }
}

#[test]
fn extreme_trades_on_the_grid_give_finite_values() {
    let big = 0.25 * 2f64.powi(50);
    let trades = [
        trade(i64::MIN, 0.25, 0.0),
        trade(i64::MIN + 1, big, f64::from(u32::MAX)),
        trade(0, big, f64::from(u32::MAX)),
        trade(0, 0.25, 1.0),
        trade(i64::MAX, 0.25, 0.0),
        trade(i64::MAX, big, 0.0),
    ];
    for cfg in [FeatureConfig::default(), tiny_config()] {
        let f = features(&trades, &cfg);
        assert!(
            f.values.iter().all(|v| v.is_finite()),
            "{cfg:?}: {}",
            f.values
        );
        assert_eq!(f.session_starts, [0, 2, 4]);
        let empty = features(&[], &cfg);
        assert_eq!(empty.values.dim(), (0, cfg.feature_count()));
        assert_eq!(empty.first_valid, 0);
    }
}

#[test]
fn trades_off_the_grid_or_out_of_order_are_named() {
    let cfg = tiny_config();
    let off = |price: f64, size: f64| {
        let trades = [trade(0, 100.0, 1.0), trade(1, price, size)];
        compute_features(&trades, &cfg).unwrap_err()
    };
    for (price, size, quantity) in [
        (100.1, 1.0, "price"),
        (1e-300, 1.0, "price"),
        (0.0, 1.0, "price"),
        (1e300, 1.0, "price"),
        (100.0, 0.5, "size"),
        (100.0, 1e300, "size"),
        (100.0, 4_294_967_296.0, "size"),
    ] {
        match off(price, size) {
            DataError::OffGrid {
                trade: 2,
                quantity: q,
                ..
            } => assert_eq!(q, quantity, "{price} {size}"),
            e => panic!("{price} {size}: {e}"),
        }
    }
    // Within a millionth of a tick is on the grid: 100.25 / 0.25 = 401.
    assert!(compute_features(&[trade(0, 100.25 + 1e-9, 1.0)], &cfg).is_ok());
    assert_eq!(
        off(100.1, 1.0).to_string(),
        "trade 2: price 100.1 is not a whole number of tick_size = 0.25 in the engine's range \
         (prices 1 to 2^53 ticks, sizes 0 to 4294967295 lots)"
    );
    let backwards = [trade(5, 100.0, 1.0), trade(4, 100.0, 1.0)];
    let e = compute_features(&backwards, &cfg).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::Trade {
                trade: 2,
                source: tickq_core::features::TradeError::TimeBackwards {
                    previous: 5,
                    found: 4
                }
            }
        ),
        "{e}"
    );
    // A size unit of 0.5 lots takes half contracts.
    let halves = FeatureConfig {
        size_unit: 0.5,
        ..tiny_config()
    };
    let f = features(&[trade(0, 100.0, 1.5)], &halves);
    assert_close(&column(&f, "log_size"), &[4f64.ln()], "log_size in lots");
}

#[test]
fn validate_rejects_bad_configs() {
    use tickq_core::features::{SpecError, SpecField};
    let spec_error = |cfg: FeatureConfig| match cfg.validate() {
        Err(DataError::FeatureSpec { source }) => {
            assert!(compute_features(&[], &cfg).is_err());
            source
        }
        other => panic!("{cfg:?}: {other:?}"),
    };
    assert!(matches!(
        spec_error(FeatureConfig {
            return_lags_trades: vec![0],
            ..FeatureConfig::default()
        }),
        SpecError::TradeWindow {
            field: SpecField::ReturnLagsTrades,
            found: 0,
            ..
        }
    ));
    assert!(matches!(
        spec_error(FeatureConfig {
            flow_windows_ms: vec![0],
            ..FeatureConfig::default()
        }),
        SpecError::TimeWindow {
            field: SpecField::FlowWindowsMs,
            found: 0
        }
    ));
    assert!(matches!(
        spec_error(FeatureConfig {
            tick_size: f64::NAN,
            ..FeatureConfig::default()
        }),
        SpecError::Unit {
            field: SpecField::TickSize,
            ..
        }
    ));
    assert_eq!(
        spec_error(FeatureConfig {
            session_gap_ms: 0,
            ..FeatureConfig::default()
        }),
        SpecError::SessionGap
    );
    // A window above the capacity: the 100-trade windows do not fit 64 trades.
    let small = FeatureConfig {
        capacity: 64,
        ..FeatureConfig::default()
    };
    assert!(matches!(
        spec_error(small.clone()),
        SpecError::TradeWindow {
            found: 100,
            capacity: 64,
            ..
        }
    ));
    assert_eq!(
        small.validate().unwrap_err().to_string(),
        "invalid configuration: features: feature spec field `return_lags_trades`: window 100 is out of range: \
         expected 1 to the capacity 64 trades"
    );
    assert!(std::error::Error::source(&small.validate().unwrap_err()).is_some());
    let setting = |cfg: FeatureConfig| match cfg.validate() {
        Err(DataError::FeatureSetting { field, found, .. }) => (field, found),
        other => panic!("{cfg:?}: {other:?}"),
    };
    assert_eq!(
        setting(FeatureConfig {
            return_lags_ms: vec![-5],
            ..FeatureConfig::default()
        }),
        ("return_lags_ms", "-5".to_owned())
    );
    assert_eq!(
        setting(FeatureConfig {
            capacity: 1 << 40,
            ..FeatureConfig::default()
        }),
        ("capacity", (1u64 << 40).to_string())
    );
    assert!(matches!(
        FeatureConfig {
            range_windows_trades: vec![1; 9],
            ..FeatureConfig::default()
        }
        .validate(),
        Err(DataError::TooManyWindows {
            field: "range_windows_trades",
            found: 9,
            max: 8
        })
    ));
    assert!(matches!(
        FeatureConfig {
            return_lags_trades: vec![5, 5],
            ..FeatureConfig::default()
        }
        .validate(),
        Err(DataError::DuplicateFeature(name)) if name == "ret_5t"
    ));
}

#[test]
fn the_host_names_are_the_core_names() {
    for cfg in [FeatureConfig::default(), tiny_config()] {
        let spec = cfg.to_spec().expect("spec");
        let mut core_names = Vec::new();
        spec.for_each_feature(|n| core_names.push(n.to_string()));
        assert_eq!(cfg.feature_names(), core_names);
        assert_eq!(features(&[], &cfg).names, core_names);
        let (trades, ms) = spec.warm_up();
        assert_eq!(cfg.warm_up(), (trades as usize, i64::from(ms)));
    }
    assert_eq!(
        FeatureConfig::default().to_spec().expect("spec"),
        tickq_core::features::FeatureSpec::default()
    );
}

#[test]
fn duration_suffixes() {
    assert_eq!(duration_suffix(1_000), "1s");
    assert_eq!(duration_suffix(60_000), "60s");
    assert_eq!(duration_suffix(250), "250ms");
}
