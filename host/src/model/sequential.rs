//! The f32 [`Sequential`] model: an architecture plus its layers and weights.

use ndarray::{Array1, Array2, Array3, ArrayView2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::arch::{Architecture, LayerSpec, Shape};
use super::error::{ModelError, Result};
use super::layers::{Conv1d, Dense, Layer, LayerCache, ParamGrads, Tensor};

/// Rows per pass in [`Sequential::forward`].
const FORWARD_CHUNK: usize = 512;

/// Named parameter tensors: `(name, shape, row-major values)`, in PyTorch `state_dict()` order and naming.
pub type StateDict = Vec<(String, Vec<usize>, Vec<f32>)>;

/// Gradients of all parameters, aligned with [`Sequential::state_dict`] (weight then bias, layer by layer).
#[derive(Debug, Clone, PartialEq)]
pub struct Gradients {
    /// One row-major gradient per parameter tensor.
    pub tensors: Vec<Vec<f32>>,
}

/// A feed-forward network of [`Layer`]s described by an [`Architecture`].
///
/// The layers must stay consistent with `arch` (same kinds, parameter names and shapes);
/// [`Sequential::new`] and [`Sequential::load_state_dict`] keep it so.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequential {
    /// The architecture the layers were built from.
    pub arch: Architecture,
    /// The layers, index-aligned with `arch.layers`.
    pub layers: Vec<Layer>,
}

/// Draws from `U(-bound, bound)` using 24 random bits, independent of `rand`'s distribution code.
fn uniform(rng: &mut ChaCha8Rng, bound: f32) -> f32 {
    let u = (rng.next_u32() >> 8) as f32 * (1.0 / (1u32 << 24) as f32);
    (2.0 * u - 1.0) * bound
}

impl Sequential {
    /// Builds a model with freshly initialized weights.
    ///
    /// Dense and conv1d weights and biases are drawn from `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`, which is what
    /// PyTorch's default `kaiming_uniform_(a=sqrt(5))` initialization amounts to (`fan_in = in` or `in * kernel`).
    /// The draws come from a ChaCha8 generator seeded with `seed`, so a seed always gives the same weights.
    ///
    /// # Errors
    ///
    /// [`ModelError::InvalidArch`] when the architecture does not validate.
    pub fn new(arch: Architecture, seed: u64) -> Result<Self> {
        let shapes = arch.shapes()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut layers = Vec::with_capacity(arch.layers.len());
        let mut input = arch.input_shape();
        for (i, spec) in arch.layers.iter().enumerate() {
            let name = arch.param_name(i).unwrap_or_default();
            let layer = match *spec {
                LayerSpec::Dense { out, .. } => {
                    let fan_in = input.len();
                    let bound = 1.0 / (fan_in as f32).sqrt();
                    let weight =
                        Array2::from_shape_simple_fn((out, fan_in), || uniform(&mut rng, bound));
                    let bias = Array1::from_shape_simple_fn(out, || uniform(&mut rng, bound));
                    Layer::Dense(Dense {
                        name,
                        weight,
                        bias,
                        weight_mask: None,
                    })
                }
                LayerSpec::Conv1d {
                    out,
                    kernel,
                    stride,
                    dilation,
                    padding,
                    ..
                } => {
                    let c_in = match input {
                        Shape::Seq { channels, .. } => channels,
                        Shape::Flat(n) => n,
                    };
                    let bound = 1.0 / ((c_in * kernel) as f32).sqrt();
                    let weight = Array3::from_shape_simple_fn((out, c_in, kernel), || {
                        uniform(&mut rng, bound)
                    });
                    let bias = Array1::from_shape_simple_fn(out, || uniform(&mut rng, bound));
                    Layer::Conv1d(Conv1d {
                        name,
                        weight,
                        bias,
                        weight_mask: None,
                        stride,
                        dilation,
                        padding,
                    })
                }
                LayerSpec::ReLU => Layer::ReLU,
                LayerSpec::ReLU6 => Layer::ReLU6,
                LayerSpec::Clamp { min, max } => Layer::Clamp { min, max },
                LayerSpec::Tanh => Layer::Tanh,
                LayerSpec::Sigmoid => Layer::Sigmoid,
                LayerSpec::MaxPool1d { kernel, stride } => Layer::MaxPool1d {
                    kernel,
                    stride: stride.unwrap_or(kernel),
                },
                LayerSpec::AvgPool1d { kernel, stride } => Layer::AvgPool1d {
                    kernel,
                    stride: stride.unwrap_or(kernel),
                },
                LayerSpec::GlobalAvgPool => Layer::GlobalAvgPool,
                LayerSpec::Flatten => Layer::Flatten,
            };
            layers.push(layer);
            input = shapes[i];
        }
        Ok(Self { arch, layers })
    }

