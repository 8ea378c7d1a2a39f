//! Launch readiness: would an extended server launch with the target account's
//! launch settings (its DRS launch configuration and the EC2 launch template DRS
//! made for it)? Judged from plain facts that the EC2 and DRS adapters read; and
//! which servers a run checks, without state of its own.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

/// Why an extended server would not launch as its settings stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LaunchReason {
    NoLaunchTemplate,
    NoSubnet,
    SubnetNotFound,
    SecurityGroupNotInVpc,
    PrivateIpOutsideSubnet,
    InstanceTypeNotOffered,
}

impl LaunchReason {
    pub const ALL: [LaunchReason; 6] = [
        Self::NoLaunchTemplate,
        Self::NoSubnet,
        Self::SubnetNotFound,
        Self::SecurityGroupNotInVpc,
        Self::PrivateIpOutsideSubnet,
        Self::InstanceTypeNotOffered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoLaunchTemplate => "NO_LAUNCH_TEMPLATE",
            Self::NoSubnet => "NO_SUBNET",
            Self::SubnetNotFound => "SUBNET_NOT_FOUND",
            Self::SecurityGroupNotInVpc => "SECURITY_GROUP_NOT_IN_VPC",
            Self::PrivateIpOutsideSubnet => "PRIVATE_IP_OUTSIDE_SUBNET",
            Self::InstanceTypeNotOffered => "INSTANCE_TYPE_NOT_OFFERED",
        }
    }
}

impl Serialize for LaunchReason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// What a run found of the launch settings it checked, for one scope or all.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LaunchCounts {
    /// Servers whose every check could be made (launchable or not).
    pub launch_checked: usize,
    pub launch_not_ready: usize,
    pub launch_not_ready_reasons: BTreeMap<LaunchReason, usize>,
    /// Servers chosen whose check could not be made (EC2 or DRS refused, the
    /// deadline came): never counted as not ready.
    pub launch_unchecked: usize,
}

impl LaunchCounts {
    pub fn count(&mut self, verdict: &Verdict) {
        match verdict {
            Verdict::Launchable => self.launch_checked += 1,
            Verdict::NotReady(reason) => {
                self.launch_checked += 1;
                self.launch_not_ready += 1;
                *self.launch_not_ready_reasons.entry(*reason).or_default() += 1;
            }
            Verdict::Unchecked => self.launch_unchecked += 1,
        }
    }

    pub fn add(&mut self, other: &LaunchCounts) {
        self.launch_checked += other.launch_checked;
        self.launch_not_ready += other.launch_not_ready;
        self.launch_unchecked += other.launch_unchecked;
        for (reason, n) in &other.launch_not_ready_reasons {
            *self.launch_not_ready_reasons.entry(*reason).or_default() += n;
        }
    }
}

/// What the other side said of one thing looked up by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Known<T> {
    Found(T),
    /// The service says it does not exist.
    Missing,
    /// It could not be asked (refused, timed out, the deadline): no verdict.
    Unchecked,
}

/// DRS's launch configuration of one server, as far as the checks need it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LaunchConfiguration {
    pub template_id: Option<String>,
    pub copy_private_ip: bool,
    /// `targetInstanceTypeRightSizingMethod` as DRS spells it.
    pub right_sizing: Option<String>,
}

/// The default version of a launch template, as far as the checks need it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TemplateData {
    pub subnet_id: Option<String>,
    pub security_group_ids: Vec<String>,
    pub private_ip: Option<String>,
    pub instance_type: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subnet {
    pub vpc_id: String,
    pub cidr: String,
    pub zone: String,
}

/// What EC2 said in one region, read once a run and shared by every server.
/// An id that was never asked about counts as unchecked.
#[derive(Clone, Debug, Default)]
pub struct RegionFacts {
    pub subnets: HashMap<String, Known<Subnet>>,
    /// Each security group's VPC.
    pub groups: HashMap<String, Known<String>>,
    /// The region's default VPC (`Missing`: the region has none).
    pub default_vpc: Option<Known<String>>,
    /// Instance types offered, by Availability Zone.
    pub offered: HashMap<String, HashSet<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Launchable,
    NotReady(LaunchReason),
    Unchecked,
}

