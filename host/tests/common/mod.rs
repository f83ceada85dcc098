//! Fixtures shared by the host's integration tests: a tiny architecture, a
//! slice of the bundled ticks, scratch directories and a way to run `tickq`.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

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
        let text = std::fs::read_to_string(tickq_host::data::default_data_path()).unwrap();
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

/// Runs the `tickq` binary built for these tests.
pub fn tickq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tickq"))
        .args(args)
        .output()
        .expect("tickq runs")
}
