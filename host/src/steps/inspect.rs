//! What `tickq inspect` shows of a blob: [`inspect_blob`] and [`BlobInspection`].

use super::*;

/// One layer of a blob, as `tickq inspect` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LayerRow {
    /// Index in the layer table.
    pub index: usize,
    /// Operation name.
    pub kind: String,
    /// Producing layer of the first input (`None`: the model input).
    pub input: Option<usize>,
    /// Producing layer of the second input (Add).
    pub input_b: Option<usize>,
    /// Input shape (time steps, channels).
    pub in_shape: [usize; 2],
    /// Output shape (time steps, channels).
    pub out_shape: [usize; 2],
    /// Kernel, stride and dilation (0 where unused).
    pub kernel_stride_dilation: [usize; 3],
    /// Conv padding.
    pub padding: String,
    /// Output scale and zero point.
    pub out_scale: f32,
    /// Output zero point.
    pub out_zero_point: i8,
    /// Fused clamp `[act_min, act_max]`.
    pub clamp: [i8; 2],
    /// Stored parameters.
    pub params: usize,
    /// Blob bytes of this layer's sections.
    pub bytes: usize,
    /// Multiply-accumulates per inference.
    pub macs: u64,
    /// Output offset and length in the arena.
    pub arena: [usize; 2],
    /// How the weights are stored (`dense-dot`, `columns`, ...); `None` for layers without weights.
    pub weight_format: Option<String>,
}

/// The feature spec a blob carries (format version 5), as `tickq inspect` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureSpecRow {
    /// Each window list by its field name (`return_lags_trades`, ...), in the spec's order, empty ones
    /// included.
    pub windows: Vec<(String, Vec<u32>)>,
    /// The gap (ms) that starts a new session.
    pub session_gap_ms: u32,
    /// The trades the engine keeps.
    pub capacity: u32,
    /// The price of one tick.
    pub tick_size: f64,
    /// The size of one lot.
    pub size_unit: f64,
    /// How many features the spec produces.
    pub features: usize,
}

impl FeatureSpecRow {
    /// The row of `spec`.
    pub fn new(spec: &tickq_core::features::FeatureSpec) -> Self {
        use tickq_core::features::InputKind;
        use tickq_core::features::SpecField as F;
        // A bars or book spec shows its own lists (its trade lists are empty), in the section's order.
        let market: Vec<_> = spec
            .input_lists()
            .into_iter()
            .filter(|(field, _)| match spec.input.kind {
                InputKind::Trades => false,
                InputKind::Bars => matches!(field, F::BarReturnLags | F::BarVolumeWindows),
                InputKind::Book => !matches!(field, F::BarReturnLags | F::BarVolumeWindows),
            })
            .collect();
        // In the spec's declaration order, which the blob section (docs/BLOB.md) keeps too.
        let trades = [
            (F::ReturnLagsTrades, &spec.return_lags_trades),
            (F::ReturnLagsMs, &spec.return_lags_ms),
            (F::FlowWindowsTrades, &spec.flow_windows_trades),
            (F::FlowWindowsMs, &spec.flow_windows_ms),
            (F::VolatilityWindowsTrades, &spec.volatility_windows_trades),
            (F::IntensityWindowsMs, &spec.intensity_windows_ms),
            (F::VwapWindowsTrades, &spec.vwap_windows_trades),
            (F::VwapWindowsMs, &spec.vwap_windows_ms),
            (F::RangeWindowsTrades, &spec.range_windows_trades),
        ];
        let lists = if spec.input.kind == InputKind::Trades {
            trades.to_vec()
        } else {
            market
        };
        let windows = lists
            .into_iter()
            .map(|(field, list)| (field.name().to_string(), list.as_slice().to_vec()))
            .collect();
        FeatureSpecRow {
            windows,
            session_gap_ms: spec.session_gap_ms,
            capacity: spec.capacity,
            tick_size: spec.tick_size,
            size_unit: spec.size_unit,
            features: spec.feature_count(),
        }
    }
}

