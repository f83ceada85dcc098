//! The device path, replayed on the host: raw trades through tickq-core's [`StreamSession`], every signal and
//! int8 logit checked against the host pipeline (the training code's features, then the blob's
//! [`Session::run`]), with the latency of each trade from raw trade to signal.
//!
//! Both paths compute features with the same engine, so what this checks is everything around it on the device:
//! the trade conversion to ticks and lots, the session breaks, the warm-up, the window of ticks a windowed model
//! reads and the incremental inference over it. A correct build reports 0 mismatches; anything else is a bug.

use std::time::Instant;

use serde::Serialize;
use tickq_core::features::{FeatureSpec, Trade as DeviceTrade, TradeError};
use tickq_core::stream::{StreamSession, StreamSessionError, Tick};
use tickq_core::{Model, Session};

use crate::data::{self, DataError, FeatureConfig, Trade};
use crate::eval::{LatencyStats, latency_stats, timer_overhead};

/// How many mismatches a report lists in full.
pub const LISTED_MISMATCHES: usize = 10;

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The blob carries no feature spec, or its model cannot be streamed.
    #[error("the blob cannot stream trades: {0}")]
    Stream(#[source] StreamSessionError),
    /// The blob's feature spec reads bars or book snapshots: it has no trade features to replay.
    #[error(
        "the blob's feature spec reads {input}, not trades: replay, trade vectors and test-split trades need a trades model"
    )]
    NotTrades {
        /// The spec's input kind.
        input: tickq_core::features::InputKind,
    },
    /// The trades could not be turned into features.
    #[error("computing the host features")]
    Data(#[source] DataError),
    /// The device path refused a trade the host accepted.
    #[error("trade {index} (0-based, in file order) was refused by the device path")]
    Trade {
        /// The trade's index in the file.
        index: usize,
        /// What the engine said.
        #[source]
        source: TradeError,
    },
}

/// One trade where the two paths disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// The trade's index in the file.
    pub trade: usize,
    /// The host pipeline's logits, or `None` if it made no sample there.
    pub host: Option<Vec<i8>>,
    /// The device path's logits, or `None` if it gave no signal there.
    pub device: Option<Vec<i8>>,
}

/// What [`replay`] found.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    /// Trades fed to the device path.
    pub trades: usize,
    /// Trades where at least one path gave a prediction (the samples compared).
    pub compared: usize,
    /// Of those, where the logits differ or only one path has a prediction; 0 is the only passing answer.
    pub mismatches: usize,
    /// Of those, where the argmax signal differs too (a missing prediction counts).
    pub signal_mismatches: usize,
    /// The first [`LISTED_MISMATCHES`] mismatches.
    pub first_mismatches: Vec<Mismatch>,
    /// Per trade, raw trade to signal through [`StreamSession::push_trade`] (every trade, warming or not).
    pub latency: LatencyStats,
    /// Per trade that gave a signal only.
    pub signal_latency: LatencyStats,
}

/// The host pipeline's logits for every trade that ends a complete window of valid rows in one session, `None`
/// elsewhere: [`compute_features`](data::compute_features) over the whole file (the training code path), then
/// the blob's [`Session::run`] on each window.
fn host_logits(
    model: &Model<'_>,
    spec: &FeatureSpec,
    trades: &[Trade],
) -> Result<Vec<Option<Vec<i8>>>, DataError> {
    let config = FeatureConfig::from_spec(spec);
    let features = data::compute_features(trades, &config)?;
    let (steps, width) = model.input_shape();
    let mut arena = vec![0u8; model.arena_bytes()];
    let Ok(mut session) = Session::new(model, &mut arena) else {
        unreachable!("the arena has exactly arena_bytes()")
    };
    let mut window = Vec::with_capacity(steps * width);
    let mut out = Vec::with_capacity(trades.len());
    for i in 0..trades.len() {
        let first = (i + 1).checked_sub(steps.max(1)).filter(|&first| {
            features.valid[first..=i].iter().all(|&v| v)
                && features.session_start_of(first) == features.session_start_of(i)
        });
        out.push(first.map(|first| {
            window.clear();
            for row in first..=i {
                window.extend(features.values.row(row).iter());
            }
            session.run(&window).logits().to_vec()
        }));
    }
    Ok(out)
}

/// The trades in device units, and the host's logits for each (`None` where it makes no sample).
pub type HostPredictions = (Vec<DeviceTrade>, Vec<Option<Vec<i8>>>);

/// `trades` in the blob's device units (ticks and lots), and the host pipeline's logits for each (`None` where
/// the host makes no sample).
///
/// # Errors
///
/// [`ReplayError::Stream`] when the blob has no feature spec, [`ReplayError::Data`] when the trades do not fit
/// its tick and lot grid.
pub fn host_predictions(
    model: &Model<'_>,
    trades: &[Trade],
) -> Result<HostPredictions, ReplayError> {
    let spec = trade_spec(model)?;
    let expected = host_logits(model, &spec, trades).map_err(ReplayError::Data)?;
    let device =
        data::core_trades(trades, &FeatureConfig::from_spec(&spec)).map_err(ReplayError::Data)?;
    Ok((device, expected))
}

/// The blob's feature spec, when it reads trades.
///
/// # Errors
///
/// [`ReplayError::Stream`] for a blob without a spec, [`ReplayError::NotTrades`] for a bars or book spec.
pub fn trade_spec(model: &Model<'_>) -> Result<FeatureSpec, ReplayError> {
    let spec = model
        .feature_spec()
        .ok_or(ReplayError::Stream(StreamSessionError::NoFeatureSpec))?;
    match spec.input.kind {
        tickq_core::features::InputKind::Trades => Ok(spec),
        input => Err(ReplayError::NotTrades { input }),
    }
}

