//! The JSON format: round trips, version checks, and version 1 files converted.

use proptest::prelude::*;

use super::generate::snapshot;
use crate::snapshot::*;
use crate::testing::mongo::find_eq;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    #[test]
    fn json_round_trip(original in snapshot()) {
        let text = original.to_json();
        prop_assert_eq!(Snapshot::from_json(&text).unwrap(), original);
    }
}

#[test]
fn another_version_is_rejected_clearly() {
    let mut newer: serde_json::Value = serde_json::from_str(&Snapshot::new().to_json()).unwrap();
    newer["version"] = serde_json::json!(FORMAT_VERSION + 1);
    // A newer format may well have fields this build does not know.
    newer["sketches"] = serde_json::json!({});
    let err = Snapshot::from_json(&newer.to_string()).unwrap_err();
    assert!(
        matches!(err, SnapshotError::Version { found, expected }
            if found == u64::from(FORMAT_VERSION) + 1 && expected == FORMAT_VERSION),
        "{err:?}"
    );
    assert!(err.to_string().contains("version"), "{err}");
    assert_eq!(err.reason(), "wrong_version");

    let err = Snapshot::from_json(r#"{"shapes": {}}"#).unwrap_err();
    assert!(matches!(err, SnapshotError::MissingVersion), "{err:?}");

    let err = Snapshot::from_json("{ not json").unwrap_err();
    assert!(matches!(err, SnapshotError::Json(_)), "{err:?}");

    let err = Snapshot::from_json(&format!(r#"{{"version": {FORMAT_VERSION}, "shapes": 3}}"#))
        .unwrap_err();
    assert!(matches!(err, SnapshotError::Json(_)), "{err:?}");
}

/// A state file as version 1 wrote it: latency as HDR histogram (value µs, count) pairs.
fn version_1_file() -> String {
    let shape = find_eq("orders", "status");
    let id = shape.id();
    serde_json::json!({
        "version": 1,
        "shapes": {
            id.to_string(): {
                "shape": shape,
                "count": 13,
                "errors": 0,
                "error_codes": {},
                "total_micros": 52_000,
                "returned": 13,
                "continuations": 0,
                "first_seen_ms": 1_700_000_000_000u64,
                "last_seen_ms": 1_700_000_100_000u64,
                "constants": [],
                "normalized_sql": null,
                "latency": [[1_000, 10], [9_007, 2], [120_063, 1]]
            }
        },
        "writes": [],
        "other": {"count": 4, "total_micros": 90},
        "rejected": {"sql_parse_error": 1}
    })
    .to_string()
}

#[test]
fn version_1_histograms_are_converted_into_sketches() {
    let snapshot = Snapshot::from_json(&version_1_file()).expect("version 1 loads");
    assert_eq!(snapshot.version, FORMAT_VERSION);
    let record = &snapshot.shapes[&find_eq("orders", "status").id()];
    assert_eq!((record.count, record.total_micros), (13, 52_000));
    assert_eq!(record.latency.count(), 13);
    for (q, exact) in [(0.5, 1_000.0), (0.9, 9_007.0), (1.0, 120_063.0)] {
        let read = record.latency.quantile(q);
        assert!(
            (read - exact).abs() / exact <= sketch::RELATIVE_ACCURACY,
            "q={q}: {read}"
        );
    }
    assert_eq!(snapshot.other.count, 4);
    assert!(snapshot.other_by_namespace.is_empty());
    // Written back, it is a current-format file that reads the same.
    assert_eq!(Snapshot::from_json(&snapshot.to_json()).unwrap(), snapshot);
}

#[test]
fn a_malformed_version_1_file_is_refused_not_panicked_on() {
    for text in [
        r#"{"version": 1, "shapes": {"00000000000000aa": {"latency": "x"}}}"#,
        r#"{"version": 1, "shapes": {"00000000000000aa": {"latency": [[1, 2]]}}}"#,
        r#"[1]"#,
    ] {
        let err = Snapshot::from_json(text).unwrap_err();
        assert!(matches!(err, SnapshotError::Json(_)), "{text}: {err:?}");
    }
}
