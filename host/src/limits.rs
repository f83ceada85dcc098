//! The limits tickq checks its inputs against before it allocates, and the helpers that check them.
//!
//! Three kinds of limit live here, each checked where the input is parsed, so a model the core cannot run or a
//! request the machine cannot hold is refused before any training, with the limit and the value in the message:
//!
//! - **Model limits** ([`MAX_UNITS`], [`MAX_FAN_IN`], [`MAX_BLOB_LAYERS`], [`MAX_CLASSES`],
//!   [`MAX_LAYER_PARAMETERS`], [`MAX_PARAMETERS`], [`MAX_NAME_BYTES`]): what an architecture file may describe.
//!   The first four are tickq-core's own format limits, taken from its constants; the others keep a model small
//!   enough to train on a workstation and to run on the devices tickq is for. `Architecture::validate` checks
//!   them all, naming the layer.
//! - **File limits** ([`MAX_CONFIG_BYTES`], [`MAX_JSON_BYTES`], [`MAX_BLOB_BYTES`], [`MAX_WEIGHTS_BYTES`],
//!   [`MAX_LINE_BYTES`], [`MAX_FIELD_BYTES`]): how much tickq reads from a config file, a JSON file beside a
//!   checkpoint, a blob, a safetensors file, a CSV line or a CSV field, so that `/dev/zero` or a file without line ends is refused after
//!   a few kilobytes instead of being read into memory.
//! - **Setting ranges** ([`Count`] and [`Real`] constants such as [`EPOCHS`], [`LATENCY_CALLS`] and
//!   [`MOMENTUM`]): the valid range of every numeric setting, shared by the `tickq` command's value parsers and
//!   the config files (pipeline stages, training and quantization configs), so both give the same message.
//!
//! Counts that size an allocation are either capped by a range here ([`LATENCY_CALLS`], [`PRUNE_STEPS`]) or
//! bounded by data already in memory (test vectors and calibration samples never exceed their split); the
//! allocations whose size follows from the data and the model (the sample matrix, training activations) are
//! checked against the memory available with [`check_memory`] first.
//!
//! [`excerpt`] is how every error shows text it did not write itself: control characters escaped, at most
//! [`EXCERPT_CHARS`] characters.

use std::fmt;
use std::io::Read;
use std::path::Path;

/// The most units (output features or channels) a layer may have, and the most features and time steps the input
/// may have: tickq-core's 16-bit size fields ([`tickq_core::format::MAX_DIM`]). A `flatten` output (`C * T`
/// values) is bounded the same way.
pub const MAX_UNITS: usize = tickq_core::format::MAX_DIM;

/// The most inputs one output of a Dense or Conv1d layer may read (`in` for dense, `in * kernel` for conv1d).
///
/// It keeps tickq-core's accumulator bound provable for any weights: `128 * 127 * MAX_FAN_IN` is about half of
/// `2^31`, which leaves the other half for the bias (a larger fan-in can give `OverflowPossible` at load).
pub const MAX_FAN_IN: usize = tickq_core::format::MAX_DIM;

/// The most layers a blob holds ([`tickq_core::MAX_LAYERS`]), the input quantizer included.
///
/// An architecture's layers map to blob layers one to one, except that a `relu`, `relu6` or `clamp` right after a
/// `dense` or `conv1d` layer is fused into it and a `flatten` of a vector is left out; see
/// `Architecture::blob_layers`.
pub const MAX_BLOB_LAYERS: usize = tickq_core::MAX_LAYERS;

/// The most classes a model may predict ([`tickq_core::MAX_CLASSES`]).
pub const MAX_CLASSES: usize = tickq_core::MAX_CLASSES;

/// The most parameters (weights plus biases) one layer may have: 16 Mi, 64 MiB of f32 weights.
pub const MAX_LAYER_PARAMETERS: usize = 1 << 24;

/// The most parameters a whole model may have: 32 Mi, 128 MiB of f32 weights (and about four times that while
/// training with Adam).
pub const MAX_PARAMETERS: usize = 1 << 25;

/// The most values one tensor of one sample may hold (`channels * time`), to keep arithmetic far from overflow.
pub const MAX_TENSOR_VALUES: usize = 1 << 28;

/// The longest model or layer name in bytes; the core's metadata allows more ([`tickq_core::format::MAX_METADATA_LEN`]).
pub const MAX_NAME_BYTES: usize = 128;

