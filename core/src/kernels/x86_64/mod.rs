//! The x86-64 backends: SSE2 (every x86-64 CPU), AVX2 (x86-64-v3) and AVX-512 VNNI (x86-64-v4 with VNNI).
//!
//! Each instruction set's kernels live in their own module as `#[target_feature]` functions; this module
//! detects what the CPU has (CPUID and XGETBV, once, cached in an atomic) and hands out an [`Isa`] token only for
//! instruction sets that are present and enabled by the operating system. Calling a kernel needs the token, so the
//! `unsafe` calls below are sound by construction: a token exists only where detection succeeded.
//!
//! Kernels here cover the `dense-dot` weight format (Dense and Conv1d, with the requantization vectorized), the
//! input quantizer, max pooling and global average pooling; everything else runs the portable kernels.
#![allow(
    unsafe_code,
    reason = "CPU feature detection and target-feature kernels; each unsafe block has its SAFETY argument"
)]

mod avx2;
mod avx512;
#[cfg(feature = "dense-dot")]
mod sse2;

use core::sync::atomic::{AtomicU8, Ordering};

use super::Backend;
#[cfg(feature = "dense-dot")]
use crate::plan::{Conv, Weighted};
use crate::plan::{OutQuant, Window};
use crate::requant::QuantMultiplier;
#[cfg(feature = "sparse-formats")]
use crate::{
    kernels::generic,
    plan::{Channels, ColumnPairs, PackedColumns},
};

/// Detected: AVX2 usable.
const HAS_AVX2: u8 = 1 << 1;
/// Detected: AVX-512 F, BW, VL, DQ and VNNI usable.
const HAS_AVX512_VNNI: u8 = 1 << 2;
/// Set once detection ran.
const DETECTED: u8 = 1 << 7;

/// What [`features`] found, cached after the first call (CPUID is slow in a virtual machine: it traps).
static FEATURES: AtomicU8 = AtomicU8::new(0);

/// The instruction sets of this CPU that the OS has enabled, as `HAS_*` bits.
fn features() -> u8 {
    let cached = FEATURES.load(Ordering::Relaxed);
    if cached & DETECTED != 0 {
        return cached;
    }
    let found = detect() | DETECTED;
    FEATURES.store(found, Ordering::Relaxed);
    found
}

/// Reads CPUID and XCR0.
///
/// AVX state needs CPUID.1:ECX.OSXSAVE (bit 27) and AVX (bit 28), and XCR0 bits 1 and 2 (SSE and AVX state);
/// AVX-512 state also XCR0 bits 5 to 7 (opmask, upper halves of ZMM0-15, ZMM16-31).
/// AVX2 is CPUID.(7,0):EBX bit 5; AVX-512 F, DQ, BW and VL are EBX bits 16, 17, 30 and 31; AVX512-VNNI is ECX
/// bit 11.
#[cfg(not(miri))]
fn detect() -> u8 {
    use core::arch::x86_64::{__cpuid, __cpuid_count};
    let leaf0 = __cpuid(0);
    if leaf0.eax < 7 {
        return 0;
    }
    let leaf1 = __cpuid(1);
    let osxsave = leaf1.ecx & (1 << 27) != 0;
    let avx = leaf1.ecx & (1 << 28) != 0;
    if !(osxsave && avx) {
        return 0;
    }
    let xcr0 = xcr0();
    if xcr0 & 0b110 != 0b110 {
        return 0;
    }
    let leaf7 = __cpuid_count(7, 0);
    let bit = |r: u32, b: u32| r & (1 << b) != 0;
    let mut found = 0;
    if bit(leaf7.ebx, 5) {
        found |= HAS_AVX2;
    }
    let avx512 =
        bit(leaf7.ebx, 16) && bit(leaf7.ebx, 17) && bit(leaf7.ebx, 30) && bit(leaf7.ebx, 31);
    if found & HAS_AVX2 != 0 && avx512 && bit(leaf7.ecx, 11) && xcr0 & 0xE0 == 0xE0 {
        found |= HAS_AVX512_VNNI;
    }
    found
}

