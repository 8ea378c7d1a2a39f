//! Malformed and hostile events: each is rejected or ignored, no DRS call is made,
//! and the function goes on serving.

mod common;

use common::*;
use serde_json::{json, Value};

fn variants() -> Vec<(&'static str, Value)> {
    let ann = event("announcement-by-arn");
    let reg = event("agent-registration");
    let drs = event("drs-source-server-event");
    let with = |base: &Value, pointer: &str, value: Value| {
        let mut v = base.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        v.pointer_mut(parent).unwrap()[key] = value;
        v
    };
    vec![
        ("null", json!(null)),
        ("string", json!("Staging Source Server Added")),
        ("array", json!([ann.clone()])),
        ("empty object", json!({})),
        ("no detail-type", { let mut v = ann.clone(); v.as_object_mut().unwrap().remove("detail-type"); v }),
        ("detail-type not a string", with(&ann, "/detail-type", json!(42))),
        ("bad time", with(&ann, "/time", json!("yesterday"))),
        ("resources not strings", with(&drs, "/resources", json!([1, 2]))),
        ("account too short", with(&ann, "/account", json!("12345"))),
        ("account with letters", with(&ann, "/account", json!("11112222333x"))),
        ("detail not an object", with(&ann, "/detail", json!("s-2222cccc3333dddd5"))),
        ("arn wrong partition", with(&ann, "/detail/sourceServerArn", json!("arn:aws-cn:drs:us-east-1:222233334444:source-server/s-2222cccc3333dddd5"))),
        ("arn wrong service", with(&ann, "/detail/sourceServerArn", json!("arn:aws:ec2:us-east-1:222233334444:source-server/s-2222cccc3333dddd5"))),
        ("arn wrong resource", with(&ann, "/detail/sourceServerArn", json!("arn:aws:drs:us-east-1:222233334444:recovery-instance/s-2222cccc3333dddd5"))),
        ("arn account 13 digits", with(&ann, "/detail/sourceServerArn", json!("arn:aws:drs:us-east-1:2222333344445:source-server/s-2222cccc3333dddd5"))),
        ("arn id short", with(&ann, "/detail/sourceServerArn", json!("arn:aws:drs:us-east-1:222233334444:source-server/s-2222"))),
        ("arn with newline", with(&ann, "/detail/sourceServerArn", json!("arn:aws:drs:us-east-1:222233334444:source-server/s-2222cccc3333dddd5\n{\"level\":\"ERROR\"}"))),
        ("arn oversized", with(&ann, "/detail/sourceServerArn", json!(format!("arn:aws:drs:us-east-1:222233334444:source-server/s-{}", "a".repeat(5000))))),
        ("arn a number", with(&ann, "/detail/sourceServerArn", json!(7))),
        ("id and arn disagree", with(&ann, "/detail/sourceServerId", json!("s-0000000000000000a"))),
        ("id with control characters", with(&event("announcement-by-id"), "/detail/sourceServerId", json!("s-2222cccc3333\u{0}dd6"))),
        ("region not a region", with(&event("announcement-by-id"), "/detail/region", json!("us east 1"))),
        ("tags not an object", with(&ann, "/detail/tags", json!(["app"]))),
        ("tag value a number", with(&ann, "/detail/tags", json!({"app": 1}))),
        ("registration id malformed", with(&reg, "/detail/responseElements/sourceServerID", json!("s-!!"))),
        ("registration account malformed", with(&reg, "/detail/recipientAccountId", json!("not-an-account"))),
        ("registration region malformed", with(&reg, "/detail/awsRegion", json!("Mars-1"))),
        ("registration arn in another account", with(&reg, "/detail/responseElements", json!({"arn": "arn:aws:drs:us-east-1:222233334444:source-server/s-2222cccc3333dddd5"}))),
        ("drs event with a look-alike arn", with(&drs, "/resources", json!(["arn:aws:drs:us-east-1:111122223333:source-server/s-1111aaaa2222bbbb4x"]))),
        ("reconciliation with a bad account", with(&event("reconciliation-requested"), "/detail/stagingAccountIds", json!(["1111"]))),
        ("reconciliation dryRun a string", with(&event("reconciliation-requested"), "/detail/dryRun", json!("yes"))),
        ("source spoofing aws", with(&ann, "/source", json!("aws.drs.fake"))),
        ("deeply nested detail", with(&ann, "/detail/tags", (0..64).fold(json!("x"), |acc, _| json!({"a": acc})))),
    ]
}

#[tokio::test]
async fn every_malformed_event_is_refused_without_a_drs_call() {
    let h = Harness::start(World::sample(), &[]).await;
    let cases = variants();
    assert!(cases.len() >= 20);
    for (name, payload) in cases {
        let response = h.ok(payload).await;
        let rejected = response["rejected"].as_u64().unwrap_or(0);
        let ignored = response["ignored"].is_string();
        assert!(rejected >= 1 || ignored, "{name}: {response}");
        assert_eq!(response["created"], 0, "{name}");
        assert_eq!(h.drs_calls(), 0, "{name}: no DRS call");
        if let Some(reason) = response["outcomes"][0]["reason"].as_str() {
            assert!(
                reason.len() < 400 && !reason.contains('\n'),
                "{name}: reason stays short and on one line"
            );
        }
    }
    // And it goes on serving.
    let response = h.ok(event("announcement-by-arn")).await;
    assert_eq!(statuses(&response), ["created"]);
}

#[tokio::test]
async fn rejections_are_reported_as_events_citing_the_trigger() {
    let h = Harness::start(World::sample(), &[]).await;
    h.ok(event("announcement-malformed")).await;
    let rejected = h.events_of("Extension Request Rejected");
    assert_eq!(rejected.len(), 1);
    let detail = &rejected[0]["Detail"];
    assert!(detail["reason"]
        .as_str()
        .unwrap()
        .contains("service must be `drs`"));
    assert_eq!(detail["stagingAccountId"], STAGING_B);
    assert_eq!(
        detail["trigger"]["id"],
        "c3d4e5f6-a7b8-4c9d-0e1f-2a3b4c5d6e7f"
    );
}
