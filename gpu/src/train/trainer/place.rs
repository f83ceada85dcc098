//! Placing a [`ModelDesc`] on the GPU: every layer's shapes, the geometry its kernels need, and which
//! activation buffers it reads and writes.

use super::Result;
use crate::train::desc::{Activation, LayerDesc, ModelDesc, TrainGpuError};
use crate::train::params::PoolParams;

/// The shape of one sample of an activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// A vector.
    Flat(usize),
    /// `[channels, time]`, row-major.
    Seq {
        /// Channels.
        channels: usize,
        /// Time steps.
        time: usize,
    },
}

impl Shape {
    /// Values per sample.
    pub(super) fn len(self) -> usize {
        match self {
            Shape::Flat(n) => n,
            Shape::Seq { channels, time } => channels * time,
        }
    }
}

/// The shapes of a conv1d layer, per sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ConvGeom {
    /// Input channels.
    pub(super) c_in: usize,
    /// Input steps.
    pub(super) t_in: usize,
    /// Output channels.
    pub(super) c_out: usize,
    /// Output steps.
    pub(super) t_out: usize,
    /// Kernel taps.
    pub(super) kernel: usize,
    /// Step between output positions.
    pub(super) stride: usize,
    /// Spacing between taps.
    pub(super) dilation: usize,
    /// Zero steps padded on the left.
    pub(super) pad_left: usize,
}

impl ConvGeom {
    /// Width of an im2col row, `c_in * kernel` (the weight's columns).
    pub(super) fn cols_width(&self) -> usize {
        self.c_in * self.kernel
    }
}

/// The shapes of a pooling layer, per sample (global average pooling is one window over all steps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PoolGeom {
    /// Channels (lanes per sample).
    pub(super) channels: usize,
    /// Input steps.
    pub(super) t_in: usize,
    /// Output steps.
    pub(super) t_out: usize,
    /// Window length.
    pub(super) kernel: usize,
    /// Step between windows.
    pub(super) stride: usize,
    /// The kernel's operation: [`PoolParams::MAX`], [`PoolParams::MEAN`] or [`PoolParams::GLOBAL_MEAN`].
    pub(super) op: u32,
}

/// What a placed layer computes, with the geometry its kernels need.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Geometry {
    /// `y = x W^T + b`.
    Dense {
        /// Input width.
        inputs: usize,
        /// Output width.
        outputs: usize,
    },
    /// 1-D convolution.
    Conv1d(ConvGeom),
    /// An element-wise activation.
    Activation(Activation),
    /// Max, average or global average pooling.
    Pool(PoolGeom),
    /// A reshape that the row-major buffers make free.
    Flatten,
}

/// A layer placed on the GPU: its geometry and the activation buffers it reads and writes.
#[derive(Debug, Clone)]
pub(super) struct Placed {
    /// The layer's index in the model.
    pub(super) index: usize,
    /// The layer's kind, for errors.
    pub(super) kind: &'static str,
    /// What it computes.
    pub(super) geometry: Geometry,
    /// Index of the activation (and gradient) buffer it reads.
    pub(super) input: usize,
    /// Index of the activation buffer it writes (flatten: the same as `input`).
    pub(super) output: usize,
    /// Input shape of one sample.
    pub(super) in_shape: Shape,
    /// Output shape of one sample.
    pub(super) out_shape: Shape,
}

/// Computes every layer's shapes and assigns activation buffers (flatten reuses its input's).
///
/// # Errors
///
/// [`TrainGpuError::Layer`] naming the first layer whose shapes do not fit; [`TrainGpuError::Input`] for a
/// model without layers or with an empty input.
pub(super) fn place(model: &ModelDesc) -> Result<Vec<Placed>> {
    if model.features == 0 || model.time_steps == 0 || model.classes == 0 {
        return Err(TrainGpuError::Input(
            "the model needs at least one time step, feature and class".into(),
        ));
    }
    let mut shape = if model.time_steps > 1 {
        Shape::Seq {
            channels: model.features,
            time: model.time_steps,
        }
    } else {
        Shape::Flat(model.features)
    };
    let mut tensor = 0usize;
    let mut out = Vec::new();
    for (index, desc) in model.layers.iter().enumerate() {
        let (geometry, next) =
            layer_geometry(desc, shape).map_err(|reason| TrainGpuError::Layer {
                index,
                kind: desc.kind().into(),
                reason,
            })?;
        let input = tensor;
        if geometry != Geometry::Flatten {
            tensor += 1;
        }
        out.push(Placed {
            index,
            kind: desc.kind(),
            geometry,
            input,
            output: tensor,
            in_shape: shape,
            out_shape: next,
        });
        shape = next;
    }
    if out.is_empty() {
        return Err(TrainGpuError::Input("the model has no layers".into()));
    }
    Ok(out)
}

