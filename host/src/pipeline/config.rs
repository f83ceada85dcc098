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

use serde::{Deserialize, Serialize};

use crate::data::{DatasetConfig, SplitConfig};
use crate::limits::{self, excerpt};
use crate::model::Architecture;
use crate::options::fields::{check_known, field_names, part, value_error};
use crate::options::{
    DataOptions, DistillOptions, EncodeChoice, ExportSettings, FeatureOptions, LabelOptions,
    OptionError, PruneOptions, QuantOptions, ReadOptions, TrainOptions,
};
use crate::prune::PruningPlan;
use crate::quant::QuantConfig;
use crate::train::TrainConfig;
use tickq_core::encode::EncodeOptions;

use super::{ConfigError, StageAt, StageProblem, StagesError};

/// The `[data]` table: where the trades come from and how samples are built.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Trade CSV, relative to the config file; absent means the bundled ES ticks.
    pub csv: Option<PathBuf>,
    /// Window length in trades (default 1).
    pub time_steps: Option<usize>,
    /// Feature settings (default: the 29 features of docs/DATA.md); absent keys keep their defaults.
    pub features: Option<FeatureOptions>,
    /// Label settings (horizon, dead band).
    pub labels: Option<LabelOptions>,
    /// Split settings; absent means 70 / 15 / 15 with the smallest leak-free gap.
    pub split: Option<SplitConfig>,
    /// How the file is read (`[data.read]`: columns, time format and zone, delimiter, skip rows, file format).
    pub read: Option<ReadOptions>,
    /// What the file holds: `trades` (default), `bars`, `quotes` or `book`.
    pub input: Option<crate::data::DataInput>,
    /// The bar, book and replay settings of a non-trade input (`[data.market]`, the keys of
    /// [`InputOptions`](crate::options::InputOptions); its `trades` file is relative to the working directory).
    pub market: Option<crate::options::InputOptions>,
}

impl DataSection {
    /// The dataset settings these fields describe.
    pub fn dataset(&self) -> DatasetConfig {
        let mut d = self.options().config();
        if let Some(r) = &self.read {
            d.read = r.clone();
        }
        d
    }

    /// These fields as the [`DataOptions`] the command line gives too.
    pub fn options(&self) -> DataOptions {
        DataOptions {
            time_steps: self.time_steps,
            labels: self.labels.unwrap_or_default(),
            features: self.features.clone().unwrap_or_default(),
            input: {
                let m = self.market.clone().unwrap_or_default();
                crate::options::InputOptions {
                    input: self.input.or(m.input),
                    ..m
                }
            },
        }
    }
}

/// A `train` stage as written: a fresh model trained on the training split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainStage {
    /// A bundled shape name (`demo-mlp`, `conv-window`, ...) or an architecture file relative to the config.
    pub arch: String,
    /// The training settings, from the same table.
    #[serde(skip)]
    pub training: TrainOptions,
}

/// A `prune` stage as written: magnitude pruning of an earlier model, with optional fine-tuning.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PruneStage {
    /// The stage whose model is pruned (train, prune or distill).
    pub from: String,
    /// The pruning settings, from the same table.
    #[serde(flatten)]
    pub options: PruneOptions,
}

/// The one key of their own that prune and export stages have besides their options.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct FromField {
    /// The stage read from.
    from: String,
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
    /// Temperature and alpha, from the same table.
    #[serde(skip)]
    pub distill: DistillOptions,
    /// The student's training settings, from the same table.
    #[serde(skip)]
    pub training: TrainOptions,
}

