//! Who may send, read and operate: the queues' and secrets' resource policies and the
//! operator role.

use super::*;

/// The one role, besides the functions, that queue policies and the secrets' resource
/// policies let through: operators assume it for `cfwh redrive`, `cfwh replay`, `cfwh
/// listen` and to read or rotate the secrets (docs/deploying.md, "The operator role").
pub(super) const OPERATOR_ROLE: &str = "OperatorRole";

pub(super) fn role_arn(logical: &str) -> Value {
    get_att(format!("{logical}Role.Arn"))
}

pub(super) fn operator_arn() -> Value {
    get_att(format!("{OPERATOR_ROLE}.Arn"))
}

/// A resource-policy statement denying `actions` on `resource` to every principal but
/// `allowed` (role ARNs). Requests without a principal (none reach these resources) are
/// left to the other policies.
pub(super) fn deny_all_but(sid: &str, actions: Value, resource: Value, allowed: Vec<Value>) -> Value {
    map! {
        "Sid" => sid,
        "Effect" => "Deny",
        "Principal" => "*",
        "Action" => actions,
        "Resource" => resource,
        "Condition" => map! {
            "ArnNotEquals" => map! { "aws:PrincipalArn" => Value::Sequence(allowed) },
            "Null" => map! { "aws:PrincipalArn" => "false" },
        },
    }
}

