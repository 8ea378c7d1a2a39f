//! Service Quotas (awsJson1.1), `GetServiceQuota` and `GetAWSDefaultServiceQuota`
//! only: DRS's source-server quota of the calling account in the region, applied
//! and default, answered as the world's switches say. Any other quota does not
//! exist here.

use serde_json::{json, Value};

use crate::reply::Reply;
use crate::world::{SourceServerQuota, World};

pub const SOURCE_SERVER_QUOTA_CODE: &str = "L-E28BE5E0";

pub fn handle(world: &World, operation: &str, account: &str, region: &str, body: &Value) -> Reply {
    if operation != "GetServiceQuota" && operation != "GetAWSDefaultServiceQuota" {
        return Reply::aws_json_error(
            400,
            "UnknownOperationException",
            "only GetServiceQuota and GetAWSDefaultServiceQuota are served here",
        );
    }
    let (Some(service), Some(code)) = (
        body.get("ServiceCode").and_then(Value::as_str),
        body.get("QuotaCode").and_then(Value::as_str),
    ) else {
        return Reply::aws_json_error(
            400,
            "IllegalArgumentException",
            "ServiceCode and QuotaCode are required",
        );
    };
    if service != "drs" || code != SOURCE_SERVER_QUOTA_CODE {
        return Reply::aws_json_error(
            400,
            "NoSuchResourceException",
            "The request failed because the specified service quota does not exist.",
        );
    }
    let applied = if operation == "GetServiceQuota" {
        world.source_server_quota
    } else {
        match world.source_server_quota_default {
            Some(value) => SourceServerQuota::Applied(value),
            None => SourceServerQuota::Refused,
        }
    };
    let value = match applied {
        SourceServerQuota::Refused => {
            return Reply::aws_json_error(
                400,
                "AccessDeniedException",
                "You do not have sufficient access to perform this action.",
            )
        }
        SourceServerQuota::Absent => {
            return Reply::aws_json_error(
                400,
                "NoSuchResourceException",
                "The request failed because the specified service quota does not exist.",
            )
        }
        SourceServerQuota::NoValue => None,
        SourceServerQuota::Applied(value) => Some(value),
    };
    let mut quota = json!({
        "ServiceCode": "drs",
        "ServiceName": "AWS Elastic Disaster Recovery",
        "QuotaArn": format!("arn:{}:servicequotas:{region}:{account}:drs/{SOURCE_SERVER_QUOTA_CODE}", World::partition(region)),
        "QuotaCode": SOURCE_SERVER_QUOTA_CODE,
        "QuotaName": "Max Total source servers Per AWS Account",
        "Unit": "None",
        "Adjustable": true,
        "GlobalQuota": false,
    });
    if let Some(value) = value {
        quota["Value"] = json!(value);
    }
    let mut reply = Reply::json(200, &json!({"Quota": quota}));
    reply.headers[0].1 = "application/x-amz-json-1.1".to_owned();
    reply
}
