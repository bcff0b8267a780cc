//! The IAM lint `make validate` runs over the template: no wildcard grants, DynamoDB kept
//! to each group's keys, every queue and secret behind a deny-all-but policy.

use super::*;

/// What `make validate` refuses in the template's access control, each named by its path:
/// - an Allow of a wildcard action (`sqs:*`) or of every resource (`*`), but for X-Ray's
///   two actions, which have no resource-level permissions: denies may be broad;
/// - a DynamoDB grant without `dynamodb:LeadingKeys` (a consumer's table access is kept
///   to its own group's keys);
/// - a queue without a policy denying `sqs:SendMessage` to every principal but those
///   named, a secret without a resource policy denying `secretsmanager:GetSecretValue`
///   likewise;
/// - a function environment variable holding a `NoEcho` parameter: it belongs in
///   Secrets Manager.
pub fn iam_problems() -> Vec<String> {
    iam_problems_of(&template())
}

pub(super) fn iam_problems_of(template: &Value) -> Vec<String> {
    let mut found = Vec::new();
    find_wildcard_grants(template, "template".to_owned(), &mut found);
    found.extend(resource_policy_problems(template));
    found
}

/// The statement of a resource policy that denies `action` on `resource` to all but named
/// principals, and to nothing narrower.
pub(super) fn denies_all_but_named(document: &Value, action: &str, resource: &Value) -> bool {
    document["Statement"].as_sequence().is_some_and(|statements| {
        statements.iter().any(|s| {
            let conditions = s["Condition"].as_mapping().map_or(0, Mapping::len);
            s["Effect"] == "Deny"
                && s["Principal"] == "*"
                && s["Action"] == action
                && s["Resource"] == *resource
                && conditions == 2
                && s["Condition"]["Null"]["aws:PrincipalArn"] == "false"
                && s["Condition"]["ArnNotEquals"]["aws:PrincipalArn"].as_sequence().is_some_and(|p| !p.is_empty())
        })
    })
}

pub(super) fn resource_policy_problems(template: &Value) -> Vec<String> {
    let Some(resources) = template["Resources"].as_mapping() else { return vec!["template: no Resources".to_owned()] };
    let of_type = |kind: &'static str| {
        resources.iter().filter(move |(_, r)| r["Type"] == kind).map(|(name, r)| (name.as_str().unwrap_or_default(), r))
    };
    let mut found = Vec::new();
    for (queue, _) in of_type("AWS::SQS::Queue") {
        let policies: Vec<_> = of_type("AWS::SQS::QueuePolicy")
            .filter(|(_, policy)| {
                policy["Properties"]["Queues"].as_sequence().is_some_and(|q| q.contains(&r#ref(queue)))
            })
            .collect();
        let arn = get_att(format!("{queue}.Arn"));
        let guarded = policies.len() == 1
            && denies_all_but_named(&policies[0].1["Properties"]["PolicyDocument"], "sqs:SendMessage", &arn);
        if !guarded {
            found.push(format!(
                "template.Resources.{queue} (not exactly one queue policy denying sqs:SendMessage on it to all but named roles)"
            ));
        }
    }
    for (secret, resource) in of_type("AWS::SecretsManager::Secret") {
        let guarded = of_type("AWS::SecretsManager::ResourcePolicy").any(|(_, policy)| {
            policy["Properties"]["SecretId"] == r#ref(secret)
                && policy["Condition"] == resource["Condition"]
                && denies_all_but_named(
                    &policy["Properties"]["ResourcePolicy"],
                    "secretsmanager:GetSecretValue",
                    &"*".into(),
                )
        });
        if !guarded {
            found.push(format!(
                "template.Resources.{secret} (no resource policy denying secretsmanager:GetSecretValue to all but named roles)"
            ));
        }
    }
    let hidden: Vec<&str> = template["Parameters"]
        .as_mapping()
        .into_iter()
        .flatten()
        .filter(|(_, p)| p["NoEcho"] == true)
        .filter_map(|(name, _)| name.as_str())
        .collect();
    for (function, resource) in of_type("AWS::Serverless::Function") {
        for (variable, value) in resource["Properties"]["Environment"]["Variables"].as_mapping().into_iter().flatten() {
            let text = serde_yaml_ng::to_string(value).unwrap_or_default();
            if hidden.iter().any(|h| text.contains(&format!("!Ref {h}\n")) || text.contains(&format!("${{{h}}}"))) {
                found.push(format!(
                    "template.Resources.{function}.Environment.{} (a NoEcho parameter in the environment: keep it in Secrets Manager)",
                    variable.as_str().unwrap_or_default()
                ));
            }
        }
    }
    found
}

pub(super) fn find_wildcard_grants(node: &Value, path: String, found: &mut Vec<String>) {
    let one_or_many = |value: Option<&Value>| match value {
        Some(Value::Sequence(items)) => items.clone(),
        Some(value) => vec![value.clone()],
        None => Vec::new(),
    };
    match node {
        Value::Mapping(mapping) => {
            // A Deny may be broad (TLS only, everywhere); an Allow may not.
            let allows = mapping.get("Effect").and_then(Value::as_str) == Some("Allow");
            if allows && mapping.contains_key("Action") {
                let broad_action =
                    one_or_many(mapping.get("Action")).iter().any(|a| a.as_str().is_some_and(|a| a.ends_with('*')));
                let actions = one_or_many(mapping.get("Action"));
                let only_xray = !actions.is_empty()
                    && actions.iter().all(|a| a.as_str().is_some_and(|a| XRAY_ACTIONS.contains(&a)));
                let every_resource =
                    !only_xray && one_or_many(mapping.get("Resource")).iter().any(|r| r.as_str() == Some("*"));
                if broad_action || every_resource {
                    found.push(path.clone());
                }
                // A consumer's table access is kept to its own group's keys.
                let table = one_or_many(mapping.get("Action"))
                    .iter()
                    .any(|a| a.as_str().is_some_and(|a| a.starts_with("dynamodb:")));
                let leading_keys = mapping
                    .get("Condition")
                    .and_then(|c| c.get("ForAllValues:StringLike"))
                    .and_then(|c| c.get("dynamodb:LeadingKeys"))
                    .is_some();
                if table && !leading_keys {
                    found.push(format!("{path} (DynamoDB without dynamodb:LeadingKeys)"));
                }
            }
            for (key, value) in mapping {
                find_wildcard_grants(value, format!("{path}.{}", key.as_str().unwrap_or_default()), found);
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                find_wildcard_grants(item, format!("{path}[{i}]"), found);
            }
        }
        Value::Tagged(tagged) => find_wildcard_grants(&tagged.value, path, found),
        _ => {}
    }
}
