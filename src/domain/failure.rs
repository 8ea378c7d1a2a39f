//! Which of DRS's refusals no retry changes, and how far each reaches; a
//! configuration value that does not parse.

use crate::domain::arn::{AccountId, Region, SourceServerArn};
use crate::domain::quota::SOURCE_SERVER_QUOTA_CODE;
use crate::domain::scope::UnfinishedReason;

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

/// A configuration value that does not parse; it stops the start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {why}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub why: String,
}
