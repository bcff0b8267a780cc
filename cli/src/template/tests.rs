//! The template against what the code reads and what AWS accepts.

use super::lint::*;
use super::*;

fn resource<'a>(template: &'a Value, logical: &str) -> &'a Value {
    template["Resources"].get(logical).unwrap_or_else(|| panic!("no resource {logical}"))
}

#[test]
fn the_iam_checks_pass() {
    assert_eq!(iam_problems(), Vec::<String>::new());
}

#[test]
fn wildcard_grants_are_found() {
    let statements = seq![
        allow("A", "sqs:*".into(), get_att("Q.Arn")),
        allow("B", seq!["sqs:SendMessage"], seq![get_att("Q.Arn"), "*"]),
        allow("C", "sqs:SendMessage".into(), r#if("X", get_att("Q.Arn"), no_value())),
    ];
    let mut found = Vec::new();
    find_wildcard_grants(&map! { "Statement" => statements }, "t".to_owned(), &mut found);
    assert_eq!(found, ["t.Statement[0]", "t.Statement[1]"]);
    // X-Ray's two actions on `*`, and nothing else with them.
    let xray = seq![
        allow("X", seq![XRAY_ACTIONS[0], XRAY_ACTIONS[1]], "*".into()),
        allow("Y", seq![XRAY_ACTIONS[0], "sqs:SendMessage"], "*".into()),
    ];
    let mut found = Vec::new();
    find_wildcard_grants(&map! { "Statement" => xray }, "t".to_owned(), &mut found);
    assert_eq!(found, ["t.Statement[1]"]);
}

#[test]
fn every_route_has_its_queues() {
    let template = template();
    for route in Route::ALL {
        let camel = camel(route.as_str());
        for logical in [format!("{camel}Queue"), format!("{camel}DeadLetterQueue")] {
            assert_eq!(resource(&template, &logical)["Type"], "AWS::SQS::Queue");
        }
    }
}

/// The argument of a short-form intrinsic function, checking which one it is.
fn under<'a>(value: &'a Value, function: &str) -> &'a Value {
    match value {
        Value::Tagged(tagged) if tagged.tag == Tag::new(function) => &tagged.value,
        other => panic!("expected !{function}, found {other:?}"),
    }
}

/// `!If [Fifo, <yes>, <no>]`'s two branches.
fn if_fifo_branches(value: &Value) -> (&Value, &Value) {
    let branches = under(value, "If");
    assert_eq!(branches[0], "Fifo");
    (&branches[1], &branches[2])
}

