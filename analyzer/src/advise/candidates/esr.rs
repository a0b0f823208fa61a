//! One branch → its indexes: the B-tree in ESR order, plus any text / GIN / trigram index.
//!
//! ## Key order
//! Equality keys first, ordered by how many shapes of the namespace use them in equality (so
//! the most shapes share the prefix, and a tenant key present everywhere leads), join keys
//! after the query's own equalities, then the sort keys as written, then `$in` keys when a
//! sort is present (an `$in` before the sort would break the index order, unless the engine
//! says otherwise), then one range key.
//!
//! Among equality keys that as many shapes share, the most selective comes first (from the
//! catalog's statistics), and the equality prefix stops once it is estimated unique: a
//! filter on a whole document gets the few keys that find it, not all of them, and shapes
//! that differ only past that prefix get the same index.
//!
//! A branch that tests every key of a unique implicit index (MongoDB's `_id`) for equality
//! needs no index, and neither does a candidate that such an index already is.

use std::collections::{BTreeMap, BTreeSet};

use super::{Candidate, KeyRole};
use crate::advise::{EngineRules, IndexKey, IndexMethod, IndexSpec, LeafUse, PartialTerm};
use crate::catalog::NamespaceStatistics;
use crate::shape::{Command, Leaf, Namespace, Shape, ShapeId, SortKey, Target};

/// A PostgreSQL select list this short, beyond the keys, is worth an `INCLUDE`.
pub(crate) const MAX_INCLUDE: usize = 3;

/// How often fields of one namespace are used in equality and in ranges.
#[derive(Debug, Default)]
pub(crate) struct Usage {
    equality: BTreeMap<(Namespace, Target), Weight>,
    range: BTreeMap<(Namespace, Target), Weight>,
}

/// Shapes and executions that use a field one way.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Weight {
    shapes: u64,
    executions: u64,
}

impl Usage {
    /// Count the fields one shape uses, once per shape whatever its branches.
    pub(crate) fn record(&mut self, shape: &Shape, count: u64, branches: &[Vec<(Leaf, LeafUse)>]) {
        let mut equality = BTreeSet::new();
        let mut range = BTreeSet::new();
        for (leaf, usage) in branches.iter().flatten() {
            match usage {
                LeafUse::Equality | LeafUse::In => {
                    equality.insert(leaf.target.clone());
                }
                LeafUse::Range => {
                    range.insert(leaf.target.clone());
                }
                _ => {}
            }
        }
        for (targets, table) in [(equality, &mut self.equality), (range, &mut self.range)] {
            for target in targets {
                let weight = table.entry((shape.namespace.clone(), target)).or_default();
                weight.shapes += 1;
                weight.executions = weight.executions.saturating_add(count);
            }
        }
    }

    /// Sort targets: more shapes first, then more executions, then the more selective
    /// (by `selectivity`, the fraction of rows an equality matches), then by name.
    fn order(
        table: &BTreeMap<(Namespace, Target), Weight>,
        namespace: &Namespace,
        targets: &mut Vec<Target>,
        selectivity: &dyn Fn(&Target) -> f64,
    ) {
        let mut weighed: Vec<(Weight, f64, Target)> = targets
            .drain(..)
            .map(|target| {
                let weight = table
                    .get(&(namespace.clone(), target.clone()))
                    .copied()
                    .unwrap_or_default();
                (weight, selectivity(&target), target)
            })
            .collect();
        weighed.sort_by(|(wa, sa, a), (wb, sb, b)| {
            wb.cmp(wa)
                .then_with(|| sa.total_cmp(sb))
                .then_with(|| a.cmp(b))
        });
        targets.extend(weighed.into_iter().map(|(_, _, target)| target));
    }
}

