//! The invocation: classify the event once, act on what it asks, report every
//! outcome as an event, and fail the invocation when Lambda should retry it.

use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;

use crate::aws::clients::Clients;
use crate::aws::event_bus::{EventBus, PublishError};
use crate::domain::arn::AccountId;
use crate::domain::config::Config;
use crate::domain::deadline::{self, Deadline};
use crate::domain::outcome::{Outcome, Response};
use crate::domain::scope::Unfinished;
use crate::domain::scope::UnfinishedReason;
use crate::error::InvocationError;
use crate::inbound::authorize::Trusted;
use crate::inbound::classify::{classify, Classified, Request};
use crate::metrics::InvocationMetrics;
use crate::run::extend::ExtendSettings;
use crate::run::launch::LaunchRules;
use crate::run::reporter::{Reporter, Reporting};

mod reconciliation;
mod servers;

use reconciliation::Reconciled;

pub struct App {
    config: Config,
    clients: Clients,
    bus: EventBus,
    fan_out_bus: EventBus,
    metrics: Option<MetricsSink>,
}

/// Where invocation metrics go in Lambda (EMF lines on stdout), and what a cold
/// start is measured from.
struct MetricsSink {
    function_name: String,
    process_started: std::time::Instant,
    /// Milliseconds from process start to the first event.
    first_event_ms: std::sync::OnceLock<u64>,
    /// Whether the cold start was reported (with the first invocation's metrics).
    cold_start_reported: std::sync::atomic::AtomicBool,
}

/// Who asks, and what the invocation's work is bounded and labelled by.
struct Asked<'a> {
    /// The envelope's `account`.
    sender: Option<AccountId>,
    trusted: Trusted,
    deadline: Deadline,
    /// Lambda's, for `made_by`.
    request_id: &'a str,
    launch: LaunchRules,
}

impl App {
    pub fn new(config: Config, clients: Clients) -> Self {
        let bus = EventBus::new(
            clients.eventbridge().clone(),
            config.result_event_bus.clone(),
            config.result_event_source.clone(),
        );
        let fan_out_bus = EventBus::new(
            clients.fan_out_eventbridge().clone(),
            config.fan_out_event_bus.clone(),
            config.result_event_source.clone(),
        );
        Self {
            config,
            clients,
            bus,
            fan_out_bus,
            metrics: None,
        }
    }

    /// Emits an Embedded Metric Format line per invocation (off in tests, which
    /// read the response instead).
    pub fn with_metrics(
        mut self,
        function_name: String,
        process_started: std::time::Instant,
    ) -> Self {
        self.metrics = Some(MetricsSink {
            function_name,
            process_started,
            first_event_ms: std::sync::OnceLock::new(),
            cold_start_reported: std::sync::atomic::AtomicBool::new(false),
        });
        self
    }

    /// Notes, on the first event only, how long the process took to get to it.
    fn note_arrival(&self) {
        if let Some(sink) = &self.metrics {
            sink.first_event_ms
                .get_or_init(|| sink.process_started.elapsed().as_millis() as u64);
        }
    }

