//! Checkpoints on disk (issue 11): every refusal when one is read, and `kill -9` safety when one is written.
//!
//! The refusals run the `tickq` binary on a checkpoint of the tiny model with one file edited and assert the exit
//! code and the error line. The kill tests send `tickq train` and `tickq pipeline` a real `SIGKILL`, at every crash
//! point of every write (through `TICKQ_CRASH_AT`, see `tickq_host::fsutil`) and after measured delays, and check
//! that every output is absent, old or complete, that a rerun (`--resume` for training) ends with exactly the files
//! of an uninterrupted run, and that it leaves no temporary file behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tickq_host::checkpoint::{decode_safetensors, encode_safetensors, read_safetensors};
use tickq_host::fsutil::{CRASH_ENV, CRASH_POINTS, is_leftover};

mod common;

use common::{TINY_ARCH, fixtures, scratch, tickq};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn ok(args: &[&str]) {
    let out = tickq(args);
    assert!(
        out.status.success(),
        "tickq {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `tickq args`, which must exit with code 1, without a panic, printing exactly one `error: ` line; returns
/// that line without the prefix.
fn refused(args: &[&str]) -> String {
    let out = tickq(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "tickq {args:?}:\n{stderr}");
    assert!(!stderr.contains("panicked"), "tickq {args:?}:\n{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "tickq {args:?}:\n{stderr}");
    errors[0].to_string()
}

/// Trains the tiny model on the fixture slice into `out` with `extra` arguments.
fn train(out: &Path, extra: &[&str]) {
    let (csv, arch) = fixtures();
    let mut args = vec![
        "train",
        "--arch",
        s(arch),
        "--data",
        s(csv),
        "--out",
        s(out),
    ];
    args.extend(["--device", "cpu"]);
    args.extend(extra);
    ok(&args);
}

/// Copies the directory tree `from` to `to`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A copy of the checkpoint `from` at `to` with its `preprocess.json` edited by `edit`.
fn with_preprocess(from: &Path, to: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let _ = std::fs::remove_dir_all(to);
    copy_tree(from, to);
    let path = to.join("preprocess.json");
    let mut value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut value);
    std::fs::write(&path, value.to_string()).unwrap();
}

#[test]
fn a_bad_preprocess_json_is_refused_by_every_command_that_reads_it() {
    let (csv, arch) = fixtures();
    let dir = scratch("bad-preprocess");
    let ckpt = dir.join("ckpt");
    train(&ckpt, &["--epochs", "1"]);
    let blob = dir.join("m.blob");
    ok(&["quantize", s(&ckpt), "--data", s(csv), "--out", s(&blob)]);
    let bad = dir.join("bad");
    with_preprocess(&ckpt, &bad, |v| {
        v["normalizer"]["std"].as_array_mut().unwrap().truncate(3)
    });
    let pre = bad.join("preprocess.json");
    let expected = format!(
        "{}: normalizer.std: 3 entries, but the architecture has 29 features",
        pre.display()
    );
    let out = |name: &str| dir.join(name).display().to_string();
    let commands: Vec<Vec<String>> = vec![
        vec![
            "quantize".into(),
            s(&bad).into(),
            "--out".into(),
            out("q.blob"),
        ],
        vec![
            "eval".into(),
            s(&bad).into(),
            "--blob".into(),
            s(&blob).into(),
            "--out".into(),
            out("report"),
        ],
        vec![
            "prune".into(),
            s(&bad).into(),
            "--method".into(),
            "global".into(),
            "--amount".into(),
            "0.5".into(),
            "--out".into(),
            out("pruned"),
        ],
        vec!["sensitivity".into(), s(&bad).into()],
        vec![
            "distill".into(),
            "--teacher".into(),
            s(&bad).into(),
            "--student".into(),
            s(arch).into(),
            "--out".into(),
            out("student"),
        ],
    ];
    for mut args in commands {
        args.extend(["--data".into(), s(csv).into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(refused(&args), expected, "tickq {args:?}");
    }
    // `import --preprocess` checks the file too, and writes nothing.
    let imported = dir.join("imported");
    let err = refused(&[
        "import",
        "--weights",
        s(&ckpt.join("model.safetensors")),
        "--arch",
        s(arch),
        "--preprocess",
        s(&pre),
        "--out",
        s(&imported),
    ]);
    assert_eq!(err, expected);
    assert!(!imported.exists());

    // Each kind of bad field, through `quantize` (which reads the checkpoint before any data).
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|v| v["normalizer"]["std"][4] = (-1.0).into()),
            "normalizer.std[4]: -1 is below 1e-6: a standard deviation must be finite and at least 1e-6 \
             (`Normalizer::fit` never writes a smaller one)",
        ),
        (
            Box::new(|v| v["normalizer"]["std"][0] = 0.0.into()),
            "normalizer.std[0]: 0 is below 1e-6: a standard deviation must be finite and at least 1e-6 \
             (`Normalizer::fit` never writes a smaller one)",
        ),
        (
            Box::new(|v| v["normalizer"]["std"][7] = 1e-30.into()),
            "normalizer.std[7]: 0.000000000000000000000000000001 is below 1e-6: a standard deviation must be \
             finite and at least 1e-6 (`Normalizer::fit` never writes a smaller one)",
        ),
        (
            Box::new(|v| v["normalizer"]["mean"][2] = 1e39.into()),
            "normalizer.mean[2]: inf is not a finite number",
        ),
        (
            Box::new(|v| {
                v["normalizer"]["mean"].as_array_mut().unwrap().pop();
            }),
            "normalizer.mean: 28 entries, but the architecture has 29 features",
        ),
        (
            Box::new(|v| {
                v["label_names"].as_array_mut().unwrap().pop();
            }),
            "label_names: 2 entries, but the architecture has 3 classes",
        ),
        (
            Box::new(|v| v["feature_names"].as_array_mut().unwrap().swap(0, 1)),
            "feature_names[0]: `ret_5t`, but the dataset.features settings give `ret_1t` here",
        ),
        (
            Box::new(|v| v["dataset"]["time_steps"] = 4.into()),
            "dataset.time_steps: 4, but the architecture has 1",
        ),
        (
            Box::new(|v| v["data_sha256"] = "not a hash".into()),
            "data_sha256: `not a hash` is not a SHA-256 in hex (64 digits 0-9 and a-f)",
        ),
    ];
    for (edit, problem) in &cases {
        with_preprocess(&ckpt, &bad, edit);
        let err = refused(&[
            "quantize",
            s(&bad),
            "--data",
            s(csv),
            "--out",
            &out("q.blob"),
        ]);
        assert_eq!(err, format!("{}: {problem}", pre.display()));
    }
    // Unknown keys are refused at every level, and name the key.
    for edit in [
        Box::new(|v: &mut serde_json::Value| v["extra"] = 1.into()) as Edit,
        Box::new(|v| v["normalizer"]["scale"] = 1.into()),
        Box::new(|v| v["dataset"]["labels"]["horizn"] = 5.into()),
    ] {
        with_preprocess(&ckpt, &bad, edit);
        let err = refused(&[
            "quantize",
            s(&bad),
            "--data",
            s(csv),
            "--out",
            &out("q.blob"),
        ]);
        assert!(
            err.starts_with(&format!("{}: invalid JSON: unknown field `", pre.display())),
            "{err}"
        );
    }
    assert!(!dir.join("q.blob").exists());
}

#[test]
fn non_finite_weights_are_refused_naming_the_tensor() {
    let (csv, _) = fixtures();
    let dir = scratch("nan-weights");
    let ckpt = dir.join("ckpt");
    train(&ckpt, &["--epochs", "1"]);
    let weights = ckpt.join("model.safetensors");
    let (mut tensors, meta) = read_safetensors(&weights).unwrap();
    let fc2_bias = tensors.iter().position(|t| t.0 == "fc2.bias").unwrap();
    tensors[fc2_bias].2[1] = f32::INFINITY;
    let bytes = encode_safetensors(&tensors, Some(meta.into_iter().collect()), &weights).unwrap();
    std::fs::write(&weights, bytes).unwrap();
    let err = refused(&[
        "quantize",
        s(&ckpt),
        "--data",
        s(csv),
        "--out",
        s(&dir.join("m.blob")),
    ]);
    assert!(
        err.starts_with(&format!("{}: ", weights.display()))
            && err.contains("fc2.bias")
            && err.contains("index 1"),
        "{err}"
    );
}

/// The string field `key` of the JSON file `path`.
fn json_field(path: &Path, key: &str) -> String {
    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    value[key].as_str().unwrap().to_string()
}

#[test]
fn eval_refuses_a_blob_of_another_model_naming_both_files() {
    let (csv, _) = fixtures();
    let dir = scratch("other-blob");
    let ckpt = dir.join("ckpt");
    train(&ckpt, &["--epochs", "1"]);
    let eval = |blob: &Path| {
        refused(&[
            "eval",
            s(&ckpt),
            "--blob",
            s(blob),
            "--data",
            s(csv),
            "--out",
            s(&dir.join("report")),
            "--latency-calls",
            "100",
        ])
    };
    let blob_of = |name: &str, arch_text: String| {
        let arch_file = dir.join(format!("{name}.toml"));
        std::fs::write(&arch_file, arch_text).unwrap();
        let other = dir.join(name);
        let (csv, _) = fixtures();
        ok(&[
            "train",
            "--arch",
            s(&arch_file),
            "--data",
            s(csv),
            "--out",
            s(&other),
            "--epochs",
            "1",
            "--device",
            "cpu",
        ]);
        let blob = dir.join(format!("{name}.blob"));
        ok(&["quantize", s(&other), "--data", s(csv), "--out", s(&blob)]);
        blob
    };
    let renamed = blob_of("renamed", TINY_ARCH.replace("\"tiny\"", "\"wide\""));
    assert_eq!(
        eval(&renamed),
        format!(
            "{} is not a blob of the checkpoint {}: the model name is `wide` in the blob and `tiny` in the checkpoint",
            renamed.display(),
            ckpt.display()
        )
    );
    let narrower = blob_of("narrower", TINY_ARCH.replace("out = 16", "out = 8"));
    let err = eval(&narrower);
    assert!(
        err.ends_with(
            "the weighted layer 1 is dense 29 -> 8 in the blob and dense 29 -> 16 in the checkpoint"
        ),
        "{err}"
    );
    // The same model recorded as trained on other data: its blob records the data it was trained on.
    let elsewhere = dir.join("elsewhere");
    with_preprocess(&ckpt, &elsewhere, |v| {
        v["data_sha256"] = "0".repeat(64).into()
    });
    let blob = dir.join("m.blob");
    ok(&[
        "quantize",
        s(&elsewhere),
        "--data",
        s(csv),
        "--out",
        s(&blob),
    ]);
    let err = eval(&blob);
    assert!(
        err.starts_with(&format!(
            "{} is not a blob of the checkpoint",
            blob.display()
        )) && err.ends_with(&format!(
            "the training data (SHA-256) is {} in the blob and {} in the checkpoint",
            "0".repeat(64),
            json_field(&ckpt.join("preprocess.json"), "data_sha256")
        )),
        "{err}"
    );
    // The checkpoint's own blob passes the check.
    ok(&["quantize", s(&ckpt), "--data", s(csv), "--out", s(&blob)]);
    ok(&[
        "eval",
        s(&ckpt),
        "--blob",
        s(&blob),
        "--data",
        s(csv),
        "--out",
        s(&dir.join("report")),
        "--latency-calls",
        "100",
    ]);
}

#[test]
fn a_hand_edited_training_state_is_refused_on_resume() {
    let dir = scratch("edited-state");
    let ckpt = dir.join("ckpt");
    train(&ckpt, &["--epochs", "2"]);
    let path = ckpt.join("train-state").join("train_state.safetensors");
    let (tensors, meta) = decode_safetensors(&std::fs::read(&path).unwrap(), &path).unwrap();
    let key = "tickq.train_state";
    let mut state: serde_json::Value = serde_json::from_str(&meta[key]).unwrap();
    state["best_epoch"] = 1_000_000.into();
    let meta = std::collections::HashMap::from([(key.to_string(), state.to_string())]);
    std::fs::write(
        &path,
        encode_safetensors(&tensors, Some(meta), &path).unwrap(),
    )
    .unwrap();
    let (csv, arch) = fixtures();
    let err = refused(&[
        "train",
        "--arch",
        s(arch),
        "--data",
        s(csv),
        "--out",
        s(&ckpt),
        "--epochs",
        "3",
        "--resume",
        "--device",
        "cpu",
    ]);
    assert_eq!(
        err,
        format!(
            "{}: best_epoch: 1000000 is beyond the 2 epochs run",
            path.display()
        )
    );
}

// ---------------------------------------------------------------------------------------------------------------
// kill -9

/// Runs `tickq args` with the crash point `point#nth` armed; returns whether the process was killed by `SIGKILL`
/// (otherwise it must have succeeded: the point was reached fewer than `nth` times).
fn run_armed(args: &[&str], point: &str, nth: usize) -> bool {
    let out = Command::new(env!("CARGO_BIN_EXE_tickq"))
        .args(args)
        .env(CRASH_ENV, format!("{point}#{nth}"))
        .output()
        .unwrap();
    killed_or_ok(&out, args)
}

/// Whether `out` is a `SIGKILL`ed run; panics if it is neither that nor a success.
fn killed_or_ok(out: &Output, args: &[&str]) -> bool {
    use std::os::unix::process::ExitStatusExt;
    if out.status.signal() == Some(9) {
        return true;
    }
    assert!(
        out.status.success(),
        "tickq {args:?}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

/// Runs `tickq args` and sends it `SIGKILL` after `delay`; returns whether it was still running then.
fn run_killed_after(args: &[&str], delay: Duration) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tickq"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    // `Child::kill` sends SIGKILL on Unix.
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    killed_or_ok(&out, args)
}

/// The files under `dir` whose names are leftovers of an interrupted write, recursively.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries {
        let entry = entry.unwrap();
        if is_leftover(&entry.file_name()) {
            found.push(entry.path());
        } else if entry.file_type().unwrap().is_dir() {
            found.extend(leftovers(&entry.path()));
        }
    }
    found
}

