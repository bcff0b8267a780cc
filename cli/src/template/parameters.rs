//! The template's parameters: what a studio chooses at deployment, with its bounds.

use super::*;

pub(super) fn parameters() -> Value {
    let groups: Vec<String> = EventGroup::ALL.iter().map(|g| g.title().to_ascii_lowercase()).collect();
    map! {
        "WebhookSecretArn" => map! {
            "Type" => "String",
            "Default" => "",
            "Description" => "ARN of an existing Secrets Manager secret holding the webhook secret (a string, or a JSON \
                list while rotating). Empty: the stack creates one with a random value.",
        },
        "SecretRefreshSeconds" => map! {
            "Type" => "Number",
            "Default" => config::DEFAULT_SECRET_REFRESH.as_secs(),
            "MinValue" => 10,
            "Description" => "How often ingest reads the secret again (a rotation is picked up within this time).",
        },
        "SecretOverlapSeconds" => map! {
            "Type" => "Number",
            "Default" => config::DEFAULT_SECRET_OVERLAP.as_secs(),
            "MinValue" => 0,
            "Description" => "How long a secret removed from Secrets Manager is still accepted.",
        },
        "RequiredHeaderName" => map! {
            "Type" => "String",
            "Default" => "",
            "Description" => "Optional custom header every delivery must carry (Creative Force: Custom Headers tab).",
        },
        "RequiredHeaderValue" => map! {
            "Type" => "String",
            "Default" => "",
            "NoEcho" => true,
            "Description" => "Its value, kept in Secrets Manager (output RequiredHeaderSecretArn), never in the \
                function's environment. Empty: the stack generates one.",
        },
        "FilterWorkspaces" => map! {
            "Type" => "String",
            "Default" => "",
            "Description" => "Comma-separated workspace (ClientId) GUIDs to keep; empty keeps all.",
        },
        "FilterEventGroups" => map! {
            "Type" => "String",
            "Default" => "",
            "Description" => format!("Comma-separated event groups to keep ({}); empty keeps all.", groups.join(", ")),
        },
        "FilterSteps" => map! {
            "Type" => "String",
            "Default" => "",
            "Description" => "Comma-separated production steps (StepName) of task events to keep; empty keeps all.",
        },
        "MaxEventAgeSeconds" => map! {
            "Type" => "Number",
            "Default" => config::DEFAULT_MAX_EVENT_AGE.as_secs(),
            "MinValue" => 0,
            "MaxValue" => MAX_WINDOW_SECS,
            "Description" => "Replay window: older authentic events are quarantined, never applied (an hour is twice \
                the span of Creative Force's retries). At most a day, so that IdempotencyTtlSeconds always outlasts \
                it plus MaxClockSkewSeconds.",
        },
        "MaxClockSkewSeconds" => map! {
            "Type" => "Number",
            "Default" => config::DEFAULT_MAX_CLOCK_SKEW.as_secs(),
            "MinValue" => 0,
            "MaxValue" => MAX_SKEW_SECS,
            "Description" => "How far ahead of the functions' clocks an event may be stamped before ingest \
                quarantines it.",
        },
        "IdempotencyTtlSeconds" => map! {
            "Type" => "Number",
            "Default" => config::DEFAULT_IDEMPOTENCY_TTL.as_secs(),
            // CloudFormation has no arithmetic: bounds make every allowed memory outlast every
            // allowed window plus skew.
            "MinValue" => MAX_WINDOW_SECS + MAX_SKEW_SECS + 1,
            "Description" => "How long a processed PayloadId is remembered: longer than the largest \
                MaxEventAgeSeconds plus MaxClockSkewSeconds allowed, so a replayed delivery is always either \
                quarantined or recognised.",
        },
        "IngestReservedConcurrency" => map! {
            "Type" => "Number",
            "Default" => -1,
            "MinValue" => -1,
            "Description" => "Reserved concurrency of ingest (-1: none, it shares the account's pool).",
        },
        "MaxReceiveCount" => map! {
            "Type" => "Number",
            "Default" => stack::DEFAULT_MAX_RECEIVES,
            "MinValue" => 2,
            "MaxValue" => 1000,
            "Description" => "Deliveries of a failing record before it moves to its dead-letter queue: at least 2, \
                so that a copy delivered while the first is in progress can wait for it.",
        },
        "ConsumerTimeout" => map! {
            "Type" => "String",
            "Default" => DEFAULT_CONSUMER_TIMEOUT.to_string(),
            "AllowedValues" => CONSUMER_TIMEOUTS.iter().map(u32::to_string).collect::<Vec<_>>(),
            "Description" => "Consumer timeout in seconds; queue visibility timeouts are six times this.",
        },
        "ConsumerMemory" => map! {
            "Type" => "Number",
            "Default" => 256,
            "MinValue" => 128,
            "MaxValue" => 10240,
            "Description" => "Consumer memory (MB).",
        },
        "ConsumerBatchSize" => map! {
            "Type" => "Number",
            "Default" => 10,
            "MinValue" => 1,
            "MaxValue" => 10000,
            "Description" => "Records per consumer invocation (FIFO: at most 10; above 10, ConsumerBatchingWindowSeconds \
                must be at least 1).",
        },
        "ConsumerRecordsInFlight" => map! {
            "Type" => "Number",
            "Default" => cf_webhooks::config::DEFAULT_RECORDS_IN_FLIGHT,
            "MinValue" => 1,
            "MaxValue" => cf_webhooks::config::MAX_RECORDS_IN_FLIGHT,
            "Description" => "Records one consumer works on at once: handlers, claims, forwards and EventBridge calls \
                of a batch never exceed it (a batch of 10,000 runs this many at a time).",
        },
        "ConsumerBatchingWindowSeconds" => map! {
            "Type" => "Number",
            "Default" => 0,
            "MinValue" => 0,
            "MaxValue" => 300,
            "Description" => "How long to gather a batch before invoking a consumer.",
        },
        "ConsumerMaxConcurrency" => map! {
            "Type" => "Number",
            "Default" => 5,
            "MinValue" => 2,
            "MaxValue" => 1000,
            "Description" => "Most concurrent invocations per consumer (protects the systems handlers call).",
        },
        "RejectionsAlarmPerMinute" => map! {
            "Type" => "Number",
            "Default" => 60,
            "MinValue" => 1,
            "Description" => "Alarm when ingest refuses more deliveries than this a minute, five minutes in a row \
                (a flood of forged or junk requests).",
        },
        "OldestMessageAlarmSeconds" => map! {
            "Type" => "Number",
            "Default" => 900,
            "MinValue" => 60,
            "Description" => "Alarm when a queue's oldest message is older than this.",
        },
        "QueueType" => map! {
            "Type" => "String",
            "Default" => stack::QueueType::default().as_str(),
            "AllowedValues" => stack::QueueType::ALL.map(stack::QueueType::as_str).to_vec(),
            "Description" => "fifo: the entity is the message group, so one entity's events are applied one after \
                another in the order received; standard: any order and concurrency, the Ordering guard alone keeps \
                a late event from overwriting a newer one. Changing it replaces the queues: see docs/guarantees.md, Moving to FIFO queues, first.",
        },
        "Ordering" => map! {
            "Type" => "String",
            "Default" => "latest",
            "AllowedValues" => seq!["latest", "all"],
            "Description" => "latest: an event older than the one applied last to the same facet of the same \
                entity is skipped as stale (a late retry never overwrites newer state); all: every event is applied.",
        },
        "PayloadDrift" => map! {
            "Type" => "String",
            "Default" => "report",
            "AllowedValues" => seq!["report", "off"],
            "Description" => "report: each consumer checks every event against the payloads Creative Force documents, \
                logs each kind of drift (an undocumented field or action, a missing or retyped field: names and JSON \
                types, never values) once per 10 minutes, and counts drifted records in the Drift metric; off: no check.",
        },
        "Tracing" => map! {
            "Type" => "String",
            "Default" => "Active",
            "AllowedValues" => seq!["Active", "PassThrough"],
            "Description" => "Active: every function traces its invocations with X-Ray, and each consumer record joins \
                the trace of the delivery that brought it; PassThrough: only traces begun upstream are followed.",
        },
        "DashboardEnabled" => map! {
            "Type" => "String",
            "Default" => "false",
            "AllowedValues" => seq!["true", "false"],
            "Description" => "true: a CloudWatch dashboard of the stack's metrics (output DashboardUrl), $3.00 a \
                month beyond CloudWatch's free three; the alarms and metrics are there either way.",
        },
        "ConsumersEnabled" => map! {
            "Type" => "String",
            "Default" => "true",
            "AllowedValues" => seq!["true", "false"],
            "Description" => "false: the consumer functions do not read their queues, so that `cfwh listen --stack \
                <this stack>` runs your handlers on your machine against them (a development stack).",
        },
        "EventBridgeGroups" => group_list("Groups whose events are put on the EventBridge bus"),
        "EventBusName" => map! {
            "Type" => "String",
            "Default" => "",
            "AllowedPattern" => "^[A-Za-z0-9._/-]{0,256}$",
            "Description" => "Name of an existing EventBridge bus (not its ARN). Empty: the stack creates <stack>-events.",
        },
        "SchemaRegistryEnabled" => map! {
            "Type" => "String",
            "Default" => "true",
            "AllowedValues" => seq!["true", "false"],
            "Description" => "With EventBridge on: a schema registry holding the schema of each group's events as \
                put on the bus (JSON Schema draft 4), to download code bindings for Python, TypeScript, Java or Go. \
                Free for schemas you create; no function reads it.",
        },
        "EventSource" => map! {
            "Type" => "String",
            "Default" => destination::eventbridge::DEFAULT_SOURCE,
            "AllowedPattern" => "^(?!aws\\.)[A-Za-z0-9._-]{1,256}$",
            "Description" => "The Source of every EventBridge entry (rules match it).",
        },
        "ForwardGroups" => group_list("Groups whose events are POSTed to ForwardUrl"),
        "ForwardUrl" => map! {
            "Type" => "String",
            "Default" => "",
            "AllowedPattern" => "^$|^https?://[^/@\\s]+(/\\S*)?$",
            "ConstraintDescription" => "an http(s):// URL without credentials in it",
            "Description" => "The studio's HTTPS endpoint events are forwarded to (no credentials in it: put an \
                Authorization header in the forward secret). Plain http:// only to loopback, or with \
                ForwardAllowPlainHttp=true.",
        },
        "ForwardSecretArn" => map! {
            "Type" => "String",
            "Default" => "",
            "AllowedPattern" => "^$|^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$",
            "Description" => "ARN of an existing secret holding the forward secret (the key as text, or \
                {\"secret\": ..., \"headers\": {...}}). Empty: the stack creates one with a random key.",
        },
        "ForwardTimeoutMs" => map! {
            "Type" => "Number",
            "Default" => config::DEFAULT_FORWARD_TIMEOUT.as_millis() as u64,
            "MinValue" => 100,
            "MaxValue" => 300000,
            "Description" => "How long one forward may take before it is retried.",
        },
        "ForwardAllowPlainHttp" => map! {
            "Type" => "String",
            "Default" => "false",
            "AllowedValues" => seq!["false", "true"],
            "Description" => "true: ForwardUrl may be a plain http:// URL to another machine, so events and their \
                signatures cross the network unencrypted (the consumers refuse such a URL otherwise). Only for an \
                endpoint inside a network you trust; https:// needs nothing.",
        },
        "ArchiveGroups" => group_list("Groups whose events are archived in S3 (quarantined deliveries too, when on)"),
        "ArchiveBucketName" => map! {
            "Type" => "String",
            "Default" => "",
            "Description" => "An existing bucket to archive into. Empty: the stack creates an encrypted, private one.",
        },
        "ArchivePrefix" => map! {
            "Type" => "String",
            "Default" => config::DEFAULT_ARCHIVE_PREFIX,
            "AllowedPattern" => "^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$",
            "Description" => "Key prefix of archived events: <prefix>/<group>/<yyyy>/<mm>/<dd>/<time>-<PayloadId>.json.",
        },
        "ArchiveExpirationDays" => map! {
            "Type" => "Number",
            "Default" => 365,
            "MinValue" => 0,
            "Description" => "Days archived events are kept in the bucket the stack creates (0: forever). \
                Replays reach back this far.",
        },
        "AlarmEmail" => map! {
            "Type" => "String",
            "Default" => "",
            "Description" => "Optional e-mail address subscribed to an SNS topic that receives every alarm.",
        },
        "LogRetentionDays" => map! {
            "Type" => "Number",
            "Default" => 30,
            "AllowedValues" => LOG_RETENTION_DAYS.to_vec(),
            "Description" => "Days the functions' logs are kept.",
        },
    }
}

/// A parameter naming the groups a destination serves: `none`, `all`, or groups, each
/// spelled as `CF_*_GROUPS` reads it, so a typo fails the deployment, not the consumers.
pub(super) fn group_list(what: &str) -> Value {
    let groups: Vec<&str> = EventGroup::ALL.iter().map(|g| g.as_str()).collect();
    let one = format!("({})", groups.join("|"));
    map! {
        "Type" => "String",
        "Default" => "none",
        "AllowedPattern" => format!("^(none|all|{one}( *, *{one})*)$"),
        "ConstraintDescription" => format!("none, all, or a comma-separated list of {}", groups.join(", ")),
        "Description" => format!("{what}: none, all, or a comma-separated list of {}.", groups.join(", ")),
    }
}
