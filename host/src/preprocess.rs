//! `preprocess.json`: how a checkpoint's inputs are built from trades, checked against the architecture on read.
//!
//! Every tickq command that rebuilds a checkpoint's data (`quantize`, `eval`, `prune`, `sensitivity`,
//! `distill --teacher`, a pipeline reusing a stage) and `tickq import --preprocess` read the record through
//! [`Preprocess::read`], which refuses a record that does not fit the architecture before any data is built:
//!
//! - unknown keys, at any level (`deny_unknown_fields`), and missing ones;
//! - `feature_names` of another length than the architecture's `features`, or other names than the `dataset`
//!   settings compute, in another order;
//! - `label_names` of another length than the architecture's `classes`, or other names than the labels tickq
//!   computes ([`LABEL_NAMES`]);
//! - `normalizer.mean` and `normalizer.std` of another length than `features`, a mean that is not finite, or a
//!   standard deviation that is not finite or below [`Normalizer::MIN_STD`] (zero, negative or too small to
//!   divide by: [`Normalizer::fit`] never writes one);
//! - `dataset.time_steps` other than the architecture's, invalid `dataset` or `split` settings, and a
//!   `data_sha256` that is not 64 lowercase hex digits.
//!
//! Each refusal is a [`CheckpointError::InvalidPreprocess`] naming the file, the field and, for lists, the index.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::checkpoint::CheckpointError;
use crate::data::{DatasetConfig, LABEL_NAMES, Normalizer, SplitConfig};
use crate::model::Architecture;

/// How the data was turned into samples; stored in every checkpoint as
/// `preprocess.json` so later commands rebuild exactly the same inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    /// Feature names, in input order.
    pub feature_names: Vec<String>,
    /// Class names, by index.
    pub label_names: Vec<String>,
    /// Standardization fitted on the training split.
    pub normalizer: Normalizer,
    /// SHA-256 (hex) of the trade file the model was trained on.
    pub data_sha256: String,
    /// Dataset settings (features, labels, window).
    pub dataset: DatasetConfig,
    /// Split settings.
    pub split: SplitConfig,
}

/// What is wrong with one field of a `preprocess.json` (the field and index are in
/// [`CheckpointError::InvalidPreprocess`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PreprocessProblem {
    /// A list has another length than the architecture needs.
    #[error("{found} entries, but the architecture has {expected} {what}")]
    Length {
        /// Entries found.
        found: usize,
        /// Entries the architecture needs.
        expected: usize,
        /// What the architecture counts (`features`, `classes`).
        what: &'static str,
    },
    /// A number differs from the architecture's.
    #[error("{found}, but the architecture has {expected}")]
    Value {
        /// The value found.
        found: usize,
        /// The architecture's value.
        expected: usize,
    },
    /// A value is NaN or infinite.
    #[error("{value} is not a finite number")]
    NotFinite {
        /// The value found.
        value: f32,
    },
    /// A standard deviation is zero, negative or too small to divide by.
    #[error(
        "{value} is below {min:e}: a standard deviation must be finite and at least {min:e} (`Normalizer::fit` never writes a smaller one)"
    )]
    StdTooSmall {
        /// The value found.
        value: f32,
        /// The smallest valid standard deviation, [`Normalizer::MIN_STD`].
        min: f32,
    },
    /// A name differs from the one the data settings produce.
    #[error("`{found}`, but {source_of_names} give `{expected}` here")]
    Name {
        /// The name found (shortened, control characters escaped).
        found: String,
        /// The name expected.
        expected: String,
        /// Where the expected names come from.
        source_of_names: &'static str,
    },
    /// The data hash is not a SHA-256 in hex.
    #[error("`{found}` is not a SHA-256 in hex (64 digits 0-9 and a-f)")]
    Hash {
        /// The text found (shortened, control characters escaped).
        found: String,
    },
    /// The data or split settings are invalid.
    #[error("{0}")]
    Settings(String),
}

/// At most this many characters of a bad name or hash go into an error message.
const SHOWN_CHARS: usize = 80;

