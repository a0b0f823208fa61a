//! Client → server messages, decoded for what the session needs.
//!
//! Parse and Close are decoded with pgwire's message types after their body has been walked
//! with [`Reader`] (pgwire panics on short bodies). Query, Bind and Execute, which come with
//! every statement run, are read in place, with no buffer copied for pgwire: a Query's text
//! goes straight into the shared string the session keeps; of Bind and Execute only the
//! portal and statement names (borrowed from the frame, copied only where the session keeps
//! them) and the parameter count leave the frame, never a parameter value. Password, CopyData, CopyFail and FunctionCall bodies are never read.
//!
//! A message whose body cannot be read still has a type, and the type alone keeps request
//! and reply pairing aligned (an unreadable Execute still queues an execution), so decoding
//! returns the message with its unreadable parts as `None`, plus the reason to count.

use std::borrow::Cow;
use std::sync::Arc;

use pgwire::messages::extendedquery::{
    Close, Parse, TARGET_TYPE_BYTE_PORTAL, TARGET_TYPE_BYTE_STATEMENT,
};

use super::decoded::{in_place, keep, with_pgwire, Decoded};
use super::frame::TypedFrame;
use super::reader::Reader;

/// A frontend message, with the parts the session keeps; names borrow from the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frontend<'a> {
    /// Simple query: the whole text, possibly several statements.
    Query(Option<Arc<str>>),
    /// Prepare a statement.
    Parse(Option<ParseInfo>),
    /// Bind a statement's parameters into a portal.
    Bind(Option<BindInfo<'a>>),
    /// Describe a statement or portal.
    Describe,
    /// Run a portal: its name.
    Execute(Option<Cow<'a, str>>),
    /// Close a statement or portal.
    Close(Option<CloseTarget>),
    /// End of an extended-protocol cycle.
    Sync,
    /// Ask for pending output.
    Flush,
    /// End of the session.
    Terminate,
    /// COPY FROM STDIN payload.
    CopyData,
    /// End of COPY FROM STDIN.
    CopyDone,
    /// Client aborted COPY FROM STDIN.
    CopyFail,
    /// Fast-path function call.
    FunctionCall,
    /// Password, SASL initial response or SASL response: never read.
    Password,
    /// A type byte PostgreSQL does not define for the frontend.
    Unknown,
}

/// A Parse message's statement name (`""` for the unnamed statement) and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseInfo {
    /// Statement name.
    pub name: String,
    /// SQL text.
    pub text: String,
}

/// A Bind message's names and parameter count. Values are not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindInfo<'a> {
    /// Portal name (`""`: the unnamed portal).
    pub portal: Cow<'a, str>,
    /// Statement name (`""`: the unnamed statement), as sent: the session compares it with
    /// the name it looked up last before decoding it (as [`lossy`] does) for a new lookup.
    pub statement: &'a [u8],
    /// How many parameter values were bound.
    pub parameters: usize,
}

/// What a Close message closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseTarget {
    /// A prepared statement, by name.
    Statement(String),
    /// A portal, by name.
    Portal(String),
}

impl Frontend<'_> {
    /// The kind number the session counts it by ([`Events::message_kind`]; the backend's
    /// follow) and its type name, a metric label; `None` for a type the protocol lacks.
    ///
    /// [`Events::message_kind`]: crate::tap::Events::message_kind
    #[inline]
    pub fn kind(&self) -> Option<(usize, &'static str)> {
        Some(match self {
            Frontend::Query(_) => (0, "Query"),
            Frontend::Parse(_) => (1, "Parse"),
            Frontend::Bind(_) => (2, "Bind"),
            Frontend::Describe => (3, "Describe"),
            Frontend::Execute(_) => (4, "Execute"),
            Frontend::Close(_) => (5, "Close"),
            Frontend::Sync => (6, "Sync"),
            Frontend::Flush => (7, "Flush"),
            Frontend::Terminate => (8, "Terminate"),
            Frontend::CopyData => (9, "CopyData"),
            Frontend::CopyDone => (10, "CopyDone"),
            Frontend::CopyFail => (11, "CopyFail"),
            Frontend::FunctionCall => (12, "FunctionCall"),
            Frontend::Password => (13, "PasswordMessage"),
            Frontend::Unknown => return None,
        })
    }
}

