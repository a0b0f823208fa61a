//! MongoDB's rules.
//!
//! - A leaf: `{f: null}` matches missing fields too, and is an equality an index serves;
//!   `$exists: true` and `$type` that every execution carried are partial-filter terms
//!   (`partialFilterExpression` accepts `$exists: true` only, not `false`); `$text` needs the
//!   collection's text index, which indexes every string field (`$**`).
//! - ESR: `$natural` and `$meta` sort keys are no index keys. Index keys carry no null order.
//! - Every collection has the unique `_id` index, named `_id_`, and it is never dropped.
//! - `admin`, `local` and `config` databases, and `system.*` collections, are MongoDB's own;
//!   `indextap_scratch_*` databases are indextap's (sample verification).
//! - Names: MongoDB's default, `status_1_delivery_date_-1` (see `naming`), with no
//!   practical length limit since 4.2; unique per collection.
//! - Verified on a sample copied into a scratch database (`--mongo-verify sample`): documents
//!   examined without and with the index. Every insert, update and delete maintains every
//!   index.
//!
//! ## Layout
//! - this file: [`MongoDb`].
//! - `naming`: the default index name.

mod naming;

use crate::advise::engine::{EngineRules, LeafUse};
use crate::advise::{Condition, EvidenceMethod, IndexKey, IndexMethod, IndexSpec, WriteLoad};
use crate::shape::{Constant, Leaf, Namespace, OpClass, Target};

/// MongoDB's name for the `_id` index.
pub const ID_INDEX: &str = "_id_";

/// The prefix of the scratch databases `--mongo-verify sample` creates (and drops): they
/// are indextap's own, never advised on.
pub const SCRATCH_DATABASE_PREFIX: &str = "indextap_scratch_";

/// The field every document has, indexed uniquely.
const ID_FIELD: &str = "_id";

/// MongoDB's rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct MongoDb;

impl EngineRules for MongoDb {
    fn leaf_use(&self, leaf: &Leaf, constant: Option<&Constant>) -> LeafUse {
        match (constant, leaf.class) {
            (Some(Constant::Exists(true)), _) => LeafUse::partial(leaf, Condition::Exists(true)),
            (Some(Constant::Type(name)), _) => {
                LeafUse::partial(leaf, Condition::Type(name.clone()))
            }
            (_, OpClass::Eq | OpClass::IsNull) => LeafUse::Equality,
            (_, OpClass::In) => LeafUse::In,
            (_, OpClass::Range | OpClass::Prefix) => LeafUse::Range,
            (_, OpClass::Text) => LeafUse::Special(IndexMethod::Text),
            _ => LeafUse::FilterOnly,
        }
    }

    fn sorts_on(&self, target: &Target) -> bool {
        !target.column().starts_with('$')
    }

    fn orders_nulls(&self) -> bool {
        false
    }

    fn covers(&self) -> bool {
        false
    }

    fn special_key(&self, method: IndexMethod, target: &Target) -> IndexKey {
        match method {
            // A wildcard text index covers every string field; its key has no direction.
            IndexMethod::Text => IndexKey::new(Target::Field("$**".to_owned()), 0),
            _ => IndexKey::asc(target.clone()),
        }
    }

    fn implicit_indexes(&self, namespace: &Namespace) -> Vec<IndexSpec> {
        let id = IndexKey::asc(Target::Field(ID_FIELD.to_owned()));
        vec![IndexSpec {
            unique: true,
            name: Some(ID_INDEX.to_owned()),
            ..IndexSpec::new(namespace.clone(), IndexMethod::Btree, vec![id])
        }]
    }

    fn is_protected(&self, index: &IndexSpec) -> bool {
        index.name.as_deref() == Some(ID_INDEX) || is_id_index(index)
    }

    fn is_system(&self, namespace: &Namespace) -> bool {
        matches!(namespace.database.as_str(), "admin" | "local" | "config")
            || namespace.collection.starts_with("system.")
            || namespace.database.starts_with(SCRATCH_DATABASE_PREFIX)
    }

    fn index_name(&self, index: &IndexSpec) -> String {
        naming::index_name(index)
    }

    fn max_name_len(&self) -> usize {
        usize::MAX
    }

    fn name_scope(&self, namespace: &Namespace) -> String {
        format!("mongo:{}:{}", namespace.database, namespace.collection)
    }

    fn verification(&self) -> Option<EvidenceMethod> {
        // Measured only with `--mongo-verify sample`; without it nothing is measured and the
        // advice stays unverified.
        Some(EvidenceMethod::Sample)
    }

    fn index_writes(&self, load: &WriteLoad) -> u64 {
        load.inserts
            .saturating_add(load.updates)
            .saturating_add(load.deletes)
    }
}

/// An index on `_id` alone, whatever its name or direction.
fn is_id_index(index: &IndexSpec) -> bool {
    index.partial.is_empty()
        && matches!(index.keys.as_slice(), [key] if key.target == Target::Field(ID_FIELD.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advise::PartialTerm;

    #[test]
    fn id_is_always_there_and_never_dropped() {
        let orders = Namespace::mongo("app", "orders");
        let implicit = MongoDb.implicit_indexes(&orders);
        assert_eq!(implicit.len(), 1);
        assert!(implicit[0].unique);
        assert!(MongoDb.is_protected(&implicit[0]));
        let mut renamed = implicit[0].clone();
        renamed.name = Some("by_id".to_owned());
        renamed.keys[0].direction = -1;
        assert!(
            MongoDb.is_protected(&renamed),
            "an `_id` index by another name"
        );
        renamed.partial.push(PartialTerm {
            target: Target::Field("x".to_owned()),
            condition: Condition::Exists(true),
        });
        assert!(
            !MongoDb.is_protected(&renamed),
            "a partial one enforces nothing"
        );
    }

    #[test]
    fn internal_namespaces_are_mongodbs_own() {
        for (database, collection) in [
            ("admin", "users"),
            ("local", "startup_log"),
            ("config", "chunks"),
            ("app", "system.profile"),
            ("app", "system.views"),
        ] {
            assert!(MongoDb.is_system(&Namespace::mongo(database, collection)));
        }
        assert!(!MongoDb.is_system(&Namespace::mongo("app", "systems")));
        assert!(!MongoDb.is_system(&Namespace::mongo("administration", "users")));
    }

    #[test]
    fn every_write_maintains_every_index() {
        let load = WriteLoad {
            inserts: 3,
            updates: 5,
            deletes: 7,
            reads: 100,
        };
        assert_eq!(MongoDb.index_writes(&load), 15);
    }
}
