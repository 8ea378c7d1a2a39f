//! The quota watch: every source server the target account holds in a region
//! (its own, and extended ones from covered and uncovered staging accounts)
//! against the quota Service Quotas applies, under every answer Service Quotas
//! may give, every meaning of DRS's page tokens, and a slow Service Quotas.

mod common;

use std::time::{Duration, Instant};

use common::*;
use local_aws::{PageTokens, SourceServerQuota};
use serde_json::{json, Value};

fn reconcile(account: &str) -> Value {
    let mut request = event("reconciliation-requested");
    request["detail"] = json!({"stagingAccountIds": [account], "regions": [REGION]});
    request
}

/// Four servers of the target's own, two extended from an account this run does
/// not cover, three of the covered account's to extend: nine once it has run.
fn nine_servers(quota: SourceServerQuota) -> World {
    let mut world = World::new(TARGET_ACCOUNT);
    world.add_own_servers(TARGET_ACCOUNT, REGION, 4);
    for arn in world.seed(STAGING_B, REGION, 2) {
        world.extend_directly(TARGET_ACCOUNT, &arn);
    }
    world.seed(STAGING_A, REGION, 3);
    world.source_server_quota = quota;
    world
}

fn quota_of(response: &Value) -> &Value {
    let quota = &response["reconciliation"]["quota"];
    assert_eq!(quota.as_array().map(Vec::len), Some(1), "{response}");
    &quota[0]
}

#[tokio::test]
async fn every_source_server_counts_and_a_share_past_the_percent_warns() {
    let h = Harness::start(nine_servers(SourceServerQuota::Applied(10.0)), &[]).await;
    let response = h.ok(reconcile(STAGING_A)).await;
    assert_eq!(response["created"], 3);
    let quota = quota_of(&response);
    assert_eq!(
        quota,
        &json!({"region": REGION, "sourceServers": 9, "counted": true, "quota": 10,
                "quotaSource": "SERVICE_QUOTAS", "usedPercent": 90.0, "warning": true})
    );
    let summary = &h.events_of("Reconciliation Completed")[0]["Detail"];
    assert_eq!(
        &summary["quota"][0], quota,
        "the event says what the answer says"
    );
    let asked = h.aws.world().calls_of("GetServiceQuota")[0].body.clone();
    assert_eq!(
        asked,
        json!({"ServiceCode": "drs", "QuotaCode": "L-E28BE5E0"})
    );

    // The same servers under a quota with room, and under a line set higher.
    let roomy = Harness::start(nine_servers(SourceServerQuota::Applied(4_000.0)), &[]).await;
    let quota = quota_of(&roomy.ok(reconcile(STAGING_A)).await).clone();
    assert_eq!(
        (quota["usedPercent"].as_f64(), &quota["warning"]),
        (Some(0.2), &json!(false))
    );
    let higher = Harness::start(
        nine_servers(SourceServerQuota::Applied(10.0)),
        &[("QUOTA_WARN_PERCENT", "90")],
    )
    .await;
    assert_eq!(
        quota_of(&higher.ok(reconcile(STAGING_A)).await)["warning"],
        false,
        "90 % is not past 90"
    );
}

/// A quota with no applied value (not found, or found without one) is judged by
/// Service Quotas' AWS default for it (a value unlike the documented one, so the
/// two cannot be told apart by luck), and, when that cannot be read either, by
/// the documented one. An applied value that cannot be read for any other reason
/// (refused, garbled, lost) may have been raised: the AWS default would say
/// nothing of it, so the documented one is used, and said so.
#[tokio::test]
async fn an_unreadable_quota_is_judged_by_the_aws_default_then_the_documented_one() {
    let cases: [(SourceServerQuota, Option<Fault>, &str); 7] = [
        (SourceServerQuota::Absent, None, "NoSuchResourceException"),
        (SourceServerQuota::NoValue, None, "NO_QUOTA_VALUE"),
        (SourceServerQuota::Refused, None, "AccessDeniedException"),
        (
            SourceServerQuota::Applied(0.5),
            None,
            "QUOTA_VALUE_UNUSABLE",
        ),
        (
            SourceServerQuota::default(),
            Some(Fault::error(400, "TooManyRequestsException")),
            "TooManyRequestsException",
        ),
        (
            SourceServerQuota::Applied(10.0),
            Some(Fault::CutShort),
            "InvalidResponse",
        ),
        (SourceServerQuota::Applied(10.0), Some(Fault::LostReply), ""),
    ];
    for aws_default in [Some(5_000.0), None] {
        for (answer, fault, error) in &cases {
            let mut world = nine_servers(*answer);
            world.source_server_quota_default = aws_default;
            if let Some(fault) = fault {
                world.inject("GetServiceQuota", 10, fault.clone());
            }
            let h = Harness::start(world, &[]).await;
            let response = h.ok(reconcile(STAGING_A)).await;
            let quota = quota_of(&response);
            let no_applied_value = matches!(
                answer,
                SourceServerQuota::Absent | SourceServerQuota::NoValue
            ) && fault.is_none();
            let (value, source) = match aws_default {
                Some(_) if no_applied_value => (5_000, "AWS_DEFAULT"),
                _ => (4_000, "DOCUMENTED_DEFAULT"),
            };
            assert_eq!(quota["quota"], value, "{error}: {quota}");
            assert_eq!(quota["quotaSource"], source, "{error}");
            let said = quota["quotaError"].as_str().unwrap_or_default();
            assert!(
                !said.is_empty() && said.starts_with(error),
                "{error}: {quota}"
            );
            assert_eq!(
                (&quota["sourceServers"], &quota["warning"]),
                (&json!(9), &json!(false))
            );
            assert_eq!(
                response["reconciliation"]["complete"], true,
                "{error}: an unread quota is reported, not a failed run"
            );
            let asked: Vec<Value> = h
                .aws
                .world()
                .calls_of("GetAWSDefaultServiceQuota")
                .iter()
                .map(|call| call.body.clone())
                .collect();
            let expected = if no_applied_value {
                vec![json!({"ServiceCode": "drs", "QuotaCode": "L-E28BE5E0"})]
            } else {
                Vec::new()
            };
            assert_eq!(
                asked, expected,
                "{error}: asked once where no value is applied"
            );
        }
    }
    // An applied value read is judged by alone: the default is not asked.
    let h = Harness::start(nine_servers(SourceServerQuota::Applied(10.0)), &[]).await;
    h.ok(reconcile(STAGING_A)).await;
    assert!(h
        .aws
        .world()
        .calls_of("GetAWSDefaultServiceQuota")
        .is_empty());
}

