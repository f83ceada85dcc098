//! Dynamic quantization's Dense kernel (feature `dynamic`): per-inference power-of-two output exponents.

use super::blocked::{block_row, blocks, channel_multiplier};
use crate::format::layout::blocked::STEP;
use crate::format::le_i32;
use crate::plan::{OutQuant, Weighted};
use crate::requant::{round_shift, scale_round, shift_saturating};

/// Dynamic Dense (`docs/ARITHMETIC.md`, "Dynamic quantization"): for an input of exponent `e_in`, per channel
/// `acc = sum w * x + sat(b * 2^(bias_exp - e_in))` (the shifted bias saturated to `[-2^30, 2^30]`),
/// `y = scale_round(acc, M[o])`, the fused ReLU / cap, then `k` = the smallest shift that brings `max |y|` into
/// `[-127, 127]`, and `out = round(y / 2^k)`. Returns `k`.
///
/// `out` is the layer's whole allocation: `C_out` int8 outputs, then `C_out` i32 values `y`.
pub(crate) fn dense_dynamic(
    out_q: &OutQuant,
    w: &Weighted<'_>,
    (weights, block_len): (&[u8], usize),
    x: &[u8],
    out: &mut [u8],
    e_in: i32,
) -> i32 {
    let x = x.get(..w.row_len).unwrap_or(x);
    let channels = w.channels.shifts.len();
    let (q, ys) = out.split_at_mut(channels.min(out.len()));
    let cap = if out_q.act_max == i8::MAX {
        i64::MAX
    } else {
        shift_saturating(1, e_in - i32::from(out_q.act_max))
    };
    let floor = if out_q.act_min == 0 { 0 } else { i64::MIN };
    let bias_shift = e_in - i32::from(w.bias_exp);
    let mut max_abs = 0i64;
    let mut y_chunks = ys.chunks_exact_mut(4);
    for b in blocks(weights, block_len, &w.channels, q) {
        let mut acc = [0i32; STEP];
        block_row(b.w, b.step_len, x, &mut acc);
        let (lanes, _) = acc.as_chunks::<2>();
        let channels = lanes
            .iter()
            .zip(b.channels.bias.chunks_exact(4))
            .zip(b.channels.multipliers.chunks_exact(4))
            .zip(b.channels.shifts)
            .take(b.out.len());
        for (((lane, bb), m), &s) in channels {
            let bias = shift_saturating(le_i32(bb), bias_shift).clamp(-(1 << 30), 1 << 30) as i32;
            let acc = lane[0].wrapping_add(lane[1]).wrapping_add(bias);
            let y = scale_round(acc, channel_multiplier(m, s))
                .max(floor)
                .min(cap);
            max_abs = max_abs.max(y.abs());
            if let Some(slot) = y_chunks.next() {
                slot.copy_from_slice(&(y as i32).to_le_bytes());
            }
        }
    }
    let mut k = 0u32;
    while k < 40 && round_shift(max_abs, k) > 127 {
        k += 1;
    }
    for (o, y) in q.iter_mut().zip(ys.chunks_exact(4)) {
        *o = round_shift(i64::from(le_i32(y)), k).clamp(-127, 127) as u8;
    }
    k as i32
}
