//! Existing indexes: never recommend what is there, and report what is redundant.
//!
//! An existing index serves a candidate when the candidate's keys are a prefix of its keys
//! (the leading equality keys in any order, sort keys in the same order or all reversed),
//! with the same access method, and the existing index is either full or has the same
//! partial predicate. A full unique index (a primary key) also serves every candidate that
//! tests all its keys for equality: it finds at most one row. The engine's implicit indexes
//! (MongoDB's `_id`) are always there, whether or not the catalog read listed them.
//!
//! Drops: an existing index that is a prefix of another ([`redundant`]), and one that no
//! captured shape could use while writes maintained it and the server counted no use of it
//! over a long enough window ([`unused`]). Neither ever names an index that enforces
//! something (primary key, `_id`, unique, exclusion, foreign key).

use std::collections::{BTreeMap, BTreeSet};

use super::candidates::{Candidate, KeyRole};
use super::consolidate::same_partial;
use super::{AdviceSettings, DropCandidate, DropEvidence, ExistingIndexes, IndexMethod, IndexSpec};
use crate::catalog::CatalogFacts;
use crate::shape::{Namespace, Target};
use crate::snapshot::Snapshot;

/// Remove candidates an existing index already serves. Keys are compared in the form the
/// engine stores them in ([`EngineRules::key_form`](super::EngineRules::key_form)).
pub fn filter(candidates: Vec<Candidate>, existing: &ExistingIndexes) -> Vec<Candidate> {
    let mut in_key_form: BTreeMap<Namespace, Vec<IndexSpec>> = BTreeMap::new();
    candidates
        .into_iter()
        .filter(|candidate| {
            let namespace = &candidate.index.namespace;
            let indexes = in_key_form.entry(namespace.clone()).or_insert_with(|| {
                indexes_of(namespace, existing)
                    .iter()
                    .map(key_form)
                    .collect()
            });
            let mut wanted = candidate.clone();
            wanted.index = key_form(&candidate.index);
            !indexes.iter().any(|index| serves(index, &wanted))
        })
        .collect()
}

/// `index` with its keys in the engine's stored form.
fn key_form(index: &IndexSpec) -> IndexSpec {
    let rules = index.namespace.engine.rules();
    let mut formed = index.clone();
    for key in &mut formed.keys {
        key.target = rules.key_form(&key.target);
    }
    formed
}

/// Whether the existing `index` serves every shape `candidate` serves.
fn serves(index: &IndexSpec, candidate: &Candidate) -> bool {
    if index.method != candidate.index.method {
        return false;
    }
    if !index.partial.is_empty() && !same_partial(&index.partial, &candidate.index.partial) {
        return false;
    }
    // A MongoDB collection has at most one text index, and it serves every `$text` query.
    if index.method == IndexMethod::Text {
        return true;
    }
    candidate.is_served_by(&index.keys)
        || finds_one_row(index, candidate)
        || leads_with_found(index, candidate)
}

/// Whether `index` is a full unique index whose every key `candidate` tests for equality.
fn finds_one_row(index: &IndexSpec, candidate: &Candidate) -> bool {
    let equalities = candidate.equality_targets();
    index.unique
        && index.partial.is_empty()
        && !index.keys.is_empty()
        && index
            .keys
            .iter()
            .all(|key| equalities.contains(&key.target))
}

/// Whether `candidate` is all equality keys, and `index`'s leading keys are all tested for
/// equality by its shapes and include every one of its keys: `index` finds the same rows or
/// fewer (a key a unique prefix left out of the candidate may lead the existing index).
fn leads_with_found(index: &IndexSpec, candidate: &Candidate) -> bool {
    if index.method != candidate.index.method
        || !index.partial.is_empty()
        || candidate
            .roles
            .iter()
            .any(|role| *role != KeyRole::Equality)
    {
        return false;
    }
    let found = candidate.equality_targets();
    let leading: BTreeSet<&Target> = index
        .keys
        .iter()
        .take_while(|key| found.contains(&key.target))
        .map(|key| &key.target)
        .collect();
    !candidate.index.keys.is_empty()
        && candidate
            .index
            .keys
            .iter()
            .all(|key| leading.contains(&key.target))
}

