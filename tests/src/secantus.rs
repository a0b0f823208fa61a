//! [`SecantusDb`]: a SecantusDB server (MongoDB wire protocol) owned by a test.
//!
//! What the fixture relies on, as SecantusDB 0.7.0b3 behaves:
//! - `--standalone` makes `hello` describe a standalone server. Without it, `hello` advertises
//!   a one-node replica set named [`REPLICA_SET_NAME`] whose `hosts`, `primary` and `me` are
//!   the listening socket's address (`127.0.0.1:<port>` here).
//! - `--auth` turns on SCRAM (SHA-256 and SHA-1). There is no localhost exception and no
//!   flag to seed a user: a user is created with `createUser` on a server started without
//!   `--auth`, which is then restarted with `--auth` on the same storage. So an auth server
//!   uses a storage directory instead of `:memory:`.
//! - `--storage-path :memory:` is an ephemeral directory the server removes on SIGTERM.
//!
//! The binary is `$SECANTUSD`, else `/opt/secantus/bin/secantusd-py`, else `secantusd-py` on
//! `PATH`.

use std::future::IntoFuture;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bson::doc;
use futures::TryStreamExt;
use tempfile::TempDir;

use crate::child::{on_path, ChildProcess, STOP_GRACE};
use crate::poll::poll;
use crate::ports::free_port;
use crate::startup_failed;

/// The replica-set name SecantusDB advertises when not `--standalone`.
pub const REPLICA_SET_NAME: &str = "secantus";
/// Where `.ci/run` installs the server.
const DEFAULT_BINARY: &str = "/opt/secantus/bin/secantusd-py";
const BINARY_NAME: &str = "secantusd-py";
/// Python start-up plus WiredTiger open; generous, for a loaded 2-core CI machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts when the port we picked was taken before the server bound it.
const PORT_ATTEMPTS: usize = 3;
/// Each server's WiredTiger cache: tests hold little data, and many servers run at once.
const CACHE_SIZE: &str = "64M";
const INSTALL_HINT: &str = "install it with `python3 -m venv /opt/secantus && \
/opt/secantus/bin/pip install secantusdb==0.7.0b3 pymongo` (or run .ci/run), or set SECANTUSD";

/// A SCRAM user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

/// How to run the server.
#[derive(Debug, Clone, Default)]
pub struct SecantusOptions {
    /// Advertise a one-node replica set (SecantusDB's default) instead of a standalone.
    pub replica_set: bool,
    /// Require SCRAM-SHA-256; this user (role `root` on `admin`) is created first.
    pub auth: Option<Credentials>,
    /// More command-line arguments, appended last.
    pub extra_args: Vec<String>,
    /// Listen on this port instead of a fresh free one: for tests of an upstream that
    /// appears after a client (or a proxy) already points at its address.
    pub port: Option<u16>,
}

impl SecantusOptions {
    pub fn standalone() -> Self {
        Self::default()
    }

    pub fn replica_set() -> Self {
        Self {
            replica_set: true,
            ..Self::default()
        }
    }

    pub fn with_auth(mut self, user: &str, password: &str) -> Self {
        self.auth = Some(Credentials {
            user: user.to_string(),
            password: password.to_string(),
        });
        self
    }

    pub fn on_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
}

/// A running SecantusDB; stopped (SIGTERM, then kill) when dropped.
pub struct SecantusDb {
    process: ChildProcess,
    port: u16,
    options: SecantusOptions,
    // Declared last: dropped after the process is stopped.
    dir: TempDir,
}

impl SecantusDb {
    /// Starts a server and waits until it accepts connections. Panics when it cannot.
    pub fn start(options: SecantusOptions) -> Self {
        let binary = Self::binary().unwrap_or_else(|| {
            startup_failed(
                "SecantusDB",
                "secantusd-py not found ($SECANTUSD, /opt/secantus/bin, PATH)",
                "",
                INSTALL_HINT,
            )
        });
        let dir = tempfile::Builder::new()
            .prefix("indextap-secantus-")
            .tempdir()
            .unwrap_or_else(|err| startup_failed("SecantusDB", &err.to_string(), "", ""));
        let storage = match options.auth {
            Some(_) => dir.path().join("data"),
            None => PathBuf::from(":memory:"),
        };
        let log_path = dir.path().join("secantusd.log");

        if let Some(credentials) = &options.auth {
            // Without --auth first, to create the user; then the real server below.
            let mut bootstrap = spawn_listening(&binary, &options, &storage, false, &log_path);
            let port = bootstrap.1;
            if let Err(err) = create_root_user(port, credentials) {
                startup_failed(
                    "SecantusDB (auth bootstrap)",
                    &format!("createUser failed: {err:#}"),
                    &bootstrap.0.log_tail(),
                    INSTALL_HINT,
                );
            }
            if bootstrap.0.stop(STOP_GRACE).is_none() {
                startup_failed(
                    "SecantusDB (auth bootstrap)",
                    "the bootstrap server did not exit",
                    &bootstrap.0.log_tail(),
                    INSTALL_HINT,
                );
            }
        }

        let auth = options.auth.is_some();
        let (process, port) = spawn_listening(&binary, &options, &storage, auth, &log_path);
        Self {
            process,
            port,
            options,
            dir,
        }
    }

