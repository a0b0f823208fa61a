//! What PostgreSQL prints, read back into the analyzer's terms.
//!
//! `pg_get_indexdef(index, k, true)` prints a key as a column name or an expression, and
//! `pg_get_expr` prints a partial predicate. An expression key must compare equal to the
//! target a query's shape carries, so it is rewritten into the analyzer's canonical text
//! (`lower("email")`, `"payload" ->> 'kind'`, `("ts" AT TIME ZONE 'UTC')::DATE`): names
//! folded and double-quoted, function names in lower case, and the decorations PostgreSQL
//! adds taken off: the `::text` of literals and of `varchar` columns, and parentheses
//! around single terms and around the whole key.

use std::ops::ControlFlow;

use indextap_analyzer::advise::{Condition, PartialTerm};
use indextap_analyzer::shape::Target;
use sqlparser::ast::{
    BinaryOperator, DataType, Expr, Ident, ObjectNamePart, UnaryOperator, Value, VisitMut,
    VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// A key as printed by `pg_get_indexdef`: a column name, or an expression in the
/// analyzer's canonical text.
pub(super) fn target_of(text: &str) -> Target {
    let parsed = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr());
    match parsed.map(canonical) {
        Ok(Expr::Identifier(ident)) => Target::Field(ident.value),
        Ok(expr) => Target::Expression {
            text: expr.to_string(),
            column: first_column(&expr).unwrap_or_default(),
        },
        Err(_) => Target::Field(unquote(text)),
    }
}

/// `expr` in the analyzer's canonical form (see the module docs).
fn canonical(mut expr: Expr) -> Expr {
    let _ = expr.visit(&mut Canonicalizer);
    strip_parentheses(expr)
}

struct Canonicalizer;

impl VisitorMut for Canonicalizer {
    type Break = ();

    // Children first, so that nested decorations come off from the inside out.
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let replacement = match expr {
            Expr::Identifier(ident) => Some(Expr::Identifier(quoted(ident))),
            Expr::CompoundIdentifier(parts) => {
                parts.last().map(|column| Expr::Identifier(quoted(column)))
            }
            Expr::Function(function) => {
                for part in &mut function.name.0 {
                    if let ObjectNamePart::Identifier(ident) = part {
                        if ident.quote_style.is_none() {
                            ident.value = ident.value.to_ascii_lowercase();
                        }
                    }
                }
                None
            }
            // PostgreSQL types every literal it prints (`'kind'::text`) and casts `varchar`
            // columns to text inside text functions (`lower(email::text)`).
            Expr::Cast {
                expr: inner,
                data_type: DataType::Text,
                ..
            } if is_single_term(inner) => Some(inner.as_ref().clone()),
            Expr::Nested(inner) if is_single_term(inner) => Some(inner.as_ref().clone()),
            _ => None,
        };
        if let Some(replacement) = replacement {
            *expr = replacement;
        }
        ControlFlow::Continue(())
    }
}

/// A column, a literal, a function call or a parenthesised expression: parentheses around
/// it change nothing.
fn is_single_term(expr: &Expr) -> bool {
    matches!(
        expr,
        Expr::Identifier(_) | Expr::Value(_) | Expr::Function(_) | Expr::Nested(_)
    )
}

/// The whole key is printed in parentheses when it is not a function call.
fn strip_parentheses(expr: Expr) -> Expr {
    match expr {
        Expr::Nested(inner) => strip_parentheses(*inner),
        other => other,
    }
}

/// A column name, folded and always double-quoted.
fn quoted(ident: &Ident) -> Ident {
    let name = match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_ascii_lowercase(),
    };
    Ident::with_quote('"', name)
}

/// The first column an expression mentions.
fn first_column(expr: &Expr) -> Option<String> {
    let mut found = None;
    let _ = sqlparser::ast::visit_expressions(expr, |e| {
        if let Expr::Identifier(ident) = e {
            found = Some(ident.value.clone());
            return std::ops::ControlFlow::Break(());
        }
        std::ops::ControlFlow::Continue(())
    });
    found
}

pub(super) fn unquote(text: &str) -> String {
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .map(|t| t.replace("\"\"", "\""))
        .unwrap_or_else(|| text.to_string())
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn expression(text: &str, column: &str) -> Target {
        Target::Expression {
            text: text.to_string(),
            column: column.to_string(),
        }
    }

    /// Keys exactly as PostgreSQL 15 prints them, and the canonical text the analyzer gives
    /// the same expression in a query.
    #[test]
    fn printed_keys_read_as_the_analyzer_writes_them() {
        let cases = [
            ("lower(email::text)", r#"lower("email")"#, "email"),
            ("lower(email)", r#"lower("email")"#, "email"),
            (
                "(payload ->> 'kind'::text)",
                r#""payload" ->> 'kind'"#,
                "payload",
            ),
            ("date(ts)", r#"date("ts")"#, "ts"),
            (
                "((created_at AT TIME ZONE 'UTC'::text)::date)",
                r#"("created_at" AT TIME ZONE 'UTC')::DATE"#,
                "created_at",
            ),
            (
                "date_trunc('day'::text, ts)",
                r#"date_trunc('day', "ts")"#,
                "ts",
            ),
            (r#"upper("Name")"#, r#"upper("Name")"#, "Name"),
            ("EXTRACT(year FROM ts)", r#"EXTRACT(YEAR FROM "ts")"#, "ts"),
            ("(ts::date)", r#""ts"::DATE"#, "ts"),
        ];
        for (printed, text, column) in cases {
            assert_eq!(target_of(printed), expression(text, column), "{printed}");
        }
    }

    #[test]
    fn printed_columns_are_fields() {
        assert_eq!(target_of("job_id"), Target::Field("job_id".into()));
        assert_eq!(
            target_of(r#""startedAt""#),
            Target::Field("startedAt".into())
        );
    }
}
