//! The hot paths against their floors: the ack path (no network) against raw HMAC-SHA256
//! plus one `serde_json` parse of the same bytes; envelope and typed decoding per group;
//! the consumer runner's overhead per record.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use cf_webhooks::ack::{decide, Decision, Delivery};
use cf_webhooks::consumer::{Context, Handler, HandlerError, MemoryStore, NoDeadLetters, Runner};
use cf_webhooks::events::{
    routing, EventGroup, GroupEvent, JobEvent, ProductEvent, SampleEvent, SessionEvent, TaskEvent, UserEvent,
    WorkUnitEvent,
};
use cf_webhooks::testkit::{self, sample, SECRET};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue, Method};
use sha2::Sha256;

/// The task sample grown to `size` bytes with an extra text field.
fn body_of(size: usize) -> Vec<u8> {
    let base = sample(EventGroup::Task).trim_end();
    let open = &base[..base.len() - 1];
    let overhead = open.len() + ",\"Notes\":\"\"}".len();
    format!("{open},\"Notes\":\"{}\"}}", "n".repeat(size - overhead)).into_bytes()
}

fn headers_for(body: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("x-cf-event", HeaderValue::from_static("Task completed"));
    headers.insert("x-cf-signature", HeaderValue::from_str(&testkit::signature(SECRET, body)).unwrap());
    headers
}

fn ack_path(c: &mut Criterion) {
    let mut config = testkit::config();
    // One secret, as most studios run: the floor is one HMAC.
    config.secrets = std::sync::Arc::new(cf_webhooks::secret::Keyring::fixed(
        cf_webhooks::secret::SecretSet::parse_list(SECRET, Default::default()).unwrap(),
    ));
    for size in [1024usize, 64 * 1024] {
        let body = Bytes::from(body_of(size));
        assert_eq!(body.len(), size);
        let headers = headers_for(&body);
        let label = if size == 1024 { "1KiB" } else { "64KiB" };
        let mut group = c.benchmark_group(format!("ack/{label}"));
        group.throughput(Throughput::Bytes(size as u64));

        group.bench_function("floor: hmac-sha256", |b| {
            b.iter(|| {
                let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
                mac.update(black_box(&body));
                black_box(mac.finalize().into_bytes())
            })
        });
        group.bench_function("floor: serde_json to Value", |b| {
            b.iter(|| black_box(serde_json::from_slice::<serde_json::Value>(black_box(&body)).unwrap()))
        });
        group.bench_function("floor: hmac + serde_json", |b| {
            b.iter(|| {
                let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
                mac.update(black_box(&body));
                black_box(mac.finalize().into_bytes());
                black_box(serde_json::from_slice::<serde_json::Value>(black_box(&body)).unwrap())
            })
        });
        group.bench_function("signature verify", |b| {
            let signature = cf_webhooks::signature::Signature::parse(headers["x-cf-signature"].as_bytes()).unwrap();
            b.iter(|| black_box(config.secrets.with_accepted(|s| signature.verify(s, black_box(&body)))))
        });
        group.bench_function("whole ack path (decide)", |b| {
            b.iter(|| {
                let delivery = Delivery {
                    method: &Method::POST,
                    headers: &headers,
                    body: &body,
                    received_at_ms: 1,
                    trace_header: None,
                };
                let decision = decide(black_box(delivery), &config);
                debug_assert!(matches!(decision, Decision::Publish { .. }));
                black_box(decision)
            })
        });
        group.finish();
    }
}

fn decoding(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for event in EventGroup::ALL {
        let body = sample(event).as_bytes();
        group.bench_function(format!("envelope/{event}"), |b| {
            b.iter(|| black_box(routing::parse(black_box(body)).unwrap()))
        });
        group.bench_function(format!("floor: serde_json to Value/{event}"), |b| {
            b.iter(|| black_box(serde_json::from_slice::<serde_json::Value>(black_box(body)).unwrap()))
        });
        macro_rules! typed {
            ($ty:ty) => {{
                group.bench_function(format!("typed/{event}"), |b| {
                    b.iter(|| black_box(<$ty>::decode(black_box(body)).unwrap()))
                });
            }};
        }
        match event {
            EventGroup::Product => typed!(ProductEvent),
            EventGroup::Sample => typed!(SampleEvent),
            EventGroup::User => typed!(UserEvent),
            EventGroup::Task => typed!(TaskEvent),
            EventGroup::WorkUnit => typed!(WorkUnitEvent),
            EventGroup::Job => typed!(JobEvent),
            EventGroup::Session => typed!(SessionEvent),
        }
    }
    group.finish();
}

struct Noop;

impl Handler for Noop {
    type Event = TaskEvent;
    async fn handle(&self, event: &TaskEvent, _: &Context<'_>) -> Result<(), HandlerError> {
        black_box(event);
        Ok(())
    }
}

fn runner(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let body = sample(EventGroup::Task);
    let mut group = c.benchmark_group("consumer");
    group.throughput(Throughput::Elements(10));
    group.bench_function("runner, batch of 10 unique records, no-op handler", |b| {
        // A memory longer than the sample's age (2025): the records are claimed, handled and
        // completed, not refused as older than the store remembers.
        let memory = Duration::from_secs(100 * 365 * 24 * 3600);
        let runner = Runner::new(Noop, MemoryStore::new(Duration::from_secs(60), memory), NoDeadLetters);
        let mut n = 0u64;
        b.iter_batched(
            // As ingest queues them: the envelope's facts in the attributes.
            || testkit::queued_task_records(&mut n, 10),
            |records| black_box(rt.block_on(runner.run(&records))),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("floor: typed decode of 10 records", |b| {
        b.iter(|| {
            for _ in 0..10 {
                black_box(TaskEvent::decode(black_box(body.as_bytes())).unwrap());
            }
        })
    });
    group.finish();
}

/// Verification time must not depend on where a forged signature first differs from
/// the right one, nor on which of two configured secrets matches (RELIABILITY.md).
fn verify_timing(c: &mut Criterion) {
    use cf_webhooks::secret::SecretSet;
    use cf_webhooks::signature::Signature;
    let body = body_of(1024);
    let secrets = SecretSet::parse_list(&format!("{SECRET},older-{SECRET}"), Default::default()).unwrap();
    let right = testkit::signature(SECRET, &body);
    let older = testkit::signature(&format!("older-{SECRET}"), &body);
    let flip = |hex: &str, at: usize| {
        let mut bytes = hex.as_bytes().to_vec();
        bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
        String::from_utf8(bytes).unwrap()
    };
    let mut group = c.benchmark_group("verify-timing");
    for (label, hex) in [
        ("matches the first secret", right.clone()),
        ("matches the second secret", older),
        ("wrong in the first byte", flip(&right, 0)),
        ("wrong in the last byte", flip(&right, 63)),
    ] {
        let signature = Signature::parse(hex.as_bytes()).unwrap();
        group.bench_function(label, |b| b.iter(|| black_box(signature.verify(secrets.iter(), black_box(&body)))));
    }
    group.finish();
}

criterion_group!(benches, ack_path, decoding, runner, verify_timing);
criterion_main!(benches);
