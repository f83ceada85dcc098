//! Tick-to-signal latency through tickq-core: raw f32 features in, argmax
//! signal out, one sample per call, for the demo model, the three reference
//! shapes and the windowed conv model (`tickq_host::shapes`), with seeded
//! random weights: latency depends on the shape, not on the weight values.
//! See README "Measured results".
//!
//! Run with `cargo bench --bench tick_to_signal` (add `-- --quick` for a short run).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array2;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tickq_core::{Model, Session};
use tickq_host::model::{Architecture, Sequential};
use tickq_host::quant::{ExportInfo, QuantConfig, static_quantize};

/// Seeded standard-normal-ish inputs (sum of uniforms), `[n, width]`.
fn random_inputs(n: usize, width: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((n, width), |_| {
        (0..4).map(|_| rng.random::<f32>() - 0.5).sum::<f32>() * 1.7
    })
}

/// A blob for `arch_text` with seeded random weights, calibrated on random inputs.
fn build_blob(arch_text: &str) -> (Vec<u8>, Array2<f32>) {
    let arch = Architecture::from_toml_str(arch_text).expect("valid reference architecture");
    let features = arch.input.features;
    let width = arch.input.time_steps * features;
    let model = Sequential::new(arch, 11).expect("model builds");
    let calibration = random_inputs(1024, width, 5);
    let info = ExportInfo {
        name: model.arch.name.clone(),
        feature_names: (0..features).map(|i| format!("f{i}")).collect(),
        label_names: vec!["down".into(), "flat".into(), "up".into()],
        mean: vec![0.0; features],
        std: vec![1.0; features],
        data_hash: [0; 32],
    };
    let q = static_quantize(&model, calibration.view(), &info, &QuantConfig::default())
        .expect("reference model quantizes");
    (q.blob, random_inputs(256, width, 9))
}

fn tick_to_signal(c: &mut Criterion) {
    let mut group = c.benchmark_group("tick_to_signal");
    group.throughput(Throughput::Elements(1));
    for (name, arch) in tickq_host::shapes::ALL {
        let (blob, inputs) = build_blob(arch);
        let model = Model::load(&blob).expect("blob loads");
        let mut arena = vec![0u8; model.arena_bytes()];
        let mut session = Session::new(&model, &mut arena).expect("arena is exact");
        let rows: Vec<Vec<f32>> = inputs.rows().into_iter().map(|r| r.to_vec()).collect();
        let mut i = 0usize;
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                i = (i + 1) % rows.len();
                black_box(session.run(black_box(&rows[i])).signal())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, tick_to_signal);
criterion_main!(benches);
