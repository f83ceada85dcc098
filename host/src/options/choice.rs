//! Settings that take one of a fixed set of names (`optimizer = "adam"`, `--backend arm`), defined once for the
//! pipeline TOML, config files and the command line.
//!
//! [`choice!`](crate::choice) declares such an enum with its canonical names and aliases; from that one list come
//! its `FromStr` (case-insensitive, with an error that names every allowed value), `Display` (the canonical name),
//! serde's `Serialize` and `Deserialize` (as the name) and, with the `cli` feature, clap's `ValueEnum`.

use crate::limits::excerpt;

/// A name that is not one of a setting's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{}`; use {}", excerpt(.value), or_list(.allowed))]
pub struct ChoiceError {
    /// The text as given.
    pub value: String,
    /// The canonical names the setting takes.
    pub allowed: &'static [&'static str],
}

/// `a, b or c`.
fn or_list(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Declares a setting with a fixed set of values: `Variant = "name" | "alias" ...`, each with its doc comment (the
/// first line is the value's help in `--help`).
#[macro_export]
#[doc(hidden)]
macro_rules! choice {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[doc = $doc:literal])* $variant:ident = $canonical:literal $(| $alias:literal)* ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[doc = $doc])* $variant ),+
        }

        impl $name {
            /// Every value, in the order `--help` lists them.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];
            /// The canonical names, as config files and `--help` write them.
            pub const NAMES: &'static [&'static str] = &[$($canonical),+];

            /// The canonical name.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $canonical),+
                }
            }

            /// Other names accepted for this value (PyTorch's, or older spellings).
            pub fn aliases(self) -> &'static [&'static str] {
                match self {
                    $(Self::$variant => &[$($alias),*]),+
                }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::options::ChoiceError;

            /// Reads a canonical name or an alias, ignoring ASCII case.
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| {
                        v.name().eq_ignore_ascii_case(text)
                            || v.aliases().iter().any(|a| a.eq_ignore_ascii_case(text))
                    })
                    .ok_or_else(|| $crate::options::ChoiceError {
                        value: text.to_string(),
                        allowed: Self::NAMES,
                    })
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(d)?;
                text.parse().map_err(<D::Error as ::serde::de::Error>::custom)
            }
        }

        #[cfg(feature = "cli")]
        impl ::clap::ValueEnum for $name {
            fn value_variants<'a>() -> &'a [Self] {
                Self::ALL
            }

            fn to_possible_value(&self) -> Option<::clap::builder::PossibleValue> {
                let help: &[&str] = match self {
                    $(Self::$variant => &[$($doc),*]),+
                };
                let mut value = ::clap::builder::PossibleValue::new(self.name()).aliases(self.aliases());
                if let Some(first) = help.first() {
                    value = value.help(first.trim());
                }
                Some(value)
            }
        }
    };
}
