//! Instructions per inference of the mlp reference shape, counted by callgrind (noise-free: the same count on a
//! loaded and an idle machine), for every backend valgrind's CPU can run; each count must stay within its budget,
//! so a change that makes the hot path heavier fails here rather than in a noisy benchmark.
//!
//! Needs valgrind: without it the test says so and passes, except under `CI=true`, where it fails.

use std::path::PathBuf;
use std::process::Command;

use crate::support::require;

/// The budget per backend: the count measured when the kernels were written (in the README: 17,432, 14,114
/// and 4,186), plus 10 %.
/// Valgrind's virtual CPU has no AVX-512, so `avx512-vnni` is not counted.
const BUDGETS: &[(&str, u64)] = &[("generic", 19_200), ("sse2", 15_500), ("avx2", 4_600)];

/// Inferences per counted run.
const RUNS: u64 = 2000;

fn valgrind() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Builds `examples/mlp_instructions.rs` in release mode and returns its path.
fn example() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new(cargo)
        .current_dir(&root)
        .args(["build", "--release", "--example", "mlp_instructions"])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "the example builds");
    let target =
        std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root.join("target"), PathBuf::from);
    target.join("release/examples/mlp_instructions")
}

/// The instructions callgrind counts inside `run_inferences` for `runs` inferences on `backend`.
fn count(binary: &PathBuf, backend: &str, runs: u64) -> u64 {
    let dir = std::env::temp_dir().join(format!("tickq-callgrind-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("{backend}.out"));
    let status = Command::new("valgrind")
        .args([
            "--tool=callgrind",
            "--toggle-collect=*run_inferences*",
            &format!("--callgrind-out-file={}", out.display()),
        ])
        .arg(binary)
        .args([backend, &runs.to_string()])
        .output()
        .expect("valgrind runs");
    assert!(
        status.status.success(),
        "{backend}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let text = std::fs::read_to_string(&out).unwrap();
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary: ")
                .or_else(|| l.strip_prefix("totals: "))
        })
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{backend}: no summary in {}", out.display()))
}

#[test]
fn mlp_instructions_per_inference_stay_within_budget() {
    if !require(valgrind(), "valgrind (the callgrind instruction budgets)") {
        return;
    }
    let binary = example();
    let mut report = Vec::new();
    for &(backend, budget) in BUDGETS {
        let per = count(&binary, backend, RUNS) / RUNS;
        report.push(format!(
            "{backend}: {per} instructions per inference (budget {budget})"
        ));
        assert!(per > 0 && per <= budget, "{}", report.join("\n"));
    }
    eprintln!("{}", report.join("\n"));
}
