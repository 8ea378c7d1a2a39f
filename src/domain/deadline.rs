//! The invocation's one time budget, cut from Lambda's deadline backwards, so that
//! the invocation answers in time whatever DRS and EventBridge do:
//!
//! ```text
//! start ... stop_at ... calls_by ... events_by ... answer_by ... Lambda's deadline
//!   new work   in-flight    outcome events   the summary,   (never reached)
//!   starts     DRS calls    still go out     the answer
//!              finish
//! ```
//!
//! Every DRS call is cut at `calls_by`, however long its attempts, retries or wait
//! for the pace; outcome events are given up at `events_by`, and the summary at
//! `answer_by`. Each room is the smaller of a fixed span and a share of the time
//! there was, so a short deadline (a few seconds) is used, not refused.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Kept after the summary is sent, for the answer itself.
const ANSWER_ROOM: (Duration, f64) = (Duration::from_secs(1), 0.05);
/// Kept for the summary, once outcome events are given up.
const SUMMARY_ROOM: (Duration, f64) = (Duration::from_secs(2), 0.05);
/// Kept for the last outcome events, once DRS calls are cut.
const EVENTS_ROOM: (Duration, f64) = (Duration::from_secs(8), 0.15);
/// Lambda's longest timeout, and a minute for clocks that differ.
const LONGEST_INVOCATION: Duration = Duration::from_secs(900 + 60);
/// Share of what is left before `calls_by` that work under way may still use.
const IN_FLIGHT_SHARE: f64 = 0.5;

/// The longest a server's work already under way takes: a create, then the looks
/// after it (each an operation), bounded by the call policy.
pub fn in_flight(operation_timeout: Duration) -> Duration {
    operation_timeout * 2
}

/// The smaller of a fixed span and a share of `total`.
fn room((most, share): (Duration, f64), total: Duration) -> Duration {
    most.min(total.mul_f64(share))
}

#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    times: Option<Times>,
}

#[derive(Clone, Copy, Debug)]
struct Times {
    stop_at: Instant,
    calls_by: Instant,
    events_by: Instant,
    answer_by: Instant,
}

impl Deadline {
    pub fn none() -> Self {
        Self { times: None }
    }

    /// From Lambda's deadline (milliseconds since the epoch). `in_flight` is the
    /// longest a server's work already under way takes (a create and the looks
    /// after it); less is kept when the deadline is near. A deadline past by less
    /// than Lambda's longest timeout leaves no time at all. One further back, or
    /// further off than Lambda allows, is an emulator's or a test's (cargo lambda
    /// sends a moment in 1970): logged, and the invocation runs without one.
    pub fn from_epoch_ms(deadline_ms: u64, in_flight: Duration) -> Self {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        if deadline_ms == 0 {
            return Self::none();
        }
        let Some(left) = deadline_ms.checked_sub(now_ms).filter(|ms| *ms > 0) else {
            // Past by less than Lambda's longest timeout: a real deadline this
            // process reached late (a slow start, a frozen sandbox). Nothing may
            // start. Only one absurdly far back is an emulator's.
            if now_ms - deadline_ms <= LONGEST_INVOCATION.as_millis() as u64 {
                tracing::warn!(
                    deadline_ms,
                    now_ms,
                    "the invocation's deadline is already past: nothing is started"
                );
                return Self::within(Duration::ZERO, in_flight);
            }
            tracing::warn!(
                deadline_ms,
                now_ms,
                "the invocation's deadline is long past, as an emulator's: running without one"
            );
            return Self::none();
        };
        if left > LONGEST_INVOCATION.as_millis() as u64 {
            tracing::warn!(
                deadline_ms,
                now_ms,
                "the invocation's deadline is further off than Lambda allows: running without one"
            );
            return Self::none();
        }
        Self::within(Duration::from_millis(left), in_flight)
    }

