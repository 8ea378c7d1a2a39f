//! EC2 in the target account, as launch readiness reads it: VPCs (a default one
//! per region unless removed), subnets, security groups, launch templates with
//! versions, instance type offerings per zone. EC2's query protocol: a form with
//! `Action`, lists as `Name.N`, filters as `Filter.N.Name`/`Filter.N.Value.M`;
//! XML replies named as the model's `locationName`s, errors as
//! `<Response><Errors><Error>`.

use std::collections::{BTreeMap, BTreeSet};

use crate::reply::{xml_escape, Reply};
use crate::world::{Ec2UnknownIds, InterfaceInheritance, TemplateChecks, World};

/// Instance types every zone offers unless told otherwise.
const OFFERED: &[&str] = &["t3.small", "t3.medium", "m5.large", "m5.xlarge", "c5.large"];

#[derive(Clone, Debug)]
pub struct Subnet {
    pub id: String,
    pub region: String,
    pub vpc_id: String,
    pub cidr: String,
    pub zone: String,
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug)]
pub struct SecurityGroup {
    pub id: String,
    pub region: String,
    pub vpc_id: String,
}

/// One version of a launch template, as far as launch readiness reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TemplateVersion {
    pub subnet_id: Option<String>,
    /// The primary network interface's groups.
    pub security_group_ids: Vec<String>,
    /// The instance's own `SecurityGroupIds`, outside any interface: EC2 says
    /// groups go on the interface where one is given.
    pub instance_groups: Vec<String>,
    pub private_ip: Option<String>,
    pub instance_type: Option<String>,
}

#[derive(Clone, Debug)]
pub struct LaunchTemplate {
    pub id: String,
    pub region: String,
    pub versions: Vec<TemplateVersion>,
    /// 1-based, as EC2 numbers versions.
    pub default_version: usize,
}

/// What EC2 holds in the target account.
#[derive(Clone, Debug, Default)]
pub struct Ec2State {
    pub(crate) subnets: BTreeMap<String, Subnet>,
    pub(crate) groups: BTreeMap<String, SecurityGroup>,
    pub(crate) templates: BTreeMap<String, LaunchTemplate>,
    /// Regions whose default VPC was deleted.
    pub(crate) no_default_vpc: BTreeSet<String>,
    /// Instance types by (region, zone), where not the usual list.
    pub(crate) offered: BTreeMap<(String, String), BTreeSet<String>>,
    /// The first version of the templates DRS makes from now on, where not
    /// the usual one.
    pub(crate) new_templates: Option<TemplateVersion>,
}

/// A region's default VPC.
pub fn default_vpc_id(region: &str) -> String {
    format!("vpc-default-{region}")
}

impl World {
    pub fn add_subnet(&mut self, region: &str, id: &str, vpc_id: &str, cidr: &str, zone: &str) {
        self.ec2.subnets.insert(
            id.to_owned(),
            Subnet {
                id: id.to_owned(),
                region: region.to_owned(),
                vpc_id: vpc_id.to_owned(),
                cidr: cidr.to_owned(),
                zone: zone.to_owned(),
                tags: BTreeMap::new(),
            },
        );
    }

    pub fn tag_subnet(&mut self, id: &str, key: &str, value: &str) {
        if let Some(subnet) = self.ec2.subnets.get_mut(id) {
            subnet.tags.insert(key.to_owned(), value.to_owned());
        }
    }

    pub fn add_security_group(&mut self, region: &str, id: &str, vpc_id: &str) {
        self.ec2.groups.insert(
            id.to_owned(),
            SecurityGroup {
                id: id.to_owned(),
                region: region.to_owned(),
                vpc_id: vpc_id.to_owned(),
            },
        );
    }

    pub fn remove_default_vpc(&mut self, region: &str) {
        self.ec2.no_default_vpc.insert(region.to_owned());
    }

    /// Only these instance types are offered in this zone.
    pub fn offer_only(&mut self, region: &str, zone: &str, types: &[&str]) {
        self.ec2.offered.insert(
            (region.to_owned(), zone.to_owned()),
            types.iter().map(|t| (*t).to_owned()).collect(),
        );
    }

    /// The templates DRS makes for servers from now on start as `first`.
    pub fn make_templates_like(&mut self, first: TemplateVersion) {
        self.ec2.new_templates = Some(first);
    }

    pub fn delete_launch_template(&mut self, id: &str) {
        self.ec2.templates.remove(id);
    }

