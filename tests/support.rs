//! Shared fixtures: a small model trained on a slice of the bundled ticks.

use std::sync::OnceLock;

use tickq_host::data::{self, DatasetConfig};
use tickq_host::model::Architecture;
use tickq_host::pipeline::{self, PreparedData};
use tickq_host::quant::{QuantConfig, QuantizedModel};
use tickq_host::train::TrainConfig;

/// Trades of the bundled file used by the end-to-end tests (a contiguous slice
/// from the start, so the tests stay fast on two cores).
pub const SLICE_TRADES: usize = 40_000;

/// A trained f32 model, its data and its quantized blob.
pub struct Fixture {
    pub data: PreparedData,
    pub model: tickq_host::model::Sequential,
    pub quantized: QuantizedModel,
}

/// Trains (once per test binary) the demo architecture for a few epochs on the slice.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let path = data::default_data_path();
        let trades = data::load_trades(&path).expect("bundled data loads");
        let trades = &trades[..SLICE_TRADES];
        let data = pipeline::prepare_from_trades(
            trades,
            "bundled slice".into(),
            [0; 32],
            &DatasetConfig::default(),
            None,
        )
        .expect("slice prepares");
        let arch = Architecture::from_toml_str(pipeline::DEMO_ARCH).expect("demo arch parses");
        let cfg = TrainConfig {
            epochs: 6,
            ..pipeline::demo_train_config()
        };
        let (model, _) = pipeline::train_model(arch, &data, &cfg, &mut |_| {}).expect("trains");
        let quantized =
            pipeline::quantize_model(&model, &data, &QuantConfig::default()).expect("quantizes");
        Fixture {
            data,
            model,
            quantized,
        }
    })
}
