//! `deploy/k8s/`: the sidecar's ConfigMap is a valid configuration, and the Deployment's
//! ports, probes, mounts and grace period, and the Service, agree with it.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

use indextap_config::Config;
use serde_yaml::Value;

use super::{
    addr, at, list, number, parse_and_validate, text, yaml, yaml_documents, Ports, CONFIG_PATH,
};

const SIDECAR: &str = "indextap";

/// The ConfigMap's TOML, parsed and validated against the sidecar's mounts.
fn configmap_config(deployment: &Value) -> Config {
    let configmap = yaml("k8s/configmap.yaml");
    assert_eq!(text(&configmap, &["kind"]), "ConfigMap");
    let file_name = Path::new(CONFIG_PATH)
        .file_name()
        .and_then(|name| name.to_str())
        .expect("a file name");
    let toml = text(&configmap, &["data", file_name]);
    let mounts: Vec<&str> = mounts(sidecar(deployment))
        .into_iter()
        .map(|(_, path, _)| path)
        .collect();
    parse_and_validate("the ConfigMap", toml, &mounts)
}

fn deployment() -> Value {
    let deployment = yaml("k8s/deployment.yaml");
    assert_eq!(text(&deployment, &["kind"]), "Deployment");
    deployment
}

fn pod(deployment: &Value) -> &Value {
    at(deployment, &["spec", "template", "spec"])
}

fn container<'a>(deployment: &'a Value, name: &str) -> &'a Value {
    list(pod(deployment), &["containers"])
        .iter()
        .find(|container| container.get("name").and_then(Value::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn sidecar(deployment: &Value) -> &Value {
    container(deployment, SIDECAR)
}

/// `(volume name, mount path, read only)` of a container.
fn mounts(container: &Value) -> Vec<(&str, &str, bool)> {
    list(container, &["volumeMounts"])
        .iter()
        .map(|mount| {
            (
                text(mount, &["name"]),
                text(mount, &["mountPath"]),
                mount
                    .get("readOnly")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            )
        })
        .collect()
}

/// A container port, by number or by name.
fn resolve_port(container: &Value, port: &Value) -> u64 {
    if let Some(number) = number(port) {
        return number;
    }
    let name = port.as_str().expect("a port name or number");
    list(container, &["ports"])
        .iter()
        .find(|declared| declared.get("name").and_then(Value::as_str) == Some(name))
        .and_then(|declared| number(at(declared, &["containerPort"])))
        .unwrap_or_else(|| panic!("no container port named {name}"))
}

#[test]
fn the_configmap_holds_a_valid_configuration_mounted_where_the_image_reads_it() {
    let deployment = deployment();
    let config = configmap_config(&deployment);
    let sidecar = sidecar(&deployment);
    let mounts = mounts(sidecar);

    // The ConfigMap volume is mounted on the directory of the image's configuration path.
    let config_dir = Path::new(CONFIG_PATH)
        .parent()
        .and_then(Path::to_str)
        .expect("a directory");
    let (volume, _, read_only) = mounts
        .iter()
        .find(|(_, path, _)| *path == config_dir)
        .unwrap_or_else(|| panic!("nothing mounted on {config_dir}"));
    assert!(read_only, "the configuration is mounted read-only");
    let volumes = list(pod(&deployment), &["volumes"]);
    let source = volumes
        .iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(volume))
        .expect("the config volume");
    let configmap = yaml("k8s/configmap.yaml");
    assert_eq!(
        text(source, &["configMap", "name"]),
        text(&configmap, &["metadata", "name"])
    );

    // The state directory is a writable volume: the root file system is read-only.
    let state = config.state.dir.as_ref().expect("state.dir is set");
    assert!(
        mounts
            .iter()
            .any(|(_, path, read_only)| Path::new(path) == state && !read_only),
        "state.dir {} is not a writable mount",
        state.display()
    );
    assert_eq!(
        at(sidecar, &["securityContext", "readOnlyRootFilesystem"]).as_bool(),
        Some(true)
    );
    assert_eq!(
        at(sidecar, &["securityContext", "allowPrivilegeEscalation"]).as_bool(),
        Some(false)
    );
    assert_eq!(
        number(at(sidecar, &["securityContext", "runAsUser"])),
        Some(10001),
        "the image's user (Dockerfile USER)"
    );

    // The token the admin API requires comes from a Secret.
    let token = config.admin.token_file.as_ref().expect("a token file");
    let (token_volume, _, _) = mounts
        .iter()
        .find(|(_, path, _)| token.starts_with(path))
        .expect("the token's mount");
    let token_source = volumes
        .iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(token_volume))
        .expect("the token volume");
    assert!(
        token_source.get("secret").is_some(),
        "the token is a Secret"
    );

    // SIGTERM drains for grace_secs, then flushes: the pod must allow more than that.
    let termination = number(at(pod(&deployment), &["terminationGracePeriodSeconds"]))
        .expect("terminationGracePeriodSeconds");
    assert!(termination > config.shutdown.grace_secs);
}

