//! The event path: the servers an event names, each authorized and extended.

use crate::domain::arn::AccountId;
use crate::domain::failure::{DrsError, DEADLINE_REACHED};
use crate::domain::outcome::{Outcome, Subject};
use crate::domain::rejection::Rejection;
use crate::inbound::authorize::{authorize, serves, Trusted};
use crate::inbound::classify::ServerRequest;
use crate::run::extend::{extend_riding_out_throttling, ExtendSettings, Known, Refusals};
use crate::run::reporter::Reporter;

use super::App;

impl App {
    pub(super) async fn extend_servers(
        &self,
        servers: Vec<Result<ServerRequest, Rejection>>,
        sender: Option<&AccountId>,
        trusted: &Trusted,
        settings: &ExtendSettings,
        reporter: &Reporter,
    ) {
        // The servers after a refusal no retry changes are not tried.
        let refused = Refusals::default();
        for server in servers {
            let mut held = None;
            let outcome = match server {
                Err(rejection) => Outcome::rejected(rejection),
                Ok(server) => {
                    let account = server.arn.account();
                    let region = server.arn.region();
                    let allowed = serves(&self.config, region, Some(account))
                        .and_then(|()| authorize(&self.config, account, sender, trusted));
                    let earlier = refused.met(account, region).map(|met| met.code);
                    match (allowed, self.clients.drs(region), earlier) {
                        (Ok(()), _, _) if settings.deadline.reached() => Outcome::failed(
                            Subject::server(&server.arn),
                            DrsError::new(
                                DEADLINE_REACHED,
                                "not tried: the invocation's deadline came first",
                                true,
                            ),
                        ),
                        (Ok(()), Some(_), Some(code)) => Outcome::failed(
                            Subject::server(&server.arn),
                            DrsError::new(
                                code,
                                "not tried: DRS refused an earlier create of this invocation \
                                 in the same region for a reason no retry changes",
                                false,
                            ),
                        ),
                        (Ok(()), Some(drs), None) => {
                            // A place for its event before anything is created.
                            held = reporter.reserve().await;
                            let outcome = extend_riding_out_throttling(
                                &drs,
                                settings,
                                &server.arn,
                                server.tags.as_ref(),
                                Known::Unknown,
                            )
                            .await;
                            refused.note(&server.arn, &outcome);
                            outcome
                        }
                        (Err(mut rejection), _, _) => {
                            rejection.staging_arn = Some(server.arn);
                            Outcome::rejected(rejection)
                        }
                        (Ok(()), None, _) => Outcome::rejected(Rejection::new(format!(
                            "region {} is not served by this function",
                            server.arn.region()
                        ))),
                    }
                }
            };
            reporter.report_held(outcome, held).await;
        }
    }
}
