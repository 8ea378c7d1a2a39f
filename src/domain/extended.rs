//! One extended server as a coverage read finds it, and what the read does about
//! it: how ready it is, the change to its mark of a broken extension, a stale
//! one's repair, and whether the launch check may choose it. Decided here, with
//! no I/O, so that each decision is tested alone; `run::coverage` acts on it.

use std::time::SystemTime;

use crate::domain::outcome::MadeBy;
use crate::domain::readiness::{self, Readiness, ReadinessRules, Replication};
use crate::domain::scope::ScopeCoverage;
use crate::domain::stale::{self, Mark, MarkChange, Stale, StaleRules};

/// What coverage keeps of one extended server (a real record is a few KB).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtendedRecord {
    pub id: String,
    pub arn: String,
    pub staging_arn: String,
    pub staging_account: String,
    /// DRS's message when the extension is in `EXTENSION_ERROR`.
    pub extension_error: Option<String>,
    pub made_by: MadeBy,
    /// What readiness is sorted from; dropped with the page.
    pub replication: Replication,
    /// The mark of a broken extension (`stale::ERROR_SINCE_KEY`), as tagged.
    pub error_since: Option<Mark>,
    /// The staging server's primary IPv4 address, as its source properties show.
    pub source_ip: Option<String>,
}

/// What a coverage read judges by, and whether it may write (a dry run marks
/// and deletes nothing, and says what it would delete).
#[derive(Clone, Debug, Default)]
pub struct CoverageRules {
    pub readiness: ReadinessRules,
    pub stale: StaleRules,
    pub dry_run: bool,
    /// This invocation's `drs-extender:request-id`: what it extended.
    pub made_by: String,
}

/// What a coverage read does about one extended server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessment {
    pub readiness: Readiness,
    /// `Keep` in a dry run, which writes nothing.
    pub mark: MarkChange,
    pub reach: Reach,
}

/// Whether DRS reaches the staging server behind it, and what follows from that.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    /// `EXTENSION_ERROR`: reported `Unhealthy`, a stale one with its repair; one
    /// to be deleted (`Repair::Delete`) is deleted first.
    Unreachable(Option<Stale>),
    /// The launch check may choose it, and always does when this invocation
    /// extended it (`made_now`); reported `Not Ready` when it is not ready.
    Reachable { made_now: bool },
}

/// `now` is the function's clock, as readiness and the mark read it.
pub fn assess(record: &ExtendedRecord, rules: &CoverageRules, now: SystemTime) -> Assessment {
    let broken = record.extension_error.is_some();
    let replication = &record.replication;
    let readiness = readiness::classify(broken, replication, &rules.readiness, now);
    let mark = record.error_since.as_ref();
    let (mark, stale) = stale::decide(broken, mark, replication, &rules.stale, rules.dry_run, now);
    let reach = if broken {
        Reach::Unreachable(stale)
    } else {
        let made_now = matches!(&record.made_by, MadeBy::Invocation(by) if *by == rules.made_by);
        Reach::Reachable { made_now }
    };
    Assessment {
        readiness,
        mark: if rules.dry_run {
            MarkChange::Keep
        } else {
            mark
        },
        reach,
    }
}

impl Assessment {
    /// Counts the server in its scope's coverage.
    pub fn count(&self, coverage: &mut ScopeCoverage) {
        coverage.extended += 1;
        match &self.readiness {
            Readiness::Ready => coverage.ready += 1,
            Readiness::Syncing => coverage.syncing += 1,
            Readiness::NotReady(reason) => {
                coverage.not_ready += 1;
                *coverage
                    .not_ready_reasons
                    .entry(reason.clone())
                    .or_default() += 1;
            }
        }
        if matches!(self.reach, Reach::Unreachable(_)) {
            coverage.extension_errors += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::arn::example_server;
    use crate::domain::readiness::EXTENSION_ERROR;
    use crate::domain::scope::Scope;
    use crate::domain::stale::{Repair, StaleAction};

    const HOUR: Duration = Duration::from_secs(3_600);

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_299_200)
    }

