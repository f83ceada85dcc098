//! Evaluation: classification metrics, int8 inference through tickq-core itself,
//! single-sample latency percentiles and peak memory.

use std::time::Instant;

use ndarray::ArrayView2;
use serde::Serialize;
use tickq_core::{Model, Session};

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClassMetrics {
    /// Class name.
    pub label: String,
    /// Of the samples predicted as this class, the fraction that are.
    pub precision: f64,
    /// Of the samples of this class, the fraction predicted as it.
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub f1: f64,
    /// Number of samples of this class.
    pub support: usize,
}

/// Classification metrics of one model on one data split.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Metrics {
    /// Fraction of samples predicted correctly.
    pub accuracy: f64,
    /// Unweighted mean of the per-class F1 scores.
    pub macro_f1: f64,
    /// Per-class precision, recall, F1 and support.
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

impl Metrics {
    /// Computes metrics of `predicted` against `truth` for the classes in `labels`.
    ///
    /// Predictions or labels outside `0..labels.len()` are counted as wrong and
    /// left out of the confusion matrix.
    pub fn compute(predicted: &[usize], truth: &[u8], labels: &[String]) -> Self {
        let k = labels.len();
        let mut confusion = vec![vec![0usize; k]; k];
        let mut correct = 0usize;
        for (&p, &t) in predicted.iter().zip(truth) {
            let t = usize::from(t);
            if p == t {
                correct += 1;
            }
            if t < k && p < k {
                confusion[t][p] += 1;
            }
        }
        let n = predicted.len().min(truth.len());
        let per_class: Vec<ClassMetrics> = (0..k)
            .map(|c| {
                let tp = confusion[c][c] as f64;
                let predicted_c: usize = confusion.iter().map(|row| row[c]).sum();
                let support: usize = confusion[c].iter().sum();
                let precision = ratio(tp, predicted_c as f64);
                let recall = ratio(tp, support as f64);
                let f1 = ratio(2.0 * precision * recall, precision + recall);
                ClassMetrics {
                    label: labels[c].clone(),
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect();
        let macro_f1 = if k == 0 {
            0.0
        } else {
            per_class.iter().map(|c| c.f1).sum::<f64>() / k as f64
        };
        Self {
            accuracy: ratio(correct as f64, n as f64),
            macro_f1,
            per_class,
            confusion,
        }
    }
}

fn ratio(num: f64, den: f64) -> f64 {
    if den > 0.0 { num / den } else { 0.0 }
}

/// Accuracy of always predicting the most frequent class of `train` on `test`,
/// with that class's index.
pub fn majority_baseline(train: &[u8], test: &[u8], classes: usize) -> (usize, f64) {
    let mut counts = vec![0usize; classes.max(1)];
    for &y in train {
        if let Some(c) = counts.get_mut(usize::from(y)) {
            *c += 1;
        }
    }
    let majority = counts
        .iter()
        .enumerate()
        .max_by_key(|&(i, &c)| (c, std::cmp::Reverse(i)))
        .map_or(0, |(i, _)| i);
    let hits = test.iter().filter(|&&y| usize::from(y) == majority).count();
    (majority, ratio(hits as f64, test.len() as f64))
}

/// Fraction of positions where two prediction lists agree.
pub fn agreement(a: &[usize], b: &[usize]) -> f64 {
    let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
    ratio(same as f64, a.len().min(b.len()) as f64)
}

/// [`int8_predict`] on the chosen device: on a GPU through
/// [`tickq_gpu::Int8Evaluator`], which gives the same logits bit for bit (the
/// blob's own input quantizer runs on the CPU, every integer layer on the GPU).
///
/// # Errors
///
/// A [`crate::device::GpuError`] when wgpu fails; the CPU path cannot fail.
pub fn int8_predict_on(
    device: &crate::device::ComputeDevice,
    model: &Model<'_>,
    raw_x: ArrayView2<'_, f32>,
) -> Result<(Vec<usize>, Vec<i8>), crate::device::GpuError> {
    let Some(ctx) = device.gpu() else {
        return Ok(int8_predict(model, raw_x));
    };
    int8_predict_on_gpu(ctx, model, raw_x)
}

/// [`int8_predict_on`]'s GPU path.
#[cfg(feature = "gpu")]
fn int8_predict_on_gpu(
    ctx: &crate::device::GpuContext,
    model: &Model<'_>,
    raw_x: ArrayView2<'_, f32>,
) -> Result<(Vec<usize>, Vec<i8>), crate::device::GpuError> {
    let mut evaluator = tickq_gpu::Int8Evaluator::new(ctx, model.blob())?;
    let features: Vec<f32> = raw_x.iter().copied().collect();
    let logits = evaluator.evaluate(&features, raw_x.nrows())?;
    let signals = logits
        .chunks_exact(model.classes().max(1))
        .map(argmax)
        .collect();
    Ok((signals, logits))
}

/// Without the `gpu` feature no context exists, so this is never called.
#[cfg(not(feature = "gpu"))]
fn int8_predict_on_gpu(
    ctx: &crate::device::GpuContext,
    _: &Model<'_>,
    _: ArrayView2<'_, f32>,
) -> Result<(Vec<usize>, Vec<i8>), crate::device::GpuError> {
    match *ctx {}
}

/// The first index of the largest logit, as [`tickq_core::Prediction::signal`] defines it.
pub fn argmax(logits: &[i8]) -> usize {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best
}

/// Runs every row of `raw_x` (unstandardized features, `[N, T*F]`) through
/// tickq-core and returns the argmax signals and the int8 logits (row-major).
///
/// This is exactly what a device computes: the blob's own input quantizer,
/// integer layers and argmax.
pub fn int8_predict(model: &Model<'_>, raw_x: ArrayView2<'_, f32>) -> (Vec<usize>, Vec<i8>) {
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut session = match Session::new(model, &mut arena) {
        Ok(s) => s,
        Err(_) => unreachable!("the arena has exactly arena_bytes()"),
    };
    let mut signals = Vec::with_capacity(raw_x.nrows());
    let mut logits = Vec::with_capacity(raw_x.nrows() * model.classes());
    let mut row_buf = vec![0f32; raw_x.ncols()];
    for row in raw_x.rows() {
        for (dst, src) in row_buf.iter_mut().zip(row.iter()) {
            *dst = *src;
        }
        let p = session.run(&row_buf);
        signals.push(p.signal());
        logits.extend_from_slice(p.logits());
    }
    (signals, logits)
}

/// Latency percentiles of single-sample inference, in nanoseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct LatencyStats {
    /// Number of timed calls.
    pub calls: usize,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Mean.
    pub mean: f64,
    /// Median cost of one timer read pair, already subtracted from every sample.
    pub timer_overhead: f64,
    /// The kernel backend that ran (`Model::backend`).
    pub backend: &'static str,
}

/// Times `calls` single-sample [`Session::run`] calls (raw f32 features to
/// signal) over the rows of `raw_x`, cycling through them.
///
/// Each call is timed on its own with [`Instant`]; the median cost of an empty
/// timer pair is measured first and subtracted, so the numbers are the
/// inference itself.
///
/// Every timed call keeps an 8-byte sample, so at most the largest count of
/// [`crate::limits::LATENCY_CALLS`] are timed (the stats say how many); the
/// commands and config files refuse a larger count before they get here.
pub fn measure_latency(
    model: &Model<'_>,
    raw_x: ArrayView2<'_, f32>,
    calls: usize,
) -> LatencyStats {
    let calls = calls.min(usize::try_from(crate::limits::LATENCY_CALLS.max).unwrap_or(usize::MAX));
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut session = match Session::new(model, &mut arena) {
        Ok(s) => s,
        Err(_) => unreachable!("the arena has exactly arena_bytes()"),
    };
    let rows: Vec<Vec<f32>> = raw_x.rows().into_iter().map(|r| r.to_vec()).collect();
    if rows.is_empty() || calls == 0 {
        return latency_stats(Vec::new(), 0, model.backend().name());
    }
    let overhead = timer_overhead();
    // Warm up caches and branch predictors.
    let mut sink = 0usize;
    for row in rows.iter().cycle().take(calls.min(10_000)) {
        sink = sink.wrapping_add(session.run(row).signal());
    }
    let mut samples = Vec::with_capacity(calls);
    for row in rows.iter().cycle().take(calls) {
        let input = std::hint::black_box(row.as_slice());
        let t = Instant::now();
        let signal = session.run(input).signal();
        let ns = t.elapsed().as_nanos() as u64;
        sink = sink.wrapping_add(signal);
        samples.push(ns.saturating_sub(overhead));
    }
    std::hint::black_box(sink);
    latency_stats(samples, overhead, model.backend().name())
}

/// The median cost in nanoseconds of an empty [`Instant`] pair (10,000 tries), which the latency measurements
/// subtract from every sample.
pub fn timer_overhead() -> u64 {
    let mut empty: Vec<u64> = (0..10_000)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(());
            t.elapsed().as_nanos() as u64
        })
        .collect();
    empty.sort_unstable();
    empty[empty.len() / 2]
}

