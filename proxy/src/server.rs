//! Listeners, accept loops and lifecycle.
//!
//! Everything binds before anything serves, so a bad address fails the start, not the first
//! connection. On SIGTERM or SIGINT: stop accepting, let in-flight connections finish for up
//! to the grace period, flush the state, exit 0.
//!
//! The accept loops, the admin API and the state flushes run here, on the control runtime;
//! each accepted connection is handed to a data thread ([`crate::threads`]) and lives there
//! until it closes.
//!
//! ## Layout
//! - [`run`]: the whole `indextap proxy` lifetime.
//! - `serve_mongo` / `serve_postgres`: one accept loop per listener, one task per connection.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use anyhow::Context;
use indextap_analyzer::aggregate::{Aggregator, Limits};
use indextap_config::{Config, MongoListener, PostgresListener};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::metrics::{ListenerMetrics, Metrics};
use crate::admin::routes::{self, AdminState};
use crate::budget::InspectBudget;
use crate::catalog::CatalogSources;
use crate::error::{ProxyError, Side};
use crate::mongo::tls::{Leg, MongoTls};
use crate::mongo::{HelloReplies, MongoFramer, MongoSession};
use crate::pipeline::{Analysis, Inspections};
use crate::postgres::{
    negotiate, Established, Inspection, Negotiated, PgFramer, PgSession, PgTlsSettings,
};
use crate::relay::{Activity, Relay, RelayTotals, ReplyRewrite};
use crate::state::keeper::Keeper;
use crate::tap::{Inspector, Tap};
use crate::threads::{thread_count, DataThreads};
use crate::tls::TlsConfigError;

/// How long shutdown waits for inspection and analysis to catch up before the last flush.
const SETTLE_LIMIT: Duration = Duration::from_secs(2);

/// How long connecting to an upstream may take before the client is let go.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What every connection task shares.
struct Shared {
    analysis: Analysis,
    /// Connections still being inspected, waited for at shutdown before the last flush.
    inspections: TaskTracker,
    tap_capacity: usize,
    max_inspect: usize,
    /// Room for frames gathered across reads, shared by every connection.
    budget: InspectBudget,
    /// Set just before the shutdown token is cancelled: until then a relay's wake-up need
    /// not look at the token (a lock per look).
    stopping: AtomicBool,
}

