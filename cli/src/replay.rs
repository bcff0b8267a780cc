//! `cfwh replay`: archived events of a group, in time order, sent again to the group's
//! queue (or to a running `cfwh dev`) as one replay run. Each is verified first against
//! the signature it was archived with and the current secrets: an object planted in the
//! archive without a valid signature is refused and counted, never sent.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cf_webhooks::ack::{now_ms, replay, valid_run_id};
use cf_webhooks::aws::Budget;
use cf_webhooks::config::{var, IngestConfig, DEFAULT_ARCHIVE_PREFIX};
use cf_webhooks::events::{EventGroup, Route};
use cf_webhooks::stack::{QueueType, DEFAULT_STACK};

use crate::archived::{body_limit, Read, Source};
pub use crate::archived::{day_prefixes, key_time, Archived};

/// `cfwh replay`.
#[derive(clap::Args)]
pub struct Args {
    /// The group whose events to replay.
    #[arg(long, value_enum, ignore_case = true)]
    group: EventGroup,
    /// From this time on (event time): 2026-11-28, 2026-11-28T09:00:00Z, or an age such
    /// as 24h.
    #[arg(long, value_parser = parse_time)]
    since: i64,
    /// Up to this time, excluded [default: now].
    #[arg(long, value_parser = parse_time)]
    until: Option<i64>,
    /// The archive's S3 bucket.
    #[arg(long, required_unless_present = "dir", conflicts_with = "dir")]
    bucket: Option<String>,
    /// A local archive (`cfwh dev --archive-dir`) instead.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The archive's key prefix.
    #[arg(long, default_value = DEFAULT_ARCHIVE_PREFIX)]
    prefix: String,
    /// The S3 API (default: the environment's, e.g. AWS_ENDPOINT_URL, or AWS itself).
    #[arg(long, value_name = "URL")]
    s3_endpoint: Option<String>,
    /// Send to a running `cfwh dev` at this URL (its loopback-only replay endpoint)
    /// instead of the group's queue.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// With --url: the time one replayed event may take to be answered (connecting
    /// included); a redirect is never followed.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// The SQS API (default: the environment's, or AWS itself).
    #[arg(long, value_name = "URL")]
    sqs_endpoint: Option<String>,
    /// The stack: queue names are <stack>-<group>.
    #[arg(long, default_value = DEFAULT_STACK)]
    queue_prefix: String,
    /// The stack's queue type [default: whichever exists].
    #[arg(long, value_parser = ["fifo", "standard"])]
    queue_type: Option<String>,
    /// The run's ID [default: the time now and 4 random hex digits].
    #[arg(long)]
    run: Option<String>,
    /// The webhook secret(s) to verify with, comma-separated [default: CF_WEBHOOK_SECRET].
    #[arg(long, env = "CF_WEBHOOK_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// List what would be sent (verified), send nothing.
    #[arg(long)]
    dry_run: bool,
}

impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Args")
            .field("group", &self.group)
            .field("since", &self.since)
            .field("until", &self.until)
            .field("bucket", &self.bucket)
            .field("dir", &self.dir)
            .field("run", &self.run)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

/// A time on the command line: a date (UTC midnight), an RFC 3339 time, or an age.
pub fn parse_time(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let at = if let Ok(age) = humantime::parse_duration(text) {
        SystemTime::now().checked_sub(age).ok_or("too long ago")?
    } else if text.len() == 10 {
        humantime::parse_rfc3339_weak(&format!("{text} 00:00:00")).map_err(|e| format!("{text:?}: {e}"))?
    } else {
        humantime::parse_rfc3339_weak(text.trim_end_matches('Z'))
            .map_err(|e| format!("{text:?}: {e} (expected 2026-11-28, 2026-11-28T09:00:00Z or an age such as 24h)"))?
    };
    let ms = at.duration_since(UNIX_EPOCH).map_err(|_| "before 1970")?.as_millis();
    i64::try_from(ms).map_err(|_| "too far ahead".to_owned())
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Sent (or, in a dry run, would be).
    pub sent: usize,
    /// Refused: no valid signature under the current secrets, or not an event of the group.
    pub refused: usize,
    /// Could not be read or sent.
    pub failed: usize,
}

enum Target {
    Queue { client: aws_sdk_sqs::Client, url: String },
    Dev { client: reqwest::Client, url: String, timeout: Duration },
    DryRun,
}

