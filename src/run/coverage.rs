//! Coverage: which staging servers the target account could recover right now.
//! Every reconciliation reads the target account's extended servers for the
//! accounts and regions it covers, counts them, sorts each by readiness, and
//! reports each one DRS can no longer reach (`EXTENSION_ERROR`), and the first
//! ones not ready, as they are found. Only counts are kept: a real record is a few
//! KB and there may be 15,000 of them.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::time::SystemTime;

use crate::aws::clients::Clients;
use crate::aws::drs::{write_time, TargetDrs};
use crate::aws::paging::{Paging, Stop};
use crate::domain::arn::{AccountId, Region};
use crate::domain::aws_error::{ReadStopped, Unread};
use crate::domain::deadline::Deadline;
use crate::domain::extended::{assess, CoverageRules, ExtendedRecord, Reach};
use crate::domain::extension_event::{
    detail_text, Deleted, ExtendedServerSubject, LastLaunch, NotReady, Unhealthy,
};
use crate::domain::outcome::{OutboundEvent, MAX_ERROR_MESSAGE};
use crate::domain::readiness::{lag_seconds, Readiness};
use crate::domain::scope::UnfinishedReason;
use crate::domain::scope::{Scope, ScopeCoverage};
use crate::domain::stale::{MarkChange, Repair, Stale, ERROR_SINCE_KEY};
use crate::run::launch::LaunchCandidate;
use crate::run::reporter::{Place, Reporter};

/// `DescribeSourceServers` takes at most 200 staging accounts a call.
const ACCOUNTS_PER_CALL: usize = 200;
/// Records a page: 200 of a few KB each keep a page near a megabyte.
const PAGE_SIZE: i32 = 200;

pub const UNHEALTHY_DETAIL_TYPE: &str = "Extended Source Server Unhealthy";
pub const NOT_READY_DETAIL_TYPE: &str = "Extended Source Server Not Ready";
pub const DELETED_DETAIL_TYPE: &str = "Extended Source Server Deleted";

/// `Extended Source Server Not Ready` events a run sends at most; the rest are
/// counted. A region gone bad would otherwise send one per server.
pub const MAX_NOT_READY_EVENTS: usize = 100;

#[derive(Debug, Default)]
pub struct CoverageReport {
    pub scopes: Vec<ScopeCoverage>,
    pub unread: Vec<Unread>,
    /// Not-ready servers past `MAX_NOT_READY_EVENTS`, counted but not sent.
    pub not_ready_unsent: usize,
    /// Stale extensions deleted (`STALE_EXTENSIONS=delete`).
    pub stale_deleted: usize,
    /// Reachable extended servers, for the launch check to choose from.
    pub launch_candidates: Vec<LaunchCandidate>,
}

impl CoverageReport {
    pub fn extended(&self) -> usize {
        self.scopes.iter().map(|s| s.extended).sum()
    }

    pub fn extension_errors(&self) -> usize {
        self.scopes.iter().map(|s| s.extension_errors).sum()
    }

    /// Ready, syncing and not-ready extended servers, in all.
    pub fn readiness(&self) -> (usize, usize, usize) {
        self.scopes.iter().fold((0, 0, 0), |(r, s, n), scope| {
            (r + scope.ready, s + scope.syncing, n + scope.not_ready)
        })
    }
}

/// Reads the coverage of `scopes`, region by region, at each region's pace and
/// within the deadline; each broken extension is reported as it is found. A
/// region that cannot be read is named in `unread`, never an error.
pub async fn read(
    clients: &Clients,
    scopes: &[Scope],
    deadline: Deadline,
    reporter: &Reporter,
    rules: &CoverageRules,
) -> CoverageReport {
    let mut by_region: BTreeMap<&Region, BTreeSet<&AccountId>> = BTreeMap::new();
    for scope in scopes {
        by_region
            .entry(&scope.region)
            .or_default()
            .insert(&scope.staging_account_id);
    }
    let mut reading = Reading {
        deadline,
        reporter,
        rules,
        now: SystemTime::now(),
        counts: scopes
            .iter()
            .map(|s| {
                (
                    (s.staging_account_id.clone(), s.region.clone()),
                    ScopeCoverage::new(s),
                )
            })
            .collect(),
        not_ready_sent: 0,
        report: CoverageReport::default(),
    };
    for (region, accounts) in by_region {
        let Some(drs) = clients.drs(region) else {
            continue;
        };
        let accounts: Vec<AccountId> = accounts.into_iter().cloned().collect();
        for chunk in accounts.chunks(ACCOUNTS_PER_CALL) {
            if let Err(stop) = reading.read_chunk(&drs, region, chunk).await {
                reading.report.unread.push(Unread {
                    region: region.clone(),
                    staging_accounts: chunk.len(),
                    error_code: unread(region, stop),
                });
            }
        }
    }
    CoverageReport {
        scopes: reading.counts.into_values().collect(),
        ..reading.report
    }
}

