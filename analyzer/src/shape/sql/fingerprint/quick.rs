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
use super::Fingerprint;

/// Hashed first: quick keys never mean what exact or masked keys mean. One byte a UTF-8
/// text never holds, so the hashed bytes are never a text's own (an exact key's) nor a
/// masked key's (which start with its own domain), and short texts stay in xxh3's cheaper
/// lengths (a longer domain cost a 32-byte round on pgbench's statement).
const DOMAIN: &[u8] = &[0xFE];

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

/// What a byte means where a token may start, as [`read`] looks it up. `Word`, `Digit` and
/// `Dollar` come one after another: together they continue a word, one range check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Byte {
    /// Hashed as it is and read past: spaces and punctuation.
    Plain,
    /// Starts an identifier or keyword, hashed as it is (any non-ASCII byte may).
    Word,
    /// Starts a number.
    Digit,
    /// `$`: a placeholder when a digit follows, otherwise not plain.
    Dollar,
    /// `'`: starts a string.
    Quote,
    /// `"`: starts a quoted identifier.
    DoubleQuote,
    /// `-`, `/`: a comment when `-` or `*` follows.
    CommentStart,
    /// `\`: never plain outside a string either.
    Backslash,
}

/// [`Byte`] of each byte, so the common bytes take one load and one compare.
pub(super) static BYTES: [Byte; 256] = {
    let mut table = [Byte::Plain; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = match b {
            b'0'..=b'9' => Byte::Digit,
            b'a'..=b'z' | b'A'..=b'Z' | b'_' | 0x80..=0xFF => Byte::Word,
            b'\'' => Byte::Quote,
            b'"' => Byte::DoubleQuote,
            b'$' => Byte::Dollar,
            b'-' | b'/' => Byte::CommentStart,
            b'\\' => Byte::Backslash,
            _ => Byte::Plain,
        };
        byte += 1;
    }
    table
};

/// The end (exclusive) of the identifier or keyword continued from `from`: its word bytes,
/// digits and `$`. A slice walk, so no byte is bounds-checked twice.
pub(super) fn run_end(bytes: &[u8], from: usize) -> usize {
    let rest = bytes.get(from..).unwrap_or_default();
    from + rest
        .iter()
        .position(|&byte| {
            !matches!(
                BYTES[usize::from(byte)],
                Byte::Word | Byte::Digit | Byte::Dollar
            )
        })
        .unwrap_or(rest.len())
}

/// Bytes that can start anything but plain text or a word: digits, quotes, `$`, comment
/// starts, `\`. [`read`] skips everything else in one tight scan.
static SPECIAL: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = !matches!(BYTES[byte], Byte::Plain | Byte::Word);
        byte += 1;
    }
    table
};

/// The first special byte at or after `from` ([`SPECIAL`]), or the end. Eight bytes are
/// read as one word and their candidates found with a few word operations
/// ([`candidates`]), each candidate then looked up: most of a text is words and spaces,
/// which are no candidates at all. The last few bytes are looked up one by one.
pub(super) fn next_special(bytes: &[u8], from: usize) -> usize {
    let rest = bytes.get(from..).unwrap_or_default();
    let (words, tail) = rest.as_chunks::<8>();
    for (index, word) in words.iter().enumerate() {
        let mut found = candidates(u64::from_le_bytes(*word));
        while found != 0 {
            let offset = (found.trailing_zeros() / 8) as usize;
            if word
                .get(offset)
                .is_some_and(|&byte| SPECIAL[usize::from(byte)])
            {
                return from + 8 * index + offset;
            }
            found &= found - 1;
        }
    }
    let skipped = rest.len() - tail.len();
    from + skipped
        + tail
            .iter()
            .position(|&byte| SPECIAL[usize::from(byte)])
            .unwrap_or(tail.len())
}

/// One in each byte of a word.
const ONES: u64 = u64::from_le_bytes([1; 8]);
/// The high bit of each byte of a word.
const HIGH: u64 = ONES * 0x80;

