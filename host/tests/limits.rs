//! Refusals of issue 11, through the `tickq` binary: out-of-range numbers, models the core cannot run, inputs
//! that would exhaust memory, output paths that are in the way, and the dynamic-blob export. Each case asserts
//! the exit code (2 for a command-line error clap reports, 1 for every other refusal) and the first line of the
//! message, and that nothing panicked.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use common::{fixtures, scratch, tickq};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `tickq` with `args` and extra environment variables.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tickq"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("tickq runs")
}

/// Runs `tickq`, expects exit code `code`, and returns the first line of stderr.
fn refused(args: &[&str], code: i32) -> String {
    refused_with(args, &[], code)
}

fn refused_with(args: &[&str], env: &[(&str, &str)], code: i32) -> String {
    let out = run(args, env);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "tickq {args:?}: exit status {:?}, stderr:\n{stderr}",
        out.status
    );
    assert!(
        !stderr.contains("panicked"),
        "tickq {args:?} panicked:\n{stderr}"
    );
    stderr
        .lines()
        .find(|l| l.starts_with("error"))
        .unwrap_or_else(|| panic!("tickq {args:?}: no error line in:\n{stderr}"))
        .to_string()
}

fn ok(args: &[&str]) -> String {
    let out = tickq(args);
    assert!(
        out.status.success(),
        "tickq {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A trained checkpoint of the fixture architecture, a static and a dynamic blob of it, once per test binary.
fn trained() -> &'static (PathBuf, PathBuf, PathBuf) {
    static ONCE: std::sync::OnceLock<(PathBuf, PathBuf, PathBuf)> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let (csv, arch) = fixtures();
        let dir = scratch("limits-trained");
        let ckpt = dir.join("ckpt");
        ok(&[
            "train",
            "--arch",
            s(arch),
            "--data",
            s(csv),
            "--out",
            s(&ckpt),
            "--epochs",
            "1",
        ]);
        let blob = dir.join("static.blob");
        ok(&["quantize", s(&ckpt), "--data", s(csv), "--out", s(&blob)]);
        let dynamic = dir.join("dynamic.blob");
        ok(&[
            "quantize",
            s(&ckpt),
            "--data",
            s(csv),
            "--out",
            s(&dynamic),
            "--mode",
            "dynamic",
        ]);
        (ckpt, blob, dynamic)
    })
}

#[test]
fn numeric_options_give_their_range_negative_numbers_included() {
    let (csv, arch) = fixtures();
    let dir = scratch("limits-ranges");
    let out = dir.join("never");
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--arch",
            s(arch),
            "--data",
            s(csv),
            "--out",
            s(&out),
        ];
        args.extend(extra);
        refused(&args, 2)
    };
    for (extra, line) in [
        (
            &["--epochs", "-5"][..],
            "error: invalid value '-5' for '--epochs <N>': -5 is out of range: expected a whole number from 1 to 1000000",
        ),
        (
            &["--epochs", "0"],
            "error: invalid value '0' for '--epochs <N>': 0 is out of range: expected a whole number from 1 to 1000000",
        ),
        (
            &["--horizon", "-5"],
            "error: invalid value '-5' for '--horizon <TRADES>': -5 is out of range: expected a whole number from 1 to 1000000000",
        ),
        (
            &["--dead-band", "-5"],
            "error: invalid value '-5' for '--dead-band <PRICE>': -5 is out of range: expected a finite number >= 0",
        ),
        (
            &["--lr", "-5"],
            "error: invalid value '-5' for '--lr <LR>': -5 is out of range: expected a finite number > 0",
        ),
        (
            &["--patience", "-5"],
            "error: invalid value '-5' for '--patience <EPOCHS>': -5 is out of range: expected a whole number from 0 to 1000000",
        ),
        (
            &["--optimizer", "sgd", "--momentum", "2"],
            "error: invalid value '2' for '--momentum <MOMENTUM>': 2 is out of range: expected a number in [0, 1)",
        ),
        (
            &["--batch-size", "0"],
            "error: invalid value '0' for '--batch-size <N>': 0 is out of range: expected a whole number from 1 to 16777216",
        ),
        (
            &["--time-steps", "70000"],
            "error: invalid value '70000' for '--time-steps <T>': 70000 is out of range: expected a whole number from 1 to 65535",
        ),
        (
            &["--epochs", "many"],
            "error: invalid value 'many' for '--epochs <N>': `many` is not a whole number from 1 to 1000000",
        ),
    ] {
        assert_eq!(train(extra), line, "{extra:?}");
    }
    assert!(!out.exists(), "a refused run wrote {}", out.display());

    assert_eq!(
        refused(&["bench", "m.blob", "--calls", "1000000000000"], 2),
        "error: invalid value '1000000000000' for '--calls <N>': 1000000000000 is out of range: expected a whole number from 1 to 10000000"
    );
    assert_eq!(
        refused(&["bench", "m.blob", "--calls", "0"], 2),
        "error: invalid value '0' for '--calls <N>': 0 is out of range: expected a whole number from 1 to 10000000"
    );
    assert_eq!(
        refused(
            &[
                "eval",
                "ck",
                "--blob",
                "m.blob",
                "--out",
                "r",
                "--latency-calls",
                "1e12"
            ],
            2
        ),
        "error: invalid value '1e12' for '--latency-calls <N>': 1000000000000 is out of range: expected a whole number from 1 to 10000000"
    );
    assert_eq!(
        refused(
            &["export", "m.blob", "--format", "blob", "--vectors", "-1"],
            2
        ),
        "error: invalid value '-1' for '--vectors <N>': -1 is out of range: expected a whole number from 0 to 4294967295"
    );
    assert_eq!(
        refused(
            &[
                "distill",
                "--teacher",
                "t",
                "--student",
                "s",
                "--out",
                "o",
                "--alpha",
                "2"
            ],
            2
        ),
        "error: invalid value '2' for '--alpha <ALPHA>': 2 is out of range: expected a number in [0, 1]"
    );
    assert_eq!(
        refused(
            &[
                "prune", "ck", "--method", "global", "--amount", "1", "--out", "o"
            ],
            2
        ),
        "error: invalid value '1' for '--amount <AMOUNT>': 1 is out of range: expected a number in [0, 1)"
    );
    assert_eq!(
        refused(
            &[
                "prune",
                "ck",
                "--method",
                "global",
                "--amount",
                "0.5",
                "--schedule",
                "gradual",
                "--steps",
                "1000000000000",
                "--out",
                "o"
            ],
            2
        ),
        "error: invalid value '1000000000000' for '--steps <STEPS>': 1000000000000 is out of range: expected a whole number from 1 to 1000"
    );
    assert_eq!(
        refused(
            &["quantize", "ck", "--out", "m.blob", "--percentile", "20"],
            2
        ),
        "error: invalid value '20' for '--percentile <PERCENTILE>': 20 is out of range: expected a number in [50, 100]"
    );
    // The help of every numeric option gives its range.
    let help = ok(&["train", "--help"]);
    assert!(
        help.contains("Valid: a whole number from 1 to 1000000"),
        "{help}"
    );
    assert!(help.contains("Valid: a number in [0, 1)"), "{help}");
}

