//! Consolidation: prefixes serve prefixes, so keep the longer index and let it serve both.
//!
//! Within one namespace, access method and partial predicate, a candidate whose keys are a
//! prefix of another's (sort keys in the same order or all reversed) hands its shapes to the
//! longer one and disappears; identical candidates merge. The result never holds both
//! `(a)` and `(a, b)`.
//!
//! Past a selective prefix ([`past_selective_prefix`]): when the statistics say an equality
//! prefix finds only a few rows, candidates that share that prefix and differ only after it
//! become one index on the prefix. Sorting or filtering a few rows costs less than another
//! index to maintain.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use super::candidates::{Candidate, KeyRole};
use super::{rank, IndexMethod, IndexSpec, PartialTerm};
use crate::catalog::CatalogFacts;
use crate::shape::{Namespace, Target};

/// Merge every candidate that another candidate serves into it.
///
/// Candidates are grouped by family (namespace, method, partial predicate); within a family
/// longer candidates come first, so each shorter one finds the index that will absorb it
/// among those already kept. Deterministic for a given input set.
///
/// It works in the input's own buffer (sorted in place, the kept ones moved to its front):
/// a run holds one candidate per shape, and a copy of them per step was its largest cost.
pub fn consolidate(mut candidates: Vec<Candidate>) -> Vec<Candidate> {
    rank::sort_in_place(&mut candidates, |a, b| {
        family_order(&a.index, &b.index)
            .then_with(|| b.index.keys.len().cmp(&a.index.keys.len()))
            // On a tie, the one with more sort keys goes first, so its directions (the
            // ones the queries wrote) are the ones kept.
            .then_with(|| sort_keys(b).cmp(&sort_keys(a)))
            .then_with(|| (&a.index.keys, &a.index.include).cmp(&(&b.index.keys, &b.index.include)))
    });
    // `candidates[..kept]` are kept, `candidates[family..kept]` those of the current family
    // (its first member is always kept: nothing before it can absorb it).
    let (mut kept, mut family) = (0, 0);
    for at in 0..candidates.len() {
        if kept == family
            || family_order(&candidates[family].index, &candidates[at].index) != Ordering::Equal
        {
            family = kept;
        }
        let (hosts, rest) = candidates.split_at_mut(at);
        let guest = &mut rest[0];
        match hosts[family..kept]
            .iter_mut()
            .find(|host| guest.is_served_by(&host.index.keys))
        {
            Some(host) => absorb(host, guest),
            None => {
                candidates.swap(kept, at);
                kept += 1;
            }
        }
    }
    // What is left past `kept` are the husks of the absorbed candidates.
    candidates.truncate(kept);
    candidates
}

/// An equality prefix expected to find at most this many rows is selective: what comes
/// after it in a key is not worth a second index.
pub const SELECTIVE_ROWS: f64 = 100.0;

/// Candidates that share a selective equality prefix (by the catalog's statistics) and
/// differ after it become one candidate on that prefix, with only the partial terms they
/// all have. A candidate alone with its prefix keeps its keys.
pub fn past_selective_prefix(
    mut candidates: Vec<Candidate>,
    facts: &CatalogFacts,
) -> Vec<Candidate> {
    type Group = (Namespace, IndexMethod, BTreeSet<Target>);
    let shorter = |candidate: &Candidate| {
        selective_prefix(candidate, facts).filter(|length| *length < candidate.index.keys.len())
    };
    // The few with a selective prefix leave; the rest stay where they are, in order.
    let mut groups: BTreeMap<Group, Vec<(usize, Candidate)>> = BTreeMap::new();
    for candidate in candidates.extract_if(.., |candidate| shorter(candidate).is_some()) {
        let Some(length) = shorter(&candidate) else {
            continue;
        };
        let targets = candidate.index.keys[..length]
            .iter()
            .map(|key| key.target.clone())
            .collect();
        let key = (
            candidate.index.namespace.clone(),
            candidate.index.method,
            targets,
        );
        groups.entry(key).or_default().push((length, candidate));
    }
    let mut alone = candidates;
    for (_, mut members) in groups {
        if members.len() < 2 {
            alone.extend(members.into_iter().map(|(_, candidate)| candidate));
            continue;
        }
        let (length, mut merged) = members.remove(0);
        merged.index.keys.truncate(length);
        merged.roles.truncate(length);
        merged.index.include.clear();
        for (_, member) in members {
            merged
                .index
                .partial
                .retain(|term| member.index.partial.contains(term));
            let found: BTreeSet<Target> = merged
                .equality_targets()
                .intersection(&member.equality_targets())
                .cloned()
                .collect();
            merged.serves.extend(member.serves);
            merged.found = found;
        }
        alone.push(merged);
    }
    consolidate(alone)
}

