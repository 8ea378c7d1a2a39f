//! DRS's rest-json operations that drs-extender calls, validated as the service
//! model says (lengths, patterns, ranges), with the model's error codes.

use serde_json::{json, Value};

use crate::reply::Reply;
use crate::world::{
    BacklogLag, DuplicateCreate, ExtensionReplication, LaunchResultFields, PageTokens,
    RepeatDisconnect, Tags, World,
};

/// Where a page starts, as a token said it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Start {
    After(String),
    Offset(usize),
}

/// How to page a listing, as the world's switches say.
struct Paging {
    tokens: PageTokens,
    now_ms: u128,
}

impl Paging {
    fn of(world: &World) -> Self {
        Self {
            tokens: world.page_tokens,
            now_ms: world.epoch.elapsed().as_millis(),
        }
    }

    /// `c:ISSUED:KEY` (cursor) or `o:ISSUED:OFFSET` (offset into the live list).
    fn token(&self, start: &Start) -> String {
        match start {
            Start::After(key) => format!("c:{}:{key}", self.now_ms),
            Start::Offset(n) => format!("o:{}:{n}", self.now_ms),
        }
    }
}

pub fn handle(
    world: &mut World,
    operation: &str,
    account: &str,
    region: &str,
    body: &Value,
    query: &str,
) -> Reply {
    if world
        .uninitialized
        .contains(&(account.to_owned(), region.to_owned()))
    {
        return Reply::rest_json_error(
            400,
            "UninitializedAccountException",
            "Account not initialized",
            None,
        );
    }
    match operation {
        "CreateExtendedSourceServer" => create_extended(world, account, region, body),
        "DescribeSourceServers" => describe(world, account, region, body),
        "ListExtensibleSourceServers" => list_extensible(world, account, region, body),
        "ListStagingAccounts" => list_staging_accounts(world, account, region, query),
        "TagResource" => tag_resource(world, account, body, true),
        "UntagResource" => tag_resource(world, account, body, false),
        "DisconnectSourceServer" => disconnect(world, account, region, body),
        "DeleteSourceServer" => delete_source_server(world, account, region, body),
        "GetLaunchConfiguration" => crate::drs_launch::get(world, account, region, body),
        "UpdateLaunchConfiguration" => crate::drs_launch::update(world, account, region, body),
        _ => Reply::rest_json_error(404, "UnknownOperationException", "unknown operation", None),
    }
}

/// `TagResource` (`add`) and `UntagResource` on the target account's extended
/// servers; any other resource is not found, as DRS would answer.
fn tag_resource(world: &mut World, account: &str, body: &Value, add: bool) -> Reply {
    let arn = body["resourceArn"].as_str().unwrap_or_default();
    let Some(server) = world
        .extended
        .iter_mut()
        .find(|e| e.arn == arn && e.account == account)
    else {
        return Reply::rest_json_error(
            404,
            "ResourceNotFoundException",
            "Resource not found",
            None,
        );
    };
    if add {
        let Some(tags) = body["tags"].as_object() else {
            return Reply::rest_json_error(400, "ValidationException", "tags is required", None);
        };
        let added = tags
            .keys()
            .filter(|k| !server.tags.contains_key(*k))
            .count();
        if server.tags.len() + added > 50 {
            return Reply::rest_json_error(400, "ValidationException", "Too many tags", None);
        }
        for (key, value) in tags {
            server
                .tags
                .insert(key.clone(), value.as_str().unwrap_or_default().to_owned());
        }
    } else {
        for key in body["tagKeys"].as_array().into_iter().flatten() {
            server.tags.remove(key.as_str().unwrap_or_default());
        }
    }
    Reply::empty(200)
}

/// The target account's extended server `sourceServerID` names, or DRS's 404.
fn extended_by_id(
    world: &World,
    account: &str,
    region: &str,
    body: &Value,
) -> Result<usize, Reply> {
    let id = body["sourceServerID"].as_str().unwrap_or_default();
    world
        .extended
        .iter()
        .position(|e| e.id == id && e.account == account && e.region == region)
        .ok_or_else(|| {
            Reply::rest_json_error(
                404,
                "ResourceNotFoundException",
                "Source server not found",
                None,
            )
        })
}

