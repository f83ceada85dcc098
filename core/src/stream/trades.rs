//! Raw trades in, signals out: a blob's own feature spec feeding its model, one trade at a time.
//!
//! [`StreamSession`] is what a device runs when the blob carries a feature spec (`docs/BLOB.md`): the
//! [`FeatureEngine`] turns each trade into the model's feature row, in the state buffer the caller gives it, and
//! the row goes to a [`Session`] (one-tick models) or a [`WindowSession`] (models over the last `T` ticks, which
//! computes only the newest column of each layer). Rows start counting at a session break and after the warm-up,
//! exactly as the host builds its training samples, so a signal appears for every trade the host would have
//! made a sample of (the label aside).

use core::fmt;

use crate::error::ArenaTooSmall;
use crate::features::{Bar, BookLevels, FeatureSpec, MarketError, Trade};
use crate::features::{EngineError, FeatureEngine, TradeError};
use crate::model::Model;
use crate::session::{Prediction, Session};
use crate::stream::{StreamError, WindowSession};

/// The most features a streamed model may read: a [`FeatureSpec`] with every list full stays below it.
pub const MAX_STREAM_FEATURES: usize = 128;

/// Why a [`StreamSession`] could not be built for a model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StreamSessionError {
    /// The blob carries no feature spec: it takes finished feature vectors ([`Session::run`]), not trades.
    NoFeatureSpec,
    /// The model reads more than [`MAX_STREAM_FEATURES`] features per tick.
    TooManyFeatures {
        /// The model's features per tick.
        features: usize,
    },
    /// The feature engine refused its spec or its state buffer.
    Engine(EngineError),
    /// The arena is too small for the model.
    Arena(ArenaTooSmall),
    /// The windowed model cannot be streamed.
    Window(StreamError),
}

impl fmt::Display for StreamSessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamSessionError::NoFeatureSpec => f.write_str(
                "the blob carries no feature spec: it takes feature vectors, not trades (export it with its feature spec)",
            ),
            StreamSessionError::TooManyFeatures { features } => write!(
                f,
                "the model reads {features} features per tick; a stream session holds at most {MAX_STREAM_FEATURES}"
            ),
            StreamSessionError::Engine(e) => e.fmt(f),
            StreamSessionError::Arena(e) => e.fmt(f),
            StreamSessionError::Window(e) => e.fmt(f),
        }
    }
}

/// The wrapped errors' texts are this error's own text, so none is also given as a source.
impl core::error::Error for StreamSessionError {}

/// What one trade gave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tick<'s> {
    /// No signal yet: the session is still warming up its feature windows, or the model's window of `T` valid
    /// ticks is still filling.
    Warming,
    /// The model's prediction for this trade.
    Signal(Prediction<'s>),
}

impl<'s> Tick<'s> {
    /// The prediction, if this trade gave one.
    #[inline]
    pub fn prediction(self) -> Option<Prediction<'s>> {
        match self {
            Tick::Warming => None,
            Tick::Signal(p) => Some(p),
        }
    }
}

/// The model half of a stream: one tick, or a window of ticks.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "no allocator to box the window in; a stream holds exactly one of the two for its whole life"
)]
enum Inference<'m, 'b, 'a> {
    Tick(Session<'m, 'b, 'a>),
    Window(WindowSession<'m, 'b, 'a>),
}

/// A model bound to its feature engine, an arena and a state buffer: push trades, read signals.
///
/// ```
/// use tickq_core::features::{Side, Trade};
/// use tickq_core::stream::{StreamSession, Tick};
/// use tickq_core::Model;
///
/// /// Streams `trades` (already in the blob's ticks and lots) and returns the last signal.
/// fn last_signal(blob: &[u8], trades: &[Trade]) -> Result<Option<usize>, Box<dyn std::error::Error>> {
///     let model = Model::load(blob)?;
///     let mut arena = vec![0u8; StreamSession::arena_bytes(&model)?];
///     let mut state = vec![0i64; StreamSession::state_words(&model)?];
///     let mut stream = StreamSession::new(&model, &mut arena, &mut state)?;
///     let mut last = None;
///     for trade in trades {
///         if let Tick::Signal(prediction) = stream.push_trade(trade)? {
///             last = Some(prediction.signal());
///         }
///     }
///     Ok(last)
/// }
/// # let _ = last_signal;
/// # let _ = Trade { time_ms: 0, price_ticks: 1, size_lots: 1, side: Side::Unknown };
/// ```
#[derive(Debug)]
pub struct StreamSession<'m, 'b, 'a> {
    engine: FeatureEngine<'a>,
    inference: Inference<'m, 'b, 'a>,
    row: [f32; MAX_STREAM_FEATURES],
    features: usize,
    session_gap_ms: i64,
    last_time: Option<i64>,
}

impl<'m, 'b, 'a> StreamSession<'m, 'b, 'a> {
    fn spec(model: &Model<'_>) -> Result<FeatureSpec, StreamSessionError> {
        model
            .feature_spec()
            .ok_or(StreamSessionError::NoFeatureSpec)
    }

    /// The `i64` words of feature-engine state the model's spec needs.
    ///
    /// # Errors
    ///
    /// [`StreamSessionError::NoFeatureSpec`] for a blob without a feature spec.
    pub fn state_words(model: &Model<'_>) -> Result<usize, StreamSessionError> {
        Ok(Self::spec(model)?.state_words())
    }

