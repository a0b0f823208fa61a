//! The deployment files in `deploy/` agree with each other and with the real configuration
//! crate: every YAML parses, every embedded TOML is a valid configuration, and the ports,
//! paths and timeouts in the probes, Service, compose file, Dockerfile and systemd unit are
//! the ones the configuration uses. No image is built (there is no Docker engine here).
//!
//! ## Layout
//! - `kubernetes`: the ConfigMap, Deployment, Service and kustomization.
//! - `container`: the Dockerfile, the image's configuration and the compose file.
//! - `systemd`: the unit.
//! - this file: reading the files, YAML navigation, and facts drawn from a configuration.

#[path = "deploy/container.rs"]
mod container;
#[path = "deploy/kubernetes.rs"]
mod kubernetes;
#[path = "deploy/systemd.rs"]
mod systemd;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use indextap_config::Config;
use indextap_tests::workspace_root;
use serde::Deserialize;
use serde_yaml::Value;

/// Where the image and the unit read their configuration.
const CONFIG_PATH: &str = "/etc/indextap/indextap.toml";

fn deploy_dir() -> PathBuf {
    workspace_root().join("deploy")
}

/// A file under `deploy/`, as text.
fn read(relative: &str) -> String {
    let path = deploy_dir().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// Every document of a YAML file.
fn yaml_documents(relative: &str) -> Vec<Value> {
    let text = read(relative);
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| {
            Value::deserialize(document).unwrap_or_else(|err| panic!("{relative}: {err}"))
        })
        .filter(|value| !value.is_null())
        .collect()
}

/// The only document of a YAML file.
fn yaml(relative: &str) -> Value {
    let mut documents = yaml_documents(relative);
    assert_eq!(documents.len(), 1, "{relative}: one document expected");
    documents.remove(0)
}

/// `value[key1][key2]...`, or a panic naming the path.
#[track_caller]
fn at<'a>(value: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(value, |value, key| {
        value
            .get(key)
            .unwrap_or_else(|| panic!("no {key:?} in {path:?} of {value:?}"))
    })
}

#[track_caller]
fn text<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    at(value, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path:?} is not a string"))
}

#[track_caller]
fn list<'a>(value: &'a Value, path: &[&str]) -> &'a [Value] {
    at(value, path)
        .as_sequence()
        .unwrap_or_else(|| panic!("{path:?} is not a list"))
}

/// A YAML number or numeric string as a u64.
fn number(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|text| text.parse().ok()))
}

/// A duration like `30s`, `2m` or `30` (seconds).
fn seconds(text: &str) -> u64 {
    let text = text.trim();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let value: u64 = digits
        .parse()
        .unwrap_or_else(|_| panic!("{text:?} is not a duration"));
    match unit {
        "" | "s" => value,
        "m" | "min" => value * 60,
        other => panic!("{text:?}: unit {other:?}"),
    }
}

/// A listen address of a configuration.
fn addr(listen: &str) -> SocketAddr {
    listen
        .parse()
        .unwrap_or_else(|err| panic!("{listen:?} is not IP:PORT: {err}"))
}

/// The facts other files must agree with.
struct Ports {
    admin: u16,
    postgres: Vec<u16>,
    mongo: Vec<u16>,
}

impl Ports {
    fn of(config: &Config) -> Self {
        Self {
            admin: addr(&config.admin.listen).port(),
            postgres: config
                .postgres
                .listeners
                .iter()
                .map(|listener| addr(&listener.listen).port())
                .collect(),
            mongo: config
                .mongo
                .listeners
                .iter()
                .map(|listener| addr(&listener.listen).port())
                .collect(),
        }
    }

    /// Every port the process binds.
    fn all(&self) -> BTreeSet<u16> {
        std::iter::once(self.admin)
            .chain(self.postgres.iter().copied())
            .chain(self.mongo.iter().copied())
            .collect()
    }
}

/// Parses with the real configuration crate, then validates. Files the configuration names
/// (token, TLS) exist only where it is deployed: each must lie under one of `mounts`, and is
/// replaced by a scratch file for validation.
fn parse_and_validate(what: &str, toml: &str, mounts: &[&str]) -> Config {
    let config = indextap_config::parse_toml(toml).unwrap_or_else(|err| panic!("{what}: {err}"));
    let scratch = tempfile::tempdir().expect("tempdir");
    let stand_in = |path: &Path| -> PathBuf {
        assert!(
            mounts.iter().any(|mount| path.starts_with(mount)),
            "{what}: {} is not under a mounted volume ({mounts:?})",
            path.display()
        );
        let file = scratch.path().join(path.file_name().expect("a file name"));
        std::fs::write(&file, "stand-in\n").expect("scratch file");
        file
    };
    let mut checked = config.clone();
    if let Some(token) = &config.admin.token_file {
        checked.admin.token_file = Some(stand_in(token));
    }
    let mongo = checked.mongo.listeners.iter_mut().map(|l| &mut l.tls);
    let postgres = checked.postgres.listeners.iter_mut().map(|l| &mut l.tls);
    for tls in mongo.chain(postgres) {
        for file in [
            &mut tls.cert_file,
            &mut tls.key_file,
            &mut tls.upstream_ca_file,
        ] {
            if let Some(path) = file.take() {
                *file = Some(stand_in(&path));
            }
        }
    }
    checked
        .validate()
        .unwrap_or_else(|err| panic!("{what}: {err}"));
    config
}

/// The configuration example every deployment starts from.
fn example_config() -> Config {
    let path = workspace_root().join("config/indextap.example.toml");
    let config = indextap_config::read_file(&path).expect("the example parses");
    config.validate().expect("the example is valid");
    config
}

/// Every `--flag` that `indextap proxy` accepts, from its help.
fn proxy_flags() -> BTreeSet<String> {
    let output = std::process::Command::new(indextap_tests::IndextapProcess::binary())
        .args(["proxy", "--help"])
        .output()
        .expect("indextap proxy --help");
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .filter(|word| word.starts_with("--"))
        .map(|word| word.trim_end_matches([',', '.']).to_owned())
        .collect()
}

/// Every `--flag` in `args` is one `indextap proxy` knows.
#[track_caller]
fn assert_known_flags(what: &str, args: &[&str]) {
    let known = proxy_flags();
    for flag in args.iter().filter(|arg| arg.starts_with("--")) {
        assert!(
            known.contains(*flag),
            "{what}: unknown flag {flag} ({known:?})"
        );
    }
}

#[test]
fn every_yaml_file_parses() {
    let mut found = 0;
    let mut pending = vec![deploy_dir()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read deploy/") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let is_yaml = path
                .extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml");
            if !is_yaml {
                continue;
            }
            let relative = path
                .strip_prefix(deploy_dir())
                .expect("under deploy/")
                .to_string_lossy()
                .into_owned();
            let documents = yaml_documents(&relative);
            assert!(!documents.is_empty(), "{relative} is empty");
            for document in &documents {
                assert!(document.is_mapping(), "{relative}: a mapping at the top");
            }
            found += 1;
        }
    }
    assert!(
        found >= 5,
        "compose.yaml and the k8s manifests: {found} found"
    );
}
