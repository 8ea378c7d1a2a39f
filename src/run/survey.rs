//! The survey before a reconciliation run: the first page of every scope, read a
//! few at once, and whether the work found fits this invocation or is handed on
//! to one invocation per staging account.

use std::panic::resume_unwind;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::aws::clients::Clients;
use crate::aws::drs::ExtensibleServer;
use crate::aws::paging::Page;
use crate::domain::arn::{AccountId, Region};
use crate::domain::aws_error::AwsError;
use crate::domain::deadline::Deadline;
use crate::domain::outcome::OutboundEvent;
use crate::domain::scope::Scope;

/// What the first listing of one scope found.
pub enum Listing {
    /// Listed. The page is kept for the run to start from while the survey's
    /// pages stay within [`KEPT_BY_SURVEY`] servers.
    Listed {
        page: Option<Page<ExtensibleServer>>,
        calls: u64,
        work: bool,
    },
    Failed(AwsError),
    /// The deadline came first.
    NotReached,
}

/// One scope and its first listing: what a run starts from, and what tells
/// whether the run fits in one invocation.
pub struct Surveyed {
    pub scope: Scope,
    pub first: Listing,
}

/// A further page is not listed yet: count it as a full one.
const CALLS_PER_FURTHER_PAGES: u64 = 301;
/// Bytes of listed servers the survey keeps to start from; past that it keeps
/// counts only, and the run lists again, so memory stays bounded at any scale.
pub const KEPT_BY_SURVEY: usize = 8 * 1024 * 1024;
/// Listings read at once by the survey, and accounts worked at once by a run (each
/// reads its own pages and holds the one it works through): a page of 300 servers
/// with full tags is megabytes while the SDK parses it, so memory is bounded by
/// this, not by the number of accounts. Creates are bounded across the run anyway.
pub const LISTINGS_AT_ONCE: usize = 4;

/// What a listed server costs to hold, roughly.
fn held_bytes(server: &ExtensibleServer) -> usize {
    64 + server.arn.len()
        + server
            .tags
            .iter()
            .flatten()
            .map(|(k, v)| 48 + k.len() + v.len())
            .sum::<usize>()
}

impl Surveyed {
    fn listed(scope: Scope, page: Page<ExtensibleServer>) -> Self {
        let calls = page.items.len() as u64
            + page
                .next_token
                .as_ref()
                .map_or(0, |_| CALLS_PER_FURTHER_PAGES);
        let work = !page.items.is_empty() || page.next_token.is_some();
        Self {
            scope,
            first: Listing::Listed {
                page: Some(page),
                calls,
                work,
            },
        }
    }

    /// DRS calls this scope is expected to take.
    fn expected_calls(&self) -> u64 {
        match &self.first {
            Listing::Listed { calls, .. } => *calls,
            _ => 1,
        }
    }

    /// Whether there is anything to do (or to try again) for this scope.
    pub fn has_work(&self) -> bool {
        !matches!(&self.first, Listing::Listed { work: false, .. })
    }
}

/// Lists the first page of every scope, a few at once, each region at its pace,
/// until the deadline. Tags are kept only when they will be copied.
pub async fn survey(
    clients: &Clients,
    scopes: Vec<Scope>,
    deadline: Deadline,
    keep_tags: bool,
) -> Vec<Surveyed> {
    let mut listings = JoinSet::new();
    let mut surveyed = Vec::new();
    let at_once = Arc::new(Semaphore::new(LISTINGS_AT_ONCE));
    for scope in scopes {
        let Some(drs) = clients.drs(&scope.region) else {
            continue;
        };
        let at_once = at_once.clone();
        let listing = async move {
            let _listing = at_once.acquire_owned().await;
            if deadline.reached() {
                return (scope, None);
            }
            let first = drs
                .list_extensible(&scope.staging_account_id, None, keep_tags, &deadline)
                .await;
            (scope, Some(first))
        };
        listings.spawn(listing.in_current_span());
    }
    let mut kept = 0;
    while let Some(joined) = listings.join_next().await {
        let (scope, first) = joined.unwrap_or_else(|e| resume_unwind(e.into_panic()));
        surveyed.push(match first {
            None => Surveyed {
                scope,
                first: Listing::NotReached,
            },
            Some(Err(error)) => Surveyed {
                scope,
                first: Listing::Failed(error),
            },
            Some(Ok(page)) => {
                let mut listed = Surveyed::listed(scope, page);
                if let Listing::Listed { page, .. } = &mut listed.first {
                    let size = page
                        .as_ref()
                        .map_or(0, |p| p.items.iter().map(held_bytes).sum());
                    if kept + size > KEPT_BY_SURVEY {
                        *page = None;
                    } else {
                        kept += size;
                    }
                }
                listed
            }
        });
    }
    surveyed.sort_by(|a, b| a.scope.cmp(&b.scope));
    surveyed
}

