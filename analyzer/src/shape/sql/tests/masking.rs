//! The masked cache key: texts that differ only in values share one lowering, and texts
//! whose literals the lowering reads do not. `masking_corpus` checks the same over every
//! statement of the SQL tests.

use crate::command::SqlProtocol;
use crate::shape::sql::{lower_statement, SqlCache};
use crate::shape::Lowering;

use super::{command, prepared, DATABASE};

pub(super) fn fresh(text: &str, protocol: SqlProtocol) -> Lowering {
    lower_statement(DATABASE, text, protocol, None)
}

/// Lower every text through one cache; each must equal its fresh lowering. Returns the
/// cache to inspect its counters.
fn through_cache(texts: &[&str], protocol: SqlProtocol) -> SqlCache {
    let cache = SqlCache::new(64);
    for text in texts {
        let cached = cache.lower(&command(text, protocol));
        assert_eq!(cached, fresh(text, protocol), "\n{text}");
    }
    cache
}

/// The texts lower once, then hit by their masked key.
fn share(texts: &[&str]) {
    let cache = through_cache(texts, SqlProtocol::Simple);
    let hits = texts.len() as u64 - 1;
    assert_eq!(
        (cache.misses(), cache.hits(), cache.masked_hits()),
        (1, hits, hits),
        "{texts:#?}"
    );
    assert_eq!(
        cache.len(),
        1,
        "simple-protocol texts are stored by masked key only"
    );
}

/// Each text lowers on its own, and the lowerings are not all the same.
fn apart(texts: &[&str]) {
    let cache = through_cache(texts, SqlProtocol::Simple);
    assert_eq!(cache.misses(), texts.len() as u64, "{texts:#?}");
    assert_eq!(cache.hits(), 0);
    let first = fresh(texts[0], SqlProtocol::Simple);
    assert!(
        texts[1..]
            .iter()
            .any(|text| fresh(text, SqlProtocol::Simple) != first),
        "the lowerings do not differ, so this pair proves nothing: {texts:#?}"
    );
}

#[test]
fn numbers_in_value_slots_share_an_entry() {
    share(&[
        "SELECT abalance FROM pgbench_accounts WHERE aid = 94845;",
        "SELECT abalance FROM pgbench_accounts WHERE aid = 1;",
        "SELECT abalance FROM pgbench_accounts WHERE aid = 2000000;",
    ]);
    share(&[
        "SELECT * FROM t WHERE a < 1 AND b >= 2 AND c <> 3 AND d != 4 AND e <= 5 AND f > 6",
        "SELECT * FROM t WHERE a < 9 AND b >= 8 AND c <> 7 AND d != 6 AND e <= 5 AND f > 0",
    ]);
    share(&[
        "SELECT * FROM t WHERE a BETWEEN 1 AND 10 AND b = 2 ORDER BY a LIMIT 20 OFFSET 40",
        "SELECT * FROM t WHERE a BETWEEN 5 AND 50 AND b = 3 ORDER BY a LIMIT 10 OFFSET 0",
    ]);
    // Both NUMERIC to PostgreSQL: a decimal and an integer too long for a bigint.
    share(&[
        "SELECT * FROM t WHERE x = 1.5 AND y = 1e3",
        "SELECT * FROM t WHERE x = 99999999999999999999 AND y = 7E10",
    ]);
}

#[test]
fn strings_that_are_not_token_like_share_an_entry() {
    share(&[
        "SELECT * FROM users WHERE email = 'alice@example.com' AND name <> 'alice smith'",
        "SELECT * FROM users WHERE email = 'bob@example.org' AND name <> 'bob jones'",
        "SELECT * FROM users WHERE email = '' AND name <> 'it''s'",
    ]);
    share(&[
        "SELECT * FROM events WHERE at >= '2024-01-01' AND at < '2024-02-01'::date",
        "SELECT * FROM events WHERE at >= '1999-12-31' AND at < '2000-01-01'::date",
    ]);
}

