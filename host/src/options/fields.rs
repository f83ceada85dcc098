//! Flat TOML tables read into several option structs: a pipeline stage's table holds its own keys (`from`, `arch`)
//! beside those of the shared [`TrainOptions`](super::TrainOptions) or [`QuantOptions`](super::QuantOptions).
//!
//! serde's `flatten` would do this but cannot refuse unknown keys, so each struct keeps
//! `#[serde(deny_unknown_fields)]` and gets its own keys out of the table ([`part`]); [`check_known`] first refuses
//! a key no struct has, with serde's wording and every allowed key.

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

/// The field names a plain `#[derive(Deserialize)]` struct reads, in declaration order.
///
/// serde's derive hands them to `Deserializer::deserialize_struct`; a deserializer that only records them and
/// stops reads them without a value.
pub fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut names = None;
    // The probe always stops with an error once it has the names; the result is not needed.
    let _ = T::deserialize(FieldProbe(&mut names));
    names.unwrap_or(&[])
}

struct FieldProbe<'a>(&'a mut Option<&'static [&'static str]>);

#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field probe")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Stop
    }
}

impl<'de> Deserializer<'de> for FieldProbe<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        *self.0 = Some(fields);
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// Refuses a key of `table` that is in none of `groups`, in serde's words: ``unknown field `x`, expected one of
/// `a`, `b` ``, listing every group's keys in order.
pub fn check_known(table: &toml::Table, groups: &[&[&str]]) -> Result<(), String> {
    let allowed: Vec<&str> = groups.iter().flat_map(|g| g.iter().copied()).collect();
    let Some(key) = table.keys().find(|k| !allowed.contains(&k.as_str())) else {
        return Ok(());
    };
    let quoted: Vec<String> = allowed.iter().map(|a| format!("`{a}`")).collect();
    let expected = match quoted.as_slice() {
        [] => "there are no fields".to_string(),
        [one] => format!("expected {one}"),
        [a, b] => format!("expected {a} or {b}"),
        all => format!("expected one of {}", all.join(", ")),
    };
    Err(format!(
        "unknown field `{}`, {expected}",
        crate::limits::excerpt(key)
    ))
}

/// The keys of `table` that `T` reads, deserialized as a `T`.
///
/// # Errors
///
/// The deserializer's error: a wrong type or value, naming the key (see [`value_message`]).
pub fn part<T: DeserializeOwned>(table: &toml::Table) -> Result<T, toml::de::Error> {
    let names = field_names::<T>();
    let own: toml::Table = table
        .iter()
        .filter(|(k, _)| names.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    T::deserialize(toml::Value::Table(own))
}

/// A deserialization error from a `toml::Value` (which has no line to show), split into the key it is about
/// (toml puts it on a last line ``in `key` ``) and the reason.
pub fn value_error(e: &toml::de::Error) -> (Option<String>, String) {
    let full = e.to_string();
    let text = full.trim_end();
    match text.rsplit_once('\n') {
        Some((reason, last)) if last.starts_with("in `") && last.ends_with('`') => (
            Some(last["in `".len()..last.len() - 1].to_string()),
            crate::limits::excerpt_lines(reason.trim_end()),
        ),
        _ => (None, crate::limits::excerpt_lines(text)),
    }
}

/// [`value_error`] as tickq words it: ``field `key`: reason``.
pub fn value_message(e: &toml::de::Error) -> String {
    match value_error(e) {
        (Some(key), reason) => format!("field `{key}`: {reason}"),
        (None, reason) => reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Pair {
        first: Option<u32>,
        second: Option<String>,
    }

    #[test]
    fn field_names_reads_the_struct_in_order() {
        assert_eq!(field_names::<Pair>(), ["first", "second"]);
    }

    #[test]
    fn unknown_keys_are_refused_with_every_allowed_key() {
        let table: toml::Table = toml::from_str("first = 1\nthird = 3\n").unwrap();
        assert_eq!(
            check_known(&table, &[&["arch"], field_names::<Pair>()]).unwrap_err(),
            "unknown field `third`, expected one of `arch`, `first`, `second`"
        );
        let table: toml::Table = toml::from_str("first = 1\narch = \"x\"\n").unwrap();
        assert!(check_known(&table, &[&["arch"], field_names::<Pair>()]).is_ok());
    }

    #[test]
    fn a_part_takes_only_its_keys_and_names_a_bad_one() {
        let table: toml::Table = toml::from_str("arch = \"x\"\nfirst = 1\n").unwrap();
        let pair: Pair = part(&table).unwrap();
        assert_eq!(pair.first, Some(1));
        let table: toml::Table = toml::from_str("arch = \"x\"\nfirst = \"one\"\n").unwrap();
        let err = part::<Pair>(&table).unwrap_err();
        assert_eq!(
            value_message(&err),
            "field `first`: invalid type: string \"one\", expected u32"
        );
    }
}