/// The bytes of `word` (little-endian) that may be special, each marked by its high bit:
/// every byte from `"` to `9` (the special bytes but `\`, and some punctuation) and every
/// `\`. None is missed; a byte marked that is not special is looked up and passed over.
///
/// The range test is exact per byte ("has between" from Bit Twiddling Hacks): each byte's
/// low seven bits, subtracted from or added to a constant below 256, carry into no other
/// byte, and a byte with its high bit set (non-ASCII, a word byte) is masked off. The `\`
/// test (a zero byte after xor) may also mark the byte after a `\` (a borrow), looked up and
/// passed over like the punctuation.
const fn candidates(word: u64) -> u64 {
    const LOW: u64 = ONES * 0x7F;
    // Strictly between these two: `"` (0x22) to `9` (0x39).
    const ABOVE: u64 = b'"' as u64 - 1;
    const BELOW: u64 = b'9' as u64 + 1;
    let low = word & LOW;
    let between = (ONES * (127 + BELOW)).wrapping_sub(low)
        & !word
        & low.wrapping_add(ONES * (127 - ABOVE))
        & HIGH;
    let xored = word ^ (ONES * b'\\' as u64);
    let backslash = xored.wrapping_sub(ONES) & !xored & HIGH;
    between | backslash
}

/// The next byte at or after `from` that can start a literal, a quote, a placeholder or a
/// comment, with its class, or none at the end. A digit or `$` right after a word byte
/// continues that word (`t1`, `a$1`), as the tokenizer reads it, and is read past.
#[inline]
pub(super) fn next_start(bytes: &[u8], mut from: usize) -> Option<(usize, u8, Byte)> {
    loop {
        let at = next_special(bytes, from);
        let byte = *bytes.get(at)?;
        let class = BYTES[usize::from(byte)];
        let in_word = at
            .checked_sub(1)
            .and_then(|before| bytes.get(before))
            .is_some_and(|&previous| BYTES[usize::from(previous)] == Byte::Word);
        match class {
            Byte::Digit | Byte::Dollar if in_word => from = run_end(bytes, at + 1),
            _ => return Some((at, byte, class)),
        }
    }
}

