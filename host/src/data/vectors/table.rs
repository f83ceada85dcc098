//! Tables of numbers with a header: CSV (through the `csv` crate) and Parquet (through the `parquet` crate's
//! row reader, as the trade reader does), read into one row-major array with the column names.
//!
//! Every field must be a number (a CSV field through Rust's `f64` parser, a Parquet field of a numeric
//! physical type); the first that is not is named by line and column.

use std::path::Path;

use super::{ArrayData, RawArray, VectorError, checked_values};

/// A table: its column names and its values, one row after the other.
#[derive(Debug, Clone)]
pub struct NamedTable {
    /// The header's names, in file order.
    pub names: Vec<String>,
    /// The values as a `[rows, columns]` array.
    pub array: RawArray,
}

/// Reads a CSV file with a header line.
///
/// # Errors
///
/// [`VectorError::Csv`] for text the reader refuses (a row of another length included),
/// [`VectorError::Parse`] for a field that is not a number, [`VectorError::Empty`] without rows.
pub fn read_csv(bytes: &[u8], path: &Path) -> Result<NamedTable, VectorError> {
    let csv_error = |source| VectorError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let names: Vec<String> = reader
        .headers()
        .map_err(csv_error)?
        .iter()
        .map(str::to_string)
        .collect();
    let mut values = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut rows = 0usize;
    while reader.read_record(&mut record).map_err(csv_error)? {
        let line = record.position().map_or(rows + 2, |p| p.line() as usize);
        for (text, name) in record.iter().zip(&names) {
            let value = text.parse::<f64>().map_err(|_| VectorError::Parse {
                path: path.to_path_buf(),
                line,
                column: name.clone(),
                text: text.to_string(),
            })?;
            values.push(value);
        }
        rows += 1;
        checked_values(&[rows, names.len()], path)?;
    }
    finish(names, rows, values, path, "CSV")
}

fn finish(
    names: Vec<String>,
    rows: usize,
    values: Vec<f64>,
    path: &Path,
    dtype: &str,
) -> Result<NamedTable, VectorError> {
    if rows == 0 {
        return Err(VectorError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(NamedTable {
        array: RawArray {
            shape: vec![rows, names.len()],
            data: ArrayData::Float(values),
            dtype: dtype.to_string(),
        },
        names,
    })
}

/// Reads a Parquet file whose top-level columns are all numeric.
///
/// # Errors
///
/// [`VectorError::Malformed`] for a file the reader refuses, [`VectorError::Dtype`] for a column that is not
/// numeric (checked before any row is read), [`VectorError::Empty`] without rows.
pub fn read_parquet(path: &Path) -> Result<NamedTable, VectorError> {
    use parquet::basic::Type as Physical;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let malformed = |e: parquet::errors::ParquetError| VectorError::Malformed {
        path: path.to_path_buf(),
        format: "Parquet",
        reason: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(|source| VectorError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let reader = SerializedFileReader::new(file).map_err(malformed)?;
    let metadata = reader.metadata();
    let fields = metadata
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields();
    let names: Vec<String> = fields
        .iter()
        .map(|f| f.get_basic_info().name().to_owned())
        .collect();
    for (f, name) in fields.iter().zip(&names) {
        let numeric = f.is_primitive()
            && matches!(
                f.get_physical_type(),
                Physical::INT32 | Physical::INT64 | Physical::FLOAT | Physical::DOUBLE
            );
        if !numeric {
            return Err(VectorError::Dtype {
                path: path.to_path_buf(),
                what: format!("column `{}`", crate::limits::excerpt(name)),
                dtype: if f.is_primitive() {
                    format!("{:?}", f.get_physical_type())
                } else {
                    "a group".into()
                },
                expected: "every column must be INT32, INT64, FLOAT or DOUBLE",
            });
        }
    }
    let total = usize::try_from(metadata.file_metadata().num_rows()).unwrap_or(usize::MAX);
    checked_values(&[total, names.len()], path)?;
    let mut values = Vec::with_capacity(total.saturating_mul(names.len()));
    let mut rows = 0usize;
    for row in reader.get_row_iter(None).map_err(malformed)? {
        let row = row.map_err(malformed)?;
        rows += 1;
        for (name, field) in row.get_column_iter() {
            let value =
                crate::data::table_parquet::number_of(field).ok_or_else(|| VectorError::Parse {
                    path: path.to_path_buf(),
                    line: rows,
                    column: name.clone(),
                    text: field.to_string(),
                })?;
            values.push(value);
        }
    }
    finish(names, rows, values, path, "Parquet")
}
