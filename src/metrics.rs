//! CloudWatch metrics through the Embedded Metric Format: one JSON line per
//! invocation on stdout, which Lambda's log pipeline turns into metrics. No
//! client, no API call, no added latency. Dimensions are kept to one
//! (`FunctionName`) so the metric count stays small.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::domain::outcome::Response;

pub const NAMESPACE: &str = "drs-extender";

/// The metrics of one invocation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InvocationMetrics {
    pub created: usize,
    pub skipped: usize,
    pub failed: usize,
    pub rejected: usize,
    /// Servers refused for the target account's quota on source servers.
    pub quota_exceeded: usize,
    /// Requests refused for a region this function does not serve.
    pub region_not_served: usize,
    /// Servers created whose launch baseline was not applied.
    pub launch_baseline_failed: usize,
    /// Milliseconds, when the invocation reconciled.
    pub reconciliation_duration_ms: Option<u64>,
    /// Whether that reconciliation was complete; its heartbeat (1 or 0), which
    /// an alarm watches for going missing.
    pub reconciliation_complete: Option<bool>,
    /// Accounts and regions that reconciliation left unfinished: one account
    /// always failing keeps this above zero, though other runs complete.
    pub unfinished_scopes: Option<usize>,
    /// Milliseconds from process start to the first event, on a cold start only.
    pub cold_start_ms: Option<u64>,
    /// Coverage, when the invocation reconciled: in all, and per region.
    pub extended: Option<usize>,
    pub extension_errors: Option<usize>,
    /// Extended servers not ready to recover, when the invocation reconciled:
    /// what the not-ready alarm watches.
    pub not_ready: Option<usize>,
    /// Extended servers whose launch settings would not launch, of those
    /// checked: what the launch alarm watches.
    pub launch_not_ready: Option<usize>,
    pub regions: Vec<RegionCoverage>,
    /// The source-server quota per region, when the invocation watched it.
    pub quotas: Vec<RegionQuotaUse>,
}

/// One region's quota use, as its own EMF line with a `Region` dimension.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RegionQuotaUse {
    pub region: String,
    pub source_servers: u64,
    pub quota: u64,
    pub used_percent: f64,
}

/// One region's coverage, as its own EMF line with a `Region` dimension.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RegionCoverage {
    pub region: String,
    pub extended: usize,
    pub extension_errors: usize,
    pub not_extended: usize,
    pub ready: usize,
    pub syncing: usize,
    pub not_ready: usize,
    /// Not-ready servers by reason: one EMF document each, `Reason` a dimension.
    pub not_ready_reasons: std::collections::BTreeMap<String, usize>,
    /// Launch settings checked; not-ready ones by reason, one document each.
    pub launch: crate::domain::launch::LaunchCounts,
}

impl InvocationMetrics {
    pub fn from_response(response: &Response) -> Self {
        let summary = response.reconciliation.as_ref();
        Self {
            created: response.created,
            skipped: response.skipped,
            failed: response.failed,
            rejected: response.rejected,
            quota_exceeded: response.quota_exceeded,
            region_not_served: response.region_not_served,
            launch_baseline_failed: response.launch_baseline_failed,
            reconciliation_duration_ms: summary.map(|s| s.duration_ms),
            reconciliation_complete: summary.map(|s| s.complete),
            unfinished_scopes: summary.map(|s| s.unfinished.len()),
            cold_start_ms: None,
            extended: summary.map(|s| s.extended),
            extension_errors: summary.map(|s| s.extension_errors),
            not_ready: summary.map(|s| s.not_ready),
            launch_not_ready: summary.map(|s| s.launch.launch_not_ready),
            regions: per_region(response),
            quotas: summary.map(quota_use).unwrap_or_default(),
        }
    }

    /// The highest share of a region's quota used: what the quota alarm
    /// watches, with one metric however many regions are served.
    pub fn quota_used_percent(&self) -> Option<f64> {
        self.quotas.iter().map(|q| q.used_percent).reduce(f64::max)
    }

