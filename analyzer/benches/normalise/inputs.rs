//! The bench's inputs: a MongoDB command mix as the proxy's decoder hands it over, ~50
//! SQL statement templates of an ordinary application, and simple-protocol statements
//! whose values change on every call.

use std::sync::Arc;

use bson::raw::cstr;
use bson::{rawdoc, RawDocumentBuf};
use indextap_analyzer::command::{DocumentSequence, MongoCommand, SqlCommand, SqlProtocol};

/// The fields every driver adds to a command.
fn session(mut body: RawDocumentBuf) -> RawDocumentBuf {
    body.append(
        cstr!("lsid"),
        rawdoc! { "id": bson::Binary {
            subtype: bson::spec::BinarySubtype::Uuid,
            bytes: vec![7; 16],
        } },
    );
    body.append(
        cstr!("$clusterTime"),
        rawdoc! {
            "clusterTime": bson::Timestamp { time: 1_700_000_000, increment: 1 },
            "signature": { "hash": bson::Binary {
                subtype: bson::spec::BinarySubtype::Generic,
                bytes: vec![0; 20],
            }, "keyId": 0_i64 },
        },
    );
    body.append(cstr!("$db"), "app");
    body
}

fn mongo_command(body: RawDocumentBuf, sequences: Vec<DocumentSequence>) -> MongoCommand {
    MongoCommand::new("app", session(body), sequences)
}

/// The MongoDB mix, as the decoder hands it over (inserted documents counted, not kept).
pub(crate) fn mongo_mix() -> Vec<MongoCommand> {
    let since = bson::DateTime::from_millis(1_700_000_000_000);
    let find = rawdoc! {
        "find": "orders",
        "filter": {
            "status": "A",
            "customerId": 48_213_i64,
            "createdAt": { "$gte": since },
        },
        "sort": { "createdAt": -1 },
        "projection": { "_id": 1, "status": 1, "total": 1, "createdAt": 1 },
        "limit": 20,
    };
    let aggregate = rawdoc! {
        "aggregate": "orders",
        "pipeline": [
            { "$match": { "status": "A", "total": { "$gt": 100.5 } } },
            { "$sort": { "total": -1 } },
            { "$limit": 50 },
            { "$lookup": {
                "from": "customers",
                "localField": "customerId",
                "foreignField": "_id",
                "as": "customer",
            } },
        ],
        "cursor": {},
    };
    let update = rawdoc! { "update": "orders", "ordered": true };
    let updates = vec![rawdoc! {
        "q": { "_id": bson::oid::ObjectId::from_bytes([3; 12]), "status": "A" },
        "u": { "$set": { "status": "B", "updatedAt": since } },
        "upsert": false,
        "multi": false,
    }];
    let insert = rawdoc! { "insert": "events", "ordered": true };
    let get_more = rawdoc! {
        "getMore": 7_340_032_i64,
        "collection": "orders",
        "batchSize": 100,
    };
    let count = rawdoc! {
        "count": "orders",
        "query": { "status": "A", "customerId": 48_213_i64 },
    };
    vec![
        mongo_command(find, Vec::new()),
        mongo_command(aggregate, Vec::new()),
        mongo_command(
            update,
            vec![DocumentSequence {
                identifier: "updates".to_owned(),
                count: updates.len(),
                documents: updates,
            }],
        ),
        mongo_command(
            insert,
            vec![DocumentSequence {
                identifier: "documents".to_owned(),
                count: 10,
                documents: Vec::new(),
            }],
        ),
        mongo_command(get_more, Vec::new()),
        mongo_command(count, Vec::new()),
    ]
}

/// A statement from a template, its `{n}` replaced by a number literal.
pub(crate) fn sql_command(template: &str, n: u64) -> SqlCommand {
    SqlCommand {
        database: "app".into(),
        text: Arc::from(template.replace("{n}", &n.to_string())),
        parameters: 0,
        protocol: SqlProtocol::Simple,
        statement_index: None,
    }
}

