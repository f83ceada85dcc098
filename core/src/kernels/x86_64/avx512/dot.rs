//! AVX-512 VNNI `dense-dot` kernels: Dense and Conv1d with `vpdpbusd` (the module above explains the shape).
#![allow(
    clippy::indexing_slicing,
    reason = "every index is checked against a length the kernel checked first"
)]

use core::arch::x86_64::*;

use super::super::{DotLayer, RowWords};
use super::{Clamp, SplitShift, requant16, requant16_split, store_bytes};
use crate::format::layout::dot::{BLOCK, GROUP, STEP, block_len, padded_row};
use crate::kernels::generic;
use crate::plan::Conv;

/// Adds 128 to every int8 byte (flips its sign bit), turning the signed inputs into the unsigned bytes
/// `vpdpbusd` takes; applied twice it restores them. Conv1d flips its input once for all its windows; Dense
/// instead flips each group of 4 as it broadcasts it ([`unsigned_group`]).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
fn flip(x: &mut [u8]) {
    let sign = _mm512_set1_epi8(i8::MIN);
    let (chunks, tail) = x.as_chunks_mut::<64>();
    for c in chunks {
        // SAFETY: `c` is 64 bytes that this function may read and write; unaligned accesses are allowed.
        unsafe {
            let p = c.as_mut_ptr().cast::<__m512i>();
            _mm512_storeu_si512(p, _mm512_xor_si512(_mm512_loadu_si512(p), sign));
        }
    }
    // The rest 8 bytes at a time, then bytewise: plain stores, which later loads of the same bytes can forward
    // from (a masked store cannot, and costs a stall on the first read).
    let (words, bytes) = tail.as_chunks_mut::<8>();
    for w in words {
        *w = (u64::from_le_bytes(*w) ^ 0x8080_8080_8080_8080).to_le_bytes();
    }
    for b in bytes {
        *b ^= 0x80;
    }
}

/// Requantizes the accumulators of channels `first..first + n` (`n <= 16`) into `out`, reading their
/// multipliers and shifts.
///
/// The caller checked that the multipliers, shifts and `out` have at least `first + n` channels.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
#[inline]
fn store_block(
    l: &DotLayer<'_, '_>,
    k: &Clamp,
    acc: __m512i,
    first: usize,
    n: usize,
    out: &mut [u8],
) {
    let ch = &l.w.channels;
    let mask16: __mmask16 = if n >= BLOCK { !0 } else { (1 << n) - 1 };
    // SAFETY: the caller checked `ch.multipliers.len() >= 4 * (first + n)`, `ch.shifts.len() >= first + n` and
    // `out.len() >= first + n`; the masked loads and store touch only the `n` lanes of those channels.
    unsafe {
        let mult = _mm512_maskz_loadu_epi32(mask16, ch.multipliers.as_ptr().add(4 * first).cast());
        let shifts = _mm_maskz_loadu_epi8(mask16, ch.shifts.as_ptr().add(first).cast());
        let shift = _mm512_cvtepu8_epi32(shifts);
        let bytes = if ch.shifts_split {
            requant16_split(acc, mult, SplitShift::new(shift), k)
        } else {
            requant16(acc, mult, shift, k)
        };
        store_bytes(out.as_mut_ptr().add(first), mask16, bytes);
    }
}

/// The accumulators of one tile, started at the second bias of their channels.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
#[inline]
fn start(l: &DotLayer<'_, '_>, first: usize, n: usize) -> __m512i {
    let mask16: __mmask16 = if n >= BLOCK { !0 } else { (1 << n) - 1 };
    // SAFETY: the caller checked `offset_bias.len() >= 4 * (first + n)`; the load reads those `n` lanes only.
    unsafe { _mm512_maskz_loadu_epi32(mask16, l.offset_bias.as_ptr().add(4 * first).cast()) }
}

/// How many groups ahead the tile loop prefetches each block's weights into L1, for layers whose weights do not
/// fit there ([`PREFETCH_ABOVE`]): measured about 11 % faster on a 256 -> 256 layer, and slower on layers that
/// fit, where the prefetches only take load slots.
const PREFETCH: usize = 8;

/// The weight bytes above which a layer prefetches (a third of the smallest L1 data cache of the CPUs with
/// AVX-512 VNNI would be 16 KB; their L1 is 32 to 48 KB).
const PREFETCH_ABOVE: usize = 24 * 1024;

