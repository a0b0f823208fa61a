//! [`Postgres`]: an ephemeral PostgreSQL cluster owned by a test.
//!
//! `initdb` into a temporary directory, `pg_ctl start` on a free loopback port with the
//! socket directory inside that temporary directory, `pg_ctl stop -m immediate` on drop.
//! PostgreSQL refuses to run as root, so when the tests run as root the server commands run
//! through `runuser` as `$PG_OS_USER`, else `postgres`, else `indextap-test` (created with
//! `useradd` when missing), and the temporary directory is handed to that user.
//!
//! Authentication: the superuser [`SUPERUSER`] and any other role connect with `trust`;
//! [`SCRAM_USER`] must authenticate with SCRAM-SHA-256 over TCP, for tests of the
//! authentication exchange. With [`PostgresOptions::tls`] the server has `ssl = on` with a
//! self-signed certificate (made by rcgen) for `localhost` and `127.0.0.1`; clients verify it
//! against [`Postgres::ca_cert_path`].
//!
//! The server binaries come from `$PG_BIN_DIR`, else the newest `/usr/lib/postgresql/*/bin`,
//! else `pg_config --bindir`.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use tempfile::TempDir;

use crate::child::{read_lossy, run, show_log_if_panicking, tail, TAIL_LINES};
use crate::ports::free_port;
use crate::startup_failed;

/// The bootstrap superuser (`initdb -U`), trusted from loopback.
pub const SUPERUSER: &str = "postgres";
/// A role that must use SCRAM-SHA-256 over TCP.
pub const SCRAM_USER: &str = "indextap_scram";
/// [`SCRAM_USER`]'s password (test-only).
pub const SCRAM_PASSWORD: &str = "indextap-scram-pw";
/// The OS user created when the tests run as root and no `postgres` user exists.
const FALLBACK_OS_USER: &str = "indextap-test";
const PG_ROOT: &str = "/usr/lib/postgresql";
const PORT_ATTEMPTS: usize = 3;
/// `pg_ctl start -t`, in seconds.
const START_TIMEOUT_SECS: &str = "60";
/// Client variables from the caller's environment that would change what we connect to;
/// every client tool a test starts has them removed.
pub const CLIENT_ENV: [&str; 10] = [
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGSERVICE",
    "PGSSLMODE",
    "PGOPTIONS",
    "PGSSLROOTCERT",
];
const INSTALL_HINT: &str =
    "install PostgreSQL (apt-get install postgresql postgresql-15-hypopg) or set PG_BIN_DIR";

/// Settings for a throwaway cluster: durability off, small memory, predictable plans.
const SERVER_CONF: &str = "
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 50
shared_buffers = 32MB
max_parallel_workers_per_gather = 0
password_encryption = 'scram-sha-256'
";

/// How to run the cluster.
#[derive(Debug, Clone, Default)]
pub struct PostgresOptions {
    /// `ssl = on` with a self-signed certificate.
    pub tls: bool,
    /// `max_connections`, when more than the default 50 are needed (the memory benchmark's
    /// idle connections).
    pub max_connections: Option<u32>,
}

/// A running PostgreSQL cluster; stopped (immediate mode) when dropped.
pub struct Postgres {
    port: u16,
    bin_dir: PathBuf,
    os_user: Option<String>,
    data_dir: PathBuf,
    log_path: PathBuf,
    ca_cert: Option<PathBuf>,
    // Declared last: removed after the server is stopped.
    dir: TempDir,
}

impl Postgres {
    /// Starts a plain (non-TLS) cluster. Panics when it cannot.
    pub fn start() -> Self {
        Self::start_with(PostgresOptions::default())
    }

