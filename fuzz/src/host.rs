//! The host's readers, each followed by the first thing `tickq` does with what it read.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ndarray::Array2;
use tickq_host::checkpoint::decode_safetensors;
use tickq_host::data::{DatasetConfig, Trade, parse_trades};
use tickq_host::model::{Architecture, LayerSpec, Sequential, Shape};
use tickq_host::pipeline::PipelineConfig;
use tickq_host::steps::{self, Preprocess};

/// The most parameters (and values per tensor) of an architecture the harness builds a model for.
///
/// `Architecture::validate` refuses more than `tickq_host::limits::MAX_PARAMETERS` (32 Mi), still far more than
/// one fuzz input may take to build and run; the harness parses and validates every architecture but builds only
/// those below this size, so that it fuzzes the reader at speed, not the machine's memory.
pub const MAX_PARAMETERS: usize = 1 << 20;

/// The trade CSV reader, then what `tickq train` does with the trades: features, labels, the chronological
/// split and the standardization, with the default dataset settings.
pub fn trades_csv(data: &[u8]) {
    let Ok(trades) = parse_trades(Cursor::new(data), "fuzz.csv") else {
        return;
    };
    assert!(
        !trades.is_empty(),
        "parse_trades returned no trades without an error"
    );
    for t in &trades {
        assert!(t.price.is_finite() && t.price > 0.0, "{t:?}");
        assert!(t.size.is_finite() && t.size >= 0.0, "{t:?}");
    }
    assert!(
        trades
            .windows(2)
            .all(|w| w[0].timestamp_ms <= w[1].timestamp_ms)
    );
    let _ = steps::prepare_from_trades(
        &trades,
        "fuzz.csv".into(),
        [0; 32],
        &DatasetConfig::default(),
        None,
    );
}

/// The parameter count of a validated architecture, or its largest activation when that is larger; `None` when
/// the count overflows.
fn parameters(arch: &Architecture) -> Option<usize> {
    let shapes = arch.shapes().ok()?;
    let mut input = arch.input_shape();
    let mut total = 0usize;
    for (spec, &out) in arch.layers.iter().zip(&shapes) {
        let n = match (spec, input) {
            (LayerSpec::Dense { out: o, .. }, Shape::Flat(i)) => {
                i.checked_mul(*o)?.checked_add(*o)?
            }
            (LayerSpec::Conv1d { out: o, kernel, .. }, Shape::Seq { channels, .. }) => channels
                .checked_mul(*kernel)?
                .checked_mul(*o)?
                .checked_add(*o)?,
            _ => 0,
        };
        total = total.checked_add(n)?.max(out.len());
        input = out;
    }
    Some(total)
}

/// `Architecture::from_toml_str`; for a valid architecture its TOML and JSON round trips, its parameter names,
/// and (below [`MAX_PARAMETERS`]) a model built from it running forward on a small batch.
pub fn arch_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(arch) = Architecture::from_toml_str(text) else {
        return;
    };
    // `to_toml_string` is documented to be read back unchanged; compare the texts, which NaN bounds cannot fool.
    if let Ok(toml) = arch.to_toml_string() {
        let again = Architecture::from_toml_str(&toml)
            .unwrap_or_else(|e| panic!("the TOML tickq wrote does not read back: {e}\n{toml}"));
        assert_eq!(again.to_toml_string().ok().as_deref(), Some(toml.as_str()));
    }
    if let Ok(json) = arch.to_json_string() {
        let again = Architecture::from_json_str(&json)
            .unwrap_or_else(|e| panic!("the JSON tickq wrote does not read back: {e}\n{json}"));
        assert_eq!(again.to_json_string().ok().as_deref(), Some(json.as_str()));
    }
    for i in 0..=arch.layers.len() {
        let _ = arch.param_name(i);
    }
    if parameters(&arch).is_none_or(|n| n > MAX_PARAMETERS) {
        return;
    }
    let width = arch.input_len();
    let Ok(model) = Sequential::new(arch, 7) else {
        return;
    };
    let x = Array2::from_shape_fn(
        (2, width),
        |(r, c)| if r == 0 { 0.0 } else { c as f32 - 3.5 },
    );
    let y = model.forward(x.view());
    assert_eq!(y.dim(), (2, model.arch.classes));
    let _ = model.predict(x.view());
}

