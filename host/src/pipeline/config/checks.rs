//! The checks of a stage that need more than its own table: its architecture against the `[data]` window, its
//! settings against the stages it reads from, and its numbers' types before serde reads them.

use std::collections::HashMap;

use super::{Stage, StageSpec};
use crate::data::{self, DatasetConfig};
use crate::limits::{self, excerpt};
use crate::model::Architecture;
use crate::options::{
    DistillOptions, ExportSettings, NumericFields, PruneOptions, QuantOptions, TrainOptions,
};
use crate::pipeline::StageProblem;

/// What the checks of later stages need to know of an earlier stage's model or blob.
#[derive(Debug, Clone)]
pub(super) struct StageModel {
    /// The architecture (for a pruned model: the one it was pruned from; structured pruning keeps its input,
    /// classes and layer kinds).
    pub(super) arch: Option<Architecture>,
    /// Whether the stage's blob is dynamically quantized.
    pub(super) dynamic: bool,
}

/// The checks that need the stages a stage reads from (their `from` names are already checked): an architecture
/// against the `[data]` window, `dynamic = true` against dynamic quantization's rules, and an export's symbol and
/// test vectors against its blob. Returns what later stages need to know of this one.
pub(super) fn check_against_inputs(
    stage: &Stage,
    models: &HashMap<String, StageModel>,
    dataset: &DatasetConfig,
) -> Result<StageModel, StageProblem> {
    let arch_of = |name: &str| models.get(name).and_then(|m| m.arch.clone());
    let fits_data = |arch: &Architecture, field: &str| {
        let features = dataset.feature_names().len();
        let classes = data::label_names().len();
        let bad = |reason: String| StageProblem::Field {
            field: field.to_string(),
            reason,
        };
        if arch.input.features != features || arch.input.time_steps != dataset.time_steps {
            return Err(bad(format!(
                "architecture `{}` takes {} features x {} time steps, but [data] gives {features} x {}",
                excerpt(&arch.name),
                arch.input.features,
                arch.input.time_steps,
                dataset.time_steps
            )));
        }
        if arch.classes != classes {
            return Err(bad(format!(
                "architecture `{}` has {} classes, but the labels have {classes}",
                excerpt(&arch.name),
                arch.classes
            )));
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
                crate::quant::dynamic::check_dynamic_arch(arch).map_err(|e| {
                    StageProblem::Field {
                        field: "dynamic".into(),
                        reason: e.to_string(),
                    }
                })?;
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
                    crate::export::c_symbol(raw.settings.symbol.as_deref().unwrap_or(&arch.name))
                        .map_err(|e| StageProblem::Field {
                        field: "symbol".into(),
                        reason: e.to_string(),
                    })?;
                }
                if raw.settings.vectors().is_ok_and(|n| n > 0) {
                    let kind = vector_input.unwrap_or(if dynamic {
                        crate::export::VectorInput::F32
                    } else {
                        crate::export::VectorInput::Int8
                    });
                    kind.check(arch.input_len(), arch.classes, dynamic)
                        .map_err(|e| StageProblem::Fields {
                            fields: &["vectors", "vector_input"],
                            reason: e.to_string(),
                        })?;
                }
            }
            StageModel {
                arch: None,
                dynamic,
            }
        }
    })
}

/// The numeric fields of a quantize stage besides its [`QuantOptions`].
const QUANTIZE_NUMERIC: NumericFields = NumericFields {
    whole: &[("latency_calls", limits::LATENCY_CALLS)],
    real: &[],
};

/// The numeric fields of each stage kind, with their ranges, from the options structs its table holds.
fn numeric_fields(kind: &str) -> &'static [NumericFields] {
    match kind {
        "train" => &[TrainOptions::NUMERIC],
        "distill" => &[TrainOptions::NUMERIC, DistillOptions::NUMERIC],
        "prune" => &[PruneOptions::NUMERIC],
        "quantize" => &[QuantOptions::NUMERIC, QUANTIZE_NUMERIC],
        "export" => &[ExportSettings::NUMERIC],
        _ => &[],
    }
}

/// Checks the numeric fields of a stage table before serde reads it, so a negative, fractional, too large or
/// non-numeric value names its field and range (`field `latency_calls`: 1000000000000 is out of range: ...`)
/// instead of serde's bare "invalid value: integer `-1`, expected usize". A whole number written as a float
/// (`epochs = 20.0`, `latency_calls = 1e6`) is refused too: the field takes an integer.
pub(super) fn check_number_types(table: &toml::Table, kind: &str) -> Result<(), StageProblem> {
    let groups = numeric_fields(kind);
    let bad = |field: &str, reason: String| StageProblem::Field {
        field: field.to_string(),
        reason,
    };
    for (field, range) in groups.iter().flat_map(|g| g.whole) {
        match table.get(*field) {
            None => {}
            Some(toml::Value::Integer(i)) => {
                range
                    .parse(&i.to_string())
                    .map_err(|e| bad(field, e.to_string()))?;
            }
            Some(toml::Value::Float(f)) => {
                range
                    .parse(&f.to_string())
                    .map_err(|e| bad(field, e.to_string()))?;
                return Err(bad(
                    field,
                    format!(
                        "{f:?} is a float; write {range} as an integer (no decimal point or exponent)"
                    ),
                ));
            }
            Some(other) => {
                return Err(bad(
                    field,
                    format!("expected {range}, found {}", toml_type(other)),
                ));
            }
        }
    }
    for (field, range) in groups.iter().flat_map(|g| g.real) {
        match table.get(*field) {
            None | Some(toml::Value::Integer(_) | toml::Value::Float(_)) => {}
            Some(other) => {
                return Err(bad(
                    field,
                    format!("expected {range}, found {}", toml_type(other)),
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
