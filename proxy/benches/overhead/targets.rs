//! The proxies under test, as child processes: HAProxy in TCP mode and the real `indextap`
//! binary, each in front of the fake upstream, each with a temporary directory for its
//! configuration and log. Both are stopped (SIGTERM, then SIGKILL) when dropped.
//!
//! Also the two reads of indextap's admin API the bench needs: how many `find` executions
//! on `app.orders` it captured, and its dropped-sample counters; and the CPU time each
//! process used, from `/proc`, since on a small machine every microsecond a proxy burns
//! is taken from the client and the server.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tempfile::TempDir;

const HAPROXY: &str = "/usr/sbin/haproxy";
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A child process with its own temporary directory.
pub(crate) struct Proxy {
    pub name: &'static str,
    pub listen: SocketAddr,
    pub admin: Option<SocketAddr>,
    child: Child,
    dir: TempDir,
}

/// A loopback address whose port was free a moment ago.
fn free_addr() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

impl Proxy {
    /// HAProxy 2.6, `mode tcp`, one backend server, default threads (one per core).
    pub(crate) fn haproxy(upstream: SocketAddr) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("bench-haproxy-")
            .tempdir()?;
        let listen = free_addr()?;
        let config = format!(
            "global\n    maxconn 4096\n\n\
             defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 120s\n    timeout server 120s\n\n\
             listen mongo\n    bind {listen}\n    server upstream {upstream}\n"
        );
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config)?;
        let mut command = detached(HAPROXY);
        command.arg("-f").arg(&path).arg("-db");
        let child = spawn(&mut command, dir.path()).context("starting haproxy")?;
        let mut proxy = Self {
            name: "haproxy",
            listen,
            admin: None,
            child,
            dir,
        };
        proxy.wait_listening(listen)?;
        Ok(proxy)
    }

    /// `indextap proxy` with a MongoDB listener in front of `upstream`.
    pub(crate) fn indextap(binary: &Path, upstream: SocketAddr) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("bench-indextap-")
            .tempdir()?;
        let listen = free_addr()?;
        let admin = free_addr()?;
        let mut command = detached(binary);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("INDEXTAP_") {
                command.env_remove(key);
            }
        }
        command
            .arg("proxy")
            .arg("--mongo-listen")
            .arg(listen.to_string())
            .arg("--mongo-upstream")
            .arg(upstream.to_string())
            .arg("--admin-listen")
            .arg(admin.to_string());
        // For experiments (a smaller inspection cap, more analysis workers, ...).
        if let Some(config) = std::env::var_os("BENCH_INDEXTAP_CONFIG") {
            command.arg("--config").arg(config);
        }
        let child = spawn(&mut command, dir.path())
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut proxy = Self {
            name: "indextap",
            listen,
            admin: Some(admin),
            child,
            dir,
        };
        proxy.wait_listening(listen)?;
        proxy.wait_listening(admin)?;
        Ok(proxy)
    }

    fn wait_listening(&mut self, addr: SocketAddr) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if TcpStream::connect(addr).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited early ({status}):\n{}", self.name, self.log());
            }
            if Instant::now() > deadline {
                bail!("{} is not listening on {addr}:\n{}", self.name, self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// CPU time (user + system) the process has used so far, in all, and in the threads
    /// whose name starts with `analysis_prefix`.
    pub(crate) fn cpu(&self, analysis_prefix: &str) -> anyhow::Result<CpuTime> {
        let mut time = CpuTime::default();
        let tasks = format!("/proc/{}/task", self.child.id());
        for task in std::fs::read_dir(&tasks).with_context(|| format!("reading {tasks}"))? {
            let stat = match std::fs::read_to_string(task?.path().join("stat")) {
                Ok(stat) => stat,
                // A thread that ended since the listing.
                Err(_) => continue,
            };
            let (name, ticks) = thread_ticks(&stat).context("an unreadable /proc stat")?;
            time.total += ticks;
            if name.starts_with(analysis_prefix) {
                time.analysis += ticks;
            }
        }
        Ok(time)
    }

    /// What the process wrote so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("output.log")).unwrap_or_default()
    }

    /// GET a path of the admin API, as text.
    pub(crate) fn admin_get(&self, path: &str) -> anyhow::Result<String> {
        let admin = self.admin.context("no admin API")?;
        let url = format!("http://{admin}{path}");
        ureq::get(&url)
            .timeout(Duration::from_secs(30))
            .call()
            .with_context(|| format!("GET {url}"))?
            .into_string()
            .context("reading the admin reply")
    }

    /// `find` executions on `app.orders` in `/api/v1/shapes`.
    pub(crate) fn captured_finds(&self) -> anyhow::Result<u64> {
        let shapes: serde_json::Value = serde_json::from_str(&self.admin_get("/api/v1/shapes")?)?;
        let list = shapes["shapes"].as_array().context("no shapes array")?;
        Ok(list
            .iter()
            .filter(|shape| {
                shape["database"] == "app"
                    && shape["collection"] == "orders"
                    && shape["command"] == "find"
            })
            .filter_map(|shape| shape["count"].as_u64())
            .sum())
    }

    /// Poll until `expected` finds are captured or the count stops moving for a second.
    pub(crate) fn wait_captured(&self, expected: u64) -> anyhow::Result<u64> {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut last = (u64::MAX, Instant::now());
        loop {
            let captured = self.captured_finds()?;
            if captured >= expected || Instant::now() > deadline {
                return Ok(captured);
            }
            if captured != last.0 {
                last = (captured, Instant::now());
            } else if last.1.elapsed() > Duration::from_secs(1) {
                return Ok(captured);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The `/metrics` samples about dropping (tap and analysis queues).
    pub(crate) fn dropped_metrics(&self) -> anyhow::Result<Vec<String>> {
        Ok(self
            .admin_get("/metrics")?
            .lines()
            .filter(|line| !line.starts_with('#') && line.contains("dropped"))
            .map(str::to_owned)
            .collect())
    }
}

/// CPU time in clock ticks.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CpuTime {
    pub total: u64,
    pub analysis: u64,
}

impl CpuTime {
    /// Microseconds of CPU (total, analysis) between `self` (before) and `after`.
    pub(crate) fn micros(&self, after: &CpuTime, ticks_per_sec: u64) -> (f64, f64) {
        let micros = |ticks: u64| ticks as f64 * 1e6 / ticks_per_sec.max(1) as f64;
        (
            micros(after.total.saturating_sub(self.total)),
            micros(after.analysis.saturating_sub(self.analysis)),
        )
    }
}

/// Clock ticks a second (`getconf CLK_TCK`, 100 on Linux).
pub(crate) fn ticks_per_sec() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100)
}

/// A thread's name and utime + stime from its `/proc/.../stat` line. The name is in
/// parentheses and may hold spaces, so fields are counted from the last `)`.
fn thread_ticks(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// A command run in a session of its own (`setsid`, which execs in place), as a service
/// runs: the kernel's per-session scheduling groups (autogroups) then treat every proxy
/// alike, and none shares the load client's group.
fn detached(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new("setsid");
    command.arg(program);
    command
}

fn spawn(command: &mut Command, dir: &Path) -> anyhow::Result<Child> {
    let log = std::fs::File::create(dir.join("output.log"))?;
    let child = command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    Ok(child)
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
