//! Each bound of the interface under each answer local-aws can give where AWS's
//! documentation leaves it open: what DRS's timestamps mean, what a PutEvents
//! reply lists, a bus that refuses, a DRS rate that falls mid-run, page tokens
//! that repeat or never end. Each test names the mechanism it proves.

mod common;

use std::time::{Duration, Instant};

use common::*;
use drs_extender::InvocationError;
use local_aws::{DuplicateCreate, EntriesReply, ExtensionClock, Landing, PageTokens};

fn creates(h: &Harness) -> usize {
    h.aws.world().calls_of("CreateExtendedSourceServer").len()
}

/// Mechanism: the stream's `given_up` flag, checked before every create.
#[tokio::test]
async fn a_refusing_bus_ends_the_creating_within_concurrency_and_a_batch() {
    let mut world = World::new(TARGET_ACCOUNT);
    world.seed(STAGING_A, REGION, 200);
    world.bus_refuses = true;
    let h = Harness::start(
        world,
        &[
            ("STAGING_ACCOUNT_IDS", STAGING_A),
            ("DRS_MAX_RPS", "1000"),
            ("RECONCILE_CONCURRENCY", "8"),
        ],
    )
    .await;
    let result = h.invoke(event("scheduled-reconciliation")).await;
    let Err(InvocationError::OutcomesUndelivered { undelivered, .. }) = result else {
        panic!("{result:?}");
    };
    let made = h.aws.world().extended().len();
    assert!(made <= 8 + 10, "{made} extended without an event");
    assert_eq!(
        creates(&h),
        made,
        "no create after the first event given up"
    );
    assert_eq!(undelivered, made + 1, "each outcome and the summary");

    // The event path holds the same bound.
    let mut world = World::new(TARGET_ACCOUNT);
    let servers = world.seed(STAGING_A, REGION, 60);
    world.bus_refuses = true;
    let h = Harness::start(
        world,
        &[("STAGING_ACCOUNT_IDS", STAGING_A), ("DRS_MAX_RPS", "1000")],
    )
    .await;
    let result = h.invoke(drs_event_naming(servers, STAGING_A)).await;
    assert!(
        matches!(result, Err(InvocationError::OutcomesUndelivered { .. })),
        "{result:?}"
    );
    let made = h.aws.world().extended().len();
    assert!(
        made <= 8 + 10,
        "event path: {made} extended without an event"
    );
}

/// Mechanism: the `drs-extender:request-id` tag on every create, read back from
/// the create's answer or the look. DRS's timestamps are never asked.
#[tokio::test]
async fn labels_never_rest_on_what_drs_timestamps_mean() {
    let clocks = [
        ExtensionClock::Now,
        ExtensionClock::StagingServer,
        ExtensionClock::WholeSeconds,
        ExtensionClock::Skewed(300),
        ExtensionClock::Skewed(-300),
    ];
    for clock in clocks {
        let mut world = World::new(TARGET_ACCOUNT);
        world.seed(STAGING_A, REGION, 26);
        world.extension_clock = clock;
        // Replies lost or cut off after the create took effect: the look decides.
        world.inject("CreateExtendedSourceServer", 3, Fault::LostReply);
        world.inject("CreateExtendedSourceServer", 3, Fault::CutShort);
        let before = world.seed(STAGING_A, REGION, 4);
        for server in &before {
            world.extend_directly(TARGET_ACCOUNT, server);
        }
        let h = Harness::start(
            world,
            &[("STAGING_ACCOUNT_IDS", STAGING_A), ("DRS_MAX_RPS", "1000")],
        )
        .await;
        let response = h.ok(event("scheduled-reconciliation")).await;
        assert_eq!(response["created"], 26, "{clock:?}: {response}");
        assert_eq!(
            h.events_of("Extended Source Server Created").len(),
            26,
            "{clock:?}"
        );
        // Servers extended before the run, announced: skipped however DRS
        // stamped them, and at once (no waiting out a clock).
        for server in &before {
            let again = h.ok(announcement(server, STAGING_A)).await;
            assert_eq!(statuses(&again), ["skipped"], "{clock:?}: {again}");
        }
    }
}

