//! A known snapshot, built from fixed commands with fixed timings, so every export of it can
//! be compared with an exact expected text.
//!
//! The commands go through the analyzer's own lowering and aggregation, exactly as the
//! proxy's traffic does; only the latencies and the clock are chosen, not measured. The
//! values in the commands are arbitrary: a shape keeps none of them.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bson::{doc, Document, RawDocumentBuf};
use indextap_analyzer::aggregate::Aggregator;
use indextap_analyzer::command::{
    DocumentSequence, MongoCommand, Observation, Outcome, Request, SqlCommand, SqlProtocol,
};
use indextap_analyzer::shape::{self, sql::SqlCache};
use indextap_analyzer::snapshot::Snapshot;

/// The MongoDB database of the known traffic.
pub(crate) const MONGO_DB: &str = "shop";
/// The PostgreSQL database of the known traffic.
pub(crate) const PG_DB: &str = "app";

/// Records commands with chosen timings into an aggregator.
pub(crate) struct Traffic {
    aggregator: Aggregator,
    cache: SqlCache,
    /// Every observation is one millisecond after the previous one.
    clock: SystemTime,
}

impl Traffic {
    pub(crate) fn new() -> Self {
        Self {
            aggregator: Aggregator::new(1_000),
            cache: SqlCache::new(64),
            clock: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        }
    }

    fn record(&mut self, request: Request, times: u32, latency: Duration) {
        let lowering = shape::lower(&request, &self.cache);
        for _ in 0..times {
            self.clock += Duration::from_millis(1);
            let observation = Observation {
                request: request.clone(),
                outcome: Outcome {
                    latency,
                    ..Outcome::default()
                },
                at: self.clock,
            };
            self.aggregator.record(&observation, lowering.clone());
        }
    }

    /// A MongoDB command (`$db` is added), run `times` times at `micros` each.
    pub(crate) fn mongo(&mut self, mut body: Document, times: u32, micros: u64) -> &mut Self {
        body.insert("$db", MONGO_DB);
        self.mongo_with(body, Vec::new(), times, micros)
    }

    /// An `insert` of `documents` documents sent as a kind 1 sequence, as drivers do.
    pub(crate) fn mongo_insert(&mut self, collection: &str, documents: usize) -> &mut Self {
        let body = doc! { "insert": collection, "ordered": true, "$db": MONGO_DB };
        let sequence = DocumentSequence {
            identifier: "documents".to_owned(),
            count: documents,
            documents: Vec::new(),
        };
        self.mongo_with(body, vec![sequence], 1, 900)
    }

    fn mongo_with(
        &mut self,
        body: Document,
        sequences: Vec<DocumentSequence>,
        times: u32,
        micros: u64,
    ) -> &mut Self {
        let body = RawDocumentBuf::try_from(&body).expect("a BSON command");
        let request = Request::Mongo(MongoCommand::new(MONGO_DB, body, sequences));
        self.record(request, times, Duration::from_micros(micros));
        self
    }

    /// A SQL statement with `parameters` bound parameters (extended protocol when > 0).
    pub(crate) fn sql(
        &mut self,
        text: &str,
        parameters: usize,
        times: u32,
        micros: u64,
    ) -> &mut Self {
        let request = Request::Sql(SqlCommand {
            database: PG_DB.into(),
            text: Arc::from(text),
            parameters,
            protocol: if parameters > 0 {
                SqlProtocol::Extended
            } else {
                SqlProtocol::Simple
            },
            statement_index: None,
        });
        self.record(request, times, Duration::from_micros(micros));
        self
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        self.aggregator.snapshot()
    }
}

/// The MongoDB indexes that exist before the known traffic is advised on: `email_1` serves
/// the users' lookups already, and `tenant_id_1` is a prefix of `tenant_id_1_created_at_-1`.
pub(crate) fn existing_mongo_indexes() -> Vec<(&'static str, Document, &'static str)> {
    vec![
        ("users", doc! { "email": 1 }, "email_1"),
        ("users", doc! { "tenant_id": 1 }, "tenant_id_1"),
        (
            "users",
            doc! { "tenant_id": 1, "created_at": -1 },
            "tenant_id_1_created_at_-1",
        ),
    ]
}

/// The known traffic: both engines, reads with different weights, a write-heavy collection,
/// a partial index, an expression index, a trigram index, and lookups an existing index
/// already serves.
pub(crate) fn known_traffic() -> Traffic {
    // The 20 latest orders of a customer in a status: two values, one shape.
    let latest_orders = |customer: i64, status: &str| {
        doc! {
            "find": "orders",
            "filter": { "customer_id": customer, "status": status },
            "sort": { "created_at": -1 },
            "limit": 20,
        }
    };
    let mut traffic = Traffic::new();
    traffic
        // orders: one index (customer_id, status, created_at desc) serves both shapes.
        .mongo(latest_orders(41, "shipped"), 100, 1_500)
        .mongo(latest_orders(7, "pending"), 20, 12_000)
        .mongo(
            doc! { "count": "orders", "query": { "customer_id": 3_i64 } },
            30,
            400,
        )
        // users: email_1 exists already.
        .mongo(
            doc! { "find": "users", "filter": { "email": "someone@example.com" }, "limit": 1 },
            50,
            300,
        )
        // tickets: a constant $exists belongs in a partial filter.
        .mongo(
            doc! {
                "find": "tickets",
                "filter": { "project_id": 9_i64, "closed_at": { "$exists": true } },
            },
            15,
            2_000,
        )
        // events: mostly written.
        .mongo_insert("events", 800)
        .mongo(
            doc! {
                "find": "events",
                "filter": { "kind": "click", "at": { "$gte": 1_700_000_000_i64 } },
            },
            6,
            3_000,
        )
        // runs: partial (deleted_at IS NULL), sort with LIMIT.
        .sql(
            "SELECT id, status FROM runs WHERE customer_id = $1 AND deleted_at IS NULL \
             ORDER BY started_at DESC LIMIT 20",
            1,
            90,
            5_000,
        )
        .sql(
            "INSERT INTO runs (customer_id, status) VALUES ($1, $2)",
            2,
            10,
            700,
        )
        // users: an expression index, and a trigram index for the infix ILIKE.
        .sql("SELECT id FROM users WHERE lower(email) = $1", 1, 40, 800)
        .sql(
            "SELECT id, name FROM users WHERE name ILIKE $1",
            1,
            12,
            20_000,
        );
    traffic
}
