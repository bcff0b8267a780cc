//! CloudWatch metrics in Embedded Metric Format: one JSON line on stdout per delivery or
//! record, turned into metrics by CloudWatch Logs with no API call on the hot path.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::ack::Answer;
use crate::consumer::{Outcome, RecordReport};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "CfWebhooks";
/// The one dimension of every metric: the stack's name (`CF_STACK`), so that two stacks
/// in one account keep their own series.
pub const DIMENSION: &str = "Stack";

/// The metric names: the template's alarms and dashboard take them from here.
pub mod name {
    /// Deliveries queued (ingest).
    pub const ACCEPTED: &str = "Accepted";
    /// Deliveries refused: 4xx (ingest).
    pub const REJECTED: &str = "Rejected";
    /// Authentic deliveries kept in `unrouted` (ingest).
    pub const QUARANTINED: &str = "Quarantined";
    /// Authentic deliveries filtered out (ingest).
    pub const IGNORED: &str = "Ignored";
    /// Deliveries answered 503: not stored (ingest).
    pub const UNAVAILABLE: &str = "Unavailable";
    /// Milliseconds one enqueue took (ingest).
    pub const ENQUEUE_LATENCY: &str = "EnqueueLatency";
    /// Records applied (consumers).
    pub const PROCESSED: &str = "Processed";
    /// Records skipped as already applied (consumers).
    pub const DUPLICATES: &str = "Duplicates";
    /// Failed attempts, to be retried (consumers).
    pub const FAILED: &str = "Failed";
    /// Records moved to a dead-letter queue (consumers).
    pub const DEAD_LETTERED: &str = "DeadLettered";
    /// Every metric, ingest's first.
    pub const ALL: [&str; 10] =
        [ACCEPTED, REJECTED, QUARANTINED, IGNORED, UNAVAILABLE, ENQUEUE_LATENCY, PROCESSED, DUPLICATES, FAILED, DEAD_LETTERED];
}

/// One EMF line: `metrics` (name, value, unit) under one dimension set.
pub fn line(dimensions: &[(&str, &str)], metrics: &[(&str, f64, &str)]) -> String {
    let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let names: Vec<&str> = dimensions.iter().map(|(name, _)| *name).collect();
    let definitions: Vec<Value> = metrics.iter().map(|(name, _, unit)| json!({"Name": name, "Unit": unit})).collect();
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [names], "Metrics": definitions}]
        }),
    );
    for (name, value) in dimensions {
        root.insert((*name).into(), json!(value));
    }
    for (name, value, _) in metrics {
        root.insert((*name).into(), json!(value));
    }
    Value::Object(root).to_string()
}

/// The metrics of one ingest answer: `Accepted` and `EnqueueLatency` by `EventGroup`;
/// `Rejected`, `Quarantined` and `Ignored` by `Reason`; `Unavailable`.
pub fn ingest_line(answer: &Answer, enqueue_ms: Option<f64>) -> String {
    match answer {
        Answer::Accepted { group, .. } => line(
            &[("EventGroup", group.as_str())],
            &[("Accepted", 1.0, "Count"), ("EnqueueLatency", enqueue_ms.unwrap_or(0.0), "Milliseconds")],
        ),
        Answer::Unavailable(_) => line(&[], &[("Unavailable", 1.0, "Count")]),
        other => {
            let name = match other {
                Answer::Ignored { .. } => "Ignored",
                Answer::Quarantined(_) => "Quarantined",
                _ => "Rejected",
            };
            line(&[("Reason", other.reason().unwrap_or("unknown"))], &[(name, 1.0, "Count")])
        }
    }
}

/// The metrics of one finished record, by `EventGroup`: `Processed`, `Duplicates`,
/// `Failed` or `DeadLettered`.
pub fn consumer_line(report: &RecordReport) -> String {
    let name = match report.outcome {
        Outcome::Processed => "Processed",
        Outcome::Duplicate => "Duplicates",
        Outcome::Failed { .. } => "Failed",
        Outcome::DeadLettered { .. } => "DeadLettered",
    };
    line(&[("EventGroup", report.event_group.as_str())], &[(name, 1.0, "Count")])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::Rejection;
    use crate::events::EventGroup;

    #[test]
    fn emf_lines_declare_what_they_carry() {
        let accepted = Answer::Accepted { payload_id: "p".into(), group: EventGroup::WorkUnit };
        let v: Value = serde_json::from_str(&ingest_line(&accepted, Some(3.5))).unwrap();
        let declared = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(declared["Namespace"], NAMESPACE);
        assert_eq!(declared["Dimensions"], json!([["EventGroup"]]));
        assert_eq!(declared["Metrics"][1], json!({"Name": "EnqueueLatency", "Unit": "Milliseconds"}));
        assert_eq!(v["EventGroup"], "work-unit");
        assert_eq!(v["Accepted"], 1.0);
        assert_eq!(v["EnqueueLatency"], 3.5);
        assert!(v["_aws"]["Timestamp"].as_u64().unwrap() > 1_700_000_000_000);

        let rejected: Value =
            serde_json::from_str(&ingest_line(&Answer::Rejected(Rejection::SignatureMismatch), None)).unwrap();
        assert_eq!(rejected["Reason"], "signature-mismatch");
        assert_eq!(rejected["Rejected"], 1.0);
    }

    #[test]
    fn consumer_outcomes() {
        let report = RecordReport {
            payload_id: None,
            event_group: EventGroup::Job,
            action: None,
            outcome: Outcome::DeadLettered { reason: "r".into() },
            reason: Some("r".into()),
            message_id: "m".into(),
            attempt: 1,
        };
        let v: Value = serde_json::from_str(&consumer_line(&report)).unwrap();
        assert_eq!(v["DeadLettered"], 1.0);
        assert_eq!(v["EventGroup"], "job");
    }
}
