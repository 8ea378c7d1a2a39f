//! Start-up and per-invocation cost of a Lambda binary, measured as Lambda runs
//! it: spawned against the local Runtime API, with the local AWS behind it.
//!
//! startup-bench --function PATH [--runs 5] [--warm 50] [--gap-ms 250] [--echo]
//!                [--env NAME=VALUE ...]
//!
//! Per run: cold start (spawn to the first `/next` poll), the first invocation
//! and `--warm` more, each an announcement that creates one server (or, with
//! `--echo`, any event, for a function that only answers it), and the process's
//! peak resident memory. Latency is also shown less the time the local AWS spent
//! answering (the function's own share).

use std::process::Stdio;
use std::time::{Duration, Instant};

use local_aws::{flag, function_env, number_flag, Invocation, LocalAws, World};
use serde_json::{json, Value};
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

struct Sample {
    cold_start: Duration,
    first: (Duration, Duration),
    warm: Vec<(Duration, Duration)>,
    peak_kib: u64,
}

async fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let function = flag(&args, "--function").ok_or("--function PATH is required")?;
    let runs = number_flag(&args, "--runs", 5)? as usize;
    let warm = number_flag(&args, "--warm", 50)? as usize;
    let echo = args.iter().any(|a| a == "--echo");
    // `--env NAME=VALUE`, repeated: extra variables for the function.
    let extra: Vec<(String, String)> = args
        .windows(2)
        .filter(|w| w[0] == "--env")
        .filter_map(|w| {
            w[1].split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect();
    let gap = Duration::from_millis(number_flag(&args, "--gap-ms", 250)?);

    let mut samples = Vec::new();
    for _ in 0..runs {
        samples.push(one_run(&function, warm, echo, gap, &extra).await?);
    }
    report(&function, &samples);
    Ok(())
}

async fn one_run(
    function: &str,
    warm: usize,
    echo: bool,
    gap: Duration,
    extra: &[(String, String)],
) -> Result<Sample, String> {
    let mut world = World::new(local_aws::TARGET_ACCOUNT);
    let servers = world.seed(STAGING, REGION, warm + 1);
    let aws = LocalAws::start(world).await.map_err(|e| e.to_string())?;

    let spawned = Instant::now();
    let mut child = Command::new(function)
        .envs(function_env(&aws, REGION))
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .envs(extra.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {function}: {e}"))?;
    let pid = child.id().ok_or("the function exited at once")?;
    let polled = loop {
        if let Some(at) = aws.runtime().first_poll() {
            break at;
        }
        if spawned.elapsed() > Duration::from_secs(10) {
            return Err("the function never asked for an event".into());
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    };
    let cold_start = polled.duration_since(spawned);

    let mut latencies = Vec::new();
    for arn in &servers {
        // Events spaced as they arrive in life, so the function's request pace
        // (DRS_MAX_RPS) is idle and what is measured is latency, not throughput.
        tokio::time::sleep(gap).await;
        let event = announcement(arn);
        let service_before = aws.world().service_time;
        let started = Instant::now();
        match aws.invoke(event, Duration::from_secs(30)).await {
            Some(Invocation::Response(response)) if echo || response["created"] == 1 => {}
            other => return Err(format!("unexpected answer: {other:?}")),
        }
        let total = started.elapsed();
        if std::env::var_os("STARTUP_BENCH_TRACE").is_some() {
            let world = aws.world();
            let recent: Vec<String> = world
                .calls()
                .iter()
                .filter(|c| c.at >= started)
                .map(|c| {
                    format!(
                        "{} +{:.2}ms",
                        c.operation,
                        c.at.duration_since(started).as_secs_f64() * 1000.0
                    )
                })
                .collect();
            eprintln!(
                "{:.2}ms: {}",
                total.as_secs_f64() * 1000.0,
                recent.join(", ")
            );
        }
        let service = aws.world().service_time - service_before;
        latencies.push((total, total.saturating_sub(service)));
    }
    let peak_kib = local_aws::peak_resident_kib(pid).unwrap_or(0);
    let _ = child.kill().await;
    let first = latencies.remove(0);
    Ok(Sample {
        cold_start,
        first,
        warm: latencies,
        peak_kib,
    })
}

fn announcement(arn: &str) -> Value {
    json!({
        "version": "0", "id": "bench", "detail-type": "Staging Source Server Added",
        "source": "org.example.dr-tooling", "account": STAGING, "time": "2026-11-26T09:00:00Z",
        "region": REGION, "resources": [], "detail": {"sourceServerArn": arn}
    })
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn report(function: &str, samples: &[Sample]) {
    let cold = median(samples.iter().map(|s| s.cold_start).collect());
    let first = median(samples.iter().map(|s| s.first.0).collect());
    let first_own = median(samples.iter().map(|s| s.first.1).collect());
    let warm = median(
        samples
            .iter()
            .flat_map(|s| s.warm.iter().map(|w| w.0))
            .collect(),
    );
    let warm_own = median(
        samples
            .iter()
            .flat_map(|s| s.warm.iter().map(|w| w.1))
            .collect(),
    );
    let peak = samples.iter().map(|s| s.peak_kib).max().unwrap_or(0);
    println!("{function}: {} runs", samples.len());
    println!(
        "  cold start (spawn to first poll), median {}; each run: {}",
        ms(cold),
        samples
            .iter()
            .map(|s| ms(s.cold_start))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  first invocation, median {} (own share {})",
        ms(first),
        ms(first_own)
    );
    println!(
        "  warm invocation, median {} (own share {})",
        ms(warm),
        ms(warm_own)
    );
    println!("  peak resident memory {:.1} MiB", peak as f64 / 1024.0);
}