/// Mechanism: the same tag, when DRS answers a duplicate create with 201 and the
/// existing server, or answers without the server's tags (then the look reads them).
#[tokio::test]
async fn an_idempotent_create_and_a_reply_without_tags_are_labelled_by_the_tag() {
    for omits_tags in [false, true] {
        let mut world = World::new(TARGET_ACCOUNT);
        let server = world.seed(STAGING_A, REGION, 1).remove(0);
        world.duplicate_create = DuplicateCreate::ReturnsExisting;
        world.create_reply_omits_tags = omits_tags;
        world.extension_clock = ExtensionClock::StagingServer;
        let h = Harness::start(world, &[]).await;
        let first = h.ok(announcement(&server, STAGING_A)).await;
        assert_eq!(statuses(&first), ["created"], "omits tags {omits_tags}");
        let again = h.ok(announcement(&server, STAGING_A)).await;
        assert_eq!(statuses(&again), ["skipped"], "omits tags {omits_tags}");
        assert_eq!(h.events_of("Extended Source Server Created").len(), 1);
    }
}

/// Mechanism: an entry missing from a PutEvents reply counts as may-have-landed,
/// and is sent at most twice in all.
#[tokio::test]
async fn a_reply_with_fewer_entries_than_sent_never_makes_a_third_copy() {
    for reply in [EntriesReply::OneShort, EntriesReply::None] {
        let mut world = World::new(TARGET_ACCOUNT);
        world.seed(STAGING_A, REGION, 30);
        world.put_events_entries = reply;
        let h = Harness::start(
            world,
            &[("STAGING_ACCOUNT_IDS", STAGING_A), ("DRS_MAX_RPS", "1000")],
        )
        .await;
        let result = h.invoke(event("scheduled-reconciliation")).await;
        assert!(
            matches!(result, Err(InvocationError::OutcomesUndelivered { .. })),
            "{reply:?}: events whose landing is unknown fail the invocation: {result:?}"
        );
        assert_at_most_twice(&h, &format!("{reply:?}"));
    }
}

/// Mechanism: the wait for the pace is not the operation's time, and a throttled
/// create is asked again until the deadline; what is left is `unfinished`.
#[tokio::test]
async fn a_drs_rate_that_falls_mid_run_slows_the_run_and_fails_no_server() {
    let mut world = World::new(TARGET_ACCOUNT);
    world.seed(STAGING_A, REGION, 300);
    world.drs_rate_limit = Some(40);
    world.drs_rate_burst = Some(5);
    let h = Harness::start_with(
        world,
        &[
            ("STAGING_ACCOUNT_IDS", STAGING_A),
            ("DRS_MAX_RPS", "100"),
            ("RECONCILE_CONCURRENCY", "32"),
        ],
        drs_extender::CallPolicy::default(),
    )
    .await;
    let deadline = Duration::from_secs(40);
    let run = h
        .app
        .handle(lambda_event(event("scheduled-reconciliation"), deadline));
    let fall = async {
        while h.aws.world().extended().len() < 40 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut world = h.aws.world();
        world.drs_rate_limit = Some(1);
        world.drs_rate_burst = Some(1);
    };
    let started = Instant::now();
    let (result, ()) = tokio::join!(run, fall);
    assert!(started.elapsed() < deadline, "{:?}", started.elapsed());
    let response = result.expect("a slower DRS is no failure");
    assert_eq!(response.failed, 0, "{:?}", response.outcomes);
    assert!(h.events_of("Extended Source Server Failed").is_empty());
    let summaries = h.events_of("Reconciliation Completed");
    let summary = &summaries[0]["Detail"];
    assert_eq!(summary["unfinished"][0]["reason"], "DEADLINE", "{summary}");
    assert_eq!(summary["created"], h.aws.world().extended().len());
}

