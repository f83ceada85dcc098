//! How a market data file is read: [`ReadOptions`], for every `tickq` subcommand that takes `--data` and the
//! pipeline's `[data.read]`.
//!
//! The values are checked when they are parsed (a strftime pattern with an unknown directive, an unknown time
//! zone, a column mapping naming no role), so a typo fails before any file is opened; `docs/DATA.md`, "Reading
//! files", lists every option with its default.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::data::Role;
use crate::limits::excerpt;

crate::choice! {
    /// The kind of a data file.
    pub enum FileFormat {
        /// from the extension: `.parquet` / `.pq` is Parquet, anything else (`.csv`, `.txt`, `.tsv`) delimited text
        Auto = "auto",
        /// delimited text (CSV, TSV, semicolon- or pipe-separated)
        Csv = "csv" | "txt" | "tsv",
        /// Apache Parquet
        Parquet = "parquet" | "pq",
    }
}

impl FileFormat {
    /// The format of `path`: `self` unless it is [`FileFormat::Auto`], then Parquet for a `.parquet` or `.pq`
    /// extension (any case) and delimited text for anything else.
    #[must_use]
    pub fn for_path(self, path: &Path) -> FileFormat {
        match self {
            FileFormat::Auto => {
                let ext = path
                    .extension()
                    .and_then(|e| e.to_str())
                    .unwrap_or_default();
                if ext.eq_ignore_ascii_case("parquet") || ext.eq_ignore_ascii_case("pq") {
                    FileFormat::Parquet
                } else {
                    FileFormat::Csv
                }
            }
            other => other,
        }
    }
}

/// A read setting that cannot be used: the message names the setting as `--help` and `[data.read]` do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadOptionError {
    /// A `--columns` entry is not `ROLE=HEADER`.
    #[error("columns: `{}` is not ROLE=HEADER (for example time=Time,price=Close)", excerpt(.0))]
    ColumnSyntax(String),
    /// A `--columns` entry names no role.
    #[error("columns: unknown role {0}")]
    UnknownRole(#[from] crate::options::ChoiceError),
    /// A role is mapped twice.
    #[error("columns: the role `{0}` is mapped twice")]
    RoleTwice(Role),
    /// A time format that is neither a keyword nor a strftime pattern jiff accepts.
    #[error("time_format: `{}` {reason}", excerpt(.format))]
    TimeFormat {
        /// The format as given.
        format: String,
        /// Why it is refused.
        reason: String,
    },
    /// A time zone that is neither an IANA name the system's time zone database (or tickq's bundled copy) knows,
    /// nor `UTC` or a fixed offset.
    #[error(
        "time_zone: `{}` is not a time zone: use an IANA name such as America/New_York, UTC or an offset such as +02:00 ({reason})",
        excerpt(.name)
    )]
    TimeZone {
        /// The zone as given.
        name: String,
        /// Why it is refused.
        reason: String,
    },
    /// A delimiter that is not one ASCII punctuation character or `tab`.
    #[error(
        "delimiter: `{}` is not a delimiter: use one ASCII character such as , ; | or the word tab (not a letter, digit, quote, dot or minus)",
        excerpt(.0)
    )]
    Delimiter(String),
}

/// Which header names the roles read: `time=Time,price=Close,size=volume_btc` on the command line,
/// `columns = { time = "Time", price = "Close" }` in `[data.read]`. Roles not named fall back to the header
/// aliases of [`Role::header_aliases`]. Kept in [`Role::ALL`] order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnMap {
    entries: Vec<(Role, String)>,
}

impl ColumnMap {
    /// The empty map: every role found by its aliases.
    #[must_use]
    pub fn new() -> ColumnMap {
        ColumnMap::default()
    }

    /// `self` with `role` read from the column named `header`.
    ///
    /// # Errors
    ///
    /// [`ReadOptionError::RoleTwice`] when `role` is already mapped.
    pub fn with(mut self, role: Role, header: &str) -> Result<ColumnMap, ReadOptionError> {
        if self.get(role).is_some() {
            return Err(ReadOptionError::RoleTwice(role));
        }
        self.entries.push((role, header.trim().to_owned()));
        self.entries
            .sort_by_key(|(r, _)| Role::ALL.iter().position(|a| a == r));
        Ok(self)
    }

