//! Why a command lowered to nothing, when that is worth counting.
//!
//! The aggregate counts rejections by reason, the snapshot stores the counts under the
//! reason's name, and the admin API exports them as a metric label. A reason read back from
//! a snapshot that this version does not know is kept as read ([`Rejection::Other`]).

use crate::spelling::open;

open! {
    /// Why a command could not be lowered.
    pub enum Rejection {
        /// SQL that sqlparser could not parse.
        SqlParseError => "sql_parse_error",
        /// SQL too deep to walk safely, or that nothing could be made of.
        SqlUnsupported => "sql_unsupported",
        /// A MongoDB query command whose collection is missing or not a string.
        MissingCollection => "missing_collection",
        /// A MongoDB filter MongoDB would not parse (unknown operator, bad operand, ...).
        MalformedFilter => "malformed_filter",
        /// A MongoDB command document that cannot be read, or a statement that is not one.
        MalformedCommand => "malformed_command",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_keep_their_names() {
        for (reason, name) in [
            (Rejection::SqlParseError, "sql_parse_error"),
            (Rejection::SqlUnsupported, "sql_unsupported"),
            (Rejection::MissingCollection, "missing_collection"),
            (Rejection::MalformedFilter, "malformed_filter"),
            (Rejection::MalformedCommand, "malformed_command"),
        ] {
            assert_eq!(reason.as_str(), name);
            assert_eq!(Rejection::parse(name), reason);
            assert!(!matches!(Rejection::parse(name), Rejection::Other(_)));
        }
        assert_eq!(
            Rejection::parse("from_a_newer_version"),
            Rejection::Other("from_a_newer_version".to_owned())
        );
    }
}
