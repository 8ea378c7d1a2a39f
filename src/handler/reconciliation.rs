//! A reconciliation as the handler runs it: which accounts and regions it covers,
//! then survey, and the run here or a fan-out.

use std::collections::BTreeSet;

use crate::aws::event_bus::PublishError;
use crate::domain::arn::{AccountId, Region};
use crate::domain::deadline::Deadline;
use crate::domain::extended::CoverageRules;
use crate::domain::outcome::{Outcome, Subject};
use crate::domain::quota::RegionQuota;
use crate::domain::rejection::Rejection;
use crate::domain::scope::UnfinishedReason;
use crate::domain::scope::{Scope, Unfinished};
use crate::inbound::authorize::{authorize, serves};
use crate::inbound::classify::ReconcileRequest;
use crate::run::coverage::{self, CoverageReport};
use crate::run::extend::ExtendSettings;
use crate::run::launch::{self, LaunchReport, LaunchRules};
use crate::run::quota;
use crate::run::reconcile;
use crate::run::reporter::Reporter;
use crate::run::summary::Summary;
use crate::run::survey;

use super::{App, Asked};

/// What a reconciliation leaves for the end of the invocation: its summary (the
/// counts are filled in last), what it left undone, and a fan-out that failed.
pub(super) struct Reconciled {
    pub(super) summary: Summary,
    pub(super) unfinished: Vec<Unfinished>,
    pub(super) fan_out_failed: Option<PublishError>,
    pub(super) coverage: CoverageReport,
    pub(super) quota: Vec<RegionQuota>,
    pub(super) launch: LaunchReport,
}

/// The accounts and regions a reconciliation covers.
struct Coverage {
    scopes: Vec<Scope>,
    regions: Vec<Region>,
    /// Regions whose staging accounts could not be listed.
    unfinished: Vec<Unfinished>,
    /// `ListStagingAccounts` was asked and named no account in any region.
    none_listed: bool,
}

impl App {
    /// One account in one region: an event that named no readable server.
    pub(super) async fn reconcile_account(
        &self,
        account: AccountId,
        region: Region,
        asked: &Asked<'_>,
        reporter: &Reporter,
    ) -> Option<Reconciled> {
        let allowed = serves(&self.config, &region, Some(&account)).and_then(|()| {
            authorize(
                &self.config,
                &account,
                asked.sender.as_ref(),
                &asked.trusted,
            )
        });
        if let Err(rejection) = allowed {
            reporter.report(Outcome::rejected(rejection)).await;
            return None;
        }
        let coverage = Coverage {
            scopes: vec![Scope {
                staging_account_id: account,
                region: region.clone(),
            }],
            regions: vec![region],
            unfinished: Vec::new(),
            none_listed: false,
        };
        let settings = self.settings(None, asked, reporter);
        let reconciled = self.reconcile(coverage, false, settings, asked, reporter);
        Some(reconciled.await)
    }

    /// A reconciliation requested, or scheduled: the regions it asks for, then
    /// the accounts in them.
    pub(super) async fn reconcile_requested(
        &self,
        request: ReconcileRequest,
        asked: &Asked<'_>,
        reporter: &Reporter,
    ) -> Option<Reconciled> {
        let regions = match self.requested_regions(&request) {
            Ok(regions) => regions,
            Err(rejection) => {
                reporter.report(Outcome::rejected(rejection)).await;
                return None;
            }
        };
        let settings = self.settings(request.dry_run, asked, reporter);
        let coverage = self.coverage(&request, regions, asked, reporter).await;
        let reconciled = self.reconcile(coverage, request.fanned_out, settings, asked, reporter);
        Some(reconciled.await)
    }

    /// The regions a request asks for, all of them served, or its rejection.
    fn requested_regions(&self, request: &ReconcileRequest) -> Result<Vec<Region>, Rejection> {
        let Some(regions) = &request.regions else {
            return Ok(self.config.reconcile_regions.clone());
        };
        for region in regions {
            serves(&self.config, region, None)?;
        }
        Ok(regions.clone())
    }

