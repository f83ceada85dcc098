//! The portable kernels: one per op and weight format, in safe Rust over byte slices, shaped so that the
//! compiler can vectorize them. They are the ground truth: every architecture's kernel is tested bit for bit
//! against them, and they run whatever no architecture-specific kernel covers.
//!
//! Activations and weights are int8 stored as `u8` bytes; `b as i8` reinterprets them for free.
//! Kernels index nothing directly: they zip iterators and fixed-size chunks, so the compiler can drop bounds
//! checks and vectorize, and a slice that is shorter than expected only makes a kernel do less work, never
//! panic (the loader guarantees lengths, so that fallback is never taken).
//! Accumulators use wrapping adds only so that a debug build cannot panic either; the loader proves that no
//! accumulator can actually wrap (see `docs/ARITHMETIC.md`).

#![deny(clippy::indexing_slicing)]

pub(crate) mod blocked;
#[cfg(feature = "dense-dot")]
pub(crate) mod dot;
pub(crate) mod dsp;
#[cfg(feature = "dynamic")]
pub(crate) mod dynamic;
pub(crate) mod pool;
pub(crate) mod quantize;
#[cfg(feature = "sparse-formats")]
pub(crate) mod sparse;

#[cfg(any(all(target_arch = "x86_64", feature = "dense-dot"), tickq_dsp))]
pub(crate) use blocked::requantize_channel;

use crate::plan::{Conv, OutQuant, Weighted, Weights};

/// Where the `row_len` inputs of one output step come from.
pub(crate) enum Row<'x> {
    /// One contiguous slice (Dense, and Conv1d with dilation 1).
    #[cfg_attr(not(feature = "sparse-formats"), allow(dead_code))]
    Contiguous(&'x [u8]),
    /// A dilated Conv1d window: input `i` of the row is `window[i / c_in * tap_step + i % c_in]`.
    Dilated {
        window: &'x [u8],
        c_in: usize,
        tap_step: usize,
    },
}

impl Row<'_> {
    /// Input `i` of the row as its byte (0 past the end, which the loader rules out).
    #[inline(always)]
    pub(crate) fn byte(&self, i: usize) -> u8 {
        let v = match *self {
            Row::Contiguous(x) => x.get(i).copied(),
            Row::Dilated {
                window,
                c_in,
                tap_step,
            } => window
                .get(i / c_in.max(1) * tap_step + i % c_in.max(1))
                .copied(),
        };
        v.unwrap_or(0)
    }

    /// Input `i` of the row, sign-extended.
    #[cfg_attr(not(feature = "sparse-formats"), allow(dead_code))]
    #[inline(always)]
    pub(crate) fn at(&self, i: usize) -> i32 {
        i32::from(self.byte(i) as i8)
    }
}

/// Dense: `out[o] = requant(b_eff[o] + sum_k w[o][k] * x[k])`, in whatever format the weights are stored.
pub(crate) fn dense(q: &OutQuant, in_zp: i8, w: &Weighted<'_>, x: &[u8], out: &mut [u8]) {
    let x = x.get(..w.row_len).unwrap_or(x);
    let ch = &w.channels;
    match w.weights {
        Weights::Blocked { bytes, block_len } => blocked::dense(q, bytes, block_len, ch, x, out),
        Weights::Dsp { bytes } => {
            dsp::dense(&dsp::DspLayer::new(q, ch, (bytes, w.row_len)), x, out)
        }
        #[cfg(feature = "dense-dot")]
        Weights::Dot { bytes, .. } => dot::dense(q, bytes, w.row_len, ch, x, out),
        #[cfg(feature = "sparse-formats")]
        Weights::Sparse(ref s) => sparse::sparse_rows(q, ch, s, x, out),
        #[cfg(feature = "sparse-formats")]
        Weights::NM(ref nm) => sparse::nm_rows(q, ch, nm, &Row::Contiguous(x), out),
        #[cfg(feature = "sparse-formats")]
        Weights::Columns(ref c) => sparse::dense_columns(q, ch, c, in_zp, x, out),
        #[cfg(feature = "sparse-formats")]
        Weights::Packed(ref p) => sparse::dense_packed(q, ch, p, in_zp, x, out),
    }
    let _ = in_zp;
}

/// Conv1d over a time-major input of `c_in` channels whose first `dilation * (kernel - 1)` rows are the causal
/// pad (if any), in whatever format the weights are stored.
pub(crate) fn conv1d(
    q: &OutQuant,
    conv: &Conv,
    c_in: usize,
    w: &Weighted<'_>,
    x: &[u8],
    out: &mut [u8],
) {
    let ch = &w.channels;
    match w.weights {
        Weights::Blocked { bytes, block_len } => {
            blocked::conv1d(q, conv, (c_in, w.row_len), bytes, block_len, ch, x, out);
        }
        #[cfg(feature = "dense-dot")]
        Weights::Dot { bytes, .. } => dot::conv1d(q, conv, (c_in, w.row_len), bytes, ch, x, out),
        #[cfg(feature = "sparse-formats")]
        Weights::Sparse(_) | Weights::NM(_) => sparse_conv1d(q, conv, c_in, w, x, out),
        // The loader accepts the `dense-dsp` and column formats for Dense layers only.
        _ => {}
    }
}

/// Conv1d over sparse or N:M weights: each output step is a sparse Dense over its window.
#[cfg(feature = "sparse-formats")]
fn sparse_conv1d(
    q: &OutQuant,
    conv: &Conv,
    c_in: usize,
    w: &Weighted<'_>,
    x: &[u8],
    out: &mut [u8],
) {
    let c_in = c_in.max(1);
    let (step, tap_step) = (conv.stride * c_in, conv.dilation * c_in);
    let ch = &w.channels;
    for (t, out_row) in out.chunks_exact_mut(ch.shifts.len().max(1)).enumerate() {
        let window = x.get(t * step..).unwrap_or(&[]);
        let row = if conv.dilation == 1 {
            Row::Contiguous(window.get(..w.row_len).unwrap_or(window))
        } else {
            Row::Dilated {
                window,
                c_in,
                tap_step,
            }
        };
        match (&w.weights, &row) {
            (Weights::Sparse(s), Row::Contiguous(r)) => sparse::sparse_rows(q, ch, s, r, out_row),
            (Weights::Sparse(s), _) => sparse::sparse_rows_gather(q, ch, s, &row, out_row),
            (Weights::NM(nm), _) => sparse::nm_rows(q, ch, nm, &row, out_row),
            _ => {}
        }
    }
}
