//! Checkpoints: a directory holding the weights as safetensors with PyTorch names, the architecture,
//! and optionally the preprocessing description.
//!
//! Layout of a checkpoint directory:
//!
//! - `model.safetensors`: F32 little-endian tensors named and shaped exactly like PyTorch's `state_dict()`
//!   (`fc1.weight [out, in]`, `fc1.bias [out]`, `conv1.weight [out, in, kernel]`, `conv1.bias [out]`).
//!   A pruned layer is stored as `torch.nn.utils.prune` leaves it: `fc1.weight_orig`, `fc1.weight_mask` and
//!   `fc1.bias` (see [`Sequential::pruned_state_dict`]); `fc1.weight` plus `fc1.weight_mask` also loads.
//! - `arch.toml`: the [`Architecture`].
//! - `preprocess.json` (optional): JSON the caller keeps next to the model; [`load_checkpoint`] only parses it.
//!   tickq's own record of the data (normalizer, feature and label names, data hash) is
//!   [`Preprocess`](crate::preprocess::Preprocess), which checks it against the architecture.
//!
//! [`save_checkpoint`] replaces the whole directory as one unit with [`replace_dir`], so a reader sees the old
//! checkpoint or the new one, never new weights beside an old architecture or `preprocess.json`; other entries in
//! the directory (a training state, a report) are kept.
//! [`import_safetensors`] loads weights exported from PyTorch with `safetensors.torch.save_file(model.state_dict(), ...)`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::fsutil::replace_dir;
use crate::model::{Architecture, ModelError, Sequential, StateDict};
use crate::preprocess::PreprocessProblem;

/// File name of the weights inside a checkpoint directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// File name of the architecture inside a checkpoint directory.
pub const ARCH_FILE: &str = "arch.toml";
/// File name of the optional preprocessing JSON inside a checkpoint directory.
pub const PREPROCESS_FILE: &str = "preprocess.json";

/// Errors while reading or writing checkpoints and safetensors files; each names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// A file could not be read, written or removed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file is not a valid safetensors file, or tensors do not make one.
    #[error(
        "{}: not a valid safetensors file: {}{source}",
        path.display(),
        tensor.as_ref().map(|t| format!("tensor {t}: ")).unwrap_or_default()
    )]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// The tensor, when the problem is one tensor's.
        tensor: Option<String>,
        /// The safetensors library's error.
        #[source]
        source: safetensors::SafeTensorError,
    },
    /// A tensor has a data type that cannot be converted to f32.
    #[error("{}: tensor {tensor} has dtype {dtype}; only F32, F64, F16 and BF16 can be loaded", path.display())]
    Dtype {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// The data type found.
        dtype: String,
    },
    /// The architecture file is missing or invalid (the inner error names the file).
    #[error(transparent)]
    Arch(ModelError),
    /// The tensors do not fit the architecture: missing or unexpected names, wrong shapes, non-finite values.
    #[error("{}: {source}", path.display())]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// What does not fit.
        source: ModelError,
    },
    /// The preprocessing file is not valid JSON, or (read as a [`Preprocess`](crate::preprocess::Preprocess)) has
    /// unknown or missing keys or values of the wrong type.
    #[error("{}: invalid JSON: {source}", path.display())]
    Preprocess {
        /// The file.
        path: PathBuf,
        /// The parser's error, with its line and column.
        #[source]
        source: serde_json::Error,
    },
    /// A field of the preprocessing file does not fit the architecture or is out of range.
    #[error("{}: {field}{}: {problem}", path.display(), index.map(|i| format!("[{i}]")).unwrap_or_default())]
    InvalidPreprocess {
        /// The file.
        path: PathBuf,
        /// The field, dotted from the top (`normalizer.std`).
        field: &'static str,
        /// The index within the field, for a list entry.
        index: Option<usize>,
        /// What is wrong.
        problem: Box<PreprocessProblem>,
    },
}

