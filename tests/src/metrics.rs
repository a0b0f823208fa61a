//! The proxy's `GET /metrics`, read the one way every test reads it.
//!
//! The exposition is parsed by `prometheus-parse`; a lookup names a sample (`…_total` for a
//! counter, as written in the text) and the labels it must carry, and its value is the **sum**
//! of every sample that matches, so a lookup by fewer labels than the family has (say only
//! `reason`) counts every listener. A histogram's buckets are not looked up here.
//!
//! ## Layout
//! - [`Exposition`]: a parsed scrape and its text (for failure messages).
//! - [`metric`], [`metric_value`]: one lookup, fetched or on text already fetched.
//! - [`wait_for_metric`]: polls until a value is reached.

use prometheus_parse::{Sample, Scrape, Value};

use crate::capture::wait_until;
use crate::IndextapProcess;

/// One scrape of `/metrics`.
pub struct Exposition {
    samples: Vec<Sample>,
    text: String,
}

impl Exposition {
    /// Parses Prometheus or OpenMetrics text; lines that are no sample are passed over.
    pub fn parse(text: String) -> Self {
        let lines = text.lines().map(|line| Ok(line.to_string()));
        let scrape = Scrape::parse(lines).unwrap_or_else(|err| panic!("{err}:\n{text}"));
        Self {
            samples: scrape.samples,
            text,
        }
    }

    /// `GET /metrics` on `proxy`'s admin API, parsed; panics when it does not answer 2xx.
    pub fn fetch(proxy: &IndextapProcess) -> Self {
        let text = proxy
            .get_text("/metrics")
            .unwrap_or_else(|err| panic!("GET /metrics: {err:#}"));
        Self::parse(text)
    }

    /// The sum of the samples named `name` whose labels include every `(key, value)` of
    /// `labels`; `None` when no sample matches.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .filter(|sample| sample.metric == name)
            .filter(|sample| {
                labels
                    .iter()
                    .all(|(key, wanted)| sample.labels.get(key) == Some(*wanted))
            })
            .filter_map(|sample| match sample.value {
                Value::Counter(value) | Value::Gauge(value) | Value::Untyped(value) => Some(value),
                Value::Histogram(_) | Value::Summary(_) => None,
            })
            .reduce(|sum, value| sum + value)
    }

    /// The text as served.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// [`Exposition::value`] of a fresh scrape of `proxy`, 0 when no sample matches.
pub fn metric(proxy: &IndextapProcess, name: &str, labels: &[(&str, &str)]) -> f64 {
    Exposition::fetch(proxy).value(name, labels).unwrap_or(0.0)
}

/// [`Exposition::value`] of an exposition already fetched as `text`.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    Exposition::parse(text.to_string()).value(name, labels)
}

/// Polls `/metrics` until [`metric`] reaches `at_least`, and returns it; panics with the
/// last exposition after [`crate::capture::CAPTURE_TIMEOUT`].
#[track_caller]
pub fn wait_for_metric(
    proxy: &IndextapProcess,
    name: &str,
    labels: &[(&str, &str)],
    at_least: f64,
) -> f64 {
    wait_until(&format!("{name}{labels:?} >= {at_least}"), || {
        let exposition = Exposition::fetch(proxy);
        match exposition.value(name, labels) {
            Some(value) if value >= at_least => Ok(value),
            value => Err(format!("it is {value:?}:\n{}", exposition.text())),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `prometheus-client` serves: OpenMetrics, `_total` on counters, `# EOF` last.
    const SCRAPE: &str = r#"# HELP indextap_decode_errors Frames that could not be decoded.
# TYPE indextap_decode_errors counter
indextap_decode_errors_total{listener="mongo-a",reason="truncated"} 2
indextap_decode_errors_total{listener="mongo-b",reason="truncated"} 3
indextap_decode_errors_total{listener="mongo-b",reason="bad_length"} 1
# HELP indextap_shapes_tracked Distinct shapes.
# TYPE indextap_shapes_tracked gauge
indextap_shapes_tracked 7
# TYPE indextap_added_latency_seconds histogram
indextap_added_latency_seconds_bucket{listener="mongo-a",direction="request",le="0.001"} 4
indextap_added_latency_seconds_sum{listener="mongo-a",direction="request"} 0.5
# EOF
"#;

    #[test]
    fn a_lookup_sums_the_samples_that_carry_every_label() {
        let exposition = Exposition::parse(SCRAPE.to_string());
        let errors = "indextap_decode_errors_total";
        assert_eq!(
            exposition.value(errors, &[("reason", "truncated")]),
            Some(5.0)
        );
        assert_eq!(
            exposition.value(errors, &[("listener", "mongo-b"), ("reason", "truncated")]),
            Some(3.0)
        );
        assert_eq!(exposition.value(errors, &[]), Some(6.0));
        assert_eq!(exposition.value(errors, &[("reason", "other")]), None);
        assert_eq!(exposition.value("indextap_shapes_tracked", &[]), Some(7.0));
        assert_eq!(
            metric_value(
                SCRAPE,
                "indextap_added_latency_seconds_sum",
                &[("direction", "request")]
            ),
            Some(0.5)
        );
        // A label's value must match whole, not as a substring.
        assert_eq!(exposition.value(errors, &[("listener", "mongo")]), None);
    }
}
