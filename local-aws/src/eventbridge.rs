//! EventBridge `PutEvents` (awsJson1.1), with per-entry refusals on request and
//! the service's limits: 10 entries, 256 KB an entry and a request (counted as
//! EventBridge documents it), and buses that must exist.

use serde_json::{json, Value};

use crate::reply::Reply;
use crate::world::{EntriesReply, World};

/// `land`: whether entries the bus takes are stored (a bus that lands them only
/// when it answers stores none for a client that gave up first).
pub fn put_events(world: &mut World, body: &Value, land: bool) -> Reply {
    if world.bus_refuses {
        return Reply::aws_json_error(
            400,
            "AccessDeniedException",
            "User is not authorized to perform: events:PutEvents on resource: the bus, because no resource-based policy allows the events:PutEvents action",
        );
    }
    let Some(entries) = body.get("Entries").and_then(Value::as_array) else {
        return Reply::aws_json_error(400, "ValidationException", "Entries is required");
    };
    if entries.is_empty() || entries.len() > 10 {
        return Reply::aws_json_error(
            400,
            "ValidationException",
            "1 validation error detected: Value at 'entries' failed to satisfy constraint: Member must have length less than or equal to 10",
        );
    }
    let total: usize = entries.iter().map(entry_size).sum();
    if total >= LIMIT {
        return Reply::aws_json_error(
            400,
            "ValidationException",
            &format!("Total size of the entries in the request is over the limit ({total} bytes)"),
        );
    }
    let mut results = Vec::new();
    let mut failed = 0;
    // The entry `EntriesReply::MiddleMissing` drops: neither taken nor answered.
    let dropped = (world.put_events_entries == EntriesReply::MiddleMissing && entries.len() >= 3)
        .then_some(entries.len() / 2);
    for (index, entry) in entries.iter().enumerate() {
        if dropped == Some(index) {
            continue;
        }
        let text = |key: &str| entry.get(key).and_then(Value::as_str).unwrap_or_default();
        let bus = match text("EventBusName") {
            "" => "default",
            named => named,
        };
        let detail_ok = serde_json::from_str::<Value>(text("Detail")).is_ok_and(|d| d.is_object());
        let problem = if text("Source").is_empty() || text("DetailType").is_empty() {
            Some((
                "InvalidArgument",
                "Parameter Source and DetailType are required",
            ))
        } else if text("Source").starts_with("aws.") {
            Some((
                "NotAuthorizedForSourceException",
                "Not authorized for the source",
            ))
        } else if !detail_ok {
            Some(("MalformedDetail", "Detail is malformed"))
        } else if !world.bus_exists(bus) {
            Some(("ResourceNotFoundException", "Event bus does not exist."))
        } else if world.refuse_entries > 0 {
            world.refuse_entries -= 1;
            Some(("InternalFailure", "injected entry failure"))
        } else {
            None
        };
        match problem {
            Some((code, message)) => {
                failed += 1;
                results.push(json!({"ErrorCode": code, "ErrorMessage": message}));
            }
            None => {
                let id = world.new_id("ev-", 12);
                let mut stored = entry.clone();
                if let Some(detail) = entry.get("Detail").and_then(Value::as_str) {
                    stored["Detail"] = serde_json::from_str(detail).unwrap_or(Value::Null);
                }
                if land {
                    world.events.push(stored);
                }
                results.push(json!({"EventId": id}));
            }
        }
    }
    let answer = match world.put_events_entries {
        EntriesReply::Full => json!({"FailedEntryCount": failed, "Entries": results}),
        EntriesReply::OneShort => {
            results.pop();
            json!({"FailedEntryCount": failed, "Entries": results})
        }
        EntriesReply::None => json!({"FailedEntryCount": 0}),
        // The dropped entry is already left out of `results`.
        EntriesReply::MiddleMissing => json!({"FailedEntryCount": failed, "Entries": results}),
    };
    let mut reply = Reply::json(200, &answer);
    reply.headers[0].1 = "application/x-amz-json-1.1".to_owned();
    reply
}

/// 256 KB: an entry, and all of a request's entries together, must be smaller.
const LIMIT: usize = 256 * 1024;

/// An entry's size as EventBridge documents it: Time 14 bytes if present, then
/// the UTF-8 bytes of Source, DetailType, Detail and each resource.
fn entry_size(entry: &Value) -> usize {
    let text = |key: &str| entry.get(key).and_then(Value::as_str).map_or(0, str::len);
    let time = if entry.get("Time").is_some() { 14 } else { 0 };
    let resources: usize = entry
        .get("Resources")
        .and_then(Value::as_array)
        .map_or(0, |r| {
            r.iter().filter_map(Value::as_str).map(str::len).sum()
        });
    time + text("Source") + text("DetailType") + text("Detail") + resources
}