/// A queue's policy: only `senders` may send to it.
pub(super) fn queue_policy(resources: &mut Mapping, queue: &str, senders: Vec<Value>) {
    resources.insert(
        format!("{queue}Policy").into(),
        map! {
            "Type" => "AWS::SQS::QueuePolicy",
            "Properties" => map! {
                "Queues" => seq![r#ref(queue)],
                "PolicyDocument" => map! {
                    "Version" => "2012-10-17",
                    "Statement" => seq![deny_all_but(
                        "SendOnlyFromThePipeline",
                        "sqs:SendMessage".into(),
                        get_att(format!("{queue}.Arn")),
                        senders,
                    )],
                },
            },
        },
    );
}

/// A secret's resource policy: only `readers` may read its value, and only the operator
/// role may change it (CloudFormation, when it updates the stack, too): a principal with a
/// broad grant elsewhere could otherwise store a value of its own and sign forged
/// deliveries with it.
pub(super) fn secret_policy(resources: &mut Mapping, secret: &str, condition: &str, readers: Vec<Value>) {
    let mut overwrite = deny_all_but(
        "ChangedOnlyByTheOperatorRole",
        seq!["secretsmanager:PutSecretValue", "secretsmanager:UpdateSecret", "secretsmanager:UpdateSecretVersionStage"],
        "*".into(),
        vec![operator_arn()],
    );
    if let Some(conditions) = overwrite.get_mut("Condition").and_then(Value::as_mapping_mut) {
        conditions.insert(
            "ForAllValues:StringNotEquals".into(),
            map! { "aws:CalledVia" => seq!["cloudformation.amazonaws.com"] },
        );
    }
    resources.insert(
        format!("{secret}Policy").into(),
        map! {
            "Type" => "AWS::SecretsManager::ResourcePolicy",
            "Condition" => condition,
            "Properties" => map! {
                "SecretId" => r#ref(secret),
                "BlockPublicPolicy" => true,
                "ResourcePolicy" => map! {
                    "Version" => "2012-10-17",
                    "Statement" => seq![
                        deny_all_but(
                            "ReadOnlyByThePipeline",
                            "secretsmanager:GetSecretValue".into(),
                            "*".into(),
                            readers,
                        ),
                        overwrite,
                    ],
                },
            },
        },
    );
}

/// The queue policies (ingest sends to the queues, each consumer to its dead-letter
/// queue, the operator role to both), the secrets' resource policies, and the operator
/// role with its policy.
pub(super) fn access_resources(resources: &mut Mapping) {
    for route in Route::ALL {
        queue_policy(resources, &queue(route), vec![role_arn("Ingest"), operator_arn()]);
        let consumer = match route {
            Route::Group(group) => role_arn(&consumer(group)),
            // The archiver exists only when the archive is on.
            Route::Unrouted => r#if("ArchiveOn", role_arn("ArchiveUnrouted"), no_value()),
        };
        queue_policy(resources, &dlq(route), vec![consumer, operator_arn()]);
    }
    secret_policy(resources, "WebhookSecret", "CreateSecret", vec![role_arn("Ingest"), operator_arn()]);
    secret_policy(resources, "RequiredHeaderSecret", "HasRequiredHeader", vec![role_arn("Ingest"), operator_arn()]);
    let consumers = EventGroup::ALL.iter().map(|&g| role_arn(&consumer(g)));
    secret_policy(resources, "ForwardSecret", "CreateForwardSecret", consumers.chain([operator_arn()]).collect());

    let queues: Vec<Value> = Route::ALL
        .iter()
        .flat_map(|&r| [get_att(format!("{}.Arn", queue(r))), get_att(format!("{}.Arn", dlq(r)))])
        .collect();
    let mut table = allow(
        "ListenWithTheIdempotencyTable",
        seq!["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
        get_att("IdempotencyTable.Arn"),
    );
    let every_group: Vec<Value> = EventGroup::ALL
        .iter()
        .flat_map(|&g| cf_webhooks::consumer::key_prefixes(g))
        .map(|p| Value::from(format!("{p}*")))
        .collect();
    table.as_mapping_mut().expect("a statement").insert(
        "Condition".into(),
        map! { "ForAllValues:StringLike" => map! { "dynamodb:LeadingKeys" => every_group } },
    );
    let archive_objects = sub("arn:${AWS::Partition}:s3:::${ArchiveBucketLocal}/${ArchivePrefix}/*")
        .tagged_sub_with("ArchiveBucketLocal", archive_bucket());
    let statements = vec![
        allow(
            "RedriveReplayAndListenOnTheQueues",
            seq![
                "sqs:GetQueueUrl",
                "sqs:GetQueueAttributes",
                "sqs:ReceiveMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:DeleteMessage",
                "sqs:SendMessage",
                "sqs:StartMessageMoveTask",
                "sqs:ListMessageMoveTasks",
                "sqs:CancelMessageMoveTask",
            ],
            Value::Sequence(queues),
        ),
        table,
        allow("FindTheStacksOutputs", "cloudformation:DescribeStacks".into(), r#ref("AWS::StackId")),
        allow(
            "ReadAndRotateTheWebhookSecret",
            seq!["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"],
            webhook_secret(),
        ),
        r#if(
            "HasRequiredHeader",
            allow(
                "ReadAndRotateTheRequiredHeader",
                seq!["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"],
                r#ref("RequiredHeaderSecret"),
            ),
            no_value(),
        ),
        r#if(
            "ForwardOn",
            allow(
                "ReadAndRotateTheForwardSecret",
                seq!["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"],
                forward_secret(),
            ),
            no_value(),
        ),
        r#if(
            "EventBridgeOn",
            allow("ListenPutsEventsOnTheBus", "events:PutEvents".into(), event_bus_arn()),
            no_value(),
        ),
        r#if(
            "ArchiveOn",
            allow(
                "ListTheArchive",
                "s3:ListBucket".into(),
                sub("arn:${AWS::Partition}:s3:::${ArchiveBucketLocal}")
                    .tagged_sub_with("ArchiveBucketLocal", archive_bucket()),
            ),
            no_value(),
        ),
        r#if(
            "ArchiveOn",
            allow("ReplayAndListenOnTheArchive", seq!["s3:GetObject", "s3:PutObject"], archive_objects),
            no_value(),
        ),
    ];
    resources.insert(
        "OperatorPolicy".into(),
        map! {
            "Type" => "AWS::IAM::ManagedPolicy",
            "Properties" => map! {
                "Description" => sub(format!("cf-webhooks {STACK_NAME}: redrive, replay, cfwh listen, the secrets")),
                "PolicyDocument" => map! { "Version" => "2012-10-17", "Statement" => Value::Sequence(statements) },
            },
        },
    );
    resources.insert(
        OPERATOR_ROLE.into(),
        map! {
            "Type" => "AWS::IAM::Role",
            "Properties" => map! {
                "Description" => sub(format!(
                    "cf-webhooks {STACK_NAME}: the one role the queue and secret policies let in besides the functions"
                )),
                // Whoever the account's own IAM policies allow to assume it.
                "AssumeRolePolicyDocument" => map! {
                    "Version" => "2012-10-17",
                    "Statement" => seq![map! {
                        "Effect" => "Allow",
                        "Principal" => map! { "AWS" => sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root") },
                        "Action" => "sts:AssumeRole",
                    }],
                },
                "ManagedPolicyArns" => seq![r#ref("OperatorPolicy")],
                "MaxSessionDuration" => 12 * 3600,
            },
        },
    );
}
