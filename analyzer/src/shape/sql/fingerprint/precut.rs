//! Long string literals cut out of the text before any tokenizer sees it.
//!
//! `literals::shrink_long` cuts a literal longer than `LONG` bytes to its first and last
//! `ENDS` characters, but only once the tokenizer has made a `String` of it, and the masked
//! key tokenizes the whole text once more: a 4 MiB literal was copied twice over, outside
//! any budget. Here the raw text is read once, with the quick key's scanner, and each such
//! literal is replaced by its two ends, spelled as in the text, so the tokenizer reads
//! exactly the token the after-tokenize cut would have made. A text without one is handed
//! back as it is, without a copy.
//!
//! Only plain `'...'` strings are cut, where `''` is the one escape sqlparser's PostgreSQL
//! tokenizer reads (a backslash is an ordinary character there). The ends are counted in
//! characters of the literal's value, a doubled quote counting as one, so a cut never
//! splits a doubled quote or a UTF-8 character. Quoted identifiers and `--` comments are
//! read past. At anything else that could hide or change a quote (`E'...'` and every other
//! prefixed string, dollar quotes, `$name`, block comments, a backslash outside a string,
//! an unterminated quote), the reading stops and the rest of the text is kept as it is:
//! `shrink_long` still cuts what is left, after the tokenizer.
//!
//! ## Layout
//! - [`precut`]: the pass; `plain_ends`: where a plain literal's kept ends lie.

use std::borrow::Cow;

use super::super::literals::{ENDS, LONG};
use super::quick::{next_start, quoted_end, Byte, BYTES};

/// `text` with every plain string literal longer than `LONG` bytes (of its value) cut to
/// its first and last `ENDS` characters; borrowed when nothing was cut.
pub(in crate::shape::sql) fn precut(text: &str) -> Cow<'_, str> {
    // No literal of a text this short can be long.
    if text.len() <= LONG {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let previous = |at: usize| at.checked_sub(1).map(|before| bytes[before]);
    let mut cut: Option<String> = None;
    // Everything before `copied` is in `cut` already.
    let mut copied = 0;
    let mut at = 0;
    while let Some((start, byte, class)) = next_start(bytes, at) {
        at = start;
        match class {
            // Plain bytes and words are never returned by `next_start`.
            Byte::Plain | Byte::Word | Byte::Digit => at += 1,
            Byte::Quote => {
                // A prefixed string (`E'`, `U&'`, `N'`, `X'`, ...) reads escapes of its own.
                let prefixed = previous(at).is_some_and(|p| {
                    matches!(BYTES[usize::from(p)], Byte::Word | Byte::Digit) || p == b'&'
                });
                if prefixed {
                    break;
                }
                let Some(end) = quoted_end(bytes, at, b'\'', None) else {
                    break;
                };
                if let Some((head_end, tail_start)) = plain_ends(text, at + 1, end - 1) {
                    // Grown as cut: a 4 MiB text with one long literal becomes a few hundred bytes.
                    let into = cut.get_or_insert_with(String::new);
                    into.push_str(&text[copied..head_end]);
                    into.push_str(&text[tail_start..end]);
                    copied = end;
                }
                at = end;
            }
            Byte::DoubleQuote => match quoted_end(bytes, at, b'"', None) {
                Some(end) => at = end,
                None => break,
            },
            // `$1` is a placeholder; `$$`, `$tag$` and `$name` are not read here.
            Byte::Dollar => {
                at += 1;
                if !bytes.get(at).is_some_and(u8::is_ascii_digit) {
                    break;
                }
                while bytes.get(at).is_some_and(u8::is_ascii_digit) {
                    at += 1;
                }
                if bytes
                    .get(at)
                    .is_some_and(|&b| matches!(BYTES[usize::from(b)], Byte::Word | Byte::Dollar))
                {
                    break;
                }
            }
            Byte::CommentStart => match (byte, bytes.get(at + 1)) {
                // A `--` right after a word, a number or an operator may be read otherwise
                // (`1e--`, a custom operator `<--`).
                (b'-', Some(b'-')) if previous(at).is_none_or(is_separator) => {
                    // PostgreSQL's line comment ends at a carriage return too.
                    at = bytes[at..]
                        .iter()
                        .position(|&b| b == b'\n' || b == b'\r')
                        .map_or(bytes.len(), |newline| at + newline);
                }
                (b'-', Some(b'-')) | (b'/', Some(b'*')) => break,
                _ => at += 1,
            },
            Byte::Backslash => break,
        }
    }
    match cut {
        None => Cow::Borrowed(text),
        Some(mut cut) => {
            cut.push_str(&text[copied..]);
            Cow::Owned(cut)
        }
    }
}

/// Whitespace or a separator, after which `--` can only start a comment.
fn is_separator(byte: u8) -> bool {
    byte.is_ascii_whitespace() || matches!(byte, b'(' | b')' | b',' | b';')
}

