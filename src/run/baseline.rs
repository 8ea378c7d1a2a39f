//! The launch baseline in a run: applied to each server this invocation
//! created, before its `Created` event, while the server still holds its place
//! for that event (so a kill mid-baseline loses no more events than a kill
//! mid-create). Never to a server it skipped. A baseline that cannot be applied
//! leaves the server `created`; its event says why.
//!
//! Everything that decides is read before anything is written: the subnet
//! (`matchSourceIp`: the staging server's IP against the tagged subnets, read
//! once a run and region, shared), then DRS's launch configuration, then the
//! template's new default version.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::aws::drs::TargetDrs;
use crate::aws::ec2::TargetEc2;
use crate::aws::ec2_template::{NetworkChange, NotSet};
use crate::domain::arn::Region;
use crate::domain::aws_error::AwsError;
use crate::domain::baseline::{
    pick_subnet, BaselineFailure, BaselineFields, BaselineResult, LaunchBaseline, SubnetChoice,
    LAUNCH_SUBNET_TAG,
};
use crate::domain::deadline::Deadline;
use crate::domain::launch::Known;
use crate::domain::outcome::Outcome;
use crate::domain::UNPOISONED;

/// Subnets as `(id, IPv4 CIDR)`, as read once a run.
type Subnets = Result<Vec<(String, String)>, BaselineFailure>;

/// A read made once, by the first server that needs it.
type SharedRead = Arc<OnceCell<Subnets>>;

/// Which subnets a read is for: those tagged for `matchSourceIp`, or one by id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum SubnetRead {
    Tagged,
    Id(String),
}

/// One invocation's baseline, and what it read once per region.
#[derive(Debug)]
pub struct Baseline {
    rules: LaunchBaseline,
    subnets: Mutex<HashMap<(Region, SubnetRead), SharedRead>>,
}

impl Baseline {
    pub fn new(rules: LaunchBaseline) -> Self {
        Self {
            rules,
            subnets: Mutex::new(HashMap::new()),
        }
    }

    /// Applies the baseline to a `created` outcome and says so in it; any other
    /// outcome is left as it is.
    pub async fn settle(
        &self,
        outcome: &mut Outcome,
        drs: &TargetDrs,
        ec2: Option<&TargetEc2>,
        deadline: &Deadline,
    ) {
        let Outcome::Created {
            subject,
            extended_source_server_id,
            launch_baseline,
            ..
        } = outcome
        else {
            return;
        };
        let Some(staging) = &subject.staging_source_server_arn else {
            return;
        };
        let fields = self.rules.for_account(staging.account());
        let applied = self
            .apply(
                &fields,
                extended_source_server_id,
                staging.region(),
                drs,
                ec2,
                deadline,
            )
            .await;
        if let Err(failure) = &applied {
            tracing::warn!(server = %staging, error_code = failure.code(), "launch baseline not applied");
        }
        *launch_baseline = Some(BaselineResult::of(&applied));
    }

    async fn apply(
        &self,
        fields: &BaselineFields,
        server_id: &str,
        region: &Region,
        drs: &TargetDrs,
        ec2: Option<&TargetEc2>,
        deadline: &Deadline,
    ) -> Result<(), BaselineFailure> {
        let ec2 = match (fields.touches_template(), ec2) {
            (false, _) => None,
            (true, Some(ec2)) => Some(ec2),
            (true, None) => return Err(BaselineFailure::Service("RegionNotServed".into())),
        };
        // `(id, CIDR)`; the CIDR unknown where EC2 could not be read for it.
        let subnet: Option<(String, Option<String>)> = match (&fields.subnet, ec2) {
            (Some(SubnetChoice::Id(id)), Some(ec2)) => {
                let read = SubnetRead::Id(id.clone());
                let found = self.subnets(region, read, ec2, deadline).await?;
                Some((id.clone(), found.first().map(|(_, cidr)| cidr.clone())))
            }
            (Some(SubnetChoice::MatchSourceIp), Some(ec2)) => {
                let ip = drs
                    .source_ip(server_id, deadline)
                    .await
                    .map_err(failure)?
                    .ok_or(BaselineFailure::NoSourceIp)?;
                let tagged = self
                    .subnets(region, SubnetRead::Tagged, ec2, deadline)
                    .await?;
                let (id, cidr) = pick_subnet(&ip, &tagged)?;
                Some((id.clone(), Some(cidr.clone())))
            }
            _ => None,
        };
        let mut template = None;
        if fields.touches_launch_configuration() {
            template = drs
                .update_launch_configuration(server_id, fields, deadline)
                .await
                .map_err(failure)?;
        }
        let Some(ec2) = ec2 else {
            return Ok(());
        };
        if template.is_none() {
            template = drs
                .launch_configuration(server_id, deadline)
                .await
                .map_err(failure)?
                .template_id;
        }
        let template = template.ok_or(BaselineFailure::NoLaunchTemplate)?;
        let change = NetworkChange {
            subnet_id: subnet.as_ref().map(|(id, _)| id.as_str()),
            subnet_cidr: subnet.as_ref().and_then(|(_, cidr)| cidr.as_deref()),
            security_group_ids: fields.security_group_ids.as_deref(),
        };
        ec2.set_network(&template, &change, deadline)
            .await
            .map_err(|not_set| match not_set {
                NotSet::NoTemplate => BaselineFailure::NoLaunchTemplate,
                NotSet::PrivateIpOutsideSubnet => BaselineFailure::PrivateIpOutsideSubnet,
                NotSet::GroupsOutsideInterface => BaselineFailure::GroupsOutsideInterface,
                // EC2's own code for what it found not valid.
                NotSet::Warned(code) => BaselineFailure::Service(code),
                NotSet::Failed(error) => failure(error),
            })
    }

    /// Subnets the baseline reads, each read by the first server that needs
    /// it and shared with the rest of the run (a failed read too: one refusal is
    /// not asked again for every server). A subnet named by id that EC2 could
    /// not be asked about is an empty list: its CIDR unknown, not a failure.
    async fn subnets(
        &self,
        region: &Region,
        read: SubnetRead,
        ec2: &TargetEc2,
        deadline: &Deadline,
    ) -> Subnets {
        let cell = self
            .subnets
            .lock()
            .expect(UNPOISONED)
            .entry((region.clone(), read.clone()))
            .or_default()
            .clone();
        cell.get_or_init(|| async {
            match &read {
                SubnetRead::Tagged => ec2
                    .subnets_tagged(LAUNCH_SUBNET_TAG, deadline)
                    .await
                    .map_err(failure),
                SubnetRead::Id(id) => {
                    match ec2
                        .subnets(std::slice::from_ref(id), deadline)
                        .await
                        .remove(id)
                    {
                        Some(Known::Found(subnet)) => Ok(vec![(id.clone(), subnet.cidr)]),
                        Some(Known::Missing) => Err(BaselineFailure::SubnetNotFound),
                        Some(Known::Unchecked) | None => Ok(Vec::new()),
                    }
                }
            }
        })
        .await
        .clone()
    }
}

fn failure(error: AwsError) -> BaselineFailure {
    if error.is_deadline() {
        BaselineFailure::Deadline
    } else {
        BaselineFailure::Service(error.code().to_owned())
    }
}
