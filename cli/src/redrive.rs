//! `cfwh redrive`: moves a dead-letter queue back to its source queue. SQS's own move task
//! (`StartMessageMoveTask`) does it where the endpoint offers it; elsewhere (moto, older
//! SQS-compatible servers, a role without the permission) messages are moved one by one.

use std::process::ExitCode;
use std::time::Duration;

use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::ListMessageMoveTasksResultEntry;
use aws_sdk_sqs::Client;
use cf_webhooks::aws::{describe, Budget};
use cf_webhooks::events::Route;
use cf_webhooks::message::attr;
use cf_webhooks::stack::QueueType;

use crate::aws::{delete, depth, find_queue, queue_arn, receive};

/// `cfwh redrive`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The group whose dead-letter queue to move back (or unrouted).
    #[arg(long, value_enum, ignore_case = true)]
    group: Route,
    /// The SQS API (default: the environment's, e.g. AWS_ENDPOINT_URL, or AWS itself).
    #[arg(long)]
    sqs_endpoint: Option<String>,
    /// Queue names are <prefix>-<group> and <prefix>-<group>-dlq (the stack's name).
    #[arg(long, default_value = cf_webhooks::stack::DEFAULT_STACK)]
    queue_prefix: String,
    /// The stack's queue type [default: whichever exists].
    #[arg(long, value_parser = ["fifo", "standard"])]
    queue_type: Option<String>,
    /// Move this queue (a name or URL) into the group's queue instead of its dead-letter
    /// queue: a queue left behind by a change of QueueType (see docs/guarantees.md,
    /// "Moving to FIFO queues"), moved one message at a time.
    #[arg(long, value_name = "QUEUE")]
    from: Option<String>,
}

/// How to move the messages, given what `StartMessageMoveTask` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// SQS moves them: wait for its task.
    MoveTask(String),
    /// Move them one by one (receive, send, delete), for this reason.
    OneByOne(String),
    /// Stop: the error is about the queues or the request, and moving by hand would not
    /// help (or would race a move task already running).
    Stop(String),
}

/// The choice after a failed `StartMessageMoveTask`: an endpoint that does not know the
/// operation (no AWS error code, or an unknown-operation code), a queue type it does not
/// support, or a caller without the permission, falls back to moving one by one;
/// anything else (no such queue, a task already running, throttling) stops.
pub fn plan_after_error(code: Option<&str>, http_status: Option<u16>, message: String) -> Plan {
    const ONE_BY_ONE: [&str; 7] = [
        "UnsupportedOperation",
        "AWS.SimpleQueueService.UnsupportedOperation",
        "InvalidAction",
        "UnknownOperationException",
        "NotImplemented",
        "AccessDenied",
        "AccessDeniedException",
    ];
    match code {
        Some(code) if ONE_BY_ONE.contains(&code) => {
            Plan::OneByOne(format!("StartMessageMoveTask is not available here ({code}); moving one by one"))
        }
        None if http_status.is_some_and(|s| s >= 400) => Plan::OneByOne(format!(
            "the endpoint does not offer StartMessageMoveTask (HTTP {}); moving one by one",
            http_status.unwrap_or_default()
        )),
        _ => Plan::Stop(message),
    }
}

