//! The chaos harness: the real binary, run as Lambda runs it, against `local-aws`
//! under random fault schedules across DRS and EventBridge (latency, throttles,
//! 5xx, replies lost after effect, cut-short bodies, refused entries, a slow bus
//! landing events on arrival or only when it answers, a bus that refuses, answers
//! short (the last entry's result, a middle entry, or every result missing),
//! answers a gateway's 502 page after the events landed, or never answers, a quota, a Service Quotas that refuses or never answers, expiring,
//! offset, repeating or endless page tokens, what DRS's
//! timestamps and duplicate creates mean, a random deadline, a kill at a random
//! moment), checking the contract's invariants after each: on events too, for
//! invocations that fail or are killed.
//!
//! CI runs a few schedules (`CHAOS_CASES`, default 8, from a fixed seed), the
//! n-th under the n-th of the bus's answers (`BUSES`), so that every answer is
//! run each time; `scripts/chaos` runs many from a new seed each time
//! (`CHAOS_SEED`), the bus's answer chosen the same way.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use local_aws::{DuplicateCreate, EntriesReply, ExtensionClock, Invocation, Landing, PageTokens};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::Value;

const CONCURRENCY: usize = 8;
const BATCH: usize = 10;

#[derive(Clone, Debug)]
struct Schedule {
    accounts: usize,
    servers: usize,
    drs_latency_ms: u64,
    throttles: usize,
    server_errors: usize,
    lost_replies: usize,
    cut_short_reads: usize,
    refused_entries: usize,
    bus_latency_ms: u64,
    quota: Option<usize>,
    tokens: PageTokens,
    token_ttl_ms: Option<u64>,
    deadline_s: u64,
    kill_after: Option<usize>,
    bus: Bus,
    clock: ExtensionClock,
    duplicate: DuplicateCreate,
    quotas: Quotas,
}

/// What Service Quotas does when the run watches the quota.
#[derive(Clone, Copy, Debug)]
enum Quotas {
    Answers,
    Refuses,
    NeverAnswers,
}

/// What the bus does besides being slow.
#[derive(Clone, Copy, Debug)]
enum Bus {
    Lands,
    LandsOnAnswer,
    Refuses,
    AnswersShort,
    AnswersNoEntries,
    /// A middle entry of each batch neither taken nor answered.
    AnswersMissingMiddle,
    /// Every PutEvents lands, then a gateway answers 502 with an HTML page.
    GatewayPageAfterEffect,
    /// PutEvents lands and never answers: slower than every attempt timeout.
    NeverAnswers,
}

/// Every answer of the bus, one per schedule in turn.
const BUSES: [Bus; 8] = [
    Bus::Lands,
    Bus::AnswersMissingMiddle,
    Bus::GatewayPageAfterEffect,
    Bus::NeverAnswers,
    Bus::LandsOnAnswer,
    Bus::Refuses,
    Bus::AnswersShort,
    Bus::AnswersNoEntries,
];

fn schedules() -> impl Strategy<Value = Schedule> {
    (
        (1usize..=3, 5usize..=320, 0u64..=30),
        (0usize..=20, 0usize..=10, 0usize..=6, 0usize..=3, 0usize..=6),
        (
            prop_oneof![3 => Just(0u64), 1 => 500u64..=6_000],
            prop::option::weighted(0.25, 5usize..=80),
            any::<bool>(),
            prop::option::weighted(0.25, 200u64..=3_000),
        ),
        (8u64..=30, prop::option::weighted(0.25, 5usize..=60)),
        (
            prop_oneof![
                Just(ExtensionClock::Now),
                Just(ExtensionClock::StagingServer),
                Just(ExtensionClock::WholeSeconds),
                (-600i64..=600).prop_map(ExtensionClock::Skewed),
            ],
            prop_oneof![
                Just(DuplicateCreate::Validation),
                Just(DuplicateCreate::Conflict),
                Just(DuplicateCreate::ReturnsExisting),
            ],
            prop_oneof![
                4 => Just(PageTokens::Cursor),
                4 => Just(PageTokens::Offset),
                1 => Just(PageTokens::Repeating),
                1 => Just(PageTokens::Endless),
            ],
            prop_oneof![
                4 => Just(Quotas::Answers),
                1 => Just(Quotas::Refuses),
                1 => Just(Quotas::NeverAnswers),
            ],
        ),
    )
        .prop_map(
            |(
                (accounts, servers, drs_latency_ms),
                (throttles, server_errors, lost_replies, cut_short_reads, refused_entries),
                (bus_latency_ms, quota, _, token_ttl_ms),
                (deadline_s, kill_after),
                (clock, duplicate, tokens, quotas),
            )| Schedule {
                accounts,
                servers,
                drs_latency_ms,
                throttles,
                server_errors,
                lost_replies,
                cut_short_reads,
                refused_entries,
                bus_latency_ms,
                quota,
                tokens,
                token_ttl_ms,
                deadline_s,
                kill_after,
                // Each answer in turn, so that a few schedules run them all.
                bus: Bus::Lands,
                clock,
                duplicate,
                quotas,
            },
        )
}

