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
    pub reason: &'static str,
}

impl Unfinished {
    pub fn server(arn: &crate::domain::arn::SourceServerArn, reason: &'static str) -> Self {
        Self {
            staging_account_id: Some(arn.account().clone()),
            region: arn.region().clone(),
            staging_source_server_arn: Some(arn.to_string()),
            reason,
        }
    }

    pub fn scope(scope: &Scope, reason: &'static str) -> Self {
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

/// Accounts in a region whose coverage could not be read, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unread {
    pub region: Region,
    pub staging_accounts: usize,
    pub error_code: String,
}
