//! Staged pipelines (`tickq pipeline`, `tickq demo`) on a small slice of the bundled ticks: what a run writes,
//! which stages a rerun skips, and the errors a bad config gives.

use std::path::{Path, PathBuf};
use std::time::Instant;

use tickq_host::device::ComputeDevice;
use tickq_host::pipeline::{self, PipelineConfig, RunOptions, StageStatus};

mod common;

use common::{REPORT_KEYS, TINY_ARCH, scratch, tickq};

/// The first 15,000 trades of the bundled file.
fn slice_csv() -> &'static PathBuf {
    &common::fixtures().0
}

/// A five-stage config over the slice: train → quantize, train → prune → quantize → export.
fn config_text(prune_amount: f32) -> String {
    format!(
        r#"
[data]
csv = "{csv}"

[[stages]]
name = "train"
kind = "train"
arch = "tiny.toml"
epochs = 2

[[stages]]
name = "int8"
kind = "quantize"
from = "train"
latency_calls = 2000

[[stages]]
name = "pruned"
kind = "prune"
from = "train"
method = "global"
amount = {prune_amount}
schedule = "gradual"
steps = 2
fine_tune_epochs = 1

[[stages]]
name = "pruned-int8"
kind = "quantize"
from = "pruned"
latency_calls = 2000

[[stages]]
name = "header"
kind = "export"
from = "pruned-int8"
format = "c-header"
vectors = 5
"#,
        csv = slice_csv().display()
    )
}

/// Writes the config and the architecture file into `dir` and parses the config.
fn write_config(dir: &Path, text: &str) -> PipelineConfig {
    std::fs::write(dir.join("tiny.toml"), TINY_ARCH).unwrap();
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    PipelineConfig::load(&path).unwrap()
}

/// Runs `cfg` into `out` and returns each stage's status, in order.
fn run(cfg: &PipelineConfig, out: &Path, force: bool) -> Vec<(String, StageStatus)> {
    let opts = RunOptions {
        out: out.to_path_buf(),
        force,
        progress: false,
        device: ComputeDevice::Cpu,
    };
    let run = pipeline::run_pipeline(cfg, &opts, &mut |_| {}).unwrap();
    run.stages.into_iter().map(|s| (s.name, s.status)).collect()
}

fn statuses(list: &[(String, StageStatus)]) -> Vec<(&str, StageStatus)> {
    list.iter().map(|(n, s)| (n.as_str(), *s)).collect()
}

use StageStatus::{Ran, Skipped};

