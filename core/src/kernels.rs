//! Scalar kernels: one function per operation, over byte slices the session cuts from the arena.
//!
//! Activations and weights are int8 stored as `u8` bytes; `b as i8` reinterprets them for free.
//! Kernels index nothing directly: they zip iterators and fixed-size chunks, so the compiler can drop bounds
//! checks and vectorize, and a slice that is shorter than expected only makes a kernel do less work, never
//! panic (the loader guarantees lengths, so that fallback is never taken).
//! Accumulators use wrapping adds only so that a debug build cannot panic either; the loader proves that no
//! accumulator can actually wrap (see `docs/ARITHMETIC.md`).

#![deny(clippy::indexing_slicing)]

use crate::blob::{le_f32, le_i32};
use crate::model::LayerPlan;
use crate::requant::{QuantMultiplier, requantize};

/// The number of lanes the dot product processes per step.
const LANES: usize = 16;

/// Sums `w[i] * x[i]` over int8 values stored as bytes, for `i < min(w.len(), x.len())`.
#[inline(always)]
pub(crate) fn dot(w: &[u8], x: &[u8]) -> i32 {
    let n = w.len().min(x.len());
    let (w, x) = (w.get(..n).unwrap_or(&[]), x.get(..n).unwrap_or(&[]));
    // Fixed 16-byte chunks have no bounds checks inside and map onto widening multiply-adds; one chunk's sum
    // is at most 16 * 128 * 128 in magnitude, so it cannot overflow before it joins the accumulator.
    let (w_chunks, w_tail) = w.as_chunks::<LANES>();
    let (x_chunks, x_tail) = x.as_chunks::<LANES>();
    let mut acc = 0i32;
    for (wc, xc) in w_chunks.iter().zip(x_chunks) {
        let mut s = 0i32;
        for (&a, &b) in wc.iter().zip(xc) {
            s += i32::from(a as i8) * i32::from(b as i8);
        }
        acc = acc.wrapping_add(s);
    }
    for (&a, &b) in w_tail.iter().zip(x_tail) {
        acc = acc.wrapping_add(i32::from(a as i8) * i32::from(b as i8));
    }
    acc
}

/// The multiplier of channel `o`, read from validated bytes.
#[inline(always)]
fn channel_multiplier(m: &[u8], s: u8) -> QuantMultiplier {
    QuantMultiplier::from_validated(le_i32(m), s)
}

/// Dense: `out[o] = requant(b_eff[o] + sum_k w[o][k] * x[k])`.
pub(crate) fn dense(l: &LayerPlan<'_>, x: &[u8], out: &mut [u8]) {
    let channels = out
        .iter_mut()
        .zip(l.weights.chunks_exact(l.row_stride.max(1)))
        .zip(l.bias.chunks_exact(4))
        .zip(l.multipliers.chunks_exact(4))
        .zip(l.shifts);
    for ((((o, row), b), m), &s) in channels {
        let acc = le_i32(b).wrapping_add(dot(row, x));
        *o = requantize(
            acc,
            channel_multiplier(m, s),
            l.out_zp,
            l.act_min,
            l.act_max,
        ) as u8;
    }
}

/// Conv1d over a time-major input whose first `dilation * (kernel - 1)` rows are the causal pad (if any).
pub(crate) fn conv1d(l: &LayerPlan<'_>, x: &[u8], out: &mut [u8]) {
    let c_in = l.in_c.max(1);
    let step = l.stride * c_in;
    let tap_step = l.dilation * c_in;
    for (t, out_row) in out.chunks_exact_mut(l.out_c.max(1)).enumerate() {
        let window = x.get(t * step..).unwrap_or(&[]);
        let channels = out_row
            .iter_mut()
            .zip(l.weights.chunks_exact(l.row_stride.max(1)))
            .zip(l.bias.chunks_exact(4))
            .zip(l.multipliers.chunks_exact(4))
            .zip(l.shifts);
        for ((((o, row), b), m), &s) in channels {
            let row = row.get(..l.row_len).unwrap_or(&[]);
            let sum = if l.dilation == 1 {
                // Consecutive taps are consecutive rows of the input, so the whole window is one dot product.
                dot(row, window)
            } else {
                row.chunks_exact(c_in)
                    .enumerate()
                    .map(|(k, tap)| dot(tap, window.get(k * tap_step..).unwrap_or(&[])))
                    .fold(0i32, i32::wrapping_add)
            };
            let acc = le_i32(b).wrapping_add(sum);
            *o = requantize(
                acc,
                channel_multiplier(m, s),
                l.out_zp,
                l.act_min,
                l.act_max,
            ) as u8;
        }
    }
}

/// Lut: `out = table[x + 128]`.
pub(crate) fn lut(table: &[u8], x: &[u8], out: &mut [u8]) {
    if let Ok(table) = <&[u8; 256]>::try_from(table) {
        for (o, &v) in out.iter_mut().zip(x) {
            // A u8 index into a 256-entry array is always in bounds.
            *o = table.get(usize::from(v ^ 0x80)).copied().unwrap_or(0);
        }
    }
}

/// MaxPool1d: the maximum over each window, per channel, then the output clamp.
pub(crate) fn max_pool(l: &LayerPlan<'_>, x: &[u8], out: &mut [u8]) {
    let c = l.in_c.max(1);
    for (t, out_row) in out.chunks_exact_mut(c).enumerate() {
        let window = x.get(t * l.stride * c..).unwrap_or(&[]);
        out_row.fill(i8::MIN as u8);
        for tap in window.chunks_exact(c).take(l.kernel) {
            for (o, &v) in out_row.iter_mut().zip(tap) {
                *o = (*o as i8).max(v as i8) as u8;
            }
        }
        for o in out_row.iter_mut() {
            *o = (*o as i8).clamp(l.act_min, l.act_max) as u8;
        }
    }
}

