//! The Lambda glue of every consumer: SQS event in, `batchItemFailures` out.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use cf_webhooks::aws::dynamodb::DynamoStore;
use cf_webhooks::aws::sqs::SqsDeadLetters;
use cf_webhooks::aws::{lambda_sdk_config, Budget};
use cf_webhooks::config::ConsumerConfig;
use cf_webhooks::consumer::{Consume, Record};
use cf_webhooks::metrics::Emf;
use lambda_runtime::{service_fn, LambdaEvent};

/// How long before the function's own timeout a still-running handler is stopped, so
/// that the batch answer (and the records already done) is not lost with it.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(1500);

/// Runs one SQS batch and answers the records to retry. With `deadline_ms` (the
/// invocation's deadline, ms since the Unix epoch) handlers are stopped
/// [`DEADLINE_MARGIN`] before it. With `metrics`, one EMF line counts the outcomes.
pub async fn handle_batch(
    runner: &dyn Consume,
    event: SqsEvent,
    deadline_ms: Option<u64>,
    metrics: Option<&Emf>,
) -> SqsBatchResponse {
    let records: Vec<Record> = event.records.into_iter().map(Record::from).collect();
    let deadline = deadline_ms.map(|deadline| {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let left = Duration::from_millis(deadline).saturating_sub(now).saturating_sub(DEADLINE_MARGIN);
        tokio::time::Instant::now() + left
    });
    let report = runner.run_until(&records, deadline).await;
    if let Some(line) = metrics.and_then(|emf| emf.batch(runner.group(), &report)) {
        println!("{line}");
    }
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

/// The `main` of the consumer bootstrap: reads the configuration (the group among it),
/// builds the DynamoDB store, the dead-letter sink and the group's runner once, then
/// serves batches.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    cf_webhooks::logging::init_json();
    let (config, metrics, sdk) = ConsumerConfig::from_env()
        .and_then(|config| Ok((config, Emf::from_env()?, lambda_sdk_config(Budget::consumer())?)))
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let store =
        DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &config.idempotency_table, config.lease, config.ttl);
    let dead_letters = SqsDeadLetters::new(aws_sdk_sqs::Client::new(&sdk), &config.dlq_url);
    let runner = crate::runner(config.group, store, dead_letters);
    let (runner, metrics) = (&*runner, metrics.as_ref());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = event.context.deadline;
        Ok::<_, std::convert::Infallible>(handle_batch(runner, event.payload, Some(deadline), metrics).await)
    }))
    .await
}