/// Under Miri, which cannot run CPUID, the instruction sets the build enables statically
/// (`-C target-feature=...`), so that `cargo miri test` checks whichever kernels those flags allow.
#[cfg(miri)]
fn detect() -> u8 {
    let mut found = 0;
    if cfg!(target_feature = "avx2") {
        found |= HAS_AVX2;
    }
    if cfg!(all(
        target_feature = "avx512f",
        target_feature = "avx512bw",
        target_feature = "avx512vl",
        target_feature = "avx512dq",
        target_feature = "avx512vnni"
    )) {
        found |= HAS_AVX512_VNNI;
    }
    found
}

/// XCR0, the register of the state components the OS saves; only called once CPUID reported OSXSAVE.
#[cfg(not(miri))]
fn xcr0() -> u64 {
    #[target_feature(enable = "xsave")]
    fn read() -> u64 {
        // SAFETY: XGETBV with ECX = 0 reads XCR0, which always exists where XSAVE does.
        unsafe { core::arch::x86_64::_xgetbv(0) }
    }
    // SAFETY: `read` needs the XSAVE feature, whose XGETBV instruction CPUID.1:ECX.OSXSAVE (checked by the only
    // caller) says the OS has enabled.
    unsafe { read() }
}

/// An x86-64 instruction set this CPU has, as a token: values are made only by [`Isa::new`] and [`Isa::best`],
/// after detection, so holding one proves the kernels of that instruction set can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Isa(Level);

/// The instruction sets, in increasing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Sse2,
    Avx2,
    Avx512Vnni,
}

impl Isa {
    /// The token of `backend`, if this CPU has it (SSE2 is part of x86-64, so always).
    pub(crate) fn new(backend: Backend) -> Option<Isa> {
        let f = features();
        match backend {
            Backend::Sse2 => Some(Isa(Level::Sse2)),
            Backend::Avx2 if f & HAS_AVX2 != 0 => Some(Isa(Level::Avx2)),
            Backend::Avx512Vnni if f & HAS_AVX512_VNNI != 0 => Some(Isa(Level::Avx512Vnni)),
            _ => None,
        }
    }

    /// The best instruction set of this CPU.
    pub(crate) fn best() -> Option<Isa> {
        [Backend::Avx512Vnni, Backend::Avx2, Backend::Sse2]
            .into_iter()
            .find_map(Isa::new)
    }

    /// The backend this token stands for.
    pub(crate) fn backend(self) -> Backend {
        match self.0 {
            Level::Sse2 => Backend::Sse2,
            Level::Avx2 => Backend::Avx2,
            Level::Avx512Vnni => Backend::Avx512Vnni,
        }
    }

    /// Dense over `dense-dot` weights (`weights`, with the second bias `offset_bias`).
    #[cfg(feature = "dense-dot")]
    #[inline]
    pub(crate) fn dense_dot(
        self,
        q: &OutQuant,
        w: &Weighted<'_>,
        (weights, offset_bias): (&[u8], &[u8]),
        x: &mut [u8],
        out: &mut [u8],
    ) {
        let layer = DotLayer {
            q,
            weights,
            offset_bias,
            w,
        };
        match self.0 {
            // SAFETY: this token exists only if `features` found AVX-512 F/BW/VL/DQ/VNNI enabled.
            Level::Avx512Vnni => unsafe { avx512::dot::dense(&layer, x, out) },
            // SAFETY: this token exists only if `features` found AVX2 enabled.
            Level::Avx2 => unsafe { avx2::dot::dense(&layer, x, out) },
            // SAFETY: SSE2 is part of x86-64, so every CPU this build runs on has it.
            Level::Sse2 => unsafe { sse2::dense(&layer, x, out) },
        }
    }