const ACCOUNTS: [&str; 3] = [STAGING_A, STAGING_B, "333344445555"];

fn world_of(schedule: &Schedule) -> World {
    let mut world = World::new(TARGET_ACCOUNT);
    for account in &ACCOUNTS[..schedule.accounts] {
        world.seed(account, REGION, schedule.servers);
    }
    world.latency = Duration::from_millis(schedule.drs_latency_ms);
    world.put_events_latency = Duration::from_millis(schedule.bus_latency_ms);
    world.extended_quota = schedule.quota;
    world.page_tokens = schedule.tokens;
    world.extension_clock = schedule.clock;
    world.duplicate_create = schedule.duplicate;
    match schedule.bus {
        Bus::Lands => {}
        Bus::LandsOnAnswer => world.put_events_landing = Landing::OnAnswer,
        Bus::Refuses => world.bus_refuses = true,
        Bus::AnswersShort => world.put_events_entries = EntriesReply::OneShort,
        Bus::AnswersNoEntries => world.put_events_entries = EntriesReply::None,
        Bus::AnswersMissingMiddle => world.put_events_entries = EntriesReply::MiddleMissing,
        Bus::GatewayPageAfterEffect => world.inject("PutEvents", usize::MAX, Fault::GatewayPage),
        Bus::NeverAnswers => world.bus_never_answers = true,
    }
    world.token_ttl = schedule.token_ttl_ms.map(Duration::from_millis);
    let create = "CreateExtendedSourceServer";
    world.inject(create, schedule.throttles, Fault::throttling(0));
    world.inject(
        create,
        schedule.server_errors,
        Fault::error(500, "InternalServerException"),
    );
    world.inject(create, schedule.lost_replies, Fault::LostReply);
    world.inject(
        "ListExtensibleSourceServers",
        schedule.cut_short_reads,
        Fault::CutShort,
    );
    world.refuse_event_entries(schedule.refused_entries);
    match schedule.quotas {
        Quotas::Answers => {}
        Quotas::Refuses => world.source_server_quota = local_aws::SourceServerQuota::Refused,
        Quotas::NeverAnswers => world.inject(
            "GetServiceQuota",
            1_000,
            Fault::Delay(Duration::from_secs(3_600)),
        ),
    }
    world
}

/// What one schedule did, and every way it broke the contract.
fn run_schedule(schedule: &Schedule) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let aws = LocalAws::start(world_of(schedule))
            .await
            .map_err(|e| e.to_string())?;
        let accounts = ACCOUNTS[..schedule.accounts].join(",");
        let mut running = spawn(
            &aws,
            &[
                ("STAGING_ACCOUNT_IDS", accounts.as_str()),
                ("DRS_MAX_RPS", "200"),
                ("RECONCILE_CONCURRENCY", &CONCURRENCY.to_string()),
            ],
        );
        let deadline = Duration::from_secs(schedule.deadline_s);
        let started = Instant::now();
        let invocation = aws.invoke(event("scheduled-reconciliation"), deadline);
        let killed = async {
            match schedule.kill_after {
                Some(n) => {
                    while aws.world().extended().len() < n {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    let _ = running.child.start_kill();
                    let _ = running.child.wait().await;
                }
                None => std::future::pending().await,
            }
        };
        let answer = tokio::select! {
            answer = invocation => Some((answer, started.elapsed())),
            () = killed => None,
        };
        // What was on its way still lands, as it would on a real service.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = running.child.start_kill();
        let world = aws.world();
        let checked = check(schedule, &world, answer, deadline);
        drop(world);
        checked
    })
}

