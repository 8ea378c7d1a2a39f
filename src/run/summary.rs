//! The `Reconciliation Completed` event; the summary itself is `domain::summary`,
//! the reasons for what a run left unfinished `domain::scope::UnfinishedReason`.

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
