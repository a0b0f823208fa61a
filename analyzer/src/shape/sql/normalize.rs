//! The normalized statement: the text `EXPLAIN (GENERIC_PLAN)` will run for a shape.
//!
//! It is rendered by sqlparser from a copy of the tree in which every literal and parameter
//! is replaced by `$1..$n` in order, except booleans, `NULL` and the literals [`Kept`] lists,
//! which stay as written so partial and expression indexes still match. For the text to
//! stay valid PostgreSQL and plan like the original:
//! - a number becomes a parameter cast to the type PostgreSQL gives the literal
//!   (`$1::INTEGER`, `BIGINT`, `NUMERIC`), since a number is typed by itself, not by its
//!   context (`generate_series(1, 10)` has no other reading); LIMIT, OFFSET and FETCH values
//!   stay bare, typed by their clause (FETCH's grammar has no room for a cast);
//! - a string stays a bare parameter, typed from its context like the literal was, except
//!   as an argument of a function taking `"any"` (`jsonb_build_object`, `concat`, ...), where
//!   it is cast to `TEXT` as PostgreSQL would resolve the literal;
//! - a typed literal (`DATE '...'`, `interval '...'`) becomes a cast parameter (`$1::DATE`),
//!   since there is no `DATE $1`; a signed number becomes one parameter;
//! - an `IN` list of parameters becomes `= ANY($n)` (`<> ALL($n)` when negated), cast to an
//!   array of the items' type, so one shape has one text whatever the list's length, and a
//!   huge list does not make a huge text.
//!
//! Optimizer-hint comments (`/*+ ... */`), which sqlparser keeps and renders for
//! pg_hint_plan, are removed: a comment is free text. As a last guard the output is read
//! back, and dropped if a comment, or a string literal that is not a token, made it through.

use std::collections::HashSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    ArrayElemTypeDef, BinaryOperator, CastKind, DataType, ExactNumberInfo, Expr, FunctionArg,
    FunctionArgExpr, FunctionArguments, LimitClause, Query, Select, Statement, UnaryOperator,
    Value, ValueWithSpan, VisitMut, VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Span, Token, Tokenizer, Whitespace};

use super::canonical::stays;
use super::constants::{is_enum_token, is_json_key, Kept};
use super::literals;
use super::names;

/// Functions whose parameters are of type `"any"`: an untyped parameter there cannot be
/// resolved, while a string literal resolves to `text`.
const ANY_FUNCTIONS: &[&str] = &[
    "concat",
    "concat_ws",
    "format",
    "json_build_array",
    "json_build_object",
    "jsonb_build_array",
    "jsonb_build_object",
    "num_nonnulls",
    "num_nulls",
];

/// The statement with literals and parameters replaced; `None` if the result failed the
/// final check (see the module docs).
pub(super) fn normalized(statement: &Statement, kept: &Kept) -> Option<String> {
    let mut copy = statement.clone();
    let mut numberer = Numberer {
        kept,
        casts: Vec::new(),
        bare: HashSet::new(),
        as_text: HashSet::new(),
    };
    let _ = copy.visit(&mut numberer);
    let text = copy.to_string();
    holds_no_value(&text).then_some(text)
}

struct Numberer<'k> {
    kept: &'k Kept,
    /// The cast of each parameter written so far (`$n` is at `n - 1`); `None` for bare.
    casts: Vec<Option<DataType>>,
    /// Numbers typed by their clause (LIMIT, OFFSET, FETCH), left bare.
    bare: HashSet<Span>,
    /// Strings without a type context, cast to `TEXT`.
    as_text: HashSet<Span>,
}

/// The type PostgreSQL gives a numeric literal (and the masked cache key keeps).
pub(super) fn number_type(text: &str) -> Option<DataType> {
    if text.contains(['.', 'e', 'E']) {
        Some(DataType::Numeric(ExactNumberInfo::None))
    } else if text.parse::<i32>().is_ok() {
        Some(DataType::Integer(None))
    } else if text.parse::<i64>().is_ok() {
        Some(DataType::BigInt(None))
    } else if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
        Some(DataType::Numeric(ExactNumberInfo::None))
    } else {
        None
    }
}

