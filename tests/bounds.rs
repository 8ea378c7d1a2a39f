//! The bounds the interface promises whatever DRS and EventBridge do: the deadline
//! with a slow bus, each event at most twice, refusals no retry changes, the right
//! label when a reply is lost, reads repeated, and the smaller contract points.

mod common;

use std::time::{Duration, Instant};

use common::*;
use drs_extender::CallPolicy;
use local_aws::DuplicateCreate;
use serde_json::{json, Value};

fn summary(h: &Harness) -> Value {
    let summaries = h.events_of("Reconciliation Completed");
    assert_eq!(summaries.len(), 1, "one summary");
    summaries[0]["Detail"].clone()
}

/// The reasons of an event path's response for the servers it did not try.
fn unfinished_reasons(response: &Value) -> Vec<String> {
    response["unfinished"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|u| u["reason"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn reasons(summary: &Value) -> Vec<String> {
    summary["unfinished"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["reason"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_slow_bus_neither_runs_the_invocation_past_its_deadline_nor_multiplies_events() {
    let mut world = World::new(TARGET_ACCOUNT);
    world.seed(STAGING_A, REGION, 40);
    // Each PutEvents takes effect at once and answers 6 s later: past the 5 s an
    // attempt is first given.
    world.put_events_latency = Duration::from_secs(6);
    let h = Harness::start_with(
        world,
        &[("STAGING_ACCOUNT_IDS", STAGING_A), ("DRS_MAX_RPS", "1000")],
        CallPolicy::default(),
    )
    .await;
    let deadline = Duration::from_secs(30);
    let started = Instant::now();
    let result = h
        .app
        .handle(lambda_event(event("scheduled-reconciliation"), deadline))
        .await;
    let took = started.elapsed();
    assert!(took < deadline, "answered after {took:?} of {deadline:?}");
    let created = h.aws.world().extended().len();
    let copies = copies_by_server(&h);
    for (server, kinds) in &copies {
        for (kind, n) in kinds {
            assert!(*n <= 2, "{server}: {n} copies of {kind}");
        }
    }
    // Whatever got out, nothing is lost silently: an extended server without its
    // event fails the invocation, so Lambda retries it.
    let without_event = h
        .aws
        .world()
        .extended()
        .iter()
        .filter(|e| !copies.contains_key(&e.staging_arn))
        .count();
    if without_event > 0 {
        assert!(
            result.is_err(),
            "{without_event} extended without an event, yet the invocation succeeded"
        );
    }
    assert!(created > 0, "the run made progress against a slow bus");
}

#[tokio::test]
async fn the_event_path_stops_at_its_deadline_and_refuses_what_it_does_not_read() {
    let mut world = World::new(TARGET_ACCOUNT);
    let servers = world.seed(STAGING_A, REGION, 130);
    world.latency = Duration::from_millis(300);
    let h = Harness::start_with(
        world,
        &[("STAGING_ACCOUNT_IDS", STAGING_A), ("DRS_MAX_RPS", "1000")],
        CallPolicy::default(),
    )
    .await;
    let drs_event = drs_event_naming(servers, STAGING_A);
    let deadline = Duration::from_secs(10);
    let started = Instant::now();
    let result = h.app.handle(lambda_event(drs_event, deadline)).await;
    assert!(
        started.elapsed() < deadline,
        "answered after {:?}",
        started.elapsed()
    );
    let error = result.expect_err("servers not reached in time fail the invocation, for its retry");
    let drs_extender::InvocationError::NotReached {
        servers: not_reached,
        ..
    } = error
    else {
        panic!("{error}");
    };
    assert!(not_reached > 0, "the deadline came before the 100th server");
    let copies = copies_by_server(&h);
    assert_eq!(
        copies.len() + not_reached,
        130,
        "every server named has an outcome or is named unfinished, none dropped"
    );
    let rejected = copies
        .values()
        .filter(|k| k.contains_key("Extension Request Rejected"))
        .count();
    assert_eq!(rejected, 30, "the 30 past the 100 read are refused by name");
    assert!(
        h.events_of("Extended Source Server Failed").is_empty(),
        "none failed for the time it waited"
    );
}

/// The source-server quota, met (its `quotaCode` said, none given, or one of
/// another form: the quota a create counts against), stops the creating in the
/// region.
#[tokio::test]
async fn a_quota_that_ran_out_stops_the_creating_in_that_region() {
    // DRS documents `quotaCode` only as "Quota code": any form but another
    // Service Quotas code is taken for the source-server quota.
    for quota_code in [Some("L-E28BE5E0"), None, Some("SourceServers")] {
        the_source_server_quota_stops_the_region(quota_code).await;
    }
}

async fn the_source_server_quota_stops_the_region(quota_code: Option<&str>) {
    let mut world = World::new(TARGET_ACCOUNT);
    world.seed(STAGING_A, REGION, 150);
    world.seed(STAGING_B, REGION, 150);
    world.extended_quota = Some(40);
    world.quota_exceeded_code = quota_code.map(str::to_owned);
    let h = Harness::start(
        world,
        &[
            ("STAGING_ACCOUNT_IDS", "111122223333,222233334444"),
            ("DRS_MAX_RPS", "1000"),
        ],
    )
    .await;
    let response = h.ok(event("scheduled-reconciliation")).await;
    let creates = h.aws.world().calls_of("CreateExtendedSourceServer").len();
    assert_eq!(response["created"], 40);
    assert!(
        creates <= 40 + 8 + 1,
        "{creates} creates: no asking again and again"
    );
    let failed = h.events_of("Extended Source Server Failed");
    assert!(
        !failed.is_empty() && failed.len() <= 9,
        "{} failed",
        failed.len()
    );
    assert!(failed.iter().all(
        |f| f["Detail"]["errorCode"] == "ServiceQuotaExceededException"
            && f["Detail"]["retryable"] == false
            && f["Detail"]["quotaCode"].as_str() == quota_code
    ));
    let summary = summary(&h);
    assert_eq!(summary["complete"], false);
    assert!(
        reasons(&summary)
            .iter()
            .all(|r| r == "SERVICE_QUOTA_EXCEEDED"),
        "{summary}"
    );
}

/// Another quota met (DRS names it in `quotaCode`) is not taken for the
/// region's: its reach is not documented, so it fails the server that met it,
/// and every other server is still tried.
#[tokio::test]
async fn another_quota_met_fails_only_the_server_that_met_it() {
    let mut world = World::new(TARGET_ACCOUNT);
    world.seed(STAGING_A, REGION, 30);
    world.extended_quota = Some(10);
    world.quota_exceeded_code = Some("L-0123ABCD".to_owned());
    let h = Harness::start(
        world,
        &[("STAGING_ACCOUNT_IDS", STAGING_A), ("DRS_MAX_RPS", "1000")],
    )
    .await;
    let response = h.invoke(event("scheduled-reconciliation")).await;
    let response = serde_json::to_value(response.expect("no retryable failure")).unwrap();
    assert_eq!(
        (&response["created"], &response["failed"]),
        (&json!(10), &json!(20))
    );
    let failed = h.events_of("Extended Source Server Failed");
    assert_eq!(failed.len(), 20);
    assert!(failed
        .iter()
        .all(|f| f["Detail"]["quotaCode"] == "L-0123ABCD" && f["Detail"]["retryable"] == false));
    assert!(
        reasons(&summary(&h)).is_empty(),
        "nothing left unfinished for the region's quota"
    );
}

#[tokio::test]
async fn a_staging_account_that_trusts_no_one_stops_only_itself() {
    let mut world = World::new(TARGET_ACCOUNT);
    let mut servers = world.seed(STAGING_A, REGION, 5);
    servers.extend(world.seed(STAGING_B, REGION, 5));
    world.distrust(STAGING_A);
    let h = Harness::start(
        world,
        &[("STAGING_ACCOUNT_IDS", "111122223333,222233334444")],
    )
    .await;
    let drs_event = drs_event_naming(servers, TARGET_ACCOUNT);
    let response = h.ok(drs_event).await;
    assert_eq!(
        response["created"], 5,
        "the other account is extended in full"
    );
    assert_eq!(response["failed"], 1, "the server that met the refusal");
    assert_eq!(unfinished_reasons(&response), ["ACCESS_DENIED"; 4]);
    let creates_from_a = h
        .aws
        .world()
        .calls_of("CreateExtendedSourceServer")
        .iter()
        .filter(|c| {
            c.body["sourceServerArn"]
                .as_str()
                .unwrap()
                .contains(STAGING_A)
        })
        .count();
    assert_eq!(
        creates_from_a, 1,
        "one refusal stops the asking for that account"
    );
    assert!(h
        .events_of("Extended Source Server Failed")
        .iter()
        .all(|f| f["Detail"]["errorCode"] == "AccessDeniedException"
            && f["Detail"]["retryable"] == false));
}

#[tokio::test]
async fn an_uninitialised_region_stops_and_the_invocation_does_not_fail_into_retries() {
    let mut world = World::new(TARGET_ACCOUNT);
    let servers = world.seed(STAGING_A, REGION, 3);
    world.uninitialize(TARGET_ACCOUNT, REGION);
    let h = Harness::start(world, &[("STAGING_ACCOUNT_IDS", STAGING_A)]).await;
    let drs_event = drs_event_naming(servers, STAGING_A);
    let response = h.ok(drs_event).await;
    assert_eq!(response["failed"], 1);
    assert_eq!(unfinished_reasons(&response), ["UNINITIALIZED_ACCOUNT"; 2]);
    assert_eq!(
        h.aws.world().calls_of("CreateExtendedSourceServer").len(),
        1,
        "the servers after the refusal are not tried"
    );
    assert!(h
        .events_of("Extended Source Server Failed")
        .iter()
        .all(
            |f| f["Detail"]["errorCode"] == "UninitializedAccountException"
                && f["Detail"]["retryable"] == false
        ));
}

#[tokio::test]
async fn a_create_whose_reply_was_lost_is_created_not_skipped() {
    let mut world = World::new(TARGET_ACCOUNT);
    world.seed(STAGING_A, REGION, 12);
    world.inject("CreateExtendedSourceServer", 3, Fault::LostReply);
    world.inject("CreateExtendedSourceServer", 3, Fault::CutShort);
    let h = Harness::start(
        world,
        &[("STAGING_ACCOUNT_IDS", STAGING_A), ("DRS_MAX_RPS", "1000")],
    )
    .await;
    let response = h.ok(event("scheduled-reconciliation")).await;
    assert_eq!(response["created"], 12, "{response}");
    assert_eq!(response["skipped"], 0);
    assert_eq!(h.aws.world().extended().len(), 12);
    assert_eq!(h.events_of("Extended Source Server Created").len(), 12);
}

#[tokio::test]
async fn a_redelivered_announcement_is_skipped_under_every_duplicate_answer() {
    for duplicate in [
        DuplicateCreate::Validation,
        DuplicateCreate::Conflict,
        DuplicateCreate::ReturnsExisting,
    ] {
        let mut world = World::new(TARGET_ACCOUNT);
        let server = world.seed(STAGING_A, REGION, 1).remove(0);
        world.duplicate_create = duplicate;
        let h = Harness::start(world, &[]).await;
        let first = h.ok(announcement(&server, STAGING_A)).await;
        assert_eq!(first["created"], 1, "{duplicate:?}");
        // Past the clock tolerance, as a redelivery by EventBridge would be.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let again = h.ok(announcement(&server, STAGING_A)).await;
        assert_eq!(again["skipped"], 1, "{duplicate:?}: {again}");
        assert_eq!(again["outcomes"][0]["reason"], "ALREADY_EXTENDED");
        assert_eq!(
            h.events_of("Extended Source Server Created").len(),
            1,
            "{duplicate:?}"
        );
    }
}

#[tokio::test]
async fn reads_cut_short_or_dropped_are_read_again() {
    let mut world = World::new(TARGET_ACCOUNT);
    world.seed(STAGING_A, REGION, 150);
    world.inject("ListExtensibleSourceServers", 2, Fault::CutShort);
    world.inject("ListStagingAccounts", 1, Fault::LostReply);
    world.inject("DescribeSourceServers", 1, Fault::CutShort);
    // ListStagingAccounts names accounts that already have an extension.
    let first = world.staging()[0].arn.clone();
    world.extend_directly(TARGET_ACCOUNT, &first);
    let h = Harness::start(world, &[("DRS_MAX_RPS", "1000")]).await;
    let response = h.ok(event("scheduled-reconciliation")).await;
    assert_eq!(response["created"], 149, "{}", response["outcomes"]);
    let summary = summary(&h);
    assert_eq!(summary["complete"], true, "{summary}");
    assert_eq!(summary["extended"], 150);
}

#[tokio::test]
async fn a_refused_fan_out_request_leaves_its_account_unfinished() {
    let mut world = World::new(TARGET_ACCOUNT);
    let accounts: Vec<String> = (0..12u64)
        .map(|a| format!("{:012}", 300_000_000_000 + a))
        .collect();
    for account in &accounts {
        world.seed(account, REGION, 40);
    }
    // The fan-out bus does not exist: every request is refused for good.
    let h = Harness::start(
        world,
        &[
            ("STAGING_ACCOUNT_IDS", &accounts.join(",")),
            ("DRS_MAX_RPS", "1"),
            ("FAN_OUT_EVENT_BUS", "no-such-bus"),
        ],
    )
    .await;
    let error = h
        .app
        .handle(lambda_event(
            event("scheduled-reconciliation"),
            Duration::from_secs(120),
        ))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("could not be delivered"),
        "{error}"
    );
    let summary = summary(&h);
    assert_eq!(summary["fannedOut"], 0, "only delivered requests count");
    assert_eq!(summary["complete"], false);
    assert_eq!(reasons(&summary).len(), 12);
    assert!(reasons(&summary).iter().all(|r| r == "FAN_OUT_UNDELIVERED"));
}

#[tokio::test]
async fn a_reconciliation_request_that_names_no_sender_is_rejected() {
    let h = Harness::start(World::sample(), &[]).await;
    let mut request = event("reconciliation-requested");
    request.as_object_mut().unwrap().remove("account");
    let response = h.ok(request).await;
    assert_eq!(response["rejected"], 1);
    assert_eq!(h.drs_calls(), 0);
}

#[tokio::test]
async fn a_refusal_of_a_later_page_other_than_its_token_is_a_failed_listing() {
    let mut world = World::new(TARGET_ACCOUNT);
    world.seed(STAGING_A, REGION, 350);
    // The survey lists the first page; the second page's call is refused.
    world.inject_after(
        "ListExtensibleSourceServers",
        1,
        1,
        Fault::error(403, "AccessDeniedException"),
    );
    let h = Harness::start(
        world,
        &[("STAGING_ACCOUNT_IDS", STAGING_A), ("DRS_MAX_RPS", "1000")],
    )
    .await;
    let _ = h.invoke(event("scheduled-reconciliation")).await;
    let summary = summary(&h);
    assert_eq!(reasons(&summary), ["LISTING_FAILED"], "{summary}");
}

#[tokio::test]
async fn a_schedule_that_finds_no_staging_account_says_so() {
    let h = Harness::start(World::sample(), &[]).await;
    let response = h.ok(event("scheduled-reconciliation")).await;
    let summary = summary(&h);
    assert_eq!(summary["stagingAccountIds"], json!([]));
    assert_eq!(summary["complete"], true, "it covered all it knew of");
    assert!(
        summary["nothingToCover"]
            .as_str()
            .unwrap()
            .contains("STAGING_ACCOUNT_IDS"),
        "{summary}"
    );
    assert_eq!(
        response["reconciliation"]["nothingToCover"],
        summary["nothingToCover"]
    );
}

#[tokio::test]
async fn a_request_whose_accounts_are_all_refused_is_not_a_schedule_that_found_none() {
    let h = Harness::start(World::sample(), &[]).await;
    let mut request = event("reconciliation-requested");
    request["account"] = json!(STRANGER);
    let response = h.ok(request).await;
    assert_eq!(response["rejected"], 2, "{response}");
    assert!(summary(&h).get("nothingToCover").is_none());
}
