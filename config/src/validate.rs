//! Validation: every rule a configuration must meet, checked all at once.
//!
//! Problems are collected rather than returned one by one, so an operator fixes a file in
//! one pass. Each message starts with the setting's path in the file
//! (`postgres.listeners[0].listen`), whatever layer set it. Secrets are never quoted.
//!
//! ## Layout
//! - [`Config::validate`]: the rules.
//! - address parsing: listens must be `IP:PORT` or `localhost:PORT` (something we can bind);
//!   upstreams and advertised addresses may use a hostname.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use crate::error::ConfigError;
use crate::model::{Config, ListenerTls, TlsMode, MIN_MAX_AGGREGATE_BYTES};
use crate::sink::{check_sidecar_id, SinkTarget};

impl Config {
    /// Checks every rule; [`ConfigError::Invalid`] lists every problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Problems::default();
        self.check_admin(&mut problems);
        self.check_listeners(&mut problems);
        self.check_sink(&mut problems);
        self.check_numbers(&mut problems);
        if problems.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems.0))
        }
    }

    fn check_admin(&self, problems: &mut Problems) {
        let admin = &self.admin;
        if let (Some(_), Some(_)) = (&admin.token_file, &admin.token_env) {
            problems.push(
                "admin",
                "set token_file or token_env, not both: which one wins would be a guess",
            );
        }
        if let Some(file) = &admin.token_file {
            check_file(problems, "admin.token_file", file);
        }
        if let Some(var) = &admin.token_env {
            let valid = !var.is_empty()
                && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !var.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                problems.push(
                    "admin.token_env",
                    format!("{var:?} is not an environment variable name"),
                );
            }
        }
        if let Some(uri) = &self.mongo.admin_uri {
            if !(uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://")) {
                problems.push(
                    "mongo.admin_uri",
                    "must start with mongodb:// or mongodb+srv://",
                );
            }
        }
        if let Some(url) = &self.postgres.admin_url {
            // A `key=value` connection string has no scheme; a URL must be PostgreSQL's.
            if let Some((scheme, _)) = url.split_once("://") {
                if scheme != "postgres" && scheme != "postgresql" {
                    problems.push(
                        "postgres.admin_url",
                        "a URL must start with postgres:// or postgresql://",
                    );
                }
            } else if url.trim().is_empty() {
                problems.push("postgres.admin_url", "is empty");
            }
        }
    }

    fn check_listeners(&self, problems: &mut Problems) {
        if self.mongo.listeners.is_empty() && self.postgres.listeners.is_empty() {
            problems.push(
                "listeners",
                "none configured: add [[mongo.listeners]] or [[postgres.listeners]] to the \
                 file, or set a listen/upstream pair (INDEXTAP_MONGO_LISTEN + \
                 INDEXTAP_MONGO_UPSTREAM, --pg-listen + --pg-upstream, ...)",
            );
        }

        let mut addresses = Addresses::default();
        addresses.listen(problems, "admin.listen".to_owned(), &self.admin.listen);
        let mut names: HashMap<String, String> = HashMap::new();

        for (index, listener) in self.mongo.listeners.iter().enumerate() {
            let at = format!("mongo.listeners[{index}]");
            addresses.listener(problems, &at, &listener.listen, &listener.upstream);
            if let Some(advertise) = &listener.advertise {
                check_remote(problems, &format!("{at}.advertise"), advertise);
            }
            check_name(problems, &mut names, &at, listener.effective_name());
            check_tls(problems, &at, &listener.tls);
        }

        for (index, listener) in self.postgres.listeners.iter().enumerate() {
            let at = format!("postgres.listeners[{index}]");
            addresses.listener(problems, &at, &listener.listen, &listener.upstream);
            check_name(problems, &mut names, &at, listener.effective_name());
            check_tls(problems, &at, &listener.tls);
        }

        check_collisions(problems, &addresses.bound);
        check_loops(problems, &addresses.bound, &addresses.upstreams);
    }

    fn check_sink(&self, problems: &mut Problems) {
        let sink = &self.snapshot_sink;
        if let Some(url) = &sink.url {
            let admin_url = self.postgres.admin_url.as_deref();
            if let Err(message) =
                SinkTarget::parse(url).and_then(|target| target.resolve(admin_url))
            {
                problems.push("snapshot_sink.url", message);
            }
        }
        if let Some(id) = &sink.sidecar_id {
            if let Err(message) = check_sidecar_id(id) {
                problems.push("snapshot_sink.sidecar_id", message);
            }
        }
    }

    fn check_numbers(&self, problems: &mut Problems) {
        let capture = &self.capture;
        for (field, value) in [
            ("capture.channel_capacity", capture.channel_capacity),
            ("capture.analysis_queue", capture.analysis_queue),
            ("capture.max_inspect_bytes", capture.max_inspect_bytes),
            ("capture.max_shapes", capture.max_shapes),
            ("capture.sql_cache_entries", capture.sql_cache_entries),
            ("capture.workers", capture.workers),
        ] {
            if value == 0 {
                problems.push(field, "must be greater than 0");
            }
        }
        let advice = &self.advice;
        if advice.min_gain_percent > 100 {
            problems.push("advice.min_gain_percent", "must be at most 100");
        }
        if advice.max_verified_candidates == 0 {
            problems.push("advice.max_verified_candidates", "must be greater than 0");
        }
        if advice.max_indexes_per_namespace == 0 {
            problems.push("advice.max_indexes_per_namespace", "must be greater than 0");
        }
        if advice.mongo_sample_size == 0 {
            problems.push("advice.mongo_sample_size", "must be greater than 0");
        }
        if capture.max_inspect_total_bytes < capture.max_inspect_bytes {
            problems.push(
                "capture.max_inspect_total_bytes",
                format!(
                    "{} is below capture.max_inspect_bytes ({}): the largest inspectable frame could never be gathered",
                    capture.max_inspect_total_bytes, capture.max_inspect_bytes
                ),
            );
        }
        if capture.max_aggregate_bytes < MIN_MAX_AGGREGATE_BYTES {
            problems.push(
                "capture.max_aggregate_bytes",
                format!(
                    "{} is below the minimum of {MIN_MAX_AGGREGATE_BYTES} (1 MiB)",
                    capture.max_aggregate_bytes
                ),
            );
        }
        if self.runtime.threads > crate::model::MAX_THREADS {
            problems.push(
                "runtime.threads",
                format!(
                    "must be at most {} (0 means half the cores)",
                    crate::model::MAX_THREADS
                ),
            );
        }
        if self.state.interval_secs == 0 {
            problems.push("state.interval_secs", "must be greater than 0");
        }
        if self.log.level.trim().is_empty() {
            problems.push("log.level", "is empty; use a level such as \"info\"");
        }
    }
}

