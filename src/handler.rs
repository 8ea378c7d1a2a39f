//! The invocation: classify the event once, act on what it asks, report every
//! outcome as an event, and fail the invocation when Lambda should retry it.

use std::collections::BTreeSet;

use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;

use crate::arn::{AccountId, Region};
use crate::authorize::{authorize, Trusted};
use crate::clients::Clients;
use crate::config::Config;
use crate::deadline::{Deadline, DEFAULT_MARGIN};
use crate::error::InvocationError;
use crate::event_bus::EventBus;
use crate::extend::{extend, ExtendSettings, Known};
use crate::inbound::{
    classify, Classified, ReconcileRequest, Rejection, Request, ServerRequest, Trigger,
};
use crate::metrics::InvocationMetrics;
use crate::outcome::{OutboundEvent, Outcome, Response, Subject};
use crate::reconcile::{self, Scope};

pub struct App {
    config: Config,
    clients: Clients,
    bus: EventBus,
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

impl App {
    pub fn new(config: Config, clients: Clients) -> Self {
        let bus = EventBus::new(
            clients.eventbridge().clone(),
            config.result_event_bus.clone(),
            config.result_event_source.clone(),
        );
        Self {
            config,
            clients,
            bus,
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
        self.note_arrival();
        let deadline = Deadline::from_epoch_ms(event.context.deadline, DEFAULT_MARGIN);
        let trusted = self.trusted_accounts(&event.context);
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
        let settings = self.settings(None);
        let (outcomes, summary) = match request {
            Request::Ignored(reason) => {
                tracing::info!(%reason, "event ignored");
                let response = Response::ignored(reason);
                self.record(&response);
                return Ok(response);
            }
            Request::Rejected(rejection) => (vec![Outcome::rejected(rejection)], None),
            Request::Servers(servers) => {
                let outcomes = self
                    .extend_servers(servers, sender.as_ref(), &trusted, &settings)
                    .await;
                (outcomes, None)
            }
            Request::ReconcileAccount { account, region } => {
                match authorize(&self.config, &account, sender.as_ref(), &trusted) {
                    Err(rejection) => (vec![Outcome::rejected(rejection)], None),
                    Ok(()) => {
                        let scope = Scope {
                            staging_account_id: account,
                            region,
                        };
                        let surveyed = reconcile::survey(&self.clients, vec![scope]).await;
                        self.reconcile(surveyed, Vec::new(), settings, deadline)
                            .await
                    }
                }
            }
            Request::Reconcile(request) => {
                let settings = self.settings(request.dry_run);
                let (scopes, refused) = self.coverage(&request, sender.as_ref(), &trusted).await;
                let surveyed = reconcile::survey(&self.clients, scopes).await;
                let fits =
                    reconcile::fits(&surveyed, self.config.drs_max_rps, deadline.remaining());
                if !request.fanned_out && !fits {
                    let mut summary = self.fan_out(&surveyed, settings.dry_run).await?;
                    summary.tally(&refused);
                    (refused, Some(summary))
                } else {
                    self.reconcile(surveyed, refused, settings, deadline).await
                }
            }
        };
        self.finish(outcomes, summary, &trigger).await
    }

    fn settings(&self, dry_run: Option<bool>) -> ExtendSettings {
        ExtendSettings {
            configured_tags: self.config.extension_tags.clone(),
            copy_staging_tags: self.config.copy_staging_tags,
            // A request may ask for a dry run; it may not lift a configured one.
            dry_run: self.config.dry_run || dry_run.unwrap_or(false),
        }
    }

    /// The target account (that of `TARGET_ROLE_ARN`, else the function's own)
    /// and the function's own account, from the invoked function's ARN.
    fn trusted_accounts(&self, context: &Context) -> Trusted {
        let own = context
            .invoked_function_arn
            .split(':')
            .nth(4)
            .and_then(|account| AccountId::parse(account).ok());
        let target = self
            .config
            .target_role
            .as_ref()
            .map(|role| role.account.clone());
        Trusted::new(target.or_else(|| own.clone()), own)
    }

    async fn extend_servers(
        &self,
        servers: Vec<Result<ServerRequest, Rejection>>,
        sender: Option<&AccountId>,
        trusted: &Trusted,
        settings: &ExtendSettings,
    ) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(servers.len());
        for server in servers {
            let outcome = match server {
                Err(rejection) => Outcome::rejected(rejection),
                Ok(server) => {
                    match authorize(&self.config, server.arn.account(), sender, trusted) {
                        Err(mut rejection) => {
                            rejection.staging_arn = Some(server.arn);
                            Outcome::rejected(rejection)
                        }
                        Ok(()) => {
                            let drs = self.clients.drs(server.arn.region());
                            extend(
                                &drs,
                                settings,
                                &server.arn,
                                server.tags.as_ref(),
                                Known::Unknown,
                            )
                            .await
                        }
                    }
                }
            };
            outcomes.push(outcome);
        }
        outcomes
    }

