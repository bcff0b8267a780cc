//! `cfwh drift`: the drift of archived events from what Creative Force documents, over
//! history. It reads the archive (S3 or a local folder) page by page with the reader
//! `cfwh replay` uses, a bounded number of objects at once, checks each event as the
//! consumers do ([`cf_webhooks::events::drift`]), and sums up per group each
//! undocumented field and action and each missing or retyped field: how many events,
//! first and last seen, one `PayloadId` to look at. Quarantined deliveries (`unrouted/`)
//! are summed up by why they were quarantined.
//!
//! Memory holds one page of keys (1,000), the objects being read (`--concurrency`), and
//! one line per distinct finding (at most [`MAX_FINDINGS`]), whatever the archive's size.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cf_webhooks::archive::{event_key, unrouted_key};
use cf_webhooks::aws::Budget;
use cf_webhooks::config::DEFAULT_ARCHIVE_PREFIX;
use cf_webhooks::events::{
    EventGroup, Finding, GroupEvent, JobEvent, ProductEvent, SampleEvent, SessionEvent, TaskEvent, UserEvent,
    WorkUnitEvent,
};
use futures_util::StreamExt as _;
use serde::Serialize;

use crate::archived::{body_limit, key_time, Object, Read, Source};

/// Distinct findings kept; past it, events are still counted, their new findings not.
pub const MAX_FINDINGS: usize = 10_000;

/// `cfwh drift`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this group (repeatable) [default: every group, and the quarantined
    /// deliveries].
    #[arg(long, value_enum, ignore_case = true)]
    group: Vec<EventGroup>,
    /// From this time on (event time; for quarantined deliveries, reception time):
    /// 2026-11-28, 2026-11-28T09:00:00Z, or an age such as 30d [default: the archive's
    /// beginning].
    #[arg(long, value_parser = crate::replay::parse_time)]
    since: Option<i64>,
    /// Up to this time, excluded [default: no end].
    #[arg(long, value_parser = crate::replay::parse_time)]
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
    /// Objects read at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// One JSON document on stdout, for machines.
    #[arg(long)]
    json: bool,
    /// Exit 1 when anything drifted, was quarantined or could not be read: for a scheduled
    /// job that alerts.
    #[arg(long)]
    fail_on_drift: bool,
}

/// One kind of drift of one group, over the events read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Seen {
    /// Events that showed it.
    pub events: u64,
    /// Earliest event time (ms) it was seen at.
    pub first_ms: i64,
    /// Latest.
    pub last_ms: i64,
    /// The `PayloadId` of one such event (the key, when there is none).
    pub example: String,
}

/// What one kind of drift is, as a line of the report.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(untagged)]
pub enum Kind {
    /// A finding of the consumers' check.
    Drift(Finding),
    /// An event its group's model could not read at all (`not_json`, `data`: a field of a
    /// type no lenient reader takes, `wrong_group`).
    Unreadable {
        /// `unreadable`.
        kind: &'static str,
        /// Which failure.
        error: &'static str,
    },
    /// A delivery ingest quarantined, by the reason it wrote.
    Quarantined {
        /// `quarantined`.
        kind: &'static str,
        /// Why.
        reason: String,
    },
}

/// The report of one group (or of `unrouted`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GroupReport {
    /// Events (or deliveries) read in the span.
    pub events: u64,
    /// Events with at least one finding.
    pub drifted: u64,
    /// Each kind, and how often.
    pub kinds: BTreeMap<Kind, Seen>,
}

/// The whole report.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// By route name (`task`, …, `unrouted`).
    pub groups: BTreeMap<String, GroupReport>,
    /// Objects that could not be read (the store failed, or larger than ingest takes).
    pub unreadable_objects: Vec<String>,
    /// Findings not kept past [`MAX_FINDINGS`].
    pub findings_dropped: u64,
}

impl Report {
    fn distinct(&self) -> usize {
        self.groups.values().map(|g| g.kinds.len()).sum()
    }

    fn note(&mut self, route: &str, at_ms: i64, example: &str, kinds: Vec<Kind>) {
        let full = self.distinct() >= MAX_FINDINGS;
        let group = self.groups.entry(route.to_owned()).or_default();
        group.events += 1;
        group.drifted += u64::from(!kinds.is_empty());
        for kind in kinds {
            match group.kinds.get_mut(&kind) {
                Some(seen) => {
                    seen.events += 1;
                    seen.first_ms = seen.first_ms.min(at_ms);
                    seen.last_ms = seen.last_ms.max(at_ms);
                }
                None if full => self.findings_dropped += 1,
                None => {
                    let seen = Seen { events: 1, first_ms: at_ms, last_ms: at_ms, example: example.to_owned() };
                    group.kinds.insert(kind, seen);
                }
            }
        }
    }

