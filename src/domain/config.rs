//! Configuration, read once at start from the environment (or, in tests, a map).
//! A value that does not parse stops the start with a message naming the variable.

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::arn::{AccountId, Region};
use crate::domain::failure::ConfigError;
use crate::domain::tags::{self, Tags};

/// The role in the target account that every DRS call is made with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetRole {
    pub arn: String,
    pub account: AccountId,
    pub external_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub target_role: Option<TargetRole>,
    /// `None`: any staging account may be acted on.
    pub staging_account_ids: Option<BTreeSet<AccountId>>,
    pub reconcile_regions: Vec<Region>,
    pub result_event_bus: String,
    /// Where fan-out requests go: the bus whose rule invokes this function.
    pub fan_out_event_bus: String,
    pub result_event_source: String,
    pub extension_tags: Tags,
    pub copy_staging_tags: bool,
    pub dry_run: bool,
    pub reconcile_concurrency: usize,
    pub drs_max_rps: u32,
    /// `READINESS_MAX_LAG_SECONDS` and `READINESS_MAX_DRILL_AGE_DAYS`.
    pub readiness: crate::domain::readiness::ReadinessRules,
    /// `STALE_EXTENSIONS` and `STALE_AFTER_HOURS`.
    pub stale: crate::domain::stale::StaleRules,
    /// `QUOTA_WARN_PERCENT`: the share of the source-server quota past which a
    /// reconciliation warns.
    pub quota_warn_percent: u8,
    /// `LAUNCH_CHECKS_PER_RUN`: most servers, besides those a run extended,
    /// whose launch settings it checks; 0 turns the check off.
    pub launch_checks_per_run: usize,
    /// `LAUNCH_BASELINE`: launch settings applied to each server this function
    /// creates; `None`: left as DRS made them.
    pub launch_baseline: Option<crate::domain::baseline::LaunchBaseline>,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads every variable through `lookup`, so tests never touch the process
    /// environment. Empty values count as unset, as they do in SAM parameters.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        let external_id = get("TARGET_ROLE_EXTERNAL_ID")
            .map(|id| parse_external_id(&id))
            .transpose()?;
        let target_role = get("TARGET_ROLE_ARN")
            .map(|arn| parse_role_arn(&arn, external_id.clone()))
            .transpose()?;
        if target_role.is_none() && external_id.is_some() {
            return Err(err(
                "TARGET_ROLE_EXTERNAL_ID",
                "is set but TARGET_ROLE_ARN is not",
            ));
        }

        let staging_account_ids = get("STAGING_ACCOUNT_IDS")
            .map(|raw| {
                parse_list("STAGING_ACCOUNT_IDS", &raw, |v| {
                    AccountId::parse(v).map_err(|e| e.to_string())
                })
            })
            .transpose()?
            .map(|ids| ids.into_iter().collect());

        let reconcile_regions = match get("RECONCILE_REGIONS") {
            Some(raw) => parse_list("RECONCILE_REGIONS", &raw, |v| {
                Region::parse(v).map_err(|e| e.to_string())
            })?,
            None => {
                let own = get("AWS_REGION")
                    .or_else(|| get("AWS_DEFAULT_REGION"))
                    .ok_or_else(|| {
                        err(
                            "RECONCILE_REGIONS",
                            "is not set and the function's region (AWS_REGION) is unknown",
                        )
                    })?;
                vec![Region::parse(&own).map_err(|e| err("AWS_REGION", e.to_string()))?]
            }
        };

        let result_event_bus = get("RESULT_EVENT_BUS").unwrap_or_else(|| "default".to_owned());
        check_event_bus("RESULT_EVENT_BUS", &result_event_bus)?;
        let fan_out_event_bus =
            get("FAN_OUT_EVENT_BUS").unwrap_or_else(|| result_event_bus.clone());
        check_event_bus("FAN_OUT_EVENT_BUS", &fan_out_event_bus)?;
        let result_event_source =
            get("RESULT_EVENT_SOURCE").unwrap_or_else(|| "drs-extender".to_owned());
        check_event_source(&result_event_source)?;

        let extension_tags = match get("EXTENSION_TAGS") {
            Some(raw) => parse_extension_tags(&raw)?,
            None => BTreeMap::new(),
        };

        Ok(Self {
            target_role,
            staging_account_ids,
            reconcile_regions,
            result_event_bus,
            fan_out_event_bus,
            result_event_source,
            extension_tags,
            copy_staging_tags: parse_bool("COPY_STAGING_TAGS", get("COPY_STAGING_TAGS"), true)?,
            dry_run: parse_bool("DRY_RUN", get("DRY_RUN"), false)?,
            reconcile_concurrency: parse_bounded(
                "RECONCILE_CONCURRENCY",
                get("RECONCILE_CONCURRENCY"),
                8,
                1,
                256,
            )?,
            drs_max_rps: parse_bounded("DRS_MAX_RPS", get("DRS_MAX_RPS"), 10, 1, 10_000)?,
            readiness: crate::domain::readiness::ReadinessRules {
                max_lag: std::time::Duration::from_secs(parse_bounded(
                    "READINESS_MAX_LAG_SECONDS",
                    get("READINESS_MAX_LAG_SECONDS"),
                    900,
                    0,
                    7 * 86_400,
                )?),
                max_drill_age: match parse_bounded(
                    "READINESS_MAX_DRILL_AGE_DAYS",
                    get("READINESS_MAX_DRILL_AGE_DAYS"),
                    0u64,
                    0,
                    3_650,
                )? {
                    0 => None,
                    days => Some(std::time::Duration::from_secs(days * 86_400)),
                },
            },
            stale: crate::domain::stale::StaleRules {
                action: match get("STALE_EXTENSIONS").as_deref() {
                    None | Some("report") => crate::domain::stale::StaleAction::Report,
                    Some("delete") => crate::domain::stale::StaleAction::Delete,
                    Some(other) => {
                        return Err(err(
                            "STALE_EXTENSIONS",
                            format!("`{other}` is neither `report` nor `delete`"),
                        ))
                    }
                },
                after: std::time::Duration::from_secs(
                    3_600
                        * parse_bounded(
                            "STALE_AFTER_HOURS",
                            get("STALE_AFTER_HOURS"),
                            72u64,
                            1,
                            8_760,
                        )?,
                ),
            },
            quota_warn_percent: parse_bounded(
                "QUOTA_WARN_PERCENT",
                get("QUOTA_WARN_PERCENT"),
                80u8,
                1,
                100,
            )?,
            launch_checks_per_run: parse_bounded(
                "LAUNCH_CHECKS_PER_RUN",
                get("LAUNCH_CHECKS_PER_RUN"),
                500,
                0,
                100_000,
            )?,
            launch_baseline: get("LAUNCH_BASELINE")
                .map(|raw| crate::domain::baseline::LaunchBaseline::parse(&raw))
                .transpose()?,
        })
    }

    /// Whether the allowlist (if any) lets this staging account be acted on.
    pub fn allows_staging_account(&self, account: &AccountId) -> bool {
        self.staging_account_ids
            .as_ref()
            .is_none_or(|ids| ids.contains(account))
    }
}