    /// The binary the fixture runs: `$SECANTUSD`, the `.ci/run` install, or `PATH`.
    pub fn binary() -> Option<PathBuf> {
        if let Some(path) = std::env::var_os("SECANTUSD") {
            return Some(PathBuf::from(path));
        }
        let default = Path::new(DEFAULT_BINARY);
        if default.is_file() {
            return Some(default.to_path_buf());
        }
        on_path(BINARY_NAME)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    pub fn options(&self) -> &SecantusOptions {
        &self.options
    }

    /// The address `hello` advertises in replica-set mode (`hosts`, `primary`, `me`).
    pub fn advertised_host(&self) -> String {
        self.addr().to_string()
    }

    /// A connection string for this server: credentials when auth is on, and
    /// `directConnection=true` for a standalone (a replica set is left to discovery).
    pub fn uri(&self) -> String {
        self.uri_via(self.addr())
    }

    /// The same connection string pointed at `addr` (a proxy in front of this server).
    pub fn uri_via(&self, addr: SocketAddr) -> String {
        let credentials = match &self.options.auth {
            Some(credentials) => format!(
                "{}:{}@",
                percent_encode(&credentials.user),
                percent_encode(&credentials.password)
            ),
            None => String::new(),
        };
        let mut options = Vec::new();
        if !self.options.replica_set {
            options.push("directConnection=true".to_string());
        }
        if self.options.auth.is_some() {
            options.push("authSource=admin&authMechanism=SCRAM-SHA-256".to_string());
        }
        options.push("serverSelectionTimeoutMS=15000".to_string());
        format!("mongodb://{credentials}{addr}/?{}", options.join("&"))
    }

    /// A driver client for [`Self::uri`].
    pub async fn client(&self) -> mongodb::Client {
        mongodb::Client::with_uri_str(self.uri())
            .await
            .unwrap_or_else(|err| panic!("client for {}: {err}", self.addr()))
    }

    /// Everything the server wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        self.process.log()
    }

