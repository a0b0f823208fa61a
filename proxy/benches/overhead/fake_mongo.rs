//! A FAKE MongoDB server: it is not MongoDB and runs no query.
//!
//! It accepts connections, reads MsgHeader-framed requests, and answers each `find` with the
//! same canned OP_MSG reply (`{cursor: {firstBatch: [{_id: 1, status: "A"}], id: 0, ns:
//! "app.orders"}, ok: 1}`) whose `responseTo` is the request's `requestID`. That makes it as
//! cheap an upstream as there can be, so what a proxy in front of it costs shows plainly.
//! A driver's handshake and monitors get a canned standalone `hello` (OP_MSG, or OP_REPLY to
//! a legacy OP_QUERY), and any other command `{ok: 1}`.
//!
//! It runs on a tokio runtime of its own, on its own thread, so it does not share a
//! scheduler with the load client. Requests that arrive pipelined are answered in one write.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::wire::{
    canned_reply, command_name, hello_reply_body, ok_reply, op_msg, op_reply, stamp, FrameReader,
    Header, OP_MSG, OP_QUERY,
};

/// A running fake upstream. It lives until the process ends.
pub(crate) struct FakeMongo {
    pub addr: SocketAddr,
    served: Arc<AtomicU64>,
}

impl FakeMongo {
    /// Bind a loopback port and serve on a new thread.
    pub(crate) fn start() -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let served = Arc::new(AtomicU64::new(0));
        let counter = served.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("the fake upstream's runtime")?;
        std::thread::Builder::new()
            .name("fake-mongo".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(error) => return eprintln!("fake upstream: {error}"),
                    };
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        tokio::spawn(serve(stream, counter.clone()));
                    }
                })
            })
            .context("the fake upstream's thread")?;
        Ok(Self { addr, served })
    }

    /// Requests answered so far.
    pub(crate) fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

async fn serve(mut stream: TcpStream, served: Arc<AtomicU64>) {
    let _ = stream.set_nodelay(true);
    let replies = Replies::new();
    let mut reader = FrameReader::new();
    let mut out = Vec::with_capacity(replies.find.len() * 4);
    let mut next_id = 1i32;
    loop {
        let (header, frame) = match reader.next_frame(&mut stream).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(error) => return eprintln!("fake upstream: {error:#}"),
        };
        replies.answer(&header, &frame, next_id, &mut out);
        next_id = next_id.wrapping_add(1);
        let mut count = 1;
        while reader.has_frame() {
            match reader.next_frame(&mut stream).await {
                Ok(Some((header, frame))) => {
                    replies.answer(&header, &frame, next_id, &mut out);
                    next_id = next_id.wrapping_add(1);
                }
                _ => break,
            }
            count += 1;
        }
        if stream.write_all(&out).await.is_err() {
            return;
        }
        out.clear();
        served.fetch_add(count, Ordering::Relaxed);
    }
}

/// The canned answers, built once per connection.
struct Replies {
    /// To `find` (the load).
    find: Vec<u8>,
    /// To `hello` / `isMaster` sent as OP_MSG.
    hello: Vec<u8>,
    /// To the legacy handshake, an OP_QUERY `isMaster`.
    hello_legacy: Vec<u8>,
    /// To anything else.
    ok: Vec<u8>,
}

impl Replies {
    fn new() -> Self {
        let hello = hello_reply_body();
        Self {
            find: canned_reply(),
            hello: op_msg(0, 0, &hello),
            hello_legacy: op_reply(0, 0, &hello),
            ok: ok_reply(),
        }
    }

    /// Append the answer to one request, stamped with `id` and the request's id.
    fn answer(&self, request: &Header, frame: &[u8], id: i32, out: &mut Vec<u8>) {
        let reply = match (request.op_code, command_name(frame)) {
            (OP_MSG, Some(b"find")) => &self.find,
            (OP_MSG, Some(b"hello" | b"isMaster" | b"ismaster")) => &self.hello,
            (OP_QUERY, _) => &self.hello_legacy,
            _ => &self.ok,
        };
        let at = out.len();
        out.extend_from_slice(reply);
        stamp(&mut out[at..], id, request.request_id);
    }
}