/// Run the proxy until SIGTERM or SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    // First, before any port: a second proxy on the same state directory stops here.
    let keeper = Arc::new(Keeper::open(&config)?);
    let metrics = Arc::new(Metrics::new());
    let aggregator = Arc::new(Aggregator::with_limits(Limits {
        max_shapes: config.capture.max_shapes,
        max_bytes: config.capture.max_aggregate_bytes,
    }));
    keeper.restore(&aggregator).await;

    // Bind everything first.
    let admin = TcpListener::bind(&config.admin.listen)
        .await
        .with_context(|| format!("cannot listen on admin.listen {}", config.admin.listen))?;
    let mongo = bind_all(
        "MongoDB",
        &config.mongo.listeners,
        |spec| &spec.listen,
        MongoTls::from_listener,
    )
    .await?;
    let postgres = bind_all(
        "PostgreSQL",
        &config.postgres.listeners,
        |spec| &spec.listen,
        PgTlsSettings::from_listener,
    )
    .await?;

    let threads = Arc::new(
        DataThreads::start(
            thread_count(config.runtime.threads),
            Inspections::drain_parked,
        )
        .context("cannot start the data threads")?,
    );
    tracing::info!(threads = threads.len(), "data threads started");
    let budget = metrics.inspect_budget(config.capture.max_inspect_total_bytes);
    let analysis = Analysis::start(
        aggregator.clone(),
        config.capture.analysis_queue,
        config.capture.sql_cache_entries,
        config.capture.workers,
        budget.clone(),
    );
    let shared = Arc::new(Shared {
        analysis,
        inspections: TaskTracker::new(),
        stopping: AtomicBool::new(false),
        tap_capacity: config.capture.channel_capacity,
        max_inspect: config.capture.max_inspect_bytes,
        budget,
    });
    let shutdown = CancellationToken::new();
    let connections = TaskTracker::new();

    let token = crate::admin::token(&config.admin)?;
    let catalog = CatalogSources::from_config(&config);
    // The usage window of drop advice starts now, on the catalogs named explicitly: the
    // proxy never talks to an upstream by itself unless told to (the MongoDB admin URI
    // otherwise defaults to the upstream, read only when advice is asked for).
    let explicit = CatalogSources {
        mongo_uri: config
            .mongo
            .admin_uri
            .as_ref()
            .map(|uri| uri.expose().to_string()),
        ..catalog.clone()
    };
    if explicit.mongo_uri.is_some() || explicit.pg_url.is_some() {
        tokio::spawn(crate::catalog::baseline::keep(
            explicit,
            catalog.baseline.clone(),
            crate::catalog::baseline::interval(config.advice.drop_min_window()),
            shutdown.clone(),
        ));
    }
    let admin_state = Arc::new(AdminState {
        aggregator: aggregator.clone(),
        metrics: metrics.clone(),
        catalog,
        token,
    });
    let admin_shutdown = shutdown.clone();
    let admin_task = tokio::spawn(async move {
        let served = axum::serve(admin, routes::router(admin_state))
            .with_graceful_shutdown(async move { admin_shutdown.cancelled().await })
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "the admin API stopped");
        }
    });

    // The accept loops hold clones; this one goes before the data threads stop.
    let context = ListenerContext {
        metrics: metrics.clone(),
        shared: shared.clone(),
        shutdown: shutdown.clone(),
        placement: Placement {
            threads: threads.clone(),
            connections: connections.clone(),
        },
    };
    for (listener, spec, tls) in mongo {
        tokio::spawn(serve_mongo(listener, spec, tls, context.clone()));
    }
    for (listener, spec, tls) in postgres {
        tokio::spawn(serve_postgres(listener, spec, tls, context.clone()));
    }
    drop(context);
    if keeper.is_active() {
        tokio::spawn(keeper.clone().run(aggregator.clone(), shutdown.clone()));
    }

    wait_for_signal().await;
    tracing::info!("shutting down: no new connections");
    shared.stopping.store(true, Ordering::Release);
    shutdown.cancel();
    connections.close();
    let grace = Duration::from_secs(config.shutdown.grace_secs);
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "grace period over: closing the connections still open"
        );
    }
    // An answer still being computed (a sample verification can take minutes) gets the
    // grace period too; past it, shutdown goes on and drops what it left behind.
    if tokio::time::timeout(grace, admin_task).await.is_err() {
        tracing::warn!("grace period over: an admin request was still being answered");
    }
    // What the last connections sent is still being decoded and recorded: let it land.
    shared.inspections.close();
    let _ = tokio::time::timeout(SETTLE_LIMIT, shared.inspections.wait()).await;
    shared.analysis.settle(SETTLE_LIMIT).await;
    keeper.flush(&aggregator).await;
    // A verification cut short by the signal must not leave its copy of the data behind.
    let scratch = crate::catalog::mongo::scratch::drop_all().await;
    if scratch > 0 {
        tracing::info!(
            scratch,
            "dropped the scratch databases of an unfinished verification"
        );
    }
    // Stops the data threads (once the accept loops have let go of them too); what is still
    // open past the grace period is closed with them.
    drop(threads);
    tracing::info!("stopped");
    Ok(())
}

/// Binds each listener of one engine and reads its TLS settings, before anything is served.
async fn bind_all<Spec: Clone, Tls>(
    engine: &str,
    specs: &[Spec],
    listen: fn(&Spec) -> &String,
    tls: fn(&Spec) -> Result<Tls, TlsConfigError>,
) -> anyhow::Result<Vec<(TcpListener, Spec, Tls)>> {
    let mut bound = Vec::with_capacity(specs.len());
    for spec in specs {
        let address = listen(spec);
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {engine} listener {address}"))?;
        let settings =
            tls(spec).with_context(|| format!("TLS settings of {engine} listener {address}"))?;
        bound.push((listener, spec.clone(), settings));
    }
    Ok(bound)
}

