//! The quick key: the masked key's shortcut for plainly written texts, one pass over the
//! bytes with no tokenizer and no allocation.
//!
//! The text's bytes are hashed as they are, except each plain literal, which is replaced by
//! a marker of its class: the type a number is cast to (`normalize::number_type`), and for
//! a string whether it is token-like (`constants::is_enum_token`), the two things the
//! masking reads of a literal. Two texts with one quick key are the same text with other
//! values of the same classes in the same places.
//!
//! That alone does not make them lower alike: a literal in a place the masking keeps (a
//! select-list position, a LIKE pattern) changes the lowering. So a quick key is only ever
//! stored by the cache for a text whose every literal the masked key masks, checked when it
//! is stored ([`Quick::confirms`]); a text of the same quick key then has the same tokens,
//! with values of the same classes in the same masked places, and so the same masked key.
//!
//! Only plain spellings are read: digits with at most one decimal point, and `'...'` with
//! `''` as its one escape, each standing apart from identifiers. Anything the tokenizer could
//! read otherwise has no quick key and takes the masked key's path: comments, dollar quotes,
//! `E'...'` and other prefixed strings, backslashes, exponents, `.5`, `1_000`, `$name`,
//! unterminated quotes, and texts longer than [`MAX_LEN`].
//!
//! ## Layout
//! - [`quick`]: the key; [`Quick::confirms`]: the check made before storing one.

use std::cell::RefCell;

use xxhash_rust::xxh3::xxh3_128_with_seed;

use super::super::constants::is_enum_token;
use super::super::normalize::number_type;
use super::Fingerprint;

/// Hashed first: quick keys never mean what exact or masked keys mean.
const DOMAIN: &[u8] = b"indextap/sql/quick/1";

/// Longer texts take the masked key's path (and are rarely repeated templates).
pub(in crate::shape::sql) const MAX_LEN: usize = 4096;

/// In front of a literal's class in the hashed bytes: a byte a UTF-8 text never holds.
const MARK: u8 = 0xFF;

/// A text's quick key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::shape::sql) struct Quick {
    /// The hash of the text with its literals replaced by their classes.
    pub(in crate::shape::sql) key: u128,
}

/// A literal read: its class and its byte range. Collected only to confirm a key, once per
/// template: a cache hit needs the key alone.
#[derive(Debug, Clone, Copy)]
struct Literal {
    class: Class,
    span: (usize, usize),
}

/// What the masking reads of a literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// `INTEGER`, `BIGINT`, `NUMERIC` or uncast (`number_type`).
    Number(u8),
    /// A string, token-like or not.
    String { token_like: bool },
}

impl Class {
    fn tag(self) -> [u8; 2] {
        match self {
            Class::Number(kind) => [b'N', kind],
            Class::String { token_like } => [b'S', u8::from(token_like)],
        }
    }

    /// A literal of the same class, spelled differently from any value it stands for.
    fn representative(self) -> &'static str {
        match self {
            Class::Number(1) => "1",
            Class::Number(2) => "3000000000",
            Class::Number(_) => "1.5",
            Class::String { token_like: true } => "'ZQ'",
            Class::String { token_like: false } => "' '",
        }
    }
}

impl Quick {
    /// Whether this text's quick key may stand for its masked key: it has literals, the
    /// tokenizer found as many as were read here and masked every one, and the text with
    /// every literal replaced by another of its class has the same masked key. `masked` is
    /// the text's own masked key, `probe` computes the masked key of another text. The
    /// literals are read again here, once per template: a cache hit needs the key alone.
    pub(in crate::shape::sql) fn confirms(
        &self,
        text: &str,
        masked: &Fingerprint,
        probe: impl FnOnce(&str) -> Option<Fingerprint>,
    ) -> bool {
        let mut literals = Vec::new();
        let read_again = HASHED.with(|hashed| {
            let mut hashed = hashed.borrow_mut();
            hashed.clear();
            read(text, &mut hashed, 0, Some(&mut literals))
        });
        if read_again.is_none() {
            return false;
        }
        let count = literals.len();
        if count == 0 || masked.literal_count != count || masked.masked_count != count {
            return false;
        }
        let mut other = String::with_capacity(text.len() + 8 * count);
        let mut copied = 0;
        for literal in &literals {
            let (start, end) = literal.span;
            let Some(between) = text.get(copied..start) else {
                return false;
            };
            other.push_str(between);
            other.push_str(literal.class.representative());
            copied = end;
        }
        let Some(rest) = text.get(copied..) else {
            return false;
        };
        other.push_str(rest);
        probe(&other).is_some_and(|found| found.key == masked.key)
    }
}

