//! Shrinking long string literals before the parse.
//!
//! A statement holding one large literal (a 4 MiB JSON document, a blob in hex) is copied
//! several times on its way to a syntax tree: the token's `String`, the parser's clones of
//! tokens as it looks ahead, and the tree's value. None of that is needed: a literal longer
//! than [`LONG`] bytes is never kept as a constant (every test in `constants` stops at 64
//! bytes), so it only ever lowers into its type and a `$n` placeholder. Each such literal is
//! therefore cut down, before parsing, to its first and last [`ENDS`] characters, in a token
//! of the same kind at the same span, and the long `String` is freed on the spot (a literal
//! of few wide characters, with no more than `2 * ENDS` of them, stays whole).
//!
//! Plain `'...'` literals already come in cut, in the text itself (`fingerprint::precut`,
//! before the tokenizer copies them); this pass cuts the kinds the pre-cut does not read
//! (`E'...'`, dollar quotes, `N'...'`, ...) and is a no-op on pre-cut literals, whose
//! `2 * ENDS` characters have no middle left.
//!
//! What the cut keeps still decides everything a long literal can decide: the first
//! character (a LIKE pattern's `%` or prefix) and the last (its suffix wildcard). A cut
//! literal has `2 * ENDS` characters, more than 64 bytes, so it can never pass a keep test
//! the whole literal failed. Identifiers (`"name"`) are not literals and are left alone.
//!
//! ## Layout
//! - [`shrink_long`]: the pass over a statement's tokens.
//! - [`content`]: the text of a literal token, whatever its kind (also the normalizer's
//!   final check).

use sqlparser::tokenizer::{Token, TokenWithSpan};

/// Literals longer than this many bytes are cut.
pub(super) const LONG: usize = 256;

/// How many characters of each end of a long literal are kept.
pub(super) const ENDS: usize = 64;

/// Cuts every string literal longer than [`LONG`] bytes down to its two ends, in place.
pub(super) fn shrink_long(tokens: &mut [TokenWithSpan]) {
    for token in tokens {
        if let Some(text) = content(&mut token.token) {
            if text.len() > LONG {
                if let Some(cut) = ends(text) {
                    // Assigning drops the long text now, before the parser clones tokens.
                    *text = cut;
                }
            }
        }
    }
}

/// The first and last [`ENDS`] characters of `text`, unless it has no more than that.
fn ends(text: &str) -> Option<String> {
    let head_end = text.char_indices().nth(ENDS)?.0;
    let tail_start = text.char_indices().rev().nth(ENDS - 1)?.0;
    if tail_start <= head_end {
        return None;
    }
    let mut cut = String::with_capacity(head_end + text.len() - tail_start);
    cut.push_str(&text[..head_end]);
    cut.push_str(&text[tail_start..]);
    Some(cut)
}

/// The text of a string-literal token, of any kind sqlparser tokenizes: the one list of
/// them, also used by the normalizer's final check that no value is left.
pub(super) fn content(token: &mut Token) -> Option<&mut String> {
    match token {
        Token::SingleQuotedString(text)
        | Token::TripleSingleQuotedString(text)
        | Token::TripleDoubleQuotedString(text)
        | Token::SingleQuotedByteStringLiteral(text)
        | Token::DoubleQuotedByteStringLiteral(text)
        | Token::TripleSingleQuotedByteStringLiteral(text)
        | Token::TripleDoubleQuotedByteStringLiteral(text)
        | Token::SingleQuotedRawStringLiteral(text)
        | Token::DoubleQuotedRawStringLiteral(text)
        | Token::TripleSingleQuotedRawStringLiteral(text)
        | Token::TripleDoubleQuotedRawStringLiteral(text)
        | Token::NationalStringLiteral(text)
        | Token::EscapedStringLiteral(text)
        | Token::UnicodeStringLiteral(text)
        | Token::HexStringLiteral(text) => Some(text),
        Token::DollarQuotedString(dollar) => Some(&mut dollar.value),
        Token::QuoteDelimitedStringLiteral(quoted)
        | Token::NationalQuoteDelimitedStringLiteral(quoted) => Some(&mut quoted.value),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::tokenizer::Tokenizer;

    use super::*;

    fn tokens(text: &str) -> Vec<TokenWithSpan> {
        Tokenizer::new(&PostgreSqlDialect {}, text)
            .tokenize_with_location()
            .unwrap_or_default()
    }

    #[test]
    fn long_literals_keep_their_kind_ends_and_span() {
        let long = format!("%é{}日%", "ab".repeat(300));
        let text = format!("SELECT '{long}', E'{long}', \"{long}\", 'short'");
        let whole = tokens(&text);
        let mut cut = whole.clone();
        shrink_long(&mut cut);
        assert_eq!(whole.len(), cut.len());
        for (before, after) in whole.iter().zip(&cut) {
            assert_eq!(before.span, after.span);
            assert_eq!(
                std::mem::discriminant(&before.token),
                std::mem::discriminant(&after.token)
            );
        }
        let expected = format!("%é{}{}日%", "ab".repeat(31), "ab".repeat(31));
        assert_eq!(cut[2].token, Token::SingleQuotedString(expected.clone()));
        assert_eq!(cut[5].token, Token::EscapedStringLiteral(expected));
        // An identifier, however long, and a short literal stay as written.
        assert_eq!(cut[8].token, whole[8].token);
        assert_eq!(cut[11].token, whole[11].token);
    }

    #[test]
    fn cuts_are_whole_characters_at_any_length() {
        for length in [2 * ENDS + 1, 2 * ENDS + 2, LONG + 1, 1000] {
            let text = "é日x".chars().cycle().take(length).collect::<String>();
            let Some(cut) = ends(&text) else {
                panic!("{length} characters are not cut");
            };
            let head = cut.chars().take(ENDS).collect::<String>();
            let tail = cut.chars().skip(ENDS).collect::<String>();
            assert_eq!(tail.chars().count(), ENDS, "{length}");
            assert!(text.starts_with(&head) && text.ends_with(&tail), "{length}");
        }
        // Sixty-five four-byte characters pass LONG bytes but have no middle to cut.
        assert_eq!(ends(&"😀".repeat(ENDS + 1)), None);
        assert_eq!(ends(&"😀".repeat(2 * ENDS)), None);
    }
}
