//! Launch readiness: each reason found from what DRS and EC2 hold, EC2's reads
//! shared across servers, an unknown id found by splitting a batch (under each
//! answer EC2 may give), the rotation reaching every server within the stated
//! number of runs, and EC2 refusing or slow leaving servers unchecked and the
//! run complete.

mod common;

use std::collections::BTreeSet;

use common::*;
use local_aws::{default_vpc_id, Ec2UnknownIds, World};
use serde_json::{json, Value};

const DETAIL_TYPE: &str = "Extended Source Server Launch Not Ready";

fn scheduled(hours: u64) -> Value {
    let mut e = event("scheduled-reconciliation");
    let at = 1_796_083_200 + hours * 3_600; // 2026-12-01T00:00:00Z
    let time = aws_smithy_types::DateTime::from_secs(at as i64)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap();
    e["time"] = json!(time);
    e["detail"] = json!({"periodSeconds": 3600});
    e
}

/// A world with `n` staging servers of STAGING_A, extended by a first run, and
/// a VPC with one subnet and two groups (one of another VPC). Answers the
/// harness and the extended servers' ids, in the order of their staging ARNs.
async fn extended(n: usize, world: World, vars: &[(&str, &str)]) -> (Harness, Vec<String>) {
    let mut world = world;
    world.seed(STAGING_A, REGION, n);
    world.add_subnet(REGION, "subnet-a", "vpc-1", "10.0.1.0/24", "us-east-1a");
    world.add_security_group(REGION, "sg-1", "vpc-1");
    world.add_security_group(REGION, "sg-2", "vpc-2");
    let mut all = vec![("STAGING_ACCOUNT_IDS", STAGING_A)];
    all.extend_from_slice(vars);
    let h = Harness::start(world, &all).await;
    let first = h.ok(scheduled(0)).await;
    assert_eq!(first["reconciliation"]["created"], n, "{first}");
    let mut servers: Vec<(String, String)> = h
        .aws
        .world()
        .extended()
        .iter()
        .map(|e| (e.staging_arn.clone(), e.id.clone()))
        .collect();
    servers.sort();
    (h, servers.into_iter().map(|(_, id)| id).collect())
}

fn template(h: &Harness, server: &str) -> String {
    h.aws.world().launch_template_of(server).unwrap()
}

fn place(h: &Harness, server: &str, subnet: Option<&str>, groups: &[&str]) {
    let id = template(h, server);
    let mut world = h.aws.world();
    let version = world.launch_template_default_mut(&id).unwrap();
    version.subnet_id = subnet.map(str::to_owned);
    version.security_group_ids = groups.iter().map(|g| (*g).to_owned()).collect();
}

fn launch_reasons(summary: &Value) -> Value {
    summary["launchNotReadyReasons"].clone()
}

fn checked_servers(h: &Harness, from: usize) -> BTreeSet<String> {
    h.aws.world().calls()[from..]
        .iter()
        .filter(|c| c.operation == "GetLaunchConfiguration")
        .filter_map(|c| c.body["sourceServerID"].as_str().map(str::to_owned))
        .collect()
}

fn calls_since(h: &Harness, from: usize, operation: &str) -> usize {
    h.aws.world().calls()[from..]
        .iter()
        .filter(|c| c.operation == operation)
        .count()
}

