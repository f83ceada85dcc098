//! The blob decoder (feature `alloc`): a loaded [`Model`] back into an owned [`ModelSpec`], and batch input
//! quantization.
//!
//! Other engines that run tickq blobs (the wgpu evaluator in `tickq-gpu`, tools that inspect weights) need the
//! int8 parameters in their logical form, whatever weight format the blob stores them in.
//! [`decode`] gives exactly that: row-major `[out][in]` (Dense) or `[out][k][in]` (Conv1d) int8 weights with the
//! zeros of sparse and N:M layers filled back in, the effective biases, the multipliers, the tables and the
//! geometry, such that `encode(&decode(&model))` describes the same model.
//! [`Model::quantize_inputs`] runs the blob's own input quantizer (the only floating-point step) over a batch, so
//! that an engine without bit-exact f32 (a GPU) can start from the same int8 inputs as [`Session`](crate::Session).
//!
//! All knowledge of how a weight section is stored lives in one function, `weights_and_biases`; the rest goes through
//! the layer summaries and the per-layer plan fields every format shares.
//!
//! ```
//! use tickq_core::decode::decode;
//! use tickq_core::encode::{encode, LayerSpec, ModelSpec, OpSpec};
//! use tickq_core::requant::QuantMultiplier;
//! use tickq_core::Model;
//!
//! let q = QuantMultiplier::from_ratio(0.5).ok_or("ratio")?;
//! let spec = ModelSpec {
//!     name: "tiny".into(),
//!     feature_names: vec!["a".into(), "b".into()],
//!     label_names: vec!["down".into(), "up".into()],
//!     data_hash: [7; 32],
//!     tickq_version: "0.1.0".into(),
//!     layers: vec![
//!         LayerSpec::new(OpSpec::Quantize { time_steps: 1, features: 2, a: vec![16.0; 2], b: vec![0.0; 2] }, 1.0 / 16.0, 0),
//!         LayerSpec::new(
//!             OpSpec::Dense { out_features: 2, in_features: 2, weights: vec![3, 0, -1, 2], bias: vec![5, -5], requant: vec![q, q] },
//!             1.0 / 16.0,
//!             0,
//!         ),
//!     ],
//!     feature_spec: None,
//! };
//! let blob = encode(&spec)?;
//! let model = Model::load(&blob)?;
//! assert_eq!(decode(&model), spec);
//! let inputs = model.quantize_inputs(&[0.25, 1.0, f32::NAN, -9.0]);
//! assert_eq!(inputs, vec![4, 16, 0, -128]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;

use crate::encode::{LayerSpec, ModelSpec, OpSpec};
#[cfg(feature = "dense-dot")]
use crate::format::layout::dot;
use crate::format::layout::{blocked, dsp};
#[cfg(feature = "sparse-formats")]
use crate::format::layout::{columns, sparse};
use crate::format::{NO_INPUT, le_f32, le_i32};
use crate::kernels;
#[cfg(feature = "dynamic")]
use crate::kernels::generic;
use crate::model::Model;
use crate::plan::{LayerPlan, Op, Weighted, Weights};
use crate::requant::QuantMultiplier;

/// Turns a loaded model back into the owned description it was encoded from.
///
/// Weights come back in their logical layout whatever the stored format (dense blocks, sparse or N:M), so
/// `decode(&Model::load(&encode(&spec)?)?) == spec` for every spec that names its inputs canonically: a layer
/// that reads the previous layer has `input: None`, and layer 0 always has `input: None`.
/// Dynamic layers keep their flag and bias exponent (`LayerSpec::dynamic`).
pub fn decode(model: &Model<'_>) -> ModelSpec {
    let meta = model.metadata();
    let layers = model
        .plans()
        .iter()
        .enumerate()
        .map(|(i, l)| decode_layer(i, l, model.version()))
        .collect();
    ModelSpec {
        name: meta.name().to_string(),
        feature_names: meta.feature_names().map(ToString::to_string).collect(),
        label_names: meta.label_names().map(ToString::to_string).collect(),
        data_hash: *meta.data_hash(),
        tickq_version: meta.tickq_version().to_string(),
        layers,
        feature_spec: model.feature_spec(),
    }
}

