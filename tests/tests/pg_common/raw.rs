//! [`Raw`]: a blocking socket to the proxy that speaks PostgreSQL's framing and nothing
//! more, for writing exactly the bytes a test needs (malformed messages, several Executes
//! before one Sync).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long a read may block before the test calls the connection hung.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Protocol 3.0.
pub const PROTOCOL_3: i32 = 196_608;

/// One backend message: its type and body.
pub type Message = (u8, Vec<u8>);

/// A raw connection to the proxy.
pub struct Raw {
    pub stream: TcpStream,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect to the proxy");
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("read timeout");
        Self { stream }
    }

    /// Connects and completes a trust-authenticated startup as `postgres`.
    pub fn started(addr: SocketAddr) -> Self {
        let mut raw = Self::connect(addr);
        raw.send(&startup_packet(&[
            ("user", "postgres"),
            ("database", "postgres"),
        ]));
        let replies = raw.until_ready();
        assert_eq!(
            replies.first().map(|(kind, body)| (*kind, body.clone())),
            Some((b'R', 0i32.to_be_bytes().to_vec())),
            "trust authentication: AuthenticationOk first"
        );
        raw
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// The next message; `None` at a clean end of stream.
    pub fn message(&mut self) -> io::Result<Option<Message>> {
        let mut kind = [0u8; 1];
        if self.stream.read(&mut kind)? == 0 {
            return Ok(None);
        }
        let mut length = [0u8; 4];
        self.stream.read_exact(&mut length)?;
        let length = usize::try_from(i32::from_be_bytes(length))
            .ok()
            .filter(|length| (4..=1 << 20).contains(length))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad reply length"))?;
        let mut body = vec![0u8; length - 4];
        self.stream.read_exact(&mut body)?;
        Ok(Some((kind[0], body)))
    }

    /// Messages up to and including ReadyForQuery.
    pub fn until_ready(&mut self) -> Vec<Message> {
        let mut replies = Vec::new();
        loop {
            match self.message() {
                Ok(Some(message)) => {
                    let done = message.0 == b'Z';
                    replies.push(message);
                    if done {
                        return replies;
                    }
                }
                Ok(None) => panic!("closed before ReadyForQuery; got {}", kinds(&replies)),
                Err(err) => panic!("no ReadyForQuery ({err}); got {}", kinds(&replies)),
            }
        }
    }

    /// Messages until the other side closes. A reset after the last message counts as a
    /// close (the server may exit with our bytes unread); a timeout fails the test.
    pub fn until_closed(&mut self) -> Vec<Message> {
        let mut replies = Vec::new();
        loop {
            match self.message() {
                Ok(Some(message)) => replies.push(message),
                Ok(None) => return replies,
                Err(err) if err.kind() == io::ErrorKind::ConnectionReset => return replies,
                Err(err) => panic!(
                    "the connection was not closed ({err}); got {}",
                    kinds(&replies)
                ),
            }
        }
    }

    /// A simple Query; its replies up to ReadyForQuery.
    pub fn query(&mut self, sql: &str) -> Vec<Message> {
        let mut body = sql.as_bytes().to_vec();
        body.push(0);
        self.send(&typed(b'Q', &body));
        self.until_ready()
    }
}

/// A typed frontend message with a correct length: the proxy's own test encoder.
pub use indextap_proxy::postgres::frame::encode as typed;

/// A protocol 3.0 StartupMessage, built as the proxy's own tests build it.
pub fn startup_packet(parameters: &[(&str, &str)]) -> Vec<u8> {
    indextap_proxy::postgres::frame::startup(PROTOCOL_3, parameters)
}

pub fn kinds(messages: &[Message]) -> String {
    messages.iter().map(|(kind, _)| *kind as char).collect()
}

/// An ErrorResponse's fields: (SQLSTATE, message).
pub fn error_fields(body: &[u8]) -> (String, String) {
    let (mut code, mut message) = (String::new(), String::new());
    for field in body.split(|byte| *byte == 0) {
        match field.split_first() {
            Some((b'C', value)) => code = String::from_utf8_lossy(value).into_owned(),
            Some((b'M', value)) => message = String::from_utf8_lossy(value).into_owned(),
            _ => {}
        }
    }
    (code, message)
}

/// The one ErrorResponse among `replies`.
#[track_caller]
pub fn the_error(replies: &[Message]) -> (String, String) {
    let errors: Vec<_> = replies.iter().filter(|(kind, _)| *kind == b'E').collect();
    assert_eq!(errors.len(), 1, "one ErrorResponse in {}", kinds(replies));
    error_fields(&errors[0].1)
}

fn cstring(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(text.as_bytes());
    out.push(0);
}

/// Parse: `statement` (`""`: the unnamed one) is `sql`, parameter types left to the server.
pub fn parse(statement: &str, sql: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstring(&mut body, statement);
    cstring(&mut body, sql);
    body.extend_from_slice(&0u16.to_be_bytes());
    typed(b'P', &body)
}

/// Bind: `portal` runs `statement` with text-format `parameters`.
pub fn bind(portal: &str, statement: &str, parameters: &[&str]) -> Vec<u8> {
    let mut body = Vec::new();
    cstring(&mut body, portal);
    cstring(&mut body, statement);
    body.extend_from_slice(&0u16.to_be_bytes());
    body.extend_from_slice(&(parameters.len() as u16).to_be_bytes());
    for parameter in parameters {
        body.extend_from_slice(&(parameter.len() as i32).to_be_bytes());
        body.extend_from_slice(parameter.as_bytes());
    }
    body.extend_from_slice(&0u16.to_be_bytes());
    typed(b'B', &body)
}

/// Execute: every row of `portal`.
pub fn execute(portal: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstring(&mut body, portal);
    body.extend_from_slice(&0i32.to_be_bytes());
    typed(b'E', &body)
}

/// Sync.
pub fn sync() -> Vec<u8> {
    typed(b'S', &[])
}
