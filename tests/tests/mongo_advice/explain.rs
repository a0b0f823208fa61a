//! `explain` with executionStats: which plan won, and how many documents it examined.

use bson::Document;
use indextap_tests::secantus::{explain_find, number, plan_stages, plan_walk, winning_plan};
use mongodb::Database;

/// `explain` (executionStats) of a find: stages, index used, nReturned, totalDocsExamined.
pub(super) async fn explain(
    db: &Database,
    collection: &str,
    filter: Document,
) -> (Vec<String>, Option<String>, i64, i64) {
    let explained = explain_find(db, collection, filter).await;
    let winning = winning_plan(&explained);
    // The innermost stage that names an index is the IXSCAN.
    let index = plan_walk(winning)
        .filter_map(|stage| stage.get_str("indexName").ok())
        .last()
        .map(str::to_owned);
    let stats = explained
        .get_document("executionStats")
        .unwrap_or_else(|err| panic!("no executionStats ({err}) in {explained}"));
    (
        plan_stages(winning),
        index,
        number(stats, "nReturned"),
        number(stats, "totalDocsExamined"),
    )
}