/// Shorthand for results in this module.
pub type Result<T, E = CheckpointError> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Serializes named f32 tensors to safetensors bytes (little-endian F32), with optional string metadata.
///
/// # Errors
///
/// [`CheckpointError::Safetensors`] (with `origin` as the path) when a tensor's data length does not match its
/// shape or names repeat.
pub fn encode_safetensors(
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    metadata: Option<HashMap<String, String>>,
    origin: &Path,
) -> Result<Vec<u8>> {
    let bad = |tensor: Option<&str>, source| CheckpointError::Safetensors {
        path: origin.to_path_buf(),
        tensor: tensor.map(str::to_string),
        source,
    };
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, data)| data.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let mut views = Vec::with_capacity(tensors.len());
    for ((name, shape, _), b) in tensors.iter().zip(&bytes) {
        let view = TensorView::new(Dtype::F32, shape.clone(), b).map_err(|e| bad(Some(name), e))?;
        views.push((name.as_str(), view));
    }
    safetensors::serialize(views, metadata).map_err(|e| bad(None, e))
}

/// Converts IEEE half-precision bits to f32 (exact: every f16 value is an f32 value).
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let mant = f32::from(h & 0x3ff);
    match exp {
        0 => sign * mant * 2f32.powi(-24),
        0x1f if mant == 0.0 => sign * f32::INFINITY,
        0x1f => f32::NAN,
        _ => sign * (1.0 + mant / 1024.0) * 2f32.powi(exp - 15),
    }
}

/// Parses safetensors bytes into named f32 tensors (in file order) and the string metadata.
///
/// F64 values are rounded to f32; F16 and BF16 are widened exactly.
///
/// # Errors
///
/// [`CheckpointError::Safetensors`] for a malformed file and [`CheckpointError::Dtype`] for other data types;
/// `origin` names the file in the error.
pub fn decode_safetensors(
    bytes: &[u8],
    origin: &Path,
) -> Result<(StateDict, HashMap<String, String>)> {
    let bad = |source: safetensors::SafeTensorError| CheckpointError::Safetensors {
        path: origin.to_path_buf(),
        tensor: None,
        source,
    };
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(bad)?;
    let st = SafeTensors::deserialize(bytes).map_err(bad)?;
    let mut out = Vec::with_capacity(st.len());
    // Keep the on-disk order so errors and round trips are stable.
    let mut names: Vec<(usize, String)> = meta
        .tensors()
        .into_iter()
        .map(|(n, info)| (info.data_offsets.0, n))
        .collect();
    names.sort();
    for (_, name) in names {
        let view = st.tensor(&name).map_err(bad)?;
        let data = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F64 => data
                .chunks_exact(8)
                .map(|c| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(c);
                    f64::from_le_bytes(b) as f32
                })
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
                .collect(),
            other => {
                return Err(CheckpointError::Dtype {
                    path: origin.to_path_buf(),
                    tensor: name,
                    dtype: format!("{other:?}"),
                });
            }
        };
        out.push((name, view.shape().to_vec(), values));
    }
    Ok((out, meta.metadata().clone().unwrap_or_default()))
}

/// Reads a safetensors file into named f32 tensors and its string metadata.
///
/// # Errors
///
/// As [`decode_safetensors`], plus [`CheckpointError::Io`].
pub fn read_safetensors(path: &Path) -> Result<(StateDict, HashMap<String, String>)> {
    let bytes = crate::limits::read_file_limited(
        path,
        crate::limits::MAX_WEIGHTS_BYTES,
        "a safetensors file",
    )
    .map_err(io_err(path))?;
    decode_safetensors(&bytes, path)
}

/// Writes `model` to the checkpoint directory `dir` (created if needed): `model.safetensors`, `arch.toml`
/// and, when given, `preprocess.json`.
///
/// The directory is replaced as one unit ([`replace_dir`]): a reader, or a crash at any moment, sees the old
/// checkpoint or the complete new one. Without `preprocess`, a `preprocess.json` left from an earlier save is
/// dropped, so new weights never pair with stale preprocessing. Other entries of the directory are kept.
///
/// # Errors
///
/// [`CheckpointError::Io`] naming the directory or file that failed, or [`CheckpointError::Arch`] if the
/// architecture cannot be serialized.
pub fn save_checkpoint(
    dir: &Path,
    model: &Sequential,
    preprocess: Option<&serde_json::Value>,
) -> Result<()> {
    let weights = checkpoint_weights(model, &dir.join(WEIGHTS_FILE))?;
    let arch = model.arch.to_toml_string().map_err(CheckpointError::Arch)?;
    let pre = match preprocess {
        Some(value) => {
            let mut text = serde_json::to_string_pretty(value).map_err(|source| {
                CheckpointError::Preprocess {
                    path: dir.join(PREPROCESS_FILE),
                    source,
                }
            })?;
            text.push('\n');
            Some(text)
        }
        None => None,
    };
    let mut files = vec![
        (WEIGHTS_FILE, weights.as_slice()),
        (ARCH_FILE, arch.as_bytes()),
    ];
    files.extend(pre.as_ref().map(|text| (PREPROCESS_FILE, text.as_bytes())));
    replace_dir(dir, &files, &[PREPROCESS_FILE]).map_err(io_err(dir))
}

