//! Spent MongoDB command bodies, handed back for the next copies.
//!
//! A request's body is copied on the data thread ([`OpMsg::to_command`]) and freed on an
//! analysis thread once recorded. glibc's per-thread cache only serves memory the same
//! thread freed, so every copy took the allocator's slow path (about 300 instructions) and
//! every free its cross-thread one (about 170). The analysis threads hand the buffers back
//! here instead, and the data threads copy into them. The pool lives with the hand-over,
//! not with the decoder, so the analysis side never calls back up the flow.
//!
//! Bounded: at most [`KEPT`] buffers of at most [`KEPT_BYTES`] each, so the pool holds no
//! more than 256 KiB. A buffer's old bytes are overwritten by the next copy, never read.
//!
//! [`OpMsg::to_command`]: crate::mongo::op_msg::OpMsg::to_command

use std::sync::Mutex;

use bson::{RawDocument, RawDocumentBuf};
use indextap_analyzer::command::{Observation, Request};

/// Buffers kept at most.
const KEPT: usize = 64;
/// The largest buffer kept; a larger body's is freed.
const KEPT_BYTES: usize = 4 * 1024;

/// The process's pool: every data thread copies from it, every analysis thread gives to it.
static SPENT: Spent = Spent::new();

/// An owned copy of `body`, in a spent buffer when there is one.
pub(crate) fn copy(body: &RawDocument) -> RawDocumentBuf {
    SPENT.copy(body)
}

/// Take back the bodies of the MongoDB commands in `batch`, emptying it.
pub(crate) fn give_back(batch: &mut Vec<Observation>) {
    SPENT.give_back(batch);
}

/// A pool of spent buffers (a type of its own so that tests have pools of their own).
struct Spent(Mutex<Vec<Vec<u8>>>);

impl Spent {
    const fn new() -> Self {
        Self(Mutex::new(Vec::new()))
    }

    fn copy(&self, body: &RawDocument) -> RawDocumentBuf {
        let bytes = body.as_bytes();
        let spent = if bytes.len() <= KEPT_BYTES {
            self.lock().pop()
        } else {
            None
        };
        let Some(mut buffer) = spent else {
            return body.to_owned();
        };
        buffer.clear();
        buffer.extend_from_slice(bytes);
        RawDocumentBuf::from_bytes(buffer).unwrap_or_else(|_| body.to_owned())
    }

    fn give_back(&self, batch: &mut Vec<Observation>) {
        // A batch of SQL statements is emptied in place: taking each observation out to look
        // at it cost the PostgreSQL analysis thread about 50 instructions per statement.
        if !batch
            .iter()
            .any(|observation| matches!(observation.request, Request::Mongo(_)))
        {
            batch.clear();
            return;
        }
        let mut spent = None;
        for observation in batch.drain(..) {
            let Request::Mongo(command) = observation.request else {
                continue;
            };
            let buffer = command.body.into_bytes();
            if buffer.capacity() > KEPT_BYTES {
                continue;
            }
            let spent = spent.get_or_insert_with(|| self.lock());
            if spent.len() < KEPT {
                spent.push(buffer);
            }
        }
    }

    /// A poisoned pool only means a thread panicked between two calls on it; the list is
    /// sound.
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use std::time::SystemTime;

    use bson::rawdoc;
    use indextap_analyzer::command::{MongoCommand, Outcome, SqlCommand, SqlProtocol};

    use super::*;

    fn mongo(body: RawDocumentBuf) -> Observation {
        Observation {
            request: Request::Mongo(MongoCommand::new("app", body, Vec::new())),
            outcome: Outcome::default(),
            at: SystemTime::now(),
        }
    }

    fn select() -> Observation {
        Observation {
            request: Request::Sql(SqlCommand {
                database: "app".into(),
                text: "SELECT 1".into(),
                parameters: 0,
                protocol: SqlProtocol::Simple,
                statement_index: None,
            }),
            outcome: Outcome::default(),
            at: SystemTime::now(),
        }
    }

    #[test]
    fn a_copy_into_a_spent_buffer_is_the_body_exactly() {
        let pool = Spent::new();
        // A longer body's buffer comes back first: the copy must not keep its tail.
        let long = rawdoc! {"find": "orders", "filter": {"secret": "x".repeat(300)}};
        let mut batch = vec![mongo(long)];
        pool.give_back(&mut batch);
        assert!(batch.is_empty());
        let spent = pool.lock().last().map(|buffer| buffer.as_ptr());
        assert!(spent.is_some(), "a small MongoDB body is kept");
        let short = rawdoc! {"find": "c", "$db": "d"};
        let copied = pool.copy(&short);
        assert_eq!(copied.as_bytes(), short.as_bytes());
        assert_eq!(
            Some(copied.as_bytes().as_ptr()),
            spent,
            "the copy is made in the spent buffer"
        );
        assert!(pool.lock().is_empty());
        // With none spent, a copy is a new one, as exact.
        assert_eq!(pool.copy(&short).as_bytes(), short.as_bytes());
    }

    #[test]
    fn the_pool_is_bounded_and_keeps_only_small_mongo_buffers() {
        let pool = Spent::new();
        let mut batch: Vec<Observation> = (0..KEPT * 2)
            .map(|_| mongo(rawdoc! {"find": "c"}))
            .collect();
        batch.push(mongo(rawdoc! {"find": "c", "note": "x".repeat(KEPT_BYTES)}));
        batch.push(select());
        pool.give_back(&mut batch);
        assert!(batch.is_empty(), "every observation is taken");
        assert_eq!(pool.lock().len(), KEPT);
        assert!(pool
            .lock()
            .iter()
            .all(|buffer| buffer.capacity() <= KEPT_BYTES));
        let mut statements = vec![select(), select()];
        pool.give_back(&mut statements);
        assert!(
            statements.is_empty(),
            "a batch without MongoDB commands is emptied too"
        );
        // A body over the kept size is copied anew and leaves the pool as it was.
        let large = rawdoc! {"find": "c", "note": "x".repeat(KEPT_BYTES)};
        assert_eq!(pool.copy(&large).as_bytes(), large.as_bytes());
        assert_eq!(pool.lock().len(), KEPT);
    }
}
