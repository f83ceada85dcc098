//! Input vectors from files: what a model that is not fed tickq's own trade features takes (a user's own
//! features, a PyTorch model's input batch), with optional labels, and reference logits to compare with.
//!
//! One module per format, each reading a file into a [`RawArray`] (a shape and its values) or a
//! [`table::NamedTable`] (a header and rows):
//!
//! - `.npy` ([`npy`]): float32 or float64 (integers for labels), C order;
//! - `.safetensors` ([`safetensors_file`]): one named tensor;
//! - `.csv` and `.parquet` ([`table`]): a header and one row per sample; a `label` column holds the labels.
//!
//! [`read_inputs`] then shapes the array as the model takes it: `[N, inputs]` (one row of `T*F` values in the
//! layout's own order), `[N, T, F]` for a time-major model or `[N, C, T]` for a channels-first one; a
//! channels-first array is transposed to tickq's time-major rows at this boundary, and an array that looks
//! like the other layout is refused rather than read wrongly. Every value must be finite. Limits
//! ([`MAX_VECTOR_FILE_BYTES`], [`MAX_VECTOR_VALUES`]) are checked before anything is allocated.

mod error;
pub mod npy;
pub mod safetensors_file;
pub mod table;

use std::path::{Path, PathBuf};

use ndarray::Array2;
use serde::{Deserialize, Serialize};

pub use error::VectorError;

/// The largest input, label or reference file tickq reads (1 GiB).
pub const MAX_VECTOR_FILE_BYTES: u64 = 1 << 30;

/// The most values one input array may hold.
pub const MAX_VECTOR_VALUES: usize = 1 << 27;

/// The name of the labels column of a CSV or Parquet input file.
pub const LABEL_COLUMN: &str = "label";

/// How a model's input is laid out in the arrays its users give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputLayout {
    /// `[T, F]`: time steps outside, features inside (tickq's own rows, and `Session::run`'s input).
    #[default]
    TimeMajor,
    /// `[C, T]`: channels outside, time steps inside, as PyTorch's `Conv1d` takes it.
    ChannelsFirst,
}

impl InputLayout {
    /// The name in files and on the command line: `time-major` or `channels-first`.
    pub fn name(self) -> &'static str {
        match self {
            Self::TimeMajor => "time-major",
            Self::ChannelsFirst => "channels-first",
        }
    }

    /// The shape of one sample in this layout, as text: `[T, F]` or `[C, T]` with the sizes.
    pub fn shape_text(self, time_steps: usize, features: usize) -> String {
        match self {
            Self::TimeMajor => format!("[T, F] = [{time_steps}, {features}]"),
            Self::ChannelsFirst => format!("[C, T] = [{features}, {time_steps}]"),
        }
    }
}

impl From<InputLayout> for tickq_core::InputLayout {
    fn from(layout: InputLayout) -> Self {
        match layout {
            InputLayout::TimeMajor => Self::TimeMajor,
            InputLayout::ChannelsFirst => Self::ChannelsFirst,
        }
    }
}

impl From<tickq_core::InputLayout> for InputLayout {
    fn from(layout: tickq_core::InputLayout) -> Self {
        match layout {
            tickq_core::InputLayout::TimeMajor => Self::TimeMajor,
            tickq_core::InputLayout::ChannelsFirst => Self::ChannelsFirst,
        }
    }
}

impl std::str::FromStr for InputLayout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "time-major" => Ok(Self::TimeMajor),
            "channels-first" => Ok(Self::ChannelsFirst),
            other => Err(format!(
                "`{}` is not a layout: time-major or channels-first",
                crate::limits::excerpt(other)
            )),
        }
    }
}

impl std::fmt::Display for InputLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The values of an array as read, before they are checked and shaped.
#[derive(Debug, Clone, PartialEq)]
pub enum ArrayData {
    /// Floating-point values (f32 read exactly as f64).
    Float(Vec<f64>),
    /// Integer values.
    Int(Vec<i64>),
}

/// An array read from a file: its shape (rows first), values in C order and dtype as the file names it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawArray {
    /// The shape.
    pub shape: Vec<usize>,
    /// The values.
    pub data: ArrayData,
    /// The dtype as the file names it (`<f4`, `F32`, `CSV`).
    pub dtype: String,
}

