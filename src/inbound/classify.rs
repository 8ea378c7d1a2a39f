//! Classifies an inbound EventBridge envelope, once, into what it asks for.
//! Pure: no AWS types, no I/O. Whether the sender may ask is decided later
//! (`authorize`), on the classified request.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde_json::{Map, Value};

use crate::domain::arn::{self, shorten, AccountId, Region, SourceServerArn, SourceServerId};
use crate::domain::rejection::Rejection;
use crate::domain::tags::Tags;
use crate::domain::trigger::Trigger;

pub const CLOUDTRAIL_DETAIL_TYPE: &str = "AWS API Call via CloudTrail";
pub const REGISTRATION_EVENT_NAME: &str = "CreateSourceServerForDrs";
pub const ANNOUNCEMENT_DETAIL_TYPE: &str = "Staging Source Server Added";
pub const RECONCILIATION_REQUESTED_DETAIL_TYPE: &str = "Reconciliation Requested";
pub const SCHEDULED_DETAIL_TYPE: &str = "Scheduled Event";
/// Marks a `Reconciliation Requested` that a fanned-out run sent.
pub const FANNED_OUT_FIELD: &str = "fannedOut";
/// Staging accounts one request may name (the interface's bound).
pub const MAX_REQUESTED_ACCOUNTS: usize = 1_000;
/// Regions one request may name: more than AWS has.
pub const MAX_REQUESTED_REGIONS: usize = 100;
/// Tags one announcement may carry; each past the 50 an extended server takes
/// is dropped and reported, so this bounds that report.
pub const MAX_ANNOUNCED_TAGS: usize = 1_000;
/// Source-server resources read from one DRS event.
const MAX_RESOURCES: usize = 100;
/// Servers past [`MAX_RESOURCES`] refused one by one; past these, one rejection
/// counts the rest (an event is at most 256 KB, a direct invocation 6 MB).
const MAX_RESOURCES_REFUSED: usize = 1_000;

/// One staging server an event asks to have extended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerRequest {
    pub arn: SourceServerArn,
    /// The staging server's tags, where the event carried them.
    pub tags: Option<Tags>,
}

/// What a reconciliation run should cover; `None` fields take the configured default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconcileRequest {
    pub staging_accounts: Option<Vec<AccountId>>,
    pub regions: Option<Vec<Region>>,
    pub dry_run: Option<bool>,
    /// Sent by a run that fanned out; such a request never fans out again.
    pub fanned_out: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Kinds 1-3: the servers named, each valid or rejected on its own.
    Servers(Vec<Result<ServerRequest, Rejection>>),
    /// Kind 1 without a readable server: reconcile that one account in that region.
    ReconcileAccount {
        account: AccountId,
        region: Region,
    },
    /// Kind 4.
    Reconcile(ReconcileRequest),
    Ignored(String),
    Rejected(Rejection),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classified {
    pub trigger: Trigger,
    /// The envelope's `account`: who asks.
    pub sender: Option<AccountId>,
    pub request: Request,
}

pub fn classify(payload: &Value) -> Classified {
    let trigger = trigger_of(payload);
    let (sender, request) = match envelope_of(payload) {
        Ok((sender, event)) => (sender, request_of(&event)),
        Err(rejection) => (None, Request::Rejected(rejection)),
    };
    Classified {
        trigger,
        sender,
        request,
    }
}

/// Read field by field, so that even an event that does not parse is cited.
fn trigger_of(payload: &Value) -> Trigger {
    let text = |key: &str| payload.get(key).and_then(Value::as_str).map(cite);
    Trigger {
        id: text("id"),
        source: text("source"),
        detail_type: text("detail-type"),
    }
}

fn cite(raw: &str) -> String {
    const MAX: usize = 256;
    if raw.len() <= MAX && !raw.chars().any(char::is_control) {
        raw.to_owned()
    } else {
        shorten(raw)
    }
}

