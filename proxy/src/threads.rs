//! The data threads: single-threaded runtimes, one per core given to the data path,
//! PgBouncer's model.
//!
//! A connection lives its whole life on one data thread. Its relay is a task of that thread's
//! runtime and its inspection is done on the same thread (`pipeline::Inspections`): handing
//! a frame to inspection is a queue push, no system call, no other core's cache, and the
//! thread inspects what was handed over when it runs out of work, from the runtime's park
//! hook (the `on_park` of [`DataThreads::start`]), with no task woken; its inspection task
//! is the fallback for a thread that does not park. On a work-stealing runtime the same
//! hand-off woke an idle worker (a futex) and moved the decoding to another core, which
//! cost more than the decoding itself.
//!
//! The accept loops, the admin API and the state flushes run on the control runtime; an
//! accepted socket is handed to the data thread with the fewest connections, once per
//! connection.
//!
//! ## Layout
//! - [`DataThreads`]: start, place a connection, stop (on drop).
//! - [`thread_count`]: the setting, or half the cores available.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// How many data threads to run: `setting`, or when it is 0 half the cores this process may
/// use, at least one (`available_parallelism` reads the cgroup CPU quota, so a sidecar
/// limited to one or two CPUs gets one thread).
///
/// Half, because a sidecar shares its host with the application and the database: on the
/// 2-core bench machine one data thread cost 13.8 µs of CPU per pgbench transaction and two
/// cost 15.8 µs, at the same throughput (each thread runs out of work, sleeps and is woken
/// more often when the connections are spread over two), and one thread relays over 60,000
/// transactions a second before it is the bottleneck.
pub fn thread_count(setting: usize) -> usize {
    if setting > 0 {
        return setting;
    }
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    (cores / 2).max(1)
}

/// The running data threads.
pub struct DataThreads {
    threads: Vec<DataThread>,
}

struct DataThread {
    handle: Handle,
    /// Connections placed on this thread and not yet finished.
    connections: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    join: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for DataThreads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataThreads")
            .field("threads", &self.threads.len())
            .finish()
    }
}

impl DataThreads {
    /// Start `count` threads (at least one). `on_park` runs on a data thread each time it
    /// runs out of work, before it waits for I/O: the moment to inspect what its relays
    /// handed over. It runs inside the runtime's context, between task polls (never inside
    /// one), and may wake tasks: tokio's current-thread `park` then runs them instead of
    /// waiting (it checks its queue after the hook). It does not run while the thread always
    /// has a task ready (the runtime then only polls for I/O between ticks).
    pub fn start<P>(count: usize, on_park: P) -> std::io::Result<Self>
    where
        P: Fn() + Send + Sync + 'static,
    {
        let on_park = Arc::new(on_park);
        let mut threads = Vec::with_capacity(count.max(1));
        for index in 0..count.max(1) {
            let park = on_park.clone();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .on_thread_park(move || park())
                .build()?;
            let handle = runtime.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            let join = std::thread::Builder::new()
                .name(format!("indextap-data-{index}"))
                .spawn(move || {
                    // Tasks run only while the thread is inside `block_on`; when it returns,
                    // dropping the runtime drops whatever is left (connections past the
                    // shutdown grace period).
                    runtime.block_on(async move {
                        let _ = stopped.await;
                    });
                })?;
            threads.push(DataThread {
                handle,
                connections: Arc::new(AtomicUsize::new(0)),
                stop: Some(stop),
                join: Some(join),
            });
        }
        Ok(Self { threads })
    }

    /// How many threads run.
    pub fn len(&self) -> usize {
        self.threads.len()
    }

    /// Whether no thread runs (never, once started).
    pub fn is_empty(&self) -> bool {
        self.threads.is_empty()
    }

    /// Run one connection on the thread with the fewest connections.
    pub fn spawn<F>(&self, connection: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Some(thread) = self
            .threads
            .iter()
            .min_by_key(|thread| thread.connections.load(Ordering::Relaxed))
        else {
            return;
        };
        let placed = PlacedConnection::new(thread.connections.clone());
        thread.handle.spawn(async move {
            let _placed = placed;
            connection.await;
        });
    }
}

impl Drop for DataThreads {
    fn drop(&mut self) {
        for thread in &mut self.threads {
            if let Some(stop) = thread.stop.take() {
                let _ = stop.send(());
            }
        }
        for thread in &mut self.threads {
            if let Some(join) = thread.join.take() {
                let _ = join.join();
            }
        }
    }
}

/// A connection counted on its thread until it ends (or is dropped unrun at shutdown).
struct PlacedConnection(Arc<AtomicUsize>);

impl PlacedConnection {
    fn new(connections: Arc<AtomicUsize>) -> Self {
        connections.fetch_add(1, Ordering::Relaxed);
        Self(connections)
    }
}

impl Drop for PlacedConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Mutex;
    use std::time::Duration;

    #[test]
    fn connections_spread_over_the_threads_and_stay_on_theirs() {
        let threads = DataThreads::start(2, || {}).expect("start");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (done, mut finished) = tokio::sync::mpsc::unbounded_channel();
        let (release, released) = tokio::sync::watch::channel(false);
        for _ in 0..4 {
            let seen = seen.clone();
            let done = done.clone();
            let mut released = released.clone();
            threads.spawn(async move {
                let first = std::thread::current().id();
                // Still held: the next connection goes to the other thread.
                let _ = released.wait_for(|go| *go).await;
                tokio::task::yield_now().await;
                let second = std::thread::current().id();
                seen.lock().expect("lock").push((first, second));
                let _ = done.send(());
            });
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = release.send(true);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            for _ in 0..4 {
                tokio::time::timeout(Duration::from_secs(10), finished.recv())
                    .await
                    .expect("a connection finished in time");
            }
        });
        let seen = seen.lock().expect("lock").clone();
        assert!(seen.iter().all(|(first, second)| first == second));
        let used: HashSet<_> = seen.iter().map(|(first, _)| *first).collect();
        assert_eq!(used.len(), 2, "four connections on two threads: {seen:?}");
    }

    #[test]
    fn a_setting_of_zero_means_half_the_cores_available() {
        assert_eq!(thread_count(3), 3);
        let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
        assert_eq!(thread_count(0), (cores / 2).max(1));
    }
}
