//! pymongo: `client["app"]["orders"].create_index([("status", pymongo.ASCENDING)], name="...")`.

use std::fmt::Write as _;

use super::document::{partial_filter, quoted};
use super::script::Script;
use crate::advise::{Advice, IndexMethod, IndexSpec};
use crate::shape::{Engine, Namespace};

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
            let field = key.target.text();
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

/// The `drop_index` call for one index.
fn drop_statement(namespace: &Namespace, name: &str) -> String {
    format!("{}.drop_index({})", collection(namespace), quoted(name))
}

/// The opening lines of the script.
const HEADER: &str = "\
# indextap: MongoDB index recommendations (pymongo)
import pymongo

client = pymongo.MongoClient()  # pass your connection string
";

/// The MongoDB part of the advice as a Python script.
pub(crate) fn render(advice: &Advice) -> String {
    Script::new(
        Engine::Mongodb,
        HEADER,
        "#",
        create_statement,
        drop_statement,
    )
    .render(advice)
}
