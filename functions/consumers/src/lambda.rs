//! The Lambda glue of every consumer: SQS event in, `batchItemFailures` out.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use cf_webhooks::aws::dynamodb::DynamoStore;
use cf_webhooks::aws::sqs::SqsDeadLetters;
use cf_webhooks::aws::{sdk_config, Budget};
use cf_webhooks::config::ConsumerConfig;
use cf_webhooks::consumer::{DeadLetterSink, Handler, IdempotencyStore, Record, Runner};
use cf_webhooks::queue::message::attr;
use lambda_runtime::{service_fn, LambdaEvent};

/// The runner's view of an SQS message.
pub fn record(message: SqsMessage) -> Record {
    let receive_count = message.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse().ok()).unwrap_or(1);
    let attributes: Vec<(String, String)> = message
        .message_attributes
        .into_iter()
        .filter_map(|(name, value)| value.string_value.map(|v| (name, v)))
        .collect();
    let body_encoding = attributes.iter().find(|(name, _)| name == attr::BODY_ENCODING).map(|(_, v)| v.clone());
    Record {
        message_id: message.message_id.unwrap_or_default(),
        body: message.body.unwrap_or_default(),
        body_encoding,
        receive_count,
        attributes,
    }
}

/// How long before the function's own timeout a still-running handler is stopped, so
/// that the batch answer (and the records already done) is not lost with it.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(1500);

/// Runs one SQS batch and answers the records to retry. With `deadline_ms` (the
/// invocation's deadline, ms since the Unix epoch) handlers are stopped
/// [`DEADLINE_MARGIN`] before it.
pub async fn handle_batch<H: Handler, S: IdempotencyStore, D: DeadLetterSink>(
    runner: &Runner<H, S, D>,
    event: SqsEvent,
    deadline_ms: Option<u64>,
) -> SqsBatchResponse {
    let records: Vec<Record> = event.records.into_iter().map(record).collect();
    let deadline = deadline_ms.map(|deadline| {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let left = Duration::from_millis(deadline).saturating_sub(now).saturating_sub(DEADLINE_MARGIN);
        tokio::time::Instant::now() + left
    });
    let report = runner.run_until(&records, deadline).await;
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = report
        .failures()
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id.to_owned();
            failure
        })
        .collect();
    response
}

/// The `main` of a consumer binary: reads the configuration, builds the DynamoDB store
/// and the dead-letter sink once, then serves batches.
pub async fn run<H: Handler + 'static>(handler: H) -> Result<(), lambda_runtime::Error> {
    cf_webhooks::logging::init_json();
    let config = ConsumerConfig::from_env().inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let sdk = sdk_config(Budget::consumer()).await;
    let store =
        DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &config.idempotency_table, config.lease, config.ttl);
    let dead_letters = SqsDeadLetters::new(aws_sdk_sqs::Client::new(&sdk), &config.dlq_url);
    let runner = Runner::new(handler, store, dead_letters).with_metrics(config.metrics);
    let runner = &runner;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = event.context.deadline;
        Ok::<_, std::convert::Infallible>(handle_batch(runner, event.payload, Some(deadline)).await)
    }))
    .await
}
