//! Property tests: classification never panics and always decides exactly one
//! thing; every ARN built validates against the service model's pattern and
//! round-trips; parsing arbitrary text never panics.

use drs_extender::domain::arn::{AccountId, Region, SourceServerArn, SourceServerId};
use drs_extender::inbound::classify::{classify, Request};
use proptest::prelude::*;
use regex::Regex;
use serde_json::{json, Value};

/// The model's `SourceServerARN` pattern, anchored as the API reference gives it.
fn model_pattern() -> Regex {
    Regex::new(r"^arn:(?:[0-9a-zA-Z_-]+:){3}([0-9]{12,}):source-server/(s-[0-9a-zA-Z]{17})$")
        .unwrap()
}

fn region() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "us", "eu", "ap", "cn", "us-gov", "us-iso", "us-isob", "eu-isoe", "eusc-de", "il", "me",
        ]),
        prop::sample::select(vec![
            "east",
            "west",
            "north",
            "south",
            "central",
            "northeast",
            "southeast",
        ]),
        1u8..=14,
    )
        .prop_map(|(prefix, direction, n)| format!("{prefix}-{direction}-{n}"))
}

fn account() -> impl Strategy<Value = String> {
    "[0-9]{12}"
}

fn server_id() -> impl Strategy<Value = String> {
    "s-[0-9a-zA-Z]{17}"
}

/// Strings that are sometimes valid, sometimes near misses, sometimes anything.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        account(),
        server_id(),
        region(),
        (region(), account(), server_id())
            .prop_map(|(r, a, i)| format!("arn:aws:drs:{r}:{a}:source-server/{i}")),
        "arn:[a-z-]{0,8}:[a-z]{0,4}:[a-z0-9-]{0,14}:[0-9]{10,13}:[a-z-]{0,15}/.{0,20}",
        ".{0,40}",
        "\\PC{0,300}",
    ]
}

/// JSON values that sometimes have the right type and sometimes not.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("sourceServerArn".to_owned()),
                    Just("sourceServerId".to_owned()),
                    Just("stagingAccountId".to_owned()),
                    Just("region".to_owned()),
                    Just("tags".to_owned()),
                    Just("stagingAccountIds".to_owned()),
                    Just("regions".to_owned()),
                    Just("dryRun".to_owned()),
                    Just("eventName".to_owned()),
                    Just("responseElements".to_owned()),
                    Just("sourceServerID".to_owned()),
                    Just("arn".to_owned()),
                    "[a-zA-Z]{1,10}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn envelope() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            Just("aws.drs"),
            Just("aws.events"),
            Just("aws.scheduler"),
            Just("org.tooling"),
            Just("aws.ec2")
        ],
        prop_oneof![
            Just("AWS API Call via CloudTrail"),
            Just("Staging Source Server Added"),
            Just("Reconciliation Requested"),
            Just("Scheduled Event"),
            Just("DRS Source Server Launch Result"),
            Just("Other"),
        ],
        prop_oneof![account().prop_map(Value::from), value()],
        prop_oneof![region().prop_map(Value::from), value()],
        prop::collection::vec(text(), 0..4),
        value(),
        any::<bool>(),
    )
        .prop_map(
            |(source, detail_type, account, region, resources, detail, registration)| {
                let detail = if registration {
                    json!({"eventName": "CreateSourceServerForDrs", "responseElements": detail,
                       "recipientAccountId": account.clone(), "awsRegion": region.clone()})
                } else {
                    detail
                };
                json!({"version": "0", "id": "p", "source": source, "detail-type": detail_type,
                   "account": account, "region": region, "resources": resources, "detail": detail})
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn every_envelope_is_classified_once_without_panicking(payload in prop_oneof![envelope(), value()]) {
        let classified = classify(&payload);
        // Whatever it decided, every server it names is a valid ARN that round-trips.
        if let Request::Servers(servers) = &classified.request {
            prop_assert!(!servers.is_empty());
            for server in servers.iter().flatten() {
                let text = server.arn.to_string();
                prop_assert!(model_pattern().is_match(&text), "{}", text);
                prop_assert_eq!(&SourceServerArn::parse(&text).unwrap(), &server.arn);
            }
            for rejection in servers.iter().filter_map(|s| s.as_ref().err()) {
                prop_assert!(!rejection.reason.contains('\n'));
            }
        }
        if let Request::Rejected(rejection) = &classified.request {
            prop_assert!(!rejection.reason.is_empty() && !rejection.reason.contains('\n'));
        }
    }

    #[test]
    fn built_arns_match_the_model_and_round_trip(region in region(), account in account(), id in server_id()) {
        let arn = SourceServerArn::new(
            Region::parse(&region).unwrap(),
            AccountId::parse(&account).unwrap(),
            SourceServerId::parse(&id).unwrap(),
        );
        let text = arn.to_string();
        prop_assert!(model_pattern().is_match(&text), "{}", text);
        prop_assert!((20..=2048).contains(&text.len()));
        prop_assert_eq!(SourceServerArn::parse(&text).unwrap(), arn);
    }

    #[test]
    fn parsing_any_text_never_panics_and_what_parses_round_trips(raw in text()) {
        if let Ok(arn) = SourceServerArn::parse(&raw) {
            prop_assert_eq!(arn.to_string(), raw.clone());
            prop_assert!(model_pattern().is_match(&raw));
        }
        if let Ok(account) = AccountId::parse(&raw) {
            prop_assert_eq!(account.as_str(), raw.as_str());
        }
        let _ = Region::parse(&raw);
        let _ = SourceServerId::parse(&raw);
    }
}