    /// The default version of a launch template, to change what it says.
    pub fn launch_template_default_mut(&mut self, id: &str) -> Option<&mut TemplateVersion> {
        let template = self.ec2.templates.get_mut(id)?;
        let at = template.default_version.checked_sub(1)?;
        template.versions.get_mut(at)
    }

    /// The default version of a launch template, as it stands.
    pub fn launch_template_default(&self, id: &str) -> Option<&TemplateVersion> {
        let template = self.ec2.templates.get(id)?;
        template
            .versions
            .get(template.default_version.checked_sub(1)?)
    }

    /// How many versions a template has.
    pub fn launch_template_versions(&self, id: &str) -> usize {
        self.ec2.templates.get(id).map_or(0, |t| t.versions.len())
    }

    /// A new launch template, as DRS makes one for each server.
    pub(crate) fn new_launch_template(&mut self, region: &str, first: TemplateVersion) -> String {
        let id = self.new_id("lt-", 17);
        self.ec2.templates.insert(
            id.clone(),
            LaunchTemplate {
                id: id.clone(),
                region: region.to_owned(),
                versions: vec![first],
                default_version: 1,
            },
        );
        id
    }
}

/// One EC2 request. `form` is the query protocol's form, `Action` included.
pub fn handle(world: &mut World, region: &str, form: &[(String, String)]) -> Reply {
    if world.ec2_refuses {
        return error(
            403,
            "UnauthorizedOperation",
            "You are not authorized to perform this operation.",
        );
    }
    let action = value(form, "Action").unwrap_or_default();
    let writes = matches!(
        action,
        "CreateLaunchTemplateVersion" | "ModifyLaunchTemplate"
    );
    if writes && world.ec2_refuses_writes {
        return error(
            403,
            "UnauthorizedOperation",
            "You are not authorized to perform this operation.",
        );
    }
    if value(form, "Version") != Some("2016-11-15") {
        return error(400, "InvalidParameterValue", "Version must be 2016-11-15");
    }
    match action {
        "DescribeSubnets" => describe_subnets(world, region, form),
        "DescribeSecurityGroups" => describe_groups(world, region, form),
        "DescribeVpcs" => describe_vpcs(world, region, form),
        "DescribeLaunchTemplateVersions" => describe_template_versions(world, region, form),
        "DescribeInstanceTypeOfferings" => describe_offerings(world, region, form),
        "CreateLaunchTemplateVersion" => create_template_version(world, region, form),
        "ModifyLaunchTemplate" => modify_template(world, region, form),
        _ => error(
            400,
            "InvalidAction",
            &format!("The action {action} is not valid for this web service."),
        ),
    }
}

/// An EC2 error, as the query protocol gives it.
pub fn error(status: u16, code: &str, message: &str) -> Reply {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{}</Message></Error></Errors><RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>",
        xml_escape(message)
    );
    let mut reply = Reply::xml(body);
    reply.status = status;
    reply
}

fn value<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The members of a list serialised as `name.1`, `name.2`, ...
fn list(form: &[(String, String)], name: &str) -> Vec<String> {
    let prefix = format!("{name}.");
    let mut numbered: Vec<(usize, String)> = form
        .iter()
        .filter_map(|(k, v)| {
            let n = k.strip_prefix(&prefix)?.parse().ok()?;
            Some((n, v.clone()))
        })
        .collect();
    numbered.sort();
    numbered.into_iter().map(|(_, v)| v).collect()
}

/// Filters by name: `Filter.N.Name` with its `Filter.N.Value.M`.
fn filters(form: &[(String, String)]) -> BTreeMap<String, Vec<String>> {
    let mut by_number: BTreeMap<usize, (String, Vec<String>)> = BTreeMap::new();
    for (key, v) in form {
        let Some(rest) = key.strip_prefix("Filter.") else {
            continue;
        };
        let mut parts = rest.splitn(2, '.');
        let Some(n) = parts.next().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let entry = by_number.entry(n).or_default();
        match parts.next() {
            Some("Name") => entry.0 = v.clone(),
            Some(field) if field.starts_with("Value.") => entry.1.push(v.clone()),
            _ => {}
        }
    }
    by_number.into_values().collect()
}

fn response(action: &str, inner: &str) -> Reply {
    Reply::xml(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{action}Response xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>00000000-0000-0000-0000-000000000000</requestId>{inner}</{action}Response>"
    ))
}

