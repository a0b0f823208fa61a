//! Real client tools run as children: a pymongo script ([`pymongo`]) and mongosh
//! ([`mongosh`]), and the check that any tool succeeded ([`assert_success`]).
//!
//! pymongo is the one `.ci/run` installs beside SecantusDB (`/opt/secantus/bin/python`, or
//! `$SECANTUS_PYTHON`); mongosh comes from npm (`$MONGOSH`, else `mongosh` on `PATH`). A tool
//! that is missing fails the test, with the way to install it.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::child::on_path;
use crate::startup_failed;

const PYTHON: &str = "/opt/secantus/bin/python";
const PYMONGO_HINT: &str = "install it with `/opt/secantus/bin/pip install pymongo` (or run \
.ci/run), or set SECANTUS_PYTHON to a python that has pymongo";
const MONGOSH_HINT: &str = "install it with `npm install -g mongosh` (or run .ci/run), or set \
MONGOSH to its path";

/// Panics with the tool's stdout and stderr unless it exited 0; its stdout otherwise.
#[track_caller]
pub fn assert_success(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs `script` with pymongo's python; `args` become `sys.argv[1:]`. The output, whatever
/// the exit status.
pub fn pymongo(script: &str, args: &[&str]) -> Output {
    let python = std::env::var_os("SECANTUS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(PYTHON));
    if !python.is_file() {
        startup_failed(
            "pymongo",
            &format!("{} not found", python.display()),
            "",
            PYMONGO_HINT,
        );
    }
    Command::new(&python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|err| {
            startup_failed(
                "pymongo",
                &format!("cannot run {}: {err}", python.display()),
                "",
                PYMONGO_HINT,
            )
        })
}

/// Runs `mongosh --quiet <uri> --eval <script>` (plus `extra` arguments). The output,
/// whatever the exit status.
pub fn mongosh(uri: &str, extra: &[&str], script: &str) -> Output {
    let binary = std::env::var_os("MONGOSH")
        .map(PathBuf::from)
        .or_else(|| on_path("mongosh"))
        .unwrap_or_else(|| startup_failed("mongosh", "mongosh not found", "", MONGOSH_HINT));
    Command::new(&binary)
        .args(["--quiet", uri])
        .args(extra)
        .args(["--eval", script])
        .output()
        .unwrap_or_else(|err| {
            startup_failed(
                "mongosh",
                &format!("cannot run {}: {err}", binary.display()),
                "",
                MONGOSH_HINT,
            )
        })
}