fn envelope_of(payload: &Value) -> Result<(Option<AccountId>, EventBridgeEvent), Rejection> {
    if !payload.is_object() {
        return Err(Rejection::new("the event is not a JSON object"));
    }
    let event: EventBridgeEvent = serde_json::from_value(payload.clone()).map_err(|e| {
        Rejection::new(format!(
            "not an EventBridge event: {}",
            shorten(&e.to_string())
        ))
    })?;
    let sender = match event.account.as_deref() {
        None => None,
        Some(raw) => Some(
            AccountId::parse(raw)
                .map_err(|e| Rejection::new(format!("the event's `account` is invalid: {e}")))?,
        ),
    };
    Ok((sender, event))
}

fn request_of(event: &EventBridgeEvent) -> Request {
    let source = event.source.as_str();
    let detail_type = event.detail_type.as_str();
    match (source, detail_type) {
        ("aws.drs", CLOUDTRAIL_DETAIL_TYPE) => registration(event),
        ("aws.drs", _) => drs_event(event),
        ("aws.events" | "aws.scheduler", SCHEDULED_DETAIL_TYPE) => {
            Request::Reconcile(ReconcileRequest::default())
        }
        _ if source.starts_with("aws.") => Request::Ignored(format!(
            "`{}` events from `{}` are not handled",
            cite(detail_type),
            cite(source)
        )),
        (_, ANNOUNCEMENT_DETAIL_TYPE) => announcement(event),
        // Who asks decides what is covered: a request that does not say is refused.
        (_, RECONCILIATION_REQUESTED_DETAIL_TYPE) if event.account.is_none() => {
            Request::Rejected(Rejection::new(
                "a reconciliation request must carry the envelope's `account` (who asks)",
            ))
        }
        (_, RECONCILIATION_REQUESTED_DETAIL_TYPE) => reconciliation_requested(&event.detail),
        _ => Request::Ignored(format!(
            "detail-type `{}` is not handled",
            cite(detail_type)
        )),
    }
}

/// Kind 1: the CloudTrail record of the agent's `CreateSourceServerForDrs`.
fn registration(event: &EventBridgeEvent) -> Request {
    let detail = &event.detail;
    let event_name = detail
        .get("eventName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if event_name != REGISTRATION_EVENT_NAME {
        return Request::Ignored(format!(
            "CloudTrail record of `{}`, not an agent registration",
            cite(event_name)
        ));
    }
    if let Some(code) = detail.get("errorCode").filter(|c| !c.is_null()) {
        let code = code.as_str().map(cite).unwrap_or_else(|| code.to_string());
        return Request::Ignored(format!(
            "the registration failed ({}), no server was created",
            shorten(&code)
        ));
    }
    let located = (|| {
        let account = account_field(detail, "recipientAccountId", event.account.as_deref())?;
        let region = region_field(detail, "awsRegion", event.region.as_deref())?;
        Ok::<_, String>((account, region))
    })();
    let (account, region) = match located {
        Ok(found) => found,
        Err(reason) => return Request::Rejected(Rejection::new(reason)),
    };
    let responses = detail.get("responseElements").filter(|v| v.is_object());
    let nested = responses
        .and_then(|r| r.get("sourceServer"))
        .filter(|v| v.is_object());
    let places = [responses, nested];
    let read = |key: &str| -> Result<Option<&str>, String> {
        for place in places.iter().flatten() {
            if let Some(value) = optional_str(place, key)? {
                return Ok(Some(value));
            }
        }
        Ok(None)
    };
    let server = (|| {
        let arn = read("arn")?;
        let id = read("sourceServerID")?;
        server_from(arn, id, &account, &region)
    })();
    match server {
        Ok(Some(arn)) => Request::Servers(vec![Ok(ServerRequest { arn, tags: None })]),
        Ok(None) => Request::ReconcileAccount { account, region },
        Err(reason) => Request::Rejected(Rejection::for_account(reason, Some(&account))),
    }
}

