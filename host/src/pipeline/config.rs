//! The pipeline config file: a `[data]` table and an ordered list of `[[stages]]`.
//!
//! Parsing checks everything that can be checked without data: every stage's kind and fields, every numeric
//! setting against its range in [`crate::limits`], every `from` (it must name an earlier stage of the right sort),
//! the architecture files (against the model limits and the `[data]` window), the pruning plans, the quantization
//! settings (`dynamic = true` only for a model dynamic quantization supports) and the export settings (the C
//! symbol, and test vectors the blob can have), so a typo or an impossible setting fails before any training
//! starts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::data::{self, DatasetConfig, FeatureConfig, LabelConfig, SplitConfig};
use crate::limits::{self, Count, Real, excerpt};
use crate::model::{Architecture, OptimizerConfig};
use crate::prune::{Norm, PolynomialSchedule, PruneMethod, PruningPlan};
use crate::quant::QuantConfig;
use crate::quant::config::RawQuantConfig;
use crate::train::{ClassWeights, TrainConfig};
use tickq_core::encode::{EncodeOptions, Target, WeightFormat};

use super::StagesError;

/// The `[data]` table: where the trades come from and how samples are built.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Trade CSV, relative to the config file; absent means the bundled ES ticks.
    pub csv: Option<PathBuf>,
    /// Window length in trades (default 1).
    pub time_steps: Option<usize>,
    /// Feature settings (default: the 29 features of docs/DATA.md).
    pub features: Option<FeatureConfig>,
    /// Label settings (horizon, dead band).
    pub labels: Option<LabelConfig>,
    /// Split settings; absent means 70 / 15 / 15 with the smallest leak-free gap.
    pub split: Option<SplitConfig>,
}

impl DataSection {
    /// The dataset settings these fields describe.
    pub fn dataset(&self) -> DatasetConfig {
        let mut d = DatasetConfig::default();
        if let Some(t) = self.time_steps {
            d.time_steps = t;
        }
        if let Some(f) = &self.features {
            d.features = f.clone();
        }
        if let Some(l) = self.labels {
            d.labels = l;
        }
        d
    }
}

/// A `train` stage as written: a fresh model trained on the training split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainStage {
    /// A bundled shape name (`demo-mlp`, `conv-window`, ...) or an architecture file relative to the config.
    pub arch: String,
    /// Maximum epochs.
    pub epochs: Option<usize>,
    /// Mini-batch size.
    pub batch_size: Option<usize>,
    /// `adam` (default) or `sgd`.
    pub optimizer: Option<String>,
    /// Learning rate (default 1e-3 for Adam, 1e-2 for SGD).
    pub lr: Option<f32>,
    /// SGD momentum (default 0.9).
    pub momentum: Option<f32>,
    /// Early-stopping patience in epochs (0 never stops early).
    pub patience: Option<usize>,
    /// Seed of initialization and shuffling.
    pub seed: Option<u64>,
    /// `none` (default) or `balanced`.
    pub class_weights: Option<String>,
    /// Shuffle every epoch (default true).
    pub shuffle: Option<bool>,
}

/// A `prune` stage as written: magnitude pruning of an earlier model, with optional fine-tuning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneStage {
    /// The stage whose model is pruned (train, prune or distill).
    pub from: String,
    /// `unstructured`, `global`, `structured` or `nm`.
    pub method: String,
    /// Target sparsity in `[0, 1)` (the final one for a gradual schedule); not used by `nm`.
    pub amount: Option<f32>,
    /// Layer names (default: every prunable layer).
    pub layers: Option<Vec<String>>,
    /// Structured: 0 removes output channels, 1 input channels.
    pub dim: Option<usize>,
    /// Structured: the ranking norm, `1`, `2` or `"inf"`.
    pub norm: Option<NormValue>,
    /// N:M: weights kept per group (default 2).
    pub n: Option<usize>,
    /// N:M: group size (default 4).
    pub m: Option<usize>,
    /// `one-shot` (default) or `gradual`.
    pub schedule: Option<String>,
    /// Gradual: initial sparsity.
    pub initial: Option<f32>,
    /// Gradual: number of steps (default 4).
    pub steps: Option<usize>,
    /// Fine-tuning epochs after each step (default 2 when gradual, 0 otherwise).
    pub fine_tune_epochs: Option<usize>,
    /// Fine-tuning learning rate (default: that of the stage that trained the model, with its optimizer).
    pub lr: Option<f32>,
    /// Fine-tuning batch size (default: that of the stage that trained the model).
    pub batch_size: Option<usize>,
    /// Fine-tuning seed (default: that of the stage that trained the model).
    pub seed: Option<u64>,
}

/// A norm written as a number (`1`, `2`) or a string (`"inf"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NormValue {
    /// `1` or `2`.
    Number(i64),
    /// `"1"`, `"2"`, `"inf"`, `"l1"`, ...
    Text(String),
}

