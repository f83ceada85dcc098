//! Int8 evaluation of the bundled test set: the GPU evaluator (`tickq_gpu::Int8Evaluator`) against the CPU
//! path (a tickq-core `Session` per sample, as `tickq eval` runs it), in samples per second.
//!
//! Models: the demo MLP over the 17 691 test samples of the bundled ticks, and the windowed conv model
//! (`host/models/conv-window.toml`, 32 steps) over the same file's windowed test split; seeded random weights,
//! calibrated on the training split (speed depends on the shape, not on the weight values).
//! Both sides start from f32 features and end with int8 logits; the GPU side includes the CPU input
//! quantization, the upload and the read-back.
//! The adapter is named in the benchmark id; on software Vulkan (lavapipe) expect CPU speed or slower.
//! See README "GPU".
//!
//! Run with `cargo bench --bench gpu` (add `-- --quick` for a short run).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tickq_core::Model;
use tickq_gpu::{GpuContext, Int8Evaluator};
use tickq_host::data::{self, DatasetConfig};
use tickq_host::eval;
use tickq_host::model::{Architecture, Sequential};
use tickq_host::quant::QuantConfig;
use tickq_host::steps::{self, PreparedData};

fn prepared(time_steps: usize) -> PreparedData {
    steps::prepare_data(
        &data::default_data_path().expect("bundled data"),
        &DatasetConfig {
            time_steps,
            ..DatasetConfig::default()
        },
        None,
    )
    .expect("bundled data prepares")
}

fn blob_for(arch: &str, data: &PreparedData) -> Vec<u8> {
    let arch = Architecture::from_toml_str(arch).expect("architecture parses");
    let model = Sequential::new(arch, 11).expect("model builds");
    steps::quantize_model(&model, data, &QuantConfig::default())
        .expect("quantizes")
        .blob
}

fn int8_eval(c: &mut Criterion) {
    let ctx = match GpuContext::new() {
        Ok(ctx) => {
            eprintln!("GPU: {}", ctx.describe());
            Some(ctx)
        }
        Err(e) => {
            eprintln!("no GPU adapter, CPU only: {e}");
            None
        }
    };
    let mut group = c.benchmark_group("int8_eval_test_set");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(8));
    let models = [
        ("demo-mlp", tickq_host::shapes::DEMO_MLP, 1),
        (
            "conv-window",
            include_str!("../host/models/conv-window.toml"),
            32,
        ),
    ];
    for (name, arch, time_steps) in models {
        let data = prepared(time_steps);
        let blob = blob_for(arch, &data);
        let model = Model::load(&blob).expect("blob loads");
        let x = data.splits.test.x.view();
        let n = x.nrows();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("cpu-core-session", name), |b| {
            b.iter(|| black_box(eval::int8_predict(&model, x).1.len()))
        });
        if let Some(ctx) = &ctx {
            let features: Vec<f32> = x.iter().copied().collect();
            let mut gpu = Int8Evaluator::new(ctx, &blob).expect("the GPU takes the blob");
            // The same logits, checked once here so that the bench never times a wrong result.
            assert_eq!(
                gpu.evaluate(&features, n).expect("GPU evaluation"),
                eval::int8_predict(&model, x).1
            );
            eprintln!(
                "{name}: {n} samples, batch {}, {} KiB on the GPU",
                gpu.batch_size(),
                gpu.bytes_on_gpu() / 1024
            );
            let id = format!("gpu {} ({})", ctx.adapter_name(), ctx.backend_name());
            group.bench_function(BenchmarkId::new(id, name), |b| {
                b.iter(|| black_box(gpu.evaluate(&features, n).expect("GPU evaluation").len()))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, int8_eval);
criterion_main!(benches);