/// Kind 2: one of DRS's own events; its `resources` name the servers.
fn drs_event(event: &EventBridgeEvent) -> Request {
    let mut servers: Vec<Result<ServerRequest, Rejection>> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut unread = 0usize;
    for resource in event
        .resources
        .iter()
        .flatten()
        .filter(|r| arn::names_source_server(r))
    {
        if seen.len() >= MAX_RESOURCES + MAX_RESOURCES_REFUSED {
            unread += 1;
            continue;
        }
        if !seen.insert(resource.as_str()) {
            continue;
        }
        let parsed = SourceServerArn::parse(resource).map_err(|e| Rejection::new(e.to_string()));
        servers.push(if seen.len() <= MAX_RESOURCES {
            parsed.map(|arn| ServerRequest { arn, tags: None })
        } else {
            // Past what one event may ask for: refused by name, never dropped.
            let mut rejection = Rejection::new(format!(
                "the event names more than {MAX_RESOURCES} source servers; only the first {MAX_RESOURCES} are acted on"
            ));
            rejection.staging_arn = parsed.ok().map(Box::new);
            Err(rejection)
        });
    }
    if unread > 0 {
        servers.push(Err(Rejection::new(format!(
            "the event names {unread} more source server(s) past the {} read",
            MAX_RESOURCES + MAX_RESOURCES_REFUSED
        ))));
    }
    if servers.is_empty() {
        Request::Ignored(format!(
            "`{}` names no source server",
            cite(&event.detail_type)
        ))
    } else {
        Request::Servers(servers)
    }
}

/// Kind 3: the user's tooling announcing a staging server.
fn announcement(event: &EventBridgeEvent) -> Request {
    let Some(detail) = event.detail.as_object() else {
        return Request::Rejected(Rejection::new(
            "the announcement's detail is not a JSON object",
        ));
    };
    let detail = Value::Object(detail.clone());
    let parsed = (|| {
        let arn = optional_str(&detail, "sourceServerArn")?;
        let id = optional_str(&detail, "sourceServerId")?;
        if arn.is_none() && id.is_none() {
            return Err(
                "the announcement names neither `sourceServerArn` nor `sourceServerId`".to_owned(),
            );
        }
        let tags = tags_field(&detail)?;
        // An ARN says where the server is; an explicit account or region must agree
        // with it, and only an id takes the envelope's account and region.
        let (account, region) = match arn
            .map(SourceServerArn::parse)
            .transpose()
            .map_err(|e| e.to_string())?
        {
            Some(parsed) => (
                account_field(&detail, "stagingAccountId", Some(parsed.account().as_str()))?,
                region_field(&detail, "region", Some(parsed.region().as_str()))?,
            ),
            None => (
                account_field(&detail, "stagingAccountId", event.account.as_deref())?,
                region_field(&detail, "region", event.region.as_deref())?,
            ),
        };
        let arn = server_from(arn, id, &account, &region)?
            .ok_or_else(|| "the announcement names no server".to_owned())?;
        Ok(ServerRequest { arn, tags })
    })();
    match parsed {
        Ok(request) => Request::Servers(vec![Ok(request)]),
        Err(reason) => {
            let account = detail.get("stagingAccountId").and_then(Value::as_str);
            let account = account
                .or(event.account.as_deref())
                .and_then(|a| AccountId::parse(a).ok());
            Request::Rejected(Rejection::for_account(reason, account.as_ref()))
        }
    }
}

/// Kind 4, asked for by the user's tooling.
fn reconciliation_requested(detail: &Value) -> Request {
    let parsed = (|| {
        let detail = match detail {
            Value::Null => return Ok(ReconcileRequest::default()),
            Value::Object(map) => map,
            _ => return Err("the request's detail is not a JSON object".to_owned()),
        };
        let staging_accounts = list_field(
            detail,
            "stagingAccountIds",
            MAX_REQUESTED_ACCOUNTS,
            AccountId::parse,
        )?;
        let regions = list_field(detail, "regions", MAX_REQUESTED_REGIONS, Region::parse)?;
        let dry_run = match detail.get("dryRun") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return Err("`dryRun` must be true or false".to_owned()),
        };
        let fanned_out = detail
            .get(FANNED_OUT_FIELD)
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok(ReconcileRequest {
            staging_accounts,
            regions,
            dry_run,
            fanned_out,
        })
    })();
    match parsed {
        Ok(request) => Request::Reconcile(request),
        Err(reason) => Request::Rejected(Rejection::new(reason)),
    }
}

