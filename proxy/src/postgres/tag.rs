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
    /// Reads a tag, as the bytes of the message. Tags without a row count (`BEGIN`,
    /// `CREATE TABLE`, `MOVE n`) give `None`.
    pub fn from_tag(tag: &[u8]) -> Option<Self> {
        // The tag of nearly every reply: `SELECT n`, read without trimming or searching.
        if let Some(digits) = tag.strip_prefix(b"SELECT ") {
            if let Some(rows) = count(digits) {
                return Some(CommandRows::Returned(rows));
            }
        }
        let tag = tag.trim_ascii();
        // The command word, told by its first byte: one comparison per tag, not a search for
        // the word's end and a comparison with each command.
        let word = |command: &[u8]| {
            tag.starts_with(command) && tag.get(command.len()).is_some_and(u8::is_ascii_whitespace)
        };
        let rows: fn(u64) -> Self = match tag.first()? {
            b'S' if word(b"SELECT") => CommandRows::Returned,
            b'F' if word(b"FETCH") => CommandRows::Returned,
            b'I' if word(b"INSERT") => CommandRows::Affected,
            b'U' if word(b"UPDATE") => CommandRows::Affected,
            b'D' if word(b"DELETE") => CommandRows::Affected,
            b'M' if word(b"MERGE") => CommandRows::Affected,
            b'C' if word(b"COPY") => CommandRows::Copied,
            _ => return None,
        };
        let count_start = tag.iter().rposition(u8::is_ascii_whitespace)? + 1;
        count(tag.get(count_start..)?).map(rows)
    }
}

/// A row count: decimal digits only, within `u64`.
#[inline]
fn count(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    let mut count = 0u64;
    for &digit in digits {
        let value = digit.wrapping_sub(b'0');
        if value > 9 {
            return None;
        }
        count = count.checked_mul(10)?.checked_add(u64::from(value))?;
    }
    Some(count)
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
            ("SELECT  7 ", CommandRows::Returned(7)),
        ] {
            assert_eq!(CommandRows::from_tag(tag.as_bytes()), Some(rows), "{tag}");
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
            "UPDATE +1",
            "SELECT 99999999999999999999",
        ] {
            assert_eq!(CommandRows::from_tag(tag.as_bytes()), None, "{tag}");
        }
    }
}
