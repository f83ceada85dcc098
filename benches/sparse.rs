//! Sparse weight formats through tickq-core: the wide shape 128→256→256→3 (fused ReLU) with its weights pruned
//! by magnitude to 50, 75, 90 and 95 % unstructured sparsity (stored by output channel, `sparse_*`, and by input
//! column, `columns_*`, and packed by column, `packed_*`) and to 2:4, against the unpruned dense int8 model, all in the same run.
//!
//! At start it prints, for every x86-64 backend this CPU has (AVX-512 VNNI, AVX2, SSE2: the backend pinned, the
//! blobs encoded for its target, so that `auto` is the cost model's choice for that machine), a table of blob
//! bytes and p50 latency per `Session::run` (batches of 16 runs, timed 400 times each, the median batch divided
//! by 16) against that backend's dense; on other machines, one table for the default backend. Then criterion
//! measures the models of the best backend.
//!
//! Run with `cargo bench --bench sparse` (add `-- --quick` for a short run); `TICKQ_BENCH_BACKENDS=avx2,sse2`
//! restricts the tables to those backends.

use std::hint::black_box;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tickq_core::encode::{
    EncodeOptions, LayerSpec, ModelSpec, OpSpec, Target, WeightFormat, encode_with,
};
use tickq_core::requant::QuantMultiplier;
use tickq_core::{Backend, Model, Session};

/// The wide shape: input width, then the Dense widths.
const WIDTHS: [usize; 4] = [128, 256, 256, 3];

/// How the weights are pruned.
#[derive(Debug, Clone, Copy)]
enum Pruning {
    /// No pruning.
    None,
    /// The given fraction of each layer's weights with the smallest magnitude become zero.
    Unstructured(f64),
    /// In every group of 4 inputs, the 2 largest magnitudes survive.
    TwoFour,
}

/// Random int8 weights for `out x inp`, pruned by magnitude.
fn weights(rng: &mut ChaCha8Rng, out: usize, inp: usize, pruning: Pruning) -> Vec<i8> {
    let mut w: Vec<i8> = (0..out * inp)
        .map(|_| rng.random_range(-127..=127))
        .collect();
    match pruning {
        Pruning::None => {}
        Pruning::Unstructured(amount) => {
            let mut order: Vec<usize> = (0..w.len()).collect();
            // Smallest magnitudes first; ties broken by position so the count is exact.
            order.sort_by_key(|&i| (w[i].unsigned_abs(), i));
            let zeros = (amount * w.len() as f64).round() as usize;
            for &i in &order[..zeros] {
                w[i] = 0;
            }
        }
        Pruning::TwoFour => {
            for group in w.chunks_exact_mut(4) {
                let mut idx = [0, 1, 2, 3];
                idx.sort_by_key(|&i| std::cmp::Reverse(group[i].unsigned_abs()));
                group[idx[2]] = 0;
                group[idx[3]] = 0;
            }
        }
    }
    w
}

/// The wide model with seeded random weights (the same before pruning for every variant).
fn wide_spec(pruning: Pruning) -> ModelSpec {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let f = WIDTHS[0];
    let scale = 1.0 / 32.0;
    let mut layers = vec![LayerSpec::new(
        OpSpec::Quantize {
            time_steps: 1,
            features: f,
            a: vec![32.0; f],
            b: vec![0.0; f],
        },
        scale,
        0,
    )];
    for pair in WIDTHS.windows(2) {
        let (inp, out) = (pair[0], pair[1]);
        let w = weights(&mut rng, out, inp, pruning);
        let nnz_row = (w.iter().filter(|&&v| v != 0).count() / out).max(1);
        // Keep outputs in range: the sum of nnz products of ~64 * ~16 has a spread of ~1000 * sqrt(nnz).
        let ratio = 1.0 / (16.0 * (nnz_row as f64).sqrt() * 4.0);
        let m = QuantMultiplier::from_ratio(ratio).expect("ratio");
        let bias = (0..out).map(|_| rng.random_range(-2000..2000)).collect();
        let mut layer = LayerSpec::new(
            OpSpec::Dense {
                out_features: out,
                in_features: inp,
                weights: w,
                bias,
                requant: vec![m; out],
            },
            scale,
            0,
        );
        if out != 3 {
            layer.act_min = 0;
        }
        layers.push(layer);
    }
    ModelSpec {
        name: "wide".into(),
        feature_names: (0..f).map(|i| format!("f{i}")).collect(),
        label_names: vec!["down".into(), "flat".into(), "up".into()],
        data_hash: [0; 32],
        tickq_version: "0.1.0".into(),
        layers,
        feature_spec: None,
    }
}

