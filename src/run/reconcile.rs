//! Reconciliation: every extensible server of the covered staging accounts and
//! regions is extended. Accounts are worked on concurrently; creates share one
//! limit on calls in flight; each region's DRS client keeps its own pace.
//!
//! DRS's page tokens are opaque: one may be a cursor, an offset into a list that
//! shrinks as servers are extended, or expire. So an account is swept, listed to
//! the end, again and again until a sweep finds no server not yet tried; each
//! server is tried at most once a run.

use std::collections::HashSet;
use std::panic::resume_unwind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::aws::clients::Clients;
use crate::aws::drs::{Following, Pages, TargetDrs};
use crate::aws::ec2::TargetEc2;
use crate::domain::arn::SourceServerArn;
use crate::domain::aws_error::AwsError;
use crate::domain::deadline::Deadline;
use crate::domain::outcome::{Outcome, Subject};
use crate::domain::rejection::Rejection;
use crate::domain::scope::UnfinishedReason;
use crate::domain::scope::{Scope, Unfinished};
use crate::run::extend::{extend, ExtendSettings, Extension, Known, Refusals};
use crate::run::reporter::Reporter;
use crate::run::survey::{Listing, Surveyed, LISTINGS_AT_ONCE};

/// What a run did besides its outcomes, which went to the reporter.
#[derive(Debug, Default)]
pub struct RunReport {
    pub examined: usize,
    pub unfinished: Vec<Unfinished>,
}

struct ScopeReport {
    examined: usize,
    unfinished: Option<UnfinishedReason>,
}

/// What every scope of a run shares.
struct Shared {
    settings: ExtendSettings,
    creates: Arc<Semaphore>,
    deadline: Deadline,
    reporter: Reporter,
    refused: Refusals,
}

pub async fn run(
    clients: &Clients,
    settings: ExtendSettings,
    surveyed: Vec<Surveyed>,
    concurrency: usize,
    deadline: Deadline,
    reporter: &Reporter,
) -> RunReport {
    let shared = Arc::new(Shared {
        settings,
        creates: Arc::new(Semaphore::new(concurrency.max(1))),
        deadline,
        reporter: reporter.clone(),
        refused: Refusals::default(),
    });
    let mut report = RunReport::default();
    let mut tasks = JoinSet::new();
    let at_once = Arc::new(Semaphore::new(LISTINGS_AT_ONCE));
    for surveyed in surveyed {
        let Some(drs) = clients.drs(&surveyed.scope.region) else {
            continue;
        };
        let ec2 = clients.ec2(&surveyed.scope.region);
        let (shared, at_once) = (shared.clone(), at_once.clone());
        tasks.spawn(
            async move {
                let _working = at_once.acquire_owned().await;
                let scope = surveyed.scope.clone();
                (scope, reconcile_scope(drs, ec2, shared, surveyed).await)
            }
            .in_current_span(),
        );
    }
    while let Some(joined) = tasks.join_next().await {
        let (scope, scope_report) = joined.unwrap_or_else(|e| resume_unwind(e.into_panic()));
        report.examined += scope_report.examined;
        if let Some(reason) = scope_report.unfinished {
            report.unfinished.push(Unfinished::scope(&scope, reason));
        }
    }
    report
}

/// Sweeps after which an account still showing new servers is left unfinished.
const MAX_SWEEPS: usize = 20;

