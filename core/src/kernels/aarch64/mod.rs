//! The aarch64 backends: NEON (every aarch64 CPU) and NEON with the dot-product extension (`SDOT`).
//!
//! Kernels here cover the `dense-dot` weight format (Dense, and Conv1d with dilation 1), with the requantization
//! vectorized four channels at a time; everything else runs the portable kernels.
//!
//! # Why this shape
//!
//! One step of a `dense-dot` block is 16 channels x 4 inputs: four 128-bit registers of 4 channels each.
//! With the dot-product extension, `SDOT` adds in each 32-bit lane the dot product of 4 signed weight bytes with
//! the 4 signed inputs of the group (broadcast to every lane): one instruction per 16 multiply-adds, exact, on
//! the signed inputs and the plain bias. Without it, `SMULL` multiplies 8 weight bytes with the group repeated
//! twice into 16-bit products (exact: at most `128 * 128`) and `SADALP` adds adjacent pairs into 32-bit lanes,
//! which leaves two partial sums per channel, added once per block at the end.
//!
//! The requantization takes two channels per 64-bit lane pair: `SMULL` forms `acc * M` exactly, adding
//! `p >> 63` and a rounding right shift (`SRSHL` by `-s`, which adds `2^(s-1)` before shifting) is the round half
//! away from zero of `requant::requantize`; a saturating narrow to 32 bits changes nothing once the result is
//! clamped to the int8 range.
//!
//! The dot-product intrinsics are not stable Rust, so `SDOT` is one `asm!` instruction; detection uses `std`'s
//! `is_aarch64_feature_detected!` with the `std` feature, and the compile-time target features without it.
#![allow(
    unsafe_code,
    reason = "NEON loads and stores, and the SDOT instruction; each unsafe block has its SAFETY argument"
)]
#![allow(
    clippy::indexing_slicing,
    reason = "every index is checked against a length the kernel checked first"
)]

#[cfg(feature = "dense-dot")]
use core::arch::aarch64::*;

use super::Backend;
#[cfg(feature = "dense-dot")]
use crate::format::layout::dot::{BLOCK, GROUP, block_len, padded_row};
#[cfg(feature = "dense-dot")]
use crate::format::le_i32;
#[cfg(feature = "dense-dot")]
use crate::kernels::generic;
#[cfg(feature = "dense-dot")]
use crate::plan::{Channels, Conv, OutQuant, Weighted};

/// An aarch64 instruction set this CPU has, as a token made only after detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Isa {
    dot: bool,
}

/// Whether the CPU has the dot-product extension (`FEAT_DotProd`).
fn has_dotprod() -> bool {
    #[cfg(all(feature = "std", not(miri)))]
    {
        std::arch::is_aarch64_feature_detected!("dotprod")
    }
    #[cfg(not(all(feature = "std", not(miri))))]
    {
        cfg!(target_feature = "dotprod")
    }
}

impl Isa {
    /// The token of `backend`, if this CPU has it (NEON is part of aarch64, so always).
    pub(crate) fn new(backend: Backend) -> Option<Isa> {
        match backend {
            Backend::Neon => Some(Isa { dot: false }),
            Backend::NeonDot if has_dotprod() => Some(Isa { dot: true }),
            _ => None,
        }
    }

    /// The best instruction set of this CPU.
    pub(crate) fn best() -> Isa {
        Isa { dot: has_dotprod() }
    }

    /// The backend this token stands for.
    pub(crate) fn backend(self) -> Backend {
        if self.dot {
            Backend::NeonDot
        } else {
            Backend::Neon
        }
    }

    /// Dense over `dense-dot` weights.
    #[cfg(feature = "dense-dot")]
    pub(crate) fn dense_dot(
        self,
        q: &OutQuant,
        w: &Weighted<'_>,
        weights: &[u8],
        x: &mut [u8],
        out: &mut [u8],
    ) {
        let x = x.get(..w.row_len).unwrap_or(x);
        if !lengths_ok(w, weights) {
            return generic::dot::dense(q, weights, w.row_len, &w.channels, x, out);
        }
        if self.dot {
            // SAFETY: this token has `dot` only if detection found the dot-product extension.
            unsafe { rows_sdot(q, w, weights, x, out) }
        } else {
            // SAFETY: NEON is part of aarch64.
            unsafe { rows_neon(q, w, weights, x, out) }
        }
    }

