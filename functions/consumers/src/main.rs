//! The consumer Lambda of every group: `CF_EVENT_GROUP` says which.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    cf_webhooks_consumers::start::run().await
}
