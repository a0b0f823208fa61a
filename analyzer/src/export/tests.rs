//! Every format against the exact expected output, for one small known MongoDB advice and
//! one PostgreSQL advice.

use super::*;
use crate::advise::{
    Condition, DropCandidate, Evidence, EvidenceMethod, IndexKey, IndexMethod, IndexSpec,
    PartialTerm, Served, WriteLoad,
};
use crate::shape::{Namespace, ShapeId, Target};

fn field(name: &str) -> Target {
    Target::Field(name.to_owned())
}

fn index(namespace: Namespace, keys: Vec<IndexKey>, method: IndexMethod) -> IndexSpec {
    IndexSpec::new(namespace, method, keys)
}

fn served(id: u64, shape: &str, count: u64, total_ms: f64, p95_ms: f64) -> Served {
    Served {
        shape_id: ShapeId(id),
        shape: shape.to_owned(),
        count,
        total_ms,
        p95_ms,
    }
}

fn recommendation(
    index: IndexSpec,
    name: &str,
    serves: Vec<Served>,
    load: WriteLoad,
) -> Recommendation {
    let mut index = index;
    index.name = Some(name.to_owned());
    // Unverified: ranked by the whole time its shapes took, less the default write cost.
    let writes = index.namespace.engine.rules().index_writes(&load);
    let write_cost = crate::advise::WriteCost {
        writes,
        total_ms: crate::advise::write_cost::DEFAULT_INDEX_WRITE_COST_MS * writes as f64,
        ..crate::advise::WriteCost::default()
    };
    let net_saving_ms = serves.iter().map(|s| s.total_ms).sum::<f64>() - write_cost.total_ms;
    Recommendation {
        index,
        name: name.to_owned(),
        serves,
        evidence: None,
        write_load: load,
        write_cost,
        net_saving_ms,
    }
}

/// A recommendation of an index with one key, serving one shape.
fn one_key(
    namespace: Namespace,
    key: IndexKey,
    method: IndexMethod,
    name: &str,
    serves: Served,
    load: WriteLoad,
) -> Recommendation {
    recommendation(
        index(namespace, vec![key], method),
        name,
        vec![serves],
        load,
    )
}

/// The existing B-tree index `name` on `column` of `namespace`, dropped for `reason`.
fn existing_dropped(namespace: Namespace, column: &str, name: &str, reason: &str) -> DropCandidate {
    let mut index = index(
        namespace,
        vec![IndexKey::asc(field(column))],
        IndexMethod::Btree,
    );
    index.name = Some(name.to_owned());
    DropCandidate {
        index,
        name: name.to_owned(),
        reason: reason.to_owned(),
        evidence: None,
    }
}

fn load(inserts: u64, updates: u64, deletes: u64, reads: u64) -> WriteLoad {
    WriteLoad {
        inserts,
        updates,
        deletes,
        reads,
    }
}

pub(crate) fn mongo_advice() -> Advice {
    let orders = Namespace::mongo("app", "orders");
    let status = recommendation(
        index(
            orders.clone(),
            vec![
                IndexKey::asc(field("status")),
                IndexKey::desc(field("delivery_date")),
            ],
            IndexMethod::Btree,
        ),
        "status_1_delivery_date_-1",
        vec![
            served(
                0xa1,
                "find orders where status $eq string sort delivery_date desc limit",
                1234,
                56.7,
                0.12,
            ),
            served(0xa2, "count orders where status $eq string", 10, 2.5, 0.3),
        ],
        load(10, 2, 0, 1244),
    );
    let mut items_index = index(
        Namespace::mongo("app", "order-items"),
        vec![IndexKey::asc(field("items.sku"))],
        IndexMethod::Btree,
    );
    items_index.partial = vec![PartialTerm {
        target: field("email"),
        condition: Condition::Exists(true),
    }];
    let items = recommendation(
        items_index,
        "items.sku_1_partial",
        vec![served(
            0xb1,
            "find order-items where items.sku $eq string and email $exists",
            40,
            12.0,
            0.5,
        )],
        load(0, 0, 0, 40),
    );
    let text = one_key(
        Namespace::mongo("app", "articles"),
        IndexKey::new(field("$**"), 0),
        IndexMethod::Text,
        "$**_text",
        served(0xc1, "find articles where $text $text string", 3, 1.5, 0.6),
        load(5, 0, 0, 3),
    );
    Advice {
        recommendations: vec![status, items, text],
        drops: vec![existing_dropped(
            orders,
            "status",
            "status_1",
            "prefix of status_1_delivery_date_-1",
        )],
        notes: vec!["existing indexes of app.users could not be read".to_owned()],
    }
}

