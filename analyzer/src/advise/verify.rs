//! Verification with planner costs: keep only the indexes the planner would use.
//!
//! Pure logic; the PostgreSQL catalog module does the talking. It asks [`probes`] what to
//! measure (per recommendation: the HypoPG statement and the served shapes' normalised SQL),
//! runs `EXPLAIN` for each query without and with the hypothetical index, and hands the
//! results back as [`Measurement`]s to [`apply`], which records the evidence and drops what
//! the planner would not use. When HypoPG is missing, [`note_hypopg_unavailable`] says so in
//! the advice instead. [`schedule`] decides which candidates are worth measuring.

pub mod schedule;

use std::collections::BTreeMap;

use super::{rank, Advice, AdviceSettings, Evidence, ExistingIndexes, IndexSpec, Recommendation};
use crate::shape::{Namespace, ShapeId};
use crate::snapshot::Snapshot;

/// What to measure for one recommendation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The recommendation's table.
    pub namespace: Namespace,
    /// The recommendation's name (unique per schema, so with the namespace it is a key).
    pub name: String,
    /// A plain `CREATE INDEX` for `hypopg_create_index` (no `CONCURRENTLY`, no name).
    pub hypothetical_ddl: String,
    /// The served shapes that can be explained.
    pub queries: Vec<ProbeQuery>,
}

/// One query to explain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeQuery {
    /// The shape.
    pub shape_id: ShapeId,
    /// Its normalised SQL, parameters as `$n` (explain it as a generic plan).
    pub sql: String,
}

/// The planner's view of one served shape, without and with the hypothetical index.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// The recommendation's table.
    pub namespace: Namespace,
    /// The recommendation's name.
    pub name: String,
    /// The shape that was explained.
    pub shape_id: ShapeId,
    /// Total plan cost without the index.
    pub cost_before: f64,
    /// Total plan cost with the hypothetical index.
    pub cost_after: f64,
    /// Whether the plan with the index scans it.
    pub index_used: bool,
}

/// Per recommendation on an engine verified with hypothetical indexes (PostgreSQL), what
/// to measure. Recommendations none of whose shapes has normalised SQL are left out (they
/// stay unverified).
pub fn probes(advice: &Advice, snapshot: &Snapshot) -> Vec<Probe> {
    advice
        .recommendations
        .iter()
        .filter_map(|recommendation| {
            let index = &recommendation.index;
            let hypothetical_ddl = index.namespace.engine.rules().hypothetical_ddl(index)?;
            let queries = queries(recommendation, snapshot);
            (!queries.is_empty()).then(|| Probe {
                namespace: index.namespace.clone(),
                name: recommendation.name.clone(),
                hypothetical_ddl,
                queries,
            })
        })
        .collect()
}

/// Names, in the notes, the recommendations a planner would verify that [`probes`] leaves
/// out: none of their shapes has SQL to explain (a snapshot that did not keep it). They stay
/// unverified, never silently.
pub fn note_unexplainable(advice: &mut Advice, snapshot: &Snapshot) {
    let names: Vec<String> = advice
        .recommendations
        .iter()
        .filter(|r| {
            r.index
                .namespace
                .engine
                .rules()
                .hypothetical_ddl(&r.index)
                .is_some()
        })
        .filter(|r| queries(r, snapshot).is_empty())
        .map(|r| r.name.clone())
        .collect();
    if !names.is_empty() {
        advice.notes.push(format!(
            "{} recommendation(s) not verified (none of their shapes has SQL to explain): {}",
            names.len(),
            names.join(", ")
        ));
    }
}

/// The normalised SQL of the shapes one recommendation serves, heaviest first.
pub fn queries(recommendation: &Recommendation, snapshot: &Snapshot) -> Vec<ProbeQuery> {
    recommendation
        .serves
        .iter()
        .filter_map(|served| {
            let sql = snapshot
                .shapes
                .get(&served.shape_id)?
                .normalized_sql
                .clone()?;
            Some(ProbeQuery {
                shape_id: served.shape_id,
                sql,
            })
        })
        .collect()
}

/// What one engine's verification found, whatever its method: written into the advice by
/// [`Findings::settle`].
#[derive(Debug, Default)]
pub struct Findings {
    pub measurements: Vec<Measurement>,
    /// Recommendations whose verification failed, with the reason: never recommended.
    pub failed: Vec<(Namespace, String, String)>,
    /// Recommendations replaced by the first simpler variant that paid.
    pub replaced: Vec<(Namespace, String, IndexSpec)>,
}

