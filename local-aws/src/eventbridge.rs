//! EventBridge `PutEvents` (awsJson1.1), with per-entry refusals on request.

use serde_json::{json, Value};

use crate::reply::Reply;
use crate::world::World;

pub fn put_events(world: &mut World, body: &Value) -> Reply {
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
    let mut results = Vec::new();
    let mut failed = 0;
    for entry in entries {
        let text = |key: &str| entry.get(key).and_then(Value::as_str).unwrap_or_default();
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
                world.events.push(stored);
                results.push(json!({"EventId": id}));
            }
        }
    }
    let mut reply = Reply::json(
        200,
        &json!({"FailedEntryCount": failed, "Entries": results}),
    );
    reply.headers[0].1 = "application/x-amz-json-1.1".to_owned();
    reply
}