    fn record(&self, response: &Response) {
        let Some(sink) = &self.metrics else { return };
        let mut metrics = InvocationMetrics::from_response(response);
        if !sink
            .cold_start_reported
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            metrics.cold_start_ms = sink.first_event_ms.get().copied();
        }
        metrics.emit(&sink.function_name);
    }

    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Response, InvocationError> {
        let started = std::time::Instant::now();
        self.note_arrival();
        let deadline = Deadline::from_epoch_ms(
            event.context.deadline,
            deadline::in_flight(self.clients.policy().operation_timeout),
        );
        let trusted = self.trusted_accounts(&event.context, &deadline).await;
        let Classified {
            trigger,
            sender,
            request,
        } = classify(&event.payload);
        tracing::info!(
            event_id = trigger.id.as_deref().unwrap_or("-"),
            source = trigger.source.as_deref().unwrap_or("-"),
            detail_type = trigger.detail_type.as_deref().unwrap_or("-"),
            "event received"
        );
        let asked = Asked {
            sender,
            trusted,
            deadline,
            request_id: &event.context.request_id,
            launch: self.launch_rules(&event.payload),
        };
        // An ignored event starts no reporting: it sends nothing.
        let start_reporting = || {
            let (concurrency, events_by) =
                (self.config.reconcile_concurrency, deadline.events_by());
            Reporting::start(&self.bus, trigger, concurrency, events_by)
        };
        let (reporting, reconciled, not_tried) = match request {
            Request::Ignored(reason) => return Ok(self.ignore(reason)),
            Request::Rejected(rejection) => {
                let reporting = start_reporting();
                let outcome = Outcome::rejected(rejection);
                reporting.reporter().report(outcome).await;
                (reporting, None, Vec::new())
            }
            Request::Servers(servers) => {
                let reporting = start_reporting();
                let reporter = reporting.reporter();
                let not_tried = self.extend_servers(servers, &asked, reporter).await;
                (reporting, None, not_tried)
            }
            Request::ReconcileAccount { account, region } => {
                let reporting = start_reporting();
                let reporter = reporting.reporter();
                let reconciled = self
                    .reconcile_account(account, region, &asked, reporter)
                    .await;
                (reporting, reconciled, Vec::new())
            }
            Request::Reconcile(request) => {
                let reporting = start_reporting();
                let reporter = reporting.reporter();
                let reconciled = self.reconcile_requested(request, &asked, reporter).await;
                (reporting, reconciled, Vec::new())
            }
        };
        self.finish(reporting, reconciled, not_tried, started, deadline)
            .await
    }

    /// Answers an event the function does not act on.
    fn ignore(&self, reason: String) -> Response {
        tracing::info!(%reason, "event ignored");
        let response = Response::ignored(reason);
        self.record(&response);
        response
    }

    /// What a run's work is told: the deadline, what it is labelled with, and
    /// whether a dry run was asked for (it may not lift a configured one).
    fn settings(
        &self,
        dry_run: Option<bool>,
        asked: &Asked<'_>,
        reporter: &Reporter,
    ) -> ExtendSettings {
        ExtendSettings {
            deadline: asked.deadline,
            made_by: made_by(asked.request_id),
            stop: reporter.given_up_flag().clone(),
            configured_tags: self.config.extension_tags.clone(),
            copy_staging_tags: self.config.copy_staging_tags,
            dry_run: self.config.dry_run || dry_run.unwrap_or(false),
            // One per invocation: what it reads once (tagged subnets) is this run's.
            baseline: self
                .config
                .launch_baseline
                .clone()
                .map(|rules| std::sync::Arc::new(crate::run::baseline::Baseline::new(rules))),
        }
    }

    /// The target account (that of `TARGET_ROLE_ARN`, else the function's own)
    /// and the function's own account: the invoked function's ARN's, where it
    /// names one, else that of the function's credentials (local emulators make
    /// the ARN up: cargo lambda sends `function-arn`).
    async fn trusted_accounts(&self, context: &Context, deadline: &Deadline) -> Trusted {
        let named = context
            .invoked_function_arn
            .split(':')
            .nth(4)
            .and_then(|account| AccountId::parse(account).ok());
        let own = match named {
            Some(account) => Some(account),
            // STS is the other side too: its wait is cut where DRS calls are.
            None => {
                let cut =
                    deadline::cut(self.clients.policy().operation_timeout, deadline.calls_by());
                let asked = tokio::time::timeout_at(cut, self.clients.own_account()).await;
                asked.unwrap_or_else(|_| {
                    tracing::warn!(
                        "STS did not say the function's own account before the deadline"
                    );
                    None
                })
            }
        };
        let target = self
            .config
            .target_role
            .as_ref()
            .map(|role| role.account.clone());
        Trusted::new(target.or_else(|| own.clone()), own)
    }

    /// Waits for every outcome event, then sends the summary (last), and answers.
    async fn finish(
        &self,
        reporting: Reporting,
        reconciled: Option<Reconciled>,
        not_tried: Vec<Unfinished>,
        started: std::time::Instant,
        deadline: Deadline,
    ) -> Result<Response, InvocationError> {
        let (tally, mut delivered) = reporting.finish().await;
        let mut summary = None;
        let mut per_scope = Vec::new();
        if let Some(Reconciled {
            summary: mut closed,
            unfinished,
            fan_out_failed,
            coverage,
            quota,
            launch,
        }) = reconciled
        {
            closed.close(
                tally.counts(),
                unfinished,
                started.elapsed().as_millis() as u64,
            );
            closed.extended = coverage.extended();
            closed.extension_errors = coverage.extension_errors();
            (closed.ready, closed.syncing, closed.not_ready) = coverage.readiness();
            closed.not_ready_unsent = coverage.not_ready_unsent;
            closed.stale_deleted = coverage.stale_deleted;
            closed.coverage_unread = coverage.unread;
            closed.quota = quota;
            closed.launch = launch.total();
            closed.launch_not_ready_unsent = launch.not_ready_unsent;
            per_scope = coverage.scopes;
            for scope in &mut per_scope {
                let key = (scope.staging_account_id.clone(), scope.region.clone());
                scope.not_extended = tally.failed_servers.get(&key).copied().unwrap_or(0);
                scope.launch = launch.scopes.get(&key).cloned().unwrap_or_default();
            }
            tracing::info!(
                examined = closed.examined,
                created = closed.created,
                skipped = closed.skipped,
                failed = closed.failed,
                complete = closed.complete,
                extended = closed.extended,
                extension_errors = closed.extension_errors,
                ready = closed.ready,
                syncing = closed.syncing,
                not_ready = closed.not_ready,
                fanned_out = closed.fanned_out,
                duration_ms = closed.duration_ms,
                "reconciliation finished"
            );
            let sent = self
                .bus
                .publish(
                    vec![crate::run::summary::completed_event(&closed)],
                    deadline.answer_by(),
                )
                .await;
            delivered = merge(merge(delivered, fan_out_failed.map_or(Ok(()), Err)), sent);
            summary = Some(closed);
        }
        let retryable = tally.retryable;
        let mut response = tally.into_response();
        response.reconciliation = summary;
        response.coverage = per_scope;
        // Servers an event named that the deadline kept from being tried: Lambda's
        // retry of the event tries them.
        let unreached = not_tried
            .iter()
            .filter(|u| u.reason == UnfinishedReason::Deadline)
            .count();
        response.unfinished = not_tried;
        self.record(&response);
        if let Err(error) = delivered {
            tracing::error!(undelivered = error.undelivered, error = %error.last_error, "events undelivered");
            return Err(InvocationError::OutcomesUndelivered {
                undelivered: error.undelivered,
                cause: error.last_error,
                summary: response.summary(),
            });
        }
        if retryable > 0 {
            return Err(InvocationError::RetryableFailures {
                failed: retryable,
                summary: response.summary(),
            });
        }
        if unreached > 0 {
            return Err(InvocationError::NotReached {
                servers: unreached,
                summary: response.summary(),
            });
        }
        Ok(response)
    }
}

/// The value of the `drs-extender:request-id` tag on what this invocation
/// creates: Lambda's request id, which a retry of the same invocation keeps (so
/// the retry reports `created`, and sends the event, for what an earlier
/// attempt made and may not have reported). An emulator may send none.
fn made_by(request_id: &str) -> String {
    let usable = !request_id.is_empty()
        && request_id.len() <= crate::domain::tags::MAX_VALUE_LEN
        && request_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/=+@".contains(c));
    if usable {
        request_id.to_owned()
    } else {
        format!("local-{:016x}", fastrand::u64(..))
    }
}

/// Both results' undelivered events, the later cause kept.
fn merge(a: Result<(), PublishError>, b: Result<(), PublishError>) -> Result<(), PublishError> {
    match (a, b) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(e), Ok(())) | (Ok(()), Err(e)) => Err(e),
        (Err(a), Err(b)) => Err(PublishError {
            undelivered: a.undelivered + b.undelivered,
            last_error: b.last_error,
        }),
    }
}