/// Things asked for by id: each one unknown fails the whole call (EC2's rule),
/// unless the world says unknown ids are left out.
fn by_ids<'a, T>(
    world: &'a World,
    ids: &[String],
    known: impl Fn(&str) -> Option<&'a T>,
    not_found: (&str, &str),
) -> Result<Vec<&'a T>, Reply> {
    let mut found = Vec::new();
    for id in ids {
        match known(id) {
            Some(item) => found.push(item),
            None if world.ec2_unknown_ids == Ec2UnknownIds::Omitted => {}
            None => {
                return Err(error(
                    400,
                    not_found.0,
                    &format!("The {} '{id}' does not exist", not_found.1),
                ))
            }
        }
    }
    Ok(found)
}

fn describe_subnets(world: &World, region: &str, form: &[(String, String)]) -> Reply {
    let ids = list(form, "SubnetId");
    let in_region = |id: &str| world.ec2.subnets.get(id).filter(|s| s.region == region);
    let subnets: Vec<&Subnet> = if ids.is_empty() {
        let tag_keys = filters(form).remove("tag-key");
        world
            .ec2
            .subnets
            .values()
            .filter(|s| s.region == region)
            .filter(|s| {
                tag_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| s.tags.contains_key(k)))
            })
            .collect()
    } else {
        match by_ids(
            world,
            &ids,
            in_region,
            ("InvalidSubnetID.NotFound", "subnet ID"),
        ) {
            Ok(found) => found,
            Err(reply) => return reply,
        }
    };
    let items: String = subnets
        .iter()
        .map(|s| {
            let tags: String = s
                .tags
                .iter()
                .map(|(k, v)| {
                    format!(
                        "<item><key>{}</key><value>{}</value></item>",
                        xml_escape(k),
                        xml_escape(v)
                    )
                })
                .collect();
            format!(
                "<item><subnetId>{}</subnetId><vpcId>{}</vpcId><cidrBlock>{}</cidrBlock><availabilityZone>{}</availabilityZone><state>available</state><availableIpAddressCount>250</availableIpAddressCount><defaultForAz>false</defaultForAz><tagSet>{tags}</tagSet></item>",
                s.id, s.vpc_id, s.cidr, s.zone
            )
        })
        .collect();
    response(
        "DescribeSubnets",
        &format!("<subnetSet>{items}</subnetSet>"),
    )
}

fn describe_groups(world: &World, region: &str, form: &[(String, String)]) -> Reply {
    let ids = list(form, "GroupId");
    let in_region = |id: &str| world.ec2.groups.get(id).filter(|g| g.region == region);
    let groups = match by_ids(
        world,
        &ids,
        in_region,
        ("InvalidGroup.NotFound", "security group"),
    ) {
        Ok(found) => found,
        Err(reply) => return reply,
    };
    let items: String = groups
        .iter()
        .map(|g| {
            format!(
                "<item><groupId>{}</groupId><groupName>{}</groupName><vpcId>{}</vpcId><groupDescription>local</groupDescription></item>",
                g.id, g.id, g.vpc_id
            )
        })
        .collect();
    response(
        "DescribeSecurityGroups",
        &format!("<securityGroupInfo>{items}</securityGroupInfo>"),
    )
}

/// Only the default VPC is modelled as a VPC of its own; the others exist as
/// their subnets' and groups' `vpcId`.
fn describe_vpcs(world: &World, region: &str, form: &[(String, String)]) -> Reply {
    let wants_default = filters(form)
        .get("is-default")
        .is_some_and(|v| v.iter().any(|v| v == "true"));
    let has_default = !world.ec2.no_default_vpc.contains(region);
    let item = if wants_default && has_default {
        format!(
            "<item><vpcId>{}</vpcId><cidrBlock>172.31.0.0/16</cidrBlock><isDefault>true</isDefault><state>available</state></item>",
            default_vpc_id(region)
        )
    } else {
        String::new()
    };
    response("DescribeVpcs", &format!("<vpcSet>{item}</vpcSet>"))
}

