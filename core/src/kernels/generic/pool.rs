//! The element-wise and pooling kernels: lookup tables, max and average pooling, residual Add.

use crate::plan::{OutQuant, Window};
use crate::requant::{QuantMultiplier, requantize};

/// Lut: `out = table[x + 128]`.
pub(crate) fn lut(table: &[u8; 256], x: &[u8], out: &mut [u8]) {
    for (o, &v) in out.iter_mut().zip(x) {
        // A u8 index into a 256-entry array is always in bounds.
        *o = table.get(usize::from(v ^ 0x80)).copied().unwrap_or(0);
    }
}

/// MaxPool1d over `c` channels: the maximum over each window, per channel, then the output clamp.
pub(crate) fn max_pool(q: &OutQuant, window: &Window, c: usize, x: &[u8], out: &mut [u8]) {
    let c = c.max(1);
    for (t, out_row) in out.chunks_exact_mut(c).enumerate() {
        let taps = x.get(t * window.stride * c..).unwrap_or(&[]);
        out_row.fill(i8::MIN as u8);
        for tap in taps.chunks_exact(c).take(window.kernel) {
            for (o, &v) in out_row.iter_mut().zip(tap) {
                *o = (*o as i8).max(v as i8) as u8;
            }
        }
        for o in out_row.iter_mut() {
            *o = (*o as i8).clamp(q.act_min, q.act_max) as u8;
        }
    }
}

/// AvgPool1d and GlobalAvgPool over `c` channels with input zero point `zp`: `requant(sum (x - zp))` over each
/// window, per channel.
///
/// The window sum is at most `255 * 65535 < 2^31` in magnitude, so it fits i32.
pub(crate) fn avg_pool(
    q: &OutQuant,
    (window, requant): (&Window, QuantMultiplier),
    (c, zp): (usize, i8),
    x: &[u8],
    out: &mut [u8],
) {
    let c = c.max(1);
    let zp = i32::from(zp);
    for (t, out_row) in out.chunks_exact_mut(c).enumerate() {
        let taps = x.get(t * window.stride * c..).unwrap_or(&[]);
        let taps = taps.get(..window.kernel * c).unwrap_or(taps);
        for (ch, o) in out_row.iter_mut().enumerate() {
            let acc = taps
                .iter()
                .skip(ch)
                .step_by(c)
                .fold(0i32, |acc, &v| acc.wrapping_add(i32::from(v as i8) - zp));
            *o = requantize(acc, requant, q.zp, q.act_min, q.act_max) as u8;
        }
    }
}

/// The weights of an Add: `requant((a - za) * wa + (b - zb) * wb)`.
pub(crate) struct AddParams {
    pub za: i8,
    pub zb: i8,
    pub wa: i32,
    pub wb: i32,
    pub requant: QuantMultiplier,
}

/// Add: `requant((a - za) * wa + (b - zb) * wb)`.
pub(crate) fn add(q: &OutQuant, p: &AddParams, a: &[u8], b: &[u8], out: &mut [u8]) {
    let (za, zb) = (i32::from(p.za), i32::from(p.zb));
    for ((o, &va), &vb) in out.iter_mut().zip(a).zip(b) {
        let acc = (i32::from(va as i8) - za)
            .wrapping_mul(p.wa)
            .wrapping_add((i32::from(vb as i8) - zb).wrapping_mul(p.wb));
        *o = requantize(acc, p.requant, q.zp, q.act_min, q.act_max) as u8;
    }
}
