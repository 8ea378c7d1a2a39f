//! Who may ask for which staging account's servers. Pure.

use crate::domain::arn::{AccountId, Region};
use crate::domain::config::Config;
use crate::domain::rejection::Rejection;

/// A staging account's servers are acted on only when the event comes from that
/// account itself or from the target account, and the allowlist (if any) has it.
/// The accounts that may ask for any staging account's servers: the target
/// account, and the account the function runs in (where its schedule, its rules
/// and its own fan-out requests come from; the same account when no role is assumed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trusted(Vec<AccountId>);

impl Trusted {
    pub fn new(target: Option<AccountId>, own: Option<AccountId>) -> Self {
        let mut accounts: Vec<AccountId> = target.into_iter().chain(own).collect();
        accounts.dedup();
        Self(accounts)
    }

    pub fn contains(&self, account: Option<&AccountId>) -> bool {
        account.is_some_and(|a| self.0.contains(a))
    }
}

/// Whether this function serves `region` (`RECONCILE_REGIONS`): no DRS client is
/// ever built for any other, so a made-up region costs nothing.
pub fn serves(
    config: &Config,
    region: &Region,
    staging: Option<&AccountId>,
) -> Result<(), Rejection> {
    if config.reconcile_regions.contains(region) {
        return Ok(());
    }
    let mut rejection = Rejection::region_not_served(format!(
        "region {region} is not served by this function (RECONCILE_REGIONS: {})",
        config
            .reconcile_regions
            .iter()
            .map(Region::as_str)
            .collect::<Vec<_>>()
            .join(",")
    ));
    rejection.staging_account = staging.cloned();
    Err(rejection)
}

pub fn authorize(
    config: &Config,
    staging: &AccountId,
    sender: Option<&AccountId>,
    trusted: &Trusted,
) -> Result<(), Rejection> {
    let reject = |reason: String| {
        let mut rejection = Rejection::new(reason);
        rejection.staging_account = Some(staging.clone());
        Err(rejection)
    };
    if !config.allows_staging_account(staging) {
        return reject(format!(
            "staging account {staging} is not in STAGING_ACCOUNT_IDS"
        ));
    }
    match sender {
        None => reject("the event names no `account`, so who asks is unknown".to_owned()),
        Some(sender) if sender == staging || trusted.contains(Some(sender)) => Ok(()),
        Some(sender) => reject(format!(
            "account {sender} may not ask for servers of staging account {staging}: only that account, the target account or the function's own may"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(id: &str) -> AccountId {
        AccountId::parse(id).unwrap()
    }

    fn config(allowlist: Option<&str>) -> Config {
        let vars = [
            ("AWS_REGION", Some("us-east-1")),
            ("STAGING_ACCOUNT_IDS", allowlist),
        ];
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .and_then(|(_, v)| v.map(str::to_owned))
        })
        .unwrap()
    }

    #[test]
    fn the_staging_account_itself_and_the_trusted_accounts_may_ask() {
        let (staging, target, other) = (
            account("111122223333"),
            account("444455556666"),
            account("999988887777"),
        );
        let open = config(None);
        let trusted = Trusted::new(Some(target.clone()), None);
        assert!(authorize(&open, &staging, Some(&staging), &trusted).is_ok());
        assert!(authorize(&open, &staging, Some(&target), &trusted).is_ok());
        let spoofed = authorize(&open, &staging, Some(&other), &trusted).unwrap_err();
        assert!(spoofed.reason.contains("999988887777 may not ask"));
        assert_eq!(spoofed.staging_account, Some(staging.clone()));
        assert!(authorize(&open, &staging, None, &trusted).is_err());
        assert!(authorize(&open, &staging, Some(&target), &Trusted::default()).is_err());
        // With a role into another account, the function's own account (its
        // schedule, its fan-out) is trusted as well.
        let own = account("777788889999");
        let both = Trusted::new(Some(target), Some(own.clone()));
        assert!(authorize(&open, &staging, Some(&own), &both).is_ok());
        assert!(authorize(&open, &staging, Some(&other), &both).is_err());
    }

    #[test]
    fn the_allowlist_is_checked_first() {
        let closed = config(Some("222233334444"));
        let staging = account("111122223333");
        let none = Trusted::default();
        let err = authorize(&closed, &staging, Some(&staging), &none).unwrap_err();
        assert!(err.reason.contains("STAGING_ACCOUNT_IDS"));
        let allowed = account("222233334444");
        assert!(authorize(&closed, &allowed, Some(&allowed), &none).is_ok());
    }
}