/// AvgPool1d and GlobalAvgPool: `requant(sum (x - zp))` over each window, per channel.
///
/// The window sum is at most `255 * 65535 < 2^31` in magnitude, so it fits i32.
pub(crate) fn avg_pool(l: &LayerPlan<'_>, kernel: usize, stride: usize, x: &[u8], out: &mut [u8]) {
    let c = l.in_c.max(1);
    let zp = i32::from(l.in_zp);
    for (t, out_row) in out.chunks_exact_mut(c).enumerate() {
        let window = x.get(t * stride * c..).unwrap_or(&[]);
        let window = window.get(..kernel * c).unwrap_or(window);
        for (ch, o) in out_row.iter_mut().enumerate() {
            let acc = window
                .iter()
                .skip(ch)
                .step_by(c)
                .fold(0i32, |acc, &v| acc.wrapping_add(i32::from(v as i8) - zp));
            *o = requantize(acc, l.requant, l.out_zp, l.act_min, l.act_max) as u8;
        }
    }
}

/// Add: `requant((a - za) * wa + (b - zb) * wb)`.
pub(crate) fn add(l: &LayerPlan<'_>, a: &[u8], b: &[u8], out: &mut [u8]) {
    let (za, zb) = (i32::from(l.in_zp), i32::from(l.in_b_zp));
    for ((o, &va), &vb) in out.iter_mut().zip(a).zip(b) {
        let acc = (i32::from(va as i8) - za)
            .wrapping_mul(l.wa)
            .wrapping_add((i32::from(vb as i8) - zb).wrapping_mul(l.wb));
        *o = requantize(acc, l.requant, l.out_zp, l.act_min, l.act_max) as u8;
    }
}

/// Rounds half away from zero, like `libm::roundf`, for values already clamped to `[-129, 128]`.
///
/// For `|v| < 2^23` the integer part `t` is exact and so is `v - t`, so comparing the fraction with one half
/// decides the rounding exactly; this is much cheaper than a general `roundf` and gives the same result.
#[inline(always)]
fn round_clamped(v: f32) -> i32 {
    let t = v as i32;
    let frac = v - t as f32;
    t + i32::from(frac >= 0.5) - i32::from(frac <= -0.5)
}

/// The input quantizer: `q = clamp(round(x * a[f] + b[f]))`, with NaN mapped to the zero point.
///
/// `features` is time-major; missing values count as NaN.
pub(crate) fn quantize(l: &LayerPlan<'_>, features: &[f32], out: &mut [u8]) {
    let f = l.out_c.max(1);
    let (a, b) = l.aux.split_at_checked(4 * f).unwrap_or((l.aux, &[]));
    let nan_value = l.out_zp.clamp(l.act_min, l.act_max) as u8;
    let (lo, hi) = (i32::from(l.act_min), i32::from(l.act_max));
    for (t, out_row) in out.chunks_exact_mut(f).enumerate() {
        let xs = features.get(t * f..).unwrap_or(&[]);
        let mut xs = xs.iter();
        for ((o, ac), bc) in out_row
            .iter_mut()
            .zip(a.chunks_exact(4))
            .zip(b.chunks_exact(4))
        {
            let x = xs.next().copied().unwrap_or(f32::NAN);
            // Two IEEE operations, never fused: Rust does not contract `x * a + b` into an FMA.
            let v = x * le_f32(ac) + le_f32(bc);
            *o = if v.is_nan() {
                nan_value
            } else {
                round_clamped(v.clamp(-129.0, 128.0)).clamp(lo, hi) as u8
            };
        }
    }
}

/// Copies an int8 input into the quantizer's output, padding missing values with the zero point.
pub(crate) fn copy_input(l: &LayerPlan<'_>, input: &[i8], out: &mut [u8]) {
    let mut input = input.iter();
    for o in out.iter_mut() {
        *o = input.next().map_or(l.out_zp, |&v| v) as u8;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn dot_matches_naive_for_all_lengths() {
        let w: std::vec::Vec<u8> = (0..70).map(|i| (i * 37 + 11) as u8).collect();
        let x: std::vec::Vec<u8> = (0..70).map(|i| (i * 53 + 5) as u8).collect();
        for n in 0..70 {
            let naive: i32 = (0..n)
                .map(|i| i32::from(w[i] as i8) * i32::from(x[i] as i8))
                .sum();
            assert_eq!(dot(&w[..n], &x[..n]), naive, "n={n}");
            assert_eq!(dot(&w[..n], &x), naive, "n={n}");
        }
        assert_eq!(dot(&[0x80; 16], &[0x80; 16]), 16 * 128 * 128);
    }

    #[test]
    fn round_clamped_matches_roundf() {
        let mut v = -129.0f32;
        while v <= 128.0 {
            assert_eq!(round_clamped(v), libm::roundf(v) as i32, "v={v}");
            // Neighbours of every quarter, which covers the exact halves and the values next to them.
            for n in [v.next_down(), v.next_up()] {
                if (-129.0..=128.0).contains(&n) {
                    assert_eq!(round_clamped(n), libm::roundf(n) as i32, "v={n}");
                }
            }
            v += 0.25;
        }
        let mut bits = 0u32;
        while bits < u32::MAX - 997 {
            let v = f32::from_bits(bits);
            if (-129.0..=128.0).contains(&v) {
                assert_eq!(round_clamped(v), libm::roundf(v) as i32, "v={v}");
            }
            bits += 997;
        }
    }
}