    /// Conv1d over `dense-dot` weights.
    #[cfg(feature = "dense-dot")]
    #[inline]
    pub(crate) fn conv_dot(
        self,
        q: &OutQuant,
        (conv, c_in): (&Conv, usize),
        w: &Weighted<'_>,
        (weights, offset_bias): (&[u8], &[u8]),
        x: &mut [u8],
        out: &mut [u8],
    ) {
        let layer = DotLayer {
            q,
            weights,
            offset_bias,
            w,
        };
        match self.0 {
            // SAFETY: this token exists only if `features` found AVX-512 F/BW/VL/DQ/VNNI enabled.
            Level::Avx512Vnni => unsafe { avx512::dot::conv(&layer, (conv, c_in), x, out) },
            // SAFETY: this token exists only if `features` found AVX2 enabled.
            Level::Avx2 => unsafe { avx2::dot::conv(&layer, (conv, c_in), x, out) },
            // SAFETY: SSE2 is part of x86-64, so every CPU this build runs on has it.
            Level::Sse2 => unsafe { sse2::conv(&layer, (conv, c_in), x, out) },
        }
    }

    /// The window session's partial dot products (`avx512::lanes`): `acc[j] += sum_c w[from + j][c] * x[c]`
    /// over the lanes of `weights` (groups of 4 inputs, one quad per lane) with their `128 * sum w` in `corr`;
    /// `false` where this instruction set has no such kernel (the caller runs the portable loop).
    #[cfg(feature = "stream")]
    #[inline]
    pub(crate) fn lanes_dot(
        self,
        w: (&[u8], usize, &[u8]),
        from: usize,
        x: &[u8],
        acc: &mut [i32],
    ) -> bool {
        match self.0 {
            // SAFETY: this token exists only if `features` found AVX-512 F/BW/VL/DQ/VNNI enabled.
            Level::Avx512Vnni => unsafe { avx512::lanes::lanes_dot(w, from, x, acc) },
            Level::Avx2 | Level::Sse2 => false,
        }
    }

    /// The window session's requantization of `acc` (channels `first..`) into `out` (`avx512::lanes`);
    /// `false` where this instruction set has no such kernel.
    #[cfg(feature = "stream")]
    #[inline]
    pub(crate) fn requant_lanes(
        self,
        q: &OutQuant,
        ch: &crate::plan::Channels<'_>,
        first: usize,
        acc: &[i32],
        out: &mut [u8],
    ) -> bool {
        match self.0 {
            // SAFETY: this token exists only if `features` found AVX-512 F/BW/VL/DQ/VNNI enabled.
            Level::Avx512Vnni => unsafe { avx512::lanes::requant(q, ch, first, acc, out) },
            Level::Avx2 | Level::Sse2 => false,
        }
    }

