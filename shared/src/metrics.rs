//! CloudWatch metrics in Embedded Metric Format: one JSON line on stdout per delivery and
//! per consumer batch, turned into metrics by CloudWatch Logs with no API call on the hot
//! path. The hosts observe answers and batch reports and print these lines; the ack path
//! and the runner know nothing of metrics.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::ack::{Acknowledged, Answer};
use crate::config::{var, ConfigError};
use crate::consumer::{BatchReport, Outcome, Step};
use crate::events::EventGroup;
use crate::stack::DEFAULT_STACK;

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
    /// Records applied (consumers).
    pub const PROCESSED: &str = "Processed";
    /// Records skipped as already applied (consumers).
    pub const DUPLICATES: &str = "Duplicates";
    /// Failed attempts, to be retried (consumers).
    pub const FAILED: &str = "Failed";
    /// Attempts that found their record claimed by another attempt, and wait for it
    /// (consumers): copies delivered while the first is in progress.
    pub const WAITING: &str = "Waiting";
    /// Records moved to a dead-letter queue (consumers).
    pub const DEAD_LETTERED: &str = "DeadLettered";
    /// Records not applied because a newer event of their entity's facet was (consumers).
    pub const STALE: &str = "Stale";
    /// Events a destination took (consumers; dimensions `Stack` and `Destination`).
    pub const DELIVERED: &str = "Delivered";
    /// Records whose event differs from what Creative Force documents (consumers,
    /// `CF_DRIFT`): the kinds and fields are in the log lines, not in series.
    pub const DRIFT: &str = "Drift";
    /// Every metric, ingest's first. A 503 is counted by Lambda's own `Url5xxCount` and the
    /// answer time by `UrlRequestLatency` (both free), so neither is a series of ours; the
    /// enqueue time travels as the field `enqueue_ms`.
    pub const ALL: [&str; 11] =
        [ACCEPTED, REJECTED, QUARANTINED, IGNORED, PROCESSED, DUPLICATES, FAILED, DEAD_LETTERED, STALE, WAITING, DRIFT];
    /// The metrics of each destination a stack enables, under the dimensions `Stack` and
    /// `Destination` (`eventbridge`, `http`, `archive`): `Failed` there counts the
    /// records a destination failed. Only enabled destinations make series.
    pub const PER_DESTINATION: [&str; 2] = [DELIVERED, FAILED];
}

/// The second dimension of the destinations' metrics.
pub const DESTINATION_DIMENSION: &str = "Destination";

/// EMF lines of one function: every metric under the one dimension `Stack`; the group
/// and the reason travel as plain fields, for Logs Insights, without a series of their
/// own (a series costs money every month, a field costs nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emf {
    stack: String,
}

impl Emf {
    /// Lines for `stack`.
    pub fn new(stack: impl Into<String>) -> Self {
        Self { stack: stack.into() }
    }

