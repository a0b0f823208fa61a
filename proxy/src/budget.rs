//! The inspection budget: the bytes the whole process may hold for frames gathered across
//! reads.
//!
//! A frame that arrives within one read is inspected as a slice of the read arena and costs
//! nothing extra. A frame spread over several reads is copied together (up to
//! `capture.max_inspect_bytes`) so that its inspector sees it whole. Per connection and
//! direction that copy is bounded, but fifty connections sending 16 MiB statements at once
//! are not: the budget (`capture.max_inspect_total_bytes`) bounds them all together. A frame
//! that cannot get room is treated as oversize (forwarded, its header inspected), and
//! counted.
//!
//! The room is taken once, for the frame's whole length, when gathering starts, and given
//! back when the last reference to the gathered bytes is dropped (after inspection, or when
//! the connection closes mid-frame): the [`Reservation`] travels with the bytes
//! ([`Reservation::attach`]), so nothing can forget to release it. The accounting is one
//! atomic counter, which is also the exported gauge of bytes held.
//!
//! The sessions' decoded copies of large requests (a MongoDB body, a PostgreSQL statement
//! text) are charged the same way, from the moment they are made until the last holder
//! drops them: [`charge_copy`] gives a [`Charge`] that travels with the copy (in the pending
//! request, the prepared statement, then beside the observation in its analyzer batch). A
//! copy that finds no room is not captured, and counted as `inspect_budget_exhausted`. A
//! copy is never longer than the frame it comes from, and a frame that long holds room of
//! its own (gathered, or part of a long read) until it is dropped once inspected: the copy
//! may take over that room ([`InspectBudget::reserve_over`]), so a statement near the limit
//! is not refused for being counted twice. Past the limit by at most one frame per
//! inspection task, for as long as that frame is decoded.
//!
//! ## Layout
//! - [`InspectBudget`]: the process-wide counter and its limit; [`InspectBudget::reserve`].
//! - [`Reservation`]: room taken, released on drop.
//! - [`charge_copy`], [`Charge`]: a session's copy of a large request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use prometheus_client::metrics::gauge::Gauge;

use crate::tap::Events;

/// The process-wide budget of bytes held for gathered frames. Cloning shares it.
#[derive(Debug, Clone)]
pub struct InspectBudget {
    held: Gauge<u64, AtomicU64>,
    limit: u64,
}

/// A session's copy of a request at least this long is charged to the budget. Smaller ones
/// are bounded by the pending and queue counts alone: charging every round trip would touch
/// the process-wide counter on the hot path.
pub const CHARGED_COPY: usize = 16 * 1024;

/// Room held by a session's copy of a large request, shared by every holder of the copy (a
/// prepared statement's text and each execution of it): released when the last one drops.
pub type Charge = Arc<Reservation>;

/// The budget had no room for a copy (counted as `inspect_budget_exhausted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoRoom;

/// The charge for a copy of `bytes` bytes about to be kept: `Ok(None)` when it is small
/// enough to go uncharged, `Err` (counted as `inspect_budget_exhausted`) when the
/// budget has no room: the request is then not captured; forwarding is not affected.
#[inline]
pub fn charge_copy(bytes: usize, events: &mut dyn Events) -> Result<Option<Charge>, NoRoom> {
    if bytes < CHARGED_COPY {
        return Ok(None);
    }
    charge_large(bytes, events)
}

#[cold]
fn charge_large(bytes: usize, events: &mut dyn Events) -> Result<Option<Charge>, NoRoom> {
    match events.reserve(bytes) {
        Some(room) => Ok(Some(Arc::new(room))),
        None => {
            events.count("inspect_budget_exhausted");
            Err(NoRoom)
        }
    }
}

impl Default for InspectBudget {
    /// An unlimited budget (tests and fuzzing).
    fn default() -> Self {
        Self::unlimited()
    }
}

impl InspectBudget {
    /// A budget of `limit` bytes, counted in `held` (the exported gauge).
    pub fn new(limit: usize, held: Gauge<u64, AtomicU64>) -> Self {
        Self {
            held,
            limit: limit as u64,
        }
    }

    /// A budget that never runs out, counted in a gauge of its own (tests and fuzzing).
    pub fn unlimited() -> Self {
        Self::new(usize::MAX, Gauge::default())
    }

    /// Room for `bytes` more bytes, or `None` when that would pass the limit. Never waits.
    pub fn reserve(&self, bytes: usize) -> Option<Reservation> {
        self.reserve_over(bytes, 0)
    }

