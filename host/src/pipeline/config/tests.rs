//! Tests of `config`.

use super::*;
use crate::model::OptimizerConfig;
use crate::train::ClassWeights;

const TRAIN: &str = "[[stages]]\nname = \"t\"\nkind = \"train\"\narch = \"demo-mlp\"\n";

fn error(text: &str) -> String {
    match PipelineConfig::parse(text, "p.toml", Path::new(".")) {
        Ok(_) => panic!("the config should not parse:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn parses(text: &str) -> PipelineConfig {
    PipelineConfig::parse(text, "p.toml", Path::new(".")).unwrap_or_else(|e| panic!("{e}"))
}

/// A prune stage fine-tunes with the settings of the stage that trained its model (class weights, optimizer,
/// batch size, seed, patience, shuffle), through earlier prune stages, except what it sets itself.
#[test]
fn prune_fine_tunes_keep_the_training_settings() {
    let cfg = parses(
        "[[stages]]\nname = \"t\"\nkind = \"train\"\narch = \"demo-mlp\"\nclass_weights = \"balanced\"\n\
         optimizer = \"sgd\"\nlr = 0.05\nmomentum = 0.5\nbatch_size = 64\nseed = 3\npatience = 2\nshuffle = false\n\
         [[stages]]\nname = \"p1\"\nkind = \"prune\"\nfrom = \"t\"\nmethod = \"global\"\namount = 0.5\nlr = 0.01\n\
         fine_tune_epochs = 3\n\
         [[stages]]\nname = \"p2\"\nkind = \"prune\"\nfrom = \"p1\"\nmethod = \"global\"\namount = 0.7\n\
         batch_size = 32\nfine_tune_epochs = 1\n\
         [[stages]]\nname = \"d\"\nkind = \"distill\"\nteacher = \"p2\"\nstudent = \"demo-mlp\"\nseed = 9\n\
         [[stages]]\nname = \"p3\"\nkind = \"prune\"\nfrom = \"d\"\nmethod = \"global\"\namount = 0.5\n",
    );
    let fine_tune = |name: &str| match &cfg.stage(name).unwrap().spec {
        StageSpec::Prune { plan, .. } => plan.fine_tune.clone(),
        other => panic!("{name} is a {} stage", other.kind()),
    };
    let trained = TrainConfig {
        epochs: 20,
        batch_size: 64,
        optimizer: OptimizerConfig::sgd(0.05, 0.5),
        class_weights: ClassWeights::Balanced,
        patience: 2,
        seed: 3,
        shuffle: false,
        checkpoint_dir: None,
    };
    assert_eq!(
        fine_tune("p1"),
        TrainConfig {
            epochs: 3,
            optimizer: OptimizerConfig::sgd(0.01, 0.5),
            ..trained.clone()
        }
    );
    // p2 prunes p1's model, which `t` trained: p1's own learning rate is not inherited.
    assert_eq!(
        fine_tune("p2"),
        TrainConfig {
            epochs: 1,
            batch_size: 32,
            ..trained.clone()
        }
    );
    // A distill stage's own settings, its defaults included, are what its model was trained with.
    assert_eq!(
        fine_tune("p3"),
        TrainConfig {
            epochs: 0,
            seed: 9,
            ..TrainConfig::default()
        }
    );
}

#[test]
fn training_settings_are_range_checked_before_anything_runs() {
    assert_eq!(
        error(&format!("{TRAIN}epochs = 0\n")),
        "p.toml: stage `t` (train): field `epochs`: 0 is out of range: expected a whole number from 1 to 1000000"
    );
    assert_eq!(
        error(&format!("{TRAIN}optimizer = \"sgd\"\nmomentum = 2.0\n")),
        "p.toml: stage `t` (train): field `momentum`: 2 is out of range: expected a number in [0, 1)"
    );
    assert!(error(&format!("{TRAIN}momentum = 0.5\n")).contains(
        "field `momentum`: only optimizer = sgd uses it (this run has optimizer = adam)"
    ),);
    assert!(error(&format!("{TRAIN}lr = -0.1\n")).contains("field `lr`: -0.1 is out of range"));
    assert!(error(&format!("{TRAIN}lr = nan\n")).contains("field `lr`: NaN is out of range"));
    assert!(
        error(&format!("{TRAIN}batch_size = 0\n"))
            .contains("field `batch_size`: 0 is out of range")
    );
    let distill = format!(
        "{TRAIN}[[stages]]\nname = \"d\"\nkind = \"distill\"\nteacher = \"t\"\nstudent = \"demo-mlp\"\nepochs = 0\n"
    );
    assert!(
        error(&distill)
            .starts_with("p.toml: stage `d` (distill): field `epochs`: 0 is out of range")
    );
    parses(&format!(
        "{TRAIN}optimizer = \"sgd\"\nmomentum = 0.5\nepochs = 1\n"
    ));
}

#[test]
fn pruning_and_quantization_counts_are_range_checked() {
    let prune = format!("{TRAIN}[[stages]]\nname = \"p\"\nkind = \"prune\"\nfrom = \"t\"\n");
    assert_eq!(
        error(&format!(
            "{prune}method = \"global\"\namount = 0.5\nschedule = \"gradual\"\nsteps = 1000000000000\n"
        )),
        "p.toml: stage `p` (prune): field `steps`: 1000000000000 is out of range: expected a whole number from 1 to 1000"
    );
    assert!(
        error(&format!("{prune}method = \"nm\"\nn = 5\nm = 4\n"))
            .contains("fields `n`, `m`: n = 5 is above m = 4")
    );
    assert!(
        error(&format!(
            "{prune}method = \"structured\"\namount = 0.5\ndim = 2\n"
        ))
        .contains("field `dim`: 2 is out of range")
    );
    let quantize = format!("{TRAIN}[[stages]]\nname = \"q\"\nkind = \"quantize\"\nfrom = \"t\"\n");
    assert_eq!(
        error(&format!("{quantize}latency_calls = 1000000000000\n")),
        "p.toml: stage `q` (quantize): field `latency_calls`: 1000000000000 is out of range: expected a whole number from 1 to 10000000"
    );
    assert!(
        error(&format!("{quantize}latency_calls = 0\n"))
            .contains("field `latency_calls`: 0 is out of range")
    );
    // A long value is shown cut, not echoed whole.
    let long = error(&format!(
        "{quantize}observer = \"{}\"\n",
        "o".repeat(10_000_000)
    ));
    assert!(
        long.len() < 400 && long.contains("… (10000000 bytes)"),
        "{} bytes",
        long.len()
    );
}

#[test]
fn numbers_of_the_wrong_type_name_their_field_and_range() {
    let quantize = format!("{TRAIN}[[stages]]\nname = \"q\"\nkind = \"quantize\"\nfrom = \"t\"\n");
    // A float too large for the field gets the range, not serde's "expected usize".
    assert_eq!(
        error(&format!("{quantize}latency_calls = 1e12\n")),
        "p.toml: stage `q` (quantize): field `latency_calls`: 1000000000000 is out of range: expected a whole number from 1 to 10000000"
    );
    // A float in range is still not an integer.
    assert_eq!(
        error(&format!("{quantize}latency_calls = 1e3\n")),
        "p.toml: stage `q` (quantize): field `latency_calls`: 1000.0 is a float; write a whole number from 1 to 10000000 as an integer (no decimal point or exponent)"
    );
    assert_eq!(
        error(&format!("{TRAIN}epochs = -1\n")),
        "p.toml: stage `t` (train): field `epochs`: -1 is out of range: expected a whole number from 1 to 1000000"
    );
    assert_eq!(
        error(&format!("{TRAIN}epochs = 2.5\n")),
        "p.toml: stage `t` (train): field `epochs`: `2.5` is not a whole number from 1 to 1000000"
    );
    assert_eq!(
        error(&format!("{TRAIN}seed = \"seven\"\n")),
        "p.toml: stage `t` (train): field `seed`: expected a whole number of at least 0, found a string"
    );
    assert_eq!(
        error(&format!("{TRAIN}lr = [1]\n")),
        "p.toml: stage `t` (train): field `lr`: expected a finite number > 0, found an array"
    );
    let export = format!(
        "{quantize}[[stages]]\nname = \"e\"\nkind = \"export\"\nfrom = \"q\"\nvectors = -5\n"
    );
    assert!(error(&export).ends_with(
        "field `vectors`: -5 is out of range: expected a whole number from 0 to 4294967295"
    ));
    // An integer where a real number goes is fine.
    parses(&format!("{TRAIN}lr = 1\nepochs = 3\n"));
}

#[test]
fn toml_errors_give_their_reason_on_the_first_line() {
    let e = error(&format!("[data]\nrows = 5\n{TRAIN}"));
    assert_eq!(
        e.lines().next().unwrap(),
        "p.toml: TOML parse error at line 2, column 1: unknown field `rows`, expected one of `csv`, `time_steps`, `features`, `labels`, `split`, `read`, `input`, `market`"
    );
}

#[test]
fn architectures_must_fit_the_data_window_and_dynamic_quantization() {
    assert_eq!(
        error(&format!("[data]\ntime_steps = 4\n{TRAIN}")),
        "p.toml: stage `t` (train): field `arch`: architecture `demo-mlp` takes 29 features x 1 time steps, but [data] gives 29 x 4"
    );
    let conv = "[data]\ntime_steps = 32\n[[stages]]\nname = \"t\"\nkind = \"train\"\narch = \"conv-window\"\n";
    parses(conv);
    let quantize = "[[stages]]\nname = \"q\"\nkind = \"quantize\"\nfrom = \"t\"\ndynamic = true\n";
    // A convolutional model quantizes dynamically.
    parses(&format!("{conv}{quantize}"));
    let dir = std::env::temp_dir().join(format!("tickq-config-dynamic-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("tanh.toml"),
        "name = \"tanh\"\nclasses = 3\n[input]\ntime_steps = 1\nfeatures = 29\n\
         [[layers]]\ntype = \"dense\"\nout = 8\n[[layers]]\ntype = \"tanh\"\n[[layers]]\ntype = \"dense\"\nout = 3\n",
    )
    .unwrap();
    let tanh = "[[stages]]\nname = \"t\"\nkind = \"train\"\narch = \"tanh.toml\"\n";
    let error_in_dir = |text: &str| match PipelineConfig::parse(text, "p.toml", &dir) {
        Ok(_) => panic!("the config should not parse:\n{text}"),
        Err(e) => e.to_string(),
    };
    let e = error_in_dir(&format!("{tanh}{quantize}"));
    assert!(
        e.starts_with("p.toml: stage `q` (quantize): field `dynamic`: layer 1 (#1 tanh)")
            && e.contains("dynamic quantization supports only Dense and Conv1d layers"),
        "{e}"
    );
    // Through a prune stage too: the pruned model keeps its architecture's kinds.
    let pruned = error_in_dir(&format!(
        "{tanh}[[stages]]\nname = \"p\"\nkind = \"prune\"\nfrom = \"t\"\nmethod = \"global\"\namount = 0.5\n\
         [[stages]]\nname = \"q\"\nkind = \"quantize\"\nfrom = \"p\"\ndynamic = true\n"
    ));
    assert!(pruned.contains("field `dynamic`"), "{pruned}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn export_settings_are_checked_against_the_blob_they_export() {
    let dynamic = format!(
        "{TRAIN}[[stages]]\nname = \"q\"\nkind = \"quantize\"\nfrom = \"t\"\ndynamic = true\n\
         [[stages]]\nname = \"e\"\nkind = \"export\"\nfrom = \"q\"\nvectors = 5\n"
    );
    // The default (auto) writes f32 vectors for a dynamic blob.
    let cfg = parses(&dynamic);
    assert!(matches!(
        cfg.stage("e").map(|s| &s.spec),
        Some(StageSpec::Export {
            vector_input: None,
            ..
        })
    ));
    let e = error(&format!("{dynamic}vector_input = \"int8\"\n"));
    assert!(
        e.starts_with("p.toml: stage `e` (export): fields `vectors`, `vector_input`: int8 test vectors cannot hold a dynamic blob's input"),
        "{e}"
    );
    parses(&format!("{dynamic}vector_input = \"f32\"\n"));
    // 32 x 29 inputs do not fit an int8 vector.
    let wide = "[data]\ntime_steps = 32\n[[stages]]\nname = \"t\"\nkind = \"train\"\narch = \"conv-window\"\n\
                [[stages]]\nname = \"q\"\nkind = \"quantize\"\nfrom = \"t\"\n\
                [[stages]]\nname = \"e\"\nkind = \"export\"\nfrom = \"q\"\nvectors = 3\n";
    assert!(
        error(wide).contains("928 input values are more than the 256"),
        "{}",
        error(wide)
    );
    let header = format!(
        "{TRAIN}[[stages]]\nname = \"q\"\nkind = \"quantize\"\nfrom = \"t\"\n\
         [[stages]]\nname = \"e\"\nkind = \"export\"\nfrom = \"q\"\nformat = \"c-header\"\nsymbol = \"---\"\n"
    );
    assert!(
        error(&header).contains("field `symbol`: symbol `---` has no letters or digits"),
        "{}",
        error(&header)
    );
    assert!(
        error(&format!("{dynamic}vector_input = \"bf16\"\n")).contains("use auto, int8 or f32")
    );
}

#[test]
fn label_settings_override_the_defaults_field_by_field() {
    let config = parses(&format!("[data.labels]\nhorizon = 50\n{TRAIN}"));
    let labels = config.data.dataset().labels;
    assert_eq!(labels.horizon, 50);
    assert_eq!(
        labels.dead_band,
        crate::data::LabelConfig::default().dead_band
    );
    assert!(
        error(&format!("[data.labels]\nhorizn = 5\n{TRAIN}")).contains(
            "unknown field `horizn`, expected one of `horizon`, `dead_band`, `dead_band_bps`"
        )
    );
    let bps = parses(&format!("[data.labels]\ndead_band_bps = 20.0\n{TRAIN}"));
    assert_eq!(
        bps.data.dataset().labels.dead_band,
        crate::data::DeadBand::Bps(20.0)
    );
    let both = error(&format!(
        "[data.labels]\ndead_band = 0.1\ndead_band_bps = 20.0\n{TRAIN}"
    ));
    assert!(
        both.contains(
            "labels: give either dead_band (price units) or dead_band_bps (basis points of the price), not both"
        ),
        "{both}"
    );
}

#[test]
fn read_settings_reach_the_dataset_and_are_checked_when_parsed() {
    let config = parses(&format!(
        "[data.read]\ncolumns = {{ time = \"Time\", size = \"volume_btc\" }}\ntime_format = \"%d.%m.%Y %H:%M:%S%.3f\"\ntime_zone = \"Europe/Zurich\"\nskip_rows = 1\n{TRAIN}"
    ));
    let read = config.data.dataset().read;
    assert_eq!(read.skip_rows, Some(1));
    assert_eq!(
        read.columns.map(|c| c.to_string()).as_deref(),
        Some("time=Time,size=volume_btc")
    );
    let e = error(&format!("[data.read]\ntime_format = \"%i\"\n{TRAIN}"));
    assert!(
        e.contains("time_format: `%i` is not a strftime pattern"),
        "{e}"
    );
    let e = error(&format!("[data.read]\ndelimeter = \";\"\n{TRAIN}"));
    assert!(e.contains("unknown field `delimeter`"), "{e}");
}

#[test]
fn feature_settings_keep_the_defaults_of_absent_keys() {
    let config = parses(&format!(
        "[data]\ntime_steps = 1\n[data.features]\nsession_gap_ms = 60000\nreturn_lags_trades = [1, 5, 20, 50]\n{TRAIN}"
    ));
    let features = config.data.dataset().features;
    let defaults = crate::data::FeatureConfig::default();
    assert_eq!(features.session_gap_ms, 60_000);
    assert_eq!(features.return_lags_trades, [1, 5, 20, 50]);
    assert_eq!(features.capacity, defaults.capacity);
    assert_eq!(features.flow_windows_trades, defaults.flow_windows_trades);
    assert_eq!(config.data.options().features.session_gap_ms, Some(60_000));
}

#[test]
fn the_input_kind_and_its_settings_come_from_the_data_table() {
    let section: super::DataSection = toml::from_str(
        "input = \"quotes\"\n[market]\nbook_ofi_windows = [5]\n[features]\ntick_size = 0.0001\n",
    )
    .expect("reads");
    let input = section.dataset().input;
    assert_eq!(input.kind, crate::data::DataInput::Quotes);
    assert_eq!(input.market.book_ofi_windows, [5]);
    assert_eq!(input.market.tick_size, 0.0001);
    assert_eq!(input.market.book_return_lags, [1, 10, 100]);
    // The architecture is checked against the kind's features (9 book features here).
    let e = error(&format!(
        "[data]\ninput = \"quotes\"\n[data.market]\nbook_ofi_windows = [5]\n{TRAIN}"
    ));
    assert!(
        e.ends_with("takes 29 features x 1 time steps, but [data] gives 9 x 1"),
        "{e}"
    );
    // Absent, the kind is trades and nothing is stored.
    assert!(parses(TRAIN).data.dataset().input.is_default());
    let e = error(&format!("[data]\ninput = \"ticks\"\n{TRAIN}"));
    assert!(
        e.contains("unknown variant `ticks`, expected one of `trades`, `bars`, `quotes`, `book`"),
        "{e}"
    );
}