    /// From `CF_METRICS` (`emf`, the default, or `off`: `None`) and `CF_STACK`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        match get(var::METRICS).as_deref() {
            None | Some("emf") => Ok(Some(Self::new(get(var::STACK).unwrap_or_else(|| DEFAULT_STACK.to_owned())))),
            Some("off") => Ok(None),
            Some(other) => Err(ConfigError::new(var::METRICS, format!("expected emf or off, got {other:?}"))),
        }
    }

    /// From the process environment.
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// One EMF line: `metrics` (name, value, unit) and plain `fields`.
    pub fn line(&self, fields: &[(&str, Value)], metrics: &[(&str, f64, &str)]) -> String {
        self.line_by(None, fields, metrics)
    }

    /// One EMF line, with `Destination` as a second dimension when given.
    fn line_by(&self, destination: Option<&str>, fields: &[(&str, Value)], metrics: &[(&str, f64, &str)]) -> String {
        let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let definitions: Vec<Value> =
            metrics.iter().map(|(name, _, unit)| json!({"Name": name, "Unit": unit})).collect();
        let mut root = Map::new();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [if destination.is_some() { json!([DIMENSION, DESTINATION_DIMENSION]) } else { json!([DIMENSION]) }],
                    "Metrics": definitions
                }]
            }),
        );
        root.insert(DIMENSION.into(), json!(self.stack));
        if let Some(destination) = destination {
            root.insert(DESTINATION_DIMENSION.into(), json!(destination));
        }
        for (name, value) in fields {
            root.insert((*name).into(), value.clone());
        }
        for (name, value, _) in metrics {
            root.insert((*name).into(), json!(value));
        }
        Value::Object(root).to_string()
    }

    /// The line of one ingest answer: `Accepted` (with the enqueue time as a field),
    /// `Rejected`, `Quarantined` or `Ignored`; `None` for a 503, which Lambda counts.
    pub fn ingest(&self, acknowledged: &Acknowledged) -> Option<String> {
        let answer = &acknowledged.answer;
        let reason = || json!(answer.reason().unwrap_or_default());
        let (metric, field) = match answer {
            Answer::Accepted { group, .. } => (name::ACCEPTED, ("EventGroup", json!(group.as_str()))),
            Answer::Unavailable(_) => return None,
            Answer::Ignored { .. } => (name::IGNORED, ("Reason", reason())),
            Answer::Quarantined(_) => (name::QUARANTINED, ("Reason", reason())),
            Answer::Rejected(_) => (name::REJECTED, ("Reason", reason())),
        };
        let mut fields = vec![field];
        if let Some(enqueue) = acknowledged.enqueue {
            fields.push(("enqueue_ms", json!((enqueue.as_secs_f64() * 1e6).round() / 1e3)));
        }
        Some(self.line(&fields, &[(metric, 1.0, "Count")]))
    }

    /// The line of one consumer batch: how many records were `Processed`, `Duplicates`,
    /// `Failed`, `DeadLettered`, `Stale` and `Waiting`, and how many drifted (`Drift`):
    /// only what occurred; `None` for an empty batch.
    pub fn batch(&self, group: EventGroup, report: &BatchReport) -> Option<String> {
        let mut counts = [
            (name::PROCESSED, 0.0),
            (name::DUPLICATES, 0.0),
            (name::FAILED, 0.0),
            (name::DEAD_LETTERED, 0.0),
            (name::STALE, 0.0),
            (name::WAITING, 0.0),
            (name::DRIFT, 0.0),
        ];
        for record in &report.records {
            if !record.drift.is_empty() {
                counts[6].1 += 1.0;
            }
            let slot = match record.outcome {
                Outcome::Processed => 0,
                Outcome::Duplicate => 1,
                Outcome::Failed { .. } => 2,
                // An expired record is in the dead-letter queue, with its reason.
                Outcome::DeadLettered { .. } | Outcome::Expired { .. } => 3,
                Outcome::Stale { .. } => 4,
                Outcome::Waiting { .. } => 5,
            };
            counts[slot].1 += 1.0;
        }
        let metrics: Vec<(&str, f64, &str)> =
            counts.iter().filter(|(_, n)| *n > 0.0).map(|(name, n)| (*name, *n, "Count")).collect();
        (!metrics.is_empty()).then(|| self.line(&[("EventGroup", json!(group.as_str()))], &metrics))
    }

    /// One line per destination a batch reached: how many records it took (`Delivered`)
    /// and failed (`Failed`), only what occurred. An event an earlier attempt delivered
    /// is not counted again.
    pub fn destinations(&self, group: EventGroup, report: &BatchReport) -> Vec<String> {
        let mut counts: std::collections::BTreeMap<&str, (f64, f64)> = std::collections::BTreeMap::new();
        for record in &report.records {
            for (destination, step) in &record.destinations {
                let slot = counts.entry(destination).or_default();
                match step {
                    Step::Delivered | Step::Archived => slot.0 += 1.0,
                    Step::Failed => slot.1 += 1.0,
                    Step::Earlier | Step::Present => {}
                }
            }
        }
        counts
            .into_iter()
            .filter_map(|(destination, (delivered, failed))| {
                self.destination(destination, group.as_str(), delivered as usize, failed as usize)
            })
            .collect()
    }

    /// The line of one destination: `delivered` and `failed` records of `route` (only
    /// what occurred); `None` when both are zero.
    pub fn destination(&self, destination: &str, route: &str, delivered: usize, failed: usize) -> Option<String> {
        let metrics: Vec<(&str, f64, &str)> = [(name::DELIVERED, delivered), (name::FAILED, failed)]
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| (name, n as f64, "Count"))
            .collect();
        (!metrics.is_empty()).then(|| self.line_by(Some(destination), &[("EventGroup", json!(route))], &metrics))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::Rejection;
    use crate::consumer::RecordReport;

    fn parse(line: &str) -> Value {
        serde_json::from_str(line).unwrap()
    }

    #[test]
    fn every_metric_has_the_stack_as_its_only_dimension() {
        let emf = Emf::new("studio-prod");
        let accepted = Acknowledged {
            answer: Answer::Accepted { payload_id: "p".into(), group: EventGroup::WorkUnit },
            enqueue: Some(std::time::Duration::from_micros(3500)),
        };
        let v = parse(&emf.ingest(&accepted).unwrap());
        let declared = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(declared["Namespace"], NAMESPACE);
        assert_eq!(declared["Dimensions"], json!([["Stack"]]));
        assert_eq!(declared["Metrics"], json!([{"Name": "Accepted", "Unit": "Count"}]));
        assert_eq!(v["Stack"], "studio-prod");
        assert_eq!(v["EventGroup"], "work-unit", "kept as a field for Logs Insights");
        assert_eq!(v["Accepted"], 1.0);
        assert_eq!(v["enqueue_ms"], 3.5, "a field, not a series");
        assert!(v["_aws"]["Timestamp"].as_u64().unwrap() > 1_700_000_000_000);

        let rejected = Acknowledged { answer: Answer::Rejected(Rejection::SignatureMismatch), enqueue: None };
        let v = parse(&emf.ingest(&rejected).unwrap());
        assert_eq!((v["Reason"].as_str(), v["Rejected"].as_f64()), (Some("signature-mismatch"), Some(1.0)));
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Stack"]]));
        assert!(v.get("enqueue_ms").is_none());

        let unavailable = Acknowledged {
            answer: Answer::Unavailable(crate::queue::PublishError::Closed(crate::events::Route::Unrouted)),
            enqueue: Some(std::time::Duration::from_millis(2500)),
        };
        assert_eq!(emf.ingest(&unavailable), None, "Lambda's Url5xxCount counts it");
    }

    #[test]
    fn a_batch_is_one_line_of_counts() {
        let report = |outcome: Outcome| RecordReport {
            payload_id: None,
            event_group: EventGroup::Job,
            action: None,
            reason: outcome.reason().map(str::to_owned),
            outcome,
            message_id: "m".into(),
            attempt: 1,
            replay_run: None,
            destinations: Default::default(),
            trace_id: None,
            drift: Vec::new(),
        };
        let batch = BatchReport {
            records: vec![
                report(Outcome::Processed),
                report(Outcome::Processed),
                report(Outcome::DeadLettered { reason: "r".into() }),
                report(Outcome::Stale { newer: 2, version: 1 }),
            ],
        };
        let v = parse(&Emf::new("s").batch(EventGroup::Job, &batch).unwrap());
        assert_eq!((v["Processed"].as_f64(), v["DeadLettered"].as_f64()), (Some(2.0), Some(1.0)));
        assert_eq!(v["Stale"].as_f64(), Some(1.0));
        assert!(v.get("Failed").is_none() && v.get("Duplicates").is_none(), "only what occurred: {v}");
        assert!(v.get("Drift").is_none(), "no series without drift: {v}");
        assert_eq!(v["EventGroup"], "job");
        assert_eq!(Emf::new("s").batch(EventGroup::Job, &BatchReport::default()), None);

        // Records that drifted, however many findings each.
        let drifted = |field: &str| crate::events::Finding::MissingField { field: field.into() };
        let mut batch = batch;
        batch.records[0].drift = vec![drifted("JobId"), drifted("JobCode")];
        batch.records[3].drift = vec![drifted("JobId")];
        let v = parse(&Emf::new("s").batch(EventGroup::Job, &batch).unwrap());
        assert_eq!(v["Drift"].as_f64(), Some(2.0));
        let declared = &v["_aws"]["CloudWatchMetrics"][0]["Metrics"];
        assert!(declared.as_array().unwrap().iter().any(|m| m["Name"] == "Drift"), "{declared}");
    }

    #[test]
    fn each_destination_reached_is_one_line_under_its_own_dimension() {
        let report = |steps: &[(&'static str, Step)]| RecordReport {
            payload_id: None,
            event_group: EventGroup::Task,
            action: None,
            reason: None,
            outcome: Outcome::Processed,
            message_id: "m".into(),
            attempt: 1,
            replay_run: None,
            destinations: steps.iter().copied().collect(),
            trace_id: None,
            drift: Vec::new(),
        };
        let batch = BatchReport {
            records: vec![
                report(&[("http", Step::Delivered), ("eventbridge", Step::Failed), ("archive", Step::Archived)]),
                report(&[("http", Step::Delivered), ("eventbridge", Step::Earlier), ("archive", Step::Present)]),
                report(&[]),
            ],
        };
        let lines: Vec<Value> = Emf::new("s").destinations(EventGroup::Task, &batch).iter().map(|l| parse(l)).collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        for line in &lines {
            assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Stack", "Destination"]]));
            assert_eq!(line["EventGroup"], "task");
        }
        let by = |d: &str| lines.iter().find(|l| l["Destination"] == d).unwrap().clone();
        assert_eq!(by("http")["Delivered"], 2.0);
        assert!(by("http").get("Failed").is_none());
        assert_eq!(by("eventbridge")["Failed"], 1.0);
        assert!(by("eventbridge").get("Delivered").is_none(), "an earlier delivery is not counted twice");
        assert_eq!(by("archive")["Delivered"], 1.0);
        assert!(Emf::new("s").destinations(EventGroup::Task, &BatchReport::default()).is_empty());
    }

    #[test]
    fn configuration() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
        };
        assert_eq!(Emf::from_lookup(env(&[])).unwrap(), Some(Emf::new(DEFAULT_STACK)));
        assert_eq!(Emf::from_lookup(env(&[("CF_STACK", "prod")])).unwrap(), Some(Emf::new("prod")));
        assert_eq!(Emf::from_lookup(env(&[("CF_METRICS", "off")])).unwrap(), None);
        assert_eq!(Emf::from_lookup(env(&[("CF_METRICS", "statsd")])).unwrap_err().var, "CF_METRICS");
    }
}
