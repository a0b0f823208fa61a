//! Replies: completing, failing and suspending executions, and ReadyForQuery.

use std::time::Instant;

use pgwire::messages::response::TransactionStatus;

use super::pending::{CopyDirection, Execution, Pending};
use super::{report, report_with, PgSession};
use crate::postgres::backend::{Backend, SqlState};
use crate::tap::Events;

impl PgSession {
    pub(super) fn on_backend(&mut self, message: Backend, at: Instant, events: &mut dyn Events) {
        if let Backend::ReadyForQuery(status) = message {
            self.ready(status, events);
            return;
        }
        if self.lost.is_some() {
            return;
        }
        match message {
            Backend::DataRow => match self.pending.front_execution_mut() {
                Some(execution) => execution.rows_seen += 1,
                None => events.count("unpaired_reply"),
            },
            Backend::CommandComplete(rows) => self.complete(at, events, |e| e.complete(rows)),
            Backend::EmptyQueryResponse => self.complete(at, events, |_| {}),
            Backend::ErrorResponse(sqlstate) => self.error(sqlstate, at, events),
            Backend::PortalSuspended => self.suspend(at, events),
            Backend::CopyInResponse => self.start_copy(CopyDirection::In, events),
            Backend::CopyOutResponse => self.start_copy(CopyDirection::Out, events),
            _ => {}
        }
    }

    /// A statement finished: an Execute completes; a simple Query reports the statement and
    /// moves on to its next.
    fn complete(
        &mut self,
        at: Instant,
        events: &mut dyn Events,
        apply: impl FnOnce(&mut Execution),
    ) {
        match self.pending.front_mut() {
            // Reported where it waits, then dropped: the run is not moved out to be reported.
            Some(Pending::Execute(execution)) => {
                apply(execution);
                report(&self.database, execution, Some(at), events);
                self.pending.pop();
            }
            Some(Pending::Simple { execution, .. }) => {
                apply(execution);
                self.next_statement(at, events);
            }
            Some(Pending::Sync { .. }) | None => events.count("unpaired_reply"),
        }
    }

    /// An ErrorResponse fails the oldest execution. In extended mode the server then skips
    /// everything up to Sync, so the executions queued before the next Sync never ran.
    fn error(&mut self, sqlstate: SqlState, at: Instant, events: &mut dyn Events) {
        // A failed COPY FROM STDIN leaves copy mode: the next Sync is answered again.
        self.copy_in = false;
        match self.pending.front() {
            Some(Pending::Execute(_)) => {
                if let Some(Pending::Execute(mut execution)) = self.pending.pop() {
                    execution.fail(sqlstate);
                    report(&self.database, &mut execution, Some(at), events);
                }
                while let Some(Pending::Execute(_)) = self.pending.front() {
                    self.pending.pop();
                    events.count("skipped_after_error");
                }
            }
            Some(Pending::Simple { .. }) => {
                if let Some(execution) = self.pending.front_execution_mut() {
                    execution.fail(sqlstate);
                }
                self.next_statement(at, events);
            }
            // A failed Parse, Bind or Describe with no Execute behind it, or a failed commit
            // at Sync: no statement ran.
            Some(Pending::Sync { .. }) => {}
            // Before the first request, an error is the startup's (authentication failed).
            None if self.cycle == 0 => {}
            None => events.count("unpaired_reply"),
        }
    }

    /// Reports the simple Query statement that completed at `at`, and starts its next, in
    /// the queue's entry: the next statement shares the text.
    fn next_statement(&mut self, at: Instant, events: &mut dyn Events) {
        let Some(execution) = self.pending.front_execution_mut() else {
            return;
        };
        let text = execution.text.clone();
        let room = execution.room.clone();
        report_with(&self.database, execution, text, room, Some(at), events);
        execution.next_statement(at);
    }

    /// PortalSuspended: the Execute hit its row limit. The run continues with the next
    /// Execute on the same portal, so it is reported once, when it completes.
    fn suspend(&mut self, at: Instant, events: &mut dyn Events) {
        let Some(Pending::Execute(_)) = self.pending.front() else {
            events.count("unpaired_reply");
            return;
        };
        let Some(Pending::Execute(mut execution)) = self.pending.pop() else {
            return;
        };
        execution.suspend(at);
        // The Bind that created it, by id: a name bound again is another portal.
        let home = execution
            .portal
            .and_then(|id| self.portals.find_mut(|portal| portal.id == id));
        match home {
            Some(portal) => portal.suspended = Some(Box::new(execution)),
            // The portal was rebound or closed meanwhile: the run ends here.
            None => report(&self.database, &mut execution, None, events),
        }
    }

    /// CopyInResponse or CopyOutResponse. In COPY FROM STDIN mode the server ignores Sync,
    /// so the Syncs a client pipelined behind the COPY's Execute (tokio-postgres sends
    /// Bind, Execute, Sync at once) will get no ReadyForQuery: they are taken off the queue.
    fn start_copy(&mut self, direction: CopyDirection, events: &mut dyn Events) {
        match self.pending.front_execution_mut() {
            Some(execution) => execution.start_copy(direction),
            None => {
                events.count("unpaired_reply");
                return;
            }
        }
        if direction == CopyDirection::In {
            self.copy_in = true;
            for _ in 0..self.pending.remove_syncs_behind_front() {
                events.count("sync_in_copy");
            }
        }
    }

    /// ReadyForQuery answers the oldest sync point, a simple Query's statements all reported.
    /// When the transaction is over, the portals bound before that point are destroyed.
    fn ready(&mut self, status: Option<TransactionStatus>, events: &mut dyn Events) {
        if let Some(untracked) = self.lost {
            self.lost = untracked.checked_sub(1).filter(|left| *left > 0);
            return;
        }
        let mut ended = None;
        while let Some(entry) = self.pending.pop() {
            match entry {
                Pending::Execute(_) => events.count("pending_unanswered"),
                Pending::Simple { cycle, .. } => {
                    ended = Some(cycle);
                    break;
                }
                Pending::Sync { cycle } => {
                    ended = Some(cycle);
                    break;
                }
            }
        }
        let Some(cycle) = ended else {
            // The first ReadyForQuery ends the startup phase and answers no request.
            if self.cycle > 0 {
                events.count("unpaired_reply");
            }
            return;
        };
        if status == Some(TransactionStatus::Idle) {
            // Runs suspended in them (nearly always none) are reported as they go, with no
            // list of them made and dropped.
            let database = &self.database;
            self.portals.remove_where(
                |portal| portal.cycle < cycle,
                |portal| {
                    if let Some(mut run) = portal.suspended {
                        report(database, &mut run, None, events);
                    }
                },
            );
        }
    }
}
