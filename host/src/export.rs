//! Device-ready exports of a blob: the raw bytes, a C header, a Rust source file, and test vectors.
//!
//! - [`c_header`]: a `const uint8_t` array aligned to 16 bytes, with its length and the arena size as macros.
//! - [`rust_source`]: a Rust file that embeds the blob with `include_bytes!` in a 16-byte aligned wrapper and
//!   exports `BLOB`, `ARENA_BYTES`, `BLOB_CRC32`, `INPUT_LEN` and `CLASSES` (and, for a blob that carries its
//!   feature spec, `STATE_WORDS` and `STREAM_ARENA_BYTES`); the blob file sits beside it.
//! - [`test_vectors`]: inputs and the int8 logits tickq-core computes for them on the host, in the binary
//!   format below, which the firmware examples embed and check themselves against.
//!
//! Test vector inputs are int8 for a static blob ([`VectorInput::Int8`], for `Session::run_quantized`) and f32 for
//! a dynamic one ([`VectorInput::F32`], for `Session::run`) unless asked otherwise ([`VectorInput::for_model`]):
//! a dynamic blob's quantized input is int8 mantissas plus a per-sample exponent, which `run_quantized` (taking
//! the exponent as 0) and this format do not carry, so int8 vectors of a dynamic blob are refused.
//!
//! # Test vector format (`TQV1`)
//!
//! All integers are little-endian.
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..4 | magic `TQV1` |
//! | 4..8 | u32 vector count `n` |
//! | 8..10 | u16 input length `L` (values per vector: `T * F`) |
//! | 10 | u8 input kind: 0 = int8 (already quantized, for `Session::run_quantized`), 1 = f32 (for `Session::run`) |
//! | 11 | u8 classes `C` |
//! | 12..16 | u32 CRC-32 of the blob the logits belong to |
//! | 16.. | `n` records: `L` inputs (1 or 4 bytes each), then `C` int8 expected logits, zero-padded to 4 bytes |

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ndarray::ArrayView2;
use thiserror::Error;
use tickq_core::{Model, Session};

use crate::fsutil::write_atomic;

/// The alignment of the exported arrays, in bytes (the arena planner's alignment, and enough for any MCU).
pub const EXPORT_ALIGN: usize = 16;

/// The magic bytes that open a test vector file.
pub const VECTORS_MAGIC: &[u8; 4] = b"TQV1";

/// The length of a test vector file's header.
pub const VECTORS_HEADER_LEN: usize = 16;

