//! The canonical text of an expression target: names folded and always double-quoted,
//! qualifiers dropped, unquoted function names in lower case, and every literal that
//! [`Kept`] does not list written as `?`. Rendered by sqlparser from a scrubbed copy of the
//! tree: `lower("email")`, `"payload" ->> 'kind'`, `date_trunc('day', "ts")`.

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Ident, ObjectNamePart, Value, ValueWithSpan, VisitMut, VisitorMut};

use super::constants::Kept;
use super::names::fold;

/// The canonical text of an expression.
pub(super) fn canonical(expr: &Expr, kept: &Kept) -> String {
    let mut copy = expr.clone();
    let _ = copy.visit(&mut Canonicalizer { kept });
    copy.to_string()
}

/// Whether a literal stays as written: booleans, `NULL` and what [`Kept`] lists.
pub(super) fn stays(value: &ValueWithSpan, kept: &Kept) -> bool {
    matches!(value.value, Value::Boolean(_) | Value::Null) || kept.contains(&value.span)
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

#[cfg(test)]
mod tests {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    use super::*;

    fn canonical_of(text: &str) -> String {
        let expr = Parser::new(&PostgreSqlDialect {})
            .try_with_sql(text)
            .and_then(|mut parser| parser.parse_expr());
        match expr {
            Ok(expr) => canonical(&expr, &Kept::default()),
            Err(error) => panic!("{error}"),
        }
    }

    #[test]
    fn names_fold_qualifiers_drop_and_values_hide() {
        assert_eq!(canonical_of("LOWER(u.Email)"), r#"lower("email")"#);
        assert_eq!(
            canonical_of(r#"lower("public"."users"."Email")"#),
            r#"lower("Email")"#
        );
        assert_eq!(
            canonical_of("coalesce(a, 'secret', 42)"),
            r#"coalesce("a", ?, ?)"#
        );
        assert_eq!(
            canonical_of("a IS NULL OR b = true"),
            r#""a" IS NULL OR "b" = true"#
        );
    }
}