/// The number of values of `shape`, refused past [`MAX_VECTOR_VALUES`] (or on overflow).
pub(crate) fn checked_values(shape: &[usize], path: &Path) -> Result<usize, VectorError> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= MAX_VECTOR_VALUES)
        .ok_or_else(|| VectorError::TooManyValues {
            path: path.to_path_buf(),
            shape: shape.to_vec(),
            limit: MAX_VECTOR_VALUES,
        })
}

/// The model input a file is read for.
#[derive(Debug, Clone, Copy)]
pub struct InputShape<'a> {
    /// Time steps `T`.
    pub time_steps: usize,
    /// Features (channels) per time step, `F` (= `C`).
    pub features: usize,
    /// The layout the file's arrays are in.
    pub layout: InputLayout,
    /// The names of the `F` features, which a CSV or Parquet header's columns are matched with.
    pub names: &'a [String],
    /// The model's classes, which labels are checked against.
    pub classes: usize,
}

impl InputShape<'_> {
    fn width(&self) -> usize {
        self.time_steps * self.features
    }
}

/// Input vectors read from a file.
#[derive(Debug, Clone)]
pub struct VectorSet {
    /// The file.
    pub path: PathBuf,
    /// One time-major row of `T*F` values per sample (what `Session::run` takes).
    pub x: Array2<f32>,
    /// The labels, when the file has them.
    pub labels: Option<Vec<u8>>,
    /// What the reader noticed (columns matched by position, a layout transposed), for the caller to show.
    pub notes: Vec<String>,
}

/// Which tensor of a safetensors file to read; `None` takes the default (see [`safetensors_file`]).
pub type TensorName<'a> = Option<&'a str>;

/// The file's bytes, refused past [`MAX_VECTOR_FILE_BYTES`] before they are read.
fn read_bytes(path: &Path) -> Result<Vec<u8>, VectorError> {
    let io = |source| VectorError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bytes = std::fs::metadata(path).map_err(io)?.len();
    if bytes > MAX_VECTOR_FILE_BYTES {
        return Err(VectorError::TooLarge {
            path: path.to_path_buf(),
            bytes,
            limit: MAX_VECTOR_FILE_BYTES,
        });
    }
    crate::limits::read_file_limited(path, MAX_VECTOR_FILE_BYTES, "an input file").map_err(io)
}

/// The formats by file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Npy,
    Safetensors,
    Csv,
    Parquet,
}

fn format_of(path: &Path) -> Result<Format, VectorError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("npy") => Ok(Format::Npy),
        Some("safetensors") => Ok(Format::Safetensors),
        Some("csv") => Ok(Format::Csv),
        Some("parquet" | "pq") => Ok(Format::Parquet),
        _ => Err(VectorError::UnknownFormat {
            path: path.to_path_buf(),
        }),
    }
}

/// An array file (`.npy` or `.safetensors`, `tensor` chosen among `defaults`), or a table (`.csv`, `.parquet`)
/// with its header.
fn read_any(
    path: &Path,
    tensor: TensorName<'_>,
    defaults: &[&str],
) -> Result<(RawArray, Option<Vec<String>>), VectorError> {
    match format_of(path)? {
        Format::Npy => Ok((npy::parse(&read_bytes(path)?, path)?, None)),
        Format::Safetensors => Ok((
            safetensors_file::read_tensor(&read_bytes(path)?, path, tensor, defaults)?,
            None,
        )),
        Format::Csv => {
            let t = table::read_csv(&read_bytes(path)?, path)?;
            Ok((t.array, Some(t.names)))
        }
        Format::Parquet => {
            let t = table::read_parquet(path)?;
            Ok((t.array, Some(t.names)))
        }
    }
}

/// The float values of `array` (what `what` is), refusing integer arrays.
fn floats(array: RawArray, path: &Path, what: &str) -> Result<Vec<f64>, VectorError> {
    match array.data {
        ArrayData::Float(v) => Ok(v),
        ArrayData::Int(_) => Err(VectorError::Dtype {
            path: path.to_path_buf(),
            what: what.to_string(),
            dtype: array.dtype,
            expected: "inputs and logits must be float32 or float64",
        }),
    }
}

