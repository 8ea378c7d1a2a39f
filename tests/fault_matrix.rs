//! The fault matrix: a reconciliation of 2 accounts x 10 servers under each fault,
//! and every server ends in exactly one outcome event, nothing lost, whatever the
//! invocation's own result.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use drs_extender::CallPolicy;
use drs_extender::InvocationError;
use serde_json::Value;

const SERVERS_PER_ACCOUNT: usize = 10;

fn world() -> (World, Vec<String>) {
    let mut world = World::new(TARGET_ACCOUNT);
    let mut servers = world.seed(STAGING_A, REGION, SERVERS_PER_ACCOUNT);
    servers.extend(world.seed(STAGING_B, REGION, SERVERS_PER_ACCOUNT));
    (world, servers)
}

/// Outcome events per staging server, by detail-type.
fn outcomes_by_server(h: &Harness) -> BTreeMap<String, Vec<String>> {
    let mut by_server: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for event in h.aws.world().events() {
        let detail_type = event["DetailType"].as_str().unwrap_or_default();
        if let Some(server) = event["Detail"]["stagingSourceServerArn"].as_str() {
            by_server
                .entry(server.to_owned())
                .or_default()
                .push(detail_type.to_owned());
        }
    }
    by_server
}

fn assert_one_outcome_each(h: &Harness, servers: &[String], case: &str) {
    let by_server = outcomes_by_server(h);
    for server in servers {
        let outcomes = by_server.get(server).cloned().unwrap_or_default();
        assert_eq!(
            outcomes.len(),
            1,
            "{case}: {server} has outcomes {outcomes:?}"
        );
    }
    assert_eq!(
        by_server.len(),
        servers.len(),
        "{case}: no outcome for a server not asked about"
    );
    // Every server the target account holds was made by this run (none was
    // extended before it): reported created, also when its create timed out
    // and took effect, or failed with the timeout that left it unknown; never
    // skipped, and nothing was created that was reported refused.
    let events = h.aws.world().events().to_vec();
    for extended in h.aws.world().extended() {
        let reported = events.iter().any(|e| {
            let detail = &e["Detail"];
            detail["stagingSourceServerArn"] == extended.staging_arn.as_str()
                && (e["DetailType"] == "Extended Source Server Created"
                    || detail["errorCode"] == "Timeout")
        });
        assert!(
            reported,
            "{case}: {} extended unreported",
            extended.staging_arn
        );
    }
}

async fn reconcile_under(
    case: &str,
    inject: impl FnOnce(&mut World),
) -> (Harness, Result<Value, InvocationError>, Vec<String>) {
    reconcile_under_policy(case, fast_policy(), inject).await
}

async fn reconcile_under_policy(
    case: &str,
    policy: drs_extender::CallPolicy,
    inject: impl FnOnce(&mut World),
) -> (Harness, Result<Value, InvocationError>, Vec<String>) {
    let (mut world, servers) = world();
    inject(&mut world);
    let h = Harness::start_with(
        world,
        &[
            ("STAGING_ACCOUNT_IDS", "111122223333,222233334444"),
            ("DRS_MAX_RPS", "1000"),
            ("RECONCILE_CONCURRENCY", "4"),
        ],
        policy,
    )
    .await;
    let result = h
        .invoke(event("scheduled-reconciliation"))
        .await
        .map(|r| serde_json::to_value(r).unwrap());
    assert_one_outcome_each(&h, &servers, case);
    (h, result, servers)
}

#[tokio::test]
async fn a_throttling_storm_ends_in_one_outcome_each_and_all_created() {
    let (h, result, _) = reconcile_under("throttling storm", |w| {
        w.inject("CreateExtendedSourceServer", 12, Fault::throttling(0));
    })
    .await;
    assert_eq!(result.unwrap()["created"], 20);
    assert!(h.aws.world().calls_of("CreateExtendedSourceServer").len() > 20);
}

#[tokio::test]
async fn a_run_of_server_errors_is_retried_through() {
    // More attempts than injected errors: whichever server they fall on, it gets through.
    let policy = drs_extender::CallPolicy {
        max_attempts: 7,
        ..fast_policy()
    };
    let (_, result, _) = reconcile_under_policy("5xx run", policy, |w| {
        w.inject(
            "CreateExtendedSourceServer",
            6,
            Fault::error(500, "InternalServerException"),
        );
        w.inject(
            "ListExtensibleSourceServers",
            1,
            Fault::error(503, "ServiceUnavailableException"),
        );
    })
    .await;
    assert_eq!(result.unwrap()["created"], 20);
}

#[tokio::test]
async fn a_create_that_times_out_but_takes_effect_is_found_and_reported_created() {
    // The client gives up after 3 attempts of 0.8 s; a first attempt lands at 2 s,
    // within the late look, so its server is found extended, never failed, and
    // its tag says this invocation made it.
    let (h, result, _) = reconcile_under("slow creates", |w| {
        w.inject(
            "CreateExtendedSourceServer",
            9,
            Fault::Delay(Duration::from_secs(2)),
        );
    })
    .await;
    let response = result.unwrap();
    assert_eq!(response["failed"], 0, "{response}");
    assert_eq!(response["created"], 20, "{response}");
    assert!(h.events_of("Extended Source Server Skipped").is_empty());
}