fn decode_layer(i: usize, l: &LayerPlan<'_>, version: u16) -> LayerSpec {
    let input = (l.input_a != NO_INPUT && i > 0 && usize::from(l.input_a) + 1 != i)
        .then_some(usize::from(l.input_a));
    let (out_t, out_c) = l.out_shape;
    let op = match l.op {
        Op::Quantize { coefficients } => {
            let floats: Vec<f32> = coefficients.chunks_exact(4).map(le_f32).collect();
            let (a, b) = floats.split_at(out_c.min(floats.len()));
            OpSpec::Quantize {
                time_steps: out_t,
                features: out_c,
                a: a.to_vec(),
                b: b.to_vec(),
            }
        }
        Op::Dense(ref w) => {
            let (weights, bias) = weights_and_biases(w, out_c, l.in_zp, version);
            OpSpec::Dense {
                out_features: out_c,
                in_features: w.row_len,
                weights,
                bias,
                requant: multipliers(w),
            }
        }
        Op::Conv1d(conv, ref w) => {
            let (weights, bias) = weights_and_biases(w, out_c, l.in_zp, version);
            OpSpec::Conv1d {
                out_channels: out_c,
                in_channels: l.in_shape.1,
                kernel: conv.kernel,
                stride: conv.stride,
                dilation: conv.dilation,
                padding: conv.padding,
                weights,
                bias,
                requant: multipliers(w),
            }
        }
        Op::Lut { table } => OpSpec::Lut {
            table: table.map(|v| v as i8),
        },
        Op::MaxPool1d(window) => OpSpec::MaxPool1d {
            kernel: window.kernel,
            stride: window.stride,
        },
        Op::AvgPool1d(window, requant) => OpSpec::AvgPool1d {
            kernel: window.kernel,
            stride: window.stride,
            requant,
        },
        Op::GlobalAvgPool(requant) => OpSpec::GlobalAvgPool { requant },
        Op::Flatten => OpSpec::Flatten,
        Op::Add {
            wa, wb, requant, ..
        } => OpSpec::Add {
            other: usize::from(l.input_b),
            wa,
            wb,
            requant,
        },
    };
    LayerSpec {
        op,
        input,
        out_scale: l.out.scale,
        out_zero_point: l.out.zp,
        act_min: l.out.act_min,
        act_max: l.out.act_max,
        dynamic: l
            .dynamic
            .then_some(l.op.weighted().map_or(0, |w| w.bias_exp)),
    }
}

fn multipliers(w: &Weighted<'_>) -> Vec<QuantMultiplier> {
    w.channels
        .multipliers
        .chunks_exact(4)
        .zip(w.channels.shifts)
        .map(|(m, &s)| QuantMultiplier::from_validated(le_i32(m), s))
        .collect()
}

