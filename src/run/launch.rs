//! Launch readiness in a reconciliation: after coverage, the servers the run
//! extended and a rotating slice of the others are checked against their launch
//! settings. Per region: DRS's launch configuration and the template's default
//! version per server (at most `concurrency` at once), then every subnet,
//! security group, the default VPC and the offerings per zone once, shared by
//! every server. Reported per scope and, for the first not ready, as events.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::aws::clients::Clients;
use crate::aws::drs::TargetDrs;
use crate::aws::ec2::TargetEc2;
use crate::domain::arn::{AccountId, Region};
use crate::domain::deadline::Deadline;
use crate::domain::launch::{
    self, judge, Known, LaunchConfiguration, LaunchCounts, LaunchReason, RegionFacts, TemplateData,
    Verdict,
};
use crate::domain::outcome::OutboundEvent;
use crate::run::reporter::Reporter;

pub const LAUNCH_NOT_READY_DETAIL_TYPE: &str = "Extended Source Server Launch Not Ready";
/// `Extended Source Server Launch Not Ready` events a run sends at most.
pub const MAX_LAUNCH_NOT_READY_EVENTS: usize = 100;

/// An extended server coverage found, as the check needs it.
#[derive(Clone, Debug)]
pub struct LaunchCandidate {
    pub id: String,
    pub arn: String,
    pub staging_arn: String,
    pub staging_account: AccountId,
    pub region: Region,
    /// The staging server's primary IPv4 address, where DRS shows one.
    pub source_ip: Option<String>,
    /// Extended by this invocation: always checked.
    pub made_now: bool,
}

/// How many a run checks, and which slice of the fleet is its turn.
#[derive(Clone, Copy, Debug)]
pub struct LaunchRules {
    /// `LAUNCH_CHECKS_PER_RUN`; 0 turns the check off.
    pub per_run: usize,
    pub run_index: u64,
    pub concurrency: usize,
}

#[derive(Debug, Default)]
pub struct LaunchReport {
    pub scopes: BTreeMap<(AccountId, Region), LaunchCounts>,
    /// Not-ready servers past `MAX_LAUNCH_NOT_READY_EVENTS`, counted, not sent.
    pub not_ready_unsent: usize,
}

impl LaunchReport {
    pub fn total(&self) -> LaunchCounts {
        let mut all = LaunchCounts::default();
        for counts in self.scopes.values() {
            all.add(counts);
        }
        all
    }
}

/// The servers this run checks: every one it extended, and its turn of the rest.
pub fn choose(candidates: Vec<LaunchCandidate>, rules: &LaunchRules) -> Vec<LaunchCandidate> {
    if rules.per_run == 0 {
        return Vec::new();
    }
    let (mut chosen, others): (Vec<_>, Vec<_>) = candidates.into_iter().partition(|c| c.made_now);
    let ids: Vec<&str> = others.iter().map(|c| c.id.as_str()).collect();
    let turn: HashSet<usize> = launch::rotation_slice(&ids, rules.per_run, rules.run_index)
        .into_iter()
        .collect();
    chosen.extend(
        others
            .into_iter()
            .enumerate()
            .filter(|(i, _)| turn.contains(i))
            .map(|(_, c)| c),
    );
    chosen
}

/// Checks `chosen`, region by region, within the deadline.
pub async fn check(
    clients: &Clients,
    chosen: Vec<LaunchCandidate>,
    rules: &LaunchRules,
    deadline: Deadline,
    reporter: &Reporter,
) -> LaunchReport {
    let mut report = LaunchReport::default();
    let mut by_region: BTreeMap<Region, Vec<LaunchCandidate>> = BTreeMap::new();
    for candidate in chosen {
        by_region
            .entry(candidate.region.clone())
            .or_default()
            .push(candidate);
    }
    let mut sent = 0;
    for (region, servers) in by_region {
        // The lowest of a run's work: past the deadline nothing more is read, and
        // nothing more is queued for a bus that may already be slow.
        let verdicts = match (clients.drs(&region), clients.ec2(&region)) {
            _ if deadline.reached() => servers.iter().map(|_| (Verdict::Unchecked, None)).collect(),
            (Some(drs), Some(ec2)) => {
                check_region(&drs, &ec2, &servers, rules.concurrency, &deadline).await
            }
            _ => servers.iter().map(|_| (Verdict::Unchecked, None)).collect(),
        };
        for (server, (verdict, read)) in servers.iter().zip(verdicts) {
            let counts = report
                .scopes
                .entry((server.staging_account.clone(), region.clone()))
                .or_default();
            counts.count(&verdict);
            if let Verdict::NotReady(reason) = verdict {
                if sent < MAX_LAUNCH_NOT_READY_EVENTS && !deadline.reached() {
                    sent += 1;
                    let event = not_ready_event(server, reason, read.as_ref(), reporter);
                    reporter.send(event).await;
                } else {
                    report.not_ready_unsent += 1;
                }
            }
        }
    }
    let total = report.total();
    tracing::info!(
        checked = total.launch_checked,
        not_ready = total.launch_not_ready,
        unchecked = total.launch_unchecked,
        "launch settings checked"
    );
    report
}