    /// A budget of `total` from now.
    pub fn within(total: Duration, in_flight: Duration) -> Self {
        let now = Instant::now();
        let lambda_at = now + total;
        let answer_by = lambda_at - room(ANSWER_ROOM, total);
        let events_by = answer_by - room(SUMMARY_ROOM, total);
        let calls_by = events_by - room(EVENTS_ROOM, total);
        let before_calls_by = calls_by.saturating_duration_since(now);
        let stop_at = calls_by - in_flight.min(before_calls_by.mul_f64(IN_FLIGHT_SHARE));
        Self {
            times: Some(Times {
                stop_at,
                calls_by,
                events_by,
                answer_by,
            }),
        }
    }

    /// Time left for starting work; `None` when there is no deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.times
            .map(|t| t.stop_at.saturating_duration_since(Instant::now()))
    }

    /// Whether new work should no longer be started.
    pub fn reached(&self) -> bool {
        self.times.is_some_and(|t| Instant::now() >= t.stop_at)
    }

    /// When every DRS call must have ended.
    pub fn calls_by(&self) -> Option<Instant> {
        self.times.map(|t| t.calls_by)
    }

    /// When outcome events are given up on.
    pub fn events_by(&self) -> Option<Instant> {
        self.times.map(|t| t.events_by)
    }

    /// When the summary is given up on, and the invocation answers.
    pub fn answer_by(&self) -> Option<Instant> {
        self.times.map(|t| t.answer_by)
    }
}

/// The earlier of `now + limit` and `by`.
pub fn cut(limit: Duration, by: Option<Instant>) -> Instant {
    let at = Instant::now() + limit;
    by.map_or(at, |by| at.min(by))
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

    const IN_FLIGHT: Duration = Duration::from_secs(30);

    fn secs_until(at: Option<Instant>) -> f64 {
        at.unwrap()
            .saturating_duration_since(Instant::now())
            .as_secs_f64()
    }

    #[test]
    fn a_far_deadline_keeps_fixed_rooms() {
        let deadline = Deadline::from_epoch_ms(in_ms(900_000), IN_FLIGHT);
        assert!((secs_until(deadline.answer_by()) - 899.0).abs() < 0.5);
        assert!((secs_until(deadline.events_by()) - 897.0).abs() < 0.5);
        assert!((secs_until(deadline.calls_by()) - 889.0).abs() < 0.5);
        let left = deadline.remaining().unwrap().as_secs_f64();
        assert!((left - 859.0).abs() < 0.5, "{left}");
        assert!(!deadline.reached());
    }

    #[test]
    fn a_short_deadline_is_shared_not_refused() {
        for total_ms in [3_000u64, 30_000] {
            let deadline = Deadline::from_epoch_ms(in_ms(total_ms), IN_FLIGHT);
            let total = total_ms as f64 / 1000.0;
            let (work, calls, events, answer) = (
                deadline.remaining().unwrap().as_secs_f64(),
                secs_until(deadline.calls_by()),
                secs_until(deadline.events_by()),
                secs_until(deadline.answer_by()),
            );
            assert!(work > 0.1 * total, "{total}: work {work}");
            assert!(work < calls && calls < events && events < answer && answer < total);
        }
    }

    #[test]
    fn no_deadline_cuts_nothing() {
        let deadline = Deadline::from_epoch_ms(0, IN_FLIGHT);
        assert!(deadline.remaining().is_none() && !deadline.reached());
        assert!(deadline.calls_by().is_none());
    }

    #[test]
    fn a_deadline_just_past_leaves_no_time() {
        for past_ms in [1, 5_000, 14 * 60_000] {
            let deadline = Deadline::from_epoch_ms(in_ms(0) - past_ms, IN_FLIGHT);
            assert!(deadline.reached(), "{past_ms} ms past");
            assert!(secs_until(deadline.calls_by()) == 0.0, "{past_ms} ms past");
            assert!(secs_until(deadline.answer_by()) == 0.0, "{past_ms} ms past");
        }
    }

    #[test]
    fn a_deadline_absurdly_far_is_an_emulators_and_cuts_nothing() {
        // cargo lambda's emulator sends 600000: a moment in 1970.
        for absurd in [600_000, in_ms(0) - 3_600_000, in_ms(3_600_000)] {
            let deadline = Deadline::from_epoch_ms(absurd, IN_FLIGHT);
            assert!(
                deadline.remaining().is_none() && !deadline.reached(),
                "{absurd}"
            );
        }
    }
}
