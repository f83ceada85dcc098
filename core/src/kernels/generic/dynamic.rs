//! Dynamic quantization's Dense and Conv1d kernels (feature `dynamic`): per-inference power-of-two output
//! exponents.

use super::blocked::{Block, block_row, blocks, channel_multiplier, conv_window};
use crate::format::layout::blocked::STEP;
use crate::format::le_i32;
use crate::plan::{Conv, OutQuant, Weighted};
use crate::requant::{round_shift, scale_round, shift_saturating};

/// What every output value of a dynamic layer goes through before the common shift: the bias shift and the
/// fused ReLU / cap, for an input of exponent `e_in`.
struct Finish {
    bias_shift: i32,
    floor: i64,
    cap: i64,
}

impl Finish {
    fn new(out_q: &OutQuant, w: &Weighted<'_>, e_in: i32) -> Self {
        Finish {
            bias_shift: e_in - i32::from(w.bias_exp),
            floor: if out_q.act_min == 0 { 0 } else { i64::MIN },
            cap: if out_q.act_max == i8::MAX {
                i64::MAX
            } else {
                shift_saturating(1, e_in - i32::from(out_q.act_max))
            },
        }
    }

    /// The values `y` of one block's channels from their lanes: written as i32 to `ys` (4 bytes each, in
    /// channel order), and `max_abs` raised to their largest magnitude.
    #[inline(always)]
    fn block<'y>(
        &self,
        b: &Block<'_, '_>,
        acc: &[i32; STEP],
        ys: &mut impl Iterator<Item = &'y mut [u8]>,
        max_abs: &mut i64,
    ) {
        let (lanes, _) = acc.as_chunks::<2>();
        let channels = lanes
            .iter()
            .zip(b.channels.bias.chunks_exact(4))
            .zip(b.channels.multipliers.chunks_exact(4))
            .zip(b.channels.shifts)
            .take(b.out.len());
        for (((lane, bb), m), &s) in channels {
            let bias =
                shift_saturating(le_i32(bb), self.bias_shift).clamp(-(1 << 30), 1 << 30) as i32;
            let acc = lane[0].wrapping_add(lane[1]).wrapping_add(bias);
            let y = scale_round(acc, channel_multiplier(m, s))
                .max(self.floor)
                .min(self.cap);
            *max_abs = (*max_abs).max(y.abs());
            if let Some(slot) = ys.next() {
                slot.copy_from_slice(&(y as i32).to_le_bytes());
            }
        }
    }
}

/// The common shift: the smallest `k` with `round(max_abs / 2^k) <= 127`, and every `out = round(y / 2^k)`.
fn shift_out(q: &mut [u8], ys: &[u8], max_abs: i64) -> i32 {
    let mut k = 0u32;
    while k < 40 && round_shift(max_abs, k) > 127 {
        k += 1;
    }
    for (o, y) in q.iter_mut().zip(ys.chunks_exact(4)) {
        *o = round_shift(i64::from(le_i32(y)), k).clamp(-127, 127) as u8;
    }
    k as i32
}

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
    let finish = Finish::new(out_q, w, e_in);
    let mut max_abs = 0i64;
    let mut y_chunks = ys.chunks_exact_mut(4);
    for b in blocks(weights, block_len, &w.channels, q) {
        let mut acc = [0i32; STEP];
        block_row(b.w, b.step_len, x, &mut acc);
        finish.block(&b, &acc, &mut y_chunks, &mut max_abs);
    }
    shift_out(q, ys, max_abs)
}

/// Dynamic Conv1d: [`dense_dynamic`]'s arithmetic at every output step and channel (each step a Dense over its
/// window, as in the static kernel), with one shift `k` for the whole `[T_out, C_out]` output. Returns `k`.
///
/// `x` is the time-major input whose first `dilation * (kernel - 1)` rows are the causal pad (if any), which
/// holds zeros (the zero point of a dynamic tensor); `out` is the layer's whole allocation: `T_out * C_out` int8
/// outputs, then as many i32 values `y`.
pub(crate) fn conv1d_dynamic(
    out_q: &OutQuant,
    (conv, c_in): (&Conv, usize),
    w: &Weighted<'_>,
    (weights, block_len): (&[u8], usize),
    x: &[u8],
    out: &mut [u8],
    e_in: i32,
) -> i32 {
    let c_in = c_in.max(1);
    let step = conv.stride * c_in;
    let out_c = w.channels.shifts.len().max(1);
    let values = out.len() / 5;
    let (q, ys) = out.split_at_mut(values);
    let finish = Finish::new(out_q, w, e_in);
    let mut max_abs = 0i64;
    let mut y_chunks = ys.chunks_exact_mut(4);
    for (t, out_row) in q.chunks_exact_mut(out_c).enumerate() {
        let window = x.get(t * step..).unwrap_or(&[]);
        for b in blocks(weights, block_len, &w.channels, out_row) {
            let mut acc = [0i32; STEP];
            conv_window(conv, (c_in, w.row_len), (b.w, b.step_len), window, &mut acc);
            finish.block(&b, &acc, &mut y_chunks, &mut max_abs);
        }
    }
    shift_out(q, ys, max_abs)
}
