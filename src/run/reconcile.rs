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
use crate::aws::drs::{ExtensibleServer, TargetDrs};
use crate::aws::ec2::TargetEc2;
use crate::aws::paging::{Page, Paging, Stop};
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
    let first = match first {
        Listing::Listed { page, .. } => page,
        Listing::Failed(error) => {
            listing_failed(&shared.reporter, &scope, error).await;
            return ScopeReport::unfinished(UnfinishedReason::ListingFailed);
        }
        Listing::NotReached => return ScopeReport::unfinished(UnfinishedReason::Deadline),
    };
    let mut sweeper = Sweeper {
        keep_tags: shared.settings.copy_staging_tags && !shared.settings.dry_run,
        drs,
        ec2,
        shared,
        scope,
        tried: HashSet::new(),
        in_flight: InFlight::default(),
        held_back: Arc::default(),
        examined: 0,
    };
    let swept = sweeper.sweeps(first).await;
    sweeper.report(swept)
}

impl ScopeReport {
    fn unfinished(reason: UnfinishedReason) -> Self {
        Self {
            examined: 0,
            unfinished: Some(reason),
        }
    }
}

/// How one sweep of a scope ended.
enum Swept {
    /// The list is known whole: nothing was skipped, and nothing is left.
    Whole,
    /// Servers not tried before were found across pages: sweep again.
    Again,
    Stopped(UnfinishedReason),
}

/// Servers whose create the deadline did not let through, or that a given-up
/// event held back; each set by the server's own task.
#[derive(Default)]
struct HeldBack {
    not_reached: AtomicBool,
    withheld: AtomicBool,
}

/// One scope's work across its sweeps.
struct Sweeper {
    drs: TargetDrs,
    /// For the launch baseline's template writes, where the region has EC2.
    ec2: Option<TargetEc2>,
    shared: Arc<Shared>,
    scope: Scope,
    keep_tags: bool,
    /// Each server is tried at most once a run.
    tried: HashSet<String>,
    in_flight: InFlight,
    held_back: Arc<HeldBack>,
    examined: usize,
}

impl Sweeper {
    async fn sweeps(&mut self, first: Option<Page<ExtensibleServer>>) -> Option<UnfinishedReason> {
        let mut first = first;
        for _ in 0..MAX_SWEEPS {
            match self.sweep(first.take()).await {
                Swept::Again => {}
                Swept::Whole => return None,
                Swept::Stopped(reason) => return Some(reason),
            }
        }
        Some(UnfinishedReason::StillChanging)
    }

    /// Lists the scope to the end once (from `first`, where the survey read it),
    /// starting each server not tried yet.
    async fn sweep(&mut self, first: Option<Page<ExtensibleServer>>) -> Swept {
        let examined = self.examined;
        let mut listing = Paging::until(self.shared.deadline).starting_with(first);
        let listed = self.list(&mut listing).await;
        let found_new = self.examined > examined;
        let swept = match listed {
            // One page is the whole list at one moment: nothing was skipped.
            // Across pages, only a whole sweep that finds nothing new proves it.
            Ok(()) if found_new && listing.followed() => Swept::Again,
            Ok(()) => Swept::Whole,
            Err(Halt::Run(reason)) => Swept::Stopped(reason),
            // DRS no longer takes its own token (it expired): the next sweep
            // starts from the first page.
            Err(Halt::Listing(Stop::Failed(error)))
                if listing.followed() && is_token_refusal(&error) =>
            {
                tracing::warn!(account = %self.scope.staging_account_id, region = %self.scope.region, %error, "page token refused; the next sweep starts over");
                // Servers past the pages DRS would page to were never seen.
                if found_new {
                    Swept::Again
                } else {
                    Swept::Stopped(UnfinishedReason::PageTokenRefused)
                }
            }
            Err(Halt::Listing(stop)) => Swept::Stopped(self.listing_stopped(stop).await),
        };
        // A sweep ends with nothing in flight, so the next one lists a list
        // that no longer changes under it because of this run.
        self.in_flight.settle_all().await;
        swept
    }

