//! Helpers for tests that need a GPU, shared by every test of the workspace.
//!
//! Without an adapter a GPU test cannot run. In CI (`CI` set to anything but
//! `0`/`false`/empty) that is a failure, so GPU tests can never silently stop
//! running; on a developer machine the test prints a `SKIPPED:` line that the
//! default `cargo test` output shows ([`skip_note`]) and passes.
//!
//! On wgpu's GL backend (where no Vulkan driver is installed, wgpu falls back
//! to EGL, on llvmpipe without a GPU) the tests take turns: a GL context admits
//! one thread at a time, and wgpu panics with "Could not lock adapter context"
//! when a thread waits for it longer than its timeout, which tests running in
//! parallel on a loaded software renderer did.

use std::io::Write as _;
use std::ops::Deref;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use crate::context::GpuContext;

/// True when the `CI` environment variable says this is a CI run.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// Prints `line` on the process's standard error so that the default `cargo test` output shows it.
///
/// libtest captures what a passing test prints through `println!` and `eprintln!` (the macros write to the
/// capture buffer it installs) and throws it away; a write to the [`std::io::stderr`] handle itself bypasses
/// that capture, with no `unsafe` and no `--nocapture`.
pub fn skip_note(line: &str) {
    let mut err = std::io::stderr().lock();
    // A test's note cannot be reported anywhere else if stderr is gone.
    let _ = writeln!(err, "{line}");
}

/// One context per test process: adapters are slow to open on software
/// Vulkan, and every test can share the device.
fn shared() -> &'static Result<GpuContext, String> {
    static CTX: OnceLock<Result<GpuContext, String>> = OnceLock::new();
    CTX.get_or_init(|| GpuContext::new().map_err(|e| e.to_string()))
}

/// The turn a GPU test holds on the GL backend (see the module docs).
static GL_TURN: Mutex<()> = Mutex::new(());

/// The shared context for one test, with the test's turn on the GL backend.
///
/// It dereferences to [`GpuContext`]; hold it for the whole test (`let Some(ctx) = ... else`), so that on GL
/// no other test uses the device meanwhile. On the other backends it holds no lock and tests run in parallel.
#[derive(Debug)]
pub struct GpuTest {
    ctx: GpuContext,
    _turn: Option<MutexGuard<'static, ()>>,
}

impl Deref for GpuTest {
    type Target = GpuContext;

    fn deref(&self) -> &GpuContext {
        &self.ctx
    }
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
pub fn context_or_skip(test: &str) -> Option<GpuTest> {
    match shared() {
        Ok(ctx) => {
            // A test that failed while holding the turn poisons the lock; the device itself is still usable.
            let turn = ctx
                .is_gl()
                .then(|| GL_TURN.lock().unwrap_or_else(PoisonError::into_inner));
            Some(GpuTest {
                ctx: ctx.clone(),
                _turn: turn,
            })
        }
        Err(e) if in_ci() => {
            panic!("{test}: CI=true requires a GPU adapter (software Vulkan is enough): {e}")
        }
        Err(e) => {
            skip_note(&format!(
                "SKIPPED: {test}: no GPU adapter (CI=true makes this a failure): {e}"
            ));
            None
        }
    }
}
