//! Validation: every rule, with messages that name the setting.

use std::path::{Path, PathBuf};

use indextap_config::{
    load, CliOverrides, Config, ConfigError, ListenerTls, MongoListener, PostgresListener, TlsMode,
};

fn problems(config: &Config) -> Vec<String> {
    match config.validate() {
        Ok(()) => Vec::new(),
        Err(ConfigError::Invalid(problems)) => problems,
        Err(other) => panic!("validate returned {other:?}"),
    }
}

/// One of `problems` is about `prefix` and says `fragment`.
fn assert_has(problems: &[String], prefix: &str, fragment: &str) {
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with(prefix) && p.contains(fragment)),
        "no {prefix:?} problem saying {fragment:?} in {problems:#?}"
    );
}

fn one_mongo(listen: &str, upstream: &str) -> Config {
    let mut config = Config::default();
    add_mongo(&mut config, listen, upstream);
    config
}

/// Adds a PostgreSQL listener on `listen` to `upstream`.
fn add_postgres(config: &mut Config, listen: &str, upstream: &str) {
    config
        .postgres
        .listeners
        .push(PostgresListener::new(listen, upstream));
}

/// Adds a MongoDB listener on `listen` to `upstream`.
fn add_mongo(config: &mut Config, listen: &str, upstream: &str) {
    config
        .mongo
        .listeners
        .push(MongoListener::new(listen, upstream));
}

/// A config with one PostgreSQL listener, `127.0.0.1:5433` to `127.0.0.1:5432`, its TLS set
/// by `tls`.
fn one_postgres(tls: impl FnOnce(&mut ListenerTls)) -> Config {
    let mut config = Config::default();
    add_postgres(&mut config, "127.0.0.1:5433", "127.0.0.1:5432");
    tls(&mut config.postgres.listeners[0].tls);
    config
}

fn touch(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, "x").unwrap();
    path
}

#[test]
fn a_sensible_config_is_valid() {
    let mut config = one_mongo("0.0.0.0:27018", "mongo-0.mongo.svc.cluster.local:27017");
    add_postgres(&mut config, "[::1]:5433", "[::1]:5432");
    assert_eq!(problems(&config), Vec::<String>::new());
}

#[test]
fn bad_addresses_are_named_with_their_path() {
    let mut config = one_mongo("x:y", "127.0.0.1");
    add_postgres(&mut config, "db.internal:5433", "bad host:5432");
    config.admin.listen = "9090".into();
    let found = problems(&config);
    assert!(
        found
            .contains(&r#"mongo.listeners[0].listen: "x:y" is not a HOST:PORT address"#.to_owned()),
        "{found:#?}"
    );
    assert_has(&found, "mongo.listeners[0].upstream:", "is not a HOST:PORT");
    assert_has(
        &found,
        "postgres.listeners[0].listen:",
        "hostname cannot be bound",
    );
    assert_has(
        &found,
        "postgres.listeners[0].upstream:",
        "is not a HOST:PORT",
    );
    assert_has(&found, "admin.listen:", "is not a HOST:PORT");
    assert_eq!(found.len(), 5, "one problem per bad address: {found:#?}");
}

#[test]
fn an_upstream_on_port_zero_or_on_our_own_listener_is_rejected() {
    for (upstream, fragment) in [("db:0", "port 0"), ("localhost:27018", "connect to itself")] {
        let found = problems(&one_mongo("127.0.0.1:27018", upstream));
        assert_has(&found, "mongo.listeners[0].upstream:", fragment);
    }
}

#[test]
fn colliding_ports_are_rejected() {
    let mut pg_on_every_address = one_mongo("0.0.0.0:27018", "127.0.0.1:27017");
    add_postgres(
        &mut pg_on_every_address,
        "127.0.0.1:27018",
        "127.0.0.1:5432",
    );
    let mut mongo_on_localhost = one_mongo("localhost:27018", "127.0.0.1:27017");
    add_mongo(
        &mut mongo_on_localhost,
        "127.0.0.1:27018",
        "127.0.0.1:27019",
    );
    for (why, config, field, fragment) in [
        (
            "same address and port as the admin API",
            one_mongo("127.0.0.1:9090", "127.0.0.1:27017"),
            "mongo.listeners[0].listen:",
            "port 9090 is also used by admin.listen",
        ),
        (
            "the unspecified address covers every address",
            pg_on_every_address,
            "postgres.listeners[0].listen:",
            "mongo.listeners[0].listen",
        ),
        (
            "localhost is 127.0.0.1",
            mongo_on_localhost,
            "mongo.listeners[1].listen:",
            "port 27018",
        ),
    ] {
        let found = problems(&config);
        assert!(
            found
                .iter()
                .any(|p| p.starts_with(field) && p.contains(fragment)),
            "{why}: no {field:?} problem saying {fragment:?} in {found:#?}"
        );
    }

    // Same port on two different specific addresses is fine.
    let mut config = one_mongo("127.0.0.1:27018", "127.0.0.1:27017");
    add_mongo(&mut config, "127.0.0.2:27018", "127.0.0.1:27019");
    assert_eq!(problems(&config), Vec::<String>::new());

    // Port 0 asks the OS for a free port: never a collision.
    let mut config = one_mongo("127.0.0.1:0", "127.0.0.1:27017");
    config.admin.listen = "127.0.0.1:0".into();
    assert_eq!(problems(&config), Vec::<String>::new());
}

#[test]
fn terminate_needs_existing_cert_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = one_postgres(|tls| tls.mode = TlsMode::Terminate);

    let found = problems(&config);
    assert_has(&found, "postgres.listeners[0].tls.cert_file:", "required");
    assert_has(&found, "postgres.listeners[0].tls.key_file:", "required");

    config.postgres.listeners[0].tls.cert_file = Some(dir.path().join("missing.crt"));
    config.postgres.listeners[0].tls.key_file = Some(touch(dir.path(), "server.key"));
    let found = problems(&config);
    assert_has(
        &found,
        "postgres.listeners[0].tls.cert_file:",
        "missing.crt does not exist",
    );
    assert_eq!(found.len(), 1, "{found:#?}");

    config.postgres.listeners[0].tls.cert_file = Some(touch(dir.path(), "server.crt"));
    assert_eq!(problems(&config), Vec::<String>::new());

    // A directory is not a certificate.
    config.postgres.listeners[0].tls.key_file = Some(dir.path().to_path_buf());
    assert_has(
        &problems(&config),
        "postgres.listeners[0].tls.key_file:",
        "not a file",
    );
}

