//! The EventBridge adapter: outcome events out through `PutEvents`, at most 10 a
//! call. A 200 from PutEvents does not mean every entry arrived, so each entry's
//! result is read and the failed ones are sent again.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use tokio::task::JoinSet;

use crate::error::DrsError;
use crate::outcome::OutboundEvent;

/// PutEvents takes at most 10 entries a call.
const BATCH: usize = 10;
/// PutEvents calls in flight at once: a large reconciliation's outcomes must not
/// queue behind one another.
const CONCURRENT_BATCHES: usize = 8;
/// Rounds of re-sending entries that EventBridge refused one by one.
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

    pub async fn publish(&self, events: Vec<OutboundEvent>) -> Result<(), PublishError> {
        let mut pending = events;
        let mut last_error = String::new();
        for round in 0..ROUNDS {
            if pending.is_empty() {
                return Ok(());
            }
            if round > 0 {
                tokio::time::sleep(Duration::from_millis(100 << round)).await;
            }
            let mut refused = Vec::new();
            for wave in pending.chunks(BATCH * CONCURRENT_BATCHES) {
                let mut sends = JoinSet::new();
                let mut batches = HashMap::new();
                for batch in wave.chunks(BATCH) {
                    let (bus, entries) = (self.clone(), batch.to_vec());
                    let task = sends.spawn(async move { bus.put_batch(&entries).await });
                    batches.insert(task.id(), batch);
                }
                while let Some(joined) = sends.join_next_with_id().await {
                    let (id, result) = match joined {
                        Ok((id, result)) => (id, result),
                        // A send that ended abnormally delivered nothing we know of.
                        Err(error) => (
                            error.id(),
                            Err(DrsError::new("InternalError", error.to_string(), true)),
                        ),
                    };
                    let batch = batches.remove(&id).unwrap_or_default();
                    match result {
                        Ok(failed) => {
                            for (index, error) in failed {
                                last_error = error;
                                refused.extend(batch.get(index).cloned());
                            }
                        }
                        Err(error) if !error.retryable => {
                            return Err(PublishError {
                                undelivered: pending.len(),
                                last_error: error.to_string(),
                            });
                        }
                        Err(error) => {
                            last_error = error.to_string();
                            refused.extend_from_slice(batch);
                        }
                    }
                }
            }
            if !refused.is_empty() {
                tracing::warn!(refused = refused.len(), round, error = %last_error, "outcome events refused, sending again");
            }
            pending = refused;
        }
        if pending.is_empty() {
            Ok(())
        } else {
            Err(PublishError {
                undelivered: pending.len(),
                last_error,
            })
        }
    }

    /// Sends one batch; answers which entries EventBridge refused, with its reason.
    async fn put_batch(&self, batch: &[OutboundEvent]) -> Result<Vec<(usize, String)>, DrsError> {
        let entries = batch
            .iter()
            .map(|event| {
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(&self.source)
                    .detail_type(event.detail_type)
                    .set_resources(Some(event.resources.clone()))
                    .detail(event.detail.clone())
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
        // Entries answer in request order; one missing from the answer counts as refused.
        Ok(batch
            .iter()
            .enumerate()
            .filter_map(|(i, _)| {
                let refused = match results.get(i) {
                    None => Some("no result for this entry".to_owned()),
                    Some(result)
                        if result.event_id().is_some() && result.error_code().is_none() =>
                    {
                        None
                    }
                    Some(result) => Some(format!(
                        "{}: {}",
                        result.error_code().unwrap_or("Unknown"),
                        result.error_message().unwrap_or("entry refused")
                    )),
                };
                refused.map(|why| (i, why))
            })
            .collect())
    }
}
