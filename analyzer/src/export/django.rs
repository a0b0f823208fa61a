//! Django model indexes: `models.Index(fields=["customer_id", "-started_at"], name="...")`,
//! grouped per table, for the `Meta.indexes` of each model.
//!
//! Names are cut to Django's 30 characters. Partial predicates become `condition=Q(...)`,
//! covering columns `include=[...]`, `lower()` / `upper()` keys `Lower("email")`, trigram and
//! jsonb indexes `GinIndex`. What Django cannot express is given as a `RunSQL` comment.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::document::quoted;
use crate::advise::index::naming::{sanitize, truncate_with_hash};
use crate::advise::{Advice, Condition, IndexMethod, IndexSpec, PartialTerm, Recommendation};
use crate::shape::{Engine, Namespace, Target};

/// Django's `Index.max_name_length`.
const DJANGO_MAX_NAME: usize = 30;

/// A name Django accepts: at most [`DJANGO_MAX_NAME`] characters, starting with a letter.
fn django_name(name: &str) -> String {
    let mut name = sanitize(name);
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        name = format!("ix_{name}");
    }
    truncate_with_hash(&name, DJANGO_MAX_NAME)
}

fn is_python_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `Lower("email")` for the expressions Django has a function for.
fn function(target: &Target) -> Option<String> {
    let Target::Expression { text, column } = target else {
        return None;
    };
    let canonical = text.replace(' ', "").to_ascii_lowercase();
    let quoted_column = format!("\"{}\"", column.to_ascii_lowercase());
    let function = [("lower", "Lower"), ("upper", "Upper")]
        .into_iter()
        .find(|(sql, _)| {
            canonical == format!("{sql}({quoted_column})")
                || canonical == format!("{sql}({})", column.to_ascii_lowercase())
        })?
        .1;
    Some(format!("{function}({})", quoted(column)))
}

/// `Q(deleted_at__isnull=True) & Q(is_active=True)`.
fn condition(terms: &[PartialTerm]) -> Option<String> {
    let mut parts = Vec::new();
    for term in terms {
        let Target::Field(field) = &term.target else {
            return None;
        };
        if !is_python_identifier(field) {
            return None;
        }
        let lookup = match &term.condition {
            Condition::IsNull | Condition::Exists(false) => format!("{field}__isnull=True"),
            Condition::IsNotNull | Condition::Exists(true) => format!("{field}__isnull=False"),
            Condition::Bool(true) => format!("{field}=True"),
            Condition::Bool(false) => format!("{field}=False"),
            Condition::InTokens(tokens) => match tokens.as_slice() {
                [one] => format!("{field}={}", quoted(one)),
                _ => {
                    let list: Vec<String> = tokens.iter().map(|t| quoted(t)).collect();
                    format!("{field}__in=[{}]", list.join(", "))
                }
            },
            Condition::Type(_) => return None,
        };
        parts.push(format!("Q({lookup})"));
    }
    Some(parts.join(" & "))
}

/// The `models.Index(...)` / `GinIndex(...)` expression, or `None` when Django cannot say it.
fn index_expression(index: &IndexSpec, name: &str) -> Option<String> {
    let by_expression = index
        .keys
        .iter()
        .any(|key| matches!(key.target, Target::Expression { .. }) || key.nulls_first.is_some());
    let mut arguments = Vec::new();
    if by_expression {
        if index.method != IndexMethod::Btree {
            return None;
        }
        for key in &index.keys {
            let base = match &key.target {
                Target::Field(field) => format!("F({})", quoted(field)),
                expression => function(expression)?,
            };
            let nulls = match key.nulls_first {
                Some(true) => "nulls_first=True",
                Some(false) => "nulls_last=True",
                None => "",
            };
            let ordered = match (key.direction < 0, nulls.is_empty()) {
                (false, true) => base,
                (false, false) => format!("{base}.asc({nulls})"),
                (true, _) => format!("{base}.desc({nulls})"),
            };
            arguments.push(ordered);
        }
    } else {
        let fields: Vec<String> = index
            .keys
            .iter()
            .map(|key| {
                let column = key.target.column();
                let sign = if index.method == IndexMethod::Btree && key.direction < 0 {
                    "-"
                } else {
                    ""
                };
                quoted(&format!("{sign}{column}"))
            })
            .collect();
        arguments.push(format!("fields=[{}]", fields.join(", ")));
    }
    arguments.push(format!("name={}", quoted(&django_name(name))));
    if !index.include.is_empty() {
        let include: Vec<String> = index.include.iter().map(|c| quoted(c)).collect();
        arguments.push(format!("include=[{}]", include.join(", ")));
    }
    if !index.partial.is_empty() {
        arguments.push(format!("condition={}", condition(&index.partial)?));
    }
    let class = match index.method {
        IndexMethod::Btree => "models.Index",
        IndexMethod::Gin => "GinIndex",
        IndexMethod::GinTrgm => {
            arguments.push("opclasses=[\"gin_trgm_ops\"]".to_owned());
            "GinIndex"
        }
        IndexMethod::Text => return None,
    };
    Some(format!("{class}({})", arguments.join(", ")))
}

