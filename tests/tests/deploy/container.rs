//! The container: the Dockerfile builds and runs what the image's configuration
//! (`deploy/indextap.toml`) describes, and the compose file wires the same ports, paths and
//! services.

use std::collections::BTreeSet;

use indextap_config::Config;
use serde_yaml::Value;

use super::{
    addr, assert_known_flags, at, list, parse_and_validate, read, seconds, text, yaml, Ports,
    CONFIG_PATH,
};

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn dockerfile() -> Vec<(String, String)> {
    let text = read("Dockerfile");
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (keyword, rest) = current.split_once(' ').unwrap_or((&current, ""));
                instructions.push((keyword.to_ascii_uppercase(), rest.trim().to_owned()));
                current.clear();
            }
        }
    }
    instructions
}

fn instructions<'a>(all: &'a [(String, String)], keyword: &str) -> Vec<&'a str> {
    all.iter()
        .filter(|(k, _)| k == keyword)
        .map(|(_, rest)| rest.as_str())
        .collect()
}

/// The image's own configuration, validated.
/// Every listener of both engines, as `(listen, upstream)`.
fn listeners(config: &Config) -> Vec<(&str, &str)> {
    let postgres = config.postgres.listeners.iter();
    let mongo = config.mongo.listeners.iter();
    postgres
        .map(|l| (l.listen.as_str(), l.upstream.as_str()))
        .chain(mongo.map(|l| (l.listen.as_str(), l.upstream.as_str())))
        .collect()
}

fn image_config() -> Config {
    parse_and_validate("deploy/indextap.toml", &read("indextap.toml"), &[])
}

#[test]
fn the_dockerfile_builds_and_runs_what_the_image_configuration_describes() {
    let all = dockerfile();
    let config = image_config();
    let ports = Ports::of(&config);

    let from = instructions(&all, "FROM");
    assert_eq!(from.len(), 2, "multi-stage: {from:?}");
    assert!(from[0].starts_with("rust:1-slim-bookworm"), "{from:?}");
    assert_eq!(from[1], "debian:bookworm-slim");
    let build_stage = from[0].rsplit(' ').next().expect("a stage name");
    let copies = instructions(&all, "COPY");
    assert!(
        copies
            .iter()
            .any(|copy| copy.starts_with(&format!("--from={build_stage} "))),
        "the binary comes from the build stage: {copies:?}"
    );
    assert!(
        instructions(&all, "RUN")
            .iter()
            .any(|run| run
                .contains("cargo build --release --locked -p indextap-proxy --bin indextap")),
        "built with cargo, from the lock file"
    );

    let user = instructions(&all, "USER");
    let user = user.last().expect("a USER");
    let uid = user.split(':').next().unwrap_or_default();
    assert!(uid != "root" && uid != "0", "runs as {user}");

    assert!(
        copies.contains(&format!("deploy/indextap.toml {CONFIG_PATH}").as_str()),
        "the image's configuration: {copies:?}"
    );
    let entrypoint: Vec<String> =
        serde_json::from_str(instructions(&all, "ENTRYPOINT").last().expect("ENTRYPOINT"))
            .expect("ENTRYPOINT in exec form");
    assert_eq!(entrypoint, ["indextap", "proxy", "--config", CONFIG_PATH]);
    let args: Vec<&str> = entrypoint.iter().map(String::as_str).collect();
    assert_known_flags("ENTRYPOINT", &args);

    let exposed: BTreeSet<u16> = instructions(&all, "EXPOSE")
        .iter()
        .flat_map(|line| line.split_whitespace())
        .map(|port| port.trim_end_matches("/tcp").parse().expect("a port"))
        .collect();
    assert_eq!(
        exposed,
        ports.all(),
        "EXPOSE matches the listeners and the admin API"
    );
    for (listener, _) in listeners(&config) {
        assert!(
            addr(listener).ip().is_unspecified(),
            "{listener}: unreachable from outside"
        );
    }

    let health = instructions(&all, "HEALTHCHECK");
    let health = health.last().expect("a HEALTHCHECK");
    assert!(
        health.contains(&format!("/dev/tcp/127.0.0.1/{}", ports.admin))
            && health.contains("GET /healthz"),
        "{health}"
    );
    let state = config.state.dir.as_ref().expect("state.dir");
    let volumes = instructions(&all, "VOLUME");
    assert!(
        volumes
            .iter()
            .any(|volume| volume.contains(&format!("\"{}\"", state.display()))),
        "state.dir is a volume: {volumes:?}"
    );
    assert_eq!(instructions(&all, "STOPSIGNAL"), ["SIGTERM"]);

    let ignore = read("Dockerfile.dockerignore");
    assert!(ignore.lines().any(|line| line.trim() == "target/"));
}