/// A `quantize` stage as written: calibration on the training split and an int8 blob.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantizeStage {
    /// The stage whose model is quantized.
    pub from: String,
    /// Single-sample calls timed for the latency percentiles (default 200 000).
    pub latency_calls: Option<usize>,
    /// `true`: dynamic quantization (no calibration; Dense and Conv1d with fused ReLU/ReLU6, pools and flatten,
    /// see docs/ARITHMETIC.md); the calibration settings are then unused.
    pub dynamic: Option<bool>,
    /// A file of calibration vectors (`.npy`, `.safetensors`, CSV or Parquet with a header; docs/BYO_MODEL.md),
    /// relative to the config file, calibrated on instead of the training split; its rows are the model's
    /// unstandardized features, as `tickq quantize --calibration` takes them.
    pub calibration: Option<PathBuf>,
    /// The tensor of a safetensors `calibration` file (default: its only tensor, or `inputs` or `x`).
    pub calibration_tensor: Option<String>,
    /// Only rows `"START..END"` of the `calibration` file (0-based, END excluded).
    pub calibration_rows: Option<String>,
    /// Only the first N rows of the `calibration` file.
    pub calibration_count: Option<usize>,
    /// The calibration settings, from the same table.
    #[serde(skip)]
    pub quant: QuantOptions,
    /// The weight format and target, from the same table.
    #[serde(skip)]
    pub encode: EncodeChoice,
}

/// A quantize stage's calibration file, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationFile {
    /// The file, relative paths taken from the config file's directory.
    pub path: PathBuf,
    /// Its tensor, for a safetensors file.
    pub tensor: Option<String>,
    /// The rows calibrated on, `(start, end)`; `None`: all.
    pub rows: Option<(usize, usize)>,
    /// SHA-256 (hex) of the file when the config was read.
    pub sha256: String,
}

/// An `export` stage as written: a quantize stage's blob as a device file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportStage {
    /// The quantize stage whose blob is exported.
    pub from: String,
    /// The export settings, from the same table.
    #[serde(flatten)]
    pub settings: ExportSettings,
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
        /// The calibration file, if the stage names one: where it is, which rows, and its SHA-256 (part of the
        /// fingerprint, so an edited file reruns the stage).
        calibration: Option<CalibrationFile>,
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

    /// The stage's settings as canonical JSON, for the fingerprint: the table's fields as they were read, in key
    /// order, whichever options struct holds them.
    pub fn settings_json(&self) -> String {
        let value = match self {
            StageSpec::Train { raw, arch_text, .. } => serde_json::json!({
                "settings": merged(&[json(raw), json(&raw.training)]),
                "arch_text": arch_text,
            }),
            StageSpec::Prune { raw, .. } => serde_json::json!({ "settings": raw }),
            StageSpec::Distill { raw, student, .. } => serde_json::json!({
                "settings": merged(&[json(raw), json(&raw.distill), json(&raw.training)]),
                "arch_text": student.as_ref().map(|(_, text)| text),
            }),
            // The resolved target, so that a default (`native`) target is re-decided on another machine.
            StageSpec::Quantize {
                raw,
                options,
                calibration,
                ..
            } => serde_json::json!({
                "settings": merged(&[json(raw), json(&raw.quant), json(&raw.encode)]),
                "target": options.target.name(),
                "calibration_sha256": calibration.as_ref().map(|c| &c.sha256),
            }),
            StageSpec::Export { raw, .. } => serde_json::json!({ "settings": raw }),
        };
        value.to_string()
    }
}

/// A settings struct as JSON (they hold only strings, numbers and options of them, which always serialize).
fn json(value: &impl Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}

