//! Stale extensions: an extended server in `EXTENSION_ERROR` cannot be recovered,
//! still counts against the quota, and keeps its staging server's agent from
//! moving. When it was first seen broken is kept on the server itself, as a tag
//! (DRS holds the state; the function keeps none), and once that is
//! `STALE_AFTER_HOURS` old the server is reported, or deleted.

use std::time::{Duration, SystemTime};

use crate::domain::readiness::Replication;

/// When the function first saw the extension in `EXTENSION_ERROR`, by its own
/// clock (RFC 3339); the second of the two keys the interface reserves.
pub const ERROR_SINCE_KEY: &str = "drs-extender:error-since";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StaleAction {
    Report,
    Delete,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaleRules {
    pub action: StaleAction,
    pub after: Duration,
}

impl Default for StaleRules {
    fn default() -> Self {
        Self {
            action: StaleAction::Report,
            after: Duration::from_secs(72 * 3_600),
        }
    }
}

/// The mark as found on a server: as written, and read as a time by the
/// adapter (`None` when it does not read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    pub written: String,
    pub at: Option<SystemTime>,
}

/// What to do with the mark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MarkChange {
    /// Broken and unmarked (or marked with something that is not a time): mark
    /// it with this time.
    Set(SystemTime),
    /// Healthy again: take the mark off.
    Clear,
    Keep,
}

/// What a stale extension gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Repair {
    /// Reported with `staleSince` (the `report` setting).
    Report,
    Delete,
    /// A dry run, which says what it would delete.
    WouldDelete,
    /// Kept whatever the setting.
    Kept(Withheld),
}

/// Why a stale extension is kept whatever the setting: `deleteWithheld`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Withheld {
    /// It has a recovery instance.
    HasRecoveryInstance,
    /// It was launched (drill or recovery) within `STALE_AFTER_HOURS`.
    RecentLaunch,
}

/// A stale extension: since when, and what it gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stale {
    pub since: String,
    pub repair: Repair,
}

/// Decides the mark and, for a stale extension, its repair. `now` is the
/// function's clock, which also wrote the mark: no DRS timestamp is trusted but
/// the last launch's, and that only to keep a server.
pub fn decide(
    extension_error: bool,
    mark: Option<&Mark>,
    replication: &Replication,
    rules: &StaleRules,
    dry_run: bool,
    now: SystemTime,
) -> (MarkChange, Option<Stale>) {
    let marked_at = mark.and_then(|m| m.at);
    if !extension_error {
        let change = if mark.is_some() {
            MarkChange::Clear
        } else {
            MarkChange::Keep
        };
        return (change, None);
    }
    let Some(since) = marked_at else {
        // The clock starts now: a server is never deleted on a mark it did not
        // carry for the whole of STALE_AFTER_HOURS.
        return (MarkChange::Set(now), None);
    };
    let age = now.duration_since(since).unwrap_or(Duration::ZERO);
    if age < rules.after {
        return (MarkChange::Keep, None);
    }
    let since = mark.map(|m| m.written.clone()).unwrap_or_default();
    let launched_recently = replication
        .last_launch_time
        .is_some_and(|at| now.duration_since(at).map_or(true, |age| age < rules.after));
    let repair = match rules.action {
        StaleAction::Report => Repair::Report,
        StaleAction::Delete if replication.recovery_instance_id.is_some() => {
            Repair::Kept(Withheld::HasRecoveryInstance)
        }
        StaleAction::Delete if launched_recently => Repair::Kept(Withheld::RecentLaunch),
        StaleAction::Delete if dry_run => Repair::WouldDelete,
        StaleAction::Delete => Repair::Delete,
    };
    (MarkChange::Keep, Some(Stale { since, repair }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3_600);

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_299_200)
    }

    /// A mark written `hours` before now.
    fn ago(hours: u64) -> Mark {
        Mark {
            written: format!("{hours} hours ago"),
            at: Some(now() - HOUR * hours as u32),
        }
    }

    fn delete() -> StaleRules {
        StaleRules {
            action: StaleAction::Delete,
            ..StaleRules::default()
        }
    }

    #[test]
    fn the_mark_is_set_kept_and_cleared() {
        let unreadable = Mark {
            written: "yesterday".into(),
            at: None,
        };
        let r = Replication::default();
        let rules = StaleRules::default();
        let (change, stale) = decide(true, None, &r, &rules, false, now());
        assert_eq!(change, MarkChange::Set(now()));
        assert!(stale.is_none());
        let (change, stale) = decide(true, Some(&ago(10)), &r, &rules, false, now());
        assert_eq!((change, stale), (MarkChange::Keep, None));
        assert_eq!(
            decide(false, Some(&ago(10)), &r, &rules, false, now()).0,
            MarkChange::Clear
        );
        assert_eq!(
            decide(false, None, &r, &rules, false, now()).0,
            MarkChange::Keep
        );
        assert!(
            matches!(
                decide(true, Some(&unreadable), &r, &rules, false, now()).0,
                MarkChange::Set(_)
            ),
            "a mark that is not a time starts the clock again"
        );
    }

    #[test]
    fn stale_after_the_hours_and_reported_or_deleted() {
        let r = Replication::default();
        let mark = ago(72);
        let (_, stale) = decide(true, Some(&mark), &r, &StaleRules::default(), false, now());
        assert_eq!(
            stale,
            Some(Stale {
                since: mark.written.clone(),
                repair: Repair::Report
            })
        );
        let (_, stale) = decide(true, Some(&mark), &r, &delete(), false, now());
        assert_eq!(stale.unwrap().repair, Repair::Delete);
        let (_, stale) = decide(true, Some(&mark), &r, &delete(), true, now());
        assert_eq!(stale.unwrap().repair, Repair::WouldDelete);
        let (_, stale) = decide(true, Some(&ago(71)), &r, &delete(), false, now());
        assert!(stale.is_none());
    }

    #[test]
    fn never_one_with_a_recovery_instance_or_a_recent_launch() {
        let mark = ago(100);
        let recovering = Replication {
            recovery_instance_id: Some("i-0123456789abcdef0".into()),
            ..Replication::default()
        };
        let (_, stale) = decide(true, Some(&mark), &recovering, &delete(), false, now());
        assert_eq!(
            stale.unwrap().repair,
            Repair::Kept(Withheld::HasRecoveryInstance)
        );
        let drilled = Replication {
            last_launch_time: ago(5).at,
            ..Replication::default()
        };
        let (_, stale) = decide(true, Some(&mark), &drilled, &delete(), false, now());
        assert_eq!(stale.unwrap().repair, Repair::Kept(Withheld::RecentLaunch));
        let long_ago = Replication {
            last_launch_time: ago(500).at,
            ..Replication::default()
        };
        let (_, stale) = decide(true, Some(&mark), &long_ago, &delete(), false, now());
        assert_eq!(stale.unwrap().repair, Repair::Delete);
    }
}