#[test]
fn probes_ports_and_the_service_match_the_configmap() {
    let deployment = deployment();
    let config = configmap_config(&deployment);
    let ports = Ports::of(&config);
    let sidecar = sidecar(&deployment);

    // The kubelet probes the pod's IP: the admin API must listen beyond loopback, and then
    // only /healthz may answer without a token.
    let admin = addr(&config.admin.listen);
    assert!(
        admin.ip().is_unspecified(),
        "{admin}: probes cannot reach it"
    );
    assert!(config.admin.token_file.is_some() || config.admin.token_env.is_some());

    for probe in ["livenessProbe", "readinessProbe"] {
        let get = at(sidecar, &[probe, "httpGet"]);
        assert_eq!(text(get, &["path"]), "/healthz", "{probe}");
        assert_eq!(
            resolve_port(sidecar, at(get, &["port"])),
            u64::from(ports.admin),
            "{probe} port"
        );
    }
    let declared: BTreeSet<u16> = list(sidecar, &["ports"])
        .iter()
        .filter_map(|port| number(at(port, &["containerPort"])))
        .map(|port| u16::try_from(port).expect("a port"))
        .collect();
    assert_eq!(declared, ports.all(), "the sidecar declares what it binds");

    // The app reaches PostgreSQL through the sidecar, in its own network namespace.
    let pg = config
        .postgres
        .listeners
        .first()
        .expect("a PostgreSQL listener");
    let pg_listen = addr(&pg.listen);
    assert_eq!(
        pg_listen.ip(),
        IpAddr::from([127, 0, 0, 1]),
        "only the pod's app"
    );
    let app = container(&deployment, "app");
    let database_url = list(app, &["env"])
        .iter()
        .find(|var| var.get("name").and_then(Value::as_str) == Some("DATABASE_URL"))
        .map(|var| text(var, &["value"]))
        .expect("the app's DATABASE_URL");
    assert!(
        database_url.contains(&format!("@{pg_listen}/")),
        "{database_url} does not go through {pg_listen}"
    );

    // The Service selects this pod and forwards the admin port.
    let service = yaml("k8s/service.yaml");
    assert_eq!(text(&service, &["kind"]), "Service");
    let labels = at(&deployment, &["spec", "template", "metadata", "labels"]);
    let selector = at(&service, &["spec", "selector"])
        .as_mapping()
        .expect("a selector");
    for (key, value) in selector {
        assert_eq!(labels.get(key), Some(value), "selector {key:?}");
    }
    // A named target port is looked up in every container of the pod.
    let containers = list(pod(&deployment), &["containers"]);
    let targets: Vec<(&str, u64)> = list(&service, &["spec", "ports"])
        .iter()
        .map(|port| {
            let target = at(port, &["targetPort"]);
            let owner = containers
                .iter()
                .find(|container| {
                    list(container, &["ports"]).iter().any(|declared| {
                        declared.get("name") == Some(target)
                            || number(at(declared, &["containerPort"])) == number(target)
                    })
                })
                .unwrap_or_else(|| panic!("no container has port {target:?}"));
            (text(owner, &["name"]), resolve_port(owner, target))
        })
        .collect();
    assert!(
        targets.contains(&(SIDECAR, u64::from(ports.admin))),
        "the Service forwards the admin port: {targets:?}"
    );
    assert!(
        targets.contains(&("app", 8080)),
        "and the app's: {targets:?}"
    );
}

#[test]
fn the_kustomization_lists_every_manifest() {
    let kustomization = yaml("k8s/kustomization.yaml");
    let listed: BTreeSet<&str> = list(&kustomization, &["resources"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let present: BTreeSet<String> = std::fs::read_dir(super::deploy_dir().join("k8s"))
        .expect("read k8s/")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml") && name != "kustomization.yaml")
        .collect();
    assert_eq!(
        listed,
        present.iter().map(String::as_str).collect::<BTreeSet<_>>()
    );
    for name in &present {
        for document in yaml_documents(&format!("k8s/{name}")) {
            text(&document, &["apiVersion"]);
            text(&document, &["kind"]);
            text(&document, &["metadata", "name"]);
        }
    }
}

#[test]
fn the_snapshot_sink_comes_from_a_secret_and_each_pod_pushes_under_its_name() {
    let deployment = deployment();
    let env = list(sidecar(&deployment), &["env"]);
    let var = |name: &str| {
        env.iter()
            .find(|var| var.get("name").and_then(Value::as_str) == Some(name))
            .unwrap_or_else(|| panic!("the sidecar has no {name}"))
    };
    // The URL may hold a password: never in the manifest, and optional, so the pod starts
    // without a sink until the Secret exists.
    let sink = at(
        var("INDEXTAP_SNAPSHOT_SINK"),
        &["valueFrom", "secretKeyRef"],
    );
    assert!(!text(sink, &["name"]).is_empty());
    assert_eq!(at(sink, &["optional"]).as_bool(), Some(true));
    assert_eq!(
        text(var("POD_NAME"), &["valueFrom", "fieldRef", "fieldPath"]),
        "metadata.name"
    );
    // The variable is one indextap knows: with a sink URL it loads, with a bad one it names
    // the variable's setting.
    let configmap = yaml("k8s/configmap.yaml");
    let toml = text(&configmap, &["data", "indextap.toml"]);
    let mut config = indextap_config::parse_toml(toml).expect("the ConfigMap parses");
    config.snapshot_sink.url = Some(indextap_config::Secret::new(
        "postgres://indextap:pw@postgres.staging.svc:5432/indextap",
    ));
    config.admin.token_file = None;
    config
        .validate()
        .expect("the ConfigMap with a sink is valid");
    let loaded = indextap_config::load(
        None,
        [
            ("INDEXTAP_SNAPSHOT_SINK", "s3://fleet/indextap"),
            ("INDEXTAP_PG_LISTEN", "127.0.0.1:6432"),
            ("INDEXTAP_PG_UPSTREAM", "postgres.staging.svc:5432"),
        ],
        indextap_config::CliOverrides::default(),
    )
    .expect("INDEXTAP_SNAPSHOT_SINK is a known variable");
    assert_eq!(
        loaded.snapshot_sink.url.as_deref(),
        Some("s3://fleet/indextap")
    );
}
