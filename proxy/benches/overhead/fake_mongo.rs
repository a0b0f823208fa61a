//! A FAKE MongoDB server: it is not MongoDB and runs no query.
//!
//! It accepts connections, reads MsgHeader-framed requests, and answers each with the same
//! canned OP_MSG reply (`{cursor: {firstBatch: [{_id: 1, status: "A"}], id: 0, ns:
//! "app.orders"}, ok: 1}`) whose `responseTo` is the request's `requestID`. That makes it as
//! cheap an upstream as there can be, so what a proxy in front of it costs shows plainly.
//!
//! It runs on a tokio runtime of its own, on its own thread, so it does not share a
//! scheduler with the load client. Requests that arrive pipelined are answered in one write.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::wire::{canned_reply, stamp, FrameReader};

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
    let reply = canned_reply();
    let mut reader = FrameReader::new();
    let mut out = Vec::with_capacity(reply.len() * 4);
    let mut next_id = 1i32;
    loop {
        let header = match reader.next(&mut stream).await {
            Ok(Some(header)) => header,
            Ok(None) => return,
            Err(error) => return eprintln!("fake upstream: {error:#}"),
        };
        let mut answer = |request_id: i32, out: &mut Vec<u8>| {
            let at = out.len();
            out.extend_from_slice(&reply);
            stamp(&mut out[at..], next_id, request_id);
            next_id = next_id.wrapping_add(1);
        };
        answer(header.request_id, &mut out);
        let mut count = 1;
        while reader.has_frame() {
            match reader.next(&mut stream).await {
                Ok(Some(header)) => answer(header.request_id, &mut out),
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
