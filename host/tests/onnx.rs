//! ONNX import against the committed files of `host/tests/data/onnx/` (written by its `gen.py` with the `onnx`
//! package): each model's f32 forward matches the logits numpy computed in float64 from the same weights.

use std::path::{Path, PathBuf};

use ndarray::Array2;
use tickq_host::checkpoint::{load_checkpoint, save_checkpoint};
use tickq_host::model::{Architecture, LayerSpec, Padding};
use tickq_host::onnx::{InputShape, OnnxImport, import_onnx};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/onnx")
        .join(name)
}

/// The inputs (in the graph's layout, one row per sample) and the float64 reference logits of `MODEL.json`.
struct Reference {
    input: String,
    shape: Vec<usize>,
    inputs: Vec<Vec<f32>>,
    logits: Vec<Vec<f64>>,
}

fn reference(model: &str) -> Reference {
    let text = std::fs::read_to_string(data(&format!("{model}.json"))).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rows = |key: &str| -> Vec<Vec<f64>> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect()
            })
            .collect()
    };
    Reference {
        input: v["input"].as_str().unwrap().to_string(),
        shape: v["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect(),
        inputs: rows("inputs")
            .into_iter()
            .map(|r| r.into_iter().map(|x| x as f32).collect())
            .collect(),
        logits: rows("logits"),
    }
}

/// The model's input rows: each sample converted from the graph's layout by the import's own layout.
fn model_rows(import: &OnnxImport, samples: &[Vec<f32>], transpose: bool) -> Array2<f32> {
    let width = import.model.input_len();
    let mut x = Array2::<f32>::zeros((samples.len(), width));
    for (mut row, sample) in x.rows_mut().into_iter().zip(samples) {
        let row = row.as_slice_mut().unwrap();
        if transpose {
            import.input.layout.to_model_row(sample, row);
        } else {
            row.copy_from_slice(sample);
        }
    }
    x
}

/// The largest error relative to the reference, `|got - want| / max(|want|, 1)`.
fn max_relative_error(got: &Array2<f32>, want: &[Vec<f64>]) -> f64 {
    let mut worst = 0.0f64;
    for (g, w) in got.rows().into_iter().zip(want) {
        assert_eq!(g.len(), w.len());
        for (&g, &w) in g.iter().zip(w) {
            worst = worst.max((f64::from(g) - w).abs() / w.abs().max(1.0));
        }
    }
    worst
}

#[test]
fn mlp_matches_the_float64_reference() {
    let import = import_onnx(&data("mlp.onnx")).unwrap();
    let want = reference("mlp");
    assert_eq!(import.input.name, want.input);
    assert_eq!(import.input.layout, InputShape::Vector { features: 32 });
    assert_eq!(import.input.batch, None);
    assert_eq!(import.output, "logits");
    assert_eq!(import.opset, 13);
    assert_eq!(import.producer, "tickq-gen");
    let arch = import.architecture();
    assert_eq!(arch.name, "mlp");
    assert_eq!((arch.input.time_steps, arch.input.features), (1, 32));
    assert_eq!(arch.classes, 3);
    let kinds: Vec<&str> = arch.layers.iter().map(LayerSpec::kind).collect();
    assert_eq!(kinds, ["dense", "relu", "dense", "relu6", "dense"]);
    // The MatMul's weight has no module name (`onnx::MatMul_21`), so every layer keeps tickq's default names.
    assert_eq!(import.model.state_dict()[2].0, "fc2.weight");
    assert_eq!(import.model.state_dict()[2].1, [32, 64]);
    let x = model_rows(&import, &want.inputs, true);
    let err = max_relative_error(&import.model.forward(x.view()), &want.logits);
    eprintln!("mlp: max relative error against the float64 reference {err:.3e}");
    assert!(err <= 1e-4, "max relative error {err}");
}

#[test]
fn conv_matches_the_float64_reference_once_transposed() {
    let import = import_onnx(&data("conv.onnx")).unwrap();
    let want = reference("conv");
    assert_eq!(want.shape, [6, 8, 64]);
    assert_eq!(
        import.input.layout,
        InputShape::ChannelsFirst {
            channels: 8,
            time: 64
        }
    );
    let arch = import.architecture();
    assert_eq!((arch.input.time_steps, arch.input.features), (64, 8));
    assert_eq!(
        arch.layers[3],
        LayerSpec::Conv1d {
            name: Some("conv2".to_string()),
            out: 16,
            kernel: 3,
            stride: 1,
            dilation: 2,
            padding: Padding::Causal,
        }
    );
    assert_eq!(
        arch.layers[2],
        LayerSpec::MaxPool1d {
            kernel: 2,
            stride: None
        }
    );
    assert_eq!(arch.layers[5], LayerSpec::GlobalAvgPool);
    assert_eq!(arch.layers.len(), 7, "{:?}", arch.layers);
    assert_eq!(import.model.state_dict()[4].0, "fc.weight");
    let x = model_rows(&import, &want.inputs, true);
    let logits = import.model.forward(x.view());
    let err = max_relative_error(&logits, &want.logits);
    assert!(err <= 1e-4, "max relative error {err}");
    // Channels-first values fed as they are give other logits: the transposition is the caller's to do.
    let untransposed = import
        .model
        .forward(model_rows(&import, &want.inputs, false).view());
    let wrong = max_relative_error(&untransposed, &want.logits);
    eprintln!(
        "conv: max relative error {err:.3e} transposed, {wrong:.3e} fed channels-first as is"
    );
    assert!(wrong > 1e-2, "untransposed error {wrong}");
}

#[test]
fn an_import_saves_as_a_checkpoint_and_writes_its_architecture() {
    let import = import_onnx(&data("conv.onnx")).unwrap();
    let dir = std::env::temp_dir().join(format!("tickq-onnx-ckpt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    save_checkpoint(&dir, &import.model, None).unwrap();
    let (back, _) = load_checkpoint(&dir).unwrap();
    assert_eq!(back, import.model);
    let arch_path = dir.join("written.toml");
    import.write_architecture(&arch_path).unwrap();
    assert_eq!(
        &Architecture::load(&arch_path).unwrap(),
        import.architecture()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn errors_name_the_file() {
    let missing = data("missing.onnx");
    let msg = import_onnx(&missing).unwrap_err().to_string();
    assert!(msg.starts_with(&missing.display().to_string()), "{msg}");
    let not_onnx = data("gen.py");
    let msg = import_onnx(&not_onnx).unwrap_err().to_string();
    assert_eq!(
        msg,
        format!("{}: not an ONNX model file", not_onnx.display())
    );
}
