//! Who may ask for which staging account's servers. Pure.

use crate::arn::AccountId;
use crate::config::Config;
use crate::inbound::Rejection;

/// A staging account's servers are acted on only when the event comes from that
/// account itself or from the target account, and the allowlist (if any) has it.
pub fn authorize(
    config: &Config,
    staging: &AccountId,
    sender: Option<&AccountId>,
    target: Option<&AccountId>,
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
        Some(sender) if sender == staging || Some(sender) == target => Ok(()),
        Some(sender) => reject(format!(
            "account {sender} may not ask for servers of staging account {staging}: only that account or the target account may"
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
    fn the_staging_account_itself_and_the_target_may_ask() {
        let (staging, target, other) = (
            account("111122223333"),
            account("444455556666"),
            account("999988887777"),
        );
        let open = config(None);
        assert!(authorize(&open, &staging, Some(&staging), Some(&target)).is_ok());
        assert!(authorize(&open, &staging, Some(&target), Some(&target)).is_ok());
        let spoofed = authorize(&open, &staging, Some(&other), Some(&target)).unwrap_err();
        assert!(spoofed.reason.contains("999988887777 may not ask"));
        assert_eq!(spoofed.staging_account, Some(staging.clone()));
        assert!(authorize(&open, &staging, None, Some(&target)).is_err());
        assert!(authorize(&open, &staging, Some(&target), None).is_err());
    }

    #[test]
    fn the_allowlist_is_checked_first() {
        let closed = config(Some("222233334444"));
        let staging = account("111122223333");
        let err = authorize(&closed, &staging, Some(&staging), None).unwrap_err();
        assert!(err.reason.contains("STAGING_ACCOUNT_IDS"));
        assert!(authorize(
            &closed,
            &account("222233334444"),
            Some(&account("222233334444")),
            None
        )
        .is_ok());
    }
}
