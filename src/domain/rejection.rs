//! Why a request is refused before any DRS call.

use crate::domain::arn::{AccountId, SourceServerArn};

/// Why a request is refused before any DRS call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub reason: String,
    pub staging_account: Option<AccountId>,
    pub staging_arn: Option<SourceServerArn>,
}

impl Rejection {
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            staging_account: None,
            staging_arn: None,
        }
    }

    pub(crate) fn for_account(reason: impl Into<String>, account: Option<&AccountId>) -> Self {
        Self {
            staging_account: account.cloned(),
            ..Self::new(reason)
        }
    }
}
