//! System objects: namespaces that are counted in the shapes but never advised on.
//!
//! PostgreSQL's catalogs (`pg_catalog`, `information_schema`, `pg_toast*`; an unqualified
//! `pg_*` table is a catalog too, since `pg_catalog` is searched first), MongoDB's `admin`,
//! `local` and `config` databases and `system.*` collections, and the scratch databases of
//! indextap's own sample verification.

use crate::shape::{Engine, Namespace};

/// The prefix of the scratch databases `--mongo-verify sample` creates (and drops).
pub const SCRATCH_DATABASE_PREFIX: &str = "indextap_scratch_";

const POSTGRES_SYSTEM_SCHEMAS: [&str; 2] = ["pg_catalog", "information_schema"];
const MONGO_INTERNAL_DATABASES: [&str; 3] = ["admin", "local", "config"];

/// Whether `namespace` belongs to the server or to indextap rather than to the application.
pub fn is_internal(namespace: &Namespace) -> bool {
    match namespace.engine {
        Engine::Postgresql => {
            let schema = namespace.schema.as_deref().unwrap_or("public");
            POSTGRES_SYSTEM_SCHEMAS.contains(&schema)
                || schema.starts_with("pg_toast")
                || schema.starts_with("pg_temp")
                || (schema == "public" && namespace.collection.starts_with("pg_"))
        }
        Engine::Mongodb => {
            MONGO_INTERNAL_DATABASES.contains(&namespace.database.as_str())
                || namespace.database.starts_with(SCRATCH_DATABASE_PREFIX)
                || namespace.collection.starts_with("system.")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_objects_of_both_engines() {
        for (schema, table) in [
            ("pg_catalog", "pg_class"),
            ("information_schema", "tables"),
            ("pg_toast", "pg_toast_1234"),
            ("public", "pg_type"),
        ] {
            assert!(is_internal(&Namespace::postgres("app", schema, table)));
        }
        assert!(!is_internal(&Namespace::postgres(
            "app", "public", "orders"
        )));
        assert!(!is_internal(&Namespace::postgres(
            "app", "billing", "pg_like"
        )));
        for (database, collection) in [
            ("local", "startup_log"),
            ("admin", "system.users"),
            ("config", "settings"),
            ("app", "system.profile"),
            ("indextap_scratch_12_0", "app.orders"),
        ] {
            assert!(is_internal(&Namespace::mongo(database, collection)));
        }
        assert!(!is_internal(&Namespace::mongo("app", "orders")));
    }
}