/// The geometry and output shape of `desc` over an input of `shape`, or why they do not fit.
fn layer_geometry(
    desc: &LayerDesc,
    shape: Shape,
) -> std::result::Result<(Geometry, Shape), String> {
    Ok(match (desc, shape) {
        (&LayerDesc::Dense { inputs, outputs }, Shape::Flat(n)) => {
            if inputs != n || outputs == 0 {
                return Err(format!("takes {inputs} inputs, gets {n}"));
            }
            (Geometry::Dense { inputs, outputs }, Shape::Flat(outputs))
        }
        (
            &LayerDesc::Conv1d {
                in_channels,
                out_channels,
                kernel,
                stride,
                dilation,
                pad_left,
            },
            Shape::Seq { channels, time },
        ) => {
            if in_channels != channels
                || out_channels == 0
                || kernel == 0
                || stride == 0
                || dilation == 0
            {
                return Err(format!(
                    "takes {in_channels} channels (kernel {kernel}, stride {stride}, dilation {dilation}), gets {channels}"
                ));
            }
            let span = dilation * (kernel - 1) + 1;
            let padded = time + pad_left;
            if padded < span {
                return Err(format!(
                    "{time} steps are shorter than the kernel span {span}"
                ));
            }
            let t_out = (padded - span) / stride + 1;
            let geom = ConvGeom {
                c_in: channels,
                t_in: time,
                c_out: out_channels,
                t_out,
                kernel,
                stride,
                dilation,
                pad_left,
            };
            (
                Geometry::Conv1d(geom),
                Shape::Seq {
                    channels: out_channels,
                    time: t_out,
                },
            )
        }
        (&LayerDesc::Activation(a), s) => (Geometry::Activation(a), s),
        (
            &(LayerDesc::MaxPool1d { kernel, stride } | LayerDesc::AvgPool1d { kernel, stride }),
            Shape::Seq { channels, time },
        ) => {
            if kernel == 0 || stride == 0 || kernel > time {
                return Err(format!(
                    "window {kernel} / stride {stride} over {time} steps"
                ));
            }
            let t_out = (time - kernel) / stride + 1;
            let op = if matches!(desc, LayerDesc::MaxPool1d { .. }) {
                PoolParams::MAX
            } else {
                PoolParams::MEAN
            };
            let geom = PoolGeom {
                channels,
                t_in: time,
                t_out,
                kernel,
                stride,
                op,
            };
            (
                Geometry::Pool(geom),
                Shape::Seq {
                    channels,
                    time: t_out,
                },
            )
        }
        (LayerDesc::GlobalAvgPool, Shape::Seq { channels, time }) => {
            let geom = PoolGeom {
                channels,
                t_in: time,
                t_out: 1,
                kernel: time,
                stride: 1,
                op: PoolParams::GLOBAL_MEAN,
            };
            (Geometry::Pool(geom), Shape::Flat(channels))
        }
        (LayerDesc::Flatten, s) => (Geometry::Flatten, Shape::Flat(s.len())),
        (_, Shape::Flat(n)) => {
            return Err(format!("needs a sequence, gets a vector of {n}"));
        }
        (LayerDesc::Dense { .. }, Shape::Seq { channels, time }) => {
            return Err(format!(
                "needs a vector, gets a sequence of {channels} x {time} (add a flatten layer)"
            ));
        }
    })
}
