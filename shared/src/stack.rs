//! The names of a deployed stack's parts: queues, functions, artifacts and outputs. The
//! template (`cfwh template`), `cfwh redrive`, `cfwh dev` over SQS and the test drivers
//! (`cfwh groups --json`) all take them from here.

use crate::events::{EventGroup, Route};

/// The bootstrap of the ingest function (`target/lambda/ingest/bootstrap`).
pub const INGEST_BOOTSTRAP: &str = "ingest";
/// The one bootstrap every consumer function deploys (`target/lambda/consume/bootstrap`);
/// `CF_EVENT_GROUP` tells it which group it serves.
pub const CONSUMER_BOOTSTRAP: &str = "consume";

/// The stack name (and queue prefix) when none is given: `make deploy`'s default,
/// `cfwh dev`'s queue prefix, the metrics' `Stack` outside Lambda.
pub const DEFAULT_STACK: &str = "cf-webhooks";

/// Deliveries of a failing record before its queue moves it to the dead-letter queue
/// (the redrive policy's `maxReceiveCount`), in the template and in `cfwh dev`.
pub const DEFAULT_MAX_RECEIVES: u32 = 5;

/// The idempotency table of a stack: `<stack>-idempotency`.
pub fn idempotency_table(stack: &str) -> String {
    format!("{stack}-idempotency")
}

/// How long a queue keeps a message: four days, so a Friday-evening outage of a
/// handler's downstream survives the weekend.
pub const QUEUE_RETENTION_SECS: u32 = 4 * 24 * 3600;
/// How long a dead-letter queue keeps a message: fourteen days, SQS's longest.
pub const DEAD_LETTER_RETENTION_SECS: u32 = 14 * 24 * 3600;

/// The kind of a stack's queues (the template's `QueueType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueType {
    /// FIFO queues, the entity as message group: one entity's events are never handled
    /// at once, and in the order received. The template's default.
    #[default]
    Fifo,
    /// Standard queues: any order, any concurrency; the staleness guard alone keeps a
    /// late event from overwriting a newer one.
    Standard,
}

impl QueueType {
    /// Both, the default first.
    pub const ALL: [QueueType; 2] = [QueueType::Fifo, QueueType::Standard];

    /// `fifo` or `standard`.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Fifo => "fifo",
            QueueType::Standard => "standard",
        }
    }

    /// The queue type named `text` (`fifo` or `standard`).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str().eq_ignore_ascii_case(text.trim()))
    }

    /// What ends the name of a queue of this type: SQS requires `.fifo` on FIFO queues.
    pub fn suffix(self) -> &'static str {
        match self {
            QueueType::Fifo => ".fifo",
            QueueType::Standard => "",
        }
    }

    /// The type of the queue at `url` (or named `name`).
    pub fn of(url: &str) -> Self {
        if url.ends_with(".fifo") {
            QueueType::Fifo
        } else {
            QueueType::Standard
        }
    }
}

/// The queue of `route` in a stack (or a `cfwh dev` prefix): `<prefix>-<route>`, and
/// `<prefix>-<route>-dlq` for its dead-letter queue, each ending in `.fifo` when FIFO.
pub fn queue_name(prefix: &str, route: Route, dead_letter: bool, queue_type: QueueType) -> String {
    format!("{prefix}-{}{}{}", route.as_str(), if dead_letter { "-dlq" } else { "" }, queue_type.suffix())
}

/// The function name suffix of a group's consumer: `consume-<group>` (the function is
/// `<stack>-consume-<group>`).
pub fn consumer_function(group: EventGroup) -> String {
    format!("{CONSUMER_BOOTSTRAP}-{}", group.as_str())
}

