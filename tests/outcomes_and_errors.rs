//! Every outcome and every error class, with faults injected into the local AWS.

mod common;

use std::time::{Duration, Instant};

use common::*;
use drs_extender::InvocationError;
use local_aws::DuplicateCreate;
use serde_json::Value;

const SERVER: &str = "s-2222cccc3333dddd5";

async fn announce(h: &Harness) -> Result<Value, InvocationError> {
    h.invoke(announcement(&arn(STAGING_B, SERVER), STAGING_B))
        .await
        .map(|r| serde_json::to_value(r).unwrap())
}

fn failed_event(h: &Harness) -> Value {
    let failed = h.events_of("Extended Source Server Failed");
    assert_eq!(failed.len(), 1, "exactly one outcome event");
    failed[0]["Detail"].clone()
}

#[tokio::test]
async fn an_already_extended_server_is_skipped_with_its_extended_arn() {
    let mut world = World::sample();
    let extended = world
        .extend_directly(TARGET_ACCOUNT, &arn(STAGING_B, SERVER))
        .unwrap();
    let h = Harness::start(world, &[]).await;
    let response = announce(&h).await.unwrap();
    assert_eq!(statuses(&response), ["skipped"]);
    assert_eq!(response["outcomes"][0]["reason"], "ALREADY_EXTENDED");
    assert_eq!(response["outcomes"][0]["extendedSourceServerArn"], extended);
    // Create first (DRS refuses it), then one look finds the extended server.
    let world = h.aws.world();
    assert_eq!(world.calls_of("CreateExtendedSourceServer").len(), 1);
    assert_eq!(world.calls_of("DescribeSourceServers").len(), 1);
    assert_eq!(world.extended().len(), 1, "nothing extended twice");
    drop(world);
    let skipped = h.events_of("Extended Source Server Skipped");
    assert_eq!(skipped[0]["Detail"]["reason"], "ALREADY_EXTENDED");
}

#[tokio::test]
async fn the_same_event_twice_creates_once() {
    // Whatever DRS answers a create for a server already extended (the API reference
    // does not say), the second delivery extends nothing again and names the same
    // extended server. An idempotent 201 is told from a first create by the
    // extended server's `drs-extender:request-id` tag, which names the first.
    for (answer, second) in [
        (DuplicateCreate::Validation, "skipped"),
        (DuplicateCreate::Conflict, "skipped"),
        (DuplicateCreate::ReturnsExisting, "skipped"),
    ] {
        let mut world = World::sample();
        world.duplicate_create = answer;
        let h = Harness::start(world, &[]).await;
        let first = announce(&h).await.unwrap();
        assert_eq!(statuses(&first), ["created"], "{answer:?}");
        let again = announce(&h).await.unwrap();
        assert_eq!(statuses(&again), [second], "{answer:?}: {again}");
        assert_eq!(
            again["outcomes"][0]["extendedSourceServerArn"],
            first["outcomes"][0]["extendedSourceServerArn"],
            "{answer:?}"
        );
        assert_eq!(h.aws.world().extended().len(), 1, "{answer:?}");
    }
}

#[tokio::test]
async fn a_create_that_loses_a_race_is_skipped_not_failed() {
    let mut world = World::sample();
    // Both invocations look before either creates; the second create is refused.
    world.latency = Duration::from_millis(40);
    let h = Harness::start(world, &[]).await;
    let (first, second) = tokio::join!(announce(&h), announce(&h));
    let mut all = statuses(&first.unwrap());
    all.extend(statuses(&second.unwrap()));
    all.sort();
    assert_eq!(all, ["created", "skipped"]);
    assert_eq!(
        h.aws.world().calls_of("CreateExtendedSourceServer").len(),
        2
    );
    assert_eq!(h.aws.world().extended().len(), 1);
}

