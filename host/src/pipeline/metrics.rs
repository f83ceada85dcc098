//! Per-stage metrics (`metrics.json`) and the comparison report (`comparison.md`, `comparison.json`).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// What one stage measured, on the test split; written as the stage's `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageMetrics {
    /// The stage's name.
    pub stage: String,
    /// Its kind.
    pub kind: String,
    /// The stage it read from.
    pub from: Option<String>,
    /// Test accuracy (f32 model, or the blob through tickq-core).
    pub accuracy: f64,
    /// Test macro-F1.
    pub macro_f1: f64,
    /// Parameters (weights and biases).
    pub parameters: usize,
    /// Parameters that are not exactly zero (biases always count as non-zero).
    pub nonzero_parameters: usize,
    /// Non-zero weights over all Dense and Conv1d weights (1 = dense).
    pub nonzero_fraction: f64,
    /// Model bytes: the blob size for quantize and export stages, 4 bytes per parameter for f32 stages.
    pub size_bytes: usize,
    /// Blob size (quantize and export stages).
    pub blob_bytes: Option<usize>,
    /// f32 bytes of the pipeline's trained model this stage descends from, divided by `size_bytes`.
    pub compression_ratio: f64,
    /// f32 bytes of that trained model.
    pub reference_f32_bytes: usize,
    /// Agreement of the blob's argmax with its f32 model's (quantize stages).
    pub agreement: Option<f64>,
    /// Single-sample latency median through tickq-core, ns (quantize stages).
    pub latency_p50_ns: Option<f64>,
    /// Single-sample latency 99th percentile through tickq-core, ns (quantize stages).
    pub latency_p99_ns: Option<f64>,
    /// Wall time of the stage, seconds.
    pub wall_seconds: f64,
    /// Peak resident memory of the process when the stage finished (it only grows within a run).
    pub peak_rss_bytes: Option<u64>,
}

/// One row of the comparison: a stage's metrics and whether this run recomputed it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComparisonRow {
    /// The metrics.
    #[serde(flatten)]
    pub metrics: StageMetrics,
    /// `false` when the stage was skipped (unchanged) and its metrics come from an earlier run.
    pub ran: bool,
}

/// `comparison.json`: one row per stage, in config order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    /// tickq version.
    pub tickq_version: String,
    /// The config file.
    pub config: String,
    /// The trade file.
    pub data_source: String,
    /// Its SHA-256.
    pub data_sha256: String,
    /// Test samples the metrics use.
    pub test_samples: usize,
    /// The rows.
    pub stages: Vec<ComparisonRow>,
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "-".to_string(), f)
}

impl Comparison {
    /// The Markdown report, with the two charts.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# tickq pipeline comparison\n");
        let _ = writeln!(
            s,
            "Config `{}`; data `{}` (sha256 `{}`); metrics on the {} test samples; tickq {}.\n",
            self.config,
            self.data_source,
            &self.data_sha256[..16.min(self.data_sha256.len())],
            self.test_samples,
            self.tickq_version
        );
        let _ = writeln!(
            s,
            "| stage | kind | from | accuracy | macro-F1 | agreement with f32 | parameters | non-zero | non-zero % | bytes | compression | p50 (ns) | p99 (ns) | wall (s) | peak RSS (MiB) | this run |"
        );
        let _ = writeln!(
            s,
            "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
        );
        for r in &self.stages {
            let m = &r.metrics;
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.2} % | {:.4} | {} | {} | {} | {:.1} % | {}{} | {:.2}x | {} | {} | {:.2} | {} | {} |",
                m.stage,
                m.kind,
                m.from.as_deref().unwrap_or("-"),
                100.0 * m.accuracy,
                m.macro_f1,
                opt(m.agreement, |v| format!("{:.2} %", 100.0 * v)),
                m.parameters,
                m.nonzero_parameters,
                100.0 * m.nonzero_fraction,
                m.size_bytes,
                if m.blob_bytes.is_some() {
                    " (blob)"
                } else {
                    " (f32)"
                },
                m.compression_ratio,
                opt(m.latency_p50_ns, |v| format!("{v:.0}")),
                opt(m.latency_p99_ns, |v| format!("{v:.0}")),
                m.wall_seconds,
                opt(m.peak_rss_bytes, |v| format!(
                    "{:.1}",
                    v as f64 / (1024.0 * 1024.0)
                )),
                if r.ran { "ran" } else { "skipped (unchanged)" }
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "Bytes are the blob size for quantize and export stages and 4 bytes per parameter for f32 stages."
        );
        let _ = writeln!(
            s,
            "Compression is the f32 size of the trained model a stage descends from over the stage's bytes."
        );
        let _ = writeln!(
            s,
            "Latency is one sample at a time through `tickq_core::Session::run` (quantize stages only)."
        );
        let _ = writeln!(
            s,
            "Wall time and peak RSS are those of the run that computed the stage; peak RSS is the process's high-water mark when the stage finished.\n"
        );
        let _ = writeln!(s, "## Accuracy against sparsity\n");
        let _ = writeln!(
            s,
            "![accuracy against sparsity](accuracy_vs_sparsity.svg)\n"
        );
        let _ = writeln!(s, "## Accuracy against size\n");
        let _ = writeln!(s, "![accuracy against size](accuracy_vs_size.svg)");
        s
    }
}
