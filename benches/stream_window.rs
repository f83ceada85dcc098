//! Streaming vs full-window inference for the windowed conv model (`host/models/conv-window.toml`: 32 ticks of
//! 29 features, a causal conv, a strided dilated conv, a max pool and a Dense head), with seeded random weights
//! calibrated on random inputs as `tick_to_signal` builds its blobs.
//!
//! Per tick, one new column of features arrives. The full path shifts a `[T, F]` window by one column and runs
//! `Session::run` over it; the streamed path pushes the column into a `WindowSession`, which computes only the
//! newest column of each layer, the few edge columns a causal pad reaches, and the head.
//! At start it prints the multiply-accumulates per tick of both paths and their p50 and p99 over single ticks
//! timed one by one (the median empty timer pair subtracted), on the backend `Model::load` picks; both paths
//! are checked to give the same logits. Then criterion measures both.
//!
//! Run pinned to one core: `taskset -c 1 cargo bench --bench stream_window` (add `-- --quick` for a short
//! criterion run; `TICKQ_BENCH_CALLS` sets the timed ticks, 100 000 by default).

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tickq_core::{Model, Session, WindowSession};
use tickq_host::model::{Architecture, Sequential};
use tickq_host::quant::{ExportInfo, QuantConfig, static_quantize};

/// Seeded standard-normal-ish values (sum of uniforms), `[n, width]`.
fn random_inputs(n: usize, width: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((n, width), |_| {
        (0..4).map(|_| rng.random::<f32>() - 0.5).sum::<f32>() * 1.7
    })
}

/// The conv-window blob and a stream of feature columns.
fn build() -> (Vec<u8>, Vec<Vec<f32>>) {
    let arch =
        Architecture::from_toml_str(tickq_host::shapes::CONV_WINDOW).expect("valid architecture");
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
        .expect("the model quantizes");
    let columns = random_inputs(4096, features, 9)
        .rows()
        .into_iter()
        .map(|r| r.to_vec())
        .collect();
    (q.blob, columns)
}

/// The full path: a `[T, F]` window shifted by one column per tick, run whole.
struct Full<'m, 'b, 'a> {
    session: Session<'m, 'b, 'a>,
    window: Vec<f32>,
    f: usize,
}

impl Full<'_, '_, '_> {
    fn tick(&mut self, column: &[f32]) -> usize {
        self.window.copy_within(self.f.., 0);
        let n = self.window.len();
        self.window[n - self.f..].copy_from_slice(column);
        self.session.run(&self.window).signal()
    }
}

/// p50 and p99 in nanoseconds of `calls` single calls of `f`, each timed on its own, the median empty timer pair
/// subtracted.
fn percentiles(calls: usize, mut f: impl FnMut(usize) -> usize) -> (f64, f64) {
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
    let mut times: Vec<u64> = (0..calls)
        .map(|i| {
            let t = Instant::now();
            sink = sink.wrapping_add(black_box(f(i)));
            (t.elapsed().as_nanos() as u64).saturating_sub(overhead)
        })
        .collect();
    black_box(sink);
    times.sort_unstable();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)] as f64;
    (at(0.50), at(0.99))
}

fn bench(c: &mut Criterion) {
    let (blob, columns) = build();
    let model = Model::load(&blob).expect("the blob loads");
    let (t, f) = model.input_shape();
    let calls: usize = std::env::var("TICKQ_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);

    let mut arena = vec![0u8; model.arena_bytes()];
    let mut full = Full {
        session: Session::new(&model, &mut arena).expect("exact arena"),
        window: vec![0.0; t * f],
        f,
    };
    let mut stream_arena =
        vec![0u8; WindowSession::arena_bytes(&model).expect("conv-window streams")];
    let mut stream = WindowSession::new(&model, &mut stream_arena).expect("conv-window streams");

    // Fill both windows, then check that they agree on every tick of the column stream.
    let n = columns.len();
    for (i, column) in columns.iter().enumerate() {
        let expected = {
            full.window.copy_within(f.., 0);
            full.window[t * f - f..].copy_from_slice(column);
            full.session.run(&full.window).logits().to_vec()
        };
        let streamed = stream.push(column).map(|p| p.logits().to_vec());
        if i + 1 >= t {
            assert_eq!(streamed.as_deref(), Some(&expected[..]), "tick {i}");
        }
    }

    let (full_macs, stream_macs) = (stream.window_macs(), stream.macs_per_tick());
    let (full_p50, full_p99) = percentiles(calls, |i| full.tick(&columns[i % n]));
    let (stream_p50, stream_p99) = percentiles(calls, |i| {
        stream.push(&columns[i % n]).map_or(0, |p| p.signal())
    });
    println!("conv-window, backend {}, {calls} ticks", model.backend());
    println!("| path | MACs per tick | p50 | p99 |");
    println!("|---|---:|---:|---:|");
    println!("| full window (Session::run) | {full_macs} | {full_p50:.0} ns | {full_p99:.0} ns |");
    println!(
        "| streamed (WindowSession::push) | {stream_macs} | {stream_p50:.0} ns | {stream_p99:.0} ns |"
    );
    println!(
        "streamed: {:.1}x fewer MACs, {:.1}x lower p50",
        full_macs as f64 / stream_macs as f64,
        full_p50 / stream_p50
    );

    let mut group = c.benchmark_group("conv-window tick");
    let mut i = 0usize;
    group.bench_function("full window", |b| {
        b.iter(|| {
            i = (i + 1) % n;
            full.tick(black_box(&columns[i]))
        })
    });
    group.bench_function("streamed", |b| {
        b.iter(|| {
            i = (i + 1) % n;
            stream
                .push(black_box(&columns[i]))
                .map_or(0, |p| p.signal())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
