//! A queue message as the runner sees it, and the one mapping to it from each place
//! messages come from: an SQS event delivered by Lambda, an SQS receive (`cfwh dev` over
//! SQS), and the in-memory queues (`Record::new` from the published message).

use crate::message::attr;
use std::borrow::Cow;

/// One queue message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The queue's message ID.
    pub message_id: String,
    /// The message body: the delivery's JSON, or base64 of it.
    pub body: String,
    /// How often the message has been received, this time included.
    pub receive_count: u32,
    /// The message attributes as text, kept when the record is dead-lettered.
    pub attributes: Vec<(Cow<'static, str>, String)>,
    /// The SQS receipt handle, when the record came from SQS: a `Retry-After` moves the
    /// message's visibility with it.
    pub receipt_handle: Option<String>,
    /// The FIFO message group (the entity), when the record came from a FIFO queue: the
    /// records of one group in a batch run one after the other, in order.
    pub message_group: Option<String>,
    /// The X-Ray trace header the delivery was accepted in (`AWSTraceHeader`).
    pub trace_header: Option<String>,
}

impl Record {
    /// A record of `body` with its string `attributes`.
    pub fn new(
        message_id: impl Into<String>,
        body: impl Into<String>,
        receive_count: u32,
        attributes: impl IntoIterator<Item = (impl Into<Cow<'static, str>>, String)>,
    ) -> Self {
        Self {
            message_id: message_id.into(),
            body: body.into(),
            receive_count,
            attributes: attributes.into_iter().map(|(name, value)| (name.into(), value)).collect(),
            receipt_handle: None,
            message_group: None,
            trace_header: None,
        }
    }

    /// The X-Ray trace ID (`1-…`) of its trace header, when it has a valid one.
    pub fn trace_id(&self) -> Option<String> {
        self.trace_header.as_deref().and_then(crate::xray::root_of).map(str::to_owned)
    }

    /// The value of an attribute.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// `Some("base64")` when the body is encoded.
    pub fn body_encoding(&self) -> Option<&str> {
        self.attribute(attr::BODY_ENCODING)
    }

    /// The bytes Creative Force sent: the body, decoded when it travels as base64.
    pub fn body_bytes(&self) -> Result<Vec<u8>, Unreadable> {
        use base64::Engine as _;
        match self.body_encoding() {
            None | Some("") => Ok(self.body.as_bytes().to_vec()),
            Some("base64") => base64::engine::general_purpose::STANDARD
                .decode(&self.body)
                .map_err(|e| Unreadable(format!("body marked base64 is not: {e}"))),
            Some(other) => Err(Unreadable(format!("unknown body encoding {other:?}"))),
        }
    }

    /// What its attributes say of the delivery's reception, for the archive.
    pub fn reception(&self) -> crate::archive::Reception<'_> {
        crate::archive::Reception {
            received_at: self.attribute(attr::RECEIVED_AT),
            action: self.attribute(attr::ACTION),
            signature: self.attribute(attr::SIGNATURE),
            reason: self.attribute(attr::REASON),
        }
    }
}

/// SQS's `ApproximateReceiveCount`; missing or unreadable, the first delivery.
#[cfg(any(feature = "lambda", feature = "sqs"))]
fn sqs_receive_count(text: Option<&String>) -> u32 {
    text.and_then(|c| c.trim().parse().ok()).unwrap_or(1)
}

/// An SQS message of the event Lambda hands a consumer.
#[cfg(feature = "lambda")]
impl From<aws_lambda_events::sqs::SqsMessage> for Record {
    fn from(message: aws_lambda_events::sqs::SqsMessage) -> Self {
        let receive_count = sqs_receive_count(message.attributes.get("ApproximateReceiveCount"));
        let attributes =
            message.message_attributes.into_iter().filter_map(|(name, value)| Some((name, value.string_value?)));
        let mut record = Record::new(
            message.message_id.unwrap_or_default(),
            message.body.unwrap_or_default(),
            receive_count,
            attributes,
        );
        record.receipt_handle = message.receipt_handle;
        record.message_group = message.attributes.get("MessageGroupId").cloned();
        record.trace_header = message.attributes.get(crate::xray::AWS_TRACE_HEADER).cloned();
        record
    }
}

/// An SQS message received with the SQS API (`cfwh dev` over SQS).
#[cfg(feature = "sqs")]
impl From<&aws_sdk_sqs::types::Message> for Record {
    fn from(message: &aws_sdk_sqs::types::Message) -> Self {
        use aws_sdk_sqs::types::MessageSystemAttributeName;
        let receive_count =
            message.attributes().and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount));
        let receive_count = sqs_receive_count(receive_count);
        let attributes = message
            .message_attributes()
            .into_iter()
            .flatten()
            .filter_map(|(name, value)| Some((name.clone(), value.string_value()?.to_owned())));
        let mut record = Record::new(
            message.message_id().unwrap_or_default(),
            message.body().unwrap_or_default(),
            receive_count,
            attributes,
        );
        record.receipt_handle = message.receipt_handle().map(str::to_owned);
        record.message_group = message
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId))
            .cloned();
        record.trace_header =
            message.attributes().and_then(|a| a.get(&MessageSystemAttributeName::AwsTraceHeader)).cloned();
        record
    }
}

/// A message whose body is not what ingest sends (marked base64 and not base64, an
/// encoding this version does not know): it will never be readable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unreadable(pub String);
