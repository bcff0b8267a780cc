#!/usr/bin/env python3
"""Writes template.yaml, the AWS SAM template of cf-webhooks.

The template repeats one shape per event group (a queue, its dead-letter queue, a
consumer with its role, log group and alarms); generating it keeps the eight groups
identical. Edit this file, then `make template`; `make validate` fails when
template.yaml is not what this script writes.

Usage: scripts/template.py [--check] [OUTPUT]
"""

import json
import sys

GROUPS = ["product", "sample", "user", "task", "work-unit", "job", "session"]
ROUTES = GROUPS + ["unrouted"]
# Consumer timeout (s) -> queue visibility timeout (6x, as AWS advises for SQS event
# sources) and idempotency lease (2x: a claim must outlive the attempt that made it).
TIMEOUTS = ["30", "60", "120", "300", "900"]
NAMESPACE = "CfWebhooks"


# --- a small YAML writer with CloudFormation's short-form tags -------------------------


class Tag:
    def __init__(self, tag, value):
        self.tag, self.value = tag, value


def Ref(name):
    return Tag("!Ref", name)


def GetAtt(name):
    return Tag("!GetAtt", name)


def Sub(text):
    return Tag("!Sub", text)


def If(condition, yes, no):
    return Tag("!If", [condition, yes, no])


def FindInMap(*path):
    return Tag("!FindInMap", list(path))


def Equals(a, b):
    return Tag("!Equals", [a, b])


def Not(condition):
    return Tag("!Not", [condition])


NO_VALUE = Ref("AWS::NoValue")

PLAIN = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:*@")


def scalar(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    text = str(value)
    reserved = {"true", "false", "yes", "no", "on", "off", "null", "~", "y", "n"}
    if (
        text
        and set(text) <= PLAIN
        and text.lower() not in reserved
        and not text[0].isdigit()
        and not text.startswith(("-", "*", ":", "@"))
        and ": " not in text
    ):
        return text
    return json.dumps(text)


def is_block(value):
    if isinstance(value, Tag):
        return is_block(value.value)
    return isinstance(value, (dict, list)) and len(value) > 0


def render(value, indent=0):
    pad = " " * indent
    lines = []
    if isinstance(value, dict):
        for key, item in value.items():
            key = scalar(key)
            if isinstance(item, Tag) and is_block(item.value):
                lines.append(f"{pad}{key}: {item.tag}")
                lines.extend(render(item.value, indent + 2))
            elif isinstance(item, Tag):
                lines.append(f"{pad}{key}: {item.tag} {scalar(item.value)}")
            elif is_block(item):
                lines.append(f"{pad}{key}:")
                lines.extend(render(item, indent + 2))
            else:
                lines.append(f"{pad}{key}: {inline(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, Tag) and is_block(item.value):
                lines.append(f"{pad}- {item.tag}")
                lines.extend(render(item.value, indent + 4))
            elif isinstance(item, Tag):
                lines.append(f"{pad}- {item.tag} {scalar(item.value)}")
            elif is_block(item):
                inner = render(item, indent + 2)
                lines.append(f"{pad}- {inner[0].lstrip()}")
                lines.extend(inner[1:])
            else:
                lines.append(f"{pad}- {inline(item)}")
    else:
        lines.append(pad + inline(value))
    return lines


def inline(value):
    if isinstance(value, dict) and not value:
        return "{}"
    if isinstance(value, list) and not value:
        return "[]"
    return scalar(value)


# --- the template -----------------------------------------------------------------------


def camel(name):
    return "".join(part.capitalize() for part in name.split("-"))


def queue(route):
    return f"{camel(route)}Queue"


def dlq(route):
    return f"{camel(route)}DeadLetterQueue"


def env_name(route):
    return "CF_QUEUE_URL_" + route.replace("-", "_").upper()


def log_group(logical, function_name):
    return {
        f"{logical}LogGroup": {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {
                "LogGroupName": Sub(f"/aws/lambda/${{AWS::StackName}}-{function_name}"),
                "RetentionInDays": Ref("LogRetentionDays"),
            },
        }
    }


def role(logical, statements):
    return {
        f"{logical}Role": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                },
                "Policies": [
                    {
                        "PolicyName": "least-privilege",
                        "PolicyDocument": {
                            "Version": "2012-10-17",
                            "Statement": [
                                {
                                    "Sid": "WriteItsOwnLogs",
                                    "Effect": "Allow",
                                    "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                                    "Resource": GetAtt(f"{logical}LogGroup.Arn"),
                                }
                            ]
                            + statements,
                        },
                    }
                ],
            },
        }
    }


