//! Pruning f32 models: unstructured, global, structured and N:M sparsity, gradual schedules and statistics.
//!
//! A [`ModelPruner`] borrows a [`Sequential`] model and prunes its Dense and Conv1d weights (biases are never
//! pruned):
//!
//! - [`ModelPruner::unstructured_pruning`]: L1 magnitude, per named layer;
//! - [`ModelPruner::global_unstructured_pruning`]: one magnitude threshold across all prunable layers;
//! - [`ModelPruner::structured_pruning`]: removes whole output channels (`dim = 0`) or input channels (`dim = 1`),
//!   ranked by an [`Norm`]; the model physically shrinks (see below);
//! - [`ModelPruner::nm_pruning`]: N:M semi-structured sparsity along the input dimension;
//! - [`ModelPruner::remove`]: bakes the masks into the weights and drops them;
//! - [`ModelPruner::get_pruning_statistics`]: [`PruningStatistics`], globally and per layer.
//!
//! Unstructured, global and N:M pruning store a 0/1 mask beside each pruned weight
//! ([`crate::model::Dense::weight_mask`]) and zero the pruned weights.
//! Until [`ModelPruner::remove`], the masks persist through fine-tuning: [`Sequential::backward`] masks the weight
//! gradients and [`crate::model::Optimizer::step`] re-applies the masks after every update, so pruned weights stay
//! exactly zero whatever the optimizer's momentum.
//! Checkpoints keep the masks with the names `torch.nn.utils.prune` uses (`fc1.weight_orig`, `fc1.weight_mask`).
//!
//! An amount is the fraction of a layer's weights (or of all weights, for global pruning) that are zero after
//! the call, counting weights that earlier calls pruned; masks never revive a pruned weight.
//! This differs from PyTorch, whose `amount` is a fraction of the weights that are still unpruned.
//! For structured pruning the amount is the fraction of the layer's current channels to remove.
//!
//! Structured pruning removes channels for real: removing output channel `c` of a layer removes its weight row,
//! its bias entry and the inputs of the next Dense or Conv1d layer that read channel `c`, through activations,
//! pools, global average pooling and Flatten (which maps channel `c` to columns `c * T .. c * T + T`).
//! The architecture's `out` sizes change with it, so parameters, MACs and the exported blob all shrink.
//! The f32 `Sequential` has no residual Add, so no removal can conflict with one.
//!
//! [`prune_and_fine_tune`] runs a one-shot or gradual ([`PolynomialSchedule`]) pruning plan with fine-tuning by
//! [`crate::train::train`] between steps, and reports the accuracy after every step.
//! `docs/PRUNING.md` describes all of this with command-line examples.
//!
//! # Example
//!
//! ```
//! use tickq_host::model::{Architecture, Sequential};
//! use tickq_host::prune::{ModelPruner, Norm};
//!
//! let arch = Architecture::from_toml_str(r#"
//! name = "tiny"
//! classes = 3
//! [input]
//! time_steps = 1
//! features = 8
//! [[layers]]
//! type = "dense"
//! out = 16
//! [[layers]]
//! type = "relu"
//! [[layers]]
//! type = "dense"
//! out = 3
//! "#)?;
//! let mut model = Sequential::new(arch, 7)?;
//! let mut pruner = ModelPruner::new(&mut model);
//! pruner.unstructured_pruning(&["fc1"], 0.5)?;
//! assert_eq!(pruner.get_pruning_statistics().layers[0].zero_parameters, 64);
//! pruner.structured_pruning(&["fc1"], 0.25, 0, Norm::L1)?;
//! pruner.remove();
//! assert_eq!(model.arch.layers[0], tickq_host::model::LayerSpec::Dense { name: None, out: 12 });
//! assert!(!model.has_masks());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod schedule;
mod stats;
mod structured;

use std::fmt;
use std::str::FromStr;

use ndarray::{Array2, Array3};
use serde::{Deserialize, Serialize};

use crate::model::{Layer, ModelError, Sequential};
use crate::train::TrainError;

pub use schedule::{
    FineTuneData, PolynomialSchedule, PruningPlan, StepReport, prune_and_fine_tune,
};
pub use stats::{LayerStatistics, PruningStatistics};

/// The norm that ranks channels in structured pruning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// Sum of absolute values.
    L1,
    /// Square root of the sum of squares.
    L2,
    /// Largest absolute value.
    Linf,
}