    /// Dense over column-sparse weights.
    #[cfg(feature = "sparse-formats")]
    #[inline]
    pub(crate) fn dense_columns(
        self,
        (q, ch): (&OutQuant, &Channels<'_>),
        columns: &ColumnPairs<'_>,
        in_zp: i8,
        x: &[u8],
        out: &mut [u8],
    ) {
        match self.0 {
            // SAFETY: this token exists only if `features` found AVX-512 F/BW/VL/DQ/VNNI enabled.
            Level::Avx512Vnni => unsafe {
                avx512::columns::dense_columns(q, ch, columns, in_zp, x, out)
            },
            // SAFETY: this token exists only if `features` found AVX2 enabled.
            Level::Avx2 => unsafe { avx2::columns::dense_columns(q, ch, columns, in_zp, x, out) },
            Level::Sse2 => generic::sparse::dense_columns(q, ch, columns, in_zp, x, out),
        }
    }

    /// Dense over packed column-sparse weights.
    #[cfg(feature = "sparse-formats")]
    #[inline]
    pub(crate) fn dense_packed(
        self,
        (q, ch): (&OutQuant, &Channels<'_>),
        packed: &PackedColumns<'_>,
        in_zp: i8,
        x: &[u8],
        out: &mut [u8],
    ) {
        match self.0 {
            // SAFETY: this token exists only if `features` found AVX-512 F/BW/VL/DQ/VNNI enabled.
            Level::Avx512Vnni => unsafe {
                avx512::columns::dense_packed(q, ch, packed, in_zp, x, out)
            },
            // SAFETY: this token exists only if `features` found AVX2 enabled.
            Level::Avx2 => unsafe { avx2::columns::dense_packed(q, ch, packed, in_zp, x, out) },
            Level::Sse2 => generic::sparse::dense_packed(q, ch, packed, in_zp, x, out),
        }
    }

    /// The static input quantizer; returns false (having done nothing) where the portable one should run.
    #[inline]
    pub(crate) fn quantize(
        self,
        q: &OutQuant,
        coefficients: &[u8],
        features: &[f32],
        out: &mut [u8],
    ) -> bool {
        match self.0 {
            // SAFETY: this token exists only if `features` found AVX-512 F/BW/VL/DQ/VNNI enabled.
            Level::Avx512Vnni => unsafe { avx512::quantize(q, coefficients, features, out) },
            // SAFETY: this token exists only if `features` found AVX2 enabled.
            Level::Avx2 => unsafe { avx2::quantize(q, coefficients, features, out) },
            Level::Sse2 => false,
        }
    }

    /// MaxPool1d; returns false (having done nothing) where the portable kernel should run.
    #[inline]
    pub(crate) fn max_pool(
        self,
        q: &OutQuant,
        window: &Window,
        c: usize,
        x: &[u8],
        out: &mut [u8],
    ) -> bool {
        match self.0 {
            // SAFETY: this token exists only if `features` found AVX2 (part of every AVX-512 level here).
            Level::Avx512Vnni | Level::Avx2 => unsafe { avx2::max_pool(q, window, c, x, out) },
            Level::Sse2 => false,
        }
    }

    /// GlobalAvgPool; returns false (having done nothing) where the portable kernel should run.
    #[inline]
    pub(crate) fn global_avg_pool(
        self,
        q: &OutQuant,
        requant: QuantMultiplier,
        shape: (usize, usize, i8),
        x: &[u8],
        out: &mut [u8],
    ) -> bool {
        match self.0 {
            // SAFETY: this token exists only if `features` found AVX2 (part of every AVX-512 level here).
            Level::Avx512Vnni | Level::Avx2 => unsafe {
                avx2::global_avg_pool(q, requant, shape, x, out)
            },
            Level::Sse2 => false,
        }
    }
}

/// The input groups of one row of `row_len` bytes: the whole groups read in place through a pointer (the row's
/// length is checked once, when this is made), and the last partial group, if any, as a word whose missing bytes
/// are zero (their weights are zero padding).
#[cfg(feature = "dense-dot")]
#[derive(Clone, Copy)]
pub(super) struct RowWords {
    ptr: *const u8,
    /// The number of whole groups, `row_len / 4`.
    pub whole: usize,
    /// The partial last group.
    pub last: Option<i32>,
}

#[cfg(feature = "dense-dot")]
impl RowWords {
    /// The groups of `x[..row_len]`, or `None` if `x` is shorter (never for a loaded model).
    #[inline]
    pub fn new(x: &[u8], row_len: usize) -> Option<RowWords> {
        let row = x.get(..row_len)?;
        let whole = row_len / 4;
        let last = (!row_len.is_multiple_of(4)).then(|| {
            let mut word = [0u8; 4];
            for (d, s) in word.iter_mut().zip(row.get(4 * whole..).unwrap_or(&[])) {
                *d = *s;
            }
            i32::from_le_bytes(word)
        });
        Some(RowWords {
            ptr: row.as_ptr(),
            whole,
            last,
        })
    }

    /// Group `g`: a whole group read in place for `g < whole`, the partial last group otherwise.
    #[inline(always)]
    pub fn word(&self, g: usize) -> i32 {
        if g < self.whole {
            // SAFETY: `new` checked that the row has `row_len >= 4 * whole` readable bytes, so the 4 bytes of a
            // whole group `g < whole` are in bounds; the read is unaligned.
            unsafe { core::ptr::read_unaligned(self.ptr.add(4 * g).cast::<i32>()) }
        } else {
            self.last.unwrap_or(0)
        }
    }
}

/// A `dense-dot` layer as the x86 kernels see it.
#[cfg(feature = "dense-dot")]
pub(super) struct DotLayer<'l, 'b> {
    pub q: &'l OutQuant,
    pub weights: &'b [u8],
    pub offset_bias: &'b [u8],
    pub w: &'l Weighted<'b>,
}
