//! PostgreSQL SQL text → shapes, with a cache keyed by a hash of the text.
//!
//! A text (a Simple Query may hold several statements) is split into its statements, each
//! parsed with sqlparser's PostgreSQL dialect; the proxy may ask for one statement of a text
//! ([`lower_statement`]). Every query level yields one [`Shape`](crate::shape::Shape) per base table it
//! reads, holding only the conditions on that table's columns; UPDATE, DELETE, INSERT and
//! COPY FROM yield [`Write`](crate::shape::Write)s. SET, BEGIN, SHOW, DDL and the like yield
//! nothing and are not errors. Text that does not parse is rejected as
//! [`Rejection::SqlParseError`]; text too deep to walk safely, or that nothing could be made of, as
//! [`Rejection::SqlUnsupported`].
//!
//! ## Values
//! Every literal and every `$n` parameter is a value: in a shape it becomes
//! [`ValueType::Param`](crate::shape::ValueType::Param), so `= 5` and `= $1` are one shape
//! (the pg_stat_statements view), and neither the values, the parameter numbering nor the
//! length of an `IN` list changes a shape's id.
//!
//! ## Constants (partial indexes)
//! A few literals are code written in the application, not data flowing through it, and a
//! partial index is built from them. They are kept, as a
//! [`BoundConstant`](crate::shape::BoundConstant) beside the shape (never in its id), only in
//! these forms:
//! - a boolean literal compared with a column: `is_active = true` → `Constant::Bool`;
//! - enum-like tokens: `status = 'QUEUED'`, `status IN ('QUEUED', 'PENDING')` →
//!   `Constant::Tokens` (sorted), and only when every token matches
//!   `^[A-Za-z][A-Za-z0-9_]{0,31}$` and the list has at most 16 items.
//!
//! Any other literal (an email, a number, a date, a token list with one odd item) is never
//! kept anywhere: not in a shape, a constant, the normalized text or an error. `IS NULL` and
//! `IS NOT NULL` need no constant; they are part of the shape.
//!
//! Expression targets keep the code-like literals that define them (the JSON key of
//! `payload->>'kind'`, the `'day'` of `date_trunc('day', ts)`), since an expression index
//! needs them; see `constants` for the exact tests.
//!
//! ## Normalized statement
//! Each occurrence carries the statement re-rendered by sqlparser with every literal and
//! parameter replaced by `$1..$n` in order, except booleans, `NULL`, the kept tokens, the
//! literals of expression targets and select-list positions (`ORDER BY 2`), which stay as
//! written so that `EXPLAIN (GENERIC_PLAN)` of it still matches partial and expression
//! indexes. See `normalize` for the rewrites that keep it valid PostgreSQL.
//!
//! ## Layout
//! - this file: [`lower_text`], the uncached pipeline.
//! - `cache`: [`SqlCache`], the sharded LRU keyed by a 128-bit hash of the text.
//! - `memo`: [`LoweringMemo`], an analysis thread's prepared statements by their shared
//!   text, in front of the cache.
//! - `fingerprint`: the cache's masked key, the same for texts that differ only in values.
//! - `guard`: tokenizing, the depth bound, parsing.
//! - `literals`: long string literals cut down to their ends before parsing (plain ones
//!   already in the text, by `fingerprint::precut`, before tokenizing).
//! - `statements`: a text split into its statements, and the COPY and maintenance
//!   statements sqlparser refuses.
//! - `extract`: the statement walk, the only one that recurses; it uses `from` (FROM
//!   lists, joins), `clauses` (select list, ORDER BY, GROUP BY) and `writes` (the write
//!   load), which walk one level and hand back what is nested, and `frame` (one shape per
//!   table).
//! - `classify`, `operators`, `operand`, `predicate`: WHERE/ON → leaves, and their
//!   projection per table.
//! - `canonical`: the one canonical text of an expression, for query targets and for the
//!   index keys PostgreSQL prints ([`printed_key`], [`index_form`]).
//! - `names`: identifier folding and column resolution.
//! - `constants`: which literals may be kept.
//! - `normalize`: literal-free statement and expression text.

mod cache;
mod canonical;
mod classify;
mod clauses;
mod constants;
mod extract;
mod fingerprint;
mod frame;
mod from;
mod guard;
mod literals;
mod memo;
mod names;
mod normalize;
mod operand;
mod operators;
mod predicate;
mod statements;
mod writes;

#[cfg(test)]
mod tests;

pub use cache::SqlCache;
pub use canonical::{builds_as_written, index_form, printed_key, unquote};
pub use memo::LoweringMemo;

use std::borrow::Cow;

use sqlparser::ast::{CopySource, Statement};

use super::{Lowering, Rejection};
use crate::command::SqlProtocol;
use extract::Lowerer;
use guard::{Literals, Refusal};
use statements::Parsed;

/// Lower one SQL text, without the cache. Never panics.
pub fn lower_text(database: &str, text: &str, protocol: SqlProtocol) -> Lowering {
    lower_statement(database, text, protocol, None)
}

