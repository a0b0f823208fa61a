//! The sketch's laws: merging is commutative and associative, quantiles hold their error
//! bound on skewed inputs, the serialised form round-trips, and the size follows the data.

use proptest::prelude::*;

use super::*;

/// Latencies as real ones come: mostly fast, a long slow tail, over six orders of magnitude.
fn latencies() -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(
        prop_oneof![
            8 => 50u64..2_000,
            3 => 2_000u64..200_000,
            1 => 200_000u64..MAX_MICROS,
            1 => 0u64..50,
        ],
        0..400,
    )
}

fn sketch_of(values: &[u64]) -> LatencySketch {
    let mut sketch = LatencySketch::new();
    for &value in values {
        sketch.record(value);
    }
    sketch
}

/// The exact value at `q` by the sketch's rank rule: the `ceil(q × n)`-th smallest.
fn exact_quantile(values: &[u64], q: f64) -> f64 {
    let mut sorted: Vec<u64> = values
        .iter()
        .map(|v| (*v).clamp(MIN_MICROS, MAX_MICROS))
        .collect();
    sorted.sort_unstable();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64
}

fn assert_within_accuracy(sketch: &LatencySketch, values: &[u64]) {
    for q in [0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
        let exact = exact_quantile(values, q);
        let estimate = sketch.quantile(q);
        let error = (estimate - exact).abs() / exact;
        // α, with room for floating-point rounding only.
        assert!(
            error <= RELATIVE_ACCURACY * 1.000_001,
            "q={q}: estimate {estimate} vs exact {exact} ({:.4} %)",
            error * 100.0
        );
    }
}

proptest! {
    #[test]
    fn merge_is_commutative(a in latencies(), b in latencies()) {
        let (a, b) = (sketch_of(&a), sketch_of(&b));
        prop_assert_eq!(LatencySketch::merged(&a, &b), LatencySketch::merged(&b, &a));
    }

    #[test]
    fn merge_is_associative(a in latencies(), b in latencies(), c in latencies()) {
        let (a, b, c) = (sketch_of(&a), sketch_of(&b), sketch_of(&c));
        let left = LatencySketch::merged(&LatencySketch::merged(&a, &b), &c);
        let right = LatencySketch::merged(&a, &LatencySketch::merged(&b, &c));
        prop_assert_eq!(left, right);
    }

    #[test]
    fn merging_equals_recording_everything_in_one(a in latencies(), b in latencies()) {
        let both: Vec<u64> = a.iter().chain(&b).copied().collect();
        prop_assert_eq!(
            LatencySketch::merged(&sketch_of(&a), &sketch_of(&b)),
            sketch_of(&both)
        );
    }

    #[test]
    fn quantiles_stay_within_the_relative_accuracy(values in latencies()) {
        prop_assume!(!values.is_empty());
        let sketch = sketch_of(&values);
        prop_assert_eq!(sketch.count(), values.len() as u64);
        assert_within_accuracy(&sketch, &values);
    }

    #[test]
    fn serialisation_round_trips(values in latencies()) {
        let sketch = sketch_of(&values);
        let text = serde_json::to_string(&sketch).unwrap();
        let back: LatencySketch = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&back, &sketch);
        prop_assert_eq!(back.quantile(0.95), sketch.quantile(0.95));
    }
}

#[test]
fn quantiles_hold_on_heavily_skewed_inputs() {
    // Pareto-like: 99 % of executions near 100 µs, a tail up to 40 s; then the reverse.
    let mut fast_with_tail: Vec<u64> = (0..9_900).map(|i| 90 + i % 21).collect();
    fast_with_tail.extend((1..=100).map(|i| i * i * 4_000));
    assert_within_accuracy(&sketch_of(&fast_with_tail), &fast_with_tail);

    let mut slow_with_fast_head: Vec<u64> = (0..9_000).map(|i| 2_000_000 + i * 37).collect();
    slow_with_fast_head.extend((0..1_000).map(|i| 1 + i % 7));
    assert_within_accuracy(&sketch_of(&slow_with_fast_head), &slow_with_fast_head);

    // Log-uniform over the whole range: every bucket matters.
    let spread: Vec<u64> = (0..20_000)
        .map(|i| (f64::from(i) / 20_000.0 * (MAX_MICROS as f64).ln()).exp() as u64)
        .collect();
    assert_within_accuracy(&sketch_of(&spread), &spread);
}