impl Findings {
    /// Leaves out what failed ([`leave_out`]), puts the replacements in ([`replace`]),
    /// records the evidence ([`apply`]) and names the recommendations again, as a
    /// replacement may have changed their keys.
    pub fn settle(
        self,
        advice: &mut Advice,
        existing: &ExistingIndexes,
        settings: &AdviceSettings,
    ) {
        for (namespace, name, reason) in &self.failed {
            leave_out(advice, namespace, name, reason);
        }
        for (namespace, name, index) in self.replaced {
            replace(advice, &namespace, &name, index);
        }
        apply(advice, &self.measurements, settings);
        rank::name_all(&mut advice.recommendations, existing);
    }
}

/// Record the evidence, and drop the recommendations the planner would not use: not in any
/// measured plan, or cheaper by less than `settings.min_gain` of the served shapes' cost.
/// Recommendations without measurements are kept as they are (unverified), and so are
/// those of an engine that is not verified. Measurements with costs that are not finite are
/// ignored.
pub fn apply(advice: &mut Advice, measurements: &[Measurement], settings: &AdviceSettings) {
    let mut totals: BTreeMap<(&Namespace, &str), (f64, f64, bool)> = BTreeMap::new();
    for measurement in measurements {
        let sane = |cost: f64| cost.is_finite() && cost >= 0.0;
        if !sane(measurement.cost_before) || !sane(measurement.cost_after) {
            continue;
        }
        let total = totals
            .entry((&measurement.namespace, measurement.name.as_str()))
            .or_insert((0.0, 0.0, false));
        total.0 += measurement.cost_before;
        total.1 += measurement.cost_after;
        total.2 |= measurement.index_used;
    }
    let mut unused = Vec::new();
    let mut small = Vec::new();
    advice.recommendations.retain_mut(|recommendation| {
        let key = (
            &recommendation.index.namespace,
            recommendation.name.as_str(),
        );
        let Some((before, after, used)) = totals.get(&key).copied() else {
            return true;
        };
        let Some(method) = key.0.engine.rules().verification() else {
            return true;
        };
        let evidence = Evidence {
            method,
            cost_before: before,
            cost_after: after,
            sample_size: None,
        };
        let gain = evidence.gain();
        recommendation.evidence = Some(evidence);
        if !used || after >= before {
            unused.push(recommendation.name.clone());
            false
        } else if gain < settings.min_gain {
            small.push(format!("{} ({:.0} %)", recommendation.name, gain * 100.0));
            false
        } else {
            true
        }
    });
    if !unused.is_empty() {
        advice.notes.push(format!(
            "the planner would not use {} candidate index(es), left out: {}",
            unused.len(),
            unused.join(", ")
        ));
    }
    if !small.is_empty() {
        advice.notes.push(format!(
            "{} candidate index(es) would save less than {:.0} % of their shapes' cost, left out: {}",
            small.len(),
            settings.min_gain * 100.0,
            small.join(", ")
        ));
    }
}

/// Whether measured totals `before` → `after`, with the index used, clear `min_gain`.
pub fn pays(before: f64, after: f64, used: bool, min_gain: f64) -> bool {
    used && before > 0.0 && after.is_finite() && (1.0 - after / before) >= min_gain
}

/// The simpler indexes to try, in turn, when the planner refuses `index` or it does not
/// pay: without its partial predicate (a flag passed as a parameter cannot prove it),
/// without `INCLUDE`, without both, then with fewer trailing keys.
pub fn fallbacks(index: &IndexSpec) -> Vec<IndexSpec> {
    let mut simpler = Vec::new();
    let mut push = |candidate: IndexSpec| {
        if &candidate != index && !simpler.contains(&candidate) && !candidate.keys.is_empty() {
            simpler.push(candidate);
        }
    };
    let plain = IndexSpec {
        partial: Vec::new(),
        include: Vec::new(),
        name: None,
        ..index.clone()
    };
    push(IndexSpec {
        partial: Vec::new(),
        name: None,
        ..index.clone()
    });
    push(IndexSpec {
        include: Vec::new(),
        name: None,
        ..index.clone()
    });
    push(plain.clone());
    for length in (1..index.keys.len()).rev() {
        push(IndexSpec {
            keys: plain.keys.iter().take(length).cloned().collect(),
            ..plain.clone()
        });
    }
    simpler
}