    /// The number of input columns, `time_steps * features`.
    pub fn input_len(&self) -> usize {
        self.arch.input_len()
    }

    /// The number of output classes.
    pub fn classes(&self) -> usize {
        self.arch.classes
    }

    /// Checks that `x` has `time_steps * features` columns.
    ///
    /// # Errors
    ///
    /// [`ModelError::InputWidth`].
    pub fn check_input(&self, x: ArrayView2<f32>) -> Result<()> {
        if x.ncols() == self.input_len() {
            Ok(())
        } else {
            Err(ModelError::InputWidth {
                expected: self.input_len(),
                got: x.ncols(),
            })
        }
    }

    /// Converts model input rows (`[N, T * F]`, time-major `t * F + f`) into the first layer's tensor:
    /// `Flat [N, F]` when `T == 1`, else `Seq [N, F, T]`.
    ///
    /// # Panics
    ///
    /// If `x` has the wrong number of columns (see [`Sequential::check_input`]).
    pub fn input_tensor(&self, x: ArrayView2<f32>) -> Tensor {
        assert_eq!(
            x.ncols(),
            self.input_len(),
            "model input has the wrong width"
        );
        let (t, f) = (self.arch.input.time_steps, self.arch.input.features);
        if t == 1 {
            return Tensor::Flat(x.to_owned());
        }
        let n = x.nrows();
        let mut out = Array3::<f32>::zeros((n, f, t));
        for (mut dst, src) in out.outer_iter_mut().zip(x.rows()) {
            for (i, &v) in src.iter().enumerate() {
                dst[[i % f, i / f]] = v;
            }
        }
        Tensor::Seq(out)
    }

    /// Computes the logits `[N, classes]` for the input rows `x` (`[N, T * F]`, time-major).
    ///
    /// # Panics
    ///
    /// If `x` has the wrong number of columns; use [`Sequential::try_forward`] or
    /// [`Sequential::check_input`] for unchecked data.
    pub fn forward(&self, x: ArrayView2<f32>) -> Array2<f32> {
        // Large inputs run in chunks so the im2col buffers of conv layers stay cache-sized.
        let mut out = Array2::<f32>::zeros((x.nrows(), self.classes()));
        for (xb, mut ob) in x
            .axis_chunks_iter(Axis(0), FORWARD_CHUNK)
            .zip(out.axis_chunks_iter_mut(Axis(0), FORWARD_CHUNK))
        {
            let mut h = self.input_tensor(xb);
            for layer in &self.layers {
                h = layer.forward(h);
            }
            ob.assign(&h.to_rows());
        }
        out
    }

    /// Like [`Sequential::forward`], but returns an error instead of panicking on a bad input width.
    ///
    /// # Errors
    ///
    /// [`ModelError::InputWidth`].
    pub fn try_forward(&self, x: ArrayView2<f32>) -> Result<Array2<f32>> {
        self.check_input(x)?;
        Ok(self.forward(x))
    }

    /// Runs the model and returns the output of every layer, index-aligned with [`Sequential::layers`]
    /// (for calibrating activation ranges).
    ///
    /// # Panics
    ///
    /// As [`Sequential::forward`].
    pub fn forward_trace(&self, x: ArrayView2<f32>) -> Vec<Tensor> {
        let mut out: Vec<Tensor> = Vec::with_capacity(self.layers.len());
        let mut h = self.input_tensor(x);
        for layer in &self.layers {
            h = layer.forward(h);
            out.push(h.clone());
        }
        out
    }

