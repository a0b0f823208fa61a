use super::*;
use crate::admin::metrics::Metrics;
use crate::framing::tests::LenPrefix;
use std::task::Waker;

use tokio::io::{duplex, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::tap::TapItem;

/// A rewrite that looks at everything and changes nothing.
struct LookOnly;

impl ReplyRewrite for LookOnly {
    fn request(&mut self, _: &[u8]) -> bool {
        false
    }
    fn requests_unframed(&mut self) {}
    fn reply(&mut self, _: &[u8]) -> Option<Vec<u8>> {
        None
    }
    fn awaiting(&self) -> bool {
        true
    }
}

/// A rewrite that awaits a reply after every other request, so that the replies switch
/// between the streaming and the store-and-forward paths wherever the chunks fall.
#[derive(Default)]
struct Alternating {
    awaiting: bool,
}

impl ReplyRewrite for Alternating {
    fn request(&mut self, _: &[u8]) -> bool {
        self.awaiting = !self.awaiting;
        false
    }
    fn requests_unframed(&mut self) {}
    fn reply(&mut self, _: &[u8]) -> Option<Vec<u8>> {
        None
    }
    fn awaiting(&self) -> bool {
        self.awaiting
    }
}

/// How many of `frames(count)` fit under a 1024-byte inspection cap.
fn inspectable(count: usize) -> usize {
    (0..count).filter(|i| (i * 37) % 3000 + 4 <= 1024).count()
}

fn frames(count: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..count {
        let body = vec![(i % 251) as u8; (i * 37) % 3000];
        out.extend_from_slice(&((body.len() + 4) as u32).to_le_bytes());
        out.extend_from_slice(&body);
    }
    out
}

/// Write `data` in uneven chunks, then half-close.
async fn feed<W: AsyncWrite + Unpin>(mut w: W, data: Vec<u8>) {
    let mut offset = 0;
    let mut step = 1;
    while offset < data.len() {
        let end = (offset + step).min(data.len());
        w.write_all(&data[offset..end]).await.expect("write");
        offset = end;
        step = step * 7 % 5003 + 1;
    }
    w.shutdown().await.expect("shutdown");
}

async fn drain<R: AsyncRead + Unpin>(mut r: R) -> Vec<u8> {
    let mut out = Vec::new();
    r.read_to_end(&mut out).await.expect("read");
    out
}

/// Relay `requests` and `replies` through length-prefixed framers with a 1024-byte
/// inspection cap, fed in uneven chunks, and check every byte arrived unchanged.
async fn relay_through(
    metrics: &ListenerMetrics,
    tap: Tap,
    rewrite: Option<Box<dyn ReplyRewrite>>,
    budget: InspectBudget,
    requests: Vec<u8>,
    replies: Vec<u8>,
) {
    let (client, proxy_client) = duplex(8192);
    let (proxy_upstream, upstream) = duplex(8192);
    let relay = Relay {
        request_framer: LenPrefix,
        reply_framer: LenPrefix,
        max_inspect: 1024,
        budget,
        reply_rewrite: rewrite,
        tap: Some(tap),
        metrics: metrics.clone(),
    };
    let (client_read, client_write) = tokio::io::split(client);
    let (upstream_read, upstream_write) = tokio::io::split(upstream);
    let relayed = tokio::spawn(relay.run(proxy_client, proxy_upstream));
    let (_, _, at_upstream, at_client) = tokio::join!(
        feed(client_write, requests.clone()),
        feed(upstream_write, replies.clone()),
        drain(upstream_read),
        drain(client_read),
    );
    relayed.await.expect("join").expect("relay");
    assert_eq!(at_upstream, requests, "client → upstream bytes changed");
    assert_eq!(at_client, replies, "upstream → client bytes changed");
}

/// Relay 400 frames up and 300 down; (frames tapped, oversize headers tapped, dropped).
async fn relay_once(
    rewrite: Option<Box<dyn ReplyRewrite>>,
    tap_capacity: usize,
) -> (usize, usize, u64) {
    let metrics = Metrics::new().listener("test", "test");
    let budget = InspectBudget::unlimited();
    let mut receiver = relay_frames(&metrics, rewrite, tap_capacity, budget).await;
    let (tapped, oversize_headers) = tally(&mut receiver);
    if tap_capacity > 1000 {
        assert!(oversize_headers > 0, "oversize frames must be announced");
    }
    (tapped, oversize_headers, metrics.tap_dropped.get())
}

/// Relay 400 frames up and 300 down through a tap of `tap_capacity`; its receiving end.
async fn relay_frames(
    metrics: &ListenerMetrics,
    rewrite: Option<Box<dyn ReplyRewrite>>,
    tap_capacity: usize,
    budget: InspectBudget,
) -> crate::tap::TapReceiver {
    let (tap, receiver) = Tap::channel(tap_capacity, metrics.tap_dropped.clone());
    relay_through(metrics, tap, rewrite, budget, frames(400), frames(300)).await;
    receiver
}

/// What the inspector was handed, drained: (frames tapped, oversize headers).
fn tally(receiver: &mut crate::tap::TapReceiver) -> (usize, usize) {
    let mut tapped = 0;
    let mut oversize_headers = 0;
    while let Some(item) = receiver.try_recv() {
        match item {
            TapItem::Frame(_) => tapped += 1,
            TapItem::Frames(frames) => tapped += frames.len(),
            TapItem::Oversize(header) => {
                assert_eq!(
                    header.bytes.len(),
                    4,
                    "only the header of an oversize frame"
                );
                oversize_headers += 1;
            }
        }
    }
    (tapped, oversize_headers)
}

/// Frames spread over reads while other connections hold the whole budget are forwarded
/// unchanged and announced by header, counted; once room is back they are gathered again.
#[tokio::test]
async fn frames_without_budget_room_are_forwarded_counted_and_later_gathered_again() {
    let registry = Metrics::new();
    let metrics = registry.listener("budget", "test");
    // Room for all the frames this relay gathers (they stay held in the tap until it is
    // drained, at the end), but first the other connections hold all of it.
    let budget = registry.inspect_budget(1 << 20);
    let others = budget.reserve(1 << 20).expect("the whole budget");
    let mut receiver = relay_frames(&metrics, None, 10_000, budget.clone()).await;
    let (tapped, headers) = tally(&mut receiver);
    let exhausted = metrics.event_counter("inspect_budget_exhausted").get();
    let oversize = metrics.event_counter("oversize_skipped").get();
    assert!(exhausted > 0, "some frames were spread over reads");
    assert_eq!(tapped + headers, 700, "each frame tapped, or its header");
    assert_eq!(headers as u64, exhausted + oversize);
    assert_eq!(
        tapped + exhausted as usize,
        inspectable(400) + inspectable(300)
    );
    drop(others);
    assert_eq!(budget.held(), 0);
    let mut receiver = relay_frames(&metrics, None, 10_000, budget.clone()).await;
    let (tapped, _) = tally(&mut receiver);
    assert_eq!(tapped, inspectable(400) + inspectable(300));
    assert_eq!(
        metrics.event_counter("inspect_budget_exhausted").get(),
        exhausted
    );
    let text = registry.encode();
    assert!(text.contains("indextap_inspect_held_bytes 0"), "{text}");
    assert!(
        text.contains("indextap_inspect_budget_bytes 1048576"),
        "{text}"
    );
}

/// Long reads are charged to the budget while their frames wait for inspection; without
/// room their frames are dropped and counted like those of a full queue, and forwarded.
#[tokio::test]
async fn long_reads_are_charged_while_queued_and_dropped_without_room() {
    async fn relay_burst(budget: &InspectBudget, metrics: &ListenerMetrics) -> usize {
        let stream: Vec<u8> = (0..2000).flat_map(|_| frames(4)).collect();
        let (mut client, proxy_client) = duplex(1 << 20);
        let (proxy_upstream, upstream) = duplex(1 << 20);
        // All of it waits before the relay's first read: reads as long as the arena.
        client.write_all(&stream).await.expect("write");
        client.shutdown().await.expect("shutdown");
        let (tap, mut receiver) = Tap::channel(100_000, metrics.tap_dropped.clone());
        let relay = Relay {
            request_framer: LenPrefix,
            reply_framer: LenPrefix,
            max_inspect: 1024,
            budget: budget.clone(),
            reply_rewrite: None,
            tap: Some(tap),
            metrics: metrics.clone(),
        };
        let (upstream_read, upstream_write) = tokio::io::split(upstream);
        let relayed = tokio::spawn(relay.run(proxy_client, proxy_upstream));
        let (at_upstream, _) = tokio::join!(drain(upstream_read), async move {
            let mut upstream_write = upstream_write;
            upstream_write.shutdown().await.expect("shutdown");
        });
        relayed.await.expect("join").expect("relay");
        assert_eq!(at_upstream, stream, "bytes changed");
        assert!(budget.held() > 0, "queued frames hold their reads' room");
        let (tapped, _) = tally(&mut receiver);
        tapped
    }
    let registry = Metrics::new();
    let metrics = registry.listener("reads", "test");
    let budget = registry.inspect_budget(1 << 20);
    let others = budget.reserve(1 << 20).expect("the whole budget");
    let tapped = relay_burst(&budget, &metrics).await;
    assert_eq!(tapped, 0, "no long read found room");
    assert_eq!(
        metrics.tap_dropped.get(),
        2000 * inspectable(4) as u64,
        "each frame dropped, counted"
    );
    assert!(metrics.event_counter("inspect_budget_exhausted").get() > 0);
    drop(others);
    let tapped = relay_burst(&budget, &metrics).await;
    assert_eq!(
        tapped,
        2000 * inspectable(4),
        "room again: every frame queued"
    );
    assert_eq!(budget.held(), 0, "released once inspected");
}

/// Connections at once, sharing a budget smaller than their frames together: bytes
/// arrive unchanged, every frame is tapped or announced, the budget is never passed and
/// nothing stays held once the taps are drained.
#[tokio::test]
async fn connections_sharing_a_small_budget_stay_within_it() {
    let registry = Metrics::new();
    let budget = registry.inspect_budget(2048);
    let relays = (0..4).map(|n| {
        let metrics = registry.listener(&format!("budget-{n}"), "test");
        let budget = budget.clone();
        async move {
            let receiver = relay_frames(&metrics, None, 10_000, budget.clone()).await;
            assert!(budget.held() <= 2048);
            (metrics, receiver)
        }
    });
    for (metrics, mut receiver) in futures::future::join_all(relays).await {
        let (tapped, headers) = tally(&mut receiver);
        let skipped = metrics.event_counter("inspect_budget_exhausted").get()
            + metrics.event_counter("oversize_skipped").get();
        assert_eq!((tapped + headers, headers as u64), (700, skipped));
    }
    assert_eq!(budget.held(), 0, "released with the last tapped frame");
}

/// Counts its wake-ups.
#[derive(Default)]
struct CountWakes(std::sync::atomic::AtomicUsize);

impl std::task::Wake for CountWakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// The task's first waker is woken by reference; polled with another, the relay's
/// wake-ups go to the new one from then on.
#[test]
fn the_task_waker_follows_the_task_it_is_polled_by() {
    let (first, second) = (
        Arc::new(CountWakes::default()),
        Arc::new(CountWakes::default()),
    );
    let count = |wakes: &Arc<CountWakes>| wakes.0.load(Ordering::Relaxed);
    let task = TaskWaker::default();
    task.wake();
    let first_waker = Waker::from(first.clone());
    task.register(&first_waker);
    task.wake();
    task.register(&first_waker);
    task.wake();
    assert_eq!((count(&first), count(&second)), (2, 0));
    task.register(&Waker::from(second.clone()));
    task.wake();
    task.register(&first_waker);
    task.wake();
    assert_eq!((count(&first), count(&second)), (3, 1));
}

/// A connected pair of loopback sockets: (the peer's end, the relay's end).
async fn tcp_pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let (peer, accepted) = tokio::join!(tokio::net::TcpStream::connect(address), listener.accept());
    (peer.expect("connect"), accepted.expect("accept").0)
}

