//! Trade data: CSV loading, causal features, labels, chronological split and standardization.
//!
//! The stages follow the data flow and each lives in its own submodule:
//!
//! 1. [`load_trades`] / [`load_trades_with`] / [`parse_trades`] read a trade file (delimited text or Parquet)
//!    into [`Trade`]s (module `csv`), through the role-generic [`read_table`] (modules `table`, `table_text`,
//!    `table_parquet`), which bars and quotes use too.
//! 2. [`compute_features`] turns the trades into one row of causal features per trade (module `features`).
//!    Row `i` depends on trades `0..=i` only.
//! 3. [`compute_labels`] gives each trade the direction of the price move over the next
//!    [`LabelConfig::horizon`] trades, with a dead band (module `labels`; [`label_prices`] does the same for
//!    any price series with its session starts, and [`label_warnings`] flags degenerate class shares).
//! 4. [`build_dataset`] joins windows of `time_steps` feature rows with their labels into a [`Dataset`],
//!    and [`chronological_split`] cuts it into train, validation and test parts with a gap (module `dataset`).
//! 5. [`Normalizer`] standardizes features with statistics fitted on the training part only (module `normalize`).
//!
//! Bars and quotes take the same path through their own entry points (module `market`, and `market_csv` for
//! the files, through the generic reader): [`load_bars`] / [`load_quotes`], [`compute_market_features`] (the core's engine with a bars or
//! book spec), [`market_labels`] on the close or the mid, and [`build_market_dataset`].
//!
//! Order-by-order (level 3) feeds have their own reader and replay: [`load_book`] turns an orders file (and an
//! optional trades file) into time-ordered [`BookEvent`]s, snapshots of the top levels and trades (module `book`).
//!
//! The bundled ES ticks (`data/es-ticks-2013/ticks.csv` of the workspace) are embedded in the library, deflated,
//! by the build script (module `bundled`): [`bundled_data`] gives their bytes, and [`default_data_path`] a file
//! holding them, written once to the user's cache directory, so a binary installed anywhere finds them.
//!
//! `docs/DATA.md` documents the file format, every feature with its formula and units, the session rule,
//! the labels and the split.
//!
//! # Example
//!
//! ```no_run
//! use tickq_host::data::{
//!     DatasetConfig, Normalizer, SplitConfig, build_dataset, chronological_split, default_data_path,
//!     load_trades,
//! };
//!
//! let trades = load_trades(&default_data_path()?)?;
//! let dataset = build_dataset(&trades, &DatasetConfig::default())?;
//! let mut splits = chronological_split(&dataset, &SplitConfig::for_dataset(&dataset))?;
//! let normalizer = Normalizer::fit(&splits.train);
//! normalizer.apply(&mut splits.train.x);
//! normalizer.apply(&mut splits.validation.x);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod book;
mod bundled;
mod csv;
mod dataset;
mod error;
mod features;
mod labels;
mod market;
mod market_csv;
mod normalize;
mod store;
mod table;
mod table_parquet;
mod table_text;
mod time;
pub mod vectors;

use std::fs::File;
use std::io::Read;
use std::path::Path;

pub use book::{
    BOOK_LEVELS, BOOK_MAX_ORDERS, BookError, BookEvent, BookGrid, BookOptions, BookReplay,
    BookSide, BookSnapshot, BookSummary, DEFAULT_LEVELS, DEFAULT_MAX_ORDERS, Decimal, Level,
    MAX_LEVELS, OrderAction, OrderRow, ParseDecimalError, SnapshotPolicy, load_book,
    read_order_rows, replay_book, replay_order_rows,
};
pub use bundled::{
    BUNDLED_DATA_LEN, BUNDLED_DATA_NAME, BUNDLED_DATA_SHA256, bundled_data, default_data_path,
    is_default_data_path,
};
pub use csv::{
    LoadedTrades, Side, Trade, load_trades, load_trades_with, parse_trades, trade_chunks,
};
pub use dataset::{
    Dataset, DatasetConfig, SplitConfig, Splits, build_dataset, chronological_split, split_ranges,
};
pub use error::DataError;
pub use features::{
    FeatureConfig, Features, GRID_TOLERANCE, MAX_GRID_UNITS, compute_features, core_trades,
};
pub use labels::{
    BothDeadBands, DeadBand, LABEL_NAMES, LabelConfig, LabelWarning, MAJORITY_WARNING,
    SHIFT_WARNING, class_shares, compute_labels, label_names, label_prices, label_warnings,
};
pub use market::{
    Bar, BookDataset, BookInput, DataInput, InputConfig, LoadedRows, MarketConfig,
    MarketDatasetConfig, MarketInput, MarketRows, Quote, build_book_dataset, build_market_dataset,
    compute_market_features, load_bars, load_bars_with, load_quotes, load_quotes_with,
    market_labels, parse_bars, parse_quotes,
};
pub use normalize::Normalizer;
pub use store::{
    BUILD_CHUNK_TRADES, DEFAULT_CHUNK_SAMPLES, HEADER_FILE, LABELS_FILE, MIX_CHUNKS, ROWS_FILE,
    SAMPLES_FILE, STORE_MAGIC, STORE_VERSION, SampleStore, StoreChunk, StoreError, StoreHeader,
    StoreSamples, build_store, open_or_build, settings_fingerprint,
};
pub use table::{
    BAR_ROLES, ColumnKind, ColumnValues, QUOTE_ROLES, ReadNotes, Role, TRADE_ROLES, Table,
    TableChunks, TableColumn, Wanted, read_table, read_table_chunks, read_table_from,
};
pub use table_text::HEADER_SEARCH_LINES;

