//! Timestamp parsing: civil date-times, epoch integers and strftime patterns to milliseconds since the Unix epoch.
//!
//! [`TimeParser`] applies a [`TimeFormat`] and a time zone; naive date-times (no offset) are local times of that
//! zone, UTC by default. tickq only needs differences between trade times, and the bundled data is in
//! exchange-local time without an offset, read as UTC.

use crate::options::read::{EpochUnit, ReadOptionError, TimeFormat, check_pattern};

/// Milliseconds in one day.
const MS_PER_DAY: i64 = 86_400_000;

/// Days before the first of each month in a common year.
const DAYS_BEFORE_MONTH: [i64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Number of leap years in `1..=year` (for `year >= 0`).
fn leap_years_through(year: i64) -> i64 {
    year / 4 - year / 100 + year / 400
}

/// Days from 1970-01-01 to the given date of the proleptic Gregorian calendar.
///
/// The caller guarantees `1 <= year <= 9999`, `1 <= month <= 12` and a valid day.
fn days_since_epoch(year: i64, month: i64, day: i64) -> i64 {
    let whole_years = 365 * (year - 1970) + leap_years_through(year - 1) - leap_years_through(1969);
    let leap_day = i64::from(month > 2 && is_leap(year));
    whole_years + DAYS_BEFORE_MONTH[(month - 1) as usize] + leap_day + day - 1
}

/// Parses exactly `n` ASCII digits.
fn digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        s.iter()
            .fold(0i64, |acc, &d| acc * 10 + i64::from(d - b'0')),
    )
}

/// Parses a timestamp into milliseconds since 1970-01-01T00:00:00 (naive times taken as UTC).
///
/// Accepted forms:
/// - `YYYY-MM-DD HH:MM:SS[.f...]` and `YYYY-MM-DDTHH:MM:SS[.f...][Z]`, with 1 to 9 fraction digits;
///   digits past the millisecond are truncated.
/// - An integer number of epoch milliseconds, optionally negative.
///
/// Returns `None` for anything else, including impossible dates such as `2013-02-30`. The reader uses
/// [`TimeParser`]; this fixed form (integers always milliseconds) is what the order-by-order book reader
/// (`data::book`) reads, and the civil parser's test oracle.
pub(crate) fn parse_timestamp_ms(text: &str) -> Option<i64> {
    let s = text.as_bytes();
    if s.len() > 4 && s[4] == b'-' {
        return parse_civil(s);
    }
    let (negative, body) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    if body.is_empty() || body.len() > 18 || !body.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = digits(body)?;
    Some(if negative { -value } else { value })
}

/// Milliseconds of an epoch integer `value` in `unit`, rounded down; `None` on overflow.
fn epoch_ms(value: i64, unit: EpochUnit) -> Option<i64> {
    match unit {
        EpochUnit::Seconds => value.checked_mul(1000),
        EpochUnit::Millis => Some(value),
        EpochUnit::Micros => Some(value.div_euclid(1000)),
        EpochUnit::Nanos => Some(value.div_euclid(1_000_000)),
    }
}

/// An optionally negative integer of at most 19 digits.
fn parse_integer(s: &[u8]) -> Option<i64> {
    let (negative, body) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    if body.is_empty() || body.len() > 19 || !body.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = body.iter().try_fold(0i64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(i64::from(d - b'0'))
    })?;
    Some(if negative { -value } else { value })
}

/// Epoch seconds with an optional decimal fraction (`1577836800.25`), to milliseconds rounded down.
fn parse_epoch_seconds(s: &[u8]) -> Option<i64> {
    let (whole, frac) = match s.iter().position(|&b| b == b'.') {
        Some(dot) => (&s[..dot], &s[dot + 1..]),
        None => (s, &[][..]),
    };
    let seconds = parse_integer(whole)?;
    if !frac.iter().all(u8::is_ascii_digit)
        || frac.len() > 9
        || (s.contains(&b'.') && frac.is_empty())
    {
        return None;
    }
    let mut ms = 0i64;
    for k in 0..3 {
        ms = ms * 10 + frac.get(k).map_or(0, |d| i64::from(d - b'0'));
    }
    let negative = whole.first() == Some(&b'-');
    let base = seconds.checked_mul(1000)?;
    if negative {
        // -1.5 s is -1500 ms; a fraction past the millisecond rounds down (further from zero).
        let sub = i64::from(frac.len() > 3 && frac[3..].iter().any(|&d| d != b'0'));
        base.checked_sub(ms + sub)
    } else {
        base.checked_add(ms)
    }
}

