//! 50,000 distinct shapes through the store: it holds to its byte budget, what it charges
//! matches what the allocator really handed out, the hot shapes survive, and every
//! execution's count and time is still in the totals, per collection.
//!
//! One test in its own binary: the counting allocator sees every thread of the process.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use bson::{doc, Document, RawDocumentBuf};
use indextap_analyzer::aggregate::{Aggregator, Limits};
use indextap_analyzer::command::{
    MongoCommand, Observation, Outcome, Request, SqlCommand, SqlProtocol,
};
use indextap_analyzer::shape::{self, sql::SqlCache, Namespace};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const DISTINCT: usize = 50_000;
const HOT: usize = 100;
const BUDGET: usize = 8 * 1024 * 1024;

/// The `i`-th distinct MongoDB find (over 50 collections) or SQL statement (every fifth).
fn request(i: usize) -> Request {
    if i % 5 == 4 {
        return Request::Sql(SqlCommand {
            database: "app".into(),
            text: format!(
                "SELECT id, status FROM table_{} WHERE col_{i} = $1 AND created_at > $2 ORDER BY created_at DESC LIMIT 20",
                i % 50
            )
            .into(),
            parameters: 2,
            protocol: SqlProtocol::Extended,
            statement_index: None,
        });
    }
    let mut filter = Document::new();
    filter.insert("tenant", 7);
    filter.insert("status", "open");
    filter.insert(format!("field_{i}"), doc! { "$gte": 3 });
    let body = doc! {
        "find": format!("coll_{}", i % 50),
        "filter": filter,
        "sort": { "created_at": -1 },
        "limit": 10,
        "$db": "app",
    };
    Request::Mongo(MongoCommand::new(
        "app",
        RawDocumentBuf::try_from(&body).expect("a BSON command"),
        Vec::new(),
    ))
}

fn observe(request: Request, micros: u64) -> Observation {
    Observation {
        request,
        outcome: Outcome {
            latency: Duration::from_micros(micros),
            returned: 1,
            ..Outcome::default()
        },
        at: SystemTime::now(),
    }
}

/// Live heap bytes, as the allocator saw them since `region` began.
fn live(region: &Region<'_, std::alloc::System>) -> isize {
    let change = region.change();
    // Reallocations are already in both (growth as allocated, shrinking as deallocated).
    change.bytes_allocated as isize - change.bytes_deallocated as isize
}

#[test]
fn fifty_thousand_shapes_stay_within_the_budget_with_exact_totals() {
    let cache = SqlCache::new(0);
    let mut sent: BTreeMap<Namespace, (u64, u64)> = BTreeMap::new();
    let mut hot_ids = Vec::new();

    let region = Region::new(GLOBAL);
    let aggregator = Aggregator::with_limits(Limits {
        max_shapes: 1_000_000,
        max_bytes: BUDGET,
    });
    let mut peak_live = 0isize;
    for i in 0..DISTINCT {
        // Every 100 new shapes, each hot shape runs again, slower than any cold one.
        let mut batch = vec![(request(i), 1 + (i % 90) as u64)];
        if i % 100 == 0 {
            batch.extend((0..HOT).map(|h| (request(DISTINCT + h), 5_000)));
        }
        for (request, micros) in batch {
            let lowering = shape::lower(&request, &cache);
            if i == 0 && hot_ids.len() < HOT && lowering.shapes.len() == 1 && micros == 5_000 {
                hot_ids.push(lowering.shapes[0].shape.id());
            }
            for occurrence in &lowering.shapes {
                let totals = sent.entry(occurrence.shape.namespace.clone()).or_default();
                totals.0 += 1;
                totals.1 += micros;
            }
            aggregator.record(&observe(request, micros), lowering);
        }
        if i % 1_000 == 999 {
            let charged = aggregator.memory_bytes();
            assert!(charged <= aggregator.limits().store_bytes(), "{charged}");
            // Only the store is alive here, and the test's own map of a hundred namespaces.
            // The store charges at least what the allocator handed out: it never flatters.
            let live = live(&region);
            assert!(
                live <= charged as isize,
                "after {i}: live {live}, charged {charged}"
            );
            peak_live = peak_live.max(live);
        }
    }
    let snapshot = aggregator.snapshot();

    assert!(snapshot.other.evicted_shapes > 0, "the budget was reached");
    assert!(
        snapshot.shapes.len() > 5_000,
        "{} shapes kept within 8 MiB",
        snapshot.shapes.len()
    );
    // What the allocator handed out, less the test's own bookkeeping map (whose namespaces
    // are few), never passed the budget.
    assert!(peak_live > 0);
    assert!(
        (peak_live as usize) <= BUDGET,
        "the allocator saw {peak_live} live bytes against a budget of {BUDGET}"
    );

    // The hot shapes survived every eviction round.
    assert_eq!(hot_ids.len(), HOT);
    for id in &hot_ids {
        assert!(
            snapshot.shapes.contains_key(id),
            "hot shape {id} was evicted"
        );
    }

    // Totals are exact, per collection or table: kept shapes plus the namespace's bucket.
    let mut kept: BTreeMap<&Namespace, (u64, u64)> = BTreeMap::new();
    for record in snapshot.shapes.values() {
        let totals = kept.entry(&record.shape.namespace).or_default();
        totals.0 += record.count;
        totals.1 += record.total_micros;
    }
    let buckets: BTreeMap<&Namespace, (u64, u64)> = snapshot
        .other_by_namespace
        .iter()
        .map(|b| (&b.namespace, (b.count, b.total_micros)))
        .collect();
    for (namespace, (count, micros)) in &sent {
        let (kept_count, kept_micros) = kept.get(namespace).copied().unwrap_or_default();
        let (other_count, other_micros) = buckets.get(namespace).copied().unwrap_or_default();
        assert_eq!(kept_count + other_count, *count, "{namespace}");
        assert_eq!(kept_micros + other_micros, *micros, "{namespace}");
    }
    let all: u64 = sent.values().map(|(count, _)| count).sum();
    let tracked: u64 = snapshot.shapes.values().map(|r| r.count).sum();
    assert_eq!(tracked + snapshot.other.count, all);
}