/// Whether the work the survey found fits in the time left at each region's
/// pace; beyond that a run fans out, one request per staging account with work.
/// One staging account is the unit of fan-out: it always fits.
pub fn fits(surveyed: &[Surveyed], max_rps: u32, time_left: Option<std::time::Duration>) -> bool {
    let Some(time_left) = time_left else {
        return true;
    };
    let first = surveyed.first().map(|s| &s.scope.staging_account_id);
    if surveyed
        .iter()
        .all(|s| Some(&s.scope.staging_account_id) == first)
    {
        return true;
    }
    let mut per_region: std::collections::BTreeMap<&Region, u64> = Default::default();
    for s in surveyed {
        *per_region.entry(&s.scope.region).or_default() += s.expected_calls();
    }
    let busiest = per_region.values().copied().max().unwrap_or(0);
    busiest <= time_left.as_secs() * u64::from(max_rps)
}

/// The accounts handed on, each with its regions.
pub type HandedOn = Vec<(AccountId, Vec<Region>)>;

/// One `Reconciliation Requested` per staging account, marked so it never fans
/// out again; and the accounts (with their regions) in the same order.
pub fn fan_out_requests(surveyed: &[Surveyed], dry_run: bool) -> (HandedOn, Vec<OutboundEvent>) {
    let mut by_account: std::collections::BTreeMap<&AccountId, Vec<&Region>> = Default::default();
    for scope in surveyed.iter().filter(|s| s.has_work()).map(|s| &s.scope) {
        by_account
            .entry(&scope.staging_account_id)
            .or_default()
            .push(&scope.region);
    }
    let events = by_account
        .iter()
        .map(|(account, regions)| OutboundEvent {
            detail_type: crate::inbound::classify::RECONCILIATION_REQUESTED_DETAIL_TYPE,
            resources: Vec::new(),
            detail: crate::domain::extension_event::detail_text(&FanOutRequest {
                staging_account_ids: [account],
                regions,
                dry_run,
                fanned_out: true,
            }),
        })
        .collect();
    let accounts = by_account
        .into_iter()
        .map(|(account, regions)| (account.clone(), regions.into_iter().cloned().collect()))
        .collect();
    (accounts, events)
}

/// The detail of a fan-out request: a `Reconciliation Requested` for one staging
/// account, which the inbound classifier reads back (`fannedOut`).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct FanOutRequest<'a> {
    staging_account_ids: [&'a AccountId; 1],
    regions: &'a [&'a Region],
    dry_run: bool,
    fanned_out: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// `accounts` staging accounts in each region, each with `listed` servers on
    /// its first page and, if `more`, a further page.
    fn surveyed(accounts: usize, regions: &[&str], listed: usize, more: bool) -> Vec<Surveyed> {
        let mut all = Vec::new();
        for a in 0..accounts {
            for r in regions {
                let items = (0..listed)
                    .map(|_| ExtensibleServer {
                        arn: String::new(),
                        tags: None,
                    })
                    .collect();
                all.push(Surveyed {
                    scope: Scope {
                        staging_account_id: AccountId::parse(&format!(
                            "{:012}",
                            100_000_000_000u64 + a as u64
                        ))
                        .unwrap(),
                        region: Region::parse(r).unwrap(),
                    },
                    first: Listing::Listed {
                        calls: 0,
                        work: false,
                        page: None,
                    },
                });
                let page = Page {
                    items,
                    next_token: more.then(|| "next".to_owned()),
                };
                let last = all.len() - 1;
                all[last] = Surveyed::listed(all[last].scope.clone(), page);
            }
        }
        all
    }

    #[test]
    fn fans_out_only_when_the_work_found_does_not_fit() {
        // 275 s at 10 requests a second: 2750 calls per region.
        let time = Some(Duration::from_secs(275));
        assert!(fits(
            &surveyed(9, &["us-east-1", "eu-west-1"], 300, false),
            10,
            time
        ));
        assert!(!fits(&surveyed(10, &["us-east-1"], 300, false), 10, time));
        // A further page counts as a full one.
        assert!(!fits(&surveyed(5, &["us-east-1"], 300, true), 10, time));
        // Accounts with nothing to do cost nothing, however many.
        assert!(fits(&surveyed(5000, &["us-east-1"], 0, false), 10, time));
        assert!(fits(
            &surveyed(50, &["us-east-1"], 300, false),
            100,
            Some(Duration::from_secs(875))
        ));
        assert!(fits(&surveyed(1000, &["us-east-1"], 300, true), 1, None));
        // One account is never split.
        assert!(fits(
            &surveyed(1, &["us-east-1", "eu-west-1"], 300, true),
            1,
            time
        ));
    }

    #[test]
    fn fan_out_sends_one_marked_request_per_account_with_work() {
        let mut all = surveyed(3, &["us-east-1", "eu-west-1"], 1, false);
        all.extend(
            surveyed(1, &["ap-south-1"], 0, false)
                .into_iter()
                .map(|mut s| {
                    s.scope.staging_account_id = AccountId::parse("999999999999").unwrap();
                    s
                }),
        );
        let (accounts, events) = fan_out_requests(&all, true);
        assert_eq!(accounts.len(), events.len());
        assert_eq!(
            events.len(),
            3,
            "the account with nothing to do gets no request"
        );
        let detail: serde_json::Value = serde_json::from_str(&events[0].detail).unwrap();
        assert_eq!(detail["stagingAccountIds"].as_array().unwrap().len(), 1);
        assert_eq!(detail["regions"].as_array().unwrap().len(), 2);
        assert_eq!(detail["fannedOut"], true);
        assert_eq!(detail["dryRun"], true);
        assert_eq!(events[0].detail_type, "Reconciliation Requested");
    }
}
