//! Cached lowering of `find` and `count`: a driver repeats a few shapes with other values,
//! and lowering one (allocating its names, sorting its predicates, hashing its tree) costs
//! several times what reading its structure does.
//!
//! The key is a 128-bit xxh3 hash of what [`lower`](super::lower) reads from the command,
//! and nothing else: the command name and collection, every field name with
//! its BSON type and nesting, and, where the lowering looks at a value, only what it learns
//! from it: a sort direction's sign, whether `limit` / `skip` are zero, an `$exists`
//! operand's truth, and for a plain array (`$in`, `$nin`, `$all`, an array value) the set of
//! its elements' [`ValueType`]s, so `$in` lists of any length share a key. `$and` / `$or` /
//! `$nor` arrays are walked branch by branch, and last the database (a body names `$db` last,
//! so the gathered bytes are hashed where they lie; it is written length last, so the bytes
//! before it still read one way only). No value is hashed, so none can be stored.
//!
//! A command the key cannot stand for is lowered every time, uncached: any other command,
//! a damaged element, a regex (`/re/`, `$regex`, `$options`: the pattern decides the
//! operator class), a `$type` (its names are constants), or nesting past `MAX_NESTING`.
//!
//! The lowerings live in the [`SqlCache`]'s store, under the same bounds in entries and
//! bytes; SQL keys hash statement texts, these end with a tag (`MONGO_TAG`), so the two never
//! meet.
//!
//! The key is gathered field by field by a [`KeyGatherer`]: the proxy feeds it from the walk
//! that validates a request's body and hands the result over on the command
//! ([`MongoCommand::lowering_key`]), so the analysis thread hashes nothing; a command that
//! carries none (offline use, tests) is walked here by [`key`], through the same gatherer.
//!
//! ## Layout
//! - [`lower_shared`]: lookup (by the carried key, else [`key`]), else lower and store.
//! - [`key`]: the structural key of a command, in one walk.
//! - [`KeyGatherer`]: the key from a body's top-level fields, shown one at a time; `Key`
//!   writes the parts.

use std::cell::Cell;
use std::sync::Arc;

use bson::raw::{RawDocument, RawElement};
use bson::spec::ElementType;
use bson::RawBsonRef;
use xxhash_rust::xxh3::xxh3_128;

use super::modifiers::{is_negative, is_nonzero_value};
use super::types::{truth, value_type};
use super::{array_of, document_of};
use crate::command::{LoweringKey, MongoCommand};
use crate::shape::sql::SqlCache;
use crate::shape::{Lowering, ValueType};

/// Deeper filters are lowered uncached: the walk recurses, and real filters are shallow.
pub(super) const MAX_NESTING: usize = 32;