    /// Which accounts and regions a reconciliation covers. Accounts it was asked
    /// for but may not touch, and failed listings of staging accounts, are
    /// reported as they are found.
    async fn coverage(
        &self,
        request: &ReconcileRequest,
        regions: Vec<Region>,
        asked: &Asked<'_>,
        reporter: &Reporter,
    ) -> Coverage {
        let (sender, trusted, deadline) = (asked.sender.as_ref(), &asked.trusted, asked.deadline);
        let mut refused = BTreeSet::new();
        let mut scopes = BTreeSet::new();
        let mut unfinished = Vec::new();
        let (mut listing_asked, mut listed_accounts) = (false, 0);
        let sender_is_trusted = trusted.contains(sender);
        for region in &regions {
            let accounts: Vec<AccountId> =
                match (&request.staging_accounts, &self.config.staging_account_ids) {
                    (Some(named), _) => named.clone(),
                    // Only a trusted account speaks for every staging account.
                    (None, _) if !sender_is_trusted => sender.cloned().into_iter().collect(),
                    (None, Some(allowlist)) => allowlist.iter().cloned().collect(),
                    (None, None) => {
                        let listed = match self.clients.drs(region) {
                            Some(drs) => drs.list_staging_accounts(deadline).await,
                            None => continue,
                        };
                        listing_asked = true;
                        match listed {
                            Ok(accounts) => {
                                listed_accounts += accounts.len();
                                accounts
                            }
                            Err(error) => {
                                tracing::warn!(%region, %error, "could not list staging accounts");
                                unfinished.push(Unfinished {
                                    staging_source_server_arn: None,
                                    staging_account_id: None,
                                    region: region.clone(),
                                    reason: UnfinishedReason::StagingAccountsNotListed,
                                });
                                if !error.is_deadline() {
                                    let subject = Subject {
                                        region: Some(region.clone()),
                                        ..Subject::default()
                                    };
                                    reporter.report(Outcome::failed(subject, error)).await;
                                }
                                continue;
                            }
                        }
                    }
                };
            for account in accounts {
                match authorize(&self.config, &account, sender, trusted) {
                    Ok(()) => {
                        scopes.insert(Scope {
                            staging_account_id: account,
                            region: region.clone(),
                        });
                    }
                    Err(rejection) if refused.insert(account) => {
                        reporter.report(Outcome::rejected(rejection)).await;
                    }
                    Err(_) => {}
                }
            }
        }
        Coverage {
            none_listed: listing_asked && listed_accounts == 0 && unfinished.is_empty(),
            scopes: scopes.into_iter().collect(),
            regions,
            unfinished,
        }
    }

