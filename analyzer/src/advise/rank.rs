//! Ranking: weigh each candidate by the time it saves, less what it costs on writes.
//!
//! Before verification ([`rank`]), a recommendation's weight is the total time its shapes
//! spent (count × latency, summed). Once verification has measured its gain ([`select`]),
//! the weight is that time times the gain, less its write cost (the writes on its namespace
//! times the cost of one index entry, [`super::write_cost`]); what does not pay is left out,
//! and each namespace keeps its best few (the budget). Ties are broken by name so the order
//! is stable. Each recommendation carries the write load of its namespace and its write
//! cost, because every index slows those writes down.
//!
//! A run ranks thousands of candidates of a few hundred bytes each, so both orders are
//! taken by [`sort_in_place`], which sorts positions rather than the recommendations: a
//! stable sort of the recommendations themselves borrows a scratch copy of them all.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use super::candidates::Candidate;
use super::index::naming::truncate_with_hash;
use super::write_cost::{write_cost, WriteCost};
use super::{AdviceSettings, ExistingIndexes, Recommendation, Served, WriteLoad};
use crate::shape::Namespace;
use crate::snapshot::Snapshot;

/// Turn candidates into named recommendations, heaviest first.
///
/// Names are unique where the engine needs them to be ([`EngineRules::name_scope`]: per
/// table's schema on PostgreSQL, per collection on MongoDB), also against the `existing`
/// index names: `CREATE INDEX IF NOT EXISTS` would otherwise silently keep a different index
/// of the same name.
///
/// [`EngineRules::name_scope`]: super::EngineRules::name_scope
pub fn rank(
    candidates: Vec<Candidate>,
    snapshot: &Snapshot,
    existing: &ExistingIndexes,
    settings: &AdviceSettings,
) -> Vec<Recommendation> {
    let mut reads: BTreeMap<&Namespace, u64> = BTreeMap::new();
    for record in snapshot.shapes.values() {
        let total = reads.entry(&record.shape.namespace).or_default();
        *total = total.saturating_add(record.count);
    }
    // Taken from the back, the candidates' room given back as it empties: the candidates
    // and the recommendations made of them are the run's largest allocations, and need not
    // both be whole at once.
    let mut candidates = candidates;
    let mut recommendations: Vec<Recommendation> = Vec::with_capacity(candidates.len());
    while let Some(candidate) = candidates.pop() {
        let mut recommendation = recommendation(candidate, snapshot);
        let namespace = &recommendation.index.namespace;
        recommendation.write_load = write_load(namespace, snapshot);
        recommendation.write_load.reads = reads.get(namespace).copied().unwrap_or_default();
        recommendation.write_cost = write_cost(namespace, snapshot, existing, settings);
        recommendations.push(recommendation);
        if candidates.len() < candidates.capacity() / 2 {
            candidates.shrink_to_fit();
        }
    }
    recommendations.reverse();
    sort_in_place(&mut recommendations, |a, b| {
        b.total_ms()
            .total_cmp(&a.total_ms())
            .then_with(|| a.name.cmp(&b.name))
    });
    name_all(&mut recommendations, existing);
    for recommendation in &mut recommendations {
        recommendation.net_saving_ms =
            recommendation.total_ms() - recommendation.write_cost.total_ms;
    }
    recommendations
}

/// Give every recommendation its engine's conventional name, unique where the engine needs
/// it to be, also against the `existing` index names (in the given order: the first keeps
/// the plain name).
pub fn name_all(recommendations: &mut [Recommendation], existing: &ExistingIndexes) {
    // Per scope (a few), the names taken in it (thousands).
    let mut taken: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (namespace, indexes) in existing {
        let names = indexes.iter().filter_map(|index| index.name.clone());
        taken
            .entry(name_scope(namespace))
            .or_default()
            .extend(names);
    }
    for recommendation in recommendations {
        let rules = recommendation.index.namespace.engine.rules();
        let taken = taken
            .entry(name_scope(&recommendation.index.namespace))
            .or_default();
        let base = recommendation.index.default_name();
        let mut name = base.clone();
        let mut attempt = 1u32;
        while taken.contains(&name) {
            attempt += 1;
            name = truncate_with_hash(&format!("{base}_{attempt}"), rules.max_name_len());
        }
        taken.insert(name.clone());
        recommendation.name = name.clone();
        recommendation.index.name = Some(name);
    }
}