/// Reads the time column's text as milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone)]
pub(crate) struct TimeParser {
    format: TimeFormat,
    /// The zone of local times; `None` is UTC, where the fast civil parser's result needs no conversion.
    zone: Option<jiff::tz::TimeZone>,
}

impl TimeParser {
    /// A parser for `format` with local times in `zone` (`None`: UTC).
    ///
    /// # Errors
    ///
    /// [`ReadOptionError::TimeFormat`] for a pattern jiff cannot use.
    pub(crate) fn new(
        format: &TimeFormat,
        zone: Option<jiff::tz::TimeZone>,
    ) -> Result<TimeParser, ReadOptionError> {
        if let TimeFormat::Pattern(p) = format {
            check_pattern(p)?;
        }
        let zone = zone.filter(|z| *z != jiff::tz::TimeZone::UTC);
        Ok(TimeParser {
            format: format.clone(),
            zone,
        })
    }

    /// What the parser expects, for error messages.
    pub(crate) fn expected(&self) -> String {
        match &self.format {
            TimeFormat::Auto => {
                "`YYYY-MM-DD HH:MM:SS[.fff]`, `YYYY-MM-DDTHH:MM:SS[.fff][Z]` or an epoch integer \
                                 (seconds, milliseconds, microseconds or nanoseconds by magnitude)"
                    .to_owned()
            }
            TimeFormat::Epoch(unit) => format!("an integer for --time-format {}", unit.keyword()),
            TimeFormat::Pattern(p) => format!("the pattern `{}`", crate::limits::excerpt(p)),
        }
    }

    /// An epoch integer as the format reads it (`auto`: by magnitude); not shifted by the zone.
    pub(crate) fn epoch(&self, value: i64) -> Option<i64> {
        let unit = match &self.format {
            TimeFormat::Epoch(unit) => *unit,
            _ => EpochUnit::for_magnitude(value.unsigned_abs()),
        };
        epoch_ms(value, unit)
    }

    /// `text` in milliseconds since the Unix epoch, or `None` when it does not match the format or names an
    /// impossible (or, in the zone, non-existent-and-unresolvable) time.
    pub(crate) fn parse(&self, text: &str) -> Option<i64> {
        match &self.format {
            TimeFormat::Auto => {
                let s = text.as_bytes();
                if s.len() > 4 && s[4] == b'-' {
                    let naive = parse_civil(s)?;
                    match &self.zone {
                        Some(zone) if !text.ends_with('Z') => self.localize(naive, zone),
                        _ => Some(naive),
                    }
                } else {
                    self.epoch(parse_integer(s)?)
                }
            }
            TimeFormat::Epoch(EpochUnit::Seconds) => parse_epoch_seconds(text.as_bytes()),
            TimeFormat::Epoch(unit) => epoch_ms(parse_integer(text.as_bytes())?, *unit),
            TimeFormat::Pattern(p) => {
                let tm = jiff::fmt::strtime::parse(p, text).ok()?;
                if tm.offset().is_some() {
                    return Some(tm.to_timestamp().ok()?.as_millisecond());
                }
                let dt = tm.to_datetime().ok()?;
                let zone = self.zone.clone().unwrap_or(jiff::tz::TimeZone::UTC);
                Some(zone.to_timestamp(dt).ok()?.as_millisecond())
            }
        }
    }

    /// A naive time read as UTC (`naive_ms`) moved to `zone`: an ambiguous time (a repeated hour) is the earlier
    /// instant and a skipped one is shifted forward by the gap (jiff's `compatible` rule, as in RFC 5545).
    fn localize(&self, naive_ms: i64, zone: &jiff::tz::TimeZone) -> Option<i64> {
        let dt = jiff::Timestamp::from_millisecond(naive_ms)
            .ok()?
            .to_zoned(jiff::tz::TimeZone::UTC)
            .datetime();
        Some(zone.to_timestamp(dt).ok()?.as_millisecond())
    }
}

