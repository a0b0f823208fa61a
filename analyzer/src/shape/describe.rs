//! A readable one-line rendering of a shape: names, operators and value types, never values.
//!
//! `find orders where status $eq string and delivery_date $gte date sort delivery_date desc limit`
//!
//! A shape holds no value, so nothing here can leak one; this only chooses the words.

use crate::shape::{Leaf, Predicate, Shape, SortKey, ValueType};

/// The shape as one line.
pub(super) fn shape(shape: &Shape) -> String {
    let mut out = format!("{} {}", shape.command, shape.namespace.collection);
    if !shape.filter.is_empty() {
        out.push_str(" where ");
        out.push_str(&predicate(&shape.filter, false));
    }
    if !shape.group_by.is_empty() {
        out.push_str(" group by ");
        out.push_str(&shape.group_by.join(", "));
    }
    if !shape.sort.is_empty() {
        out.push_str(" sort ");
        let keys: Vec<String> = shape.sort.iter().map(sort_key).collect();
        out.push_str(&keys.join(", "));
    }
    if shape.limit {
        out.push_str(" limit");
    }
    if shape.skip {
        out.push_str(" skip");
    }
    // Advice keeps one of these per served shape of every candidate.
    out.shrink_to_fit();
    out
}

fn predicate(predicate_: &Predicate, nested: bool) -> String {
    let group = |children: &[Predicate], word: &str| {
        let parts: Vec<String> = children
            .iter()
            .map(|child| predicate(child, true))
            .collect();
        parts.join(word)
    };
    match predicate_ {
        Predicate::Leaf(leaf_) => leaf(leaf_),
        Predicate::And(children) if children.is_empty() => "(all)".to_owned(),
        Predicate::And(children) if !nested || children.len() == 1 => group(children, " and "),
        Predicate::And(children) => format!("({})", group(children, " and ")),
        Predicate::Or(children) => format!("({})", group(children, " or ")),
        Predicate::Nor(children) => format!("nor ({})", group(children, ", ")),
        Predicate::Not(inner) => format!("not ({})", predicate(inner, false)),
        Predicate::ElemMatch {
            path,
            predicate: inner,
        } => {
            format!("{path} $elemMatch ({})", predicate(inner, false))
        }
    }
}

fn leaf(leaf: &Leaf) -> String {
    let target = leaf.target.text();
    match value_type(leaf.value_type) {
        Some(kind) => format!("{target} {} {kind}", leaf.operator),
        None => format!("{target} {}", leaf.operator),
    }
}

fn sort_key(key: &SortKey) -> String {
    let direction = if key.direction < 0 { "desc" } else { "asc" };
    let nulls = match key.nulls_first {
        Some(true) => " nulls first",
        Some(false) => " nulls last",
        None => "",
    };
    format!("{} {direction}{nulls}", key.target.text())
}

fn value_type(value_type: ValueType) -> Option<&'static str> {
    Some(match value_type {
        ValueType::String => "string",
        ValueType::Number => "number",
        ValueType::Bool => "bool",
        ValueType::Null => "null",
        ValueType::Date => "date",
        ValueType::ObjectId => "objectId",
        ValueType::Object => "object",
        ValueType::Array => "array",
        ValueType::Regex => "regex",
        ValueType::BinData => "binData",
        ValueType::Param => "param",
        ValueType::Other => "other",
        ValueType::None => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::{Namespace, OpClass, Target};

    fn leaf(name: &str, operator: &str, class: OpClass, value_type: ValueType) -> Predicate {
        Predicate::Leaf(Leaf {
            target: Target::Field(name.to_owned()),
            operator: operator.into(),
            class,
            value_type,
        })
    }

    #[test]
    fn renders_names_operators_and_types() {
        let mut find = Shape::new(Namespace::mongo("app", "orders"), "find");
        find.filter = Predicate::And(vec![
            leaf("status", "$eq", OpClass::Eq, ValueType::String),
            Predicate::Or(vec![
                leaf("total", "$gte", OpClass::Range, ValueType::Number),
                Predicate::ElemMatch {
                    path: "items".to_owned(),
                    predicate: Box::new(leaf("sku", "$in", OpClass::In, ValueType::String)),
                },
            ]),
            Predicate::Not(Box::new(leaf(
                "flag",
                "$exists",
                OpClass::Exists,
                ValueType::None,
            ))),
        ]);
        find.sort = vec![SortKey {
            target: Target::Field("delivery_date".to_owned()),
            direction: -1,
            nulls_first: None,
        }];
        find.limit = true;
        assert_eq!(
            shape(&find),
            "find orders where status $eq string and (total $gte number or items $elemMatch \
             (sku $in string)) and not (flag $exists) sort delivery_date desc limit"
        );
    }
}
