//! Extending one staging server, idempotently: look first, create, and look again
//! before calling a failed create a failure, so that a server extended meanwhile
//! (by us on an earlier delivery, or by anyone) ends `skipped`, not `failed`.

use crate::arn::SourceServerArn;
use crate::deadline::Deadline;
use crate::drs::TargetDrs;
use crate::outcome::{Outcome, Subject};
use crate::tags::{self, Tags};

/// What every extension in one run shares.
#[derive(Clone, Debug)]
pub struct ExtendSettings {
    pub configured_tags: Tags,
    pub copy_staging_tags: bool,
    pub dry_run: bool,
    /// Past it, a timed-out create gets no late look: the margin is for reporting.
    pub deadline: Deadline,
}

/// Whether the caller already knows the server is not extended (reconciliation
/// lists only extensible servers), which saves the first look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Known {
    Unknown,
    NotExtended,
}

pub async fn extend(
    drs: &TargetDrs,
    settings: &ExtendSettings,
    staging: &SourceServerArn,
    staging_tags: Option<&Tags>,
    known: Known,
) -> Outcome {
    if known == Known::Unknown {
        match drs.find_extended(staging).await {
            Ok(Some(extended)) => return Outcome::already_extended(staging, extended),
            Ok(None) => {}
            // A dry run has nothing else to go on; a real run lets the create decide.
            Err(error) if settings.dry_run => {
                return Outcome::failed(Subject::server(staging), error)
            }
            Err(error) => {
                tracing::warn!(server = %staging, %error, "could not check for an extended server first")
            }
        }
    }
    if settings.dry_run {
        return Outcome::dry_run(staging);
    }
    let copied = staging_tags.filter(|_| settings.copy_staging_tags);
    let (tags, dropped) = tags::for_extension(&settings.configured_tags, copied);
    if !dropped.is_empty() {
        tracing::info!(server = %staging, dropped = dropped.len(), "tags left off the extended server");
    }
    let error = match drs.create_extended(staging, &tags).await {
        Ok(extended) => return Outcome::created(staging, extended, dropped),
        Err(error) => error,
    };
    // A request the client gave up on may still be in the service's hands: look
    // once now and, after a timeout, once more a moment later.
    let looks = if error.code == "Timeout" && !settings.deadline.reached() {
        2
    } else {
        1
    };
    for look in 0..looks {
        if look > 0 {
            tokio::time::sleep(LATE_EFFECT).await;
        }
        if let Ok(Some(extended)) = drs.find_extended(staging).await {
            return Outcome::already_extended(staging, extended);
        }
    }
    Outcome::failed(Subject::server(staging), error)
}

/// How long a timed-out create is given to take effect before the last look.
const LATE_EFFECT: std::time::Duration = std::time::Duration::from_secs(1);