#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn push(&mut self, field: &str, message: impl std::fmt::Display) {
        self.0.push(format!("{field}: {message}"));
    }
}

/// Every address the proxy binds (admin and listeners) and every upstream, by setting path,
/// for the collision and loop checks that need them all.
#[derive(Default)]
struct Addresses<'a> {
    bound: Vec<(String, SocketAddr)>,
    upstreams: Vec<(String, &'a str)>,
}

impl<'a> Addresses<'a> {
    /// A listen address, checked and (when it parses) kept under `field`.
    fn listen(&mut self, problems: &mut Problems, field: String, text: &str) {
        if let Some(addr) = check_listen(problems, &field, text) {
            self.bound.push((field, addr));
        }
    }

    /// A listener's `listen` and `upstream`, checked and kept.
    fn listener(&mut self, problems: &mut Problems, at: &str, listen: &str, upstream: &'a str) {
        self.listen(problems, format!("{at}.listen"), listen);
        let field = format!("{at}.upstream");
        check_remote(problems, &field, upstream);
        self.upstreams.push((field, upstream));
    }
}

/// A bindable address: `IP:PORT` or `localhost:PORT`. Port 0 (any free port) is allowed.
fn parse_listen(text: &str) -> Result<SocketAddr, ListenError> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Some(port) = text.strip_prefix("localhost:") {
        return port
            .parse::<u16>()
            .map(|port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
            .map_err(|_| ListenError::NotHostPort);
    }
    match parse_remote(text) {
        Ok(()) => Err(ListenError::Hostname),
        Err(_) => Err(ListenError::NotHostPort),
    }
}

enum ListenError {
    NotHostPort,
    Hostname,
}

