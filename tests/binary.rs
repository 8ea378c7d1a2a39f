//! The real `drs-extender` binary, run as Lambda runs it: against a Runtime API
//! (the local AWS serves one) with the local AWS behind it.

mod common;

use std::time::Duration;

use common::*;
use local_aws::{EntriesReply, Fault, Invocation, Landing};
use serde_json::Value;

/// The request id a JSON log line carries, from the runtime's span.
fn request_id_of(line: &Value) -> Option<&str> {
    line["span"]["requestId"]
        .as_str()
        .or(line["spans"][0]["requestId"].as_str())
}

#[tokio::test]
async fn the_built_function_serves_events_and_logs_json_with_the_request_id() {
    let aws = LocalAws::start(World::sample()).await.unwrap();
    let child = spawn(
        &aws,
        &[
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
        ],
    );
    let timeout = Duration::from_secs(30);

    let created = aws.invoke(event("announcement-by-arn"), timeout).await;
    let Some(Invocation::Response(response)) = created else {
        panic!("{created:?}")
    };
    assert_eq!(response["created"], 1);
    assert_eq!(response["outcomes"][0]["status"], "created");

    let ignored = aws.invoke(event("unrelated-event"), timeout).await;
    assert!(
        matches!(ignored, Some(Invocation::Response(ref r)) if r["ignored"].is_string()),
        "{ignored:?}"
    );

    // A region the function does not serve is rejected and counted on its own,
    // for the alarm that says a staging region is left out.
    let mut elsewhere = event("announcement-by-id");
    elsewhere["detail"]["region"] = serde_json::json!("ap-south-1");
    let unserved = aws.invoke(elsewhere, timeout).await;
    assert!(
        matches!(unserved, Some(Invocation::Response(ref r)) if r["rejected"] == 1),
        "{unserved:?}"
    );

    // A retryable failure fails the invocation with a stable error type.
    aws.world().inject(
        "CreateExtendedSourceServer",
        100,
        Fault::error(500, "InternalServerException"),
    );
    let failed = aws
        .invoke(event("announcement-by-id"), Duration::from_secs(120))
        .await;
    let Some(Invocation::Error(error)) = failed else {
        panic!("{failed:?}")
    };
    assert_eq!(error["errorType"], "RetryableFailures");

    let logs = output_of(child).await;
    let lines: Vec<Value> = logs
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not one JSON object: {line}"))
        })
        .collect();
    let during: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "outcome")
        .collect();
    assert_eq!(
        during.len(),
        3,
        "one line per outcome: created, rejected, failed"
    );
    for line in during {
        let request_id = request_id_of(line);
        assert!(
            request_id.is_some_and(|id| id.starts_with("00000000-")),
            "{line}"
        );
    }
    assert!(!logs.contains("billing"), "tag values never reach the logs");

    // One Embedded Metric Format line per invocation; the first was a cold start.
    let metrics: Vec<&Value> = lines.iter().filter(|l| l.get("_aws").is_some()).collect();
    assert_eq!(metrics.len(), 4);
    assert_eq!(metrics[0]["Created"], 1);
    assert!(metrics[0]["ColdStart"].is_u64());
    assert!(metrics[1].get("ColdStart").is_none());
    assert_eq!(metrics[1]["RegionNotServed"], 0);
    assert_eq!(metrics[2]["Rejected"], 1);
    assert_eq!(metrics[2]["RegionNotServed"], 1);
    assert_eq!(metrics[3]["Failed"], 1);
    assert_eq!(
        metrics[3]["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "drs-extender"
    );
}

#[tokio::test]
async fn a_bad_variable_is_the_init_error() {
    // A malformed launch baseline stops the start like any other bad value,
    // naming the variable (and the field) rather than running without it.
    let cases = [
        ("DRS_MAX_RPS", "fast", "DRS_MAX_RPS:"),
        (
            "LAUNCH_BASELINE",
            r#"{"default": {"subnetId": "matchSourceIP"}}"#,
            "LAUNCH_BASELINE: default.subnetId",
        ),
    ];
    for (variable, value, says) in cases {
        let aws = LocalAws::start(World::sample()).await.unwrap();
        let child = spawn(&aws, &[(variable, value)]);
        let status = tokio::time::timeout(Duration::from_secs(20), async {
            let mut running = child;
            running.child.wait().await
        })
        .await
        .unwrap()
        .unwrap();
        assert!(!status.success());
        let result = aws
            .invoke(event("announcement-by-arn"), Duration::from_secs(5))
            .await;
        let Some(Invocation::InitError(error)) = result else {
            panic!("{result:?}")
        };
        assert_eq!(error["errorType"], "ConfigError");
        assert!(
            error["errorMessage"].as_str().unwrap().starts_with(says),
            "{error}"
        );
        assert_eq!(aws.world().drs_calls(), 0, "{variable}: no DRS call");
    }
}

