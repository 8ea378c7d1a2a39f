//! Reconciliation at scale: pagination, coverage, partial failures, throttling,
//! the deadline, dry run and fan-out, against the local AWS.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn requested(detail: Value, sender: &str) -> Value {
    envelope(
        "test-request",
        "Reconciliation Requested",
        "org.example.dr-tooling",
        sender,
        "2026-11-26T12:00:00Z",
        detail,
    )
}

fn accounts(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{:012}", 300_000_000_000u64 + i as u64))
        .collect()
}

#[tokio::test]
async fn pages_past_300_servers_in_several_accounts() {
    let mut world = World::new(TARGET_ACCOUNT);
    world.seed(STAGING_A, REGION, 301);
    world.seed(STAGING_B, REGION, 650);
    let h = Harness::start(
        world,
        &[("DRS_MAX_RPS", "10000"), ("RECONCILE_CONCURRENCY", "32")],
    )
    .await;
    let response = h.ok(event("scheduled-reconciliation")).await;
    // Without an allowlist the schedule covers what ListStagingAccounts returns:
    // nothing is extended yet, so nothing.
    assert_eq!(response["reconciliation"]["examined"], 0);

    let both = requested(
        json!({"stagingAccountIds": [STAGING_A, STAGING_B]}),
        TARGET_ACCOUNT,
    );
    let response = h.ok(both).await;
    assert_eq!(response["created"], 951);
    assert_eq!(response["reconciliation"]["examined"], 951);
    {
        let world = h.aws.world();
        assert_eq!(world.extended().len(), 951);
        assert!(
            world.extended().iter().all(|e| e.tags["app"] == "demo"),
            "staging tags are copied"
        );
        let lists = world.calls_of("ListExtensibleSourceServers");
        assert_eq!(
            lists.len(),
            (2 + 1) + (3 + 1),
            "301 in two pages, 650 in three, each then listed once more to find none untried"
        );
        assert!(lists.iter().all(|c| c.body["maxResults"] == 300));
    }
    // Now ListStagingAccounts knows both accounts, and a schedule finds nothing left.
    let response = h.ok(event("scheduled-reconciliation")).await;
    assert_eq!(
        response["reconciliation"]["stagingAccountIds"],
        json!([STAGING_A, STAGING_B])
    );
    assert_eq!(response["reconciliation"]["examined"], 0);
}

#[tokio::test]
async fn list_staging_accounts_is_followed_through_every_page() {
    let mut world = World::new(TARGET_ACCOUNT);
    let staging = accounts(60);
    for account in &staging {
        let servers = world.seed(account, REGION, 2);
        world.extend_directly(TARGET_ACCOUNT, &servers[0]);
    }
    let h = Harness::start(world, &[("DRS_MAX_RPS", "10000")]).await;
    let response = h.ok(event("scheduled-reconciliation")).await;
    assert_eq!(
        response["reconciliation"]["stagingAccountIds"]
            .as_array()
            .unwrap()
            .len(),
        60
    );
    assert_eq!(response["created"], 60);
    let pages = h.aws.world().calls_of("ListStagingAccounts").len();
    assert_eq!(pages, 2, "50 a page");
}

#[tokio::test]
async fn requests_outside_the_allowlist_are_rejected_and_the_rest_goes_on() {
    let h = Harness::start(
        World::sample(),
        &[("STAGING_ACCOUNT_IDS", STAGING_A), ("DRS_MAX_RPS", "1000")],
    )
    .await;
    let response = h
        .ok(requested(
            json!({"stagingAccountIds": [STAGING_A, STAGING_B]}),
            TARGET_ACCOUNT,
        ))
        .await;
    assert_eq!(response["rejected"], 1);
    assert_eq!(
        response["reconciliation"]["rejected"], 1,
        "the summary counts refused accounts too"
    );
    assert_eq!(response["created"], 4);
    assert_eq!(
        response["reconciliation"]["stagingAccountIds"],
        json!([STAGING_A])
    );
}

#[tokio::test]
async fn a_staging_account_may_only_reconcile_itself() {
    let h = Harness::start(World::sample(), &[("DRS_MAX_RPS", "1000")]).await;
    let response = h.ok(requested(json!({}), STAGING_B)).await;
    assert_eq!(response["created"], 4);
    assert!(h
        .aws
        .world()
        .extended()
        .iter()
        .all(|e| e.staging_account == STAGING_B));
    let response = h
        .ok(requested(
            json!({"stagingAccountIds": [STAGING_A]}),
            STAGING_B,
        ))
        .await;
    assert_eq!(statuses(&response), ["rejected"]);
}

