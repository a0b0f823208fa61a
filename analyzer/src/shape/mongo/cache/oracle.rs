//! The key as one walk of the command gathers it, written without [`KeyGatherer`] and kept
//! as an oracle: the gatherer must give the same bits for every command, so a key the proxy
//! carries is the key the analyzer computes itself. (Before the gatherer, the database and a tag
//! came first; they now come last, where a body names `$db`, so the gatherer hashes in place.)

use bson::{Document, RawDocumentBuf};
use proptest::prelude::*;

use super::*;
use crate::shape::mongo::str_of;
use crate::testing::mongo_commands::body;

fn old_key(command: &MongoCommand) -> Option<u128> {
    let mut buffer = Vec::new();
    let mut key = Key(&mut buffer);
    old_command(&mut key, command)?;
    Some(xxh3_128(key.0))
}

fn old_command(key: &mut Key<'_>, command: &MongoCommand) -> Option<()> {
    let mut elements = command.body.iter_elements();
    let first = elements.next()?.ok()?;
    let name = first.key().as_str();
    if !matches!(name, "find" | "count") {
        return None;
    }
    let collection = str_of(&first).filter(|collection| !collection.is_empty())?;
    key.text(name);
    key.text(collection);
    for field in elements {
        let field = field.ok()?;
        key.element(&field);
        match field.key().as_str() {
            "filter" | "query" => {
                if let Some(filter) = document_of(&field) {
                    key.filter(filter, 0)?;
                }
            }
            "sort" => {
                if let Some(sort) = document_of(&field) {
                    key.sort(sort)?;
                }
            }
            "projection" => {
                if let Some(projection) = document_of(&field) {
                    key.names(projection)?;
                }
            }
            "limit" | "skip" => key
                .0
                .push(u8::from(super::super::modifiers::is_nonzero(&field))),
            _ => {}
        }
    }
    key.0.extend_from_slice(command.database.as_bytes());
    key.0
        .extend_from_slice(&(command.database.len() as u64).to_le_bytes());
    key.0.extend_from_slice(b"mongo\0");
    Some(())
}

fn command(database: &str, body: &Document) -> MongoCommand {
    let body = RawDocumentBuf::try_from(body).expect("a generated body encodes");
    MongoCommand::new(database, body, Vec::new())
}

#[test]
fn the_filter_corpus_keys_as_before() {
    let (mut keyed, mut all) = (0, 0);
    for rule in crate::testing::mongo::filter_rules() {
        for filter in rule.filters {
            let body = crate::testing::mongo_commands::find(filter, None, None, true);
            for database in ["app", ""] {
                let command = command(database, &body);
                assert_eq!(key(&command), old_key(&command), "{body:?}");
                keyed += usize::from(key(&command).is_some());
                all += 1;
            }
        }
    }
    // Regexes and `$type` are not keyed; everything else is.
    assert!(keyed * 2 > all, "{keyed} of {all} keyed");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generated_commands_key_as_before(body in body(), database in "[a-c]{0,2}") {
        let command = command(&database, &body);
        prop_assert_eq!(key(&command), old_key(&command));
    }
}