/// Adds group `g` of the row (already broadcast in `xb`) times step `g` of `NB` consecutive full blocks (from
/// `w0`, `blen` bytes apart) to `acc`.
///
/// # Safety
///
/// Step `g` of every one of the `NB` blocks must be 64 readable bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
#[inline]
unsafe fn group_step<const NB: usize, const PF: bool>(
    acc: &mut [__m512i; NB],
    xb: __m512i,
    w0: *const u8,
    blen: usize,
    g: usize,
) {
    if PF {
        for b in 0..NB {
            // A hint only: a prefetch never faults, whatever the address.
            _mm_prefetch::<_MM_HINT_T0>(w0.wrapping_add(b * blen + STEP * (g + PREFETCH)).cast());
        }
    }
    for (b, a) in acc.iter_mut().enumerate() {
        // SAFETY: the caller guarantees the 64 bytes of step `g` of block `b`; the load is unaligned.
        let w = unsafe { _mm512_loadu_si512(w0.add(b * blen + STEP * g).cast()) };
        *a = _mm512_dpbusd_epi32(*a, xb, w);
    }
}

/// Group `g` of a row with 128 added to each byte (its sign bit flipped), broadcast to every lane: the unsigned
/// operand of `vpdpbusd`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
#[inline]
fn unsigned_group(row: &RowWords, g: usize) -> __m512i {
    _mm512_set1_epi32(row.word(g) ^ SIGNS)
}

/// The sign bits of 4 bytes.
const SIGNS: i32 = 0x8080_8080_u32 as i32;

/// `NB` full blocks from `first_block` on; with `SPLIT` the row's even and odd groups go to two sets of
/// accumulators, so that `2 * NB` independent `vpdpbusd` chains hide its latency when `NB` is small.
///
/// The caller checked the lengths `dense` checks.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
#[inline]
fn dense_tile<const NB: usize, const SPLIT: bool, const PF: bool>(
    l: &DotLayer<'_, '_>,
    k: &Clamp,
    x: &RowWords,
    first_block: usize,
    out: &mut [u8],
) {
    let blen = block_len(l.w.row_len);
    let zero = _mm512_setzero_si512();
    let mut even = [zero; NB];
    let mut odd = [zero; NB];
    for (b, a) in even.iter_mut().enumerate() {
        *a = start(l, (first_block + b) * BLOCK, BLOCK);
    }
    let w0 = l.weights.as_ptr().wrapping_add(first_block * blen);
    let whole = x.whole;
    let mut g = 0;
    // SAFETY: `dense` checked `weights.len() >= channels * K4`: step `g < K4 / 4` of a full block
    // `first_block + b` (`b < NB`) is 64 bytes at `(first_block + b) * block_len + 64 g`, within the full blocks.
    unsafe {
        if SPLIT {
            while g + 2 <= whole {
                group_step::<NB, PF>(&mut even, unsigned_group(x, g), w0, blen, g);
                group_step::<NB, PF>(&mut odd, unsigned_group(x, g + 1), w0, blen, g + 1);
                g += 2;
            }
        }
        while g < whole {
            group_step::<NB, PF>(&mut even, unsigned_group(x, g), w0, blen, g);
            g += 1;
        }
        if x.last.is_some() {
            group_step::<NB, PF>(&mut odd, unsigned_group(x, g), w0, blen, g);
        }
    }
    for (b, (&e, &o)) in even.iter().zip(&odd).enumerate() {
        store_block(
            l,
            k,
            _mm512_add_epi32(e, o),
            (first_block + b) * BLOCK,
            BLOCK,
            out,
        );
    }
}

/// The tail block of `r < 16` channels (steps of `4r` bytes), with masked loads, its groups split over 4
/// accumulators.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
#[inline]
fn dense_tail(l: &DotLayer<'_, '_>, k: &Clamp, x: &RowWords, r: usize, out: &mut [u8]) {
    let channels = l.w.channels.shifts.len();
    let first = channels - r;
    let step = GROUP * r;
    let mask: __mmask64 = (1u64 << step) - 1;
    let zero = _mm512_setzero_si512();
    let mut acc = [start(l, first, r), zero, zero, zero];
    let w0 = l
        .weights
        .as_ptr()
        .wrapping_add(first / BLOCK * block_len(l.w.row_len));
    // SAFETY: as in `dense_tile`; the tail block's step `g` is the `4r` bytes at `64 g` past its start, which is
    // the last `r * K4` bytes of the section, and the masked load reads only those.
    unsafe {
        let mut g = 0;
        while g + 4 <= x.whole {
            for (s, a) in acc.iter_mut().enumerate() {
                let w = _mm512_maskz_loadu_epi8(mask, w0.add(step * (g + s)).cast());
                *a = _mm512_dpbusd_epi32(*a, unsigned_group(x, g + s), w);
            }
            g += 4;
        }
        while g < x.whole {
            let w = _mm512_maskz_loadu_epi8(mask, w0.add(step * g).cast());
            acc[0] = _mm512_dpbusd_epi32(acc[0], unsigned_group(x, g), w);
            g += 1;
        }
        if x.last.is_some() {
            let w = _mm512_maskz_loadu_epi8(mask, w0.add(step * g).cast());
            acc[0] = _mm512_dpbusd_epi32(acc[0], unsigned_group(x, g), w);
        }
    }
    let sum = _mm512_add_epi32(
        _mm512_add_epi32(acc[0], acc[1]),
        _mm512_add_epi32(acc[2], acc[3]),
    );
    store_block(l, k, sum, first, r, out);
}

