//! The details of the events a reconciliation sends about extended servers it
//! found (`Unhealthy`, `Deleted`, `Not Ready`), as types: a field's name is
//! written once, here. Written through a JSON value, so their keys go out in
//! alphabetical order, as they always have.

use serde::Serialize;

use crate::domain::arn::Region;
use crate::domain::trigger::Trigger;

/// What every such event says of the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtendedServerSubject<'a> {
    pub extended_source_server_arn: &'a str,
    pub staging_source_server_arn: &'a str,
    pub staging_account_id: &'a str,
    pub region: &'a Region,
    pub trigger: &'a Trigger,
}

/// `Extended Source Server Unhealthy`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unhealthy<'a> {
    #[serde(flatten)]
    pub subject: ExtendedServerSubject<'a>,
    pub extension_status: &'static str,
    pub error_message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale_since: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub would_delete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_withheld: Option<crate::domain::stale::Withheld>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_failed: Option<String>,
}

/// `Extended Source Server Deleted`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deleted<'a> {
    #[serde(flatten)]
    pub subject: ExtendedServerSubject<'a>,
    pub reason: &'static str,
    pub stale_since: &'a str,
}

/// `Extended Source Server Not Ready`: DRS's fields where it gave them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotReady<'a> {
    #[serde(flatten)]
    pub subject: ExtendedServerSubject<'a>,
    pub reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_replication_state: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<u64>,
    #[serde(skip_serializing_if = "LastLaunch::is_empty")]
    pub last_launch: LastLaunch<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_launch_result: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_error: Option<&'a str>,
}

/// `lifeCycle.lastLaunch`, as DRS spells its fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LastLaunch<'a> {
    #[serde(rename = "apiCallDateTime", skip_serializing_if = "Option::is_none")]
    pub api_call_date_time: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'a str>,
    #[serde(rename = "jobID", skip_serializing_if = "Option::is_none")]
    pub job_id: Option<&'a str>,
}

impl LastLaunch<'_> {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// A detail as the event's text: through a JSON value, so keys are sorted.
pub fn detail_text(detail: &impl Serialize) -> String {
    serde_json::to_value(detail)
        .map(|value| value.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_written_as_they_always_were_keys_sorted_absent_fields_left_out() {
        let region = Region::parse("us-east-1").unwrap();
        let trigger = Trigger {
            id: Some("e-1".into()),
            source: Some("aws.events".into()),
            detail_type: Some("Scheduled Event".into()),
        };
        let subject = ExtendedServerSubject {
            extended_source_server_arn: "arn:x",
            staging_source_server_arn: "arn:s",
            staging_account_id: "111122223333",
            region: &region,
            trigger: &trigger,
        };
        let not_ready = NotReady {
            subject: subject.clone(),
            reason: "LAGGING",
            data_replication_state: Some("RESCAN"),
            lag_seconds: Some(18_000),
            last_launch: LastLaunch {
                api_call_date_time: Some("2026-11-01T10:00:00Z"),
                kind: Some("DRILL"),
                status: None,
                job_id: Some("drsjob-1"),
            },
            last_launch_result: None,
            replication_error: None,
        };
        assert_eq!(
            detail_text(&not_ready),
            r#"{"dataReplicationState":"RESCAN","extendedSourceServerArn":"arn:x","lagSeconds":18000,"lastLaunch":{"apiCallDateTime":"2026-11-01T10:00:00Z","jobID":"drsjob-1","type":"DRILL"},"reason":"LAGGING","region":"us-east-1","stagingAccountId":"111122223333","stagingSourceServerArn":"arn:s","trigger":{"detailType":"Scheduled Event","id":"e-1","source":"aws.events"}}"#
        );
        let unhealthy = Unhealthy {
            subject,
            extension_status: "EXTENSION_ERROR",
            error_message: "gone".into(),
            stale_since: None,
            would_delete: false,
            delete_withheld: None,
            delete_failed: None,
        };
        assert_eq!(
            detail_text(&unhealthy),
            r#"{"errorMessage":"gone","extendedSourceServerArn":"arn:x","extensionStatus":"EXTENSION_ERROR","region":"us-east-1","stagingAccountId":"111122223333","stagingSourceServerArn":"arn:s","trigger":{"detailType":"Scheduled Event","id":"e-1","source":"aws.events"}}"#
        );
    }
}
