//! Export: one recommendation, many renderings. (Being written.)
pub mod naming;
