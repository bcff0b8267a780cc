//! Each route's queue and dead-letter queue with their alarms, and each group's consumer
//! with its role, its settings and the outputs `cfwh listen` reads.

use super::*;

/// A function of the `consume` bootstrap on one route's queue.
pub(super) struct QueueConsumer<'a> {
    pub(super) logical: &'a str,
    pub(super) function_name: String,
    pub(super) description: String,
    pub(super) route: Route,
    /// Granted after consuming its own queue.
    pub(super) statements: Vec<Value>,
    /// Its environment.
    pub(super) variables: Value,
    /// Properties of its SQS event source beside the queue, the batch size and the
    /// partial batch answer.
    pub(super) source: Value,
}

/// Its log group, its role (consume its queue, then `statements`) and the function.
pub(super) fn queue_consumer(resources: &mut Mapping, c: QueueConsumer<'_>) {
    let queue_arn = get_att(format!("{}.Arn", queue(c.route)));
    log_group(resources, c.logical, &c.function_name);
    let consume = allow(
        "ConsumeItsQueue",
        seq!["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"],
        queue_arn.clone(),
    );
    role(resources, c.logical, [vec![consume], c.statements].concat());
    let mut source = map! {
        "Queue" => queue_arn,
        "BatchSize" => r#ref("ConsumerBatchSize"),
        "FunctionResponseTypes" => seq!["ReportBatchItemFailures"],
    };
    if let (Value::Mapping(source), Value::Mapping(extra)) = (&mut source, c.source) {
        source.extend(extra);
    }
    resources.insert(
        format!("{}Function", c.logical).into(),
        map! {
            "Type" => "AWS::Serverless::Function",
            "Properties" => map! {
                "FunctionName" => sub(c.function_name),
                "Description" => c.description,
                "CodeUri" => format!("target/lambda/{}/", stack::CONSUMER_BOOTSTRAP),
                "MemorySize" => r#ref("ConsumerMemory"),
                "Timeout" => r#ref("ConsumerTimeout"),
                "Role" => get_att(format!("{}Role.Arn", c.logical)),
                "LoggingConfig" => logging_config(c.logical),
                "Environment" => map! { "Variables" => c.variables },
                "Events" => map! { "Queue" => map! { "Type" => "SQS", "Properties" => source } },
            },
        },
    );
}

pub(super) fn route_resources(resources: &mut Mapping, route: Route) {
    // Both queues of a route: encrypted, SQS's largest messages, their own retention;
    // FIFO with high throughput (deduplication and limits per message group, the entity)
    // when QueueType says so. A change of QueueType replaces them: the old ones are kept,
    // with what they hold, for `cfwh redrive --from` (docs/guarantees.md, "Moving to FIFO queues").
    let sqs_queue = |dead_letter: bool, retention: u32, extra: Mapping| {
        let mut properties = map! {
            "QueueName" => queue_name(route, dead_letter),
            "FifoQueue" => if_fifo(true),
            "DeduplicationScope" => if_fifo("messageGroup"),
            "FifoThroughputLimit" => if_fifo("perMessageGroupId"),
            "MessageRetentionPeriod" => retention,
            "MaximumMessageSize" => config::DEFAULT_QUEUE_MAX_MESSAGE_BYTES,
            "SqsManagedSseEnabled" => true,
        };
        properties.as_mapping_mut().expect("a mapping").extend(extra);
        map! {
            "Type" => "AWS::SQS::Queue",
            "UpdateReplacePolicy" => "Retain",
            "DeletionPolicy" => "Delete",
            "Properties" => properties,
        }
    };
    resources.insert(dlq(route).into(), sqs_queue(true, stack::DEAD_LETTER_RETENTION_SECS, Mapping::new()));
    let redrive = map! {
        "VisibilityTimeout" => timeout_derived("Visibility"),
        "RedrivePolicy" => map! {
            "deadLetterTargetArn" => get_att(format!("{}.Arn", dlq(route))),
            "maxReceiveCount" => r#ref("MaxReceiveCount"),
        },
    };
    let redrive = redrive.as_mapping().expect("a mapping").clone();
    resources.insert(queue(route).into(), sqs_queue(false, stack::QUEUE_RETENTION_SECS, redrive));
    let name = route.as_str();
    Alarm {
        logical: format!("{}DeadLetters", camel(name)),
        description: format!(
            "The {name} dead-letter queue holds messages: events that failed permanently or too often. \
             Read the reason ({} attribute, consumer logs), fix, then `make redrive GROUP={name}`.",
            attr::REASON
        ),
        namespace: "AWS/SQS",
        metric: "ApproximateNumberOfMessagesVisible",
        dimensions: vec![("QueueName", get_att(format!("{}.QueueName", dlq(route))))],
        statistic: "Maximum",
        threshold: 0.into(),
        periods: 1,
    }
    .insert_into(resources);
    Alarm {
        logical: format!("{}QueueAge", camel(name)),
        description: format!(
            "The oldest message of the {name} queue is older than OldestMessageAlarmSeconds: its consumer is \
             failing, throttled or too slow. Check its errors, throttles and MaximumConcurrency."
        ),
        namespace: "AWS/SQS",
        metric: "ApproximateAgeOfOldestMessage",
        dimensions: vec![("QueueName", get_att(format!("{}.QueueName", queue(route))))],
        statistic: "Maximum",
        threshold: r#ref("OldestMessageAlarmSeconds"),
        periods: 2,
    }
    .insert_into(resources);
}