/// A stream over `model`'s own arena and state.
struct OwnedStream {
    arena: Vec<u8>,
    state: Vec<i64>,
}

impl OwnedStream {
    fn for_model(model: &Model<'_>) -> Result<OwnedStream, ReplayError> {
        Ok(OwnedStream {
            arena: vec![0u8; StreamSession::arena_bytes(model).map_err(ReplayError::Stream)?],
            state: vec![0i64; StreamSession::state_words(model).map_err(ReplayError::Stream)?],
        })
    }

    fn session<'m, 'b, 's>(
        &'s mut self,
        model: &'m Model<'b>,
    ) -> Result<StreamSession<'m, 'b, 's>, ReplayError> {
        StreamSession::new(model, &mut self.arena, &mut self.state).map_err(ReplayError::Stream)
    }
}

/// Replays `trades` through the blob's [`StreamSession`] and checks every prediction against the host pipeline.
///
/// # Errors
///
/// [`ReplayError::Stream`] when the blob has no feature spec or cannot stream, [`ReplayError::Data`] when the
/// trades do not fit the spec's tick and lot grid, [`ReplayError::Trade`] when the engine refuses a trade.
pub fn replay(model: &Model<'_>, trades: &[Trade]) -> Result<ReplayReport, ReplayError> {
    let (device_trades, host) = host_predictions(model, trades)?;
    let mut buffers = OwnedStream::for_model(model)?;
    let mut stream = buffers.session(model)?;
    let overhead = timer_overhead();
    let mut all = Vec::with_capacity(trades.len());
    let mut signalled = Vec::new();
    let mut report_mismatches = Vec::new();
    let (mut compared, mut mismatches, mut signal_mismatches) = (0usize, 0usize, 0usize);
    for (index, (trade, expected)) in device_trades.iter().zip(&host).enumerate() {
        let start = Instant::now();
        let tick = stream.push_trade(std::hint::black_box(trade));
        let ns = (start.elapsed().as_nanos() as u64).saturating_sub(overhead);
        let tick = tick.map_err(|source| ReplayError::Trade { index, source })?;
        all.push(ns);
        let device = match tick {
            Tick::Warming => None,
            Tick::Signal(p) => {
                signalled.push(ns);
                Some(p)
            }
        };
        if device.is_none() && expected.is_none() {
            continue;
        }
        compared += 1;
        let same = match (&device, expected) {
            (Some(d), Some(h)) => d.logits() == h.as_slice(),
            _ => false,
        };
        if same {
            continue;
        }
        mismatches += 1;
        let signals_differ = match (&device, expected) {
            (Some(d), Some(h)) => d.signal() != crate::eval::argmax(h),
            _ => true,
        };
        signal_mismatches += usize::from(signals_differ);
        if report_mismatches.len() < LISTED_MISMATCHES {
            report_mismatches.push(Mismatch {
                trade: index,
                host: expected.clone(),
                device: device.map(|d| d.logits().to_vec()),
            });
        }
    }
    let backend = model.backend().name();
    Ok(ReplayReport {
        trades: trades.len(),
        compared,
        mismatches,
        signal_mismatches,
        first_mismatches: report_mismatches,
        latency: latency_stats(all, overhead, backend),
        signal_latency: latency_stats(signalled, overhead, backend),
    })
}

/// Times `calls` single [`StreamSession::push_trade`] calls, raw trade to signal, cycling through `trades` (in
/// device units) from a fresh stream; at the end of the list the stream is reset, untimed, and starts again.
/// The first pass (up to 10,000 trades) warms caches and is not timed.
///
/// # Errors
///
/// [`ReplayError::Stream`] when the blob cannot stream, [`ReplayError::Trade`] when the engine refuses a trade.
pub fn measure_trade_latency(
    model: &Model<'_>,
    trades: &[DeviceTrade],
    calls: usize,
) -> Result<LatencyStats, ReplayError> {
    let mut buffers = OwnedStream::for_model(model)?;
    let mut stream = buffers.session(model)?;
    let overhead = timer_overhead();
    let backend = model.backend().name();
    if trades.is_empty() {
        return Ok(latency_stats(Vec::new(), overhead, backend));
    }
    let mut sink = 0usize;
    let mut push =
        |stream: &mut StreamSession<'_, '_, '_>, index: usize| -> Result<u64, ReplayError> {
            let trade = std::hint::black_box(&trades[index]);
            let start = Instant::now();
            let tick = stream.push_trade(trade);
            let ns = start.elapsed().as_nanos() as u64;
            match tick.map_err(|source| ReplayError::Trade { index, source })? {
                Tick::Warming => {}
                Tick::Signal(p) => sink = sink.wrapping_add(p.signal()),
            }
            Ok(ns.saturating_sub(overhead))
        };
    for index in 0..trades.len().min(10_000) {
        push(&mut stream, index)?;
    }
    stream.reset();
    let mut samples = Vec::with_capacity(calls);
    let mut index = 0usize;
    for _ in 0..calls {
        if index == trades.len() {
            stream.reset();
            index = 0;
        }
        samples.push(push(&mut stream, index)?);
        index += 1;
    }
    std::hint::black_box(sink);
    Ok(latency_stats(samples, overhead, backend))
}
