//! The reasons a run gives for what it left unfinished; the summary itself is
//! `domain::summary`.

use crate::domain::outcome::OutboundEvent;
pub use crate::domain::summary::Summary;

/// The `Reconciliation Completed` event of a closed summary.
pub fn completed_event(summary: &Summary) -> OutboundEvent {
    OutboundEvent {
        detail_type: "Reconciliation Completed",
        resources: Vec::new(),
        detail: serde_json::to_string(summary).unwrap_or_default(),
    }
}

pub const DEADLINE: &str = "DEADLINE";
pub const LISTING_FAILED: &str = "LISTING_FAILED";
pub const STAGING_ACCOUNTS_NOT_LISTED: &str = "STAGING_ACCOUNTS_NOT_LISTED";
pub const STILL_CHANGING: &str = "STILL_CHANGING";
pub const PAGE_TOKEN_REFUSED: &str = "PAGE_TOKEN_REFUSED";
pub const TASK_ENDED: &str = "TASK_ENDED";
/// An outcome event was given up: the run started no create after it.
pub const EVENTS_UNDELIVERED: &str = "EVENTS_UNDELIVERED";
/// Fan-out requests the bus did not take: their accounts were not handed on.
pub const FAN_OUT_UNDELIVERED: &str = "FAN_OUT_UNDELIVERED";
