//! Exact decimal text: prices and sizes turned into whole ticks and lots without going through floating point.

use std::fmt;
use std::str::FromStr;

/// The most significant digits a [`Decimal`] keeps (after trailing zeros are dropped): what fits a `u128`.
const MAX_DIGITS: u32 = 38;

/// The largest exponent magnitude accepted in text (`1e400` is refused as not a number).
const MAX_EXPONENT: i32 = 400;

/// A decimal number held exactly: `(-1)^negative * mantissa * 10^exponent`.
///
/// It is parsed from text such as `78318.0`, `0.00030644`, `2.6e-06` or `-5`, and never rounds: a value with more
/// than 38 significant digits, or an exponent beyond ±400, is refused. Trailing zeros are dropped, so `1.50` and
/// `1.5` are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decimal {
    negative: bool,
    mantissa: u128,
    exponent: i32,
}

/// Why a decimal text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ToUnitsError {
    /// The value is not a whole number of units.
    OffGrid,
    /// The whole number of units does not fit the target integer.
    OutOfRange,
}

impl Decimal {
    /// `mantissa * 10^exponent`, non-negative.
    pub const fn new(mantissa: u128, exponent: i32) -> Self {
        Decimal {
            negative: false,
            mantissa,
            exponent,
        }
        .normalized()
    }

    const fn normalized(mut self) -> Self {
        if self.mantissa == 0 {
            self.negative = false;
            self.exponent = 0;
            return self;
        }
        while self.mantissa.is_multiple_of(10) {
            self.mantissa /= 10;
            self.exponent += 1;
        }
        self
    }

    /// Whether the value is above zero.
    pub fn is_positive(&self) -> bool {
        !self.negative && self.mantissa > 0
    }

    /// Whether the value is below zero.
    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// This value divided by `unit`, when that is a whole number, as a signed 128-bit integer.
    ///
    /// `unit` must be positive (the caller checks it when the options are made).
    pub(crate) fn units(&self, unit: &Decimal) -> Result<i128, ToUnitsError> {
        debug_assert!(unit.is_positive());
        if self.mantissa == 0 {
            return Ok(0);
        }
        let shift = i64::from(self.exponent) - i64::from(unit.exponent);
        let (num, den) = if shift >= 0 {
            let scale = pow10(shift).ok_or(ToUnitsError::OutOfRange)?;
            let num = self
                .mantissa
                .checked_mul(scale)
                .ok_or(ToUnitsError::OutOfRange)?;
            (num, unit.mantissa)
        } else {
            // A denominator beyond u128 is larger than any mantissa: no whole quotient but zero, and the value
            // is not zero here.
            let scale = pow10(-shift).ok_or(ToUnitsError::OffGrid)?;
            let den = unit
                .mantissa
                .checked_mul(scale)
                .ok_or(ToUnitsError::OffGrid)?;
            (self.mantissa, den)
        };
        if num % den != 0 {
            return Err(ToUnitsError::OffGrid);
        }
        let q = i128::try_from(num / den).map_err(|_| ToUnitsError::OutOfRange)?;
        Ok(if self.negative { -q } else { q })
    }
}

/// `10^n` when it fits a `u128`.
fn pow10(n: i64) -> Option<u128> {
    u32::try_from(n).ok().and_then(|n| 10u128.checked_pow(n))
}

/// The text is not a decimal number (or has too many digits, or too large an exponent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseDecimalError;

impl fmt::Display for ParseDecimalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a decimal number (digits with an optional sign, point and exponent)")
    }
}

impl std::error::Error for ParseDecimalError {}

impl FromStr for Decimal {
    type Err = ParseDecimalError;

    /// Parses `[+-]digits[.digits][(e|E)[+-]digits]`; at least one digit before or after the point.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let s = text.as_bytes();
        let mut i = 0;
        let mut negative = false;
        if let Some(&c) = s.first()
            && (c == b'+' || c == b'-')
        {
            negative = c == b'-';
            i = 1;
        }
        let mut mantissa: u128 = 0;
        let mut digits = 0u32; // significant digits kept in the mantissa
        let mut exponent: i64 = 0;
        let mut any_digit = false;
        let mut seen_point = false;
        // Zeros read but not yet multiplied in, so trailing zeros never overflow the mantissa.
        let mut pending_zeros: i64 = 0;
        while i < s.len() {
            let c = s[i];
            match c {
                b'0'..=b'9' => {
                    any_digit = true;
                    if seen_point {
                        exponent -= 1;
                    }
                    if c == b'0' {
                        pending_zeros += 1;
                    } else {
                        // The zeros since the last non-zero digit are significant now (leading zeros, with
                        // the mantissa still zero, are not).
                        if mantissa != 0 {
                            for _ in 0..pending_zeros {
                                mantissa = mantissa.checked_mul(10).ok_or(ParseDecimalError)?;
                                digits += 1;
                            }
                        }
                        pending_zeros = 0;
                        mantissa = mantissa
                            .checked_mul(10)
                            .and_then(|m| m.checked_add(u128::from(c - b'0')))
                            .ok_or(ParseDecimalError)?;
                        digits += 1;
                        if digits > MAX_DIGITS {
                            return Err(ParseDecimalError);
                        }
                    }
                }
                b'.' if !seen_point => seen_point = true,
                b'e' | b'E' => break,
                _ => return Err(ParseDecimalError),
            }
            i += 1;
        }
        if !any_digit {
            return Err(ParseDecimalError);
        }
        // The zeros left pending are trailing: they scale the value, not the digit count.
        exponent += pending_zeros;
        if i < s.len() {
            // An exponent: `e`, an optional sign, at least one digit.
            i += 1;
            let mut exp_negative = false;
            if let Some(&c) = s.get(i)
                && (c == b'+' || c == b'-')
            {
                exp_negative = c == b'-';
                i += 1;
            }
            if i >= s.len() {
                return Err(ParseDecimalError);
            }
            let mut e: i64 = 0;
            for &c in &s[i..] {
                if !c.is_ascii_digit() {
                    return Err(ParseDecimalError);
                }
                e = e * 10 + i64::from(c - b'0');
                if e > i64::from(MAX_EXPONENT) {
                    return Err(ParseDecimalError);
                }
            }
            exponent += if exp_negative { -e } else { e };
        }
        if mantissa == 0 {
            return Ok(Decimal::new(0, 0));
        }
        let exponent = i32::try_from(exponent).map_err(|_| ParseDecimalError)?;
        if exponent.unsigned_abs() > 2 * MAX_EXPONENT as u32 {
            return Err(ParseDecimalError);
        }
        Ok(Decimal {
            negative,
            mantissa,
            exponent,
        }
        .normalized())
    }
}

