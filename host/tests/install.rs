//! `tickq` as `cargo install` leaves it: a copy of the binary away from the checkout, run from another directory,
//! still finds the bundled ES ticks (they are embedded in it) for `tickq demo` and every command that defaults to
//! them, and refuses a missing `--data` file saying what to pass.
//!
//! The copy runs with its own cache directory (`XDG_CACHE_HOME`), so the cache file it reads is one it wrote from
//! its embedded bytes; and the binary must not name the checkout's data directory at all, so it cannot be reading
//! the workspace's file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tickq_host::data::{BUNDLED_DATA_NAME, BUNDLED_DATA_SHA256, file_sha256};

mod common;

use common::{s, scratch};

/// A copy of the test build's `tickq` in `dir/bin`, as `cargo install --root dir` would put it.
fn installed(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let to = bin.join(Path::new(env!("CARGO_BIN_EXE_tickq")).file_name().unwrap());
    std::fs::copy(env!("CARGO_BIN_EXE_tickq"), &to).unwrap();
    to
}

/// Runs `tickq` at `exe` in `cwd` with a home and cache directory of its own under `dir`.
fn run(exe: &Path, cwd: &Path, dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .current_dir(cwd)
        .env("HOME", dir.join("home"))
        .env("XDG_CACHE_HOME", dir.join("cache"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("tickq runs")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn installed_binary_runs_the_demo_and_replay_on_its_embedded_data() {
    let dir = scratch("installed");
    let exe = installed(&dir);
    let cwd = dir.join("elsewhere");
    std::fs::create_dir_all(&cwd).unwrap();

    let out = run(
        &exe,
        &cwd,
        &dir,
        &["demo", "--out", "demo", "--device", "cpu"],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tickq demo failed:\n{stderr}");
    let comparison = std::fs::read_to_string(cwd.join("demo/comparison.md")).unwrap();
    let short_hash = &hex(&BUNDLED_DATA_SHA256)[..16];
    assert!(
        comparison.contains(&format!(
            "data `{BUNDLED_DATA_NAME} (bundled)` (sha256 `{short_hash}`)"
        )),
        "{comparison}"
    );
    assert!(cwd.join("demo/model.blob").is_file());
    assert!(cwd.join("demo/checkpoint/preprocess.json").is_file());

    // The data came from the copy's own cache file, written from the embedded bytes with the file's hash.
    let cached: Vec<PathBuf> = std::fs::read_dir(dir.join("cache/tickq"))
        .unwrap()
        .map(|e| e.unwrap().path().join("ticks.csv"))
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert_eq!(file_sha256(&cached[0]).unwrap(), BUNDLED_DATA_SHA256);
    let workspace_file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/es-ticks-2013/ticks.csv");
    assert_eq!(file_sha256(&workspace_file).unwrap(), BUNDLED_DATA_SHA256);

    // A command outside the pipeline that defaults to the bundled data: the device path over every trade.
    let out = run(&exe, &cwd, &dir, &["replay", "demo/model.blob"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tickq replay failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("120000 trades replayed"), "{stdout}");
    assert!(stdout.contains(" 0 mismatches"), "{stdout}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn binary_does_not_name_the_checkouts_data_directory() {
    let binary = std::fs::read(env!("CARGO_BIN_EXE_tickq")).unwrap();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest.parent().unwrap();
    for path in [
        manifest.join("../data/es-ticks-2013"),
        workspace.join("data/es-ticks-2013"),
    ] {
        let needle = path.to_str().unwrap().as_bytes();
        assert!(
            memchr::memmem::find(&binary, needle).is_none(),
            "the tickq binary names {}: it would read the data from the checkout",
            path.display()
        );
    }
}

#[test]
fn a_missing_data_file_says_what_to_pass() {
    let dir = scratch("missing-data");
    let exe = installed(&dir);
    let arch = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/student-mlp.toml");
    let ckpt = dir.join("ckpt");
    let out = run(
        &exe,
        &dir,
        &dir,
        &[
            "train",
            "--arch",
            s(&arch),
            "--out",
            s(&ckpt),
            "--data",
            "nowhere.csv",
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "error: nowhere.csv: no such file; pass --data an existing trade file (CSV or Parquet), or leave \
             --data out for the bundled ES ticks"
        ),
        "{stderr}"
    );
    assert!(!ckpt.exists());
    std::fs::remove_dir_all(&dir).ok();
}

/// Unix only: `TMPDIR` moves the temporary directory there.
#[cfg(unix)]
#[test]
fn no_writable_cache_directory_names_each_and_the_way_out() {
    let dir = scratch("no-cache");
    let exe = installed(&dir);
    // Files where the cache and temporary directories should be: nothing can be created below them.
    let blocked_cache = dir.join("cache-is-a-file");
    let blocked_tmp = dir.join("tmp-is-a-file");
    std::fs::write(&blocked_cache, b"").unwrap();
    std::fs::write(&blocked_tmp, b"").unwrap();
    let arch = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/student-mlp.toml");
    let ckpt = dir.join("ckpt");
    let out = run(
        &exe,
        &dir,
        &dir,
        &["train", "--arch", s(&arch), "--out", s(&ckpt)],
        &[("XDG_CACHE_HOME", &blocked_cache), ("TMPDIR", &blocked_tmp)],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for named in [
        "cache-is-a-file",
        "tmp-is-a-file",
        "XDG_CACHE_HOME",
        "--data FILE",
    ] {
        assert!(stderr.contains(named), "{named} missing from:\n{stderr}");
    }
    assert!(!ckpt.exists());
    std::fs::remove_dir_all(&dir).ok();
}