/// `text` for an error message: at most [`SHOWN_CHARS`] characters, control characters escaped.
fn shown(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(SHOWN_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().nth(SHOWN_CHARS).is_some() {
        out.push_str(&format!("... ({} bytes in all)", text.len()));
    }
    out
}

impl Preprocess {
    /// Parses `text` (the contents of the file `path`) and checks it against `arch` (see the module documentation).
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Preprocess`] for JSON that does not parse or has unknown or missing keys, and
    /// [`CheckpointError::InvalidPreprocess`] naming the first field that does not fit `arch`.
    pub fn parse(text: &str, path: &Path, arch: &Architecture) -> Result<Self, CheckpointError> {
        let pre: Preprocess =
            serde_json::from_str(text).map_err(|source| CheckpointError::Preprocess {
                path: path.to_path_buf(),
                source,
            })?;
        pre.check(arch).map_err(
            |(field, index, problem)| CheckpointError::InvalidPreprocess {
                path: path.to_path_buf(),
                field,
                index,
                problem: Box::new(problem),
            },
        )?;
        Ok(pre)
    }

    /// Reads the file `path` and checks it against `arch`, as [`Preprocess::parse`].
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Io`] when the file cannot be read (a missing file included), and the errors of
    /// [`Preprocess::parse`].
    pub fn read(path: &Path, arch: &Architecture) -> Result<Self, CheckpointError> {
        let text =
            crate::limits::read_text_limited(path, crate::limits::MAX_JSON_BYTES, "a JSON file")
                .map_err(|source| CheckpointError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
        Self::parse(&text, path, arch)
    }

    /// Checks the record against `arch`; on failure gives the field, the index within it and the problem.
    ///
    /// # Errors
    ///
    /// The first field that does not fit, in the order of the module documentation.
    pub fn check(&self, arch: &Architecture) -> Result<(), FieldProblem> {
        let features = arch.input.features;
        let length = |field, found: usize, expected: usize, what| {
            if found == expected {
                Ok(())
            } else {
                Err((
                    field,
                    None,
                    PreprocessProblem::Length {
                        found,
                        expected,
                        what,
                    },
                ))
            }
        };
        let names = |field, found: &[String], expected: &[String], source_of_names| match found
            .iter()
            .zip(expected)
            .position(|(f, e)| f != e)
        {
            None => Ok(()),
            Some(i) => Err((
                field,
                Some(i),
                PreprocessProblem::Name {
                    found: shown(&found[i]),
                    expected: expected[i].clone(),
                    source_of_names,
                },
            )),
        };
        let settings = |field, e: crate::data::DataError| {
            (field, None, PreprocessProblem::Settings(e.to_string()))
        };
        self.dataset
            .validate()
            .map_err(|e| settings("dataset", e))?;
        if self.dataset.time_steps != arch.input.time_steps {
            return Err((
                "dataset.time_steps",
                None,
                PreprocessProblem::Value {
                    found: self.dataset.time_steps,
                    expected: arch.input.time_steps,
                },
            ));
        }
        self.split
            .validate(self.dataset.labels.horizon, self.dataset.time_steps)
            .map_err(|e| settings("split", e))?;
        let computed = self.dataset.feature_names();
        length(
            "feature_names",
            self.feature_names.len(),
            features,
            "features",
        )?;
        length("dataset.features", computed.len(), features, "features")?;
        names(
            "feature_names",
            &self.feature_names,
            &computed,
            "the dataset.features settings",
        )?;
        length(
            "label_names",
            self.label_names.len(),
            arch.classes,
            "classes",
        )?;
        let labels: Vec<String> = LABEL_NAMES.iter().map(|s| (*s).to_string()).collect();
        names("label_names", &self.label_names, &labels, "tickq's labels")?;
        check_normalizer(&self.normalizer, features)?;
        let hash = &self.data_sha256;
        if hash.len() != 64 || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err((
                "data_sha256",
                None,
                PreprocessProblem::Hash { found: shown(hash) },
            ));
        }
        Ok(())
    }
}

