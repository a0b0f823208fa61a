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
    /// The time one index entry adds to one write, in milliseconds, when it is pinned
    /// (`advice.index_write_cost_us`); `None` measures it from the traffic (see
    /// [`super::write_cost`]).
    pub index_write_cost_ms: Option<f64>,
    /// At most this many PostgreSQL candidates are measured with HypoPG per run, best
    /// first; the rest are left out, never recommended unverified (see
    /// [`super::verify::schedule`]).
    pub max_verified: usize,
}

/// The default verification budget: enough for the best few candidates of a hundred
/// tables with their fallbacks, in well under a second of planner time.
pub const DEFAULT_MAX_VERIFIED: usize = 500;

impl Default for AdviceSettings {
    fn default() -> Self {
        Self {
            min_gain: 0.2,
            max_indexes_per_namespace: 5,
            drop_min_window_secs: 24 * 60 * 60,
            index_write_cost_ms: None,
            max_verified: DEFAULT_MAX_VERIFIED,
        }
    }
}