/// One coverage read under way: what it judges by, and what it has found.
struct Reading<'a> {
    deadline: Deadline,
    reporter: &'a Reporter,
    rules: &'a CoverageRules,
    now: SystemTime,
    counts: BTreeMap<(AccountId, Region), ScopeCoverage>,
    not_ready_sent: usize,
    /// All but the scopes, which are `counts` until the end.
    report: CoverageReport,
}

impl Reading<'_> {
    /// The extended servers of one call's staging accounts, page by page.
    async fn read_chunk(
        &mut self,
        drs: &TargetDrs,
        region: &Region,
        chunk: &[AccountId],
    ) -> Result<(), Stop> {
        let deadline = self.deadline;
        let mut listing = Paging::until(deadline);
        // A page DRS hands out twice (under a token not yet seen) must not
        // count its servers twice: each is remembered by a hash of its ARN,
        // eight bytes a server.
        let mut counted: HashSet<u64> = HashSet::new();
        while let Some(records) = listing
            .next(|token| drs.extended_records(chunk, token, PAGE_SIZE, &deadline))
            .await?
        {
            for record in records {
                if counted.insert(hash_of(&record.arn)) {
                    self.take(drs, region, record).await;
                }
            }
        }
        Ok(())
    }

    /// Counts one extended server in its scope and acts as it is assessed.
    async fn take(&mut self, drs: &TargetDrs, region: &Region, record: ExtendedRecord) {
        let Ok(account) = AccountId::parse(&record.staging_account) else {
            return;
        };
        let scope = (account, region.clone());
        let Some(coverage) = self.counts.get_mut(&scope) else {
            return;
        };
        let assessment = assess(&record, self.rules, self.now);
        assessment.count(coverage);
        self.mark(drs, region, &record.arn, &assessment.mark).await;
        match assessment.reach {
            Reach::Unreachable(stale) => self.unreachable(drs, region, &record, stale).await,
            Reach::Reachable { made_now } => {
                if let Readiness::NotReady(reason) = &assessment.readiness {
                    self.not_ready(&record, region, reason).await;
                }
                self.report.launch_candidates.push(LaunchCandidate {
                    id: record.id,
                    arn: record.arn,
                    staging_arn: record.staging_arn,
                    staging_account: scope.0,
                    region: region.clone(),
                    source_ip: record.source_ip,
                    made_now,
                });
            }
        }
    }

    async fn mark(&self, drs: &TargetDrs, region: &Region, arn: &str, change: &MarkChange) {
        let deadline = &self.deadline;
        let marked = match change {
            MarkChange::Set(at) => {
                drs.tag(arn, ERROR_SINCE_KEY, &write_time(*at), deadline)
                    .await
            }
            MarkChange::Clear => drs.untag(arn, ERROR_SINCE_KEY, deadline).await,
            MarkChange::Keep => Ok(()),
        };
        if let Err(error) = marked {
            // The next run marks it again: the clock starts late, never early.
            tracing::warn!(%region, %error, "could not change a broken extension's mark");
        }
    }

    /// `Unhealthy`; a stale one to be deleted is deleted first, and `Deleted`
    /// is sent instead when the delete goes through.
    async fn unreachable(
        &mut self,
        drs: &TargetDrs,
        region: &Region,
        record: &ExtendedRecord,
        stale: Option<Stale>,
    ) {
        // A place kept until this server's event is out: a delete that failed
        // may still have taken effect (no answer), and its `Unhealthy` event is
        // then all that tells of it.
        let (mut delete_failed, mut held) = (None, None);
        if let Some(Stale {
            since,
            repair: Repair::Delete,
        }) = &stale
        {
            match delete_stale(drs, record, &self.deadline, self.reporter).await {
                Ok(place) => {
                    self.report.stale_deleted += 1;
                    let deleted = deleted_event(record, region, since, self.reporter);
                    self.reporter.send_held(deleted, Some(place)).await;
                    return;
                }
                Err((why, place)) => {
                    tracing::warn!(%region, why, "a stale extension was kept");
                    (delete_failed, held) = (Some(why), place);
                }
            }
        }
        let unhealthy =
            unhealthy_event(record, region, stale.as_ref(), delete_failed, self.reporter);
        self.reporter.send_held(unhealthy, held).await;
    }

    /// `Not Ready`, for the first [`MAX_NOT_READY_EVENTS`]; the rest counted.
    async fn not_ready(&mut self, record: &ExtendedRecord, region: &Region, reason: &str) {
        if self.not_ready_sent >= MAX_NOT_READY_EVENTS {
            self.report.not_ready_unsent += 1;
            return;
        }
        self.not_ready_sent += 1;
        let event = not_ready_event(record, region, reason, self.reporter);
        self.reporter.send(event).await;
    }
}

/// Why a read stopped short, as `coverageUnread` says it.
fn unread(region: &Region, stop: Stop) -> ReadStopped {
    match &stop {
        Stop::Deadline => {}
        Stop::Failed(error) => tracing::warn!(%region, %error, "could not read coverage"),
        Stop::Short(reason) => tracing::warn!(%region, %reason, "coverage read stopped short"),
    }
    stop.into()
}

