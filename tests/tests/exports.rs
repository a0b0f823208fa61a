//! Every export format of `indextap recommend`, through the real binary.
//!
//! A known snapshot (fixed commands, fixed timings: `exports/known.rs`) is rendered in every
//! format and compared with the exact expected text in `tests/tests/expected/`. Set
//! `INDEXTAP_UPDATE_GOLDEN=1` to rewrite those files from the current output, then read the
//! diff before committing it. A second test renders a real workload's snapshot, taken through
//! the proxy in front of PostgreSQL and SecantusDB, and checks that every format names the
//! expected indexes.
//!
//! ## Layout
//! - `known`: the hand-built snapshot and the MongoDB indexes that exist beside it.
//! - `live`: the real workload.
//! - this file: the golden comparison, the exact-output tests and `--fail-on-recommendations`.

#[path = "exports/known.rs"]
mod known;
#[path = "exports/live.rs"]
mod live;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use bson::Document;
use indextap_analyzer::snapshot::Snapshot;
use indextap_tests::tools::assert_success;
use indextap_tests::{workspace_root, IndextapProcess, SecantusDb, SecantusOptions};
use mongodb::options::IndexOptions;
use mongodb::IndexModel;

/// Every format, with the extension of its golden file.
const FORMATS: [(&str, &str); 7] = [
    ("json", "json"),
    ("mongosh", "js"),
    ("pymongo", "py"),
    ("sql", "sql"),
    ("prisma", "prisma"),
    ("django", "django.py"),
    ("markdown", "md"),
];

/// The variable that turns comparisons into rewrites of the expected files.
const UPDATE_GOLDEN: &str = "INDEXTAP_UPDATE_GOLDEN";

/// The exit status `--fail-on-recommendations` uses when there is advice.
const ADVICE_EXIT: i32 = 3;

fn expected_dir() -> PathBuf {
    workspace_root().join("tests/tests/expected")
}

/// `actual` must equal `tests/tests/expected/<name>`; with `INDEXTAP_UPDATE_GOLDEN=1` the
/// file is rewritten instead.
#[track_caller]
fn assert_golden(name: &str, actual: &str) {
    let path = expected_dir().join(name);
    if std::env::var(UPDATE_GOLDEN).is_ok_and(|value| value == "1") {
        std::fs::create_dir_all(expected_dir()).expect("create expected/");
        std::fs::write(&path, actual).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|err| {
        panic!(
            "{}: {err}; run with {UPDATE_GOLDEN}=1 to create it",
            path.display()
        )
    });
    if expected == actual {
        return;
    }
    let (line, want, got) = expected
        .lines()
        .map(Some)
        .chain(std::iter::repeat(None))
        .zip(actual.lines().map(Some).chain(std::iter::repeat(None)))
        .enumerate()
        .find(|(_, (want, got))| want != got)
        .map(|(index, (want, got))| (index + 1, want, got))
        .unwrap_or((0, None, None));
    panic!(
        "{name} differs from {} at line {line}:\n  expected: {want:?}\n  actual:   {got:?}\n\
         (set {UPDATE_GOLDEN}=1 to accept the new output)\n--- actual ---\n{actual}",
        path.display()
    );
}

/// `indextap` without the caller's `INDEXTAP_*` variables (the golden switch among them).
fn indextap(args: &[&str]) -> Output {
    let mut command = Command::new(IndextapProcess::binary());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("INDEXTAP_") {
            command.env_remove(key);
        }
    }
    command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run indextap {args:?}: {err}"))
}

/// `indextap recommend --from <snapshot> --format <format>` plus `more`; it must succeed.
fn recommend(snapshot: &Path, format: &str, more: &[&str]) -> String {
    let from = snapshot.display().to_string();
    let mut args = vec!["recommend", "--from", &from, "--format", format];
    args.extend_from_slice(more);
    assert_success(&indextap(&args), &format!("recommend --format {format}"))
}

fn write_snapshot(dir: &Path, name: &str, snapshot: &Snapshot) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, snapshot.to_json()).expect("write snapshot");
    path
}

/// A SecantusDB holding the indexes that exist beside the known traffic.
async fn server_with_existing_indexes() -> SecantusDb {
    let server = SecantusDb::start(SecantusOptions::standalone());
    let client = server.client().await;
    let db = client.database(known::MONGO_DB);
    for (collection, keys, name) in known::existing_mongo_indexes() {
        let index = IndexModel::builder()
            .keys(keys)
            .options(IndexOptions::builder().name(name.to_owned()).build())
            .build();
        db.collection::<Document>(collection)
            .create_index(index)
            .await
            .unwrap_or_else(|err| panic!("createIndex {name}: {err}"));
    }
    server
}

