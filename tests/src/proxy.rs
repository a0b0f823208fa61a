//! [`IndextapProcess`]: the real `indextap` binary, run as a child of the test.
//!
//! The binary is `$INDEXTAP_BIN`, else `<target dir>/debug/indextap`. When that file is
//! missing it is built once per test process with `cargo build -p indextap-proxy --bin
//! indextap`. The README's test command (`scripts/test.sh`) builds it before testing; when
//! running only this crate's tests after changing the proxy, build it first (or set
//! `INDEXTAP_BIN`), or the tests run the previous binary.
//!
//! The process's stdout and stderr go to one file ([`IndextapProcess::logs`], which the leak
//! test searches). Start-up waits until the admin API answers `GET /healthz`; the admin
//! address is [`IndextapOptions::admin`], or else read from the arguments: the value after
//! (or `=`-joined to) the first flag whose name contains `admin` and whose value is a socket
//! address, e.g. `--admin-listen 127.0.0.1:9000`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::OnceLock;
use std::time::Duration;

use tempfile::TempDir;

use crate::child::{run, ChildProcess, STOP_GRACE};
use crate::http::{self, HttpReply};
use crate::ports::free_addr;
use crate::{startup_failed, workspace_root};

/// The admin API's liveness endpoint.
pub const HEALTH_PATH: &str = "/healthz";
const START_TIMEOUT: Duration = Duration::from_secs(30);
const BUILD_HINT: &str =
    "build it with `cargo build -p indextap-proxy --bin indextap`, or set INDEXTAP_BIN";

/// How to run the process.
#[derive(Debug, Clone, Default)]
pub struct IndextapOptions {
    /// The program to run; default [`IndextapProcess::binary`].
    pub binary: Option<PathBuf>,
    pub args: Vec<String>,
    /// Where the admin API listens; default: found in `args`.
    pub admin: Option<SocketAddr>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

impl IndextapOptions {
    pub fn new(args: &[&str]) -> Self {
        Self {
            args: args.iter().map(|arg| arg.to_string()).collect(),
            ..Self::default()
        }
    }

    /// `indextap proxy` with a MongoDB listener on `listen` in front of `upstream`, and the
    /// admin API on a fresh loopback port.
    pub fn mongo(listen: SocketAddr, upstream: SocketAddr) -> Self {
        Self::fronting("mongo", listen, upstream)
    }

    /// `indextap proxy` with a PostgreSQL listener on `listen` in front of `upstream`, and
    /// the admin API on a fresh loopback port.
    pub fn postgres(listen: SocketAddr, upstream: SocketAddr) -> Self {
        Self::fronting("pg", listen, upstream)
    }

    fn fronting(engine: &str, listen: SocketAddr, upstream: SocketAddr) -> Self {
        let admin = free_addr();
        Self {
            admin: Some(admin),
            ..Self::new(&["proxy"])
        }
        .args(&[&format!("--{engine}-listen"), &listen.to_string()])
        .args(&[&format!("--{engine}-upstream"), &upstream.to_string()])
        .args(&["--admin-listen", &admin.to_string()])
    }

    /// `indextap proxy --config path`, where the file puts the admin API on `admin`.
    pub fn config(path: &Path, admin: SocketAddr) -> Self {
        Self {
            admin: Some(admin),
            ..Self::new(&["proxy", "--config", &path.display().to_string()])
        }
    }

    /// More arguments, after those given so far.
    pub fn args(mut self, more: &[&str]) -> Self {
        self.args.extend(more.iter().map(|arg| arg.to_string()));
        self
    }

    /// One more environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }
}

/// A running `indextap`; SIGTERM (then kill) when dropped.
pub struct IndextapProcess {
    process: ChildProcess,
    admin: SocketAddr,
    // Declared last: removed after the process is stopped.
    dir: TempDir,
}

impl IndextapProcess {
    /// Runs `indextap` with `args` and waits for `/healthz`. Panics when it cannot.
    pub fn start(args: &[&str]) -> Self {
        Self::start_with(IndextapOptions::new(args))
    }