/// SHA-256 of the bytes of the file at `path`, read in a streaming fashion.
///
/// tickq stores this hash of the training data in the exported blob's metadata.
///
/// # Errors
///
/// [`DataError::Io`] when the file cannot be opened or read.
pub fn file_sha256(path: &Path) -> Result<[u8; 32], DataError> {
    use sha2::{Digest, Sha256};

    let io_err = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn sha256_of_bundled_file_matches_readme() {
        let hash = file_sha256(&default_data_path().expect("bundled data"))
            .expect("bundled data file is readable");
        assert_eq!(
            hex(&hash),
            "71a790dc6b34238701ed5203d70c6496798c030d6c19d81c42a2955ac570321d"
        );
    }

    #[test]
    fn sha256_of_known_input() {
        let dir = std::env::temp_dir().join(format!("tickq-data-sha-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("abc.txt");
        std::fs::write(&path, b"abc").expect("write temp file");
        let hash = file_sha256(&path).expect("hash");
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(
            hex(&hash),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    /// Loads the whole bundled file, then builds features and labels on all of it in release builds and on
    /// the first 20,000 trades in debug builds (to keep `cargo test` fast).
    #[test]
    fn bundled_data_end_to_end() {
        let start = std::time::Instant::now();
        let trades =
            load_trades(&default_data_path().expect("bundled data")).expect("bundled data loads");
        let load_time = start.elapsed();
        assert_eq!(trades.len(), 120_000);
        assert_eq!(trades[0].timestamp_ms, 1_378_054_800_083);
        assert_eq!(trades[0].price, 1640.25);
        assert_eq!(trades[0].size, 8.0);
        assert!(trades.iter().all(|t| (t.price * 4.0).fract() == 0.0));

        let n = if cfg!(debug_assertions) {
            20_000
        } else {
            trades.len()
        };
        let trades = &trades[..n];
        let cfg = DatasetConfig::default();
        let start = std::time::Instant::now();
        let features = compute_features(trades, &cfg.features).expect("features");
        let feature_time = start.elapsed();
        assert!(features.values.iter().all(|v| v.is_finite()));
        assert_eq!(features.feature_count(), 29);
        // The Sunday evening session opens the file; in the full file the Labor Day gap starts a second one.
        assert_eq!(features.session_starts[0], 0);
        if n == 120_000 {
            assert_eq!(features.session_starts, [0, 55_799]);
        }

        let ds = build_dataset(trades, &cfg).expect("dataset");
        let splits = chronological_split(&ds, &SplitConfig::for_dataset(&ds)).expect("split");
        let counts = ds.class_counts();
        let share = |c: usize| 100.0 * c as f64 / ds.len() as f64;
        println!(
            "{n} trades: load {load_time:?} (all 120000), features {feature_time:?}; {} samples, \
             down/flat/up = {}/{}/{} ({:.1}%/{:.1}%/{:.1}%); split {}/{}/{}",
            ds.len(),
            counts[0],
            counts[1],
            counts[2],
            share(counts[0]),
            share(counts[1]),
            share(counts[2]),
            splits.train.len(),
            splits.validation.len(),
            splits.test.len(),
        );
        // Every class must be reasonably populated with the default labels.
        for c in counts {
            assert!(share(c) > 15.0, "class balance {counts:?}");
        }
        let norm = Normalizer::fit(&splits.train);
        let z = norm.transform(splits.test.x.view());
        assert!(z.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn sha256_missing_file_is_io_error() {
        let err = file_sha256(Path::new("no/such/file.csv")).expect_err("missing file");
        assert!(matches!(err, DataError::Io { .. }), "{err}");
        assert!(err.to_string().contains("no/such/file.csv"), "{err}");
    }
}
