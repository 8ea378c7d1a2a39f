//! Readiness: every extended server of the covered accounts sorted into ready,
//! syncing or not ready with its reason, from what DRS says of it, under each
//! answer local-aws gives to what DRS leaves undocumented (does an extension show
//! its own replication, its staging server's, or none).

mod common;

use std::time::{Duration, SystemTime};

use aws_smithy_types::date_time::{DateTime, Format};
use common::*;
use local_aws::ExtensionReplication;
use serde_json::{json, Value};

fn days_ago(days: u64) -> String {
    let at = SystemTime::now() - Duration::from_secs(days * 86_400);
    DateTime::from(at).fmt(Format::DateTime).unwrap()
}

fn reconcile(account: &str) -> Value {
    let mut request = event("reconciliation-requested");
    request["detail"] = json!({"stagingAccountIds": [account], "regions": [REGION]});
    request
}

/// An extended server's replication state, lag, launch (days ago, kind), whether
/// DRS shows it in `EXTENSION_ERROR`, and the readiness it should get.
type Case = (
    &'static str,
    Option<&'static str>,
    Option<(u64, &'static str)>,
    bool,
    &'static str,
);

/// One staging account whose extended servers are in every state the contract
/// names; answers each server's ARN with the reason it should be given.
fn every_state(world: &mut local_aws::World) -> Vec<(String, &'static str)> {
    let target = local_aws::TARGET_ACCOUNT;
    let cases: [Case; 11] = [
        (
            "CONTINUOUS",
            Some("PT10S"),
            Some((3, "DRILL")),
            false,
            "ready",
        ),
        ("CONTINUOUS", None, Some((10, "RECOVERY")), false, "ready"),
        ("INITIAL_SYNC", Some("PT0S"), None, false, "syncing"),
        ("BACKLOG", Some("PT5M"), None, false, "syncing"),
        (
            "STALLED",
            Some("PT1H"),
            Some((3, "DRILL")),
            false,
            "STALLED",
        ),
        (
            "DISCONNECTED",
            None,
            Some((3, "DRILL")),
            false,
            "DISCONNECTED",
        ),
        ("PAUSED", None, Some((3, "DRILL")), false, "PAUSED"),
        ("STOPPED", None, Some((3, "DRILL")), false, "STOPPED"),
        (
            "CONTINUOUS",
            Some("PT2H"),
            Some((3, "DRILL")),
            false,
            "LAGGING",
        ),
        (
            "CONTINUOUS",
            Some("PT1S"),
            Some((90, "DRILL")),
            false,
            "UNDRILLED",
        ),
        (
            "CONTINUOUS",
            Some("PT1S"),
            Some((3, "DRILL")),
            true,
            "EXTENSION_ERROR",
        ),
    ];
    cases
        .into_iter()
        .map(|(state, lag, launch, broken, expected)| {
            let staging = world.add_staging_server(STAGING_A, REGION, &[]);
            world.extend_directly(target, &staging).unwrap();
            world.set_extension_replication(&staging, state, lag);
            let at = launch.map(|(days, kind)| (days_ago(days), kind));
            world.set_launch(&staging, at.as_ref().map(|(t, k)| (t.as_str(), *k)), None);
            if broken {
                world.break_extension(&staging, "Staging source server not found");
            }
            (staging, expected)
        })
        .collect()
}

fn scope_of<'a>(response: &'a Value, account: &str) -> &'a Value {
    response["coverage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["stagingAccountId"] == account)
        .unwrap_or_else(|| panic!("no coverage for {account}: {response}"))
}

