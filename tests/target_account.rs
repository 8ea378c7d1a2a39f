//! The target account: assumed through STS or the function's own, and who may ask.

mod common;

use std::time::Duration;

use common::*;
use drs_extender::InvocationError;
use serde_json::json;

const ROLE: &str = "arn:aws:iam::555566667777:role/drs-extender-target";

#[tokio::test]
async fn drs_calls_are_signed_with_the_assumed_roles_keys() {
    let mut world = World::sample();
    world.require_external_id(ROLE, "org-secret");
    let h = Harness::start(
        world,
        &[
            ("TARGET_ROLE_ARN", ROLE),
            ("TARGET_ROLE_EXTERNAL_ID", "org-secret"),
        ],
    )
    .await;
    let response = h
        .ok(announcement(
            &arn(STAGING_B, "s-2222cccc3333dddd5"),
            STAGING_B,
        ))
        .await;
    assert_eq!(statuses(&response), ["created"]);
    let world = h.aws.world();
    assert_eq!(
        world.extended()[0].account,
        "555566667777",
        "created in the role's account"
    );
    assert_eq!(world.calls_of("AssumeRole").len(), 1);
    let drs: Vec<_> = world
        .calls()
        .iter()
        .filter(|c| c.operation.ends_with("SourceServers") || c.operation.starts_with("Create"))
        .collect();
    assert!(!drs.is_empty());
    assert!(
        drs.iter().all(|c| c.access_key.starts_with("ASIALOCAL")),
        "DRS calls use the assumed keys"
    );
    let puts = world.calls_of("PutEvents");
    assert!(
        puts.iter().all(|c| c.access_key == FUNCTION_KEY),
        "outcome events use the function's own credentials"
    );
}

#[tokio::test]
async fn credentials_are_assumed_once_and_reused() {
    let h = Harness::start(World::sample(), &[("TARGET_ROLE_ARN", ROLE)]).await;
    h.ok(event("announcement-by-arn")).await;
    h.ok(event("announcement-by-id")).await;
    assert_eq!(h.aws.world().calls_of("AssumeRole").len(), 1);
}

#[tokio::test]
async fn a_refused_assume_role_fails_every_server_without_a_retry() {
    let mut world = World::sample();
    world.require_external_id(ROLE, "the-right-one");
    let h = Harness::start(
        world,
        &[
            ("TARGET_ROLE_ARN", ROLE),
            ("TARGET_ROLE_EXTERNAL_ID", "the-wrong-one"),
        ],
    )
    .await;
    let response = h.invoke(event("announcement-by-arn")).await;
    // Without credentials nothing can be checked or created; the outcome says so.
    let failed = h.events_of("Extended Source Server Failed");
    assert_eq!(failed.len(), 1, "{response:?}");
    assert_eq!(failed[0]["Detail"]["errorCode"], "CredentialsError");
    assert_eq!(
        failed[0]["Detail"]["retryable"], false,
        "a refused AssumeRole will not pass by itself"
    );
    assert!(response.is_ok(), "so the invocation is not retried in vain");
    assert!(h.aws.world().extended().is_empty());
}

#[tokio::test]
async fn the_target_account_may_ask_for_any_staging_server() {
    let h = Harness::start(World::sample(), &[]).await;
    let response = h
        .ok(announcement(
            &arn(STAGING_A, "s-1111aaaa2222bbbb3"),
            TARGET_ACCOUNT,
        ))
        .await;
    assert_eq!(statuses(&response), ["created"]);
}