/// An empty folder for relative paths in pipeline configs, so that a fuzzed config reads no project file.
fn empty_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("tickq-fuzz-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        dir
    })
}

/// `PipelineConfig::parse`, then what `tickq pipeline` computes before running a stage: each stage's kind,
/// inputs, outputs and fingerprinted settings.
pub fn pipeline_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = PipelineConfig::parse(text, "fuzz.toml", empty_dir()) else {
        return;
    };
    assert!(!config.stages.is_empty());
    let _ = config.data.dataset();
    for stage in &config.stages {
        let _ = (stage.spec.kind(), stage.spec.produces(), stage.spec.from());
        for (_, from) in stage.spec.inputs() {
            assert!(
                config.stage(from).is_some(),
                "stage {} reads a missing stage {from}",
                stage.name
            );
        }
        let settings = stage.spec.settings_json();
        assert!(
            serde_json::from_str::<serde_json::Value>(&settings).is_ok(),
            "{settings}"
        );
    }
}

/// The architecture the safetensors target loads weights into (`fuzz/seeds/safetensors-arch.toml`, which
/// `fuzz/seeds.sh` trains and prunes for this target's seeds): a convolution and a dense layer, so that both tensor
/// layouts and the pruned (`weight_orig` + `weight_mask`) form are reachable.
pub const SAFETENSORS_ARCH: &str = include_str!("../seeds/safetensors-arch.toml");

/// `decode_safetensors`, then what `import_safetensors` and `load_checkpoint` do with the tensors: load them into
/// [`SAFETENSORS_ARCH`]'s model, which then runs forward.
pub fn safetensors(data: &[u8]) {
    let Ok((state, _meta)) = decode_safetensors(data, Path::new("fuzz.safetensors")) else {
        return;
    };
    for (name, shape, values) in &state {
        let n = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        assert_eq!(n, Some(values.len()), "tensor {name}: shape {shape:?}");
    }
    let arch = Architecture::from_toml_str(SAFETENSORS_ARCH).unwrap_or_else(|e| panic!("{e}"));
    let width = arch.input_len();
    let mut model = Sequential::new(arch, 0).unwrap_or_else(|e| panic!("{e}"));
    if model.load_pruned_state_dict(&state).is_err() {
        return;
    }
    let x = Array2::from_shape_fn((2, width), |(r, c)| (r * width + c) as f32 / 4.0);
    assert_eq!(model.forward(x.view()).dim(), (2, model.arch.classes));
}

/// A fixed series of trades (about two hours of a synthetic price walk) for the preprocessing target.
fn trades() -> &'static [Trade] {
    static TRADES: OnceLock<Vec<Trade>> = OnceLock::new();
    TRADES.get_or_init(|| {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut price = 1650.0;
        (0..1500)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                price += f64::from((state % 3) as u8) * 0.25 - 0.25;
                Trade {
                    timestamp_ms: 1_370_000_000_000 + i * 5_000,
                    price,
                    size: 1.0 + (state >> 60) as f64,
                    side: None,
                }
            })
            .collect()
    })
}

/// `preprocess.json` read as every `tickq` command that loads a checkpoint reads it (`Preprocess::parse`, which
/// checks it against the checkpoint's architecture, here [`SAFETENSORS_ARCH`], the architecture `fuzz/seeds.sh`
/// trains the seed's checkpoint with), then what `eval`, `quantize` and `prune` do with an accepted one: rebuild
/// the data with its dataset and split settings and standardize them with its normalizer, which must give finite
/// values of the data's shape.
pub fn preprocess_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let arch = Architecture::from_toml_str(SAFETENSORS_ARCH).unwrap_or_else(|e| panic!("{e}"));
    let Ok(pre) = Preprocess::parse(text, Path::new("preprocess.json"), &arch) else {
        return;
    };
    let Ok(mut prepared) = steps::prepare_from_trades(
        trades(),
        "synthetic".into(),
        [0; 32],
        &pre.dataset,
        Some(&pre.split),
    ) else {
        return;
    };
    assert_eq!(
        prepared.features(),
        arch.input.features,
        "an accepted preprocess.json builds data of another width"
    );
    prepared.normalizer = pre.normalizer.clone();
    let x = prepared.normalized(prepared.splits.train.x.view());
    assert_eq!(x.dim(), prepared.splits.train.x.dim());
    assert!(
        x.iter().all(|v| v.is_finite()),
        "an accepted normalizer gives non-finite features"
    );
}