/// Mechanism: `Paging`, which stops a listing on a token it followed already, or
/// past 200 pages, and says so in `unfinished`.
#[tokio::test]
async fn page_tokens_that_repeat_or_never_end_stop_the_listing_and_say_so() {
    for (tokens, reason) in [
        (PageTokens::Repeating, "PAGE_TOKEN_REPEATED"),
        (PageTokens::Endless, "TOO_MANY_PAGES"),
    ] {
        let mut world = World::new(TARGET_ACCOUNT);
        world.seed(STAGING_A, REGION, 20);
        world.page_tokens = tokens;
        let h = Harness::start(
            world,
            &[("STAGING_ACCOUNT_IDS", STAGING_A), ("DRS_MAX_RPS", "10000")],
        )
        .await;
        let started = Instant::now();
        let response = h.ok(event("scheduled-reconciliation")).await;
        let listings = h.aws.world().calls_of("ListExtensibleSourceServers").len();
        assert!(listings <= 210, "{tokens:?}: {listings} listings");
        let summary = &h.events_of("Reconciliation Completed")[0]["Detail"];
        assert_eq!(summary["unfinished"][0]["reason"], reason, "{summary}");
        assert_eq!(summary["complete"], false);
        assert_eq!(
            response["created"], 20,
            "{tokens:?}: what it saw, it extended"
        );
        // Coverage reads a listing of its own: what it saw, counted once, and the
        // rest said unread.
        let counted = summary["extended"].as_u64().unwrap();
        assert!(counted <= 20, "{tokens:?}: {counted} counted of 20");
        assert_eq!(
            summary["coverageUnread"][0]["errorCode"], reason,
            "{summary}"
        );
        eprintln!("{tokens:?}: {listings} listings in {:?}", started.elapsed());
    }
}

/// The CPU time this thread has used (the test's runtime runs every task here).
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // Fields after the command's closing parenthesis; utime and stime are 14 and 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// Mechanism: the flush timer is armed only while a send is free to take the
/// batch; with every send under way, a flush time already past would be ready
/// again and again.
#[tokio::test]
async fn a_slow_bus_with_every_send_under_way_costs_no_cpu_while_waiting() {
    let mut world = World::new(TARGET_ACCOUNT);
    world.seed(STAGING_A, REGION, 200);
    world.put_events_latency = Duration::from_secs(3);
    world.put_events_landing = Landing::OnArrival;
    let h = Harness::start_with(
        world,
        &[
            ("STAGING_ACCOUNT_IDS", STAGING_A),
            ("DRS_MAX_RPS", "1000"),
            // Places for 110 servers: eight sends of ten under way, and more waiting.
            ("RECONCILE_CONCURRENCY", "100"),
        ],
        drs_extender::CallPolicy::default(),
    )
    .await;
    let (cpu, wall) = (thread_cpu(), Instant::now());
    h.ok(event("scheduled-reconciliation")).await;
    let (cpu, wall) = (thread_cpu() - cpu, wall.elapsed());
    eprintln!("slow bus: {cpu:?} of CPU over {wall:?}");
    assert!(
        cpu < wall / 4,
        "{cpu:?} of CPU over {wall:?}: the stream spins while it waits"
    );
}

/// Mechanism: a read's pause before it is read again ends at `calls_by`. Every
/// listing here is answered with its body cut off, and the pauses (0.2, 0.4 and
/// 0.8 s) add up past this invocation's whole deadline. The attempt timeout is
/// short, so the connector lets a read go until just before `calls_by` (0.9 s):
/// the third read fails at 0.6 s, and its pause, uncut, would end at 1.4 s.
#[tokio::test]
async fn pauses_between_reads_are_cut_at_the_deadline() {
    let mut world = World::new(TARGET_ACCOUNT);
    world.seed(STAGING_A, REGION, 1);
    world.inject("ListExtensibleSourceServers", usize::MAX, Fault::CutShort);
    let policy = drs_extender::CallPolicy {
        attempt_timeout: Duration::from_millis(100),
        ..fast_policy()
    };
    let h = Harness::start_with(world, &[("STAGING_ACCOUNT_IDS", STAGING_A)], policy).await;
    let deadline = Duration::from_millis(1200);
    let started = Instant::now();
    let _ = h
        .app
        .handle(lambda_event(event("scheduled-reconciliation"), deadline))
        .await;
    let took = started.elapsed();
    assert!(took < deadline, "answered after {took:?} of {deadline:?}");
}

/// Mechanism: a PutEvents wait cut by the invocation's time teaches nothing of the
/// bus. A bus that answers in 6 s is learnt (the attempt timeout grows past 6 s);
/// an invocation with little time left must not shrink that back, or the next
/// one would time out on the same bus and send each event twice.
#[tokio::test]
async fn a_wait_cut_by_the_deadline_does_not_unlearn_a_slow_bus() {
    let mut world = World::new(TARGET_ACCOUNT);
    let servers = world.seed(STAGING_A, REGION, 3);
    world.put_events_latency = Duration::from_secs(6);
    let h = Harness::start_with(
        world,
        &[("STAGING_ACCOUNT_IDS", STAGING_A)],
        drs_extender::CallPolicy::default(),
    )
    .await;
    let puts = || h.aws.world().calls_of("PutEvents").len();
    // Learns the bus: a first attempt times out at 5 s, the next is answered.
    let _ = h.invoke(announcement(&servers[0], STAGING_A)).await;
    // Little time: its one wait is cut by the deadline, not by the bus.
    let _ = h
        .app
        .handle(lambda_event(
            announcement(&servers[1], STAGING_A),
            Duration::from_secs(3),
        ))
        .await;
    let before = puts();
    let response = h.ok(announcement(&servers[2], STAGING_A)).await;
    assert_eq!(statuses(&response), ["created"]);
    assert_eq!(
        puts() - before,
        1,
        "the outcome went out in one attempt: the slow bus was still known"
    );
}