async fn wait_for_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// What every accept loop shares.
#[derive(Clone)]
struct ListenerContext {
    metrics: Arc<Metrics>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    placement: Placement,
}

/// Where accepted connections go: a data thread, tracked for the shutdown.
#[derive(Clone)]
struct Placement {
    threads: Arc<DataThreads>,
    connections: TaskTracker,
}

impl Placement {
    /// Run `connection` on a data thread, with the client socket moved onto that thread's
    /// runtime.
    fn spawn<F, Fut>(&self, client: std::net::TcpStream, connection: F)
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        self.threads
            .spawn(self.connections.track_future(async move {
                match TcpStream::from_std(client) {
                    Ok(client) => connection(client).await,
                    Err(error) => {
                        tracing::warn!(%error, "cannot hand a connection to a data thread")
                    }
                }
            }));
    }
}

/// Accept until shutdown; transient accept errors (out of file descriptors) back off. The
/// socket comes out of the control runtime, ready to move to a data thread.
async fn accept_next(
    listener: &TcpListener,
    shutdown: &CancellationToken,
) -> Option<std::net::TcpStream> {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return None,
            accepted = listener.accept() => match accepted.and_then(|(stream, _peer)| {
                let _ = stream.set_nodelay(true);
                stream.into_std()
            }) {
                Ok(stream) => return Some(stream),
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

async fn connect_upstream(address: &str, metrics: &ListenerMetrics) -> Option<TcpStream> {
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Some(stream)
        }
        Ok(Err(error)) => {
            metrics.upstream_connect_errors.inc();
            tracing::warn!(listener = %metrics.listener, upstream = %address, %error, "upstream error while connecting; closing the client");
            None
        }
        Err(_) => {
            metrics.upstream_connect_errors.inc();
            tracing::warn!(listener = %metrics.listener, upstream = %address, "upstream connect timed out; closing the client");
            None
        }
    }
}

/// Start inspecting a connection on its data thread's inspection task; the returned tap feeds it.
fn start_inspection(
    inspector: Box<dyn Inspector>,
    metrics: &ListenerMetrics,
    shared: &Shared,
) -> Tap {
    Inspections::start(
        inspector,
        shared.tap_capacity,
        &shared.analysis,
        metrics,
        &shared.inspections,
    )
}

async fn serve_mongo(
    listener: TcpListener,
    spec: MongoListener,
    tls: MongoTls,
    context: ListenerContext,
) {
    let name = spec.effective_name();
    tracing::info!(listener = %name, listen = %spec.listen, upstream = %spec.upstream, tls = ?tls, "MongoDB listener ready");
    let metrics = context.metrics.listener(&name, "mongodb");
    let tls = Arc::new(tls);
    let upstream = spec.upstream.clone();
    let advertise = spec.effective_advertise().to_string();
    let start = move |client, metrics: ListenerMetrics, shared: Arc<Shared>| async move {
        start_mongo(client, &upstream, &tls, advertise, &metrics, &shared).await
    };
    serve(listener, metrics, context, start).await;
}

async fn serve_postgres(
    listener: TcpListener,
    spec: PostgresListener,
    tls: PgTlsSettings,
    context: ListenerContext,
) {
    let name = spec.effective_name();
    tracing::info!(listener = %name, listen = %spec.listen, upstream = %spec.upstream, "PostgreSQL listener ready");
    let metrics = context.metrics.listener(&name, "postgresql");
    let tls = Arc::new(tls);
    let upstream = spec.upstream.clone();
    let start = move |client, metrics: ListenerMetrics, shared: Arc<Shared>| async move {
        start_postgres(client, &upstream, &tls, &metrics, &shared).await
    };
    serve(listener, metrics, context, start).await;
}

