//! The checks both engines' corpus advice must pass, over indexes as plain key lists: none
//! served by an existing index or another recommendation (its keys are their leading keys in
//! any order), no more than a careful DBA adds, each needed pattern served, the expected drops;
//! and over the advice itself: each recommendation carries evidence or a note names it.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;
use serde_json::Value;

/// An index of the server's catalog, or a recommended one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// Its table or collection.
    pub table: String,
    pub name: String,
    pub keys: Vec<String>,
    /// A partial index finds only part of the rows: it serves nothing in general.
    pub partial: bool,
}

impl Index {
    /// A recommendation of the advice's JSON: its table or collection, name, keys (a field
    /// or an expression each) and whether it is partial.
    pub fn recommended(recommendation: &Value) -> Self {
        let text = |value: &Value| value.as_str().unwrap_or_default().to_string();
        Self {
            table: text(&recommendation["collection"]),
            name: text(&recommendation["name"]),
            keys: recommendation["keys"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|key| match key["field"].as_str() {
                    Some(field) => field.to_string(),
                    None => text(&key["expression"]),
                })
                .collect(),
            partial: !recommendation["partial"].is_null(),
        }
    }

    /// Whether `self`'s keys are `other`'s leading keys in some order: then whatever `self`
    /// finds by equality, `other` finds as well.
    pub fn led_by(&self, other: &Index) -> bool {
        self.table == other.table
            && !other.partial
            && other.keys.len() >= self.keys.len()
            && set(&self.keys) == set(&other.keys[..self.keys.len()])
    }
}

fn set(keys: &[String]) -> BTreeSet<&str> {
    keys.iter().map(String::as_str).collect()
}

/// Panics unless every recommendation of `advice` carries evidence, or a note names it (and
/// so says why it was not measured).
#[track_caller]
pub fn assert_evidence_or_note(advice: &Value) {
    let named: BTreeSet<&str> = advice["notes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .flat_map(|note| note.split_whitespace())
        .map(|word| word.trim_matches(|c| matches!(c, ',' | ':' | ';' | '(' | ')')))
        .collect();
    for recommendation in advice["recommendations"].as_array().into_iter().flatten() {
        let name = recommendation["name"].as_str().unwrap_or_default();
        assert!(
            !recommendation["evidence"].is_null() || named.contains(name),
            "{name} has no evidence and no note says why: {advice:#}"
        );
    }
}

/// What a careful DBA would do with a workload.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dba {
    /// The most indexes they would add.
    pub max_recommendations: usize,
    /// Patterns that need an index: a table or collection and the columns an index must
    /// lead with, in any order. An existing index or a recommendation must serve each.
    #[serde(borrow)]
    pub must_serve: Vec<(&'static str, Vec<&'static str>)>,
    /// Existing indexes that nothing uses while writes maintain them.
    #[serde(borrow)]
    pub drops: Vec<&'static str>,
}

/// The expectation of `workload` in a corpus's expectations file (`file`, its `text`): one
/// JSON object, by workload name, beside the workloads in `tests/corpus/`.
pub fn of_workload<T: Deserialize<'static>>(file: &str, text: &'static str, workload: &str) -> T {
    let mut all: HashMap<&'static str, T> =
        serde_json::from_str(text).unwrap_or_else(|err| panic!("{file}: {err}"));
    all.remove(workload)
        .unwrap_or_else(|| panic!("{file} has no workload {workload:?}"))
}

/// Panics unless `proposed` (the advice, with its `drops` named) passes the module's checks
/// against `existing`; `context` is printed with any failure.
pub fn assert_as_a_dba_would(
    proposed: &[Index],
    existing: &[Index],
    mut drops: Vec<String>,
    dba: &Dba,
    context: &str,
) {
    for index in proposed {
        if let Some(serving) = existing.iter().find(|other| index.led_by(other)) {
            panic!(
                "{} is served by the existing {} {:?}\n{context}",
                index.name, serving.name, serving.keys
            );
        }
        if let Some(twin) = proposed
            .iter()
            .filter(|other| other.name != index.name)
            .find(|other| index.led_by(other))
        {
            panic!(
                "{} is served by the other recommendation {} {:?}\n{context}",
                index.name, twin.name, twin.keys
            );
        }
    }
    assert!(
        proposed.len() <= dba.max_recommendations,
        "{} recommendations, a careful DBA adds at most {}\n{context}",
        proposed.len(),
        dba.max_recommendations
    );
    for (table, columns) in &dba.must_serve {
        let wanted = Index {
            table: table.to_string(),
            name: String::new(),
            keys: columns.iter().map(|c| c.to_string()).collect(),
            partial: false,
        };
        assert!(
            existing
                .iter()
                .chain(proposed)
                .any(|index| wanted.led_by(index)),
            "nothing serves {table} by {columns:?}\n{context}"
        );
    }
    drops.sort();
    let mut wanted: Vec<String> = dba.drops.iter().map(|d| d.to_string()).collect();
    wanted.sort();
    assert_eq!(drops, wanted, "drops\n{context}");
}
