//! Coverage: every reconciliation reports the target account's extended servers
//! for what it covered, and each one DRS can no longer reach.

mod common;

use common::*;
use serde_json::{json, Value};

const EU: &str = "eu-west-1";
const DELETED: &str = "Staging source server was not found. It may have been deleted.";
const NO_ROLE: &str = "Failed to assume role DRSStagingAccountRole in the staging account.";

/// Staging accounts A and B in two regions. A/us-east-1: 3 extended (1 broken), 1
/// not yet. B/eu-west-1: 2 extended (1 broken), 2 not yet. A/eu-west-1 and
/// B/us-east-1: nothing extended, 1 not yet each.
fn world() -> World {
    let mut world = World::new(TARGET_ACCOUNT);
    let a_east = world.seed(STAGING_A, REGION, 4);
    for arn in &a_east[..3] {
        world.extend_directly(TARGET_ACCOUNT, arn);
    }
    world.break_extension(&a_east[0], DELETED);
    let b_eu = world.seed(STAGING_B, EU, 4);
    for arn in &b_eu[..2] {
        world.extend_directly(TARGET_ACCOUNT, arn);
    }
    world.break_extension(&b_eu[1], NO_ROLE);
    world.seed(STAGING_A, EU, 1);
    world.seed(STAGING_B, REGION, 1);
    world
}

async fn harness(world: World) -> Harness {
    Harness::start(
        world,
        &[
            ("STAGING_ACCOUNT_IDS", "111122223333,222233334444"),
            ("RECONCILE_REGIONS", "us-east-1,eu-west-1"),
            ("DRS_MAX_RPS", "1000"),
        ],
    )
    .await
}

fn scope<'a>(response: &'a Value, account: &str, region: &str) -> &'a Value {
    response["coverage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["stagingAccountId"] == account && c["region"] == region)
        .unwrap_or_else(|| panic!("no coverage for {account} in {region}: {response}"))
}

fn unhealthy(h: &Harness) -> Vec<Value> {
    let mut events: Vec<Value> = h
        .events_of("Extended Source Server Unhealthy")
        .into_iter()
        .map(|e| e["Detail"].clone())
        .collect();
    events.sort_by_key(|d| d["region"].to_string());
    events
}

#[tokio::test]
async fn a_reconciliation_reports_what_is_extended_and_what_is_broken() {
    let h = harness(world()).await;
    let response = h.ok(event("scheduled-reconciliation")).await;
    assert_eq!(response["created"], 5, "{response}");
    let summary = &response["reconciliation"];
    // 5 extended before, 5 created by this run.
    assert_eq!(summary["extended"], 10, "{summary}");
    assert_eq!(summary["extensionErrors"], 2);
    assert!(summary.get("coverageUnread").is_none());
    assert_eq!(scope(&response, STAGING_A, REGION)["extended"], 4);
    assert_eq!(scope(&response, STAGING_A, REGION)["extensionErrors"], 1);
    assert_eq!(scope(&response, STAGING_B, EU)["extended"], 4);
    assert_eq!(scope(&response, STAGING_B, EU)["extensionErrors"], 1);
    assert_eq!(scope(&response, STAGING_A, EU)["extended"], 1);
    assert_eq!(scope(&response, STAGING_B, REGION)["notExtended"], 0);

    let events = unhealthy(&h);
    assert_eq!(events.len(), 2, "one per broken extension");
    assert_eq!(events[0]["region"], EU);
    assert_eq!(events[0]["stagingAccountId"], STAGING_B);
    assert_eq!(events[0]["errorMessage"], NO_ROLE);
    assert_eq!(events[0]["extensionStatus"], "EXTENSION_ERROR");
    assert_eq!(events[1]["errorMessage"], DELETED);
    assert!(events[1]["extendedSourceServerArn"]
        .as_str()
        .unwrap()
        .contains(TARGET_ACCOUNT));
    assert_eq!(events[1]["trigger"]["detailType"], "Scheduled Event");
    let completed = h.events_of("Reconciliation Completed");
    assert_eq!(completed[0]["Detail"]["extensionErrors"], 2);
    // The coverage read: one filtered call per region, every account in it; then
    // the quota's count, one unfiltered call per region.
    let world = h.aws.world();
    let reads: Vec<_> = world.calls_of("DescribeSourceServers");
    let (filtered, unfiltered): (Vec<&&local_aws::Call>, Vec<_>) =
        reads.iter().partition(|c| c.body.get("filters").is_some());
    assert_eq!((filtered.len(), unfiltered.len()), (2, 2));
    assert!(filtered
        .iter()
        .all(|c| c.body["filters"]["stagingAccountIDs"]
            .as_array()
            .is_some_and(|ids| ids.len() == 2)));
}

#[tokio::test]
async fn a_dry_run_reports_coverage_too() {
    let h = harness(world()).await;
    let response = h
        .ok(envelope(
            "dry",
            "Reconciliation Requested",
            "org.example.dr-tooling",
            TARGET_ACCOUNT,
            "2026-11-26T12:00:00Z",
            json!({"dryRun": true}),
        ))
        .await;
    assert_eq!(response["skipped"], 5);
    let summary = &response["reconciliation"];
    assert_eq!(summary["extended"], 5, "{summary}");
    assert_eq!(summary["extensionErrors"], 2);
    assert_eq!(unhealthy(&h).len(), 2);
    assert!(h
        .aws
        .world()
        .calls_of("CreateExtendedSourceServer")
        .is_empty());
}

#[tokio::test]
async fn a_failed_coverage_read_is_reported_and_never_stops_the_work() {
    let mut world = world();
    world.inject(
        "DescribeSourceServers",
        1000,
        Fault::error(403, "AccessDeniedException"),
    );
    let h = harness(world).await;
    let response = h.ok(event("scheduled-reconciliation")).await;
    assert_eq!(
        response["created"], 5,
        "the extension work went on: {response}"
    );
    let summary = &response["reconciliation"];
    assert_eq!(summary["complete"], true, "every account was worked");
    let unread = summary["coverageUnread"].as_array().unwrap();
    assert_eq!(unread.len(), 2, "{summary}");
    assert!(unread
        .iter()
        .all(|u| u["errorCode"] == "AccessDeniedException" && u["stagingAccounts"] == 2));
    assert_eq!(summary["extended"], 0);
    assert!(unhealthy(&h).is_empty());
}