/// One server's verdict. A definite reason wins over a check that could not be
/// made; a check that could not be made is never a reason.
pub fn judge(
    config: &LaunchConfiguration,
    template: &Known<TemplateData>,
    source_ip: Option<&str>,
    facts: &RegionFacts,
) -> Verdict {
    if config.template_id.is_none() {
        return Verdict::NotReady(LaunchReason::NoLaunchTemplate);
    }
    let template = match template {
        Known::Found(t) => t,
        Known::Missing => return Verdict::NotReady(LaunchReason::NoLaunchTemplate),
        Known::Unchecked => return Verdict::Unchecked,
    };
    let mut unchecked = false;
    let (vpc, subnet) = match &template.subnet_id {
        None => match facts.default_vpc.as_ref().unwrap_or(&Known::Unchecked) {
            Known::Missing => return Verdict::NotReady(LaunchReason::NoSubnet),
            Known::Unchecked => return Verdict::Unchecked,
            // EC2 picks a default subnet: its CIDR and zone are EC2's choice.
            Known::Found(vpc) => (vpc.as_str(), None),
        },
        Some(id) => match facts.subnets.get(id).unwrap_or(&Known::Unchecked) {
            Known::Missing => return Verdict::NotReady(LaunchReason::SubnetNotFound),
            Known::Unchecked => return Verdict::Unchecked,
            Known::Found(subnet) => (subnet.vpc_id.as_str(), Some(subnet)),
        },
    };
    for group in &template.security_group_ids {
        match facts.groups.get(group).unwrap_or(&Known::Unchecked) {
            Known::Found(in_vpc) if in_vpc == vpc => {}
            Known::Found(_) | Known::Missing => {
                return Verdict::NotReady(LaunchReason::SecurityGroupNotInVpc)
            }
            Known::Unchecked => unchecked = true,
        }
    }
    if let Some(subnet) = subnet {
        let copied = if config.copy_private_ip {
            match source_ip {
                Some(ip) => Some(ip),
                None => {
                    unchecked = true;
                    None
                }
            }
        } else {
            None
        };
        for ip in template.private_ip.as_deref().into_iter().chain(copied) {
            match cidr_holds(&subnet.cidr, ip) {
                Some(true) => {}
                Some(false) => return Verdict::NotReady(LaunchReason::PrivateIpOutsideSubnet),
                None => unchecked = true,
            }
        }
        if config.right_sizing.as_deref() == Some("NONE") {
            if let Some(instance_type) = &template.instance_type {
                match facts.offered.get(&subnet.zone) {
                    Some(types) if types.contains(instance_type) => {}
                    Some(_) => return Verdict::NotReady(LaunchReason::InstanceTypeNotOffered),
                    None => unchecked = true,
                }
            }
        }
    }
    if unchecked {
        Verdict::Unchecked
    } else {
        Verdict::Launchable
    }
}

/// Whether an IPv4 CIDR block holds an address; `None` when either does not
/// read as IPv4.
pub fn cidr_holds(cidr: &str, ip: &str) -> Option<bool> {
    let (base, bits) = cidr.split_once('/')?;
    let bits: u32 = bits.parse().ok().filter(|b| *b <= 32)?;
    let base = u32::from(base.parse::<std::net::Ipv4Addr>().ok()?);
    let ip = u32::from(ip.parse::<std::net::Ipv4Addr>().ok()?);
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    Some(base & mask == ip & mask)
}

/// The ordinal of a scheduled run: its scheduled time in periods of the
/// schedule. Consecutive runs of one schedule have consecutive ordinals, and a
/// retried run keeps its own.
pub fn run_index(scheduled_epoch_secs: u64, period_secs: u64) -> u64 {
    scheduled_epoch_secs / period_secs.max(1)
}

/// Which of `ids` a run checks besides the servers it extended: the fleet in a
/// fixed order (a stable hash of each id), cut into ceil(len / per_run) slices;
/// run `index` takes slice `index mod slices`. So every server is checked at
/// least once in any ceil(len / per_run) consecutive runs while the fleet
/// stands, with no state kept. Answers positions in `ids`.
pub fn rotation_slice(ids: &[&str], per_run: usize, index: u64) -> Vec<usize> {
    if per_run == 0 || ids.is_empty() {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| (stable_hash(ids[i]), ids[i]));
    let slices = ids.len().div_ceil(per_run);
    let slot = (index % slices as u64) as usize;
    let start = slot * per_run;
    let end = (start + per_run).min(ids.len());
    order[start..end].to_vec()
}