const _: () = assert!(MAX_NAME_BYTES <= tickq_core::format::MAX_METADATA_LEN);

/// The most nodes an imported ONNX graph may have (constants, no-ops and layers together); the file's size is
/// checked against [`MAX_WEIGHTS_BYTES`] before it is read.
pub const MAX_ONNX_NODES: usize = 1024;

/// The largest architecture, pipeline or quantization config file tickq reads: 1 MiB.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The largest blob tickq reads: 256 MiB, well above the blob of the largest model the model limits allow
/// ([`MAX_PARAMETERS`] int8 weights in any weight format). See [`read_blob_file`].
pub const MAX_BLOB_BYTES: u64 = 1 << 28;

/// The largest safetensors file tickq reads: 1 GiB, twice the largest model the limits allow ([`MAX_PARAMETERS`]
/// weights in F64 with a mask each). See [`read_file_limited`].
pub const MAX_WEIGHTS_BYTES: u64 = 1 << 30;

/// The largest JSON file tickq reads beside a checkpoint or a blob (`preprocess.json`, a blob's quantization
/// sidecar): 64 MiB, far above the `preprocess.json` of the widest input the model limits allow ([`MAX_UNITS`]
/// features, a mean and a standard deviation each).
pub const MAX_JSON_BYTES: u64 = 1 << 26;

/// The longest line of a trade CSV, in bytes without its line end: 64 KiB (a trade line is a few dozen bytes).
pub const MAX_LINE_BYTES: usize = 1 << 16;

/// The longest field of a trade CSV, header names included, in bytes.
pub const MAX_FIELD_BYTES: usize = 1024;

/// The most characters of a user's text an error message shows; see [`excerpt`].
pub const EXCERPT_CHARS: usize = 80;

/// Maximum epochs of training or distillation.
pub const EPOCHS: Count = Count::new(1, 1_000_000);
/// Fine-tuning epochs after each pruning step (0: none).
pub const FINE_TUNE_EPOCHS: Count = Count::new(0, 1_000_000);
/// Early-stopping patience in epochs (0: never stop early).
pub const PATIENCE: Count = Count::new(0, 1_000_000);
/// Samples per optimizer step (a batch larger than the training split takes the whole split).
pub const BATCH_SIZE: Count = Count::new(1, 1 << 24);
/// Seeds: any 64-bit value.
pub const SEED: Count = Count::new(0, u64::MAX);
/// Single-sample calls timed for latency percentiles; each keeps an 8-byte sample, so the largest count needs
/// 80 MB.
pub const LATENCY_CALLS: Count = Count::new(1, 10_000_000);
/// Test vectors to export (0: none); the file holds at most the test split's rows.
pub const VECTORS: Count = Count::new(0, u32::MAX as u64);
/// Calibration samples; at most the training split's rows are used.
pub const CALIBRATION_SAMPLES: Count = Count::new(1, u32::MAX as u64);
/// Label horizon in trades.
pub const HORIZON: Count = Count::new(1, 1_000_000_000);
/// Window length in trades: the input's time steps ([`MAX_UNITS`]).
pub const TIME_STEPS: Count = Count::new(1, MAX_UNITS as u64);
/// A feature's trade window or lag, in trades: from 1 to the largest engine capacity (a window must also fit the
/// configured capacity, which [`crate::data::FeatureConfig::validate`] checks).
pub const TRADE_WINDOW: Count = Count::new(1, tickq_core::features::MAX_CAPACITY as u64);
/// A feature's time window or lag, in ms: 1 ms to one week.
pub const TIME_WINDOW_MS: Count = Count::new(1, tickq_core::features::MAX_WINDOW_MS as u64);
/// The gap between trades (ms) above which a session starts: at least 1 ms, and 32 bits in the blob.
pub const SESSION_GAP_MS: Count = Count::new(1, u32::MAX as u64);
/// Levels per side of a book snapshot (`--levels`): the core's most.
pub const BOOK_LEVELS: Count = Count::new(1, tickq_core::features::MAX_BOOK_LEVELS as u64);
/// Lines skipped before a data file's header line (`--skip-rows`).
pub const SKIP_ROWS: Count = Count::new(0, 1_000_000);
/// The feature engine's capacity in trades.
pub const CAPACITY: Count = Count::new(2, tickq_core::features::MAX_CAPACITY as u64);
/// Steps of a gradual pruning schedule.
pub const PRUNE_STEPS: Count = Count::new(1, 1_000);
/// N and M of N:M pruning (and `n <= m`).
pub const NM: Count = Count::new(1, MAX_UNITS as u64);
/// The dimension structured pruning removes along: 0 (outputs) or 1 (inputs).
pub const STRUCTURED_DIM: Count = Count::new(0, 1);

