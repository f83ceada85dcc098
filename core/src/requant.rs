//! Requantization: the one place where an i32 accumulator becomes an int8 activation.
//!
//! A real ratio `r` (for Dense, `in_scale * w_scale / out_scale`) is represented as a [`QuantMultiplier`]:
//! `r ≈ multiplier / 2^right_shift` with `multiplier` in `[2^30, 2^31 - 1]` and `right_shift` in `[1, 62]`.
//! [`requantize`] then computes `acc * multiplier / 2^right_shift` exactly in i64 and rounds it once,
//! half away from zero, before adding the zero point and clamping.
//! `docs/ARITHMETIC.md` derives the rounding identity and the overflow bounds.

/// The smallest valid multiplier, `2^30`.
pub const MULTIPLIER_MIN: i32 = 1 << 30;
/// The smallest valid right shift.
pub const RIGHT_SHIFT_MIN: u8 = 1;
/// The largest valid right shift.
pub const RIGHT_SHIFT_MAX: u8 = 62;

/// A positive real ratio in fixed point: `multiplier / 2^right_shift`.
///
/// Construct it with [`QuantMultiplier::from_ratio`] (host side) or [`QuantMultiplier::new_checked`] (from stored
/// fields); both guarantee `multiplier` in `[2^30, 2^31 - 1]` and `right_shift` in `[1, 62]`, which is what makes
/// [`requantize`] overflow-free for every i32 accumulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QuantMultiplier {
    multiplier: i32,
    right_shift: u8,
}

impl QuantMultiplier {
    /// The ratio 1, as `2^30 / 2^30`.
    pub const ONE: QuantMultiplier = QuantMultiplier {
        multiplier: MULTIPLIER_MIN,
        right_shift: 30,
    };

    /// Checks stored fields: `multiplier` in `[2^30, 2^31 - 1]` and `right_shift` in `[1, 62]`.
    #[inline]
    pub const fn new_checked(multiplier: i32, right_shift: u8) -> Option<Self> {
        if multiplier >= MULTIPLIER_MIN
            && right_shift >= RIGHT_SHIFT_MIN
            && right_shift <= RIGHT_SHIFT_MAX
        {
            Some(QuantMultiplier {
                multiplier,
                right_shift,
            })
        } else {
            None
        }
    }

    /// Builds a multiplier from fields the loader already validated, without a branch.
    ///
    /// Out-of-range fields are clamped into range instead of rejected, so the result is always valid and
    /// [`requantize`] cannot misbehave even if a caller passes unvalidated bytes.
    #[inline(always)]
    pub(crate) const fn from_validated(multiplier: i32, right_shift: u8) -> Self {
        let multiplier = if multiplier < MULTIPLIER_MIN {
            MULTIPLIER_MIN
        } else {
            multiplier
        };
        let right_shift = if right_shift < RIGHT_SHIFT_MIN {
            RIGHT_SHIFT_MIN
        } else if right_shift > RIGHT_SHIFT_MAX {
            RIGHT_SHIFT_MAX
        } else {
            right_shift
        };
        QuantMultiplier {
            multiplier,
            right_shift,
        }
    }

    /// Finds the multiplier nearest to a positive ratio.
    ///
    /// With `r = m * 2^e` and `m` in `[0.5, 1)`, the multiplier is `round(m * 2^31)` and the shift `31 - e`;
    /// the relative error is at most `2^-31`.
    /// Ratios below `2^-32` (shift above 62) become `2^30 / 2^62`, which maps every i32 accumulator to 0
    /// exactly as the true tiny ratio would.
    /// Returns `None` for ratios that are not finite, not positive, or at least `2^30`.
    pub fn from_ratio(ratio: f64) -> Option<Self> {
        if !ratio.is_finite() || ratio <= 0.0 {
            return None;
        }
        let (mantissa, exponent) = libm::frexp(ratio);
        // `mantissa * 2^31` is exact in f64 and lies in [2^30, 2^31], so the rounding below is the only one.
        let mut multiplier = libm::round(mantissa * 2_147_483_648.0) as i64;
        let mut exponent = i64::from(exponent);
        if multiplier == 1 << 31 {
            multiplier = 1 << 30;
            exponent += 1;
        }
        let right_shift = 31 - exponent;
        if right_shift > i64::from(RIGHT_SHIFT_MAX) {
            return Some(QuantMultiplier {
                multiplier: MULTIPLIER_MIN,
                right_shift: RIGHT_SHIFT_MAX,
            });
        }
        if right_shift < i64::from(RIGHT_SHIFT_MIN) {
            return None;
        }
        QuantMultiplier::new_checked(
            i32::try_from(multiplier).ok()?,
            u8::try_from(right_shift).ok()?,
        )
    }

