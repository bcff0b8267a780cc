//! The ingest Lambda handler against a real AWS API server (`moto_server`, started by
//! `make test` and named in `CFWH_TEST_MOTO`): SQS that stops or slows down, and a secret
//! rotated in Secrets Manager.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use cf_webhooks::aws::secrets_manager::SecretsManagerFetcher;
use cf_webhooks::aws::sqs::{QueueUrls, SqsQueues};
use cf_webhooks::aws::{loader, Budget};
use cf_webhooks::config::{IngestConfig, SecretStore};
use cf_webhooks::events::Route;
use cf_webhooks::secret::{Keyring, Refresh, SecretEncoding};
use cf_webhooks::testkit::{self, PublisherMode, RecordingPublisher};
use common::signed_request;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

fn moto() -> String {
    std::env::var("CFWH_TEST_MOTO")
        .expect("CFWH_TEST_MOTO names the moto_server these tests use; run them with `make test`, which starts it")
}

async fn sdk(endpoint: &str, budget: Budget) -> aws_config::SdkConfig {
    loader(budget)
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "test"))
        .load()
        .await
}

const PASS: u8 = 0;
const REFUSE: u8 = 1;
const STALL: u8 = 2;
const THROTTLE: u8 = 3;

/// Answers one HTTP request the way SQS answers when it throttles, then closes.
async fn throttle(mut inbound: TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let Ok(n) = inbound.read(&mut buf).await else { return };
        if n == 0 {
            return;
        }
        request.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&request);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if request.len() >= end + 4 + length {
                break;
            }
        }
    }
    let body = r#"{"__type":"com.amazonaws.sqs#ThrottlingException","message":"Rate exceeded"}"#;
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.0\r\nx-amzn-query-error: ThrottlingException;Sender\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = inbound.write_all(response.as_bytes()).await;
    let _ = inbound.shutdown().await;
}

/// A TCP proxy in front of moto that can pass traffic, refuse connections, or accept
/// them and never answer; switching mode cuts the connections already open.
struct Proxy {
    addr: std::net::SocketAddr,
    mode: Arc<AtomicU8>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(AtomicU8::new(PASS));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let generation = Arc::new(generation);
        let (accept_mode, accept_generation) = (mode.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { return };
                let mut cut = accept_generation.subscribe();
                match accept_mode.load(Ordering::SeqCst) {
                    REFUSE => {
                        let _ = inbound.shutdown().await;
                    }
                    THROTTLE => {
                        tokio::spawn(throttle(inbound));
                    }
                    STALL => {
                        tokio::spawn(async move {
                            let _ = cut.changed().await;
                            drop(inbound);
                        });
                    }
                    _ => {
                        let upstream = upstream.clone();
                        tokio::spawn(async move {
                            let Ok(mut outbound) = TcpStream::connect(&upstream).await else { return };
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                                _ = cut.changed() => {}
                            }
                        });
                    }
                }
            }
        });
        Self { addr, mode, generation }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }
}

fn task(payload_id: &str) -> String {
    format!(
        r#"{{"PayloadId":"{payload_id}","EventGroupName":"task","Action":"Completed","EventDatetimeUtc":{}}}"#,
        cf_webhooks::ack::now_ms()
    )
}

