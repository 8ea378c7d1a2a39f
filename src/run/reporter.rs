//! Where every outcome goes as it happens: logged, counted, kept (bounded) for the
//! response, and handed to the event stream, which sends it within a second.
//!
//! Backpressure: a server's work starts only with a place under `unpublished`
//! (the run's concurrency plus one batch), given back once its outcome event is
//! out. So at any moment at most that many servers can be extended without a
//! published event, however slow the bus: a slow bus slows the run, and a process
//! that dies mid-run loses at most those.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::aws::event_bus::{EventBus, PublishError, Queued, BATCH};
use crate::domain::arn::{AccountId, Region};
use crate::domain::deadline::Deadline;
use crate::domain::failure::is_source_server_quota;
use crate::domain::outcome::{OutboundEvent, Outcome, Response, MAX_RESPONSE_OUTCOMES};
use crate::domain::scope::UnfinishedReason;
use crate::domain::trigger::Trigger;
use crate::domain::UNPOISONED;

/// Outcome events queued for sending at most; past it reporting waits.
const QUEUE: usize = 1_000;

/// The counts of one invocation's outcomes, and the ones its response shows.
#[derive(Debug, Default)]
pub struct Tally {
    pub created: usize,
    pub skipped: usize,
    pub failed: usize,
    pub rejected: usize,
    pub retryable: usize,
    /// Servers refused for the target account's quota on extended servers.
    pub quota_exceeded: usize,
    /// Requests refused for a region this function does not serve.
    pub region_not_served: usize,
    /// Servers created whose launch baseline was not applied.
    pub launch_baseline_failed: usize,
    /// Servers that failed, by staging account and region: what a run left
    /// unextended.
    pub failed_servers: BTreeMap<(AccountId, Region), usize>,
    /// Failures and rejections, then the rest, each at most the response's limit.
    problems: Vec<Outcome>,
    others: Vec<Outcome>,
}

impl Tally {
    pub fn counts(&self) -> crate::domain::summary::Counts {
        crate::domain::summary::Counts {
            created: self.created,
            skipped: self.skipped,
            failed: self.failed,
            rejected: self.rejected,
            launch_baseline_failed: self.launch_baseline_failed,
        }
    }

    fn add(&mut self, outcome: Outcome) {
        let counter = match &outcome {
            Outcome::Created { .. } => &mut self.created,
            Outcome::Skipped { .. } => &mut self.skipped,
            Outcome::Failed { .. } => &mut self.failed,
            Outcome::Rejected { .. } => &mut self.rejected,
        };
        *counter += 1;
        if outcome.is_retryable_failure() {
            self.retryable += 1;
        }
        if matches!(&outcome, Outcome::Failed { error_code, quota_code, .. }
            if is_source_server_quota(error_code, quota_code.as_deref()))
        {
            self.quota_exceeded += 1;
        }
        if matches!(&outcome, Outcome::Created { launch_baseline: Some(b), .. } if !b.applied) {
            self.launch_baseline_failed += 1;
        }
        if matches!(
            &outcome,
            Outcome::Rejected {
                region_not_served: true,
                ..
            }
        ) {
            self.region_not_served += 1;
        }
        if let Outcome::Failed { subject, .. } = &outcome {
            if let Some(arn) = &subject.staging_source_server_arn {
                *self
                    .failed_servers
                    .entry((arn.account().clone(), arn.region().clone()))
                    .or_default() += 1;
            }
        }
        let kept = match outcome {
            Outcome::Failed { .. } | Outcome::Rejected { .. } => &mut self.problems,
            _ => &mut self.others,
        };
        if kept.len() < MAX_RESPONSE_OUTCOMES {
            kept.push(outcome);
        }
    }

    pub fn total(&self) -> usize {
        self.created + self.skipped + self.failed + self.rejected
    }

