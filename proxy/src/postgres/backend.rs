//! Server → client messages, decoded for what the session needs.
//!
//! Only three replies carry something the session keeps: CommandComplete (its tag),
//! ReadyForQuery (the transaction status) and ErrorResponse (its SQLSTATE). All three are
//! read in place, without pgwire: they come with every statement, and pgwire's decoders need
//! the frame copied into a buffer of their own and return the tag as a new `String`, which
//! cost more than the rest of a reply's inspection. The ErrorResponse is walked and only the
//! `C` field is read: the message, detail, hint and where fields can quote values, so they
//! are never copied. DataRow, NoticeResponse, NotificationResponse, ParameterStatus,
//! BackendKeyData and Authentication are recognised by their type byte and their bodies are
//! not read.

use pgwire::messages::response::TransactionStatus;

use super::decoded::{in_place, keep, Decoded};
use super::frame::TypedFrame;
use super::frontend::KINDS as FRONTEND_KINDS;
use super::tag::CommandRows;

/// The error code recorded when an ErrorResponse carries no well-formed SQLSTATE.
pub const UNKNOWN_SQLSTATE: &str = "unknown";

/// An ErrorResponse's SQLSTATE: five digits or upper-case letters, or unknown. Kept inline,
/// so a reply is decoded without an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlState(Option<[u8; 5]>);

impl SqlState {
    /// The code recorded when an ErrorResponse carries no well-formed SQLSTATE.
    pub const UNKNOWN: SqlState = SqlState(None);

    /// A well-formed code; anything else is not passed on, so a malformed field can never
    /// smuggle text into the error label.
    pub fn parse(code: &[u8]) -> Option<Self> {
        let code: [u8; 5] = code.try_into().ok()?;
        code.iter()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
            .then_some(SqlState(Some(code)))
    }

    /// The code, or [`UNKNOWN_SQLSTATE`].
    pub fn as_str(&self) -> &str {
        self.0
            .as_ref()
            .and_then(|code| std::str::from_utf8(code).ok())
            .unwrap_or(UNKNOWN_SQLSTATE)
    }
}

/// A backend message, with the parts the session keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Authentication request or result.
    Authentication,
    /// A run-time parameter's value.
    ParameterStatus,
    /// Cancellation key.
    BackendKeyData,
    /// The server's answer to a newer protocol minor version.
    NegotiateProtocolVersion,
    /// Parse succeeded.
    ParseComplete,
    /// Bind succeeded.
    BindComplete,
    /// Close succeeded.
    CloseComplete,
    /// Execute stopped at its row limit; the portal can be run again.
    PortalSuspended,
    /// A statement finished: the rows its tag reports.
    CommandComplete(Option<CommandRows>),
    /// The query string was empty.
    EmptyQueryResponse,
    /// The server waits for the next cycle: the transaction status.
    ReadyForQuery(Option<TransactionStatus>),
    /// A statement failed: its SQLSTATE only.
    ErrorResponse(SqlState),
    /// A notice (never read).
    NoticeResponse,
    /// LISTEN/NOTIFY payload (never read).
    NotificationResponse,
    /// Parameter types of a described statement.
    ParameterDescription,
    /// Result columns.
    RowDescription,
    /// One result row (never read).
    DataRow,
    /// The described statement returns no rows.
    NoData,
    /// COPY TO STDOUT payload.
    CopyData,
    /// End of COPY TO STDOUT.
    CopyDone,
    /// COPY FROM STDIN started.
    CopyInResponse,
    /// COPY TO STDOUT started.
    CopyOutResponse,
    /// Replication COPY started.
    CopyBothResponse,
    /// Fast-path function result.
    FunctionCallResponse,
    /// A type byte PostgreSQL does not define for the backend.
    Unknown,
}

impl Backend {
    /// The kind number the session counts it by ([`Events::message_kind`]; after the
    /// frontend's) and its type name, a metric label; `None` for a type the protocol lacks.
    ///
    /// [`Events::message_kind`]: crate::tap::Events::message_kind
    #[inline]
    pub fn kind(&self) -> Option<(usize, &'static str)> {
        let (number, name) = match self {
            Backend::Authentication => (0, "Authentication"),
            Backend::ParameterStatus => (1, "ParameterStatus"),
            Backend::BackendKeyData => (2, "BackendKeyData"),
            Backend::NegotiateProtocolVersion => (3, "NegotiateProtocolVersion"),
            Backend::ParseComplete => (4, "ParseComplete"),
            Backend::BindComplete => (5, "BindComplete"),
            Backend::CloseComplete => (6, "CloseComplete"),
            Backend::PortalSuspended => (7, "PortalSuspended"),
            Backend::CommandComplete(_) => (8, "CommandComplete"),
            Backend::EmptyQueryResponse => (9, "EmptyQueryResponse"),
            Backend::ReadyForQuery(_) => (10, "ReadyForQuery"),
            Backend::ErrorResponse(_) => (11, "ErrorResponse"),
            Backend::NoticeResponse => (12, "NoticeResponse"),
            Backend::NotificationResponse => (13, "NotificationResponse"),
            Backend::ParameterDescription => (14, "ParameterDescription"),
            Backend::RowDescription => (15, "RowDescription"),
            Backend::DataRow => (16, "DataRow"),
            Backend::NoData => (17, "NoData"),
            Backend::CopyData => (18, "CopyData"),
            Backend::CopyDone => (19, "CopyDone"),
            Backend::CopyInResponse => (20, "CopyInResponse"),
            Backend::CopyOutResponse => (21, "CopyOutResponse"),
            Backend::CopyBothResponse => (22, "CopyBothResponse"),
            Backend::FunctionCallResponse => (23, "FunctionCallResponse"),
            Backend::Unknown => return None,
        };
        Some((FRONTEND_KINDS + number, name))
    }
}

