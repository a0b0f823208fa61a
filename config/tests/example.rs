//! `config/indextap.example.toml` stays loadable, and documents every key of the model.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use indextap_config::{
    load, AdminConfig, AdviceConfig, CaptureConfig, CliOverrides, Config, ListenerTls, LogConfig,
    LogFormat, MongoConfig, MongoListener, MongoVerify, PostgresConfig, PostgresListener,
    RuntimeConfig, Secret, ShutdownConfig, SnapshotSinkConfig, StateConfig, TlsMode, UpstreamTls,
};

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("indextap.example.toml")
}

#[test]
fn example_loads_and_validates() {
    let config = load(
        Some(&example_path()),
        [("HOME", "/root")],
        CliOverrides::default(),
    )
    .unwrap_or_else(|e| panic!("the example must stay valid: {e}"));
    // Values the example shows as defaults are the defaults.
    assert_eq!(config.capture, CaptureConfig::default());
    assert_eq!(config.state, StateConfig::default());
    assert_eq!(config.shutdown, ShutdownConfig::default());
    assert_eq!(config.log, LogConfig::default());
    assert_eq!(config.runtime, RuntimeConfig::default());
    assert_eq!(config.admin, AdminConfig::default());
    assert_eq!(config.postgres.listeners[0].tls, ListenerTls::default());
    assert_eq!(config.mongo.listeners[0].tls, ListenerTls::default());
    assert_eq!(config.snapshot_sink, SnapshotSinkConfig::default());
    assert_eq!(config.advice, AdviceConfig::default());
}

/// Every field set, written with struct literals so that a new field fails to compile here
/// until it is added (and then must be documented in the example).
fn every_field_set() -> Config {
    let tls = ListenerTls {
        mode: TlsMode::Terminate,
        cert_file: Some("/c".into()),
        key_file: Some("/k".into()),
        upstream: UpstreamTls::Require,
        upstream_ca_file: Some("/ca".into()),
    };
    Config {
        admin: AdminConfig {
            listen: "127.0.0.1:9090".into(),
            token_file: Some("/t".into()),
            token_env: Some("T".into()),
        },
        mongo: MongoConfig {
            admin_uri: Some(Secret::new("mongodb://h")),
            listeners: vec![MongoListener {
                listen: "127.0.0.1:1".into(),
                upstream: "h:2".into(),
                advertise: Some("h:3".into()),
                name: Some("n".into()),
                tls: tls.clone(),
            }],
        },
        postgres: PostgresConfig {
            admin_url: Some(Secret::new("postgres://h")),
            listeners: vec![PostgresListener {
                listen: "127.0.0.1:4".into(),
                upstream: "h:5".into(),
                name: Some("p".into()),
                tls,
            }],
        },
        capture: CaptureConfig {
            channel_capacity: 1,
            analysis_queue: 1,
            max_inspect_bytes: 1,
            max_inspect_total_bytes: 1,
            max_shapes: 1,
            max_aggregate_bytes: 1_048_576,
            sql_cache_entries: 1,
            workers: 1,
        },
        state: StateConfig {
            dir: Some("/s".into()),
            interval_secs: 1,
        },
        snapshot_sink: SnapshotSinkConfig {
            url: Some(Secret::new("postgres")),
            sidecar_id: Some("s".into()),
        },
        shutdown: ShutdownConfig { grace_secs: 1 },
        log: LogConfig {
            format: LogFormat::Json,
            level: "info".into(),
        },
        advice: AdviceConfig {
            min_gain_percent: 10,
            max_indexes_per_namespace: 3,
            drop_min_window_secs: 3600,
            mongo_verify: MongoVerify::Sample,
            mongo_sample_size: 500,
            index_write_cost_us: Some(20),
            max_verified_candidates: 500,
        },
        runtime: RuntimeConfig { threads: 1 },
    }
}

/// Dotted key paths of a TOML value; array-of-table elements share their array's path.
fn model_keys(value: &toml::Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value {
        toml::Value::Table(table) => {
            for (key, child) in table {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                match child {
                    toml::Value::Table(_) => model_keys(child, &path, out),
                    toml::Value::Array(items) if items.iter().all(toml::Value::is_table) => {
                        for item in items {
                            model_keys(item, &path, out);
                        }
                    }
                    _ => {
                        out.insert(path);
                    }
                }
            }
        }
        _ => unreachable!("the root is a table"),
    }
}

/// Key paths written in the example, commented out or not: a line `[a.b]` / `[[a.b]]`
/// opens a section, a line `key = ...` (after an optional `#`) names a key in it.
fn example_keys(text: &str) -> BTreeSet<String> {
    let mut section = String::new();
    let mut keys = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim_start_matches('#').trim();
        if let Some(header) = line.strip_prefix('[') {
            section = header.trim_matches(|c| c == '[' || c == ']').to_owned();
            continue;
        }
        let Some((key, _)) = line.split_once(" = ") else {
            continue;
        };
        if key.chars().all(|c| c.is_ascii_lowercase() || c == '_') && !key.is_empty() {
            keys.insert(if section.is_empty() {
                key.to_owned()
            } else {
                format!("{section}.{key}")
            });
        }
    }
    keys
}

#[test]
fn example_documents_every_key_and_no_other() {
    let value = toml::Value::try_from(every_field_set()).expect("the model serialises");
    let mut model = BTreeSet::new();
    model_keys(&value, "", &mut model);
    assert!(
        model.contains("postgres.listeners.tls.upstream_ca_file"),
        "{model:#?}"
    );

    let text = std::fs::read_to_string(example_path()).unwrap();
    let example = example_keys(&text);

    let missing: Vec<_> = model.difference(&example).collect();
    assert!(
        missing.is_empty(),
        "keys missing from the example: {missing:?}"
    );
    let stale: Vec<_> = example.difference(&model).collect();
    assert!(
        stale.is_empty(),
        "keys in the example but not in the model: {stale:?}"
    );
}

#[test]
fn example_with_every_key_uncommented_still_parses() {
    // Commented-out keys must be real keys with well-typed values, not just names.
    let text = std::fs::read_to_string(example_path()).unwrap();
    let uncommented: String = text
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest)
                if rest.split_once(" = ").is_some_and(|(k, _)| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                }) =>
            {
                rest
            }
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let config = indextap_config::parse_toml(&uncommented)
        .unwrap_or_else(|e| panic!("uncommented example does not parse: {e}"));
    assert!(config.admin.token_file.is_some());
    assert!(config.mongo.admin_uri.is_some());
    assert!(config.mongo.listeners[0].advertise.is_some());
    assert!(config.postgres.listeners[0].tls.upstream_ca_file.is_some());
    assert!(config.state.dir.is_some());
}
