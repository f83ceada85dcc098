//! Sets `cfg(tickq_dsp)` on targets that always have the Arm DSP extension (`thumbv7em*`: Cortex-M4 and M7),
//! where the `dense-dsp` kernel uses its inline assembly (`src/kernels_dsp.rs`).
//!
//! Stable Rust does not expose `target_feature = "dsp"` to `cfg`, so the target name decides.
//! `thumbv8m.main` is left out: the DSP extension is optional on the Cortex-M33 and its Rust targets do not
//! enable it.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(tickq_dsp)");
    println!("cargo::rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("thumbv7em") {
        println!("cargo::rustc-cfg=tickq_dsp");
    }
}
