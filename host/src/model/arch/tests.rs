//! Tests of `arch`.

use super::*;

const MLP: &str = r#"
name = "mlp"
classes = 3
[input]
time_steps = 1
features = 24
[[layers]]
type = "dense"
out = 64
[[layers]]
type = "relu"
[[layers]]
type = "dense"
out = 3
"#;

fn conv_arch(extra: &str) -> String {
    format!(
        r#"
name = "conv"
classes = 3
[input]
time_steps = 64
features = 8
[[layers]]
type = "conv1d"
out = 16
kernel = 5
[[layers]]
type = "relu"
[[layers]]
type = "conv1d"
out = 16
kernel = 5
stride = 2
padding = "causal"
{extra}
[[layers]]
type = "global_avg_pool"
[[layers]]
type = "dense"
out = 3
"#
    )
}

fn invalid_reason(text: &str) -> (Option<usize>, String) {
    match Architecture::from_toml_str(text) {
        Err(ModelError::InvalidArch { layer, reason, .. }) => (layer.map(|l| l.0), reason),
        other => panic!("expected InvalidArch, got {other:?}"),
    }
}

#[test]
fn parses_mlp_with_default_names_and_shapes() {
    let arch = Architecture::from_toml_str(MLP).unwrap();
    assert_eq!(arch.param_name(0).as_deref(), Some("fc1"));
    assert_eq!(arch.param_name(1), None);
    assert_eq!(arch.param_name(2).as_deref(), Some("fc2"));
    assert_eq!(
        arch.shapes().unwrap(),
        vec![Shape::Flat(64), Shape::Flat(64), Shape::Flat(3)]
    );
    assert_eq!(arch.input_shape(), Shape::Flat(24));
}

#[test]
fn conv_shape_chain_follows_pytorch_formulas() {
    let arch = Architecture::from_toml_str(&conv_arch("")).unwrap();
    let shapes = arch.shapes().unwrap();
    // Valid: 64 - 4 = 60; causal with stride 2: (60 - 1) / 2 + 1 = 30.
    assert_eq!(
        shapes[0],
        Shape::Seq {
            channels: 16,
            time: 60
        }
    );
    assert_eq!(
        shapes[2],
        Shape::Seq {
            channels: 16,
            time: 30
        }
    );
    assert_eq!(shapes[3], Shape::Flat(16));
    assert_eq!(arch.param_name(2).as_deref(), Some("conv2"));
    assert_eq!(arch.param_name(4).as_deref(), Some("fc1"));
}

#[test]
fn pools_and_flatten_shapes() {
    let text = r#"
name = "p"
classes = 2
[input]
time_steps = 10
features = 3
[[layers]]
type = "maxpool1d"
kernel = 2
[[layers]]
type = "avgpool1d"
kernel = 3
stride = 1
[[layers]]
type = "flatten"
[[layers]]
type = "dense"
out = 2
"#;
    let arch = Architecture::from_toml_str(text).unwrap();
    assert_eq!(
        arch.shapes().unwrap(),
        vec![
            Shape::Seq {
                channels: 3,
                time: 5
            },
            Shape::Seq {
                channels: 3,
                time: 3
            },
            Shape::Flat(9),
            Shape::Flat(2)
        ]
    );
}

#[test]
fn toml_and_json_round_trip() {
    let arch = Architecture::from_toml_str(&conv_arch(
        "[[layers]]\ntype = \"clamp\"\nmin = -1.5\nmax = 2",
    ))
    .unwrap();
    let toml_text = arch.to_toml_string().unwrap();
    assert_eq!(Architecture::from_toml_str(&toml_text).unwrap(), arch);
    let json_text = arch.to_json_string().unwrap();
    assert_eq!(Architecture::from_json_str(&json_text).unwrap(), arch);
    assert!(toml_text.contains("padding = \"causal\""));
}