    async fn list(&mut self, listing: &mut Paging<ExtensibleServer>) -> Result<(), Halt> {
        let deadline = self.shared.deadline;
        while let Some(servers) = listing
            .next(|token| {
                let account = &self.scope.staging_account_id;
                self.drs
                    .list_extensible(account, token, self.keep_tags, &deadline)
            })
            .await
            .map_err(Halt::Listing)?
        {
            for server in servers {
                if self.tried.insert(server.arn.clone()) {
                    self.start(server).await.map_err(Halt::Run)?;
                }
            }
        }
        Ok(())
    }

    /// Starts one server's create, once it has a place for its event and one
    /// among the creates in flight; answers why the scope stops here.
    async fn start(&mut self, server: ExtensibleServer) -> Result<(), UnfinishedReason> {
        self.examined += 1;
        let (shared, scope) = (self.shared.clone(), &self.scope);
        let staging = match listed_arn(&server.arn, scope) {
            Ok(arn) => arn,
            Err(rejection) => {
                shared.reporter.report(Outcome::rejected(rejection)).await;
                return Ok(());
            }
        };
        let creating = shared.creates.clone().acquire_owned();
        let (held, permit) = shared.reporter.admit(&shared.deadline, creating).await?;
        if let Some(met) = shared.refused.met(&scope.staging_account_id, &scope.region) {
            return Err(met.refusal.reason());
        }
        let (drs, ec2, held_back) = (self.drs.clone(), self.ec2.clone(), self.held_back.clone());
        self.in_flight.spawn(async move {
            let mut extension = extend(
                &drs,
                &shared.settings,
                &staging,
                server.tags.as_ref(),
                Known::NotExtended,
            )
            .await;
            drop(permit);
            // After the create's permit (EC2 is not DRS's rate), but before the
            // event: `held` covers these calls.
            shared
                .settings
                .apply_baseline(&mut extension, &drs, ec2.as_ref())
                .await;
            match extension {
                Extension::Done(outcome) => {
                    shared.refused.note(&staging, &outcome);
                    shared.reporter.report_held(*outcome, Some(held)).await;
                }
                Extension::NotReached(UnfinishedReason::EventsUndelivered) => {
                    held_back.withheld.store(true, Ordering::SeqCst)
                }
                Extension::NotReached(_) => held_back.not_reached.store(true, Ordering::SeqCst),
            }
        });
        self.in_flight.settle_finished();
        Ok(())
    }

    /// Why a listing that stopped short leaves the scope unfinished.
    async fn listing_stopped(&self, stop: Stop) -> UnfinishedReason {
        let scope = &self.scope;
        match stop {
            Stop::Deadline => UnfinishedReason::Deadline,
            Stop::Failed(error) => {
                listing_failed(&self.shared.reporter, scope, error).await;
                UnfinishedReason::ListingFailed
            }
            // Servers past where DRS repeated itself were never seen.
            Stop::Short(reason) => {
                tracing::warn!(account = %scope.staging_account_id, region = %scope.region, %reason, "listing stopped short");
                reason
            }
        }
    }

    fn report(self, swept: Option<UnfinishedReason>) -> ScopeReport {
        let held_back = &self.held_back;
        let unfinished = match swept {
            // The servers held back are the run's first loss.
            None | Some(UnfinishedReason::StillChanging)
                if held_back.withheld.load(Ordering::SeqCst) =>
            {
                Some(UnfinishedReason::EventsUndelivered)
            }
            None | Some(UnfinishedReason::StillChanging)
                if held_back.not_reached.load(Ordering::SeqCst) =>
            {
                Some(UnfinishedReason::Deadline)
            }
            other => other,
        };
        ScopeReport {
            examined: self.examined,
            unfinished,
        }
    }
}

/// Why a sweep's listing ended before its end.
enum Halt {
    /// The listing stopped short.
    Listing(Stop),
    /// The run stops starting servers here (the deadline, a given-up event, a
    /// refusal no retry changes).
    Run(UnfinishedReason),
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
