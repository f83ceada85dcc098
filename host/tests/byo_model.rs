//! Bring your own model (docs/BYO_MODEL.md): PyTorch-style models that this test writes itself, fed their own
//! input vectors, through `tickq import`, `tickq quantize --calibration`, `tickq run` and `tickq inspect`.
//!
//! Two models, each with seeded random weights drawn like PyTorch's default initialization
//! (`U(-1/sqrt(fan_in), 1/sqrt(fan_in))`) and stored as safetensors with `state_dict` names:
//!
//! - an MLP 32 → 64 → 32 → 3 (ReLU between), fed a CSV file with a header and a `label` column;
//! - a 1-D conv over 8 channels × 64 steps (conv 8→16 k5, ReLU, conv 16→16 k5 stride 2, ReLU, global average
//!   pool, dense 16→3), fed a `.npy` array `[N, 8, 64]` in PyTorch's channels-first layout.
//!
//! The inputs have structure (a few latent factors mixed into every input, plus noise, and for the conv a
//! slow sine per channel). Reference logits are computed here, in f64, by this file's own forward pass.
//! The blob is calibrated on the first half of the vectors and run on the second half; the test asserts
//! argmax agreement of at least 99 % and, for every sample and class, an absolute error within the bound
//! [`error_bound`] derives from the blob's quantization scales.
//!
//! Each model is imported both ways tickq takes a PyTorch model: its safetensors with an architecture file,
//! and an ONNX file this test writes (laid out as `torch.onnx.export` lays out these modules: `Gemm` with
//! `transB = 1`, `Conv` with explicit attributes, `GlobalAveragePool` then `Flatten`); the two blobs must
//! give the same int8 logits for every sample.

mod common;
#[path = "common/onnx_writer.rs"]
mod onnx_writer;

use common::*;
use rand::{RngExt, SeedableRng};
use std::path::Path;

const ROWS: usize = 2000;
const HALF: usize = ROWS / 2;

/// One layer of the test's own model.
#[derive(Clone)]
enum Layer {
    /// `y = W x + b`, `W` `[out, in]` row-major; `relu` after it.
    Dense {
        w: Vec<f64>,
        b: Vec<f64>,
        inp: usize,
        out: usize,
        relu: bool,
    },
    /// Valid 1-D convolution, `W` `[out, in, k]`; `relu` after it.
    Conv {
        w: Vec<f64>,
        b: Vec<f64>,
        inp: usize,
        out: usize,
        k: usize,
        stride: usize,
        relu: bool,
    },
    /// Mean over time of each channel.
    GlobalAvgPool,
}

/// An activation: channels-first `[C, T]` (a vector has `T = 1`).
#[derive(Clone)]
struct Act {
    c: usize,
    t: usize,
    v: Vec<f64>,
}

/// PyTorch-like initialization: weights and biases `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`, rounded to f32 (the
/// values the safetensors file holds, which the f64 reference uses too).
fn init(rng: &mut rand_chacha::ChaCha8Rng, n: usize, fan_in: usize) -> Vec<f64> {
    let bound = 1.0 / (fan_in as f64).sqrt();
    (0..n)
        .map(|_| f64::from(((rng.random::<f64>() * 2.0 - 1.0) * bound) as f32))
        .collect()
}

fn dense(rng: &mut rand_chacha::ChaCha8Rng, inp: usize, out: usize, relu: bool) -> Layer {
    Layer::Dense {
        w: init(rng, out * inp, inp),
        b: init(rng, out, inp),
        inp,
        out,
        relu,
    }
}

fn conv(
    rng: &mut rand_chacha::ChaCha8Rng,
    inp: usize,
    out: usize,
    k: usize,
    stride: usize,
) -> Layer {
    Layer::Conv {
        w: init(rng, out * inp * k, inp * k),
        b: init(rng, out, inp * k),
        inp,
        out,
        k,
        stride,
        relu: true,
    }
}

