//! `cfwh` against an SQS (and DynamoDB) API: the queues of the pipeline, created when
//! missing, polled the way Lambda's event source mapping polls them, and redriven.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName};
use aws_sdk_sqs::Client;
use cf_webhooks::aws::sqs::QueueUrls;
use cf_webhooks::aws::{describe, loader, Budget};
use cf_webhooks::config::DEFAULT_QUEUE_MAX_MESSAGE_BYTES;
use cf_webhooks::events::Route;
use cf_webhooks::stack::{queue_name, QueueType, DEAD_LETTER_RETENTION_SECS, QUEUE_RETENTION_SECS};

/// The SDK configuration for a local endpoint: the environment's region and credentials
/// when set, otherwise `us-east-1` and placeholder credentials (local servers accept any).
pub async fn local_sdk_config(budget: Budget) -> aws_config::SdkConfig {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    let mut loader = loader(budget);
    if !set("AWS_REGION") && !set("AWS_DEFAULT_REGION") {
        loader = loader.region(aws_config::Region::new("us-east-1"));
    }
    if !set("AWS_ACCESS_KEY_ID") && !set("AWS_PROFILE") {
        loader = loader.credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "cfwh",
            "cfwh",
            None,
            None,
            "cfwh-local",
        ));
    }
    loader.load().await
}

/// The SDK configuration for `endpoint` (a local server: placeholder credentials when
/// none are set), or, when `None`, for AWS (or `AWS_ENDPOINT_URL`) with the whole
/// provider chain.
pub async fn sdk_config(endpoint: Option<&str>, budget: Budget) -> aws_config::SdkConfig {
    let local = endpoint.is_some() || std::env::var_os("AWS_ENDPOINT_URL").is_some_and(|v| !v.is_empty());
    let sdk = if local { local_sdk_config(budget).await } else { loader(budget).load().await };
    match endpoint {
        Some(endpoint) => sdk.into_builder().endpoint_url(endpoint).build(),
        None => sdk,
    }
}

/// An SQS client for `endpoint` (a local server: placeholder credentials when none are
/// set), or, when `None`, for AWS (or `AWS_ENDPOINT_URL`) with the SDK's whole provider
/// chain: your profile, SSO, the environment.
pub async fn sqs_client(endpoint: Option<&str>, budget: Budget) -> Client {
    Client::new(&sdk_config(endpoint, budget).await)
}

/// The source and dead-letter queues of every route.
#[derive(Debug, Clone)]
pub struct Queues {
    /// Source queues.
    pub sources: QueueUrls,
    /// Dead-letter queues.
    pub dead_letters: BTreeMap<Route, String>,
}

/// The attributes that make a queue FIFO with high throughput: deduplication and the
/// throughput limit per message group (the entity), as the template sets them.
pub fn fifo_attributes() -> [(QueueAttributeName, String); 3] {
    [
        (QueueAttributeName::FifoQueue, "true".to_owned()),
        (QueueAttributeName::DeduplicationScope, "messageGroup".to_owned()),
        (QueueAttributeName::FifoThroughputLimit, "perMessageGroupId".to_owned()),
    ]
}

/// Finds or creates the queues of every route: a dead-letter queue, and a source queue
/// redriving to it after `max_receives` receives, with `visibility` as its visibility
/// timeout and SQS's largest message size; FIFO ones with high throughput when
/// `queue_type` says so. Existing queues are used as they are.
pub async fn ensure_queues(
    client: &Client,
    prefix: &str,
    queue_type: QueueType,
    max_receives: u32,
    visibility: Duration,
) -> Result<Queues, String> {
    let mut sources = BTreeMap::new();
    let mut dead_letters = BTreeMap::new();
    let fifo = if queue_type == QueueType::Fifo { fifo_attributes().to_vec() } else { Vec::new() };
    for route in Route::ALL {
        let dlq_name = queue_name(prefix, route, true, queue_type);
        let mut attributes = vec![(QueueAttributeName::MessageRetentionPeriod, DEAD_LETTER_RETENTION_SECS.to_string())];
        attributes.extend(fifo.iter().cloned());
        let dlq = ensure_queue(client, &dlq_name, &attributes).await?;
        let arn = queue_arn(client, &dlq).await?;
        let redrive = serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": max_receives}).to_string();
        let mut attributes = vec![
            (QueueAttributeName::RedrivePolicy, redrive),
            (QueueAttributeName::VisibilityTimeout, visibility.as_secs().max(1).to_string()),
            (QueueAttributeName::MaximumMessageSize, DEFAULT_QUEUE_MAX_MESSAGE_BYTES.to_string()),
            (QueueAttributeName::MessageRetentionPeriod, QUEUE_RETENTION_SECS.to_string()),
        ];
        attributes.extend(fifo.iter().cloned());
        let source = ensure_queue(client, &queue_name(prefix, route, false, queue_type), &attributes).await?;
        sources.insert(route, source);
        dead_letters.insert(route, dlq);
    }
    Ok(Queues { sources: QueueUrls::new(sources).map_err(|e| e.to_string())?, dead_letters })
}