#[tokio::test]
async fn each_reason_is_found_and_reported() {
    let (h, s) = extended(7, World::new(TARGET_ACCOUNT), &[]).await;
    h.aws.world().launch_config_mut(&s[0]).unwrap().template_id = None;
    let gone = template(&h, &s[1]);
    h.aws.world().delete_launch_template(&gone);
    place(&h, &s[2], Some("subnet-gone"), &["sg-1"]);
    place(&h, &s[3], Some("subnet-a"), &["sg-2"]);
    place(&h, &s[4], Some("subnet-a"), &["sg-1"]);
    {
        let mut world = h.aws.world();
        world.launch_config_mut(&s[4]).unwrap().copy_private_ip = true;
        let staging = world
            .extended()
            .iter()
            .find(|e| e.id == s[4])
            .unwrap()
            .staging_arn
            .clone();
        world.set_source_ip(&staging, "10.9.0.5");
    }
    place(&h, &s[5], Some("subnet-a"), &["sg-1"]);
    {
        let id = template(&h, &s[5]);
        let mut world = h.aws.world();
        world.launch_config_mut(&s[5]).unwrap().right_sizing = "NONE".into();
        world
            .launch_template_default_mut(&id)
            .unwrap()
            .instance_type = Some("p4d.24xlarge".into());
    }
    place(&h, &s[6], Some("subnet-a"), &["sg-1"]);

    let response = h.ok(scheduled(1)).await;
    let summary = &response["reconciliation"];
    assert_eq!(summary["launchChecked"], 7, "{summary}");
    assert_eq!(summary["launchNotReady"], 6);
    assert_eq!(summary["launchUnchecked"], 0);
    assert_eq!(
        launch_reasons(summary),
        json!({"NO_LAUNCH_TEMPLATE": 2, "SUBNET_NOT_FOUND": 1, "SECURITY_GROUP_NOT_IN_VPC": 1,
               "PRIVATE_IP_OUTSIDE_SUBNET": 1, "INSTANCE_TYPE_NOT_OFFERED": 1})
    );
    let scope = &response["coverage"][0];
    assert_eq!(scope["launchChecked"], 7);
    assert_eq!(scope["launchNotReady"], 6);
    assert_eq!(launch_reasons(scope), launch_reasons(summary));
    assert!(summary["complete"].as_bool().unwrap());

    let events = h.events_of(DETAIL_TYPE);
    assert_eq!(events.len(), 6);
    let by_server = |id: &str| {
        events
            .iter()
            .find(|e| {
                e["Detail"]["extendedSourceServerArn"]
                    .as_str()
                    .unwrap()
                    .ends_with(id)
            })
            .map(|e| e["Detail"].clone())
    };
    let d = by_server(&s[2]).unwrap();
    assert_eq!(d["launchReason"], "SUBNET_NOT_FOUND");
    assert_eq!(d["subnetId"], "subnet-gone");
    assert_eq!(d["ec2LaunchTemplateId"], template(&h, &s[2]));
    assert_eq!(d["stagingAccountId"], STAGING_A);
    assert_eq!(d["region"], REGION);
    assert!(d["stagingSourceServerArn"]
        .as_str()
        .unwrap()
        .contains(STAGING_A));
    assert_eq!(d["trigger"]["detailType"], "Scheduled Event");
    let d = by_server(&s[0]).unwrap();
    assert_eq!(d["launchReason"], "NO_LAUNCH_TEMPLATE");
    assert!(d.get("ec2LaunchTemplateId").is_none());
    assert_eq!(
        by_server(&s[4]).unwrap()["launchReason"],
        "PRIVATE_IP_OUTSIDE_SUBNET"
    );
    assert_eq!(
        by_server(&s[5]).unwrap()["launchReason"],
        "INSTANCE_TYPE_NOT_OFFERED"
    );
    assert!(
        by_server(&s[6]).is_none(),
        "a launchable server gets no event"
    );
}

#[tokio::test]
async fn no_subnet_where_the_region_has_no_default_vpc() {
    let (h, s) = extended(3, World::new(TARGET_ACCOUNT), &[]).await;
    place(&h, &s[0], Some("subnet-a"), &["sg-1"]);
    // A template naming no subnet launches into the default VPC: its groups must be there.
    place(&h, &s[1], None, &["sg-1"]);
    let response = h.ok(scheduled(1)).await;
    assert_eq!(
        launch_reasons(&response["reconciliation"]),
        json!({"SECURITY_GROUP_NOT_IN_VPC": 1})
    );
    h.aws
        .world()
        .add_security_group(REGION, "sg-d", &default_vpc_id(REGION));
    place(&h, &s[1], None, &["sg-d"]);
    let response = h.ok(scheduled(2)).await;
    assert_eq!(response["reconciliation"]["launchNotReady"], 0);

    h.aws.world().remove_default_vpc(REGION);
    let response = h.ok(scheduled(3)).await;
    let summary = &response["reconciliation"];
    assert_eq!(
        launch_reasons(summary),
        json!({"NO_SUBNET": 2}),
        "{summary}"
    );
    assert_eq!(summary["launchChecked"], 3);
}

