//! Histogram round trips and percentiles, and the JSON format.

use super::generate::{snapshot, Rng};
use crate::snapshot::*;

fn recorded_histogram(rng: &mut Rng) -> hdrhistogram::Histogram<u64> {
    let mut histogram = crate::aggregate::new_histogram();
    for _ in 0..2_000 {
        // Latencies spread over six orders of magnitude, as real ones are.
        let magnitude = 10u64.pow(rng.below(7) as u32);
        let value = (1 + rng.below(magnitude * 10)).min(HISTOGRAM_MAX_MICROS);
        histogram.record(value).unwrap();
    }
    histogram
}

#[test]
fn histogram_round_trip_is_exact() {
    let mut rng = Rng(21);
    for _ in 0..10 {
        let histogram = recorded_histogram(&mut rng);
        let record = HistogramRecord::from_histogram(&histogram);
        assert!(
            record.0.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted, one pair per value"
        );
        assert_eq!(record.total_count(), histogram.len());

        let back = record.to_histogram();
        assert_eq!(back.len(), histogram.len());
        assert_eq!(HistogramRecord::from_histogram(&back), record);
        for q in [0.0, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            assert_eq!(
                back.value_at_quantile(q),
                histogram.value_at_quantile(q),
                "q={q}"
            );
        }
    }
}

#[test]
fn percentile_matches_hdrhistogram() {
    let mut rng = Rng(33);
    for _ in 0..10 {
        let histogram = recorded_histogram(&mut rng);
        let record = HistogramRecord::from_histogram(&histogram);
        for q in [0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            assert_eq!(
                record.percentile(q),
                histogram.value_at_quantile(q),
                "q={q}"
            );
        }
        // Out-of-range quantiles clamp rather than panic.
        assert_eq!(record.percentile(7.0), histogram.value_at_quantile(1.0));
        assert_eq!(record.percentile(f64::NAN), record.percentile(0.0));
    }
    assert_eq!(HistogramRecord::default().percentile(0.5), 0);
    // Unsorted pairs (a hand-edited file) give the same answer as sorted ones.
    let unsorted = HistogramRecord(vec![(100, 1), (1, 1), (10, 1)]);
    assert_eq!(unsorted.percentile(0.5), 10);
}

#[test]
fn merged_histograms_equal_hdrhistogram_addition() {
    let mut rng = Rng(44);
    let a = recorded_histogram(&mut rng);
    let b = recorded_histogram(&mut rng);
    let mut sum = a.clone();
    sum.add(&b).unwrap();
    assert_eq!(
        HistogramRecord::merged(
            &HistogramRecord::from_histogram(&a),
            &HistogramRecord::from_histogram(&b)
        ),
        HistogramRecord::from_histogram(&sum)
    );
}

#[test]
fn json_round_trip() {
    let mut rng = Rng(55);
    for _ in 0..50 {
        let original = snapshot(&mut rng);
        let text = original.to_json();
        assert_eq!(Snapshot::from_json(&text).unwrap(), original);
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