/// `DisconnectSourceServer`: the extended server stops replicating
/// (`DISCONNECTED`), which `DeleteSourceServer` requires.
fn disconnect(world: &mut World, account: &str, region: &str, body: &Value) -> Reply {
    let index = match extended_by_id(world, account, region, body) {
        Ok(index) => index,
        Err(not_found) => return not_found,
    };
    let repeat = world.repeat_disconnect;
    let server = &mut world.extended[index];
    if server.replication.state == "DISCONNECTED" && repeat == RepeatDisconnect::Conflict {
        return Reply::rest_json_error(
            409,
            "ConflictException",
            "Source server is already disconnected",
            None,
        );
    }
    if server.recovery_instance_id.is_some() {
        return Reply::rest_json_error(
            409,
            "ConflictException",
            "Source server has a recovery instance",
            None,
        );
    }
    server.replication.state = "DISCONNECTED".into();
    server.replication.lag = None;
    let server = server.clone();
    Reply::json(200, &extended_json(world, &server))
}

/// `DeleteSourceServer`: "The Source Server must be disconnected first" (DRS API
/// Reference); a server with a recovery instance is refused as well.
fn delete_source_server(world: &mut World, account: &str, region: &str, body: &Value) -> Reply {
    let index = match extended_by_id(world, account, region, body) {
        Ok(index) => index,
        Err(not_found) => return not_found,
    };
    let server = &world.extended[index];
    if server.recovery_instance_id.is_some() || server.replication.state != "DISCONNECTED" {
        return Reply::rest_json_error(
            409,
            "ConflictException",
            "Source server must be disconnected, and have no recovery instance",
            None,
        );
    }
    world.remove_extension(index);
    Reply::empty(204)
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The model's `SourceServerARN` pattern:
/// `arn:(?:[0-9a-zA-Z_-]+:){3}([0-9]{12,}):source-server/(s-[0-9a-zA-Z]{17})`.
fn matches_source_server_arn(s: &str) -> bool {
    let fields: Vec<&str> = s.splitn(6, ':').collect();
    let [prefix, a, b, c, account, resource] = fields.as_slice() else {
        return false;
    };
    let word = |w: &str| {
        !w.is_empty()
            && w.bytes()
                .all(|x| x.is_ascii_alphanumeric() || x == b'_' || x == b'-')
    };
    let id_ok = resource
        .strip_prefix("source-server/s-")
        .is_some_and(|id| id.len() == 17 && id.bytes().all(|x| x.is_ascii_alphanumeric()));
    *prefix == "arn"
        && word(a)
        && word(b)
        && word(c)
        && account.len() >= 12
        && account.bytes().all(|x| x.is_ascii_digit())
        && id_ok
}

fn page_bounds(
    world: &World,
    body: &Value,
    max: Option<i64>,
) -> Result<(usize, Option<Start>), Reply> {
    let max_results = match body.get("maxResults") {
        None | Some(Value::Null) => max.unwrap_or(1000),
        Some(v) => v
            .as_i64()
            .ok_or_else(|| Reply::validation("maxResults", "must be an integer"))?,
    };
    if max_results < 1 || max.is_some_and(|m| max_results > m) {
        return Err(Reply::validation(
            "maxResults",
            &format!(
                "must be between 1 and {}",
                max.map(|m| m.to_string()).unwrap_or("any".into())
            ),
        ));
    }
    let token = match body.get("nextToken") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) if t.is_empty() => None,
        Some(Value::String(t)) if t.len() <= 2048 => Some(parse_token(world, t)?),
        Some(_) => return Err(Reply::validation("nextToken", "invalid pagination token")),
    };
    Ok((max_results as usize, token))
}

