//! Loading: precedence file < environment < CLI, unknown keys and variables, defaults.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use indextap_config::{load, CliOverrides, Config, ConfigError, LogFormat, MongoListener, TlsMode};

const NO_ENV: [(&str, &str); 0] = [];

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    path
}

/// `text` as `indextap.toml` in a new temporary folder, which lasts as long as the guard.
fn config_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "indextap.toml", text);
    (dir, file)
}

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// `loaded` failed on `setting` (an environment variable, or a flag: `--...`), with a
/// message that names `mentions`.
fn assert_refused(loaded: Result<Config, ConfigError>, setting: &str, mentions: &str) {
    let (named, message) = match loaded {
        Err(ConfigError::Cli { flag, message }) if setting.starts_with("--") => (flag, message),
        Err(ConfigError::Env { var, message }) if !setting.starts_with("--") => (var, message),
        other => panic!("expected an error on {setting}, got {other:?}"),
    };
    assert_eq!(named, setting);
    assert!(message.contains(mentions), "{message}");
}

const MINIMAL: &str = r#"
[[mongo.listeners]]
listen = "127.0.0.1:27018"
upstream = "db.internal:27017"
"#;

#[test]
fn defaults_fill_everything_a_minimal_file_leaves_out() {
    let (_dir, file) = config_file(MINIMAL);
    let config = load(Some(&file), NO_ENV, CliOverrides::default()).unwrap();

    assert_eq!(config.admin.listen, "127.0.0.1:9090");
    assert_eq!(config.admin.token_file, None);
    assert_eq!(config.admin.token_env, None);
    assert_eq!(config.mongo.admin_uri, None);
    assert_eq!(config.capture.channel_capacity, 4096);
    assert_eq!(config.capture.analysis_queue, 65536);
    assert_eq!(config.capture.max_inspect_bytes, 8_388_608);
    assert_eq!(config.capture.max_inspect_total_bytes, 8_388_608);
    assert_eq!(config.capture.max_shapes, 10_000);
    assert_eq!(config.capture.sql_cache_entries, 4096);
    assert_eq!(config.capture.workers, 1);
    assert_eq!(config.state.dir, None);
    assert_eq!(config.state.interval_secs, 30);
    assert_eq!(config.shutdown.grace_secs, 10);
    assert_eq!(config.log.format, LogFormat::Text);
    assert_eq!(config.log.level, "info");
    assert!(config.postgres.listeners.is_empty());

    // Derived defaults follow the listener's final address.
    let listener = &config.mongo.listeners[0];
    assert_eq!(listener.name.as_deref(), Some("mongo-127.0.0.1:27018"));
    assert_eq!(listener.advertise.as_deref(), Some("127.0.0.1:27018"));
    assert_eq!(listener.upstream, "db.internal:27017");
}

#[test]
fn postgres_tls_defaults_to_refuse_and_clear_upstream() {
    let (_dir, file) = config_file(
        "[[postgres.listeners]]\nlisten = \"127.0.0.1:5433\"\nupstream = \"127.0.0.1:5432\"\n",
    );
    let config = load(Some(&file), NO_ENV, CliOverrides::default()).unwrap();
    let listener = &config.postgres.listeners[0];
    assert_eq!(listener.tls.mode, TlsMode::Refuse);
    assert_eq!(listener.tls.upstream, indextap_config::UpstreamTls::Disable);
    assert_eq!(listener.tls.upstream_ca_file, None);
    assert_eq!(listener.name.as_deref(), Some("postgres-127.0.0.1:5433"));
}