/// Mechanism: the connector marks an attempt on the wire as it leaves, so one the
/// operation timeout drops mid-flight may have taken effect. Here every create
/// hangs past the operation timeout and takes effect after the deadline: it is
/// no "waited its turn, never sent" (`NotReached`), but a retryable failure.
#[tokio::test]
async fn a_create_dropped_on_the_wire_is_never_called_unsent() {
    let mut world = World::new(TARGET_ACCOUNT);
    let server = world.seed(STAGING_A, REGION, 1).remove(0);
    world.inject(
        "CreateExtendedSourceServer",
        usize::MAX,
        Fault::Delay(Duration::from_secs(10)),
    );
    let policy = drs_extender::CallPolicy {
        max_attempts: 1,
        attempt_timeout: Duration::from_secs(5),
        operation_timeout: Duration::from_secs(2),
        ..fast_policy()
    };
    let h = Harness::start_with(world, &[], policy).await;
    let result = h
        .app
        .handle(lambda_event(
            announcement(&server, STAGING_A),
            Duration::from_secs(7),
        ))
        .await;
    assert!(
        matches!(result, Err(InvocationError::RetryableFailures { .. })),
        "{result:?}"
    );
    assert_eq!(
        h.events_of("Extended Source Server Failed")[0]["Detail"]["errorCode"],
        "Timeout"
    );
}

/// Mechanism: a reply whose `Entries` do not answer the entries sent one for one
/// answers none of them. Here the bus drops a middle entry of each batch (it
/// does not land) and answers the rest: matched by position, each later entry
/// took its neighbour's result, the dropped one was called delivered, and the
/// invocation succeeded with servers extended and no event for them.
#[tokio::test]
async fn a_reply_missing_a_middle_entry_loses_no_event_silently() {
    let mut world = World::new(TARGET_ACCOUNT);
    world.seed(STAGING_A, REGION, 30);
    world.put_events_entries = EntriesReply::MiddleMissing;
    let h = Harness::start(
        world,
        &[("STAGING_ACCOUNT_IDS", STAGING_A), ("DRS_MAX_RPS", "1000")],
    )
    .await;
    let result = h.invoke(event("scheduled-reconciliation")).await;
    let copies = copies_by_server(&h);
    let without_event = h
        .aws
        .world()
        .extended()
        .iter()
        .filter(|e| !copies.contains_key(&e.staging_arn))
        .count();
    assert!(
        without_event > 0,
        "the bus kept one entry of each batch it answered short"
    );
    let Err(InvocationError::OutcomesUndelivered { undelivered, .. }) = result else {
        panic!(
            "{without_event} extended without an event, yet the invocation answered {:?} created",
            result.map(|r| r.created)
        );
    };
    assert!(
        undelivered >= without_event,
        "{without_event} without an event, {undelivered} counted undelivered"
    );
    assert_at_most_twice(&h, "");
}

/// Mechanism: any answer to PutEvents but a definite refusal (4xx) counts as
/// may-have-landed. Here every PutEvents takes effect and a gateway answers
/// 502 with an HTML page: no code to read. Counted only as a retryable
/// `Http502`, each event went out four times.
#[tokio::test]
async fn a_gateway_page_after_the_events_landed_never_makes_a_third_copy() {
    let mut world = World::new(TARGET_ACCOUNT);
    world.seed(STAGING_A, REGION, 30);
    world.inject("PutEvents", usize::MAX, Fault::GatewayPage);
    let h = Harness::start(
        world,
        &[("STAGING_ACCOUNT_IDS", STAGING_A), ("DRS_MAX_RPS", "1000")],
    )
    .await;
    let result = h.invoke(event("scheduled-reconciliation")).await;
    let Err(InvocationError::OutcomesUndelivered { cause, .. }) = &result else {
        panic!("no event was confirmed, so the invocation fails: {result:?}");
    };
    assert!(cause.contains("502"), "{cause}");
    let copies = copies_by_server(&h);
    assert!(!copies.is_empty(), "the events landed");
    assert_at_most_twice(&h, "");
}

