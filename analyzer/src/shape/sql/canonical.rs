//! The one canonical text of an SQL expression, for the targets of query shapes and for the
//! index keys PostgreSQL prints back (`pg_get_indexdef`), so that an existing expression
//! index is recognised as the one a query needs.
//!
//! Both sources get the same rewrites, rendered by sqlparser from a rewritten copy of the
//! tree: column names folded and always double-quoted, qualifiers dropped, unquoted function
//! names in lower case (`lower("email")`, `"payload" ->> 'kind'`, `date_trunc('day', "ts")`).
//! They differ in two ways:
//! - literals: a query's literals are written as `?` unless [`Kept`] lists them (the
//!   code-like ones an expression index needs); what PostgreSQL prints is the index's own
//!   definition, and keeps them all;
//! - decorations: PostgreSQL prints the implicit casts it resolved (`'kind'::text`,
//!   `'{a,b}'::text[]`, `lower((email)::text)` for a `varchar` column) and parentheses around single terms and
//!   around the whole key. [`index_form`] takes them off; a query's text keeps what the query
//!   wrote, because the text is part of the shape's id and the cast may be needed to create
//!   the index (`lower(n::text)` on an integer).
//!
//! Comparing a query's target with an existing index's key goes through [`index_form`] on
//! both sides: `UPPER("users"."email"::text)` (Django's `__iexact`) and an index printed as
//! `upper((email)::text)` are then both `upper("email")`.

use std::ops::ControlFlow;

use sqlparser::ast::{
    DataType, Expr, Ident, ObjectNamePart, Value, ValueWithSpan, VisitMut, VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::constants::Kept;
use super::names::fold;
use crate::shape::Target;

/// The canonical text of an expression in a query.
pub(super) fn canonical(expr: &Expr, kept: &Kept) -> String {
    let mut copy = expr.clone();
    let _ = copy.visit(&mut Canonicalizer {
        literals: Literals::Kept(kept),
        undecorate: false,
    });
    copy.to_string()
}

/// Whether a literal stays as written: booleans, `NULL` and what [`Kept`] lists.
pub(super) fn stays(value: &ValueWithSpan, kept: &Kept) -> bool {
    matches!(value.value, Value::Boolean(_) | Value::Null) || kept.contains(&value.span)
}

/// Whether an index can be built on the expression `text` as written: its canonical text
/// stands for no literal it hid (`coalesce("n", ?)`: the `?` was a value, and the index
/// needs it back). Text that does not parse proves nothing, so it does not build either.
pub fn builds_as_written(text: &str) -> bool {
    struct Hidden(bool);
    impl VisitorMut for Hidden {
        type Break = ();
        fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<()> {
            if matches!(&value.value, Value::Placeholder(p) if p == "?") {
                self.0 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let Some(mut expr) = parse(text) else {
        return false;
    };
    let mut hidden = Hidden(false);
    let _ = expr.visit(&mut hidden);
    !hidden.0
}

/// An index key as PostgreSQL prints it (`pg_get_indexdef(index, k, true)`): a column, or
/// an expression in its [`index_form`]. Text that does not parse is taken as a column name.
pub fn printed_key(text: &str) -> Target {
    match parse(text) {
        Some(Expr::Identifier(ident)) => Target::Field(fold(&ident)),
        Some(expr) => expression(undecorated(expr)),
        None => Target::Field(unquote(text)),
    }
}

/// The form PostgreSQL stores an index expression in: the canonical text without the casts
/// and parentheses it adds or drops on its own. Applied to a query's target, it gives what
/// an index created from that target would print as; a column, or text that does not parse,
/// is returned as it is.
pub fn index_form(target: &Target) -> Target {
    match target {
        Target::Field(_) => target.clone(),
        Target::Expression { text, .. } => match parse(text) {
            Some(expr) => expression(undecorated(expr)),
            None => target.clone(),
        },
    }
}

/// `"name"` → `name`, with doubled quotes undoubled; anything else as it is.
pub fn unquote(text: &str) -> String {
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .map(|t| t.replace("\"\"", "\""))
        .unwrap_or_else(|| text.to_string())
}

fn parse(text: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(text)
        .and_then(|mut parser| parser.parse_expr())
        .ok()
}

/// A canonical expression as a target, on the first column it mentions.
fn expression(expr: Expr) -> Target {
    match expr {
        Expr::Identifier(ident) => Target::Field(ident.value),
        expr => Target::Expression {
            column: first_column(&expr).unwrap_or_default(),
            text: expr.to_string(),
        },
    }
}

/// `expr` canonical, every literal kept, decorations off.
fn undecorated(mut expr: Expr) -> Expr {
    let _ = expr.visit(&mut Canonicalizer {
        literals: Literals::All,
        undecorate: true,
    });
    strip_parentheses(expr)
}

/// Which literals an expression keeps as written.
enum Literals<'k> {
    /// Those [`stays`] allows; the others become `?`.
    Kept(&'k Kept),
    /// All of them.
    All,
}

struct Canonicalizer<'k> {
    literals: Literals<'k>,
    /// Take off the casts and parentheses PostgreSQL adds (see the module docs).
    undecorate: bool,
}

impl VisitorMut for Canonicalizer<'_> {
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
                            ident.value = fold(ident);
                        }
                    }
                }
                None
            }
            // PostgreSQL types every literal it prints (`'kind'::text`) and casts `varchar`
            // columns to text inside text functions (`lower((email)::text)`).
            Expr::Cast {
                expr: inner,
                data_type: DataType::Text,
                ..
            } if self.undecorate && is_single_term(inner) => Some(inner.as_ref().clone()),
            // And a literal keeps the type it was resolved to: `'{a,b}'::text[]`.
            Expr::Cast { expr: inner, .. }
                if self.undecorate && matches!(**inner, Expr::Value(_)) =>
            {
                Some(inner.as_ref().clone())
            }
            Expr::Nested(inner) if self.undecorate && is_single_term(inner) => {
                Some(inner.as_ref().clone())
            }
            _ => None,
        };
        if let Some(replacement) = replacement {
            *expr = replacement;
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<()> {
        if let Literals::Kept(kept) = self.literals {
            if !stays(value, kept) {
                value.value = Value::Placeholder("?".into());
            }
        }
        ControlFlow::Continue(())
    }
}