fn placeholder(number: usize) -> Expr {
    Expr::Value(Value::Placeholder(format!("${number}")).with_empty_span())
}

fn cast(expr: Expr, data_type: DataType) -> Expr {
    Expr::Cast {
        kind: CastKind::DoubleColon,
        expr: Box::new(expr),
        data_type,
        format: None,
    }
}

/// The number of a `$n` this module wrote, bare or under the cast it added.
fn parameter(expr: &Expr) -> Option<usize> {
    match expr {
        Expr::Value(ValueWithSpan {
            value: Value::Placeholder(text),
            ..
        }) => text.strip_prefix('$')?.parse().ok(),
        Expr::Cast {
            kind: CastKind::DoubleColon,
            expr,
            ..
        } => match expr.as_ref() {
            inner @ Expr::Value(_) => parameter(inner),
            _ => None,
        },
        _ => None,
    }
}

fn literal_span(expr: &Expr) -> Option<Span> {
    match expr {
        Expr::Value(value) => Some(value.span),
        _ => None,
    }
}

impl Numberer<'_> {
    fn cast_of(&self, number: usize) -> Option<&DataType> {
        self.casts.get(number.checked_sub(1)?)?.as_ref()
    }

    /// The one type of the parameters `first..first + count`, for an array of them: bare
    /// (`Some(None)`) when none is cast, the widest numeric type when all are numbers, and
    /// no answer when they are mixed.
    fn element_type(&self, first: usize, count: usize) -> Option<Option<DataType>> {
        let rank = |data_type: &DataType| match data_type {
            DataType::Integer(_) => 1,
            DataType::BigInt(_) => 2,
            _ => 3,
        };
        let casts: Vec<Option<&DataType>> = (first..first + count)
            .map(|number| self.cast_of(number))
            .collect();
        if casts.iter().all(Option::is_none) {
            return Some(None);
        }
        let numbers: Option<Vec<&DataType>> = casts.into_iter().collect();
        let widest = numbers?
            .into_iter()
            .max_by_key(|data_type| rank(data_type))?;
        match widest {
            DataType::Integer(_) | DataType::BigInt(_) | DataType::Numeric(_) => {
                Some(Some(widest.clone()))
            }
            _ => None,
        }
    }

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
        let Some(first) = list.first().and_then(parameter) else {
            return;
        };
        let consecutive = list
            .iter()
            .enumerate()
            .all(|(offset, item)| parameter(item) == Some(first + offset));
        if !consecutive || first + list.len() != self.casts.len() + 1 {
            return;
        }
        let Some(element) = self.element_type(first, list.len()) else {
            return;
        };
        let right = match element {
            Some(element) => cast(
                placeholder(first),
                DataType::Array(ArrayElemTypeDef::SquareBracket(Box::new(element), None)),
            ),
            None => placeholder(first),
        };
        let left = std::mem::replace(left, Box::new(placeholder(first)));
        *expr = if *negated {
            Expr::AllOp {
                left,
                compare_op: BinaryOperator::NotEq,
                right: Box::new(right),
            }
        } else {
            Expr::AnyOp {
                left,
                compare_op: BinaryOperator::Eq,
                right: Box::new(right),
                is_some: false,
            }
        };
        self.casts.truncate(first);
        if let Some(slot) = self.casts.last_mut() {
            *slot = None;
        }
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

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let mut clause_values = Vec::new();
        match &query.limit_clause {
            Some(LimitClause::LimitOffset { limit, offset, .. }) => {
                clause_values.extend(limit.as_ref());
                clause_values.extend(offset.as_ref().map(|offset| &offset.value));
            }
            Some(LimitClause::OffsetCommaLimit { offset, limit }) => {
                clause_values.extend([offset, limit]);
            }
            None => {}
        }
        clause_values.extend(
            query
                .fetch
                .as_ref()
                .and_then(|fetch| fetch.quantity.as_ref()),
        );
        self.bare
            .extend(clause_values.into_iter().filter_map(literal_span));
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Expr::Function(function) = expr else {
            return ControlFlow::Continue(());
        };
        let takes_any = names::parts(&function.name)
            .and_then(|parts| parts.last().cloned())
            .is_some_and(|name| ANY_FUNCTIONS.contains(&name.as_str()));
        if let (true, FunctionArguments::List(list)) = (takes_any, &function.args) {
            for arg in &list.args {
                if let FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(value))) = arg {
                    if matches!(value.value, Value::SingleQuotedString(_)) {
                        self.as_text.insert(value.span);
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<()> {
        if stays(value, self.kept) {
            return ControlFlow::Continue(());
        }
        let cast = match &value.value {
            Value::Number(text, _) if !self.bare.contains(&value.span) => number_type(text),
            Value::SingleQuotedString(_) if self.as_text.contains(&value.span) => {
                Some(DataType::Text)
            }
            _ => None,
        };
        self.casts.push(cast);
        value.value = Value::Placeholder(format!("${}", self.casts.len()));
        ControlFlow::Continue(())
    }

    // Children are numbered before their parent is rewritten, so rewrites see `$n`s.
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let replacement = match expr {
            Expr::Value(_) => parameter(expr)
                .and_then(|number| self.cast_of(number).cloned())
                .map(|data_type| cast(expr.clone(), data_type)),
            Expr::TypedString(typed) if matches!(typed.value.value, Value::Placeholder(_)) => Some(
                cast(Expr::Value(typed.value.clone()), typed.data_type.clone()),
            ),
            Expr::Interval(interval) if parameter(&interval.value).is_some() => Some(cast(
                Expr::clone(&interval.value),
                DataType::Interval {
                    fields: None,
                    precision: None,
                },
            )),
            Expr::UnaryOp {
                op: UnaryOperator::Minus | UnaryOperator::Plus,
                expr: inner,
            } if parameter(inner).is_some() => Some(Expr::clone(inner)),
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

/// The final check on a normalized text: no comment, and no string literal other than the
/// kinds [`Kept`] may hold.
fn holds_no_value(text: &str) -> bool {
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, text).tokenize() else {
        return false;
    };
    tokens.into_iter().all(|mut token| match token {
        Token::Whitespace(Whitespace::SingleLineComment { .. })
        | Token::Whitespace(Whitespace::MultiLineComment(_)) => false,
        Token::SingleQuotedString(ref text) => is_enum_token(text) || is_json_key(text),
        // Any other string literal, of the kinds the long-literal cut knows.
        ref mut other => literals::content(other).is_none(),
    })
}

#[cfg(test)]
mod tests {
    use super::holds_no_value;

    #[test]
    fn the_final_check_refuses_every_kind_of_string_literal_and_comment() {
        assert!(holds_no_value(
            "SELECT * FROM t WHERE a = $1 AND s = 'QUEUED' AND p ->> 'kind' = $2"
        ));
        for leaking in [
            "SELECT * FROM t WHERE a = 'alice smith'",
            "SELECT * FROM t WHERE a = E'alice smith'",
            "SELECT * FROM t WHERE a = N'alice smith'",
            "SELECT * FROM t WHERE a = U&'alice smith'",
            "SELECT * FROM t WHERE a = $$alice$$",
            "SELECT * FROM t WHERE a = $tag$alice$tag$",
            "SELECT * FROM t WHERE a = X'0A0B'",
            "SELECT * FROM t WHERE a = B'0101'",
            "SELECT * FROM t WHERE a = $1 -- alice",
            "SELECT * FROM t WHERE a = $1 /* alice */",
        ] {
            assert!(!holds_no_value(leaking), "{leaking}");
        }
    }
}