#[test]
fn precedence_is_file_then_env_then_cli() {
    let (_dir, file) = config_file(
        r#"
[admin]
listen = "127.0.0.1:9001"
[log]
level = "debug"
format = "text"
[state]
interval_secs = 5
[capture]
max_shapes = 11
[[mongo.listeners]]
listen = "127.0.0.1:27018"
upstream = "127.0.0.1:27017"
name = "primary"
[[mongo.listeners]]
listen = "127.0.0.1:27019"
upstream = "127.0.0.1:27020"
"#,
    );
    let env = env(&[
        ("INDEXTAP_ADMIN_LISTEN", "127.0.0.1:9002"),
        ("INDEXTAP_STATE_INTERVAL_SECS", "7"),
        ("INDEXTAP_LOG_FORMAT", "json"),
        ("INDEXTAP_MAX_SHAPES", "12"),
        ("INDEXTAP_MAX_AGGREGATE_BYTES", "33554432"),
        ("INDEXTAP_MONGO_LISTEN", "127.0.0.1:28001"),
        ("INDEXTAP_MONGO_UPSTREAM", "env-db:27017"),
        ("PATH", "/usr/bin"),
    ]);
    let cli = CliOverrides {
        admin_listen: Some("127.0.0.1:9003".into()),
        mongo_listen: Some("127.0.0.1:28002".into()),
        mongo_upstream: Some("cli-db:27017".into()),
        log_format: Some("text".into()),
        ..CliOverrides::default()
    };
    let config = load(Some(&file), &env, cli).unwrap();
    assert_eq!(
        config.capture.max_aggregate_bytes, 33_554_432,
        "env beats the default"
    );

    assert_eq!(
        config.admin.listen, "127.0.0.1:9003",
        "CLI beats env and file"
    );
    assert_eq!(config.log.format, LogFormat::Text, "CLI beats env");
    assert_eq!(config.state.interval_secs, 7, "env beats file");
    assert_eq!(config.capture.max_shapes, 12, "env beats file");
    assert_eq!(config.log.level, "debug", "file beats defaults");

    // The pair replaced the first listener's addresses and kept the rest of the file's.
    assert_eq!(config.mongo.listeners.len(), 2);
    let first = &config.mongo.listeners[0];
    assert_eq!(first.listen, "127.0.0.1:28002");
    assert_eq!(first.upstream, "cli-db:27017");
    assert_eq!(first.name.as_deref(), Some("primary"));
    assert_eq!(first.advertise.as_deref(), Some("127.0.0.1:28002"));
    assert_eq!(config.mongo.listeners[1].listen, "127.0.0.1:27019");
}

#[test]
fn env_alone_can_configure_a_listener_without_a_file() {
    let env = env(&[
        ("INDEXTAP_PG_LISTEN", "0.0.0.0:6432"),
        ("INDEXTAP_PG_UPSTREAM", "postgres:5432"),
        ("INDEXTAP_PG_ADMIN_URL", "postgres://u:p@postgres:5432/app"),
        ("INDEXTAP_STATE_DIR", "/var/lib/indextap"),
    ]);
    let config = load(None, &env, CliOverrides::default()).unwrap();
    assert_eq!(config.postgres.listeners.len(), 1);
    assert_eq!(config.postgres.listeners[0].listen, "0.0.0.0:6432");
    assert_eq!(config.postgres.listeners[0].upstream, "postgres:5432");
    assert_eq!(
        config.postgres.admin_url.as_deref(),
        Some("postgres://u:p@postgres:5432/app")
    );
    assert_eq!(config.state.dir, Some(PathBuf::from("/var/lib/indextap")));
    // The credential never shows in Debug output.
    assert!(!format!("{config:?}").contains("u:p@"));
}

#[test]
fn cli_pair_adds_a_listener_when_none_exists() {
    let cli = CliOverrides {
        mongo_listen: Some("localhost:27018".into()),
        mongo_upstream: Some("127.0.0.1:27017".into()),
        mongo_advertise: Some("proxy.svc:27018".into()),
        ..CliOverrides::default()
    };
    let config = load(None, NO_ENV, cli).unwrap();
    assert_eq!(
        config.mongo.listeners,
        vec![MongoListener {
            listen: "localhost:27018".into(),
            upstream: "127.0.0.1:27017".into(),
            advertise: Some("proxy.svc:27018".into()),
            name: Some("mongo-localhost:27018".into()),
            tls: indextap_config::ListenerTls::default(),
        }]
    );
}

