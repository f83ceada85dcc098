//! The column formats (`columns`, `packed`) with AVX2: the portable kernels' scalar scatter into a row
//! segment's 256 accumulators (as in the AVX-512 module, whose notes explain why it stays scalar), then the
//! segment's requantization 8 channels at a time.
#![allow(
    clippy::indexing_slicing,
    reason = "every index is checked against a length the kernel checked first"
)]

use core::arch::x86_64::*;

use super::{Clamp, lanes, load8, requant8, store8_codes};
use crate::format::layout::columns::ROW_SEGMENT;
use crate::kernels::generic::sparse::{columns_with, packed_with};
use crate::plan::{Channels, ColumnPairs, OutQuant, PackedColumns};

/// Requantizes the first `out.len()` accumulators of a row segment (at most 256) into `out`.
#[target_feature(enable = "avx2")]
#[inline]
fn requantize_segment(
    k: &Clamp,
    acc: &[i32; ROW_SEGMENT],
    (mults, shifts): (&[u8], &[u8]),
    out: &mut [u8],
) {
    let n = out.len().min(shifts.len()).min(mults.len() / 4);
    for (i, (out, acc)) in out[..n]
        .chunks_mut(8)
        .zip(acc.as_chunks::<8>().0)
        .enumerate()
    {
        // SAFETY: `acc` is 8 readable i32; the load is unaligned.
        let a = unsafe { _mm256_loadu_si256(acc.as_ptr().cast()) };
        let mult = lanes(&mults[32 * i..], out.len());
        let shift = _mm256_cvtepu8_epi32(load8(&shifts[8 * i..]));
        store8_codes(out, requant8(a, mult, shift, k));
    }
}

/// Column-sparse Dense, exactly `generic::sparse::dense_columns`.
///
/// # Safety
///
/// The CPU must have AVX2 (the `Isa` token proves it).
#[target_feature(enable = "avx2")]
pub(crate) fn dense_columns(
    q: &OutQuant,
    ch: &Channels<'_>,
    columns: &ColumnPairs<'_>,
    in_zp: i8,
    x: &[u8],
    out: &mut [u8],
) {
    let k = Clamp::new(q);
    columns_with(ch, columns, (x, in_zp), out, |acc, channels, out| {
        requantize_segment(&k, acc, channels, out)
    });
}

/// Packed column-sparse Dense, exactly `generic::sparse::dense_packed`.
///
/// # Safety
///
/// The CPU must have AVX2 (the `Isa` token proves it).
#[target_feature(enable = "avx2")]
pub(crate) fn dense_packed(
    q: &OutQuant,
    ch: &Channels<'_>,
    packed: &PackedColumns<'_>,
    in_zp: i8,
    x: &[u8],
    out: &mut [u8],
) {
    let k = Clamp::new(q);
    packed_with(ch, packed, (x, in_zp), out, |acc, channels, out| {
        requantize_segment(&k, acc, channels, out)
    });
}