def alarm(logical, description, namespace, metric, dimensions, statistic, threshold, comparison, periods=1, period=60):
    return {
        logical: {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "AlarmName": Sub(f"${{AWS::StackName}}-{logical}"),
                "AlarmDescription": description,
                "Namespace": namespace,
                "MetricName": metric,
                "Dimensions": [{"Name": name, "Value": value} for name, value in dimensions],
                "Statistic": statistic,
                "Period": period,
                "EvaluationPeriods": periods,
                "Threshold": threshold,
                "ComparisonOperator": comparison,
                "TreatMissingData": "notBreaching",
                "AlarmActions": If("HasAlarmTopic", [Ref("AlarmTopic")], NO_VALUE),
                "OKActions": If("HasAlarmTopic", [Ref("AlarmTopic")], NO_VALUE),
            },
        }
    }


def parameters():
    return {
        "WebhookSecretArn": {
            "Type": "String",
            "Default": "",
            "Description": "ARN of an existing Secrets Manager secret holding the webhook secret (a string, or a JSON "
            "list while rotating). Empty: the stack creates one with a random value.",
        },
        "SecretRefreshSeconds": {
            "Type": "Number",
            "Default": 300,
            "MinValue": 10,
            "Description": "How often ingest reads the secret again (a rotation is picked up within this time).",
        },
        "SecretOverlapSeconds": {
            "Type": "Number",
            "Default": 3600,
            "MinValue": 0,
            "Description": "How long a secret removed from Secrets Manager is still accepted.",
        },
        "RequiredHeaderName": {
            "Type": "String",
            "Default": "",
            "Description": "Optional custom header every delivery must carry (Creative Force: Custom Headers tab).",
        },
        "RequiredHeaderValue": {
            "Type": "String",
            "Default": "",
            "NoEcho": True,
            "Description": "Its value.",
        },
        "FilterWorkspaces": {
            "Type": "String",
            "Default": "",
            "Description": "Comma-separated workspace (ClientId) GUIDs to keep; empty keeps all.",
        },
        "FilterEventGroups": {
            "Type": "String",
            "Default": "",
            "Description": "Comma-separated event groups to keep (product, sample, user, task, work unit, job, "
            "session); empty keeps all.",
        },
        "FilterSteps": {
            "Type": "String",
            "Default": "",
            "Description": "Comma-separated production steps (StepName) of task events to keep; empty keeps all.",
        },
        "MaxEventAgeSeconds": {
            "Type": "Number",
            "Default": 86400,
            "MinValue": 0,
            "MaxValue": 518400,
            "Description": "Replay window: older events are refused. Must stay below IdempotencyTtlSeconds.",
        },
        "IdempotencyTtlSeconds": {
            "Type": "Number",
            "Default": 604800,
            "MinValue": 3600,
            "Description": "How long a processed PayloadId is remembered.",
        },
        "IngestReservedConcurrency": {
            "Type": "Number",
            "Default": -1,
            "MinValue": -1,
            "Description": "Reserved concurrency of ingest (-1: none, it shares the account's pool).",
        },
        "MaxReceiveCount": {
            "Type": "Number",
            "Default": 5,
            "MinValue": 1,
            "MaxValue": 1000,
            "Description": "Deliveries of a failing record before it moves to its dead-letter queue.",
        },
        "ConsumerTimeout": {
            "Type": "String",
            "Default": "60",
            "AllowedValues": TIMEOUTS,
            "Description": "Consumer timeout in seconds; queue visibility timeouts are six times this.",
        },
        "ConsumerMemory": {
            "Type": "Number",
            "Default": 256,
            "MinValue": 128,
            "MaxValue": 10240,
            "Description": "Consumer memory (MB).",
        },
        "ConsumerBatchSize": {
            "Type": "Number",
            "Default": 10,
            "MinValue": 1,
            "MaxValue": 10000,
            "Description": "Records per consumer invocation.",
        },
        "ConsumerBatchingWindowSeconds": {
            "Type": "Number",
            "Default": 0,
            "MinValue": 0,
            "MaxValue": 300,
            "Description": "How long to gather a batch before invoking a consumer.",
        },
        "ConsumerMaxConcurrency": {
            "Type": "Number",
            "Default": 5,
            "MinValue": 2,
            "MaxValue": 1000,
            "Description": "Most concurrent invocations per consumer (protects the systems handlers call).",
        },
        "OldestMessageAlarmSeconds": {
            "Type": "Number",
            "Default": 900,
            "MinValue": 60,
            "Description": "Alarm when a queue's oldest message is older than this.",
        },
        "AlarmEmail": {
            "Type": "String",
            "Default": "",
            "Description": "Optional e-mail address subscribed to an SNS topic that receives every alarm.",
        },
        "LogRetentionDays": {
            "Type": "Number",
            "Default": 30,
            "AllowedValues": [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 3653],
            "Description": "Days the functions' logs are kept.",
        },
    }