/// The whole workload's choice, once verification has measured what it could: each
/// recommendation's net saving (the served shapes' time times its verified gain, or the
/// whole time when unverified, less its write cost); the ones that
/// cost more than they save are left out, then the best `max_indexes_per_namespace` of each
/// namespace are kept, best first. The notes say what was left out and why.
pub fn select(advice: &mut super::Advice, settings: &AdviceSettings) {
    for recommendation in &mut advice.recommendations {
        let gain = recommendation
            .evidence
            .as_ref()
            .map_or(1.0, super::Evidence::gain);
        recommendation.net_saving_ms = net_saving(recommendation, gain);
    }
    let mut costly = Vec::new();
    advice.recommendations.retain(|recommendation| {
        let keep = recommendation.net_saving_ms > 0.0;
        if !keep {
            let cost = &recommendation.write_cost;
            costly.push(format!(
                "{} (saves {:.1} ms, {} writes × {:.3} ms cost {:.1} ms)",
                recommendation.name,
                recommendation.net_saving_ms + cost.total_ms,
                cost.writes,
                cost.per_write_ms,
                cost.total_ms
            ));
        }
        keep
    });
    sort_in_place(&mut advice.recommendations, |a, b| {
        b.net_saving_ms
            .total_cmp(&a.net_saving_ms)
            .then_with(|| a.name.cmp(&b.name))
    });
    let mut per_namespace: BTreeMap<Namespace, usize> = BTreeMap::new();
    let mut over = Vec::new();
    advice.recommendations.retain(|recommendation| {
        let count = per_namespace
            .entry(recommendation.index.namespace.clone())
            .or_default();
        *count += 1;
        let keep = *count <= settings.max_indexes_per_namespace;
        if !keep {
            over.push(recommendation.name.clone());
        }
        keep
    });
    if !costly.is_empty() {
        advice.notes.push(format!(
            "{} candidate index(es) would cost more on writes than they save, left out: {}",
            costly.len(),
            costly.join(", ")
        ));
    }
    if !over.is_empty() {
        advice.notes.push(format!(
            "{} candidate index(es) beyond the budget of {} per table or collection, left out: {}",
            over.len(),
            settings.max_indexes_per_namespace,
            over.join(", ")
        ));
    }
}

/// What a recommendation saves over the window at a verified `gain` (1 when unverified):
/// the served shapes' time times the gain, less its write cost. It grows with the gain, so
/// at a gain of 1 it bounds what verification could find.
pub fn net_saving(recommendation: &Recommendation, gain: f64) -> f64 {
    recommendation.total_ms() * gain - recommendation.write_cost.total_ms
}

/// Sorts `items` by `compare`, stably (equal items keep their order), with no scratch copy
/// of the items: their positions are sorted, then the items are swapped into place along the
/// cycles of that permutation.
pub fn sort_in_place<T>(items: &mut [T], compare: impl Fn(&T, &T) -> Ordering) {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|a, b| compare(&items[*a], &items[*b]));
    // `order[at]` is the position whose item belongs at `at`; a settled slot is marked.
    const SETTLED: usize = usize::MAX;
    for start in 0..order.len() {
        let mut at = start;
        loop {
            let from = std::mem::replace(&mut order[at], SETTLED);
            if from == start || from == SETTLED {
                break;
            }
            // `items[at]` holds the cycle's first item, carried along until its slot.
            items.swap(at, from);
            at = from;
        }
    }
}

/// Where index names must be unique.
fn name_scope(namespace: &Namespace) -> String {
    namespace.engine.rules().name_scope(namespace)
}

fn recommendation(candidate: Candidate, snapshot: &Snapshot) -> Recommendation {
    // Sized to fit: there is one of these per candidate.
    let mut serves: Vec<Served> = Vec::with_capacity(candidate.serves.len());
    serves.extend(candidate.serves.iter().filter_map(|id| {
        let record = snapshot.shapes.get(id)?;
        Some(Served {
            shape_id: *id,
            shape: record.shape.describe(),
            count: record.count,
            total_ms: record.total_micros as f64 / 1000.0,
            p95_ms: record.latency.quantile_micros(0.95) as f64 / 1000.0,
        })
    }));
    serves.sort_by(|a, b| {
        b.total_ms
            .total_cmp(&a.total_ms)
            .then_with(|| b.count.cmp(&a.count))
            .then_with(|| a.shape_id.cmp(&b.shape_id))
    });
    let name = candidate.index.default_name();
    let mut index = candidate.index;
    index.name = Some(name.clone());
    Recommendation {
        write_load: WriteLoad::default(),
        index,
        name,
        serves,
        evidence: None,
        write_cost: WriteCost::default(),
        net_saving_ms: 0.0,
    }
}

