//! Pruning statistics: zero weights per layer and in all, counted on an f32 model or on a blob.

use serde::{Deserialize, Serialize};
use tickq_core::blob::{ENTRY_LEN, Entry, Header};
use tickq_core::{LayerKind, Section};

use super::{PruneError, Result};
use crate::model::{Layer, Sequential, Shape};

/// The layer table entry byte that format version 1 reserves (it must be zero there); a later format may use it
/// to mark a sparse weight encoding, which [`PruningStatistics::of_blob`] must not count as dense bytes.
const ENCODING_BYTE: usize = 23;

/// Zero weights of one Dense or Conv1d layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerStatistics {
    /// The parameter name prefix (`fc1`) for a model; `layer{index}` (index in the blob's layer table) for a blob.
    pub name: String,
    /// `dense` or `conv1d`.
    pub kind: String,
    /// The weight shape: `[out, in]` or `[out, in, kernel]`.
    pub shape: Vec<usize>,
    /// `100 * zero_parameters / total_parameters`.
    pub sparsity: f64,
    /// Weights that are exactly zero.
    pub zero_parameters: usize,
    /// Weights in the layer (biases are not counted).
    pub total_parameters: usize,
    /// Whether the layer holds a pruning mask (always false for a blob).
    pub masked: bool,
    /// Multiply-accumulates per inference of the dense layer, zeros included.
    pub macs: u64,
}

/// Zero weights of a whole model, with a row per Dense and Conv1d layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PruningStatistics {
    /// `100 * zero_parameters / total_parameters` over all Dense and Conv1d weights, in percent.
    pub global_sparsity: f64,
    /// Weights that are exactly zero, over all layers.
    pub zero_parameters: usize,
    /// Weights over all layers (biases are not counted).
    pub total_parameters: usize,
    /// Weights plus biases: the model's parameter count, which structured pruning lowers.
    pub parameters: usize,
    /// Multiply-accumulates per inference over all Dense and Conv1d layers, zeros included.
    pub macs: u64,
    /// One entry per Dense and Conv1d layer, in model order.
    pub layers: Vec<LayerStatistics>,
}

fn percent(zero: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        100.0 * zero as f64 / total as f64
    }
}

impl PruningStatistics {
    fn from_layers(layers: Vec<LayerStatistics>, parameters: usize) -> Self {
        let zero_parameters = layers.iter().map(|l| l.zero_parameters).sum();
        let total_parameters = layers.iter().map(|l| l.total_parameters).sum();
        Self {
            global_sparsity: percent(zero_parameters, total_parameters),
            zero_parameters,
            total_parameters,
            parameters,
            macs: layers.iter().map(|l| l.macs).sum(),
            layers,
        }
    }

    /// Counts the zeros of the effective weights (`weight * mask`) of `model`.
    pub fn of_model(model: &Sequential) -> Self {
        let shapes = model.arch.shapes().unwrap_or_default();
        let mut layers = Vec::new();
        for (i, layer) in model.layers.iter().enumerate() {
            let (name, kind, shape) = match layer {
                Layer::Dense(d) => (&d.name, "dense", d.weight.shape().to_vec()),
                Layer::Conv1d(c) => (&c.name, "conv1d", c.weight.shape().to_vec()),
                _ => continue,
            };
            let weights = super::weight_values(layer);
            let zero = match layer.mask_values() {
                Some(mask) => weights
                    .iter()
                    .zip(mask)
                    .filter(|(w, m)| **w * m == 0.0)
                    .count(),
                None => weights.iter().filter(|w| **w == 0.0).count(),
            };
            let total: usize = shape.iter().product();
            // Conv1d work scales with its output length; Dense runs once.
            let out_time = match shapes.get(i) {
                Some(Shape::Seq { time, .. }) => *time,
                _ => 1,
            };
            layers.push(LayerStatistics {
                name: name.clone(),
                kind: kind.to_string(),
                sparsity: percent(zero, total),
                zero_parameters: zero,
                total_parameters: total,
                masked: layer.is_masked(),
                macs: (total * out_time) as u64,
                shape,
            });
        }
        Self::from_layers(layers, model.num_parameters())
    }

