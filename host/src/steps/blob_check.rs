//! Whether a blob is the int8 model of a checkpoint: [`check_blob_of`] and the first difference it finds.

use super::*;

/// The first difference between a blob and the checkpoint it is evaluated with ([`check_blob_of`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlobMismatch {
    /// Something the blob records about its model differs from the checkpoint.
    #[error("the {field} is {blob} in the blob and {checkpoint} in the checkpoint")]
    Field {
        /// What differs: `model name`, `input shape`, `number of classes`, `weighted layer 2`, `feature 3`,
        /// `label 0` or `training data (SHA-256)`.
        field: String,
        /// The blob's value.
        blob: String,
        /// The checkpoint's value.
        checkpoint: String,
    },
    /// A layer's int8 weights are not the checkpoint's f32 weights quantized (another training run, say).
    #[error(
        "the int8 weights of layer `{layer}`, output channel {channel}, are not the checkpoint's f32 weights quantized"
    )]
    Weights {
        /// The layer's name in the checkpoint.
        layer: String,
        /// The output channel.
        channel: usize,
    },
}

/// Checks that `blob` was quantized from the checkpoint `model` with the record `pre`: the same model name,
/// input shape, classes, weighted layers (kind, channels, kernel, stride, dilation, padding, in order), feature
/// and label names, training data hash and, last, int8 weights: each output channel of each Dense and Conv1d
/// layer must hold exactly the int8 values its f32 weights quantize to (per-channel symmetric, with the x86 / arm
/// or the power-of-two fpga scale, in any order within the channel, since the blob may store the inputs in
/// another order).
///
/// # Errors
///
/// The first [`BlobMismatch`], in the order above.
pub fn check_blob_of(
    blob: &tickq_core::Model<'_>,
    model: &Sequential,
    pre: &Preprocess,
) -> Result<(), BlobMismatch> {
    check_blob_parts(
        blob,
        model,
        &pre.feature_names,
        &pre.label_names,
        &pre.data_sha256,
        None,
    )
}

/// [`check_blob_of`] for a checkpoint of either input kind: a record of vectors from files has no training
/// data (its blobs record an all-zero hash) and its layout must be the blob's.
///
/// # Errors
///
/// The first [`BlobMismatch`], in the order of [`check_blob_of`], the layout after the names.
pub fn check_blob_of_record(
    blob: &tickq_core::Model<'_>,
    model: &Sequential,
    record: &InputRecord,
) -> Result<(), BlobMismatch> {
    match record {
        InputRecord::Trades(pre) => check_blob_of(blob, model, pre),
        InputRecord::Vectors(v) => check_blob_parts(
            blob,
            model,
            &v.input_names,
            &v.label_names,
            &hex(&[0; 32]),
            Some(v.layout),
        ),
    }
}

fn check_blob_parts(
    blob: &tickq_core::Model<'_>,
    model: &Sequential,
    feature_names: &[String],
    label_names: &[String],
    data_sha256: &str,
    layout: Option<crate::data::vectors::InputLayout>,
) -> Result<(), BlobMismatch> {
    let differ = |field: String, blob: String, checkpoint: String| {
        if blob == checkpoint {
            Ok(())
        } else {
            Err(BlobMismatch::Field {
                field,
                blob,
                checkpoint,
            })
        }
    };
    let meta = blob.metadata();
    let arch = &model.arch;
    differ(
        "model name".into(),
        format!("`{}`", meta.name()),
        format!("`{}`", arch.name),
    )?;
    let (t, f) = blob.input_shape();
    differ(
        "input shape".into(),
        format!("{t} time steps x {f} features"),
        format!(
            "{} time steps x {} features",
            arch.input.time_steps, arch.input.features
        ),
    )?;
    differ(
        "number of classes".into(),
        blob.classes().to_string(),
        arch.classes.to_string(),
    )?;
    let blob_layers: Vec<String> = blob
        .layers()
        .filter_map(|l| match l.kind {
            tickq_core::LayerKind::Dense => {
                Some(format!("dense {} -> {}", l.in_shape.1, l.out_shape.1))
            }
            tickq_core::LayerKind::Conv1d => Some(format!(
                "conv1d {} -> {}, kernel {}, stride {}, dilation {}, {} padding",
                l.in_shape.1,
                l.out_shape.1,
                l.kernel,
                l.stride,
                l.dilation,
                padding_name(l.padding)
            )),
            _ => None,
        })
        .collect();
    let model_layers: Vec<String> = model
        .layers
        .iter()
        .filter_map(|l| match l {
            crate::model::Layer::Dense(d) => Some(format!(
                "dense {} -> {}",
                d.weight.ncols(),
                d.weight.nrows()
            )),
            crate::model::Layer::Conv1d(c) => {
                let (out, inp, kernel) = c.weight.dim();
                Some(format!(
                    "conv1d {inp} -> {out}, kernel {kernel}, stride {}, dilation {}, {} padding",
                    c.stride,
                    c.dilation,
                    padding_name(c.padding)
                ))
            }
            _ => None,
        })
        .collect();
    differ(
        "number of dense and conv1d layers".into(),
        blob_layers.len().to_string(),
        model_layers.len().to_string(),
    )?;
    for (i, (b, m)) in blob_layers.iter().zip(&model_layers).enumerate() {
        differ(format!("weighted layer {}", i + 1), b.clone(), m.clone())?;
    }
    let names = |field: &str, blob: Vec<&str>, checkpoint: &[String]| {
        differ(
            format!("number of {field}s"),
            blob.len().to_string(),
            checkpoint.len().to_string(),
        )?;
        for (i, (b, c)) in blob.iter().zip(checkpoint).enumerate() {
            differ(format!("{field} {i}"), format!("`{b}`"), format!("`{c}`"))?;
        }
        Ok(())
    };
    names("feature", meta.feature_names().collect(), feature_names)?;
    names("label", meta.label_names().collect(), label_names)?;
    if let Some(layout) = layout {
        differ(
            "input layout".into(),
            super::blob_layout(blob).to_string(),
            layout.to_string(),
        )?;
    }
    differ(
        "training data (SHA-256)".into(),
        hex(meta.data_hash()),
        data_sha256.to_string(),
    )?;
    check_blob_weights(blob, model)
}

