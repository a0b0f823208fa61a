//! The structural key stands for the lowering: commands with one key lower alike (over the
//! filter corpus crossed with modifiers, the lowering tables' commands with other values, and over generated commands whose values, list
//! lengths and types vary), commands differing only in values share a key, and what the key
//! cannot stand for is left uncached.

use bson::{doc, rawdoc, Bson, Document, RawDocumentBuf};
use proptest::prelude::*;

use super::*;
use crate::shape::mongo::cache::{key, lower_shared};
use crate::shape::sql::SqlCache;
use crate::testing::mongo_commands::{filter, find, modifiers};

fn raw(document: &Document) -> RawDocumentBuf {
    RawDocumentBuf::try_from(document).expect("test document encodes")
}

/// Every pair with one key has one lowering (shape, constants, rejection): no key stands
/// for two lowerings.
fn assert_key_decides(commands: &[MongoCommand]) -> usize {
    let mut by_key: std::collections::HashMap<u128, Lowering> = Default::default();
    let mut shared = 0;
    for command in commands {
        let Some(key) = key(command) else { continue };
        let lowering = lower(command);
        match by_key.get(&key) {
            Some(first) => {
                shared += 1;
                assert_eq!(
                    first, &lowering,
                    "one key, two lowerings: {:?}",
                    command.body
                );
            }
            None => {
                by_key.insert(key, lowering);
            }
        }
    }
    shared
}

#[test]
fn the_lowering_tables_with_other_values_lower_alike_under_one_key() {
    let sorts = [
        None,
        Some(doc! { "at": 1 }),
        Some(doc! { "at": -1.5 }),
        Some(doc! { "at": 0 }),
    ];
    let limits = [
        None,
        Some(Bson::Int32(0)),
        Some(Bson::Int32(20)),
        Some(Bson::Int64(-3)),
    ];
    let mut commands = Vec::new();
    for rule in crate::testing::mongo::filter_rules() {
        for filter in &rule.filters {
            for (index, sort) in sorts.iter().enumerate() {
                let limit = limits[(index + commands.len()) % limits.len()].clone();
                let body = find(filter.clone(), sort.clone(), limit, index % 2 == 0);
                commands.push(command(raw(&body)));
            }
        }
    }
    // Every command of the lowering table, and each with other values.
    for case in super::table::table_cases() {
        let body = Document::try_from(case.command.body.as_ref()).expect("a table command");
        for salt in [1, 2, 3] {
            let body = raw(&with_other_values(&body, salt));
            commands.push(MongoCommand {
                body,
                ..case.command.clone()
            });
        }
        commands.push(case.command);
    }
    let keyed = commands
        .iter()
        .filter(|command| key(command).is_some())
        .count();
    let shared = assert_key_decides(&commands);
    assert!(keyed > 80 && shared > 30, "{keyed} keyed, {shared} shared");
}

#[test]
fn values_and_list_lengths_share_a_key() {
    let first = command(rawdoc! {
        "find": "orders",
        "filter": { "status": "A", "customerId": 1_i64, "tag": { "$in": ["a"] },
                    "$or": [ { "qty": { "$gt": 5 } }, { "qty": { "$exists": true } } ] },
        "sort": { "createdAt": -1 }, "limit": 20, "lsid": { "id": 1 }, "$db": "app",
    });
    let second = command(rawdoc! {
        "find": "orders",
        "filter": { "status": "shipped", "customerId": 99_i64, "tag": { "$in": ["x", "y", "z"] },
                    "$or": [ { "qty": { "$gt": 7 } }, { "qty": { "$exists": true } } ] },
        "sort": { "createdAt": -5 }, "limit": 3, "lsid": { "id": 2 }, "$db": "app",
    });
    assert_eq!(key(&first), key(&second));
    assert!(key(&first).is_some());
    // What the lowering reads from a value is part of the key.
    for other in [
        rawdoc! { "find": "orders", "filter": { "status": "A", "customerId": 1_i32 } },
        rawdoc! { "find": "orders", "filter": { "customerId": 1_i64, "status": "A" } },
        rawdoc! { "find": "orders", "filter": { "status": { "$exists": false } } },
        rawdoc! { "find": "orders", "sort": { "createdAt": 1 } },
        rawdoc! { "find": "orders", "limit": 0 },
        rawdoc! { "find": "users", "filter": { "status": "A" } },
        rawdoc! { "count": "orders", "query": { "status": "A" } },
    ] {
        let other = command(other);
        assert!(key(&other).is_some());
        assert_ne!(key(&first), key(&other), "{:?}", other.body);
    }
    let mut on_other_database = first.clone();
    on_other_database.database = "billing".into();
    assert_ne!(key(&first), key(&on_other_database));
}

