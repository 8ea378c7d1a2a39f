//! The quota watch: per region, every source server the target account holds,
//! counted from DRS, against the quota Service Quotas applies. Runs once per
//! reconciliation that is not itself a fan-out (each of those would read the same
//! regions again), after coverage, within the deadline.

use std::collections::HashSet;

use crate::aws::clients::Clients;
use crate::aws::drs::TargetDrs;
use crate::aws::paging::{Paging, Stop};
use crate::domain::arn::Region;
use crate::domain::aws_error::ReadStopped;
use crate::domain::deadline::Deadline;
use crate::domain::quota::{judge, QuotaReading, RegionQuota};
use crate::run::coverage::hash_of;

/// Records a page, as coverage reads them: a page stays near a megabyte.
const PAGE_SIZE: i32 = 200;

/// Each served region's quota, judged against `warn_percent`.
pub async fn watch(
    clients: &Clients,
    regions: &[Region],
    deadline: Deadline,
    warn_percent: u8,
) -> Vec<RegionQuota> {
    let mut judged = Vec::new();
    for region in regions {
        let (Some(drs), Some(quotas)) = (clients.drs(region), clients.quotas(region)) else {
            continue;
        };
        let ((source_servers, count_error), quota) = tokio::join!(
            count_source_servers(&drs, &deadline),
            quotas.source_server_quota(&deadline),
        );
        // Only where Service Quotas says no value is applied ("If the applied quota
        // value is not available for a quota, the quota is not retrieved"): a
        // refusal or a fault says nothing of whether the quota was raised.
        let aws_default = match &quota {
            Err(why) if no_applied_value(why) => {
                quotas.aws_default_source_server_quota(&deadline).await
            }
            _ => None,
        };
        let region_quota = judge(
            region.clone(),
            QuotaReading {
                source_servers,
                count_error,
                quota,
                aws_default,
            },
            warn_percent,
        );
        if region_quota.warning {
            tracing::warn!(
                %region,
                source_servers = region_quota.source_servers,
                quota = region_quota.quota,
                used_percent = region_quota.used_percent,
                "the source-server quota is nearly spent"
            );
        }
        judged.push(region_quota);
    }
    judged
}

/// Whether Service Quotas' answer says the quota has no applied value: not
/// found, or found without one.
fn no_applied_value(why: &str) -> bool {
    why == "NoSuchResourceException" || why == crate::domain::quota::NO_QUOTA_VALUE
}

/// How many source servers DRS lists in the region, and why the count stopped
/// short if it did (it is then as many as were seen). A page handed out twice is
/// counted once: each server is remembered by a hash of its ARN.
async fn count_source_servers(drs: &TargetDrs, deadline: &Deadline) -> (u64, Option<ReadStopped>) {
    let mut seen: HashSet<u64> = HashSet::new();
    let mut listing = Paging::until(*deadline);
    let stopped = loop {
        match listing
            .next(|token| drs.source_server_page(token, PAGE_SIZE, deadline))
            .await
        {
            Ok(Some(ids)) => seen.extend(ids.iter().map(|id| hash_of(id))),
            Ok(None) => break None,
            Err(stop) => break Some(stop),
        }
    };
    if let Some(Stop::Failed(error)) = &stopped {
        tracing::warn!(%error, "could not count the source servers");
    }
    (seen.len() as u64, stopped.map(ReadStopped::from))
}
