//! Reconciliation extends every extensible server whatever DRS's opaque page
//! tokens mean: a cursor, an offset into the list that shrinks as servers are
//! extended, or a token that has expired by the time it is used. No server is
//! created twice in one run.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use local_aws::PageTokens;
use serde_json::json;

const STAGING_C: &str = "333344445555";
const PER_ACCOUNT: usize = 350;

async fn reconcile_three_accounts(tokens: PageTokens, ttl: Option<Duration>) {
    let mut world = World::new(TARGET_ACCOUNT);
    for account in [STAGING_A, STAGING_B, STAGING_C] {
        world.seed(account, REGION, PER_ACCOUNT);
    }
    world.page_tokens = tokens;
    world.token_ttl = ttl;
    let h = Harness::start(
        world,
        &[
            (
                "STAGING_ACCOUNT_IDS",
                &format!("{STAGING_A},{STAGING_B},{STAGING_C}"),
            ),
            ("DRS_MAX_RPS", "10000"),
            ("RECONCILE_CONCURRENCY", "32"),
        ],
    )
    .await;
    let case = format!("{tokens:?} tokens, ttl {ttl:?}");
    let response = h.ok(event("scheduled-reconciliation")).await;
    let all = 3 * PER_ACCOUNT;
    assert_eq!(response["created"], all, "{case}");
    assert_eq!(response["failed"], 0, "{case}");
    let summary = &response["reconciliation"];
    assert_eq!(summary["examined"], all, "{case}");
    assert_eq!(summary["complete"], true, "{case}: {summary}");

    let world = h.aws.world();
    assert_eq!(world.extended().len(), all, "{case}");
    assert_eq!(
        world.calls_of("CreateExtendedSourceServer").len(),
        all,
        "{case}: one create per server, none twice"
    );
    let reported: BTreeSet<String> = world
        .events()
        .iter()
        .filter(|e| e["DetailType"] == "Extended Source Server Created")
        .map(|e| e["Detail"]["stagingSourceServerArn"].to_string())
        .collect();
    assert_eq!(reported.len(), all, "{case}: one event per server");
}

#[tokio::test]
async fn cursor_tokens() {
    reconcile_three_accounts(PageTokens::Cursor, None).await;
}

#[tokio::test]
async fn offset_tokens_into_the_shrinking_list() {
    reconcile_three_accounts(PageTokens::Offset, None).await;
}

#[tokio::test]
async fn offset_tokens_that_expire_before_they_are_used() {
    reconcile_three_accounts(PageTokens::Offset, Some(Duration::ZERO)).await;
}

#[tokio::test]
async fn cursor_tokens_that_expire_before_they_are_used() {
    reconcile_three_accounts(PageTokens::Cursor, Some(Duration::ZERO)).await;
}

/// When DRS refuses every token and the first page holds only servers that fail
/// for good, the servers behind them cannot be reached: the run says so.
#[tokio::test]
async fn servers_beyond_a_refused_token_are_reported_unfinished() {
    let mut world = World::new(TARGET_ACCOUNT);
    let mut servers = world.seed(STAGING_A, REGION, 400);
    servers.sort();
    for arn in &servers[..300] {
        world.mark_default_ebs_key(arn);
    }
    world.token_ttl = Some(Duration::ZERO);
    let h = Harness::start(
        world,
        &[("STAGING_ACCOUNT_IDS", STAGING_A), ("DRS_MAX_RPS", "10000")],
    )
    .await;
    let response = h.ok(event("scheduled-reconciliation")).await;
    assert_eq!(response["failed"], 300);
    let summary = &response["reconciliation"];
    assert_eq!(summary["complete"], false);
    assert_eq!(
        summary["unfinished"],
        json!([{"stagingAccountId": STAGING_A, "region": REGION, "reason": "PAGE_TOKEN_REFUSED"}])
    );
    assert_eq!(
        h.aws.world().calls_of("CreateExtendedSourceServer").len(),
        300,
        "each failing server tried once"
    );
}