/// What can go wrong while exporting.
#[derive(Debug, Error)]
pub enum ExportError {
    /// The blob did not load in tickq-core.
    #[error("{path}: not a blob tickq-core loads")]
    Blob {
        /// The blob file, or what the bytes are (`input quantizer`).
        path: String,
        /// What tickq-core reported.
        #[source]
        source: tickq_core::BlobError,
    },
    /// The `--symbol` (or the model name it defaults to) gives no C identifier.
    #[error(
        "symbol `{}` has no letters or digits to build a C identifier from",
        crate::limits::excerpt(.0)
    )]
    BadSymbol(String),
    /// The blob has no layers, so it has no input quantizer to export int8 vectors with (a blob tickq-core loads
    /// always has one: a bug).
    #[error("the blob has no layers")]
    NoLayers,
    /// The input quantizer's coefficients (the blob's auxiliary section) are not two per feature.
    #[error(
        "the input quantizer has {found} coefficients for {features} features, not two per feature"
    )]
    QuantizerCoefficients {
        /// The coefficients found.
        found: usize,
        /// The blob's features.
        features: usize,
    },
    /// The input quantizer, cut out as a blob of its own, did not encode (a bug).
    #[error("the input quantizer alone does not encode")]
    QuantizerEncode(#[source] tickq_core::encode::EncodeError),
    /// The rows given for test vectors are not as wide as the model's input.
    #[error("the inputs have {found} values per row, the model takes {expected}")]
    InputWidth {
        /// Values per row given.
        found: usize,
        /// Values the model takes.
        expected: usize,
    },
    /// More test vectors than the file's 32-bit count holds.
    #[error("{0} vectors are too many")]
    TooManyVectors(usize),
    /// A session's arena was too small (a bug: the arena is sized from the blob).
    #[error("test vectors: the session does not start")]
    Arena(#[source] tickq_core::ArenaTooSmall),
    /// Running a vector's quantized input gave other logits than running the f32 input (a bug in tickq-core).
    #[error("vector {vector}: run_quantized on the quantized input disagrees with run")]
    QuantizedRunDisagrees {
        /// The vector's index.
        vector: usize,
    },
    /// No trade of the trade vectors gives a signal: a fresh stream is still warming up at the last one.
    #[error(
        "none of the {trades} trade vectors gives a signal: a stream starts cold and warms up over {warm_trades} \
         trades and {warm_ms} ms of one session; ask for more trades (--trade-vectors)"
    )]
    NoSignals {
        /// Trades written.
        trades: usize,
        /// The spec's warm-up in trades.
        warm_trades: u32,
        /// The spec's warm-up in milliseconds.
        warm_ms: u32,
    },
    /// A test vector file does not parse.
    #[error("test vectors: {problem}")]
    VectorFile {
        /// What is wrong (`truncated header`, `bad magic`).
        problem: &'static str,
    },
    /// The data's features are not the ones the blob records.
    #[error("{}: its features are not the blob's ({features} named in the blob)", path.display())]
    DataFeatures {
        /// The data file.
        path: std::path::PathBuf,
        /// The features the blob names.
        features: usize,
    },
    /// int8 test vectors were asked for a dynamically quantized blob.
    #[error(
        "int8 test vectors cannot hold a dynamic blob's input: its int8 mantissas come with a per-sample exponent, \
         which Session::run_quantized and the vector format do not take; export f32 vectors (--vector-input f32 or \
         auto, vector_input = \"f32\" or \"auto\" in a pipeline)"
    )]
    DynamicInt8,
    /// int8 test vectors of a model whose input is wider than the input quantizer alone can hand back.
    #[error(
        "{inputs} input values are more than the {max} an int8 test vector can hold here: export f32 vectors \
         (--vector-input f32, vector_input = \"f32\" in a pipeline)"
    )]
    Int8TooWide {
        /// The model's input values per sample (`T * F`).
        inputs: usize,
        /// The most an int8 vector can hold ([`tickq_core::MAX_CLASSES`]).
        max: usize,
    },
    /// The model does not fit the vector format's header.
    #[error(
        "a model with {classes} classes and {inputs} inputs does not fit the test vector format (at most 255 classes \
         and 65535 inputs)"
    )]
    VectorFormat {
        /// The model's classes.
        classes: usize,
        /// The model's input values per sample.
        inputs: usize,
    },
    /// Reading or writing a file failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

crate::choice! {
    /// The output formats of `tickq export`.
    pub enum Format {
        /// The raw blob bytes
        Blob = "blob",
        /// A C header with an aligned array plus length and arena macros
        CHeader = "c-header" | "c_header",
        /// A Rust source file that embeds the blob (written beside it as .blob) with include_bytes!
        Rust = "rust",
    }
}

impl Format {
    /// The file an export of this format writes unless told otherwise.
    #[must_use]
    pub fn default_file(self) -> &'static str {
        match self {
            Format::Blob => "model.blob",
            Format::CHeader => "model.h",
            Format::Rust => "model.rs",
        }
    }
}

crate::choice! {
    /// How test vector inputs are stored.
    pub enum VectorInput {
        /// int8 inputs from the blob's own input quantizer, for Session::run_quantized (static blobs only)
        Int8 = "int8",
        /// Raw f32 features, for Session::run (the device runs the f32 input quantizer itself)
        F32 = "f32",
    }
}

impl VectorInput {
    /// The input kind test vectors of `model` get unless asked otherwise: int8 for a static blob, f32 for a
    /// dynamic one (whose int8 input carries an exponent the format does not hold).
    pub fn for_model(model: &Model<'_>) -> Self {
        if model.is_dynamic() {
            VectorInput::F32
        } else {
            VectorInput::Int8
        }
    }

    /// Checks that vectors of this kind can be written for a model of `inputs` values per sample, `classes`
    /// classes, dynamic or not; the same check [`test_vectors`] makes, for callers (a pipeline) that know the
    /// model before its blob exists.
    ///
    /// # Errors
    ///
    /// [`ExportError::VectorFormat`], [`ExportError::DynamicInt8`] or [`ExportError::Int8TooWide`].
    pub fn check(self, inputs: usize, classes: usize, dynamic: bool) -> Result<(), ExportError> {
        if u8::try_from(classes).is_err() || u16::try_from(inputs).is_err() {
            return Err(ExportError::VectorFormat { classes, inputs });
        }
        if self == VectorInput::Int8 {
            if dynamic {
                return Err(ExportError::DynamicInt8);
            }
            if inputs > tickq_core::MAX_CLASSES {
                return Err(ExportError::Int8TooWide {
                    inputs,
                    max: tickq_core::MAX_CLASSES,
                });
            }
        }
        Ok(())
    }