impl Norm {
    /// The norm of `values`, in f64.
    pub fn of(self, values: impl Iterator<Item = f32>) -> f64 {
        match self {
            Norm::L1 => values.map(|v| f64::from(v.abs())).sum(),
            Norm::L2 => values
                .map(|v| f64::from(v) * f64::from(v))
                .sum::<f64>()
                .sqrt(),
            Norm::Linf => values.fold(0.0, |m, v| m.max(f64::from(v.abs()))),
        }
    }
}

impl fmt::Display for Norm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Norm::L1 => "1",
            Norm::L2 => "2",
            Norm::Linf => "inf",
        })
    }
}

impl FromStr for Norm {
    type Err = String;

    /// Reads `1`, `2` or `inf` (also `l1`, `l2`, `linf`), as PyTorch's `n` argument of `ln_structured`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "1" | "l1" => Ok(Norm::L1),
            "2" | "l2" => Ok(Norm::L2),
            "inf" | "linf" => Ok(Norm::Linf),
            other => Err(format!("unknown norm `{other}`, expected 1, 2 or inf")),
        }
    }
}

/// A pruning method with its settings; the amount is given separately so schedules can vary it.
#[derive(Debug, Clone, PartialEq)]
pub enum PruneMethod {
    /// [`ModelPruner::unstructured_pruning`] on these layers (`None`: every Dense and Conv1d layer).
    Unstructured {
        /// Layer names.
        layers: Option<Vec<String>>,
    },
    /// [`ModelPruner::global_unstructured_pruning`].
    Global,
    /// [`ModelPruner::structured_pruning`] on these layers (`None`: every layer that can lose channels along `dim`:
    /// all but the last weighted layer for `dim = 0`, all but the first for `dim = 1`).
    Structured {
        /// Layer names.
        layers: Option<Vec<String>>,
        /// 0: output channels or neurons; 1: input channels.
        dim: usize,
        /// The ranking norm.
        norm: Norm,
    },
    /// [`ModelPruner::nm_pruning_layers`] on these layers (`None`: every Dense and Conv1d layer); ignores the amount.
    NM {
        /// Weights kept per group.
        n: usize,
        /// Group size.
        m: usize,
        /// Layer names.
        layers: Option<Vec<String>>,
    },
}

impl PruneMethod {
    /// The method's name on the command line: `unstructured`, `global`, `structured` or `nm`.
    pub fn name(&self) -> &'static str {
        match self {
            PruneMethod::Unstructured { .. } => "unstructured",
            PruneMethod::Global => "global",
            PruneMethod::Structured { .. } => "structured",
            PruneMethod::NM { .. } => "nm",
        }
    }
}