fn version_xml(template: &LaunchTemplate, number: usize, version: &TemplateVersion) -> String {
    let groups: String = version
        .security_group_ids
        .iter()
        .map(|g| format!("<groupId>{g}</groupId>"))
        .collect();
    let mut interface = format!("<deviceIndex>0</deviceIndex><groupSet>{groups}</groupSet>");
    if let Some(subnet) = &version.subnet_id {
        interface.push_str(&format!("<subnetId>{subnet}</subnetId>"));
    }
    if let Some(ip) = &version.private_ip {
        interface.push_str(&format!("<privateIpAddress>{ip}</privateIpAddress>"));
    }
    let mut instance_type = version
        .instance_type
        .as_ref()
        .map(|t| format!("<instanceType>{t}</instanceType>"))
        .unwrap_or_default();
    if !version.instance_groups.is_empty() {
        let items: String = version
            .instance_groups
            .iter()
            .map(|g| format!("<item>{g}</item>"))
            .collect();
        instance_type.push_str(&format!("<securityGroupIdSet>{items}</securityGroupIdSet>"));
    }
    format!(
        "<item><launchTemplateId>{}</launchTemplateId><launchTemplateName>drs-{}</launchTemplateName><versionNumber>{number}</versionNumber><defaultVersion>{}</defaultVersion><launchTemplateData>{instance_type}<networkInterfaceSet><item>{interface}</item></networkInterfaceSet></launchTemplateData></item>",
        template.id,
        template.id,
        number == template.default_version
    )
}

fn describe_template_versions(world: &World, region: &str, form: &[(String, String)]) -> Reply {
    let Some(id) = value(form, "LaunchTemplateId") else {
        return error(
            400,
            "MissingParameter",
            "The request must contain the parameter LaunchTemplateId",
        );
    };
    let Some(template) = world.ec2.templates.get(id).filter(|t| t.region == region) else {
        return error(
            400,
            "InvalidLaunchTemplateId.NotFound",
            &format!("The specified launch template, with template ID {id}, does not exist."),
        );
    };
    let mut items = String::new();
    for asked in list(form, "LaunchTemplateVersion") {
        let number = match asked.as_str() {
            "$Default" => template.default_version,
            "$Latest" => template.versions.len(),
            n => n.parse().unwrap_or(0),
        };
        let Some(version) = number
            .checked_sub(1)
            .and_then(|at| template.versions.get(at))
        else {
            return error(
                400,
                "InvalidLaunchTemplateId.VersionNotFound",
                &format!("Could not find launch template version {asked}."),
            );
        };
        items.push_str(&version_xml(template, number, version));
    }
    response(
        "DescribeLaunchTemplateVersions",
        &format!("<launchTemplateVersionSet>{items}</launchTemplateVersionSet>"),
    )
}

fn describe_offerings(world: &World, region: &str, form: &[(String, String)]) -> Reply {
    if value(form, "LocationType") != Some("availability-zone") {
        return error(
            400,
            "InvalidParameterValue",
            "only LocationType availability-zone is modelled",
        );
    }
    let by_name = filters(form);
    let zones = by_name.get("location").cloned().unwrap_or_default();
    let types = by_name.get("instance-type");
    let mut items = String::new();
    for zone in zones {
        let offered: BTreeSet<String> = world
            .ec2
            .offered
            .get(&(region.to_owned(), zone.clone()))
            .cloned()
            .unwrap_or_else(|| OFFERED.iter().map(|t| (*t).to_owned()).collect());
        for t in offered
            .iter()
            .filter(|t| types.is_none_or(|asked| asked.contains(t)))
        {
            items.push_str(&format!(
                "<item><instanceType>{t}</instanceType><locationType>availability-zone</locationType><location>{zone}</location></item>"
            ));
        }
    }
    response(
        "DescribeInstanceTypeOfferings",
        &format!("<instanceTypeOfferingSet>{items}</instanceTypeOfferingSet>"),
    )
}

