//! The inputs besides trades: OHLCV bars and order-book snapshots, in the integer units of a [`FeatureSpec`],
//! the input kind a spec reads ([`InputKind`], [`InputSpec`]) and the errors of pushing them.
//!
//! A spec of kind [`InputKind::Bars`] is fed [`Bar`]s, one row of features per bar; a spec of kind
//! [`InputKind::Book`] is fed [`BookLevels`] snapshots (one row per snapshot) with the trades interleaved (they
//! update the trade-sign windows only). `docs/DATA.md` defines every feature, `docs/ARITHMETIC.md` its arithmetic.
//!
//! [`FeatureSpec`]: super::FeatureSpec

use core::fmt;

use super::spec::WindowList;

/// The most levels a [`BookLevels`] snapshot holds, and the deepest `depth_imb_{n}` a spec may ask for.
pub const MAX_BOOK_LEVELS: usize = 5;

/// What a spec's engine is fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum InputKind {
    /// Trades, one row each (the 29 default features of `docs/DATA.md`).
    #[default]
    Trades,
    /// OHLCV bars, one row each.
    Bars,
    /// Order-book snapshots, one row each, with the trades interleaved.
    Book,
}

impl InputKind {
    /// The kind's name, as in the host's config and error messages: `trades`, `bars` or `book`.
    pub fn name(self) -> &'static str {
        match self {
            InputKind::Trades => "trades",
            InputKind::Bars => "bars",
            InputKind::Book => "book",
        }
    }

    /// The code the blob's feature-spec section stores (byte 33): 0, 1 or 2.
    pub const fn code(self) -> u8 {
        match self {
            InputKind::Trades => 0,
            InputKind::Bars => 1,
            InputKind::Book => 2,
        }
    }

    /// The kind of a stored code, `None` for an unknown one.
    pub fn from_code(code: u8) -> Option<InputKind> {
        match code {
            0 => Some(InputKind::Trades),
            1 => Some(InputKind::Bars),
            2 => Some(InputKind::Book),
            _ => None,
        }
    }
}

impl fmt::Display for InputKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The input kind of a spec and the window lists of the bar and book features.
///
/// A list belongs to one kind (`bar_*` to [`InputKind::Bars`], `book_*` to [`InputKind::Book`]) and must be
/// empty in a spec of another kind; the trade lists of `FeatureSpec` must be empty unless the kind is
/// [`InputKind::Trades`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct InputSpec {
    /// What the engine is fed.
    pub kind: InputKind,
    /// Lags `k` (bars) of the close-to-close log returns `ret_{k}b`.
    pub bar_return_lags: WindowList,
    /// Windows (bars) of the relative volume `relvol_{w}b`.
    pub bar_volume_windows: WindowList,
    /// Lags `k` (snapshots) of the mid-price log returns `mret_{k}e`.
    pub book_return_lags: WindowList,
    /// Depths `n` (levels, 1 to [`MAX_BOOK_LEVELS`]) of the depth imbalance `depth_imb_{n}`.
    pub book_depth_levels: WindowList,
    /// Windows (snapshots) of the order-flow imbalance `bofi_{w}e`.
    pub book_ofi_windows: WindowList,
    /// Windows (trades) of the trade-sign imbalance `tsi_{w}t`.
    pub book_trade_windows: WindowList,
}

impl InputSpec {
    /// Trades: every bar and book list empty.
    pub const TRADES: InputSpec = InputSpec {
        kind: InputKind::Trades,
        bar_return_lags: WindowList::EMPTY,
        bar_volume_windows: WindowList::EMPTY,
        book_return_lags: WindowList::EMPTY,
        book_depth_levels: WindowList::EMPTY,
        book_ofi_windows: WindowList::EMPTY,
        book_trade_windows: WindowList::EMPTY,
    };
}

/// One OHLCV bar in the integer units of a `FeatureSpec`: prices in ticks, the volume in lots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bar {
    /// The bar's time in milliseconds since 1970-01-01T00:00:00 UTC (the time-of-day features read it as UTC);
    /// never decreasing from one bar to the next.
    pub time_ms: i64,
    /// The first price, in ticks.
    pub open_ticks: i64,
    /// The highest price, in ticks: at least the open, the close and the low.
    pub high_ticks: i64,
    /// The lowest price, in ticks: at least 1, at most the open and the close.
    pub low_ticks: i64,
    /// The last price, in ticks.
    pub close_ticks: i64,
    /// The volume, in lots.
    pub volume_lots: u32,
}

/// One level of a book snapshot: the bid and ask prices (ticks) and their sizes (lots).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BookLevel {
    /// The bid price, in ticks.
    pub bid_ticks: i64,
    /// The size at the bid, in lots.
    pub bid_lots: u32,
    /// The ask price, in ticks.
    pub ask_ticks: i64,
    /// The size at the ask, in lots.
    pub ask_lots: u32,
}

/// A snapshot of the top levels of the book after an event (a quote is a book of one level).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BookLevels {
    /// The snapshot's time in milliseconds; never decreasing from one event (snapshot or trade) to the next.
    pub time_ms: i64,
    depth: u8,
    levels: [BookLevel; MAX_BOOK_LEVELS],
}