/// Existing indexes that no captured shape could use, that writes maintained, and that the
/// server itself counted no use of over a window at least `settings.drop_min_window_secs`
/// long. Silent without usage counters, without a baseline, or when the window is shorter.
pub fn unused(
    snapshot: &Snapshot,
    existing: &ExistingIndexes,
    facts: &CatalogFacts,
    settings: &AdviceSettings,
) -> Vec<DropCandidate> {
    let mut drops = Vec::new();
    for (namespace, usages) in &facts.usage {
        let rules = namespace.engine.rules();
        let Some(indexes) = existing.get(namespace) else {
            continue;
        };
        if rules.is_system(namespace) {
            continue;
        }
        let load = super::rank::write_load(namespace, snapshot);
        let writes = load
            .inserts
            .saturating_add(load.updates)
            .saturating_add(load.deletes);
        if writes == 0 {
            continue;
        }
        let used = targets_used(snapshot, namespace);
        for usage in usages {
            let Some(index) = indexes
                .iter()
                .find(|i| i.name.as_deref() == Some(&usage.name))
            else {
                continue;
            };
            if usage.is_protected() || is_protected(index) {
                continue;
            }
            let (Some(window), Some(server_uses)) =
                (usage.window(facts.read_at_ms), usage.uses_in_window())
            else {
                continue;
            };
            let window_secs = window.secs();
            if server_uses > 0 || window_secs < settings.drop_min_window_secs as f64 {
                continue;
            }
            if index
                .keys
                .first()
                .is_some_and(|key| used.contains(&key.target))
            {
                continue;
            }
            drops.push(DropCandidate {
                index: index.clone(),
                name: usage.name.clone(),
                reason: format!(
                    "unused: no captured shape can use it and the server counted no scan of it in {window_secs:.0} s, while {writes} writes maintained it"
                ),
                evidence: Some(DropEvidence {
                    writes,
                    window_secs,
                    server_uses,
                }),
            });
        }
    }
    drops
}

/// The fields and expressions the shapes of `namespace` filter or sort on: an index led by
/// one of them may serve some shape.
fn targets_used(snapshot: &Snapshot, namespace: &Namespace) -> BTreeSet<Target> {
    let mut used = BTreeSet::new();
    for record in snapshot.shapes.values() {
        if &record.shape.namespace != namespace {
            continue;
        }
        used.extend(record.shape.filter.targets());
        used.extend(record.shape.sort.iter().map(|key| key.target.clone()));
    }
    used
}

/// The existing indexes of a namespace, with the engine's implicit ones that the catalog
/// did not list (by name, or as a full index on the same keys).
pub(crate) fn indexes_of(namespace: &Namespace, existing: &ExistingIndexes) -> Vec<IndexSpec> {
    let mut indexes = existing.get(namespace).cloned().unwrap_or_default();
    for implicit in namespace.engine.rules().implicit_indexes(namespace) {
        let listed = indexes.iter().any(|index| {
            (implicit.name.is_some() && index.name == implicit.name)
                || (index.partial.is_empty() && same_targets(index, &implicit))
        });
        if !listed {
            indexes.push(implicit);
        }
    }
    indexes
}

fn same_targets(a: &IndexSpec, b: &IndexSpec) -> bool {
    a.keys.len() == b.keys.len()
        && a.keys
            .iter()
            .zip(&b.keys)
            .all(|(x, y)| x.target == y.target)
}