/// What was read of one server: its configuration and template.
type Read = (LaunchConfiguration, Known<TemplateData>);

/// Each server's verdict, and what was read of it, in the order given.
async fn check_region(
    drs: &TargetDrs,
    ec2: &TargetEc2,
    servers: &[LaunchCandidate],
    concurrency: usize,
    deadline: &Deadline,
) -> Vec<(Verdict, Option<Read>)> {
    let reads = read_each(drs, ec2, servers, concurrency, deadline).await;
    let facts = shared_facts(ec2, &reads, deadline).await;
    servers
        .iter()
        .zip(reads)
        .map(|(server, read)| match read {
            None => (Verdict::Unchecked, None),
            Some((config, template)) => {
                let verdict = judge(&config, &template, server.source_ip.as_deref(), &facts);
                (verdict, Some((config, template)))
            }
        })
        .collect()
}

/// Per server: DRS's launch configuration, then its template's default version;
/// `None` where DRS could not say.
async fn read_each(
    drs: &TargetDrs,
    ec2: &TargetEc2,
    servers: &[LaunchCandidate],
    concurrency: usize,
    deadline: &Deadline,
) -> Vec<Option<Read>> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (at, server) in servers.iter().enumerate() {
        let (drs, ec2, id, deadline) = (drs.clone(), ec2.clone(), server.id.clone(), *deadline);
        let permits = permits.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let config = match drs.launch_configuration(&id, &deadline).await {
                Ok(config) => config,
                Err(error) => {
                    if !error.is_deadline() {
                        tracing::warn!(%error, "could not read a launch configuration");
                    }
                    return (at, None);
                }
            };
            let template = match &config.template_id {
                Some(template_id) => ec2.default_version(template_id, &deadline).await,
                None => Known::Missing,
            };
            (at, Some((config, template)))
        });
    }
    let mut reads: Vec<Option<Read>> = vec![None; servers.len()];
    while let Some(done) = tasks.join_next().await {
        let (at, read) = done.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        reads[at] = read;
    }
    reads
}

/// Every subnet and group the templates name, the default VPC where one is
/// relied on, and the offerings of each zone asked about: read once.
async fn shared_facts(ec2: &TargetEc2, reads: &[Option<Read>], deadline: &Deadline) -> RegionFacts {
    let templates: Vec<(&LaunchConfiguration, &TemplateData)> = reads
        .iter()
        .flatten()
        .filter_map(|(config, template)| match template {
            Known::Found(t) => Some((config, t)),
            _ => None,
        })
        .collect();
    let subnet_ids: Vec<String> = templates
        .iter()
        .filter_map(|(_, t)| t.subnet_id.clone())
        .collect();
    let group_ids: Vec<String> = templates
        .iter()
        .flat_map(|(_, t)| t.security_group_ids.iter().cloned())
        .collect();
    let needs_default = templates.iter().any(|(_, t)| t.subnet_id.is_none());
    let (subnets, groups, default_vpc) = tokio::join!(
        ec2.subnets(&subnet_ids, deadline),
        ec2.security_groups(&group_ids, deadline),
        async {
            if needs_default {
                Some(ec2.default_vpc(deadline).await)
            } else {
                None
            }
        }
    );
    let mut types_by_zone: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    for (config, template) in &templates {
        let (Some(subnet), Some(instance_type)) = (&template.subnet_id, &template.instance_type)
        else {
            continue;
        };
        if config.right_sizing.as_deref() != Some("NONE") {
            continue;
        }
        if let Some(Known::Found(subnet)) = subnets.get(subnet) {
            types_by_zone
                .entry(subnet.zone.clone())
                .or_default()
                .insert(instance_type.clone());
        }
    }
    let mut offered = HashMap::new();
    for (zone, types) in types_by_zone {
        let types: Vec<String> = types.into_iter().collect();
        if let Some(found) = ec2.offered(&zone, &types, deadline).await {
            offered.insert(zone, found);
        }
    }
    RegionFacts {
        subnets,
        groups,
        default_vpc,
        offered,
    }
}

/// `Extended Source Server Launch Not Ready`: it would not launch as its launch
/// settings stand, and why.
fn not_ready_event(
    server: &LaunchCandidate,
    reason: LaunchReason,
    read: Option<&Read>,
    reporter: &Reporter,
) -> OutboundEvent {
    let mut detail = serde_json::json!({
        "extendedSourceServerArn": server.arn,
        "stagingSourceServerArn": server.staging_arn,
        "stagingAccountId": server.staging_account,
        "region": server.region,
        "launchReason": reason.as_str(),
        "trigger": reporter.trigger(),
    });
    if let Some((config, template)) = read {
        if let Some(id) = &config.template_id {
            detail["ec2LaunchTemplateId"] = id.clone().into();
        }
        if let Known::Found(TemplateData {
            subnet_id: Some(subnet),
            ..
        }) = template
        {
            detail["subnetId"] = subnet.clone().into();
        }
    }
    OutboundEvent {
        detail_type: LAUNCH_NOT_READY_DETAIL_TYPE,
        resources: vec![server.staging_arn.clone(), server.arn.clone()],
        detail: detail.to_string(),
    }
}
