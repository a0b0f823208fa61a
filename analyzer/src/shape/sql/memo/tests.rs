//! The memo answers what the cache answers, whatever it holds, drops or is shared with.

use std::sync::Arc;

use super::{LoweringMemo, SLOTS};
use crate::command::{Request, SqlCommand, SqlProtocol};
use crate::shape::sql::SqlCache;

fn request(database: &Arc<str>, text: &Arc<str>, protocol: SqlProtocol) -> Request {
    Request::Sql(SqlCommand {
        database: Arc::clone(database),
        text: Arc::clone(text),
        parameters: 1,
        protocol,
        statement_index: None,
    })
}

fn the_table(lowering: &crate::shape::Lowering) -> String {
    lowering.shapes[0].shape.namespace.to_string()
}

#[test]
fn a_prepared_statement_seen_again_is_answered_by_the_memo_and_counted_as_a_hit() {
    let cache = SqlCache::new(16);
    let mut memo = LoweringMemo::default();
    let database: Arc<str> = "app".into();
    let text: Arc<str> = "SELECT * FROM t WHERE a = $1".into();
    let first = memo.lower_shared(&request(&database, &text, SqlProtocol::Extended), &cache);
    let second = memo.lower_shared(&request(&database, &text, SqlProtocol::Extended), &cache);
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!((cache.hits(), cache.misses(), memo.len()), (1, 1, 1));
    // The same text in another allocation is another entry, with the same lowering.
    let copy: Arc<str> = text.to_string().into();
    let third = memo.lower_shared(&request(&database, &copy, SqlProtocol::Extended), &cache);
    assert_eq!(*third, *first);
    assert_eq!((cache.hits(), memo.len()), (2, 2));
}

#[test]
fn the_database_is_part_of_the_identity() {
    let cache = SqlCache::new(16);
    let mut memo = LoweringMemo::default();
    let text: Arc<str> = "SELECT * FROM t WHERE a = $1".into();
    let (one, other): (Arc<str>, Arc<str>) = ("one".into(), "other".into());
    let a = memo.lower_shared(&request(&one, &text, SqlProtocol::Extended), &cache);
    let b = memo.lower_shared(&request(&other, &text, SqlProtocol::Extended), &cache);
    assert_eq!(the_table(&a), "one.public.t");
    assert_eq!(the_table(&b), "other.public.t");
}

#[test]
fn simple_queries_are_not_memoised() {
    let cache = SqlCache::new(16);
    let mut memo = LoweringMemo::default();
    let database: Arc<str> = "app".into();
    let text: Arc<str> = "SELECT * FROM t WHERE a = 1".into();
    memo.lower_shared(&request(&database, &text, SqlProtocol::Simple), &cache);
    memo.lower_shared(&request(&database, &text, SqlProtocol::Simple), &cache);
    assert!(memo.is_empty());
    assert_eq!((cache.hits(), cache.misses()), (1, 1));
}

#[test]
fn texts_dropped_by_their_sessions_never_answer_for_new_ones() {
    // The caller's texts are dropped at once, so without the memo holding them their
    // addresses would be handed to the next texts; past the bound the memo starts over.
    let cache = SqlCache::new(1);
    let mut memo = LoweringMemo::default();
    let database: Arc<str> = "app".into();
    for round in 0..2 {
        for n in 0..SLOTS + 10 {
            let text: Arc<str> = format!("SELECT * FROM t{n:05} WHERE a = $1").into();
            let lowered =
                memo.lower_shared(&request(&database, &text, SqlProtocol::Extended), &cache);
            assert_eq!(
                the_table(&lowered),
                format!("app.public.t{n:05}"),
                "round {round}"
            );
            assert!(memo.len() <= SLOTS);
        }
    }
}

#[test]
fn an_entry_the_cache_evicted_still_lowers_the_same() {
    let cache = SqlCache::new(1);
    let mut memo = LoweringMemo::default();
    let database: Arc<str> = "app".into();
    let text: Arc<str> = "SELECT * FROM t WHERE a = $1".into();
    let first = memo.lower_shared(&request(&database, &text, SqlProtocol::Extended), &cache);
    let other: Arc<str> = "SELECT * FROM u WHERE b = $1".into();
    memo.lower_shared(&request(&database, &other, SqlProtocol::Extended), &cache);
    let again = memo.lower_shared(&request(&database, &text, SqlProtocol::Extended), &cache);
    assert!(Arc::ptr_eq(&first, &again));
    assert_eq!(
        *again,
        cache.lower(&SqlCommand {
            database,
            text,
            parameters: 1,
            protocol: SqlProtocol::Extended,
            statement_index: None,
        })
    );
}

#[test]
fn the_bytes_kept_alive_stay_within_the_bound() {
    let cache = SqlCache::new(4);
    let mut memo = LoweringMemo::default();
    let database: Arc<str> = "app".into();
    let padding = "x".repeat(8 * 1024);
    for n in 0..200 {
        let text: Arc<str> = format!("SELECT * FROM t{n:03} WHERE a = $1 /* {padding} */").into();
        let lowered = memo.lower_shared(&request(&database, &text, SqlProtocol::Extended), &cache);
        assert_eq!(the_table(&lowered), format!("app.public.t{n:03}"));
        let held: usize = memo.slots.iter().flatten().map(|entry| entry.bytes).sum();
        assert_eq!(held, memo.bytes, "the count follows the entries");
        assert!(memo.bytes <= super::MAX_BYTES, "{} bytes held", memo.bytes);
        assert!(!memo.is_empty(), "the newest statement is kept");
    }
}