    /// Counts the zero int8 weights a blob stores, after validating it with `tickq_core::Model::load`.
    ///
    /// Layers are named `layer{index}` after their index in the blob's layer table (index 0 is the input quantizer).
    /// Only the real weights count: tickq-core's loader guarantees that padding bytes in a weights section are zero,
    /// so the zeros of a layer are the zero bytes of its weights section minus its padding bytes, whatever the
    /// arrangement of the weights inside the section.
    ///
    /// # Errors
    ///
    /// [`PruneError::Blob`] when the blob does not load, and [`PruneError::BlobWeights`] for a layer whose weights
    /// section is not `out x row` int8 values plus zero padding (a sparse encoding this build does not know).
    pub fn of_blob(blob: &[u8]) -> Result<Self> {
        let model = tickq_core::Model::load(blob).map_err(PruneError::Blob)?;
        let table = Header::new_checked(blob).map_or(0, |h| h.layer_table_offset() as usize);
        let mut layers = Vec::new();
        let mut parameters = 0;
        for info in model.layers() {
            let bad = |reason: String| PruneError::BlobWeights {
                layer: info.index,
                reason,
            };
            let entry = Entry::new_checked(blob, table + info.index * ENTRY_LEN)
                .ok_or_else(|| bad("the layer table entry is out of bounds".into()))?;
            let (offset, len) = entry.section(Section::Weights);
            let (offset, len) = (offset as usize, len as usize);
            let (kind, shape, row_len) = match info.kind {
                LayerKind::Dense => (
                    "dense",
                    vec![info.out_shape.1, info.in_shape.1],
                    info.in_shape.1,
                ),
                LayerKind::Conv1d => (
                    "conv1d",
                    vec![info.out_shape.1, info.in_shape.1, info.kernel],
                    info.kernel * info.in_shape.1,
                ),
                _ if len == 0 => continue,
                other => {
                    return Err(bad(format!(
                        "{} stores {len} weight bytes this build cannot count",
                        other.name()
                    )));
                }
            };
            if entry.bytes().get(ENCODING_BYTE).is_some_and(|&b| b != 0) {
                return Err(bad(format!(
                    "{} weights use encoding {} (entry byte {ENCODING_BYTE}); this build counts dense weights only",
                    info.kind.name(),
                    entry.bytes()[ENCODING_BYTE]
                )));
            }
            let out = info.out_shape.1;
            let total = out * row_len;
            let section = blob
                .get(offset..offset + len)
                .ok_or_else(|| bad("the weights section is out of bounds".into()))?;
            let zero_bytes = section.iter().filter(|&&b| b == 0).count();
            let padding = len.checked_sub(total).ok_or_else(|| {
                bad(format!(
                    "the weights section holds {len} bytes, fewer than the {total} int8 weights of a dense encoding"
                ))
            })?;
            let zero = zero_bytes.checked_sub(padding).ok_or_else(|| {
                bad(format!(
                    "{padding} padding bytes but only {zero_bytes} zero bytes"
                ))
            })?;
            parameters += total + out;
            layers.push(LayerStatistics {
                name: format!("layer{}", info.index),
                kind: kind.to_string(),
                shape,
                sparsity: percent(zero, total),
                zero_parameters: zero,
                total_parameters: total,
                masked: false,
                macs: info.macs,
            });
        }
        Ok(Self::from_layers(layers, parameters))
    }

    /// A human-readable table, as `tickq stats` prints it.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "sparsity     {:.2} % ({} of {} weights are zero)",
            self.global_sparsity, self.zero_parameters, self.total_parameters
        );
        let _ = writeln!(s, "parameters   {} (weights and biases)", self.parameters);
        let _ = writeln!(
            s,
            "work         {} MACs per inference (dense execution)",
            self.macs
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:<12} {:<7} {:<14} {:>9} {:>9} {:>9}  {:<6} {:>10}",
            "layer", "kind", "shape", "zeros", "total", "sparsity", "masked", "MACs"
        );
        for l in &self.layers {
            let shape = l
                .shape
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("x");
            let _ = writeln!(
                s,
                "{:<12} {:<7} {:<14} {:>9} {:>9} {:>7.2} %  {:<6} {:>10}",
                l.name,
                l.kind,
                shape,
                l.zero_parameters,
                l.total_parameters,
                l.sparsity,
                if l.masked { "yes" } else { "no" },
                l.macs
            );
        }
        s
    }
}
