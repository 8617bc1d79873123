//! Enums whose values have stable text codes (reason codes, roles, kinds, …).
//!
//! The codes are stored in the database and printed in `--json`, so each enum needs
//! the same four things: the list of values, `as_str()`, parsing that names what was
//! expected, and serialisation as the code. `stable_codes!` writes them once.

/// A text that is not one of an enum's codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}: expected one of {expected}")]
pub struct UnknownCode {
    /// What the enum is called in words ("role").
    pub what: &'static str,
    /// The text given.
    pub value: String,
    /// The valid codes, comma-separated.
    pub expected: String,
}

/// Declares an enum with stable codes: `ALL`, `as_str()`, `Display`, `FromStr`
/// (trimmed, any case) and `Serialize` as the code.
macro_rules! stable_codes {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $code:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: [$name; [$($code),+].len()] = [$($name::$variant),+];

            /// The stable code.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $code,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::domain::codes::UnknownCode;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let wanted = s.trim().to_ascii_lowercase();
                Self::ALL
                    .into_iter()
                    .find(|v| v.as_str() == wanted)
                    .ok_or_else(|| $crate::domain::codes::UnknownCode {
                        what: $what,
                        value: s.to_owned(),
                        expected: Self::ALL.map(|v| v.as_str()).join(", "),
                    })
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

pub(crate) use stable_codes;
