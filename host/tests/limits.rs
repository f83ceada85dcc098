//! The limits of issue 11 beyond single refusals (those are rows of tests/bad_input.rs): every numeric option's
//! range in `--help`, refusals that come before the data is read, endless inputs read only as far as a limit, and
//! the round trips of the dynamic-blob export and a pipeline's export pre-check.

use std::path::{Path, PathBuf};

mod common;

use common::{
    Trained, fixtures, mlp_arch, ok, refused, refused_with, s, scratch, tickq, train_args, trained,
};

#[test]
fn the_help_of_every_numeric_option_gives_its_range() {
    for (command, options) in [
        (
            "train",
            &[
                "--horizon",
                "--dead-band",
                "--time-steps",
                "--epochs",
                "--batch-size",
                "--lr",
                "--momentum",
                "--patience",
                "--seed",
            ][..],
        ),
        (
            "quantize",
            &[
                "--percentile",
                "--averaging-constant",
                "--calibration-samples",
                "--calibration-count",
                "--calibration-rows",
            ],
        ),
        ("eval", &["--latency-calls", "--rows"]),
        ("run", &["--rows"]),
        ("bench", &["--calls"]),
        ("export", &["--vectors"]),
        (
            "prune",
            &[
                "--amount",
                "--dim",
                "--n",
                "--m",
                "--initial",
                "--steps",
                "--fine-tune-epochs",
                "--lr",
                "--batch-size",
            ],
        ),
        (
            "distill",
            &[
                "--temperature",
                "--alpha",
                "--epochs",
                "--batch-size",
                "--lr",
                "--momentum",
            ],
        ),
        ("sensitivity", &["--amount", "--percentile"]),
    ] {
        let help = ok(&[command, "--help"]);
        for option in options {
            // The option's paragraph: from its line to the next option.
            let at = help
                .find(&format!("  {option} "))
                .or_else(|| help.find(&format!("  {option}\n")))
                .unwrap_or_else(|| panic!("tickq {command} --help has no {option}:\n{help}"));
            let rest = &help[at + 2..];
            let end = rest.find("\n  -").unwrap_or(rest.len());
            assert!(
                rest[..end].contains("Valid: a "),
                "tickq {command} --help: {option} does not give its range:\n{}",
                &rest[..end]
            );
        }
    }
}

/// Writes an MLP architecture `features -> hidden... -> 3` into `dir`.
fn mlp(dir: &Path, name: &str, hidden: &[usize]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, mlp_arch(hidden)).unwrap();
    path
}

/// The refusals themselves are rows of tests/bad_input.rs; this checks when they come: before the trades are read.
#[test]
fn models_the_core_cannot_run_are_refused_before_the_data_is_read() {
    let (csv, _) = fixtures();
    let dir = scratch("limits-models");
    let never = dir.join("never");
    for arch in [
        mlp(&dir, "wide.toml", &[4_000_000]),
        mlp(&dir, "huge.toml", &[60_000, 60_000]),
        mlp(&dir, "deep.toml", &[8; 100]),
    ] {
        let args = [
            "train",
            "--arch",
            s(&arch),
            "--data",
            s(csv),
            "--out",
            s(&never),
        ];
        let out = tickq(&args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            !stderr.contains("reading"),
            "the data was read before the refusal:\n{stderr}"
        );
        assert!(!never.exists());
    }
}

#[cfg(target_os = "linux")]
#[test]
fn endless_inputs_are_refused_after_a_bounded_read() {
    let (_, arch) = fixtures();
    let dir = scratch("limits-endless");
    let out = dir.join("never");
    for args in [
        vec![
            "train",
            "--arch",
            s(arch),
            "--data",
            "/dev/zero",
            "--out",
            s(&out),
        ],
        train_args(Path::new("/dev/zero"), &out),
        vec!["inspect", "/dev/zero"],
        vec!["pipeline", "/dev/zero", "--out", s(&out)],
    ] {
        // With memory capped well below what reading /dev/zero whole would take.
        let start = std::time::Instant::now();
        let line = refused_with(&args, &[("TICKQ_MEMORY_LIMIT", "1000000000")], 2);
        assert!(
            start.elapsed().as_secs() < 20,
            "tickq {args:?} took {:?}: {line}",
            start.elapsed()
        );
    }
    assert!(!out.exists());
}