/// Moves the dead-letter queue of `args.group` back, with a progress bar.
pub async fn run(args: Args) -> Result<ExitCode, String> {
    let client = crate::aws::sqs_client(args.sqs_endpoint.as_deref(), Budget::consumer()).await;
    let queue_type = args.queue_type.as_deref().and_then(QueueType::parse);
    if let Some(from) = &args.from {
        let source = find_queue(&client, &args.queue_prefix, args.group, false, queue_type).await?;
        let from = if from.contains("://") { from.clone() } else { url_of(&client, from).await? };
        if from == source {
            return Err(format!("--from {from} is the group's own queue"));
        }
        let moved = move_one_by_one(&client, &from, &source, |_| {}).await?;
        eprintln!("cfwh redrive: moved {moved} message(s) from {from} to {source}");
        // What a consumer still held when the queue was switched is not visible yet.
        let left = depth(&client, &from).await?;
        if left > 0 {
            eprintln!(
                "cfwh redrive: {left} message(s) still in {from} (in flight or delayed): run this again once \
                 their visibility timeout has passed"
            );
            return Ok(ExitCode::from(1));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let dlq = find_queue(&client, &args.queue_prefix, args.group, true, queue_type).await?;
    // The source of the same type as the dead-letter queue found.
    let source = find_queue(&client, &args.queue_prefix, args.group, false, Some(QueueType::of(&dlq))).await?;
    let waiting = depth(&client, &dlq).await?;
    let bar = indicatif::ProgressBar::new(waiting);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} redriving {pos}/{len} [{bar:30}] {elapsed}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let progress = |moved: u64, total: Option<u64>| {
        bar.set_length(total.unwrap_or(0).max(moved).max(bar.length().unwrap_or(0)));
        bar.set_position(moved);
    };
    let started_ms = cf_webhooks::ack::now_ms();
    let moved = match start_move_task(&client, &dlq, &source).await? {
        Plan::MoveTask(handle) => wait_for_move_task(&client, &dlq, &source, &handle, started_ms, progress).await,
        Plan::OneByOne(_) if running_move_task(&client, &dlq).await => {
            Err(format!("a move task of {dlq} is already running: wait for it (aws sqs list-message-move-tasks)"))
        }
        Plan::OneByOne(why) => {
            bar.suspend(|| eprintln!("cfwh redrive: {why}"));
            move_one_by_one(&client, &dlq, &source, |n| progress(n, None)).await
        }
        Plan::Stop(why) => Err(why),
    };
    bar.finish_and_clear();
    let moved = moved?;
    println!("moved {moved} message(s) from {dlq} back to {source}");
    Ok(ExitCode::SUCCESS)
}

async fn start_move_task(client: &Client, dlq: &str, source: &str) -> Result<Plan, String> {
    let (dlq_arn, source_arn) = (queue_arn(client, dlq).await?, queue_arn(client, source).await?);
    let started = client.start_message_move_task().source_arn(dlq_arn).destination_arn(source_arn).send().await;
    Ok(match started {
        Ok(task) => Plan::MoveTask(task.task_handle().unwrap_or_default().to_owned()),
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            plan_after_error(e.code(), status, format!("StartMessageMoveTask: {}", describe(&e)))
        }
    })
}

/// True when the endpoint lists a running move task from `dlq` (an endpoint that cannot
/// list them has none).
async fn running_move_task(client: &Client, dlq: &str) -> bool {
    let Ok(arn) = queue_arn(client, dlq).await else { return false };
    let listed = client.list_message_move_tasks().source_arn(arn).max_results(10).send().await;
    listed.is_ok_and(|l| l.results().iter().any(|t| t.status() == Some("RUNNING")))
}

/// Our task among the listed ones: the one with our handle while it runs (SQS gives a
/// handle only to a running task), else the latest one started since we asked, into
/// our destination.
pub fn our_task<'a>(
    listed: &'a [ListMessageMoveTasksResultEntry],
    handle: &str,
    destination_arn: &str,
    started_ms: i64,
) -> Option<&'a ListMessageMoveTasksResultEntry> {
    listed.iter().find(|t| t.task_handle() == Some(handle)).or_else(|| {
        listed
            .iter()
            .filter(|t| t.task_handle().is_none() && t.destination_arn().is_none_or(|d| d == destination_arn))
            // SQS's clock and ours: a second of slack.
            .filter(|t| t.started_timestamp() >= started_ms - 1000)
            .max_by_key(|t| t.started_timestamp())
    })
}

