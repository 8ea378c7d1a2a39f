//! The `Reconciliation Completed` summary: what a reconciliation did, typed from
//! the moment it is counted until it is written (the event, the response, the
//! metrics all read these fields, never keys of a JSON value).

use std::collections::BTreeSet;

use serde::Serialize;

use crate::domain::arn::{AccountId, Region};
use crate::domain::scope::{Scope, Unfinished};

/// Outcomes of an invocation, by status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub created: usize,
    pub skipped: usize,
    pub failed: usize,
    pub rejected: usize,
    /// Servers created whose launch baseline could not be applied.
    pub launch_baseline_failed: usize,
}

/// The `Reconciliation Completed` detail.
#[derive(Clone, Debug, PartialEq, Serialize)]
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
    /// Readiness of those extended servers; `notReady` counts them all, also the
    /// ones past the events' cap (`notReadyUnsent`).
    pub ready: usize,
    pub syncing: usize,
    pub not_ready: usize,
    #[serde(skip_serializing_if = "is_zero")]
    pub not_ready_unsent: usize,
    /// Servers this run created whose launch baseline (`LAUNCH_BASELINE`) could
    /// not be applied; they stay `created`.
    #[serde(skip_serializing_if = "is_zero")]
    pub launch_baseline_failed: usize,
    /// Stale extensions this run deleted (`STALE_EXTENSIONS=delete`).
    pub stale_deleted: usize,
    /// Launch settings checked (`launchChecked`, `launchNotReady`,
    /// `launchNotReadyReasons`, `launchUnchecked`), and not-ready ones past the
    /// events' cap.
    #[serde(flatten)]
    pub launch: crate::domain::launch::LaunchCounts,
    #[serde(skip_serializing_if = "is_zero")]
    pub launch_not_ready_unsent: usize,
    /// Where coverage could not be read (those counts are then short).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub coverage_unread: Vec<crate::domain::aws_error::Unread>,
    /// The target account's source-server quota, per region (absent in the run
    /// of a fan-out request: the run that fanned out reports it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub quota: Vec<crate::domain::quota::RegionQuota>,
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
            ready: 0,
            syncing: 0,
            not_ready: 0,
            not_ready_unsent: 0,
            launch_baseline_failed: 0,
            stale_deleted: 0,
            launch: Default::default(),
            launch_not_ready_unsent: 0,
            coverage_unread: Vec::new(),
            quota: Vec::new(),
            nothing_to_cover: None,
        }
    }

    /// Closes the summary: the counts of every outcome of the invocation, and
    /// whether anything was left undone.
    pub fn close(&mut self, counts: Counts, mut unfinished: Vec<Unfinished>, duration_ms: u64) {
        self.created = counts.created;
        self.skipped = counts.skipped;
        self.failed = counts.failed;
        self.rejected = counts.rejected;
        self.launch_baseline_failed = counts.launch_baseline_failed;
        unfinished.sort();
        unfinished.dedup();
        self.complete = unfinished.is_empty();
        self.unfinished = unfinished;
        self.duration_ms = duration_ms;
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}
