//! OP_MSG (opcode 2013): the message format of every command since MongoDB 3.6.
//!
//! ```text
//! flagBits   uint32
//! sections   kind 0: one BSON document, the command body (exactly one per message)
//!            kind 1: int32 size (itself included), cstring identifier, BSON documents
//! checksum   optional uint32 CRC32C, present when flag bit 0 is set
//! ```
//!
//! The checksum is skipped, not verified: the server verifies it and rejects a corrupt
//! message, and the proxy only observes. Flag bits 0-15 are "required": a receiver must
//! reject a message with one it does not know, so this decoder does too (`bad_flags`).
//!
//! Parsing borrows from the frame. Only [`OpMsg::to_command`] copies, and it copies what a
//! shape needs: the body, and the `updates` / `deletes` sequences. Inserted documents are
//! counted, never copied, whether they came as a kind 1 `documents` sequence or inline in the
//! body.

use bson::raw::cstr;
use bson::{RawBsonRef, RawDocument, RawDocumentBuf};
use indextap_analyzer::command::{DocumentSequence, LoweringKey, MongoCommand};
use indextap_analyzer::shape::mongo::cache::KeyGatherer;

use crate::pipeline::bodies;
use crate::tap::DecodeError;

use super::databases::Databases;
use super::outcome::{Fields, ReplyFields};
use super::reader::{validate_top_level, validate_top_level_with, Reader};

/// The largest body whose lowering key is gathered here. The key's walk of nested
/// documents is linear in their size and runs on the data thread; a larger body (a long
/// `$in` list) carries no key, and the analysis thread walks it instead.
const MAX_KEYED_BODY: usize = 16 * 1024;

/// Sequences whose documents a shape needs (update and delete statements carry filters).
const KEPT_SEQUENCES: [&str; 2] = ["updates", "deletes"];

/// OP_MSG `flagBits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MsgFlags(pub u32);

impl MsgFlags {
    /// Bit 0: a CRC32C checksum follows the sections.
    pub const CHECKSUM_PRESENT: u32 = 1;
    /// Bit 1: the sender will send another message without waiting (a request with it gets
    /// no reply; a reply with it is followed by another reply).
    pub const MORE_TO_COME: u32 = 1 << 1;
    /// Bit 16: the client accepts exhaust replies.
    pub const EXHAUST_ALLOWED: u32 = 1 << 16;
    /// Bits 0-15 must be understood by the receiver.
    const REQUIRED: u32 = 0xffff;
    const KNOWN_REQUIRED: u32 = Self::CHECKSUM_PRESENT | Self::MORE_TO_COME;

    /// Whether a checksum follows the sections.
    pub fn checksum_present(self) -> bool {
        self.0 & Self::CHECKSUM_PRESENT != 0
    }

    /// Whether another message follows without a request.
    pub fn more_to_come(self) -> bool {
        self.0 & Self::MORE_TO_COME != 0
    }

    /// Whether the client accepts exhaust replies.
    pub fn exhaust_allowed(self) -> bool {
        self.0 & Self::EXHAUST_ALLOWED != 0
    }
}

/// A decoded OP_MSG, borrowing from its frame.
///
/// The validation walk gathers what the message's direction needs and nothing else: a
/// request's name, `$db` and lowering key ([`parse`](Self::parse)), a reply's outcome fields
/// (`parse_reply`, into a slot of the caller's). The reply's fields
/// (nine values) live in that slot, not in the message, so the message stays small: it is
/// moved several times on its way to the session (parse, the opcode's enum, the closure).
#[derive(Debug, Clone)]
pub struct OpMsg<'a> {
    /// The flag bits.
    pub flags: MsgFlags,
    /// The kind 0 section.
    pub body: &'a RawDocument,
    /// The kind 1 sections, in order.
    pub sequences: Vec<Sequence<'a>>,
    /// The body's first key: a request's command name. The first element of a name counts,
    /// as with a lookup.
    name: Option<&'a str>,
    /// A request's first `$db`, when it is a string.
    database: Option<&'a str>,
    /// The analyzer's lowering key of a request, gathered while the body was validated
    /// (`None` for a reply, and for a body over [`MAX_KEYED_BODY`]).
    lowering_key: Option<LoweringKey>,
    /// A reply's outcome fields, gathered while the body was validated (`None`: parsed as a
    /// request).
    reply: Option<&'a ReplyFields<'a>>,
}