/// Existing indexes that are prefixes of other existing indexes on the same namespace.
///
/// Unique indexes, primary keys and MongoDB's `_id` index are never listed: they enforce
/// something besides speed. Of two identical indexes, the one whose name sorts last is listed.
pub fn redundant(existing: &ExistingIndexes) -> Vec<DropCandidate> {
    let mut drops = Vec::new();
    for indexes in existing.values() {
        for index in indexes {
            if is_protected(index) || index.method == IndexMethod::Text {
                continue;
            }
            let name = name_of(index);
            let longer = indexes
                .iter()
                .filter(|other| !std::ptr::eq(*other, index))
                .filter(|other| covers(other, index))
                .filter(|other| {
                    // Identical twins: drop only one of them (the later name, or the one
                    // that is not unique).
                    other.keys.len() > index.keys.len() || other.unique || name_of(other) < name
                })
                .max_by(|a, b| {
                    a.keys
                        .len()
                        .cmp(&b.keys.len())
                        .then_with(|| name_of(b).cmp(&name_of(a)))
                });
            if let Some(longer) = longer {
                let relation = if longer.keys.len() == index.keys.len() {
                    "duplicate of"
                } else {
                    "prefix of"
                };
                drops.push(DropCandidate {
                    index: index.clone(),
                    name: name.clone(),
                    reason: format!("{relation} {}", name_of(longer)),
                    evidence: None,
                });
            }
        }
    }
    drops
}

/// Whether `longer` serves every query `shorter` serves: same method and partial, and
/// `shorter`'s keys a prefix of `longer`'s, all in the same order or all reversed.
fn covers(longer: &IndexSpec, shorter: &IndexSpec) -> bool {
    if longer.method != shorter.method || !same_partial(&longer.partial, &shorter.partial) {
        return false;
    }
    // Existing indexes carry no roles: every key is compared strictly, as a sort key.
    let strict = Candidate::new(shorter.clone(), crate::shape::ShapeId(0), Vec::new());
    !shorter.keys.is_empty() && strict.is_served_by(&longer.keys)
}

fn is_protected(index: &IndexSpec) -> bool {
    index.unique || index.namespace.engine.rules().is_protected(index)
}

