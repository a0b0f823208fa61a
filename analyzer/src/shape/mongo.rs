//! MongoDB commands → shapes. (Being written.)
use super::Lowering;
use crate::command::MongoCommand;

/// Lower one MongoDB command.
pub fn lower(_command: &MongoCommand) -> Lowering {
    Lowering::default()
}