def ingest_resources():
    queue_arns = [GetAtt(f"{queue(r)}.Arn") for r in ROUTES]
    secret = If("CreateSecret", Ref("WebhookSecret"), Ref("WebhookSecretArn"))
    environment = {
        "CF_WEBHOOK_SECRET_ARN": secret,
        "CF_SECRET_REFRESH_SECS": Ref("SecretRefreshSeconds"),
        "CF_SECRET_OVERLAP_SECS": Ref("SecretOverlapSeconds"),
        "CF_MAX_EVENT_AGE_SECS": Ref("MaxEventAgeSeconds"),
        "CF_REQUIRED_HEADER_NAME": Ref("RequiredHeaderName"),
        "CF_REQUIRED_HEADER_VALUE": Ref("RequiredHeaderValue"),
        "CF_FILTER_WORKSPACES": Ref("FilterWorkspaces"),
        "CF_FILTER_EVENT_GROUPS": Ref("FilterEventGroups"),
        "CF_FILTER_STEPS": Ref("FilterSteps"),
        "CF_QUEUE_MAX_MESSAGE_BYTES": 1048576,
    }
    for route in ROUTES:
        environment[env_name(route)] = Ref(queue(route))
    resources = {}
    resources.update(log_group("Ingest", "ingest"))
    resources.update(
        role(
            "Ingest",
            [
                {"Sid": "EnqueueDeliveries", "Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue_arns},
                {"Sid": "ReadTheWebhookSecret", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": secret},
            ],
        )
    )
    resources["IngestFunction"] = {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "FunctionName": Sub("${AWS::StackName}-ingest"),
            "Description": "Verifies Creative Force deliveries and queues them by event group",
            "CodeUri": "target/lambda/ingest/",
            "MemorySize": 256,
            "Timeout": 10,
            "Role": GetAtt("IngestRole.Arn"),
            "ReservedConcurrentExecutions": If("HasIngestReservedConcurrency", Ref("IngestReservedConcurrency"), NO_VALUE),
            "LoggingConfig": {"LogFormat": "JSON", "LogGroup": Ref("IngestLogGroup"), "ApplicationLogLevel": "INFO", "SystemLogLevel": "WARN"},
            "Environment": {"Variables": environment},
            # The sender cannot sign AWS requests: the HMAC signature is the gate.
            "FunctionUrlConfig": {"AuthType": "NONE", "InvokeMode": "BUFFERED"},
        },
    }
    # Function URLs with AuthType NONE also need lambda:InvokeFunction for callers coming
    # through the URL (AWS, October 2025).
    resources["IngestFunctionUrlInvokePermission"] = {
        "Type": "AWS::Lambda::Permission",
        "Properties": {
            "Action": "lambda:InvokeFunction",
            "FunctionName": Ref("IngestFunction"),
            "Principal": "*",
            "InvokedViaFunctionUrl": True,
        },
    }
    resources.update(
        alarm(
            "IngestErrors",
            "The ingest function failed (crash, timeout): deliveries get no 2xx and Creative Force retries. "
            "Read the ingest logs.",
            "AWS/Lambda",
            "Errors",
            [("FunctionName", Ref("IngestFunction"))],
            "Sum",
            0,
            "GreaterThanThreshold",
        )
    )
    resources.update(
        alarm(
            "Ingest5xx",
            "Ingest answered 5xx (a queue or the secret store was unreachable): Creative Force retries 3 times "
            "within about 30 minutes, then drops the event. Check SQS and the ingest logs now.",
            "AWS/Lambda",
            "Url5xxCount",
            [("FunctionName", Ref("IngestFunction"))],
            "Sum",
            0,
            "GreaterThanThreshold",
        )
    )
    return resources


def route_resources(route):
    resources = {
        dlq(route): {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": Sub(f"${{AWS::StackName}}-{route}-dlq"),
                "MessageRetentionPeriod": 1209600,
                "MaximumMessageSize": 1048576,
                "SqsManagedSseEnabled": True,
            },
        },
        queue(route): {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": Sub(f"${{AWS::StackName}}-{route}"),
                # Four days: a Friday-evening outage of a handler's downstream survives the weekend.
                "MessageRetentionPeriod": 345600,
                "MaximumMessageSize": 1048576,
                "VisibilityTimeout": FindInMap("ConsumerTimeouts", Ref("ConsumerTimeout"), "Visibility"),
                "SqsManagedSseEnabled": True,
                "RedrivePolicy": {"deadLetterTargetArn": GetAtt(f"{dlq(route)}.Arn"), "maxReceiveCount": Ref("MaxReceiveCount")},
            },
        },
    }
    resources.update(
        alarm(
            f"{camel(route)}DeadLetters",
            f"The {route} dead-letter queue holds messages: events that failed permanently or too often. "
            f"Read the reason (cf-reason attribute, consumer logs), fix, then `make redrive GROUP={route}`.",
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            [("QueueName", GetAtt(f"{dlq(route)}.QueueName"))],
            "Maximum",
            0,
            "GreaterThanThreshold",
        )
    )
    resources.update(
        alarm(
            f"{camel(route)}QueueAge",
            f"The oldest message of the {route} queue is older than OldestMessageAlarmSeconds: its consumer is "
            "failing, throttled or too slow. Check its errors, throttles and MaximumConcurrency.",
            "AWS/SQS",
            "ApproximateAgeOfOldestMessage",
            [("QueueName", GetAtt(f"{queue(route)}.QueueName"))],
            "Maximum",
            Ref("OldestMessageAlarmSeconds"),
            "GreaterThanThreshold",
            periods=2,
        )
    )
    return resources


