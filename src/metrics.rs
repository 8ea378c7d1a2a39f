//! CloudWatch metrics through the Embedded Metric Format: one JSON line per
//! invocation on stdout, which Lambda's log pipeline turns into metrics. No
//! client, no API call, no added latency. Dimensions are kept to one
//! (`FunctionName`) so the metric count stays small.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::outcome::Response;

pub const NAMESPACE: &str = "drs-extender";

/// The metrics of one invocation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InvocationMetrics {
    pub created: usize,
    pub skipped: usize,
    pub failed: usize,
    pub rejected: usize,
    /// Milliseconds, when the invocation reconciled.
    pub reconciliation_duration_ms: Option<u64>,
    /// Whether that reconciliation was complete; its heartbeat (1 or 0), which
    /// an alarm watches for going missing.
    pub reconciliation_complete: Option<bool>,
    /// Milliseconds from process start to the first event, on a cold start only.
    pub cold_start_ms: Option<u64>,
}

impl InvocationMetrics {
    pub fn from_response(response: &Response) -> Self {
        Self {
            created: response.created,
            skipped: response.skipped,
            failed: response.failed,
            rejected: response.rejected,
            reconciliation_duration_ms: response
                .reconciliation
                .as_ref()
                .and_then(|r| r.get("durationMs"))
                .and_then(Value::as_u64),
            reconciliation_complete: response
                .reconciliation
                .as_ref()
                .and_then(|r| r.get("complete"))
                .and_then(Value::as_bool),
            cold_start_ms: None,
        }
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
        if let Some(ms) = self.reconciliation_duration_ms {
            add("ReconciliationDuration", "Milliseconds", json!(ms));
        }
        if let Some(complete) = self.reconciliation_complete {
            add("ReconciliationComplete", "Count", json!(u8::from(complete)));
        }
        if let Some(ms) = self.cold_start_ms {
            add("ColdStart", "Milliseconds", json!(ms));
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

    /// Writes the document as one line on stdout, where Lambda collects it.
    pub fn emit(&self, function_name: &str) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let line = self.document(function_name, now).to_string();
        let mut stdout = std::io::stdout().lock();
        // Metrics are best effort: a closed stdout must not fail the invocation.
        let _ = writeln!(stdout, "{line}");
    }
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
    fn optional_metrics_are_left_out_when_unknown() {
        let doc = InvocationMetrics::default().document("f", 0);
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
                .len(),
            4
        );
        assert!(doc.get("ColdStart").is_none());
    }
}
