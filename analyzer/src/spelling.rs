//! Enums that travel as their spelling: the contracts between stages.
//!
//! Shapes, snapshots and advice are JSON, and a shape's id is the hash of that JSON, so each
//! of these enums serialises as exactly the string the stages wrote before they were typed
//! (`"$eq"`, `"findAndModify"`, `"sql_parse_error"`), and compares and sorts as that string,
//! so that sorted lists (the leaves of an `AND`, a snapshot's maps) keep their order and
//! their bytes.
//!
//! - [`closed!`]: a fixed set of spellings, `Copy`, for what one lowering writes.
//! - [`open!`]: the same plus `Other(String)`, for what is read back from a file that a newer
//!   (or older) version may have written: an unknown spelling is kept as read, never folded
//!   into another value.

/// A `Copy` enum of fixed spellings: `as_str`, `parse`, `Display`, and ordering by spelling.
macro_rules! closed {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$variant_meta])* $variant, )+
        }

        impl $name {
            /// Every variant.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The spelling.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }

            /// The variant spelled `text`, if any.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $( $text => Some($name::$variant), )+
                    _ => None,
                }
            }
        }

        $crate::spelling::spelling_order!($name);
    };
}

/// An enum of known spellings plus `Other(String)`, serialised as its spelling. Equality,
/// hashing and order are those of the spelling, so `Other("x")` built by hand equals the
/// known variant spelled `x`.
macro_rules! open {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        $vis enum $name {
            $( $(#[$variant_meta])* $variant, )+
            /// A spelling this version does not know, kept as it was read.
            Other(String),
        }

        impl $name {
            /// The spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $text, )+
                    $name::Other(text) => text,
                }
            }

            /// The variant spelled `text`: a known one, or [`Self::Other`].
            pub fn parse(text: &str) -> Self {
                match text {
                    $( $text => $name::$variant, )+
                    other => $name::Other(other.to_owned()),
                }
            }
        }

        $crate::spelling::spelled_traits!($name);
    };
}

/// Comparison, hashing, `Display`, `From<&str>` and serde, all through `as_str` / `parse`.
macro_rules! spelled_traits {
    ($name:ident) => {
        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.as_str() == other.as_str()
            }
        }

        impl Eq for $name {}

        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.as_str().hash(state)
            }
        }

        $crate::spelling::spelling_order!($name);

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                Self::parse(text)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Ok(Self::parse(&text))
            }
        }
    };
}

/// Order and `Display` by spelling, for both kinds.
macro_rules! spelling_order {
    ($name:ident) => {
        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        impl Ord for $name {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                self.as_str().cmp(other.as_str())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use {closed, open, spelled_traits, spelling_order};
