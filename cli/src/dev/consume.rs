//! The consume loops of `cfwh dev`, one per group and backend, as Lambda's event source
//! mapping runs them: batches, delete on success, hide what must come back later,
//! dead-letter after `max_receives`.

use std::sync::Arc;
use std::time::Duration;

use cf_webhooks::consumer::{Consume, Outcome, Record, RecordReport};
use cf_webhooks::events::Route;
use cf_webhooks::queue::memory::{MemoryQueues, Released};
use tokio::sync::watch;

use super::{DevOptions, LineSink};
use crate::aws::{delete, receive};

/// Archives what lands in the in-memory `unrouted` queue, the way the deployed
/// `unrouted` consumer does; a record not archived is retried after the retry delay.
pub async fn archive_unrouted_memory(
    queues: Arc<MemoryQueues>,
    archive: cf_webhooks::archive::Archive,
    options: DevOptions,
    mut stop: watch::Receiver<bool>,
) {
    let route = Route::Unrouted;
    loop {
        let batch = tokio::select! {
            batch = queues.receive(route, options.batch_size, Duration::from_millis(500)) => batch,
            _ = stop.changed() => Vec::new(),
        };
        if batch.is_empty() {
            if *stop.borrow() && queues.pending(route) == 0 {
                return;
            }
            continue;
        }
        let records: Vec<Record> = batch.iter().map(|received| received.record()).collect();
        let results = cf_webhooks::consumer::archive_unrouted(&archive, &records, options.records_in_flight).await;
        for (received, (_, result)) in batch.into_iter().zip(results) {
            match result {
                Ok(_) => queues.delete(route, &received),
                Err(e) => {
                    queues.release(route, received, options.retry_delay, &e.to_string());
                }
            }
        }
    }
}

/// Writes the line of a record given up after its last delivery, after `line`, the last
/// failure's.
fn dead_lettered_line(line: RecordReport, out: &mut String, options: &DevOptions) {
    let mut dead = line.clone();
    push_line(out, line, options);
    let reason = format!("failed {} times; last error: {}", dead.attempt, dead.reason.as_deref().unwrap_or_default());
    dead.outcome = Outcome::DeadLettered { reason: reason.clone() };
    dead.reason = Some(reason);
    push_line(out, dead, options);
}

/// Writes a record line to `out` and hands it to the inspector, if on.
fn push_line(out: &mut String, line: RecordReport, options: &DevOptions) {
    out.push_str(&line.to_json_line());
    out.push('\n');
    if let Some(inspector) = &options.inspector {
        inspector.record(line);
    }
}

/// Consumes one group's in-memory queue the way Lambda's event source mapping does:
/// batches, delete on success, redeliver failures after the retry delay, dead-letter
/// after `max_receives`. Stops once `stop` is set and the queue is empty.
pub async fn consume(
    queues: Arc<MemoryQueues>,
    runner: Arc<dyn Consume>,
    options: DevOptions,
    lines: LineSink,
    mut stop: watch::Receiver<bool>,
) {
    let route = Route::Group(runner.group());
    loop {
        let mut batch = tokio::select! {
            batch = queues.receive(route, options.batch_size, Duration::from_millis(500)) => batch,
            _ = stop.changed() => Vec::new(),
        };
        if !batch.is_empty() && batch.len() < options.batch_size && !options.batch_window.is_zero() {
            // Under load, one wake-up per batch rather than per message.
            tokio::time::sleep(options.batch_window).await;
            batch.extend(queues.receive(route, options.batch_size - batch.len(), Duration::ZERO).await);
        }
        if batch.is_empty() {
            if *stop.borrow() && queues.idle(route) {
                return;
            }
            continue;
        }
        let records: Vec<Record> = batch.iter().map(|received| received.record()).collect();
        let report = runner.run_until(&records, Some(tokio::time::Instant::now() + options.handler_timeout)).await;
        let mut out = String::with_capacity(400 * batch.len());
        for (received, line) in batch.into_iter().zip(report.records) {
            if !line.retry() {
                queues.delete(route, &received);
                push_line(&mut out, line, &options);
                continue;
            }
            let reason = line.reason.as_deref().unwrap_or_default();
            // As the record asked: a claim still held, a Retry-After.
            let delay = line.outcome.hide_for(options.retry_delay).unwrap_or(options.retry_delay);
            let released = if matches!(line.outcome, Outcome::Waiting { .. }) {
                queues.release_waiting(route, received, delay, reason)
            } else {
                queues.release(route, received, delay, reason)
            };
            match released {
                Released::DeadLettered => dead_lettered_line(line, &mut out, &options),
                Released::Requeued => push_line(&mut out, line, &options),
            }
        }
        lines(out);
    }
}

/// Consumes one group's SQS queue the way Lambda's event source mapping does: long
/// polling, batches of up to `batch_size`, delete what succeeded, leave failures to the
/// visibility timeout (the redrive policy moves them after `max_receives`). Stops when
/// `stop` is set.
pub async fn consume_sqs(
    client: aws_sdk_sqs::Client,
    url: String,
    runner: Arc<dyn Consume>,
    options: DevOptions,
    lines: LineSink,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let batch = tokio::select! {
            batch = receive(&client, &url, options.batch_size as i32, Duration::from_secs(1)) => batch,
            _ = stop.changed() => continue,
        };
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(queue = %url, error = %e, "receive failed; polling again in a second");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if batch.is_empty() {
            continue;
        }
        let records: Vec<Record> = batch.iter().map(Record::from).collect();
        let report = runner.run_until(&records, Some(tokio::time::Instant::now() + options.handler_timeout)).await;
        let mut done = Vec::new();
        let mut out = String::with_capacity(400 * batch.len());
        for (message, line) in batch.iter().zip(report.records) {
            if !line.retry() {
                done.extend(message.receipt_handle().map(str::to_owned));
                push_line(&mut out, line, &options);
                continue;
            }
            // Hidden as the record asked (a claim still held, a Retry-After), as the Lambda
            // does; otherwise the queue's visibility timeout applies.
            if let (Some(after), Some(receipt)) = (line.outcome.hide_for(options.retry_delay), message.receipt_handle())
            {
                if let Err(e) = crate::aws::set_visibility(&client, &url, receipt, after).await {
                    tracing::warn!(queue = %url, error = %e, "the record returns at the queue's visibility timeout");
                }
            }
            if line.attempt >= options.max_receives {
                // The redrive policy moves it to the dead-letter queue at its next receive.
                dead_lettered_line(line, &mut out, &options);
            } else {
                push_line(&mut out, line, &options);
            }
        }
        lines(out);
        if let Err(e) = delete(&client, &url, &done).await {
            tracing::warn!(queue = %url, error = %e, "delete failed; the messages will be delivered again");
        }
    }
}