    /// The fixture's temporary directory (log file, and storage when auth is on).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for URI userinfo).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Spawns the server on a fresh port and waits for it, retrying when the port was taken.
fn spawn_listening(
    binary: &Path,
    options: &SecantusOptions,
    storage: &Path,
    auth: bool,
    log_path: &Path,
) -> (ChildProcess, u16) {
    let mut last_failure = String::new();
    for _ in 0..PORT_ATTEMPTS {
        let port = options.port.unwrap_or_else(free_port);
        let mut command = Command::new(binary);
        command
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--storage-path")
            .arg(storage)
            .args(["--cache-size", CACHE_SIZE]);
        if !options.replica_set {
            command.arg("--standalone");
        }
        if auth {
            command.arg("--auth");
        }
        command.args(&options.extra_args);
        let log_offset = std::fs::metadata(log_path).map_or(0, |meta| meta.len());
        let mut process =
            ChildProcess::spawn("secantusd", &mut command, log_path).unwrap_or_else(|err| {
                startup_failed(
                    "SecantusDB",
                    &format!("cannot run {}: {err}", binary.display()),
                    "",
                    INSTALL_HINT,
                )
            });
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let listening = process
            .wait_until_listening(addr, START_TIMEOUT)
            .and_then(|()| wait_for_own_banner(&mut process, port, log_offset));
        match listening {
            Ok(()) => return (process, port),
            Err(err) => {
                let log = process.log_tail();
                process.stop(STOP_GRACE);
                if !log.to_ascii_lowercase().contains("address already in use") {
                    startup_failed("SecantusDB", &err.to_string(), &log, INSTALL_HINT);
                }
                last_failure = log;
            }
        }
    }
    startup_failed(
        "SecantusDB",
        "every port tried was already in use",
        &last_failure,
        INSTALL_HINT,
    )
}

/// What an operation's cursor holds (a find, an aggregate, listIndexes), read to its end;
/// panics on an error.
pub async fn all<T>(
    operation: impl IntoFuture<Output = mongodb::error::Result<mongodb::Cursor<T>>>,
) -> Vec<T>
where
    T: serde::de::DeserializeOwned + Send + Sync + Unpin,
{
    let cursor = operation
        .await
        .unwrap_or_else(|err| panic!("the operation failed: {err}"));
    cursor
        .try_collect()
        .await
        .unwrap_or_else(|err| panic!("reading the cursor: {err}"))
}

/// The document `filter` finds in `collection`; panics when the find fails or finds none.
pub async fn find_existing(
    collection: &mongodb::Collection<bson::Document>,
    filter: bson::Document,
) -> bson::Document {
    let shown = filter.to_string();
    collection
        .find_one(filter)
        .await
        .unwrap_or_else(|err| panic!("find {shown}: {err}"))
        .unwrap_or_else(|| panic!("no document matches {shown}"))
}

/// `explain` of a `find` of `filter` on `collection`, with execution statistics.
pub async fn explain_find(
    db: &mongodb::Database,
    collection: &str,
    filter: bson::Document,
) -> bson::Document {
    db.run_command(doc! {
        "explain": { "find": collection, "filter": filter },
        "verbosity": "executionStats",
    })
    .await
    .unwrap_or_else(|err| panic!("explain: {err}"))
}

/// The winning plan of an `explain` answer.
pub fn winning_plan(explained: &bson::Document) -> &bson::Document {
    explained
        .get_document("queryPlanner")
        .and_then(|planner| planner.get_document("winningPlan"))
        .unwrap_or_else(|_| panic!("explain has queryPlanner.winningPlan: {explained}"))
}

/// The stages of an explain plan, outermost first: each one's `inputStage` is the next.
pub fn plan_walk(plan: &bson::Document) -> impl Iterator<Item = &bson::Document> {
    std::iter::successors(Some(plan), |stage| stage.get_document("inputStage").ok())
}

/// The stage names of an explain plan, outermost first (`FETCH`, `IXSCAN`).
pub fn plan_stages(plan: &bson::Document) -> Vec<String> {
    plan_walk(plan)
        .filter_map(|stage| stage.get_str("stage").ok())
        .map(str::to_owned)
        .collect()
}

/// A number of a server's answer, whichever BSON number type it came as; panics on anything
/// else.
pub fn number(document: &bson::Document, key: &str) -> i64 {
    match document.get(key) {
        Some(bson::Bson::Int32(value)) => i64::from(*value),
        Some(bson::Bson::Int64(value)) => *value,
        Some(bson::Bson::Double(value)) => *value as i64,
        other => panic!("{key} is not a number: {other:?} in {document}"),
    }
}

/// The error a `find_one` on `app.notes` meets through a client of `uri`, for tests of what
/// a server (or the proxy in front of it) refuses; panics if the find succeeds.
pub async fn refused_find(uri: &str) -> mongodb::error::Error {
    let client = mongodb::Client::with_uri_str(uri)
        .await
        .unwrap_or_else(|err| panic!("client for {uri}: {err}"));
    let refused = client
        .database("app")
        .collection::<bson::Document>("notes")
        .find_one(doc! {})
        .await
        .expect_err("the find is refused");
    client.shutdown().await;
    refused
}

/// Whether `error` is the driver's authentication failure.
pub fn is_authentication_error(error: &mongodb::error::Error) -> bool {
    matches!(
        *error.kind,
        mongodb::error::ErrorKind::Authentication { .. }
    )
}

/// A port that accepts connections is not proof that *this* server bound it: the port was
/// found free, released, and only then bound by the child, so another process may hold it.
/// SecantusDB logs `listening on HOST:PORT` right after it binds; this waits for that line in
/// what the child wrote (the log from `log_offset` on), or for the child to exit.
fn wait_for_own_banner(
    process: &mut ChildProcess,
    port: u16,
    log_offset: u64,
) -> std::io::Result<()> {
    let banner = format!("listening on 127.0.0.1:{port}");
    let offset = usize::try_from(log_offset).unwrap_or(0);
    let seen = poll(START_TIMEOUT, Duration::from_millis(20), || {
        let log = process.log();
        if log.get(offset..).unwrap_or(&log).contains(&banner) {
            return Ok(Some(()));
        }
        match process.exited() {
            Some(status) => Err(std::io::Error::other(format!("exited early ({status})"))),
            None => Ok(None),
        }
    })?;
    seen.ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("port {port} accepts connections, but the server never said it listens there"),
        )
    })
}

/// Creates `credentials` as a root user, with the real driver, on a thread of its own so this
/// works whether or not the caller is inside a tokio runtime.
fn create_root_user(port: u16, credentials: &Credentials) -> anyhow::Result<()> {
    let uri = format!("mongodb://127.0.0.1:{port}/?directConnection=true");
    let command = doc! {
        "createUser": &credentials.user,
        "pwd": &credentials.password,
        "roles": ["root"],
        "mechanisms": ["SCRAM-SHA-256"],
    };
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let client = mongodb::Client::with_uri_str(uri).await?;
            client.database("admin").run_command(command).await?;
            client.shutdown().await;
            anyhow::Ok(())
        })
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the createUser thread panicked"))?
}