fn check(
    schedule: &Schedule,
    world: &World,
    answer: Option<(Option<Invocation>, Duration)>,
    deadline: Duration,
) -> Result<(), String> {
    let mut broken = Vec::new();
    // Events per staging server: (detail-type, extended ARN) and how many copies.
    let mut copies: BTreeMap<&str, BTreeMap<(String, String), usize>> = BTreeMap::new();
    for event in world.events() {
        if let Some(server) = event["Detail"]["stagingSourceServerArn"].as_str() {
            let kind = event["DetailType"].as_str().unwrap_or_default().to_owned();
            let extended = event["Detail"]["extendedSourceServerArn"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            *copies
                .entry(server)
                .or_default()
                .entry((kind, extended))
                .or_default() += 1;
        }
    }
    let created_events = |server: &str| {
        copies.get(server).map_or(0, |kinds| {
            kinds
                .keys()
                .filter(|(kind, _)| kind == "Extended Source Server Created")
                .count()
        })
    };
    // Nothing extended twice, nor reported created for two different extensions.
    let mut extended_from = BTreeSet::new();
    for extended in world.extended() {
        if !extended_from.insert(extended.staging_arn.as_str()) {
            broken.push(format!("{} extended twice", extended.staging_arn));
        }
        if created_events(&extended.staging_arn) > 1 {
            broken.push(format!(
                "{} reported created for two extensions",
                extended.staging_arn
            ));
        }
    }
    // No event published more than twice.
    for (server, kinds) in &copies {
        for ((kind, _), n) in kinds {
            if *n > 2 {
                broken.push(format!("{server}: {n} copies of {kind}"));
            }
        }
    }
    // Nothing was extended before the run: every label of an extension is
    // `created`, whatever DRS's timestamps or duplicate creates say.
    for (server, kinds) in &copies {
        if kinds
            .keys()
            .any(|(kind, _)| kind == "Extended Source Server Skipped")
        {
            broken.push(format!("{server} reported skipped; this run made it"));
        }
    }
    let without_event: Vec<&str> = world
        .extended()
        .iter()
        .map(|e| e.staging_arn.as_str())
        .filter(|arn| !copies.contains_key(arn))
        .collect();
    // Killed, failed or answered: only the calls in flight and one batch may ever
    // lack their event (a given-up event ends the creating).
    if without_event.len() > CONCURRENCY + BATCH {
        broken.push(format!("{} extended without an event", without_event.len()));
    }
    match answer {
        None => {}
        Some((None, _)) => broken.push(format!(
            "no answer within the deadline of {deadline:?} (+5 s)"
        )),
        Some((Some(invocation), took)) => {
            if took > deadline {
                broken.push(format!("answered after {took:?} of {deadline:?}"));
            }
            match invocation {
                Invocation::Response(response) => {
                    check_response(world, &response, &copies, &without_event, &mut broken)
                }
                // A failed invocation is retried by Lambda: what it left without an
                // event is taken up again.
                Invocation::Error(_) => {}
                Invocation::InitError(error) => broken.push(format!("init error {error}")),
            }
        }
    }
    if broken.is_empty() {
        Ok(())
    } else {
        Err(format!("{schedule:?}\n  {}", broken.join("\n  ")))
    }
}

type Copies<'a> = BTreeMap<&'a str, BTreeMap<(String, String), usize>>;

fn check_response(
    world: &World,
    response: &Value,
    copies: &Copies<'_>,
    without_event: &[&str],
    broken: &mut Vec<String>,
) {
    if !without_event.is_empty() {
        broken.push(format!(
            "succeeded with {} extended servers without an event",
            without_event.len()
        ));
    }
    // The counts agree with the events, server by server.
    for (status, kind) in [
        ("created", "Extended Source Server Created"),
        ("skipped", "Extended Source Server Skipped"),
        ("failed", "Extended Source Server Failed"),
    ] {
        let servers = copies
            .values()
            .filter(|kinds| kinds.keys().any(|(k, _)| k == kind))
            .count();
        let counted = response[status].as_u64().unwrap_or(u64::MAX) as usize;
        if counted != servers {
            broken.push(format!(
                "response {status} {counted}, events name {servers} servers"
            ));
        }
    }
    let summary = &response["reconciliation"];
    // The quota is watched, whatever Service Quotas does: reported, not waited for.
    let quota_regions: Vec<&Value> = summary["quota"]
        .as_array()
        .map(|q| q.iter().map(|e| &e["region"]).collect())
        .unwrap_or_default();
    if quota_regions != [&Value::from(REGION)] {
        broken.push(format!("quota {}", summary["quota"]));
    }
    for status in ["created", "skipped", "failed"] {
        if summary[status] != response[status] {
            broken.push(format!(
                "summary {status} {} != response {}",
                summary[status], response[status]
            ));
        }
    }
    // Complete only when nothing is left, but what was handed to a fan-out request
    // (delivered, each naming its account).
    let handed_on: BTreeSet<String> = world
        .events()
        .iter()
        .filter(|e| e["DetailType"] == "Reconciliation Requested")
        .flat_map(|e| {
            e["Detail"]["stagingAccountIds"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect();
    if summary["fannedOut"].as_u64() != Some(handed_on.len() as u64) {
        broken.push(format!(
            "fannedOut {}, requests delivered for {handed_on:?}",
            summary["fannedOut"]
        ));
    }
    if summary["complete"] == true {
        let left = world
            .staging()
            .iter()
            .filter(|s| !handed_on.contains(&s.account))
            .filter(|s| !world.is_extended(TARGET_ACCOUNT, &s.arn))
            .count();
        if left > 0 {
            broken.push(format!(
                "complete, with {left} staging servers not extended"
            ));
        }
    }
}

fn cases() -> u32 {
    std::env::var("CHAOS_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

#[test]
fn the_contract_holds_under_random_fault_schedules() {
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        // A schedule is seconds of real time: shrinking would take minutes.
        max_shrink_iters: 0,
        ..Config::default()
    };
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(20261201);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let ran = std::cell::Cell::new(0);
    let result = runner.run(&schedules(), |mut schedule| {
        schedule.bus = BUSES[ran.get() % BUSES.len()];
        ran.set(ran.get() + 1);
        eprintln!("schedule {}: {schedule:?}", ran.get());
        run_schedule(&schedule).map_err(TestCaseError::fail)
    });
    eprintln!("chaos: {} schedules from seed {seed}", ran.get());
    if let Err(error) = result {
        panic!("{error}");
    }
}
