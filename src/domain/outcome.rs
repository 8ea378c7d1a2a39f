//! Outcomes: what happened to each server, the function's response, and the
//! outcome events that report them. Pure data; no I/O.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::domain::arn::{AccountId, Region, SourceServerArn};
use crate::domain::aws_error::AwsError;
use crate::domain::rejection::Rejection;
use crate::domain::tags::DroppedTag;
use crate::domain::trigger::Trigger;

/// An extended source server in the target account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtendedServer {
    pub id: String,
    pub arn: String,
    /// Which invocation's create made it, as its `drs-extender:` tag says.
    pub made_by: MadeBy,
}

/// What an extended server's tags say of who made it. DRS's timestamps are not
/// asked: DRS may stamp an extension with its staging server's time, in whole
/// seconds, or run minutes apart from the function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MadeBy {
    /// DRS's answer carried no tags to read.
    Unread,
    /// Its tags were read, and name no invocation: made by a person, a tool,
    /// or before the function tagged its creates.
    Nobody,
    /// The value of its `drs-extender:request-id` tag.
    Invocation(String),
}

impl MadeBy {
    /// From an extended server's tags as DRS gave them (`None`: not given).
    pub fn from_tags<'a>(tags: Option<impl IntoIterator<Item = (&'a String, &'a String)>>) -> Self {
        let Some(tags) = tags else {
            return Self::Unread;
        };
        tags.into_iter()
            .find(|(key, _)| key.as_str() == crate::domain::tags::MADE_BY_KEY)
            .map_or(Self::Nobody, |(_, value)| Self::Invocation(value.clone()))
    }
}

/// Where the server in question is, as far as known.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staging_source_server_arn: Option<SourceServerArn>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staging_account_id: Option<AccountId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<Region>,
}

impl Subject {
    pub fn server(arn: &SourceServerArn) -> Self {
        Self {
            staging_source_server_arn: Some(arn.clone()),
            staging_account_id: Some(arn.account().clone()),
            region: Some(arn.region().clone()),
        }
    }