/// Percentiles and mean of per-call times in nanoseconds (already net of `timer_overhead`); all zero for no
/// samples.
pub fn latency_stats(
    mut samples: Vec<u64>,
    timer_overhead: u64,
    backend: &'static str,
) -> LatencyStats {
    if samples.is_empty() {
        return LatencyStats {
            calls: 0,
            p50: 0.0,
            p99: 0.0,
            p999: 0.0,
            mean: 0.0,
            timer_overhead: timer_overhead as f64,
            backend,
        };
    }
    samples.sort_unstable();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize] as f64;
    LatencyStats {
        calls: samples.len(),
        p50: pick(0.50),
        p99: pick(0.99),
        p999: pick(0.999),
        mean: samples.iter().sum::<u64>() as f64 / samples.len() as f64,
        timer_overhead: timer_overhead as f64,
        backend,
    }
}

/// Peak resident set size of this process in bytes (`VmHWM` on Linux), if the
/// platform reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        ["down", "flat", "up"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn metrics_match_a_hand_computed_confusion_matrix() {
        let truth = [0u8, 0, 1, 1, 1, 2, 2, 2];
        let pred = [0usize, 1, 1, 1, 0, 2, 2, 1];
        let m = Metrics::compute(&pred, &truth, &labels());
        assert_eq!(
            m.confusion,
            vec![vec![1, 1, 0], vec![1, 2, 0], vec![0, 1, 2]]
        );
        assert!((m.accuracy - 5.0 / 8.0).abs() < 1e-12);
        // Class 1: tp 2, predicted 4, support 3.
        assert!((m.per_class[1].precision - 0.5).abs() < 1e-12);
        assert!((m.per_class[1].recall - 2.0 / 3.0).abs() < 1e-12);
        let f1 = 2.0 * 0.5 * (2.0 / 3.0) / (0.5 + 2.0 / 3.0);
        assert!((m.per_class[1].f1 - f1).abs() < 1e-12);
        assert_eq!(m.per_class[2].support, 3);
    }

    #[test]
    fn baseline_and_agreement() {
        let (c, acc) = majority_baseline(&[1, 1, 2, 0, 1], &[1, 2, 1, 1], 3);
        assert_eq!(c, 1);
        assert!((acc - 0.75).abs() < 1e-12);
        assert!((agreement(&[0, 1, 2, 2], &[0, 1, 1, 2]) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn peak_rss_is_reported_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(peak_rss_bytes().unwrap() > 1024 * 1024);
        }
    }
}