#[tokio::test]
async fn ec2_reads_are_shared_across_servers() {
    let (h, s) = extended(30, World::new(TARGET_ACCOUNT), &[]).await;
    for server in &s {
        place(&h, server, Some("subnet-a"), &["sg-1"]);
    }
    let from = h.aws.world().calls().len();
    let response = h.ok(scheduled(1)).await;
    assert_eq!(response["reconciliation"]["launchChecked"], 30);
    assert_eq!(calls_since(&h, from, "GetLaunchConfiguration"), 30);
    assert_eq!(calls_since(&h, from, "DescribeLaunchTemplateVersions"), 30);
    assert_eq!(
        calls_since(&h, from, "DescribeSubnets"),
        1,
        "one subnet, read once a run"
    );
    assert_eq!(calls_since(&h, from, "DescribeSecurityGroups"), 1);
    assert_eq!(
        calls_since(&h, from, "DescribeVpcs"),
        0,
        "no template relies on the default VPC"
    );
}

/// Twenty servers, each in a subnet of its own; two of the subnets are gone.
async fn unknown_subnets(unknown_ids: Ec2UnknownIds) -> (Harness, Vec<String>, usize) {
    let mut world = World::new(TARGET_ACCOUNT);
    world.ec2_unknown_ids = unknown_ids;
    let (h, s) = extended(20, world, &[]).await;
    for (i, server) in s.iter().enumerate() {
        let subnet = format!("subnet-{i:02}");
        if i != 7 && i != 13 {
            h.aws
                .world()
                .add_subnet(REGION, &subnet, "vpc-1", "10.0.1.0/24", "us-east-1a");
        }
        place(&h, server, Some(&subnet), &["sg-1"]);
    }
    let from = h.aws.world().calls().len();
    let response = h.ok(scheduled(1)).await;
    let summary = &response["reconciliation"];
    assert_eq!(summary["launchChecked"], 20, "{summary}");
    assert_eq!(launch_reasons(summary), json!({"SUBNET_NOT_FOUND": 2}));
    let missing: BTreeSet<String> = h
        .events_of(DETAIL_TYPE)
        .iter()
        .map(|e| e["Detail"]["subnetId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        missing,
        ["subnet-07".to_owned(), "subnet-13".to_owned()].into()
    );
    let calls = calls_since(&h, from, "DescribeSubnets");
    (h, s, calls)
}

#[tokio::test]
async fn an_unknown_id_is_found_by_splitting_the_batch() {
    let (_, _, calls) = unknown_subnets(Ec2UnknownIds::FailCall).await;
    // Two unknown ids among 20: at most two paths of halvings (2 * 2 * log2(20)) and the first call.
    assert!((3..=21).contains(&calls), "{calls} DescribeSubnets calls");
}

#[tokio::test]
async fn an_unknown_id_left_out_of_an_answer_is_not_found_too() {
    let (_, _, calls) = unknown_subnets(Ec2UnknownIds::Omitted).await;
    assert_eq!(calls, 1);
}

#[tokio::test]
async fn the_rotation_checks_every_server_within_the_stated_runs() {
    // 25 servers, 10 a run: every one within ceil(25 / 10) = 3 consecutive runs.
    let (h, s) = extended(
        25,
        World::new(TARGET_ACCOUNT),
        &[("LAUNCH_CHECKS_PER_RUN", "10")],
    )
    .await;
    let all: BTreeSet<String> = s.iter().cloned().collect();
    for start in [1_u64, 2, 17] {
        let mut seen = BTreeSet::new();
        for hour in start..start + 3 {
            let from = h.aws.world().calls().len();
            let response = h.ok(scheduled(hour)).await;
            let checked = checked_servers(&h, from);
            assert!(checked.len() <= 10, "{} checked in one run", checked.len());
            assert_eq!(response["reconciliation"]["launchChecked"], checked.len());
            seen.extend(checked);
        }
        assert_eq!(seen, all, "runs {start}..{}", start + 3);
    }
    // A retry of a run checks the same servers: its turn is the schedule's time.
    let from = h.aws.world().calls().len();
    h.ok(scheduled(5)).await;
    let first = checked_servers(&h, from);
    let from = h.aws.world().calls().len();
    h.ok(scheduled(5)).await;
    assert_eq!(checked_servers(&h, from), first);
}

#[tokio::test]
async fn the_servers_a_run_extends_are_checked_besides_its_turn() {
    let mut world = World::new(TARGET_ACCOUNT);
    world.seed(STAGING_A, REGION, 4);
    let h = Harness::start(
        world,
        &[
            ("STAGING_ACCOUNT_IDS", STAGING_A),
            ("LAUNCH_CHECKS_PER_RUN", "1"),
        ],
    )
    .await;
    let response = h.ok(scheduled(0)).await;
    assert_eq!(response["reconciliation"]["created"], 4);
    assert_eq!(response["reconciliation"]["launchChecked"], 4);
    let response = h.ok(scheduled(1)).await;
    assert_eq!(response["reconciliation"]["launchChecked"], 1);
}

#[tokio::test]
async fn zero_checks_a_run_turns_the_check_off() {
    let (h, _) = extended(
        3,
        World::new(TARGET_ACCOUNT),
        &[("LAUNCH_CHECKS_PER_RUN", "0")],
    )
    .await;
    let response = h.ok(scheduled(1)).await;
    assert_eq!(response["reconciliation"]["launchChecked"], 0);
    assert_eq!(h.aws.world().calls_of("GetLaunchConfiguration").len(), 0);
    assert_eq!(h.aws.world().calls_of("DescribeSubnets").len(), 0);
}

#[tokio::test]
async fn ec2_refusing_leaves_servers_unchecked_and_the_run_complete() {
    let (h, s) = extended(5, World::new(TARGET_ACCOUNT), &[]).await;
    for server in &s {
        place(&h, server, Some("subnet-gone"), &["sg-1"]);
    }
    h.aws.world().ec2_refuses = true;
    let response = h.ok(scheduled(1)).await;
    let summary = &response["reconciliation"];
    assert_eq!(summary["launchChecked"], 0, "{summary}");
    assert_eq!(summary["launchUnchecked"], 5);
    assert_eq!(summary["launchNotReady"], 0);
    assert!(summary["complete"].as_bool().unwrap());
    assert!(h.events_of(DETAIL_TYPE).is_empty());

    // EC2 answering only subnets' reads with a server error: the rest is
    // still judged, nothing is called not found.
    h.aws.world().ec2_refuses = false;
    h.aws
        .world()
        .inject("DescribeSubnets", 100, Fault::error(503, "Unavailable"));
    let response = h.ok(scheduled(2)).await;
    let summary = &response["reconciliation"];
    assert_eq!(summary["launchUnchecked"], 5, "{summary}");
    assert_eq!(summary["launchNotReady"], 0);
    assert!(summary["complete"].as_bool().unwrap());
}

#[tokio::test]
async fn a_slow_ec2_is_cut_by_the_deadline_and_the_run_answers() {
    let (h, s) = extended(5, World::new(TARGET_ACCOUNT), &[]).await;
    for server in &s {
        place(&h, server, Some("subnet-a"), &["sg-1"]);
    }
    h.aws.world().inject(
        "DescribeLaunchTemplateVersions",
        1_000,
        Fault::Delay(std::time::Duration::from_secs(30)),
    );
    let started = std::time::Instant::now();
    let response = h
        .app
        .handle(lambda_event(
            scheduled(1),
            std::time::Duration::from_secs(12),
        ))
        .await
        .unwrap();
    let response = serde_json::to_value(response).unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(12));
    let summary = &response["reconciliation"];
    assert_eq!(summary["launchUnchecked"], 5, "{summary}");
    assert_eq!(summary["launchNotReady"], 0);
}

#[tokio::test]
async fn launch_not_ready_events_stop_at_100_the_rest_counted() {
    let (h, s) = extended(120, World::new(TARGET_ACCOUNT), &[]).await;
    for server in &s {
        h.aws.world().launch_config_mut(server).unwrap().template_id = None;
    }
    let response = h.ok(scheduled(1)).await;
    let summary = &response["reconciliation"];
    assert_eq!(summary["launchNotReady"], 120);
    assert_eq!(summary["launchNotReadyUnsent"], 20);
    assert_eq!(h.events_of(DETAIL_TYPE).len(), 100);
}
