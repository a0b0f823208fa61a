//! Statements and the exact shapes they lower to, in order.

use serde_json::{json, Value};

use crate::testing::statements::{self, Statement};

use super::{canonical_shapes, expression, field, join, not, or, select, shape, sort, sort_nulls};

fn case(sql: &str, expected: Vec<Value>) {
    assert_eq!(canonical_shapes(sql), expected, "\n{sql}");
}

/// A statement of the table shared with the end-to-end test.
fn check(statement: Statement) {
    case(statement.sql, statement.shapes);
}

#[test]
fn django_interpolated_literals() {
    check(statements::django_reportrun_list());
}

#[test]
fn prisma_parameters_and_tautology() {
    check(statements::prisma_job_events_page());
}

#[test]
fn joins_with_aliases_and_an_outer_join() {
    check(statements::joins_with_aliases_and_an_outer_join());
}

#[test]
fn unqualified_columns_of_a_join_belong_to_the_first_table() {
    case(
        "SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id WHERE status = $1",
        vec![
            select("orders")
                .filter(vec![
                    join("customer_id"),
                    field("status", "=", "eq", "param"),
                ])
                .joined()
                .json(),
            select("customers").filter(vec![join("id")]).joined().json(),
        ],
    );
}

#[test]
fn implicit_join_in_where() {
    case(
        "SELECT a.id FROM accounts a, memberships m WHERE m.account_id = a.id AND m.org_id = $1",
        vec![
            select("accounts")
                .filter(vec![join("id")])
                .projection(vec!["id"])
                .joined()
                .json(),
            select("memberships")
                .filter(vec![
                    join("account_id"),
                    field("org_id", "=", "eq", "param"),
                ])
                .joined()
                .json(),
        ],
    );
}

#[test]
fn several_statements_in_one_text() {
    check(statements::several_in_one_text());
}