/// ~50 distinct statements of an ordinary application, each with a `{n}` literal that the
/// cold case varies.
pub(crate) fn sql_statements() -> Vec<String> {
    let tables = [
        ("orders", "customer_id", "status", "created_at"),
        ("customers", "id", "email", "signed_up_at"),
        ("order_items", "order_id", "sku", "added_at"),
        ("invoices", "account_id", "state", "issued_at"),
        ("sessions", "user_id", "kind", "last_seen_at"),
    ];
    let mut statements = Vec::new();
    for (table, key, label, at) in tables {
        statements.extend([
            format!("SELECT * FROM {table} WHERE {key} = {{n}}"),
            format!("SELECT {key}, {label} FROM {table} WHERE {label} = 'A' AND {key} = {{n}} ORDER BY {at} DESC LIMIT 20"),
            format!("SELECT count(*) FROM {table} WHERE {at} >= now() - interval '1 day' AND {key} > {{n}}"),
            format!("SELECT t.* FROM {table} t JOIN accounts a ON a.id = t.{key} WHERE a.region = 'eu' AND t.{key} IN ({{n}}, 2, 3)"),
            format!("UPDATE {table} SET {label} = 'B' WHERE {key} = {{n}}"),
            format!("DELETE FROM {table} WHERE {at} < '2024-01-01' AND {key} = {{n}}"),
            format!("INSERT INTO {table} ({key}, {label}, {at}) VALUES ({{n}}, 'A', now())"),
            format!("SELECT {label}, count(*) FROM {table} WHERE {key} BETWEEN {{n}} AND 100 GROUP BY {label}"),
            format!("SELECT * FROM {table} WHERE lower({label}) LIKE 'abc%' AND {key} <> {{n}} ORDER BY {key} LIMIT 10 OFFSET 20"),
            format!("SELECT {key} FROM {table} WHERE {label} IS NOT NULL AND {at} > $1 AND {key} < {{n}}"),
        ]);
    }
    statements
}

/// Statements as a client that interpolates its values sends them (pgbench `-M simple`,
/// psycopg2, Rails), each `{n}` in a place whose value the cache's masked key ignores.
/// pgbench's read dominates, as in `pgbench -S`.
fn literal_templates() -> [&'static str; 8] {
    [
        "SELECT abalance FROM pgbench_accounts WHERE aid = {n};",
        "SELECT abalance FROM pgbench_accounts WHERE aid = {n};",
        "SELECT abalance FROM pgbench_accounts WHERE aid = {n};",
        "SELECT abalance FROM pgbench_accounts WHERE aid = {n};",
        r#"SELECT "orders"."id", "orders"."status" FROM "orders" WHERE ("orders"."customer_id" = {n} AND "orders"."status" IN ('PAID', 'SHIPPED')) ORDER BY "orders"."created_at" DESC LIMIT 21"#,
        r#"SELECT "users".* FROM "users" WHERE "users"."email" = 'user{n}@example.com' LIMIT 1"#,
        "SELECT * FROM sessions WHERE user_id = {n} AND last_seen_at > '2024-01-01 00:00:{n}' ORDER BY last_seen_at DESC LIMIT 10 OFFSET {n}",
        "UPDATE invoices SET state = 'PAID', paid_at = now() WHERE account_id = {n} AND total BETWEEN {n} AND 1000",
    ]
}

/// `count` texts, each with its own values, cycling through the templates.
pub(crate) fn literal_commands(count: usize) -> Vec<SqlCommand> {
    let templates = literal_templates();
    (0..count)
        .map(|n| sql_command(templates[n % templates.len()], 1 + n as u64))
        .collect()
}

/// `count` texts of pgbench's select-only statement, each with its own `aid`.
pub(crate) fn pgbench_commands(count: usize) -> Vec<SqlCommand> {
    (0..count)
        .map(|n| sql_command(literal_templates()[0], 1 + n as u64))
        .collect()
}
