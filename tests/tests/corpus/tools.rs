//! The workload tools other people wrote, run as child processes: sysbench's Lua OLTP
//! workloads, pgbench's built-in scripts, and Python applications (Django, SQLAlchemy,
//! MongoEngine) from the corpus virtual environment.
//!
//! ## Layout
//! - [`sysbench`]: `sysbench <workload> --db-driver=pgsql ...`.
//! - [`pgbench`]: `pgbench ...` with the server's own binary.
//! - [`python`]: a script of `tests/corpus/` run by the corpus venv's interpreter.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};

use indextap_tests::postgres::{bin_dir, CLIENT_ENV, SUPERUSER};
use indextap_tests::workspace_root;

/// Where `.ci/run` installs the corpus's Python packages.
const CORPUS_VENV: &str = "/opt/indextap-corpus";

#[track_caller]
fn succeeded(output: Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `sysbench <workload> --db-driver=pgsql ... <args> <command>` against `addr`/`database`.
#[track_caller]
pub fn sysbench(addr: SocketAddr, database: &str, workload: &str, args: &[&str], command: &str) {
    let output = Command::new("sysbench")
        .arg(workload)
        .args([
            "--db-driver=pgsql".to_string(),
            format!("--pgsql-host={}", addr.ip()),
            format!("--pgsql-port={}", addr.port()),
            format!("--pgsql-user={SUPERUSER}"),
            format!("--pgsql-db={database}"),
        ])
        .args(args)
        .arg(command)
        .output()
        .unwrap_or_else(|err| panic!("cannot run sysbench (apt-get install sysbench): {err}"));
    succeeded(output, &format!("sysbench {workload} {command}"));
}

/// `pgbench -h -p -U <args> database` with the server's own pgbench.
#[track_caller]
pub fn pgbench(addr: SocketAddr, database: &str, args: &[&str]) -> String {
    let program = bin_dir()
        .map(|dir| dir.join("pgbench"))
        .filter(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from("pgbench"));
    let mut command = Command::new(program);
    for variable in CLIENT_ENV {
        command.env_remove(variable);
    }
    let output = command
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(["-U", SUPERUSER])
        .args(args)
        .arg(database)
        .output()
        .unwrap_or_else(|err| panic!("cannot run pgbench: {err}"));
    succeeded(output, &format!("pgbench {args:?}"))
}

/// The corpus venv's interpreter: `$INDEXTAP_CORPUS_PYTHON`, else `/opt/indextap-corpus`.
fn interpreter() -> PathBuf {
    std::env::var_os("INDEXTAP_CORPUS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(CORPUS_VENV).join("bin/python"))
}

/// `python tests/corpus/<script> <args>`; its stdout.
#[track_caller]
pub fn python(script: &str, args: &[String]) -> String {
    let path = workspace_root().join("tests/corpus").join(script);
    let python = interpreter();
    let output = Command::new(&python)
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "cannot run {} (the corpus venv is made by .ci/run): {err}",
                python.display()
            )
        });
    succeeded(output, &format!("{script} {args:?}"))
}
