//! Bundled architecture files: the demo model and the reference shapes that
//! the benchmarks and the README's latency table use.
//!
//! Each constant is the text of a file in `host/models/`, embedded so the
//! `tickq` binary and the benches work from any directory.

/// The model `tickq demo` trains: 29 features → 128 → 128 → 3.
pub const DEMO_MLP: &str = include_str!("../models/demo-mlp.toml");

/// Reference shape "mlp": 32 → 64 → 32 → 3 with ReLU.
pub const REF_MLP: &str = include_str!("../models/ref-mlp.toml");

/// Reference shape "conv": 64 ticks × 8 features → Conv1d(16, k5) → ReLU →
/// Conv1d(16, k5, stride 2) → ReLU → global average pool → Dense 3.
pub const REF_CONV: &str = include_str!("../models/ref-conv.toml");

/// Reference shape "wide": 128 → 256 → 256 → 3 with ReLU.
pub const REF_WIDE: &str = include_str!("../models/ref-wide.toml");

/// A temporal convolution over the last 32 ticks of the default features.
pub const CONV_WINDOW: &str = include_str!("../models/conv-window.toml");

/// Every bundled shape with its benchmark name.
pub const ALL: &[(&str, &str)] = &[
    ("mlp_32x64x32x3", REF_MLP),
    ("conv_64x8", REF_CONV),
    ("wide_128x256x256x3", REF_WIDE),
    ("demo_29x128x128x3", DEMO_MLP),
    ("conv_window_32x29", CONV_WINDOW),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Architecture;

    #[test]
    fn every_bundled_architecture_parses_and_validates() {
        for (name, text) in ALL {
            let arch = Architecture::from_toml_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            arch.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
