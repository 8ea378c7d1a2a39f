//! Extending one staging server, idempotently: create, and look before calling a
//! failed create a failure, so that a server already extended (by us on an earlier
//! delivery, or by anyone) ends `skipped` with its extended ARN, not `failed`, and
//! one this invocation made, though its reply was lost, ends `created`.
//!
//! Which it is never rests on a clock or on what DRS's timestamps mean: every
//! create carries a `drs-extender:request-id` tag naming the invocation, and the
//! extended server's tags (in the create's answer, or read back by the look) say
//! who made it. Creating first matters: the look (`DescribeSourceServers` by
//! staging account) returns every extended server of that account, a few KB
//! each, while a create on an extended server is one small call that fails.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use crate::aws::drs::{CreateFailed, TargetDrs};
use crate::aws::ec2::TargetEc2;
use crate::domain::arn::{AccountId, Region, SourceServerArn};
use crate::domain::aws_error::ErrorKind;
use crate::domain::deadline::Deadline;
use crate::domain::failure::Refusal;
use crate::domain::outcome::{ExtendedServer, MadeBy, Outcome, Subject};
use crate::domain::scope::UnfinishedReason;
use crate::domain::tags::{self, Tags};
use crate::domain::UNPOISONED;
use crate::run::baseline::Baseline;

/// What every extension in one run shares.
#[derive(Clone, Debug)]
pub struct ExtendSettings {
    pub configured_tags: Tags,
    pub copy_staging_tags: bool,
    pub dry_run: bool,
    /// Past it, a timed-out create gets no late look: the margin is for reporting.
    pub deadline: Deadline,
    /// The invocation's id, put on every extended server it makes.
    pub made_by: String,
    /// Set once an outcome event is given up: from then on no attempt of a
    /// create is sent, however far its server's work has gone.
    pub stop: Arc<AtomicBool>,
    /// `LAUNCH_BASELINE`, with what the run reads once for it.
    pub baseline: Option<Arc<Baseline>>,
}

impl ExtendSettings {
    /// Applies the launch baseline, where one is set, to a server this
    /// invocation created. Call it while the server holds its place for its
    /// event: the place covers these calls as it covers the create.
    pub async fn apply_baseline(
        &self,
        extension: &mut Extension,
        drs: &TargetDrs,
        ec2: Option<&TargetEc2>,
    ) {
        if let (Some(baseline), Extension::Done(outcome)) = (&self.baseline, extension) {
            baseline.settle(outcome, drs, ec2, &self.deadline).await;
        }
    }
}

/// Refusals met on creates that no retry changes: where a run, or an event's
/// servers, stop creating. Shared by the tasks of a run.
#[derive(Debug, Default)]
pub struct Refusals(Mutex<Vec<Met>>);

/// One refusal, and where it was met.
#[derive(Clone, Debug)]
pub struct Met {
    pub refusal: Refusal,
    server: SourceServerArn,
}

impl Refusals {
    /// Keeps the refusal an outcome reports, if it is one no retry changes.
    pub fn note(&self, server: &SourceServerArn, outcome: &Outcome) {
        let Outcome::Failed {
            error_code,
            quota_code,
            ..
        } = outcome
        else {
            return;
        };
        if let Some(refusal) = Refusal::of(error_code, quota_code.as_deref()) {
            self.0.lock().expect(UNPOISONED).push(Met {
                refusal,
                server: server.clone(),
            });
        }
    }

