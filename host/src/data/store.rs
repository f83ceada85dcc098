//! The on-disk sample store: the samples of a trade file larger than memory, built in one streaming pass and
//! read back in chunks.
//!
//! [`build_store`] reads the file in chunks of trades ([`super::trade_chunks`], the same parsing as
//! [`super::load_trades_with`]), pushes every trade through the core's `FeatureEngine` (as
//! [`super::compute_features`] does), labels each trade from a ring of the last `horizon` prices (the rules of
//! [`super::build_dataset`]: same session, valid window of `time_steps` rows) and writes:
//!
//! - `rows.f32`: the feature row of every valid trade once, `F` little-endian f32 each;
//! - `samples.u64`: per sample, the trade index and the row index of the window's last row (two u64, LE);
//!   the window is rows `end-T+1..=end`, so a sample costs 17 bytes, not `T*F*4`;
//! - `labels.u8`: one label per sample;
//! - `header.bin` ([`StoreHeader`]): magic, version, `F`, `T`, `H`, the counts, the SHA-256 fingerprint of the
//!   dataset settings and the SHA-256 of the data file. It is written last, atomically, after the data files are
//!   synced: a directory without it is an interrupted build, which [`open_or_build`] restarts from the start.
//!
//! [`SampleStore`] reads samples by range with positioned reads (no mmap, so the resident memory is the chunk
//! being read, not the file); [`StoreSamples`] is a split of it, standardized, that the training loop reads chunk
//! by chunk ([`crate::train::SampleSource`]). `docs/DATA.md`, "Histories larger than memory", is the user's page.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use ndarray::Array2;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use super::dataset::{Dataset, DatasetConfig, SplitConfig, no_samples, split_ranges};
use super::error::DataError;
use super::features::to_core_trade;
use super::labels::label_names;
use super::normalize::Normalizer;
use crate::train::shuffle;
use tickq_core::features::FeatureEngine;

/// The first eight bytes of `header.bin`.
pub const STORE_MAGIC: [u8; 8] = *b"TICKQSTO";
/// The format version this build writes and reads.
pub const STORE_VERSION: u32 = 1;
/// The header file, written last.
pub const HEADER_FILE: &str = "header.bin";
/// The feature rows.
pub const ROWS_FILE: &str = "rows.f32";
/// The sample index: trade index and last row, two u64 per sample.
pub const SAMPLES_FILE: &str = "samples.u64";
/// The labels, one byte per sample.
pub const LABELS_FILE: &str = "labels.u8";
/// Trades read per chunk while building.
pub const BUILD_CHUNK_TRADES: usize = 1 << 16;
/// Samples per chunk when training reads a store.
pub const DEFAULT_CHUNK_SAMPLES: usize = 1 << 14;
/// Chunks whose samples an epoch shuffles together ([`StoreSamples::epoch_order`]), and how many chunks a
/// [`StoreSamples`] keeps read: batches then mix 8 chunks' stretches of time instead of one's.
pub const MIX_CHUNKS: usize = 8;
/// Bytes of one sample's entry in [`SAMPLES_FILE`].
const SAMPLE_BYTES: u64 = 16;
/// Bytes of `header.bin`.
const HEADER_BYTES: usize = 8 + 4 * 4 + 8 * 3 + 32 + 32;

/// Why a store cannot be built or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing a store file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The data file or the settings were refused.
    #[error(transparent)]
    Data(#[from] Box<DataError>),
    /// A store file is shorter than its header says.
    #[error(
        "{}: truncated at byte {offset}: the header needs {expected} bytes; remove the store to rebuild it",
        file.display()
    )]
    Truncated {
        /// The file.
        file: PathBuf,
        /// Its length (where it ends).
        offset: u64,
        /// The length the header needs.
        expected: u64,
    },
    /// A store file holds a value it cannot hold.
    #[error("{}, byte {offset}: {problem}; remove the store to rebuild it", file.display())]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// The byte offset of the bad value.
        offset: u64,
        /// What is wrong.
        problem: String,
    },
}

impl From<DataError> for StoreError {
    fn from(e: DataError) -> Self {
        StoreError::Data(Box::new(e))
    }
}