def consumer_resources(group):
    logical = f"Consume{camel(group)}"
    resources = {}
    resources.update(log_group(logical, f"consume-{group}"))
    resources.update(
        role(
            logical,
            [
                {
                    "Sid": "ConsumeItsQueue",
                    "Effect": "Allow",
                    "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"],
                    "Resource": GetAtt(f"{queue(group)}.Arn"),
                },
                {"Sid": "DeadLetterPermanentFailures", "Effect": "Allow", "Action": "sqs:SendMessage", "Resource": GetAtt(f"{dlq(group)}.Arn")},
                {
                    "Sid": "Idempotency",
                    "Effect": "Allow",
                    "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"],
                    "Resource": GetAtt("IdempotencyTable.Arn"),
                },
            ],
        )
    )
    resources[f"{logical}Function"] = {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "FunctionName": Sub(f"${{AWS::StackName}}-consume-{group}"),
            "Description": f"Applies {group} events",
            "CodeUri": f"target/lambda/consume-{group}/",
            "MemorySize": Ref("ConsumerMemory"),
            "Timeout": Ref("ConsumerTimeout"),
            "Role": GetAtt(f"{logical}Role.Arn"),
            "LoggingConfig": {"LogFormat": "JSON", "LogGroup": Ref(f"{logical}LogGroup"), "ApplicationLogLevel": "INFO", "SystemLogLevel": "WARN"},
            "Environment": {
                "Variables": {
                    "CF_IDEMPOTENCY_TABLE": Ref("IdempotencyTable"),
                    "CF_DLQ_URL": Ref(dlq(group)),
                    "CF_IDEMPOTENCY_TTL_SECS": Ref("IdempotencyTtlSeconds"),
                    "CF_IDEMPOTENCY_LEASE_SECS": FindInMap("ConsumerTimeouts", Ref("ConsumerTimeout"), "Lease"),
                    "CF_MAX_EVENT_AGE_SECS": Ref("MaxEventAgeSeconds"),
                }
            },
            "Events": {
                "Queue": {
                    "Type": "SQS",
                    "Properties": {
                        "Queue": GetAtt(f"{queue(group)}.Arn"),
                        "BatchSize": Ref("ConsumerBatchSize"),
                        "MaximumBatchingWindowInSeconds": Ref("ConsumerBatchingWindowSeconds"),
                        "FunctionResponseTypes": ["ReportBatchItemFailures"],
                        "ScalingConfig": {"MaximumConcurrency": Ref("ConsumerMaxConcurrency")},
                    },
                }
            },
        },
    }
    return resources


