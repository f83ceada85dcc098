//! The kernels, and the backend that picks them.
//!
//! - `generic/`: the portable reference, one kernel per op and weight format, in safe Rust; the ground truth
//!   every other kernel is tested against, and what runs wherever no other kernel applies.
//! - `x86_64/`: SSE2, AVX2 and AVX-512 VNNI kernels for the `dense-dot` format (Dense and Conv1d), with
//!   vectorized requantization, and vectorized pooling, input quantizer and argmax where they pay.
//! - `aarch64/`: NEON kernels for `dense-dot`, with `SDOT` where the CPU has the dot-product extension.
//! - `arm/`: the Cortex-M4 assembly of the `dense-dsp` format, which on `thumbv7em` targets is that format's
//!   only kernel (the portable one is left out there to save flash, so it is not a backend one can pin).
//!
//! `unsafe` code is allowed in the architecture folders only, each block with its `// SAFETY:` argument.
//! A [`Backend`] is chosen once, when [`Model::load`](crate::Model::load) runs (the best one the CPU has), or
//! pinned with [`Model::set_backend`](crate::Model::set_backend); the internal `Engine` it becomes carries a
//! proof that the CPU has the instructions, which is what makes calling the architecture kernels sound.
//! Every backend gives the same bytes as `generic` for every blob and input.

use core::fmt;

pub(crate) mod generic;

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(tickq_dsp)]
pub(crate) mod arm;
#[cfg(target_arch = "x86_64")]
mod x86_64;

#[cfg(all(
    feature = "dense-dot",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
use crate::plan::Weights;
use crate::plan::{Conv, LayerPlan, Op, OutQuant, Weighted};

/// A set of kernels: the portable ones, or those of one instruction set.
///
/// Every backend computes the same bytes; they differ only in speed. [`Backend::detect`] gives the fastest one
/// this CPU runs, which is what [`Model::load`](crate::Model::load) uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// The portable kernels, on every target: the reference the others are tested against.
    Generic,
    /// x86-64 with SSE2 (every x86-64 CPU): `pmaddwd` on 128-bit registers for `dense-dot` layers.
    Sse2,
    /// x86-64 with AVX2 (x86-64-v3): `vpmaddwd` on 256-bit registers and vectorized requantization.
    Avx2,
    /// x86-64 with AVX-512 F, BW, VL and VNNI (x86-64-v4 with VNNI): `vpdpbusd` on 512-bit registers.
    Avx512Vnni,
    /// aarch64 NEON (every aarch64 CPU): `smull` and `sadalp` for `dense-dot` layers.
    Neon,
    /// aarch64 NEON with the dot-product extension: `sdot`.
    NeonDot,
}

impl Backend {
    /// Every backend, fastest last within each architecture.
    pub const ALL: [Backend; 6] = [
        Backend::Generic,
        Backend::Sse2,
        Backend::Avx2,
        Backend::Avx512Vnni,
        Backend::Neon,
        Backend::NeonDot,
    ];

    /// The name used on command lines and in reports: `generic`, `sse2`, `avx2`, `avx512-vnni`, `neon` or
    /// `neon-dot`.
    pub const fn name(self) -> &'static str {
        match self {
            Backend::Generic => "generic",
            Backend::Sse2 => "sse2",
            Backend::Avx2 => "avx2",
            Backend::Avx512Vnni => "avx512-vnni",
            Backend::Neon => "neon",
            Backend::NeonDot => "neon-dot",
        }
    }

    /// Whether this build has the backend's kernels (it is for the target's architecture).
    pub const fn is_compiled(self) -> bool {
        match self {
            Backend::Generic => true,
            Backend::Sse2 | Backend::Avx2 | Backend::Avx512Vnni => cfg!(target_arch = "x86_64"),
            Backend::Neon | Backend::NeonDot => cfg!(target_arch = "aarch64"),
        }
    }

    /// Whether this build has the backend and this CPU has its instructions (detected once, then cached).
    pub fn is_available(self) -> bool {
        Engine::select(self).is_ok()
    }

    /// The fastest backend this build and CPU have.
    pub fn detect() -> Backend {
        Engine::detect().backend()
    }

    /// The backends this build and CPU have, in [`Backend::ALL`]'s order.
    pub fn available() -> impl Iterator<Item = Backend> {
        Backend::ALL.into_iter().filter(|b| b.is_available())
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of [`Backend::name`]'s was parsed as a [`Backend`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseBackendError;

impl fmt::Display for ParseBackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown backend: use generic, sse2, avx2, avx512-vnni, neon or neon-dot")
    }
}

impl core::error::Error for ParseBackendError {}

impl core::str::FromStr for Backend {
    type Err = ParseBackendError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Backend::ALL
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(s))
            .ok_or(ParseBackendError)
    }
}