/// A column, a literal, a function call or a parenthesised expression: parentheses around
/// it, or a cast of it to `text` that PostgreSQL added, change nothing an index sees.
fn is_single_term(expr: &Expr) -> bool {
    matches!(
        expr,
        Expr::Identifier(_) | Expr::Value(_) | Expr::Function(_) | Expr::Nested(_)
    )
}

/// PostgreSQL prints the whole key in parentheses when it is not a function call.
fn strip_parentheses(expr: Expr) -> Expr {
    match expr {
        Expr::Nested(inner) => strip_parentheses(*inner),
        other => other,
    }
}

/// A column name, folded and always double-quoted.
fn quoted(ident: &Ident) -> Ident {
    Ident::with_quote('"', fold(ident))
}

/// The first column an expression mentions.
fn first_column(expr: &Expr) -> Option<String> {
    let mut found = None;
    let _ = sqlparser::ast::visit_expressions(expr, |e| {
        if let Expr::Identifier(ident) = e {
            found = Some(ident.value.clone());
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical_of(text: &str) -> String {
        match parse(text) {
            Some(expr) => canonical(&expr, &Kept::default()),
            None => panic!("{text} does not parse"),
        }
    }

    fn expression(text: &str, column: &str) -> Target {
        Target::Expression {
            text: text.to_string(),
            column: column.to_string(),
        }
    }

    #[test]
    fn an_expression_with_a_hidden_literal_does_not_build() {
        for text in [
            r#"coalesce("n", ?)"#,
            r#"("price" * ?)"#,
            r#"substr("code", ?, ?)"#,
        ] {
            assert!(!builds_as_written(text), "{text}");
        }
        for query in [
            "lower(Email)",
            "date(created_at)",
            "upper(email::text)",
            "coalesce(n, NULL)",
        ] {
            let text = canonical_of(query);
            assert!(builds_as_written(&text), "{query} → {text}");
        }
        // Literals lowering keeps (JSON keys, token arguments), and the jsonb `?` operator.
        for printed in [
            r#""payload" ->> 'kind'"#,
            r#"date_trunc('day', "created_at")"#,
            r#""created_at" AT TIME ZONE 'UTC'"#,
            r#""tags" ? 'x'"#,
        ] {
            assert!(builds_as_written(printed), "{printed}");
        }
        assert!(
            !builds_as_written("lower("),
            "unparsable text proves nothing"
        );
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

    #[test]
    fn a_query_keeps_what_it_wrote() {
        // The cast can be needed to create the index, and the text is part of the shape id.
        assert_eq!(
            canonical_of(r#"UPPER("users"."email"::text)"#),
            r#"upper("email"::TEXT)"#
        );
        assert_eq!(canonical_of("lower((email))"), r#"lower(("email"))"#);
    }

    /// Keys exactly as PostgreSQL 15 prints them, and the canonical text the analyzer gives
    /// the same expression in a query.
    #[test]
    fn printed_keys_read_as_the_analyzer_writes_them() {
        let cases = [
            ("lower(email::text)", r#"lower("email")"#, "email"),
            ("lower((email)::text)", r#"lower("email")"#, "email"),
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
            (
                "(payload #>> '{a,b}'::text[])",
                r#""payload" #>> '{a,b}'"#,
                "payload",
            ),
            (
                "to_tsvector('english'::regconfig, name)",
                r#"to_tsvector('english', "name")"#,
                "name",
            ),
        ];
        for (printed, text, column) in cases {
            assert_eq!(printed_key(printed), expression(text, column), "{printed}");
        }
    }

    #[test]
    fn printed_columns_are_fields() {
        assert_eq!(printed_key("job_id"), Target::Field("job_id".into()));
        assert_eq!(
            printed_key(r#""startedAt""#),
            Target::Field("startedAt".into())
        );
        assert_eq!(printed_key("Job_Id"), Target::Field("job_id".into()));
    }

    #[test]
    fn a_query_target_and_the_index_made_from_it_meet_in_index_form() {
        let django = expression(r#"upper("email"::TEXT)"#, "email");
        assert_eq!(index_form(&django), printed_key("upper((email)::text)"));
        let plain = expression(r#"upper("email")"#, "email");
        assert_eq!(index_form(&plain), plain);
        let column = Target::Field("email".into());
        assert_eq!(index_form(&column), column);
        let masked = expression(r#"coalesce("a", ?)"#, "a");
        assert_eq!(
            index_form(&masked),
            masked,
            "text that does not parse stays"
        );
    }
}
