//! Fixtures shared by the host's integration tests: a tiny architecture, a
//! slice of the bundled ticks, scratch directories, a checkpoint trained once,
//! and ways to run `tickq` and check what it did.
//!
//! Every test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The numbers every `report.json` of `tickq eval` and `tickq pipeline` carries, as JSON pointers.
pub const REPORT_KEYS: &[&str] = &[
    "/float/accuracy",
    "/float/size_bytes",
    "/int8/accuracy",
    "/int8/blob_bytes",
    "/int8/agreement",
    "/compression_ratio",
    "/baseline/majority_accuracy",
    "/int8/arena_bytes",
    "/latency_ns/p50",
    "/latency_ns/p99",
    "/latency_ns/p999",
];

/// 29 default features → 16 → 3: trains in a fraction of a second.
pub const TINY_ARCH: &str = r#"
name = "tiny"
classes = 3
[input]
time_steps = 1
features = 29
[[layers]]
type = "dense"
name = "fc1"
out = 16
[[layers]]
type = "relu"
[[layers]]
type = "dense"
name = "fc2"
out = 3
"#;

/// A fresh, empty scratch directory for one test (unique per process and name).
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tickq-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The first 15,000 trades of the bundled file and the tiny architecture,
/// written once per test binary: `(csv, arch)`.
pub fn fixtures() -> &'static (PathBuf, PathBuf) {
    static FIX: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    FIX.get_or_init(|| {
        let dir = scratch("fixtures");
        let text = String::from_utf8(tickq_host::data::bundled_data().unwrap()).unwrap();
        let slice: String = text
            .lines()
            .take(15_001)
            .map(|l| format!("{l}\n"))
            .collect();
        let csv = dir.join("slice.csv");
        std::fs::write(&csv, slice).unwrap();
        let arch = dir.join("tiny.toml");
        std::fs::write(&arch, TINY_ARCH).unwrap();
        (csv, arch)
    })
}

/// `p` as text (every path the tests make is UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs the `tickq` binary built for these tests.
pub fn tickq(args: &[&str]) -> Output {
    tickq_env(args, &[])
}

/// Runs `tickq` with `args` and extra environment variables.
pub fn tickq_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tickq"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("tickq runs")
}

/// Runs `tickq`, asserts that it succeeded and returns the run.
fn succeeds(args: &[&str]) -> Output {
    let out = tickq(args);
    assert!(
        out.status.success(),
        "tickq {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `tickq`, asserts that it succeeded and returns its stdout.
pub fn ok(args: &[&str]) -> String {
    String::from_utf8(succeeds(args).stdout).unwrap()
}

/// Runs `tickq`, asserts that it succeeded and returns its stderr.
pub fn ok_stderr(args: &[&str]) -> String {
    String::from_utf8(succeeds(args).stderr).unwrap()
}

/// Runs `tickq`, asserts that it failed without a panic and returns its stderr.
pub fn fails(args: &[&str]) -> String {
    let out = tickq(args);
    assert!(!out.status.success(), "tickq {args:?} should fail");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        !stderr.contains("panicked"),
        "tickq {args:?} panicked:\n{stderr}"
    );
    stderr
}

/// Runs `tickq`, expects exit code `code` and no panic, and returns the first line of stderr that starts with
/// `error`.
pub fn refused(args: &[&str], code: i32) -> String {
    refused_with(args, &[], code)
}

/// [`refused`] with extra environment variables.
pub fn refused_with(args: &[&str], env: &[(&str, &str)], code: i32) -> String {
    let out = tickq_env(args, env);
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

/// The JSON file at `path`.
pub fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The arguments of `tickq train` of the architecture file `arch` on the fixture trades into `out`.
pub fn train_args<'a>(arch: &'a Path, out: &'a Path) -> Vec<&'a str> {
    let (csv, _) = fixtures();
    vec![
        "train",
        "--arch",
        s(arch),
        "--data",
        s(csv),
        "--out",
        s(out),
    ]
}

/// Trains the tiny architecture on the fixture trades into `out`, with `extra` arguments.
pub fn train_tiny(out: &Path, extra: &[&str]) {
    let (_, arch) = fixtures();
    let mut args = train_args(arch, out);
    args.extend(extra);
    ok(&args);
}

/// A checkpoint of the tiny architecture trained for one epoch on the CPU, and a static and a dynamic blob of it.
pub struct Trained {
    /// The checkpoint directory.
    pub ckpt: PathBuf,
    /// `tickq quantize` of it.
    pub blob: PathBuf,
    /// `tickq quantize --mode dynamic` of it.
    pub dynamic: PathBuf,
}

/// The [`Trained`] checkpoint and blobs, made once per test binary.
pub fn trained() -> &'static Trained {
    static ONCE: OnceLock<Trained> = OnceLock::new();
    ONCE.get_or_init(|| {
        let (csv, _) = fixtures();
        let dir = scratch("trained");
        let ckpt = dir.join("ckpt");
        train_tiny(&ckpt, &["--epochs", "1", "--device", "cpu"]);
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
        Trained {
            ckpt,
            blob,
            dynamic,
        }
    })
}

/// An MLP architecture on the fixture's 29 features: a dense layer of each of `hidden` units, each followed by
/// ReLU, then 3 classes.
pub fn mlp_arch(hidden: &[usize]) -> String {
    let mut text =
        "name = \"big\"\nclasses = 3\n[input]\ntime_steps = 1\nfeatures = 29\n".to_string();
    for h in hidden {
        text.push_str(&format!(
            "[[layers]]\ntype = \"dense\"\nout = {h}\n[[layers]]\ntype = \"relu\"\n"
        ));
    }
    text.push_str("[[layers]]\ntype = \"dense\"\nout = 3\n");
    text
}

/// Copies the directory tree `from` to `to`.
pub fn copy_tree(from: &Path, to: &Path) {
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

/// Every file under `dir` with its bytes (directories as `None`, a link as its target, never followed: a test may
/// link a file to `/dev/zero`), for "a refused command writes nothing".
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            files.insert(path.clone(), None);
            files.extend(snapshot(&path));
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&path).unwrap();
            files.insert(
                path.clone(),
                Some(target.into_os_string().into_encoded_bytes()),
            );
        } else {
            files.insert(path.clone(), Some(std::fs::read(&path).unwrap()));
        }
    }
    files
}