#[test]
fn a_rerun_skips_unchanged_stages_and_recomputes_changed_ones_and_their_successors() {
    let dir = scratch("resume");
    let out = dir.join("out");
    let cfg = write_config(&dir, &config_text(0.5));

    let first = run(&cfg, &out, false);
    assert_eq!(
        statuses(&first),
        [
            ("train", Ran),
            ("int8", Ran),
            ("pruned", Ran),
            ("pruned-int8", Ran),
            ("header", Ran)
        ]
    );
    for f in [
        "train/checkpoint/model.safetensors",
        "train/metrics.json",
        "train/stage.json",
        "int8/model.blob",
        "int8/report.json",
        "pruned/steps.json",
        "pruned-int8/model.blob",
        "header/model.h",
        "header/model.tqv",
        "comparison.md",
        "comparison.json",
        "accuracy_vs_sparsity.svg",
        "accuracy_vs_size.svg",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }

    // Unchanged: everything is skipped, and quickly (no training, no latency runs).
    let started = Instant::now();
    let second = run(&cfg, &out, false);
    assert!(second.iter().all(|(_, s)| *s == Skipped), "{second:?}");
    assert!(
        started.elapsed().as_secs_f64() < 10.0,
        "a rerun that skips every stage took {:?}",
        started.elapsed()
    );

    // A changed prune amount reruns the prune stage and everything after it; the others are skipped.
    let changed = write_config(&dir, &config_text(0.6));
    assert_eq!(
        statuses(&run(&changed, &out, false)),
        [
            ("train", Skipped),
            ("int8", Skipped),
            ("pruned", Ran),
            ("pruned-int8", Ran),
            ("header", Ran)
        ]
    );

    // A deleted output reruns that stage only (its successors read it, but its fingerprint is the same).
    std::fs::remove_file(out.join("int8/model.blob")).unwrap();
    assert_eq!(
        statuses(&run(&changed, &out, false)),
        [
            ("train", Skipped),
            ("int8", Ran),
            ("pruned", Skipped),
            ("pruned-int8", Skipped),
            ("header", Skipped)
        ]
    );
    // A deleted checkpoint of the first stage reruns it and everything downstream.
    std::fs::remove_dir_all(out.join("train/checkpoint")).unwrap();
    let after = run(&changed, &out, false);
    assert!(after.iter().all(|(_, s)| *s == Ran), "{after:?}");

    // --force reruns everything.
    let forced = run(&changed, &out, true);
    assert!(forced.iter().all(|(_, s)| *s == Ran), "{forced:?}");

    // The comparison has one row per stage with the metrics, and the charts are labelled SVG.
    let comparison: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("comparison.json")).unwrap()).unwrap();
    let rows = comparison["stages"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    for row in rows {
        for key in [
            "accuracy",
            "macro_f1",
            "parameters",
            "nonzero_parameters",
            "size_bytes",
            "compression_ratio",
            "wall_seconds",
        ] {
            assert!(row[key].is_number(), "{key} missing in {row}");
        }
    }
    let pruned_int8 = &rows[3];
    assert!(pruned_int8["latency_p50_ns"].as_f64().unwrap() > 0.0);
    assert!(pruned_int8["blob_bytes"].as_u64().unwrap() > 0);
    assert!(pruned_int8["nonzero_fraction"].as_f64().unwrap() < 0.45);
    assert!(rows[0]["latency_p50_ns"].is_null());
    let md = std::fs::read_to_string(out.join("comparison.md")).unwrap();
    assert!(md.contains("| pruned-int8 | quantize | pruned |"), "{md}");
    assert!(md.contains("(accuracy_vs_sparsity.svg)") && md.contains("(accuracy_vs_size.svg)"));
    let svg = std::fs::read_to_string(out.join("accuracy_vs_sparsity.svg")).unwrap();
    assert!(
        svg.contains("<svg") && svg.contains("pruned-int8") && svg.contains("test accuracy (%)")
    );
    let stage: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("pruned/stage.json")).unwrap()).unwrap();
    assert_eq!(stage["fingerprint"].as_str().unwrap().len(), 64);
    assert_eq!(stage["inputs"][0]["stage"], "train");
}

#[test]
fn a_changed_architecture_file_reruns_the_train_stage() {
    let dir = scratch("arch");
    let out = dir.join("out");
    let text = r#"
[data]
csv = "CSV"
[[stages]]
name = "train"
kind = "train"
arch = "tiny.toml"
epochs = 1
"#
    .replace("CSV", &slice_csv().display().to_string());
    let cfg = write_config(&dir, &text);
    assert_eq!(statuses(&run(&cfg, &out, false)), [("train", Ran)]);
    assert_eq!(statuses(&run(&cfg, &out, false)), [("train", Skipped)]);
    std::fs::write(
        dir.join("tiny.toml"),
        TINY_ARCH.replace("out = 16", "out = 8"),
    )
    .unwrap();
    let cfg = PipelineConfig::load(&dir.join("pipeline.toml")).unwrap();
    assert_eq!(statuses(&run(&cfg, &out, false)), [("train", Ran)]);
}

#[test]
fn a_distill_stage_trains_a_student_from_a_teacher() {
    let dir = scratch("distill");
    let out = dir.join("out");
    let text = r#"
[data]
csv = "CSV"
[[stages]]
name = "teacher"
kind = "train"
arch = "demo-mlp"
epochs = 2
[[stages]]
name = "student"
kind = "distill"
teacher = "teacher"
student = "tiny.toml"
temperature = 2.0
alpha = 0.5
epochs = 2
[[stages]]
name = "student-int8"
kind = "quantize"
from = "student"
latency_calls = 1000
"#
    .replace("CSV", &slice_csv().display().to_string());
    let cfg = write_config(&dir, &text);
    // The GPU (software Vulkan in CI) when there is one, so a pipeline's int8 evaluation runs there too
    // (bit-exact either way).
    // `gpu` holds this test's turn on a GL device for the whole run (see tickq_gpu::testing).
    let gpu =
        tickq_gpu::testing::context_or_skip("a_distill_stage_trains_a_student_from_a_teacher");
    let device = gpu.as_ref().map_or(ComputeDevice::Cpu, |g| {
        ComputeDevice::Gpu(tickq_gpu::GpuContext::clone(g))
    });
    let opts = RunOptions {
        out: out.clone(),
        force: false,
        progress: false,
        device,
    };
    let run = pipeline::run_pipeline(&cfg, &opts, &mut |_| {}).unwrap();
    let student = &run.stages[1].metrics;
    assert_eq!(student.kind, "distill");
    assert_eq!(student.parameters, 29 * 16 + 16 + 16 * 3 + 3);
    assert!(student.compression_ratio > 10.0, "{student:?}");
    assert!(out.join("student/checkpoint/model.safetensors").is_file());
}

