//! `GET /api/v1/shapes`: one sorted page of the captured shapes, with the totals around
//! them (writes, the other buckets, rejections, the store's memory).
//!
//! Query: `sort` = `total_time` (default) | `count` | `p95`; `order` = `desc` (default) |
//! `asc`; `limit` (default [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`]); `offset` (default 0).
//! The answer says `total` and `next_offset` (absent on the last page), so a client pages
//! through with `offset = next_offset` until there is none.
//!
//! A page is read from the live store without a snapshot: only the page's shapes are
//! copied, and their quantiles come from each shape's latency sketch. `indextap shapes
//! FILE` builds the same document from a snapshot file.

use std::collections::BTreeMap;

use indextap_analyzer::aggregate::{Aggregator, PageRequest, ShapeOrder, ShapesPage};
use indextap_analyzer::shape::Rejection;
use indextap_analyzer::snapshot::{
    NamespaceOtherRecord, OtherRecord, ShapeRecord, Snapshot, WriteRecord,
};
use serde::Deserialize;
use serde_json::{json, Value};

/// Shapes per page when the query does not say.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest page served.
pub const MAX_LIMIT: usize = 1_000;

/// The query string, as given.
#[derive(Debug, Default, Deserialize)]
pub struct ShapesQuery {
    sort: Option<String>,
    order: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

impl ShapesQuery {
    /// A query from its parts (the CLI's flags).
    pub fn new(
        sort: Option<String>,
        order: Option<String>,
        limit: Option<usize>,
        offset: Option<usize>,
    ) -> Self {
        Self {
            sort,
            order,
            limit,
            offset,
        }
    }

    /// The query string for the admin API.
    pub fn to_query_string(&self) -> String {
        let mut parts = Vec::new();
        if let Some(sort) = &self.sort {
            parts.push(format!("sort={sort}"));
        }
        if let Some(order) = &self.order {
            parts.push(format!("order={order}"));
        }
        if let Some(limit) = self.limit {
            parts.push(format!("limit={limit}"));
        }
        if let Some(offset) = self.offset {
            parts.push(format!("offset={offset}"));
        }
        parts.join("&")
    }

    /// The page asked for, or why the query is wrong.
    pub fn page(&self) -> Result<PageRequest, String> {
        let order = match self.sort.as_deref() {
            None => ShapeOrder::default(),
            Some(text) => text.parse()?,
        };
        let descending = match self.order.as_deref() {
            None | Some("desc") => true,
            Some("asc") => false,
            Some(other) => return Err(format!("unknown order {other:?}; expected desc or asc")),
        };
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(format!("limit must be between 1 and {MAX_LIMIT}"));
        }
        Ok(PageRequest {
            order,
            descending,
            offset: self.offset.unwrap_or(0),
            limit,
        })
    }
}

/// Everything the document shows besides the page.
struct Totals {
    writes: Vec<WriteRecord>,
    other: OtherRecord,
    other_by_namespace: Vec<NamespaceOtherRecord>,
    rejected: BTreeMap<Rejection, u64>,
    memory: Option<Value>,
}

/// The document for a page of the live store.
pub fn live_document(aggregator: &Aggregator, request: PageRequest) -> Value {
    let limits = aggregator.limits();
    let totals = Totals {
        writes: aggregator.writes(),
        other: aggregator.other(),
        other_by_namespace: aggregator.other_by_namespace(),
        rejected: aggregator.rejected(),
        memory: Some(json!({
            "bytes": aggregator.memory_bytes(),
            "limit_bytes": limits.store_bytes(),
            "max_shapes": limits.max_shapes,
        })),
    };
    document(&aggregator.shapes_page(request), request, totals)
}

/// The document for a page of a snapshot (`indextap shapes FILE`).
pub fn snapshot_document(snapshot: &Snapshot, request: PageRequest) -> Value {
    let totals = Totals {
        writes: snapshot.writes.clone(),
        other: snapshot.other.clone(),
        other_by_namespace: snapshot.other_by_namespace.clone(),
        rejected: snapshot.rejected.clone(),
        memory: None,
    };
    document(&ShapesPage::of_snapshot(snapshot, request), request, totals)
}

fn document(page: &ShapesPage, request: PageRequest, totals: Totals) -> Value {
    let shapes: Vec<Value> = page
        .shapes
        .iter()
        .map(|(id, record)| shape_json(&id.to_string(), record))
        .collect();
    let end = request.offset.saturating_add(request.limit);
    let mut document = json!({
        "shapes": shapes,
        "total": page.total,
        "offset": request.offset,
        "limit": request.limit,
        "sort": match request.order {
            ShapeOrder::TotalTime => "total_time",
            ShapeOrder::Count => "count",
            ShapeOrder::P95 => "p95",
        },
        "order": if request.descending { "desc" } else { "asc" },
        "writes": totals.writes,
        "other": totals.other,
        "other_by_namespace": totals.other_by_namespace,
        "rejected": totals.rejected,
    });
    if end < page.total {
        document["next_offset"] = json!(end);
    }
    if let Some(memory) = totals.memory {
        document["memory"] = memory;
    }
    document
}