    /// Conv1d over `dense-dot` weights: a Dense over each output step's window with dilation 1; dilated
    /// convolutions run the portable kernel.
    #[cfg(feature = "dense-dot")]
    pub(crate) fn conv_dot(
        self,
        q: &OutQuant,
        (conv, c_in): (&Conv, usize),
        w: &Weighted<'_>,
        weights: &[u8],
        x: &mut [u8],
        out: &mut [u8],
    ) {
        let channels = w.channels.shifts.len();
        if conv.dilation != 1 || channels == 0 || !lengths_ok(w, weights) {
            return generic::dot::conv1d(q, conv, (c_in, w.row_len), weights, &w.channels, x, out);
        }
        let step = conv.stride * c_in;
        for (t, row) in out.chunks_exact_mut(channels).enumerate() {
            let window = x.get(t * step..).unwrap_or(&[]);
            let window = window.get(..w.row_len).unwrap_or(window);
            if self.dot {
                // SAFETY: this token has `dot` only if detection found the dot-product extension.
                unsafe { rows_sdot(q, w, weights, window, row) }
            } else {
                // SAFETY: NEON is part of aarch64.
                unsafe { rows_neon(q, w, weights, window, row) }
            }
        }
    }
}

#[cfg(feature = "dense-dot")]
/// Whether the section holds `channels * K4` bytes (never false for a loaded model).
fn lengths_ok(w: &Weighted<'_>, weights: &[u8]) -> bool {
    weights.len() as u64
        >= crate::format::layout::dot::weights_len(w.channels.shifts.len(), w.row_len)
}

#[cfg(feature = "dense-dot")]
/// The 4 inputs of group `g` as a little-endian word (a partial last group zero-padded; its weights are
/// padding).
#[inline(always)]
fn group_word(x: &[u8], g: usize) -> u32 {
    let mut word = [0u8; GROUP];
    for (d, &s) in word.iter_mut().zip(x.get(GROUP * g..).unwrap_or(&[])) {
        *d = s;
    }
    u32::from_le_bytes(word)
}

#[cfg(feature = "dense-dot")]
/// 16 weight bytes of one quad (4 channels x 4 inputs) starting at `at` in `w`, zero-filled past the end of
/// `w` (the partial quad of a tail block).
#[target_feature(enable = "neon")]
#[inline]
fn quad_at(w: &[u8], at: usize) -> int8x16_t {
    match w.get(at..at + 16) {
        // SAFETY: `b` is 16 readable bytes; NEON loads have no alignment requirement.
        Some(b) => unsafe { vld1q_s8(b.as_ptr().cast()) },
        None => {
            let mut buf = [0u8; 16];
            for (d, &s) in buf.iter_mut().zip(w.get(at..).unwrap_or(&[])) {
                *d = s;
            }
            // SAFETY: `buf` is 16 readable bytes.
            unsafe { vld1q_s8(buf.as_ptr().cast()) }
        }
    }
}

#[cfg(feature = "dense-dot")]
/// Requantizes 4 channel sums (bias included) from channel `first` and writes the first `n <= 4` to `out`.
#[target_feature(enable = "neon")]
#[inline]
fn store4(q: &OutQuant, ch: &Channels<'_>, acc: int32x4_t, first: usize, n: usize, out: &mut [u8]) {
    let mut m = [0i32; 4];
    let mut s = [0i64; 4];
    for i in 0..n.min(4) {
        let at = 4 * (first + i);
        m[i] = ch.multipliers.get(at..at + 4).map_or(1 << 30, le_i32);
        s[i] = -i64::from(ch.shifts.get(first + i).copied().unwrap_or(1));
    }
    // SAFETY: the arrays are 4 readable lanes each.
    let (m, s_lo, s_hi) = unsafe {
        (
            vld1q_s32(m.as_ptr()),
            vld1q_s64(s.as_ptr()),
            vld1q_s64(s.as_ptr().add(2)),
        )
    };
    let round = |p: int64x2_t, s: int64x2_t| vrshlq_s64(vaddq_s64(p, vshrq_n_s64::<63>(p)), s);
    let lo = round(vmull_s32(vget_low_s32(acc), vget_low_s32(m)), s_lo);
    let hi = round(vmull_high_s32(acc, m), s_hi);
    let y = vcombine_s32(vqmovn_s64(lo), vqmovn_s64(hi));
    let y = vqaddq_s32(y, vdupq_n_s32(i32::from(q.zp)));
    let y = vminq_s32(
        vmaxq_s32(y, vdupq_n_s32(i32::from(q.act_min))),
        vdupq_n_s32(i32::from(q.act_max)),
    );
    let bytes = vqmovn_s16(vcombine_s16(vqmovn_s32(y), vqmovn_s32(y)));
    let mut b = [0u8; 8];
    // SAFETY: `b` is 8 writable bytes.
    unsafe { vst1_s8(b.as_mut_ptr().cast(), bytes) };
    for (o, &v) in out.iter_mut().skip(first).zip(&b).take(n) {
        *o = v;
    }
}