/// The length of the shortest leading run of equality keys that the statistics say finds at
/// most [`SELECTIVE_ROWS`] rows.
fn selective_prefix(candidate: &Candidate, facts: &CatalogFacts) -> Option<usize> {
    let statistics = facts.statistics.get(&candidate.index.namespace)?;
    let mut fields = Vec::new();
    for (key, role) in candidate.index.keys.iter().zip(&candidate.roles) {
        let (KeyRole::Equality, Target::Field(name)) = (role, &key.target) else {
            return None;
        };
        fields.push(name.as_str());
        if statistics
            .rows_matching(fields.iter().copied())
            .is_some_and(|rows| rows <= SELECTIVE_ROWS)
        {
            return Some(fields.len());
        }
    }
    None
}

/// The order of families, what makes indexes interchangeable: namespace, method, and the
/// partial predicate in canonical (sorted) order.
fn family_order(a: &IndexSpec, b: &IndexSpec) -> Ordering {
    a.namespace
        .cmp(&b.namespace)
        .then_with(|| a.method.cmp(&b.method))
        .then_with(|| match (a.partial.is_empty(), b.partial.is_empty()) {
            (true, true) => Ordering::Equal,
            _ => canonical(&a.partial).cmp(&canonical(&b.partial)),
        })
}

fn canonical(terms: &[PartialTerm]) -> Vec<PartialTerm> {
    let mut terms = terms.to_vec();
    terms.sort();
    terms.dedup();
    terms
}

/// Whether two partial predicates are the same conjunction, whatever the order of its terms
/// (a catalog read may list them in the order they were written).
pub(crate) fn same_partial(a: &[PartialTerm], b: &[PartialTerm]) -> bool {
    a == b || canonical(a) == canonical(b)
}

/// Merges `guest` into `host`; what is left of `guest` is to be dropped.
fn absorb(host: &mut Candidate, guest: &mut Candidate) {
    let guest_found = guest.equality_targets();
    let host_found = host.equality_targets();
    host.found = host_found.intersection(&guest_found).cloned().collect();
    host.serves.append(&mut guest.serves);
    for (role, guest_role) in host.roles.iter_mut().zip(&guest.roles) {
        *role = match (*role, *guest_role) {
            (KeyRole::Sort, _) | (_, KeyRole::Sort) => KeyRole::Sort,
            (KeyRole::Equality, KeyRole::Equality) => KeyRole::Equality,
            _ => KeyRole::Range,
        };
    }
    // Keep the guest's covering columns when the host can take them without growing past
    // what a covering index is worth.
    let mut include = host.index.include.clone();
    for column in std::mem::take(&mut guest.index.include) {
        let is_key =
            host.index.keys.iter().any(
                |key| matches!(&key.target, crate::shape::Target::Field(name) if *name == column),
            );
        if !is_key && !include.contains(&column) {
            include.push(column);
        }
    }
    if include.len() <= super::candidates::MAX_INCLUDE {
        include.sort();
        host.index.include = include;
    }
}

