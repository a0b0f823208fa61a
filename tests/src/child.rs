//! The child-process guard every fixture is built on.
//!
//! The child's stdout and stderr both go to one log file (opened in append mode, so the two
//! streams interleave instead of overwriting each other). Stopping sends SIGTERM first, so a
//! server can clean up (SecantusDB removes its `:memory:` directory, indextap drains), then
//! kills it if it has not exited after a grace period. When a test panics while the guard is
//! alive, the log tail is printed: the test harness shows it next to the failure.

use std::convert::Infallible;
use std::fs::OpenOptions;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::poll::poll;
use crate::ports::wait_for_port_while;

/// How long a child gets to exit after SIGTERM before it is killed.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(10);
/// How many log lines a failure message shows.
pub(crate) const TAIL_LINES: usize = 40;

pub(crate) struct ChildProcess {
    name: String,
    child: Child,
    log_path: PathBuf,
    stopped: bool,
}

impl ChildProcess {
    /// Spawns `command` with stdin closed and stdout+stderr appended to `log_path`.
    pub(crate) fn spawn(name: &str, command: &mut Command, log_path: &Path) -> io::Result<Self> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        Ok(Self {
            name: name.to_string(),
            child,
            log_path: log_path.to_path_buf(),
            stopped: false,
        })
    }

    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if the child has already exited.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits until the child accepts connections on `addr`; fails early if it exits.
    pub(crate) fn wait_until_listening(
        &mut self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> io::Result<()> {
        wait_for_port_while(addr, timeout, || match self.exited() {
            Some(status) => Err(io::Error::other(format!("exited early ({status})"))),
            None => Ok(()),
        })
    }

    /// Everything the child wrote so far.
    pub(crate) fn log(&self) -> String {
        read_lossy(&self.log_path)
    }

    /// The last [`TAIL_LINES`] lines the child wrote.
    pub(crate) fn log_tail(&self) -> String {
        tail(&self.log(), TAIL_LINES)
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL. Idempotent.
    pub(crate) fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.stopped {
            return self.exited();
        }
        self.stopped = true;
        if let Some(status) = self.exited() {
            return Some(status);
        }
        // `kill` the command, not a libc call: this crate forbids `unsafe`.
        let _ = Command::new("kill")
            .args(["-TERM", &self.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let exited = poll(grace, Duration::from_millis(25), || {
            Ok::<_, Infallible>(self.exited())
        });
        if let Ok(Some(status)) = exited {
            return Some(status);
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let who = format!("{} (pid {})", self.name, self.id());
        show_log_if_panicking(&who, &self.log_path, || self.log_tail());
        self.stop(STOP_GRACE);
    }
}

/// When a test fails, the tail of a child's log says why: printed as the guard drops.
pub(crate) fn show_log_if_panicking(who: &str, log_path: &Path, tail: impl FnOnce() -> String) {
    if std::thread::panicking() {
        eprintln!(
            "--- {who} log tail, {} ---\n{}\n--- end ---",
            log_path.display(),
            tail()
        );
    }
}

pub(crate) fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all.get(start..).unwrap_or_default().join("\n")
}

/// Runs `command` to completion and returns its stdout; a failure carries stderr and stdout.
pub(crate) fn run(command: &mut Command) -> anyhow::Result<String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|err| anyhow::anyhow!("cannot run {command:?}: {err}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    anyhow::bail!(
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        tail(&stderr, TAIL_LINES),
        tail(&stdout, TAIL_LINES)
    )
}

/// Finds an executable named `name` on `PATH`.
pub(crate) fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
        assert_eq!(tail("", 5), "");
    }

    #[test]
    fn stop_terminates_a_running_child_and_keeps_its_output() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("sleep.log");
        let mut child = ChildProcess::spawn(
            "sh",
            Command::new("sh").args(["-c", "echo started; exec sleep 60"]),
            &log,
        )
        .expect("spawn sh");
        let started = poll(Duration::from_secs(5), Duration::from_millis(20), || {
            Ok::<_, Infallible>(child.log().contains("started").then_some(()))
        });
        assert_eq!(started, Ok(Some(())), "{}", child.log());
        let status = child.stop(Duration::from_secs(5)).expect("exited");
        assert!(!status.success(), "SIGTERM ends sleep with a signal");
        assert!(child.exited().is_some());
    }
}