def dashboard():
    region = "${AWS::Region}"
    stack = "${AWS::StackName}"

    def search(expression, stat, label_id):
        return {"expression": f"SEARCH('{expression}', '{stat}', 60)", "id": label_id}

    def widget(title, metrics, x, y, w=12, h=6, view="timeSeries", stacked=False, extra=None):
        properties = {"title": title, "region": region, "view": view, "stacked": stacked, "period": 60, "metrics": metrics}
        properties.update(extra or {})
        return {"type": "metric", "x": x, "y": y, "width": w, "height": h, "properties": properties}

    ingest = f"{stack}-ingest"
    widgets = [
        widget(
            "Deliveries: accepted, rejected, quarantined, ignored, 503",
            [
                [{"expression": f"SEARCH('{{{NAMESPACE},EventGroup}} MetricName=\"Accepted\"', 'Sum', 60)", "id": "accepted", "label": "accepted"}],
                [{"expression": f"SEARCH('{{{NAMESPACE},Reason}} MetricName=\"Rejected\"', 'Sum', 60)", "id": "rejected", "label": "rejected"}],
                [{"expression": f"SEARCH('{{{NAMESPACE},Reason}} MetricName=\"Quarantined\"', 'Sum', 60)", "id": "quarantined", "label": "quarantined"}],
                [{"expression": f"SEARCH('{{{NAMESPACE},Reason}} MetricName=\"Ignored\"', 'Sum', 60)", "id": "ignored", "label": "ignored"}],
                [NAMESPACE, "Unavailable", {"stat": "Sum", "label": "503 unavailable"}],
            ],
            0,
            0,
        ),
        widget(
            "Ack latency (ms)",
            [
                ["AWS/Lambda", "UrlRequestLatency", "FunctionName", ingest, {"stat": "p50", "label": "answer p50"}],
                ["AWS/Lambda", "UrlRequestLatency", "FunctionName", ingest, {"stat": "p99", "label": "answer p99"}],
                [{"expression": f"SEARCH('{{{NAMESPACE},EventGroup}} MetricName=\"EnqueueLatency\"', 'p99', 60)", "id": "enqueue", "label": "enqueue p99"}],
            ],
            12,
            0,
        ),
        widget(
            "Queue depths",
            [
                ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", f"{stack}-{route}", {"stat": "Maximum", "label": route}]
                for route in ROUTES
            ],
            0,
            6,
        ),
        widget(
            "Age of the oldest message (s)",
            [
                ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", f"{stack}-{route}", {"stat": "Maximum", "label": route}]
                for route in ROUTES
            ],
            12,
            6,
        ),
        widget(
            "Processed per group",
            [[{"expression": f"SEARCH('{{{NAMESPACE},EventGroup}} MetricName=\"Processed\"', 'Sum', 60)", "id": "processed"}],
             [{"expression": f"SEARCH('{{{NAMESPACE},EventGroup}} MetricName=\"Duplicates\"', 'Sum', 60)", "id": "duplicates"}]],
            0,
            12,
        ),
        widget(
            "Failed and dead-lettered per group",
            [[{"expression": f"SEARCH('{{{NAMESPACE},EventGroup}} MetricName=\"Failed\"', 'Sum', 60)", "id": "failed"}],
             [{"expression": f"SEARCH('{{{NAMESPACE},EventGroup}} MetricName=\"DeadLettered\"', 'Sum', 60)", "id": "deadlettered"}]],
            12,
            12,
        ),
        widget(
            "Dead-letter queues",
            [
                ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", f"{stack}-{route}-dlq", {"stat": "Maximum", "label": route}]
                for route in ROUTES
            ],
            0,
            18,
            w=24,
        ),
    ]
    return {
        "Dashboard": {
            "Type": "AWS::CloudWatch::Dashboard",
            "Properties": {
                "DashboardName": Sub("${AWS::StackName}"),
                "DashboardBody": Sub(json.dumps({"widgets": widgets}, separators=(",", ":"))),
            },
        }
    }


