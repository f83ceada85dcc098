//! Tests of the feature engine: against a direct, quadratic evaluation of every definition, on the state
//! rules, and the cross-target bit pin.
#![allow(clippy::indexing_slicing)]

extern crate std;
use std::vec;
use std::vec::Vec;

use super::super::spec::{MAX_WINDOWS, WindowList};
use super::super::synthetic::{SyntheticTrades, pin_spec};
use super::*;

/// Every feature of trade `i` of `trades` computed straight from its definition, over the whole history,
/// with the engine's arithmetic but none of its state (no ring, prefix totals, pointers or deques).
fn direct(spec: &FeatureSpec, trades: &[Trade], i: usize) -> (Vec<f32>, bool) {
    let gap = i64::from(spec.session_gap_ms);
    let start = (1..=i)
        .rev()
        .find(|&j| trades[j].time_ms - trades[j - 1].time_ms > gap)
        .unwrap_or(0);
    let cap = spec.capacity as usize;
    let floor = start.max((i + 1).saturating_sub(cap));
    let (t, p) = (trades[i].time_ms, trades[i].price_ticks);
    let price = |j: usize| trades[j].price_ticks;
    let tick_sign = |j: usize| {
        (start + 1..=j)
            .rev()
            .map(|k| (price(k) - price(k - 1)).signum())
            .find(|&s| s != 0)
            .unwrap_or(0)
    };
    let sign = |j: usize| match trades[j].side {
        Side::Buy => 1,
        Side::Sell => -1,
        Side::Unknown => tick_sign(j),
    };
    let ret1 = |j: usize| {
        if j == start {
            0.0
        } else {
            log_return_bp(price(j), price(j - 1))
        }
    };
    let ret2 = |j: usize| {
        let r = ret1(j);
        (((r * r) * 65536.0) as i64).min(MAX_RET2_FIXED)
    };
    let size = |j: usize| i64::from(trades[j].size_lots);
    let time_lo = |d: u32| {
        (floor..i)
            .find(|&j| trades[j].time_ms > t - i64::from(d))
            .unwrap_or(i)
    };
    let trade_lo = |w: u32| (i + 1).saturating_sub(w as usize).max(floor);
    let slog = |x: i64| {
        let m = ln_1p(x.unsigned_abs() as f32);
        if x < 0 { -m } else { m }
    };
    let flow = |lo: usize| {
        let signed: i64 = (lo..=i).map(|j| sign(j) * size(j)).sum();
        let total: i64 = (lo..=i).map(size).sum();
        let ofi = if total > 0 {
            (signed as f32 / total as f32).clamp(-1.0, 1.0)
        } else {
            0.0
        };
        [slog(signed), ofi]
    };
    let vwap = |lo: usize| {
        let volume: i64 = (lo..=i).map(size).sum();
        if volume == 0 {
            return 0.0;
        }
        let p0 = price(start);
        let numerator: i128 = (lo..=i)
            .map(|j| i128::from(p - price(j)) * i128::from(size(j)))
            .sum();
        let _ = p0;
        numerator as f32 / volume as f32
    };
    let mut out = Vec::new();
    for &k in spec.return_lags_trades.as_slice() {
        out.push(log_return_bp(
            p,
            price((i.saturating_sub(k as usize)).max(floor)),
        ));
    }
    for &d in spec.return_lags_ms.as_slice() {
        let lo = time_lo(d);
        out.push(log_return_bp(
            p,
            price(if lo > floor { lo - 1 } else { floor }),
        ));
    }
    out.push(sign(i) as f32);
    for &w in spec.flow_windows_trades.as_slice() {
        out.extend(flow(trade_lo(w)));
    }
    for &d in spec.flow_windows_ms.as_slice() {
        out.extend(flow(time_lo(d)));
    }
    for &w in spec.volatility_windows_trades.as_slice() {
        let fixed: i64 = (trade_lo(w)..=i).map(ret2).sum();
        out.push(libm::sqrtf(fixed as f32 / 65536.0));
    }
    for &d in spec.intensity_windows_ms.as_slice() {
        let lo = time_lo(d);
        let volume: i64 = (lo..=i).map(size).sum();
        out.push(ln_1p(((i - lo + 1) as f32 * 1000.0) / d as f32));
        out.push(ln_1p((volume as f32 * 1000.0) / d as f32));
    }
    out.push(ln_1p(trades[i].size_lots as f32));
    let burst: i64 = (start..=i)
        .filter(|&j| trades[j].time_ms == t)
        .map(size)
        .sum();
    out.push(ln_1p(burst as f32));
    out.push(if i == start {
        0.0
    } else {
        ln_1p((t - trades[i - 1].time_ms) as f32 / 1000.0)
    });
    let change = (start + 1..=i)
        .rev()
        .find(|&j| price(j) != price(j - 1))
        .unwrap_or(start);
    out.push(ln_1p((t - trades[change].time_ms) as f32 / 1000.0));
    out.push(ln_1p((i - change) as f32));
    for &w in spec.vwap_windows_trades.as_slice() {
        out.push(vwap(trade_lo(w)));
    }
    for &d in spec.vwap_windows_ms.as_slice() {
        out.push(vwap(time_lo(d)));
    }
    for &w in spec.range_windows_trades.as_slice() {
        let lo = trade_lo(w);
        let high = (lo..=i).map(price).max().unwrap();
        let low = (lo..=i).map(price).min().unwrap();
        let range = high - low;
        out.push(range as f32);
        out.push(if range > 0 {
            ((p - low) - (high - p)) as f32 / range as f32
        } else {
            0.0
        });
    }
    let (warm_trades, warm_ms) = spec.warm_up();
    let valid =
        i - start >= warm_trades as usize && t - trades[start].time_ms >= i64::from(warm_ms);
    (out, valid)
}

