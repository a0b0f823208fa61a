//! The masked key: one hash for every text that differs from another only in value
//! literals, so that a simple-protocol statement with new values (`WHERE aid = 94845`) is a
//! cache hit rather than a parse, like pg_stat_statements' query fingerprint.
//!
//! Sharing a key means sharing a [`Lowering`](crate::shape::Lowering), so the masking may
//! only hide a literal whose value can never change the lowering. Values do change it in
//! these places (see `constants`, `classify`, `operand`, `clauses`, `normalize`):
//! enum constants compared with `=` or listed in `IN (...)`; LIKE patterns (prefix or
//! infix); JSON keys after `->`, `->>`, `#>`, `#>>`; token-like arguments of indexable
//! functions (`date_trunc('day', ts)`) and `AT TIME ZONE 'UTC'`; select-list positions
//! (`ORDER BY 2`); and the type of every number, since the normalized statement casts a
//! number's parameter to what PostgreSQL makes of it (`INTEGER`, `BIGINT`, `NUMERIC`).
//!
//! ## The rule
//! The text is tokenized by sqlparser (the tokens the parser will see) and the token stream
//! hashed, with these tokens replaced by a marker of their kind:
//! - a plain single-quoted string that is not token-like (`^[A-Za-z][A-Za-z0-9_]{0,31}$`,
//!   the widest pattern any kept literal is tested against): marker "string";
//! - a number: marker "number" with the type the normalized statement casts it to;
//!
//! and only where the token just before is one of:
//! - a comparison operator: `=`, `<>`, `!=`, `<`, `>`, `<=`, `>=`;
//! - `BETWEEN`, or the `AND` that closes a `BETWEEN` at the same parenthesis level;
//! - `LIMIT` or `OFFSET`;
//! - the `(` or a `,` of an `IN (...)` list whose items so far are single tokens, when the
//!   literal is itself a whole item (followed by `,` or `)`).
//!
//! None of these places is one of the value-dependent ones above, except enum constants,
//! which are token-like and so never masked. Every other token, literals of other kinds
//! (`E'...'`, dollar-quoted, `N'...'`, `X'...'`) and literals anywhere else, is hashed as
//! it is: that only makes the key finer. An `IN` list's length stays in the key.
//!
//! Whitespace is hashed too, since the parser reads it in a few places (`:name` is a
//! placeholder, `: name` an error); texts of one template have the same layout anyway.
//! Comments are hashed by kind only (sqlcommenter trace ids differ per request), except a
//! comment holding a `+`, which may be an optimizer hint the parser keeps, hashed whole.
//!
//! Each token goes into the hash behind a tag byte, and sqlparser's derived `Hash` of a
//! token is prefix-free, so two different streams never feed the hasher the same bytes.
//!
//! ## Layout
//! - this file: [`fingerprint`], the hashed stream and the markers.
//! - `scanner`: which literals sit in a masked place.
//! - `quick`: the shortcut for plainly written texts, without the tokenizer.
//! - `precut`: long plain literals cut to their ends before the masked key or the lowering
//!   tokenizes the text (its scanner is the quick key's).

mod precut;
mod quick;
mod scanner;

pub(super) use precut::precut;
pub(super) use quick::quick;

use std::hash::{Hash, Hasher};

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};
use xxhash_rust::xxh3::Xxh3;

use scanner::Scanner;

/// Hashed first, so a masked key and an exact key of the same text never mean the same.
const DOMAIN: &[u8] = b"indextap/sql/masked/1";

/// Tag bytes in front of each element of the hashed stream.
const TOKEN: u8 = 0;
const STRING: u8 = 1;
const NUMBER: u8 = 2;
const COMMENT: u8 = 3;

/// A text's masked key, and the literals it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fingerprint {
    /// The hash of the masked token stream.
    pub(super) key: u128,
    /// Any literal, masked or not: a text without one repeats verbatim.
    pub(super) literals: bool,
    /// Literals of every kind.
    pub(super) literal_count: usize,
    /// Literals replaced by their kind in the key.
    pub(super) masked_count: usize,
}

/// The masked key of `text` (see the module docs), seeded like the exact key; `None` when
/// the text does not tokenize.
pub(super) fn fingerprint(text: &str, seed: u64) -> Option<Fingerprint> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, text)
        .tokenize()
        .ok()?;
    let mut hasher = Xxh3::with_seed(seed);
    hasher.update(DOMAIN);
    let mut scanner = Scanner::default();
    let mut literal_count = 0;
    let mut masked_count = 0;
    for (index, token) in tokens.iter().enumerate() {
        if let Token::Whitespace(whitespace) = token {
            hash_whitespace(&mut hasher, token, whitespace);
            continue;
        }
        literal_count += usize::from(is_literal(token));
        let next = || {
            tokens
                .get(index + 1..)
                .and_then(|rest| rest.iter().find(|token| !is_whitespace(token)))
        };
        let masked = scanner.mask(token, next);
        masked_count += usize::from(masked.is_some());
        match masked {
            Some(Masked::String) => hasher.write_u8(STRING),
            Some(Masked::Number(cast, long)) => {
                hasher.write_u8(NUMBER);
                cast.hash(&mut hasher);
                hasher.write_u8(u8::from(long));
            }
            None => {
                hasher.write_u8(TOKEN);
                token.hash(&mut hasher);
            }
        }
        scanner.advance(token);
    }
    Some(Fingerprint {
        key: hasher.digest128(),
        literals: literal_count > 0,
        literal_count,
        masked_count,
    })
}

/// What a masked literal is replaced by.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Masked {
    String,
    /// The type the normalized statement casts the number to (`normalize::number_type`), and
    /// sqlparser's `L` suffix.
    Number(Option<sqlparser::ast::DataType>, bool),
}

