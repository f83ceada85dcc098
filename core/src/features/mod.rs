//! The streaming feature engine: raw trades in, the model's f32 features out, one trade at a time.
//!
//! The host's training pipeline and the device run this same code, so a blob's model sees the same feature bits
//! on both (see `docs/DATA.md` for each feature and `docs/ARITHMETIC.md` for the arithmetic that makes them equal
//! on every target).
//!
//! - [`spec`]: [`FeatureSpec`], which features over which windows, and its one validation.
//! - [`Trade`]: one trade in integer units (milliseconds, ticks, lots).
//! - [`market`]: the other inputs, [`Bar`]s and [`BookLevels`] snapshots, and a spec's [`InputKind`].
//! - [`log`]: [`log::ln_1p`], the engine's deterministic `ln(1 + x)`.
//! - `engine` (cargo feature `stream`): the `FeatureEngine`, which turns each trade into its row of features.
//! - `synthetic` (cargo feature `stream`): a deterministic trade stream for tests and firmware examples.

#[cfg(feature = "stream")]
pub mod engine;
pub mod log;
pub mod market;
pub mod spec;
#[cfg(feature = "stream")]
pub mod synthetic;

#[cfg(feature = "stream")]
pub use engine::{EngineError, FeatureEngine, TradeError};
pub use market::{Bar, BookLevel, BookLevels, InputKind, InputSpec, MAX_BOOK_LEVELS, MarketError};
pub use spec::{
    FeatureSpec, MAX_CAPACITY, MAX_WINDOW_MS, MAX_WINDOWS, SpecError, SpecField, WindowList,
};

/// The aggressor side of a trade, when the feed says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Side {
    /// Not given: the engine signs the trade with the tick rule.
    #[default]
    Unknown,
    /// The buyer took the offer.
    Buy,
    /// The seller hit the bid.
    Sell,
}

/// One trade, in the integer units of a [`FeatureSpec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Trade {
    /// Milliseconds since an epoch of the caller's choice (the host uses 1970-01-01T00:00:00 UTC); never
    /// decreasing from one trade to the next.
    pub time_ms: i64,
    /// The price in ticks ([`FeatureSpec::tick_size`]), at least 1.
    pub price_ticks: i64,
    /// The size in lots ([`FeatureSpec::size_unit`]).
    pub size_lots: u32,
    /// The aggressor side, or [`Side::Unknown`].
    pub side: Side,
}
