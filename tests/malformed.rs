//! Malformed and hostile events: each is rejected (a `rejected` outcome and its
//! event) or ignored (no outcome), as stated case by case; no DRS call is made,
//! and the function goes on serving. Oversized requests are answered at once.

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
        ("deeply nested detail", with(&ann, "/detail/tags", (0..64).fold(json!("x"), |acc, _| json!({"a": acc})))),
        ("announcement with 1,001 tags", with(&ann, "/detail/tags", Value::Object((0..1001).map(|i| (format!("k{i}"), json!("v"))).collect()))),
        ("reconciliation naming 1,001 accounts", with(&event("reconciliation-requested"), "/detail/stagingAccountIds", json!((0..1001).map(|i| format!("{:012}", i)).collect::<Vec<_>>()))),
        ("reconciliation naming 101 regions", with(&event("reconciliation-requested"), "/detail/regions", json!((0..101).map(|i| format!("us-east-{i}")).collect::<Vec<_>>()))),
    ]
}

/// Events that ask for nothing this function does: no outcome at all.
fn ignored() -> Vec<(&'static str, Value)> {
    let ann = event("announcement-by-arn");
    let mut spoofed = ann.clone();
    spoofed["source"] = json!("aws.drs.fake");
    let mut other_type = ann.clone();
    other_type["detail-type"] = json!("Staging Source Server Removed");
    let mut failed_registration = event("agent-registration");
    failed_registration["detail"]["errorCode"] = json!("AccessDenied");
    vec![
        ("source spoofing aws", spoofed),
        ("another detail-type", other_type),
        ("a failed registration", failed_registration),
        ("an unrelated event", event("unrelated-event")),
    ]
}

#[tokio::test]
async fn every_malformed_event_is_refused_without_a_drs_call() {
    let h = Harness::start(World::sample(), &[]).await;
    let cases = variants();
    assert!(cases.len() >= 20);
    for (name, payload) in cases {
        let response = h.ok(payload).await;
        assert_eq!(response["rejected"], 1, "{name}: rejected: {response}");
        assert!(response["ignored"].is_null(), "{name}: not ignored");
        assert_eq!(response["created"], 0, "{name}");
        assert_eq!(h.drs_calls(), 0, "{name}: no DRS call");
        if let Some(reason) = response["outcomes"][0]["reason"].as_str() {
            assert!(
                reason.len() < 400 && !reason.contains('\n'),
                "{name}: reason stays short and on one line"
            );
        }
    }
    assert_eq!(
        h.events_of("Extension Request Rejected").len(),
        variants().len(),
        "one rejection event each"
    );
    for (name, payload) in ignored() {
        let response = h.ok(payload).await;
        assert!(
            response["ignored"].is_string(),
            "{name}: ignored: {response}"
        );
        assert_eq!(response["outcomes"], json!([]), "{name}: no outcome");
        assert_eq!(h.drs_calls(), 0, "{name}: no DRS call");
    }
    assert_eq!(
        h.aws.world().calls_of("PutEvents").len(),
        variants().len(),
        "ignored events send nothing"
    );
    // And it goes on serving.
    let response = h.ok(event("announcement-by-arn")).await;
    assert_eq!(statuses(&response), ["created"]);
}

/// A `Reconciliation Requested` naming 5,000 accounts and 5,000 regions fits in one
/// 256 KB event. It is refused before any of it is parsed, with no DRS call and
/// no client built for a made-up region.
#[tokio::test]
async fn a_request_naming_5000_accounts_and_5000_regions_is_refused_at_once() {
    let h = Harness::start(World::sample(), &[]).await;
    let mut request = event("reconciliation-requested");
    request["detail"] = json!({
        "stagingAccountIds": (0..5000).map(|i| format!("{:012}", 100_000_000_000u64 + i)).collect::<Vec<_>>(),
        "regions": (0..5000).map(|i| format!("xx-made-{i}")).collect::<Vec<_>>(),
    });
    assert!(request.to_string().len() < 256 * 1024);
    let started = std::time::Instant::now();
    // A liveness bound, not a benchmark: the figure is in docs/performance.md.
    let response = tokio::time::timeout(std::time::Duration::from_secs(5), h.ok(request))
        .await
        .expect("answered");
    eprintln!("5,000 x 5,000 answered in {:?}", started.elapsed());
    assert_eq!(response["rejected"], 1);
    let reason = response["outcomes"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("at most 1000"), "{reason}");
    assert_eq!(h.drs_calls(), 0);
    let response = h.ok(event("announcement-by-arn")).await;
    assert_eq!(statuses(&response), ["created"], "and it goes on serving");
}

/// Regions outside `RECONCILE_REGIONS` are refused in every kind of event, by name.
#[tokio::test]
async fn servers_registrations_and_requests_in_unserved_regions_are_rejected() {
    let h = Harness::start(
        World::sample(),
        &[("RECONCILE_REGIONS", "us-east-1,eu-west-1")],
    )
    .await;
    let mut announcement = event("announcement-by-id");
    announcement["detail"]["region"] = json!("ap-south-1");
    let mut registration = event("agent-registration-without-server");
    registration["detail"]["awsRegion"] = json!("sa-east-1");
    let mut drs = event("drs-source-server-event");
    drs["resources"] =
        json!(["arn:aws:drs:us-west-2:111122223333:source-server/s-1111aaaa2222bbbb3"]);
    let mut request = event("reconciliation-requested");
    request["detail"] = json!({"regions": ["eu-west-1", "xx-made-1"]});
    for (name, payload, region) in [
        ("announcement", announcement, "ap-south-1"),
        ("registration", registration, "sa-east-1"),
        ("drs event", drs, "us-west-2"),
        ("request", request, "xx-made-1"),
    ] {
        let response = h.ok(payload).await;
        assert_eq!(statuses(&response), ["rejected"], "{name}: {response}");
        let reason = response["outcomes"][0]["reason"].as_str().unwrap();
        assert!(
            reason.contains(&format!("region {region} is not served"))
                && reason.contains("us-east-1,eu-west-1"),
            "{name}: {reason}"
        );
    }
    assert_eq!(h.drs_calls(), 0);
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