    /// The response: the counts, and the outcomes that fit, problems first.
    pub fn into_response(self) -> Response {
        let total = self.total();
        let mut outcomes = self.problems;
        outcomes.extend(self.others);
        outcomes.truncate(MAX_RESPONSE_OUTCOMES);
        Response {
            outcomes_omitted: total - outcomes.len(),
            outcomes,
            created: self.created,
            skipped: self.skipped,
            failed: self.failed,
            rejected: self.rejected,
            quota_exceeded: self.quota_exceeded,
            region_not_served: self.region_not_served,
            launch_baseline_failed: self.launch_baseline_failed,
            ..Response::default()
        }
    }
}

/// A place under the run's bound on servers changed without a published event:
/// taken before a change is sent, held by its event until the stream has it out
/// or gives it up (the stream says so on the run's flag before it frees a place
/// it gave up on).
#[derive(Debug)]
pub struct Place(OwnedSemaphorePermit);

/// A handle that tasks report outcomes through.
#[derive(Clone)]
pub struct Reporter {
    tally: Arc<Mutex<Tally>>,
    events: mpsc::Sender<Queued>,
    trigger: Arc<Trigger>,
    unpublished: Arc<Semaphore>,
    given_up: Arc<AtomicBool>,
}

impl Reporter {
    /// Whether an outcome event was given up: from then on no create starts,
    /// so that at most the run's concurrency plus one batch of servers are ever
    /// extended without their event.
    pub fn events_given_up(&self) -> bool {
        self.given_up.load(Ordering::SeqCst)
    }

    /// The flag [`Reporter::events_given_up`] reads, for the calls that check it
    /// before every attempt they send.
    pub fn given_up_flag(&self) -> &Arc<AtomicBool> {
        &self.given_up
    }

    /// Admits one server's change: a place first (it waits while the bus is
    /// behind), then `also` (a limit of the caller's own), then what those waits
    /// may have changed: no change starts past the deadline or once an event was
    /// given up. Answers the place and what `also` gave, or why the server is not
    /// tried (its place then freed: nothing was changed).
    pub async fn admit<T>(
        &self,
        deadline: &Deadline,
        also: impl std::future::Future<Output = T>,
    ) -> Result<(Place, T), UnfinishedReason> {
        let place = self.unpublished.clone().acquire_owned().await;
        let place = Place(place.expect("the run's places are never closed"));
        let also = also.await;
        if deadline.reached() {
            return Err(UnfinishedReason::Deadline);
        }
        if self.events_given_up() {
            return Err(UnfinishedReason::EventsUndelivered);
        }
        Ok((place, also))
    }

    pub async fn report(&self, outcome: Outcome) {
        self.report_held(outcome, None).await
    }

    /// Reports an outcome whose server held `held` (from [`Reporter::admit`]).
    pub async fn report_held(&self, outcome: Outcome, held: Option<Place>) {
        log(&outcome);
        let event = outcome.event(&self.trigger);
        self.tally.lock().expect(UNPOISONED).add(outcome);
        // The stream takes events until every reporter is gone (its queue closes
        // only then), so a send cannot fail while a reporter can call it.
        let held = held.map(|place| place.0);
        let _ = self.events.send(Queued { event, held }).await;
    }

    /// Sends an event that is not a server's outcome (and so is not counted).
    pub async fn send(&self, event: OutboundEvent) {
        let _ = self.events.send(event.into()).await;
    }

    /// Sends an event that is not an outcome but tells of a change made to a
    /// server (a deletion), holding `held` until it is out, as an outcome would.
    pub async fn send_held(&self, event: OutboundEvent, held: Option<Place>) {
        let held = held.map(|place| place.0);
        let _ = self.events.send(Queued { event, held }).await;
    }

    /// The inbound event, as every emitted event cites it.
    pub fn trigger(&self) -> &Trigger {
        &self.trigger
    }
}

/// One invocation's outcome stream: reporters on one side, the bus on the other.
pub struct Reporting {
    reporter: Reporter,
    stream: JoinHandle<Result<(), PublishError>>,
}

