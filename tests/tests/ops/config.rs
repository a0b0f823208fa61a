//! Configuration as an operator meets it: a mistake stops the start with a message naming
//! the setting, before any port is bound; file < `INDEXTAP_*` < flag; several listeners per
//! engine from one file.

use std::net::{SocketAddr, TcpListener};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bson::{doc, Document};
use futures::TryStreamExt;
use indextap_tests::metrics::Exposition;
use indextap_tests::{IndextapOptions, IndextapProcess, SecantusDb, SecantusOptions};

use super::{accepts, indextap, loopback, wait_for_counts, write_file};

/// The exit status `indextap proxy` uses for an invalid configuration.
const CONFIG_ERROR_EXIT: i32 = 2;

/// One way to get the configuration wrong.
struct Mistake {
    what: &'static str,
    /// The TOML file, if any.
    file: Option<String>,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    /// Every one of these must be in the error message.
    names: Vec<String>,
}

/// Runs `indextap proxy` with a mistake; it must exit with the configuration error status
/// without ever accepting a connection on `watched`, naming what is wrong.
fn refused(mistake: &Mistake, dir: &std::path::Path, watched: &[SocketAddr]) {
    let mut command = indextap();
    command.arg("proxy").args(&mistake.args);
    if let Some(text) = &mistake.file {
        let path = write_file(dir, "indextap.toml", text);
        command.arg("--config").arg(path);
    }
    for (key, value) in &mistake.env {
        command.env(key, value);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn indextap");

    // While it runs, nothing may accept: the check must come before any bind.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut reached: Vec<SocketAddr> = Vec::new();
    while child.try_wait().expect("try_wait").is_none() {
        reached.extend(watched.iter().copied().filter(|addr| accepts(*addr)));
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "{}: indextap kept running with a bad configuration",
                mistake.what
            );
        }
    }
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(CONFIG_ERROR_EXIT),
        "{}: {stderr}",
        mistake.what
    );
    assert!(
        reached.is_empty(),
        "{}: {reached:?} accepted connections",
        mistake.what
    );
    for addr in watched {
        TcpListener::bind(addr).unwrap_or_else(|err| {
            panic!("{}: {addr} is not free after the exit: {err}", mistake.what)
        });
    }
    assert!(
        !stderr.contains("invalid configuration: invalid configuration"),
        "{}: said twice: {stderr}",
        mistake.what
    );
    assert!(
        !stderr.contains("listener ready"),
        "{}: {stderr}",
        mistake.what
    );
    for name in &mistake.names {
        assert!(
            stderr.contains(name.as_str()),
            "{}: the message does not name {name:?}:\n{stderr}",
            mistake.what
        );
    }
}

#[test]
fn configuration_mistakes_stop_the_start_before_anything_listens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = write_file(dir.path(), "server.key", "not really a key\n");
    let admin = loopback();
    let listen = loopback();
    let fill = |text: &str| {
        text.replace("{admin}", &admin.to_string())
            .replace("{listen}", &listen.to_string())
            .replace("{key}", &key.display().to_string())
    };
    let pg_flags = |listen: SocketAddr| -> Vec<String> {
        vec![
            "--admin-listen".into(),
            admin.to_string(),
            "--pg-listen".into(),
            listen.to_string(),
            "--pg-upstream".into(),
            "127.0.0.1:5432".into(),
        ]
    };

    let mistakes = [
        Mistake {
            what: "an unknown key in the file",
            file: Some(fill(
                "[admin]\nlisten = \"{admin}\"\n\n[[postgres.listeners]]\nlisten = \"{listen}\"\n\
                 upstream = \"127.0.0.1:5432\"\n\n[capture]\nmax_shape = 5\n",
            )),
            args: Vec::new(),
            env: Vec::new(),
            names: vec!["max_shape".into(), "indextap.toml".into(), "line 9".into()],
        },
        Mistake {
            what: "a bad listen address",
            file: Some(fill(
                "[admin]\nlisten = \"{admin}\"\n\n[[postgres.listeners]]\nlisten = \"{listen}\"\n\
                 upstream = \"127.0.0.1:5432\"\n\n[[mongo.listeners]]\nlisten = \"127.0.0.1:70000\"\n\
                 upstream = \"127.0.0.1:27017\"\n",
            )),
            args: Vec::new(),
            env: Vec::new(),
            names: vec!["mongo.listeners[0].listen".into(), "127.0.0.1:70000".into()],
        },
        Mistake {
            what: "two listeners on one port",
            file: Some(fill(
                "[admin]\nlisten = \"{admin}\"\n\n[[mongo.listeners]]\nlisten = \"{listen}\"\n\
                 upstream = \"127.0.0.1:27017\"\n\n[[postgres.listeners]]\nlisten = \"{listen}\"\n\
                 upstream = \"127.0.0.1:5432\"\n",
            )),
            args: Vec::new(),
            env: Vec::new(),
            names: vec![
                "postgres.listeners[0].listen".into(),
                format!("port {}", listen.port()),
                "mongo.listeners[0].listen".into(),
            ],
        },
        Mistake {
            what: "a missing certificate for TLS termination",
            file: Some(fill(
                "[admin]\nlisten = \"{admin}\"\n\n[[postgres.listeners]]\nlisten = \"{listen}\"\n\
                 upstream = \"127.0.0.1:5432\"\n\n[postgres.listeners.tls]\nmode = \"terminate\"\n\
                 cert_file = \"/nonexistent/indextap/server.crt\"\nkey_file = \"{key}\"\n",
            )),
            args: Vec::new(),
            env: Vec::new(),
            names: vec![
                "postgres.listeners[0].tls.cert_file".into(),
                "/nonexistent/indextap/server.crt".into(),
            ],
        },
        Mistake {
            what: "an unknown INDEXTAP_ variable",
            file: None,
            args: pg_flags(listen),
            env: vec![("INDEXTAP_PG_UPSTREM", "127.0.0.1:5432".into())],
            names: vec!["INDEXTAP_PG_UPSTREM".into(), "INDEXTAP_PG_UPSTREAM".into()],
        },
    ];
    for mistake in &mistakes {
        refused(mistake, dir.path(), &[admin, listen]);
    }

    // The same flags without the mistake do start: the refusals above were the mistakes'.
    let mut args = vec!["proxy".to_owned()];
    args.extend(pg_flags(listen));
    let mut proxy = IndextapProcess::start_with(IndextapOptions {
        args,
        ..IndextapOptions::default()
    });
    assert!(accepts(listen));
    assert!(proxy.stop().is_some_and(|status| status.success()));
}

