//! The input quantizer (the only floating-point step): f32 features to int8, statically or dynamically, and the
//! copy of an already quantized input.

use crate::format::le_f32;
use crate::plan::OutQuant;

/// Rounds half away from zero, like `libm::roundf`, for values already clamped to `[-129, 128]`.
///
/// For `|v| < 2^23` the integer part `t` is exact and so is `v - t`, so comparing the fraction with one half
/// decides the rounding exactly; this is much cheaper than a general `roundf` and gives the same result.
#[inline(always)]
pub(crate) fn round_clamped(v: f32) -> i32 {
    let t = v as i32;
    let frac = v - t as f32;
    t + i32::from(frac >= 0.5) - i32::from(frac <= -0.5)
}

/// The input quantizer: `q = clamp(round(x * a[f] + b[f]))`, with NaN mapped to the zero point.
///
/// `features` is time-major; missing values count as NaN.
pub(crate) fn quantize(q: &OutQuant, coefficients: &[u8], features: &[f32], out: &mut [u8]) {
    let f = (coefficients.len() / 8).max(1);
    let (a, b) = coefficients
        .split_at_checked(4 * f)
        .unwrap_or((coefficients, &[]));
    let nan_value = q.zp.clamp(q.act_min, q.act_max) as u8;
    let (lo, hi) = (i32::from(q.act_min), i32::from(q.act_max));
    let quantize_one = |x: f32, ac: &[u8], bc: &[u8]| {
        // Two IEEE operations, never fused: Rust does not contract `x * a + b` into an FMA.
        let v = x * le_f32(ac) + le_f32(bc);
        let q = round_clamped(v.clamp(-129.0, 128.0)).clamp(lo, hi) as u8;
        // Both arms are computed and one is selected, so the loop stays branch-free.
        if v.is_nan() { nan_value } else { q }
    };
    for (t, out_row) in out.chunks_exact_mut(f).enumerate() {
        let coefficients = out_row
            .iter_mut()
            .zip(a.chunks_exact(4))
            .zip(b.chunks_exact(4));
        if let Some(xs) = features.get(t * f..t * f + f) {
            // The usual case, a whole row of features: a plain zip, which the compiler vectorizes.
            for (((o, ac), bc), &x) in coefficients.zip(xs) {
                *o = quantize_one(x, ac, bc);
            }
        } else {
            let mut xs = features.get(t * f..).unwrap_or(&[]).iter();
            for ((o, ac), bc) in coefficients {
                *o = quantize_one(xs.next().copied().unwrap_or(f32::NAN), ac, bc);
            }
        }
    }
}

/// The smallest and largest input exponents of the dynamic input quantizer.
#[cfg(feature = "dynamic")]
pub(crate) const DYN_EXP_MIN: i32 = -100;
/// See [`DYN_EXP_MIN`].
#[cfg(feature = "dynamic")]
pub(crate) const DYN_EXP_MAX: i32 = 121;

/// The dynamic input quantizer: `z = x * a[f] + b[f]` as in [`quantize`], `m = max |z|` (NaN skipped), the
/// exponent `e = clamp(E(m) - 133, -100, 121)` where `E(m)` is the biased f32 exponent field of `m` (at most
/// 254), then `q = clamp(round(z * 2^-e), -127, 127)`, NaN to 0. Returns `e`.
///
/// `m < 2^(E - 126) = 2^(e + 7)`, so `|z * 2^-e| < 128` and only a value that rounds to 128 is clamped.
/// `2^-e` is an exact normal f32 for `e` in `[-100, 121]`, and each step is one correctly rounded IEEE operation.
#[cfg(feature = "dynamic")]
pub(crate) fn quantize_dynamic(coefficients: &[u8], features: &[f32], out: &mut [u8]) -> i32 {
    let f = (coefficients.len() / 8).max(1);
    let (a, b) = coefficients
        .split_at_checked(4 * f)
        .unwrap_or((coefficients, &[]));
    let z = |i: usize| {
        let x = features.get(i).copied().unwrap_or(f32::NAN);
        let ac = a.get(4 * (i % f)..4 * (i % f) + 4).unwrap_or(&[]);
        let bc = b.get(4 * (i % f)..4 * (i % f) + 4).unwrap_or(&[]);
        x * le_f32(ac) + le_f32(bc)
    };
    let mut m = 0.0f32;
    for i in 0..out.len() {
        let v = z(i).abs();
        // NaN compares false and is skipped.
        if v > m {
            m = v;
        }
    }
    let biased = ((m.to_bits() >> 23) & 0xFF).min(254) as i32;
    let e = (biased - 133).clamp(DYN_EXP_MIN, DYN_EXP_MAX);
    let scale = f32::from_bits(((127 - e) as u32) << 23);
    for (i, o) in out.iter_mut().enumerate() {
        let v = z(i) * scale;
        let q = round_clamped(v.clamp(-129.0, 128.0)).clamp(-127, 127) as u8;
        *o = if v.is_nan() { 0 } else { q };
    }
    e
}

/// Copies an int8 input into the quantizer's output, padding missing values with the zero point.
pub(crate) fn copy_input(zp: i8, input: &[i8], out: &mut [u8]) {
    let n = input.len().min(out.len());
    let (given, missing) = out.split_at_mut(n);
    // Two plain loops (a copy and a fill) rather than one with a branch per byte: both vectorize.
    for (o, &v) in given.iter_mut().zip(input) {
        *o = v as u8;
    }
    missing.fill(zp as u8);
}

#[cfg(test)]
mod tests {
    use super::round_clamped;

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
        // Every 997th bit pattern natively; under Miri (`.ci/run`), which interprets every step, every
        // 9,999,991st (a prime too, so the patterns still spread over every exponent).
        let stride = if cfg!(miri) { 9_999_991 } else { 997 };
        let mut bits = 0u32;
        while bits < u32::MAX - stride {
            let v = f32::from_bits(bits);
            if (-129.0..=128.0).contains(&v) {
                assert_eq!(round_clamped(v), libm::roundf(v) as i32, "v={v}");
            }
            bits += stride;
        }
    }
}
