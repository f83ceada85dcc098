//! Pruning statistics: zero weights per layer and in all, counted on an f32 model or on a blob.

use serde::{Deserialize, Serialize};
use tickq_core::LayerKind;

use super::{PruneError, Result};
use crate::model::{Layer, Sequential, Shape};

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
    /// For a blob, how the layer stores its weights: `dense`, `sparse` or `n:m` such as `2:4`; `None` for a model.
    pub encoding: Option<String>,
    /// Multiply-accumulates per inference: for a model, of the dense layer with its zeros; for a blob, what
    /// tickq-core executes (only the stored weights of sparse and N:M layers).
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
    /// Multiply-accumulates per inference over all Dense and Conv1d layers (see [`LayerStatistics::macs`]).
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
                encoding: None,
                macs: (total * out_time) as u64,
                shape,
            });
        }
        Self::from_layers(layers, model.num_parameters())
    }

    /// Counts the zero int8 weights a blob stores, as tickq-core reports them after validating the blob
    /// ([`tickq_core::LayerInfo::weights_total`] and [`tickq_core::LayerInfo::weights_nonzero`]), whatever the
    /// layer's weight format (dense, sparse or N:M).
    ///
    /// Layers are named `layer{index}` after their index in the blob's layer table (index 0 is the input quantizer).
    ///
    /// # Errors
    ///
    /// [`PruneError::Blob`] when the blob does not load.
    pub fn of_blob(blob: &[u8]) -> Result<Self> {
        let model = tickq_core::Model::load(blob).map_err(PruneError::Blob)?;
        let mut layers = Vec::new();
        let mut parameters = 0;
        for info in model.layers() {
            let (kind, shape) = match info.kind {
                LayerKind::Dense => ("dense", vec![info.out_shape.1, info.in_shape.1]),
                LayerKind::Conv1d => (
                    "conv1d",
                    vec![info.out_shape.1, info.in_shape.1, info.kernel],
                ),
                _ => continue,
            };
            let total = info.weights_total;
            let zero = total.saturating_sub(info.weights_nonzero);
            parameters += total + info.out_shape.1;
            layers.push(LayerStatistics {
                name: format!("layer{}", info.index),
                kind: kind.to_string(),
                shape,
                sparsity: percent(zero, total),
                zero_parameters: zero,
                total_parameters: total,
                masked: false,
                encoding: info.weight_format.map(|f| f.to_string()),
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
        let _ = writeln!(s, "work         {} MACs per inference", self.macs);
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:<12} {:<7} {:<14} {:>9} {:>9} {:>9}  {:<7} {:>10}",
            "layer", "kind", "shape", "zeros", "total", "sparsity", "storage", "MACs"
        );
        for l in &self.layers {
            let shape = l
                .shape
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("x");
            // A blob names its weight format; a model says whether the layer holds a mask.
            let storage = match (&l.encoding, l.masked) {
                (Some(e), _) => e.as_str(),
                (None, true) => "masked",
                (None, false) => "-",
            };
            let _ = writeln!(
                s,
                "{:<12} {:<7} {:<14} {:>9} {:>9} {:>7.2} %  {:<7} {:>10}",
                l.name,
                l.kind,
                shape,
                l.zero_parameters,
                l.total_parameters,
                l.sparsity,
                storage,
                l.macs
            );
        }
        s
    }
}
