//! The invocation: classify the event once, act on what it asks, report every
//! outcome as an event, and fail the invocation when Lambda should retry it.

use std::collections::BTreeSet;

use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;

use crate::aws::clients::Clients;
use crate::aws::event_bus::{EventBus, PublishError};
use crate::domain::arn::{AccountId, Region};
use crate::domain::config::Config;
use crate::domain::deadline::{self, Deadline};
use crate::domain::failure::{DrsError, DEADLINE_REACHED};
use crate::domain::outcome::{Outcome, Response, Subject};
use crate::domain::rejection::Rejection;
use crate::domain::scope::{Scope, Unfinished};
use crate::error::InvocationError;
use crate::inbound::authorize::{authorize, serves, Trusted};
use crate::inbound::classify::{classify, Classified, ReconcileRequest, Request, ServerRequest};
use crate::metrics::InvocationMetrics;
use crate::run::coverage::{self, CoverageReport};
use crate::run::extend::{extend_riding_out_throttling, ExtendSettings, Known, Refusals};
use crate::run::reconcile;
use crate::run::reporter::{Reporter, Reporting};
use crate::run::summary::{self, Summary};
use crate::run::survey;

pub struct App {
    config: Config,
    clients: Clients,
    bus: EventBus,
    fan_out_bus: EventBus,
    metrics: Option<MetricsSink>,
}

/// What a reconciliation leaves for the end of the invocation: its summary (the
/// counts are filled in last), what it left undone, and a fan-out that failed.
struct Reconciled {
    summary: Summary,
    unfinished: Vec<Unfinished>,
    fan_out_failed: Option<PublishError>,
    coverage: CoverageReport,
}