async fn wait_for_move_task(
    client: &Client,
    dlq: &str,
    source: &str,
    handle: &str,
    started_ms: i64,
    progress: impl Fn(u64, Option<u64>),
) -> Result<u64, String> {
    let (arn, destination) = (queue_arn(client, dlq).await?, queue_arn(client, source).await?);
    loop {
        let listed = client.list_message_move_tasks().source_arn(&arn).max_results(10).send().await;
        let listed = listed.map_err(|e| format!("ListMessageMoveTasks: {}", describe(&e)))?;
        let task = our_task(listed.results(), handle, &destination, started_ms)
            .ok_or_else(|| format!("the move task of {dlq} is no longer listed"))?;
        let moved = u64::try_from(task.approximate_number_of_messages_moved()).unwrap_or(0);
        let total = task.approximate_number_of_messages_to_move().and_then(|n| u64::try_from(n).ok());
        progress(moved, total);
        match task.status() {
            Some("COMPLETED") => return Ok(moved),
            Some("FAILED") => return Err(format!("the move task failed: {}", task.failure_reason().unwrap_or("?"))),
            Some("CANCELLED") => return Err(format!("the move task was cancelled after {moved} message(s)")),
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

async fn url_of(client: &Client, name: &str) -> Result<String, String> {
    let found =
        client.get_queue_url().queue_name(name).send().await.map_err(|e| format!("{name}: {}", describe(&e)))?;
    found.queue_url().map(str::to_owned).ok_or_else(|| format!("{name}: no queue URL"))
}

/// The message group of a message moved into a FIFO queue: the entity of its body (as
/// ingest sets it), else the group it had, else its own ID.
pub fn group_of(body: &[u8], had: Option<&str>, message_id: &str) -> String {
    let entity = cf_webhooks::events::routing::parse(body).ok().and_then(|r| r.entity_id);
    match (entity, had) {
        (Some(entity), _) => cf_webhooks::message::fifo_group(&entity),
        (None, Some(had)) => had.to_owned(),
        (None, None) => cf_webhooks::message::fifo_group(message_id),
    }
}

/// Moves every message of `dlq` back to `source` by receive, send and delete, the
/// `cf-reason` attribute dropped (into a FIFO queue, with the entity as group); `progress`
/// sees the count moved so far. Returns how many were moved.
pub async fn move_one_by_one(
    client: &Client,
    dlq: &str,
    source: &str,
    mut progress: impl FnMut(u64),
) -> Result<u64, String> {
    use aws_sdk_sqs::types::MessageSystemAttributeName;
    let mut moved = 0;
    loop {
        let batch = receive(client, dlq, 10, Duration::from_secs(1)).await?;
        if batch.is_empty() {
            return Ok(moved);
        }
        for message in batch {
            let mut send = client.send_message().queue_url(source).message_body(message.body().unwrap_or_default());
            for (name, value) in message.message_attributes().into_iter().flatten() {
                if name != attr::REASON {
                    send = send.message_attributes(name, value.clone());
                }
            }
            if source.ends_with(".fifo") {
                let had = message.attributes().and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId));
                let id = message.message_id().unwrap_or_default().to_owned();
                let record = cf_webhooks::consumer::Record::from(&message);
                let body = record.body_bytes().unwrap_or_else(|_| record.body.clone().into_bytes());
                let group = group_of(&body, had.map(String::as_str), &id);
                send = send.message_group_id(group).message_deduplication_id(id);
            }
            send.send().await.map_err(|e| describe(&e))?;
            if let Some(receipt) = message.receipt_handle() {
                delete(client, dlq, &[receipt.to_owned()]).await?;
            }
            moved += 1;
            progress(moved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_moved_into_a_fifo_queue_is_grouped_by_its_entity() {
        let body = r#"{"PayloadId":"p","EventGroupName":"task","Action":"a","EventDatetimeUtc":1,"TaskId":"t-1"}"#;
        assert_eq!(group_of(body.as_bytes(), Some("task"), "m-1"), "t-1", "the entity, not the group it had");
        assert_eq!(group_of(b"{not json", Some("g"), "m-1"), "g");
        assert_eq!(group_of(b"{not json", None, "m-1"), "m-1");
    }

    #[test]
    fn the_move_task_is_left_only_where_moving_by_hand_helps() {
        let plan = |code, status| plan_after_error(code, status, "why".into());
        // moto answers an operation it does not implement with a bare 500.
        assert!(matches!(plan(None, Some(500)), Plan::OneByOne(_)));
        assert!(matches!(plan(None, Some(501)), Plan::OneByOne(_)));
        assert!(matches!(plan(Some("UnsupportedOperation"), Some(400)), Plan::OneByOne(_)), "a FIFO queue");
        assert!(matches!(plan(Some("AccessDenied"), Some(403)), Plan::OneByOne(_)));
        assert!(matches!(plan(Some("InvalidAction"), Some(400)), Plan::OneByOne(_)));
        assert_eq!(plan(Some("ResourceNotFoundException"), Some(400)), Plan::Stop("why".into()));
        assert_eq!(plan(Some("RequestThrottled"), Some(400)), Plan::Stop("why".into()));
        assert_eq!(plan(None, None), Plan::Stop("why".into()), "no answer at all: the endpoint is down");
    }

    #[test]
    fn our_move_task_is_found_by_its_handle_or_as_the_latest_since_we_asked() {
        let task = |handle: Option<&str>, destination: &str, started: i64, status: &str| {
            ListMessageMoveTasksResultEntry::builder()
                .set_task_handle(handle.map(str::to_owned))
                .destination_arn(destination)
                .started_timestamp(started)
                .status(status)
                .build()
        };
        let listed = [
            task(None, "arn:q", 5_000, "COMPLETED"), // an older redrive, listed first
            task(Some("ours"), "arn:q", 10_000, "RUNNING"),
        ];
        assert_eq!(our_task(&listed, "ours", "arn:q", 9_500).unwrap().status(), Some("RUNNING"));
        let finished = [
            task(None, "arn:q", 5_000, "COMPLETED"),
            task(None, "arn:other", 10_100, "COMPLETED"),
            task(None, "arn:q", 10_000, "FAILED"),
        ];
        let ours = our_task(&finished, "ours", "arn:q", 9_500).unwrap();
        assert_eq!((ours.status(), ours.started_timestamp()), (Some("FAILED"), 10_000));
        assert!(our_task(&finished[..1], "ours", "arn:q", 9_500).is_none(), "an older task is never ours");
    }
}
