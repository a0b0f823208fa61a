//! PostgreSQL DDL: `CREATE INDEX CONCURRENTLY IF NOT EXISTS ...` as a migration with a
//! rollback. The statements themselves are the engine's
//! ([`crate::advise::engine::postgresql::ddl`]); this adds the migration around them.
//! Trigram indexes carry a reminder that they need the `pg_trgm` extension.

use super::script::Script;
use crate::advise::engine::postgresql::ddl::{create_statement, drop_statement};
use crate::advise::{Advice, IndexMethod, IndexSpec};
use crate::shape::Engine;

/// The header every migration carries (the statements cannot be wrapped in a transaction),
/// and the start of its up section.
const HEADER: &str = "\
-- indextap: PostgreSQL index migration
-- CREATE INDEX CONCURRENTLY and DROP INDEX CONCURRENTLY cannot run inside a transaction block:
-- run each statement on its own (turn off your migration tool's transaction wrapper).

-- migrate:up
";

/// The `CREATE INDEX` statement, after the reminder a trigram index needs.
fn create_with_requirements(index: &IndexSpec, name: &str) -> String {
    let statement = create_statement(index, name);
    if index.method == IndexMethod::GinTrgm {
        format!(
            "-- needs the pg_trgm extension: CREATE EXTENSION IF NOT EXISTS pg_trgm;\n{statement}"
        )
    } else {
        statement
    }
}

/// The PostgreSQL part of the advice as a migration with up and rollback sections.
pub(crate) fn render(advice: &Advice) -> String {
    let script = Script::new(
        Engine::Postgresql,
        HEADER,
        "--",
        create_with_requirements,
        drop_statement,
    );
    let mut out = String::new();
    let recommendations = script.creates(&mut out, advice);
    script.drops(&mut out, advice);
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
    script.ending(&mut out, advice);
    out
}
