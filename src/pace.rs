//! A client-side ceiling on request rate. DRS publishes no per-operation rate and
//! throttles whole accounts, so one pace per region is shared by every caller.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct Pace {
    interval: Duration,
    next_slot: Mutex<Instant>,
}

impl Pace {
    pub fn per_second(requests: u32) -> Self {
        Self {
            interval: Duration::from_secs(1) / requests.max(1),
            next_slot: Mutex::new(Instant::now()),
        }
    }

    /// Waits for this caller's slot. Slots are handed out in order, evenly spaced,
    /// so bursts never exceed the ceiling.
    pub async fn wait(&self) {
        let slot = {
            // A poisoned lock only means another caller panicked mid-update of an
            // `Instant`; the value is still usable.
            let mut next = self
                .next_slot
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let slot = (*next).max(Instant::now());
            *next = slot + self.interval;
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
    async fn an_idle_pace_does_not_delay_the_next_request() {
        let pace = Pace::per_second(2);
        pace.wait().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let before = Instant::now();
        pace.wait().await;
        assert_eq!(before.elapsed(), Duration::ZERO);
    }
}