    /// Starts a cluster with `options`. Panics when it cannot.
    pub fn start_with(options: PostgresOptions) -> Self {
        let fail = |reason: String, log: &str| -> ! {
            startup_failed("PostgreSQL", &reason, log, INSTALL_HINT)
        };
        let bin_dir =
            bin_dir().unwrap_or_else(|| fail("no PostgreSQL server binaries found".into(), ""));
        let os_user = os_user().unwrap_or_else(|err| fail(format!("{err:#}"), ""));
        let dir = tempfile::Builder::new()
            .prefix("indextap-pg-")
            .tempdir()
            .unwrap_or_else(|err| fail(err.to_string(), ""));
        let data_dir = dir.path().join("data");
        let log_path = dir.path().join("postgres.log");
        let mut server = Self {
            port: 0,
            bin_dir,
            os_user,
            data_dir,
            log_path,
            ca_cert: None,
            dir,
        };
        if let Err(err) = server.init(&options) {
            fail(format!("{err:#}"), "");
        }
        server.start_server();
        if let Err(err) = server.create_scram_user() {
            fail(format!("{err:#}"), &server.log_tail());
        }
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The directory holding the server's Unix socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// A key=value connection string (tokio-postgres, libpq) for `db` as [`SUPERUSER`].
    pub fn connection_string(&self, db: &str) -> String {
        self.connection_string_via(self.addr(), db)
    }

    /// The same, pointed at `addr` (a proxy in front of this server).
    pub fn connection_string_via(&self, addr: SocketAddr, db: &str) -> String {
        format!(
            "host={} port={} user={SUPERUSER} dbname={db} connect_timeout=10",
            addr.ip(),
            addr.port()
        )
    }

    /// A connection string for `db` as [`SCRAM_USER`], with its password.
    pub fn scram_connection_string(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={SCRAM_USER} password={SCRAM_PASSWORD} dbname={db} connect_timeout=10",
            self.port
        )
    }