fn parse_token(world: &World, token: &str) -> Result<Start, Reply> {
    let invalid = || Reply::validation("nextToken", "invalid pagination token");
    let mut fields = token.splitn(3, ':');
    let (kind, issued, value) = (fields.next(), fields.next(), fields.next());
    let issued: u128 = issued.and_then(|i| i.parse().ok()).ok_or_else(invalid)?;
    if let (Some(ttl), Some("c" | "o")) = (world.token_ttl, kind) {
        if world.epoch.elapsed().as_millis().saturating_sub(issued) > ttl.as_millis() {
            return Err(Reply::validation(
                "nextToken",
                "the pagination token has expired",
            ));
        }
    }
    match (kind, value) {
        // A broken service's tokens: each answers the first page again.
        (Some("r" | "e"), Some(_)) => Ok(Start::Offset(0)),
        (Some("c"), Some(key)) => Ok(Start::After(key.to_owned())),
        (Some("o"), Some(n)) => n.parse().map(Start::Offset).map_err(|_| invalid()),
        _ => Err(invalid()),
    }
}

/// One page of `items` (sorted by key here) from `start`, and the token for the
/// next, in the world's token semantics.
fn paginate<T>(
    mut items: Vec<(String, T)>,
    limit: usize,
    start: Option<Start>,
    paging: &Paging,
) -> (Vec<T>, Option<String>) {
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let skip = match &start {
        None => 0,
        Some(Start::After(key)) => items.partition_point(|(k, _)| k <= key),
        Some(Start::Offset(n)) => *n,
    };
    let rest: Vec<(String, T)> = items.into_iter().skip(skip).collect();
    let more = rest.len() > limit;
    let page: Vec<(String, T)> = rest.into_iter().take(limit).collect();
    let next = match paging.tokens {
        PageTokens::Cursor => more.then(|| {
            paging.token(&Start::After(
                page.last().map(|(k, _)| k.clone()).unwrap_or_default(),
            ))
        }),
        PageTokens::Offset => more.then(|| paging.token(&Start::Offset(skip + page.len()))),
        PageTokens::Repeating => Some("r:0:0".to_owned()),
        PageTokens::Endless => {
            static ISSUED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = ISSUED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Some(format!("e:0:{n}"))
        }
    };
    (page.into_iter().map(|(_, item)| item).collect(), next)
}

fn create_extended(world: &mut World, account: &str, region: &str, body: &Value) -> Reply {
    let Some(arn) = body.get("sourceServerArn").and_then(Value::as_str) else {
        return Reply::validation("sourceServerArn", "is required");
    };
    if !(20..=2048).contains(&arn.len()) || !matches_source_server_arn(arn) {
        return Reply::validation("sourceServerArn", "does not match the required pattern");
    }
    let mut tags = Tags::new();
    match body.get("tags") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (key, value) in map {
                let Some(value) = value.as_str() else {
                    return Reply::validation("tags", "values must be strings");
                };
                if key.chars().count() > 256 || value.chars().count() > 256 {
                    return Reply::validation(
                        "tags",
                        "keys and values must be at most 256 characters",
                    );
                }
                if key.starts_with("aws:") {
                    return Reply::validation("tags", "keys may not start with aws:");
                }
                tags.insert(key.clone(), value.to_owned());
            }
            if tags.len() > 50 {
                return Reply::validation("tags", "at most 50 tags");
            }
        }
        Some(_) => return Reply::validation("tags", "must be a map"),
    }
    let Some(staging) = world.staging_server(arn).cloned() else {
        return Reply::rest_json_error(
            404,
            "ResourceNotFoundException",
            "Source server not found",
            None,
        );
    };
    if staging.region != region {
        return Reply::validation("sourceServerArn", "the source server is in another region");
    }
    if staging.account == account {
        return Reply::validation(
            "sourceServerArn",
            "cannot extend a server into its own account",
        );
    }
    if world.untrusted.contains(&staging.account) {
        return Reply::rest_json_error(
            403,
            "AccessDeniedException",
            "The staging account does not trust this account",
            None,
        );
    }
    if world.is_extended(account, arn) {
        return match world.duplicate_create {
            DuplicateCreate::Validation => Reply::validation(
                "sourceServerArn",
                "the source server is already extended into this account",
            ),
            DuplicateCreate::Conflict => Reply::rest_json_error(
                409,
                "ConflictException",
                "the source server is already extended into this account",
                None,
            ),
            DuplicateCreate::ReturnsExisting => match world.extension_of(account, arn) {
                Some(existing) => Reply::json(
                    201,
                    &json!({"sourceServer": extended_json(world, existing)}),
                ),
                None => Reply::rest_json_error(500, "InternalServerException", "lost", None),
            },
        };
    }
    if world
        .extended_quota
        .is_some_and(|quota| world.source_servers_in(account, region) >= quota)
    {
        let mut body = json!({
            "message": "Service quota exceeded",
            "code": "ServiceQuotaExceededException",
            "serviceCode": "drs",
            "resourceType": "SOURCE_SERVER",
        });
        if let Some(quota_code) = &world.quota_exceeded_code {
            body["quotaCode"] = json!(quota_code);
        }
        let mut reply = Reply::json(402, &body);
        reply.headers.push((
            "x-amzn-errortype",
            "ServiceQuotaExceededException".to_owned(),
        ));
        return reply;
    }
    if staging.default_ebs_key {
        return Reply::validation(
            "sourceServerArn",
            "volumes encrypted with the default EBS key cannot be extended",
        );
    }
    let extended = world.record_extension(account, &staging, tags);
    let mut answer = extended_json(world, &extended);
    if world.create_reply_omits_tags {
        if let Some(server) = answer.as_object_mut() {
            server.remove("tags");
        }
    }
    Reply::json(201, &json!({"sourceServer": answer}))
}

