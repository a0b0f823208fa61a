//! Literal-free text: the normalized statement, and the canonical text of an expression.
//!
//! Both are rendered by sqlparser from a copy of the syntax tree in which every literal has
//! been replaced, so no value can survive through a rendering quirk of ours.
//!
//! - [`normalized`]: the statement as it will be run by `EXPLAIN (GENERIC_PLAN)`. Every
//!   literal and parameter becomes `$1..$n` in order, except booleans, `NULL` and the
//!   literals [`Kept`] lists, which keep partial and expression indexes matching. A typed
//!   literal (`DATE '...'`, `interval '...'`) becomes a cast parameter (`$1::DATE`), since
//!   PostgreSQL has no `DATE $1`; a signed number becomes one parameter; an `IN` list of
//!   parameters becomes `= ANY($n)` (`<> ALL($n)` when negated), so one shape has one text
//!   whatever the list's length, and a huge list does not make a huge text.
//! - [`canonical`]: an expression target's text, names folded and quoted, qualifiers
//!   dropped, function names in lower case, and literals other than kept ones as `?`:
//!   `lower("email")`, `"payload" ->> 'kind'`.
//!
//! Optimizer-hint comments (`/*+ ... */`), which sqlparser keeps and renders for
//! pg_hint_plan, are removed: a comment is free text. As a last guard, [`normalized`] reads
//! its own output back and gives up if a string literal that is not a token or a comment
//! made it through.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, CastKind, DataType, Expr, Ident, ObjectNamePart, Select, Statement,
    UnaryOperator, Value, ValueWithSpan, VisitMut, VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

use super::constants::{is_enum_token, is_json_key, Kept};
use super::names::fold;

/// The statement with literals and parameters replaced by `$1..$n`; `None` if the result
/// failed the final check (see the module docs).
pub(super) fn normalized(statement: &Statement, kept: &Kept) -> Option<String> {
    let mut copy = statement.clone();
    let mut numberer = Numberer { kept, next: 1 };
    let _ = copy.visit(&mut numberer);
    let text = copy.to_string();
    holds_no_value(&text).then_some(text)
}

/// The canonical text of an expression: names only, see the module docs.
pub(super) fn canonical(expr: &Expr, kept: &Kept) -> String {
    let mut copy = expr.clone();
    let _ = copy.visit(&mut Canonicalizer { kept });
    copy.to_string()
}

/// Whether a literal stays as written.
fn stays(value: &ValueWithSpan, kept: &Kept) -> bool {
    matches!(value.value, Value::Boolean(_) | Value::Null) || kept.contains(&value.span)
}

fn placeholder(text: String) -> Expr {
    Expr::Value(Value::Placeholder(text).with_empty_span())
}

fn is_placeholder(expr: &Expr) -> bool {
    matches!(
        expr,
        Expr::Value(ValueWithSpan {
            value: Value::Placeholder(_),
            ..
        })
    )
}

/// The number of a `$n` placeholder this module wrote.
fn placeholder_number(expr: &Expr) -> Option<usize> {
    match expr {
        Expr::Value(ValueWithSpan {
            value: Value::Placeholder(text),
            ..
        }) => text.strip_prefix('$')?.parse().ok(),
        _ => None,
    }
}

struct Numberer<'k> {
    kept: &'k Kept,
    next: usize,
}

impl Numberer<'_> {
    /// `x IN ($3, $4, $5)` → `x = ANY($3)`, when the list is exactly the last parameters
    /// written; the numbering then resumes after `$3`.
    fn collapse_in_list(&mut self, expr: &mut Expr) {
        let Expr::InList {
            expr: left,
            list,
            negated,
        } = expr
        else {
            return;
        };
        let Some(first) = list.first().and_then(placeholder_number) else {
            return;
        };
        let consecutive = list
            .iter()
            .enumerate()
            .all(|(offset, item)| placeholder_number(item) == Some(first + offset));
        if !consecutive || first + list.len() != self.next {
            return;
        }
        let left = std::mem::replace(left, Box::new(placeholder(String::new())));
        let right = Box::new(placeholder(format!("${first}")));
        *expr = if *negated {
            Expr::AllOp {
                left,
                compare_op: BinaryOperator::NotEq,
                right,
            }
        } else {
            Expr::AnyOp {
                left,
                compare_op: BinaryOperator::Eq,
                right,
                is_some: false,
            }
        };
        self.next = first + 1;
    }
}