/// A `tickq pipeline` killed while its distill stage trains (`SIGKILL` once the state of epoch 2 of 3 is in place)
/// resumes that stage from its training state on the rerun, ends with the files of an uninterrupted run, and
/// leaves no training state behind; a state of another run (here: another temperature) is discarded, not resumed.
#[test]
fn an_interrupted_distill_stage_resumes_from_its_training_state() {
    let dir = scratch("distill-resume");
    let text = |temperature: f32| {
        format!(
            "[data]\ncsv = \"{}\"\n[[stages]]\nname = \"teacher\"\nkind = \"train\"\narch = \"demo-mlp\"\nepochs = 2\n\
             [[stages]]\nname = \"student\"\nkind = \"distill\"\nteacher = \"teacher\"\nstudent = \"tiny.toml\"\n\
             temperature = {temperature}\nepochs = 3\npatience = 0\n",
            slice_csv().display()
        )
    };
    write_config(&dir, &text(2.0));
    let config = dir.join("pipeline.toml");
    let args = |out: &Path| {
        vec![
            "pipeline".to_string(),
            config.display().to_string(),
            "--out".into(),
            out.display().to_string(),
            "--device".into(),
            "cpu".into(),
        ]
    };
    let pipeline = |out: &Path, crash: Option<&str>| {
        let args = args(out);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = crash.map(|c| ("TICKQ_CRASH_AT", c)).into_iter().collect();
        common::tickq_env(&args, &env)
    };
    let files = |out: &Path| {
        let history: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("student/history.json")).unwrap())
                .unwrap();
        let epochs: Vec<serde_json::Value> = history["epochs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let mut e = e.clone();
                e["seconds"] = 0.into();
                e
            })
            .collect();
        let weights = std::fs::read(out.join("student/checkpoint/model.safetensors")).unwrap();
        (weights, epochs)
    };
    let straight = dir.join("straight");
    assert!(pipeline(&straight, None).status.success());
    let out = dir.join("out");
    // The teacher's new checkpoint is renamed into place, as is the student's first state: the first swap is the
    // student's state after epoch 2.
    let killed = pipeline(&out, Some("replace-dir:after-swap#1"));
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(killed.status.signal(), Some(9), "{killed:?}");
    assert!(out.join("student/train-state").is_dir());
    assert!(!out.join("student/stage.json").exists());
    let rerun = pipeline(&out, None);
    let log = String::from_utf8_lossy(&rerun.stdout).to_string()
        + &String::from_utf8_lossy(&rerun.stderr);
    assert!(rerun.status.success(), "{log}");
    assert!(
        log.contains("student: resumed an interrupted run after epoch 2"),
        "{log}"
    );
    assert_eq!(files(&out), files(&straight));
    assert!(!out.join("student/train-state").exists());
    // A state left by a run of other settings is discarded and the stage trains from the start.
    let killed = pipeline(&out, Some("replace-dir:after-swap#1"));
    assert!(killed.status.success(), "{killed:?}");
    std::fs::remove_file(out.join("student/stage.json")).unwrap();
    let other = dir.join("other");
    write_config(&dir, &text(3.0));
    let _ = pipeline(&other, Some("replace-dir:after-swap#1"));
    std::fs::rename(
        other.join("student/train-state"),
        out.join("student/train-state"),
    )
    .unwrap();
    write_config(&dir, &text(2.0));
    let rerun = pipeline(&out, None);
    let log = String::from_utf8_lossy(&rerun.stdout).to_string()
        + &String::from_utf8_lossy(&rerun.stderr);
    assert!(rerun.status.success(), "{log}");
    assert!(
        log.contains("student: discarding the training state in"),
        "{log}"
    );
    assert!(!log.contains("resumed an interrupted run"), "{log}");
    assert_eq!(files(&out), files(&straight));
}

