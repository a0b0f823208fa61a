//! What must, and must not, change a shape's id.

use crate::shape::ShapeId;

use super::{lower, only};

fn ids(text: &str) -> Vec<ShapeId> {
    lower(text)
        .shapes
        .iter()
        .map(|occurrence| occurrence.shape.id())
        .collect()
}

/// Every text lowers to the same non-empty list of ids.
fn same(texts: &[&str]) {
    let first = ids(texts[0]);
    assert!(!first.is_empty(), "{}", texts[0]);
    for text in &texts[1..] {
        assert_eq!(ids(text), first, "{text} vs {}", texts[0]);
    }
}

/// No two texts share an id.
fn different(texts: &[&str]) {
    let all: Vec<Vec<ShapeId>> = texts.iter().map(|text| ids(text)).collect();
    for (i, left) in all.iter().enumerate() {
        for (j, right) in all.iter().enumerate().skip(i + 1) {
            assert_ne!(left, right, "{} vs {}", texts[i], texts[j]);
        }
    }
}

#[test]
fn literal_values_do_not_change_the_id() {
    same(&[
        "SELECT * FROM t WHERE a = 5 AND b > 'x' AND c = true AND d = DATE '2024-01-01'",
        "SELECT * FROM t WHERE a = 6 AND b > 'y' AND c = false AND d = DATE '1999-12-31'",
        "SELECT * FROM t WHERE a = $1 AND b > $2 AND c = $3 AND d = $4",
        "SELECT * FROM t WHERE a = -5 AND b > E'z' AND c = $1 AND d = '2024-01-01'::date",
    ]);
    same(&[
        "SELECT * FROM jobs WHERE status = 'QUEUED' LIMIT 10",
        "SELECT * FROM jobs WHERE status = 'RUNNING' LIMIT 20",
        "SELECT * FROM jobs WHERE status = 'not a token' LIMIT $1",
    ]);
}

#[test]
fn parameter_numbering_does_not_change_the_id() {
    same(&[
        "SELECT * FROM t WHERE a = $1 AND b = $2 ORDER BY c LIMIT $3",
        "SELECT * FROM t WHERE a = $3 AND b = $1 ORDER BY c LIMIT $2",
        "SELECT * FROM t WHERE a = $17 AND b = $4 ORDER BY c LIMIT $9",
    ]);
}

#[test]
fn in_list_length_does_not_change_the_id() {
    let thousand: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
    let long = format!("SELECT * FROM t WHERE a IN ({})", thousand.join(", "));
    same(&[
        "SELECT * FROM t WHERE a IN (1)",
        "SELECT * FROM t WHERE a IN (1, 2, 3)",
        "SELECT * FROM t WHERE a IN ($1, $2)",
        "SELECT * FROM t WHERE a IN ('A', 'B')",
        &long,
    ]);
    // Nor the length of an OR chain over one column.
    same(&[
        "SELECT * FROM t WHERE a = 1 OR a = 2",
        "SELECT * FROM t WHERE a = 1 OR a = 2 OR a = 3 OR a = 4",
    ]);
}

#[test]
fn the_order_conditions_are_written_in_does_not_change_the_id() {
    same(&[
        "SELECT * FROM t WHERE a = 1 AND b = 2 AND c IS NULL",
        "SELECT * FROM t WHERE c IS NULL AND (b = 2 AND a = 1)",
        "SELECT * FROM t WHERE (((b = 2))) AND c IS NULL AND a = 1 AND 1 = 1",
    ]);
    same(&[
        "SELECT * FROM t WHERE x = 1 OR y = 2",
        "SELECT * FROM t WHERE y = 2 OR x = 1",
    ]);
}

#[test]
fn spelling_of_names_does_not_change_the_id() {
    same(&[
        r#"SELECT "t"."a" FROM "public"."t" WHERE "t"."b" = 1"#,
        "select T.A from T where B = 1",
        "SELECT x.a FROM public.t AS x WHERE x.b = 1",
    ]);
}

#[test]
fn what_the_query_does_changes_the_id() {
    different(&[
        "SELECT * FROM t WHERE a = 1",
        "SELECT * FROM t WHERE a > 1",
        "SELECT * FROM t WHERE a IN (1, 2)",
        "SELECT * FROM t WHERE b = 1",
        "SELECT * FROM u WHERE a = 1",
        "SELECT * FROM t WHERE a = 1 ORDER BY c",
        "SELECT * FROM t WHERE a = 1 ORDER BY c DESC",
        "SELECT * FROM t WHERE a = 1 LIMIT 1",
        "SELECT * FROM t WHERE a = 1 OFFSET 1",
        "SELECT a FROM t WHERE a = 1",
        "SELECT * FROM t WHERE lower(a) = 1",
        "SELECT * FROM t WHERE a IS NULL",
        "SELECT * FROM t WHERE a LIKE 'x%'",
        "SELECT * FROM t WHERE a LIKE '%x'",
        "UPDATE t SET b = 1 WHERE a = 1",
        "DELETE FROM t WHERE a = 1",
    ]);
}

#[test]
fn constants_differ_while_the_id_stays() {
    let queued = only("SELECT * FROM jobs WHERE status IN ('QUEUED', 'PENDING')");
    let running = only("SELECT * FROM jobs WHERE status IN ('RUNNING')");
    assert_eq!(queued.shape.id(), running.shape.id());
    assert_ne!(queued.constants, running.constants);
}

#[test]
fn normalized_text_does_not_change_with_values_numbering_or_list_length() {
    let texts = [
        "SELECT * FROM t WHERE a = $1 AND b IN ($2, $3) LIMIT $4",
        "SELECT * FROM t WHERE a = $4 AND b IN ($1, $2, $3, $5) LIMIT $6",
        "SELECT * FROM t WHERE a = $1 AND b IN ($2) LIMIT 10",
    ];
    let normalized: Vec<_> = texts.iter().map(|text| only(text).normalized_sql).collect();
    assert_eq!(
        normalized[0].as_deref(),
        Some("SELECT * FROM t WHERE a = $1 AND b = ANY($2) LIMIT $3")
    );
    assert!(normalized.iter().all(|text| *text == normalized[0]));
}
