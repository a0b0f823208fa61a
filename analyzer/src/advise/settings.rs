//! How recommendations are chosen: the `[advice]` settings, as the analyzer takes them.

/// What a recommendation must clear, and how many a namespace may get.
#[derive(Debug, Clone, PartialEq)]
pub struct AdviceSettings {
    /// The least verified reduction of the served shapes' cost, as a fraction (0.2: 20 %).
    pub min_gain: f64,
    /// At most this many new indexes per table or collection.
    pub max_indexes_per_namespace: usize,
    /// Unused existing indexes are proposed for dropping only after a window this long.
    pub drop_min_window_secs: u64,
    /// The estimated time one index adds to one write, in milliseconds: what an index costs
    /// over the window is the writes on its namespace times this.
    pub write_cost_ms: f64,
}

/// The write cost of one index, per write: an estimate of one B-tree key insertion with its
/// pages in cache (tens of microseconds). It only has to be of the right order: it weighs a
/// read-mostly table's indexes lightly and a write-mostly one's heavily.
pub const DEFAULT_WRITE_COST_MS: f64 = 0.02;

impl Default for AdviceSettings {
    fn default() -> Self {
        Self {
            min_gain: 0.2,
            max_indexes_per_namespace: 5,
            drop_min_window_secs: 24 * 60 * 60,
            write_cost_ms: DEFAULT_WRITE_COST_MS,
        }
    }
}