/// Lower `command`, from `cache` when a command of the same structure was lowered before.
/// The key is the one the command carries, else gathered here.
pub fn lower_shared(command: &MongoCommand, cache: &SqlCache) -> Arc<Lowering> {
    let key = match command.lowering_key {
        Some(carried) => carried.get(),
        None => key(command),
    };
    let Some(key) = key else {
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
    let mut gatherer = KeyGatherer::new();
    for field in command.body.iter_elements() {
        let field = field.ok()?;
        let name = field.key().as_str();
        if !gatherer.offer(name, field.element_type(), field.value().ok()) {
            return None;
        }
    }
    gatherer.finish(&command.database).get()
}

/// The structural key gathered one top-level field at a time, for a decoder that walks the
/// body anyway: the proxy's validation walk shows it every field, and the command carries
/// the [`finish`](Self::finish)ed key, so the analysis thread does not walk the body again.
/// It gathers the same bytes, in the same order, as [`key`] does (which is built on it).
///
/// Only a `find` or `count` is gathered: any other first field refuses the body at once, so
/// other requests and replies cost one name comparison.
#[derive(Debug, Default)]
pub struct KeyGatherer {
    state: Gathering,
}

#[derive(Debug, Default)]
enum Gathering {
    /// No field yet.
    #[default]
    First,
    /// The parts gathered so far (the database, which a body names last, comes at
    /// [`finish`](KeyGatherer::finish)).
    Fields(Vec<u8>),
    /// The key cannot stand for this body.
    Refused,
}

thread_local! {
    /// A finished gatherer's buffer, for the next one on this thread (a decoder has one body
    /// in hand at a time).
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// A buffer that grew past this for an unusually large body is not kept.
const KEEP_BYTES: usize = 16 * 1024;

impl KeyGatherer {
    /// A gatherer before the body's first field.
    pub fn new() -> Self {
        Self::default()
    }

    /// The body's next top-level field, in order. Returns whether the key is still being
    /// gathered (`false`: the body is lowered uncached, and later fields need not come).
    pub fn field(&mut self, name: &str, value: RawBsonRef<'_>) -> bool {
        self.offer(name, value.element_type(), Some(value))
    }

    /// [`field`](Self::field), for an element whose value may not be readable (`None`).
    fn offer(&mut self, name: &str, kind: ElementType, value: Option<RawBsonRef<'_>>) -> bool {
        let gathered = match &mut self.state {
            Gathering::Refused => return false,
            Gathering::First => {
                let collection = match value {
                    Some(RawBsonRef::String(collection))
                        if !collection.is_empty() && matches!(name, "find" | "count") =>
                    {
                        collection
                    }
                    _ => {
                        self.state = Gathering::Refused;
                        return false;
                    }
                };
                let mut buffer = SPARE.take();
                buffer.clear();
                let mut key = Key(&mut buffer);
                key.text(name);
                key.text(collection);
                self.state = Gathering::Fields(buffer);
                Some(())
            }
            Gathering::Fields(buffer) => Key(buffer).field(name, kind, value),
        };
        if gathered.is_none() {
            self.refuse();
        }
        gathered.is_some()
    }

    /// The key of the body whose fields were shown, run against `database` (the command's
    /// [`MongoCommand::database`]).
    pub fn finish(mut self, database: &str) -> LoweringKey {
        let Gathering::Fields(mut fields) = std::mem::take(&mut self.state) else {
            return LoweringKey(None);
        };
        // Appended, not put first: the fields are hashed in the buffer they were gathered in
        // (putting the database first cost a second buffer and a copy of every part).
        let mut key = Key(&mut fields);
        key.last_text(database);
        key.0.extend(MONGO_TAG);
        let key = xxh3_128(&fields);
        keep(fields);
        LoweringKey(Some(key))
    }

    fn refuse(&mut self) {
        if let Gathering::Fields(fields) = std::mem::replace(&mut self.state, Gathering::Refused) {
            keep(fields);
        }
    }
}

impl Drop for KeyGatherer {
    fn drop(&mut self) {
        self.refuse();
    }
}

fn keep(buffer: Vec<u8>) {
    if buffer.capacity() <= KEEP_BYTES {
        SPARE.set(buffer);
    }
}

/// What a MongoDB key ends with: SQL keys hash statement texts, which hold no NUL, so the
/// two never meet in the shared store. (At the end, not the start: a gatherer's first field
/// writes nothing more than it must, see `last_text`.)
const MONGO_TAG: &[u8] = b"mongo\0";

/// Markers between the gathered parts, so no two structures gather the same bytes.
const OPEN: u8 = b'{';
const CLOSE: u8 = b'}';
const BRANCHES: u8 = b'[';

struct Key<'a>(&'a mut Vec<u8>);

impl Key<'_> {
    /// A top-level field after the first. `None`: the key cannot stand for the body.
    fn field(
        &mut self,
        name: &str,
        kind: ElementType,
        value: Option<RawBsonRef<'_>>,
    ) -> Option<()> {
        self.tag(kind, name);
        match (name, value) {
            ("filter" | "query", Some(RawBsonRef::Document(filter))) => self.filter(filter, 0)?,
            ("sort", Some(RawBsonRef::Document(sort))) => self.sort(sort)?,
            ("projection", Some(RawBsonRef::Document(projection))) => self.names(projection)?,
            ("limit" | "skip", _) => self.0.push(u8::from(value.is_some_and(is_nonzero_value))),
            _ => {}
        }
        Some(())
    }

    /// A name or string, length first.
    fn text(&mut self, text: &str) {
        self.0.extend_from_slice(&(text.len() as u64).to_le_bytes());
        self.0.extend_from_slice(text.as_bytes());
    }

    /// The key's last part, its length after it, so the parts before it still read one way
    /// only (from the end: the length, the text, and the rest).
    fn last_text(&mut self, text: &str) {
        // `extend`, not `extend_from_slice`: one more call site of the latter (it writes every
        // part) was enough for the compiler to stop inlining it in the per-field path.
        self.0.extend(text.as_bytes());
        self.0.extend((text.len() as u64).to_le_bytes());
    }

    /// An element's type and name (names hold no NUL, so the NUL ends them).
    fn element(&mut self, element: &RawElement<'_>) {
        self.tag(element.element_type(), element.key().as_str());
    }

    fn tag(&mut self, kind: ElementType, name: &str) {
        self.0.push(kind as u8);
        self.0.extend_from_slice(name.as_bytes());
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

#[cfg(test)]
mod oracle;
