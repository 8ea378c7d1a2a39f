//! A storm of registrations: several function processes (Lambda's concurrent
//! environments) polling one Runtime API, each handling announcements back to
//! back, against one account-wide DRS request limit the function is not told.
//! Prints the share of the service's rate the instances used together.
//!
//! storm-bench --function PATH [--instances 6] [--events 40] [--service-limit 20]
//!             [--burst N] [--window] [--retry-after S|none]
//!             [--latency-ms 20] [--max-rps 10] [--timeline]
//!
//! The throttle's shape is the service's, and unknown: `--burst` sizes its token
//! bucket (a tenth of a second's worth when absent), `--window` counts whole
//! seconds instead (a second's worth may come at once), `--retry-after` is what a
//! 429 says (`none`: no header). `--timeline` adds, per second of the storm, the
//! DRS requests accepted and answered 429: where the share was lost.

use std::process::Stdio;
use std::time::{Duration, Instant};

use local_aws::{
    flag, function_env, number_flag, Invocation, Limiter, LocalAws, World, TARGET_ACCOUNT,
};
use serde_json::json;
use tokio::process::Command;

const STAGING: &str = "222233334444";
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
    let number = |name: &str, default: u64| number_flag(&args, name, default);
    let function = flag(&args, "--function").ok_or("--function PATH is required")?;
    let instances = number("--instances", 6)? as usize;
    let events = number("--events", 40)? as usize;
    let limit = number("--service-limit", 20)? as u32;
    let latency = Duration::from_millis(number("--latency-ms", 20)?);
    let max_rps = number("--max-rps", 10)?;
    let burst = flag(&args, "--burst")
        .map(|b| {
            b.parse::<u32>()
                .map_err(|_| format!("--burst: `{b}` is not a number"))
        })
        .transpose()?;
    let window = args.iter().any(|a| a == "--window");
    let retry_after = match flag(&args, "--retry-after").as_deref() {
        None => Some(1),
        Some("none") => None,
        Some(s) => Some(
            s.parse::<u32>()
                .map_err(|_| format!("--retry-after: `{s}` is neither seconds nor none"))?,
        ),
    };

    let mut world = World::new(TARGET_ACCOUNT);
    let servers = world.seed(STAGING, REGION, instances * events);
    world.latency = latency;
    world.drs_rate_limit = Some(limit);
    world.drs_rate_burst = burst;
    world.drs_retry_after = retry_after;
    if window {
        world.drs_limiter = Limiter::FixedWindow;
    }
    let aws = LocalAws::start(world).await.map_err(|e| e.to_string())?;

    let mut children = Vec::new();
    for _ in 0..instances {
        children.push(
            Command::new(&function)
                .envs(function_env(&aws, REGION))
                .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
                .env("DRS_MAX_RPS", max_rps.to_string())
                .stdout(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("cannot start {function}: {e}"))?,
        );
    }
    // Every instance up and polling before the storm starts.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let aws = std::sync::Arc::new(aws);
    let started = Instant::now();
    let mut invocations = tokio::task::JoinSet::new();
    for arn in &servers {
        let announcement = json!({
            "version": "0", "id": "storm", "detail-type": "Staging Source Server Added",
            "source": "org.example.dr-tooling", "account": STAGING, "time": "2026-11-26T00:00:00Z",
            "region": REGION, "resources": [], "detail": {"sourceServerArn": arn}
        });
        let aws = aws.clone();
        invocations.spawn(async move { aws.invoke(announcement, Duration::from_secs(120)).await });
    }
    let results = invocations.join_all().await;
    let wall = started.elapsed();
    for child in &mut children {
        let _ = child.kill().await;
    }

    let failed = results
        .iter()
        .filter(|r| !matches!(r, Some(Invocation::Response(_))))
        .count();
    let world = aws.world();
    let accepted = world.drs_calls() - world.throttled;
    let bound = accepted as f64 / f64::from(limit);
    let shape = match (window, burst) {
        (true, _) => "a fixed one-second window".to_owned(),
        (false, Some(b)) => format!("a token bucket of {b}"),
        (false, None) => "a token bucket of a tenth of a second".to_owned(),
    };
    let retry = retry_after.map_or("no Retry-After".to_owned(), |s| {
        format!("Retry-After {s} s")
    });
    println!(
        "{instances} instances x {events} announcements, service limit {limit}/s ({shape}, {retry}), DRS_MAX_RPS {max_rps}, latency {} ms",
        latency.as_millis()
    );
    println!(
        "  extended {} of {}, failed invocations {failed}",
        world.extended().len(),
        servers.len()
    );
    println!(
        "  DRS requests {accepted} accepted, {} answered 429",
        world.throttled
    );
    println!(
        "  wall {:.1} s, bound {bound:.1} s (accepted requests / limit): share of the service's rate {:.3}",
        wall.as_secs_f64(),
        bound / wall.as_secs_f64()
    );
    if args.iter().any(|a| a == "--timeline") {
        let second_of = |at: Instant| at.saturating_duration_since(started).as_secs() as usize;
        let seconds = wall.as_secs() as usize + 1;
        let (mut sent, mut refused) = (vec![0usize; seconds], vec![0usize; seconds]);
        for call in world.calls() {
            if call.region == REGION && call.is_drs() {
                if let Some(n) = sent.get_mut(second_of(call.at)) {
                    *n += 1;
                }
            }
        }
        for at in &world.throttled_at {
            if let Some(n) = refused.get_mut(second_of(*at)) {
                *n += 1;
            }
        }
        // A server asked for more than once was throttled: the gaps are the waits.
        let mut asked: std::collections::HashMap<&str, Vec<Instant>> = Default::default();
        for call in world.calls() {
            if let Some(arn) = call.body.get("sourceServerArn").and_then(|v| v.as_str()) {
                asked.entry(arn).or_default().push(call.at);
            }
        }
        let mut waits: Vec<Duration> = asked
            .values()
            .flat_map(|times| times.windows(2).map(|w| w[1] - w[0]))
            .collect();
        waits.sort();
        if let (Some(first), Some(last)) = (waits.first(), waits.last()) {
            println!(
                "  waits after a 429: {} from {:.2} s to {:.2} s, median {:.2} s",
                waits.len(),
                first.as_secs_f64(),
                last.as_secs_f64(),
                waits[waits.len() / 2].as_secs_f64()
            );
        }
        println!("  second  accepted  429");
        for (second, (sent, refused)) in sent.iter().zip(&refused).enumerate() {
            println!(
                "  {second:>6}  {:>8}  {refused:>3}",
                sent - refused.min(sent)
            );
        }
    }
    Ok(())
}
