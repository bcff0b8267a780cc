//! The ingest bootstrap under a stand-in Lambda Runtime API, against moto: the trace ID
//! the runtime hands over with an invocation (`Lambda-Runtime-Trace-Id`) reaches the
//! queued message as its `AWSTraceHeader`, where SQS and the consumer read it.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sqs::types::MessageSystemAttributeName;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use cf_webhooks::aws::{loader, Budget};
use cf_webhooks::events::Route;
use cf_webhooks::testkit;

const TRACE: &str = "Root=1-6752e0a1-5f0c2b7d9e4a6b8c1d3e5f70;Parent=53995c3f42cd8ad8;Sampled=1";

#[derive(Clone, Default)]
struct RuntimeApi {
    event: Arc<Mutex<Option<String>>>,
    answer: Arc<Mutex<Option<String>>>,
}

async fn next(State(api): State<RuntimeApi>) -> (HeaderMap, String) {
    let event = api.event.lock().unwrap().take();
    let Some(event) = event else {
        // One invocation only: the next poll waits until the process is stopped.
        tokio::time::sleep(Duration::from_secs(600)).await;
        return (HeaderMap::new(), String::new());
    };
    let deadline = cf_webhooks::ack::now_ms() + 30_000;
    let mut headers = HeaderMap::new();
    headers.insert("lambda-runtime-aws-request-id", "req-1".parse().unwrap());
    headers.insert("lambda-runtime-deadline-ms", deadline.to_string().parse().unwrap());
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:ingest".parse().unwrap(),
    );
    headers.insert("lambda-runtime-trace-id", TRACE.parse().unwrap());
    headers.insert("content-type", "application/json".parse().unwrap());
    (headers, event)
}

async fn response(State(api): State<RuntimeApi>, Path(_id): Path<String>, body: String) -> &'static str {
    *api.answer.lock().unwrap() = Some(body);
    "ok"
}

#[tokio::test]
async fn the_invocations_trace_reaches_the_queued_message_as_its_aws_trace_header() {
    let moto = std::env::var("CFWH_TEST_MOTO").expect("CFWH_TEST_MOTO: run with `make test`");
    let sdk = loader(Budget::consumer())
        .endpoint_url(&moto)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "test"))
        .load()
        .await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue = sqs.create_queue().queue_name(format!("trace-{}", std::process::id())).send().await.unwrap();
    let queue = queue.queue_url().unwrap().to_owned();

    // A recent, signed task event, as a Function URL invocation.
    let payload_id = format!("p-trace-{}", std::process::id());
    let body = testkit::sample(cf_webhooks::events::EventGroup::Task)
        .replace("c02f0f73-1706-4973-9a4d-38007d6685e9", &payload_id)
        .replace("1595204418000", &cf_webhooks::ack::now_ms().to_string());
    let mut case = testkit::cases::group_task_is_routed();
    case.body = body.clone().into_bytes();
    case.headers.retain(|(name, _)| name != "x-cf-signature");
    case.headers.push(("x-cf-signature".into(), testkit::signature(testkit::SECRET, body.as_bytes()).into_bytes()));
    let api = RuntimeApi::default();
    *api.event.lock().unwrap() = Some(common::function_url_event(&case));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = axum::Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(response))
        .with_state(api.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let mut ingest = std::process::Command::new(env!("CARGO_BIN_EXE_ingest"));
    ingest
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "ingest")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_ENDPOINT_URL", &moto)
        .env("CF_WEBHOOK_SECRET", testkit::SECRET)
        .env("CF_METRICS", "off");
    for route in Route::ALL {
        ingest.env(cf_webhooks::config::var::queue_url(route), &queue);
    }
    let mut ingest = ingest.stdout(std::process::Stdio::null()).spawn().unwrap();

    let mut answer = None;
    for _ in 0..300 {
        answer = api.answer.lock().unwrap().clone();
        if answer.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ingest.kill().unwrap();
    ingest.wait().unwrap();
    let answer = answer.expect("ingest answered the invocation");
    assert!(answer.contains("accepted"), "{answer}");

    let received = sqs
        .receive_message()
        .queue_url(&queue)
        .message_system_attribute_names(MessageSystemAttributeName::AwsTraceHeader)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap();
    let message = received.messages().first().expect("the delivery was queued");
    assert_eq!(message.body(), Some(body.as_str()));
    let trace = message.attributes().and_then(|a| a.get(&MessageSystemAttributeName::AwsTraceHeader));
    assert_eq!(trace.map(String::as_str), Some(TRACE));
}
