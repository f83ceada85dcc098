//! Raw trade to signal for the demo model: `StreamSession::push_trade` (the blob's feature engine over the
//! default 29 features, then the model) against `Session::run` on finished feature vectors, the part the
//! features are added to. The target is a p50 at most 1.5 times `Session::run`'s.
//!
//! The model is the demo architecture with seeded random weights (latency depends on the shape, not the
//! values), standardized and calibrated on the real features of the bundled ES ticks, whose 120,000 trades feed
//! the stream in order. At start it prints p50 / p99 / p99.9 of both over single calls timed one by one (the
//! median cost of an empty timer pair subtracted, as `tickq bench` does) and their ratio; then criterion
//! measures both back to back. Run pinned to one core: `taskset -c 1 cargo bench --bench trade_to_signal`
//! (`-- --quick` for a short criterion run; `TICKQ_BENCH_CALLS` sets the timed calls, 200 000 by default).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array2;
use tickq_core::features::Trade;
use tickq_core::stream::StreamSession;
use tickq_core::{Model, Session};
use tickq_host::data::{self, FeatureConfig};
use tickq_host::model::{Architecture, Sequential};
use tickq_host::quant::{ExportInfo, QuantConfig, static_quantize};

/// The demo blob (random weights, real standardization and calibration), the valid feature rows of the bundled
/// file and its trades in device units.
fn build() -> (Vec<u8>, Array2<f32>, Vec<Trade>) {
    let trades = data::load_trades(&data::default_data_path().expect("bundled data"))
        .expect("bundled data loads");
    let config = FeatureConfig::default();
    let features = data::compute_features(&trades, &config).expect("features");
    let rows: Vec<usize> = (0..trades.len()).filter(|&i| features.valid[i]).collect();
    let f = features.feature_count();
    let x = Array2::from_shape_fn((rows.len(), f), |(r, c)| features.values[[rows[r], c]]);
    let mean: Vec<f32> = (0..f).map(|c| x.column(c).mean().unwrap_or(0.0)).collect();
    let std: Vec<f32> = (0..f).map(|c| x.column(c).std(0.0).max(1e-6)).collect();
    let arch = Architecture::from_toml_str(tickq_host::steps::DEMO_ARCH).expect("demo arch");
    let model = Sequential::new(arch, 11).expect("model builds");
    let step = (rows.len() / 1024).max(1);
    let calibration = Array2::from_shape_fn((rows.len() / step, f), |(r, c)| {
        (x[[r * step, c]] - mean[c]) / std[c]
    });
    let info = ExportInfo {
        name: "demo-mlp".into(),
        feature_names: features.names.clone(),
        label_names: vec!["down".into(), "flat".into(), "up".into()],
        mean,
        std,
        data_hash: [0; 32],
        feature_spec: Some(config.to_spec().expect("default spec")),
    };
    let q = static_quantize(&model, calibration.view(), &info, &QuantConfig::default())
        .expect("demo quantizes");
    let device = data::core_trades(&trades, &config).expect("on the grid");
    (q.blob, x, device)
}

fn trade_to_signal(c: &mut Criterion) {
    let (blob, rows, trades) = build();
    let model = Model::load(&blob).expect("blob loads");
    let calls = std::env::var("TICKQ_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let vectors = tickq_host::eval::measure_latency(&model, rows.view(), calls);
    let stream = tickq_host::replay::measure_trade_latency(&model, &trades, calls)
        .expect("the demo blob streams");
    println!(
        "demo model, {} backend, {calls} single calls each (ns, p50 / p99 / p99.9):",
        vectors.backend
    );
    println!(
        "  Session::run (features in):      {:.0} / {:.0} / {:.0}",
        vectors.p50, vectors.p99, vectors.p999
    );
    println!(
        "  StreamSession::push_trade (raw): {:.0} / {:.0} / {:.0}",
        stream.p50, stream.p99, stream.p999
    );
    println!(
        "  raw trade to signal / features to signal at p50: {:.2}x (target <= 1.5x)",
        stream.p50 / vectors.p50
    );

    let mut group = c.benchmark_group("trade_to_signal");
    group.throughput(Throughput::Elements(1));
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut session = Session::new(&model, &mut arena).expect("exact arena");
    let rows: Vec<Vec<f32>> = rows.rows().into_iter().map(|r| r.to_vec()).collect();
    let mut i = 0usize;
    group.bench_function("session_run", |b| {
        b.iter(|| {
            i = (i + 1) % rows.len();
            black_box(session.run(black_box(&rows[i])).signal())
        })
    });
    let mut stream_arena = vec![0u8; StreamSession::arena_bytes(&model).expect("streams")];
    let mut state = vec![0i64; StreamSession::state_words(&model).expect("has a spec")];
    let mut stream = StreamSession::new(&model, &mut stream_arena, &mut state).expect("fits");
    let mut j = 0usize;
    group.bench_function("push_trade", |b| {
        b.iter(|| {
            if j == trades.len() {
                stream.reset();
                j = 0;
            }
            let tick = stream.push_trade(black_box(&trades[j]));
            j += 1;
            black_box(tick.map(|t| t.prediction().map(|p| p.signal())).ok())
        })
    });
    group.finish();
}

criterion_group!(benches, trade_to_signal);
criterion_main!(benches);