    /// The EMF document for these metrics.
    pub fn document(&self, function_name: &str, timestamp_ms: u64) -> Value {
        let mut values = Map::new();
        let mut definitions = Vec::new();
        let mut add = |name: &str, unit: &str, value: Value| {
            definitions.push(json!({"Name": name, "Unit": unit}));
            values.insert(name.to_owned(), value);
        };
        add("Created", "Count", json!(self.created));
        add("Skipped", "Count", json!(self.skipped));
        add("Failed", "Count", json!(self.failed));
        add("Rejected", "Count", json!(self.rejected));
        add("QuotaExceeded", "Count", json!(self.quota_exceeded));
        add("RegionNotServed", "Count", json!(self.region_not_served));
        add(
            "LaunchBaselineFailed",
            "Count",
            json!(self.launch_baseline_failed),
        );
        if let Some(ms) = self.reconciliation_duration_ms {
            add("ReconciliationDuration", "Milliseconds", json!(ms));
        }
        if let Some(complete) = self.reconciliation_complete {
            add("ReconciliationComplete", "Count", json!(u8::from(complete)));
        }
        if let Some(unfinished) = self.unfinished_scopes {
            add("UnfinishedScopes", "Count", json!(unfinished));
        }
        if let Some(ms) = self.cold_start_ms {
            add("ColdStart", "Milliseconds", json!(ms));
        }
        if let Some(n) = self.extended {
            add("Extended", "Count", json!(n));
        }
        if let Some(n) = self.extension_errors {
            add("ExtensionErrors", "Count", json!(n));
        }
        if let Some(n) = self.not_ready {
            add("NotReady", "Count", json!(n));
        }
        if let Some(n) = self.launch_not_ready {
            add("LaunchNotReady", "Count", json!(n));
        }
        if let Some(percent) = self.quota_used_percent() {
            add("QuotaUsedPercent", "Percent", json!(percent));
        }
        let mut document = Map::new();
        document.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["FunctionName"]],
                    "Metrics": definitions,
                }],
            }),
        );
        document.insert("FunctionName".into(), json!(function_name));
        document.extend(values);
        Value::Object(document)
    }

    /// One EMF document per region with coverage: `Extended`, `ExtensionErrors`,
    /// `NotExtended`, `Ready`, `Syncing`, `NotReady`, `LaunchChecked`,
    /// `LaunchNotReady` and `LaunchUnchecked` with the dimensions
    /// `FunctionName` and `Region`; one per region and not-ready reason,
    /// `NotReady` (or `LaunchNotReady`, for launch reasons) with `Reason` as well; and one per region whose quota was
    /// watched: `SourceServers`, `SourceServerQuota` and `QuotaUsedPercent`.
    pub fn region_documents(&self, function_name: &str, timestamp_ms: u64) -> Vec<Value> {
        let document = |dimensions: &[(&str, &str)], metrics: &[(&str, &str, Value)]| {
            dimensional(function_name, timestamp_ms, dimensions, metrics)
        };
        let coverage = self.regions.iter().map(|r| {
            document(
                &[("Region", &r.region)],
                &[
                    ("Extended", "Count", json!(r.extended)),
                    ("ExtensionErrors", "Count", json!(r.extension_errors)),
                    ("NotExtended", "Count", json!(r.not_extended)),
                    ("Ready", "Count", json!(r.ready)),
                    ("Syncing", "Count", json!(r.syncing)),
                    ("NotReady", "Count", json!(r.not_ready)),
                    ("LaunchChecked", "Count", json!(r.launch.launch_checked)),
                    ("LaunchNotReady", "Count", json!(r.launch.launch_not_ready)),
                    ("LaunchUnchecked", "Count", json!(r.launch.launch_unchecked)),
                ],
            )
        });
        let by_reason = self.regions.iter().flat_map(|r| {
            r.not_ready_reasons.iter().map(move |(reason, n)| {
                document(
                    &[("Region", &r.region), ("Reason", reason)],
                    &[("NotReady", "Count", json!(n))],
                )
            })
        });
        let launch_by_reason = self.regions.iter().flat_map(|r| {
            r.launch
                .launch_not_ready_reasons
                .iter()
                .map(move |(reason, n)| {
                    document(
                        &[("Region", &r.region), ("Reason", reason.as_str())],
                        &[("LaunchNotReady", "Count", json!(n))],
                    )
                })
        });
        let quotas = self.quotas.iter().map(|q| {
            document(
                &[("Region", &q.region)],
                &[
                    ("SourceServers", "Count", json!(q.source_servers)),
                    ("SourceServerQuota", "Count", json!(q.quota)),
                    ("QuotaUsedPercent", "Percent", json!(q.used_percent)),
                ],
            )
        });
        coverage
            .chain(by_reason)
            .chain(launch_by_reason)
            .chain(quotas)
            .collect()
    }

    /// Writes the documents, one line each, on stdout, where Lambda collects them.
    pub fn emit(&self, function_name: &str) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let mut stdout = std::io::stdout().lock();
        let documents = std::iter::once(self.document(function_name, now))
            .chain(self.region_documents(function_name, now));
        for document in documents {
            // Metrics are best effort: a closed stdout must not fail the invocation.
            let _ = writeln!(stdout, "{document}");
        }
    }
}