fn shape_json(id: &str, record: &ShapeRecord) -> Value {
    let ms = |q: f64| record.latency.quantile_micros(q) as f64 / 1000.0;
    let namespace = &record.shape.namespace;
    json!({
        "shape_id": id,
        "engine": namespace.engine,
        "database": namespace.database,
        "schema": namespace.schema,
        "collection": namespace.collection,
        "command": record.shape.command,
        "shape": record.shape,
        "count": record.count,
        "errors": record.errors,
        "error_codes": record.error_codes,
        "returned": record.returned,
        "continuations": record.continuations,
        "total_ms": record.total_micros as f64 / 1000.0,
        "p50_ms": ms(0.50),
        "p95_ms": ms(0.95),
        "p99_ms": ms(0.99),
        "first_seen_ms": record.first_seen_ms,
        "last_seen_ms": record.last_seen_ms,
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use indextap_analyzer::command::{MongoCommand, Observation, Outcome, Request};
    use indextap_analyzer::shape::{self, sql::SqlCache};

    use super::*;

    fn aggregator_with(shapes: usize) -> Aggregator {
        let aggregator = Aggregator::new(10_000);
        let cache = SqlCache::new(0);
        for i in 0..shapes {
            let mut filter = bson::Document::new();
            filter.insert(format!("f{i}"), 1);
            let body = bson::doc! { "find": "orders", "filter": filter, "$db": "app" };
            let request = Request::Mongo(MongoCommand::new(
                "app",
                bson::RawDocumentBuf::try_from(&body).unwrap(),
                Vec::new(),
            ));
            // Shape i runs i + 1 times at (250 - i) µs: count and p95 sort differently.
            for _ in 0..=i {
                let observation = Observation {
                    request: request.clone(),
                    outcome: Outcome {
                        latency: Duration::from_micros(250 - i as u64),
                        ..Outcome::default()
                    },
                    at: SystemTime::now(),
                };
                aggregator.record(&observation, shape::lower(&request, &cache));
            }
        }
        aggregator
    }

    fn query(text: &str) -> Result<PageRequest, String> {
        let query: ShapesQuery = serde_urlencoded_from(text);
        query.page()
    }

    /// The query string as axum's `Query` extractor reads it.
    fn serde_urlencoded_from(text: &str) -> ShapesQuery {
        let uri: axum::http::Uri = format!("/api/v1/shapes?{text}").parse().unwrap();
        axum::extract::Query::<ShapesQuery>::try_from_uri(&uri)
            .unwrap()
            .0
    }

    #[test]
    fn pages_cover_every_shape_once_in_order() {
        let aggregator = aggregator_with(25);
        let mut seen = Vec::new();
        let mut offset = Some(0);
        while let Some(at) = offset {
            let request = query(&format!("sort=count&limit=10&offset={at}")).unwrap();
            let document = live_document(&aggregator, request);
            assert_eq!(document["total"], 25);
            for shape in document["shapes"].as_array().unwrap() {
                seen.push(shape["count"].as_u64().unwrap());
            }
            offset = document["next_offset"].as_u64().map(|n| n as usize);
        }
        let expected: Vec<u64> = (1..=25).rev().collect();
        assert_eq!(seen, expected, "every shape once, most executed first");
    }

    #[test]
    fn p95_and_ascending_orders() {
        let aggregator = aggregator_with(5);
        let by_p95 = live_document(&aggregator, query("sort=p95&limit=5").unwrap());
        let p95: Vec<f64> = by_p95["shapes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["p95_ms"].as_f64().unwrap())
            .collect();
        assert!(p95.windows(2).all(|w| w[0] >= w[1]), "{p95:?}");
        assert!((p95[0] - 0.25).abs() <= 0.25 * 0.02, "{p95:?}");
        let ascending = live_document(&aggregator, query("sort=count&order=asc&limit=2").unwrap());
        assert_eq!(ascending["shapes"][0]["count"], 1);
        assert_eq!(ascending["next_offset"], 2);
        assert!(ascending["memory"]["bytes"].as_u64().unwrap() > 0);
    }

    #[test]
    fn a_bad_query_is_refused_with_the_reason() {
        assert!(query("sort=latency")
            .unwrap_err()
            .contains("total_time, count, p95"));
        assert!(query("order=up").unwrap_err().contains("desc or asc"));
        assert!(query("limit=0").unwrap_err().contains("between 1 and 1000"));
        assert!(query("limit=1001").is_err());
        let default = query("").unwrap();
        assert_eq!((default.limit, default.offset), (DEFAULT_LIMIT, 0));
    }

    #[test]
    fn a_snapshot_file_pages_the_same_way() {
        let aggregator = aggregator_with(12);
        let request = query("limit=5&offset=5").unwrap();
        let live = live_document(&aggregator, request);
        let mut from_file = snapshot_document(&aggregator.snapshot(), request);
        assert!(from_file.get("memory").is_none());
        from_file["memory"] = live["memory"].clone();
        assert_eq!(from_file, live);
    }
}
