//! Blocking HTTP calls to an admin API (ureq), with the status kept rather than turned into an
//! error, so a test can assert on a 404 or a 503 as easily as on a 200.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use crate::poll::poll;

/// Per-request timeout: an admin endpoint that takes longer is a bug worth a failure.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: String,
}

impl HttpReply {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_str(&self.body).context("body is not JSON")
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(REQUEST_TIMEOUT).build()
}

fn url(addr: SocketAddr, path: &str) -> String {
    let slash = if path.starts_with('/') { "" } else { "/" };
    format!("http://{addr}{slash}{path}")
}

fn into_reply(result: Result<ureq::Response, ureq::Error>) -> anyhow::Result<HttpReply> {
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(ureq::Error::Transport(transport)) => bail!("transport error: {transport}"),
    };
    let status = response.status();
    let content_type = response.header("content-type").map(str::to_string);
    let body = response.into_string().context("reading the body")?;
    Ok(HttpReply {
        status,
        content_type,
        body,
    })
}

/// `GET path` on `addr`; any status is a reply.
pub fn get(addr: SocketAddr, path: &str) -> anyhow::Result<HttpReply> {
    into_reply(agent().get(&url(addr, path)).call())
}

/// `POST path` with a JSON body; any status is a reply.
pub fn post_json(
    addr: SocketAddr,
    path: &str,
    body: &serde_json::Value,
) -> anyhow::Result<HttpReply> {
    into_reply(agent().post(&url(addr, path)).send_json(body))
}

/// `GET path`, requiring a 2xx, as text.
pub fn get_text(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let reply = get(addr, path)?;
    if !reply.is_success() {
        bail!("GET {path} answered {}: {}", reply.status, reply.body);
    }
    Ok(reply.body)
}

/// `GET path`, requiring a 2xx, as JSON.
pub fn get_json(addr: SocketAddr, path: &str) -> anyhow::Result<serde_json::Value> {
    let reply = get(addr, path)?;
    if !reply.is_success() {
        bail!("GET {path} answered {}: {}", reply.status, reply.body);
    }
    reply.json()
}

/// Polls `GET path` until it answers 2xx. `still_starting` is asked before every attempt and
/// ends the wait with its error (for example, "the process exited").
pub(crate) fn wait_until_ok(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
    mut still_starting: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut last = String::new();
    let answered = poll(
        timeout,
        Duration::from_millis(100),
        || -> anyhow::Result<_> {
            still_starting()?;
            last = match get(addr, path) {
                Ok(reply) if reply.is_success() => return Ok(Some(())),
                Ok(reply) => format!("status {}", reply.status),
                Err(err) => format!("{err:#}"),
            };
            Ok(None)
        },
    )?;
    answered.ok_or_else(|| anyhow!("GET {path} on {addr} not OK within {timeout:?} (last: {last})"))
}
