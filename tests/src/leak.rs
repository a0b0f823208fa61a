//! Everything indextap lets out, gathered so a leak test can search it for planted markers.
//!
//! A leak test plants [`Markers`] in the traffic of one engine, then reads back every place a
//! user, an operator or a scraper can see: the admin API (every route, every advice format),
//! what the CLI prints against the running proxy, the proxy's own logs, and the state file it
//! saves on SIGTERM. [`assert_no_marker`] then searches all of them at once and names every
//! marker found and where. The places are engine-neutral; each engine's test only differs in
//! the traffic it sends.
//!
//! An empty answer would pass any leak check, so [`Exposure::non_empty`] lets a test insist
//! that a place really said something (the shapes it captured, say) before trusting it.
//!
//! ## Layout
//! - [`Exposure`]: one place and what it held.
//! - [`admin_answers`], [`cli_outputs`], [`logs`], [`stop_and_read_state`]: the places.
//! - [`assert_no_marker`]: the search.
//! - [`json_log_levels`]: checks that JSON logs are JSON, and which levels they hold.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};

use crate::markers::Markers;
use crate::proxy::IndextapProcess;

/// Every format `/api/v1/recommendations` and `indextap recommend` render.
pub const ADVICE_FORMATS: [&str; 7] = [
    "json", "mongosh", "pymongo", "sql", "prisma", "django", "markdown",
];

/// The state file's name in the state directory (`proxy/src/state.rs`).
pub const STATE_FILE_NAME: &str = "indextap-state.json";

/// One place indextap's output can be read, and what it held.
#[derive(Debug, Clone)]
pub struct Exposure {
    /// Where: `GET /metrics`, `indextap recommend --format sql`, `proxy logs`, ...
    pub place: String,
    pub text: String,
}

impl Exposure {
    pub fn new(place: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            place: place.into(),
            text: text.into(),
        }
    }

    /// Panics unless the text contains `expected`: proof the place was not empty or broken.
    #[track_caller]
    pub fn non_empty(&self, expected: &str) -> &Self {
        assert!(
            self.text.contains(expected),
            "{} does not mention {expected:?}, so a leak check on it proves nothing:\n{}",
            self.place,
            self.text
        );
        self
    }
}

/// Finds the exposure for `place` (exact name), panicking when there is none.
#[track_caller]
pub fn exposure<'a>(exposures: &'a [Exposure], place: &str) -> &'a Exposure {
    exposures
        .iter()
        .find(|exposure| exposure.place == place)
        .unwrap_or_else(|| panic!("no exposure named {place:?}"))
}

/// Every admin API answer, each required to be a 2xx: `/api/v1/shapes`, `/api/v1/snapshot`,
/// `/metrics`, and `/api/v1/recommendations` plain and in every [`ADVICE_FORMATS`].
pub fn admin_answers(proxy: &IndextapProcess) -> anyhow::Result<Vec<Exposure>> {
    let mut paths = vec![
        "/api/v1/shapes".to_string(),
        "/api/v1/snapshot".to_string(),
        "/metrics".to_string(),
        "/api/v1/recommendations".to_string(),
    ];
    paths.extend(
        ADVICE_FORMATS
            .iter()
            .map(|format| format!("/api/v1/recommendations?format={format}")),
    );
    paths
        .into_iter()
        .map(|path| {
            let text = proxy.get_text(&path)?;
            Ok(Exposure::new(format!("GET {path}"), text))
        })
        .collect()
}

/// What the CLI prints against a running proxy's admin API (`http://HOST:PORT`):
/// `indextap recommend --format F` for every [`ADVICE_FORMATS`], `indextap shapes` and
/// `indextap merge`. Each must exit 0; stdout and stderr are both kept.
pub fn cli_outputs(admin_url: &str) -> anyhow::Result<Vec<Exposure>> {
    let mut runs: Vec<Vec<String>> = ADVICE_FORMATS
        .iter()
        .map(|format| {
            ["recommend", "--from", admin_url, "--format", format]
                .map(str::to_string)
                .to_vec()
        })
        .collect();
    runs.push(["shapes", "--from", admin_url].map(str::to_string).to_vec());
    runs.push(["merge", admin_url].map(str::to_string).to_vec());
    runs.into_iter()
        .map(|args| {
            let place = format!("indextap {}", args.join(" "));
            let output = Command::new(IndextapProcess::binary())
                .args(&args)
                .output()
                .with_context(|| format!("running {place}"))?;
            let stdout = String::from_utf8_lossy(&output.stdout);
            let stderr = String::from_utf8_lossy(&output.stderr);
            if !output.status.success() {
                bail!("{place} failed ({}): {stderr}", output.status);
            }
            Ok(Exposure::new(place, format!("{stdout}\n{stderr}")))
        })
        .collect()
}

