//! `local-aws serve`: the local AWS on a port, for `cargo lambda watch` and tries.
//! `local-aws demo`: the built function run as Lambda runs it, against the local
//! AWS, with the sample events; prints what it answered and what it emitted.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use local_aws::{function_env, Invocation, LocalAws, World};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const USAGE: &str = "\
usage: local-aws serve [--port N]
       local-aws demo --function PATH [--events DIR] [--logs]

serve  the local AWS (DRS, EventBridge, STS, Lambda Runtime API) on 127.0.0.1:N
       (default 4566), seeded with the staging servers the sample events name; prints
       every variable a local run of the function needs, and serves what it did at
       GET /_local/state (no signature needed). Stops on Ctrl-C.
demo   runs the built function as Lambda runs it against a fresh local AWS, sends it
       the sample events from DIR (default events/) and prints each answer, the
       events it emitted and the extended servers. --logs shows its log lines whole;
       by default each step's metrics are folded into one short line.";

/// The staging server whose extension the demo breaks before its last step, and
/// what DRS then says about it.
const BROKEN: (&str, &str) = (
    "arn:aws:drs:us-east-1:222233334444:source-server/s-2222cccc3333dddd5",
    "Staging source server was not found. It may have been deleted.",
);

/// The demo's story, in order: each sample event and what it shows.
const DEMO: &[(&str, &str)] = &[
    (
        "announcement-by-arn",
        "the user's tooling announces a staging server",
    ),
    (
        "agent-registration",
        "the agent's CloudTrail registration names a new server",
    ),
    (
        "drs-source-server-event",
        "one of DRS's own events names a server",
    ),
    (
        "agent-registration-without-server",
        "a registration without a server id: its account is reconciled",
    ),
    (
        "announcement-by-arn",
        "the same announcement again: EventBridge delivers at least once",
    ),
    (
        "announcement-spoofed",
        "another account asks for a staging account's server",
    ),
    ("announcement-malformed", "a look-alike ARN"),
    ("unrelated-event", "an event that is not ours"),
    (
        "reconciliation-requested",
        "a dry-run reconciliation of both staging accounts",
    ),
    (
        "staging-reconciliation-request",
        "staging account 222233334444 asks for its own reconciliation, after one of its servers was deleted: coverage finds the broken extension",
    ),
];

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| local_aws::flag(&args, name);
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return;
    }
    let result = match args.first().map(String::as_str) {
        Some("serve") => serve(flag("--port").and_then(|p| p.parse().ok()).unwrap_or(4566)).await,
        Some("demo") => match flag("--function") {
            Some(function) => {
                demo(
                    PathBuf::from(function),
                    PathBuf::from(flag("--events").unwrap_or("events".into())),
                    args.iter().any(|a| a == "--logs"),
                )
                .await
            }
            None => Err(USAGE.to_owned()),
        },
        _ => Err(USAGE.to_owned()),
    };
    if let Err(message) = result {
        eprintln!("{message}");
        std::process::exit(2);
    }
}

async fn serve(port: u16) -> Result<(), String> {
    let aws = LocalAws::start_on(World::sample(), port)
        .await
        .map_err(|e| format!("cannot listen on {port}: {e}"))?;
    println!(
        "local AWS (DRS, EventBridge, STS, Lambda Runtime API) on {}",
        aws.endpoint()
    );
    println!(
        "staging servers: 111122223333 and 222233334444 in us-east-1; target account 444455556666"
    );
    println!("point the function at it with:");
    for (key, value) in function_env(&aws, "us-east-1") {
        if !key.starts_with("AWS_LAMBDA_") {
            println!("  export {key}={value}");
        }
    }
    // A fresh local DRS has no extended server, so ListStagingAccounts names no
    // account yet: a schedule would cover nothing without the list. (Exported, as
    // cargo lambda's --env-var splits a value at its commas.)
    println!("  export STAGING_ACCOUNT_IDS=111122223333,222233334444");
    println!("see what it did: curl {}/_local/state", aws.endpoint());
    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
    Ok(())
}

async fn demo(function: PathBuf, events: PathBuf, whole_logs: bool) -> Result<(), String> {
    let aws = LocalAws::start(World::sample())
        .await
        .map_err(|e| e.to_string())?;
    let mut child = Command::new(&function)
        .envs(function_env(&aws, "us-east-1"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", function.display()))?;
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match (whole_logs, folded_metrics(&line)) {
                    (false, Some(short)) => println!("    | metrics: {short}"),
                    _ => println!("    | {line}"),
                }
            }
        });
    }
    println!("local AWS on {}: target account 444455556666, staging accounts 111122223333 and 222233334444 (4 servers each, us-east-1)\n", aws.endpoint());
    for (name, story) in DEMO {
        let path = events.join(format!("{name}.json"));
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let payload: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if *name == "staging-reconciliation-request" {
            aws.world().break_extension(BROKEN.0, BROKEN.1);
        }
        println!("▶ {} — {story}", path.display());
        match aws.invoke(payload, Duration::from_secs(60)).await {
            Some(Invocation::Response(response)) => print_response(&response),
            Some(Invocation::Error(error)) => println!("  invocation failed: {error}"),
            Some(Invocation::InitError(error)) => {
                return Err(format!("the function did not start: {error}"))
            }
            None => return Err("the function did not answer".to_owned()),
        }
        println!();
    }
    readiness(&aws, &events).await?;
    print_world(&aws.world());
    let _ = child.kill().await;
    Ok(())
}