#[test]
fn what_the_key_cannot_stand_for_is_not_cached() {
    for body in [
        rawdoc! { "find": "orders", "filter": { "name": regex("^ab", "") } },
        rawdoc! { "find": "orders", "filter": { "name": { "$regex": "^ab", "$options": "i" } } },
        rawdoc! { "find": "orders", "filter": { "n": { "$type": "string" } } },
        rawdoc! { "insert": "orders", "documents": [ { "a": 1 } ] },
        rawdoc! { "aggregate": "orders", "pipeline": [], "cursor": {} },
        rawdoc! { "getMore": 12_i64, "collection": "orders" },
        rawdoc! { "find": "" },
        rawdoc! { "find": 1 },
    ] {
        assert_eq!(key(&command(body.clone())), None, "{body:?}");
    }
    let mut deep = doc! { "a": 1 };
    for _ in 0..40 {
        deep = doc! { "$and": [deep] };
    }
    assert_eq!(
        key(&command(raw(&doc! { "find": "orders", "filter": deep }))),
        None
    );
}

#[test]
fn the_cache_answers_a_repeated_structure_with_the_first_lowering() {
    let cache = SqlCache::new(16);
    let first = command(rawdoc! { "find": "orders", "filter": { "customerId": 1_i64 } });
    let second = command(rawdoc! { "find": "orders", "filter": { "customerId": 2_i64 } });
    let lowered = lower_shared(&first, &cache);
    let again = lower_shared(&second, &cache);
    assert!(std::sync::Arc::ptr_eq(&lowered, &again));
    assert_eq!(*again, lower(&second));
    assert_eq!(cache.len(), 1);
    // Uncached commands are lowered, not stored.
    let regex_find = command(rawdoc! { "find": "orders", "filter": { "n": regex("x", "") } });
    assert_eq!(*lower_shared(&regex_find, &cache), lower(&regex_find));
    assert_eq!(cache.len(), 1);
}

/// The same filter with other values of the same types: numbers scaled and their signs
/// flipped by `salt`, strings changed, booleans flipped, lists grown or shrunk.
fn perturb(value: &Bson, salt: i32) -> Bson {
    match value {
        Bson::Int32(number) => Bson::Int32(number.wrapping_mul(-salt).wrapping_add(salt)),
        Bson::Int64(number) => Bson::Int64(number.wrapping_mul(i64::from(-salt))),
        Bson::Double(number) => Bson::Double(number * f64::from(-salt)),
        Bson::String(text) => Bson::String(format!("{text}{salt}")),
        Bson::Boolean(flag) => Bson::Boolean(*flag ^ (salt % 2 == 0)),
        Bson::Array(items) => {
            let mut items: Vec<Bson> = items.iter().map(|item| perturb(item, salt)).collect();
            match items.first().cloned() {
                Some(first) if salt % 2 == 0 => items.push(first),
                Some(_) => {
                    items.pop();
                }
                None => {}
            }
            Bson::Array(items)
        }
        Bson::Document(document) => Bson::Document(
            document
                .iter()
                .map(|(name, value)| (name.clone(), perturb(value, salt)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `body` with other values everywhere but in its first field (the command and collection).
fn with_other_values(body: &Document, salt: i32) -> Document {
    body.iter()
        .enumerate()
        .map(|(index, (name, value))| {
            let value = if index == 0 {
                value.clone()
            } else {
                perturb(value, salt)
            };
            (name.clone(), value)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Many commands from few field names and operators, each also with other values (so
    /// keys meet often): each meeting must be between equal lowerings.
    #[test]
    fn one_key_means_one_lowering(
        commands in prop::collection::vec((filter(), modifiers()), 16..32),
    ) {
        let commands: Vec<MongoCommand> = commands
            .into_iter()
            .flat_map(|(filter, (sort, limit, projected))| {
                let body = find(filter, sort, limit, projected);
                [1, 2, 3].map(|salt| command(raw(&with_other_values(&body, salt))))
            })
            .collect();
        let shared = assert_key_decides(&commands);
        prop_assert!(shared > 0, "no two commands met under one key");
    }
}