/// Everything that can go wrong while pruning; the model is unchanged when a pruning call fails.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PruneError {
    /// A layer name is not one of the model's Dense or Conv1d layers.
    #[error("unknown layer `{name}`; the prunable layers are: {}", valid.join(", "))]
    UnknownLayer {
        /// The name given.
        name: String,
        /// The Dense and Conv1d layer names, in model order.
        valid: Vec<String>,
    },
    /// An empty list of layer names.
    #[error("no layer names given; the prunable layers are: {}", valid.join(", "))]
    NoLayers {
        /// The Dense and Conv1d layer names, in model order.
        valid: Vec<String>,
    },
    /// The model has no Dense or Conv1d layer.
    #[error("the model has no Dense or Conv1d layer to prune")]
    NothingToPrune,
    /// An amount outside `[0, 1)`.
    #[error("amount must be in [0, 1), got {amount}")]
    Amount {
        /// The amount given.
        amount: f32,
    },
    /// Structured pruning along a dimension the layer's weight does not have or that cannot be removed.
    #[error("layer `{layer}` cannot be pruned along dim {dim}: {reason}")]
    Dim {
        /// The layer name.
        layer: String,
        /// The dimension given.
        dim: usize,
        /// Which dimensions the layer has.
        reason: String,
    },
    /// N:M arguments that make no sense.
    #[error("N:M sparsity needs 0 < n <= m, got {n}:{m}")]
    NmArgs {
        /// Weights kept per group.
        n: usize,
        /// Group size.
        m: usize,
    },
    /// N:M groups that do not tile a layer's rows.
    #[error("layer `{layer}`: groups of m = {m} do not divide its {width} {what}")]
    NmWidth {
        /// The layer name.
        layer: String,
        /// The row length.
        width: usize,
        /// The group size.
        m: usize,
        /// What the row holds: `inputs` or `kernel x input weights per output channel`.
        what: &'static str,
    },
    /// A structured removal that the model cannot take.
    #[error("cannot remove channels of layer `{layer}`: {reason}")]
    Structured {
        /// The layer name.
        layer: String,
        /// Why, and what to do instead.
        reason: String,
    },
    /// A schedule's final sparsity outside `[0, 1)`.
    #[error("pruning schedule: the final sparsity must be in [0, 1), got {final_sparsity}")]
    FinalSparsity {
        /// The final sparsity asked for.
        final_sparsity: f32,
    },
    /// A schedule's initial sparsity outside `[0, final]`.
    #[error(
        "pruning schedule: the initial sparsity must be in [0, {final_sparsity}] (the final sparsity), got {initial}"
    )]
    InitialSparsity {
        /// The initial sparsity asked for.
        initial: f32,
        /// The final sparsity, its upper bound.
        final_sparsity: f32,
    },
    /// A schedule of zero steps.
    #[error("pruning schedule: steps must be at least 1")]
    NoSteps,
    /// A gradual schedule for N:M pruning, which is one-shot.
    #[error("pruning schedule: N:M pruning is one-shot; use a single step (no gradual schedule)")]
    GradualNM {
        /// The number of steps the schedule has.
        steps: usize,
    },
    /// A model operation failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Fine-tuning or evaluation failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// A blob did not load in tickq-core.
    #[error("the blob does not load: {0}")]
    Blob(tickq_core::BlobError),
}

/// Shorthand for results in this module.
pub type Result<T, E = PruneError> = std::result::Result<T, E>;

/// The parameter name of a Dense or Conv1d layer.
fn layer_name(layer: &Layer) -> Option<&str> {
    match layer {
        Layer::Dense(d) => Some(&d.name),
        Layer::Conv1d(c) => Some(&c.name),
        _ => None,
    }
}

/// The weight's row-major values of a Dense or Conv1d layer.
fn weight_values(layer: &Layer) -> Vec<f32> {
    match layer {
        Layer::Dense(d) => d.weight.iter().copied().collect(),
        Layer::Conv1d(c) => c.weight.iter().copied().collect(),
        _ => Vec::new(),
    }
}

/// The layer's mask as row-major values, all ones when it has none.
fn mask_or_ones(layer: &Layer) -> Vec<f32> {
    layer
        .mask_values()
        .unwrap_or_else(|| vec![1.0; weight_values(layer).len()])
}

/// Stores `mask` (row-major, in the weight's layout) on a Dense or Conv1d layer and applies it.
fn set_mask(layer: &mut Layer, mask: Vec<f32>) {
    match layer {
        Layer::Dense(d) => {
            d.weight_mask = Array2::from_shape_vec(d.weight.raw_dim(), mask).ok();
        }
        Layer::Conv1d(c) => {
            c.weight_mask = Array3::from_shape_vec(c.weight.raw_dim(), mask).ok();
        }
        _ => {}
    }
    layer.apply_mask();
}

/// `round(amount * n)`, the number of weights (or channels) an amount stands for.
fn count_for(amount: f32, n: usize) -> usize {
    (f64::from(amount) * n as f64).round() as usize
}

fn check_amount(amount: f32) -> Result<()> {
    if (0.0..1.0).contains(&amount) {
        Ok(())
    } else {
        Err(PruneError::Amount { amount })
    }
}

/// Orders candidate weights by magnitude, then by position, so ties break the same way every time.
fn by_magnitude(a: (f32, usize, usize), b: (f32, usize, usize)) -> std::cmp::Ordering {
    a.0.abs()
        .total_cmp(&b.0.abs())
        .then(a.1.cmp(&b.1))
        .then(a.2.cmp(&b.2))
}

/// Prunes a model in place; see the [module documentation](self).
#[derive(Debug)]
pub struct ModelPruner<'m> {
    model: &'m mut Sequential,
}

impl<'m> ModelPruner<'m> {
    /// Borrows `model` for pruning.
    pub fn new(model: &'m mut Sequential) -> Self {
        Self { model }
    }

