//! The name `mongo_advice` still declares (`mod mongo_harness;`): every MongoDB test helper is
//! in `mongo_common`, and this only re-exports it.
#![allow(unused_imports, unreachable_pub)]

#[path = "../mongo_common/mod.rs"]
mod mongo_common;

pub use mongo_common::*;
