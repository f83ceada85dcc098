//! The `tickq` command end to end, on a small slice of the bundled ticks:
//! every subcommand, the files it writes, and its errors.

use std::path::Path;

mod common;

use common::{
    REPORT_KEYS, TINY_ARCH, fails, fixtures, json, ok, ok_stderr, refused, s, scratch, tickq,
    train_args, train_tiny,
};

/// `tickq eval --device cpu` and `--device gpu` give the same int8 results and each says, in one stderr line,
/// where it ran; without an adapter `--device gpu` is a clear error (and CI, which needs one, fails).
fn eval_devices_agree(csv: &Path, ckpt: &Path, blob: &Path, dir: &Path) {
    let run = |device: &str| {
        let out_dir = dir.join(format!("report-{device}"));
        let args = [
            "eval",
            s(ckpt),
            "--blob",
            s(blob),
            "--data",
            s(csv),
            "--out",
            s(&out_dir),
            "--latency-calls",
            "1000",
            "--device",
            device,
        ];
        (tickq(&args), out_dir)
    };
    let (cpu, cpu_dir) = run("cpu");
    assert!(
        cpu.status.success(),
        "{}",
        String::from_utf8_lossy(&cpu.stderr)
    );
    let stderr = String::from_utf8_lossy(&cpu.stderr);
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("device: ")).count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("device: CPU (--device cpu)"), "{stderr}");
    let (gpu, gpu_dir) = run("gpu");
    let stderr = String::from_utf8_lossy(&gpu.stderr);
    if tickq_gpu::testing::context_or_skip("eval_devices_agree").is_none() {
        assert!(
            !gpu.status.success() && stderr.contains("--device gpu"),
            "{stderr}"
        );
        return;
    }
    assert!(gpu.status.success(), "{stderr}");
    assert!(stderr.contains("device: GPU "), "{stderr}");
    assert!(
        stderr.contains("GPU memory: ") && stderr.contains("KiB held"),
        "{stderr}"
    );
    let (c, g) = (
        json(&cpu_dir.join("report.json")),
        json(&gpu_dir.join("report.json")),
    );
    for key in [
        "/int8/accuracy",
        "/int8/agreement",
        "/int8/metrics",
        "/int8/macro_f1",
    ] {
        assert_eq!(
            c.pointer(key),
            g.pointer(key),
            "{key} differs between CPU and GPU"
        );
    }
}

#[test]
fn train_quantize_eval_inspect_bench() {
    let (csv, arch) = fixtures();
    let dir = scratch("flow");
    let ckpt = dir.join("ckpt");
    let blob = dir.join("model.blob");
    let report = dir.join("report");
    let log = tickq(&[train_args(arch, &ckpt), vec!["--epochs", "3"]].concat());
    assert!(
        log.status.success(),
        "{}",
        String::from_utf8_lossy(&log.stderr)
    );
    let progress = String::from_utf8_lossy(&log.stderr);
    assert!(
        progress.contains("epoch   1:") && progress.contains("val loss"),
        "{progress}"
    );
    for f in ["model.safetensors", "arch.toml", "preprocess.json"] {
        assert!(ckpt.join(f).is_file(), "{f} missing");
    }
    ok(&[
        "quantize",
        s(&ckpt),
        "--data",
        s(csv),
        "--out",
        s(&blob),
        "--observer",
        "minmax",
    ]);
    assert!(blob.is_file() && dir.join("model.quant.json").is_file());
    ok(&[
        "eval",
        s(&ckpt),
        "--blob",
        s(&blob),
        "--data",
        s(csv),
        "--out",
        s(&report),
        "--latency-calls",
        "100000",
    ]);
    let r = json(&report.join("report.json"));
    for key in REPORT_KEYS {
        assert!(
            r.pointer(key).is_some_and(serde_json::Value::is_number),
            "report.json lacks {key}"
        );
    }
    assert_eq!(r["latency_ns"]["calls"], 100_000);
    assert_eq!(
        r["int8"]["blob_bytes"].as_u64().unwrap(),
        std::fs::metadata(&blob).unwrap().len()
    );
    assert_eq!(r["quantization"]["observer"], "min-max");
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(md.contains("Confusion matrix") && md.contains("majority-class baseline"));
    eval_devices_agree(csv, &ckpt, &blob, &dir);

    let text = ok(&["inspect", s(&blob)]);
    assert!(text.contains("Dense") && text.contains("arena"), "{text}");
    // The backend this machine runs, and each layer's weight format.
    let detected = tickq_core::Backend::detect().name();
    assert!(
        text.contains(&format!("backend      {detected} on this machine")),
        "{text}"
    );
    assert!(
        text.contains("dense-dot") || text.contains("columns"),
        "{text}"
    );
    let info: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", s(&blob), "--json"])).unwrap();
    assert_eq!(info["classes"], 3);
    assert_eq!(info["arena_bytes"], r["int8"]["arena_bytes"]);
    assert_eq!(info["feature_names"].as_array().unwrap().len(), 29);
    assert_eq!(
        info["layers"].as_array().unwrap().len(),
        3,
        "quantize + 2 dense (relu fused)"
    );

    let bench = ok(&[
        "bench",
        s(&blob),
        "--calls",
        "20000",
        "--data",
        s(csv),
        "--json",
    ]);
    let b: serde_json::Value = serde_json::from_str(&bench).unwrap();
    assert_eq!(b["calls"], 20_000);
    assert!(b["p50"].as_f64().unwrap() > 0.0);
    assert_eq!(b["backend"], detected);
    // Every backend this machine has can be pinned, and says so; one it lacks is refused by name.
    for backend in tickq_core::Backend::available() {
        let text = ok(&[
            "bench",
            s(&blob),
            "--calls",
            "2000",
            "--backend",
            backend.name(),
        ]);
        assert!(
            text.contains(&format!("on the {backend} backend")),
            "{text}"
        );
    }
    let err = fails(&["bench", s(&blob), "--backend", "avx9"]);
    assert!(err.contains("unknown backend"), "{err}");
    if let Some(missing) = tickq_core::Backend::ALL
        .into_iter()
        .find(|b| !b.is_available())
    {
        let err = fails(&[
            "bench",
            s(&blob),
            "--calls",
            "10",
            "--backend",
            missing.name(),
        ]);
        assert!(err.contains(missing.name()), "{err}");
    }
}

