//! Reconciliation: every extensible server of the covered staging accounts and
//! regions is extended. Accounts are worked on concurrently; creates share one
//! limit on calls in flight; each region's DRS client keeps its own pace.
//!
//! DRS's page tokens are opaque: one may be a cursor, an offset into a list that
//! shrinks as servers are extended, or expire. So an account is swept, listed to
//! the end, again and again until a sweep finds no server not yet tried; each
//! server is tried at most once a run.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::arn::{AccountId, Region, SourceServerArn};
use crate::clients::Clients;
use crate::deadline::Deadline;
use crate::drs::{ExtensibleServer, Page, TargetDrs};
use crate::error::DrsError;
use crate::extend::{extend_riding_out_throttling, ExtendSettings, Known, Refusals};
use crate::inbound::Rejection;
use crate::outcome::{OutboundEvent, Outcome, Subject};
use crate::reporter::{Reporter, Tally};

/// One staging account in one region.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Scope {
    pub staging_account_id: AccountId,
    pub region: Region,
}

/// What a run left undone, and why.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unfinished {
    /// Absent when a region's staging accounts could not be listed at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staging_account_id: Option<AccountId>,
    pub region: Region,
    pub reason: &'static str,
}

impl Unfinished {
    pub fn scope(scope: &Scope, reason: &'static str) -> Self {
        Self {
            staging_account_id: Some(scope.staging_account_id.clone()),
            region: scope.region.clone(),
            reason,
        }
    }
}

pub const DEADLINE: &str = "DEADLINE";
pub const LISTING_FAILED: &str = "LISTING_FAILED";
pub const STAGING_ACCOUNTS_NOT_LISTED: &str = "STAGING_ACCOUNTS_NOT_LISTED";
pub const STILL_CHANGING: &str = "STILL_CHANGING";
pub const PAGE_TOKEN_REFUSED: &str = "PAGE_TOKEN_REFUSED";
pub const TASK_ENDED: &str = "TASK_ENDED";
/// Fan-out requests the bus did not take: their accounts were not handed on.
pub const FAN_OUT_UNDELIVERED: &str = "FAN_OUT_UNDELIVERED";

/// The `Reconciliation Completed` detail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub staging_account_ids: Vec<AccountId>,
    pub regions: Vec<Region>,
    pub examined: usize,
    pub created: usize,
    pub skipped: usize,
    pub failed: usize,
    pub rejected: usize,
    pub dry_run: bool,
    pub complete: bool,
    pub duration_ms: u64,
    /// The accounts and regions not finished (always sent, `[]` when none).
    pub unfinished: Vec<Unfinished>,
    /// Requests handed on to other invocations and delivered, one per staging
    /// account (always sent).
    pub fanned_out: usize,
    /// Extended servers the target account holds for the accounts and regions
    /// this run covered, and how many of them DRS shows in `EXTENSION_ERROR`.
    pub extended: usize,
    pub extension_errors: usize,
    /// Where coverage could not be read (those counts are then short).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub coverage_unread: Vec<crate::coverage::Unread>,
    /// Why the run covered no staging account at all, when it did not: `complete`
    /// then means "covered what was known to exist", which was nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nothing_to_cover: Option<&'static str>,
}

/// `ListStagingAccounts` named no account in any region asked for.
pub const NO_STAGING_ACCOUNT_LISTED: &str = "ListStagingAccounts named no staging account (it lists only accounts that already have an extended server): name them in STAGING_ACCOUNT_IDS, or let each staging account ask for its own reconciliation";

impl Summary {
    /// A summary of a run over `scopes` (and `regions`, which may have no scope
    /// when their staging accounts could not be listed).
    pub fn covering(scopes: &[Scope], regions: &[Region], dry_run: bool) -> Self {
        let staging_account_ids: BTreeSet<&AccountId> =
            scopes.iter().map(|s| &s.staging_account_id).collect();
        let regions: BTreeSet<&Region> = scopes.iter().map(|s| &s.region).chain(regions).collect();
        Self {
            staging_account_ids: staging_account_ids.into_iter().cloned().collect(),
            regions: regions.into_iter().cloned().collect(),
            examined: 0,
            created: 0,
            skipped: 0,
            failed: 0,
            rejected: 0,
            dry_run,
            complete: true,
            duration_ms: 0,
            unfinished: Vec::new(),
            fanned_out: 0,
            extended: 0,
            extension_errors: 0,
            coverage_unread: Vec::new(),
            nothing_to_cover: None,
        }
    }