/// Learning rates.
pub const LR: Real = Real::above(0.0);
/// SGD momentum: at 1 or above the update never decays.
pub const MOMENTUM: Real = Real::interval(0.0, true, 1.0, false);
/// Adam's `beta1` and `beta2`.
pub const ADAM_BETA: Real = Real::interval(0.0, true, 1.0, false);
/// Adam's `eps`.
pub const ADAM_EPS: Real = Real::above(0.0);
/// L2 weight decay.
pub const WEIGHT_DECAY: Real = Real::at_least(0.0);
/// The label dead band, in price units or in basis points.
pub const DEAD_BAND: Real = Real::at_least(0.0);
/// The tick size and the size unit of the features' integer grid.
pub const TICK_SIZE: Real = Real::above(0.0);
/// The percentile observer's percentile.
pub const PERCENTILE: Real = Real::interval(50.0, true, 100.0, true);
/// The moving-average observer's averaging constant.
pub const AVERAGING_CONSTANT: Real = Real::interval(0.0, false, 1.0, true);
/// A pruning amount or initial sparsity.
pub const SPARSITY: Real = Real::interval(0.0, true, 1.0, false);
/// The distillation temperature.
pub const TEMPERATURE: Real = Real::above(0.0);
/// The distillation weight of the soft term.
pub const ALPHA: Real = Real::interval(0.0, true, 1.0, true);

/// A value outside its range, or text that is not a number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RangeError {
    /// The value is a number, but outside the range.
    #[error("{value} is out of range: expected {expected}")]
    OutOfRange {
        /// The value as given.
        value: String,
        /// The range, in words (`a whole number from 1 to 1000000`).
        expected: String,
    },
    /// The text is not a number of the right kind.
    #[error("`{}` is not {expected}", excerpt(text))]
    NotANumber {
        /// The text as given.
        text: String,
        /// The range, in words.
        expected: String,
    },
}

/// An inclusive range of whole numbers that a setting accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// The smallest valid value.
    pub min: u64,
    /// The largest valid value.
    pub max: u64,
}

impl Count {
    /// The range `min..=max`.
    pub const fn new(min: u64, max: u64) -> Self {
        Count { min, max }
    }

    /// `value` if it lies in the range.
    ///
    /// # Errors
    ///
    /// [`RangeError::OutOfRange`] naming the value and the range.
    pub fn check(&self, value: u64) -> Result<u64, RangeError> {
        if (self.min..=self.max).contains(&value) {
            Ok(value)
        } else {
            Err(self.out_of_range(value.to_string()))
        }
    }

    /// [`Count::check`] for a `usize`.
    ///
    /// # Errors
    ///
    /// [`RangeError::OutOfRange`] naming the value and the range.
    pub fn check_usize(&self, value: usize) -> Result<usize, RangeError> {
        match u64::try_from(value) {
            Ok(v) => self.check(v).map(|_| value),
            Err(_) => Err(self.out_of_range(value.to_string())),
        }
    }

    /// Parses a whole number and checks it: digits with an optional sign, or a number in scientific notation
    /// that is whole (`2e5`), so `-5` and `1e12` get a range error rather than a syntax error.
    ///
    /// # Errors
    ///
    /// [`RangeError::NotANumber`] or [`RangeError::OutOfRange`].
    pub fn parse(&self, text: &str) -> Result<u64, RangeError> {
        let t = text.trim();
        if let Ok(v) = t.parse::<i128>() {
            return match u64::try_from(v) {
                Ok(v) => self.check(v),
                Err(_) => Err(self.out_of_range(v.to_string())),
            };
        }
        match t.parse::<f64>() {
            Ok(v) if v.is_finite() && v.fract() == 0.0 => {
                if v >= 0.0 && v <= u64::MAX as f64 && (v as u64) as f64 == v {
                    self.check(v as u64)
                } else {
                    Err(self.out_of_range(format!("{v}")))
                }
            }
            _ => Err(RangeError::NotANumber {
                text: text.to_string(),
                expected: self.to_string(),
            }),
        }
    }

