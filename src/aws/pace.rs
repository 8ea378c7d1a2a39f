//! The DRS request rate for one region. DRS publishes no rate limit, so
//! `DRS_MAX_RPS` is only a ceiling: under it the pace finds the service's rate
//! from its throttles, as TCP finds a path's capacity from its losses.
//!
//! - Every request on the wire waits for a slot (GCRA, the token bucket's timing
//!   form, with a burst of two above 10 a second), retries included: the paced connector calls
//!   [`Pace::wait`] for each attempt and [`Pace::observe`] for each answer. Waiters
//!   queue and are served in the order they came; only the head sleeps.
//! - A throttle cuts the rate to a little under what the service accepted over the
//!   last second (measured, not guessed; by a twentieth when too little was
//!   accepted to measure), at most once per [`HOLD`]: one over-rate burst answers
//!   with several throttles and must cost one cut.
//! - It starts slow (TCP's slow start): at a tenth of the ceiling (at least
//!   [`START`] requests a second), doubling every [`DOUBLING`] while callers queue,
//!   until the first throttle. Starting at the ceiling instead sends a burst the
//!   service refuses and measures its rate from a few milliseconds of answers.
//! - After that, while callers queue behind the pace and nothing is throttled, the
//!   rate climbs back quickly to what the service was last measured to accept, then
//!   probes above it slowly, faster the longer it stays quiet (CUBIC's shape): near
//!   the limit a throttle costs a `Retry-After` wait, and a limit that rises must
//!   still be found.
//! - At most about a second's worth of operations are admitted at once
//!   ([`Pace::admit`]), so that a wait for a slot never outlasts an attempt's
//!   timeout, however many callers there are.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::domain::UNPOISONED;

/// What the service said to one request, as far as the pace cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The service took the request (whatever it answered): evidence of capacity.
    Accepted,
    /// Too many requests: the rate is above what the service allows now.
    Throttled,
    /// A fault that says nothing about the rate (5xx, a broken connection).
    Other,
}

/// Requests that may go at once above `SLOW_RATE`: two, so that a waiter woken a
/// moment late does not lose its slot for good.
const BURST: f64 = 2.0;
/// Throttles within this long of a cut are answers to the same over-rate.
pub const HOLD: Duration = Duration::from_millis(200);
/// The span over which the accepted rate is measured.
const MEASURE: Duration = Duration::from_secs(1);
/// After a throttle the rate goes a little under what was accepted, so that the
/// service's bucket refills and the next probe starts from below.
const CUT: f64 = 0.95;
/// With fewer answers accepted than this over the last `MEASURE`, the accepted
/// rate is noise, and a cut takes a twentieth off the rate. Such a slow process is
/// usually one of many sharing the account's limit (Lambda's environments in a
/// storm), and the throttle's `Retry-After` wait has already taken it out for a
/// second or more: that wait is the deep cut. A storm of six processes against
/// 20/s reached 0.83 of the service's rate cutting a tenth, 0.86 a twentieth; six
/// against 10/s, 0.54 and 0.66. Not cutting at all did better still in storms
/// but left a lone process over a low limit throttled on almost every request
/// (`docs/performance.md`).
const TRUSTED_SAMPLES: usize = 5;
const UNMEASURED_CUT: f64 = 0.95;
/// Growth while quiet, per second: below the last measured rate `RECOVERY`;
/// above it `PROBE` x (1 + quiet seconds)², at most `MAX_GROWTH`: gentle near the
/// limit, a fivefold rise found in about five seconds.
const RECOVERY: f64 = 0.5;
const PROBE: f64 = 0.02;
const MAX_GROWTH: f64 = 2.0;
/// Up to this rate the pace keeps no burst: one request a slot. Above it, two
/// may go at once, and the rate stays one below the ceiling. A process this slow
/// is usually one of many sharing the account's limit (Lambda's concurrent
/// environments in a storm), and two requests at once drain the service's small
/// bucket under the others' requests. Measured in a storm of six processes
/// against 20/s: a burst below 10/s cost 0.55 against 0.65 without; the burst at
/// exactly 10/s (the default ceiling, where every process starts) sent each cold
/// process's second request 40 ms after its first, into the bucket the herd had
/// just emptied, and the first second got 2 requests through instead of 20
/// (0.74 against 0.83). A late timer costs a slow process little.
const SLOW_RATE: f64 = 10.0;
/// Where the rate starts (at least; a tenth of the ceiling above that), and how
/// fast it doubles until the first throttle.
pub const START: f64 = 10.0;
const START_SHARE_OF_CEILING: f64 = 0.1;
pub const DOUBLING: Duration = Duration::from_millis(100);
/// The slowest the pace goes, in requests per second.
const FLOOR: f64 = 1.0;
/// Operations admitted at once: a second's worth at the current rate, at least two.
const ADMIT_SPAN: f64 = 1.0;
const MIN_ADMITTED: usize = 2;