    /// Which accounts and regions a reconciliation covers, and the accounts it was
    /// asked for but may not touch.
    async fn coverage(
        &self,
        request: &ReconcileRequest,
        sender: Option<&AccountId>,
        trusted: &Trusted,
    ) -> (Vec<Scope>, Vec<Outcome>) {
        let regions: Vec<Region> = request
            .regions
            .clone()
            .unwrap_or_else(|| self.config.reconcile_regions.clone());
        let mut refused = Vec::new();
        let mut scopes = BTreeSet::new();
        let sender_is_trusted = trusted.contains(sender);
        for region in &regions {
            let accounts: Vec<AccountId> =
                match (&request.staging_accounts, &self.config.staging_account_ids) {
                    (Some(named), _) => named.clone(),
                    // Only a trusted account speaks for every staging account.
                    (None, _) if !sender_is_trusted => sender.cloned().into_iter().collect(),
                    (None, Some(allowlist)) => allowlist.iter().cloned().collect(),
                    (None, None) => match self.clients.drs(region).list_staging_accounts().await {
                        Ok(accounts) => accounts,
                        Err(error) => {
                            tracing::warn!(%region, %error, "could not list staging accounts");
                            let subject = Subject {
                                region: Some(region.clone()),
                                ..Subject::default()
                            };
                            refused.push(Outcome::failed(subject, error));
                            continue;
                        }
                    },
                };
            for account in accounts {
                match authorize(&self.config, &account, sender, trusted) {
                    Ok(()) => {
                        scopes.insert(Scope {
                            staging_account_id: account,
                            region: region.clone(),
                        });
                    }
                    Err(rejection) => {
                        let outcome = Outcome::rejected(rejection);
                        if !refused.contains(&outcome) {
                            refused.push(outcome);
                        }
                    }
                }
            }
        }
        (scopes.into_iter().collect(), refused)
    }

    async fn reconcile(
        &self,
        surveyed: Vec<reconcile::Surveyed>,
        mut before: Vec<Outcome>,
        settings: ExtendSettings,
        deadline: Deadline,
    ) -> (Vec<Outcome>, Option<reconcile::Summary>) {
        let report = reconcile::run(
            &self.clients,
            settings,
            surveyed,
            self.config.reconcile_concurrency,
            deadline,
        )
        .await;
        before.extend(report.outcomes);
        let mut summary = report.summary;
        summary.tally(&before);
        tracing::info!(
            examined = summary.examined,
            created = summary.created,
            skipped = summary.skipped,
            failed = summary.failed,
            complete = summary.complete,
            duration_ms = summary.duration_ms,
            "reconciliation finished"
        );
        (before, Some(summary))
    }

    /// Hands each staging account to an invocation of its own through the bus the
    /// function listens on, so Lambda's concurrency does the work.
    async fn fan_out(
        &self,
        surveyed: &[reconcile::Surveyed],
        dry_run: bool,
    ) -> Result<reconcile::Summary, InvocationError> {
        let requests = reconcile::fan_out_requests(surveyed, dry_run);
        let count = requests.len();
        tracing::info!(
            requests = count,
            scopes = surveyed.len(),
            "reconciliation fans out"
        );
        if let Err(error) = self.bus.publish(requests).await {
            return Err(InvocationError::OutcomesUndelivered {
                undelivered: error.undelivered,
                cause: error.last_error,
                summary: format!("fan-out of {count} reconciliation requests"),
            });
        }
        let scopes: Vec<Scope> = surveyed.iter().map(|s| s.scope.clone()).collect();
        let mut summary = reconcile::Summary::covering(&scopes, dry_run);
        summary.fanned_out = count;
        Ok(summary)
    }

    /// Publishes every outcome (and the summary last), then answers.
    async fn finish(
        &self,
        outcomes: Vec<Outcome>,
        summary: Option<reconcile::Summary>,
        trigger: &Trigger,
    ) -> Result<Response, InvocationError> {
        for outcome in &outcomes {
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
                _ => tracing::info!(status = outcome.status(), server, "outcome"),
            }
        }
        let mut events: Vec<OutboundEvent> = outcomes.iter().map(|o| o.event(trigger)).collect();
        events.extend(summary.as_ref().map(reconcile::Summary::event));
        let mut response = Response::from_outcomes(outcomes);
        response.reconciliation = summary.and_then(|s| serde_json::to_value(s).ok());
        let retryable = response.retryable_failures();
        response.limit_outcomes();
        self.record(&response);

        if let Err(error) = self.bus.publish(events).await {
            tracing::error!(undelivered = error.undelivered, error = %error.last_error, "outcome events undelivered");
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
        Ok(response)
    }
}
