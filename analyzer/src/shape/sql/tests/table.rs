//! Statements and the exact shapes they lower to, in order.
//!
//! ## Layout
//! - this file: one loop over the statements shared with the end-to-end test
//!   (`testing::statements`), one over the cases of `table.json`.
//! - `table.json`: a list of `{ name, why?, sql, shapes }`, `shapes` the exact canonical JSON of
//!   every shape the text lowers to, in order, and `why` the reason where the shapes surprise.

use serde::Deserialize;
use serde_json::Value;

use crate::testing::statements;

use super::canonical_shapes;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    why: Option<String>,
    sql: String,
    shapes: Vec<Value>,
}

#[test]
fn the_statements_shared_with_the_end_to_end_test_lower_to_their_shapes() {
    for statement in [
        statements::django_reportrun_list(),
        statements::prisma_job_events_page(),
        statements::joins_with_aliases_and_an_outer_join(),
        statements::several_in_one_text(),
        statements::lower_email_lookup(),
        statements::like_prefix(),
        statements::like_infix_or_parameter(),
        statements::ilike(),
        statements::tickets_of_a_person(),
        statements::django_reportrun_update(),
        statements::expired_sessions_delete(),
    ] {
        assert_eq!(
            canonical_shapes(statement.sql),
            statement.shapes,
            "\n{}",
            statement.sql
        );
    }
}

#[test]
fn every_case_of_the_table_lowers_to_its_exact_shapes() {
    let cases: Vec<Case> = serde_json::from_str(include_str!("table.json"))
        .unwrap_or_else(|err| panic!("table.json: {err}"));
    assert!(cases.len() >= 20, "only {} cases", cases.len());
    for case in cases {
        assert_eq!(
            canonical_shapes(&case.sql),
            case.shapes,
            "{}:\n{}\n{}",
            case.name,
            case.sql,
            case.why.as_deref().unwrap_or_default()
        );
    }
}
