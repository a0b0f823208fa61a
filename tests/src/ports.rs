//! Free loopback ports, and waiting for a port to accept connections.
//!
//! A port found free can be taken by someone else before our child binds it. Two things keep
//! that rare: the OS hands out ports in a rotating order, and this process never hands out
//! the same port twice (two fixtures started at once would otherwise race for it). The
//! fixtures also retry with a new port when their child reports "address in use".

use std::collections::HashSet;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::poll::poll;

/// How often [`wait_for_port`] retries.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// A TCP port on 127.0.0.1 that was free a moment ago and that this process has not handed
/// out before.
pub fn free_port() -> u16 {
    for _ in 0..64 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|err| panic!("cannot bind any loopback port: {err}"));
        let port = match listener.local_addr() {
            Ok(addr) => addr.port(),
            Err(err) => panic!("bound socket has no local address: {err}"),
        };
        let mut ports = handed_out()
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if ports.insert(port) {
            return port;
        }
    }
    panic!("the OS keeps returning ports this process already handed out");
}

/// A loopback address with a [`free_port`].
pub fn free_addr() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()))
}

/// A listener on a fresh loopback port, non-blocking (for a tokio runtime to take over);
/// panics when none can be bound.
pub fn bound_loopback(what: &str) -> TcpListener {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| {
            listener.set_nonblocking(true)?;
            Ok(listener)
        })
        .unwrap_or_else(|err| panic!("{what}: listen: {err}"))
}

/// Waits until `addr` accepts a TCP connection, or fails with `TimedOut` after `timeout`.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> io::Result<()> {
    wait_for_port_while(addr, timeout, || Ok(()))
}

/// Like [`wait_for_port`], but asks `still_starting` before every attempt and gives up with
/// its error (for example, "the child exited") as soon as it returns one.
pub(crate) fn wait_for_port_while(
    addr: SocketAddr,
    timeout: Duration,
    mut still_starting: impl FnMut() -> io::Result<()>,
) -> io::Result<()> {
    let accepted = poll(timeout, POLL_INTERVAL, || -> io::Result<_> {
        still_starting()?;
        Ok(TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok())
    })?;
    accepted.map(drop).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{addr} did not accept connections within {timeout:?}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_and_bindable() {
        let ports: HashSet<u16> = (0..8).map(|_| free_port()).collect();
        assert_eq!(ports.len(), 8, "never the same port twice: {ports:?}");
        for port in ports {
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("the port is bindable");
        }
    }

    #[test]
    fn wait_for_port_sees_a_listener_and_times_out_without_one() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let open = listener.local_addr().expect("addr");
        wait_for_port(open, Duration::from_secs(5)).expect("listener is up");

        let closed = free_addr();
        let err = wait_for_port(closed, Duration::from_millis(200)).expect_err("nothing listens");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