/// The accept loop of every listener: each client is started by a copy of `start` on a data
/// thread and, when that gives a relay, relayed until it ends or shutdown drains it.
async fn serve<Start, Started>(
    listener: TcpListener,
    metrics: ListenerMetrics,
    context: ListenerContext,
    start: Start,
) where
    Start: FnOnce(TcpStream, ListenerMetrics, Arc<Shared>) -> Started + Clone + Send + 'static,
    Started: std::future::Future<Output = Option<(Relayed, Arc<Activity>)>> + Send + 'static,
{
    let ListenerContext {
        shared,
        shutdown,
        placement,
        ..
    } = context;
    while let Some(client) = accept_next(&listener, &shutdown).await {
        metrics.connections_total.inc();
        let metrics = metrics.clone();
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        let start = start.clone();
        let connections = placement.connections.clone();
        placement.spawn(client, move |client| async move {
            metrics.connections_active.inc();
            match start(client, metrics.clone(), shared.clone()).await {
                Some((relayed, activity)) => {
                    spawn_relay(relayed, activity, shutdown, shared, metrics, &connections);
                }
                None => {
                    metrics.connections_active.dec();
                }
            }
        });
    }
}

/// One MongoDB connection's TLS legs; the relay to run after them, or `None` when the client
/// could not be taken on (the reason is counted and logged).
async fn start_mongo(
    client: TcpStream,
    upstream: &str,
    tls: &MongoTls,
    advertise: String,
    metrics: &ListenerMetrics,
    shared: &Shared,
) -> Option<(Relayed, Arc<Activity>)> {
    let connect = connect_upstream(upstream, metrics);
    let legs = tls.open(client, connect, metrics).await?;
    let tap = legs
        .inspect
        .then(|| start_inspection(Box::new(MongoSession::new()), metrics, shared));
    let relay = Relay {
        request_framer: MongoFramer,
        reply_framer: MongoFramer,
        max_inspect: shared.max_inspect,
        budget: shared.budget.clone(),
        // Encrypted bytes have no frames to rewrite: forward them as they come.
        reply_rewrite: legs
            .inspect
            .then(|| Box::new(HelloReplies::new(advertise)) as Box<dyn ReplyRewrite>),
        tap,
        metrics: metrics.clone(),
    };
    let activity = Arc::new(Activity::default());
    // Plain sockets are relayed as they are; a TLS leg goes boxed.
    let relayed: Relayed = match (legs.client, legs.server) {
        (Leg::Tcp(client), Leg::Tcp(server)) => {
            Box::pin(relay.run_tracked(client, server, activity.clone()))
        }
        (client, server) => {
            Box::pin(relay.run_tracked(client.boxed(), server.boxed(), activity.clone()))
        }
    };
    Some((relayed, activity))
}

/// One PostgreSQL connection's startup phase; the relay to run after it, or `None` when
/// there is nothing to relay.
async fn start_postgres(
    client: TcpStream,
    upstream: &str,
    tls: &PgTlsSettings,
    metrics: &ListenerMetrics,
    shared: &Shared,
) -> Option<(Relayed, Arc<Activity>)> {
    let negotiated = match negotiate(client, upstream, tls).await {
        Ok(negotiated) => negotiated,
        Err(error) => {
            match startup_failure(&error) {
                StartupFailure::Upstream => {
                    metrics.upstream_connect_errors.inc();
                }
                // A TCP probe connects and leaves: not a client error.
                StartupFailure::Silent => {
                    metrics.event("closed_before_startup");
                    tracing::debug!(listener = %metrics.listener, %error, "PostgreSQL client left before its startup packet");
                    return None;
                }
                StartupFailure::Client(reason) => metrics.decode_error(reason),
            }
            tracing::warn!(listener = %metrics.listener, %error, "PostgreSQL session did not start");
            return None;
        }
    };
    let Established {
        client,
        upstream,
        database,
        inspection,
        encrypted_to_client,
    } = match negotiated {
        Negotiated::Relay(established) => established,
        Negotiated::Cancelled => {
            metrics.event("cancel_request");
            return None;
        }
        Negotiated::TlsRefused => {
            metrics.uninspected("tls_refused");
            tracing::warn!(listener = %metrics.listener, "a client opened with TLS directly; closed (TLS mode is refuse)");
            return None;
        }
    };
    if encrypted_to_client {
        metrics.event("tls_client_session");
    }
    let tap = match inspection {
        Inspection::On => Some(start_inspection(
            Box::new(PgSession::new(database)),
            metrics,
            shared,
        )),
        Inspection::TlsPassthrough => {
            metrics.uninspected("tls_passthrough");
            None
        }
        Inspection::Undecodable(reason) => {
            metrics.decode_error(reason);
            metrics.uninspected("undecodable_startup");
            tracing::info!(listener = %metrics.listener, reason, "unreadable startup packet: forwarded to the server, session not inspected");
            None
        }
    };
    let relay = Relay {
        request_framer: PgFramer,
        reply_framer: PgFramer,
        max_inspect: shared.max_inspect,
        budget: shared.budget.clone(),
        reply_rewrite: None,
        tap,
        metrics: metrics.clone(),
    };
    let activity = Arc::new(Activity::default());
    let relayed = Box::pin(relay.run_tracked(client, upstream, activity.clone()));
    Some((relayed, activity))
}

