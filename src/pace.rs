//! A client-side ceiling on request rate. DRS publishes no per-operation rate and
//! throttles whole accounts, so one pace per region is shared by every caller.
//!
//! A GCRA (the token bucket's timing form): on average one request per interval,
//! with a small burst so that one event's look and create never wait on each other.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct Pace {
    ceiling: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    next_slot: Instant,
    /// At least `ceiling`'s interval; longer while DRS is throttling us.
    interval: Duration,
}

/// The slowest a throttled pace gets: one request a second.
const SLOWEST: Duration = Duration::from_secs(1);

/// Requests that may go at once: the two of one event (look, then create). More
/// would let a reconciliation at the ceiling outrun the service's own bucket:
/// measured, a tenth of a second's worth cost 15 throttles and 3 % of the pace.
const BURST: u32 = 2;

impl Pace {
    pub fn per_second(requests: u32) -> Self {
        let ceiling = Duration::from_secs(1) / requests.max(1);
        Self {
            ceiling,
            state: Mutex::new(State {
                next_slot: Instant::now(),
                interval: ceiling,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means another caller panicked mid-update of plain
        // values; they are still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// DRS throttled a request that had already been retried: halve the rate.
    pub fn slow_down(&self) {
        let mut state = self.state();
        state.interval = (state.interval * 2).min(SLOWEST.max(self.ceiling));
    }

    /// A request went through: win back a tenth of the way to the ceiling.
    pub fn speed_up(&self) {
        let mut state = self.state();
        let excess = state.interval.saturating_sub(self.ceiling);
        state.interval = if excess < Duration::from_millis(1) {
            self.ceiling
        } else {
            state.interval - excess / 10
        };
    }

    /// Waits for this caller's turn. Turns are handed out in order: over any span
    /// t at most t / interval + burst requests go.
    pub async fn wait(&self) {
        let allowed_at = {
            let mut state = self.state();
            let now = Instant::now();
            // `next_slot` is the theoretical arrival time of the next request.
            let due = state.next_slot.max(now);
            let tolerance = state.interval * (BURST - 1);
            state.next_slot = due + state.interval;
            due.checked_sub(tolerance).map_or(now, |at| at.max(now))
        };
        // A timer, even one already due, waits for the timer wheel's next
        // millisecond tick: only sleep when there is something to wait for.
        if allowed_at > Instant::now() {
            tokio::time::sleep_until(allowed_at).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn spaces_requests_evenly_after_a_small_burst() {
        let pace = Pace::per_second(10);
        let start = Instant::now();
        pace.wait().await;
        pace.wait().await;
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "one event's two calls go at once"
        );
        for _ in 0..10 {
            pace.wait().await;
        }
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(1),
            "then one every 100 ms"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_fast_pace_bursts_no_more_than_two() {
        let pace = Pace::per_second(100);
        let start = Instant::now();
        pace.wait().await;
        pace.wait().await;
        pace.wait().await;
        assert_eq!(start.elapsed(), Duration::from_millis(10));
        for _ in 0..100 {
            pace.wait().await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(1010));
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_slows_the_pace_and_success_wins_it_back() {
        let pace = Pace::per_second(10);
        pace.slow_down();
        pace.slow_down();
        let start = Instant::now();
        for _ in 0..4 {
            pace.wait().await;
        }
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(800),
            "after a burst of two, 400 ms apart while throttled"
        );
        for _ in 0..100 {
            pace.speed_up();
        }
        assert_eq!(pace.state().interval, Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_pace_does_not_delay_the_next_request() {
        let pace = Pace::per_second(2);
        pace.wait().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let before = Instant::now();
        pace.wait().await;
        assert_eq!(before.elapsed(), Duration::ZERO);
    }
}