/// The bytes of each of `files` under `dir` (`None` for a missing one).
fn contents(dir: &Path, files: &[&str]) -> Vec<Option<Vec<u8>>> {
    files
        .iter()
        .map(|f| std::fs::read(dir.join(f)).ok())
        .collect()
}

const CHECKPOINT: [&str; 3] = ["model.safetensors", "arch.toml", "preprocess.json"];

/// Asserts that the checkpoint at `dir` is absent (when `may_be_absent`), exactly `old` or exactly `new`.
fn assert_old_or_new(dir: &Path, old: &[Option<Vec<u8>>], new: &[Option<Vec<u8>>], what: &str) {
    let now = contents(dir, &CHECKPOINT);
    let absent = now.iter().all(Option::is_none);
    assert!(
        absent || now == old || now == new,
        "{what}: {} is a mix of two checkpoints (or incomplete): {:?}",
        dir.display(),
        now.iter().map(Option::is_some).collect::<Vec<_>>()
    );
}

/// `tickq train` killed at every crash point it reaches (each hit of each point), over a directory that holds an
/// older checkpoint of another model and labels: the checkpoint is always the old one or the new one, the training state
/// is absent or loads, and `--resume` ends with exactly the files of an uninterrupted run and no leftovers.
#[test]
fn train_killed_at_every_write_step_resumes_to_the_same_files() {
    let dir = scratch("kill-train");
    let (csv, arch) = fixtures();
    // The old checkpoint differs in every file: another model name, other labels.
    let old = dir.join("old");
    let old_arch = dir.join("old.toml");
    std::fs::write(&old_arch, TINY_ARCH.replace("\"tiny\"", "\"old\"")).unwrap();
    ok(&[
        "train",
        "--arch",
        s(&old_arch),
        "--data",
        s(csv),
        "--out",
        s(&old),
        "--epochs",
        "1",
        "--horizon",
        "50",
        "--device",
        "cpu",
    ]);
    let straight = dir.join("straight");
    train(&straight, &["--epochs", "3"]);
    let old_files = contents(&old, &CHECKPOINT);
    let new_files = contents(&straight, &CHECKPOINT);
    for (i, file) in CHECKPOINT.iter().enumerate() {
        assert_ne!(old_files[i], new_files[i], "{file}");
    }
    let ckpt = dir.join("run").join("ckpt");
    let args = |resume: bool| {
        let mut a = vec![
            "train",
            "--arch",
            s(arch),
            "--data",
            s(csv),
            "--out",
            s(&ckpt),
            "--epochs",
            "3",
            "--device",
            "cpu",
        ];
        if resume {
            a.push("--resume");
        }
        a
    };
    let mut kills: BTreeMap<&str, usize> = BTreeMap::new();
    for point in CRASH_POINTS {
        for nth in 1.. {
            let _ = std::fs::remove_dir_all(dir.join("run"));
            copy_tree(&old, &ckpt);
            if !run_armed(&args(false), point, nth) {
                break;
            }
            *kills.entry(point).or_default() += 1;
            let what = format!("killed at {point}#{nth}");
            assert_old_or_new(&ckpt, &old_files, &new_files, &what);
            let state = ckpt.join("train-state");
            if state.exists() {
                // A training state is whole: its plain checkpoint loads and its state file decodes.
                tickq_host::checkpoint::load_checkpoint(&state)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                let path = state.join("train_state.safetensors");
                decode_safetensors(&std::fs::read(&path).unwrap(), &path)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
            }
            ok(&args(true));
            assert_eq!(
                contents(&ckpt, &CHECKPOINT),
                new_files,
                "{what}, then resumed"
            );
            assert_eq!(leftovers(&dir.join("run")), Vec::<PathBuf>::new(), "{what}");
        }
    }
    // Every step of a training run's writes was hit: the removal of the old state, then each epoch's state and the
    // final checkpoint (four directory replacements; the first epoch's state is new, so it is renamed into place
    // rather than swapped).
    assert_eq!(kills.get("remove-dir:after-rename"), Some(&1), "{kills:?}");
    assert_eq!(kills.get("replace-dir:partial"), Some(&4), "{kills:?}");
    assert_eq!(kills.get("replace-dir:before-swap"), Some(&4), "{kills:?}");
    assert_eq!(kills.get("replace-dir:after-swap"), Some(&3), "{kills:?}");
}

