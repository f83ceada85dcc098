//! `StreamSession` against the pieces it is made of: the blob's feature spec run through its own
//! `FeatureEngine`, the rows windowed the way the host builds samples (valid rows of one session), and
//! `Session::run` on each window. Every trade of a synthetic stream with session breaks, bursts and warm-ups is
//! compared, for a one-tick MLP and a windowed convolution.

use tickq_core::features::synthetic::{SyntheticTrades, pin_spec};
use tickq_core::features::{FeatureEngine, Trade, TradeError};
use tickq_core::stream::{StreamSession, StreamSessionError, Tick};
use tickq_core::{Model, Session};

use crate::support::stream_blob;

/// A blob over `t` ticks of the pin spec's features (see [`stream_blob`]).
fn blob(t: usize) -> Vec<u8> {
    stream_blob(pin_spec(), t, 11, 0.5, 4.0)
}

/// The reference: the engine, the host's windowing rule and `Session::run`, kept apart from `StreamSession`.
fn reference(model: &Model<'_>, trades: &[Trade]) -> Vec<Option<Vec<i8>>> {
    let fs = model.feature_spec().expect("the blob carries its spec");
    let (t, f) = model.input_shape();
    let mut state = vec![0i64; fs.state_words()];
    let mut engine = FeatureEngine::new(&fs, &mut state).expect("valid spec");
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut session = Session::new(model, &mut arena).expect("exact arena");
    let mut rows: Vec<Vec<f32>> = Vec::new();
    let mut last: Option<i64> = None;
    let mut out = Vec::new();
    for trade in trades {
        if last.is_none_or(|l| trade.time_ms - l > i64::from(fs.session_gap_ms)) {
            rows.clear();
        }
        last = Some(trade.time_ms);
        let mut row = vec![0.0f32; f];
        let valid = engine
            .push(trade, &mut row)
            .expect("synthetic trades are valid");
        if !valid {
            out.push(None);
            continue;
        }
        rows.push(row);
        if rows.len() < t {
            out.push(None);
            continue;
        }
        let window: Vec<f32> = rows[rows.len() - t..].concat();
        out.push(Some(session.run(&window).logits().to_vec()));
    }
    out
}

#[test]
fn stream_sessions_give_the_reference_signal_at_every_trade() {
    let n = if cfg!(miri) { 300 } else { 5_000 };
    let trades: Vec<Trade> = SyntheticTrades::new(3).take(n).collect();
    for t in [1, 4] {
        let bytes = blob(t);
        let model = Model::load(&bytes).expect("the blob loads");
        let expected = reference(&model, &trades);
        let mut arena = vec![0x5Au8; StreamSession::arena_bytes(&model).expect("streamable")];
        let mut state = vec![-1i64; StreamSession::state_words(&model).expect("has a spec")];
        let mut stream = StreamSession::new(&model, &mut arena, &mut state).expect("fits");
        let mut signals = 0usize;
        for (i, (trade, want)) in trades.iter().zip(&expected).enumerate() {
            let got = match stream.push_trade(trade).expect("valid trade") {
                Tick::Warming => None,
                Tick::Signal(p) => Some(p.logits().to_vec()),
            };
            assert_eq!(&got, want, "T = {t}, trade {i}");
            signals += usize::from(got.is_some());
        }
        // The stream has warm-ups and breaks, but most trades give a signal.
        assert!(
            signals > n / 2 && signals < n,
            "T = {t}: {signals} signals of {n}"
        );
    }
}

#[test]
fn a_refused_trade_leaves_the_stream_as_it_was() {
    let bytes = blob(4);
    let model = Model::load(&bytes).expect("the blob loads");
    let trades: Vec<Trade> = SyntheticTrades::new(9).take(400).collect();
    let expected = reference(&model, &trades);
    let mut arena = vec![0u8; StreamSession::arena_bytes(&model).expect("streamable")];
    let mut state = vec![0i64; StreamSession::state_words(&model).expect("has a spec")];
    let mut stream = StreamSession::new(&model, &mut arena, &mut state).expect("fits");
    for (i, (trade, want)) in trades.iter().zip(&expected).enumerate() {
        if i % 7 == 3 {
            let back = Trade {
                time_ms: trade.time_ms - 10_000_000,
                ..*trade
            };
            let zero = Trade {
                price_ticks: 0,
                ..*trade
            };
            assert!(matches!(
                stream.push_trade(&back),
                Err(TradeError::TimeBackwards { .. })
            ));
            assert_eq!(
                stream.push_trade(&zero).err(),
                Some(TradeError::Price { found: 0 })
            );
        }
        let got = stream
            .push_trade(trade)
            .expect("valid")
            .prediction()
            .map(|p| p.logits().to_vec());
        assert_eq!(&got, want, "trade {i}");
    }
}

#[test]
fn stream_sessions_refuse_what_they_cannot_run() {
    let plain = crate::support::mlp_blob(8, 16, 3);
    let model = Model::load(&plain).expect("loads");
    assert_eq!(
        StreamSession::state_words(&model),
        Err(StreamSessionError::NoFeatureSpec)
    );
    let mut arena = vec![0u8; 4096];
    let mut state = vec![0i64; 16];
    assert_eq!(
        StreamSession::new(&model, &mut arena, &mut state).err(),
        Some(StreamSessionError::NoFeatureSpec)
    );
    let bytes = blob(1);
    let model = Model::load(&bytes).expect("loads");
    let words = StreamSession::state_words(&model).expect("has a spec");
    let mut state = vec![0i64; words - 1];
    let mut arena = vec![0u8; model.arena_bytes()];
    assert!(matches!(
        StreamSession::new(&model, &mut arena, &mut state).err(),
        Some(StreamSessionError::Engine(tickq_core::features::EngineError::StateTooSmall { needed, given }))
            if needed == words && given == words - 1
    ));
    let mut state = vec![0i64; words];
    let mut small = vec![0u8; model.arena_bytes() - 1];
    assert!(matches!(
        StreamSession::new(&model, &mut small, &mut state).err(),
        Some(StreamSessionError::Arena(_))
    ));
    let message = StreamSessionError::NoFeatureSpec.to_string();
    assert!(message.contains("no feature spec"), "{message}");
}
