//! The launch baseline (`LAUNCH_BASELINE`): launch settings applied to each
//! server this function creates, and what became of applying them. Parsed at
//! start against DRS's and EC2's service models (enums, id patterns); pure.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::domain::arn::AccountId;
use crate::domain::failure::ConfigError;

const VARIABLE: &str = "LAUNCH_BASELINE";

/// The tag that marks a subnet as a recovery subnet for `matchSourceIp`.
pub const LAUNCH_SUBNET_TAG: &str = "drs-extender:launch-subnet";

/// Security groups a network interface takes at most: EC2's quota, at its
/// highest (the default is 5, adjustable to 16).
const MAX_GROUPS: usize = 16;

/// DRS's `LaunchDisposition` (service model).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LaunchDisposition {
    Stopped,
    Started,
}

impl LaunchDisposition {
    const ALL: [Self; 2] = [Self::Stopped, Self::Started];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stopped => "STOPPED",
            Self::Started => "STARTED",
        }
    }
}

/// DRS's `TargetInstanceTypeRightSizingMethod` (service model).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RightSizing {
    None,
    Basic,
    InAws,
}

impl RightSizing {
    const ALL: [Self; 3] = [Self::None, Self::Basic, Self::InAws];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Basic => "BASIC",
            Self::InAws => "IN_AWS",
        }
    }
}

/// Where a server's launch template puts its primary network interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubnetChoice {
    Id(String),
    /// The subnet tagged [`LAUNCH_SUBNET_TAG`] whose CIDR holds the staging
    /// server's primary IP.
    MatchSourceIp,
}

/// The fields one baseline entry names; `None`: left as DRS made it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BaselineFields {
    pub launch_disposition: Option<LaunchDisposition>,
    pub right_sizing: Option<RightSizing>,
    pub copy_private_ip: Option<bool>,
    pub copy_tags: Option<bool>,
    pub os_byol: Option<bool>,
    pub subnet: Option<SubnetChoice>,
    pub security_group_ids: Option<Vec<String>>,
}

impl BaselineFields {
    /// Whether it names a field of DRS's launch configuration.
    pub fn touches_launch_configuration(&self) -> bool {
        self.launch_disposition.is_some()
            || self.right_sizing.is_some()
            || self.copy_private_ip.is_some()
            || self.copy_tags.is_some()
            || self.os_byol.is_some()
    }

    /// Whether it names a field of the EC2 launch template.
    pub fn touches_template(&self) -> bool {
        self.subnet.is_some() || self.security_group_ids.is_some()
    }

    /// `self`, with every field `over` names taken from `over`.
    fn overridden_by(&self, over: &Self) -> Self {
        Self {
            launch_disposition: over.launch_disposition.or(self.launch_disposition),
            right_sizing: over.right_sizing.or(self.right_sizing),
            copy_private_ip: over.copy_private_ip.or(self.copy_private_ip),
            copy_tags: over.copy_tags.or(self.copy_tags),
            os_byol: over.os_byol.or(self.os_byol),
            subnet: over.subnet.clone().or_else(|| self.subnet.clone()),
            security_group_ids: over
                .security_group_ids
                .clone()
                .or_else(|| self.security_group_ids.clone()),
        }
    }
}

/// `LAUNCH_BASELINE`: a default, and per staging account what differs from it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LaunchBaseline {
    pub default: BaselineFields,
    pub accounts: BTreeMap<AccountId, BaselineFields>,
}

impl LaunchBaseline {
    /// What applies to a server of this staging account: its entry over the
    /// default, field by field.
    pub fn for_account(&self, account: &AccountId) -> BaselineFields {
        match self.accounts.get(account) {
            Some(entry) => self.default.overridden_by(entry),
            None => self.default.clone(),
        }
    }

    /// Parses the variable's JSON; every refusal names the variable and field.
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let value: Value =
            serde_json::from_str(raw).map_err(|e| err(format!("is not JSON: {e}")))?;
        let top = object(&value, "the baseline")?;
        let mut baseline = Self::default();
        for (key, entry) in top {
            match key.as_str() {
                "default" => baseline.default = fields(entry, "default")?,
                "accounts" => {
                    for (account, entry) in object(entry, "accounts")? {
                        let at = format!("accounts.{account}");
                        let id = AccountId::parse(account).map_err(|_| {
                            err(format!("{at}: the key is not a 12-digit account id"))
                        })?;
                        baseline.accounts.insert(id, fields(entry, &at)?);
                    }
                }
                other => {
                    return Err(err(format!(
                        "`{other}` is not a field (expected `default`, `accounts`)"
                    )))
                }
            }
        }
        Ok(baseline)
    }
}

