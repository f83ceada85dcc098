//! Structured pruning: removing channels physically, from one weighted layer's outputs and the next one's inputs.

use ndarray::{Array1, Array2, Axis};

use super::{Norm, PruneError, Result, layer_name};
use crate::model::{Architecture, Layer, LayerSpec, Padding, Sequential, Shape, Tensor};

/// The previous and next Dense or Conv1d layer around layer `i`.
fn neighbours(model: &Sequential, i: usize) -> (Option<usize>, Option<usize>) {
    let weighted = |l: &Layer| matches!(l, Layer::Dense(_) | Layer::Conv1d(_));
    let prev = model.layers[..i].iter().rposition(weighted);
    let next = model.layers[i + 1..]
        .iter()
        .position(weighted)
        .map(|p| p + i + 1);
    (prev, next)
}

fn name_of(model: &Sequential, i: usize) -> String {
    layer_name(&model.layers[i]).unwrap_or_default().to_string()
}

/// Checks that layer `i` has dimension `dim` and that channels along it can be removed.
pub(super) fn check_dim(model: &Sequential, i: usize, dim: usize) -> Result<()> {
    let err = |reason: String| PruneError::Dim {
        layer: name_of(model, i),
        dim,
        reason,
    };
    match (&model.layers[i], dim) {
        (Layer::Dense(_) | Layer::Conv1d(_), 0 | 1) => Ok(()),
        (Layer::Dense(_), _) => Err(err(
            "a dense weight is [out, in]: use dim 0 (output neurons) or dim 1 (input features)".into(),
        )),
        (Layer::Conv1d(_), 2) => Err(err(
            "dim 2 is the kernel taps of [out, in, kernel]; removing taps would change the kernel, so use dim 0 \
             (output channels) or dim 1 (input channels)"
                .into(),
        )),
        (Layer::Conv1d(_), _) => Err(err(
            "a conv1d weight is [out, in, kernel]: use dim 0 (output channels) or dim 1 (input channels)".into(),
        )),
        _ => Err(err("only dense and conv1d layers have weights".into())),
    }
}

/// The layers that can lose channels along `dim`: all weighted layers but the last (`dim = 0`) or the first
/// (`dim = 1`).
pub(super) fn default_layers(model: &Sequential, dim: usize) -> Vec<String> {
    (0..model.layers.len())
        .filter(|&i| matches!(model.layers[i], Layer::Dense(_) | Layer::Conv1d(_)))
        .filter(|&i| {
            let (prev, next) = neighbours(model, i);
            if dim == 0 {
                next.is_some()
            } else {
                prev.is_some()
            }
        })
        .map(|i| name_of(model, i))
        .collect()
}

/// The producer and consumer of the channels that pruning layer `i` along `dim` removes.
fn pair(model: &Sequential, i: usize, dim: usize) -> Result<(usize, usize)> {
    let (prev, next) = neighbours(model, i);
    let refuse = |reason: String| PruneError::Structured {
        layer: name_of(model, i),
        reason,
    };
    if dim == 0 {
        let next = next.ok_or_else(|| {
            refuse(format!(
                "it is the last weighted layer, and its {} outputs are the model's classes",
                model.arch.classes
            ))
        })?;
        Ok((i, next))
    } else {
        let prev = prev.ok_or_else(|| {
            refuse(
                "it is the first weighted layer, so its inputs are the model's input features; removing them would \
                 change the data the model takes"
                    .into(),
            )
        })?;
        Ok((prev, i))
    }
}

/// The number of channels that pruning layer `i` along `dim` chooses from: the producer's outputs.
pub(super) fn channel_count(model: &Sequential, i: usize, dim: usize) -> Result<usize> {
    let (producer, _) = pair(model, i, dim)?;
    Ok(out_channels(&model.layers[producer]))
}

fn out_channels(layer: &Layer) -> usize {
    match layer {
        Layer::Dense(d) => d.weight.dim().0,
        Layer::Conv1d(c) => c.weight.dim().0,
        _ => 0,
    }
}

/// How channels travel from a producer's output to a consumer's input.
struct Link {
    /// `Some(T)` when a Flatten of a `[C, T]` sequence lies between: channel `c` is columns `c * T .. c * T + T`.
    flatten_time: Option<usize>,
    /// What a channel that is zero at the producer's output is at the consumer's input.
    fill: f32,
}

fn link(model: &Sequential, producer: usize, consumer: usize) -> Result<Link> {
    let shapes = model.arch.shapes()?;
    let mut flatten_time = None;
    let mut fill = 0.0f32;
    for j in producer + 1..consumer {
        match &model.layers[j] {
            Layer::Flatten => {
                if let Shape::Seq { time, .. } = shapes[j - 1] {
                    flatten_time = Some(time);
                }
            }
            layer @ (Layer::ReLU
            | Layer::ReLU6
            | Layer::Clamp { .. }
            | Layer::Tanh
            | Layer::Sigmoid) => {
                let y = layer.forward(Tensor::Flat(Array2::from_elem((1, 1), fill)));
                fill = y.iter().next().copied().unwrap_or(fill);
            }
            // Pools keep a constant channel constant and keep channel indices.
            _ => {}
        }
    }
    Ok(Link { flatten_time, fill })
}

/// The consumer's input indices (Conv1d channels or Dense columns) that read producer channel `c`.
fn consumer_inputs(link: &Link, consumer: &Layer, c: usize) -> std::ops::Range<usize> {
    match (consumer, link.flatten_time) {
        (Layer::Dense(_), Some(t)) => c * t..c * t + t,
        _ => c..c + 1,
    }
}