/// The write load on `namespace` (`reads` left at zero: [`rank`] counts them for all
/// namespaces at once).
pub fn write_load(namespace: &Namespace, snapshot: &Snapshot) -> WriteLoad {
    let mut load = WriteLoad::default();
    for record in snapshot.writes.iter().filter(|w| &w.namespace == namespace) {
        load.inserts = load.inserts.saturating_add(record.inserts);
        load.updates = load.updates.saturating_add(record.updates);
        load.deletes = load.deletes.saturating_add(record.deletes);
    }
    load
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advise::candidates::KeyRole;
    use crate::advise::{IndexKey, IndexMethod, IndexSpec};
    use crate::shape::{Shape, ShapeId, Target};
    use crate::snapshot::{LatencySketch, ShapeRecord, WriteRecord};

    fn record(shape: Shape, count: u64, total_micros: u64, latency: LatencySketch) -> ShapeRecord {
        ShapeRecord {
            total_micros,
            latency,
            ..crate::advise::candidates::tests::record(shape, count)
        }
    }

    fn candidate(namespace: &Namespace, field: &str, serves: &[u64]) -> Candidate {
        let index = IndexSpec {
            namespace: namespace.clone(),
            keys: vec![IndexKey::asc(Target::Field(field.to_owned()))],
            method: IndexMethod::Btree,
            partial: Vec::new(),
            include: Vec::new(),
            unique: false,
            name: None,
        };
        let mut candidate = Candidate::new(index, ShapeId(serves[0]), vec![KeyRole::Equality]);
        candidate
            .serves
            .extend(serves.iter().map(|id| ShapeId(*id)));
        candidate
    }

    #[test]
    fn heaviest_first_with_weights_and_write_load() {
        let orders = Namespace::mongo("app", "orders");
        let users = Namespace::mongo("app", "users");
        let mut snapshot = Snapshot::default();
        let shapes = [
            (1, Shape::new(orders.clone(), "find"), 10, 5_000),
            (2, Shape::new(orders.clone(), "count"), 1_000, 90_000),
            (3, Shape::new(users.clone(), "find"), 5, 200_000),
        ];
        for (id, shape, count, micros) in shapes {
            snapshot.shapes.insert(
                ShapeId(id),
                record(
                    shape,
                    count,
                    micros,
                    LatencySketch::with_value(micros / count, count),
                ),
            );
        }
        snapshot.writes.push(WriteRecord {
            namespace: orders.clone(),
            inserts: 40,
            updates: 3,
            deletes: 1,
            insert_micros: 0,
        });
        let ranked = rank(
            vec![
                candidate(&orders, "status", &[1, 2]),
                candidate(&users, "email", &[3]),
                candidate(&orders, "zeta", &[1]),
            ],
            &snapshot,
            &ExistingIndexes::new(),
            &AdviceSettings::default(),
        );
        let names: Vec<&str> = ranked.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, vec!["email_1", "status_1", "zeta_1"]);
        let status = &ranked[1];
        assert_eq!(
            status.serves[0].shape_id,
            ShapeId(2),
            "heaviest shape first"
        );
        assert_eq!(status.serves[0].count, 1_000);
        assert_eq!(status.serves[0].total_ms, 90.0);
        // 90 µs, read from the latency sketch in whole µs: within 2 %.
        let p95 = status.serves[0].p95_ms;
        assert!((p95 - 0.09).abs() <= 0.09 * 0.02, "{p95}");
        assert_eq!(status.serves[0].shape, "count orders");
        assert_eq!(
            status.write_load,
            WriteLoad {
                inserts: 40,
                updates: 3,
                deletes: 1,
                reads: 1_010
            }
        );
    }

    #[test]
    fn sort_in_place_is_the_stable_sort() {
        // Many ties, so stability shows; lengths up to a few cycles of every size.
        for length in 0..40u64 {
            let items: Vec<(u64, u64)> = (0..length).map(|i| ((i * 7919) % 5, i)).collect();
            let mut expected = items.clone();
            expected.sort_by_key(|item| std::cmp::Reverse(item.0));
            let mut sorted = items;
            sort_in_place(&mut sorted, |a, b| b.0.cmp(&a.0));
            assert_eq!(sorted, expected, "{length} items");
        }
    }

    #[test]
    fn names_avoid_existing_and_each_other() {
        let table = Namespace::postgres("app", "public", "runs");
        let other_table = Namespace::postgres("app", "public", "runs");
        let mut existing_index = candidate(&table, "status", &[1]).index;
        existing_index.name = Some("runs_status_idx".to_owned());
        let existing = ExistingIndexes::from([(table.clone(), vec![existing_index])]);
        let mut partial = candidate(&other_table, "status", &[1]);
        partial.index.include = vec!["x".to_owned()];
        let ranked = rank(
            vec![candidate(&table, "status", &[1]), partial],
            &Snapshot::default(),
            &existing,
            &AdviceSettings::default(),
        );
        let mut names: Vec<&str> = ranked.iter().map(|r| r.name.as_str()).collect();
        names.sort();
        assert_eq!(names, vec!["runs_status_idx_2", "runs_status_idx_3"]);
        assert!(ranked
            .iter()
            .all(|r| r.index.name.as_deref() == Some(r.name.as_str())));
    }
}
