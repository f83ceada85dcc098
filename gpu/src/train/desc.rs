//! The description of a model that [`super::GpuTrainer`] trains, independent of the host's types.
//!
//! The host converts its `Sequential` into a [`ModelDesc`] plus one [`ParamTensors`] per dense or conv1d layer;
//! layouts are the host's (PyTorch's): weights `[out, in]` and `[out, in, kernel]` row-major, sequence
//! activations `[N, C, T]`, input rows time-major (`t * features + f`).

use std::fmt;

/// An element-wise activation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
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
}

impl Activation {
    pub(crate) fn code(self) -> (u32, f32, f32) {
        match self {
            Activation::Relu => (0, 0.0, 0.0),
            Activation::Relu6 => (1, 0.0, 6.0),
            Activation::Clamp { min, max } => (2, min, max),
            Activation::Tanh => (3, 0.0, 0.0),
            Activation::Sigmoid => (4, 0.0, 0.0),
        }
    }

    /// Whether the backward pass reads the layer output (Tanh, Sigmoid) rather than its input.
    pub(crate) fn uses_output(self) -> bool {
        matches!(self, Activation::Tanh | Activation::Sigmoid)
    }
}

/// One layer of a [`ModelDesc`].
#[derive(Debug, Clone, PartialEq)]
pub enum LayerDesc {
    /// `y = x W^T + b` with `W` of `[outputs, inputs]`.
    Dense {
        /// Input width.
        inputs: usize,
        /// Output width.
        outputs: usize,
    },
    /// 1-D convolution over time with `W` of `[out_channels, in_channels, kernel]`.
    Conv1d {
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
        /// Kernel taps.
        kernel: usize,
        /// Step between output positions.
        stride: usize,
        /// Spacing between taps.
        dilation: usize,
        /// Zero steps padded on the left (causal padding is `dilation * (kernel - 1)`).
        pad_left: usize,
    },
    /// An element-wise activation.
    Activation(Activation),
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
    /// Mean over all time steps, `[N, C, T]` to `[N, C]`.
    GlobalAvgPool,
    /// `[N, C, T]` to `[N, C * T]`, channel-major (a no-op on the GPU's row-major buffers).
    Flatten,
}

impl LayerDesc {
    /// The layer's name as in the host's architecture files.
    pub fn kind(&self) -> &'static str {
        match self {
            LayerDesc::Dense { .. } => "dense",
            LayerDesc::Conv1d { .. } => "conv1d",
            LayerDesc::Activation(Activation::Relu) => "relu",
            LayerDesc::Activation(Activation::Relu6) => "relu6",
            LayerDesc::Activation(Activation::Clamp { .. }) => "clamp",
            LayerDesc::Activation(Activation::Tanh) => "tanh",
            LayerDesc::Activation(Activation::Sigmoid) => "sigmoid",
            LayerDesc::MaxPool1d { .. } => "maxpool1d",
            LayerDesc::AvgPool1d { .. } => "avgpool1d",
            LayerDesc::GlobalAvgPool => "global_avg_pool",
            LayerDesc::Flatten => "flatten",
        }
    }

    /// Whether the layer has a weight and a bias.
    pub fn has_params(&self) -> bool {
        matches!(self, LayerDesc::Dense { .. } | LayerDesc::Conv1d { .. })
    }
}

/// A whole model: its input window and its layers in order.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelDesc {
    /// Time steps per sample (1 for vector models).
    pub time_steps: usize,
    /// Features per time step.
    pub features: usize,
    /// Number of classes (the width of the last layer's output).
    pub classes: usize,
    /// The layers.
    pub layers: Vec<LayerDesc>,
}

/// The weight, bias and optional pruning mask of one dense or conv1d layer, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamTensors {
    /// The weight values.
    pub weight: Vec<f32>,
    /// The bias values.
    pub bias: Vec<f32>,
    /// The weight's 0/1 pruning mask, or `None` when the layer is not pruned.
    pub mask: Option<Vec<f32>>,
}

/// The optimizer, with the host's hyper-parameters and update rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptimizerDesc {
    /// Adam with L2 weight decay added to the gradient.
    Adam {
        /// Learning rate.
        lr: f32,
        /// First-moment decay.
        beta1: f32,
        /// Second-moment decay.
        beta2: f32,
        /// Denominator epsilon.
        eps: f32,
        /// L2 penalty.
        weight_decay: f32,
    },
    /// SGD with optional (Nesterov) momentum.
    Sgd {
        /// Learning rate.
        lr: f32,
        /// Momentum factor (0 for none).
        momentum: f32,
        /// Nesterov momentum.
        nesterov: bool,
        /// L2 penalty.
        weight_decay: f32,
    },
}

impl OptimizerDesc {
    /// How many state tensors the optimizer keeps per parameter tensor (Adam 2, SGD with momentum 1, else 0).
    pub fn slots(&self) -> usize {
        match *self {
            OptimizerDesc::Adam { .. } => 2,
            OptimizerDesc::Sgd { momentum, .. } if momentum != 0.0 => 1,
            OptimizerDesc::Sgd { .. } => 0,
        }
    }
}

/// The training loss.
#[derive(Debug, Clone, PartialEq)]
pub enum LossDesc {
    /// Softmax cross-entropy, the weighted mean over the batch.
    CrossEntropy,
    /// `alpha * T^2 * KL(softmax(z_t / T) || softmax(z_s / T)) + (1 - alpha) * CE`; the training set then
    /// needs the teacher's logits.
    Distill {
        /// Weight of the soft term.
        alpha: f32,
        /// Softmax temperature `T`.
        temperature: f32,
    },
}

/// Errors of the GPU trainer.
#[derive(Debug)]
#[non_exhaustive]
pub enum TrainGpuError {
    /// The GPU failed (no adapter, shader, buffer limits, mapping).
    Gpu(crate::GpuError),
    /// A layer that the GPU trainer cannot run, or whose shapes do not fit.
    Layer {
        /// The layer's index in the model.
        index: usize,
        /// The layer's kind (`dense`, `conv1d`, ...).
        kind: String,
        /// What is wrong.
        reason: String,
    },
    /// Parameters, data or settings that do not fit the model.
    Input(String),
}

impl fmt::Display for TrainGpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrainGpuError::Gpu(e) => write!(f, "{e}"),
            TrainGpuError::Layer {
                index,
                kind,
                reason,
            } => write!(f, "layer {index} ({kind}): {reason}"),
            TrainGpuError::Input(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for TrainGpuError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TrainGpuError::Gpu(e) => Some(e),
            _ => None,
        }
    }
}

impl From<crate::GpuError> for TrainGpuError {
    fn from(e: crate::GpuError) -> Self {
        TrainGpuError::Gpu(e)
    }
}
