//! Writes, rejections, constants and normalized statements.

use crate::command::SqlProtocol;
use crate::shape::sql::lower_text;
use crate::shape::Rejection;
use crate::shape::{BoundConstant, Constant, Lowering, Namespace, Target, Write, WriteKind};
use crate::testing::{rejected, writes_only};

use super::{canonical_shapes, lower, only, DATABASE};

fn write(table: &str, kind: WriteKind, count: u64) -> Write {
    Write {
        namespace: Namespace::postgres(DATABASE, "public", table),
        kind,
        count,
    }
}

fn constant(field: &str, operator: &str, constant: Constant) -> BoundConstant {
    BoundConstant {
        target: Target::Field(field.into()),
        operator: operator.into(),
        constant,
    }
}

fn tokens(items: &[&str]) -> Constant {
    Constant::Tokens(items.iter().map(|item| item.to_string()).collect())
}

#[test]
fn inserts_count_their_rows() {
    assert_eq!(
        lower("INSERT INTO logs (a, b) VALUES (1, 'x'), (2, 'y'), (3, 'z')"),
        writes_only(vec![write("logs", WriteKind::Insert, 3)])
    );
    assert_eq!(
        lower("INSERT INTO logs DEFAULT VALUES"),
        writes_only(vec![write("logs", WriteKind::Insert, 1)])
    );
    let lowering = lower("INSERT INTO archive (id) SELECT id FROM logs WHERE created_at < $1");
    assert_eq!(
        lowering.writes,
        vec![write("archive", WriteKind::Insert, 1)]
    );
    assert_eq!(lowering.shapes.len(), 1);
    assert_eq!(lowering.shapes[0].shape.namespace.collection, "logs");
}

#[test]
fn updates_and_deletes_write_once_per_statement() {
    let lowering = lower("UPDATE accounts SET x = 1 WHERE id = 2; DELETE FROM tokens WHERE id = 3");
    assert_eq!(
        lowering.writes,
        vec![
            write("accounts", WriteKind::Update, 1),
            write("tokens", WriteKind::Delete, 1)
        ]
    );
    assert_eq!(lowering.shapes.len(), 2);
    assert_eq!(lowering.rejected, None);
}

#[test]
fn copy_from_is_an_insert() {
    assert_eq!(
        lower("COPY logs (a, b) FROM STDIN WITH (FORMAT csv)"),
        writes_only(vec![write("logs", WriteKind::Insert, 1)])
    );
    // COPY TO reads; through the copy sub-protocol, a COPY is a write whatever it says.
    assert_eq!(lower("COPY logs TO STDOUT"), Lowering::default());
    assert_eq!(
        lower_text(DATABASE, "COPY logs TO STDOUT", SqlProtocol::Copy),
        writes_only(vec![write("logs", WriteKind::Insert, 1)])
    );
    // Its shapes carry the query, which EXPLAIN can run; COPY it cannot.
    let lowering = lower("COPY (SELECT id FROM logs WHERE level = 'x y') TO STDOUT");
    assert!(lowering.writes.is_empty());
    assert_eq!(lowering.shapes.len(), 1);
    assert_eq!(
        lowering.shapes[0].normalized_sql.as_deref(),
        Some("SELECT id FROM logs WHERE level = $1")
    );
}

#[test]
fn statements_that_touch_no_table_lower_to_nothing() {
    for text in [
        "",
        ";",
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "SET search_path TO public",
        "SET application_name = 'x'",
        "SHOW work_mem",
        "SELECT 1",
        "SELECT now(), $1",
        "CREATE INDEX CONCURRENTLY i ON t (a)",
        "DISCARD ALL",
        "DEALLOCATE ALL",
        "VALUES (1), (2)",
    ] {
        assert_eq!(lower(text), Lowering::default(), "{text}");
    }
}

#[test]
fn rejections_name_a_reason() {
    assert_eq!(lower("SELEC * FROM t"), rejected(Rejection::SqlParseError));
    assert_eq!(
        lower("SELECT * FROM t WHERE"),
        rejected(Rejection::SqlParseError)
    );
    assert_eq!(
        lower("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE"),
        rejected(Rejection::SqlUnsupported)
    );
    // One bad statement fails the whole text, as it does in PostgreSQL.
    assert_eq!(
        lower("SELECT * FROM t; SELEC 1"),
        rejected(Rejection::SqlParseError)
    );
}

#[test]
fn constants_are_booleans_and_enum_tokens_only() {
    let occurrence = only(
        "SELECT * FROM jobs WHERE status IN ('QUEUED', 'PENDING', 'QUEUED') AND is_active = true \
         AND kind = 'email_digest' AND deleted_at IS NULL AND NOT archived AND owner = 'bob@example.com'",
    );
    assert_eq!(
        occurrence.constants,
        vec![
            constant("archived", "=", Constant::Bool(false)),
            constant("is_active", "=", Constant::Bool(true)),
            constant("status", "IN", tokens(&["PENDING", "QUEUED"])),
        ]
    );
}

#[test]
fn token_lists_with_an_odd_item_or_too_many_items_keep_nothing() {
    let odd = only("SELECT * FROM jobs WHERE status IN ('QUEUED', 'not a token')");
    assert_eq!(odd.constants, vec![]);
    let numbers = only("SELECT * FROM jobs WHERE status IN ('QUEUED', 2)");
    assert_eq!(numbers.constants, vec![]);
    let items: Vec<String> = (0..17).map(|i| format!("'S{i}'")).collect();
    let long = only(&format!(
        "SELECT * FROM jobs WHERE status IN ({})",
        items.join(", ")
    ));
    assert_eq!(long.constants, vec![]);
    let sixteen = only(&format!(
        "SELECT * FROM jobs WHERE status IN ({})",
        items[..16].join(", ")
    ));
    assert_eq!(sixteen.constants.len(), 1);
}

