//! `deploy/indextap.service`: hardened, stops within the drain, writes only its state
//! directory, and documents where its configuration lives.

use std::collections::BTreeMap;

use super::{assert_known_flags, example_config, read, seconds, CONFIG_PATH};

/// `section → key → values` (a key may repeat), and the comment lines.
struct Unit {
    sections: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    comments: Vec<String>,
}

impl Unit {
    fn parse(text: &str) -> Self {
        let mut unit = Unit {
            sections: BTreeMap::new(),
            comments: Vec::new(),
        };
        let mut section = String::new();
        for line in text.lines().map(str::trim) {
            if let Some(comment) = line.strip_prefix('#').or_else(|| line.strip_prefix(';')) {
                unit.comments.push(comment.trim().to_owned());
            } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_owned();
            } else if let Some((key, value)) = line.split_once('=') {
                assert!(!section.is_empty(), "{line:?} outside a section");
                unit.sections
                    .entry(section.clone())
                    .or_default()
                    .entry(key.trim().to_owned())
                    .or_default()
                    .push(value.trim().to_owned());
            } else {
                assert!(line.is_empty(), "unparsed line {line:?}");
            }
        }
        unit
    }

    fn values(&self, section: &str, key: &str) -> &[String] {
        self.sections
            .get(section)
            .and_then(|keys| keys.get(key))
            .map_or(&[], Vec::as_slice)
    }

    /// The one value of a key.
    #[track_caller]
    fn value(&self, section: &str, key: &str) -> &str {
        match self.values(section, key) {
            [value] => value,
            other => panic!("[{section}] {key}: {other:?}"),
        }
    }
}

#[test]
fn the_unit_is_hardened_and_stops_within_the_drain() {
    let unit = Unit::parse(&read("indextap.service"));
    let service = "Service";

    let dynamic = unit.values(service, "DynamicUser") == ["yes"];
    let user = unit.values(service, "User");
    assert!(
        dynamic || user.iter().any(|u| u != "root" && u != "0"),
        "a dynamic or dedicated user"
    );
    for (key, expected) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("Restart", "on-failure"),
        ("KillSignal", "SIGTERM"),
        ("StateDirectory", "indextap"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(unit.value(service, key), expected, "{key}");
    }
    assert!(
        unit.values(service, "ExecReload").is_empty(),
        "indextap has no reload: a restart applies a new file"
    );
    let grace = example_config().shutdown.grace_secs;
    assert!(
        seconds(unit.value(service, "TimeoutStopSec")) > grace,
        "systemd must not kill indextap during its {grace} s drain"
    );
}

#[test]
fn exec_start_uses_the_documented_configuration_and_the_state_directory() {
    let unit = Unit::parse(&read("indextap.service"));
    let exec = unit.value("Service", "ExecStart");
    let args: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(args.get(1), Some(&"proxy"), "{exec}");
    assert_known_flags("ExecStart", args.get(1..).unwrap_or_default());

    let flag = |name: &str| {
        args.iter()
            .position(|arg| *arg == name)
            .and_then(|at| args.get(at + 1))
            .copied()
            .unwrap_or_else(|| panic!("{exec}: no {name}"))
    };
    let config = flag("--config");
    assert_eq!(config, CONFIG_PATH);
    assert!(
        unit.comments.iter().any(|line| line.contains(config)),
        "the unit's own comments say where {config} comes from"
    );
    let documentation = unit.value("Unit", "Documentation");
    assert!(
        unit.comments
            .iter()
            .any(|line| line.contains("deploy/README.md")
                && line.contains(documentation.trim_start_matches("file://"))),
        "the install steps put the README where Documentation= points ({documentation})"
    );
    assert!(
        read("README.md").contains(config),
        "the README names {config}"
    );

    // ProtectSystem=strict leaves only the StateDirectory writable: the state goes there.
    let state_dir = flag("--state-dir");
    assert!(
        state_dir == "${STATE_DIRECTORY}"
            || state_dir == format!("/var/lib/{}", unit.value("Service", "StateDirectory")),
        "--state-dir {state_dir}"
    );

    // Every INDEXTAP_* variable the unit mentions, even commented out, is a real one.
    let text = read("indextap.service");
    let scratch = tempfile::tempdir().expect("tempdir");
    let token = scratch.path().join("admin-token");
    std::fs::write(&token, "t\n").expect("token");
    for variable in text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("INDEXTAP_"))
    {
        let loaded = indextap_config::load(
            None,
            [(variable, token.display().to_string())],
            indextap_config::CliOverrides {
                pg_listen: Some("127.0.0.1:6543".into()),
                pg_upstream: Some("127.0.0.1:5432".into()),
                ..Default::default()
            },
        );
        if let Err(err) = loaded {
            assert!(
                !err.to_string().contains("unknown variable"),
                "{variable}: {err}"
            );
        }
    }
}