/// The fields of several JSON objects in one (a JSON object's keys are kept sorted, so the result is the same
/// whichever part a field comes from).
fn merged(parts: &[serde_json::Value]) -> serde_json::Value {
    let mut all = serde_json::Map::new();
    for part in parts {
        if let serde_json::Value::Object(fields) = part {
            all.extend(fields.clone());
        }
    }
    serde_json::Value::Object(all)
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
    /// The trade CSV, resolved against the config's directory; `None` for the bundled ES ticks
    /// ([`crate::data::default_data_path`], found when the pipeline runs).
    pub csv: Option<PathBuf>,
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
                source: Box::new(ConfigError::Read(e)),
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
        let err = |source: ConfigError| StagesError::Config {
            file: file.to_string(),
            source: Box::new(source),
        };
        let raw: RawFile =
            toml::from_str(text).map_err(|e| err(ConfigError::Syntax(Box::new(e))))?;
        if let Some(split) = &raw.data.split
            && !(split.train > 0.0
                && split.validation > 0.0
                && split.train + split.validation < 1.0)
        {
            return Err(err(ConfigError::SplitFractions));
        }
        raw.data
            .dataset()
            .validate()
            .map_err(|e| err(ConfigError::Data(e)))?;
        let csv = raw.data.csv.as_ref().map(|p| base.join(p));
        if raw.stages.is_empty() {
            return Err(err(ConfigError::NoStages));
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
            let at = StageAt::Named {
                name: stage.name.clone(),
                kind: stage.spec.kind().to_string(),
            };
            let fail = |problem: StageProblem| {
                err(ConfigError::Stage {
                    stage: at.clone(),
                    problem: Box::new(problem),
                })
            };
            let field = |field: &str, reason: String| {
                fail(StageProblem::Field {
                    field: field.to_string(),
                    reason,
                })
            };
            if produced.contains_key(&stage.name) {
                return Err(field(
                    "name",
                    format!(
                        "another stage is already named `{}`; names must be unique",
                        stage.name
                    ),
                ));
            }
            for (name, from) in stage.spec.inputs() {
                let wanted = match stage.spec {
                    StageSpec::Export { .. } => Produces::Blob,
                    _ => Produces::Model,
                };
                match produced.get(from) {
                    None if all_names.iter().flatten().any(|n| n == from) => {
                        return Err(field(
                            name,
                            format!(
                                "`{from}` comes later in the file; a stage can only use earlier stages"
                            ),
                        ));
                    }
                    None => {
                        return Err(field(name, format!("there is no stage named `{from}`")));
                    }
                    Some(&(_, got, kind)) if got != wanted => {
                        let need = match wanted {
                            Produces::Blob => "a blob (a quantize stage)",
                            _ => "a model (a train, prune or distill stage)",
                        };
                        return Err(field(
                            name,
                            format!("`{from}` is a {kind} stage, but this stage needs {need}"),
                        ));
                    }
                    Some(_) => {}
                }
            }
            let model = check_against_inputs(&stage, &models, &dataset).map_err(fail)?;
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

/// Parses stage `index` of the file; `trainings` holds the training settings of the model each earlier model stage
/// produced (see [`StageSpec::training`]), which a prune stage's fine-tunes start from.
fn parse_stage(
    index: usize,
    table: &toml::Table,
    base: &Path,
    trainings: &HashMap<String, TrainConfig>,
) -> Result<Stage, ConfigError> {
    let problem_at = |stage: StageAt| {
        move |problem| ConfigError::Stage {
            stage: stage.clone(),
            problem: Box::new(problem),
        }
    };
    let at = problem_at(StageAt::Position(index + 1));
    let name = match table.get("name") {
        Some(toml::Value::String(s)) => s.clone(),
        Some(_) => return Err(at(StageProblem::NotAString("name"))),
        None => {
            return Err(at(StageProblem::Missing {
                field: "name",
                hint: "",
            }));
        }
    };
    if name.is_empty()
        || name.len() > limits::MAX_NAME_BYTES
        || name.starts_with('.')
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(at(StageProblem::Field {
            field: "name".into(),
            reason: format!(
                "`{}` is not a usable directory name (use 1 to {} letters, digits, `-`, `_` and `.`, not starting with `.`)",
                excerpt(&name),
                limits::MAX_NAME_BYTES
            ),
        }));
    }
    let at = problem_at(StageAt::Name(name.clone()));
    let kind = match table.get("kind") {
        Some(toml::Value::String(s)) => s.clone(),
        Some(_) => return Err(at(StageProblem::NotAString("kind"))),
        None => {
            return Err(at(StageProblem::Missing {
                field: "kind",
                hint: " (train, prune, distill, quantize or export)",
            }));
        }
    };
    let mut rest = table.clone();
    rest.remove("name");
    rest.remove("kind");
    let at = problem_at(StageAt::Named {
        name: name.clone(),
        kind: kind.clone(),
    });
    check_number_types(&rest, &kind).map_err(&at)?;
    let fail = |e: toml::de::Error| {
        at(match value_error(&e) {
            (Some(field), reason) => StageProblem::Field { field, reason },
            (None, reason) => StageProblem::Table(reason),
        })
    };
    let known = |groups: &[&[&str]]| {
        check_known(&rest, groups).map_err(|message| at(StageProblem::Table(message)))
    };
    let option = |e: OptionError| at(StageProblem::Option(e));
    let spec = match kind.as_str() {
        "train" => {
            known(&[field_names::<TrainStage>(), field_names::<TrainOptions>()])?;
            let raw = TrainStage {
                training: part(&rest).map_err(fail)?,
                ..part(&rest).map_err(fail)?
            };
            resolve_train(raw, base).map_err(&at)?
        }
        "prune" => {
            known(&[field_names::<FromField>(), field_names::<PruneOptions>()])?;
            let raw = PruneStage {
                from: part::<FromField>(&rest).map_err(fail)?.from,
                options: part(&rest).map_err(fail)?,
            };
            let plan = raw.options.plan(trainings.get(&raw.from)).map_err(option)?;
            StageSpec::Prune { raw, plan }
        }
        "distill" => {
            known(&[
                field_names::<DistillStage>(),
                field_names::<DistillOptions>(),
                field_names::<TrainOptions>(),
            ])?;
            let raw = DistillStage {
                distill: part(&rest).map_err(fail)?,
                training: part(&rest).map_err(fail)?,
                ..part(&rest).map_err(fail)?
            };
            resolve_distill(raw, base).map_err(&at)?
        }
        "quantize" => {
            known(&[
                field_names::<QuantizeStage>(),
                field_names::<QuantOptions>(),
                field_names::<EncodeChoice>(),
            ])?;
            let raw = QuantizeStage {
                quant: part(&rest).map_err(fail)?,
                encode: part(&rest).map_err(fail)?,
                ..part(&rest).map_err(fail)?
            };
            resolve_quantize(raw, base).map_err(&at)?
        }
        "export" => {
            known(&[field_names::<FromField>(), field_names::<ExportSettings>()])?;
            let raw = ExportStage {
                from: part::<FromField>(&rest).map_err(fail)?.from,
                settings: part(&rest).map_err(fail)?,
            };
            resolve_export(raw).map_err(option)?
        }
        other => {
            return Err(problem_at(StageAt::Name(name.clone()))(
                StageProblem::Field {
                    field: "kind".into(),
                    reason: format!(
                        "unknown kind `{}`; use train, prune, distill, quantize or export",
                        excerpt(other)
                    ),
                },
            ));
        }
    };
    Ok(Stage { name, spec })
}

/// The architecture a stage's `field` names: a bundled shape, or a file relative to the config.
fn resolve_arch(
    name: &str,
    base: &Path,
    field: &str,
) -> Result<(Architecture, String), StageProblem> {
    let bad = |reason: String| StageProblem::Field {
        field: field.to_string(),
        reason,
    };
    let bundled = BUNDLED_ARCHS
        .iter()
        .chain(crate::shapes::ALL)
        .find(|(n, _)| *n == name);
    match bundled {
        Some((_, text)) => Ok((
            Architecture::from_toml_str(text).map_err(|e| bad(e.to_string()))?,
            (*text).to_string(),
        )),
        None => {
            let path = base.join(name);
            let text = limits::read_text_limited(&path, limits::MAX_CONFIG_BYTES, "a config file")
                .map_err(|e| {
                    let names: Vec<&str> = BUNDLED_ARCHS.iter().map(|(n, _)| *n).collect();
                    bad(format!(
                        "`{name}` is no bundled shape ({}) and {}: {e}",
                        names.join(", "),
                        path.display()
                    ))
                })?;
            let arch = Architecture::load(&path).map_err(|e| bad(e.to_string()))?;
            Ok((arch, text))
        }
    }
}

fn resolve_train(raw: TrainStage, base: &Path) -> Result<StageSpec, StageProblem> {
    let (arch, arch_text) = resolve_arch(&raw.arch, base, "arch")?;
    let config = raw.training.apply(TrainConfig::default())?;
    Ok(StageSpec::Train {
        raw,
        arch,
        arch_text,
        config,
    })
}

fn resolve_distill(raw: DistillStage, base: &Path) -> Result<StageSpec, StageProblem> {
    let student = match (&raw.student, &raw.student_from) {
        (Some(arch), None) => Some(resolve_arch(arch, base, "student")?),
        (None, Some(_)) => None,
        _ => return Err(StageProblem::StudentChoice),
    };
    let distill = raw.distill.config()?;
    let config = raw.training.apply(TrainConfig::default())?;
    Ok(StageSpec::Distill {
        raw,
        student,
        distill,
        config,
    })
}

fn resolve_quantize(raw: QuantizeStage, base: &Path) -> Result<StageSpec, StageProblem> {
    let config = raw.quant.resolve()?;
    let latency_calls =
        crate::options::whole("latency_calls", limits::LATENCY_CALLS, raw.latency_calls)?;
    let calibration = resolve_calibration(&raw, base)?;
    Ok(StageSpec::Quantize {
        calibration,
        latency_calls: latency_calls.unwrap_or(200_000),
        options: raw.encode.options(),
        raw,
        config,
    })
}

/// The stage's calibration file: the path from the config's directory, the rows, the file's hash; the
/// `calibration_*` fields without `calibration`, or with `dynamic = true`, are refused.
fn resolve_calibration(
    raw: &QuantizeStage,
    base: &Path,
) -> Result<Option<CalibrationFile>, StageProblem> {
    let Some(file) = &raw.calibration else {
        if raw.calibration_tensor.is_some()
            || raw.calibration_rows.is_some()
            || raw.calibration_count.is_some()
        {
            return Err(StageProblem::Fields {
                fields: &[
                    "calibration_tensor",
                    "calibration_rows",
                    "calibration_count",
                ],
                reason: "they select part of a `calibration` file, and the stage names none".into(),
            });
        }
        return Ok(None);
    };
    if raw.dynamic == Some(true) {
        return Err(StageProblem::Fields {
            fields: &["calibration", "dynamic"],
            reason: "dynamic quantization chooses its activation scales at every inference and reads no \
                     calibration data"
                .into(),
        });
    }
    let field = |field: &str, reason: String| StageProblem::Field {
        field: field.into(),
        reason,
    };
    let rows = match (&raw.calibration_rows, raw.calibration_count) {
        (Some(_), Some(_)) => {
            return Err(StageProblem::Fields {
                fields: &["calibration_rows", "calibration_count"],
                reason: "give one of them".into(),
            });
        }
        (Some(text), None) => {
            Some(limits::row_range(text).map_err(|e| field("calibration_rows", e))?)
        }
        (None, Some(n)) => {
            let n =
                crate::options::whole("calibration_count", limits::CALIBRATION_SAMPLES, Some(n))?;
            n.map(|n| (0, n))
        }
        (None, None) => None,
    };
    let path = base.join(file);
    let sha = crate::data::file_sha256(&path).map_err(|e| field("calibration", e.to_string()))?;
    Ok(Some(CalibrationFile {
        path,
        tensor: raw.calibration_tensor.clone(),
        rows,
        sha256: crate::steps::hex(&sha),
    }))
}

fn resolve_export(raw: ExportStage) -> Result<StageSpec, OptionError> {
    let file = raw.settings.stage_file()?;
    raw.settings.vectors()?;
    Ok(StageSpec::Export {
        format: raw.settings.format(),
        vector_input: raw.settings.vector_input(),
        file,
        raw,
    })
}

mod checks;

use checks::{StageModel, check_against_inputs, check_number_types};

#[cfg(test)]
mod tests;