#[tokio::test]
async fn hostile_strings_never_break_a_log_line() {
    let aws = LocalAws::start(World::sample()).await.unwrap();
    let child = spawn(
        &aws,
        &[
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("AWS_LAMBDA_LOG_LEVEL", "DEBUG"),
        ],
    );
    let hostile = "line\nbreak\r\u{1b}[31m\u{0}\u{2028}\"quote\\ {\"level\":\"ERROR\"}";
    let long = "x".repeat(100_000);
    let mut payloads = Vec::new();
    for value in [hostile.to_owned(), long] {
        let mut by_arn = event("announcement-by-arn");
        by_arn["detail"]["sourceServerArn"] = Value::from(value.clone());
        by_arn["detail"]["tags"] = serde_json::json!({ value.clone(): value.clone() });
        payloads.push(by_arn);
        let mut source = event("announcement-by-id");
        source["source"] = Value::from(value.clone());
        source["detail-type"] = Value::from(value.clone());
        source["id"] = Value::from(value.clone());
        payloads.push(source);
        let mut registration = event("agent-registration");
        registration["detail"]["responseElements"]["sourceServerID"] = Value::from(value.clone());
        registration["detail"]["awsRegion"] = Value::from(value);
        payloads.push(registration);
    }
    for payload in payloads {
        let answer = aws.invoke(payload, Duration::from_secs(30)).await;
        assert!(
            matches!(answer, Some(Invocation::Response(_))),
            "{answer:?}"
        );
    }
    // The function still serves.
    let created = aws
        .invoke(event("announcement-by-arn"), Duration::from_secs(30))
        .await;
    assert!(
        matches!(created, Some(Invocation::Response(ref r)) if r["created"] == 1),
        "{created:?}"
    );

    let logs = output_of(child).await;
    for line in logs.lines() {
        let parsed: Value = serde_json::from_str(line)
            .unwrap_or_else(|_| panic!("not one JSON object: {line:.200}"));
        assert!(parsed.is_object());
        assert!(
            line.len() < 4096,
            "no log line carries a whole hostile value: {} bytes",
            line.len()
        );
    }
    assert!(
        !logs.contains(r"\u001b[31m\u0000"),
        "control characters are not echoed"
    );
}

/// Every log line of an invocation carries its request id, those of the
/// reconciliation's own tasks (listings, extensions, the event stream) included:
/// the operations guide queries the logs by it.
#[tokio::test]
async fn every_line_of_a_reconciliation_carries_its_request_id() {
    let mut world = World::sample();
    world.inject("ListExtensibleSourceServers", 1, Fault::CutShort);
    let aws = LocalAws::start(world).await.unwrap();
    let child = spawn(
        &aws,
        &[
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
            ("STAGING_ACCOUNT_IDS", "111122223333,222233334444"),
        ],
    );
    let answer = aws
        .invoke(event("scheduled-reconciliation"), Duration::from_secs(60))
        .await;
    assert!(
        matches!(answer, Some(Invocation::Response(_))),
        "{answer:?}"
    );
    let logs = output_of(child).await;
    let lines: Vec<Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .filter(|line: &Value| line.get("_aws").is_none())
        .skip_while(|line| line["fields"]["message"] != "event received")
        .collect();
    let messages: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["fields"]["message"].as_str())
        .collect();
    assert!(
        messages.contains(&"outcome") && messages.contains(&"read failed, reading again"),
        "{messages:?}"
    );
    for line in &lines {
        let request_id = request_id_of(line);
        assert!(
            request_id.is_some_and(|id| id.starts_with("00000000-")),
            "{line}"
        );
    }
    let skipped = lines
        .iter()
        .filter(|l| l["fields"]["status"] == "skipped")
        .all(|l| l["fields"]["reason"].is_string());
    assert!(skipped, "a skipped line says why");
}

/// Outcome events go out while a run goes on: a process killed at any moment
/// (SIGKILL, as an out-of-memory kill or a host fault would end it) leaves at most
/// the servers whose calls were in flight, and one batch, extended without an event.
#[tokio::test]
async fn a_process_killed_mid_run_leaves_at_most_the_calls_in_flight_and_a_batch_unreported() {
    killed_mid_run(|_| {}, Kill::AtExtended(150)).await;
}

/// The same bound when the bus is slow, slower than an attempt is first given,
/// and lands events only when it answers: creates wait for their events to get
/// out (a slow bus slows the run), so the loss on a kill does not widen. The kill
/// comes above the 80 events that eight batches in flight carry.
#[tokio::test]
async fn a_slow_bus_slows_the_run_rather_than_widening_the_loss_on_a_kill() {
    let slow = |world: &mut World| {
        world.put_events_latency = Duration::from_secs(6);
        world.put_events_landing = Landing::OnAnswer;
    };
    killed_mid_run(slow, Kill::AtExtended(120)).await;
}