#[tokio::test]
async fn creates_that_take_effect_too_late_fail_retryably_and_the_retry_finishes() {
    let (h, result, _) = reconcile_under("very slow creates", |w| {
        w.inject(
            "CreateExtendedSourceServer",
            9,
            Fault::Delay(Duration::from_secs(6)),
        );
    })
    .await;
    // The test policy makes 3 attempts of 0.8 s each: 9 slow answers can sink up
    // to three servers, which fail retryably; the invocation fails so Lambda retries.
    assert!(
        matches!(result, Err(InvocationError::RetryableFailures { .. })),
        "{result:?}"
    );
    let failed = h.events_of("Extended Source Server Failed");
    assert!(failed
        .iter()
        .all(|e| e["Detail"]["errorCode"] == "Timeout" && e["Detail"]["retryable"] == true));
    // The retry finishes the job: every server that failed is extended after it
    // (some already were: their create took effect after the client gave up).
    tokio::time::sleep(Duration::from_secs(4)).await;
    h.ok(event("scheduled-reconciliation")).await;
    let world = h.aws.world();
    for failure in &failed {
        let server = failure["Detail"]["stagingSourceServerArn"]
            .as_str()
            .unwrap();
        assert!(world.is_extended(TARGET_ACCOUNT, server), "{server}");
    }
}

#[tokio::test]
async fn refused_event_entries_are_resent_until_every_outcome_is_out() {
    let (h, result, _) =
        reconcile_under("PutEvents refused in part", |w| w.refuse_event_entries(7)).await;
    assert_eq!(result.unwrap()["created"], 20);
    assert_eq!(h.events_of("Reconciliation Completed").len(), 1);
}

#[tokio::test]
async fn a_failed_listing_is_an_outcome_for_its_account() {
    let (mut world, servers) = world();
    world.inject(
        "ListExtensibleSourceServers",
        100,
        Fault::error(403, "AccessDeniedException"),
    );
    let h = Harness::start(
        world,
        &[("STAGING_ACCOUNT_IDS", "111122223333,222233334444")],
    )
    .await;
    let response = h.ok(event("scheduled-reconciliation")).await;
    assert_eq!(
        response["failed"], 2,
        "one per account: its servers were never seen"
    );
    assert!(outcomes_by_server(&h).is_empty());
    let failed = h.events_of("Extended Source Server Failed");
    assert!(failed
        .iter()
        .all(|e| e["Detail"]["errorCode"] == "AccessDeniedException"));
    assert_eq!(response["reconciliation"]["complete"], false);
    let unfinished = response["reconciliation"]["unfinished"].as_array().unwrap();
    assert_eq!(unfinished.len(), 2);
    assert!(unfinished.iter().all(|u| u["reason"] == "LISTING_FAILED"));
    assert_eq!(servers.len(), 20);
}

#[tokio::test]
async fn assume_role_failing_fails_retryably_and_says_so() {
    let (mut world, _) = world();
    world.inject("AssumeRole", 1000, Fault::error(500, "InternalFailure"));
    let h = Harness::start_with(
        world,
        &[
            ("STAGING_ACCOUNT_IDS", "111122223333,222233334444"),
            (
                "TARGET_ROLE_ARN",
                "arn:aws:iam::555566667777:role/drs-extender-target",
            ),
        ],
        CallPolicy {
            max_attempts: 2,
            ..fast_policy()
        },
    )
    .await;
    let result = h.invoke(event("scheduled-reconciliation")).await;
    assert!(
        matches!(result, Err(InvocationError::RetryableFailures { .. })),
        "{result:?}"
    );
    let failed = h.events_of("Extended Source Server Failed");
    assert_eq!(failed.len(), 2, "one per account");
    assert!(failed.iter().all(|e| e["Detail"]["retryable"] == true));
    // One listing waits on the credentials the other is loading, and may run out
    // of its own time first: a `Timeout`, retryable all the same.
    assert!(
        failed
            .iter()
            .any(|e| e["Detail"]["errorCode"] == "CredentialsError"),
        "{failed:?}"
    );
    assert!(h.aws.world().extended().is_empty());
}

#[tokio::test]
async fn outcome_events_that_never_arrive_fail_the_invocation_and_keep_the_counts() {
    let (mut world, _) = world();
    world.refuse_event_entries(usize::MAX);
    let h = Harness::start(
        world,
        &[
            ("STAGING_ACCOUNT_IDS", "111122223333,222233334444"),
            ("DRS_MAX_RPS", "1000"),
        ],
    )
    .await;
    let err = h
        .invoke(event("scheduled-reconciliation"))
        .await
        .unwrap_err();
    match err {
        InvocationError::OutcomesUndelivered {
            undelivered,
            summary,
            ..
        } => {
            // The first batch given up ended the creating: what was made is
            // counted, and every outcome of it, and the summary, is undelivered.
            let created = h.aws.world().extended().len();
            assert!(
                created <= 8 + 10,
                "{created} created after events were given up"
            );
            assert_eq!(undelivered, created + 1, "each outcome and the summary");
            assert!(
                summary.contains(&format!("\"created\":{created}")),
                "{summary}"
            );
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn the_same_event_delivered_twice_creates_once() {
    let (world, servers) = world();
    let h = Harness::start(
        world,
        &[
            ("STAGING_ACCOUNT_IDS", "111122223333,222233334444"),
            ("DRS_MAX_RPS", "1000"),
        ],
    )
    .await;
    let (first, second) = tokio::join!(
        h.invoke(event("scheduled-reconciliation")),
        h.invoke(event("scheduled-reconciliation"))
    );
    let created = |r: &Result<drs_extender::Response, InvocationError>| {
        r.as_ref().map(|r| r.created).unwrap_or(0)
    };
    assert_eq!(created(&first) + created(&second), 20);
    assert_eq!(h.aws.world().extended().len(), 20);
    let by_server = outcomes_by_server(&h);
    for server in &servers {
        let outcomes = &by_server[server];
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| *o == "Extended Source Server Created")
                .count(),
            1,
            "{server}"
        );
    }
}
