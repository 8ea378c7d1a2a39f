//! Reconciliation: every extensible server of the covered staging accounts and
//! regions is extended. Accounts are worked on concurrently; creates share one
//! limit on calls in flight; each region's DRS client keeps its own pace.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::arn::{AccountId, Region, SourceServerArn};
use crate::clients::Clients;
use crate::deadline::Deadline;
use crate::drs::{ExtensibleServer, Page, TargetDrs};
use crate::error::DrsError;
use crate::extend::{extend, ExtendSettings, Known};
use crate::inbound::Rejection;
use crate::outcome::{is_zero, OutboundEvent, Outcome, Subject};

/// One staging account in one region.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Scope {
    pub staging_account_id: AccountId,
    pub region: Region,
}

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
    /// The accounts and regions not finished, when the run stopped early.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unfinished: Vec<Scope>,
    /// Requests handed on to other invocations, one per staging account.
    #[serde(skip_serializing_if = "is_zero")]
    pub fanned_out: usize,
}

impl Summary {
    /// A summary of a run over `scopes`, before any outcome.
    pub fn covering(scopes: &[Scope], dry_run: bool) -> Self {
        let mut staging_account_ids: Vec<AccountId> = scopes
            .iter()
            .map(|s| s.staging_account_id.clone())
            .collect();
        staging_account_ids.sort();
        staging_account_ids.dedup();
        let mut regions: Vec<Region> = scopes.iter().map(|s| s.region.clone()).collect();
        regions.sort();
        regions.dedup();
        Self {
            staging_account_ids,
            regions,
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
        }
    }

    /// Counts the run's outcomes, including those decided before it started
    /// (accounts refused, listings that failed).
    pub fn tally(&mut self, outcomes: &[Outcome]) {
        let count = |status: &str| outcomes.iter().filter(|o| o.status() == status).count();
        self.created = count("created");
        self.skipped = count("skipped");
        self.failed = count("failed");
        self.rejected = count("rejected");
    }

    pub fn event(&self) -> OutboundEvent {
        OutboundEvent {
            detail_type: "Reconciliation Completed",
            resources: Vec::new(),
            detail: serde_json::to_string(self).unwrap_or_default(),
        }
    }
}

/// One scope and the first page of its listing: what a run starts from, and
/// what tells whether the run fits in one invocation.
pub struct Surveyed {
    pub scope: Scope,
    pub first: Result<Page<ExtensibleServer>, DrsError>,
}

/// A further page is not listed yet: count it as a full one.
const CALLS_PER_FURTHER_PAGES: u64 = 301;

impl Surveyed {
    /// DRS calls this scope is expected to take: a create for each server listed,
    /// a full page more when there is one.
    fn expected_calls(&self) -> u64 {
        match &self.first {
            Ok(page) => {
                page.items.len() as u64
                    + page
                        .next_token
                        .as_ref()
                        .map_or(0, |_| CALLS_PER_FURTHER_PAGES)
            }
            Err(_) => 1,
        }
    }

    /// Whether there is anything to do for this scope.
    pub fn has_work(&self) -> bool {
        !matches!(&self.first, Ok(page) if page.items.is_empty() && page.next_token.is_none())
    }
}

