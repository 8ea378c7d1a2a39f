//! What a DRS call that did not succeed said, and which of DRS's refusals no retry
//! changes: the facts that drive retries, outcome events and whether an invocation
//! fails. Read from the SDK's errors in `aws::sdk_error`.

use crate::domain::arn::{AccountId, Region, SourceServerArn};
use crate::domain::quota::SOURCE_SERVER_QUOTA_CODE;
use crate::domain::scope::UnfinishedReason;

/// A DRS call that did not succeed, as DRS (or the network) put it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct DrsError {
    pub code: String,
    pub message: String,
    pub retryable: bool,
    /// The `quotaCode` of a `ServiceQuotaExceededException`: which quota was met.
    pub quota_code: Option<String>,
}

/// DRS's answer when a quota is met; its `quotaCode` says which.
pub const QUOTA_EXCEEDED: &str = "ServiceQuotaExceededException";

/// Whether a refusal met the target account's source-server quota. DRS's model
/// documents `quotaCode` only as "Quota code", not its form: a refusal is taken
/// for the source-server quota (the one a create counts against) unless it names
/// another Service Quotas code (`L-...`). A value of another form, or none, does
/// not show that another quota was met.
pub fn is_source_server_quota(code: &str, quota_code: Option<&str>) -> bool {
    code == QUOTA_EXCEEDED
        && quota_code.is_none_or(|q| q == SOURCE_SERVER_QUOTA_CODE || !q.starts_with("L-"))
}

/// How far a refusal that no retry changes reaches for the rest of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Every create in the region: the target account's quota is used up, or DRS
    /// is not initialised there.
    Region(UnfinishedReason),
    /// Every create from one staging account in the region: it does not trust the
    /// target account.
    StagingAccount(UnfinishedReason),
}

impl Refusal {
    /// Whether DRS's `code`, met on a create, holds for the rest of the run, and
    /// how far; the reason is what `unfinished` says.
    pub fn of(code: &str, quota_code: Option<&str>) -> Option<Self> {
        match code {
            // Another quota's reach is not documented: it fails its server alone.
            QUOTA_EXCEEDED if !is_source_server_quota(code, quota_code) => None,
            QUOTA_EXCEEDED => Some(Self::Region(UnfinishedReason::ServiceQuotaExceeded)),
            "UninitializedAccountException" => {
                Some(Self::Region(UnfinishedReason::UninitializedAccount))
            }
            "AccessDeniedException" => Some(Self::StagingAccount(UnfinishedReason::AccessDenied)),
            _ => None,
        }
    }

    /// What a run's `unfinished` says of what it stopped.
    pub fn reason(&self) -> UnfinishedReason {
        match self {
            Self::Region(reason) | Self::StagingAccount(reason) => *reason,
        }
    }

    /// Whether this refusal, met for `met_in`, stops creating for `server`.
    pub fn reaches(&self, met_in: &SourceServerArn, server: (&AccountId, &Region)) -> bool {
        met_in.region() == server.1
            && (matches!(self, Self::Region(_)) || met_in.account() == server.0)
    }
}

/// The code of a listing stopped by the invocation's deadline, not by DRS.
pub const DEADLINE_REACHED: &str = "DeadlineReached";

/// The code of a create or delete not sent because an outcome event was given up.
pub const EVENTS_GIVEN_UP: &str = "EventsGivenUp";

impl DrsError {
    /// A create or delete held back, unsent, once an outcome event was given up:
    /// the run makes no change the bus could not tell of.
    pub fn events_given_up() -> Self {
        Self::new(
            EVENTS_GIVEN_UP,
            "not sent: an outcome event was given up, so no more changes are made",
            true,
        )
    }

    pub fn is_events_given_up(&self) -> bool {
        self.code == EVENTS_GIVEN_UP
    }

    pub fn deadline_reached() -> Self {
        Self::new(
            DEADLINE_REACHED,
            "stopped at the invocation's deadline",
            true,
        )
    }

    pub fn is_deadline(&self) -> bool {
        self.code == DEADLINE_REACHED
    }

    pub fn new(code: impl Into<String>, message: impl Into<String>, retryable: bool) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            retryable,
            quota_code: None,
        }
    }
}

/// A configuration value that does not parse; it stops the start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {why}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub why: String,
}