/// The indexes one branch of one shape needs.
pub(crate) fn branch_candidates(
    id: ShapeId,
    shape: &Shape,
    branch: &[(Leaf, LeafUse)],
    usage: &Usage,
    statistics: Option<&NamespaceStatistics>,
) -> Vec<Candidate> {
    let namespace = &shape.namespace;
    let rules = namespace.engine.rules();
    let mut partial: Vec<PartialTerm> = branch
        .iter()
        .filter_map(|(_, usage)| match usage {
            LeafUse::Partial(term) => Some(term.clone()),
            _ => None,
        })
        .collect();
    partial.sort();
    partial.dedup();

    let mut candidates = Vec::new();
    let mut specials: Vec<(IndexMethod, Target)> = branch
        .iter()
        .filter_map(|(leaf, usage)| match usage {
            LeafUse::Special(method) => Some((*method, leaf.target.clone())),
            _ => None,
        })
        .collect();
    specials.sort();
    specials.dedup();
    let text_search = specials
        .iter()
        .any(|(method, _)| *method == IndexMethod::Text);
    for (method, target) in specials {
        let index = IndexSpec {
            namespace: namespace.clone(),
            keys: vec![rules.special_key(method, &target)],
            method,
            partial: partial.clone(),
            include: Vec::new(),
            unique: false,
            name: None,
        };
        candidates.push(Candidate::new(index, id, vec![KeyRole::Equality]));
    }
    // A `$text` query runs on the text index alone: a B-tree beside it is never chosen.
    if !text_search {
        if let Some(btree) = btree(id, shape, branch, usage, partial, rules, statistics) {
            candidates.push(btree);
        }
    }
    candidates
}

fn btree(
    id: ShapeId,
    shape: &Shape,
    branch: &[(Leaf, LeafUse)],
    usage: &Usage,
    partial: Vec<PartialTerm>,
    rules: &dyn EngineRules,
    statistics: Option<&NamespaceStatistics>,
) -> Option<Candidate> {
    let namespace = &shape.namespace;
    let implicit = rules.implicit_indexes(namespace);
    let targets_of = |wanted: &dyn Fn(&LeafUse) -> bool| {
        let mut targets: Vec<Target> = branch
            .iter()
            .filter(|(_, usage)| wanted(usage))
            .map(|(leaf, _)| leaf.target.clone())
            .collect();
        targets.sort();
        targets.dedup();
        targets
    };
    // An `$in` after a sort key breaks the order the sort needs, unless the engine keeps it.
    let in_is_equality = shape.sort.is_empty() || rules.in_keeps_sort_order();
    let mut equality = targets_of(&|usage| {
        matches!(usage, LeafUse::Equality) || (in_is_equality && matches!(usage, LeafUse::In))
    });
    // A unique index that is always there finds at most one row per value of its keys.
    let found = targets_of(&|usage| matches!(usage, LeafUse::Equality | LeafUse::In));
    if implicit.iter().any(|index| {
        index.unique
            && index.partial.is_empty()
            && index.keys.iter().all(|key| found.contains(&key.target))
    }) {
        return None;
    }
    let selectivity = |target: &Target| match (target, statistics) {
        (Target::Field(name), Some(statistics)) => statistics
            .fields
            .get(name)
            .map_or(1.0, |field| field.equality_selectivity()),
        _ => 1.0,
    };
    Usage::order(&usage.equality, namespace, &mut equality, &selectivity);
    // Join keys go after the query's own equalities: the index then also serves this table
    // when it drives the join (found by its own filter), not only when it is probed per row.
    let joined_only = |target: &Target| {
        branch
            .iter()
            .filter(|(leaf, _)| &leaf.target == target)
            .all(|(leaf, _)| leaf.operator.is_join())
    };
    let (joins, own): (Vec<Target>, Vec<Target>) = equality.into_iter().partition(joined_only);
    let mut equality: Vec<Target> = own.into_iter().chain(joins).collect();
    // Once the equality prefix finds about one row, longer keys find no fewer.
    let unique = statistics.and_then(|statistics| unique_prefix(&equality, statistics));
    if let Some(length) = unique {
        equality.truncate(length);
    }

    let mut keys: Vec<IndexKey> = Vec::new();
    let mut roles: Vec<KeyRole> = Vec::new();
    let mut push = |keys: &mut Vec<IndexKey>, key: IndexKey, role| {
        if !keys.iter().any(|existing| existing.target == key.target) {
            keys.push(key);
            roles.push(role);
        }
    };
    for target in equality {
        push(&mut keys, IndexKey::asc(target), KeyRole::Equality);
    }
    // A unique prefix returns at most one row: nothing to sort, no range to narrow.
    let sort: &[SortKey] = if unique.is_some() { &[] } else { &shape.sort };
    for sort_key in sort {
        // Past a sort key no index can hold, the later ones give no order of the query's.
        let Some(key) = sort_index_key(sort_key, rules) else {
            break;
        };
        push(&mut keys, key, KeyRole::Sort);
    }
    if !in_is_equality && unique.is_none() {
        let mut ins = targets_of(&|usage| matches!(usage, LeafUse::In));
        Usage::order(&usage.equality, namespace, &mut ins, &selectivity);
        for target in ins {
            push(&mut keys, IndexKey::asc(target), KeyRole::Range);
        }
    }
    let mut ranges = targets_of(&|usage| matches!(usage, LeafUse::Range));
    ranges.retain(|target| !keys.iter().any(|key| &key.target == target));
    Usage::order(&usage.range, namespace, &mut ranges, &|_| 1.0);
    if let (Some(range), None) = (ranges.into_iter().next(), unique) {
        push(&mut keys, IndexKey::asc(range), KeyRole::Range);
    }

    if keys.is_empty() {
        return None;
    }
    // Sort keys alone, with no limit, mean reading the whole collection in order: a
    // collection scan and a sort usually win.
    if roles.iter().all(|role| *role == KeyRole::Sort) && !shape.limit {
        return None;
    }
    let include = match rules.covers() {
        true => covering(shape, branch, &keys, &partial),
        false => Vec::new(),
    };
    // Built by pushing, so with room to spare; a run holds one per shape until ranking.
    keys.shrink_to_fit();
    let index = IndexSpec {
        namespace: namespace.clone(),
        keys,
        method: IndexMethod::Btree,
        partial,
        include,
        unique: false,
        name: None,
    };
    let mut candidate = Candidate::new(index, id, Vec::new());
    candidate.roles = roles;
    candidate.set_found(found.iter().cloned().collect());
    // What an implicit index already is (a lone `_id` key) needs no new index.
    if implicit
        .iter()
        .any(|index| index.partial.is_empty() && candidate.is_served_by(&index.keys))
    {
        return None;
    }
    Some(candidate)
}

