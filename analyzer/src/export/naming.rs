//! Index names. (Being written.)
use crate::advise::IndexSpec;

/// The conventional name of an index.
pub fn index_name(_index: &IndexSpec) -> String {
    String::new()
}
