//! Tokenize, shrink long literals, bound the depth, then parse.
//!
//! sqlparser guards its recursive descent (nested parentheses, subqueries) with a recursion
//! limit, but it builds chains of binary operators in a loop: `a = 1 OR a = 2 OR ...` parses
//! into a tree as deep as the chain is long, and cloning, visiting or even dropping that tree
//! recurses once per link. A few thousand links overflow a 2 MiB thread stack. So before
//! parsing, an upper bound of the expression depth is computed from the tokens, and a
//! statement past [`MAX_DEPTH`] is refused as unsupported. The bound counts operator tokens
//! per parenthesis level since the last comma, which ends any expression at that level.

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use sqlparser::ast::Statement;

use super::literals;

/// The deepest expression tree accepted, as bounded by [`depth_bound`]. Real statements stay
/// far below it (sixty conjuncts count about 120); see the `deep_chains` test for the stack
/// this needs.
pub(super) const MAX_DEPTH: usize = 256;

/// sqlparser's own limit on nested parentheses and subqueries (its default).
const PARSER_RECURSION_LIMIT: usize = 50;

/// Why a text gave no statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Not SQL sqlparser understands.
    Parse,
    /// SQL too deep to lower safely.
    TooDeep,
}

/// The tokens of a text, and an upper bound of the depth of the tree they parse into.
pub(super) struct Tokens {
    tokens: Vec<TokenWithSpan>,
    /// See [`depth_bound`].
    pub(super) depth: usize,
}

/// What becomes of long string literals before the parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Literals {
    /// Cut down to their ends ([`literals::shrink_long`]): what lowering does.
    Shrunk,
    /// Kept whole, as the reference tests compare the shrunk lowering with.
    #[cfg_attr(not(test), expect(dead_code))]
    Whole,
}

/// Tokenize `text` as PostgreSQL, refusing what is too deep to walk safely.
pub(super) fn tokenize(text: &str, literals: Literals) -> Result<Tokens, Refusal> {
    let mut tokens = Tokenizer::new(&PostgreSqlDialect {}, text)
        .tokenize_with_location()
        .map_err(|_| Refusal::Parse)?;
    if literals == Literals::Shrunk {
        literals::shrink_long(&mut tokens);
    }
    let depth = depth_bound(&tokens);
    if depth > MAX_DEPTH {
        return Err(Refusal::TooDeep);
    }
    Ok(Tokens { tokens, depth })
}

impl Tokens {
    /// The tokens themselves.
    pub(super) fn into_tokens(self) -> Vec<TokenWithSpan> {
        self.tokens
    }
}

/// Parse tokenized text into statements.
#[cfg(test)]
pub(super) fn parse(tokens: Tokens) -> Result<Vec<Statement>, Refusal> {
    parse_tokens(tokens.tokens)
}

/// Parse tokens (of a text whose depth was bounded) into statements.
pub(super) fn parse_tokens(tokens: Vec<TokenWithSpan>) -> Result<Vec<Statement>, Refusal> {
    Parser::new(&PostgreSqlDialect {})
        .with_recursion_limit(PARSER_RECURSION_LIMIT)
        .with_tokens_with_locations(tokens)
        .parse_statements()
        .map_err(|error| match error {
            ParserError::RecursionLimitExceeded => Refusal::TooDeep,
            _ => Refusal::Parse,
        })
}

