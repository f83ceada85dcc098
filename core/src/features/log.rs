//! The feature engine's own `ln(1 + x)` in `f32`: a table of 128 reciprocals and logarithms built at compile
//! time, one correctly rounded reduction and a degree-4 polynomial, every operation a plain IEEE-754 `f32`
//! `+ - *` in the order written (Rust never contracts them into fused multiply-adds), so the bits are the same
//! on every target, with or without an FPU.
//!
//! For `x >= 0` it is within [`LN_1P_MAX_ULPS`] units in the last place of the exact value (a dense sweep in the
//! tests checks it against `f64::ln_1p`), and about three times cheaper than `libm::log1pf`, which spends most of
//! its time on the rare cases the engine never gives it.

/// The largest error of [`ln_1p`] for `x >= 0`, in units in the last place of the correctly rounded result.
pub const LN_1P_MAX_ULPS: u32 = 2;

/// Table rows: the top seven mantissa bits of `1 + x` pick the row.
const ROWS: usize = 128;

/// `ln 2` rounded to `f32`.
const LN_2: f32 = core::f32::consts::LN_2;

/// `ln(c)` in `f64` for `c` in `[1, 2)`: `2 atanh(s)` with `s = (c - 1) / (c + 1) <= 1/3`, summed to far below
/// an `f64` ulp. Runs only in const evaluation, which rustc performs in IEEE-754 arithmetic of its own, so the
/// table below is the same whatever the target.
const fn ln_const(c: f64) -> f64 {
    let s = (c - 1.0) / (c + 1.0);
    let s2 = s * s;
    let mut term = s;
    let mut sum = 0.0;
    let mut n = 0;
    while n < 40 {
        sum += term / (2 * n + 1) as f64;
        term *= s2;
        n += 1;
    }
    2.0 * sum
}

/// Row `i`: `1 / c_i` and `ln(c_i)`, each rounded to `f32`, for `c_i = 1 + i / 128`.
const TABLE: [(f32, f32); ROWS] = {
    let mut table = [(0.0f32, 0.0f32); ROWS];
    let mut i = 0;
    while i < ROWS {
        let c = 1.0 + i as f64 / ROWS as f64;
        table[i] = ((1.0 / c) as f32, ln_const(c) as f32);
        i += 1;
    }
    table
};

/// `ln(1 + x)` for `x >= 0`, deterministic on every target; other arguments (negative, infinite, NaN) go to
/// `libm::log1pf`, and `ln_1p(±0) = ±0`.
///
/// With `u = 1 + x` rounded to `f32` and `c = x - (u - 1)` its rounding error (both exact for `x < 2²⁴`;
/// `c = 0` above), `u = 2^k m` with `m` in `[1, 2)` and `c_i = 1 + i/128 <= m` the table point below `m`:
///
/// ```text
/// r      = (m - c_i) * (1 / c_i)                        m - c_i is exact, 0 <= r < 2⁻⁷
/// p      = r + (r * r) * (-1/2 + r * (1/3 + r * (-1/4)))
/// corr   = (c * (1 / c_i)) * 2^-k                       c / u to a relative 2⁻⁷, itself below 2⁻²⁴ of u
/// ln_1p  = k * ln 2 + (ln(c_i) + (p + corr))
/// ```
///
/// every product and sum rounded to `f32` in that order, `1/3`, `1 / c_i`, `ln(c_i)` and `ln 2` rounded to
/// `f32`, and `2^-k` exact (0 for `k = 127`, where `c = 0`).
#[inline]
pub fn ln_1p(x: f32) -> f32 {
    // One integer test for the rare arguments: ±0 (0 wraps to the top), negatives (sign bit set), infinities
    // and NaNs (bits at or above 0x7f80_0000).
    if x.to_bits().wrapping_sub(1) >= 0x7f7f_ffff {
        return rare(x);
    }
    let u = 1.0 + x;
    let c = x - (u - 1.0);
    let bits = u.to_bits();
    // u >= 1 is finite: its biased exponent is 127 + k with k in 0..=127.
    let exponent = bits >> 23;
    let k = exponent - 127;
    let row = ((bits >> 16) & 0x7f) as usize;
    let (inverse, ln_c) = TABLE.get(row).copied().unwrap_or((1.0, 0.0));
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let point = f32::from_bits(0x3f80_0000 | (bits & 0x007f_0000));
    let r = (m - point) * inverse;
    let p = r + (r * r) * (-0.5 + r * (1.0 / 3.0 + r * -0.25));
    // 2^-k has the biased exponent 127 - k = 254 - exponent, which is 0 (the value 0) only for k = 127.
    let scale = f32::from_bits((254 - exponent) << 23);
    let corr = (c * inverse) * scale;
    k as f32 * LN_2 + (ln_c + (p + corr))
}