/// FNV-1a: the same order in every process and every run, unlike std's
/// randomly keyed hasher.
fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> RegionFacts {
        let mut f = RegionFacts::default();
        f.subnets.insert(
            "subnet-a".into(),
            Known::Found(Subnet {
                vpc_id: "vpc-1".into(),
                cidr: "10.0.1.0/24".into(),
                zone: "us-east-1a".into(),
            }),
        );
        f.subnets.insert("subnet-gone".into(), Known::Missing);
        f.groups.insert("sg-1".into(), Known::Found("vpc-1".into()));
        f.groups.insert("sg-2".into(), Known::Found("vpc-2".into()));
        f.groups.insert("sg-gone".into(), Known::Missing);
        f.default_vpc = Some(Known::Found("vpc-1".into()));
        f.offered.insert(
            "us-east-1a".into(),
            ["t3.small".to_owned()].into_iter().collect(),
        );
        f
    }

    fn config() -> LaunchConfiguration {
        LaunchConfiguration {
            template_id: Some("lt-1".into()),
            copy_private_ip: false,
            right_sizing: Some("BASIC".into()),
        }
    }

    fn template(subnet: Option<&str>, groups: &[&str]) -> Known<TemplateData> {
        Known::Found(TemplateData {
            subnet_id: subnet.map(str::to_owned),
            security_group_ids: groups.iter().map(|g| (*g).to_owned()).collect(),
            private_ip: None,
            instance_type: Some("m5.large".into()),
        })
    }

    #[test]
    fn each_reason() {
        let f = facts();
        let c = config();
        let ok = template(Some("subnet-a"), &["sg-1"]);
        assert_eq!(judge(&c, &ok, None, &f), Verdict::Launchable);
        let none = LaunchConfiguration {
            template_id: None,
            ..config()
        };
        assert_eq!(
            judge(&none, &ok, None, &f),
            Verdict::NotReady(LaunchReason::NoLaunchTemplate)
        );
        assert_eq!(
            judge(&c, &Known::Missing, None, &f),
            Verdict::NotReady(LaunchReason::NoLaunchTemplate)
        );
        let mut no_default = facts();
        no_default.default_vpc = Some(Known::Missing);
        assert_eq!(
            judge(&c, &template(None, &[]), None, &no_default),
            Verdict::NotReady(LaunchReason::NoSubnet)
        );
        assert_eq!(
            judge(&c, &template(None, &["sg-1"]), None, &f),
            Verdict::Launchable
        );
        assert_eq!(
            judge(&c, &template(Some("subnet-gone"), &[]), None, &f),
            Verdict::NotReady(LaunchReason::SubnetNotFound)
        );
        for group in ["sg-2", "sg-gone"] {
            assert_eq!(
                judge(&c, &template(Some("subnet-a"), &[group]), None, &f),
                Verdict::NotReady(LaunchReason::SecurityGroupNotInVpc)
            );
        }
        let copy = LaunchConfiguration {
            copy_private_ip: true,
            ..config()
        };
        assert_eq!(
            judge(&copy, &ok, Some("10.0.2.7"), &f),
            Verdict::NotReady(LaunchReason::PrivateIpOutsideSubnet)
        );
        assert_eq!(judge(&copy, &ok, Some("10.0.1.7"), &f), Verdict::Launchable);
        let none_sizing = LaunchConfiguration {
            right_sizing: Some("NONE".into()),
            ..config()
        };
        assert_eq!(
            judge(&none_sizing, &ok, None, &f),
            Verdict::NotReady(LaunchReason::InstanceTypeNotOffered)
        );
    }

    #[test]
    fn what_cannot_be_checked_is_never_a_reason() {
        let empty = RegionFacts::default();
        let c = LaunchConfiguration {
            copy_private_ip: true,
            right_sizing: Some("NONE".into()),
            ..config()
        };
        for t in [
            Known::Unchecked,
            template(Some("subnet-a"), &["sg-1"]),
            template(None, &[]),
        ] {
            assert_eq!(judge(&c, &t, Some("10.9.9.9"), &empty), Verdict::Unchecked);
        }
        let mut f = facts();
        f.groups.insert("sg-1".into(), Known::Unchecked);
        f.offered.clear();
        assert_eq!(
            judge(&config(), &template(Some("subnet-a"), &["sg-1"]), None, &f),
            Verdict::Unchecked
        );
        // The copied IP is unknown: unchecked, not outside.
        let copy = LaunchConfiguration {
            copy_private_ip: true,
            ..config()
        };
        assert_eq!(
            judge(
                &copy,
                &template(Some("subnet-a"), &["sg-1"]),
                None,
                &facts()
            ),
            Verdict::Unchecked
        );
    }

    #[test]
    fn cidr() {
        assert_eq!(cidr_holds("10.0.0.0/16", "10.0.255.1"), Some(true));
        assert_eq!(cidr_holds("10.0.0.0/16", "10.1.0.1"), Some(false));
        assert_eq!(cidr_holds("0.0.0.0/0", "8.8.8.8"), Some(true));
        assert_eq!(cidr_holds("10.0.0.0/33", "10.0.0.1"), None);
        assert_eq!(cidr_holds("2600::/64", "2600::1"), None);
    }

    #[test]
    fn every_server_within_the_stated_runs() {
        for (len, per_run) in [(1_usize, 500_usize), (1_234, 100), (15_000, 500), (7, 3)] {
            let ids: Vec<String> = (0..len).map(|i| format!("s-{i:017x}")).collect();
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let runs = len.div_ceil(per_run) as u64;
            // Any window of consecutive runs, wherever it starts.
            for first in [0_u64, 1, 17, 491_234] {
                let mut seen = vec![false; len];
                for index in first..first + runs {
                    let slice = rotation_slice(&refs, per_run, index);
                    assert!(slice.len() <= per_run);
                    for i in slice {
                        seen[i] = true;
                    }
                }
                assert!(seen.iter().all(|s| *s), "{len}/{per_run} from {first}");
            }
        }
        assert!(rotation_slice(&["s-1"], 0, 3).is_empty());
    }

    #[test]
    fn consecutive_schedules_are_consecutive_runs() {
        let t = 1_780_000_000_u64 - 1_780_000_000 % 3_600;
        assert_eq!(run_index(t + 3_600, 3_600), run_index(t, 3_600) + 1);
        assert_eq!(run_index(t + 5, 3_600), run_index(t, 3_600));
        assert_eq!(run_index(t, 0), t);
    }
}