#[test]
fn half_a_pair_is_an_error_naming_both_halves() {
    let env = env(&[("INDEXTAP_MONGO_LISTEN", "127.0.0.1:27018")]);
    assert_refused(
        load(None, &env, CliOverrides::default()),
        "INDEXTAP_MONGO_LISTEN",
        "INDEXTAP_MONGO_UPSTREAM",
    );

    let cli = CliOverrides {
        pg_upstream: Some("127.0.0.1:5432".into()),
        ..CliOverrides::default()
    };
    assert_refused(load(None, NO_ENV, cli), "--pg-upstream", "--pg-listen");
}

#[test]
fn tls_override_without_a_postgres_listener_is_an_error() {
    let env = env(&[
        ("INDEXTAP_MONGO_LISTEN", "127.0.0.1:27018"),
        ("INDEXTAP_MONGO_UPSTREAM", "127.0.0.1:27017"),
        ("INDEXTAP_PG_TLS_MODE", "passthrough"),
    ]);
    assert_refused(
        load(None, &env, CliOverrides::default()),
        "INDEXTAP_PG_TLS_MODE",
        "no PostgreSQL listener",
    );
}

#[test]
fn unknown_env_var_is_named() {
    let env = env(&[
        ("INDEXTAP_MONGO_LISTEN", "127.0.0.1:27018"),
        ("INDEXTAP_MONGO_UPSTREAM", "127.0.0.1:27017"),
        ("INDEXTAP_PG_UPSTREM", "127.0.0.1:5432"),
    ]);
    let err = load(None, &env, CliOverrides::default()).unwrap_err();
    match &err {
        ConfigError::Env { var, .. } => assert_eq!(var, "INDEXTAP_PG_UPSTREM"),
        other => panic!("expected an env error, got {other:?}"),
    }
    assert!(err.to_string().contains("INDEXTAP_PG_UPSTREM"));
}

#[test]
fn the_config_path_and_the_token_variable_are_not_unknown() {
    let (_dir, file) = config_file(MINIMAL);
    let env = env(&[
        ("INDEXTAP_CONFIG", "/somewhere/indextap.toml"),
        ("INDEXTAP_ADMIN_TOKEN_ENV", "INDEXTAP_ADMIN_TOKEN"),
        ("INDEXTAP_ADMIN_TOKEN", "s3cret"),
    ]);
    let config = load(Some(&file), &env, CliOverrides::default()).unwrap();
    assert_eq!(
        config.admin.token_env.as_deref(),
        Some("INDEXTAP_ADMIN_TOKEN")
    );
}

#[test]
fn malformed_env_values_are_named() {
    let cases = [
        ("INDEXTAP_STATE_INTERVAL_SECS", "soon"),
        ("INDEXTAP_MAX_SHAPES", "-3"),
        ("INDEXTAP_LOG_FORMAT", "xml"),
        ("INDEXTAP_PG_TLS_MODE", "maybe"),
    ];
    for (name, value) in cases {
        let env = env(&[(name, value)]);
        match load(None, &env, CliOverrides::default()) {
            Err(ConfigError::Env { var, .. }) => assert_eq!(var, name),
            other => panic!("{name}={value}: expected an env error, got {other:?}"),
        }
    }
}

#[test]
fn malformed_cli_keyword_is_named() {
    let cli = CliOverrides {
        mongo_listen: Some("127.0.0.1:27018".into()),
        mongo_upstream: Some("127.0.0.1:27017".into()),
        log_format: Some("yaml".into()),
        ..CliOverrides::default()
    };
    assert_refused(load(None, NO_ENV, cli), "--log-format", "text, json");
}

