//! The ingest function: its Function URL, its role, its secrets and its alarms.

use super::*;

pub(super) fn webhook_secret() -> Value {
    r#if("CreateSecret", r#ref("WebhookSecret"), r#ref("WebhookSecretArn"))
}

pub(super) fn ingest_resources(resources: &mut Mapping) {
    let queue_arns: Vec<Value> = Route::ALL.iter().map(|&r| get_att(format!("{}.Arn", queue(r)))).collect();
    let mut environment = Mapping::new();
    for (variable, value) in [
        (var::WEBHOOK_SECRET_ARN, webhook_secret()),
        (var::SECRET_REFRESH_SECS, r#ref("SecretRefreshSeconds")),
        (var::SECRET_OVERLAP_SECS, r#ref("SecretOverlapSeconds")),
        (var::MAX_EVENT_AGE_SECS, r#ref("MaxEventAgeSeconds")),
        (var::MAX_CLOCK_SKEW_SECS, r#ref("MaxClockSkewSeconds")),
        (var::REQUIRED_HEADER_NAME, r#ref("RequiredHeaderName")),
        (var::REQUIRED_HEADER_VALUE_ARN, r#if("HasRequiredHeader", r#ref("RequiredHeaderSecret"), "".into())),
        (var::FILTER_WORKSPACES, r#ref("FilterWorkspaces")),
        (var::FILTER_EVENT_GROUPS, r#ref("FilterEventGroups")),
        (var::FILTER_STEPS, r#ref("FilterSteps")),
        (var::QUEUE_MAX_MESSAGE_BYTES, config::DEFAULT_QUEUE_MAX_MESSAGE_BYTES.into()),
    ] {
        environment.insert(variable.into(), value);
    }
    for route in Route::ALL {
        environment.insert(var::queue_url(route).into(), r#ref(queue(route)));
    }
    environment.insert(var::STACK.into(), r#ref("AWS::StackName"));

    log_group(resources, "Ingest", INGEST_FUNCTION);
    role(
        resources,
        "Ingest",
        vec![
            allow("EnqueueDeliveries", "sqs:SendMessage".into(), queue_arns.into()),
            allow("ReadTheWebhookSecret", "secretsmanager:GetSecretValue".into(), webhook_secret()),
            r#if(
                "HasRequiredHeader",
                allow("ReadTheRequiredHeader", "secretsmanager:GetSecretValue".into(), r#ref("RequiredHeaderSecret")),
                no_value(),
            ),
        ],
    );
    resources.insert(
        "IngestFunction".into(),
        map! {
            "Type" => "AWS::Serverless::Function",
            "Properties" => map! {
                "FunctionName" => sub(INGEST_FUNCTION),
                "Description" => "Verifies Creative Force deliveries and queues them by event group",
                "CodeUri" => format!("target/lambda/{}/", stack::INGEST_BOOTSTRAP),
                "MemorySize" => 256,
                "Timeout" => 10,
                "Role" => get_att("IngestRole.Arn"),
                "ReservedConcurrentExecutions" =>
                    r#if("HasIngestReservedConcurrency", r#ref("IngestReservedConcurrency"), no_value()),
                "LoggingConfig" => logging_config("Ingest"),
                "Environment" => map! { "Variables" => environment },
                // The sender cannot sign AWS requests: the HMAC signature is the gate.
                "FunctionUrlConfig" => map! { "AuthType" => "NONE", "InvokeMode" => "BUFFERED" },
            },
        },
    );
    // Function URLs with AuthType NONE also need lambda:InvokeFunction for callers coming
    // through the URL (AWS, October 2025).
    resources.insert(
        "IngestFunctionUrlInvokePermission".into(),
        map! {
            "Type" => "AWS::Lambda::Permission",
            "Properties" => map! {
                "Action" => "lambda:InvokeFunction",
                "FunctionName" => r#ref("IngestFunction"),
                "Principal" => "*",
                "InvokedViaFunctionUrl" => true,
            },
        },
    );
    let ingest_alarm = |logical: &str, description: &str, metric| Alarm {
        logical: logical.to_owned(),
        description: description.to_owned(),
        namespace: "AWS/Lambda",
        metric,
        dimensions: vec![("FunctionName", r#ref("IngestFunction"))],
        statistic: "Sum",
        threshold: 0.into(),
        periods: 1,
    };
    ingest_alarm(
        "IngestErrors",
        "The ingest function failed (crash, timeout): deliveries get no 2xx and Creative Force retries. \
         Read the ingest logs.",
        "Errors",
    )
    .insert_into(resources);
    ingest_alarm(
        "Ingest5xx",
        "Ingest answered 5xx (a queue or the secret store was unreachable): Creative Force retries 3 times \
         within about 30 minutes, then drops the event. Check SQS and the ingest logs now.",
        "Url5xxCount",
    )
    .insert_into(resources);
    ingest_alarm(
        "IngestThrottles",
        "Ingest was throttled: the account's (or IngestReservedConcurrency's) concurrency is used up, by a flood \
         or by the consumers; throttled deliveries get a 429 and Creative Force retries them. Find the source \
         (IngestRejections, the consumers' concurrency) and raise the quota or reserve concurrency for ingest.",
        "Throttles",
    )
    .insert_into(resources);
    Alarm {
        logical: "IngestRejections".to_owned(),
        description: "Ingest refused more deliveries than RejectionsAlarmPerMinute a minute for five minutes: a \
            flood of forged or junk requests (each costs an invocation), or a secret that no longer matches \
            Creative Force's. Break Rejected down by Reason in Logs Insights; see docs/operations.md, Floods."
            .to_owned(),
        namespace: metrics::NAMESPACE,
        metric: name::REJECTED,
        dimensions: vec![(metrics::DIMENSION, r#ref("AWS::StackName"))],
        statistic: "Sum",
        threshold: r#ref("RejectionsAlarmPerMinute"),
        periods: 5,
    }
    .insert_into(resources);
}
