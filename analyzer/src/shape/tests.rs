//! The shape id is a contract: snapshots, state files and fleets key shapes by it, so a
//! change of the model's types must leave the canonical JSON, byte for byte, and its hash as
//! they were. These ids were taken before the model's strings became enums.

use bson::rawdoc;

use super::sql::SqlCache;
use super::{lower, Lowering};
use crate::command::{MongoCommand, Request, SqlCommand, SqlProtocol};

fn mongo(body: bson::RawDocumentBuf) -> Request {
    Request::Mongo(MongoCommand::new("app", body, Vec::new()))
}

fn sql(text: &str) -> Request {
    Request::Sql(SqlCommand {
        database: "app".into(),
        text: text.into(),
        parameters: 0,
        protocol: SqlProtocol::Simple,
        statement_index: None,
    })
}

/// One command per operator, command kind and option both lowerers write.
fn corpus() -> Vec<Request> {
    vec![
        mongo(rawdoc! { "find": "orders", "filter": { "status": "A" } }),
        mongo(rawdoc! {
            "find": "orders",
            "filter": { "status": { "$in": ["A", "B"] }, "qty": { "$gte": 1, "$lt": 9 } },
            "sort": { "delivery_date": -1 }, "limit": 5, "skip": 2,
            "projection": { "status": 1, "qty": 1 },
        }),
        mongo(rawdoc! {
            "find": "orders",
            "filter": { "$or": [ { "a": { "$ne": 1 } }, { "b": { "$nin": [1] } } ],
                        "c": { "$exists": true }, "d": { "$type": "date" }, "e": null },
        }),
        mongo(rawdoc! {
            "find": "users",
            "filter": { "name": { "$regex": "^ab" }, "bio": { "$regex": "x", "$options": "i" },
                        "tags": { "$all": ["a"] }, "n": { "$gt": 1, "$lte": 3 },
                        "items": { "$elemMatch": { "sku": "x", "q": { "$gt": 1 } } },
                        "f": { "$not": { "$gt": 5 } }, "g": { "$size": 2 } },
        }),
        mongo(rawdoc! {
            "find": "docs",
            "filter": { "$text": { "$search": "x" }, "$nor": [ { "a": 1 } ],
                        "$expr": { "$eq": ["$a", "$b"] }, "$where": "1" },
            "sort": { "score": { "$meta": "textScore" } },
        }),
        mongo(rawdoc! {
            "find": "geo",
            "filter": { "loc": { "$geoWithin": { "$center": [[0, 0], 1] } },
                        "m": { "$mod": [2, 0] }, "b": { "$bitsAllSet": 1 },
                        "x": { "$_internalExprEq": 1 } },
        }),
        mongo(rawdoc! { "count": "orders", "query": { "status": "A" } }),
        mongo(rawdoc! { "distinct": "orders", "key": "status", "query": { "qty": 1 } }),
        mongo(rawdoc! {
            "aggregate": "orders",
            "pipeline": [
                { "$match": { "status": "A" } },
                { "$sort": { "qty": -1 } },
                { "$limit": 5 },
                { "$lookup": { "from": "users", "localField": "u", "foreignField": "_id", "as": "x" } },
            ],
            "cursor": {},
        }),
        mongo(rawdoc! {
            "update": "orders",
            "updates": [ { "q": { "status": "A" }, "u": { "$set": { "x": 1 } }, "multi": true, "upsert": true } ],
        }),
        mongo(rawdoc! { "delete": "orders", "deletes": [ { "q": { "_id": 1 }, "limit": 1 } ] }),
        mongo(rawdoc! {
            "findAndModify": "orders", "query": { "status": "A" }, "sort": { "at": 1 },
            "update": { "$inc": { "n": 1 } }, "new": true,
        }),
        mongo(rawdoc! { "findAndModify": "orders", "query": { "_id": 1 }, "remove": true }),
        sql("SELECT id, total FROM orders WHERE customer_id = $1 AND status IN ('PAID', 'SENT') ORDER BY created_at DESC NULLS LAST LIMIT 10 OFFSET 5"),
        sql("SELECT * FROM orders o JOIN customers c ON o.customer_id = c.id LEFT JOIN items i USING (order_id) WHERE c.region = $1 AND o.deleted_at IS NULL"),
        sql("SELECT a.id FROM accounts a, memberships m WHERE m.account_id = a.id AND m.org_id = $1"),
        sql("SELECT * FROM t WHERE a <> 1 AND b != 2 AND c < 3 AND d > 4 AND e <= 5 AND f >= 6 AND g BETWEEN 1 AND 2 AND h NOT BETWEEN 1 AND 2"),
        sql("SELECT * FROM t WHERE a LIKE 'ab%' AND b LIKE '%x' AND c ILIKE $1 AND d NOT LIKE 'x' AND e NOT ILIKE 'y' AND f ~ 'z' AND g ~* 'z' AND h !~ 'q' AND i !~* 'q' AND j ^@ 'p' AND k SIMILAR TO 'x' AND l NOT SIMILAR TO 'y'"),
        sql("SELECT * FROM t WHERE a IS NOT NULL AND b IS TRUE AND c IS NOT TRUE AND d IS FALSE AND e IS NOT FALSE AND f IS UNKNOWN AND g IS NOT UNKNOWN AND h IS DISTINCT FROM 1 AND i IS NOT DISTINCT FROM 2"),
        sql("SELECT * FROM t WHERE a = ANY($1) AND b <> ALL($2) AND c < ANY($3) AND d >= ALL($4) AND e NOT IN (1, 2) AND f IN (SELECT x FROM u) AND g = ANY(ARRAY[1,2])"),
        sql("SELECT * FROM docs WHERE payload @> $1 AND payload ? 'k' AND payload ?| $2 AND payload ?& $3 AND $4 <@ meta AND tsv @@ to_tsquery($5) AND payload->>'kind' = $6"),
        sql("SELECT * FROM users WHERE lower(email) = $1 AND date(created_at) >= $2 AND (a + b) > 3 AND is_active AND NOT is_deleted"),
        sql("SELECT * FROM t WHERE a LIKE ANY($1) AND coalesce(b, c) AND x.y = 1"),
        sql("SELECT status, count(*) FROM runs WHERE started_at > now() GROUP BY status ORDER BY 2 DESC"),
        sql("SELECT DISTINCT region FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE total > $1)"),
        sql("WITH recent AS (SELECT * FROM orders WHERE created_at > $1) SELECT * FROM recent r JOIN customers c ON c.id = r.customer_id"),
        sql("UPDATE accounts SET last_seen = now() WHERE id = $1"),
        sql("UPDATE t SET x = 1 FROM u WHERE t.id = u.t_id AND u.flag = true"),
        sql("DELETE FROM sessions WHERE expires_at < $1"),
        sql("INSERT INTO t (a) VALUES (1)"),
        sql("SELEC * FROM t"),
    ]
}

