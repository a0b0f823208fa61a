//! PostgreSQL's rules.
//!
//! - A leaf: `IS NULL` / `IS NOT NULL`, and a boolean or enum-like token list that every
//!   execution wrote into the SQL, are partial-index (`WHERE`) terms, not keys: NULL tests
//!   are mostly soft-delete markers, and a constant selects the rows an index needs to hold.
//!   Unanchored `LIKE` / `ILIKE` / regex need a trigram GIN index, jsonb containment a GIN.
//! - ESR: index keys carry `NULLS FIRST` / `NULLS LAST` when a sort asks for the non-default
//!   placement. A short select list can be covered with `INCLUDE`.
//! - An expression whose literal lowering hid as a value (`coalesce("n", ?)`) is never a key
//!   or a partial term: the statement would not build without the value.
//! - An expression key matches an existing index in the form PostgreSQL stores it in, without
//!   the casts and parentheses it adds (`shape::sql::index_form`). No index exists
//!   implicitly: the primary key is read from the catalog like any other.
//!   A `*_pkey` index is never dropped.
//! - `pg_catalog`, `information_schema` and `pg_toast*` schemas are PostgreSQL's own.
//! - Names: `<table>_<col>_<col>_idx` (see `naming`), at most 63 bytes, unique per schema.
//! - Verified with planner costs and HypoPG hypothetical indexes (`CREATE INDEX` text in
//!   `ddl`). Inserts and non-HOT updates write every index; a delete only marks the row.
//!
//! ## Layout
//! - this file: [`PostgreSql`].
//! - [`ddl`]: `CREATE INDEX` / `DROP INDEX` text.
//! - `naming`: the conventional index name.

pub mod ddl;
mod naming;

use crate::advise::engine::{EngineRules, LeafUse};
use crate::advise::{Condition, EvidenceMethod, IndexMethod, IndexSpec, WriteLoad};
use crate::shape::sql::{builds_as_written, index_form};
use crate::shape::{Constant, Leaf, Namespace, OpClass, Target};

/// PostgreSQL's identifier limit (NAMEDATALEN - 1).
pub const MAX_NAME: usize = 63;

/// The schema of an unqualified table.
const DEFAULT_SCHEMA: &str = "public";

/// PostgreSQL's rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostgreSql;

impl EngineRules for PostgreSql {
    fn leaf_use(&self, leaf: &Leaf, constant: Option<&Constant>) -> LeafUse {
        match (constant, leaf.class) {
            (_, OpClass::IsNull) => LeafUse::partial(leaf, Condition::IsNull),
            (_, OpClass::NotNull) => LeafUse::partial(leaf, Condition::IsNotNull),
            (Some(Constant::Bool(value)), _) => LeafUse::partial(leaf, Condition::Bool(*value)),
            (Some(Constant::Tokens(tokens)), _) if !tokens.is_empty() => {
                LeafUse::partial(leaf, Condition::InTokens(tokens.clone()))
            }
            (_, OpClass::Eq) => LeafUse::Equality,
            (_, OpClass::In) => LeafUse::In,
            (_, OpClass::Range | OpClass::Prefix) => LeafUse::Range,
            (_, OpClass::Infix) => LeafUse::Special(IndexMethod::GinTrgm),
            (_, OpClass::JsonContains) => LeafUse::Special(IndexMethod::Gin),
            _ => LeafUse::FilterOnly,
        }
    }

    fn builds_key(&self, target: &Target) -> bool {
        match target {
            Target::Field(_) => true,
            Target::Expression { text, .. } => builds_as_written(text),
        }
    }

    fn orders_nulls(&self) -> bool {
        true
    }

    fn covers(&self) -> bool {
        true
    }

    fn key_form(&self, target: &Target) -> Target {
        index_form(target)
    }

    fn implicit_indexes(&self, _namespace: &Namespace) -> Vec<IndexSpec> {
        Vec::new()
    }

    fn is_protected(&self, index: &IndexSpec) -> bool {
        index
            .name
            .as_deref()
            .is_some_and(|name| name.ends_with("_pkey"))
    }

    fn is_system(&self, namespace: &Namespace) -> bool {
        let schema = namespace.schema.as_deref().unwrap_or(DEFAULT_SCHEMA);
        matches!(schema, "pg_catalog" | "information_schema") || schema.starts_with("pg_toast")
    }

    fn index_name(&self, index: &IndexSpec) -> String {
        naming::index_name(index)
    }

    fn max_name_len(&self) -> usize {
        MAX_NAME
    }

    fn name_scope(&self, namespace: &Namespace) -> String {
        format!(
            "pg:{}:{}",
            namespace.database,
            namespace.schema.as_deref().unwrap_or(DEFAULT_SCHEMA)
        )
    }

    fn verification(&self) -> Option<EvidenceMethod> {
        Some(EvidenceMethod::Hypopg)
    }

    fn hypothetical_ddl(&self, index: &IndexSpec) -> Option<String> {
        Some(ddl::hypothetical(index))
    }

    fn index_writes(&self, load: &WriteLoad) -> u64 {
        load.inserts.saturating_add(load.updates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogs_are_postgresqls_own() {
        for schema in [
            "pg_catalog",
            "information_schema",
            "pg_toast",
            "pg_toast_temp_1",
        ] {
            assert!(PostgreSql.is_system(&Namespace::postgres("app", schema, "t")));
        }
        assert!(!PostgreSql.is_system(&Namespace::postgres("app", "public", "pg_class")));
        assert!(!PostgreSql.is_system(&Namespace::postgres("app", "pg_stuff", "t")));
    }

    #[test]
    fn deletes_do_not_write_indexes() {
        let load = WriteLoad {
            inserts: 3,
            updates: 5,
            deletes: 7,
            reads: 100,
        };
        assert_eq!(PostgreSql.index_writes(&load), 8);
    }
}