impl Reporting {
    /// Starts the stream; at most `concurrency` + one batch of servers may be
    /// under way or waiting for their event; events are given up at `events_by`.
    pub fn start(
        bus: &EventBus,
        trigger: Trigger,
        concurrency: usize,
        events_by: Option<Instant>,
    ) -> Self {
        let (events, queued) = mpsc::channel(QUEUE);
        let unpublished = Arc::new(Semaphore::new(concurrency.max(1) + BATCH));
        let given_up = Arc::new(AtomicBool::new(false));
        let stream = tokio::spawn(
            bus.clone()
                .stream_holding(
                    queued,
                    events_by,
                    Some(unpublished.clone()),
                    given_up.clone(),
                )
                .in_current_span(),
        );
        Self {
            reporter: Reporter {
                tally: Arc::new(Mutex::new(Tally::default())),
                events,
                trigger: Arc::new(trigger),
                unpublished,
                given_up,
            },
            stream,
        }
    }

    pub fn reporter(&self) -> &Reporter {
        &self.reporter
    }

    /// Waits until every outcome event is sent (or given up on), then answers the
    /// counts. Call it once the run's tasks are done.
    pub async fn finish(self) -> (Tally, Result<(), PublishError>) {
        let Reporter { tally, events, .. } = self.reporter;
        drop(events);
        let delivered = self
            .stream
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        let tally = match Arc::try_unwrap(tally) {
            Ok(tally) => tally.into_inner().expect(UNPOISONED),
            // A reporter outlived the run (a task still holding one): take the counts.
            Err(shared) => std::mem::take(&mut *shared.lock().expect(UNPOISONED)),
        };
        (tally, delivered)
    }
}

/// One line per outcome; failures and rejections at warn. Never tag values.
fn log(outcome: &Outcome) {
    let subject = outcome.subject();
    let server = subject
        .staging_source_server_arn
        .as_ref()
        .map(ToString::to_string);
    match outcome {
        Outcome::Failed {
            error_code,
            retryable,
            ..
        } => tracing::warn!(
            status = outcome.status(),
            server,
            error_code,
            retryable,
            "outcome"
        ),
        Outcome::Rejected { reason, .. } => {
            tracing::warn!(status = outcome.status(), server, reason, "outcome")
        }
        Outcome::Skipped { reason, .. } => {
            tracing::info!(status = outcome.status(), server, reason = ?reason, "outcome")
        }
        _ => tracing::info!(status = outcome.status(), server, "outcome"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::aws_error::{AwsError, ErrorKind, Service};
    use crate::domain::outcome::Subject;

    use crate::domain::arn::example_server as arn;

    #[test]
    fn the_response_keeps_problems_first_and_counts_everything() {
        let mut tally = Tally::default();
        for _ in 0..MAX_RESPONSE_OUTCOMES + 5 {
            tally.add(Outcome::dry_run(&arn()));
        }
        tally.add(Outcome::failed(
            Subject::server(&arn()),
            AwsError::new(
                Service::Drs,
                "CreateExtendedSourceServer",
                ErrorKind::answered(500, Some("X"), None),
            )
            .with_message("y"),
        ));
        assert_eq!(tally.retryable, 1);
        let response = tally.into_response();
        assert_eq!(response.outcomes.len(), MAX_RESPONSE_OUTCOMES);
        assert_eq!(response.outcomes_omitted, 6);
        assert_eq!(response.outcomes[0].status(), "failed");
        assert_eq!(
            (response.skipped, response.failed),
            (MAX_RESPONSE_OUTCOMES + 5, 1)
        );
        let json = serde_json::to_value(&response).unwrap();
        assert_eq!(json["outcomes"][0]["status"], "failed");
        assert_eq!(json["outcomes"][0]["errorCode"], "X");
        assert_eq!(json["outcomes"][1]["status"], "skipped");
        assert_eq!(json["outcomesOmitted"], 6);
    }
}
