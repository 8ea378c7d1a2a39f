//! The EC2 adapter: the target account's EC2 in one region, read for launch
//! readiness (and written only for a launch baseline). Describes by id are
//! batched; EC2 fails a whole describe when one id in it does not exist, so a
//! batch refused that way is split in halves until the unknown ids stand alone.
//! Whatever cannot be asked (a refusal, a timeout, the deadline) is `Unchecked`.

use std::collections::{HashMap, HashSet};
use std::future::Future;

use aws_sdk_ec2::types::{Filter, LaunchTemplateVersion, LocationType};

use crate::aws::sdk_error::SdkCall;
use crate::domain::aws_error::{AwsError, Service};
use crate::domain::deadline::Deadline;
use crate::domain::launch::{Known, Subnet, TemplateData};

/// Ids a describe names at once: EC2 publishes no limit on id lists, and a
/// batch this size keeps a reply small and a split short.
const BATCH: usize = 100;

const SUBNET_NOT_FOUND: &str = "InvalidSubnetID.NotFound";
const GROUP_NOT_FOUND: &[&str] = &["InvalidGroup.NotFound", "InvalidGroupId.NotFound"];
const TEMPLATE_NOT_FOUND: &[&str] = &[
    "InvalidLaunchTemplateId.NotFound",
    "InvalidLaunchTemplateId.VersionNotFound",
    "InvalidLaunchTemplateId.Malformed",
];

#[derive(Clone, Debug)]
pub struct TargetEc2 {
    /// Shared with `ec2_template`, the baseline's writes.
    pub(super) client: aws_sdk_ec2::Client,
}

impl TargetEc2 {
    pub fn new(client: aws_sdk_ec2::Client) -> Self {
        Self { client }
    }

    /// The default version of a launch template (`Missing`: the template or
    /// its default version does not exist).
    pub async fn default_version(
        &self,
        template_id: &str,
        deadline: &Deadline,
    ) -> Known<TemplateData> {
        match self.read_default(template_id, deadline).await {
            Ok(Some(version)) => match version.launch_template_data() {
                Some(data) => Known::Found(template_data(data)),
                None => Known::Found(TemplateData::default()),
            },
            Ok(None) => Known::Missing,
            Err(error) => {
                if !error.is_deadline() {
                    tracing::warn!(%error, "could not read a launch template");
                }
                Known::Unchecked
            }
        }
    }

    /// The template's default version as EC2 describes it; `None`: the
    /// template or its default version does not exist.
    pub(super) async fn read_default(
        &self,
        template_id: &str,
        deadline: &Deadline,
    ) -> Result<Option<LaunchTemplateVersion>, AwsError> {
        const OPERATION: &str = "DescribeLaunchTemplateVersions";
        let call = self
            .client
            .describe_launch_template_versions()
            .launch_template_id(template_id)
            .versions("$Default")
            .send()
            .map_err_into(Service::Ec2, OPERATION);
        match within(deadline, call).await {
            Ok(Ok(output)) => Ok(output.launch_template_versions().first().cloned()),
            Ok(Err(error)) if is_template_not_found(&error) => Ok(None),
            Ok(Err(error)) => Err(error),
            Err(()) => Err(AwsError::deadline_reached(Service::Ec2, OPERATION)),
        }
    }

    pub async fn subnets(
        &self,
        ids: &[String],
        deadline: &Deadline,
    ) -> HashMap<String, Known<Subnet>> {
        by_ids(ids, &[SUBNET_NOT_FOUND], deadline, |batch| async move {
            let output = self
                .client
                .describe_subnets()
                .set_subnet_ids(Some(batch))
                .send()
                .map_err_into(Service::Ec2, "DescribeSubnets")
                .await?;
            Ok(output
                .subnets()
                .iter()
                .filter_map(|s| {
                    // Present but without what a check needs (an IPv6-only subnet
                    // has no IPv4 CIDR): no verdict, never "not found".
                    let subnet = (|| {
                        Some(Subnet {
                            vpc_id: s.vpc_id()?.to_owned(),
                            cidr: s.cidr_block()?.to_owned(),
                            zone: s.availability_zone()?.to_owned(),
                        })
                    })();
                    Some((s.subnet_id()?.to_owned(), subnet))
                })
                .collect())
        })
        .await
    }

    /// Each security group's VPC.
    pub async fn security_groups(
        &self,
        ids: &[String],
        deadline: &Deadline,
    ) -> HashMap<String, Known<String>> {
        by_ids(ids, GROUP_NOT_FOUND, deadline, |batch| async move {
            let output = self
                .client
                .describe_security_groups()
                .set_group_ids(Some(batch))
                .send()
                .map_err_into(Service::Ec2, "DescribeSecurityGroups")
                .await?;
            Ok(output
                .security_groups()
                .iter()
                .filter_map(|g| Some((g.group_id()?.to_owned(), g.vpc_id().map(str::to_owned))))
                .collect())
        })
        .await
    }