/// Deletes a stale extension the way a create is made, admitted by the run's
/// gate ([`Reporter::admit`]). Answers the place, for the event that tells of
/// it, and on failure why the extension was kept (`deleteFailed`), with the
/// place where a delete was sent (it may have taken effect).
async fn delete_stale(
    drs: &TargetDrs,
    record: &ExtendedRecord,
    deadline: &Deadline,
    reporter: &Reporter,
) -> Result<Place, (String, Option<Place>)> {
    let place = match reporter.admit(deadline, async {}).await {
        Ok((place, ())) => place,
        Err(withheld) => return Err((withheld.as_str().to_owned(), None)),
    };
    let shown_disconnected = record.replication.state.as_deref() == Some("DISCONNECTED");
    match drs
        .delete_extended(
            &record.id,
            shown_disconnected,
            deadline,
            reporter.given_up_flag(),
        )
        .await
    {
        Ok(()) => Ok(place),
        Err(error) if error.is_events_given_up() => Err((
            UnfinishedReason::EventsUndelivered.as_str().to_owned(),
            Some(place),
        )),
        Err(error) => Err((error.code().to_owned(), Some(place))),
    }
}

pub(crate) fn hash_of(arn: &str) -> u64 {
    static HASHER: std::sync::OnceLock<RandomState> = std::sync::OnceLock::new();
    HASHER.get_or_init(RandomState::new).hash_one(arn)
}

/// What every event about this extended server says of it.
fn subject_of<'a>(
    record: &'a ExtendedRecord,
    region: &'a Region,
    reporter: &'a Reporter,
) -> ExtendedServerSubject<'a> {
    ExtendedServerSubject {
        extended_source_server_arn: &record.arn,
        staging_source_server_arn: &record.staging_arn,
        staging_account_id: &record.staging_account,
        region,
        trigger: reporter.trigger(),
    }
}

/// `Extended Source Server Unhealthy`: DRS cannot reach the staging server behind
/// this extended server, so it cannot be recovered in the target account.
/// A stale one carries `staleSince`, and, where `delete` was set but the server
/// was kept, why (`deleteWithheld`, `wouldDelete` in a dry run, `deleteFailed`).
fn unhealthy_event(
    record: &ExtendedRecord,
    region: &Region,
    stale: Option<&Stale>,
    delete_failed: Option<String>,
    reporter: &Reporter,
) -> OutboundEvent {
    let message = record.extension_error.as_deref().unwrap_or_default();
    let repair = stale.map(|s| &s.repair);
    let detail = Unhealthy {
        subject: subject_of(record, region, reporter),
        extension_status: "EXTENSION_ERROR",
        error_message: message.chars().take(MAX_ERROR_MESSAGE).collect(),
        stale_since: stale.map(|s| s.since.as_str()),
        would_delete: matches!(repair, Some(Repair::WouldDelete)),
        delete_withheld: match repair {
            Some(Repair::Kept(why)) => Some(*why),
            _ => None,
        },
        delete_failed,
    };
    OutboundEvent {
        detail_type: UNHEALTHY_DETAIL_TYPE,
        resources: vec![record.staging_arn.clone(), record.arn.clone()],
        detail: detail_text(&detail),
    }
}

/// `Extended Source Server Deleted`: a stale extension, deleted; the next sweep
/// extends its staging server again if DRS lists it as extensible.
fn deleted_event(
    record: &ExtendedRecord,
    region: &Region,
    since: &str,
    reporter: &Reporter,
) -> OutboundEvent {
    let detail = Deleted {
        subject: subject_of(record, region, reporter),
        reason: "STALE_EXTENSION",
        stale_since: since,
    };
    OutboundEvent {
        detail_type: DELETED_DETAIL_TYPE,
        resources: vec![record.staging_arn.clone(), record.arn.clone()],
        detail: detail_text(&detail),
    }
}

/// `Extended Source Server Not Ready`: extended, and reachable, but not
/// recoverable as it stands (stalled, lagging, not drilled, ...).
fn not_ready_event(
    record: &ExtendedRecord,
    region: &Region,
    reason: &str,
    reporter: &Reporter,
) -> OutboundEvent {
    let replication = &record.replication;
    let detail = NotReady {
        subject: subject_of(record, region, reporter),
        reason,
        data_replication_state: replication.state.as_deref(),
        lag_seconds: replication.lag.as_deref().and_then(lag_seconds),
        last_launch: LastLaunch {
            api_call_date_time: replication.last_launch_at.as_deref(),
            kind: replication.last_launch_type.as_deref(),
            status: replication.last_launch_status.as_deref(),
            job_id: replication.last_launch_job_id.as_deref(),
        },
        last_launch_result: replication.last_launch_result.as_deref(),
        replication_error: replication.error.as_deref(),
    };
    OutboundEvent {
        detail_type: NOT_READY_DETAIL_TYPE,
        resources: vec![record.staging_arn.clone(), record.arn.clone()],
        detail: detail_text(&detail),
    }
}