    /// Closes the summary: the counts of every outcome of the invocation, and
    /// whether anything was left undone.
    pub fn close(&mut self, tally: &Tally, mut unfinished: Vec<Unfinished>, duration_ms: u64) {
        self.created = tally.created;
        self.skipped = tally.skipped;
        self.failed = tally.failed;
        self.rejected = tally.rejected;
        unfinished.sort();
        unfinished.dedup();
        self.complete = unfinished.is_empty();
        self.unfinished = unfinished;
        self.duration_ms = duration_ms;
    }

    pub fn event(&self) -> OutboundEvent {
        OutboundEvent {
            detail_type: "Reconciliation Completed",
            resources: Vec::new(),
            detail: serde_json::to_string(self).unwrap_or_default(),
        }
    }
}

/// What the first listing of one scope found.
pub enum Listing {
    /// Listed. The page is kept for the run to start from while the survey's
    /// pages stay within [`KEPT_BY_SURVEY`] servers.
    Listed {
        page: Option<Page<ExtensibleServer>>,
        calls: u64,
        work: bool,
    },
    Failed(DrsError),
    /// The deadline came first.
    NotReached,
}

/// One scope and its first listing: what a run starts from, and what tells
/// whether the run fits in one invocation.
pub struct Surveyed {
    pub scope: Scope,
    pub first: Listing,
}

/// A further page is not listed yet: count it as a full one.
const CALLS_PER_FURTHER_PAGES: u64 = 301;
/// Bytes of listed servers the survey keeps to start from; past that it keeps
/// counts only, and the run lists again, so memory stays bounded at any scale.
pub const KEPT_BY_SURVEY: usize = 8 * 1024 * 1024;
/// Listings read at once by the survey, and accounts worked at once by a run (each
/// reads its own pages and holds the one it works through): a page of 300 servers
/// with full tags is megabytes while the SDK parses it, so memory is bounded by
/// this, not by the number of accounts. Creates are bounded across the run anyway.
const LISTINGS_AT_ONCE: usize = 4;

/// What a listed server costs to hold, roughly.
fn held_bytes(server: &ExtensibleServer) -> usize {
    64 + server.arn.len()
        + server
            .tags
            .iter()
            .flatten()
            .map(|(k, v)| 48 + k.len() + v.len())
            .sum::<usize>()
}

impl Surveyed {
    fn listed(scope: Scope, page: Page<ExtensibleServer>) -> Self {
        let calls = page.items.len() as u64
            + page
                .next_token
                .as_ref()
                .map_or(0, |_| CALLS_PER_FURTHER_PAGES);
        let work = !page.items.is_empty() || page.next_token.is_some();
        Self {
            scope,
            first: Listing::Listed {
                page: Some(page),
                calls,
                work,
            },
        }
    }

    /// DRS calls this scope is expected to take.
    fn expected_calls(&self) -> u64 {
        match &self.first {
            Listing::Listed { calls, .. } => *calls,
            _ => 1,
        }
    }

    /// Whether there is anything to do (or to try again) for this scope.
    pub fn has_work(&self) -> bool {
        !matches!(&self.first, Listing::Listed { work: false, .. })
    }
}

/// Lists the first page of every scope, a few at once, each region at its pace,
/// until the deadline. Tags are kept only when they will be copied.
pub async fn survey(
    clients: &Clients,
    scopes: Vec<Scope>,
    deadline: Deadline,
    keep_tags: bool,
) -> Vec<Surveyed> {
    let mut listings = JoinSet::new();
    let mut scope_of_task = HashMap::new();
    let mut surveyed = Vec::new();
    let at_once = Arc::new(Semaphore::new(LISTINGS_AT_ONCE));
    for scope in scopes {
        let Some(drs) = clients.drs(&scope.region) else {
            continue;
        };
        let account = scope.staging_account_id.clone();
        let at_once = at_once.clone();
        let listing = async move {
            let _listing = at_once.acquire_owned().await.ok()?;
            if deadline.reached() {
                return None;
            }
            Some(
                drs.list_extensible(&account, None, keep_tags, &deadline)
                    .await,
            )
        };
        let task = listings.spawn(listing.in_current_span());
        scope_of_task.insert(task.id(), scope);
    }
    let mut kept = 0;
    while let Some(joined) = listings.join_next_with_id().await {
        let (id, first) = match joined {
            Ok((id, first)) => (id, first),
            Err(error) => (
                error.id(),
                Some(Err(DrsError::new("InternalError", error.to_string(), true))),
            ),
        };
        let Some(scope) = scope_of_task.remove(&id) else {
            continue;
        };
        surveyed.push(match first {
            None => Surveyed {
                scope,
                first: Listing::NotReached,
            },
            Some(Err(error)) => Surveyed {
                scope,
                first: Listing::Failed(error),
            },
            Some(Ok(page)) => {
                let mut listed = Surveyed::listed(scope, page);
                if let Listing::Listed { page, .. } = &mut listed.first {
                    let size = page
                        .as_ref()
                        .map_or(0, |p| p.items.iter().map(held_bytes).sum());
                    if kept + size > KEPT_BY_SURVEY {
                        *page = None;
                    } else {
                        kept += size;
                    }
                }
                listed
            }
        });
    }
    surveyed.sort_by(|a, b| a.scope.cmp(&b.scope));
    surveyed
}

