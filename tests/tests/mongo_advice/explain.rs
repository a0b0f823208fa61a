//! `explain` with executionStats: which plan won, and how many documents it examined.

use bson::{doc, Document};
use indextap_tests::secantus::number;
use mongodb::Database;

/// The stage names of a winning plan, outermost first, and the index an IXSCAN used.
fn plan_stages(plan: &Document) -> (Vec<String>, Option<String>) {
    let mut stages = Vec::new();
    let mut index = None;
    let mut stage = Some(plan);
    while let Some(current) = stage {
        if let Ok(name) = current.get_str("stage") {
            stages.push(name.to_string());
        }
        if let Ok(name) = current.get_str("indexName") {
            index = Some(name.to_string());
        }
        stage = current.get_document("inputStage").ok();
    }
    (stages, index)
}

/// `explain` (executionStats) of a find: stages, index used, nReturned, totalDocsExamined.
pub(super) async fn explain(
    db: &Database,
    collection: &str,
    filter: Document,
) -> (Vec<String>, Option<String>, i64, i64) {
    let explained = db
        .run_command(doc! {
            "explain": { "find": collection, "filter": filter },
            "verbosity": "executionStats",
        })
        .await
        .unwrap_or_else(|err| panic!("explain: {err}"));
    let winning = explained
        .get_document("queryPlanner")
        .and_then(|planner| planner.get_document("winningPlan"))
        .unwrap_or_else(|err| panic!("no winningPlan ({err}) in {explained}"));
    let (stages, index) = plan_stages(winning);
    let stats = explained
        .get_document("executionStats")
        .unwrap_or_else(|err| panic!("no executionStats ({err}) in {explained}"));
    (
        stages,
        index,
        number(stats, "nReturned"),
        number(stats, "totalDocsExamined"),
    )
}
