//! The launch baseline (`LAUNCH_BASELINE`): applied to the servers an
//! invocation created, never to those it skipped; `matchSourceIp` picking the
//! one tagged subnet that holds the staging server's IP, read once a run; a
//! baseline that cannot be applied leaving the server `created`, counted and
//! said so in its event; the network interface kept whole whatever EC2 keeps
//! of a source version; a version EC2 warns about never made the default, and
//! what would not launch refused before anything is written. The kill bound is
//! in `tests/binary.rs`.

mod common;

use common::*;
use local_aws::{Fault, InterfaceInheritance, TemplateChecks, TemplateVersion, World};
use serde_json::{json, Value};

const CREATED: &str = "Extended Source Server Created";
const SUBNET_A: &str = "subnet-0000000a";
const SUBNET_B: &str = "subnet-0000000b";
const SUBNET_C: &str = "subnet-0000000c";
const SUBNET_E: &str = "subnet-0000000e";
const GROUP: &str = "sg-0000000f";

fn baseline(fields: Value) -> String {
    json!({"default": fields}).to_string()
}

/// The created event of each extended server, by extended id.
fn created_events(h: &Harness) -> std::collections::BTreeMap<String, Value> {
    h.events_of(CREATED)
        .into_iter()
        .map(|e| {
            let d = e["Detail"].clone();
            (d["extendedSourceServerId"].as_str().unwrap().to_owned(), d)
        })
        .collect()
}

fn calls_of(h: &Harness, operation: &str) -> Vec<Value> {
    h.aws
        .world()
        .calls()
        .iter()
        .filter(|c| c.operation == operation)
        .map(|c| c.body.clone())
        .collect()
}

fn with_network(mut world: World) -> World {
    world.add_subnet(REGION, SUBNET_A, "vpc-1", "10.0.1.0/24", "us-east-1a");
    world.add_security_group(REGION, GROUP, "vpc-1");
    world
}

#[tokio::test]
async fn a_baseline_is_applied_to_the_servers_created_and_to_no_other() {
    let mut world = with_network(World::new(TARGET_ACCOUNT));
    let staging = world.seed(STAGING_A, REGION, 3);
    // Extended before this invocation: it is skipped, and its settings are not ours.
    let theirs_arn = world.extend_directly(TARGET_ACCOUNT, &staging[0]).unwrap();
    // Without a default VPC a template naming no subnet would not launch: only
    // the baseline's subnet makes the created servers launchable.
    world.remove_default_vpc(REGION);
    let theirs_id = theirs_arn.rsplit('/').next().unwrap().to_owned();
    let fields = baseline(
        json!({"launchDisposition": "STARTED", "copyPrivateIp": true,
        "licensing": {"osByol": true}, "targetInstanceTypeRightSizingMethod": "IN_AWS",
        "subnetId": SUBNET_A, "securityGroupIds": [GROUP]}),
    );
    let vars = [
        ("STAGING_ACCOUNT_IDS", "111122223333,222233334444"),
        ("LAUNCH_BASELINE", fields.as_str()),
    ];
    let h = Harness::start(world, &vars).await;

    let response = h.ok(event("scheduled-reconciliation")).await;
    let summary = &response["reconciliation"];
    // DRS lists only servers not yet extended: the other one is not even tried.
    assert_eq!(summary["created"], 2, "{summary}");
    assert!(summary.get("launchBaselineFailed").is_none(), "{summary}");
    // The servers it created are launch-checked in the same run, as the baseline
    // left them; the one it did not create still names no subnet.
    assert_eq!(summary["launchChecked"], 3, "{summary}");
    assert_eq!(
        summary["launchNotReadyReasons"],
        json!({"NO_SUBNET": 1}),
        "{summary}"
    );

    let events = created_events(&h);
    assert_eq!(events.len(), 2);
    for (id, detail) in &events {
        assert_eq!(
            detail["launchBaseline"],
            json!({"applied": true}),
            "{detail}"
        );
        let mut world = h.aws.world();
        let config = world.launch_config_mut(id).unwrap().clone();
        assert_eq!(config.launch_disposition, "STARTED");
        assert_eq!(config.right_sizing, "IN_AWS");
        assert!(config.copy_private_ip && config.os_byol && config.copy_tags);
        let template = config.template_id.unwrap();
        assert_eq!(world.launch_template_versions(&template), 2);
        let version = world.launch_template_default(&template).unwrap();
        assert_eq!(version.subnet_id.as_deref(), Some(SUBNET_A));
        assert_eq!(version.security_group_ids, [GROUP]);
        assert_eq!(
            version.instance_type.as_deref(),
            Some("t3.small"),
            "inherited"
        );
    }
    // Asked for by name, it is skipped, and never written to: no write names
    // it, its template keeps its one version.
    let response = h.ok(announcement(&staging[0], STAGING_A)).await;
    assert_eq!(statuses(&response), ["skipped"]);
    assert!(response["outcomes"][0].get("launchBaseline").is_none());
    let updated: Vec<Value> = calls_of(&h, "UpdateLaunchConfiguration");
    assert_eq!(updated.len(), 2);
    assert!(updated
        .iter()
        .all(|b| b["sourceServerID"] != theirs_id.as_str()));
    {
        let mut world = h.aws.world();
        let template = world.launch_template_of(&theirs_id).unwrap();
        assert_eq!(world.launch_template_versions(&template), 1);
    }

    // The event path applies it too.
    let late = h.aws.world().seed(STAGING_B, REGION, 1);
    let response = h.ok(announcement(&late[0], STAGING_B)).await;
    assert_eq!(statuses(&response), ["created"]);
    assert_eq!(
        response["outcomes"][0]["launchBaseline"],
        json!({"applied": true})
    );

    // A dry run creates nothing, and so applies nothing.
    let before = calls_of(&h, "UpdateLaunchConfiguration").len();
    h.aws.world().seed(STAGING_A, REGION, 1);
    let mut e = event("reconciliation-requested");
    e["detail"] = json!({"stagingAccountIds": [STAGING_A], "dryRun": true});
    let response = h.ok(e).await;
    assert_eq!(response["reconciliation"]["skipped"], 1, "{response}");
    assert_eq!(calls_of(&h, "UpdateLaunchConfiguration").len(), before);
}

