//! Tests of SQL lowering.

use crate::command::SqlProtocol;
use crate::shape::Lowering;

fn lower(text: &str) -> Lowering {
    super::lower_text("app", text, SqlProtocol::Simple)
}

#[test]
fn explore() {
    for text in [
        r#"SELECT o.id, c.name FROM orders o JOIN customers AS c ON o.customer_id = c.id LEFT JOIN items i ON i.order_id = o.id AND i.deleted_at IS NULL WHERE o.status = 'PAID' AND c.region = $1 ORDER BY o.created_at DESC NULLS LAST, c.name"#,
        "BEGIN; SELECT * FROM a WHERE x = 1; UPDATE b SET y = 2 WHERE id = 3; COMMIT",
        "SELECT * FROM users WHERE date(created_at) = '2024-01-01' OR upper(name) LIKE 'AB%' OR name LIKE '%x%' OR name ILIKE 'abc%' OR name LIKE $1",
        "SELECT region, count(*) FROM sales WHERE NOT (amount > 5) AND is_active AND NOT archived GROUP BY region, 1 ORDER BY 2 DESC",
        "DELETE FROM sessions WHERE expires_at < now()",
        "INSERT INTO logs (a, b) VALUES (1, 'x'), (2, 'y'), (3, 'z')",
        "COPY logs (a, b) FROM STDIN WITH (FORMAT csv)",
        "SET search_path TO public",
        "SHOW work_mem",
        "WITH recent AS (SELECT * FROM orders WHERE created_at > $1) SELECT * FROM recent r WHERE r.total > 100",
        "SELECT * FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id AND o.total > 5) AND u.id IN (SELECT user_id FROM bans)",
        "SELECT * FROM t WHERE a = ANY($1) AND b <> ALL(ARRAY[1,2]) AND c BETWEEN 1 AND 10 AND d IS NOT NULL AND e != 4 AND f NOT IN (1,2) FETCH FIRST 5 ROWS ONLY",
        "SELECT * FROM t WHERE (a = 1 OR a = 2 OR a = 3) AND (b = 1 OR c = 2)",
        "SELECT * FROM t1, t2 WHERE t1.a = t2.b AND t1.c = 5",
        "UPDATE t SET x = x + 1 FROM u WHERE t.uid = u.id AND u.flag = false",
        "garbage here",
        "",
        "SELECT * FROM \"MixedCase\" WHERE \"Col\" = 1 AND Other = 2",
        "SELECT /*+ SeqScan(t) bob@example.com */ * FROM t WHERE a = 'secret'",
        "SELECT * FROM t WHERE created_at::date = $1 AND date_trunc('day', ts) = $2 AND payload #>> '{a,b}' = 'x'",
    ] {
        let l = lower(text);
        eprintln!("--- {:?} writes={:?}", l.rejected, l.writes);
        for o in &l.shapes {
            eprintln!("{}\n  constants={:?}\n  sql={:?}", o.shape.canonical(), o.constants, o.normalized_sql);
        }
    }
}