/// Whether the work the survey found fits in the time left at each region's
/// pace; beyond that a run fans out, one request per staging account with work.
/// One staging account is the unit of fan-out: it always fits.
pub fn fits(surveyed: &[Surveyed], max_rps: u32, time_left: Option<std::time::Duration>) -> bool {
    let Some(time_left) = time_left else {
        return true;
    };
    let first = surveyed.first().map(|s| &s.scope.staging_account_id);
    if surveyed
        .iter()
        .all(|s| Some(&s.scope.staging_account_id) == first)
    {
        return true;
    }
    let mut per_region: std::collections::BTreeMap<&Region, u64> = Default::default();
    for s in surveyed {
        *per_region.entry(&s.scope.region).or_default() += s.expected_calls();
    }
    let busiest = per_region.values().copied().max().unwrap_or(0);
    busiest <= time_left.as_secs() * u64::from(max_rps)
}

/// The accounts handed on, each with its regions.
pub type HandedOn = Vec<(AccountId, Vec<Region>)>;

/// One `Reconciliation Requested` per staging account, marked so it never fans
/// out again; and the accounts (with their regions) in the same order.
pub fn fan_out_requests(surveyed: &[Surveyed], dry_run: bool) -> (HandedOn, Vec<OutboundEvent>) {
    let mut by_account: std::collections::BTreeMap<&AccountId, Vec<&Region>> = Default::default();
    for scope in surveyed.iter().filter(|s| s.has_work()).map(|s| &s.scope) {
        by_account
            .entry(&scope.staging_account_id)
            .or_default()
            .push(&scope.region);
    }
    let events = by_account
        .iter()
        .map(|(account, regions)| OutboundEvent {
            detail_type: crate::inbound::RECONCILIATION_REQUESTED_DETAIL_TYPE,
            resources: Vec::new(),
            detail: serde_json::json!({
                "stagingAccountIds": [account],
                "regions": regions,
                "dryRun": dry_run,
                crate::inbound::FANNED_OUT_FIELD: true,
            })
            .to_string(),
        })
        .collect();
    let accounts = by_account
        .into_iter()
        .map(|(account, regions)| (account.clone(), regions.into_iter().cloned().collect()))
        .collect();
    (accounts, events)
}

/// What a run did besides its outcomes, which went to the reporter.
#[derive(Debug, Default)]
pub struct RunReport {
    pub examined: usize,
    pub unfinished: Vec<Unfinished>,
}

struct ScopeReport {
    examined: usize,
    unfinished: Option<&'static str>,
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
    let mut scope_of_task = HashMap::new();
    let at_once = Arc::new(Semaphore::new(LISTINGS_AT_ONCE));
    for surveyed in surveyed {
        let Some(drs) = clients.drs(&surveyed.scope.region) else {
            continue;
        };
        let scope = surveyed.scope.clone();
        let (shared, at_once) = (shared.clone(), at_once.clone());
        let task = tasks.spawn(
            async move {
                let _working = at_once.acquire_owned().await;
                reconcile_scope(drs, shared, surveyed).await
            }
            .in_current_span(),
        );
        scope_of_task.insert(task.id(), scope);
    }
    while let Some(joined) = tasks.join_next_with_id().await {
        match joined {
            Ok((id, scope_report)) => {
                report.examined += scope_report.examined;
                if let (Some(reason), Some(scope)) =
                    (scope_report.unfinished, scope_of_task.get(&id))
                {
                    report.unfinished.push(Unfinished::scope(scope, reason));
                }
            }
            // The account's outcomes so far went out; the summary says it is
            // unfinished, so the next run takes it up again.
            Err(error) => {
                tracing::error!(%error, "a reconciliation task ended abnormally");
                if let Some(scope) = scope_of_task.get(&error.id()) {
                    report.unfinished.push(Unfinished::scope(scope, TASK_ENDED));
                }
            }
        }
    }
    report
}