fn check_listen(problems: &mut Problems, field: &str, text: &str) -> Option<SocketAddr> {
    match parse_listen(text) {
        Ok(addr) => Some(addr),
        Err(ListenError::NotHostPort) => {
            problems.push(field, format!("{text:?} is not a HOST:PORT address"));
            None
        }
        Err(ListenError::Hostname) => {
            problems.push(
                field,
                format!("{text:?} must be IP:PORT or localhost:PORT (a hostname cannot be bound)"),
            );
            None
        }
    }
}

/// A remote address: `IP:PORT`, `[IPv6]:PORT` or `hostname:PORT`, with a non-zero port.
fn parse_remote(text: &str) -> Result<(), &'static str> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return if addr.port() == 0 {
            Err("port 0")
        } else {
            Ok(())
        };
    }
    let (host, port) = text.rsplit_once(':').ok_or("no port")?;
    let port: u16 = port.parse().map_err(|_| "bad port")?;
    if port == 0 {
        return Err("port 0");
    }
    let valid_host = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if valid_host {
        Ok(())
    } else {
        Err("bad host")
    }
}

fn check_remote(problems: &mut Problems, field: &str, text: &str) {
    match parse_remote(text) {
        Ok(()) => {}
        Err("port 0") => problems.push(field, format!("{text:?} has port 0")),
        Err(_) => problems.push(field, format!("{text:?} is not a HOST:PORT address")),
    }
}

fn check_file(problems: &mut Problems, field: &str, path: &Path) {
    if !path.is_file() {
        problems.push(
            field,
            format!("{} does not exist or is not a file", path.display()),
        );
    }
}

/// A listener's TLS table: terminating needs a certificate and its key, and every file named
/// must exist.
fn check_tls(problems: &mut Problems, at: &str, tls: &ListenerTls) {
    if tls.mode == TlsMode::Terminate {
        for (field, file) in [("cert_file", &tls.cert_file), ("key_file", &tls.key_file)] {
            let field = format!("{at}.tls.{field}");
            match file {
                Some(file) => check_file(problems, &field, file),
                None => problems.push(&field, "is required when tls.mode = \"terminate\""),
            }
        }
    }
    if let Some(ca) = &tls.upstream_ca_file {
        check_file(problems, &format!("{at}.tls.upstream_ca_file"), ca);
    }
}

fn check_name(
    problems: &mut Problems,
    names: &mut HashMap<String, String>,
    at: &str,
    name: String,
) {
    if name.trim().is_empty() {
        problems.push(&format!("{at}.name"), "is empty");
        return;
    }
    // Names label metrics: two listeners under one name would merge their series.
    if let Some(other) = names.get(&name) {
        problems.push(
            &format!("{at}.name"),
            format!("{name:?} is also the name of {other}"),
        );
    } else {
        names.insert(name, at.to_owned());
    }
}

/// Two sockets cannot bind one port on the same address, nor when either is the
/// unspecified address (0.0.0.0 / ::), which covers every address.
fn check_collisions(problems: &mut Problems, bound: &[(String, SocketAddr)]) {
    for (index, (field, addr)) in bound.iter().enumerate() {
        if addr.port() == 0 {
            continue;
        }
        let earlier = bound.get(..index).unwrap_or_default();
        if let Some((other, _)) = earlier.iter().find(|(_, other)| {
            other.port() == addr.port()
                && (other.ip() == addr.ip()
                    || other.ip().is_unspecified()
                    || addr.ip().is_unspecified())
        }) {
            problems.push(
                field,
                format!("port {} is also used by {other}", addr.port()),
            );
        }
    }
}

/// An upstream that is one of our own listeners would make the proxy connect to itself.
fn check_loops(
    problems: &mut Problems,
    bound: &[(String, SocketAddr)],
    upstreams: &[(String, &str)],
) {
    for (field, upstream) in upstreams {
        let Ok(target) = parse_listen(upstream) else {
            continue;
        };
        if let Some((listen, _)) = bound.iter().find(|(_, addr)| {
            addr.port() == target.port() && addr.port() != 0 && addr.ip() == target.ip()
        }) {
            problems.push(
                field,
                format!("{upstream:?} is this proxy's own {listen}: it would connect to itself"),
            );
        }
    }
}
