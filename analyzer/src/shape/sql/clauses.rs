//! The select list, ORDER BY and GROUP BY of one query level, and the subqueries inside
//! expressions.
//!
//! ORDER BY and GROUP BY entries may name a select-list item by position (`ORDER BY 2`) or
//! alias (`ORDER BY total`); both are resolved to the item's expression first. A sort key
//! goes on the shape of the table its column belongs to. The subqueries inside these
//! clauses are lowered by the statement walk, not here.

use sqlparser::ast::{
    Expr, GroupByExpr, OrderByExpr, OrderBySort, Select, SelectItem,
    SelectItemQualifiedWildcardKind, Value, ValueWithSpan,
};
use sqlparser::tokenizer::Span;

use super::constants::Kept;
use super::frame::Frame;
use super::names::{self, fold};
use super::operand::{columns, operand, strip_nested};
use crate::shape::{SortKey, Target};

/// The select-list columns of each table.
pub(super) fn select_list(frame: &mut Frame, select: &Select) {
    for item in &select.projection {
        match item {
            SelectItem::Wildcard(_) => {
                (0..frame.scope.tables.len()).for_each(|table| frame.project_all(table))
            }
            SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(name), _) => {
                let table = names::parts(name).and_then(|parts| frame.scope.table_named(&parts));
                if let Some(table) = table {
                    frame.project_all(table);
                }
            }
            SelectItem::QualifiedWildcard(..) => {}
            SelectItem::UnnamedExpr(expr)
            | SelectItem::ExprWithAlias { expr, .. }
            | SelectItem::ExprWithAliases { expr, .. } => {
                for (table, column) in columns(&frame.scope, expr) {
                    frame.project(table, column);
                }
            }
        }
    }
}

/// GROUP BY entries, on the table each belongs to.
pub(super) fn group_by(frame: &mut Frame, select: &Select, kept: &mut Kept) {
    let GroupByExpr::Expressions(exprs, _) = &select.group_by else {
        return;
    };
    for expr in exprs {
        let expr = output_expr(select, expr, kept);
        for (table, target) in operand(&frame.scope, expr, kept).into_targets() {
            let name = match target {
                Target::Field(name) => name,
                Target::Expression { text, .. } => text,
            };
            frame.group(table, name);
        }
    }
}

/// ORDER BY keys, with direction and explicit NULLS FIRST/LAST.
pub(super) fn order_by(frame: &mut Frame, select: &Select, keys: &[OrderByExpr], kept: &mut Kept) {
    for key in keys {
        let expr = output_expr(select, &key.expr, kept);
        let direction = match key.options.sort {
            Some(OrderBySort::Desc) => -1,
            _ => 1,
        };
        for (table, target) in operand(&frame.scope, expr, kept).into_targets() {
            if let Some(sort) = frame.sort.get_mut(table) {
                sort.push(SortKey {
                    target,
                    direction,
                    nulls_first: key.options.nulls_first,
                });
            }
        }
    }
}

/// The expression of a select-list item, if it is one (not a wildcard).
pub(super) fn item_expr(item: &SelectItem) -> Option<&Expr> {
    match item {
        SelectItem::UnnamedExpr(expr)
        | SelectItem::ExprWithAlias { expr, .. }
        | SelectItem::ExprWithAliases { expr, .. } => Some(expr),
        SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => None,
    }
}

/// The largest select-list position PostgreSQL accepts (its limit on target entries).
const MAX_POSITION: usize = 1664;

/// A select-list position (`ORDER BY 2`): a small integer literal, and where it is written.
/// A position is code, not a value: it stays in the normalized text, where a parameter
/// would sort by a constant (or be refused after a UNION).
pub(super) fn position(expr: &Expr) -> Option<(usize, Span)> {
    match strip_nested(expr) {
        Expr::Value(ValueWithSpan {
            value: Value::Number(text, false),
            span,
        }) => match text.parse::<usize>() {
            Ok(position @ 1..=MAX_POSITION) => Some((position, *span)),
            _ => None,
        },
        _ => None,
    }
}

/// The select-list expression an ORDER BY / GROUP BY entry names by position or alias, or
/// the entry itself.
fn output_expr<'s>(select: &'s Select, expr: &'s Expr, kept: &mut Kept) -> &'s Expr {
    if let Some((position, span)) = position(expr) {
        kept.keep(span);
        return select
            .projection
            .get(position - 1)
            .and_then(item_expr)
            .unwrap_or(expr);
    }
    match strip_nested(expr) {
        Expr::Identifier(name) => {
            let name = fold(name);
            select
                .projection
                .iter()
                .find_map(|item| match item {
                    SelectItem::ExprWithAlias { expr, alias } if fold(alias) == name => Some(expr),
                    _ => None,
                })
                .unwrap_or(expr)
        }
        _ => expr,
    }
}