    /// [`Count::parse`] giving a `usize`.
    ///
    /// # Errors
    ///
    /// As [`Count::parse`]; a value above `usize::MAX` is out of range.
    pub fn parse_usize(&self, text: &str) -> Result<usize, RangeError> {
        let v = self.parse(text)?;
        usize::try_from(v).map_err(|_| self.out_of_range(v.to_string()))
    }

    fn out_of_range(&self, value: String) -> RangeError {
        RangeError::OutOfRange {
            value,
            expected: self.to_string(),
        }
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.max == u64::MAX {
            write!(f, "a whole number of at least {}", self.min)
        } else {
            write!(f, "a whole number from {} to {}", self.min, self.max)
        }
    }
}

/// A range of finite real numbers that a setting accepts; NaN and the infinities are always outside.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Real {
    /// The lower bound (`f64::NEG_INFINITY` for none).
    pub min: f64,
    /// Whether `min` itself is valid.
    pub min_inclusive: bool,
    /// The upper bound (`f64::INFINITY` for none).
    pub max: f64,
    /// Whether `max` itself is valid.
    pub max_inclusive: bool,
}

impl Real {
    /// Finite values from `min` to `max`, each end included or not.
    pub const fn interval(min: f64, min_inclusive: bool, max: f64, max_inclusive: bool) -> Self {
        Real {
            min,
            min_inclusive,
            max,
            max_inclusive,
        }
    }

    /// Finite values above `min`.
    pub const fn above(min: f64) -> Self {
        Self::interval(min, false, f64::INFINITY, false)
    }

    /// Finite values of at least `min`.
    pub const fn at_least(min: f64) -> Self {
        Self::interval(min, true, f64::INFINITY, false)
    }

    /// Whether `v` lies in the range.
    pub fn contains(&self, v: f64) -> bool {
        let above = if self.min_inclusive {
            v >= self.min
        } else {
            v > self.min
        };
        let below = if self.max_inclusive {
            v <= self.max
        } else {
            v < self.max
        };
        v.is_finite() && above && below
    }

    /// `value` if it lies in the range.
    ///
    /// # Errors
    ///
    /// [`RangeError::OutOfRange`] naming the value and the range.
    pub fn check(&self, value: f64) -> Result<f64, RangeError> {
        if self.contains(value) {
            Ok(value)
        } else {
            Err(RangeError::OutOfRange {
                value: value.to_string(),
                expected: self.to_string(),
            })
        }
    }

    /// [`Real::check`] for an `f32`, naming the value as the `f32` prints.
    ///
    /// # Errors
    ///
    /// [`RangeError::OutOfRange`] naming the value and the range.
    pub fn check_f32(&self, value: f32) -> Result<f32, RangeError> {
        if self.contains(f64::from(value)) {
            Ok(value)
        } else {
            Err(RangeError::OutOfRange {
                value: value.to_string(),
                expected: self.to_string(),
            })
        }
    }

    /// Parses a number and checks it.
    ///
    /// # Errors
    ///
    /// [`RangeError::NotANumber`] or [`RangeError::OutOfRange`].
    pub fn parse(&self, text: &str) -> Result<f64, RangeError> {
        match text.trim().parse::<f64>() {
            Ok(v) => self.check(v),
            Err(_) => Err(RangeError::NotANumber {
                text: text.to_string(),
                expected: self.to_string(),
            }),
        }
    }

    /// [`Real::parse`] giving an `f32` (the value checked is the `f32` it rounds to).
    ///
    /// # Errors
    ///
    /// [`RangeError::NotANumber`] or [`RangeError::OutOfRange`].
    pub fn parse_f32(&self, text: &str) -> Result<f32, RangeError> {
        match text.trim().parse::<f32>() {
            Ok(v) => self.check_f32(v),
            Err(_) => Err(RangeError::NotANumber {
                text: text.to_string(),
                expected: self.to_string(),
            }),
        }
    }
}

impl fmt::Display for Real {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.min.is_finite(), self.max.is_finite()) {
            (true, true) => write!(
                f,
                "a number in {}{}, {}{}",
                if self.min_inclusive { '[' } else { '(' },
                self.min,
                self.max,
                if self.max_inclusive { ']' } else { ')' }
            ),
            (true, false) => write!(
                f,
                "a finite number {} {}",
                if self.min_inclusive { ">=" } else { ">" },
                self.min
            ),
            (false, true) => write!(
                f,
                "a finite number {} {}",
                if self.max_inclusive { "<=" } else { "<" },
                self.max
            ),
            (false, false) => f.write_str("a finite number"),
        }
    }
}

