//! Runs a blob over a file of feature rows on every backend this machine has and prints each backend's int8
//! logits, so that a blob's outputs on another architecture can be compared with the host's bit for bit.
//!
//! ```text
//! logits MODEL.tqm FEATURES.f32
//! ```
//!
//! `FEATURES.f32` holds rows of `T * F` little-endian f32 (the model's input width). Each output line is
//! `BACKEND HEX`, the hex of every row's logits in order. `tests/aarch64.rs` builds this for
//! `aarch64-unknown-linux-gnu`, runs it under QEMU user mode and compares with tickq-core on the host.

use std::process::ExitCode;

use tickq_core::{Backend, Model, Session};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model_path, features_path] = args.as_slice() else {
        eprintln!("usage: logits MODEL.tqm FEATURES.f32");
        return ExitCode::from(2);
    };
    let read = |path: &str| {
        std::fs::read(path).map_err(|e| {
            eprintln!("{path}: {e}");
            ExitCode::FAILURE
        })
    };
    let (blob, features) = match (read(model_path), read(features_path)) {
        (Ok(b), Ok(f)) => (b, f),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let mut model = match Model::load(&blob) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("{model_path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (t, f) = model.input_shape();
    let width = 4 * t * f;
    if width == 0 || !features.len().is_multiple_of(width) {
        eprintln!(
            "{features_path}: not a whole number of rows of {} f32",
            t * f
        );
        return ExitCode::FAILURE;
    }
    let rows: Vec<Vec<f32>> = features
        .chunks_exact(width)
        .map(|row| {
            row.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        })
        .collect();
    for backend in Backend::available() {
        if let Err(e) = model.set_backend(backend) {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
        let mut arena = vec![0u8; model.arena_bytes()];
        let Ok(mut session) = Session::new(&model, &mut arena) else {
            eprintln!("the arena is too small");
            return ExitCode::FAILURE;
        };
        let mut hex = String::new();
        for row in &rows {
            for &q in session.run(row).logits() {
                hex.push_str(&format!("{:02x}", q as u8));
            }
        }
        println!("{backend} {hex}");
    }
    ExitCode::SUCCESS
}
