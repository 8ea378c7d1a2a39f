//! The EventBridge adapter: events out through `PutEvents` as a stream, in batches
//! that respect EventBridge's limits (10 entries, 256 KB a request and an entry),
//! sent at least once a second while a run goes on. A 200 from PutEvents does not
//! mean every entry arrived, so each entry's result is read and the refused ones
//! that can still succeed are sent again.
//!
//! A slow bus is waited for, not flooded: an attempt's timeout follows the answers
//! the bus gives (and doubles after one it did not), and an entry that may have
//! landed twice is not sent a third time. Any answer but a definite refusal of
//! the request (a 4xx) may follow a request that took effect: no answer, a 5xx
//! with or without a readable code (a load balancer's HTML page), a body that
//! cannot be read, or a reply whose `Entries` do not answer the entries sent one
//! for one, which answers none of them. Every send is cut at the time
//! the caller gives (the invocation's `events_by`); what is not out by then is
//! counted undelivered, so the invocation fails in time and Lambda retries it.
//!
//! An event given up (refused for good, its sends spent, or out of time) is said
//! on the stream's `given_up` flag before its place under the run's bound is
//! freed, so that the run starts no create after it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_eventbridge::types::{PutEventsRequestEntry, PutEventsResultEntry};
use serde_json::Value;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

use crate::aws::sdk_error;
use crate::domain::aws_error::{AwsError, Service};
use crate::domain::outcome::OutboundEvent;
use crate::domain::UNPOISONED;

/// PutEvents takes at most 10 entries a call.
pub const BATCH: usize = 10;
/// EventBridge's limit, for one entry and for a whole request, counted as its
/// documentation says (UTF-8 bytes of source, detail-type, detail, resources).
/// Kept under 256 KB by a margin for the JSON around each entry, which the API
/// reference says may count too.
pub const MAX_BYTES: usize = 256 * 1024 - 8 * 1024;
/// An event waits at most this long for its batch to fill.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// PutEvents calls in flight at once.
const CONCURRENT_BATCHES: usize = 8;
/// Events held waiting for a batch; past it, the stream stops taking more (and
/// the run waits) until batches go out.
const MAX_WAITING: usize = BATCH * CONCURRENT_BATCHES * 2;
/// Sends of one batch, counting the first; refused entries go again after a pause.
const ROUNDS: u32 = 4;
/// Sends of an entry that may have landed (any answer but a refusal, or none)
/// before it is given up: each event is published at most this many times.
const MAY_LAND: u32 = 2;
/// An attempt's timeout: at least this, else a few times the slowest recent answer.
const MIN_ATTEMPT: Duration = Duration::from_secs(5);
const MAX_ATTEMPT: Duration = Duration::from_secs(60);
const SLOWEST_TIMES: u32 = 3;

/// An event on its way to the bus, and what it holds until it is out: its place
/// under the run's bound on extended servers without a published event.
pub struct Queued {
    pub event: OutboundEvent,
    pub held: Option<OwnedSemaphorePermit>,
}

