//! Parquet files for [`read_table`](super::read_table), through the `parquet` crate's row reader (no arrow).
//!
//! The header is the schema's top-level field names, resolved like a text file's header. Numeric roles take
//! INT32, INT64, FLOAT or DOUBLE columns; the time takes a TIMESTAMP (milliseconds, microseconds or
//! nanoseconds), DATE, INT96, a plain integer (read as an epoch integer by the time format, by magnitude under
//! `auto`) or a string (read with the time format); text roles take strings. A column of another type is refused
//! before any row is read. In messages a "line" is the 1-based row.

use std::fs::File;

use parquet::basic::{LogicalType, TimeUnit, Type as PhysicalType};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use parquet::schema::types::Type;

use super::error::DataError;
use super::table::{
    ColumnKind, ColumnValues, Role, RowSink, Table, Wanted, header_error, resolve_header,
    table_columns, time_parser, with_time,
};
use super::time::TimeParser;
use crate::options::read::ReadOptions;

/// The most rows reserved up front from the file's own count (the vectors grow past it as rows arrive).
const MAX_RESERVE: usize = 1 << 20;

fn parquet_error(source: &str, e: parquet::errors::ParquetError) -> DataError {
    DataError::Parquet {
        file: source.to_owned(),
        reason: e.to_string(),
    }
}

/// The column's type as a message shows it, such as `INT64 (TIMESTAMP)` or `a group`.
fn type_name(t: &Type) -> String {
    if !t.is_primitive() {
        return "a group".to_owned();
    }
    let physical = format!("{:?}", t.get_physical_type());
    match t.get_basic_info().logical_type_ref() {
        Some(logical) => {
            let name = format!("{logical:?}");
            let short = name
                .split(['(', ' ', '{'])
                .next()
                .unwrap_or_default()
                .to_owned();
            format!("{physical} ({short})")
        }
        None => match t.get_basic_info().converted_type() {
            parquet::basic::ConvertedType::NONE => physical,
            converted => format!("{physical} ({converted})"),
        },
    }
}

/// Whether a column of type `t` can fill `role`, and for an integer time whether it holds nanoseconds.
fn check_type(t: &Type, role: Role) -> Result<bool, &'static str> {
    let expected = match role.kind() {
        ColumnKind::Time => {
            "a TIMESTAMP, DATE, INT96, integer or string column (epoch integers and strings are read with the \
             time format)"
        }
        ColumnKind::Number => "an INT32, INT64, FLOAT or DOUBLE column",
        ColumnKind::Text => "a string (BYTE_ARRAY) column",
    };
    if !t.is_primitive() {
        return Err(expected);
    }
    let logical = t.get_basic_info().logical_type_ref();
    let temporal = matches!(
        logical,
        Some(LogicalType::Timestamp(_) | LogicalType::Date | LogicalType::Time(_))
    );
    let ok = match (role.kind(), t.get_physical_type()) {
        (ColumnKind::Time, PhysicalType::INT32 | PhysicalType::INT64 | PhysicalType::INT96) => true,
        (ColumnKind::Time, PhysicalType::BYTE_ARRAY) => !temporal,
        (
            ColumnKind::Number,
            PhysicalType::INT32 | PhysicalType::INT64 | PhysicalType::FLOAT | PhysicalType::DOUBLE,
        ) => !temporal,
        (ColumnKind::Text, PhysicalType::BYTE_ARRAY) => true,
        _ => false,
    };
    if !ok || matches!(logical, Some(LogicalType::Time(_))) {
        return Err(expected);
    }
    Ok(matches!(
        logical,
        Some(LogicalType::Timestamp(ts)) if matches!(ts.unit, TimeUnit::NANOS)
    ))
}

/// A time field in milliseconds, or `None` when it cannot be one.
fn time_of(field: &Field, nanos: bool, parser: &TimeParser) -> Option<i64> {
    match field {
        Field::TimestampMillis(v) => Some(*v),
        Field::TimestampMicros(v) => Some(v.div_euclid(1000)),
        Field::Long(v) if nanos => Some(v.div_euclid(1_000_000)),
        Field::Long(v) => parser.epoch(*v),
        Field::Int(v) => parser.epoch(i64::from(*v)),
        Field::Short(v) => parser.epoch(i64::from(*v)),
        Field::UInt(v) => parser.epoch(i64::from(*v)),
        Field::Date(days) => i64::from(*days).checked_mul(86_400_000),
        Field::Str(s) => parser.parse(s.trim()),
        _ => None,
    }
}