#[test]
fn refuse_and_passthrough_need_no_files() {
    for mode in [TlsMode::Refuse, TlsMode::Passthrough] {
        let config = one_postgres(|tls| tls.mode = mode);
        assert_eq!(problems(&config), Vec::<String>::new(), "{mode}");
    }
}

#[test]
fn upstream_ca_and_token_files_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = one_postgres(|tls| tls.upstream_ca_file = Some(dir.path().join("ca.pem")));
    config.admin.token_file = Some(dir.path().join("token"));
    let found = problems(&config);
    assert_has(
        &found,
        "postgres.listeners[0].tls.upstream_ca_file:",
        "does not exist",
    );
    assert_has(&found, "admin.token_file:", "does not exist");

    touch(dir.path(), "ca.pem");
    touch(dir.path(), "token");
    assert_eq!(problems(&config), Vec::<String>::new());
}

#[test]
fn token_sources_are_exclusive_and_well_formed() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = one_mongo("127.0.0.1:27018", "127.0.0.1:27017");
    config.admin.token_file = Some(touch(dir.path(), "token"));
    config.admin.token_env = Some("ADMIN_TOKEN".into());
    assert_has(&problems(&config), "admin:", "not both");

    config.admin.token_file = None;
    config.admin.token_env = Some("ADMIN TOKEN".into());
    assert_has(
        &problems(&config),
        "admin.token_env:",
        "not an environment variable name",
    );
}

#[test]
fn no_listener_at_all_is_rejected() {
    let found = problems(&Config::default());
    assert_has(&found, "listeners:", "none configured");
}

#[test]
fn capture_numbers_must_be_positive() {
    let mut config = one_mongo("127.0.0.1:27018", "127.0.0.1:27017");
    config.capture.channel_capacity = 0;
    config.capture.analysis_queue = 0;
    config.capture.max_inspect_bytes = 0;
    config.capture.max_shapes = 0;
    config.capture.sql_cache_entries = 0;
    config.capture.workers = 0;
    config.state.interval_secs = 0;
    let found = problems(&config);
    for field in [
        "capture.channel_capacity",
        "capture.analysis_queue",
        "capture.max_inspect_bytes",
        "capture.max_shapes",
        "capture.sql_cache_entries",
        "capture.workers",
        "state.interval_secs",
    ] {
        assert_has(&found, field, "greater than 0");
    }
    assert_eq!(found.len(), 7, "{found:#?}");
}

#[test]
fn an_inspection_budget_below_the_inspection_cap_is_rejected() {
    let mut config = one_mongo("127.0.0.1:27018", "127.0.0.1:27017");
    config.capture.max_inspect_bytes = 1 << 20;
    config.capture.max_inspect_total_bytes = (1 << 20) - 1;
    let found = problems(&config);
    assert_has(
        &found,
        "capture.max_inspect_total_bytes",
        "below capture.max_inspect_bytes (1048576)",
    );
    assert_eq!(found.len(), 1, "{found:#?}");
    config.capture.max_inspect_total_bytes = 1 << 20;
    assert!(problems(&config).is_empty());
}

#[test]
fn an_analysis_budget_below_one_mebibyte_is_rejected() {
    let mut config = one_mongo("127.0.0.1:27018", "127.0.0.1:27017");
    config.capture.max_aggregate_bytes = 4096;
    let found = problems(&config);
    assert_has(
        &found,
        "capture.max_aggregate_bytes",
        "below the minimum of 1048576",
    );
    config.capture.max_aggregate_bytes = indextap_config::MIN_MAX_AGGREGATE_BYTES;
    assert!(problems(&config).is_empty());
}