/// One EMF document: `metrics` (name, unit, value) under `FunctionName` and
/// `dimensions`, all in one dimension set.
fn dimensional(
    function_name: &str,
    timestamp_ms: u64,
    dimensions: &[(&str, &str)],
    metrics: &[(&str, &str, Value)],
) -> Value {
    let names: Vec<&str> = std::iter::once("FunctionName")
        .chain(dimensions.iter().map(|(name, _)| *name))
        .collect();
    let mut document = Map::new();
    document.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [names],
                "Metrics": metrics.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
            }],
        }),
    );
    document.insert("FunctionName".into(), json!(function_name));
    for (name, value) in dimensions {
        document.insert((*name).into(), json!(value));
    }
    for (name, _, value) in metrics {
        document.insert((*name).into(), value.clone());
    }
    Value::Object(document)
}

/// The summary's quota entries, as metrics.
fn quota_use(summary: &crate::domain::summary::Summary) -> Vec<RegionQuotaUse> {
    summary
        .quota
        .iter()
        // A count cut short is a lower bound: sent only when even that is past
        // the line, never as a share that looks like room.
        .filter(|q| q.counted || q.warning)
        .map(|q| RegionQuotaUse {
            region: q.region.to_string(),
            source_servers: q.source_servers,
            quota: q.quota,
            used_percent: q.used_percent,
        })
        .collect()
}