#[derive(Debug)]
pub struct Pace {
    ceiling: f64,
    state: Mutex<State>,
    admission: Notify,
    /// The queue for slots: tokio's mutex hands itself on in the order it was
    /// asked for, so its holder is the head of the queue, the only waiter that
    /// sleeps on the clock.
    queue: tokio::sync::Mutex<()>,
    /// Told when a throttle cuts the rate, so the head reads it again at once.
    cut: Notify,
}

#[derive(Debug)]
struct State {
    /// Requests per second allowed now; at most `ceiling`.
    rate: f64,
    /// GCRA's theoretical arrival time of the next request.
    next_slot: Instant,
    /// When requests were accepted, over the last `MEASURE`.
    accepted: VecDeque<Instant>,
    first_answer: Option<Instant>,
    last_cut: Option<Instant>,
    /// What the service was measured to accept at the last cut.
    measured: Option<f64>,
    last_throttle: Option<Instant>,
    last_growth: Instant,
    /// Whether a caller had to wait for a slot since the rate last grew: growth
    /// without demand would only be a guess.
    limited: bool,
    admitted: usize,
    throttles: u64,
    /// Times a waiter looked for its slot: the work the pace costs.
    looks: u64,
}

impl Pace {
    pub fn per_second(ceiling: u32) -> Self {
        let ceiling = f64::from(ceiling.max(1));
        let now = Instant::now();
        Self {
            ceiling,
            state: Mutex::new(State {
                rate: ceiling.min(START.max(ceiling * START_SHARE_OF_CEILING)),
                next_slot: now,
                accepted: VecDeque::new(),
                first_answer: None,
                last_cut: None,
                measured: None,
                last_throttle: None,
                last_growth: now,
                limited: false,
                admitted: 0,
                throttles: 0,
                looks: 0,
            }),
            admission: Notify::new(),
            queue: tokio::sync::Mutex::new(()),
            cut: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect(UNPOISONED)
    }

    /// The rate allowed now, in requests per second.
    pub fn rate(&self) -> f64 {
        self.state().rate
    }

    /// Throttles seen so far.
    pub fn throttles(&self) -> u64 {
        self.state().throttles
    }

    /// Times a waiter looked for its slot so far.
    pub fn looks(&self) -> u64 {
        self.state().looks
    }

    /// Waits for this request's slot: over any span t at most rate x t plus the
    /// burst less one requests go. At the ceiling the rate is held one below it
    /// while the burst is two (so no second sees more than the ceiling, and a
    /// waiter woken a millisecond late does not lose its slot for good); at a
    /// rate of 10 or less the burst is one. Waiters queue, first come first
    /// served: only the head sleeps, until its slot at the rate of the moment, and
    /// reads the rate again when it wakes or when a throttle cuts it, so work per
    /// slot does not grow with the waiters, and no waiter loses its turn to a later
    /// one. A waiter dropped (its attempt cut) leaves the queue.
    pub async fn wait(&self) {
        let _head = self.queue.lock().await;
        loop {
            let cut = self.cut.notified();
            let turn = {
                let mut state = self.state();
                state.looks += 1;
                let now = Instant::now();
                state.grow(now, self.ceiling);
                // The rate never exceeds the ceiling, so a rate over 10 means a ceiling over 10.
                let burst = if state.rate > SLOW_RATE { BURST } else { 1.0 };
                let rate = state.rate.min(self.ceiling - (burst - 1.0));
                let interval = Duration::from_secs_f64(1.0 / rate);
                // `next_slot` is GCRA's theoretical arrival time.
                let allowed_at = state
                    .next_slot
                    .checked_sub(interval.mul_f64(burst - 1.0))
                    .unwrap_or(now);
                if allowed_at <= now {
                    state.next_slot = state.next_slot.max(now) + interval;
                    return;
                }
                state.limited = true;
                allowed_at
            };
            tokio::select! {
                () = tokio::time::sleep_until(turn) => {}
                () = cut => {}
            }
        }
    }

    /// Learns from one answer.
    pub fn observe(&self, answer: Answer) {
        let mut state = self.state();
        let now = Instant::now();
        state.first_answer.get_or_insert(now);
        match answer {
            Answer::Accepted => {
                state.accepted.push_back(now);
                state.forget_before(now);
            }
            Answer::Throttled => {
                state.throttles += 1;
                state.last_throttle = Some(now);
                if state.last_cut.is_none_or(|at| now - at >= HOLD) {
                    state.forget_before(now);
                    let cut = if state.accepted.len() >= TRUSTED_SAMPLES {
                        let accepted = state.rate.min(state.accepted_rate(now));
                        state.measured = Some(accepted);
                        accepted * CUT
                    } else {
                        state.measured = None;
                        state.rate * UNMEASURED_CUT
                    };
                    state.rate = cut.clamp(FLOOR, self.ceiling);
                    state.last_cut = Some(now);
                    self.cut.notify_waiters();
                }
            }
            Answer::Other => {}
        }
    }

    /// Admits one operation (a call with all its retries), waiting while a
    /// second's worth are already under way.
    pub async fn admit(&self) -> Admission<'_> {
        loop {
            let notified = self.admission.notified();
            {
                let mut state = self.state();
                let window = ((state.rate * ADMIT_SPAN) as usize).max(MIN_ADMITTED);
                if state.admitted < window {
                    state.admitted += 1;
                    return Admission { pace: self };
                }
            }
            notified.await;
        }
    }
}