impl BookLevels {
    /// A snapshot of `levels` (best first), or `None` for none or more than [`MAX_BOOK_LEVELS`].
    pub fn new(time_ms: i64, levels: &[BookLevel]) -> Option<BookLevels> {
        if levels.is_empty() || levels.len() > MAX_BOOK_LEVELS {
            return None;
        }
        let mut out = [BookLevel::default(); MAX_BOOK_LEVELS];
        for (slot, level) in out.iter_mut().zip(levels) {
            *slot = *level;
        }
        Some(BookLevels {
            time_ms,
            depth: levels.len() as u8,
            levels: out,
        })
    }

    /// A quote: a book of one level.
    pub fn quote(time_ms: i64, level: BookLevel) -> BookLevels {
        let mut levels = [BookLevel::default(); MAX_BOOK_LEVELS];
        levels[0] = level;
        BookLevels {
            time_ms,
            depth: 1,
            levels,
        }
    }

    /// The levels, best first (1 to [`MAX_BOOK_LEVELS`]).
    #[inline]
    pub fn levels(&self) -> &[BookLevel] {
        self.levels.get(..usize::from(self.depth)).unwrap_or(&[])
    }

    /// The best level.
    #[inline]
    pub fn best(&self) -> BookLevel {
        self.levels[0]
    }
}

/// Why the engine refused a bar or a book snapshot; its state is then unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarketError {
    /// The engine's spec reads another input kind.
    WrongInput {
        /// The kind the spec reads.
        expected: InputKind,
        /// The kind pushed.
        found: InputKind,
    },
    /// The input is earlier than the previous one.
    TimeBackwards {
        /// The previous input's time (ms).
        previous: i64,
        /// This input's time (ms).
        found: i64,
    },
    /// A bar's prices are not `1 <= low <= open, close <= high`.
    BarPrices {
        /// The open, in ticks.
        open: i64,
        /// The high, in ticks.
        high: i64,
        /// The low, in ticks.
        low: i64,
        /// The close, in ticks.
        close: i64,
    },
    /// A snapshot's bid is at or above its ask at some level: a crossed or locked book.
    Crossed {
        /// The level, 1-based.
        level: usize,
        /// The bid, in ticks.
        bid: i64,
        /// The ask, in ticks.
        ask: i64,
    },
    /// A snapshot's price is below 1 tick, or its levels are not strictly worse than the level before
    /// (bids falling, asks rising).
    LevelOrder {
        /// The level, 1-based.
        level: usize,
    },
    /// The output slice is shorter than the spec's feature count.
    OutputTooShort {
        /// Features the spec produces.
        needed: usize,
        /// Length of the slice given.
        given: usize,
    },
}

impl fmt::Display for MarketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MarketError::WrongInput { expected, found } => write!(
                f,
                "the feature spec reads {expected}, not {found}: push {expected} to this engine"
            ),
            MarketError::TimeBackwards { previous, found } => write!(
                f,
                "input time {found} ms is before the previous input's {previous} ms"
            ),
            MarketError::BarPrices {
                open,
                high,
                low,
                close,
            } => write!(
                f,
                "bar prices open {open}, high {high}, low {low}, close {close} ticks are not 1 <= low <= open, close <= high"
            ),
            MarketError::Crossed { level, bid, ask } => write!(
                f,
                "book level {level} is crossed or locked: bid {bid} ticks is not below ask {ask} ticks"
            ),
            MarketError::LevelOrder { level } => write!(
                f,
                "book level {level}: a price below 1 tick, or not worse than the level above (bids must fall, asks rise)"
            ),
            MarketError::OutputTooShort { needed, given } => write!(
                f,
                "feature output holds {given} values, the spec produces {needed}"
            ),
        }
    }
}

impl core::error::Error for MarketError {}

/// Checks a bar's prices.
#[cfg(feature = "stream")]
pub(crate) fn check_bar(bar: &Bar) -> Result<(), MarketError> {
    let ok = bar.low_ticks >= 1
        && bar.low_ticks <= bar.open_ticks.min(bar.close_ticks)
        && bar.high_ticks >= bar.open_ticks.max(bar.close_ticks);
    if ok {
        Ok(())
    } else {
        Err(MarketError::BarPrices {
            open: bar.open_ticks,
            high: bar.high_ticks,
            low: bar.low_ticks,
            close: bar.close_ticks,
        })
    }
}

/// Checks a snapshot: every price at least 1 tick, no level crossed or locked, bids strictly falling and asks
/// strictly rising from one level to the next.
#[cfg(feature = "stream")]
pub(crate) fn check_book(book: &BookLevels) -> Result<(), MarketError> {
    let mut previous: Option<BookLevel> = None;
    for (i, level) in book.levels().iter().enumerate() {
        let number = i + 1;
        if level.bid_ticks < 1 || level.ask_ticks < 1 {
            return Err(MarketError::LevelOrder { level: number });
        }
        if level.bid_ticks >= level.ask_ticks {
            return Err(MarketError::Crossed {
                level: number,
                bid: level.bid_ticks,
                ask: level.ask_ticks,
            });
        }
        if let Some(p) = previous
            && (level.bid_ticks >= p.bid_ticks || level.ask_ticks <= p.ask_ticks)
        {
            return Err(MarketError::LevelOrder { level: number });
        }
        previous = Some(*level);
    }
    Ok(())
}

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

