//! The on-disk form of a layer: one flat table whose `type` says which fields it takes.

use serde::{Deserialize, Serialize};

use super::{LayerSpec, Padding};

/// The flat on-disk form of a [`LayerSpec`]: every field optional, checked against the `type` on conversion.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLayer {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    out: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kernel: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stride: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dilation: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    padding: Option<Padding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max: Option<f32>,
}

const LAYER_TYPES: &str = "dense, conv1d, relu, relu6, clamp, tanh, sigmoid, maxpool1d, avgpool1d, global_avg_pool, flatten";

impl TryFrom<RawLayer> for LayerSpec {
    type Error = String;

    fn try_from(raw: RawLayer) -> std::result::Result<Self, String> {
        let kind = raw.kind.as_str();
        let present = [
            ("name", raw.name.is_some()),
            ("out", raw.out.is_some()),
            ("kernel", raw.kernel.is_some()),
            ("stride", raw.stride.is_some()),
            ("dilation", raw.dilation.is_some()),
            ("padding", raw.padding.is_some()),
            ("min", raw.min.is_some()),
            ("max", raw.max.is_some()),
        ];
        let allowed: &[&str] = match kind {
            "dense" => &["name", "out"],
            "conv1d" => &["name", "out", "kernel", "stride", "dilation", "padding"],
            "clamp" => &["min", "max"],
            "maxpool1d" | "avgpool1d" => &["kernel", "stride"],
            "relu" | "relu6" | "tanh" | "sigmoid" | "global_avg_pool" | "flatten" => &[],
            other => {
                return Err(format!(
                    "unknown layer type `{other}`, expected one of {LAYER_TYPES}"
                ));
            }
        };
        if let Some((field, _)) = present.iter().find(|(f, set)| *set && !allowed.contains(f)) {
            return Err(format!("layer type `{kind}` has no field `{field}`"));
        }
        let need = |v: Option<usize>, field: &str| {
            v.ok_or_else(|| format!("layer type `{kind}` needs field `{field}`"))
        };
        let needf = |v: Option<f32>, field: &str| {
            v.ok_or_else(|| format!("layer type `{kind}` needs field `{field}`"))
        };
        Ok(match kind {
            "dense" => LayerSpec::Dense {
                name: raw.name,
                out: need(raw.out, "out")?,
            },
            "conv1d" => LayerSpec::Conv1d {
                name: raw.name,
                out: need(raw.out, "out")?,
                kernel: need(raw.kernel, "kernel")?,
                stride: raw.stride.unwrap_or(1),
                dilation: raw.dilation.unwrap_or(1),
                padding: raw.padding.unwrap_or_default(),
            },
            "clamp" => LayerSpec::Clamp {
                min: needf(raw.min, "min")?,
                max: needf(raw.max, "max")?,
            },
            "maxpool1d" => LayerSpec::MaxPool1d {
                kernel: need(raw.kernel, "kernel")?,
                stride: raw.stride,
            },
            "avgpool1d" => LayerSpec::AvgPool1d {
                kernel: need(raw.kernel, "kernel")?,
                stride: raw.stride,
            },
            "relu" => LayerSpec::ReLU,
            "relu6" => LayerSpec::ReLU6,
            "tanh" => LayerSpec::Tanh,
            "sigmoid" => LayerSpec::Sigmoid,
            "global_avg_pool" => LayerSpec::GlobalAvgPool,
            _ => LayerSpec::Flatten,
        })
    }
}

impl From<LayerSpec> for RawLayer {
    fn from(spec: LayerSpec) -> Self {
        let mut raw = RawLayer {
            kind: spec.kind().to_string(),
            ..RawLayer::default()
        };
        match spec {
            LayerSpec::Dense { name, out } => {
                raw.name = name;
                raw.out = Some(out);
            }
            LayerSpec::Conv1d {
                name,
                out,
                kernel,
                stride,
                dilation,
                padding,
            } => {
                raw.name = name;
                raw.out = Some(out);
                raw.kernel = Some(kernel);
                raw.stride = (stride != 1).then_some(stride);
                raw.dilation = (dilation != 1).then_some(dilation);
                raw.padding = (padding != Padding::Valid).then_some(padding);
            }
            LayerSpec::Clamp { min, max } => {
                raw.min = Some(min);
                raw.max = Some(max);
            }
            LayerSpec::MaxPool1d { kernel, stride } | LayerSpec::AvgPool1d { kernel, stride } => {
                raw.kernel = Some(kernel);
                raw.stride = stride;
            }
            LayerSpec::ReLU
            | LayerSpec::ReLU6
            | LayerSpec::Tanh
            | LayerSpec::Sigmoid
            | LayerSpec::GlobalAvgPool
            | LayerSpec::Flatten => {}
        }
        raw
    }
}
