//! The event path: the servers an event names, each authorized and extended.
//! A server the invocation does not try is reported `unfinished` with the
//! reason: the deadline came first (`DEADLINE`), an outcome event was given up
//! (`EVENTS_UNDELIVERED`), or DRS refused an earlier create of this invocation
//! for a reason no retry changes.

use crate::domain::outcome::Outcome;
use crate::domain::rejection::Rejection;
use crate::domain::scope::Unfinished;
use crate::inbound::authorize::{authorize, serves};
use crate::inbound::classify::ServerRequest;
use crate::run::extend::{extend, Extension, Known, Refusals};
use crate::run::reporter::Reporter;

use super::{App, Asked};

impl App {
    /// Extends each server and reports its outcome; answers the servers not tried.
    pub(super) async fn extend_servers(
        &self,
        servers: Vec<Result<ServerRequest, Rejection>>,
        asked: &Asked<'_>,
        reporter: &Reporter,
    ) -> Vec<Unfinished> {
        let settings = &self.settings(None, asked, reporter);
        let (sender, trusted) = (asked.sender.as_ref(), &asked.trusted);
        // The servers after a refusal no retry changes are not tried.
        let refused = Refusals::default();
        let mut unfinished = Vec::new();
        for server in servers {
            let server = match server {
                Err(rejection) => {
                    reporter.report(Outcome::rejected(rejection)).await;
                    continue;
                }
                Ok(server) => server,
            };
            let (account, region) = (server.arn.account(), server.arn.region());
            let allowed = serves(&self.config, region, Some(account))
                .and_then(|()| authorize(&self.config, account, sender, trusted));
            if let Err(mut rejection) = allowed {
                rejection.staging_arn = Some(Box::new(server.arn));
                reporter.report(Outcome::rejected(rejection)).await;
                continue;
            }
            let Some(drs) = self.clients.drs(region) else {
                let rejection = Rejection::region_not_served(format!(
                    "region {region} is not served by this function"
                ));
                reporter.report(Outcome::rejected(rejection)).await;
                continue;
            };
            if let Some(met) = refused.met(account, region) {
                unfinished.push(Unfinished::server(&server.arn, met.refusal.reason()));
                continue;
            }
            // A place for its event before anything is created.
            let held = match reporter.admit(&settings.deadline, async {}).await {
                Ok((held, ())) => held,
                Err(reason) => {
                    unfinished.push(Unfinished::server(&server.arn, reason));
                    continue;
                }
            };
            let mut extension = extend(
                &drs,
                settings,
                &server.arn,
                server.tags.as_ref(),
                Known::Unknown,
            )
            .await;
            // Still holding its place: the baseline's calls are covered by it.
            let ec2 = self.clients.ec2(region);
            settings
                .apply_baseline(&mut extension, &drs, ec2.as_ref())
                .await;
            match extension {
                Extension::Done(outcome) => {
                    refused.note(&server.arn, &outcome);
                    reporter.report_held(*outcome, Some(held)).await;
                }
                Extension::NotReached(reason) => {
                    unfinished.push(Unfinished::server(&server.arn, reason))
                }
            }
        }
        if !unfinished.is_empty() {
            tracing::warn!(
                servers = unfinished.len(),
                "servers the event named were not tried"
            );
        }
        unfinished
    }
}