    /// The Q31-style multiplier, in `[2^30, 2^31 - 1]`.
    #[inline]
    pub const fn multiplier(&self) -> i32 {
        self.multiplier
    }

    /// The right shift, in `[1, 62]`.
    #[inline]
    pub const fn right_shift(&self) -> u8 {
        self.right_shift
    }

    /// The represented ratio `multiplier / 2^right_shift` (exact in f64).
    #[inline]
    pub fn ratio(&self) -> f64 {
        f64::from(self.multiplier) / libm::exp2(f64::from(self.right_shift))
    }
}

/// Rounds `acc * m.multiplier / 2^m.right_shift` half away from zero, adds `out_zp` and clamps to
/// `[act_min, act_max]`.
///
/// The product fits i64 because `|acc| <= 2^31` and `multiplier < 2^31`; adding the rounding terms keeps it
/// below `2^63`.
/// The arithmetic shift floors, so `(p + 2^(s-1) + (p >> 63)) >> s` rounds half up for `p >= 0` and, with the
/// extra `-1`, half down for `p < 0`: that is one rounding, half away from zero.
/// Clamping happens in i64, so nothing can wrap.
/// If `act_min > act_max` the result is `act_max`; the loader never lets that happen.
#[inline(always)]
pub fn requantize(acc: i32, m: QuantMultiplier, out_zp: i8, act_min: i8, act_max: i8) -> i8 {
    let y = scale_round(acc, m);
    let out = (y + i64::from(out_zp))
        .max(i64::from(act_min))
        .min(i64::from(act_max));
    out as i8
}

/// `acc * m.multiplier / 2^m.right_shift`, rounded once, half away from zero, without clamping.
///
/// This is the rounding core of [`requantize`]; the dynamic Dense kernel uses it directly to keep the result in
/// i32 range (its multipliers are below 1, so `|result| <= |acc|`).
#[inline(always)]
pub fn scale_round(acc: i32, m: QuantMultiplier) -> i64 {
    let p = i64::from(acc) * i64::from(m.multiplier);
    round_shift(p, u32::from(m.right_shift))
}

/// `v / 2^shift` rounded half away from zero, for `|v| < 2^62` and `shift` in `[1, 62]`:
/// `(v + 2^(shift - 1) + (v >> 63)) >> shift` with arithmetic shifts.
///
/// A `shift` of 0 returns `v`; shifts above 62 are treated as 62.
#[inline(always)]
pub fn round_shift(v: i64, shift: u32) -> i64 {
    if shift == 0 {
        return v;
    }
    let shift = shift.min(62);
    (v + (1i64 << (shift - 1)) + (v >> 63)) >> shift
}