    /// Surveys the covered accounts, then works them here or, when the work does
    /// not fit in this invocation, hands each account to an invocation of its own.
    async fn reconcile(
        &self,
        coverage: Coverage,
        fanned_out: bool,
        settings: ExtendSettings,
        asked: &Asked<'_>,
        reporter: &Reporter,
    ) -> Reconciled {
        let (deadline, launch_rules) = (asked.deadline, &asked.launch);
        let Coverage {
            scopes,
            regions,
            mut unfinished,
            none_listed,
        } = coverage;
        let mut summary = Summary::covering(&scopes, &regions, settings.dry_run);
        let rules = CoverageRules {
            readiness: self.config.readiness,
            stale: self.config.stale,
            dry_run: settings.dry_run,
            made_by: settings.made_by.clone(),
        };
        if none_listed {
            tracing::warn!(
                reason = crate::domain::summary::NO_STAGING_ACCOUNT_LISTED,
                "the reconciliation covers no staging account"
            );
            summary.nothing_to_cover = Some(crate::domain::summary::NO_STAGING_ACCOUNT_LISTED);
        }
        let keep_tags = settings.copy_staging_tags && !settings.dry_run;
        let surveyed = survey::survey(&self.clients, scopes, deadline, keep_tags).await;
        let fits = survey::fits(&surveyed, self.config.drs_max_rps, deadline.remaining());
        if !fanned_out && !fits {
            let (accounts, requests) = survey::fan_out_requests(&surveyed, settings.dry_run);
            tracing::info!(
                requests = requests.len(),
                scopes = surveyed.len(),
                "reconciliation fans out"
            );
            let (delivered, last_error) = self
                .fan_out_bus
                .publish_each(requests, deadline.events_by())
                .await;
            summary.fanned_out = delivered.iter().filter(|d| **d).count();
            // An account whose request the bus did not take was handed to no one.
            for ((account, regions), delivered) in accounts.iter().zip(&delivered) {
                if !delivered {
                    unfinished.extend(regions.iter().map(|region| Unfinished {
                        staging_source_server_arn: None,
                        staging_account_id: Some(account.clone()),
                        region: region.clone(),
                        reason: UnfinishedReason::FanOutUndelivered,
                    }));
                }
            }
            let undelivered = delivered.iter().filter(|d| !**d).count();
            let fan_out_failed = (undelivered > 0).then_some(PublishError {
                undelivered,
                last_error,
            });
            // Each account handed on reads its own coverage; this run reads the rest.
            let kept: Vec<Scope> = surveyed
                .iter()
                .filter(|s| !s.has_work())
                .map(|s| s.scope.clone())
                .collect();
            let mut coverage =
                coverage::read(&self.clients, &kept, deadline, reporter, &rules).await;
            let quota = self.watch_quota(&regions, deadline).await;
            let launch = self
                .check_launch(&mut coverage, launch_rules, deadline, reporter)
                .await;
            return Reconciled {
                summary,
                unfinished,
                fan_out_failed,
                coverage,
                quota,
                launch,
            };
        }
        let worked: Vec<Scope> = surveyed.iter().map(|s| s.scope.clone()).collect();
        let report = reconcile::run(
            &self.clients,
            settings,
            surveyed,
            self.config.reconcile_concurrency,
            deadline,
            reporter,
        )
        .await;
        summary.examined = report.examined;
        unfinished.extend(report.unfinished);
        // After the work, so what this run extended counts as covered.
        let mut coverage = coverage::read(&self.clients, &worked, deadline, reporter, &rules).await;
        let quota = if fanned_out {
            Vec::new()
        } else {
            self.watch_quota(&regions, deadline).await
        };
        // Last: a check not made is only unchecked, and the rest matters more.
        let launch = self
            .check_launch(&mut coverage, launch_rules, deadline, reporter)
            .await;
        Reconciled {
            summary,
            unfinished,
            fan_out_failed: None,
            coverage,
            quota,
            launch,
        }
    }

    /// The launch settings of the servers this run extended and of its turn of
    /// the rest (the candidates coverage found, which are then let go).
    async fn check_launch(
        &self,
        coverage: &mut CoverageReport,
        rules: &LaunchRules,
        deadline: Deadline,
        reporter: &Reporter,
    ) -> LaunchReport {
        let candidates = std::mem::take(&mut coverage.launch_candidates);
        let chosen = launch::choose(candidates, rules);
        launch::check(&self.clients, chosen, rules, deadline, reporter).await
    }

    /// Which servers' launch settings this run checks: its turn in the rotation
    /// is the schedule's time in periods (`time` of the envelope, `periodSeconds`
    /// of a schedule's detail, else an hour); a request without a time takes
    /// the turn of the present.
    pub(super) fn launch_rules(&self, payload: &serde_json::Value) -> LaunchRules {
        let scheduled = payload
            .get("time")
            .and_then(serde_json::Value::as_str)
            .and_then(|t| {
                aws_smithy_types::DateTime::from_str(
                    t,
                    aws_smithy_types::date_time::Format::DateTime,
                )
                .ok()
            })
            .and_then(|t| u64::try_from(t.secs()).ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
            });
        let period = payload
            .pointer("/detail/periodSeconds")
            .and_then(serde_json::Value::as_u64)
            .filter(|p| *p > 0)
            .unwrap_or(3_600);
        LaunchRules {
            per_run: self.config.launch_checks_per_run,
            run_index: crate::domain::launch::run_index(scheduled, period),
            concurrency: self.config.reconcile_concurrency,
        }
    }

    /// The quota of every region the run covers, after what it extended.
    async fn watch_quota(&self, regions: &[Region], deadline: Deadline) -> Vec<RegionQuota> {
        quota::watch(
            &self.clients,
            regions,
            deadline,
            self.config.quota_warn_percent,
        )
        .await
    }
}
