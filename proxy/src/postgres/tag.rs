//! CommandComplete tags: how many rows a statement returned or wrote.
//!
//! The tag is a command word and counts (`SELECT 5`, `INSERT 0 3`, `UPDATE 2`). It holds no
//! value from the statement, only numbers, and only the last number is read.

/// The row count a CommandComplete tag reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandRows {
    /// Rows sent to the client: `SELECT n`, `FETCH n`.
    Returned(u64),
    /// Rows written: `INSERT oid n`, `UPDATE n`, `DELETE n`, `MERGE n`.
    Affected(u64),
    /// Rows copied: `COPY n`. Which way depends on the COPY's direction.
    Copied(u64),
}

impl CommandRows {
    /// Reads a tag. Tags without a row count (`BEGIN`, `CREATE TABLE`, `MOVE n`) give `None`.
    pub fn from_tag(tag: &str) -> Option<Self> {
        let mut words = tag.split_ascii_whitespace();
        let command = words.next()?;
        let count = words.next_back()?.parse::<u64>().ok()?;
        match command {
            "SELECT" | "FETCH" => Some(CommandRows::Returned(count)),
            "INSERT" | "UPDATE" | "DELETE" | "MERGE" => Some(CommandRows::Affected(count)),
            "COPY" => Some(CommandRows::Copied(count)),
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn tags_give_rows() {
        for (tag, rows) in [
            ("SELECT 5", CommandRows::Returned(5)),
            ("FETCH 100", CommandRows::Returned(100)),
            ("INSERT 0 3", CommandRows::Affected(3)),
            ("UPDATE 12", CommandRows::Affected(12)),
            ("DELETE 0", CommandRows::Affected(0)),
            ("MERGE 7", CommandRows::Affected(7)),
            ("COPY 1000", CommandRows::Copied(1000)),
        ] {
            assert_eq!(CommandRows::from_tag(tag), Some(rows), "{tag}");
        }
    }

    #[test]
    fn tags_without_rows() {
        for tag in [
            "BEGIN",
            "CREATE TABLE",
            "MOVE 3",
            "SELECT",
            "SELECT x",
            "",
            "UPDATE -1",
        ] {
            assert_eq!(CommandRows::from_tag(tag), None, "{tag}");
        }
    }
}
