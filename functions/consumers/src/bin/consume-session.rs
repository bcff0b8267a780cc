//! The `session` consumer Lambda.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    cf_webhooks_consumers::lambda::run(cf_webhooks_consumers::handlers::SessionHandler).await
}