/// One refusal of [`Preprocess::check`] or [`VectorInputs::check`]: the field, the index within it and the
/// problem.
pub type FieldProblem = (&'static str, Option<usize>, PreprocessProblem);

/// Checks a stored normalizer against the `features` the architecture takes: lengths, finite means, standard
/// deviations finite and at least [`Normalizer::MIN_STD`].
fn check_normalizer(norm: &Normalizer, features: usize) -> Result<(), FieldProblem> {
    for (field, values) in [
        ("normalizer.mean", &norm.mean),
        ("normalizer.std", &norm.std),
    ] {
        if values.len() != features {
            return Err((
                field,
                None,
                PreprocessProblem::Length {
                    found: values.len(),
                    expected: features,
                    what: "features",
                },
            ));
        }
    }
    if let Some((i, &value)) = norm.mean.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err((
            "normalizer.mean",
            Some(i),
            PreprocessProblem::NotFinite { value },
        ));
    }
    if let Some((i, &value)) = norm.std.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err((
            "normalizer.std",
            Some(i),
            PreprocessProblem::NotFinite { value },
        ));
    }
    if let Some((i, &value)) = norm
        .std
        .iter()
        .enumerate()
        .find(|(_, v)| **v < Normalizer::MIN_STD)
    {
        return Err((
            "normalizer.std",
            Some(i),
            PreprocessProblem::StdTooSmall {
                value,
                min: Normalizer::MIN_STD,
            },
        ));
    }
    Ok(())
}

/// The `kind` a `preprocess.json` of a model fed input vectors has (a trade record has no `kind`).
pub const VECTORS_KIND: &str = "vectors";

/// The input record of a model fed vectors from files instead of tickq's trade features (an imported PyTorch
/// model on its own features): the names of its `F` features (or `C` channels), their layout, the class
/// names and the standardization, and no trade pipeline at all. Stored as `preprocess.json` with
/// `"kind": "vectors"`; see docs/BYO_MODEL.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorInputs {
    /// Always [`VECTORS_KIND`].
    pub kind: String,
    /// One name per feature (time-major) or channel (channels-first), in input order.
    pub input_names: Vec<String>,
    /// How the model's users lay out one sample.
    pub layout: crate::data::vectors::InputLayout,
    /// Class names, by index.
    pub label_names: Vec<String>,
    /// The standardization the model's input goes through: identity (mean 0, std 1) for an imported model,
    /// whose users already give it what it takes.
    pub normalizer: Normalizer,
}

impl VectorInputs {
    /// The record of a model with these names and layout and the identity standardization.
    pub fn identity(
        input_names: Vec<String>,
        layout: crate::data::vectors::InputLayout,
        label_names: Vec<String>,
    ) -> Self {
        let features = input_names.len();
        Self {
            kind: VECTORS_KIND.to_string(),
            input_names,
            layout,
            label_names,
            normalizer: Normalizer {
                mean: vec![0.0; features],
                std: vec![1.0; features],
            },
        }
    }

    /// Whether the standardization is the identity (every mean 0, every std 1).
    pub fn is_identity(&self) -> bool {
        self.normalizer.mean.iter().all(|&m| m == 0.0)
            && self.normalizer.std.iter().all(|&s| s == 1.0)
    }

    /// Checks the record against `arch`: the kind, as many input names as the architecture's features (each
    /// non-empty, at most [`crate::limits::MAX_NAME_BYTES`] bytes, no two equal), as many label names as
    /// classes, and the normalizer as [`Preprocess::check`] checks it.
    ///
    /// # Errors
    ///
    /// The first field that does not fit.
    pub fn check(&self, arch: &Architecture) -> Result<(), FieldProblem> {
        if self.kind != VECTORS_KIND {
            return Err((
                "kind",
                None,
                PreprocessProblem::Name {
                    found: shown(&self.kind),
                    expected: VECTORS_KIND.into(),
                    source_of_names: "a vector-input record",
                },
            ));
        }
        let features = arch.input.features;
        for (field, names, expected, what) in [
            ("input_names", &self.input_names, features, "features"),
            ("label_names", &self.label_names, arch.classes, "classes"),
        ] {
            if names.len() != expected {
                return Err((
                    field,
                    None,
                    PreprocessProblem::Length {
                        found: names.len(),
                        expected,
                        what,
                    },
                ));
            }
            for (i, name) in names.iter().enumerate() {
                let bad = if name.is_empty() {
                    Some("an empty name".to_string())
                } else if name.len() > crate::limits::MAX_NAME_BYTES {
                    Some(format!(
                        "longer than {} bytes",
                        crate::limits::MAX_NAME_BYTES
                    ))
                } else if names[..i].contains(name) {
                    Some("a repeated name".to_string())
                } else {
                    None
                };
                if let Some(reason) = bad {
                    return Err((
                        field,
                        Some(i),
                        PreprocessProblem::Settings(format!("`{}`: {reason}", shown(name))),
                    ));
                }
            }
        }
        check_normalizer(&self.normalizer, features)
    }
}

