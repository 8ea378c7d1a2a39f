//! Extending one staging server, idempotently: create, and look before calling a
//! failed create a failure, so that a server already extended (by us on an earlier
//! delivery, or by anyone) ends `skipped` with its extended ARN, not `failed`, and
//! one this request made, though its reply was lost, ends `created`: DRS's
//! `addedToServiceDateTime` against when the request was sent tells them apart.
//! Creating first matters: the look (`DescribeSourceServers` by staging account)
//! returns every extended server of that account, a few KB each, while a create on
//! an extended server is one small call that fails.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::aws::drs::{CreateFailed, TargetDrs};
use crate::domain::arn::{AccountId, Region, SourceServerArn};
use crate::domain::deadline::Deadline;
use crate::domain::failure::Refusal;
use crate::domain::outcome::ExtendedServer;
use crate::domain::outcome::{Outcome, Subject};
use crate::domain::tags::{self, Tags};

/// What every extension in one run shares.
#[derive(Clone, Debug)]
pub struct ExtendSettings {
    pub configured_tags: Tags,
    pub copy_staging_tags: bool,
    pub dry_run: bool,
    /// Past it, a timed-out create gets no late look: the margin is for reporting.
    pub deadline: Deadline,
}

/// Refusals met on creates that no retry changes: where a run, or an event's
/// servers, stop creating. Shared by the tasks of a run.
#[derive(Debug, Default)]
pub struct Refusals(Mutex<Vec<Met>>);

/// One refusal, where it was met, and DRS's code for it.
#[derive(Clone, Debug)]
pub struct Met {
    pub refusal: Refusal,
    pub code: String,
    server: SourceServerArn,
}

impl Refusals {
    /// Keeps the refusal an outcome reports, if it is one no retry changes.
    pub fn note(&self, server: &SourceServerArn, outcome: &Outcome) {
        let Outcome::Failed { error_code, .. } = outcome else {
            return;
        };
        if let Some(refusal) = Refusal::of(error_code) {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).push(Met {
                refusal,
                code: error_code.clone(),
                server: server.clone(),
            });
        }
    }

    /// The refusal that stops creating for this staging account in this region.
    pub fn met(&self, account: &AccountId, region: &Region) -> Option<Met> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|m| m.refusal.reaches(&m.server, (account, region)))
            .cloned()
    }
}

/// Whether the caller already knows the server is not extended (reconciliation
/// lists only extensible servers). Only a dry run, which makes no create to learn
/// from, looks first when it does not know.
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
    let deadline = &settings.deadline;
    if known == Known::Unknown && settings.dry_run {
        match drs.find_extended(staging, deadline).await {
            Ok(Some(extended)) => return Outcome::already_extended(staging, extended),
            Ok(None) => {}
            Err(error) => return Outcome::failed(Subject::server(staging), error),
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
    let asked_at = SystemTime::now();
    let failed = match drs.create_extended(staging, &tags, deadline).await {
        // DRS may answer a create of a server already extended with that server.
        Ok(extended) if made_before(&extended, asked_at) => {
            return Outcome::already_extended(staging, extended)
        }
        Ok(extended) => return Outcome::created(staging, extended, dropped),
        Err(failed) => failed,
    };
    let CreateFailed {
        error,
        may_have_taken_effect,
    } = failed;
    // A request the client gave up on, or whose reply was lost, may have taken
    // effect: look once now and, after a timeout, once more a moment later. What
    // the look finds was made by this request if DRS made it after it was sent;
    // after a plain refusal (every attempt answered 4xx), it was there before.
    let looks = if error.code == "Timeout" && !deadline.reached() {
        2
    } else {
        1
    };
    for look in 0..looks {
        if look > 0 {
            tokio::time::sleep(LATE_EFFECT).await;
        }
        if let Ok(Some(extended)) = drs.find_extended(staging, deadline).await {
            return if !may_have_taken_effect || made_before(&extended, asked_at) {
                Outcome::already_extended(staging, extended)
            } else {
                Outcome::created(staging, extended, dropped)
            };
        }
    }
    Outcome::failed(Subject::server(staging), error)
}

/// Times a server throttled past the SDK's own retries is tried again (each
/// attempt paced, the pace lowered by the throttles) before its failure is reported.
const THROTTLED_RETRIES: u32 = 4;

/// A throttling storm slows the run down instead of failing it, as long as the
/// deadline allows.
pub async fn extend_riding_out_throttling(
    drs: &TargetDrs,
    settings: &ExtendSettings,
    staging: &SourceServerArn,
    tags: Option<&Tags>,
    known: Known,
) -> Outcome {
    let mut outcome = extend(drs, settings, staging, tags, known).await;
    for _ in 0..THROTTLED_RETRIES {
        let throttled = matches!(&outcome, Outcome::Failed { error_code, .. } if error_code == "ThrottlingException");
        if !throttled || settings.deadline.reached() {
            break;
        }
        outcome = extend(drs, settings, staging, tags, Known::Unknown).await;
    }
    outcome
}

/// How long a timed-out create is given to take effect before the last look.
const LATE_EFFECT: std::time::Duration = std::time::Duration::from_secs(1);

/// Clocks differ by this much at most between the function and DRS (both keep
/// NTP time; DRS stamps an extension after the request arrives).
const CLOCK_SKEW: Duration = Duration::from_secs(1);

/// Whether the extended server existed before this invocation asked for it. One
/// whose time DRS does not give is taken as made by the request that found it:
/// reporting it `created` cannot lose an event, `skipped` would.
fn made_before(extended: &ExtendedServer, asked_at: SystemTime) -> bool {
    extended
        .added_at
        .is_some_and(|added| added + CLOCK_SKEW < asked_at)
}