/// Everything `tickq inspect` reports about a blob.
#[derive(Debug, Clone, Serialize)]
pub struct BlobInspection {
    /// Blob format version.
    pub format_version: u16,
    /// Blob size.
    pub blob_bytes: usize,
    /// CRC-32 (hex).
    pub crc32: String,
    /// Exact arena bytes.
    pub arena_bytes: usize,
    /// Input shape (time steps, features).
    pub input_shape: [usize; 2],
    /// Input quantization (scale, zero point).
    pub input_quant: (f32, i8),
    /// Output quantization (scale, zero point).
    pub output_quant: (f32, i8),
    /// Number of classes.
    pub classes: usize,
    /// Total multiply-accumulates per inference.
    pub macs: u64,
    /// Model name.
    pub name: String,
    /// Feature names.
    pub feature_names: Vec<String>,
    /// How the model's users lay out one sample (the header flag): `time-major` or `channels-first`.
    pub input_layout: String,
    /// The feature spec the blob carries (version 5), `None` for a blob fed feature vectors.
    pub feature_spec: Option<FeatureSpecRow>,
    /// Label names.
    pub label_names: Vec<String>,
    /// SHA-256 of the training data (hex).
    pub data_sha256: String,
    /// tickq version that exported the blob.
    pub tickq_version: String,
    /// The layers.
    pub layers: Vec<LayerRow>,
    /// The kernel backend `Model::load` picks on this machine (`tickq bench --backend` can pin another).
    pub backend: String,
    /// The backends this machine can run, slowest first.
    pub backends_available: Vec<String>,
}

/// At most this many input names are listed by `tickq inspect`'s text; the rest are counted.
pub const SHOWN_NAMES: usize = 32;

/// `names` as `tickq inspect` lists them: all of them up to [`SHOWN_NAMES`], else the first ones and the count.
pub fn names_summary(names: &[String]) -> String {
    if names.len() <= SHOWN_NAMES {
        return names.join(", ");
    }
    format!(
        "{}, ... ({} in all)",
        names[..SHOWN_NAMES].join(", "),
        names.len()
    )
}

/// What `tickq inspect` shows of a checkpoint: its model and its input record.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointInspection {
    /// The model (architecture) name.
    pub name: String,
    /// f32 parameters.
    pub parameters: usize,
    /// `trades` (tickq's features of a market data file) or `vectors` (vectors from files).
    pub inputs: &'static str,
    /// `[T, F]`: time steps and features (channels) per time step.
    pub input_shape: [usize; 2],
    /// `time-major` or `channels-first`.
    pub input_layout: String,
    /// The input (feature, channel) names.
    pub input_names: Vec<String>,
    /// The class names.
    pub label_names: Vec<String>,
    /// Whether the standardization is the identity (mean 0, std 1 everywhere).
    pub identity_standardization: bool,
    /// The smallest and largest mean.
    pub mean_range: [f32; 2],
    /// The smallest and largest standard deviation.
    pub std_range: [f32; 2],
}

/// Summarizes a checkpoint and its input record.
pub fn inspect_checkpoint(model: &Sequential, record: &InputRecord) -> CheckpointInspection {
    let norm = record.normalizer();
    let range = |v: &[f32]| {
        [
            v.iter().copied().fold(f32::INFINITY, f32::min),
            v.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        ]
    };
    CheckpointInspection {
        name: model.arch.name.clone(),
        parameters: model.num_parameters(),
        inputs: match record {
            InputRecord::Trades(_) => "trades",
            InputRecord::Vectors(_) => "vectors",
        },
        input_shape: [model.arch.input.time_steps, model.arch.input.features],
        input_layout: record.layout().name().to_string(),
        input_names: record.input_names().to_vec(),
        label_names: record.label_names().to_vec(),
        identity_standardization: norm.mean.iter().all(|&m| m == 0.0)
            && norm.std.iter().all(|&s| s == 1.0),
        mean_range: range(&norm.mean),
        std_range: range(&norm.std),
    }
}

impl CheckpointInspection {
    /// Human-readable text, as `tickq inspect` prints it for a checkpoint.
    pub fn to_text(&self) -> String {
        let [t, f] = self.input_shape;
        let layout: crate::data::vectors::InputLayout =
            self.input_layout.parse().unwrap_or_default();
        let inputs = match self.inputs {
            "vectors" => "vectors from files (docs/BYO_MODEL.md)",
            _ => "tickq's features of a market data file",
        };
        let standardization = if self.identity_standardization {
            "identity (mean 0, std 1)".to_string()
        } else {
            format!(
                "fitted: mean {} to {}, std {} to {}",
                self.mean_range[0], self.mean_range[1], self.std_range[0], self.std_range[1]
            )
        };
        format!(
            "model        {}, {} parameters\ninputs       {inputs}\ninput        {t} time steps x {f} features\n\
             layout       {layout} {}\nnames        {} ({} names)\nclasses      {}\n\
             standardize  {standardization}",
            self.name,
            self.parameters,
            layout.shape_text(t, f),
            names_summary(&self.input_names),
            self.input_names.len(),
            self.label_names.join(", "),
        )
    }
}