/// The quick key of `text`, seeded like the other keys; `None` when the text is not
/// written plainly enough (see the module docs).
pub(in crate::shape::sql) fn quick(text: &str, seed: u64) -> Option<Quick> {
    let bytes = text.as_bytes();
    if bytes.len() > MAX_LEN {
        return None;
    }
    HASHED.with(|hashed| {
        let mut hashed = hashed.borrow_mut();
        hashed.clear();
        read(text, &mut hashed, seed, None).map(|key| Quick { key })
    })
}

thread_local! {
    /// The bytes to hash, kept between calls: the analysis threads make one key per query.
    static HASHED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Hashes `text` with its literals replaced by their classes; `literals`, when given, gets
/// each literal read.
fn read(
    text: &str,
    hashed: &mut Vec<u8>,
    seed: u64,
    mut literals: Option<&mut Vec<Literal>>,
) -> Option<u128> {
    let bytes = text.as_bytes();
    let mut push = |slice: &[u8]| -> Option<()> {
        hashed.extend_from_slice(slice);
        Some(())
    };
    push(DOMAIN)?;
    let mut note = |class: Class, span: (usize, usize)| {
        if let Some(literals) = literals.as_deref_mut() {
            literals.push(Literal { class, span });
        }
    };
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        let previous = at
            .checked_sub(1)
            .and_then(|before| bytes.get(before))
            .copied();
        let next = bytes.get(at + 1).copied();
        let end = match byte {
            b'\'' => {
                // A prefix (`E'`, `U&'`, `N'`, `B'`, `X'`) or an adjacent string: not plain.
                if previous.is_some_and(|p| is_word(p) || p == b'&' || p == b'\'') {
                    return None;
                }
                let end = string_end(bytes, at)?;
                if bytes.get(end).is_some_and(|&after| is_word(after)) {
                    return None;
                }
                let content = text.get(at + 1..end - 1)?;
                let class = Class::String {
                    token_like: is_enum_token(content),
                };
                push(&[MARK])?;
                push(&class.tag())?;
                note(class, (at, end));
                at = end;
                continue;
            }
            b'0'..=b'9' => {
                if previous.is_some_and(|p| p == b'.' || p == b'$') {
                    return None;
                }
                let end = number_end(bytes, at)?;
                let number = text.get(at..end)?;
                let kind = match number_type(number) {
                    Some(sqlparser::ast::DataType::Integer(_)) => 1,
                    Some(sqlparser::ast::DataType::BigInt(_)) => 2,
                    Some(_) => 3,
                    None => 0,
                };
                let class = Class::Number(kind);
                push(&[MARK])?;
                push(&class.tag())?;
                note(class, (at, end));
                at = end;
                continue;
            }
            b'"' => quoted_identifier_end(bytes, at)?,
            // `$1` is a placeholder, kept whole; `$$`, `$tag$` and `$name` are not plain.
            b'$' if next.is_some_and(|n| n.is_ascii_digit()) => {
                at + 1
                    + bytes
                        .get(at + 1..)?
                        .iter()
                        .take_while(|b| b.is_ascii_digit())
                        .count()
            }
            b'$' | b'\\' => return None,
            b'-' if next == Some(b'-') => return None,
            b'/' if next == Some(b'*') => return None,
            byte if is_word(byte) => {
                at + bytes
                    .get(at..)?
                    .iter()
                    .take_while(|&&b| is_word(b) || b == b'$')
                    .count()
            }
            _ => at + 1,
        };
        push(bytes.get(at..end)?)?;
        at = end;
    }
    Some(xxh3_128_with_seed(hashed, seed))
}

/// A byte that continues an identifier or keyword (any non-ASCII byte may).
fn is_word(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte >= 0x80
}

/// The end (exclusive) of the `'...'` string starting at `start`, with `''` inside it. A
/// backslash gives up: whether it escapes depends on `standard_conforming_strings`.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    quoted_end(bytes, start, b'\'', Some(b'\\'))
}

/// The end (exclusive) of the `"..."` identifier starting at `start`, with `""` inside it.
fn quoted_identifier_end(bytes: &[u8], start: usize) -> Option<usize> {
    quoted_end(bytes, start, b'"', None)
}

/// The end (exclusive) of the text quoted by `quote` starting at `start`, where a doubled
/// quote stands for itself; `None` at the end of the bytes or at `give_up`.
fn quoted_end(bytes: &[u8], start: usize, quote: u8, give_up: Option<u8>) -> Option<usize> {
    let mut at = start + 1;
    loop {
        let byte = *bytes.get(at)?;
        if byte == quote {
            if bytes.get(at + 1) != Some(&quote) {
                return Some(at + 1);
            }
            at += 2;
        } else if Some(byte) == give_up {
            return None;
        } else {
            at += 1;
        }
    }
}