/// `v * 2^-s` for any exponent `s`, rounded half away from zero and saturated to `[-2^31, 2^31]`.
///
/// Right shifts (`s > 0`) use [`round_shift`]; shifts of 63 or more give 0 (`|v| < 2^31` is below half of
/// `2^63`).
/// Left shifts (`s < 0`) are exact and saturate; `-s >= 32` saturates any non-zero `v`.
#[inline]
pub fn shift_saturating(v: i32, s: i32) -> i64 {
    const SAT: i64 = 1 << 31;
    let v = i64::from(v);
    if s > 0 {
        if s >= 63 {
            0
        } else {
            round_shift(v, s.unsigned_abs())
        }
    } else {
        let l = s.unsigned_abs();
        if v == 0 {
            0
        } else if l >= 32 {
            if v > 0 { SAT } else { -SAT }
        } else {
            (v << l).clamp(-SAT, SAT)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Exact rational rounding, half away from zero, of `acc * mult / 2^shift` in i128.
    fn reference(acc: i32, mult: i32, shift: u8) -> i128 {
        let p = i128::from(acc) * i128::from(mult);
        let d = 1i128 << shift;
        let q = p.abs() / d;
        let r = p.abs() % d;
        let rounded = if 2 * r >= d { q + 1 } else { q };
        if p < 0 { -rounded } else { rounded }
    }

    fn check(acc: i32, m: QuantMultiplier, zp: i8, lo: i8, hi: i8) {
        let want = (reference(acc, m.multiplier(), m.right_shift()) + i128::from(zp))
            .clamp(i128::from(lo), i128::from(hi));
        assert_eq!(
            i128::from(requantize(acc, m, zp, lo, hi)),
            want,
            "acc={acc} m={m:?} zp={zp} lo={lo} hi={hi}"
        );
    }

    /// SplitMix64: small, seeded and good enough to spread test cases.
    struct SplitMix(u64);

    impl SplitMix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
    }

    #[test]
    fn requantize_matches_exact_rational_rounding_on_two_million_cases() {
        let mut rng = SplitMix(0x0074_6963_6B71);
        // Under Miri (`.ci/run`) a few thousand cases check the arithmetic for undefined behaviour; the native
        // run checks the rounding on all two million.
        let cases = if cfg!(miri) { 2_000 } else { 2_000_000u32 };
        for i in 0..cases {
            let r = rng.next();
            // Mix full-range accumulators with small ones so that the rounded value often lands in the
            // int8 range and exact halves occur.
            let acc = if i % 2 == 0 {
                r as i32
            } else {
                (r as i32) >> (r >> 59) as u32
            };
            let r2 = rng.next();
            let mult = MULTIPLIER_MIN + (r2 as u32 % (1u32 << 30)) as i32;
            let shift = 1 + ((r2 >> 32) % 62) as u8;
            let m = QuantMultiplier::new_checked(mult, shift).unwrap();
            // The raw rounded value is checked without clamping first (the clamp hides most of it).
            let p = i64::from(acc) * i64::from(mult);
            let y = (p + (1i64 << (shift - 1)) + (p >> 63)) >> shift;
            assert_eq!(
                i128::from(y),
                reference(acc, mult, shift),
                "acc={acc} m={m:?}"
            );
            let zp = (r2 >> 40) as i8;
            check(acc, m, zp, -128, 127);
        }
    }

    #[test]
    fn exact_halves_round_away_from_zero() {
        let m = QuantMultiplier::new_checked(1 << 30, 31).unwrap(); // ratio 0.5
        assert_eq!(requantize(1, m, 0, -128, 127), 1);
        assert_eq!(requantize(-1, m, 0, -128, 127), -1);
        assert_eq!(requantize(3, m, 0, -128, 127), 2);
        assert_eq!(requantize(-3, m, 0, -128, 127), -2);
        assert_eq!(requantize(2, m, 0, -128, 127), 1);
        assert_eq!(requantize(0, m, 5, -128, 127), 5);
        assert_eq!(requantize(i32::MAX, m, 0, -128, 127), 127);
        assert_eq!(requantize(i32::MIN, m, 0, -128, 127), -128);
        assert_eq!(requantize(10, m, 0, 0, 3), 3);
        assert_eq!(requantize(-10, m, 0, -2, 3), -2);
    }

    #[test]
    fn new_checked_bounds() {
        assert!(QuantMultiplier::new_checked(1 << 30, 1).is_some());
        assert!(QuantMultiplier::new_checked(i32::MAX, 62).is_some());
        assert!(QuantMultiplier::new_checked((1 << 30) - 1, 10).is_none());
        assert!(QuantMultiplier::new_checked(-5, 10).is_none());
        assert!(QuantMultiplier::new_checked(1 << 30, 0).is_none());
        assert!(QuantMultiplier::new_checked(1 << 30, 63).is_none());
    }

    #[test]
    fn from_ratio_edges() {
        assert_eq!(QuantMultiplier::from_ratio(0.0), None);
        assert_eq!(QuantMultiplier::from_ratio(-1.0), None);
        assert_eq!(QuantMultiplier::from_ratio(f64::NAN), None);
        assert_eq!(QuantMultiplier::from_ratio(f64::INFINITY), None);
        assert_eq!(QuantMultiplier::from_ratio(1073741824.0), None); // 2^30
        let big = QuantMultiplier::from_ratio(1073741823.0).unwrap();
        assert_eq!(big.right_shift(), 1);
        let one = QuantMultiplier::from_ratio(1.0).unwrap();
        assert_eq!((one.multiplier(), one.right_shift()), (1 << 30, 30));
        assert_eq!(one.ratio(), 1.0);
        let half = QuantMultiplier::from_ratio(0.5).unwrap();
        assert_eq!((half.multiplier(), half.right_shift()), (1 << 30, 31));
        // Just below a power of two, the mantissa rounds up to 2^31 and must renormalize.
        let near = QuantMultiplier::from_ratio(1.0 - 1e-12).unwrap();
        assert_eq!((near.multiplier(), near.right_shift()), (1 << 30, 30));
        // Tiny ratios: the smallest representable one, and the clamp below it.
        let tiny = QuantMultiplier::from_ratio(libm::exp2(-32.0)).unwrap();
        assert_eq!((tiny.multiplier(), tiny.right_shift()), (1 << 30, 62));
        let tinier = QuantMultiplier::from_ratio(1e-300).unwrap();
        assert_eq!((tinier.multiplier(), tinier.right_shift()), (1 << 30, 62));
        assert_eq!(requantize(i32::MAX, tinier, 0, -128, 127), 0);
        assert_eq!(requantize(i32::MIN + 1, tinier, 0, -128, 127), 0);
        // -2^31 * 2^-32 is exactly -0.5, which rounds away from zero; the loader's bounds keep |acc| < 2^31.
        assert_eq!(requantize(i32::MIN, tinier, 0, -128, 127), -1);
        assert!(QuantMultiplier::from_ratio(f64::MIN_POSITIVE / 4.0).is_some());
    }

    #[test]
    fn from_ratio_round_trip_is_accurate() {
        let mut rng = SplitMix(42);
        for _ in 0..if cfg!(miri) { 500 } else { 200_000 } {
            // Log-uniform ratios over the representable range [2^-32, 2^30).
            let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
            let r = libm::exp2(-32.0 + 61.999 * u);
            let m = QuantMultiplier::from_ratio(r).unwrap();
            let rel = (m.ratio() - r).abs() / r;
            assert!(rel <= libm::exp2(-30.0), "r={r} m={m:?} rel={rel}");
        }
    }

    proptest! {
        #[test]
        fn requantize_matches_reference_near_edges(
            acc in prop_oneof![any::<i32>(), -1024i32..1024, Just(i32::MIN), Just(i32::MAX)],
            mult in prop_oneof![MULTIPLIER_MIN..=i32::MAX, Just(MULTIPLIER_MIN), Just(i32::MAX)],
            shift in prop_oneof![1u8..=62, Just(1u8), Just(62u8), Just(31u8)],
            zp in any::<i8>(),
            a in any::<i8>(),
            b in any::<i8>(),
        ) {
            let m = QuantMultiplier::new_checked(mult, shift).unwrap();
            check(acc, m, zp, a.min(b), a.max(b));
        }

        #[test]
        fn from_ratio_is_nearest(r in 1e-9f64..1e9) {
            let m = QuantMultiplier::from_ratio(r).unwrap();
            let rel = (m.ratio() - r).abs() / r;
            prop_assert!(rel <= libm::exp2(-30.0));
        }
    }
}
