//! One side of a comparison: a column (or an indexable expression of one), a value, or
//! columns inside something no index can serve.
//!
//! An indexable expression is a column wrapped in functions, casts, `EXTRACT`, `AT TIME ZONE`
//! and JSON accesses, with nothing beside it but code-like literals: `lower(email)`,
//! `date(ts)`, `created_at::date`, `payload->>'kind'`, `date_trunc('day', created_at)`,
//! `(ts AT TIME ZONE 'UTC')::date`. Its [`Target::Expression`] text is
//! rendered from the syntax tree with names only (see `canonical`), so two
//! spellings of one expression are one target.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, CastKind, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments,
    Query, UnaryOperator, Value, ValueWithSpan, Visit, Visitor,
};
use sqlparser::tokenizer::Span;

use super::canonical::canonical;
use super::constants::{is_enum_token, is_json_key, string_literal, Kept};
use super::names::{Column, Scope};
use crate::shape::{Target, ValueType};

/// Longest canonical text kept for an expression no index serves; longer ones are named by
/// their first column only.
const MAX_OPAQUE_TEXT: usize = 256;

/// What one side of a comparison is.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Operand {
    /// A column, or an indexable expression of one column, of the table at `table`.
    Target {
        /// Index into the scope.
        table: usize,
        /// The column or expression.
        target: Target,
    },
    /// Nothing from this scope: a literal or parameter ([`ValueType::Param`]), or an
    /// expression of those, of outer columns, or a scalar subquery ([`ValueType::Other`]).
    Value(ValueType),
    /// Columns of this scope inside an expression no index serves: one target per table.
    Opaque(Vec<(usize, Target)>),
}

impl Operand {
    /// The targets it names: one for a target, none for a value.
    pub(super) fn into_targets(self) -> Vec<(usize, Target)> {
        match self {
            Operand::Target { table, target } => vec![(table, target)],
            Operand::Opaque(targets) => targets,
            Operand::Value(_) => Vec::new(),
        }
    }
}

/// Classify one side of a comparison. Literals of an indexable expression are added to `kept`.
pub(super) fn operand(scope: &Scope, expr: &Expr, kept: &mut Kept) -> Operand {
    let expr = strip_nested(expr);
    if is_literal(expr) {
        return Operand::Value(ValueType::Param);
    }
    let columns = columns(scope, expr);
    let Some((first_table, first_column)) = columns.first() else {
        return Operand::Value(ValueType::Other);
    };
    if let Expr::Identifier(_) | Expr::CompoundIdentifier(_) = expr {
        return Operand::Target {
            table: *first_table,
            target: Target::Field(first_column.clone()),
        };
    }
    let mut literals = Vec::new();
    if columns.len() == 1 && indexable(expr, &mut literals) {
        literals.into_iter().for_each(|span| kept.keep(span));
        return Operand::Target {
            table: *first_table,
            target: Target::Expression {
                text: canonical(expr, kept),
                column: first_column.clone(),
            },
        };
    }
    Operand::Opaque(opaque_targets(expr, &columns, kept))
}

/// The target an expression no index serves is known by: its canonical text when it is over
/// one table and short, else its first column of each table.
fn opaque_targets(expr: &Expr, columns: &[(usize, String)], kept: &Kept) -> Vec<(usize, Target)> {
    let mut targets: Vec<(usize, Target)> = Vec::new();
    for (table, column) in columns {
        if !targets.iter().any(|(seen, _)| seen == table) {
            targets.push((*table, Target::Field(column.clone())));
        }
    }
    if let [(table, Target::Field(column))] = targets.as_slice() {
        let text = canonical(expr, kept);
        if text.len() <= MAX_OPAQUE_TEXT {
            return vec![(
                *table,
                Target::Expression {
                    text,
                    column: column.clone(),
                },
            )];
        }
    }
    targets
}

/// Parentheses do not change what an operand is.
pub(super) fn strip_nested(mut expr: &Expr) -> &Expr {
    while let Expr::Nested(inner) = expr {
        expr = inner;
    }
    expr
}

