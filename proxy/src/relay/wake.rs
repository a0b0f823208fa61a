//! The relay task's wakers: one per pump (`PumpWake`), over the task's own (`TaskWaker`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::Waker;

use futures::task::AtomicWaker;

/// One pump's waker: the sockets wake the pump that waits on them, and only that pump is
/// polled on the task's next poll. A round trip wakes the relay task twice, once per
/// direction; polling both pumps each time polled the idle one's socket for nothing.
pub(super) struct PumpWake {
    due: AtomicBool,
    task: Arc<TaskWaker>,
}

/// The relay task's waker, as the pumps reach it. A tokio task's waker is the same for the
/// task's whole life, so the first poll's is kept and woken by reference: no registration
/// per poll and no waker taken and cloned again per wake-up, which is what an
/// `AtomicWaker` costs. Polled with another waker (the future moved to another task), it
/// switches to an `AtomicWaker` for good. A wake-up lost in the switch is not lost: the
/// task looks at the pumps' `due` flags after registering.
#[derive(Default)]
pub(super) struct TaskWaker {
    first: OnceLock<Waker>,
    moved: AtomicBool,
    other: AtomicWaker,
}

impl TaskWaker {
    pub(super) fn register(&self, waker: &Waker) {
        if !self.moved.load(Ordering::Acquire) {
            if self.first.get_or_init(|| waker.clone()).will_wake(waker) {
                return;
            }
            self.moved.store(true, Ordering::Release);
        }
        self.other.register(waker);
    }

    pub(super) fn wake(&self) {
        if self.moved.load(Ordering::Acquire) {
            self.other.wake();
        } else if let Some(first) = self.first.get() {
            first.wake_by_ref();
        }
    }
}

impl PumpWake {
    /// Due at first: a pump is polled once before it waits on anything.
    pub(super) fn new(task: &Arc<TaskWaker>) -> Arc<Self> {
        Arc::new(Self {
            due: AtomicBool::new(true),
            task: task.clone(),
        })
    }

    /// Whether the pump was woken since it was last polled.
    pub(super) fn take(&self) -> bool {
        self.due.swap(false, Ordering::AcqRel)
    }
}

impl std::task::Wake for PumpWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.due.store(true, Ordering::Release);
        self.task.wake();
    }
}