    /// True when anything drifted, was quarantined or could not be read.
    pub fn anything(&self) -> bool {
        self.groups.values().any(|g| g.drifted > 0) || !self.unreadable_objects.is_empty()
    }

    /// The report as one JSON document.
    pub fn to_json(&self) -> serde_json::Value {
        let groups: serde_json::Map<String, serde_json::Value> = self
            .groups
            .iter()
            .map(|(route, g)| {
                let kinds: Vec<serde_json::Value> = g
                    .kinds
                    .iter()
                    .map(|(kind, seen)| {
                        let mut line = serde_json::to_value(kind).unwrap_or_default();
                        if let Some(line) = line.as_object_mut() {
                            line.insert("events".into(), seen.events.into());
                            line.insert("first_seen".into(), time(seen.first_ms).into());
                            line.insert("last_seen".into(), time(seen.last_ms).into());
                            line.insert("example".into(), seen.example.clone().into());
                        }
                        line
                    })
                    .collect();
                let report = serde_json::json!({ "events": g.events, "drifted": g.drifted, "findings": kinds });
                (route.clone(), report)
            })
            .collect();
        serde_json::json!({
            "groups": groups,
            "unreadable_objects": self.unreadable_objects,
            "findings_dropped": self.findings_dropped,
        })
    }

    /// The report for people.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        if self.groups.is_empty() {
            out.push_str("no archived event in the span\n");
        }
        for (route, g) in &self.groups {
            if route == "unrouted" {
                out.push_str(&format!("{route}: {} deliveries quarantined\n", g.events));
            } else {
                out.push_str(&format!("{route}: {} events read, {} with drift\n", g.events, g.drifted));
            }
            for (kind, seen) in &g.kinds {
                let line = match kind {
                    Kind::Drift(finding) => finding.to_string(),
                    Kind::Unreadable { error, .. } => format!("unreadable by the model ({error})"),
                    Kind::Quarantined { reason, .. } => format!("quarantined: {reason}"),
                };
                out.push_str(&format!(
                    "  {line}: {} event(s), first {}, last {}, e.g. {}\n",
                    seen.events,
                    time(seen.first_ms),
                    time(seen.last_ms),
                    seen.example
                ));
            }
        }
        for key in &self.unreadable_objects {
            out.push_str(&format!("not read: {key}\n"));
        }
        if self.findings_dropped > 0 {
            out.push_str(&format!(
                "{} finding(s) of kinds past the first {MAX_FINDINGS} were counted in their events only\n",
                self.findings_dropped
            ));
        }
        out
    }
}

fn time(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(at).to_string()
}

/// The `PayloadId` and drift of one body of `group`, read as its consumer reads it.
pub fn check(group: EventGroup, body: &[u8]) -> Result<(String, Vec<Finding>), &'static str> {
    fn of<E: GroupEvent>(body: &[u8]) -> Result<(String, Vec<Finding>), &'static str> {
        match E::decode_with_drift(body) {
            Ok((event, findings)) => Ok((event.envelope().payload_id.clone(), findings)),
            Err(cf_webhooks::events::DecodeError::WrongGroup { .. }) => Err("wrong_group"),
            Err(cf_webhooks::events::DecodeError::Json { source, .. }) => Err(match source.classify() {
                serde_json::error::Category::Data => "data",
                _ => "not_json",
            }),
        }
    }
    match group {
        EventGroup::Product => of::<ProductEvent>(body),
        EventGroup::Sample => of::<SampleEvent>(body),
        EventGroup::User => of::<UserEvent>(body),
        EventGroup::Task => of::<TaskEvent>(body),
        EventGroup::WorkUnit => of::<WorkUnitEvent>(body),
        EventGroup::Job => of::<JobEvent>(body),
        EventGroup::Session => of::<SessionEvent>(body),
    }
}

/// The folder of a group's events: `<prefix>/<group>/`.
fn group_folder(prefix: &str, group: EventGroup) -> String {
    let key = event_key(prefix, group, 0, "x");
    let day = "1970/01/01/0-x.json";
    key.strip_suffix(day).unwrap_or(&key).to_owned()
}

/// The folder of quarantined deliveries: `<prefix>/unrouted/`.
fn unrouted_folder(prefix: &str) -> String {
    let key = unrouted_key(prefix, b"");
    key[..key.rfind('/').map_or(0, |i| i + 1)].to_owned()
}