/// Parses `text` (with the tiny architecture beside it) and returns the error message.
fn config_error(text: &str) -> String {
    let dir = scratch("errors");
    std::fs::write(dir.join("tiny.toml"), TINY_ARCH).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, text).unwrap();
    match PipelineConfig::load(&path) {
        Ok(_) => panic!("the config should not parse:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_configs_name_the_stage_and_the_field() {
    let train = "[[stages]]\nname = \"t\"\nkind = \"train\"\narch = \"tiny.toml\"\n";
    let cases: &[(String, &[&str])] = &[
        (
            format!("{train}[[stages]]\nname = \"x\"\nkind = \"squash\"\n"),
            &["stage `x`", "`kind`", "unknown kind `squash`"],
        ),
        (
            format!("{train}[[stages]]\nname = \"q\"\nkind = \"quantize\"\n"),
            &["stage `q` (quantize)", "missing field `from`"],
        ),
        (
            format!(
                "[[stages]]\nname = \"q\"\nkind = \"quantize\"\nfrom = \"t\"\n{train}"
            ),
            &["stage `q` (quantize)", "field `from`", "`t` comes later"],
        ),
        (
            format!("{train}[[stages]]\nname = \"q\"\nkind = \"quantize\"\nfrom = \"nope\"\n"),
            &["stage `q` (quantize)", "field `from`", "no stage named `nope`"],
        ),
        (
            format!("{train}[[stages]]\nname = \"e\"\nkind = \"export\"\nfrom = \"t\"\n"),
            &["stage `e` (export)", "field `from`", "`t` is a train stage", "quantize"],
        ),
        (
            format!(
                "{train}[[stages]]\nname = \"p\"\nkind = \"prune\"\nfrom = \"t\"\nmethod = \"global\"\namount = 1.5\n"
            ),
            &["stage `p` (prune)", "field `amount`"],
        ),
        (
            format!(
                "{train}[[stages]]\nname = \"p\"\nkind = \"prune\"\nfrom = \"t\"\nmethod = \"snip\"\namount = 0.5\n"
            ),
            &["stage `p` (prune)", "field `method`", "snip"],
        ),
        (
            format!("{train}[[stages]]\nname = \"q\"\nkind = \"quantize\"\nfrom = \"t\"\nobserver = \"magic\"\n"),
            &["stage `q` (quantize)", "observer", "magic"],
        ),
        (
            format!("{train}[[stages]]\nname = \"q\"\nkind = \"quantize\"\nfrom = \"t\"\nweight_format = \"zip\"\n"),
            &["stage `q` (quantize)", "field `weight_format`"],
        ),
        (
            "[[stages]]\nname = \"t\"\nkind = \"train\"\narch = \"tiny.toml\"\nepoch = 3\n".into(),
            &["stage `t` (train)", "unknown field `epoch`"],
        ),
        (
            "[[stages]]\nname = \"t\"\nkind = \"train\"\narch = \"tiny.toml\"\nepochs = \"many\"\n".into(),
            &["stage `t` (train)", "epochs"],
        ),
        (
            "[[stages]]\nname = \"t\"\nkind = \"train\"\narch = \"missing.toml\"\n".into(),
            &["stage `t` (train)", "field `arch`", "missing.toml"],
        ),
        (
            format!("{train}{train}"),
            &["stage `t` (train)", "field `name`", "unique"],
        ),
        (
            "[[stages]]\nkind = \"train\"\narch = \"tiny.toml\"\n".into(),
            &["stage 1", "missing field `name`"],
        ),
        (
            format!(
                "{train}[[stages]]\nname = \"d\"\nkind = \"distill\"\nteacher = \"t\"\nstudent = \"tiny.toml\"\nalpha = 2.0\n"
            ),
            &["stage `d` (distill)", "alpha"],
        ),
        (
            "[data]\ntime_steps = 0\n[[stages]]\nname = \"t\"\nkind = \"train\"\narch = \"tiny.toml\"\n"
                .into(),
            &["[data]", "time_steps"],
        ),
        ("[data]\n".into(), &["no [[stages]]"]),
    ];
    for (text, wanted) in cases {
        let message = config_error(text);
        for w in *wanted {
            assert!(
                message.contains(w),
                "`{w}` not in the error for\n{text}\n-> {message}"
            );
        }
    }
}

#[test]
fn the_pipeline_command_prints_a_line_per_stage_and_fails_clearly() {
    let dir = scratch("cli");
    let out = dir.join("out");
    write_config(&dir, &config_text(0.5));
    let config = dir.join("pipeline.toml");
    let args = [
        "pipeline",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let first = tickq(&args);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let stdout = String::from_utf8(first.stdout).unwrap();
    assert!(stdout.contains("train (train): done in"), "{stdout}");
    assert!(stdout.contains("header (export): done in"), "{stdout}");
    assert!(
        stdout.contains("wrote") && stdout.contains("comparison.md"),
        "{stdout}"
    );
    // Progress bars stay off when stderr is not a terminal.
    let stderr = String::from_utf8(first.stderr).unwrap();
    assert!(!stderr.contains('['), "{stderr}");
    let second = String::from_utf8(tickq(&args).stdout).unwrap();
    assert_eq!(second.matches("skipped (unchanged)").count(), 5, "{second}");
    let forced = tickq(&[&args[..], &["--force"]].concat());
    let forced = String::from_utf8(forced.stdout).unwrap();
    assert!(!forced.contains("skipped"), "{forced}");

    std::fs::write(
        &config,
        "[[stages]]\nname = \"q\"\nkind = \"quantize\"\nfrom = \"t\"\n",
    )
    .unwrap();
    let bad = tickq(&args);
    assert!(!bad.status.success());
    let stderr = String::from_utf8(bad.stderr).unwrap();
    assert!(
        stderr.contains("pipeline.toml") && stderr.contains("stage `q` (quantize): field `from`"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn demo_runs_the_bundled_pipeline_and_keeps_its_report() {
    let dir = scratch("demo");
    let out = dir.join("demo");
    let run = tickq(&[
        "demo",
        "--out",
        out.to_str().unwrap(),
        "--data",
        slice_csv().to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8(run.stdout).unwrap();
    for stage in [
        "train (train)",
        "int8 (quantize)",
        "pruned (prune)",
        "pruned-int8 (quantize)",
    ] {
        assert!(stdout.contains(stage), "{stage} missing:\n{stdout}");
    }
    for f in [
        "checkpoint/model.safetensors",
        "checkpoint/arch.toml",
        "checkpoint/preprocess.json",
        "model.blob",
        "model.quant.json",
        "report.md",
        "report.json",
        "comparison.md",
        "accuracy_vs_size.svg",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    for key in REPORT_KEYS {
        assert!(report.pointer(key).is_some(), "{key} missing");
    }
    // The report is the unpruned pair's: its blob is the one in model.blob and int8/.
    let blob = std::fs::read(out.join("model.blob")).unwrap();
    assert_eq!(
        report["int8"]["blob_bytes"].as_u64().unwrap() as usize,
        blob.len()
    );
    assert_eq!(blob, std::fs::read(out.join("int8/model.blob")).unwrap());
    let comparison: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("comparison.json")).unwrap()).unwrap();
    let stage = |name: &str| {
        comparison["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stage"] == name)
            .unwrap_or_else(|| panic!("no stage {name}"))
            .clone()
    };
    let pruned = stage("pruned");
    assert!(
        (pruned["nonzero_fraction"].as_f64().unwrap() - 0.2).abs() < 0.01,
        "{pruned}"
    );
    // Dynamic and static quantization of the same model, side by side.
    let dynamic = stage("int8-dynamic");
    let fixed = stage("int8");
    assert_eq!(dynamic["nonzero_fraction"], fixed["nonzero_fraction"]);
    // The dynamic blob keeps the blocked layout (its kernel's); the static one takes this machine's dense
    // layout, which on x86-64 and aarch64 is `dense-dot` (rows padded to groups of 4 and a second bias).
    assert!(
        dynamic["blob_bytes"].as_u64() <= fixed["blob_bytes"].as_u64(),
        "{dynamic} {fixed}"
    );
    for s in [&dynamic, &fixed] {
        assert!(s["agreement"].as_f64().unwrap() > 0.9, "{s}");
        assert!(s["latency_p50_ns"].as_f64().unwrap() > 0.0, "{s}");
    }
}

#[test]
fn the_bundled_demo_config_parses() {
    let cfg = PipelineConfig::parse(pipeline::DEMO_CONFIG, "demo.toml", Path::new(".")).unwrap();
    let names: Vec<&str> = cfg.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["train", "int8", "int8-dynamic", "pruned", "pruned-int8"]
    );
}

#[test]
fn the_example_in_docs_pipeline_md_parses() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/PIPELINE.md"))
            .unwrap();
    let start = doc.find("```toml\n").expect("a toml example") + "```toml\n".len();
    let example = &doc[start..start + doc[start..].find("```").unwrap()];
    let dir = scratch("doc-example");
    std::fs::create_dir_all(dir.join("models")).unwrap();
    std::fs::write(dir.join("models/small.toml"), TINY_ARCH).unwrap();
    std::fs::copy(slice_csv(), dir.join("ticks.csv")).unwrap();
    std::fs::write(dir.join("pipeline.toml"), example).unwrap();
    let cfg = PipelineConfig::load(&dir.join("pipeline.toml")).unwrap();
    let kinds: Vec<&str> = cfg.stages.iter().map(|s| s.spec.kind()).collect();
    assert_eq!(
        kinds,
        [
            "train", "quantize", "prune", "distill", "quantize", "export"
        ]
    );
}

/// A quantize stage with `calibration = FILE` calibrates on the file's rows instead of the training split: given
/// the very rows the default stage picks from the training split (unstandardized, as the file takes them), its
/// blob is the default stage's, byte for byte; other rows give another blob, and an edited file reruns the stage.
#[test]
fn a_quantize_stage_calibrates_on_a_file() {
    let dir = scratch("pipeline-calibration");
    let data = tickq_host::steps::prepare_data(
        slice_csv(),
        &tickq_host::data::DatasetConfig::default(),
        None,
    )
    .unwrap();
    let train = &data.splits.train.x;
    let (n, width) = (train.nrows(), train.ncols());
    let take = tickq_host::quant::QuantConfig::default()
        .calibration_samples
        .min(n);
    let rows: Vec<usize> = (0..take).map(|i| i * n / take).collect();
    let picked = train.select(ndarray::Axis(0), &rows);
    let values: Vec<f32> = picked.iter().copied().collect();
    std::fs::write(
        dir.join("calibration.npy"),
        tickq_host::data::vectors::npy::to_bytes_f32(&[take, width], &values),
    )
    .unwrap();
    let text = format!(
        r#"
[data]
csv = "{csv}"

[[stages]]
name = "train"
kind = "train"
arch = "tiny.toml"
epochs = 1

[[stages]]
name = "int8"
kind = "quantize"
from = "train"
latency_calls = 100

[[stages]]
name = "from-file"
kind = "quantize"
from = "train"
latency_calls = 100
calibration = "calibration.npy"

[[stages]]
name = "first-rows"
kind = "quantize"
from = "train"
latency_calls = 100
calibration = "calibration.npy"
calibration_count = 50
"#,
        csv = slice_csv().display()
    );
    let cfg = write_config(&dir, &text);
    let out = dir.join("out");
    run(&cfg, &out, false);
    let blob = |stage: &str| std::fs::read(out.join(stage).join("model.blob")).unwrap();
    assert_eq!(blob("from-file"), blob("int8"));
    assert_ne!(blob("first-rows"), blob("int8"));
    // The file's hash is in the stage's fingerprint: an edited file reruns the stages that read it.
    let mut edited = values;
    edited[0] += 1.0;
    std::fs::write(
        dir.join("calibration.npy"),
        tickq_host::data::vectors::npy::to_bytes_f32(&[take, width], &edited),
    )
    .unwrap();
    let cfg = PipelineConfig::load(&dir.join("pipeline.toml")).unwrap();
    assert_eq!(
        statuses(&run(&cfg, &out, false)),
        [
            ("train", Skipped),
            ("int8", Skipped),
            ("from-file", Ran),
            ("first-rows", Ran)
        ]
    );
    // Refusals name the stage and the fields.
    let base = "[[stages]]\nname = \"t\"\nkind = \"train\"\narch = \"tiny.toml\"\n[[stages]]\nname = \"q\"\nkind = \"quantize\"\nfrom = \"t\"\n";
    let e = config_error(&format!("{base}calibration_count = 10\n"));
    assert!(
        e.contains("stage `q` (quantize): fields `calibration_tensor`, `calibration_rows`, `calibration_count`: they select part of a `calibration` file, and the stage names none"),
        "{e}"
    );
    let e = config_error(&format!("{base}calibration = \"missing.npy\"\n"));
    assert!(
        e.contains("stage `q` (quantize): field `calibration`:") && e.contains("missing.npy"),
        "{e}"
    );
    let e = config_error(&format!(
        "{base}calibration = \"tiny.toml\"\ndynamic = true\n"
    ));
    assert!(
        e.contains("stage `q` (quantize): fields `calibration`, `dynamic`: dynamic quantization chooses its activation scales at every inference and reads no calibration data"),
        "{e}"
    );
    let e = config_error(&format!(
        "{base}calibration = \"tiny.toml\"\ncalibration_rows = \"5..2\"\n"
    ));
    assert!(
        e.contains(
            "stage `q` (quantize): field `calibration_rows`: 5..2 is empty: START must be below END"
        ),
        "{e}"
    );
}