/// A bus that refuses every event: the first given up ends the creating, so a
/// kill at any later moment finds no more extended without an event.
#[tokio::test]
async fn a_refusing_bus_ends_the_creating_before_the_loss_passes_the_bound() {
    killed_mid_run(
        |world| world.bus_refuses = true,
        Kill::After(Duration::from_secs(6)),
    )
    .await;
}

/// A bus that answers with fewer entries than it was sent: what it did with the
/// rest is unknown, and the bound holds all the same.
#[tokio::test]
async fn a_bus_answering_short_does_not_widen_the_loss_on_a_kill() {
    let short = |world: &mut World| world.put_events_entries = EntriesReply::OneShort;
    killed_mid_run(short, Kill::After(Duration::from_secs(6))).await;
}

/// A launch baseline whose template writes EC2 answers slowly: each server
/// keeps its place for its event through the baseline's calls, so they slow the
/// run rather than widen the loss on a kill.
#[tokio::test]
async fn a_slow_launch_baseline_does_not_widen_the_loss_on_a_kill() {
    let slow = |world: &mut World| {
        world.inject(
            "CreateLaunchTemplateVersion",
            1_000,
            Fault::Delay(Duration::from_secs(1)),
        )
    };
    let baseline = r#"{"default": {"copyTags": true, "securityGroupIds": ["sg-0000000f"]}}"#;
    killed_mid_run_with(
        slow,
        Kill::AtExtended(150),
        &[("LAUNCH_BASELINE", baseline)],
    )
    .await;
}

enum Kill {
    /// Once this many servers are extended.
    AtExtended(usize),
    /// This long after the invocation starts, whatever it did.
    After(Duration),
}

async fn killed_mid_run(setup: impl FnOnce(&mut World), kill: Kill) {
    killed_mid_run_with(setup, kill, &[]).await;
}