    /// The region's default VPC (`Missing`: it has none).
    pub async fn default_vpc(&self, deadline: &Deadline) -> Known<String> {
        let call = self
            .client
            .describe_vpcs()
            .filters(Filter::builder().name("is-default").values("true").build())
            .send()
            .map_err_into(Service::Ec2, "DescribeVpcs");
        match within(deadline, call).await {
            Ok(Ok(output)) => match output.vpcs().iter().find_map(|v| v.vpc_id()) {
                Some(id) => Known::Found(id.to_owned()),
                None => Known::Missing,
            },
            Ok(Err(error)) => {
                tracing::warn!(%error, "could not read the default VPC");
                Known::Unchecked
            }
            Err(_) => Known::Unchecked,
        }
    }

    /// Which of `types` are offered in `zone`; `None` when EC2 cannot say.
    pub async fn offered(
        &self,
        zone: &str,
        types: &[String],
        deadline: &Deadline,
    ) -> Option<HashSet<String>> {
        let mut offered = HashSet::new();
        let mut next_token: Option<String> = None;
        // Pages of at most 1,000 offerings: a zone offers a few hundred types.
        for _ in 0..20 {
            let call = self
                .client
                .describe_instance_type_offerings()
                .location_type(LocationType::AvailabilityZone)
                .filters(Filter::builder().name("location").values(zone).build())
                .filters(
                    Filter::builder()
                        .name("instance-type")
                        .set_values(Some(types.to_vec()))
                        .build(),
                )
                .set_next_token(next_token.clone())
                .send()
                .map_err_into(Service::Ec2, "DescribeInstanceTypeOfferings");
            let output = match within(deadline, call).await {
                Ok(Ok(output)) => output,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "could not read instance type offerings");
                    return None;
                }
                Err(_) => return None,
            };
            offered.extend(
                output
                    .instance_type_offerings()
                    .iter()
                    .filter_map(|o| o.instance_type().map(|t| t.as_str().to_owned())),
            );
            match output.next_token().filter(|t| !t.is_empty()) {
                Some(token) => next_token = Some(token.to_owned()),
                None => return Some(offered),
            }
        }
        None
    }
}

/// What a launch template's data says of where and how it launches: the first
/// network interface's subnet, groups and private IP, else the template's own
/// groups.
fn template_data(data: &aws_sdk_ec2::types::ResponseLaunchTemplateData) -> TemplateData {
    let interface = data
        .network_interfaces()
        .iter()
        .find(|i| i.device_index().unwrap_or(0) == 0);
    let mut groups: Vec<String> = interface.map(|i| i.groups().to_vec()).unwrap_or_default();
    if groups.is_empty() {
        groups = data.security_group_ids().to_vec();
    }
    TemplateData {
        subnet_id: interface.and_then(|i| i.subnet_id()).map(str::to_owned),
        security_group_ids: groups,
        private_ip: interface
            .and_then(|i| i.private_ip_address())
            .map(str::to_owned),
        instance_type: data.instance_type().map(|t| t.as_str().to_owned()),
    }
}

/// Describes `ids` in batches. A batch refused with a not-found code is split
/// in halves, and an id refused alone does not exist; an id an answer leaves out
/// does not exist either. Any other failure leaves its batch unchecked.
async fn by_ids<T, F, Fut>(
    ids: &[String],
    not_found: &[&str],
    deadline: &Deadline,
    describe: F,
) -> HashMap<String, Known<T>>
where
    F: Fn(Vec<String>) -> Fut,
    Fut: Future<Output = Result<Vec<(String, Option<T>)>, AwsError>>,
{
    let mut known = HashMap::new();
    let mut unique: Vec<String> = ids.to_vec();
    unique.sort();
    unique.dedup();
    let mut work: Vec<Vec<String>> = unique.chunks(BATCH).map(<[String]>::to_vec).collect();
    while let Some(batch) = work.pop() {
        match within(deadline, describe(batch.clone())).await {
            Ok(Ok(found)) => {
                let mut found: HashMap<String, Option<T>> = found.into_iter().collect();
                for id in batch {
                    let answer = match found.remove(&id) {
                        Some(Some(record)) => Known::Found(record),
                        // Named in the answer, but not whole.
                        Some(None) => Known::Unchecked,
                        None => Known::Missing,
                    };
                    known.insert(id, answer);
                }
            }
            Ok(Err(error)) if not_found.contains(&error.code()) => {
                if let [id] = batch.as_slice() {
                    known.insert(id.clone(), Known::Missing);
                } else {
                    let (left, right) = batch.split_at(batch.len() / 2);
                    work.push(left.to_vec());
                    work.push(right.to_vec());
                }
            }
            failed => {
                if let Ok(Err(error)) = failed {
                    tracing::warn!(%error, ids = batch.len(), "an EC2 describe failed");
                }
                known.extend(batch.into_iter().map(|id| (id, Known::Unchecked)));
            }
        }
    }
    known
}

/// EC2 saying a launch template, or the version asked for, does not exist.
fn is_template_not_found(error: &AwsError) -> bool {
    TEMPLATE_NOT_FOUND.contains(&error.code())
}

/// An EC2 call, cut at the invocation's `calls_by`; `Err` when the deadline cut it.
pub(super) async fn within<F: Future>(deadline: &Deadline, call: F) -> Result<F::Output, ()> {
    match deadline.calls_by() {
        Some(by) if tokio::time::Instant::now() >= by => Err(()),
        Some(by) => tokio::time::timeout_at(by, call).await.map_err(|_| ()),
        None => Ok(call.await),
    }
}
