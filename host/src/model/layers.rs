//! f32 layers with forward and backward passes over a batch.
//!
//! Activations use PyTorch's layouts: a sequence batch is `[N, C, T]` and a vector batch is `[N, F]`.
//! [`Layer::forward`] is the inference path; [`Layer::forward_cached`] also returns what
//! [`Layer::backward`] needs to compute the input gradient and the parameter gradients.

use ndarray::{Array1, Array2, Array3, Axis, CowArray, Ix2, linalg::general_mat_mul};

use super::arch::{Padding, Shape};

/// A batch of activations.
#[derive(Debug, Clone, PartialEq)]
pub enum Tensor {
    /// A batch of sequences, `[N, C, T]` (PyTorch `Conv1d` layout).
    Seq(Array3<f32>),
    /// A batch of vectors, `[N, F]`.
    Flat(Array2<f32>),
}

impl Tensor {
    /// The number of samples in the batch.
    pub fn batch(&self) -> usize {
        match self {
            Tensor::Seq(a) => a.dim().0,
            Tensor::Flat(a) => a.dim().0,
        }
    }

    /// The shape of one sample.
    pub fn shape(&self) -> Shape {
        match self {
            Tensor::Seq(a) => Shape::Seq {
                channels: a.dim().1,
                time: a.dim().2,
            },
            Tensor::Flat(a) => Shape::Flat(a.dim().1),
        }
    }

    /// Iterates over every value, in logical (row-major) order.
    pub fn iter(&self) -> Box<dyn Iterator<Item = &f32> + '_> {
        match self {
            Tensor::Seq(a) => Box::new(a.iter()),
            Tensor::Flat(a) => Box::new(a.iter()),
        }
    }

    /// All values as one slice in row-major order, when the array is in standard layout
    /// (always true for tensors produced by the layers).
    pub fn as_slice(&self) -> Option<&[f32]> {
        match self {
            Tensor::Seq(a) => a.as_slice(),
            Tensor::Flat(a) => a.as_slice(),
        }
    }

    /// The batch as a matrix with one row per sample, flattened channel-major (`c * T + t`) for sequences.
    pub fn to_rows(&self) -> Array2<f32> {
        match self {
            Tensor::Flat(a) => a.clone(),
            Tensor::Seq(a) => {
                let (n, c, t) = a.dim();
                let std = a.as_standard_layout();
                Array2::from_shape_vec((n, c * t), std.iter().copied().collect())
                    .unwrap_or_else(|_| Array2::zeros((n, c * t)))
            }
        }
    }

    fn expect_seq(self, layer: &str) -> Array3<f32> {
        match self {
            Tensor::Seq(a) => a.as_standard_layout().into_owned(),
            Tensor::Flat(_) => panic!("{layer} needs a sequence tensor"),
        }
    }

    fn expect_flat(self, layer: &str) -> Array2<f32> {
        match self {
            Tensor::Flat(a) => a,
            Tensor::Seq(_) => panic!("{layer} needs a vector tensor"),
        }
    }

    fn map(&self, f: impl Fn(f32) -> f32) -> Tensor {
        match self {
            Tensor::Seq(a) => Tensor::Seq(a.mapv(f)),
            Tensor::Flat(a) => Tensor::Flat(a.mapv(f)),
        }
    }

    /// Element-wise `grad * g(cached)` for activation backward passes; both tensors have the same shape.
    fn zip_grad(grad: Tensor, cached: &Tensor, g: impl Fn(f32) -> f32) -> Tensor {
        match (grad, cached) {
            (Tensor::Seq(mut d), Tensor::Seq(c)) => {
                d.zip_mut_with(c, |d, &c| *d *= g(c));
                Tensor::Seq(d)
            }
            (Tensor::Flat(mut d), Tensor::Flat(c)) => {
                d.zip_mut_with(c, |d, &c| *d *= g(c));
                Tensor::Flat(d)
            }
            _ => panic!("gradient and cached activation disagree in kind"),
        }
    }
}