/// A new version from the source version (or the default), with the network
/// interface's subnet and groups the request gives.
fn create_template_version(world: &mut World, region: &str, form: &[(String, String)]) -> Reply {
    let inheritance = world.template_interfaces;
    let Some(id) = value(form, "LaunchTemplateId").map(str::to_owned) else {
        return error(
            400,
            "MissingParameter",
            "The request must contain the parameter LaunchTemplateId",
        );
    };
    let Some(template) = world
        .ec2
        .templates
        .get_mut(&id)
        .filter(|t| t.region == region)
    else {
        return error(
            400,
            "InvalidLaunchTemplateId.NotFound",
            &format!("The specified launch template, with template ID {id}, does not exist."),
        );
    };
    let source = value(form, "SourceVersion")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(template.default_version);
    let Some(mut version) = source
        .checked_sub(1)
        .and_then(|at| template.versions.get(at))
        .cloned()
    else {
        return error(
            400,
            "InvalidLaunchTemplateId.VersionNotFound",
            "Could not find the source version.",
        );
    };
    let prefix = "LaunchTemplateData.NetworkInterface.1.";
    let interface_sent = form.iter().any(|(k, _)| k.starts_with(prefix));
    let own_groups = list(form, "LaunchTemplateData.SecurityGroupId");
    let sent = |field: &str| value(form, &format!("{prefix}{field}")).map(str::to_owned);
    let interface_groups = list(form, &format!("{prefix}SecurityGroupId"));
    if interface_sent {
        match inheritance {
            // The interface sent is the interface: what it leaves out is gone.
            InterfaceInheritance::Replace => {
                version.subnet_id = sent("SubnetId");
                version.security_group_ids = interface_groups.clone();
                version.private_ip = sent("PrivateIpAddress");
            }
            // Field by field over the source version's interface.
            InterfaceInheritance::Merge => {
                version.subnet_id = sent("SubnetId").or(version.subnet_id);
                if !interface_groups.is_empty() {
                    version.security_group_ids = interface_groups.clone();
                }
                version.private_ip = sent("PrivateIpAddress").or(version.private_ip);
            }
        }
    }
    if !own_groups.is_empty() {
        version.instance_groups = own_groups.clone();
    }
    let mut issues: Vec<(&str, String)> = Vec::new();
    // EC2: "If you specify a network interface, you must specify any security
    // groups as part of the network interface instead of using this parameter";
    // groups inherited from the source version count as given.
    if interface_sent && !version.instance_groups.is_empty() {
        issues.push((
            "InvalidParameterCombination",
            "Network interfaces and an instance-level security groups may not be specified on the same request".into(),
        ));
    }
    if let Some(subnet) = sent("SubnetId") {
        if !world_subnet_in(&world.ec2, region, &subnet) {
            issues.push((
                "InvalidSubnetID.NotFound",
                format!("The subnet ID '{subnet}' does not exist"),
            ));
        }
    }
    for group in interface_groups.iter().chain(&own_groups) {
        if world
            .ec2
            .groups
            .get(group)
            .is_none_or(|g| g.region != region)
        {
            issues.push((
                "InvalidGroup.NotFound",
                format!("The security group '{group}' does not exist"),
            ));
        }
    }
    if let (TemplateChecks::Refuse, Some((code, message))) = (world.template_checks, issues.first())
    {
        return error(400, code, message);
    }
    let Some(template) = world.ec2.templates.get_mut(&id) else {
        return error(500, "InternalError", "the template went away");
    };
    template.versions.push(version.clone());
    let number = template.versions.len();
    let xml = version_xml(template, number, &version)
        .replacen("<item>", "<launchTemplateVersion>", 1)
        .trim_end_matches("</item>")
        .to_owned()
        + "</launchTemplateVersion>";
    let warning = if issues.is_empty() {
        String::new()
    } else {
        let items: String = issues
            .iter()
            .map(|(code, message)| {
                format!(
                    "<item><code>{code}</code><message>{}</message></item>",
                    xml_escape(message)
                )
            })
            .collect();
        format!("<warning><errorSet>{items}</errorSet></warning>")
    };
    response("CreateLaunchTemplateVersion", &(xml + &warning))
}

fn world_subnet_in(ec2: &crate::ec2::Ec2State, region: &str, id: &str) -> bool {
    ec2.subnets.get(id).is_some_and(|s| s.region == region)
}

fn modify_template(world: &mut World, region: &str, form: &[(String, String)]) -> Reply {
    let Some(id) = value(form, "LaunchTemplateId").map(str::to_owned) else {
        return error(
            400,
            "MissingParameter",
            "The request must contain the parameter LaunchTemplateId",
        );
    };
    let Some(template) = world
        .ec2
        .templates
        .get_mut(&id)
        .filter(|t| t.region == region)
    else {
        return error(
            400,
            "InvalidLaunchTemplateId.NotFound",
            &format!("The specified launch template, with template ID {id}, does not exist."),
        );
    };
    let Some(number) = value(form, "SetDefaultVersion").and_then(|v| v.parse::<usize>().ok())
    else {
        return error(
            400,
            "InvalidParameterValue",
            "SetDefaultVersion must name a version",
        );
    };
    if number == 0 || number > template.versions.len() {
        return error(
            400,
            "InvalidLaunchTemplateId.VersionNotFound",
            &format!("Could not find launch template version {number}."),
        );
    }
    template.default_version = number;
    response(
        "ModifyLaunchTemplate",
        &format!(
            "<launchTemplate><launchTemplateId>{id}</launchTemplateId><defaultVersionNumber>{number}</defaultVersionNumber></launchTemplate>"
        ),
    )
}