/// The same index without its covering columns, when it has some: `INCLUDE` stays only
/// when verification shows it pays.
pub fn without_include(index: &IndexSpec) -> Option<IndexSpec> {
    (!index.include.is_empty()).then(|| IndexSpec {
        include: Vec::new(),
        name: None,
        ..index.clone()
    })
}

/// Replace a recommendation's index by the simpler variant verification chose (its name is
/// given again by `rank::name_all` once every measurement is applied).
pub fn replace(advice: &mut Advice, namespace: &Namespace, name: &str, index: IndexSpec) {
    if let Some(recommendation) = advice
        .recommendations
        .iter_mut()
        .find(|r| &r.index.namespace == namespace && r.name == name)
    {
        recommendation.index = IndexSpec {
            name: recommendation.index.name.clone(),
            ..index
        };
    }
}

/// Leave a recommendation out because it could not be verified (its statement failed on the
/// planner, or every query failed to explain): never recommend what did not verify.
pub fn leave_out(advice: &mut Advice, namespace: &Namespace, name: &str, reason: &str) {
    let before = advice.recommendations.len();
    advice
        .recommendations
        .retain(|r| !(&r.index.namespace == namespace && r.name == name));
    if advice.recommendations.len() < before {
        advice.notes.push(format!(
            "{name} is left out: its verification failed ({reason})"
        ));
    }
}

