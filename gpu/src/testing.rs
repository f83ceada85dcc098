//! Helpers for tests that need a GPU, shared by every test of the workspace.
//!
//! Without an adapter a GPU test cannot run. In CI (`CI` set to anything but
//! `0`/`false`/empty) that is a failure, so GPU tests can never silently stop
//! running; on a developer machine the test prints a note and passes.

use std::sync::OnceLock;

use crate::context::GpuContext;

/// True when the `CI` environment variable says this is a CI run.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// One context per test process: adapters are slow to open on software
/// Vulkan, and every test can share the device.
fn shared() -> &'static Result<GpuContext, String> {
    static CTX: OnceLock<Result<GpuContext, String>> = OnceLock::new();
    CTX.get_or_init(|| GpuContext::new().map_err(|e| e.to_string()))
}

/// The shared GPU context, or `None` (after printing why) when no adapter
/// exists and this is not CI.
///
/// Use it at the top of every GPU test:
///
/// ```no_run
/// // no_run: needs a GPU adapter.
/// let Some(ctx) = tickq_gpu::testing::context_or_skip("my_gpu_test") else {
///     return;
/// };
/// println!("{}", ctx.describe());
/// ```
///
/// # Panics
///
/// In CI when no adapter exists: the test fails with wgpu's reason and the
/// install hint.
pub fn context_or_skip(test: &str) -> Option<GpuContext> {
    match shared() {
        Ok(ctx) => Some(ctx.clone()),
        Err(e) if in_ci() => {
            panic!("{test}: CI=true requires a GPU adapter (software Vulkan is enough): {e}")
        }
        Err(e) => {
            eprintln!("note: {test} skipped (no GPU adapter; CI would fail here): {e}");
            None
        }
    }
}
