//! The EventBridge adapter: events out through `PutEvents` as a stream, in batches
//! that respect EventBridge's limits (10 entries, 256 KB a request and an entry),
//! sent at least once a second while a run goes on. A 200 from PutEvents does not
//! mean every entry arrived, so each entry's result is read and the refused ones
//! that can still succeed are sent again.

use std::time::Duration;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::error::DrsError;
use crate::outcome::OutboundEvent;

/// PutEvents takes at most 10 entries a call.
const BATCH: usize = 10;
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
}

/// An event ready to send, with its size as EventBridge counts it.
#[derive(Clone, Debug)]
struct Sized {
    event: OutboundEvent,
    bytes: usize,
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
        }
    }

    /// Sends these events, and answers once all are delivered or given up on.
    pub async fn publish(&self, events: Vec<OutboundEvent>) -> Result<(), PublishError> {
        let (sender, queued) = mpsc::channel(events.len().max(1));
        for event in events {
            // The channel holds them all, and the receiver is alive until below.
            let _ = sender.try_send(event);
        }
        drop(sender);
        self.clone().stream(queued).await
    }

    /// Sends what arrives on `queued` until it closes: a batch as soon as 10 are
    /// waiting, whatever is waiting once the oldest has waited a second, and the
    /// rest when the queue closes.
    pub async fn stream(
        self,
        mut queued: mpsc::Receiver<OutboundEvent>,
    ) -> Result<(), PublishError> {
        let mut waiting: Vec<Sized> = Vec::new();
        let mut oldest: Option<Instant> = None;
        let mut sends: JoinSet<(usize, String)> = JoinSet::new();
        let (mut open, mut undelivered, mut last_error) = (true, 0, String::new());
        loop {
            let due = oldest.is_some_and(|at| at.elapsed() >= FLUSH_EVERY) || !open;
            while sends.len() < CONCURRENT_BATCHES {
                let Some(batch) = take_batch(&mut waiting, due) else {
                    break;
                };
                let bus = self.clone();
                sends.spawn(async move { bus.send_with_retries(batch).await });
            }
            if waiting.is_empty() {
                oldest = None;
            }
            if !open && waiting.is_empty() && sends.is_empty() {
                break;
            }
            let flush_at = oldest.map(|at| at + FLUSH_EVERY);
            tokio::select! {
                received = queued.recv(), if open && waiting.len() < MAX_WAITING => match received {
                    Some(event) => {
                        let event = self.fit(event);
                        let bytes = self.size_of(&event);
                        waiting.push(Sized { event, bytes });
                        oldest.get_or_insert_with(Instant::now);
                    }
                    None => open = false,
                },
                Some(joined) = sends.join_next(), if !sends.is_empty() => {
                    let (lost, error) = joined.unwrap_or_else(|e| (0, format!("a PutEvents task ended abnormally: {e}")));
                    if lost > 0 || !error.is_empty() {
                        undelivered += lost;
                        last_error = error;
                    }
                }
                _ = sleep_until(flush_at), if flush_at.is_some() && !waiting.is_empty() => {}
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

    /// Sends one batch, and again its refused entries that can still succeed;
    /// answers how many were not delivered, and why.
    async fn send_with_retries(&self, mut batch: Vec<Sized>) -> (usize, String) {
        let mut last_error = String::new();
        let mut given_up = 0;
        for round in 0..ROUNDS {
            if round > 0 {
                tokio::time::sleep(Duration::from_millis(100 << round)).await;
            }
            match self.put_batch(&batch).await {
                Ok(refused) => {
                    let mut again = Vec::new();
                    for (index, code, message) in refused {
                        last_error = format!("{code}: {message}");
                        match batch.get(index) {
                            Some(entry) if entry_error_is_retryable(&code) => {
                                again.push(entry.clone())
                            }
                            _ => given_up += 1,
                        }
                    }
                    if !again.is_empty() {
                        tracing::warn!(refused = again.len(), round, error = %last_error, "events refused, sending again");
                    }
                    batch = again;
                }
                Err(error) => {
                    last_error = error.to_string();
                    if !error.retryable {
                        break;
                    }
                }
            }
            if batch.is_empty() {
                break;
            }
        }
        (given_up + batch.len(), last_error)
    }

    /// Sends one batch; answers which entries EventBridge refused, with its code
    /// and message.
    async fn put_batch(&self, batch: &[Sized]) -> Result<Vec<(usize, String, String)>, DrsError> {
        let entries = batch
            .iter()
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
        let output = self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(DrsError::from_sdk)?;
        let results = output.entries();
        if output.failed_entry_count() == 0 && results.len() == batch.len() {
            return Ok(Vec::new());
        }
        // Entries answer in request order; one missing from the answer counts as
        // refused, and may go again.
        Ok((0..batch.len())
            .filter_map(|i| match results.get(i) {
                None => Some((
                    i,
                    "InternalFailure".into(),
                    "no result for this entry".into(),
                )),
                Some(result) if result.event_id().is_some() && result.error_code().is_none() => {
                    None
                }
                Some(result) => Some((
                    i,
                    result.error_code().unwrap_or("InternalFailure").to_owned(),
                    result.error_message().unwrap_or("entry refused").to_owned(),
                )),
            })
            .collect())
    }
}

/// A batch from the front of `waiting`: up to 10 entries within the size limit.
/// Only a full batch goes before it is `due`.
fn take_batch(waiting: &mut Vec<Sized>, due: bool) -> Option<Vec<Sized>> {
    if waiting.is_empty() {
        return None;
    }
    let (mut count, mut bytes) = (0, 0);
    for entry in waiting.iter().take(BATCH) {
        if count > 0 && bytes + entry.bytes > MAX_BYTES {
            break;
        }
        count += 1;
        bytes += entry.bytes;
    }
    let full = count < waiting.len() || count == BATCH;
    (full || due).then(|| waiting.drain(..count).collect())
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
        }
    }

    #[test]
    fn batches_hold_ten_entries_or_what_fits_in_a_request() {
        let mut waiting: Vec<Sized> = (0..25).map(|_| sized(100)).collect();
        assert_eq!(take_batch(&mut waiting, false).map(|b| b.len()), Some(10));
        assert_eq!(take_batch(&mut waiting, false).map(|b| b.len()), Some(10));
        assert!(
            take_batch(&mut waiting, false).is_none(),
            "five wait for more"
        );
        assert_eq!(take_batch(&mut waiting, true).map(|b| b.len()), Some(5));

        let mut large: Vec<Sized> = (0..4).map(|_| sized(MAX_BYTES / 3)).collect();
        assert_eq!(
            take_batch(&mut large, false).map(|b| b.len()),
            Some(3),
            "a fourth would pass the request limit"
        );
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

    #[test]
    fn only_passing_entry_errors_are_sent_again() {
        assert!(entry_error_is_retryable("InternalFailure"));
        assert!(entry_error_is_retryable("ThrottlingException"));
        assert!(!entry_error_is_retryable("MalformedDetail"));
        assert!(!entry_error_is_retryable("NotAuthorizedForSourceException"));
    }
}