/// A compose service.
fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    at(compose, &["services", name])
}

/// `HOST:PORT` → (host, port).
fn host_port(text: &str) -> (&str, u16) {
    let (host, port) = text.rsplit_once(':').expect("HOST:PORT");
    (host, port.parse().expect("a port"))
}

#[test]
fn compose_wires_the_image_configuration() {
    let compose = yaml("compose.yaml");
    let config = image_config();
    let ports = Ports::of(&config);
    let indextap = service(&compose, "indextap");

    assert_eq!(text(indextap, &["build", "context"]), "..");
    let dockerfile = text(indextap, &["build", "dockerfile"]);
    assert!(
        super::deploy_dir().join("..").join(dockerfile).is_file(),
        "{dockerfile}"
    );

    let volumes: Vec<&str> = list(indextap, &["volumes"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let config_mount = volumes
        .iter()
        .find(|volume| volume.contains(CONFIG_PATH))
        .unwrap_or_else(|| panic!("no mount on {CONFIG_PATH}: {volumes:?}"));
    let source = config_mount.split(':').next().expect("a source");
    assert_eq!(
        std::fs::read_to_string(super::deploy_dir().join(source)).expect("the mounted file"),
        read("indextap.toml"),
        "compose mounts the image's configuration"
    );
    let state = config.state.dir.as_ref().expect("state.dir");
    assert!(
        volumes
            .iter()
            .any(|volume| volume.split(':').nth(1) == Some(&*state.to_string_lossy())),
        "a volume on state.dir: {volumes:?}"
    );

    // Published on the host's loopback only (no token here), container side = the config's.
    let published: BTreeSet<u16> = list(indextap, &["ports"])
        .iter()
        .map(|port| {
            let port = port.as_str().expect("HOST_IP:HOST:CONTAINER");
            let parts: Vec<&str> = port.split(':').collect();
            assert_eq!(parts.len(), 3, "{port}");
            assert_eq!(parts[0], "127.0.0.1", "{port}");
            parts[2].parse().expect("a port")
        })
        .collect();
    assert_eq!(published, ports.all());
    assert!(
        seconds(text(indextap, &["stop_grace_period"])) > config.shutdown.grace_secs,
        "compose waits longer than the drain"
    );

    // Every upstream is a compose service; MongoDB drivers are sent back to the proxy.
    let services: BTreeSet<&str> = at(&compose, &["services"])
        .as_mapping()
        .expect("services")
        .keys()
        .filter_map(Value::as_str)
        .collect();
    for (_, upstream) in listeners(&config) {
        let (host, _) = host_port(upstream);
        assert!(
            services.contains(host),
            "upstream {upstream}: no service {host}"
        );
    }
    for listener in &config.mongo.listeners {
        let advertise = listener.advertise.as_deref().expect("advertise");
        let (host, port) = host_port(advertise);
        assert_eq!(host, "indextap", "drivers must come back through the proxy");
        assert_eq!(port, addr(&listener.listen).port());
    }

    // The database, its credentials, and the traffic generator going through the proxy.
    let postgres = service(&compose, "postgres");
    let env = |service: &Value, key: &str| text(service, &["environment", key]).to_owned();
    let admin_url = config.postgres.admin_url.as_deref().expect("admin_url");
    let expected = format!(
        "postgres://{}:{}@postgres:5432/{}",
        env(postgres, "POSTGRES_USER"),
        env(postgres, "POSTGRES_PASSWORD"),
        env(postgres, "POSTGRES_DB")
    );
    assert_eq!(admin_url, expected);
    let traffic = service(&compose, "traffic");
    assert_eq!(env(traffic, "PGHOST"), "indextap");
    assert_eq!(
        env(traffic, "PGPORT").parse::<u16>().ok(),
        ports.postgres.first().copied()
    );
    assert_eq!(
        text(traffic, &["depends_on", "indextap", "condition"]),
        "service_healthy",
        "the image's HEALTHCHECK gates the traffic"
    );
    let script = list(traffic, &["command"])
        .iter()
        .filter_map(Value::as_str)
        .collect::<String>();
    assert!(script.contains("pgbench"), "{script}");
}