#[test]
fn in_list_items_share_an_entry_when_the_length_is_the_same() {
    share(&[
        "SELECT * FROM t WHERE id IN (1, 2, 3) AND k NOT IN ('a b', 'c-d')",
        "SELECT * FROM t WHERE id IN (7, 8, 9) AND k NOT IN ('x y', 'e-f')",
    ]);
    // The length stays in the key. A condition's shape ignores it, but an expression
    // target renders the whole list, so a shorter list is another lowering there.
    apart_keys(&[
        "SELECT * FROM t WHERE id IN (1, 2)",
        "SELECT * FROM t WHERE id IN (1, 2, 3)",
    ]);
    apart(&[
        "SELECT a FROM t ORDER BY a IN (1, 2)",
        "SELECT a FROM t ORDER BY a IN (1, 2, 3)",
    ]);
}

/// Each text is a miss, whatever the lowerings are.
fn apart_keys(texts: &[&str]) {
    let cache = through_cache(texts, SqlProtocol::Simple);
    assert_eq!(cache.misses(), texts.len() as u64, "{texts:#?}");
}

#[test]
fn literals_the_lowering_reads_keep_entries_apart() {
    // Enum constants become partial-index terms.
    apart(&[
        "SELECT * FROM jobs WHERE status = 'ACTIVE'",
        "SELECT * FROM jobs WHERE status = 'PENDING'",
    ]);
    apart(&[
        "SELECT * FROM jobs WHERE status IN ('ACTIVE', 'DONE')",
        "SELECT * FROM jobs WHERE status IN ('PENDING', 'DONE')",
    ]);
    apart(&[
        "SELECT * FROM jobs WHERE 'ACTIVE' = status",
        "SELECT * FROM jobs WHERE 'PENDING' = status",
    ]);
    // LIKE patterns: a prefix scan or not.
    apart(&[
        "SELECT * FROM t WHERE name LIKE 'ab%'",
        "SELECT * FROM t WHERE name LIKE '%ab'",
    ]);
    // Positions name select-list items.
    apart(&[
        "SELECT a, b FROM t ORDER BY 1",
        "SELECT a, b FROM t ORDER BY 2",
    ]);
    apart(&[
        "SELECT a, b, count(*) FROM t GROUP BY 1, 2",
        "SELECT a, b, count(*) FROM t GROUP BY 2, 1",
    ]);
    // Expression targets keep their code-like literals.
    apart(&[
        "SELECT * FROM t WHERE payload->>'kind' = 'x y'",
        "SELECT * FROM t WHERE payload->>'type' = 'x y'",
    ]);
    apart(&[
        "SELECT * FROM t WHERE payload->0 = 'x y'",
        "SELECT * FROM t WHERE payload->1 = 'x y'",
    ]);
    apart(&[
        "SELECT * FROM t WHERE date_trunc('day', ts) = '2024-01-01'",
        "SELECT * FROM t WHERE date_trunc('hour', ts) = '2024-01-01'",
    ]);
    apart(&[
        "SELECT * FROM t WHERE (ts AT TIME ZONE 'UTC')::date = '2024-01-01'",
        "SELECT * FROM t WHERE (ts AT TIME ZONE 'CET')::date = '2024-01-01'",
    ]);
    // The normalized statement casts a number to its type, and leaves a string bare.
    apart(&[
        "SELECT * FROM t WHERE a = 1",
        "SELECT * FROM t WHERE a = 'x y'",
        "SELECT * FROM t WHERE a = 5000000000",
        "SELECT * FROM t WHERE a = 1.5",
    ]);
}

#[test]
fn token_like_strings_are_never_masked() {
    // Not enum constants today, but the constants module may keep any token-like string.
    apart_keys(&[
        "SELECT * FROM t WHERE name = 'alice'",
        "SELECT * FROM t WHERE name = 'bob'",
    ]);
}

#[test]
fn layout_is_part_of_the_key_but_comment_text_is_not() {
    // `:name` is a placeholder and `: name` is not: the parser reads whitespace there.
    let tight = "SELECT * FROM t WHERE a = :x";
    let loose = "SELECT * FROM t WHERE a = : x";
    assert_ne!(
        fresh(tight, SqlProtocol::Simple),
        fresh(loose, SqlProtocol::Simple)
    );
    apart_keys(&[tight, loose]);
    // sqlcommenter-style comments differ per request and say nothing about the query.
    share(&[
        "SELECT * FROM t WHERE a = 1 /*traceparent='00-4bf92f3577b34da6-01'*/",
        "SELECT * FROM t WHERE a = 2 /*traceparent='00-0af7651916cd43dd-01'*/",
    ]);
    // A comment that may be an optimizer hint is kept whole.
    apart_keys(&[
        "SELECT /*+ SeqScan(t) */ * FROM t WHERE a = 1",
        "SELECT /*+ IndexScan(t) */ * FROM t WHERE a = 1",
    ]);
}