/// A kind 1 section, borrowed.
#[derive(Debug, Clone)]
pub struct Sequence<'a> {
    /// `documents`, `updates`, `deletes`, ...
    pub identifier: &'a str,
    /// How many documents it holds.
    pub count: usize,
    /// The documents, back to back, their framing checked.
    pub bytes: &'a [u8],
}

impl<'a> Sequence<'a> {
    /// The documents in order.
    pub fn documents(&self) -> impl Iterator<Item = &'a RawDocument> + 'a {
        let mut reader = Reader::new(self.bytes);
        std::iter::from_fn(move || reader.document("sequence document").ok())
    }
}

/// The sections of an OP_MSG, its body validated by the walk the direction chose.
struct Sections<'a> {
    flags: MsgFlags,
    body: &'a RawDocument,
    sequences: Vec<Sequence<'a>>,
}

/// What a request's validation walk gathers.
#[derive(Default)]
struct RequestFields<'a> {
    name: Option<&'a str>,
    /// `$db`, whatever its type (a later `$db` does not replace it).
    database: Option<RawBsonRef<'a>>,
    key: KeyGatherer,
    keyed: bool,
}

impl<'a> RequestFields<'a> {
    fn walk(&mut self, body: &'a RawDocument) -> Result<(), DecodeError> {
        self.keyed = body.as_bytes().len() <= MAX_KEYED_BODY;
        validate_top_level_with(body, "kind 0 section", |name, value| {
            self.name.get_or_insert(name);
            if name == "$db" {
                self.database.get_or_insert(value);
            }
            if self.keyed {
                self.key.field(name, value);
            }
        })
    }

    fn database(&self) -> Option<&'a str> {
        self.database.and_then(RawBsonRef::as_str)
    }
}

impl<'a> OpMsg<'a> {
    /// Parse a request's OP_MSG body (the frame after its header).
    pub fn parse(body: &'a [u8]) -> Result<OpMsg<'a>, DecodeError> {
        let mut fields = RequestFields::default();
        let Sections {
            flags,
            body,
            sequences,
        } = parse_sections(body, |body| fields.walk(body))?;
        let database = fields.database();
        Ok(OpMsg {
            flags,
            body,
            sequences,
            name: fields.name,
            database,
            lowering_key: fields
                .keyed
                .then(|| fields.key.finish(database.unwrap_or_default())),
            reply: None,
        })
    }

    /// Parse a reply's OP_MSG body, its outcome fields gathered into `slot`.
    pub(crate) fn parse_reply(
        body: &'a [u8],
        slot: &'a mut ReplyFields<'a>,
    ) -> Result<OpMsg<'a>, DecodeError> {
        let mut name = None;
        let Sections {
            flags,
            body,
            sequences,
        } = parse_sections(body, |body| {
            validate_top_level_with(body, "kind 0 section", |key, value| {
                name.get_or_insert(key);
                slot.offer(key, value);
            })
        })?;
        let slot: &'a ReplyFields<'a> = slot;
        Ok(OpMsg {
            flags,
            body,
            sequences,
            name,
            database: None,
            lowering_key: None,
            reply: Some(slot),
        })
    }