/// A `distill` stage as written: a student trained against an earlier model's soft targets
/// ([`crate::distill::distill_train`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillStage {
    /// The teacher: a train, prune or distill stage.
    pub teacher: String,
    /// A fresh student: a bundled shape name or an architecture file relative to the config.
    pub student: Option<String>,
    /// Or an earlier model stage as the student (a pruned model keeps its masks).
    pub student_from: Option<String>,
    /// Softmax temperature `T` (default 4).
    pub temperature: Option<f32>,
    /// Weight of the soft term (default 0.7).
    pub alpha: Option<f32>,
    /// Maximum epochs.
    pub epochs: Option<usize>,
    /// Mini-batch size.
    pub batch_size: Option<usize>,
    /// `adam` (default) or `sgd`.
    pub optimizer: Option<String>,
    /// Learning rate.
    pub lr: Option<f32>,
    /// SGD momentum.
    pub momentum: Option<f32>,
    /// Early-stopping patience.
    pub patience: Option<usize>,
    /// Seed of the student's initialization and the shuffling.
    pub seed: Option<u64>,
    /// `none` or `balanced`.
    pub class_weights: Option<String>,
    /// Shuffle every epoch.
    pub shuffle: Option<bool>,
}

/// A `quantize` stage as written: calibration on the training split and an int8 blob.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantizeStage {
    /// The stage whose model is quantized.
    pub from: String,
    /// `x86`, `arm` or `fpga`.
    pub backend: Option<String>,
    /// `qint8` or `quint8`.
    pub dtype: Option<String>,
    /// 7-bit activations.
    pub reduce_range: Option<bool>,
    /// `minmax`, `moving_average_minmax`, `percentile`, `mse` or `kl`.
    pub observer: Option<String>,
    /// Percentile observer setting.
    pub percentile: Option<f64>,
    /// Moving-average observer setting.
    pub averaging_constant: Option<f64>,
    /// Calibration samples from the training split.
    pub calibration_samples: Option<usize>,
    /// `auto` (default), `dense`, `smallest`, `blocked`, `dense-dot`, `dense-dsp`, `sparse`, `columns`,
    /// `packed` or `nm` (as `tickq quantize --weight-format`).
    pub weight_format: Option<String>,
    /// The machine the blob is for, as `tickq quantize --target`: `x86-64-v4`, `x86-64-v3`, `x86-64`,
    /// `aarch64`, `cortex-m4`, `cortex-m0` or `riscv32` (default: the machine the pipeline runs on).
    pub target: Option<String>,
    /// Single-sample calls timed for the latency percentiles (default 200 000).
    pub latency_calls: Option<usize>,
    /// `true`: dynamic quantization (no calibration; MLPs of Dense + ReLU/ReLU6 only, see docs/ARITHMETIC.md); the
    /// calibration settings are then unused.
    pub dynamic: Option<bool>,
}

/// An `export` stage as written: a quantize stage's blob as a device file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportStage {
    /// The quantize stage whose blob is exported.
    pub from: String,
    /// `blob` (default), `c-header` or `rust`.
    pub format: Option<String>,
    /// Output file name inside the stage directory (default `model.blob`, `model.h` or `model.rs`).
    pub file: Option<String>,
    /// C symbol prefix for `c-header` (default: from the model name).
    pub symbol: Option<String>,
    /// Test vectors from the test split, written beside the export as `.tqv` (default 0).
    pub vectors: Option<usize>,
    /// `auto` (default: int8 for a static blob, f32 for a dynamic one), `int8` or `f32` test-vector inputs.
    pub vector_input: Option<String>,
}

/// What a stage does, with its settings resolved.
#[derive(Debug, Clone)]
pub enum StageSpec {
    /// Train a fresh model.
    Train {
        /// The settings as written.
        raw: TrainStage,
        /// The architecture.
        arch: Architecture,
        /// The architecture's source text (part of the fingerprint).
        arch_text: String,
        /// The training settings.
        config: TrainConfig,
    },
    /// Prune an earlier model.
    Prune {
        /// The settings as written.
        raw: PruneStage,
        /// The plan.
        plan: PruningPlan,
    },
    /// Distill a teacher into a student.
    Distill {
        /// The settings as written.
        raw: DistillStage,
        /// The fresh student's architecture and its source text (`None` with `student_from`).
        student: Option<(Architecture, String)>,
        /// Temperature and alpha.
        distill: crate::distill::DistillConfig,
        /// The training settings.
        config: TrainConfig,
    },
    /// Quantize an earlier model.
    Quantize {
        /// The settings as written.
        raw: QuantizeStage,
        /// The quantization settings.
        config: QuantConfig,
        /// The blob's weight format and target.
        options: EncodeOptions,
        /// Latency calls.
        latency_calls: usize,
    },
    /// Export a quantize stage's blob.
    Export {
        /// The settings as written.
        raw: ExportStage,
        /// The format.
        format: crate::export::Format,
        /// The file name in the stage directory.
        file: String,
        /// Test-vector input kind; `None`: [`crate::export::VectorInput::for_model`].
        vector_input: Option<crate::export::VectorInput>,
    },
}

/// What a stage produces, so `from` can be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Produces {
    /// An f32 model (checkpoint).
    Model,
    /// An int8 blob.
    Blob,
    /// Device files only.
    Files,
}

