//! Predictions on input vectors (`tickq run`): the f32 logits of a checkpoint, or the int8 logits, dequantized
//! scores and signals of a blob through tickq-core, with the accuracy against labels and the agreement and
//! error against reference logits.

use std::path::Path;

use ndarray::{Array2, ArrayView2};
use serde::Serialize;

use super::PipelineError;
use crate::data::Normalizer;
use crate::data::vectors::{VectorError, npy};
use crate::fsutil::write_atomic;
use crate::model::Sequential;

/// What a model gave for each input row.
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    /// The class of each row (the argmax of the logits, the blob's signal).
    pub signals: Vec<usize>,
    /// `[rows, classes]`: the f32 logits of a checkpoint, the dequantized scores of a blob.
    pub logits: Array2<f32>,
    /// `[rows, classes]`: a blob's int8 logits; `None` for a checkpoint.
    pub int8: Option<Array2<i8>>,
}

/// The f32 model's logits for raw input rows `x` (`T*F` time-major values each), standardized with
/// `normalizer` first.
pub fn predict_float(
    model: &Sequential,
    normalizer: &Normalizer,
    x: ArrayView2<'_, f32>,
) -> Predictions {
    let logits = model.forward(normalizer.transform(x).view());
    let signals = logits
        .rows()
        .into_iter()
        .map(|r| argmax(r.iter().copied()))
        .collect();
    Predictions {
        signals,
        logits,
        int8: None,
    }
}

/// The blob's int8 logits, dequantized scores and signals for raw input rows `x`, through tickq-core's
/// `Session::run` (the blob standardizes and quantizes the inputs itself).
///
/// # Errors
///
/// [`PipelineError::BlobInputs`] naming `path` when a row has another width than the blob takes.
pub fn predict_blob(
    model: &tickq_core::Model<'_>,
    path: &Path,
    x: ArrayView2<'_, f32>,
) -> Result<Predictions, PipelineError> {
    if model.input_len() != x.ncols() {
        return Err(PipelineError::BlobInputs {
            blob: path.to_path_buf(),
            inputs: model.input_len(),
            data_inputs: x.ncols(),
        });
    }
    let classes = model.classes();
    let mut arena = vec![0u8; model.arena_bytes()];
    let Ok(mut session) = tickq_core::Session::new(model, &mut arena) else {
        unreachable!("the arena has exactly arena_bytes()")
    };
    let rows = x.nrows();
    let mut signals = Vec::with_capacity(rows);
    let mut logits = Array2::<f32>::zeros((rows, classes));
    let mut int8 = Array2::<i8>::zeros((rows, classes));
    let mut row_buf = vec![0f32; x.ncols()];
    let mut scores = vec![0f32; classes];
    for (r, row) in x.rows().into_iter().enumerate() {
        for (dst, src) in row_buf.iter_mut().zip(row.iter()) {
            *dst = *src;
        }
        let p = session.run(&row_buf);
        signals.push(p.signal());
        p.scores(&mut scores);
        for (c, (&q, &s)) in p.logits().iter().zip(&scores).enumerate() {
            int8[[r, c]] = q;
            logits[[r, c]] = s;
        }
    }
    Ok(Predictions {
        signals,
        logits,
        int8: Some(int8),
    })
}

/// The first index of the largest value (as the core's argmax).
fn argmax(values: impl Iterator<Item = f32>) -> usize {
    let mut best = (0usize, f32::NEG_INFINITY);
    for (i, v) in values.enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best.0
}

/// Accuracy against labels, with the majority-class baseline of the same labels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccuracySummary {
    /// The share of rows whose signal is the label.
    pub accuracy: f64,
    /// The most common label.
    pub majority_class: usize,
    /// Its name.
    pub majority_label: String,
    /// Its share of the rows: the accuracy of always saying it.
    pub majority_accuracy: f64,
}

/// Agreement with and distance from reference logits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ReferenceSummary {
    /// The share of rows whose signal is the reference's argmax.
    pub agreement: f64,
    /// The largest absolute difference between a logit (a blob's dequantized score) and the reference.
    pub max_abs_error: f64,
    /// The mean absolute difference over every logit.
    pub mean_abs_error: f64,
}

/// What `tickq run` prints (and `--json` writes).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// Rows predicted.
    pub rows: usize,
    /// `checkpoint (f32)` or `blob (int8 through tickq-core)`.
    pub model: String,
    /// Against the labels, when there were labels.
    pub labels: Option<AccuracySummary>,
    /// Against the reference logits, when there were some.
    pub reference: Option<ReferenceSummary>,
}

