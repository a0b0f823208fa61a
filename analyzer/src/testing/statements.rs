//! SQL statements as ORMs and people send them, each with the exact shapes it lowers to: one
//! table, read by the analyzer's lowering tests and by the end-to-end test that sends the same
//! statements to a real server through the proxy.

use serde_json::Value;

use super::sql::{expression, field, join, or, select, shape, sort, sort_nulls};

/// A statement and the canonical shapes it yields, in order.
#[derive(Debug, Clone)]
pub struct Statement {
    pub sql: &'static str,
    pub shapes: Vec<Value>,
}

fn statement(sql: &'static str, shapes: Vec<Value>) -> Statement {
    Statement { sql, shapes }
}

/// Django's reportrun list: client-side interpolated literals, quoted names, `LIMIT 21`.
pub fn django_reportrun_list() -> Statement {
    statement(
        r#"SELECT "upstream_reportrun"."id", "upstream_reportrun"."customer_id" FROM "upstream_reportrun" WHERE ("upstream_reportrun"."customer_id" = 42 AND "upstream_reportrun"."status" IN ('QUEUED', 'RUNNING')) ORDER BY "upstream_reportrun"."started_at" DESC LIMIT 21"#,
        vec![django_reportrun_list_shape()],
    )
}

/// The shape of [`django_reportrun_list`], whatever the customer and the `IN` list.
pub fn django_reportrun_list_shape() -> Value {
    select("upstream_reportrun")
        .filter(vec![
            field("customer_id", "=", "eq", "param"),
            field("status", "IN", "in", "param"),
        ])
        .sort(vec![sort("started_at", -1)])
        .limit()
        .projection(vec!["customer_id", "id"])
        .json()
}

/// Django's save of one reportrun.
pub fn django_reportrun_update() -> Statement {
    statement(
        r#"UPDATE "upstream_reportrun" SET "status" = 'DONE', "finished_at" = now() WHERE "upstream_reportrun"."id" = 7"#,
        vec![shape("update", "upstream_reportrun")
            .filter(vec![field("id", "=", "eq", "param")])
            .json()],
    )
}

/// Prisma: schema-qualified names, every value a parameter (three: the key, LIMIT, OFFSET),
/// and the `1=1` tautology it adds.
pub fn prisma_job_events_page() -> Statement {
    statement(
        r#"SELECT "public"."job_events"."id", "public"."job_events"."job_id", "public"."job_events"."timestamp" FROM "public"."job_events" WHERE ("public"."job_events"."job_id" = $1 AND 1=1) ORDER BY "public"."job_events"."timestamp" ASC LIMIT $2 OFFSET $3"#,
        vec![select("job_events")
            .filter(vec![field("job_id", "=", "eq", "param")])
            .sort(vec![sort("timestamp", 1)])
            .limit()
            .skip()
            .projection(vec!["id", "job_id", "timestamp"])
            .json()],
    )
}

/// Joins with aliases, one of them outer: the LEFT JOIN's ON clause filters `order_items`
/// only, and `orders` keeps its join leaf. One parameter (the region).
pub fn joins_with_aliases_and_an_outer_join() -> Statement {
    statement(
        "SELECT o.id, c.name FROM orders o JOIN customers AS c ON o.customer_id = c.id \
         LEFT JOIN order_items i ON i.order_id = o.id AND i.deleted_at IS NULL \
         WHERE o.status = 'PAID' AND c.region = $1 ORDER BY o.created_at DESC NULLS LAST, c.name",
        vec![
            select("orders")
                .filter(vec![
                    join("customer_id"),
                    join("id"),
                    field("status", "=", "eq", "param"),
                ])
                .sort(vec![sort_nulls("created_at", -1, false)])
                .projection(vec!["id"])
                .joined()
                .json(),
            select("customers")
                .filter(vec![join("id"), field("region", "=", "eq", "param")])
                .sort(vec![sort("name", 1)])
                .projection(vec!["name"])
                .joined()
                .json(),
            select("order_items")
                .filter(vec![
                    field("deleted_at", "IS NULL", "is_null", "none"),
                    join("order_id"),
                ])
                .joined()
                .json(),
        ],
    )
}

/// A function of a column is an expression leaf, spelled canonically. One parameter.
pub fn lower_email_lookup() -> Statement {
    statement(
        r#"SELECT id FROM users WHERE LOWER("users"."email") = $1 LIMIT 1"#,
        vec![select("users")
            .filter(vec![expression(
                r#"lower("email")"#,
                "email",
                "=",
                "eq",
                "param",
            )])
            .limit()
            .projection(vec!["id"])
            .json()],
    )
}

/// `sql`, the ids of the products whose name matches a pattern with `operator`: one leaf of
/// `class` on `name`.
fn name_search(sql: &'static str, operator: &str, class: &str) -> Statement {
    statement(
        sql,
        vec![select("products")
            .filter(vec![field("name", operator, class, "param")])
            .projection(vec!["id"])
            .json()],
    )
}

/// An anchored LIKE is a prefix search.
pub fn like_prefix() -> Statement {
    name_search(
        "SELECT id FROM products WHERE name LIKE 'abc%'",
        "LIKE",
        "prefix",
    )
}

/// An unanchored LIKE, and a LIKE of a parameter, are infix searches. One parameter.
pub fn like_infix_or_parameter() -> Statement {
    statement(
        "SELECT id FROM products WHERE name LIKE '%abc%' OR sku LIKE $1",
        vec![select("products")
            .filter(vec![or(vec![
                field("name", "LIKE", "infix", "param"),
                field("sku", "LIKE", "infix", "param"),
            ])])
            .projection(vec!["id"])
            .json()],
    )
}

/// ILIKE folds case: never a prefix an index serves.
pub fn ilike() -> Statement {
    name_search(
        "SELECT id FROM products WHERE name ILIKE 'abc%'",
        "ILIKE",
        "infix",
    )
}

/// Several statements in one Query message: each gives its shapes.
pub fn several_in_one_text() -> Statement {
    statement(
        "BEGIN; SELECT id FROM users WHERE email = 'x@example.com'; \
         UPDATE users SET name = 'n' WHERE id = 3; COMMIT;",
        vec![
            select("users")
                .filter(vec![field("email", "=", "eq", "param")])
                .projection(vec!["id"])
                .json(),
            shape("update", "users")
                .filter(vec![field("id", "=", "eq", "param")])
                .json(),
        ],
    )
}

/// An OR of two columns under an AND. One parameter, used twice.
pub fn tickets_of_a_person() -> Statement {
    statement(
        "SELECT * FROM tickets WHERE (assignee_id = $1 OR reporter_id = $1) AND status <> 'CLOSED'",
        vec![select("tickets")
            .filter(vec![
                or(vec![
                    field("assignee_id", "=", "eq", "param"),
                    field("reporter_id", "=", "eq", "param"),
                ]),
                field("status", "<>", "ne", "param"),
            ])
            .json()],
    )
}

/// A DELETE by a range on a function call (`now()`, no parameter) and a key. One parameter.
pub fn expired_sessions_delete() -> Statement {
    statement(
        "DELETE FROM sessions WHERE expires_at < now() AND user_id = $1",
        vec![shape("delete", "sessions")
            .filter(vec![
                field("expires_at", "<", "range", "other"),
                field("user_id", "=", "eq", "param"),
            ])
            .json()],
    )
}