/// A number or a string literal of any kind (not `$1`, `TRUE` or `NULL`).
fn is_literal(token: &Token) -> bool {
    matches!(
        token,
        Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedByteStringLiteral(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::TripleSingleQuotedString(_)
            | Token::TripleDoubleQuotedString(_)
            | Token::TripleSingleQuotedByteStringLiteral(_)
            | Token::TripleDoubleQuotedByteStringLiteral(_)
            | Token::SingleQuotedRawStringLiteral(_)
            | Token::DoubleQuotedRawStringLiteral(_)
            | Token::TripleSingleQuotedRawStringLiteral(_)
            | Token::TripleDoubleQuotedRawStringLiteral(_)
            | Token::DollarQuotedString(_)
            | Token::NationalStringLiteral(_)
            | Token::QuoteDelimitedStringLiteral(_)
            | Token::NationalQuoteDelimitedStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
    )
}

fn is_whitespace(token: &Token) -> bool {
    matches!(token, Token::Whitespace(_))
}

fn hash_whitespace(hasher: &mut Xxh3, token: &Token, whitespace: &Whitespace) {
    let comment = match whitespace {
        Whitespace::SingleLineComment { comment, .. } => comment,
        Whitespace::MultiLineComment(comment) => comment,
        Whitespace::Space | Whitespace::Tab | Whitespace::Newline => {
            hasher.write_u8(TOKEN);
            token.hash(hasher);
            return;
        }
    };
    if comment.contains('+') {
        hasher.write_u8(TOKEN);
        token.hash(hasher);
    } else {
        hasher.write_u8(COMMENT);
        hasher.write_u8(u8::from(matches!(
            whitespace,
            Whitespace::MultiLineComment(_)
        )));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> u128 {
        fingerprint(text, 7).map_or(0, |fingerprint| fingerprint.key)
    }

    #[test]
    fn numbers_share_a_key_only_with_numbers_the_normalizer_casts_alike() {
        let key_of = |number: &str| key(&format!("SELECT * FROM t WHERE a = {number}"));
        // INTEGER, BIGINT, NUMERIC (too long for BIGINT, or with a point or exponent), uncast.
        assert_eq!(key_of("5"), key_of("7"));
        assert_eq!(key_of("2147483648"), key_of("2147483649"));
        assert_eq!(key_of("9223372036854775808"), key_of("1.5"));
        assert_eq!(key_of("1.5"), key_of("1e5"));
        let classes = ["5", "2147483648", "1.5", "1_000"].map(key_of);
        for (i, a) in classes.iter().enumerate() {
            for b in &classes[i + 1..] {
                assert_ne!(a, b, "{classes:?}");
            }
        }
    }

    #[test]
    fn the_seed_and_the_domain_separate_keys() {
        let text = "SELECT * FROM t WHERE a = 1";
        assert_ne!(key_seeded(text, 1), key_seeded(text, 2));
        assert_ne!(
            key_seeded(text, 1),
            Some(xxhash_rust::xxh3::xxh3_128_with_seed(text.as_bytes(), 1))
        );
    }

    #[test]
    fn text_that_does_not_tokenize_has_no_masked_key() {
        assert_eq!(fingerprint("SELECT 'unterminated", 1), None);
    }

    fn key_seeded(text: &str, seed: u64) -> Option<u128> {
        fingerprint(text, seed).map(|fingerprint| fingerprint.key)
    }

    #[test]
    fn literals_are_noticed_wherever_they_are() {
        let literals = |text: &str| fingerprint(text, 1).map(|found| found.literals);
        assert_eq!(literals("BEGIN"), Some(false));
        assert_eq!(
            literals("SELECT * FROM t WHERE a = $1 AND b IS NULL"),
            Some(false)
        );
        assert_eq!(literals("SELECT * FROM t WHERE a = TRUE"), Some(false));
        assert_eq!(literals("INSERT INTO t VALUES (1)"), Some(true));
        assert_eq!(literals("SELECT E'x'"), Some(true));
        assert_eq!(literals("SELECT $$x$$"), Some(true));
    }

    #[test]
    fn a_literal_is_masked_only_in_a_value_slot() {
        assert_eq!(
            key("SELECT 1 FROM t LIMIT 5"),
            key("SELECT 1 FROM t LIMIT 6")
        );
        assert_ne!(key("SELECT 1 FROM t"), key("SELECT 2 FROM t"));
        assert_ne!(key("SELECT f(1) FROM t"), key("SELECT f(2) FROM t"));
        assert_ne!(
            key("SELECT a FROM t WHERE a = -1"),
            key("SELECT a FROM t WHERE a = -2")
        );
    }

    #[test]
    fn in_lists_mask_single_token_items_only() {
        assert_eq!(
            key("SELECT a FROM t WHERE a IN (1, 'x y')"),
            key("SELECT a FROM t WHERE a IN (2, 'z w')")
        );
        assert_ne!(
            key("SELECT a FROM t WHERE a IN (1 + 1, 2)"),
            key("SELECT a FROM t WHERE a IN (1 + 2, 3)")
        );
        // A subquery is no list: its positions stay.
        assert_ne!(
            key("SELECT a FROM t WHERE a IN (SELECT b, c FROM u ORDER BY b, 1)"),
            key("SELECT a FROM t WHERE a IN (SELECT b, c FROM u ORDER BY b, 2)")
        );
        assert_ne!(
            key("SELECT a FROM t WHERE a IN (1, 2)"),
            key("SELECT a FROM t WHERE a IN (1, 2, 3)")
        );
    }
}