/// Builds the server's ARN from what the event gave: an ARN, an id, or both (which
/// must then agree with each other and with the account and region).
fn server_from(
    arn: Option<&str>,
    id: Option<&str>,
    account: &AccountId,
    region: &Region,
) -> Result<Option<SourceServerArn>, String> {
    let from_id = id
        .map(|id| {
            SourceServerId::parse(id)
                .map(|id| SourceServerArn::new(region.clone(), account.clone(), id))
        })
        .transpose()
        .map_err(|e| e.to_string())?;
    let Some(arn) = arn else { return Ok(from_id) };
    let arn = SourceServerArn::parse(arn).map_err(|e| e.to_string())?;
    if arn.account() != account {
        return Err(format!(
            "the server's ARN is in account {}, not {account}",
            arn.account()
        ));
    }
    if arn.region() != region {
        return Err(format!(
            "the server's ARN is in region {}, not {region}",
            arn.region()
        ));
    }
    if from_id.as_ref().is_some_and(|built| *built != arn) {
        return Err("the server's ARN and id name different servers".to_owned());
    }
    Ok(Some(arn))
}

/// A string field; missing or null is `None`, any other type is an error.
fn optional_str<'a>(object: &'a Value, key: &str) -> Result<Option<&'a str>, String> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("`{key}` must be a string")),
    }
}

fn account_field(object: &Value, key: &str, fallback: Option<&str>) -> Result<AccountId, String> {
    let raw = optional_str(object, key)?
        .or(fallback)
        .ok_or_else(|| format!("no staging account: neither `{key}` nor the event's `account`"))?;
    AccountId::parse(raw).map_err(|e| e.to_string())
}

fn region_field(object: &Value, key: &str, fallback: Option<&str>) -> Result<Region, String> {
    let raw = optional_str(object, key)?
        .or(fallback)
        .ok_or_else(|| format!("no region: neither `{key}` nor the event's `region`"))?;
    Region::parse(raw).map_err(|e| e.to_string())
}

fn tags_field(detail: &Value) -> Result<Option<Tags>, String> {
    match detail.get("tags") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) if map.len() > MAX_ANNOUNCED_TAGS => Err(format!(
            "the announcement carries {} tags; at most {MAX_ANNOUNCED_TAGS} are read",
            map.len()
        )),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(format!("tag `{}` must have a string value", shorten(k))),
            })
            .collect::<Result<Tags, String>>()
            .map(Some),
        Some(_) => Err("`tags` must be a JSON object of strings".to_owned()),
    }
}