#[tokio::test]
async fn an_unreachable_stalled_or_throttling_queue_answers_503_within_budget_and_loses_nothing_answered_200() {
    let moto = moto();
    let direct = aws_sdk_sqs::Client::new(&sdk(&moto, Budget::consumer()).await);
    let mut urls = std::collections::BTreeMap::new();
    let suffix = std::process::id();
    for route in Route::ALL {
        let made = direct.create_queue().queue_name(format!("outage-{suffix}-{route}")).send().await.unwrap();
        urls.insert(route, made.queue_url().unwrap().to_owned());
    }
    let task_url = urls[&Route::Group(cf_webhooks::events::EventGroup::Task)].clone();

    let upstream = moto.trim_start_matches("http://").to_owned();
    let proxy = Proxy::start(upstream).await;
    let budget = Duration::from_millis(800);
    let through_proxy = aws_sdk_sqs::Client::new(&sdk(&format!("http://{}", proxy.addr), Budget::ack(budget)).await);
    let publisher = SqsQueues::new(through_proxy, QueueUrls::new(urls).unwrap());
    let mut config = testkit::config();
    config.enqueue_timeout = budget;

    let mut answered_200 = HashSet::new();
    let mut answered_503 = 0;
    let mut n = 0;
    for (mode, count) in [(PASS, 5), (STALL, 3), (REFUSE, 3), (THROTTLE, 3), (PASS, 5)] {
        proxy.set(mode);
        for _ in 0..count {
            n += 1;
            let payload_id = format!("outage-{n}");
            let started = Instant::now();
            let response = cf_webhooks_ingest::handle(
                signed_request(&task(&payload_id), testkit::SECRET),
                &config,
                &publisher,
                None,
            )
            .await;
            let took = started.elapsed();
            match response.status().as_u16() {
                200 => {
                    answered_200.insert(payload_id);
                }
                503 => {
                    answered_503 += 1;
                    assert!(took < budget + Duration::from_millis(700), "503 after {took:?}, budget {budget:?}");
                }
                other => panic!("unexpected {other}"),
            }
            if mode != PASS {
                assert_eq!(response.status(), 503, "mode {mode}: no 2xx while the queue is unreachable");
            }
        }
    }
    assert_eq!(answered_503, 9);
    assert_eq!(answered_200.len(), 10);

    // Everything answered 200 is in the queue (a 503 may be there too: at least once).
    let mut stored = HashSet::new();
    loop {
        let batch = direct
            .receive_message()
            .queue_url(&task_url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap();
        if batch.messages().is_empty() {
            break;
        }
        for message in batch.messages() {
            let body: serde_json::Value = serde_json::from_str(message.body().unwrap()).unwrap();
            stored.insert(body["PayloadId"].as_str().unwrap().to_owned());
            direct
                .delete_message()
                .queue_url(&task_url)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    let missing: Vec<_> = answered_200.difference(&stored).collect();
    assert!(missing.is_empty(), "answered 200 but not stored: {missing:?}");
    let attributes = direct
        .get_queue_attributes()
        .queue_url(&task_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap();
    assert_eq!(attributes.attributes().unwrap()[&QueueAttributeName::ApproximateNumberOfMessages], "0");
}

#[tokio::test]
async fn a_secret_rotated_in_secrets_manager_is_picked_up_and_the_old_one_kept_for_the_overlap() {
    let sdk = sdk(&moto(), Budget::consumer()).await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let name = format!("cf-webhook-secret-{}", std::process::id());
    let arn =
        secrets.create_secret().name(&name).secret_string("old-secret").send().await.unwrap().arn().unwrap().to_owned();

    let refresh = Refresh { interval: Duration::from_secs(1), overlap: Duration::from_secs(3) };
    let store = SecretStore { arn, encoding: SecretEncoding::Utf8 };
    let mut config =
        IngestConfig::new(cf_webhooks::secret::SecretSet::parse_list("unused", SecretEncoding::Utf8).unwrap());
    config.secrets = Arc::new(Keyring::refreshed(refresh));
    config.secrets.follow(SecretsManagerFetcher::new(secrets.clone(), store));
    config.secrets.refresh_now().await.unwrap();
    let publisher = RecordingPublisher::new(PublisherMode::Working);

    let status = |secret: &'static str, n: u32| {
        let (config, publisher) = (&config, &publisher);
        async move {
            let request = signed_request(&task(&format!("rotation-{n}")), secret);
            cf_webhooks_ingest::handle(request, config, publisher, None).await.status().as_u16()
        }
    };
    assert_eq!(status("old-secret", 1).await, 200);
    secrets.put_secret_value().secret_id(&name).secret_string("new-secret").send().await.unwrap();
    assert_eq!(status("new-secret", 2).await, 401, "not read again before the interval");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(status("new-secret", 3).await, 200, "read again after the interval, no restart");
    assert_eq!(status("old-secret", 4).await, 200, "the old one during the overlap");

    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(status("old-secret", 5).await, 401, "the overlap is over");
    assert_eq!(status("new-secret", 6).await, 200);

    // A JSON list in the store accepts every secret in it.
    secrets
        .put_secret_value()
        .secret_id(&name)
        .secret_string(r#"["newest-secret","new-secret"]"#)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(status("newest-secret", 7).await, 200);
    assert_eq!(status("new-secret", 8).await, 200);
}
