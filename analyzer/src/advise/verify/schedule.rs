//! Which candidates verification measures, and which it can leave out unmeasured.
//!
//! Verification costs a few planner round trips per candidate, and a workload of thousands of
//! statements yields thousands of candidates, of which [`rank::select`] keeps only the best
//! `max_indexes_per_namespace` of each table. So candidates are measured best first (by the
//! time their shapes took, the order [`rank::rank`] gives), and a candidate is measured only
//! while it could still make the list:
//!
//! - **It cannot make the list** when its namespace already holds
//!   `max_indexes_per_namespace` accepted candidates that each save more than it could at
//!   best ([`rank::net_saving`] at a gain of 1). Measuring it could not change the advice, so
//!   leaving it out is exact.
//! - **It cannot pay** when its write cost is at least the time its shapes took: no gain
//!   makes up for it. It is not measured, and stays for [`rank::select`], which leaves it
//!   out with the write-cost note it gives any such candidate.
//! - **The budget is spent** when `max_verified` candidates were measured in this run
//!   ([`AdviceSettings::max_verified`], `advice.max_verified_candidates`): what is left is
//!   lighter than everything measured, and it is left out rather than recommended
//!   unverified.
//!
//! [`Schedule::finish`] takes what was left out of the advice and says so in its notes.
//!
//! [`rank::select`]: crate::advise::rank::select
//! [`rank::rank`]: crate::advise::rank::rank
//! [`rank::net_saving`]: crate::advise::rank::net_saving

use std::collections::BTreeMap;

use crate::advise::rank::net_saving;
use crate::advise::{Advice, AdviceSettings, Recommendation};
use crate::shape::Namespace;

/// What to do with the next candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Turn {
    /// Measure it.
    Measure,
    /// Leave it out: the namespace's list is full of candidates that save more than
    /// `bound_ms`, the most it could save.
    CannotMakeTheList {
        /// Its net saving at a gain of 1, in milliseconds.
        bound_ms: f64,
    },
    /// Do not measure it: its write cost outweighs all its shapes' time, so
    /// [`rank::select`](crate::advise::rank::select) leaves it out and says why.
    CannotPay,
    /// Leave it out: the run's verification budget is spent.
    OverBudget,
}

/// Why a candidate was left out unmeasured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Reason {
    CannotMakeTheList,
    OverBudget,
}

/// The greedy order of one verification run. See the module docs.
#[derive(Debug)]
pub struct Schedule {
    settings: AdviceSettings,
    measured: usize,
    /// Per namespace, the net savings of the candidates accepted so far, best first.
    accepted: BTreeMap<Namespace, Vec<f64>>,
    /// Left out: (namespace, name) → why, with its bound.
    skipped: BTreeMap<(Namespace, String), (Reason, f64)>,
}

impl Schedule {
    /// A run under `settings` (its list size and budget).
    pub fn new(settings: &AdviceSettings) -> Self {
        Self {
            settings: settings.clone(),
            measured: 0,
            accepted: BTreeMap::new(),
            skipped: BTreeMap::new(),
        }
    }

    /// Whether to measure `recommendation` (taken in rank order). A [`Turn::Measure`] counts
    /// against the budget; any other turn records it as left out.
    pub fn turn(&mut self, recommendation: &Recommendation) -> Turn {
        let bound_ms = net_saving(recommendation, 1.0);
        let namespace = &recommendation.index.namespace;
        let full = self.accepted.get(namespace).is_some_and(|savings| {
            savings.len() >= self.settings.max_indexes_per_namespace
                && savings[self.settings.max_indexes_per_namespace - 1] > bound_ms
        });
        let turn = if bound_ms <= 0.0 {
            Turn::CannotPay
        } else if full {
            Turn::CannotMakeTheList { bound_ms }
        } else if self.measured >= self.settings.max_verified {
            Turn::OverBudget
        } else {
            Turn::Measure
        };
        let key = (namespace.clone(), recommendation.name.clone());
        match turn {
            Turn::Measure => self.measured += 1,
            Turn::CannotPay => {}
            Turn::CannotMakeTheList { .. } => {
                self.skipped
                    .insert(key, (Reason::CannotMakeTheList, bound_ms));
            }
            Turn::OverBudget => {
                self.skipped.insert(key, (Reason::OverBudget, bound_ms));
            }
        }
        turn
    }

