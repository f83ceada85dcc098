// Copies the model (a `tickq export --format rust` file and the blob beside it), the test vectors and the raw
// trade vectors into `OUT_DIR`, from `TICKQ_MODEL`, `TICKQ_VECTORS` and `TICKQ_TRADES` when set, else from `model/` in the example's own folder (`CARGO_MANIFEST_DIR`).

use std::path::{Path, PathBuf};
use std::{env, fs};

fn main() {
    let here =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-env-changed=TICKQ_MODEL");
    println!("cargo:rerun-if-env-changed=TICKQ_VECTORS");
    println!("cargo:rerun-if-changed=memory.x");
    let model =
        env::var_os("TICKQ_MODEL").map_or_else(|| here.join("model/model.rs"), PathBuf::from);
    let vectors =
        env::var_os("TICKQ_VECTORS").map_or_else(|| here.join("model/model.tqv"), PathBuf::from);
    copy_model(&model, &out);
    copy(&vectors, &out.join("vectors.tqv"));
    // Raw trades (`tickq export --trade-vectors N`) for the examples that stream them; an example without a
    // `model/model.tqt` gets an empty file, which only a streaming binary would read (and refuse).
    println!("cargo:rerun-if-env-changed=TICKQ_TRADES");
    let trades =
        env::var_os("TICKQ_TRADES").map_or_else(|| here.join("model/model.tqt"), PathBuf::from);
    if trades.exists() {
        copy(&trades, &out.join("trades.tqt"));
    } else {
        fs::write(out.join("trades.tqt"), b"").unwrap_or_else(|e| panic!("{}: {e}", out.display()));
        println!("cargo:rerun-if-changed={}", trades.display());
    }
}

/// Copies the Rust export and the blob it names in `include_bytes!("...")`.
fn copy_model(model: &Path, out: &Path) {
    let text = fs::read_to_string(model).unwrap_or_else(|e| panic!("{}: {e}", model.display()));
    let blob = text
        .split("include_bytes!(\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| {
            panic!(
                "{}: no include_bytes!(\"...\") (not a `tickq export --format rust` file?)",
                model.display()
            )
        });
    let dir = model.parent().unwrap_or(Path::new("."));
    copy(&dir.join(blob), &out.join(blob));
    fs::write(out.join("model.rs"), text).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    println!("cargo:rerun-if-changed={}", model.display());
}

fn copy(from: &Path, to: &Path) {
    fs::copy(from, to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    println!("cargo:rerun-if-changed={}", from.display());
}