fn err(why: impl Into<String>) -> ConfigError {
    ConfigError {
        variable: VARIABLE,
        why: why.into(),
    }
}

fn object<'a>(value: &'a Value, at: &str) -> Result<&'a Map<String, Value>, ConfigError> {
    value
        .as_object()
        .ok_or_else(|| err(format!("{at}: must be a JSON object")))
}

fn fields(value: &Value, at: &str) -> Result<BaselineFields, ConfigError> {
    let mut fields = BaselineFields::default();
    for (key, v) in object(value, at)? {
        let here = format!("{at}.{key}");
        match key.as_str() {
            "launchDisposition" => {
                fields.launch_disposition = Some(one_of(v, &here, &LaunchDisposition::ALL, |d| {
                    d.as_str()
                })?)
            }
            "targetInstanceTypeRightSizingMethod" => {
                fields.right_sizing = Some(one_of(v, &here, &RightSizing::ALL, |r| r.as_str())?)
            }
            "copyPrivateIp" => fields.copy_private_ip = Some(boolean(v, &here)?),
            "copyTags" => fields.copy_tags = Some(boolean(v, &here)?),
            "licensing" => {
                for (inner, b) in object(v, &here)? {
                    if inner != "osByol" {
                        return Err(err(format!(
                            "{here}.{inner}: is not a field (expected `osByol`)"
                        )));
                    }
                    fields.os_byol = Some(boolean(b, &format!("{here}.osByol"))?);
                }
            }
            "subnetId" => fields.subnet = Some(subnet(v, &here)?),
            "securityGroupIds" => fields.security_group_ids = Some(groups(v, &here)?),
            other => {
                return Err(err(format!(
                    "{at}.{other}: is not a field (expected launchDisposition, targetInstanceTypeRightSizingMethod, copyPrivateIp, copyTags, licensing, subnetId, securityGroupIds)"
                )))
            }
        }
    }
    Ok(fields)
}

fn one_of<T: Copy>(
    v: &Value,
    at: &str,
    all: &[T],
    name: impl Fn(T) -> &'static str,
) -> Result<T, ConfigError> {
    let text = v.as_str().unwrap_or_default();
    all.iter()
        .copied()
        .find(|t| name(*t) == text)
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|t| name(*t)).collect();
            err(format!("{at}: {v} is not one of {}", names.join(", ")))
        })
}

fn boolean(v: &Value, at: &str) -> Result<bool, ConfigError> {
    v.as_bool()
        .ok_or_else(|| err(format!("{at}: {v} is not true or false")))
}

/// An EC2 resource id: its prefix, then 8 or 17 lowercase hex digits (EC2's
/// short and long id formats).
fn is_ec2_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|hex| {
        matches!(hex.len(), 8 | 17)
            && hex
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

fn subnet(v: &Value, at: &str) -> Result<SubnetChoice, ConfigError> {
    match v.as_str() {
        Some("matchSourceIp") => Ok(SubnetChoice::MatchSourceIp),
        Some(id) if is_ec2_id(id, "subnet-") => Ok(SubnetChoice::Id(id.to_owned())),
        _ => Err(err(format!(
            "{at}: {v} is neither a subnet id (subnet-, then 8 or 17 hex digits) nor \"matchSourceIp\""
        ))),
    }
}

fn groups(v: &Value, at: &str) -> Result<Vec<String>, ConfigError> {
    let bad = || {
        err(format!(
            "{at}: must list 1 to {MAX_GROUPS} distinct security group ids (sg-, then 8 or 17 hex digits)"
        ))
    };
    let list = v.as_array().ok_or_else(bad)?;
    let mut ids: Vec<String> = Vec::new();
    for id in list {
        let id = id
            .as_str()
            .filter(|id| is_ec2_id(id, "sg-"))
            .ok_or_else(bad)?;
        if ids.iter().any(|seen| seen == id) {
            return Err(bad());
        }
        ids.push(id.to_owned());
    }
    if ids.is_empty() || ids.len() > MAX_GROUPS {
        return Err(bad());
    }
    Ok(ids)
}

/// Why a baseline was not applied: the function's own reasons, or the code
/// DRS or EC2 refused a call with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BaselineFailure {
    /// `matchSourceIp`: no subnet tagged [`LAUNCH_SUBNET_TAG`] holds the IP.
    NoMatchingSubnet,
    /// `matchSourceIp`: more than one tagged subnet holds the IP.
    AmbiguousSubnet,
    /// `matchSourceIp`: DRS shows no primary IPv4 address for the server.
    NoSourceIp,
    /// DRS names no EC2 launch template for the server, or it has no default version.
    NoLaunchTemplate,
    /// The subnet the baseline names does not exist in the server's region.
    SubnetNotFound,
    /// The template's primary interface names a private IPv4 address outside
    /// the subnet the baseline sets.
    PrivateIpOutsideSubnet,
    /// The template has security groups on the instance, which an interface's
    /// subnet or groups cannot be set beside.
    GroupsOutsideInterface,
    /// The invocation's deadline came before it could be applied.
    Deadline,
    /// A call was refused or failed: the service's own code.
    Service(String),
}

