//! The ack-path contract through the ingest Lambda handler, fed Function URL events.

mod common;

use cf_webhooks::testkit::{Case, RecordingPublisher, Seen};
use common::function_url_event;
use lambda_http::Body;

async fn through_lambda(case: &Case) -> Seen {
    let request = lambda_http::request::from_str(&function_url_event(case)).expect("a valid Function URL event");
    let publisher = RecordingPublisher::new(case.publisher);
    let response = cf_webhooks_ingest::handle(request, &case.config, &publisher, None).await;
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    let body = match response.body() {
        Body::Binary(bytes) => bytes.clone(),
        Body::Text(text) => text.clone().into_bytes(),
        _ => Vec::new(),
    };
    Seen {
        status: response.status().as_u16(),
        content_type: header("content-type"),
        allow: header("allow"),
        body,
        stored: publisher.stored(),
    }
}

cf_webhooks::ack_contract_tests!(through_lambda);

/// The sample Function URL event in `events/lambda/` is signed with the development
/// secret and accepted.
#[tokio::test]
async fn the_sample_function_url_event_is_accepted() {
    let event = include_str!("../../../events/lambda/function-url.json");
    let request = lambda_http::request::from_str(event).unwrap();
    let secrets = cf_webhooks::secret::SecretSet::parse_list(cf_webhooks::DEV_SECRET, Default::default()).unwrap();
    let config = cf_webhooks::config::IngestConfig::new(secrets);
    let publisher = RecordingPublisher::new(cf_webhooks::testkit::PublisherMode::Working);
    let response = cf_webhooks_ingest::handle(request, &config, &publisher, None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(publisher.stored().len(), 1);
    assert_eq!(publisher.stored()[0].route.as_str(), "task");
}