impl fmt::Display for Decimal {
    /// Plain decimal notation without an exponent: `0.00000001`, `1`, `-2.5`, `1500`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.negative {
            f.write_str("-")?;
        }
        let digits = self.mantissa.to_string();
        if self.exponent >= 0 {
            f.write_str(&digits)?;
            for _ in 0..self.exponent {
                f.write_str("0")?;
            }
            return Ok(());
        }
        let frac = self.exponent.unsigned_abs() as usize;
        if digits.len() > frac {
            let (int, rest) = digits.split_at(digits.len() - frac);
            write!(f, "{int}.{rest}")
        } else {
            write!(f, "0.{}{digits}", "0".repeat(frac - digits.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap_or_else(|_| panic!("{text} parses"))
    }

    #[test]
    fn parses_plain_and_scientific_text_exactly() {
        assert_eq!(d("78318.0"), Decimal::new(78318, 0));
        assert_eq!(d("2.6e-06"), Decimal::new(26, -7));
        assert_eq!(d("0.00030644"), Decimal::new(30644, -8));
        assert_eq!(d("1E3"), Decimal::new(1, 3));
        assert_eq!(d("+.5"), Decimal::new(5, -1));
        assert_eq!(d("5."), Decimal::new(5, 0));
        assert_eq!(d("-0"), Decimal::new(0, 0));
        assert_eq!(d("100200"), Decimal::new(1002, 2));
        assert_eq!(d("1.50"), d("1.5"));
        assert!(d("-2.5").is_negative());
        for bad in [
            "",
            "-",
            ".",
            "e5",
            "1e",
            "1e+",
            "1.2.3",
            "1,5",
            "nan",
            "inf",
            " 1",
            "0x10",
            "1e401",
            "123456789012345678901234567890123456789",
        ] {
            assert_eq!(bad.parse::<Decimal>(), Err(ParseDecimalError), "{bad:?}");
        }
        // Zeros do not count as significant digits, leading or trailing.
        assert!(
            "0000000000000000000000000000000000000000001.000000000000000000000000000000000000000"
                .parse::<Decimal>()
                .is_ok()
        );
    }

    #[test]
    fn displays_without_exponent() {
        for (text, shown) in [
            ("1e-8", "0.00000001"),
            ("0.01", "0.01"),
            ("1", "1"),
            ("1.5e3", "1500"),
            ("-2.50", "-2.5"),
            ("12.345", "12.345"),
        ] {
            assert_eq!(d(text).to_string(), shown);
        }
    }

    #[test]
    fn units_are_exact_or_refused() {
        let sat = d("0.00000001");
        assert_eq!(d("2.6e-06").units(&sat), Ok(260));
        assert_eq!(d("1.53453667").units(&sat), Ok(153_453_667));
        assert_eq!(d("0.000000015").units(&sat), Err(ToUnitsError::OffGrid));
        assert_eq!(d("78318.0").units(&d("1")), Ok(78318));
        assert_eq!(d("78318.5").units(&d("1")), Err(ToUnitsError::OffGrid));
        assert_eq!(d("0.75").units(&d("0.25")), Ok(3));
        assert_eq!(d("0.7").units(&d("0.25")), Err(ToUnitsError::OffGrid));
        assert_eq!(d("-1.5").units(&d("0.5")), Ok(-3));
        assert_eq!(d("0").units(&sat), Ok(0));
        assert_eq!(d("1e300").units(&sat), Err(ToUnitsError::OutOfRange));
        assert_eq!(d("1e-300").units(&d("1")), Err(ToUnitsError::OffGrid));
        // The float 0.1 + 0.2 problem does not exist here.
        assert_eq!(d("0.3").units(&d("0.1")), Ok(3));
    }
}
