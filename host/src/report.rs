//! The evaluation report, written as `report.json` (stable keys, for scripts)
//! and `report.md` (for people).
//!
//! Stable JSON keys (dotted paths): `float.accuracy`, `float.size_bytes`,
//! `int8.accuracy`, `int8.blob_bytes`, `int8.agreement`, `compression_ratio`,
//! `baseline.majority_accuracy`, `int8.arena_bytes`, `latency_ns.p50`,
//! `latency_ns.p99`, `latency_ns.p999`, `warnings` (a list of label warnings, each with its `kind`).

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::LabelWarning;
use crate::eval::{LatencyStats, Metrics};
use crate::fsutil::write_atomic;
use crate::quant::TensorRange;

/// Where the evaluated data came from and how it was cut.
#[derive(Debug, Clone, Serialize)]
pub struct DataSummary {
    /// The trade file as given on the command line (or the bundled default).
    pub source: String,
    /// SHA-256 of the trade file, hex.
    pub sha256: String,
    /// Number of trades read.
    pub trades: usize,
    /// Features per time step.
    pub features: usize,
    /// Time steps per sample.
    pub time_steps: usize,
    /// Samples in the train, validation and test splits.
    pub samples: [usize; 3],
    /// Label names, by class index.
    pub labels: Vec<String>,
    /// Samples per class in the test split.
    pub test_class_counts: Vec<usize>,
}

/// The f32 model's results.
#[derive(Debug, Clone, Serialize)]
pub struct FloatSection {
    /// Test accuracy.
    pub accuracy: f64,
    /// Test macro-F1.
    pub macro_f1: f64,
    /// Bytes of f32 parameters (4 per weight and bias).
    pub size_bytes: usize,
    /// Number of parameters.
    pub parameters: usize,
    /// Full test metrics.
    pub metrics: Metrics,
}

/// The int8 blob's results, computed by tickq-core itself.
#[derive(Debug, Clone, Serialize)]
pub struct Int8Section {
    /// Test accuracy.
    pub accuracy: f64,
    /// Test macro-F1.
    pub macro_f1: f64,
    /// Total blob size in bytes (weights, tables, metadata, header).
    pub blob_bytes: usize,
    /// Blob bytes as a fraction of the f32 parameter bytes.
    pub blob_fraction_of_float: f64,
    /// Fraction of test samples where the int8 argmax equals the f32 argmax.
    pub agreement: f64,
    /// Exact arena bytes one inference needs.
    pub arena_bytes: usize,
    /// CRC-32 recorded in (and checked against) the blob.
    pub crc32: String,
    /// Full test metrics.
    pub metrics: Metrics,
}

/// The majority-class baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    /// Index of the most frequent training class.
    pub majority_class: usize,
    /// Test accuracy of always predicting it.
    pub majority_accuracy: f64,
}

/// Quantization settings used for the blob.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuantSummary {
    /// Backend name.
    pub backend: String,
    /// Activation dtype.
    pub dtype: String,
    /// Observer used for activation ranges.
    pub observer: String,
    /// Calibration samples used.
    pub calibration_samples: usize,
}

/// One calibrated tensor range, for the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RangeRow {
    /// Tensor name.
    pub tensor: String,
    /// The f32 layer whose output this is (`None`: the model input).
    #[serde(default)]
    pub layer: Option<usize>,
    /// Observed minimum and maximum.
    pub observed: [f32; 2],
    /// Encoded range.
    pub calibrated: [f32; 2],
    /// Scale.
    pub scale: f32,
    /// Zero point.
    pub zero_point: i8,
    /// Fraction of the calibration values the encoding clips.
    pub clipped_calibration: f64,
    /// Fraction of the test-split values the encoding clips (filled in by evaluation).
    #[serde(default)]
    pub clipped_test: Option<f64>,
}

impl From<&TensorRange> for RangeRow {
    fn from(r: &TensorRange) -> Self {
        Self {
            tensor: r.tensor.clone(),
            layer: r.layer,
            observed: [r.observed.0, r.observed.1],
            calibrated: [r.calibrated.min, r.calibrated.max],
            scale: r.scale,
            zero_point: r.zero_point,
            clipped_calibration: r.clipped_fraction,
            clipped_test: None,
        }
    }
}

/// The whole evaluation report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Model name.
    pub model: String,
    /// tickq version that wrote the report.
    pub tickq_version: String,
    /// Data provenance and split sizes.
    pub data: DataSummary,
    /// The f32 model.
    pub float: FloatSection,
    /// The int8 blob run through tickq-core.
    pub int8: Int8Section,
    /// `float.size_bytes / int8.blob_bytes`.
    pub compression_ratio: f64,
    /// Majority-class baseline.
    pub baseline: Baseline,
    /// Single-sample tick-to-signal latency through tickq-core, in ns.
    pub latency_ns: LatencyStats,
    /// Peak resident memory of the process that wrote the report.
    pub peak_rss_bytes: Option<u64>,
    /// Quantization settings.
    pub quantization: QuantSummary,
    /// Calibrated ranges per quantized tensor.
    pub ranges: Vec<RangeRow>,
    /// What is suspect about the class shares of the splits (an empty class, a majority above 80 %, train and
    /// test shares more than 10 points apart); empty when nothing is.
    pub warnings: Vec<LabelWarning>,
}