impl StageSpec {
    /// The kind as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            StageSpec::Train { .. } => "train",
            StageSpec::Prune { .. } => "prune",
            StageSpec::Distill { .. } => "distill",
            StageSpec::Quantize { .. } => "quantize",
            StageSpec::Export { .. } => "export",
        }
    }

    /// What the stage produces.
    pub fn produces(&self) -> Produces {
        match self {
            StageSpec::Train { .. } | StageSpec::Prune { .. } | StageSpec::Distill { .. } => {
                Produces::Model
            }
            StageSpec::Quantize { .. } => Produces::Blob,
            StageSpec::Export { .. } => Produces::Files,
        }
    }

    /// The stages it reads from, with the field that names each; the first is its main input.
    pub fn inputs(&self) -> Vec<(&'static str, &str)> {
        match self {
            StageSpec::Train { .. } => vec![],
            StageSpec::Prune { raw, .. } => vec![("from", &raw.from)],
            StageSpec::Distill { raw, .. } => std::iter::once(("teacher", raw.teacher.as_str()))
                .chain(raw.student_from.as_deref().map(|s| ("student_from", s)))
                .collect(),
            StageSpec::Quantize { raw, .. } => vec![("from", &raw.from)],
            StageSpec::Export { raw, .. } => vec![("from", &raw.from)],
        }
    }

    /// The main stage it reads from, if any.
    pub fn from(&self) -> Option<&str> {
        self.inputs().first().map(|(_, s)| *s)
    }

    /// The training settings of the model this stage produces: a train or distill stage's own, a prune stage's
    /// inherited from the stage it prunes (walking back through earlier prune stages to the train or distill stage
    /// that trained the model), looked up in `earlier`; `None` for stages without a model.
    pub fn training(&self, earlier: &HashMap<String, TrainConfig>) -> Option<TrainConfig> {
        match self {
            StageSpec::Train { config, .. } | StageSpec::Distill { config, .. } => {
                Some(config.clone())
            }
            StageSpec::Prune { raw, .. } => earlier.get(&raw.from).cloned(),
            StageSpec::Quantize { .. } | StageSpec::Export { .. } => None,
        }
    }

    /// The stage's settings as canonical JSON, for the fingerprint.
    pub fn settings_json(&self) -> String {
        let value = match self {
            StageSpec::Train { raw, arch_text, .. } => {
                serde_json::json!({ "settings": raw, "arch_text": arch_text })
            }
            StageSpec::Prune { raw, .. } => serde_json::json!({ "settings": raw }),
            StageSpec::Distill { raw, student, .. } => serde_json::json!({
                "settings": raw,
                "arch_text": student.as_ref().map(|(_, text)| text),
            }),
            // The resolved target, so that a default (`native`) target is re-decided on another machine.
            StageSpec::Quantize { raw, options, .. } => {
                serde_json::json!({ "settings": raw, "target": options.target.name() })
            }
            StageSpec::Export { raw, .. } => serde_json::json!({ "settings": raw }),
        };
        value.to_string()
    }
}

/// One stage: a unique name (its output directory) and what it does.
#[derive(Debug, Clone)]
pub struct Stage {
    /// The stage's name, unique in the config.
    pub name: String,
    /// What it does.
    pub spec: StageSpec,
}

/// A parsed and checked pipeline config.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// The config file, for messages (`<bundled>` for embedded configs).
    pub file: String,
    /// The data settings.
    pub data: DataSection,
    /// The trade CSV, resolved against the config's directory.
    pub csv: PathBuf,
    /// The stages, in order.
    pub stages: Vec<Stage>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    data: DataSection,
    #[serde(default)]
    stages: Vec<toml::Table>,
}

/// Bundled architecture names accepted by `arch`, besides the names in [`crate::shapes::ALL`].
const BUNDLED_ARCHS: &[(&str, &str)] = &[
    ("demo-mlp", crate::shapes::DEMO_MLP),
    ("ref-mlp", crate::shapes::REF_MLP),
    ("ref-conv", crate::shapes::REF_CONV),
    ("ref-wide", crate::shapes::REF_WIDE),
    ("conv-window", crate::shapes::CONV_WINDOW),
];

impl PipelineConfig {
    /// Reads and checks a config file; relative paths in it are relative to its directory.
    ///
    /// # Errors
    ///
    /// [`StagesError::Config`] naming the file, the stage and the field.
    pub fn load(path: &Path) -> Result<Self, StagesError> {
        let text = limits::read_text_limited(path, limits::MAX_CONFIG_BYTES, "a config file")
            .map_err(|e| StagesError::Config {
                file: path.display().to_string(),
                message: e.to_string(),
            })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(&text, &path.display().to_string(), &base)
    }

