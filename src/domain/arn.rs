//! Identifiers DRS accepts, validated as strictly as its service model allows
//! (`AccountID`, `SourceServerID`, `SourceServerARN`), and a little stricter where
//! the model's pattern would let a look-alike through: the service must be `drs`
//! and the partition must be the region's own.

use std::fmt;

use serde::Serialize;

/// Input that names something DRS could never accept. Messages echo the input
/// shortened and cleaned of control characters, never whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("account id `{0}` is not 12 digits")]
    AccountId(String),
    #[error("source server id `{0}` is not `s-` and 17 letters or digits")]
    SourceServerId(String),
    #[error("region `{0}` is not an AWS region name")]
    Region(String),
    #[error("source server ARN `{arn}` is malformed: {why}")]
    Arn { arn: String, why: &'static str },
}

/// A 12-digit AWS account id (the model's `AccountID`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        if raw.len() == 12 && raw.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InputError::AccountId(shorten(raw)))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A source server id, `s-` and 17 letters or digits (the model's `SourceServerID`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceServerId(String);

impl SourceServerId {
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        match raw.strip_prefix("s-") {
            Some(rest) if rest.len() == 17 && rest.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                Ok(Self(raw.to_owned()))
            }
            _ => Err(InputError::SourceServerId(shorten(raw))),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An AWS region name, with the partition it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Region(String);

impl Region {
    /// Accepts the shape every AWS region name has: a 2-4 letter prefix, one or more
    /// lowercase words, and a 1-2 digit number (`us-east-1`, `us-gov-west-1`,
    /// `eusc-de-east-1`).
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let invalid = || InputError::Region(shorten(raw));
        let parts: Vec<&str> = raw.split('-').collect();
        if parts.len() < 3 || raw.len() > 32 {
            return Err(invalid());
        }
        let (first, rest) = (parts[0], &parts[1..]);
        let (number, words) = rest.split_last().ok_or_else(invalid)?;
        let lowercase = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase());
        let prefix_ok = (2..=4).contains(&first.len()) && lowercase(first);
        let words_ok = words.iter().all(|w| lowercase(w));
        let number_ok =
            (1..=2).contains(&number.len()) && number.bytes().all(|b| b.is_ascii_digit());
        if prefix_ok && words_ok && number_ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(invalid())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The partition a region lives in; extension never crosses partitions.
    pub fn partition(&self) -> &'static str {
        let r = self.0.as_str();
        if r.starts_with("cn-") {
            "aws-cn"
        } else if r.starts_with("us-gov-") {
            "aws-us-gov"
        } else if r.starts_with("us-isob-") {
            "aws-iso-b"
        } else if r.starts_with("us-isof-") {
            "aws-iso-f"
        } else if r.starts_with("us-iso-") {
            "aws-iso"
        } else if r.starts_with("eu-isoe-") {
            "aws-iso-e"
        } else if r.starts_with("eusc-") {
            "aws-eusc"
        } else {
            "aws"
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The ARN of a source server in a staging account:
/// `arn:{partition}:drs:{region}:{account}:source-server/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceServerArn {
    region: Region,
    account: AccountId,
    id: SourceServerId,
}

const SOURCE_SERVER_RESOURCE: &str = "source-server/";

impl SourceServerArn {
    pub fn new(region: Region, account: AccountId, id: SourceServerId) -> Self {
        Self {
            region,
            account,
            id,
        }
    }

    pub fn parse(raw: &str) -> Result<Self, InputError> {
        if !(20..=2048).contains(&raw.len()) {
            return Err(InputError::Arn {
                arn: shorten(raw),
                why: "must be 20 to 2048 characters long",
            });
        }
        let bad = |why: &'static str| InputError::Arn {
            arn: shorten(raw),
            why,
        };
        let mut fields = raw.splitn(6, ':');
        let (
            Some(prefix),
            Some(partition),
            Some(service),
            Some(region),
            Some(account),
            Some(resource),
        ) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        )
        else {
            return Err(bad(
                "must have the form arn:PARTITION:drs:REGION:ACCOUNT:source-server/ID",
            ));
        };
        if prefix != "arn" {
            return Err(bad("must start with `arn:`"));
        }
        if service != "drs" {
            return Err(bad("service must be `drs`"));
        }
        let region = Region::parse(region).map_err(|_| bad("region is not a valid AWS region"))?;
        if partition != region.partition() {
            return Err(bad("partition does not match the region"));
        }
        let account = AccountId::parse(account).map_err(|_| bad("account must be 12 digits"))?;
        let id = resource
            .strip_prefix(SOURCE_SERVER_RESOURCE)
            .ok_or_else(|| bad("resource must be `source-server/ID`"))?;
        let id = SourceServerId::parse(id)
            .map_err(|_| bad("server id must be `s-` and 17 letters or digits"))?;
        Ok(Self::new(region, account, id))
    }

    pub fn region(&self) -> &Region {
        &self.region
    }

    pub fn account(&self) -> &AccountId {
        &self.account
    }

    pub fn id(&self) -> &SourceServerId {
        &self.id
    }
}

impl fmt::Display for SourceServerArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:drs:{}:{}:{}{}",
            self.region.partition(),
            self.region,
            self.account,
            SOURCE_SERVER_RESOURCE,
            self.id.as_str()
        )
    }
}