#[cfg(feature = "dense-dot")]
/// The plain bias of 4 channels from `first` (0 past the last channel).
#[target_feature(enable = "neon")]
#[inline]
fn bias4(ch: &Channels<'_>, first: usize) -> int32x4_t {
    let mut b = [0i32; 4];
    for (i, v) in b.iter_mut().enumerate() {
        *v = ch
            .bias
            .get(4 * (first + i)..4 * (first + i) + 4)
            .map_or(0, le_i32);
    }
    // SAFETY: `b` is 4 readable lanes.
    unsafe { vld1q_s32(b.as_ptr()) }
}

#[cfg(feature = "dense-dot")]
/// `acc += w . x` lane by lane (4 bytes per lane): one `SDOT`.
#[target_feature(enable = "neon,dotprod")]
#[inline]
fn sdot(acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: `SDOT` (by vector) reads its three vector registers and writes the first; the caller's
    // `target_feature` guarantees the CPU has it (checked by detection); no memory is touched.
    unsafe {
        core::arch::asm!(
            "sdot {acc:v}.4s, {w:v}.16b, {x:v}.16b",
            acc = inout(vreg) acc,
            w = in(vreg) w,
            x = in(vreg) x,
            options(pure, nomem, nostack),
        );
    }
    acc
}

#[cfg(feature = "dense-dot")]
/// Dense over one row with `SDOT`.
///
/// # Safety
///
/// The CPU must have the dot-product extension.
#[target_feature(enable = "neon,dotprod")]
unsafe fn rows_sdot(q: &OutQuant, w: &Weighted<'_>, weights: &[u8], x: &[u8], out: &mut [u8]) {
    let ch = &w.channels;
    let channels = ch.shifts.len();
    let (groups, blen) = (padded_row(w.row_len) / GROUP, block_len(w.row_len));
    for b in 0..channels.div_ceil(BLOCK) {
        let first = b * BLOCK;
        let n = (channels - first).min(BLOCK);
        let quads = n.div_ceil(4);
        let step = GROUP * n;
        let block = weights.get(b * blen..).unwrap_or(&[]);
        let mut acc = [vdupq_n_s32(0); 4];
        for (k, a) in acc.iter_mut().enumerate().take(quads) {
            *a = bias4(ch, first + 4 * k);
        }
        for g in 0..groups {
            let xb = vreinterpretq_s8_u32(vdupq_n_u32(group_word(x, g)));
            for (k, a) in acc.iter_mut().enumerate().take(quads) {
                *a = sdot(*a, quad_at(block, step * g + 16 * k), xb);
            }
        }
        for (k, &a) in acc.iter().enumerate().take(quads) {
            store4(q, ch, a, first + 4 * k, (n - 4 * k).min(4), out);
        }
    }
}

#[cfg(feature = "dense-dot")]
/// Dense over one row with `SMULL` and `SADALP`.
///
/// # Safety
///
/// NEON is part of aarch64, so this is always sound; it is `unsafe` only to share its callers' shape.
#[target_feature(enable = "neon")]
unsafe fn rows_neon(q: &OutQuant, w: &Weighted<'_>, weights: &[u8], x: &[u8], out: &mut [u8]) {
    let ch = &w.channels;
    let channels = ch.shifts.len();
    let (groups, blen) = (padded_row(w.row_len) / GROUP, block_len(w.row_len));
    for b in 0..channels.div_ceil(BLOCK) {
        let first = b * BLOCK;
        let n = (channels - first).min(BLOCK);
        let quads = n.div_ceil(4);
        let step = GROUP * n;
        let block = weights.get(b * blen..).unwrap_or(&[]);
        // Per quad: channels 0-1 and 2-3, each as two partial sums per channel.
        let mut acc = [[vdupq_n_s32(0); 2]; 4];
        for g in 0..groups {
            let word = u64::from(group_word(x, g));
            let x8 = vreinterpret_s8_u64(vcreate_u64(word | (word << 32)));
            let x16 = vcombine_s8(x8, x8);
            for (k, a) in acc.iter_mut().enumerate().take(quads) {
                let wq = quad_at(block, step * g + 16 * k);
                a[0] = vpadalq_s16(a[0], vmull_s8(vget_low_s8(wq), x8));
                a[1] = vpadalq_s16(a[1], vmull_high_s8(wq, x16));
            }
        }
        for (k, a) in acc.iter().enumerate().take(quads) {
            let sums = vaddq_s32(vpaddq_s32(a[0], a[1]), bias4(ch, first + 4 * k));
            store4(q, ch, sums, first + 4 * k, (n - 4 * k).min(4), out);
        }
    }
}
