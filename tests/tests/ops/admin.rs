//! The admin API's guard: with `admin.token_file`, everything but `/healthz` needs the bearer
//! token, and the CLI passes it; by default the API listens on loopback only.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use indextap_config::{CliOverrides, Config};
use indextap_tests::{assert_absent, IndextapOptions, IndextapProcess};

use super::{loopback, run_cli, run_cli_ok, write_file};

const GUARDED: [&str; 4] = [
    "/metrics",
    "/api/v1/shapes",
    "/api/v1/recommendations",
    "/api/v1/snapshot",
];

/// `GET path` with an optional bearer token: the status.
fn status(admin: SocketAddr, path: &str, token: Option<&str>) -> u16 {
    let mut request = ureq::get(&format!("http://{admin}{path}")).timeout(Duration::from_secs(15));
    if let Some(token) = token {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    match request.call() {
        Ok(response) => response.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(err) => panic!("GET {path}: {err}"),
    }
}

#[test]
fn with_a_token_file_everything_but_healthz_needs_the_bearer_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = format!("tok-{}", indextap_tests::marker_string());
    let token_file = write_file(dir.path(), "admin-token", &format!("  {token}\n"));
    let wrong_file = write_file(dir.path(), "wrong-token", "not-the-token\n");
    let admin = loopback();
    let config = write_file(
        dir.path(),
        "indextap.toml",
        &format!(
            "[admin]\nlisten = \"{admin}\"\ntoken_file = \"{}\"\n\n[[postgres.listeners]]\n\
             listen = \"{}\"\nupstream = \"127.0.0.1:5432\"\n",
            token_file.display(),
            loopback()
        ),
    );
    let proxy = IndextapProcess::start_with(IndextapOptions::config(&config, admin));

    assert_eq!(status(admin, "/healthz", None), 200, "probes need no token");
    for path in GUARDED {
        assert_eq!(status(admin, path, None), 401, "{path} without a token");
        assert_eq!(
            status(admin, path, Some("not-the-token")),
            401,
            "{path} with a wrong token"
        );
        assert_eq!(
            status(admin, path, Some(&format!("{token}x"))),
            401,
            "{path} with a longer token"
        );
        assert_eq!(
            status(admin, path, Some(&token)),
            200,
            "{path} with the token"
        );
    }

    let url = format!("http://{admin}");
    let token_path = token_file.display().to_string();
    let advice = run_cli_ok(&["recommend", "--from", &url, "--token-file", &token_path]);
    let advice: serde_json::Value = serde_json::from_str(&advice).expect("JSON advice");
    assert!(advice["recommendations"].is_array(), "{advice}");
    let shapes = run_cli_ok(&["shapes", "--from", &url, "--token-file", &token_path]);
    assert!(shapes.contains("\"shapes\""), "{shapes}");

    for args in [
        vec!["recommend", "--from", url.as_str()],
        vec![
            "recommend",
            "--from",
            url.as_str(),
            "--token-file",
            wrong_file.to_str().expect("utf-8 path"),
        ],
    ] {
        let refused = run_cli(&args);
        assert!(!refused.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("401"), "{args:?}: {stderr}");
    }

    assert_absent(&proxy.logs(), &[&token], "proxy logs");
}

#[test]
fn the_admin_api_listens_on_loopback_by_default() {
    let loopback_only = |listen: &str| {
        let addr: SocketAddr = listen
            .parse()
            .unwrap_or_else(|err| panic!("{listen:?}: {err}"));
        assert_eq!(addr.ip(), IpAddr::from([127, 0, 0, 1]), "{listen}");
    };
    loopback_only(&Config::default().admin.listen);

    // What the binary gets without a file and without --admin-listen.
    let loaded = indextap_config::load(
        None,
        Vec::<(String, String)>::new(),
        CliOverrides {
            pg_listen: Some("127.0.0.1:6543".into()),
            pg_upstream: Some("127.0.0.1:5432".into()),
            ..CliOverrides::default()
        },
    )
    .expect("a minimal configuration loads");
    loopback_only(&loaded.admin.listen);

    let example = indextap_tests::workspace_root().join("config/indextap.example.toml");
    let example = indextap_config::read_file(&example).expect("the example parses");
    loopback_only(&example.admin.listen);
    assert!(
        example.admin.token_file.is_none() && example.admin.token_env.is_none(),
        "the example leaves the token commented out"
    );
}