fn trades(n: usize) -> Vec<Trade> {
    SyntheticTrades::new(7).take(n).collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn the_engine_gives_the_bits_of_the_definitions() {
    let n = if cfg!(miri) { 150 } else { 2_500 };
    let stream = trades(n);
    for spec in [pin_spec(), FeatureSpec::default()] {
        let mut state = vec![0i64; spec.state_words()];
        let mut engine = FeatureEngine::new(&spec, &mut state).unwrap();
        let mut out = vec![0f32; spec.feature_count()];
        let step = if cfg!(miri) || spec.capacity > 64 {
            7
        } else {
            1
        };
        for (i, trade) in stream.iter().enumerate() {
            let valid = engine.push(trade, &mut out).unwrap();
            if i % step != 0 && i + 1 != n {
                continue;
            }
            let (want, want_valid) = direct(&spec, &stream, i);
            assert_eq!(valid, want_valid, "valid, trade {i}");
            for (f, (&g, &w)) in out.iter().zip(&want).enumerate() {
                assert_eq!(
                    g.to_bits(),
                    w.to_bits(),
                    "trade {i}, feature {f} ({}): engine {g}, definition {w}",
                    spec.feature(f).unwrap()
                );
            }
        }
    }
}

// A property of the stream, not of the target's arithmetic, and quadratic: not worth Miri's time.
#[test]
#[cfg_attr(miri, ignore)]
fn the_stream_exercises_what_the_pin_claims() {
    let stream = trades(3_000);
    let spec = pin_spec();
    let gaps = stream
        .windows(2)
        .filter(|w| w[1].time_ms - w[0].time_ms > i64::from(spec.session_gap_ms))
        .count();
    let bursts = stream
        .windows(2)
        .filter(|w| w[1].time_ms == w[0].time_ms)
        .count();
    let unknown = stream.iter().filter(|t| t.side == Side::Unknown).count();
    // Some 30 s window holds more trades than the capacity of 64.
    let clipped = (0..stream.len()).any(|i| {
        (0..=i)
            .rev()
            .take_while(|&j| stream[j].time_ms > stream[i].time_ms - 30_000)
            .count()
            > 64
    });
    let mut state = vec![0i64; spec.state_words()];
    let mut engine = FeatureEngine::new(&spec, &mut state).unwrap();
    let mut out = vec![0f32; spec.feature_count()];
    let valid = stream
        .iter()
        .filter(|t| engine.push(t, &mut out).unwrap())
        .count();
    assert!(
        gaps >= 3 && bursts > 500 && unknown > 500 && clipped && valid > 1_000 && valid < 2_900,
        "{gaps} {bursts} {unknown} {clipped} {valid}"
    );
}

/// The CRC-32 (ISO-HDLC) of every output's bits (little-endian) and a byte per valid flag, for the first
/// `n` trades of `SyntheticTrades::new(7)` through `pin_spec()`.
fn pin_crc(n: usize) -> u32 {
    let spec = pin_spec();
    let mut state = [0i64; 1024];
    let mut engine = FeatureEngine::new(&spec, &mut state).unwrap();
    let mut out = [0f32; 64];
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    let mut digest = crc.digest();
    for trade in SyntheticTrades::new(7).take(n) {
        let valid = engine.push(&trade, &mut out).unwrap();
        for v in &out[..spec.feature_count()] {
            digest.update(&v.to_bits().to_le_bytes());
        }
        digest.update(&[u8::from(valid)]);
    }
    digest.finalize()
}

#[test]
fn cross_target_bit_pin() {
    // Pinned on x86-64; the same on every target (docs/ARITHMETIC.md, "The feature engine"). A change here
    // changes the features every blob's model was trained on.
    let (short, long) = (
        pin_crc(300),
        if cfg!(miri) { PIN_4000 } else { pin_crc(4_000) },
    );
    assert_eq!(
        (short, long),
        (PIN_300, PIN_4000),
        "pins 0x{short:08x}, 0x{long:08x}"
    );
}

const PIN_300: u32 = 0x4481_02b4;
const PIN_4000: u32 = 0x797c_978b;

#[test]
fn a_spec_with_every_list_full_gives_the_definitions() {
    let full = |base: u32| {
        let items: Vec<u32> = (1..=MAX_WINDOWS as u32).map(|k| base * k).collect();
        WindowList::new(&items).unwrap()
    };
    let spec = FeatureSpec {
        return_lags_trades: full(3),
        return_lags_ms: full(700),
        flow_windows_trades: full(4),
        flow_windows_ms: full(900),
        volatility_windows_trades: full(5),
        intensity_windows_ms: full(1_100),
        vwap_windows_trades: full(6),
        vwap_windows_ms: full(1_300),
        range_windows_trades: full(7),
        capacity: 64,
        ..pin_spec()
    };
    assert_eq!(spec.feature_count(), MAX_FEATURES);
    let n = if cfg!(miri) { 40 } else { 600 };
    let stream = trades(n);
    let mut state = vec![0i64; spec.state_words()];
    let mut engine = FeatureEngine::new(&spec, &mut state).unwrap();
    let mut out = vec![0f32; MAX_FEATURES];
    for (i, trade) in stream.iter().enumerate() {
        let valid = engine.push(trade, &mut out).unwrap();
        let (want, want_valid) = direct(&spec, &stream, i);
        assert_eq!((bits(&out), valid), (bits(&want), want_valid), "trade {i}");
    }
}

#[test]
fn bad_trades_leave_the_state_unchanged() {
    let spec = pin_spec();
    let stream = trades(400);
    let (mut a, mut b) = (
        vec![0i64; spec.state_words()],
        vec![0i64; spec.state_words()],
    );
    let mut clean = FeatureEngine::new(&spec, &mut a).unwrap();
    let mut dirty = FeatureEngine::new(&spec, &mut b).unwrap();
    let mut out = vec![0f32; spec.feature_count()];
    let mut dirty_out = out.clone();
    for (i, trade) in stream.iter().enumerate() {
        if i % 13 == 5 {
            let mut bad = *trade;
            bad.price_ticks = 0;
            assert_eq!(
                dirty.push(&bad, &mut dirty_out),
                Err(TradeError::Price { found: 0 })
            );
            bad = *trade;
            bad.time_ms = trade.time_ms - 10_000_000;
            assert!(matches!(
                dirty.push(&bad, &mut dirty_out),
                Err(TradeError::TimeBackwards { found, .. }) if found == bad.time_ms
            ));
            let short = spec.feature_count() - 1;
            assert_eq!(
                dirty.push(trade, &mut dirty_out[..short]),
                Err(TradeError::OutputTooShort {
                    needed: short + 1,
                    given: short
                })
            );
        }
        let want = clean.push(trade, &mut out).unwrap();
        assert_eq!(dirty.push(trade, &mut dirty_out).unwrap(), want);
        assert_eq!(bits(&out), bits(&dirty_out), "trade {i}");
    }
    assert_eq!(dirty.trades_seen(), 400);
}

#[test]
fn reset_starts_afresh_and_state_contents_do_not_matter() {
    let spec = pin_spec();
    let stream = trades(300);
    let mut a = vec![0i64; spec.state_words()];
    let mut b = vec![-0x5555_5555_5555_5555i64; spec.state_words() + 3];
    let mut fresh = FeatureEngine::new(&spec, &mut a).unwrap();
    let mut reused = FeatureEngine::new(&spec, &mut b).unwrap();
    let mut out = vec![0f32; spec.feature_count()];
    let mut reused_out = out.clone();
    for trade in &stream[..150] {
        reused.push(trade, &mut reused_out).unwrap();
    }
    reused.reset();
    assert_eq!(reused.trades_seen(), 0);
    for trade in &stream[150..] {
        let valid = fresh.push(trade, &mut out).unwrap();
        assert_eq!(reused.push(trade, &mut reused_out).unwrap(), valid);
        assert_eq!(bits(&out), bits(&reused_out));
    }
}

#[test]
fn new_checks_the_spec_and_the_state() {
    let spec = FeatureSpec::default();
    let mut state = vec![0i64; spec.state_words() - 1];
    assert!(matches!(
        FeatureEngine::new(&spec, &mut state),
        Err(EngineError::StateTooSmall { needed, given }) if needed == given + 1
    ));
    let mut bad = spec;
    bad.capacity = 1;
    assert_eq!(
        FeatureEngine::new(&bad, &mut state).err(),
        Some(EngineError::Spec(SpecError::Capacity { found: 1 }))
    );
}

#[test]
fn a_session_break_resets_every_window() {
    let spec = pin_spec();
    let stream = trades(1_200);
    // Trade 501 follows the forced break after trade 500.
    let break_at = (1..stream.len())
        .find(|&i| stream[i].time_ms - stream[i - 1].time_ms > i64::from(spec.session_gap_ms))
        .unwrap();
    let (mut a, mut b) = (
        vec![0i64; spec.state_words()],
        vec![0i64; spec.state_words()],
    );
    let mut whole = FeatureEngine::new(&spec, &mut a).unwrap();
    let mut alone = FeatureEngine::new(&spec, &mut b).unwrap();
    let mut out = vec![0f32; spec.feature_count()];
    let mut alone_out = out.clone();
    for trade in &stream[..break_at] {
        whole.push(trade, &mut out).unwrap();
    }
    for trade in &stream[break_at..] {
        let valid = whole.push(trade, &mut out).unwrap();
        assert_eq!(alone.push(trade, &mut alone_out).unwrap(), valid);
        assert_eq!(bits(&out), bits(&alone_out));
    }
    assert!(whole.session_trades() < whole.trades_seen());
}

#[test]
fn log_returns_are_antisymmetric_and_finite() {
    let tick = 1e4 * ln_1p(1.0 / 6_560.0);
    assert_eq!(log_return_bp(6_561, 6_560), tick);
    assert_eq!(log_return_bp(6_560, 6_561), -1e4 * ln_1p(1.0 / 6_560.0));
    assert!((log_return_bp(6_561, 6_560) - 1.524274).abs() < 1e-5);
    assert_eq!(log_return_bp(5, 5), 0.0);
    for (a, b) in [(1, i64::MAX), (i64::MAX, 1), (1, 1 << 40), (3, 2)] {
        let r = log_return_bp(a, b);
        assert!(r.is_finite(), "{a} {b}");
        assert_eq!(r, -log_return_bp(b, a));
    }
    // ln(2^63 - 1) = 43.668 nepers.
    assert!((log_return_bp(i64::MAX, 1) - 436_682.7).abs() < 1.0);
}

#[test]
fn errors_display_their_values() {
    let e = TradeError::TimeBackwards {
        previous: 10,
        found: 4,
    };
    assert_eq!(
        e.to_string(),
        "trade time 4 ms is before the previous trade's 10 ms"
    );
    let e = EngineError::StateTooSmall {
        needed: 9,
        given: 2,
    };
    assert_eq!(
        e.to_string(),
        "feature engine: the state holds 2 words, the spec needs 9"
    );
}

use std::string::ToString;

#[test]
fn the_engine_value_is_small() {
    // docs/DATA.md, "State and capacity": everything that grows with the spec is in the state slice.
    let size = core::mem::size_of::<FeatureEngine<'static>>();
    assert!(size <= 4 * 1024, "{size} bytes");
    std::println!("FeatureEngine: {size} bytes");
}