fn parse_civil(s: &[u8]) -> Option<i64> {
    // Fixed layout: YYYY-MM-DD?HH:MM:SS, then an optional fraction and an optional `Z`.
    if s.len() < 19 || s[7] != b'-' || s[13] != b':' || s[16] != b':' {
        return None;
    }
    let sep = s[10];
    if sep != b' ' && sep != b'T' {
        return None;
    }
    let year = digits(&s[0..4])?;
    let month = digits(&s[5..7])?;
    let day = digits(&s[8..10])?;
    let hour = digits(&s[11..13])?;
    let minute = digits(&s[14..16])?;
    let second = digits(&s[17..19])?;
    let mut rest = &s[19..];
    if sep == b'T'
        && let Some(stripped) = rest.strip_suffix(b"Z")
    {
        rest = stripped;
    }
    let millis = match rest.split_first() {
        None => 0,
        Some((b'.', frac)) if (1..=9).contains(&frac.len()) => {
            let mut ms = 0;
            for k in 0..3 {
                let d = match frac.get(k) {
                    Some(&d) => digits(&[d])?,
                    None => 0,
                };
                ms = ms * 10 + d;
            }
            // The digits past the third must still be digits.
            if frac.len() > 3 {
                digits(&frac[3..])?;
            }
            ms
        }
        Some(_) => return None,
    };
    if year < 1
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let days = days_since_epoch(year, month, day);
    Some(days * MS_PER_DAY + ((hour * 60 + minute) * 60 + second) * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser(format: &str, zone: Option<&str>) -> TimeParser {
        let zone = zone.map(|z| {
            z.parse::<crate::options::read::TimeZoneName>()
                .unwrap()
                .resolve()
                .unwrap()
        });
        TimeParser::new(&format.parse().unwrap(), zone).unwrap()
    }

    #[test]
    fn epoch_keywords_and_auto_magnitudes() {
        // 2020-01-01T00:00:00Z in each unit.
        let auto = parser("auto", None);
        for text in [
            "1577836800",
            "1577836800000",
            "1577836800000000",
            "1577836800000000000",
        ] {
            assert_eq!(auto.parse(text), Some(1_577_836_800_000), "{text}");
        }
        assert_eq!(
            parser("epoch-s", None).parse("1577836800.25"),
            Some(1_577_836_800_250)
        );
        assert_eq!(parser("epoch-s", None).parse("-1.5"), Some(-1_500));
        assert_eq!(parser("epoch-s", None).parse("-1.0001"), Some(-1_001));
        assert_eq!(parser("epoch-ms", None).parse("5"), Some(5));
        assert_eq!(parser("epoch-us", None).parse("-1"), Some(-1));
        assert_eq!(parser("epoch-ns", None).parse("1999999"), Some(1));
        for bad in ["", "1.", "1.5x", "12e3", "99999999999999999999"] {
            assert_eq!(parser("epoch-s", None).parse(bad), None, "{bad:?}");
        }
        assert_eq!(parser("epoch-ms", None).parse("1.5"), None);
    }

    #[test]
    fn patterns_and_zones() {
        let fx = parser("%d.%m.%Y %H:%M:%S%.3f", None);
        assert_eq!(fx.parse("01.01.2020 00:00:00.250"), Some(1_577_836_800_250));
        assert_eq!(fx.parse("31.02.2020 00:00:00.000"), None);
        let cdd = parser("%Y-%m-%d %I-%p", None);
        assert_eq!(
            cdd.parse("2020-01-01 01-PM"),
            Some(1_577_836_800_000 + 13 * 3_600_000)
        );
        assert_eq!(cdd.parse("2020-01-01 12-AM"), Some(1_577_836_800_000));
        // New York is UTC-5 in January and UTC-4 in July.
        let ny = parser("auto", Some("America/New_York"));
        assert_eq!(
            ny.parse("2020-01-01 00:00:00"),
            Some(1_577_836_800_000 + 5 * 3_600_000)
        );
        assert_eq!(
            ny.parse("2020-07-01T00:00:00"),
            Some(1_593_561_600_000 + 4 * 3_600_000)
        );
        // A trailing Z and epoch integers are UTC whatever the zone.
        assert_eq!(ny.parse("2020-01-01T00:00:00Z"), Some(1_577_836_800_000));
        assert_eq!(ny.parse("1577836800000"), Some(1_577_836_800_000));
        let fixed = parser("%d.%m.%Y %H:%M:%S%.3f", Some("+02:00"));
        assert_eq!(
            fixed.parse("01.01.2020 02:00:00.000"),
            Some(1_577_836_800_000)
        );
        // A pattern with an offset directive ignores the zone.
        let offset = parser("%Y-%m-%d %H:%M %z", Some("America/New_York"));
        assert_eq!(
            offset.parse("2020-01-01 01:00 +0100"),
            Some(1_577_836_800_000)
        );
    }

    #[test]
    fn epoch_and_known_dates() {
        assert_eq!(parse_timestamp_ms("1970-01-01 00:00:00"), Some(0));
        assert_eq!(parse_timestamp_ms("1970-01-01T00:00:00.001Z"), Some(1));
        assert_eq!(parse_timestamp_ms("1969-12-31 23:59:59.999"), Some(-1));
        // 2013-09-01T17:00:00.083Z is 1378054800083 ms (checked with `date -u -d`).
        assert_eq!(
            parse_timestamp_ms("2013-09-01 17:00:00.083"),
            Some(1_378_054_800_083)
        );
        // 2000-03-01 follows a leap day in a year divisible by 400: 951868800 s.
        assert_eq!(
            parse_timestamp_ms("2000-03-01T00:00:00"),
            Some(951_868_800_000)
        );
        // 2100 is not a leap year: 2100-03-01 is 4107542400 s.
        assert_eq!(
            parse_timestamp_ms("2100-03-01 00:00:00"),
            Some(4_107_542_400_000)
        );
        assert_eq!(
            parse_timestamp_ms("2024-02-29 12:34:56.7"),
            Some(1_709_210_096_700)
        );
    }

    #[test]
    fn fractions_are_truncated_to_milliseconds() {
        assert_eq!(parse_timestamp_ms("1970-01-01 00:00:01.5"), Some(1_500));
        assert_eq!(parse_timestamp_ms("1970-01-01 00:00:01.25"), Some(1_250));
        assert_eq!(
            parse_timestamp_ms("1970-01-01T00:00:01.123999999Z"),
            Some(1_123)
        );
    }

    #[test]
    fn integer_epoch_milliseconds() {
        assert_eq!(parse_timestamp_ms("1378054800083"), Some(1_378_054_800_083));
        assert_eq!(parse_timestamp_ms("-5"), Some(-5));
        assert_eq!(parse_timestamp_ms("0"), Some(0));
    }

    #[test]
    fn rejects_malformed_and_impossible() {
        for bad in [
            "",
            "-",
            "abc",
            "12.5",
            "2013-09-01",
            "2013-09-01 17:00",
            "2013-09-01 17:00:00.",
            "2013-09-01 17:00:00.1234567890",
            "2013-09-01 17:00:00Z",
            "2013-09-01T17:00:00+01:00",
            "2013-09-01_17:00:00",
            "2013-13-01 00:00:00",
            "2013-00-01 00:00:00",
            "2013-02-29 00:00:00",
            "2013-04-31 00:00:00",
            "2013-09-01 24:00:00",
            "2013-09-01 23:60:00",
            "2013-09-01 23:59:60",
            "0000-01-01 00:00:00",
            "2013-09-01 17:00:00.08x",
            "2013-9-01 17:00:00.000",
            "99999999999999999999",
        ] {
            assert_eq!(parse_timestamp_ms(bad), None, "{bad:?} should be rejected");
        }
    }

    #[test]
    fn consecutive_days_are_one_day_apart() {
        let mut prev = parse_timestamp_ms("1899-12-31 00:00:00").expect("valid");
        for year in 1900..=2101i64 {
            for month in 1..=12 {
                for day in 1..=days_in_month(year, month) {
                    let text = format!("{year:04}-{month:02}-{day:02} 00:00:00");
                    let t = parse_timestamp_ms(&text).expect("valid date");
                    assert_eq!(t - prev, MS_PER_DAY, "{text}");
                    prev = t;
                }
            }
        }
    }
}
