//! The target account's source-server quota in a region, and how close it is.
//! A spent quota stops every extension in the region, so the share used is
//! reported every run and warned of before it runs out.

use serde::Serialize;

use crate::domain::arn::Region;
use crate::domain::aws_error::ReadStopped;

/// Service Quotas' code for "Max Total source servers Per AWS Account" (`drs`).
pub const SOURCE_SERVER_QUOTA_CODE: &str = "L-E28BE5E0";
pub const SERVICE_CODE: &str = "drs";
/// That quota's default in AWS's General Reference ("AWS Elastic Disaster
/// Recovery endpoints and quotas"), used when Service Quotas cannot be read.
pub const DOCUMENTED_DEFAULT: u64 = 4_000;

/// Where the quota a region is judged by came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum QuotaSource {
    /// Service Quotas' applied value for the account and region.
    ServiceQuotas,
    /// Service Quotas has no applied value: its AWS default for the quota
    /// (`GetAWSDefaultServiceQuota`), which is what applies until one is raised.
    AwsDefault,
    /// Neither could be read: AWS's documented default, the last resort, which a
    /// raised quota exceeds (the share used is then overstated, never understated).
    DocumentedDefault,
}

/// A Service Quotas value this function will judge by, or why not.
pub fn read_quota(value: Option<f64>) -> Result<u64, &'static str> {
    match value {
        None => Err(NO_QUOTA_VALUE),
        // The model allows 0 to 1e10; a quota of none, or a fraction, is no
        // source-server count a share could be taken of.
        Some(v) if (1.0..=1e10).contains(&v) && v.fract() == 0.0 => Ok(v as u64),
        Some(_) => Err(QUOTA_VALUE_UNUSABLE),
    }
}

pub const NO_QUOTA_VALUE: &str = "NO_QUOTA_VALUE";
pub const QUOTA_VALUE_UNUSABLE: &str = "QUOTA_VALUE_UNUSABLE";

/// One region's quota, as `Reconciliation Completed` reports it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionQuota {
    pub region: Region,
    /// Source servers the target account holds in the region (its own and every
    /// extended one). When `counted` is false, the listing stopped short and this
    /// is only as many as it saw.
    pub source_servers: u64,
    pub counted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count_error: Option<ReadStopped>,
    pub quota: u64,
    pub quota_source: QuotaSource,
    /// Why Service Quotas could not be read, when the default is used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota_error: Option<String>,
    /// Percent of the quota used, to one decimal place.
    pub used_percent: f64,
    /// Past `QUOTA_WARN_PERCENT`.
    pub warning: bool,
}

/// What one region's read found.
#[derive(Clone, Debug, PartialEq)]
pub struct QuotaReading {
    pub source_servers: u64,
    pub count_error: Option<ReadStopped>,
    /// The applied quota, or why it could not be read.
    pub quota: Result<u64, String>,
    /// Service Quotas' AWS default for the quota, asked for only when the applied
    /// value could not be read; `None` when it could not be read either.
    pub aws_default: Option<u64>,
}

/// Judges a region's reading against `warn_percent`. A count that stopped short
/// is a lower bound: it warns when even that is past the line.
pub fn judge(region: Region, reading: QuotaReading, warn_percent: u8) -> RegionQuota {
    let (quota, quota_source, quota_error) = match reading.quota {
        Ok(quota) => (quota, QuotaSource::ServiceQuotas, None),
        Err(why) => match reading.aws_default {
            Some(quota) => (quota, QuotaSource::AwsDefault, Some(why)),
            None => (
                DOCUMENTED_DEFAULT,
                QuotaSource::DocumentedDefault,
                Some(why),
            ),
        },
    };
    let quota = quota.max(1);
    let used = reading.source_servers as f64 * 100.0 / quota as f64;
    RegionQuota {
        region,
        source_servers: reading.source_servers,
        counted: reading.count_error.is_none(),
        count_error: reading.count_error,
        quota,
        quota_source,
        quota_error,
        used_percent: (used * 10.0).round() / 10.0,
        // Exact, in integers: 3,200 of 4,000 is 80 %, not past it.
        warning: u128::from(reading.source_servers) * 100
            > u128::from(quota) * u128::from(warn_percent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::aws_error::ErrorKind;

    fn region() -> Region {
        Region::parse("us-east-1").unwrap()
    }

    fn reading(servers: u64, quota: Result<u64, String>) -> QuotaReading {
        QuotaReading {
            source_servers: servers,
            count_error: None,
            quota,
            aws_default: None,
        }
    }

    #[test]
    fn warns_only_past_the_percent() {
        assert!(!judge(region(), reading(3_200, Ok(4_000)), 80).warning);
        let past = judge(region(), reading(3_201, Ok(4_000)), 80);
        assert!(past.warning);
        assert_eq!(past.used_percent, 80.0);
        assert_eq!(past.quota_source, QuotaSource::ServiceQuotas);
        assert!(!judge(region(), reading(1, Ok(1)), 100).warning);
        assert!(judge(region(), reading(2, Ok(1)), 100).warning);
    }

    #[test]
    fn an_unreadable_quota_is_judged_by_the_documented_default_and_says_so() {
        let judged = judge(
            region(),
            reading(3_900, Err("AccessDeniedException".into())),
            80,
        );
        assert_eq!(judged.quota, DOCUMENTED_DEFAULT);
        assert_eq!(judged.quota_source, QuotaSource::DocumentedDefault);
        assert_eq!(judged.quota_error.as_deref(), Some("AccessDeniedException"));
        assert!(judged.warning);
        let json = serde_json::to_value(&judged).unwrap();
        assert_eq!(json["quotaSource"], "DOCUMENTED_DEFAULT");
        assert_eq!(json["usedPercent"], 97.5);
    }

    #[test]
    fn no_applied_value_is_judged_by_the_aws_default_before_the_documented_one() {
        let judged = judge(
            region(),
            QuotaReading {
                aws_default: Some(5_000),
                ..reading(4_100, Err("NoSuchResourceException".into()))
            },
            80,
        );
        assert_eq!(judged.quota, 5_000);
        assert_eq!(judged.quota_source, QuotaSource::AwsDefault);
        assert_eq!(
            judged.quota_error.as_deref(),
            Some("NoSuchResourceException")
        );
        assert!(judged.warning, "82 % of 5,000");
        let json = serde_json::to_value(&judged).unwrap();
        assert_eq!(json["quotaSource"], "AWS_DEFAULT");
    }

    #[test]
    fn a_short_count_is_a_lower_bound() {
        let judged = judge(
            region(),
            QuotaReading {
                source_servers: 3_500,
                count_error: Some(ReadStopped::Call(ErrorKind::Deadline)),
                quota: Ok(4_000),
                aws_default: None,
            },
            80,
        );
        assert!(!judged.counted);
        assert!(judged.warning, "even the part counted is past the line");
    }

    #[test]
    fn only_whole_positive_quotas_are_judged_by() {
        assert_eq!(read_quota(Some(4_000.0)), Ok(4_000));
        assert_eq!(read_quota(None), Err(NO_QUOTA_VALUE));
        for bad in [0.0, -1.0, 0.5, 12.5, f64::NAN, f64::INFINITY, 1e11] {
            assert_eq!(read_quota(Some(bad)), Err(QUOTA_VALUE_UNUSABLE), "{bad}");
        }
    }
}