#[test]
fn resumed_training_equals_an_uninterrupted_run() {
    let (csv, arch) = fixtures();
    let dir = scratch("resume");
    let straight = dir.join("straight");
    let resumed = dir.join("resumed");
    let common = ["--arch", s(arch), "--data", s(csv), "--patience", "100"];
    let mut a = vec!["train", "--out", s(&straight), "--epochs", "4"];
    a.extend(common);
    ok(&a);
    let mut b = vec!["train", "--out", s(&resumed), "--epochs", "2"];
    b.extend(common);
    ok(&b);
    let mut c = vec!["train", "--out", s(&resumed), "--epochs", "4", "--resume"];
    c.extend(common);
    ok(&c);
    assert_eq!(
        std::fs::read(straight.join("model.safetensors")).unwrap(),
        std::fs::read(resumed.join("model.safetensors")).unwrap()
    );
}

#[test]
fn imported_weights_export_the_same_blob() {
    let (csv, arch) = fixtures();
    let dir = scratch("import");
    let ckpt = dir.join("ckpt");
    train_checkpoint(&ckpt, 1);
    let imported = dir.join("imported");
    ok(&[
        "import",
        "--weights",
        s(&ckpt.join("model.safetensors")),
        "--arch",
        s(arch),
        "--preprocess",
        s(&ckpt.join("preprocess.json")),
        "--out",
        s(&imported),
    ]);
    let a = dir.join("a.blob");
    let b = dir.join("b.blob");
    ok(&["quantize", s(&ckpt), "--data", s(csv), "--out", s(&a)]);
    ok(&["quantize", s(&imported), "--data", s(csv), "--out", s(&b)]);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn bad_inputs_give_clear_errors() {
    let (csv, arch) = fixtures();
    let dir = scratch("errors");
    let bad = dir.join("bad.csv");
    std::fs::write(
        &bad,
        "DateTime,Price,Volume\n2013-09-01 17:00:00.083,1640.25,8\n2013-09-01 17:00:00.084,abc,1\n",
    )
    .unwrap();
    let err = fails(&[
        "train",
        "--arch",
        s(arch),
        "--data",
        s(&bad),
        "--out",
        s(&dir.join("x")),
    ]);
    assert!(
        err.contains("bad.csv") && err.contains("line 3") && err.contains("Price"),
        "{err}"
    );

    let ckpt = dir.join("ckpt");
    train_checkpoint(&ckpt, 1);
    let err = fails(&[
        "quantize",
        s(&ckpt),
        "--data",
        s(csv),
        "--out",
        s(&dir.join("m.blob")),
        "--dtype",
        "float16",
    ]);
    assert!(err.contains("float16") && err.contains("qint8"), "{err}");
    let err = fails(&[
        "quantize",
        s(&ckpt),
        "--data",
        s(csv),
        "--out",
        s(&dir.join("m.blob")),
        "--backend",
        "tpu",
    ]);
    assert!(err.contains("tpu"), "{err}");

    let blob = dir.join("m.blob");
    ok(&["quantize", s(&ckpt), "--data", s(csv), "--out", s(&blob)]);
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[200] ^= 0x40;
    let corrupt = dir.join("corrupt.blob");
    std::fs::write(&corrupt, &bytes).unwrap();
    let err = fails(&["inspect", s(&corrupt)]);
    assert!(err.contains("corrupt.blob") && err.contains("CRC"), "{err}");
    let err = fails(&["bench", s(&dir.join("missing.blob"))]);
    assert!(err.contains("missing.blob"), "{err}");

    let wrong = dir.join("wrong.toml");
    std::fs::write(&wrong, TINY_ARCH.replace("features = 29", "features = 7")).unwrap();
    let err = fails(&train_args(&wrong, &dir.join("y")));
    assert!(err.contains("7 features") && err.contains("29"), "{err}");
}

#[test]
fn every_command_has_help() {
    for cmd in [
        "demo", "train", "quantize", "eval", "import", "inspect", "bench", "prune", "stats",
    ] {
        let out = ok(&[cmd, "--help"]);
        assert!(out.contains("Usage"), "{cmd} --help: {out}");
    }
}

/// Trains the fixture architecture on the fixture data into `ckpt` for `epochs` epochs.
fn train_checkpoint(ckpt: &Path, epochs: u32) {
    train_tiny(ckpt, &["--epochs", &epochs.to_string()]);
}

/// Runs `tickq stats PATH --json`.
fn stats(path: &Path) -> serde_json::Value {
    serde_json::from_str(&ok(&["stats", s(path), "--json"])).unwrap()
}

#[test]
fn prune_with_every_method_then_stats() {
    let (csv, _) = fixtures();
    let dir = scratch("prune");
    let ckpt = dir.join("ckpt");
    train_checkpoint(&ckpt, 2);
    let prune = |out: &Path, extra: &[&str]| {
        let mut args = vec!["prune", s(&ckpt), "--data", s(csv), "--out", s(out)];
        args.extend(extra);
        ok(&args)
    };

    // Unstructured on named layers: masks are kept, and stats count them.
    let p = dir.join("unstructured");
    let text = prune(
        &p,
        &[
            "--method",
            "unstructured",
            "--amount",
            "0.5",
            "--layers",
            "fc1,fc2",
        ],
    );
    assert!(
        text.contains("before pruning") && text.contains("step 1/1") && text.contains("test acc"),
        "{text}"
    );
    assert!(
        text.contains("sparsity") && text.contains("(with masks)"),
        "{text}"
    );
    let st = stats(&p);
    assert_eq!(st["layers"][0]["sparsity"], 50.0);
    assert_eq!(st["layers"][0]["masked"], true);
    assert_eq!(st["layers"][1]["zero_parameters"], 24);
    assert_eq!(st["total_parameters"], 29 * 16 + 16 * 3);
    assert_eq!(st["zero_parameters"], 29 * 8 + 24);
    let (tensors, _) =
        tickq_host::checkpoint::read_safetensors(&p.join("model.safetensors")).unwrap();
    let names: Vec<&str> = tensors.iter().map(|t| t.0.as_str()).collect();
    for name in [
        "fc1.weight_orig",
        "fc1.weight_mask",
        "fc2.weight_orig",
        "fc2.weight_mask",
    ] {
        assert!(names.contains(&name), "{names:?}");
    }
    assert!(p.join("preprocess.json").is_file());

    // The pruned checkpoint quantizes, and the blob keeps the zeros (a weight may also round to an int8 zero),
    // counted by tickq-core whichever weight format the exporter picks.
    let blob = dir.join("pruned.blob");
    ok(&["quantize", s(&p), "--data", s(csv), "--out", s(&blob)]);
    let bs = stats(&blob);
    assert_eq!(bs["layers"].as_array().unwrap().len(), 2);
    assert!(
        bs["layers"][0]["zero_parameters"].as_u64().unwrap() >= 29 * 8,
        "{bs}"
    );
    assert!(
        bs["layers"][1]["zero_parameters"].as_u64().unwrap() >= 24,
        "{bs}"
    );
    assert_eq!(bs["total_parameters"], st["total_parameters"]);
    assert!(bs["layers"][0]["encoding"].is_string(), "{bs}");
    let text = ok(&["stats", s(&blob)]);
    assert!(text.contains("layer1") && text.contains("int8"), "{text}");

    // Global, gradually, with fine-tuning between the steps.
    let p = dir.join("global");
    let text = prune(
        &p,
        &[
            "--method",
            "global",
            "--amount",
            "0.8",
            "--schedule",
            "gradual",
            "--steps",
            "2",
            "--fine-tune-epochs",
            "1",
        ],
    );
    assert!(text.contains("step 2/2"), "{text}");
    let st = stats(&p);
    assert_eq!(
        st["zero_parameters"],
        (0.8f64 * (29 * 16 + 16 * 3) as f64).round() as u64
    );

    // Structured: fc1 loses a quarter of its neurons, and fc2 the matching inputs.
    let p = dir.join("structured");
    prune(
        &p,
        &["--method", "structured", "--amount", "0.25", "--norm", "2"],
    );
    let st = stats(&p);
    assert_eq!(st["layers"][0]["shape"], serde_json::json!([12, 29]));
    assert_eq!(st["layers"][1]["shape"], serde_json::json!([3, 12]));
    assert_eq!(st["parameters"], 12 * 29 + 12 + 3 * 12 + 3);
    assert_eq!(st["layers"][0]["masked"], false);
    let arch_toml = std::fs::read_to_string(p.join("arch.toml")).unwrap();
    assert!(arch_toml.contains("out = 12"), "{arch_toml}");
    ok(&[
        "quantize",
        s(&p),
        "--data",
        s(csv),
        "--out",
        s(&dir.join("s.blob")),
    ]);

    // N:M on fc2 (16 inputs), masks baked in.
    let p = dir.join("nm");
    let text = prune(
        &p,
        &[
            "--method", "nm", "--n", "1", "--m", "4", "--layers", "fc2", "--remove",
        ],
    );
    assert!(text.contains("step 1/1: sparsity 7.03 %"), "{text}");
    assert!(!text.contains("(with masks)"), "{text}");
    let st = stats(&p);
    assert_eq!(st["layers"][1]["sparsity"], 75.0);
    assert_eq!(st["layers"][1]["masked"], false);
    assert_eq!(st["layers"][0]["zero_parameters"], 0);

    // Bad arguments are errors that name the problem, not panics.
    let bad = |extra: &[&str]| {
        let mut args = vec![
            "prune",
            s(&ckpt),
            "--data",
            s(csv),
            "--out",
            "/nonexistent/x",
        ];
        args.extend(extra);
        fails(&args)
    };
    let e = bad(&[
        "--method",
        "unstructured",
        "--amount",
        "0.5",
        "--layers",
        "fc9",
    ]);
    assert!(e.contains("fc9") && e.contains("fc1, fc2"), "{e}");
    let e = bad(&["--method", "global", "--amount", "1.0"]);
    assert!(e.contains("[0, 1)"), "{e}");
    let e = bad(&["--method", "unstructured"]);
    assert!(e.contains("--amount"), "{e}");
    let e = bad(&["--method", "nm"]);
    assert!(e.contains("fc1") && e.contains("29 inputs"), "{e}");
    let e = bad(&["--method", "structured", "--amount", "0.5", "--dim", "2"]);
    assert!(
        e.contains("'2' for '--dim <DIM>'") && e.contains("a whole number from 0 to 1"),
        "{e}"
    );
    let e = bad(&[
        "--method",
        "structured",
        "--amount",
        "0.5",
        "--layers",
        "fc2",
    ]);
    assert!(e.contains("classes"), "{e}");
    let e = bad(&["--method", "nm", "--layers", "fc2", "--schedule", "gradual"]);
    assert!(e.contains("one-shot"), "{e}");
    let e = bad(&["--method", "structured", "--amount", "0.5", "--norm", "3"]);
    assert!(e.contains("norm"), "{e}");
    let e = fails(&["stats", s(&dir.join("missing.blob"))]);
    assert!(e.contains("missing.blob"), "{e}");
}

#[test]
fn weight_format_flag_picks_the_blob_encoding() {
    let (csv, _) = fixtures();
    let dir = scratch("weight-format");
    let ckpt = dir.join("ckpt");
    let pruned = dir.join("pruned");
    train_checkpoint(&ckpt, 1);
    ok(&[
        "prune",
        s(&ckpt),
        "--method",
        "global",
        "--amount",
        "0.9",
        "--data",
        s(csv),
        "--out",
        s(&pruned),
    ]);
    let mut sizes = Vec::new();
    for format in [
        "dense", "sparse", "auto", "columns", "packed", "smallest", "blocked",
    ] {
        let blob = dir.join(format!("{format}.blob"));
        ok(&[
            "quantize",
            s(&pruned),
            "--data",
            s(csv),
            "--out",
            s(&blob),
            "--weight-format",
            format,
            "--target",
            "x86-64",
        ]);
        let st = stats(&blob);
        let encodings: Vec<&str> = st["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["encoding"].as_str().unwrap())
            .collect();
        match format {
            // The dense layout of x86-64 targets.
            "dense" => assert!(encodings.iter().all(|e| *e == "dense-dot"), "{encodings:?}"),
            "sparse" | "columns" | "packed" | "blocked" => {
                assert!(encodings.iter().all(|e| *e == format), "{encodings:?}")
            }
            _ => {}
        }
        sizes.push(std::fs::metadata(&blob).unwrap().len());
    }
    assert!(
        sizes[1] < sizes[0],
        "a 90 % sparse blob must be smaller than dense: {sizes:?}"
    );
    assert!(
        sizes[2] <= sizes[0],
        "auto never picks a larger encoding: {sizes:?}"
    );
    assert!(
        sizes[5] <= *sizes[..5].iter().min().unwrap(),
        "smallest is never beaten: {sizes:?}"
    );
    let x_blob = dir.join("x.blob");
    let refused = |flag: &str, value: &str| {
        let out = s(&x_blob);
        fails(&[
            "quantize",
            s(&pruned),
            "--data",
            s(csv),
            "--out",
            out,
            flag,
            value,
        ])
    };
    let err = refused("--weight-format", "zip");
    assert!(err.contains("blocked, dense-dot"), "{err}");
    let err = refused("--target", "z80");
    assert!(
        err.contains("unknown target") && err.contains("x86-64-v4"),
        "{err}"
    );
    let err = refused("--weight-format", "nm");
    assert!(err.contains("multiple of 4"), "{err}");
}

#[test]
fn distill_compare_writes_a_comparison_and_keeps_masks() {
    let (csv, _) = fixtures();
    let dir = scratch("distill");
    let teacher = dir.join("teacher");
    train_checkpoint(&teacher, 3);
    let student_arch = dir.join("student.toml");
    std::fs::write(
        &student_arch,
        TINY_ARCH
            .replace("out = 16", "out = 4")
            .replace("\"tiny\"", "\"tiny-student\""),
    )
    .unwrap();
    let kd = dir.join("kd");
    let distill = |student: &Path, out: &Path, extra: &[&str]| {
        let mut args = vec![
            "distill",
            "--teacher",
            s(&teacher),
            "--student",
            s(student),
            "--out",
            s(out),
            "--data",
            s(csv),
        ];
        args.extend(extra);
        args.iter().map(|a| a.to_string()).collect::<Vec<_>>()
    };
    let args = distill(
        &student_arch,
        &kd,
        &[
            "--epochs",
            "2",
            "--seed",
            "3",
            "--temperature",
            "2",
            "--alpha",
            "0.5",
            "--compare",
        ],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let log = tickq(&args);
    let stderr = String::from_utf8_lossy(&log.stderr);
    assert!(log.status.success(), "{stderr}");
    assert!(
        stderr.contains("distilling `tiny`") && stderr.contains("epoch   1:"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&log.stdout);
    for row in ["teacher", "student alone", "student distilled", "macro-F1"] {
        assert!(stdout.contains(row), "{stdout}");
    }
    for f in ["model.safetensors", "arch.toml", "preprocess.json"] {
        assert!(kd.join(f).is_file(), "{f} missing");
    }
    assert_eq!(
        json(&kd.join("preprocess.json")),
        json(&teacher.join("preprocess.json"))
    );
    let cmp = json(&kd.join("distill-comparison.json"));
    assert_eq!(cmp["temperature"], 2.0);
    assert_eq!(cmp["alpha"], 0.5);
    assert_eq!(cmp["train"]["seed"], 3);
    assert_eq!(cmp["teacher"]["parameters"], 29 * 16 + 16 + 16 * 3 + 3);
    for key in ["student_alone", "student_distilled"] {
        assert_eq!(cmp[key]["model"], "tiny-student");
        assert_eq!(cmp[key]["parameters"], 29 * 4 + 4 + 4 * 3 + 3);
        let runs = cmp[key]["epochs_run"].as_u64().unwrap();
        assert!((1..=2).contains(&runs), "{cmp}");
    }
    for key in ["teacher", "student_alone", "student_distilled"] {
        for metric in ["accuracy", "macro_f1"] {
            let v = cmp[key][metric].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{key} {metric} {v}");
        }
    }
    assert!(cmp["test_samples"].as_u64().unwrap() > 100);

    // The same command gives the same student, bit for bit.
    let again = dir.join("kd-again");
    let args2 = distill(
        &student_arch,
        &again,
        &[
            "--epochs",
            "2",
            "--seed",
            "3",
            "--temperature",
            "2",
            "--alpha",
            "0.5",
        ],
    );
    ok(&args2.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        std::fs::read(kd.join("model.safetensors")).unwrap(),
        std::fs::read(again.join("model.safetensors")).unwrap()
    );

    // A pruned checkpoint as the student keeps its masks and zeros through distillation.
    let pruned = dir.join("pruned");
    ok(&[
        "prune",
        s(&kd),
        "--data",
        s(csv),
        "--method",
        "unstructured",
        "--amount",
        "0.5",
        "--out",
        s(&pruned),
    ]);
    let pruned_kd = dir.join("pruned-kd");
    let args3 = distill(&pruned, &pruned_kd, &["--epochs", "1"]);
    let text = ok(&args3.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(text.contains("wrote checkpoint"), "{text}");
    let st = stats(&pruned_kd);
    assert_eq!(st["layers"][0]["masked"], true);
    assert_eq!(st["layers"][0]["sparsity"], 50.0);
    assert_eq!(st["zero_parameters"], stats(&pruned)["zero_parameters"]);

    // Bad settings and students that do not fit the teacher.
    let run_fail = |args: Vec<String>| fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let bad = dir.join("bad");
    let err = run_fail(distill(&student_arch, &bad, &["--alpha", "1.5"]));
    assert!(
        err.contains("1.5 is out of range: expected a number in [0, 1]"),
        "{err}"
    );
    let err = run_fail(distill(&student_arch, &bad, &["--temperature", "0"]));
    assert!(
        err.contains("0 is out of range: expected a finite number > 0"),
        "{err}"
    );
    let narrow = dir.join("narrow.toml");
    std::fs::write(&narrow, TINY_ARCH.replace("features = 29", "features = 7")).unwrap();
    let err = run_fail(distill(&narrow, &bad, &[]));
    assert!(err.contains("(1, 29)") && err.contains("(1, 7)"), "{err}");
    let two = dir.join("two.toml");
    std::fs::write(
        &two,
        TINY_ARCH
            .replace("classes = 3", "classes = 2")
            .replace("out = 3", "out = 2"),
    )
    .unwrap();
    let err = run_fail(distill(&two, &bad, &[]));
    assert!(err.contains("3 classes") && err.contains("has 2"), "{err}");
    assert!(!bad.exists());
    assert!(ok(&["distill", "--help"]).contains("--temperature"));
}

#[test]
fn sensitivity_lists_layers_worst_first_with_ranges() {
    let (csv, _) = fixtures();
    let dir = scratch("sensitivity");
    let ckpt = dir.join("ckpt");
    train_checkpoint(&ckpt, 2);
    assert!(ok(&["sensitivity", "--help"]).contains("--amount"));

    // Text: both tables and the range report.
    let text = ok(&["sensitivity", s(&ckpt), "--data", s(csv), "--mode", "both"]);
    for needle in [
        "validation split",
        "quantization sensitivity",
        "pruning sensitivity",
        "clip test",
        "fc1",
        "fc2",
        "input",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }

    // JSON, written atomically to --out as well.
    let file = dir.join("sens.json");
    let stdout = ok(&[
        "sensitivity",
        s(&ckpt),
        "--data",
        s(csv),
        "--mode",
        "both",
        "--amount",
        "0.8",
        "--split",
        "test",
        "--backend",
        "fpga",
        "--json",
        "--out",
        s(&file),
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json(&file), v);
    assert_eq!(v["split"], "test");
    assert_eq!(v["quantization"]["settings"]["backend"], "fpga");
    assert!((v["pruning"]["amount"].as_f64().unwrap() - 0.8).abs() < 1e-6);
    let quant = v["quantization"]["layers"].as_array().unwrap();
    let mut names: Vec<&str> = quant.iter().map(|r| r["layer"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["fc1", "fc2", "input"]);
    for rows in [quant, v["pruning"]["layers"].as_array().unwrap()] {
        let changes: Vec<f64> = rows
            .iter()
            .map(|r| r["accuracy_change"].as_f64().unwrap())
            .collect();
        assert!(changes.windows(2).all(|w| w[0] <= w[1]), "{changes:?}");
        for r in rows {
            let acc = r["accuracy"].as_f64().unwrap();
            let change = r["accuracy_change"].as_f64().unwrap();
            let float = v["float"]["accuracy"].as_f64().unwrap();
            assert!((acc - float - change).abs() < 1e-12);
        }
    }
    let ranges = v["quantization"]["ranges"].as_array().unwrap();
    assert_eq!(ranges.len(), 3, "input, fc1 (relu fused), fc2");
    assert!(
        ranges
            .iter()
            .all(|r| r["clipped_calibration"].is_number() && r["clipped_test"].is_number())
    );

    // Prune-only: no quantization section.
    let v: serde_json::Value = serde_json::from_str(&ok(&[
        "sensitivity",
        s(&ckpt),
        "--data",
        s(csv),
        "--mode",
        "prune",
        "--json",
    ]))
    .unwrap();
    assert!(v["quantization"].is_null() && v["pruning"]["layers"].is_array());

    let err = fails(&[
        "sensitivity",
        s(&ckpt),
        "--data",
        s(csv),
        "--mode",
        "prune",
        "--amount",
        "1.5",
    ]);
    assert!(err.contains("1.5"), "{err}");
    let err = fails(&[
        "sensitivity",
        s(&ckpt),
        "--data",
        s(csv),
        "--observer",
        "bogus",
    ]);
    assert!(err.contains("bogus"), "{err}");
}

/// `tickq train --device gpu` trains, checkpoints and resumes on the GPU (the resumed run continues from the
/// stored optimizer state and ends like an uninterrupted GPU run), and its accuracy is within a point of
/// `--device cpu`; `tickq distill --device gpu` distills. Without an adapter `--device gpu` is a clear error.
#[test]
fn train_and_distill_on_the_gpu() {
    let (csv, arch) = fixtures();
    let dir = scratch("gpu-train");
    let train = |out: &Path, device: &str, epochs: &str, resume: bool| {
        let mut args = train_args(arch, out);
        args.extend(["--epochs", epochs, "--patience", "0", "--device", device]);
        if resume {
            args.push("--resume");
        }
        tickq(&args)
    };
    let gpu_full = dir.join("gpu-full");
    let out = train(&gpu_full, "gpu", "4", false);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    if tickq_gpu::testing::context_or_skip("train_and_distill_on_the_gpu").is_none() {
        assert!(
            !out.status.success() && stderr.contains("--device gpu"),
            "{stderr}"
        );
        return;
    }
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("device: GPU "), "{stderr}");
    let epochs = |log: &str| log.lines().filter(|l| l.starts_with("epoch ")).count();
    assert_eq!(epochs(&stderr), 4, "{stderr}");

    // Two epochs, then two more from the training state: the same weights as four in one go.
    let gpu_split = dir.join("gpu-split");
    assert!(train(&gpu_split, "gpu", "2", false).status.success());
    let resumed = train(&gpu_split, "gpu", "4", true);
    let log = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{log}");
    assert!(
        log.contains("epoch   3:") && !log.contains("epoch   1:"),
        "{log}"
    );
    // The current (last-epoch) weights and the optimizer state in the training state, not only the best weights.
    let state = |d: &Path| {
        let path = d
            .join("train-state")
            .join(tickq_host::train::TRAIN_STATE_FILE);
        let bytes = std::fs::read(&path).unwrap();
        let (tensors, _) = tickq_host::checkpoint::decode_safetensors(&bytes, &path).unwrap();
        tensors
            .into_iter()
            .filter(|t| t.0.starts_with("model/") || t.0.starts_with("optim/"))
            .collect::<Vec<_>>()
    };
    let (full, split) = (state(&gpu_full), state(&gpu_split));
    assert!(full.len() >= 8, "{full:?}");
    assert_eq!(full, split, "resumed GPU run differs");

    // The state format is the device's: a CPU run resumes on the GPU.
    let mixed = dir.join("mixed");
    assert!(train(&mixed, "cpu", "2", false).status.success());
    let resumed = train(&mixed, "gpu", "4", true);
    let log = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{log}");
    assert!(
        log.contains("epoch   4:") && !log.contains("epoch   2:"),
        "{log}"
    );

    let cpu = dir.join("cpu");
    assert!(train(&cpu, "cpu", "4", false).status.success());
    let blob_dir = dir.join("blobs");
    let accuracy = |ckpt: &Path, name: &str| {
        let blob = blob_dir.join(format!("{name}.blob"));
        ok(&["quantize", s(ckpt), "--data", s(csv), "--out", s(&blob)]);
        let report = blob_dir.join(name);
        ok(&[
            "eval",
            s(ckpt),
            "--blob",
            s(&blob),
            "--data",
            s(csv),
            "--out",
            s(&report),
            "--latency-calls",
            "100",
            "--device",
            "cpu",
        ]);
        json(&report.join("report.json"))
            .pointer("/float/accuracy")
            .and_then(serde_json::Value::as_f64)
            .unwrap()
    };
    let (a_cpu, a_gpu) = (accuracy(&cpu, "cpu"), accuracy(&gpu_full, "gpu"));
    assert!(
        (a_cpu - a_gpu).abs() <= 0.01,
        "f32 test accuracy: CPU {a_cpu}, GPU {a_gpu}"
    );

    let student = dir.join("student.toml");
    std::fs::write(&student, TINY_ARCH.replace("out = 16", "out = 8")).unwrap();
    let kd = dir.join("kd");
    let log = ok_stderr(&[
        "distill",
        "--teacher",
        s(&gpu_full),
        "--student",
        s(&student),
        "--data",
        s(csv),
        "--out",
        s(&kd),
        "--epochs",
        "2",
        "--device",
        "gpu",
    ]);
    assert!(
        log.contains("device: GPU ") && log.contains("epoch   2:"),
        "{log}"
    );
    assert!(kd.join("model.safetensors").is_file());
}

/// A failure prints its whole chain, the cause on a `caused by:` line, and the exit code tells a bad input (2)
/// from an internal failure (1): a file that is not a blob is the user's, a full disk is not.
#[test]
fn errors_print_their_causes_and_exit_2_for_bad_input_and_1_for_internal_failures() {
    let dir = scratch("error-chain");
    let not_blob = dir.join("notes.blob");
    std::fs::write(&not_blob, [b'x'; 256]).unwrap();
    let out = tickq(&["inspect", s(&not_blob)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            format!("error: {}: not a blob tickq-core loads", not_blob.display()).as_str(),
            "  caused by: blob at byte 0: bad magic",
        ],
        "{stderr}"
    );

    // Writing the report to a full disk is an internal failure.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full opens");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tickq"))
        .args(["inspect", s(&common::trained().blob)])
        .stdout(full)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `tickq replay` streams a quantized blob's trades through the device path with 0 mismatches (static and
/// dynamic blobs, text and JSON), `tickq bench --trades` times raw trade to signal, and
/// `tickq export --trade-vectors` writes the raw trades and the host's signals that streaming firmware checks.
#[test]
fn replay_bench_trades_and_trade_vectors() {
    let (csv, _) = fixtures();
    let t = common::trained();
    let text = ok(&["replay", s(&t.blob), "--data", s(csv)]);
    assert!(text.contains("15000 trades replayed"), "{text}");
    assert!(text.contains(" 0 mismatches"), "{text}");
    let report: serde_json::Value =
        serde_json::from_str(&ok(&["replay", s(&t.blob), "--data", s(csv), "--json"])).unwrap();
    assert_eq!(report["mismatches"], 0, "{report}");
    assert_eq!(report["trades"], 15_000, "{report}");
    let compared = report["compared"].as_u64().unwrap();
    assert!(compared > 10_000 && compared < 15_000, "{report}");
    assert!(report["latency"]["p50"].as_f64().unwrap() > 0.0, "{report}");
    assert_eq!(report["signal_latency"]["calls"].as_u64(), Some(compared));
    let dynamic = ok(&["replay", s(&t.dynamic), "--data", s(csv)]);
    assert!(dynamic.contains(" 0 mismatches"), "{dynamic}");

    let bench = ok(&["bench", s(&t.blob), "--trades", s(csv), "--calls", "20000"]);
    assert!(
        bench.contains("20000 calls (raw trade to signal)"),
        "{bench}"
    );

    let dir = scratch("trade-vectors");
    let rs = dir.join("model.rs");
    let written = ok(&[
        "export",
        s(&t.blob),
        "--format",
        "rust",
        "--out",
        s(&rs),
        "--trade-vectors",
        "400",
        "--data",
        s(csv),
    ]);
    assert!(written.contains("model.tqt"), "{written}");
    let source = std::fs::read_to_string(&rs).unwrap();
    assert!(
        source.contains("pub const STATE_WORDS: usize = "),
        "{source}"
    );
    assert!(
        source.contains("pub const STREAM_ARENA_BYTES: usize = "),
        "{source}"
    );
    let bytes = std::fs::read(dir.join("model.tqt")).unwrap();
    let (crc, vectors) =
        tickq_host::trade_vectors::parse_trade_vectors(&bytes).expect("TQT1 parses");
    let blob = std::fs::read(&t.blob).unwrap();
    assert_eq!(crc, tickq_core::Model::load(&blob).unwrap().crc32());
    assert_eq!(vectors.len(), 400);
    let signals = vectors.iter().filter(|v| v.logits.is_some()).count();
    // The stream starts cold: the first trades warm up (100 trades and 60 s), the rest give signals.
    assert!(signals > 0 && signals < 400, "{signals} signals");
    assert!(vectors[..100].iter().all(|v| v.logits.is_none()));
}

/// A blob without a feature spec cannot be replayed or benchmarked on trades: a bad-input error that says so.
#[test]
fn replay_refuses_a_blob_without_a_feature_spec() {
    use tickq_core::encode::{LayerSpec, ModelSpec, OpSpec, encode};
    let (csv, _) = fixtures();
    let m = tickq_core::requant::QuantMultiplier::from_ratio(1.0 / 127.0).unwrap();
    let spec = ModelSpec {
        name: "vectors-in".into(),
        feature_names: vec!["a".into()],
        label_names: vec!["down".into(), "flat".into(), "up".into()],
        data_hash: [0; 32],
        tickq_version: "0".into(),
        layers: vec![
            LayerSpec::new(
                OpSpec::Quantize {
                    time_steps: 1,
                    features: 1,
                    a: vec![32.0],
                    b: vec![0.0],
                },
                1.0 / 32.0,
                0,
            ),
            LayerSpec::new(
                OpSpec::Dense {
                    out_features: 3,
                    in_features: 1,
                    weights: vec![127, 0, -127],
                    bias: vec![0; 3],
                    requant: vec![m; 3],
                },
                1.0 / 32.0,
                0,
            ),
        ],
        feature_spec: None,
    };
    let dir = scratch("replay-no-spec");
    let blob = dir.join("plain.blob");
    std::fs::write(&blob, encode(&spec).unwrap()).unwrap();
    for args in [
        vec!["replay", s(&blob), "--data", s(csv)],
        vec!["bench", s(&blob), "--trades", s(csv), "--calls", "10"],
    ] {
        let err = common::refused(&args, 2);
        assert!(err.contains("no feature spec"), "{args:?}: {err}");
    }
}

/// A convolutional model over a window quantizes dynamically from the command line (no calibration), runs
/// through tickq-core in `tickq eval` close to its f32 model, and `tickq replay` refuses to stream it, saying why.
#[test]
fn dynamic_conv_quantizes_evaluates_and_refuses_to_stream() {
    let (csv, _) = fixtures();
    let dir = scratch("dynamic-conv");
    let arch = dir.join("conv.toml");
    std::fs::write(
        &arch,
        "name = \"dynconv\"\nclasses = 3\n[input]\ntime_steps = 8\nfeatures = 29\n\
         [[layers]]\ntype = \"conv1d\"\nname = \"conv1\"\nout = 8\nkernel = 3\npadding = \"causal\"\n\
         [[layers]]\ntype = \"relu\"\n\
         [[layers]]\ntype = \"conv1d\"\nname = \"conv2\"\nout = 8\nkernel = 3\nstride = 2\n\
         [[layers]]\ntype = \"relu6\"\n\
         [[layers]]\ntype = \"maxpool1d\"\nkernel = 2\n\
         [[layers]]\ntype = \"flatten\"\n\
         [[layers]]\ntype = \"dense\"\nname = \"fc\"\nout = 3\n",
    )
    .unwrap();
    let ckpt = dir.join("ckpt");
    ok(&[
        train_args(&arch, &ckpt),
        vec!["--time-steps", "8", "--epochs", "1", "--device", "cpu"],
    ]
    .concat());
    let blob = dir.join("dynamic.blob");
    ok(&[
        "quantize",
        s(&ckpt),
        "--data",
        s(csv),
        "--out",
        s(&blob),
        "--mode",
        "dynamic",
    ]);
    let bytes = std::fs::read(&blob).unwrap();
    let model = tickq_core::Model::load(&bytes).unwrap();
    assert!(model.is_dynamic());
    assert_eq!(model.input_shape(), (8, 29));
    let report = dir.join("report");
    ok(&[
        "eval",
        s(&ckpt),
        "--blob",
        s(&blob),
        "--data",
        s(csv),
        "--out",
        s(&report),
        "--latency-calls",
        "1000",
        "--device",
        "cpu",
    ]);
    let r = json(&report.join("report.json"));
    let agreement = r["int8"]["agreement"].as_f64().unwrap();
    assert!(
        agreement >= 0.95,
        "f32 / dynamic int8 agreement {agreement}"
    );
    let refusal = refused(&["replay", s(&blob), "--data", s(csv)], 2);
    assert!(refusal.contains("dynamic"), "{refusal}");
}