/// Decodes one backend frame. Never fails: unreadable parts become `None`.
#[inline]
pub fn decode(frame: &TypedFrame<'_>) -> Decoded<Backend> {
    let mut skipped = None;
    let message = match frame.kind {
        b'R' => Backend::Authentication,
        b'S' => Backend::ParameterStatus,
        b'K' => Backend::BackendKeyData,
        b'v' => Backend::NegotiateProtocolVersion,
        b'1' => Backend::ParseComplete,
        b'2' => Backend::BindComplete,
        b'3' => Backend::CloseComplete,
        b's' => Backend::PortalSuspended,
        b'C' => Backend::CommandComplete(keep(command_complete(frame), &mut skipped).flatten()),
        b'I' => Backend::EmptyQueryResponse,
        b'Z' => Backend::ReadyForQuery(keep(ready_for_query(frame), &mut skipped)),
        b'E' => {
            Backend::ErrorResponse(keep(sqlstate(frame), &mut skipped).unwrap_or(SqlState::UNKNOWN))
        }
        b'N' => Backend::NoticeResponse,
        b'A' => Backend::NotificationResponse,
        b't' => Backend::ParameterDescription,
        b'T' => Backend::RowDescription,
        b'D' => Backend::DataRow,
        b'n' => Backend::NoData,
        b'd' => Backend::CopyData,
        b'c' => Backend::CopyDone,
        b'G' => Backend::CopyInResponse,
        b'H' => Backend::CopyOutResponse,
        b'W' => Backend::CopyBothResponse,
        b'V' => Backend::FunctionCallResponse,
        _ => Backend::Unknown,
    };
    Decoded { message, skipped }
}

/// The tag, read in place (a valid tag is ASCII).
fn command_complete(frame: &TypedFrame<'_>) -> Result<Option<CommandRows>, &'static str> {
    let tag = in_place(frame)?.cstr().ok_or("malformed_message")?;
    Ok(CommandRows::from_tag(tag))
}

fn ready_for_query(frame: &TypedFrame<'_>) -> Result<TransactionStatus, &'static str> {
    let status = in_place(frame)?.u8().ok_or("malformed_message")?;
    TransactionStatus::try_from(status).map_err(|_| "malformed_message")
}

/// Walks the fields of an ErrorResponse and returns the SQLSTATE (`C`) alone.
fn sqlstate(frame: &TypedFrame<'_>) -> Result<SqlState, &'static str> {
    let mut reader = in_place(frame)?;
    let mut code = None;
    loop {
        match reader.u8() {
            Some(0) => break,
            Some(field) => {
                let value = reader.cstr().ok_or("malformed_message")?;
                if field == b'C' {
                    code = Some(value);
                }
            }
            None => return Err("malformed_message"),
        }
    }
    code.and_then(SqlState::parse).ok_or("malformed_message")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::postgres::decoded::decode_framed;

    #[test]
    fn error_response_keeps_the_sqlstate_only() {
        let body = b"SERROR\0VERROR\0C23505\0Mduplicate key value (email)=(alice@example.com)\0Dsecret detail\0\0";
        let d = decode_framed(decode, b'E', body);
        assert_eq!(
            d.message,
            Backend::ErrorResponse(SqlState::parse(b"23505").unwrap())
        );
        match d.message {
            Backend::ErrorResponse(code) => assert_eq!(code.as_str(), "23505"),
            other => panic!("{other:?}"),
        }
        assert_eq!(d.skipped, None);
        let debug = format!("{d:?}");
        assert!(!debug.contains("alice"));
        assert!(!debug.contains("secret"));
    }

    #[test]
    fn bad_sqlstates_are_unknown() {
        for body in [
            &b"SERROR\0Mno code\0\0"[..],
            b"Calice@example.com\0\0",
            b"C2350\0\0",
            b"C23a05\0\0",
            b"C23505\0",
            b"C23505",
            b"",
        ] {
            let d = decode_framed(decode, b'E', body);
            assert_eq!(d.message, Backend::ErrorResponse(SqlState::UNKNOWN));
            assert_eq!(SqlState::UNKNOWN.as_str(), UNKNOWN_SQLSTATE);
            assert_eq!(d.skipped, Some("malformed_message"));
        }
    }

    #[test]
    fn command_complete_and_ready_for_query() {
        let d = decode_framed(decode, b'C', b"UPDATE 3\0");
        assert_eq!(
            d.message,
            Backend::CommandComplete(Some(CommandRows::Affected(3)))
        );
        let d = decode_framed(decode, b'Z', b"T");
        assert_eq!(
            d.message,
            Backend::ReadyForQuery(Some(TransactionStatus::Transaction))
        );
        let d = decode_framed(decode, b'Z', b"");
        assert_eq!(d.message, Backend::ReadyForQuery(None));
        let d = decode_framed(decode, b'Z', b"?");
        assert_eq!(d.message, Backend::ReadyForQuery(None));
        assert_eq!(d.skipped, Some("malformed_message"));
    }

    #[test]
    fn data_rows_are_not_read() {
        let d = decode_framed(decode, b'D', b"\0\x01\0\0\0\x03abc");
        assert_eq!(d.message, Backend::DataRow);
        let d = decode_framed(decode, b'D', b"");
        assert_eq!(d.message, Backend::DataRow);
        assert_eq!(decode_framed(decode, b'!', b"").message, Backend::Unknown);
    }
}
