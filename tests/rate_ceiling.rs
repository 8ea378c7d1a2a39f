//! `DRS_MAX_RPS` bounds every request the local DRS receives, the SDK's retries
//! included, through a storm of server errors and throttles; and every server
//! still ends in one outcome.

mod common;

use std::time::{Duration, Instant};

use common::*;
use drs_extender::CallPolicy;

/// The most requests received in any one-second window.
fn busiest_second(mut times: Vec<Instant>) -> usize {
    times.sort();
    let mut busiest = 0;
    let mut first = 0;
    for (last, at) in times.iter().enumerate() {
        while *at - times[first] >= Duration::from_secs(1) {
            first += 1;
        }
        busiest = busiest.max(last - first + 1);
    }
    busiest
}

#[tokio::test]
async fn the_ceiling_holds_on_the_wire_through_a_storm_of_errors_and_throttles() {
    const MAX_RPS: usize = 20;
    let mut world = World::new(TARGET_ACCOUNT);
    world.seed(STAGING_A, REGION, 40);
    world.seed(STAGING_B, REGION, 40);
    // The service's own limit is above the ceiling: every throttle here is
    // injected, and retries must not push the rate past the ceiling.
    world.drs_rate_limit = Some(40);
    world.inject(
        "CreateExtendedSourceServer",
        15,
        Fault::error(500, "InternalServerException"),
    );
    world.inject("CreateExtendedSourceServer", 15, Fault::throttling(0));
    world.inject(
        "ListExtensibleSourceServers",
        2,
        Fault::error(503, "ServiceUnavailableException"),
    );
    let h = Harness::start_with(
        world,
        &[
            ("STAGING_ACCOUNT_IDS", "111122223333,222233334444"),
            ("DRS_MAX_RPS", &MAX_RPS.to_string()),
            ("RECONCILE_CONCURRENCY", "16"),
        ],
        CallPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            operation_timeout: Duration::from_secs(30),
            ..fast_policy()
        },
    )
    .await;
    let response = h.ok(event("scheduled-reconciliation")).await;
    assert_eq!(response["created"], 80, "{}", response["outcomes"]);

    let world = h.aws.world();
    let drs: Vec<Instant> = world
        .calls()
        .iter()
        // DRS's own: EC2's launch-check reads and Service Quotas are other services.
        .filter(|c| c.is_drs())
        .map(|c| c.at)
        .collect();
    assert!(drs.len() > 80 + 30, "the storm was retried through");
    // One more than the ceiling for what arrives late: the pace spaces requests
    // as they leave, and their arrival here jitters by a few milliseconds.
    let busiest = busiest_second(drs);
    assert!(
        busiest <= MAX_RPS + 1,
        "{busiest} DRS requests in one second against a ceiling of {MAX_RPS}"
    );
}
