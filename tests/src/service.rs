//! [`LoopbackService`]: an in-test TCP service on a loopback port, run on a thread of its own
//! (a current-thread tokio runtime) so a test's blocking calls never stall it. Dropping it
//! stops the accept loop and, with the runtime, every connection task.

use std::future::Future;
use std::net::SocketAddr;
use std::thread::JoinHandle;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use crate::ports::bound_loopback;

/// The running service.
pub struct LoopbackService {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl LoopbackService {
    /// Listens on a fresh loopback port; every accepted connection is handed to `on_accept`,
    /// whose future runs as a task of its own. `name` names the thread and the panics.
    pub fn start<F, Fut>(name: &str, mut on_accept: F) -> Self
    where
        F: FnMut(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = bound_loopback(name);
        let addr = listener
            .local_addr()
            .unwrap_or_else(|err| panic!("{name}: no local address: {err}"));
        let (stop, mut stopped) = oneshot::channel::<()>();
        let owner = name.to_string();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap_or_else(|err| panic!("{owner}: no runtime: {err}"));
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener)
                        .unwrap_or_else(|err| panic!("{owner}: register the listener: {err}"));
                    loop {
                        tokio::select! {
                            _ = &mut stopped => return,
                            accepted = listener.accept() => match accepted {
                                Ok((client, _)) => drop(tokio::spawn(on_accept(client))),
                                Err(err) => eprintln!("{owner}: accept failed: {err}"),
                            },
                        }
                    }
                });
            })
            .unwrap_or_else(|err| panic!("{name}: cannot spawn its thread: {err}"));
        Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for LoopbackService {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