    /// Room for `bytes` more bytes with `releasing` of what is held about to be given back:
    /// a copy made from a charged frame may take over the frame's room (the frame is
    /// dropped once inspected), so the two are not counted against the limit together.
    pub fn reserve_over(&self, bytes: usize, releasing: usize) -> Option<Reservation> {
        let bytes = bytes as u64;
        let limit = self.limit.saturating_add(releasing as u64);
        self.held
            .inner()
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                held.checked_add(bytes).filter(|total| *total <= limit)
            })
            .ok()?;
        Some(Reservation {
            held: self.held.clone(),
            bytes,
        })
    }

    /// Room for `bytes` whatever the limit: for what must be held to stay transparent (a
    /// reply the topology rewrite awaits). Still counted, so the gauge stays true.
    pub fn reserve_regardless(&self, bytes: usize) -> Reservation {
        let bytes = bytes as u64;
        self.held.inner().fetch_add(bytes, Ordering::Relaxed);
        Reservation {
            held: self.held.clone(),
            bytes,
        }
    }

    /// Bytes held now.
    pub fn held(&self) -> u64 {
        self.held.get()
    }

    /// The limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }
}

/// Room taken from an [`InspectBudget`]; dropping it gives the room back.
#[derive(Debug)]
pub struct Reservation {
    held: Gauge<u64, AtomicU64>,
    bytes: u64,
}

impl Reservation {
    /// The bytes (gathered, or a read's chunk), as `Bytes` carrying this reservation: it is
    /// released when the last slice of them is dropped, wherever that happens (the
    /// inspection task, a write queue).
    pub fn attach<B: AsRef<[u8]> + Send + 'static>(self, bytes: B) -> Bytes {
        Bytes::from_owner(Held {
            bytes,
            _reservation: self,
        })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.held.inner().fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// Bytes and the room they were given.
struct Held<B> {
    bytes: B,
    _reservation: Reservation,
}

impl<B: AsRef<[u8]>> AsRef<[u8]> for Held<B> {
    fn as_ref(&self) -> &[u8] {
        self.bytes.as_ref()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use bytes::BytesMut;

    use super::*;

    #[test]
    fn reserve_and_release_keep_the_count() {
        let budget = InspectBudget::new(100, Gauge::default());
        let a = budget.reserve(60).expect("room for 60");
        assert_eq!(budget.held(), 60);
        let b = budget
            .reserve(40)
            .expect("room for 40 more: exactly the limit");
        assert_eq!(budget.held(), 100);
        drop(a);
        assert_eq!(budget.held(), 40);
        drop(b);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn past_the_limit_nothing_is_taken() {
        let budget = InspectBudget::new(100, Gauge::default());
        let held = budget.reserve(70).expect("room");
        assert!(budget.reserve(31).is_none());
        assert_eq!(budget.held(), 70, "a refused reservation takes nothing");
        assert!(budget.reserve(usize::MAX).is_none(), "no overflow");
        let rest = budget.reserve(30).expect("what is left still fits");
        drop((held, rest));
        assert!(budget.reserve(100).is_some(), "all of it is free again");
        let frame = budget.reserve(80).expect("a frame's room");
        assert!(budget.reserve(80).is_none());
        let copy = budget
            .reserve_over(80, 80)
            .expect("a copy takes over the room of the frame it comes from");
        assert!(budget.reserve_over(81, 80).is_none());
        drop((frame, copy));
        assert_eq!(budget.held(), 0);
        let forced = budget.reserve_regardless(150);
        assert_eq!(budget.held(), 150, "counted past the limit");
        assert!(budget.reserve(1).is_none());
        drop(forced);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn attached_bytes_release_with_their_last_slice() {
        let budget = InspectBudget::new(1 << 20, Gauge::default());
        let mut gathered = BytesMut::with_capacity(1000);
        gathered.extend_from_slice(&[7; 1000]);
        let frame = budget.reserve(1000).expect("room").attach(gathered);
        assert_eq!(&frame[..], &[7; 1000][..]);
        let head = frame.slice(..4);
        let copy = frame.clone();
        drop(frame);
        drop(copy);
        assert_eq!(budget.held(), 1000, "a slice still holds the frame");
        drop(head);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn clones_share_one_budget_across_threads() {
        let budget = InspectBudget::new(1000, Gauge::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let budget = budget.clone();
                std::thread::spawn(move || {
                    let mut granted = 0;
                    for _ in 0..10_000 {
                        if let Some(room) = budget.reserve(100) {
                            assert!(budget.held() <= 1000);
                            granted += 1;
                            drop(room);
                        }
                    }
                    granted
                })
            })
            .collect();
        let granted: u32 = threads.into_iter().map(|t| t.join().expect("join")).sum();
        assert!(granted > 0);
        assert_eq!(budget.held(), 0);
    }
}