/// Lower one SQL text, or only its statement `index` (0-based, as the server completes
/// them) when it is `Some`, without the cache. Never panics. An index past the text's last
/// statement lowers nothing and is rejected as [`Rejection::SqlUnsupported`].
///
/// Walking a syntax tree takes stack in proportion to its depth (several KiB a level in a
/// debug build), so a statement deeper than `INLINE_DEPTH` is lowered on a scoped thread
/// of its own with a `DEEP_STACK` stack; the rest, nearly all traffic, runs inline and
/// needs well under 1 MiB.
pub fn lower_statement(
    database: &str,
    text: &str,
    protocol: SqlProtocol,
    index: Option<usize>,
) -> Lowering {
    lower_with(database, text, protocol, index, Literals::Shrunk)
}

/// [`lower_text`] with every long literal kept whole through the parse: the reference the
/// shrinking is tested against.
#[cfg(test)]
pub(super) fn lower_whole(database: &str, text: &str, protocol: SqlProtocol) -> Lowering {
    lower_with(database, text, protocol, None, Literals::Whole)
}

fn lower_with(
    database: &str,
    text: &str,
    protocol: SqlProtocol,
    index: Option<usize>,
    literals: Literals,
) -> Lowering {
    // Long literals are cut before the tokenizer copies them (see `fingerprint::precut`);
    // `shrink_long` cuts, after it, those the pre-cut does not read.
    let text = match literals {
        Literals::Shrunk => fingerprint::precut(text),
        Literals::Whole => Cow::Borrowed(text),
    };
    lower_cut(database, &text, protocol, index, literals)
}

/// [`lower_statement`] of a text that has been through `fingerprint::precut` already (the
/// SQL cache cuts it for its masked key first), so it is not scanned a second time.
pub(super) fn lower_precut(
    database: &str,
    text: &str,
    protocol: SqlProtocol,
    index: Option<usize>,
) -> Lowering {
    lower_cut(database, text, protocol, index, Literals::Shrunk)
}

fn lower_cut(
    database: &str,
    text: &str,
    protocol: SqlProtocol,
    index: Option<usize>,
    literals: Literals,
) -> Lowering {
    let tokens = match guard::tokenize(text, literals) {
        Ok(tokens) => tokens,
        Err(refusal) => return refused(refusal),
    };
    if tokens.depth <= INLINE_DEPTH {
        return lower_tokens(database, tokens, protocol, index);
    }
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("indextap-sql-deep".into())
            .stack_size(DEEP_STACK)
            .spawn_scoped(scope, || lower_tokens(database, tokens, protocol, index))
            .ok()
            .and_then(|worker| worker.join().ok())
    })
    .unwrap_or_else(|| Lowering::rejected_as(Rejection::SqlUnsupported))
}

/// The depth bound (see `guard`) up to which a statement is lowered on the caller's stack.
const INLINE_DEPTH: usize = 64;

/// The stack of the thread that lowers deeper statements.
const DEEP_STACK: usize = 16 << 20;

fn lower_tokens(
    database: &str,
    tokens: guard::Tokens,
    protocol: SqlProtocol,
    index: Option<usize>,
) -> Lowering {
    let mut split = statements::split(tokens.into_tokens());
    let selected = match index {
        None => split,
        Some(index) if index < split.len() => vec![split.swap_remove(index)],
        Some(_) => return Lowering::rejected_as(Rejection::SqlUnsupported),
    };
    let mut lowering = Lowering::default();
    let mut unsupported = false;
    for tokens in selected {
        let statements = match statements::parse(tokens) {
            Parsed::Statements(statements) => statements,
            Parsed::CopyTable { table_name, to } => {
                let mut lowerer = Lowerer::new(database, protocol);
                let columns = Vec::new();
                lowerer.copy(
                    &CopySource::Table {
                        table_name,
                        columns,
                    },
                    to,
                );
                lowering.writes.extend(lowerer.writes);
                continue;
            }
            Parsed::NotAQuery => continue,
            Parsed::Refused(refusal) => return refused(refusal),
        };
        for statement in &statements {
            let mut lowerer = Lowerer::new(database, protocol);
            lowerer.statement(statement);
            unsupported |= lowerer.unsupported;
            let normalized = match lowerer.shapes.is_empty() {
                true => None,
                false => normalize::normalized(&explainable(statement), &lowerer.kept),
            };
            for mut occurrence in lowerer.shapes {
                occurrence.normalized_sql = normalized.clone();
                lowering.shapes.push(occurrence);
            }
            lowering.writes.extend(lowerer.writes);
        }
    }
    if unsupported && lowering.shapes.is_empty() && lowering.writes.is_empty() {
        lowering.rejected = Some(Rejection::SqlUnsupported);
    }
    lowering
}

/// The statement EXPLAIN can run for the shapes of `statement`: the query of a
/// `COPY (query) TO`, since COPY itself cannot be explained; the statement itself otherwise.
fn explainable(statement: &Statement) -> Cow<'_, Statement> {
    match statement {
        Statement::Copy {
            source: CopySource::Query(query),
            ..
        } => Cow::Owned(Statement::Query(query.clone())),
        other => Cow::Borrowed(other),
    }
}

fn refused(refusal: Refusal) -> Lowering {
    Lowering::rejected_as(match refusal {
        Refusal::Parse => Rejection::SqlParseError,
        Refusal::TooDeep => Rejection::SqlUnsupported,
    })
}