    /// The model as pruned so far.
    pub fn model(&self) -> &Sequential {
        self.model
    }

    /// The names of the prunable (Dense and Conv1d) layers, in model order.
    pub fn prunable_layers(&self) -> Vec<String> {
        prunable_names(self.model)
    }

    /// Zeroes the smallest-magnitude weights of each named layer until `amount` of its weights are pruned.
    ///
    /// Each layer is ranked on its own (PyTorch's `l1_unstructured`); `round(amount * n)` of its `n` weights end
    /// up masked, counting weights that were already masked; ties go to the lower flat index.
    ///
    /// # Errors
    ///
    /// [`PruneError::Amount`] outside `[0, 1)`, [`PruneError::UnknownLayer`] listing the valid names, or
    /// [`PruneError::NoLayers`].
    pub fn unstructured_pruning<S: AsRef<str>>(
        &mut self,
        layer_names: &[S],
        amount: f32,
    ) -> Result<()> {
        let names: Vec<&str> = layer_names.iter().map(AsRef::as_ref).collect();
        self.unstructured_impl(&names, amount)
    }

    fn unstructured_impl(&mut self, names: &[&str], amount: f32) -> Result<()> {
        check_amount(amount)?;
        let indices = resolve(self.model, names)?;
        for i in indices {
            let layer = &mut self.model.layers[i];
            let w = weight_values(layer);
            let mut mask = mask_or_ones(layer);
            let target = count_for(amount, w.len());
            let already = mask.iter().filter(|&&m| m == 0.0).count();
            if target > already {
                let mut candidates: Vec<(f32, usize, usize)> = w
                    .iter()
                    .zip(&mask)
                    .enumerate()
                    .filter(|(_, (_, m))| **m != 0.0)
                    .map(|(j, (v, _))| (*v, 0, j))
                    .collect();
                candidates.sort_by(|a, b| by_magnitude(*a, *b));
                for &(_, _, j) in &candidates[..target - already] {
                    mask[j] = 0.0;
                }
            }
            set_mask(layer, mask);
        }
        Ok(())
    }

    /// Zeroes the smallest-magnitude weights across all Dense and Conv1d layers together, one threshold for all,
    /// until `amount` of all their weights are pruned (PyTorch's `global_unstructured` with `L1Unstructured`).
    ///
    /// # Errors
    ///
    /// [`PruneError::Amount`] outside `[0, 1)` or [`PruneError::NothingToPrune`].
    pub fn global_unstructured_pruning(&mut self, amount: f32) -> Result<()> {
        check_amount(amount)?;
        let indices: Vec<usize> = prunable_indices(self.model);
        if indices.is_empty() {
            return Err(PruneError::NothingToPrune);
        }
        let weights: Vec<Vec<f32>> = indices
            .iter()
            .map(|&i| weight_values(&self.model.layers[i]))
            .collect();
        let mut masks: Vec<Vec<f32>> = indices
            .iter()
            .map(|&i| mask_or_ones(&self.model.layers[i]))
            .collect();
        let total: usize = weights.iter().map(Vec::len).sum();
        let target = count_for(amount, total);
        let already: usize = masks
            .iter()
            .map(|m| m.iter().filter(|&&v| v == 0.0).count())
            .sum();
        if target > already {
            let mut candidates: Vec<(f32, usize, usize)> = Vec::with_capacity(total - already);
            for (l, (w, m)) in weights.iter().zip(&masks).enumerate() {
                candidates.extend(
                    w.iter()
                        .zip(m)
                        .enumerate()
                        .filter(|(_, (_, m))| **m != 0.0)
                        .map(|(j, (v, _))| (*v, l, j)),
                );
            }
            candidates.sort_by(|a, b| by_magnitude(*a, *b));
            for &(_, l, j) in &candidates[..target - already] {
                masks[l][j] = 0.0;
            }
        }
        for (&i, mask) in indices.iter().zip(masks) {
            set_mask(&mut self.model.layers[i], mask);
        }
        Ok(())
    }

