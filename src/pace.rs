//! A client-side ceiling on request rate. DRS publishes no per-operation rate and
//! throttles whole accounts, so one pace per region is shared by every caller.

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

    /// Waits for this caller's slot. Slots are handed out in order, evenly spaced,
    /// so bursts never exceed the ceiling.
    pub async fn wait(&self) {
        let slot = {
            let mut state = self.state();
            let slot = state.next_slot.max(Instant::now());
            state.next_slot = slot + state.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn spaces_requests_evenly() {
        let pace = Pace::per_second(10);
        let start = Instant::now();
        for _ in 0..11 {
            pace.wait().await;
        }
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_slows_the_pace_and_success_wins_it_back() {
        let pace = Pace::per_second(10);
        pace.slow_down();
        pace.slow_down();
        let start = Instant::now();
        pace.wait().await;
        pace.wait().await;
        pace.wait().await;
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(800),
            "400 ms apart while throttled"
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