/// The logical `[out][row_len]` weights of a Dense or Conv1d layer with `rows` channels (zeros where nothing is
/// stored) and its effective biases (`b_eff`, the input zero point folded in, as [`OpSpec`] holds them).
///
/// This is the only function here that knows how each weight format lays out its section (`docs/BLOB.md`, and
/// `format::layout` for the geometry); a new or changed format needs a change here and nowhere else in this
/// module.
#[cfg_attr(
    not(feature = "sparse-formats"),
    allow(
        unused_mut,
        unused_variables,
        reason = "the column formats unfold the bias"
    )
)]
fn weights_and_biases(
    w: &Weighted<'_>,
    rows: usize,
    in_zp: i8,
    version: u16,
) -> (Vec<i8>, Vec<i32>) {
    let row_len = w.row_len;
    let mut out = vec![0i8; rows * row_len];
    let mut bias: Vec<i32> = w.channels.bias.chunks_exact(4).map(le_i32).collect();
    let mut put = |o: usize, k: usize, v: u8| {
        if k < row_len
            && let Some(slot) = out.get_mut(o * row_len + k)
        {
            *slot = v as i8;
        }
    };
    // Every weight of a dense layout, read through its index function.
    let mut dense = |bytes: &[u8], index: &dyn Fn(usize, usize) -> usize| {
        for o in 0..rows {
            for k in 0..row_len {
                put(o, k, bytes.get(index(o, k)).copied().unwrap_or(0));
            }
        }
    };
    match w.weights {
        Weights::Blocked { bytes, block_len } => {
            // Blocks of 16 channels, input pairs interleaved per channel; the last block of a version 2 blob
            // holds only `tail` channels and so has shorter steps.
            let tail = blocked::tail_channels(rows, version);
            dense(bytes, &|o, k| {
                let width = if tail != 0 && o / blocked::BLOCK == rows / blocked::BLOCK {
                    tail
                } else {
                    blocked::BLOCK
                };
                (o / blocked::BLOCK) * block_len
                    + (o % blocked::BLOCK) * 2
                    + (k / 2) * 2 * width
                    + k % 2
            });
        }
        Weights::Dsp { bytes, .. } => dense(bytes, &|o, k| dsp::index(o, k, row_len, rows)),
        #[cfg(feature = "dense-dot")]
        Weights::Dot { bytes, .. } => dense(bytes, &|o, k| dot::index(o, k, row_len, rows)),
        #[cfg(feature = "sparse-formats")]
        Weights::Sparse(s) => {
            // Per channel and 128-input segment a count; the indices and values of all channels follow in order.
            let mut at = 0usize;
            for (o, counts) in s.counts.chunks_exact(s.segments.max(1)).enumerate() {
                for (seg, &count) in counts.iter().enumerate() {
                    for _ in 0..count {
                        let col = seg * sparse::SEGMENT
                            + usize::from(s.indices.get(at).copied().unwrap_or(0));
                        put(o, col, s.values.get(at).copied().unwrap_or(0));
                        at += 1;
                    }
                }
            }
        }
        #[cfg(feature = "sparse-formats")]
        Weights::NM(nm) => {
            // Per channel `entries` values; entry `e` is in group `e / n` at the 2-bit in-group index `e`.
            let n = nm.n.max(1);
            let values = nm.values.chunks_exact(nm.entries.max(1));
            let indices = nm.indices.chunks_exact(nm.index_len.max(1));
            for (o, (values, idx)) in values.zip(indices).enumerate() {
                for (e, &v) in values.iter().enumerate() {
                    let i =
                        usize::from((idx.get(e / 4).copied().unwrap_or(0) >> (2 * (e % 4))) & 3);
                    put(o, 4 * (e / n) + i, v);
                }
            }
        }
        #[cfg(feature = "sparse-formats")]
        Weights::Columns(c) => {
            // Per 256-channel row segment and input column a count, then that column's `(row, value)` pairs in
            // increasing rows.
            let mut pairs = c.pairs.as_chunks::<2>().0.iter();
            for (seg, counts) in c.counts.chunks_exact(row_len.max(1)).enumerate() {
                for (j, &count) in counts.iter().enumerate() {
                    for &[row, v] in pairs.by_ref().take(usize::from(count)) {
                        put(seg * columns::ROW_SEGMENT + usize::from(row), j, v);
                    }
                }
            }
            unfold_bias(&mut bias, &out, row_len, in_zp);
        }
        #[cfg(feature = "sparse-formats")]
        Weights::Packed(p) => {
            // As the column format, with bit-packed `(row gap, codebook index)` entries; fillers carry the value
            // 0 and only advance the row.
            let width = (p.gap_bits + p.code_bits) as usize;
            let mut bit = 0usize;
            for (seg, counts) in p.counts.chunks_exact(row_len.max(1)).enumerate() {
                for (j, &count) in counts.iter().enumerate() {
                    let mut next = 0usize;
                    for _ in 0..count {
                        let (gap, code) =
                            columns::packed_entry(p.stream, bit, p.gap_bits, p.code_bits);
                        bit += width;
                        let row = next + gap;
                        next = row + 1;
                        let v = p.codebook.get(code).copied().unwrap_or(0);
                        if v != 0 {
                            put(seg * columns::ROW_SEGMENT + row, j, v);
                        }
                    }
                }
            }
            unfold_bias(&mut bias, &out, row_len, in_zp);
        }
    }
    (out, bias)
}

/// The column formats store the bias with the input zero point unfolded, `b_eff + zp * sum_j w[o][j]`; this
/// folds it back.
#[cfg(feature = "sparse-formats")]
fn unfold_bias(bias: &mut [i32], weights: &[i8], row_len: usize, in_zp: i8) {
    let zp = i32::from(in_zp);
    for (b, row) in bias.iter_mut().zip(weights.chunks_exact(row_len.max(1))) {
        let sum: i32 = row.iter().map(|&v| i32::from(v)).sum();
        *b = b.wrapping_sub(zp.wrapping_mul(sum));
    }
}

