//! Prisma schema attributes: `@@index([job_id, timestamp(sort: Desc)], map: "name")`, grouped
//! per model (table or collection).
//!
//! Prisma cannot express every index (expressions, partial predicates, `INCLUDE`, null
//! ordering, wildcard text): those are given as a comment with the statement to put in a
//! raw migration instead.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::document::quoted;
use crate::advise::{Advice, IndexMethod, IndexSpec, Recommendation};
use crate::shape::{Engine, Namespace, Target};

/// The `@@index` line, or `None` when Prisma cannot express the index.
fn attribute(index: &IndexSpec, name: &str) -> Option<String> {
    if !index.partial.is_empty()
        || !index.include.is_empty()
        || index.method == IndexMethod::Text
        || index.keys.iter().any(|key| key.nulls_first.is_some())
    {
        return None;
    }
    let mut fields = Vec::new();
    for key in &index.keys {
        let Target::Field(field) = &key.target else {
            return None;
        };
        let field = match (index.method, key.direction < 0) {
            (IndexMethod::GinTrgm, _) => format!("{field}(ops: raw(\"gin_trgm_ops\"))"),
            (IndexMethod::Btree, true) => format!("{field}(sort: Desc)"),
            _ => field.clone(),
        };
        fields.push(field);
    }
    let kind = match index.method {
        IndexMethod::Gin | IndexMethod::GinTrgm => ", type: Gin",
        IndexMethod::Btree | IndexMethod::Text => "",
    };
    Some(format!(
        "@@index([{}]{kind}, map: {})",
        fields.join(", "),
        quoted(name)
    ))
}

fn model_header(namespace: &Namespace) -> String {
    let owner = namespace.schema.as_deref().unwrap_or(&namespace.database);
    format!("// model for \"{owner}\".\"{}\"", namespace.collection)
}

/// The advice as Prisma attributes, one block per model.
pub(crate) fn render(advice: &Advice) -> String {
    let mut out = String::new();
    out.push_str("// indextap: Prisma index attributes\n");
    out.push_str("// Add each line to the model of its table; names shown are column names:\n");
    out.push_str("// use the model's field names where they differ (@map).\n");
    let mut models: BTreeMap<&Namespace, Vec<&Recommendation>> = BTreeMap::new();
    for recommendation in &advice.recommendations {
        models
            .entry(&recommendation.index.namespace)
            .or_default()
            .push(recommendation);
    }
    if models.is_empty() {
        out.push_str("\n// No index to add.\n");
    }
    for (namespace, recommendations) in models {
        let _ = writeln!(out, "\n{}", model_header(namespace));
        for recommendation in recommendations {
            let _ = writeln!(out, "// {}", super::summary(recommendation));
            if recommendation.index.method == IndexMethod::GinTrgm {
                out.push_str("// needs the pg_trgm extension (extensions = [pg_trgm])\n");
            }
            match attribute(&recommendation.index, &recommendation.name) {
                Some(line) => {
                    out.push_str(&line);
                    out.push('\n');
                }
                None => {
                    let how = match namespace.engine {
                        Engine::Postgresql => "a raw SQL migration",
                        Engine::Mongodb => "mongosh",
                    };
                    let _ = writeln!(
                        out,
                        "// not expressible in Prisma; create it with {how}:\n// {}",
                        super::statement(recommendation)
                    );
                }
            }
        }
    }
    out
}