/// Whether the sections hold what the kernels read for `channels` outputs of `row_len` inputs: checked once
/// per call, so the loops can read without bounds checks (never false for a loaded model).
fn lengths_ok(l: &DotLayer<'_, '_>, out_len: usize) -> bool {
    let channels = l.w.channels.shifts.len();
    let ch = &l.w.channels;
    l.weights.len() as u64 >= crate::format::layout::dot::weights_len(channels, l.w.row_len)
        && l.offset_bias.len() >= 4 * channels
        && ch.multipliers.len() >= 4 * channels
        && out_len >= channels
}

/// Dense over `dense-dot` weights.
///
/// # Safety
///
/// The CPU must have AVX-512 F, BW, VL, DQ and VNNI (the `Isa` token proves it).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
pub(crate) fn dense(l: &DotLayer<'_, '_>, x: &mut [u8], out: &mut [u8]) {
    let row_len = l.w.row_len;
    let channels = l.w.channels.shifts.len();
    let row = RowWords::new(x, row_len).filter(|_| lengths_ok(l, out.len()));
    let Some(x) = row else {
        return generic::dot::dense(l.q, l.weights, row_len, &l.w.channels, x, out);
    };
    let x = &x;
    let k = Clamp::new(l.q);
    let full = channels / BLOCK;
    if l.weights.len() > PREFETCH_ABOVE {
        dense_tiles::<true>(l, &k, x, full, out);
    } else {
        dense_tiles::<false>(l, &k, x, full, out);
    }
    if !channels.is_multiple_of(BLOCK) {
        dense_tail(l, &k, x, channels % BLOCK, out);
    }
}

/// [`dense_tile`] for one or two blocks, the row's groups split four ways (8 chains for 2 blocks): a narrow layer
/// with a long row would otherwise wait on `vpdpbusd`'s latency.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
#[inline]
fn dense_tile4<const NB: usize, const PF: bool>(
    l: &DotLayer<'_, '_>,
    k: &Clamp,
    x: &RowWords,
    first_block: usize,
    out: &mut [u8],
) {
    let blen = block_len(l.w.row_len);
    let zero = _mm512_setzero_si512();
    let (mut a0, mut a1, mut a2, mut a3) = ([zero; NB], [zero; NB], [zero; NB], [zero; NB]);
    for (b, a) in a0.iter_mut().enumerate() {
        *a = start(l, (first_block + b) * BLOCK, BLOCK);
    }
    let w0 = l.weights.as_ptr().wrapping_add(first_block * blen);
    let whole = x.whole;
    let mut g = 0;
    // SAFETY: as in `dense_tile`: every step `g < K4 / 4` of these full blocks is within the section.
    unsafe {
        while g + 4 <= whole {
            group_step::<NB, PF>(&mut a0, unsigned_group(x, g), w0, blen, g);
            group_step::<NB, PF>(&mut a1, unsigned_group(x, g + 1), w0, blen, g + 1);
            group_step::<NB, PF>(&mut a2, unsigned_group(x, g + 2), w0, blen, g + 2);
            group_step::<NB, PF>(&mut a3, unsigned_group(x, g + 3), w0, blen, g + 3);
            g += 4;
        }
        while g < whole {
            group_step::<NB, PF>(&mut a0, unsigned_group(x, g), w0, blen, g);
            g += 1;
        }
        if x.last.is_some() {
            group_step::<NB, PF>(&mut a1, unsigned_group(x, g), w0, blen, g);
        }
    }
    for b in 0..NB {
        let sum = _mm512_add_epi32(
            _mm512_add_epi32(a0[b], a1[b]),
            _mm512_add_epi32(a2[b], a3[b]),
        );
        store_block(l, k, sum, (first_block + b) * BLOCK, BLOCK, out);
    }
}