impl Model<'_> {
    /// Runs the blob's input quantizer over a batch of samples: `features` holds whole samples of
    /// [`Model::input_len`] f32 values each, one after the other, and the result holds [`Model::input_len`] int8
    /// values per sample, exactly what [`Session::run`](crate::Session::run) feeds the first integer layer.
    ///
    /// A trailing partial sample is padded with NaN (the zero point), as `Session::run` pads a short slice.
    /// For a dynamic model ([`Model::is_dynamic`]) the values are mantissas; [`Model::quantize_inputs_dynamic`]
    /// also returns their exponents.
    pub fn quantize_inputs(&self, features: &[f32]) -> Vec<i8> {
        self.quantize_inputs_dynamic(features).0
    }

    /// [`Model::quantize_inputs`] plus one exponent per sample: for a dynamic model the power of two each sample's
    /// mantissas are scaled by (`docs/ARITHMETIC.md`, "Dynamic quantization"), for a static one 0.
    pub fn quantize_inputs_dynamic(&self, features: &[f32]) -> (Vec<i8>, Vec<i32>) {
        let len = self.input_len();
        let Some(first) = self.plans().first() else {
            return (Vec::new(), Vec::new());
        };
        if len == 0 {
            return (Vec::new(), Vec::new());
        }
        let samples = features.len().div_ceil(len);
        let mut out = vec![0u8; samples * len];
        let mut exponents = vec![0i32; samples];
        for ((sample, dst), e) in features
            .chunks(len)
            .zip(out.chunks_exact_mut(len))
            .zip(exponents.iter_mut())
        {
            let Op::Quantize { coefficients } = first.op else {
                continue;
            };
            #[cfg(feature = "dynamic")]
            if first.dynamic {
                *e = generic::quantize::quantize_dynamic(coefficients, sample, dst);
                continue;
            }
            // A static model's exponents are 0.
            *e = 0;
            kernels::quantize(self.engine(), &first.out, coefficients, sample, dst);
        }
        (out.into_iter().map(|b| b as i8).collect(), exponents)
    }
}

#[cfg(test)]
// Without the optional features some fixtures serve no test.
#[cfg_attr(
    not(all(feature = "sparse-formats", feature = "dynamic")),
    allow(dead_code)
)]
mod tests {
    use super::*;
    use crate::encode::{EncodeOptions, Padding, WeightFormat, encode_with};
    use crate::{Model, Session};
    use proptest::prelude::*;

    fn q(r: f64) -> QuantMultiplier {
        QuantMultiplier::from_ratio(r).unwrap()
    }

    fn quantize_layer(t: usize, f: usize) -> LayerSpec {
        LayerSpec::new(
            OpSpec::Quantize {
                time_steps: t,
                features: f,
                a: (0..f).map(|i| 8.0 + i as f32).collect(),
                b: (0..f).map(|i| i as f32 - 2.0).collect(),
            },
            0.125,
            -3,
        )
    }

    fn spec(layers: Vec<LayerSpec>) -> ModelSpec {
        ModelSpec {
            name: "decode-test".into(),
            feature_names: (0..layers_features(&layers))
                .map(|i| alloc::format!("f{i}"))
                .collect(),
            label_names: vec!["a".into(), "b".into(), "c".into()],
            data_hash: [42; 32],
            tickq_version: "test".into(),
            layers,
            feature_spec: None,
        }
    }

    fn layers_features(layers: &[LayerSpec]) -> usize {
        match layers.first().map(|l| &l.op) {
            Some(OpSpec::Quantize { features, .. }) => *features,
            _ => 0,
        }
    }