/// Checks `labels` (one per row) against `classes`.
fn checked_labels(
    values: impl Iterator<Item = (usize, Result<i64, f64>)>,
    classes: usize,
    path: &Path,
) -> Result<Vec<u8>, VectorError> {
    values
        .map(|(row, v)| {
            let out_of_range = |label: String| VectorError::LabelRange {
                path: path.to_path_buf(),
                row,
                label,
                classes,
            };
            match v {
                Ok(i) if (0..classes as i64).contains(&i) => Ok(i as u8),
                Ok(i) => Err(out_of_range(i.to_string())),
                Err(f) if f.fract() == 0.0 && f >= 0.0 && f < classes as f64 => Ok(f as u8),
                Err(f) => Err(out_of_range(f.to_string())),
            }
        })
        .collect()
}

/// Reads labels (one integer class per sample) from `path`: a `.npy` or `.safetensors` array of shape `[N]` or
/// `[N, 1]` (integers, or floats with whole values), or a CSV / Parquet file with a `label` column or a single
/// column.
///
/// # Errors
///
/// Any [`VectorError`] naming the file; [`VectorError::LabelRange`] for a label that is not a class.
pub fn read_labels(
    path: &Path,
    tensor: TensorName<'_>,
    classes: usize,
) -> Result<Vec<u8>, VectorError> {
    let (array, names) = read_any(path, tensor, &["labels", "label", "y"])?;
    let shape_error = |reason: &str| VectorError::Shape {
        path: path.to_path_buf(),
        shape: array.shape.clone(),
        reason: reason.to_string(),
    };
    let (rows, width, column) = match (array.shape.as_slice(), &names) {
        (&[n, w], Some(names)) => match names.iter().position(|n| n == LABEL_COLUMN) {
            Some(c) => (n, w, c),
            None if w == 1 => (n, 1, 0),
            None => {
                return Err(shape_error(
                    "a labels table needs a `label` column or a single column",
                ));
            }
        },
        (&[n], None) => (n, 1, 0),
        (&[n, 1], None) => (n, 1, 0),
        _ => {
            return Err(shape_error(
                "labels are one integer per sample: [N] or [N, 1]",
            ));
        }
    };
    let at = move |r: usize| r * width + column;
    match &array.data {
        ArrayData::Int(v) => checked_labels((0..rows).map(|r| (r, Ok(v[at(r)]))), classes, path),
        ArrayData::Float(v) => checked_labels((0..rows).map(|r| (r, Err(v[at(r)]))), classes, path),
    }
}

/// Reads the input vectors of `path` for a model taking `shape` (see the module documentation); a CSV or
/// Parquet `label` column becomes the labels.
///
/// # Errors
///
/// Any [`VectorError`] naming the file: the format, its size, the dtype, the width or shape against the
/// layout, a value that is not finite (with its row and column), a label out of range.
pub fn read_inputs(
    path: &Path,
    tensor: TensorName<'_>,
    shape: &InputShape<'_>,
) -> Result<VectorSet, VectorError> {
    let (array, names) = read_any(path, tensor, &["inputs", "x"])?;
    let mut notes = Vec::new();
    let mut labels = None;
    let (rows, values, order) = match names {
        Some(names) => {
            let (rows, values, labels_found, order) =
                table_inputs(array, &names, shape, path, &mut notes)?;
            labels = labels_found;
            (rows, values, order)
        }
        None => {
            let dims = array.shape.clone();
            let values = floats(array, path, "the array")?;
            let order = array_order(&dims, shape, path)?;
            (dims[0], values, order)
        }
    };
    if rows == 0 {
        return Err(VectorError::Empty {
            path: path.to_path_buf(),
        });
    }
    let width = shape.width();
    let mut x = Array2::<f32>::zeros((rows, width));
    for (r, mut out) in x.rows_mut().into_iter().enumerate() {
        let row = &values[r * width..(r + 1) * width];
        for (i, &v) in row.iter().enumerate() {
            let narrowed = v as f32;
            if !narrowed.is_finite() {
                return Err(VectorError::NotFinite {
                    path: path.to_path_buf(),
                    row: r,
                    column: order.describe(i, shape),
                    value: v,
                });
            }
            out[order.time_major_index(i, shape)] = narrowed;
        }
    }
    if order == Order::ChannelsFirst && shape.time_steps > 1 {
        notes.push(format!(
            "{}: channels-first {} samples transposed to time-major rows",
            path.display(),
            InputLayout::ChannelsFirst.shape_text(shape.time_steps, shape.features)
        ));
    }
    Ok(VectorSet {
        path: path.to_path_buf(),
        x,
        labels,
        notes,
    })
}