#[tokio::test]
async fn every_format_of_a_known_snapshot_is_exactly_as_expected() {
    let server = server_with_existing_indexes().await;
    let uri = server.uri();
    let dir = tempfile::tempdir().expect("tempdir");
    let snapshot = write_snapshot(dir.path(), "known.json", &known::known_traffic().snapshot());

    for (format, extension) in FORMATS {
        let output = recommend(&snapshot, format, &["--mongo-admin-uri", &uri]);
        assert!(
            !output.contains(&server.port().to_string()),
            "{format}: the admin URI's address leaked into the output"
        );
        assert_golden(&format!("known.{extension}"), &output);
    }

    // The markdown report carries, for each index, the evidence an operator needs.
    let markdown = std::fs::read_to_string(expected_dir().join("known.md")).expect("known.md");
    let advice: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(expected_dir().join("known.json")).expect("known.json"),
    )
    .expect("known.json is JSON");
    let recommendations = advice["recommendations"].as_array().expect("a list");
    assert!(recommendations.len() >= 5, "{advice}");
    for recommendation in recommendations {
        let name = recommendation["name"].as_str().expect("a name");
        let heading = markdown
            .lines()
            .find(|line| line.starts_with("## ") && line.contains(&format!("`{name}`")))
            .unwrap_or_else(|| panic!("no section for {name}"));
        let section: String = markdown
            .split(heading)
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("section text")
            .to_owned();
        assert!(
            section.contains("| Shape | Count | p95 | Total |"),
            "{name}"
        );
        for served in recommendation["serves"].as_array().expect("serves") {
            let row = format!(
                "| {} | {} |",
                served["shape"].as_str().expect("shape").replace('|', "\\|"),
                served["count"]
            );
            assert!(
                section.contains(&row),
                "{name}: no row {row:?} in\n{section}"
            );
        }
        let statement = recommendation["statement"].as_str().expect("statement");
        assert!(section.contains(statement), "{name}: statement");
        assert!(section.contains("- Improvement: "), "{name}: improvement");
        assert!(section.contains("- Write load on "), "{name}: write load");
    }
    let drops = markdown
        .split("\n## Drop candidates\n")
        .nth(1)
        .expect("a drop candidates section");
    assert!(
        drops.contains("`tenant_id_1`") && drops.contains("tenant_id_1_created_at_-1"),
        "{drops}"
    );
    let rollback = markdown
        .split("\n## Rollback\n")
        .nth(1)
        .expect("a rollback section");
    for recommendation in recommendations {
        let name = recommendation["name"].as_str().expect("a name");
        assert!(rollback.contains(name), "no rollback for {name}");
    }
    assert!(
        !advice.to_string().contains("\"email_1\""),
        "an existing index is never recommended"
    );
}

#[tokio::test]
async fn fail_on_recommendations_exits_3_with_advice_and_0_without() {
    let server = server_with_existing_indexes().await;
    let uri = server.uri();
    let dir = tempfile::tempdir().expect("tempdir");
    let gate = |snapshot: &Path| {
        let from = snapshot.display().to_string();
        indextap(&[
            "recommend",
            "--from",
            &from,
            "--mongo-admin-uri",
            &uri,
            "--fail-on-recommendations",
        ])
    };

    let with_advice = write_snapshot(dir.path(), "known.json", &known::known_traffic().snapshot());
    let output = gate(&with_advice);
    assert_eq!(output.status.code(), Some(ADVICE_EXIT), "{output:?}");
    let advice: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the advice is still printed");
    assert!(!advice["recommendations"]
        .as_array()
        .expect("list")
        .is_empty());

    // Lookups that an existing index serves already: nothing to advise.
    let mut served = known::Traffic::new();
    served.mongo(
        bson::doc! { "find": "users", "filter": { "email": "someone@example.com" } },
        25,
        300,
    );
    for (name, snapshot) in [
        ("served.json", served.snapshot()),
        ("empty.json", Snapshot::new()),
    ] {
        let output = gate(&write_snapshot(dir.path(), name, &snapshot));
        assert_eq!(output.status.code(), Some(0), "{name}: {output:?}");
        let advice: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
        assert_eq!(advice["recommendations"], serde_json::json!([]), "{name}");
    }
}
