//! MongoDB's default index name: `status_1_delivery_date_-1`, `$**_text` for a text index,
//! and `_partial` after it for a partial index, so it cannot collide with the full one.

use crate::advise::{IndexMethod, IndexSpec};
use crate::shape::Target;

/// The name `createIndex` would give `index`, marked when partial.
pub(super) fn index_name(index: &IndexSpec) -> String {
    let mut parts = Vec::new();
    for key in &index.keys {
        let field = match &key.target {
            Target::Field(name) => name.clone(),
            Target::Expression { text, .. } => text.clone(),
        };
        let direction = match index.method {
            IndexMethod::Text => "text".to_owned(),
            _ => key.direction.to_string(),
        };
        parts.push(format!("{field}_{direction}"));
    }
    let mut name = parts.join("_");
    if !index.partial.is_empty() {
        name.push_str("_partial");
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advise::{Condition, IndexKey, PartialTerm};
    use crate::shape::Namespace;

    fn spec(keys: Vec<IndexKey>, method: IndexMethod) -> IndexSpec {
        IndexSpec::new(Namespace::mongo("app", "orders"), method, keys)
    }

    fn field(name: &str) -> Target {
        Target::Field(name.to_owned())
    }

    #[test]
    fn mongo_default_names() {
        let index = spec(
            vec![
                IndexKey::asc(field("status")),
                IndexKey::desc(field("delivery_date")),
            ],
            IndexMethod::Btree,
        );
        assert_eq!(index_name(&index), "status_1_delivery_date_-1");
        let text = spec(vec![IndexKey::new(field("$**"), 0)], IndexMethod::Text);
        assert_eq!(index_name(&text), "$**_text");
        let mut partial = index.clone();
        partial.partial.push(PartialTerm {
            target: field("status"),
            condition: Condition::Exists(true),
        });
        assert_eq!(index_name(&partial), "status_1_delivery_date_-1_partial");
    }
}