/// Summarizes a loaded blob.
pub fn inspect_blob(model: &tickq_core::Model<'_>) -> BlobInspection {
    let meta = model.metadata();
    let layers: Vec<LayerRow> = model
        .layers()
        .map(|l| LayerRow {
            index: l.index,
            kind: l.kind.name().to_string(),
            input: l.input,
            input_b: l.input_b,
            in_shape: [l.in_shape.0, l.in_shape.1],
            out_shape: [l.out_shape.0, l.out_shape.1],
            kernel_stride_dilation: [l.kernel, l.stride, l.dilation],
            padding: format!("{:?}", l.padding).to_lowercase(),
            out_scale: l.out_scale,
            out_zero_point: l.out_zero_point,
            clamp: [l.act_min, l.act_max],
            params: l.params,
            bytes: l.bytes,
            macs: l.macs,
            arena: [l.arena_offset, l.arena_len],
            weight_format: l.weight_format.map(|f| f.to_string()),
        })
        .collect();
    let (t, f) = model.input_shape();
    BlobInspection {
        format_version: model.version(),
        blob_bytes: model.blob_len(),
        crc32: format!("{:08x}", model.crc32()),
        arena_bytes: model.arena_bytes(),
        input_shape: [t, f],
        input_quant: model.input_quant(),
        output_quant: model.output_quant(),
        classes: model.classes(),
        macs: layers.iter().map(|l| l.macs).sum(),
        name: meta.name().to_string(),
        feature_names: meta.feature_names().map(str::to_string).collect(),
        input_layout: super::blob_layout(model).name().to_string(),
        feature_spec: model.feature_spec().as_ref().map(FeatureSpecRow::new),
        label_names: meta.label_names().map(str::to_string).collect(),
        data_sha256: hex(meta.data_hash()),
        tickq_version: meta.tickq_version().to_string(),
        layers,
        backend: model.backend().to_string(),
        backends_available: tickq_core::Backend::available()
            .map(|b| b.to_string())
            .collect(),
    }
}

