//! Tick-to-signal latency through tickq-core: raw f32 features in, argmax signal out, one sample per call, for
//! the reference shapes, the demo model and the windowed conv model (`tickq_host::shapes`), with seeded random
//! weights (latency depends on the shape, not the values), on every kernel backend this machine has.
//!
//! At start it prints, for the README:
//! - the machine's int8 compute limit, measured by an in-bench probe (`common/probe.rs`: `vpdpbusd` on 512-bit
//!   registers, and the exact AVX2 sequence), in MACs per nanosecond;
//! - a table per shape: the compute limit (MACs / peak), a plain f32 loop of the same network compiled the same
//!   way (`common/f32_loop.rs`), and per backend p50, p99 and p99.9 over single calls timed one by one (the median
//!   cost of an empty timer pair subtracted, as `tickq bench` does), with p50 as a multiple of the limit of the
//!   backend's own instructions (`vpdpbusd` for AVX-512 VNNI, the exact AVX2 sequence for AVX2), and how many
//!   times slower the f32 loop is than the fastest backend; after each backend's percentiles, its time per call
//!   when called back to back (median of 31 batches of 1,000), which is what a polling loop sees and what
//!   criterion measures.
//!
//! Then criterion measures every shape on every backend. Run pinned to one core:
//! `taskset -c 1 cargo bench --bench tick_to_signal` (add `-- --quick` for a short criterion run;
//! `TICKQ_BENCH_CALLS` sets the timed calls per row of the table, 200 000 by default).

#[path = "common/f32_loop.rs"]
mod f32_loop;
#[path = "common/probe.rs"]
mod probe;

use std::hint::black_box;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array2;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tickq_core::{Backend, Model, Session};
use tickq_host::model::{Architecture, Sequential};
use tickq_host::quant::{ExportInfo, QuantConfig, static_quantize};

/// Seeded standard-normal-ish inputs (sum of uniforms), `[n, width]`.
fn random_inputs(n: usize, width: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((n, width), |_| {
        (0..4).map(|_| rng.random::<f32>() - 0.5).sum::<f32>() * 1.7
    })
}

/// One benchmarked shape: its name, f32 model, blob and inputs.
struct Shape {
    name: &'static str,
    f32_model: Sequential,
    blob: Vec<u8>,
    rows: Vec<Vec<f32>>,
}

/// A shape's f32 model (seeded random weights), its blob (calibrated on random inputs, encoded for this
/// machine) and inputs.
fn build(arch_text: &str) -> (Sequential, Vec<u8>, Vec<Vec<f32>>) {
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
        feature_spec: None,
    };
    let q = static_quantize(&model, calibration.view(), &info, &QuantConfig::default())
        .expect("reference model quantizes");
    let rows = random_inputs(256, width, 9)
        .rows()
        .into_iter()
        .map(|r| r.to_vec())
        .collect();
    (model, q.blob, rows)
}

/// Latency percentiles of `calls` single calls of `f`, cycling through `n` inputs: each call timed on its own,
/// the median empty timer pair subtracted; returns `(p50, p99, p99.9)` in nanoseconds.
fn percentiles(calls: usize, n: usize, mut f: impl FnMut(usize) -> usize) -> (f64, f64, f64) {
    let mut empty: Vec<u64> = (0..10_000)
        .map(|_| {
            let t = Instant::now();
            black_box(());
            t.elapsed().as_nanos() as u64
        })
        .collect();
    empty.sort_unstable();
    let overhead = empty[empty.len() / 2];
    let mut sink = 0usize;
    for i in 0..calls.min(20_000) {
        sink = sink.wrapping_add(f(i % n));
    }
    let mut samples: Vec<u64> = (0..calls)
        .map(|i| {
            let t = Instant::now();
            sink = sink.wrapping_add(black_box(f(black_box(i % n))));
            (t.elapsed().as_nanos() as u64).saturating_sub(overhead)
        })
        .collect();
    black_box(sink);
    samples.sort_unstable();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize] as f64;
    (pick(0.5), pick(0.99), pick(0.999))
}

/// The time per call of `f` called back to back (cycling through `n` inputs), as a loop polling a feed would
/// see it: the median of 31 timed batches of 1,000 calls, in nanoseconds.
fn back_to_back(n: usize, mut f: impl FnMut(usize) -> usize) -> f64 {
    let mut sink = 0usize;
    let mut batches: Vec<f64> = (0..31)
        .map(|b| {
            let t = Instant::now();
            for i in 0..1000 {
                sink = sink.wrapping_add(f(black_box((b * 1000 + i) % n)));
            }
            t.elapsed().as_nanos() as f64 / 1000.0
        })
        .collect();
    black_box(sink);
    batches.sort_by(f64::total_cmp);
    batches[batches.len() / 2]
}

/// Formats nanoseconds for the table.
fn ns(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1} µs", v / 1000.0)
    } else if v >= 1000.0 {
        format!("{:.2} µs", v / 1000.0)
    } else {
        format!("{v:.0} ns")
    }
}