    /// Weights with about `zeros` percent zeros, and every group of 4 holding at least one zero when `nm`.
    fn weights(seed: u64, n: usize, zeros: u64, nm: bool) -> Vec<i8> {
        let mut s = seed;
        (0..n)
            .map(|i| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let r = s >> 33;
                if (nm && i % 4 == 3) || r % 100 < zeros {
                    0
                } else {
                    (((r >> 8) % 255) as i16 - 127) as i8
                }
            })
            .collect()
    }

    fn dense(out: usize, inp: usize, seed: u64, zeros: u64, nm: bool) -> LayerSpec {
        let mut l = LayerSpec::new(
            OpSpec::Dense {
                out_features: out,
                in_features: inp,
                weights: weights(seed, out * inp, zeros, nm),
                bias: (0..out).map(|o| o as i32 * 37 - 500).collect(),
                requant: (0..out).map(|o| q(0.001 + o as f64 * 1e-4)).collect(),
            },
            0.05,
            -7,
        );
        l.act_min = -7;
        l
    }

    fn mixed(out: usize, seed: u64, zeros: u64, nm: bool) -> ModelSpec {
        let conv = LayerSpec {
            act_max: 100,
            ..LayerSpec::new(
                OpSpec::Conv1d {
                    out_channels: 12,
                    in_channels: 4,
                    kernel: 3,
                    stride: 1,
                    dilation: 2,
                    padding: Padding::Causal,
                    weights: weights(seed ^ 1, 12 * 3 * 4, zeros, nm),
                    bias: (0..12).collect(),
                    requant: (0..12).map(|o| q(0.002 + o as f64 * 1e-4)).collect(),
                },
                0.1,
                2,
            )
        };
        let mut lut = [0i8; 256];
        for (i, v) in lut.iter_mut().enumerate() {
            *v = (i as i32 / 2 - 64) as i8;
        }
        spec(vec![
            quantize_layer(10, 4),
            conv,
            LayerSpec::new(OpSpec::Lut { table: lut }, 0.1, 0),
            LayerSpec::new(
                OpSpec::MaxPool1d {
                    kernel: 2,
                    stride: 1,
                },
                0.1,
                0,
            ),
            LayerSpec::new(
                OpSpec::AvgPool1d {
                    kernel: 2,
                    stride: 2,
                    requant: q(0.5),
                },
                0.1,
                1,
            ),
            LayerSpec {
                input: Some(3),
                ..LayerSpec::new(
                    OpSpec::AvgPool1d {
                        kernel: 3,
                        stride: 2,
                        requant: q(0.3),
                    },
                    0.1,
                    1,
                )
            },
            LayerSpec::new(
                OpSpec::Add {
                    other: 4,
                    wa: 40000,
                    wb: -65536,
                    requant: q(1.0 / 65536.0),
                },
                0.2,
                -1,
            ),
            LayerSpec::new(OpSpec::Flatten, 0.2, -1),
            dense(out, 48, seed, zeros, nm),
            LayerSpec {
                input: Some(6),
                ..LayerSpec::new(OpSpec::GlobalAvgPool { requant: q(0.25) }, 0.3, 0)
            },
            dense(3, 12, seed ^ 9, zeros, nm),
        ])
    }

    fn round_trip(spec: &ModelSpec, format: WeightFormat) {
        let blob = encode_with(spec, &EncodeOptions::format(format)).unwrap();
        let model = Model::load(&blob).unwrap();
        if !matches!(
            format,
            WeightFormat::Auto | WeightFormat::Dense | WeightFormat::Blocked
        ) {
            assert!(
                model.layers().any(|l| l
                    .weight_format
                    .is_some_and(|f| f != crate::WeightLayout::Blocked)),
                "{format}: no layer was stored in that format"
            );
        }
        let decoded = decode(&model);
        assert_eq!(&decoded, spec, "{format}");
        // Re-encoding the decoded spec gives the same bytes.
        let again = encode_with(&decoded, &EncodeOptions::format(format)).unwrap();
        assert_eq!(again, blob, "{format}");
    }

    #[test]
    #[cfg(feature = "sparse-formats")]
    fn dense_sparse_and_nm_layers_round_trip() {
        for out in [3, 16, 21, 40] {
            round_trip(&mixed(out, 11, 0, false), WeightFormat::Dense);
            round_trip(&mixed(out, 12, 80, false), WeightFormat::Sparse);
            round_trip(&mixed(out, 13, 60, false), WeightFormat::Auto);
            round_trip(&mixed(out, 14, 30, true), WeightFormat::NM);
        }
    }

    #[test]
    #[cfg(feature = "sparse-formats")]
    fn column_packed_and_dsp_formats_round_trip() {
        // Dense-only formats: an MLP whose first layer crosses a 256-channel row segment, with a non-zero input
        // zero point (the column formats unfold it into the bias).
        for (zeros, format) in [
            (70, WeightFormat::Columns),
            (85, WeightFormat::Packed),
            (0, WeightFormat::DenseDsp),
            (10, WeightFormat::DenseDsp),
            (90, WeightFormat::Smallest),
        ] {
            for (h, inputs) in [(300, 13), (7, 9), (40, 33)] {
                let s = spec(vec![
                    quantize_layer(1, inputs),
                    dense(h, inputs, 21, zeros, false),
                    dense(3, h, 22, zeros, false),
                ]);
                round_trip(&s, format);
            }
        }
        // Smallest on the mixed model picks per layer, convolutions included.
        round_trip(&mixed(21, 23, 85, false), WeightFormat::Smallest);
    }

    #[test]
    #[cfg(feature = "sparse-formats")]
    fn wide_rows_cross_sparse_segments() {
        let s = spec(vec![
            quantize_layer(1, 300),
            dense(5, 300, 3, 90, false),
            dense(3, 5, 4, 0, false),
        ]);
        round_trip(&s, WeightFormat::Sparse);
        let s = spec(vec![
            quantize_layer(1, 300),
            dense(8, 300, 5, 70, true),
            dense(3, 8, 4, 0, true),
        ]);
        round_trip(&s, WeightFormat::NM);
    }

    #[test]
    #[cfg(feature = "dynamic")]
    fn dynamic_layers_keep_their_flag() {
        let mut s = spec(vec![
            quantize_layer(1, 6),
            dense(8, 6, 1, 0, false),
            dense(3, 8, 2, 0, false),
        ]);
        for l in &mut s.layers {
            l.dynamic = Some(0);
            l.out_zero_point = 0;
            l.act_min = -128;
        }
        s.layers[1].dynamic = Some(-3);
        if let OpSpec::Quantize { b, .. } = &mut s.layers[0].op {
            b.iter_mut().for_each(|v| *v = 0.0);
        }
        for l in &mut s.layers[1..] {
            if let OpSpec::Dense { requant, .. } = &mut l.op {
                requant.iter_mut().for_each(|m| *m = q(0.3));
            }
        }
        round_trip(&s, WeightFormat::Dense);
    }

    #[test]
    #[cfg(feature = "dynamic")]
    fn dynamic_inputs_carry_their_exponents() {
        let mut s = spec(vec![
            quantize_layer(1, 6),
            dense(8, 6, 1, 0, false),
            dense(3, 8, 2, 0, false),
        ]);
        for l in &mut s.layers {
            l.dynamic = Some(0);
            l.out_zero_point = 0;
            l.act_min = -128;
        }
        if let OpSpec::Quantize { b, .. } = &mut s.layers[0].op {
            b.iter_mut().for_each(|v| *v = 0.0);
        }
        // Zero biases and no ReLU6 cap: then the layers after the quantizer do not depend on the input's
        // exponent, and `run_quantized` (exponent 0) must give the same mantissas with the exponent moved.
        for l in &mut s.layers[1..] {
            if let OpSpec::Dense { requant, bias, .. } = &mut l.op {
                requant.iter_mut().for_each(|m| *m = q(0.3));
                bias.iter_mut().for_each(|b| *b = 0);
            }
        }
        let blob = encode_with(&s, &EncodeOptions::default()).unwrap();
        let model = Model::load(&blob).unwrap();
        let xs: Vec<f32> = (0..60)
            .map(|i| (i as f32 - 25.0) * 1.7e3_f32.powi(i % 5 - 2))
            .collect();
        let (q, e) = model.quantize_inputs_dynamic(&xs);
        assert_eq!(q, model.quantize_inputs(&xs));
        let mut arena = vec![0u8; model.arena_bytes()];
        let mut session = Session::new(&model, &mut arena).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for ((x, q), &e) in xs.chunks(6).zip(q.chunks(6)).zip(&e) {
            let (logits, exponent) = {
                let p = session.run(x);
                (p.logits().to_vec(), p.exponent())
            };
            let p = session.run_quantized(q);
            assert_eq!(p.logits(), &logits[..]);
            assert_eq!(p.exponent() + e, exponent);
            seen.insert(e);
        }
        assert!(seen.len() > 2, "{seen:?}");
    }

    proptest! {
        #[test]
        fn quantize_inputs_matches_the_session(
            xs in proptest::collection::vec(prop_oneof![
                -1e3f32..1e3,
                Just(f32::NAN),
                Just(f32::INFINITY),
                Just(f32::NEG_INFINITY),
                -20f32..20.0,
            ], 0..200),
        ) {
            // T = 2 time steps of 3 features; the quantized input round-trips through run_quantized.
            let mut s = spec(vec![quantize_layer(2, 3), LayerSpec::new(OpSpec::Flatten, 0.125, -3)]);
            s.label_names = (0..6).map(|i| alloc::format!("c{i}")).collect();
            let blob = encode_with(&s, &EncodeOptions::default()).unwrap();
            let model = Model::load(&blob).unwrap();
            let batch = model.quantize_inputs(&xs);
            prop_assert_eq!(batch.len(), xs.len().div_ceil(6) * 6);
            let mut arena = vec![0u8; model.arena_bytes()];
            let mut session = Session::new(&model, &mut arena).unwrap();
            for (sample, q) in xs.chunks(6).zip(batch.chunks(6)) {
                let want = session.run(sample).logits().to_vec();
                prop_assert_eq!(&want[..], q);
            }
        }
    }
}