/// The `full` full blocks of a layer in tiles: of 8 blocks (8 chains), then what is left, its groups split two or
/// four ways so that there are at least 6 chains.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
#[inline]
fn dense_tiles<const PF: bool>(
    l: &DotLayer<'_, '_>,
    k: &Clamp,
    x: &RowWords,
    full: usize,
    out: &mut [u8],
) {
    let mut b = 0;
    while b + 8 <= full {
        dense_tile::<8, false, PF>(l, k, x, b, out);
        b += 8;
    }
    match full - b {
        7 => dense_tile::<7, false, PF>(l, k, x, b, out),
        6 => dense_tile::<6, false, PF>(l, k, x, b, out),
        5 => dense_tile::<5, false, PF>(l, k, x, b, out),
        4 => dense_tile::<4, true, PF>(l, k, x, b, out),
        3 => dense_tile::<3, true, PF>(l, k, x, b, out),
        2 => dense_tile4::<2, PF>(l, k, x, b, out),
        1 => dense_tile4::<1, PF>(l, k, x, b, out),
        _ => {}
    }
}

/// Where each group of a Conv1d window starts, relative to the window: runs of `per_tap` consecutive groups,
/// `tap_step` bytes apart. With dilation 1 the whole window is one run; with dilation `d > 1` and `C_in` a
/// multiple of 4 each tap's `C_in / 4` groups are a run and tap `k` starts at `k * d * C_in`.
#[derive(Clone, Copy)]
struct Taps {
    /// Groups per run (at least 1).
    per_tap: usize,
    /// Bytes between the starts of runs.
    tap_step: usize,
}

impl Taps {
    /// The offset of group `g` in a window.
    #[inline]
    fn offset(self, g: usize) -> usize {
        let per_tap = self.per_tap.max(1);
        g / per_tap * self.tap_step + (g % per_tap) * GROUP
    }
}

/// The per-channel parameters of one block, loaded once for all of a Conv1d's time steps.
struct BlockParams {
    first: usize,
    n: usize,
    mask16: __mmask16,
    mult: __m512i,
    shift: __m512i,
    /// With `Channels::shifts_split`, the shifts as the 32-bit requantization takes them.
    split_shift: Option<SplitShift>,
    start: __m512i,
}

impl BlockParams {
    /// The block of `n` channels from `first`; the caller checked the sections hold them.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
    #[inline]
    fn new(l: &DotLayer<'_, '_>, first: usize, n: usize) -> BlockParams {
        let ch = &l.w.channels;
        let mask16: __mmask16 = if n >= BLOCK { !0 } else { (1 << n) - 1 };
        // SAFETY: `conv` checked the multipliers, shifts and second bias hold every channel; the masked loads
        // read only the `n` lanes of channels `first..first + n`.
        let (mult, shifts) = unsafe {
            (
                _mm512_maskz_loadu_epi32(mask16, ch.multipliers.as_ptr().add(4 * first).cast()),
                _mm_maskz_loadu_epi8(mask16, ch.shifts.as_ptr().add(first).cast()),
            )
        };
        let shift = _mm512_cvtepu8_epi32(shifts);
        BlockParams {
            first,
            n,
            mask16,
            mult,
            shift,
            split_shift: ch.shifts_split.then(|| SplitShift::new(shift)),
            start: start(l, first, n),
        }
    }
}

