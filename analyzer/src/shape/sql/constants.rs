//! The literals that may outlive lowering, and the test that decides it.
//!
//! Every literal in a statement is a value unless it is one of these, which are code written
//! in the application rather than data that flowed through it:
//! - a boolean (`is_active = true`) and `NULL`;
//! - an enum constant compared with `=` or listed in `IN (...)`, when every item of the list
//!   is written the way code writes enum constants, `^[A-Z][A-Z0-9_]{0,31}$`, and the list
//!   has at most [`MAX_TOKENS`] items (`status IN ('QUEUED', 'PENDING')`). Lower- or
//!   mixed-case strings (`'alice'`, `'Smith'`) are never kept: they are what names, emails
//!   and other personal data look like, and a partial index is not worth that risk;
//! - a JSON key inside an indexable expression (`payload->>'kind'`), which names a part of
//!   the schema, when it matches [`is_json_key`];
//! - a token-like argument of an indexable function (`date_trunc('day', created_at)`) or
//!   time zone (`ts AT TIME ZONE 'UTC'`);
//! - a position in `ORDER BY 2` / `GROUP BY 1` (an integer up to 1664, PostgreSQL's limit
//!   on select-list entries), which names a select-list column.
//!
//! A literal that does not pass these tests is replaced everywhere: in shapes by its type, in
//! normalized SQL by a `$n` parameter. [`Kept`] records, by source position, the literals that
//! passed, so that the normalizer leaves exactly those as written.

use std::collections::HashSet;

use sqlparser::ast::{Expr, Value, ValueWithSpan};
use sqlparser::tokenizer::Span;

use crate::shape::OpClass;

/// The longest `IN (...)` list of tokens still kept as a partial-index constant.
pub(super) const MAX_TOKENS: usize = 16;

/// Longest enum-like token: `^[A-Za-z][A-Za-z0-9_]{0,31}$`.
const MAX_TOKEN_LEN: usize = 32;

/// Longest JSON key kept inside an expression target.
const MAX_JSON_KEY_LEN: usize = 64;

/// Source positions of the literals that stay as written. Spans are unique per token, and a
/// literal without a span is never kept.
#[derive(Debug, Default)]
pub(super) struct Kept(HashSet<Span>);

impl Kept {
    /// Keep the literal at `span` as written.
    pub(super) fn keep(&mut self, span: Span) {
        if span != Span::empty() {
            self.0.insert(span);
        }
    }

    /// Whether the literal at `span` stays as written.
    pub(super) fn contains(&self, span: &Span) -> bool {
        *span != Span::empty() && self.0.contains(span)
    }
}

/// Whether `text` looks like an enum value written in code: `^[A-Za-z][A-Za-z0-9_]{0,31}$`.
pub(super) fn is_enum_token(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some(first) if first.is_ascii_alphabetic())
        && text.len() <= MAX_TOKEN_LEN
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `text` looks like a JSON key or path written in code (`kind`, `{a,b}`, `0`).
pub(super) fn is_json_key(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_JSON_KEY_LEN
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ',' | '{' | '}'))
}

/// A plain single-quoted string literal and where it was written.
pub(super) fn string_literal(expr: &Expr) -> Option<(&str, Span)> {
    match expr {
        Expr::Value(ValueWithSpan {
            value: Value::SingleQuotedString(text),
            span,
        }) => Some((text, *span)),
        Expr::Nested(inner) => string_literal(inner),
        _ => None,
    }
}

/// A boolean literal.
pub(super) fn bool_literal(expr: &Expr) -> Option<bool> {
    match expr {
        Expr::Value(ValueWithSpan {
            value: Value::Boolean(value),
            ..
        }) => Some(*value),
        Expr::Nested(inner) => bool_literal(inner),
        _ => None,
    }
}

/// Whether `text` is written like an enum constant in code: `^[A-Z][A-Z0-9_]{0,31}$`.
/// This is the only kind of string that may become a partial-index constant.
pub(super) fn is_enum_constant(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some(first) if first.is_ascii_uppercase())
        && text.len() <= MAX_TOKEN_LEN
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The sorted, deduplicated tokens of a list whose every item is an enum-constant literal,
/// with the positions to keep; `None` when any item is not one, or the list is too long.
pub(super) fn enum_tokens<'e>(
    items: impl ExactSizeIterator<Item = &'e Expr>,
) -> Option<(Vec<String>, Vec<Span>)> {
    if items.len() == 0 || items.len() > MAX_TOKENS {
        return None;
    }
    let mut tokens = Vec::with_capacity(items.len());
    let mut spans = Vec::with_capacity(items.len());
    for item in items {
        let (text, span) = string_literal(item)?;
        if !is_enum_constant(text) {
            return None;
        }
        tokens.push(text.to_owned());
        spans.push(span);
    }
    tokens.sort();
    tokens.dedup();
    Some((tokens, spans))
}

/// How an index can serve `LIKE pattern`: a literal pattern that starts with a fixed
/// character is a bounded prefix scan; a leading wildcard, or a pattern only known at run
/// time (a parameter), needs a trigram index.
pub(super) fn like_class(pattern: &Expr) -> OpClass {
    match string_literal(pattern) {
        Some((text, _)) => match text.chars().next() {
            Some('%' | '_') | None => OpClass::Infix,
            Some(_) => OpClass::Prefix,
        },
        None => OpClass::Infix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_tokens_follow_the_pattern() {
        for good in ["QUEUED", "a", "in_progress", "Status2", &"A".repeat(32)] {
            assert!(is_enum_token(good), "{good}");
        }
        for bad in [
            "",
            "1st",
            "_x",
            "with space",
            "bob@example.com",
            "a-b",
            "é",
            &"A".repeat(33),
        ] {
            assert!(!is_enum_token(bad), "{bad}");
        }
    }

    #[test]
    fn only_upper_case_constants_can_become_partial_index_terms() {
        for good in ["QUEUED", "IN_PROGRESS", "A", "V2"] {
            assert!(is_enum_constant(good), "{good}");
        }
        for bad in ["alice", "Smith", "queued", "a", "Status2", "1ST", "A-B", ""] {
            assert!(!is_enum_constant(bad), "{bad}");
        }
    }

    #[test]
    fn json_keys_are_names_not_sentences() {
        assert!(is_json_key("kind"));
        assert!(is_json_key("{a,b}"));
        assert!(is_json_key("0"));
        assert!(!is_json_key(""));
        assert!(!is_json_key("a key"));
        assert!(!is_json_key("x@y"));
    }

    #[test]
    fn kept_ignores_empty_spans() {
        let mut kept = Kept::default();
        kept.keep(Span::empty());
        assert!(!kept.contains(&Span::empty()));
    }
}