pub(crate) fn postgres_advice() -> Advice {
    let runs = Namespace::postgres("app", "public", "runs");
    let users = Namespace::postgres("app", "public", "users");
    let mut runs_index = index(
        runs.clone(),
        vec![
            IndexKey::asc(field("customer_id")),
            IndexKey {
                target: field("started_at"),
                direction: -1,
                nulls_first: Some(false),
            },
        ],
        IndexMethod::Btree,
    );
    runs_index.include = vec!["status".to_owned()];
    runs_index.partial = vec![
        PartialTerm {
            target: field("deleted_at"),
            condition: Condition::IsNull,
        },
        PartialTerm {
            target: field("kind"),
            condition: Condition::InTokens(vec!["QUEUED".to_owned(), "PENDING".to_owned()]),
        },
    ];
    let mut by_customer = recommendation(
        runs_index,
        "runs_customer_id_started_at_partial_idx",
        vec![served(
            0xd1,
            "select runs where customer_id = param and deleted_at IS NULL sort started_at desc nulls last limit",
            900,
            450.0,
            1.25,
        )],
        load(300, 40, 2, 900),
    );
    by_customer.evidence = Some(Evidence {
        method: EvidenceMethod::Hypopg,
        cost_before: 1200.0,
        cost_after: 12.5,
        sample_size: None,
    });
    let lower = one_key(
        users.clone(),
        IndexKey::asc(Target::Expression {
            text: "lower(\"email\")".to_owned(),
            column: "email".to_owned(),
        }),
        IndexMethod::Btree,
        "users_lower_email_idx",
        served(
            0xe1,
            "select users where lower(\"email\") = param",
            500,
            30.0,
            0.08,
        ),
        load(20, 5, 0, 520),
    );
    let trigram = one_key(
        users.clone(),
        IndexKey::asc(field("name")),
        IndexMethod::GinTrgm,
        "users_name_trgm_idx",
        served(0xe2, "select users where name ILIKE param", 20, 25.0, 2.0),
        load(20, 5, 0, 520),
    );
    let mut active = one_key(
        users,
        IndexKey::asc(field("team_id")),
        IndexMethod::Btree,
        "users_team_id_partial_idx",
        served(
            0xe3,
            "select users where team_id = param and is_active = bool",
            5,
            0.5,
            0.1,
        ),
        load(20, 5, 0, 520),
    );
    active.index.partial = vec![PartialTerm {
        target: field("is_active"),
        condition: Condition::Bool(true),
    }];
    let gin = one_key(
        Namespace::postgres("app", "audit", "events"),
        IndexKey::asc(field("payload")),
        IndexMethod::Gin,
        "events_payload_gin_idx",
        served(0xf1, "select events where payload @> param", 7, 0.7, 0.1),
        load(10_000, 0, 0, 7),
    );
    Advice {
        recommendations: vec![by_customer, lower, trigram, active, gin],
        drops: vec![existing_dropped(
            runs,
            "customer_id",
            "runs_customer_idx",
            "prefix of runs_customer_started_idx",
        )],
        notes: vec!["HypoPG is not available on reports: costs are not verified".to_owned()],
    }
}

fn extension(format: Format) -> &'static str {
    match format {
        Format::Json => "json",
        Format::Mongosh => "js",
        Format::Pymongo => "py",
        Format::Sql => "sql",
        Format::Prisma => "prisma",
        Format::Django => "py",
        Format::Markdown => "md",
    }
}