#[tokio::test]
async fn one_servers_failure_never_stops_the_others() {
    let mut world = World::sample();
    world.mark_default_ebs_key(&arn(STAGING_A, "s-1111aaaa2222bbbb3"));
    let h = Harness::start(
        world,
        &[
            ("STAGING_ACCOUNT_IDS", "111122223333,222233334444"),
            ("DRS_MAX_RPS", "1000"),
        ],
    )
    .await;
    let response = h.ok(event("scheduled-reconciliation")).await;
    assert_eq!(response["created"], 7);
    assert_eq!(response["failed"], 1);
    assert_eq!(response["reconciliation"]["failed"], 1);
    assert_eq!(h.events_of("Extended Source Server Failed").len(), 1);
    assert_eq!(h.events_of("Extended Source Server Created").len(), 7);
}

#[tokio::test]
async fn a_retryable_failure_fails_the_invocation_after_the_summary_is_out() {
    let mut world = World::sample();
    world.inject(
        "CreateExtendedSourceServer",
        3,
        Fault::error(500, "InternalServerException"),
    );
    let h = Harness::start(
        world,
        &[
            ("STAGING_ACCOUNT_IDS", STAGING_A),
            ("RECONCILE_CONCURRENCY", "1"),
            ("DRS_MAX_RPS", "1000"),
        ],
    )
    .await;
    let result = h.invoke(event("scheduled-reconciliation")).await;
    assert!(result.is_err());
    assert_eq!(h.events_of("Reconciliation Completed").len(), 1);
    assert_eq!(h.events_of("Extended Source Server Created").len(), 3);
    // The retry Lambda makes finishes the job.
    let again = h.ok(event("scheduled-reconciliation")).await;
    assert_eq!(again["created"], 1);
}

#[tokio::test]
async fn a_throttling_storm_is_ridden_out() {
    let mut world = World::new(TARGET_ACCOUNT);
    world.seed(STAGING_A, REGION, 60);
    world.seed(STAGING_B, REGION, 60);
    // The service takes 40 requests a second; the client is allowed twice that.
    world.drs_rate_limit = Some(40);
    let h = Harness::start_with(
        world,
        &[
            ("STAGING_ACCOUNT_IDS", "111122223333,222233334444"),
            ("DRS_MAX_RPS", "80"),
            ("RECONCILE_CONCURRENCY", "16"),
        ],
        drs_extender::CallPolicy {
            max_attempts: 4,
            max_backoff: Duration::from_secs(2),
            operation_timeout: Duration::from_secs(30),
            ..fast_policy()
        },
    )
    .await;
    let response = h.ok(event("scheduled-reconciliation")).await;
    assert_eq!(response["created"], 120, "{}", response["outcomes"]);
    assert_eq!(response["failed"], 0);
    let throttled = h.aws.world().calls_of("CreateExtendedSourceServer").len() - 120;
    assert!(throttled > 0, "the storm happened");
}

#[tokio::test]
async fn near_the_deadline_the_run_stops_and_says_what_is_unfinished() {
    let mut world = World::new(TARGET_ACCOUNT);
    world.seed(STAGING_A, REGION, 200);
    let h = Harness::start(
        world,
        &[("STAGING_ACCOUNT_IDS", STAGING_A), ("DRS_MAX_RPS", "50")],
    )
    .await;
    // Four seconds left: the run keeps half for finishing and reporting.
    let result = h
        .app
        .handle(lambda_event(
            event("scheduled-reconciliation"),
            Duration::from_secs(4),
        ))
        .await;
    let response = serde_json::to_value(result.unwrap()).unwrap();
    let summary = &response["reconciliation"];
    assert_eq!(summary["complete"], false);
    assert_eq!(
        summary["unfinished"],
        json!([{"stagingAccountId": STAGING_A, "region": REGION, "reason": "DEADLINE"}])
    );
    let created = response["created"].as_u64().unwrap();
    assert!(created > 0 && created < 200, "{created}");
    assert_eq!(
        h.aws.world().extended().len() as u64,
        created,
        "every create in flight was reported"
    );
    let completed = h.events_of("Reconciliation Completed");
    assert_eq!(completed[0]["Detail"]["complete"], false);
}

