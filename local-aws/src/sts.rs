//! STS `AssumeRole` (awsQuery): hands out keys that the DRS side maps back to the
//! role's account, so tests can see which credentials signed each call. And
//! `GetCallerIdentity`: the account of the key that signed it.

use crate::reply::{xml_escape, Reply};
use crate::world::World;

pub fn handle(world: &mut World, account: &str, form: &[(String, String)]) -> Reply {
    let get = |key: &str| form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    if get("Action") == Some("GetCallerIdentity") {
        return Reply::xml(format!(
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult>\
<Arn>arn:aws:iam::{account}:user/local</Arn><UserId>AIDALOCAL</UserId><Account>{account}</Account>\
</GetCallerIdentityResult><ResponseMetadata><RequestId>local</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
        ));
    }
    if get("Action") != Some("AssumeRole") {
        return Reply::query_error(
            400,
            "InvalidAction",
            "only AssumeRole and GetCallerIdentity are served here",
        );
    }
    let Some(role_arn) = get("RoleArn") else {
        return Reply::query_error(400, "ValidationError", "RoleArn is required");
    };
    let Some(session) = get("RoleSessionName").filter(|s| (2..=64).contains(&s.len())) else {
        return Reply::query_error(
            400,
            "ValidationError",
            "RoleSessionName must be 2 to 64 characters",
        );
    };
    let fields: Vec<&str> = role_arn.splitn(6, ':').collect();
    let (account, role_name) = match fields.as_slice() {
        ["arn", _, "iam", "", account, resource]
            if account.len() == 12 && resource.starts_with("role/") =>
        {
            (
                account.to_string(),
                resource.rsplit('/').next().unwrap_or_default().to_owned(),
            )
        }
        _ => return Reply::query_error(400, "ValidationError", "RoleArn is not a role ARN"),
    };
    if let Some(required) = world.external_ids.get(role_arn) {
        if get("ExternalId") != Some(required.as_str()) {
            return Reply::query_error(
                403,
                "AccessDenied",
                "Not authorized to perform sts:AssumeRole",
            );
        }
    }
    let key = world.new_id("ASIALOCAL", 11).to_uppercase();
    world.keys.insert(key.clone(), account.clone());
    Reply::xml(format!(
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult>\
<Credentials><AccessKeyId>{key}</AccessKeyId><SecretAccessKey>local-secret</SecretAccessKey>\
<SessionToken>local-session-{key}</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>\
<AssumedRoleUser><AssumedRoleId>AROALOCAL:{session}</AssumedRoleId>\
<Arn>arn:aws:sts::{account}:assumed-role/{role}/{session}</Arn></AssumedRoleUser>\
</AssumeRoleResult><ResponseMetadata><RequestId>local</RequestId></ResponseMetadata></AssumeRoleResponse>",
        session = xml_escape(session),
        role = xml_escape(&role_name),
    ))
}
