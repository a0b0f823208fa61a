//! The state file: what the proxy learned survives a clean restart, a `kill -9` (losing at
//! most one save interval), and a corrupt file (moved aside, fresh start).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use indextap_analyzer::snapshot::Snapshot;
use indextap_tests::{IndextapOptions, IndextapProcess, SecantusDb, SecantusOptions};

use super::{
    current_counts, loopback, mongo_finds, mongo_proxy, signal, wait_for_counts, wait_for_exit,
    write_file, ShapeCount,
};

const STATE_FILE: &str = "indextap-state.json";

/// Shape id → count, the part of a state that must survive.
fn counts_only(counts: &BTreeMap<String, ShapeCount>) -> BTreeMap<String, u64> {
    counts
        .iter()
        .map(|(id, shape)| (id.clone(), shape.count))
        .collect()
}

/// The state file in `dir`, parsed.
fn saved_state(dir: &Path) -> Snapshot {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("no state file at {}: {err}", path.display()));
    Snapshot::from_json(&text).unwrap_or_else(|err| panic!("the state file is unusable: {err}"))
}

fn saved_counts(snapshot: &Snapshot) -> BTreeMap<String, u64> {
    snapshot
        .shapes
        .iter()
        .map(|(id, record)| (id.to_string(), record.count))
        .collect()
}

/// `indextap proxy` in front of `server` on `listen`, saving its state in `state`.
fn with_state(server: &SecantusDb, listen: SocketAddr, state: &Path) -> IndextapProcess {
    let dir = state.display().to_string();
    mongo_proxy(server.addr(), listen, &["--state-dir", &dir])
}

#[tokio::test]
async fn state_survives_a_sigterm_and_a_restart() {
    let server = SecantusDb::start(SecantusOptions::standalone());
    let state = tempfile::tempdir().expect("tempdir");
    let listen = loopback();
    let mut first = with_state(&server, listen, state.path());
    mongo_finds(
        &server.uri_via(listen),
        &[("orders", 5), ("users", 3), ("items", 1)],
    )
    .await;
    let before = counts_only(&wait_for_counts(
        &first,
        &[
            ("orders", "find", 5),
            ("users", "find", 3),
            ("items", "find", 1),
        ],
    ));
    assert_eq!(before.len(), 3, "{before:?}");

    let status = first.stop().expect("the proxy exited");
    assert!(status.success(), "SIGTERM is a clean exit: {status}");
    assert_eq!(
        saved_counts(&saved_state(state.path())),
        before,
        "the state flushed on SIGTERM holds every count"
    );

    let listen = loopback();
    let second = with_state(&server, listen, state.path());
    assert_eq!(counts_only(&current_counts(&second)), before);
    assert!(
        second.logs().contains("state restored"),
        "{}",
        second.logs()
    );

    // New traffic adds to what was restored.
    mongo_finds(&server.uri_via(listen), &[("orders", 2)]).await;
    wait_for_counts(
        &second,
        &[
            ("orders", "find", 7),
            ("users", "find", 3),
            ("items", "find", 1),
        ],
    );
}

#[tokio::test]
async fn kill_9_loses_at_most_one_save_interval() {
    const INTERVAL: Duration = Duration::from_secs(1);
    let server = SecantusDb::start(SecantusOptions::standalone());
    let state = tempfile::tempdir().expect("tempdir");
    let configs = tempfile::tempdir().expect("tempdir");
    let start = |name: &str| {
        let (admin, listen) = (loopback(), loopback());
        let config = write_file(
            configs.path(),
            name,
            &format!(
                "[admin]\nlisten = \"{admin}\"\n\n[[mongo.listeners]]\nlisten = \"{listen}\"\n\
                 upstream = \"{}\"\n\n[state]\ndir = \"{}\"\ninterval_secs = {}\n",
                server.addr(),
                state.path().display(),
                INTERVAL.as_secs()
            ),
        );
        let proxy = IndextapProcess::start_with(IndextapOptions::config(&config, admin));
        (proxy, server.uri_via(listen))
    };

    let (mut first, uri) = start("first.toml");
    mongo_finds(&uri, &[("orders", 4)]).await;
    let settled = counts_only(&wait_for_counts(&first, &[("orders", "find", 4)]));
    let settled_at = Instant::now();

    // The last interval's traffic, which a kill -9 may lose.
    mongo_finds(&uri, &[("orders", 2), ("users", 3)]).await;
    let latest = counts_only(&wait_for_counts(
        &first,
        &[("orders", "find", 6), ("users", "find", 3)],
    ));
    // Two intervals after the settled counts were visible, a save has certainly held them.
    if let Some(rest) = (2 * INTERVAL).checked_sub(settled_at.elapsed()) {
        std::thread::sleep(rest + Duration::from_millis(300));
    }
    signal(first.pid(), "KILL");
    let (status, _) = wait_for_exit(&mut first, Duration::from_secs(5));
    assert!(!status.success(), "killed: {status}");

    let (second, _) = start("second.toml");
    let restored = counts_only(&current_counts(&second));
    for (id, count) in &settled {
        let got = restored.get(id).copied().unwrap_or_default();
        assert!(
            got >= *count,
            "shape {id}: {got} restored, {count} were visible two intervals before the kill"
        );
    }
    for (id, count) in &restored {
        let seen = latest.get(id).copied().unwrap_or_default();
        assert!(
            count <= &seen,
            "shape {id}: {count} restored, only {seen} ever seen"
        );
    }
}