/// The length of the shortest prefix of `equality` that the statistics say is unique, when
/// one is shorter than the whole.
fn unique_prefix(equality: &[Target], statistics: &NamespaceStatistics) -> Option<usize> {
    let mut fields = Vec::new();
    for (length, target) in equality.iter().enumerate() {
        let Target::Field(name) = target else {
            return None;
        };
        fields.push(name.as_str());
        if statistics.is_unique(fields.iter().copied()) {
            return (length + 1 < equality.len()).then_some(length + 1);
        }
    }
    None
}

/// The index key for one sort key, or none when the engine cannot index that sort
/// (MongoDB's `$natural` / `$meta` pseudo-fields, an expression that hid a literal).
fn sort_index_key(sort_key: &SortKey, rules: &dyn EngineRules) -> Option<IndexKey> {
    if !rules.sorts_on(&sort_key.target) {
        return None;
    }
    let direction = if sort_key.direction < 0 { -1 } else { 1 };
    // Spelled out only when it differs from the direction's default.
    let nulls_first = sort_key
        .nulls_first
        .filter(|first| rules.orders_nulls() && *first != (direction < 0));
    Some(IndexKey {
        target: sort_key.target.clone(),
        direction,
        nulls_first,
    })
}

/// `INCLUDE` columns for an index-only scan of a select: the selected columns and the
/// filter's leftover columns that are not keys, when there are at most [`MAX_INCLUDE`] of
/// them. Empty when an index-only scan is out of reach anyway.
fn covering(
    shape: &Shape,
    branch: &[(Leaf, LeafUse)],
    keys: &[IndexKey],
    partial: &[PartialTerm],
) -> Vec<String> {
    let plain =
        |name: &str| !name.is_empty() && !name.contains(['*', '(', ')', ' ', '"', '.', ',']);
    if shape.command != Command::Select
        || shape.projection.is_empty()
        || !shape.projection.iter().all(|column| plain(column))
        || branch.iter().any(|(leaf, _)| leaf.operator.is_join())
    {
        return Vec::new();
    }
    let in_keys = |column: &str| {
        keys.iter()
            .any(|key| matches!(&key.target, Target::Field(name) if name == column))
    };
    let mut needed: BTreeSet<String> = shape
        .projection
        .iter()
        .filter(|column| !in_keys(column))
        .cloned()
        .collect();
    for (leaf, usage) in branch {
        let covered_elsewhere = matches!(usage, LeafUse::Partial(_))
            && partial.iter().any(|term| term.target == leaf.target);
        if covered_elsewhere || keys.iter().any(|key| key.target == leaf.target) {
            continue;
        }
        match &leaf.target {
            Target::Field(name) => {
                needed.insert(name.clone());
            }
            // A residual expression cannot be computed from included columns cheaply
            // enough to count on an index-only scan.
            Target::Expression { .. } => return Vec::new(),
        }
    }
    if needed.len() > MAX_INCLUDE {
        return Vec::new();
    }
    needed.into_iter().collect()
}