    /// Removes `round(amount * C)` of the `C` channels of each named layer, those with the smallest `norm`.
    ///
    /// `dim = 0` ranks the layer's output channels (Dense neurons) by the norm of their weight rows and removes
    /// them together with their bias entries and the matching inputs of the next Dense or Conv1d layer.
    /// `dim = 1` ranks the layer's input channels by the norm of the weights that read them (for a Dense layer
    /// after Flatten, the `T` columns of one channel together) and removes them together with the matching
    /// outputs of the previous Dense or Conv1d layer.
    /// Layers are processed in model order, each on the model the previous removal left.
    /// The result computes exactly what the same model computes with the removed channels zeroed
    /// (`dim = 0`: weight rows and bias entries; `dim = 1`: the weights reading them), up to float rounding.
    /// When an activation between the two layers maps 0 to a non-zero value (Sigmoid, some Clamps), that constant
    /// is folded into the next layer's bias.
    ///
    /// # Errors
    ///
    /// [`PruneError::Amount`], [`PruneError::UnknownLayer`], [`PruneError::NoLayers`], [`PruneError::Dim`] for a
    /// dim other than 0 and 1, and [`PruneError::Structured`] when the removal would change the model's classes
    /// (`dim = 0` on the last layer) or input features (`dim = 1` on the first), remove every channel, or fold a
    /// constant into a causally padded convolution.
    pub fn structured_pruning<S: AsRef<str>>(
        &mut self,
        layer_names: &[S],
        amount: f32,
        dim: usize,
        norm: Norm,
    ) -> Result<()> {
        let names: Vec<&str> = layer_names.iter().map(AsRef::as_ref).collect();
        self.structured_impl(&names, amount, dim, norm)
    }

    fn structured_impl(
        &mut self,
        names: &[&str],
        amount: f32,
        dim: usize,
        norm: Norm,
    ) -> Result<()> {
        check_amount(amount)?;
        let indices = resolve(self.model, names)?;
        for &i in &indices {
            structured::check_dim(self.model, i, dim)?;
        }
        // Work on a copy so that a refusal halfway leaves the model as it was.
        let mut work = self.model.clone();
        for &i in &indices {
            let channels = structured::channel_count(&work, i, dim)?;
            structured::remove(&mut work, i, dim, count_for(amount, channels), norm)?;
        }
        *self.model = work;
        Ok(())
    }

    /// N:M sparsity on every Dense and Conv1d layer: in each group of `m` consecutive weights along the input
    /// dimension, only the `n` largest magnitudes stay.
    ///
    /// See [`ModelPruner::nm_pruning_layers`].
    ///
    /// # Errors
    ///
    /// As [`ModelPruner::nm_pruning_layers`].
    pub fn nm_pruning(&mut self, n: usize, m: usize) -> Result<()> {
        let names = self.prunable_layers();
        if names.is_empty() {
            return Err(PruneError::NothingToPrune);
        }
        self.nm_pruning_layers(&names, n, m)
    }

    /// N:M sparsity on the named layers: in each group of `m` consecutive weights of a row, only the `n` largest
    /// magnitudes stay (ties go to the lower index), so every group has at most `n` non-zeros.
    ///
    /// A Dense row is one output neuron's `in` weights, and groups are `m` consecutive input columns.
    /// A Conv1d row is one output channel's weights in tickq-core's tap-major order
    /// (`[k = 0: C_in values][k = 1: C_in values]...`), and groups are `m` consecutive values of that flattened row;
    /// when `m` divides `C_in`, no group straddles two taps.
    /// Weights already masked stay masked and count as zeros of their group.
    ///
    /// # Errors
    ///
    /// [`PruneError::NmArgs`] unless `0 < n <= m`, [`PruneError::NmWidth`] when `m` does not divide a layer's row
    /// length, [`PruneError::UnknownLayer`] or [`PruneError::NoLayers`].
    pub fn nm_pruning_layers<S: AsRef<str>>(
        &mut self,
        layer_names: &[S],
        n: usize,
        m: usize,
    ) -> Result<()> {
        let names: Vec<&str> = layer_names.iter().map(AsRef::as_ref).collect();
        self.nm_impl(&names, n, m)
    }

