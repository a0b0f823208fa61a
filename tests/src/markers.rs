//! Marker values: planted in traffic, they must never come out of indextap.
//!
//! A marker is a value no real system would produce by chance: strings look like
//! `indextap-leak-<16 hex digits>`, numbers are large odd integers below 2^53 (so they survive
//! a trip through JSON and JavaScript unchanged). The leak test puts them in filters, inserts,
//! SQL literals and bind parameters, then searches logs, metrics, API answers and state files
//! for them with [`assert_absent`].
//!
//! Randomness comes from std's randomly keyed `RandomState` hasher mixed with a counter and
//! the clock: unique enough for tests, no extra dependency.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Every marker string starts with this.
pub const MARKER_PREFIX: &str = "indextap-leak-";
/// Marker numbers are at least this large (15 digits).
const NUMBER_FLOOR: u64 = 100_000_000_000_000;
/// And below 2^53, the largest range a JSON double holds exactly.
const NUMBER_CEILING: u64 = 1 << 53;

fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    hasher.write_u128(nanos);
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// A fresh marker string: `indextap-leak-` and 16 random hex digits.
pub fn marker_string() -> String {
    format!("{MARKER_PREFIX}{:016x}", random_u64())
}

/// A fresh marker number: odd, at least 15 digits, below 2^53.
pub fn marker_number() -> i64 {
    let span = NUMBER_CEILING - NUMBER_FLOOR;
    let value = (NUMBER_FLOOR + random_u64() % span) | 1;
    // Below 2^53, so the conversion cannot fail.
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Panics if any marker occurs in `haystack`, naming the markers found and where (`context`
/// says what the haystack is: "proxy logs", "/metrics", ...).
#[track_caller]
pub fn assert_absent<S: AsRef<str>>(haystack: &str, markers: &[S], context: &str) {
    let found: Vec<&str> = markers
        .iter()
        .map(AsRef::as_ref)
        .filter(|marker| haystack.contains(marker))
        .collect();
    assert!(
        found.is_empty(),
        "{} marker(s) leaked into {context}: {found:?}",
        found.len()
    );
}

/// The markers one test planted, so it can check them all at once.
#[derive(Debug, Default, Clone)]
pub struct Markers {
    strings: Vec<String>,
    numbers: Vec<i64>,
}

impl Markers {
    pub fn new() -> Self {
        Self::default()
    }

    /// A fresh marker string, remembered.
    pub fn string(&mut self) -> String {
        let marker = marker_string();
        self.strings.push(marker.clone());
        marker
    }

    /// A fresh marker number, remembered.
    pub fn number(&mut self) -> i64 {
        let marker = marker_number();
        self.numbers.push(marker);
        marker
    }

    /// Every marker as the text to search for.
    pub fn texts(&self) -> Vec<String> {
        self.strings
            .iter()
            .cloned()
            .chain(self.numbers.iter().map(i64::to_string))
            .collect()
    }

    /// [`assert_absent`] for every marker remembered so far.
    #[track_caller]
    pub fn assert_absent_from(&self, haystack: &str, context: &str) {
        assert_absent(haystack, &self.texts(), context);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_unique_and_well_formed() {
        let first = marker_string();
        let second = marker_string();
        assert_ne!(first, second);
        let hex = first.strip_prefix(MARKER_PREFIX).expect("prefix");
        assert_eq!(hex.len(), 16);
        assert!(hex.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn numbers_are_large_odd_and_exact_in_json() {
        for _ in 0..1000 {
            let number = marker_number();
            assert_eq!(number % 2, 1);
            assert!(number >= 100_000_000_000_000);
            assert!(number < 1 << 53);
            assert_eq!(number as f64 as i64, number);
        }
        assert_ne!(marker_number(), marker_number());
    }

    #[test]
    fn assert_absent_passes_on_clean_text() {
        let mut markers = Markers::new();
        markers.string();
        markers.number();
        markers.assert_absent_from("nothing to see", "clean text");
    }

    #[test]
    #[should_panic(expected = "1 marker(s) leaked into the log")]
    fn assert_absent_names_a_leaked_marker() {
        let mut markers = Markers::new();
        let leaked = markers.number();
        markers.string();
        markers.assert_absent_from(&format!("value={leaked}"), "the log");
    }
}