async fn ensure_queue(
    client: &Client,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> Result<String, String> {
    if let Ok(found) = client.get_queue_url().queue_name(name).send().await {
        if let Some(url) = found.queue_url() {
            return Ok(url.to_owned());
        }
    }
    let mut create = client.create_queue().queue_name(name);
    for (key, value) in attributes {
        create = create.attributes(key.clone(), value);
    }
    let created = create.send().await.map_err(|e| format!("creating {name}: {}", describe(&e)))?;
    created.queue_url().map(str::to_owned).ok_or_else(|| format!("creating {name}: no queue URL"))
}

/// The URL of a stack's queue of `route`. With `queue_type` unknown (`None`), the FIFO
/// and the standard names are both looked up: one must exist, and both existing (a stack
/// half-way through moving to FIFO) asks for `--queue-type`.
pub async fn find_queue(
    client: &Client,
    prefix: &str,
    route: Route,
    dead_letter: bool,
    queue_type: Option<QueueType>,
) -> Result<String, String> {
    let lookup = |queue_type| {
        let name = queue_name(prefix, route, dead_letter, queue_type);
        async move {
            match client.get_queue_url().queue_name(&name).send().await {
                Ok(found) => Ok(found.queue_url().map(str::to_owned)),
                Err(e) if e.as_service_error().is_some_and(|e| e.is_queue_does_not_exist()) => Ok(None),
                Err(e) => Err(format!("{name}: {}", describe(&e))),
            }
        }
    };
    let types = queue_type.map_or(QueueType::ALL.to_vec(), |t| vec![t]);
    let mut found = Vec::new();
    for queue_type in &types {
        if let Some(url) = lookup(*queue_type).await? {
            found.push(url);
        }
    }
    let names = || types.iter().map(|t| queue_name(prefix, route, dead_letter, *t)).collect::<Vec<_>>().join(" or ");
    match found.len() {
        0 => Err(format!("no queue named {}", names())),
        1 => Ok(found.remove(0)),
        _ => Err(format!(
            "both {} exist (a stack moving to FIFO): say which with --queue-type",
            names().replace(" or ", " and ")
        )),
    }
}

/// The ARN of the queue at `url`.
pub async fn queue_arn(client: &Client, url: &str) -> Result<String, String> {
    client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| format!("{url}: {}", describe(&e)))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| format!("{url}: no QueueArn"))
}

/// Messages a queue still holds: visible, in flight and delayed.
pub async fn depth(client: &Client, url: &str) -> Result<u64, String> {
    let out = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    Ok(out.attributes().map_or(0, |a| a.values().filter_map(|v| v.parse::<u64>().ok()).sum()))
}

/// Receives up to `max` messages with long polling (`wait`, whole seconds).
pub async fn receive(
    client: &Client,
    url: &str,
    max: i32,
    wait: Duration,
) -> Result<Vec<aws_sdk_sqs::types::Message>, String> {
    let out = client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(max.clamp(1, 10))
        .wait_time_seconds(wait.as_secs().min(20) as i32)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
        .message_system_attribute_names(MessageSystemAttributeName::AwsTraceHeader)
        .message_attribute_names("All")
        .send()
        .await
        .map_err(|e| describe(&e))?;
    Ok(out.messages().to_vec())
}

/// Hides a received message for `timeout` from now (at most SQS's 12 hours).
pub async fn set_visibility(client: &Client, url: &str, receipt: &str, timeout: Duration) -> Result<(), String> {
    let seconds = i32::try_from(timeout.as_secs().min(12 * 3600)).unwrap_or(12 * 3600);
    client
        .change_message_visibility()
        .queue_url(url)
        .receipt_handle(receipt)
        .visibility_timeout(seconds)
        .send()
        .await
        .map(drop)
        .map_err(|e| describe(&e))
}

/// Deletes messages by receipt handle, in batches of ten.
pub async fn delete(client: &Client, url: &str, receipts: &[String]) -> Result<(), String> {
    for chunk in receipts.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, receipt)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .build()
                    .expect("id and handle set")
            })
            .collect();
        let out = client
            .delete_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| describe(&e))?;
        if let Some(failed) = out.failed().first() {
            return Err(format!("delete failed: {}", failed.message().unwrap_or(failed.code())));
        }
    }
    Ok(())
}