    /// Parses config text; `file` names it in messages and `base` resolves relative paths.
    ///
    /// # Errors
    ///
    /// [`StagesError::Config`] naming the file, the stage and the field.
    pub fn parse(text: &str, file: &str, base: &Path) -> Result<Self, StagesError> {
        let err = |message: String| StagesError::Config {
            file: file.to_string(),
            message,
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| err(limits::toml_message(&e)))?;
        if let Some(split) = &raw.data.split
            && !(split.train > 0.0
                && split.validation > 0.0
                && split.train + split.validation < 1.0)
        {
            return Err(err(
                "[data.split]: train and validation must be positive and sum to less than 1".into(),
            ));
        }
        raw.data
            .dataset()
            .validate()
            .map_err(|e| err(format!("[data]: {e}")))?;
        let csv = match &raw.data.csv {
            Some(p) => base.join(p),
            None => data::default_data_path(),
        };
        if raw.stages.is_empty() {
            return Err(err(
                "no [[stages]]: a pipeline needs at least one stage".into()
            ));
        }
        let dataset = raw.data.dataset();
        let mut stages: Vec<Stage> = Vec::new();
        let mut produced: HashMap<String, (usize, Produces, &'static str)> = HashMap::new();
        let mut models: HashMap<String, StageModel> = HashMap::new();
        let mut trainings: HashMap<String, TrainConfig> = HashMap::new();
        let all_names: Vec<Option<String>> = raw
            .stages
            .iter()
            .map(|t| t.get("name").and_then(|v| v.as_str()).map(str::to_string))
            .collect();
        for (index, table) in raw.stages.iter().enumerate() {
            let stage = parse_stage(index, table, base, &trainings).map_err(&err)?;
            let label = format!("stage `{}` ({})", stage.name, stage.spec.kind());
            if produced.contains_key(&stage.name) {
                return Err(err(format!(
                    "{label}: field `name`: another stage is already named `{}`; names must be unique",
                    stage.name
                )));
            }
            for (field, from) in stage.spec.inputs() {
                let wanted = match stage.spec {
                    StageSpec::Export { .. } => Produces::Blob,
                    _ => Produces::Model,
                };
                match produced.get(from) {
                    None if all_names.iter().flatten().any(|n| n == from) => {
                        return Err(err(format!(
                            "{label}: field `{field}`: `{from}` comes later in the file; a stage can only use earlier stages"
                        )));
                    }
                    None => {
                        return Err(err(format!(
                            "{label}: field `{field}`: there is no stage named `{from}`"
                        )));
                    }
                    Some(&(_, got, kind)) if got != wanted => {
                        let need = match wanted {
                            Produces::Blob => "a blob (a quantize stage)",
                            _ => "a model (a train, prune or distill stage)",
                        };
                        return Err(err(format!(
                            "{label}: field `{field}`: `{from}` is a {kind} stage, but this stage needs {need}"
                        )));
                    }
                    Some(_) => {}
                }
            }
            let model = check_against_inputs(&stage, &models, &dataset)
                .map_err(|e| err(format!("{label}: {e}")))?;
            models.insert(stage.name.clone(), model);
            if let Some(training) = stage.spec.training(&trainings) {
                trainings.insert(stage.name.clone(), training);
            }
            produced.insert(
                stage.name.clone(),
                (index, stage.spec.produces(), stage.spec.kind()),
            );
            stages.push(stage);
        }
        Ok(Self {
            file: file.to_string(),
            data: raw.data,
            csv,
            stages,
        })
    }

    /// The stage named `name`.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }
}

/// What the checks of later stages need to know of an earlier stage's model or blob.
#[derive(Debug, Clone)]
struct StageModel {
    /// The architecture (for a pruned model: the one it was pruned from; structured pruning keeps its input,
    /// classes and layer kinds).
    arch: Option<Architecture>,
    /// Whether the stage's blob is dynamically quantized.
    dynamic: bool,
}

/// The checks that need the stages a stage reads from (their `from` names are already checked): an architecture
/// against the `[data]` window, `dynamic = true` against dynamic quantization's rules, and an export's symbol and
/// test vectors against its blob. Returns what later stages need to know of this one.
fn check_against_inputs(
    stage: &Stage,
    models: &HashMap<String, StageModel>,
    dataset: &DatasetConfig,
) -> Result<StageModel, String> {
    let arch_of = |name: &str| models.get(name).and_then(|m| m.arch.clone());
    let fits_data = |arch: &Architecture, field: &str| {
        let features = dataset.features.feature_names().len();
        let classes = data::label_names().len();
        if arch.input.features != features || arch.input.time_steps != dataset.time_steps {
            return Err(format!(
                "field `{field}`: architecture `{}` takes {} features x {} time steps, but [data] gives {features} x {}",
                excerpt(&arch.name),
                arch.input.features,
                arch.input.time_steps,
                dataset.time_steps
            ));
        }
        if arch.classes != classes {
            return Err(format!(
                "field `{field}`: architecture `{}` has {} classes, but the labels have {classes}",
                excerpt(&arch.name),
                arch.classes
            ));
        }
        Ok(())
    };
    Ok(match &stage.spec {
        StageSpec::Train { arch, .. } => {
            fits_data(arch, "arch")?;
            StageModel {
                arch: Some(arch.clone()),
                dynamic: false,
            }
        }
        StageSpec::Distill { raw, student, .. } => {
            let arch = match student {
                Some((arch, _)) => {
                    fits_data(arch, "student")?;
                    Some(arch.clone())
                }
                None => raw.student_from.as_deref().and_then(arch_of),
            };
            StageModel {
                arch,
                dynamic: false,
            }
        }
        StageSpec::Prune { raw, .. } => StageModel {
            arch: arch_of(&raw.from),
            dynamic: false,
        },
        StageSpec::Quantize { raw, .. } => {
            let arch = arch_of(&raw.from);
            let dynamic = raw.dynamic == Some(true);
            if dynamic && let Some(arch) = &arch {
                crate::quant::dynamic::check_dynamic_arch(arch)
                    .map_err(|e| format!("field `dynamic`: {e}"))?;
            }
            StageModel { arch, dynamic }
        }
        StageSpec::Export {
            raw,
            format,
            vector_input,
            ..
        } => {
            let from = models.get(&raw.from);
            let dynamic = from.is_some_and(|m| m.dynamic);
            if let Some(arch) = from.and_then(|m| m.arch.as_ref()) {
                if *format == crate::export::Format::CHeader {
                    crate::export::c_symbol(raw.symbol.as_deref().unwrap_or(&arch.name))
                        .map_err(|e| format!("field `symbol`: {e}"))?;
                }
                if raw.vectors.unwrap_or(0) > 0 {
                    let kind = vector_input.unwrap_or(if dynamic {
                        crate::export::VectorInput::F32
                    } else {
                        crate::export::VectorInput::Int8
                    });
                    kind.check(arch.input_len(), arch.classes, dynamic)
                        .map_err(|e| format!("fields `vectors`, `vector_input`: {e}"))?;
                }
            }
            StageModel {
                arch: None,
                dynamic,
            }
        }
    })
}

/// `value` checked against `range`, or a message naming `field`.
fn count(field: &str, range: Count, value: Option<usize>) -> Result<Option<usize>, String> {
    value
        .map(|v| {
            range
                .check_usize(v)
                .map_err(|e| format!("field `{field}`: {e}"))
        })
        .transpose()
}

/// `value` checked against `range`, or a message naming `field`.
fn real(field: &str, range: Real, value: Option<f32>) -> Result<Option<f32>, String> {
    value
        .map(|v| {
            range
                .check_f32(v)
                .map_err(|e| format!("field `{field}`: {e}"))
        })
        .transpose()
}

/// A stage's whole-number fields and its real-number fields, each with its range.
type NumericFields = (
    &'static [(&'static str, Count)],
    &'static [(&'static str, Real)],
);