/// The proxy's stdout and stderr so far.
pub fn logs(proxy: &IndextapProcess) -> Exposure {
    Exposure::new("proxy logs", proxy.logs())
}

/// Stops the proxy with SIGTERM, requires a clean exit (status 0), and reads the state file it
/// saved in `state_dir`.
pub fn stop_and_read_state(
    proxy: &mut IndextapProcess,
    state_dir: &Path,
) -> anyhow::Result<Exposure> {
    let status = proxy
        .stop()
        .context("the proxy did not exit after SIGTERM")?;
    if !status.success() {
        bail!("the proxy exited with {status} after SIGTERM");
    }
    let path = state_dir.join(STATE_FILE_NAME);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the state file {}", path.display()))?;
    Ok(Exposure::new(
        format!("state file {}", path.display()),
        text,
    ))
}

/// Panics if any marker occurs in any exposure, listing every (marker, place) found.
#[track_caller]
pub fn assert_no_marker(markers: &Markers, exposures: &[Exposure]) {
    let texts = markers.texts();
    assert!(!texts.is_empty(), "no markers were planted");
    let leaks: Vec<(String, String)> = exposures
        .iter()
        .flat_map(|exposure| {
            texts
                .iter()
                .filter(|marker| exposure.text.contains(marker.as_str()))
                .map(|marker| (marker.clone(), exposure.place.clone()))
        })
        .collect();
    assert!(
        leaks.is_empty(),
        "{} leak(s) (marker, place): {leaks:#?}",
        leaks.len()
    );
}

/// The levels (`INFO`, `DEBUG`, ...) of JSON log lines, failing on any non-empty line that is
/// not a JSON object with a `level`.
pub fn json_log_levels(logs: &str) -> anyhow::Result<BTreeSet<String>> {
    let mut levels = BTreeSet::new();
    for line in logs.lines().filter(|line| !line.trim().is_empty()) {
        let value: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("not a JSON log line: {line}"))?;
        let Some(level) = value.get("level").and_then(|level| level.as_str()) else {
            bail!("a JSON log line without a level: {line}");
        };
        levels.insert(level.to_string());
    }
    Ok(levels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_anywhere_is_found_and_named() {
        let mut markers = Markers::new();
        let planted = markers.string();
        let number = markers.number();
        let clean = [
            Exposure::new("a", "nothing here"),
            Exposure::new("b", "nor here"),
        ];
        assert_no_marker(&markers, &clean);

        let leaky = [
            Exposure::new("a", "nothing here"),
            Exposure::new("logs", format!("value={number}")),
            Exposure::new("state", format!("{{\"v\":\"{planted}\"}}")),
        ];
        let caught = std::panic::catch_unwind(|| assert_no_marker(&markers, &leaky));
        let message = caught
            .err()
            .and_then(|panic| panic.downcast_ref::<String>().cloned())
            .expect("a leak panics with a message");
        assert!(message.starts_with("2 leak(s)"), "{message}");
        assert!(
            message.contains("logs") && message.contains("state"),
            "{message}"
        );
    }

    #[test]
    fn json_logs_are_checked_line_by_line() {
        let logs = "{\"level\":\"INFO\",\"msg\":\"a\"}\n\n{\"level\":\"DEBUG\"}\n";
        let levels = json_log_levels(logs).expect("valid");
        assert_eq!(
            levels.into_iter().collect::<Vec<_>>(),
            ["DEBUG".to_string(), "INFO".to_string()]
        );
        assert!(json_log_levels("plain text line").is_err());
        assert!(json_log_levels("{\"msg\":\"no level\"}").is_err());
    }
}