/// What a checkpoint's `preprocess.json` says its input is: tickq's features of a trade (bars, quotes, book)
/// file, rebuilt by every later command, or vectors that every later command reads from a file.
#[derive(Debug, Clone, PartialEq)]
pub enum InputRecord {
    /// Features of market data ([`Preprocess`], boxed: it is several times larger than the other variant).
    Trades(Box<Preprocess>),
    /// Vectors from files ([`VectorInputs`]).
    Vectors(VectorInputs),
}

impl InputRecord {
    /// Parses `text` (the contents of the file `path`): a record with `"kind": "vectors"` as [`VectorInputs`],
    /// any other as [`Preprocess::parse`]; either is checked against `arch`.
    ///
    /// # Errors
    ///
    /// As [`Preprocess::parse`].
    pub fn parse(text: &str, path: &Path, arch: &Architecture) -> Result<Self, CheckpointError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|source| CheckpointError::Preprocess {
                path: path.to_path_buf(),
                source,
            })?;
        if value.get("kind").is_none() {
            return Preprocess::parse(text, path, arch).map(|p| Self::Trades(Box::new(p)));
        }
        let record: VectorInputs =
            serde_json::from_value(value).map_err(|source| CheckpointError::Preprocess {
                path: path.to_path_buf(),
                source,
            })?;
        record.check(arch).map_err(|(field, index, problem)| {
            CheckpointError::InvalidPreprocess {
                path: path.to_path_buf(),
                field,
                index,
                problem: Box::new(problem),
            }
        })?;
        Ok(Self::Vectors(record))
    }

    /// Reads the file `path` and checks it against `arch`, as [`InputRecord::parse`].
    ///
    /// # Errors
    ///
    /// As [`Preprocess::read`].
    pub fn read(path: &Path, arch: &Architecture) -> Result<Self, CheckpointError> {
        let text =
            crate::limits::read_text_limited(path, crate::limits::MAX_JSON_BYTES, "a JSON file")
                .map_err(|source| CheckpointError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
        Self::parse(&text, path, arch)
    }

    /// The class names.
    pub fn label_names(&self) -> &[String] {
        match self {
            Self::Trades(p) => &p.label_names,
            Self::Vectors(v) => &v.label_names,
        }
    }

    /// The input feature (channel) names.
    pub fn input_names(&self) -> &[String] {
        match self {
            Self::Trades(p) => &p.feature_names,
            Self::Vectors(v) => &v.input_names,
        }
    }

    /// The standardization.
    pub fn normalizer(&self) -> &Normalizer {
        match self {
            Self::Trades(p) => &p.normalizer,
            Self::Vectors(v) => &v.normalizer,
        }
    }

    /// The layout the model's users give samples in (always time-major for trade features).
    pub fn layout(&self) -> crate::data::vectors::InputLayout {
        match self {
            Self::Trades(_) => crate::data::vectors::InputLayout::TimeMajor,
            Self::Vectors(v) => v.layout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arch() -> Architecture {
        crate::test_support::arch("m", 3, [1, 29], &[crate::test_support::dense(3)])
    }

    fn good() -> Preprocess {
        let dataset = DatasetConfig::default();
        let features = dataset.features.feature_names();
        Preprocess {
            normalizer: Normalizer {
                mean: vec![0.5; features.len()],
                std: vec![2.0; features.len()],
            },
            feature_names: features,
            label_names: LABEL_NAMES.iter().map(|s| (*s).to_string()).collect(),
            data_sha256: "ab".repeat(32),
            dataset,
            split: SplitConfig::default(),
        }
    }

    /// The error `edit` of the good record gives, as text.
    fn refusal(edit: impl FnOnce(&mut Preprocess)) -> CheckpointError {
        let mut pre = good();
        edit(&mut pre);
        let text = serde_json::to_string(&pre).unwrap();
        Preprocess::parse(&text, Path::new("ck/preprocess.json"), &arch()).unwrap_err()
    }

    fn field_of(e: &CheckpointError) -> (&'static str, Option<usize>) {
        match e {
            CheckpointError::InvalidPreprocess { field, index, .. } => (*field, *index),
            other => panic!("not an InvalidPreprocess: {other}"),
        }
    }

    #[test]
    fn a_good_record_reads_back_equal() {
        let text = serde_json::to_string_pretty(&good()).unwrap();
        let back = Preprocess::parse(&text, Path::new("p.json"), &arch()).unwrap();
        assert_eq!(back, good());
    }

    #[test]
    fn each_field_that_does_not_fit_is_named_with_its_index() {
        let e = refusal(|p| p.normalizer.std.truncate(3));
        assert_eq!(field_of(&e), ("normalizer.std", None));
        assert_eq!(
            e.to_string(),
            "ck/preprocess.json: normalizer.std: 3 entries, but the architecture has 29 features"
        );
        let e = refusal(|p| p.normalizer.mean.push(0.0));
        assert_eq!(field_of(&e), ("normalizer.mean", None));
        let e = refusal(|p| p.normalizer.std[4] = -1.0);
        assert_eq!(field_of(&e), ("normalizer.std", Some(4)));
        assert!(
            e.to_string()
                .starts_with("ck/preprocess.json: normalizer.std[4]: -1 is below 1e-6"),
            "{e}"
        );
        let e = refusal(|p| p.normalizer.std[0] = 0.0);
        assert_eq!(field_of(&e), ("normalizer.std", Some(0)));
        let e = refusal(|p| p.normalizer.std[28] = 1e-30);
        assert_eq!(field_of(&e), ("normalizer.std", Some(28)));
        // JSON has no NaN or infinity: serde writes null, which does not parse as a number, and a number beyond
        // f32's range reads as infinity.
        let e = refusal(|p| p.normalizer.mean[1] = f32::NAN);
        assert!(
            matches!(&e, CheckpointError::Preprocess { source, .. } if source.to_string().contains("null")),
            "{e}"
        );
        for (field, index) in [("mean", 1), ("std", 2)] {
            let mut value = serde_json::to_value(good()).unwrap();
            value["normalizer"][field][index] = serde_json::json!(1e39);
            let e =
                Preprocess::parse(&value.to_string(), Path::new("p.json"), &arch()).unwrap_err();
            assert!(
                e.to_string().starts_with(&format!(
                    "p.json: normalizer.{field}[{index}]: inf is not a finite number"
                )),
                "{e}"
            );
        }
        let e = refusal(|p| {
            p.label_names.pop();
        });
        assert_eq!(field_of(&e), ("label_names", None));
        assert!(
            e.to_string()
                .contains("2 entries, but the architecture has 3 classes")
        );
        let e = refusal(|p| p.label_names[2] = "rise".into());
        assert_eq!(field_of(&e), ("label_names", Some(2)));
        let e = refusal(|p| p.feature_names.swap(0, 1));
        assert_eq!(field_of(&e), ("feature_names", Some(0)));
        assert!(
            e.to_string()
                .contains("`ret_5t`, but the dataset.features settings give `ret_1t` here"),
            "{e}"
        );
        let e = refusal(|p| p.feature_names.truncate(28));
        assert_eq!(field_of(&e), ("feature_names", None));
        let e = refusal(|p| {
            p.dataset.features.return_lags_trades.pop();
            p.feature_names.remove(3);
        });
        assert_eq!(field_of(&e), ("feature_names", None));
        let e = refusal(|p| p.dataset.time_steps = 8);
        assert_eq!(field_of(&e), ("dataset.time_steps", None));
        assert!(
            e.to_string().contains("8, but the architecture has 1"),
            "{e}"
        );
        let e = refusal(|p| p.dataset.labels.horizon = 0);
        assert_eq!(field_of(&e), ("dataset", None));
        let e = refusal(|p| p.split.train = 0.95);
        assert_eq!(field_of(&e), ("split", None));
        let e = refusal(|p| p.split.gap = 3);
        assert_eq!(field_of(&e), ("split", None));
        let e = refusal(|p| p.data_sha256 = "AB".repeat(32));
        assert_eq!(field_of(&e), ("data_sha256", None));
    }

    #[test]
    fn long_or_odd_text_is_shortened_and_escaped() {
        let e = refusal(|p| p.data_sha256 = "x".repeat(10_000_000));
        let msg = e.to_string();
        assert!(
            msg.len() < 300 && msg.contains("10000000 bytes in all"),
            "{msg}"
        );
        let e = refusal(|p| p.feature_names[0] = "a\0b\nc".into());
        assert!(e.to_string().contains(r"`a\0b\nc`"), "{e}");
    }

    #[test]
    fn unknown_and_missing_keys_are_refused() {
        let mut value = serde_json::to_value(good()).unwrap();
        value["extra"] = serde_json::json!(1);
        let e = Preprocess::parse(&value.to_string(), Path::new("p.json"), &arch()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("p.json: invalid JSON: unknown field `extra`"),
            "{e}"
        );
        let mut value = serde_json::to_value(good()).unwrap();
        value["normalizer"]["scale"] = serde_json::json!([1.0]);
        let e = Preprocess::parse(&value.to_string(), Path::new("p.json"), &arch()).unwrap_err();
        assert!(e.to_string().contains("unknown field `scale`"), "{e}");
        let mut value = serde_json::to_value(good()).unwrap();
        value.as_object_mut().unwrap().remove("normalizer");
        let e = Preprocess::parse(&value.to_string(), Path::new("p.json"), &arch()).unwrap_err();
        assert!(e.to_string().contains("missing field `normalizer`"), "{e}");
    }

    #[test]
    fn a_vector_record_reads_back_and_is_checked() {
        use crate::data::vectors::InputLayout;
        let arch = crate::test_support::arch(
            "m",
            3,
            [4, 2],
            &[crate::test_support::Flatten, crate::test_support::dense(3)],
        );
        let good = VectorInputs::identity(
            vec!["a".into(), "b".into()],
            InputLayout::ChannelsFirst,
            vec!["x".into(), "y".into(), "z".into()],
        );
        let text = serde_json::to_string_pretty(&good).unwrap();
        assert!(text.contains("\"layout\": \"channels-first\""), "{text}");
        let back = InputRecord::parse(&text, Path::new("p.json"), &arch).unwrap();
        assert_eq!(back, InputRecord::Vectors(good.clone()));
        assert!(good.is_identity());
        // A trade record (no `kind`) still reads as one.
        let trade = serde_json::to_string(&self::good()).unwrap();
        let arch29 = self::arch();
        assert!(matches!(
            InputRecord::parse(&trade, Path::new("p.json"), &arch29).unwrap(),
            InputRecord::Trades(_)
        ));
        let refusal = |edit: &dyn Fn(&mut VectorInputs)| {
            let mut r = good.clone();
            edit(&mut r);
            let text = serde_json::to_string(&r).unwrap();
            InputRecord::parse(&text, Path::new("ck/preprocess.json"), &arch)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            refusal(&|r| r.input_names.push("c".into())),
            "ck/preprocess.json: input_names: 3 entries, but the architecture has 2 features"
        );
        assert_eq!(
            refusal(&|r| r.input_names[1] = "a".into()),
            "ck/preprocess.json: input_names[1]: `a`: a repeated name"
        );
        assert_eq!(
            refusal(&|r| r.label_names.pop().map(drop).unwrap_or(())),
            "ck/preprocess.json: label_names: 2 entries, but the architecture has 3 classes"
        );
        assert!(
            refusal(&|r| r.normalizer.std[0] = 0.0)
                .starts_with("ck/preprocess.json: normalizer.std[0]: 0 is below 1e-6"),
        );
        let mut value = serde_json::to_value(&good).unwrap();
        value["layout"] = serde_json::json!("sideways");
        let e = InputRecord::parse(&value.to_string(), Path::new("p.json"), &arch).unwrap_err();
        assert!(e.to_string().contains("unknown variant `sideways`"), "{e}");
    }
}
