//! [`TestRecorder`]: a **test recorder**, a byte-copying TCP relay that keeps a copy of
//! everything it forwards, per connection and per direction.
//!
//! It is deliberately dumb: read, record, write, nothing parsed, nothing changed. Put one in
//! front of the proxy and one in front of the server, and the two recordings say exactly
//! which bytes the proxy received and which it passed on. It is a
//! [`LoopbackService`]: on a thread of its own, stopped with its connections when dropped.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indextap_tests::capture::poll_until;
use indextap_tests::service::LoopbackService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// One relayed connection, as far as it has gone.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Recording {
    /// Bytes read from the client, in order (all of them were written upstream).
    pub to_upstream: Vec<u8>,
    /// Bytes read from the upstream, in order.
    pub to_client: Vec<u8>,
    /// Whether the client → upstream direction has ended.
    pub client_done: bool,
    /// Whether the upstream → client direction has ended.
    pub upstream_done: bool,
}

impl Recording {
    /// Both directions have ended.
    pub fn is_closed(&self) -> bool {
        self.client_done && self.upstream_done
    }

    /// The bytes alone, for comparing two recorders' views of the same connection.
    pub fn bytes(&self) -> (Vec<u8>, Vec<u8>) {
        (self.to_upstream.clone(), self.to_client.clone())
    }
}

type Shared = Arc<Mutex<Recording>>;
type Log = Arc<Mutex<Vec<Shared>>>;

/// The running recorder.
pub struct TestRecorder {
    service: LoopbackService,
    log: Log,
}

impl TestRecorder {
    /// Listens on a fresh loopback port; every connection is relayed to `upstream`.
    pub fn start(upstream: SocketAddr) -> Self {
        let log = Log::default();
        let serving = log.clone();
        let service = LoopbackService::start("test-recorder", move |client| {
            let recording = Shared::default();
            lock(&serving).push(recording.clone());
            relay(client, upstream, recording)
        });
        Self { service, log }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.service.addr()
    }

    /// Every connection so far, in accept order.
    pub fn recordings(&self) -> Vec<Recording> {
        lock(&self.log)
            .iter()
            .map(|recording| lock(recording).clone())
            .collect()
    }

    /// Waits until `done` holds for the recordings; panics with them after `timeout`.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[Recording]) -> bool,
    ) -> Vec<Recording> {
        poll_until(&format!("test recorder: {what}"), timeout, || {
            let recordings = self.recordings();
            if done(&recordings) {
                return Ok(recordings);
            }
            let summary: Vec<String> = recordings
                .iter()
                .map(|r| {
                    format!(
                        "[{} bytes up{}, {} bytes down{}]",
                        r.to_upstream.len(),
                        if r.client_done { " (ended)" } else { "" },
                        r.to_client.len(),
                        if r.upstream_done { " (ended)" } else { "" },
                    )
                })
                .collect();
            Err(format!("connections: {summary:?}"))
        })
    }

    /// Waits until every connection has ended both ways, and returns them.
    pub fn wait_until_all_closed(&self, timeout: Duration) -> Vec<Recording> {
        self.wait_for("every connection closed", timeout, |recordings| {
            recordings.iter().all(Recording::is_closed)
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

async fn relay(client: TcpStream, upstream: SocketAddr, recording: Shared) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        let mut recording = lock(&recording);
        recording.client_done = true;
        recording.upstream_done = true;
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        copy(client_read, server_write, recording.clone(), Side::Client),
        copy(server_read, client_write, recording, Side::Upstream),
    );
}

#[derive(Clone, Copy)]
enum Side {
    /// Reading what the client sends.
    Client,
    /// Reading what the upstream sends.
    Upstream,
}

/// Copies until end of stream or an error, recording each chunk as it is read (before it is
/// written: a peer that is already gone does not make the record lie about what was sent).
async fn copy<R, W>(mut from: R, mut to: W, recording: Shared, side: Side)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 64 * 1024];
    let mut write_failed = false;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        {
            let mut recording = lock(&recording);
            match side {
                Side::Client => recording.to_upstream.extend_from_slice(chunk),
                Side::Upstream => recording.to_client.extend_from_slice(chunk),
            }
        }
        // Keep reading (and recording) even when the other side is gone.
        if !write_failed && to.write_all(chunk).await.is_err() {
            write_failed = true;
        }
    }
    let _ = to.shutdown().await;
    let mut recording = lock(&recording);
    match side {
        Side::Client => recording.client_done = true,
        Side::Upstream => recording.upstream_done = true,
    }
}
