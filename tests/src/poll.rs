//! Waiting for what happens in its own time: a child that starts, a port that opens, an
//! observation that reaches the admin API. One loop for all of them.

use std::time::{Duration, Instant};

/// Calls `attempt` every `interval` until it returns `Ok(Some(_))`, and returns that; an
/// `Err` ends the wait at once. `Ok(None)` when `timeout` passes first (the caller knows
/// what was awaited, so it says so).
pub fn poll<T, E>(
    timeout: Duration,
    interval: Duration,
    mut attempt: impl FnMut() -> Result<Option<T>, E>,
) -> Result<Option<T>, E> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = attempt()? {
            return Ok(Some(value));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(interval);
    }
}
