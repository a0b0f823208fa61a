//! SQL text → shapes. (Being written.)
use super::Lowering;
use crate::command::SqlCommand;

/// A bounded cache of SQL normalisation, keyed by statement text.
#[derive(Debug, Default)]
pub struct SqlCache {}

impl SqlCache {
    /// A cache holding at most `capacity` statements.
    pub fn new(_capacity: usize) -> Self {
        Self {}
    }

    /// Lower one statement, from the cache when its text was seen before.
    pub fn lower(&self, _command: &SqlCommand) -> Lowering {
        Lowering::default()
    }
}