/// The PostgreSQL part of the advice as Django `Meta.indexes` entries, per table.
pub(crate) fn render(advice: &Advice) -> String {
    let mut tables: BTreeMap<&Namespace, Vec<(&Recommendation, Option<String>)>> = BTreeMap::new();
    for recommendation in &advice.recommendations {
        if recommendation.index.namespace.engine != Engine::Postgresql {
            continue;
        }
        let expression = index_expression(&recommendation.index, &recommendation.name);
        tables
            .entry(&recommendation.index.namespace)
            .or_default()
            .push((recommendation, expression));
    }
    let expressions: Vec<&str> = tables
        .values()
        .flatten()
        .filter_map(|(_, expression)| expression.as_deref())
        .collect();
    let uses = |needle: &str| expressions.iter().any(|e| e.contains(needle));
    let mut out = String::new();
    out.push_str("# indextap: Django model indexes\n");
    out.push_str(
        "# Add each entry to Meta.indexes of the model for its table; names shown are column\n",
    );
    out.push_str("# names (Django accepts \"customer_id\" for a ForeignKey \"customer\").\n");
    out.push_str("from django.db import models\n");
    if uses("F(") || uses("Q(") {
        let mut names = Vec::new();
        if uses("F(") {
            names.push("F");
        }
        if uses("Q(") {
            names.push("Q");
        }
        let _ = writeln!(out, "from django.db.models import {}", names.join(", "));
    }
    let functions: Vec<&str> = ["Lower", "Upper"]
        .into_iter()
        .filter(|f| uses(&format!("{f}(")))
        .collect();
    if !functions.is_empty() {
        let _ = writeln!(
            out,
            "from django.db.models.functions import {}",
            functions.join(", ")
        );
    }
    if uses("GinIndex(") {
        out.push_str("from django.contrib.postgres.indexes import GinIndex\n");
    }
    if tables.is_empty() {
        out.push_str("\n# No PostgreSQL index to add.\n");
    }
    super::elsewhere(&mut out, advice, Engine::Postgresql, "#");
    for (namespace, recommendations) in tables {
        let schema = namespace.schema.as_deref().unwrap_or("public");
        let _ = writeln!(out, "\n# \"{schema}\".\"{}\"", namespace.collection);
        for (recommendation, expression) in recommendations {
            let _ = writeln!(out, "# {}", super::summary(recommendation));
            if recommendation.index.method == IndexMethod::GinTrgm {
                out.push_str("# needs the pg_trgm extension (TrigramExtension() in a migration)\n");
            }
            match expression {
                Some(expression) => {
                    let _ = writeln!(out, "{expression},");
                }
                None => {
                    let _ = writeln!(
                        out,
                        "# not expressible as a Django index; use migrations.RunSQL:\n# {}",
                        super::statement(recommendation)
                    );
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn django_names_fit_thirty_characters() {
        assert_eq!(django_name("runs_status_idx"), "runs_status_idx");
        let long = django_name("pipeline_runs_customer_id_started_at_idx");
        assert_eq!(long.len(), DJANGO_MAX_NAME);
        assert!(long.starts_with("pipeline_runs_custom"));
        assert_eq!(django_name("_x_idx"), "x_idx");
        assert_eq!(django_name("1x_idx"), "ix_1x_idx");
    }
}