#[test]
fn load_picks_the_format_by_extension_and_names_the_file() {
    let dir = std::env::temp_dir().join(format!("tickq-arch-{}", std::process::id()));
    let arch = Architecture::from_toml_str(MLP).unwrap();
    let json = dir.join("a.json");
    crate::fsutil::write_atomic(&json, arch.to_json_string().unwrap().as_bytes()).unwrap();
    assert_eq!(Architecture::load(&json).unwrap(), arch);
    let bad = dir.join("bad.toml");
    crate::fsutil::write_atomic(&bad, MLP.replace("out = 3", "out = 4").as_bytes()).unwrap();
    let msg = Architecture::load(&bad).unwrap_err().to_string();
    assert!(
        msg.contains("bad.toml") && msg.contains("layer 2 (dense \"fc2\")"),
        "{msg}"
    );
    assert!(
        msg.contains("4 values") && msg.contains("3 classes"),
        "{msg}"
    );
    let missing = Architecture::load(&dir.join("nope.toml")).unwrap_err();
    assert!(matches!(missing, ModelError::Io { .. }));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rejects_dense_on_sequence() {
    let text = conv_arch("").replace("type = \"global_avg_pool\"", "type = \"relu\"");
    let (layer, reason) = invalid_reason(&text);
    assert_eq!(layer, Some(4));
    assert!(reason.contains("flatten"), "{reason}");
}

#[test]
fn rejects_conv_on_vector() {
    let text = MLP.replace("type = \"relu\"", "type = \"conv1d\"\nout = 4\nkernel = 2");
    let (layer, reason) = invalid_reason(&text);
    assert_eq!(layer, Some(1));
    assert!(reason.contains("sequence"), "{reason}");
}

#[test]
fn rejects_too_short_window() {
    let text = conv_arch("").replace("time_steps = 64", "time_steps = 4");
    let (layer, reason) = invalid_reason(&text);
    assert_eq!(layer, Some(0));
    assert!(reason.contains("window too short"), "{reason}");
}

#[test]
fn rejects_sequence_output_and_bad_sizes() {
    let text = conv_arch("").replace(
        "[[layers]]\ntype = \"global_avg_pool\"\n[[layers]]\ntype = \"dense\"\nout = 3\n",
        "",
    );
    let (layer, reason) = invalid_reason(&text);
    assert_eq!(layer, Some(2));
    assert!(reason.contains("sequence"), "{reason}");
    let (layer, _) = invalid_reason(&MLP.replace("out = 64", "out = 0"));
    assert_eq!(layer, Some(0));
    let (layer, reason) = invalid_reason(&MLP.replace("classes = 3", "classes = 1"));
    assert_eq!(layer, None);
    assert!(reason.contains("classes"));
    let (layer, _) = invalid_reason(&MLP.replace("features = 24", "features = 0"));
    assert_eq!(layer, None);
}

#[test]
fn rejects_bad_and_duplicate_names() {
    let dup = MLP.replace("out = 64", "out = 64\nname = \"fc2\"");
    let (layer, reason) = invalid_reason(&dup);
    assert_eq!(layer, Some(2));
    assert!(reason.contains("already used by layer 0"), "{reason}");
    let (_, reason) = invalid_reason(&MLP.replace("out = 64", "out = 64\nname = \"a b\""));
    assert!(reason.contains("name"), "{reason}");
    // Dotted names (nn.Sequential inside a module) are allowed.
    Architecture::from_toml_str(&MLP.replace("out = 64", "out = 64\nname = \"net.0\"")).unwrap();
}

#[test]
fn rejects_bad_clamp() {
    let text = MLP.replace("type = \"relu\"", "type = \"clamp\"\nmin = 1\nmax = 1");
    let (layer, reason) = invalid_reason(&text);
    assert_eq!(layer, Some(1));
    assert!(reason.contains("min < max"), "{reason}");
}

#[test]
fn parse_errors_name_the_problem() {
    for (text, needle) in [
        (MLP.replace("\"relu\"", "\"rleu\""), "rleu"),
        (MLP.replace("out = 64", "out = 64\nkernel = 3"), "kernel"),
        (
            MLP.replace("type = \"relu\"", "type = \"relu\"\nout = 2"),
            "out",
        ),
        (MLP.replace("out = 64", "out = -1"), "-1"),
        (MLP.replace("out = 64", "oot = 64"), "oot"),
        (MLP.replace("out = 64\n", ""), "needs field `out`"),
    ] {
        match Architecture::from_toml_str(&text) {
            Err(ModelError::Parse { message, .. }) => {
                assert!(message.contains(needle), "{needle}: {message}")
            }
            other => panic!("{needle}: expected a parse error, got {other:?}"),
        }
    }
}

/// An MLP `features -> hidden... -> 3` with ReLU between the dense layers.
fn mlp(features: usize, hidden: &[usize]) -> String {
    let mut text =
        format!("name = \"big\"\nclasses = 3\n[input]\ntime_steps = 1\nfeatures = {features}\n");
    for h in hidden {
        text.push_str(&format!(
            "[[layers]]\ntype = \"dense\"\nout = {h}\n[[layers]]\ntype = \"relu\"\n"
        ));
    }
    text.push_str("[[layers]]\ntype = \"dense\"\nout = 3\n");
    text
}

fn message(text: &str) -> String {
    Architecture::from_toml_str(text).unwrap_err().to_string()
}

#[test]
fn units_above_the_format_limit_are_refused_before_anything_is_allocated() {
    assert_eq!(
        message(&mlp(29, &[4_000_000])),
        "layer 0 (dense \"fc1\"): out 4000000 is above 65535, the most the blob format's 16-bit out field holds"
    );
    let conv = conv_arch("").replace(
        "kernel = 5\n[[layers]]\ntype = \"relu\"",
        "kernel = 70000\n[[layers]]\ntype = \"relu\"",
    );
    assert!(
        message(&conv).contains("kernel 70000 is above 65535"),
        "{}",
        message(&conv)
    );
    let wide_input = MLP.replace("features = 24", "features = 70000");
    assert_eq!(
        message(&wide_input),
        "architecture: input features 70000 is above 65535, the most the blob format's 16-bit size fields hold"
    );
    // A flatten of 300 channels x 300 steps makes 90000 values: more than one 16-bit field holds.
    let flat = "name = \"f\"\nclasses = 3\n[input]\ntime_steps = 300\nfeatures = 300\n\
                [[layers]]\ntype = \"flatten\"\n[[layers]]\ntype = \"dense\"\nout = 3\n";
    let (layer, reason) = invalid_reason(flat);
    assert_eq!(layer, Some(0));
    assert!(reason.contains("90000 values, above 65535"), "{reason}");
}

#[test]
fn parameters_are_limited_per_layer_and_in_all() {
    // 29 -> 60000 -> 60000 -> 3: 3.6 billion weights in the middle layer.
    assert_eq!(
        message(&mlp(29, &[60_000, 60_000])),
        "layer 2 (dense \"fc2\"): 3600060000 parameters (60000 x 60000 weights + 60000 biases), above 16777216, the most a layer may have"
    );
    // Three layers of 4000 x 4000 fit one by one (16 M each) but not together (48 M).
    let text = mlp(4000, &[4000, 4000, 4000]);
    assert!(
        message(&text).starts_with("architecture: 48024003 parameters in all, above 33554432"),
        "{}",
        message(&text)
    );
    let arch = Architecture::from_toml_str(&mlp(29, &[128, 128])).unwrap();
    assert_eq!(
        arch.layer_parameters().unwrap(),
        vec![3840, 0, 16512, 0, 387]
    );
}

#[test]
fn fan_in_is_limited_by_the_accumulator_bound() {
    let text = "name = \"c\"\nclasses = 3\n[input]\ntime_steps = 64\nfeatures = 2000\n\
                [[layers]]\ntype = \"conv1d\"\nout = 2\nkernel = 40\n\
                [[layers]]\ntype = \"global_avg_pool\"\n[[layers]]\ntype = \"dense\"\nout = 3\n";
    let (layer, reason) = invalid_reason(text);
    assert_eq!(layer, Some(0));
    assert!(
        reason
            .starts_with("each output reads 2000 channels x kernel 40 = 80000 inputs, above 65535"),
        "{reason}"
    );
}

#[test]
fn the_blob_layer_count_is_checked_before_training() {
    // 100 hidden layers with ReLU: 201 layers, 102 blob layers (the input quantizer, 101 dense with fused ReLU).
    let text = mlp(29, &[8; 100]);
    assert_eq!(
        message(&text),
        "architecture: its 201 layers make 102 blob layers (the input quantizer counts as one; a relu, relu6 or clamp right after dense or conv1d is fused into it), above 32, the most a tickq-core blob holds"
    );
    // 31 dense layers (ReLUs fused) make 32 blob layers: the most that fits.
    let arch = Architecture::from_toml_str(&mlp(29, &[8; 30])).unwrap();
    assert_eq!(arch.blob_layers().unwrap(), 32);
    assert!(Architecture::from_toml_str(&mlp(29, &[8; 31])).is_err());
    // A relu after a relu is a table of its own; a flatten of a vector is nothing.
    let text = MLP.replace(
        "type = \"relu\"",
        "type = \"relu\"\n[[layers]]\ntype = \"relu\"\n[[layers]]\ntype = \"flatten\"",
    );
    assert_eq!(
        Architecture::from_toml_str(&text)
            .unwrap()
            .blob_layers()
            .unwrap(),
        4
    );
    let conv = Architecture::from_toml_str(&conv_arch("")).unwrap();
    assert_eq!(conv.blob_layers().unwrap(), 5);
}

#[test]
fn classes_and_names_are_limited() {
    let many = MLP
        .replace("classes = 3", "classes = 300")
        .replace("out = 3\n", "out = 300\n");
    assert_eq!(
        message(&many),
        "architecture: classes must be from 2 to 256 (the most tickq-core predicts), got 300"
    );
    let long = MLP.replace(
        "name = \"mlp\"",
        &format!("name = \"{}\"", "m".repeat(10_000_000)),
    );
    let msg = message(&long);
    assert!(
        msg.len() < 300,
        "the message echoes the whole name: {} bytes",
        msg.len()
    );
    assert!(
        msg.contains(
            "… (10000000 bytes)\" is 10000000 bytes long, above 128, the most a model name may have"
        ),
        "{msg}"
    );
    let nul = MLP.replace("name = \"mlp\"", "name = \"a\\u0000b\"");
    assert_eq!(
        message(&nul),
        "architecture: name \"a\\0b\" has a control character; use printable characters"
    );
    let layer = MLP.replace(
        "out = 64",
        &format!("out = 64\nname = \"{}\"", "l".repeat(200)),
    );
    let (index, reason) = invalid_reason(&layer);
    assert_eq!(index, Some(0));
    assert!(
        reason.contains("is 200 bytes long, above 128, the most a layer name may have"),
        "{reason}"
    );
    let bad = MLP.replace("out = 64", "out = 64\nname = \"a\\u0000b\"");
    assert!(
        message(&bad).contains("(dense \"a\\0b\")"),
        "{}",
        message(&bad)
    );
}

#[test]
fn a_huge_or_endless_architecture_file_is_refused_quickly() {
    let dir = std::env::temp_dir().join(format!("tickq-arch-big-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let big = dir.join("big.toml");
    std::fs::write(&big, format!("{MLP}\n#{}", "x".repeat(2 << 20))).unwrap();
    let msg = Architecture::load(&big).unwrap_err().to_string();
    assert!(
        msg.contains("big.toml") && msg.contains("larger than 1048576 bytes"),
        "{msg}"
    );
    #[cfg(target_os = "linux")]
    {
        let msg = Architecture::load(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("/dev/zero") && msg.contains("larger than"),
            "{msg}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_bundled_shapes_fit_every_limit() {
    for (name, text) in crate::shapes::ALL {
        let arch = Architecture::from_toml_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(arch.blob_layers().unwrap() <= MAX_BLOB_LAYERS, "{name}");
    }
}
