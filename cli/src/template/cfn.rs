//! The template's building blocks: CloudFormation's short-form intrinsic functions, the
//! logical names of queues and functions, and the log group, role and alarm every
//! function or queue gets.

use super::*;

pub(super) fn tagged(tag: &str, value: Value) -> Value {
    Value::Tagged(Box::new(TaggedValue { tag: Tag::new(tag), value }))
}

pub(super) fn r#ref(name: impl Into<String>) -> Value {
    tagged("Ref", Value::String(name.into()))
}

pub(super) fn get_att(path: impl Into<String>) -> Value {
    tagged("GetAtt", Value::String(path.into()))
}

pub(super) fn sub(text: impl Into<String>) -> Value {
    tagged("Sub", Value::String(text.into()))
}

pub(super) fn join(separator: &str, items: Vec<Value>) -> Value {
    tagged("Join", seq![separator, Value::Sequence(items)])
}

/// `!Sub` with one variable bound to a value.
pub(super) trait SubWith {
    fn tagged_sub_with(self, name: &str, value: Value) -> Value;
}

impl SubWith for Value {
    fn tagged_sub_with(self, name: &str, value: Value) -> Value {
        match self {
            Value::Tagged(text) if text.tag == Tag::new("Sub") => {
                tagged("Sub", seq![text.value, map! { name => value }])
            }
            other => other,
        }
    }
}

pub(super) fn r#if(condition: &str, yes: Value, no: Value) -> Value {
    tagged("If", seq![condition, yes, no])
}

pub(super) fn equals(a: Value, b: impl Into<Value>) -> Value {
    tagged("Equals", seq![a, b.into()])
}

pub(super) fn and(conditions: Vec<Value>) -> Value {
    tagged("And", Value::Sequence(conditions))
}

/// A condition used inside another.
pub(super) fn r#ref_condition(name: &str) -> Value {
    tagged("Condition", name.into())
}

pub(super) fn not(condition: Value) -> Value {
    tagged("Not", seq![condition])
}

pub(super) fn no_value() -> Value {
    r#ref("AWS::NoValue")
}

/// The consumer timeout's row of the `ConsumerTimeouts` mapping.
pub(super) fn timeout_derived(attribute: &str) -> Value {
    tagged("FindInMap", seq!["ConsumerTimeouts", r#ref("ConsumerTimeout"), attribute])
}

pub(super) fn queue(route: Route) -> String {
    format!("{}Queue", camel(route.as_str()))
}

pub(super) fn dlq(route: Route) -> String {
    format!("{}DeadLetterQueue", camel(route.as_str()))
}

pub(super) fn consumer(group: EventGroup) -> String {
    format!("Consume{}", camel(group.as_str()))
}

/// A queue's name: `.fifo` ends it when `QueueType` is fifo.
pub(super) fn queue_name(route: Route, dead_letter: bool) -> Value {
    let standard = stack::queue_name(STACK_NAME, route, dead_letter, stack::QueueType::Standard);
    sub(format!("{standard}${{QueueSuffix}}"))
        .tagged_sub_with("QueueSuffix", r#if("Fifo", stack::QueueType::Fifo.suffix().into(), "".into()))
}

/// A FIFO-only property: absent from standard queues.
pub(super) fn if_fifo(value: impl Into<Value>) -> Value {
    r#if("Fifo", value.into(), no_value())
}

pub(super) fn log_group(resources: &mut Mapping, logical: &str, function_name: &str) {
    resources.insert(
        format!("{logical}LogGroup").into(),
        map! {
            "Type" => "AWS::Logs::LogGroup",
            "Properties" => map! {
                "LogGroupName" => sub(format!("/aws/lambda/{function_name}")),
                "RetentionInDays" => r#ref("LogRetentionDays"),
            },
        },
    );
}

pub(super) fn allow(sid: &str, action: Value, resource: Value) -> Value {
    map! { "Sid" => sid, "Effect" => "Allow", "Action" => action, "Resource" => resource }
}

/// A function's role: its own log group, then `statements`, nothing else.
pub(super) fn role(resources: &mut Mapping, logical: &str, statements: Vec<Value>) {
    let own_logs = allow(
        "WriteItsOwnLogs",
        seq!["logs:CreateLogStream", "logs:PutLogEvents"],
        get_att(format!("{logical}LogGroup.Arn")),
    );
    // X-Ray has no resource-level permissions: the one `*` the checks allow.
    let traces = allow("SendTraces", seq![XRAY_ACTIONS[0], XRAY_ACTIONS[1]], "*".into());
    resources.insert(
        format!("{logical}Role").into(),
        map! {
            "Type" => "AWS::IAM::Role",
            "Properties" => map! {
                "AssumeRolePolicyDocument" => map! {
                    "Version" => "2012-10-17",
                    "Statement" => seq![map! {
                        "Effect" => "Allow",
                        "Principal" => map! { "Service" => "lambda.amazonaws.com" },
                        "Action" => "sts:AssumeRole",
                    }],
                },
                "Policies" => seq![map! {
                    "PolicyName" => "least-privilege",
                    "PolicyDocument" => map! {
                        "Version" => "2012-10-17",
                        "Statement" => [vec![own_logs, traces], statements].concat(),
                    },
                }],
            },
        },
    );
}

pub(super) fn logging_config(logical: &str) -> Value {
    map! {
        "LogFormat" => "JSON",
        "LogGroup" => r#ref(format!("{logical}LogGroup")),
        "ApplicationLogLevel" => "INFO",
        "SystemLogLevel" => "WARN",
    }
}

/// An alarm on one metric of one AWS resource that notifies the alarm topic, if any.
pub(super) struct Alarm<'a> {
    pub(super) logical: String,
    pub(super) description: String,
    pub(super) namespace: &'a str,
    pub(super) metric: &'a str,
    pub(super) dimensions: Vec<(&'a str, Value)>,
    pub(super) statistic: &'a str,
    pub(super) threshold: Value,
    pub(super) periods: u32,
}

impl Alarm<'_> {
    pub(super) fn insert_into(self, resources: &mut Mapping) {
        self.insert_if(None, resources);
    }

    pub(super) fn insert_if(self, condition: Option<&str>, resources: &mut Mapping) {
        let dimensions: Vec<Value> =
            self.dimensions.into_iter().map(|(name, value)| map! { "Name" => name, "Value" => value }).collect();
        let actions = || r#if("HasAlarmTopic", seq![r#ref("AlarmTopic")], no_value());
        let properties = map! {
            "AlarmName" => sub(format!("{STACK_NAME}-{}", self.logical)),
            "AlarmDescription" => self.description,
            "Namespace" => self.namespace,
            "MetricName" => self.metric,
            "Dimensions" => dimensions,
            "Statistic" => self.statistic,
            "Period" => 60,
            "EvaluationPeriods" => self.periods,
            "Threshold" => self.threshold,
            "ComparisonOperator" => "GreaterThanThreshold",
            "TreatMissingData" => "notBreaching",
            "AlarmActions" => actions(),
            "OKActions" => actions(),
        };
        let mut alarm = map! { "Type" => "AWS::CloudWatch::Alarm", "Properties" => properties };
        if let Some(condition) = condition {
            alarm.as_mapping_mut().expect("a mapping").insert("Condition".into(), condition.into());
        }
        resources.insert(self.logical.into(), alarm);
    }
}
