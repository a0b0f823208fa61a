//! One text, several statements: splitting a text at its statement boundaries, and what is
//! made of a statement sqlparser does not parse.
//!
//! A simple Query reports each of its statements on its own (the proxy numbers them by the
//! server's completions), so a text is split into statements before parsing, at the
//! semicolons outside parentheses, skipping empty statements as PostgreSQL does. Each
//! statement is then parsed alone: one sqlparser does not understand does not hide the
//! others from a statement-level report.
//!
//! Two kinds of statement need no full parse:
//! - `COPY [ONLY] table [(columns)] FROM ...`: the write only needs the table, and
//!   sqlparser refuses some options PostgreSQL accepts (`FREEZE ON`, `HEADER 1`);
//! - maintenance commands (`VACUUM`, `ANALYZE`, `CHECKPOINT`, `REINDEX`, ...): not queries,
//!   so nothing, rather than a parse error.

use sqlparser::ast::{ObjectName, Statement};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{IsOptional, Parser};
use sqlparser::tokenizer::{Token, TokenWithSpan};

use super::guard::{self, Refusal};

/// Commands that maintain the database rather than query it.
const MAINTENANCE: &[&str] = &[
    "VACUUM",
    "ANALYZE",
    "ANALYSE",
    "CHECKPOINT",
    "REINDEX",
    "CLUSTER",
    "DISCARD",
    "REFRESH",
    "LOAD",
    "LISTEN",
    "UNLISTEN",
    "NOTIFY",
];

/// What one statement's tokens are.
pub(super) enum Parsed {
    /// Parsed by sqlparser.
    Statements(Vec<Statement>),
    /// A COPY sqlparser refused, reduced to its table and direction.
    CopyTable {
        /// The table copied.
        table_name: ObjectName,
        /// `COPY ... TO`.
        to: bool,
    },
    /// A maintenance command sqlparser refused: not a query.
    NotAQuery,
    /// Not SQL that could be lowered.
    Refused(Refusal),
}

/// Splits tokens into statements at the semicolons outside parentheses; statements with
/// nothing but whitespace and comments are dropped.
pub(super) fn split(tokens: Vec<TokenWithSpan>) -> Vec<Vec<TokenWithSpan>> {
    let mut statements = Vec::new();
    let mut current = Vec::new();
    let mut depth = 0usize;
    for token in tokens {
        match token.token {
            Token::SemiColon if depth == 0 => {
                push_statement(&mut statements, std::mem::take(&mut current));
                continue;
            }
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            _ => {}
        }
        current.push(token);
    }
    push_statement(&mut statements, current);
    statements
}

fn push_statement(statements: &mut Vec<Vec<TokenWithSpan>>, tokens: Vec<TokenWithSpan>) {
    let empty = tokens
        .iter()
        .all(|token| matches!(token.token, Token::Whitespace(_) | Token::EOF));
    if !empty {
        statements.push(tokens);
    }
}

/// Parses one statement's tokens, falling back on COPY's table or on "not a query" for the
/// statements described in the module docs.
pub(super) fn parse(tokens: Vec<TokenWithSpan>) -> Parsed {
    let leading = leading_word(&tokens);
    let is_copy = leading.as_deref() == Some("COPY");
    let kept = is_copy.then(|| tokens.clone());
    let refusal = match guard::parse_tokens(tokens) {
        Ok(statements) => return Parsed::Statements(statements),
        Err(refusal) => refusal,
    };
    if refusal == Refusal::Parse {
        if let Some((table_name, to)) = kept.and_then(copy_table) {
            return Parsed::CopyTable { table_name, to };
        }
        if leading.is_some_and(|word| MAINTENANCE.contains(&word.as_str())) {
            return Parsed::NotAQuery;
        }
    }
    Parsed::Refused(refusal)
}

/// The first word of a statement, upper-cased, unless it is quoted.
fn leading_word(tokens: &[TokenWithSpan]) -> Option<String> {
    let first = tokens
        .iter()
        .find(|token| !matches!(token.token, Token::Whitespace(_)))?;
    match &first.token {
        Token::Word(word) if word.quote_style.is_none() => Some(word.value.to_ascii_uppercase()),
        _ => None,
    }
}

/// `COPY [ONLY] name [(columns)] FROM|TO ...`: the table, and whether it is a COPY TO.
/// `COPY (query) TO` is not reduced: its shapes need the query parsed.
fn copy_table(tokens: Vec<TokenWithSpan>) -> Option<(ObjectName, bool)> {
    let mut parser = Parser::new(&PostgreSqlDialect {}).with_tokens_with_locations(tokens);
    if !parser.parse_keyword(Keyword::COPY) {
        return None;
    }
    // ONLY (no inheritance children) names the same table.
    let _only = parser.parse_keyword(Keyword::ONLY);
    let table_name = parser.parse_object_name(false).ok()?;
    parser
        .parse_parenthesized_column_list(IsOptional::Optional, false)
        .ok()?;
    match parser.parse_one_of_keywords(&[Keyword::FROM, Keyword::TO])? {
        Keyword::FROM => Some((table_name, false)),
        _ => Some((table_name, true)),
    }
}