#[test]
fn function_expressions() {
    check(statements::lower_email_lookup());
    case(
        "SELECT count(*) FROM events WHERE date(created_at) = '2024-05-01' AND created_at::date >= $1",
        vec![select("events")
            .filter(vec![
                expression(r#""created_at"::DATE"#, "created_at", ">=", "range", "param"),
                expression(r#"date("created_at")"#, "created_at", "=", "eq", "param"),
            ])
            .json()],
    );
}

#[test]
fn extract_and_time_zone_expressions() {
    case(
        "SELECT * FROM orders WHERE (created_at AT TIME ZONE 'UTC')::date = $1 \
         AND extract(year FROM created_at) = 2024 AND created_at AT TIME ZONE $2 > now()",
        vec![select("orders")
            .filter(vec![
                expression(
                    r#""created_at" AT TIME ZONE ?"#,
                    "created_at",
                    ">",
                    "not_indexable",
                    "other",
                ),
                expression(
                    r#"("created_at" AT TIME ZONE 'UTC')::DATE"#,
                    "created_at",
                    "=",
                    "eq",
                    "param",
                ),
                expression(
                    r#"EXTRACT(YEAR FROM "created_at")"#,
                    "created_at",
                    "=",
                    "eq",
                    "param",
                ),
            ])
            .json()],
    );
}

#[test]
fn like_prefix_infix_and_ilike() {
    check(statements::like_prefix());
    check(statements::like_infix_or_parameter());
    check(statements::ilike());
}

#[test]
fn jsonb_key_access_and_containment() {
    case(
        "SELECT * FROM job_events WHERE payload->>'kind' = $1 AND payload @> $2",
        vec![select("job_events")
            .filter(vec![
                field("payload", "@>", "json_contains", "param"),
                expression(r#""payload" ->> 'kind'"#, "payload", "=", "eq", "param"),
            ])
            .json()],
    );
}

#[test]
fn or_and_not() {
    check(statements::tickets_of_a_person());
    case(
        "SELECT * FROM tickets WHERE NOT (priority > 3 OR archived)",
        vec![select("tickets")
            .filter(vec![not(or(vec![
                field("archived", "=", "eq", "param"),
                field("priority", ">", "range", "param"),
            ]))])
            .json()],
    );
}

#[test]
fn group_by_with_an_expression() {
    case(
        "SELECT region, date_trunc('day', created_at), sum(amount) FROM sales \
         WHERE created_at >= $1 GROUP BY region, date_trunc('day', created_at) ORDER BY region",
        vec![select("sales")
            .filter(vec![field("created_at", ">=", "range", "param")])
            .sort(vec![sort("region", 1)])
            .projection(vec!["amount", "created_at", "region"])
            .group_by(vec!["region", r#"date_trunc('day', "created_at")"#])
            .json()],
    );
}

#[test]
fn update_and_delete() {
    check(statements::django_reportrun_update());
    check(statements::expired_sessions_delete());
    // The table an UPDATE reads beside its target is a select.
    case(
        "UPDATE accounts a SET balance = a.balance - t.amount FROM transfers t \
         WHERE t.account_id = a.id AND t.state = 'PENDING'",
        vec![
            shape("update", "accounts")
                .filter(vec![join("id")])
                .joined()
                .json(),
            select("transfers")
                .filter(vec![join("account_id"), field("state", "=", "eq", "param")])
                .joined()
                .json(),
        ],
    );
}

#[test]
fn in_lists_and_any() {
    case(
        "SELECT * FROM orders WHERE id = ANY($1) AND status IN ('A', 'B', 'C') AND customer_id IN (1, 2, 3)",
        vec![select("orders")
            .filter(vec![
                field("customer_id", "IN", "in", "param"),
                field("id", "= ANY", "in", "param"),
                field("status", "IN", "in", "param"),
            ])
            .json()],
    );
}

#[test]
fn ranges_nulls_and_negations() {
    case(
        "SELECT * FROM orders WHERE total BETWEEN 10 AND 20 AND shipped_at IS NULL \
         AND paid_at IS NOT NULL AND kind != 'x' AND region NOT IN ('EU', 'US')",
        vec![select("orders")
            .filter(vec![
                field("kind", "<>", "ne", "param"),
                field("paid_at", "IS NOT NULL", "not_null", "none"),
                field("region", "NOT IN", "ne", "param"),
                field("shipped_at", "IS NULL", "is_null", "none"),
                field("total", "BETWEEN", "range", "param"),
            ])
            .json()],
    );
}

#[test]
fn order_by_nulls_and_fetch_first() {
    case(
        "SELECT id FROM tasks WHERE project_id = $1 ORDER BY due_at ASC NULLS FIRST, id DESC \
         FETCH FIRST 10 ROWS ONLY",
        vec![select("tasks")
            .filter(vec![field("project_id", "=", "eq", "param")])
            .sort(vec![sort_nulls("due_at", 1, true), sort("id", -1)])
            .limit()
            .projection(vec!["id"])
            .json()],
    );
    case(
        "SELECT * FROM documents WHERE owner_id = $1 ORDER BY lower(title)",
        vec![select("documents")
            .filter(vec![field("owner_id", "=", "eq", "param")])
            .sort(vec![
                json!({"target": {"expression": {"text": r#"lower("title")"#,
                "column": "title"}}, "direction": 1}),
            ])
            .json()],
    );
}

#[test]
fn subqueries_are_shapes_of_their_own() {
    case(
        "SELECT id FROM users u WHERE u.org_id = $1 \
         AND EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id AND o.total > 100) \
         AND u.id NOT IN (SELECT user_id FROM bans)",
        vec![
            // `u.id` is a value known at run time inside the subquery.
            select("orders")
                .filter(vec![
                    field("total", ">", "range", "param"),
                    field("user_id", "=", "eq", "other"),
                ])
                .json(),
            select("bans").projection(vec!["user_id"]).json(),
            select("users")
                .filter(vec![
                    field("id", "NOT IN", "not_indexable", "other"),
                    field("org_id", "=", "eq", "param"),
                ])
                .projection(vec!["id"])
                .json(),
        ],
    );
    case(
        "SELECT * FROM orders WHERE customer_id = (SELECT id FROM customers WHERE email = $1) \
         AND created_at > now() - interval '1 day'",
        vec![
            select("customers")
                .filter(vec![field("email", "=", "eq", "param")])
                .projection(vec!["id"])
                .json(),
            select("orders")
                .filter(vec![
                    field("created_at", ">", "range", "other"),
                    field("customer_id", "=", "eq", "other"),
                ])
                .json(),
        ],
    );
}

#[test]
fn ctes_are_not_tables() {
    case(
        "WITH recent AS (SELECT * FROM orders WHERE created_at > $1) \
         SELECT r.id FROM recent r JOIN customers c ON c.id = r.customer_id WHERE c.vip",
        vec![
            select("orders")
                .filter(vec![field("created_at", ">", "range", "param")])
                .json(),
            select("customers")
                .filter(vec![join("id"), field("vip", "=", "eq", "param")])
                .joined()
                .json(),
        ],
    );
}

#[test]
fn quoted_names_keep_case_and_unquoted_fold() {
    case(
        r#"SELECT "Id" FROM "Billing"."Invoice" WHERE "CustomerId" = $1 AND Status = 'OPEN'"#,
        vec![shape("select", "Invoice")
            .schema("Billing")
            .filter(vec![
                field("CustomerId", "=", "eq", "param"),
                field("status", "=", "eq", "param"),
            ])
            .projection(vec!["Id"])
            .json()],
    );
    case(
        "SELECT e.kind FROM Analytics.Events e WHERE e.tenant_id = $1 ORDER BY e.ts DESC LIMIT 50",
        vec![shape("select", "events")
            .schema("analytics")
            .filter(vec![field("tenant_id", "=", "eq", "param")])
            .sort(vec![sort("ts", -1)])
            .limit()
            .projection(vec!["kind"])
            .json()],
    );
}

#[test]
fn boolean_columns_and_reversed_comparisons() {
    case(
        "SELECT id FROM feature_flags WHERE enabled AND NOT archived AND is_public = true",
        vec![select("feature_flags")
            .filter(vec![
                field("archived", "=", "eq", "param"),
                field("enabled", "=", "eq", "param"),
                field("is_public", "=", "eq", "param"),
            ])
            .projection(vec!["id"])
            .json()],
    );
    case(
        "SELECT * FROM events WHERE 100 < score AND $1 = tenant_id",
        vec![select("events")
            .filter(vec![
                field("score", ">", "range", "param"),
                field("tenant_id", "=", "eq", "param"),
            ])
            .json()],
    );
}

#[test]
fn distinct_and_union() {
    case(
        "SELECT DISTINCT category FROM products WHERE price < $1",
        vec![select("products")
            .filter(vec![field("price", "<", "range", "param")])
            .projection(vec!["category"])
            .options(vec!["distinct"])
            .json()],
    );
    // The ORDER BY and LIMIT of a UNION apply to its result: no branch carries them.
    case(
        "SELECT id FROM a WHERE x = 1 UNION ALL SELECT id FROM b WHERE y = 2 ORDER BY 1 LIMIT 5",
        vec![
            select("a")
                .filter(vec![field("x", "=", "eq", "param")])
                .projection(vec!["id"])
                .json(),
            select("b")
                .filter(vec![field("y", "=", "eq", "param")])
                .projection(vec!["id"])
                .json(),
        ],
    );
}

#[test]
fn expressions_no_index_serves() {
    case(
        "SELECT * FROM metrics WHERE a + b > $1 AND coalesce(c, 0) = 1 AND d = e",
        vec![select("metrics")
            .filter(vec![
                field("d", "=", "not_indexable", "other"),
                expression(r#""a" + "b""#, "a", ">", "not_indexable", "other"),
                expression(r#"coalesce("c", ?)"#, "c", "=", "not_indexable", "other"),
            ])
            .json()],
    );
}