/// Lists the first page of every scope, concurrently, each region at its pace.
pub async fn survey(clients: &Clients, scopes: Vec<Scope>) -> Vec<Surveyed> {
    let mut listings = JoinSet::new();
    let mut scope_of_task = HashMap::new();
    for scope in scopes {
        let drs = clients.drs(&scope.region);
        let account = scope.staging_account_id.clone();
        let task = listings.spawn(async move { drs.list_extensible(&account, None).await });
        scope_of_task.insert(task.id(), scope);
    }
    let mut surveyed = Vec::new();
    while let Some(joined) = listings.join_next_with_id().await {
        let (id, first) = match joined {
            Ok((id, first)) => (id, first),
            Err(error) => (
                error.id(),
                Err(DrsError::new("InternalError", error.to_string(), true)),
            ),
        };
        if let Some(scope) = scope_of_task.remove(&id) {
            surveyed.push(Surveyed { scope, first });
        }
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

/// One `Reconciliation Requested` per staging account, marked so it never fans
/// out again.
pub fn fan_out_requests(surveyed: &[Surveyed], dry_run: bool) -> Vec<OutboundEvent> {
    let mut by_account: std::collections::BTreeMap<&AccountId, Vec<&Region>> = Default::default();
    for scope in surveyed.iter().filter(|s| s.has_work()).map(|s| &s.scope) {
        by_account
            .entry(&scope.staging_account_id)
            .or_default()
            .push(&scope.region);
    }
    by_account
        .into_iter()
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
        .collect()
}

pub struct Report {
    pub outcomes: Vec<Outcome>,
    pub summary: Summary,
}

struct ScopeReport {
    scope: Scope,
    outcomes: Vec<Outcome>,
    examined: usize,
    complete: bool,
}

pub async fn run(
    clients: &Clients,
    settings: ExtendSettings,
    surveyed: Vec<Surveyed>,
    concurrency: usize,
    deadline: Deadline,
) -> Report {
    let started = Instant::now();
    let scopes: Vec<Scope> = surveyed.iter().map(|s| s.scope.clone()).collect();
    let mut summary = Summary::covering(&scopes, settings.dry_run);
    let settings = Arc::new(settings);
    let creates = Arc::new(Semaphore::new(concurrency.max(1)));

    let mut tasks = JoinSet::new();
    let mut scope_of_task = HashMap::new();
    for surveyed in surveyed {
        let drs = clients.drs(&surveyed.scope.region);
        let scope = surveyed.scope.clone();
        let task = tasks.spawn(reconcile_scope(
            drs,
            settings.clone(),
            surveyed,
            creates.clone(),
            deadline,
        ));
        scope_of_task.insert(task.id(), scope);
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = tasks.join_next_with_id().await {
        match joined {
            Ok((_, report)) => {
                summary.examined += report.examined;
                if !report.complete {
                    summary.unfinished.push(report.scope);
                }
                outcomes.extend(report.outcomes);
            }
            // The account's outcomes so far are lost with the task; the summary
            // says it is unfinished, so the next run takes it up again.
            Err(error) => {
                tracing::error!(%error, "a reconciliation task ended abnormally");
                summary.unfinished.extend(scope_of_task.remove(&error.id()));
            }
        }
    }
    summary.unfinished.sort();
    summary.complete = summary.unfinished.is_empty();
    summary.tally(&outcomes);
    summary.duration_ms = started.elapsed().as_millis() as u64;
    Report { outcomes, summary }
}

async fn reconcile_scope(
    drs: TargetDrs,
    settings: Arc<ExtendSettings>,
    surveyed: Surveyed,
    creates: Arc<Semaphore>,
    deadline: Deadline,
) -> ScopeReport {
    let Surveyed { scope, first } = surveyed;
    let mut report = ScopeReport {
        scope: scope.clone(),
        outcomes: Vec::new(),
        examined: 0,
        complete: true,
    };
    let mut in_flight = InFlight::default();
    let mut listed = first;
    'pages: loop {
        let page = match listed {
            Ok(page) => page,
            Err(error) => {
                tracing::warn!(account = %scope.staging_account_id, region = %scope.region, %error, "could not list extensible servers");
                let subject = Subject::account(&scope.staging_account_id, Some(&scope.region));
                report.outcomes.push(Outcome::failed(subject, error));
                report.complete = false;
                break;
            }
        };
        for server in page.items {
            report.examined += 1;
            let staging = match listed_arn(&server.arn, &scope) {
                Ok(arn) => arn,
                Err(rejection) => {
                    report.outcomes.push(Outcome::rejected(rejection));
                    continue;
                }
            };
            let Ok(permit) = creates.clone().acquire_owned().await else {
                break 'pages;
            };
            if deadline.reached() {
                report.complete = false;
                break 'pages;
            }
            let (drs, settings) = (drs.clone(), settings.clone());
            in_flight.spawn(staging.clone(), async move {
                let outcome = extend_riding_out_throttling(
                    &drs,
                    &settings,
                    &staging,
                    server.tags.as_ref(),
                    deadline,
                )
                .await;
                drop(permit);
                outcome
            });
            // Outcomes are gathered as they finish, so memory does not grow with
            // the number of servers waiting behind the limit.
            report.outcomes.extend(in_flight.finished());
        }
        let Some(token) = page.next_token else {
            break;
        };
        if deadline.reached() {
            report.complete = false;
            break;
        }
        listed = drs
            .list_extensible(&scope.staging_account_id, Some(token))
            .await;
    }
    report.outcomes.extend(in_flight.all().await);
    report
}

/// Extensions under way. Every server gets an outcome, even one whose task
/// ended abnormally: that is a retryable failure, not a silence.
#[derive(Default)]
struct InFlight {
    tasks: JoinSet<Outcome>,
    servers: HashMap<tokio::task::Id, SourceServerArn>,
}

impl InFlight {
    fn spawn(
        &mut self,
        staging: SourceServerArn,
        work: impl std::future::Future<Output = Outcome> + Send + 'static,
    ) {
        let task = self.tasks.spawn(work);
        self.servers.insert(task.id(), staging);
    }

    fn settle(
        &mut self,
        joined: Result<(tokio::task::Id, Outcome), tokio::task::JoinError>,
    ) -> Outcome {
        match joined {
            Ok((id, outcome)) => {
                self.servers.remove(&id);
                outcome
            }
            Err(error) => {
                tracing::error!(%error, "an extension task ended abnormally");
                let subject = self
                    .servers
                    .remove(&error.id())
                    .map(|arn| Subject::server(&arn))
                    .unwrap_or_default();
                Outcome::failed(
                    subject,
                    DrsError::new("InternalError", error.to_string(), true),
                )
            }
        }
    }

    /// The outcomes of the tasks that have finished, without waiting.
    fn finished(&mut self) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        while let Some(joined) = self.tasks.try_join_next_with_id() {
            outcomes.push(self.settle(joined));
        }
        outcomes
    }

    async fn all(&mut self) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        while let Some(joined) = self.tasks.join_next_with_id().await {
            outcomes.push(self.settle(joined));
        }
        outcomes
    }
}

/// Times a server throttled past the SDK's own retries is tried again, each
/// time at a slower pace, before its failure is reported.
const THROTTLED_RETRIES: u32 = 4;

/// A throttling storm slows the run down instead of failing it: the region's
/// pace is halved and the server tried again, as long as the deadline allows.
async fn extend_riding_out_throttling(
    drs: &TargetDrs,
    settings: &ExtendSettings,
    staging: &SourceServerArn,
    tags: Option<&crate::tags::Tags>,
    deadline: Deadline,
) -> Outcome {
    let mut outcome = extend(drs, settings, staging, tags, Known::NotExtended).await;
    for _ in 0..THROTTLED_RETRIES {
        let throttled = matches!(&outcome, Outcome::Failed { error_code, .. } if error_code == "ThrottlingException");
        if !throttled || deadline.reached() {
            break;
        }
        drs.pace().slow_down();
        outcome = extend(drs, settings, staging, tags, Known::Unknown).await;
    }
    if matches!(outcome, Outcome::Created { .. }) {
        drs.pace().speed_up();
    }
    outcome
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
                    first: Ok(Page {
                        items,
                        next_token: more.then(|| "next".to_owned()),
                    }),
                });
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
        let events = fan_out_requests(&all, true);
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