impl BaselineFailure {
    pub fn code(&self) -> &str {
        match self {
            Self::NoMatchingSubnet => "NO_MATCHING_SUBNET",
            Self::AmbiguousSubnet => "AMBIGUOUS_SUBNET",
            Self::NoSourceIp => "NO_SOURCE_IP",
            Self::NoLaunchTemplate => "NO_LAUNCH_TEMPLATE",
            Self::SubnetNotFound => "SUBNET_NOT_FOUND",
            Self::PrivateIpOutsideSubnet => "PRIVATE_IP_OUTSIDE_SUBNET",
            Self::GroupsOutsideInterface => "GROUPS_OUTSIDE_INTERFACE",
            Self::Deadline => "DEADLINE",
            Self::Service(code) => code,
        }
    }
}

/// What the `Created` event says of the baseline: `{"applied": true}` or
/// `{"applied": false, "errorCode": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BaselineResult {
    pub applied: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
}

impl BaselineResult {
    pub fn of(result: &Result<(), BaselineFailure>) -> Self {
        match result {
            Ok(()) => Self {
                applied: true,
                error_code: None,
            },
            Err(failure) => Self {
                applied: false,
                // Bounded like any code another service sends.
                error_code: Some(failure.code().chars().take(128).collect()),
            },
        }
    }
}