/// Replays, then prints the tally; exits 1 when anything was refused or failed.
pub async fn run(args: Args) -> Result<ExitCode, String> {
    let run = match &args.run {
        Some(run) if !valid_run_id(run) => {
            return Err(format!("--run: {run:?} must be 1 to 64 letters, digits, - or _"));
        }
        Some(run) => run.clone(),
        None => new_run_id(),
    };
    // One time for the whole run: every delivery of it is held to the memory from there.
    let replayed_at = now_ms();
    let until = args.until.unwrap_or_else(cf_webhooks::ack::now_ms);
    if until <= args.since {
        return Err("--until must be after --since".into());
    }
    let prefix = args.prefix.trim_matches('/').to_owned();
    let source = match (&args.bucket, &args.dir) {
        (Some(bucket), _) => {
            let sdk = crate::aws::sdk_config(args.s3_endpoint.as_deref(), Budget::consumer()).await;
            Source::S3 { client: cf_webhooks::aws::s3::client(&sdk), bucket: bucket.clone() }
        }
        (None, Some(dir)) => Source::Dir(dir.clone()),
        (None, None) => return Err("give --bucket or --dir".into()),
    };
    // `cfwh dev` verifies what it is sent itself; everything else is verified here.
    let config = match (&args.url, &args.secret) {
        (Some(_), _) if !args.dry_run => None,
        (_, Some(secrets)) => Some(
            IngestConfig::from_lookup(|name| (name == var::WEBHOOK_SECRET).then(|| secrets.clone()))
                .map_err(|e| format!("--secret: {}", e.problem))?,
        ),
        (_, None) => return Err(format!("set {} (or --secret) to verify the archived events", var::WEBHOOK_SECRET)),
    };
    let target = if args.dry_run {
        Target::DryRun
    } else if let Some(url) = &args.url {
        let policy = cf_webhooks::outbound::Policy::within(args.timeout);
        let client = crate::send::client(policy).map_err(|e| format!("--url: {e}"))?;
        Target::Dev { client, url: format!("{}/_cfwh/replay", url.trim_end_matches('/')), timeout: args.timeout }
    } else {
        let client = crate::aws::sqs_client(args.sqs_endpoint.as_deref(), Budget::consumer()).await;
        let queue_type = args.queue_type.as_deref().and_then(QueueType::parse);
        let url =
            crate::aws::find_queue(&client, &args.queue_prefix, Route::Group(args.group), false, queue_type).await?;
        Target::Queue { client, url }
    };

    // Day by day, in time order: one day's listing in memory at a time, never the span's.
    let folders = day_prefixes(&prefix, args.group, args.since, until);
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let limit = body_limit()?;
    let mut tally = Tally::default();
    let mut listed = 0;
    for folder in &folders {
        let day = source.list(std::slice::from_ref(folder), args.since, until).await?;
        listed += day.len();
        bar.inc_length(day.len() as u64);
        bar.set_message(folder.trim_end_matches('/').to_owned());
        for item in &day {
            bar.inc(1);
            let (body, signature, received_at) = match source.read(&item.key, limit).await {
                Ok(object) => (object.body, object.signature, object.received_at),
                Err(Read::TooLarge(why)) => {
                    bar.suspend(|| eprintln!("cfwh replay: refused {}: {why}", item.key));
                    tally.refused += 1;
                    continue;
                }
                Err(Read::Failed(e)) => {
                    bar.suspend(|| eprintln!("cfwh replay: {e}"));
                    tally.failed += 1;
                    continue;
                }
            };
            let received_at = received_at.unwrap_or(item.at_ms);
            let signature = signature.unwrap_or_default();
            let sent = match (&target, &config) {
                (Target::Dev { client, url, timeout }, _) => {
                    let answer = client
                        .post(url)
                        .header("x-cf-signature", &signature)
                        .header("x-cf-replay", &run)
                        .header("x-cf-received-at", received_at.to_string())
                        .header("x-cf-replayed-at", replayed_at.to_string())
                        .body(body.clone())
                        .send()
                        .await;
                    dev_answer(url, *timeout, answer)
                }
                (target, Some(config)) => {
                    match replay(signature.as_bytes(), &body, received_at, &run, replayed_at, config) {
                        Err(answer) => Err(Ok(answer.reason().unwrap_or("refused").to_owned())),
                        Ok(message) if message.route != Route::Group(args.group) => {
                            Err(Ok(format!("an event of {}, not {}", message.route, args.group)))
                        }
                        Ok(message) => match target {
                            Target::Queue { client, url } => cf_webhooks::aws::sqs::send_to(client, url, message)
                                .await
                                .map_err(|e| Err(e.to_string())),
                            _ => Ok(()),
                        },
                    }
                }
                (_, None) => Err(Err("no secrets to verify with".to_owned())),
            };
            match sent {
                Ok(()) => tally.sent += 1,
                Err(Ok(refusal)) => {
                    bar.suspend(|| eprintln!("cfwh replay: refused {}: {refusal}", item.key));
                    tally.refused += 1;
                }
                Err(Err(failure)) => {
                    bar.suspend(|| eprintln!("cfwh replay: failed {}: {failure}", item.key));
                    tally.failed += 1;
                }
            }
        }
    }
    bar.finish_and_clear();
    eprintln!("cfwh replay: run {run}: {listed} archived {} event(s) in the span, read day by day", args.group);
    let verb = if args.dry_run { "would send" } else { "sent" };
    println!(
        "replay run {run}: {verb} {}, refused {} (no valid signature, or not a {} event), failed {}",
        tally.sent, tally.refused, args.group, tally.failed
    );
    Ok(if tally.refused + tally.failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// What `cfwh dev`'s replay endpoint made of one event: sent, refused (`Err(Ok)`: a 4xx,
/// the event will not be taken) or failed (`Err(Err)`: a redirect, not followed; a 5xx; no
/// answer in time), in the outbound policy's words.
fn dev_answer(
    url: &str,
    timeout: Duration,
    answer: reqwest::Result<reqwest::Response>,
) -> Result<(), Result<String, String>> {
    use cf_webhooks::outbound::{redacted, Failure};
    match answer {
        Ok(answer) if answer.status().is_success() => Ok(()),
        Ok(answer) => {
            let status = answer.status().as_u16();
            let location = answer.headers().get("location").and_then(|l| l.to_str().ok());
            let failure = Failure::of_status(url, status, location).to_string();
            if (400..500).contains(&status) {
                Err(Ok(failure))
            } else {
                Err(Err(failure))
            }
        }
        Err(e) if e.is_timeout() => Err(Err(Failure::Timeout { url: redacted(url), after: timeout }.to_string())),
        Err(e) => {
            Err(Err(Failure::Unreachable { url: redacted(url), why: cf_webhooks::logging::describe(&e) }.to_string()))
        }
    }
}

/// `20261129T121500Z-3fa2`: sortable, and unique enough for runs started by hand.
fn new_run_id() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string().replace([':', '-'], "");
    format!("{at}-{:04x}", (now.subsec_nanos() ^ std::process::id()) & 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_on_the_command_line() {
        assert_eq!(parse_time("2026-11-29").unwrap(), 1_795_910_400_000);
        assert_eq!(parse_time("2026-11-29T11:31:04Z").unwrap(), 1_795_951_864_000);
        let ago = parse_time("24h").unwrap();
        assert!((cf_webhooks::ack::now_ms() - ago - 86_400_000).abs() < 5_000);
        assert!(parse_time("yesterday").unwrap_err().contains("expected"));
    }

    #[test]
    fn keys_and_folders_of_a_span() {
        assert_eq!(key_time("events/task/2026/11/29/1795951864123-p%2F1.json"), Some(1_795_951_864_123));
        assert_eq!(key_time("events/task/2026/11/29/1795951864123-p.json.meta.json"), None);
        assert_eq!(key_time("events/task/2026/11/29/notes.json"), None);
        let day = 1_795_910_400_000;
        assert_eq!(day_prefixes("events", EventGroup::Task, day + 5, day + 10), ["events/task/2026/11/29/"]);
        assert_eq!(
            day_prefixes("", EventGroup::Job, day - 1, day + 1),
            ["job/2026/11/28/", "job/2026/11/29/"],
            "every day the span touches"
        );
    }

    #[test]
    fn run_ids_are_safe_everywhere_they_go() {
        let run = new_run_id();
        assert!(valid_run_id(&run), "{run}");
        assert!(!valid_run_id("a/b") && !valid_run_id("") && !valid_run_id(&"x".repeat(65)));
    }
}