    /// The refusal that stops creating for this staging account in this region.
    pub fn met(&self, account: &AccountId, region: &Region) -> Option<Met> {
        self.0
            .lock()
            .expect(UNPOISONED)
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

/// What became of one server: an outcome, or nothing at all because no create
/// of it could have taken effect before the invocation's time ran out (it waited
/// its turn behind a lower DRS rate) or an outcome event was given up. The
/// caller reports the latter `unfinished` with the reason (`DEADLINE`,
/// `EVENTS_UNDELIVERED`), never `failed`: the next run takes it up.
#[derive(Debug)]
pub enum Extension {
    /// Boxed: an outcome is a few hundred bytes, and most tasks end in one.
    Done(Box<Outcome>),
    NotReached(UnfinishedReason),
}

pub async fn extend(
    drs: &TargetDrs,
    settings: &ExtendSettings,
    staging: &SourceServerArn,
    staging_tags: Option<&Tags>,
    known: Known,
) -> Extension {
    let deadline = &settings.deadline;
    if known == Known::Unknown && settings.dry_run {
        match drs.find_extended(staging, deadline).await {
            Ok(Some(extended)) => {
                return Extension::Done(Box::new(Outcome::already_extended(staging, extended)))
            }
            Ok(None) => {}
            Err(error) if error.is_deadline() => {
                return Extension::NotReached(UnfinishedReason::Deadline)
            }
            Err(error) => {
                return Extension::Done(Box::new(Outcome::failed(Subject::server(staging), error)))
            }
        }
    }
    if settings.dry_run {
        return Extension::Done(Box::new(Outcome::dry_run(staging)));
    }
    let copied = staging_tags.filter(|_| settings.copy_staging_tags);
    let (mut tags, dropped) = tags::for_extension(&settings.configured_tags, copied);
    if !dropped.is_empty() {
        tracing::info!(server = %staging, dropped = dropped.len(), "tags left off the extended server");
    }
    tags.insert(tags::MADE_BY_KEY.to_owned(), settings.made_by.clone());
    // A throttling storm, or a lower rate, slows the run down instead of failing
    // it: a throttled create is asked again (each attempt paced, the pace lowered
    // by the throttles) until the deadline. Whether any attempt, of any round,
    // may have taken effect is remembered for the look.
    let mut uncertain = false;
    let mut rounds = 0;
    let error = loop {
        rounds += 1;
        match drs
            .create_extended(staging, &tags, deadline, &settings.stop)
            .await
        {
            Ok(extended) => {
                let extended = match extended.made_by {
                    // DRS answered without the server's tags: read them back.
                    MadeBy::Unread => match drs.find_extended(staging, deadline).await {
                        Ok(Some(found)) => found,
                        _ => extended,
                    },
                    _ => extended,
                };
                // It succeeded: whatever the tags say, it may be this invocation's.
                return Extension::Done(Box::new(labelled(
                    settings, staging, extended, dropped, true,
                )));
            }
            Err(CreateFailed {
                error,
                may_have_taken_effect,
            }) => {
                uncertain |= may_have_taken_effect;
                let more = match deadline.calls_by() {
                    Some(_) => !deadline.reached(),
                    None => rounds < ROUNDS_WITHOUT_DEADLINE,
                };
                if error.is_throttling() && more {
                    continue;
                }
                break error;
            }
        }
    };
    // Held back before anything that could take effect was sent: not tried.
    if error.is_events_given_up() && !uncertain {
        return Extension::NotReached(UnfinishedReason::EventsUndelivered);
    }
    // A request the client gave up on, or whose reply was lost, may have taken
    // effect: look once now and, after a timeout, once more a moment later. Its
    // tag says whether this invocation made what the look finds. After a plain
    // refusal (every attempt answered 4xx) the look finds who made it too.
    let looks = if error.kind == ErrorKind::Timeout && !deadline.reached() {
        2
    } else {
        1
    };
    for look in 0..looks {
        if look > 0 {
            let pause = crate::domain::deadline::cut(LATE_EFFECT, deadline.calls_by());
            tokio::time::sleep_until(pause).await;
        }
        if let Ok(Some(extended)) = drs.find_extended(staging, deadline).await {
            return Extension::Done(Box::new(labelled(
                settings, staging, extended, dropped, uncertain,
            )));
        }
    }
    let waited_its_turn = error.is_deadline() || (error.is_throttling() && deadline.reached());
    if waited_its_turn && !uncertain {
        return Extension::NotReached(UnfinishedReason::Deadline);
    }
    Extension::Done(Box::new(Outcome::failed(Subject::server(staging), error)))
}

/// `created` when the extended server's tag names this invocation; `skipped`
/// when it names another or none. One whose tags DRS would not give is taken as
/// made by this invocation when one of its creates `may_have_made` it (it
/// succeeded, or an attempt was not a definite refusal): reporting it `created`
/// cannot lose an event, `skipped` would. After nothing but definite refusals,
/// no create of this invocation made it: `skipped`.
fn labelled(
    settings: &ExtendSettings,
    staging: &SourceServerArn,
    extended: ExtendedServer,
    dropped: Vec<tags::DroppedTag>,
    may_have_made: bool,
) -> Outcome {
    let ours = match &extended.made_by {
        MadeBy::Invocation(by) => *by == settings.made_by,
        MadeBy::Nobody => false,
        MadeBy::Unread => may_have_made,
    };
    if ours {
        Outcome::created(staging, extended, dropped)
    } else {
        Outcome::already_extended(staging, extended)
    }
}

/// Rounds of a throttled create when nothing else bounds them (an emulator's
/// invocation, which has no deadline).
const ROUNDS_WITHOUT_DEADLINE: u32 = 5;

/// How long a timed-out create is given to take effect before the last look.
const LATE_EFFECT: std::time::Duration = std::time::Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::arn::example_server;

    fn settings() -> ExtendSettings {
        ExtendSettings {
            configured_tags: Tags::new(),
            copy_staging_tags: false,
            dry_run: false,
            deadline: Deadline::none(),
            made_by: "req-1".to_owned(),
            stop: Arc::default(),
            baseline: None,
        }
    }

    fn found(made_by: MadeBy) -> ExtendedServer {
        ExtendedServer {
            id: "s-1".to_owned(),
            arn: "arn:aws:drs:us-east-1:444455556666:source-server/s-1".to_owned(),
            made_by,
        }
    }

    fn status(made_by: MadeBy, may_have_made: bool) -> &'static str {
        labelled(
            &settings(),
            &example_server(),
            found(made_by),
            Vec::new(),
            may_have_made,
        )
        .status()
    }

    #[test]
    fn an_untagged_extension_is_ours_only_if_a_create_of_ours_may_have_made_it() {
        // After nothing but definite refusals no create of ours made it, whatever
        // DRS left out of the look.
        assert_eq!(status(MadeBy::Unread, false), "skipped");
        assert_eq!(status(MadeBy::Unread, true), "created");
        // The tag decides wherever it was read.
        for may_have_made in [false, true] {
            assert_eq!(
                status(MadeBy::Invocation("req-1".into()), may_have_made),
                "created"
            );
            assert_eq!(
                status(MadeBy::Invocation("req-0".into()), may_have_made),
                "skipped"
            );
            assert_eq!(status(MadeBy::Nobody, may_have_made), "skipped");
        }
    }
}
