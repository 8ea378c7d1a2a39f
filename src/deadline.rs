//! The invocation's deadline, and the margin kept before it: work stops starting
//! new calls in time to finish those in flight and report.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Room kept for calls in flight (bounded by the call policy's attempt timeout
/// in the common case), outcome events and the response.
pub const DEFAULT_MARGIN: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    stop_at: Option<Instant>,
}

impl Deadline {
    pub fn none() -> Self {
        Self { stop_at: None }
    }

    /// From Lambda's deadline (milliseconds since the epoch). A deadline already
    /// closer than the margin leaves half of what remains for the work.
    pub fn from_epoch_ms(deadline_ms: u64, margin: Duration) -> Self {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        if deadline_ms == 0 {
            return Self::none();
        }
        let remaining = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
        let usable = if remaining > margin * 2 {
            remaining - margin
        } else {
            remaining / 2
        };
        Self {
            stop_at: Some(Instant::now() + usable),
        }
    }

    /// Whether new work should no longer be started.
    pub fn reached(&self) -> bool {
        self.stop_at.is_some_and(|at| Instant::now() >= at)
    }
}