/// A backend was asked for that this build or this CPU does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendUnavailable {
    /// The backend asked for.
    pub backend: Backend,
}

impl fmt::Display for BackendUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("backend ")?;
        f.write_str(self.backend.name())?;
        if self.backend.is_compiled() {
            f.write_str(" is not supported by this CPU")
        } else {
            f.write_str(" is not compiled for this target")
        }
    }
}

impl core::error::Error for BackendUnavailable {}

/// A backend together with the proof that this CPU can run it: the architecture variants hold a token that only
/// CPU detection can make.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Engine {
    Generic,
    #[cfg(target_arch = "x86_64")]
    X86(x86_64::Isa),
    #[cfg(target_arch = "aarch64")]
    Arm64(aarch64::Isa),
}

impl Engine {
    /// The fastest engine this build and CPU have.
    pub(crate) fn detect() -> Engine {
        #[cfg(target_arch = "x86_64")]
        if let Some(isa) = x86_64::Isa::best() {
            return Engine::X86(isa);
        }
        #[cfg(target_arch = "aarch64")]
        return Engine::Arm64(aarch64::Isa::best());
        #[allow(unreachable_code)]
        Engine::Generic
    }

    /// The engine of `backend`, if this build and CPU have it.
    pub(crate) fn select(backend: Backend) -> Result<Engine, BackendUnavailable> {
        let engine = match backend {
            Backend::Generic => Some(Engine::Generic),
            #[cfg(target_arch = "x86_64")]
            Backend::Sse2 | Backend::Avx2 | Backend::Avx512Vnni => {
                x86_64::Isa::new(backend).map(Engine::X86)
            }
            #[cfg(target_arch = "aarch64")]
            Backend::Neon | Backend::NeonDot => aarch64::Isa::new(backend).map(Engine::Arm64),
            #[allow(unreachable_patterns)]
            _ => None,
        };
        engine.ok_or(BackendUnavailable { backend })
    }

    /// The backend this engine runs.
    pub(crate) fn backend(self) -> Backend {
        match self {
            Engine::Generic => Backend::Generic,
            #[cfg(target_arch = "x86_64")]
            Engine::X86(isa) => isa.backend(),
            #[cfg(target_arch = "aarch64")]
            Engine::Arm64(isa) => isa.backend(),
        }
    }
}

/// The input quantizer of layer 0: f32 features to int8 (static quantization).
#[inline]
pub(crate) fn quantize(
    engine: Engine,
    q: &OutQuant,
    coefficients: &[u8],
    features: &[f32],
    out: &mut [u8],
) {
    match engine {
        #[cfg(target_arch = "x86_64")]
        Engine::X86(isa) if isa.quantize(q, coefficients, features, out) => {}
        _ => generic::quantize::quantize(q, coefficients, features, out),
    }
}

/// Runs one layer other than layer 0 and Add (which the session runs, having two inputs): reads `x`, writes
/// `out`.
///
/// `x` is mutable because some kernels (AVX-512 VNNI) turn the input into unsigned bytes in place for the
/// duration of the layer and restore it before they return; nothing else reads the arena meanwhile.
pub(crate) fn layer(engine: Engine, l: &LayerPlan<'_>, x: &mut [u8], out: &mut [u8]) {
    let q = &l.out;
    let (in_t, in_c) = l.in_shape;
    match l.op {
        Op::Dense(ref w) => dense(engine, q, l.in_zp, w, x, out),
        Op::Conv1d(ref conv, ref w) => conv1d(engine, q, (conv, in_c), w, x, out),
        Op::Lut { table } => generic::pool::lut(table, x, out),
        Op::MaxPool1d(ref window) => match engine {
            #[cfg(target_arch = "x86_64")]
            Engine::X86(isa) if isa.max_pool(q, window, in_c, x, out) => {}
            _ => generic::pool::max_pool(q, window, in_c, x, out),
        },
        Op::AvgPool1d(ref window, requant) => {
            generic::pool::avg_pool(q, (window, requant), (in_c, l.in_zp), x, out)
        }
        Op::GlobalAvgPool(requant) => {
            let window = crate::plan::Window {
                kernel: in_t,
                stride: 1,
            };
            match engine {
                #[cfg(target_arch = "x86_64")]
                Engine::X86(isa)
                    if isa.global_avg_pool(q, requant, (in_t, in_c, l.in_zp), x, out) => {}
                _ => generic::pool::avg_pool(q, (&window, requant), (in_c, l.in_zp), x, out),
            }
        }
        Op::Flatten => {
            for (o, &v) in out.iter_mut().zip(x.iter()) {
                *o = v;
            }
        }
        // The session runs Add, and Quantize (always layer 0) itself.
        Op::Add { .. } | Op::Quantize { .. } => {}
    }
}
/// Dense through the engine's kernel for the weights' format, or the portable one.
#[inline(always)]
fn dense(engine: Engine, q: &OutQuant, in_zp: i8, w: &Weighted<'_>, x: &mut [u8], out: &mut [u8]) {
    match (engine, &w.weights) {
        #[cfg(all(target_arch = "x86_64", feature = "dense-dot"))]
        (Engine::X86(isa), Weights::Dot { bytes, offset_bias }) => {
            isa.dense_dot(q, w, (bytes, offset_bias), x, out)
        }
        #[cfg(all(target_arch = "aarch64", feature = "dense-dot"))]
        (Engine::Arm64(isa), Weights::Dot { bytes, .. }) => isa.dense_dot(q, w, bytes, x, out),
        #[cfg(all(target_arch = "x86_64", feature = "sparse-formats"))]
        (Engine::X86(isa), Weights::Columns(c)) => {
            let x = x.get(..w.row_len).unwrap_or(x);
            isa.dense_columns((q, &w.channels), c, in_zp, x, out)
        }
        #[cfg(all(target_arch = "x86_64", feature = "sparse-formats"))]
        (Engine::X86(isa), Weights::Packed(p)) => {
            let x = x.get(..w.row_len).unwrap_or(x);
            isa.dense_packed((q, &w.channels), p, in_zp, x, out)
        }
        _ => generic::dense(q, in_zp, w, x, out),
    }
}