impl VisitorMut for Numberer<'_> {
    type Break = ();

    fn pre_visit_statement(&mut self, statement: &mut Statement) -> ControlFlow<()> {
        match statement {
            Statement::Insert(insert) => insert.optimizer_hints.clear(),
            Statement::Update(update) => update.optimizer_hints.clear(),
            Statement::Delete(delete) => delete.optimizer_hints.clear(),
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
        select.optimizer_hints.clear();
        ControlFlow::Continue(())
    }

    fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<()> {
        if !stays(value, self.kept) {
            value.value = Value::Placeholder(format!("${}", self.next));
            self.next += 1;
        }
        ControlFlow::Continue(())
    }

    // Children are numbered before their parent is rewritten, so rewrites see `$n`s.
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let replacement = match expr {
            Expr::TypedString(typed) if matches!(typed.value.value, Value::Placeholder(_)) => {
                Some(Expr::Cast {
                    kind: CastKind::DoubleColon,
                    expr: Box::new(Expr::Value(typed.value.clone())),
                    data_type: typed.data_type.clone(),
                    format: None,
                })
            }
            Expr::Interval(interval) if is_placeholder(&interval.value) => Some(Expr::Cast {
                kind: CastKind::DoubleColon,
                expr: interval.value.clone(),
                data_type: DataType::Interval {
                    fields: None,
                    precision: None,
                },
                format: None,
            }),
            Expr::UnaryOp {
                op: UnaryOperator::Minus | UnaryOperator::Plus,
                expr: inner,
            } if is_placeholder(inner) => Some(Expr::clone(inner)),
            Expr::InList { .. } => {
                self.collapse_in_list(expr);
                None
            }
            _ => None,
        };
        if let Some(replacement) = replacement {
            *expr = replacement;
        }
        ControlFlow::Continue(())
    }
}

struct Canonicalizer<'k> {
    kept: &'k Kept,
}

impl VisitorMut for Canonicalizer<'_> {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::Identifier(ident) => *ident = quoted(ident),
            Expr::CompoundIdentifier(parts) => {
                if let Some(column) = parts.last() {
                    *expr = Expr::Identifier(quoted(column));
                }
            }
            Expr::Function(function) => {
                for part in &mut function.name.0 {
                    if let ObjectNamePart::Identifier(ident) = part {
                        if ident.quote_style.is_none() {
                            ident.value = fold(ident);
                        }
                    }
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<()> {
        if !stays(value, self.kept) {
            value.value = Value::Placeholder("?".into());
        }
        ControlFlow::Continue(())
    }
}

/// A column name, folded and always double-quoted.
fn quoted(ident: &Ident) -> Ident {
    Ident::with_quote('"', fold(ident))
}

/// The final check on a normalized text: no comment, and no string literal other than the
/// kinds [`Kept`] may hold.
fn holds_no_value(text: &str) -> bool {
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, text).tokenize() else {
        return false;
    };
    tokens.iter().all(|token| match token {
        Token::Whitespace(Whitespace::SingleLineComment { .. })
        | Token::Whitespace(Whitespace::MultiLineComment(_)) => false,
        Token::SingleQuotedString(text) => is_enum_token(text) || is_json_key(text),
        Token::DoubleQuotedString(_) | Token::Word(_) | Token::Number(..) => true,
        Token::DollarQuotedString(_)
        | Token::NationalStringLiteral(_)
        | Token::EscapedStringLiteral(_)
        | Token::UnicodeStringLiteral(_)
        | Token::HexStringLiteral(_)
        | Token::SingleQuotedByteStringLiteral(_)
        | Token::DoubleQuotedByteStringLiteral(_)
        | Token::TripleSingleQuotedString(_)
        | Token::TripleDoubleQuotedString(_) => false,
        _ => true,
    })
}
