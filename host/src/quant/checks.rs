//! The checks before calibration: that the layers fit together and the backend can represent them, and that the
//! calibration samples are usable.

use ndarray::ArrayView2;

use super::{
    Backend, ExportInfo, FEW_CALIBRATION_SAMPLES, MIN_CALIBRATION_SAMPLES, QuantConfig, QuantError,
    layer_label,
};
use crate::model::{Layer, Sequential};

/// Shape of the current tensor while walking the model.
#[derive(Debug, Clone, Copy)]
pub(super) enum Walk {
    /// A sequence of `time` steps with `channels` each, stored time-major in the core.
    Seq { channels: usize, time: usize },
    /// A vector; `from_seq` remembers the (channels, time) of a flattened
    /// sequence so the next Dense layer's columns can be permuted from
    /// PyTorch's channel-major order to the core's time-major order.
    Flat {
        len: usize,
        from_seq: Option<(usize, usize)>,
    },
}

pub(super) const DENSE_NEEDS_VECTOR: &str =
    "a Dense layer needs a vector input: add a flatten or global_avg_pool layer before it";
pub(super) const CONV_NEEDS_SEQUENCE: &str =
    "a Conv1d layer needs a sequence input (time_steps > 1)";
pub(super) const POOL_NEEDS_SEQUENCE: &str = "pooling needs a sequence input: move it before the flatten or global_avg_pool layer, or use time_steps > 1";
const MUST_END_IN_VECTOR: &str = "the model must end in a vector of class logits: end it with a flatten or global_avg_pool layer and a dense layer";

/// The fpga refusal of an average over `window` steps.
fn fpga_window(window: usize) -> String {
    format!(
        "backend fpga makes every requantization a shift, but averaging {window} steps divides by {window}: use a power-of-two pool window (or sequence length for global pooling)"
    )
}

/// Walks the layer shapes before calibration runs the f32 model, so that a
/// model whose layers do not fit together, or a layer the chosen backend
/// cannot represent, is refused naming the layer and what to change instead
/// of panicking in the f32 forward pass (a model built from a valid
/// architecture file always fits; one edited in code may not).
///
/// Returns the shape entering each layer, which the quantizer's walk then uses
/// as it is: every shape check lives here.
pub(super) fn check_structure(
    model: &Sequential,
    config: &QuantConfig,
) -> Result<Vec<Walk>, QuantError> {
    let (time_steps, features) = (model.arch.input.time_steps, model.arch.input.features);
    let mut walk = if time_steps == 1 {
        Walk::Flat {
            len: features,
            from_seq: None,
        }
    } else {
        Walk::Seq {
            channels: features,
            time: time_steps,
        }
    };
    let mut shapes = Vec::with_capacity(model.layers.len());
    for (i, layer) in model.layers.iter().enumerate() {
        shapes.push(walk);
        let err = |reason: String| QuantError::Layer {
            index: i,
            name: layer_label(model, i),
            reason,
        };
        let pooled = |time: usize, kernel: usize, stride: usize| {
            if time < kernel {
                Err(err(format!(
                    "window of {time} steps is shorter than the pool kernel {kernel}"
                )))
            } else {
                Ok((time - kernel) / stride.max(1) + 1)
            }
        };
        walk = match (layer, walk) {
            (Layer::Dense(d), Walk::Flat { len, .. }) => {
                let (out_f, in_f) = d.weight.dim();
                if len != in_f {
                    return Err(err(format!("expects {in_f} inputs but receives {len}")));
                }
                if d.bias.len() != out_f {
                    return Err(err(format!(
                        "has {out_f} outputs but {} biases",
                        d.bias.len()
                    )));
                }
                Walk::Flat {
                    len: out_f,
                    from_seq: None,
                }
            }
            (Layer::Dense(_), Walk::Seq { .. }) => return Err(err(DENSE_NEEDS_VECTOR.into())),
            (Layer::Conv1d(c), Walk::Seq { channels, time }) => {
                let (out_c, in_c, k) = c.weight.dim();
                if channels != in_c {
                    return Err(err(format!(
                        "expects {in_c} channels but receives {channels}"
                    )));
                }
                if c.bias.len() != out_c {
                    return Err(err(format!(
                        "has {out_c} outputs but {} biases",
                        c.bias.len()
                    )));
                }
                let out_time = c.out_len(time);
                if k == 0 || c.stride == 0 || c.dilation == 0 || out_time == 0 {
                    return Err(err(format!(
                        "window of {time} steps is shorter than the kernel span {}",
                        c.dilation * k.saturating_sub(1) + 1
                    )));
                }
                Walk::Seq {
                    channels: out_c,
                    time: out_time,
                }
            }
            (Layer::Conv1d(_), Walk::Flat { .. }) => return Err(err(CONV_NEEDS_SEQUENCE.into())),
            (Layer::MaxPool1d { kernel, stride }, Walk::Seq { channels, time }) => Walk::Seq {
                channels,
                time: pooled(time, *kernel, *stride)?,
            },
            (Layer::AvgPool1d { kernel, stride }, Walk::Seq { channels, time }) => {
                let time = pooled(time, *kernel, *stride)?;
                if config.backend == Backend::Fpga && !kernel.is_power_of_two() {
                    return Err(err(fpga_window(*kernel)));
                }
                Walk::Seq { channels, time }
            }
            (Layer::GlobalAvgPool, Walk::Seq { channels, time }) => {
                if config.backend == Backend::Fpga && !time.is_power_of_two() {
                    return Err(err(fpga_window(time)));
                }
                Walk::Flat {
                    len: channels,
                    from_seq: None,
                }
            }
            (
                Layer::MaxPool1d { .. } | Layer::AvgPool1d { .. } | Layer::GlobalAvgPool,
                Walk::Flat { .. },
            ) => return Err(err(format!("{} {POOL_NEEDS_SEQUENCE}", layer.kind()))),
            (Layer::Flatten, Walk::Seq { channels, time }) => Walk::Flat {
                len: channels * time,
                from_seq: Some((channels, time)),
            },
            (_, w) => w,
        };
    }
    if !matches!(walk, Walk::Flat { .. }) {
        let last = model.layers.len().saturating_sub(1);
        return Err(QuantError::Layer {
            index: last,
            name: layer_label(model, last),
            reason: MUST_END_IN_VECTOR.into(),
        });
    }
    Ok(shapes)
}