/// Hashes `text` with its literals replaced by their classes; `literals`, when given, gets
/// each literal read. The bytes between literals are hashed as they are, so they are copied
/// in one piece each rather than token by token.
///
/// Plain bytes and words are skipped to the next special byte ([`next_special`]): only
/// there can a literal, a quote, a placeholder or a comment start. A digit or `$` right
/// after a word byte continues that word (`t1`, `a$1`), as the tokenizer reads it.
fn read(
    text: &str,
    hashed: &mut Vec<u8>,
    seed: u64,
    mut literals: Option<&mut Vec<Literal>>,
) -> Option<u128> {
    let bytes = text.as_bytes();
    hashed.extend_from_slice(DOMAIN);
    // The start of the bytes not hashed yet: everything before it is in `hashed`.
    let mut copied = 0;
    let mut literal = |class: Class, span: (usize, usize), copied: &mut usize| {
        hashed.extend_from_slice(&bytes[*copied..span.0]);
        let [kind, detail] = class.tag();
        hashed.extend_from_slice(&[MARK, kind, detail]);
        *copied = span.1;
        if let Some(literals) = literals.as_deref_mut() {
            literals.push(Literal { class, span });
        }
    };
    let previous = |at: usize| at.checked_sub(1).map(|before| bytes[before]);
    let mut at = 0;
    while let Some((start, byte, class)) = next_start(bytes, at) {
        at = start;
        match class {
            // Never returned by `next_start`; read past all the same.
            Byte::Plain | Byte::Word => at += 1,
            Byte::Quote => {
                // A prefix (`E'`, `U&'`, `N'`, `B'`, `X'`) or an adjacent string: not plain.
                if previous(at).is_some_and(|p| is_word(p) || p == b'&' || p == b'\'') {
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
                literal(class, (at, end), &mut copied);
                at = end;
            }
            Byte::Digit => {
                if previous(at).is_some_and(|p| p == b'.' || p == b'$') {
                    return None;
                }
                let (end, kind) = number(bytes, at)?;
                literal(Class::Number(kind), (at, end), &mut copied);
                at = end;
            }
            Byte::DoubleQuote => at = quoted_identifier_end(bytes, at)?,
            // `$1` is a placeholder, kept whole; `$$`, `$tag$` and `$name` are not plain.
            Byte::Dollar => {
                at += 1;
                if !bytes.get(at).is_some_and(u8::is_ascii_digit) {
                    return None;
                }
                while bytes.get(at).is_some_and(u8::is_ascii_digit) {
                    at += 1;
                }
            }
            Byte::CommentStart => {
                if bytes.get(at + 1) == Some(&if byte == b'-' { b'-' } else { b'*' }) {
                    return None;
                }
                at += 1;
            }
            Byte::Backslash => return None,
        }
    }
    hashed.extend_from_slice(&bytes[copied..]);
    Some(xxh3_128_with_seed(hashed, seed))
}

/// A byte that continues an identifier or keyword (any non-ASCII byte may).
fn is_word(byte: u8) -> bool {
    matches!(BYTES[usize::from(byte)], Byte::Word | Byte::Digit)
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
pub(super) fn quoted_end(
    bytes: &[u8],
    start: usize,
    quote: u8,
    give_up: Option<u8>,
) -> Option<usize> {
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

/// The end (exclusive) of the digits, with at most one `.digits`, starting at `start`, and
/// the class `number_type` gives them (1 `INTEGER`, 2 `BIGINT`, 3 `NUMERIC`), worked out on
/// the way; `None` when what follows could make the tokenizer read it otherwise (`1e5`,
/// `1_000`, `1.`, `1x`).
fn number(bytes: &[u8], start: usize) -> Option<(usize, u8)> {
    let rest = bytes.get(start..).unwrap_or_default();
    let digits = rest
        .iter()
        .position(|byte| !byte.is_ascii_digit())
        .unwrap_or(rest.len());
    let mut end = start + digits;
    // Nine digits always fit an `INTEGER`: only longer numbers need their value.
    let mut kind = if digits <= 9 {
        1
    } else {
        integer_kind(&rest[..digits])
    };
    if bytes.get(end) == Some(&b'.') {
        let fraction = bytes.get(end + 1..).map_or(0, |rest| {
            rest.iter().take_while(|b| b.is_ascii_digit()).count()
        });
        if fraction == 0 {
            return None;
        }
        end += 1 + fraction;
        kind = 3;
    }
    match bytes.get(end) {
        Some(&after) if is_word(after) || after == b'.' || after == b'\'' || after == b'$' => None,
        _ => Some((end, kind)),
    }
}

/// The class `number_type` gives the digits `digits`: 1 `INTEGER`, 2 `BIGINT`, 3 `NUMERIC`.
fn integer_kind(digits: &[u8]) -> u8 {
    // Saturates past `i64::MAX`: only whether it fits matters.
    let value = digits.iter().fold(0_u64, |value, &digit| {
        value
            .saturating_mul(10)
            .saturating_add(u64::from(digit - b'0'))
    });
    if value <= i32::MAX as u64 {
        1
    } else if value <= i64::MAX as u64 {
        2
    } else {
        3
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::normalize::number_type;
    use super::super::fingerprint;
    use super::*;

    fn key(text: &str) -> Option<u128> {
        quick(text, 7).map(|quick| quick.key)
    }

    /// The bytes the key hashes, spelled out token by token as the first version did: the
    /// oracle the one-pass reading must agree with, byte for byte.
    fn spelled_out(text: &str) -> Option<Vec<u8>> {
        let bytes = text.as_bytes();
        let mut hashed = DOMAIN.to_vec();
        let mut at = 0;
        while let Some(&byte) = bytes.get(at) {
            let previous = at.checked_sub(1).map(|before| bytes[before]);
            let next = bytes.get(at + 1).copied();
            let end = match byte {
                b'\'' => {
                    if previous.is_some_and(|p| is_word(p) || p == b'&' || p == b'\'') {
                        return None;
                    }
                    let end = string_end(bytes, at)?;
                    if bytes.get(end).is_some_and(|&after| is_word(after)) {
                        return None;
                    }
                    let token_like = is_enum_token(text.get(at + 1..end - 1)?);
                    hashed.push(MARK);
                    hashed.extend_from_slice(&Class::String { token_like }.tag());
                    at = end;
                    continue;
                }
                b'0'..=b'9' => {
                    if previous.is_some_and(|p| p == b'.' || p == b'$') {
                        return None;
                    }
                    let mut end = at
                        + bytes[at..]
                            .iter()
                            .take_while(|b| b.is_ascii_digit())
                            .count();
                    if bytes.get(end) == Some(&b'.') {
                        let fraction = bytes[end + 1..]
                            .iter()
                            .take_while(|b| b.is_ascii_digit())
                            .count();
                        if fraction == 0 {
                            return None;
                        }
                        end += 1 + fraction;
                    }
                    if bytes.get(end).is_some_and(|&after| {
                        is_word(after) || after == b'.' || after == b'\'' || after == b'$'
                    }) {
                        return None;
                    }
                    let kind = match number_type(&text[at..end]) {
                        Some(sqlparser::ast::DataType::Integer(_)) => 1,
                        Some(sqlparser::ast::DataType::BigInt(_)) => 2,
                        Some(_) => 3,
                        None => 0,
                    };
                    hashed.push(MARK);
                    hashed.extend_from_slice(&Class::Number(kind).tag());
                    at = end;
                    continue;
                }
                b'"' => quoted_identifier_end(bytes, at)?,
                b'$' if next.is_some_and(|n| n.is_ascii_digit()) => {
                    at + 1
                        + bytes[at + 1..]
                            .iter()
                            .take_while(|b| b.is_ascii_digit())
                            .count()
                }
                b'$' | b'\\' => return None,
                b'-' if next == Some(b'-') => return None,
                b'/' if next == Some(b'*') => return None,
                byte if is_word(byte) => {
                    at + bytes[at..]
                        .iter()
                        .take_while(|&&b| is_word(b) || b == b'$')
                        .count()
                }
                _ => at + 1,
            };
            hashed.extend_from_slice(&bytes[at..end]);
            at = end;
        }
        Some(hashed)
    }

    fn agrees_with_the_spelled_out_bytes(text: &str) {
        let expected = spelled_out(text).map(|hashed| xxh3_128_with_seed(&hashed, 7));
        assert_eq!(key(text), expected, "{text:?}");
        // The literals the confirmation reads are the ones the key replaced.
        let mut literals = Vec::new();
        let read_again = read(text, &mut Vec::new(), 7, Some(&mut literals));
        assert_eq!(read_again, expected, "{text:?}");
    }

    #[test]
    fn it_hashes_the_bytes_the_token_by_token_reading_spelled_out() {
        for text in [
            "SELECT abalance FROM pgbench_accounts WHERE aid = 94845;",
            "SELECT * FROM t WHERE a = 'x y' AND b IN (1, 2.5, 2147483647, 2147483648)",
            "SELECT 9223372036854775807, 9223372036854775808, 000000000000000000001",
            "SELECT 99999999999999999999999999999 FROM t WHERE x = 'DONE' AND y = 'it''s'",
            "SELECT a$1, $12, \"q\"\"x\" FROM t1 WHERE c = -1 AND d = 4/2 AND é = 'é'",
            "UPDATE t SET a = a - 1 WHERE b = 'x'||'y'",
            "SELECT 1.5.5",
            "",
        ] {
            agrees_with_the_spelled_out_bytes(text);
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_hashes_what_the_token_by_token_reading_spelled_out(
            text in "[a-zA-Z0-9_ $'\".,;:()=<>*/\\&+é-]{0,40}"
        ) {
            agrees_with_the_spelled_out_bytes(&text);
        }

        /// Longer texts of SQL-like tokens, which mostly read as plain: words running into
        /// digits and `$`, literals after words and punctuation, across the eight-byte
        /// chunks the scan skips at once.
        #[test]
        fn long_texts_hash_what_the_token_by_token_reading_spelled_out(
            text in "([a-zA-Z_é]{1,9}|[0-9]{1,11}(\\.[0-9]{1,2})?|'[a-z' ]{0,6}'|\\$[0-9]{1,2}|\"[a-z]{0,3}\"|[ ,=().*;<>&/-]{1,2}){0,30}"
        ) {
            agrees_with_the_spelled_out_bytes(&text);
        }

        #[test]
        fn a_number_gets_the_class_number_type_gives_it(digits in "[0-9]{1,40}") {
            let expected = match number_type(&digits) {
                Some(sqlparser::ast::DataType::Integer(_)) => 1,
                Some(sqlparser::ast::DataType::BigInt(_)) => 2,
                _ => 3,
            };
            proptest::prop_assert_eq!(number(digits.as_bytes(), 0), Some((digits.len(), expected)));
        }
    }

    #[test]
    fn every_special_byte_is_a_candidate_wherever_it_stands() {
        for byte in 0..=u8::MAX {
            for position in 0..8 {
                // Among plain bytes, and among other special bytes (a `\\` before it borrows).
                for filler in [b'a', b' ', 0xC3, b'\\', b'0'] {
                    let mut word = [filler; 8];
                    word[position] = byte;
                    let marked = (candidates(u64::from_le_bytes(word)) >> (8 * position + 7)) & 1;
                    if SPECIAL[usize::from(byte)] {
                        assert_eq!(marked, 1, "{byte:#x} at {position} among {filler:#x}");
                    }
                }
            }
        }
        // Words and spaces, the bulk of a text, are no candidates: the scan skips them whole.
        assert_eq!(candidates(u64::from_le_bytes(*b"SELECT a")), 0);
        assert_eq!(candidates(u64::from_le_bytes(*b"_\xc3\xa9 FROM")), 0);
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
        // A text without values is not hashed as the exact key hashes it.
        let plain = "SELECT a FROM t";
        assert_ne!(key(plain), Some(xxh3_128_with_seed(plain.as_bytes(), 7)));
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