/// The variants: name, pruning, forced weight format.
fn variants() -> Vec<(&'static str, Pruning, WeightFormat)> {
    vec![
        ("dense_int8", Pruning::None, WeightFormat::Dense),
        (
            "sparse_50",
            Pruning::Unstructured(0.50),
            WeightFormat::Sparse,
        ),
        (
            "sparse_75",
            Pruning::Unstructured(0.75),
            WeightFormat::Sparse,
        ),
        (
            "sparse_90",
            Pruning::Unstructured(0.90),
            WeightFormat::Sparse,
        ),
        (
            "sparse_95",
            Pruning::Unstructured(0.95),
            WeightFormat::Sparse,
        ),
        (
            "columns_50",
            Pruning::Unstructured(0.50),
            WeightFormat::Columns,
        ),
        (
            "columns_75",
            Pruning::Unstructured(0.75),
            WeightFormat::Columns,
        ),
        (
            "columns_90",
            Pruning::Unstructured(0.90),
            WeightFormat::Columns,
        ),
        (
            "columns_95",
            Pruning::Unstructured(0.95),
            WeightFormat::Columns,
        ),
        (
            "packed_90",
            Pruning::Unstructured(0.90),
            WeightFormat::Packed,
        ),
        (
            "packed_95",
            Pruning::Unstructured(0.95),
            WeightFormat::Packed,
        ),
        (
            "smallest_90",
            Pruning::Unstructured(0.90),
            WeightFormat::Smallest,
        ),
        ("nm_2_4", Pruning::TwoFour, WeightFormat::NM),
        ("auto_50", Pruning::Unstructured(0.50), WeightFormat::Auto),
        ("auto_75", Pruning::Unstructured(0.75), WeightFormat::Auto),
        ("auto_90", Pruning::Unstructured(0.90), WeightFormat::Auto),
        ("auto_2_4", Pruning::TwoFour, WeightFormat::Auto),
    ]
}

fn blob(pruning: Pruning, weight_format: WeightFormat, target: Target) -> Vec<u8> {
    let options = EncodeOptions {
        weight_format,
        target,
    };
    encode_with(&wide_spec(pruning), &options).expect("encode")
}

/// The backends to tabulate, each with the target its blobs are encoded for.
fn backends() -> Vec<(Backend, Target)> {
    let pinned: Vec<(Backend, Target)> = [
        (Backend::Avx512Vnni, Target::X86_64V4),
        (Backend::Avx2, Target::X86_64V3),
        (Backend::Sse2, Target::X86_64),
    ]
    .into_iter()
    .filter(|(b, _)| b.is_available())
    .collect();
    let chosen = std::env::var("TICKQ_BENCH_BACKENDS").ok();
    let wanted = |b: &Backend| {
        chosen
            .as_deref()
            .is_none_or(|list| list.split(',').any(|n| n.trim() == b.name()))
    };
    let list: Vec<_> = pinned.into_iter().filter(|(b, _)| wanted(b)).collect();
    if list.is_empty() {
        vec![(Backend::detect(), Target::native())]
    } else {
        list
    }
}

/// Loads `blob` with `backend` pinned.
fn load(blob: &[u8], backend: Backend) -> Model<'_> {
    let mut model = Model::load(blob).expect("load");
    model
        .set_backend(backend)
        .expect("the backend is available");
    model
}

fn features() -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    (0..WIDTHS[0])
        .map(|_| rng.random_range(-2.0..2.0))
        .collect()
}

/// The median time of one run, in nanoseconds, over 400 timed batches of 16 runs.
fn p50_ns(model: &Model<'_>, x: &[f32]) -> f64 {
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut session = Session::new(model, &mut arena).expect("arena");
    for _ in 0..200 {
        black_box(session.run(black_box(x)).signal());
    }
    let mut batches: Vec<f64> = (0..400)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..16 {
                black_box(session.run(black_box(x)).signal());
            }
            start.elapsed().as_nanos() as f64 / 16.0
        })
        .collect();
    batches.sort_by(f64::total_cmp);
    batches[batches.len() / 2]
}

fn sparse(c: &mut Criterion) {
    let x = features();
    let backends = backends();
    for &(backend, target) in &backends {
        let blobs: Vec<_> = variants()
            .into_iter()
            .map(|(name, pruning, format)| (name, blob(pruning, format, target)))
            .collect();
        let dense_len = blobs[0].1.len() as f64;
        let dense_p50 = p50_ns(&load(&blobs[0].1, backend), &x);
        eprintln!("\n{backend} backend, blobs for {target}:");
        eprintln!(
            "{:<12} {:>8} {:>9} {:>10} {:>9}  layers (format: non-zero/total)",
            "variant", "bytes", "vs dense", "p50 ns", "vs dense"
        );
        for (name, blob) in &blobs {
            let model = load(blob, backend);
            let p50 = p50_ns(&model, &x);
            let layers: Vec<String> = model
                .layers()
                .filter_map(|l| {
                    l.weight_format
                        .map(|f| format!("{f}: {}/{}", l.weights_nonzero, l.weights_total))
                })
                .collect();
            eprintln!(
                "{name:<12} {:>8} {:>9.3} {p50:>10.0} {:>9.3}  {}",
                blob.len(),
                blob.len() as f64 / dense_len,
                p50 / dense_p50,
                layers.join(", ")
            );
        }
    }

    let (backend, target) = backends[0];
    let mut group = c.benchmark_group("sparse_wide_128x256x256x3");
    group.throughput(Throughput::Elements(1));
    for (name, pruning, format) in variants() {
        let blob = blob(pruning, format, target);
        let model = load(&blob, backend);
        let mut arena = vec![0u8; model.arena_bytes()];
        let mut session = Session::new(&model, &mut arena).expect("arena");
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| black_box(session.run(black_box(&x)).signal()));
        });
    }
    group.finish();
}

criterion_group!(benches, sparse);
criterion_main!(benches);
