//! NumPy `.npy` files (format versions 1 to 3), read and written without a NumPy dependency.
//!
//! A file is the magic `\x93NUMPY`, a version, a header length, a Python dict literal
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (N, M), }` padded with spaces, then the values in C order.
//! tickq reads little-endian (or single-byte) `f4`, `f8`, `i1`, `u1`, `i2`, `u2`, `i4`, `u4`, `i8` and `u8` in
//! C order; Fortran order, big-endian data and other dtypes are refused naming the dtype. The values' byte count
//! is checked against the shape before anything is allocated.

use std::path::Path;

use super::{ArrayData, RawArray, VectorError, checked_values};

const MAGIC: &[u8] = b"\x93NUMPY";

fn malformed(path: &Path, reason: impl Into<String>) -> VectorError {
    VectorError::Malformed {
        path: path.to_path_buf(),
        format: ".npy",
        reason: reason.into(),
    }
}

/// The value of `key` in the header dict: the text after `'key':` up to the next top-level comma or brace.
fn dict_value<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let at = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
    let mut depth = 0usize;
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    return Some(&rest[..=i]);
                }
            }
            ',' | '}' if depth == 0 => return Some(rest[..i].trim()),
            _ => {}
        }
    }
    None
}

/// Parses a `.npy` file's bytes.
///
/// # Errors
///
/// [`VectorError::Malformed`] for a broken header or a byte count that does not match the shape,
/// [`VectorError::Dtype`] for an unsupported dtype or Fortran order, [`VectorError::TooManyValues`].
pub fn parse(bytes: &[u8], path: &Path) -> Result<RawArray, VectorError> {
    if bytes.len() < 10 || !bytes.starts_with(MAGIC) {
        return Err(malformed(
            path,
            "it does not start with the magic \\x93NUMPY",
        ));
    }
    let (header_len, start) = match bytes[6] {
        1 => (
            usize::from(u16::from_le_bytes([bytes[8], bytes[9]])),
            10usize,
        ),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => {
            return Err(malformed(
                path,
                format!("format version {v} (1 to 3 are read)"),
            ));
        }
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| malformed(path, "the header runs past the end of the file"))?;
    let header = std::str::from_utf8(&bytes[start..end])
        .map_err(|_| malformed(path, "the header is not text"))?;
    let descr = dict_value(header, "descr")
        .ok_or_else(|| malformed(path, "the header has no 'descr'"))?
        .trim_matches(['\'', '"']);
    let fortran = dict_value(header, "fortran_order")
        .ok_or_else(|| malformed(path, "the header has no 'fortran_order'"))?;
    let shape_text =
        dict_value(header, "shape").ok_or_else(|| malformed(path, "the header has no 'shape'"))?;
    let dtype_error = |expected| VectorError::Dtype {
        path: path.to_path_buf(),
        what: "the array".into(),
        dtype: descr.to_string(),
        expected,
    };
    if fortran != "False" {
        return Err(dtype_error(
            "Fortran order is not read: save a C-ordered array (numpy.ascontiguousarray)",
        ));
    }
    let shape = shape_text
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L').parse::<usize>().map_err(|_| {
                malformed(
                    path,
                    format!("the shape {shape_text} is not a tuple of sizes"),
                )
            })
        })
        .collect::<Result<Vec<usize>, _>>()?;
    let (kind, size) = match descr {
        "<f4" => ('f', 4),
        "<f8" => ('f', 8),
        "|i1" | "<i1" => ('i', 1),
        "|u1" | "<u1" => ('u', 1),
        "<i2" => ('i', 2),
        "<u2" => ('u', 2),
        "<i4" => ('i', 4),
        "<u4" => ('u', 4),
        "<i8" => ('i', 8),
        "<u8" => ('u', 8),
        _ => {
            return Err(dtype_error(
                "tickq reads little-endian float32, float64 and integer arrays (<f4, <f8, <i1 to <u8)",
            ));
        }
    };
    let values = checked_values(&shape, path)?;
    let data = &bytes[end..];
    if Some(data.len()) != values.checked_mul(size) {
        return Err(malformed(
            path,
            format!(
                "shape {shape:?} of {descr} needs {} bytes of values, the file has {}",
                values.saturating_mul(size),
                data.len()
            ),
        ));
    }
    let chunks = data.chunks_exact(size);
    let data = match (kind, size) {
        ('f', 4) => ArrayData::Float(
            chunks
                .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
        ),
        ('f', _) => ArrayData::Float(
            chunks
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
        ),
        (signed, _) => ArrayData::Int(
            chunks
                .map(|c| {
                    let mut b = [0u8; 8];
                    b[..size].copy_from_slice(c);
                    if signed == 'i' && c[size - 1] & 0x80 != 0 {
                        b[size..].fill(0xff);
                    }
                    let v = i64::from_le_bytes(b);
                    // An unsigned 64-bit value past i64's range is no class anyway: keep it out of range.
                    if signed == 'u' && size == 8 && v < 0 {
                        i64::MAX
                    } else {
                        v
                    }
                })
                .collect(),
        ),
    };
    Ok(RawArray {
        shape,
        data,
        dtype: descr.to_string(),
    })
}

/// The bytes of a version-1 `.npy` file holding `values` as little-endian float32 of `shape` in C order.
pub fn to_bytes_f32(shape: &[usize], values: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
    let tuple = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}");
    // Magic (6) + version (2) + length (2) + header + newline, padded to a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 4 * values.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_file_reads_back() {
        let bytes = to_bytes_f32(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, -6.5]);
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!((bytes.len() - 24) % 64, 0);
        let a = parse(&bytes, Path::new("a.npy")).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert!(matches!(&a.data, ArrayData::Float(v) if v == &[1.0, 2.0, 3.0, 4.0, 5.0, -6.5]));
    }

    fn with_header(header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn integers_and_bad_files() {
        let a = parse(
            &with_header(
                "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }\n",
                &[
                    255, 255, 255, 255, 255, 255, 255, 255, 2, 0, 0, 0, 0, 0, 0, 0,
                ],
            ),
            Path::new("y.npy"),
        )
        .unwrap();
        assert!(matches!(&a.data, ArrayData::Int(v) if v == &[-1, 2]));
        let e = parse(
            &with_header(
                "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }",
                &[0; 4],
            ),
            Path::new("x.npy"),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.npy: the array has dtype >f4; tickq reads little-endian float32, float64 and integer arrays (<f4, <f8, <i1 to <u8)"
        );
        let e = parse(
            &with_header(
                "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }",
                &[0; 4],
            ),
            Path::new("x.npy"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("Fortran order is not read"), "{e}");
        let e = parse(
            &with_header(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
                &[0; 20],
            ),
            Path::new("x.npy"),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.npy: not a valid .npy file: shape [2, 3] of <f4 needs 24 bytes of values, the file has 20"
        );
        let e = parse(
            &with_header(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000, 100000), }",
                &[0; 4],
            ),
            Path::new("x.npy"),
        )
        .unwrap_err();
        assert!(matches!(e, VectorError::TooManyValues { .. }), "{e}");
        let e = parse(b"PK\x03\x04 not numpy", Path::new("x.npy")).unwrap_err();
        assert!(e.to_string().contains("magic"), "{e}");
    }
}