def template():
    resources = {
        "WebhookSecret": {
            "Type": "AWS::SecretsManager::Secret",
            "Condition": "CreateSecret",
            "Properties": {
                "Name": Sub("${AWS::StackName}-webhook-secret"),
                "Description": "The Creative Force webhook secret: paste its value into Creative Force (Secret Key).",
                "GenerateSecretString": {"PasswordLength": 48, "ExcludePunctuation": True},
            },
        },
        "IdempotencyTable": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "TableName": Sub("${AWS::StackName}-idempotency"),
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
                "SSESpecification": {"SSEEnabled": True},
            },
        },
        "AlarmTopic": {
            "Type": "AWS::SNS::Topic",
            "Condition": "HasAlarmTopic",
            "Properties": {"TopicName": Sub("${AWS::StackName}-alarms"), "KmsMasterKeyId": "alias/aws/sns"},
        },
        "AlarmSubscription": {
            "Type": "AWS::SNS::Subscription",
            "Condition": "HasAlarmTopic",
            "Properties": {"TopicArn": Ref("AlarmTopic"), "Protocol": "email", "Endpoint": Ref("AlarmEmail")},
        },
    }
    resources.update(ingest_resources())
    for route in ROUTES:
        resources.update(route_resources(route))
    for group in GROUPS:
        resources.update(consumer_resources(group))
    resources.update(dashboard())
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Description": "cf-webhooks: receive Creative Force webhooks: verified, queued by event group, applied once.",
        "Globals": {
            "Function": {
                "Runtime": "provided.al2023",
                "Architectures": ["arm64"],
                "Handler": "bootstrap",
            }
        },
        "Parameters": parameters(),
        "Mappings": {
            "ConsumerTimeouts": {t: {"Visibility": int(t) * 6, "Lease": int(t) * 2} for t in TIMEOUTS},
        },
        "Conditions": {
            "CreateSecret": Equals(Ref("WebhookSecretArn"), ""),
            "HasAlarmTopic": Not(Equals(Ref("AlarmEmail"), "")),
            "HasIngestReservedConcurrency": Not(Equals(Ref("IngestReservedConcurrency"), -1)),
        },
        "Resources": resources,
        "Outputs": {
            "WebhookUrl": {
                "Description": "The Payload URL to give Creative Force",
                "Value": GetAtt("IngestFunctionUrl.FunctionUrl"),
            },
            "WebhookSecretArn": {
                "Description": "The secret to paste into Creative Force (aws secretsmanager get-secret-value --secret-id …)",
                "Value": If("CreateSecret", Ref("WebhookSecret"), Ref("WebhookSecretArn")),
            },
            "QueuePrefix": {"Description": "Queue names are <prefix>-<group> (cfwh redrive --queue-prefix)", "Value": Ref("AWS::StackName")},
            "IdempotencyTableName": {"Value": Ref("IdempotencyTable")},
            "DashboardUrl": {
                "Value": Sub("https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home?region=${AWS::Region}#dashboards:name=${Dashboard}")
            },
        },
    }


def wildcard_grants(node, path="template"):
    """Every IAM statement granting a wildcard action or resource: none is allowed."""
    found = []
    if isinstance(node, dict):
        if "Effect" in node and "Action" in node:
            actions = node["Action"] if isinstance(node["Action"], list) else [node["Action"]]
            resources = node.get("Resource", [])
            resources = resources if isinstance(resources, list) else [resources]
            if any(isinstance(a, str) and a.endswith("*") for a in actions) or "*" in resources:
                found.append(path)
        for key, value in node.items():
            found += wildcard_grants(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += wildcard_grants(value, f"{path}[{i}]")
    elif isinstance(node, Tag):
        found += wildcard_grants(node.value, path)
    return found


def main():
    args = sys.argv[1:]
    check = "--check" in args
    args = [a for a in args if a != "--check"]
    output = args[0] if args else "template.yaml"
    text = "# Generated by scripts/template.py: edit that, then `make template`.\n" + "\n".join(render(template())) + "\n"
    if check:
        broad = wildcard_grants(template())
        if broad:
            sys.exit(f"wildcard IAM grants in the template: {broad}")
        with open(output, encoding="utf-8") as f:
            if f.read() != text:
                sys.exit(f"{output} is not what scripts/template.py writes: run `make template`")
        return
    with open(output, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