    /// The header named for `role`, if any.
    #[must_use]
    pub fn get(&self, role: Role) -> Option<&str> {
        self.entries
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, h)| h.as_str())
    }

    /// Whether no role is mapped.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The mapped roles and their header names, in [`Role::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Role, &str)> {
        self.entries.iter().map(|(r, h)| (*r, h.as_str()))
    }
}

impl FromStr for ColumnMap {
    type Err = ReadOptionError;

    /// Reads `ROLE=HEADER` entries separated by commas; roles ignore case, headers are trimmed.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut map = ColumnMap::new();
        for entry in text.split(',').filter(|e| !e.trim().is_empty()) {
            let Some((role, header)) = entry.split_once('=') else {
                return Err(ReadOptionError::ColumnSyntax(entry.to_owned()));
            };
            if header.trim().is_empty() {
                return Err(ReadOptionError::ColumnSyntax(entry.to_owned()));
            }
            map = map.with(role.trim().parse()?, header)?;
        }
        Ok(map)
    }
}

impl fmt::Display for ColumnMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (role, header)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{role}={header}")?;
        }
        Ok(())
    }
}

impl Serialize for ColumnMap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter().map(|(r, h)| (r.name(), h)))
    }
}

impl<'de> Deserialize<'de> for ColumnMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let table = BTreeMap::<String, String>::deserialize(d)?;
        let mut map = ColumnMap::new();
        for (role, header) in table {
            let role: Role = role.parse().map_err(|e: crate::options::ChoiceError| {
                serde::de::Error::custom(ReadOptionError::UnknownRole(e))
            })?;
            map = map.with(role, &header).map_err(serde::de::Error::custom)?;
        }
        Ok(map)
    }
}

/// How the time column is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TimeFormat {
    /// `YYYY-MM-DD HH:MM:SS[.f]`, `YYYY-MM-DDTHH:MM:SS[.f][Z]`, or an epoch integer whose unit follows from its
    /// magnitude (see [`EpochUnit::for_magnitude`]).
    #[default]
    Auto,
    /// An integer count of the unit since the Unix epoch (`epoch-s`, `epoch-ms`, `epoch-us`, `epoch-ns`); seconds
    /// may have a decimal fraction.
    Epoch(EpochUnit),
    /// A strftime-style pattern as jiff reads it, such as `%d.%m.%Y %H:%M:%S%.3f`.
    Pattern(String),
}

/// The unit of an epoch time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EpochUnit {
    /// Seconds (`epoch-s`); a decimal fraction is allowed.
    Seconds,
    /// Milliseconds (`epoch-ms`).
    Millis,
    /// Microseconds (`epoch-us`).
    Micros,
    /// Nanoseconds (`epoch-ns`).
    Nanos,
}

impl EpochUnit {
    /// The keyword, as `--time-format` takes it.
    #[must_use]
    pub fn keyword(self) -> &'static str {
        match self {
            EpochUnit::Seconds => "epoch-s",
            EpochUnit::Millis => "epoch-ms",
            EpochUnit::Micros => "epoch-us",
            EpochUnit::Nanos => "epoch-ns",
        }
    }

    /// The unit `auto` gives an integer: below 10^11 in magnitude seconds (to the year 5138), below 10^14
    /// milliseconds, below 10^17 microseconds, else nanoseconds.
    #[must_use]
    pub fn for_magnitude(value: u64) -> EpochUnit {
        match value {
            0..100_000_000_000 => EpochUnit::Seconds,
            100_000_000_000..100_000_000_000_000 => EpochUnit::Millis,
            100_000_000_000_000..100_000_000_000_000_000 => EpochUnit::Micros,
            _ => EpochUnit::Nanos,
        }
    }
}

impl FromStr for TimeFormat {
    type Err = ReadOptionError;

    /// `auto`, `epoch-s`, `epoch-ms`, `epoch-us`, `epoch-ns` (any case), or a pattern with at least one `%`
    /// directive that jiff can format.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let keyword = text.trim().to_ascii_lowercase();
        let unit = match keyword.as_str() {
            "auto" => return Ok(TimeFormat::Auto),
            "epoch-s" => EpochUnit::Seconds,
            "epoch-ms" => EpochUnit::Millis,
            "epoch-us" => EpochUnit::Micros,
            "epoch-ns" => EpochUnit::Nanos,
            _ => {
                check_pattern(text)?;
                return Ok(TimeFormat::Pattern(text.to_owned()));
            }
        };
        Ok(TimeFormat::Epoch(unit))
    }
}