/// A pipeline of train, quantize and export over the fixture slice, written into `dir`: the tiny model labelled
/// over the next 100 trades, or (`old`) a copy named `old` labelled over the next 50, so that every file of its
/// checkpoint differs.
fn pipeline_config(dir: &Path, old: bool) -> PathBuf {
    let (csv, _) = fixtures();
    let (name, arch, horizon) = if old {
        ("old", TINY_ARCH.replace("\"tiny\"", "\"old\""), 50)
    } else {
        ("new", TINY_ARCH.to_string(), 100)
    };
    std::fs::write(dir.join(format!("{name}.toml")), arch).unwrap();
    let path = dir.join(format!("pipeline-{name}.toml"));
    let text = format!(
        r#"
[data]
csv = "{csv}"
[data.labels]
horizon = {horizon}

[[stages]]
name = "train"
kind = "train"
arch = "{name}.toml"
epochs = 2

[[stages]]
name = "int8"
kind = "quantize"
from = "train"
latency_calls = 200

[[stages]]
name = "header"
kind = "export"
from = "int8"
format = "c-header"
vectors = 3
"#,
        csv = csv.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The pipeline outputs whose bytes a seeded run determines (reports and metrics hold timings).
const PIPELINE_FILES: [&str; 10] = [
    "train/checkpoint/model.safetensors",
    "train/checkpoint/arch.toml",
    "train/checkpoint/preprocess.json",
    "train/stage.json",
    "int8/model.blob",
    "int8/model.quant.json",
    "int8/stage.json",
    "header/model.h",
    "header/model.tqv",
    "header/stage.json",
];

/// Checks a pipeline output directory after a kill: each checkpoint is absent, old or new as a whole, each
/// deterministic file absent, old or new, and each stage with a `stage.json` complete (all its outputs there, and
/// the deterministic ones of the same run as the record).
fn assert_pipeline_old_or_new(
    out: &Path,
    old: &BTreeMap<&str, Vec<u8>>,
    new: &BTreeMap<&str, Vec<u8>>,
    what: &str,
) {
    let pick = |files: &BTreeMap<&str, Vec<u8>>| -> Vec<Option<Vec<u8>>> {
        CHECKPOINT
            .iter()
            .map(|f| files.get(format!("train/checkpoint/{f}").as_str()).cloned())
            .collect()
    };
    assert_old_or_new(&out.join("train/checkpoint"), &pick(old), &pick(new), what);
    for file in PIPELINE_FILES {
        if let Ok(now) = std::fs::read(out.join(file)) {
            assert!(
                Some(&now) == old.get(file) || Some(&now) == new.get(file),
                "{what}: {file} is neither the old nor the new one"
            );
        }
    }
    for stage in ["train", "int8", "header"] {
        let Ok(record) = std::fs::read(out.join(stage).join("stage.json")) else {
            continue;
        };
        let key = format!("{stage}/stage.json");
        let run = if Some(&record) == new.get(key.as_str()) {
            new
        } else {
            old
        };
        let record: serde_json::Value = serde_json::from_slice(&record).unwrap();
        for output in record["outputs"].as_array().unwrap() {
            let file = format!("{stage}/{}", output.as_str().unwrap());
            let now = std::fs::read(out.join(&file))
                .unwrap_or_else(|_| panic!("{what}: {stage} has a stage.json but no {file}"));
            if let Some(expected) = run.get(file.as_str()) {
                assert_eq!(&now, expected, "{what}: {file} is not of its stage's run");
            }
        }
    }
}

/// Runs the pipeline config `config` into `out` and returns its deterministic files.
fn pipeline_files(config: &Path, out: &Path) -> BTreeMap<&'static str, Vec<u8>> {
    ok(&["pipeline", s(config), "--out", s(out), "--device", "cpu"]);
    PIPELINE_FILES
        .iter()
        .map(|f| (*f, std::fs::read(out.join(f)).unwrap()))
        .collect()
}

/// `tickq pipeline` killed at every crash point it reaches (each hit of each point) and after measured delays,
/// over the outputs of an older run of other settings: every output is absent, old or complete, and a rerun ends
/// with exactly the files of an uninterrupted run and no leftovers.
#[test]
fn pipeline_killed_at_every_write_step_reruns_to_the_same_files() {
    let dir = scratch("kill-pipeline");
    let old_config = pipeline_config(&dir, true);
    let config = pipeline_config(&dir, false);
    let old = pipeline_files(&old_config, &dir.join("old"));
    let started = Instant::now();
    let new = pipeline_files(&config, &dir.join("straight"));
    let duration = started.elapsed();
    for file in PIPELINE_FILES {
        assert_ne!(old.get(file), new.get(file), "{file}");
    }
    let out = dir.join("run").join("out");
    let args = ["pipeline", s(&config), "--out", s(&out), "--device", "cpu"];
    let check_and_rerun = |what: &str| {
        assert_pipeline_old_or_new(&out, &old, &new, what);
        let files = pipeline_files(&config, &out);
        assert_eq!(files, new, "{what}, then rerun");
        assert_eq!(leftovers(&dir.join("run")), Vec::<PathBuf>::new(), "{what}");
    };
    let mut kills: BTreeMap<&str, usize> = BTreeMap::new();
    for point in CRASH_POINTS {
        for nth in 1.. {
            let _ = std::fs::remove_dir_all(dir.join("run"));
            copy_tree(&dir.join("old"), &out);
            if !run_armed(&args, point, nth) {
                break;
            }
            *kills.entry(point).or_default() += 1;
            check_and_rerun(&format!("killed at {point}#{nth}"));
        }
    }
    // Each of the run's 17 files was interrupted at every step: train's history.json, metrics.json and stage.json;
    // int8's model.blob, model.quant.json, report.md, report.json, metrics.json and stage.json; header's model.h,
    // model.tqv, metrics.json and stage.json; comparison.md, comparison.json and the two charts. So was its one
    // checkpoint.
    let files = kills.get("write-file:before-rename").copied().unwrap_or(0);
    assert_eq!(files, 17, "{kills:?}");
    for point in ["write-file:partial", "write-file:after-rename"] {
        assert_eq!(kills.get(point), Some(&files), "{kills:?}");
    }
    for point in [
        "replace-dir:partial",
        "replace-dir:before-swap",
        "replace-dir:after-swap",
    ] {
        assert_eq!(kills.get(point), Some(&1), "{kills:?}");
    }
    println!("kills per crash point: {kills:?}");
    // Kills at arbitrary moments, spread over an uninterrupted run's duration.
    let mut interrupted = 0;
    for tenth in [1, 3, 5, 7, 9] {
        let _ = std::fs::remove_dir_all(dir.join("run"));
        copy_tree(&dir.join("old"), &out);
        if run_killed_after(&args, duration * tenth / 10) {
            interrupted += 1;
        }
        check_and_rerun(&format!("killed after {tenth}/10 of a run"));
    }
    println!("{interrupted} of 5 timed kills came before the pipeline finished");
}