fn lowerings() -> Vec<Lowering> {
    let cache = SqlCache::new(64);
    corpus()
        .iter()
        .map(|request| lower(request, &cache))
        .collect()
}

/// The ids of the corpus's shapes, request by request, and the rejection of the last one.
const PINNED_IDS: &[&[&str]] = &[
    &["32502a00d26f7851"],
    &["9727f6ead0a54c85"],
    &["e7060e21964b23ad"],
    &["445c2431e766822b"],
    &["e9715aebdf9ea530"],
    &["0e5ae23ac2c3e8e0"],
    &["9f70dd06ddadd6a4"],
    &["4e9a94ec2f44d7f5"],
    &["73b349378ad4e4ba", "17cb91ce5e10bbc4"],
    &["b3c39e42ca625464"],
    &["a35895c620c74870"],
    &["273e9ae80e41b63a"],
    &["c114811039472aea"],
    &["3074f06f1afcf55c"],
    &["dc9de042608da6c0", "4a7159315d1f7f27", "3db41aa4ebdbfd6d"],
    &["8f27151f4b0a6dcf", "60909c084f3f01e5"],
    &["fa1b3b88d3b98bb4"],
    &["454de78816f24f6e"],
    &["ac18850f260fbfbc"],
    &["15d13f12d5fb1274", "f3225f0a99013649"],
    &["04589d3ff9d58864"],
    &["6b1fc88f535a3f9f"],
    &["25889db2fc4237c2"],
    &["4a3005e1673b8f94"],
    &["5063d68fd51a9af0", "941ee00f09221b54"],
    &["87dce078c840869e", "ca15235723b87eca"],
    &["6be14670a29d19bd"],
    &["4e60fa1ed602ef3a", "2b8d26166f017b63"],
    &["886d9fa16204e80b"],
    &[],
    &[],
];

/// The constants the corpus carries, as the snapshot writes them (they are stored beside the
/// shape, keyed by its leaves' operators).
const PINNED_CONSTANTS: &[&str] = &[
    r#"[{"target":{"field":"c"},"operator":"$exists","constant":{"exists":true}},{"target":{"field":"d"},"operator":"$type","constant":{"type":"date"}}]"#,
    r#"[{"target":{"field":"status"},"operator":"IN","constant":{"tokens":["PAID","SENT"]}}]"#,
    r#"[{"target":{"field":"b"},"operator":"=","constant":{"bool":true}},{"target":{"field":"d"},"operator":"=","constant":{"bool":false}}]"#,
    r#"[{"target":{"field":"is_active"},"operator":"=","constant":{"bool":true}},{"target":{"field":"is_deleted"},"operator":"=","constant":{"bool":false}}]"#,
    r#"[{"target":{"field":"flag"},"operator":"=","constant":{"bool":true}}]"#,
];

#[test]
fn shape_ids_do_not_change() {
    let lowerings = lowerings();
    let ids: Vec<Vec<String>> = lowerings
        .iter()
        .map(|lowering| {
            lowering
                .shapes
                .iter()
                .map(|occurrence| occurrence.shape.id().to_string())
                .collect()
        })
        .collect();
    assert_eq!(ids, PINNED_IDS);
    for lowering in &lowerings {
        for occurrence in &lowering.shapes {
            let reparsed: super::Shape =
                serde_json::from_str(&occurrence.shape.canonical()).expect("canonical parses");
            assert_eq!(
                reparsed.id(),
                occurrence.shape.id(),
                "a restored shape keeps its id"
            );
        }
    }
    let constants: Vec<String> = lowerings
        .iter()
        .flat_map(|lowering| &lowering.shapes)
        .filter(|occurrence| !occurrence.constants.is_empty())
        .map(|occurrence| serde_json::to_string(&occurrence.constants).expect("serialises"))
        .collect();
    assert_eq!(constants, PINNED_CONSTANTS);
    let rejected = lowerings
        .last()
        .and_then(|lowering| lowering.rejected.as_ref());
    assert_eq!(
        serde_json::to_string(&rejected).expect("serialises"),
        r#""sql_parse_error""#
    );
}