/// Refuses a pattern without a `%` directive, or one jiff cannot format (an unknown directive, a lone `%`).
pub(crate) fn check_pattern(text: &str) -> Result<(), ReadOptionError> {
    let refuse = |reason: String| ReadOptionError::TimeFormat {
        format: text.to_owned(),
        reason,
    };
    if !text.contains('%') {
        return Err(refuse(
            "is neither auto, epoch-s, epoch-ms, epoch-us, epoch-ns nor a strftime pattern (it has no % directive)"
                .to_owned(),
        ));
    }
    let probe = jiff::civil::date(2001, 2, 3)
        .at(4, 5, 6, 7_000_000)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(|e| refuse(e.to_string()))?;
    jiff::fmt::strtime::format(text, &probe)
        .map(drop)
        .map_err(|e| refuse(format!("is not a strftime pattern: {e}")))
}

impl fmt::Display for TimeFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeFormat::Auto => f.write_str("auto"),
            TimeFormat::Epoch(unit) => f.write_str(unit.keyword()),
            TimeFormat::Pattern(p) => f.write_str(p),
        }
    }
}

/// Serializes and deserializes a [`FromStr`] + [`Display`](fmt::Display) value as its text.
macro_rules! serde_as_text {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

serde_as_text!(TimeFormat);
serde_as_text!(TimeZoneName);
serde_as_text!(Delimiter);

/// The time zone of local times in a file: an IANA name (`America/New_York`), `UTC`, or a fixed offset
/// (`+02:00`, `-0500`, `+09`). Checked when parsed; [`TimeZoneName::resolve`] gives jiff's zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeZoneName(String);

impl TimeZoneName {
    /// The name as given.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The zone this name means.
    ///
    /// # Errors
    ///
    /// [`ReadOptionError::TimeZone`] for a name that no database knows or a malformed offset.
    pub fn resolve(&self) -> Result<jiff::tz::TimeZone, ReadOptionError> {
        resolve_zone(&self.0)
    }
}

fn resolve_zone(name: &str) -> Result<jiff::tz::TimeZone, ReadOptionError> {
    let refuse = |reason: &str| ReadOptionError::TimeZone {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    let text = name.trim();
    if text.eq_ignore_ascii_case("utc") || text.eq_ignore_ascii_case("z") {
        return Ok(jiff::tz::TimeZone::UTC);
    }
    if let Some(sign) = text.chars().next().filter(|c| *c == '+' || *c == '-') {
        let digits: String = text[1..].chars().filter(|c| *c != ':').collect();
        let ok = matches!(digits.len(), 2 | 4) && digits.bytes().all(|b| b.is_ascii_digit());
        if !ok {
            return Err(refuse("an offset is +HH, +HHMM or +HH:MM"));
        }
        let hours: i32 = digits[..2].parse().map_err(|_| refuse("bad hours"))?;
        let minutes: i32 = digits.get(2..).unwrap_or("0").parse().unwrap_or(0);
        if hours > 18 || minutes > 59 {
            return Err(refuse("an offset is at most 18 hours and 59 minutes"));
        }
        let seconds = (hours * 3600 + minutes * 60) * if sign == '-' { -1 } else { 1 };
        let offset = jiff::tz::Offset::from_seconds(seconds)
            .map_err(|_| refuse("an offset is at most 18 hours"))?;
        return Ok(jiff::tz::TimeZone::fixed(offset));
    }
    jiff::tz::TimeZone::get(text).map_err(|e| refuse(&e.to_string()))
}

impl FromStr for TimeZoneName {
    type Err = ReadOptionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        resolve_zone(text)?;
        Ok(TimeZoneName(text.trim().to_owned()))
    }
}

impl fmt::Display for TimeZoneName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The field delimiter of a text file: one ASCII character, or `tab`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiter(u8);

impl Delimiter {
    /// The candidates tried when no delimiter is given: comma, semicolon, tab and pipe.
    pub const CANDIDATES: [u8; 4] = [b',', b';', b'\t', b'|'];

    /// The delimiter byte.
    #[must_use]
    pub fn byte(self) -> u8 {
        self.0
    }
}

impl FromStr for Delimiter {
    type Err = ReadOptionError;

    /// `tab` (or `\t` as two characters) for a tab, else one ASCII punctuation character other than a quote,
    /// dot or minus (which appear inside fields), or a space.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.eq_ignore_ascii_case("tab") || text == "\\t" || text == "\t" {
            return Ok(Delimiter(b'\t'));
        }
        match text.as_bytes() {
            [b] if (b.is_ascii_punctuation() || *b == b' ') && !b"\"'.-".contains(b) => {
                Ok(Delimiter(*b))
            }
            _ => Err(ReadOptionError::Delimiter(text.to_owned())),
        }
    }
}