/// A list of distinct values, refused whole past `max` items before any is parsed.
fn list_field<T: Ord + Clone, E: std::fmt::Display>(
    detail: &Map<String, Value>,
    key: &str,
    max: usize,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Option<Vec<T>>, String> {
    let items = match detail.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(format!("`{key}` must be a list of strings")),
    };
    if items.len() > max {
        return Err(format!(
            "`{key}` names {} items; at most {max} are taken in one request",
            items.len()
        ));
    }
    let mut parsed = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for item in items {
        let text = item
            .as_str()
            .ok_or_else(|| format!("`{key}` must be a list of strings"))?;
        let value = parse(text).map_err(|e| e.to_string())?;
        if seen.insert(value.clone()) {
            parsed.push(value);
        }
    }
    if parsed.is_empty() {
        return Err(format!(
            "`{key}` is empty; leave it out to use the configured default"
        ));
    }
    Ok(Some(parsed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ARN: &str = "arn:aws:drs:us-east-1:111122223333:source-server/s-1234567890abcdef0";

    fn envelope(source: &str, detail_type: &str, detail: Value) -> Value {
        json!({"version": "0", "id": "e-1", "source": source, "detail-type": detail_type,
               "account": "111122223333", "region": "us-east-1", "time": "2026-11-26T10:00:00Z",
               "resources": [], "detail": detail})
    }

    fn servers(request: &Request) -> Vec<String> {
        match request {
            Request::Servers(items) => items.iter().flatten().map(|s| s.arn.to_string()).collect(),
            other => panic!("expected servers, got {other:?}"),
        }
    }

    #[test]
    fn registration_reads_the_server_wherever_it_sits() {
        for response in [
            json!({"sourceServerID": "s-1234567890abcdef0"}),
            json!({"arn": ARN}),
            json!({"sourceServer": {"sourceServerID": "s-1234567890abcdef0"}}),
            json!({"sourceServer": {"arn": ARN, "sourceServerID": "s-1234567890abcdef0"}}),
        ] {
            let event = envelope(
                "aws.drs",
                CLOUDTRAIL_DETAIL_TYPE,
                json!({"eventName": "CreateSourceServerForDrs", "awsRegion": "us-east-1",
                       "recipientAccountId": "111122223333", "responseElements": response}),
            );
            assert_eq!(servers(&classify(&event).request), vec![ARN.to_string()]);
        }
    }

    #[test]
    fn registration_without_a_server_reconciles_its_account_and_region() {
        let event = envelope(
            "aws.drs",
            CLOUDTRAIL_DETAIL_TYPE,
            json!({"eventName": "CreateSourceServerForDrs", "awsRegion": "eu-west-1",
                   "recipientAccountId": "222233334444", "responseElements": null}),
        );
        assert_eq!(
            classify(&event).request,
            Request::ReconcileAccount {
                account: AccountId::parse("222233334444").unwrap(),
                region: Region::parse("eu-west-1").unwrap()
            }
        );
    }

    #[test]
    fn failed_and_other_cloudtrail_records_are_ignored() {
        let failed = envelope(
            "aws.drs",
            CLOUDTRAIL_DETAIL_TYPE,
            json!({"eventName": "CreateSourceServerForDrs", "errorCode": "AccessDenied"}),
        );
        assert!(matches!(classify(&failed).request, Request::Ignored(_)));
        let other = envelope(
            "aws.drs",
            CLOUDTRAIL_DETAIL_TYPE,
            json!({"eventName": "DescribeSourceServers"}),
        );
        assert!(matches!(classify(&other).request, Request::Ignored(_)));
    }

    #[test]
    fn drs_events_act_on_every_source_server_resource() {
        let mut event = envelope(
            "aws.drs",
            "DRS Source Server Launch Result",
            json!({"state": "X"}),
        );
        event["resources"] = json!([
            ARN,
            "arn:aws:drs:us-east-1:111122223333:recovery-instance/i-1234567890abcdef0",
            ARN,
            "arn:aws:drs:us-east-1:111122223333:source-server/s-bad"
        ]);
        match classify(&event).request {
            Request::Servers(items) => {
                assert_eq!(items.len(), 2);
                assert_eq!(items[0].as_ref().unwrap().arn.to_string(), ARN);
                assert!(items[1].as_ref().unwrap_err().reason.contains("server id"));
            }
            other => panic!("{other:?}"),
        }
        event["resources"] = json!(["arn:aws:drs:us-east-1:111122223333:recovery-instance/i-1"]);
        assert!(matches!(classify(&event).request, Request::Ignored(_)));
    }

    #[test]
    fn announcements_by_arn_or_by_id_with_defaults_from_the_envelope() {
        let by_arn = envelope(
            "org.tooling",
            ANNOUNCEMENT_DETAIL_TYPE,
            json!({"sourceServerArn": ARN}),
        );
        assert_eq!(servers(&classify(&by_arn).request), vec![ARN.to_string()]);
        let by_id = envelope(
            "org.tooling",
            ANNOUNCEMENT_DETAIL_TYPE,
            json!({"sourceServerId": "s-1234567890abcdef0", "tags": {"app": "billing"}}),
        );
        let classified = classify(&by_id);
        assert_eq!(servers(&classified.request), vec![ARN.to_string()]);
        let Request::Servers(items) = classified.request else {
            unreachable!()
        };
        assert_eq!(
            items[0].as_ref().unwrap().tags.as_ref().unwrap()["app"],
            "billing"
        );
    }

    #[test]
    fn announcements_that_disagree_or_carry_bad_types_are_rejected() {
        for detail in [
            json!({}),
            json!({"sourceServerArn": 7}),
            json!({"sourceServerArn": ARN, "sourceServerId": "s-00000000000000000"}),
            json!({"sourceServerArn": ARN, "stagingAccountId": "222233334444"}),
            json!({"sourceServerId": "s-1234567890abcdef0", "region": "moon"}),
            json!({"sourceServerId": "s-1234567890abcdef0", "tags": ["a"]}),
            json!({"sourceServerId": "s-1234567890abcdef0", "tags": {"a": 1}}),
            json!("s-1234567890abcdef0"),
        ] {
            let event = envelope("org.tooling", ANNOUNCEMENT_DETAIL_TYPE, detail.clone());
            assert!(
                matches!(classify(&event).request, Request::Rejected(_)),
                "{detail}"
            );
        }
    }

    #[test]
    fn schedules_and_requests_ask_for_reconciliation() {
        let scheduled = envelope("aws.events", SCHEDULED_DETAIL_TYPE, json!({}));
        assert_eq!(
            classify(&scheduled).request,
            Request::Reconcile(ReconcileRequest::default())
        );
        let scheduler = envelope("aws.scheduler", SCHEDULED_DETAIL_TYPE, json!({}));
        assert_eq!(
            classify(&scheduler).request,
            Request::Reconcile(ReconcileRequest::default())
        );
        let requested = envelope(
            "org.tooling",
            RECONCILIATION_REQUESTED_DETAIL_TYPE,
            json!({"stagingAccountIds": ["111122223333"], "regions": ["eu-west-1"], "dryRun": true}),
        );
        let Request::Reconcile(request) = classify(&requested).request else {
            panic!()
        };
        assert_eq!(request.staging_accounts.unwrap().len(), 1);
        assert_eq!(request.regions.unwrap()[0].as_str(), "eu-west-1");
        assert_eq!(request.dry_run, Some(true));
        let bad = envelope(
            "org.tooling",
            RECONCILIATION_REQUESTED_DETAIL_TYPE,
            json!({"regions": "eu-west-1"}),
        );
        assert!(matches!(classify(&bad).request, Request::Rejected(_)));
    }

    #[test]
    fn other_events_are_ignored_and_non_envelopes_rejected() {
        let spoofed_aws = envelope(
            "aws.ec2",
            ANNOUNCEMENT_DETAIL_TYPE,
            json!({"sourceServerArn": ARN}),
        );
        assert!(matches!(
            classify(&spoofed_aws).request,
            Request::Ignored(_)
        ));
        let other = envelope("org.tooling", "Something Else", json!({}));
        assert!(matches!(classify(&other).request, Request::Ignored(_)));
        for payload in [
            json!(null),
            json!([1]),
            json!({"source": "x"}),
            json!({"detail-type": 1, "source": "x"}),
        ] {
            assert!(
                matches!(classify(&payload).request, Request::Rejected(_)),
                "{payload}"
            );
        }
        let mut bad_account = envelope(
            "org.tooling",
            ANNOUNCEMENT_DETAIL_TYPE,
            json!({"sourceServerArn": ARN}),
        );
        bad_account["account"] = json!("1234");
        assert!(matches!(
            classify(&bad_account).request,
            Request::Rejected(_)
        ));
    }

    #[test]
    fn the_trigger_is_cited_even_when_the_event_does_not_parse() {
        let classified = classify(&json!({"id": "abc", "source": "x\ny", "detail-type": 5}));
        assert_eq!(classified.trigger.id.as_deref(), Some("abc"));
        assert_eq!(classified.trigger.source.as_deref(), Some("x?y"));
        assert_eq!(classified.trigger.detail_type, None);
    }
}