/// A numeric field as an `f64`.
pub(crate) fn number_of(field: &Field) -> Option<f64> {
    match field {
        Field::Double(v) => Some(*v),
        Field::Float(v) => Some(f64::from(*v)),
        Field::Long(v) => Some(*v as f64),
        Field::Int(v) => Some(f64::from(*v)),
        Field::Short(v) => Some(f64::from(*v)),
        Field::Byte(v) => Some(f64::from(*v)),
        Field::ULong(v) => Some(*v as f64),
        Field::UInt(v) => Some(f64::from(*v)),
        Field::UShort(v) => Some(f64::from(*v)),
        Field::UByte(v) => Some(f64::from(*v)),
        _ => None,
    }
}

/// Reads a Parquet file; see [`read_table`](super::read_table).
pub(crate) fn read(
    file: File,
    source: &str,
    options: &ReadOptions,
    wanted: &[Wanted],
) -> Result<Table, DataError> {
    let parser = time_parser(options, source)?;
    let roles = with_time(wanted);
    let reader = SerializedFileReader::new(file).map_err(|e| parquet_error(source, e))?;
    let metadata = reader.metadata();
    let schema = metadata.file_metadata().schema_descr();
    let fields = schema.root_schema().get_fields();
    let names: Vec<String> = fields
        .iter()
        .map(|f| f.get_basic_info().name().to_owned())
        .collect();
    let found = match resolve_header(&names, &roles, options.columns.as_ref(), source, 1)? {
        Ok(found) => found,
        Err(miss) => return Err(header_error(miss, source, 1, names.join(","))),
    };
    let mut nanos = false;
    for (w, c) in roles.iter().zip(&found) {
        if let Some(c) = *c {
            match check_type(&fields[c], w.role) {
                Ok(n) => {
                    if w.role == Role::Time {
                        nanos = n;
                    }
                }
                Err(expected) => {
                    return Err(DataError::ParquetType {
                        file: source.to_owned(),
                        column: names[c].clone(),
                        role: w.role.name(),
                        found: type_name(&fields[c]),
                        expected,
                    });
                }
            }
        }
    }
    let time_index = found[0].unwrap_or(0);
    let (indices, columns) = table_columns(&roles, &found, &names);
    let mut sink = RowSink::new(source, names[time_index].clone(), time_index + 1, columns);
    let rows = usize::try_from(metadata.file_metadata().num_rows()).unwrap_or(0);
    sink.times.reserve(rows.min(MAX_RESERVE));
    sink.lines.reserve(rows.min(MAX_RESERVE));
    let iter = reader
        .get_row_iter(None)
        .map_err(|e| parquet_error(source, e))?;
    for (n, row) in iter.enumerate() {
        let row = row.map_err(|e| parquet_error(source, e))?;
        let line = n + 1;
        let values: Vec<&Field> = row.get_column_iter().map(|(_, f)| f).collect();
        let field_at = |c: usize| values.get(c).copied().unwrap_or(&Field::Null);
        let time_field = field_at(time_index);
        let text = time_field.to_string();
        let time = time_of(time_field, nanos, &parser).ok_or_else(|| DataError::BadTimestamp {
            file: source.to_owned(),
            line,
            column: time_index + 1,
            field: names[time_index].clone(),
            text: text.clone(),
            expected: parser.expected().into(),
        })?;
        for (column, &c) in sink.columns.iter_mut().zip(&indices) {
            let field = field_at(c);
            match &mut column.values {
                ColumnValues::Numbers(values) => {
                    let bad = |finite: bool| {
                        let (file, field_name, text) =
                            (source.to_owned(), names[c].clone(), field.to_string());
                        if finite {
                            DataError::BadNumber {
                                file,
                                line,
                                column: c + 1,
                                field: field_name,
                                text,
                            }
                        } else {
                            DataError::NotFinite {
                                file,
                                line,
                                column: c + 1,
                                field: field_name,
                                text,
                            }
                        }
                    };
                    let value = number_of(field).ok_or_else(|| bad(true))?;
                    if !value.is_finite() {
                        return Err(bad(false));
                    }
                    values.push(value);
                }
                ColumnValues::Text(values) => values.push(match field {
                    Field::Str(s) => s.trim().to_owned(),
                    _ => String::new(),
                }),
            }
        }
        sink.push_time(time, line, &text);
    }
    sink.finish()
}
