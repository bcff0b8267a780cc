//! The Lambda glue of every consumer: SQS event in, `batchItemFailures` out.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use cf_webhooks::archive::Archive;
use cf_webhooks::consumer::{archive_unrouted, Consume, Outcome, Record};
use cf_webhooks::events::Route;
use cf_webhooks::metrics::Emf;
use cf_webhooks::xray::{Daemon, Segment, TraceHeader};

/// How long before the function's own timeout the batch's answer is due, so that it (and
/// the records already done) is not lost with the invocation. The runner stops handlers
/// and destinations [`SETTLE_MARGIN`](cf_webhooks::consumer::SETTLE_MARGIN) earlier still,
/// so that the writes settling each record fit: 1.5 s before the timeout in all.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(500);

/// What a consumer function does with a batch beyond the runner: metrics, and moving a
/// message's visibility when its record asked to be delivered again at another time.
#[derive(Debug, Default)]
pub struct Host {
    /// One EMF line per batch (and per destination reached), when on.
    pub metrics: Option<Emf>,
    /// The queue read, to hide a record for the time it asked with
    /// `ChangeMessageVisibility`.
    pub visibility: Option<Visibility>,
    /// With active tracing: the X-Ray daemon each record's segment goes to, and the
    /// function's name, the segments' name.
    pub xray: Option<(Daemon, String)>,
}

/// The queue a consumer reads, and its own visibility timeout when a destination may
/// answer `Retry-After`.
///
/// - A copy waiting on another's claim is hidden for exactly its wait, shorter or longer
///   than the queue's timeout: short waits answer it soon after the holder settles.
/// - A `Retry-After` (capped at 15 minutes) may only lengthen the wait, never shorten it,
///   or a busy endpoint answering `Retry-After: 1` would use up a message's receives in
///   seconds.
#[derive(Debug, Clone)]
pub struct Visibility {
    pub client: aws_sdk_sqs::Client,
    pub queue_url: String,
    /// Its visibility timeout, read at start-up when a destination may ask for more.
    pub queue_timeout: Option<Duration>,
}

impl Visibility {
    /// The queue at `queue_url`; with `retry_after`, its visibility timeout is read too
    /// (`None` for it, with a warning, when it cannot be: `Retry-After` is then not
    /// honoured).
    pub async fn of(client: aws_sdk_sqs::Client, queue_url: String, retry_after: bool) -> Self {
        use aws_sdk_sqs::types::QueueAttributeName;
        if !retry_after {
            return Self { client, queue_url, queue_timeout: None };
        }
        let read = client
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::VisibilityTimeout)
            .send()
            .await;
        let seconds = match read {
            Ok(found) => found
                .attributes()
                .and_then(|a| a.get(&QueueAttributeName::VisibilityTimeout))
                .and_then(|v| v.parse::<u64>().ok()),
            Err(e) => {
                tracing::warn!(error = %cf_webhooks::aws::describe(&e), "cannot read the queue's visibility timeout; Retry-After is not honoured");
                None
            }
        };
        Self { client, queue_url, queue_timeout: seconds.map(Duration::from_secs) }
    }

    /// How long to hide a record that ended so, when not the queue's own timeout
    /// ([`Outcome::hide_for`]); a `Retry-After` is honoured only when that timeout is known.
    pub fn hide_for(&self, outcome: &Outcome) -> Option<Duration> {
        outcome.hide_for(self.queue_timeout.unwrap_or(Duration::MAX))
    }
}