impl fmt::Display for Delimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == b'\t' {
            f.write_str("tab")
        } else {
            write!(f, "{}", char::from(self.0))
        }
    }
}

/// How a data file is read; absent fields keep their defaults (see `docs/DATA.md`, "Reading files"). Stored in
/// [`DatasetConfig::read`](crate::data::DatasetConfig::read), so a checkpoint remembers how its file was read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(default, deny_unknown_fields)]
pub struct ReadOptions {
    /// Which header names the roles read, as `time=Time,price=Close,size=volume_btc` (default: the aliases).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_name = "ROLE=HEADER,...",
            help = "Columns by header name, as time=Time,price=Close,size=volume_btc (roles: time, price, size, \
                    side, open, high, low, close, volume, bid, ask, bid_size, ask_size) [default: found by their \
                    usual names, case-insensitively]"
        )
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub columns: Option<ColumnMap>,
    /// The time column's format (default `auto`).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_name = "FORMAT",
            help = "Time format: auto (ISO-like date-times or epoch integers by magnitude), epoch-s, epoch-ms, \
                    epoch-us, epoch-ns, or a strftime pattern such as '%d.%m.%Y %H:%M:%S%.3f' [default: auto]"
        )
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_format: Option<TimeFormat>,
    /// The zone of local times without an offset (default UTC).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_name = "ZONE",
            help = "Time zone of local times: an IANA name such as America/New_York, UTC, or an offset such as \
                    +02:00 [default: UTC]"
        )
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<TimeZoneName>,
    /// The field delimiter of a text file (default: detected from the first lines).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_name = "CHAR",
            help = "Field delimiter of a text file: , ; | or tab [default: detected from the first lines]"
        )
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<Delimiter>,
    /// Lines skipped before the header (default: the header is searched for in the first lines).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_name = "N",
            allow_negative_numbers = true,
            value_parser = crate::options::cli::whole(crate::limits::SKIP_ROWS),
            help = crate::options::cli::ranged(
                "Lines before the header line, skipped [default: the first line that names every required \
                 column, among the first 16]",
                crate::limits::SKIP_ROWS
            )
        )
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_rows: Option<usize>,
    /// The file's format (default: from the extension).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_enum,
            ignore_case = true,
            value_name = "FORMAT",
            help = "Data file format [default: auto, from the extension]"
        )
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_format: Option<FileFormat>,
}

impl ReadOptions {
    /// Whether every field is absent (the defaults); such options are not written into a dataset config, so
    /// configs and checkpoints from before these options serialize as they did.
    #[must_use]
    pub fn is_default(&self) -> bool {
        *self == ReadOptions::default()
    }

    /// `self` with the fields `other` sets replaced by `other`'s.
    #[must_use]
    pub fn overridden_by(&self, other: &ReadOptions) -> ReadOptions {
        ReadOptions {
            columns: other.columns.clone().or_else(|| self.columns.clone()),
            time_format: other
                .time_format
                .clone()
                .or_else(|| self.time_format.clone()),
            time_zone: other.time_zone.clone().or_else(|| self.time_zone.clone()),
            delimiter: other.delimiter.or(self.delimiter),
            skip_rows: other.skip_rows.or(self.skip_rows),
            file_format: other.file_format.or(self.file_format),
        }
    }

