//! The error type of the input-vector readers.

use std::path::PathBuf;

use crate::limits::excerpt;

/// Everything that can go wrong while reading input vectors, labels or reference logits from a file.
///
/// Each variant names the file; those about one value name its 0-based row and column (for a
/// three-dimensional array, its two inner indices).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VectorError {
    /// The file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file's name does not end in a format tickq reads.
    #[error(
        "{}: unknown input format: the name must end in .npy, .safetensors, .csv or .parquet",
        path.display()
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The file is larger than tickq reads, checked before anything is read.
    #[error("{}: {bytes} bytes, more than the {limit} bytes an input file may have", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
        /// The limit, [`MAX_VECTOR_FILE_BYTES`](super::MAX_VECTOR_FILE_BYTES).
        limit: u64,
    },
    /// The array holds more values than tickq reads, checked before it is allocated.
    #[error(
        "{}: shape {shape:?} holds more than {limit} values",
        path.display()
    )]
    TooManyValues {
        /// The file.
        path: PathBuf,
        /// The shape found.
        shape: Vec<usize>,
        /// The limit, [`MAX_VECTOR_VALUES`](super::MAX_VECTOR_VALUES).
        limit: usize,
    },
    /// The file's own structure is broken (a bad `.npy` header, a safetensors file that does not parse, a
    /// Parquet file that does not read).
    #[error("{}: not a valid {format} file: {}", path.display(), excerpt(reason))]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The format it claims to be.
        format: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The values have a type tickq does not read for this use.
    #[error("{}: {what} has dtype {dtype}; {expected}", path.display())]
    Dtype {
        /// The file.
        path: PathBuf,
        /// What holds the values (`the array`, a tensor, a column).
        what: String,
        /// The dtype found.
        dtype: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// A safetensors file has no tensor of the name asked for, or several tensors and none was named.
    #[error("{}: {reason}; tensors in the file: {names}", path.display())]
    Tensor {
        /// The file.
        path: PathBuf,
        /// What is missing.
        reason: String,
        /// The file's tensor names, comma-separated.
        names: String,
    },
    /// The array's shape does not fit the model's input.
    #[error("{}: shape {shape:?} does not fit the model's input: {reason}", path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// The shape found (rows first).
        shape: Vec<usize>,
        /// What the model takes.
        reason: String,
    },
    /// A table has another number of input columns than the model takes.
    #[error(
        "{}: {found} input columns, but the model takes {expected} inputs{note}",
        path.display()
    )]
    Width {
        /// The file.
        path: PathBuf,
        /// Input columns found.
        found: usize,
        /// Inputs the model takes.
        expected: usize,
        /// A hint (the layout's shape), possibly empty.
        note: String,
    },
    /// A value is NaN or infinite.
    #[error("{}: row {row}, {column}: {value} is not a finite number", path.display())]
    NotFinite {
        /// The file.
        path: PathBuf,
        /// 0-based row (sample).
        row: usize,
        /// Where in the row: `column 3 (x3)` or `index [2, 17]`.
        column: String,
        /// The value.
        value: f64,
    },
    /// A text field does not parse as a number.
    #[error("{}, line {line}, column `{}`: `{}` is not a number", path.display(), excerpt(column), excerpt(text))]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The column's header name.
        column: String,
        /// The field.
        text: String,
    },
    /// A CSV file could not be read as CSV.
    #[error("{}: {source}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// The reader's error.
        source: csv::Error,
    },
    /// A label is not a class of the model.
    #[error(
        "{}: row {row}: label {label} is out of range: the model has {classes} classes (0 to {})",
        path.display(),
        classes.saturating_sub(1)
    )]
    LabelRange {
        /// The file.
        path: PathBuf,
        /// 0-based row.
        row: usize,
        /// The label found (a float label as written).
        label: String,
        /// The model's classes.
        classes: usize,
    },
    /// Labels or reference rows do not pair up with the inputs.
    #[error("{}: {found} {what}, but the inputs have {expected} rows", path.display())]
    Rows {
        /// The file.
        path: PathBuf,
        /// Rows found.
        found: usize,
        /// Rows expected.
        expected: usize,
        /// What was counted (`labels`, `reference rows`).
        what: &'static str,
    },
    /// The file has no rows at all.
    #[error("{}: no rows", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A row selection does not fit the file.
    #[error("{}: rows {start}..{end} asked for, but the file has {rows} rows", path.display())]
    Selection {
        /// The file.
        path: PathBuf,
        /// First row asked for.
        start: usize,
        /// One past the last row asked for.
        end: usize,
        /// Rows in the file.
        rows: usize,
    },
}