fn name_of(index: &IndexSpec) -> String {
    index.name.clone().unwrap_or_else(|| index.default_name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advise::candidates::KeyRole;
    use crate::advise::{Condition, IndexKey, PartialTerm};
    use crate::shape::{ShapeId, Target};

    fn field(name: &str) -> Target {
        Target::Field(name.to_owned())
    }

    fn spec(namespace: &Namespace, keys: &[(&str, i8)], name: Option<&str>) -> IndexSpec {
        IndexSpec {
            namespace: namespace.clone(),
            keys: keys
                .iter()
                .map(|(name, direction)| IndexKey::new(field(name), *direction))
                .collect(),
            method: IndexMethod::Btree,
            partial: Vec::new(),
            include: Vec::new(),
            unique: false,
            name: name.map(str::to_owned),
        }
    }

    fn candidate(namespace: &Namespace, keys: &[(&str, i8)], roles: Vec<KeyRole>) -> Candidate {
        Candidate::new(spec(namespace, keys, None), ShapeId(7), roles)
    }

    fn orders() -> Namespace {
        Namespace::mongo("app", "orders")
    }

    #[test]
    fn an_existing_index_is_not_recommended_again() {
        let ns = orders();
        let existing = ExistingIndexes::from([(
            ns.clone(),
            vec![spec(
                &ns,
                &[("status", 1), ("delivery_date", -1)],
                Some("s_d"),
            )],
        )]);
        let same = candidate(
            &ns,
            &[("status", 1), ("delivery_date", -1)],
            vec![KeyRole::Equality, KeyRole::Sort],
        );
        let prefix = candidate(&ns, &[("status", 1)], vec![KeyRole::Equality]);
        let reversed = candidate(
            &ns,
            &[("status", 1), ("delivery_date", 1)],
            vec![KeyRole::Equality, KeyRole::Sort],
        );
        let longer = candidate(
            &ns,
            &[("status", 1), ("delivery_date", -1), ("total", 1)],
            vec![KeyRole::Equality, KeyRole::Sort, KeyRole::Range],
        );
        let other = candidate(&ns, &[("customer_id", 1)], vec![KeyRole::Equality]);
        let kept = filter(
            vec![same, prefix, reversed, longer.clone(), other.clone()],
            &existing,
        );
        assert_eq!(kept, vec![longer, other]);
    }

    #[test]
    fn an_incompatible_sort_direction_is_still_recommended() {
        let ns = orders();
        let existing = ExistingIndexes::from([(
            ns.clone(),
            vec![spec(&ns, &[("a", 1), ("b", 1)], Some("a_b"))],
        )]);
        let mixed = candidate(
            &ns,
            &[("a", 1), ("b", -1)],
            vec![KeyRole::Sort, KeyRole::Sort],
        );
        let equality = candidate(
            &ns,
            &[("a", 1), ("b", -1)],
            vec![KeyRole::Equality, KeyRole::Range],
        );
        let kept = filter(vec![mixed.clone(), equality], &existing);
        assert_eq!(kept, vec![mixed]);
    }

    #[test]
    fn partial_existing_serves_only_the_same_partial() {
        let ns = orders();
        let mut existing_index = spec(&ns, &[("email", 1)], Some("email_1"));
        existing_index.partial = vec![PartialTerm {
            target: field("email"),
            condition: Condition::Exists(true),
        }];
        let existing = ExistingIndexes::from([(ns.clone(), vec![existing_index.clone()])]);
        let full = candidate(&ns, &[("email", 1)], vec![KeyRole::Equality]);
        let mut partial = full.clone();
        partial.index.partial = existing_index.partial.clone();
        assert_eq!(filter(vec![full.clone(), partial], &existing), vec![full]);
    }

    #[test]
    fn partial_terms_compare_in_any_order() {
        let ns = Namespace::postgres("app", "public", "keys");
        let terms = vec![
            PartialTerm {
                target: field("deleted_at"),
                condition: Condition::IsNull,
            },
            PartialTerm {
                target: field("is_active"),
                condition: Condition::Bool(true),
            },
        ];
        let mut existing_index = spec(&ns, &[("user_id", 1)], Some("keys_user_active_idx"));
        existing_index.partial = terms.iter().rev().cloned().collect();
        let existing = ExistingIndexes::from([(ns.clone(), vec![existing_index])]);
        let mut wanted = candidate(&ns, &[("user_id", 1)], vec![KeyRole::Equality]);
        wanted.index.partial = terms;
        assert!(filter(vec![wanted], &existing).is_empty());
    }

    #[test]
    fn mongo_id_is_always_indexed() {
        let ns = orders();
        let id = candidate(&ns, &[("_id", -1)], vec![KeyRole::Sort]);
        assert!(filter(vec![id], &ExistingIndexes::new()).is_empty());
        let pg = Namespace::postgres("app", "public", "orders");
        let pg_id = candidate(&pg, &[("_id", 1)], vec![KeyRole::Equality]);
        assert_eq!(
            filter(vec![pg_id.clone()], &ExistingIndexes::new()),
            vec![pg_id]
        );
    }

    #[test]
    fn redundant_existing_indexes_become_drops() {
        let ns = Namespace::postgres("app", "public", "runs");
        let mut unique = spec(&ns, &[("customer_id", 1)], Some("runs_customer_uniq"));
        unique.unique = true;
        let existing = ExistingIndexes::from([(
            ns.clone(),
            vec![
                spec(&ns, &[("id", 1)], Some("runs_pkey")),
                spec(&ns, &[("id", 1), ("status", 1)], Some("runs_id_status_idx")),
                spec(&ns, &[("customer_id", 1)], Some("runs_customer_idx")),
                unique,
                spec(
                    &ns,
                    &[("customer_id", -1), ("started_at", 1)],
                    Some("runs_customer_started_idx"),
                ),
                spec(
                    &ns,
                    &[("status", 1), ("started_at", 1)],
                    Some("runs_status_started_idx"),
                ),
                spec(
                    &ns,
                    &[("status", 1), ("started_at", -1), ("x", 1)],
                    Some("runs_status_mixed_idx"),
                ),
                spec(&ns, &[("kind", 1)], Some("runs_kind_a")),
                spec(&ns, &[("kind", 1)], Some("runs_kind_b")),
            ],
        )]);
        let drops = redundant(&existing);
        let summary: Vec<(String, String)> = drops
            .iter()
            .map(|drop| (drop.name.clone(), drop.reason.clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "runs_customer_idx".into(),
                    "prefix of runs_customer_started_idx".into()
                ),
                ("runs_kind_b".into(), "duplicate of runs_kind_a".into()),
            ]
        );
    }
}