    fn record(broken: bool, marked_hours_ago: Option<u32>, made_by: MadeBy) -> ExtendedRecord {
        ExtendedRecord {
            id: "s-1234567890abcdef0".into(),
            arn: "arn:aws:drs:us-east-1:444455556666:source-server/s-1234567890abcdef0".into(),
            staging_arn: example_server().to_string(),
            staging_account: "111122223333".into(),
            extension_error: broken.then(|| "cannot reach the staging server".into()),
            made_by,
            replication: Replication {
                state: Some("CONTINUOUS".into()),
                ..Replication::default()
            },
            error_since: marked_hours_ago.map(|hours| Mark {
                written: format!("{hours} hours ago"),
                at: Some(now() - HOUR * hours),
            }),
            source_ip: None,
        }
    }

    fn rules(dry_run: bool) -> CoverageRules {
        CoverageRules {
            stale: StaleRules {
                action: StaleAction::Delete,
                ..StaleRules::default()
            },
            dry_run,
            made_by: "this-invocation".into(),
            ..CoverageRules::default()
        }
    }

    #[test]
    fn the_mark_is_changed_outside_a_dry_run_only() {
        let unmarked = record(true, None, MadeBy::Nobody);
        let healed = record(false, Some(5), MadeBy::Nobody);
        assert_eq!(
            assess(&unmarked, &rules(false), now()).mark,
            MarkChange::Set(now())
        );
        assert_eq!(
            assess(&healed, &rules(false), now()).mark,
            MarkChange::Clear
        );
        for record in [unmarked, healed] {
            assert_eq!(assess(&record, &rules(true), now()).mark, MarkChange::Keep);
        }
    }

    #[test]
    fn a_broken_extension_is_unreachable_with_its_repair() {
        let stale = record(
            true,
            Some(100),
            MadeBy::Invocation("this-invocation".into()),
        );
        let repair = |dry_run| match assess(&stale, &rules(dry_run), now()) {
            Assessment {
                readiness: Readiness::NotReady(reason),
                mark: MarkChange::Keep,
                reach: Reach::Unreachable(Some(Stale { since, repair })),
            } if reason == EXTENSION_ERROR && since == "100 hours ago" => repair,
            other => panic!("{other:?}"),
        };
        assert_eq!(repair(false), Repair::Delete);
        assert_eq!(repair(true), Repair::WouldDelete);
        let fresh = record(true, Some(1), MadeBy::Nobody);
        assert_eq!(
            assess(&fresh, &rules(false), now()).reach,
            Reach::Unreachable(None),
            "broken, not yet stale: reported, not repaired"
        );
    }

    #[test]
    fn only_what_this_invocation_extended_is_made_now() {
        for (made_by, made_now) in [
            (MadeBy::Invocation("this-invocation".into()), true),
            (MadeBy::Invocation("an-earlier-one".into()), false),
            (MadeBy::Nobody, false),
            (MadeBy::Unread, false),
        ] {
            let assessed = assess(&record(false, None, made_by), &rules(false), now());
            assert_eq!(assessed.reach, Reach::Reachable { made_now });
            assert_eq!(assessed.readiness, Readiness::Ready);
        }
    }

    #[test]
    fn each_server_is_counted_once_by_readiness_and_reach() {
        let server = example_server();
        let scope = Scope {
            staging_account_id: server.account().clone(),
            region: server.region().clone(),
        };
        let mut coverage = ScopeCoverage::new(&scope);
        let lagging = ExtendedRecord {
            replication: Replication {
                state: Some("CONTINUOUS".into()),
                lag: Some("PT2H".into()),
                ..Replication::default()
            },
            ..record(false, None, MadeBy::Nobody)
        };
        for record in [
            record(false, None, MadeBy::Nobody),
            record(true, None, MadeBy::Nobody),
            record(true, Some(100), MadeBy::Nobody),
            lagging,
        ] {
            assess(&record, &rules(false), now()).count(&mut coverage);
        }
        let counted = (
            coverage.extended,
            coverage.extension_errors,
            coverage.ready,
            coverage.syncing,
            coverage.not_ready,
        );
        assert_eq!(counted, (4, 2, 1, 0, 3));
        let reasons: Vec<_> = coverage.not_ready_reasons.into_iter().collect();
        assert_eq!(
            reasons,
            [(EXTENSION_ERROR.to_owned(), 2), ("LAGGING".to_owned(), 1)]
        );
    }
}