    fn code(self) -> u8 {
        match self {
            VectorInput::Int8 => 0,
            VectorInput::F32 => 1,
        }
    }
}

/// Turns `name` into an upper-case C identifier: runs of other characters become one `_`, and a leading digit
/// gets a `_` in front.
///
/// # Errors
///
/// [`ExportError::BadSymbol`] if `name` has no ASCII letter or digit.
pub fn c_symbol(name: &str) -> Result<String, ExportError> {
    let mut s = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_uppercase());
        } else if !s.ends_with('_') && !s.is_empty() {
            s.push('_');
        }
    }
    let s = s.trim_end_matches('_').to_owned();
    if s.is_empty() {
        return Err(ExportError::BadSymbol(name.to_owned()));
    }
    Ok(if s.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{s}")
    } else {
        s
    })
}

/// Loads `blob` in tickq-core, naming `path` in the error.
///
/// # Errors
///
/// [`ExportError::Blob`] when the blob does not validate.
pub fn load<'b>(blob: &'b [u8], path: &str) -> Result<Model<'b>, ExportError> {
    Model::load(blob).map_err(|source| ExportError::Blob {
        path: path.to_owned(),
        source,
    })
}

fn hex_rows(out: &mut String, bytes: &[u8], indent: &str) {
    for row in bytes.chunks(16) {
        out.push_str(indent);
        for b in row {
            let _ = write!(out, "0x{b:02x}, ");
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    }
}

/// A C header holding the blob: `SYMBOL_BLOB[]` (aligned to 16 bytes), and the macros `SYMBOL_BLOB_LEN`,
/// `SYMBOL_ARENA_BYTES`, `SYMBOL_INPUT_LEN`, `SYMBOL_CLASSES` and `SYMBOL_BLOB_CRC32`.
///
/// `symbol` is a C identifier, as [`c_symbol`] makes.
pub fn c_header(model: &Model<'_>, symbol: &str) -> String {
    let blob = model.blob();
    let guard = format!("TICKQ_{symbol}_H");
    let mut s = String::new();
    let _ = writeln!(
        s,
        "/* tickq model `{}`: generated by `tickq export --format c-header`; do not edit. */",
        model.metadata().name().replace("*/", "* /")
    );
    let _ = writeln!(s, "#ifndef {guard}\n#define {guard}\n");
    let _ = writeln!(s, "#include <stdint.h>\n");
    let _ = writeln!(s, "#define {symbol}_BLOB_LEN {}u", blob.len());
    let _ = writeln!(
        s,
        "/* Scratch bytes a tickq-core Session needs (no alignment required). */"
    );
    let _ = writeln!(s, "#define {symbol}_ARENA_BYTES {}u", model.arena_bytes());
    let _ = writeln!(s, "#define {symbol}_INPUT_LEN {}u", model.input_len());
    let _ = writeln!(s, "#define {symbol}_CLASSES {}u", model.classes());
    let _ = writeln!(s, "#define {symbol}_BLOB_CRC32 0x{:08x}u\n", model.crc32());
    let _ = writeln!(
        s,
        "static const uint8_t {symbol}_BLOB[{symbol}_BLOB_LEN] __attribute__((aligned({EXPORT_ALIGN}))) = {{"
    );
    hex_rows(&mut s, blob, "    ");
    let _ = writeln!(s, "}};\n\n#endif /* {guard} */");
    s
}

/// A Rust source file that embeds `blob_file` (a path relative to the source file) with `include_bytes!`.
///
/// It defines `Aligned`, `BLOB: &[u8]` (16-byte aligned), and the constants `ARENA_BYTES`, `BLOB_LEN`,
/// `BLOB_CRC32`, `INPUT_LEN` and `CLASSES`; use it with `mod model { include!("model.rs"); }` or as a module.
pub fn rust_source(model: &Model<'_>, blob_file: &str) -> String {
    let name = model.metadata().name().replace('\n', " ");
    let blob_file = blob_file.escape_default();
    format!(
        "// tickq model `{name}`: generated by `tickq export --format rust`; do not edit.
// The blob is embedded from the file beside this one.

/// A 16-byte aligned wrapper, so the embedded blob starts on an aligned address.
#[repr(C, align({EXPORT_ALIGN}))]
pub struct Aligned<T: ?Sized>(pub T);

static ALIGNED: &Aligned<[u8]> = &Aligned(*include_bytes!(\"{blob_file}\"));

/// The blob bytes, 16-byte aligned.
pub static BLOB: &[u8] = &ALIGNED.0;

/// The blob length in bytes.
pub const BLOB_LEN: usize = {len};

/// The scratch bytes a `tickq_core::Session` needs (`Model::arena_bytes`).
pub const ARENA_BYTES: usize = {arena};

/// The CRC-32 stored in the blob.
pub const BLOB_CRC32: u32 = 0x{crc:08x};

/// Input values per sample (`T * F`).
pub const INPUT_LEN: usize = {input};

/// Output classes (logits).
pub const CLASSES: usize = {classes};
",
        len = model.blob_len(),
        arena = model.arena_bytes(),
        crc = model.crc32(),
        input = model.input_len(),
        classes = model.classes(),
    ) + &stream_constants(model)
}

/// For a blob that carries its feature spec, the sizes a `tickq_core::stream::StreamSession` needs, so firmware
/// can place its buffers statically; empty otherwise (or for a model that cannot stream).
fn stream_constants(model: &Model<'_>) -> String {
    use tickq_core::stream::StreamSession;
    match (
        StreamSession::state_words(model),
        StreamSession::arena_bytes(model),
    ) {
        (Ok(words), Ok(arena)) => format!(
            "
/// The feature engine's state a `tickq_core::stream::StreamSession` needs, in `i64` words.
pub const STATE_WORDS: usize = {words};

/// The arena bytes a `tickq_core::stream::StreamSession` needs (`StreamSession::arena_bytes`).
pub const STREAM_ARENA_BYTES: usize = {arena};
"
        ),
        _ => String::new(),
    }
}

/// A model made of `model`'s input quantizer alone (plus a Flatten when `T > 1`), whose int8 "logits" are
/// the quantized input: tickq-core's own quantizer, run on the host.
///
/// Returns `None` when the quantized input has more than [`tickq_core::MAX_CLASSES`] values.
fn input_quantizer_blob(model: &Model<'_>) -> Result<Option<Vec<u8>>, ExportError> {
    use tickq_core::encode::{LayerSpec, ModelSpec, OpSpec, encode};
    use tickq_core::format::{HEADER_LEN, entry};
    let (time_steps, features) = model.input_shape();
    if time_steps * features > tickq_core::MAX_CLASSES {
        return Ok(None);
    }
    let first = model.layers().next().ok_or(ExportError::NoLayers)?;
    let blob = model.blob();
    let u32_at = |r: std::ops::Range<usize>| {
        blob.get(HEADER_LEN + r.start..HEADER_LEN + r.end)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_le_bytes) as usize
    };
    let (aux_offset, aux_len) = (u32_at(entry::AUX_OFFSET), u32_at(entry::AUX_LEN));
    let coefficients: Vec<f32> = blob
        .get(aux_offset..aux_offset + aux_len)
        .unwrap_or(&[])
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if coefficients.len() != 2 * features {
        return Err(ExportError::QuantizerCoefficients {
            found: coefficients.len(),
            features,
        });
    }
    let (a, b) = coefficients.split_at(features);
    let quantize = LayerSpec {
        act_min: first.act_min,
        act_max: first.act_max,
        dynamic: None,
        ..LayerSpec::new(
            OpSpec::Quantize {
                time_steps,
                features,
                a: a.to_vec(),
                b: b.to_vec(),
            },
            first.out_scale,
            first.out_zero_point,
        )
    };
    let mut layers = vec![quantize];
    if time_steps > 1 {
        layers.push(LayerSpec::new(
            OpSpec::Flatten,
            first.out_scale,
            first.out_zero_point,
        ));
    }
    let spec = ModelSpec {
        name: "input-quantizer".into(),
        feature_names: model
            .metadata()
            .feature_names()
            .map(str::to_owned)
            .collect(),
        label_names: (0..time_steps * features)
            .map(|i| format!("q{i}"))
            .collect(),
        data_hash: *model.metadata().data_hash(),
        tickq_version: model.metadata().tickq_version().to_owned(),
        layers,
        feature_spec: None,
    };
    encode(&spec)
        .map(Some)
        .map_err(ExportError::QuantizerEncode)
}

/// Test vectors for `model`: `count` rows of `inputs` (evenly spaced; all rows if there are fewer), each
/// with the int8 logits tickq-core computes on this host, in the `TQV1` format (see the module doc).
///
/// With [`VectorInput::Int8`], each input is the int8 tensor the blob's own input quantizer produces from the
/// row, computed by tickq-core on a model made of that quantizer alone; the function checks that
/// `run_quantized` on it gives the same logits as `run` on the row. With [`VectorInput::F32`] the inputs are the
/// rows themselves and the logits are `run`'s (for a dynamic blob, the mantissas; the exponent is not stored).
///
/// # Errors
///
/// [`ExportError::InputWidth`] or [`ExportError::TooManyVectors`] if the rows are not `T * F` wide or there are more than `u32::MAX` of them, and
/// the errors of [`VectorInput::check`]: int8 vectors of a dynamic blob or of more than
/// [`tickq_core::MAX_CLASSES`] inputs, or a model the format's header cannot describe.
pub fn test_vectors(
    model: &Model<'_>,
    inputs: ArrayView2<'_, f32>,
    count: usize,
    kind: VectorInput,
) -> Result<Vec<u8>, ExportError> {
    let len = model.input_len();
    if inputs.ncols() != len {
        return Err(ExportError::InputWidth {
            found: inputs.ncols(),
            expected: len,
        });
    }
    kind.check(len, model.classes(), model.is_dynamic())?;
    let (classes, input_len) = match (u8::try_from(model.classes()), u16::try_from(len)) {
        (Ok(c), Ok(l)) => (c, l),
        _ => {
            return Err(ExportError::VectorFormat {
                classes: model.classes(),
                inputs: len,
            });
        }
    };
    let quantizer_blob = match kind {
        VectorInput::Int8 => Some(input_quantizer_blob(model)?.ok_or(
            ExportError::Int8TooWide {
                inputs: len,
                max: tickq_core::MAX_CLASSES,
            },
        )?),
        VectorInput::F32 => None,
    };
    let quantizer = match &quantizer_blob {
        Some(b) => Some(load(b, "input quantizer")?),
        None => None,
    };
    let mut q_arena = vec![0u8; quantizer.as_ref().map_or(0, Model::arena_bytes)];
    let n = inputs.nrows();
    let take = count.min(n);
    let count32 = u32::try_from(take).map_err(|_| ExportError::TooManyVectors(take))?;

    let mut out = Vec::new();
    out.extend_from_slice(VECTORS_MAGIC);
    out.extend_from_slice(&count32.to_le_bytes());
    out.extend_from_slice(&input_len.to_le_bytes());
    out.push(kind.code());
    out.push(classes);
    out.extend_from_slice(&model.crc32().to_le_bytes());

    let mut arena = vec![0u8; model.arena_bytes()];
    for i in 0..take {
        let row: Vec<f32> = inputs.row(i * n / take).to_vec();
        let logits = {
            let mut session = Session::new(model, &mut arena).map_err(ExportError::Arena)?;
            session.run(&row).logits().to_vec()
        };
        match &quantizer {
            None => row
                .iter()
                .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            Some(quantizer) => {
                let q = Session::new(quantizer, &mut q_arena)
                    .map_err(ExportError::Arena)?
                    .run(&row)
                    .logits()
                    .to_vec();
                let mut session = Session::new(model, &mut arena).map_err(ExportError::Arena)?;
                if session.run_quantized(&q).logits() != logits.as_slice() {
                    return Err(ExportError::QuantizedRunDisagrees { vector: i });
                }
                out.extend(q.iter().map(|&v| v as u8));
            }
        }
        out.extend(logits.iter().map(|&v| v as u8));
        while out.len() % 4 != 0 {
            out.push(0);
        }
    }
    Ok(out)
}

/// One parsed test vector (for tests and tools).
#[derive(Debug, Clone, PartialEq)]
pub struct TestVector {
    /// int8 inputs ([`VectorInput::Int8`]); empty for f32 vectors.
    pub input_i8: Vec<i8>,
    /// f32 inputs ([`VectorInput::F32`]); empty for int8 vectors.
    pub input_f32: Vec<f32>,
    /// The expected int8 logits.
    pub logits: Vec<i8>,
}

/// Parses a `TQV1` file back into vectors; returns the blob CRC-32 they belong to and the vectors.
///
/// # Errors
///
/// [`ExportError::VectorFile`] naming what is wrong with the bytes.
pub fn parse_test_vectors(bytes: &[u8]) -> Result<(u32, Vec<TestVector>), ExportError> {
    let bad = |problem: &'static str| ExportError::VectorFile { problem };
    let header = bytes
        .get(..VECTORS_HEADER_LEN)
        .ok_or_else(|| bad("truncated header"))?;
    if &header[..4] != VECTORS_MAGIC {
        return Err(bad("bad magic"));
    }
    let u32_at =
        |o: usize| u32::from_le_bytes([header[o], header[o + 1], header[o + 2], header[o + 3]]);
    let count = u32_at(4) as usize;
    let len = usize::from(u16::from_le_bytes([header[8], header[9]]));
    let kind = match header[10] {
        0 => VectorInput::Int8,
        1 => VectorInput::F32,
        _ => return Err(bad("unknown input kind")),
    };
    let classes = usize::from(header[11]);
    let width = if kind == VectorInput::Int8 { 1 } else { 4 };
    let record = (len * width + classes).next_multiple_of(4);
    let body = &bytes[VECTORS_HEADER_LEN..];
    if body.len() != count * record {
        return Err(bad("length does not match the header"));
    }
    let vectors = body
        .chunks_exact(record.max(1))
        .take(count)
        .map(|r| {
            let (input, rest) = r.split_at(len * width);
            let mut v = TestVector {
                input_i8: Vec::new(),
                input_f32: Vec::new(),
                logits: rest[..classes].iter().map(|&b| b as i8).collect(),
            };
            match kind {
                VectorInput::Int8 => v.input_i8 = input.iter().map(|&b| b as i8).collect(),
                VectorInput::F32 => {
                    v.input_f32 = input
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect();
                }
            }
            v
        })
        .collect();
    Ok((u32_at(12), vectors))
}

/// The files one export writes, for messages.
#[derive(Debug, Clone, Default)]
pub struct Written {
    /// Every file written, in order.
    pub files: Vec<PathBuf>,
}

/// Writes `model`'s blob to `out` in `format`: for [`Format::Rust`], `out` is the `.rs` file and the blob goes
/// beside it with the extension `.blob`. With `vectors`, also writes them to `out` with the extension `.tqv`.
/// Every file is written atomically.
///
/// # Errors
///
/// [`ExportError::BadSymbol`] for a symbol that gives no identifier, [`ExportError::Io`] for write failures.
pub fn write_export(
    model: &Model<'_>,
    format: Format,
    out: &Path,
    symbol: Option<&str>,
    vectors: Option<&[u8]>,
) -> Result<Written, ExportError> {
    let mut written = Written::default();
    let mut put = |path: PathBuf, bytes: &[u8]| -> Result<(), ExportError> {
        write_atomic(&path, bytes)?;
        written.files.push(path);
        Ok(())
    };
    match format {
        Format::Blob => put(out.to_path_buf(), model.blob())?,
        Format::CHeader => {
            let symbol = c_symbol(symbol.unwrap_or(model.metadata().name()))?;
            put(out.to_path_buf(), c_header(model, &symbol).as_bytes())?;
        }
        Format::Rust => {
            let blob_path = out.with_extension("blob");
            let blob_name = blob_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "model.blob".into());
            put(blob_path, model.blob())?;
            put(out.to_path_buf(), rust_source(model, &blob_name).as_bytes())?;
        }
    }
    if let Some(v) = vectors {
        put(out.with_extension("tqv"), v)?;
    }
    Ok(written)
}

/// Everything `tickq export` does, as one call.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The blob file to export.
    pub blob: PathBuf,
    /// The output format.
    pub format: Format,
    /// The output file.
    pub out: PathBuf,
    /// The C symbol prefix ([`Format::CHeader`]); defaults to the model name.
    pub symbol: Option<String>,
    /// Test vectors to write beside the export (0 = none).
    pub vectors: usize,
    /// How the test vector inputs are stored; `None`: [`VectorInput::for_model`].
    pub vector_input: Option<VectorInput>,
    /// Trade vectors (`.tqt`, see [`crate::trade_vectors`]) to write beside the export (0 = none).
    pub trade_vectors: usize,
    /// The trade CSV whose test split gives the vectors.
    pub data: PathBuf,
    /// How that file is read.
    pub read: crate::options::ReadOptions,
    /// An input-vectors file (docs/BYO_MODEL.md) the test vectors are taken from instead of `data`'s test split,
    /// read in the blob's layout; `vectors` rows of it (evenly spaced), or all when `vectors` is 0.
    pub vectors_from: Option<PathBuf>,
    /// The tensor of a safetensors `vectors_from` file.
    pub vectors_tensor: Option<String>,
}