#[tokio::test]
async fn another_account_may_not_ask_for_a_staging_servers_extension() {
    let h = Harness::start(World::sample(), &[]).await;
    let response = h.ok(event("announcement-spoofed")).await;
    assert_eq!(statuses(&response), ["rejected"]);
    assert!(response["outcomes"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("999988887777 may not ask"));
    assert_eq!(h.drs_calls(), 0);
    let rejected = h.events_of("Extension Request Rejected");
    assert_eq!(rejected[0]["Detail"]["stagingAccountId"], STAGING_B);
}

#[tokio::test]
async fn the_allowlist_rejects_other_staging_accounts() {
    let h = Harness::start(World::sample(), &[("STAGING_ACCOUNT_IDS", STAGING_A)]).await;
    let response = h.ok(event("announcement-by-arn")).await;
    assert_eq!(statuses(&response), ["rejected"]);
    assert!(response["outcomes"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("STAGING_ACCOUNT_IDS"));
    assert_eq!(h.drs_calls(), 0);
    let allowed = h.ok(event("agent-registration")).await;
    assert_eq!(statuses(&allowed), ["created"]);
}

#[tokio::test]
async fn a_registration_fallback_for_another_account_is_rejected() {
    let h = Harness::start(World::sample(), &[]).await;
    let mut payload = event("agent-registration-without-server");
    payload["account"] = json!(STRANGER);
    let response = h.ok(payload).await;
    assert_eq!(statuses(&response), ["rejected"]);
    assert_eq!(h.drs_calls(), 0);
}

#[tokio::test]
async fn results_go_to_the_configured_bus_and_source() {
    let mut world = World::sample();
    world.create_bus("drs-central");
    let h = Harness::start(
        world,
        &[
            ("RESULT_EVENT_BUS", "drs-central"),
            ("RESULT_EVENT_SOURCE", "org.example.drs-extender"),
        ],
    )
    .await;
    h.ok(event("announcement-by-arn")).await;
    let created = h.events_of("Extended Source Server Created");
    assert_eq!(created[0]["EventBusName"], "drs-central");
    assert_eq!(created[0]["Source"], "org.example.drs-extender");
}

#[tokio::test]
async fn a_result_bus_that_does_not_exist_fails_the_invocation_without_resending() {
    let h = Harness::start(World::sample(), &[("RESULT_EVENT_BUS", "no-such-bus")]).await;
    let Err(InvocationError::OutcomesUndelivered { cause, .. }) =
        h.invoke(event("announcement-by-arn")).await
    else {
        panic!("the outcome was not delivered, so the invocation fails");
    };
    assert!(cause.starts_with("ResourceNotFoundException"), "{cause}");
    assert_eq!(
        h.aws.world().calls_of("PutEvents").len(),
        1,
        "an entry that cannot succeed is not sent again"
    );
    assert_eq!(h.aws.world().extended().len(), 1, "the server was extended");
}

#[tokio::test]
async fn with_a_role_the_functions_own_schedule_still_reconciles() {
    // The schedule fires in the function's own account (444455556666), not in the
    // target account the role is in.
    let h = Harness::start(
        World::sample(),
        &[
            ("TARGET_ROLE_ARN", ROLE),
            ("STAGING_ACCOUNT_IDS", "111122223333,222233334444"),
            ("DRS_MAX_RPS", "1000"),
        ],
    )
    .await;
    let response = h.ok(event("scheduled-reconciliation")).await;
    assert_eq!(response["created"], 8, "{response}");
    assert!(h
        .aws
        .world()
        .extended()
        .iter()
        .all(|e| e.account == "555566667777"));
}

/// With a role into the target account, two accounts may ask for any staging
/// server: the target account (the role's) and the function's own (its schedule
/// and fan-out); each is recognised for what it is, and a third is not.
#[tokio::test]
async fn with_a_role_the_target_and_the_functions_own_account_may_each_ask() {
    const OWN: &str = TARGET_ACCOUNT; // the account in the invoked function's ARN
    const ROLE_ACCOUNT: &str = "555566667777";
    let h = Harness::start(World::sample(), &[("TARGET_ROLE_ARN", ROLE)]).await;
    let from_target = h
        .ok(announcement(
            &arn(STAGING_A, "s-1111aaaa2222bbbb3"),
            ROLE_ACCOUNT,
        ))
        .await;
    assert_eq!(statuses(&from_target), ["created"], "{from_target}");
    let from_own = h
        .ok(announcement(&arn(STAGING_B, "s-2222cccc3333dddd5"), OWN))
        .await;
    assert_eq!(statuses(&from_own), ["created"], "{from_own}");
    let from_stranger = h
        .ok(announcement(
            &arn(STAGING_A, "s-1111aaaa2222bbbb4"),
            STRANGER,
        ))
        .await;
    assert_eq!(statuses(&from_stranger), ["rejected"]);
    assert!(from_stranger["outcomes"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("only that account, the target account or the function's own may"));
    // Both were extended into the role's account, never the function's own.
    let world = h.aws.world();
    assert_eq!(world.extended().len(), 2);
    assert!(world.extended().iter().all(|e| e.account == ROLE_ACCOUNT));
}

/// What cargo lambda's emulator sends: an invoked function ARN that names no
/// account, and a deadline in 1970. The function learns its own account from its
/// credentials (STS `GetCallerIdentity`, once) and runs without a deadline.
#[tokio::test]
async fn an_emulators_made_up_context_still_knows_the_target_account() {
    let h = Harness::start(World::sample(), &[]).await;
    for _ in 0..2 {
        let mut invocation =
            lambda_event(event("reconciliation-requested"), Duration::from_secs(60));
        invocation.context.invoked_function_arn = "function-arn".into();
        invocation.context.deadline = 600_000;
        let response = serde_json::to_value(h.app.handle(invocation).await.unwrap()).unwrap();
        assert_eq!(response["rejected"], 0, "{response}");
        assert_eq!(response["reconciliation"]["complete"], true, "{response}");
        assert_eq!(
            response["reconciliation"]["unfinished"],
            serde_json::json!([])
        );
    }
    let asked = h.aws.world().calls_of("GetCallerIdentity").len();
    assert_eq!(asked, 1, "asked once per process");
}

/// The same made-up context with a short real deadline and an STS that does not
/// answer: the question is cut with the DRS calls, and the invocation answers in time.
#[tokio::test]
async fn a_slow_sts_does_not_run_the_invocation_past_its_deadline() {
    let h = Harness::start(World::sample(), &[]).await;
    h.aws.world().inject(
        "GetCallerIdentity",
        100,
        local_aws::Fault::Delay(Duration::from_secs(30)),
    );
    let deadline = Duration::from_millis(1500);
    let mut invocation = lambda_event(event("reconciliation-requested"), deadline);
    invocation.context.invoked_function_arn = "function-arn".into();
    let started = std::time::Instant::now();
    let _ = h.app.handle(invocation).await;
    assert!(
        started.elapsed() < deadline,
        "answered after {:?}",
        started.elapsed()
    );
}
