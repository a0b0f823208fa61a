//! Tests of SQL lowering.

use crate::command::SqlProtocol;
use crate::shape::Lowering;

fn lower(text: &str) -> Lowering {
    super::lower_text("app", text, SqlProtocol::Simple)
}

#[test]
fn explore() {
    for text in [
        "SELECT \"upstream_reportrun\".\"id\", \"upstream_reportrun\".\"customer_id\" FROM \"upstream_reportrun\" WHERE (\"upstream_reportrun\".\"customer_id\" = 42 AND \"upstream_reportrun\".\"status\" IN ('QUEUED', 'RUNNING')) ORDER BY \"upstream_reportrun\".\"started_at\" DESC LIMIT 21",
        "SELECT \"public\".\"job_events\".\"id\", \"public\".\"job_events\".\"job_id\" FROM \"public\".\"job_events\" WHERE (\"public\".\"job_events\".\"job_id\" = $1 AND 1=1) ORDER BY \"public\".\"job_events\".\"timestamp\" ASC LIMIT $2 OFFSET $3",
        "SELECT * FROM events WHERE payload->>'kind' = $1 AND payload @> '{\"a\":1}' AND lower(email) = 'x@y.z' AND created_at > now() - interval '7 days' AND d = DATE '2020-01-01' AND n = -5 AND id IN (1,2,3)",
    ] {
        let l = lower(text);
        eprintln!("--- {:?} writes={:?}", l.rejected, l.writes);
        for o in &l.shapes {
            eprintln!("{}\n  constants={:?}\n  sql={:?}", o.shape.canonical(), o.constants, o.normalized_sql);
        }
    }
}
