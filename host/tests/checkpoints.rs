//! Checkpoints on disk (issue 11): every refusal when one is read, and `kill -9` safety when one is written.
//!
//! The refusals are a table, [`corpus`], one row per bad input: a checkpoint of the tiny model with one file
//! edited (or a blob of another model), a `tickq` command line, the exit code and the exact first line of the
//! error. [`the_bad_checkpoint_corpus_is_refused_row_by_row`] runs every row and also checks that a refused command
//! panics nowhere and writes nothing. The kill tests send `tickq train` and `tickq pipeline` a real `SIGKILL`, at
//! every crash point of every write (through `TICKQ_CRASH_AT`, see `tickq_host::fsutil`) and after measured delays,
//! and check that every output is absent, old or complete, that a rerun (`--resume` for training) ends with exactly
//! the files of an uninterrupted run, and that it leaves no temporary file behind; `tickq distill` is killed at
//! every crash point too and resumed with `--resume`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tickq_host::checkpoint::{decode_safetensors, encode_safetensors, read_safetensors};
use tickq_host::fsutil::{CRASH_ENV, CRASH_POINTS, is_leftover};

mod common;

use common::{
    TINY_ARCH, copy_tree, fixtures, json, ok, ok_stderr, s, scratch, snapshot, tickq, tickq_env,
    train_args, train_tiny,
};

/// Trains the tiny model on the fixture slice into `out` on the CPU with `extra` arguments.
fn train(out: &Path, extra: &[&str]) {
    train_tiny(out, &[&["--device", "cpu"], extra].concat());
}

// ---------------------------------------------------------------------------------------------------------------
// The bad-checkpoint corpus

/// Changes a case's copy of the trained checkpoint (the directory it is given).
type Setup = Box<dyn Fn(&Path)>;

/// One row of the corpus: what is wrong, the setup, the command line (placeholders in braces, see [`expand`]), the
/// exit code and the first line of the error (placeholders too).
struct Case {
    what: &'static str,
    setup: Setup,
    args: &'static str,
    code: i32,
    error: String,
}

fn case(what: &'static str, setup: Setup, args: &'static str, error: impl Into<String>) -> Case {
    Case {
        what,
        setup,
        args,
        code: 2,
        error: error.into(),
    }
}

/// No change: the row's command line or blob is what is wrong.
fn untouched() -> Setup {
    Box::new(|_| {})
}

/// Edits the checkpoint's `preprocess.json` as JSON.
fn pre(edit: impl Fn(&mut serde_json::Value) + 'static) -> Setup {
    Box::new(move |ck| {
        let path = ck.join("preprocess.json");
        let mut value = json(&path);
        edit(&mut value);
        std::fs::write(&path, value.to_string()).unwrap();
    })
}

/// Replaces the file `file` of the checkpoint by what `edit` makes of its bytes.
fn bytes(file: &'static str, edit: impl Fn(Vec<u8>) -> Vec<u8> + 'static) -> Setup {
    Box::new(move |ck| {
        let path = ck.join(file);
        let old = std::fs::read(&path).unwrap();
        std::fs::write(&path, edit(old)).unwrap();
    })
}

/// Removes the file `file` of the checkpoint.
fn remove(file: &'static str) -> Setup {
    Box::new(move |ck| std::fs::remove_file(ck.join(file)).unwrap())
}

/// Replaces the file `file` of the checkpoint by a link to `/dev/zero`, an endless file: the reader must stop at
/// its limit instead of reading until memory runs out.
fn endless(file: &'static str) -> Setup {
    Box::new(move |ck| {
        let path = ck.join(file);
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
    })
}

type Tensors = Vec<(String, Vec<usize>, Vec<f32>)>;

/// The position of the tensor `name` in `t`.
fn at(t: &Tensors, name: &str) -> usize {
    t.iter()
        .position(|t| t.0 == name)
        .unwrap_or_else(|| panic!("no tensor {name}"))
}

/// Edits the tensors of the checkpoint's `model.safetensors` (its metadata kept).
fn weights(edit: impl Fn(&mut Tensors) + 'static) -> Setup {
    Box::new(move |ck| {
        let path = ck.join("model.safetensors");
        let (mut tensors, meta) = read_safetensors(&path).unwrap();
        edit(&mut tensors);
        let bytes = encode_safetensors(&tensors, Some(meta.into_iter().collect()), &path).unwrap();
        std::fs::write(&path, bytes).unwrap();
    })
}

/// The metadata key of the training state.
const STATE_KEY: &str = "tickq.train_state";

/// Edits the training state (`train-state/train_state.safetensors`): its JSON metadata and its tensors.
fn state(edit: impl Fn(&mut serde_json::Value, &mut Tensors) + 'static) -> Setup {
    Box::new(move |ck| {
        let path = ck.join("train-state").join("train_state.safetensors");
        let (mut tensors, meta) =
            decode_safetensors(&std::fs::read(&path).unwrap(), &path).unwrap();
        let mut value: serde_json::Value = serde_json::from_str(&meta[STATE_KEY]).unwrap();
        edit(&mut value, &mut tensors);
        let meta = HashMap::from([(STATE_KEY.to_string(), value.to_string())]);
        std::fs::write(
            &path,
            encode_safetensors(&tensors, Some(meta), &path).unwrap(),
        )
        .unwrap();
    })
}

/// Replaces the JSON number at `pointer` by itself plus one.
fn plus_one(v: &mut serde_json::Value, pointer: &str) {
    let n = v.pointer(pointer).unwrap().as_u64().unwrap();
    *v.pointer_mut(pointer).unwrap() = (n + 1).into();
}

/// Replaces the first `from` in `bytes` by `to`, which has the same length.
fn replace_once(bytes: Vec<u8>, from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let i = bytes
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .unwrap_or_else(|| panic!("no {from}"));
    let mut out = bytes;
    out[i..i + to.len()].copy_from_slice(to.as_bytes());
    out
}

