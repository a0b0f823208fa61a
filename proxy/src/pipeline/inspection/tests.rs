use std::time::{Duration, Instant};

use bytes::Bytes;
use indextap_analyzer::aggregate::Aggregator;

use super::*;
use crate::tap::{DecodeError, Direction, TapFrame, WAKE_AFTER};

#[test]
fn tallies_count_every_label_whatever_the_order() {
    let registry = crate::admin::metrics::Metrics::new();
    let metrics = registry.listener("t", "postgresql");
    let (mut observations, mut messages, mut counts) =
        (Vec::new(), Tallies::default(), Tallies::default());
    let mut rooms = Vec::new();
    let mut events = ConnectionEvents {
        observations: &mut observations,
        rooms: &mut rooms,
        inspect_budget: &InspectBudget::unlimited(),
        frame: 0,
        metrics: &metrics,
        messages: &mut messages,
        counts: &mut counts,
    };
    let round = [
        "Bind",
        "Execute",
        "Sync",
        "BindComplete",
        "DataRow",
        "ReadyForQuery",
    ];
    for _ in 0..3 {
        round.iter().for_each(|kind| events.message(kind));
    }
    // Out of the usual order, and one label never seen before.
    for kind in ["DataRow", "Bind", "Parse", "DataRow"] {
        events.message(kind);
    }
    events.count("unpaired_reply");
    messages.flush();
    counts.flush();
    let text = registry.encode();
    for (kind, count) in [("Bind", 4), ("DataRow", 5), ("Sync", 3), ("Parse", 1)] {
        let line = format!(r#"indextap_messages_total{{listener="t",kind="{kind}"}} {count}"#);
        assert!(text.contains(&line), "{line}\n{text}");
    }
    assert!(text
        .contains(r#"indextap_inspection_events_total{listener="t",reason="unpaired_reply"} 1"#));
}

/// Records the first byte of every frame it sees; fails on a frame starting with 0xff.
struct Recorder(Arc<Mutex<Vec<u8>>>);

impl Inspector for Recorder {
    fn inspect(&mut self, frame: TapFrame, events: &mut dyn Events) -> Result<(), DecodeError> {
        if frame.bytes[0] == 0xff {
            return Err(DecodeError::new("bad_length", "test"));
        }
        assert_ne!(frame.bytes[0], 0xfe, "an inspector's bug");
        events.message("Query");
        super::super::lock(&self.0).push(frame.bytes[0]);
        Ok(())
    }
}

fn frame(n: u8) -> TapItem {
    TapItem::Frame(TapFrame {
        direction: Direction::Request,
        bytes: Bytes::from(vec![n]),
        at: Instant::now(),
    })
}

fn analysis() -> Analysis {
    Analysis::start(
        Arc::new(Aggregator::new(10)),
        8,
        16,
        1,
        crate::budget::InspectBudget::unlimited(),
    )
}

/// Run `test` on a data thread of its own, with the park hook the proxy installs.
fn on_data_thread<T: Send + 'static>(
    test: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    let threads = crate::threads::DataThreads::start(1, Inspections::drain_parked).expect("start");
    let (done, result) = std::sync::mpsc::channel();
    threads.spawn(async move {
        let _ = done.send(test.await);
    });
    result
        .recv_timeout(Duration::from_secs(60))
        .expect("the test finished on its data thread")
}

/// Wait until `seen` holds `len` frames, sleeping, so that the thread parks meanwhile.
async fn parked_until(seen: &Mutex<Vec<u8>>, len: usize) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while super::super::lock(seen).len() < len {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("inspected in time");
}

/// How many times this thread's inspection task was polled.
fn task_polls() -> usize {
    THREAD.with(|thread| {
        thread.borrow().as_ref().map_or(0, |inspections| {
            inspections.task_polls.load(Ordering::Relaxed)
        })
    })
}

/// Three connections on one thread: each sees its frames in order, a backlog longer
/// than a slice is inspected whole, and a decode failure stops only its connection.
#[test]
fn one_drain_inspects_every_connection_of_the_thread_in_order() {
    let text = on_data_thread(async {
        let analysis = analysis();
        let registry = crate::admin::metrics::Metrics::new();
        let metrics = registry.listener("t", "postgresql");
        let tracker = TaskTracker::new();
        let seen: Vec<_> = (0..3).map(|_| Arc::new(Mutex::new(Vec::new()))).collect();
        let taps: Vec<Tap> = seen
            .iter()
            .map(|seen| {
                let inspector = Box::new(Recorder(seen.clone()));
                Inspections::start(inspector, 10_000, &analysis, &metrics, &tracker)
            })
            .collect();
        for n in 0..200u8 {
            for tap in &taps {
                assert!(tap.offer(frame(n)));
            }
            // The second connection fails half-way; the others go on.
            if n == 100 {
                assert!(taps[1].offer(frame(0xff)));
            }
        }
        parked_until(&seen[2], 200).await;
        let expected: Vec<u8> = (0..200).collect();
        assert_eq!(*super::super::lock(&seen[0]), expected);
        assert_eq!(*super::super::lock(&seen[1]), expected[..101].to_vec());
        assert!(
            !taps[1].offer(frame(1)),
            "a stopped inspection refuses frames"
        );
        // Offers after a drain are taken by the next one.
        for round in 0..3u8 {
            assert!(taps[0].offer(frame(round)));
            parked_until(&seen[0], 201 + usize::from(round)).await;
        }
        tracker.close();
        assert!(!tracker.is_empty(), "connections still open are tracked");
        drop(taps);
        tokio::time::timeout(Duration::from_secs(10), tracker.wait())
            .await
            .expect("every connection's inspection ended");
        registry.encode()
    });
    assert!(
        text.contains(r#"indextap_messages_total{listener="t",kind="Query"} 504"#),
        "{text}"
    );
    assert!(text.contains(r#"reason="bad_length"} 1"#), "{text}");
}

/// Connections of two listeners of one name (two registries) on one thread are tallied
/// apart, each message counted once, and a listener's tallies go with its last connection.
#[test]
fn each_listener_is_tallied_apart_and_its_tallies_go_with_its_last_connection() {
    let (texts, listeners_left) = on_data_thread(async {
        let analysis = analysis();
        let registries = [
            crate::admin::metrics::Metrics::new(),
            crate::admin::metrics::Metrics::new(),
        ];
        let tracker = TaskTracker::new();
        // One connection of the first listener, two of the second.
        let connections: Vec<_> = [0, 1, 1]
            .into_iter()
            .map(|listener| {
                let metrics = registries[listener].listener("t", "postgresql");
                let seen = Arc::new(Mutex::new(Vec::new()));
                let inspector = Box::new(Recorder(seen.clone()));
                let tap = Inspections::start(inspector, 100, &analysis, &metrics, &tracker);
                (tap, seen)
            })
            .collect();
        for round in 0..3u8 {
            for (tap, _) in &connections {
                for n in 0..10u8 {
                    assert!(tap.offer(frame(n)));
                }
            }
            for (_, seen) in &connections {
                parked_until(seen, 10 * usize::from(round + 1)).await;
            }
        }
        tracker.close();
        drop(connections);
        tokio::time::timeout(Duration::from_secs(10), tracker.wait())
            .await
            .expect("every connection's inspection ended");
        let left = THREAD.with(|thread| {
            thread
                .borrow()
                .as_ref()
                .map(|inspections| super::super::lock(&inspections.drain).tallies.len())
        });
        (registries.map(|registry| registry.encode()), left)
    });
    for (text, count) in texts.iter().zip([30, 60]) {
        let line = format!(r#"indextap_messages_total{{listener="t",kind="Query"}} {count}"#);
        assert!(text.contains(&line), "{text}");
    }
    assert_eq!(listeners_left, Some(0));
}

/// The common case: a round trip's hand-over is inspected when the thread parks, and the
/// task is neither woken nor polled for it.
#[test]
fn the_park_hook_inspects_without_polling_the_task() {
    let (before, after, seen) = on_data_thread(async {
        let analysis = analysis();
        let metrics = crate::admin::metrics::Metrics::new().listener("t", "postgresql");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let inspector = Box::new(Recorder(seen.clone()));
        let tracker = TaskTracker::new();
        let tap = Inspections::start(inspector, 100, &analysis, &metrics, &tracker);
        // The task's first poll, then the thread parks.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let before = task_polls();
        for round in 0..50u8 {
            // A request (its reply will come), then the reply.
            assert!(tap.offer_deferred(frame(2 * round)));
            assert!(tap.offer(frame(2 * round + 1)));
            parked_until(&seen, 2 * usize::from(round) + 2).await;
        }
        let after = task_polls();
        let seen = super::super::lock(&seen).clone();
        (before, after, seen)
    });
    assert!(before >= 1, "the task was started and polled once");
    assert_eq!(after, before, "no task poll for the hook's drains");
    assert_eq!(seen, (0..100).collect::<Vec<u8>>());
}

/// Records like [`Recorder`], and writes a byte to `poke` when it inspects its first
/// frame, which makes a socket of the thread readable.
struct Poker {
    seen: Arc<Mutex<Vec<u8>>>,
    poke: Option<std::os::unix::net::UnixStream>,
}

impl Inspector for Poker {
    fn inspect(&mut self, frame: TapFrame, _: &mut dyn Events) -> Result<(), DecodeError> {
        if let Some(mut poke) = self.poke.take() {
            std::io::Write::write_all(&mut poke, b"!").expect("poke");
        }
        super::super::lock(&self.seen).push(frame.bytes[0]);
        Ok(())
    }
}

/// A backlog is inspected a slice at a time, and I/O that became ready meanwhile is
/// served between two slices, not after the whole backlog; all of it is inspected, in
/// order, and the thread's count of queued items comes back to zero.
#[test]
fn a_backlog_is_inspected_in_slices_with_io_served_between_them() {
    const BACKLOG: usize = 64;
    let (seen_when_served, seen, queued) = on_data_thread(async {
        let analysis = analysis();
        let metrics = crate::admin::metrics::Metrics::new().listener("t", "postgresql");
        let tracker = TaskTracker::new();
        let (poke, socket) = std::os::unix::net::UnixStream::pair().expect("pair");
        socket.set_nonblocking(true).expect("nonblocking");
        let socket = tokio::net::UnixStream::from_std(socket).expect("registered");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let inspector = Box::new(Poker {
            seen: seen.clone(),
            poke: Some(poke),
        });
        let tap = Inspections::start(inspector, 1_000, &analysis, &metrics, &tracker);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let served = {
            let seen = seen.clone();
            tokio::spawn(async move {
                socket.readable().await.expect("readable");
                super::super::lock(&seen).len()
            })
        };
        // Offered in one poll: the thread parks with the whole backlog listed.
        for n in 0..BACKLOG {
            assert!(tap.offer(frame(n as u8)));
        }
        let seen_when_served = served.await.expect("served");
        parked_until(&seen, BACKLOG).await;
        let queued = THREAD.with(|thread| {
            thread
                .borrow()
                .as_ref()
                .map(|inspections| inspections.ready.queued())
        });
        let seen = super::super::lock(&seen).clone();
        (seen_when_served, seen, queued)
    });
    assert!(
        (1..BACKLOG).contains(&seen_when_served),
        "the socket was served after {seen_when_served} of {BACKLOG} items"
    );
    assert_eq!(seen, (0..BACKLOG as u8).collect::<Vec<u8>>());
    assert_eq!(queued, Some(0));
}

#[test]
fn a_slice_is_a_quarter_of_the_backlog_and_at_least_the_minimum() {
    assert_eq!(slice_for(0), MIN_SLICE);
    assert_eq!(slice_for(4 * MIN_SLICE + 3), MIN_SLICE);
    assert_eq!(slice_for(1_000), 250);
}

/// An inspector that panics in the park hook takes neither the data thread nor its other
/// tasks with it, and a connection started after it is inspected.
#[test]
fn a_panicking_inspector_in_the_park_hook_leaves_the_thread_running() {
    // `on_data_thread` returning at all is the thread surviving the panic.
    let seen = on_data_thread(async {
        let analysis = analysis();
        let metrics = crate::admin::metrics::Metrics::new().listener("t", "postgresql");
        let tracker = TaskTracker::new();
        let recording = |seen: &Arc<Mutex<Vec<u8>>>| {
            let inspector = Box::new(Recorder(seen.clone()));
            Inspections::start(inspector, 100, &analysis, &metrics, &tracker)
        };
        let broken = recording(&Arc::new(Mutex::new(Vec::new())));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(broken.offer(frame(0xfe)));
        // Parks, so the hook drains the frame and the inspector panics.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let next = recording(&seen);
        assert!(next.offer(frame(7)));
        parked_until(&seen, 1).await;
        let seen = super::super::lock(&seen).clone();
        seen
    });
    assert_eq!(seen, vec![7]);
}

/// A thread kept from parking (a task that always has work) still has its connections
/// inspected, by the task: what is left for the park is under `limit` frames, and nothing
/// is dropped. Returns (frames inspected while busy, frames inspected in all, drops,
/// task polls while busy).
fn busy_thread(capacity: usize, offers: usize) -> (usize, usize, u64, usize) {
    on_data_thread(async move {
        let analysis = analysis();
        let metrics = crate::admin::metrics::Metrics::new().listener("t", "postgresql");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let inspector = Box::new(Recorder(seen.clone()));
        let tracker = TaskTracker::new();
        let tap = Inspections::start(inspector, capacity, &analysis, &metrics, &tracker);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let before = task_polls();
        // `yield_now` defers this task to the next tick: the runtime only polls the
        // driver (without the park hook) in between, so the thread never parks.
        for n in 0..offers {
            assert!(tap.offer(frame((n % 200) as u8)));
            tokio::task::yield_now().await;
        }
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        let busy = super::super::lock(&seen).len();
        let polls = task_polls() - before;
        parked_until(&seen, offers).await;
        let all = super::super::lock(&seen).len();
        (busy, all, metrics.tap_dropped.get(), polls)
    })
}

#[test]
fn a_thread_that_does_not_park_is_inspected_past_the_wake_threshold() {
    let offers = 4 * WAKE_AFTER + 100;
    let (busy, all, dropped, polls) = busy_thread(10_000, offers);
    assert!(polls > 0, "the task was woken");
    assert!(
        busy + WAKE_AFTER > offers,
        "{busy} of {offers} inspected while busy"
    );
    assert_eq!((all, dropped), (offers, 0));
}

#[test]
fn a_queue_past_half_full_wakes_the_task_before_it_drops() {
    let offers = 4 * WAKE_AFTER;
    let (busy, all, dropped, polls) = busy_thread(16, offers);
    assert!(polls > 0, "the task was woken");
    assert!(
        busy + 8 >= offers,
        "{busy} of {offers} inspected while busy"
    );
    assert_eq!((all, dropped), (offers, 0));
}