/// The consumers' environment but for what names the group (`CF_EVENT_GROUP`, its queue
/// and dead-letter queue): the same for every group, and output by the stack
/// ([`stack::output::CONSUMER_ENVIRONMENT`]) so that `cfwh listen` configures its
/// consumers from exactly what the deployed ones read.
pub(super) fn consumer_settings() -> Vec<(&'static str, Value)> {
    vec![
        (var::IDEMPOTENCY_TABLE, r#ref("IdempotencyTable")),
        (var::IDEMPOTENCY_TTL_SECS, r#ref("IdempotencyTtlSeconds")),
        (var::IDEMPOTENCY_LEASE_SECS, timeout_derived("Lease")),
        (var::CONSUMER_TIMEOUT_SECS, r#ref("ConsumerTimeout")),
        (var::MAX_RECEIVE_COUNT, r#ref("MaxReceiveCount")),
        (var::RECORDS_IN_FLIGHT, r#ref("ConsumerRecordsInFlight")),
        (var::MAX_EVENT_AGE_SECS, r#ref("MaxEventAgeSeconds")),
        (var::MAX_CLOCK_SKEW_SECS, r#ref("MaxClockSkewSeconds")),
        (var::STACK, r#ref("AWS::StackName")),
        (var::ORDERING, r#ref("Ordering")),
        (var::DRIFT, r#ref("PayloadDrift")),
        // Empty entries are skipped: "eventbridge,,archive".
        (
            var::DESTINATIONS,
            join(
                ",",
                vec![
                    r#if("EventBridgeOn", "eventbridge".into(), "".into()),
                    r#if("ForwardOn", "http".into(), "".into()),
                    r#if("ArchiveOn", "archive".into(), "".into()),
                ],
            ),
        ),
        (var::EVENTBRIDGE_GROUPS, r#ref("EventBridgeGroups")),
        (var::EVENT_BUS, r#if("EventBridgeOn", event_bus_name(), "".into())),
        (var::EVENT_SOURCE, r#ref("EventSource")),
        (var::FORWARD_GROUPS, r#ref("ForwardGroups")),
        (var::FORWARD_URL, r#ref("ForwardUrl")),
        (var::FORWARD_SECRET_ARN, r#if("ForwardOn", forward_secret(), "".into())),
        (var::FORWARD_TIMEOUT_MS, r#ref("ForwardTimeoutMs")),
        (var::FORWARD_ALLOW_HTTP, r#ref("ForwardAllowPlainHttp")),
        (var::ARCHIVE_GROUPS, r#ref("ArchiveGroups")),
        (var::ARCHIVE_BUCKET, r#if("ArchiveOn", archive_bucket(), "".into())),
        (var::ARCHIVE_PREFIX, r#ref("ArchivePrefix")),
    ]
}

/// The outputs `cfwh listen` reads: whether the consumers are on, each route's queue and
/// dead-letter queue, and the consumers' shared settings.
pub(super) fn listen_outputs(outputs: &mut Mapping) {
    outputs.insert(
        output::CONSUMERS_ENABLED.into(),
        map! {
            "Description" => "false: cfwh listen may run the handlers against this stack",
            "Value" => r#ref("ConsumersEnabled"),
        },
    );
    for route in Route::ALL {
        outputs.insert(output::queue_url(route).into(), map! { "Value" => r#ref(queue(route)) });
        outputs.insert(output::dead_letter_queue_url(route).into(), map! { "Value" => r#ref(dlq(route)) });
    }
    // One output, `NAME=value` lines: an output's value may not be empty, and most of
    // these are empty while their destination is off.
    let lines = consumer_settings()
        .into_iter()
        .map(|(variable, value)| sub(format!("{variable}=${{Setting}}")).tagged_sub_with("Setting", value))
        .collect();
    outputs.insert(
        output::CONSUMER_ENVIRONMENT.into(),
        map! {
            "Description" => "The consumers' shared settings (cfwh listen reads them)",
            "Value" => join("\n", lines),
        },
    );
}

pub(super) fn consumer_resources(resources: &mut Mapping, group: EventGroup) {
    let logical = consumer(group);
    let route = Route::Group(group);
    queue_consumer(
        resources,
        QueueConsumer {
            logical: &logical,
            function_name: format!("{STACK_NAME}-{}", stack::consumer_function(group)),
            description: format!("Applies {} events", group.as_str()),
            route,
            statements: vec![
                allow("DeadLetterPermanentFailures", "sqs:SendMessage".into(), get_att(format!("{}.Arn", dlq(route)))),
                {
                    // Its own group's items only: claims and versions both start with it.
                    let mut own = allow(
                        "IdempotencyOfItsOwnGroup",
                        seq!["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
                        get_att("IdempotencyTable.Arn"),
                    );
                    let prefixes: Vec<Value> = cf_webhooks::consumer::key_prefixes(group)
                        .into_iter()
                        .map(|p| Value::from(format!("{p}*")))
                        .collect();
                    own.as_mapping_mut().expect("a statement").insert(
                        "Condition".into(),
                        map! { "ForAllValues:StringLike" => map! { "dynamodb:LeadingKeys" => prefixes } },
                    );
                    own
                },
                r#if(
                    "EventBridgeOn",
                    allow("PutEventsOnTheBus", "events:PutEvents".into(), event_bus_arn()),
                    no_value(),
                ),
                r#if(
                    "ForwardOn",
                    allow("ReadTheForwardSecret", "secretsmanager:GetSecretValue".into(), forward_secret()),
                    no_value(),
                ),
                archive_grant(route),
            ],
            variables: {
                let mut variables = Mapping::new();
                variables.insert(var::EVENT_GROUP.into(), group.as_str().into());
                variables.insert(var::DLQ_URL.into(), r#ref(dlq(route)));
                variables.insert(var::QUEUE_URL.into(), r#ref(queue(route)));
                for (variable, value) in consumer_settings() {
                    variables.insert(variable.into(), value);
                }
                Value::Mapping(variables)
            },
            source: map! {
                // Off for a development stack: `cfwh listen` reads the queues instead.
                "Enabled" => r#if("ConsumersOn", true.into(), false.into()),
                // FIFO event sources take no batching window.
                "MaximumBatchingWindowInSeconds" => r#if("Fifo", no_value(), r#ref("ConsumerBatchingWindowSeconds")),
                "ScalingConfig" => map! { "MaximumConcurrency" => r#ref("ConsumerMaxConcurrency") },
            },
        },
    );
}