const QUANTIZE: &str = "quantize {ck} --data {csv} --out {out}";
const RESUME: &str = "train --arch {arch} --data {csv} --out {ck} --epochs 3 --resume --device cpu";
const EVAL: &str =
    "eval {ck} --blob {blob} --data {csv} --out {out} --latency-calls 100 --device cpu";
const IMPORT: &str =
    "import --weights {w} --arch {arch} --preprocess {pre} --data {csv} --out {out}";
const STD_SHORT: &str = "{pre}: normalizer.std: 3 entries, but the architecture has 29 features";
const STD_HINT: &str = "a standard deviation must be finite and at least 1e-6 (`Normalizer::fit` never writes a smaller one)";

/// The rows. Placeholders: `{ck}` the case's checkpoint, `{pre}`, `{w}`, `{a}` and `{state}` its
/// `preprocess.json`, `model.safetensors`, `arch.toml` and training state, `{csv}` and `{arch}` the fixtures,
/// `{out}` an output path, `{blob}` the checkpoint's own blob, `{wide}`, `{narrow}` and `{elsewhere}` blobs of a
/// renamed model, of a narrower one, and of the same model recorded as trained on other data, `{hash}` the
/// checkpoint's data hash (`{hash_upper}` in upper case).
fn corpus() -> Vec<Case> {
    let std_short = || pre(|v| v["normalizer"]["std"].as_array_mut().unwrap().truncate(3));
    let rows = vec![
        // preprocess.json: the file itself.
        case(
            "no preprocess.json",
            remove("preprocess.json"),
            QUANTIZE,
            "{ck}: the checkpoint has no preprocess.json (import it with `tickq import --data` to record one)",
        ),
        case(
            "preprocess.json is not JSON",
            bytes("preprocess.json", |_| b"feature_names = 1\n".to_vec()),
            QUANTIZE,
            "{pre}: invalid JSON: expected ident at line 1 column 2",
        ),
        case(
            "preprocess.json is empty",
            bytes("preprocess.json", |_| Vec::new()),
            QUANTIZE,
            "{pre}: invalid JSON: EOF while parsing a value at line 1 column 0",
        ),
        case(
            "preprocess.json is cut short",
            bytes("preprocess.json", |b| b[..b.len() / 2].to_vec()),
            QUANTIZE,
            "{pre}: invalid JSON: EOF while parsing a list at line …",
        ),
        case(
            "preprocess.json is a list",
            bytes("preprocess.json", |_| b"[1, 2]".to_vec()),
            QUANTIZE,
            "{pre}: invalid JSON: invalid type: integer `1`, expected a sequence at line 1 column 2",
        ),
        case(
            "preprocess.json is not UTF-8",
            bytes("preprocess.json", |_| {
                b"{\"feature_names\": [\"\xff\"]}".to_vec()
            }),
            QUANTIZE,
            "{pre}: not valid UTF-8 (at byte 20)",
        ),
        case(
            "preprocess.json is a directory",
            Box::new(|ck| {
                std::fs::remove_file(ck.join("preprocess.json")).unwrap();
                std::fs::create_dir(ck.join("preprocess.json")).unwrap();
            }),
            QUANTIZE,
            "{pre}: Is a directory (os error 21)",
        ),
        // preprocess.json: keys and types.
        case(
            "unknown top-level key",
            pre(|v| v["extra"] = 1.into()),
            QUANTIZE,
            "{pre}: invalid JSON: unknown field `extra`, expected one of `feature_names`, `label_names`, `normalizer`, `data_sha256`, `dataset`, `split` at line 1 column …",
        ),
        case(
            "unknown normalizer key",
            pre(|v| v["normalizer"]["scale"] = 1.into()),
            QUANTIZE,
            "{pre}: invalid JSON: unknown field `scale`, expected `mean` or `std` at line 1 column …",
        ),
        case(
            "unknown dataset.labels key",
            pre(|v| v["dataset"]["labels"]["horizn"] = 5.into()),
            QUANTIZE,
            "{pre}: invalid JSON: unknown field `horizn`, expected one of `horizon`, `dead_band`, `dead_band_bps` at line 1 column …",
        ),
        case(
            "missing normalizer",
            pre(|v| {
                v.as_object_mut().unwrap().remove("normalizer");
            }),
            QUANTIZE,
            "{pre}: invalid JSON: missing field `normalizer` at line 1 column …",
        ),
        case(
            "missing normalizer.std",
            pre(|v| {
                v["normalizer"].as_object_mut().unwrap().remove("std");
            }),
            QUANTIZE,
            "{pre}: invalid JSON: missing field `std` at line 1 column …",
        ),
        case(
            "missing data_sha256",
            pre(|v| {
                v.as_object_mut().unwrap().remove("data_sha256");
            }),
            QUANTIZE,
            "{pre}: invalid JSON: missing field `data_sha256` at line 1 column …",
        ),
        case(
            "feature_names is a string",
            pre(|v| v["feature_names"] = "ret_1t".into()),
            QUANTIZE,
            "{pre}: invalid JSON: invalid type: string \"ret_1t\", expected a sequence at line 1 column …",
        ),
        case(
            "a std is a string",
            pre(|v| v["normalizer"]["std"][3] = "1.0".into()),
            QUANTIZE,
            "{pre}: invalid JSON: invalid type: string \"1.0\", expected f32 at line 1 column …",
        ),
        case(
            "a std is NaN (JSON null)",
            pre(|v| v["normalizer"]["std"][5] = serde_json::Value::Null),
            QUANTIZE,
            "{pre}: invalid JSON: invalid type: null, expected f32 at line 1 column …",
        ),
        case(
            "a mean is NaN (JSON null)",
            pre(|v| v["normalizer"]["mean"][0] = serde_json::Value::Null),
            QUANTIZE,
            "{pre}: invalid JSON: invalid type: null, expected f32 at line 1 column …",
        ),
        case(
            "data_sha256 is a number",
            pre(|v| v["data_sha256"] = 7.into()),
            QUANTIZE,
            "{pre}: invalid JSON: invalid type: integer `7`, expected a string at line 1 column …",
        ),
        // preprocess.json: lengths.
        case("normalizer.std too short", std_short(), QUANTIZE, STD_SHORT),
        case(
            "normalizer.std too long",
            pre(|v| {
                v["normalizer"]["std"]
                    .as_array_mut()
                    .unwrap()
                    .push(1.0.into())
            }),
            QUANTIZE,
            "{pre}: normalizer.std: 30 entries, but the architecture has 29 features",
        ),
        case(
            "normalizer.mean too short",
            pre(|v| {
                v["normalizer"]["mean"].as_array_mut().unwrap().pop();
            }),
            QUANTIZE,
            "{pre}: normalizer.mean: 28 entries, but the architecture has 29 features",
        ),
        case(
            "normalizer.mean empty",
            pre(|v| v["normalizer"]["mean"] = serde_json::json!([])),
            QUANTIZE,
            "{pre}: normalizer.mean: 0 entries, but the architecture has 29 features",
        ),
        case(
            "feature_names too short",
            pre(|v| {
                v["feature_names"].as_array_mut().unwrap().pop();
            }),
            QUANTIZE,
            "{pre}: feature_names: 28 entries, but the architecture has 29 features",
        ),
        case(
            "feature_names too long",
            pre(|v| v["feature_names"].as_array_mut().unwrap().push("x".into())),
            QUANTIZE,
            "{pre}: feature_names: 30 entries, but the architecture has 29 features",
        ),
        case(
            "label_names too short (wrong label count)",
            pre(|v| {
                v["label_names"].as_array_mut().unwrap().pop();
            }),
            QUANTIZE,
            "{pre}: label_names: 2 entries, but the architecture has 3 classes",
        ),
        case(
            "label_names too long (wrong label count)",
            pre(|v| {
                v["label_names"]
                    .as_array_mut()
                    .unwrap()
                    .push("sideways".into())
            }),
            QUANTIZE,
            "{pre}: label_names: 4 entries, but the architecture has 3 classes",
        ),
        case(
            "dataset.features give another count",
            pre(|v| {
                v["dataset"]["features"]["return_lags_trades"]
                    .as_array_mut()
                    .unwrap()
                    .pop();
            }),
            QUANTIZE,
            "{pre}: dataset.features: 28 entries, but the architecture has 29 features",
        ),
        // preprocess.json: values.
        case(
            "a std is zero",
            pre(|v| v["normalizer"]["std"][0] = 0.0.into()),
            QUANTIZE,
            format!("{{pre}}: normalizer.std[0]: 0 is below 1e-6: {STD_HINT}"),
        ),
        case(
            "a std is negative",
            pre(|v| v["normalizer"]["std"][4] = (-1.0).into()),
            QUANTIZE,
            format!("{{pre}}: normalizer.std[4]: -1 is below 1e-6: {STD_HINT}"),
        ),
        case(
            "a std is tiny",
            pre(|v| v["normalizer"]["std"][7] = 1e-30.into()),
            QUANTIZE,
            format!(
                "{{pre}}: normalizer.std[7]: 0.000000000000000000000000000001 is below 1e-6: {STD_HINT}"
            ),
        ),
        case(
            "a std is infinite (beyond f32)",
            pre(|v| v["normalizer"]["std"][28] = 1e39.into()),
            QUANTIZE,
            "{pre}: normalizer.std[28]: inf is not a finite number",
        ),
        case(
            "a mean is infinite (beyond f32)",
            pre(|v| v["normalizer"]["mean"][2] = (-1e39).into()),
            QUANTIZE,
            "{pre}: normalizer.mean[2]: -inf is not a finite number",
        ),
        case(
            "feature_names out of order",
            pre(|v| v["feature_names"].as_array_mut().unwrap().swap(0, 1)),
            QUANTIZE,
            "{pre}: feature_names[0]: `ret_5t`, but the dataset.features settings give `ret_1t` here",
        ),
        case(
            "a feature name with a NUL byte",
            pre(|v| v["feature_names"][2] = "a\0b".into()),
            QUANTIZE,
            "{pre}: feature_names[2]: `a\\0b`, but the dataset.features settings give `ret_20t` here",
        ),
        case(
            "a label renamed",
            pre(|v| v["label_names"][2] = "rise".into()),
            QUANTIZE,
            "{pre}: label_names[2]: `rise`, but tickq's labels give `up` here",
        ),
        case(
            "dataset.time_steps differs from the architecture",
            pre(|v| v["dataset"]["time_steps"] = 4.into()),
            QUANTIZE,
            "{pre}: dataset.time_steps: 4, but the architecture has 1",
        ),
        case(
            "label horizon 0",
            pre(|v| v["dataset"]["labels"]["horizon"] = 0.into()),
            QUANTIZE,
            "{pre}: dataset: invalid configuration: labels.horizon: 0 is out of range: expected a whole number from 1 to 1000000000",
        ),
        case(
            "negative time_steps",
            pre(|v| v["dataset"]["time_steps"] = (-1).into()),
            QUANTIZE,
            "{pre}: invalid JSON: invalid value: integer `-1`, expected usize at line 1 column …",
        ),
        case(
            "split fractions add up to more than 1",
            pre(|v| v["split"]["train"] = 0.95.into()),
            QUANTIZE,
            "{pre}: split: invalid configuration: split fractions need train > 0, validation > 0 and train + validation < 1, found train 0.95, validation 0.15",
        ),
        case(
            "split gap below horizon + time_steps",
            pre(|v| v["split"]["gap"] = 3.into()),
            QUANTIZE,
            "{pre}: split: invalid configuration: split gap 3 is below horizon + time_steps = 101; use SplitConfig::for_dataset",
        ),
        case(
            "data_sha256 not hex",
            pre(|v| v["data_sha256"] = "not a hash".into()),
            QUANTIZE,
            "{pre}: data_sha256: `not a hash` is not a SHA-256 in hex (64 digits 0-9 and a-f)",
        ),
        case(
            "data_sha256 in upper case",
            pre(|v| {
                let upper = v["data_sha256"].as_str().unwrap().to_uppercase();
                v["data_sha256"] = upper.into();
            }),
            QUANTIZE,
            "{pre}: data_sha256: `{hash_upper}` is not a SHA-256 in hex (64 digits 0-9 and a-f)",
        ),
        case(
            "a 10 MB data_sha256",
            pre(|v| v["data_sha256"] = "x".repeat(10_000_000).into()),
            QUANTIZE,
            format!(
                "{{pre}}: data_sha256: `{}... (10000000 bytes in all)` is not a SHA-256 in hex (64 digits 0-9 and a-f)",
                "x".repeat(80)
            ),
        ),
        // Every command that reads a checkpoint's preprocess.json refuses a bad one.
        case(
            "eval with a bad preprocess.json",
            std_short(),
            EVAL,
            STD_SHORT,
        ),
        case(
            "prune with a bad preprocess.json",
            std_short(),
            "prune {ck} --method global --amount 0.5 --data {csv} --out {out}",
            STD_SHORT,
        ),
        case(
            "sensitivity with a bad preprocess.json",
            std_short(),
            "sensitivity {ck} --data {csv}",
            STD_SHORT,
        ),
        case(
            "distill --teacher with a bad preprocess.json",
            std_short(),
            "distill --teacher {ck} --student {arch} --data {csv} --out {out}",
            STD_SHORT,
        ),
        case(
            "import --preprocess with a short normalizer.std",
            std_short(),
            IMPORT,
            STD_SHORT,
        ),
        case(
            "import --preprocess with a negative std",
            pre(|v| v["normalizer"]["std"][1] = (-2.5).into()),
            IMPORT,
            format!("{{pre}}: normalizer.std[1]: -2.5 is below 1e-6: {STD_HINT}"),
        ),
        case(
            "import --preprocess with an unknown key",
            pre(|v| v["normaliser"] = 1.into()),
            IMPORT,
            "{pre}: invalid JSON: unknown field `normaliser`, expected one of `feature_names`, `label_names`, `normalizer`, `data_sha256`, `dataset`, `split` at line 1 column …",
        ),
        case(
            "import --preprocess of a missing file",
            remove("preprocess.json"),
            IMPORT,
            "{pre}: No such file or directory (os error 2)",
        ),
        case(
            "import --preprocess of a file that is not JSON",
            bytes("preprocess.json", |_| b"\0\0\0".to_vec()),
            IMPORT,
            "{pre}: invalid JSON: expected value at line 1 column 1",
        ),
        case(
            "import --preprocess of an endless file",
            endless("preprocess.json"),
            IMPORT,
            "{pre}: larger than 67108864 bytes, the most tickq reads from a JSON file",
        ),
        case(
            "preprocess.json is an endless file",
            endless("preprocess.json"),
            QUANTIZE,
            "{pre}: larger than 67108864 bytes, the most tickq reads from a JSON file",
        ),
        // model.safetensors.
        case(
            "no model.safetensors",
            remove("model.safetensors"),
            QUANTIZE,
            "{w}: No such file or directory (os error 2)",
        ),
        case(
            "model.safetensors cut short",
            bytes("model.safetensors", |b| b[..b.len() - 10].to_vec()),
            QUANTIZE,
            "{w}: not a valid safetensors file: incomplete metadata, file not fully covered",
        ),
        case(
            "model.safetensors shorter than its header length",
            bytes("model.safetensors", |_| vec![1, 2, 3]),
            QUANTIZE,
            "{w}: not a valid safetensors file: header too small",
        ),
        case(
            "a header length beyond the file",
            bytes("model.safetensors", |mut b| {
                b[..8].copy_from_slice(&u64::MAX.to_le_bytes());
                b
            }),
            QUANTIZE,
            "{w}: not a valid safetensors file: header too large",
        ),
        case(
            "a header that is not JSON",
            bytes("model.safetensors", |b| replace_once(b, "{\"", "#!")),
            QUANTIZE,
            "{w}: not a valid safetensors file: invalid JSON in header: expected value at line 1 column 1",
        ),
        case(
            "a tensor of dtype I32",
            bytes("model.safetensors", |b| {
                replace_once(b, "\"dtype\":\"F32\"", "\"dtype\":\"I32\"")
            }),
            QUANTIZE,
            "{w}: tensor fc1.bias has dtype I32; only F32, F64, F16 and BF16 can be loaded",
        ),
        case(
            "a tensor of dtype F64 with F32 data",
            bytes("model.safetensors", |b| {
                replace_once(b, "\"dtype\":\"F32\"", "\"dtype\":\"F64\"")
            }),
            QUANTIZE,
            "{w}: not a valid safetensors file: invalid shape, data type, or offset for tensor",
        ),
        case(
            "a missing tensor",
            weights(|t| {
                let i = at(t, "fc2.bias");
                t.remove(i);
            }),
            QUANTIZE,
            "{w}: missing tensors: fc2.bias",
        ),
        case(
            "an unexpected tensor",
            weights(|t| t.push(("fc3.weight".into(), vec![1], vec![0.0]))),
            QUANTIZE,
            "{w}: unexpected tensors: fc3.weight",
        ),
        case(
            "a tensor of the wrong shape",
            weights(|t| {
                let i = at(t, "fc1.weight");
                t[i].1 = vec![29, 16];
            }),
            QUANTIZE,
            "{w}: tensor fc1.weight: expected shape [16, 29], got [29, 16]",
        ),
        case(
            "an infinite bias",
            weights(|t| {
                let i = at(t, "fc2.bias");
                t[i].2[1] = f32::INFINITY;
            }),
            QUANTIZE,
            "{w}: tensor fc2.bias: value at flat index 1 is not finite (inf)",
        ),
        case(
            "a NaN weight",
            weights(|t| {
                let i = at(t, "fc1.weight");
                t[i].2[100] = f32::NAN;
            }),
            QUANTIZE,
            "{w}: tensor fc1.weight: value at flat index 100 is not finite (NaN)",
        ),
        case(
            "a pruning mask of 0.5",
            weights(|t| t.push(("fc1.weight_mask".into(), vec![16, 29], vec![0.5; 16 * 29]))),
            QUANTIZE,
            "{w}: pruning mask fc1.weight_mask: value at flat index 0 is 0.5; masks hold only 0 and 1",
        ),
        // arch.toml.
        case(
            "no arch.toml",
            remove("arch.toml"),
            QUANTIZE,
            "cannot read architecture file {a}: No such file or directory (os error 2)",
        ),
        case(
            "arch.toml is not TOML",
            bytes("arch.toml", |_| b"name = \n".to_vec()),
            QUANTIZE,
            "{a}: TOML parse error at line 1, column 8: string values must be quoted, expected literal string",
        ),
        case(
            "arch.toml of a wider model than the weights",
            bytes("arch.toml", |_| {
                TINY_ARCH.replace("out = 16", "out = 32").into_bytes()
            }),
            QUANTIZE,
            "{w}: tensor fc1.weight: expected shape [32, 29], got [16, 29]",
        ),
        // The training state, on resume.
        case(
            "best epoch beyond the epochs run",
            state(|s, _| s["best_epoch"] = 1_000_000.into()),
            RESUME,
            "{state}: best_epoch: 1000000 is beyond the 2 epochs run",
        ),
        case(
            "epochs_done disagrees with the history",
            state(|s, _| s["epochs_done"] = 5.into()),
            RESUME,
            "{state}: epochs_done: 5, but the history lists 2 epochs",
        ),
        case(
            "a history epoch out of sequence",
            state(|s, _| s["history"][1]["epoch"] = 7.into()),
            RESUME,
            "{state}: history[1].epoch: 7, expected 2",
        ),
        case(
            "a history improved flag flipped",
            state(|s, _| s["history"][0]["improved"] = false.into()),
            RESUME,
            "{state}: history[0].improved: false, but validation loss …",
        ),
        case(
            "a negative training loss",
            state(|s, _| s["history"][0]["train_loss"] = (-1.0).into()),
            RESUME,
            "{state}: history[0].train_loss: -1 is not a finite loss >= 0",
        ),
        case(
            "an accuracy above 1",
            state(|s, _| s["history"][1]["val_accuracy"] = 1.5.into()),
            RESUME,
            "{state}: history[1].val_accuracy: 1.5 is not an accuracy in [0, 1]",
        ),
        case(
            "a negative epoch duration",
            state(|s, _| s["history"][1]["seconds"] = (-3.0).into()),
            RESUME,
            "{state}: history[1].seconds: -3 is not a duration",
        ),
        case(
            "since_improvement off by one",
            state(|s, _| plus_one(s, "/since_improvement")),
            RESUME,
            "{state}: since_improvement: 2, but the best epoch is 1 of 2",
        ),
        case(
            "best_val_loss_bits edited",
            state(|s, _| plus_one(s, "/best_val_loss_bits")),
            RESUME,
            "{state}: best_val_loss_bits: …",
        ),
        case(
            "best epoch 0 although an epoch improved",
            state(|s, _| s["best_epoch"] = 0.into()),
            RESUME,
            "{state}: best_epoch: 0, but the history's last improvement is epoch 1",
        ),
        case(
            "optimizer_step edited",
            state(|s, _| plus_one(s, "/optimizer_step")),
            RESUME,
            "{state}: optimizer_step: 79, but 2 epochs of 39 batches make 78",
        ),
        case(
            "the generator moved",
            state(|s, _| s["rng"]["word_pos"] = "0".into()),
            RESUME,
            "{state}: rng: the generator is not where 2 epochs with seed 7 leave it",
        ),
        case(
            "an unknown key in the state",
            state(|s, _| s["note"] = "hi".into()),
            RESUME,
            "{sdir}: cannot resume training: unreadable training state: unknown field `note`, expected one of `version`, `arch`, `key`, `data_sha256`, `epochs_done`, `best_epoch`, `best_val_loss_bits`, `since_improvement`, `stopped_early`, `optimizer_step`, `rng`, `history` at line 1 column …",
        ),
        case(
            "no state metadata",
            Box::new(|ck| {
                let path = ck.join("train-state").join("train_state.safetensors");
                let (tensors, _) =
                    decode_safetensors(&std::fs::read(&path).unwrap(), &path).unwrap();
                std::fs::write(&path, encode_safetensors(&tensors, None, &path).unwrap()).unwrap();
            }),
            RESUME,
            "{sdir}: cannot resume training: train_state.safetensors has no tickq.train_state metadata; remove train_state.safetensors or use another checkpoint directory to start over",
        ),
        case(
            "a NaN current weight",
            state(|_, t| {
                let i = at(t, "model/fc1.weight");
                t[i].2[0] = f32::NAN;
            }),
            RESUME,
            "{state}: the `model/` tensors: tensor fc1.weight: value at flat index 0 is not finite (NaN)",
        ),
        case(
            "a best weight of the wrong shape",
            state(|_, t| {
                let i = at(t, "best/fc2.bias");
                t[i].1 = vec![3, 1];
            }),
            RESUME,
            "{state}: the `best/` tensors: tensor fc2.bias: expected shape [3], got [3, 1]",
        ),
        case(
            "a negative Adam second moment",
            state(|_, t| {
                let i = at(t, "optim/fc1.weight.exp_avg_sq");
                t[i].2[3] = -1.0;
            }),
            RESUME,
            "{state}: optim/fc1.weight.exp_avg_sq: value at index 3 is -1",
        ),
        case(
            "the training state cut short",
            bytes("train-state/train_state.safetensors", |b| {
                b[..b.len() / 2].to_vec()
            }),
            RESUME,
            "{state}: not a valid safetensors file: incomplete metadata, file not fully covered",
        ),
        case(
            "the training state is garbage",
            bytes("train-state/train_state.safetensors", |_| vec![0xff; 64]),
            RESUME,
            "{state}: not a valid safetensors file: header too large",
        ),
        case(
            "the training state is an endless file",
            endless("train-state/train_state.safetensors"),
            RESUME,
            "{state}: larger than 1073741824 bytes, the most tickq reads from a safetensors file",
        ),
        // eval with a blob that is not the checkpoint's model.
        case(
            "eval with a renamed model's blob",
            untouched(),
            "eval {ck} --blob {wide} --data {csv} --out {out} --latency-calls 100 --device cpu",
            "{wide} is not a blob of the checkpoint {ck}: the model name is `wide` in the blob and `tiny` in the checkpoint",
        ),
        case(
            "eval with a narrower model's blob",
            untouched(),
            "eval {ck} --blob {narrow} --data {csv} --out {out} --latency-calls 100 --device cpu",
            "{narrow} is not a blob of the checkpoint {ck}: the weighted layer 1 is dense 29 -> 8 in the blob and dense 29 -> 16 in the checkpoint",
        ),
        case(
            "eval with a blob of the model trained on other data",
            untouched(),
            "eval {ck} --blob {elsewhere} --data {csv} --out {out} --latency-calls 100 --device cpu",
            format!(
                "{{elsewhere}} is not a blob of the checkpoint {{ck}}: the training data (SHA-256) is {} in the blob and {{hash}} in the checkpoint",
                "0".repeat(64)
            ),
        ),
        case(
            "eval with a blob of another training run of the same model",
            Box::new(|ck| {
                // Another seed's weights, with the same architecture and preprocess.json.
                let other = ck.with_file_name("reseeded");
                train(&other, &["--epochs", "1", "--seed", "8"]);
                std::fs::copy(
                    other.join("model.safetensors"),
                    ck.join("model.safetensors"),
                )
                .unwrap();
                std::fs::remove_dir_all(&other).unwrap();
            }),
            EVAL,
            "{blob} is not a blob of the checkpoint {ck}: the int8 weights of layer `fc1`, output channel 0, are not the checkpoint's f32 weights quantized",
        ),
        case(
            "eval with a missing blob",
            untouched(),
            "eval {ck} --blob {ck}/none.blob --data {csv} --out {out} --latency-calls 100 --device cpu",
            "{ck}/none.blob: No such file or directory (os error 2)",
        ),
        case(
            "eval with a file that is not a blob",
            untouched(),
            "eval {ck} --blob {a} --data {csv} --out {out} --latency-calls 100 --device cpu",
            "{a}: not a blob tickq-core loads: blob at byte 0: bad magic",
        ),
    ];
    rows
}

