//! The workload tools other people wrote, run as child processes: sysbench's Lua OLTP
//! workloads and Python applications (Django, SQLAlchemy, MongoEngine) from the corpus
//! virtual environment (pgbench is `pg_common`'s).
//!
//! ## Layout
//! - [`sysbench`]: `sysbench <workload> --db-driver=pgsql ...`.
//! - [`python`]: a script of `tests/corpus/` run by the corpus venv's interpreter.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use indextap_tests::postgres::SUPERUSER;
use indextap_tests::tools::assert_success;
use indextap_tests::workspace_root;

/// Where `.ci/run` installs the corpus's Python packages.
const CORPUS_VENV: &str = "/opt/indextap-corpus";

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
    assert_success(&output, &format!("sysbench {workload} {command}"));
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
    assert_success(&output, &format!("{script} {args:?}"))
}