    /// The format of `path` under these options.
    #[must_use]
    pub fn format_of(&self, path: &Path) -> FileFormat {
        self.file_format.unwrap_or(FileFormat::Auto).for_path(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_maps_parse_print_and_refuse() {
        let map: ColumnMap = " size = volume_btc ,time=Time,price=Close".parse().unwrap();
        assert_eq!(map.to_string(), "time=Time,price=Close,size=volume_btc");
        assert_eq!(map.get(Role::Size), Some("volume_btc"));
        assert_eq!(
            "time".parse::<ColumnMap>().unwrap_err().to_string(),
            "columns: `time` is not ROLE=HEADER (for example time=Time,price=Close)"
        );
        assert_eq!(
            "when=Time".parse::<ColumnMap>().unwrap_err().to_string(),
            "columns: unknown role `when`; use time, price, size, side, open, high, low, close, volume, bid, ask, \
             bid_size or ask_size"
        );
        assert_eq!(
            "time=a,time=b"
                .parse::<ColumnMap>()
                .unwrap_err()
                .to_string(),
            "columns: the role `time` is mapped twice"
        );
    }

    #[test]
    fn time_formats_parse_and_refuse() {
        assert_eq!("AUTO".parse::<TimeFormat>().unwrap(), TimeFormat::Auto);
        assert_eq!(
            "epoch-us".parse::<TimeFormat>().unwrap(),
            TimeFormat::Epoch(EpochUnit::Micros)
        );
        let p = "%d.%m.%Y %H:%M:%S%.3f";
        assert_eq!(
            p.parse::<TimeFormat>().unwrap(),
            TimeFormat::Pattern(p.to_owned())
        );
        assert_eq!(
            "epoch-min".parse::<TimeFormat>().unwrap_err().to_string(),
            "time_format: `epoch-min` is neither auto, epoch-s, epoch-ms, epoch-us, epoch-ns nor a strftime \
             pattern (it has no % directive)"
        );
        let e = "%Y-%m-%d %i".parse::<TimeFormat>().unwrap_err().to_string();
        assert!(
            e.starts_with("time_format: `%Y-%m-%d %i` is not a strftime pattern: "),
            "{e}"
        );
    }

    #[test]
    fn time_zones_and_delimiters() {
        assert!("America/New_York".parse::<TimeZoneName>().is_ok());
        assert!("+05:30".parse::<TimeZoneName>().is_ok());
        assert!("-0500".parse::<TimeZoneName>().is_ok());
        let e = "Mars/Olympus"
            .parse::<TimeZoneName>()
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "time_zone: `Mars/Olympus` is not a time zone: use an IANA name such as America/New_York, UTC or \
                 an offset such as +02:00 ("
            ),
            "{e}"
        );
        assert_eq!(
            "+5".parse::<TimeZoneName>().unwrap_err().to_string(),
            "time_zone: `+5` is not a time zone: use an IANA name such as America/New_York, UTC or an offset \
             such as +02:00 (an offset is +HH, +HHMM or +HH:MM)"
        );
        assert_eq!("tab".parse::<Delimiter>().unwrap().byte(), b'\t');
        assert_eq!(";".parse::<Delimiter>().unwrap().byte(), b';');
        assert_eq!(
            "ab".parse::<Delimiter>().unwrap_err().to_string(),
            "delimiter: `ab` is not a delimiter: use one ASCII character such as , ; | or the word tab (not a \
             letter, digit, quote, dot or minus)"
        );
    }

    #[test]
    fn read_options_round_trip_through_toml() {
        let text = "columns = { time = \"Time\", price = \"Close\" }\ntime_format = \"%d.%m.%Y %H:%M:%S%.3f\"\n\
                    time_zone = \"Europe/Zurich\"\ndelimiter = \";\"\nskip_rows = 1\nfile_format = \"csv\"\n";
        let o: ReadOptions = toml::from_str(text).unwrap();
        assert_eq!(o.columns.as_ref().unwrap().get(Role::Price), Some("Close"));
        assert_eq!(o.skip_rows, Some(1));
        let back: ReadOptions = toml::from_str(&toml::to_string(&o).unwrap()).unwrap();
        assert_eq!(back, o);
        assert_eq!(toml::to_string(&ReadOptions::default()).unwrap(), "");
        let e = toml::from_str::<ReadOptions>("columns = { when = \"t\" }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("columns: unknown role `when`"), "{e}");
        let merged = o.overridden_by(&ReadOptions {
            skip_rows: Some(3),
            ..ReadOptions::default()
        });
        assert_eq!(merged.skip_rows, Some(3));
        assert_eq!(merged.delimiter, o.delimiter);
        assert_eq!(
            ReadOptions::default().format_of(Path::new("x/y.PARQUET")),
            FileFormat::Parquet
        );
        assert_eq!(
            ReadOptions::default().format_of(Path::new("x/y.tsv")),
            FileFormat::Csv
        );
    }
}