/// Conv1d through the engine's kernel for the weights' format, or the portable one.
#[inline(always)]
fn conv1d(
    engine: Engine,
    q: &OutQuant,
    (conv, c_in): (&Conv, usize),
    w: &Weighted<'_>,
    x: &mut [u8],
    out: &mut [u8],
) {
    match (engine, &w.weights) {
        #[cfg(all(target_arch = "x86_64", feature = "dense-dot"))]
        (Engine::X86(isa), Weights::Dot { bytes, offset_bias }) => {
            isa.conv_dot(q, (conv, c_in), w, (bytes, offset_bias), x, out)
        }
        #[cfg(all(target_arch = "aarch64", feature = "dense-dot"))]
        (Engine::Arm64(isa), Weights::Dot { bytes, .. }) => {
            isa.conv_dot(q, (conv, c_in), w, bytes, x, out)
        }
        _ => generic::conv1d(q, conv, c_in, w, x, out),
    }
}

/// The window session's partial dot products through the engine's kernel, if it has one (AVX-512 VNNI):
/// `acc[j] += sum_c w[from + j][c] * x[c]` over the lanes of `w = (weights, lanes, corr)` (see
/// `stream::window`); `false` when the caller has to run its portable loop.
#[cfg(feature = "stream")]
#[inline]
pub(crate) fn lanes_dot(
    engine: Engine,
    w: (&[u8], usize, &[u8]),
    from: usize,
    x: &[u8],
    acc: &mut [i32],
) -> bool {
    match engine {
        #[cfg(target_arch = "x86_64")]
        Engine::X86(isa) => isa.lanes_dot(w, from, x, acc),
        _ => {
            let _ = (w, from, x, acc);
            false
        }
    }
}

/// Requantizes `acc` (channel `first + j` in `acc[j]`) into `out` with the channels' multipliers and shifts,
/// as every weighted kernel does: the engine's vectorized requantization where it has one, else the portable
/// one.
#[cfg(feature = "stream")]
#[inline]
pub(crate) fn requant_lanes(
    engine: Engine,
    q: &OutQuant,
    ch: &crate::plan::Channels<'_>,
    first: usize,
    acc: &[i32],
    out: &mut [u8],
) {
    #[cfg(target_arch = "x86_64")]
    if let Engine::X86(isa) = engine
        && isa.requant_lanes(q, ch, first, acc, out)
    {
        return;
    }
    let _ = engine;
    let lanes = ch
        .multipliers
        .chunks_exact(4)
        .skip(first)
        .zip(ch.shifts.iter().skip(first));
    for ((o, &a), (m, &s)) in out.iter_mut().zip(acc).zip(lanes) {
        *o = generic::blocked::requantize_channel(q, a, m, s);
    }
}

/// The first index of the largest of `logits` (0 if there are none).
///
/// Two passes, the maximum and then its first position, rather than one that tracks both: the maximum is a
/// branch-free reduction the compiler vectorizes on every target, and the search stops at the first hit,
/// where a running argmax takes a data-dependent branch per logit.
#[inline]
pub(crate) fn argmax(logits: &[i8]) -> usize {
    let max = logits.iter().copied().fold(i8::MIN, i8::max);
    logits.iter().position(|&v| v == max).unwrap_or(0)
}