    pub fn account(account: &AccountId, region: Option<&Region>) -> Self {
        Self {
            staging_source_server_arn: None,
            staging_account_id: Some(account.clone()),
            region: region.cloned(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SkipReason {
    AlreadyExtended,
    DryRun,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(
    tag = "status",
    rename_all = "lowercase",
    rename_all_fields = "camelCase"
)]
pub enum Outcome {
    Created {
        #[serde(flatten)]
        subject: Subject,
        extended_source_server_id: String,
        extended_source_server_arn: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        dropped_tags: Vec<DroppedTag>,
        /// Whether `LAUNCH_BASELINE` was applied; absent when none is set.
        #[serde(skip_serializing_if = "Option::is_none")]
        launch_baseline: Option<crate::domain::baseline::BaselineResult>,
    },
    Skipped {
        #[serde(flatten)]
        subject: Subject,
        reason: SkipReason,
        #[serde(skip_serializing_if = "Option::is_none")]
        extended_source_server_arn: Option<String>,
    },
    Failed {
        #[serde(flatten)]
        subject: Subject,
        error_code: String,
        error_message: String,
        retryable: bool,
        /// A known cause, where DRS's answer shows it (`domain::hint`).
        #[serde(skip_serializing_if = "Option::is_none")]
        hint: Option<&'static str>,
        /// Which quota a `ServiceQuotaExceededException` met, where DRS said.
        #[serde(skip_serializing_if = "Option::is_none")]
        quota_code: Option<String>,
    },
    Rejected {
        #[serde(flatten)]
        subject: Subject,
        reason: String,
        #[serde(skip)]
        region_not_served: bool,
    },
}

impl Outcome {
    pub fn created(
        arn: &SourceServerArn,
        extended: ExtendedServer,
        dropped_tags: Vec<DroppedTag>,
    ) -> Self {
        Self::Created {
            subject: Subject::server(arn),
            extended_source_server_id: extended.id,
            extended_source_server_arn: extended.arn,
            dropped_tags,
            launch_baseline: None,
        }
    }

    pub fn already_extended(arn: &SourceServerArn, extended: ExtendedServer) -> Self {
        Self::Skipped {
            subject: Subject::server(arn),
            reason: SkipReason::AlreadyExtended,
            extended_source_server_arn: Some(extended.arn),
        }
    }

    pub fn dry_run(arn: &SourceServerArn) -> Self {
        Self::Skipped {
            subject: Subject::server(arn),
            reason: SkipReason::DryRun,
            extended_source_server_arn: None,
        }
    }

    pub fn failed(subject: Subject, error: AwsError) -> Self {
        Self::Failed {
            subject,
            hint: crate::domain::hint::for_failure(error.code(), &error.message),
            error_code: bounded(error.code().to_owned(), 128),
            retryable: error.retryable(),
            quota_code: error.quota_code().map(|q| bounded(q.to_owned(), 128)),
            error_message: bounded(error.message, MAX_ERROR_MESSAGE),
        }
    }

    pub fn rejected(rejection: Rejection) -> Self {
        let subject = match &rejection.staging_arn {
            Some(arn) => Subject::server(arn),
            None => Subject {
                staging_account_id: rejection.staging_account,
                ..Subject::default()
            },
        };
        Self::Rejected {
            subject,
            reason: rejection.reason,
            region_not_served: rejection.region_not_served,
        }
    }

    pub fn status(&self) -> &'static str {
        match self {
            Self::Created { .. } => "created",
            Self::Skipped { .. } => "skipped",
            Self::Failed { .. } => "failed",
            Self::Rejected { .. } => "rejected",
        }
    }

    pub fn subject(&self) -> &Subject {
        match self {
            Self::Created { subject, .. }
            | Self::Skipped { subject, .. }
            | Self::Failed { subject, .. }
            | Self::Rejected { subject, .. } => subject,
        }
    }

    pub fn is_retryable_failure(&self) -> bool {
        matches!(
            self,
            Self::Failed {
                retryable: true,
                ..
            }
        )
    }

    fn detail_type(&self) -> &'static str {
        match self {
            Self::Created { .. } => "Extended Source Server Created",
            Self::Skipped { .. } => "Extended Source Server Skipped",
            Self::Failed { .. } => "Extended Source Server Failed",
            Self::Rejected { .. } => "Extension Request Rejected",
        }
    }

    /// The outcome event: the outcome's own fields, less `status` (the detail-type
    /// says it), plus the trigger.
    pub fn event(&self, trigger: &Trigger) -> OutboundEvent {
        let mut detail = to_object(self);
        detail.remove("status");
        detail.insert(
            "trigger".into(),
            serde_json::to_value(trigger).unwrap_or(Value::Null),
        );
        let mut resources: Vec<String> = Vec::new();
        if let Some(arn) = &self.subject().staging_source_server_arn {
            resources.push(arn.to_string());
        }
        match self {
            Self::Created {
                extended_source_server_arn,
                ..
            }
            | Self::Skipped {
                extended_source_server_arn: Some(extended_source_server_arn),
                ..
            } => resources.push(extended_source_server_arn.clone()),
            _ => {}
        }
        OutboundEvent {
            detail_type: self.detail_type(),
            resources,
            detail: Value::Object(detail).to_string(),
        }
    }
}

/// Characters of an error message kept: DRS's messages are short; what is longer
/// came from somewhere else and only makes events large.
pub const MAX_ERROR_MESSAGE: usize = 1_024;

fn bounded(text: String, max: usize) -> String {
    if text.chars().count() <= max {
        return text;
    }
    text.chars().take(max).collect::<String>() + "…"
}

/// An event for `PutEvents`; the bus and source come from configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundEvent {
    pub detail_type: &'static str,
    pub resources: Vec<String>,
    /// The detail as PutEvents takes it: JSON text. Kept as text because a large
    /// run holds thousands of these at once.
    pub detail: String,
}

fn to_object(value: &impl Serialize) -> Map<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// The function's response: every outcome, and the counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    pub outcomes: Vec<Outcome>,
    pub created: usize,
    pub skipped: usize,
    pub failed: usize,
    pub rejected: usize,
    /// Why the event asked for nothing, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
    /// The `Reconciliation Completed` summary, when the event asked for one.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "keys_in_order"
    )]
    pub reconciliation: Option<crate::domain::summary::Summary>,
    /// Per staging account and region: extended servers, extension errors and
    /// servers left unextended, when the event asked for a reconciliation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub coverage: Vec<crate::domain::scope::ScopeCoverage>,
    /// Servers an event named that this invocation did not try, and why (a
    /// reconciliation reports its own in its summary).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unfinished: Vec<crate::domain::scope::Unfinished>,
    /// Outcomes left out of `outcomes` to keep the response under Lambda's 6 MB;
    /// the counts and the outcome events cover them all.
    #[serde(skip_serializing_if = "is_zero")]
    pub outcomes_omitted: usize,
    /// Servers refused for the target account's quota on source servers: a
    /// metric and its alarm, not part of the answer.
    #[serde(skip)]
    pub quota_exceeded: usize,
    /// Requests refused for a region this function does not serve: a metric and
    /// its alarm.
    #[serde(skip)]
    pub region_not_served: usize,
    /// Servers created whose launch baseline could not be applied.
    #[serde(skip_serializing_if = "is_zero")]
    pub launch_baseline_failed: usize,
}