impl From<OutboundEvent> for Queued {
    fn from(event: OutboundEvent) -> Self {
        Self { event, held: None }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{undelivered} event(s) undelivered: {last_error}")]
pub struct PublishError {
    pub undelivered: usize,
    pub last_error: String,
}

#[derive(Clone, Debug)]
pub struct EventBus {
    client: aws_sdk_eventbridge::Client,
    bus: String,
    source: String,
    /// How slow the bus has been, across this process's invocations.
    latency: Arc<Mutex<Latency>>,
}

/// The slowest recent answer, decaying, and what it makes an attempt's timeout.
#[derive(Debug)]
struct Latency {
    attempt_timeout: Duration,
}

impl Latency {
    fn answered(&mut self, took: Duration) {
        // A slow answer raises the timeout at once; fast ones lower it slowly.
        let wanted = (took * SLOWEST_TIMES).clamp(MIN_ATTEMPT, MAX_ATTEMPT);
        self.attempt_timeout = wanted.max(self.attempt_timeout.mul_f64(0.9));
    }

    fn unanswered(&mut self, waited: Duration) {
        self.attempt_timeout = (waited * 2).clamp(MIN_ATTEMPT, MAX_ATTEMPT);
    }
}

/// An event ready to send, with its size as EventBridge counts it.
#[derive(Debug)]
struct Sized {
    event: OutboundEvent,
    bytes: usize,
    _held: Option<OwnedSemaphorePermit>,
}

/// One batch on its way, and its places under the run's bound. Should its send be
/// dropped before it ends (the stream cancelled), the events are given up before
/// the batch, and so its places, is dropped: no create starts after an event lost
/// that way either.
struct Sending {
    batch: Vec<Sized>,
    given_up: Arc<AtomicBool>,
    ended: bool,
}

impl Drop for Sending {
    fn drop(&mut self) {
        if !self.ended {
            self.given_up.store(true, Ordering::SeqCst);
        }
    }
}

/// What became of one batch: which entries are out, and the last error.
struct Sent {
    undelivered: usize,
    delivered: Vec<bool>,
    last_error: String,
}

impl EventBus {
    pub fn new(
        client: aws_sdk_eventbridge::Client,
        bus: impl Into<String>,
        source: impl Into<String>,
    ) -> Self {
        Self {
            client,
            bus: bus.into(),
            source: source.into(),
            latency: Arc::new(Mutex::new(Latency {
                attempt_timeout: MIN_ATTEMPT,
            })),
        }
    }

    /// Sends these events, and answers once all are delivered or given up on
    /// (at `cut_by` at the latest).
    pub async fn publish(
        &self,
        events: Vec<OutboundEvent>,
        cut_by: Option<Instant>,
    ) -> Result<(), PublishError> {
        let (sender, queued) = mpsc::channel(events.len().max(1));
        for event in events {
            // The channel holds them all, and the receiver is alive until below.
            let _ = sender.try_send(event.into());
        }
        drop(sender);
        self.clone()
            .stream_holding(queued, cut_by, None, Arc::default())
            .await
    }

    /// Sends these events, ten at a time, and answers which were delivered.
    pub async fn publish_each(
        &self,
        events: Vec<OutboundEvent>,
        cut_by: Option<Instant>,
    ) -> (Vec<bool>, String) {
        let mut delivered = Vec::with_capacity(events.len());
        let mut last_error = String::new();
        let mut waiting = Batcher::default();
        let now = Instant::now();
        events
            .into_iter()
            .for_each(|e| waiting.push(self.sized(e.into()), now));
        while let Some(batch) = waiting.take(now, true) {
            let sent = self.send_with_retries(&batch, cut_by).await;
            delivered.extend(sent.delivered);
            if sent.undelivered > 0 {
                last_error = sent.last_error;
            }
        }
        (delivered, last_error)
    }

    fn sized(&self, queued: Queued) -> Sized {
        let event = self.fit(queued.event);
        let bytes = self.size_of(&event);
        Sized {
            event,
            bytes,
            _held: queued.held,
        }
    }

    /// Sends what arrives on `queued` until it closes: a batch as soon as 10 are
    /// waiting, whatever is waiting once the oldest has waited a second, and the
    /// rest when the queue closes. From `cut_by` on nothing more is sent: what is
    /// still waiting, or arrives, is counted undelivered. `places` are what the
    /// events hold: when none is left, the work waits on this stream, and a part
    /// batch goes at once. `given_up` is set, before any place is freed, once an
    /// event is given up.
    pub async fn stream_holding(
        self,
        mut queued: mpsc::Receiver<Queued>,
        cut_by: Option<Instant>,
        places: Option<Arc<tokio::sync::Semaphore>>,
        given_up: Arc<AtomicBool>,
    ) -> Result<(), PublishError> {
        let mut waiting = Batcher::default();
        let mut sends: JoinSet<Sent> = JoinSet::new();
        let (mut open, mut undelivered, mut last_error) = (true, 0, String::new());
        loop {
            let now = Instant::now();
            let cut = cut_by.is_some_and(|by| now >= by);
            if cut && !waiting.is_empty() {
                undelivered += waiting.give_up(&given_up);
                last_error = "the invocation's time for events ran out".to_owned();
            }
            // The work waits on events that no batch under way will free: send what
            // there is. (With a batch under way, its answer frees places.)
            let starved =
                sends.is_empty() && places.as_ref().is_some_and(|p| p.available_permits() == 0);
            while sends.len() < CONCURRENT_BATCHES && !cut {
                let Some(batch) = waiting.take(now, !open || starved) else {
                    break;
                };
                let bus = self.clone();
                let sending = Sending {
                    batch,
                    given_up: given_up.clone(),
                    ended: false,
                };
                // In the invocation's span: its log lines carry the request id.
                sends.spawn(
                    async move {
                        let mut sending = sending;
                        let sent = bus.send_with_retries(&sending.batch, cut_by).await;
                        if sent.undelivered > 0 {
                            sending.given_up.store(true, Ordering::SeqCst);
                        }
                        sending.ended = true;
                        // Only now are the batch's places freed.
                        drop(sending);
                        sent
                    }
                    .in_current_span(),
                );
            }
            if !open && waiting.is_empty() && sends.is_empty() {
                break;
            }
            let flush_at = waiting.flush_at();
            tokio::select! {
                received = queued.recv(), if open && waiting.has_room() => match received {
                    Some(event) => waiting.push(self.sized(event), Instant::now()),
                    None => open = false,
                },
                Some(joined) = sends.join_next(), if !sends.is_empty() => {
                    let sent = joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
                    if sent.undelivered > 0 {
                        undelivered += sent.undelivered;
                        last_error = sent.last_error;
                    }
                }
                // Armed only with a send free to take the batch: with every send
                // under way, a flush time already past would be ready at once,
                // again and again, until one returns.
                _ = sleep_until(flush_at), if flush_at.is_some() && sends.len() < CONCURRENT_BATCHES => {}
                _ = sleep_until(cut_by), if cut_by.is_some() && !cut => {}
            }
        }
        if undelivered == 0 {
            Ok(())
        } else {
            Err(PublishError {
                undelivered,
                last_error,
            })
        }
    }

    /// The entry's size as EventBridge counts it.
    fn size_of(&self, event: &OutboundEvent) -> usize {
        self.source.len()
            + event.detail_type.len()
            + event.detail.len()
            + event.resources.iter().map(String::len).sum::<usize>()
    }

    /// An event too large for one entry is trimmed (long strings cut, long lists
    /// shortened, `truncated: true` added), never refused.
    fn fit(&self, mut event: OutboundEvent) -> OutboundEvent {
        if self.size_of(&event) <= MAX_BYTES {
            return event;
        }
        event.resources.truncate(2);
        for resource in &mut event.resources {
            resource.truncate(2048);
        }
        let Ok(mut detail) = serde_json::from_str::<Value>(&event.detail) else {
            event.detail = r#"{"truncated":true}"#.to_owned();
            return event;
        };
        let mut limit = 4096;
        loop {
            trim(&mut detail, limit);
            if let Value::Object(map) = &mut detail {
                map.insert("truncated".into(), Value::Bool(true));
            }
            event.detail = detail.to_string();
            if self.size_of(&event) <= MAX_BYTES || limit <= 16 {
                return event;
            }
            limit /= 4;
        }
    }

    fn attempt_timeout(&self) -> Duration {
        self.latency.lock().expect(UNPOISONED).attempt_timeout
    }

    fn note_latency(&self, note: impl FnOnce(&mut Latency)) {
        note(&mut self.latency.lock().expect(UNPOISONED));
    }

    /// Sends one batch, and again its entries that can still get through, until
    /// `cut_by`; answers which were delivered. An entry the bus refused (the
    /// entry, or the whole request with a 4xx) was not published and may go
    /// again; after any other answer, or none, it may have landed, and goes at
    /// most [`MAY_LAND`] times in all.
    async fn send_with_retries(&self, batch: &[Sized], cut_by: Option<Instant>) -> Sent {
        let mut last_error = String::new();
        let mut delivered = vec![false; batch.len()];
        let mut may_have_landed = vec![0u32; batch.len()];
        let mut pending: Vec<usize> = (0..batch.len()).collect();
        for round in 0..ROUNDS {
            pending.retain(|&i| may_have_landed[i] < MAY_LAND);
            if pending.is_empty() {
                break;
            }
            if round > 0 {
                let pause = Instant::now() + Duration::from_millis(100 << round);
                tokio::time::sleep_until(cut_by.map_or(pause, |by| pause.min(by))).await;
            }
            if cut_by.is_some_and(|by| Instant::now() >= by) {
                break;
            }
            let limit = self.attempt_timeout();
            let started = Instant::now();
            let attempt = self.put_batch(batch, &pending);
            let cut_at = crate::domain::deadline::cut(limit, cut_by);
            match tokio::time::timeout_at(cut_at, attempt).await {
                Err(_) => {
                    let waited = started.elapsed();
                    // Cut by the invocation's time, the wait says nothing of the bus.
                    if started + limit <= cut_at {
                        self.note_latency(|l| l.unanswered(waited));
                    }
                    last_error = format!("PutEvents gave no answer within {waited:?}");
                    pending.iter().for_each(|&i| may_have_landed[i] += 1);
                    tracing::warn!(
                        events = pending.len(),
                        waited_ms = waited.as_millis() as u64,
                        "the bus is slow"
                    );
                }
                Ok(Ok(results)) => {
                    self.note_latency(|l| l.answered(started.elapsed()));
                    let mut again = Vec::new();
                    for (position, &index) in pending.iter().enumerate() {
                        match results.get(position) {
                            Some(Entry::Delivered) => delivered[index] = true,
                            None | Some(Entry::Unanswered) => {
                                last_error =
                                    "PutEvents answered without this entry's result".into();
                                may_have_landed[index] += 1;
                                again.push(index);
                            }
                            Some(Entry::Refused { code, message }) => {
                                last_error = format!("{code}: {message}");
                                if entry_error_is_retryable(code) {
                                    again.push(index);
                                }
                            }
                        }
                    }
                    if !again.is_empty() {
                        tracing::warn!(again = again.len(), round, error = %last_error, "events not taken, sending again");
                    }
                    pending = again;
                }
                Ok(Err(error)) => {
                    self.note_latency(|l| l.answered(started.elapsed()));
                    last_error = error.to_string();
                    if error.may_have_taken_effect() {
                        pending.iter().for_each(|&i| may_have_landed[i] += 1);
                    }
                    if !error.retryable() {
                        break;
                    }
                }
            }
        }
        Sent {
            undelivered: delivered.iter().filter(|d| !**d).count(),
            delivered,
            last_error,
        }
    }

    /// Sends the `pending` entries of a batch; answers what became of each (by
    /// position in `pending`), or how the call failed.
    async fn put_batch(&self, batch: &[Sized], pending: &[usize]) -> Result<Vec<Entry>, AwsError> {
        let entries = pending
            .iter()
            .filter_map(|&i| batch.get(i))
            .map(|sized| {
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(&self.source)
                    .detail_type(sized.event.detail_type)
                    .set_resources(Some(sized.event.resources.clone()))
                    .detail(sized.event.detail.clone())
                    .build()
            })
            .collect();
        let sent = self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await;
        let output = sent.map_err(|e| sdk_error::read(Service::EventBridge, "PutEvents", e))?;
        Ok(results_of(output.entries(), pending.len()))
    }
}

/// Each pending entry's result. AWS documents a reply whose `Entries` hold one
/// result per entry sent, in order; one with fewer (or more) results cannot say
/// which result is whose, so it answers none of them, and every entry may have
/// landed.
fn results_of(results: &[PutEventsResultEntry], sent: usize) -> Vec<Entry> {
    if results.len() != sent {
        return (0..sent).map(|_| Entry::Unanswered).collect();
    }
    results
        .iter()
        .map(|result| match (result.error_code(), result.event_id()) {
            (Some(code), _) => Entry::Refused {
                code: code.to_owned(),
                message: result.error_message().unwrap_or("entry refused").to_owned(),
            },
            (None, Some(_)) => Entry::Delivered,
            (None, None) => Entry::Unanswered,
        })
        .collect()
}

/// What a PutEvents reply said of one entry.
#[derive(Debug)]
enum Entry {
    Delivered,
    Refused {
        code: String,
        message: String,
    },
    /// The reply had no result for it.
    Unanswered,
}

/// The events waiting for a batch, and when a batch is due: a full one (10
/// entries, or as many as fit in a request) at once, any other once its oldest
/// event has waited [`FLUSH_EVERY`], or when the caller forces it. Pure: the
/// time is given.
#[derive(Default)]
struct Batcher {
    waiting: Vec<Sized>,
    /// When the first event still waiting since the queue was last empty came.
    oldest: Option<Instant>,
}

impl Batcher {
    fn push(&mut self, entry: Sized, now: Instant) {
        self.waiting.push(entry);
        self.oldest.get_or_insert(now);
    }

    fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Whether the stream may take more; past [`MAX_WAITING`] the work waits.
    fn has_room(&self) -> bool {
        self.waiting.len() < MAX_WAITING
    }

    /// When what waits is due, if anything waits.
    fn flush_at(&self) -> Option<Instant> {
        self.oldest.map(|at| at + FLUSH_EVERY)
    }

    /// Gives up everything waiting (its time ran out): says so on `given_up`
    /// before any of its places is freed, so that no create starts after it.
    /// Answers how many.
    fn give_up(&mut self, given_up: &AtomicBool) -> usize {
        given_up.store(true, Ordering::SeqCst);
        self.oldest = None;
        self.waiting.drain(..).count()
    }

    /// A batch from the front: up to 10 entries within the size limit. Only a
    /// full batch goes before it is due, or `forced`.
    fn take(&mut self, now: Instant, forced: bool) -> Option<Vec<Sized>> {
        if self.waiting.is_empty() {
            return None;
        }
        let (mut count, mut bytes) = (0, 0);
        for entry in self.waiting.iter().take(BATCH) {
            if count > 0 && bytes + entry.bytes > MAX_BYTES {
                break;
            }
            count += 1;
            bytes += entry.bytes;
        }
        let full = count < self.waiting.len() || count == BATCH;
        let due = forced || self.flush_at().is_some_and(|at| now >= at);
        if !(full || due) {
            return None;
        }
        let batch = self.waiting.drain(..count).collect();
        if self.waiting.is_empty() {
            self.oldest = None;
        }
        Some(batch)
    }
}

/// Entry errors that a later attempt can get past; the rest (malformed detail,
/// a source or detail-type not allowed) would fail the same way every time.
fn entry_error_is_retryable(code: &str) -> bool {
    matches!(
        code,
        "InternalFailure" | "InternalException" | "ThrottlingException" | "ServiceUnavailable"
    )
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Cuts strings to `limit` characters and lists to `limit / 64` items (at least
/// one), everywhere in `value`.
fn trim(value: &mut Value, limit: usize) {
    match value {
        Value::String(text) if text.chars().count() > limit => {
            *text = text.chars().take(limit).collect::<String>() + "…";
        }
        Value::Array(items) => {
            items.truncate((limit / 64).max(1));
            items.iter_mut().for_each(|item| trim(item, limit));
        }
        Value::Object(map) => map.values_mut().for_each(|item| trim(item, limit)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sized(bytes: usize) -> Sized {
        Sized {
            event: OutboundEvent {
                detail_type: "x",
                resources: Vec::new(),
                detail: String::new(),
            },
            bytes,
            _held: None,
        }
    }

    #[test]
    fn batches_hold_ten_entries_or_what_fits_in_a_request() {
        let now = Instant::now();
        let mut waiting = Batcher::default();
        (0..25).for_each(|_| waiting.push(sized(100), now));
        assert_eq!(waiting.take(now, false).map(|b| b.len()), Some(10));
        assert_eq!(waiting.take(now, false).map(|b| b.len()), Some(10));
        assert!(waiting.take(now, false).is_none(), "five wait for more");
        assert_eq!(waiting.take(now, true).map(|b| b.len()), Some(5));

        let mut large = Batcher::default();
        (0..4).for_each(|_| large.push(sized(MAX_BYTES / 3), now));
        assert_eq!(
            large.take(now, false).map(|b| b.len()),
            Some(3),
            "a fourth would pass the request limit"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_part_batch_waits_a_second_from_its_oldest_event() {
        let mut waiting = Batcher::default();
        assert_eq!(waiting.flush_at(), None);
        let first = Instant::now();
        waiting.push(sized(100), first);
        tokio::time::advance(Duration::from_millis(600)).await;
        waiting.push(sized(100), Instant::now());
        assert_eq!(waiting.flush_at(), Some(first + FLUSH_EVERY));
        assert!(waiting.take(Instant::now(), false).is_none());
        tokio::time::advance(Duration::from_millis(400)).await;
        assert_eq!(
            waiting.take(Instant::now(), false).map(|b| b.len()),
            Some(2)
        );
        assert_eq!(waiting.flush_at(), None, "nothing waits, nothing is due");

        // What waits when the time for events runs out is given up, all of it.
        let places = Arc::new(tokio::sync::Semaphore::new(1));
        let mut held = sized(100);
        held._held = places.clone().try_acquire_owned().ok();
        waiting.push(held, Instant::now());
        (0..2).for_each(|_| waiting.push(sized(100), Instant::now()));
        assert!(waiting.has_room());
        let given_up = AtomicBool::new(false);
        assert_eq!(waiting.give_up(&given_up), 3);
        assert!(given_up.load(Ordering::SeqCst) && places.available_permits() == 1);
        assert!(waiting.is_empty() && waiting.flush_at().is_none());
    }

    #[test]
    fn an_oversized_event_is_trimmed_to_fit() {
        let client = aws_sdk_eventbridge::Client::from_conf(
            aws_sdk_eventbridge::Config::builder()
                .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
                .build(),
        );
        let bus = EventBus::new(client, "default", "drs-extender");
        let detail = serde_json::json!({
            "errorMessage": "e".repeat(400_000),
            "droppedTags": (0..5000).map(|i| serde_json::json!({"key": format!("k{i}"), "reason": "TOO_MANY_TAGS"})).collect::<Vec<_>>(),
            "stagingAccountId": "111122223333",
        });
        let event = bus.fit(OutboundEvent {
            detail_type: "Extended Source Server Failed",
            resources: vec!["arn".into()],
            detail: detail.to_string(),
        });
        assert!(bus.size_of(&event) <= MAX_BYTES);
        let trimmed: Value = serde_json::from_str(&event.detail).unwrap();
        assert_eq!(trimmed["truncated"], true);
        assert_eq!(trimmed["stagingAccountId"], "111122223333");
    }

    fn delivered(id: &str) -> PutEventsResultEntry {
        PutEventsResultEntry::builder().event_id(id).build()
    }

    #[test]
    fn a_reply_that_does_not_answer_every_entry_answers_none() {
        let refused = PutEventsResultEntry::builder()
            .error_code("InternalFailure")
            .error_message("x")
            .build();
        let full = results_of(&[delivered("a"), refused.clone(), delivered("c")], 3);
        assert!(matches!(
            full.as_slice(),
            [Entry::Delivered, Entry::Refused { .. }, Entry::Delivered]
        ));
        // A middle entry's result missing: which result is whose is unknown.
        for short in [vec![delivered("a"), delivered("c")], Vec::new()] {
            let read = results_of(&short, 3);
            assert_eq!(read.len(), 3);
            assert!(
                read.iter().all(|e| matches!(e, Entry::Unanswered)),
                "{read:?}"
            );
        }
        let long = results_of(&[delivered("a"), delivered("b"), delivered("c")], 2);
        assert!(long.iter().all(|e| matches!(e, Entry::Unanswered)));
    }

    #[test]
    fn a_send_dropped_unended_gives_up_before_its_places_are_freed() {
        let places = Arc::new(tokio::sync::Semaphore::new(1));
        let given_up = Arc::new(AtomicBool::new(false));
        let mut held = sized(10);
        held._held = places.clone().try_acquire_owned().ok();
        let sending = Sending {
            batch: vec![held],
            given_up: given_up.clone(),
            ended: false,
        };
        // A cancellation drops it unended.
        drop(sending);
        assert!(given_up.load(Ordering::SeqCst));
        assert_eq!(places.available_permits(), 1);

        let ended = Arc::new(AtomicBool::new(false));
        drop(Sending {
            batch: Vec::new(),
            given_up: ended.clone(),
            ended: true,
        });
        assert!(
            !ended.load(Ordering::SeqCst),
            "a send that ended said its own"
        );
    }

    #[test]
    fn only_passing_entry_errors_are_sent_again() {
        assert!(entry_error_is_retryable("InternalFailure"));
        assert!(entry_error_is_retryable("ThrottlingException"));
        assert!(!entry_error_is_retryable("MalformedDetail"));
        assert!(!entry_error_is_retryable("NotAuthorizedForSourceException"));
    }
}
