//! Readiness: could this extended server be recovered right now? Sorted from what
//! `DescribeSourceServers` says of it, by DRS's own definitions where it gives one
//! (the service model's fields, the replication FAQ's lag); docs/readiness.md
//! cites the pages. DRS does not document what its console calls "Ready for
//! recovery", so nothing here claims more than "recovery at risk".

use std::time::{Duration, SystemTime};

/// What DRS says of one extended server's replication and launches; strings as
/// DRS spells them, read into meaning only here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replication {
    /// `dataReplicationInfo.dataReplicationState`; `None` when DRS gives no
    /// replication information for the extension at all.
    pub state: Option<String>,
    /// `dataReplicationInfo.lagDuration`, an ISO 8601 duration.
    pub lag: Option<String>,
    /// `dataReplicationInfo.dataReplicationError.error`: why DRS says replication
    /// is broken (`AGENT_NOT_SEEN`, `SNAPSHOTS_FAILURE`, ...).
    pub error: Option<String>,
    /// `lifeCycle.lastLaunch.initiated.apiCallDateTime`, as DRS wrote it.
    pub last_launch_at: Option<String>,
    /// The same, read as a time by the adapter; `None` when it does not read.
    pub last_launch_time: Option<SystemTime>,
    /// `lifeCycle.lastLaunch.initiated.type`: `DRILL` or `RECOVERY`.
    pub last_launch_type: Option<String>,
    /// `lifeCycle.lastLaunch.initiated.jobID`: the job whose log says why a
    /// launch failed.
    pub last_launch_job_id: Option<String>,
    /// `lifeCycle.lastLaunch.status`: `PENDING`, `IN_PROGRESS`, `LAUNCHED`,
    /// `FAILED` or `TERMINATED`.
    pub last_launch_status: Option<String>,
    /// `lastLaunchResult`: `NOT_STARTED`, `PENDING`, `SUCCEEDED` or `FAILED`.
    pub last_launch_result: Option<String>,
    pub recovery_instance_id: Option<String>,
}

impl Replication {
    /// DRS shows the last launch (drill or recovery) as failed, in either of the
    /// two fields that say so: it may fill one, the other or both.
    pub fn last_launch_failed(&self) -> bool {
        self.last_launch_result.as_deref() == Some("FAILED")
            || self.last_launch_status.as_deref() == Some("FAILED")
    }

    /// DRS shows the last launch as succeeded: `lastLaunchResult` `SUCCEEDED`, or,
    /// where DRS gives no `lastLaunchResult` and only the life cycle says,
    /// `LAUNCHED`. A result still `PENDING` is not overruled by the life cycle; a
    /// `TERMINATED` launch counts only with `SUCCEEDED` beside it: alone it does
    /// not tell a drill cleaned up after it worked from one stopped before it did.
    pub fn last_launch_succeeded(&self) -> bool {
        !self.last_launch_failed()
            && match self.last_launch_result.as_deref() {
                Some(result) => result == "SUCCEEDED",
                None => self.last_launch_status.as_deref() == Some("LAUNCHED"),
            }
    }
}

/// The thresholds the operator set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadinessRules {
    pub max_lag: Duration,
    /// `None`: drills are not checked.
    pub max_drill_age: Option<Duration>,
}

