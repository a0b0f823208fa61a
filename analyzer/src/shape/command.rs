//! What a shape's statement does: `find`, `aggregate`, `select`, `update`, ...
//!
//! Part of the canonical JSON, so it serialises as the name the lowering has always written.
//! A name this version does not write (a newer version's, in a snapshot) stays as read.

use crate::spelling::open;

open! {
    /// The command or statement kind of a shape.
    pub enum Command {
        /// MongoDB `find`.
        Find => "find",
        /// MongoDB `aggregate` (its leading `$match`, `$sort`, `$limit`, `$skip`).
        Aggregate => "aggregate",
        /// MongoDB `count`.
        Count => "count",
        /// MongoDB `distinct`.
        Distinct => "distinct",
        /// MongoDB `findAndModify`.
        FindAndModify => "findAndModify",
        /// The collection a MongoDB `$lookup` reads, probed per document.
        Lookup => "lookup",
        /// SQL `SELECT`, and every table a statement only reads.
        Select => "select",
        /// MongoDB `update`, SQL `UPDATE`: the filter finds the rows to change.
        Update => "update",
        /// MongoDB `delete`, SQL `DELETE`.
        Delete => "delete",
        /// An insert: it has no filter, only write load.
        Insert => "insert",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_read_back_and_unknown_ones_stay() {
        let find: Command = serde_json::from_str(r#""findAndModify""#).expect("parses");
        assert_eq!(find, Command::FindAndModify);
        let newer: Command = serde_json::from_str(r#""bulkWrite""#).expect("parses");
        assert_eq!(newer, Command::Other("bulkWrite".to_owned()));
        assert_eq!(
            serde_json::to_string(&newer).expect("serialises"),
            r#""bulkWrite""#
        );
    }
}