    /// The predicted class of every row: the first index of the largest logit.
    ///
    /// # Panics
    ///
    /// As [`Sequential::forward`].
    pub fn predict(&self, x: ArrayView2<f32>) -> Vec<usize> {
        self.forward(x)
            .rows()
            .into_iter()
            .map(|r| {
                r.iter()
                    .enumerate()
                    .fold(0, |best, (j, &v)| if v > r[best] { j } else { best })
            })
            .collect()
    }

    /// Runs the model and keeps every layer's cache for [`Sequential::backward`].
    ///
    /// # Panics
    ///
    /// As [`Sequential::forward`].
    pub fn forward_train(&self, x: ArrayView2<f32>) -> (Array2<f32>, Vec<LayerCache>) {
        let mut h = self.input_tensor(x);
        let mut caches = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let (y, cache) = layer.forward_cached(h);
            caches.push(cache);
            h = y;
        }
        (h.to_rows(), caches)
    }

    /// Back-propagates the loss gradient with respect to the logits through all layers.
    ///
    /// # Panics
    ///
    /// If `caches` did not come from [`Sequential::forward_train`] on this model or `grad_logits` has another shape
    /// than its logits.
    pub fn backward(&self, caches: &[LayerCache], grad_logits: Array2<f32>) -> Gradients {
        let mut per_layer: Vec<Option<ParamGrads>> = vec![None; self.layers.len()];
        let mut grad = Some(Tensor::Flat(grad_logits));
        for (i, (layer, cache)) in self.layers.iter().zip(caches).enumerate().rev() {
            let Some(g) = grad.take() else { break };
            let (dx, mut pg) = layer.backward(cache, g, i > 0);
            // A pruned weight is `weight_orig * mask` in PyTorch's terms, so its gradient is masked too.
            if let (Some(pg), Some(mask)) = (pg.as_mut(), layer.mask_values()) {
                pg.weight.iter_mut().zip(&mask).for_each(|(g, m)| *g *= m);
            }
            per_layer[i] = pg;
            grad = dx;
        }
        let mut tensors = Vec::new();
        for pg in per_layer.into_iter().flatten() {
            tensors.push(pg.weight);
            tensors.push(pg.bias);
        }
        Gradients { tensors }
    }

    /// The total number of trainable values.
    pub fn num_parameters(&self) -> usize {
        self.layers.iter().map(Layer::num_parameters).sum()
    }

    /// Names and shapes of the parameter tensors, in state dict order.
    pub fn parameter_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        for layer in &self.layers {
            let (name, wshape, blen) = match layer {
                Layer::Dense(d) => (&d.name, d.weight.shape().to_vec(), d.bias.len()),
                Layer::Conv1d(c) => (&c.name, c.weight.shape().to_vec(), c.bias.len()),
                _ => continue,
            };
            out.push((format!("{name}.weight"), wshape));
            out.push((format!("{name}.bias"), vec![blen]));
        }
        out
    }

    /// The parameters as named tensors with PyTorch names and layouts:
    /// `fc1.weight [out, in]`, `fc1.bias [out]`, `conv1.weight [out, in, kernel]`, `conv1.bias [out]`, ...
    pub fn state_dict(&self) -> StateDict {
        self.layers
            .iter()
            .flat_map(|layer| {
                let (name, wshape, w, b) = match layer {
                    Layer::Dense(d) => (
                        &d.name,
                        d.weight.shape().to_vec(),
                        d.weight.iter().copied().collect::<Vec<_>>(),
                        &d.bias,
                    ),
                    Layer::Conv1d(c) => (
                        &c.name,
                        c.weight.shape().to_vec(),
                        c.weight.iter().copied().collect(),
                        &c.bias,
                    ),
                    _ => return Vec::new(),
                };
                vec![
                    (format!("{name}.weight"), wshape, w),
                    (format!("{name}.bias"), vec![b.len()], b.to_vec()),
                ]
            })
            .collect()
    }

    /// Replaces every parameter from `state` (in any order), which must hold exactly the model's tensors.
    ///
    /// Pruning masks the model holds stay in place and are applied to the loaded weights, so pruned weights stay
    /// exactly zero; use [`Sequential::load_pruned_state_dict`] to load masks as well.
    ///
    /// # Errors
    ///
    /// [`ModelError::TensorNames`] listing missing and unexpected names, [`ModelError::TensorShape`] with the
    /// expected and supplied shapes, [`ModelError::TensorLength`] when data and shape disagree, or
    /// [`ModelError::NonFinite`]; the model is unchanged on error.
    pub fn load_state_dict(&mut self, state: &[(String, Vec<usize>, Vec<f32>)]) -> Result<()> {
        let expected = self.parameter_shapes();
        let mut missing: Vec<String> = expected
            .iter()
            .filter(|(n, _)| !state.iter().any(|(s, _, _)| s == n))
            .map(|(n, _)| n.clone())
            .collect();
        missing.sort();
        let mut unexpected: Vec<String> = Vec::new();
        for (i, (name, _, _)) in state.iter().enumerate() {
            let known = expected.iter().any(|(n, _)| n == name);
            let duplicate = state[..i].iter().any(|(s, _, _)| s == name);
            if !known || duplicate {
                unexpected.push(if duplicate {
                    format!("{name} (duplicate)")
                } else {
                    name.clone()
                });
            }
        }
        if !missing.is_empty() || !unexpected.is_empty() {
            return Err(ModelError::TensorNames {
                missing,
                unexpected,
            });
        }
        for (name, want) in &expected {
            let Some((_, shape, data)) = state.iter().find(|(s, _, _)| s == name) else {
                continue;
            };
            if shape != want {
                return Err(ModelError::TensorShape {
                    name: name.clone(),
                    expected: want.clone(),
                    got: shape.clone(),
                });
            }
            if data.len() != shape.iter().product::<usize>() {
                return Err(ModelError::TensorLength {
                    name: name.clone(),
                    shape: shape.clone(),
                    len: data.len(),
                });
            }
            if let Some((index, &value)) = data.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(ModelError::NonFinite {
                    name: name.clone(),
                    index,
                    value,
                });
            }
        }
        let find = |name: String| -> Vec<f32> {
            state
                .iter()
                .find(|(s, _, _)| *s == name)
                .map(|t| t.2.clone())
                .unwrap_or_default()
        };
        for layer in &mut self.layers {
            match layer {
                Layer::Dense(d) => {
                    let w = find(format!("{}.weight", d.name));
                    d.weight = Array2::from_shape_vec(d.weight.raw_dim(), w)
                        .unwrap_or_else(|_| d.weight.clone());
                    d.bias = Array1::from(find(format!("{}.bias", d.name)));
                }
                Layer::Conv1d(c) => {
                    let w = find(format!("{}.weight", c.name));
                    c.weight = Array3::from_shape_vec(c.weight.raw_dim(), w)
                        .unwrap_or_else(|_| c.weight.clone());
                    c.bias = Array1::from(find(format!("{}.bias", c.name)));
                }
                _ => {}
            }
            layer.apply_mask();
        }
        Ok(())
    }

    /// Whether any layer holds a pruning mask.
    pub fn has_masks(&self) -> bool {
        self.layers.iter().any(Layer::is_masked)
    }

    /// Multiplies every masked weight by its mask.
    ///
    /// The model keeps pruned weights at zero by itself; this is for code that edits weights directly.
    pub fn apply_masks(&mut self) {
        self.layers.iter_mut().for_each(Layer::apply_mask);
    }

    /// Makes pruning permanent: applies every mask to its weight and drops the masks
    /// (PyTorch's `torch.nn.utils.prune.remove`).
    pub fn remove_masks(&mut self) {
        for layer in &mut self.layers {
            layer.apply_mask();
            match layer {
                Layer::Dense(d) => d.weight_mask = None,
                Layer::Conv1d(c) => c.weight_mask = None,
                _ => {}
            }
        }
    }

    /// The pruning masks as named tensors, `{name}.weight_mask`, shaped like their weights, in layer order.
    pub fn mask_dict(&self) -> StateDict {
        self.layers
            .iter()
            .filter_map(|layer| {
                let (name, shape) = match layer {
                    Layer::Dense(d) => (&d.name, d.weight.shape().to_vec()),
                    Layer::Conv1d(c) => (&c.name, c.weight.shape().to_vec()),
                    _ => return None,
                };
                Some((format!("{name}.weight_mask"), shape, layer.mask_values()?))
            })
            .collect()
    }

    /// The parameters and masks with the names `torch.nn.utils.prune` leaves in a `state_dict()`.
    ///
    /// A masked layer gives `{name}.weight_orig`, `{name}.weight_mask` and `{name}.bias`; other layers give
    /// `{name}.weight` and `{name}.bias` as in [`Sequential::state_dict`].
    /// Pruned weights are zero in `weight_orig`, so `weight_orig * weight_mask` equals `weight_orig`.
    pub fn pruned_state_dict(&self) -> StateDict {
        let masks = self.mask_dict();
        let mut out = Vec::new();
        for (name, shape, values) in self.state_dict() {
            let Some(base) = name.strip_suffix(".weight") else {
                out.push((name, shape, values));
                continue;
            };
            let mask_name = format!("{base}.weight_mask");
            match masks.iter().find(|m| m.0 == mask_name) {
                Some(mask) => {
                    out.push((format!("{base}.weight_orig"), shape, values));
                    out.push(mask.clone());
                }
                None => out.push((name, shape, values)),
            }
        }
        out
    }

    /// Replaces every parameter and every pruning mask from `state`.
    ///
    /// Accepts [`Sequential::state_dict`] tensors, PyTorch's pruned form (`{name}.weight_orig` plus
    /// `{name}.weight_mask`, as [`Sequential::pruned_state_dict`] writes), and `{name}.weight` plus
    /// `{name}.weight_mask`.
    /// A layer without a mask in `state` ends up unmasked; a masked layer's weight becomes `weight * mask`.
    ///
    /// # Errors
    ///
    /// As [`Sequential::load_state_dict`], plus [`ModelError::Mask`] for a mask with values other than 0 and 1,
    /// a `weight_orig` without a mask, or a `weight_orig` next to a `weight`; the model is unchanged on error.
    pub fn load_pruned_state_dict(
        &mut self,
        state: &[(String, Vec<usize>, Vec<f32>)],
    ) -> Result<()> {
        let mut params: StateDict = Vec::with_capacity(state.len());
        let mut masks: StateDict = Vec::new();
        for (name, shape, values) in state {
            if let Some(base) = name.strip_suffix(".weight_mask") {
                masks.push((base.to_string(), shape.clone(), values.clone()));
            } else if let Some(base) = name.strip_suffix(".weight_orig") {
                let plain = format!("{base}.weight");
                if state.iter().any(|t| t.0 == plain) {
                    return Err(ModelError::Mask {
                        name: format!("{base}.weight_mask"),
                        reason: format!(
                            "{name} and {plain} are both present; a pruned layer stores only weight_orig"
                        ),
                    });
                }
                if !state.iter().any(|t| t.0 == format!("{base}.weight_mask")) {
                    return Err(ModelError::Mask {
                        name: format!("{base}.weight_mask"),
                        reason: format!("missing, but {name} is present"),
                    });
                }
                params.push((plain, shape.clone(), values.clone()));
            } else {
                params.push((name.clone(), shape.clone(), values.clone()));
            }
        }
        let mut model = self.clone();
        for layer in &mut model.layers {
            match layer {
                Layer::Dense(d) => d.weight_mask = None,
                Layer::Conv1d(c) => c.weight_mask = None,
                _ => {}
            }
        }
        model.load_state_dict(&params)?;
        let mut unexpected = Vec::new();
        for (base, shape, values) in masks {
            let name = format!("{base}.weight_mask");
            let Some(layer) = model.layers.iter_mut().find(|l| match l {
                Layer::Dense(d) => d.name == base,
                Layer::Conv1d(c) => c.name == base,
                _ => false,
            }) else {
                unexpected.push(name);
                continue;
            };
            if let Some((index, &value)) = values
                .iter()
                .enumerate()
                .find(|(_, v)| **v != 0.0 && **v != 1.0)
            {
                return Err(ModelError::Mask {
                    name,
                    reason: format!(
                        "value at flat index {index} is {value}; masks hold only 0 and 1"
                    ),
                });
            }
            let bad_shape = |expected: &[usize]| ModelError::TensorShape {
                name: name.clone(),
                expected: expected.to_vec(),
                got: shape.clone(),
            };
            match layer {
                Layer::Dense(d) => {
                    d.weight_mask = Some(
                        Array2::from_shape_vec(d.weight.raw_dim(), values)
                            .ok()
                            .filter(|_| shape == d.weight.shape())
                            .ok_or_else(|| bad_shape(d.weight.shape()))?,
                    );
                }
                Layer::Conv1d(c) => {
                    c.weight_mask = Some(
                        Array3::from_shape_vec(c.weight.raw_dim(), values)
                            .ok()
                            .filter(|_| shape == c.weight.shape())
                            .ok_or_else(|| bad_shape(c.weight.shape()))?,
                    );
                }
                _ => {}
            }
            layer.apply_mask();
        }
        if !unexpected.is_empty() {
            return Err(ModelError::TensorNames {
                missing: Vec::new(),
                unexpected,
            });
        }
        *self = model;
        Ok(())
    }

    /// Mutable views of every parameter tensor's values, in state dict order.
    pub(crate) fn params_mut(&mut self) -> Vec<&mut [f32]> {
        fn std_slice<D: ndarray::Dimension>(a: &mut ndarray::Array<f32, D>) -> &mut [f32] {
            if !a.is_standard_layout() {
                *a = a.as_standard_layout().into_owned();
            }
            a.as_slice_mut().unwrap_or(&mut [])
        }
        let mut out = Vec::new();
        for layer in &mut self.layers {
            match layer {
                Layer::Dense(d) => {
                    out.push(std_slice(&mut d.weight));
                    out.push(std_slice(&mut d.bias));
                }
                Layer::Conv1d(c) => {
                    out.push(std_slice(&mut c.weight));
                    out.push(std_slice(&mut c.bias));
                }
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{self as ts, Flatten, LayerExt, ReLU};
    use ndarray::array;

    fn arch() -> Architecture {
        let layers = [ts::conv(3, 2), ReLU, Flatten, ts::dense(2).named("head")];
        ts::arch("s", 2, [6, 2], &layers)
    }

    #[test]
    fn init_is_seeded_and_within_pytorch_bounds() {
        let a = Sequential::new(arch(), 5).unwrap();
        assert_eq!(a, Sequential::new(arch(), 5).unwrap());
        assert_ne!(a, Sequential::new(arch(), 6).unwrap());
        let sd = a.state_dict();
        let names: Vec<_> = sd.iter().map(|t| (t.0.as_str(), t.1.clone())).collect();
        assert_eq!(
            names,
            vec![
                ("conv1.weight", vec![3, 2, 2]),
                ("conv1.bias", vec![3]),
                ("head.weight", vec![2, 15]),
                ("head.bias", vec![2]),
            ]
        );
        assert_eq!(a.num_parameters(), 12 + 3 + 30 + 2);
        // fan_in is in * kernel = 4 for the conv and 15 for the dense layer.
        for (t, bound) in [
            (0, 0.5f32),
            (1, 0.5),
            (2, 1.0 / 15f32.sqrt()),
            (3, 1.0 / 15f32.sqrt()),
        ] {
            assert!(sd[t].2.iter().all(|v| v.abs() <= bound), "{}", sd[t].0);
            let spread = sd[t].2.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(
                spread > bound * 0.3,
                "{}: values suspiciously small",
                sd[t].0
            );
        }
    }

    #[test]
    fn state_dict_round_trips_in_any_order() {
        let a = Sequential::new(arch(), 1).unwrap();
        let mut b = Sequential::new(arch(), 2).unwrap();
        let mut sd = a.state_dict();
        sd.reverse();
        b.load_state_dict(&sd).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn load_state_dict_rejects_bad_tensors_and_leaves_the_model_alone() {
        let mut m = Sequential::new(arch(), 1).unwrap();
        let before = m.clone();
        let good = m.state_dict();

        let mut sd = good.clone();
        sd.remove(1);
        sd.push(("fc1.weight".into(), vec![1], vec![0.0]));
        let e = m.load_state_dict(&sd).unwrap_err();
        assert_eq!(
            e.to_string(),
            "missing tensors: conv1.bias; unexpected tensors: fc1.weight"
        );

        let mut sd = good.clone();
        sd.push(sd[0].clone());
        assert!(
            m.load_state_dict(&sd)
                .unwrap_err()
                .to_string()
                .contains("conv1.weight (duplicate)")
        );

        let mut sd = good.clone();
        sd[2].1 = vec![15, 2];
        let e = m.load_state_dict(&sd).unwrap_err();
        assert_eq!(
            e.to_string(),
            "tensor head.weight: expected shape [2, 15], got [15, 2]"
        );

        let mut sd = good.clone();
        sd[3].2.push(1.0);
        assert!(matches!(
            m.load_state_dict(&sd),
            Err(ModelError::TensorLength { len: 3, .. })
        ));

        let mut sd = good.clone();
        sd[0].2[5] = f32::INFINITY;
        assert!(matches!(
            m.load_state_dict(&sd),
            Err(ModelError::NonFinite { index: 5, .. })
        ));
        assert_eq!(m, before);
    }

    #[test]
    fn forward_predict_and_input_checks() {
        let mut m = Sequential::new(arch(), 1).unwrap();
        // Zero weights and a bias that prefers class 1, then class 0 on a tie.
        let mut sd = m.state_dict();
        for t in &mut sd {
            t.2.iter_mut().for_each(|v| *v = 0.0);
        }
        sd[3].2 = vec![0.0, 1.0];
        m.load_state_dict(&sd).unwrap();
        let x = ndarray::Array2::<f32>::zeros((3, 12));
        assert_eq!(
            m.forward(x.view()),
            array![[0.0f32, 1.0], [0.0, 1.0], [0.0, 1.0]]
        );
        assert_eq!(m.predict(x.view()), vec![1, 1, 1]);
        sd[3].2 = vec![1.0, 1.0];
        m.load_state_dict(&sd).unwrap();
        assert_eq!(m.predict(x.view()), vec![0, 0, 0]);
        let wide = ndarray::Array2::<f32>::zeros((1, 13));
        assert!(matches!(
            m.try_forward(wide.view()),
            Err(ModelError::InputWidth {
                expected: 12,
                got: 13
            })
        ));
        assert_eq!(
            m.forward(ndarray::Array2::zeros((0, 12)).view()).dim(),
            (0, 2)
        );
        let trace = m.forward_trace(x.view());
        assert!(trace.iter().all(|t| t.as_slice().is_some()));
        let shapes: Vec<Shape> = trace.iter().map(Tensor::shape).collect();
        assert_eq!(shapes, m.arch.shapes().unwrap());
    }

    #[test]
    fn chunked_forward_matches_the_whole_batch_pass() {
        let m = Sequential::new(arch(), 3).unwrap();
        let n = FORWARD_CHUNK * 2 + 37;
        let x = ndarray::Array2::from_shape_fn((n, 12), |(i, j)| {
            ((i * 31 + j * 7) % 17) as f32 / 8.0 - 1.0
        });
        let whole = m.forward_trace(x.view()).pop().unwrap().to_rows();
        let chunked = m.forward(x.view());
        assert_eq!(chunked.dim(), (n, 2));
        for (a, b) in chunked.iter().zip(whole.iter()) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }
}