async fn killed_mid_run_with(setup: impl FnOnce(&mut World), kill: Kill, vars: &[(&str, &str)]) {
    const CONCURRENCY: usize = 8;
    const BATCH: usize = 10;
    let mut world = World::new(TARGET_ACCOUNT);
    world.seed(STAGING_A, REGION, 300);
    world.latency = Duration::from_millis(5);
    setup(&mut world);
    let aws = LocalAws::start(world).await.unwrap();
    let concurrency = CONCURRENCY.to_string();
    let mut all = vec![
        ("STAGING_ACCOUNT_IDS", STAGING_A),
        ("DRS_MAX_RPS", "100"),
        ("RECONCILE_CONCURRENCY", concurrency.as_str()),
    ];
    all.extend_from_slice(vars);
    let mut running = spawn(&aws, &all);
    let extended = || aws.world().extended().len();
    let invocation = aws.invoke(event("scheduled-reconciliation"), Duration::from_secs(120));
    let kill_at = match kill {
        Kill::AtExtended(n) => n,
        Kill::After(_) => 0,
    };
    let killing = async {
        match kill {
            Kill::AtExtended(n) => {
                while extended() < n {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            Kill::After(wait) => tokio::time::sleep(wait).await,
        }
        running.child.start_kill().unwrap();
        running.child.wait().await.unwrap();
    };
    let mid_run = matches!(kill, Kill::AtExtended(_));
    tokio::select! {
        // A run that gave up its events may end first; one that was to be
        // killed at a count may not.
        ended = invocation => assert!(!mid_run, "the run ended before it was killed: {ended:?}"),
        () = killing => {}
    }
    // Requests already on their way still land, as they would on a real service.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let world = aws.world();
    let reported: std::collections::BTreeSet<&str> = world
        .events()
        .iter()
        .filter_map(|e| e["Detail"]["stagingSourceServerArn"].as_str())
        .collect();
    let unreported = world
        .extended()
        .iter()
        .filter(|e| !reported.contains(e.staging_arn.as_str()))
        .count();
    eprintln!(
        "killed with {} extended, {} reported, {unreported} unreported",
        world.extended().len(),
        reported.len()
    );
    assert!(!mid_run || world.extended().len() < 300, "killed mid-run");
    assert!(
        reported.len() + CONCURRENCY + BATCH >= kill_at,
        "events went out as the run went on"
    );
    assert!(
        unreported <= CONCURRENCY + BATCH,
        "{unreported} servers extended without an event"
    );
}

/// Tag values are never logged, at any level: not at DEBUG or TRACE either, where
/// the AWS SDK's own request logging would show request bodies.
#[tokio::test]
async fn tag_values_never_reach_the_logs_at_debug_or_trace() {
    const COPIED: &str = "copied-value-7f3a";
    const ANNOUNCED: &str = "announced-value-91c2";
    const CONFIGURED: &str = "configured-value-5d04";
    for level in ["DEBUG", "TRACE"] {
        let mut world = World::new(TARGET_ACCOUNT);
        for _ in 0..3 {
            world.add_staging_server(STAGING_A, REGION, &[("owner", COPIED)]);
        }
        let announced = world.add_staging_server(STAGING_B, REGION, &[("owner", COPIED)]);
        let aws = LocalAws::start(world).await.unwrap();
        let child = spawn(
            &aws,
            &[
                ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
                ("AWS_LAMBDA_LOG_LEVEL", level),
                ("RUST_LOG", &level.to_ascii_lowercase()),
                ("STAGING_ACCOUNT_IDS", "111122223333,222233334444"),
                ("EXTENSION_TAGS", &format!(r#"{{"team":"{CONFIGURED}"}}"#)),
            ],
        );
        let mut announcement = event("announcement-by-arn");
        announcement["detail"] = serde_json::json!({
            "sourceServerArn": announced,
            "tags": {"cost-centre": ANNOUNCED},
        });
        for payload in [announcement, event("scheduled-reconciliation")] {
            let answer = aws.invoke(payload, Duration::from_secs(30)).await;
            assert!(
                matches!(answer, Some(Invocation::Response(_))),
                "{answer:?}"
            );
        }
        assert_eq!(aws.world().extended().len(), 4, "{level}");
        let logs = output_of(child).await;
        assert!(logs.lines().count() > 20, "{level}: the level is on");
        for value in [COPIED, ANNOUNCED, CONFIGURED] {
            assert!(!logs.contains(value), "{level}: a tag value was logged");
        }
    }
}

/// Readiness through the real binary: the reconciliation's response, its
/// not-ready events, and the EMF lines per region and per reason.
#[tokio::test]
async fn the_built_function_reports_readiness_and_the_quota_as_metrics_and_events() {
    let mut world = World::new(local_aws::TARGET_ACCOUNT);
    // Three extended and five of its own, against a quota of ten: 80 %, not past
    // the default line; QUOTA_WARN_PERCENT=75 makes it a warning.
    world.add_own_servers(local_aws::TARGET_ACCOUNT, REGION, 5);
    world.source_server_quota = local_aws::SourceServerQuota::Applied(10.0);
    let servers = world.seed(STAGING_A, REGION, 3);
    for (staging, state) in servers.iter().zip(["CONTINUOUS", "STALLED", "RESCAN"]) {
        world.extend_directly(local_aws::TARGET_ACCOUNT, staging);
        world.set_extension_replication(staging, state, Some("PT1S"));
    }
    let aws = LocalAws::start(world).await.unwrap();
    let child = spawn(&aws, &[("QUOTA_WARN_PERCENT", "75")]);
    let mut request = event("reconciliation-requested");
    request["detail"] = serde_json::json!({"stagingAccountIds": [STAGING_A], "regions": [REGION]});
    let answered = aws.invoke(request, Duration::from_secs(60)).await;
    let Some(Invocation::Response(response)) = answered else {
        panic!("{answered:?}")
    };
    let summary = &response["reconciliation"];
    assert_eq!(
        summary["quota"],
        serde_json::json!([{"region": REGION, "sourceServers": 8, "counted": true, "quota": 10,
                            "quotaSource": "SERVICE_QUOTAS", "usedPercent": 80.0, "warning": true}])
    );
    assert_eq!(
        (&summary["ready"], &summary["syncing"], &summary["notReady"]),
        (
            &serde_json::json!(1),
            &serde_json::json!(1),
            &serde_json::json!(1)
        ),
        "{summary}"
    );
    let events: Vec<Value> = aws
        .world()
        .events()
        .iter()
        .filter(|e| e["DetailType"] == "Extended Source Server Not Ready")
        .cloned()
        .collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["Detail"]["reason"], "STALLED");

    let logs = output_of(child).await;
    let metrics: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l.get("_aws").is_some())
        .collect();
    assert!(metrics
        .iter()
        .any(|m| m["NotReady"] == 1 && m.get("Region").is_none()));
    assert!(metrics
        .iter()
        .any(|m| m["Region"] == REGION && m["Ready"] == 1 && m["Syncing"] == 1));
    assert!(metrics
        .iter()
        .any(|m| m["Reason"] == "STALLED" && m["NotReady"] == 1));
    assert!(metrics
        .iter()
        .any(|m| m["QuotaUsedPercent"] == 80.0 && m.get("Region").is_none()));
    assert!(metrics
        .iter()
        .any(|m| m["Region"] == REGION && m["SourceServers"] == 8 && m["SourceServerQuota"] == 10));
    assert!(
        logs.lines().any(|l| l.contains("quota is nearly spent")),
        "a warning is logged"
    );
}
