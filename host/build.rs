//! Embeds the bundled demo data in the library, so that a `tickq` built by `cargo install` or copied to another
//! machine still runs `tickq demo` and every command that defaults to the bundled ES ticks.
//!
//! It deflates `data/es-ticks-2013/ticks.csv` of the workspace into `OUT_DIR/bundled-ticks.csv.deflate` and writes
//! the SHA-256 of the original bytes (`bundled-ticks.csv.sha256`, 32 bytes) and their length
//! (`bundled-ticks.csv.len`, 8 bytes little-endian) beside it; `src/data/bundled.rs` includes the three.
//! In a checkout the file is read from the workspace; a packaged copy of the crate (`cargo package`) has no
//! workspace around it and carries the file as `bundled/ticks.csv`, a symbolic link in the checkout that packaging
//! replaces by the file (the checkout's copy comes first, so a checkout without symbolic links, where git writes
//! the link as a one-line text file, still embeds the real data).

use std::env;
use std::fs;
use std::io::Write;
use std::path::PathBuf;

use flate2::Compression;
use flate2::write::DeflateEncoder;
use sha2::{Digest, Sha256};

/// Deflate level: 6, zlib's default, takes the 4.0 MB of ticks to 266 KB in about a second of build time.
const LEVEL: u32 = 6;

fn main() {
    let manifest =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let candidates = [
        manifest.join("../data/es-ticks-2013/ticks.csv"),
        manifest.join("bundled/ticks.csv"),
    ];
    println!("cargo::rerun-if-changed=build.rs");
    for path in &candidates {
        println!("cargo::rerun-if-changed={}", path.display());
    }
    let Some((source, bytes)) = candidates
        .iter()
        .find_map(|path| fs::read(path).ok().map(|bytes| (path, bytes)))
    else {
        panic!(
            "tickq-host embeds the bundled ES ticks and found them in none of {}: build from a checkout of the \
             tickq workspace (its data/es-ticks-2013/ticks.csv) or from a package of tickq-host",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let mut encoder =
        DeflateEncoder::new(Vec::with_capacity(bytes.len() / 3), Compression::new(LEVEL));
    encoder
        .write_all(&bytes)
        .unwrap_or_else(|e| panic!("deflating {}: {e}", source.display()));
    let compressed = encoder
        .finish()
        .unwrap_or_else(|e| panic!("deflating {}: {e}", source.display()));
    let hash: [u8; 32] = Sha256::digest(&bytes).into();
    let write = |name: &str, contents: &[u8]| {
        let path = out.join(name);
        fs::write(&path, contents).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    };
    write("bundled-ticks.csv.deflate", &compressed);
    write("bundled-ticks.csv.sha256", &hash);
    write("bundled-ticks.csv.len", &(bytes.len() as u64).to_le_bytes());
}