async fn reconcile_scope(
    drs: TargetDrs,
    ec2: Option<TargetEc2>,
    shared: Arc<Shared>,
    surveyed: Surveyed,
) -> ScopeReport {
    let Surveyed { scope, first } = surveyed;
    let mut report = ScopeReport {
        examined: 0,
        unfinished: None,
    };
    let mut start = match first {
        Listing::Listed { page, .. } => page,
        Listing::Failed(error) => {
            listing_failed(&shared.reporter, &scope, error).await;
            report.unfinished = Some(UnfinishedReason::ListingFailed);
            return report;
        }
        Listing::NotReached => {
            report.unfinished = Some(UnfinishedReason::Deadline);
            return report;
        }
    };
    let mut tried: HashSet<String> = HashSet::new();
    let mut in_flight = InFlight::default();
    // Set by a server whose create the deadline did not let through, or that a
    // given-up event held back.
    let not_reached = Arc::new(AtomicBool::new(false));
    let withheld = Arc::new(AtomicBool::new(false));
    let keep_tags = shared.settings.copy_staging_tags && !shared.settings.dry_run;
    let result = 'sweeps: {
        for _ in 0..MAX_SWEEPS {
            let mut found_new = false;
            let mut followed_a_token = false;
            let mut cut_short = false;
            let mut token: Option<String> = None;
            let mut pages = Pages::default();
            loop {
                let page = match start.take() {
                    Some(page) => page,
                    None => {
                        if shared.deadline.reached() {
                            break 'sweeps Some(UnfinishedReason::Deadline);
                        }
                        let listed = drs
                            .list_extensible(
                                &scope.staging_account_id,
                                token.clone(),
                                keep_tags,
                                &shared.deadline,
                            )
                            .await;
                        match listed {
                            Ok(page) => page,
                            // DRS no longer takes its own token (it expired): end the
                            // sweep here; the next starts from the first page.
                            Err(error) if token.is_some() && is_token_refusal(&error) => {
                                tracing::warn!(account = %scope.staging_account_id, region = %scope.region, %error, "page token refused; the next sweep starts over");
                                cut_short = true;
                                break;
                            }
                            Err(error) => {
                                listing_failed(&shared.reporter, &scope, error).await;
                                break 'sweeps Some(UnfinishedReason::ListingFailed);
                            }
                        }
                    }
                };
                for server in page.items {
                    if !tried.insert(server.arn.clone()) {
                        continue;
                    }
                    found_new = true;
                    report.examined += 1;
                    let staging = match listed_arn(&server.arn, &scope) {
                        Ok(arn) => arn,
                        Err(rejection) => {
                            shared.reporter.report(Outcome::rejected(rejection)).await;
                            continue;
                        }
                    };
                    // A place for its event, then one among the creates in flight.
                    let creating = shared.creates.clone().acquire_owned();
                    let (held, permit) =
                        match shared.reporter.admit(&shared.deadline, creating).await {
                            Ok(admitted) => admitted,
                            Err(reason) => break 'sweeps Some(reason),
                        };
                    let met = shared.refused.met(&scope.staging_account_id, &scope.region);
                    if let Some(met) = met {
                        break 'sweeps Some(met.refusal.reason());
                    }
                    let (drs, ec2, task, not_reached, withheld) = (
                        drs.clone(),
                        ec2.clone(),
                        shared.clone(),
                        not_reached.clone(),
                        withheld.clone(),
                    );
                    in_flight.spawn(async move {
                        let mut extension = extend(
                            &drs,
                            &task.settings,
                            &staging,
                            server.tags.as_ref(),
                            Known::NotExtended,
                        )
                        .await;
                        drop(permit);
                        // After the create's permit (EC2 is not DRS's rate), but
                        // before the event: `held` covers these calls.
                        task.settings
                            .apply_baseline(&mut extension, &drs, ec2.as_ref())
                            .await;
                        match extension {
                            Extension::Done(outcome) => {
                                task.refused.note(&staging, &outcome);
                                task.reporter.report_held(*outcome, Some(held)).await;
                            }
                            Extension::NotReached(UnfinishedReason::EventsUndelivered) => {
                                withheld.store(true, Ordering::SeqCst)
                            }
                            Extension::NotReached(_) => not_reached.store(true, Ordering::SeqCst),
                        }
                    });
                    in_flight.settle_finished();
                }
                match pages.follow(page.next_token) {
                    Following::Done => break,
                    Following::Next(next) => token = Some(next),
                    // Servers past where DRS repeated itself were never seen.
                    Following::Stopped(reason) => {
                        tracing::warn!(account = %scope.staging_account_id, region = %scope.region, %reason, "listing stopped short");
                        break 'sweeps Some(reason);
                    }
                }
                followed_a_token = true;
            }
            // A sweep ends with nothing in flight, so the next one lists a list
            // that no longer changes under it because of this run.
            in_flight.settle_all().await;
            match (found_new, followed_a_token || cut_short) {
                // One page is the whole list at one moment: nothing was skipped.
                (_, false) => break 'sweeps None,
                // Across pages, only a whole sweep that finds nothing new proves it.
                (false, true) if !cut_short => break 'sweeps None,
                // Servers past the pages DRS would page to were never seen.
                (false, true) => break 'sweeps Some(UnfinishedReason::PageTokenRefused),
                (true, true) => {}
            }
        }
        Some(UnfinishedReason::StillChanging)
    };
    in_flight.settle_all().await;
    report.unfinished = match result {
        // The servers held back are the run's first loss.
        None | Some(UnfinishedReason::StillChanging) if withheld.load(Ordering::SeqCst) => {
            Some(UnfinishedReason::EventsUndelivered)
        }
        None | Some(UnfinishedReason::StillChanging) if not_reached.load(Ordering::SeqCst) => {
            Some(UnfinishedReason::Deadline)
        }
        other => other,
    };
    report
}

/// DRS refusing a page token it gave (expired): a `ValidationException`. Any other
/// refusal of a later page is a failed listing like the first page's.
fn is_token_refusal(error: &AwsError) -> bool {
    error.code() == "ValidationException"
}

async fn listing_failed(reporter: &Reporter, scope: &Scope, error: AwsError) {
    tracing::warn!(account = %scope.staging_account_id, region = %scope.region, %error, "could not list extensible servers");
    let subject = Subject::account(&scope.staging_account_id, Some(&scope.region));
    reporter.report(Outcome::failed(subject, error)).await;
}

/// Extensions under way; each reports its own outcome.
#[derive(Default)]
struct InFlight(JoinSet<()>);

impl InFlight {
    fn spawn(&mut self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        self.0.spawn(work.in_current_span());
    }

    /// Drops the tasks that have finished, without waiting, so that memory does
    /// not grow with the number of servers.
    fn settle_finished(&mut self) {
        while let Some(joined) = self.0.try_join_next() {
            joined.unwrap_or_else(|e| resume_unwind(e.into_panic()));
        }
    }

    async fn settle_all(&mut self) {
        while let Some(joined) = self.0.join_next().await {
            joined.unwrap_or_else(|e| resume_unwind(e.into_panic()));
        }
    }
}

/// DRS's own answer is input like any other: a listed ARN must be well formed and
/// belong to the account and region that were listed.
fn listed_arn(raw: &str, scope: &Scope) -> Result<SourceServerArn, Rejection> {
    let rejection = |reason: String| {
        let mut r = Rejection::new(reason);
        r.staging_account = Some(scope.staging_account_id.clone());
        r
    };
    let arn = SourceServerArn::parse(raw).map_err(|e| rejection(format!("DRS listed {e}")))?;
    if arn.account() != &scope.staging_account_id || arn.region() != &scope.region {
        return Err(rejection(format!(
            "DRS listed server {arn} when asked for account {} in {}",
            scope.staging_account_id, scope.region
        )));
    }
    Ok(arn)
}