/// Plain TCP sockets take the direct write path (`stream`), as they are and boxed (a
/// PostgreSQL connection's): megabytes each way, more than the sockets' buffers hold,
/// so writes also find them full and wait, and every byte arrives unchanged.
#[tokio::test]
async fn bytes_arrive_unchanged_over_tcp_plain_and_boxed() {
    let metrics = Metrics::new().listener("tcp", "test");
    let (tap, _receiver) = Tap::channel(100, metrics.tap_dropped.clone());
    let (client, proxy_client) = tcp_pair().await;
    let (proxy_upstream, upstream) = tcp_pair().await;
    let relay = Relay {
        request_framer: LenPrefix,
        reply_framer: LenPrefix,
        max_inspect: 1024,
        budget: InspectBudget::unlimited(),
        reply_rewrite: None,
        tap: Some(tap),
        metrics,
    };
    let requests: Vec<u8> = (0..40).flat_map(|_| frames(100)).collect();
    let replies: Vec<u8> = (0..30).flat_map(|_| frames(100)).collect();
    let relayed = tokio::spawn(relay.run(proxy_client, Box::new(proxy_upstream) as BoxStream));
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let (_, _, at_upstream, at_client) = tokio::join!(
        feed(client_write, requests.clone()),
        feed(upstream_write, replies.clone()),
        async {
            // Not read at first: the relay's writes to it must find it full and wait.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            drain(upstream_read).await
        },
        drain(client_read),
    );
    let totals = relayed.await.expect("join").expect("relay");
    assert_eq!(at_upstream, requests, "client → upstream bytes changed");
    assert_eq!(at_client, replies, "upstream → client bytes changed");
    assert_eq!(
        (totals.to_upstream, totals.to_client),
        (requests.len() as u64, replies.len() as u64)
    );
}

