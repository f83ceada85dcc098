//! `StreamSession::push_bar` and `push_book` against the pieces they are made of: the blob's bars or book
//! spec run through its own `FeatureEngine`, the rows windowed the way the host builds samples (valid rows of
//! one session) and `Session::run` on each window, for every bar or snapshot of a stream with session breaks,
//! for a one-tick MLP and a windowed convolution.

use tickq_core::features::{
    Bar, BookLevel, BookLevels, FeatureEngine, FeatureSpec, InputKind, InputSpec, MarketError,
    Side, Trade, WindowList,
};
use tickq_core::stream::{StreamSession, Tick};
use tickq_core::{Model, Session};

use crate::support::stream_blob;

fn list(items: &[u32]) -> WindowList {
    WindowList::new(items).unwrap()
}

fn market_spec(kind: InputKind) -> FeatureSpec {
    let input = match kind {
        InputKind::Bars => InputSpec {
            kind,
            bar_return_lags: list(&[1, 4, 12]),
            bar_volume_windows: list(&[8]),
            ..InputSpec::TRADES
        },
        _ => InputSpec {
            kind: InputKind::Book,
            book_return_lags: list(&[1, 6]),
            book_depth_levels: list(&[1, 3]),
            book_ofi_windows: list(&[4, 16]),
            book_trade_windows: list(&[8]),
            ..InputSpec::TRADES
        },
    };
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
        capacity: 32,
        tick_size: 0.00001,
        size_unit: 1.0,
        input,
    }
}

/// A blob over `t` ticks of `fs`'s features (see [`stream_blob`]).
fn blob(fs: FeatureSpec, t: usize) -> Vec<u8> {
    stream_blob(fs, t, 17, 0.0, 20.0)
}

/// One input of a stream.
#[derive(Clone, Copy)]
enum Input {
    Bar(Bar),
    Book(BookLevels),
    Trade(Trade),
}

struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> i64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n) as i64
    }
}

fn bars(n: usize) -> Vec<Input> {
    let mut rng = Lcg(5);
    let (mut time, mut close) = (1_704_153_600_000i64, 110_000i64);
    (0..n)
        .map(|i| {
            time += if i % 97 == 96 {
                50 * 3_600_000
            } else {
                3_600_000
            };
            let open = close;
            close = open + rng.next(61) - 30;
            Input::Bar(Bar {
                time_ms: time,
                open_ticks: open,
                high_ticks: open.max(close) + rng.next(8),
                low_ticks: open.min(close) - rng.next(8),
                close_ticks: close,
                volume_lots: rng.next(1_000) as u32,
            })
        })
        .collect()
}

fn books(n: usize) -> Vec<Input> {
    let mut rng = Lcg(6);
    let (mut time, mut bid) = (0i64, 50_000i64);
    (0..n)
        .map(|i| {
            time += if i % 211 == 210 {
                3 * 3_600_000
            } else {
                rng.next(500)
            };
            if rng.next(4) == 0 {
                return Input::Trade(Trade {
                    time_ms: time,
                    price_ticks: bid + rng.next(2),
                    size_lots: 1,
                    side: if rng.next(2) == 0 {
                        Side::Buy
                    } else {
                        Side::Unknown
                    },
                });
            }
            bid += rng.next(3) - 1;
            let levels: Vec<BookLevel> = (0..3)
                .map(|k| BookLevel {
                    bid_ticks: bid - k,
                    bid_lots: rng.next(30) as u32,
                    ask_ticks: bid + 1 + k,
                    ask_lots: rng.next(30) as u32,
                })
                .collect();
            Input::Book(BookLevels::new(time, &levels).unwrap())
        })
        .collect()
}

/// The reference: the engine, the host's windowing rule (valid rows of one session) and `Session::run`.
fn reference(model: &Model<'_>, inputs: &[Input]) -> Vec<Option<Vec<i8>>> {
    let fs = model.feature_spec().expect("the blob carries its spec");
    let (t, f) = model.input_shape();
    let mut state = vec![0i64; fs.state_words()];
    let mut engine = FeatureEngine::new(&fs, &mut state).expect("valid spec");
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut session = Session::new(model, &mut arena).expect("exact arena");
    let mut rows: Vec<Vec<f32>> = Vec::new();
    let mut out = Vec::new();
    for input in inputs {
        let mut row = vec![0.0f32; f];
        let valid = match input {
            Input::Bar(b) => engine.push_bar(b, &mut row).unwrap(),
            Input::Book(b) => engine.push_book(b, &mut row).unwrap(),
            Input::Trade(tr) => {
                engine.push(tr, &mut row).unwrap();
                out.push(None);
                continue;
            }
        };
        if engine.session_events() == 1 {
            rows.clear();
        }
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
fn bar_and_book_streams_give_the_reference_signal_at_every_row() {
    for (kind, inputs) in [
        (InputKind::Bars, bars(600)),
        (InputKind::Book, books(1_500)),
    ] {
        for t in [1, 4] {
            let bytes = blob(market_spec(kind), t);
            let model = Model::load(&bytes).expect("the blob loads");
            assert_eq!(model.feature_spec().map(|s| s.input.kind), Some(kind));
            let expected = reference(&model, &inputs);
            let mut arena = vec![0x5Au8; StreamSession::arena_bytes(&model).expect("streamable")];
            let mut state = vec![-1i64; StreamSession::state_words(&model).expect("has a spec")];
            let mut stream = StreamSession::new(&model, &mut arena, &mut state).expect("fits");
            let mut signals = 0usize;
            for (i, (input, want)) in inputs.iter().zip(&expected).enumerate() {
                let tick = match input {
                    Input::Bar(b) => stream.push_bar(b).expect("valid bar"),
                    Input::Book(b) => stream.push_book(b).expect("valid book"),
                    Input::Trade(tr) => stream.push_trade(tr).expect("valid trade"),
                };
                let got = match tick {
                    Tick::Warming => None,
                    Tick::Signal(p) => Some(p.logits().to_vec()),
                };
                assert_eq!(&got, want, "{kind}, T = {t}, input {i}");
                signals += usize::from(got.is_some());
            }
            assert!(
                signals > inputs.len() / 3,
                "{kind}, T = {t}: {signals} signals"
            );
            // A bar pushed to a book stream, or the reverse, is refused.
            let wrong = match kind {
                InputKind::Bars => stream.push_book(&BookLevels::quote(
                    i64::MAX,
                    BookLevel {
                        bid_ticks: 1,
                        bid_lots: 1,
                        ask_ticks: 2,
                        ask_lots: 1,
                    },
                )),
                _ => match bars(1)[0] {
                    Input::Bar(b) => stream.push_bar(&b),
                    _ => unreachable!(),
                },
            };
            assert!(matches!(wrong, Err(MarketError::WrongInput { .. })));
        }
    }
}