    /// Runs the process described by `options` and waits for `/healthz`.
    pub fn start_with(options: IndextapOptions) -> Self {
        let admin = options
            .admin
            .or_else(|| admin_addr_in(&options.args))
            .unwrap_or_else(|| {
                startup_failed(
                    "indextap",
                    "no admin address: pass IndextapOptions::admin or an --admin… flag",
                    "",
                    BUILD_HINT,
                )
            });
        let binary = options.binary.clone().unwrap_or_else(Self::binary);
        let dir = tempfile::Builder::new()
            .prefix("indextap-proxy-")
            .tempdir()
            .unwrap_or_else(|err| startup_failed("indextap", &err.to_string(), "", ""));
        let mut command = Command::new(&binary);
        // indextap rejects unknown INDEXTAP_* variables, and the caller's own (INDEXTAP_BIN,
        // a developer's INDEXTAP_ADMIN_LISTEN) are not the test's: only `options.env` counts.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("INDEXTAP_") {
                command.env_remove(key);
            }
        }
        command
            .args(&options.args)
            .envs(options.env.iter().map(|(key, value)| (key, value)));
        let mut process =
            ChildProcess::spawn("indextap", &mut command, &dir.path().join("indextap.log"))
                .unwrap_or_else(|err| {
                    startup_failed(
                        "indextap",
                        &format!("cannot run {}: {err}", binary.display()),
                        "",
                        BUILD_HINT,
                    )
                });
        let ready = http::wait_until_ok(admin, HEALTH_PATH, START_TIMEOUT, || {
            match process.exited() {
                Some(status) => anyhow::bail!("exited early ({status})"),
                None => Ok(()),
            }
        });
        if let Err(err) = ready {
            let log = process.log_tail();
            startup_failed("indextap", &format!("{err:#}"), &log, BUILD_HINT);
        }
        Self {
            process,
            admin,
            dir,
        }
    }

    /// `$INDEXTAP_BIN`, or the workspace's debug binary (built once if missing).
    pub fn binary() -> PathBuf {
        if let Some(path) = std::env::var_os("INDEXTAP_BIN") {
            return PathBuf::from(path);
        }
        static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
        let built = BUILT.get_or_init(|| {
            let path = target_dir().join("debug").join("indextap");
            if path.is_file() {
                return Ok(path);
            }
            build().map(|()| path).map_err(|err| format!("{err:#}"))
        });
        match built {
            Ok(path) => path.clone(),
            Err(err) => startup_failed("indextap", err, "", BUILD_HINT),
        }
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// A scratch directory that lives as long as the process (state files, configs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        self.process.log()
    }

    /// `GET path` on the admin API; any status is a reply.
    pub fn get(&self, path: &str) -> anyhow::Result<HttpReply> {
        http::get(self.admin, path)
    }

    /// `GET path` on the admin API, requiring a 2xx, as JSON.
    pub fn get_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        http::get_json(self.admin, path)
    }

    /// `GET path` on the admin API, requiring a 2xx, as text.
    pub fn get_text(&self, path: &str) -> anyhow::Result<String> {
        http::get_text(self.admin, path)
    }

    /// `GET /api/v1/shapes`, every page (it answers 100 shapes at a time unless asked): one
    /// document whose `shapes` holds every captured shape, the totals beside them as served.
    pub fn shapes_document(&self) -> anyhow::Result<serde_json::Value> {
        const PAGE: &str = "/api/v1/shapes?limit=1000";
        let mut document = self.get_json(PAGE)?;
        while let Some(next) = document["next_offset"].as_u64() {
            let page = self.get_json(&format!("{PAGE}&offset={next}"))?;
            let more = page["shapes"].as_array().cloned().unwrap_or_default();
            if let Some(shapes) = document["shapes"].as_array_mut() {
                shapes.extend(more);
            }
            document["next_offset"] = page["next_offset"].clone();
        }
        Ok(document)
    }

    /// SIGTERM and wait (then kill): for tests of a clean shutdown. The exit status, if the
    /// process exited.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.process.stop(STOP_GRACE)
    }

    /// The exit status, if the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.process.exited()
    }
}

/// The admin address in `args`: after (or `=`-joined to) a flag whose name contains `admin`.
fn admin_addr_in(args: &[String]) -> Option<SocketAddr> {
    let mut args = args.iter().peekable();
    while let Some(arg) = args.next() {
        if !arg.starts_with("--") || !arg.contains("admin") {
            continue;
        }
        let value = match arg.split_once('=') {
            Some((_, value)) => Some(value),
            None => args.peek().map(|next| next.as_str()),
        };
        if let Some(addr) = value.and_then(|value| value.parse().ok()) {
            return Some(addr);
        }
    }
    None
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

fn build() -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(workspace_root()).args([
        "build",
        "-p",
        "indextap-proxy",
        "--bin",
        "indextap",
    ]);
    run(&mut command).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|arg| arg.to_string()).collect()
    }

    #[test]
    fn admin_address_is_found_after_or_joined_to_its_flag() {
        let addr: SocketAddr = "127.0.0.1:9100".parse().expect("addr");
        let spaced = strings(&[
            "proxy",
            "--listen",
            "127.0.0.1:1",
            "--admin-listen",
            "127.0.0.1:9100",
        ]);
        assert_eq!(admin_addr_in(&spaced), Some(addr));
        let joined = strings(&["--admin=127.0.0.1:9100"]);
        assert_eq!(admin_addr_in(&joined), Some(addr));
        let absent = strings(&["--listen", "127.0.0.1:9100", "--admin-token", "x"]);
        assert_eq!(admin_addr_in(&absent), None);
    }
}
