//! The aarch64 kernels against the x86 host, whole models over the bundled test split: `core/examples/logits.rs`
//! is cross-built for `aarch64-unknown-linux-gnu`, run under QEMU user mode (`qemu-aarch64 -cpu max`, which has
//! NEON and the dot-product extension) on the fixture's blob in the dense-dot and blocked layouts, and every
//! backend it has (generic, NEON, NEON with `SDOT`) must print the int8 logits tickq-core computes here, bit for
//! bit, for every test row.
//!
//! Needs `qemu-aarch64`, the cross linker `aarch64-linux-gnu-gcc` (Debian's `qemu-user` and
//! `gcc-aarch64-linux-gnu`) and the Rust target; without them the test says so and passes, except under `CI`,
//! where it fails (`.ci/run` installs them).

use std::path::Path;
use std::process::Command;

use tickq_core::encode::{EncodeOptions, Target, WeightFormat, encode_with};
use tickq_core::{Model, Session};

use crate::support::{fixture, has_target, on_path, require, scratch};

const TARGET: &str = "aarch64-unknown-linux-gnu";

/// Cross-builds the example; returns its path.
fn build_example() -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("aarch64-build");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--release", "--quiet", "-p", "tickq-core"])
        .args([
            "--example",
            "logits",
            "--features",
            "std,alloc",
            "--target",
            TARGET,
        ])
        .env("CARGO_TARGET_DIR", &target_dir);
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("cargo runs");
    assert!(status.success(), "cargo build --target {TARGET} failed");
    target_dir.join(TARGET).join("release/examples/logits")
}

/// The host's logits of every row, as the example prints them.
fn host_hex(blob: &[u8], rows: ndarray::ArrayView2<'_, f32>) -> String {
    let model = Model::load(blob).expect("the blob loads");
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut session = Session::new(&model, &mut arena).expect("arena");
    let mut hex = String::new();
    for row in rows.rows() {
        let row: Vec<f32> = row.to_vec();
        for &q in session.run(&row).logits() {
            hex.push_str(&format!("{:02x}", q as u8));
        }
    }
    hex
}

#[test]
fn aarch64_backends_match_the_host_on_the_test_split() {
    let present = require(on_path("qemu-aarch64"), "qemu-aarch64 (Debian's qemu-user)")
        & require(
            on_path("aarch64-linux-gnu-gcc"),
            "aarch64-linux-gnu-gcc (Debian's gcc-aarch64-linux-gnu)",
        )
        & require(
            has_target(TARGET),
            &format!("the Rust target {TARGET} (rustup target add)"),
        );
    if !present {
        return;
    }
    let elf = build_example();
    let fx = fixture();
    let rows = fx.data.splits.test.x.view();
    let dir = scratch("aarch64");
    let features: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
    let features_path = dir.join("test.f32");
    std::fs::write(&features_path, features).expect("features write");
    for format in [WeightFormat::Dense, WeightFormat::Blocked] {
        let options = EncodeOptions {
            weight_format: format,
            target: Target::Aarch64,
        };
        let blob = encode_with(&fx.quantized.spec, &options).expect("the fixture encodes");
        let blob_path = dir.join(format!("{format}.tqm"));
        std::fs::write(&blob_path, &blob).expect("blob writes");
        let expected = host_hex(&blob, rows);
        let out = Command::new("qemu-aarch64")
            .args(["-L", "/usr/aarch64-linux-gnu", "-cpu", "max"])
            .arg(&elf)
            .args([&blob_path, &features_path])
            .output()
            .expect("qemu-aarch64 runs");
        assert!(
            out.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).expect("utf-8");
        let backends: Vec<(&str, &str)> =
            stdout.lines().filter_map(|l| l.split_once(' ')).collect();
        let names: Vec<&str> = backends.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            ["generic", "neon", "neon-dot"],
            "{format}: QEMU's max CPU has NEON and the dot product"
        );
        for (name, hex) in backends {
            let mismatch = hex
                .as_bytes()
                .chunks(2 * fx.quantized.spec.label_names.len())
                .zip(
                    expected
                        .as_bytes()
                        .chunks(2 * fx.quantized.spec.label_names.len()),
                )
                .position(|(a, b)| a != b);
            assert!(
                hex.len() == expected.len() && mismatch.is_none(),
                "{format} on {name}: row {mismatch:?} differs from the host (of {} rows)",
                rows.nrows()
            );
        }
        eprintln!(
            "aarch64 {format}: generic, neon, neon-dot match the host on {} rows",
            rows.nrows()
        );
    }
}