#[test]
fn whole_microseconds_stay_within_two_percent() {
    // The bucket's value is within 1 %; rounding it to whole µs adds at most 0.5 µs, which
    // is exact below 50 µs (a bucket there holds one integer) and under 1 % above.
    for micros in 1..=200_000u64 {
        let read = LatencySketch::with_value(micros, 1).quantile_micros(0.5) as f64;
        let error = (read - micros as f64).abs() / micros as f64;
        assert!(error <= 0.02, "{micros} µs read as {read}");
        if micros < 50 {
            assert_eq!(read, micros as f64);
        }
    }
}

#[test]
fn the_mapping_constants_match_the_accuracy() {
    let gamma = (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY);
    assert!((GAMMA - gamma).abs() < 1e-12);
    assert!((LN_GAMMA - gamma.ln()).abs() < 1e-15);
    assert_eq!(max_key(), 1_101, "one hour at 1 % takes 1,101 buckets");
}

#[test]
fn the_small_keys_table_answers_as_the_logarithm() {
    let mut last = 0;
    for micros in 0..SMALL_MICROS * 2 {
        let key = key_of(micros);
        assert_eq!(key, computed_key(micros), "{micros} µs");
        assert!(key >= last, "keys never go down ({micros} µs)");
        last = key;
    }
    assert_eq!(key_of(u64::MAX), max_key());
}

#[test]
fn size_follows_what_was_recorded() {
    let mut steady = LatencySketch::new();
    assert_eq!(steady.heap_bytes(), 0, "an empty sketch allocates nothing");
    for _ in 0..100_000 {
        steady.record(1_234);
    }
    assert_eq!(steady.buckets().count(), 1);
    assert_eq!(steady.heap_bytes(), 8);

    // Every bucket of the range: still under 9 KiB plus the growth slack.
    let mut everything = LatencySketch::new();
    let mut micros = 1u64;
    while micros < MAX_MICROS {
        everything.record(micros);
        micros = micros + micros / 100 + 1;
    }
    everything.record(MAX_MICROS);
    assert!(everything.buckets().count() <= 1_102);
    assert!(
        everything.heap_bytes() <= 1_102 * 8 * 5 / 4,
        "{}",
        everything.heap_bytes()
    );
}

#[test]
fn edges_clamp_rather_than_fail() {
    let mut sketch = LatencySketch::new();
    assert_eq!(sketch.quantile(0.5), 0.0, "empty");
    sketch.record(0);
    sketch.record(u64::MAX);
    assert_eq!(sketch.count(), 2);
    assert!((sketch.quantile(0.0) - 1.0).abs() <= 0.01);
    assert!((sketch.quantile(7.0) - MAX_MICROS as f64).abs() <= MAX_MICROS as f64 * 0.01);
    assert_eq!(sketch.quantile(f64::NAN), sketch.quantile(0.0));
    assert_eq!(sketch.quantile_micros(0.0), 1);

    // Counts saturate instead of wrapping.
    let mut full = LatencySketch::with_value(100, u64::MAX);
    full.record(100);
    assert_eq!(full.count(), COUNT_MASK);
}

#[test]
fn hand_edited_pairs_are_folded_and_clamped() {
    let read: LatencySketch =
        serde_json::from_str("[[500, 2], [3, 1], [500, 3], [9999999, 1], [7, 0]]").unwrap();
    assert_eq!(
        read.buckets().collect::<Vec<_>>(),
        vec![(3, 1), (500, 5), (max_key(), 1)]
    );
    assert!(serde_json::from_str::<LatencySketch>("[[1, -1]]").is_err());
    assert!(serde_json::from_str::<LatencySketch>("{}").is_err());
}