/// Runs one SQS batch and answers the records to retry. With `deadline_ms` (the
/// invocation's deadline, ms since the Unix epoch) the answer is due [`DEADLINE_MARGIN`]
/// before it.
pub async fn handle_batch(
    runner: &dyn Consume,
    event: SqsEvent,
    deadline_ms: Option<u64>,
    host: &Host,
) -> SqsBatchResponse {
    let records: Vec<Record> = event.records.into_iter().map(Record::from).collect();
    let deadline = deadline_ms.and_then(|deadline| batch_deadline(deadline, SystemTime::now()));
    let started = cf_webhooks::xray::now_seconds();
    let report = runner.run_until(&records, deadline).await;
    if let Some((daemon, name)) = &host.xray {
        trace_records(daemon, name, &records, &report.records, started);
    }
    if let Some(emf) = &host.metrics {
        for line in emf.batch(runner.group(), &report).into_iter().chain(emf.destinations(runner.group(), &report)) {
            println!("{line}");
        }
    }
    if let Some(visibility) = &host.visibility {
        let Visibility { client, queue_url, .. } = visibility;
        let later = report
            .records
            .iter()
            .zip(&records)
            .filter_map(|(r, record)| Some((record.receipt_handle.as_deref()?, visibility.hide_for(&r.outcome)?)));
        let moves: Vec<_> = later.map(|(handle, after)| async move {
            let seconds = i32::try_from(after.as_secs()).unwrap_or(i32::MAX);
            let moved = client
                .change_message_visibility()
                .queue_url(queue_url)
                .receipt_handle(handle)
                .visibility_timeout(seconds)
                .send()
                .await;
            if let Err(e) = moved {
                // The queue's own visibility timeout applies instead.
                tracing::warn!(error = %cf_webhooks::aws::describe(&e), seconds, "could not change the record's visibility");
            }
        }).collect();
        use futures_util::StreamExt as _;
        futures_util::stream::iter(moves).buffer_unordered(runner.records_in_flight()).for_each(|()| async {}).await;
    }
    failures(report.failures())
}

/// Sends one segment per record that came with a sampled trace: a child of the segment
/// that queued it (ingest's), in the same trace, annotated with what the record was and
/// how it ended. The records of a batch run up to `CF_RECORDS_IN_FLIGHT` at once: each
/// segment spans the batch.
pub fn trace_records(
    daemon: &Daemon,
    name: &str,
    records: &[Record],
    reports: &[cf_webhooks::consumer::RecordReport],
    started: f64,
) {
    let ended = cf_webhooks::xray::now_seconds();
    for (record, report) in records.iter().zip(reports) {
        let Some(trace) = record.trace_header.as_deref().and_then(TraceHeader::parse) else { continue };
        let mut annotations = vec![
            ("event_group", report.event_group.as_str().to_owned()),
            ("outcome", report.outcome.word().to_owned()),
        ];
        annotations.extend(report.action.clone().map(|a| ("action", a)));
        annotations.extend(report.payload_id.clone().map(|p| ("payload_id", p)));
        let failed = matches!(report.outcome, Outcome::Failed { .. } | Outcome::DeadLettered { .. });
        daemon.send(&Segment { name, trace: &trace, start: started, end: ended, annotations, failed });
    }
}

/// When the batch must be answered: [`DEADLINE_MARGIN`] before the invocation's deadline.
/// A deadline already past at the start (a runtime emulator's placeholder, a clock that
/// is off) is no deadline: the function's own timeout still bounds the invocation.
pub fn batch_deadline(deadline_ms: u64, now: SystemTime) -> Option<tokio::time::Instant> {
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let deadline = Duration::from_millis(deadline_ms);
    if deadline <= now {
        tracing::debug!(deadline_ms, "the invocation's deadline is already past: running without one");
        return None;
    }
    Some(tokio::time::Instant::now() + deadline.saturating_sub(now).saturating_sub(DEADLINE_MARGIN))
}

fn failures<'a>(ids: impl IntoIterator<Item = &'a str>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = ids
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id.to_owned();
            failure
        })
        .collect();
    response
}

/// Archives a batch of the `unrouted` queue; the records not archived are retried.
pub async fn archive_batch(
    archive: &Archive,
    event: SqsEvent,
    metrics: Option<&Emf>,
    in_flight: usize,
) -> SqsBatchResponse {
    let records: Vec<Record> = event.records.into_iter().map(Record::from).collect();
    let results = archive_unrouted(archive, &records, in_flight).await;
    if let Some(emf) = metrics {
        let written = results.iter().filter(|(_, r)| r.is_ok()).count();
        if let Some(line) =
            emf.destination(cf_webhooks::archive::ARCHIVE, Route::Unrouted.as_str(), written, results.len() - written)
        {
            println!("{line}");
        }
    }
    failures(results.iter().filter(|(_, r)| r.is_err()).map(|(id, _)| id.as_str()))
}