#[test]
fn constants_under_or_and_not_are_not_partial_index_material() {
    let occurrence = only(
        "SELECT * FROM jobs WHERE (status = 'QUEUED' OR is_active = true) AND NOT (kind = 'A')",
    );
    assert_eq!(occurrence.constants, vec![]);
}

#[test]
fn constants_bind_to_the_table_they_test() {
    let lowering = lower(
        "SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id \
         WHERE o.status = 'PAID' AND c.is_vip = true",
    );
    let constants: Vec<_> = lowering
        .shapes
        .iter()
        .map(|o| o.constants.clone())
        .collect();
    assert_eq!(
        constants,
        vec![
            vec![constant("status", "=", tokens(&["PAID"]))],
            vec![constant("is_vip", "=", Constant::Bool(true))],
        ]
    );
}

/// The normalized text of a statement, which every shape of it carries.
fn normalized(text: &str) -> String {
    let lowering = lower(text);
    let texts: Vec<_> = lowering
        .shapes
        .iter()
        .map(|o| o.normalized_sql.clone())
        .collect();
    assert!(!texts.is_empty(), "{text}");
    assert!(texts.iter().all(|each| *each == texts[0]), "{text}");
    texts[0].clone().unwrap_or_default()
}

#[test]
fn normalized_statements_replace_values_in_order() {
    assert_eq!(
        normalized(
            r#"SELECT "upstream_reportrun"."id" FROM "upstream_reportrun" WHERE ("upstream_reportrun"."customer_id" = 42 AND "upstream_reportrun"."status" IN ('QUEUED', 'RUNNING')) ORDER BY "upstream_reportrun"."started_at" DESC LIMIT 21"#
        ),
        r#"SELECT "upstream_reportrun"."id" FROM "upstream_reportrun" WHERE ("upstream_reportrun"."customer_id" = $1::INTEGER AND "upstream_reportrun"."status" IN ('QUEUED', 'RUNNING')) ORDER BY "upstream_reportrun"."started_at" DESC LIMIT $2"#
    );
    assert_eq!(
        normalized(
            r#"SELECT "public"."job_events"."id" FROM "public"."job_events" WHERE ("public"."job_events"."job_id" = $3 AND 1=1) ORDER BY "public"."job_events"."timestamp" ASC LIMIT $1 OFFSET $2"#
        ),
        r#"SELECT "public"."job_events"."id" FROM "public"."job_events" WHERE ("public"."job_events"."job_id" = $1 AND $2::INTEGER = $3::INTEGER) ORDER BY "public"."job_events"."timestamp" ASC LIMIT $4 OFFSET $5"#
    );
}

#[test]
fn normalized_statements_stay_valid_postgresql() {
    let cases = [
        (
            "SELECT * FROM events WHERE payload->>'kind' = 'signup' AND payload @> '{\"a\": 1}' \
             AND created_at > now() - interval '7 days' AND day = DATE '2024-01-01' AND n = -5",
            "SELECT * FROM events WHERE payload ->> 'kind' = $1 AND payload @> $2 \
             AND created_at > now() - $3::INTERVAL AND day = $4::DATE AND n = $5::INTEGER",
        ),
        (
            "SELECT * FROM events WHERE id IN (1, 2, 9999999999) AND name NOT IN ('a b', 'c') \
             AND amount > 1.5 FETCH FIRST 5 ROWS ONLY",
            "SELECT * FROM events WHERE id = ANY($1::BIGINT[]) AND name <> ALL($2) \
             AND amount > $3::NUMERIC FETCH FIRST $4 ROWS ONLY",
        ),
        (
            "SELECT jsonb_build_object('k', n), generate_series(1, 3) FROM events \
             WHERE is_active = true AND deleted_at IS NULL AND flag = false \
             GROUP BY n ORDER BY 2 DESC",
            "SELECT jsonb_build_object($1::TEXT, n), generate_series($2::INTEGER, $3::INTEGER) \
             FROM events WHERE is_active = true AND deleted_at IS NULL AND flag = false \
             GROUP BY n ORDER BY 2 DESC",
        ),
        (
            "SELECT /*+ SeqScan(events) */ id FROM events WHERE date_trunc('day', ts) = '2024-01-01'",
            "SELECT id FROM events WHERE date_trunc('day', ts) = $1",
        ),
        (
            "SELECT id, n FROM a UNION SELECT id, n FROM b WHERE n > 3 ORDER BY 2, 1 LIMIT 5000000000",
            "SELECT id, n FROM a UNION SELECT id, n FROM b WHERE n > $1::INTEGER ORDER BY 2, 1 LIMIT $2",
        ),
        (
            "SELECT id FROM events ORDER BY 99999, 0",
            "SELECT id FROM events ORDER BY $1::INTEGER, $2::INTEGER",
        ),
        (
            "UPDATE events SET n = n + 1, name = 'x' WHERE id = $9",
            "UPDATE events SET n = n + $1::INTEGER, name = $2 WHERE id = $3",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(normalized(text), expected, "{text}");
    }
}

#[test]
fn every_occurrence_of_a_statement_carries_its_text() {
    let lowering =
        lower("SELECT 1; SELECT * FROM a JOIN b ON a.id = b.a_id WHERE a.x = 'no such token'");
    let texts: Vec<_> = lowering
        .shapes
        .iter()
        .map(|o| o.normalized_sql.as_deref())
        .collect();
    let expected = "SELECT * FROM a JOIN b ON a.id = b.a_id WHERE a.x = $1";
    assert_eq!(texts, vec![Some(expected), Some(expected)]);
    assert_eq!(
        canonical_shapes("SELECT 1"),
        Vec::<serde_json::Value>::new()
    );
}