    /// The command's database, from `$db` (a request's).
    pub fn database(&self) -> Option<&'a str> {
        self.database
    }

    /// The command's name: the body's first key.
    pub fn name(&self) -> Option<&'a str> {
        self.name
    }

    /// The fields of the body that a reply's outcome is made of (none, for a message
    /// parsed as a request).
    pub(crate) fn reply_fields(&self) -> &ReplyFields<'a> {
        self.reply.unwrap_or(&ReplyFields::NONE)
    }

    /// The request as the analyzer takes it. The database is `$db` (empty when a client
    /// left it out; the server would reject such a command anyway).
    pub fn to_command(&self) -> Result<MongoCommand, DecodeError> {
        self.to_command_in(&mut Databases::default())
    }

    /// [`to_command`](Self::to_command), its database name shared through `databases`.
    pub fn to_command_in(&self, databases: &mut Databases) -> Result<MongoCommand, DecodeError> {
        let mut sequences = Vec::with_capacity(self.sequences.len());
        for sequence in &self.sequences {
            let mut documents = Vec::new();
            if KEPT_SEQUENCES.contains(&sequence.identifier) {
                documents.reserve(sequence.count);
                for doc in sequence.documents() {
                    validate_top_level(doc, "sequence document")?;
                    documents.push(doc.to_owned());
                }
            }
            sequences.push(DocumentSequence {
                identifier: sequence.identifier.to_owned(),
                count: sequence.count,
                documents,
            });
        }
        let stripped = match self.name() {
            Some("insert") => inline_inserts(self.body),
            _ => None,
        };
        // The key was gathered from the body as it came.
        let lowering_key = self.lowering_key.filter(|_| stripped.is_none());
        let body = match stripped {
            Some((body, count)) => {
                sequences.push(DocumentSequence {
                    identifier: "documents".to_owned(),
                    count,
                    documents: Vec::new(),
                });
                body
            }
            None => bodies::copy(self.body),
        };
        Ok(MongoCommand {
            database: databases.name(self.database().unwrap_or_default()),
            body,
            sequences,
            lowering_key,
        })
    }
}

/// The flags and sections of an OP_MSG body; `walk` validates the kind 0 section (and
/// gathers from it what the caller needs).
fn parse_sections<'a>(
    body: &'a [u8],
    mut walk: impl FnMut(&'a RawDocument) -> Result<(), DecodeError>,
) -> Result<Sections<'a>, DecodeError> {
    let mut reader = Reader::new(body);
    let flags = MsgFlags(reader.u32("flagBits")?);
    let unknown = flags.0 & MsgFlags::REQUIRED & !MsgFlags::KNOWN_REQUIRED;
    if unknown != 0 {
        return Err(DecodeError::new(
            "bad_flags",
            format!("unknown required flag bits {unknown:#06x}"),
        ));
    }
    let mut sections = reader.rest();
    if flags.checksum_present() {
        let end = sections
            .len()
            .checked_sub(4)
            .ok_or_else(|| DecodeError::new("checksum", "checksumPresent set, checksum missing"))?;
        sections = sections.get(..end).unwrap_or_default();
    }

    let mut reader = Reader::new(sections);
    let mut found_body = None;
    let mut sequences = Vec::new();
    while !reader.is_empty() {
        match reader.u8("section kind")? {
            0 => {
                let doc = reader.document("kind 0 section")?;
                if found_body.is_some() {
                    return Err(DecodeError::new("bad_section", "two kind 0 sections"));
                }
                walk(doc)?;
                found_body = Some(doc);
            }
            1 => sequences.push(parse_sequence(&mut reader)?),
            kind => {
                return Err(DecodeError::new(
                    "bad_section",
                    format!("section kind {kind}"),
                ))
            }
        }
    }
    let body = found_body.ok_or_else(|| DecodeError::new("bad_section", "no kind 0 section"))?;
    Ok(Sections {
        flags,
        body,
        sequences,
    })
}

/// A kind 1 section, after its kind byte.
fn parse_sequence<'a>(reader: &mut Reader<'a>) -> Result<Sequence<'a>, DecodeError> {
    let declared = reader.i32("kind 1 size")?;
    // The size counts itself; the identifier needs at least its terminator.
    let content_len = usize::try_from(declared)
        .ok()
        .and_then(|size| size.checked_sub(4))
        .filter(|len| *len >= 1)
        .ok_or_else(|| DecodeError::new("bad_section", format!("kind 1 size {declared}")))?;
    let mut content = Reader::new(reader.take(content_len, "kind 1 section")?);
    let identifier = content.cstring("kind 1 identifier")?;
    let bytes = content.rest();
    let mut count = 0;
    while !content.is_empty() {
        content.document("sequence document")?;
        count += 1;
    }
    Ok(Sequence {
        identifier,
        count,
        bytes,
    })
}

