//! pymongo: `client["app"]["orders"].create_index([("status", pymongo.ASCENDING)], name="...")`.

use std::fmt::Write as _;

use super::document::{partial_filter, quoted};
use crate::advise::{Advice, IndexMethod, IndexSpec};
use crate::shape::{Engine, Namespace, Target};

fn collection(namespace: &Namespace) -> String {
    format!(
        "client[{}][{}]",
        quoted(&namespace.database),
        quoted(&namespace.collection)
    )
}

/// The `create_index` call for one index.
pub(crate) fn create_statement(index: &IndexSpec, name: &str) -> String {
    let keys: Vec<String> = index
        .keys
        .iter()
        .map(|key| {
            let field = match &key.target {
                Target::Field(name) => name.as_str(),
                Target::Expression { text, .. } => text.as_str(),
            };
            let direction = match (index.method, key.direction < 0) {
                (IndexMethod::Text, _) => "pymongo.TEXT",
                (_, true) => "pymongo.DESCENDING",
                (_, false) => "pymongo.ASCENDING",
            };
            format!("({}, {direction})", quoted(field))
        })
        .collect();
    let mut call = format!(
        "{}.create_index([{}], name={}",
        collection(&index.namespace),
        keys.join(", "),
        quoted(name)
    );
    if !index.partial.is_empty() {
        let _ = write!(
            call,
            ", partialFilterExpression={}",
            partial_filter(&index.partial).to_python()
        );
    }
    if index.unique {
        call.push_str(", unique=True");
    }
    call.push(')');
    call
}

/// The MongoDB part of the advice as a Python script.
pub(crate) fn render(advice: &Advice) -> String {
    let mut out = String::new();
    out.push_str("# indextap: MongoDB index recommendations (pymongo)\n");
    out.push_str("import pymongo\n\n");
    out.push_str("client = pymongo.MongoClient()  # pass your connection string\n");
    let recommendations = super::recommendations_of(advice, Engine::Mongodb);
    if recommendations.is_empty() {
        out.push_str("\n# No MongoDB index to add.\n");
    }
    for recommendation in &recommendations {
        let _ = writeln!(
            out,
            "\n# {}: {}\n{}",
            recommendation.index.namespace,
            super::summary(recommendation),
            create_statement(&recommendation.index, &recommendation.name)
        );
    }
    let drops = super::drops_of(advice, Engine::Mongodb);
    if !drops.is_empty() {
        out.push_str("\n# Drop candidates: review before running.\n");
        for drop in drops {
            let _ = writeln!(
                out,
                "# {}.drop_index({})  # {}",
                collection(&drop.index.namespace),
                quoted(&drop.name),
                drop.reason
            );
        }
    }
    if !recommendations.is_empty() {
        out.push_str("\n# Rollback:\n");
        for recommendation in &recommendations {
            let _ = writeln!(
                out,
                "# {}.drop_index({})",
                collection(&recommendation.index.namespace),
                quoted(&recommendation.name)
            );
        }
    }
    super::elsewhere(&mut out, advice, Engine::Mongodb, "#");
    super::notes_as_comments(&mut out, advice, "#");
    out
}