/// The numeric fields of each stage kind, with their ranges.
fn numeric_fields(kind: &str) -> NumericFields {
    use crate::limits::*;
    match kind {
        "train" => (
            &[
                ("epochs", EPOCHS),
                ("batch_size", BATCH_SIZE),
                ("patience", PATIENCE),
                ("seed", SEED),
            ],
            &[("lr", LR), ("momentum", MOMENTUM)],
        ),
        "distill" => (
            &[
                ("epochs", EPOCHS),
                ("batch_size", BATCH_SIZE),
                ("patience", PATIENCE),
                ("seed", SEED),
            ],
            &[
                ("lr", LR),
                ("momentum", MOMENTUM),
                ("temperature", TEMPERATURE),
                ("alpha", ALPHA),
            ],
        ),
        "prune" => (
            &[
                ("dim", STRUCTURED_DIM),
                ("n", NM),
                ("m", NM),
                ("steps", PRUNE_STEPS),
                ("fine_tune_epochs", FINE_TUNE_EPOCHS),
                ("batch_size", BATCH_SIZE),
                ("seed", SEED),
            ],
            &[("amount", SPARSITY), ("initial", SPARSITY), ("lr", LR)],
        ),
        "quantize" => (
            &[
                ("calibration_samples", CALIBRATION_SAMPLES),
                ("latency_calls", LATENCY_CALLS),
            ],
            &[
                ("percentile", PERCENTILE),
                ("averaging_constant", AVERAGING_CONSTANT),
            ],
        ),
        "export" => (&[("vectors", VECTORS)], &[]),
        _ => (&[], &[]),
    }
}

/// Checks the numeric fields of a stage table before serde reads it, so a negative, fractional, too large or
/// non-numeric value names its field and range (`field `latency_calls`: 1000000000000 is out of range: ...`)
/// instead of serde's bare "invalid value: integer `-1`, expected usize". A whole number written as a float
/// (`epochs = 20.0`, `latency_calls = 1e6`) is refused too: the field takes an integer.
fn check_number_types(table: &toml::Table, kind: &str) -> Result<(), String> {
    let (counts, reals) = numeric_fields(kind);
    for (field, range) in counts {
        match table.get(*field) {
            None => {}
            Some(toml::Value::Integer(i)) => {
                range
                    .parse(&i.to_string())
                    .map_err(|e| format!("field `{field}`: {e}"))?;
            }
            Some(toml::Value::Float(f)) => {
                range
                    .parse(&f.to_string())
                    .map_err(|e| format!("field `{field}`: {e}"))?;
                return Err(format!(
                    "field `{field}`: {f:?} is a float; write {range} as an integer (no decimal point or exponent)"
                ));
            }
            Some(other) => {
                return Err(format!(
                    "field `{field}`: expected {range}, found {}",
                    toml_type(other)
                ));
            }
        }
    }
    for (field, range) in reals {
        match table.get(*field) {
            None | Some(toml::Value::Integer(_) | toml::Value::Float(_)) => {}
            Some(other) => {
                return Err(format!(
                    "field `{field}`: expected {range}, found {}",
                    toml_type(other)
                ));
            }
        }
    }
    Ok(())
}