/// `work-unit` → `WorkUnit`: how the template and the outputs name a route's parts.
pub fn camel(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|first| first.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

/// The stack's outputs, by name.
pub mod output {
    /// The Payload URL to give Creative Force.
    pub const WEBHOOK_URL: &str = "WebhookUrl";
    /// The secret to paste into Creative Force.
    pub const WEBHOOK_SECRET_ARN: &str = "WebhookSecretArn";
    /// The custom header's value, when one is required.
    pub const REQUIRED_HEADER_SECRET_ARN: &str = "RequiredHeaderSecretArn";
    /// The prefix of every queue name.
    pub const QUEUE_PREFIX: &str = "QueuePrefix";
    /// The idempotency table.
    pub const IDEMPOTENCY_TABLE: &str = "IdempotencyTableName";
    /// The role operators assume (redrive, replay, listen, the secrets).
    pub const OPERATOR_ROLE_ARN: &str = "OperatorRoleArn";
    /// Its managed policy.
    pub const OPERATOR_POLICY_ARN: &str = "OperatorPolicyArn";
    /// The CloudWatch dashboard.
    pub const DASHBOARD_URL: &str = "DashboardUrl";
    /// The EventBridge bus, when on.
    pub const EVENT_BUS: &str = "DestinationEventBus";
    /// The EventBridge schema registry of the events the stack puts, when on.
    pub const SCHEMA_REGISTRY: &str = "DestinationSchemaRegistry";
    /// The forward secret, when the forward is on.
    pub const FORWARD_SECRET_ARN: &str = "DestinationForwardSecret";
    /// The archive's bucket, when on.
    pub const ARCHIVE_BUCKET: &str = "DestinationArchiveBucket";
    /// `true` or `false`: whether the stack's consumer functions read their queues
    /// (`cfwh listen` runs only against a stack whose consumers are off).
    pub const CONSUMERS_ENABLED: &str = "ConsumersEnabled";

    use crate::events::Route;

    /// The URL of a route's queue: `QueueTaskUrl`, `QueueWorkUnitUrl`, `QueueUnroutedUrl`.
    pub fn queue_url(route: Route) -> String {
        format!("Queue{}Url", camel(route.as_str()))
    }

    /// The URL of a route's dead-letter queue: `DeadLetterQueueTaskUrl`, …
    pub fn dead_letter_queue_url(route: Route) -> String {
        format!("DeadLetterQueue{}Url", camel(route.as_str()))
    }

    /// The settings every group's consumer shares, as `NAME=value` lines (`CF_ORDERING=latest`).
    pub const CONSUMER_ENVIRONMENT: &str = "ConsumerEnvironment";

    /// [`CONSUMER_ENVIRONMENT`]'s value, read back.
    pub fn parse_environment(text: &str) -> std::collections::BTreeMap<String, String> {
        text.lines()
            .filter_map(|line| line.split_once('='))
            .map(|(name, value)| (name.trim().to_owned(), value.to_owned()))
            .collect()
    }

    use super::camel;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(queue_name("cf", Route::Group(EventGroup::WorkUnit), false, QueueType::Standard), "cf-work-unit");
        assert_eq!(queue_name("cf", Route::Unrouted, true, QueueType::Standard), "cf-unrouted-dlq");
        assert_eq!(queue_name("cf", Route::Unrouted, true, QueueType::Fifo), "cf-unrouted-dlq.fifo");
        assert_eq!(QueueType::of("https://sqs/1/cf-task.fifo"), QueueType::Fifo);
        assert_eq!(QueueType::of("https://sqs/1/cf-task"), QueueType::Standard);
        assert_eq!(QueueType::parse(" FIFO"), Some(QueueType::Fifo));
        assert_eq!(QueueType::parse("fifo2"), None);
        assert_eq!(consumer_function(EventGroup::Job), "consume-job");
        assert_eq!(output::queue_url(Route::Group(EventGroup::WorkUnit)), "QueueWorkUnitUrl");
        assert_eq!(output::dead_letter_queue_url(Route::Unrouted), "DeadLetterQueueUnroutedUrl");
        let environment = output::parse_environment("CF_ORDERING=latest\nCF_FORWARD_URL=https://x/?a=b\nCF_EVENT_BUS=");
        assert_eq!(environment["CF_FORWARD_URL"], "https://x/?a=b");
        assert_eq!((environment["CF_ORDERING"].as_str(), environment["CF_EVENT_BUS"].as_str()), ("latest", ""));
    }
}