/// An upper bound of the depth of any expression tree the tokens parse into.
pub(super) fn depth_bound(tokens: &[TokenWithSpan]) -> usize {
    // Operator tokens seen at each open parenthesis level since its last comma.
    let mut levels: Vec<usize> = vec![0];
    let mut total = 0usize;
    let mut deepest = 0usize;
    for token in tokens {
        match &token.token {
            Token::LParen | Token::LBracket | Token::LBrace => levels.push(0),
            Token::RParen | Token::RBracket | Token::RBrace => {
                if levels.len() > 1 {
                    total -= levels.pop().unwrap_or(0);
                }
            }
            Token::Comma => {
                if let Some(current) = levels.last_mut() {
                    total -= *current;
                    *current = 0;
                }
            }
            Token::SemiColon => {
                levels.clear();
                levels.push(0);
                total = 0;
            }
            Token::Word(word) if !chains(word.keyword) => {}
            token if is_operand(token) => {}
            _ => {
                if let Some(current) = levels.last_mut() {
                    *current += 1;
                    total += 1;
                }
            }
        }
        deepest = deepest.max(total + levels.len());
    }
    deepest
}

/// Keywords that join two expressions into a deeper one, or extend one (`IS NULL`).
fn chains(keyword: Keyword) -> bool {
    matches!(
        keyword,
        Keyword::AND
            | Keyword::OR
            | Keyword::NOT
            | Keyword::IS
            | Keyword::IN
            | Keyword::LIKE
            | Keyword::ILIKE
            | Keyword::SIMILAR
            | Keyword::BETWEEN
            | Keyword::COLLATE
            | Keyword::AT
            | Keyword::OVERLAPS
            | Keyword::UNION
            | Keyword::INTERSECT
            | Keyword::EXCEPT
            | Keyword::ESCAPE
            | Keyword::NOTNULL
            | Keyword::ANY
            | Keyword::ALL
            | Keyword::SOME
            | Keyword::DIV
            | Keyword::MOD
            | Keyword::XOR
            | Keyword::REGEXP
            | Keyword::RLIKE
            | Keyword::MEMBER
    )
}

/// Tokens that are operands or layout, never operators.
fn is_operand(token: &Token) -> bool {
    matches!(
        token,
        Token::EOF
            | Token::Whitespace(_)
            | Token::Number(..)
            | Token::Char(_)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::NationalStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::Placeholder(_)
            | Token::Period
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many statements a text parses into.
    fn lower(text: &str) -> Result<usize, Refusal> {
        parse(tokenize(text, Literals::Shrunk)?).map(|statements| statements.len())
    }

    fn bound(text: &str) -> usize {
        let dialect = PostgreSqlDialect {};
        let tokens = Tokenizer::new(&dialect, text)
            .tokenize_with_location()
            .unwrap_or_default();
        depth_bound(&tokens)
    }

    #[test]
    fn commas_end_expressions_and_parentheses_nest() {
        assert_eq!(bound("SELECT a FROM t"), 1);
        assert_eq!(bound("SELECT a FROM t WHERE a = 1 AND b = 2"), 4);
        assert_eq!(bound("SELECT a + 1, b + 2, c + 3 FROM t"), 2);
        assert_eq!(bound("SELECT f(a + 1) FROM t"), 3);
        assert_eq!(bound("SELECT 1; SELECT a = 1"), 2);
    }

    #[test]
    fn long_chains_and_deep_nesting_are_refused() {
        let chain = (0..2000).map(|i| format!("a = {i}")).collect::<Vec<_>>();
        let text = format!("SELECT * FROM t WHERE {}", chain.join(" OR "));
        assert_eq!(lower(&text), Err(Refusal::TooDeep));

        let nested = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
        assert_eq!(lower(&nested), Err(Refusal::TooDeep));

        let subqueries = format!(
            "SELECT * FROM t WHERE a IN {}1{}",
            "(SELECT ".repeat(60),
            ")".repeat(60)
        );
        assert_eq!(lower(&subqueries), Err(Refusal::TooDeep));
    }

    #[test]
    fn big_in_lists_are_not_deep() {
        let items = (0..10_000).map(|i| i.to_string()).collect::<Vec<_>>();
        let text = format!("SELECT * FROM t WHERE a IN ({})", items.join(", "));
        assert!(bound(&text) < 10);
        assert_eq!(lower(&text), Ok(1));
    }
}