#[tokio::test]
async fn the_count_is_right_whatever_page_tokens_mean_and_a_short_one_says_so() {
    for tokens in [PageTokens::Cursor, PageTokens::Offset] {
        let mut world = nine_servers(SourceServerQuota::default());
        world.add_own_servers(TARGET_ACCOUNT, REGION, 450);
        world.page_tokens = tokens;
        let h = Harness::start(world, &[]).await;
        let quota = quota_of(&h.ok(reconcile(STAGING_A)).await).clone();
        assert_eq!(
            (&quota["sourceServers"], &quota["counted"]),
            (&json!(459), &json!(true)),
            "{tokens:?}"
        );
    }
    for (tokens, why) in [
        (PageTokens::Repeating, "PAGE_TOKEN_REPEATED"),
        (PageTokens::Endless, "TOO_MANY_PAGES"),
    ] {
        let mut world = nine_servers(SourceServerQuota::default());
        world.add_own_servers(TARGET_ACCOUNT, REGION, 450);
        world.page_tokens = tokens;
        // An endless listing is followed for 200 pages, by coverage and count.
        let h = Harness::start(world, &[("DRS_MAX_RPS", "1000")]).await;
        let quota = quota_of(&h.ok(reconcile(STAGING_A)).await).clone();
        assert_eq!(quota["counted"], false, "{tokens:?}: {quota}");
        assert_eq!(quota["countError"], why);
        assert_eq!(
            quota["sourceServers"], 200,
            "{tokens:?}: one page, counted once"
        );
    }

    // A count DRS stops answering part-way: as many as it saw, and why.
    let mut world = nine_servers(SourceServerQuota::default());
    world.add_own_servers(TARGET_ACCOUNT, REGION, 450);
    // The coverage read is one page; the count's first page is answered.
    world.inject_after(
        "DescribeSourceServers",
        2,
        1,
        Fault::error(403, "AccessDeniedException"),
    );
    let h = Harness::start(world, &[]).await;
    let quota = quota_of(&h.ok(reconcile(STAGING_A)).await).clone();
    assert_eq!(
        (
            &quota["sourceServers"],
            &quota["counted"],
            &quota["countError"]
        ),
        (&json!(200), &json!(false), &json!("AccessDeniedException"))
    );
}

#[tokio::test]
async fn a_service_quotas_that_never_answers_cannot_hold_the_run_past_its_deadline() {
    let mut world = nine_servers(SourceServerQuota::default());
    world.inject(
        "GetServiceQuota",
        10,
        Fault::Delay(Duration::from_secs(120)),
    );
    // The SDK's own timeouts are longer than the invocation: only the deadline
    // can cut the call.
    let patient = drs_extender::CallPolicy {
        attempt_timeout: Duration::from_secs(300),
        operation_timeout: Duration::from_secs(300),
        ..fast_policy()
    };
    let h = Harness::start_with(world, &[], patient).await;
    let started = Instant::now();
    let result = h
        .app
        .handle(lambda_event(reconcile(STAGING_A), Duration::from_secs(12)))
        .await;
    let response = serde_json::to_value(result.unwrap()).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
    let quota = quota_of(&response);
    assert_eq!(quota["quotaError"], "DeadlineReached", "{quota}");
    assert_eq!(
        quota["sourceServers"], 9,
        "the count was finished all the same"
    );
    assert_eq!(
        h.events_of("Reconciliation Completed").len(),
        1,
        "the summary still went out"
    );
}