#[test]
fn queues_are_fifo_with_high_throughput_unless_queue_type_says_standard() {
    let template = template();
    assert_eq!(template["Parameters"]["QueueType"]["Default"], "fifo");
    let fifo = under(&template["Conditions"]["Fifo"], "Equals");
    assert_eq!((&fifo[0], &fifo[1]), (&r#ref("QueueType"), &Value::from("fifo")));
    let no_value = no_value();
    for route in Route::ALL {
        for (logical, dead_letter) in [(queue(route), false), (dlq(route), true)] {
            let queue = resource(&template, &logical);
            assert_eq!(queue["UpdateReplacePolicy"], "Retain", "{logical}: a replaced queue keeps its messages");
            let properties = &queue["Properties"];
            let name = under(&properties["QueueName"], "Sub");
            let standard = stack::queue_name(STACK_NAME, route, dead_letter, stack::QueueType::Standard);
            assert_eq!(name[0], Value::from(format!("{standard}${{QueueSuffix}}")));
            assert_eq!(if_fifo_branches(&name[1]["QueueSuffix"]), (&Value::from(".fifo"), &Value::from("")));
            for (property, value) in [
                ("FifoQueue", Value::from(true)),
                ("DeduplicationScope", Value::from("messageGroup")),
                ("FifoThroughputLimit", Value::from("perMessageGroupId")),
            ] {
                assert_eq!(if_fifo_branches(&properties[property]), (&value, &no_value), "{logical} {property}");
            }
        }
    }
    for group in EventGroup::ALL {
        let function = resource(&template, &format!("{}Function", consumer(group)));
        let source = &function["Properties"]["Events"]["Queue"]["Properties"];
        let (fifo, standard) = if_fifo_branches(&source["MaximumBatchingWindowInSeconds"]);
        assert_eq!((fifo, standard), (&no_value, &r#ref("ConsumerBatchingWindowSeconds")), "{group}");
    }
    let rule = &template["Rules"]["FifoBatchesOfTenAtMost"];
    let allowed = under(&rule["Assertions"][0]["Assert"], "Contains");
    let sizes: Vec<&str> = allowed[0].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(sizes, (1..=10).map(|n| n.to_string()).collect::<Vec<_>>());
    assert_eq!(allowed[1], r#ref("ConsumerBatchSize"));
    // Above 10 records a batch, SQS event sources need a batching window of a second.
    let large = &template["Rules"]["LargeBatchesNeedAWindow"];
    let small = under(under(&large["RuleCondition"], "Not").as_sequence().unwrap().first().unwrap(), "Contains");
    assert_eq!(small[1], r#ref("ConsumerBatchSize"));
    assert_eq!(small[0].as_sequence().unwrap().len(), 10);
    let window =
        under(under(&large["Assertions"][0]["Assert"], "Not").as_sequence().unwrap().first().unwrap(), "Equals");
    assert_eq!((window[0].clone(), window[1].as_str()), (r#ref("ConsumerBatchingWindowSeconds"), Some("0")));
}

#[test]
fn each_consumer_may_touch_only_its_own_groups_items() {
    let template = template();
    for group in EventGroup::ALL {
        let role = format!("{}Role", consumer(group));
        let statements = statements(&template, &role);
        let own = statements.iter().find(|s| s["Sid"] == "IdempotencyOfItsOwnGroup").expect("a table statement");
        let keys: Vec<&str> = own["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        assert_eq!(keys, [format!("{group}#*"), format!("{group}\u{2192}*")], "{group}");
    }
    // The check of `make validate` finds a table grant without the condition.
    let bare = allow("T", seq!["dynamodb:GetItem"], get_att("IdempotencyTable.Arn"));
    let mut found = Vec::new();
    find_wildcard_grants(&map! { "Statement" => seq![bare] }, "t".to_owned(), &mut found);
    assert_eq!(found, ["t.Statement[0] (DynamoDB without dynamodb:LeadingKeys)"]);
}

/// The roles a resource policy's deny lets through, `!If [ArchiveOn, x, NoValue]`
/// written `x?`.
fn let_through(document: &Value, action: &str) -> Vec<String> {
    let statement = &document["Statement"][0];
    assert_eq!(
        (&statement["Effect"], &statement["Principal"], &statement["Action"]),
        (&"Deny".into(), &"*".into(), &action.into())
    );
    assert_eq!(statement["Condition"]["Null"]["aws:PrincipalArn"], "false");
    statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|arn| match arn {
            Value::Tagged(t) if t.tag == Tag::new("GetAtt") => t.value.as_str().unwrap().to_owned(),
            Value::Tagged(t) if t.tag == Tag::new("If") => {
                assert_eq!((&t.value[0], &t.value[2]), (&"ArchiveOn".into(), &no_value()));
                format!("{}?", under(&t.value[1], "GetAtt").as_str().unwrap())
            }
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn only_ingest_each_consumer_and_the_operator_role_may_send_to_the_queues() {
    let template = template();
    for route in Route::ALL {
        let policy = &resource(&template, &format!("{}Policy", queue(route)))["Properties"];
        assert_eq!(policy["Queues"], seq![r#ref(queue(route))]);
        assert_eq!(policy["PolicyDocument"]["Statement"][0]["Resource"], get_att(format!("{}.Arn", queue(route))));
        assert_eq!(let_through(&policy["PolicyDocument"], "sqs:SendMessage"), ["IngestRole.Arn", "OperatorRole.Arn"]);
        let policy = &resource(&template, &format!("{}Policy", dlq(route)))["Properties"];
        assert_eq!(policy["Queues"], seq![r#ref(dlq(route))]);
        let consumer = match route {
            Route::Group(group) => format!("{}Role.Arn", consumer(group)),
            Route::Unrouted => "ArchiveUnroutedRole.Arn?".to_owned(),
        };
        assert_eq!(
            let_through(&policy["PolicyDocument"], "sqs:SendMessage"),
            [consumer, "OperatorRole.Arn".to_owned()]
        );
    }
    // The operator role may redrive, replay and listen on every queue of the stack.
    let operator = &resource(&template, "OperatorPolicy")["Properties"]["PolicyDocument"]["Statement"];
    let queues = &operator[0];
    assert!(queues["Action"].as_sequence().unwrap().contains(&"sqs:SendMessage".into()));
    assert_eq!(queues["Resource"].as_sequence().unwrap().len(), Route::ALL.len() * 2);
    assert_eq!(resource(&template, "OperatorRole")["Properties"]["ManagedPolicyArns"], seq![r#ref("OperatorPolicy")]);
    assert_eq!(template["Outputs"][output::OPERATOR_ROLE_ARN]["Value"], get_att("OperatorRole.Arn"));
}

#[test]
fn only_the_functions_that_need_them_and_the_operator_role_may_read_the_secrets() {
    let template = template();
    let readers = |secret: &str| {
        let policy = resource(&template, &format!("{secret}Policy"));
        assert_eq!(policy["Condition"], resource(&template, secret)["Condition"], "{secret}: exists with it");
        assert_eq!(policy["Properties"]["SecretId"], r#ref(secret));
        assert_eq!(policy["Properties"]["BlockPublicPolicy"], true);
        let_through(&policy["Properties"]["ResourcePolicy"], "secretsmanager:GetSecretValue")
    };
    assert_eq!(readers("WebhookSecret"), ["IngestRole.Arn", "OperatorRole.Arn"]);
    for secret in ["WebhookSecret", "RequiredHeaderSecret", "ForwardSecret"] {
        let overwrite =
            &resource(&template, &format!("{secret}Policy"))["Properties"]["ResourcePolicy"]["Statement"][1];
        assert_eq!(overwrite["Effect"], "Deny");
        let actions = overwrite["Action"].as_sequence().unwrap();
        assert!(actions.contains(&"secretsmanager:PutSecretValue".into()), "{secret}");
        assert_eq!(overwrite["Condition"]["ArnNotEquals"]["aws:PrincipalArn"], seq![get_att("OperatorRole.Arn")]);
        assert_eq!(
            overwrite["Condition"]["ForAllValues:StringNotEquals"]["aws:CalledVia"],
            seq!["cloudformation.amazonaws.com"],
            "stack updates still work"
        );
    }
    assert_eq!(readers("RequiredHeaderSecret"), ["IngestRole.Arn", "OperatorRole.Arn"]);
    let consumers: Vec<String> = EventGroup::ALL
        .iter()
        .map(|&g| format!("{}Role.Arn", consumer(g)))
        .chain(["OperatorRole.Arn".to_owned()])
        .collect();
    assert_eq!(readers("ForwardSecret"), consumers);
}

#[test]
fn the_required_header_value_is_kept_in_secrets_manager_not_in_the_environment() {
    let template = template();
    let variables = &resource(&template, "IngestFunction")["Properties"]["Environment"]["Variables"];
    assert!(variables.get(var::REQUIRED_HEADER_VALUE).is_none());
    let (yes, no) = {
        let branches = under(&variables[var::REQUIRED_HEADER_VALUE_ARN], "If");
        assert_eq!(branches[0], "HasRequiredHeader");
        (branches[1].clone(), branches[2].clone())
    };
    assert_eq!((yes, no), (r#ref("RequiredHeaderSecret"), Value::from("")));
    let secret = &resource(&template, "RequiredHeaderSecret")["Properties"];
    assert_eq!(under(&secret["SecretString"], "If")[1], r#ref("RequiredHeaderValue"), "the value given");
    assert!(under(&secret["GenerateSecretString"], "If")[2].is_mapping(), "or one generated");
    let ingest = statements(&template, "IngestRole");
    let read = ingest.iter().find(|s| s["Sid"] == "ReadTheRequiredHeader").expect("ingest reads it");
    assert_eq!(read["Resource"], r#ref("RequiredHeaderSecret"));
}

#[test]
fn the_checks_of_make_validate_find_an_unguarded_queue_or_secret_and_a_secret_in_the_environment() {
    let mut template = template();
    let resources = template["Resources"].as_mapping_mut().unwrap();
    resources.remove(format!("{}Policy", dlq(Route::Group(EventGroup::Job))));
    resources.remove("ForwardSecretPolicy");
    let ingest = resources.get_mut("IngestFunction").unwrap();
    ingest["Properties"]["Environment"]["Variables"]
        .as_mapping_mut()
        .unwrap()
        .insert(var::REQUIRED_HEADER_VALUE.into(), r#if("HasRequiredHeader", r#ref("RequiredHeaderValue"), "".into()));
    assert_eq!(
        iam_problems_of(&template),
        [
            "template.Resources.JobDeadLetterQueue (not exactly one queue policy denying sqs:SendMessage on it to all but named roles)",
            "template.Resources.ForwardSecret (no resource policy denying secretsmanager:GetSecretValue to all but named roles)",
            "template.Resources.IngestFunction.Environment.CF_REQUIRED_HEADER_VALUE (a NoEcho parameter in the environment: keep it in Secrets Manager)",
        ]
    );
}

#[test]
fn every_function_traces_with_x_ray_and_may_send_its_segments() {
    let template = template();
    assert_eq!(template["Parameters"]["Tracing"]["Default"], "Active");
    assert_eq!(template["Globals"]["Function"]["Tracing"], r#ref("Tracing"));
    let roles: Vec<String> = template["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(name, r)| r["Type"] == "AWS::IAM::Role" && name.as_str() != Some(OPERATOR_ROLE))
        .map(|(name, _)| name.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(roles.len(), 1 + EventGroup::ALL.len() + 1, "ingest, the consumers, the archiver: {roles:?}");
    for role in roles {
        let statements = statements(&template, &role);
        let traces = statements.iter().find(|s| s["Sid"] == "SendTraces").unwrap_or_else(|| panic!("{role}"));
        assert_eq!(traces["Resource"], "*");
        assert_eq!(traces["Action"], seq![XRAY_ACTIONS[0], XRAY_ACTIONS[1]]);
    }
}

#[test]
fn a_development_stack_switches_its_consumers_off_and_outputs_what_cfwh_listen_reads() {
    let template = template();
    assert_eq!(template["Parameters"]["ConsumersEnabled"]["Default"], "true");
    let on = under(&template["Conditions"]["ConsumersOn"], "Equals");
    assert_eq!((&on[0], &on[1]), (&r#ref("ConsumersEnabled"), &Value::from("true")));
    assert_eq!(template["Outputs"][output::CONSUMERS_ENABLED]["Value"], r#ref("ConsumersEnabled"));
    for route in Route::ALL {
        assert_eq!(template["Outputs"][output::queue_url(route).as_str()]["Value"], r#ref(queue(route)));
        assert_eq!(template["Outputs"][output::dead_letter_queue_url(route).as_str()]["Value"], r#ref(dlq(route)));
    }
    // Every consumer reads exactly the shared settings the stack outputs, plus its group.
    let lines = under(&template["Outputs"][output::CONSUMER_ENVIRONMENT]["Value"], "Join");
    assert_eq!(lines[0], "\n");
    let output_settings: Vec<(String, Value)> = lines[1]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|line| {
            let sub = under(line, "Sub");
            let name = sub[0].as_str().unwrap().strip_suffix("=${Setting}").unwrap().to_owned();
            (name, sub[1]["Setting"].clone())
        })
        .collect();
    for group in EventGroup::ALL {
        let function = resource(&template, &format!("{}Function", consumer(group)));
        let source = &function["Properties"]["Events"]["Queue"]["Properties"];
        let enabled = under(&source["Enabled"], "If");
        assert_eq!((&enabled[0], &enabled[1], &enabled[2]), (&"ConsumersOn".into(), &true.into(), &false.into()));
        let variables = function["Properties"]["Environment"]["Variables"].as_mapping().unwrap();
        let own = [var::EVENT_GROUP, var::DLQ_URL, var::QUEUE_URL];
        let shared: Vec<(String, Value)> = variables
            .iter()
            .filter(|(k, _)| !own.contains(&k.as_str().unwrap()))
            .map(|(k, v)| (k.as_str().unwrap().to_owned(), v.clone()))
            .collect();
        assert_eq!(shared, output_settings, "{group}");
    }
}

#[test]
fn floods_raise_alarms_on_ingest_throttles_and_rejections() {
    let template = template();
    let throttles = &resource(&template, "IngestThrottles")["Properties"];
    assert_eq!((&throttles["Namespace"], &throttles["MetricName"]), (&"AWS/Lambda".into(), &"Throttles".into()));
    assert_eq!(throttles["Dimensions"][0]["Value"], r#ref("IngestFunction"));
    let rejections = &resource(&template, "IngestRejections")["Properties"];
    assert_eq!(rejections["Namespace"], metrics::NAMESPACE);
    assert_eq!(rejections["MetricName"], name::REJECTED);
    assert_eq!(rejections["Dimensions"][0]["Name"], metrics::DIMENSION);
    assert_eq!(rejections["Threshold"], r#ref("RejectionsAlarmPerMinute"));
    assert_eq!(rejections["EvaluationPeriods"], 5);
}

/// The statements of a role, with `Fn::If` unwrapped to the branch taken when the
/// destinations are on.
fn statements(template: &Value, role: &str) -> Vec<Value> {
    let list = &resource(template, role)["Properties"]["Policies"][0]["PolicyDocument"]["Statement"];
    list.as_sequence()
        .unwrap()
        .iter()
        .map(|statement| match statement {
            Value::Tagged(t) if t.tag == Tag::new("If") => t.value[1].clone(),
            other => other.clone(),
        })
        .collect()
}

#[test]
fn destinations_keep_least_privilege() {
    let template = template();
    for group in EventGroup::ALL {
        let role = format!("Consume{}Role", camel(group.as_str()));
        let statements = statements(&template, &role);
        let by_sid = |sid: &str| statements.iter().find(|s| s["Sid"] == sid).unwrap_or_else(|| panic!("{role}: {sid}"));
        assert_eq!(by_sid("PutEventsOnTheBus")["Action"], "events:PutEvents");
        assert_eq!(by_sid("PutEventsOnTheBus")["Resource"], event_bus_arn(), "that bus only");
        assert_eq!(by_sid("ReadTheForwardSecret")["Resource"], forward_secret(), "that secret only");
        let archive = by_sid("ArchiveItsOwnFolder");
        assert_eq!(archive["Action"], "s3:PutObject", "write only: no read, list or delete");
        let resource = serde_yaml_ng::to_string(&archive["Resource"]).unwrap();
        assert!(resource.contains(&format!("${{ArchivePrefix}}/{}/*", group.as_str())), "its own folder: {resource}");
        let idempotency = by_sid("IdempotencyOfItsOwnGroup");
        assert!(idempotency["Action"].as_sequence().unwrap().contains(&"dynamodb:UpdateItem".into()), "claims update");
    }
    let unrouted = statements(&template, "ArchiveUnroutedRole");
    assert!(serde_yaml_ng::to_string(&unrouted).unwrap().contains("${ArchivePrefix}/unrouted/*"));
    assert!(!serde_yaml_ng::to_string(&unrouted).unwrap().contains("dynamodb"), "the archiver needs no table");
    assert_eq!(resource(&template, "ArchiveUnroutedFunction")["Condition"], "ArchiveOn");
    assert_eq!(resource(&template, "ExampleRule")["Properties"]["State"], "DISABLED");
    assert_eq!(resource(&template, "ExampleRule")["Properties"]["EventPattern"]["detail-type"][0], "Task completed");
    let bucket = &resource(&template, "ArchiveBucket")["Properties"];
    assert_eq!(bucket["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"], true);
    assert!(bucket["BucketEncryption"].is_mapping());
    assert!(iam_problems().is_empty());
}

#[test]
fn every_group_has_a_consumer_of_the_one_artifact() {
    let template = template();
    assert_eq!(camel("work-unit"), "WorkUnit");
    for group in EventGroup::ALL {
        let function = &resource(&template, &format!("Consume{}Function", camel(group.as_str())))["Properties"];
        assert_eq!(function["CodeUri"], "target/lambda/consume/");
        let variables = &function["Environment"]["Variables"];
        assert_eq!(variables[var::EVENT_GROUP], group.as_str());
        assert_eq!(variables[var::STACK], r#ref("AWS::StackName"));
    }
    assert_eq!(
        resource(&template, "IngestFunction")["Properties"]["Environment"]["Variables"][var::STACK],
        r#ref("AWS::StackName")
    );
}

#[test]
fn the_dashboard_uses_the_stack_dimension_and_destinations_only() {
    let body = resource(&template(), "Dashboard")["Properties"]["DashboardBody"].clone();
    let Value::Tagged(body) = body else { panic!("the body is a !Sub") };
    let body = body.value.as_str().unwrap().to_owned();
    assert!(!body.contains("SEARCH") && !body.contains("EventGroup") && !body.contains("Reason"), "{body}");
    let widgets: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ours: Vec<&serde_json::Value> = widgets["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|w| w["properties"]["metrics"].as_array().unwrap())
        .filter(|m| m[0] == metrics::NAMESPACE)
        .collect();
    let (per_destination, per_stack): (Vec<_>, Vec<_>) =
        ours.into_iter().partition(|m| m.as_array().unwrap().len() == 7);
    assert_eq!(per_stack.len(), name::ALL.len(), "every metric is on the dashboard once");
    for metric in per_stack.iter().chain(&per_destination) {
        assert_eq!((&metric[2], &metric[3]), (&metrics::DIMENSION.into(), &STACK_NAME.into()));
    }
    assert_eq!(per_destination.len(), config::DESTINATION_NAMES.len() * name::PER_DESTINATION.len());
    for metric in per_destination {
        assert_eq!(metric[4], metrics::DESTINATION_DIMENSION, "the one other dimension");
    }
}

#[test]
fn render_is_deterministic_yaml_of_the_template() {
    let text = render();
    assert_eq!(text, render());
    assert!(text.starts_with(HEADER) && text.ends_with('\n'));
    let parsed: Value = serde_yaml_ng::from_str(&text).unwrap();
    assert_eq!(parsed, template());
}

#[test]
fn with_eventbridge_on_a_registry_holds_each_groups_schema_with_the_stacks_source() {
    let template = template();
    let condition = &template["Conditions"]["SchemaRegistryOn"];
    assert_eq!(
        condition,
        &and(vec![r#ref_condition("EventBridgeOn"), equals(r#ref("SchemaRegistryEnabled"), "true")]),
        "only with EventBridge on, and switchable"
    );
    assert_eq!(template["Parameters"]["SchemaRegistryEnabled"]["Default"], "true");
    assert_eq!(resource(&template, "SchemaRegistry")["Condition"], "SchemaRegistryOn");
    for group in EventGroup::ALL {
        let schema = resource(&template, &format!("{}Schema", destinations::schema_stem(group)));
        assert_eq!(schema["Condition"], "SchemaRegistryOn");
        assert_eq!(schema["Properties"]["Type"], "JSONSchemaDraft4");
        assert_eq!(schema["Properties"]["RegistryName"], get_att("SchemaRegistry.RegistryName"));
        let Value::Tagged(content) = &schema["Properties"]["Content"] else { panic!("Content is a !Sub") };
        let text = content.value.as_str().unwrap();
        assert_eq!(text.matches("${").count(), 1, "one substitution, the source: {text}");
        let as_put: serde_json::Value = serde_json::from_str(&text.replace("${EventSource}", "cf.webhooks")).unwrap();
        assert_eq!(as_put, crate::schemas::eventbridge(group, "cf.webhooks"));
    }
    // No function or role is given the registry: it is for people and their tools.
    let text = render();
    assert!(!text.contains("schemas:"), "no IAM action on the registry");
}