#[tokio::test]
async fn bytes_arrive_unchanged_both_ways() {
    let (tapped, _, dropped) = relay_once(None, 10_000).await;
    // Frames over the 1024-byte cap are forwarded but not tapped.
    assert_eq!(tapped, inspectable(400) + inspectable(300));
    assert_eq!(dropped, 0);
}

#[tokio::test]
async fn store_and_forward_path_is_transparent_when_nothing_is_rewritten() {
    let (tapped, _, dropped) = relay_once(Some(Box::new(LookOnly)), 10_000).await;
    assert_eq!(tapped, inspectable(400) + inspectable(300));
    assert_eq!(dropped, 0);
}

#[tokio::test]
async fn replies_switching_between_streaming_and_held_arrive_unchanged() {
    let rewrite = Box::new(Alternating::default());
    let (tapped, _, dropped) = relay_once(Some(rewrite), 10_000).await;
    assert_eq!(tapped, inspectable(400) + inspectable(300));
    assert_eq!(dropped, 0);
}

/// A reply the rewrite does not await is forwarded as it arrives, not once whole.
#[tokio::test]
async fn a_reply_not_awaited_streams_before_its_frame_is_whole() {
    let metrics = Metrics::new().listener("test", "test");
    let (tap, _receiver) = Tap::channel(16, metrics.tap_dropped.clone());
    let (mut client, proxy_client) = duplex(8192);
    let (proxy_upstream, mut upstream) = duplex(8192);
    let relay = Relay {
        request_framer: LenPrefix,
        reply_framer: LenPrefix,
        max_inspect: 1024,
        budget: InspectBudget::unlimited(),
        reply_rewrite: Some(Box::new(Alternating::default())),
        tap: Some(tap),
        metrics,
    };
    let relayed = tokio::spawn(relay.run(proxy_client, proxy_upstream));
    let reply = frames(28).split_off(frames(27).len());
    assert_eq!(reply.len(), 1003, "one frame under the inspection cap");
    upstream.write_all(&reply[..500]).await.expect("write");
    let mut first = vec![0; 500];
    let arrived = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client.read_exact(&mut first),
    )
    .await;
    assert!(arrived.is_ok(), "the first 500 bytes were held back");
    assert_eq!(first, reply[..500]);
    upstream.write_all(&reply[500..]).await.expect("write");
    let mut rest = vec![0; reply.len() - 500];
    client.read_exact(&mut rest).await.expect("read");
    assert_eq!(rest, reply[500..]);
    drop((client, upstream));
    let _ = relayed.await;
}