    /// A `postgres://` URL for `db` as [`SUPERUSER`].
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{db}", self.port)
    }

    /// The self-signed certificate to trust (`sslrootcert`), when started with TLS.
    pub fn ca_cert_path(&self) -> Option<&Path> {
        self.ca_cert.as_deref()
    }

    /// `CREATE DATABASE "name"`.
    pub fn create_database(&self, name: &str) -> anyhow::Result<()> {
        let statement = format!("CREATE DATABASE {}", quote_ident(name));
        self.psql(&["-c", &statement]).map(drop)
    }

    /// `CREATE DATABASE "name"`, then `schema` (any SQL) run in it by a client straight to the
    /// server, which is returned. Panics on an error.
    pub async fn create_database_with(&self, name: &str, schema: &str) -> tokio_postgres::Client {
        self.create_database(name)
            .unwrap_or_else(|err| panic!("create database {name}: {err:#}"));
        let client = connect(&self.connection_string(name)).await;
        client
            .batch_execute(schema)
            .await
            .unwrap_or_else(|err| panic!("the schema of {name}: {err}"));
        client
    }

    /// Runs `psql` against the `postgres` database with `args`; returns its stdout.
    pub fn psql(&self, args: &[&str]) -> anyhow::Result<String> {
        self.psql_in(SUPERUSER, args)
    }

    /// Runs `psql` against `db` with `args` (`-X -v ON_ERROR_STOP=1` are always set).
    pub fn psql_in(&self, db: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut command = self.client_command("psql");
        command
            .args(["-X", "-v", "ON_ERROR_STOP=1"])
            .args(self.client_target(db))
            .args(args);
        run(&mut command)
    }

    /// Runs `pgbench` against `db` with `args`; returns its stdout.
    pub fn pgbench(&self, db: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut command = self.client_command("pgbench");
        command.args(self.client_target(db)).args(args);
        run(&mut command)
    }

    /// Stops the server (fast shutdown), keeping its data and port: for tests of an upstream
    /// that goes away. [`Self::start_again`] brings it back on the same port.
    pub fn stop_server(&self) -> anyhow::Result<()> {
        let mut pg_ctl = self.server_command("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "fast", "-w", "stop"]);
        run(&mut pg_ctl).context("pg_ctl stop").map(drop)
    }

    /// Starts the server again after [`Self::stop_server`], on the same port.
    pub fn start_again(&self) -> anyhow::Result<()> {
        self.pg_ctl_start(self.port)
    }

    /// `pg_ctl start` on `port`, waiting until the server accepts connections.
    fn pg_ctl_start(&self, port: u16) -> anyhow::Result<()> {
        let server_options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1",
            self.socket_dir().display()
        );
        let mut pg_ctl = self.server_command("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&self.log_path)
            .args([
                "-w",
                "-t",
                START_TIMEOUT_SECS,
                "-o",
                &server_options,
                "start",
            ]);
        run(&mut pg_ctl).context("pg_ctl start").map(drop)
    }

    /// The server log so far.
    pub fn logs(&self) -> String {
        read_lossy(&self.log_path)
    }

    fn log_tail(&self) -> String {
        tail(&self.logs(), TAIL_LINES)
    }

    fn client_target(&self, db: &str) -> [String; 8] {
        [
            "-h".into(),
            "127.0.0.1".into(),
            "-p".into(),
            self.port.to_string(),
            "-U".into(),
            SUPERUSER.into(),
            "-d".into(),
            db.into(),
        ]
    }

    /// A client tool, preferring the server's own version of it.
    fn client_command(&self, tool: &str) -> Command {
        let bundled = self.bin_dir.join(tool);
        let mut command = Command::new(if bundled.is_file() {
            bundled
        } else {
            PathBuf::from(tool)
        });
        for variable in CLIENT_ENV {
            command.env_remove(variable);
        }
        command.env("PGCONNECT_TIMEOUT", "10");
        command
    }

    /// A server tool, run as the cluster's OS user when we are root.
    fn server_command(&self, tool: &str) -> Command {
        let program = self.bin_dir.join(tool);
        let mut command = match &self.os_user {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(program);
                command
            }
            None => Command::new(program),
        };
        command.current_dir(self.dir.path());
        command
    }

    fn init(&mut self, options: &PostgresOptions) -> anyhow::Result<()> {
        let socket_dir = self.socket_dir();
        std::fs::create_dir(&socket_dir).context("creating the socket directory")?;
        self.chown_all()?;
        let mut initdb = self.server_command("initdb");
        initdb
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C"])
            .args(["--no-sync", "--no-instructions"]);
        run(&mut initdb).context("initdb")?;

        let mut conf = SERVER_CONF.to_string();
        if options.tls {
            self.write_certificate()?;
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        }
        if let Some(max) = options.max_connections {
            // A later line wins in postgresql.conf.
            conf.push_str(&format!("max_connections = {max}\n"));
        }
        append(&self.data_dir.join("postgresql.conf"), &conf)?;
        std::fs::write(self.data_dir.join("pg_hba.conf"), pg_hba()).context("pg_hba.conf")?;
        self.chown_all()
    }

    fn write_certificate(&mut self) -> anyhow::Result<()> {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let certified = rcgen::generate_simple_self_signed(names).context("rcgen")?;
        let cert_pem = certified.cert.pem();
        std::fs::write(self.data_dir.join("server.crt"), &cert_pem).context("server.crt")?;
        let key_path = self.data_dir.join("server.key");
        std::fs::write(&key_path, certified.key_pair.serialize_pem()).context("server.key")?;
        // PostgreSQL refuses a key that others can read.
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))?;
        let ca_path = self.dir.path().join("ca.crt");
        std::fs::write(&ca_path, cert_pem).context("ca.crt")?;
        self.ca_cert = Some(ca_path);
        Ok(())
    }

    fn chown_all(&self) -> anyhow::Result<()> {
        let Some(user) = &self.os_user else {
            return Ok(());
        };
        let mut chown = Command::new("chown");
        chown.arg("-R").arg(format!("{user}:")).arg(self.dir.path());
        run(&mut chown).map(drop)
    }

    /// `pg_ctl start` on a free port; a new port when the chosen one was taken meanwhile.
    fn start_server(&mut self) {
        let mut last_failure = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            match self.pg_ctl_start(port) {
                Ok(_) => {
                    self.port = port;
                    return;
                }
                Err(err) => {
                    let log = self.log_tail();
                    if !log.contains("could not bind") && !log.contains("already in use") {
                        startup_failed("PostgreSQL", &format!("{err:#}"), &log, INSTALL_HINT);
                    }
                    last_failure = log;
                }
            }
        }
        startup_failed(
            "PostgreSQL",
            "every port tried was already in use",
            &last_failure,
            INSTALL_HINT,
        )
    }

    fn create_scram_user(&self) -> anyhow::Result<()> {
        let statement =
            format!("CREATE ROLE {SCRAM_USER} LOGIN SUPERUSER PASSWORD '{SCRAM_PASSWORD}'");
        self.psql(&["-q", "-c", &statement])
            .context("creating the SCRAM role")
            .map(drop)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let who = format!("postgres (port {})", self.port);
        show_log_if_panicking(&who, &self.log_path, || self.log_tail());
        if self.port == 0 {
            return;
        }
        let mut pg_ctl = self.server_command("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "immediate", "-w", "stop"]);
        if let Err(err) = run(&mut pg_ctl) {
            eprintln!("pg_ctl stop failed: {err:#}");
        }
    }
}

