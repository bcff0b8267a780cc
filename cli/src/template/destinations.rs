//! The destinations' resources: the EventBridge bus, the forward secret, the S3 archive
//! and the `unrouted` archiver.

use super::*;

/// The bus events go to: the stack's own, or the one named.
/// Each of these is used only where its destination is on: the stack's own resource
/// when the parameter is empty, the one named otherwise.
pub(super) fn event_bus_name() -> Value {
    r#if("HasEventBusName", r#ref("EventBusName"), r#ref("EventBus"))
}

pub(super) fn event_bus_arn() -> Value {
    r#if(
        "HasEventBusName",
        sub("arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${EventBusName}"),
        get_att("EventBus.Arn"),
    )
}

pub(super) fn forward_secret() -> Value {
    r#if("HasForwardSecretArn", r#ref("ForwardSecretArn"), r#ref("ForwardSecret"))
}

pub(super) fn archive_bucket() -> Value {
    r#if("HasArchiveBucketName", r#ref("ArchiveBucketName"), r#ref("ArchiveBucket"))
}

/// `s3:PutObject` under one route's folder of the archive, and nowhere else.
pub(super) fn archive_statement(route: Route) -> Value {
    allow(
        "ArchiveItsOwnFolder",
        "s3:PutObject".into(),
        sub(format!("arn:${{AWS::Partition}}:s3:::${{ArchiveBucketLocal}}/${{ArchivePrefix}}/{}/*", route.as_str()))
            .tagged_sub_with("ArchiveBucketLocal", archive_bucket()),
    )
}

/// [`archive_statement`] when the archive is on.
pub(super) fn archive_grant(route: Route) -> Value {
    r#if("ArchiveOn", archive_statement(route), no_value())
}

/// The schema registry of the events on the bus, one schema per group: the whole
/// EventBridge event as the destination puts it (`crate::schemas::eventbridge`), its
/// `source` the stack's `EventSource`.
fn schema_registry(resources: &mut Mapping) {
    resources.insert(
        "SchemaRegistry".into(),
        map! {
            "Type" => "AWS::EventSchemas::Registry",
            "Condition" => "SchemaRegistryOn",
            "Properties" => map! {
                "RegistryName" => sub(format!("{STACK_NAME}-events")),
                "Description" => "Creative Force events as cf-webhooks puts them on the bus, one schema per group.",
            },
        },
    );
    for group in EventGroup::ALL {
        // `${EventSource}` is the one substitution: nothing else in a schema reads `${`.
        let content = serde_json::to_string(&crate::schemas::eventbridge(group, "${EventSource}"))
            .expect("a schema of plain values always serializes");
        resources.insert(
            format!("{}Schema", schema_stem(group)).into(),
            map! {
                "Type" => "AWS::EventSchemas::Schema",
                "Condition" => "SchemaRegistryOn",
                "Properties" => map! {
                    "RegistryName" => get_att("SchemaRegistry.RegistryName"),
                    "SchemaName" => format!("cf-webhooks@{}Event", schema_stem(group)),
                    "Type" => "JSONSchemaDraft4",
                    "Description" => format!("A {} event: detail-type `{} <action>`, detail the body Creative \
                        Force sent.", group.title().to_lowercase(), group.title()),
                    "Content" => sub(content),
                },
            },
        );
    }
}

/// `WorkUnit` for the work unit group: a name's part.
pub(super) fn schema_stem(group: EventGroup) -> String {
    group
        .title()
        .split(' ')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect()
}