#[test]
fn empty_env_values_count_as_unset() {
    let (_dir, file) = config_file(MINIMAL);
    let env = env(&[("INDEXTAP_ADMIN_LISTEN", ""), ("INDEXTAP_STATE_DIR", "")]);
    let config = load(Some(&file), &env, CliOverrides::default()).unwrap();
    assert_eq!(config.admin.listen, "127.0.0.1:9090");
    assert_eq!(config.state.dir, None);
}

#[test]
fn unknown_key_is_rejected_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[capture]\nmax_shapez = 3\n", "max_shapez"),
        ("[admim]\nlisten = \"127.0.0.1:1\"\n", "admim"),
        (
            "[[postgres.listeners]]\nlisten = \"127.0.0.1:1\"\nupstream = \"h:2\"\ntls = { mode = \"refuse\", certfile = \"x\" }\n",
            "certfile",
        ),
    ];
    for (text, key) in cases {
        let file = write(dir.path(), "bad.toml", text);
        match load(Some(&file), NO_ENV, CliOverrides::default()) {
            Err(ConfigError::Parse { path, message }) => {
                assert_eq!(path, file);
                assert!(message.contains(key), "{key} not in {message}");
            }
            other => panic!("{key}: expected a parse error, got {other:?}"),
        }
    }
}

#[test]
fn wrong_enum_value_in_file_is_a_parse_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "bad.toml", "[log]\nformat = \"xml\"\n");
    let err = load(Some(&file), NO_ENV, CliOverrides::default()).unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }), "{err:?}");
    assert!(err.to_string().contains("xml"), "{err}");
}

#[test]
fn missing_file_is_a_read_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    match load(Some(&missing), NO_ENV, CliOverrides::default()) {
        Err(ConfigError::Read { path, .. }) => assert_eq!(path, missing),
        other => panic!("expected a read error, got {other:?}"),
    }
}

#[test]
fn default_config_has_documented_values() {
    let config = Config::default();
    assert_eq!(config.admin.listen, "127.0.0.1:9090");
    assert_eq!(config.capture.max_inspect_bytes, 8 * 1024 * 1024);
    assert_eq!(config.capture.max_inspect_total_bytes, 8 * 1024 * 1024);
    assert_eq!(config.state.interval(), std::time::Duration::from_secs(30));
    assert_eq!(config.shutdown.grace(), std::time::Duration::from_secs(10));
    // With no listener at all, the defaults alone are not a usable configuration.
    assert!(matches!(config.validate(), Err(ConfigError::Invalid(_))));
}

#[test]
fn mongo_tls_comes_from_file_env_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let cert = write(dir.path(), "cert.pem", "x");
    let key = write(dir.path(), "key.pem", "x");
    let file = write(
        dir.path(),
        "indextap.toml",
        &format!("{MINIMAL}tls = {{ mode = \"passthrough\", upstream = \"require\" }}\n"),
    );
    let config = load(Some(&file), NO_ENV, CliOverrides::default()).unwrap();
    let tls = &config.mongo.listeners[0].tls;
    assert_eq!(tls.mode, TlsMode::Passthrough);
    assert_eq!(tls.upstream, indextap_config::UpstreamTls::Require);

    let env = env(&[
        ("INDEXTAP_MONGO_TLS_MODE", "terminate"),
        ("INDEXTAP_MONGO_TLS_CERT", cert.to_str().unwrap()),
        ("INDEXTAP_MONGO_TLS_KEY", "/nowhere/key.pem"),
    ]);
    let cli = CliOverrides {
        mongo_tls_key: Some(key.clone()),
        ..CliOverrides::default()
    };
    let config = load(Some(&file), &env, cli).unwrap();
    let tls = &config.mongo.listeners[0].tls;
    assert_eq!(tls.mode, TlsMode::Terminate);
    assert_eq!(tls.cert_file.as_deref(), Some(cert.as_path()));
    assert_eq!(
        tls.key_file.as_deref(),
        Some(key.as_path()),
        "the flag wins"
    );
    assert_eq!(tls.upstream, indextap_config::UpstreamTls::Require, "kept");

    let cli = CliOverrides {
        mongo_tls_mode: Some("sometimes".into()),
        ..CliOverrides::default()
    };
    assert_refused(
        load(Some(&file), NO_ENV, cli),
        "--mongo-tls-mode",
        "refuse, terminate, passthrough",
    );
    let env_only = self::env(&[("INDEXTAP_MONGO_TLS_MODE", "terminate")]);
    assert_refused(
        load(None, &env_only, CliOverrides::default()),
        "INDEXTAP_MONGO_TLS_MODE",
        "no MongoDB listener",
    );
}