/// The response's per-account coverage, summed by region.
fn per_region(response: &Response) -> Vec<RegionCoverage> {
    let mut regions: std::collections::BTreeMap<String, RegionCoverage> = Default::default();
    for scope in &response.coverage {
        let region = &scope.region;
        let entry = regions
            .entry(region.to_string())
            .or_insert_with(|| RegionCoverage {
                region: region.to_string(),
                ..RegionCoverage::default()
            });
        entry.extended += scope.extended;
        entry.extension_errors += scope.extension_errors;
        entry.not_extended += scope.not_extended;
        entry.ready += scope.ready;
        entry.syncing += scope.syncing;
        entry.not_ready += scope.not_ready;
        for (reason, n) in &scope.not_ready_reasons {
            *entry.not_ready_reasons.entry(reason.clone()).or_default() += n;
        }
        entry.launch.add(&scope.launch);
    }
    regions.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_follow_the_embedded_metric_format() {
        let metrics = InvocationMetrics {
            created: 3,
            failed: 1,
            reconciliation_duration_ms: Some(1200),
            reconciliation_complete: Some(true),
            cold_start_ms: Some(7),
            ..Default::default()
        };
        let doc = metrics.document("drs-extender", 1_700_000_000_000);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(directive["Dimensions"], json!([["FunctionName"]]));
        let names: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "Created",
                "Skipped",
                "Failed",
                "Rejected",
                "QuotaExceeded",
                "RegionNotServed",
                "LaunchBaselineFailed",
                "ReconciliationDuration",
                "ReconciliationComplete",
                "ColdStart"
            ]
        );
        // Every metric named in the directive has a value at the top level.
        for name in names {
            assert!(doc[name].is_number(), "{name}");
        }
        assert_eq!(doc["Created"], 3);
        assert_eq!(doc["ReconciliationComplete"], 1);
        assert_eq!(doc["FunctionName"], "drs-extender");
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000u64);
    }

    #[test]
    fn coverage_goes_out_in_all_and_per_region() {
        let metrics = InvocationMetrics {
            extended: Some(5),
            extension_errors: Some(2),
            regions: vec![RegionCoverage {
                region: "eu-west-1".into(),
                extended: 5,
                extension_errors: 2,
                not_extended: 1,
                ready: 3,
                syncing: 0,
                not_ready: 2,
                not_ready_reasons: [("EXTENSION_ERROR".to_owned(), 2)].into_iter().collect(),
                launch: crate::domain::launch::LaunchCounts {
                    launch_checked: 3,
                    launch_not_ready: 1,
                    launch_not_ready_reasons: [(
                        crate::domain::launch::LaunchReason::SubnetNotFound,
                        1,
                    )]
                    .into_iter()
                    .collect(),
                    launch_unchecked: 2,
                },
            }],
            launch_not_ready: Some(1),
            ..Default::default()
        };
        let total = metrics.document("f", 0);
        assert_eq!(total["ExtensionErrors"], 2);
        assert_eq!(total["LaunchNotReady"], 1);
        let regional = metrics.region_documents("f", 0);
        assert_eq!(
            regional.len(),
            3,
            "the region's, one for its one not-ready reason, one for its launch reason"
        );
        assert_eq!(regional[0]["LaunchChecked"], 3);
        assert_eq!(regional[0]["LaunchUnchecked"], 2);
        assert_eq!(
            (
                regional[2]["Reason"].as_str(),
                regional[2]["LaunchNotReady"].as_u64()
            ),
            (Some("SUBNET_NOT_FOUND"), Some(1))
        );
        assert_eq!(regional[0]["Ready"], 3);
        assert_eq!(
            regional[1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["FunctionName", "Region", "Reason"]])
        );
        assert_eq!(
            (
                regional[1]["Reason"].as_str(),
                regional[1]["NotReady"].as_u64()
            ),
            (Some("EXTENSION_ERROR"), Some(2))
        );
        assert_eq!(
            regional[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["FunctionName", "Region"]])
        );
        assert_eq!(
            (
                regional[0]["Region"].as_str(),
                regional[0]["NotExtended"].as_u64()
            ),
            (Some("eu-west-1"), Some(1))
        );
    }

    fn summary() -> crate::domain::summary::Summary {
        crate::domain::summary::Summary::covering(&[], &[], false)
    }

    fn region(name: &str) -> crate::domain::arn::Region {
        crate::domain::arn::Region::parse(name).unwrap()
    }

    #[test]
    fn quota_use_goes_out_per_region_and_its_highest_share_in_all() {
        use crate::domain::aws_error::{ErrorKind, ReadStopped};
        use crate::domain::quota::{judge, QuotaReading};
        let reading = |servers: u64, count_error: Option<ErrorKind>| QuotaReading {
            source_servers: servers,
            count_error: count_error.map(ReadStopped::Call),
            quota: Ok(4_000),
            aws_default: None,
        };
        let response = Response {
            reconciliation: Some(crate::domain::summary::Summary {
                quota: vec![
                    judge(region("us-east-1"), reading(3_300, None), 80),
                    judge(region("eu-west-1"), reading(10, None), 80),
                    judge(
                        region("eu-west-2"),
                        reading(5, Some(ErrorKind::Deadline)),
                        80,
                    ),
                ],
                ..summary()
            }),
            ..Response::default()
        };
        let metrics = InvocationMetrics::from_response(&response);
        assert_eq!(metrics.document("f", 0)["QuotaUsedPercent"], 82.5);
        let regional = metrics.region_documents("f", 0);
        assert_eq!(
            regional.len(),
            2,
            "a short count under the line is not sent"
        );
        assert_eq!(regional[1]["Region"], "eu-west-1");
        assert_eq!(regional[1]["SourceServers"], 10);
        assert_eq!(regional[0]["SourceServerQuota"], 4000);
        assert_eq!(
            regional[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"][2]["Unit"],
            "Percent"
        );
        // Without a watch, no quota metric (an alarm treats it as missing).
        let none = InvocationMetrics::from_response(&Response::default());
        assert!(none.document("f", 0).get("QuotaUsedPercent").is_none());
    }

    #[test]
    fn unfinished_accounts_and_regions_are_counted_from_the_summary() {
        use crate::domain::arn::AccountId;
        use crate::domain::scope::{Unfinished, UnfinishedReason};
        let unfinished = |account: &str, reason| Unfinished {
            staging_account_id: AccountId::parse(account).ok(),
            region: region("eu-west-1"),
            staging_source_server_arn: None,
            reason,
        };
        let response = Response {
            reconciliation: Some(crate::domain::summary::Summary {
                complete: false,
                unfinished: vec![
                    unfinished("111122223333", UnfinishedReason::ListingFailed),
                    unfinished("444455556666", UnfinishedReason::Deadline),
                ],
                ..summary()
            }),
            ..Response::default()
        };
        let doc = InvocationMetrics::from_response(&response).document("f", 0);
        assert_eq!(doc["UnfinishedScopes"], 2);
        assert_eq!(doc["ReconciliationComplete"], 0);
        let event_only = InvocationMetrics::from_response(&Response::default()).document("f", 0);
        assert!(
            event_only.get("UnfinishedScopes").is_none(),
            "no reconciliation, no count"
        );
    }

    #[test]
    fn optional_metrics_are_left_out_when_unknown() {
        let doc = InvocationMetrics::default().document("f", 0);
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
                .len(),
            7,
            "the four counts, QuotaExceeded, RegionNotServed and LaunchBaselineFailed"
        );
        assert!(doc.get("ColdStart").is_none());
    }
}