fn sort_keys(candidate: &Candidate) -> usize {
    candidate
        .roles
        .iter()
        .filter(|role| **role == KeyRole::Sort)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advise::{Condition, IndexKey, IndexMethod, PartialTerm};
    use crate::shape::{Namespace, ShapeId, Target};

    fn field(name: &str) -> Target {
        Target::Field(name.to_owned())
    }

    fn candidate(shape: u64, keys: &[(&str, i8, KeyRole)]) -> Candidate {
        let index = IndexSpec {
            namespace: Namespace::mongo("app", "orders"),
            keys: keys
                .iter()
                .map(|(name, direction, _)| IndexKey::new(field(name), *direction))
                .collect(),
            method: IndexMethod::Btree,
            partial: Vec::new(),
            include: Vec::new(),
            unique: false,
            name: None,
        };
        let roles = keys.iter().map(|(_, _, role)| *role).collect();
        Candidate::new(index, ShapeId(shape), roles)
    }

    fn key_names(candidate: &Candidate) -> Vec<(String, i8)> {
        candidate
            .index
            .keys
            .iter()
            .map(|key| (key.target.column().to_owned(), key.direction))
            .collect()
    }

    use KeyRole::{Equality as E, Range as R, Sort as S};

    #[test]
    fn a_prefix_merges_into_the_longer_index() {
        let short = candidate(1, &[("status", 1, E)]);
        let long = candidate(2, &[("status", 1, E), ("delivery_date", -1, S)]);
        let merged = consolidate(vec![short, long]);
        assert_eq!(merged.len(), 1);
        assert_eq!(
            key_names(&merged[0]),
            vec![("status".into(), 1), ("delivery_date".into(), -1)]
        );
        assert_eq!(
            merged[0].serves.iter().copied().collect::<Vec<_>>(),
            vec![ShapeId(1), ShapeId(2)]
        );
    }

    #[test]
    fn identical_candidates_merge() {
        let merged = consolidate(vec![
            candidate(1, &[("a", 1, E), ("b", 1, R)]),
            candidate(2, &[("a", 1, E), ("b", 1, R)]),
        ]);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].serves.len(), 2);
    }

    #[test]
    fn a_fully_reversed_sort_prefix_merges() {
        let merged = consolidate(vec![
            candidate(1, &[("a", 1, S), ("b", -1, S)]),
            candidate(2, &[("a", -1, S), ("b", 1, S), ("c", 1, R)]),
        ]);
        assert_eq!(merged.len(), 1);
        assert_eq!(key_names(&merged[0])[0], ("a".into(), -1));
    }

    #[test]
    fn a_mixed_direction_sort_does_not_merge() {
        let merged = consolidate(vec![
            candidate(1, &[("a", 1, S), ("b", 1, S)]),
            candidate(2, &[("a", 1, S), ("b", -1, S), ("c", 1, R)]),
        ]);
        assert_eq!(merged.len(), 2);
    }

    #[test]
    fn equality_keys_merge_whatever_their_direction() {
        // eq a, sort b desc is served by (a, b) scanned backwards, and by (a, b desc).
        let merged = consolidate(vec![
            candidate(1, &[("a", 1, E), ("b", 1, E)]),
            candidate(2, &[("a", 1, E), ("b", -1, S)]),
        ]);
        assert_eq!(merged.len(), 1);
        assert_eq!(
            key_names(&merged[0]),
            vec![("a".into(), 1), ("b".into(), -1)],
            "the sort's own direction is kept"
        );
    }

    #[test]
    fn different_partials_or_methods_stay_apart() {
        let full = candidate(1, &[("email", 1, E)]);
        let mut partial = candidate(2, &[("email", 1, E), ("name", 1, R)]);
        partial.index.partial = vec![PartialTerm {
            target: field("email"),
            condition: Condition::Exists(true),
        }];
        let mut text = candidate(3, &[("email", 1, E)]);
        text.index.method = IndexMethod::Text;
        assert_eq!(consolidate(vec![full, partial, text]).len(), 3);
    }

    #[test]
    fn a_non_prefix_stays() {
        let merged = consolidate(vec![
            candidate(1, &[("b", 1, E)]),
            candidate(2, &[("a", 1, E), ("b", 1, E)]),
        ]);
        assert_eq!(merged.len(), 2);
    }
}
