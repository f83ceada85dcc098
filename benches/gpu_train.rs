//! Training throughput of the wide shape 128→256→256→3 (ReLU, batches of 256, Adam) on the CPU and on the GPU:
//! samples per second of one epoch of optimizer steps over 8192 rows (32 batches), validation left out.
//!
//! The CPU side is the host's training step (`Sequential::forward_train`, `cross_entropy`, `backward`,
//! `Optimizer::step`, single-threaded ndarray); the GPU side is `GpuTrainer::run_epoch`, which ends by reading
//! the epoch's statistics back, so each measured epoch is complete on the GPU.
//! The adapter is named in the benchmark id and printed at start; without an adapter only the CPU runs.
//!
//! Run with `cargo bench --bench gpu_train` (add `-- --quick` for a short run).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::{Array2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tickq_gpu::GpuContext;
use tickq_gpu::train::{GpuTrainer, LossDesc};
use tickq_host::gpu_train::{model_desc, optimizer_desc, param_tensors};
use tickq_host::model::{Architecture, Optimizer, OptimizerConfig, Sequential, cross_entropy};

/// Rows per epoch.
const ROWS: usize = 8192;
/// Rows per optimizer step.
const BATCH: usize = 256;

fn wide() -> Sequential {
    let arch = Architecture::from_toml_str(include_str!("../host/models/ref-wide.toml"))
        .expect("ref-wide parses");
    Sequential::new(arch, 1).expect("ref-wide builds")
}

fn data() -> (Array2<f32>, Vec<u8>) {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x = Array2::from_shape_simple_fn((ROWS, 128), || {
        (rng.next_u32() >> 8) as f32 / (1u32 << 23) as f32 - 1.0
    });
    let y = (0..ROWS).map(|i| (i % 3) as u8).collect();
    (x, y)
}

fn bench(c: &mut Criterion) {
    let (x, y) = data();
    let order: Vec<usize> = (0..ROWS).collect();
    let mut group = c.benchmark_group("train_epoch_wide_b256");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.sample_size(10);

    let mut model = wide();
    let mut optimizer = Optimizer::new(OptimizerConfig::adam(1e-3), &model).expect("adam");
    group.bench_function(BenchmarkId::from_parameter("cpu"), |b| {
        b.iter(|| {
            for idx in order.chunks(BATCH) {
                let xb = x.select(Axis(0), idx);
                let yb: Vec<u8> = idx.iter().map(|&i| y[i]).collect();
                let (logits, caches) = model.forward_train(xb.view());
                let ce = cross_entropy(logits.view(), &yb, None).expect("loss");
                let grads = model.backward(&caches, ce.grad);
                optimizer.step(&mut model, &grads).expect("step");
            }
            black_box(&model);
        });
    });

    match GpuContext::new() {
        Ok(ctx) => {
            eprintln!("GPU: {}", ctx.describe());
            let model = wide();
            let mut trainer = GpuTrainer::new(
                &ctx,
                &model_desc(&model).expect("supported"),
                &param_tensors(&model),
                optimizer_desc(&OptimizerConfig::adam(1e-3)),
                LossDesc::CrossEntropy,
                BATCH,
            )
            .expect("trainer");
            trainer
                .upload_train_set(x.as_slice().expect("contiguous"), &y, None)
                .expect("upload");
            let id = format!("gpu:{}", ctx.adapter_name());
            group.bench_function(BenchmarkId::from_parameter(id), |b| {
                b.iter(|| black_box(trainer.run_epoch(&order).expect("epoch")));
            });
            eprintln!(
                "GPU trainer holds {} bytes on the GPU",
                trainer.bytes_on_gpu()
            );
        }
        Err(e) => eprintln!("no GPU adapter, CPU only: {e}"),
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
