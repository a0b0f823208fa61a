//! PostgreSQL DDL: `CREATE INDEX CONCURRENTLY IF NOT EXISTS ...` as a migration with a
//! rollback. The statements themselves are the engine's
//! ([`crate::advise::engine::postgresql::ddl`]); this adds the migration around them.
//! Trigram indexes carry a reminder that they need the `pg_trgm` extension.

use std::fmt::Write as _;

use crate::advise::engine::postgresql::ddl::{create_statement, drop_statement};
use crate::advise::{Advice, IndexMethod};
use crate::shape::Engine;

/// The header every migration carries: the statements cannot be wrapped in a transaction.
const HEADER: &str = "\
-- indextap: PostgreSQL index migration
-- CREATE INDEX CONCURRENTLY and DROP INDEX CONCURRENTLY cannot run inside a transaction block:
-- run each statement on its own (turn off your migration tool's transaction wrapper).
";

/// The PostgreSQL part of the advice as a migration with up and rollback sections.
pub(crate) fn render(advice: &Advice) -> String {
    let mut out = String::from(HEADER);
    let recommendations = super::recommendations_of(advice, Engine::Postgresql);
    out.push_str("\n-- migrate:up\n");
    if recommendations.is_empty() {
        out.push_str("\n-- No PostgreSQL index to add.\n");
    }
    for recommendation in &recommendations {
        let _ = writeln!(
            out,
            "\n-- {}: {}",
            recommendation.index.namespace,
            super::summary(recommendation)
        );
        if recommendation.index.method == IndexMethod::GinTrgm {
            out.push_str(
                "-- needs the pg_trgm extension: CREATE EXTENSION IF NOT EXISTS pg_trgm;\n",
            );
        }
        out.push_str(&create_statement(
            &recommendation.index,
            &recommendation.name,
        ));
        out.push('\n');
    }
    let drops = super::drops_of(advice, Engine::Postgresql);
    if !drops.is_empty() {
        out.push_str("\n-- Drop candidates: review before running.\n");
        for drop in drops {
            let _ = writeln!(
                out,
                "-- {}  -- {}",
                drop_statement(&drop.index.namespace, &drop.name),
                drop.reason
            );
        }
    }
    out.push_str("\n-- migrate:down\n");
    if !recommendations.is_empty() {
        out.push('\n');
    }
    for recommendation in recommendations.iter().rev() {
        out.push_str(&drop_statement(
            &recommendation.index.namespace,
            &recommendation.name,
        ));
        out.push('\n');
    }
    super::elsewhere(&mut out, advice, Engine::Postgresql, "--");
    super::notes_as_comments(&mut out, advice, "--");
    out
}
