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
use crate::aws::ec2_template::NetworkChange;
use crate::domain::arn::Region;
use crate::domain::aws_error::AwsError;
use crate::domain::baseline::{
    pick_subnet, BaselineFailure, BaselineFields, BaselineResult, LaunchBaseline, SubnetChoice,
    LAUNCH_SUBNET_TAG,
};
use crate::domain::deadline::Deadline;
use crate::domain::outcome::Outcome;
use crate::domain::UNPOISONED;

type Tagged = Result<Vec<(String, String)>, BaselineFailure>;

/// One invocation's baseline, and what it read once per region.
#[derive(Debug)]
pub struct Baseline {
    rules: LaunchBaseline,
    tagged: Mutex<HashMap<Region, Arc<OnceCell<Tagged>>>>,
}

impl Baseline {
    pub fn new(rules: LaunchBaseline) -> Self {
        Self {
            rules,
            tagged: Mutex::new(HashMap::new()),
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
        let subnet = match (&fields.subnet, ec2) {
            (Some(SubnetChoice::Id(id)), _) => Some(id.clone()),
            (Some(SubnetChoice::MatchSourceIp), Some(ec2)) => {
                let ip = drs
                    .source_ip(server_id, deadline)
                    .await
                    .map_err(failure)?
                    .ok_or(BaselineFailure::NoSourceIp)?;
                let tagged = self.tagged_subnets(region, ec2, deadline).await?;
                Some(pick_subnet(&ip, &tagged)?)
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
            subnet_id: subnet.as_deref(),
            security_group_ids: fields.security_group_ids.as_deref(),
        };
        match ec2.set_network(&template, &change, deadline).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(BaselineFailure::NoLaunchTemplate),
            Err(error) => Err(failure(error)),
        }
    }

    /// The region's subnets tagged for `matchSourceIp`, read by the first
    /// server that needs them and shared with the rest of the run (a failed
    /// read too: one refusal is not asked again for every server).
    async fn tagged_subnets(
        &self,
        region: &Region,
        ec2: &TargetEc2,
        deadline: &Deadline,
    ) -> Tagged {
        let cell = self
            .tagged
            .lock()
            .expect(UNPOISONED)
            .entry(region.clone())
            .or_default()
            .clone();
        cell.get_or_init(|| async {
            ec2.subnets_tagged(LAUNCH_SUBNET_TAG, deadline)
                .await
                .map_err(failure)
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