/// A dry run, configured or asked for, reports what it would do (skipped,
/// `DRY_RUN`) and never creates; a request cannot lift a configured one.
#[tokio::test]
async fn a_dry_run_reports_every_would_be_create_and_creates_nothing() {
    let h = Harness::start(
        World::sample(),
        &[("STAGING_ACCOUNT_IDS", "111122223333,222233334444")],
    )
    .await;
    let response = h.ok(event("reconciliation-requested")).await;
    assert_eq!(response["skipped"], 8);
    assert_eq!(response["reconciliation"]["skipped"], 8);
    assert_eq!(response["reconciliation"]["dryRun"], true);
    assert!(response["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|o| o["reason"] == "DRY_RUN"));

    let configured = Harness::start(World::sample(), &[("DRY_RUN", "true")]).await;
    let response = configured.ok(event("announcement-by-arn")).await;
    assert_eq!(response["outcomes"][0]["reason"], "DRY_RUN");
    let lifted = configured
        .ok(requested(json!({"dryRun": false}), TARGET_ACCOUNT))
        .await;
    assert_eq!(lifted["reconciliation"]["dryRun"], true, "{lifted}");

    for h in [&h, &configured] {
        let world = h.aws.world();
        assert!(world.extended().is_empty());
        assert!(world.calls_of("CreateExtendedSourceServer").is_empty());
    }
}

/// Each served region is reconciled through its own client (signed for it).
#[tokio::test]
async fn every_served_region_is_reconciled() {
    let mut world = World::new(TARGET_ACCOUNT);
    world.seed(STAGING_A, REGION, 3);
    world.seed(STAGING_A, "eu-west-1", 2);
    world.seed(STAGING_A, "ap-south-1", 4);
    let h = Harness::start(
        world,
        &[
            ("STAGING_ACCOUNT_IDS", STAGING_A),
            ("RECONCILE_REGIONS", "us-east-1,eu-west-1"),
            ("DRS_MAX_RPS", "1000"),
        ],
    )
    .await;
    let response = h.ok(event("scheduled-reconciliation")).await;
    assert_eq!(response["created"], 5, "ap-south-1 is not served");
    assert_eq!(
        response["reconciliation"]["regions"],
        json!(["eu-west-1", "us-east-1"])
    );
    let world = h.aws.world();
    let regions: std::collections::BTreeSet<&str> = world
        .calls_of("CreateExtendedSourceServer")
        .iter()
        .map(|c| c.region.as_str())
        .collect();
    assert_eq!(regions, ["eu-west-1", "us-east-1"].into_iter().collect());
    assert!(world.calls().iter().all(|c| c.region != "ap-south-1"));
}

/// `COPY_STAGING_TAGS=false`: reconciliation puts only the configured tags on.
#[tokio::test]
async fn reconciliation_without_copying_staging_tags_applies_only_configured_ones() {
    let h = Harness::start(
        World::sample(),
        &[
            ("STAGING_ACCOUNT_IDS", STAGING_A),
            ("COPY_STAGING_TAGS", "false"),
            ("EXTENSION_TAGS", r#"{"drs-extender":"yes"}"#),
            ("DRS_MAX_RPS", "1000"),
        ],
    )
    .await;
    let response = h.ok(event("scheduled-reconciliation")).await;
    assert_eq!(response["created"], 4);
    for extended in h.aws.world().extended() {
        assert_eq!(
            extended.tags.keys().collect::<Vec<_>>(),
            ["drs-extender", "drs-extender:request-id"],
            "{}",
            extended.staging_arn
        );
    }
}

#[tokio::test]
async fn a_run_too_large_for_one_invocation_fans_out_once() {
    let staging = accounts(12);
    let mut world = World::new(TARGET_ACCOUNT);
    for account in &staging[..11] {
        world.seed(account, REGION, 40);
    }
    // The last account has nothing left to extend.
    for arn in world.seed(&staging[11], REGION, 2) {
        world.extend_directly(TARGET_ACCOUNT, &arn);
    }
    world.create_bus("drs-central");
    let allowlist = staging.join(",");
    let h = Harness::start(
        world,
        &[
            ("STAGING_ACCOUNT_IDS", &allowlist),
            ("DRS_MAX_RPS", "10"),
            ("FAN_OUT_EVENT_BUS", "drs-central"),
        ],
    )
    .await;
    // 60 s, the function's deadline here, leave 40 s after the test policy's 20 s
    // margin: 400 calls at 10/s, and the survey finds 11 x 40 = 440 servers to extend.
    let result = h
        .app
        .handle(lambda_event(
            event("scheduled-reconciliation"),
            Duration::from_secs(60),
        ))
        .await;
    let response = serde_json::to_value(result.unwrap()).unwrap();
    assert_eq!(response["reconciliation"]["fannedOut"], 11, "{response}");
    {
        let world = h.aws.world();
        assert!(
            world.calls_of("CreateExtendedSourceServer").is_empty(),
            "the fanning invocation creates nothing itself"
        );
        assert_eq!(
            world.calls_of("ListExtensibleSourceServers").len(),
            12,
            "one look at each account"
        );
    }
    let requests = h.events_of("Reconciliation Requested");
    assert_eq!(
        requests.len(),
        11,
        "none for the account with nothing to do"
    );
    assert_eq!(requests[0]["Source"], "drs-extender");
    assert!(
        requests.iter().all(|r| r["EventBusName"] == "drs-central"),
        "fan-out requests go to FAN_OUT_EVENT_BUS"
    );
    let summary = h.events_of("Reconciliation Completed");
    assert_eq!(
        summary[0]["EventBusName"], "default",
        "outcomes to RESULT_EVENT_BUS"
    );
    assert!(summary[0]["Detail"]["durationMs"].as_u64().unwrap() > 0);
    assert_eq!(
        summary[0]["Detail"]["complete"], true,
        "every account handed on"
    );
    assert_eq!(
        summary[0]["Detail"]["quota"][0]["region"], REGION,
        "the run that fans out watches the quota"
    );

    // Each request, as the bus delivers it back, works its account and never fans out again.
    let request = &requests[0];
    let delivered = envelope(
        "fanned",
        "Reconciliation Requested",
        request["Source"].clone(),
        TARGET_ACCOUNT,
        "2026-11-26T12:00:00Z",
        request["Detail"].clone(),
    );
    let result = h
        .app
        .handle(lambda_event(delivered, Duration::from_secs(60)))
        .await;
    let response = serde_json::to_value(result.unwrap()).unwrap();
    assert_eq!(response["created"], 40);
    assert_eq!(response["reconciliation"]["fannedOut"], 0, "always sent");
    assert_eq!(
        response["reconciliation"]["unfinished"],
        json!([]),
        "always sent"
    );
    assert_eq!(
        h.events_of("Reconciliation Requested").len(),
        11,
        "no further fan-out"
    );
    assert!(
        response["reconciliation"].get("quota").is_none(),
        "a fanned-out run leaves the quota to the run that fanned out"
    );
    assert_eq!(h.aws.world().calls_of("GetServiceQuota").len(), 1);
}

/// A region whose staging accounts cannot be listed leaves the run incomplete,
/// named in `unfinished`; the other regions are worked all the same.
#[tokio::test]
async fn a_region_whose_staging_accounts_cannot_be_listed_is_unfinished() {
    let mut world = World::new(TARGET_ACCOUNT);
    for region in [REGION, "eu-west-1"] {
        let servers = world.seed(STAGING_A, region, 3);
        world.extend_directly(TARGET_ACCOUNT, &servers[0]);
    }
    world.inject(
        "ListStagingAccounts",
        1,
        Fault::error(403, "AccessDeniedException"),
    );
    let h = Harness::start(
        world,
        &[
            ("RECONCILE_REGIONS", "us-east-1,eu-west-1"),
            ("DRS_MAX_RPS", "1000"),
        ],
    )
    .await;
    let response = h.ok(event("scheduled-reconciliation")).await;
    let summary = &response["reconciliation"];
    assert_eq!(summary["complete"], false, "{summary}");
    let unfinished = summary["unfinished"].as_array().unwrap();
    assert_eq!(unfinished.len(), 1, "{summary}");
    assert_eq!(unfinished[0]["reason"], "STAGING_ACCOUNTS_NOT_LISTED");
    assert!(unfinished[0].get("stagingAccountId").is_none());
    let failed_region = unfinished[0]["region"].as_str().unwrap();
    assert_eq!(response["failed"], 1, "the failed listing is an outcome");
    assert_eq!(response["created"], 2, "the other region is worked");
    assert!(
        h.aws
            .world()
            .extended()
            .iter()
            .filter(|e| e.region == failed_region)
            .count()
            == 1
    );
}