#[tokio::test]
async fn throttling_is_retried_within_the_servers_wait() {
    let mut world = World::sample();
    world.inject("CreateExtendedSourceServer", 1, Fault::throttling(1));
    let h = Harness::start(world, &[]).await;
    let started = Instant::now();
    let response = announce(&h).await.unwrap();
    assert_eq!(statuses(&response), ["created"]);
    assert_eq!(
        h.aws.world().calls_of("CreateExtendedSourceServer").len(),
        2
    );
    // A random share of the server's second, never more.
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn throttling_that_persists_slows_the_work_and_leaves_it_unfinished_not_failed() {
    let mut world = World::sample();
    world.inject(
        "CreateExtendedSourceServer",
        usize::MAX,
        Fault::error(429, "ThrottlingException"),
    );
    let h = Harness::start(world, &[]).await;
    let started = Instant::now();
    let deadline = Duration::from_secs(8);
    let err = h
        .app
        .handle(lambda_event(event("announcement-by-arn"), deadline))
        .await
        .unwrap_err();
    assert!(started.elapsed() < deadline, "{:?}", started.elapsed());
    // Asked again and again while the deadline allowed; then left for the retry.
    assert!(
        matches!(err, InvocationError::NotReached { servers: 1, .. }),
        "{err}"
    );
    assert!(h.events_of("Extended Source Server Failed").is_empty());
    assert!(h.aws.world().calls_of("CreateExtendedSourceServer").len() > 3);
    assert!(h.aws.world().extended().is_empty());
}

#[tokio::test]
async fn server_errors_are_retryable() {
    let mut world = World::sample();
    world.inject(
        "CreateExtendedSourceServer",
        100,
        Fault::error(500, "InternalServerException"),
    );
    let h = Harness::start(world, &[]).await;
    assert!(matches!(
        announce(&h).await,
        Err(InvocationError::RetryableFailures { .. })
    ));
    assert_eq!(failed_event(&h)["errorCode"], "InternalServerException");
}

#[tokio::test]
async fn a_passing_server_error_is_ridden_out() {
    let mut world = World::sample();
    world.inject(
        "CreateExtendedSourceServer",
        2,
        Fault::error(503, "ServiceUnavailableException"),
    );
    let h = Harness::start(world, &[]).await;
    assert_eq!(statuses(&announce(&h).await.unwrap()), ["created"]);
}

/// Errors that no retry can fix: reported, and the invocation succeeds, so Lambda
/// does not retry them in vain.
#[tokio::test]
async fn refusals_fail_without_retry_and_keep_drs_code() {
    for (status, code) in [
        (403, "AccessDeniedException"),
        (400, "ValidationException"),
        (400, "UninitializedAccountException"),
        (402, "ServiceQuotaExceededException"),
        (404, "ResourceNotFoundException"),
        (409, "ConflictException"),
    ] {
        let mut world = World::sample();
        world.inject(
            "CreateExtendedSourceServer",
            100,
            Fault::error(status, code),
        );
        let h = Harness::start(world, &[]).await;
        let response = announce(&h).await.unwrap();
        assert_eq!(statuses(&response), ["failed"], "{code}");
        let outcome = &response["outcomes"][0];
        assert_eq!(outcome["errorCode"], code);
        assert_eq!(outcome["retryable"], false, "{code}");
        assert_eq!(
            h.aws.world().calls_of("CreateExtendedSourceServer").len(),
            1,
            "{code} is not retried"
        );
        assert_eq!(failed_event(&h)["errorCode"], code);
    }
}

#[tokio::test]
async fn refusals_from_the_services_own_rules() {
    let target_region = (TARGET_ACCOUNT, REGION);
    let mut world = World::sample();
    world.mark_default_ebs_key(&arn(STAGING_B, SERVER));
    let h = Harness::start(world, &[]).await;
    let response = announce(&h).await.unwrap();
    assert_eq!(response["outcomes"][0]["errorCode"], "ValidationException");
    assert!(response["outcomes"][0]["errorMessage"]
        .as_str()
        .unwrap()
        .contains("default EBS key"));
    assert!(
        response["outcomes"][0]["hint"]
            .as_str()
            .is_some_and(|h| h.contains("customer managed key")),
        "a known cause is named: {response}"
    );

    let mut world = World::sample();
    world.distrust(STAGING_B);
    let h = Harness::start(world, &[]).await;
    let refused = announce(&h).await.unwrap();
    assert!(
        refused["outcomes"][0]["hint"]
            .as_str()
            .is_some_and(|h| h.contains("DRSStagingAccountRole")),
        "{refused}"
    );
    assert_eq!(refused["outcomes"][0]["errorCode"], "AccessDeniedException");

    let mut world = World::sample();
    world.uninitialize(target_region.0, target_region.1);
    let h = Harness::start(world, &[]).await;
    assert_eq!(
        announce(&h).await.unwrap()["outcomes"][0]["errorCode"],
        "UninitializedAccountException"
    );

    let h = Harness::start(World::sample(), &[]).await;
    let unknown = announcement(&arn(STAGING_B, "s-0000000000000ffff"), STAGING_B);
    let response = h.ok(unknown).await;
    assert_eq!(
        response["outcomes"][0]["errorCode"],
        "ResourceNotFoundException"
    );
}

#[tokio::test]
async fn responses_slower_than_the_attempt_timeout_fail_retryably() {
    // Slower than the attempts and the late look after them together.
    let mut world = World::sample();
    world.inject(
        "CreateExtendedSourceServer",
        100,
        Fault::Delay(Duration::from_secs(6)),
    );
    let h = Harness::start(world, &[]).await;
    let started = Instant::now();
    assert!(matches!(
        announce(&h).await,
        Err(InvocationError::RetryableFailures { .. })
    ));
    assert_eq!(failed_event(&h)["errorCode"], "Timeout");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn connection_refused_fails_retryably_and_reports_no_event_as_delivered() {
    // A port that was just free: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let app = app_for(&format!("http://{closed}"), &[], fast_policy()).await;
    let err = app
        .handle(lambda_event(
            announcement(&arn(STAGING_B, SERVER), STAGING_B),
            Duration::from_secs(60),
        ))
        .await
        .unwrap_err();
    // The outcome (retryable ConnectionError) could not be published either.
    assert!(
        matches!(
            err,
            InvocationError::OutcomesUndelivered { undelivered: 1, .. }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn refused_event_entries_are_sent_again() {
    let mut world = World::sample();
    world.refuse_event_entries(1);
    let h = Harness::start(world, &[]).await;
    assert_eq!(statuses(&announce(&h).await.unwrap()), ["created"]);
    assert_eq!(h.aws.world().calls_of("PutEvents").len(), 2);
    assert_eq!(h.events_of("Extended Source Server Created").len(), 1);
}

#[tokio::test]
async fn events_that_cannot_be_delivered_fail_the_invocation() {
    let mut world = World::sample();
    world.refuse_event_entries(1000);
    let h = Harness::start(world, &[]).await;
    let err = announce(&h).await.unwrap_err();
    assert!(
        matches!(
            err,
            InvocationError::OutcomesUndelivered { undelivered: 1, .. }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("InternalFailure"));

    let mut world = World::sample();
    world.inject("PutEvents", 100, Fault::error(500, "InternalException"));
    let h = Harness::start(world, &[]).await;
    assert!(matches!(
        announce(&h).await,
        Err(InvocationError::OutcomesUndelivered { .. })
    ));
}

/// A `PutEvents` call refused for good (a 400) loses its own batch only: the
/// batches already under way are still sent, no create starts after it, and
/// only the lost entries count as undelivered. DRS answers in 50 ms, so the
/// refusal comes while most of the 200 servers are still to do.
#[tokio::test]
async fn a_putevents_call_refused_for_good_loses_only_its_batch_and_ends_the_creating() {
    let mut world = World::new(TARGET_ACCOUNT);
    world.seed(STAGING_A, REGION, 200);
    world.latency = Duration::from_millis(50);
    world.inject("PutEvents", 1, Fault::error(400, "ValidationException"));
    let h = Harness::start(world, &[("DRS_MAX_RPS", "1000")]).await;
    let Err(InvocationError::OutcomesUndelivered {
        undelivered, cause, ..
    }) = h.invoke(event("agent-registration-without-server")).await
    else {
        panic!("one batch was lost, so the invocation fails");
    };
    assert!(cause.starts_with("ValidationException"), "{cause}");
    let delivered = h.events_of("Extended Source Server Created").len();
    let extended = h.aws.world().extended().len();
    assert_eq!(undelivered + delivered, extended, "{undelivered} lost");
    assert!(undelivered <= 10, "no more than one batch");
    // The lost batch ended the creating; the summary still goes out and says so.
    let summaries = h.events_of("Reconciliation Completed");
    assert_eq!(summaries.len(), 1);
    let summary = &summaries[0]["Detail"];
    assert!(extended < 200, "the creating went on to the end");
    assert_eq!(
        summary["unfinished"][0]["reason"], "EVENTS_UNDELIVERED",
        "{summary}"
    );
    assert_eq!(summary["complete"], false);
}

#[tokio::test]
async fn outcome_events_go_in_batches_of_ten() {
    let mut world = World::new(TARGET_ACCOUNT);
    world.seed(STAGING_A, REGION, 23);
    let h = Harness::start(world, &[("DRS_MAX_RPS", "1000")]).await;
    let response = h.ok(event("agent-registration-without-server")).await;
    assert_eq!(response["created"], 23);
    let world = h.aws.world();
    let calls = world.calls_of("PutEvents");
    let (last, outcomes) = calls.split_last().unwrap();
    assert_eq!(
        last.body["Entries"][0]["DetailType"], "Reconciliation Completed",
        "the summary goes alone, after every outcome"
    );
    // Batches go out concurrently, and a part batch goes at once when the run
    // waits on its events (backpressure), so sizes vary; never more than ten.
    let puts: Vec<usize> = outcomes
        .iter()
        .map(|c| c.body["Entries"].as_array().unwrap().len())
        .collect();
    assert!(puts.iter().all(|n| *n <= 10), "{puts:?}");
    assert_eq!(puts.iter().sum::<usize>(), 23, "{puts:?}");
    assert!(
        puts.len() <= 4,
        "23 outcomes in {} calls: {puts:?}",
        puts.len()
    );
}

#[tokio::test]
async fn tags_past_the_limits_are_dropped_and_reported() {
    let mut world = World::sample();
    let many: Vec<(String, String)> = (0..55)
        .map(|i| (format!("k{i:02}"), "v".to_owned()))
        .collect();
    let mut tags: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let long_value = "v".repeat(257);
    tags.push(("aws:cloudformation:stack-name", "x"));
    tags.push(("long", &long_value));
    let staging = world.add_staging_server(STAGING_B, REGION, &tags);
    let h = Harness::start(world, &[("EXTENSION_TAGS", r#"{"owner":"dr-team"}"#)]).await;
    // The announcement carries the staging tags, as the user's tooling would.
    let mut payload = announcement(&staging, STAGING_B);
    let sent: serde_json::Map<String, Value> = tags
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect();
    payload["detail"]["tags"] = Value::Object(sent);
    let response = h.ok(payload).await;
    assert_eq!(statuses(&response), ["created"], "{response}");
    let dropped = response["outcomes"][0]["droppedTags"].as_array().unwrap();
    assert_eq!(
        dropped.len(),
        10,
        "8 over the 48 left for users, one reserved, one too long"
    );
    let world = h.aws.world();
    let applied = &world.extended()[0].tags;
    assert_eq!(
        applied.len(),
        49,
        "48 of the user's and the function's own; one left for the mark of a broken extension"
    );
    assert!(applied.contains_key("drs-extender:request-id"));
    assert_eq!(applied["owner"], "dr-team");
    assert!(!applied.contains_key("aws:cloudformation:stack-name"));
    let create = &world.calls_of("CreateExtendedSourceServer")[0].body;
    assert_eq!(create["tags"].as_object().unwrap().len(), 49);
}

#[tokio::test]
async fn copy_staging_tags_false_applies_only_configured_tags() {
    let h = Harness::start(
        World::sample(),
        &[
            ("COPY_STAGING_TAGS", "false"),
            ("EXTENSION_TAGS", r#"{"owner":"dr-team"}"#),
        ],
    )
    .await;
    h.ok(event("announcement-by-arn")).await;
    let world = h.aws.world();
    let keys: Vec<&String> = world.extended()[0].tags.keys().collect();
    assert_eq!(keys, ["drs-extender:request-id", "owner"]);
}