/// Resources of the destinations: the bus and its example rule, the forward secret, the
/// archive bucket, the `unrouted` archiver, an alarm per destination.
pub(super) fn destination_resources(resources: &mut Mapping) {
    resources.insert(
        "EventBus".into(),
        map! {
            "Type" => "AWS::Events::EventBus",
            "Condition" => "CreateEventBus",
            "Properties" => map! { "Name" => sub(format!("{STACK_NAME}-events")) },
        },
    );
    resources.insert(
        "ExampleRule".into(),
        map! {
            "Type" => "AWS::Events::Rule",
            "Condition" => "EventBridgeOn",
            "Properties" => map! {
                "Name" => sub(format!("{STACK_NAME}-example-completed-tasks")),
                "Description" => "An example to copy: completed tasks. Disabled, and without a target: add yours.",
                "EventBusName" => event_bus_name(),
                "State" => "DISABLED",
                "EventPattern" => map! {
                    "source" => seq![r#ref("EventSource")],
                    "detail-type" => seq![cf_webhooks::events::detail_type(EventGroup::Task, "Completed")],
                },
            },
        },
    );
    schema_registry(resources);
    resources.insert(
        "ForwardSecret".into(),
        map! {
            "Type" => "AWS::SecretsManager::Secret",
            "Condition" => "CreateForwardSecret",
            "Properties" => map! {
                "Name" => sub(format!("{STACK_NAME}-forward-secret")),
                "Description" => "Signs the forwarded events (X-CF-Signature). Replace the value with \
                    {\"secret\": \"...\", \"headers\": {\"Authorization\": \"...\"}} to send headers too.",
                "GenerateSecretString" => map! { "PasswordLength" => 48, "ExcludePunctuation" => true },
            },
        },
    );
    resources.insert(
        "ArchiveBucket".into(),
        map! {
            "Type" => "AWS::S3::Bucket",
            "Condition" => "CreateArchiveBucket",
            // The archive is what a replay reaches back to: it outlives the stack.
            "DeletionPolicy" => "Retain",
            "UpdateReplacePolicy" => "Retain",
            "Properties" => map! {
                "BucketEncryption" => map! {
                    "ServerSideEncryptionConfiguration" =>
                        seq![map! { "ServerSideEncryptionByDefault" => map! { "SSEAlgorithm" => "AES256" } }],
                },
                "PublicAccessBlockConfiguration" => map! {
                    "BlockPublicAcls" => true,
                    "BlockPublicPolicy" => true,
                    "IgnorePublicAcls" => true,
                    "RestrictPublicBuckets" => true,
                },
                "OwnershipControls" => map! { "Rules" => seq![map! { "ObjectOwnership" => "BucketOwnerEnforced" }] },
                "LifecycleConfiguration" => map! {
                    "Rules" => seq![map! {
                        "Id" => "expire-archived-events",
                        "Status" => r#if("HasArchiveExpiration", "Enabled".into(), "Disabled".into()),
                        "ExpirationInDays" => r#if("HasArchiveExpiration", r#ref("ArchiveExpirationDays"), 1.into()),
                        "AbortIncompleteMultipartUpload" => map! { "DaysAfterInitiation" => 1 },
                    }],
                },
            },
        },
    );
    resources.insert(
        "ArchiveBucketPolicy".into(),
        map! {
            "Type" => "AWS::S3::BucketPolicy",
            "Condition" => "CreateArchiveBucket",
            "Properties" => map! {
                "Bucket" => r#ref("ArchiveBucket"),
                "PolicyDocument" => map! {
                    "Version" => "2012-10-17",
                    "Statement" => seq![map! {
                        "Sid" => "TlsOnly",
                        "Effect" => "Deny",
                        "Principal" => "*",
                        "Action" => "s3:*",
                        "Resource" => seq![
                            get_att("ArchiveBucket.Arn"),
                            sub("${ArchiveBucket.Arn}/*")
                        ],
                        "Condition" => map! { "Bool" => map! { "aws:SecureTransport" => "false" } },
                    }],
                },
            },
        },
    );
    unrouted_archiver(resources);
    // The archiver empties `unrouted` at once, so its age alarm cannot tell that
    // deliveries were quarantined: ingest's own count does.
    Alarm {
        logical: "Quarantined".to_owned(),
        description: "Authentic deliveries could not be routed and were quarantined (archived under \
                      <prefix>/unrouted/, with their reason): a new event group or a changed envelope."
            .to_owned(),
        namespace: metrics::NAMESPACE,
        metric: name::QUARANTINED,
        dimensions: vec![(metrics::DIMENSION, r#ref("AWS::StackName"))],
        statistic: "Sum",
        threshold: 0.into(),
        periods: 1,
    }
    .insert_if(Some("ArchiveOn"), resources);
    for (destination, condition, what) in [
        ("eventbridge", "EventBridgeOn", "EventBridge refused or could not take events"),
        ("http", "ForwardOn", "The forward URL failed (timeouts, 5xx, refusals)"),
        ("archive", "ArchiveOn", "S3 refused archive writes"),
    ] {
        Alarm {
            logical: format!("{}Failures", camel(&format!("{destination}-destination"))),
            description: format!(
                "{what}: the records are retried, and dead-lettered after MaxReceiveCount attempts. Read the \
                 consumer logs (reason) and the {destination} destination's own health."
            ),
            namespace: metrics::NAMESPACE,
            metric: name::FAILED,
            dimensions: vec![
                (metrics::DIMENSION, r#ref("AWS::StackName")),
                (metrics::DESTINATION_DIMENSION, destination.into()),
            ],
            statistic: "Sum",
            threshold: 0.into(),
            periods: 1,
        }
        .insert_if(Some(condition), resources);
    }
}

/// The consumer of the `unrouted` queue, when the archive is on: it only archives.
pub(super) fn unrouted_archiver(resources: &mut Mapping) {
    let logical = "ArchiveUnrouted";
    let route = Route::Unrouted;
    queue_consumer(
        resources,
        QueueConsumer {
            logical,
            function_name: format!("{STACK_NAME}-archive-unrouted"),
            description: "Archives quarantined deliveries, so they outlive the queue's retention".to_owned(),
            route,
            statements: vec![archive_statement(route)],
            variables: map! {
                var::EVENT_GROUP => route.as_str(),
                var::DLQ_URL => r#ref(dlq(route)),
                var::DESTINATIONS => "archive",
                var::ARCHIVE_BUCKET => archive_bucket(),
                var::ARCHIVE_PREFIX => r#ref("ArchivePrefix"),
                var::STACK => r#ref("AWS::StackName"),
            },
            source: map! { "ScalingConfig" => map! { "MaximumConcurrency" => 2 } },
        },
    );
    for suffix in ["LogGroup", "Role", "Function"] {
        if let Some(Value::Mapping(resource)) = resources.get_mut(format!("{logical}{suffix}")) {
            resource.insert("Condition".into(), "ArchiveOn".into());
        }
    }
}