#[tokio::test]
async fn every_reason_is_sorted_counted_and_announced() {
    let mut world = local_aws::World::new(local_aws::TARGET_ACCOUNT);
    let cases = every_state(&mut world);
    let h = Harness::start(world, &[("READINESS_MAX_DRILL_AGE_DAYS", "30")]).await;
    let response = h.ok(reconcile(STAGING_A)).await;

    let scope = scope_of(&response, STAGING_A);
    assert_eq!(
        (&scope["ready"], &scope["syncing"], &scope["notReady"]),
        (&json!(2), &json!(2), &json!(7)),
        "{scope}"
    );
    assert_eq!(
        scope["notReadyReasons"],
        json!({"DISCONNECTED": 1, "EXTENSION_ERROR": 1, "LAGGING": 1, "PAUSED": 1,
               "STALLED": 1, "STOPPED": 1, "UNDRILLED": 1})
    );
    let summary = &response["reconciliation"];
    assert_eq!(
        (&summary["ready"], &summary["syncing"], &summary["notReady"]),
        (&json!(2), &json!(2), &json!(7))
    );

    // One event per not-ready server but EXTENSION_ERROR, which keeps its own.
    let not_ready = h.events_of("Extended Source Server Not Ready");
    let mut reasons: Vec<(String, String)> = not_ready
        .iter()
        .map(|e| {
            let detail = &e["Detail"];
            (
                detail["stagingSourceServerArn"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                detail["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    reasons.sort();
    let mut expected: Vec<(String, String)> = cases
        .iter()
        .filter(|(_, r)| !["ready", "syncing", "EXTENSION_ERROR"].contains(r))
        .map(|(arn, r)| (arn.clone(), r.to_string()))
        .collect();
    expected.sort();
    assert_eq!(reasons, expected);
    assert_eq!(h.events_of("Extended Source Server Unhealthy").len(), 1);

    let lagging = not_ready
        .iter()
        .map(|e| e["Detail"].clone())
        .find(|d| d["reason"] == "LAGGING")
        .unwrap();
    assert_eq!(lagging["lagSeconds"], 7_200);
    assert_eq!(lagging["dataReplicationState"], "CONTINUOUS");
    assert_eq!(lagging["lastLaunch"]["type"], "DRILL");
    assert_eq!(lagging["region"], REGION);
    assert_eq!(lagging["stagingAccountId"], STAGING_A);
}

#[tokio::test]
async fn drills_are_not_checked_unless_asked_and_lag_follows_its_setting() {
    let mut world = local_aws::World::new(local_aws::TARGET_ACCOUNT);
    every_state(&mut world);
    let h = Harness::start(world, &[("READINESS_MAX_LAG_SECONDS", "7200")]).await;
    let response = h.ok(reconcile(STAGING_A)).await;
    let scope = scope_of(&response, STAGING_A);
    // UNDRILLED and LAGGING (two hours, now the bound) are ready.
    assert_eq!(scope["ready"], 4, "{scope}");
    assert!(scope["notReadyReasons"].get("UNDRILLED").is_none());
    assert!(scope["notReadyReasons"].get("LAGGING").is_none());
}

#[tokio::test]
async fn an_extension_that_mirrors_its_staging_server_is_sorted_by_that() {
    let mut world = local_aws::World::sample();
    let staging = world.add_staging_server(STAGING_A, REGION, &[]);
    world.extend_directly(local_aws::TARGET_ACCOUNT, &staging);
    world.set_staging_replication(&staging, "STALLED", Some("PT3H"));
    world.extension_replication = ExtensionReplication::MirrorsStaging;
    let h = Harness::start(world, &[]).await;
    let response = h.ok(reconcile(STAGING_A)).await;
    assert_eq!(
        scope_of(&response, STAGING_A)["notReadyReasons"],
        json!({"STALLED": 1})
    );
}

#[tokio::test]
async fn an_extension_that_shows_no_replication_is_never_counted_ready() {
    let mut world = local_aws::World::new(local_aws::TARGET_ACCOUNT);
    for _ in 0..3 {
        let staging = world.add_staging_server(STAGING_A, REGION, &[]);
        world.extend_directly(local_aws::TARGET_ACCOUNT, &staging);
    }
    world.extension_replication = ExtensionReplication::Absent;
    let h = Harness::start(world, &[]).await;
    let response = h.ok(reconcile(STAGING_A)).await;
    let scope = scope_of(&response, STAGING_A);
    assert_eq!(scope["ready"], 0);
    assert_eq!(scope["notReadyReasons"], json!({"NO_REPLICATION_STATE": 3}));
}

#[tokio::test]
async fn not_ready_events_stop_at_a_hundred_and_the_rest_are_counted() {
    let mut world = local_aws::World::new(local_aws::TARGET_ACCOUNT);
    for staging in world.seed(STAGING_A, REGION, 130) {
        world.extend_directly(local_aws::TARGET_ACCOUNT, &staging);
        world.set_extension_replication(&staging, "DISCONNECTED", None);
    }
    let h = Harness::start(world, &[]).await;
    let response = h.ok(reconcile(STAGING_A)).await;
    assert_eq!(h.events_of("Extended Source Server Not Ready").len(), 100);
    assert_eq!(response["reconciliation"]["notReady"], 130);
    assert_eq!(response["reconciliation"]["notReadyUnsent"], 30);
}

/// DRS does not say what deleting a staging server does to its extension. Under
/// each answer the extension is never counted ready, and what DRS shows of it
/// is reported: broken (`Unhealthy`, and stale later), gone (no longer
/// counted, and not extended again: there is nothing to extend), or
/// disconnected (`Not Ready`, `DISCONNECTED`).
#[tokio::test]
async fn a_deleted_staging_server_is_never_counted_ready_whatever_becomes_of_its_extension() {
    use local_aws::StagingDeletion;
    for deletion in [
        StagingDeletion::ExtensionError,
        StagingDeletion::ExtensionRemoved,
        StagingDeletion::ExtensionDisconnected,
    ] {
        let mut world = local_aws::World::new(local_aws::TARGET_ACCOUNT);
        let kept = world.add_staging_server(STAGING_A, REGION, &[]);
        let deleted = world.add_staging_server(STAGING_A, REGION, &[]);
        for staging in [&kept, &deleted] {
            world.extend_directly(local_aws::TARGET_ACCOUNT, staging);
            world.set_extension_replication(staging, "CONTINUOUS", Some("PT1S"));
        }
        world.staging_deletion = deletion;
        world.delete_staging_server(&deleted);
        let h = Harness::start(world, &[]).await;
        let response = h.ok(reconcile(STAGING_A)).await;
        let scope = scope_of(&response, STAGING_A).clone();
        assert_eq!(scope["ready"], 1, "{deletion:?}: {scope}");
        assert_eq!(
            response["created"], 0,
            "{deletion:?}: nothing to extend again"
        );
        assert_eq!(response["reconciliation"]["complete"], true, "{deletion:?}");
        let unhealthy = h.events_of("Extended Source Server Unhealthy");
        let not_ready = h.events_of("Extended Source Server Not Ready");
        match deletion {
            StagingDeletion::ExtensionError => {
                assert_eq!(scope["notReadyReasons"], json!({"EXTENSION_ERROR": 1}));
                assert_eq!(unhealthy.len(), 1);
                assert_eq!(unhealthy[0]["Detail"]["stagingSourceServerArn"], deleted);
            }
            StagingDeletion::ExtensionRemoved => {
                assert_eq!(
                    (&scope["extended"], &scope["notReady"]),
                    (&json!(1), &json!(0))
                );
                assert!(unhealthy.is_empty() && not_ready.is_empty());
            }
            StagingDeletion::ExtensionDisconnected => {
                assert_eq!(scope["notReadyReasons"], json!({"DISCONNECTED": 1}));
                assert_eq!(not_ready.len(), 1);
                assert_eq!(not_ready[0]["Detail"]["stagingSourceServerArn"], deleted);
            }
        }
    }
}

/// DRS does not say how soon an extension shows a change in its staging
/// server's replication. Each run judges by what DRS shows at that read and
/// keeps nothing between runs: a late mirror is reported late by exactly as
/// much as DRS is late, never later.
#[tokio::test]
async fn an_extension_that_mirrors_late_is_judged_by_what_drs_shows_at_each_run() {
    let mut world = local_aws::World::new(local_aws::TARGET_ACCOUNT);
    let staging = world.add_staging_server(STAGING_A, REGION, &[]);
    world.extend_directly(local_aws::TARGET_ACCOUNT, &staging);
    world.extension_replication = ExtensionReplication::MirrorsStagingLate;
    world.set_staging_replication(&staging, "STALLED", Some("PT3H"));
    let h = Harness::start(world, &[]).await;
    let reasons = |response: &Value| scope_of(response, STAGING_A)["notReadyReasons"].clone();

    let before = h.ok(reconcile(STAGING_A)).await;
    assert_eq!(
        scope_of(&before, STAGING_A)["ready"],
        1,
        "DRS does not show it yet"
    );
    h.aws.world().catch_up_mirrors();
    let after = h.ok(reconcile(STAGING_A)).await;
    assert_eq!(
        reasons(&after),
        json!({"STALLED": 1}),
        "shown: reported at once"
    );
    h.aws
        .world()
        .set_staging_replication(&staging, "CONTINUOUS", Some("PT1S"));
    let still = h.ok(reconcile(STAGING_A)).await;
    assert_eq!(
        reasons(&still),
        json!({"STALLED": 1}),
        "DRS still shows it stalled"
    );
    h.aws.world().catch_up_mirrors();
    let healed = h.ok(reconcile(STAGING_A)).await;
    assert_eq!(scope_of(&healed, STAGING_A)["ready"], 1);
}

/// DRS's own definitions, under every reading local-aws offers of what DRS leaves
/// open: whether a server catching up shows its lag, and which of the two
/// launch-result fields it fills. Lag counts in every state after the initial
/// sync; a failed last launch is never ready; only a launch DRS shows as
/// succeeded is a drill; DRS's replication error goes into the event.
#[tokio::test]
async fn lag_launch_results_and_replication_errors_follow_drs_definitions_under_every_switch() {
    use local_aws::{BacklogLag, LaunchResultFields};
    for backlog_lag in [BacklogLag::Reported, BacklogLag::Omitted] {
        for fields in [
            LaunchResultFields::Both,
            LaunchResultFields::ResultOnly,
            LaunchResultFields::LifeCycleOnly,
        ] {
            let case = format!("{backlog_lag:?}, {fields:?}");
            let mut world = local_aws::World::new(local_aws::TARGET_ACCOUNT);
            world.backlog_lag = backlog_lag;
            world.launch_result_fields = fields;
            let mut add = |state: &str,
                           lag: Option<&str>,
                           status: &str,
                           result: &str,
                           error: Option<&str>| {
                let staging = world.add_staging_server(STAGING_A, REGION, &[]);
                world.extend_directly(local_aws::TARGET_ACCOUNT, &staging);
                world.set_extension_replication(&staging, state, lag);
                let at = days_ago(3);
                world.set_launch(&staging, Some((at.as_str(), "DRILL")), None);
                world.change_extension_replication(&staging, |r| {
                    r.last_launch_status = status.to_owned();
                    r.last_launch_result = result.to_owned();
                    r.error = error.map(str::to_owned);
                });
                staging
            };
            let rescan_behind = add("RESCAN", Some("PT5H"), "LAUNCHED", "SUCCEEDED", None);
            let backlog_close = add("BACKLOG", Some("PT5M"), "LAUNCHED", "SUCCEEDED", None);
            let failed = add("CONTINUOUS", Some("PT1S"), "FAILED", "FAILED", None);
            let drilled = add("CONTINUOUS", Some("PT1S"), "LAUNCHED", "SUCCEEDED", None);
            let launching = add("CONTINUOUS", Some("PT1S"), "IN_PROGRESS", "PENDING", None);
            let not_converging = add(
                "BACKLOG",
                Some("PT5M"),
                "LAUNCHED",
                "SUCCEEDED",
                Some("NOT_CONVERGING"),
            );
            let stalled = add(
                "STALLED",
                None,
                "LAUNCHED",
                "SUCCEEDED",
                Some("AGENT_NOT_SEEN"),
            );
            let h = Harness::start(world, &[("READINESS_MAX_DRILL_AGE_DAYS", "30")]).await;
            let response = h.ok(reconcile(STAGING_A)).await;
            let scope = scope_of(&response, STAGING_A);
            let (rescan_reason, syncing) = match backlog_lag {
                BacklogLag::Reported => (Some("LAGGING"), 1),
                BacklogLag::Omitted => (None, 2),
            };
            assert_eq!(
                (&scope["ready"], &scope["syncing"]),
                (&json!(1), &json!(syncing)),
                "{case}: {scope}"
            );
            let events: Vec<Value> = h
                .events_of("Extended Source Server Not Ready")
                .into_iter()
                .map(|e| e["Detail"].clone())
                .collect();
            let reason_of = |arn: &str| {
                events
                    .iter()
                    .find(|d| d["stagingSourceServerArn"] == arn)
                    .map(|d| d["reason"].as_str().unwrap_or_default().to_owned())
            };
            assert_eq!(
                reason_of(&rescan_behind).as_deref(),
                rescan_reason,
                "{case}"
            );
            assert_eq!(reason_of(&backlog_close), None, "{case}");
            assert_eq!(reason_of(&drilled), None, "{case}");
            assert_eq!(
                reason_of(&failed).as_deref(),
                Some("LAST_LAUNCH_FAILED"),
                "{case}"
            );
            assert_eq!(
                reason_of(&launching).as_deref(),
                Some("UNDRILLED"),
                "{case}: a launch under way is no drill yet"
            );
            assert_eq!(reason_of(&stalled).as_deref(), Some("STALLED"), "{case}");
            assert_eq!(
                reason_of(&not_converging).as_deref(),
                Some("BACKLOG"),
                "{case}: an error DRS names is not syncing"
            );
            let detail_of = |arn: &str| {
                events
                    .iter()
                    .find(|d| d["stagingSourceServerArn"] == arn)
                    .cloned()
                    .unwrap_or_default()
            };
            assert_eq!(
                detail_of(&not_converging)["replicationError"],
                "NOT_CONVERGING"
            );
            assert_eq!(
                detail_of(&stalled)["replicationError"],
                "AGENT_NOT_SEEN",
                "{case}"
            );
            let failed = detail_of(&failed);
            assert_eq!(
                failed["lastLaunch"]["jobID"], "drsjob-0123456789abcdef0",
                "{case}: the job whose log says why"
            );
            match fields {
                LaunchResultFields::Both => {
                    assert_eq!(
                        (&failed["lastLaunchResult"], &failed["lastLaunch"]["status"]),
                        (&json!("FAILED"), &json!("FAILED")),
                        "{case}"
                    );
                }
                LaunchResultFields::ResultOnly => {
                    assert_eq!(
                        (&failed["lastLaunchResult"], &failed["lastLaunch"]["status"]),
                        (&json!("FAILED"), &Value::Null),
                        "{case}"
                    );
                }
                LaunchResultFields::LifeCycleOnly => {
                    assert_eq!(
                        (&failed["lastLaunchResult"], &failed["lastLaunch"]["status"]),
                        (&Value::Null, &json!("FAILED")),
                        "{case}"
                    );
                }
            }
            if backlog_lag == BacklogLag::Reported {
                assert_eq!(detail_of(&rescan_behind)["lagSeconds"], 18_000, "{case}");
                assert_eq!(detail_of(&rescan_behind)["dataReplicationState"], "RESCAN");
            }
        }
    }
}