/// What to read, and how.
pub struct Scan {
    /// The archive.
    pub source: Source,
    /// Its key prefix.
    pub prefix: String,
    /// The groups; with `unrouted`, the quarantined deliveries too.
    pub groups: Vec<EventGroup>,
    /// Whether to read `unrouted/`.
    pub unrouted: bool,
    /// `[since, until)`, event time (reception time for quarantined deliveries).
    pub span: (i64, i64),
    /// Objects read at once.
    pub concurrency: usize,
}

impl Scan {
    /// Reads the archive; `progress` hears of each page listed (its keys) and each
    /// object read.
    pub async fn run(&self, progress: &dyn Fn(Progress)) -> Result<Report, String> {
        let limit = body_limit()?;
        let mut report = Report::default();
        let (since, until) = self.span;
        let mut folders: Vec<(Option<EventGroup>, String)> =
            self.groups.iter().map(|&g| (Some(g), group_folder(&self.prefix, g))).collect();
        if self.unrouted {
            folders.push((None, unrouted_folder(&self.prefix)));
        }
        for (group, folder) in folders {
            let route = group.map_or("unrouted", EventGroup::as_str);
            let mut pages = self.source.pages(&folder);
            while let Some(keys) = self.source.next_page(&mut pages).await? {
                // An event's time is in its name: the span filters before any read.
                let keys: Vec<String> = match group {
                    Some(_) => {
                        keys.into_iter().filter(|k| key_time(k).is_some_and(|t| t >= since && t < until)).collect()
                    }
                    None => keys,
                };
                progress(Progress::Listed(keys.len()));
                let mut reads = futures_util::stream::iter(keys)
                    .map(|key| async move {
                        let read = self.source.read(&key, limit).await;
                        (key, read)
                    })
                    .buffer_unordered(self.concurrency);
                while let Some((key, read)) = reads.next().await {
                    progress(Progress::Read);
                    match read {
                        Ok(object) => note(&mut report, group, route, &key, &object, (since, until)),
                        Err(Read::TooLarge(why) | Read::Failed(why)) => {
                            report.unreadable_objects.push(format!("{key}: {why}"))
                        }
                    }
                }
            }
        }
        Ok(report)
    }
}

/// What a scan has done so far.
#[derive(Debug, Clone, Copy)]
pub enum Progress {
    /// A page of this many keys to read.
    Listed(usize),
    /// One object read.
    Read,
}

fn note(report: &mut Report, group: Option<EventGroup>, route: &str, key: &str, object: &Object, span: (i64, i64)) {
    match group {
        Some(group) => {
            let at = key_time(key).unwrap_or_default();
            match check(group, &object.body) {
                Ok((payload_id, findings)) => {
                    report.note(route, at, &payload_id, findings.into_iter().map(Kind::Drift).collect())
                }
                Err(error) => report.note(route, at, key, vec![Kind::Unreadable { kind: "unreadable", error }]),
            }
        }
        None => {
            let at = object.received_at.unwrap_or_default();
            if at < span.0 || at >= span.1 {
                return;
            }
            let reason = object.reason.clone().unwrap_or_else(|| "no reason recorded".to_owned());
            report.note(route, at, key, vec![Kind::Quarantined { kind: "quarantined", reason }]);
        }
    }
}

/// Runs `cfwh drift`.
pub async fn run(args: Args) -> Result<ExitCode, String> {
    let since = args.since.unwrap_or(i64::MIN);
    let until = args.until.unwrap_or(i64::MAX);
    if until <= since {
        return Err("--until must be after --since".into());
    }
    let source = match (&args.bucket, &args.dir) {
        (Some(bucket), _) => {
            let sdk = crate::aws::sdk_config(args.s3_endpoint.as_deref(), Budget::consumer()).await;
            Source::S3 { client: cf_webhooks::aws::s3::client(&sdk), bucket: bucket.clone() }
        }
        (None, Some(dir)) => Source::Dir(dir.clone()),
        (None, None) => return Err("give --bucket or --dir".into()),
    };
    let scan = Scan {
        source,
        prefix: args.prefix.trim_matches('/').to_owned(),
        unrouted: args.group.is_empty(),
        groups: if args.group.is_empty() { EventGroup::ALL.to_vec() } else { args.group.clone() },
        span: (since, until),
        concurrency: args.concurrency.into(),
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} objects, {per_sec}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = SystemTime::now();
    let report = scan
        .run(&|p| match p {
            Progress::Listed(n) => bar.inc_length(n as u64),
            Progress::Read => bar.inc(1),
        })
        .await?;
    bar.finish_and_clear();
    let read: u64 = report.groups.values().map(|g| g.events).sum();
    let took = started.elapsed().unwrap_or_default();
    eprintln!("cfwh drift: {read} archived event(s) read in {:.1} s", took.as_secs_f64());
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    Ok(if args.fail_on_drift && report.anything() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
