//! SQS: the publisher of ingest, the dead-letter sink of the consumers, and the mapping
//! of received messages to records.

use std::collections::BTreeMap;

use aws_sdk_sqs::types::MessageAttributeValue;
use aws_sdk_sqs::Client;
use sha2::{Digest, Sha256};

use super::describe;
use crate::config::{var, ConfigError};
use crate::consumer::{DeadLetterError, DeadLetterSink, Record};
use crate::events::{EventGroup, Route};
use crate::message::{attr, attribute_text, Message};
use crate::queue::{PublishError, Publisher};

/// The queue URL of every route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueUrls(BTreeMap<Route, String>);

impl QueueUrls {
    /// URLs for every route.
    pub fn new(urls: BTreeMap<Route, String>) -> Result<Self, ConfigError> {
        for route in Route::ALL {
            if !urls.contains_key(&route) {
                return Err(ConfigError { var: "CF_QUEUE_URL_*", problem: format!("no queue URL for {route}") });
            }
        }
        Ok(Self(urls))
    }

    /// Reads `CF_QUEUE_URL_<ROUTE>` for the seven groups and `unrouted`.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut urls = BTreeMap::new();
        for route in Route::ALL {
            let name = var::queue_url(route);
            let url = var(&name).filter(|u| !u.trim().is_empty()).ok_or_else(|| ConfigError {
                var: "CF_QUEUE_URL_*",
                problem: format!("{name} is not set: the URL of the {route} queue"),
            })?;
            urls.insert(route, url.trim().to_owned());
        }
        Self::new(urls)
    }

    /// The URL of a route.
    pub fn get(&self, route: Route) -> &str {
        &self.0[&route]
    }
}

/// Publishes to one SQS queue per route. FIFO queues (URL ending in `.fifo`) get the
/// entity as message group and `PayloadId` as deduplication ID.
#[derive(Debug, Clone)]
pub struct SqsQueues {
    client: Client,
    urls: QueueUrls,
}

impl SqsQueues {
    /// A publisher over `client` (built with the ack path's time budget).
    pub fn new(client: Client, urls: QueueUrls) -> Self {
        Self { client, urls }
    }
}

fn attribute(name: &str, value: String) -> MessageAttributeValue {
    let data_type = if name == attr::RECEIVED_AT { "Number" } else { "String" };
    MessageAttributeValue::builder().data_type(data_type).string_value(value).build().expect("data type is always set")
}

impl Publisher for SqsQueues {
    async fn publish(&self, message: Message) -> Result<(), PublishError> {
        send_to(&self.client, self.urls.get(message.route), message).await
    }
}

/// Sends `message` to the queue at `url` (its route's), with its attributes; a FIFO
/// queue gets the entity as message group and `PayloadId` as deduplication ID.
pub async fn send_to(client: &Client, url: &str, message: Message) -> Result<(), PublishError> {
    let route = message.route;
    let mut request = client.send_message().queue_url(url).message_body(message.body.as_text());
    for (name, value) in message.attributes.pairs(&message.body) {
        request = request.message_attributes(name, attribute(name, value));
    }
    if let Some(trace) = &message.trace_header {
        use aws_sdk_sqs::types::{MessageSystemAttributeNameForSends, MessageSystemAttributeValue};
        let value = MessageSystemAttributeValue::builder().data_type("String").string_value(trace).build();
        if let Ok(value) = value {
            request = request.message_system_attributes(MessageSystemAttributeNameForSends::AwsTraceHeader, value);
        }
    }
    if url.ends_with(".fifo") {
        let dedup = message.dedup_id.clone().unwrap_or_else(|| hex::encode(Sha256::digest(message.body.as_text())));
        request = request
            .message_group_id(message.fifo_group_id.as_deref().unwrap_or(route.as_str()))
            .message_deduplication_id(dedup);
    }
    request.send().await.map_err(|e| PublishError::Backend { route, detail: describe(&e) })?;
    Ok(())
}

/// Sends permanently failed records to one dead-letter queue, with the reason.
#[derive(Debug, Clone)]
pub struct SqsDeadLetters {
    client: Client,
    url: String,
}

impl SqsDeadLetters {
    /// A sink sending to the queue at `url`.
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self { client, url: url.into() }
    }
}

#[async_trait::async_trait]
impl DeadLetterSink for SqsDeadLetters {
    async fn dead_letter(&self, group: EventGroup, record: &Record, reason: &str) -> Result<(), DeadLetterError> {
        let mut request = self.client.send_message().queue_url(&self.url).message_body(&record.body);
        for (name, value) in record.attributes.iter().filter(|(name, _)| name != attr::REASON) {
            request = request.message_attributes(name.as_ref(), attribute(name, value.clone()));
        }
        let reason = attribute_text(reason);
        request = request.message_attributes(attr::REASON, attribute(attr::REASON, reason));
        if self.url.ends_with(".fifo") {
            request = request
                .message_group_id(record.message_group.as_deref().unwrap_or(group.as_str()))
                .message_deduplication_id(hex::encode(Sha256::digest(&record.message_id)));
        }
        request.send().await.map_err(|e| DeadLetterError(super::service_error(&e)))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_url_variables() {
        assert_eq!(var::queue_url(Route::Group(EventGroup::WorkUnit)), "CF_QUEUE_URL_WORK_UNIT");
        assert_eq!(var::queue_url(Route::Unrouted), "CF_QUEUE_URL_UNROUTED");
        let err =
            QueueUrls::from_lookup(|name| (name != "CF_QUEUE_URL_JOB").then(|| "https://q".to_owned())).unwrap_err();
        assert!(err.problem.contains("CF_QUEUE_URL_JOB"), "{err}");
    }
}
