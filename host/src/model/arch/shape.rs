//! How each layer changes the shape of what flows through it, and the size checks on every layer and output.

use super::{LayerSpec, Padding, Shape};
use crate::limits::{MAX_FAN_IN, MAX_LAYER_PARAMETERS, MAX_TENSOR_VALUES, MAX_UNITS};

/// Checks the size fields of a layer against the blob format's 16-bit fields ([`MAX_UNITS`]).
pub(super) fn check_fields(spec: &LayerSpec) -> std::result::Result<(), String> {
    let fields: &[(&str, usize)] = match spec {
        LayerSpec::Dense { out, .. } => &[("out", *out)],
        LayerSpec::Conv1d {
            out,
            kernel,
            stride,
            dilation,
            ..
        } => &[
            ("out", *out),
            ("kernel", *kernel),
            ("stride", *stride),
            ("dilation", *dilation),
        ],
        LayerSpec::MaxPool1d { kernel, stride } | LayerSpec::AvgPool1d { kernel, stride } => {
            &[("kernel", *kernel), ("stride", stride.unwrap_or(*kernel))]
        }
        _ => &[],
    };
    match fields.iter().find(|(_, v)| *v > MAX_UNITS) {
        Some((field, v)) => Err(format!(
            "{field} {v} is above {MAX_UNITS}, the most the blob format's 16-bit {field} field holds"
        )),
        None => Ok(()),
    }
}

/// Checks an output shape against [`MAX_UNITS`] per dimension and [`MAX_TENSOR_VALUES`] in all.
pub(super) fn check_output(shape: Shape) -> std::result::Result<(), String> {
    let over = match shape {
        Shape::Seq { channels, .. } if channels > MAX_UNITS => Some(("channels", channels)),
        Shape::Seq { time, .. } if time > MAX_UNITS => Some(("time steps", time)),
        Shape::Flat(n) if n > MAX_UNITS => Some(("values", n)),
        _ => None,
    };
    if let Some((what, v)) = over {
        return Err(format!(
            "the output ({shape}) has {v} {what}, above {MAX_UNITS}, the most the blob format's 16-bit size fields hold"
        ));
    }
    if shape.len() > MAX_TENSOR_VALUES {
        return Err(format!(
            "the output ({shape}) has {} values per sample, above {MAX_TENSOR_VALUES}, the most a tensor may have",
            shape.len()
        ));
    }
    Ok(())
}

/// The number of parameters of `spec` on `input`, checked against [`MAX_FAN_IN`] and [`MAX_LAYER_PARAMETERS`].
pub(super) fn layer_size(spec: &LayerSpec, input: Shape) -> std::result::Result<usize, String> {
    let (out, inputs, kernel) = match (spec, input) {
        (LayerSpec::Dense { out, .. }, Shape::Flat(n)) => (*out, n, 1),
        (LayerSpec::Conv1d { out, kernel, .. }, Shape::Seq { channels, .. }) => {
            (*out, channels, *kernel)
        }
        _ => return Ok(0),
    };
    let fan_in = inputs.saturating_mul(kernel);
    if fan_in > MAX_FAN_IN {
        let how = if kernel == 1 {
            format!("{inputs} inputs")
        } else {
            format!("{inputs} channels x kernel {kernel} = {fan_in} inputs")
        };
        return Err(format!(
            "each output reads {how}, above {MAX_FAN_IN}, the most tickq-core's i32 accumulator bound allows \
             for any weights"
        ));
    }
    let parameters = out.saturating_mul(fan_in).saturating_add(out);
    if parameters > MAX_LAYER_PARAMETERS {
        return Err(format!(
            "{parameters} parameters ({out} x {fan_in} weights + {out} biases), above {MAX_LAYER_PARAMETERS}, \
             the most a layer may have"
        ));
    }
    Ok(parameters)
}

fn pooled_len(time: usize, kernel: usize, stride: usize) -> std::result::Result<usize, String> {
    if kernel == 0 || stride == 0 {
        return Err("kernel and stride must be at least 1".to_string());
    }
    if time < kernel {
        return Err(format!(
            "window too short: {time} steps in, kernel {kernel}"
        ));
    }
    Ok((time - kernel) / stride + 1)
}

/// The output shape of one layer for a given input shape, or a reason why it does not fit.
pub(super) fn next_shape(spec: &LayerSpec, input: Shape) -> std::result::Result<Shape, String> {
    let need_seq = |what: &str| {
        format!(
            "{what} needs a sequence input but gets a {input}; use time_steps > 1 and put it before flatten/global_avg_pool"
        )
    };
    match *spec {
        LayerSpec::Dense { out, .. } => {
            if out == 0 {
                return Err("out must be at least 1".to_string());
            }
            match input {
                Shape::Flat(_) => Ok(Shape::Flat(out)),
                Shape::Seq { .. } => Err(format!(
                    "dense needs a vector input but gets a {input}; add flatten or global_avg_pool before it"
                )),
            }
        }
        LayerSpec::Conv1d {
            out,
            kernel,
            stride,
            dilation,
            padding,
            ..
        } => {
            let Shape::Seq { time, .. } = input else {
                return Err(need_seq("conv1d"));
            };
            if out == 0 || kernel == 0 || stride == 0 || dilation == 0 {
                return Err("out, kernel, stride and dilation must be at least 1".to_string());
            }
            let span = dilation
                .checked_mul(kernel - 1)
                .and_then(|s| s.checked_add(1))
                .ok_or("kernel span overflows")?;
            let t_out = match padding {
                Padding::Causal => (time - 1) / stride + 1,
                Padding::Valid => {
                    if time < span {
                        return Err(format!(
                            "window too short: {time} steps in, but kernel {kernel} with dilation {dilation} spans {span} (use padding = \"causal\" or a longer input)"
                        ));
                    }
                    (time - span) / stride + 1
                }
            };
            Ok(Shape::Seq {
                channels: out,
                time: t_out,
            })
        }
        LayerSpec::ReLU | LayerSpec::ReLU6 | LayerSpec::Tanh | LayerSpec::Sigmoid => Ok(input),
        LayerSpec::Clamp { min, max } => {
            if !(min.is_finite() && max.is_finite() && min < max) {
                return Err(format!(
                    "clamp needs finite bounds with min < max, got min {min} and max {max}"
                ));
            }
            Ok(input)
        }
        LayerSpec::MaxPool1d { kernel, stride } | LayerSpec::AvgPool1d { kernel, stride } => {
            let Shape::Seq { channels, time } = input else {
                return Err(need_seq(spec.kind()));
            };
            let t_out = pooled_len(time, kernel, stride.unwrap_or(kernel))?;
            Ok(Shape::Seq {
                channels,
                time: t_out,
            })
        }
        LayerSpec::GlobalAvgPool => match input {
            Shape::Seq { channels, .. } => Ok(Shape::Flat(channels)),
            Shape::Flat(_) => Err(need_seq("global_avg_pool")),
        },
        LayerSpec::Flatten => Ok(Shape::Flat(input.len())),
    }
}
