//! PostgreSQL index names: `<table>_<col>_<col>_idx`, expressions sanitised
//! (`users_lower_email_idx`), `_trgm` / `_gin` for those methods, `_partial` for partial
//! indexes; at most 63 bytes, past that truncated with a short hash of the full name so two
//! long names stay distinct.

use super::MAX_NAME;
use crate::advise::index::naming::{sanitize, truncate_with_hash};
use crate::advise::{IndexMethod, IndexSpec};
use crate::shape::Target;

/// The conventional name of `index`.
pub(super) fn index_name(index: &IndexSpec) -> String {
    let mut parts = vec![sanitize(&index.namespace.collection)];
    parts.extend(index.keys.iter().map(|key| match &key.target {
        Target::Field(name) => sanitize(name),
        Target::Expression { text, .. } => sanitize(text),
    }));
    match index.method {
        IndexMethod::GinTrgm => parts.push("trgm".to_owned()),
        IndexMethod::Gin => parts.push("gin".to_owned()),
        IndexMethod::Btree | IndexMethod::Text => {}
    }
    if !index.partial.is_empty() {
        parts.push("partial".to_owned());
    }
    parts.push("idx".to_owned());
    truncate_with_hash(&parts.join("_"), MAX_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advise::{Condition, IndexKey, PartialTerm};
    use crate::shape::Namespace;

    fn spec(namespace: Namespace, keys: Vec<IndexKey>, method: IndexMethod) -> IndexSpec {
        IndexSpec::new(namespace, method, keys)
    }

    fn field(name: &str) -> Target {
        Target::Field(name.to_owned())
    }

    #[test]
    fn postgres_names() {
        let ns = Namespace::postgres("app", "public", "users");
        let lower = Target::Expression {
            text: "lower(\"email\")".to_owned(),
            column: "email".to_owned(),
        };
        let index = spec(ns.clone(), vec![IndexKey::asc(lower)], IndexMethod::Btree);
        assert_eq!(index_name(&index), "users_lower_email_idx");
        let mut partial = spec(
            ns.clone(),
            vec![IndexKey::asc(field("id"))],
            IndexMethod::Btree,
        );
        partial.partial.push(PartialTerm {
            target: field("deleted_at"),
            condition: Condition::IsNull,
        });
        assert_eq!(index_name(&partial), "users_id_partial_idx");
        let trgm = spec(ns, vec![IndexKey::asc(field("name"))], IndexMethod::GinTrgm);
        assert_eq!(index_name(&trgm), "users_name_trgm_idx");
    }

    #[test]
    fn long_postgres_names_are_truncated_with_a_hash() {
        let ns = Namespace::postgres("app", "public", "pipeline_runs_with_a_very_long_name");
        let keys = ["customer_identifier", "started_at_timestamp", "status"]
            .iter()
            .map(|name| IndexKey::asc(field(name)))
            .collect();
        let name = index_name(&spec(ns.clone(), keys, IndexMethod::Btree));
        assert!(name.len() <= MAX_NAME);
        assert!(name.starts_with("pipeline_runs_with_a_very_long_name_customer_identifie_"));
        let other_keys = ["customer_identifier", "started_at_timestamp", "kind"]
            .iter()
            .map(|name| IndexKey::asc(field(name)))
            .collect();
        assert_ne!(name, index_name(&spec(ns, other_keys, IndexMethod::Btree)));
    }
}