/// The int8 part of [`check_blob_of`]: every output channel of every weighted layer holds the multiset of int8
/// values that the channel's f32 weights (masks applied) quantize to.
pub(super) fn check_blob_weights(
    blob: &tickq_core::Model<'_>,
    model: &Sequential,
) -> Result<(), BlobMismatch> {
    use tickq_core::encode::OpSpec;
    let spec = tickq_core::decode::decode(blob);
    let stored = spec.layers.iter().filter_map(|l| match &l.op {
        OpSpec::Dense {
            out_features,
            weights,
            ..
        } => Some((*out_features, weights)),
        OpSpec::Conv1d {
            out_channels,
            weights,
            ..
        } => Some((*out_channels, weights)),
        _ => None,
    });
    let mut masked = model.clone();
    masked.apply_masks();
    let f32_layers = masked.layers.iter().filter_map(|l| match l {
        // Row-major: output channel by output channel.
        crate::model::Layer::Dense(d) => Some((
            d.name.as_str(),
            d.weight.iter().copied().collect::<Vec<f32>>(),
        )),
        crate::model::Layer::Conv1d(c) => Some((
            c.name.as_str(),
            c.weight.iter().copied().collect::<Vec<f32>>(),
        )),
        _ => None,
    });
    let scales = [
        QuantConfig::default(),
        QuantConfig {
            backend: quant::config::Backend::Fpga,
            ..QuantConfig::default()
        },
    ];
    for ((out, q), (name, w)) in stored.zip(f32_layers) {
        let per_channel = w.len() / out.max(1);
        if per_channel * out != w.len() || q.len() != w.len() {
            return Err(BlobMismatch::Weights {
                layer: name.to_string(),
                channel: 0,
            });
        }
        for (channel, (q_row, w_row)) in q
            .chunks_exact(per_channel.max(1))
            .zip(w.chunks_exact(per_channel.max(1)))
            .enumerate()
        {
            let mut found = q_row.to_vec();
            found.sort_unstable();
            let max_abs = w_row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let matches = scales.iter().any(|config| {
                let scale = quant::channel_weight_scale(max_abs, config);
                let mut expected: Vec<i8> = w_row
                    .iter()
                    .map(|&v| quant::quantize_weight(v, scale))
                    .collect();
                expected.sort_unstable();
                expected == found
            });
            if !matches {
                return Err(BlobMismatch::Weights {
                    layer: name.to_string(),
                    channel,
                });
            }
        }
    }
    Ok(())
}

/// `valid` or `causal`, for the blob's and the model's padding alike.
pub(super) fn padding_name(padding: impl std::fmt::Debug) -> String {
    format!("{padding:?}").to_lowercase()
}

/// [`check_blob_of`] for the blob file `path` holding `bytes` and the checkpoint directory `checkpoint` that
/// `model` and `pre` were loaded from, as `tickq eval` runs it.
///
/// # Errors
///
/// [`PipelineError::Blob`] when the blob does not load, and [`PipelineError::NotCheckpointBlob`] naming both files
/// and the first difference.
pub fn check_blob_file(
    path: &Path,
    bytes: &[u8],
    checkpoint: &Path,
    model: &Sequential,
    pre: &Preprocess,
) -> Result<(), PipelineError> {
    let blob = tickq_core::Model::load(bytes).map_err(|source| PipelineError::Blob {
        path: path.to_path_buf(),
        source,
    })?;
    check_blob_of(&blob, model, pre).map_err(|mismatch| PipelineError::NotCheckpointBlob {
        blob: path.to_path_buf(),
        checkpoint: checkpoint.to_path_buf(),
        mismatch,
    })
}
