//! The smallest Function URL Lambda: what any Rust function pays at a cold start, built
//! with the workspace's release profile. `make bench` times ingest's init against it.

use lambda_http::{service_fn, Body, Error, Request, Response};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_: Request| async { Ok::<_, Error>(Response::new(Body::from("hello"))) })).await
}
