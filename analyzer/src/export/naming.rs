//! Index names, by each engine's (and ORM's) convention.
//!
//! - MongoDB: its own default, `status_1_delivery_date_-1` (text: `$**_text`), with
//!   `_partial` for a partial index so it cannot collide with the full one.
//! - PostgreSQL: `<table>_<col>_<col>_idx`, expressions sanitised (`users_lower_email_idx`),
//!   `_trgm` / `_gin` for those methods, `_partial` for partial indexes; at most 63 bytes,
//!   past that truncated with a short hash of the full name so two long names stay distinct.
//! - Django: at most 30 characters, starting with a letter.

use crate::advise::{IndexMethod, IndexSpec};
use crate::shape::{Engine, Target};

/// PostgreSQL's identifier limit (NAMEDATALEN - 1).
pub const POSTGRES_MAX_NAME: usize = 63;

/// Django's `Index.max_name_length`.
pub const DJANGO_MAX_NAME: usize = 30;

/// The conventional name of an index.
pub fn index_name(index: &IndexSpec) -> String {
    match index.namespace.engine {
        Engine::Mongodb => mongo_name(index),
        Engine::Postgresql => postgres_name(index),
    }
}

fn mongo_name(index: &IndexSpec) -> String {
    let mut parts = Vec::new();
    for key in &index.keys {
        let field = match &key.target {
            Target::Field(name) => name.clone(),
            Target::Expression { text, .. } => text.clone(),
        };
        let direction = match index.method {
            IndexMethod::Text => "text".to_owned(),
            _ => key.direction.to_string(),
        };
        parts.push(format!("{field}_{direction}"));
    }
    let mut name = parts.join("_");
    if !index.partial.is_empty() {
        name.push_str("_partial");
    }
    name
}

fn postgres_name(index: &IndexSpec) -> String {
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
    truncate_with_hash(&parts.join("_"), POSTGRES_MAX_NAME)
}

/// A name Django accepts: at most [`DJANGO_MAX_NAME`] characters, starting with a letter.
pub fn django_name(name: &str) -> String {
    let mut name = sanitize(name);
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        name = format!("ix_{name}");
    }
    truncate_with_hash(&name, DJANGO_MAX_NAME)
}

/// `name` when it fits in `max` bytes, else its head, `_`, and 8 hex digits of its hash.
pub fn truncate_with_hash(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_owned();
    }
    let hash = format!("{:08x}", xxhash_rust::xxh3::xxh3_64(name.as_bytes()) as u32);
    let mut head_len = max.saturating_sub(hash.len() + 1);
    while !name.is_char_boundary(head_len) {
        head_len -= 1;
    }
    let head = name
        .get(..head_len)
        .unwrap_or_default()
        .trim_end_matches('_');
    format!("{head}_{hash}")
}

/// Lowercase ASCII letters, digits and single underscores: `lower("Email")` → `lower_email`.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let trimmed = out.trim_matches('_');
    if trimmed.is_empty() {
        "expr".to_owned()
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advise::{Condition, IndexKey, PartialTerm};
    use crate::shape::Namespace;

    fn spec(namespace: Namespace, keys: Vec<IndexKey>, method: IndexMethod) -> IndexSpec {
        IndexSpec {
            namespace,
            keys,
            method,
            partial: Vec::new(),
            include: Vec::new(),
            unique: false,
            name: None,
        }
    }

    fn field(name: &str) -> Target {
        Target::Field(name.to_owned())
    }

    #[test]
    fn mongo_default_names() {
        let ns = Namespace::mongo("app", "orders");
        let index = spec(
            ns.clone(),
            vec![
                IndexKey::asc(field("status")),
                IndexKey::desc(field("delivery_date")),
            ],
            IndexMethod::Btree,
        );
        assert_eq!(index_name(&index), "status_1_delivery_date_-1");
        let text = spec(ns, vec![IndexKey::new(field("$**"), 0)], IndexMethod::Text);
        assert_eq!(index_name(&text), "$**_text");
        let mut partial = index.clone();
        partial.partial.push(PartialTerm {
            target: field("status"),
            condition: Condition::Exists(true),
        });
        assert_eq!(index_name(&partial), "status_1_delivery_date_-1_partial");
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
        assert!(name.len() <= POSTGRES_MAX_NAME);
        assert!(name.starts_with("pipeline_runs_with_a_very_long_name_customer_identifie_"));
        let other_keys = ["customer_identifier", "started_at_timestamp", "kind"]
            .iter()
            .map(|name| IndexKey::asc(field(name)))
            .collect();
        assert_ne!(name, index_name(&spec(ns, other_keys, IndexMethod::Btree)));
    }

    #[test]
    fn django_names_fit_thirty_characters() {
        assert_eq!(django_name("runs_status_idx"), "runs_status_idx");
        let long = django_name("pipeline_runs_customer_id_started_at_idx");
        assert_eq!(long.len(), DJANGO_MAX_NAME);
        assert!(long.starts_with("pipeline_runs_custom"));
        assert_eq!(django_name("_x_idx"), "x_idx");
        assert_eq!(django_name("1x_idx"), "ix_1x_idx");
    }
}
