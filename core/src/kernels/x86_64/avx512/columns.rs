//! The column formats (`columns`, `packed`) with AVX-512: the portable kernels' scatter of each column into a
//! row segment's 256 accumulators, then the segment's requantization 16 channels at a time.
//!
//! The scatter stays scalar: within a column the rows are distinct, but consecutive columns hit the same
//! accumulators, and a vector scatter followed by a gather of the same addresses cannot forward from the store
//! buffer. What the vectors buy is the requantization, which the portable kernel does one channel at a time in
//! 64-bit arithmetic.
#![allow(
    clippy::indexing_slicing,
    reason = "every index is checked against a length the kernel checked first"
)]

use core::arch::x86_64::*;

use super::{Clamp, SplitShift, requant16, requant16_split, store_bytes};
use crate::format::layout::columns::ROW_SEGMENT;
use crate::kernels::generic::sparse::{columns_with, packed_with};
use crate::plan::{Channels, ColumnPairs, OutQuant, PackedColumns};

/// Requantizes the first `out.len()` accumulators of a row segment (at most 256) into `out`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
#[inline]
fn requantize_segment(
    k: &Clamp,
    split: bool,
    acc: &[i32; ROW_SEGMENT],
    (mults, shifts): (&[u8], &[u8]),
    out: &mut [u8],
) {
    let n = out.len().min(shifts.len()).min(mults.len() / 4);
    let mut first = 0;
    while first < n {
        let lanes = (n - first).min(16);
        let mask: __mmask16 = if lanes == 16 { !0 } else { (1 << lanes) - 1 };
        // SAFETY: `first` is a multiple of 16 below `n <= 256`, so `acc[first..first + 16]` is in the array;
        // the masked loads and store touch only the `lanes` channels from `first`, which `mults` (4 bytes each),
        // `shifts` and `out` hold (`first + lanes <= n`).
        unsafe {
            let a = _mm512_loadu_si512(acc.as_ptr().add(first).cast());
            let mult = _mm512_maskz_loadu_epi32(mask, mults.as_ptr().add(4 * first).cast());
            let shift = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(
                mask,
                shifts.as_ptr().add(first).cast(),
            ));
            let bytes = if split {
                requant16_split(a, mult, SplitShift::new(shift), k)
            } else {
                requant16(a, mult, shift, k)
            };
            store_bytes(out.as_mut_ptr().add(first), mask, bytes);
        }
        first += lanes;
    }
}

/// Column-sparse Dense, exactly `generic::sparse::dense_columns`.
///
/// # Safety
///
/// The CPU must have AVX-512 F, BW, VL, DQ and VNNI (the `Isa` token proves it).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
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
        requantize_segment(&k, ch.shifts_split, acc, channels, out)
    });
}

/// Packed column-sparse Dense, exactly `generic::sparse::dense_packed`.
///
/// # Safety
///
/// The CPU must have AVX-512 F, BW, VL, DQ and VNNI (the `Isa` token proves it).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
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
        requantize_segment(&k, ch.shifts_split, acc, channels, out)
    });
}