fn err(variable: &'static str, why: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        why: why.into(),
    }
}

fn parse_role_arn(raw: &str, external_id: Option<String>) -> Result<TargetRole, ConfigError> {
    let bad = |why: &str| {
        err(
            "TARGET_ROLE_ARN",
            format!("`{raw}` is not an IAM role ARN: {why}"),
        )
    };
    let fields: Vec<&str> = raw.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, resource] = fields.as_slice() else {
        return Err(bad("expected arn:PARTITION:iam::ACCOUNT:role/NAME"));
    };
    if *prefix != "arn" || partition.is_empty() || *service != "iam" || !region.is_empty() {
        return Err(bad("expected arn:PARTITION:iam::ACCOUNT:role/NAME"));
    }
    let account = AccountId::parse(account).map_err(|_| bad("the account is not 12 digits"))?;
    let name_ok = resource
        .strip_prefix("role/")
        .is_some_and(|path| !path.is_empty() && path.len() <= 512 && !path.ends_with('/'));
    if !name_ok {
        return Err(bad("the resource must be role/NAME"));
    }
    Ok(TargetRole {
        arn: raw.to_owned(),
        account,
        external_id,
    })
}

/// STS's `externalIdType`: 2 to 1224 characters of `[\w+=,.@:\/-]`.
fn parse_external_id(raw: &str) -> Result<String, ConfigError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c);
    if (2..=1224).contains(&raw.len()) && raw.chars().all(allowed) {
        Ok(raw.to_owned())
    } else {
        Err(err(
            "TARGET_ROLE_EXTERNAL_ID",
            "must be 2 to 1224 characters of letters, digits and _+=,.@:/-",
        ))
    }
}

fn parse_list<T: Ord>(
    variable: &'static str,
    raw: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, ConfigError> {
    let mut items = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let item = parse(part).map_err(|why| err(variable, why))?;
        if !items.contains(&item) {
            items.push(item);
        }
    }
    if items.is_empty() {
        return Err(err(variable, "lists nothing"));
    }
    Ok(items)
}

