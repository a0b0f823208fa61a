//! The statement cache.

use std::sync::Arc;

use crate::command::SqlProtocol;
use crate::shape::sql::SqlCache;

use super::{command, prepared};

#[test]
fn a_repeated_statement_is_a_hit_with_the_same_lowering() {
    let cache = SqlCache::new(16);
    let text = "SELECT * FROM t WHERE a = $1";
    let first = cache.lower_shared(&prepared(text));
    let second = cache.lower_shared(&prepared(text));
    assert!(Arc::ptr_eq(&first, &second));
    // A prepared statement is stored under its exact key and its masked key.
    assert_eq!((cache.hits(), cache.misses(), cache.len()), (1, 1, 2));
    assert_eq!(cache.masked_hits(), 0);
    assert_eq!(cache.lower(&prepared(text)), *first);
    assert_eq!(cache.hits(), 2);
    assert_eq!(first.shapes.len(), 1);
}

#[test]
fn the_database_and_protocol_are_part_of_the_key() {
    let cache = SqlCache::new(16);
    let text = "COPY t TO STDOUT";
    let simple = cache.lower(&command(text, SqlProtocol::Simple));
    let copy = cache.lower(&command(text, SqlProtocol::Copy));
    assert_ne!(simple, copy);
    let mut other = command("SELECT * FROM t", SqlProtocol::Simple);
    let here = cache.lower(&other);
    other.database = "other".into();
    let there = cache.lower(&other);
    assert_eq!(there.shapes[0].shape.namespace.database, "other");
    assert_ne!(here, there);
    assert_eq!(cache.misses(), 4);
}

#[test]
fn bytes_bound_the_cache_whatever_the_statements_hold() {
    let max_bytes = 64 * 1024;
    let cache = SqlCache::bounded(100_000, max_bytes);
    let mut hot = 0;
    for i in 0..5_000 {
        // Long statements, each a distinct shape with its own normalized text.
        let text = format!(
            "SELECT a, b, c FROM events_{} WHERE tenant_{i} = $1 AND created_at > $2 ORDER BY created_at DESC LIMIT 10",
            i % 50
        );
        let _ = cache.lower(&prepared(&text));
        assert!(cache.bytes() <= max_bytes, "after {i}: {}", cache.bytes());
        // A statement used all the time stays: the LRU pushes out the others first.
        let before = cache.hits();
        let _ = cache.lower(&prepared("SELECT * FROM hot WHERE id = $1"));
        hot += usize::from(cache.hits() > before);
    }
    assert!(hot >= 4_990, "the hot statement was a hit {hot} times");
    assert!(cache.len() > 10, "{} entries", cache.len());
}

#[test]
fn capacity_bounds_the_cache() {
    for capacity in [0, 1, 5, 200, 1000] {
        let cache = SqlCache::new(capacity);
        for i in 0..(2 * capacity + 10) {
            let _ = cache.lower(&command(
                &format!("SELECT * FROM t{i}"),
                SqlProtocol::Simple,
            ));
        }
        assert!(cache.len() <= capacity, "{capacity}: {}", cache.len());
        assert_eq!(cache.is_empty(), capacity == 0);
    }
    // Nothing cached: every lookup lowers, and still answers.
    let none = SqlCache::new(0);
    let lowering = none.lower(&command("SELECT * FROM t", SqlProtocol::Simple));
    assert_eq!(
        (none.hits(), none.misses(), lowering.shapes.len()),
        (0, 1, 1)
    );
}

#[test]
fn the_cache_is_shared_between_threads() {
    let cache = Arc::new(SqlCache::new(256));
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let cache = Arc::clone(&cache);
            std::thread::spawn(move || {
                for i in 0..200 {
                    let text = format!("SELECT * FROM t WHERE a = {} AND b{} = 1", worker, i % 20);
                    let lowering = cache.lower(&command(&text, SqlProtocol::Simple));
                    assert_eq!(lowering.shapes.len(), 1);
                }
            })
        })
        .collect();
    for worker in workers {
        assert!(worker.join().is_ok());
    }
    assert_eq!(cache.hits() + cache.misses(), 800);
    // `a = {worker}` is a value: the workers share the 20 statements `b{i}`.
    assert_eq!(cache.len(), 20);
}

#[test]
fn the_cache_does_not_hold_the_text() {
    let cache = SqlCache::new(8);
    let _ = cache.lower(&command(
        "SELECT * FROM t WHERE email = 'zq-secret@x'",
        SqlProtocol::Simple,
    ));
    assert!(!format!("{cache:?}").contains("zq-secret"));
}

#[test]
fn a_simple_text_shares_its_lowering_by_the_quick_key_and_one_without_values_by_its_exact_key() {
    let cache = SqlCache::new(16);
    let shared = |first: &str, second: &str| {
        let one = cache.lower_shared(&command(first, SqlProtocol::Simple));
        let other = cache.lower_shared(&command(second, SqlProtocol::Simple));
        Arc::ptr_eq(&one, &other)
    };
    assert!(shared(
        "SELECT * FROM t WHERE a = 1",
        "SELECT * FROM t WHERE a = 2"
    ));
    assert_eq!(
        (cache.hits(), cache.quick_hits(), cache.misses()),
        (1, 1, 1)
    );
    // No literal: no quick key is stored, and the exact key answers after the quick miss.
    assert!(shared("BEGIN", "BEGIN"));
    assert_eq!(
        (cache.hits(), cache.quick_hits(), cache.misses()),
        (2, 1, 2)
    );
}
