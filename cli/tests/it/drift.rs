//! `cfwh drift` over a made archive with planted drift: it finds exactly what was planted,
//! in a local folder and in S3 (moto), through the library and the binary.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use cf_webhooks::archive::{Archive, DirStore, Reception};
use cf_webhooks::aws::Budget;
use cf_webhooks::events::EventGroup;
use cfwh::archived::Source;
use cfwh::drift::{Report, Scan};
use serde_json::{json, Value};

use crate::common::{moto, CFWH};

const DAY: i64 = 86_400_000;
/// 2026-11-01.
const START: i64 = 1_793_491_200_000;

/// What was planted: the kinds and fields each planted event shows, with the events'
/// times, per group.
type Planted = BTreeMap<(String, String), Vec<i64>>;

/// Writes 300 task events and 40 job events over 30 days through the real archive writer,
/// drift planted in some, and 2 quarantined deliveries; what a report must say.
async fn make_archive(archive: &Archive) -> (Planted, u64) {
    let mut planted: Planted = BTreeMap::new();
    let mut plant = |what: &str, field: &str, at: i64| {
        planted.entry((what.to_owned(), field.to_owned())).or_default().push(at);
    };
    let task: Value = serde_json::from_str(cf_webhooks::testkit::sample(EventGroup::Task)).unwrap();
    for i in 0..300i64 {
        let at = START + (i % 30) * DAY + i * 1000;
        let mut body = task.clone();
        body["PayloadId"] = json!(format!("task-{i}"));
        body["EventDatetimeUtc"] = json!(at);
        if i % 10 == 0 {
            body["Priority"] = json!("high");
            plant("undocumented_field", "Priority", at);
        }
        if i % 25 == 0 {
            body["Action"] = json!("Teleported");
            plant("unknown_action", "Teleported", at);
        }
        if i % 40 == 0 {
            body.as_object_mut().unwrap().remove("JobCode");
            plant("missing_field", "JobCode", at);
        }
        if i % 50 == 0 {
            body["StepName"] = json!(7);
            plant("retyped_field", "StepName", at);
        }
        if i == 7 {
            body["Assignee"]["Email"] = json!("someone@example.com");
            plant("undocumented_field", "Assignee.Email", at);
        }
        let text = body.to_string();
        archive
            .event(EventGroup::Task, &format!("task-{i}"), at, text.as_bytes(), &Reception::default())
            .await
            .unwrap();
    }
    let job: Value = serde_json::from_str(cf_webhooks::testkit::sample(EventGroup::Job)).unwrap();
    for i in 0..40i64 {
        let at = START + (i % 30) * DAY + 500;
        let mut body = job.clone();
        body["PayloadId"] = json!(format!("job-{i}"));
        body["EventDatetimeUtc"] = json!(at);
        let text = body.to_string();
        archive.event(EventGroup::Job, &format!("job-{i}"), at, text.as_bytes(), &Reception::default()).await.unwrap();
    }
    for (i, body) in
        [r#"{"EventGroupName":"invoice","PayloadId":"x"}"#, r#"{"EventGroupName":"invoice","PayloadId":"y"}"#]
            .iter()
            .enumerate()
    {
        let received = (START + i as i64 * DAY).to_string();
        let reception = Reception {
            received_at: Some(&received),
            reason: Some("unknown event group \"invoice\""),
            ..Reception::default()
        };
        archive.unrouted(body.as_bytes(), &reception).await.unwrap();
    }
    (planted, 300)
}

/// The report's findings of task, as (kind, field or action) → (events, first, last).
fn found(report: &Value) -> BTreeMap<(String, String), (u64, String, String)> {
    report["groups"]["task"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let subject = f.get("field").or_else(|| f.get("action")).unwrap().as_str().unwrap().to_owned();
            let seen = (
                f["events"].as_u64().unwrap(),
                f["first_seen"].as_str().unwrap().to_owned(),
                f["last_seen"].as_str().unwrap().to_owned(),
            );
            ((f["kind"].as_str().unwrap().to_owned(), subject), seen)
        })
        .collect()
}

fn expected(planted: &Planted) -> BTreeMap<(String, String), (u64, String, String)> {
    let time = |ms: i64| {
        humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64))
            .to_string()
    };
    planted
        .iter()
        .map(|(k, times)| {
            let (first, last) = (*times.iter().min().unwrap(), *times.iter().max().unwrap());
            (k.clone(), (times.len() as u64, time(first), time(last)))
        })
        .collect()
}