#[tokio::test]
async fn match_source_ip_picks_the_one_tagged_subnet_that_holds_the_staging_ip() {
    let mut world = with_network(World::new(TARGET_ACCOUNT));
    world.add_subnet(REGION, SUBNET_B, "vpc-1", "10.0.2.0/24", "us-east-1b");
    world.add_subnet(REGION, SUBNET_C, "vpc-1", "10.0.3.0/24", "us-east-1a");
    world.add_subnet(REGION, SUBNET_E, "vpc-2", "10.0.2.128/25", "us-east-1a");
    for subnet in [SUBNET_A, SUBNET_B, SUBNET_E] {
        world.tag_subnet(subnet, "drs-extender:launch-subnet", "site");
    }
    let staging = world.seed(STAGING_A, REGION, 4);
    // A, B only, B and E (ambiguous), only the untagged C.
    for (arn, ip) in staging
        .iter()
        .zip(["10.0.1.17", "10.0.2.5", "10.0.2.200", "10.0.3.9"])
    {
        world.set_source_ip(arn, ip);
    }
    let h = Harness::start(
        world,
        &[
            ("STAGING_ACCOUNT_IDS", STAGING_A),
            (
                "LAUNCH_BASELINE",
                &baseline(json!({"subnetId": "matchSourceIp"})),
            ),
        ],
    )
    .await;
    let response = h.ok(event("scheduled-reconciliation")).await;
    let summary = &response["reconciliation"];
    assert_eq!(summary["created"], 4, "{summary}");
    assert_eq!(summary["launchBaselineFailed"], 2, "{summary}");
    assert_eq!(response["launchBaselineFailed"], 2);
    assert!(summary["complete"].as_bool().unwrap(), "{summary}");

    let world = h.aws.world();
    let extended: std::collections::BTreeMap<&str, &str> = world
        .extended()
        .iter()
        .map(|e| (e.staging_arn.as_str(), e.id.as_str()))
        .collect();
    let ids: Vec<String> = staging
        .iter()
        .map(|s| extended[s.as_str()].to_owned())
        .collect();
    drop(world);
    let events = created_events(&h);
    let outcome = |i: usize| events[&ids[i]]["launchBaseline"].clone();
    assert_eq!(outcome(0), json!({"applied": true}));
    assert_eq!(outcome(1), json!({"applied": true}));
    assert_eq!(
        outcome(2),
        json!({"applied": false, "errorCode": "AMBIGUOUS_SUBNET"})
    );
    assert_eq!(
        outcome(3),
        json!({"applied": false, "errorCode": "NO_MATCHING_SUBNET"})
    );
    let mut world = h.aws.world();
    let subnet_of = |world: &mut World, id: &str| {
        let template = world.launch_template_of(id).unwrap();
        let versions = world.launch_template_versions(&template);
        let subnet = world
            .launch_template_default(&template)
            .unwrap()
            .subnet_id
            .clone();
        (versions, subnet)
    };
    assert_eq!(
        subnet_of(&mut world, &ids[0]),
        (2, Some(SUBNET_A.to_owned()))
    );
    assert_eq!(
        subnet_of(&mut world, &ids[1]),
        (2, Some(SUBNET_B.to_owned()))
    );
    // Not applied: nothing written.
    assert_eq!(subnet_of(&mut world, &ids[2]), (1, None));
    assert_eq!(subnet_of(&mut world, &ids[3]), (1, None));
    drop(world);
    // The tagged subnets were read once for the run, by tag key.
    let reads: Vec<Value> = h
        .aws
        .world()
        .calls()
        .iter()
        .filter(|c| c.operation == "DescribeSubnets" && c.body.to_string().contains("tag-key"))
        .map(|c| c.body.clone())
        .collect();
    assert_eq!(reads.len(), 1, "{reads:?}");
}