/// Mechanism: an attempt that times out counts as may-have-landed, so an event
/// goes at most twice. The bus takes every entry and never answers: slower
/// than every attempt timeout (5 s, then 10, then 20). Without the count the
/// third attempt goes out at about 16 s and lands a third copy.
#[tokio::test]
async fn a_bus_slower_than_every_attempt_timeout_gets_each_event_at_most_twice() {
    let mut world = World::new(TARGET_ACCOUNT);
    let server = world.seed(STAGING_A, REGION, 1).remove(0);
    world.bus_never_answers = true;
    let h = Harness::start(world, &[]).await;
    let deadline = Duration::from_secs(40);
    let started = Instant::now();
    let result = h
        .app
        .handle(lambda_event(announcement(&server, STAGING_A), deadline))
        .await;
    let took = started.elapsed();
    assert!(took < deadline, "answered after {took:?} of {deadline:?}");
    assert!(
        matches!(result, Err(InvocationError::OutcomesUndelivered { .. })),
        "{result:?}"
    );
    assert_eq!(h.aws.world().extended().len(), 1);
    let created = h.events_of("Extended Source Server Created").len();
    assert!(
        (1..=2).contains(&created),
        "{created} copies of the outcome"
    );
}

/// Mechanism: the stop flag the stream sets when an event is given up, read by
/// the paced connector before every attempt of a create (and by the create
/// before each round). Creates here ride out throttling (a 4/s limit against
/// eight at once) when the bus refuses the first batch: none of them may send
/// another attempt after that. Checked once a server's task started, creates
/// under way went on being sent for seconds.
#[tokio::test]
async fn a_give_up_stops_creates_already_under_way() {
    let mut world = World::new(TARGET_ACCOUNT);
    world.seed(STAGING_A, REGION, 100);
    world.bus_refuses = true;
    world.drs_rate_limit = Some(4);
    world.drs_rate_burst = Some(1);
    let h = Harness::start(
        world,
        &[
            ("STAGING_ACCOUNT_IDS", STAGING_A),
            ("DRS_MAX_RPS", "1000"),
            ("RECONCILE_CONCURRENCY", "8"),
        ],
    )
    .await;
    let result = h.invoke(event("scheduled-reconciliation")).await;
    assert!(
        matches!(result, Err(InvocationError::OutcomesUndelivered { .. })),
        "{result:?}"
    );
    let world = h.aws.world();
    let given_up = world.calls_of("PutEvents")[0].at;
    // An attempt that passed the check as the refusal came back may arrive
    // just after it.
    let late = world
        .calls_of("CreateExtendedSourceServer")
        .iter()
        .filter(|c| c.at > given_up + Duration::from_millis(100))
        .count();
    assert_eq!(
        late, 0,
        "create attempts sent after the first event was given up"
    );
    let made = world.extended().len();
    assert!(made <= 8 + 10, "{made} extended without an event");
}

/// Mechanism: every PutEvents attempt, and the pause before it, is cut at the
/// time the invocation gives its events (`events_by`; `answer_by` for the
/// summary). The bus takes every entry and never answers, and a summary must
/// still go after the outcomes: uncut, the summary's attempt (20 s, learnt from
/// the outcomes' unanswered ones) held the invocation past its deadline.
#[tokio::test]
async fn a_bus_that_never_answers_does_not_hold_the_invocation_past_its_deadline() {
    let mut world = World::new(TARGET_ACCOUNT);
    world.seed(STAGING_A, REGION, 5);
    world.bus_never_answers = true;
    let h = Harness::start(
        world,
        &[("STAGING_ACCOUNT_IDS", STAGING_A), ("DRS_MAX_RPS", "1000")],
    )
    .await;
    let deadline = Duration::from_secs(20);
    let started = Instant::now();
    let result = h
        .app
        .handle(lambda_event(event("scheduled-reconciliation"), deadline))
        .await;
    let took = started.elapsed();
    assert!(took < deadline, "answered after {took:?} of {deadline:?}");
    assert!(
        matches!(result, Err(InvocationError::OutcomesUndelivered { .. })),
        "{result:?}"
    );
}