/// A request that needs more memory than tickq may use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{what} needs about {needed} bytes ({}) of memory, more than the {available} bytes ({}) {}",
    gib(*needed),
    gib(*available),
    if *from_env { "that TICKQ_MEMORY_LIMIT allows" } else { "this machine has available" }
)]
pub struct MemoryError {
    /// What needs the memory, with the sizes that make it up.
    pub what: String,
    /// The bytes it needs.
    pub needed: u64,
    /// The bytes available.
    pub available: u64,
    /// Whether `available` is the `TICKQ_MEMORY_LIMIT` setting rather than the machine's available memory.
    pub from_env: bool,
}

/// `bytes` in the largest binary unit that keeps the number at 1 or above.
fn gib(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= f64::from(1u32 << 30) {
        format!("{:.1} GiB", b / f64::from(1u32 << 30))
    } else if b >= f64::from(1u32 << 20) {
        format!("{:.1} MiB", b / f64::from(1u32 << 20))
    } else {
        format!("{:.1} KiB", b / 1024.0)
    }
}

/// The memory tickq may plan to use, in bytes, and whether it comes from the environment: `TICKQ_MEMORY_LIMIT`
/// (a byte count) when it is set, else the `MemAvailable` of `/proc/meminfo`; `None` where neither is known, in
/// which case nothing is refused for memory.
pub fn memory_budget() -> Option<(u64, bool)> {
    if let Ok(text) = std::env::var("TICKQ_MEMORY_LIMIT")
        && let Ok(v) = text.trim().parse::<u64>()
    {
        return Some((v, true));
    }
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line
        .trim_start_matches("MemAvailable:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some((kib.saturating_mul(1024), false))
}

/// Refuses `needed` bytes when they exceed the [`memory_budget`]; `what` describes the request for the message
/// and is only called on refusal.
///
/// # Errors
///
/// [`MemoryError`] with both numbers.
pub fn check_memory(needed: u64, what: impl FnOnce() -> String) -> Result<(), MemoryError> {
    check_memory_within(needed, memory_budget(), what)
}

/// [`check_memory`] against a given budget (`None`: no limit).
///
/// # Errors
///
/// [`MemoryError`] with both numbers.
pub fn check_memory_within(
    needed: u64,
    budget: Option<(u64, bool)>,
    what: impl FnOnce() -> String,
) -> Result<(), MemoryError> {
    match budget {
        Some((available, from_env)) if needed > available => Err(MemoryError {
            what: what(),
            needed,
            available,
            from_env,
        }),
        _ => Ok(()),
    }
}

/// The most characters of one line of a parser's message (which quotes the offending line); see
/// [`excerpt_lines`].
pub const MESSAGE_LINE_CHARS: usize = 160;

/// Text from a user or a file as an error message shows it: control characters (NUL, line ends, escape ...)
/// escaped as in Rust strings (`\0`, `\n`, `\u{1b}`), and text longer than [`EXCERPT_CHARS`] characters cut
/// there, followed by `… (N bytes)` with the length of the whole text.
pub fn excerpt(text: &str) -> String {
    excerpt_to(text, EXCERPT_CHARS)
}

/// A parser's multi-line message (TOML and JSON errors quote the offending line) with every line shown as
/// [`excerpt`] shows text, cut at [`MESSAGE_LINE_CHARS`] characters, so a megabyte-long line is not echoed whole.
pub fn excerpt_lines(text: &str) -> String {
    text.lines()
        .map(|l| excerpt_to(l, MESSAGE_LINE_CHARS))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The most characters of the reason a TOML error gives on its first line; see [`toml_message`].
pub const TOML_REASON_CHARS: usize = 400;

/// A TOML parse error as tickq shows it: the position and the reason on the first line
/// (`TOML parse error at line 6, column 1: unknown field `colour`, expected ...`), then the quoted line and its
/// caret, every line cut as [`excerpt_lines`] cuts it. The `toml` crate puts the reason last, after the quote,
/// where a reader of the first line never sees it.
pub fn toml_message(e: &toml::de::Error) -> String {
    let full = e.to_string();
    let full = full.trim_end();
    let reason = e.message().trim();
    let mut lines = full.lines();
    let first = lines.next().unwrap_or("");
    if reason.is_empty() || !first.starts_with("TOML parse error") {
        return excerpt_lines(full);
    }
    let quote = full[first.len()..]
        .trim_end()
        .strip_suffix(reason)
        .unwrap_or(&full[first.len()..])
        .trim_matches('\n');
    let head = format!(
        "{first}: {}",
        excerpt_to(&reason.replace('\n', " "), TOML_REASON_CHARS)
    );
    if quote.trim().is_empty() {
        head
    } else {
        format!("{head}\n{}", excerpt_lines(quote))
    }
}

fn excerpt_to(text: &str, max_chars: usize) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    for c in chars.by_ref().take(max_chars) {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    if chars.next().is_some() {
        out.push_str(&format!("… ({} bytes)", text.len()));
    }
    out
}

/// Reads a text file of at most `limit` bytes without reading more than `limit + 1` bytes of it, so a device or
/// a huge file is refused quickly. `what` names the kind of file for the message (`a config file`).
///
/// # Errors
///
/// The I/O error; [`std::io::ErrorKind::FileTooLarge`] naming the limit for a longer file, and
/// [`std::io::ErrorKind::InvalidData`] for text that is not UTF-8.
pub fn read_text_limited(path: &Path, limit: u64, what: &str) -> std::io::Result<String> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("larger than {limit} bytes, the most tickq reads from {what}"),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not valid UTF-8 (at byte {})", e.utf8_error().valid_up_to()),
        )
    })
}