/// A moment as DRS writes its date-times: ISO 8601, UTC, with milliseconds.
/// A time as DRS writes one (`ISO8601DatetimeString`: UTC, ending in `Z`).
pub fn iso8601(at: std::time::SystemTime) -> String {
    let since = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let (days, secs) = (since.as_secs() / 86_400, since.as_secs() % 86_400);
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
        since.subsec_millis()
    )
}

const INITIATION_STEPS: [&str; 11] = [
    "WAIT",
    "CREATE_SECURITY_GROUP",
    "LAUNCH_REPLICATION_SERVER",
    "BOOT_REPLICATION_SERVER",
    "AUTHENTICATE_WITH_SERVICE",
    "DOWNLOAD_REPLICATION_SOFTWARE",
    "CREATE_STAGING_DISKS",
    "ATTACH_STAGING_DISKS",
    "PAIR_REPLICATION_SERVER_WITH_AGENT",
    "CONNECT_AGENT_TO_REPLICATION_SERVER",
    "START_DATA_TRANSFER",
];

/// A server `DescribeSourceServers` lists.
enum Listed<'a> {
    Extended(&'a crate::world::ExtendedServer),
    Own(&'a crate::world::OwnServer),
}

/// A server the account replicates itself, as `DescribeSourceServers` lists it:
/// no staging account behind it.
fn own_json(o: &crate::world::OwnServer) -> Value {
    json!({
        "sourceServerID": o.id,
        "arn": o.arn,
        "tags": {},
        "stagingArea": {"status": "NOT_EXTENDED"},
        "replicationDirection": "FAILOVER",
        "dataReplicationInfo": {"dataReplicationState": "CONTINUOUS", "lagDuration": "PT1M"},
        "lifeCycle": {"addedToServiceDateTime": "2026-10-01T08:00:00Z"},
    })
}

/// An extended source server as `DescribeSourceServers` returns it: the whole
/// `SourceServer` of the service model (source properties with disks and network
/// interfaces, replication state per disk, life cycle), a few KB like a real one.
fn extended_json(world: &World, e: &crate::world::ExtendedServer) -> Value {
    let replication = match world.extension_replication {
        ExtensionReplication::Own | ExtensionReplication::Absent => e.replication.clone(),
        ExtensionReplication::MirrorsStaging | ExtensionReplication::MirrorsStagingLate => {
            let mut mirrored = e.replication.clone();
            if let Some(staging) = world.staging_server(&e.staging_arn) {
                let shown = if world.extension_replication == ExtensionReplication::MirrorsStaging {
                    &staging.replication
                } else {
                    &staging.mirrored
                };
                mirrored.state = shown.state.clone();
                mirrored.lag = shown.lag.clone();
                mirrored.error = shown.error.clone();
            }
            mirrored
        }
    };
    let disks = ["/dev/sda", "/dev/sdb", "/dev/sdc", "/dev/sdd"];
    let staging_area = match &e.extension_error {
        None => json!({
            "status": "EXTENDED",
            "stagingAccountID": e.staging_account,
            "stagingSourceServerArn": e.staging_arn,
        }),
        Some(message) => json!({
            "status": "EXTENSION_ERROR",
            "stagingAccountID": e.staging_account,
            "stagingSourceServerArn": e.staging_arn,
            "errorMessage": message,
        }),
    };
    let mut server = json!({
        "sourceServerID": e.id,
        "arn": e.arn,
        "tags": e.tags,
        "stagingArea": staging_area,
        "recoveryInstanceId": e.recovery_instance_id,
        "replicationDirection": "FAILOVER",
        "agentVersion": "4.12.0.1234",
        "lastLaunchResult": if replication.last_launch.is_some() {
            replication.last_launch_result.as_str()
        } else {
            "NOT_STARTED"
        },
        "sourceProperties": {
            "lastUpdatedDateTime": "2026-11-26T09:00:00Z",
            "recommendedInstanceType": "m5.xlarge",
            "identificationHints": {
                "fqdn": format!("host-{}.corp.example.com", e.id),
                "hostname": format!("host-{}", e.id),
                "vmWareUuid": "42a1b2c3-d4e5-f6a7-b8c9-d0e1f2a3b4c5",
                "awsInstanceID": "i-0123456789abcdef0",
            },
            "networkInterfaces": [
                {"macAddress": "0a:1b:2c:3d:4e:5f", "ips": [world.source_ip(&e.staging_arn), "fe80::81b:2cff:fe3d:4e5f"], "isPrimary": true},
                {"macAddress": "0a:1b:2c:3d:4e:60", "ips": ["10.0.2.17"], "isPrimary": false},
            ],
            "disks": disks.iter().map(|d| json!({"deviceName": d, "bytes": 107_374_182_400u64})).collect::<Vec<_>>(),
            "cpus": [{"cores": 4, "modelName": "Intel(R) Xeon(R) Platinum 8175M CPU @ 2.50GHz"}],
            "ramBytes": 17_179_869_184u64,
            "os": {"fullString": "Linux version 5.15.0-1051-aws (buildd@lcy02-amd64-011) (gcc (Ubuntu 11.4.0) 11.4.0) #56-Ubuntu SMP"},
            "supportsNitroInstances": true,
        },
        "dataReplicationInfo": {
            "lagDuration": replication.lag,
            "replicatedDisks": disks.iter().map(|d| json!({
                "deviceName": d, "totalStorageBytes": 107_374_182_400u64, "replicatedStorageBytes": 107_374_182_400u64,
                "rescannedStorageBytes": 0, "backloggedStorageBytes": 0, "volumeStatus": "REGULAR",
            })).collect::<Vec<_>>(),
            "dataReplicationState": replication.state,
            "dataReplicationInitiation": {
                "startDateTime": "2026-10-01T08:00:00Z",
                "steps": INITIATION_STEPS.iter().map(|step| json!({"name": step, "status": "SUCCEEDED"})).collect::<Vec<_>>(),
            },
            "stagingAvailabilityZone": format!("{}a", e.region),
        },
        "lifeCycle": {
            "addedToServiceDateTime": iso8601(e.added_at),
            "firstByteDateTime": "2026-10-01T08:05:00Z",
            "elapsedReplicationDuration": "P56DT1H",
            "lastSeenByServiceDateTime": "2026-11-26T09:00:00Z",
            "lastLaunch": replication.last_launch.as_ref().map(|(at, kind)| json!({
                "initiated": {"apiCallDateTime": at, "jobID": "drsjob-0123456789abcdef0", "type": kind},
                "status": replication.last_launch_status,
            })),
        },
        "sourceCloudProperties": {
            "originAccountID": e.staging_account,
            "originRegion": e.region,
            "originAvailabilityZone": format!("{}b", e.region),
        },
    });
    let catching_up =
        ["BACKLOG", "RESCAN", "CREATING_SNAPSHOT"].contains(&replication.state.as_str());
    if let Some(info) = server.get_mut("dataReplicationInfo") {
        if let Some(error) = &replication.error {
            info["dataReplicationError"] =
                json!({"error": error, "rawError": format!("replication error {error}")});
        }
        if catching_up && world.backlog_lag == BacklogLag::Omitted {
            info["lagDuration"] = Value::Null;
        }
    }
    match world.launch_result_fields {
        LaunchResultFields::Both => {}
        LaunchResultFields::ResultOnly => {
            if let Some(launch) = server
                .pointer_mut("/lifeCycle/lastLaunch")
                .and_then(Value::as_object_mut)
            {
                launch.remove("status");
            }
        }
        LaunchResultFields::LifeCycleOnly => {
            if let Some(fields) = server.as_object_mut() {
                fields.remove("lastLaunchResult");
            }
        }
    }
    if world.extension_replication == ExtensionReplication::Absent {
        if let Some(fields) = server.as_object_mut() {
            fields.remove("dataReplicationInfo");
        }
    }
    server
}

fn describe(world: &World, account: &str, region: &str, body: &Value) -> Reply {
    let (limit, after) = match page_bounds(world, body, None) {
        Ok(bounds) => bounds,
        Err(reply) => return reply,
    };
    let filters = body.get("filters").cloned().unwrap_or(Value::Null);
    let staging_accounts: Option<Vec<String>> = match filters.get("stagingAccountIDs") {
        None | Some(Value::Null) => None,
        Some(Value::Array(ids)) => {
            if ids.len() > 200 {
                return Reply::validation("filters.stagingAccountIDs", "at most 200");
            }
            let ids: Vec<String> = ids
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            if ids.iter().any(|id| !is_account_id(id)) {
                return Reply::validation(
                    "filters.stagingAccountIDs",
                    "must be 12-digit account ids",
                );
            }
            Some(ids)
        }
        Some(_) => return Reply::validation("filters.stagingAccountIDs", "must be a list"),
    };
    // `sourceServerIDs`: up to 200 ids (the model's `DescribeSourceServersRequestFiltersIDs`).
    let ids: Option<Vec<String>> = match filters.get("sourceServerIDs") {
        None | Some(Value::Null) => None,
        Some(Value::Array(ids)) if ids.len() <= 200 => Some(
            ids.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        ),
        Some(_) => return Reply::validation("filters.sourceServerIDs", "at most 200 ids"),
    };
    let named = |id: &str| ids.as_ref().is_none_or(|ids| ids.iter().any(|i| i == id));
    // Paged on keys first, then only the page is rendered: records are a few KB.
    // The account's own servers have no staging account: a filter by staging
    // account leaves them out.
    let mut items: Vec<(String, Listed<'_>)> = world
        .extended
        .iter()
        .filter(|e| e.account == account && e.region == region && named(&e.id))
        .filter(|e| {
            staging_accounts
                .as_ref()
                .is_none_or(|ids| ids.contains(&e.staging_account))
        })
        .map(|e| (e.arn.clone(), Listed::Extended(e)))
        .collect();
    if staging_accounts.is_none() {
        items.extend(
            world
                .own
                .iter()
                .filter(|o| o.account == account && o.region == region && named(&o.id))
                .map(|o| (o.arn.clone(), Listed::Own(o))),
        );
    }
    let (page, next) = paginate(items, limit, after, &Paging::of(world));
    let page: Vec<Value> = page
        .into_iter()
        .map(|listed| match listed {
            Listed::Extended(e) => extended_json(world, e),
            Listed::Own(o) => own_json(o),
        })
        .collect();
    Reply::json(200, &json!({"items": page, "nextToken": next}))
}

fn list_extensible(world: &World, account: &str, region: &str, body: &Value) -> Reply {
    let Some(staging_account) = body.get("stagingAccountID").and_then(Value::as_str) else {
        return Reply::validation("stagingAccountID", "is required");
    };
    if !is_account_id(staging_account) {
        return Reply::validation("stagingAccountID", "must be a 12-digit account id");
    }
    let (limit, after) = match page_bounds(world, body, Some(300)) {
        Ok(bounds) => bounds,
        Err(reply) => return reply,
    };
    if world.untrusted.contains(staging_account) {
        return Reply::rest_json_error(
            403,
            "AccessDeniedException",
            "The staging account does not trust this account",
            None,
        );
    }
    let items: Vec<(String, Value)> = world
        .staging
        .iter()
        .filter(|s| s.account == staging_account && s.region == region)
        .filter(|s| !world.is_extended(account, &s.arn))
        .map(|s| {
            (
                s.arn.clone(),
                json!({"arn": s.arn, "hostname": s.hostname, "tags": s.tags}),
            )
        })
        .collect();
    let (page, next) = paginate(items, limit, after, &Paging::of(world));
    Reply::json(200, &json!({"items": page, "nextToken": next}))
}

fn list_staging_accounts(world: &World, account: &str, region: &str, query: &str) -> Reply {
    let mut body = serde_json::Map::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let value = match key.as_ref() {
            "maxResults" => match value.parse::<i64>() {
                Ok(n) => json!(n),
                Err(_) => return Reply::validation("maxResults", "must be an integer"),
            },
            _ => json!(value),
        };
        body.insert(key.into_owned(), value);
    }
    let (limit, after) = match page_bounds(world, &Value::Object(body), Some(50)) {
        Ok(bounds) => bounds,
        Err(reply) => return reply,
    };
    let mut accounts: Vec<String> = world
        .extended
        .iter()
        .filter(|e| e.account == account && e.region == region)
        .map(|e| e.staging_account.clone())
        .collect();
    accounts.sort();
    accounts.dedup();
    let items = accounts
        .into_iter()
        .map(|a| (a.clone(), json!({"accountID": a})))
        .collect();
    let (page, next) = paginate(items, limit, after, &Paging::of(world));
    Reply::json(200, &json!({"accounts": page, "nextToken": next}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_pattern_follows_the_model() {
        assert!(matches_source_server_arn(
            "arn:aws:drs:us-east-1:111122223333:source-server/s-1234567890abcdef0"
        ));
        assert!(!matches_source_server_arn(
            "arn:aws:drs:us-east-1:11112222333:source-server/s-1234567890abcdef0"
        ));
        assert!(!matches_source_server_arn(
            "arn:aws:drs:us-east-1:111122223333:source-server/s-1"
        ));
    }

    #[test]
    fn cursor_pages_neither_skip_nor_repeat_but_offsets_skip_what_shifted() {
        let items: Vec<(String, u32)> = (0..7).map(|i| (format!("k{i}"), i)).collect();
        let world = World::new("444455556666");
        let cursor = Paging::of(&world);
        let (first, next) = paginate(items.clone(), 3, None, &cursor);
        assert_eq!(first, vec![0, 1, 2]);
        let start = parse_token(&world, &next.unwrap()).unwrap();
        // Items on the first page disappear meanwhile (they were extended).
        let remaining: Vec<(String, u32)> = items.iter().skip(2).cloned().collect();
        let (second, _) = paginate(remaining.clone(), 3, Some(start), &cursor);
        assert_eq!(second, vec![3, 4, 5]);

        let mut world = World::new("444455556666");
        world.page_tokens = PageTokens::Offset;
        let offset = Paging::of(&world);
        let (_, next) = paginate(items, 3, None, &offset);
        let start = parse_token(&world, &next.unwrap()).unwrap();
        let (second, _) = paginate(remaining, 3, Some(start), &offset);
        assert_eq!(
            second,
            vec![5, 6],
            "3 and 4 are skipped: they moved up into the first page's place"
        );
    }

    #[test]
    fn extended_records_are_the_size_of_real_ones() {
        let mut world = World::new("444455556666");
        let arn = world.add_staging_server("111122223333", "us-east-1", &[]);
        let staging = world.staging_server(&arn).unwrap().clone();
        let extended = world.record_extension("444455556666", &staging, Tags::new());
        let size = extended_json(&world, &extended).to_string().len();
        assert!((3_000..8_000).contains(&size), "{size} bytes");
    }

    #[test]
    fn expired_and_foreign_tokens_are_refused() {
        let mut world = World::new("444455556666");
        world.token_ttl = Some(std::time::Duration::ZERO);
        let token = Paging {
            tokens: PageTokens::Cursor,
            now_ms: 0,
        }
        .token(&Start::Offset(3));
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(parse_token(&world, &token).is_err());
        assert!(parse_token(&World::new("1"), "after:x").is_err());
    }
}