#[tokio::test]
async fn a_baseline_that_cannot_be_applied_leaves_the_server_created_and_says_why() {
    let mut world = with_network(World::new(TARGET_ACCOUNT));
    world.seed(STAGING_A, REGION, 3);
    world.ec2_refuses_writes = true;
    // DRS refuses the first update; the SDK does not retry a 400.
    world.inject(
        "UpdateLaunchConfiguration",
        1,
        Fault::Error {
            status: 400,
            code: "ValidationException".into(),
            message: "refused".into(),
            retry_after: None,
        },
    );
    let h = Harness::start(
        world,
        &[
            ("STAGING_ACCOUNT_IDS", STAGING_A),
            (
                "LAUNCH_BASELINE",
                &baseline(json!({"copyTags": false, "securityGroupIds": [GROUP]})),
            ),
        ],
    )
    .await;
    let response = h.ok(event("scheduled-reconciliation")).await;
    let summary = &response["reconciliation"];
    assert_eq!(summary["created"], 3, "{summary}");
    assert_eq!(summary["failed"], 0);
    assert_eq!(summary["launchBaselineFailed"], 3, "{summary}");
    assert!(summary["complete"].as_bool().unwrap());
    let mut codes: Vec<String> = created_events(&h)
        .values()
        .map(|d| {
            assert_eq!(d["launchBaseline"]["applied"], false, "{d}");
            d["launchBaseline"]["errorCode"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        [
            "UnauthorizedOperation",
            "UnauthorizedOperation",
            "ValidationException"
        ]
    );
}

#[tokio::test]
async fn the_primary_interface_is_kept_whole_whatever_ec2_keeps_of_a_source_version() {
    for inheritance in [InterfaceInheritance::Replace, InterfaceInheritance::Merge] {
        let mut world = with_network(World::new(TARGET_ACCOUNT));
        world.template_interfaces = inheritance;
        // DRS makes templates whose interface has a subnet and private IP.
        world.make_templates_like(TemplateVersion {
            subnet_id: Some(SUBNET_A.into()),
            private_ip: Some("10.0.1.50".into()),
            instance_type: Some("t3.small".into()),
            ..TemplateVersion::default()
        });
        let staging = world.seed(STAGING_A, REGION, 1);
        let h = Harness::start(
            world,
            &[
                ("STAGING_ACCOUNT_IDS", STAGING_A),
                (
                    "LAUNCH_BASELINE",
                    &baseline(json!({"securityGroupIds": [GROUP]})),
                ),
            ],
        )
        .await;
        let response = h.ok(announcement(&staging[0], STAGING_A)).await;
        let outcome = &response["outcomes"][0];
        assert_eq!(
            outcome["launchBaseline"],
            json!({"applied": true}),
            "{inheritance:?}"
        );
        let id = outcome["extendedSourceServerId"].as_str().unwrap();
        let mut world = h.aws.world();
        let template = world.launch_template_of(id).unwrap();
        let version = world.launch_template_default(&template).unwrap().clone();
        assert_eq!(
            version,
            TemplateVersion {
                subnet_id: Some(SUBNET_A.into()),
                security_group_ids: vec![GROUP.into()],
                private_ip: Some("10.0.1.50".into()),
                instance_type: Some("t3.small".into()),
                instance_groups: vec![],
            },
            "{inheritance:?}"
        );
    }
}

/// One server announced under `fields`, in a world `prepare` changed: its
/// `launchBaseline`, and its template's versions and default afterwards.
async fn announced_under(
    fields: Value,
    prepare: impl FnOnce(&mut World),
) -> (Value, usize, TemplateVersion) {
    let mut world = with_network(World::new(TARGET_ACCOUNT));
    prepare(&mut world);
    let staging = world.seed(STAGING_A, REGION, 1);
    let h = Harness::start(
        world,
        &[
            ("STAGING_ACCOUNT_IDS", STAGING_A),
            ("LAUNCH_BASELINE", &baseline(fields)),
        ],
    )
    .await;
    let response = h.ok(announcement(&staging[0], STAGING_A)).await;
    let outcome = &response["outcomes"][0];
    assert_eq!(outcome["status"], "created", "{outcome}");
    let id = outcome["extendedSourceServerId"].as_str().unwrap();
    let mut world = h.aws.world();
    let template = world.launch_template_of(id).unwrap();
    let versions = world.launch_template_versions(&template);
    let default = world.launch_template_default(&template).unwrap().clone();
    (outcome["launchBaseline"].clone(), versions, default)
}

#[tokio::test]
async fn a_version_ec2_finds_not_valid_is_never_made_the_default() {
    // EC2's model: the version is made and each issue is in its `warning`; a
    // refusal is the other plausible answer. Neither changes the default.
    for checks in [TemplateChecks::Warn, TemplateChecks::Refuse] {
        let (result, versions, default) =
            announced_under(json!({"securityGroupIds": ["sg-000000aa"]}), |w| {
                w.template_checks = checks
            })
            .await;
        assert_eq!(
            result,
            json!({"applied": false, "errorCode": "InvalidGroup.NotFound"}),
            "{checks:?}"
        );
        let made = if checks == TemplateChecks::Warn { 2 } else { 1 };
        assert_eq!(versions, made, "{checks:?}");
        assert!(
            default.security_group_ids.is_empty(),
            "{checks:?}: {default:?}"
        );
    }
}

#[tokio::test]
async fn what_would_not_launch_is_refused_before_anything_is_written() {
    // A subnet that does not exist.
    let (result, versions, _) =
        announced_under(json!({"subnetId": "subnet-000000ff"}), |_| {}).await;
    assert_eq!(
        result,
        json!({"applied": false, "errorCode": "SUBNET_NOT_FOUND"})
    );
    assert_eq!(versions, 1);
    // The template keeps a private address the new subnet cannot hold.
    let (result, versions, default) = announced_under(json!({"subnetId": SUBNET_B}), |w| {
        w.add_subnet(REGION, SUBNET_B, "vpc-1", "10.0.2.0/24", "us-east-1a");
        w.make_templates_like(TemplateVersion {
            subnet_id: Some(SUBNET_A.into()),
            private_ip: Some("10.0.1.50".into()),
            ..TemplateVersion::default()
        });
    })
    .await;
    assert_eq!(
        result,
        json!({"applied": false, "errorCode": "PRIVATE_IP_OUTSIDE_SUBNET"})
    );
    assert_eq!(
        (versions, default.subnet_id.as_deref()),
        (1, Some(SUBNET_A))
    );
    // Groups on the instance, which a version from it cannot drop.
    let (result, versions, _) = announced_under(json!({"subnetId": SUBNET_A}), |w| {
        w.make_templates_like(TemplateVersion {
            instance_groups: vec![GROUP.into()],
            ..TemplateVersion::default()
        });
    })
    .await;
    assert_eq!(
        result,
        json!({"applied": false, "errorCode": "GROUPS_OUTSIDE_INTERFACE"})
    );
    assert_eq!(versions, 1);
    // The same subnet move with an address it holds goes through.
    let (result, versions, default) = announced_under(json!({"subnetId": SUBNET_B}), |w| {
        w.add_subnet(REGION, SUBNET_B, "vpc-1", "10.0.0.0/16", "us-east-1a");
        w.make_templates_like(TemplateVersion {
            subnet_id: Some(SUBNET_A.into()),
            private_ip: Some("10.0.1.50".into()),
            ..TemplateVersion::default()
        });
    })
    .await;
    assert_eq!(result, json!({"applied": true}));
    assert_eq!(
        (versions, default.subnet_id.as_deref()),
        (2, Some(SUBNET_B))
    );
}