/// The order of the values within one row of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// `t * F + f`.
    TimeMajor,
    /// `c * T + t`.
    ChannelsFirst,
    /// A table's own columns: time-major, described by column name.
    Columns,
}

impl Order {
    fn time_major_index(self, i: usize, s: &InputShape<'_>) -> usize {
        match self {
            Self::ChannelsFirst => {
                let (c, t) = (i / s.time_steps, i % s.time_steps);
                t * s.features + c
            }
            _ => i,
        }
    }

    fn describe(self, i: usize, s: &InputShape<'_>) -> String {
        let name = |f: usize| {
            s.names
                .get(f)
                .map(|n| format!(" ({})", crate::limits::excerpt(n)))
                .unwrap_or_default()
        };
        match self {
            Self::TimeMajor if s.time_steps == 1 => format!("column {i}{}", name(i)),
            Self::TimeMajor => format!(
                "index [{}, {}] (time step, feature){}",
                i / s.features,
                i % s.features,
                name(i % s.features)
            ),
            Self::ChannelsFirst => format!(
                "index [{}, {}] (channel, time step){}",
                i / s.time_steps,
                i % s.time_steps,
                name(i / s.time_steps)
            ),
            Self::Columns => format!("column {i}{}", name(i % s.features)),
        }
    }
}

/// How the rows of an array of shape `dims` map to the model's input (see the module documentation).
fn array_order(dims: &[usize], s: &InputShape<'_>, path: &Path) -> Result<Order, VectorError> {
    let (t, f) = (s.time_steps, s.features);
    let layout_order = match s.layout {
        InputLayout::TimeMajor => Order::TimeMajor,
        InputLayout::ChannelsFirst => Order::ChannelsFirst,
    };
    let expected = match s.layout {
        InputLayout::TimeMajor => [t, f],
        InputLayout::ChannelsFirst => [f, t],
    };
    let error = |reason: String| VectorError::Shape {
        path: path.to_path_buf(),
        shape: dims.to_vec(),
        reason,
    };
    let sample = s.layout.shape_text(t, f);
    match *dims {
        [_, w] if w == t * f => Ok(layout_order),
        [_, w] => Err(VectorError::Width {
            path: path.to_path_buf(),
            found: w,
            expected: t * f,
            note: format!(" (one row of {sample}, {} layout)", s.layout),
        }),
        [_, a, b] if [a, b] == expected => Ok(layout_order),
        [_, a, b] if [b, a] == expected => {
            let other = match s.layout {
                InputLayout::TimeMajor => InputLayout::ChannelsFirst,
                InputLayout::ChannelsFirst => InputLayout::TimeMajor,
            };
            Err(error(format!(
                "the samples are [{a}, {b}], the {other} shape, but the model's layout is {} {sample}: \
                 transpose the array, or import the model with --layout {other}",
                s.layout
            )))
        }
        [_, a, b] => Err(error(format!(
            "each sample must be {sample} ({} layout), the file's are [{a}, {b}]",
            s.layout
        ))),
        _ => Err(error(format!(
            "input arrays are [N, {}] or [N, {}, {}] ({} layout), not rank {}",
            t * f,
            expected[0],
            expected[1],
            s.layout,
            dims.len()
        ))),
    }
}

/// The rows of a table: its input columns matched with `s.names` by name (any order) when the header has them
/// all, else by position (with a note); the `label` column, when there is one, as the labels.
#[allow(clippy::type_complexity)]
fn table_inputs(
    array: RawArray,
    names: &[String],
    s: &InputShape<'_>,
    path: &Path,
    notes: &mut Vec<String>,
) -> Result<(usize, Vec<f64>, Option<Vec<u8>>, Order), VectorError> {
    let rows = array.shape[0];
    let columns = names.len();
    let values = floats(array, path, "the table")?;
    let label_column = names.iter().position(|n| n == LABEL_COLUMN);
    let inputs: Vec<usize> = (0..columns).filter(|&c| Some(c) != label_column).collect();
    let width = s.width();
    if inputs.len() != width {
        return Err(VectorError::Width {
            path: path.to_path_buf(),
            found: inputs.len(),
            expected: width,
            note: if s.time_steps > 1 {
                format!(
                    " ({}, {} layout: {width} columns in that order)",
                    s.layout.shape_text(s.time_steps, s.features),
                    s.layout
                )
            } else {
                String::new()
            },
        });
    }
    // By name when every input name is a column (one time step only: a window's columns have no names).
    let by_name: Option<Vec<usize>> = (s.time_steps == 1)
        .then(|| {
            s.names
                .iter()
                .map(|n| inputs.iter().copied().find(|&c| names[c] == *n))
                .collect()
        })
        .flatten();
    let source: Vec<usize> = match by_name {
        Some(cols) => cols,
        None => {
            notes.push(format!(
                "{}: the header's names are not the model's input names: its {width} columns are read by position",
                path.display()
            ));
            inputs.clone()
        }
    };
    let mut out = Vec::with_capacity(rows * width);
    for r in 0..rows {
        out.extend(source.iter().map(|&c| values[r * columns + c]));
    }
    let labels = match label_column {
        Some(c) => Some(checked_labels(
            (0..rows).map(|r| (r, Err(values[r * columns + c]))),
            s.classes,
            path,
        )?),
        None => None,
    };
    let order = match s.layout {
        InputLayout::ChannelsFirst if s.time_steps > 1 => Order::ChannelsFirst,
        _ => Order::Columns,
    };
    Ok((rows, out, labels, order))
}