#[test]
fn relative_paths_in_a_file_are_relative_to_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("etc");
    std::fs::create_dir_all(folder.join("tls")).unwrap();
    for name in ["tls/server.crt", "tls/server.key", "tls/ca.pem", "token"] {
        write(&folder, name, "x");
    }
    let file = write(
        &folder,
        "indextap.toml",
        r#"
[admin]
token_file = "token"
[[mongo.listeners]]
listen = "127.0.0.1:27018"
upstream = "127.0.0.1:27017"
tls = { mode = "terminate", cert_file = "tls/server.crt", key_file = "tls/server.key", upstream_ca_file = "tls/ca.pem" }
[[postgres.listeners]]
listen = "127.0.0.1:5433"
upstream = "127.0.0.1:5432"
tls = { mode = "terminate", cert_file = "tls/server.crt", key_file = "/abs/server.key" }
[state]
dir = "state"
"#,
    );
    // Loading from another working directory: the files are found beside the file, and
    // validation (which checks that they exist) passes.
    let cli = CliOverrides {
        pg_tls_key: Some(folder.join("tls/server.key")),
        ..CliOverrides::default()
    };
    let config = load(Some(&file), NO_ENV, cli).unwrap();
    assert_eq!(config.admin.token_file, Some(folder.join("token")));
    assert_eq!(config.state.dir, Some(folder.join("state")));
    let mongo = &config.mongo.listeners[0].tls;
    assert_eq!(mongo.cert_file, Some(folder.join("tls/server.crt")));
    assert_eq!(mongo.key_file, Some(folder.join("tls/server.key")));
    assert_eq!(mongo.upstream_ca_file, Some(folder.join("tls/ca.pem")));
    let pg = &config.postgres.listeners[0].tls;
    assert_eq!(pg.cert_file, Some(folder.join("tls/server.crt")));

    // Absolute paths stay; paths from the environment and flags stay relative to the
    // working directory.
    let raw = indextap_config::read_file(&file).unwrap();
    assert_eq!(
        raw.postgres.listeners[0].tls.key_file.as_deref(),
        Some(Path::new("/abs/server.key"))
    );
    let env = env(&[("INDEXTAP_STATE_DIR", "relative/state")]);
    let cli = CliOverrides {
        pg_tls_key: Some(folder.join("tls/server.key")),
        ..CliOverrides::default()
    };
    let config = load(Some(&file), &env, cli).unwrap();
    assert_eq!(config.state.dir, Some(PathBuf::from("relative/state")));

    // A flag's relative key is looked up from the working directory, where it is not.
    let cli = CliOverrides {
        pg_tls_key: Some("tls/server.key".into()),
        ..CliOverrides::default()
    };
    match load(Some(&file), NO_ENV, cli) {
        Err(ConfigError::Invalid(problems)) => assert!(
            problems
                .iter()
                .any(|p| p.starts_with("postgres.listeners[0].tls.key_file:")
                    && p.contains("tls/server.key does not exist")),
            "{problems:#?}"
        ),
        other => panic!("a flag's relative path must not resolve against the file: {other:?}"),
    }
}