/// Which of `addrs` accept connections.
fn accepting(addrs: &[SocketAddr]) -> Vec<SocketAddr> {
    addrs
        .iter()
        .copied()
        .filter(|addr| accepts(*addr))
        .collect()
}

#[test]
fn admin_listen_comes_from_the_file_then_the_environment_then_the_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (from_file, from_env, from_flag) = (loopback(), loopback(), loopback());
    let listen = loopback();
    let config = write_file(
        dir.path(),
        "indextap.toml",
        &format!(
            "[admin]\nlisten = \"{from_file}\"\n\n[[postgres.listeners]]\nlisten = \"{listen}\"\n\
             upstream = \"127.0.0.1:5432\"\n"
        ),
    );
    let config = config.display().to_string();
    let all = [from_file, from_env, from_flag];

    let start = |admin: SocketAddr, env: bool, flag: bool| {
        let mut args = vec!["proxy".to_owned(), "--config".into(), config.clone()];
        if flag {
            args.extend(["--admin-listen".into(), from_flag.to_string()]);
        }
        IndextapProcess::start_with(IndextapOptions {
            args,
            admin: Some(admin),
            env: if env {
                vec![("INDEXTAP_ADMIN_LISTEN".into(), from_env.to_string())]
            } else {
                Vec::new()
            },
            ..IndextapOptions::default()
        })
    };

    for (admin, env, flag) in [
        (from_file, false, false),
        (from_env, true, false),
        (from_flag, true, true),
    ] {
        let mut proxy = start(admin, env, flag);
        assert_eq!(
            accepting(&all),
            vec![admin],
            "env: {env}, flag: {flag}: only {admin} should serve the admin API"
        );
        let health = proxy.get_text("/healthz").expect("healthz");
        assert_eq!(health.trim(), "ok");
        assert!(proxy.stop().is_some_and(|status| status.success()));
    }
}

#[tokio::test]
async fn two_mongo_listeners_from_one_file_both_capture() {
    let server = SecantusDb::start(SecantusOptions::standalone());
    let dir = tempfile::tempdir().expect("tempdir");
    let (admin, first, second) = (loopback(), loopback(), loopback());
    let upstream = server.addr();
    let config = write_file(
        dir.path(),
        "indextap.toml",
        &format!(
            "[admin]\nlisten = \"{admin}\"\n\n\
             [[mongo.listeners]]\nlisten = \"{first}\"\nupstream = \"{upstream}\"\nname = \"mongo-blue\"\n\n\
             [[mongo.listeners]]\nlisten = \"{second}\"\nupstream = \"{upstream}\"\nname = \"mongo-green\"\n"
        ),
    );
    let proxy = IndextapProcess::start_with(IndextapOptions::config(&config, admin));

    for (through, collection, times) in [(first, "blue", 3), (second, "green", 5)] {
        let client = mongodb::Client::with_uri_str(server.uri_via(through))
            .await
            .expect("client");
        let items = client.database("app").collection::<Document>(collection);
        items
            .insert_one(doc! { "sku": "a-1" })
            .await
            .expect("insert through the proxy");
        for _ in 0..times {
            let found: Vec<Document> = items
                .find(doc! { "sku": "a-1" })
                .await
                .expect("find through the proxy")
                .try_collect()
                .await
                .expect("cursor");
            assert_eq!(found.len(), 1);
        }
    }

    wait_for_counts(&proxy, &[("blue", "find", 3), ("green", "find", 5)]);
    let metrics = Exposition::fetch(&proxy);
    for name in ["mongo-blue", "mongo-green"] {
        let connections = metrics.value("indextap_connections_total", &[("listener", name)]);
        assert!(
            connections >= Some(1.0),
            "{name}: {connections:?} connections\n{}",
            metrics.text()
        );
    }
}