    /// `recommendation` was measured and accepted at `gain`: it takes a place on its
    /// namespace's list if it saves anything.
    pub fn accept(&mut self, recommendation: &Recommendation, gain: f64) {
        let saving = net_saving(recommendation, gain);
        if saving <= 0.0 {
            return;
        }
        let savings = self
            .accepted
            .entry(recommendation.index.namespace.clone())
            .or_default();
        let at = savings.partition_point(|kept| *kept >= saving);
        savings.insert(at, saving);
    }

    /// How many candidates were measured.
    pub fn measured(&self) -> usize {
        self.measured
    }

    /// Takes the candidates left out unmeasured from `advice`, with a note per reason.
    pub fn finish(self, advice: &mut Advice) {
        if self.skipped.is_empty() {
            return;
        }
        advice.recommendations.retain(|recommendation| {
            !self.skipped.contains_key(&(
                recommendation.index.namespace.clone(),
                recommendation.name.clone(),
            ))
        });
        let mut by_reason: BTreeMap<Reason, BTreeMap<&Namespace, (usize, f64)>> = BTreeMap::new();
        for ((namespace, _), (reason, bound)) in &self.skipped {
            let entry = by_reason
                .entry(*reason)
                .or_default()
                .entry(namespace)
                .or_insert((0, f64::MIN));
            entry.0 += 1;
            entry.1 = entry.1.max(*bound);
        }
        for (reason, namespaces) in by_reason {
            let total: usize = namespaces.values().map(|(count, _)| count).sum();
            let list = namespaces
                .iter()
                .map(|(namespace, (count, bound))| {
                    format!("{namespace}: {count} (at most {bound:.1} ms each)")
                })
                .collect::<Vec<_>>()
                .join(", ");
            advice.notes.push(match reason {
                Reason::CannotMakeTheList => format!(
                    "{total} candidate index(es) were not verified and are left out: their table's best {} verified ones already save more than any of them could: {list}",
                    self.settings.max_indexes_per_namespace
                ),
                Reason::OverBudget => format!(
                    "{total} candidate index(es) were not verified and are left out: the verification budget of {} candidates per run (advice.max_verified_candidates) was spent on heavier ones: {list}",
                    self.settings.max_verified
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advise::write_cost::DEFAULT_INDEX_WRITE_COST_MS;
    use crate::advise::{IndexKey, IndexMethod, IndexSpec, Served, WriteCost, WriteLoad};
    use crate::shape::{ShapeId, Target};

    fn recommendation(table: &str, name: &str, total_ms: f64, inserts: u64) -> Recommendation {
        let namespace = Namespace::postgres("app", "public", table);
        Recommendation {
            index: IndexSpec::new(
                namespace,
                IndexMethod::Btree,
                vec![IndexKey::asc(Target::Field(name.into()))],
            ),
            name: name.to_string(),
            serves: vec![Served {
                shape_id: ShapeId(1),
                shape: String::new(),
                count: 1,
                total_ms,
                p95_ms: total_ms,
            }],
            evidence: None,
            write_load: WriteLoad {
                inserts,
                ..WriteLoad::default()
            },
            write_cost: WriteCost {
                writes: inserts,
                total_ms: inserts as f64 * DEFAULT_INDEX_WRITE_COST_MS,
                ..WriteCost::default()
            },
            net_saving_ms: 0.0,
        }
    }

    fn settings(max_indexes_per_namespace: usize, max_verified: usize) -> AdviceSettings {
        AdviceSettings {
            max_indexes_per_namespace,
            max_verified,
            ..AdviceSettings::default()
        }
    }

    #[test]
    fn a_full_list_of_better_candidates_leaves_the_rest_out() {
        let mut schedule = Schedule::new(&settings(2, 100));
        let first = recommendation("orders", "a", 100.0, 0);
        let second = recommendation("orders", "b", 90.0, 0);
        let third = recommendation("orders", "c", 80.0, 0);
        let elsewhere = recommendation("users", "d", 1.0, 0);
        assert_eq!(schedule.turn(&first), Turn::Measure);
        schedule.accept(&first, 0.9);
        assert_eq!(schedule.turn(&second), Turn::Measure);
        schedule.accept(&second, 0.95);
        // 80 ms at best against 90 and 85.5 accepted: it cannot make the list of two.
        assert_eq!(
            schedule.turn(&third),
            Turn::CannotMakeTheList { bound_ms: 80.0 }
        );
        // Another table's list is its own.
        assert_eq!(schedule.turn(&elsewhere), Turn::Measure);
        assert_eq!(schedule.measured(), 3);

        let mut advice = Advice {
            recommendations: vec![first, second, third, elsewhere],
            ..Advice::default()
        };
        schedule.finish(&mut advice);
        let names: Vec<&str> = advice
            .recommendations
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b", "d"]);
        assert_eq!(advice.notes.len(), 1);
        assert!(advice.notes[0].contains("1 candidate index(es) were not verified"));
        assert!(advice.notes[0].contains("(at most 80.0 ms each)"));
    }

    #[test]
    fn a_candidate_that_could_still_beat_the_list_is_measured() {
        let mut schedule = Schedule::new(&settings(1, 100));
        let first = recommendation("orders", "a", 100.0, 0);
        let second = recommendation("orders", "b", 90.0, 0);
        assert_eq!(schedule.turn(&first), Turn::Measure);
        // A poor gain: 30 ms saved, and the next could save up to 90.
        schedule.accept(&first, 0.3);
        assert_eq!(schedule.turn(&second), Turn::Measure);
    }

    #[test]
    fn refused_candidates_keep_no_place_and_costly_ones_are_left_to_select() {
        let mut schedule = Schedule::new(&settings(1, 100));
        let first = recommendation("orders", "a", 100.0, 0);
        // Not accepted (never passed to `accept`): the list stays empty.
        assert_eq!(schedule.turn(&first), Turn::Measure);
        let second = recommendation("orders", "b", 1.0, 0);
        assert_eq!(schedule.turn(&second), Turn::Measure);
        // 1 ms of reads against 100,000 inserts' maintenance: it cannot pay at any gain.
        let costly = recommendation("orders", "c", 1.0, 100_000);
        assert_eq!(schedule.turn(&costly), Turn::CannotPay);
        // Left in the advice for `select`, whose note names its write cost.
        let mut advice = Advice {
            recommendations: vec![costly],
            ..Advice::default()
        };
        schedule.finish(&mut advice);
        assert_eq!(advice.recommendations.len(), 1);
        assert!(advice.notes.is_empty());
    }

    #[test]
    fn the_budget_leaves_the_lighter_candidates_out_with_a_note() {
        let mut schedule = Schedule::new(&settings(5, 2));
        let all: Vec<Recommendation> = (0..4)
            .map(|i| recommendation("orders", &format!("i{i}"), 100.0 - f64::from(i), 0))
            .collect();
        let turns: Vec<Turn> = all.iter().map(|r| schedule.turn(r)).collect();
        assert_eq!(
            turns,
            [
                Turn::Measure,
                Turn::Measure,
                Turn::OverBudget,
                Turn::OverBudget
            ]
        );
        let mut advice = Advice {
            recommendations: all,
            ..Advice::default()
        };
        schedule.finish(&mut advice);
        assert_eq!(advice.recommendations.len(), 2);
        assert!(
            advice.notes[0].contains("budget of 2 candidates per run"),
            "{:?}",
            advice.notes
        );
    }
}
