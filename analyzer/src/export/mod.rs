//! Export: one advice, many renderings.
//!
//! Every exporter reads the same [`Advice`]; none adds or recomputes anything, so the JSON,
//! the scripts and the report always agree. Nothing rendered here can hold a value from the
//! traffic: an advice holds names, operators, types, non-data constants and measurements.
//!
//! ## Layout
//! - this file: [`Format`], [`render`], and the per-recommendation [`statement`].
//! - `document`: the MongoDB index documents, as JavaScript, Python or JSON.
//! - [`mongosh`], `pymongo`: MongoDB scripts.
//! - `sql`: PostgreSQL migration (up and rollback).
//! - `script`: what the three scripts share (creates, drop candidates, rollback, notes).
//! - `prisma`, `django`: ORM index declarations.
//! - `json`, `markdown`: for tools and for people.

mod django;
mod document;
mod json;
mod markdown;
pub mod mongosh;
mod prisma;
mod pymongo;
mod script;
mod sql;
#[cfg(test)]
mod tests;

use std::str::FromStr;

use crate::advise::engine::postgresql::ddl;
use crate::advise::{Advice, DropCandidate, Recommendation};
use crate::shape::Engine;
use crate::spelling::closed;

closed! {
    /// An output format, named by its lowercase spelling (accepted by [`FromStr`]).
    pub enum Format {
        /// JSON for tools, CI and the admin API.
        Json => "json",
        /// A mongosh script.
        Mongosh => "mongosh",
        /// A Python script using pymongo.
        Pymongo => "pymongo",
        /// A PostgreSQL migration with a rollback.
        Sql => "sql",
        /// Prisma `@@index` attributes.
        Prisma => "prisma",
        /// Django `models.Index` entries.
        Django => "django",
        /// A Markdown report with the evidence.
        Markdown => "markdown",
    }
}

/// A format name that is not one of [`Format::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown export format (expected json, mongosh, pymongo, sql, prisma, django or markdown)")]
pub struct UnknownFormat;

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Format::parse(text).ok_or(UnknownFormat)
    }
}

/// Render the advice in one format.
pub fn render(advice: &Advice, format: Format) -> String {
    match format {
        Format::Json => json::render(advice),
        Format::Mongosh => mongosh::render(advice),
        Format::Pymongo => pymongo::render(advice),
        Format::Sql => sql::render(advice),
        Format::Prisma => prisma::render(advice),
        Format::Django => django::render(advice),
        Format::Markdown => markdown::render(advice),
    }
}

/// The statement that creates one recommended index: a mongosh line for MongoDB, DDL for
/// PostgreSQL.
pub fn statement(recommendation: &Recommendation) -> String {
    match recommendation.index.namespace.engine {
        Engine::Mongodb => mongosh::create_statement(&recommendation.index, &recommendation.name),
        Engine::Postgresql => ddl::create_statement(&recommendation.index, &recommendation.name),
    }
}

/// The statement that removes one recommended index again.
pub fn rollback_statement(recommendation: &Recommendation) -> String {
    let namespace = &recommendation.index.namespace;
    match namespace.engine {
        Engine::Mongodb => mongosh::drop_statement(namespace, &recommendation.name),
        Engine::Postgresql => ddl::drop_statement(namespace, &recommendation.name),
    }
}

/// The statement that drops a redundant existing index.
pub fn drop_statement(drop: &DropCandidate) -> String {
    let namespace = &drop.index.namespace;
    match namespace.engine {
        Engine::Mongodb => mongosh::drop_statement(namespace, &drop.name),
        Engine::Postgresql => ddl::drop_statement(namespace, &drop.name),
    }
}

/// The statement that builds a dropped index again: the rollback of a drop.
pub fn recreate_statement(drop: &DropCandidate) -> String {
    match drop.index.namespace.engine {
        Engine::Mongodb => mongosh::create_statement(&drop.index, &drop.name),
        Engine::Postgresql => ddl::create_statement(&drop.index, &drop.name),
    }
}

/// A MongoDB index's `partialFilterExpression`, as the server takes it; `None` when it has
/// none.
pub fn partial_filter_expression(index: &crate::advise::IndexSpec) -> Option<bson::Document> {
    match document::partial_filter(&index.partial).to_bson() {
        bson::Bson::Document(filter) if !filter.is_empty() => Some(filter),
        _ => None,
    }
}

/// Milliseconds for people: about three significant digits.
pub(crate) fn ms(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else if value >= 0.1 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

/// A comment pointing to the other engine's export, when the advice has recommendations
/// this export leaves out.
pub(crate) fn elsewhere(out: &mut String, advice: &Advice, shown: Engine, comment: &str) {
    let others = advice
        .recommendations
        .iter()
        .filter(|r| r.index.namespace.engine != shown)
        .count();
    if others == 0 {
        return;
    }
    let (engine, format) = match shown {
        Engine::Mongodb => ("PostgreSQL", "sql"),
        Engine::Postgresql => ("MongoDB", "mongosh or pymongo"),
    };
    out.push_str(&format!(
        "\n{comment} {others} {engine} recommendation{} in the {format} export.\n",
        if others == 1 { " is" } else { "s are" }
    ));
}

/// "serves 2 shapes, 1234 executions, 56.7 ms total".
pub(crate) fn summary(recommendation: &Recommendation) -> String {
    let executions = recommendation
        .serves
        .iter()
        .fold(0u64, |sum, served| sum.saturating_add(served.count));
    let shapes = recommendation.serves.len();
    format!(
        "serves {shapes} shape{}, {executions} executions, {} ms total",
        if shapes == 1 { "" } else { "s" },
        ms(recommendation.total_ms())
    )
}

/// The notes as a trailing comment block.
pub(crate) fn notes_as_comments(out: &mut String, advice: &Advice, comment: &str) {
    if advice.notes.is_empty() {
        return;
    }
    out.push('\n');
    for note in &advice.notes {
        out.push_str(comment);
        out.push_str(" note: ");
        out.push_str(note);
        out.push('\n');
    }
}

/// The recommendations for one engine, in rank order.
pub(crate) fn recommendations_of(
    advice: &Advice,
    engine: crate::shape::Engine,
) -> Vec<&Recommendation> {
    advice
        .recommendations
        .iter()
        .filter(|r| r.index.namespace.engine == engine)
        .collect()
}

/// The drop candidates for one engine.
pub(crate) fn drops_of(advice: &Advice, engine: crate::shape::Engine) -> Vec<&DropCandidate> {
    advice
        .drops
        .iter()
        .filter(|d| d.index.namespace.engine == engine)
        .collect()
}