/// The end (exclusive) of the digits, with at most one `.digits`, starting at `start`; `None`
/// when what follows could make the tokenizer read it otherwise (`1e5`, `1_000`, `1.`, `1x`).
fn number_end(bytes: &[u8], start: usize) -> Option<usize> {
    let digits = |from: usize| {
        bytes.get(from..).map_or(0, |rest| {
            rest.iter().take_while(|b| b.is_ascii_digit()).count()
        })
    };
    let mut end = start + digits(start);
    if bytes.get(end) == Some(&b'.') {
        let fraction = digits(end + 1);
        if fraction == 0 {
            return None;
        }
        end += 1 + fraction;
    }
    match bytes.get(end) {
        Some(&after) if is_word(after) || after == b'.' || after == b'\'' || after == b'$' => None,
        _ => Some(end),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fingerprint;
    use super::*;

    fn key(text: &str) -> Option<u128> {
        quick(text, 7).map(|quick| quick.key)
    }

    #[test]
    fn values_of_one_class_share_a_key() {
        let template = |aid: &str| key(&format!("SELECT abalance FROM a WHERE aid = {aid};"));
        assert_eq!(template("94845"), template("1"));
        assert!(template("1").is_some());
        assert_ne!(template("1"), template("5000000000"));
        assert_ne!(template("1"), template("1.5"));
        assert_eq!(
            key("SELECT * FROM t WHERE a = 'x y' AND b IN (1, 2)"),
            key("SELECT * FROM t WHERE a = 'it''s' AND b IN (3, 4)")
        );
        assert_ne!(
            key("SELECT * FROM t WHERE a = 'x y'"),
            key("SELECT * FROM t WHERE a = 'DONE'")
        );
        // Identifiers, placeholders and quoted names stay as they are.
        assert_ne!(key("SELECT c1 FROM t1"), key("SELECT c2 FROM t1"));
        assert_ne!(key("SELECT $1 FROM t"), key("SELECT $2 FROM t"));
        assert_ne!(key(r#"SELECT "a'1" FROM t"#), key(r#"SELECT "a'2" FROM t"#));
        assert_ne!(key("SELECT 1 FROM t"), key("SELECT  1 FROM t"));
    }

    #[test]
    fn anything_not_written_plainly_has_no_quick_key() {
        for text in [
            "SELECT 1 -- a comment",
            "SELECT /* c */ 1",
            "SELECT $$x$$",
            "SELECT $tag$x$tag$",
            "SELECT E'x'",
            "SELECT U&'x'",
            "SELECT N'x'",
            "SELECT 'a''b'x",
            "SELECT 'a\\'",
            "SELECT 'unterminated",
            "SELECT 1e5",
            "SELECT .5",
            "SELECT 1_000",
            "SELECT 1.",
            "SELECT 1.2.3",
            "SELECT 0x1F",
            "SELECT 5L",
            "SELECT \"unterminated",
        ] {
            assert_eq!(key(text), None, "{text}");
        }
        assert_eq!(key(&"x".repeat(MAX_LEN + 1)), None);
        assert!(key(&"x".repeat(MAX_LEN)).is_some());
    }

    #[test]
    fn it_confirms_only_texts_whose_every_literal_is_masked() {
        let confirms = |text: &str| {
            let found = quick(text, 7).expect("a quick key");
            let masked = fingerprint(text, 7).expect("a masked key");
            found.confirms(text, &masked, |other| fingerprint(other, 7))
        };
        assert!(confirms("SELECT abalance FROM a WHERE aid = 94845;"));
        assert!(confirms(
            "SELECT * FROM t WHERE a IN (1, 'x y') AND b BETWEEN 2 AND 3 LIMIT 5"
        ));
        // A select-list position, an enum constant, a LIKE pattern, strings side by side
        // (joined by PostgreSQL across a line break), no literal at all.
        assert!(!confirms("SELECT a, b FROM t WHERE c = 1 ORDER BY 2"));
        assert!(!confirms("SELECT * FROM t WHERE a = 'x y'\n'z w'"));
        assert!(!confirms("SELECT * FROM t WHERE status = 'DONE' AND a = 1"));
        assert!(!confirms("SELECT * FROM t WHERE a LIKE 'x%' AND b = 1"));
        assert!(!confirms("SELECT * FROM t WHERE a = $1"));
    }
}