/// Say in the advice that its PostgreSQL costs were not verified on `database`.
pub fn note_hypopg_unavailable(advice: &mut Advice, database: &str) {
    let note = format!("HypoPG is not available on {database}: costs are not verified");
    if !advice.notes.contains(&note) {
        advice.notes.push(note);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advise::{EvidenceMethod, IndexKey, IndexMethod, IndexSpec, Served, WriteLoad};
    use crate::shape::{Shape, Target};
    use crate::snapshot::{LatencySketch, ShapeRecord};

    fn recommendation(name: &str, shapes: &[u64]) -> Recommendation {
        let namespace = Namespace::postgres("app", "public", "runs");
        Recommendation {
            index: IndexSpec {
                namespace,
                keys: vec![IndexKey::asc(Target::Field("status".to_owned()))],
                method: IndexMethod::Btree,
                partial: Vec::new(),
                include: Vec::new(),
                unique: false,
                name: Some(name.to_owned()),
            },
            name: name.to_owned(),
            serves: shapes
                .iter()
                .map(|id| Served {
                    shape_id: ShapeId(*id),
                    shape: String::new(),
                    count: 1,
                    total_ms: 1.0,
                    p95_ms: 1.0,
                })
                .collect(),
            evidence: None,
            write_load: WriteLoad::default(),
            write_cost: crate::advise::WriteCost::default(),
            net_saving_ms: 0.0,
        }
    }

    fn measured(name: &str, shape: u64, before: f64, after: f64, used: bool) -> Measurement {
        Measurement {
            namespace: Namespace::postgres("app", "public", "runs"),
            name: name.to_owned(),
            shape_id: ShapeId(shape),
            cost_before: before,
            cost_after: after,
            index_used: used,
        }
    }

    #[test]
    fn probes_list_the_served_sql() {
        let mut snapshot = Snapshot::default();
        let shape = Shape::new(Namespace::postgres("app", "public", "runs"), "select");
        let with_sql = ShapeRecord {
            shape: shape.into(),
            count: 1,
            errors: 0,
            error_codes: Default::default(),
            total_micros: 1,
            returned: 0,
            continuations: 0,
            first_seen_ms: 0,
            last_seen_ms: 0,
            constants: Vec::new(),
            normalized_sql: Some("SELECT * FROM runs WHERE status = $1".to_owned()),
            latency: LatencySketch::default(),
        };
        let without_sql = ShapeRecord {
            normalized_sql: None,
            ..with_sql.clone()
        };
        snapshot.shapes.insert(ShapeId(1), with_sql);
        snapshot.shapes.insert(ShapeId(2), without_sql);
        let advice = Advice {
            recommendations: vec![
                recommendation("runs_status_idx", &[2, 1]),
                recommendation("runs_x_idx", &[2]),
            ],
            ..Advice::default()
        };
        let probes = probes(&advice, &snapshot);
        assert_eq!(
            probes.len(),
            1,
            "a recommendation with no SQL to explain is not probed"
        );
        assert_eq!(probes[0].name, "runs_status_idx");
        assert_eq!(
            probes[0].queries,
            vec![ProbeQuery {
                shape_id: ShapeId(1),
                sql: "SELECT * FROM runs WHERE status = $1".to_owned()
            }]
        );
        assert_eq!(
            probes[0].hypothetical_ddl,
            "CREATE INDEX ON \"public\".\"runs\" USING btree (\"status\")"
        );
    }

    #[test]
    fn apply_keeps_what_the_planner_uses() {
        let mut advice = Advice {
            recommendations: vec![
                recommendation("used_idx", &[1, 2]),
                recommendation("unused_idx", &[3]),
                recommendation("costlier_idx", &[4]),
                recommendation("unmeasured_idx", &[5]),
                recommendation("marginal_idx", &[6]),
            ],
            ..Advice::default()
        };
        apply(
            &mut advice,
            &[
                measured("used_idx", 1, 100.0, 10.0, true),
                measured("used_idx", 2, 50.0, 50.0, false),
                measured("unused_idx", 3, 100.0, 10.0, false),
                measured("costlier_idx", 4, 10.0, 10.0, true),
                measured("unmeasured_idx", 5, f64::NAN, 1.0, true),
                measured("marginal_idx", 6, 100.0, 97.0, true),
            ],
            &AdviceSettings::default(),
        );
        let names: Vec<&str> = advice
            .recommendations
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(names, vec!["used_idx", "unmeasured_idx"]);
        assert_eq!(
            advice.recommendations[0].evidence,
            Some(Evidence {
                method: EvidenceMethod::Hypopg,
                cost_before: 150.0,
                cost_after: 60.0,
                sample_size: None,
            })
        );
        assert_eq!(advice.recommendations[1].evidence, None);
        assert_eq!(
            advice.notes,
            vec![
                "the planner would not use 2 candidate index(es), left out: unused_idx, costlier_idx",
                "1 candidate index(es) would save less than 20 % of their shapes' cost, left out: marginal_idx (3 %)",
            ]
        );
    }

    #[test]
    fn fallbacks_get_simpler_in_turn() {
        let mut index = recommendation("x", &[1]).index;
        index
            .keys
            .push(IndexKey::desc(Target::Field("created".to_owned())));
        index.include = vec!["id".to_owned()];
        index.partial = vec![crate::advise::PartialTerm {
            target: Target::Field("deleted".to_owned()),
            condition: crate::advise::Condition::Bool(false),
        }];
        let shapes: Vec<(usize, usize, bool)> = fallbacks(&index)
            .iter()
            .map(|f| (f.keys.len(), f.include.len(), f.partial.is_empty()))
            .collect();
        assert_eq!(
            shapes,
            vec![(2, 1, true), (2, 0, false), (2, 0, true), (1, 0, true)]
        );
        assert!(pays(100.0, 50.0, true, 0.2));
        assert!(!pays(100.0, 90.0, true, 0.2));
        assert!(!pays(100.0, 10.0, false, 0.2));
    }

    #[test]
    fn a_recommendation_without_sql_is_named() {
        let mut snapshot = Snapshot::default();
        let shape = Shape::new(Namespace::postgres("app", "public", "runs"), "select");
        // No normalised SQL: a snapshot that did not keep it.
        let record = crate::advise::candidates::tests::record(shape, 1);
        snapshot.shapes.insert(ShapeId(1), record);
        let mut advice = Advice {
            recommendations: vec![recommendation("runs_status_idx", &[1])],
            ..Advice::default()
        };
        note_unexplainable(&mut advice, &snapshot);
        assert_eq!(
            advice.notes,
            vec!["1 recommendation(s) not verified (none of their shapes has SQL to explain): runs_status_idx"]
        );
    }

    #[test]
    fn hypopg_note_is_added_once() {
        let mut advice = Advice::default();
        note_hypopg_unavailable(&mut advice, "app");
        note_hypopg_unavailable(&mut advice, "app");
        assert_eq!(
            advice.notes,
            vec!["HypoPG is not available on app: costs are not verified"]
        );
    }
}