/// Reads a binary file of at most `limit` bytes: a regular file's size is checked before anything is read, and any
/// other file (a device, a pipe) is read no further than `limit + 1` bytes. `what` names the kind of file for the
/// message (`a safetensors file`).
///
/// # Errors
///
/// The I/O error, and [`std::io::ErrorKind::FileTooLarge`] naming the size (when known) and the limit.
pub fn read_file_limited(path: &Path, limit: u64, what: &str) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let too_large = |size: String| {
        std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("{size}larger than {limit} bytes, the most tickq reads from {what}"),
        )
    };
    let meta = file.metadata()?;
    if meta.is_file() && meta.len() > limit {
        return Err(too_large(format!("{} bytes, ", meta.len())));
    }
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(String::new()));
    }
    Ok(bytes)
}

/// Reads a blob file without reading more than the blob says it holds: the header first, then, when it starts
/// with the magic bytes, the length its header declares and one byte more (so trailing bytes still show as a length
/// mismatch when tickq-core loads it). A file that does not start with the magic bytes is returned as its first
/// [`tickq_core::format::HEADER_LEN`] bytes, which is all tickq-core reads before it refuses it; so `/dev/zero` or a
/// huge file of something else costs 64 bytes, not the machine's memory.
///
/// # Errors
///
/// The I/O error, and [`std::io::ErrorKind::FileTooLarge`] when the header declares more than [`MAX_BLOB_BYTES`].
pub fn read_blob_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use tickq_core::format::{HEADER_LEN, MAGIC, header};
    let mut file = std::fs::File::open(path)?;
    let mut bytes = Vec::with_capacity(HEADER_LEN);
    (&mut file)
        .take(HEADER_LEN as u64)
        .read_to_end(&mut bytes)?;
    if bytes.len() < HEADER_LEN || bytes[..MAGIC.len()] != MAGIC {
        return Ok(bytes);
    }
    let mut declared = [0u8; 4];
    declared.copy_from_slice(&bytes[header::TOTAL_LEN]);
    let declared = u64::from(u32::from_le_bytes(declared));
    if declared > MAX_BLOB_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!(
                "the blob header declares {declared} bytes, above {MAX_BLOB_BYTES}, the most tickq reads from a blob"
            ),
        ));
    }
    let rest = declared.saturating_sub(HEADER_LEN as u64) + 1;
    file.take(rest).read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests;

/// Parses a row range `A..B` (0-based, `B` excluded), each end within [`VECTORS`]: the `--rows` and
/// `--calibration-rows` options and the pipeline config's `calibration_rows`.
///
/// # Errors
///
/// The reason, for the caller to put after the option or field it came from.
pub fn row_range(text: &str) -> Result<(usize, usize), String> {
    let (a, b) = text
        .split_once("..")
        .ok_or_else(|| format!("`{}` is not a row range START..END", excerpt(text)))?;
    let start = VECTORS.parse_usize(a.trim()).map_err(|e| e.to_string())?;
    let end = VECTORS.parse_usize(b.trim()).map_err(|e| e.to_string())?;
    if start >= end {
        return Err(format!("{start}..{end} is empty: START must be below END"));
    }
    Ok((start, end))
}