#[test]
fn duplicate_listener_names_are_rejected() {
    let mut config = one_mongo("127.0.0.1:27018", "127.0.0.1:27017");
    config.mongo.listeners[0].name = Some("db".into());
    let mut pg = PostgresListener::new("127.0.0.1:5433", "127.0.0.1:5432");
    pg.name = Some("db".into());
    config.postgres.listeners.push(pg);
    assert_has(
        &problems(&config),
        "postgres.listeners[0].name:",
        "mongo.listeners[0]",
    );
}

#[test]
fn admin_connection_strings_are_checked_without_being_quoted() {
    let mut config = one_mongo("127.0.0.1:27018", "127.0.0.1:27017");
    config.mongo.admin_uri = Some(indextap_config::Secret::new("http://user:hunter2@db"));
    config.postgres.admin_url = Some(indextap_config::Secret::new("mysql://user:hunter2@db"));
    let found = problems(&config);
    assert_has(&found, "mongo.admin_uri:", "mongodb://");
    assert_has(&found, "postgres.admin_url:", "postgres://");
    assert!(found.iter().all(|p| !p.contains("hunter2")), "{found:#?}");

    config.postgres.admin_url = Some(indextap_config::Secret::new("host=db user=app"));
    config.mongo.admin_uri = Some(indextap_config::Secret::new("mongodb+srv://c.example.net"));
    assert_eq!(problems(&config), Vec::<String>::new());
}

#[test]
fn load_reports_every_problem_at_once_with_paths() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("indextap.toml");
    std::fs::write(
        &path,
        r#"
[capture]
workers = 0
[[postgres.listeners]]
listen = "x:y"
upstream = "127.0.0.1:5432"
tls = { mode = "terminate" }
"#,
    )
    .unwrap();
    let err = load(Some(&path), [("HOME", "/root")], CliOverrides::default()).unwrap_err();
    let ConfigError::Invalid(found) = &err else {
        panic!("expected Invalid, got {err:?}");
    };
    assert_eq!(found.len(), 4, "{found:#?}");
    let shown = err.to_string();
    assert!(
        shown.contains(r#"postgres.listeners[0].listen: "x:y" is not a HOST:PORT address"#),
        "{shown}"
    );
    assert!(shown.contains("capture.workers"), "{shown}");
    assert!(shown.contains("tls.cert_file"), "{shown}");
    assert!(shown.contains("tls.key_file"), "{shown}");
}

#[test]
fn mongo_terminate_needs_existing_cert_and_key_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = one_mongo("127.0.0.1:27018", "127.0.0.1:27017");
    config.mongo.listeners[0].tls.mode = TlsMode::Terminate;
    config.mongo.listeners[0].tls.upstream_ca_file = Some(dir.path().join("ca.pem"));
    let found = problems(&config);
    for (field, fragment) in [
        ("mongo.listeners[0].tls.cert_file:", "required"),
        ("mongo.listeners[0].tls.key_file:", "required"),
        ("mongo.listeners[0].tls.upstream_ca_file:", "does not exist"),
    ] {
        assert_has(&found, field, fragment);
    }

    let tls = &mut config.mongo.listeners[0].tls;
    tls.cert_file = Some(touch(dir.path(), "server.crt"));
    tls.key_file = Some(touch(dir.path(), "server.key"));
    tls.upstream_ca_file = Some(touch(dir.path(), "ca.pem"));
    assert_eq!(problems(&config), Vec::<String>::new());
}

#[test]
fn snapshot_sinks_are_checked_without_quoting_credentials() {
    let mut config = one_mongo("127.0.0.1:27018", "127.0.0.1:27017");
    for good in [
        "postgres://indextap:hunter2@db:5432/fleet",
        "s3://fleet-bucket/staging",
        "file:///var/lib/indextap-fleet",
    ] {
        config.snapshot_sink.url = Some(indextap_config::Secret::new(good));
        assert_eq!(problems(&config), Vec::<String>::new(), "{good}");
    }

    for (bad, fragment) in [
        ("mysql://user:hunter2@db/x", "unknown scheme"),
        ("s3://", "bucket"),
        ("file://relative/dir", "absolute"),
        ("postgres", "postgres.admin_url"),
    ] {
        config.snapshot_sink.url = Some(indextap_config::Secret::new(bad));
        let found = problems(&config);
        assert_has(&found, "snapshot_sink.url:", fragment);
        assert!(found.iter().all(|p| !p.contains("hunter2")), "{found:#?}");
    }
    // "postgres" alone is the admin URL, once there is one.
    config.postgres.admin_url = Some(indextap_config::Secret::new("postgres://a@db/app"));
    assert_eq!(problems(&config), Vec::<String>::new());

    config.snapshot_sink.sidecar_id = Some("pod/1".into());
    assert_has(
        &problems(&config),
        "snapshot_sink.sidecar_id:",
        "not a sidecar id",
    );
}