/// A fully connected layer, `y = x W^T + b`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    /// Parameter name prefix (`fc1`, ...); tensors are `{name}.weight` and `{name}.bias`.
    pub name: String,
    /// `[out, in]`, as PyTorch's `nn.Linear.weight`.
    pub weight: Array2<f32>,
    /// `[out]`.
    pub bias: Array1<f32>,
    /// The pruning mask of the weight, `[out, in]` of 0s and 1s, or `None` when the layer is not pruned.
    ///
    /// While a mask is present, `weight` is kept equal to `weight * mask`: the weight gradient is masked and
    /// the optimizer re-applies the mask after every step (see [`crate::prune`]).
    pub weight_mask: Option<Array2<f32>>,
}

/// A 1-D convolution over time.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv1d {
    /// Parameter name prefix (`conv1`, ...); tensors are `{name}.weight` and `{name}.bias`.
    pub name: String,
    /// `[out, in, kernel]`, as PyTorch's `nn.Conv1d.weight`.
    pub weight: Array3<f32>,
    /// `[out]`.
    pub bias: Array1<f32>,
    /// The pruning mask of the weight, `[out, in, kernel]` of 0s and 1s, or `None` when the layer is not pruned;
    /// as for [`Dense::weight_mask`], `weight` is kept equal to `weight * mask`.
    pub weight_mask: Option<Array3<f32>>,
    /// Step between output positions.
    pub stride: usize,
    /// Spacing between kernel taps.
    pub dilation: usize,
    /// Valid or causal (left zero padding of `dilation * (kernel - 1)`).
    pub padding: Padding,
}

impl Conv1d {
    /// The number of left padding steps.
    pub fn pad_left(&self) -> usize {
        match self.padding {
            Padding::Valid => 0,
            Padding::Causal => self.dilation * (self.weight.dim().2 - 1),
        }
    }

    /// The output length for an input of `t_in` steps (0 when the input is too short).
    pub fn out_len(&self, t_in: usize) -> usize {
        let span = self.dilation * (self.weight.dim().2 - 1) + 1;
        let padded = t_in + self.pad_left();
        if padded < span {
            0
        } else {
            (padded - span) / self.stride + 1
        }
    }

    /// Builds the im2col matrix `[N * T_out, C_in * K]`; row `n * T_out + t` holds the receptive field of
    /// output step `t` of sample `n`, column `c * K + k` matching the weight's `[out, in * k]` view.
    fn im2col(&self, x: &Array3<f32>) -> Array2<f32> {
        let (n, c_in, t_in) = x.dim();
        let (_, _, k) = self.weight.dim();
        let t_out = self.out_len(t_in);
        let pad = self.pad_left();
        let ck = c_in * k;
        let xs = x.as_slice().unwrap_or(&[]);
        let mut cols = vec![0.0f32; n * t_out * ck];
        // One row per output position: for each input channel, gather the K taps; taps that fall in the
        // causal padding stay zero.
        for (row_idx, row) in cols.chunks_exact_mut(ck).enumerate() {
            let (s, t) = (row_idx / t_out, row_idx % t_out);
            let base = t * self.stride;
            for c in 0..c_in {
                let xrow = &xs[(s * c_in + c) * t_in..][..t_in];
                let dst = &mut row[c * k..][..k];
                for (kk, d) in dst.iter_mut().enumerate() {
                    let pos = base + kk * self.dilation;
                    if pos >= pad {
                        *d = xrow[pos - pad];
                    }
                }
            }
        }
        Array2::from_shape_vec((n * t_out, ck), cols).unwrap_or_else(|_| Array2::zeros((0, ck)))
    }

    /// The weight viewed as `[out, in * kernel]` (copied only if it is not in standard layout).
    fn weight_2d(&self) -> CowArray<'_, f32, Ix2> {
        let (o, c, k) = self.weight.dim();
        let w = self.weight.as_standard_layout();
        w.into_shape_with_order((o, c * k))
            .unwrap_or_else(|_| CowArray::from(Array2::zeros((o, c * k))))
    }
}

/// One layer of a [`super::Sequential`] model.
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    /// Fully connected.
    Dense(Dense),
    /// 1-D convolution.
    Conv1d(Conv1d),
    /// `max(x, 0)`.
    ReLU,
    /// `min(max(x, 0), 6)`.
    ReLU6,
    /// `min(max(x, min), max)`.
    Clamp {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
    /// Hyperbolic tangent.
    Tanh,
    /// Logistic sigmoid.
    Sigmoid,
    /// Windowed maximum over time.
    MaxPool1d {
        /// Window length.
        kernel: usize,
        /// Step between windows.
        stride: usize,
    },
    /// Windowed mean over time.
    AvgPool1d {
        /// Window length.
        kernel: usize,
        /// Step between windows.
        stride: usize,
    },
    /// Mean over all time steps.
    GlobalAvgPool,
    /// `[N, C, T]` to `[N, C * T]`, channel-major.
    Flatten,
}

