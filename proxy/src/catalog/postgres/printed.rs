//! What PostgreSQL prints, read back into the analyzer's terms.
//!
//! `pg_get_indexdef(index, k, true)` prints a key as a column name or an expression; it is
//! read by the analyzer's own canonicaliser
//! ([`printed_key`](indextap_analyzer::shape::sql::printed_key)), the one that writes the
//! targets of query shapes, so the two cannot drift. `pg_get_expr` prints a partial
//! predicate, read here into [`PartialTerm`]s.

use indextap_analyzer::advise::{Condition, PartialTerm};
use indextap_analyzer::shape::Target;
use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator, Value};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// The conjuncts of a partial predicate, when every one is of a kind the advisor proposes.
pub(super) fn partial_terms(text: &str) -> Option<Vec<PartialTerm>> {
    let expr = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr())
        .ok()?;
    let mut conjuncts = Vec::new();
    flatten_and(expr, &mut conjuncts);
    let mut terms = conjuncts
        .into_iter()
        .map(partial_term)
        .collect::<Option<Vec<_>>>()?;
    terms.sort();
    Some(terms)
}

fn flatten_and(expr: Expr, out: &mut Vec<Expr>) {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            flatten_and(*left, out);
            flatten_and(*right, out);
        }
        Expr::Nested(inner) => flatten_and(*inner, out),
        other => out.push(other),
    }
}

fn column_of(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(ident) => Some(ident.value.clone()),
        Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.clone()),
        Expr::Nested(inner) => column_of(inner),
        Expr::Cast { expr, .. } => column_of(expr),
        _ => None,
    }
}

fn partial_term(expr: Expr) -> Option<PartialTerm> {
    let term = |column: String, condition| {
        Some(PartialTerm {
            target: Target::Field(column),
            condition,
        })
    };
    match expr {
        Expr::IsNull(inner) => term(column_of(&inner)?, Condition::IsNull),
        Expr::IsNotNull(inner) => term(column_of(&inner)?, Condition::IsNotNull),
        Expr::IsTrue(inner) => term(column_of(&inner)?, Condition::Bool(true)),
        Expr::IsFalse(inner) => term(column_of(&inner)?, Condition::Bool(false)),
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => term(column_of(&expr)?, Condition::Bool(false)),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } => {
            let column = column_of(&left)?;
            match literal_of(&right)? {
                Literal::Bool(b) => term(column, Condition::Bool(b)),
                Literal::Text(t) => term(column, Condition::InTokens(vec![t])),
            }
        }
        Expr::InList {
            expr,
            list,
            negated: false,
        } => {
            let column = column_of(&expr)?;
            tokens(column, list.iter())
        }
        Expr::AnyOp {
            left,
            compare_op: BinaryOperator::Eq,
            right,
            ..
        } => {
            let column = column_of(&left)?;
            match strip_cast(&right) {
                Expr::Array(array) => tokens(column, array.elem.iter()),
                _ => None,
            }
        }
        Expr::Nested(inner) => partial_term(*inner),
        other => term(column_of(&other)?, Condition::Bool(true)),
    }
}

fn tokens<'a>(column: String, items: impl Iterator<Item = &'a Expr>) -> Option<PartialTerm> {
    let mut values = items
        .map(|item| match literal_of(item)? {
            Literal::Text(t) => Some(t),
            Literal::Bool(_) => None,
        })
        .collect::<Option<Vec<_>>>()?;
    values.sort();
    Some(PartialTerm {
        target: Target::Field(column),
        condition: Condition::InTokens(values),
    })
}

enum Literal {
    Bool(bool),
    Text(String),
}

fn strip_cast(expr: &Expr) -> &Expr {
    match expr {
        Expr::Cast { expr, .. } | Expr::Nested(expr) => strip_cast(expr),
        other => other,
    }
}

fn literal_of(expr: &Expr) -> Option<Literal> {
    match strip_cast(expr) {
        Expr::Value(v) => match &v.value {
            Value::Boolean(b) => Some(Literal::Bool(*b)),
            Value::SingleQuotedString(s) => Some(Literal::Text(s.clone())),
            _ => None,
        },
        _ => None,
    }
}