impl BlobInspection {
    /// Human-readable text, as `tickq inspect` prints it.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(s, "model        {}", self.name);
        let _ = writeln!(
            s,
            "format       v{}, {} bytes, CRC-32 {}",
            self.format_version, self.blob_bytes, self.crc32
        );
        let _ = writeln!(
            s,
            "input        {} time steps x {} features, int8 scale {:.6} zero point {}",
            self.input_shape[0], self.input_shape[1], self.input_quant.0, self.input_quant.1
        );
        let layout: crate::data::vectors::InputLayout =
            self.input_layout.parse().unwrap_or_default();
        let _ = writeln!(
            s,
            "layout       {} {}",
            layout,
            layout.shape_text(self.input_shape[0], self.input_shape[1])
        );
        let _ = writeln!(
            s,
            "output       {} classes ({}), scale {:.6} zero point {}",
            self.classes,
            self.label_names.join(", "),
            self.output_quant.0,
            self.output_quant.1
        );
        let _ = writeln!(s, "arena        {} bytes", self.arena_bytes);
        let _ = writeln!(
            s,
            "backend      {} on this machine (available: {})",
            self.backend,
            self.backends_available.join(", ")
        );
        let _ = writeln!(s, "work         {} MACs per inference", self.macs);
        // A blob quantized from vectors in files records no training file: its hash is all zeros.
        if self.data_sha256.bytes().all(|b| b == b'0') {
            let _ = writeln!(s, "data sha256  none (calibrated on vectors from a file)");
        } else {
            let _ = writeln!(s, "data sha256  {}", self.data_sha256);
        }
        let _ = writeln!(s, "exported by  tickq {}", self.tickq_version);
        let _ = writeln!(s, "features     {}", names_summary(&self.feature_names));
        match &self.feature_spec {
            None => {
                let _ = writeln!(s, "feature spec none (feature vectors in)");
            }
            Some(spec) => {
                let _ = writeln!(
                    s,
                    "feature spec {} features, session gap {} ms, capacity {} trades, tick size {}, size unit {}",
                    spec.features,
                    spec.session_gap_ms,
                    spec.capacity,
                    spec.tick_size,
                    spec.size_unit
                );
                for (name, windows) in &spec.windows {
                    let list: Vec<String> = windows.iter().map(u32::to_string).collect();
                    let _ = writeln!(
                        s,
                        "  {name:<25} {}",
                        if list.is_empty() {
                            "-".to_string()
                        } else {
                            list.join(", ")
                        }
                    );
                }
            }
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:>3}  {:<13} {:>5} {:>11} {:>11} {:>9} {:>11} {:>9} {:>8} {:>8}  {:<10} clamp",
            "#",
            "kind",
            "input",
            "in (TxC)",
            "out (TxC)",
            "k/s/d",
            "scale",
            "zp",
            "params",
            "bytes",
            "weights"
        );
        for l in &self.layers {
            let input = match (l.input, l.input_b) {
                (None, _) => "x".to_string(),
                (Some(a), None) => a.to_string(),
                (Some(a), Some(b)) => format!("{a}+{b}"),
            };
            let ksd = if l.kernel_stride_dilation == [0, 0, 0] {
                "-".to_string()
            } else {
                format!(
                    "{}/{}/{}",
                    l.kernel_stride_dilation[0],
                    l.kernel_stride_dilation[1],
                    l.kernel_stride_dilation[2]
                )
            };
            let kind = if l.kind == "Conv1d" {
                format!("Conv1d {}", l.padding)
            } else {
                l.kind.clone()
            };
            let _ = writeln!(
                s,
                "{:>3}  {:<13} {:>5} {:>11} {:>11} {:>9} {:>11.6} {:>9} {:>8} {:>8}  {:<10} [{}, {}]",
                l.index,
                kind,
                input,
                format!("{}x{}", l.in_shape[0], l.in_shape[1]),
                format!("{}x{}", l.out_shape[0], l.out_shape[1]),
                ksd,
                l.out_scale,
                l.out_zero_point,
                l.params,
                l.bytes,
                l.weight_format.as_deref().unwrap_or("-"),
                l.clamp[0],
                l.clamp[1]
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickq_core::encode::{LayerSpec, ModelSpec, OpSpec, encode};
    use tickq_core::features::FeatureSpec;
    use tickq_core::requant::QuantMultiplier;

    /// A Quantize -> Dense(29 -> 2) blob, with `feature_spec` (and its column names) or without.
    fn blob(feature_spec: Option<FeatureSpec>) -> Vec<u8> {
        let f = FeatureSpec::default().feature_count();
        let mut feature_names: Vec<String> = (0..f).map(|i| format!("f{i}")).collect();
        if let Some(spec) = &feature_spec {
            feature_names.clear();
            spec.for_each_feature(|n| feature_names.push(n.to_string()));
        }
        let q = QuantMultiplier::from_ratio(0.5).expect("a ratio in range");
        let quantize = OpSpec::Quantize {
            time_steps: 1,
            features: f,
            a: vec![16.0; f],
            b: vec![0.0; f],
        };
        let dense = OpSpec::Dense {
            out_features: 2,
            in_features: f,
            weights: vec![1; 2 * f],
            bias: vec![0; 2],
            requant: vec![q; 2],
        };
        encode(&ModelSpec {
            name: "inspect".into(),
            feature_names,
            label_names: vec!["down".into(), "up".into()],
            data_hash: [0; 32],
            tickq_version: "test".into(),
            layers: vec![
                LayerSpec::new(quantize, 1.0 / 16.0, 0),
                LayerSpec::new(dense, 1.0 / 16.0, 0),
            ],
            feature_spec,
        })
        .expect("the test model encodes")
    }

    #[test]
    fn inspect_shows_the_feature_spec_or_says_there_is_none() {
        let plain = blob(None);
        let info = inspect_blob(&tickq_core::Model::load(&plain).expect("loads"));
        assert!(info.feature_spec.is_none());
        assert!(
            info.to_text()
                .contains("\nfeature spec none (feature vectors in)\n"),
            "{}",
            info.to_text()
        );

        let with_spec = blob(Some(FeatureSpec::default()));
        let info = inspect_blob(&tickq_core::Model::load(&with_spec).expect("loads"));
        assert_eq!(info.format_version, 5);
        let text = info.to_text();
        for line in [
            "\nfeature spec 29 features, session gap 1800000 ms, capacity 4096 trades, tick size 0.25, size unit 1\n",
            "\n  return_lags_trades        1, 5, 20, 100\n",
            "\n  return_lags_ms            1000, 10000, 60000\n",
            "\n  range_windows_trades      100\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
        let json = serde_json::to_value(&info).expect("serializes");
        assert_eq!(json["feature_spec"]["capacity"], 4096);
        assert_eq!(
            json["feature_spec"]["windows"][5][0],
            "intensity_windows_ms"
        );
        assert_eq!(
            json["feature_spec"]["windows"][5][1],
            serde_json::json!([10_000, 60_000])
        );
        // An empty list shows as "-".
        let spec = FeatureSpec {
            vwap_windows_ms: tickq_core::features::WindowList::EMPTY,
            return_lags_trades: tickq_core::features::WindowList::new(&[1, 5, 20, 100, 200])
                .expect("five windows fit"),
            ..FeatureSpec::default()
        };
        let info = inspect_blob(&tickq_core::Model::load(&blob(Some(spec))).expect("loads"));
        assert!(info.to_text().contains("\n  vwap_windows_ms           -\n"));
    }
}