/// Days later: replication has moved on. One extension syncs again, one stalls,
/// and the broken one has carried its mark for 80 hours; the target account also
/// replicates six servers of its own, against a quota of only 16. A
/// reconciliation of both accounts answers the questions operators ask: could
/// each be recovered now, and how much room is left?
async fn readiness(aws: &LocalAws, events: &std::path::Path) -> Result<(), String> {
    {
        let mut world = aws.world();
        let target = world.default_account.clone();
        world.add_own_servers(&target, "us-east-1", 6);
        world.source_server_quota = local_aws::SourceServerQuota::Applied(16.0);
        let extended: Vec<String> = world
            .extended()
            .iter()
            .map(|e| e.staging_arn.clone())
            .filter(|arn| arn != BROKEN.0)
            .collect();
        if let [syncing, stalled, retired, ..] = extended.as_slice() {
            world.set_extension_replication(syncing, "RESCAN", Some("PT0S"));
            world.set_extension_replication(stalled, "STALLED", Some("PT3H"));
            // Replicating fine, but its launch template names a subnet since deleted.
            let id = world
                .extended()
                .iter()
                .find(|e| &e.staging_arn == retired)
                .map(|e| e.id.clone());
            let template = id.and_then(|id| world.launch_template_of(&id));
            if let Some(version) = template.and_then(|t| world.launch_template_default_mut(&t)) {
                version.subnet_id = Some(RETIRED_SUBNET.to_owned());
            }
        }
        let eighty_hours_ago = std::time::SystemTime::now() - Duration::from_secs(80 * 3_600);
        let mark = local_aws::iso8601(eighty_hours_ago);
        for server in world
            .extended_mut()
            .iter_mut()
            .filter(|e| e.staging_arn == BROKEN.0)
        {
            server
                .tags
                .insert("drs-extender:error-since".into(), mark.clone());
        }
    }
    let path = events.join("scheduled-reconciliation.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let payload: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("▶ {} — days later: one extension rescanning, one stalled, the broken one marked 80 hours ago, one whose launch template names a deleted subnet", path.display());
    let Some(Invocation::Response(response)) = aws.invoke(payload, Duration::from_secs(60)).await
    else {
        return Err("the scheduled reconciliation did not answer".to_owned());
    };
    print_response(&response);
    println!("\n  Readiness: could each extended server be recovered now?");
    println!(
        "  {:<14} {:<10} {:>8} {:>6} {:>8} {:>10}  not ready by reason",
        "account", "region", "extended", "ready", "syncing", "not ready"
    );
    for scope in response["coverage"].as_array().into_iter().flatten() {
        println!(
            "  {:<14} {:<10} {:>8} {:>6} {:>8} {:>10}  {}",
            scope["stagingAccountId"].as_str().unwrap_or_default(),
            scope["region"].as_str().unwrap_or_default(),
            scope["extended"].as_u64().unwrap_or(0),
            scope["ready"].as_u64().unwrap_or(0),
            scope["syncing"].as_u64().unwrap_or(0),
            scope["notReady"].as_u64().unwrap_or(0),
            by_reason(&scope["notReadyReasons"]),
        );
    }
    print_launch_readiness(&response, &aws.world());
    let quotas = response["reconciliation"]["quota"].as_array();
    for quota in quotas.into_iter().flatten() {
        println!(
            "\n  Quota: {} holds {} source servers of {} ({}, {}){}",
            quota["region"].as_str().unwrap_or_default(),
            quota["sourceServers"],
            quota["quota"],
            format_args!("{} % used", quota["usedPercent"]),
            match quota["quotaSource"].as_str() {
                Some("SERVICE_QUOTAS") => "Service Quotas",
                Some("AWS_DEFAULT") => "Service Quotas' AWS default: none applied",
                _ => "the documented default: Service Quotas could not be read",
            },
            if quota["warning"] == true {
                " — past QUOTA_WARN_PERCENT: raise it before it stops extensions"
            } else {
                ""
            },
        );
    }
    let world = aws.world();
    for stale in world.events().iter().filter(|e| {
        e["DetailType"] == "Extended Source Server Unhealthy"
            && e["Detail"].get("staleSince").is_some()
    }) {
        println!(
            "  stale extension reported: {} (broken since {}; STALE_EXTENSIONS=delete would delete it)",
            stale["Detail"]["extendedSourceServerArn"].as_str().unwrap_or_default(),
            stale["Detail"]["staleSince"].as_str().unwrap_or_default(),
        );
    }
    println!();
    Ok(())
}

/// A subnet the demo's launch template names after it was deleted.
const RETIRED_SUBNET: &str = "subnet-0retired00000000";

/// Would each extended server launch with the target account's settings, and
/// if not, why: the counts per scope, then each `Launch Not Ready` event.
fn print_launch_readiness(response: &Value, world: &World) {
    println!("\n  Launch readiness: would each launch with the target account's launch settings?");
    println!(
        "  {:<14} {:<10} {:>8} {:>12} {:>10}  would not launch, by reason",
        "account", "region", "checked", "not launch", "unchecked"
    );
    for scope in response["coverage"].as_array().into_iter().flatten() {
        println!(
            "  {:<14} {:<10} {:>8} {:>12} {:>10}  {}",
            scope["stagingAccountId"].as_str().unwrap_or_default(),
            scope["region"].as_str().unwrap_or_default(),
            scope["launchChecked"].as_u64().unwrap_or(0),
            scope["launchNotReady"].as_u64().unwrap_or(0),
            scope["launchUnchecked"].as_u64().unwrap_or(0),
            by_reason(&scope["launchNotReadyReasons"]),
        );
    }
    for event in world
        .events()
        .iter()
        .filter(|e| e["DetailType"] == "Extended Source Server Launch Not Ready")
    {
        let detail = &event["Detail"];
        println!(
            "  would not launch: {} ({}: template {} names subnet {})",
            detail["extendedSourceServerArn"]
                .as_str()
                .unwrap_or_default(),
            detail["launchReason"].as_str().unwrap_or_default(),
            detail["ec2LaunchTemplateId"].as_str().unwrap_or("-"),
            detail["subnetId"].as_str().unwrap_or("-"),
        );
    }
}

/// An Embedded Metric Format line, folded into its metrics' names and values.
fn folded_metrics(line: &str) -> Option<String> {
    let document: Value = serde_json::from_str(line).ok()?;
    let names = document["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array()?;
    let region = match (document["Region"].as_str(), document["Reason"].as_str()) {
        (Some(region), Some(reason)) => format!("{region} {reason}: "),
        (Some(region), None) => format!("{region}: "),
        _ => String::new(),
    };
    let values: Vec<String> = names
        .iter()
        .filter_map(|m| m["Name"].as_str())
        .map(|name| format!("{name} {}", document[name]))
        .collect();
    Some(format!("{region}{}", values.join(", ")))
}

fn print_world(world: &World) {
    println!("Emitted events ({}):", world.events().len());
    for event in world.events() {
        let detail = &event["Detail"];
        let what = match detail["errorMessage"].as_str() {
            Some(message) if event["DetailType"] == "Extended Source Server Unhealthy" => format!(
                "{} ({message})",
                detail["stagingSourceServerArn"]
                    .as_str()
                    .unwrap_or_default()
            ),
            _ => detail["stagingSourceServerArn"]
                .as_str()
                .or(detail["reason"].as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| {
                    format!(
                        "examined {} created {} skipped {} · extended {} extension errors {}",
                        detail["examined"],
                        detail["created"],
                        detail["skipped"],
                        detail["extended"],
                        detail["extensionErrors"]
                    )
                }),
        };
        println!(
            "  {:<34} {what}",
            event["DetailType"].as_str().unwrap_or_default()
        );
    }
    println!(
        "\nExtended source servers in the target account ({}):",
        world.extended().len()
    );
    for server in world.extended() {
        println!("  {} <- {}", server.arn, server.staging_arn);
    }
}

fn print_response(response: &Value) {
    if let Some(reason) = response["ignored"].as_str() {
        println!("  ignored: {reason}");
        return;
    }
    println!(
        "  created {} · skipped {} · failed {} · rejected {}",
        response["created"], response["skipped"], response["failed"], response["rejected"]
    );
    if let Some(summary) = response.get("reconciliation") {
        println!(
            "  coverage: {} extended servers, {} in EXTENSION_ERROR",
            summary["extended"], summary["extensionErrors"]
        );
    }
    for outcome in response["outcomes"].as_array().into_iter().flatten() {
        let server = outcome["stagingSourceServerArn"].as_str().unwrap_or("-");
        let why = outcome["reason"]
            .as_str()
            .or(outcome["errorCode"].as_str())
            .unwrap_or("");
        println!(
            "    {:<9} {server} {why}",
            outcome["status"].as_str().unwrap_or_default()
        );
    }
}

/// Counts by reason, as a table cell: `STALLED 1, LAGGING 2`, or `-`.
fn by_reason(counts: &Value) -> String {
    let reasons: Vec<String> = counts
        .as_object()
        .into_iter()
        .flatten()
        .map(|(reason, n)| format!("{reason} {n}"))
        .collect();
    if reasons.is_empty() {
        "-".to_owned()
    } else {
        reasons.join(", ")
    }
}