impl Default for ReadinessRules {
    fn default() -> Self {
        Self {
            max_lag: Duration::from_secs(900),
            max_drill_age: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    Syncing,
    NotReady(String),
}

pub const EXTENSION_ERROR: &str = "EXTENSION_ERROR";
pub const LAGGING: &str = "LAGGING";
pub const LAST_LAUNCH_FAILED: &str = "LAST_LAUNCH_FAILED";
pub const UNDRILLED: &str = "UNDRILLED";
/// DRS gave no replication state for the extension: nothing shows it could be
/// recovered, so it is not counted ready.
pub const NO_REPLICATION_STATE: &str = "NO_REPLICATION_STATE";

/// DRS's states before the first full copy (DRS User Guide, "Source server
/// information": "Initiating", "Initial sync"): no lag is defined yet, since the
/// server has never been in continuous replication.
const FIRST_SYNC: [&str; 2] = ["INITIATING", "INITIAL_SYNC"];
/// States after the initial sync on the way back to continuous replication:
/// syncing only while the lag, the time since the server was last in continuous
/// data protection (DRS's replication FAQ), is within the bound.
const CATCHING_UP: [&str; 3] = ["BACKLOG", "RESCAN", "CREATING_SNAPSHOT"];

/// Sorts one extended server. `now` is the function's clock, used only against
/// `READINESS_MAX_DRILL_AGE_DAYS`, whose unit (days) no clock skew can matter to.
/// The order of the checks is the order of the reasons' weight: a server that
/// cannot reach its staging server, or does not replicate, is reported as that
/// before anything about its lag or launches.
pub fn classify(
    extension_error: bool,
    replication: &Replication,
    rules: &ReadinessRules,
    now: SystemTime,
) -> Readiness {
    if extension_error {
        return Readiness::NotReady(EXTENSION_ERROR.to_owned());
    }
    let Some(state) = replication.state.as_deref() else {
        return Readiness::NotReady(NO_REPLICATION_STATE.to_owned());
    };
    let first_sync = FIRST_SYNC.contains(&state);
    if !first_sync && state != "CONTINUOUS" && !CATCHING_UP.contains(&state) {
        // STALLED, DISCONNECTED, PAUSED, STOPPED and any state DRS adds later, as
        // DRS spells it.
        return Readiness::NotReady(state.to_owned());
    }
    // Lag is the time since the server was last continuous, so it holds in every
    // state after the initial sync. An absent lag is DRS saying nothing is behind
    // (or giving no figure); one that does not read as a duration cannot show it
    // is within the bound.
    if !first_sync {
        if let Some(lag) = replication.lag.as_deref() {
            match lag_seconds(lag) {
                Some(seconds) if Duration::from_secs(seconds) <= rules.max_lag => {}
                _ => return Readiness::NotReady(LAGGING.to_owned()),
            }
        }
    }
    if replication.last_launch_failed() {
        return Readiness::NotReady(LAST_LAUNCH_FAILED.to_owned());
    }
    // DRS names an error in replication ("Error in data replication"): a server
    // stuck in its initiation, or one that does not converge, is not on its way,
    // whatever its state says. Reported by its state, the error beside it.
    if replication.error.is_some() {
        return Readiness::NotReady(state.to_owned());
    }
    if state != "CONTINUOUS" {
        return Readiness::Syncing;
    }
    if let Some(max_age) = rules.max_drill_age {
        let recent = replication.last_launch_succeeded()
            && replication
                .last_launch_time
                .is_some_and(|at| match now.duration_since(at) {
                    Ok(age) => age <= max_age,
                    // Launched "in the future" by the function's clock: recent.
                    Err(_) => true,
                });
        if !recent {
            return Readiness::NotReady(UNDRILLED.to_owned());
        }
    }
    Readiness::Ready
}

/// Seconds in an ISO 8601 duration as DRS writes lags (`PT0S`, `PT1M30.5S`,
/// `P1DT2H`, `P2W`); `None` for anything else. Years and months have no fixed
/// length and are refused rather than guessed.
pub fn lag_seconds(iso: &str) -> Option<u64> {
    let rest = iso.strip_prefix('P')?;
    if rest.is_empty() {
        return None;
    }
    let (date, time) = match rest.split_once('T') {
        Some((date, time)) if !time.is_empty() => (date, Some(time)),
        Some(_) => return None,
        None => (rest, None),
    };
    let mut seconds = 0f64;
    for (part, units) in [(date, &[('W', 604_800.0), ('D', 86_400.0)][..])]
        .into_iter()
        .chain(time.map(|t| (t, &[('H', 3_600.0), ('M', 60.0), ('S', 1.0)][..])))
    {
        let mut number = String::new();
        let mut next_unit = 0;
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                number.push(c);
                continue;
            }
            let position = units[next_unit..].iter().position(|(u, _)| *u == c)?;
            let value: f64 = number.parse().ok()?;
            seconds += value * units[next_unit + position].1;
            next_unit += position + 1;
            number.clear();
        }
        if !number.is_empty() {
            return None;
        }
    }
    (seconds.is_finite() && seconds < u64::MAX as f64).then_some(seconds.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn continuous(lag: Option<&str>) -> Replication {
        in_state("CONTINUOUS", lag)
    }

    fn in_state(state: &str, lag: Option<&str>) -> Replication {
        Replication {
            state: Some(state.into()),
            lag: lag.map(str::to_owned),
            ..Replication::default()
        }
    }

    /// Seconds since the epoch: 2026-12-03T12:00:00Z is 1_796_299_200.
    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn every_reason_has_its_case() {
        let rules = ReadinessRules::default();
        let now = at(1_796_299_200);
        let sort = |error: bool, r: &Replication| classify(error, r, &rules, now);
        assert_eq!(sort(false, &continuous(Some("PT10S"))), Readiness::Ready);
        assert_eq!(sort(false, &continuous(None)), Readiness::Ready);
        assert_eq!(
            sort(true, &continuous(Some("PT0S"))),
            Readiness::NotReady("EXTENSION_ERROR".into())
        );
        assert_eq!(
            sort(false, &continuous(Some("PT20M"))),
            Readiness::NotReady("LAGGING".into())
        );
        assert_eq!(
            sort(false, &continuous(Some("soon"))),
            Readiness::NotReady("LAGGING".into()),
            "a lag that does not read cannot show it is within the bound"
        );
        for state in FIRST_SYNC.iter().chain(&CATCHING_UP) {
            let r = Replication {
                state: Some((*state).into()),
                ..Replication::default()
            };
            assert_eq!(sort(false, &r), Readiness::Syncing, "{state}");
        }
        for state in ["STALLED", "DISCONNECTED", "PAUSED", "STOPPED", "NEW_STATE"] {
            let r = Replication {
                state: Some(state.into()),
                ..Replication::default()
            };
            assert_eq!(sort(false, &r), Readiness::NotReady(state.into()));
        }
        assert_eq!(
            sort(false, &Replication::default()),
            Readiness::NotReady("NO_REPLICATION_STATE".into())
        );
    }

    #[test]
    fn lag_is_judged_in_every_state_after_the_initial_sync() {
        let rules = ReadinessRules::default();
        let now = at(1_796_299_200);
        let sort = |r: &Replication| classify(false, r, &rules, now);
        for state in CATCHING_UP {
            assert_eq!(
                sort(&in_state(state, Some("PT5H"))),
                Readiness::NotReady("LAGGING".into()),
                "five hours behind in {state} is not syncing"
            );
            assert_eq!(sort(&in_state(state, Some("PT14M"))), Readiness::Syncing);
            assert_eq!(
                sort(&in_state(state, None)),
                Readiness::Syncing,
                "{state} with no lag given"
            );
            assert_eq!(
                sort(&in_state(state, Some("later"))),
                Readiness::NotReady("LAGGING".into())
            );
        }
        for state in FIRST_SYNC {
            assert_eq!(
                sort(&in_state(state, Some("PT50H"))),
                Readiness::Syncing,
                "no lag is defined before the first continuous replication ({state})"
            );
        }
    }

    #[test]
    fn a_failed_last_launch_is_not_ready_in_every_state() {
        let now = at(1_796_299_200);
        let failed_by = |result: Option<&str>, status: Option<&str>, state: &str| Replication {
            last_launch_result: result.map(str::to_owned),
            last_launch_status: status.map(str::to_owned),
            last_launch_time: Some(at(1_796_200_000)),
            ..in_state(state, Some("PT1S"))
        };
        for rules in [
            ReadinessRules::default(),
            ReadinessRules {
                max_drill_age: Some(Duration::from_secs(30 * 86_400)),
                ..ReadinessRules::default()
            },
        ] {
            for state in ["CONTINUOUS", "BACKLOG", "INITIAL_SYNC"] {
                for (result, status) in [
                    (Some("FAILED"), None),
                    (None, Some("FAILED")),
                    (Some("FAILED"), Some("FAILED")),
                    (Some("SUCCEEDED"), Some("FAILED")),
                    (Some("FAILED"), Some("LAUNCHED")),
                ] {
                    assert_eq!(
                        classify(false, &failed_by(result, status, state), &rules, now),
                        Readiness::NotReady("LAST_LAUNCH_FAILED".into()),
                        "{state} {result:?} {status:?}"
                    );
                }
            }
        }
        assert_eq!(
            classify(
                false,
                &failed_by(Some("FAILED"), None, "STALLED"),
                &ReadinessRules::default(),
                now
            ),
            Readiness::NotReady("STALLED".into()),
            "a server that does not replicate is reported as that first"
        );
    }

    #[test]
    fn an_error_drs_names_is_not_ready_in_every_state() {
        let rules = ReadinessRules::default();
        let now = at(1_796_299_200);
        for (state, error) in [
            ("INITIATING", "FAILED_TO_AUTHENTICATE_WITH_SERVICE"),
            ("INITIAL_SYNC", "FAILED_TO_START_DATA_TRANSFER"),
            ("BACKLOG", "NOT_CONVERGING"),
            ("RESCAN", "UNSTABLE_NETWORK"),
            ("CONTINUOUS", "SNAPSHOTS_FAILURE"),
            ("STALLED", "AGENT_NOT_SEEN"),
        ] {
            let r = Replication {
                error: Some(error.into()),
                ..in_state(state, None)
            };
            assert_eq!(
                classify(false, &r, &rules, now),
                Readiness::NotReady(state.into()),
                "{state} with {error}"
            );
        }
        let behind = Replication {
            error: Some("NOT_CONVERGING".into()),
            ..in_state("CONTINUOUS", Some("PT2H"))
        };
        assert_eq!(
            classify(false, &behind, &rules, now),
            Readiness::NotReady("LAGGING".into()),
            "the lag says more than the state"
        );
    }

    #[test]
    fn only_a_launch_drs_shows_as_succeeded_is_a_drill() {
        let now = at(1_796_299_200);
        let rules = ReadinessRules {
            max_drill_age: Some(Duration::from_secs(30 * 86_400)),
            ..ReadinessRules::default()
        };
        let launched = |result: Option<&str>, status: Option<&str>| Replication {
            last_launch_result: result.map(str::to_owned),
            last_launch_status: status.map(str::to_owned),
            last_launch_time: Some(at(1_796_200_000)),
            last_launch_type: Some("DRILL".into()),
            ..continuous(Some("PT1S"))
        };
        for (result, status, drilled) in [
            (Some("SUCCEEDED"), Some("LAUNCHED"), true),
            (Some("SUCCEEDED"), None, true),
            (None, Some("LAUNCHED"), true),
            (Some("SUCCEEDED"), Some("TERMINATED"), true),
            (None, Some("TERMINATED"), false),
            (Some("PENDING"), Some("IN_PROGRESS"), false),
            (Some("PENDING"), Some("LAUNCHED"), false),
            (Some("NOT_STARTED"), None, false),
            (None, Some("PENDING"), false),
            (None, None, false),
        ] {
            let expected = if drilled {
                Readiness::Ready
            } else {
                Readiness::NotReady("UNDRILLED".into())
            };
            assert_eq!(
                classify(false, &launched(result, status), &rules, now),
                expected,
                "{result:?} {status:?}"
            );
        }
    }

    #[test]
    fn drills_count_only_when_asked_for() {
        let now = at(1_796_299_200);
        let rules = ReadinessRules {
            max_drill_age: Some(Duration::from_secs(30 * 86_400)),
            ..ReadinessRules::default()
        };
        // `None`: no launch, or one whose time did not read.
        let drilled = |when: Option<u64>| Replication {
            last_launch_time: when.map(at),
            last_launch_type: when.map(|_| "DRILL".to_owned()),
            last_launch_result: when.map(|_| "SUCCEEDED".to_owned()),
            ..continuous(Some("PT1S"))
        };
        let sort = |r: &Replication, rules: &ReadinessRules| classify(false, r, rules, now);
        assert_eq!(
            sort(&drilled(Some(1_795_161_600)), &rules),
            Readiness::Ready,
            "13 days ago"
        );
        assert_eq!(
            sort(&drilled(Some(1_788_249_600)), &rules),
            Readiness::NotReady("UNDRILLED".into()),
            "93 days ago"
        );
        assert_eq!(
            sort(&drilled(None), &rules),
            Readiness::NotReady("UNDRILLED".into())
        );
        assert_eq!(
            sort(&drilled(Some(1_796_371_200)), &rules),
            Readiness::Ready,
            "a launch ahead of the function's clock is recent"
        );
        assert_eq!(
            sort(&drilled(None), &ReadinessRules::default()),
            Readiness::Ready,
            "not checked unless READINESS_MAX_DRILL_AGE_DAYS is set"
        );
    }

    #[test]
    fn lags_read_as_drs_may_write_them() {
        for (text, seconds) in [
            ("PT0S", Some(0)),
            ("PT15M", Some(900)),
            ("PT1M30.5S", Some(91)),
            ("PT1H", Some(3_600)),
            ("P1DT2H", Some(93_600)),
            ("P2W", Some(1_209_600)),
            ("P1D", Some(86_400)),
            ("PT", None),
            ("P", None),
            ("", None),
            ("P1Y", None),
            ("P1M", None),
            ("PT5", None),
            ("PT1S2M", None),
            ("15 minutes", None),
            ("PT1e400S", None),
        ] {
            assert_eq!(lag_seconds(text), seconds, "{text}");
        }
    }
}