/// Removes `count` channels chosen by pruning layer `i` along `dim` with `norm`.
pub(super) fn remove(
    model: &mut Sequential,
    i: usize,
    dim: usize,
    count: usize,
    norm: Norm,
) -> Result<()> {
    let (producer, consumer) = pair(model, i, dim)?;
    let channels = out_channels(&model.layers[producer]);
    if count == 0 {
        return Ok(());
    }
    if count >= channels {
        return Err(PruneError::Structured {
            layer: name_of(model, i),
            reason: format!(
                "it would remove {count} of the {channels} channels; at least one must remain (lower the amount)"
            ),
        });
    }
    let link = link(model, producer, consumer)?;
    // Rank the channels: dim 0 by the producer's weight rows, dim 1 by the consumer's weights reading them.
    let scores: Vec<f64> = (0..channels)
        .map(
            |c| match (dim, &model.layers[producer], &model.layers[consumer]) {
                (0, Layer::Dense(d), _) => norm.of(d.weight.row(c).iter().copied()),
                (0, Layer::Conv1d(cv), _) => {
                    norm.of(cv.weight.index_axis(Axis(0), c).iter().copied())
                }
                (_, _, Layer::Dense(d)) => {
                    let cols = consumer_inputs(&link, &model.layers[consumer], c);
                    norm.of(d.weight.slice(ndarray::s![.., cols]).iter().copied())
                }
                (_, _, Layer::Conv1d(cv)) => {
                    norm.of(cv.weight.index_axis(Axis(1), c).iter().copied())
                }
                _ => 0.0,
            },
        )
        .collect();
    let mut order: Vec<usize> = (0..channels).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    let mut removed: Vec<usize> = order[..count].to_vec();
    removed.sort_unstable();
    let keep: Vec<usize> = (0..channels)
        .filter(|c| removed.binary_search(c).is_err())
        .collect();

    // dim 0 zeroes the producer's channel, which reaches the consumer as `fill`: fold that into its bias.
    if dim == 0 && link.fill != 0.0 {
        fold_constant(model, producer, consumer, &link, &removed)?;
    }
    shrink_outputs(&mut model.layers[producer], &keep);
    let consumer_keep: Vec<usize> = keep
        .iter()
        .flat_map(|&c| consumer_inputs(&link, &model.layers[consumer], c))
        .collect();
    shrink_inputs(&mut model.layers[consumer], &consumer_keep);
    set_out(&mut model.arch, producer, keep.len());
    model.arch.validate()?;
    Ok(())
}

/// Adds `fill * (weights reading the removed channels)` to the consumer's bias.
fn fold_constant(
    model: &mut Sequential,
    producer: usize,
    consumer: usize,
    link: &Link,
    removed: &[usize],
) -> Result<()> {
    let fill = link.fill;
    let cons_name = name_of(model, consumer);
    let prod_name = name_of(model, producer);
    match &mut model.layers[consumer] {
        Layer::Conv1d(cv) if cv.padding == Padding::Causal => Err(PruneError::Structured {
            layer: prod_name,
            reason: format!(
                "the activation after it maps 0 to {fill}, and the next layer `{cons_name}` pads causally, so the \
                 constant the removed channels would feed it cannot be folded into its bias"
            ),
        }),
        Layer::Conv1d(cv) => {
            let mut extra = Array1::<f32>::zeros(cv.bias.len());
            for &c in removed {
                extra += &cv.weight.index_axis(Axis(1), c).sum_axis(Axis(1));
            }
            cv.bias.scaled_add(fill, &extra);
            Ok(())
        }
        Layer::Dense(d) => {
            let mut extra = Array1::<f32>::zeros(d.bias.len());
            for &c in removed {
                let cols = match link.flatten_time {
                    Some(t) => c * t..c * t + t,
                    None => c..c + 1,
                };
                extra += &d.weight.slice(ndarray::s![.., cols]).sum_axis(Axis(1));
            }
            d.bias.scaled_add(fill, &extra);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Keeps only the output channels `keep` of a Dense or Conv1d layer (weight rows, bias, mask).
fn shrink_outputs(layer: &mut Layer, keep: &[usize]) {
    match layer {
        Layer::Dense(d) => {
            d.weight = d.weight.select(Axis(0), keep);
            d.bias = d.bias.select(Axis(0), keep);
            d.weight_mask = d.weight_mask.as_ref().map(|m| m.select(Axis(0), keep));
        }
        Layer::Conv1d(c) => {
            c.weight = c.weight.select(Axis(0), keep);
            c.bias = c.bias.select(Axis(0), keep);
            c.weight_mask = c.weight_mask.as_ref().map(|m| m.select(Axis(0), keep));
        }
        _ => {}
    }
}

/// Keeps only the inputs `keep` (Dense columns or Conv1d input channels) of a layer.
fn shrink_inputs(layer: &mut Layer, keep: &[usize]) {
    match layer {
        Layer::Dense(d) => {
            d.weight = d.weight.select(Axis(1), keep);
            d.weight_mask = d.weight_mask.as_ref().map(|m| m.select(Axis(1), keep));
        }
        Layer::Conv1d(c) => {
            c.weight = c.weight.select(Axis(1), keep);
            c.weight_mask = c.weight_mask.as_ref().map(|m| m.select(Axis(1), keep));
        }
        _ => {}
    }
}

fn set_out(arch: &mut Architecture, i: usize, new_out: usize) {
    match &mut arch.layers[i] {
        LayerSpec::Dense { out, .. } | LayerSpec::Conv1d { out, .. } => *out = new_out,
        _ => {}
    }
}