/// The f64 forward pass of one layer.
fn forward_layer(layer: &Layer, x: &Act) -> Act {
    let relu = |v: f64, on: bool| if on { v.max(0.0) } else { v };
    match layer {
        Layer::Dense {
            w,
            b,
            inp,
            out,
            relu: r,
        } => {
            assert_eq!(x.v.len(), *inp);
            let v = (0..*out)
                .map(|j| {
                    let s: f64 = (0..*inp).map(|i| w[j * inp + i] * x.v[i]).sum();
                    relu(s + b[j], *r)
                })
                .collect();
            Act { c: *out, t: 1, v }
        }
        Layer::Conv {
            w,
            b,
            inp,
            out,
            k,
            stride,
            relu: r,
        } => {
            assert_eq!(x.c, *inp);
            let t_out = (x.t - k) / stride + 1;
            let mut v = vec![0.0; out * t_out];
            for o in 0..*out {
                for t in 0..t_out {
                    let mut s = b[o];
                    for i in 0..*inp {
                        for j in 0..*k {
                            s += w[(o * inp + i) * k + j] * x.v[i * x.t + t * stride + j];
                        }
                    }
                    v[o * t_out + t] = relu(s, *r);
                }
            }
            Act {
                c: *out,
                t: t_out,
                v,
            }
        }
        Layer::GlobalAvgPool => Act {
            c: x.c,
            t: 1,
            v: (0..x.c)
                .map(|c| x.v[c * x.t..(c + 1) * x.t].iter().sum::<f64>() / x.t as f64)
                .collect(),
        },
    }
}

/// Every layer's output for input `x`.
fn trace(layers: &[Layer], x: &Act) -> Vec<Act> {
    let mut out = vec![x.clone()];
    for l in layers {
        let next = forward_layer(l, out.last().unwrap());
        out.push(next);
    }
    out
}

/// One quantized tensor of the blob: its scale and the real range its int8 codes (after the fused clamp)
/// cover.
#[derive(Clone, Copy, Debug)]
struct QTensor {
    scale: f64,
    lo: f64,
    hi: f64,
}

/// The quantized tensors of the blob, from `tickq inspect --json`: the input (the Quantize layer) and each
/// layer's output, in order.
fn blob_tensors(blob: &Path) -> Vec<QTensor> {
    let info: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", s(blob), "--json"])).unwrap();
    info["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let scale = l["out_scale"].as_f64().unwrap();
            let zp = l["out_zero_point"].as_f64().unwrap();
            let clamp = l["clamp"].as_array().unwrap();
            QTensor {
                scale,
                lo: scale * (clamp[0].as_f64().unwrap() - zp),
                hi: scale * (clamp[1].as_f64().unwrap() - zp),
            }
        })
        .collect()
}

/// How far `v` lies outside `[q.lo, q.hi]`.
fn clip(v: f64, q: QTensor) -> f64 {
    (q.lo - v).max(v - q.hi).max(0.0)
}