/// Compare every format of both advices with the files under `testdata/`. With
/// `INDEXTAP_UPDATE_GOLDEN=1` the files are written instead (review the diff before committing).
#[test]
fn every_format_matches_its_expected_output() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/export/testdata");
    let update = std::env::var_os("INDEXTAP_UPDATE_GOLDEN").is_some();
    let mut mismatches = Vec::new();
    for (engine, advice) in [("mongo", mongo_advice()), ("postgres", postgres_advice())] {
        for &format in Format::ALL {
            let path = dir.join(format!("{engine}.{format}.{}", extension(format)));
            let rendered = render(&advice, format);
            if update {
                std::fs::write(&path, &rendered).expect("testdata is writable");
                continue;
            }
            let expected = std::fs::read_to_string(&path).unwrap_or_default();
            if rendered != expected {
                mismatches.push(format!("{}:\n{rendered}", path.display()));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n\n"));
}

#[test]
fn json_has_the_documented_form() {
    let json: serde_json::Value =
        serde_json::from_str(&render(&mongo_advice(), Format::Json)).expect("valid JSON");
    let first = &json["recommendations"][0];
    assert_eq!(first["engine"], "mongodb");
    assert_eq!(first["schema"], serde_json::Value::Null);
    assert_eq!(
        first["keys"][1],
        serde_json::json!({"field": "delivery_date", "direction": -1})
    );
    assert_eq!(first["method"], "btree");
    assert_eq!(first["partial"], serde_json::Value::Null);
    assert_eq!(first["serves"][0]["shape_id"], "00000000000000a1");
    assert_eq!(first["serves"][0]["total_ms"], 56.7);
    assert_eq!(first["evidence"], serde_json::Value::Null);
    assert_eq!(
        json["recommendations"][1]["partial"],
        serde_json::json!({"email": {"$exists": true}})
    );
    assert_eq!(json["recommendations"][2]["keys"][0]["direction"], "text");
    assert_eq!(json["drops"][0]["name"], "status_1");

    let json: serde_json::Value =
        serde_json::from_str(&render(&postgres_advice(), Format::Json)).expect("valid JSON");
    let first = &json["recommendations"][0];
    assert_eq!(
        first["partial"],
        "\"deleted_at\" IS NULL AND \"kind\" IN ('QUEUED', 'PENDING')"
    );
    assert_eq!(first["evidence"]["cost_before"], 1200.0);
    assert_eq!(first["include"], serde_json::json!(["status"]));
    assert_eq!(json["recommendations"][2]["method"], "gin_trgm");
}

#[test]
fn statements_per_engine() {
    let mongo = mongo_advice();
    assert_eq!(
        statement(&mongo.recommendations[0]),
        "db.getSiblingDB(\"app\").orders.createIndex({status: 1, delivery_date: -1}, {name: \"status_1_delivery_date_-1\"})"
    );
    let postgres = postgres_advice();
    assert_eq!(
        statement(&postgres.recommendations[1]),
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS users_lower_email_idx ON \"public\".\"users\" USING btree ((lower(\"email\")));"
    );
    assert_eq!(
        rollback_statement(&postgres.recommendations[1]),
        "DROP INDEX CONCURRENTLY IF EXISTS \"public\".\"users_lower_email_idx\";"
    );
}

#[test]
fn each_script_points_to_the_other_engine() {
    let mut both = mongo_advice();
    both.recommendations
        .extend(postgres_advice().recommendations);
    assert!(render(&both, Format::Mongosh)
        .contains("// 5 PostgreSQL recommendations are in the sql export."));
    assert!(render(&both, Format::Sql)
        .contains("-- 3 MongoDB recommendations are in the mongosh or pymongo export."));
    assert!(!render(&mongo_advice(), Format::Mongosh).contains("PostgreSQL recommendation"));
}

#[test]
fn formats_parse_from_their_names() {
    for &format in Format::ALL {
        assert_eq!(format.as_str().parse::<Format>(), Ok(format));
    }
    assert_eq!("JSON".parse::<Format>(), Err(UnknownFormat));
    assert_eq!("yaml".parse::<Format>(), Err(UnknownFormat));
}

#[test]
fn empty_advice_renders_in_every_format() {
    for &format in Format::ALL {
        assert!(!render(&Advice::default(), format).is_empty());
    }
    assert_eq!(
        render(&Advice::default(), Format::Json),
        "{\"recommendations\":[],\"drops\":[],\"notes\":[]}\n"
    );
}
