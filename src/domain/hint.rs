//! Known causes of a failed extension, named where DRS's answer shows them: what
//! the operator reads first in the failed outcome, before the runbook.

/// A hint for DRS's refusal `code` with `message`, where the cause is known.
/// DRS does not document its messages, so each is matched loosely, and a
/// message that names none of them gets no hint rather than a wrong one.
pub fn for_failure(code: &str, message: &str) -> Option<&'static str> {
    let message = message.to_ascii_lowercase();
    let mentions = |words: &[&str]| words.iter().any(|w| message.contains(w));
    if mentions(&["marketplace"]) {
        return Some(MARKETPLACE);
    }
    if code == "ValidationException"
        && mentions(&["default"])
        && mentions(&["ebs", "kms", "key", "encrypt"])
    {
        return Some(DEFAULT_EBS_KEY);
    }
    if code == "AccessDeniedException"
        && mentions(&["drsstagingaccountrole", "staging role", "assume", "trust"])
    {
        return Some(STAGING_ROLE);
    }
    None
}

pub const DEFAULT_EBS_KEY: &str = "the staging server's volumes are encrypted with the default EBS key, which cannot be shared: replicate with a customer managed key and add the KmsKeyPolicyStatements to it (docs/onboarding.md, steps 1 and 3)";
pub const MARKETPLACE: &str = "a source with AWS Marketplace licences needs DRS's failback and in-AWS right-sizing role for the target account where its instances run (docs/onboarding.md)";
pub const STAGING_ROLE: &str = "DRS could not act in the staging account: its DRSStagingAccountRole_<target account> is missing or does not trust the target account (docs/onboarding.md, step 2)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_known_cause_is_named_and_nothing_else() {
        for (code, message, hint) in [
            (
                "ValidationException",
                "volumes encrypted with the default EBS key cannot be extended",
                Some(DEFAULT_EBS_KEY),
            ),
            (
                "ValidationException",
                "Source server uses default KMS key",
                Some(DEFAULT_EBS_KEY),
            ),
            (
                "ValidationException",
                "AWS Marketplace licensing requires the right-sizing role",
                Some(MARKETPLACE),
            ),
            (
                "AccessDeniedException",
                "Failed to assume role DRSStagingAccountRole_444455556666",
                Some(STAGING_ROLE),
            ),
            (
                "AccessDeniedException",
                "User is not authorized to perform drs:CreateExtendedSourceServer",
                None,
            ),
            ("ValidationException", "sourceServerArn is not valid", None),
            ("InternalServerException", "default", None),
        ] {
            assert_eq!(for_failure(code, message), hint, "{code}: {message}");
        }
    }
}
