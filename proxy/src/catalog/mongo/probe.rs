//! A shape made runnable again, with values taken from a sampled document of the scratch
//! copy, never from the traffic: `{status: $eq string}` and a sampled `{status: "paid"}`
//! give the filter `{status: "paid"}`; a range takes the sampled value as its bound.
//!
//! The filter and its values live only for the `explain` that runs it; they are never kept.

use bson::{doc, Bson, Document};
use indextap_analyzer::shape::{OpClass, Predicate, Shape};

/// The filter of `shape`, with each leaf's value taken from `sample`. Leaves no index can
/// use (`$ne`, `$expr`, ...) are left out: they change which documents match, not which
/// index a plan picks. `None` when nothing is left to filter on.
pub fn filter(shape: &Shape, sample: &Document) -> Option<Document> {
    let filter = predicate(&shape.filter, "", sample)?;
    (!filter.is_empty()).then_some(filter)
}

/// The sort of `shape`, as a `find` takes it.
pub fn sort(shape: &Shape) -> Option<Document> {
    if shape.sort.is_empty() {
        return None;
    }
    let mut sort = Document::new();
    for key in &shape.sort {
        let direction = if key.direction < 0 { -1 } else { 1 };
        sort.insert(key.target.column(), Bson::Int32(direction));
    }
    Some(sort)
}

fn predicate(predicate: &Predicate, path: &str, sample: &Document) -> Option<Document> {
    match predicate {
        Predicate::Leaf(leaf) => {
            let field = joined(path, leaf.target.column());
            let value = lookup(sample, &field);
            let test = match leaf.class {
                OpClass::Eq => value,
                OpClass::IsNull => Bson::Null,
                OpClass::In => Bson::Document(doc! { "$in": [value] }),
                OpClass::Range | OpClass::Prefix => Bson::Document(doc! { "$gte": value }),
                OpClass::Exists => Bson::Document(doc! { "$exists": true }),
                _ => return Some(Document::new()),
            };
            let mut filter = Document::new();
            filter.insert(field, test);
            Some(filter)
        }
        Predicate::And(children) => {
            let mut all = Vec::new();
            for child in children {
                match predicate_of(child, path, sample) {
                    Some(filter) if !filter.is_empty() => all.push(Bson::Document(filter)),
                    _ => {}
                }
            }
            // One flat document when no field repeats, as drivers send it: planners read
            // `{a: 1, b: 2}` more readily than `{$and: [{a: 1}, {b: 2}]}`.
            let mut flat = Document::new();
            for part in &all {
                let Bson::Document(part) = part else {
                    continue;
                };
                for (key, value) in part {
                    if flat.contains_key(key) {
                        return Some(doc! { "$and": all });
                    }
                    flat.insert(key.clone(), value.clone());
                }
            }
            Some(flat)
        }
        Predicate::Or(children) => {
            let mut any = Vec::new();
            for child in children {
                let filter = predicate_of(child, path, sample)?;
                if filter.is_empty() {
                    // A branch that filters on nothing matches everything.
                    return Some(Document::new());
                }
                any.push(Bson::Document(filter));
            }
            Some(doc! { "$or": any })
        }
        Predicate::ElemMatch {
            path: inner,
            predicate,
        } => predicate_of(predicate, &joined(path, inner), sample),
        Predicate::Nor(_) | Predicate::Not(_) => Some(Document::new()),
    }
}

fn predicate_of(child: &Predicate, path: &str, sample: &Document) -> Option<Document> {
    predicate(child, path, sample)
}

fn joined(path: &str, name: &str) -> String {
    match (path.is_empty(), name.is_empty()) {
        (true, _) => name.to_string(),
        (false, true) => path.to_string(),
        (false, false) => format!("{path}.{name}"),
    }
}

/// The value at a dotted path of `document`; the first element of an array on the way;
/// null when the path is missing (which matches the documents that lack it).
fn lookup(document: &Document, path: &str) -> Bson {
    let mut current = Bson::Document(document.clone());
    for part in path.split('.') {
        current = match current {
            Bson::Document(inner) => inner.get(part).cloned().unwrap_or(Bson::Null),
            Bson::Array(items) => match items.first() {
                Some(Bson::Document(inner)) => inner.get(part).cloned().unwrap_or(Bson::Null),
                _ => Bson::Null,
            },
            _ => Bson::Null,
        };
    }
    match current {
        Bson::Array(items) => items.first().cloned().unwrap_or(Bson::Null),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use indextap_analyzer::shape::{Leaf, Namespace, SortKey, Target, ValueType};

    fn leaf(field: &str, class: OpClass) -> Predicate {
        Predicate::Leaf(Leaf {
            target: Target::Field(field.to_string()),
            operator: "$eq".into(),
            class,
            value_type: ValueType::String,
        })
    }

    #[test]
    fn values_come_from_the_sampled_document() {
        let mut shape = Shape::new(Namespace::mongo("app", "orders"), "find");
        shape.filter = Predicate::And(vec![
            leaf("status", OpClass::Eq),
            leaf("total", OpClass::Range),
            leaf("tags", OpClass::In),
            leaf("customer.country", OpClass::Eq),
            leaf("note", OpClass::Ne),
        ]);
        shape.sort = vec![SortKey {
            target: Target::Field("created".into()),
            direction: -1,
            nulls_first: None,
        }];
        let sample = doc! { "status": "paid", "total": 12, "tags": ["a", "b"],
        "customer": { "country": "FR" }, "note": "x" };
        assert_eq!(
            filter(&shape, &sample),
            Some(doc! {
                "status": "paid",
                "total": { "$gte": 12 },
                "tags": { "$in": ["a"] },
                "customer.country": "FR",
            })
        );
        assert_eq!(sort(&shape), Some(doc! { "created": -1 }));
        let missing = doc! { "total": 1 };
        let filtered = filter(&shape, &missing).expect("a filter");
        assert_eq!(filtered.get("status"), Some(&Bson::Null));
        shape.filter = Predicate::And(vec![leaf("a", OpClass::Range), leaf("a", OpClass::Range)]);
        assert!(
            filter(&shape, &doc! { "a": 1 })
                .expect("a filter")
                .contains_key("$and"),
            "a repeated field keeps its $and"
        );
    }

    #[test]
    fn an_or_with_an_unfiltered_branch_filters_nothing() {
        let mut shape = Shape::new(Namespace::mongo("app", "orders"), "find");
        shape.filter = Predicate::Or(vec![leaf("a", OpClass::Eq), leaf("b", OpClass::Ne)]);
        assert_eq!(filter(&shape, &doc! { "a": 1 }), None);
    }
}