/// One admitted operation; dropping it makes room for the next.
#[derive(Debug)]
pub struct Admission<'a> {
    pace: &'a Pace,
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        let mut state = self.pace.state();
        state.admitted = state.admitted.saturating_sub(1);
        drop(state);
        self.pace.admission.notify_one();
    }
}

impl State {
    fn forget_before(&mut self, now: Instant) {
        while self
            .accepted
            .front()
            .is_some_and(|&at| now.saturating_duration_since(at) > MEASURE)
        {
            self.accepted.pop_front();
        }
    }

    /// Requests accepted per second over the last `MEASURE` (or since the first
    /// answer, early on).
    fn accepted_rate(&self, now: Instant) -> f64 {
        let since_first = self
            .first_answer
            .map_or(MEASURE, |first| now.saturating_duration_since(first));
        let span = since_first.clamp(HOLD, MEASURE).as_secs_f64();
        self.accepted.len() as f64 / span
    }

    fn grow(&mut self, now: Instant, ceiling: f64) {
        let elapsed = now.saturating_duration_since(self.last_growth);
        if elapsed < Duration::from_millis(10) {
            return;
        }
        // Growth is earned while callers wait; a long gap earns no more than a step.
        let elapsed = elapsed.min(DOUBLING);
        self.last_growth = now;
        let quiet = self
            .last_throttle
            .map_or(Duration::MAX, |at| now.saturating_duration_since(at));
        if !std::mem::take(&mut self.limited) || quiet < HOLD || self.rate >= ceiling {
            return;
        }
        let factor = if self.last_throttle.is_none() {
            2f64.powf(elapsed.as_secs_f64() / DOUBLING.as_secs_f64())
        } else {
            let per_second = match self.measured {
                Some(measured) if self.rate < measured => RECOVERY,
                _ => (PROBE * (1.0 + quiet.as_secs_f64().min(60.0)).powi(2)).min(MAX_GROWTH),
            };
            1.0 + per_second * elapsed.as_secs_f64()
        };
        self.rate = (self.rate * factor).min(ceiling);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The most waits that ended in any one-second window.
    async fn busiest_second(pace: &Pace, waits: usize) -> usize {
        let mut times = Vec::new();
        for _ in 0..waits {
            pace.wait().await;
            times.push(Instant::now());
        }
        (0..times.len())
            .map(|i| {
                times[i..]
                    .iter()
                    .take_while(|t| **t - times[i] < Duration::from_secs(1))
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[tokio::test(start_paused = true)]
    async fn no_second_sees_more_than_the_ceiling() {
        // 10 and under, one request a slot; above 10, a burst of two with the
        // rate held one below the ceiling. Enough waits to reach the ceiling.
        for ceiling in [1, 2, 3, 10, 11, 20, 100] {
            let pace = Pace::per_second(ceiling);
            let busiest = busiest_second(&pace, 40.max(4 * ceiling as usize)).await;
            let ceiling = ceiling as usize;
            // Above 10 the burst's second request may be spent during the climb.
            let reached = if ceiling > 10 { ceiling - 1 } else { ceiling };
            assert!(
                busiest <= ceiling && busiest >= reached,
                "{busiest} in one second, ceiling {ceiling}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn spaces_requests_evenly_after_a_small_burst() {
        // Above 10/s and below the ceiling, two go at once (`BURST`: a waiter
        // woken a moment late keeps its slot). A ceiling of 200 starts at 20/s.
        let pace = Pace::per_second(200);
        let start = Instant::now();
        pace.wait().await;
        pace.wait().await;
        assert_eq!(start.elapsed(), Duration::ZERO, "two calls go at once");
        pace.wait().await;
        assert!(start.elapsed() > Duration::ZERO, "a third waits its turn");
        // At 10 a second or less there is no burst: evenly spaced from the first.
        let pace = Pace::per_second(10);
        let start = Instant::now();
        for _ in 0..11 {
            pace.wait().await;
        }
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_pace_sends_one_request_a_slot() {
        let pace = Pace::per_second(100);
        pace.observe(Answer::Throttled);
        assert_eq!(
            pace.rate(),
            9.5,
            "a twentieth off: too few answers to measure"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        let start = Instant::now();
        pace.wait().await;
        pace.wait().await;
        let took = start.elapsed();
        assert!(
            took >= Duration::from_secs_f64(1.0 / 9.5) && took < Duration::from_millis(150),
            "{took:?}: no burst after a wait at 9.5/s, the second waits its slot"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_cold_process_at_the_default_ceiling_sends_no_burst() {
        // Every Lambda environment starts here. In a storm the herd's first
        // requests empty the service's bucket; a second request right behind
        // the first would meet it empty and cost its process a `Retry-After`.
        let pace = Pace::per_second(10);
        let start = Instant::now();
        pace.wait().await;
        pace.wait().await;
        assert_eq!(start.elapsed(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn starts_slow_and_reaches_the_ceiling_but_never_passes_it() {
        let pace = Pace::per_second(100);
        let start = Instant::now();
        let mut sent = Vec::new();
        for _ in 0..1000 {
            pace.wait().await;
            pace.observe(Answer::Accepted);
            sent.push(start.elapsed());
        }
        assert_eq!(pace.rate(), 100.0);
        let in_first_100_ms = sent
            .iter()
            .filter(|t| **t < Duration::from_millis(100))
            .count();
        assert!(in_first_100_ms <= 4, "{in_first_100_ms} at first");
        let took = start.elapsed();
        assert!(
            took < Duration::from_millis(10_500),
            "{took:?}: the ceiling is reached fast"
        );
        for (i, at) in sent.iter().enumerate() {
            let within_a_second = sent[i..]
                .iter()
                .take_while(|t| **t - *at < Duration::from_secs(1))
                .count();
            assert!(within_a_second <= 102, "{within_a_second} in one second");
        }
    }

    /// A service that accepts `limit` a second (bucket of `burst`) and a caller
    /// with unlimited demand: the share of the service's rate the pace achieves.
    async fn achieved(pace: &Pace, limit: f64, burst: f64, span: Duration) -> (usize, u64) {
        let start = Instant::now();
        let (mut tokens, mut last) = (burst, start);
        let mut accepted = 0;
        while start.elapsed() < span {
            pace.wait().await;
            let now = Instant::now();
            tokens = (tokens + (now - last).as_secs_f64() * limit).min(burst);
            last = now;
            if tokens >= 1.0 {
                tokens -= 1.0;
                accepted += 1;
                pace.observe(Answer::Accepted);
            } else {
                pace.observe(Answer::Throttled);
            }
        }
        (accepted, pace.throttles())
    }

    #[tokio::test(start_paused = true)]
    async fn finds_an_unpublished_limit_far_below_the_ceiling() {
        let pace = Pace::per_second(1000);
        let (accepted, throttles) = achieved(&pace, 40.0, 5.0, Duration::from_secs(30)).await;
        let share = accepted as f64 / (40.0 * 30.0);
        assert!(share > 0.9, "achieved {share:.3} of the service's rate");
        assert!(throttles < 100, "{throttles} throttles in 30 s");
    }

    #[tokio::test(start_paused = true)]
    async fn follows_a_limit_down_and_up_again() {
        let pace = Pace::per_second(100);
        achieved(&pace, 100.0, 10.0, Duration::from_secs(5)).await;
        let (accepted, _) = achieved(&pace, 20.0, 2.0, Duration::from_secs(10)).await;
        assert!(accepted as f64 > 0.85 * 200.0, "{accepted} of 200 at 20/s");
        assert!(pace.rate() < 30.0, "down to {}", pace.rate());
        let (accepted, _) = achieved(&pace, 100.0, 10.0, Duration::from_secs(15)).await;
        // The limit rose to the ceiling, where the pace keeps no burst.
        assert!(
            accepted as f64 > 0.78 * 1500.0,
            "{accepted} of 1500 once the limit rose again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn admits_about_a_seconds_worth_at_once() {
        let pace = Pace::per_second(3);
        let held: Vec<Admission<'_>> = vec![pace.admit().await, pace.admit().await];
        let third = pace.admit().await;
        let blocked = tokio::time::timeout(Duration::from_secs(5), pace.admit()).await;
        assert!(blocked.is_err(), "a fourth waits while three are under way");
        drop(third);
        let fourth = tokio::time::timeout(Duration::from_millis(1), pace.admit()).await;
        assert!(fourth.is_ok(), "and goes as soon as one finishes");
        drop(held);
    }

    /// Many waiters: served in the order they came, each woken once for its
    /// slot, whatever the rate does meanwhile.
    #[tokio::test(start_paused = true)]
    async fn waiters_are_served_first_come_first_served() {
        let pace = std::sync::Arc::new(Pace::per_second(5));
        let served = std::sync::Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for i in 0..40 {
            let (pace, served) = (pace.clone(), served.clone());
            waiters.push(tokio::spawn(async move {
                pace.wait().await;
                served.lock().unwrap().push(i);
            }));
            // Each is queued before the next comes.
            tokio::task::yield_now().await;
        }
        // A throttle mid-way reaches the head at once; the order holds.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        pace.observe(Answer::Throttled);
        for waiter in waiters {
            waiter.await.unwrap();
        }
        let served = served.lock().unwrap().clone();
        assert_eq!(served, (0..40).collect::<Vec<_>>());
        // The head looks when it comes and when it wakes (and once more for the
        // cut): not every waiter at every slot.
        assert!(
            pace.looks() <= 2 * 40 + 2,
            "{} looks for 40 slots",
            pace.looks()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_given_up_leaves_the_queue() {
        let pace = Pace::per_second(1);
        pace.wait().await;
        let given_up = tokio::time::timeout(Duration::from_millis(100), pace.wait()).await;
        assert!(given_up.is_err(), "its slot is a second away");
        let start = Instant::now();
        pace.wait().await;
        assert!(
            start.elapsed() <= Duration::from_millis(900),
            "{:?}: the next waiter is not held behind one that left",
            start.elapsed()
        );
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