/// A TOML value's type with its article, for messages (`a string`, `an array`).
fn toml_type(value: &toml::Value) -> String {
    let t = value.type_str();
    let article = if t.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {t}")
}

/// Parses stage `index` of the file; `trainings` holds the training settings of the model each earlier model stage
/// produced (see [`StageSpec::training`]), which a prune stage's fine-tunes start from.
fn parse_stage(
    index: usize,
    table: &toml::Table,
    base: &Path,
    trainings: &HashMap<String, TrainConfig>,
) -> Result<Stage, String> {
    let at = format!("stage {}", index + 1);
    let name = match table.get("name") {
        Some(toml::Value::String(s)) => s.clone(),
        Some(_) => return Err(format!("{at}: field `name` must be a string")),
        None => return Err(format!("{at}: missing field `name`")),
    };
    if name.is_empty()
        || name.len() > limits::MAX_NAME_BYTES
        || name.starts_with('.')
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "{at}: field `name`: `{}` is not a usable directory name (use 1 to {} letters, digits, `-`, `_` and `.`, not starting with `.`)",
            excerpt(&name),
            limits::MAX_NAME_BYTES
        ));
    }
    let kind = match table.get("kind") {
        Some(toml::Value::String(s)) => s.clone(),
        Some(_) => return Err(format!("stage `{name}`: field `kind` must be a string")),
        None => {
            return Err(format!(
                "stage `{name}`: missing field `kind` (train, prune, distill, quantize or export)"
            ));
        }
    };
    let mut rest = table.clone();
    rest.remove("name");
    rest.remove("kind");
    let label = format!("stage `{name}` ({kind})");
    check_number_types(&rest, &kind).map_err(|e| format!("{label}: {e}"))?;
    let value = toml::Value::Table(rest);
    let fail = |e: toml::de::Error| format!("{label}: {}", limits::toml_message(&e));
    let spec = match kind.as_str() {
        "train" => {
            let raw: TrainStage = value.try_into().map_err(fail)?;
            resolve_train(raw, base).map_err(|e| format!("{label}: {e}"))?
        }
        "prune" => {
            let raw: PruneStage = value.try_into().map_err(fail)?;
            let plan =
                prune_plan(&raw, trainings.get(&raw.from)).map_err(|e| format!("{label}: {e}"))?;
            StageSpec::Prune { raw, plan }
        }
        "distill" => {
            let raw: DistillStage = value.try_into().map_err(fail)?;
            resolve_distill(raw, base).map_err(|e| format!("{label}: {e}"))?
        }
        "quantize" => {
            let raw: QuantizeStage = value.try_into().map_err(fail)?;
            resolve_quantize(raw).map_err(|e| format!("{label}: {e}"))?
        }
        "export" => {
            let raw: ExportStage = value.try_into().map_err(fail)?;
            resolve_export(raw).map_err(|e| format!("{label}: {e}"))?
        }
        other => {
            return Err(format!(
                "stage `{name}`: field `kind`: unknown kind `{}`; use train, prune, distill, quantize or export",
                excerpt(other)
            ));
        }
    };
    Ok(Stage { name, spec })
}

fn resolve_arch(name: &str, base: &Path, field: &str) -> Result<(Architecture, String), String> {
    let bundled = BUNDLED_ARCHS
        .iter()
        .chain(crate::shapes::ALL)
        .find(|(n, _)| *n == name);
    match bundled {
        Some((_, text)) => Ok((
            Architecture::from_toml_str(text).map_err(|e| format!("field `{field}`: {e}"))?,
            (*text).to_string(),
        )),
        None => {
            let path = base.join(name);
            let text = limits::read_text_limited(&path, limits::MAX_CONFIG_BYTES, "a config file")
                .map_err(|e| {
                    let names: Vec<&str> = BUNDLED_ARCHS.iter().map(|(n, _)| *n).collect();
                    format!(
                        "field `{field}`: `{name}` is no bundled shape ({}) and {}: {e}",
                        names.join(", "),
                        path.display()
                    )
                })?;
            let arch = Architecture::load(&path).map_err(|e| format!("field `{field}`: {e}"))?;
            Ok((arch, text))
        }
    }
}

/// The training fields shared by `train` and `distill` stages.
struct TrainFields<'a> {
    epochs: Option<usize>,
    batch_size: Option<usize>,
    optimizer: Option<&'a str>,
    lr: Option<f32>,
    momentum: Option<f32>,
    patience: Option<usize>,
    seed: Option<u64>,
    class_weights: Option<&'a str>,
    shuffle: Option<bool>,
}

