//! Reconciliation throughput: the release `drs-extender` binary, run as Lambda
//! runs it, reconciles many staging accounts against the local DRS with a per-call
//! latency and (optionally) a service rate limit that the function is not told
//! and that may change during the run. Prints wall time against the bound the
//! limit sets, a per-second table when the limit changes, and the function's peak
//! resident memory.
//!
//! reconcile-bench --function PATH [--accounts 50] [--servers 300] [--latency-ms 20]
//!                 [--service-limit 100|off] [--service-burst N] [--max-rps 100]
//!                 [--concurrency 8] [--page-tokens cursor|offset]
//!                 [--limit-schedule SECONDS:LIMIT,...]
//!                 [--tags N] [--copy-tags true|false]
//!                 [--already-extended] [--launch-checks N]
//!
//! `--launch-checks N` sets `LAUNCH_CHECKS_PER_RUN` (the function's default when
//! absent); with `--already-extended`, a tenth of the servers' launch templates
//! name one of 20 subnets and 10 security groups, the rest none (the default VPC).
//!
//! `--tags N` gives every staging server N tags of the largest size DRS allows
//! (128-character keys, 256-character values).

use std::process::Stdio;
use std::time::{Duration, Instant};

use local_aws::{function_env, Invocation, LocalAws, PageTokens, World, TARGET_ACCOUNT};
use serde_json::json;
use tokio::process::Command;

const REGION: &str = "us-east-1";

#[tokio::main]
async fn main() {
    if let Err(message) = run().await {
        eprintln!("{message}");
        std::process::exit(2);
    }
}

/// `10:20,25:100`: from second 10 the limit is 20/s, from second 25 100/s.
fn schedule(raw: &str) -> Result<Vec<(u64, u32)>, String> {
    raw.split(',')
        .map(|step| {
            let (at, limit) = step
                .split_once(':')
                .ok_or_else(|| format!("--limit-schedule: `{step}` is not SECONDS:LIMIT"))?;
            let at = at
                .parse()
                .map_err(|_| format!("--limit-schedule: `{at}`"))?;
            let limit = limit
                .parse()
                .map_err(|_| format!("--limit-schedule: `{limit}`"))?;
            Ok((at, limit))
        })
        .collect()
}

async fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| local_aws::flag(&args, name);
    let number = |name: &str, default: u64| local_aws::number_flag(&args, name, default);
    let function = flag("--function").ok_or("--function PATH is required")?;
    let accounts = number("--accounts", 50)? as usize;
    let servers = number("--servers", 300)? as usize;
    let latency = Duration::from_millis(number("--latency-ms", 20)?);
    let limit = match flag("--service-limit").as_deref() {
        None => Some(100),
        Some("off") => None,
        Some(v) => Some(
            v.parse::<u32>()
                .map_err(|_| format!("--service-limit: `{v}`"))?,
        ),
    };
    let burst = flag("--service-burst")
        .map(|v| {
            v.parse::<u32>()
                .map_err(|_| format!("--service-burst: `{v}`"))
        })
        .transpose()?;
    let max_rps = number("--max-rps", 100)?;
    let concurrency = number("--concurrency", 8)?;
    let tokens = match flag("--page-tokens").as_deref() {
        None | Some("cursor") => PageTokens::Cursor,
        Some("offset") => PageTokens::Offset,
        Some(other) => return Err(format!("--page-tokens: `{other}`")),
    };
    let steps = flag("--limit-schedule")
        .map(|raw| schedule(&raw))
        .transpose()?
        .unwrap_or_default();
    let tag_count = number("--tags", 0)? as usize;
    let copy_tags = flag("--copy-tags").unwrap_or_else(|| "true".to_owned());
    // Every server extended already, in a mix of replication states: what the
    // readiness read of a whole fleet costs.
    let already_extended = args.iter().any(|a| a == "--already-extended");
    let full_size: Vec<(String, String)> = (0..tag_count)
        .map(|i| (format!("{i:03}{}", "k".repeat(125)), "v".repeat(256)))
        .collect();
    let tags: Vec<(&str, &str)> = full_size
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();

    let mut world = World::new(TARGET_ACCOUNT);
    let staging: Vec<String> = (0..accounts)
        .map(|i| format!("{:012}", 300_000_000_000u64 + i as u64))
        .collect();
    for account in &staging {
        if tags.is_empty() {
            world.seed(account, REGION, servers);
        } else {
            for _ in 0..servers {
                world.add_staging_server(account, REGION, &tags);
            }
        }
    }
    if already_extended {
        let arns: Vec<String> = world.staging().iter().map(|s| s.arn.clone()).collect();
        for (i, arn) in arns.iter().enumerate() {
            world.extend_directly(TARGET_ACCOUNT, arn);
            let (state, lag) = match i % 20 {
                0 => ("STALLED", Some("PT4H")),
                1 => ("INITIAL_SYNC", Some("PT0S")),
                2 => ("CONTINUOUS", Some("PT1H")),
                _ => ("CONTINUOUS", Some("PT5S")),
            };
            world.set_extension_replication(arn, state, lag);
        }
    }
    let launch_checks = flag("--launch-checks");
    if already_extended {
        for subnet in 0..20 {
            let id = format!("subnet-bench{subnet:012}");
            world.add_subnet(
                REGION,
                &id,
                "vpc-bench",
                &format!("10.{subnet}.0.0/16"),
                "us-east-1a",
            );
        }
        for group in 0..10 {
            world.add_security_group(REGION, &format!("sg-bench{group:012}"), "vpc-bench");
        }
        let ids: Vec<String> = world.extended().iter().map(|e| e.id.clone()).collect();
        for (i, id) in ids.iter().enumerate().filter(|(i, _)| i % 10 == 0) {
            let template = world.launch_template_of(id);
            if let Some(version) = template.and_then(|t| world.launch_template_default_mut(&t)) {
                version.subnet_id = Some(format!("subnet-bench{:012}", i % 20));
                version.security_group_ids = vec![format!("sg-bench{:012}", i % 10)];
            }
        }
    }
    // A target account of 15,000 servers has had its quota raised.
    world.source_server_quota = local_aws::SourceServerQuota::Applied(20_000.0);
    world.latency = latency;
    world.drs_rate_limit = limit;
    world.drs_rate_burst = burst;
    world.page_tokens = tokens;
    let aws = LocalAws::start(world).await.map_err(|e| e.to_string())?;

    let mut command = Command::new(&function);
    if let Some(n) = &launch_checks {
        command.env("LAUNCH_CHECKS_PER_RUN", n);
    }
    let mut child = command
        .envs(function_env(&aws, REGION))
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("STAGING_ACCOUNT_IDS", staging.join(","))
        .env("DRS_MAX_RPS", max_rps.to_string())
        .env("RECONCILE_CONCURRENCY", concurrency.to_string())
        .env("COPY_STAGING_TAGS", &copy_tags)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {function}: {e}"))?;
    let pid = child.id().ok_or("the function exited at once")?;

    let scheduled = json!({
        "version": "0", "id": "bench", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": TARGET_ACCOUNT, "time": "2026-11-26T00:00:00Z", "region": REGION, "resources": [], "detail": {}
    });
    let started = Instant::now();
    let changes = async {
        for (at, new_limit) in &steps {
            tokio::time::sleep_until((started + Duration::from_secs(*at)).into()).await;
            aws.world().drs_rate_limit = Some(*new_limit);
        }
        std::future::pending::<()>().await;
    };
    let result = tokio::select! {
        result = aws.invoke(scheduled, Duration::from_secs(900)) => result,
        () = changes => None,
    };
    let wall = started.elapsed();
    let peak_kib = local_aws::peak_resident_kib(pid);
    let _ = child.kill().await;

    let response = match result {
        Some(Invocation::Response(response)) => response,
        other => return Err(format!("the run did not succeed: {other:?}")),
    };
    let world = aws.world();
    let accepted = world.drs_calls() - world.throttled;
    println!("accounts {accounts} x servers {servers} ({tag_count} tags each, COPY_STAGING_TAGS {copy_tags}), latency {} ms, service limit {}{}, DRS_MAX_RPS {max_rps}, concurrency {concurrency}, {tokens:?} page tokens",
        latency.as_millis(),
        limit.map_or("off".to_owned(), |l| format!("{l}/s")),
        burst.map_or(String::new(), |b| format!(" burst {b}")));
    println!(
        "  created {} (of {}), failed {}, complete {}",
        response["created"],
        accounts * servers,
        response["failed"],
        response["reconciliation"]["complete"]
    );
    println!(
        "  DRS requests {accepted} accepted, {} answered 429; PutEvents calls {}",
        world.throttled,
        world.calls_of("PutEvents").len()
    );
    println!(
        "  wall {:.1} s, {:.1} accepted DRS requests/s",
        wall.as_secs_f64(),
        accepted as f64 / wall.as_secs_f64()
    );
    // Coverage reads by staging account; the quota's count reads everything.
    let (reads, counts): (Vec<&local_aws::Call>, Vec<&local_aws::Call>) = world
        .calls_of("DescribeSourceServers")
        .into_iter()
        .partition(|c| c.body.get("filters").is_some());
    let span = |calls: &[&local_aws::Call]| match (calls.first(), calls.last()) {
        (Some(first), Some(last)) => last.at.duration_since(first.at).as_secs_f64(),
        _ => 0.0,
    };
    if !reads.is_empty() {
        println!(
            "  coverage read: {} DescribeSourceServers calls over {:.1} s; extended {}, extension errors {}",
            reads.len(),
            span(&reads),
            response["reconciliation"]["extended"],
            response["reconciliation"]["extensionErrors"],
        );
        println!(
            "  readiness: ready {}, syncing {}, not ready {} ({} not-ready events unsent past the cap)",
            response["reconciliation"]["ready"],
            response["reconciliation"]["syncing"],
            response["reconciliation"]["notReady"],
            response["reconciliation"]["notReadyUnsent"].as_u64().unwrap_or(0),
        );
    }
    for quota in response["reconciliation"]["quota"]
        .as_array()
        .into_iter()
        .flatten()
    {
        println!(
            "  quota watch: {} unfiltered DescribeSourceServers calls over {:.1} s and {} GetServiceQuota; {} source servers of {} ({} %)",
            counts.len(),
            span(&counts),
            world.calls_of("GetServiceQuota").len(),
            quota["sourceServers"],
            quota["quota"],
            quota["usedPercent"],
        );
    }
    let launch_reads = world.calls_of("GetLaunchConfiguration");
    if !launch_reads.is_empty() {
        let ec2: Vec<&local_aws::Call> = world
            .calls()
            .iter()
            .filter(|c| c.service == "ec2")
            .collect();
        let mut launch_calls = launch_reads.clone();
        launch_calls.extend(ec2.iter().copied());
        launch_calls.sort_by_key(|c| c.at);
        let summary = &response["reconciliation"];
        println!(
            "  launch check: {} GetLaunchConfiguration, {} DescribeLaunchTemplateVersions, {} DescribeSubnets, {} DescribeSecurityGroups, {} DescribeVpcs, {} DescribeInstanceTypeOfferings over {:.1} s; checked {}, not ready {}, unchecked {}",
            launch_reads.len(),
            world.calls_of("DescribeLaunchTemplateVersions").len(),
            world.calls_of("DescribeSubnets").len(),
            world.calls_of("DescribeSecurityGroups").len(),
            world.calls_of("DescribeVpcs").len(),
            world.calls_of("DescribeInstanceTypeOfferings").len(),
            span(&launch_calls),
            summary["launchChecked"],
            summary["launchNotReady"],
            summary["launchUnchecked"],
        );
    }
    if let (Some(limit), true) = (limit, steps.is_empty()) {
        let bound = accepted as f64 / f64::from(limit);
        println!(
            "  bound {bound:.1} s (accepted requests / limit): share of the service's rate {:.3}",
            bound / wall.as_secs_f64()
        );
    }
    if !steps.is_empty() {
        per_second_table(&world, started, limit, &steps);
    }
    println!(
        "  peak resident memory {:.1} MiB",
        peak_kib.unwrap_or(0) as f64 / 1024.0
    );
    Ok(())
}

/// Requests sent, throttled and accepted in each second, against the limit then.
fn per_second_table(world: &World, started: Instant, first: Option<u32>, steps: &[(u64, u32)]) {
    let second = |at: Instant| at.saturating_duration_since(started).as_secs() as usize;
    let drs = world.calls().iter().filter(|c| c.is_drs());
    let mut sent: Vec<usize> = Vec::new();
    for call in drs {
        let s = second(call.at);
        if sent.len() <= s {
            sent.resize(s + 1, 0);
        }
        sent[s] += 1;
    }
    let mut throttled = vec![0; sent.len()];
    for at in &world.throttled_at {
        if let Some(count) = throttled.get_mut(second(*at)) {
            *count += 1;
        }
    }
    println!("  second  limit  sent  throttled  accepted");
    for (s, sent) in sent.iter().enumerate() {
        let limit = steps
            .iter()
            .rev()
            .find(|(at, _)| *at as usize <= s)
            .map(|(_, l)| *l)
            .or(first)
            .map_or("off".to_owned(), |l| l.to_string());
        println!(
            "  {s:>6}  {limit:>5}  {sent:>4}  {:>9}  {:>8}",
            throttled[s],
            sent - throttled[s]
        );
    }
}