#[test]
fn the_exact_key_is_stored_for_texts_that_repeat_verbatim() {
    let cache = SqlCache::new(64);
    let text = "SELECT * FROM t WHERE a = $1 AND b = 1";
    let _ = cache.lower(&prepared(text));
    assert_eq!(cache.len(), 2);
    let _ = cache.lower(&prepared(text));
    assert_eq!((cache.hits(), cache.masked_hits()), (1, 0));
    // Another value: answered by the masked key, and not stored again.
    let _ = cache.lower(&prepared("SELECT * FROM t WHERE a = $1 AND b = 2"));
    assert_eq!((cache.hits(), cache.masked_hits(), cache.len()), (2, 1, 2));

    let cache = SqlCache::new(64);
    let _ = cache.lower(&command(text, SqlProtocol::Simple));
    let _ = cache.lower(&command(text, SqlProtocol::Simple));
    assert_eq!((cache.len(), cache.masked_hits()), (1, 1));

    // A simple-protocol text without a literal comes back verbatim: both keys.
    let cache = SqlCache::new(64);
    for _ in 0..3 {
        let _ = cache.lower(&command(
            "SELECT * FROM t WHERE a IS NULL",
            SqlProtocol::Simple,
        ));
    }
    assert_eq!((cache.len(), cache.hits(), cache.masked_hits()), (2, 2, 0));
}

#[test]
fn text_that_does_not_tokenize_is_cached_by_its_exact_key() {
    let text = "SELECT * FROM t WHERE a = 'unterminated";
    let cache = through_cache(&[text, text], SqlProtocol::Simple);
    assert_eq!(
        (
            cache.misses(),
            cache.hits(),
            cache.masked_hits(),
            cache.len()
        ),
        (1, 1, 0, 1)
    );
}

#[test]
fn protocol_database_and_statement_index_stay_in_the_masked_key() {
    let cache = SqlCache::new(64);
    let copy_to = |text: &str, protocol| cache.lower(&command(text, protocol));
    // COPY TO is a write only through the copy sub-protocol.
    let simple = copy_to(
        "COPY (SELECT * FROM t WHERE a = 1) TO STDOUT",
        SqlProtocol::Simple,
    );
    let copy = copy_to(
        "COPY (SELECT * FROM t WHERE a = 2) TO STDOUT",
        SqlProtocol::Copy,
    );
    assert_eq!(cache.misses(), 2);
    assert_eq!(
        simple,
        fresh(
            "COPY (SELECT * FROM t WHERE a = 1) TO STDOUT",
            SqlProtocol::Simple
        )
    );
    assert_eq!(
        copy,
        fresh(
            "COPY (SELECT * FROM t WHERE a = 2) TO STDOUT",
            SqlProtocol::Copy
        )
    );

    let mut other = command("SELECT * FROM t WHERE a = 1", SqlProtocol::Simple);
    other.database = "other".into();
    let there = cache.lower(&other);
    assert_eq!(there.shapes[0].shape.namespace.database, "other");
    assert_eq!(cache.misses(), 3);

    let mut second = command(
        "SELECT * FROM a WHERE x = 1; SELECT * FROM b WHERE y = 2",
        SqlProtocol::Simple,
    );
    second.statement_index = Some(1);
    let b = cache.lower(&second);
    second.statement_index = Some(0);
    second.text = "SELECT * FROM a WHERE x = 3; SELECT * FROM b WHERE y = 4".into();
    let a = cache.lower(&second);
    assert_eq!(cache.misses(), 5);
    assert_eq!(b.shapes[0].shape.namespace.collection, "b");
    assert_eq!(a.shapes[0].shape.namespace.collection, "a");
}