    fn nm_impl(&mut self, names: &[&str], n: usize, m: usize) -> Result<()> {
        if n == 0 || m == 0 || n > m {
            return Err(PruneError::NmArgs { n, m });
        }
        let indices = resolve(self.model, names)?;
        // Row layout: (rows, row length, kernel taps, input channels); Conv1d rows are tap-major.
        let mut layouts = Vec::with_capacity(indices.len());
        for &i in &indices {
            let (layout, what) = match &self.model.layers[i] {
                Layer::Dense(d) => {
                    let (o, c) = d.weight.dim();
                    ((o, c, 1, c), "inputs")
                }
                Layer::Conv1d(cv) => {
                    let (o, c, k) = cv.weight.dim();
                    (
                        (o, c * k, k, c),
                        "kernel x input weights per output channel",
                    )
                }
                _ => continue,
            };
            if layout.1 % m != 0 {
                return Err(PruneError::NmWidth {
                    layer: layer_name(&self.model.layers[i])
                        .unwrap_or_default()
                        .to_string(),
                    width: layout.1,
                    m,
                    what,
                });
            }
            layouts.push((i, layout));
        }
        for (i, (rows, row_len, k, c)) in layouts {
            let layer = &mut self.model.layers[i];
            let w = weight_values(layer);
            let mut mask = mask_or_ones(layer);
            // Host flat index of position `p` of row `o`: Dense `o * in + p`; Conv1d host layout is
            // [o][c][k] while `p = tap * C_in + channel`.
            let host = |o: usize, p: usize| {
                if k == 1 {
                    o * row_len + p
                } else {
                    o * row_len + (p % c) * k + p / c
                }
            };
            let mut group: Vec<usize> = Vec::with_capacity(m);
            for o in 0..rows {
                for g in 0..row_len / m {
                    group.clear();
                    group.extend((g * m..(g + 1) * m).map(|p| host(o, p)));
                    // Largest first; masked weights last; then the lower position.
                    group.sort_by(|&a, &b| {
                        (mask[b] != 0.0)
                            .cmp(&(mask[a] != 0.0))
                            .then(w[b].abs().total_cmp(&w[a].abs()))
                            .then(a.cmp(&b))
                    });
                    for &j in &group[n..] {
                        mask[j] = 0.0;
                    }
                }
            }
            set_mask(layer, mask);
        }
        Ok(())
    }

    /// Makes the pruning permanent: applies every mask to its weight and drops the masks
    /// (PyTorch's `prune.remove`); pruned weights stay zero, but fine-tuning may move them from now on.
    pub fn remove(&mut self) {
        self.model.remove_masks();
    }

    /// Counts zero weights globally and per layer, on the effective weights (`weight * mask`).
    pub fn get_pruning_statistics(&self) -> PruningStatistics {
        PruningStatistics::of_model(self.model)
    }

    /// Applies `method` with `amount` (ignored by N:M).
    ///
    /// # Errors
    ///
    /// Those of the method.
    pub fn apply(&mut self, method: &PruneMethod, amount: f32) -> Result<()> {
        match method {
            PruneMethod::Unstructured { layers } => {
                let names = layers.clone().unwrap_or_else(|| self.prunable_layers());
                self.unstructured_pruning(&names, amount)
            }
            PruneMethod::Global => self.global_unstructured_pruning(amount),
            PruneMethod::Structured { layers, dim, norm } => {
                let names = match layers {
                    Some(l) => l.clone(),
                    None => structured::default_layers(self.model, *dim),
                };
                self.structured_pruning(&names, amount, *dim, *norm)
            }
            PruneMethod::NM { n, m, layers } => {
                let names = layers.clone().unwrap_or_else(|| self.prunable_layers());
                self.nm_pruning_layers(&names, *n, *m)
            }
        }
    }
}

/// Indices of the Dense and Conv1d layers.
fn prunable_indices(model: &Sequential) -> Vec<usize> {
    model
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| layer_name(l).is_some())
        .map(|(i, _)| i)
        .collect()
}

fn prunable_names(model: &Sequential) -> Vec<String> {
    model
        .layers
        .iter()
        .filter_map(layer_name)
        .map(str::to_string)
        .collect()
}

/// Layer indices for `names`, in model order without repeats.
fn resolve(model: &Sequential, names: &[&str]) -> Result<Vec<usize>> {
    let valid = prunable_names(model);
    if valid.is_empty() {
        return Err(PruneError::NothingToPrune);
    }
    if names.is_empty() {
        return Err(PruneError::NoLayers { valid });
    }
    let mut out = Vec::with_capacity(names.len());
    for &name in names {
        let Some(i) = model
            .layers
            .iter()
            .position(|l| layer_name(l) == Some(name))
        else {
            return Err(PruneError::UnknownLayer {
                name: name.to_string(),
                valid,
            });
        };
        out.push(i);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests;
