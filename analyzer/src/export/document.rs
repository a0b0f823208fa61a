//! A small MongoDB document model for index specs, rendered as mongosh (JavaScript),
//! Python (pymongo) or JSON.
//!
//! Index keys and `partialFilterExpression` are the only documents the exporters write;
//! everything in them is a field name, an operator, or a non-data constant from the shape.

use crate::advise::{Condition, PartialTerm};

/// A value in an index spec document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// `true` / `false`.
    Bool(bool),
    /// An integer (key directions, BSON type numbers).
    Int(i64),
    /// A string.
    Str(String),
    /// `null`.
    Null,
    /// An array.
    Array(Vec<Value>),
    /// An ordered document.
    Doc(Vec<(String, Value)>),
}

/// The `partialFilterExpression` for a partial predicate: conditions grouped by field, in
/// the predicate's (sorted) order.
pub(crate) fn partial_filter(terms: &[PartialTerm]) -> Value {
    let mut fields: Vec<(String, Value)> = Vec::new();
    for term in terms {
        let field = term.target.text().to_owned();
        let condition = condition(&term.condition);
        match fields.iter_mut().find(|(name, _)| *name == field) {
            Some((_, Value::Doc(conditions))) => conditions.push(condition),
            _ => fields.push((field, Value::Doc(vec![condition]))),
        }
    }
    Value::Doc(fields)
}

fn condition(condition: &Condition) -> (String, Value) {
    let (operator, value) = match condition {
        Condition::Exists(exists) => ("$exists", Value::Bool(*exists)),
        // The shape keeps a `$type` list as its sorted names joined with commas.
        Condition::Type(names) => {
            let mut types: Vec<Value> = names.split(',').map(type_value).collect();
            let value = match types.len() {
                1 => types.pop().unwrap_or(Value::Null),
                _ => Value::Array(types),
            };
            ("$type", value)
        }
        Condition::IsNull => ("$eq", Value::Null),
        Condition::IsNotNull => ("$ne", Value::Null),
        Condition::Bool(value) => ("$eq", Value::Bool(*value)),
        Condition::InTokens(tokens) => (
            "$in",
            Value::Array(tokens.iter().cloned().map(Value::Str).collect()),
        ),
    };
    (operator.to_owned(), value)
}

/// A BSON type as written in a query: a number code, or an alias such as `"date"`.
fn type_value(name: &str) -> Value {
    name.parse::<i64>()
        .map(Value::Int)
        .unwrap_or_else(|_| Value::Str(name.to_owned()))
}

/// A string literal valid in JavaScript, Python and JSON alike.
pub(crate) fn quoted(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

/// Whether `name` can be written bare as a JavaScript object key.
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// The languages a document is written in: their booleans, null and keys differ.
#[derive(Debug, Clone, Copy)]
enum Language {
    JavaScript,
    Python,
}

impl Value {
    /// mongosh: `{email: {$exists: true}, "items.sku": 1}`.
    pub(crate) fn to_js(&self) -> String {
        self.written(Language::JavaScript)
    }

    /// Python: `{"email": {"$exists": True}}`.
    pub(crate) fn to_python(&self) -> String {
        self.written(Language::Python)
    }

    fn written(&self, language: Language) -> String {
        match self {
            Value::Bool(value) => match (language, value) {
                (Language::JavaScript, _) => value.to_string(),
                (Language::Python, true) => "True".to_owned(),
                (Language::Python, false) => "False".to_owned(),
            },
            Value::Int(value) => value.to_string(),
            Value::Str(text) => quoted(text),
            Value::Null => match language {
                Language::JavaScript => "null".to_owned(),
                Language::Python => "None".to_owned(),
            },
            Value::Array(items) => {
                let items: Vec<String> = items.iter().map(|item| item.written(language)).collect();
                format!("[{}]", items.join(", "))
            }
            Value::Doc(fields) => {
                let fields: Vec<String> = fields
                    .iter()
                    .map(|(name, value)| {
                        // Only JavaScript takes a bare key.
                        let key = match language {
                            Language::JavaScript if is_identifier(name) => name.clone(),
                            _ => quoted(name),
                        };
                        format!("{key}: {}", value.written(language))
                    })
                    .collect();
                format!("{{{}}}", fields.join(", "))
            }
        }
    }

    /// JSON, for the machine-readable export.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Bool(value) => serde_json::Value::Bool(*value),
            Value::Int(value) => serde_json::Value::from(*value),
            Value::Str(text) => serde_json::Value::String(text.clone()),
            Value::Null => serde_json::Value::Null,
            Value::Array(items) => items.iter().map(Value::to_json).collect(),
            Value::Doc(fields) => serde_json::Value::Object(
                fields
                    .iter()
                    .map(|(name, value)| (name.clone(), value.to_json()))
                    .collect(),
            ),
        }
    }

    /// BSON, for building the index on a server (sample verification).
    pub(crate) fn to_bson(&self) -> bson::Bson {
        match self {
            Value::Bool(value) => bson::Bson::Boolean(*value),
            Value::Int(value) => bson::Bson::Int64(*value),
            Value::Str(text) => bson::Bson::String(text.clone()),
            Value::Null => bson::Bson::Null,
            Value::Array(items) => bson::Bson::Array(items.iter().map(Value::to_bson).collect()),
            Value::Doc(fields) => bson::Bson::Document(
                fields
                    .iter()
                    .map(|(name, value)| (name.clone(), value.to_bson()))
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::Target;

    #[test]
    fn renders_each_language() {
        let terms = vec![
            PartialTerm {
                target: Target::Field("email".to_owned()),
                condition: Condition::Exists(true),
            },
            PartialTerm {
                target: Target::Field("email".to_owned()),
                condition: Condition::Type("string".to_owned()),
            },
            PartialTerm {
                target: Target::Field("a-b".to_owned()),
                condition: Condition::InTokens(vec!["X".to_owned(), "Y".to_owned()]),
            },
        ];
        let filter = partial_filter(&terms);
        assert_eq!(
            filter.to_js(),
            r#"{email: {$exists: true, $type: "string"}, "a-b": {$in: ["X", "Y"]}}"#
        );
        assert_eq!(
            filter.to_python(),
            r#"{"email": {"$exists": True, "$type": "string"}, "a-b": {"$in": ["X", "Y"]}}"#
        );
        let listed = partial_filter(&[PartialTerm {
            target: Target::Field("due".to_owned()),
            condition: Condition::Type("date,null,9".to_owned()),
        }]);
        assert_eq!(listed.to_js(), r#"{due: {$type: ["date", "null", 9]}}"#);
        assert_eq!(
            filter.to_json()["email"]["$exists"],
            serde_json::Value::Bool(true)
        );
        assert_eq!(
            listed.to_bson(),
            bson::Bson::Document(bson::doc! { "due": { "$type": ["date", "null", 9_i64] } })
        );
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("delivery_date"));
        assert!(is_identifier("$exists"));
        assert!(!is_identifier("items.sku"));
        assert!(!is_identifier("1st"));
        assert!(!is_identifier(""));
    }
}
