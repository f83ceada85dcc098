//! Shared fixtures: a small model trained on a slice of the bundled ticks.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use tickq_host::data::{self, DatasetConfig};
use tickq_host::model::Architecture;
use tickq_host::quant::{QuantConfig, QuantizedModel};
use tickq_host::steps::{self, PreparedData};
use tickq_host::train::TrainConfig;

/// Trades of the bundled file used by the end-to-end tests (a contiguous slice
/// from the start, so the tests stay fast on two cores).
pub const SLICE_TRADES: usize = 40_000;

/// A trained f32 model, its data and its quantized blob.
pub struct Fixture {
    pub data: PreparedData,
    pub model: tickq_host::model::Sequential,
    pub quantized: QuantizedModel,
}

/// Trains (once per test binary) the demo architecture for a few epochs on the slice.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let path = data::default_data_path().expect("bundled data");
        let trades = data::load_trades(&path).expect("bundled data loads");
        let trades = &trades[..SLICE_TRADES];
        let data = steps::prepare_from_trades(
            trades,
            "bundled slice".into(),
            [0; 32],
            &DatasetConfig::default(),
            None,
        )
        .expect("slice prepares");
        let arch = Architecture::from_toml_str(steps::DEMO_ARCH).expect("demo arch parses");
        let cfg = TrainConfig {
            epochs: 6,
            ..steps::demo_train_config()
        };
        let (model, _) = steps::train_model(arch, &data, &cfg, &mut |_| {}).expect("trains");
        let quantized =
            steps::quantize_model(&model, &data, &QuantConfig::default()).expect("quantizes");
        Fixture {
            data,
            model,
            quantized,
        }
    })
}

/// Whether `CI` is set (to anything but empty, `0` or `false`): the same test as the GPU tests'.
pub fn in_ci() -> bool {
    tickq_gpu::testing::in_ci()
}

/// Skips (returns false) or, in CI, fails when a tool is missing.
///
/// Every skip of this test crate goes through here (the GPU tests through
/// `tickq_gpu::testing::context_or_skip`); the `SKIPPED:` line is written past
/// libtest's capture ([`tickq_gpu::testing::skip_note`]), so the default
/// `cargo test` output shows which checks did not run.
pub fn require(ok: bool, what: &str) -> bool {
    if !ok {
        assert!(
            !in_ci(),
            "CI is set but {what} is missing: .ci/run installs it"
        );
        // libtest names each test's thread after the test.
        let thread = std::thread::current();
        let test = thread.name().unwrap_or("a test");
        tickq_gpu::testing::skip_note(&format!(
            "SKIPPED: {test}: {what} is missing, so the checks that need it did not run \
             (CI=true makes this a failure)"
        ));
    }
    ok
}

/// Whether `tool` is an executable on `PATH`.
pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

/// Whether rustup has installed the standard library of `target`.
pub fn has_target(target: &str) -> bool {
    Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .is_some_and(|sysroot| {
            Path::new(&sysroot)
                .join("lib/rustlib")
                .join(target)
                .is_dir()
        })
}

/// An empty scratch folder `name` in the tests' target dir.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}
