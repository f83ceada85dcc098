//! One tensor of a `.safetensors` file (through the `safetensors` crate, already tickq's checkpoint format).
//!
//! The tensor is the one named (`--tensor NAME`), else the file's only tensor, else the one named `inputs` or
//! `x` (for labels: `labels` or `y`). F32, F64 and the integer dtypes are read; others are refused naming the
//! dtype.

use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors};

use super::{ArrayData, RawArray, VectorError, checked_values};

/// Reads the tensor `name` (or the default, see the module documentation, `defaults` being the names tried)
/// from the safetensors `bytes` of `path`.
///
/// # Errors
///
/// [`VectorError::Malformed`], [`VectorError::Tensor`] naming the file's tensors, [`VectorError::Dtype`],
/// [`VectorError::TooManyValues`].
pub fn read_tensor(
    bytes: &[u8],
    path: &Path,
    name: Option<&str>,
    defaults: &[&str],
) -> Result<RawArray, VectorError> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| VectorError::Malformed {
        path: path.to_path_buf(),
        format: "safetensors",
        reason: e.to_string(),
    })?;
    let mut names: Vec<&str> = file.names();
    names.sort_unstable();
    let tensor_error = |reason: String| VectorError::Tensor {
        path: path.to_path_buf(),
        reason,
        names: if names.is_empty() {
            "none".into()
        } else {
            crate::limits::excerpt(&names.join(", "))
        },
    };
    let chosen = match name {
        Some(n) if names.contains(&n) => n.to_string(),
        Some(n) => {
            return Err(tensor_error(format!(
                "no tensor named `{}`",
                crate::limits::excerpt(n)
            )));
        }
        None if names.len() == 1 => names[0].to_string(),
        None => match defaults.iter().find(|d| names.contains(d)) {
            Some(d) => (*d).to_string(),
            None => {
                return Err(tensor_error(format!(
                    "{} tensors and none named {}: name one with --tensor",
                    names.len(),
                    defaults
                        .iter()
                        .map(|d| format!("`{d}`"))
                        .collect::<Vec<_>>()
                        .join(" or ")
                )));
            }
        },
    };
    let view = file
        .tensor(&chosen)
        .map_err(|e| tensor_error(e.to_string()))?;
    let shape = view.shape().to_vec();
    checked_values(&shape, path)?;
    let raw = view.data();
    let dtype = view.dtype();
    let data = match dtype {
        Dtype::F32 => ArrayData::Float(
            raw.chunks_exact(4)
                .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
        ),
        Dtype::F64 => ArrayData::Float(
            raw.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
        ),
        Dtype::I64 => ArrayData::Int(
            raw.chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
        ),
        Dtype::I32 => ArrayData::Int(
            raw.chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
        ),
        Dtype::I16 => ArrayData::Int(
            raw.chunks_exact(2)
                .map(|c| i64::from(i16::from_le_bytes([c[0], c[1]])))
                .collect(),
        ),
        Dtype::I8 => ArrayData::Int(raw.iter().map(|&b| i64::from(b as i8)).collect()),
        Dtype::U8 => ArrayData::Int(raw.iter().map(|&b| i64::from(b)).collect()),
        other => {
            return Err(VectorError::Dtype {
                path: path.to_path_buf(),
                what: format!("tensor `{}`", crate::limits::excerpt(&chosen)),
                dtype: format!("{other:?}"),
                expected: "tickq reads F32, F64, I64, I32, I16, I8 and U8 tensors",
            });
        }
    };
    Ok(RawArray {
        shape,
        data,
        dtype: format!("{dtype:?}"),
    })
}