/// The accounts and regions a reconciliation covers.
struct Coverage {
    scopes: Vec<Scope>,
    regions: Vec<Region>,
    /// Regions whose staging accounts could not be listed.
    unfinished: Vec<Unfinished>,
    /// `ListStagingAccounts` was asked and named no account in any region.
    none_listed: bool,
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
        let trusted = self.trusted_accounts(&event.context).await;
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
        if let Request::Ignored(reason) = request {
            tracing::info!(%reason, "event ignored");
            let response = Response::ignored(reason);
            self.record(&response);
            return Ok(response);
        }
        let reporting = Reporting::start(
            &self.bus,
            trigger,
            self.config.reconcile_concurrency,
            deadline.events_by(),
        );
        let reporter = reporting.reporter().clone();
        let settings = self.settings(None, deadline);
        let reconciled = match request {
            Request::Ignored(_) => None,
            Request::Rejected(rejection) => {
                reporter.report(Outcome::rejected(rejection)).await;
                None
            }
            Request::Servers(servers) => {
                self.extend_servers(servers, sender.as_ref(), &trusted, &settings, &reporter)
                    .await;
                None
            }
            Request::ReconcileAccount { account, region } => {
                let allowed = serves(&self.config, &region, Some(&account))
                    .and_then(|()| authorize(&self.config, &account, sender.as_ref(), &trusted));
                match allowed {
                    Err(rejection) => {
                        reporter.report(Outcome::rejected(rejection)).await;
                        None
                    }
                    Ok(()) => {
                        let coverage = Coverage {
                            scopes: vec![Scope {
                                staging_account_id: account,
                                region: region.clone(),
                            }],
                            regions: vec![region],
                            unfinished: Vec::new(),
                            none_listed: false,
                        };
                        Some(
                            self.reconcile(coverage, false, settings, deadline, &reporter)
                                .await,
                        )
                    }
                }
            }
            Request::Reconcile(request) => match self.requested_regions(&request) {
                Err(rejection) => {
                    reporter.report(Outcome::rejected(rejection)).await;
                    None
                }
                Ok(regions) => {
                    let settings = self.settings(request.dry_run, deadline);
                    let coverage = self
                        .coverage(
                            &request,
                            regions,
                            sender.as_ref(),
                            &trusted,
                            deadline,
                            &reporter,
                        )
                        .await;
                    Some(
                        self.reconcile(coverage, request.fanned_out, settings, deadline, &reporter)
                            .await,
                    )
                }
            },
        };
        drop(reporter);
        self.finish(reporting, reconciled, started, deadline).await
    }

    fn settings(&self, dry_run: Option<bool>, deadline: Deadline) -> ExtendSettings {
        ExtendSettings {
            deadline,
            configured_tags: self.config.extension_tags.clone(),
            copy_staging_tags: self.config.copy_staging_tags,
            // A request may ask for a dry run; it may not lift a configured one.
            dry_run: self.config.dry_run || dry_run.unwrap_or(false),
        }
    }

    /// The target account (that of `TARGET_ROLE_ARN`, else the function's own)
    /// and the function's own account: the invoked function's ARN's, where it
    /// names one, else that of the function's credentials (local emulators make
    /// the ARN up: cargo lambda sends `function-arn`).
    async fn trusted_accounts(&self, context: &Context) -> Trusted {
        let named = context
            .invoked_function_arn
            .split(':')
            .nth(4)
            .and_then(|account| AccountId::parse(account).ok());
        let own = match named {
            Some(account) => Some(account),
            None => self.clients.own_account().await,
        };
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
        reporter: &Reporter,
    ) {
        // The servers after a refusal no retry changes are not tried.
        let refused = Refusals::default();
        for server in servers {
            let mut held = None;
            let outcome = match server {
                Err(rejection) => Outcome::rejected(rejection),
                Ok(server) => {
                    let account = server.arn.account();
                    let region = server.arn.region();
                    let allowed = serves(&self.config, region, Some(account))
                        .and_then(|()| authorize(&self.config, account, sender, trusted));
                    let earlier = refused.met(account, region).map(|met| met.code);
                    match (allowed, self.clients.drs(region), earlier) {
                        (Ok(()), _, _) if settings.deadline.reached() => Outcome::failed(
                            Subject::server(&server.arn),
                            DrsError::new(
                                DEADLINE_REACHED,
                                "not tried: the invocation's deadline came first",
                                true,
                            ),
                        ),
                        (Ok(()), Some(_), Some(code)) => Outcome::failed(
                            Subject::server(&server.arn),
                            DrsError::new(
                                code,
                                "not tried: DRS refused an earlier create of this invocation \
                                 in the same region for a reason no retry changes",
                                false,
                            ),
                        ),
                        (Ok(()), Some(drs), None) => {
                            // A place for its event before anything is created.
                            held = reporter.reserve().await;
                            let outcome = extend_riding_out_throttling(
                                &drs,
                                settings,
                                &server.arn,
                                server.tags.as_ref(),
                                Known::Unknown,
                            )
                            .await;
                            refused.note(&server.arn, &outcome);
                            outcome
                        }
                        (Err(mut rejection), _, _) => {
                            rejection.staging_arn = Some(server.arn);
                            Outcome::rejected(rejection)
                        }
                        (Ok(()), None, _) => Outcome::rejected(Rejection::new(format!(
                            "region {} is not served by this function",
                            server.arn.region()
                        ))),
                    }
                }
            };
            reporter.report_held(outcome, held).await;
        }
    }

    /// The regions a request asks for, all of them served, or its rejection.
    fn requested_regions(&self, request: &ReconcileRequest) -> Result<Vec<Region>, Rejection> {
        let Some(regions) = &request.regions else {
            return Ok(self.config.reconcile_regions.clone());
        };
        for region in regions {
            serves(&self.config, region, None)?;
        }
        Ok(regions.clone())
    }

    /// Which accounts and regions a reconciliation covers. Accounts it was asked
    /// for but may not touch, and failed listings of staging accounts, are
    /// reported as they are found.
    async fn coverage(
        &self,
        request: &ReconcileRequest,
        regions: Vec<Region>,
        sender: Option<&AccountId>,
        trusted: &Trusted,
        deadline: Deadline,
        reporter: &Reporter,
    ) -> Coverage {
        let mut refused = BTreeSet::new();
        let mut scopes = BTreeSet::new();
        let mut unfinished = Vec::new();
        let (mut asked, mut listed_accounts) = (false, 0);
        let sender_is_trusted = trusted.contains(sender);
        for region in &regions {
            let accounts: Vec<AccountId> =
                match (&request.staging_accounts, &self.config.staging_account_ids) {
                    (Some(named), _) => named.clone(),
                    // Only a trusted account speaks for every staging account.
                    (None, _) if !sender_is_trusted => sender.cloned().into_iter().collect(),
                    (None, Some(allowlist)) => allowlist.iter().cloned().collect(),
                    (None, None) => {
                        let listed = match self.clients.drs(region) {
                            Some(drs) => drs.list_staging_accounts(deadline).await,
                            None => continue,
                        };
                        asked = true;
                        match listed {
                            Ok(accounts) => {
                                listed_accounts += accounts.len();
                                accounts
                            }
                            Err(error) => {
                                tracing::warn!(%region, %error, "could not list staging accounts");
                                unfinished.push(Unfinished {
                                    staging_account_id: None,
                                    region: region.clone(),
                                    reason: summary::STAGING_ACCOUNTS_NOT_LISTED,
                                });
                                if !error.is_deadline() {
                                    let subject = Subject {
                                        region: Some(region.clone()),
                                        ..Subject::default()
                                    };
                                    reporter.report(Outcome::failed(subject, error)).await;
                                }
                                continue;
                            }
                        }
                    }
                };
            for account in accounts {
                match authorize(&self.config, &account, sender, trusted) {
                    Ok(()) => {
                        scopes.insert(Scope {
                            staging_account_id: account,
                            region: region.clone(),
                        });
                    }
                    Err(rejection) if refused.insert(account) => {
                        reporter.report(Outcome::rejected(rejection)).await;
                    }
                    Err(_) => {}
                }
            }
        }
        Coverage {
            none_listed: asked && listed_accounts == 0 && unfinished.is_empty(),
            scopes: scopes.into_iter().collect(),
            regions,
            unfinished,
        }
    }

    /// Surveys the covered accounts, then works them here or, when the work does
    /// not fit in this invocation, hands each account to an invocation of its own.
    async fn reconcile(
        &self,
        coverage: Coverage,
        fanned_out: bool,
        settings: ExtendSettings,
        deadline: Deadline,
        reporter: &Reporter,
    ) -> Reconciled {
        let Coverage {
            scopes,
            regions,
            mut unfinished,
            none_listed,
        } = coverage;
        let mut summary = Summary::covering(&scopes, &regions, settings.dry_run);
        if none_listed {
            tracing::warn!(
                reason = summary::NO_STAGING_ACCOUNT_LISTED,
                "the reconciliation covers no staging account"
            );
            summary.nothing_to_cover = Some(summary::NO_STAGING_ACCOUNT_LISTED);
        }
        let keep_tags = settings.copy_staging_tags && !settings.dry_run;
        let surveyed = survey::survey(&self.clients, scopes, deadline, keep_tags).await;
        let fits = survey::fits(&surveyed, self.config.drs_max_rps, deadline.remaining());
        if !fanned_out && !fits {
            let (accounts, requests) = survey::fan_out_requests(&surveyed, settings.dry_run);
            tracing::info!(
                requests = requests.len(),
                scopes = surveyed.len(),
                "reconciliation fans out"
            );
            let (delivered, last_error) = self
                .fan_out_bus
                .publish_each(requests, deadline.events_by())
                .await;
            summary.fanned_out = delivered.iter().filter(|d| **d).count();
            // An account whose request the bus did not take was handed to no one.
            for ((account, regions), delivered) in accounts.iter().zip(&delivered) {
                if !delivered {
                    unfinished.extend(regions.iter().map(|region| Unfinished {
                        staging_account_id: Some(account.clone()),
                        region: region.clone(),
                        reason: summary::FAN_OUT_UNDELIVERED,
                    }));
                }
            }
            let undelivered = delivered.iter().filter(|d| !**d).count();
            let fan_out_failed = (undelivered > 0).then_some(PublishError {
                undelivered,
                last_error,
            });
            // Each account handed on reads its own coverage; this run reads the rest.
            let kept: Vec<Scope> = surveyed
                .iter()
                .filter(|s| !s.has_work())
                .map(|s| s.scope.clone())
                .collect();
            let coverage = coverage::read(&self.clients, &kept, deadline, reporter).await;
            return Reconciled {
                summary,
                unfinished,
                fan_out_failed,
                coverage,
            };
        }
        let worked: Vec<Scope> = surveyed.iter().map(|s| s.scope.clone()).collect();
        let report = reconcile::run(
            &self.clients,
            settings,
            surveyed,
            self.config.reconcile_concurrency,
            deadline,
            reporter,
        )
        .await;
        summary.examined = report.examined;
        unfinished.extend(report.unfinished);
        // After the work, so what this run extended counts as covered.
        let coverage = coverage::read(&self.clients, &worked, deadline, reporter).await;
        Reconciled {
            summary,
            unfinished,
            fan_out_failed: None,
            coverage,
        }
    }

    /// Waits for every outcome event, then sends the summary (last), and answers.
    async fn finish(
        &self,
        reporting: Reporting,
        reconciled: Option<Reconciled>,
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
        }) = reconciled
        {
            closed.close(&tally, unfinished, started.elapsed().as_millis() as u64);
            closed.extended = coverage.extended();
            closed.extension_errors = coverage.extension_errors();
            closed.coverage_unread = coverage.unread;
            per_scope = coverage.scopes;
            for scope in &mut per_scope {
                let key = (scope.staging_account_id.clone(), scope.region.clone());
                scope.not_extended = tally.failed_servers.get(&key).copied().unwrap_or(0);
            }
            tracing::info!(
                examined = closed.examined,
                created = closed.created,
                skipped = closed.skipped,
                failed = closed.failed,
                complete = closed.complete,
                extended = closed.extended,
                extension_errors = closed.extension_errors,
                fanned_out = closed.fanned_out,
                duration_ms = closed.duration_ms,
                "reconciliation finished"
            );
            let sent = self
                .bus
                .publish(vec![closed.event()], deadline.answer_by())
                .await;
            delivered = merge(merge(delivered, fan_out_failed.map_or(Ok(()), Err)), sent);
            summary = Some(closed);
        }
        let retryable = tally.retryable;
        let mut response = tally.into_response();
        response.reconciliation = summary.and_then(|s| serde_json::to_value(s).ok());
        response.coverage = per_scope;
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
        Ok(response)
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