fn parse_bool(
    variable: &'static str,
    raw: Option<String>,
    default: bool,
) -> Result<bool, ConfigError> {
    match raw.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(err(variable, format!("`{other}` is not `true` or `false`"))),
    }
}

fn parse_bounded<T>(
    variable: &'static str,
    raw: Option<String>,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(raw) = raw else { return Ok(default) };
    match raw.parse::<T>() {
        Ok(value) if value >= min && value <= max => Ok(value),
        _ => Err(err(
            variable,
            format!("`{raw}` is not a whole number from {min} to {max}"),
        )),
    }
}

/// PutEvents takes a bus name (`[/\.\-_A-Za-z0-9]+`, at most 256) or a bus ARN.
fn check_event_bus(variable: &'static str, bus: &str) -> Result<(), ConfigError> {
    let name_ok = bus.len() <= 256
        && bus
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/.-_".contains(c));
    let arn_ok = bus.starts_with("arn:") && bus.contains(":events:") && bus.contains(":event-bus/");
    if (name_ok || arn_ok) && bus.len() <= 1600 && !bus.chars().any(char::is_whitespace) {
        Ok(())
    } else {
        Err(err(
            variable,
            "is neither an event bus name nor an event bus ARN",
        ))
    }
}

/// EventBridge refuses `aws.` sources from callers; and an `aws.` source would
/// make our own outcome events look like AWS's.
fn check_event_source(source: &str) -> Result<(), ConfigError> {
    if source.starts_with("aws.") {
        Err(err("RESULT_EVENT_SOURCE", "must not start with `aws.`"))
    } else if source.len() > 256 || source.chars().any(|c| c.is_control() || c.is_whitespace()) {
        Err(err(
            "RESULT_EVENT_SOURCE",
            "must be at most 256 characters, without spaces or control characters",
        ))
    } else {
        Ok(())
    }
}