/// Sweeps after which an account still showing new servers is left unfinished.
const MAX_SWEEPS: usize = 20;

async fn reconcile_scope(drs: TargetDrs, shared: Arc<Shared>, surveyed: Surveyed) -> ScopeReport {
    let Surveyed { scope, first } = surveyed;
    let mut report = ScopeReport {
        examined: 0,
        unfinished: None,
    };
    let mut start = match first {
        Listing::Listed { page, .. } => page,
        Listing::Failed(error) => {
            listing_failed(&shared.reporter, &scope, error).await;
            report.unfinished = Some(LISTING_FAILED);
            return report;
        }
        Listing::NotReached => {
            report.unfinished = Some(DEADLINE);
            return report;
        }
    };
    let mut tried: HashSet<String> = HashSet::new();
    let mut in_flight = InFlight::default();
    let keep_tags = shared.settings.copy_staging_tags && !shared.settings.dry_run;
    let result = 'sweeps: {
        for _ in 0..MAX_SWEEPS {
            let mut found_new = false;
            let mut followed_a_token = false;
            let mut cut_short = false;
            let mut token: Option<String> = None;
            loop {
                let page = match start.take() {
                    Some(page) => page,
                    None => {
                        if shared.deadline.reached() {
                            break 'sweeps Some(DEADLINE);
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
                                break 'sweeps Some(LISTING_FAILED);
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
                    // A place for its event first: while the bus is behind, this waits.
                    let Some(held) = shared.reporter.reserve().await else {
                        break 'sweeps Some(TASK_ENDED);
                    };
                    let Ok(permit) = shared.creates.clone().acquire_owned().await else {
                        break 'sweeps Some(TASK_ENDED);
                    };
                    if shared.deadline.reached() {
                        break 'sweeps Some(DEADLINE);
                    }
                    let met = shared.refused.met(&scope.staging_account_id, &scope.region);
                    if let Some(met) = met {
                        break 'sweeps Some(met.refusal.reason());
                    }
                    let (drs, task) = (drs.clone(), shared.clone());
                    in_flight.spawn(staging.clone(), async move {
                        let outcome = extend_riding_out_throttling(
                            &drs,
                            &task.settings,
                            &staging,
                            server.tags.as_ref(),
                            Known::NotExtended,
                        )
                        .await;
                        drop(permit);
                        task.refused.note(&staging, &outcome);
                        task.reporter.report_held(outcome, Some(held)).await;
                    });
                    in_flight.settle_finished(&shared.reporter).await;
                }
                token = page.next_token;
                if token.is_none() {
                    break;
                }
                followed_a_token = true;
            }
            // A sweep ends with nothing in flight, so the next one lists a list
            // that no longer changes under it because of this run.
            in_flight.settle_all(&shared.reporter).await;
            match (found_new, followed_a_token || cut_short) {
                // One page is the whole list at one moment: nothing was skipped.
                (_, false) => break 'sweeps None,
                // Across pages, only a whole sweep that finds nothing new proves it.
                (false, true) if !cut_short => break 'sweeps None,
                // Servers past the pages DRS would page to were never seen.
                (false, true) => break 'sweeps Some(PAGE_TOKEN_REFUSED),
                (true, true) => {}
            }
        }
        Some(STILL_CHANGING)
    };
    in_flight.settle_all(&shared.reporter).await;
    report.unfinished = result;
    report
}

/// DRS refusing a page token it gave (expired): a `ValidationException`. Any other
/// refusal of a later page is a failed listing like the first page's.
fn is_token_refusal(error: &DrsError) -> bool {
    error.code == "ValidationException"
}

async fn listing_failed(reporter: &Reporter, scope: &Scope, error: DrsError) {
    tracing::warn!(account = %scope.staging_account_id, region = %scope.region, %error, "could not list extensible servers");
    let subject = Subject::account(&scope.staging_account_id, Some(&scope.region));
    reporter.report(Outcome::failed(subject, error)).await;
}

/// Extensions under way. Each reports its own outcome; one whose task ended
/// abnormally is reported here as a retryable failure, not a silence.
#[derive(Default)]
struct InFlight {
    tasks: JoinSet<()>,
    servers: HashMap<tokio::task::Id, SourceServerArn>,
}

impl InFlight {
    fn spawn(
        &mut self,
        staging: SourceServerArn,
        work: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let task = self.tasks.spawn(work.in_current_span());
        self.servers.insert(task.id(), staging);
    }

    async fn settle(
        &mut self,
        joined: Result<(tokio::task::Id, ()), tokio::task::JoinError>,
        reporter: &Reporter,
    ) {
        match joined {
            Ok((id, ())) => {
                self.servers.remove(&id);
            }
            Err(error) => {
                tracing::error!(%error, "an extension task ended abnormally");
                let subject = self
                    .servers
                    .remove(&error.id())
                    .map(|arn| Subject::server(&arn))
                    .unwrap_or_default();
                let error = DrsError::new("InternalError", error.to_string(), true);
                reporter.report(Outcome::failed(subject, error)).await;
            }
        }
    }

    /// Settles the tasks that have finished, without waiting, so that memory
    /// does not grow with the number of servers.
    async fn settle_finished(&mut self, reporter: &Reporter) {
        while let Some(joined) = self.tasks.try_join_next_with_id() {
            self.settle(joined, reporter).await;
        }
    }

    async fn settle_all(&mut self, reporter: &Reporter) {
        while let Some(joined) = self.tasks.join_next_with_id().await {
            self.settle(joined, reporter).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// `accounts` staging accounts in each region, each with `listed` servers on
    /// its first page and, if `more`, a further page.
    fn surveyed(accounts: usize, regions: &[&str], listed: usize, more: bool) -> Vec<Surveyed> {
        let mut all = Vec::new();
        for a in 0..accounts {
            for r in regions {
                let items = (0..listed)
                    .map(|_| ExtensibleServer {
                        arn: String::new(),
                        tags: None,
                    })
                    .collect();
                all.push(Surveyed {
                    scope: Scope {
                        staging_account_id: AccountId::parse(&format!(
                            "{:012}",
                            100_000_000_000u64 + a as u64
                        ))
                        .unwrap(),
                        region: Region::parse(r).unwrap(),
                    },
                    first: Listing::Listed {
                        calls: 0,
                        work: false,
                        page: None,
                    },
                });
                let page = Page {
                    items,
                    next_token: more.then(|| "next".to_owned()),
                };
                let last = all.len() - 1;
                all[last] = Surveyed::listed(all[last].scope.clone(), page);
            }
        }
        all
    }

    #[test]
    fn fans_out_only_when_the_work_found_does_not_fit() {
        // 275 s at 10 requests a second: 2750 calls per region.
        let time = Some(Duration::from_secs(275));
        assert!(fits(
            &surveyed(9, &["us-east-1", "eu-west-1"], 300, false),
            10,
            time
        ));
        assert!(!fits(&surveyed(10, &["us-east-1"], 300, false), 10, time));
        // A further page counts as a full one.
        assert!(!fits(&surveyed(5, &["us-east-1"], 300, true), 10, time));
        // Accounts with nothing to do cost nothing, however many.
        assert!(fits(&surveyed(5000, &["us-east-1"], 0, false), 10, time));
        assert!(fits(
            &surveyed(50, &["us-east-1"], 300, false),
            100,
            Some(Duration::from_secs(875))
        ));
        assert!(fits(&surveyed(1000, &["us-east-1"], 300, true), 1, None));
        // One account is never split.
        assert!(fits(
            &surveyed(1, &["us-east-1", "eu-west-1"], 300, true),
            1,
            time
        ));
    }

    #[test]
    fn fan_out_sends_one_marked_request_per_account_with_work() {
        let mut all = surveyed(3, &["us-east-1", "eu-west-1"], 1, false);
        all.extend(
            surveyed(1, &["ap-south-1"], 0, false)
                .into_iter()
                .map(|mut s| {
                    s.scope.staging_account_id = AccountId::parse("999999999999").unwrap();
                    s
                }),
        );
        let (accounts, events) = fan_out_requests(&all, true);
        assert_eq!(accounts.len(), events.len());
        assert_eq!(
            events.len(),
            3,
            "the account with nothing to do gets no request"
        );
        let detail: serde_json::Value = serde_json::from_str(&events[0].detail).unwrap();
        assert_eq!(detail["stagingAccountIds"].as_array().unwrap().len(), 1);
        assert_eq!(detail["regions"].as_array().unwrap().len(), 2);
        assert_eq!(detail["fannedOut"], true);
        assert_eq!(detail["dryRun"], true);
        assert_eq!(events[0].detail_type, "Reconciliation Requested");
    }
}
