//! Constant tensors: their dimensions checked against the limits before any value is converted, and their
//! values read from `raw_data` or the typed fields as f32 (weights) or i64 (shapes and axes).

use super::error::TensorProblem;
use super::proto::{TensorProto, data_type};
use crate::limits::MAX_LAYER_PARAMETERS;

/// What a float tensor may be stored as, for refusals.
const FLOAT_TYPES: &str = "weights and bounds must be FLOAT (FLOAT16 and BFLOAT16 are widened exactly, DOUBLE \
                           is rounded to the nearest f32)";
/// What an integer tensor may be stored as, for refusals.
const INT_TYPES: &str = "shapes and axes must be INT64 or INT32";

/// The tensor's dimensions as sizes, and its element count, checked against [`MAX_LAYER_PARAMETERS`] (no layer
/// tensor of a valid tickq model is larger) before anything is allocated.
pub(super) fn dims(t: &TensorProto) -> Result<(Vec<usize>, usize), TensorProblem> {
    if t.data_location == 1 || !t.external_data.is_empty() {
        return Err(TensorProblem::ExternalData);
    }
    if t.segment.is_some() {
        return Err(TensorProblem::Segment);
    }
    let mut sizes = Vec::with_capacity(t.dims.len());
    let mut elements = 1usize;
    for (axis, &value) in t.dims.iter().enumerate() {
        let size = usize::try_from(value).map_err(|_| TensorProblem::Dimension { axis, value })?;
        elements = elements.saturating_mul(size);
        sizes.push(size);
    }
    if elements > MAX_LAYER_PARAMETERS {
        return Err(TensorProblem::TooLarge {
            elements,
            limit: MAX_LAYER_PARAMETERS,
        });
    }
    Ok((sizes, elements))
}

fn length_error(
    t: &TensorProto,
    expected: usize,
    field: &'static str,
    got: usize,
) -> TensorProblem {
    TensorProblem::DataLength {
        dims: t.dims.clone(),
        expected,
        field,
        got,
    }
}

/// Checks that `raw_data` holds `elements` values of `size` bytes and returns its chunks.
fn raw_chunks(
    t: &TensorProto,
    elements: usize,
    size: usize,
) -> Result<std::slice::ChunksExact<'_, u8>, TensorProblem> {
    if t.raw_data.len() != elements * size {
        return Err(length_error(
            t,
            elements,
            "raw_data",
            t.raw_data.len() / size,
        ));
    }
    Ok(t.raw_data.chunks_exact(size))
}

fn check_len(
    t: &TensorProto,
    elements: usize,
    field: &'static str,
    got: usize,
) -> Result<(), TensorProblem> {
    if got == elements {
        Ok(())
    } else {
        Err(length_error(t, elements, field, got))
    }
}

/// The values of a float tensor as f32, row-major, with its dimensions; every value must be finite in f32.
///
/// FLOAT is read as is, FLOAT16 and BFLOAT16 are widened exactly, DOUBLE is rounded to the nearest f32 (a
/// relative change of at most 2^-24, below anything int8 quantization keeps).
pub(super) fn floats(t: &TensorProto) -> Result<(Vec<usize>, Vec<f32>), TensorProblem> {
    let (sizes, n) = dims(t)?;
    let raw = !t.raw_data.is_empty() || n == 0;
    let mut wide: Vec<f64> = Vec::new();
    let values: Vec<f32> = match t.data_type {
        data_type::FLOAT if raw => raw_chunks(t, n, 4)?
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        data_type::FLOAT => {
            check_len(t, n, "float_data", t.float_data.len())?;
            t.float_data.clone()
        }
        data_type::FLOAT16 | data_type::BFLOAT16 => {
            let bits: Vec<u16> = if raw {
                raw_chunks(t, n, 2)?
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect()
            } else {
                check_len(t, n, "int32_data", t.int32_data.len())?;
                // Each entry holds one 16-bit pattern in its low bits.
                t.int32_data.iter().map(|&v| v as u16).collect()
            };
            if t.data_type == data_type::FLOAT16 {
                bits.into_iter()
                    .map(crate::checkpoint::f16_to_f32)
                    .collect()
            } else {
                bits.into_iter()
                    .map(|b| f32::from_bits(u32::from(b) << 16))
                    .collect()
            }
        }
        data_type::DOUBLE => {
            wide = if raw {
                raw_chunks(t, n, 8)?
                    .map(|c| {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(c);
                        f64::from_le_bytes(b)
                    })
                    .collect()
            } else {
                check_len(t, n, "double_data", t.double_data.len())?;
                t.double_data.clone()
            };
            wide.iter().map(|&v| v as f32).collect()
        }
        other => {
            return Err(TensorProblem::DataType {
                data_type: other,
                expected: FLOAT_TYPES,
            });
        }
    };
    if let Some(index) = values.iter().position(|v| !v.is_finite()) {
        let value = wide.get(index).copied().unwrap_or(f64::from(values[index]));
        return Err(TensorProblem::NonFinite { index, value });
    }
    Ok((sizes, values))
}

/// The values of an integer tensor (INT64 or INT32) as i64, row-major, with its dimensions.
pub(super) fn ints(t: &TensorProto) -> Result<(Vec<usize>, Vec<i64>), TensorProblem> {
    let (sizes, n) = dims(t)?;
    let raw = !t.raw_data.is_empty() || n == 0;
    let values = match t.data_type {
        data_type::INT64 if raw => raw_chunks(t, n, 8)?
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                i64::from_le_bytes(b)
            })
            .collect(),
        data_type::INT64 => {
            check_len(t, n, "int64_data", t.int64_data.len())?;
            t.int64_data.clone()
        }
        data_type::INT32 if raw => raw_chunks(t, n, 4)?
            .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        data_type::INT32 => {
            check_len(t, n, "int32_data", t.int32_data.len())?;
            t.int32_data.iter().map(|&v| i64::from(v)).collect()
        }
        other => {
            return Err(TensorProblem::DataType {
                data_type: other,
                expected: INT_TYPES,
            });
        }
    };
    Ok((sizes, values))
}