/// Reads reference logits (`[N, classes]` floats) from `path`, any of the input formats (a table's columns in
/// order).
///
/// # Errors
///
/// Any [`VectorError`] naming the file; [`VectorError::Width`] for another number of columns than `classes`.
pub fn read_reference(
    path: &Path,
    tensor: TensorName<'_>,
    classes: usize,
) -> Result<Array2<f32>, VectorError> {
    let (array, _) = read_any(path, tensor, &["logits", "reference", "y"])?;
    let dims = array.shape.clone();
    let [rows, width] = dims[..] else {
        return Err(VectorError::Shape {
            path: path.to_path_buf(),
            shape: dims,
            reason: format!("reference logits are [N, {classes}]"),
        });
    };
    if width != classes {
        return Err(VectorError::Width {
            path: path.to_path_buf(),
            found: width,
            expected: classes,
            note: " (one logit per class)".into(),
        });
    }
    let values = floats(array, path, "the reference logits")?;
    let mut out = Array2::zeros((rows, width));
    for (i, (dst, &v)) in out.iter_mut().zip(&values).enumerate() {
        if !v.is_finite() {
            return Err(VectorError::NotFinite {
                path: path.to_path_buf(),
                row: i / width,
                column: format!("column {}", i % width),
                value: v,
            });
        }
        *dst = v as f32;
    }
    Ok(out)
}

/// Rows `start..end` of `set` (its labels too).
///
/// # Errors
///
/// [`VectorError::Selection`] when the range is empty or past the file's rows.
pub fn select_rows(set: &VectorSet, start: usize, end: usize) -> Result<VectorSet, VectorError> {
    let rows = set.x.nrows();
    if start >= end || end > rows {
        return Err(VectorError::Selection {
            path: set.path.clone(),
            start,
            end,
            rows,
        });
    }
    Ok(VectorSet {
        path: set.path.clone(),
        x: set.x.slice(ndarray::s![start..end, ..]).to_owned(),
        labels: set.labels.as_ref().map(|l| l[start..end].to_vec()),
        notes: set.notes.clone(),
    })
}

/// The input column names of a table file's header (a CSV file's first line, a Parquet file's top-level
/// columns), without the `label` column: what `tickq import --input-names-from` names a model's inputs with.
///
/// # Errors
///
/// [`VectorError`] naming the file.
pub fn read_header_names(path: &Path) -> Result<Vec<String>, VectorError> {
    let names = match format_of(path)? {
        Format::Csv => {
            let bytes = read_bytes(path)?;
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(true)
                .trim(csv::Trim::All)
                .from_reader(bytes.as_slice());
            reader
                .headers()
                .map_err(|source| VectorError::Csv {
                    path: path.to_path_buf(),
                    source,
                })?
                .iter()
                .map(str::to_string)
                .collect::<Vec<_>>()
        }
        Format::Parquet => table::read_parquet(path)?.names,
        Format::Npy | Format::Safetensors => {
            return Err(VectorError::Malformed {
                path: path.to_path_buf(),
                format: "CSV or Parquet",
                reason: "an array file has no column names: give a CSV or Parquet file".into(),
            });
        }
    };
    Ok(names.into_iter().filter(|n| n != LABEL_COLUMN).collect())
}

#[cfg(test)]
mod tests;
