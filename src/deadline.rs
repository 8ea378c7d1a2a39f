//! The invocation's deadline, and the margin kept before it: work stops starting
//! new calls in time to finish those in flight and report.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Room kept, once no new work starts, for the outcome events and the response.
pub const REPORTING_ROOM: Duration = Duration::from_secs(10);

/// The margin kept before Lambda's deadline: the worst case of a server's work
/// already under way (a create and the look after it, each bounded with its
/// retries and its waits for the pace by `operation_timeout`), then reporting.
pub fn margin(operation_timeout: Duration) -> Duration {
    operation_timeout * 2 + REPORTING_ROOM
}

/// The margin under the default call policy (15 s operations).
pub const DEFAULT_MARGIN: Duration = Duration::from_secs(40);

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

    /// Time left for starting work; `None` when there is no deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.stop_at
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Whether new work should no longer be started.
    pub fn reached(&self) -> bool {
        self.stop_at.is_some_and(|at| Instant::now() >= at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_ms(ms: u64) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
            + ms
    }

    #[test]
    fn the_default_margin_covers_the_default_policys_worst_case() {
        let policy = crate::clients::CallPolicy::default();
        assert_eq!(margin(policy.operation_timeout), DEFAULT_MARGIN);
    }

    #[test]
    fn keeps_the_margin_before_a_far_deadline() {
        let deadline = Deadline::from_epoch_ms(in_ms(300_000), DEFAULT_MARGIN);
        let left = deadline.remaining().unwrap();
        assert!(
            left <= Duration::from_secs(260) && left > Duration::from_secs(255),
            "{left:?}"
        );
        assert!(!deadline.reached());
    }

    #[test]
    fn a_near_deadline_leaves_half_for_work() {
        let deadline = Deadline::from_epoch_ms(in_ms(10_000), DEFAULT_MARGIN);
        let left = deadline.remaining().unwrap();
        assert!(
            left <= Duration::from_secs(5) && left > Duration::from_secs(4),
            "{left:?}"
        );
        assert!(Deadline::from_epoch_ms(in_ms(0), DEFAULT_MARGIN).reached());
        assert!(Deadline::from_epoch_ms(0, DEFAULT_MARGIN)
            .remaining()
            .is_none());
    }
}