/// An `insert`'s body whose documents came inline: the body without them, and their count.
/// `None` when there is nothing to strip.
fn inline_inserts(body: &RawDocument) -> Option<(RawDocumentBuf, usize)> {
    let documents = match body.get("documents").ok()?? {
        RawBsonRef::Array(documents) => documents,
        _ => return None,
    };
    let count = documents.into_iter().map_while(Result::ok).count();
    let mut stripped = RawDocumentBuf::new();
    for element in body.iter_elements().map_while(Result::ok) {
        if element.key().as_str() == "documents" {
            continue;
        }
        if let Ok(value) = element.value() {
            stripped.append(element.key(), value);
        }
    }
    // Keep the key's presence visible without its contents.
    stripped.append(cstr!("documents"), bson::RawArrayBuf::new());
    Some((stripped, count))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use bson::rawdoc;

    use super::*;
    use crate::mongo::testing::{msg_body, Section};

    #[test]
    fn parses_a_body_and_sequences() {
        let updates = [
            rawdoc! {"q": {"a": 1}, "u": {"$set": {"b": 2}}},
            rawdoc! {"q": {"a": 2}, "u": {"$set": {"b": 3}}, "multi": true},
        ];
        let body = msg_body(
            0,
            &[
                Section::Body(rawdoc! {"update": "orders", "$db": "app"}),
                Section::Sequence("updates", updates.to_vec()),
            ],
            false,
        );
        let msg = OpMsg::parse(&body).unwrap();
        assert_eq!(msg.body.get_str("update").unwrap(), "orders");
        assert_eq!(msg.database(), Some("app"));
        assert_eq!(msg.sequences.len(), 1);
        assert_eq!(msg.sequences[0].identifier, "updates");
        assert_eq!(msg.sequences[0].count, 2);

        let command = msg.to_command().unwrap();
        assert_eq!(&*command.database, "app");
        assert_eq!(command.sequences[0].documents, updates.to_vec());
    }

    #[test]
    fn inserted_documents_are_counted_not_kept() {
        let docs = vec![rawdoc! {"x": 1}, rawdoc! {"x": 2}, rawdoc! {"x": 3}];
        let body = msg_body(
            0,
            &[
                Section::Sequence("documents", docs),
                Section::Body(rawdoc! {"insert": "c", "$db": "d"}),
            ],
            false,
        );
        let command = OpMsg::parse(&body).unwrap().to_command().unwrap();
        assert_eq!(command.sequences.len(), 1);
        assert_eq!(command.sequences[0].identifier, "documents");
        assert_eq!(command.sequences[0].count, 3);
        assert!(command.sequences[0].documents.is_empty());
    }

    #[test]
    fn inline_insert_documents_are_stripped() {
        let body = msg_body(
            0,
            &[Section::Body(rawdoc! {
                "insert": "c",
                "documents": [{"secret": "v1"}, {"secret": "v2"}],
                "ordered": true,
                "$db": "d",
            })],
            false,
        );
        let command = OpMsg::parse(&body).unwrap().to_command().unwrap();
        assert_eq!(command.body.get_str("insert").unwrap(), "c");
        assert!(command.body.get_array("documents").unwrap().is_empty());
        assert!(command.body.get_bool("ordered").unwrap());
        assert_eq!(command.sequences[0].count, 2);
        assert!(!command
            .body
            .as_bytes()
            .windows(2)
            .any(|w| w == b"v1" || w == b"v2"));
    }

    #[test]
    fn the_validation_walk_gathers_what_the_direction_needs() {
        use crate::mongo::outcome::{command_outcome, Reading};

        let request = msg_body(
            0,
            &[Section::Body(
                rawdoc! {"count": "c", "$db": "app", "query": {}, "$db": "other"},
            )],
            false,
        );
        let request = OpMsg::parse(&request).unwrap();
        assert_eq!(request.name(), Some("count"));
        assert_eq!(request.database(), Some("app"));

        let reply = msg_body(
            0,
            &[Section::Body(
                rawdoc! {"n": 3, "ok": 1.0, "n": 9, "ok": 0.0},
            )],
            false,
        );
        let mut slot = ReplyFields::default();
        let reply = OpMsg::parse_reply(&reply, &mut slot).unwrap();
        assert_eq!(reply.name(), Some("n"));
        let outcome = command_outcome(Reading::of(request.name()), reply.reply_fields());
        assert!(outcome.is_ok());
        assert_eq!(outcome.returned, 3);

        // A request gathers no reply fields, a reply no key.
        assert!(command_outcome(Reading::Cursor, request.reply_fields())
            .error
            .is_some());
        assert_eq!(reply.lowering_key, None);

        // `$db` that is not a string names no database.
        let odd = msg_body(0, &[Section::Body(rawdoc! {"find": "c", "$db": 1})], false);
        assert_eq!(OpMsg::parse(&odd).unwrap().database(), None);
    }

    #[test]
    fn checksum_is_skipped_and_flags_read() {
        let flags = MsgFlags::CHECKSUM_PRESENT | MsgFlags::EXHAUST_ALLOWED;
        let body = msg_body(
            flags,
            &[Section::Body(rawdoc! {"find": "c", "$db": "d"})],
            true,
        );
        let msg = OpMsg::parse(&body).unwrap();
        assert!(msg.flags.checksum_present());
        assert!(msg.flags.exhaust_allowed());
        assert!(!msg.flags.more_to_come());
        assert_eq!(msg.body.get_str("find").unwrap(), "c");

        // The same bytes without the flag: the checksum is read as a section and rejected.
        let mut unflagged = body.clone();
        unflagged[0] = 0;
        assert!(both_directions_err(&unflagged));

        assert_eq!(
            OpMsg::parse(&[1, 0, 0, 0, 0]).unwrap_err().reason,
            "checksum"
        );
    }

    #[test]
    fn unknown_required_flags_are_rejected() {
        let body = msg_body(1 << 5, &[Section::Body(rawdoc! {"ping": 1})], false);
        assert_eq!(OpMsg::parse(&body).unwrap_err().reason, "bad_flags");
        assert!(both_directions_err(&body));
        // An unknown optional bit (17-31) is fine.
        let body = msg_body(1 << 20, &[Section::Body(rawdoc! {"ping": 1})], false);
        assert!(OpMsg::parse(&body).is_ok());
    }

    /// Whichever direction parses it, a malformed message fails for the same reason.
    fn both_directions_err(body: &[u8]) -> bool {
        let request = OpMsg::parse(body).err().map(|err| err.reason);
        let reply = OpMsg::parse_reply(body, &mut ReplyFields::default())
            .err()
            .map(|err| err.reason);
        assert_eq!(request, reply);
        request.is_some()
    }

    #[test]
    fn malformed_sections_are_rejected() {
        let reason = |body: &[u8]| {
            let reason = OpMsg::parse(body).unwrap_err().reason;
            let mut slot = ReplyFields::default();
            assert_eq!(
                OpMsg::parse_reply(body, &mut slot).unwrap_err().reason,
                reason
            );
            reason
        };
        // No sections at all.
        assert_eq!(reason(&[0, 0, 0, 0]), "bad_section");
        // Two bodies.
        let two = msg_body(
            0,
            &[
                Section::Body(rawdoc! {"a": 1}),
                Section::Body(rawdoc! {"b": 1}),
            ],
            false,
        );
        assert_eq!(reason(&two), "bad_section");
        // Unknown kind.
        let mut unknown = msg_body(0, &[Section::Body(rawdoc! {"a": 1})], false);
        unknown[4] = 2;
        assert_eq!(reason(&unknown), "bad_section");
        // A zero-length kind 1 section.
        let mut zero = msg_body(0, &[Section::Body(rawdoc! {"a": 1})], false);
        zero.extend_from_slice(&[1, 0, 0, 0, 0]);
        assert_eq!(reason(&zero), "bad_section");
        // A kind 1 section longer than the message.
        let mut long = msg_body(0, &[Section::Body(rawdoc! {"a": 1})], false);
        long.extend_from_slice(&[1, 0x40, 0, 0, 0, b'x', 0]);
        assert_eq!(reason(&long), "truncated");
        // A kind 1 section whose documents do not fill it exactly.
        let mut ragged = msg_body(0, &[Section::Body(rawdoc! {"a": 1})], false);
        ragged.extend_from_slice(&[1, 8, 0, 0, 0, b'x', 0, 7, 0]);
        assert!(both_directions_err(&ragged));
        // Garbage inside the body document.
        let mut garbage = msg_body(0, &[Section::Body(rawdoc! {"name": "value"})], false);
        // flagBits (4) + kind (1) + document length (4): the first element's type byte.
        garbage[9] = 0x42;
        assert_eq!(reason(&garbage), "bad_bson");
    }

    /// The key gathered on the validation walk is the analyzer's key of the command, bit for
    /// bit, whatever the body: `find` and `count` of every filter, sort, limit and
    /// projection, with regexes and `$type` (refused), other commands, a `$db` left out or
    /// given twice, sequences after the body.
    mod lowering_key {
        use bson::Bson;
        use indextap_analyzer::shape::mongo::cache::key;
        use indextap_analyzer::testing::mongo_commands::body;
        use proptest::prelude::*;

        use super::*;

        fn carried_and_computed(
            body: RawDocumentBuf,
            sequence: bool,
        ) -> (Option<u128>, Option<u128>) {
            let mut sections = vec![Section::Body(body)];
            if sequence {
                sections.push(Section::Sequence("documents", vec![rawdoc! {"x": 1}]));
            }
            let bytes = msg_body(0, &sections, false);
            let command = OpMsg::parse(&bytes).unwrap().to_command().unwrap();
            let carried = command.lowering_key.expect("a key is carried").get();
            let computed = key(&MongoCommand {
                lowering_key: None,
                ..command
            });
            (carried, computed)
        }

        #[test]
        fn a_large_body_carries_none_and_is_keyed_by_the_analyzer() {
            let list: Vec<Bson> = (0..4_000).map(Bson::Int32).collect();
            let find = indextap_analyzer::testing::mongo_commands::find(
                bson::doc! { "status": { "$in": list } },
                None,
                None,
                false,
            );
            let body = RawDocumentBuf::try_from(&find).unwrap();
            assert!(body.as_bytes().len() > MAX_KEYED_BODY);
            let bytes = msg_body(0, &[Section::Body(body)], false);
            let command = OpMsg::parse(&bytes).unwrap().to_command().unwrap();
            assert_eq!(command.lowering_key, None);
            assert!(key(&command).is_some());
        }

        #[test]
        fn a_driver_find_carries_the_key() {
            let find = indextap_analyzer::testing::mongo_commands::find(
                bson::doc! { "status": "A", "customerId": 3_i64 },
                Some(bson::doc! { "createdAt": -1 }),
                Some(Bson::Int32(20)),
                true,
            );
            let (carried, computed) =
                carried_and_computed(RawDocumentBuf::try_from(&find).unwrap(), false);
            assert!(carried.is_some());
            assert_eq!(carried, computed);
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn the_carried_key_is_the_analyzers(
                body in body(),
                second_db in proptest::option::of("[a-c]{0,2}"),
                sequence in any::<bool>(),
            ) {
                let mut body = RawDocumentBuf::try_from(&body).unwrap();
                if let Some(second_db) = second_db {
                    // A second `$db`: the first names the database.
                    body.append(bson::raw::cstr!("$db"), second_db);
                }
                let (carried, computed) = carried_and_computed(body, sequence);
                prop_assert_eq!(carried, computed);
            }
        }
    }
}