/// A quarter of a day, in milliseconds.
const QUARTER_MS: i64 = DAY_MS / 4;

/// `sin(x)` and `cos(x)` for `x` in `[0, π/2)`, by their Taylor series to the `x^17` and `x^16` terms in `f64`
/// (truncation error below 1e-14), evaluated with plain `+` and `*` in a fixed order: correctly rounded IEEE
/// operations only, so the same bits on every target.
fn sin_cos_quarter(x: f64) -> (f64, f64) {
    let x2 = x * x;
    // Horner from the highest term: sin = x (1 - x²/(2·3) (1 - x²/(4·5) (1 - ...))).
    let mut s = 1.0f64;
    let mut c = 1.0f64;
    let mut k = 8u32;
    while k > 0 {
        let n = f64::from(2 * k);
        s = 1.0 - x2 / (n * (n + 1.0)) * s;
        c = 1.0 - x2 / ((n - 1.0) * n) * c;
        k -= 1;
    }
    (x * s, c)
}

/// The sine and cosine of the UTC time of day of `time_ms` (ms since 1970-01-01T00:00:00 UTC), as the angle
/// `2π · (time of day) / 24 h`: midnight is (0, 1), 06:00 is (1, 0).
///
/// The time of day is reduced to a quadrant and an offset in it with integer arithmetic, the offset becomes an
/// angle in `[0, π/2)` in `f64`, `sin_cos_quarter` gives its sine and cosine and the quadrant rotates them:
/// no `libm` call, so the bits are the same on every target.
pub fn time_of_day_sin_cos(time_ms: i64) -> (f32, f32) {
    let of_day = time_ms.rem_euclid(DAY_MS);
    let quadrant = of_day / QUARTER_MS;
    let offset = of_day - quadrant * QUARTER_MS;
    let angle = offset as f64 * (core::f64::consts::FRAC_PI_2 / QUARTER_MS as f64);
    let (s, c) = sin_cos_quarter(angle);
    let (s, c) = match quadrant {
        0 => (s, c),
        1 => (c, -s),
        2 => (-s, -c),
        _ => (-c, s),
    };
    (s as f32, c as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_of_day_hits_the_quarters_exactly_and_tracks_libm() {
        assert_eq!(time_of_day_sin_cos(0), (0.0, 1.0));
        assert_eq!(time_of_day_sin_cos(6 * 3_600_000), (1.0, -0.0));
        assert_eq!(time_of_day_sin_cos(12 * 3_600_000), (-0.0, -1.0));
        assert_eq!(time_of_day_sin_cos(18 * 3_600_000), (-1.0, 0.0));
        // A day later, or before the epoch, is the same time of day.
        assert_eq!(
            time_of_day_sin_cos(DAY_MS + 1_234_567),
            time_of_day_sin_cos(1_234_567)
        );
        assert_eq!(
            time_of_day_sin_cos(-DAY_MS + 1_234_567),
            time_of_day_sin_cos(1_234_567)
        );
        let mut t = 0i64;
        while t < DAY_MS {
            let (s, c) = time_of_day_sin_cos(t);
            let angle = t as f64 / DAY_MS as f64 * core::f64::consts::TAU;
            assert!((f64::from(s) - libm::sin(angle)).abs() < 1e-7, "sin at {t}");
            assert!((f64::from(c) - libm::cos(angle)).abs() < 1e-7, "cos at {t}");
            t += 997_003;
        }
    }

    #[cfg(feature = "stream")]
    #[test]
    fn bad_bars_and_books_are_named() {
        let bar = Bar {
            time_ms: 0,
            open_ticks: 10,
            high_ticks: 9,
            low_ticks: 8,
            close_ticks: 9,
            volume_lots: 1,
        };
        let e = check_bar(&bar).unwrap_err();
        assert_eq!(
            e.to_string(),
            "bar prices open 10, high 9, low 8, close 9 ticks are not 1 <= low <= open, close <= high"
        );
        let level = |bid, ask| BookLevel {
            bid_ticks: bid,
            bid_lots: 1,
            ask_ticks: ask,
            ask_lots: 1,
        };
        let locked = BookLevels::quote(0, level(10, 10));
        assert_eq!(
            check_book(&locked).unwrap_err().to_string(),
            "book level 1 is crossed or locked: bid 10 ticks is not below ask 10 ticks"
        );
        let unordered = BookLevels::new(0, &[level(10, 11), level(10, 12)]).unwrap();
        assert_eq!(
            check_book(&unordered).unwrap_err(),
            MarketError::LevelOrder { level: 2 }
        );
        assert!(BookLevels::new(0, &[]).is_none());
        assert!(BookLevels::new(0, &[level(1, 2); MAX_BOOK_LEVELS + 1]).is_none());
        assert_eq!(check_book(&BookLevels::quote(0, level(9, 11))), Ok(()));
    }
}
