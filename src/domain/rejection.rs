//! Why a request is refused before any DRS call.

use crate::domain::arn::{AccountId, SourceServerArn};

/// Why a request is refused before any DRS call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub reason: String,
    pub staging_account: Option<AccountId>,
    /// Boxed: a rejection travels in `Err` through every check, and stays small.
    pub staging_arn: Option<Box<SourceServerArn>>,
    /// Refused for a region this function does not serve: counted on its own, since
    /// a staging account replicating in a region nobody serves is a deployment
    /// mistake an alarm must show, not bad input.
    pub region_not_served: bool,
}

impl Rejection {
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            staging_account: None,
            staging_arn: None,
            region_not_served: false,
        }
    }

    pub(crate) fn region_not_served(reason: impl Into<String>) -> Self {
        Self {
            region_not_served: true,
            ..Self::new(reason)
        }
    }

    pub(crate) fn for_account(reason: impl Into<String>, account: Option<&AccountId>) -> Self {
        Self {
            staging_account: account.cloned(),
            ..Self::new(reason)
        }
    }
}
