//! DRS launch configurations in the target account: `GetLaunchConfiguration`
//! and `UpdateLaunchConfiguration`. DRS makes one, with an EC2 launch template,
//! for each source server; here each is made the first time it is asked for.

use serde_json::{json, Value};

use crate::ec2::TemplateVersion;
use crate::reply::Reply;
use crate::world::World;

/// One server's DRS launch configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchConfig {
    /// `None`: DRS names no template.
    pub template_id: Option<String>,
    pub launch_disposition: String,
    pub right_sizing: String,
    pub copy_private_ip: bool,
    pub copy_tags: bool,
    pub os_byol: bool,
}

impl World {
    /// A server's launch configuration, made (with its template) on first use;
    /// `None` for a server the account does not hold.
    pub fn launch_config_mut(&mut self, server_id: &str) -> Option<&mut LaunchConfig> {
        if !self.launch_configs.contains_key(server_id) {
            let region = self
                .extended
                .iter()
                .find(|e| e.id == server_id)
                .map(|e| e.region.clone())
                .or_else(|| {
                    self.own
                        .iter()
                        .find(|o| o.id == server_id)
                        .map(|o| o.region.clone())
                })?;
            // DRS's template names no subnet: EC2 then uses the default VPC.
            let first = self.ec2.new_templates.clone().unwrap_or(TemplateVersion {
                instance_type: Some("t3.small".to_owned()),
                ..TemplateVersion::default()
            });
            let template = self.new_launch_template(&region, first);
            self.launch_configs.insert(
                server_id.to_owned(),
                LaunchConfig {
                    template_id: Some(template),
                    launch_disposition: "STOPPED".to_owned(),
                    right_sizing: "BASIC".to_owned(),
                    copy_private_ip: false,
                    copy_tags: true,
                    os_byol: false,
                },
            );
        }
        self.launch_configs.get_mut(server_id)
    }

    /// The id of the launch template DRS made for a server.
    pub fn launch_template_of(&mut self, server_id: &str) -> Option<String> {
        self.launch_config_mut(server_id)?.template_id.clone()
    }

    /// The staging server's primary IP, as its source properties show it.
    pub fn set_source_ip(&mut self, staging_arn: &str, ip: &str) {
        self.source_ips
            .insert(staging_arn.to_owned(), ip.to_owned());
    }

    pub(crate) fn source_ip(&self, staging_arn: &str) -> &str {
        self.source_ips
            .get(staging_arn)
            .map_or("10.0.1.17", String::as_str)
    }
}

fn server_id(body: &Value) -> Result<&str, Reply> {
    let Some(id) = body.get("sourceServerID").and_then(Value::as_str) else {
        return Err(Reply::validation("sourceServerID", "is required"));
    };
    let well_formed = id.len() == 19
        && id.starts_with("s-")
        && id[2..].chars().all(|c| c.is_ascii_alphanumeric());
    if !well_formed {
        return Err(Reply::validation(
            "sourceServerID",
            "does not match the required pattern",
        ));
    }
    Ok(id)
}

fn held_by(world: &World, account: &str, region: &str, id: &str) -> bool {
    world
        .extended
        .iter()
        .any(|e| e.id == id && e.account == account && e.region == region)
        || world
            .own
            .iter()
            .any(|o| o.id == id && o.account == account && o.region == region)
}

fn answer(id: &str, config: &LaunchConfig) -> Reply {
    let mut body = json!({
        "sourceServerID": id,
        "name": id,
        "launchDisposition": config.launch_disposition,
        "targetInstanceTypeRightSizingMethod": config.right_sizing,
        "copyPrivateIp": config.copy_private_ip,
        "copyTags": config.copy_tags,
        "licensing": {"osByol": config.os_byol},
        "postLaunchEnabled": false,
    });
    if let Some(template) = &config.template_id {
        body["ec2LaunchTemplateID"] = json!(template);
    }
    Reply::json(200, &body)
}

fn not_found() -> Reply {
    Reply::rest_json_error(
        404,
        "ResourceNotFoundException",
        "Source server not found",
        None,
    )
}

pub fn get(world: &mut World, account: &str, region: &str, body: &Value) -> Reply {
    let id = match server_id(body) {
        Ok(id) => id,
        Err(reply) => return reply,
    };
    if !held_by(world, account, region, id) {
        return not_found();
    }
    match world.launch_config_mut(id) {
        Some(config) => answer(id, &config.clone()),
        None => not_found(),
    }
}

/// Sets the fields given; an enum value outside the model's is refused.
pub fn update(world: &mut World, account: &str, region: &str, body: &Value) -> Reply {
    let id = match server_id(body) {
        Ok(id) => id,
        Err(reply) => return reply,
    };
    if !held_by(world, account, region, id) {
        return not_found();
    }
    let enums = [
        ("launchDisposition", &["STOPPED", "STARTED"][..]),
        (
            "targetInstanceTypeRightSizingMethod",
            &["NONE", "BASIC", "IN_AWS"][..],
        ),
    ];
    for (field, allowed) in enums {
        if let Some(v) = body.get(field) {
            if !v.as_str().is_some_and(|v| allowed.contains(&v)) {
                return Reply::validation(field, "is not one of the allowed values");
            }
        }
    }
    for field in ["copyPrivateIp", "copyTags", "postLaunchEnabled"] {
        if body.get(field).is_some_and(|v| !v.is_boolean()) {
            return Reply::validation(field, "must be a boolean");
        }
    }
    if let Some(licensing) = body.get("licensing") {
        let ok = licensing
            .as_object()
            .is_some_and(|l| l.iter().all(|(k, v)| k == "osByol" && v.is_boolean()));
        if !ok {
            return Reply::validation("licensing", "must be {\"osByol\": boolean}");
        }
    }
    let Some(config) = world.launch_config_mut(id) else {
        return not_found();
    };
    if let Some(v) = body.get("launchDisposition").and_then(Value::as_str) {
        config.launch_disposition = v.to_owned();
    }
    if let Some(v) = body
        .get("targetInstanceTypeRightSizingMethod")
        .and_then(Value::as_str)
    {
        config.right_sizing = v.to_owned();
    }
    if let Some(v) = body.get("copyPrivateIp").and_then(Value::as_bool) {
        config.copy_private_ip = v;
    }
    if let Some(v) = body.get("copyTags").and_then(Value::as_bool) {
        config.copy_tags = v;
    }
    if let Some(v) = body.pointer("/licensing/osByol").and_then(Value::as_bool) {
        config.os_byol = v;
    }
    let config = config.clone();
    answer(id, &config)
}
