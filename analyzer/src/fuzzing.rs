//! Entry points of the fuzz targets that lower commands into shapes (`fuzz/fuzz_targets/`).
//!
//! They live here, not in the fuzz crate, so that clippy lints them and `cargo test` runs
//! every committed seed through them (see `testing::seeds`). Each takes arbitrary bytes and
//! may do anything but panic.
//!
//! ## Layout
//! - [`sql_lowering`]: SQL text → shapes, fresh and through the cache (masked keys).
//! - [`mongo_command_lowering`]: a BSON command document → shapes, and the same document as
//!   the filter of a `find`.

use std::sync::Arc;

use bson::{rawdoc, RawDocument};

use crate::command::{MongoCommand, SqlCommand, SqlProtocol};
use crate::shape::{mongo, sql, Lowering};

/// Lowers the bytes as SQL text (when they are UTF-8), every way the proxy can: fresh, one
/// statement of it, and twice through a cache so the second is a hit.
pub fn sql_lowering(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    identify(&sql::lower_text("db", text, SqlProtocol::Simple));
    identify(&sql::lower_statement(
        "db",
        text,
        SqlProtocol::Simple,
        Some(1),
    ));
    let cache = sql::SqlCache::new(4);
    let command = SqlCommand {
        database: "db".into(),
        text: Arc::from(text),
        parameters: 0,
        protocol: SqlProtocol::Extended,
        statement_index: None,
    };
    for _ in 0..2 {
        identify(&cache.lower(&command));
    }
}

/// Lowers the bytes as a MongoDB command document (when they are one), and as the filter of
/// a `find`, which is where most of a command's structure is read.
pub fn mongo_command_lowering(data: &[u8]) {
    let Ok(document) = RawDocument::from_bytes(data) else {
        return;
    };
    let command = |body| MongoCommand::new("db", body, Vec::new());
    identify(&mongo::lower(&command(document.to_owned())));
    let find = rawdoc! { "find": "c", "filter": document.to_owned(), "$db": "db" };
    identify(&mongo::lower(&command(find)));
}

/// Every shape of a lowering has an id (its canonical JSON hashed), as the aggregator needs.
fn identify(lowering: &Lowering) {
    for occurrence in &lowering.shapes {
        let _ = occurrence.shape.id();
    }
}