/// A bound on `|dequantized blob logit - f64 logit|` for each class of one sample, from the scales.
///
/// Write `h` for the exact f64 activation of a layer's input, `ĥ` for the blob's (dequantized) one with
/// `|ĥ_i - h_i| <= e_i`, and `s_in`, `s_out` for the input and output scales. Each weight row `j` is quantized
/// symmetrically per channel with `s_w = max_i |W_ji| / 127`, so `|Ŵ_ji - W_ji| <= s_w / 2` and
/// `|Ŵ_ji| <= |W_ji| + s_w / 2`; the bias is rounded to the accumulator's scale `s_in * s_w`. The integer
/// accumulation is exact, the requantization rounds once (at most `s_out / 2`), and a value outside the
/// output's range is clamped to it (its distance `clip`). ReLU, its fused clamp and the average pool are
/// 1-Lipschitz. So, for an output `j` of a Dense or Conv1d layer (the sum over its fan-in):
///
/// ```text
/// e_j <= Σ (|W_ji| + s_w/2) e_i  +  (s_w/2) Σ |h_i|  +  s_in s_w / 2  +  s_out / 2  +  clip(y_j)
/// ```
///
/// the input starts at `e = s_0 / 2 + clip(x)`, and a global average pool gives the mean of its inputs'
/// bounds plus `s_out / 2 + clip`. The Q31 multiplier's own rounding (a relative 2^-31) and the f32 rounding
/// of the input quantizer are covered by a slack of 0.1 % plus 1e-6.
fn error_bound(layers: &[Layer], acts: &[Act], q: &[QTensor]) -> Vec<f64> {
    assert_eq!(
        q.len(),
        layers.len() + 1,
        "one blob tensor per layer and the input"
    );
    let mut e: Vec<f64> = acts[0]
        .v
        .iter()
        .map(|&x| q[0].scale / 2.0 + clip(x, q[0]))
        .collect();
    for (l, layer) in layers.iter().enumerate() {
        let (h, y, s_in, out_q) = (&acts[l], &acts[l + 1], q[l].scale, q[l + 1]);
        let row = |w: &[f64], fan: &[(usize, f64)], j: usize| {
            let s_w = w.iter().fold(0f64, |m, v| m.max(v.abs())) / 127.0;
            let prop: f64 = fan
                .iter()
                .zip(w)
                .map(|((i, _), wv)| (wv.abs() + s_w / 2.0) * e[*i])
                .sum();
            let mass: f64 = fan.iter().map(|(_, hv)| hv.abs()).sum();
            prop + s_w / 2.0 * mass + s_in * s_w / 2.0 + out_q.scale / 2.0 + clip(y.v[j], out_q)
        };
        e = match layer {
            Layer::Dense { w, inp, out, .. } => (0..*out)
                .map(|j| {
                    let fan: Vec<(usize, f64)> = (0..*inp).map(|i| (i, h.v[i])).collect();
                    row(&w[j * inp..(j + 1) * inp], &fan, j)
                })
                .collect(),
            Layer::Conv {
                w,
                inp,
                out,
                k,
                stride,
                ..
            } => (0..out * y.t)
                .map(|j| {
                    let (o, t) = (j / y.t, j % y.t);
                    let fan: Vec<(usize, f64)> = (0..*inp)
                        .flat_map(|i| (0..*k).map(move |kk| i * h.t + t * stride + kk))
                        .map(|idx| (idx, h.v[idx]))
                        .collect();
                    row(&w[o * inp * k..(o + 1) * inp * k], &fan, j)
                })
                .collect(),
            Layer::GlobalAvgPool => (0..h.c)
                .map(|c| {
                    e[c * h.t..(c + 1) * h.t].iter().sum::<f64>() / h.t as f64
                        + out_q.scale / 2.0
                        + clip(y.v[c], out_q)
                })
                .collect(),
        };
    }
    e.iter().map(|v| v * 1.001 + 1e-6).collect()
}