impl RunSummary {
    /// The summary as lines of text.
    pub fn to_text(&self) -> String {
        let mut out = format!("{} rows through the {}", self.rows, self.model);
        if let Some(a) = &self.labels {
            out.push_str(&format!(
                "\naccuracy {:.2} % (majority-class baseline {:.2} %, always `{}`)",
                100.0 * a.accuracy,
                100.0 * a.majority_accuracy,
                a.majority_label
            ));
        }
        if let Some(r) = &self.reference {
            out.push_str(&format!(
                "\nagreement with the reference argmax {:.2} %, max abs error {:.3e}, mean abs error {:.3e}",
                100.0 * r.agreement,
                r.max_abs_error,
                r.mean_abs_error
            ));
        }
        out
    }
}

/// Compares `predictions` with `labels` and `reference` logits (each of the predictions' rows, the reference
/// of `reference_path`); `label_names` name the classes.
///
/// # Errors
///
/// [`VectorError::Rows`] when the labels or the reference have another number of rows.
pub fn summarize_run(
    model: &str,
    label_names: &[String],
    predictions: &Predictions,
    labels: Option<(&Path, &[u8])>,
    reference: Option<(&Path, ArrayView2<'_, f32>)>,
) -> Result<RunSummary, PipelineError> {
    let rows = predictions.signals.len();
    let classes = predictions.logits.ncols();
    let rows_error = |path: &Path, found, what| VectorError::Rows {
        path: path.to_path_buf(),
        found,
        expected: rows,
        what,
    };
    let labels = match labels {
        None => None,
        Some((path, y)) if y.len() != rows => {
            return Err(rows_error(path, y.len(), "labels").into());
        }
        Some((_, y)) => {
            let (majority_class, majority_accuracy) = crate::eval::majority_baseline(y, y, classes);
            let hits = predictions
                .signals
                .iter()
                .zip(y)
                .filter(|(p, y)| **p == usize::from(**y))
                .count();
            Some(AccuracySummary {
                accuracy: hits as f64 / rows.max(1) as f64,
                majority_label: label_names
                    .get(majority_class)
                    .cloned()
                    .unwrap_or_else(|| majority_class.to_string()),
                majority_class,
                majority_accuracy,
            })
        }
    };
    let reference = match reference {
        None => None,
        Some((path, r)) if r.nrows() != rows => {
            return Err(rows_error(path, r.nrows(), "reference rows").into());
        }
        Some((_, r)) => {
            let reference_class: Vec<usize> = r
                .rows()
                .into_iter()
                .map(|row| argmax(row.iter().copied()))
                .collect();
            let (mut max, mut sum) = (0f64, 0f64);
            for (a, b) in predictions.logits.iter().zip(r.iter()) {
                let d = (f64::from(*a) - f64::from(*b)).abs();
                max = max.max(d);
                sum += d;
            }
            Some(ReferenceSummary {
                agreement: crate::eval::agreement(&predictions.signals, &reference_class),
                max_abs_error: max,
                mean_abs_error: sum / (rows * classes).max(1) as f64,
            })
        }
    };
    Ok(RunSummary {
        rows,
        model: model.to_string(),
        labels,
        reference,
    })
}

/// Writes `predictions` to `path`, atomically: a `.npy` file holds the `[rows, classes]` float32 logits (a
/// blob's dequantized scores); any other name gets CSV with a header: `signal`, then `logit_NAME` per class
/// (a blob: `int8_NAME` and `score_NAME`).
///
/// # Errors
///
/// The I/O error.
pub fn write_predictions(
    path: &Path,
    predictions: &Predictions,
    label_names: &[String],
) -> Result<(), PipelineError> {
    let (rows, classes) = predictions.logits.dim();
    let is_npy = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    let bytes = if is_npy {
        let values: Vec<f32> = predictions.logits.iter().copied().collect();
        npy::to_bytes_f32(&[rows, classes], &values)
    } else {
        let name = |c: usize| {
            label_names
                .get(c)
                .cloned()
                .unwrap_or_else(|| c.to_string())
                .replace([',', '"', '\n', '\r'], "_")
        };
        let mut header = vec!["signal".to_string()];
        match &predictions.int8 {
            None => header.extend((0..classes).map(|c| format!("logit_{}", name(c)))),
            Some(_) => {
                header.extend((0..classes).map(|c| format!("int8_{}", name(c))));
                header.extend((0..classes).map(|c| format!("score_{}", name(c))));
            }
        }
        let mut text = header.join(",");
        text.push('\n');
        for r in 0..rows {
            text.push_str(&predictions.signals[r].to_string());
            if let Some(q) = &predictions.int8 {
                for c in 0..classes {
                    text.push_str(&format!(",{}", q[[r, c]]));
                }
            }
            for c in 0..classes {
                text.push_str(&format!(",{}", predictions.logits[[r, c]]));
            }
            text.push('\n');
        }
        text.into_bytes()
    };
    write_atomic(path, &bytes)?;
    Ok(())
}