impl Serialize for SourceServerArn {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Whether a resource in an event names a source server (valid or not); other
/// resources, such as recovery instances, are not ours to act on.
pub fn names_source_server(resource: &str) -> bool {
    resource.contains(":source-server/")
}

/// Keeps what goes into error messages and logs short and on one line, whatever
/// the input held.
pub(crate) fn shorten(raw: &str) -> String {
    const MAX: usize = 96;
    let mut out: String = raw
        .chars()
        .take(MAX)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if raw.chars().count() > MAX {
        out.push('…');
    }
    out
}

/// A well-formed staging server ARN, for the tests of the modules that take one.
#[cfg(test)]
pub(crate) fn example_server() -> SourceServerArn {
    SourceServerArn::parse(tests::ARN).expect("the example ARN is well formed")
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const ARN: &str =
        "arn:aws:drs:us-east-1:111122223333:source-server/s-1234567890abcdef0";

    #[test]
    fn parses_and_round_trips_a_source_server_arn() {
        let arn = SourceServerArn::parse(ARN).unwrap();
        assert_eq!(arn.account().as_str(), "111122223333");
        assert_eq!(arn.region().as_str(), "us-east-1");
        assert_eq!(arn.id().as_str(), "s-1234567890abcdef0");
        assert_eq!(arn.to_string(), ARN);
    }

    #[test]
    fn builds_arns_in_the_regions_partition() {
        let id = SourceServerId::parse("s-1234567890abcdef0").unwrap();
        let account = AccountId::parse("111122223333").unwrap();
        for (region, partition) in [
            ("us-east-1", "aws"),
            ("cn-northwest-1", "aws-cn"),
            ("us-gov-west-1", "aws-us-gov"),
            ("us-iso-east-1", "aws-iso"),
            ("us-isob-east-1", "aws-iso-b"),
            ("eu-isoe-west-1", "aws-iso-e"),
            ("eusc-de-east-1", "aws-eusc"),
        ] {
            let arn =
                SourceServerArn::new(Region::parse(region).unwrap(), account.clone(), id.clone());
            let text = arn.to_string();
            assert!(
                text.starts_with(&format!("arn:{partition}:drs:{region}:")),
                "{text}"
            );
            assert_eq!(SourceServerArn::parse(&text).unwrap(), arn);
        }
    }

    #[test]
    fn rejects_look_alike_arns_with_a_reason() {
        let cases = [
            (
                "arn:aws-cn:drs:us-east-1:111122223333:source-server/s-1234567890abcdef0",
                "partition",
            ),
            (
                "arn:aws:ec2:us-east-1:111122223333:source-server/s-1234567890abcdef0",
                "service",
            ),
            (
                "arn:aws:drs:us-east-1:111122223333:recovery-instance/i-1234567890abcdef0",
                "resource",
            ),
            (
                "arn:aws:drs:us-east-1:11112222333:source-server/s-1234567890abcdef0",
                "account",
            ),
            (
                "arn:aws:drs:us-east-1:1111222233334:source-server/s-1234567890abcdef0",
                "account",
            ),
            (
                "arn:aws:drs:us-east-1:111122223333:source-server/s-1234567890abcdef",
                "server id",
            ),
            (
                "arn:aws:drs:us-east-1:111122223333:source-server/s-1234567890abcdef0/x",
                "server id",
            ),
            (
                "arn:aws:drs:US-EAST-1:111122223333:source-server/s-1234567890abcdef0",
                "region",
            ),
            (
                "urn:aws:drs:us-east-1:111122223333:source-server/s-1234567890abcdef0",
                "arn:",
            ),
            ("arn:aws:drs:x", "20 to 2048"),
            ("arn:aws:drs:us-east-1:111122223333", "form"),
        ];
        for (arn, expected) in cases {
            let err = SourceServerArn::parse(arn).unwrap_err().to_string();
            assert!(err.contains(expected), "{arn}: {err}");
        }
    }

    #[test]
    fn validates_ids_and_accounts_like_the_model() {
        assert!(SourceServerId::parse("s-ABCdef12345678901").is_ok());
        for bad in [
            "s-123",
            "x-1234567890abcdef0",
            "s-1234567890abcdef_",
            "s-1234567890abcdéf0",
            "",
        ] {
            assert!(SourceServerId::parse(bad).is_err(), "{bad}");
        }
        for bad in [
            "",
            "12345678901",
            "1234567890123",
            "12345678901a",
            " 11112222333",
        ] {
            assert!(AccountId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn validates_region_names() {
        for good in [
            "us-east-1",
            "ap-southeast-4",
            "il-central-1",
            "us-gov-east-1",
            "eusc-de-east-1",
        ] {
            assert!(Region::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "us",
            "us-east",
            "us-east-100",
            "us_east_1",
            "us--1",
            "abcde-x-1",
            "us-east-1\n",
        ] {
            assert!(Region::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn shortens_and_cleans_what_it_echoes() {
        let long = "a".repeat(500);
        assert_eq!(shorten(&long).chars().count(), 97);
        assert_eq!(shorten("a\nb\u{1b}"), "a?b?");
    }
}