/// Prints the README tables: the probes, then per shape the limit, the f32 loop and every backend.
fn print_table(shapes: &[Shape]) {
    let calls = std::env::var("TICKQ_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let peaks = probe::measure();
    let show = |p: Option<f64>| p.map_or("-".to_string(), |v| format!("{v:.0} MAC/ns"));
    println!(
        "int8 compute limit (probe): vpdpbusd zmm {}, AVX2 exact (vpmovsxbw + vpmaddwd) {}, AVX2 saturating (vpmaddubsw) {}",
        show(peaks.vpdpbusd_zmm),
        show(peaks.avx2_exact),
        show(peaks.avx2_saturating)
    );
    let backends: Vec<Backend> = Backend::available().collect();
    println!(
        "backends: {backends:?}; Model::load picks {}",
        Backend::detect()
    );
    println!();
    println!(
        "| shape | MACs | limit (vpdpbusd) | limit (AVX2 exact) | f32 loop p50 · back to back | {} | f32 loop ÷ fastest (p50) |",
        backends
            .iter()
            .map(|b| format!("{b} p50 / p99 / p99.9 (× limit) · back to back"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!(
        "| --- | ---: | ---: | ---: | ---: |{} ---: |",
        " ---: |".repeat(backends.len())
    );
    for Shape {
        name,
        f32_model,
        blob,
        rows,
    } in shapes
    {
        let mut model = Model::load(blob).expect("blob loads");
        let macs: u64 = model
            .layers()
            .filter(|l| l.weight_format.is_some())
            .map(|l| l.macs)
            .sum();
        let limit = peaks.vpdpbusd_zmm.map(|p| macs as f64 / p);
        let limit_avx2 = peaks.avx2_exact.map(|p| macs as f64 / p);
        let mut net = f32_loop::F32Net::new(f32_model);
        let (f32_p50, _, _) = percentiles(calls, rows.len(), |i| net.run(&rows[i]));
        let f32_loop_ns = back_to_back(rows.len(), |i| net.run(&rows[i]));
        let mut cells = Vec::new();
        let mut fastest = f64::INFINITY;
        for &backend in &backends {
            model.set_backend(backend).expect("available");
            let mut arena = vec![0u8; model.arena_bytes()];
            let mut session = Session::new(&model, &mut arena).expect("exact arena");
            let (p50, p99, p999) =
                percentiles(calls, rows.len(), |i| session.run(&rows[i]).signal());
            let loop_ns = back_to_back(rows.len(), |i| session.run(&rows[i]).signal());
            fastest = fastest.min(p50);
            // Each SIMD backend against the limit of the instructions it is built on.
            let own_limit = match backend {
                Backend::Avx512Vnni => limit,
                Backend::Avx2 => limit_avx2,
                _ => None,
            };
            let times = own_limit.map_or(String::new(), |l| format!(" ({:.1}×)", p50 / l));
            cells.push(format!(
                "{} / {} / {}{times} · {}",
                ns(p50),
                ns(p99),
                ns(p999),
                ns(loop_ns)
            ));
        }
        println!(
            "| {name} | {macs} | {} | {} | {} · {} | {} | {:.1}× |",
            limit.map_or("-".to_string(), ns),
            limit_avx2.map_or("-".to_string(), ns),
            ns(f32_p50),
            ns(f32_loop_ns),
            cells.join(" | "),
            f32_p50 / fastest
        );
    }
    println!();
}

fn tick_to_signal(c: &mut Criterion) {
    let shapes: Vec<_> = tickq_host::shapes::ALL
        .iter()
        .map(|(name, arch)| {
            let (f32_model, blob, rows) = build(arch);
            Shape {
                name,
                f32_model,
                blob,
                rows,
            }
        })
        .collect();
    print_table(&shapes);
    let mut group = c.benchmark_group("tick_to_signal");
    group.throughput(Throughput::Elements(1));
    for Shape {
        name,
        f32_model,
        blob,
        rows,
    } in &shapes
    {
        let mut model = Model::load(blob).expect("blob loads");
        for backend in Backend::available() {
            model.set_backend(backend).expect("available");
            let mut arena = vec![0u8; model.arena_bytes()];
            let mut session = Session::new(&model, &mut arena).expect("arena is exact");
            let mut i = 0usize;
            group.bench_function(BenchmarkId::new(*name, backend), |b| {
                b.iter(|| {
                    i = (i + 1) % rows.len();
                    black_box(session.run(black_box(&rows[i])).signal())
                })
            });
        }
        let mut net = f32_loop::F32Net::new(f32_model);
        let mut i = 0usize;
        group.bench_function(BenchmarkId::new(*name, "f32-loop"), |b| {
            b.iter(|| {
                i = (i + 1) % rows.len();
                black_box(net.run(black_box(&rows[i])))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, tick_to_signal);
criterion_main!(benches);