impl Report {
    /// Renders the report as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let pct = |x: f64| format!("{:.2} %", 100.0 * x);
        let _ = writeln!(s, "# tickq report: {}\n", self.model);
        let _ = writeln!(
            s,
            "Data: `{}` (sha256 `{}`), {} trades, {} features x {} time steps; samples train / validation / test: {} / {} / {}.\n",
            self.data.source,
            &self.data.sha256[..16.min(self.data.sha256.len())],
            self.data.trades,
            self.data.features,
            self.data.time_steps,
            self.data.samples[0],
            self.data.samples[1],
            self.data.samples[2]
        );
        if !self.warnings.is_empty() {
            let _ = writeln!(s, "## Warnings\n");
            for w in &self.warnings {
                let _ = writeln!(s, "- {w}");
            }
            let _ = writeln!(s);
        }
        let _ = writeln!(s, "## Summary\n");
        let _ = writeln!(s, "| metric | f32 | int8 (tickq-core) |");
        let _ = writeln!(s, "| --- | ---: | ---: |");
        let _ = writeln!(
            s,
            "| test accuracy | {} | {} |",
            pct(self.float.accuracy),
            pct(self.int8.accuracy)
        );
        let _ = writeln!(
            s,
            "| macro F1 | {:.4} | {:.4} |",
            self.float.macro_f1, self.int8.macro_f1
        );
        let _ = writeln!(
            s,
            "| size (bytes) | {} | {} |",
            self.float.size_bytes, self.int8.blob_bytes
        );
        let _ = writeln!(s);
        let _ = writeln!(s, "| measure | value |");
        let _ = writeln!(s, "| --- | ---: |");
        let _ = writeln!(
            s,
            "| majority-class baseline accuracy (class `{}`) | {} |",
            self.data
                .labels
                .get(self.baseline.majority_class)
                .map_or("?", String::as_str),
            pct(self.baseline.majority_accuracy)
        );
        let _ = writeln!(
            s,
            "| f32 / int8 argmax agreement | {} |",
            pct(self.int8.agreement)
        );
        let _ = writeln!(
            s,
            "| compression ratio (f32 bytes / blob bytes) | {:.2}x |",
            self.compression_ratio
        );
        let _ = writeln!(
            s,
            "| blob as a fraction of f32 bytes | {} |",
            pct(self.int8.blob_fraction_of_float)
        );
        let _ = writeln!(s, "| arena bytes | {} |", self.int8.arena_bytes);
        let _ = writeln!(s, "| parameters | {} |", self.float.parameters);
        let _ = writeln!(s, "| blob CRC-32 | `{}` |", self.int8.crc32);
        let _ = writeln!(
            s,
            "| latency p50 / p99 / p99.9 (ns, {} single-sample calls) | {:.0} / {:.0} / {:.0} |",
            self.latency_ns.calls, self.latency_ns.p50, self.latency_ns.p99, self.latency_ns.p999
        );
        if let Some(rss) = self.peak_rss_bytes {
            let _ = writeln!(
                s,
                "| peak RSS | {:.1} MiB |",
                rss as f64 / (1024.0 * 1024.0)
            );
        }
        let _ = writeln!(
            s,
            "\nLatency is raw f32 features in, argmax signal out, through `tickq_core::Session::run`, timed per call; the timer's own cost ({:.0} ns) is subtracted.\n",
            self.latency_ns.timer_overhead
        );
        for (title, m) in [
            ("f32 model", &self.float.metrics),
            ("int8 blob (tickq-core)", &self.int8.metrics),
        ] {
            let _ = writeln!(s, "## Per-class results: {title}\n");
            let _ = writeln!(s, "| class | precision | recall | F1 | support |");
            let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: |");
            for c in &m.per_class {
                let _ = writeln!(
                    s,
                    "| {} | {:.4} | {:.4} | {:.4} | {} |",
                    c.label, c.precision, c.recall, c.f1, c.support
                );
            }
            let _ = writeln!(
                s,
                "\nConfusion matrix (rows: true class, columns: predicted):\n"
            );
            let _ = write!(s, "| true \\ predicted |");
            for l in &self.data.labels {
                let _ = write!(s, " {l} |");
            }
            let _ = write!(s, "\n| --- |");
            for _ in &self.data.labels {
                let _ = write!(s, " ---: |");
            }
            let _ = writeln!(s);
            for (l, row) in self.data.labels.iter().zip(&m.confusion) {
                let _ = write!(s, "| {l} |");
                for v in row {
                    let _ = write!(s, " {v} |");
                }
                let _ = writeln!(s);
            }
            let _ = writeln!(s);
        }
        let _ = writeln!(s, "## Quantization\n");
        let _ = writeln!(
            s,
            "Backend `{}`, dtype `{}`, observer {}, {} calibration samples from the training split.\n",
            self.quantization.backend,
            self.quantization.dtype,
            self.quantization.observer,
            self.quantization.calibration_samples
        );
        let _ = writeln!(
            s,
            "| tensor | observed min | observed max | encoded min | encoded max | scale | zero point |"
        );
        let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        for r in &self.ranges {
            let _ = writeln!(
                s,
                "| {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.6} | {} |",
                r.tensor,
                r.observed[0],
                r.observed[1],
                r.calibrated[0],
                r.calibrated[1],
                r.scale,
                r.zero_point
            );
        }
        s
    }

    /// Writes `report.json` and `report.md` into `dir`, atomically.
    ///
    /// # Errors
    ///
    /// The I/O error of the file that could not be written.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        write_atomic(&dir.join("report.json"), json.as_bytes())?;
        write_atomic(&dir.join("report.md"), self.to_markdown().as_bytes())
    }
}