#[test]
fn settings_that_do_not_go_together_are_refused_before_the_data_is_read() {
    let (csv, arch) = fixtures();
    let dir = scratch("limits-combos");
    let out = dir.join("never");
    let out_s = s(&out);
    assert_eq!(
        refused(
            &[
                "train",
                "--arch",
                s(arch),
                "--data",
                s(csv),
                "--out",
                out_s,
                "--momentum",
                "0.5"
            ],
            1
        ),
        "error: --momentum applies only to --optimizer sgd"
    );
    assert_eq!(
        refused(
            &[
                "prune", "ck", "--method", "nm", "--n", "5", "--m", "4", "--out", out_s
            ],
            1
        ),
        "error: --n 5 is above --m 4: N:M pruning keeps n of every m weights"
    );
    assert!(!out.exists());
}

/// Writes an MLP architecture `features -> hidden... -> 3` into `dir`.
fn mlp(dir: &Path, name: &str, hidden: &[usize]) -> PathBuf {
    let mut text =
        "name = \"big\"\nclasses = 3\n[input]\ntime_steps = 1\nfeatures = 29\n".to_string();
    for h in hidden {
        text.push_str(&format!(
            "[[layers]]\ntype = \"dense\"\nout = {h}\n[[layers]]\ntype = \"relu\"\n"
        ));
    }
    text.push_str("[[layers]]\ntype = \"dense\"\nout = 3\n");
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn models_the_core_cannot_run_are_refused_before_training() {
    let (csv, _) = fixtures();
    let dir = scratch("limits-models");
    let never = dir.join("never");
    let train = |arch: &Path| {
        let args = [
            "train",
            "--arch",
            s(arch),
            "--data",
            s(csv),
            "--out",
            s(&never),
        ];
        let out = run(&args, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !stderr.contains("reading"),
            "the data was read before the refusal:\n{stderr}"
        );
        refused(&args, 1)
    };
    let wide = mlp(&dir, "wide.toml", &[4_000_000]);
    assert_eq!(
        train(&wide),
        format!(
            "error: {}: layer 0 (dense \"fc1\"): out 4000000 is above 65535, the most the blob format's 16-bit out field holds",
            wide.display()
        )
    );
    let huge = mlp(&dir, "huge.toml", &[60_000, 60_000]);
    assert_eq!(
        train(&huge),
        format!(
            "error: {}: layer 2 (dense \"fc2\"): 3600060000 parameters (60000 x 60000 weights + 60000 biases), above 16777216, the most a layer may have",
            huge.display()
        )
    );
    let deep = mlp(&dir, "deep.toml", &[8; 100]);
    assert_eq!(
        train(&deep),
        format!(
            "error: {}: architecture: its 201 layers make 102 blob layers (the input quantizer counts as one; a relu, relu6 or clamp right after dense or conv1d is fused into it), above 32, the most a tickq-core blob holds",
            deep.display()
        )
    );
    let classes = dir.join("classes.toml");
    std::fs::write(
        &classes,
        "name = \"c\"\nclasses = 300\n[input]\ntime_steps = 1\nfeatures = 29\n[[layers]]\ntype = \"dense\"\nout = 300\n",
    )
    .unwrap();
    assert_eq!(
        train(&classes),
        format!(
            "error: {}: architecture: classes must be from 2 to 256 (the most tickq-core predicts), got 300",
            classes.display()
        )
    );
    let named = dir.join("named.toml");
    std::fs::write(
        &named,
        format!(
            "name = \"{}\"\nclasses = 3\n[input]\ntime_steps = 1\nfeatures = 29\n[[layers]]\ntype = \"dense\"\nout = 3\n",
            "n".repeat(500_000)
        ),
    )
    .unwrap();
    let line = train(&named);
    assert!(
        line.len() < 400,
        "the name is echoed whole: {} bytes",
        line.len()
    );
    assert!(
        line.ends_with("is 500000 bytes long, above 128, the most a model name may have"),
        "{line}"
    );
    #[cfg(target_os = "linux")]
    assert_eq!(
        train(Path::new("/dev/zero")),
        "error: cannot read architecture file /dev/zero: larger than 1048576 bytes, the most tickq reads from a config file"
    );
}

#[test]
fn inputs_that_would_exhaust_memory_are_refused_with_the_numbers() {
    let (csv, arch) = fixtures();
    let dir = scratch("limits-memory");
    let out = dir.join("never");
    #[cfg(target_os = "linux")]
    {
        let start = std::time::Instant::now();
        assert_eq!(
            refused(
                &[
                    "train",
                    "--arch",
                    s(arch),
                    "--data",
                    "/dev/zero",
                    "--out",
                    s(&out)
                ],
                1
            ),
            "error: /dev/zero, line 1: longer than 65536 bytes, the most a trade CSV line may have (is this a trade CSV with line ends?)"
        );
        assert!(start.elapsed().as_secs() < 30, "took {:?}", start.elapsed());
    }
    let line = refused_with(
        &[
            "train",
            "--arch",
            s(arch),
            "--data",
            s(csv),
            "--out",
            s(&out),
        ],
        &[("TICKQ_MEMORY_LIMIT", "100000")],
        1,
    );
    assert!(
        line.starts_with("error: the sample matrix (")
            && line.contains(
                "x 1 time steps x 29 features, with its split and standardized copies) needs about "
            )
            && line
                .ends_with("more than the 100000 bytes (97.7 KiB) that TICKQ_MEMORY_LIMIT allows"),
        "{line}"
    );
    let nul = dir.join("nul.csv");
    std::fs::write(
        &nul,
        "DateTime,Price,Volume\n2013-09-01 17:00:00.083,16\u{0}40.25,8\n",
    )
    .unwrap();
    assert_eq!(
        refused(
            &[
                "train",
                "--arch",
                s(arch),
                "--data",
                s(&nul),
                "--out",
                s(&out)
            ],
            1
        ),
        format!(
            "error: {}, line 2, column 2 (Price): `16\\040.25` is not a number",
            nul.display()
        )
    );
    assert!(!out.exists());
}

#[test]
fn output_paths_in_the_way_are_named_before_any_work() {
    let dir = scratch("limits-out");
    let file = dir.join("report.txt");
    std::fs::write(&file, "not a directory").unwrap();
    assert_eq!(
        refused(&["eval", "ck", "--blob", "m.blob", "--out", s(&file)], 1),
        format!(
            "error: {}: exists and is not a directory, so report.md and report.json cannot be written into it; give a new path or a directory",
            file.display()
        )
    );
    let config = dir.join("p.toml");
    std::fs::write(
        &config,
        "[[stages]]\nname = \"t\"\nkind = \"train\"\narch = \"demo-mlp\"\n",
    )
    .unwrap();
    assert_eq!(
        refused(&["pipeline", s(&config), "--out", s(&file)], 1),
        format!(
            "error: {}: exists and is not a directory, so the stage directories and the comparison cannot be written into it; give a new path or a directory",
            file.display()
        )
    );
    let below = file.join("ckpt");
    let (csv, arch) = fixtures();
    assert_eq!(
        refused(
            &[
                "train",
                "--arch",
                s(arch),
                "--data",
                s(csv),
                "--out",
                s(&below)
            ],
            1
        ),
        format!(
            "error: {}: {} exists and is not a directory, so nothing can be written below it",
            below.display(),
            file.display()
        )
    );
    assert_eq!(
        refused(&["quantize", "ck", "--out", s(&dir)], 1),
        format!(
            "error: {}: is a directory, so the blob cannot be written there; give a file name",
            dir.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a directory");
}

#[test]
fn a_dynamic_blob_exports_with_test_vectors_that_read_back() {
    let (csv, _) = fixtures();
    let (_, blob, dynamic) = trained();
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
            1
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
    let line = refused(&["pipeline", s(&config), "--out", s(&out)], 1);
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
