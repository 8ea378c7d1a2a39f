//! Every inbound kind, through the real handler and SDK clients, against the local AWS.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn agent_registration_extends_the_registered_server() {
    let h = Harness::start(World::sample(), &[]).await;
    let response = h.ok(event("agent-registration")).await;
    assert_eq!(statuses(&response), ["created"]);
    let outcome = &response["outcomes"][0];
    assert_eq!(
        outcome["stagingSourceServerArn"],
        arn(STAGING_A, "s-1111aaaa2222bbbb3")
    );
    let world = h.aws.world();
    assert_eq!(world.extended().len(), 1);
    assert_eq!(world.extended()[0].account, TARGET_ACCOUNT);
    assert_eq!(outcome["extendedSourceServerArn"], world.extended()[0].arn);
    drop(world);

    let created = h.events_of("Extended Source Server Created");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["Source"], "drs-extender");
    assert_eq!(created[0]["EventBusName"], "default");
    let detail = &created[0]["Detail"];
    assert_eq!(detail["stagingAccountId"], STAGING_A);
    assert_eq!(detail["region"], REGION);
    assert!(detail["extendedSourceServerId"]
        .as_str()
        .unwrap()
        .starts_with("s-"));
    assert_eq!(
        detail["trigger"],
        json!({"id": "7f4c1f4e-1d0b-4c7e-9d4e-2a1b3c4d5e6f", "source": "aws.drs", "detailType": "AWS API Call via CloudTrail"})
    );
    assert_eq!(created[0]["Resources"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn registration_without_a_server_reconciles_that_account_only() {
    let h = Harness::start(World::sample(), &[]).await;
    let response = h.ok(event("agent-registration-without-server")).await;
    assert_eq!(response["created"], 4, "{response}");
    let world = h.aws.world();
    assert!(world
        .extended()
        .iter()
        .all(|e| e.staging_account == STAGING_A));
    let listed = world.calls_of("ListExtensibleSourceServers");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].body["stagingAccountID"], STAGING_A);
    assert_eq!(listed[0].body["maxResults"], 300);
    drop(world);
    let summary = h.events_of("Reconciliation Completed");
    assert_eq!(summary.len(), 1);
    assert_eq!(summary[0]["Detail"]["examined"], 4);
    assert_eq!(summary[0]["Detail"]["complete"], true);
    assert_eq!(
        summary[0]["Detail"]["stagingAccountIds"],
        json!([STAGING_A])
    );
}

#[tokio::test]
async fn failed_registrations_and_unrelated_events_are_ignored_without_aws_calls() {
    let h = Harness::start(World::sample(), &[]).await;
    for name in [
        "agent-registration-failed",
        "unrelated-event",
        "drs-recovery-instance-event",
    ] {
        let response = h.ok(event(name)).await;
        assert!(response["ignored"].is_string(), "{name}: {response}");
        assert_eq!(response["outcomes"], json!([]));
    }
    assert!(
        h.aws.world().calls().is_empty(),
        "no AWS call at all, not even PutEvents"
    );
}

#[tokio::test]
async fn drs_events_extend_their_source_server_resources() {
    let h = Harness::start(World::sample(), &[]).await;
    let response = h.ok(event("drs-source-server-event")).await;
    assert_eq!(statuses(&response), ["created"]);
    assert_eq!(
        response["outcomes"][0]["stagingSourceServerArn"],
        arn(STAGING_A, "s-1111aaaa2222bbbb4")
    );
}

#[tokio::test]
async fn announcements_by_arn_copy_the_staging_tags() {
    let h = Harness::start(
        World::sample(),
        &[("EXTENSION_TAGS", r#"{"env":"dr","owner":"dr-team"}"#)],
    )
    .await;
    let response = h.ok(event("announcement-by-arn")).await;
    assert_eq!(statuses(&response), ["created"]);
    let world = h.aws.world();
    let tags = &world.extended()[0].tags;
    assert_eq!(tags["app"], "billing");
    assert_eq!(tags["env"], "dr", "configured tags win over copied ones");
    assert_eq!(tags["owner"], "dr-team");
}

#[tokio::test]
async fn announcements_by_id_take_account_and_region_from_the_detail() {
    let h = Harness::start(World::sample(), &[]).await;
    let response = h.ok(event("announcement-by-id")).await;
    assert_eq!(statuses(&response), ["created"]);
    assert_eq!(
        response["outcomes"][0]["stagingSourceServerArn"],
        arn(STAGING_B, "s-2222cccc3333dddd6")
    );
}

#[tokio::test]
async fn scheduled_reconciliation_covers_the_allowlist() {
    let h = Harness::start(
        World::sample(),
        &[("STAGING_ACCOUNT_IDS", "111122223333,222233334444")],
    )
    .await;
    let response = h.ok(event("scheduled-reconciliation")).await;
    assert_eq!(response["created"], 8, "{response}");
    assert_eq!(response["reconciliation"]["complete"], true);
    let again = h.ok(event("scheduled-reconciliation")).await;
    assert_eq!(again["created"], 0, "nothing is left to extend");
    assert_eq!(again["reconciliation"]["examined"], 0);
}

/// A registration record without `recipientAccountId` or `awsRegion` takes the
/// envelope's `account` and `region`.
#[tokio::test]
async fn registration_falls_back_to_the_envelopes_account_and_region() {
    let h = Harness::start(World::sample(), &[]).await;
    let mut registration = event("agent-registration");
    let detail = registration["detail"].as_object_mut().unwrap();
    detail.remove("recipientAccountId");
    detail.remove("awsRegion");
    assert_eq!(registration["account"], STAGING_A);
    let response = h.ok(registration.clone()).await;
    assert_eq!(statuses(&response), ["created"], "{response}");
    assert_eq!(response["outcomes"][0]["stagingAccountId"], STAGING_A);
    assert_eq!(response["outcomes"][0]["region"], REGION);

    // The envelope's region is served or not like any other.
    registration["region"] = serde_json::json!("eu-central-1");
    let response = h.ok(registration).await;
    assert_eq!(statuses(&response), ["rejected"]);
}