#[tokio::test]
async fn a_slow_inspector_costs_samples_not_bytes() {
    let (tapped, oversize, dropped) = relay_once(None, 1).await;
    assert!(dropped > 0, "a one-slot tap must drop");
    // Every frame was tapped, announced as oversize, or counted as dropped.
    assert_eq!(tapped + oversize + dropped as usize, 700);
}

/// Both directions end inside a frame: every byte still arrives, on the plain path and on
/// the store-and-forward path, and each cut is counted once.
#[tokio::test]
async fn a_stream_cut_inside_a_frame_is_forwarded_whole_and_counted() {
    for rewrite in [None, Some(Box::new(LookOnly) as Box<dyn ReplyRewrite>)] {
        let registry = Metrics::new();
        let metrics = registry.listener("cut", "test");
        let (tap, _receiver) = Tap::channel(10_000, metrics.tap_dropped.clone());
        let mut requests = frames(5);
        requests.extend_from_slice(&100u32.to_le_bytes());
        requests.extend_from_slice(b"only part of it");
        let mut replies = frames(4);
        // The held-back bytes of a cut reply are forwarded too.
        replies.extend_from_slice(&[60, 0]);
        let budget = InspectBudget::unlimited();
        relay_through(&metrics, tap, rewrite, budget, requests, replies).await;
        let text = registry.encode();
        assert!(
            text.contains(r#"indextap_decode_errors_total{listener="cut",reason="truncated"} 2"#),
            "{text}"
        );
    }
}