/// For the plain literal whose value is spelled in `text[start..end]` (between its quotes),
/// where its first `ENDS` characters end and its last `ENDS` begin, when its value is
/// longer than `LONG` bytes and has characters in between to cut.
fn plain_ends(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let spelled = end - start;
    if spelled <= LONG {
        return None;
    }
    let doubled = bytes[start..end].iter().filter(|&&b| b == b'\'').count() / 2;
    if spelled - doubled <= LONG {
        return None;
    }
    // A quote inside the literal is always half of a doubled one, from either end.
    let unit_after = |at: usize| match bytes[at] {
        b'\'' => at + 2,
        _ => at + text[at..].chars().next().map_or(1, char::len_utf8),
    };
    let unit_before = |at: usize| match bytes[at - 1] {
        b'\'' => at - 2,
        _ => at - text[..at].chars().next_back().map_or(1, char::len_utf8),
    };
    let mut head_end = start;
    let mut tail_start = end;
    for _ in 0..ENDS {
        if head_end >= tail_start {
            return None;
        }
        head_end = unit_after(head_end);
        tail_start = unit_before(tail_start);
    }
    (head_end < tail_start).then_some((head_end, tail_start))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use sqlparser::tokenizer::Token;

    use super::super::super::guard::{tokenize, Literals};
    use super::super::super::{lower_whole, SqlProtocol};
    use super::super::fingerprint;
    use super::*;

    /// The tokens the lowering parses, after `shrink_long`, spans aside.
    fn tokens(text: &str) -> Option<Vec<Token>> {
        let tokens = tokenize(text, Literals::Shrunk).ok()?.into_tokens();
        Some(tokens.into_iter().map(|token| token.token).collect())
    }

    /// The pre-cut text tokenizes into exactly what the whole text did after its cut; so
    /// everything read from the tokens (shapes, constants, normalized SQL) is the same.
    fn assert_same_tokens(text: &str) -> Cow<'_, str> {
        let cut = precut(text);
        assert_eq!(tokens(&cut), tokens(text), "{:.120}", text);
        let lowered = super::super::super::lower_statement("db", text, SqlProtocol::Simple, None);
        assert_eq!(
            lowered,
            lower_whole("db", text, SqlProtocol::Simple),
            "{:.120}",
            text
        );
        // Texts differing only inside a cut literal share a masked key, never other texts.
        assert_eq!(
            fingerprint(&cut, 1).map(|found| (found.literal_count, found.masked_count)),
            fingerprint(text, 1).map(|found| (found.literal_count, found.masked_count)),
        );
        cut
    }

    fn quoted(content: &str) -> String {
        format!("'{}'", content.replace('\'', "''"))
    }

    #[test]
    fn a_long_plain_literal_is_cut_to_its_ends_as_spelled() {
        let content = format!("it's é{}日'", "ab''".repeat(200));
        let text = format!("SELECT length({}) -- it's\r\nFROM t", quoted(&content));
        let cut = assert_same_tokens(&text);
        assert!(matches!(cut, Cow::Owned(_)));
        assert!(cut.len() < 2 * ENDS * 4 + 40, "{cut}");
        assert!(cut.ends_with("'') -- it's\r\nFROM t"), "{cut}");
    }

    #[test]
    fn texts_without_a_long_plain_literal_are_not_copied() {
        let long = "x".repeat(400);
        for text in [
            format!("SELECT * FROM t WHERE a = '{}'", "y".repeat(LONG)),
            format!("SELECT E'{long}'"),
            format!("SELECT $tag${long}$tag$"),
            format!("SELECT \"{long}\" FROM t"),
            format!("SELECT 1 /* ' */, '{long}'"),
            format!(
                "SELECT 1 -- '\nFROM t WHERE a = 1 AND b = '{}'",
                "😀".repeat(2 * ENDS)
            ),
            format!("SELECT 1 <-- '\n', '{long}'"),
        ] {
            assert!(
                matches!(assert_same_tokens(&text), Cow::Borrowed(_)),
                "{text:.60}"
            );
        }
    }

    #[test]
    fn four_mebibytes_become_a_few_hundred_bytes() {
        let text = format!("SELECT length('{}')", "x".repeat(4 << 20));
        let cut = assert_same_tokens(&text);
        assert_eq!(cut.len(), "SELECT length('')".len() + 2 * ENDS);
    }

    /// Pieces of SQL that hide or change quotes, and long literals of every kind.
    fn piece() -> impl Strategy<Value = String> {
        let content = "[xé日😀'\\\\ $%_-]{0,400}";
        prop_oneof![
            content.prop_map(|content| quoted(&content)),
            content.prop_map(|content| format!(
                "E'{}'",
                content.replace('\\', "\\\\").replace('\'', "\\'")
            )),
            content.prop_map(|content| format!("$tag${}$tag$", content.replace('$', ""))),
            content.prop_map(|content| format!("$${}$$", content.replace('$', ""))),
            content.prop_map(|content| format!("N{}", quoted(&content))),
            content.prop_map(|content| format!("\"{}\"", content.replace('"', "\"\""))),
            Just("-- it's\n".to_owned()),
            Just("-- it's\r".to_owned()),
            Just("/* it's /* nested ' */ */".to_owned()),
            Just("WHERE a =".to_owned()),
            Just("SELECT".to_owned()),
            Just("IN (".to_owned()),
            Just(",".to_owned()),
            Just(")".to_owned()),
            Just("$1".to_owned()),
            Just("a$b".to_owned()),
            Just("1".to_owned()),
            Just("<--".to_owned()),
            Just("\\".to_owned()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn pre_cut_text_tokenizes_as_the_whole_text_does(
            pieces in prop::collection::vec(piece(), 1..8),
            glue in prop::sample::select(vec![" ", "", "\n"]),
        ) {
            assert_same_tokens(&pieces.join(glue));
        }
    }
}