/// The frontend's kind numbers are below this; the backend's start here.
pub const KINDS: usize = 14;

/// Decodes one frontend frame. Never fails: unreadable parts become `None`.
#[inline]
pub fn decode<'a>(frame: &TypedFrame<'a>) -> Decoded<Frontend<'a>> {
    let mut skipped = None;
    let note = &mut skipped;
    let message = match frame.kind {
        b'Q' => Frontend::Query(keep(query(frame), note)),
        b'P' => Frontend::Parse(keep(parse(frame), note)),
        b'B' => Frontend::Bind(keep(bind(frame), note)),
        b'D' => Frontend::Describe,
        b'E' => Frontend::Execute(keep(execute(frame), note)),
        b'C' => Frontend::Close(keep(close(frame), note)),
        b'S' => Frontend::Sync,
        b'H' => Frontend::Flush,
        b'X' => Frontend::Terminate,
        b'd' => Frontend::CopyData,
        b'c' => Frontend::CopyDone,
        b'f' => Frontend::CopyFail,
        b'F' => Frontend::FunctionCall,
        b'p' => Frontend::Password,
        _ => Frontend::Unknown,
    };
    Decoded { message, skipped }
}

/// Reads Query in place: the text, lossily as pgwire reads it.
fn query(frame: &TypedFrame<'_>) -> Result<Arc<str>, &'static str> {
    let text = in_place(frame)?.long_cstr().ok_or("malformed_message")?;
    Ok(Arc::from(lossy(text).as_ref()))
}

fn parse(frame: &TypedFrame<'_>) -> Result<ParseInfo, &'static str> {
    let mut reader = Reader::new(frame.body);
    let shape = (|| {
        reader.cstr()?;
        reader.cstr()?;
        let types = reader.u16()?;
        reader.skip_items(usize::from(types), 4)
    })()
    .is_some();
    with_pgwire::<Parse>(frame, shape).map(|p| ParseInfo {
        name: p.name.unwrap_or_default(),
        text: p.query,
    })
}

/// Reads Execute in place: the portal name (the row limit is not needed).
fn execute<'a>(frame: &TypedFrame<'a>) -> Result<Cow<'a, str>, &'static str> {
    let mut reader = in_place(frame)?;
    let portal = reader.cstr().ok_or("malformed_message")?;
    reader.i32().ok_or("malformed_message")?;
    Ok(lossy(portal))
}

fn close(frame: &TypedFrame<'_>) -> Result<CloseTarget, &'static str> {
    let mut reader = Reader::new(frame.body);
    let shape = reader.u8().is_some() && reader.cstr().is_some();
    let close = with_pgwire::<Close>(frame, shape)?;
    let name = close.name.unwrap_or_default();
    match close.target_type {
        TARGET_TYPE_BYTE_STATEMENT => Ok(CloseTarget::Statement(name)),
        TARGET_TYPE_BYTE_PORTAL => Ok(CloseTarget::Portal(name)),
        _ => Err("malformed_message"),
    }
}

/// Reads Bind in place: names and the parameter count, skipping over the values.
fn bind<'a>(frame: &TypedFrame<'a>) -> Result<BindInfo<'a>, &'static str> {
    let mut reader = in_place(frame)?;
    let info = (|| {
        let portal = lossy(reader.cstr()?);
        let statement = reader.cstr()?;
        let formats = reader.u16()?;
        reader.skip_items(usize::from(formats), 2)?;
        let parameters = reader.u16()?;
        for _ in 0..parameters {
            match reader.i32()? {
                -1 => {}
                len => {
                    reader.take(usize::try_from(len).ok()?)?;
                }
            }
        }
        let result_formats = reader.u16()?;
        reader.skip_items(usize::from(result_formats), 2)?;
        Some(BindInfo {
            portal,
            statement,
            parameters: usize::from(parameters),
        })
    })();
    info.ok_or("malformed_message")
}

/// Names are decoded the way pgwire decodes them (lossily), so Parse and Bind agree on the
/// keys. Valid UTF-8, the usual case, is checked by `from_utf8`'s word-at-a-time ASCII scan;
/// `from_utf8_lossy` walks a text byte by byte.
pub fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    // The unnamed portal and statement, bound and run on every round trip by most drivers.
    if bytes.is_empty() {
        return Cow::Borrowed("");
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::postgres::decoded::decode_framed;

    #[test]
    fn query_and_parse() {
        let d = decode_framed(decode, b'Q', b"SELECT 1\0");
        assert_eq!(d.message, Frontend::Query(Some("SELECT 1".into())));
        assert_eq!(d.skipped, None);

        let d = decode_framed(decode, b'P', b"s1\0SELECT $1\0\0\x01\0\0\0\x17");
        assert_eq!(
            d.message,
            Frontend::Parse(Some(ParseInfo {
                name: "s1".into(),
                text: "SELECT $1".into()
            }))
        );
    }

    #[test]
    fn bind_counts_parameters_without_values() {
        // portal "", statement "s1", 1 format, 2 params (one NULL), 0 result formats
        let body = b"\0s1\0\0\x01\0\x01\0\x02\0\0\0\x05hello\xff\xff\xff\xff\0\0";
        let d = decode_framed(decode, b'B', body);
        assert_eq!(
            d.message,
            Frontend::Bind(Some(BindInfo {
                portal: "".into(),
                statement: b"s1",
                parameters: 2
            }))
        );
        assert!(!format!("{:?}", d.message).contains("hello"));
    }

    #[test]
    fn short_bodies_are_malformed_not_panics() {
        for kind in [b'Q', b'P', b'B', b'E', b'C'] {
            for body in [&b""[..], b"x", b"x\0", b"x\0y\0\0", b"\0\0\0\x05ab"] {
                let _ = decode_framed(decode, kind, body);
            }
        }
        let d = decode_framed(decode, b'P', b"s1\0SELECT\0");
        assert_eq!(d.message, Frontend::Parse(None));
        assert_eq!(d.skipped, Some("malformed_message"));
        let d = decode_framed(decode, b'B', b"\0\0\0\0\0\x01\xff\xff\xff\xfe\0\0");
        assert_eq!(d.message, Frontend::Bind(None));
        let d = decode_framed(decode, b'C', b"Zx\0");
        assert_eq!(d.message, Frontend::Close(None));
    }

    #[test]
    fn pgwire_size_caps_are_skips() {
        // Close's pgwire limit is 10 000 bytes; a longer name is skipped, not fatal.
        let mut body = vec![b'S'];
        body.extend_from_slice(&[b'p'; 20_000]);
        body.push(0);
        let d = decode_framed(decode, b'C', &body);
        assert_eq!(d.message, Frontend::Close(None));
        assert_eq!(d.skipped, Some("oversize_skipped"));
    }

    #[test]
    fn execute_is_read_in_place() {
        let d = decode_framed(decode, b'E', b"portal_1\0\0\0\0\x0a");
        assert_eq!(d.message, Frontend::Execute(Some("portal_1".into())));
        assert_eq!(d.skipped, None);
        let d = decode_framed(decode, b'E', b"\0\0\0\0\0");
        assert_eq!(d.message, Frontend::Execute(Some("".into())));
        // A long portal name is read like a short one: nothing is copied for a decoder.
        let mut body = vec![b'p'; 20_000];
        body.extend_from_slice(b"\0\0\0\0\0");
        assert!(
            matches!(decode_framed(decode, b'E', &body).message, Frontend::Execute(Some(name)) if name.len() == 20_000)
        );
        assert_eq!(
            decode_framed(decode, b'E', b"p\0\0\0").skipped,
            Some("malformed_message")
        );
    }

    #[test]
    fn incomplete_frames_keep_their_type() {
        let mut bytes = crate::postgres::frame::encode(b'B', &[0u8; 100]);
        bytes.truncate(20);
        let d = decode(&TypedFrame::parse(&bytes).unwrap());
        assert_eq!(d.message, Frontend::Bind(None));
        assert_eq!(d.skipped, Some("oversize_skipped"));
    }

    #[test]
    fn unknown_types_are_unknown() {
        assert_eq!(decode_framed(decode, b'z', b"").message, Frontend::Unknown);
        assert_eq!(
            decode_framed(decode, b'p', b"secret\0").message,
            Frontend::Password
        );
    }
}
