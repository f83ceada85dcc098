//! The output shape of a layer from its geometry and its input's shape: one rule, shared by the loader (which
//! checks the declared shape against it) and the encoder (which writes it).

use super::{LayerKind, Padding};

/// The geometry parameters of a layer that determine its output shape.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub kind: LayerKind,
    pub padding: Padding,
    pub kernel: usize,
    pub stride: usize,
    pub dilation: usize,
    /// The declared channel count, which defines the output width of Quantize, Dense and Conv1d.
    pub channels: usize,
    /// The declared time steps, which define the output length of Quantize.
    pub time: usize,
}

/// Why an output shape cannot be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShapeError {
    /// A Dense input is not a vector.
    NotVector,
    /// The window does not fit the (padded) input.
    WindowTooLarge,
    /// A size, kernel, stride or dilation is zero.
    Zero,
}

/// Computes a layer's output shape `(T, C)` from its first input's shape.
///
/// This is shared by the loader and the encoder so that the two cannot disagree.
pub(crate) fn output_shape(
    g: &Geometry,
    input: (usize, usize),
) -> Result<(usize, usize), ShapeError> {
    let (t_in, c_in) = input;
    let positive = |v: usize| if v == 0 { Err(ShapeError::Zero) } else { Ok(v) };
    let windowed = |span: usize, stride: usize, t: usize| {
        // `span` is the number of input steps one output step sees.
        if span > t {
            Err(ShapeError::WindowTooLarge)
        } else {
            Ok((t - span) / stride + 1)
        }
    };
    match g.kind {
        LayerKind::Quantize => Ok((positive(g.time)?, positive(g.channels)?)),
        LayerKind::Dense => {
            if t_in != 1 {
                return Err(ShapeError::NotVector);
            }
            Ok((1, positive(g.channels)?))
        }
        LayerKind::Conv1d => {
            let (k, s, d) = (
                positive(g.kernel)?,
                positive(g.stride)?,
                positive(g.dilation)?,
            );
            let c = positive(g.channels)?;
            let span = (k - 1)
                .checked_mul(d)
                .and_then(|v| v.checked_add(1))
                .ok_or(ShapeError::WindowTooLarge)?;
            let t = match g.padding {
                Padding::Valid => windowed(span, s, t_in)?,
                Padding::Causal => (t_in - 1) / s + 1,
            };
            Ok((t, c))
        }
        LayerKind::MaxPool1d | LayerKind::AvgPool1d => {
            let (k, s) = (positive(g.kernel)?, positive(g.stride)?);
            Ok((windowed(k, s, t_in)?, c_in))
        }
        LayerKind::GlobalAvgPool => Ok((1, c_in)),
        LayerKind::Flatten => Ok((1, t_in * c_in)),
        LayerKind::Lut | LayerKind::Add => Ok((t_in, c_in)),
    }
}