/// SCRAM for [`SCRAM_USER`] over TCP, trust for everything else.
fn pg_hba() -> String {
    format!(
        "local all all trust\n\
         host all {SCRAM_USER} 127.0.0.1/32 scram-sha-256\n\
         host all {SCRAM_USER} ::1/128 scram-sha-256\n\
         host all all 127.0.0.1/32 trust\n\
         host all all ::1/128 trust\n"
    )
}

fn append(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// tokio-postgres with `NoTls` to `conninfo`, its connection driven on a task; panics when
/// it cannot connect.
pub async fn connect(conninfo: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|err| panic!("connect {conninfo}: {err:?}"));
    tokio::spawn(connection);
    client
}

/// The parameters of one statement, boxed, so that a table of statements can give each its
/// own types.
pub type Params = Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>>;

/// `params` as tokio-postgres takes them.
pub fn param_refs(params: &Params) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|param| param.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect()
}

/// The number `sql` (a `SELECT count(*) ...` or the like) answers with `params`; panics on
/// an error.
pub async fn number(
    client: &tokio_postgres::Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> i64 {
    client
        .query_one(sql, params)
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
        .get(0)
}

/// A double-quoted SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `$PG_BIN_DIR`, the newest `/usr/lib/postgresql/<major>/bin`, or `pg_config --bindir`.
pub fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN_DIR") {
        return Some(PathBuf::from(dir));
    }
    let newest = std::fs::read_dir(PG_ROOT)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let major: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((major, bin))
        })
        .max_by_key(|(major, _)| *major)
        .map(|(_, bin)| bin);
    newest.or_else(|| {
        let output = run(Command::new("pg_config").arg("--bindir")).ok()?;
        let dir = PathBuf::from(output.trim());
        dir.join("initdb").is_file().then_some(dir)
    })
}

/// The OS user to run the server as: `None` when we are not root.
fn os_user() -> anyhow::Result<Option<String>> {
    let uid = run(Command::new("id").arg("-u")).context("id -u")?;
    if uid.trim() != "0" {
        return Ok(None);
    }
    if let Some(user) = std::env::var_os("PG_OS_USER") {
        return Ok(Some(user.to_string_lossy().into_owned()));
    }
    for user in [SUPERUSER, FALLBACK_OS_USER] {
        if user_exists(user) {
            return Ok(Some(user.to_string()));
        }
    }
    let mut useradd = Command::new("useradd");
    useradd.args([
        "--system",
        "--no-create-home",
        "--shell",
        "/usr/sbin/nologin",
    ]);
    useradd.arg(FALLBACK_OS_USER);
    // Another test may have created it a moment ago: only its existence matters.
    let created = run(&mut useradd);
    if user_exists(FALLBACK_OS_USER) {
        return Ok(Some(FALLBACK_OS_USER.to_string()));
    }
    created
        .map(|_| Some(FALLBACK_OS_USER.to_string()))
        .context("creating a non-root user for PostgreSQL")
}

fn user_exists(user: &str) -> bool {
    run(Command::new("id").args(["-u", user])).is_ok()
}