/// Configured tags are checked whole at start: a tag that could never be applied
/// is a deployment mistake, better found before the first server.
fn parse_extension_tags(raw: &str) -> Result<Tags, ConfigError> {
    let tags: Tags = serde_json::from_str(raw).map_err(|e| {
        err(
            "EXTENSION_TAGS",
            format!("is not a JSON object of string values: {e}"),
        )
    })?;
    if let Some(problem) = tags::first_unusable(&tags) {
        return Err(err("EXTENSION_TAGS", problem));
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_follow_the_interface() {
        let c = config(&[("AWS_REGION", "eu-west-1")]).unwrap();
        assert_eq!(c.target_role, None);
        assert_eq!(c.staging_account_ids, None);
        assert_eq!(
            c.reconcile_regions,
            vec![Region::parse("eu-west-1").unwrap()]
        );
        assert_eq!(c.result_event_bus, "default");
        assert_eq!(c.result_event_source, "drs-extender");
        assert!(c.extension_tags.is_empty());
        assert!(c.copy_staging_tags);
        assert!(!c.dry_run);
        assert_eq!(c.reconcile_concurrency, 8);
        assert_eq!(c.drs_max_rps, 10);
    }

    #[test]
    fn reads_every_variable() {
        let c = config(&[
            (
                "TARGET_ROLE_ARN",
                "arn:aws:iam::444455556666:role/drs/extender",
            ),
            ("TARGET_ROLE_EXTERNAL_ID", "org-123"),
            (
                "STAGING_ACCOUNT_IDS",
                " 111122223333, 222233334444,111122223333 ",
            ),
            ("RECONCILE_REGIONS", "us-east-1,eu-west-1"),
            (
                "RESULT_EVENT_BUS",
                "arn:aws:events:us-east-1:444455556666:event-bus/drs",
            ),
            ("RESULT_EVENT_SOURCE", "org.drs-extender"),
            ("EXTENSION_TAGS", r#"{"owner":"dr-team"}"#),
            ("COPY_STAGING_TAGS", "FALSE"),
            ("DRY_RUN", "true"),
            ("RECONCILE_CONCURRENCY", "4"),
            ("DRS_MAX_RPS", "25"),
            ("READINESS_MAX_LAG_SECONDS", "60"),
            ("READINESS_MAX_DRILL_AGE_DAYS", "30"),
            ("STALE_EXTENSIONS", "delete"),
            ("STALE_AFTER_HOURS", "24"),
            ("QUOTA_WARN_PERCENT", "90"),
            ("LAUNCH_BASELINE", r#"{"default": {"copyTags": false}}"#),
        ])
        .unwrap();
        assert_eq!(
            c.launch_baseline.map(|b| b.default.copy_tags),
            Some(Some(false))
        );
        assert_eq!(c.quota_warn_percent, 90);
        assert_eq!(c.stale.action, crate::domain::stale::StaleAction::Delete);
        assert_eq!(c.stale.after.as_secs(), 24 * 3_600);
        assert_eq!(c.readiness.max_lag.as_secs(), 60);
        assert_eq!(
            c.readiness.max_drill_age.map(|d| d.as_secs()),
            Some(30 * 86_400)
        );
        let role = c.target_role.unwrap();
        assert_eq!(role.account.as_str(), "444455556666");
        assert_eq!(role.external_id.as_deref(), Some("org-123"));
        assert_eq!(c.staging_account_ids.unwrap().len(), 2);
        assert_eq!(c.reconcile_regions.len(), 2);
        assert_eq!(c.extension_tags["owner"], "dr-team");
        assert!(!c.copy_staging_tags);
        assert!(c.dry_run);
        assert_eq!(c.reconcile_concurrency, 4);
        assert_eq!(c.drs_max_rps, 25);
    }

    #[test]
    fn every_bad_value_names_its_variable() {
        let cases: &[(&str, &str)] = &[
            ("TARGET_ROLE_ARN", "arn:aws:iam::4444:role/x"),
            ("TARGET_ROLE_ARN", "arn:aws:sts::444455556666:role/x"),
            ("TARGET_ROLE_ARN", "arn:aws:iam::444455556666:user/x"),
            ("TARGET_ROLE_EXTERNAL_ID", "x"),
            ("STAGING_ACCOUNT_IDS", "111122223333,abc"),
            ("STAGING_ACCOUNT_IDS", " , "),
            ("RECONCILE_REGIONS", "us-east-1,Mars"),
            ("RESULT_EVENT_BUS", "my bus"),
            ("RESULT_EVENT_SOURCE", "aws.drs"),
            ("EXTENSION_TAGS", "[1,2]"),
            ("EXTENSION_TAGS", r#"{"aws:owner":"x"}"#),
            ("EXTENSION_TAGS", r#"{"n":1}"#),
            ("COPY_STAGING_TAGS", "yes please"),
            ("DRY_RUN", "1"),
            ("RECONCILE_CONCURRENCY", "0"),
            ("RECONCILE_CONCURRENCY", "eight"),
            ("DRS_MAX_RPS", "-1"),
            ("READINESS_MAX_LAG_SECONDS", "-5"),
            ("READINESS_MAX_DRILL_AGE_DAYS", "forever"),
            ("STALE_EXTENSIONS", "remove"),
            ("STALE_AFTER_HOURS", "0"),
            ("QUOTA_WARN_PERCENT", "0"),
            ("QUOTA_WARN_PERCENT", "101"),
            ("QUOTA_WARN_PERCENT", "80%"),
            ("LAUNCH_CHECKS_PER_RUN", "-1"),
            ("LAUNCH_CHECKS_PER_RUN", "100001"),
            (
                "LAUNCH_BASELINE",
                "{\"default\": {\"copyPrivateIp\": \"on\"}}",
            ),
            ("LAUNCH_BASELINE", "{not json"),
        ];
        for (variable, value) in cases {
            let mut vars = vec![("AWS_REGION", "us-east-1"), (*variable, *value)];
            if *variable == "TARGET_ROLE_EXTERNAL_ID" {
                vars.push(("TARGET_ROLE_ARN", "arn:aws:iam::444455556666:role/x"));
            }
            let e = config(&vars).unwrap_err();
            assert_eq!(e.variable, *variable, "{variable}={value}: {e}");
            assert!(e.to_string().starts_with(variable));
        }
    }

    #[test]
    fn external_id_without_role_and_unknown_region_are_refused() {
        let e = config(&[
            ("AWS_REGION", "us-east-1"),
            ("TARGET_ROLE_EXTERNAL_ID", "abc"),
        ])
        .unwrap_err();
        assert_eq!(e.variable, "TARGET_ROLE_EXTERNAL_ID");
        let e = config(&[]).unwrap_err();
        assert_eq!(e.variable, "RECONCILE_REGIONS");
    }

    #[test]
    fn allowlist_decides_which_accounts_may_be_acted_on() {
        let open = config(&[("AWS_REGION", "us-east-1")]).unwrap();
        let a = AccountId::parse("111122223333").unwrap();
        let b = AccountId::parse("999999999999").unwrap();
        assert!(open.allows_staging_account(&b));
        let closed = config(&[
            ("AWS_REGION", "us-east-1"),
            ("STAGING_ACCOUNT_IDS", "111122223333"),
        ])
        .unwrap();
        assert!(closed.allows_staging_account(&a));
        assert!(!closed.allows_staging_account(&b));
    }
}