/// What [`Layer::backward`] needs from the forward pass; opaque.
#[derive(Debug)]
pub struct LayerCache(Cache);

#[derive(Debug)]
enum Cache {
    /// The layer input.
    Input(Tensor),
    /// The layer output.
    Output(Tensor),
    /// The im2col matrix and the input shape.
    Conv {
        cols: Array2<f32>,
        n: usize,
        t_in: usize,
    },
    /// For every output value, the flat index of the chosen input value.
    MaxPool {
        argmax: Vec<usize>,
        in_dim: (usize, usize, usize),
    },
    /// Only the input shape.
    Shape(Shape, usize),
}

/// Gradients of a layer's parameters, in the parameters' row-major layouts.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamGrads {
    /// Gradient of the weight, flattened row-major.
    pub weight: Vec<f32>,
    /// Gradient of the bias.
    pub bias: Vec<f32>,
}

/// `w * m` for a 0/1 mask value, giving `+0.0` rather than `-0.0` for a pruned negative weight.
fn zero_where_masked(w: &mut f32, &m: &f32) {
    if m == 0.0 {
        *w = 0.0;
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl Layer {
    /// The layer's `type` string, as in the architecture file.
    pub fn kind(&self) -> &'static str {
        match self {
            Layer::Dense(_) => "dense",
            Layer::Conv1d(_) => "conv1d",
            Layer::ReLU => "relu",
            Layer::ReLU6 => "relu6",
            Layer::Clamp { .. } => "clamp",
            Layer::Tanh => "tanh",
            Layer::Sigmoid => "sigmoid",
            Layer::MaxPool1d { .. } => "maxpool1d",
            Layer::AvgPool1d { .. } => "avgpool1d",
            Layer::GlobalAvgPool => "global_avg_pool",
            Layer::Flatten => "flatten",
        }
    }

    /// The number of trainable values (weight plus bias).
    pub fn num_parameters(&self) -> usize {
        match self {
            Layer::Dense(d) => d.weight.len() + d.bias.len(),
            Layer::Conv1d(c) => c.weight.len() + c.bias.len(),
            _ => 0,
        }
    }

    /// Whether the layer holds a pruning mask.
    pub fn is_masked(&self) -> bool {
        match self {
            Layer::Dense(d) => d.weight_mask.is_some(),
            Layer::Conv1d(c) => c.weight_mask.is_some(),
            _ => false,
        }
    }

    /// Multiplies the weight by its pruning mask, if the layer has one, so pruned weights are exactly `+0.0`.
    pub fn apply_mask(&mut self) {
        match self {
            Layer::Dense(Dense {
                weight,
                weight_mask: Some(mask),
                ..
            }) => weight.zip_mut_with(mask, zero_where_masked),
            Layer::Conv1d(Conv1d {
                weight,
                weight_mask: Some(mask),
                ..
            }) => weight.zip_mut_with(mask, zero_where_masked),
            _ => {}
        }
    }

    /// The pruning mask as row-major values in the weight's layout, if the layer has one.
    pub fn mask_values(&self) -> Option<Vec<f32>> {
        match self {
            Layer::Dense(Dense {
                weight_mask: Some(m),
                ..
            }) => Some(m.iter().copied().collect()),
            Layer::Conv1d(Conv1d {
                weight_mask: Some(m),
                ..
            }) => Some(m.iter().copied().collect()),
            _ => None,
        }
    }

    /// Runs the layer for inference.
    ///
    /// # Panics
    ///
    /// If the tensor kind or size does not fit the layer; [`super::Sequential`] only passes tensors
    /// whose shapes it has validated.
    pub fn forward(&self, x: Tensor) -> Tensor {
        match self {
            Layer::ReLU => x.map(|v| v.max(0.0)),
            Layer::ReLU6 => x.map(|v| v.clamp(0.0, 6.0)),
            Layer::Clamp { min, max } => x.map(|v| v.clamp(*min, *max)),
            Layer::Tanh => x.map(f32::tanh),
            Layer::Sigmoid => x.map(sigmoid),
            _ => self.forward_cached(x).0,
        }
    }

    /// Runs the layer and keeps what the backward pass needs.
    ///
    /// # Panics
    ///
    /// As [`Layer::forward`].
    pub fn forward_cached(&self, x: Tensor) -> (Tensor, LayerCache) {
        let (y, cache) = match self {
            Layer::Dense(d) => {
                let xa = x.expect_flat("dense");
                let mut y = xa.dot(&d.weight.t());
                y += &d.bias;
                (Tensor::Flat(y), Cache::Input(Tensor::Flat(xa)))
            }
            Layer::Conv1d(c) => {
                let xa = x.expect_seq("conv1d");
                let (n, _, t_in) = xa.dim();
                let cols = c.im2col(&xa);
                drop(xa);
                let o = c.weight.dim().0;
                let t_out = c.out_len(t_in);
                let mut y2 = Array2::<f32>::zeros((n * t_out, o));
                general_mat_mul(1.0, &cols, &c.weight_2d().t(), 0.0, &mut y2);
                // Reorder [N * T_out, O] rows into the [N, O, T_out] layout and add the bias.
                let mut y = Array3::<f32>::zeros((n, o, t_out));
                let ys = y.as_slice_mut().unwrap_or(&mut []);
                let y2s = y2.as_slice().unwrap_or(&[]);
                for (row_idx, row) in y2s.chunks_exact(o).enumerate() {
                    let (s, t) = (row_idx / t_out, row_idx % t_out);
                    for (ch, (&v, &b)) in row.iter().zip(c.bias.iter()).enumerate() {
                        ys[(s * o + ch) * t_out + t] = v + b;
                    }
                }
                (Tensor::Seq(y), Cache::Conv { cols, n, t_in })
            }
            Layer::ReLU | Layer::ReLU6 | Layer::Clamp { .. } => {
                let y = self.forward_elementwise(&x);
                (y, Cache::Input(x))
            }
            Layer::Tanh | Layer::Sigmoid => {
                let y = self.forward_elementwise(&x);
                (y.clone(), Cache::Output(y))
            }
            Layer::MaxPool1d { kernel, stride } => {
                let xa = x.expect_seq("maxpool1d");
                let (n, c, t_in) = xa.dim();
                let t_out = (t_in - kernel) / stride + 1;
                let xs = xa.as_slice().unwrap_or(&[]);
                let mut y = Array3::<f32>::zeros((n, c, t_out));
                let mut argmax = vec![0usize; n * c * t_out];
                let ys = y.as_slice_mut().unwrap_or(&mut []);
                for (lane, (yl, al)) in ys
                    .chunks_exact_mut(t_out)
                    .zip(argmax.chunks_exact_mut(t_out))
                    .enumerate()
                {
                    let base = lane * t_in;
                    for (t, (yv, av)) in yl.iter_mut().zip(al.iter_mut()).enumerate() {
                        let start = base + t * stride;
                        let mut best = start;
                        for i in start + 1..start + kernel {
                            if xs[i] > xs[best] {
                                best = i;
                            }
                        }
                        *yv = xs[best];
                        *av = best;
                    }
                }
                (
                    Tensor::Seq(y),
                    Cache::MaxPool {
                        argmax,
                        in_dim: (n, c, t_in),
                    },
                )
            }
            Layer::AvgPool1d { kernel, stride } => {
                let xa = x.expect_seq("avgpool1d");
                let (n, c, t_in) = xa.dim();
                let t_out = (t_in - kernel) / stride + 1;
                let xs = xa.as_slice().unwrap_or(&[]);
                let mut y = Array3::<f32>::zeros((n, c, t_out));
                let ys = y.as_slice_mut().unwrap_or(&mut []);
                let inv = 1.0 / *kernel as f32;
                for (lane, yl) in ys.chunks_exact_mut(t_out).enumerate() {
                    let xl = &xs[lane * t_in..][..t_in];
                    for (t, yv) in yl.iter_mut().enumerate() {
                        *yv = xl[t * stride..][..*kernel].iter().sum::<f32>() * inv;
                    }
                }
                let shape = Shape::Seq {
                    channels: c,
                    time: t_in,
                };
                (Tensor::Seq(y), Cache::Shape(shape, n))
            }
            Layer::GlobalAvgPool => {
                let xa = x.expect_seq("global_avg_pool");
                let (n, c, t) = xa.dim();
                let y = xa.sum_axis(Axis(2)) / t as f32;
                let shape = Shape::Seq {
                    channels: c,
                    time: t,
                };
                (Tensor::Flat(y), Cache::Shape(shape, n))
            }
            Layer::Flatten => {
                let n = x.batch();
                let shape = x.shape();
                (Tensor::Flat(x.to_rows()), Cache::Shape(shape, n))
            }
        };
        (y, LayerCache(cache))
    }

    fn forward_elementwise(&self, x: &Tensor) -> Tensor {
        match self {
            Layer::ReLU => x.map(|v| v.max(0.0)),
            Layer::ReLU6 => x.map(|v| v.clamp(0.0, 6.0)),
            Layer::Clamp { min, max } => x.map(|v| v.clamp(*min, *max)),
            Layer::Tanh => x.map(f32::tanh),
            Layer::Sigmoid => x.map(sigmoid),
            _ => x.clone(),
        }
    }

    /// Back-propagates `grad` (the loss gradient with respect to this layer's output).
    ///
    /// Returns the gradient with respect to the layer input (only when `need_input_grad`, so the
    /// first layer can skip it) and, for dense and conv1d layers, the parameter gradients.
    ///
    /// # Panics
    ///
    /// If `cache` did not come from this layer's [`Layer::forward_cached`] or `grad` has another shape than
    /// that call's output.
    pub fn backward(
        &self,
        cache: &LayerCache,
        grad: Tensor,
        need_input_grad: bool,
    ) -> (Option<Tensor>, Option<ParamGrads>) {
        match (self, &cache.0) {
            (Layer::Dense(d), Cache::Input(Tensor::Flat(x))) => {
                let g = grad.expect_flat("dense");
                let dw = g.t().dot(x);
                let db = g.sum_axis(Axis(0));
                let dx = need_input_grad.then(|| Tensor::Flat(g.dot(&d.weight)));
                let grads = ParamGrads {
                    weight: dw.iter().copied().collect(),
                    bias: db.to_vec(),
                };
                (dx, Some(grads))
            }
            (Layer::Conv1d(c), Cache::Conv { cols, n, t_in }) => {
                let g = grad.expect_seq("conv1d");
                let (o, c_in, k) = c.weight.dim();
                let t_out = g.dim().2;
                // Transpose the gradient into the [N * T_out, O] layout of the forward GEMM.
                let mut g2 = Array2::<f32>::zeros((n * t_out, o));
                {
                    let gs = g.as_slice().unwrap_or(&[]);
                    let g2s = g2.as_slice_mut().unwrap_or(&mut []);
                    for (row_idx, row) in g2s.chunks_exact_mut(o).enumerate() {
                        let (s, t) = (row_idx / t_out, row_idx % t_out);
                        for (ch, v) in row.iter_mut().enumerate() {
                            *v = gs[(s * o + ch) * t_out + t];
                        }
                    }
                }
                let mut dw = Array2::<f32>::zeros((o, c_in * k));
                general_mat_mul(1.0, &g2.t(), cols, 0.0, &mut dw);
                let db = g2.sum_axis(Axis(0));
                let dx = need_input_grad.then(|| {
                    let mut dcols = Array2::<f32>::zeros((n * t_out, c_in * k));
                    general_mat_mul(1.0, &g2, &c.weight_2d(), 0.0, &mut dcols);
                    Tensor::Seq(c.col2im(&dcols, *n, *t_in))
                });
                let grads = ParamGrads {
                    weight: dw.iter().copied().collect(),
                    bias: db.to_vec(),
                };
                (dx, Some(grads))
            }
            (Layer::ReLU, Cache::Input(x)) => (
                need_input_grad
                    .then(|| Tensor::zip_grad(grad, x, |v| if v > 0.0 { 1.0 } else { 0.0 })),
                None,
            ),
            (Layer::ReLU6, Cache::Input(x)) => (
                need_input_grad.then(|| {
                    Tensor::zip_grad(grad, x, |v| if v > 0.0 && v < 6.0 { 1.0 } else { 0.0 })
                }),
                None,
            ),
            (Layer::Clamp { min, max }, Cache::Input(x)) => (
                need_input_grad.then(|| {
                    Tensor::zip_grad(grad, x, |v| if v >= *min && v <= *max { 1.0 } else { 0.0 })
                }),
                None,
            ),
            (Layer::Tanh, Cache::Output(y)) => (
                need_input_grad.then(|| Tensor::zip_grad(grad, y, |v| 1.0 - v * v)),
                None,
            ),
            (Layer::Sigmoid, Cache::Output(y)) => (
                need_input_grad.then(|| Tensor::zip_grad(grad, y, |v| v * (1.0 - v))),
                None,
            ),
            (Layer::MaxPool1d { .. }, Cache::MaxPool { argmax, in_dim }) => {
                let dx = need_input_grad.then(|| {
                    let g = grad.expect_seq("maxpool1d");
                    let mut dx = Array3::<f32>::zeros(*in_dim);
                    let dxs = dx.as_slice_mut().unwrap_or(&mut []);
                    for (&gv, &i) in g.iter().zip(argmax.iter()) {
                        dxs[i] += gv;
                    }
                    Tensor::Seq(dx)
                });
                (dx, None)
            }
            (
                Layer::AvgPool1d { kernel, stride },
                Cache::Shape(Shape::Seq { channels, time }, n),
            ) => {
                let dx = need_input_grad.then(|| {
                    let g = grad.expect_seq("avgpool1d");
                    let t_out = g.dim().2;
                    let mut dx = Array3::<f32>::zeros((*n, *channels, *time));
                    let dxs = dx.as_slice_mut().unwrap_or(&mut []);
                    let gs = g.as_slice().unwrap_or(&[]);
                    let inv = 1.0 / *kernel as f32;
                    for (dl, gl) in dxs.chunks_exact_mut(*time).zip(gs.chunks_exact(t_out)) {
                        for (t, &gv) in gl.iter().enumerate() {
                            for d in &mut dl[t * stride..][..*kernel] {
                                *d += gv * inv;
                            }
                        }
                    }
                    Tensor::Seq(dx)
                });
                (dx, None)
            }
            (Layer::GlobalAvgPool, Cache::Shape(Shape::Seq { channels, time }, n)) => {
                let dx = need_input_grad.then(|| {
                    let g = grad.expect_flat("global_avg_pool") / *time as f32;
                    let dx = g
                        .insert_axis(Axis(2))
                        .broadcast((*n, *channels, *time))
                        .map(|b| b.to_owned())
                        .unwrap_or_else(|| Array3::zeros((*n, *channels, *time)));
                    Tensor::Seq(dx)
                });
                (dx, None)
            }
            (Layer::Flatten, Cache::Shape(shape, n)) => {
                let dx = need_input_grad.then(|| {
                    let g = grad.expect_flat("flatten");
                    match *shape {
                        Shape::Flat(_) => Tensor::Flat(g),
                        Shape::Seq { channels, time } => {
                            let g = g.as_standard_layout().into_owned();
                            Tensor::Seq(
                                g.into_shape_with_order((*n, channels, time))
                                    .unwrap_or_else(|_| Array3::zeros((*n, channels, time))),
                            )
                        }
                    }
                });
                (dx, None)
            }
            _ => panic!("layer cache does not belong to a {} layer", self.kind()),
        }
    }
}

impl Conv1d {
    /// Scatters im2col gradients back onto the `[N, C_in, T_in]` input.
    fn col2im(&self, dcols: &Array2<f32>, n: usize, t_in: usize) -> Array3<f32> {
        let (_, c_in, k) = self.weight.dim();
        let t_out = self.out_len(t_in);
        let pad = self.pad_left();
        let mut dx = Array3::<f32>::zeros((n, c_in, t_in));
        let dxs = dx.as_slice_mut().unwrap_or(&mut []);
        let ds = dcols.as_slice().unwrap_or(&[]);
        for (row_idx, row) in ds.chunks_exact(c_in * k).enumerate() {
            let (s, t) = (row_idx / t_out, row_idx % t_out);
            let base = t * self.stride;
            for c in 0..c_in {
                let xrow = &mut dxs[(s * c_in + c) * t_in..][..t_in];
                for (kk, &d) in row[c * k..][..k].iter().enumerate() {
                    let pos = base + kk * self.dilation;
                    if pos >= pad {
                        xrow[pos - pad] += d;
                    }
                }
            }
        }
        dx
    }
}