/// A literal or parameter, possibly signed, cast or typed (`-5`, `$1::uuid`, `DATE '...'`).
pub(super) fn is_literal(expr: &Expr) -> bool {
    match strip_nested(expr) {
        Expr::Value(_) | Expr::TypedString(_) => true,
        Expr::Interval(interval) => is_literal(&interval.value),
        Expr::UnaryOp {
            op: UnaryOperator::Minus | UnaryOperator::Plus,
            expr,
        } => is_literal(expr),
        Expr::Cast { expr, .. } => is_literal(expr),
        Expr::Array(array) => array.elem.iter().all(is_literal),
        _ => false,
    }
}

/// The columns of this scope an expression reads, in order, without repeats. Columns inside
/// a subquery belong to the subquery's scope and are not counted.
pub(super) fn columns(scope: &Scope, expr: &Expr) -> Vec<(usize, String)> {
    let mut collector = ColumnCollector {
        scope,
        subquery_depth: 0,
        found: Vec::new(),
    };
    let _ = expr.visit(&mut collector);
    collector.found
}

struct ColumnCollector<'s> {
    scope: &'s Scope,
    subquery_depth: usize,
    found: Vec<(usize, String)>,
}

impl Visitor for ColumnCollector<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.subquery_depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.subquery_depth = self.subquery_depth.saturating_sub(1);
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if self.subquery_depth > 0 {
            return ControlFlow::Continue(());
        }
        let column = match expr {
            Expr::Identifier(ident) => self.scope.resolve(std::slice::from_ref(ident)),
            Expr::CompoundIdentifier(parts) => self.scope.resolve(parts),
            _ => return ControlFlow::Continue(()),
        };
        if let Column::Of { table, name } = column {
            if !self
                .found
                .iter()
                .any(|(seen, seen_name)| *seen == table && *seen_name == name)
            {
                self.found.push((table, name));
            }
        }
        ControlFlow::Continue(())
    }
}

/// Whether `expr` is a column wrapped only in functions, casts and JSON accesses whose other
/// arguments are code-like literals; those literals' positions are added to `literals`.
fn indexable(expr: &Expr, literals: &mut Vec<Span>) -> bool {
    match strip_nested(expr) {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => true,
        Expr::Cast {
            kind: CastKind::Cast | CastKind::DoubleColon,
            expr,
            format: None,
            ..
        } => indexable(expr, literals),
        Expr::BinaryOp {
            left,
            op:
                BinaryOperator::Arrow
                | BinaryOperator::LongArrow
                | BinaryOperator::HashArrow
                | BinaryOperator::HashLongArrow,
            right,
        } => indexable(left, literals) && json_key(right, literals),
        Expr::Function(function) => indexable_function(function, literals),
        Expr::Extract { expr, .. } => indexable(expr, literals),
        Expr::AtTimeZone {
            timestamp,
            time_zone,
        } => match string_literal(time_zone) {
            Some((zone, span)) if is_enum_token(zone) && indexable(timestamp, literals) => {
                literals.push(span);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

/// A JSON key or array index written in the statement.
fn json_key(expr: &Expr, literals: &mut Vec<Span>) -> bool {
    match strip_nested(expr) {
        Expr::Value(ValueWithSpan {
            value: Value::SingleQuotedString(text) | Value::Number(text, _),
            span,
        }) if is_json_key(text) => {
            literals.push(*span);
            true
        }
        _ => false,
    }
}

/// A plain call with one indexable argument and only enum-like string literals beside it.
fn indexable_function(function: &Function, literals: &mut Vec<Span>) -> bool {
    let plain = matches!(function.parameters, FunctionArguments::None)
        && function.filter.is_none()
        && function.over.is_none()
        && function.null_treatment.is_none()
        && function.within_group.is_empty();
    let FunctionArguments::List(list) = &function.args else {
        return false;
    };
    if !plain || list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
        return false;
    }
    let mut columns = 0;
    for arg in &list.args {
        let FunctionArg::Unnamed(FunctionArgExpr::Expr(arg)) = arg else {
            return false;
        };
        match string_literal(arg) {
            Some((text, span)) if is_enum_token(text) => literals.push(span),
            Some(_) => return false,
            None if indexable(arg, literals) => columns += 1,
            None => return false,
        }
    }
    columns == 1
}