/// The bytes of `model.safetensors` for `model`: the pruned state dict with PyTorch's `format = pt` tag.
///
/// # Errors
///
/// [`CheckpointError::Safetensors`] naming `origin`.
pub(crate) fn checkpoint_weights(model: &Sequential, origin: &Path) -> Result<Vec<u8>> {
    let mut meta = HashMap::new();
    // PyTorch's `safetensors.torch.save_file` tags its files this way; other tools look for it.
    meta.insert("format".to_string(), "pt".to_string());
    encode_safetensors(&model.pruned_state_dict(), Some(meta), origin)
}

/// Reads a checkpoint directory written by [`save_checkpoint`] (or assembled by hand with PyTorch weights).
///
/// # Errors
///
/// [`CheckpointError::Arch`] for a missing or invalid `arch.toml`, [`CheckpointError::Io`],
/// [`CheckpointError::Safetensors`] or [`CheckpointError::Dtype`] for the weights file,
/// [`CheckpointError::Weights`] when the tensors do not fit the architecture, and
/// [`CheckpointError::Preprocess`] for invalid JSON.
pub fn load_checkpoint(dir: &Path) -> Result<(Sequential, Option<serde_json::Value>)> {
    let model = import_safetensors(&dir.join(WEIGHTS_FILE), &dir.join(ARCH_FILE))?;
    let pre_path = dir.join(PREPROCESS_FILE);
    let preprocess = match crate::limits::read_text_limited(
        &pre_path,
        crate::limits::MAX_JSON_BYTES,
        "a JSON file",
    ) {
        Ok(text) => {
            Some(
                serde_json::from_str(&text).map_err(|source| CheckpointError::Preprocess {
                    path: pre_path.clone(),
                    source,
                })?,
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(&pre_path)(e)),
    };
    Ok((model, preprocess))
}

/// Builds a model from an architecture file and a safetensors file with PyTorch `state_dict()` names and layouts.
///
/// The tensor set must match exactly; F16, BF16 and F64 tensors are converted to f32.
/// Pruned layers may come as `{name}.weight_orig` plus `{name}.weight_mask`, as `torch.nn.utils.prune` saves them.
///
/// # Errors
///
/// [`CheckpointError::Arch`] for the architecture file; for the weights, [`CheckpointError::Io`],
/// [`CheckpointError::Safetensors`], [`CheckpointError::Dtype`], or [`CheckpointError::Weights`] listing
/// missing and unexpected names, or the expected and supplied shape of a tensor.
pub fn import_safetensors(weights: &Path, arch: &Path) -> Result<Sequential> {
    let arch = Architecture::load(arch).map_err(CheckpointError::Arch)?;
    let (state, _) = read_safetensors(weights)?;
    model_from_state(arch, &state, weights)
}

/// Builds a model for `arch` and loads `state` into it; `origin` names the weights in errors.
pub(crate) fn model_from_state(
    arch: Architecture,
    state: &[(String, Vec<usize>, Vec<f32>)],
    origin: &Path,
) -> Result<Sequential> {
    let mut model = Sequential::new(arch, 0).map_err(CheckpointError::Arch)?;
    model
        .load_pruned_state_dict(state)
        .map_err(|source| CheckpointError::Weights {
            path: origin.to_path_buf(),
            source,
        })?;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::write_atomic;
    use crate::test_support::{self as ts, GlobalAvgPool, LayerExt, ReLU};

    fn arch() -> Architecture {
        let layers = [ts::conv(4, 3).causal(), ReLU, GlobalAvgPool, ts::dense(3)];
        ts::arch("c", 3, [8, 2], &layers)
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tickq-ckpt-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn model() -> Sequential {
        ts::seeded_model(arch(), 3)
    }

    /// Writes a safetensors file the way PyTorch would, with the given tensors as raw bytes.
    fn write_raw(path: &Path, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) {
        let views: Vec<(&str, TensorView<'_>)> = tensors
            .iter()
            .map(|(n, d, s, b)| (*n, TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        let bytes = safetensors::serialize(views, None).unwrap();
        write_atomic(path, &bytes).unwrap();
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// PyTorch-layout tensors for [`arch`]: `conv1.weight[o][i][k] = o + 0.1 i + 0.01 k`.
    fn torch_like_tensors() -> Vec<(&'static str, Dtype, Vec<usize>, Vec<u8>)> {
        let mut w = Vec::new();
        for o in 0..4 {
            for i in 0..2 {
                for k in 0..3 {
                    w.push(o as f32 + 0.1 * i as f32 + 0.01 * k as f32);
                }
            }
        }
        vec![
            ("conv1.weight", Dtype::F32, vec![4, 2, 3], f32_bytes(&w)),
            (
                "conv1.bias",
                Dtype::F32,
                vec![4],
                f32_bytes(&[0.5, -0.5, 1.0, 0.0]),
            ),
            ("fc1.weight", Dtype::F32, vec![3, 4], f32_bytes(&[1.0; 12])),
            ("fc1.bias", Dtype::F32, vec![3], f32_bytes(&[0.0, 1.0, 2.0])),
        ]
    }

    #[test]
    fn save_load_round_trip_is_exact() {
        let dir = temp_dir("rt");
        let m = model();
        let pre = serde_json::json!({"features": ["a", "b"], "mean": [0.25, -1.5]});
        save_checkpoint(&dir, &m, Some(&pre)).unwrap();
        let (back, pre_back) = load_checkpoint(&dir).unwrap();
        assert_eq!(back, m);
        assert_eq!(pre_back, Some(pre));
        let bits = |s: &StateDict| -> Vec<u32> {
            s.iter()
                .flat_map(|t| t.2.iter().map(|v| v.to_bits()))
                .collect()
        };
        assert_eq!(bits(&back.state_dict()), bits(&m.state_dict()));
        // Saving without preprocessing drops the stale file.
        save_checkpoint(&dir, &m, None).unwrap();
        assert_eq!(load_checkpoint(&dir).unwrap().1, None);
        let leftovers = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".tmp")
            })
            .count();
        assert_eq!(leftovers, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A save replaces the directory as one unit: all three files are the new save's, entries of other writers stay,
    /// a `preprocess.json` the new save lacks is gone, and nothing is left beside the directory.
    #[test]
    fn save_replaces_the_directory_as_one_unit() {
        let parent = temp_dir("unit");
        let dir = parent.join("ck");
        let pre = serde_json::json!({"mean": [1.0]});
        save_checkpoint(&dir, &model(), Some(&pre)).unwrap();
        write_atomic(&dir.join("report.json"), b"{}").unwrap();
        let other = ts::seeded_model(arch(), 4);
        assert_ne!(other, model());
        save_checkpoint(&dir, &other, None).unwrap();
        let (back, pre_back) = load_checkpoint(&dir).unwrap();
        assert_eq!(back, other);
        assert_eq!(pre_back, None);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [ARCH_FILE, WEIGHTS_FILE, "report.json"]);
        assert_eq!(std::fs::read(dir.join("report.json")).unwrap(), b"{}");
        let beside: Vec<_> = std::fs::read_dir(&parent)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(beside, ["ck"]);
        std::fs::remove_dir_all(&parent).unwrap();
    }

    #[test]
    fn imports_pytorch_named_tensors_in_pytorch_layout() {
        let dir = temp_dir("import");
        let arch_path = dir.join("net.toml");
        write_atomic(&arch_path, ts::toml(&arch()).as_bytes()).unwrap();
        let w = dir.join("w.safetensors");
        write_raw(&w, &torch_like_tensors());
        let m = import_safetensors(&w, &arch_path).unwrap();
        let crate::model::Layer::Conv1d(c) = &m.layers[0] else {
            panic!("expected conv")
        };
        assert_eq!(c.weight[[3, 1, 2]], 3.0 + 0.1 + 0.02);
        assert_eq!(c.weight[[0, 1, 0]], 0.1);
        assert_eq!(c.bias[1], -0.5);
        // Half-precision and double inputs are converted.
        let mut tensors = torch_like_tensors();
        tensors[3] = (
            "fc1.bias",
            Dtype::F16,
            vec![3],
            [0x0000u16, 0x3c00, 0xc000]
                .iter()
                .flat_map(|h| h.to_le_bytes())
                .collect(),
        );
        tensors[1] = (
            "conv1.bias",
            Dtype::BF16,
            vec![4],
            [0x3f00u16, 0xbf00, 0x3f80, 0x0000]
                .iter()
                .flat_map(|h| h.to_le_bytes())
                .collect(),
        );
        tensors[2] = (
            "fc1.weight",
            Dtype::F64,
            vec![3, 4],
            [0.25f64; 12].iter().flat_map(|h| h.to_le_bytes()).collect(),
        );
        write_raw(&w, &tensors);
        let m = import_safetensors(&w, &arch_path).unwrap();
        let sd = m.state_dict();
        assert_eq!(sd[1].2, vec![0.5, -0.5, 1.0, 0.0]);
        assert_eq!(sd[2].2, vec![0.25; 12]);
        assert_eq!(sd[3].2, vec![0.0, 1.0, -2.0]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn half_precision_conversion_is_exact() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn import_errors_name_the_problem() {
        let dir = temp_dir("errs");
        let arch_path = dir.join("net.toml");
        write_atomic(&arch_path, ts::toml(&arch()).as_bytes()).unwrap();
        let w = dir.join("w.safetensors");
        let err = |tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]| {
            write_raw(&w, tensors);
            import_safetensors(&w, &arch_path).unwrap_err()
        };
        let good = torch_like_tensors();

        // Missing and unexpected names are listed together.
        let mut t = good.clone();
        t.remove(1);
        t.push(("net.0.weight", Dtype::F32, vec![1], f32_bytes(&[0.0])));
        let e = err(&t);
        let msg = e.to_string();
        assert!(
            matches!(&e, CheckpointError::Weights { source: ModelError::TensorNames { missing, unexpected }, .. }
            if missing == &["conv1.bias"] && unexpected == &["net.0.weight"]),
            "{msg}"
        );
        assert!(
            msg.contains("w.safetensors") && msg.contains("missing tensors: conv1.bias"),
            "{msg}"
        );

        // A transposed dense weight reports expected and actual shapes.
        let mut t = good.clone();
        t[2].2 = vec![4, 3];
        let msg = err(&t).to_string();
        assert!(
            msg.contains("fc1.weight") && msg.contains("[3, 4]") && msg.contains("[4, 3]"),
            "{msg}"
        );

        // Integer tensors are rejected by dtype.
        let mut t = good.clone();
        t[3] = ("fc1.bias", Dtype::I32, vec![3], vec![0; 12]);
        assert!(matches!(err(&t), CheckpointError::Dtype { tensor, .. } if tensor == "fc1.bias"));

        // Non-finite values are rejected with the tensor name.
        let mut t = good.clone();
        t[3].3 = f32_bytes(&[0.0, f32::NAN, 0.0]);
        let msg = err(&t).to_string();
        assert!(msg.contains("fc1.bias") && msg.contains("index 1"), "{msg}");

        // Garbage and missing files.
        write_atomic(&w, b"not a safetensors file").unwrap();
        assert!(matches!(
            import_safetensors(&w, &arch_path),
            Err(CheckpointError::Safetensors { .. })
        ));
        assert!(matches!(
            import_safetensors(&dir.join("none"), &arch_path),
            Err(CheckpointError::Io { .. })
        ));
        assert!(matches!(
            import_safetensors(&w, &dir.join("none.toml")),
            Err(CheckpointError::Arch(_))
        ));

        // A corrupt preprocess.json is reported.
        let ck = dir.join("ck");
        save_checkpoint(&ck, &model(), None).unwrap();
        write_atomic(&ck.join(PREPROCESS_FILE), b"{").unwrap();
        assert!(matches!(
            load_checkpoint(&ck),
            Err(CheckpointError::Preprocess { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
