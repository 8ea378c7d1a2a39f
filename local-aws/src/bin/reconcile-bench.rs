//! Reconciliation throughput: the release `drs-extender` binary, run as Lambda
//! runs it, reconciles many staging accounts against the local DRS with a per-call
//! latency and (optionally) a service rate limit. Prints wall time against the
//! bound the limit sets, and the function's peak resident memory.
//!
//! reconcile-bench --function PATH [--accounts 50] [--servers 300] [--latency-ms 20]
//!                 [--service-limit 100|off] [--max-rps 100] [--concurrency 8]

use std::process::Stdio;
use std::time::{Duration, Instant};

use local_aws::{function_env, Invocation, LocalAws, World, TARGET_ACCOUNT};
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

async fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| local_aws::flag(&args, name);
    let number = |name: &str, default: u64| -> Result<u64, String> {
        flag(name).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| format!("{name}: `{v}` is not a number"))
        })
    };
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
    let max_rps = number("--max-rps", 100)?;
    let concurrency = number("--concurrency", 8)?;

    let mut world = World::new(TARGET_ACCOUNT);
    let staging: Vec<String> = (0..accounts)
        .map(|i| format!("{:012}", 300_000_000_000u64 + i as u64))
        .collect();
    for account in &staging {
        world.seed(account, REGION, servers);
    }
    world.latency = latency;
    world.drs_rate_limit = limit;
    let aws = LocalAws::start(world).await.map_err(|e| e.to_string())?;

    let mut child = Command::new(&function)
        .envs(function_env(&aws, REGION))
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("STAGING_ACCOUNT_IDS", staging.join(","))
        .env("DRS_MAX_RPS", max_rps.to_string())
        .env("RECONCILE_CONCURRENCY", concurrency.to_string())
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
    let result = aws.invoke(scheduled, Duration::from_secs(900)).await;
    let wall = started.elapsed();
    let peak_kib = local_aws::peak_resident_kib(pid);
    let _ = child.kill().await;

    let response = match result {
        Some(Invocation::Response(response)) => response,
        other => return Err(format!("the run did not succeed: {other:?}")),
    };
    let world = aws.world();
    let drs_requests = world.drs_calls() - world.throttled;
    let bound = limit.map(|l| drs_requests as f64 / f64::from(l));
    println!("accounts {accounts} x servers {servers}, latency {} ms, service limit {}, DRS_MAX_RPS {max_rps}, concurrency {concurrency}",
        latency.as_millis(), limit.map_or("off".to_owned(), |l| format!("{l}/s")));
    println!(
        "  created {} (of {}), complete {}",
        response["created"],
        accounts * servers,
        response["reconciliation"]["complete"]
    );
    println!(
        "  DRS requests {drs_requests} (+{} answered 429), PutEvents calls {}",
        world.throttled,
        world.calls_of("PutEvents").len()
    );
    println!(
        "  wall {:.1} s, {:.1} DRS requests/s",
        wall.as_secs_f64(),
        drs_requests as f64 / wall.as_secs_f64()
    );
    if let Some(bound) = bound {
        println!(
            "  bound {bound:.1} s (requests / limit): pace ratio {:.3}",
            bound / wall.as_secs_f64()
        );
    }
    println!(
        "  peak resident memory {:.1} MiB",
        peak_kib.unwrap_or(0) as f64 / 1024.0
    );
    Ok(())
}