#[tokio::test]
async fn a_corrupt_state_file_is_moved_aside_and_the_proxy_starts_fresh() {
    let server = SecantusDb::start(SecantusOptions::standalone());
    let state = tempfile::tempdir().expect("tempdir");
    let garbage: Vec<u8> = b"{\"version\": 1, \"shapes\": \xff\xfe\x00 garbage"
        .iter()
        .copied()
        .chain((0u8..=255).rev())
        .collect();
    std::fs::write(state.path().join(STATE_FILE), &garbage).expect("write garbage");

    let listen = loopback();
    let mut proxy = with_state(&server, listen, state.path());

    let aside: Vec<_> = std::fs::read_dir(state.path())
        .expect("read state dir")
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with("indextap-state.json.corrupt-")
        })
        .collect();
    assert_eq!(aside.len(), 1, "one .corrupt-* file");
    assert_eq!(
        std::fs::read(aside[0].path()).expect("read aside"),
        garbage,
        "moved aside untouched, for inspection"
    );
    let logs = proxy.logs();
    assert!(
        logs.contains("moved aside") && logs.contains("starting fresh"),
        "the log says what happened: {logs}"
    );
    assert!(
        logs.contains(&aside[0].file_name().to_string_lossy().into_owned()),
        "the log names the moved file: {logs}"
    );
    assert!(current_counts(&proxy).is_empty(), "a fresh start");

    mongo_finds(&server.uri_via(listen), &[("orders", 2)]).await;
    wait_for_counts(&proxy, &[("orders", "find", 2)]);
    let status = proxy.stop().expect("exited");
    assert!(status.success(), "{status}");
    let saved = saved_state(state.path());
    assert_eq!(
        saved_counts(&saved).values().copied().collect::<Vec<_>>(),
        vec![2]
    );
}

#[tokio::test]
async fn a_second_proxy_on_the_same_state_dir_exits_naming_the_lock() {
    let server = SecantusDb::start(SecantusOptions::standalone());
    let state = tempfile::tempdir().expect("tempdir");
    let dir = state.path().display().to_string();
    let listen = loopback();
    let mut first = with_state(&server, listen, state.path());

    // Other ports, same directory: it must stop before listening anywhere.
    let (second_listen, second_admin) = (loopback(), loopback());
    let mut second = super::indextap()
        .args(["proxy", "--mongo-listen", &second_listen.to_string()])
        .args(["--mongo-upstream", &server.addr().to_string()])
        .args(["--admin-listen", &second_admin.to_string()])
        .args(["--state-dir", &dir])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the second proxy");
    let deadline = Instant::now() + Duration::from_secs(20);
    while second.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = second.kill();
            panic!("a second proxy kept running on a locked state directory");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = second.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{}: {stderr}", output.status);
    let lock_file = state.path().join("indextap.lock");
    assert!(
        stderr.contains(&lock_file.display().to_string()) && stderr.contains("in use"),
        "the error names the lock: {stderr}"
    );
    assert!(
        stderr.contains(&format!("pid {}", first.pid())),
        "and its holder: {stderr}"
    );
    assert!(!super::accepts(second_admin) && !super::accepts(second_listen));

    // The first one is unharmed and keeps its state; once it stops, the directory is free.
    mongo_finds(&server.uri_via(listen), &[("orders", 2)]).await;
    wait_for_counts(&first, &[("orders", "find", 2)]);
    assert!(first.stop().expect("exited").success());
    let listen = loopback();
    let third = with_state(&server, listen, state.path());
    wait_for_counts(&third, &[("orders", "find", 2)]);
}