/// The summary as the response has always written it: keys in alphabetical order
/// (it went through a JSON value), where the event writes them as declared.
fn keys_in_order<S: serde::Serializer>(
    summary: &Option<crate::domain::summary::Summary>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let value = serde_json::to_value(summary).map_err(serde::ser::Error::custom)?;
    serde::Serialize::serialize(&value, serializer)
}

pub(crate) fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// About 400 bytes an outcome: 2,000 keep a response near 1 MB. Failures and
/// rejections are kept before successes, since they are what a reader looks for.
pub const MAX_RESPONSE_OUTCOMES: usize = 2_000;

impl Response {
    pub fn ignored(reason: String) -> Self {
        Self {
            ignored: Some(reason),
            ..Self::default()
        }
    }

    /// The counts on one line, for logs and error messages.
    pub fn summary(&self) -> String {
        format!(
            "{{\"created\":{},\"skipped\":{},\"failed\":{},\"rejected\":{}}}",
            self.created, self.skipped, self.failed, self.rejected
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::domain::arn::example_server as arn;
    use crate::domain::aws_error::{ErrorKind, Service};

    fn detail(event: &OutboundEvent) -> Value {
        serde_json::from_str(&event.detail).unwrap()
    }

    fn trigger() -> Trigger {
        Trigger {
            id: Some("e-1".into()),
            source: Some("org.tooling".into()),
            detail_type: Some("Staging Source Server Added".into()),
        }
    }

    #[test]
    fn created_event_carries_every_interface_field() {
        let extended = ExtendedServer {
            id: "s-00000000000000001".into(),
            arn: "arn:aws:drs:us-east-1:444455556666:source-server/s-00000000000000001".into(),
            made_by: MadeBy::Unread,
        };
        let event = Outcome::created(&arn(), extended, vec![]).event(&trigger());
        assert_eq!(event.detail_type, "Extended Source Server Created");
        assert_eq!(event.resources.len(), 2);
        assert_eq!(
            detail(&event),
            json!({
                "stagingSourceServerArn": arn().to_string(),
                "stagingAccountId": "111122223333",
                "region": "us-east-1",
                "extendedSourceServerId": "s-00000000000000001",
                "extendedSourceServerArn": "arn:aws:drs:us-east-1:444455556666:source-server/s-00000000000000001",
                "trigger": {"id": "e-1", "source": "org.tooling", "detailType": "Staging Source Server Added"}
            })
        );
    }

    #[test]
    fn failed_and_skipped_and_rejected_events() {
        let failed = Outcome::failed(
            Subject::server(&arn()),
            AwsError::new(
                Service::Drs,
                "CreateExtendedSourceServer",
                ErrorKind::answered(429, Some("ThrottlingException"), None),
            )
            .with_message("slow down"),
        );
        let event = failed.event(&trigger());
        assert_eq!(event.detail_type, "Extended Source Server Failed");
        let failed = detail(&event);
        assert_eq!(failed["errorCode"], "ThrottlingException");
        assert_eq!(failed["retryable"], true);
        assert!(failed.get("status").is_none());

        let skipped = Outcome::dry_run(&arn()).event(&trigger());
        assert_eq!(skipped.detail_type, "Extended Source Server Skipped");
        assert_eq!(detail(&skipped)["reason"], "DRY_RUN");
        assert_eq!(skipped.resources, vec![arn().to_string()]);

        let mut rejection = Rejection::new("bad");
        rejection.staging_account = Some(AccountId::parse("111122223333").unwrap());
        let rejected = Outcome::rejected(rejection).event(&trigger());
        assert_eq!(rejected.detail_type, "Extension Request Rejected");
        let rejected_detail = detail(&rejected);
        assert_eq!(
            rejected_detail,
            json!({"stagingAccountId": "111122223333", "reason": "bad", "trigger": rejected_detail["trigger"]})
        );
        assert!(rejected.resources.is_empty());
    }
}
