//! One statement of a text, and the COPY and maintenance statements sqlparser refuses.

use crate::command::SqlProtocol;
use crate::shape::sql::{lower_statement, SqlCache};
use crate::shape::Rejection;
use crate::shape::{Lowering, Namespace, Write, WriteKind};
use crate::testing::rejected;

use super::{canonical, command, lower, DATABASE};

fn nth(text: &str, index: usize) -> Lowering {
    lower_statement(DATABASE, text, SqlProtocol::Simple, Some(index))
}

fn insert(table: &str) -> Lowering {
    Lowering {
        writes: vec![Write {
            namespace: Namespace::postgres(DATABASE, "public", table),
            kind: WriteKind::Insert,
            count: 1,
        }],
        ..Lowering::default()
    }
}

#[test]
fn an_index_lowers_only_that_statement() {
    let text = "SELECT id FROM notes WHERE author = 3; SELECT count(*) FROM tags WHERE id > 5;";
    let first = nth(text, 0);
    let second = nth(text, 1);
    assert_eq!(first.shapes.len(), 1, "{first:?}");
    assert_eq!(second.shapes.len(), 1, "{second:?}");
    assert_eq!(first.shapes[0].shape.namespace.collection, "notes");
    assert_eq!(second.shapes[0].shape.namespace.collection, "tags");
    // Together they are the whole text's lowering.
    let whole = lower(text);
    assert_eq!(
        whole.shapes.iter().map(canonical).collect::<Vec<_>>(),
        [&first.shapes[0], &second.shapes[0]].map(canonical)
    );
    // Its normalized statement is that statement alone.
    let normalized = second.shapes[0].normalized_sql.as_deref().unwrap_or("");
    assert!(
        normalized.starts_with("SELECT count(*) FROM tags WHERE id > $1")
            && !normalized.contains("notes"),
        "{normalized}"
    );
}

#[test]
fn empty_statements_and_semicolons_in_parentheses_do_not_count() {
    let text = ";; SELECT 1 ;  -- nothing\n ; INSERT INTO t (a) SELECT ';' FROM s WHERE (x = ';')";
    assert_eq!(nth(text, 0), Lowering::default());
    let insert = nth(text, 1);
    assert_eq!(insert.writes.len(), 1, "{insert:?}");
    assert_eq!(insert.shapes.len(), 1, "{insert:?}");
    assert_eq!(nth(text, 2), rejected(Rejection::SqlUnsupported));
}

#[test]
fn an_index_past_the_last_statement_lowers_nothing() {
    assert_eq!(
        nth("SELECT * FROM t WHERE a = 1", 1),
        rejected(Rejection::SqlUnsupported)
    );
    assert_eq!(nth("", 0), rejected(Rejection::SqlUnsupported));
}

#[test]
fn a_statement_sqlparser_refuses_does_not_hide_its_neighbours() {
    let text = "SELECT * FROM t WHERE a = 1; SELEC 1; SELECT * FROM u WHERE b = 2";
    assert_eq!(lower(text), rejected(Rejection::SqlParseError));
    assert_eq!(nth(text, 0).shapes.len(), 1);
    assert_eq!(nth(text, 1), rejected(Rejection::SqlParseError));
    assert_eq!(nth(text, 2).shapes.len(), 1);
}

#[test]
fn copy_with_options_sqlparser_refuses_still_writes_its_table() {
    for text in [
        "copy pgbench_accounts from stdin with (freeze on)",
        "COPY pgbench_accounts FROM STDIN WITH (HEADER ON)",
        "COPY pgbench_accounts (aid, bid) FROM STDIN WITH (FORMAT csv, HEADER 1)",
        "COPY ONLY pgbench_accounts FROM STDIN WITH (FREEZE OFF, HEADER 0)",
        "COPY public.pgbench_accounts FROM '/tmp/x' WITH (FREEZE on)",
    ] {
        assert_eq!(lower(text), insert("pgbench_accounts"), "{text}");
    }
    // COPY TO reads nothing a shape describes, unless it came through the copy sub-protocol.
    let to = "COPY t TO STDOUT WITH (HEADER ON)";
    assert_eq!(lower(to), Lowering::default());
    assert_eq!(
        lower_statement(DATABASE, to, SqlProtocol::Copy, None),
        insert("t")
    );
    // Not a COPY sqlparser or the fallback understands.
    assert_eq!(lower("COPY FROM STDIN"), rejected(Rejection::SqlParseError));
    assert_eq!(
        lower("COPY (SELEC 1) TO STDOUT WITH (HEADER ON)"),
        rejected(Rejection::SqlParseError)
    );
}

#[test]
fn pgbench_initialisation_lowers_statement_by_statement() {
    let text = "begin; truncate table pgbench_accounts; \
                copy pgbench_accounts from stdin with (freeze on); commit";
    assert_eq!(nth(text, 2), insert("pgbench_accounts"));
    assert_eq!(lower(text).writes, insert("pgbench_accounts").writes);
}

#[test]
fn maintenance_commands_are_not_queries() {
    for text in [
        "VACUUM",
        "vacuum analyze pgbench_branches",
        "VACUUM (FREEZE ON, VERBOSE) t",
        "ANALYZE t",
        "ANALYSE VERBOSE t",
        "CHECKPOINT",
        "REINDEX TABLE CONCURRENTLY t",
        "CLUSTER t USING t_pkey",
        "REFRESH MATERIALIZED VIEW CONCURRENTLY v",
    ] {
        let lowering = lower(text);
        assert_eq!(lowering, Lowering::default(), "{text}");
    }
    assert_eq!(nth("SELECT 1; CHECKPOINT", 1), Lowering::default());
}

#[test]
fn the_statement_index_is_part_of_the_cache_key() {
    let cache = SqlCache::new(16);
    let text = "SELECT * FROM a WHERE x = 1; SELECT * FROM b WHERE y = 2";
    let mut statement = command(text, SqlProtocol::Simple);
    let whole = cache.lower(&statement);
    statement.statement_index = Some(0);
    let first = cache.lower(&statement);
    statement.statement_index = Some(1);
    let second = cache.lower(&statement);
    statement.statement_index = Some(2);
    let past = cache.lower(&statement);
    assert_eq!(cache.misses(), 4);
    assert_eq!(whole.shapes.len(), 2);
    assert_eq!(first.shapes[0].shape.namespace.collection, "a");
    assert_eq!(second.shapes[0].shape.namespace.collection, "b");
    assert_eq!(past.rejected, Some(Rejection::SqlUnsupported));
    statement.statement_index = Some(1);
    assert_eq!(cache.lower(&statement), second);
    assert_eq!(cache.hits(), 1);
}
