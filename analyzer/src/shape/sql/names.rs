//! Names: identifier folding, table references and column resolution.
//!
//! PostgreSQL folds unquoted identifiers to lower case and keeps quoted ones as written, so
//! `"public"."Job"` and `public.job` are different tables while `Job` and `job` are one.
//! Column references are resolved against the FROM list of the query they appear in:
//! - `col`: the first table of the FROM list. Without the catalog we cannot know which
//!   table of a join owns an unqualified column; ORMs qualify every column of a join, and
//!   the first table is the right guess for the single-table queries that remain.
//! - `alias.col` / `table.col`: the table with that alias, or with that name and no alias.
//! - `schema.table.col` (and `db.schema.table.col`): the table with that schema and name.
//!
//! A qualifier that names no table of the scope is a reference to an enclosing query
//! (a correlated subquery): for this scope it is a value known at run time, like a parameter.

use sqlparser::ast::{Ident, ObjectName, ObjectNamePart, TableAlias};

use crate::shape::Namespace;

/// The schema of an unqualified table.
pub(super) const DEFAULT_SCHEMA: &str = "public";

/// An identifier as PostgreSQL sees it: unquoted ones fold to lower case (ASCII only, as
/// PostgreSQL does for multi-byte encodings), quoted ones keep their case.
pub(super) fn fold(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_ascii_lowercase(),
    }
}

/// The folded parts of a dotted name; `None` when a part is not a plain identifier.
pub(super) fn parts(name: &ObjectName) -> Option<Vec<String>> {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => Some(fold(ident)),
            ObjectNamePart::Function(_) => None,
        })
        .collect()
}

/// One entry of a FROM list.
#[derive(Debug, Clone)]
pub(super) struct TableRef {
    /// The table's namespace; `None` for a derived table, a CTE or a table function, which
    /// have no index of their own.
    pub(super) namespace: Option<Namespace>,
    /// The schema as written, `None` when unqualified.
    schema: Option<String>,
    /// The table (or CTE) name; empty for anonymous derived tables.
    name: String,
    /// The alias, which hides the name from qualification.
    alias: Option<String>,
}

impl TableRef {
    /// A base table: `t`, `s.t`, `db.s.t`. The database is the connection's, as PostgreSQL
    /// does not reach across databases.
    pub(super) fn table(database: &str, name: &[String], alias: Option<&TableAlias>) -> Self {
        let (schema, table) = match name {
            [.., schema, table] => (Some(schema.clone()), table.clone()),
            [table] => (None, table.clone()),
            [] => (None, String::new()),
        };
        let namespace = Namespace::postgres(
            database,
            schema.as_deref().unwrap_or(DEFAULT_SCHEMA),
            table.as_str(),
        );
        Self {
            namespace: Some(namespace),
            schema,
            name: table,
            alias: alias.map(|alias| fold(&alias.name)),
        }
    }

    /// A FROM entry without indexes of its own: a CTE reference, a derived table, a function.
    pub(super) fn opaque(name: Option<String>, alias: Option<&TableAlias>) -> Self {
        Self {
            namespace: None,
            schema: None,
            name: name.unwrap_or_default(),
            alias: alias.map(|alias| fold(&alias.name)),
        }
    }

    fn answers_to(&self, qualifier: &str) -> bool {
        match &self.alias {
            Some(alias) => alias == qualifier,
            None => !self.name.is_empty() && self.name == qualifier,
        }
    }

    fn answers_to_qualified(&self, schema: &str, table: &str) -> bool {
        self.alias.is_none()
            && self.namespace.is_some()
            && self.name == table
            && self.schema.as_deref().unwrap_or(DEFAULT_SCHEMA) == schema
    }
}

/// What a column reference points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Column {
    /// A column of the scope's table at this index.
    Of {
        /// Index into [`Scope::tables`].
        table: usize,
        /// The column name, folded.
        name: String,
    },
    /// A column of an enclosing query, or of nothing we know: a run-time value here.
    Outer,
}

/// The FROM list of one query level.
#[derive(Debug, Clone, Default)]
pub(super) struct Scope {
    /// The tables, in FROM order (joined tables after the table they join).
    pub(super) tables: Vec<TableRef>,
}

impl Scope {
    /// Resolve a (possibly qualified) column reference. See the module docs for the rules.
    pub(super) fn resolve(&self, parts: &[Ident]) -> Column {
        let found = match parts {
            [column] => (!self.tables.is_empty()).then_some((0, column)),
            [qualifier, column] => {
                let qualifier = fold(qualifier);
                self.position(|table| table.answers_to(&qualifier))
                    .map(|index| (index, column))
            }
            [.., schema, table, column] => {
                let (schema, table) = (fold(schema), fold(table));
                self.position(|entry| entry.answers_to_qualified(&schema, &table))
                    .map(|index| (index, column))
            }
            [] => None,
        };
        match found {
            Some((table, column)) => Column::Of {
                table,
                name: fold(column),
            },
            None => Column::Outer,
        }
    }

    /// The index of the table a qualifier such as `t` in `t.*` names.
    pub(super) fn table_named(&self, name: &[String]) -> Option<usize> {
        match name {
            [table] => self.position(|entry| entry.answers_to(table)),
            [.., schema, table] => self.position(|entry| entry.answers_to_qualified(schema, table)),
            [] => None,
        }
    }

    fn position(&self, matches: impl Fn(&TableRef) -> bool) -> Option<usize> {
        self.tables.iter().position(matches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(text: &str) -> Ident {
        Ident::new(text)
    }

    fn quoted(text: &str) -> Ident {
        Ident::with_quote('"', text)
    }

    fn scope() -> Scope {
        let alias = TableAlias {
            explicit: true,
            name: ident("O"),
            columns: Vec::new(),
            at: None,
        };
        Scope {
            tables: vec![
                TableRef::table("app", &["public".into(), "Users".into()], None),
                TableRef::table("app", &["orders".into()], Some(&alias)),
            ],
        }
    }

    #[test]
    fn unquoted_folds_and_quoted_keeps_case() {
        assert_eq!(fold(&ident("CustomerId")), "customerid");
        assert_eq!(fold(&quoted("CustomerId")), "CustomerId");
    }

    #[test]
    fn columns_resolve_by_alias_name_and_schema() {
        let scope = scope();
        let of = |table: usize, name: &str| Column::Of {
            table,
            name: name.into(),
        };
        assert_eq!(scope.resolve(&[ident("x")]), of(0, "x"));
        assert_eq!(scope.resolve(&[quoted("Users"), ident("ID")]), of(0, "id"));
        assert_eq!(scope.resolve(&[ident("o"), ident("total")]), of(1, "total"));
        // An aliased table no longer answers to its name.
        assert_eq!(scope.resolve(&[ident("orders"), ident("x")]), Column::Outer);
        assert_eq!(
            scope.resolve(&[quoted("public"), quoted("Users"), quoted("Id")]),
            of(0, "Id")
        );
        assert_eq!(
            scope.resolve(&[ident("db"), ident("public"), quoted("Users"), ident("a")]),
            of(0, "a")
        );
        assert_eq!(scope.resolve(&[ident("u"), ident("x")]), Column::Outer);
        assert_eq!(Scope::default().resolve(&[ident("x")]), Column::Outer);
    }
}