/// The model's weights as a safetensors file with PyTorch names (`fc{i}`, `conv{i}`).
fn write_weights(layers: &[Layer], path: &Path) {
    use safetensors::tensor::{Dtype, TensorView};
    let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let (mut fc, mut cv) = (0, 0);
    let bytes =
        |v: &[f64]| -> Vec<u8> { v.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect() };
    for l in layers {
        match l {
            Layer::Dense { w, b, inp, out, .. } => {
                fc += 1;
                named.push((format!("fc{fc}.weight"), vec![*out, *inp], bytes(w)));
                named.push((format!("fc{fc}.bias"), vec![*out], bytes(b)));
            }
            Layer::Conv {
                w, b, inp, out, k, ..
            } => {
                cv += 1;
                named.push((format!("conv{cv}.weight"), vec![*out, *inp, *k], bytes(w)));
                named.push((format!("conv{cv}.bias"), vec![*out], bytes(b)));
            }
            Layer::GlobalAvgPool => {}
        }
    }
    let views: Vec<(String, TensorView<'_>)> = named
        .iter()
        .map(|(n, shape, data)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// The model as an ONNX file, as `torch.onnx.export` writes these modules, with `input` `[N, ..dims]`.
fn write_onnx(layers: &[Layer], dims: &[usize], path: &Path) {
    use onnx_writer::*;
    let (mut nodes, mut inits) = (Vec::new(), Vec::new());
    let mut x = "input".to_string();
    let (mut fc, mut cv) = (0, 0);
    let f32s = |v: &[f64]| -> Vec<f32> { v.iter().map(|x| *x as f32).collect() };
    let step = |nodes: &mut Vec<Message>, op: &str, name: String, inputs: Vec<String>, attrs| {
        let out = format!("{name}_out");
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        nodes.push(node(op, &name, &inputs, &[&out], attrs));
        out
    };
    for l in layers {
        match l {
            Layer::Dense {
                w,
                b,
                inp,
                out,
                relu,
            } => {
                fc += 1;
                let (wn, bn) = (format!("fc{fc}.weight"), format!("fc{fc}.bias"));
                inits.push(float_tensor(&wn, &[*out, *inp], &f32s(w)));
                inits.push(float_tensor(&bn, &[*out], &f32s(b)));
                let attrs = vec![int_attribute("transB", 1)];
                x = step(
                    &mut nodes,
                    "Gemm",
                    format!("/fc{fc}/Gemm"),
                    vec![x, wn, bn],
                    attrs,
                );
                if *relu {
                    x = step(
                        &mut nodes,
                        "Relu",
                        format!("/relu_fc{fc}/Relu"),
                        vec![x],
                        vec![],
                    );
                }
            }
            Layer::Conv {
                w,
                b,
                inp,
                out,
                k,
                stride,
                relu,
            } => {
                cv += 1;
                let (wn, bn) = (format!("conv{cv}.weight"), format!("conv{cv}.bias"));
                inits.push(float_tensor(&wn, &[*out, *inp, *k], &f32s(w)));
                inits.push(float_tensor(&bn, &[*out], &f32s(b)));
                let attrs = vec![
                    ints_attribute("dilations", &[1]),
                    int_attribute("group", 1),
                    ints_attribute("kernel_shape", &[*k as i64]),
                    ints_attribute("pads", &[0, 0]),
                    ints_attribute("strides", &[*stride as i64]),
                ];
                x = step(
                    &mut nodes,
                    "Conv",
                    format!("/conv{cv}/Conv"),
                    vec![x, wn, bn],
                    attrs,
                );
                if *relu {
                    x = step(
                        &mut nodes,
                        "Relu",
                        format!("/relu_conv{cv}/Relu"),
                        vec![x],
                        vec![],
                    );
                }
            }
            Layer::GlobalAvgPool => {
                x = step(
                    &mut nodes,
                    "GlobalAveragePool",
                    "/pool/GlobalAveragePool".into(),
                    vec![x],
                    vec![],
                );
                let attrs = vec![int_attribute("axis", 1)];
                x = step(
                    &mut nodes,
                    "Flatten",
                    "/flatten/Flatten".into(),
                    vec![x],
                    attrs,
                );
            }
        }
    }
    // The last node's output is the graph's output.
    let bytes = model(
        nodes,
        inits,
        float_value("input", dims),
        float_value(&x, &[3]),
    );
    std::fs::write(path, bytes).unwrap();
}

/// A version-1 `.npy` file of little-endian values, written here independently of tickq's writer.
fn write_npy(path: &Path, descr: &str, shape: &[usize], data: Vec<u8>) {
    let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': False, 'shape': ({},), }}",
        dims.join(", ")
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend(data);
    std::fs::write(path, out).unwrap();
}

fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

/// The `score_*` columns of `tickq run`'s CSV for a blob, one row per sample.
fn read_scores(path: &Path, classes: usize) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header.len(), 1 + 2 * classes, "{header:?}");
    assert!(header[1 + classes].starts_with("score_"), "{header:?}");
    lines
        .map(|l| {
            l.split(',')
                .skip(1 + classes)
                .map(|v| v.parse().unwrap())
                .collect()
        })
        .collect()
}

/// Quantizes the imported checkpoint `ck` calibrating on rows `0..HALF` of `inputs`, runs the blob on the
/// rest and checks agreement and the per-sample error bound; returns the run's summary.
fn quantize_and_check(
    dir: &Path,
    ck: &Path,
    inputs: &Path,
    reference: &Path,
    layers: &[Layer],
    acts: &[Vec<Act>],
    calibration: &[&str],
) -> serde_json::Value {
    let blob = dir.join("m.blob");
    let mut args = vec![
        "quantize",
        s(ck),
        "--out",
        s(&blob),
        "--calibration",
        s(inputs),
    ];
    args.extend_from_slice(calibration);
    ok(&args);
    let preds = dir.join("preds.csv");
    let rows = format!("{HALF}..{ROWS}");
    let out = ok(&[
        "run",
        s(&blob),
        "--inputs",
        s(inputs),
        "--rows",
        &rows,
        "--reference",
        s(reference),
        "--out",
        s(&preds),
        "--json",
    ]);
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    let agreement = summary["reference"]["agreement"].as_f64().unwrap();
    assert!(agreement >= 0.99, "agreement {agreement}: {summary}");
    let q = blob_tensors(&blob);
    let scores = read_scores(&preds, 3);
    assert_eq!(scores.len(), ROWS - HALF);
    let mut worst_ratio = 0f64;
    for (n, got) in scores.iter().enumerate() {
        let acts = &acts[HALF + n];
        let bound = error_bound(layers, acts, &q);
        let want = &acts.last().unwrap().v;
        for c in 0..3 {
            let err = (got[c] - want[c]).abs();
            assert!(
                err <= bound[c],
                "sample {}, class {c}: |{} - {}| = {err} above the bound {}",
                HALF + n,
                got[c],
                want[c],
                bound[c]
            );
            worst_ratio = worst_ratio.max(err / bound[c]);
        }
    }
    let max_err = summary["reference"]["max_abs_error"].as_f64().unwrap();
    eprintln!(
        "{}: agreement {:.2} %, max abs error {max_err:.5}, at most {:.1} % of its bound",
        ck.display(),
        100.0 * agreement,
        100.0 * worst_ratio
    );
    // The f32 checkpoint itself agrees with the f64 reference to float rounding.
    let f32_run: serde_json::Value = serde_json::from_str(&ok(&[
        "run",
        s(ck),
        "--inputs",
        s(inputs),
        "--reference",
        s(reference),
        "--json",
    ]))
    .unwrap();
    assert!(
        f32_run["reference"]["max_abs_error"].as_f64().unwrap() < 1e-4,
        "{f32_run}"
    );
    assert_eq!(f32_run["reference"]["agreement"].as_f64().unwrap(), 1.0);
    summary
}

/// `ROWS` samples of `dims` values: `latent` factors mixed in by a fixed random matrix, plus noise.
fn structured(rng: &mut rand_chacha::ChaCha8Rng, values: usize, latent: usize) -> Vec<Vec<f64>> {
    let mix: Vec<f64> = (0..values * latent)
        .map(|_| rng.random::<f64>() * 2.0 - 1.0)
        .collect();
    (0..ROWS)
        .map(|_| {
            let z: Vec<f64> = (0..latent)
                .map(|_| rng.random::<f64>() * 2.0 - 1.0)
                .collect();
            (0..values)
                .map(|i| {
                    let s: f64 = (0..latent).map(|k| mix[i * latent + k] * z[k]).sum();
                    f64::from((s + 0.2 * (rng.random::<f64>() - 0.5)) as f32)
                })
                .collect()
        })
        .collect()
}

fn write_reference(path: &Path, acts: &[Vec<Act>]) {
    let data: Vec<u8> = acts
        .iter()
        .flat_map(|a| a.last().unwrap().v.clone())
        .flat_map(f64::to_le_bytes)
        .collect();
    write_npy(path, "<f8", &[ROWS, 3], data);
}

#[test]
fn an_mlp_on_its_own_csv_features() {
    let dir = scratch("byo-mlp");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(32);
    let layers = vec![
        dense(&mut rng, 32, 64, true),
        dense(&mut rng, 64, 32, true),
        dense(&mut rng, 32, 3, false),
    ];
    write_weights(&layers, &dir.join("w.safetensors"));
    std::fs::write(
        dir.join("arch.toml"),
        "name = \"mlp32\"\nclasses = 3\n[input]\ntime_steps = 1\nfeatures = 32\n\
         [[layers]]\ntype = \"dense\"\nout = 64\n[[layers]]\ntype = \"relu\"\n\
         [[layers]]\ntype = \"dense\"\nout = 32\n[[layers]]\ntype = \"relu\"\n\
         [[layers]]\ntype = \"dense\"\nout = 3\n",
    )
    .unwrap();
    let x = structured(&mut rng, 32, 4);
    let acts: Vec<Vec<Act>> = x
        .iter()
        .map(|v| {
            trace(
                &layers,
                &Act {
                    c: 32,
                    t: 1,
                    v: v.clone(),
                },
            )
        })
        .collect();
    // A CSV with its own column names (in another order than the model's) and labels.
    let names: Vec<String> = (0..32).map(|i| format!("f{i}")).collect();
    let mut csv = String::from("label,");
    csv.push_str(&names.iter().rev().cloned().collect::<Vec<_>>().join(","));
    csv.push('\n');
    for (v, a) in x.iter().zip(&acts) {
        csv.push_str(&argmax(&a.last().unwrap().v).to_string());
        for value in v.iter().rev() {
            csv.push_str(&format!(",{}", *value as f32));
        }
        csv.push('\n');
    }
    let inputs = dir.join("inputs.csv");
    std::fs::write(&inputs, csv).unwrap();
    let reference = dir.join("reference.npy");
    write_reference(&reference, &acts);
    // The model's input names, in its own order, from a header line; the inputs file has them in reverse.
    let header = dir.join("names.csv");
    std::fs::write(&header, format!("{},label\n", names.join(","))).unwrap();
    let ck = dir.join("ck");
    // The width is checked against the architecture, naming both numbers.
    let e = refused(
        &[
            "import",
            "--weights",
            s(&dir.join("w.safetensors")),
            "--arch",
            s(&dir.join("arch.toml")),
            "--out",
            s(&ck),
            "--input-names",
            "a,b,c",
        ],
        2,
    );
    assert_eq!(
        e,
        "error: --input-names gives 3 names, but the architecture takes 32 features per time step"
    );
    let out = ok(&[
        "import",
        "--weights",
        s(&dir.join("w.safetensors")),
        "--arch",
        s(&dir.join("arch.toml")),
        "--out",
        s(&ck),
        "--input-names-from",
        s(&header),
        "--label-names",
        "down,flat,up",
    ]);
    assert!(out.contains("imported 4291 parameters"), "{out}");
    let text = ok(&["inspect", s(&ck)]);
    assert!(
        text.contains("layout       time-major [T, F] = [1, 32]"),
        "{text}"
    );
    assert!(text.contains("names        f0, f1, f2"), "{text}");
    assert!(
        text.contains("standardize  identity (mean 0, std 1)"),
        "{text}"
    );
    // A vector checkpoint has no trade data to calibrate on.
    let e = refused(&["quantize", s(&ck), "--out", s(&dir.join("x.blob"))], 2);
    assert!(
        e.contains("reads vectors from files: give them with --calibration FILE"),
        "{e}"
    );
    assert!(!dir.join("x.blob").exists());
    // Dynamic quantization reads no calibration data: a calibration file is refused, not ignored.
    let e = refused(
        &[
            "quantize",
            s(&ck),
            "--out",
            s(&dir.join("x.blob")),
            "--mode",
            "dynamic",
            "--calibration",
            s(&inputs),
        ],
        2,
    );
    assert_eq!(
        e,
        "error: --calibration is for static quantization: --mode dynamic chooses its activation scales at every inference and reads no calibration data"
    );
    assert!(!dir.join("x.blob").exists());
    let summary = quantize_and_check(
        &dir,
        &ck,
        &inputs,
        &reference,
        &layers,
        &acts,
        &["--calibration-rows", &format!("0..{HALF}")],
    );
    // The CSV's labels are the reference's classes: the accuracy is the agreement.
    assert_eq!(
        summary["labels"]["accuracy"],
        summary["reference"]["agreement"]
    );
    let blob_text = ok(&["inspect", s(&dir.join("m.blob"))]);
    assert!(blob_text.contains("layout       time-major"), "{blob_text}");
    // Firmware test vectors from the same file: 10 rows, evenly spaced, with the int8 logits tickq-core gives.
    ok(&[
        "export",
        s(&dir.join("m.blob")),
        "--format",
        "blob",
        "--out",
        s(&dir.join("export.blob")),
        "--vectors-from",
        s(&inputs),
        "--vectors",
        "10",
    ]);
    let (_, vectors) =
        tickq_host::export::parse_test_vectors(&std::fs::read(dir.join("export.tqv")).unwrap())
            .unwrap();
    assert_eq!(vectors.len(), 10);
    // Row 0 is the first vector: its logits are what `tickq run` gives that row.
    let first = dir.join("first.csv");
    ok(&[
        "run",
        s(&dir.join("m.blob")),
        "--inputs",
        s(&inputs),
        "--rows",
        "0..1",
        "--out",
        s(&first),
    ]);
    let text = std::fs::read_to_string(&first).unwrap();
    let int8: Vec<i8> = text
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .skip(1)
        .take(3)
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(vectors[0].logits, int8);
    assert!(blob_text.contains("features     f0, f1, f2"), "{blob_text}");

    // The same model as an ONNX file: the graph gives the layers and weights, no architecture file.
    let onnx = dir.join("onnx");
    std::fs::create_dir_all(&onnx).unwrap();
    write_onnx(&layers, &[32], &onnx.join("mlp32.onnx"));
    let onnx_ck = onnx.join("ck");
    let out = ok(&[
        "import",
        s(&onnx.join("mlp32.onnx")),
        "--out",
        s(&onnx_ck),
        "--input-names-from",
        s(&header),
        "--label-names",
        "down,flat,up",
    ]);
    assert!(out.contains("imported 4291 parameters"), "{out}");
    // An operator the core does not run is refused naming the node, and no checkpoint is written.
    let softmax = onnx.join("softmax.onnx");
    let graph = onnx_writer::model(
        vec![onnx_writer::node(
            "Softmax",
            "/softmax/Softmax",
            &["input"],
            &["probs"],
            vec![],
        )],
        vec![],
        onnx_writer::float_value("input", &[3]),
        onnx_writer::float_value("probs", &[3]),
    );
    std::fs::write(&softmax, graph).unwrap();
    let e = refused(&["import", s(&softmax), "--out", s(&onnx.join("no-ck"))], 2);
    assert_eq!(
        e,
        format!(
            "error: {}: node 0 \"/softmax/Softmax\" (Softmax): operator not supported; tickq imports Gemm, \
             MatMul (+ Add of a bias), Conv (one spatial axis), Relu, Clip, Tanh, Sigmoid, MaxPool, AveragePool, \
             GlobalAveragePool, Flatten, Reshape (as a flatten), Squeeze (after GlobalAveragePool), Identity, \
             Dropout and Constant",
            softmax.display()
        )
    );
    assert!(!onnx.join("no-ck").exists());
    quantize_and_check(
        &onnx,
        &onnx_ck,
        &inputs,
        &reference,
        &layers,
        &acts,
        &["--calibration-rows", &format!("0..{HALF}")],
    );
    assert_same_predictions(&dir, &onnx);
}

/// The int8 logits and scores both imports' blobs gave (`preds.csv`, written by [`quantize_and_check`]) are
/// the same, sample for sample.
fn assert_same_predictions(safetensors_dir: &Path, onnx_dir: &Path) {
    let a = std::fs::read_to_string(safetensors_dir.join("preds.csv")).unwrap();
    let b = std::fs::read_to_string(onnx_dir.join("preds.csv")).unwrap();
    assert_eq!(a.lines().count(), ROWS - HALF + 1);
    for (n, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        assert_eq!(
            x, y,
            "line {n} of the predictions differs between the two imports"
        );
    }
}

#[test]
fn a_conv_model_given_channels_first() {
    let dir = scratch("byo-conv");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(64);
    let layers = vec![
        conv(&mut rng, 8, 16, 5, 1),
        conv(&mut rng, 16, 16, 5, 2),
        Layer::GlobalAvgPool,
        dense(&mut rng, 16, 3, false),
    ];
    write_weights(&layers, &dir.join("w.safetensors"));
    std::fs::write(
        dir.join("arch.toml"),
        "name = \"conv8x64\"\nclasses = 3\n[input]\ntime_steps = 64\nfeatures = 8\n\
         [[layers]]\ntype = \"conv1d\"\nout = 16\nkernel = 5\n[[layers]]\ntype = \"relu\"\n\
         [[layers]]\ntype = \"conv1d\"\nout = 16\nkernel = 5\nstride = 2\n[[layers]]\ntype = \"relu\"\n\
         [[layers]]\ntype = \"global_avg_pool\"\n[[layers]]\ntype = \"dense\"\nout = 3\n",
    )
    .unwrap();
    // Channels-first samples: per channel a slow sine of its own phase, scaled by latent factors, plus noise.
    let factors = structured(&mut rng, 8, 3);
    let x: Vec<Vec<f64>> = factors
        .iter()
        .map(|f| {
            (0..8)
                .flat_map(|c| {
                    (0..64).map(move |t| {
                        let phase = c as f64 * 0.7 + t as f64 * 0.15;
                        f64::from((f[c] * 2.0 * phase.sin() + 0.3 * f[(c + 1) % 8]) as f32)
                    })
                })
                .collect()
        })
        .collect();
    let acts: Vec<Vec<Act>> = x
        .iter()
        .map(|v| {
            trace(
                &layers,
                &Act {
                    c: 8,
                    t: 64,
                    v: v.clone(),
                },
            )
        })
        .collect();
    let inputs = dir.join("inputs.npy");
    let data: Vec<u8> = x
        .iter()
        .flatten()
        .flat_map(|v| (*v as f32).to_le_bytes())
        .collect();
    write_npy(&inputs, "<f4", &[ROWS, 8, 64], data);
    let reference = dir.join("reference.npy");
    write_reference(&reference, &acts);
    let ck = dir.join("ck");
    ok(&[
        "import",
        "--weights",
        s(&dir.join("w.safetensors")),
        "--arch",
        s(&dir.join("arch.toml")),
        "--out",
        s(&ck),
        "--layout",
        "channels-first",
    ]);
    let text = ok(&["inspect", s(&ck)]);
    assert!(
        text.contains("layout       channels-first [C, T] = [8, 64]"),
        "{text}"
    );
    assert!(
        text.contains("names        x0, x1, x2, x3, x4, x5, x6, x7 (8 names)"),
        "{text}"
    );
    quantize_and_check(
        &dir,
        &ck,
        &inputs,
        &reference,
        &layers,
        &acts,
        &["--calibration-count", &HALF.to_string()],
    );
    let blob = dir.join("m.blob");
    let blob_text = ok(&["inspect", s(&blob)]);
    assert!(
        blob_text.contains("layout       channels-first [C, T] = [8, 64]"),
        "{blob_text}"
    );
    // Read as time-major, the channels-first array is refused, not silently misread.
    let e = refused(
        &[
            "run",
            s(&blob),
            "--inputs",
            s(&inputs),
            "--layout",
            "time-major",
        ],
        2,
    );
    assert!(
        e.contains("the samples are [8, 64], the channels-first shape, but the model's layout is time-major"),
        "{e}"
    );

    // The same model as an ONNX file `[N, 8, 64]`: the graph's input shape makes the checkpoint
    // channels-first without --layout.
    let onnx = dir.join("onnx");
    std::fs::create_dir_all(&onnx).unwrap();
    write_onnx(&layers, &[8, 64], &onnx.join("conv8x64.onnx"));
    let onnx_ck = onnx.join("ck");
    ok(&[
        "import",
        s(&onnx.join("conv8x64.onnx")),
        "--out",
        s(&onnx_ck),
    ]);
    let text = ok(&["inspect", s(&onnx_ck)]);
    assert!(
        text.contains("layout       channels-first [C, T] = [8, 64]"),
        "{text}"
    );
    quantize_and_check(
        &onnx,
        &onnx_ck,
        &inputs,
        &reference,
        &layers,
        &acts,
        &["--calibration-count", &HALF.to_string()],
    );
    assert_same_predictions(&dir, &onnx);
}
