//! Stale extensions: the mark of a broken extension set and cleared on the server
//! itself, `report` with `staleSince`, `delete` (disconnected first, as DRS
//! requires), never one with a recovery instance or a recent launch, never in a
//! dry run, and the staging server extended again afterwards.

mod common;

use std::time::{Duration, SystemTime};

use aws_smithy_types::date_time::{DateTime, Format};
use common::*;
use serde_json::{json, Value};

const MARK: &str = "drs-extender:error-since";

fn hours_ago(hours: u64) -> String {
    let at = SystemTime::now() - Duration::from_secs(hours * 3_600);
    DateTime::from(at).fmt(Format::DateTime).unwrap()
}

fn reconcile(dry_run: bool) -> Value {
    let mut request = event("reconciliation-requested");
    request["detail"] =
        json!({"stagingAccountIds": [STAGING_A], "regions": [REGION], "dryRun": dry_run});
    request
}

/// A staging server, extended, then broken; its extension marked `hours` ago
/// when given.
fn broken(world: &mut local_aws::World, marked_hours_ago: Option<u64>) -> String {
    let staging = world.add_staging_server(STAGING_A, REGION, &[]);
    world.extend_directly(local_aws::TARGET_ACCOUNT, &staging);
    world.break_extension(&staging, "Staging source server not found");
    if let Some(hours) = marked_hours_ago {
        mark(world, &staging, Some(hours_ago(hours)));
    }
    staging
}

fn mark(world: &mut local_aws::World, staging: &str, value: Option<String>) {
    let extended = world
        .extended_mut()
        .iter_mut()
        .find(|e| e.staging_arn == staging)
        .unwrap();
    match value {
        Some(at) => extended.tags.insert(MARK.into(), at),
        None => extended.tags.remove(MARK),
    };
}

fn mark_of(h: &Harness, staging: &str) -> Option<String> {
    h.aws
        .world()
        .extended()
        .iter()
        .find(|e| e.staging_arn == staging)
        .and_then(|e| e.tags.get(MARK).cloned())
}

fn unhealthy(h: &Harness) -> Vec<Value> {
    h.events_of("Extended Source Server Unhealthy")
        .into_iter()
        .map(|e| e["Detail"].clone())
        .collect()
}

#[tokio::test]
async fn the_mark_is_set_when_first_seen_and_cleared_when_healed() {
    let mut world = local_aws::World::new(local_aws::TARGET_ACCOUNT);
    let staging = broken(&mut world, None);
    let healed = world.add_staging_server(STAGING_A, REGION, &[]);
    world.extend_directly(local_aws::TARGET_ACCOUNT, &healed);
    mark(&mut world, &healed, Some(hours_ago(5)));
    let h = Harness::start(world, &[]).await;

    h.ok(reconcile(false)).await;
    let set = mark_of(&h, &staging).expect("marked when first seen broken");
    assert!(set.ends_with('Z'), "{set}");
    assert_eq!(mark_of(&h, &healed), None, "healed: the mark is gone");
    assert!(
        unhealthy(&h)[0].get("staleSince").is_none(),
        "not stale yet"
    );

    h.ok(reconcile(false)).await;
    assert_eq!(mark_of(&h, &staging), Some(set), "kept, not restarted");
}

#[tokio::test]
async fn a_stale_extension_is_reported_by_default() {
    let mut world = local_aws::World::new(local_aws::TARGET_ACCOUNT);
    let staging = broken(&mut world, Some(80));
    let h = Harness::start(world, &[]).await;
    let response = h.ok(reconcile(false)).await;
    let event = &unhealthy(&h)[0];
    assert_eq!(event["staleSince"], mark_of(&h, &staging).unwrap());
    assert!(h
        .aws
        .world()
        .is_extended(local_aws::TARGET_ACCOUNT, &staging));
    assert_eq!(response["reconciliation"]["staleDeleted"], 0);
    assert!(h.aws.world().calls_of("DeleteSourceServer").is_empty());
}