fn check(report: &Report, planted: &Planted, tasks: u64) {
    let json = report.to_json();
    assert_eq!(found(&json), expected(planted), "exactly what was planted");
    let task = &json["groups"]["task"];
    assert_eq!(task["events"], tasks);
    let drifted = (0..300).filter(|i| i % 10 == 0 || i % 25 == 0 || i % 40 == 0 || i % 50 == 0 || *i == 7).count();
    assert_eq!(task["drifted"], drifted);
    assert_eq!(json["groups"]["job"], json!({"events": 40, "drifted": 0, "findings": []}));
    let unrouted = &json["groups"]["unrouted"];
    assert_eq!((unrouted["events"].as_u64(), unrouted["drifted"].as_u64()), (Some(2), Some(2)));
    assert_eq!(unrouted["findings"][0]["reason"], "unknown event group \"invoice\"");
    assert_eq!(unrouted["findings"][0]["events"], 2);
    assert!(!json.to_string().contains("someone@example.com"), "names and types, never values");
    let example = json["groups"]["task"]["findings"].as_array().unwrap()[0]["example"].as_str().unwrap().to_owned();
    assert!(example.starts_with("task-"), "{example}");
    assert!(report.anything());
}

#[tokio::test]
async fn a_local_archive_with_planted_drift_reports_exactly_what_was_planted() {
    let dir = std::env::temp_dir().join(format!("cfwh-drift-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let archive = Archive::new(DirStore::new(&dir), "events");
    let (planted, tasks) = make_archive(&archive).await;
    let scan = |span| Scan {
        source: Source::Dir(dir.clone()),
        prefix: "events".into(),
        groups: EventGroup::ALL.to_vec(),
        unrouted: true,
        span,
        concurrency: 4,
    };
    let reads = AtomicUsize::new(0);
    let report = scan((i64::MIN, i64::MAX))
        .run(&|p| {
            if let cfwh::drift::Progress::Read = p {
                reads.fetch_add(1, Ordering::SeqCst);
            }
        })
        .await
        .unwrap();
    check(&report, &planted, tasks);
    assert_eq!(reads.load(Ordering::SeqCst), 300 + 40 + 2, "every object read once, progress told");

    // A span: the first ten days only, quarantined deliveries by reception time.
    let report = scan((START, START + 10 * DAY)).run(&|_| {}).await.unwrap().to_json();
    assert_eq!(report["groups"]["task"]["events"], 100);
    assert_eq!(report["groups"]["unrouted"]["events"], 2);
    let report = scan((START + 2 * DAY, START + 10 * DAY)).run(&|_| {}).await.unwrap().to_json();
    assert!(report["groups"].get("unrouted").is_none(), "{report}");

    // The binary: text, --json, and --fail-on-drift's exit code.
    let run = |extra: &[&str]| {
        std::process::Command::new(CFWH).args(["drift", "--dir"]).arg(&dir).args(extra).output().unwrap()
    };
    let text = run(&[]);
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    let drifted = (0..300).filter(|i| i % 10 == 0 || i % 25 == 0 || i % 40 == 0 || i % 50 == 0 || *i == 7).count();
    assert!(text.contains(&format!("task: 300 events read, {drifted} with drift")), "{text}");
    assert!(text.contains("undocumented field `Priority` (string): 30 event(s)"), "{text}");
    assert!(text.contains("unrouted: 2 deliveries quarantined"), "{text}");
    let json: Value = serde_json::from_slice(&run(&["--json"]).stdout).unwrap();
    assert_eq!(found(&json), expected(&planted));
    assert_eq!(run(&["--fail-on-drift"]).status.code(), Some(1));
    assert_eq!(run(&["--fail-on-drift", "--group", "job"]).status.code(), Some(0), "the jobs are as documented");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn an_s3_archive_is_read_the_same_with_bounded_concurrency() {
    let sdk = cfwh::aws::local_sdk_config(Budget::consumer()).await.into_builder().endpoint_url(moto()).build();
    let s3 = cf_webhooks::aws::s3::client(&sdk);
    let bucket = format!("drift-{}", std::process::id());
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let archive = Archive::new(cf_webhooks::aws::s3::S3Store::new(s3.clone(), &bucket), "events");
    let (planted, tasks) = make_archive(&archive).await;
    let scan = Scan {
        source: Source::S3 { client: s3, bucket: bucket.clone() },
        prefix: "events".into(),
        groups: EventGroup::ALL.to_vec(),
        unrouted: true,
        span: (i64::MIN, i64::MAX),
        concurrency: 8,
    };
    check(&scan.run(&|_| {}).await.unwrap(), &planted, tasks);
    let out = std::process::Command::new(CFWH)
        .args(["drift", "--json", "--bucket", &bucket, "--s3-endpoint", &moto()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(found(&json), expected(&planted));
}