/// The one tagged subnet whose CIDR holds `ip`, among `(id, cidr)` pairs.
pub fn pick_subnet<'a>(
    ip: &str,
    tagged: &'a [(String, String)],
) -> Result<&'a (String, String), BaselineFailure> {
    let mut holding = tagged
        .iter()
        .filter(|(_, cidr)| crate::domain::launch::cidr_holds(cidr, ip) == Some(true));
    match (holding.next(), holding.next()) {
        (Some(subnet), None) => Ok(subnet),
        (None, _) => Err(BaselineFailure::NoMatchingSubnet),
        (Some(_), Some(_)) => Err(BaselineFailure::AmbiguousSubnet),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "111122223333";

    #[test]
    fn an_account_entry_overrides_the_default_field_by_field() {
        let b = LaunchBaseline::parse(
            r#"{"default": {"launchDisposition": "STOPPED", "copyPrivateIp": true,
                  "licensing": {"osByol": true}, "subnetId": "matchSourceIp",
                  "securityGroupIds": ["sg-0123456789abcdef0"]},
                "accounts": {"111122223333": {"launchDisposition": "STARTED",
                  "subnetId": "subnet-0a1b2c3d", "targetInstanceTypeRightSizingMethod": "IN_AWS"}}}"#,
        )
        .unwrap();
        let a = b.for_account(&AccountId::parse(A).unwrap());
        assert_eq!(a.launch_disposition, Some(LaunchDisposition::Started));
        assert_eq!(a.right_sizing, Some(RightSizing::InAws));
        assert_eq!(a.copy_private_ip, Some(true));
        assert_eq!(a.os_byol, Some(true));
        assert_eq!(a.copy_tags, None);
        assert_eq!(a.subnet, Some(SubnetChoice::Id("subnet-0a1b2c3d".into())));
        assert_eq!(
            a.security_group_ids,
            Some(vec!["sg-0123456789abcdef0".to_owned()])
        );
        let other = b.for_account(&AccountId::parse("999999999999").unwrap());
        assert_eq!(other.subnet, Some(SubnetChoice::MatchSourceIp));
        assert_eq!(other.launch_disposition, Some(LaunchDisposition::Stopped));
        assert!(other.touches_launch_configuration() && other.touches_template());
        assert!(!BaselineFields::default().touches_template());
    }

    #[test]
    fn every_bad_value_names_the_variable_and_the_field() {
        let cases = [
            ("{not json", "not JSON"),
            ("[]", "object"),
            (r#"{"defaults": {}}"#, "defaults"),
            (
                r#"{"default": {"copyPrivateIP": true}}"#,
                "default.copyPrivateIP",
            ),
            (
                r#"{"default": {"launchDisposition": "RUNNING"}}"#,
                "default.launchDisposition",
            ),
            (
                r#"{"default": {"targetInstanceTypeRightSizingMethod": "basic"}}"#,
                "targetInstanceTypeRightSizingMethod",
            ),
            (r#"{"default": {"copyTags": "yes"}}"#, "default.copyTags"),
            (
                r#"{"default": {"licensing": {"byol": true}}}"#,
                "default.licensing.byol",
            ),
            (
                r#"{"default": {"licensing": {"osByol": 1}}}"#,
                "default.licensing.osByol",
            ),
            (
                r#"{"default": {"subnetId": "subnet-xyz"}}"#,
                "default.subnetId",
            ),
            (
                r#"{"default": {"subnetId": "matchsourceip"}}"#,
                "default.subnetId",
            ),
            (
                r#"{"default": {"securityGroupIds": []}}"#,
                "default.securityGroupIds",
            ),
            (
                r#"{"default": {"securityGroupIds": ["sg-0a1b2c3d", "sg-0a1b2c3d"]}}"#,
                "securityGroupIds",
            ),
            (
                r#"{"default": {"securityGroupIds": "sg-0a1b2c3d"}}"#,
                "securityGroupIds",
            ),
            (r#"{"accounts": {"1111": {}}}"#, "accounts.1111"),
            (
                r#"{"accounts": {"111122223333": {"subnetId": 7}}}"#,
                "accounts.111122223333.subnetId",
            ),
        ];
        for (raw, field) in cases {
            let e = LaunchBaseline::parse(raw).unwrap_err();
            assert_eq!(e.variable, "LAUNCH_BASELINE", "{raw}");
            assert!(e.to_string().contains(field), "{raw}: {e}");
        }
    }

    #[test]
    fn the_subnet_is_the_one_tagged_subnet_holding_the_ip() {
        let tagged = vec![
            ("subnet-1".to_owned(), "10.0.1.0/24".to_owned()),
            ("subnet-2".to_owned(), "10.0.2.0/24".to_owned()),
            ("subnet-3".to_owned(), "10.0.0.0/16".to_owned()),
        ];
        assert_eq!(
            pick_subnet("10.1.0.5", &tagged),
            Err(BaselineFailure::NoMatchingSubnet)
        );
        assert_eq!(
            pick_subnet("10.0.1.5", &tagged),
            Err(BaselineFailure::AmbiguousSubnet)
        );
        assert_eq!(pick_subnet("10.0.1.5", &tagged[..2]), Ok(&tagged[0]));
        assert_eq!(
            pick_subnet("not an ip", &tagged),
            Err(BaselineFailure::NoMatchingSubnet)
        );
    }

    #[test]
    fn the_event_says_applied_or_why_not() {
        let ok = serde_json::to_value(BaselineResult::of(&Ok(()))).unwrap();
        assert_eq!(ok, serde_json::json!({"applied": true}));
        let no = BaselineResult::of(&Err(BaselineFailure::Service(
            "UnauthorizedOperation".into(),
        )));
        assert_eq!(
            serde_json::to_value(no).unwrap(),
            serde_json::json!({"applied": false, "errorCode": "UnauthorizedOperation"})
        );
    }
}