/// A connection's relay, ready to run.
type Relayed =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<RelayTotals, ProxyError>> + Send>>;

/// Run a connection's relay as a task of its own, on the data thread of the task that set
/// the connection up (TLS check, upstream connect, startup). The setup task ends here, so an
/// idle connection holds the relay's state and little more: not the room every phase of the
/// connection would need side by side in one task.
fn spawn_relay(
    relayed: Relayed,
    activity: Arc<Activity>,
    shutdown: CancellationToken,
    shared: Arc<Shared>,
    metrics: ListenerMetrics,
    connections: &TaskTracker,
) {
    connections.spawn(async move {
        relay_until_drained(relayed, &activity, &shutdown, &shared.stopping, &metrics).await;
        metrics.connections_active.dec();
    });
}

/// Relay until the connection ends, or until shutdown finds it at rest: an idle pooled
/// connection would otherwise hold the shutdown for the whole grace period, while a request
/// in flight is let finish (up to the grace period, enforced in [`run`]).
/// The wait for rest after a shutdown is boxed: an idle connection's task keeps no room
/// for it.
async fn relay_until_drained(
    mut relayed: Relayed,
    activity: &Activity,
    shutdown: &CancellationToken,
    stopping: &AtomicBool,
    metrics: &ListenerMetrics,
) {
    // A token of the connection's own: waiting on the shared one would take its lock, shared
    // by every connection, on each wake-up of the relay.
    let shutdown = shutdown.child_token();
    let mut cancelled = std::pin::pin!(shutdown.cancelled());
    // The token is looked at on the first poll, which leaves this task's waker with it, and
    // then only once `stopping` is set: looking takes two locks, on every wake-up of the relay.
    let mut registered = false;
    let ended = std::future::poll_fn(|cx| {
        if let Poll::Ready(result) = relayed.as_mut().poll(cx) {
            return Poll::Ready(Some(result));
        }
        if !registered || stopping.load(Ordering::Acquire) {
            registered = true;
            if cancelled.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
        }
        Poll::Pending
    })
    .await;
    let result = match ended {
        Some(result) => result,
        None => {
            let at_rest = Box::pin(async {
                while activity.request_in_flight() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
            tokio::select! {
                result = relayed => result,
                () = at_rest => {
                    tracing::debug!(listener = %metrics.listener, "closed a connection at rest for shutdown");
                    return;
                }
            }
        }
    };
    if let Err(error) = result {
        tracing::debug!(listener = %metrics.listener, %error, "connection ended");
    }
}

/// How a PostgreSQL startup phase failed, for the metrics.
enum StartupFailure {
    /// The upstream could not be reached.
    Upstream,
    /// The client closed before sending a byte.
    Silent,
    /// The client sent something unusable: a `decode_errors` reason.
    Client(&'static str),
}

fn startup_failure(error: &ProxyError) -> StartupFailure {
    use std::io::ErrorKind;
    if error.side == Side::Upstream {
        return StartupFailure::Upstream;
    }
    StartupFailure::Client(match error.source.kind() {
        ErrorKind::ConnectionAborted => return StartupFailure::Silent,
        ErrorKind::UnexpectedEof => "startup_truncated",
        ErrorKind::TimedOut => "startup_timeout",
        _ => "startup_io",
    })
}