/// Checks calibration data and returns warnings about it.
pub(super) fn check_calibration(
    calibration: ArrayView2<'_, f32>,
    features: usize,
    info: &ExportInfo,
) -> Result<Vec<String>, QuantError> {
    let n = calibration.nrows();
    if n < MIN_CALIBRATION_SAMPLES {
        return Err(QuantError::TooFewCalibrationSamples {
            samples: n,
            needed: MIN_CALIBRATION_SAMPLES,
        });
    }
    if let Some(pos) = calibration.iter().position(|v| !v.is_finite()) {
        let width = calibration.ncols().max(1);
        return Err(QuantError::NonFiniteCalibration {
            sample: pos / width,
            column: pos % width,
        });
    }
    let mut warnings = Vec::new();
    if n < FEW_CALIBRATION_SAMPLES {
        warnings.push(format!(
            "only {n} calibration samples: ranges may be unreliable (use at least {FEW_CALIBRATION_SAMPLES})"
        ));
    }
    // The samples are standardized with the training statistics, so each
    // feature should have a mean near 0 and a standard deviation near 1.
    for f in 0..features {
        let column: Vec<f64> = calibration
            .iter()
            .skip(f)
            .step_by(features.max(1))
            .map(|&v| f64::from(v))
            .collect();
        let count = column.len().max(1) as f64;
        let mean = column.iter().sum::<f64>() / count;
        let std = (column.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / count).sqrt();
        if mean.abs() > 1.5
            || std > 3.0
            || (std < 0.2 && info.std.get(f).is_some_and(|s| *s != 1.0))
        {
            let name = info.feature_names.get(f).map_or("?", String::as_str);
            warnings.push(format!(
                "feature {f} `{name}`: calibration mean {mean:.2} and standard deviation {std:.2} in training-standardized units (training: 0 and 1); is this the data the model was trained on?"
            ));
        }
    }
    Ok(warnings)
}
