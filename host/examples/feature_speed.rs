//! Measures the core's feature engine on the bundled trade file: nanoseconds per trade for the default 29
//! features, the best of several passes over all 120,000 trades (one `FeatureEngine::push` per trade, the
//! state reset between passes), and the whole host `compute_features` for comparison.
//!
//! Run pinned to one core for stable numbers: `taskset -c 1 cargo run --release -p tickq-host --example
//! feature_speed [CSV]`.

use std::time::Instant;

use tickq_core::features::{FeatureEngine, FeatureSpec, Side, Trade};
use tickq_host::data::{self, FeatureConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = match std::env::args().nth(1) {
        Some(path) => path.into(),
        None => data::default_data_path()?,
    };
    let trades = data::load_trades(&path)?;
    let cfg = FeatureConfig::default();
    let spec: FeatureSpec = cfg.to_spec()?;
    let core: Vec<Trade> = trades
        .iter()
        .map(|t| Trade {
            time_ms: t.timestamp_ms,
            price_ticks: (t.price / spec.tick_size).round() as i64,
            size_lots: (t.size / spec.size_unit).round() as u32,
            side: match t.side {
                None => Side::Unknown,
                Some(data::Side::Buy) => Side::Buy,
                Some(data::Side::Sell) => Side::Sell,
            },
        })
        .collect();
    let mut state = vec![0i64; spec.state_words()];
    let mut engine = FeatureEngine::new(&spec, &mut state)?;
    let mut out = vec![0f32; spec.feature_count()];
    let mut best = f64::INFINITY;
    let mut checksum = 0f64;
    for _ in 0..30 {
        engine.reset();
        let start = Instant::now();
        for trade in &core {
            engine.push(trade, &mut out)?;
            checksum += f64::from(std::hint::black_box(out[0]));
        }
        best = best.min(start.elapsed().as_secs_f64() * 1e9 / core.len() as f64);
    }
    let start = Instant::now();
    let features = data::compute_features(&trades, &cfg)?;
    let host = start.elapsed();
    println!(
        "{} trades, {} features, {} state words: engine {best:.1} ns/trade (best of 30 passes); \
         compute_features {host:?} ({} valid rows, checksum {checksum:.3})",
        core.len(),
        spec.feature_count(),
        spec.state_words(),
        features.valid.iter().filter(|&&v| v).count()
    );
    Ok(())
}