#[test]
fn snapshot_sink_and_sidecar_id_come_from_env_and_flags() {
    let (_dir, file) = config_file(&format!(
        "{MINIMAL}\n[snapshot_sink]\nurl = \"s3://a/b\"\nsidecar_id = \"file-id\"\n"
    ));
    let env = env(&[
        ("INDEXTAP_SNAPSHOT_SINK", "file:///var/lib/fleet"),
        ("INDEXTAP_SIDECAR_ID", "env-id"),
    ]);
    let config = load(Some(&file), &env, CliOverrides::default()).unwrap();
    assert_eq!(
        config.snapshot_sink.url.as_deref(),
        Some("file:///var/lib/fleet")
    );
    assert_eq!(config.snapshot_sink.sidecar_id.as_deref(), Some("env-id"));
    let cli = CliOverrides {
        snapshot_sink: Some("postgres://u@db/fleet".into()),
        sidecar_id: Some("flag-id".into()),
        ..CliOverrides::default()
    };
    let config = load(Some(&file), &env, cli).unwrap();
    assert_eq!(
        config.snapshot_sink.url.as_deref(),
        Some("postgres://u@db/fleet")
    );
    assert_eq!(config.snapshot_sink.sidecar_id.as_deref(), Some("flag-id"));
}

#[test]
fn advice_settings_from_file_env_and_cli() {
    let (dir, file) = config_file(&format!(
        "{MINIMAL}\n[advice]\nmin_gain_percent = 10\nmax_indexes_per_namespace = 2\n"
    ));
    let config = load(
        Some(&file),
        env(&[
            ("INDEXTAP_MONGO_VERIFY", "sample"),
            ("INDEXTAP_MIN_GAIN_PERCENT", "30"),
        ]),
        CliOverrides {
            drop_min_window_secs: Some(60),
            mongo_sample_size: Some(500),
            ..CliOverrides::default()
        },
    )
    .unwrap();
    let advice = &config.advice;
    assert_eq!(
        advice.min_gain_percent, 30,
        "the environment overrides the file"
    );
    assert_eq!(advice.max_indexes_per_namespace, 2);
    assert_eq!(advice.mongo_verify, indextap_config::MongoVerify::Sample);
    assert_eq!(advice.drop_min_window_secs, 60);
    assert_eq!(advice.mongo_sample_size, 500);
    assert_eq!(advice.index_write_cost_us, None, "measured unless pinned");

    let pinned = |env_value: &str, cli: Option<u32>| {
        load(
            Some(&file),
            env(&[("INDEXTAP_INDEX_WRITE_COST_US", env_value)]),
            CliOverrides {
                index_write_cost_us: cli,
                ..CliOverrides::default()
            },
        )
        .map(|config| config.advice.index_write_cost_us)
    };
    assert_eq!(pinned("35", None).unwrap(), Some(35));
    assert_eq!(pinned("35", Some(50)).unwrap(), Some(50), "the flag wins");
    let not_a_number = pinned("fast", None).unwrap_err();
    assert!(
        not_a_number
            .to_string()
            .contains("INDEXTAP_INDEX_WRITE_COST_US"),
        "{not_a_number}"
    );

    let wrong = load(
        Some(&file),
        env(&[("INDEXTAP_MONGO_VERIFY", "always")]),
        CliOverrides::default(),
    )
    .unwrap_err();
    assert!(
        wrong.to_string().contains("INDEXTAP_MONGO_VERIFY"),
        "{wrong}"
    );
    let too_much = write(
        dir.path(),
        "bad.toml",
        &format!("{MINIMAL}\n[advice]\nmin_gain_percent = 150\n"),
    );
    let invalid = load(Some(&too_much), NO_ENV, CliOverrides::default()).unwrap_err();
    assert!(
        invalid.to_string().contains("advice.min_gain_percent"),
        "{invalid}"
    );
}
