//! Cached lowering of `find` and `count`: a driver repeats a few shapes with other values,
//! and lowering one (allocating its names, sorting its predicates, hashing its tree) costs
//! several times what reading its structure does.
//!
//! The key is a 128-bit xxh3 hash of what [`lower`](super::lower) reads from the command,
//! and nothing else: the database, the command name and collection, every field name with
//! its BSON type and nesting, and, where the lowering looks at a value, only what it learns
//! from it: a sort direction's sign, whether `limit` / `skip` are zero, an `$exists`
//! operand's truth, and for a plain array (`$in`, `$nin`, `$all`, an array value) the set of
//! its elements' [`ValueType`]s, so `$in` lists of any length share a key. `$and` / `$or` /
//! `$nor` arrays are walked branch by branch. No value is hashed, so none can be stored.
//!
//! A command the key cannot stand for is lowered every time, uncached: any other command,
//! a damaged element, a regex (`/re/`, `$regex`, `$options`: the pattern decides the
//! operator class), a `$type` (its names are constants), or nesting past `MAX_NESTING`.
//!
//! The lowerings live in the [`SqlCache`]'s store, under the same bounds in entries and
//! bytes; SQL keys hash statement texts, these a leading tag, so the two never meet.
//!
//! ## Layout
//! - [`lower_shared`]: lookup, else lower and store.
//! - [`key`]: the structural key, gathered by `Key` in one walk.

use std::sync::Arc;

use bson::raw::{RawDocument, RawElement};
use bson::spec::ElementType;
use xxhash_rust::xxh3::xxh3_128;

use super::modifiers::{is_negative, is_nonzero};
use super::types::{truth, value_type};
use super::{array_of, document_of, str_of};
use crate::command::MongoCommand;
use crate::shape::key::with_gathered;
use crate::shape::sql::SqlCache;
use crate::shape::{Lowering, ValueType};

/// Deeper filters are lowered uncached: the walk recurses, and real filters are shallow.
pub(super) const MAX_NESTING: usize = 32;

/// Lower `command`, from `cache` when a command of the same structure was lowered before.
pub fn lower_shared(command: &MongoCommand, cache: &SqlCache) -> Arc<Lowering> {
    let Some(key) = key(command) else {
        return Arc::new(super::lower(command));
    };
    if let Some(found) = cache.get(key) {
        return found;
    }
    let lowering = Arc::new(super::lower(command));
    cache.put(key, &lowering);
    lowering
}

/// The structural key of a `find` or `count`; `None` for a command it cannot stand for.
pub fn key(command: &MongoCommand) -> Option<u128> {
    with_gathered(|buffer| {
        let mut key = Key(buffer);
        key.command(command)?;
        Some(xxh3_128(key.0))
    })
}

/// Markers between the gathered parts, so no two structures gather the same bytes.
const OPEN: u8 = b'{';
const CLOSE: u8 = b'}';
const BRANCHES: u8 = b'[';

struct Key<'a>(&'a mut Vec<u8>);

impl Key<'_> {
    fn command(&mut self, command: &MongoCommand) -> Option<()> {
        self.0.extend_from_slice(b"mongo\0");
        self.text(&command.database);
        let mut elements = command.body.iter_elements();
        let first = elements.next()?.ok()?;
        let name = first.key().as_str();
        if !matches!(name, "find" | "count") {
            return None;
        }
        let collection = str_of(&first).filter(|collection| !collection.is_empty())?;
        self.text(name);
        self.text(collection);
        for field in elements {
            let field = field.ok()?;
            self.element(&field);
            match field.key().as_str() {
                "filter" | "query" => {
                    if let Some(filter) = document_of(&field) {
                        self.filter(filter, 0)?;
                    }
                }
                "sort" => {
                    if let Some(sort) = document_of(&field) {
                        self.sort(sort)?;
                    }
                }
                "projection" => {
                    if let Some(projection) = document_of(&field) {
                        self.names(projection)?;
                    }
                }
                "limit" | "skip" => self.0.push(u8::from(is_nonzero(&field))),
                _ => {}
            }
        }
        Some(())
    }

    /// A name or string, length first.
    fn text(&mut self, text: &str) {
        self.0.extend_from_slice(&(text.len() as u64).to_le_bytes());
        self.0.extend_from_slice(text.as_bytes());
    }

    /// An element's type and name (names hold no NUL, so the NUL ends them).
    fn element(&mut self, element: &RawElement<'_>) {
        self.0.push(element.element_type() as u8);
        self.0.extend_from_slice(element.key().as_str().as_bytes());
        self.0.push(0);
    }

    fn filter(&mut self, document: &RawDocument, depth: usize) -> Option<()> {
        if depth > MAX_NESTING {
            return None;
        }
        self.0.push(OPEN);
        for element in document.iter_elements() {
            let element = element.ok()?;
            let name = element.key().as_str();
            if matches!(name, "$regex" | "$options" | "$type") {
                return None;
            }
            self.element(&element);
            if name == "$exists" {
                // What the lowering keeps of the operand, or that it refuses it.
                self.0.push(truth(&element).map_or(2, u8::from));
            }
            match element.element_type() {
                ElementType::RegularExpression => return None,
                ElementType::EmbeddedDocument => self.filter(document_of(&element)?, depth + 1)?,
                ElementType::Array if matches!(name, "$and" | "$or" | "$nor") => {
                    self.0.push(BRANCHES);
                    for branch in array_of(&element)?.iter_elements() {
                        let branch = branch.ok()?;
                        self.element(&branch);
                        if let Some(branch) = document_of(&branch) {
                            self.filter(branch, depth + 1)?;
                        }
                    }
                    self.0.push(CLOSE);
                }
                ElementType::Array => {
                    let mut types = 0u32;
                    for item in array_of(&element)?.iter_elements() {
                        types |= 1 << type_bit(value_type(item.ok()?.element_type()));
                    }
                    self.0.extend_from_slice(&types.to_le_bytes());
                }
                _ => {}
            }
        }
        self.0.push(CLOSE);
        Some(())
    }

    fn sort(&mut self, document: &RawDocument) -> Option<()> {
        self.0.push(OPEN);
        for element in document.iter_elements() {
            let element = element.ok()?;
            self.element(&element);
            self.0.push(u8::from(is_negative(&element)));
        }
        self.0.push(CLOSE);
        Some(())
    }

    fn names(&mut self, document: &RawDocument) -> Option<()> {
        self.0.push(OPEN);
        for element in document.iter_elements() {
            self.element(&element.ok()?);
        }
        self.0.push(CLOSE);
        Some(())
    }
}

/// A bit per [`ValueType`], for the set of an array's element types.
fn type_bit(value_type: ValueType) -> u32 {
    match value_type {
        ValueType::Number => 0,
        ValueType::String => 1,
        ValueType::Bool => 2,
        ValueType::Null => 3,
        ValueType::Date => 4,
        ValueType::ObjectId => 5,
        ValueType::Object => 6,
        ValueType::Array => 7,
        ValueType::Regex => 8,
        ValueType::BinData => 9,
        ValueType::Other => 10,
        ValueType::None => 11,
        ValueType::Param => 12,
    }
}