/// The raw f32 feature rows of `path`'s test split, built with the blob's data `settings`
/// ([`crate::steps::blob_data_settings`]: its feature spec and window, the labels and split of its sidecar).
///
/// # Errors
///
/// Data errors, or [`ExportError::DataFeatures`] when the data's features are not the blob's.
pub fn test_split_inputs(
    model: &Model<'_>,
    path: &Path,
    settings: &crate::steps::BlobDataSettings,
) -> Result<ndarray::Array2<f32>, crate::steps::PipelineError> {
    let features = model.input_shape().1;
    let data = crate::steps::prepare_data(path, &settings.dataset, settings.split.as_ref())?;
    let test = data.splits.test;
    let names: Vec<&str> = model.metadata().feature_names().collect();
    if test.features != features || !test.feature_names.iter().map(String::as_str).eq(names) {
        return Err(ExportError::DataFeatures {
            path: path.to_path_buf(),
            features,
        }
        .into());
    }
    Ok(test.x)
}

/// Reads the blob, exports it, and writes test vectors from the data's test split if asked.
///
/// # Errors
///
/// Any read, validation, data or write error, with the file named.
pub fn run_export(opts: &ExportOptions) -> Result<Written, crate::steps::PipelineError> {
    let bytes = crate::limits::read_blob_file(&opts.blob)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", opts.blob.display())))?;
    let model = load(&bytes, &opts.blob.display().to_string())?;
    let mut settings = crate::steps::blob_data_settings(&model, &opts.blob)?;
    settings.dataset.read = settings.dataset.read.overridden_by(&opts.read);
    let vectors = if let Some(file) = &opts.vectors_from {
        let (time_steps, features) = model.input_shape();
        let names: Vec<String> = model
            .metadata()
            .feature_names()
            .map(str::to_string)
            .collect();
        let shape = crate::data::vectors::InputShape {
            time_steps,
            features,
            layout: crate::steps::blob_layout(&model),
            names: &names,
            classes: model.classes(),
        };
        let set = crate::data::vectors::read_inputs(file, opts.vectors_tensor.as_deref(), &shape)?;
        let kind = opts
            .vector_input
            .unwrap_or_else(|| VectorInput::for_model(&model));
        let count = if opts.vectors == 0 {
            set.x.nrows()
        } else {
            opts.vectors
        };
        Some(test_vectors(&model, set.x.view(), count, kind)?)
    } else if opts.vectors > 0 {
        if let Some(kind) = opts.vector_input {
            kind.check(model.input_len(), model.classes(), model.is_dynamic())?;
        }
        let inputs = test_split_inputs(&model, &opts.data, &settings)?;
        let kind = opts
            .vector_input
            .unwrap_or_else(|| VectorInput::for_model(&model));
        Some(test_vectors(&model, inputs.view(), opts.vectors, kind)?)
    } else {
        None
    };
    // The trade vectors are computed before anything is written, so a refusal leaves no partial export.
    let trade_bytes = if opts.trade_vectors > 0 {
        let trades = test_split_trades(&model, &opts.data, &settings)?;
        let bytes = crate::trade_vectors::trade_vectors(&model, &trades, opts.trade_vectors)?;
        let (_, vectors) = crate::trade_vectors::parse_trade_vectors(&bytes).unwrap_or_default();
        if !vectors.iter().any(|v| v.logits.is_some())
            && let Some(spec) = model.feature_spec()
        {
            let (warm_trades, warm_ms) = spec.warm_up();
            return Err(ExportError::NoSignals {
                trades: vectors.len(),
                warm_trades,
                warm_ms,
            }
            .into());
        }
        Some(bytes)
    } else {
        None
    };
    let mut written = write_export(
        &model,
        opts.format,
        &opts.out,
        opts.symbol.as_deref(),
        vectors.as_deref(),
    )?;
    if let Some(bytes) = trade_bytes {
        let path = opts.out.with_extension("tqt");
        write_atomic(&path, &bytes).map_err(ExportError::from)?;
        written.files.push(path);
    }
    Ok(written)
}

