//! DRS's rest-json operations that drs-extender calls, validated as the service
//! model says (lengths, patterns, ranges), with the model's error codes.

use serde_json::{json, Value};

use crate::reply::Reply;
use crate::world::{Tags, World};

const PAGE_TOKEN_PREFIX: &str = "after:";

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
        _ => Reply::rest_json_error(404, "UnknownOperationException", "unknown operation", None),
    }
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

fn page_bounds(body: &Value, max: Option<i64>) -> Result<(usize, Option<String>), Reply> {
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
        Some(Value::String(t)) if t.len() <= 2048 => {
            let after = t
                .strip_prefix(PAGE_TOKEN_PREFIX)
                .ok_or_else(|| Reply::validation("nextToken", "invalid pagination token"))?;
            Some(after.to_owned())
        }
        Some(_) => return Err(Reply::validation("nextToken", "invalid pagination token")),
    };
    Ok((max_results as usize, token))
}

/// Cursor pagination on a sorted key: items added or removed between pages are
/// neither skipped nor repeated.
fn paginate<T>(
    mut items: Vec<(String, T)>,
    limit: usize,
    after: Option<String>,
) -> (Vec<T>, Option<String>) {
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let start = after
        .map(|a| items.partition_point(|(key, _)| *key <= a))
        .unwrap_or(0);
    let rest: Vec<(String, T)> = items.into_iter().skip(start).collect();
    let more = rest.len() > limit;
    let page: Vec<(String, T)> = rest.into_iter().take(limit).collect();
    let next = if more {
        page.last()
            .map(|(key, _)| format!("{PAGE_TOKEN_PREFIX}{key}"))
    } else {
        None
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
        return Reply::validation(
            "sourceServerArn",
            "the source server is already extended into this account",
        );
    }
    if staging.default_ebs_key {
        return Reply::validation(
            "sourceServerArn",
            "volumes encrypted with the default EBS key cannot be extended",
        );
    }
    let extended = world.record_extension(account, &staging, tags);
    Reply::json(201, &json!({"sourceServer": extended_json(&extended)}))
}

fn extended_json(e: &crate::world::ExtendedServer) -> Value {
    json!({
        "sourceServerID": e.id,
        "arn": e.arn,
        "tags": e.tags,
        "stagingArea": {
            "status": "EXTENDED",
            "stagingAccountID": e.staging_account,
            "stagingSourceServerArn": e.staging_arn,
        },
    })
}

fn describe(world: &World, account: &str, region: &str, body: &Value) -> Reply {
    let (limit, after) = match page_bounds(body, None) {
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
    let items: Vec<(String, Value)> = world
        .extended
        .iter()
        .filter(|e| e.account == account && e.region == region)
        .filter(|e| {
            staging_accounts
                .as_ref()
                .is_none_or(|ids| ids.contains(&e.staging_account))
        })
        .map(|e| (e.arn.clone(), extended_json(e)))
        .collect();
    let (page, next) = paginate(items, limit, after);
    Reply::json(200, &json!({"items": page, "nextToken": next}))
}

fn list_extensible(world: &World, account: &str, region: &str, body: &Value) -> Reply {
    let Some(staging_account) = body.get("stagingAccountID").and_then(Value::as_str) else {
        return Reply::validation("stagingAccountID", "is required");
    };
    if !is_account_id(staging_account) {
        return Reply::validation("stagingAccountID", "must be a 12-digit account id");
    }
    let (limit, after) = match page_bounds(body, Some(300)) {
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
    let (page, next) = paginate(items, limit, after);
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
    let (limit, after) = match page_bounds(&Value::Object(body), Some(50)) {
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
    let (page, next) = paginate(items, limit, after);
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
    fn cursor_pages_neither_skip_nor_repeat() {
        let items: Vec<(String, u32)> = (0..7).map(|i| (format!("k{i}"), i)).collect();
        let (first, next) = paginate(items.clone(), 3, None);
        assert_eq!(first, vec![0, 1, 2]);
        let after = next
            .unwrap()
            .strip_prefix(PAGE_TOKEN_PREFIX)
            .unwrap()
            .to_owned();
        // Items before the cursor disappear meanwhile (they were extended).
        let remaining: Vec<(String, u32)> = items.into_iter().skip(2).collect();
        let (second, next) = paginate(remaining, 3, Some(after));
        assert_eq!(second, vec![3, 4, 5]);
        assert!(next.is_some());
    }
}
