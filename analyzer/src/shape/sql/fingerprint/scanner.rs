//! Which literals sit in a masked place: a walk over the significant tokens that knows the
//! previous token, and for each parenthesis level whether it is an `IN` list of single
//! tokens and whether a `BETWEEN` waits for its `AND`. See the parent module for the rule.

use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::Token;

use super::super::constants::is_enum_token;
use super::super::normalize::number_type;
use super::Masked;

/// What the previous significant token makes of a literal right after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum After {
    /// `=`, `<>`, `<`, `>`, `<=`, `>=`; `BETWEEN` or its `AND`; `LIMIT`, `OFFSET`.
    ValueSlot,
    /// The `(` or a `,` of an `IN` list.
    ListItem,
    /// Anything else.
    #[default]
    Other,
}

/// One parenthesis (or bracket) level.
#[derive(Debug, Default)]
struct Level {
    /// Opened by `IN (`, and every item so far is a single token.
    list: bool,
    /// In a list: the next token starts an item (just after `(` or `,`).
    expect_item: bool,
    /// A `BETWEEN` at this level still waits for its `AND`.
    between: bool,
}

/// Walks the significant tokens, keeping what [`Scanner::mask`] needs to know.
#[derive(Debug)]
pub(super) struct Scanner<'t> {
    previous: Option<&'t Token>,
    after: After,
    /// Never empty: the statement level is at the bottom.
    levels: Vec<Level>,
}

impl Default for Scanner<'_> {
    fn default() -> Self {
        Self {
            previous: None,
            after: After::Other,
            levels: vec![Level::default()],
        }
    }
}

impl<'t> Scanner<'t> {
    /// The marker `token` is hashed as, when it is a literal in a masked place; `next`
    /// finds the significant token after it.
    pub(super) fn mask<'n>(
        &self,
        token: &Token,
        next: impl FnOnce() -> Option<&'n Token>,
    ) -> Option<Masked> {
        let masked = match token {
            Token::SingleQuotedString(text) if !is_enum_token(text) => Masked::String,
            Token::Number(text, long) => Masked::Number(number_type(text), *long),
            _ => return None,
        };
        let next = next();
        // PostgreSQL does not join adjacent string literals; never rely on that.
        if matches!(next, Some(Token::SingleQuotedString(_))) {
            return None;
        }
        let placed = match self.after {
            After::ValueSlot => true,
            After::ListItem => {
                self.levels.last().is_some_and(|level| level.list)
                    && matches!(next, Some(Token::Comma | Token::RParen))
            }
            After::Other => false,
        };
        placed.then_some(masked)
    }

    /// Move past a significant token.
    pub(super) fn advance(&mut self, token: &'t Token) {
        let after_in = matches!(self.previous, Some(previous) if is_keyword(previous, Keyword::IN));
        self.after = After::Other;
        match token {
            Token::Eq | Token::Neq | Token::Lt | Token::Gt | Token::LtEq | Token::GtEq => {
                self.after = After::ValueSlot;
                self.list_token();
            }
            Token::LParen | Token::LBracket => {
                self.list_token();
                let list = after_in && matches!(token, Token::LParen);
                self.levels.push(Level {
                    list,
                    expect_item: list,
                    between: false,
                });
                if list {
                    self.after = After::ListItem;
                }
            }
            Token::RParen | Token::RBracket => {
                if self.levels.len() > 1 {
                    self.levels.pop();
                }
                self.list_token();
            }
            // A new statement starts afresh (unless parentheses are left open).
            Token::SemiColon => {
                if let [level] = self.levels.as_mut_slice() {
                    *level = Level::default();
                }
            }
            Token::Comma => {
                if let Some(level) = self.levels.last_mut() {
                    if level.list && !level.expect_item {
                        level.expect_item = true;
                        self.after = After::ListItem;
                    } else {
                        level.list = false;
                    }
                }
            }
            Token::Word(word) if word.quote_style.is_none() => {
                self.list_token();
                match word.keyword {
                    Keyword::BETWEEN => {
                        if let Some(level) = self.levels.last_mut() {
                            level.between = true;
                        }
                        self.after = After::ValueSlot;
                    }
                    Keyword::AND => {
                        if let Some(level) = self.levels.last_mut() {
                            if level.between {
                                level.between = false;
                                self.after = After::ValueSlot;
                            }
                        }
                    }
                    Keyword::LIMIT | Keyword::OFFSET => self.after = After::ValueSlot,
                    _ => {}
                }
            }
            _ => self.list_token(),
        }
        self.previous = Some(token);
    }

    /// A token other than `,` at the current level: in a list, it is an item if one was
    /// expected, and otherwise makes the item longer than one token, so no list.
    fn list_token(&mut self) {
        if let Some(level) = self.levels.last_mut() {
            if level.list {
                if level.expect_item {
                    level.expect_item = false;
                } else {
                    level.list = false;
                }
            }
        }
    }
}

fn is_keyword(token: &Token, keyword: Keyword) -> bool {
    matches!(token, Token::Word(word) if word.keyword == keyword && word.quote_style.is_none())
}