/// Replaces the placeholders of [`corpus`] in `text`.
fn expand(text: &str, vars: &[(&str, String)]) -> String {
    let mut out = text.to_string();
    for (name, value) in vars {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

/// A blob of the tiny model's architecture text `arch_text`, trained and quantized in `dir` under `name`.
fn other_blob(dir: &Path, name: &str, arch_text: String) -> PathBuf {
    let (csv, _) = fixtures();
    let arch_file = dir.join(format!("{name}.toml"));
    std::fs::write(&arch_file, arch_text).unwrap();
    let ckpt = dir.join(name);
    ok(&[
        train_args(&arch_file, &ckpt),
        vec!["--epochs", "1", "--device", "cpu"],
    ]
    .concat());
    let blob = dir.join(format!("{name}.blob"));
    ok(&["quantize", s(&ckpt), "--data", s(csv), "--out", s(&blob)]);
    blob
}

/// Every row of [`corpus`]: on a fresh copy of a checkpoint trained for 2 epochs, with the row's setup, the
/// command exits with the row's code, its first `error: ` line is the row's (up to a final `…`, which stands for the rest of the line),
/// nothing panicked, and the command wrote nothing. Mismatches are collected and reported together.
#[test]
fn the_bad_checkpoint_corpus_is_refused_row_by_row() {
    let (csv, arch) = fixtures();
    let dir = scratch("corpus");
    let base = dir.join("base");
    train(&base, &["--epochs", "2"]);
    let blob = dir.join("base.blob");
    ok(&["quantize", s(&base), "--data", s(csv), "--out", s(&blob)]);
    let wide = other_blob(&dir, "wide", TINY_ARCH.replace("\"tiny\"", "\"wide\""));
    let narrow = other_blob(&dir, "narrow", TINY_ARCH.replace("out = 16", "out = 8"));
    // The same checkpoint recorded as trained on other data quantizes to a blob that records that data.
    let elsewhere_ck = dir.join("elsewhere");
    copy_tree(&base, &elsewhere_ck);
    pre(|v| v["data_sha256"] = "0".repeat(64).into())(&elsewhere_ck);
    let elsewhere = dir.join("elsewhere.blob");
    ok(&[
        "quantize",
        s(&elsewhere_ck),
        "--data",
        s(csv),
        "--out",
        s(&elsewhere),
    ]);
    let hash = json(&base.join("preprocess.json"))["data_sha256"]
        .as_str()
        .unwrap()
        .to_string();
    // The untouched checkpoint passes what the rows refuse.
    let good = dir.join("good");
    copy_tree(&base, &good);
    ok(&[
        "quantize",
        s(&good),
        "--data",
        s(csv),
        "--out",
        s(&dir.join("good.blob")),
    ]);
    ok(&[
        "eval",
        s(&good),
        "--blob",
        s(&blob),
        "--data",
        s(csv),
        "--out",
        s(&dir.join("good-report")),
        "--latency-calls",
        "100",
    ]);
    train(&good, &["--epochs", "3", "--resume"]);

    let rows = corpus();
    let mut failures = Vec::new();
    for (n, row) in rows.iter().enumerate() {
        let case_dir = dir.join(format!("case-{n:03}"));
        let ck = case_dir.join("ck");
        copy_tree(&base, &ck);
        (row.setup)(&ck);
        let vars = [
            (
                "state",
                s(&ck.join("train-state").join("train_state.safetensors")).to_string(),
            ),
            ("sdir", s(&ck.join("train-state")).to_string()),
            ("pre", s(&ck.join("preprocess.json")).to_string()),
            ("w", s(&ck.join("model.safetensors")).to_string()),
            ("a", s(&ck.join("arch.toml")).to_string()),
            ("ck", s(&ck).to_string()),
            ("csv", s(csv).to_string()),
            ("arch", s(arch).to_string()),
            ("out", s(&case_dir.join("out")).to_string()),
            ("blob", s(&blob).to_string()),
            ("wide", s(&wide).to_string()),
            ("narrow", s(&narrow).to_string()),
            ("elsewhere", s(&elsewhere).to_string()),
            ("hash", hash.clone()),
            ("hash_upper", hash.to_uppercase()),
        ];
        let args: Vec<String> = row
            .args
            .split_whitespace()
            .map(|a| expand(a, &vars))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let expected = expand(&row.error, &vars);
        let before = snapshot(&case_dir);
        let out = tickq(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The `error:` line and its `  caused by:` lines, joined with `: `.
        let mut lines = stderr.lines().skip_while(|l| !l.starts_with("error: "));
        let mut first = lines
            .next()
            .and_then(|l| l.strip_prefix("error: "))
            .unwrap_or("")
            .to_string();
        for cause in lines.map_while(|l| l.strip_prefix("  caused by: ")) {
            first.push_str(": ");
            first.push_str(cause);
        }
        let first = first.as_str();
        let matches = match expected.strip_suffix('…') {
            Some(prefix) => first.starts_with(prefix) && first.len() > prefix.len(),
            None => first == expected,
        };
        println!("row {n} ({}): {first}", row.what);
        let mut problems = Vec::new();
        if out.status.code() != Some(row.code) {
            problems.push(format!(
                "exit {:?}, expected {}",
                out.status.code(),
                row.code
            ));
        }
        if !matches {
            problems.push(format!(
                "error line\n      got: {first}\n expected: {expected}"
            ));
        }
        if stderr.contains("panicked") {
            problems.push("panicked".to_string());
        }
        if stderr.lines().filter(|l| l.starts_with("error: ")).count() != 1 {
            problems.push("not exactly one error line".to_string());
        }
        if snapshot(&case_dir) != before {
            problems.push("the refused command changed files".to_string());
        }
        if problems.is_empty() {
            let _ = std::fs::remove_dir_all(&case_dir);
        } else {
            failures.push(format!(
                "row {n} ({}): tickq {}\n  {}\n  stderr:\n{stderr}",
                row.what,
                args.join(" "),
                problems.join("\n  ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    assert!(rows.len() >= 80, "{} rows", rows.len());
    println!(
        "bad-checkpoint corpus: {} rows, all refused as expected",
        rows.len()
    );
}

// ---------------------------------------------------------------------------------------------------------------
// kill -9

/// Runs `tickq args` with the crash point `point#nth` armed; returns whether the process was killed by `SIGKILL`
/// (otherwise it must have succeeded: the point was reached fewer than `nth` times).
fn run_armed(args: &[&str], point: &str, nth: usize) -> bool {
    let out = tickq_env(args, &[(CRASH_ENV, &format!("{point}#{nth}"))]);
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

/// `tickq train` killed at every crash point it reaches (each hit of each point) and after measured delays, over a
/// directory that holds an older checkpoint of another model and labels: the checkpoint is always the old one or
/// the new one, the training state is absent or loads, and `--resume` ends with exactly the files of an
/// uninterrupted run and no leftovers.
#[test]
fn train_killed_at_every_write_step_resumes_to_the_same_files() {
    let dir = scratch("kill-train");
    let (_, arch) = fixtures();
    // The old checkpoint differs in every file: another model name, other labels.
    let old = dir.join("old");
    let old_arch = dir.join("old.toml");
    std::fs::write(&old_arch, TINY_ARCH.replace("\"tiny\"", "\"old\"")).unwrap();
    ok(&[
        train_args(&old_arch, &old),
        vec!["--epochs", "1", "--horizon", "50", "--device", "cpu"],
    ]
    .concat());
    let straight = dir.join("straight");
    let started = Instant::now();
    train(&straight, &["--epochs", "3"]);
    let duration = started.elapsed();
    let old_files = contents(&old, &CHECKPOINT);
    let new_files = contents(&straight, &CHECKPOINT);
    for (i, file) in CHECKPOINT.iter().enumerate() {
        assert_ne!(old_files[i], new_files[i], "{file}");
    }
    let ckpt = dir.join("run").join("ckpt");
    let args = |resume: bool| {
        let mut a = train_args(arch, &ckpt);
        a.extend(["--epochs", "3", "--device", "cpu"]);
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
    // Kills at arbitrary moments, spread over an uninterrupted run's duration. A kill before the old training state
    // was removed leaves that state, of another run, which `--resume` refuses: the user reruns without it then.
    let old_state = std::fs::read(old.join("train-state").join("arch.toml")).unwrap();
    let mut interrupted = 0;
    for tenth in [1, 3, 5, 7, 9] {
        let _ = std::fs::remove_dir_all(dir.join("run"));
        copy_tree(&old, &ckpt);
        if run_killed_after(&args(false), duration * tenth / 10) {
            interrupted += 1;
        }
        let what = format!("killed after {tenth}/10 of a run");
        assert_old_or_new(&ckpt, &old_files, &new_files, &what);
        let state_arch = std::fs::read(ckpt.join("train-state").join("arch.toml")).ok();
        ok(&args(state_arch.as_ref() != Some(&old_state)));
        assert_eq!(
            contents(&ckpt, &CHECKPOINT),
            new_files,
            "{what}, then rerun"
        );
        assert_eq!(leftovers(&dir.join("run")), Vec::<PathBuf>::new(), "{what}");
    }
    println!("{interrupted} of 5 timed kills came before training finished");
}

/// `tickq distill` killed at every crash point it reaches (each hit of each point): the student checkpoint is
/// always absent or complete, the training state absent or whole, and `--resume` ends with exactly the files of an
/// uninterrupted seeded run and no leftovers, as for `tickq train`.
#[test]
fn distill_killed_at_every_write_step_resumes_to_the_same_files() {
    let dir = scratch("kill-distill");
    let (csv, _) = fixtures();
    let teacher = dir.join("teacher");
    train(&teacher, &["--epochs", "2"]);
    let student = dir.join("student.toml");
    std::fs::write(
        &student,
        TINY_ARCH
            .replace("\"tiny\"", "\"student\"")
            .replace("out = 16", "out = 5"),
    )
    .unwrap();
    let args = |out: &Path, resume: bool| {
        let mut a = vec![
            "distill".to_string(),
            "--teacher".into(),
            s(&teacher).into(),
            "--student".into(),
            s(&student).into(),
            "--data".into(),
            s(csv).into(),
            "--out".into(),
            s(out).into(),
        ];
        a.extend(
            [
                "--epochs",
                "3",
                "--class-weights",
                "balanced",
                "--device",
                "cpu",
            ]
            .map(String::from),
        );
        if resume {
            a.push("--resume".into());
        }
        a
    };
    let straight = dir.join("straight");
    let straight_args = args(&straight, false);
    ok(&straight_args.iter().map(String::as_str).collect::<Vec<_>>());
    let new_files = contents(&straight, &CHECKPOINT);
    assert!(new_files.iter().all(Option::is_some));
    let none = vec![None; CHECKPOINT.len()];
    let out = dir.join("run").join("student");
    let (first, again) = (args(&out, false), args(&out, true));
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    let again: Vec<&str> = again.iter().map(String::as_str).collect();
    let mut kills: BTreeMap<&str, usize> = BTreeMap::new();
    for point in CRASH_POINTS {
        for nth in 1.. {
            let _ = std::fs::remove_dir_all(dir.join("run"));
            if !run_armed(&first, point, nth) {
                break;
            }
            *kills.entry(point).or_default() += 1;
            let what = format!("killed at {point}#{nth}");
            assert_old_or_new(&out, &none, &new_files, &what);
            let state = out.join("train-state");
            if state.exists() {
                tickq_host::checkpoint::load_checkpoint(&state)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
            }
            let log = ok_stderr(&again);
            if (point, nth) == ("replace-dir:after-swap", 1) {
                // Killed once epoch 2's state was in place: the resumed run trains epoch 3 only.
                assert!(
                    !log.contains("epoch   2:") && log.contains("epoch   3:"),
                    "{what}: {log}"
                );
            }
            assert_eq!(
                contents(&out, &CHECKPOINT),
                new_files,
                "{what}, then resumed"
            );
            assert_eq!(leftovers(&dir.join("run")), Vec::<PathBuf>::new(), "{what}");
        }
    }
    // Each of the 3 epochs' states and the final checkpoint were interrupted at every step (the first state is new,
    // so it is renamed into place rather than swapped; OUT already holds the state when the checkpoint is written).
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

/// A checkpoint remembers how its file was read: trained on the fixture trades rewritten in another layout
/// (a preamble, semicolons, other header names, `DD.MM.YYYY` times, newest-first) with the read options, the
/// model is bit-identical to the one trained on the original file, and `tickq quantize` reads the rewritten
/// file with the checkpoint's options and no flags, while a checkpoint trained on the original file cannot.
#[test]
fn a_checkpoint_remembers_how_its_file_was_read() {
    let dir = scratch("read-options");
    let (csv, arch) = fixtures();
    let text = std::fs::read_to_string(csv).unwrap();
    let mut rows: Vec<String> = text
        .lines()
        .skip(1)
        .map(|line| {
            let (time, rest) = line.split_once(',').unwrap();
            let (date, clock) = time.split_once(' ').unwrap();
            let (y, md) = date.split_once('-').unwrap();
            let (m, d) = md.split_once('-').unwrap();
            format!("{d}.{m}.{y} {clock};{}", rest.replace(',', ";"))
        })
        .collect();
    rows.reverse();
    let other = dir.join("other.txt");
    std::fs::write(
        &other,
        format!(
            "exported by a feed, times in exchange time\nZeit;Kurs;Menge\n{}\n",
            rows.join("\n")
        ),
    )
    .unwrap();
    let read_flags = [
        "--columns",
        "time=Zeit,price=Kurs,size=Menge",
        "--time-format",
        "%d.%m.%Y %H:%M:%S%.3f",
    ];
    let (plain, remembered) = (dir.join("plain"), dir.join("remembered"));
    let mut args = train_args(arch, &plain);
    args.extend(["--epochs", "1", "--device", "cpu"]);
    ok(&args);
    let mut args = vec![
        "train",
        "--arch",
        s(arch),
        "--data",
        s(&other),
        "--out",
        s(&remembered),
    ];
    args.extend(["--epochs", "1", "--device", "cpu"]);
    args.extend(read_flags);
    let log = ok_stderr(&args);
    assert!(
        log.contains(&format!(
            "note: {} is newest-first; its rows were reversed into time order",
            other.display()
        )),
        "{log}"
    );
    assert_eq!(
        std::fs::read(plain.join("model.safetensors")).unwrap(),
        std::fs::read(remembered.join("model.safetensors")).unwrap(),
        "the same trades in another layout train the same model"
    );
    let pre = json(&remembered.join("preprocess.json"));
    assert_eq!(
        pre["dataset"]["read"],
        serde_json::json!({"columns": {"time": "Zeit", "price": "Kurs", "size": "Menge"}, "time_format": "%d.%m.%Y %H:%M:%S%.3f"}),
        "{pre}"
    );
    assert!(
        json(&plain.join("preprocess.json"))["dataset"]
            .get("read")
            .is_none()
    );
    ok(&[
        "quantize",
        s(&remembered),
        "--data",
        s(&other),
        "--out",
        s(&dir.join("remembered.blob")),
    ]);
    let out = tickq(&[
        "quantize",
        s(&plain),
        "--data",
        s(&other),
        "--out",
        s(&dir.join("plain.blob")),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "error: {}, line 2: missing required column `time` (accepted names: timestamp, ts, time, date, datetime, date_time, gmt_time, local_time; or name it with --columns time=HEADER); header found: `Zeit;Kurs;Menge`",
            other.display()
        )),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