fn train_config(raw: &TrainFields<'_>) -> Result<TrainConfig, String> {
    let mut config = TrainConfig::default();
    if let Some(e) = count("epochs", limits::EPOCHS, raw.epochs)? {
        config.epochs = e;
    }
    if let Some(b) = count("batch_size", limits::BATCH_SIZE, raw.batch_size)? {
        config.batch_size = b;
    }
    if let Some(p) = count("patience", limits::PATIENCE, raw.patience)? {
        config.patience = p;
    }
    if let Some(s) = raw.seed {
        config.seed = s;
    }
    if let Some(s) = raw.shuffle {
        config.shuffle = s;
    }
    let lr = real("lr", limits::LR, raw.lr)?;
    let momentum = real("momentum", limits::MOMENTUM, raw.momentum)?;
    config.optimizer = match raw.optimizer.unwrap_or("adam") {
        "adam" => {
            if momentum.is_some() {
                return Err(
                    "field `momentum`: only optimizer = \"sgd\" has a momentum (this stage uses adam)"
                        .into(),
                );
            }
            OptimizerConfig::adam(lr.unwrap_or(1e-3))
        }
        "sgd" => OptimizerConfig::sgd(lr.unwrap_or(1e-2), momentum.unwrap_or(0.9)),
        other => {
            return Err(format!(
                "field `optimizer`: `{}`; use adam or sgd",
                excerpt(other)
            ));
        }
    };
    config.class_weights = match raw.class_weights.unwrap_or("none") {
        "none" => ClassWeights::None,
        "balanced" => ClassWeights::Balanced,
        other => {
            return Err(format!(
                "field `class_weights`: `{}`; use none or balanced",
                excerpt(other)
            ));
        }
    };
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

fn resolve_train(raw: TrainStage, base: &Path) -> Result<StageSpec, String> {
    let (arch, arch_text) = resolve_arch(&raw.arch, base, "arch")?;
    let config = train_config(&TrainFields {
        epochs: raw.epochs,
        batch_size: raw.batch_size,
        optimizer: raw.optimizer.as_deref(),
        lr: raw.lr,
        momentum: raw.momentum,
        patience: raw.patience,
        seed: raw.seed,
        class_weights: raw.class_weights.as_deref(),
        shuffle: raw.shuffle,
    })?;
    Ok(StageSpec::Train {
        raw,
        arch,
        arch_text,
        config,
    })
}

fn resolve_distill(raw: DistillStage, base: &Path) -> Result<StageSpec, String> {
    let student = match (&raw.student, &raw.student_from) {
        (Some(arch), None) => Some(resolve_arch(arch, base, "student")?),
        (None, Some(_)) => None,
        _ => {
            return Err(
                "give exactly one of `student` (an architecture) and `student_from` (an earlier model stage)"
                    .into(),
            );
        }
    };
    let defaults = crate::distill::DistillConfig::default();
    let distill = crate::distill::DistillConfig {
        temperature: raw.temperature.unwrap_or(defaults.temperature),
        alpha: raw.alpha.unwrap_or(defaults.alpha),
    };
    distill
        .validate()
        .map_err(|e| format!("fields `temperature`, `alpha`: {e}"))?;
    let config = train_config(&TrainFields {
        epochs: raw.epochs,
        batch_size: raw.batch_size,
        optimizer: raw.optimizer.as_deref(),
        lr: raw.lr,
        momentum: raw.momentum,
        patience: raw.patience,
        seed: raw.seed,
        class_weights: raw.class_weights.as_deref(),
        shuffle: raw.shuffle,
    })?;
    Ok(StageSpec::Distill {
        raw,
        student,
        distill,
        config,
    })
}

/// The plan of a prune stage; its fine-tunes keep `upstream`, the settings the pruned model was trained with,
/// except for what the stage sets (`fine_tune_epochs`, `lr`, `batch_size`, `seed`).
fn prune_plan(raw: &PruneStage, upstream: Option<&TrainConfig>) -> Result<PruningPlan, String> {
    let norm = match &raw.norm {
        None => Ok(Norm::L1),
        Some(NormValue::Number(n)) => Norm::from_str(&n.to_string()),
        Some(NormValue::Text(s)) => Norm::from_str(s),
    }
    .map_err(|e| format!("field `norm`: {e}"))?;
    let dim = count("dim", limits::STRUCTURED_DIM, raw.dim)?;
    let n = count("n", limits::NM, raw.n)?;
    let m = count("m", limits::NM, raw.m)?;
    let steps = count("steps", limits::PRUNE_STEPS, raw.steps)?;
    let fine_tune_epochs = count(
        "fine_tune_epochs",
        limits::FINE_TUNE_EPOCHS,
        raw.fine_tune_epochs,
    )?;
    let batch_size = count("batch_size", limits::BATCH_SIZE, raw.batch_size)?;
    let lr = real("lr", limits::LR, raw.lr)?;
    let method = match raw.method.as_str() {
        "unstructured" => PruneMethod::Unstructured {
            layers: raw.layers.clone(),
        },
        "global" => PruneMethod::Global,
        "structured" => PruneMethod::Structured {
            layers: raw.layers.clone(),
            dim: dim.unwrap_or(0),
            norm,
        },
        "nm" => {
            let (n, m) = (n.unwrap_or(2), m.unwrap_or(4));
            if n > m {
                return Err(format!(
                    "fields `n`, `m`: n = {n} is above m = {m}; N:M keeps n of every m weights"
                ));
            }
            PruneMethod::NM {
                n,
                m,
                layers: raw.layers.clone(),
            }
        }
        other => {
            return Err(format!(
                "field `method`: `{}`; use unstructured, global, structured or nm",
                excerpt(other)
            ));
        }
    };
    let amount = match (&method, raw.amount) {
        (PruneMethod::NM { .. }, _) => 0.0,
        (_, Some(a)) => a,
        (_, None) => {
            return Err(format!(
                "missing field `amount` (the {} method needs a target in [0, 1))",
                raw.method
            ));
        }
    };
    let gradual = match raw.schedule.as_deref().unwrap_or("one-shot") {
        "one-shot" | "one_shot" => false,
        "gradual" => true,
        other => {
            return Err(format!(
                "field `schedule`: `{}`; use one-shot or gradual",
                excerpt(other)
            ));
        }
    };
    let schedule = if gradual {
        PolynomialSchedule::new(raw.initial.unwrap_or(0.0), amount, steps.unwrap_or(4))
            .map_err(|e| format!("fields `amount`, `initial`, `steps`: {e}"))?
    } else {
        PolynomialSchedule::one_shot(amount).map_err(|e| format!("field `amount`: {e}"))?
    };
    Ok(PruningPlan {
        method,
        schedule,
        fine_tune: fine_tune_config(
            upstream,
            fine_tune_epochs.unwrap_or(if gradual { 2 } else { 0 }),
            batch_size,
            lr,
            raw.seed,
        ),
    })
}

/// A prune stage's fine-tuning settings: those of `upstream` (the training settings of the model it prunes;
/// [`TrainConfig::default`] when there is none) with `epochs`, and with the batch size, learning rate (of
/// whichever optimizer `upstream` uses) and seed the stage sets.
fn fine_tune_config(
    upstream: Option<&TrainConfig>,
    epochs: usize,
    batch_size: Option<usize>,
    lr: Option<f32>,
    seed: Option<u64>,
) -> TrainConfig {
    let mut config = TrainConfig {
        epochs,
        checkpoint_dir: None,
        ..upstream.cloned().unwrap_or_default()
    };
    if let Some(b) = batch_size {
        config.batch_size = b;
    }
    if let Some(new_lr) = lr {
        match &mut config.optimizer {
            OptimizerConfig::Adam { lr, .. } | OptimizerConfig::Sgd { lr, .. } => *lr = new_lr,
        }
    }
    if let Some(s) = seed {
        config.seed = s;
    }
    config
}

fn resolve_quantize(raw: QuantizeStage) -> Result<StageSpec, String> {
    let q = RawQuantConfig {
        backend: raw.backend.clone(),
        dtype: raw.dtype.clone(),
        reduce_range: raw.reduce_range,
        observer: raw.observer.clone(),
        percentile: raw.percentile,
        averaging_constant: raw.averaging_constant,
        calibration_samples: raw.calibration_samples,
    };
    let config = q.resolve().map_err(|e| e.to_string())?;
    let weight_format = match raw.weight_format.as_deref() {
        None => WeightFormat::Auto,
        Some(s) => WeightFormat::from_str(s)
            .map_err(|e| format!("field `weight_format`: `{}`: {e}", excerpt(s)))?,
    };
    let target = match raw.target.as_deref() {
        None => Target::native(),
        Some(s) => {
            Target::from_str(s).map_err(|e| format!("field `target`: `{}`: {e}", excerpt(s)))?
        }
    };
    let latency_calls = count("latency_calls", limits::LATENCY_CALLS, raw.latency_calls)?;
    Ok(StageSpec::Quantize {
        latency_calls: latency_calls.unwrap_or(200_000),
        raw,
        config,
        options: EncodeOptions {
            weight_format,
            target,
        },
    })
}

fn resolve_export(raw: ExportStage) -> Result<StageSpec, String> {
    use crate::export::{Format, VectorInput};
    let (format, default_file) = match raw.format.as_deref().unwrap_or("blob") {
        "blob" => (Format::Blob, "model.blob"),
        "c-header" | "c_header" => (Format::CHeader, "model.h"),
        "rust" => (Format::Rust, "model.rs"),
        other => {
            return Err(format!(
                "field `format`: `{}`; use blob, c-header or rust",
                excerpt(other)
            ));
        }
    };
    let file = raw.file.clone().unwrap_or_else(|| default_file.into());
    if file.is_empty()
        || file.len() > limits::MAX_NAME_BYTES
        || file.chars().any(char::is_control)
        || file.starts_with('.')
        || file.contains('/')
        || file.contains('\\')
        || file == "stage.json"
        || file == "metrics.json"
    {
        return Err(format!(
            "field `file`: `{}` must be a plain file name (no directories, not stage.json or metrics.json)",
            excerpt(&file)
        ));
    }
    count("vectors", limits::VECTORS, raw.vectors)?;
    let vector_input = match raw.vector_input.as_deref().unwrap_or("auto") {
        "auto" => None,
        "int8" => Some(VectorInput::Int8),
        "f32" => Some(VectorInput::F32),
        other => {
            return Err(format!(
                "field `vector_input`: `{}`; use auto, int8 or f32",
                excerpt(other)
            ));
        }
    };
    Ok(StageSpec::Export {
        raw,
        format,
        file,
        vector_input,
    })
}

#[cfg(test)]
mod tests;