    /// The arena bytes the model needs when streamed: [`Model::arena_bytes`] for a one-tick model,
    /// [`WindowSession::arena_bytes`] for a windowed one.
    ///
    /// # Errors
    ///
    /// [`StreamSessionError::Window`] for a windowed model that cannot stream.
    pub fn arena_bytes(model: &Model<'_>) -> Result<usize, StreamSessionError> {
        if model.input_shape().0 <= 1 {
            Ok(model.arena_bytes())
        } else {
            WindowSession::arena_bytes(model).map_err(StreamSessionError::Window)
        }
    }

    /// Binds `model` to `arena` (at least [`StreamSession::arena_bytes`]) and `state` (at least
    /// [`StreamSession::state_words`] words). Neither needs initializing.
    ///
    /// # Errors
    ///
    /// A [`StreamSessionError`]: no feature spec in the blob, a buffer too small, or a windowed model that
    /// cannot stream (naming its layer).
    pub fn new(
        model: &'m Model<'b>,
        arena: &'a mut [u8],
        state: &'a mut [i64],
    ) -> Result<Self, StreamSessionError> {
        let spec = Self::spec(model)?;
        let features = spec.feature_count();
        if features > MAX_STREAM_FEATURES {
            return Err(StreamSessionError::TooManyFeatures { features });
        }
        let engine = FeatureEngine::new(&spec, state).map_err(StreamSessionError::Engine)?;
        let inference = if model.input_shape().0 <= 1 {
            Inference::Tick(Session::new(model, arena).map_err(StreamSessionError::Arena)?)
        } else {
            Inference::Window(WindowSession::new(model, arena).map_err(StreamSessionError::Window)?)
        };
        Ok(StreamSession {
            engine,
            inference,
            row: [0.0; MAX_STREAM_FEATURES],
            features,
            session_gap_ms: i64::from(spec.session_gap_ms),
            last_time: None,
        })
    }

    /// Forgets every trade: the next one starts a new session.
    pub fn reset(&mut self) {
        self.engine.reset();
        if let Inference::Window(w) = &mut self.inference {
            w.reset();
        }
        self.last_time = None;
    }

    /// Feeds one trade and returns the model's prediction for it, or [`Tick::Warming`].
    ///
    /// Allocation-free and panic-free; the only error is a trade the engine refuses (a price below one tick,
    /// a time before the previous trade's), which leaves the session as it was.
    ///
    /// # Errors
    ///
    /// The engine's [`TradeError`].
    pub fn push_trade(&mut self, trade: &Trade) -> Result<Tick<'_>, TradeError> {
        let row = self.row.get_mut(..self.features).unwrap_or(&mut []);
        let valid = self.engine.push(trade, row)?;
        // The engine resets its windows at a session break; the model's window of ticks must restart too, since
        // the host never builds a sample across a break.
        let new_session = self
            .last_time
            .is_none_or(|last| trade.time_ms.saturating_sub(last) > self.session_gap_ms);
        self.last_time = Some(trade.time_ms);
        Ok(self.infer(valid, new_session))
    }

    /// Feeds one bar (a blob whose feature spec reads bars) and returns the model's prediction for it, or
    /// [`Tick::Warming`]: the same rows, sessions and warm-up as the host's `build_market_dataset`.
    ///
    /// # Errors
    ///
    /// The engine's [`MarketError`] (another input kind, prices out of order, a time before the previous
    /// bar's), which leaves the session as it was.
    pub fn push_bar(&mut self, bar: &Bar) -> Result<Tick<'_>, MarketError> {
        let row = self.row.get_mut(..self.features).unwrap_or(&mut []);
        let valid = self.engine.push_bar(bar, row)?;
        let new_session = self.engine.session_events() == 1;
        self.last_time = Some(bar.time_ms);
        Ok(self.infer(valid, new_session))
    }

    /// Feeds one book snapshot (a blob whose feature spec reads the book; its trades go to
    /// [`push_trade`](StreamSession::push_trade), which then returns [`Tick::Warming`]) and returns the model's
    /// prediction for it, or [`Tick::Warming`].
    ///
    /// # Errors
    ///
    /// The engine's [`MarketError`] (another input kind, a crossed or locked level, levels out of order, a
    /// time before the previous event's), which leaves the session as it was.
    pub fn push_book(&mut self, book: &BookLevels) -> Result<Tick<'_>, MarketError> {
        let row = self.row.get_mut(..self.features).unwrap_or(&mut []);
        let valid = self.engine.push_book(book, row)?;
        let new_session = self.engine.session_events() == 1;
        self.last_time = Some(book.time_ms);
        Ok(self.infer(valid, new_session))
    }

    /// The model's answer to the row just computed.
    fn infer(&mut self, valid: bool, new_session: bool) -> Tick<'_> {
        let row = self.row.get(..self.features).unwrap_or(&[]);
        match &mut self.inference {
            Inference::Tick(session) => {
                if valid {
                    Tick::Signal(session.run(row))
                } else {
                    Tick::Warming
                }
            }
            Inference::Window(window) => {
                if new_session {
                    window.reset();
                }
                if valid {
                    window.push(row).map_or(Tick::Warming, Tick::Signal)
                } else {
                    Tick::Warming
                }
            }
        }
    }
}