/// [`ln_1p`] off its fast path: `±0` stays, anything else is `libm::log1pf`'s.
#[cold]
fn rare(x: f32) -> f32 {
    if x == 0.0 { x } else { libm::log1pf(x) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The distance in ulps between `got` and the exact `want`, in units of the f32 ulp at `want`.
    fn ulps(got: f32, want: f64) -> f64 {
        let w = want as f32;
        let ulp = f64::from(f32::from_bits(w.to_bits() + 1)) - f64::from(w);
        (f64::from(got) - want).abs() / ulp
    }

    fn check(x: f32, worst: &mut f64) {
        let e = ulps(ln_1p(x), f64::from(x).ln_1p());
        assert!(
            e <= f64::from(LN_1P_MAX_ULPS),
            "ln_1p({x:e}) = {:e}, {e} ulps from {:e}",
            ln_1p(x),
            f64::from(x).ln_1p()
        );
        *worst = worst.max(e);
    }

    #[test]
    fn within_the_bound_over_a_dense_sweep() {
        let mut worst = 0.0f64;
        // Every f32 in [2^-30, 2^30) with a stride that visits each table row at many mantissas and exponents.
        let step = if cfg!(miri) { 1 << 20 } else { 97 };
        let (lo, hi) = (2.0f32.powi(-30).to_bits(), 2.0f32.powi(30).to_bits());
        let mut b = lo;
        while b < hi {
            check(f32::from_bits(b), &mut worst);
            b += step;
        }
        // Every f32 in [0.5, 4), where rows, the exponent step at 1 and 2, and the rounding of 1 + x meet.
        if !cfg!(miri) {
            for b in 0.5f32.to_bits()..4.0f32.to_bits() {
                check(f32::from_bits(b), &mut worst);
            }
        }
        assert!(worst > 0.0);
    }

    #[test]
    fn special_values() {
        assert_eq!(ln_1p(0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(ln_1p(-0.0).to_bits(), (-0.0f32).to_bits());
        for x in [f32::from_bits(1), f32::MIN_POSITIVE, 1e-30, 1e-10, 5.9e-8] {
            assert_eq!(ln_1p(x), x, "tiny {x:e}");
        }
        let mut worst = 0.0;
        for x in [
            1.0,
            255.0,
            1e6,
            16_777_215.0,
            16_777_217.0,
            3e7,
            1e20,
            1e38,
            f32::MAX,
        ] {
            check(x, &mut worst);
        }
        assert_eq!(ln_1p(f32::INFINITY), f32::INFINITY);
        assert!(ln_1p(f32::NAN).is_nan());
        assert_eq!(ln_1p(-1.0), f32::NEG_INFINITY);
        assert_eq!(ln_1p(-0.5), libm::log1pf(-0.5));
        assert_eq!(ln_1p(-f32::from_bits(1)), libm::log1pf(-f32::from_bits(1)));
        assert_eq!(
            ln_1p(f32::NEG_INFINITY).to_bits(),
            libm::log1pf(f32::NEG_INFINITY).to_bits()
        );
    }

    #[test]
    fn counts_within_the_bound() {
        let mut worst = 0.0;
        // Every count below 2^20 natively; the first 4,096 under Miri, which interprets each step.
        let end = if cfg!(miri) { 1u32 << 12 } else { 1u32 << 20 };
        for n in 0..end {
            check(n as f32, &mut worst);
        }
    }
}
