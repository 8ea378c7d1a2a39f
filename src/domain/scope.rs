//! What a run covers and reports by scope: one staging account in one region.

use serde::Serialize;

use crate::domain::arn::{AccountId, Region};

/// One staging account in one region.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Scope {
    pub staging_account_id: AccountId,
    pub region: Region,
}

/// Why a run left a scope or a server undone: a closed set, written as
/// `unfinished[].reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UnfinishedReason {
    /// The invocation's deadline came first.
    Deadline,
    /// `ListExtensibleSourceServers` failed for the scope.
    ListingFailed,
    /// A region's staging accounts could not be listed.
    StagingAccountsNotListed,
    /// Servers kept appearing until the run stopped sweeping.
    StillChanging,
    /// DRS refused a page token it had handed out.
    PageTokenRefused,
    /// An outcome event was given up: the run started no create after it.
    EventsUndelivered,
    /// Fan-out requests the bus did not take: their accounts were not handed on.
    FanOutUndelivered,
    /// A listing stopped on a page token it had followed already.
    PageTokenRepeated,
    /// A listing stopped after `aws::paging::MAX_PAGES` pages.
    TooManyPages,
    /// Refusals no retry changes (`domain::failure::Refusal`).
    ServiceQuotaExceeded,
    UninitializedAccount,
    AccessDenied,
}

impl UnfinishedReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deadline => "DEADLINE",
            Self::ListingFailed => "LISTING_FAILED",
            Self::StagingAccountsNotListed => "STAGING_ACCOUNTS_NOT_LISTED",
            Self::StillChanging => "STILL_CHANGING",
            Self::PageTokenRefused => "PAGE_TOKEN_REFUSED",
            Self::EventsUndelivered => "EVENTS_UNDELIVERED",
            Self::FanOutUndelivered => "FAN_OUT_UNDELIVERED",
            Self::PageTokenRepeated => "PAGE_TOKEN_REPEATED",
            Self::TooManyPages => "TOO_MANY_PAGES",
            Self::ServiceQuotaExceeded => "SERVICE_QUOTA_EXCEEDED",
            Self::UninitializedAccount => "UNINITIALIZED_ACCOUNT",
            Self::AccessDenied => "ACCESS_DENIED",
        }
    }
}

impl std::fmt::Display for UnfinishedReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// By name, as the list of what is unfinished has always been sorted.
impl Ord for UnfinishedReason {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for UnfinishedReason {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// What a run left undone, and why.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unfinished {
    /// Absent when a region's staging accounts could not be listed at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staging_account_id: Option<AccountId>,
    pub region: Region,
    /// The server an event named and the invocation did not reach (the event
    /// path); absent in a reconciliation's, which speak of whole scopes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staging_source_server_arn: Option<String>,
    pub reason: UnfinishedReason,
}

impl Unfinished {
    pub fn server(arn: &crate::domain::arn::SourceServerArn, reason: UnfinishedReason) -> Self {
        Self {
            staging_account_id: Some(arn.account().clone()),
            region: arn.region().clone(),
            staging_source_server_arn: Some(arn.to_string()),
            reason,
        }
    }

    pub fn scope(scope: &Scope, reason: UnfinishedReason) -> Self {
        Self {
            staging_source_server_arn: None,
            staging_account_id: Some(scope.staging_account_id.clone()),
            region: scope.region.clone(),
            reason,
        }
    }
}

/// One staging account in one region, as the target account holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScopeCoverage {
    pub staging_account_id: AccountId,
    pub region: Region,
    /// Extended servers found, healthy or not.
    pub extended: usize,
    /// Of those, the ones DRS shows in `EXTENSION_ERROR`.
    pub extension_errors: usize,
    /// Servers this run tried to extend and could not.
    pub not_extended: usize,
    /// Readiness of the extended servers: could each be recovered now?
    pub ready: usize,
    pub syncing: usize,
    pub not_ready: usize,
    /// The not-ready ones by reason (`LAGGING`, `STALLED`, ...).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub not_ready_reasons: std::collections::BTreeMap<String, usize>,
    /// Launch settings checked this run (`launchChecked`, ...).
    #[serde(flatten)]
    pub launch: crate::domain::launch::LaunchCounts,
}

impl ScopeCoverage {
    /// Nothing found yet.
    pub fn new(scope: &Scope) -> Self {
        Self {
            staging_account_id: scope.staging_account_id.clone(),
            region: scope.region.clone(),
            extended: 0,
            extension_errors: 0,
            not_extended: 0,
            ready: 0,
            syncing: 0,
            not_ready: 0,
            not_ready_reasons: std::collections::BTreeMap::new(),
            launch: Default::default(),
        }
    }
}