#[tokio::test]
async fn delete_removes_a_stale_extension_and_the_next_run_extends_again() {
    let mut world = local_aws::World::new(local_aws::TARGET_ACCOUNT);
    let staging = broken(&mut world, Some(80));
    let young = broken(&mut world, Some(10));
    let h = Harness::start(world, &[("STALE_EXTENSIONS", "delete")]).await;
    let response = h.ok(reconcile(false)).await;
    assert_eq!(response["reconciliation"]["staleDeleted"], 1, "{response}");
    assert!(!h
        .aws
        .world()
        .is_extended(local_aws::TARGET_ACCOUNT, &staging));
    assert!(
        h.aws.world().is_extended(local_aws::TARGET_ACCOUNT, &young),
        "not stale yet"
    );
    let deleted = h.events_of("Extended Source Server Deleted");
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["Detail"]["reason"], "STALE_EXTENSION");
    assert_eq!(
        deleted[0]["Detail"]["stagingSourceServerArn"],
        staging.as_str()
    );

    let again = h.ok(reconcile(false)).await;
    assert_eq!(again["created"], 1, "{again}");
    assert!(h
        .aws
        .world()
        .is_extended(local_aws::TARGET_ACCOUNT, &staging));
}

#[tokio::test]
async fn never_one_with_a_recovery_instance_or_a_recent_launch() {
    let mut world = local_aws::World::new(local_aws::TARGET_ACCOUNT);
    let recovering = broken(&mut world, Some(200));
    world.set_launch(
        &recovering,
        Some((&hours_ago(150), "RECOVERY")),
        Some("i-0123456789abcdef0"),
    );
    let drilled = broken(&mut world, Some(200));
    world.set_launch(&drilled, Some((&hours_ago(2), "DRILL")), None);
    let h = Harness::start(world, &[("STALE_EXTENSIONS", "delete")]).await;
    let response = h.ok(reconcile(false)).await;
    assert_eq!(response["reconciliation"]["staleDeleted"], 0);
    let world = h.aws.world();
    assert!(world.is_extended(local_aws::TARGET_ACCOUNT, &recovering));
    assert!(world.is_extended(local_aws::TARGET_ACCOUNT, &drilled));
    assert!(world.calls_of("DeleteSourceServer").is_empty());
    assert!(world.calls_of("DisconnectSourceServer").is_empty());
    drop(world);
    let mut withheld: Vec<(String, String)> = unhealthy(&h)
        .iter()
        .map(|d| {
            (
                d["stagingSourceServerArn"].as_str().unwrap().to_owned(),
                d["deleteWithheld"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    withheld.sort();
    let mut expected = vec![
        (recovering, "HAS_RECOVERY_INSTANCE".to_owned()),
        (drilled, "RECENT_LAUNCH".to_owned()),
    ];
    expected.sort();
    assert_eq!(withheld, expected);
}

#[tokio::test]
async fn a_dry_run_marks_and_deletes_nothing_and_says_what_it_would_delete() {
    let mut world = local_aws::World::new(local_aws::TARGET_ACCOUNT);
    let stale = broken(&mut world, Some(80));
    let fresh = broken(&mut world, None);
    let h = Harness::start(world, &[("STALE_EXTENSIONS", "delete")]).await;
    let response = h.ok(reconcile(true)).await;
    assert_eq!(response["reconciliation"]["staleDeleted"], 0);
    assert!(h.aws.world().is_extended(local_aws::TARGET_ACCOUNT, &stale));
    assert_eq!(mark_of(&h, &fresh), None, "a dry run writes no mark");
    for operation in [
        "TagResource",
        "UntagResource",
        "DisconnectSourceServer",
        "DeleteSourceServer",
    ] {
        assert!(h.aws.world().calls_of(operation).is_empty(), "{operation}");
    }
    let would: Vec<Value> = unhealthy(&h)
        .into_iter()
        .filter(|d| d["wouldDelete"] == true)
        .collect();
    assert_eq!(would.len(), 1);
    assert_eq!(would[0]["stagingSourceServerArn"], stale.as_str());
}

/// Deleting is a change made to a server, like creating: while the bus is slow
/// and then refuses, at most `RECONCILE_CONCURRENCY` plus one batch (10) of
/// stale extensions are deleted before their events are known lost; the rest are
/// kept and reported `deleteFailed` `EVENTS_UNDELIVERED`, so none disappears
/// beyond that bound without its `Deleted` event.
#[tokio::test]
async fn deletes_stop_within_the_event_bound_once_events_are_lost() {
    let mut world = local_aws::World::new(local_aws::TARGET_ACCOUNT);
    for _ in 0..40 {
        broken(&mut world, Some(100));
    }
    world.put_events_latency = Duration::from_secs(2);
    world.bus_refuses = true;
    let h = Harness::start(
        world,
        &[
            ("STALE_EXTENSIONS", "delete"),
            ("RECONCILE_CONCURRENCY", "1"),
            ("DRS_MAX_RPS", "1000"),
        ],
    )
    .await;
    let result = h.invoke(reconcile(false)).await;
    assert!(result.is_err(), "events were lost: the invocation says so");
    let deleted = 40 - h.aws.world().extended().len();
    assert!(
        deleted >= 1,
        "deletes went ahead while nothing was known lost"
    );
    assert!(
        deleted <= 1 + 10,
        "{deleted} stale extensions deleted after their events could not go out"
    );
    let withheld = h
        .aws
        .world()
        .calls_of("PutEvents")
        .iter()
        .flat_map(|c| c.body["Entries"].as_array().cloned().unwrap_or_default())
        .filter(|e| {
            e["Detail"]
                .as_str()
                .is_some_and(|d| d.contains("EVENTS_UNDELIVERED"))
        })
        .count();
    assert!(withheld > 0, "the kept ones were reported as withheld");
}

/// A delete cut short after its disconnect (its delete refused, or timed out) is
/// finished by the next run, whatever DRS answers a second disconnect and
/// whatever state the extension shows: a server DRS shows disconnected is not
/// disconnected again, a refusal to disconnect again does not stop the delete,
/// and its `Deleted` event goes out once.
#[tokio::test]
async fn a_delete_cut_short_after_its_disconnect_is_finished_by_the_next_run() {
    use local_aws::{ExtensionReplication, RepeatDisconnect};
    let cut_short = [
        Fault::error(500, "InternalServerException"),
        Fault::Delay(Duration::from_secs(30)),
    ];
    for fault in cut_short {
        for repeat in [RepeatDisconnect::Conflict, RepeatDisconnect::Accepted] {
            for shown in [
                ExtensionReplication::Own,
                ExtensionReplication::MirrorsStaging,
            ] {
                let case = format!("{fault:?}, {repeat:?}, {shown:?}");
                let mut world = local_aws::World::new(local_aws::TARGET_ACCOUNT);
                let staging = broken(&mut world, Some(80));
                world.repeat_disconnect = repeat;
                world.extension_replication = shown;
                // Every attempt of the first run's delete, and none after.
                world.inject("DeleteSourceServer", 3, fault.clone());
                let h = Harness::start(world, &[("STALE_EXTENSIONS", "delete")]).await;

                let first = h.ok(reconcile(false)).await;
                assert_eq!(
                    first["reconciliation"]["staleDeleted"], 0,
                    "{case}: {first}"
                );
                assert!(
                    h.aws
                        .world()
                        .is_extended(local_aws::TARGET_ACCOUNT, &staging),
                    "{case}: kept"
                );
                let kept = unhealthy(&h);
                assert_eq!(kept.len(), 1, "{case}");
                assert!(kept[0]["deleteFailed"].is_string(), "{case}: {}", kept[0]);

                let second = h.ok(reconcile(false)).await;
                assert_eq!(
                    second["reconciliation"]["staleDeleted"], 1,
                    "{case}: {second}"
                );
                assert!(
                    !h.aws
                        .world()
                        .is_extended(local_aws::TARGET_ACCOUNT, &staging),
                    "{case}: the delete was finished"
                );
                let deleted = h.events_of("Extended Source Server Deleted");
                assert_eq!(deleted.len(), 1, "{case}: one Deleted event");
                assert_eq!(
                    deleted[0]["Detail"]["stagingSourceServerArn"],
                    staging.as_str()
                );
                // Shown DISCONNECTED (its own record): not disconnected again.
                // Shown its staging server's state: asked again, and a refusal
                // does not stop the delete.
                let disconnects = h.aws.world().calls_of("DisconnectSourceServer").len();
                let expected = match shown {
                    ExtensionReplication::Own => 1,
                    _ => 2,
                };
                assert_eq!(disconnects, expected, "{case}");

                let third = h.ok(reconcile(false)).await;
                assert_eq!(
                    h.events_of("Extended Source Server Deleted").len(),
                    1,
                    "{case}: no second Deleted event ({third})"
                );
            }
        }
    }
}

/// An extension may show its staging server's state: one that shows
/// `DISCONNECTED` because its staging server was disconnected is still connected
/// itself. The delete DRS refuses then is followed by a disconnect and a delete,
/// in the same run: a stale extension is never kept for ever on a state that was
/// not its own.
#[tokio::test]
async fn a_server_shown_disconnected_by_its_staging_server_is_still_deleted() {
    use local_aws::{ExtensionReplication, RepeatDisconnect};
    for repeat in [RepeatDisconnect::Conflict, RepeatDisconnect::Accepted] {
        let mut world = local_aws::World::new(local_aws::TARGET_ACCOUNT);
        let staging = broken(&mut world, Some(80));
        world.set_staging_replication(&staging, "DISCONNECTED", None);
        world.extension_replication = ExtensionReplication::MirrorsStaging;
        world.repeat_disconnect = repeat;
        let h = Harness::start(world, &[("STALE_EXTENSIONS", "delete")]).await;
        let response = h.ok(reconcile(false)).await;
        assert_eq!(
            response["reconciliation"]["staleDeleted"], 1,
            "{repeat:?}: {response}"
        );
        assert!(!h
            .aws
            .world()
            .is_extended(local_aws::TARGET_ACCOUNT, &staging));
        let world = h.aws.world();
        assert_eq!(world.calls_of("DeleteSourceServer").len(), 2, "{repeat:?}");
        assert_eq!(world.calls_of("DisconnectSourceServer").len(), 1);
        drop(world);
        assert_eq!(h.events_of("Extended Source Server Deleted").len(), 1);
    }
}

/// Mechanism: the stop flag a given-up event sets, read before every attempt of
/// a delete's calls (the disconnect and the delete), not only before the delete
/// starts. DRS throttles here (2/s, a bucket of one) and the SDK retries a
/// throttled call up to 10 times, a second apart at most, so a delete is riding
/// out throttling when the bus refuses the first event: after that no attempt
/// of it may be sent.
#[tokio::test]
async fn a_give_up_stops_a_delete_already_under_way() {
    let mut world = local_aws::World::new(local_aws::TARGET_ACCOUNT);
    for _ in 0..20 {
        broken(&mut world, Some(100));
    }
    world.bus_refuses = true;
    world.drs_rate_limit = Some(2);
    world.drs_rate_burst = Some(1);
    let policy = drs_extender::CallPolicy {
        max_attempts: 10,
        initial_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(1),
        operation_timeout: Duration::from_secs(20),
        ..fast_policy()
    };
    let h = Harness::start_with(
        world,
        &[
            ("STALE_EXTENSIONS", "delete"),
            ("RECONCILE_CONCURRENCY", "1"),
            ("DRS_MAX_RPS", "1000"),
        ],
        policy,
    )
    .await;
    let result = h.invoke(reconcile(false)).await;
    assert!(result.is_err(), "events were lost: the invocation says so");
    let world = h.aws.world();
    let given_up = world.calls_of("PutEvents")[0].at;
    // An attempt that passed the check as the refusal came back may arrive
    // just after it.
    let late = ["DisconnectSourceServer", "DeleteSourceServer"]
        .iter()
        .flat_map(|op| world.calls_of(op))
        .filter(|c| c.at > given_up + Duration::from_millis(100))
        .count();
    assert_eq!(
        late, 0,
        "delete attempts sent after the first event was given up"
    );
}