/// The trades of `path` from the first sample of its test split on (built with the blob's data `settings`), for a
/// blob that carries its feature spec.
///
/// # Errors
///
/// [`crate::replay::ReplayError::Stream`] for a blob without a spec, and data errors.
pub fn test_split_trades(
    model: &Model<'_>,
    path: &Path,
    settings: &crate::steps::BlobDataSettings,
) -> Result<Vec<crate::data::Trade>, crate::steps::PipelineError> {
    crate::replay::trade_spec(model)?;
    let mut trades = crate::data::load_trades_with(path, &settings.dataset.read)?.trades;
    let data = crate::steps::prepare_from_trades(
        &trades,
        path.display().to_string(),
        [0; 32],
        &settings.dataset,
        settings.split.as_ref(),
    )?;
    let start = data.splits.test.tick_index.first().copied().unwrap_or(0);
    Ok(trades.split_off(start.min(trades.len())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Architecture, Sequential};
    use crate::quant::{ExportInfo, ModelQuantizer, QuantConfig};
    use ndarray::Array2;

    const MLP: &str = "name = \"mlp\"\nclasses = 3\n[input]\ntime_steps = 1\nfeatures = 6\n\
                       [[layers]]\ntype = \"dense\"\nout = 8\n[[layers]]\ntype = \"relu\"\n\
                       [[layers]]\ntype = \"dense\"\nout = 3\n";

    /// Rows of varied, seeded-free features.
    fn rows() -> Array2<f32> {
        Array2::from_shape_fn((40, 6), |(r, c)| ((r * 7 + c * 3) % 11) as f32 * 0.4 - 2.0)
    }

    fn blob(dynamic: bool) -> Vec<u8> {
        let model = Sequential::new(Architecture::from_toml_str(MLP).unwrap(), 3).unwrap();
        let info = ExportInfo {
            name: "mlp".into(),
            feature_names: (0..6).map(|i| format!("f{i}")).collect(),
            label_names: vec!["down".into(), "flat".into(), "up".into()],
            mean: vec![0.0; 6],
            std: vec![1.0; 6],
            data_hash: [1; 32],
            feature_spec: None,
        };
        let q = ModelQuantizer::new(&model, &info);
        let q = if dynamic {
            q.dynamic_quantize().unwrap()
        } else {
            q.static_quantize(rows().view(), &QuantConfig::default())
                .unwrap()
        };
        q.blob
    }

    /// Parses `bytes` back and reruns every vector through tickq-core: the logits must be the stored ones.
    fn read_back(model: &Model<'_>, bytes: &[u8]) -> usize {
        let (crc, vectors) = parse_test_vectors(bytes).unwrap();
        assert_eq!(crc, model.crc32());
        let mut arena = vec![0u8; model.arena_bytes()];
        for v in &vectors {
            let mut session = Session::new(model, &mut arena).unwrap();
            let logits = if v.input_f32.is_empty() {
                session.run_quantized(&v.input_i8).logits().to_vec()
            } else {
                session.run(&v.input_f32).logits().to_vec()
            };
            assert_eq!(logits, v.logits);
        }
        vectors.len()
    }

    #[test]
    fn a_dynamic_blob_gets_f32_vectors_that_read_back() {
        let bytes = blob(true);
        let model = Model::load(&bytes).unwrap();
        assert!(model.is_dynamic());
        let kind = VectorInput::for_model(&model);
        assert_eq!(kind, VectorInput::F32);
        let vectors = test_vectors(&model, rows().view(), 10, kind).unwrap();
        assert_eq!(read_back(&model, &vectors), 10);
        let e = test_vectors(&model, rows().view(), 10, VectorInput::Int8).unwrap_err();
        assert!(matches!(e, ExportError::DynamicInt8), "{e}");
        assert!(
            e.to_string()
                .starts_with("int8 test vectors cannot hold a dynamic blob's input"),
            "{e}"
        );
    }

    #[test]
    fn a_static_blob_gets_int8_vectors_that_read_back() {
        let bytes = blob(false);
        let model = Model::load(&bytes).unwrap();
        assert_eq!(VectorInput::for_model(&model), VectorInput::Int8);
        for kind in [VectorInput::Int8, VectorInput::F32] {
            let vectors = test_vectors(&model, rows().view(), 7, kind).unwrap();
            assert_eq!(read_back(&model, &vectors), 7);
        }
    }

    #[test]
    fn vector_kinds_are_checked_from_the_shape_alone() {
        assert!(VectorInput::Int8.check(29, 3, false).is_ok());
        assert!(matches!(
            VectorInput::Int8.check(29, 3, true),
            Err(ExportError::DynamicInt8)
        ));
        assert_eq!(
            VectorInput::Int8
                .check(928, 3, false)
                .unwrap_err()
                .to_string(),
            "928 input values are more than the 256 an int8 test vector can hold here: export f32 vectors (--vector-input f32, vector_input = \"f32\" in a pipeline)"
        );
        assert!(VectorInput::F32.check(928, 3, true).is_ok());
        assert!(matches!(
            VectorInput::F32.check(29, 256, false),
            Err(ExportError::VectorFormat { classes: 256, .. })
        ));
    }

    #[test]
    fn symbols_are_c_identifiers() {
        assert_eq!(c_symbol("demo-mlp").unwrap(), "DEMO_MLP");
        assert_eq!(c_symbol("  my model v2 ").unwrap(), "MY_MODEL_V2");
        assert_eq!(c_symbol("3layer").unwrap(), "_3LAYER");
        assert!(c_symbol("---").is_err());
    }
}
