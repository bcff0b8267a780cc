//! The stack's CloudWatch dashboard.

use super::*;

pub(super) fn widget(title: &str, metrics: Vec<Value>, x: u32, y: u32, width: u32) -> Value {
    map! {
        "type" => "metric",
        "x" => x,
        "y" => y,
        "width" => width,
        "height" => 6,
        "properties" => map! {
            "title" => title,
            "region" => "${AWS::Region}",
            "view" => "timeSeries",
            "stacked" => false,
            "period" => 60,
            "metrics" => metrics,
        },
    }
}

/// One of our metrics, for this stack only.
/// `Delivered` and `Failed` of each destination (series exist only for those switched on).
pub(super) fn destination_metrics() -> Vec<Value> {
    let mut lines = Vec::new();
    for destination in config::DESTINATION_NAMES {
        for (metric, word) in [(name::DELIVERED, "delivered"), (name::FAILED, "failed")] {
            lines.push(seq![
                metrics::NAMESPACE,
                metric,
                metrics::DIMENSION,
                STACK_NAME,
                metrics::DESTINATION_DIMENSION,
                destination,
                map! { "stat" => "Sum", "label" => format!("{destination} {word}") }
            ]);
        }
    }
    lines
}

pub(super) fn ours(metric: &str, stat: &str, label: &str) -> Value {
    seq![metrics::NAMESPACE, metric, metrics::DIMENSION, STACK_NAME, map! { "stat" => stat, "label" => label }]
}

pub(super) fn per_queue(metric: &str, stat: &str, routes: &[Route], dead_letter: bool) -> Vec<Value> {
    routes
        .iter()
        .map(|&route| {
            let options = map! { "stat" => stat, "label" => route.as_str() };
            let logical = if dead_letter { dlq(route) } else { queue(route) };
            seq!["AWS/SQS", metric, "QueueName", format!("${{{logical}.QueueName}}"), options]
        })
        .collect()
}

pub(super) fn dashboard() -> Value {
    let latency = |stat: &str| {
        let options = map! { "stat" => stat, "label" => format!("answer {stat}") };
        seq!["AWS/Lambda", "UrlRequestLatency", "FunctionName", INGEST_FUNCTION, options]
    };
    let groups: Vec<Route> = EventGroup::ALL.into_iter().map(Route::Group).collect();
    let widgets = vec![
        widget(
            "Deliveries: accepted, rejected, quarantined, ignored, 503",
            vec![
                ours(name::ACCEPTED, "Sum", "accepted"),
                ours(name::REJECTED, "Sum", "rejected"),
                ours(name::QUARANTINED, "Sum", "quarantined"),
                ours(name::IGNORED, "Sum", "ignored"),
                seq![
                    "AWS/Lambda",
                    "Url5xxCount",
                    "FunctionName",
                    INGEST_FUNCTION,
                    map! { "stat" => "Sum", "label" => "5xx: not stored, the sender retries" }
                ],
            ],
            0,
            0,
            12,
        ),
        widget("Ack latency (ms)", vec![latency("p50"), latency("p99"), latency("p99.9")], 12, 0, 12),
        widget(
            "Queue depths",
            per_queue("ApproximateNumberOfMessagesVisible", "Maximum", &Route::ALL, false),
            0,
            6,
            12,
        ),
        widget(
            "Age of the oldest message (s)",
            per_queue("ApproximateAgeOfOldestMessage", "Maximum", &Route::ALL, false),
            12,
            6,
            12,
        ),
        widget(
            "Records: processed, duplicates, failed, dead-lettered, stale, waiting, drifted",
            vec![
                ours(name::PROCESSED, "Sum", "processed"),
                ours(name::DUPLICATES, "Sum", "duplicates"),
                ours(name::FAILED, "Sum", "failed"),
                ours(name::DEAD_LETTERED, "Sum", "dead-lettered"),
                ours(name::STALE, "Sum", "stale (a newer event was applied)"),
                ours(name::WAITING, "Sum", "waiting (a copy of a record in progress)"),
                ours(name::DRIFT, "Sum", "drifted from the documented payloads"),
            ],
            0,
            12,
            12,
        ),
        // Our metrics carry only the stack; SQS counts each group's deleted messages for free.
        widget(
            "Records done per group (messages deleted)",
            per_queue("NumberOfMessagesDeleted", "Sum", &groups, false),
            12,
            12,
            12,
        ),
        widget(
            "Dead-letter queues",
            per_queue("ApproximateNumberOfMessagesVisible", "Maximum", &Route::ALL, true),
            0,
            18,
            24,
        ),
        widget("Destinations: records delivered and failed", destination_metrics(), 0, 24, 24),
    ];
    let body = serde_json::to_string(&map! { "widgets" => widgets }).expect("YAML values without tags are JSON");
    map! {
        "Type" => "AWS::CloudWatch::Dashboard",
        "Properties" => map! { "DashboardName" => sub(STACK_NAME), "DashboardBody" => sub(body) },
    }
}