fn io_at(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The contents of `header.bin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreHeader {
    /// Features per row, `F`.
    pub features: u32,
    /// Window length `T`.
    pub time_steps: u32,
    /// Label horizon `H`.
    pub horizon: u32,
    /// Samples `N`.
    pub samples: u64,
    /// Feature rows in [`ROWS_FILE`].
    pub rows: u64,
    /// Trades read from the data file.
    pub trades: u64,
    /// SHA-256 of the dataset settings ([`settings_fingerprint`]).
    pub fingerprint: [u8; 32],
    /// SHA-256 of the data file.
    pub data_sha256: [u8; 32],
}

impl StoreHeader {
    fn to_bytes(self) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEADER_BYTES);
        b.extend_from_slice(&STORE_MAGIC);
        for v in [STORE_VERSION, self.features, self.time_steps, self.horizon] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for v in [self.samples, self.rows, self.trades] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&self.fingerprint);
        b.extend_from_slice(&self.data_sha256);
        b
    }

    fn parse(bytes: &[u8], file: &Path) -> Result<StoreHeader, StoreError> {
        let corrupt = |offset: u64, problem: String| StoreError::Corrupt {
            file: file.to_path_buf(),
            offset,
            problem,
        };
        if bytes.len() < HEADER_BYTES {
            return Err(StoreError::Truncated {
                file: file.to_path_buf(),
                offset: bytes.len() as u64,
                expected: HEADER_BYTES as u64,
            });
        }
        if bytes[..8] != STORE_MAGIC {
            return Err(corrupt(0, "not a tickq sample store header".into()));
        }
        let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap_or_default());
        let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap_or_default());
        let version = u32_at(8);
        if version != STORE_VERSION {
            return Err(corrupt(
                8,
                format!("version {version}, this build reads version {STORE_VERSION}"),
            ));
        }
        let mut fingerprint = [0u8; 32];
        fingerprint.copy_from_slice(&bytes[48..80]);
        let mut data_sha256 = [0u8; 32];
        data_sha256.copy_from_slice(&bytes[80..112]);
        let h = StoreHeader {
            features: u32_at(12),
            time_steps: u32_at(16),
            horizon: u32_at(20),
            samples: u64_at(24),
            rows: u64_at(32),
            trades: u64_at(40),
            fingerprint,
            data_sha256,
        };
        if h.features == 0 {
            return Err(corrupt(12, "0 features".into()));
        }
        if h.time_steps == 0 {
            return Err(corrupt(16, "0 time steps".into()));
        }
        Ok(h)
    }
}

/// SHA-256 of the dataset settings as JSON: a store built with other settings has another fingerprint.
#[must_use]
pub fn settings_fingerprint(cfg: &DatasetConfig) -> [u8; 32] {
    let json = serde_json::to_vec(cfg).unwrap_or_default();
    Sha256::digest(&json).into()
}

/// Builds the store of `data` with the settings `cfg` in the directory `dir` (created; files of an earlier store
/// there are replaced), calling `progress` with the trades read after every chunk.
///
/// # Errors
///
/// The data file's errors ([`StoreError::Data`], naming file, line and column), [`DataError::TooFewSamples`] when
/// no sample remains, and [`StoreError::Io`] naming the store file.
pub fn build_store(
    data: &Path,
    cfg: &DatasetConfig,
    dir: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<StoreHeader, StoreError> {
    cfg.validate()?;
    let data_sha256 = super::file_sha256(data)?;
    std::fs::create_dir_all(dir).map_err(io_at(dir))?;
    // The header goes first, so an interrupted build is never taken for a store.
    let header_path = dir.join(HEADER_FILE);
    match std::fs::remove_file(&header_path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_at(&header_path)(e)),
        _ => {}
    }
    let open = |name: &str| -> Result<(BufWriter<File>, PathBuf), StoreError> {
        let path = dir.join(name);
        let file = File::create(&path).map_err(io_at(&path))?;
        Ok((BufWriter::with_capacity(1 << 20, file), path))
    };
    let (mut rows_w, rows_path) = open(ROWS_FILE)?;
    let (mut samples_w, samples_path) = open(SAMPLES_FILE)?;
    let (mut labels_w, labels_path) = open(LABELS_FILE)?;

    let spec = cfg.features.checked_spec()?;
    let f = spec.feature_count();
    let mut state = vec![0i64; spec.state_words()];
    let mut engine = FeatureEngine::new(&spec, &mut state)
        .map_err(|source| DataError::FeatureEngine { source })?;
    let mut row = vec![0f32; f];
    let mut row_bytes = Vec::with_capacity(f * 4);
    let (t_steps, horizon) = (cfg.time_steps, cfg.labels.horizon);
    // The last `horizon` trades of the session: price, whether its window is a sample, its last row.
    let mut ring: VecDeque<(f64, bool, u64)> = VecDeque::with_capacity(horizon.min(1 << 20) + 1);
    let (mut run, mut rows, mut samples, mut sessions) = (0usize, 0u64, 0u64, 0usize);
    let mut i = 0usize;
    for chunk in super::trade_chunks(data, &cfg.read, BUILD_CHUNK_TRADES)? {
        for trade in chunk?.trades {
            let core = to_core_trade(i, &trade, &cfg.features)?;
            let valid = engine
                .push(&core, &mut row)
                .map_err(|source| DataError::Trade {
                    trade: i + 1,
                    source,
                })?;
            if engine.session_trades() == 1 {
                ring.clear();
                run = 0;
                sessions += 1;
            }
            run = if valid { run + 1 } else { 0 };
            if valid {
                row_bytes.clear();
                row.iter()
                    .for_each(|v| row_bytes.extend_from_slice(&v.to_le_bytes()));
                rows_w.write_all(&row_bytes).map_err(io_at(&rows_path))?;
                rows += 1;
            }
            ring.push_back((trade.price, run >= t_steps, rows.wrapping_sub(1)));
            if ring.len() > horizon
                && let Some((now, sample, end)) = ring.pop_front()
                && sample
            {
                let tick = (i - horizon) as u64;
                let mut entry = [0u8; 16];
                entry[..8].copy_from_slice(&tick.to_le_bytes());
                entry[8..].copy_from_slice(&end.to_le_bytes());
                samples_w.write_all(&entry).map_err(io_at(&samples_path))?;
                labels_w
                    .write_all(&[cfg.labels.classify(now, trade.price)])
                    .map_err(io_at(&labels_path))?;
                samples += 1;
            }
            i += 1;
        }
        progress(i as u64);
    }
    if samples == 0 {
        return Err(no_samples(i, sessions, cfg).into());
    }
    for (w, path) in [
        (rows_w, &rows_path),
        (samples_w, &samples_path),
        (labels_w, &labels_path),
    ] {
        let file = w.into_inner().map_err(|e| io_at(path)(e.into_error()))?;
        file.sync_all().map_err(io_at(path))?;
    }
    let header = StoreHeader {
        features: f as u32,
        time_steps: t_steps as u32,
        horizon: horizon as u32,
        samples,
        rows,
        trades: i as u64,
        fingerprint: settings_fingerprint(cfg),
        data_sha256,
    };
    crate::fsutil::write_atomic(&header_path, &header.to_bytes()).map_err(io_at(&header_path))?;
    Ok(header)
}

/// The store of `data` with the settings `cfg` in `dir`: reused when its header matches the settings'
/// fingerprint and the file's SHA-256, otherwise (re)built, with a note through `note` saying why.
///
/// # Errors
///
/// The errors of [`build_store`] and [`SampleStore::open`].
pub fn open_or_build(
    data: &Path,
    cfg: &DatasetConfig,
    dir: &Path,
    note: &mut dyn FnMut(&str),
    progress: &mut dyn FnMut(u64),
) -> Result<SampleStore, StoreError> {
    let header_path = dir.join(HEADER_FILE);
    let reason = if !dir.exists() {
        None
    } else if !header_path.exists() {
        Some(format!(
            "{} has no {HEADER_FILE} (an interrupted build); building it again",
            dir.display()
        ))
    } else {
        let store = SampleStore::open(dir)?;
        if store.header.fingerprint != settings_fingerprint(cfg) {
            Some(format!(
                "{} was built with other data settings; rebuilding it",
                dir.display()
            ))
        } else if store.header.data_sha256 != super::file_sha256(data)? {
            Some(format!(
                "{} was built from another version of {}; rebuilding it",
                dir.display(),
                data.display()
            ))
        } else {
            note(&format!(
                "reusing the sample store {} ({} samples)",
                dir.display(),
                store.len()
            ));
            return Ok(store);
        }
    };
    if let Some(reason) = reason {
        note(&format!("note: {reason}"));
    }
    build_store(data, cfg, dir, progress)?;
    SampleStore::open(dir)
}

/// Samples read from a store: the raw inputs `[n, T*F]`, the labels and the trade indices.
pub type StoreChunk = (Array2<f32>, Vec<u8>, Vec<usize>);

/// A built store, open for reading.
#[derive(Debug)]
pub struct SampleStore {
    dir: PathBuf,
    /// The header.
    pub header: StoreHeader,
    rows: File,
    samples: File,
    labels: Vec<u8>,
    feature_names: Vec<String>,
}

fn read_at(file: &File, path: &Path, offset: u64, buf: &mut [u8]) -> Result<(), StoreError> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, offset).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            StoreError::Truncated {
                file: path.to_path_buf(),
                offset: len,
                expected: offset + buf.len() as u64,
            }
        } else {
            io_at(path)(e)
        }
    })
}

impl SampleStore {
    /// Opens the store in `dir`, checking the header and that every file has the length it says; the labels
    /// (one byte a sample) are read and checked.
    ///
    /// # Errors
    ///
    /// [`StoreError::Io`] for a missing file, [`StoreError::Truncated`] for a file shorter (or longer) than the
    /// header says, [`StoreError::Corrupt`] for a bad header or label, each naming the file and the offset.
    pub fn open(dir: &Path) -> Result<SampleStore, StoreError> {
        let header_path = dir.join(HEADER_FILE);
        let bytes = std::fs::read(&header_path).map_err(io_at(&header_path))?;
        let header = StoreHeader::parse(&bytes, &header_path)?;
        let f = u64::from(header.features);
        let open = |name: &str, expected: Option<u64>| -> Result<File, StoreError> {
            let path = dir.join(name);
            let file = File::open(&path).map_err(io_at(&path))?;
            let len = file.metadata().map_err(io_at(&path))?.len();
            if let Some(expected) = expected
                && len != expected
            {
                return Err(StoreError::Truncated {
                    file: path,
                    offset: len,
                    expected,
                });
            }
            Ok(file)
        };
        let rows_len = header.rows.checked_mul(f * 4);
        let samples_len = header.samples.checked_mul(SAMPLE_BYTES);
        let rows = open(ROWS_FILE, rows_len)?;
        let samples = open(SAMPLES_FILE, samples_len)?;
        let labels_path = dir.join(LABELS_FILE);
        let labels = open(LABELS_FILE, Some(header.samples))?;
        let mut buf = vec![0u8; header.samples as usize];
        read_at(&labels, &labels_path, 0, &mut buf)?;
        if let Some(at) = buf.iter().position(|&y| y > 2) {
            return Err(StoreError::Corrupt {
                file: labels_path,
                offset: at as u64,
                problem: format!("label {} (labels are 0, 1, 2)", buf[at]),
            });
        }
        // Feature names are not stored: the fingerprint pins the settings, and the names follow from them.
        Ok(SampleStore {
            dir: dir.to_path_buf(),
            header,
            rows,
            samples,
            labels: buf,
            feature_names: Vec::new(),
        })
    }

    /// Sets the feature names the samples are given ([`SampleStore::dataset`]): the store does not keep them.
    pub fn set_feature_names(&mut self, names: Vec<String>) {
        self.feature_names = names;
    }

    /// The store's directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of samples.
    #[must_use]
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples (never true of a store [`build_store`] wrote).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// All labels, one per sample.
    #[must_use]
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// Model input width `T*F`.
    #[must_use]
    pub fn width(&self) -> usize {
        self.header.time_steps as usize * self.header.features as usize
    }

    /// The train, validation and test sample ranges of `cfg`: the boundaries of
    /// [`super::chronological_split`].
    ///
    /// # Errors
    ///
    /// As [`super::chronological_split`].
    pub fn split(&self, cfg: &SplitConfig) -> Result<[Range<usize>; 3], DataError> {
        split_ranges(
            self.len(),
            self.header.horizon as usize,
            self.header.time_steps as usize,
            cfg,
        )
    }

    /// The default split of the store's samples ([`SplitConfig::for_dataset`]).
    #[must_use]
    pub fn default_split(&self) -> SplitConfig {
        SplitConfig {
            gap: (self.header.horizon as usize).saturating_add(self.header.time_steps as usize),
            ..SplitConfig::default()
        }
    }

    /// The raw inputs (`[n, T*F]`, time-major as in [`Dataset::x`]), labels and trade indices of the samples in
    /// `range`, read with two positioned reads.
    ///
    /// # Errors
    ///
    /// [`StoreError::Truncated`] or [`StoreError::Corrupt`] (a window outside the rows, trade indices out of
    /// order) naming the file and offset, [`StoreError::Io`].
    pub fn read(&self, range: Range<usize>) -> Result<StoreChunk, StoreError> {
        let end = range.end.min(self.len());
        let start = range.start.min(end);
        let n = end - start;
        let (t, f) = (
            self.header.time_steps as usize,
            self.header.features as usize,
        );
        let samples_path = self.dir.join(SAMPLES_FILE);
        let mut idx = vec![0u8; n * SAMPLE_BYTES as usize];
        read_at(
            &self.samples,
            &samples_path,
            start as u64 * SAMPLE_BYTES,
            &mut idx,
        )?;
        let mut ticks = Vec::with_capacity(n);
        let mut ends = Vec::with_capacity(n);
        for (k, e) in idx.chunks_exact(SAMPLE_BYTES as usize).enumerate() {
            let offset = (start + k) as u64 * SAMPLE_BYTES;
            let tick = u64::from_le_bytes(e[..8].try_into().unwrap_or_default());
            let last = u64::from_le_bytes(e[8..].try_into().unwrap_or_default());
            let corrupt = |offset: u64, problem: String| StoreError::Corrupt {
                file: samples_path.clone(),
                offset,
                problem,
            };
            if last >= self.header.rows || last + 1 < t as u64 {
                return Err(corrupt(
                    offset + 8,
                    format!(
                        "window ending at row {last} is outside the {} rows of {t} time steps",
                        self.header.rows
                    ),
                ));
            }
            if tick >= self.header.trades
                || ticks.last().is_some_and(|&p: &usize| tick as usize <= p)
            {
                return Err(corrupt(
                    offset,
                    format!("trade index {tick} is out of order or past the trades"),
                ));
            }
            if ends.last().is_some_and(|&p| last <= p) {
                return Err(corrupt(offset + 8, format!("row {last} is out of order")));
            }
            ticks.push(tick as usize);
            ends.push(last);
        }
        let mut x = Array2::<f32>::zeros((n, t * f));
        if n == 0 {
            return Ok((x, Vec::new(), ticks));
        }
        let lo = ends[0] + 1 - t as u64;
        let hi = ends[n - 1];
        let row_bytes = (f * 4) as u64;
        let mut raw = vec![0u8; ((hi - lo + 1) * row_bytes) as usize];
        read_at(
            &self.rows,
            &self.dir.join(ROWS_FILE),
            lo * row_bytes,
            &mut raw,
        )?;
        let values: Vec<f32> = raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        for (mut out, &last) in x.rows_mut().into_iter().zip(&ends) {
            let first = (last + 1 - t as u64 - lo) as usize * f;
            if let Some(src) = values.get(first..first + t * f)
                && let Some(dst) = out.as_slice_mut()
            {
                dst.copy_from_slice(src);
            }
        }
        Ok((x, self.labels[start..end].to_vec(), ticks))
    }

    /// The samples in `range` as a [`Dataset`] in memory (tests, and the bounded calibration sample).
    ///
    /// # Errors
    ///
    /// As [`SampleStore::read`].
    pub fn dataset(&self, range: Range<usize>) -> Result<Dataset, StoreError> {
        let (x, y, tick_index) = self.read(range)?;
        Ok(Dataset {
            x,
            y,
            tick_index,
            feature_names: self.feature_names.clone(),
            label_names: label_names(),
            time_steps: self.header.time_steps as usize,
            features: self.header.features as usize,
            horizon: self.header.horizon as usize,
        })
    }

    /// [`Normalizer::fit`] over the samples in `range`, read `chunk` samples at a time: the same sums in the same
    /// order, so the same normalizer bit for bit.
    ///
    /// # Errors
    ///
    /// As [`SampleStore::read`].
    pub fn fit_normalizer(
        &self,
        range: Range<usize>,
        chunk: usize,
    ) -> Result<Normalizer, StoreError> {
        let chunk = chunk.max(1);
        Normalizer::fit_rows(self.header.features as usize, |visit| {
            let mut at = range.start;
            while at < range.end {
                let next = (at + chunk).min(range.end);
                let (x, _, _) = self.read(at..next)?;
                for row in x.rows() {
                    if let Some(r) = row.as_slice() {
                        visit(r);
                    }
                }
                at = next;
            }
            Ok(())
        })
    }
}

/// A range of a store's samples, standardized by a normalizer, read a chunk at a time: what training,
/// calibration and evaluation read instead of a matrix in memory.
#[derive(Debug)]
pub struct StoreSamples<'a> {
    store: &'a SampleStore,
    range: Range<usize>,
    normalizer: &'a Normalizer,
    chunk: usize,
    /// The last [`MIX_CHUNKS`] chunks read, standardized: their numbers and rows, oldest first.
    cache: RefCell<VecDeque<(usize, Array2<f32>)>>,
}

impl<'a> StoreSamples<'a> {
    /// The samples `range` of `store`, standardized by `normalizer`, read `chunk` samples at a time.
    #[must_use]
    pub fn new(
        store: &'a SampleStore,
        range: Range<usize>,
        normalizer: &'a Normalizer,
        chunk: usize,
    ) -> StoreSamples<'a> {
        let end = range.end.min(store.len());
        StoreSamples {
            store,
            range: range.start.min(end)..end,
            normalizer,
            chunk: chunk.max(1),
            cache: RefCell::new(VecDeque::with_capacity(MIX_CHUNKS)),
        }
    }

    /// Number of samples.
    #[must_use]
    pub fn len(&self) -> usize {
        self.range.len()
    }

    /// Whether the range is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }

    /// Model input width `T*F`.
    #[must_use]
    pub fn width(&self) -> usize {
        self.store.width()
    }

    /// The labels of the range.
    #[must_use]
    pub fn labels(&self) -> &[u8] {
        &self.store.labels[self.range.clone()]
    }

    /// The standardized rows of the samples `idx` (0-based in the range), in that order.
    ///
    /// # Errors
    ///
    /// As [`SampleStore::read`].
    pub fn rows(&self, idx: &[usize]) -> Result<Array2<f32>, StoreError> {
        let mut out = Array2::<f32>::zeros((idx.len(), self.store.width()));
        let mut cache = self.cache.borrow_mut();
        for (mut dst, &i) in out.rows_mut().into_iter().zip(idx) {
            let c = i / self.chunk;
            let at = match cache.iter().position(|(have, _)| *have == c) {
                Some(at) => at,
                None => {
                    let start = self.range.start + c * self.chunk;
                    let end = (start + self.chunk).min(self.range.end);
                    let (mut x, _, _) = self.store.read(start..end)?;
                    self.normalizer.apply(&mut x);
                    if cache.len() >= MIX_CHUNKS {
                        cache.pop_front();
                    }
                    cache.push_back((c, x));
                    cache.len() - 1
                }
            };
            if let Some((_, x)) = cache.get(at) {
                dst.assign(&x.row(i - c * self.chunk));
            }
        }
        Ok(out)
    }

    /// The epoch order: the chunks in a random order, taken [`MIX_CHUNKS`] at a time, the samples of each group
    /// shuffled together (Fisher-Yates with 64-bit draws, as the in-memory order). With one chunk it is the
    /// in-memory order exactly.
    pub fn epoch_order(&self, order: &mut [usize], rng: &mut ChaCha8Rng) {
        let chunks = self.len().div_ceil(self.chunk);
        let mut chunk_order: Vec<usize> = (0..chunks).collect();
        shuffle(&mut chunk_order, rng);
        let mut at = 0;
        for group in chunk_order.chunks(MIX_CHUNKS) {
            let from = at;
            for &c in group {
                let start = c * self.chunk;
                let end = (start + self.chunk).min(self.len());
                for (k, o) in order[at..at + (end - start)].iter_mut().enumerate() {
                    *o = start + k;
                }
                at += end - start;
            }
            shuffle(&mut order[from..at], rng);
        }
    }

    /// A fingerprint of what is read: the store's settings and data, the range and the normalizer.
    #[must_use]
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.store.header.fingerprint);
        h.update(self.store.header.data_sha256);
        h.update((self.range.start as u64).to_le_bytes());
        h.update((self.range.end as u64).to_le_bytes());
        for v in self.normalizer.mean.iter().chain(&self.normalizer.std) {
            h.update(v.to_le_bytes());
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
