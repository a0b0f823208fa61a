//! PostgreSQL index DDL: `CREATE INDEX CONCURRENTLY IF NOT EXISTS ...`, its `DROP INDEX`,
//! and the plain `CREATE INDEX` HypoPG prices.
//!
//! Columns are always quoted; expressions are written as the shape recorded them, in
//! parentheses (`(lower("email"))`). `NULLS FIRST` / `NULLS LAST` appear only when a sort
//! asked for the non-default placement.

use std::fmt::Write as _;

use crate::advise::{Condition, IndexKey, IndexMethod, IndexSpec, PartialTerm};
use crate::shape::{Namespace, Target};

/// `"name"`, with embedded quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `name` bare when PostgreSQL would read it back unchanged, else quoted.
fn ident(name: &str) -> String {
    let mut chars = name.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_owned()
    } else {
        quote_ident(name)
    }
}

/// `'text'`, with embedded quotes doubled.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `"schema"."table"`.
pub fn table(namespace: &Namespace) -> String {
    format!(
        "{}.{}",
        quote_ident(namespace.schema.as_deref().unwrap_or("public")),
        quote_ident(&namespace.collection)
    )
}

fn target(target: &Target) -> String {
    match target {
        Target::Field(name) => quote_ident(name),
        Target::Expression { text, .. } => format!("({text})"),
    }
}

fn key(index: &IndexSpec, key: &IndexKey) -> String {
    let mut out = target(&key.target);
    match index.method {
        IndexMethod::GinTrgm => out.push_str(" gin_trgm_ops"),
        IndexMethod::Gin | IndexMethod::Text => {}
        IndexMethod::Btree => {
            if key.direction < 0 {
                out.push_str(" DESC");
            }
            match key.nulls_first {
                Some(true) => out.push_str(" NULLS FIRST"),
                Some(false) => out.push_str(" NULLS LAST"),
                None => {}
            }
        }
    }
    out
}

fn method(method: IndexMethod) -> &'static str {
    match method {
        IndexMethod::Btree => "btree",
        IndexMethod::Gin | IndexMethod::GinTrgm | IndexMethod::Text => "gin",
    }
}

/// The partial predicate as SQL: `"deleted_at" IS NULL AND "is_active" = true`.
pub fn where_clause(terms: &[PartialTerm]) -> String {
    let conditions: Vec<String> = terms
        .iter()
        .filter_map(|term| {
            // Expressions keep their own text; columns are quoted.
            let subject = match &term.target {
                Target::Field(name) => quote_ident(name),
                Target::Expression { text, .. } => text.clone(),
            };
            Some(match &term.condition {
                Condition::IsNull | Condition::Exists(false) => format!("{subject} IS NULL"),
                Condition::IsNotNull | Condition::Exists(true) => format!("{subject} IS NOT NULL"),
                Condition::Bool(value) => format!("{subject} = {value}"),
                Condition::InTokens(tokens) => match tokens.as_slice() {
                    [one] => format!("{subject} = {}", literal(one)),
                    _ => {
                        let list: Vec<String> = tokens.iter().map(|t| literal(t)).collect();
                        format!("{subject} IN ({})", list.join(", "))
                    }
                },
                // A BSON type has no SQL meaning; leaving it out only widens the index.
                Condition::Type(_) => return None,
            })
        })
        .collect();
    conditions.join(" AND ")
}

/// `USING method (keys) INCLUDE (...) WHERE ...`, the part shared by both statements.
fn body(index: &IndexSpec) -> String {
    let keys: Vec<String> = index.keys.iter().map(|k| key(index, k)).collect();
    let mut out = format!(
        "{} USING {} ({})",
        table(&index.namespace),
        method(index.method),
        keys.join(", ")
    );
    if !index.include.is_empty() {
        let include: Vec<String> = index.include.iter().map(|c| quote_ident(c)).collect();
        let _ = write!(out, " INCLUDE ({})", include.join(", "));
    }
    let predicate = where_clause(&index.partial);
    if !predicate.is_empty() {
        let _ = write!(out, " WHERE {predicate}");
    }
    out
}

/// `CREATE INDEX CONCURRENTLY IF NOT EXISTS name ON "schema"."table" USING ...;`
pub fn create_statement(index: &IndexSpec, name: &str) -> String {
    let unique = if index.unique { "UNIQUE " } else { "" };
    format!(
        "CREATE {unique}INDEX CONCURRENTLY IF NOT EXISTS {} ON {};",
        ident(name),
        body(index)
    )
}

/// The statement for `hypopg_create_index`: a plain `CREATE INDEX` without a name.
pub fn hypothetical(index: &IndexSpec) -> String {
    format!("CREATE INDEX ON {}", body(index))
}

/// `DROP INDEX CONCURRENTLY IF EXISTS "schema"."name";`
pub fn drop_statement(namespace: &Namespace, name: &str) -> String {
    format!(
        "DROP INDEX CONCURRENTLY IF EXISTS {}.{};",
        quote_ident(namespace.schema.as_deref().unwrap_or("public")),
        quote_ident(name)
    )
}