#[test]
fn a_dynamic_blob_exports_with_test_vectors_that_read_back() {
    let (csv, _) = fixtures();
    let Trained { blob, dynamic, .. } = trained();
    let dir = scratch("limits-export");
    let out = dir.join("dyn.h");
    let text = ok(&[
        "export",
        s(dynamic),
        "--format",
        "c-header",
        "--out",
        s(&out),
        "--vectors",
        "5",
        "--data",
        s(csv),
    ]);
    assert!(text.contains("dyn.tqv"), "{text}");
    let bytes = std::fs::read(dir.join("dyn.tqv")).unwrap();
    let (crc, vectors) = tickq_host::export::parse_test_vectors(&bytes).unwrap();
    let blob_bytes = std::fs::read(dynamic).unwrap();
    let model = tickq_core::Model::load(&blob_bytes).unwrap();
    assert_eq!((crc, vectors.len()), (model.crc32(), 5));
    let mut arena = vec![0u8; model.arena_bytes()];
    for v in &vectors {
        assert_eq!(
            v.input_f32.len(),
            model.input_len(),
            "auto picks f32 inputs for a dynamic blob"
        );
        let mut session = tickq_core::Session::new(&model, &mut arena).unwrap();
        assert_eq!(session.run(&v.input_f32).logits(), v.logits.as_slice());
    }
    assert!(
        refused(
            &[
                "export",
                s(dynamic),
                "--format",
                "blob",
                "--out",
                s(&dir.join("x.blob")),
                "--vectors",
                "5",
                "--vector-input",
                "int8",
                "--data",
                s(csv)
            ],
            2
        )
        .starts_with("error: int8 test vectors cannot hold a dynamic blob's input"),
    );
    // A static blob keeps int8 vectors by default.
    ok(&[
        "export",
        s(blob),
        "--format",
        "blob",
        "--out",
        s(&dir.join("s.blob")),
        "--vectors",
        "5",
        "--data",
        s(csv),
    ]);
    let (_, vectors) =
        tickq_host::export::parse_test_vectors(&std::fs::read(dir.join("s.tqv")).unwrap()).unwrap();
    assert!(vectors.iter().all(|v| !v.input_i8.is_empty()));
}

#[test]
fn a_pipeline_refuses_an_impossible_export_before_the_first_stage_runs() {
    let (csv, _) = fixtures();
    let dir = scratch("limits-pipeline");
    let config = dir.join("p.toml");
    std::fs::write(
        &config,
        format!(
            "[data]\ncsv = \"{}\"\n\
             [[stages]]\nname = \"t\"\nkind = \"train\"\narch = \"demo-mlp\"\nepochs = 1\n\
             [[stages]]\nname = \"q\"\nkind = \"quantize\"\nfrom = \"t\"\ndynamic = true\n\
             [[stages]]\nname = \"e\"\nkind = \"export\"\nfrom = \"q\"\nvectors = 5\nvector_input = \"int8\"\n",
            s(csv)
        ),
    )
    .unwrap();
    let out = dir.join("out");
    let line = refused(&["pipeline", s(&config), "--out", s(&out)], 2);
    assert_eq!(
        line,
        format!(
            "error: {}: stage `e` (export): fields `vectors`, `vector_input`: int8 test vectors cannot hold a dynamic blob's input: its int8 mantissas come with a per-sample exponent, which Session::run_quantized and the vector format do not take; export f32 vectors (--vector-input f32 or auto, vector_input = \"f32\" or \"auto\" in a pipeline)",
            config.display()
        )
    );
    assert!(!out.exists(), "a stage ran before the refusal");
    // With the default vector input the same pipeline runs through, export included.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("vector_input = \"int8\"\n", "");
    std::fs::write(&config, text).unwrap();
    let stdout = ok(&["pipeline", s(&config), "--out", s(&out), "--device", "cpu"]);
    assert!(stdout.contains("e (export): done"), "{stdout}");
    let (_, vectors) = tickq_host::export::parse_test_vectors(
        &std::fs::read(out.join("e").join("model.tqv")).unwrap(),
    )
    .unwrap();
    assert_eq!(vectors.len(), 5);
}

/// The defaults written into the help text of the options whose defaults live in the library.
#[test]
fn defaults_in_the_help_are_the_library_defaults() {
    let train = tickq_host::train::TrainConfig::default();
    let labels = tickq_host::data::LabelConfig::default();
    let quant = tickq_host::quant::QuantConfig::default();
    let dataset = tickq_host::data::DatasetConfig::default();
    let features = &dataset.features;
    assert_eq!(
        labels.dead_band,
        tickq_host::data::DeadBand::Bps(tickq_host::data::DeadBand::DEFAULT_BPS)
    );
    for (command, option, default) in [
        ("train", "--epochs", train.epochs.to_string()),
        ("train", "--batch-size", train.batch_size.to_string()),
        ("train", "--patience", train.patience.to_string()),
        ("train", "--seed", train.seed.to_string()),
        ("train", "--horizon", labels.horizon.to_string()),
        (
            "train",
            "--dead-band-bps",
            tickq_host::data::DeadBand::DEFAULT_BPS.to_string(),
        ),
        ("train", "--tick-size", features.tick_size.to_string()),
        ("train", "--size-unit", features.size_unit.to_string()),
        (
            "train",
            "--session-gap-ms",
            features.session_gap_ms.to_string(),
        ),
        ("train", "--capacity", features.capacity.to_string()),
        ("train", "--return-lags-trades", "1,5,20,100".to_string()),
        ("train", "--return-lags-ms", "1000,10000,60000".to_string()),
        ("train", "--time-steps", dataset.time_steps.to_string()),
        (
            "quantize",
            "--calibration-samples",
            quant.calibration_samples.to_string(),
        ),
    ] {
        let help = ok(&[command, "--help"]);
        let at = help
            .find(&format!("  {option} "))
            .unwrap_or_else(|| panic!("tickq {command} --help has no {option}"));
        let rest = &help[at + 2..];
        let end = rest.find("\n  -").unwrap_or(rest.len());
        assert!(
            rest[..end].contains(&format!("[default: {default}]")),
            "tickq {command} --help: {option} should say [default: {default}]:\n{}",
            &rest[..end]
        );
    }
}