/// `TT` consecutive output time steps from `t0` of one block (steps of `4n` bytes) of a Conv1d: each weight
/// step is loaded once and used for all `TT` windows.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
#[inline]
fn conv_tile<const TT: usize>(
    l: &DotLayer<'_, '_>,
    (k, p): (&Clamp, &BlockParams),
    (x, step, taps): (&[u8], usize, Taps),
    t0: usize,
    out: &mut [u8],
) {
    let row_len = l.w.row_len;
    let channels = l.w.channels.shifts.len();
    let stride = GROUP * p.n;
    let mask: __mmask64 = if p.n >= BLOCK {
        !0
    } else {
        (1u64 << stride) - 1
    };
    let w0 = l
        .weights
        .as_ptr()
        .wrapping_add(p.first / BLOCK * block_len(row_len));
    let mut acc = [p.start; TT];
    // SAFETY: `conv` checked `weights.len() >= channels * K4` and that for the first `safe` time steps (those this
    // is called for) every group of every window, `x[t * step + offset(g)..][..4]`, lies within `x`; the block's
    // step `g` is `stride` bytes at `g * stride` past the block's start, within the block (the masked load reads
    // those bytes only).
    unsafe {
        let xp = x.as_ptr();
        let groups = padded_row(row_len) / GROUP;
        let (mut g, mut run_start) = (0, xp.add(t0 * step));
        // Run by run (taps), so that a group's offset is an add rather than a division.
        while g < groups {
            let run = taps.per_tap.max(1).min(groups - g);
            for j in 0..run {
                let w = _mm512_maskz_loadu_epi8(mask, w0.add(stride * (g + j)).cast());
                let xg = run_start.add(GROUP * j);
                for (i, a) in acc.iter_mut().enumerate() {
                    let word = core::ptr::read_unaligned(xg.add(i * step).cast::<i32>());
                    *a = _mm512_dpbusd_epi32(*a, _mm512_set1_epi32(word), w);
                }
            }
            g += run;
            run_start = run_start.wrapping_add(taps.tap_step);
        }
    }
    for (i, &a) in acc.iter().enumerate() {
        let bytes = match p.split_shift {
            Some(split) => requant16_split(a, p.mult, split, k),
            None => requant16(a, p.mult, p.shift, k),
        };
        let at = (t0 + i) * channels + p.first;
        if let Some(row) = out.get_mut(at..at + p.n) {
            // SAFETY: `row` is the `n` output bytes of these channels at this time step, which `store_bytes`
            // writes.
            unsafe { store_bytes(row.as_mut_ptr(), p.mask16, bytes) };
        }
    }
}

/// Conv1d over `dense-dot` weights, in tiles of output time steps: dilation 1, or any dilation when `C_in` is a
/// multiple of 4 (each tap is then whole groups); the portable kernel for the time steps whose last group would
/// read past the input, and for dilated convolutions whose groups straddle taps.
///
/// # Safety
///
/// The CPU must have AVX-512 F, BW, VL, DQ and VNNI (the `Isa` token proves it).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
pub(crate) fn conv(
    l: &DotLayer<'_, '_>,
    (conv, c_in): (&Conv, usize),
    x: &mut [u8],
    out: &mut [u8],
) {
    let row_len = l.w.row_len;
    let channels = l.w.channels.shifts.len();
    let step = conv.stride * c_in;
    let out_t = out.len() / channels.max(1);
    let taps = match conv.dilation {
        1 => Some(Taps {
            per_tap: padded_row(row_len) / GROUP,
            tap_step: 0,
        }),
        d if c_in.is_multiple_of(GROUP) && c_in > 0 => Some(Taps {
            per_tap: c_in / GROUP,
            tap_step: d * c_in,
        }),
        _ => None,
    };
    let Some(taps) = taps.filter(|_| channels > 0 && lengths_ok(l, out.len())) else {
        return generic::dot::conv1d(l.q, conv, (c_in, row_len), l.weights, &l.w.channels, x, out);
    };
    // The time steps every group of whose window lies in `x`: all but at most the last few.
    let groups = padded_row(row_len) / GROUP;
    let span = taps.offset(groups.saturating_sub(1)) + GROUP;
    let safe = if x.len() < span || groups == 0 {
        0
    } else {
        ((x.len() - span) / step.max(1) + 1).min(out_t)
    };
    flip(x);
    let k = Clamp::new(l.q);
    for b in 0..channels.div_ceil(BLOCK) {
        let p = BlockParams::new(l, b * BLOCK, (channels - b * BLOCK).min(BLOCK));
        let mut t = 0;
        while t + 8 <= safe {
            conv_tile::<8>(l, (&k, &p), (x, step, taps), t, out);
            t += 8;
        }
        while t + 2 <= safe {
            conv_tile::<2>(l, (&k, &p), (x, step, taps), t, out);
            t += 2;
        }
        if t < safe {
            conv_tile::<1>(l, (&k, &p), (x, step, taps), t, out);
        }
    }
    flip(x);
    // The remaining steps run the portable kernel on the signed input, one step at a time.
    if safe < out_t {
        let rest = out.get_mut(safe * channels..).unwrap_or(&mut []);
        let x = x.get(safe * step..).unwrap_or(&[]);
        generic::dot::conv1d(
            l.q,
            conv,
            (c_in, row_len),
            l.weights,
            &l.w.channels,
            x,
            rest,
        );
    }
}
